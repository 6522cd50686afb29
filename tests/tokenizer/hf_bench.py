"""hf_bench: Hugging Face `tokenizers` side of `stepmark-engine tokbench`.

usage: hf_bench.py TOKENIZER_DIR TEXT_FILE RUNS
TEXT_FILE holds documents separated by NUL bytes. Prints
  hf-docs MBPS N_IDS IDS_HASH     encode_batch over the documents
  hf-string MBPS N_IDS IDS_HASH   one encode of the documents joined by newlines
  hf-load MS                      loading tokenizer.json
with MBPS the median over RUNS runs, special tokens treated as plain text (like the C side),
and the FNV-1a hash of the concatenated ids so that both sides can be compared. Run it with
RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false (single thread).
"""
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hfref  # noqa: E402


def fnv(ids_lists):
    h = 1469598103934665603
    n = 0
    for ids in ids_lists:
        n += len(ids)
        for i in ids:
            h = ((h ^ i) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return n, h


def main():
    src, text_file, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(text_file, "rb") as f:
        raw = f.read()
    docs = raw.decode("utf-8").split("\0")
    if docs and docs[-1] == "":
        docs.pop()
    doc_bytes = sum(len(d.encode("utf-8")) for d in docs)
    joined = "\n".join(docs)
    with tempfile.TemporaryDirectory() as work:
        d = hfref.prepare(src, work)
        loads = []
        for _ in range(runs):
            t0 = time.perf_counter()
            tok = hfref.load(d)
            loads.append((time.perf_counter() - t0) * 1e3)
    tok.encode_special_tokens = True

    rates, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = tok.encode_batch(docs, add_special_tokens=False)
        rates.append(doc_bytes / 1e6 / (time.perf_counter() - t0))
    n, h = fnv(e.ids for e in out)
    print("hf-docs %.4f %d %d" % (statistics.median(rates), n, h))

    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = tok.encode(joined, add_special_tokens=False)
        rates.append(len(joined.encode("utf-8")) / 1e6 / (time.perf_counter() - t0))
    n, h = fnv([out.ids])
    print("hf-string %.4f %d %d" % (statistics.median(rates), n, h))
    print("hf-load %.2f" % statistics.median(loads))


if __name__ == "__main__":
    main()
