"""hf_bench: Hugging Face `tokenizers` side of `stepmark-engine tokbench`.

usage: hf_bench.py TOKENIZER_DIR TEXT_FILE RUNS
Prints one line "hf MBPS LOAD_MS N_IDS IDS_HASH": the median single-thread encode throughput
over RUNS runs (special tokens treated as plain text, like the C side), the median load time of
tokenizer.json, and the number and FNV-1a hash of the ids (to check both sides agree).
Run it with RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false.
"""
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hfref  # noqa: E402


def main():
    src, text_file, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(text_file, "rb") as f:
        raw = f.read()
    text = raw.decode("utf-8")
    with tempfile.TemporaryDirectory() as work:
        d = hfref.prepare(src, work)
        loads = []
        for _ in range(runs):
            t0 = time.perf_counter()
            tok = hfref.load(d)
            loads.append((time.perf_counter() - t0) * 1e3)
    tok.encode_special_tokens = True
    rates = []
    ids = None
    for _ in range(runs):
        t0 = time.perf_counter()
        ids = tok.encode(text, add_special_tokens=False).ids
        rates.append(len(raw) / 1e6 / (time.perf_counter() - t0))
    h = 1469598103934665603
    for i in ids:
        h ^= i
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    print("hf %.4f %.2f %d %d" % (statistics.median(rates), statistics.median(loads), len(ids), h))


if __name__ == "__main__":
    main()
