#!/usr/bin/env python3
"""scripted_openai: a small OpenAI-compatible server that answers from a script, for end-to-end
tests whose model output must be exact (criteria_e2e: a verdict block with CRITERION lines,
which no small random model writes). Written from the public OpenAI API reference
(POST /v1/completions, POST /v1/chat/completions, GET /v1/models), independent of stepmark.

The script is a JSON file: {"model": NAME, "fingerprint": FP, "responses": [TEXT, ...]}. Each
POST to /v1/completions or /v1/chat/completions takes the next TEXT, in the order the requests
arrive (the test sends them one at a time); when the script is used up the answer is HTTP 400.
The request's "stop" strings apply as the API describes them: the text ends before the first
stop string found, with finish_reason "stop" (the vLLM extension include_stop_str_in_output
keeps the stop string in the text); otherwise finish_reason is "stop" too, or "length" when
the request's max_tokens is smaller than the text's whitespace-separated words.
GET /_script/stats answers {"served", "requests": [{"path", "prompt_kind", "n_prompt",
"max_tokens", "stop", "seed"}]} so the test can check what was asked.
Prints "ready PORT" once listening. Usage: scripted_openai.py PORT SCRIPT.json"""
import http.server
import json
import sys
import threading
import time

port = int(sys.argv[1])
with open(sys.argv[2], encoding="utf-8") as f:
    script = json.load(f)
lock = threading.Lock()
served = 0
seen = []


def take(stop, include_stop, max_tokens):
    """The next scripted text, cut at its first stop string; (text, finish_reason) or None."""
    global served
    with lock:
        if served >= len(script["responses"]):
            return None
        text = script["responses"][served]
        served += 1
    cut = None
    for s in stop:
        at = text.find(s)
        if at >= 0 and (cut is None or at < cut[0]):
            cut = (at, s)
    if cut:
        return text[: cut[0]] + (cut[1] if include_stop else ""), "stop"
    words = text.split()
    if max_tokens is not None and len(words) > max_tokens:
        return " ".join(words[:max_tokens]), "length"
    return text, "stop"


def prompt_size(prompt):
    if isinstance(prompt, list):
        return ("ids" if all(isinstance(x, int) for x in prompt) else "list"), len(prompt)
    return "text", len(str(prompt))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def reply(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, message):
        self.reply(status, {"error": {"message": message, "type": "invalid_request_error",
                                      "param": None, "code": None}})

    def do_GET(self):
        if self.path == "/v1/models":
            self.reply(200, {"object": "list", "data": [
                {"id": script["model"], "object": "model", "created": 0,
                 "owned_by": "scripted"}]})
        elif self.path == "/_script/stats":
            with lock:
                self.reply(200, {"served": served, "requests": list(seen)})
        else:
            self.error(404, "no route " + self.path)

    def do_POST(self):
        try:
            req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        except ValueError:
            return self.error(400, "the body is not JSON")
        chat = self.path == "/v1/chat/completions"
        if not chat and self.path != "/v1/completions":
            return self.error(404, "no route " + self.path)
        prompt = req.get("messages") if chat else req.get("prompt")
        if prompt is None:
            return self.error(400, "messages is required" if chat else "prompt is required")
        stop = req.get("stop") or []
        if isinstance(stop, str):
            stop = [stop]
        kind, n = prompt_size(prompt)
        with lock:
            seen.append({"path": self.path, "prompt_kind": kind, "n_prompt": n,
                         "max_tokens": req.get("max_tokens"), "stop": stop,
                         "seed": req.get("seed")})
        got = take(stop, bool(req.get("include_stop_str_in_output")), req.get("max_tokens"))
        if got is None:
            return self.error(400, "the script has no more responses")
        text, finish = got
        usage = {"prompt_tokens": n, "completion_tokens": max(1, len(text.split())),
                 "total_tokens": n + max(1, len(text.split()))}
        choice = {"index": 0, "finish_reason": finish, "logprobs": None}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        self.reply(200, {"id": "cmpl-scripted-%d" % served,
                         "object": "chat.completion" if chat else "text_completion",
                         "created": int(time.time()), "model": script["model"],
                         "system_fingerprint": script.get("fingerprint"),
                         "choices": [choice], "usage": usage})


srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
print("ready %d" % srv.server_address[1], flush=True)
srv.serve_forever()
