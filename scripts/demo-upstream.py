#!/usr/bin/env python3
"""A small demo upstream for the standalone demo: answers every request with
200 and a short JSON description of what it received (what a protected
service would see once Palisade let the request through).

Usage: demo-upstream.py [HOST:PORT]   (default 127.0.0.1:18080)
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    server_version = "palisade-demo-upstream/1"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        doc = {
            "service": self.headers.get("Host", ""),
            "method": self.command,
            "path": self.path,
            "request_id": self.headers.get("x-request-id", ""),
            "body_bytes": len(body),
        }
        out = (json.dumps(doc) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _answer

    def log_message(self, fmt, *args):
        sys.stderr.write("upstream: %s\n" % (fmt % args))


def main():
    host, _, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:18080").rpartition(":")
    ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler).serve_forever()


if __name__ == "__main__":
    main()
