/* sm_cuda_kernels: the CUDA backend's own kernels (the .cu files), called from the host code in
 * sm_cuda_model.c. Every function launches on the given stream and returns the launch's
 * cudaError_t as an int (0: launched). Layouts (row-major, "rows" = the tokens of a step):
 *   x, tmp: f32 [rows][hidden]; q: f32 [rows][n_heads*hd]; k, v: f32 [rows][kv_dim];
 *   bf16 inputs of the matrix products: uint16_t [rows][cols];
 *   KV cache pages: f16 [page][layer][K=0|V=1][SM_CUDA_PAGE positions][kv_dim];
 *   page tables: int32 [n_seqs][table_stride] page numbers of each sequence's positions. */
#ifndef SM_CUDA_KERNELS_H
#define SM_CUDA_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SM_CUDA_PAGE 16   /* positions per KV cache page */
#define SM_CUDA_SPLIT 512 /* positions per attention split (fixed: batch-invariant) */
#define SM_CUDA_MAX_HEAD_DIM 256

typedef struct sm_cu_stream sm_cu_stream; /* a cudaStream_t */

/* Where a row of a step belongs: its sequence's index in the step and its position. */
typedef struct sm_cu_row {
    int32_t seq;
    int32_t pos;
} sm_cu_row;

/* The shape the kernels need. */
typedef struct sm_cu_shape {
    int hidden, n_heads, n_kv_heads, head_dim, n_layers;
    float rms_eps;
    float rope_theta;
} sm_cu_shape;

/* The paged KV cache as one step sees it. */
typedef struct sm_cu_kv {
    uint16_t *pool;        /* f16 pages */
    const int32_t *tables; /* device: [n_seqs][table_stride] */
    int table_stride;
} sm_cu_kv;

/* x[r] = embed[ids[r]] (bf16 rows of width hidden) as f32. */
int sm_cu_embed(sm_cu_stream *s, const uint16_t *embed, const int32_t *ids, int rows, int hidden,
                float *x);
/* When add is not NULL: x += add first. Then out = bf16(rmsnorm(x) * w). */
int sm_cu_add_rmsnorm(sm_cu_stream *s, float *x, const float *add, const float *w, int rows,
                      int hidden, float eps, uint16_t *out);
/* Adds the biases (NULL: none) to q, k, v, rotates q and k (RoPE at each row's position), and
 * stores k and v as f16 into layer's cache pages. */
int sm_cu_qkv_rope_store(sm_cu_stream *s, const sm_cu_shape *sh, int layer, float *q, float *k,
                         const float *v, const float *bq, const float *bk, const float *bv,
                         const sm_cu_row *rows_meta, int rows, sm_cu_kv kv);
/* Attention of each row over positions [0, pos] of its sequence, grouped-query aware, in
 * SM_CUDA_SPLIT splits whose partial results (part: rows*n_heads*max_splits*(head_dim+2) f32)
 * are merged in a fixed order; out: bf16 [rows][n_heads*head_dim]. */
int sm_cu_attention(sm_cu_stream *s, const sm_cu_shape *sh, int layer, const float *q,
                    const sm_cu_row *rows_meta, int rows, int max_splits, sm_cu_kv kv, float *part,
                    uint16_t *out);
/* out = bf16(silu(gate) * up), n values. */
int sm_cu_silu_mul(sm_cu_stream *s, const float *gate, const float *up, int64_t n, uint16_t *out);
/* y[r][o] = sum_k x[r][k] * w[o][k] (bf16 inputs, f32 sums) with a fixed summation order per
 * output whatever rows is (the deterministic mode's batch-invariant product); cols % 8 == 0. */
int sm_cu_matmul_det(sm_cu_stream *s, const uint16_t *x, const uint16_t *w, int rows, int out_n,
                     int cols, float *y);
/* As sm_cu_matmul_det for int8 weights with one f32 scale per output row. */
int sm_cu_matmul_i8(sm_cu_stream *s, const uint16_t *x, const int8_t *w, const float *scale,
                    int rows, int out_n, int cols, float *y);
/* dst[i] = src[idx[i]] rows of width cols (bf16). */
int sm_cu_gather_rows(sm_cu_stream *s, const uint16_t *src, const int32_t *idx, int n, int cols,
                      uint16_t *dst);
/* For each of n rows of logits (width vocab): temperature <= 0: the argmax (lowest index on
 * ties); otherwise the Gumbel-max sample of softmax(logits / temperature) with noise from
 * (seeds[i], counters[i]). */
int sm_cu_sample(sm_cu_stream *s, const float *logits, int n, int vocab, float temperature,
                 const uint64_t *seeds, const uint64_t *counters, int32_t *out);
/* n bf16 values from a seeded hash, normal-ish with the given std (random models). */
int sm_cu_fill_random_bf16(sm_cu_stream *s, uint16_t *dst, int64_t n, uint64_t seed, float mean,
                           float std);
/* n f16 values from a seeded hash in [-1, 1) (synthetic KV cache contents). */
int sm_cu_fill_random_f16(sm_cu_stream *s, uint16_t *dst, int64_t n, uint64_t seed);
/* Reads n bytes (a multiple of 16) and writes one sum per block to sink: the bandwidth probe. */
int sm_cu_read_bytes(sm_cu_stream *s, const void *src, int64_t n, float *sink);

#ifdef __cplusplus
}
#endif

#endif
