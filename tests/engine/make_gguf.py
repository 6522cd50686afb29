#!/usr/bin/env python3
"""make_gguf: converts a Hugging Face Qwen2 model directory (as make_model.py writes) into a
GGUF v3 file with the llama.cpp qwen2 names and metadata, its weight matrices stored as
f32, f16, bf16, q8_0, q4_0, q4_k, q5_k or q6_k (norms and biases stay f32), for the engine's
tests. q4_k_m / q5_k_m mix types as llama-quantize's Q4_K_M / Q5_K_M do (q6_k for the output
matrix, or the token embeddings of a tied model, and for attn_v and ffn_down of some layers);
--output-type / --embd-type override those two tensors' types (llama-quantize's Q4_0 output
keeps a tied model's token embeddings in q6_k, say). --dequantize stores the quantized values
back as f32 (the reference for the quantized file's logits). --no-vocab marks the file as having no
tokenizer (tokenizer.ggml.model "none" and the vocabulary size), which llama.cpp needs to load a
file without one (scripts/compare-llama)."""
import argparse
import json
import os

import numpy as np
import torch
from safetensors.torch import load_file

import gguf
import kquants

QTYPES = {
    "f32": gguf.GGMLQuantizationType.F32,
    "f16": gguf.GGMLQuantizationType.F16,
    "bf16": gguf.GGMLQuantizationType.BF16,
    "q8_0": gguf.GGMLQuantizationType.Q8_0,
    "q4_0": gguf.GGMLQuantizationType.Q4_0,
    "q4_k": gguf.GGMLQuantizationType.Q4_K,
    "q5_k": gguf.GGMLQuantizationType.Q5_K,
    "q6_k": gguf.GGMLQuantizationType.Q6_K,
}
MIXES = {"q4_k_m": "q4_k", "q5_k_m": "q5_k"}


def use_more_bits(layer, n_layers):
    """llama-quantize's choice of the layers whose attn_v / ffn_down get more bits."""
    return (layer < n_layers // 8 or layer >= 7 * n_layers // 8 or
            (layer - n_layers // 8) % 3 == 2)


def tensor_type(gn, base, a, tied, n_layers):
    """The type of GGUF tensor gn under --type base (a mix name or a type) and the overrides."""
    if gn == "output.weight" or (tied and gn == "token_embd.weight"):
        if a.output_type:
            return a.output_type
    if gn == "token_embd.weight" and a.embd_type:
        return a.embd_type
    if base not in MIXES:
        return base
    if gn == "output.weight" or (tied and gn == "token_embd.weight"):
        return "q6_k"
    parts = gn.split(".")
    if parts[0] == "blk" and parts[2] in ("attn_v", "ffn_down") and \
            use_more_bits(int(parts[1]), n_layers):
        return "q6_k"
    return MIXES[base]


def quantize(data, t):
    """(rows, cols) f32 -> raw blocks of type t (uint8)."""
    if t in kquants.TYPES:
        return kquants.quantize(data, t)
    return gguf.quants.quantize(data, QTYPES[t])


def load_tensors(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        files = sorted(set(json.load(open(idx))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for f in files:
        out.update(load_file(os.path.join(d, f)))
    return out


def gguf_name(n):
    n = n.replace("model.embed_tokens.", "token_embd.").replace("model.norm.", "output_norm.")
    n = n.replace("lm_head.", "output.").replace("model.layers.", "blk.")
    for a, b in (("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"),
                 ("self_attn.v_proj", "attn_v"), ("self_attn.o_proj", "attn_output"),
                 ("input_layernorm", "attn_norm"), ("post_attention_layernorm", "ffn_norm"),
                 ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"),
                 ("mlp.down_proj", "ffn_down")):
        n = n.replace(a, b)
    return n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--type", choices=sorted(QTYPES) + sorted(MIXES), default="f32")
    ap.add_argument("--output-type", choices=sorted(QTYPES))
    ap.add_argument("--embd-type", choices=sorted(QTYPES))
    ap.add_argument("--dequantize", action="store_true")
    ap.add_argument("--no-vocab", action="store_true")
    a = ap.parse_args(argv)
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    gen_path = os.path.join(a.model, "generation_config.json")
    gen = json.load(open(gen_path)) if os.path.exists(gen_path) else {}
    w = gguf.GGUFWriter(a.out, "qwen2")
    w.add_name("stepmark test model")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg.get("num_key_value_heads", cfg["num_attention_heads"]))
    w.add_rope_freq_base(cfg.get("rope_theta", 10000.0))
    w.add_layer_norm_rms_eps(cfg.get("rms_norm_eps", 1e-6))
    eos = gen.get("eos_token_id", cfg.get("eos_token_id"))
    if isinstance(eos, list):
        eos = eos[0]
    if eos is not None:
        w.add_eos_token_id(int(eos))
    if cfg.get("bos_token_id") is not None:
        w.add_bos_token_id(int(cfg["bos_token_id"]))
    if a.no_vocab:
        w.add_tokenizer_model("none")
        w.add_vocab_size(cfg["vocab_size"])
    tensors = load_tensors(a.model)
    tied = "lm_head.weight" not in tensors
    for name, t in tensors.items():
        data = t.to(torch.float32).numpy()
        gn = gguf_name(name)
        tt = tensor_type(gn, a.type, a, tied, cfg["num_hidden_layers"])
        if data.ndim == 2 and tt != "f32":
            q = quantize(data, tt)
            if a.dequantize:
                w.add_tensor(gn, gguf.quants.dequantize(q, QTYPES[tt]).astype(np.float32))
            else:
                w.add_tensor(gn, q, raw_dtype=QTYPES[tt])
        else:
            w.add_tensor(gn, np.ascontiguousarray(data, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
