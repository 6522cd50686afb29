#!/usr/bin/env python3
"""test_bench: runs `stepmark-engine bench --json` on a small generated model and checks that
the JSON object has every documented key with a sane value, and that bad usage exits 2."""
import json
import subprocess
import sys

KEYS = ["prefill_tps", "prefill_gflops", "decode_tps_batch1", "decode_tps_batch4",
        "decode_tps_batch16", "bandwidth_gbs", "bytes_per_token", "bandwidth_fraction",
        "peak_rss_mb", "peak_gflops", "fast_prefill_tps", "fast_decode_tps_batch16"]


def main():
    tool, model = sys.argv[1], sys.argv[2]
    p = subprocess.run([tool, "bench", "--model", model, "--json", "--prompt-tokens", "24",
                        "--decode-tokens", "3", "--repeats", "1", "--threads", "2"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    for k in KEYS:
        assert k in out, f"missing key {k}: {out}"
        assert isinstance(out[k], (int, float)) and out[k] > 0, f"{k} = {out[k]}"
    assert out["mode"] == "deterministic" and out["threads"] == 2
    assert out["prompt_tokens"] == 24
    # bytes per token: the weights of a small model, far below a gigabyte
    assert out["bytes_per_token"] < 1 << 30
    # the bandwidth limit names the read method that gave it (the best of several)
    assert " loads, " in out["bandwidth_method"] and "thread" in out["bandwidth_method"], out
    want = out["decode_tps_batch1"] * out["bytes_per_token"] / (out["bandwidth_gbs"] * 1e9)
    assert abs(out["bandwidth_fraction"] - want) <= 1e-6 * want, (out["bandwidth_fraction"], want)
    for bad in (["bench"], ["bench", "--model", model, "--prompt-tokens", "0"],
                ["bench", "--model", model, "--frobnicate"]):
        p = subprocess.run([tool] + bad, capture_output=True, text=True, timeout=60)
        assert p.returncode == 2, (bad, p.returncode, p.stderr)
    p = subprocess.run([tool, "membw", "--mib", "64", "--repeats", "1", "--threads", "2",
                        "--json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    bw = json.loads(p.stdout)
    assert bw["gbs"] > 0 and bw["methods"], bw
    assert bw["gbs"] == max(m["gbs"] for m in bw["methods"]), bw
    p = subprocess.run([tool, "bench", "--model", model + "/does-not-exist"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stderr
    check_depths(tool, model)
    print("bench ok:", json.dumps(out))


def check_depths(tool, model):
    """The long-context mode: --depths and --batches parse, and every point has its fields."""
    for kv, vbytes in (("f16", 2), ("q8_0", 1)):
        p = subprocess.run([tool, "bench", "--model", model, "--json", "--depths", "40,100",
                            "--batches", "1,3", "--decode-tokens", "2", "--threads", "2",
                            "--kv-dtype", kv], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        out = json.loads(p.stdout.strip().splitlines()[-1])
        assert out["kv_dtype"] == kv, out
        assert out["bandwidth_gbs"] > 0 and out["bytes_per_token"] > 0, out
        assert out["kv_bytes_per_token"] > 0, out
        pts = out["points"]
        assert [(q["depth"], q["batch"]) for q in pts] == [(40, 1), (40, 3), (100, 1), (100, 3)]
        for q in pts:
            for k in ("tps", "step_ms", "kv_mb", "kv_read_gbs", "read_gbs",
                      "bandwidth_fraction"):
                assert isinstance(q[k], (int, float)) and q[k] > 0, (k, q)
            # KV memory: batch x (depth + decode steps + 1) positions
            want = q["batch"] * (q["depth"] + 3) * out["kv_bytes_per_token"] / 1048576
            assert abs(q["kv_mb"] - want) <= 1e-6 * want, (q, want)
        if kv == "f16":
            f16_bytes = out["kv_bytes_per_token"]
        else:  # int8 values plus one f32 scale per kv head: a little over half of f16's
            assert f16_bytes / 2 < out["kv_bytes_per_token"] < f16_bytes * 0.7, out
    for bad in (["--depths", "0"], ["--depths", "64,"], ["--depths", "a"],
                ["--depths", "64", "--batches", "0"], ["--batches", "2"],
                ["--depths", "100000000"]):
        p = subprocess.run([tool, "bench", "--model", model, "--decode-tokens", "1"] + bad,
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 2, (bad, p.returncode, p.stderr)


if __name__ == "__main__":
    main()
