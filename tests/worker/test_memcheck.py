#!/usr/bin/env python3
"""test_memcheck: stepmark-worker's startup check that its slots' KV caches fit in memory.
A configuration whose slots x (max_prompt_tokens + max_new_tokens) positions of KV cache are
far beyond any machine's memory must be refused (exit status 2, a message naming the memory);
with worker.on_memory_short: lower_slots the worker lowers its slots instead and starts (it is
then stopped with SIGTERM, as it waits for a broker that does not exist).
    test_memcheck.py STEPMARK-WORKER MODEL"""
import os
import signal
import subprocess
import sys
import tempfile
import time


def config(d, on_short, slots, prompt, new, kv="f16"):
    path = os.path.join(d, f"{on_short}-{kv}-{slots}.yaml")
    with open(path, "w") as f:
        f.write(f"""worker:
  broker_endpoint: tcp://127.0.0.1:9
  dtype: f32
  kv_dtype: {kv}
  slots: {slots}
  max_prompt_tokens: {prompt}
  max_new_tokens: {new}
  on_memory_short: {on_short}
""")
    return path


def main():
    worker, model = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as d:
        # 1024 slots x 2M positions: petabytes for any model
        cfg = config(d, "refuse", 1024, 1048576, 1048576)
        p = subprocess.run([worker, "--config", cfg, "--model", model], capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 2, (p.returncode, p.stderr)
        assert "memory too short" in p.stderr and "GiB" in p.stderr, p.stderr
        assert "1024 slots" in p.stderr and "f16 KV cache" in p.stderr, p.stderr

        # the same with the 8-bit cache: still far too much, and named in the message
        cfg = config(d, "refuse", 1024, 1048576, 1048576, kv="q8_0")
        p = subprocess.run([worker, "--config", cfg, "--model", model], capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 2, (p.returncode, p.stderr)
        assert "q8_0 KV cache" in p.stderr, p.stderr

        # lower_slots: some slots of 2M positions fit in 1024 slots' place (a small model's
        # cache is a few KiB per position), or none fits and it refuses: both are accepted
        # outcomes of the check, but it must never start with all 1024 slots
        cfg = config(d, "lower_slots", 1024, 1048576, 1048576)
        q = subprocess.Popen([worker, "--config", cfg, "--model", model],
                             stderr=subprocess.PIPE, text=True)
        line = ""
        deadline = time.time() + 120
        while time.time() < deadline:
            line = q.stderr.readline()
            if not line or "stepmark-worker: memory too short" in line:
                break
        if q.poll() is None:
            q.send_signal(signal.SIGTERM)
            try:
                q.wait(timeout=60)
            except subprocess.TimeoutExpired:
                q.kill()
                q.wait()
        assert "memory too short" in line, line
        if "lowered to" in line:
            n = int(line.rsplit("lowered to", 1)[1].strip())
            assert 1 <= n < 1024, line
        else:  # not one slot fits: refused
            assert q.returncode == 2, (q.returncode, line)

        # an ordinary configuration passes the check (it fails later, on other grounds, or
        # runs until stopped): no memory message
        cfg = config(d, "refuse", 2, 4096, 4096)
        q = subprocess.Popen([worker, "--config", cfg, "--model", model],
                             stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        if q.poll() is None:
            q.send_signal(signal.SIGTERM)
        _, err = q.communicate(timeout=120)
        assert "memory too short" not in err, err
    print("memcheck ok")


if __name__ == "__main__":
    main()
