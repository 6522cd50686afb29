/* sm_cuda: the engine's CUDA backend, the GPU counterpart of sm_model (see sm_model.h) for
 * Qwen2-family models. Weights are bf16 (or int8 weight-only, one scale per output row); the
 * matrix products use cuBLAS in fast mode and our own batch-invariant kernel in deterministic
 * mode (the default); RMSNorm, RoPE, the SiLU gate, attention and sampling are our own kernels
 * (kernels_*.cu). The KV cache is f16 in fixed-size pages from one pool per model, so many
 * sequences of any lengths share the GPU's memory (continuous batching: any set of sequences
 * can be advanced together in one sm_cuda_forward, up to SM_CUDA_MAX_BATCH).
 * Deterministic mode: a sequence's logits are bitwise the same whether it runs alone or with
 * any others (fixed summation orders, attention splits of a fixed size), on the same GPU model
 * and driver. A model is used by one thread at a time. */
#ifndef SM_CUDA_H
#define SM_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"
#include "sm_model.h"

#define SM_CUDA_MAX_BATCH 256
/* The exit code of a GPU test that finds no CUDA device (ctest SKIP_RETURN_CODE). */
#define SM_CUDA_SKIP 77

typedef struct sm_cuda_opts {
    bool fast;     /* true: cuBLAS products (faster, not batch-invariant) */
    bool int8;     /* int8 weight-only matrices instead of bf16 (embedding and LM head stay bf16) */
    int device;    /* CUDA device ordinal */
    double kv_gib; /* KV cache pool in GiB (<= 0: 85% of the memory left after the weights) */
} sm_cuda_opts;

void sm_cuda_opts_init(sm_cuda_opts *opts);

/* Whether a CUDA device can be used; when not, why (e.g. "no CUDA device"). */
bool sm_cuda_available(char *why, size_t why_size);
/* The device's name, memory and driver/runtime versions in one line. */
void sm_cuda_describe(int device, char *buf, size_t size);

typedef struct sm_cuda_model sm_cuda_model;
typedef struct sm_cuda_seq sm_cuda_seq;

/* Loads the model at path (anything sm_model_load accepts) through the CPU loader as bf16 and
 * copies it to the GPU. Errors: those of sm_model_load, SM_EUNSUPPORTED for shapes the kernels
 * do not handle (head_dim not a multiple of 32 or over 256), SM_EIO for CUDA failures,
 * SM_ENOMEM when the GPU's memory is short. */
sm_code sm_cuda_model_load(const char *path, const sm_cuda_opts *opts, sm_cuda_model **out,
                           sm_err *err);
/* A model of shape cfg with seeded random weights made on the GPU (benchmarks). */
sm_code sm_cuda_model_random(const sm_model_config *cfg, const sm_cuda_opts *opts, uint64_t seed,
                             sm_cuda_model **out, sm_err *err);
void sm_cuda_model_free(sm_cuda_model **model);

const sm_model_config *sm_cuda_model_config(const sm_cuda_model *m);
/* Bytes of the weights on the GPU, and of the weights one decode step reads. */
size_t sm_cuda_weight_bytes(const sm_cuda_model *m);
size_t sm_cuda_step_bytes(const sm_cuda_model *m);
/* KV cache bytes per position of one sequence, and positions left free in the pool. */
size_t sm_cuda_kv_bytes_per_pos(const sm_cuda_model *m);
int64_t sm_cuda_free_positions(const sm_cuda_model *m);
void sm_cuda_set_fast(sm_cuda_model *m, bool fast);

/* A sequence with room for max_ctx positions (<= 0: max_position_embeddings); its pages are
 * taken from the pool as positions are filled. SM_ELIMIT past max_position_embeddings. */
sm_code sm_cuda_seq_new(sm_cuda_model *m, int64_t max_ctx, sm_cuda_seq **out, sm_err *err);
void sm_cuda_seq_free(sm_cuda_seq **seq);
int64_t sm_cuda_seq_pos(const sm_cuda_seq *s);
/* dst holds a copy of src's first n positions (a shared prompt prefix); as sm_seq_copy_prefix. */
sm_code sm_cuda_seq_copy_prefix(sm_cuda_seq *dst, const sm_cuda_seq *src, int64_t n, sm_err *err);
/* Fills positions [pos, n_pos) with seeded random keys and values (benchmark contexts). */
sm_code sm_cuda_seq_fill_synthetic(sm_cuda_seq *s, int64_t n_pos, uint64_t seed, sm_err *err);

/* As sm_model_forward: advances seqs[i] by n_tokens[i] ids; the last position's logits of each
 * stay on the GPU (for sm_cuda_sample) and are copied to logits[i * vocab] when not NULL.
 * SM_ELIMIT past a max_ctx, more than SM_CUDA_MAX_BATCH sequences, or a full page pool;
 * SM_EINVAL for an id outside the vocabulary. */
sm_code sm_cuda_forward(sm_cuda_model *m, sm_cuda_seq *const *seqs, const int32_t *const *tokens,
                        const int64_t *n_tokens, int n_seqs, float *logits, sm_err *err);

/* Picks the next token of each of the n_seqs sequences of the last forward step on the GPU:
 * temperature <= 0: greedy; otherwise a sample of softmax(logits / temperature) from
 * (seeds[i], counters[i]) (the same inputs give the same token). */
sm_code sm_cuda_sample(sm_cuda_model *m, int n_seqs, double temperature, const uint64_t *seeds,
                       const uint64_t *counters, int32_t *out, sm_err *err);

/* Waits for the GPU; a failed kernel shows here. */
sm_code sm_cuda_sync(sm_cuda_model *m, sm_err *err);

/* The device memory bandwidth in GB/s: the best of a read kernel and a device-to-device copy
 * (counting bytes read plus written) over a buffer of bytes. */
sm_code sm_cuda_measure_bandwidth(int device, size_t bytes, double *read_gbs, double *copy_gbs,
                                  sm_err *err);

#endif
