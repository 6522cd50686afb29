#!/usr/bin/env python3
"""test_kquants: the engine's K-quant weights (Q4_K, Q5_K, Q6_K) against the gguf package.
Writes a GGUF file of seeded matrices in each type (quantized by kquants.py from normal values,
plus matrices of random bytes that reach every bit pattern: negative q6_k scales, 6-bit
scale/min extremes), then with engine_check:
  - every matrix dequantized by the engine equals gguf.quants.dequantize bit for bit;
  - W x for batches of 1, 3 and 9 rows, with every kernel variant this CPU runs, is within 2e-2
    (relative) of the float64 product with the dequantized weights (the activations are
    quantized to 8 bits, as for q8_0), each variant within 1e-5 of the portable one, and each
    row of a batch bitwise equal to that row computed alone (deterministic mode).
Usage: test_kquants.py ENGINE_CHECK WORKDIR"""
import os
import subprocess
import sys

import numpy as np

import gguf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kquants  # noqa: E402

CHECK, WORK = sys.argv[1], sys.argv[2]
GT = {"q4_k": gguf.GGMLQuantizationType.Q4_K, "q5_k": gguf.GGMLQuantizationType.Q5_K,
      "q6_k": gguf.GGMLQuantizationType.Q6_K}
failures = []


def random_blocks(rng, t, rows, cols):
    """Random bytes in every field, with finite f16 scales of moderate size."""
    nb = kquants.BLOCK_BYTES[t]
    b = rng.integers(0, 256, size=(rows * cols // 256, nb), dtype=np.uint8)
    d = (rng.uniform(0.2, 1.0, size=len(b)) / (4096 if t == "q6_k" else 1000)).astype(np.float16)
    if t == "q6_k":
        b[:, 208:210] = d.view(np.uint8).reshape(-1, 2)
    else:
        dmin = (rng.uniform(0.0, 1.0, size=len(b)) / 500).astype(np.float16)
        b[:, 0:2] = d.view(np.uint8).reshape(-1, 2)
        b[:, 2:4] = dmin.view(np.uint8).reshape(-1, 2)
    return b.reshape(rows, -1)


def make_file(path):
    rng = np.random.default_rng(20261207)
    w = gguf.GGUFWriter(path, "qwen2")
    mats = {}
    for t in kquants.TYPES:
        for kind, (rows, cols) in (("normal", (37, 512)), ("random", (20, 768)),
                                   ("wide", (5, 2560))):
            if kind == "random":
                raw = random_blocks(rng, t, rows, cols)
            else:
                x = rng.standard_normal((rows, cols)).astype(np.float32) * 0.05
                x[0, :256] = 0.0  # an all-zero super-block
                x[1, :] = np.abs(x[1, :])  # no negative values: min 0
                raw = kquants.quantize(x, t)
            name = f"{t}.{kind}"
            w.add_tensor(name, raw, raw_dtype=GT[t])
            mats[name] = (t, raw, rows, cols)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return mats


def check(args):
    p = subprocess.run([CHECK, *args], capture_output=True, text=True)
    if p.returncode != 0:
        failures.append(f"engine_check {' '.join(args)}: exit {p.returncode}: {p.stderr[-400:]}")
    return p.returncode == 0


def isas():
    out = ["portable"]
    flags = open("/proc/cpuinfo").read()
    if " avx2 " in flags and " fma " in flags:
        out.append("avx2")
    if all(f" {f} " in flags for f in ("avx512f", "avx512bw", "avx512vl", "avx512dq",
                                        "avx512_vnni")):
        out.append("avx512")
    return out


def main():
    os.makedirs(WORK, exist_ok=True)
    path = os.path.join(WORK, "kquants.gguf")
    mats = make_file(path)
    rng = np.random.default_rng(7)
    variants = isas()
    for name, (t, raw, rows, cols) in mats.items():
        ref = gguf.quants.dequantize(raw, GT[t]).astype(np.float32).reshape(rows, cols)
        out = os.path.join(WORK, "deq.bin")
        if check(["tensor", "--gguf", path, "--name", name, "--out", out]):
            got = np.fromfile(out, np.float32).reshape(rows, cols)
            if not np.array_equal(got.view(np.uint32), ref.view(np.uint32)):
                bad = np.argwhere(got.view(np.uint32) != ref.view(np.uint32))[0]
                failures.append(f"{name}: dequantized [{bad[0]}, {bad[1]}] = "
                                f"{got[tuple(bad)]!r}, gguf says {ref[tuple(bad)]!r}")
        x = rng.standard_normal((9, cols)).astype(np.float32)
        want = x.astype(np.float64) @ ref.astype(np.float64).T  # (9, rows)
        results = {}
        for isa in variants:
            for batch in (1, 3, 9):
                xp, yp = os.path.join(WORK, "x.bin"), os.path.join(WORK, "y.bin")
                x[:batch].tofile(xp)
                if not check(["tensor", "--gguf", path, "--name", name, "--x", xp, "--batch",
                              str(batch), "--out", yp, "--isa", isa]):
                    continue
                y = np.fromfile(yp, np.float32).reshape(batch, rows)
                err = np.linalg.norm(y - want[:batch]) / np.linalg.norm(want[:batch])
                if not err < 2e-2:
                    failures.append(f"{name} {isa} batch {batch}: relative error {err:.3g}")
                results[(isa, batch)] = y
            if (isa, 1) in results and (isa, 9) in results:
                if not np.array_equal(results[(isa, 1)][0], results[(isa, 9)][0]) or \
                        not np.array_equal(results[(isa, 3)], results[(isa, 9)][:3]):
                    failures.append(f"{name} {isa}: a row's result depends on the batch")
            if ("portable", 9) in results and (isa, 9) in results:
                a, b = results[("portable", 9)], results[(isa, 9)]
                e = np.linalg.norm(a - b) / np.linalg.norm(a)
                if not e < 1e-5:
                    failures.append(f"{name} {isa}: {e:.3g} from portable")
        print(f"{name}: dequantization exact, products checked with {', '.join(variants)}")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)
    print("test_kquants: all checks passed")


if __name__ == "__main__":
    main()
