/* sm_kernels: the engine's compute primitives on the CPU: weight-matrix products for every
 * weight type (f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k), RMSNorm, rotary embeddings, the
 * SiLU gate, attention over a KV cache, and conversions/quantization. Several instruction-set variants
 * (portable C, AVX2, AVX-512, AVX-512 BF16/VNNI) are chosen at run time; every variant gives
 * results within rounding of the portable one, and in deterministic mode a given output's
 * reduction order never depends on the batch size or on which other rows are computed. */
#ifndef SM_KERNELS_H
#define SM_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"
#include "sm_pool.h"

typedef enum sm_dtype {
    SM_DTYPE_F32 = 0,
    SM_DTYPE_F16,
    SM_DTYPE_BF16,
    SM_DTYPE_Q8_0, /* GGUF block: f16 scale + 32 x int8 (34 bytes per 32 values) */
    SM_DTYPE_Q4_0, /* GGUF block: f16 scale + 16 bytes of 4-bit values (18 bytes per 32) */
    /* GGUF K-quant super-blocks of 256 values (loaded from files only, never quantized to):
     * Q4_K: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins for 8 sub-blocks of 32, 128
     * bytes of 4-bit values (144 bytes); Q5_K: the same plus 32 bytes of 5th bits (176);
     * Q6_K: 128 bytes of low 4 bits, 64 of high 2 bits, 16 int8 scales (one per 16 values),
     * f16 d (210). */
    SM_DTYPE_Q4_K,
    SM_DTYPE_Q5_K,
    SM_DTYPE_Q6_K,
    SM_DTYPE_COUNT
} sm_dtype;

#define SM_QBLOCK 32
#define SM_QK_BLOCK 256

/* Values per block of t: 1 (f32/f16/bf16), 32 (q8_0/q4_0) or 256 (K-quants). */
int64_t sm_dtype_block(sm_dtype t);
/* Whether t is one of the K-quant types. */
bool sm_dtype_is_kquant(sm_dtype t);

/* "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q5_k", "q6_k". */
const char *sm_dtype_name(sm_dtype t);
sm_code sm_dtype_parse(const char *name, sm_dtype *out, sm_err *err);
/* Bytes used by one row of cols values (cols must be a multiple of sm_dtype_block). */
size_t sm_dtype_row_bytes(sm_dtype t, int64_t cols);

/* A weight matrix of rows x cols stored row-major (row r, then its cols values or blocks), or
 * when packed is not 0, q8_0 or q4_0 rows repacked for the SIMD kernels with that width
 * (sm_pack_rows; such a matrix can only be used with a context whose kernels read that width,
 * see sm_kernels_pack_width). */
typedef struct sm_matrix {
    sm_dtype dtype;
    int64_t rows;
    int64_t cols;
    const void *data;
    int packed;
} sm_matrix;

/* Instruction-set variants. */
typedef enum sm_isa {
    SM_ISA_PORTABLE = 0,
    SM_ISA_AVX2,
    SM_ISA_AVX512,
    SM_ISA_AVX512BF16,
    SM_ISA_COUNT
} sm_isa;

const char *sm_isa_name(sm_isa isa);
/* The default variant for this CPU: the best it supports, except avx512bf16 (opt-in). */
sm_isa sm_isa_detect(void);
/* Whether this CPU can run isa. */
bool sm_isa_supported(sm_isa isa);
sm_code sm_isa_parse(const char *name, sm_isa *out, sm_err *err);

/* Buffers a kernel context keeps from one product to the next (prepared activations, row
 * scratch), each grown to the largest size asked so far (up to 64 MB; a larger one is given
 * back after its product), so that a prompt's products reuse memory instead of faulting in
 * fresh pages for every call. */
typedef struct sm_kbufs sm_kbufs;
sm_code sm_kbufs_new(sm_kbufs **out, sm_err *err);
void sm_kbufs_free(sm_kbufs **bufs);

/* The kernel context: a chosen ISA, a thread pool and the mode. */
typedef struct sm_kctx {
    sm_isa isa;
    sm_pool *pool;      /* may be NULL: single thread */
    bool deterministic; /* batch-invariant reductions (default for grading) */
    sm_kbufs *bufs;     /* may be NULL: buffers taken and given back per call; else used by
                           one call at a time */
} sm_kctx;

/* Y[b*ldy + r] = bias[r] + sum_c W[r,c] * X[b*ldx + c]  for b < batch, r < W->rows.
 * bias may be NULL. X and Y are f32. In fast mode, batches may go through OpenBLAS sgemm. */
sm_code sm_matmul(const sm_kctx *k, const sm_matrix *W, const float *bias, const float *X,
                  int64_t ldx, int64_t batch, float *Y, int64_t ldy, sm_err *err);

/* One product of a group: Y[b*ldy + r] = bias[r] + sum_c W[r,c] * X[b*ldx + c]. */
typedef struct sm_mm_part {
    const sm_matrix *W;
    const float *bias; /* may be NULL */
    float *Y;
    int64_t ldy;
} sm_mm_part;

/* The n (up to 4 go together) products of the same activations X, each bitwise as sm_matmul
 * gives it. Where they are packed alike (a layer's q, k and v, or gate and up), X is prepared
 * once and the rows of all of them are one job for the pool, with one wait at its end. */
sm_code sm_matmul_group(const sm_kctx *k, const sm_mm_part *parts, int n, const float *X,
                        int64_t ldx, int64_t batch, sm_err *err);

/* out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], for n values (out may equal x). */
void sm_rmsnorm(const sm_kctx *k, const float *x, const float *w, int64_t n, float eps, float *out);

/* Rotary embedding (Hugging Face "rotate_half" layout, as Qwen2 uses) applied in place to
 * n_heads heads of head_dim values at position pos, with base theta. */
void sm_rope(const sm_kctx *k, float *x, int n_heads, int head_dim, int64_t pos, double theta);

/* gate[i] = silu(gate[i]) * up[i] for n values. */
void sm_silu_mul(const sm_kctx *k, float *gate, const float *up, int64_t n);

/* Causal attention of one query position against n_pos cached positions.
 * q: n_heads*head_dim; kcache/vcache: values of kv_dtype (SM_DTYPE_F32 or SM_DTYPE_F16),
 * position p's kv head h at [p*kv_stride + h*head_dim]; or, for SM_DTYPE_Q8_0 (the 8-bit
 * cache), rows of kv_stride bytes: n_kv_heads*head_dim int8 values, then n_kv_heads f32 scales
 * (value = int8 * its head's scale at that position); query head h uses kv head
 * h / (n_heads / n_kv_heads); out: n_heads*head_dim. scratch: at least n_pos floats (unused by
 * the current variants). Scale is 1/sqrt(head_dim). */
void sm_attention(const sm_kctx *k, const float *q, int n_heads, int n_kv_heads, int head_dim,
                  const void *kcache, const void *vcache, sm_dtype kv_dtype, int64_t kv_stride,
                  int64_t n_pos, float *out, float *scratch);

/* Measures the arithmetic peak of this machine for weights of type t with the k->isa variant
 * on every thread of k->pool, in GFLOP/s: for f32/f16/bf16 a register-only loop of independent
 * f32 vector fused multiply-adds (2 flops each lane; the portable variant uses separate
 * multiplies and adds), for q8_0/q4_0 a register-only loop of the 8-bit dot-product
 * instructions the variant's kernels are built on (AVX2: vpmaddubsw + vpmaddwd + vpaddd per 32
 * products; AVX-512 VNNI: vpdpbusd), counting 2 operations per 8-bit product. */
sm_code sm_kernels_peak(const sm_kctx *k, sm_dtype t, double *gflops, sm_err *err);

/* Whether fast mode sends prompts (batches of 32 rows or more) to OpenBLAS with the k->isa
 * variant: only where the kernels OpenBLAS picked for this CPU at load (its core name, copied
 * into core, which may be NULL) use at least that variant's vector width. Otherwise fast mode
 * runs the engine's own kernels, as deterministic mode does. */
bool sm_kernels_fast_uses_blas(const sm_kctx *k, char *core, size_t core_len);

/* 0, or the width of the packed layout in which the k->isa variant reads weights of type t
 * faster (sm_pack_rows): q8_0, q4_0 and the K-quants on AVX2 (8: blocks in groups of 8, or a
 * K-quant super-block per group, 4 values of each of the 8 blocks per vector instruction into
 * the block's own lane), q8_0 (16: rows in groups of 16, 4 values of one block of each of the
 * 16 rows into the row's own lane) and the K-quants (8, the AVX2 products) on AVX-512. */
int sm_kernels_pack_width(const sm_kctx *k, sm_dtype t);
/* Bytes of rows x cols values of type t in the packed layout of that width, or 0 where there
 * is no such layout (q8_0 with widths 8 and 16, q4_0 and the K-quants with width 8). Width 8 packs each row on its own (rows
 * times the bytes of one); width 16 packs rows in groups of 16 (the last one padded). */
size_t sm_packed_bytes(int width, sm_dtype t, int64_t rows, int64_t cols);
/* rows rows of type t as stored (sm_dtype_row_bytes each) to the packed layout of that width
 * at dst (sm_packed_bytes; dst 64-byte aligned for the fastest loads). A matrix may be packed
 * in parts that start at a row that is a multiple of 16, at dst + sm_packed_bytes(width, t,
 * that row, cols). */
sm_code sm_pack_rows(int width, sm_dtype t, const void *src, int64_t rows, int64_t cols, void *dst,
                     sm_err *err);
/* Row r of W (packed or not) as cols f32 values. */
sm_code sm_matrix_row_f32(const sm_matrix *W, int64_t r, float *dst, sm_err *err);

/* Conversions. dst has rows*cols f32 values / the quantized layout. K-quant rows dequantize
 * (bit for bit as the gguf package's numpy code: (d*scale)*q - dmin*min in f32) but cannot be
 * quantized to (SM_EUNSUPPORTED). */
sm_code sm_dequantize_row(sm_dtype t, const void *src, int64_t cols, float *dst, sm_err *err);
sm_code sm_quantize_row(sm_dtype t, const float *src, int64_t cols, void *dst, sm_err *err);
float sm_bf16_to_f32(uint16_t v);
uint16_t sm_f32_to_bf16(float v); /* round to nearest even */
float sm_f16_to_f32(uint16_t v);
uint16_t sm_f32_to_f16(float v);

#endif
