/* sm_model: a Qwen2-family causal language model (Qwen2ForCausalLM) on the CPU.
 * Loads a Hugging Face directory (config.json, generation_config.json, model.safetensors or a
 * sharded index) or a GGUF file (qwen2 metadata), validates every header, dtype, shape and
 * offset, memory-maps the weights and converts/quantizes them at load to one compute type.
 * Sequences (sm_seq) own their KV cache (kv_dtype: f16 by default, f32 for f32 weights or the
 * portable kernels); sm_model_forward advances several sequences of different lengths in one
 * step, each by any number of tokens (a prompt is one batch), with one weight-matrix product
 * over all of their rows so the weights are read once per step.
 * In deterministic mode (the default) a sequence's logits are bitwise identical whether it runs
 * alone or batched with any others, and from run to run with the same thread count.
 * A model is used by one thread at a time (the forward pass uses the model's thread pool).
 * The code: sm_model_load.c, sm_model_weights.c, sm_model_seq.c, sm_model_forward.c (see
 * sm_model_internal.h). */
#ifndef SM_MODEL_H
#define SM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"
#include "sm_kernels.h"

#define SM_MODEL_MAX_EOS 8

/* The shape and defaults read from config.json / generation_config.json (or GGUF metadata). */
typedef struct sm_model_config {
    int64_t hidden;       /* hidden_size */
    int64_t n_layers;     /* num_hidden_layers */
    int64_t n_heads;      /* num_attention_heads */
    int64_t n_kv_heads;   /* num_key_value_heads (defaults to n_heads) */
    int64_t head_dim;     /* head_dim, else hidden / n_heads */
    int64_t intermediate; /* intermediate_size */
    int64_t vocab;        /* vocab_size */
    int64_t max_pos;      /* max_position_embeddings */
    double rope_theta;    /* rope_theta (default 10000) */
    double rms_eps;       /* rms_norm_eps (default 1e-6) */
    bool tied;            /* tie_word_embeddings: LM head = token embeddings */
    int32_t bos_id;       /* -1 if none */
    int32_t eos_ids[SM_MODEL_MAX_EOS];
    int n_eos;
    /* Sampling defaults from generation_config.json (has_sampling false when absent). */
    bool has_sampling;
    bool do_sample;
    double temperature;
    double top_p;
    int64_t top_k;
    double min_p;
    double repetition_penalty;
} sm_model_config;

/* Load options. Initialise with sm_model_opts_init. */
typedef struct sm_model_opts {
    bool dtype_set; /* false: weights keep their stored type (f16 becomes bf16) */
    sm_dtype dtype; /* compute type of every weight matrix: f32, bf16, q8_0, q4_0 (or f16) */
    int threads;    /* <= 0: one per online CPU */
    bool fast;      /* false: deterministic (batch-invariant) kernels */
    bool isa_set;   /* false: the best variant this CPU supports */
    sm_isa isa;
    bool kv_dtype_set; /* false: f16, or f32 for f32 weights or portable kernels */
    /* SM_DTYPE_F32, SM_DTYPE_F16, or SM_DTYPE_Q8_0: the 8-bit cache, int8 values with one f32
     * scale per kv head and position (head_dim a multiple of 8) */
    sm_dtype kv_dtype;
} sm_model_opts;

void sm_model_opts_init(sm_model_opts *opts);

/* A summary of a loaded model. */
typedef struct sm_model_info {
    sm_model_config config;
    const char *format;           /* "safetensors" or "gguf" */
    sm_dtype stored_dtype;        /* type of the stored weight matrices (the most common one) */
    int n_stored[SM_DTYPE_COUNT]; /* weight matrices stored in each type (mixed GGUF files) */
    sm_dtype weight_dtype;        /* compute type of the weight matrices */
    int packed; /* 0, or weights (q8_0, q4_0, q4_k, q6_k) repacked for the kernels: the width */
    int64_t n_params;          /* parameters, LM head counted once when tied */
    size_t weight_bytes;       /* bytes of all weights in their compute types */
    size_t bytes_per_token;    /* weight bytes read by one decode step (all layers + LM head) */
    sm_dtype kv_dtype;         /* type of the KV cache's values: f32, f16 or q8_0 (8-bit) */
    size_t kv_bytes_per_token; /* KV cache bytes per position of one sequence */
    int threads;
    sm_isa isa;
    bool deterministic;
} sm_model_summary;

typedef struct sm_model sm_model;
typedef struct sm_seq sm_seq;

/* path: a Hugging Face model directory (or its config.json or a .safetensors file in it), or a
 * .gguf file (also a directory holding exactly one .gguf file and no config.json).
 * Errors: SM_ENOTFOUND, SM_EIO, SM_EFORMAT (malformed or inconsistent files), SM_EUNSUPPORTED
 * (another architecture, unsupported dtype), SM_ENOMEM. */
sm_code sm_model_load(const char *path, const sm_model_opts *opts, sm_model **out, sm_err *err);
void sm_model_free(sm_model **model);

const sm_model_summary *sm_model_info(const sm_model *model);

/* Switches between deterministic (false) and fast (true) kernels. */
void sm_model_set_fast(sm_model *model, bool fast);

/* The directory of the model (the GGUF file's directory for GGUF), e.g. for the tokenizer. */
const char *sm_model_dir(const sm_model *model);

/* The model's thread pool, free between forward steps for the caller's own parallel work
 * (e.g. sampling every sequence of a batch); NULL when the model runs on one thread. */
sm_pool *sm_model_pool(sm_model *model);

/* A new empty sequence with room for max_ctx positions (<= 0: max_position_embeddings).
 * The KV cache size is computed and logged before it is reserved; pages are committed as
 * positions are filled. SM_ELIMIT if max_ctx exceeds max_position_embeddings. */
sm_code sm_seq_new(sm_model *model, int64_t max_ctx, sm_seq **out, sm_err *err);
void sm_seq_free(sm_seq **seq);
/* Positions filled so far. */
int64_t sm_seq_pos(const sm_seq *seq);
int64_t sm_seq_max_ctx(const sm_seq *seq);
/* A new sequence (room for max_ctx positions, <= 0: the model maximum) holding a copy of the
 * first n_pos positions of src: a shared prompt prefix computed once serves many sequences, and
 * in deterministic mode continuing the copy gives bitwise the logits of recomputing it. */
sm_code sm_seq_copy(const sm_seq *src, int64_t n_pos, int64_t max_ctx, sm_seq **out, sm_err *err);
/* Drops positions >= pos (pos <= sm_seq_pos); later tokens overwrite them. */
sm_code sm_seq_truncate(sm_seq *seq, int64_t pos, sm_err *err);
/* Makes dst hold a copy of the first n_tokens positions of src's KV cache (dst's own positions
 * are dropped), so dst continues from a shared prefix without recomputing it (prefix cache).
 * SM_EINVAL for another model, dst == src or n_tokens outside [0, sm_seq_pos(src)];
 * SM_ELIMIT if n_tokens exceeds dst's max_ctx. */
sm_code sm_seq_copy_prefix(sm_seq *dst, const sm_seq *src, int64_t n_tokens, sm_err *err);

/* One forward step: sequence seqs[i] (distinct, all of this model) is advanced by the
 * n_tokens[i] >= 1 ids in tokens[i]. Writes, when logits is not NULL, the logits of the last
 * new position of each sequence to logits[i * vocab ...]. On error no sequence is advanced.
 * SM_ELIMIT past a sequence's max_ctx, SM_EINVAL for an id outside the vocabulary. */
sm_code sm_model_forward(sm_model *model, sm_seq *const *seqs, const int32_t *const *tokens,
                         const int64_t *n_tokens, int n_seqs, float *logits, sm_err *err);

/* KV cache bytes per position of one sequence for a model of shape c with a cache of kv_dtype
 * (f32, f16, or q8_0: the 8-bit cache), all layers, keys and values. */
size_t sm_model_kv_bytes_per_pos(const sm_model_config *c, sm_dtype kv_dtype);

/* Reads the shape of the model at path (as sm_model_load finds it) without loading weights. */
sm_code sm_model_peek_config(const char *path, sm_model_config *cfg, sm_err *err);

/* The KV cache type a model loaded with opts would use (sm_model_load's choice when
 * opts->kv_dtype_set is false, assuming the best kernels this CPU runs). */
sm_dtype sm_model_default_kv_dtype(const sm_model_opts *opts);

/* Fills positions [sm_seq_pos, n_pos) of every layer's keys and values with seeded
 * pseudo-random values (a synthetic context for benchmarks: decode speed depends on the cache's
 * size, not its content; the logits that follow are meaningless) and makes n_pos the sequence's
 * length. A few positions are made and then copied, so this runs at memory speed.
 * SM_ELIMIT past max_ctx. */
sm_code sm_seq_fill_synthetic(sm_seq *seq, int64_t n_pos, uint64_t seed, sm_err *err);

/* Parses config.json (and generation_config.json if gen_path is not NULL and exists) into
 * cfg. SM_EFORMAT for malformed JSON, missing or mistyped keys, inconsistent sizes;
 * SM_EUNSUPPORTED for another architecture or rope scaling/sliding window. */
sm_code sm_model_config_parse(const char *config_path, const char *gen_path, sm_model_config *cfg,
                              sm_err *err);

#endif
