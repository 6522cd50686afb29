/* kernels_isa: the private interface between the kernel dispatcher (kernels.c) and its
 * instruction-set variants (kernels_portable.c, kernels_avx2.c, kernels_avx512.c,
 * kernels_avx512bf16.c). Each variant fills one table of function pointers; kernels.c checks
 * arguments, splits the work over the thread pool and calls the table of the chosen ISA.
 *
 * The one rule every variant keeps: a given output's arithmetic (which products are summed in
 * which order) depends only on the reduction length (cols, head_dim, n_pos), never on the batch
 * size, the row range of a task, or how many outputs are computed together. */
#ifndef SM_KERNELS_ISA_H
#define SM_KERNELS_ISA_H

#include "sm_kernels.h"

/* One weight-matrix product, as sm_matmul received it plus prepared activations. */
typedef struct sm_mm_job {
    sm_dtype dtype;
    int64_t rows, cols;
    const uint8_t *w; /* row r starts at w + r * row_bytes (width 16: group g at g * row_bytes) */
    size_t row_bytes;
    const float *bias; /* may be NULL */
    const float *x;
    int64_t ldx, batch;
    float *y;
    int64_t ldy;
    const int8_t *xq;   /* q8_0/q4_0 weights: activations quantized, batch x cols (stride cols) */
    const float *xd;    /* their scales, batch x cols/32 */
    const float *xs;    /* K-quant weights: xd[k] * (sum of block k's 32 quantized values) */
    const uint16_t *xb; /* bf16 weights on a variant with x_to_bf16: activations as bf16 */
    int packed;         /* 0, or q8_0/q4_0 weights packed with this width (kernels_q8x.c) */
    const uint8_t *xp;  /* packed weights: the activations in its layout, xp_stride per row */
    size_t xp_stride;
    float *scratch; /* scratch_floats floats per task (for variants that want one) */
    int64_t scratch_floats;
} sm_mm_job;

/* One attention call (see sm_attention). */
typedef struct sm_attn_job {
    const float *q;
    int n_heads, n_kv_heads, head_dim;
    const void *k, *v; /* f32, or f16 when kv_f16, or int8 when kv_q8 */
    bool kv_f16;
    /* 8-bit cache: a position's row is kv_stride bytes: n_kv_heads * head_dim int8 values, then
     * one f32 scale per kv head (value = int8 * scale) */
    bool kv_q8;
    int64_t kv_stride, n_pos; /* kv_stride in values (bytes for kv_q8) */
    float *out;
    float scale;
} sm_attn_job;

/* Positions per chunk of the online softmax: fixed, so results depend only on n_pos. */
#define SM_ATTN_CHUNK 64

typedef struct sm_kvariant {
    sm_isa isa;
    /* Floats of scratch each matmul task needs (job->scratch, job->scratch_floats). */
    int64_t (*scratch_floats)(sm_dtype t, int64_t cols, int64_t batch);
    /* Y rows [r0, r1) for every batch row; task is the pool task index (for job->scratch). */
    void (*matmul_rows)(const sm_mm_job *j, int64_t r0, int64_t r1, int task);
    /* Activations to 8-bit blocks: d = max|x|/127, q = round-half-even(x / d). Identical
     * results in every variant (the same float operations). */
    void (*quantize_x)(const float *x, int64_t cols, int8_t *q, float *d);
    /* NULL, or: bf16 weight products want each group of 2*lanes activations permuted to
     * [even columns, odd columns] (see MM_BF16_PAIRS in kernels_mm_tmpl.h); the job's x is
     * then that permuted copy, cols floats per row. */
    void (*permute_x)(const float *x, int64_t cols, float *out);
    /* NULL, or: bf16 weight products want the activations rounded to bf16 (job->xb). */
    void (*x_to_bf16)(const float *x, int64_t cols, uint16_t *out);
    /* Rows [r0, r1) of a weight matrix to f32 (for sgemm tiles). */
    void (*rows_to_f32)(const sm_mm_job *j, int64_t r0, int64_t r1, float *dst);
    void (*rmsnorm)(const float *x, const float *w, int64_t n, float eps, float *out);
    void (*silu_mul)(float *gate, const float *up, int64_t n);
    /* For i0 <= i < i0 + n: x[h*head_dim + i], x[h*head_dim + i + head_dim/2] rotated by
     * (cos[i - i0], sin[i - i0]). */
    void (*rope)(float *x, int n_heads, int head_dim, int i0, int n, const float *cos,
                 const float *sin);
    /* Every query head that uses one of kv heads [kv0, kv1); a head's arithmetic does not
     * depend on the range (the AVX-512 kernel lets the kv heads take turns on each chunk of
     * positions: the cache rows hold all kv heads side by side). */
    void (*attention_kvs)(const sm_attn_job *a, int kv0, int kv1);
    /* 0, or the width of the packed q8_0 layout this variant reads (kernels_q8x.c), with
     * q8x_rows: the products of such weights (job->packed; activations quantized by quantize_x
     * and laid out for the width in job->xp), rows [r0, r1), using q8x_scratch_floats(batch)
     * floats of job->scratch per task (NULL: none). */
    int q8x_width;
    void (*q8x_rows)(const sm_mm_job *j, int64_t r0, int64_t r1, int task);
    int64_t (*q8x_scratch_floats)(int64_t batch);
    /* NULL, or the products of q4_0 weights packed with width 8 (kernels_q8x.c; activations
     * in its layout, SM_Q4X_XGROUP bytes a group), as q8x_rows and q8x_scratch_floats. */
    void (*q4x_rows)(const sm_mm_job *j, int64_t r0, int64_t r1, int task);
    int64_t (*q4x_scratch_floats)(int64_t batch);
    /* NULL, or the products of q4_k, q5_k and q6_k weights packed with width 8 (a super-block
     * per group). */
    const struct sm_kqx_fns *kqx;
    /* NULL, or the products of K-quant weights (q4_k, q5_k, q6_k; activations as for q8_0 plus
     * job->xs), rows [r0, r1), using sm_kq_scratch_floats(cols) floats of job->scratch per
     * task; NULL: the portable sm_kq_rows. */
    void (*kq_rows)(const sm_mm_job *j, int64_t r0, int64_t r1, int task);
    /* A register-only loop of iters rounds of the instructions the products of weights of
     * type t are built on; returns the operations done (see sm_kernels_peak). */
    double (*peak)(sm_dtype t, int64_t iters);
} sm_kvariant;

/* The products of packed weights of one type and the scratch floats they want per task. */
typedef struct sm_packed_fns {
    void (*rows)(const sm_mm_job *j, int64_t r0, int64_t r1, int task);
    int64_t (*scratch_floats)(int64_t batch);
} sm_packed_fns;

/* The products of packed K-quant weights (the AVX2 ones, sm_avx2_kqx, on AVX2 and AVX-512). */
typedef struct sm_kqx_fns {
    sm_packed_fns q4k, q5k, q6k;
} sm_kqx_fns;
extern const sm_kqx_fns sm_avx2_kqx;

/* ---- the packed q8_0 layouts (kernels_q8x.c), width 8 or 16 ---- */
/* A matrix is packed in units of sm_q8x_unit_rows rows (1 for width 8, 16 for width 16; the
 * last one padded), each sm_q8x_unit_bytes; a batch row of activations takes sm_q8x_x_bytes. */
int sm_q8x_unit_rows(int width);
size_t sm_q8x_unit_bytes(int width, int64_t cols);
size_t sm_q8x_x_bytes(int width, int64_t cols);
/* rows (at most a unit's) GGUF rows q8_stride bytes apart to one unit at dst */
void sm_q8x_pack_unit(int width, const uint8_t *q8, size_t q8_stride, int rows, int64_t cols,
                      uint8_t *dst);
/* row (< sm_q8x_unit_rows) of a unit as cols f32 values */
void sm_q8x_unit_row_to_f32(int width, const uint8_t *unit, int row, int64_t cols, float *dst);
/* width 8: groups of 8 blocks along a row */
int64_t sm_q8x_groups(int width, int64_t cols);
/* One activation group from nblk (<= width) blocks quantized by quantize_x. */
void sm_q8x_interleave_x(int width, const int8_t *q, const float *d, int64_t nblk, uint8_t *group);
/* width 16: an activation row whose values and scales quantize_x wrote (values at xrow, scales
 * at xrow + cols + 4 nblk): its corrections and padding. */
void sm_q8r_finish_x(uint8_t *xrow, int64_t cols);

/* ---- packed q4_0 and K-quants, width 8 (kernels_q8x.c): groups of 8 blocks along a row
 * (q4_0), a super-block per group (K-quants). Their activation groups are SM_Q4X_XGROUP bytes:
 * the 256 values and 8 f32 scales as for q8_0 (sm_q8x_interleave_x), then at SM_Q4X_XCORR
 * what the type's products need: 8 int32 corrections -8 x (sum of each block's values) for
 * q4_0, 8 f32 sums (block scale x sum of its values) for q4_k and q5_k, 8 pairs of int16 half
 * sums for q6_k. ---- */
#define SM_Q4X_XCORR 288
#define SM_Q4X_XGROUP 320
typedef struct sm_w8_layout {
    size_t (*row_bytes)(int64_t cols);
    void (*pack_row)(const uint8_t *src, int64_t cols, uint8_t *dst);
    void (*row_to_f32)(const uint8_t *src, int64_t cols, float *dst);
    /* an activation group whose first 288 bytes sm_q8x_interleave_x wrote from the nblk blocks
     * q (scales d): the rest */
    void (*finish_x)(uint8_t *group, const int8_t *q, const float *d, int64_t nblk);
} sm_w8_layout;
/* The layout of type t, or NULL (q8_0, whose layouts are above, and the unpacked types). */
const sm_w8_layout *sm_w8_layout_of(sm_dtype t);
/* Activation bytes of a batch row for any of these layouts. */
size_t sm_q4x_x_bytes(int64_t cols);

/* The products of packed q8_0 weights: width 8 (kernels_q8x_tmpl.h in kernels_avx2_q8x.c),
 * width 16 (kernels_avx512_q8x.c, rows [r0, r1) from a group's first row, no scratch). */
void sm_avx2_q8x_rows(const sm_mm_job *j, int64_t r0, int64_t r1, int task);
int64_t sm_avx2_q8x_scratch_floats(int64_t batch);
void sm_avx512_q8r_rows(const sm_mm_job *j, int64_t r0, int64_t r1, int task);
/* The products of packed q4_0 weights (kernels_q8x_tmpl.h in kernels_avx2_q4x.c). */
void sm_avx2_q4x_rows(const sm_mm_job *j, int64_t r0, int64_t r1, int task);
int64_t sm_avx2_q4x_scratch_floats(int64_t batch);
void sm_avx2_q4kx_rows(const sm_mm_job *j, int64_t r0, int64_t r1, int task);
int64_t sm_avx2_q4kx_scratch_floats(int64_t batch);
void sm_avx2_q5kx_rows(const sm_mm_job *j, int64_t r0, int64_t r1, int task);
int64_t sm_avx2_q5kx_scratch_floats(int64_t batch);
void sm_avx2_q6kx_rows(const sm_mm_job *j, int64_t r0, int64_t r1, int task);
int64_t sm_avx2_q6kx_scratch_floats(int64_t batch);

/* ---- K-quant weights (kernels_kq.c, kernels_avx2_kq.c) ----
 * A weight row of any K-quant type is unpacked (to scratch, a few rows at a time) to one form
 * per block of 32 values j: 32 values q (unsigned 0..31 for q4_k/q5_k, signed -32..31 for q6_k),
 * 16 int16 scales s (s[i] for values 2i, 2i+1: the scale of the value's group of 16), the f32
 * super-block scale d, and the f32 min mn = dmin * min (0 for q6_k), so that the row's dot
 * product with activations (q8 blocks xq, xd and xs = xd * sum(xq)) is
 *     sum_j (d_j * xd_j) * (float)(sum_i s[i/2] * q_i * xq_i)  -  sum_j mn_j * xs_j,
 * the integer sums exact. Every variant computes that formula; they differ only in the order
 * of the f32 additions (fixed per variant, depending on cols only). */
/* The scale and min of sub-block j (0..7) from the 12 packed bytes of q4_k / q5_k. */
void sm_kq_scale_min(const uint8_t *s, int j, int *sc, int *m);
/* Bytes of one unpacked row of cols values (a multiple of 64). */
size_t sm_kq_unpacked_bytes(int64_t cols);
int64_t sm_kq_scratch_floats(int64_t cols);
/* Row src of type t (cols values) to the unpacked form at dst (64-byte aligned). */
void sm_kq_unpack_row(sm_dtype t, const uint8_t *src, int64_t cols, uint8_t *dst);
/* Activation sums for K-quant products: xs[k] = xd[k] * sum of q[32k..32k+31], nb blocks. */
void sm_kq_x_sums(const int8_t *q, const float *xd, int64_t nb, float *xs);
/* The portable products (used by variants without kq_rows) and the AVX2 ones. */
void sm_kq_rows(const sm_mm_job *j, int64_t r0, int64_t r1, int task);
void sm_avx2_kq_rows(const sm_mm_job *j, int64_t r0, int64_t r1, int task);

/* The AVX2 vector functions, shared with the AVX-512 variants (which need AVX2 too). */
void sm_avx2_cvt_bf16(float *dst, const uint16_t *src, int64_t n);
void sm_avx2_cvt_f16(float *dst, const uint16_t *src, int64_t n);
void sm_avx2_quantize_x(const float *x, int64_t cols, int8_t *q, float *d);
void sm_avx2_rows_to_f32(const sm_mm_job *j, int64_t r0, int64_t r1, float *dst);
void sm_avx2_rmsnorm(const float *x, const float *w, int64_t n, float eps, float *out);
void sm_avx2_silu_mul(float *gate, const float *up, int64_t n);
void sm_avx2_rope(float *x, int n_heads, int head_dim, int i0, int n, const float *cos,
                  const float *sin);
void sm_avx2_attention_kvs(const sm_attn_job *a, int kv0, int kv1);
/* Attention with 16-lane vectors for head sizes that are multiples of 16 (the AVX2 one
 * otherwise); kernels_avx512_attn.c. */
void sm_avx512_attention_kvs(const sm_attn_job *a, int kv0, int kv1);
double sm_avx2_peak(sm_dtype t, int64_t iters);
double sm_avx512_peak(sm_dtype t, int64_t iters);

const sm_kvariant *sm_kvariant_portable(void);
const sm_kvariant *sm_kvariant_avx2(void);
const sm_kvariant *sm_kvariant_avx512(void);
const sm_kvariant *sm_kvariant_avx512bf16(void);

#endif
