"""hfref: the Hugging Face reference tokenizer for the tests and the benchmark.

tokenizers 0.19 (pinned by transformers 4.44) only reads BPE merges written as "a b" strings,
while newer tokenizer.json files (Qwen3's) write them as ["a", "b"] pairs. prepare() writes a
copy of the tokenizer directory with the merges as strings -- the same merges in the same order,
which tokenizers itself does when it saves in the legacy format -- so both libraries read the
same model.
"""
import json
import os
import shutil


def prepare(src_dir, work_dir):
    """Returns a directory holding an HF-0.19-readable copy of src_dir's tokenizer files."""
    out = os.path.join(work_dir, "hf-tokenizer")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(src_dir, "tokenizer.json"), encoding="utf-8") as f:
        spec = json.load(f)
    merges = spec["model"].get("merges", [])
    spec["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in merges]
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(spec, f, ensure_ascii=False)
    cfg = os.path.join(src_dir, "tokenizer_config.json")
    if os.path.exists(cfg):
        shutil.copy(cfg, os.path.join(out, "tokenizer_config.json"))
    return out


def load(dir_):
    from tokenizers import Tokenizer
    return Tokenizer.from_file(os.path.join(dir_, "tokenizer.json"))
