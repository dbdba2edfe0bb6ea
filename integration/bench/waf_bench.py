#!/usr/bin/env python3
"""WAF engine benchmark: Palisade vs ModSecurity v3.0.15, same requests, one run.

Builds `palisade` (release), generates the request corpus, assembles the CRS
(PALISADE_CRS_DIR) as a flat ruleset directory (policies/modsecdefault.conf,
crs-setup.conf, rules/*.conf and *.data — paranoia level 1, engine On), then
feeds the same JSON lines to `palisade eval` and to the libmodsecurity
reference (integration/modsec/modsec_eval.py) and reports per-request median
and p99 latency of each and the ratio, plus how often the decisions agree.
Also measures the time to compile the whole CRS and the resident memory of a
process holding it (`palisade lint`).

Each engine first evaluates a warm-up corpus of as many *different* requests
(generated with another seed, same mix), which is not counted: the measured
requests are new to both engines, as live traffic is. Palisade remembers
across requests which values its pure rules did not match (the verdict cache,
docs/performance.md); only values that recur between requests (header
values, parameter names) profit from it. Palisade is measured twice, with the
cache and with `--no-verdict-cache`. This is a benchmark, not a test: it
prints numbers, asserts nothing.

The machines are shared: another tenant's load can change every engine's
times by 2x within a minute. So the three runs are repeated in `--rounds`
rounds (default 3), in alternating order, and each request's time is the
median of its rounds for that engine; the table and ratios use those, and
the ratio of every round on its own is printed as well, and the ratio of
each engine's quietest round (the lowest round median: other load only
ever slows a round down).

`--pgo` adds a fourth engine: `palisade` built by scripts/pgo-build
(profile-guided optimisation, trained on other generated requests and the
CRS regression suite), so that it runs beside the plain release build.

Usage: integration/bench/waf_bench.py [--count N] [--rounds R] [--no-build]
                                      [--pgo] [--markdown FILE]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def crs_dir():
    return os.environ.get("PALISADE_CRS_DIR") or os.path.join(os.path.dirname(ROOT), "shared", "crs")


def flat_ruleset(dest):
    crs = crs_dir()
    shutil.copy(os.path.join(ROOT, "policies", "modsecdefault.conf"), os.path.join(dest, "modsecdefault.conf"))
    os.symlink(os.path.join(crs, "crs-setup.conf.example"), os.path.join(dest, "crs-setup.conf"))
    rules = os.path.join(crs, "rules")
    for name in sorted(os.listdir(rules)):
        if name.endswith(".conf") or name.endswith(".data"):
            os.symlink(os.path.join(rules, name), os.path.join(dest, name))
    return dest


def pct(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * (len(values) - 1)))))
    return values[k]


def run(cmd, stdin_bytes):
    p = subprocess.run(cmd, input=stdin_bytes, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if p.returncode != 0:
        sys.stderr.write(p.stderr.decode(errors="replace"))
        raise SystemExit("command failed: %s" % " ".join(cmd))
    out = [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
    errors = [o for o in out if "error" in o]
    if errors:
        raise SystemExit("%s: %d requests failed, first: %s" % (cmd[0], len(errors), errors[0]))
    # Result lines only (the reference also prints a {"loaded_s": ...} line).
    return [o for o in out if "id" in o and "eval_us" in o]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--markdown", help="append a results table to this file")
    ap.add_argument("--pgo", action="store_true",
                    help="also measure the profile-guided build of scripts/pgo-build "
                         "(built unless --no-build; PALISADE_PGO_DIR, default target/pgo)")
    args = ap.parse_args()

    python = os.environ.get("PALISADE_PYTHON") or os.path.join(ROOT, ".tools", "venv", "bin", "python")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "palisade-cli"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    palisade = os.path.join(target, "release", "palisade")
    pgo_dir = os.environ.get("PALISADE_PGO_DIR") or os.path.join(ROOT, "target", "pgo")
    if args.pgo and not args.no_build:
        subprocess.run([os.path.join(ROOT, "scripts", "pgo-build")], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    palisade_pgo = os.path.join(pgo_dir, "release", "palisade")

    def corpus(seed):
        out = subprocess.run([sys.executable, os.path.join(ROOT, "integration", "corpus", "generate.py"),
                              "--count", str(args.count), "--seed", str(seed)],
                             stdout=subprocess.PIPE, check=True).stdout
        return [json.loads(l) for l in out.decode().splitlines()]

    requests = corpus(7)
    warmup = corpus(8)

    # The engines take the request fields only (the corpus also labels attacks).
    def wire(reqs):
        return "".join(json.dumps({k: v for k, v in q.items() if k != "attack"}) + "\n" for q in reqs)

    # Warm-up pass over other requests (not counted), then the measured pass.
    stdin = (wire(warmup) + wire(requests)).encode()

    with tempfile.TemporaryDirectory() as d:
        rs = flat_ruleset(d)
        # Best of three: the whole `palisade lint` process (read, parse, compile).
        lint_s, lint_rss_mb = float("inf"), 0.0
        for _ in range(3):
            t0 = time.perf_counter()
            proc = subprocess.Popen([palisade, "lint", "--ruleset", rs], stdout=subprocess.DEVNULL)
            _, status, usage = os.wait4(proc.pid, 0)
            lint_s = min(lint_s, time.perf_counter() - t0)
            lint_rss_mb = max(lint_rss_mb, usage.ru_maxrss / 1024.0)
            if status != 0:
                raise SystemExit("palisade lint failed on the CRS")

        engines = [
            ("Palisade", [palisade, "eval", "--ruleset", rs]),
            ("Palisade, no verdict cache", [palisade, "eval", "--no-verdict-cache", "--ruleset", rs]),
        ] + ([("Palisade, PGO build", [palisade_pgo, "eval", "--ruleset", rs])] if args.pgo else []) + [
            ("ModSecurity v3.0.15",
             [python, os.path.join(ROOT, "integration", "modsec", "modsec_eval.py"), "--ruleset", rs]),
        ]
        # rounds[name] = one result list per round (every round starts a new
        # process: compile, warm-up, measured pass).
        rounds = {name: [] for name, _ in engines}
        for r in range(max(1, args.rounds)):
            order = engines if r % 2 == 0 else engines[::-1]
            for name, cmd in order:
                rounds[name].append(run(cmd, stdin)[len(warmup):])

    def per_request_median(name):
        runs = rounds[name]
        rows = [dict(r) for r in runs[0]]
        for i, row in enumerate(rows):
            row["eval_us"] = statistics.median(run_rows[i]["eval_us"] for run_rows in runs)
        return rows

    pal = per_request_median("Palisade")
    pal_nc = per_request_median("Palisade, no verdict cache")
    msc = per_request_median("ModSecurity v3.0.15")
    variants = [("Palisade", pal), ("Palisade, no verdict cache", pal_nc)]
    if args.pgo:
        variants.append(("Palisade, PGO build", per_request_median("Palisade, PGO build")))

    def stats(rows, pred=lambda r: True):
        v = [r["eval_us"] for r, q in zip(rows, requests) if pred(q)]
        return statistics.median(v), pct(v, 99), len(v)

    lines = []
    lines.append("| requests | engine | median µs | p99 µs | n |")
    lines.append("|---|---|---:|---:|---:|")
    results = {}
    for label, pred in [("all", lambda q: True), ("benign", lambda q: not q["attack"]),
                        ("attack", lambda q: q["attack"])]:
        for name, rows in variants + [("ModSecurity v3.0.15", msc)]:
            med, p99, n = stats(rows, pred)
            results[(label, name)] = (med, p99)
            lines.append("| %s | %s | %.1f | %.1f | %d |" % (label, name, med, p99, n))
    ratio_lines = []
    for r in range(len(rounds["Palisade"])):
        med = {name: statistics.median(x["eval_us"] for x in runs[r]) for name, runs in rounds.items()}
        m = med["ModSecurity v3.0.15"]
        ratio_lines.append("- round %d, all: ModSecurity %.1f µs; %s" % (r + 1, m, "; ".join(
            "%s %.1f µs: %.1fx" % (name, med[name], m / med[name]) for name, _ in variants)))
    # On a shared machine a round is slowed, not sped up, by other load: the
    # quietest round of each engine (the lowest of its round medians) is
    # the closest to its own speed.
    m_best = min(statistics.median(x["eval_us"] for x in run) for run in rounds["ModSecurity v3.0.15"])
    ratio_lines.append("- quietest rounds, all: ModSecurity %.1f µs; %s" % (m_best, "; ".join(
        "%s %.1f µs: %.1fx" % (name, b, m_best / b) for name, b in (
            (name, min(statistics.median(x["eval_us"] for x in run) for run in rounds[name]))
            for name, _ in variants))))
    for engine, _ in variants:
        for label in ["all", "benign", "attack"]:
            pm, pp = results[(label, engine)]
            mm, mp = results[(label, "ModSecurity v3.0.15")]
            ratio_lines.append("- %s, %s: median %.1fx faster, p99 %.1fx faster" % (engine, label, mm / pm, mp / pp))
    # Every round of an engine gives the same results (only times differ).
    stable = all(
        [(a["status"], sorted(a["rule_ids"]), a["anomaly_score"]) for a in runs[0]]
        == [(a["status"], sorted(a["rule_ids"]), a["anomaly_score"]) for a in other]
        for runs in rounds.values() for other in runs[1:])
    def same(x, y):
        return sum(1 for a, b in zip(x, y)
                   if (a["status"], sorted(a["rule_ids"]), a["anomaly_score"])
                   == (b["status"], sorted(b["rule_ids"]), b["anomaly_score"]))
    same_without = same(pal, pal_nc)
    agree = sum(1 for a, b in zip(pal, msc) if (a["status"] == 403) == (b["status"] == 403))
    same_ids = sum(1 for a, b in zip(pal, msc) if sorted(a["rule_ids"]) == sorted(b["rule_ids"]))
    blocked = sum(1 for a in pal if a["status"] == 403)
    fp = sum(1 for a, q in zip(pal, requests) if a["status"] == 403 and not q["attack"])
    summary = [
        "CRS compile (palisade lint, whole process): %.2f s, max RSS %.1f MB" % (lint_s, lint_rss_mb),
        "decisions agree with ModSecurity: %d/%d; identical rule id sets: %d/%d" % (agree, len(pal), same_ids, len(pal)),
        "Palisade with and without the verdict cache: identical results %d/%d" % (same_without, len(pal)),
    ] + ["Palisade, plain and PGO builds: identical results %d/%d" % (same(pal, rows), len(pal))
         for _, rows in variants[2:]] + [
        "every round of each engine gave the same results: %s (%d rounds; times: per request, the median of its rounds)" % (
            "yes" if stable else "NO", len(rounds["Palisade"])),
        "Palisade blocked %d/%d (attacks in corpus: %d; benign blocked: %d)" % (
            blocked, len(pal), sum(1 for q in requests if q["attack"]), fp),
    ]
    text = "\n".join(lines + [""] + ratio_lines + [""] + summary)
    print(text)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
