#!/usr/bin/env python3
"""test_cuda_plugin: how stepmark-engine finds and loads the CUDA plugin (libstepmark-cuda.so),
and its errors, on any machine (a GPU is not needed):
  - SM_CUDA_PLUGIN naming a missing file: run, logits and bench --device cuda exit 1 with a
    message that the plugin was not found and lists where it looked;
  - a library that is not the plugin (no entry point), and a plugin of another ABI: clear
    errors, no crash;
  - the real plugin (when this build has one) found beside the program (build/lib/stepmark)
    without SM_CUDA_PLUGIN: on a machine without a GPU `run --device cuda` exits 1 with
    "no CUDA device"; with a GPU it generates.
    test_cuda_plugin.py STEPMARK-ENGINE MODEL NO-ENTRY.so OTHER-ABI.so REAL-PLUGIN|none"""
import os
import subprocess
import sys


def engine(tool, args, plugin):
    env = dict(os.environ)
    env.pop("SM_CUDA_PLUGIN", None)
    if plugin is not None:
        env["SM_CUDA_PLUGIN"] = plugin
    p = subprocess.run([tool] + args, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode >= 0, f"killed by signal {-p.returncode}: {p.stderr}"
    return p


def main():
    tool, model, no_entry, other_abi, real = sys.argv[1:6]
    run = ["run", "--model", model, "--prompt-ids", "1 2 3", "--max-tokens", "4", "--ids",
           "--device", "cuda"]
    logits = ["logits", "--model", model, "--ids", "1 2 3", "--device", "cuda"]
    bench = ["bench", "--model", model, "--device", "cuda", "--repeats", "1"]

    missing = "/nonexistent/stepmark/libstepmark-cuda.so"
    for args in (run, logits, bench):
        p = engine(tool, args, missing)
        assert p.returncode == 1, (args[0], p.returncode, p.stderr)
        assert "CUDA plugin libstepmark-cuda.so was not found" in p.stderr, p.stderr
        assert missing in p.stderr and "SM_CUDA_PLUGIN" in p.stderr, p.stderr
        assert p.stdout == "", p.stdout

    p = engine(tool, run, no_entry)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "not a stepmark CUDA plugin (no sm_cuda_plugin_api function)" in p.stderr, p.stderr

    p = engine(tool, logits, other_abi)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "ABI 9999, this program needs ABI" in p.stderr, p.stderr

    # not a shared library at all: dlopen's reason is shown
    p = engine(tool, logits, model + "/config.json")
    assert p.returncode == 1 and "config.json (" in p.stderr, p.stderr

    # a bad --device is a usage error
    p = engine(tool, ["logits", "--model", model, "--ids", "1", "--device", "tpu"], None)
    assert p.returncode == 2 and "--device is cpu or cuda" in p.stderr, p.stderr

    if real == "none":
        # no plugin in this build: the default places are listed
        p = engine(tool, run, None)
        assert p.returncode == 1, (p.returncode, p.stderr)
        assert "lib/stepmark/libstepmark-cuda.so" in p.stderr, p.stderr
        print("ok (no CUDA plugin in this build)")
        return
    assert os.path.exists(real), real
    p = engine(tool, run, None)  # found beside the program
    if p.returncode == 0:
        ids = p.stdout.split()
        assert 1 <= len(ids) <= 4 and all(x.isdigit() for x in ids), p.stdout
        print("ok (ran on a GPU)")
    else:
        assert p.returncode == 1, (p.returncode, p.stderr)
        assert "no CUDA device" in p.stderr, p.stderr
        assert "not found" not in p.stderr, p.stderr
        print("ok (no CUDA device:", p.stderr.strip(), ")")


if __name__ == "__main__":
    main()
