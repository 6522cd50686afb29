#!/usr/bin/env python3
"""remote_proxy: a small stand-in proxy between the worker's remote backend and an
OpenAI-compatible server, for fault injection in remote_e2e. It forwards every request to the
upstream server as it is (headers, body) and answers with the server's answer, except that the
first --fail-429 POSTs get 429 (`Retry-After: 1`) without reaching the server. It counts what
it saw: GET /_proxy/stats answers {"forwarded", "rejected_429", "max_inflight",
"auth_missing"}, where max_inflight is the most POSTs it had in flight at once.
Usage: remote_proxy.py PORT UPSTREAM_URL [--fail-429 N]"""
import argparse
import http.client
import http.server
import json
import threading
import urllib.parse

ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("upstream")
ap.add_argument("--fail-429", type=int, default=0)
args = ap.parse_args()
up = urllib.parse.urlparse(args.upstream)
lock = threading.Lock()
stats = {"forwarded": 0, "rejected_429": 0, "max_inflight": 0, "auth_missing": 0}
inflight = 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def reply(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/_proxy/stats":
            with lock:
                body = json.dumps(stats).encode()
            self.reply(200, body, [("Content-Type", "application/json")])
        else:
            self.forward(b"")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        global inflight
        with lock:
            if "Authorization" not in self.headers:
                stats["auth_missing"] += 1
            if stats["rejected_429"] < args.fail_429:
                stats["rejected_429"] += 1
                reject = True
            else:
                reject = False
                inflight += 1
                stats["max_inflight"] = max(stats["max_inflight"], inflight)
        if reject:
            err = {"error": {"message": "slow down", "type": "rate_limit_exceeded",
                             "param": None, "code": "rate_limit_exceeded"}}
            self.reply(429, json.dumps(err).encode(),
                       [("Content-Type", "application/json"), ("Retry-After", "1")])
            return
        try:
            self.forward(body)
        finally:
            with lock:
                inflight -= 1

    def forward(self, body):
        c = http.client.HTTPConnection(up.hostname, up.port, timeout=600)
        hdrs = {k: v for k, v in self.headers.items()
                if k.lower() not in ("host", "connection", "content-length")}
        c.request(self.command, self.path, body=body if self.command == "POST" else None,
                  headers=hdrs)
        r = c.getresponse()
        data = r.read()
        with lock:
            stats["forwarded"] += 1
        self.reply(r.status, data, [(k, v) for k, v in r.getheaders()
                                    if k.lower() not in ("content-length", "connection",
                                                         "transfer-encoding")])
        c.close()


srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
srv.daemon_threads = True
print("ready", flush=True)
srv.serve_forever()
