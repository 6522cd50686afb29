#!/usr/bin/env python3
"""gpu_check_hf: the transformers baseline of scripts/gpu-check: a random-weight model at the
VibeThinker-1.5B shape (tests/engine/make_model.py, bf16), then transformers generate (greedy,
exactly --gen new tokens) at batch 16, 64 and 256 with --prompt-token prompts; prints the
aggregate decode tokens/s of each (prompt time excluded by timing a 1-token generate first).

Usage: gpu_check_hf.py REPO_TOP MODEL_DIR [--prompt 1024] [--gen 1024]
"""
import argparse
import os
import subprocess
import sys
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("top")
    ap.add_argument("model_dir")
    ap.add_argument("--prompt", type=int, default=1024)
    ap.add_argument("--gen", type=int, default=1024)
    a = ap.parse_args()
    if not os.path.exists(os.path.join(a.model_dir, "config.json")):
        subprocess.run([sys.executable, os.path.join(a.top, "tests/engine/make_model.py"),
                        "--out", a.model_dir, "--hidden", "1536", "--layers", "28", "--heads",
                        "12", "--kv-heads", "2", "--intermediate", "8960", "--vocab", "151936",
                        "--tied", "--dtype", "bf16", "--max-pos", "32768"], check=True)
    model = AutoModelForCausalLM.from_pretrained(a.model_dir, torch_dtype=torch.bfloat16)
    model = model.to("cuda").eval()
    print("torch", torch.__version__, "device", torch.cuda.get_device_name(0), flush=True)
    for b in (16, 64, 256):
        ids = torch.randint(0, 151000, (b, a.prompt), device="cuda")
        kw = dict(do_sample=False, pad_token_id=0, eos_token_id=None)
        with torch.no_grad():
            torch.cuda.synchronize()
            t0 = time.time()
            model.generate(ids, max_new_tokens=1, min_new_tokens=1, **kw)
            torch.cuda.synchronize()
            t1 = time.time()
            model.generate(ids, max_new_tokens=a.gen, min_new_tokens=a.gen, **kw)
            torch.cuda.synchronize()
            t2 = time.time()
        decode = (t2 - t1) - (t1 - t0)
        print(f"transformers batch {b} prompt {a.prompt} gen {a.gen}: "
              f"decode {b * a.gen / decode:.1f} tok/s aggregate", flush=True)


if __name__ == "__main__":
    main()
