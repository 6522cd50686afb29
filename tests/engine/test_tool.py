#!/usr/bin/env python3
"""test_tool: checks the stepmark-engine run, logits and info subcommands on the generated test
models: logits against the transformers reference, greedy `run --ids` equal to the reference's
greedy tokens, same seed same output, GGUF without a tokenizer, text prompts with the real
tokenizer, stop strings, and clean failures on bad input."""
import os
import subprocess
import sys

import numpy as np

TOOL, MODELS = sys.argv[1], sys.argv[2]
failures = []


def run(*args, expect=0):
    p = subprocess.run([TOOL, *args], capture_output=True, text=True)
    if p.returncode != expect:
        failures.append(f"{args}: exit {p.returncode}, expected {expect}: {p.stderr[-500:]}")
    return p


def check(cond, msg):
    if not cond:
        failures.append(msg)


def read_ref(path):
    with open(path, "rb") as f:
        n_prompt, steps, vocab = np.fromfile(f, np.int32, 3)
        prompt = np.fromfile(f, np.int32, n_prompt)
        tokens = np.fromfile(f, np.int32, steps)
        logits = np.fromfile(f, np.float32, (steps + 1) * vocab).reshape(steps + 1, vocab)
    return prompt, tokens, logits


tiny = os.path.join(MODELS, "tiny")
prompt, tokens, ref = read_ref(os.path.join(MODELS, "tiny.ref"))
ids = " ".join(str(int(x)) for x in prompt)

p = run("info", "--model", tiny)
check("vocabulary:        512" in p.stdout and "tied embeddings:   yes" in p.stdout,
      "info: " + p.stdout)

p = run("logits", "--model", tiny, "--ids", ids)
ours = np.array([float(x) for x in p.stdout.split()], dtype=np.float64)
check(ours.shape == ref[0].shape, f"logits: {ours.shape} values")
if ours.shape == ref[0].shape:
    err = np.linalg.norm(ours - ref[0]) / np.linalg.norm(ref[0])
    check(err < 1e-4, f"logits: relative error {err}")

p = run("run", "--model", tiny, "--prompt-ids", ids, "--ids", "--temperature", "0",
        "--max-tokens", str(len(tokens)))
gen = [int(x) for x in p.stdout.split()]
ref_tokens = [int(x) for x in tokens]
eos = 511
if eos in ref_tokens:
    ref_tokens = ref_tokens[:ref_tokens.index(eos)]
check(gen == ref_tokens, f"run greedy: {gen} vs reference {ref_tokens}")

a = run("run", "--model", tiny, "--prompt-ids", ids, "--ids", "--temperature", "1.5",
        "--top-k", "50", "--seed", "9", "--max-tokens", "20").stdout
b = run("run", "--model", tiny, "--prompt-ids", ids, "--ids", "--temperature", "1.5",
        "--top-k", "50", "--seed", "9", "--max-tokens", "20").stdout
check(a == b and len(a.split()) > 0, f"same seed: {a!r} vs {b!r}")

g = run("run", "--model", os.path.join(MODELS, "tiny-f32.gguf"), "--prompt-ids", ids, "--ids",
        "--temperature", "0", "--max-tokens", "8").stdout
check(g.split() == [str(t) for t in ref_tokens[:8]], f"gguf greedy: {g!r}")
q = run("run", "--model", os.path.join(MODELS, "tiny-q8_0.gguf"), "--prompt-ids", ids, "--ids",
        "--max-tokens", "4")
check(len(q.stdout.split()) > 0, "gguf q8_0 run printed nothing")

p = run("info", "--model", os.path.join(MODELS, "tiny-q4_0.gguf"))
check("format:            gguf" in p.stdout and "stored type:       q4_0" in p.stdout,
      "info gguf: " + p.stdout)
p = run("info", "--model", tiny, "--dtype", "q8_0")
check("compute type:      q8_0" in p.stdout, "info --dtype: " + p.stdout)
# the KV cache's type: f32 for f32 weights and for the portable kernels, else f16; --kv-dtype
p = run("info", "--model", tiny)
check("kv cache:          f32, 512 bytes per position" in p.stdout, "info kv f32: " + p.stdout)
p = run("info", "--model", tiny, "--dtype", "bf16", "--isa", "portable")
check("kv cache:          f32," in p.stdout, "info kv portable: " + p.stdout)
p = run("info", "--model", tiny, "--dtype", "bf16", "--isa", "portable", "--kv-dtype", "f16")
check("kv cache:          f16, 256 bytes per position" in p.stdout, "info --kv-dtype: " + p.stdout)
run("info", "--model", tiny, "--kv-dtype", "bf16", expect=2)
# mixed GGUF files list their matrices' types; K-quants cannot be asked for with --dtype
kqm = os.path.join(MODELS, "hd128-q4_k_m.gguf")
p = run("info", "--model", kqm)
check("stored type:       q4_k (q4_k 13, q6_k 3 matrices)" in p.stdout, "info q4_k_m: " + p.stdout)
p = run("info", "--model", kqm, "--dtype", "q4_k", expect=1)
check("does not quantize to K-quants" in p.stderr, "--dtype q4_k: " + p.stderr)
g = run("run", "--model", os.path.join(MODELS, "hd128-q4_0-q6k.gguf"), "--prompt-ids", "1 2 3",
        "--max-tokens", "8", "--ids").stdout.split()
check(len(g) == 8, f"run on the q4_0 + q6_k file: {g}")
# an f16 cache with f32 weights stays close to the f32 cache
a = run("logits", "--model", tiny, "--ids", "1 2 3 4 5 6 7 8 9 10").stdout.split()
b = run("logits", "--model", tiny, "--ids", "1 2 3 4 5 6 7 8 9 10", "--kv-dtype", "f16").stdout.split()
la, lb = np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)
check(len(la) == len(lb) and len(la) > 0 and not np.array_equal(la, lb) and
      np.linalg.norm(la - lb) <= 1e-3 * np.linalg.norm(la), "logits --kv-dtype f16 vs f32")

# failures, never crashes
run("run", "--model", os.path.join(MODELS, "tiny-f32.gguf"), "--prompt", "hi", expect=1)
run("logits", "--model", tiny, "--ids", "1 2 99999", expect=1)
run("logits", "--model", tiny, "--ids", "1 x", expect=2)
run("run", "--model", tiny, expect=2)
run("info", "--model", os.path.join(MODELS, "nonexistent"), expect=1)
run("run", "--model", tiny, "--prompt-ids", "1", "--top-p", "2", expect=2)

tok = os.path.join(MODELS, "tokmodel")
if os.path.isdir(tok):
    t = run("run", "--model", tok, "--prompt", "The answer is", "--temperature", "0",
            "--max-tokens", "24").stdout
    check(len(t.strip()) > 0, "text run printed nothing")
    c = run("run", "--model", tok, "--prompt", "What is 2+2?", "--chat", "--system", "Be brief.",
            "--temperature", "0", "--max-tokens", "8")
    check(c.returncode == 0, "chat run failed")
    pf = os.path.join(MODELS, "prompt.txt")
    with open(pf, "w") as f:
        f.write("The answer is")
    f2 = run("run", "--model", tok, "--prompt-file", pf, "--temperature", "0",
             "--max-tokens", "24").stdout
    check(f2 == t, f"--prompt-file: {f2!r} vs {t!r}")
    i1 = run("run", "--model", tok, "--prompt", "The answer is", "--temperature", "0",
             "--max-tokens", "24", "--ids").stdout.split()
    check(len(i1) == 24, f"--ids: {i1}")
    text = t.rstrip("\n")
    # a stop string taken from the middle of the greedy output cuts it right there
    if len(text) >= 8:
        stop = text[len(text) // 2:len(text) // 2 + 3]
        s = run("run", "--model", tok, "--prompt", "The answer is", "--temperature", "0",
                "--max-tokens", "24", "--stop", stop).stdout.rstrip("\n")
        check(s == text[:text.index(stop)], f"stop {stop!r}: {s!r} vs {text!r}")
    # a GGUF model with the tokenizer taken from another folder
    i = run("run", "--model", os.path.join(MODELS, "tiny-f32.gguf"), "--tokenizer", tok,
            "--prompt", "!", "--max-tokens", "2", "--temperature", "0")
    check(i.returncode == 0, "--tokenizer run failed")

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("tool checks passed")
