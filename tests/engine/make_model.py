#!/usr/bin/env python3
"""make_model: writes a seeded random-weight Qwen2ForCausalLM in Hugging Face format
(config.json, generation_config.json, model.safetensors or shards + index, and the real Qwen
tokenizer files when --tokenizer is given) at any shape, for the engine's tests and bench.

Example (the VibeThinker-1.5B shape):
  make_model.py --out /tmp/vt --hidden 1536 --layers 28 --heads 12 --kv-heads 2 \
      --intermediate 8960 --vocab 151936 --tied --dtype bf16 --tokenizer build/qwen-tokenizer
"""
import argparse
import json
import os
import shutil

import torch
from safetensors.torch import save_file

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
HF_DTYPE = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=160)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--max-pos", type=int, default=4096)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--eps", type=float, default=1e-6)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    ap.add_argument("--tied", action="store_true")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--std", type=float, default=0.05, help="std of the weight matrices")
    ap.add_argument("--eos", default=None, help="eos ids, comma separated (default: last id)")
    ap.add_argument("--tokenizer", default=None, help="copy tokenizer.json/_config.json from here")
    a = ap.parse_args(argv)

    os.makedirs(a.out, exist_ok=True)
    g = torch.Generator().manual_seed(a.seed)
    dt = DTYPES[a.dtype]
    hd = a.hidden // a.heads
    qd, kvd = a.heads * hd, a.kv_heads * hd

    def mat(rows, cols):
        return (torch.randn(rows, cols, generator=g) * a.std).to(dt)

    def vec(n, base=0.0, std=0.05):
        return (base + torch.randn(n, generator=g) * std).to(dt)

    tensors = {"model.embed_tokens.weight": (torch.randn(a.vocab, a.hidden, generator=g) * 0.5).to(dt)}
    for i in range(a.layers):
        p = f"model.layers.{i}."
        tensors[p + "input_layernorm.weight"] = vec(a.hidden, 1.0, 0.1)
        tensors[p + "post_attention_layernorm.weight"] = vec(a.hidden, 1.0, 0.1)
        tensors[p + "self_attn.q_proj.weight"] = mat(qd, a.hidden)
        tensors[p + "self_attn.q_proj.bias"] = vec(qd)
        tensors[p + "self_attn.k_proj.weight"] = mat(kvd, a.hidden)
        tensors[p + "self_attn.k_proj.bias"] = vec(kvd)
        tensors[p + "self_attn.v_proj.weight"] = mat(kvd, a.hidden)
        tensors[p + "self_attn.v_proj.bias"] = vec(kvd)
        tensors[p + "self_attn.o_proj.weight"] = mat(a.hidden, qd)
        tensors[p + "mlp.gate_proj.weight"] = mat(a.intermediate, a.hidden)
        tensors[p + "mlp.up_proj.weight"] = mat(a.intermediate, a.hidden)
        tensors[p + "mlp.down_proj.weight"] = mat(a.hidden, a.intermediate)
    tensors["model.norm.weight"] = vec(a.hidden, 1.0, 0.1)
    if not a.tied:
        tensors["lm_head.weight"] = mat(a.vocab, a.hidden) * 4
    eos = [int(x) for x in a.eos.split(",")] if a.eos else [a.vocab - 1]

    config = {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": a.hidden,
        "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads,
        "num_key_value_heads": a.kv_heads,
        "intermediate_size": a.intermediate,
        "vocab_size": a.vocab,
        "max_position_embeddings": a.max_pos,
        "rope_theta": a.rope_theta,
        "rms_norm_eps": a.eps,
        "tie_word_embeddings": a.tied,
        "hidden_act": "silu",
        "use_sliding_window": False,
        "sliding_window": a.max_pos,
        "max_window_layers": a.layers,
        "attention_dropout": 0.0,
        "initializer_range": a.std,
        "bos_token_id": 0,
        "eos_token_id": eos[0],
        "torch_dtype": HF_DTYPE[a.dtype],
        "use_cache": True,
    }
    gen = {"bos_token_id": 0, "eos_token_id": eos if len(eos) > 1 else eos[0],
           "do_sample": True, "temperature": 0.6, "top_p": 0.95}
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(a.out, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)

    names = list(tensors)
    for old in os.listdir(a.out):
        if old.startswith("model") and (old.endswith(".safetensors") or old.endswith(".json")):
            os.remove(os.path.join(a.out, old))
    if a.shards <= 1:
        save_file(tensors, os.path.join(a.out, "model.safetensors"), metadata={"format": "pt"})
    else:
        per = (len(names) + a.shards - 1) // a.shards
        weight_map = {}
        for s in range(a.shards):
            fn = f"model-{s + 1:05d}-of-{a.shards:05d}.safetensors"
            part = {n: tensors[n] for n in names[s * per:(s + 1) * per]}
            save_file(part, os.path.join(a.out, fn), metadata={"format": "pt"})
            weight_map.update({n: fn for n in part})
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    if a.tokenizer:
        for fn in ("tokenizer.json", "tokenizer_config.json"):
            src = os.path.join(a.tokenizer, fn)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(a.out, fn))


if __name__ == "__main__":
    main()
