#!/usr/bin/env python3
"""hf_reference: runs Hugging Face transformers Qwen2ForCausalLM in float32 on the CPU over a
prompt and then `steps` greedy decode steps with its KV cache, and writes a binary reference
file for engine_check: int32 n_prompt, steps, vocab; int32 prompt ids; int32 greedy tokens
(steps); float32 logits (steps + 1) x vocab (last prompt position, then after each token)."""
import argparse

import numpy as np
import torch
from transformers import Qwen2ForCausalLM


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True, help="prompt ids separated by spaces")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = Qwen2ForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32,
                                             attn_implementation="eager")
    model.eval()
    ids = [int(x) for x in a.ids.split()]
    logits, tokens = [], []
    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=True)
        past = out.past_key_values
        cur = out.logits[0, -1].float()
        for _ in range(a.steps):
            logits.append(cur.numpy().copy())
            tok = int(torch.argmax(cur))
            tokens.append(tok)
            out = model(torch.tensor([[tok]]), past_key_values=past, use_cache=True)
            past = out.past_key_values
            cur = out.logits[0, -1].float()
        logits.append(cur.numpy().copy())
    vocab = logits[0].shape[0]
    with open(a.out, "wb") as f:
        np.array([len(ids), a.steps, vocab], dtype=np.int32).tofile(f)
        np.array(ids, dtype=np.int32).tofile(f)
        np.array(tokens, dtype=np.int32).tofile(f)
        np.stack(logits).astype(np.float32).tofile(f)


if __name__ == "__main__":
    main()
