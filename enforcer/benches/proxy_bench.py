#!/usr/bin/env python3
"""Proxy benchmark: Envoy passthrough, Envoy + palisade-enforcer (CRS v4 PL1,
On), and nginx + ModSecurity v3 (the same CRS files), one worker each, the
same request corpus, load from wrk. One run; prints numbers and ratios and
asserts nothing (this is a benchmark, not a test).

Setup: `scripts/setup --bench` (Envoy into .tools/bin, Debian nginx,
libnginx-mod-http-modsecurity, wrk). The enforcer is built in release mode
unless --no-build (CARGO_TARGET_DIR is honoured).

Every proxy forwards to the same upstream: a separate nginx worker answering
200 "ok". The enforcer runs with --workers 1 (one thread serving Checks, like
nginx's single worker and Envoy's --concurrency 1). ModSecurity gets the same
files in the same order as the enforcer (policies/modsecdefault.conf,
crs-setup.conf from the CRS example, rules/*.conf), with
SecResponseBodyAccess Off so both inspect requests only (ext_authz never sees
responses). Besides throughput and latency it reports the CPU time (user +
system, from /proc) each process spent per request, so the share of Envoy,
the enforcer and the upstream is visible.

The moderate-load point (4 connections, 10 ms think time each) runs
--rounds times, the setups interleaved within each round so that a burst of
load from elsewhere on the machine hits them alike; added latency is taken
per round against that round's passthrough and reported as median and range,
with the load average before and after. --moderate-only skips the
throughput points.

Usage: enforcer/benches/proxy_bench.py [--duration S] [--rounds N] [--moderate-only]
       [--no-build] [--markdown FILE]
"""
import argparse
import os
import re
import resource
import shutil
import statistics
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CRS = os.environ.get("PALISADE_CRS_DIR") or os.path.join(os.path.dirname(ROOT), "shared", "crs")
ENVOY = os.environ.get("PALISADE_ENVOY") or os.path.join(ROOT, ".tools", "bin", "envoy")
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
MODSEC_MODULE = "/usr/lib/nginx/modules/ngx_http_modsecurity_module.so"

SQLI = "/test/artists.php?artist=0+div+1+union%23foo*%2F*bar%0D%0Aselect%23foo%0D%0A1%2C2%2Ccurrent_user"

# The corpus: benign requests a shop front end sends (every proxy must answer 200).
CORPUS = [
    ("GET", "/", None, None),
    ("GET", "/index.html", None, None),
    ("GET", "/products?category=shoes&page=2&sort=price", None, None),
    ("GET", "/products/12345", None, None),
    ("GET", "/search?q=red+running+shoes&lang=en", None, None),
    ("GET", "/static/app.js?v=1.2.3", None, None),
    ("GET", "/api/v1/cart?session=9f8e7d6c5b4a", None, None),
    ("POST", "/api/v1/cart", "application/x-www-form-urlencoded", "item=12345&quantity=2&colour=red"),
    ("POST", "/api/v1/orders", "application/json",
     '{"items":[{"id":12345,"qty":2}],"address":{"street":"1 Main St","city":"Springfield"},"note":"leave at the door"}'),
    ("GET", "/account/orders?from=2025-01-01&to=2025-12-31", None, None),
]

HEADERS = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.5",
    "Accept-Encoding": "gzip, deflate",
    "Cookie": "session=9f8e7d6c5b4a; theme=dark",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, limit=30):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listening on {port} after {limit}s")


def status(port, method="GET", path="/", body=None, ctype=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=body.encode() if body else None)
    req.add_header("Host", "shop.test")
    for k, v in HEADERS.items():
        if k != "Accept-Encoding":
            req.add_header(k, v)
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def lua_corpus(path, delay_ms=None):
    def q(s):
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["local reqs = {}", "local i = 0"]
    for method, target, ctype, body in CORPUS:
        headers = dict(HEADERS, Host="shop.test")
        if ctype:
            headers["Content-Type"] = ctype
        h = "{" + ", ".join(f"[{q(k)}] = {q(v)}" for k, v in headers.items()) + "}"
        b = q(body) if body else "nil"
        lines.append(f"table.insert(reqs, wrk.format({q(method)}, {q(target)}, {h}, {b}))")
    lines += [
        "request = function()",
        "  i = i % #reqs + 1",
        "  return reqs[i]",
        "end",
    ]
    if delay_ms:
        lines += ["delay = function()", f"  return {delay_ms}", "end"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def envoy_bootstrap(port, upstream, socket_path=None, service="shop/web", body=True):
    """Envoy's configuration; with `socket_path`, ext_authz to the enforcer
    there for `service`, buffering request bodies only if `body` (the control
    plane turns buffering off for services whose WAF is off)."""
    authz = ""
    cluster = ""
    if socket_path:
        authz = f"""
          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              transport_api_version: V3
              failure_mode_allow: false
              encode_raw_headers: true
              with_request_body: {{max_request_bytes: 131072, allow_partial_message: true, pack_as_bytes: true}}
              grpc_service: {{envoy_grpc: {{cluster_name: enforcer}}, timeout: 5s}}"""
        cluster = f"""
  - name: enforcer
    type: STATIC
    connect_timeout: 2s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: enforcer
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{pipe: {{path: "{socket_path}"}}}}}}}}]}}]"""
    per_route = ""
    if socket_path:
        per_route = """
                typed_per_filter_config:
                  envoy.filters.http.ext_authz:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute
                    check_settings: {context_extensions: {palisade.service: "SERVICE"}, disable_request_body_buffering: NOBODY}""".replace(
            "SERVICE", service).replace("NOBODY", "false" if body else "true")
    return f"""
static_resources:
  listeners:
  - name: ingress
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: upstream}}{per_route}
          http_filters:{authz}
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
  - name: upstream
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: upstream
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {upstream}}}}}}}}}]}}]{cluster}
"""


def nginx_conf(tmp, name, port, body, modsec=False):
    load = f"load_module {MODSEC_MODULE};\n" if modsec else ""
    return f"""{load}worker_processes 1;
daemon off;
pid {tmp}/{name}.pid;
error_log {tmp}/{name}-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/{name}-body;
  proxy_temp_path {tmp}/{name}-proxy;
  fastcgi_temp_path {tmp}/{name}-fcgi;
  uwsgi_temp_path {tmp}/{name}-uwsgi;
  scgi_temp_path {tmp}/{name}-scgi;
  server {{
    listen 127.0.0.1:{port};
{body}
  }}
}}
"""


def process_tree(pid):
    """pid and its descendants (nginx's worker is a child of the master)."""
    pids = [pid]
    for p in list(pids):
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                pids += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return pids


def cpu_seconds(pids):
    """User + system CPU time of the processes, in seconds."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def run_wrk(port, conns, duration, script, watch=None):
    """One wrk run; `watch` maps a role (envoy, enforcer, upstream) to pids
    whose CPU time per request is reported."""
    watch = {role: [p for pid in pids for p in process_tree(pid)] for role, pids in (watch or {}).items()}
    before = {role: cpu_seconds(pids) for role, pids in watch.items()}
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "-s", script, f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    cpu_us = {role: (cpu_seconds(pids) - before[role]) / max(total, 1) * 1e6 for role, pids in watch.items()}
    # wrk is the only child waited for in between: its CPU is the rusage delta.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_seconds = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    cpu_us["wrk"] = wrk_seconds / max(total, 1) * 1e6

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": rps, "p50": pct(50), "p99": pct(99), "cpu_us": cpu_us,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "errors": errors.group(0) if errors else "",
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="repetitions of the moderate-load point")
    ap.add_argument("--moderate-only", action="store_true", help="skip the throughput points")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--markdown")
    args = ap.parse_args()

    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} missing: run scripts/setup --bench")
    if not os.path.exists(ENVOY):
        raise SystemExit(f"envoy missing at {ENVOY}: run scripts/setup")
    if not os.path.exists(MODSEC_MODULE):
        raise SystemExit("ModSecurity nginx module missing: run scripts/setup --bench")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "palisade-enforcer"], cwd=ROOT, check=True)
    enforcer_bin = os.path.join(TARGET, "release", "palisade-enforcer")

    tmp = tempfile.mkdtemp(prefix="palisade-bench-")
    procs = []

    def start(cmd, env=None, log=None):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log or os.devnull, "w"),
                             env=dict(os.environ, **(env or {})), start_new_session=True)
        procs.append(p)
        return p

    try:
        # The flat ruleset both WAFs load, in the same order.
        rules = os.path.join(tmp, "ruleset")
        os.makedirs(rules)
        shutil.copy(os.path.join(ROOT, "policies", "modsecdefault.conf"), os.path.join(rules, "modsecdefault.conf"))
        shutil.copy(os.path.join(CRS, "crs-setup.conf.example"), os.path.join(rules, "crs-setup.conf"))
        crs_rules = sorted(f for f in os.listdir(os.path.join(CRS, "rules")) if f.endswith((".conf", ".data")))
        for f in crs_rules:
            shutil.copy(os.path.join(CRS, "rules", f), os.path.join(rules, f))
        with open(os.path.join(tmp, "modsec-main.conf"), "w") as f:
            f.write(f"Include {rules}/modsecdefault.conf\nInclude {rules}/crs-setup.conf\n")
            for r in crs_rules:
                if r.endswith(".conf"):
                    f.write(f"Include {rules}/{r}\n")
            f.write("SecResponseBodyAccess Off\nSecAuditEngine Off\n")
        script = os.path.join(tmp, "corpus.lua")
        lua_corpus(script)
        paced_script = os.path.join(tmp, "corpus-paced.lua")
        lua_corpus(paced_script, delay_ms=10)

        up = free_port()
        with open(os.path.join(tmp, "upstream.conf"), "w") as f:
            f.write(nginx_conf(tmp, "upstream", up, '    location / { return 200 "ok\\n"; }'))
        upstream = start(["nginx", "-c", os.path.join(tmp, "upstream.conf"), "-e", os.path.join(tmp, "upstream-error.log")])
        wait_port(up)

        configs = []
        # 1. Envoy passthrough.
        p1 = free_port()
        with open(os.path.join(tmp, "envoy-pass.yaml"), "w") as f:
            f.write(envoy_bootstrap(p1, up))
        envoy = start([ENVOY, "-c", os.path.join(tmp, "envoy-pass.yaml"), "--concurrency", "1", "--use-dynamic-base-id", "-l", "error"],
                      log=os.path.join(tmp, "envoy-pass.log"))
        configs.append(("Envoy passthrough", p1, False, {"envoy": [envoy.pid], "upstream": [upstream.pid]}))

        # 2. Envoy + enforcer, CRS PL1 On.
        sock = os.path.join(tmp, "enforcer.sock")
        with open(os.path.join(tmp, "state.yaml"), "w") as f:
            f.write(f"""version: bench
settings: {{defaultRuleset: crs, defaultWafMode: On, unknownServiceAllow: false}}
services:
  - {{namespace: shop, name: web, wafMode: On}}
  - {{namespace: shop, name: alp, wafMode: Off, labels: {{app: alp}}}}
tiers:
  - name: default
    policies:
      - name: alp
        selector: app == 'alp'
        ingress:
          - {{action: Deny, http: {{paths: [{{prefix: /admin}}]}}}}
          - {{action: Allow, http: {{methods: [GET, POST]}}}}
rulesets:
  - name: crs
    paths: [{rules}]
""")
        enforcer = start([enforcer_bin, "--socket", sock, "--state", os.path.join(tmp, "state.yaml"), "--metrics-addr", "off",
                          "--events-file", os.path.join(tmp, "events.log"), "--workers", "1"],
                         env={"PALISADE_LOG": "warn"}, log=os.path.join(tmp, "enforcer.log"))
        p2 = free_port()
        with open(os.path.join(tmp, "envoy-authz.yaml"), "w") as f:
            f.write(envoy_bootstrap(p2, up, sock))
        deadline = time.time() + 120
        while not os.path.exists(sock) and time.time() < deadline:
            time.sleep(0.2)
        envoy = start([ENVOY, "-c", os.path.join(tmp, "envoy-authz.yaml"), "--concurrency", "1", "--use-dynamic-base-id", "-l", "error"],
                      log=os.path.join(tmp, "envoy-authz.log"))
        configs.append(("Envoy + Palisade enforcer (CRS PL1, On)", p2, True,
                        {"envoy": [envoy.pid], "enforcer": [enforcer.pid], "upstream": [upstream.pid]}))
        # 2b. The same enforcer with the WAF off (HTTP policy only): the cost
        # of the ext_authz round trip itself.
        p2b = free_port()
        with open(os.path.join(tmp, "envoy-alp.yaml"), "w") as f:
            f.write(envoy_bootstrap(p2b, up, sock, service="shop/alp", body=False))
        envoy = start([ENVOY, "-c", os.path.join(tmp, "envoy-alp.yaml"), "--concurrency", "1", "--use-dynamic-base-id", "-l", "error"],
                      log=os.path.join(tmp, "envoy-alp.log"))
        configs.append(("Envoy + Palisade enforcer (policy only, WAF Off)", p2b, False,
                        {"envoy": [envoy.pid], "enforcer": [enforcer.pid], "upstream": [upstream.pid]}))

        # 3. nginx + ModSecurity v3, same CRS.
        p3 = free_port()
        with open(os.path.join(tmp, "modsec.conf"), "w") as f:
            f.write(nginx_conf(tmp, "modsec", p3, f"""    modsecurity on;
    modsecurity_rules_file {tmp}/modsec-main.conf;
    location / {{ proxy_pass http://127.0.0.1:{up}; proxy_http_version 1.1; proxy_set_header Connection ""; }}""", modsec=True))
        modsec = start(["nginx", "-c", os.path.join(tmp, "modsec.conf"), "-e", os.path.join(tmp, "modsec-error.log")])
        configs.append(("nginx + ModSecurity v3 (CRS PL1, On)", p3, True,
                        {"nginx+modsec": [modsec.pid], "upstream": [upstream.pid]}))

        for name, port, waf, _ in configs:
            wait_port(port, 120)
            # Sanity: the corpus passes, and the WAFs block the SQLi.
            for method, target, ctype, body in CORPUS:
                code = status(port, method, target, body, ctype)
                if code != 200:
                    print(f"warning: {name}: {method} {target} -> {code}", file=sys.stderr)
            sqli = status(port, "GET", SQLI)
            want = 403 if waf else 200
            if "policy only" in name:
                print(f"{name}: /admin -> {status(port, 'GET', '/admin/x')} (want 403)")
            print(f"{name}: SQLi -> {sqli} (want {want})")

        results = {}
        def cpu_text(v):
            return ", ".join(f"{role} {us:.1f}" for role, us in v["cpu_us"].items())

        load_before = os.getloadavg()
        if not args.moderate_only:
            for name, port, _, pids in configs:
                run_wrk(port, 8, 3, script)  # warm-up, not counted
                results[name] = {c: run_wrk(port, c, args.duration, script, pids) for c in (1, 8, 32)}
                r = results[name]
                print(f"{name}: " + "; ".join(
                    f"c={c}: {v['rps']:.0f} req/s, p50 {v['p50']:.3f} ms, p99 {v['p99']:.3f} ms, CPU us/request: {cpu_text(v)}"
                    + (f", non-2xx {v['non2xx']}" if v['non2xx'] else "") + (f", {v['errors']}" if v['errors'] else "")
                    for c, v in r.items()))

        # Moderate load: 4 connections, each waiting 10 ms between requests
        # (wrk's `delay`), so every setup sees the same few hundred req/s.
        # Rounds interleave the setups; added latency pairs each setup with
        # the passthrough of the same round.
        names = [c[0] for c in configs]
        paced = {n: [] for n in names}
        for r in range(args.rounds):
            for name, port, _, pids in configs:
                if r == 0 and args.moderate_only:
                    run_wrk(port, 4, 3, paced_script)  # warm-up, not counted
                v = run_wrk(port, 4, args.duration, paced_script, pids)
                paced[name].append(v)
                print(f"{name}: moderate load, round {r + 1}: {v['rps']:.0f} req/s, p50 {v['p50']:.3f} ms,"
                      f" p99 {v['p99']:.3f} ms, CPU us/request: {cpu_text(v)}")
        load_after = os.getloadavg()

        def spread(xs, fmt="{:.3f}"):
            xs = sorted(xs)
            if len(xs) == 1:
                return fmt.format(xs[0])
            return f"{fmt.format(statistics.median(xs))} ({fmt.format(xs[0])}..{fmt.format(xs[-1])})"

        def added(name, key):
            return [v[key] - b[key] for v, b in zip(paced[name], paced[names[0]])]

        lines = [
            f"Proxy benchmark ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores shared by wrk, the upstream and the proxy; "
            f"{args.duration}s per point; corpus of {len(CORPUS)} benign requests, GET and POST; "
            f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after)",
        ]
        if results:
            base, palisade, alp_only, modsec = (results[n] for n in names)
            lines += [
                "",
                "| setup | conns | req/s | p50 ms | p99 ms |",
                "|---|---|---|---|---|",
            ]
            for n in names:
                for c, v in results[n].items():
                    lines.append(f"| {n} | {c} | {v['rps']:.0f} | {v['p50']:.3f} | {v['p99']:.3f} |")
            lines += [
                "",
                "CPU time per request at c=32 (microseconds, user + system, from /proc):",
                "",
                "| setup | " + " | ".join(["envoy", "enforcer", "nginx+modsec", "upstream", "wrk"]) + " |",
                "|---|---|---|---|---|---|",
            ]
            for n in names:
                cpu = results[n][32]["cpu_us"]
                lines.append(f"| {n} | " + " | ".join(
                    f"{cpu[r]:.1f}" if r in cpu else "" for r in ["envoy", "enforcer", "nginx+modsec", "upstream", "wrk"]) + " |")
        lines += [
            "",
            f"Moderate load (4 connections, 10 ms think time per connection; {args.rounds} interleaved rounds,"
            " median (min..max)):",
            "",
            "| setup | req/s | p50 ms | p99 ms | envoy CPU us/req | enforcer CPU us/req |",
            "|---|---|---|---|---|---|",
        ]
        for n in names:
            vs = paced[n]
            cpu = {role: spread([v["cpu_us"][role] for v in vs], "{:.0f}") for role in ("envoy", "enforcer") if role in vs[0]["cpu_us"]}
            lines.append(f"| {n} | {spread([v['rps'] for v in vs], '{:.0f}')} | {spread([v['p50'] for v in vs])} |"
                         f" {spread([v['p99'] for v in vs])} | {cpu.get('envoy', '')} | {cpu.get('enforcer', '')} |")
        lines += [
            "",
            f"- added latency at moderate load (CRS): p50 {spread(added(names[1], 'p50'))} ms,"
            f" p99 {spread(added(names[1], 'p99'))} ms; policy only: p50 {spread(added(names[2], 'p50'))} ms,"
            f" p99 {spread(added(names[2], 'p99'))} ms",
        ]
        if results:
            lines += [
                f"- Envoy + Palisade / Envoy passthrough throughput (c=32): {palisade[32]['rps'] / base[32]['rps']:.2f}",
                f"- added p99 at c=1: {palisade[1]['p99'] - base[1]['p99']:.3f} ms; at c=8: {palisade[8]['p99'] - base[8]['p99']:.3f} ms",
                f"- policy only (WAF Off) / passthrough throughput (c=32): {alp_only[32]['rps'] / base[32]['rps']:.2f};"
                f" added p50 at c=1: {alp_only[1]['p50'] - base[1]['p50']:.3f} ms, p99: {alp_only[1]['p99'] - base[1]['p99']:.3f} ms",
                f"- Envoy + Palisade / nginx + ModSecurity throughput (c=32): {palisade[32]['rps'] / modsec[32]['rps']:.2f}"
                f" ({palisade[32]['rps']:.0f} vs {modsec[32]['rps']:.0f} req/s)",
            ]
        print("\n".join(lines))
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write("\n".join(lines) + "\n")
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
