#!/usr/bin/env python3
"""prepare_models: generates every model the engine tests use into one folder (in the build
directory, at test time): small seeded Qwen2 models in safetensors (f32 tied, f32 untied and
sharded, bf16, head size 128 with a long prompt), transformers reference logits for each, and
GGUF copies (f32, f16, bf16, q8_0, q4_0) of the tied model, K-quant and mixed GGUF copies
(q4_k_m, q5_k_m, q6_k, q4_0 with q6_k output/embeddings) of the head-size-128 one; with a tokenizer folder as second
argument, also a model with the real Qwen vocabulary and tokenizer files for text prompts."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference  # noqa: E402
import make_gguf  # noqa: E402
import make_model  # noqa: E402

PROMPT = "3 14 15 92 65 35 89 79 32 38 46 26 433 83 27 9"


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    j = lambda *p: os.path.join(out, *p)  # noqa: E731
    make_model.main(["--out", j("tiny"), "--tied", "--seed", "1"])
    make_model.main(["--out", j("untied"), "--hidden", "96", "--layers", "3", "--heads", "6",
                     "--kv-heads", "2", "--intermediate", "224", "--vocab", "1000",
                     "--shards", "3", "--seed", "2", "--rope-theta", "1000000",
                     "--eos", "998,999"])
    make_model.main(["--out", j("bf16"), "--dtype", "bf16", "--tied", "--seed", "3",
                     "--hidden", "128", "--heads", "4", "--kv-heads", "1",
                     "--intermediate", "256"])
    tok = sys.argv[2] if len(sys.argv) > 2 else None
    if tok:
        make_model.main(["--out", j("tokmodel"), "--tied", "--dtype", "bf16", "--seed", "4",
                         "--hidden", "64", "--layers", "1", "--intermediate", "128",
                         "--vocab", "151936", "--std", "0.3", "--eos", "151645,151643",
                         "--tokenizer", tok])
    make_model.main(["--out", j("hd128"), "--hidden", "512", "--layers", "2", "--heads", "4",
                     "--kv-heads", "2", "--intermediate", "1024", "--vocab", "2000",
                     "--rope-theta", "1000000", "--seed", "11", "--std", "0.03"])
    for m in ("tiny", "untied", "bf16"):
        hf_reference.main(["--model", j(m), "--ids", PROMPT, "--steps", "32",
                           "--out", j(m + ".ref")])
    # head size 128 (as VibeThinker) with a 300-token prompt: rotary angles at larger positions
    long_prompt = " ".join(str(i * 7919 % 2000) for i in range(300))
    hf_reference.main(["--model", j("hd128"), "--ids", long_prompt, "--steps", "32",
                       "--out", j("hd128.ref")])
    for t in ("f32", "f16", "bf16", "q8_0", "q4_0"):
        make_gguf.main(["--model", j("tiny"), "--out", j("tiny-" + t + ".gguf"), "--type", t])
    # rows of 512 and 1024 values: q8_0 weights are repacked for the SIMD kernels (the tiny
    # model's 64-value rows are not: padding them would double their bytes)
    make_gguf.main(["--model", j("hd128"), "--out", j("hd128-q8_0.gguf"), "--type", "q8_0"])
    # K-quant and mixed files (rows of 512 and 1024 values: whole 256-value super-blocks), each
    # with a copy of its quantized weights stored as f32; q4_0-q6k: llama-quantize's Q4_0
    # output, whose output matrix and token embeddings are Q6_K
    kq = {"q4_k_m": [], "q5_k_m": [], "q6_k": [],
          "q4_0-q6k": ["--output-type", "q6_k", "--embd-type", "q6_k"]}
    for name, extra in kq.items():
        t = ["--type", name.split("-")[0], *extra]
        make_gguf.main(["--model", j("hd128"), "--out", j(f"hd128-{name}.gguf"), *t])
        make_gguf.main(["--model", j("hd128"), "--out", j(f"hd128-{name}-deq.gguf"), *t,
                        "--dequantize"])


if __name__ == "__main__":
    main()
