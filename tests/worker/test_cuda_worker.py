#!/usr/bin/env python3
"""test_cuda_worker: stepmark-worker with worker.device: cuda on a machine where it cannot run
refuses to start with a clear error and a non-zero exit, and says that device cuda is
unverified:
  - SM_CUDA_PLUGIN naming a missing file: "CUDA plugin ... was not found";
  - the real plugin of this build (when there is one), found beside the program, without a
    GPU: "no CUDA device". On a machine with a GPU the worker starts instead (it is stopped
    once it logs its "cuda device", as it waits for a broker that does not exist).
    test_cuda_worker.py STEPMARK-WORKER MODEL REAL-PLUGIN|none"""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time


def start(worker, cfg, model, plugin):
    env = dict(os.environ)
    env.pop("SM_CUDA_PLUGIN", None)
    if plugin is not None:
        env["SM_CUDA_PLUGIN"] = plugin
    q = subprocess.Popen([worker, "--config", cfg, "--model", model], stderr=subprocess.PIPE,
                         text=True, env=env)
    lines = []
    started = threading.Event()

    def read():
        for line in q.stderr:
            lines.append(line)
            if "cuda device" in line:  # the model is on the GPU: the worker runs
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while q.poll() is None and not started.is_set() and time.monotonic() < deadline:
        started.wait(0.2)
    running = q.poll() is None
    if running:  # started on a GPU (or still loading after 60 s): stop it
        q.send_signal(signal.SIGTERM)
    q.wait(timeout=60)
    reader.join(timeout=60)
    err = "".join(lines)
    if running:
        return None, err
    assert q.returncode >= 0, f"killed by signal {-q.returncode}: {err}"
    return q.returncode, err


def main():
    worker, model, real = sys.argv[1:4]
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "cuda.yaml")
        with open(cfg, "w") as f:
            f.write("worker:\n  broker_endpoint: tcp://127.0.0.1:9\n  device: cuda\n"
                    "  slots: 2\n  max_prompt_tokens: 1024\n  max_new_tokens: 256\n")
        rc, err = start(worker, cfg, model, "/nonexistent/libstepmark-cuda.so")
        assert rc not in (None, 0), (rc, err)
        assert "CUDA plugin libstepmark-cuda.so was not found" in err, err
        assert "/nonexistent/libstepmark-cuda.so" in err, err
        assert "UNVERIFIED" in err, err

        if real == "none":
            print("ok (no CUDA plugin in this build)")
            return
        rc, err = start(worker, cfg, model, None)
        if rc is None:
            assert "cuda device" in err, err
            print("ok (started on a GPU)")
            return
        assert rc != 0, err
        assert "no CUDA device" in err and "worker.device cuda" in err, err
        assert "not found" not in err, err
        print("ok (no CUDA device)")


if __name__ == "__main__":
    main()
