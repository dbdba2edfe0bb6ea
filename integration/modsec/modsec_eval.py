#!/usr/bin/env python3
"""ModSecurity v3 reference evaluator with the same contract as `palisade eval`.

Reads JSON lines on stdin ({"id", "method", "uri", "version"?, "headers",
"body_b64"?, "remote_addr"?}) and writes one JSON line per request:
{"id", "status", "rule_ids", "anomaly_score": null, "eval_us"}. eval_us covers
the libmodsecurity calls for phases 1-2 (connection, URI, headers, body),
measured around the in-process calls with time.perf_counter_ns.

Usage: modsec_eval.py --ruleset FILE [--ruleset FILE ...] [--mode On|DetectionOnly]
Rulesets load in the order given (a directory loads modsecdefault.conf,
crs-setup.conf, then *.conf sorted, as Palisade does).
"""
import argparse
import base64
import json
import os
import re
import sys
import time

from libmodsecurity import ModSecurity, RulesSet, Transaction


def ruleset_files(path):
    if os.path.isfile(path):
        return [path]
    names = sorted(n for n in os.listdir(path) if n.endswith(".conf"))
    first = [n for n in ("modsecdefault.conf", "crs-setup.conf") if n in names]
    rest = [n for n in names if n not in first]
    return [os.path.join(path, n) for n in first + rest]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ruleset", action="append", required=True)
    ap.add_argument("--mode", default=None, help="override SecRuleEngine")
    args = ap.parse_args()

    msc = ModSecurity()
    msc.set_connector_information("palisade-reference v0.1")
    messages = []
    msc.set_rule_message_callback(lambda m: messages.append(m))
    rules = RulesSet()
    t0 = time.perf_counter()
    for p in args.ruleset:
        for f in ruleset_files(p):
            if rules.load_from_uri(f) < 0:
                print(json.dumps({"error": rules.get_parser_error(), "file": f}), flush=True)
                return 64
    if args.mode:
        if rules.load("SecRuleEngine %s" % args.mode) < 0:
            print(json.dumps({"error": rules.get_parser_error()}), flush=True)
            return 64
    print(json.dumps({"loaded_s": time.perf_counter() - t0}), file=sys.stderr, flush=True)

    out = sys.stdout
    for lineno, line in enumerate(sys.stdin, 1):
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
        except ValueError as e:
            out.write(json.dumps({"error": "line %d: %s" % (lineno, e)}) + "\n")
            continue
        body = base64.b64decode(req.get("body_b64") or "")
        version = req.get("version") or "HTTP/1.1"
        http_version = version.split("/", 1)[1] if "/" in version else version
        addr = req.get("remote_addr") or "127.0.0.1:40000"
        host, _, port = addr.rpartition(":")
        messages.clear()
        start = time.perf_counter_ns()
        tx = Transaction(msc, rules)
        tx.process_connection(host, int(port or 0), "127.0.0.1", 80)
        tx.process_uri(req["uri"], req.get("method", "GET"), http_version)
        for name, value in req.get("headers", []):
            tx.add_request_header(name, value)
        tx.process_request_headers()
        it = tx.intervention()
        if not (it and it.disruptive):
            if body:
                tx.append_request_body(body)
            tx.process_request_body()
            it = tx.intervention()
        elapsed_us = (time.perf_counter_ns() - start) / 1000.0
        tx.process_logging()
        status = it.status if (it and it.disruptive) else 200
        ids = []
        for m in messages:
            if m.rule_id not in ids:
                ids.append(m.rule_id)
        # The disruptive rule is reported through the intervention's log line.
        if it and it.disruptive and it.log:
            for rid in re.findall(r'\[id "(\d+)"\]', it.log):
                if int(rid) not in ids:
                    ids.append(int(rid))
        out.write(json.dumps({
            "id": req.get("id"),
            "status": status,
            "rule_ids": ids,
            "anomaly_score": None,
            "eval_us": round(elapsed_us, 2),
        }) + "\n")
    out.flush()
    msc.set_rule_message_callback(None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
