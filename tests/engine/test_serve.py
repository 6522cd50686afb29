#!/usr/bin/env python3
"""test_serve: `stepmark-engine serve` through the `openai` Python client (and raw HTTP for what
the client cannot send): /v1/models, completions from text and token ids, chat, streaming equal
to the whole answer, seeds, stop strings, logprobs, concurrent requests batched (seen in
/metrics), the deterministic option alone vs batched, backpressure (429), cancelling a stream,
and errors in OpenAI's shape (bad JSON, unknown model, too many tokens, wrong API key, body too
large, unsupported options). Usage: test_serve.py TOOL MODEL_DIR."""
import concurrent.futures
import json
import re
import subprocess
import sys
import time

import openai
import requests

TOOL, MODEL = sys.argv[1], sys.argv[2]
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg, flush=True)


class Server:
    def __init__(self, *args):
        self.p = subprocess.Popen([TOOL, "serve", "--model", MODEL, "--port", "0", *args],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        if not line.strip().isdigit():
            self.p.kill()
            raise SystemExit(f"serve did not start: {self.p.stderr.read()}")
        self.base = f"http://127.0.0.1:{int(line)}"

    def client(self, key="none"):
        return openai.OpenAI(base_url=self.base + "/v1", api_key=key, max_retries=0,
                             timeout=120)

    def metrics(self):
        text = requests.get(self.base + "/metrics", timeout=30).text
        return {m.group(1): float(m.group(2))
                for m in re.finditer(r"^(stepmark_serve_[a-z_]+) ([0-9.e+]+)$", text, re.M)}

    def stop(self):
        self.p.terminate()
        rc = self.p.wait(timeout=60)
        check(rc == 0, f"serve exited {rc} on SIGTERM: {self.p.stderr.read()[-500:]}")


def error_shape(r, status, code=None):
    check(r.status_code == status, f"status {r.status_code}, expected {status}: {r.text[:200]}")
    try:
        e = r.json()["error"]
        check(isinstance(e["message"], str) and e["message"] and "type" in e and "param" in e
              and "code" in e, f"error shape: {r.text[:200]}")
        if code:
            check(e["code"] == code, f"error code {e['code']}, expected {code}")
    except (ValueError, KeyError, TypeError):
        check(False, f"not OpenAI's error shape: {r.text[:200]}")


def test_basics(s, c):
    models = c.models.list()
    check([m.id for m in models.data] == ["model"], f"models: {models}")
    r = c.completions.create(model="model", prompt="The answer is", max_tokens=12, seed=3,
                             extra_body={"ignore_eos": True})
    check(r.object == "text_completion" and r.choices[0].finish_reason == "length",
          f"completion: {r}")
    check("stop_reason" in (r.choices[0].model_extra or {}) and
          r.choices[0].model_extra["stop_reason"] is None, f"stop_reason at the length limit: {r}")
    check(r.usage.completion_tokens == 12 and r.usage.prompt_tokens == 3 and
          r.usage.total_tokens == 15, f"usage: {r.usage}")
    check(r.system_fingerprint.startswith("stepmark-engine-"), f"fingerprint {r}")
    tok = subprocess.run([TOOL, "tokenize", "--tokenizer", MODEL], input="The answer is",
                         capture_output=True, text=True, check=True).stdout.split()
    ids = c.completions.create(model="model", prompt=[int(x) for x in tok], max_tokens=12, seed=3,
                               extra_body={"ignore_eos": True})
    check(ids.choices[0].text == r.choices[0].text, "token-id prompt != text prompt")
    again = c.completions.create(model="model", prompt="The answer is", max_tokens=12, seed=3,
                                 extra_body={"ignore_eos": True})
    check(again.choices[0].text == r.choices[0].text, "same seed, other text")
    # the same sampling as `stepmark-engine run` (the engine's own generation loop)
    run = subprocess.run([TOOL, "run", "--model", MODEL, "--prompt", "The answer is",
                          "--temperature", "0.7", "--top-p", "1", "--top-k", "0", "--min-p", "0",
                          "--repeat-penalty", "1", "--seed", "5", "--max-tokens", "12"],
                         capture_output=True, text=True, check=True).stdout
    ours = c.completions.create(model="model", prompt="The answer is", max_tokens=12, seed=5,
                                temperature=0.7).choices[0].text
    check(run == ours + "\n", f"serve {ours!r} vs run {run!r}")
    # a prompt longer than one step's prefill chunk (512 ids) is read over several steps
    long = c.completions.create(model="model", prompt=" word" * 1200, max_tokens=4,
                                extra_body={"ignore_eos": True})
    check(long.usage.prompt_tokens == 1200 and long.usage.completion_tokens == 4,
          f"long prompt usage: {long.usage}")
    texts = {c.completions.create(model="model", prompt="The answer is", max_tokens=12, seed=k,
                                  extra_body={"ignore_eos": True}).choices[0].text
             for k in range(4)}
    check(len(texts) > 1, "four seeds gave one text")


def test_chat(s, c):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]
    r = c.chat.completions.create(model="model", messages=msgs, max_tokens=20, seed=11,
                                  temperature=0.9, extra_body={"ignore_eos": True})
    check(r.object == "chat.completion" and r.choices[0].message.role == "assistant",
          f"chat: {r}")
    check(r.usage.completion_tokens == 20, f"chat usage {r.usage}")
    parts, finish, usage = [], None, None
    stream = c.chat.completions.create(model="model", messages=msgs, max_tokens=20, seed=11,
                                       temperature=0.9, stream=True,
                                       stream_options={"include_usage": True},
                                       extra_body={"ignore_eos": True})
    for ch in stream:
        if ch.usage:
            usage = ch.usage
        for choice in ch.choices:
            parts.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    check("".join(parts) == r.choices[0].message.content,
          f"stream {''.join(parts)!r} vs {r.choices[0].message.content!r}")
    check(finish == "length" and usage and usage.completion_tokens == 20,
          f"stream end: {finish} {usage}")


def test_stop(s, c):
    base = c.completions.create(model="model", prompt="Once upon a time", max_tokens=40,
                                temperature=0, extra_body={"ignore_eos": True}).choices[0].text
    k = next((i for i in range(len(base) // 3, len(base) - 3)
              if base.find(base[i:i + 3]) == i and base[i:i + 3].strip()), None)
    check(k is not None, f"no stop string candidate in {base!r}")
    if k is None:
        return
    stop = base[k:k + 3]
    r = c.completions.create(model="model", prompt="Once upon a time", max_tokens=40,
                             temperature=0, stop=[stop, "\u00a7never\u00a7"],
                             extra_body={"ignore_eos": True})
    check(r.choices[0].text == base[:k] and r.choices[0].finish_reason == "stop",
          f"stop {stop!r}: {r.choices[0].text!r} vs {base[:k]!r}")
    why = (r.choices[0].model_extra or {}).get("stop_reason")
    check(why == stop, f"stop_reason {why!r}, expected the matched stop string {stop!r}")
    streamed = "".join(ch.choices[0].text for ch in c.completions.create(
        model="model", prompt="Once upon a time", max_tokens=40, temperature=0, stop=stop,
        stream=True, extra_body={"ignore_eos": True}) if ch.choices)
    check(streamed == base[:k], f"streamed stop: {streamed!r} vs {base[:k]!r}")


def test_logprobs(s, c):
    r = c.completions.create(model="model", prompt="Numbers:", max_tokens=10, temperature=0,
                             logprobs=3, extra_body={"ignore_eos": True})
    lp = r.choices[0].logprobs
    check(len(lp.tokens) == 10 and len(lp.token_logprobs) == 10 and len(lp.top_logprobs) == 10,
          f"logprobs lengths: {lp}")
    check("".join(lp.tokens) == r.choices[0].text or "\ufffd" in r.choices[0].text,
          "logprob tokens do not spell the text")
    for t, x, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        check(x <= 0 and len(top) == 3 and abs(max(top.values()) - x) < 1e-5,
              f"greedy token {t!r} {x} not the top of {top}")
    r = c.chat.completions.create(model="model", messages=[{"role": "user", "content": "x"}],
                                  max_tokens=5, logprobs=True, top_logprobs=2, seed=1,
                                  extra_body={"ignore_eos": True})
    content = r.choices[0].logprobs.content
    check(len(content) == 5 and all(len(t.top_logprobs) == 2 and t.logprob <= 0
                                    for t in content), f"chat logprobs: {content}")


def test_batching(s, c):
    """Requests run batched; a deterministic one gives bitwise the same log-probabilities (and
    text) alone and batched with long prompts, whose rows would take the fast kernels' other
    path (BLAS for 32+ rows) if the step were not deterministic."""
    def one(i, det=False):
        r = c.completions.create(
            model="model", prompt="Request 0:" if i == 0 else f"Request {i}:" + " word" * 300,
            max_tokens=100 if i == 0 else 60, temperature=0.8, seed=100 + i, logprobs=1,
            extra_body={"ignore_eos": True, "deterministic": det}).choices[0]
        return r.text, r.logprobs.token_logprobs
    alone = one(0, det=True)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futs = [pool.submit(one, 0, True)] + [pool.submit(one, i) for i in range(1, 4)]
        results = [f.result() for f in futs]
    check(results[0] == alone, "deterministic request changed when batched: " +
          str(sum(a != b for a, b in zip(results[0][1], alone[1]))) + " log-probabilities")
    check(len({r[0] for r in results}) == 4, "concurrent requests gave equal texts")
    m = s.metrics()
    check(m.get("stepmark_serve_active_sequences_max", 0) > 1 and
          m.get("stepmark_serve_batched_steps_total", 0) > 0, f"no batching in metrics: {m}")
    check(m.get("stepmark_serve_request_duration_seconds_count", 0) >= 5, f"latency count {m}")


def wait_idle(s):
    """Waits until no request runs or waits (the server notices closed clients by itself)."""
    for _ in range(600):
        m = s.metrics()
        if m["stepmark_serve_active_sequences"] == 0 and m["stepmark_serve_queue_depth"] == 0:
            break
        time.sleep(0.1)
    check(m["stepmark_serve_active_sequences"] == 0, f"closed requests still running: {m}")
    return m


def test_abandoned(s, c):
    """A client that gives up on a long non-streamed request frees its slot early."""
    try:
        requests.post(s.base + "/v1/completions", timeout=1,
                      json={"prompt": "Go", "max_tokens": 4000, "ignore_eos": True})
        check(False, "4000 tokens in under a second")
    except requests.exceptions.ReadTimeout:
        pass
    m = wait_idle(s)
    check(m["stepmark_serve_generation_tokens_total"] < 4000, f"abandoned request ran on: {m}")


def test_backpressure(s, c):
    """--slots 1 --queue 1: one running, one waiting, the third is refused with 429."""
    long = dict(model="model", prompt="Go", max_tokens=4000, stream=True,
                extra_body={"ignore_eos": True})
    first = c.completions.create(**long)
    next(iter(first))  # running now
    second = c.completions.create(**long)  # waits in the queue
    try:
        c.completions.create(model="model", prompt="Go", max_tokens=4)
        check(False, "no 429 with the queue full")
    except openai.RateLimitError as e:
        check(e.status_code == 429, f"429: {e}")
    first.close()
    second.close()
    wait_idle(s)
    r = c.completions.create(model="model", prompt="Go", max_tokens=4)
    check(r.usage.completion_tokens >= 1, "no answer after the streams were cancelled")


def test_errors(s, c):
    error_shape(requests.post(s.base + "/v1/completions", data="{bad", timeout=30), 400,
                "invalid_json")
    error_shape(requests.post(s.base + "/v1/completions", data="x" * 2_000_000, timeout=30), 413)
    error_shape(requests.get(s.base + "/v1/nothing", timeout=30), 404)
    for kwargs, exc, code in [
        (dict(model="gpt-4", prompt="a"), openai.NotFoundError, "model_not_found"),
        (dict(model="model", prompt="a", max_tokens=10_000), openai.BadRequestError,
         "context_length_exceeded"),
        (dict(model="model", prompt="a", n=2), openai.BadRequestError, "invalid_value"),
        (dict(model="model", prompt="a", echo=True), openai.BadRequestError,
         "unsupported_parameter"),
        (dict(model="model", prompt="a", temperature=5), openai.BadRequestError,
         "invalid_value")]:
        try:
            c.completions.create(**kwargs)
            check(False, f"{kwargs} accepted")
        except exc as e:
            check(e.code == code, f"{kwargs}: code {e.code}, expected {code}")


def test_api_key():
    p = subprocess.run([TOOL, "serve", "--model", MODEL, "--port", "0", "--address", "0.0.0.0"],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 2 and "--api-key" in p.stderr, f"non-loopback without key: {p}")
    s = Server("--api-key", "s3cret", "--slots", "1")
    try:
        try:
            s.client("wrong").models.list()
            check(False, "wrong key accepted")
        except openai.AuthenticationError as e:
            check(e.status_code == 401 and e.code == "invalid_api_key", f"401: {e}")
        check(requests.get(s.base + "/health", timeout=30).status_code == 200, "health")
        r = s.client("s3cret").chat.completions.create(
            model="model", messages=[{"role": "user", "content": "hi"}], max_tokens=3)
        check(r.choices[0].message.content is not None, "right key refused")
    finally:
        s.stop()


def main():
    s = Server("--slots", "4", "--threads", "1")
    try:
        c = s.client()
        for t in (test_basics, test_chat, test_stop, test_logprobs, test_batching, test_errors):
            t(s, c)
    finally:
        s.stop()
    s = Server("--slots", "1", "--queue", "1", "--threads", "1")
    try:
        test_abandoned(s, s.client())
        test_backpressure(s, s.client())
    finally:
        s.stop()
    test_api_key()
    if failures:
        print(json.dumps(failures, indent=1))
        sys.exit(1)
    print("serve: all checks passed")


main()
