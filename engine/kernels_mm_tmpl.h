/* kernels_mm_tmpl: the blocked weight-matrix product shared by the SIMD variants. A variant
 * file (kernels_avx2.c, kernels_avx512*.c) defines the vector macros below and includes this
 * file once; it gets mm_rows() and mm_scratch_floats() for its table.
 *
 * Arithmetic per output (r, b), the same for every batch size, blocking and thread split:
 *  - f32/f16/bf16 weights: one MM_VL-lane accumulator; lane l adds W[r,c] * X[b,c] with one
 *    fused multiply-add for c = l, l + MM_VL, ... in increasing c, over the first
 *    cols - cols % MM_VL columns; then the lanes are summed in the fixed tree MM_HSUM, the
 *    remaining columns are added one by one in order, then the bias.
 *  - q8_0/q4_0 weights (activations quantized to 8-bit blocks): one 8-lane accumulator; for
 *    each block k in order, lane l gets fma(dw_k * dx_k, (float)isum_l, acc_l) where isum_l is
 *    the exact integer sum of the 4 products of elements 4l..4l+3 of the block; then the fixed
 *    8-lane tree, then the bias. (With MM_Q_PAIRS, two blocks per 512-bit vector: see there.)
 * Blocking (which outputs are computed together, tiles of columns whose partial lanes are kept
 * in a buffer between tiles) changes only the order in which outputs are worked on.
 *
 * Required macros:
 *   MM_V, MM_VL               float vector type and its lane count
 *   MM_ZERO(), MM_LOADU(p), MM_STOREU(p, v), MM_FMA(a, b, c) (a*b + c), MM_HSUM(v) -> float
 *   MM_CVT_BF16(dst, src, n)  n (multiple of MM_VL) bf16 values to f32
 *   MM_CVT_F16(dst, src, n)   n (multiple of MM_VL) f16 values to f32
 *   MM_LOAD_BF16(p), MM_LOAD_F16(p)  MM_VL bf16 / f16 values at p as an f32 vector
 *   MM_QDOT(aw, sx)           __m256i: 8 int32 lanes, lane l = sum of aw[i]*sx[i], i in 4l..4l+3
 *                             (aw unsigned bytes, sx signed bytes)
 *
 * Optional: MM_NR (weight rows per micro tile, default 4) and MM_IN_REG(v) (see below): a
 * variant with 32 vector registers takes 8 rows and keeps each weight vector in a register.
 * MM_DNR x MM_DNB (default MM_NR x 3; MM_DNB 3 or 6): the shape of the f32/f16/bf16 decode
 * passes, where each weight vector is converted once per pass (AVX-512: 4 x 6, so a batch of
 * 16 is 3 passes, 6 + 5 + 5).
 *
 * Optional: MM_HSUMX(a) with MM_ADD(a, b): an MM_V whose lane q is MM_HSUM(a[q]) bitwise, for
 * MM_V a[MM_VL], to sum the lanes of MM_VL outputs at once.
 *
 * Optional: MM_Q_ROWS4(nb, w0, wstep, ws, x0, xs, dw, dws, xd, nblk, pfs, a): the q8_0 decode
 * product of 4 weight rows and nb = 2 or 3 batch rows over nblk blocks, added into a, with the
 * arithmetic of mm_q_block_fma (see kernels_avx2.c).
 *
 * Optional: MM_Q_PAIRS (AVX-512 BW + VNNI): q8_0/q4_0 products with two blocks per 512-bit
 * vpdpbusd and a 16-lane accumulator, in 4-row micro kernels (8 rows at batch 1).
 *
 * Optional: MM_BF16_PAIRS_4X3(w, x, kn, pfs, a) / MM_BF16_PAIRS_4X6(...): the bf16-pair decode
 * pass of 4 weight rows x 3 / 6 batch rows in assembly, with the template's arithmetic.
 *
 * Optional: MM_BF16_PAIRS, with MM_BF16_EVEN(p) and MM_BF16_ODD(p): of the 2*MM_VL bf16 values
 * at p, those at even / odd positions as an f32 vector (one shift / one mask of a plain load,
 * where a widening load takes two operations per vector). bf16 products then see each group of
 * 2*MM_VL columns permuted to [even columns, odd columns]: the variant's permute_x puts the
 * activations in that order, and the rule above holds on the permuted column index (so lane l
 * adds column g+2l, then g+2l+1, for each group g in order). Columns past the last whole
 * group keep their places.
 */
#ifndef MM_VL
#error "define the vector macros before including kernels_mm_tmpl.h"
#endif

#ifndef MM_NR
#define MM_NR 4 /* weight rows per micro tile (a variant with 32 vector registers may take 8) */
#endif
/* row counts of the instantiated micro kernels: "n" is a full micro tile, "1" a single row */
#define MM_ROWS_n MM_NR
#define MM_ROWS_1 1
#define MM_NB 3 /* batch rows per micro tile */
/* the f32/f16/bf16 decode passes ("direct" path) may use another shape: MM_DNR weight rows x
 * up to MM_DNB batch rows (3 or 6) */
#ifndef MM_DNR
#define MM_DNR MM_NR
#endif
#ifndef MM_DNB
#define MM_DNB MM_NB
#endif
#if MM_DNB != 3 && MM_DNB != 6
#error "MM_DNB is 3 or 6"
#endif
#if (defined(MM_Q_ROWS4) || defined(MM_BF16_PAIRS_4X3)) && (MM_NR != 4 || MM_DNR != 4)
#error "the 4-row assembly passes (MM_Q_ROWS4, MM_BF16_PAIRS_4X3) need MM_NR and MM_DNR 4"
#endif
#if defined(MM_BF16_PAIRS_4X6) && (MM_DNR != 4 || MM_DNB != 6)
#error "the 4 x 6 assembly pass (MM_BF16_PAIRS_4X6) needs MM_DNR 4 and MM_DNB 6"
#endif
#define MM_DROWS_n MM_DNR
#define MM_DROWS_1 1
#ifndef MM_KC
#define MM_KC 512 /* columns per tile when rows are long: a multiple of 32 and of MM_VL */
#endif
#define MM_KS 2048 /* rows up to this long are one tile (read in order); the tile row stride */
#ifndef MM_MC
#define MM_MC \
    63 /* batch rows per block: a multiple of MM_NB, so that blocks need no 2 + 2 passes */
#endif
#ifndef MM_WHOLE_ROWS
#define MM_WHOLE_ROWS 16 /* batches up to this use whole-row tiles (when short enough) */
#endif
#ifndef MM_DIRECT_BATCH
#define MM_DIRECT_BATCH 16 /* batches up to this convert weights in registers, in passes */
#endif
#define MM_NCR 64 /* weight rows per block (a multiple of MM_NR) */

#define MM_INLINE static inline __attribute__((always_inline))

/* lanes of a q8_0/q4_0 accumulator: 8, or 16 with MM_Q_PAIRS (two blocks per vector) */
#ifdef MM_Q_PAIRS
#define MM_QL 16
#else
#define MM_QL 8
#endif

/* MM_IN_REG(v): keep a loaded vector in a register (a variant with registers to spare defines it
 * as an empty asm statement, so that the compiler does not fold the load into each of the
 * multiply-adds that use it, which would load it once per batch row). */
#ifndef MM_IN_REG
#define MM_IN_REG(v) ((void)0)
#endif

/* scratch: the weight tile (MM_NR x MM_KS floats, or for block types int8 values, their
 * absolute values and the scales) and the partial-lane buffer (MM_NCR x MM_MC x lanes). */
static int64_t mm_scratch_floats(sm_dtype t, int64_t cols, int64_t batch)
{
    (void)cols;
    (void)batch;
    int64_t lanes = (t == SM_DTYPE_Q8_0 || t == SM_DTYPE_Q4_0) ? MM_QL : MM_VL;
    return MM_NR * MM_KS + MM_NR * MM_KS / 32 + (int64_t)MM_NCR * MM_MC * lanes + 64;
}

/* Batch rows in the next pass when left remain: MM_NB, but 2 + 2 rather than 3 + 1 (a lone
 * row has too few independent accumulators to keep the FMA units busy). */
static inline int mm_pass_rows(int64_t left)
{
    if (left == 4)
        return 2;
    return (int)(left < MM_NB ? left : MM_NB);
}

/* The same for the direct passes: MM_DNB rows, but two even passes rather than a full one and
 * a short one when fewer than 2 * MM_DNB remain (16 rows in 6 + 5 + 5 for MM_DNB 6). */
static inline int mm_dpass_rows(int64_t left)
{
    if (MM_DNB == MM_NB)
        return mm_pass_rows(left);
    if (left <= MM_DNB)
        return (int)left;
    if (left < 2 * MM_DNB)
        return (int)((left + 1) / 2);
    return MM_DNB;
}

/* ---- f32 / f16 / bf16 ---- */

MM_INLINE void mm_f_kernel(int nr, int nb, const float *wt, const float *const *x, int64_t kn,
                           float *acc, int64_t ms, bool first)
{
    MM_V a[MM_NR][MM_NB];
    for (int r = 0; r < nr; r++)
        for (int b = 0; b < nb; b++)
            a[r][b] = first ? MM_ZERO() : MM_LOADU(acc + ((int64_t)r * ms + b) * MM_VL);
    for (int64_t c = 0; c < kn; c += MM_VL) {
        MM_V xv[MM_NB];
        for (int b = 0; b < nb; b++)
            xv[b] = MM_LOADU(x[b] + c);
        for (int r = 0; r < nr; r++) {
            MM_V w = MM_LOADU(wt + (int64_t)r * MM_KS + c);
            MM_IN_REG(w);
            for (int b = 0; b < nb; b++)
                a[r][b] = MM_FMA(w, xv[b], a[r][b]);
        }
    }
    for (int r = 0; r < nr; r++)
        for (int b = 0; b < nb; b++)
            MM_STOREU(acc + ((int64_t)r * ms + b) * MM_VL, a[r][b]);
}

#define MM_F_CASE(NR_, NB_)                                                                   \
    static void mm_f_kernel_##NR_##_##NB_(const float *wt, const float *const *x, int64_t kn, \
                                          float *acc, int64_t ms, bool first)                 \
    {                                                                                         \
        mm_f_kernel(MM_ROWS_##NR_, NB_, wt, x, kn, acc, ms, first);                           \
    }
MM_F_CASE(n, 3)
MM_F_CASE(n, 2)
MM_F_CASE(n, 1)
MM_F_CASE(1, 3)
MM_F_CASE(1, 2)
MM_F_CASE(1, 1)

static void mm_f_dispatch(int nr, int nb, const float *wt, const float *const *x, int64_t kn,
                          float *acc, int64_t ms, bool first)
{
    if (nr == MM_NR) {
        if (nb == 3)
            mm_f_kernel_n_3(wt, x, kn, acc, ms, first);
        else if (nb == 2)
            mm_f_kernel_n_2(wt, x, kn, acc, ms, first);
        else
            mm_f_kernel_n_1(wt, x, kn, acc, ms, first);
        return;
    }
    for (int r = 0; r < nr; r++) {
        const float *w = wt + (int64_t)r * MM_KS;
        float *a = acc + (int64_t)r * ms * MM_VL;
        if (nb == 3)
            mm_f_kernel_1_3(w, x, kn, a, ms, first);
        else if (nb == 2)
            mm_f_kernel_1_2(w, x, kn, a, ms, first);
        else
            mm_f_kernel_1_1(w, x, kn, a, ms, first);
    }
}

/* Columns [k0, k0 + n) of a bf16 weight row to f32 at dst, in the order the products use
 * (see MM_BF16_PAIRS; k0 is a multiple of 2*MM_VL). */
static void mm_cvt_bf16_cols(float *dst, const uint16_t *row, int64_t k0, int64_t n, int64_t cols)
{
    int64_t i = 0;
#ifdef MM_BF16_PAIRS
    int64_t pair_end = cols / (2 * MM_VL) * (2 * MM_VL);
    for (; i + 2 * MM_VL <= n && k0 + i + 2 * MM_VL <= pair_end; i += 2 * MM_VL) {
        MM_STOREU(dst + i, MM_BF16_EVEN(row + k0 + i));
        MM_STOREU(dst + i + MM_VL, MM_BF16_ODD(row + k0 + i));
    }
#else
    (void)cols;
#endif
    MM_CVT_BF16(dst + i, row + k0 + i, n - i);
}

static float mm_weight_at(const sm_mm_job *j, const uint8_t *row, int64_t c)
{
    uint16_t h;
    switch (j->dtype) {
    case SM_DTYPE_F32: {
        float f;
        memcpy(&f, row + 4 * c, 4);
        return f;
    }
    case SM_DTYPE_F16:
        memcpy(&h, row + 2 * c, 2);
        return sm_f16_to_f32(h);
    default:
        memcpy(&h, row + 2 * c, 2);
        return sm_bf16_to_f32(h);
    }
}

/* y[i] = MM_HSUM(the MM_VL lanes at acc + i * stride) + (bias ? bias[i] : 0), for i < n:
 * MM_VL outputs at a time where the variant offers MM_HSUMX (bitwise the same). */
static void mm_sums(const float *acc, int64_t stride, int64_t n, const float *bias, float *y)
{
    int64_t i = 0;
#ifdef MM_HSUMX
    for (; i + MM_VL <= n; i += MM_VL) {
        MM_V v[MM_VL];
        for (int q = 0; q < MM_VL; q++)
            v[q] = MM_LOADU(acc + (i + q) * stride);
        MM_V bv = bias ? MM_LOADU(bias + i) : MM_ZERO();
        MM_STOREU(y + i, MM_ADD(MM_HSUMX(v), bv));
    }
#endif
    for (; i < n; i++)
        y[i] = MM_HSUM(MM_LOADU(acc + i * stride)) + (bias ? bias[i] : 0.0f);
}

/* Small batches (one pass, decode): the weights are converted in registers as they stream in,
 * 4 rows at a time, with the same per-output arithmetic as the tiled path (one FMA per lane in
 * column order, the same tree). dtype is a compile-time constant in each instance. */
MM_INLINE MM_V mm_load_w(sm_dtype t, const uint8_t *row, int64_t c)
{
    if (t == SM_DTYPE_F32)
        return MM_LOADU((const float *)(const void *)row + c);
    if (t == SM_DTYPE_F16)
        return MM_LOAD_F16((const uint16_t *)(const void *)row + c);
    return MM_LOAD_BF16((const uint16_t *)(const void *)row + c);
}

/* Software prefetch of a region of weights spread evenly over a loop: each step() fetches the
 * cache lines up to step bytes further. The region is what the next rows' first pass will read
 * from memory, fetched into L2 while this pass computes. */
typedef struct mm_prefetch mm_prefetch;
struct mm_prefetch {
    const uint8_t *line; /* next line to fetch */
    const uint8_t *to;   /* fetched up to here after the last step */
    size_t step;         /* 0: nothing to fetch */
};

static inline mm_prefetch mm_prefetch_init(const uint8_t *p, size_t len, int64_t steps)
{
    mm_prefetch f = {p, p, 0};
    if (p && len > 0 && steps > 0)
        f.step = (len + (size_t)steps - 1) / (size_t)steps;
    return f;
}

MM_INLINE void mm_prefetch_step(mm_prefetch *f)
{
    if (f->step == 0)
        return;
    f->to += f->step;
    for (; f->line < f->to; f->line += 64)
        __builtin_prefetch(f->line, 0, 2);
}

MM_INLINE void mm_f_direct(sm_dtype t, int nr, int nb, const uint8_t *const *w,
                           const float *const *x, int64_t cv, const uint8_t *pf, size_t pf_len,
                           float out[MM_DNR][MM_DNB])
{
    mm_prefetch pfs = mm_prefetch_init(pf, pf_len, cv / MM_VL);
    MM_V a[MM_DNR][MM_DNB];
    for (int r = 0; r < nr; r++)
        for (int b = 0; b < nb; b++)
            a[r][b] = MM_ZERO();
    int64_t c = 0;
#ifdef MM_BF16_PAIRS_4X3
    if (t == SM_DTYPE_BF16 && nr == 4 && nb == 3)
        c = MM_BF16_PAIRS_4X3(w, x, cv, &pfs, a);
#endif
#ifdef MM_BF16_PAIRS_4X6
    if (t == SM_DTYPE_BF16 && nr == 4 && nb == 6)
        c = MM_BF16_PAIRS_4X6(w, x, cv, &pfs, a);
#endif
#ifdef MM_BF16_PAIRS
    if (t == SM_DTYPE_BF16) {
        for (; c + 2 * MM_VL <= cv; c += 2 * MM_VL) {
            mm_prefetch_step(&pfs);
            mm_prefetch_step(&pfs);
            MM_V xv[MM_DNB];
            for (int b = 0; b < nb; b++)
                xv[b] = MM_LOADU(x[b] + c);
            for (int r = 0; r < nr; r++) {
                MM_V wv = MM_BF16_EVEN((const uint16_t *)(const void *)w[r] + c);
                for (int b = 0; b < nb; b++)
                    a[r][b] = MM_FMA(wv, xv[b], a[r][b]);
            }
            for (int b = 0; b < nb; b++)
                xv[b] = MM_LOADU(x[b] + c + MM_VL);
            for (int r = 0; r < nr; r++) {
                MM_V wv = MM_BF16_ODD((const uint16_t *)(const void *)w[r] + c);
                for (int b = 0; b < nb; b++)
                    a[r][b] = MM_FMA(wv, xv[b], a[r][b]);
            }
        }
    }
#endif
    for (; c < cv; c += MM_VL) {
        mm_prefetch_step(&pfs);
        MM_V xv[MM_DNB];
        for (int b = 0; b < nb; b++)
            xv[b] = MM_LOADU(x[b] + c);
        for (int r = 0; r < nr; r++) {
            MM_V wv = mm_load_w(t, w[r], c);
            for (int b = 0; b < nb; b++)
                a[r][b] = MM_FMA(wv, xv[b], a[r][b]);
        }
    }
    for (int r = 0; r < nr; r++)
        for (int b = 0; b < nb; b++)
            out[r][b] = MM_HSUM(a[r][b]);
}

#define MM_D_CASE(T_, TN_, NR_, NB_)                                                              \
    static void mm_f_direct_##TN_##_##NR_##_##NB_(const uint8_t *const *w, const float *const *x, \
                                                  int64_t cv, const uint8_t *pf, size_t pf_len,   \
                                                  float out[MM_DNR][MM_DNB])                      \
    {                                                                                             \
        mm_f_direct(T_, MM_DROWS_##NR_, NB_, w, x, cv, pf, pf_len, out);                          \
    }
#define MM_D_CASES_NB(T_, TN_, NB_) \
    MM_D_CASE(T_, TN_, n, NB_)      \
    MM_D_CASE(T_, TN_, 1, NB_)
#define MM_D_CASES(T_, TN_)   \
    MM_D_CASES_NB(T_, TN_, 1) \
    MM_D_CASES_NB(T_, TN_, 2) \
    MM_D_CASES_NB(T_, TN_, 3) \
    MM_D_CASES_MORE(T_, TN_)
#if MM_DNB > 3
#define MM_D_CASES_MORE(T_, TN_) \
    MM_D_CASES_NB(T_, TN_, 4)    \
    MM_D_CASES_NB(T_, TN_, 5)    \
    MM_D_CASES_NB(T_, TN_, 6)
#define MM_D_ENTRIES_MORE(TN_, NR_) \
    , mm_f_direct_##TN_##_##NR_##_4, mm_f_direct_##TN_##_##NR_##_5, mm_f_direct_##TN_##_##NR_##_6
#else
#define MM_D_CASES_MORE(T_, TN_)
#define MM_D_ENTRIES_MORE(TN_, NR_)
#endif
MM_D_CASES(SM_DTYPE_F32, f32)
MM_D_CASES(SM_DTYPE_F16, f16)
MM_D_CASES(SM_DTYPE_BF16, bf16)

typedef void (*mm_direct_fn)(const uint8_t *const *, const float *const *, int64_t, const uint8_t *,
                             size_t, float[MM_DNR][MM_DNB]);

/* The part of the next group rows (contiguous in memory) that pass p of passes should fetch:
 * the first up to group passes share them (early enough for them to arrive), later passes
 * fetch nothing. */
static inline const uint8_t *mm_next_part(const sm_mm_job *j, int64_t next_row, int64_t r1,
                                          int group, int pass, int passes, size_t *len)
{
    int64_t rows = r1 - next_row < group ? r1 - next_row : group;
    *len = 0;
    if (passes > group)
        passes = group;
    if (rows <= 0 || pass >= passes)
        return NULL;
    size_t all = (size_t)rows * j->row_bytes;
    size_t from = all * (size_t)pass / (size_t)passes;
    *len = all * (size_t)(pass + 1) / (size_t)passes - from;
    return j->w + (size_t)next_row * j->row_bytes + from;
}

static inline int mm_passes(int64_t batch)
{
    int n = 0;
    for (int64_t b = 0; b < batch; b += mm_pass_rows(batch - b))
        n++;
    return n;
}

static inline int mm_dpasses(int64_t batch)
{
    int n = 0;
    for (int64_t b = 0; b < batch; b += mm_dpass_rows(batch - b))
        n++;
    return n;
}

/* [dtype f32/f16/bf16][rows MM_DNR or 1][batch rows - 1] */
#define MM_D_ENTRIES(TN_, NR_)                                        \
    {                                                                 \
        mm_f_direct_##TN_##_##NR_##_1, mm_f_direct_##TN_##_##NR_##_2, \
            mm_f_direct_##TN_##_##NR_##_3 MM_D_ENTRIES_MORE(TN_, NR_) \
    }
static const mm_direct_fn mm_direct_fns[3][2][MM_DNB] = {
    {MM_D_ENTRIES(f32, n), MM_D_ENTRIES(f32, 1)},
    {MM_D_ENTRIES(f16, n), MM_D_ENTRIES(f16, 1)},
    {MM_D_ENTRIES(bf16, n), MM_D_ENTRIES(bf16, 1)},
};

static void mm_f_rows_direct(const sm_mm_job *j, int64_t r0, int64_t r1)
{
    int passes = mm_dpasses(j->batch);
    int64_t cv = j->cols / MM_VL * MM_VL;
    int ti = j->dtype == SM_DTYPE_F32 ? 0 : j->dtype == SM_DTYPE_F16 ? 1 : 2;
    for (int64_t r = r0; r < r1; r += MM_DNR) {
        int nr = (int)(r1 - r < MM_DNR ? r1 - r : MM_DNR);
        const uint8_t *w[MM_DNR];
        for (int i = 0; i < nr; i++)
            w[i] = j->w + (size_t)(r + i) * j->row_bytes;
        /* the passes over these rows share the fetching of the next MM_DNR rows, so that the
         * next first pass does not wait on memory */
        int pass = 0;
        for (int64_t b0 = 0, nb; b0 < j->batch; b0 += nb, pass++) {
            nb = mm_dpass_rows(j->batch - b0);
            const float *x[MM_DNB];
            for (int b = 0; b < nb; b++)
                x[b] = j->x + (b0 + b) * j->ldx;
            size_t pf_len;
            const uint8_t *pf = mm_next_part(j, r + nr, r1, MM_DNR, pass, passes, &pf_len);
            float out[MM_DNR][MM_DNB];
            if (nr == MM_DNR) {
                mm_direct_fns[ti][0][nb - 1](w, x, cv, pf, pf_len, out);
            } else {
                for (int i = 0; i < nr; i++) {
                    float o1[MM_DNR][MM_DNB];
                    mm_direct_fns[ti][1][nb - 1](w + i, x, cv, NULL, 0, o1);
                    for (int b = 0; b < nb; b++)
                        out[i][b] = o1[0][b];
                }
            }
            for (int i = 0; i < nr; i++) {
                float bias = j->bias ? j->bias[r + i] : 0.0f;
                for (int b = 0; b < nb; b++) {
                    float t = cv > 0 ? out[i][b] : 0.0f;
                    for (int64_t c = cv; c < j->cols; c++)
                        t += mm_weight_at(j, w[i], c) * x[b][c];
                    j->y[(b0 + b) * j->ldy + r + i] = t + bias;
                }
            }
        }
    }
}

/* Software prefetch for the tiled paths: the weights of the micro tile after this one (the next
 * MM_NR rows at the same columns, else the first rows at the next column tile, else, after the
 * last batch block, the first tile of the next row block), fetched a part per pass while this
 * tile's passes compute, so that converting it does not wait on memory. */
typedef struct mm_tile_pf {
    const uint8_t *base; /* the next tile's first row at its first column; NULL: none */
    size_t len;          /* bytes of each of its rows */
    int rows;
} mm_tile_pf;

/* unit: bytes per column step (an element, or a block for q8_0/q4_0); kc, kend, k0 in steps */
static mm_tile_pf mm_tile_next(const sm_mm_job *j, int64_t r1, int64_t rb, int64_t nrb, int64_t rt,
                               bool last_bb, int64_t k0, int64_t kc, int64_t kend, size_t unit)
{
    mm_tile_pf f = {NULL, 0, 0};
    int64_t row = rb + rt + MM_NR, k = k0, lim = rb + nrb;
    if (row >= lim) {
        row = rb;
        k = k0 + kc;
        if (k >= kend) {
            if (!last_bb)
                return f;
            row = rb + nrb;
            k = 0;
            lim = r1;
        }
    }
    if (row >= lim)
        return f;
    f.rows = (int)(lim - row < MM_NR ? lim - row : MM_NR);
    f.len = (size_t)(kend - k < kc ? kend - k : kc) * unit;
    f.base = j->w + (size_t)row * j->row_bytes + (size_t)k * unit;
    return f;
}

MM_INLINE void mm_tile_pf_part(const mm_tile_pf *f, size_t row_bytes, int part, int parts)
{
    if (!f->base)
        return;
    size_t from = f->len * (size_t)part / (size_t)parts & ~(size_t)63;
    size_t to = f->len * (size_t)(part + 1) / (size_t)parts;
    for (int i = 0; i < f->rows; i++)
        for (size_t o = from; o < to; o += 64)
            __builtin_prefetch(f->base + (size_t)i * row_bytes + o, 0, 3);
}

static void mm_f_rows(const sm_mm_job *j, int64_t r0, int64_t r1, float *scr)
{
    if (j->batch <= MM_DIRECT_BATCH) {
        mm_f_rows_direct(j, r0, r1);
        return;
    }
    float *wt = scr;
    float *accb = scr + MM_NR * MM_KS + MM_NR * MM_KS / 32;
    int64_t cv = j->cols / MM_VL * MM_VL;
    /* one pass over the batch (decode): whole rows, read in order; several passes: tiles small
     * enough that the weight tile and the activations of a pass stay in L1 */
    int64_t kc = j->batch <= MM_WHOLE_ROWS && cv <= MM_KS ? cv : MM_KC;
    int64_t ncr = j->batch <= 8 ? MM_NR : MM_NCR;
    for (int64_t rb = r0; rb < r1; rb += ncr) {
        int64_t nrb = r1 - rb < ncr ? r1 - rb : ncr;
        for (int64_t bb = 0; bb < j->batch; bb += MM_MC) {
            int64_t nbb = j->batch - bb < MM_MC ? j->batch - bb : MM_MC;
            for (int64_t k0 = 0; k0 < cv; k0 += kc) {
                int64_t kn = cv - k0 < kc ? cv - k0 : kc;
                for (int64_t rt = 0; rt < nrb; rt += MM_NR) {
                    int nrt = (int)(nrb - rt < MM_NR ? nrb - rt : MM_NR);
                    for (int i = 0; i < nrt; i++) {
                        const uint8_t *row = j->w + (size_t)(rb + rt + i) * j->row_bytes;
                        float *dst = wt + (int64_t)i * MM_KS;
                        if (j->dtype == SM_DTYPE_F32)
                            memcpy(dst, row + 4 * k0, (size_t)kn * 4);
                        else if (j->dtype == SM_DTYPE_F16)
                            MM_CVT_F16(dst, (const uint16_t *)(const void *)(row + 2 * k0), kn);
                        else
                            mm_cvt_bf16_cols(dst, (const uint16_t *)(const void *)row, k0, kn,
                                             j->cols);
                    }
                    mm_tile_pf pf = mm_tile_next(j, r1, rb, nrb, rt, bb + nbb >= j->batch, k0, kc,
                                                 cv, (size_t)(j->row_bytes / j->cols));
                    int passes = mm_passes(nbb), pass = 0;
                    for (int64_t b = 0, nbt; b < nbb; b += nbt, pass++) {
                        nbt = mm_pass_rows(nbb - b);
                        mm_tile_pf_part(&pf, j->row_bytes, pass, passes);
                        const float *x[MM_NB];
                        for (int i = 0; i < nbt; i++)
                            x[i] = j->x + (bb + b + i) * j->ldx + k0;
                        mm_f_dispatch(nrt, nbt, wt, x, kn, accb + (rt * nbb + b) * MM_VL, nbb,
                                      k0 == 0);
                    }
                }
            }
            /* batch row by batch row, so that each writes a run of adjacent outputs */
            for (int64_t b = 0; b < nbb; b++) {
                const float *xb = j->x + (bb + b) * j->ldx;
                float *yb = j->y + (bb + b) * j->ldy;
                if (cv == j->cols) {
                    mm_sums(accb + b * MM_VL, nbb * MM_VL, nrb, j->bias ? j->bias + rb : NULL,
                            yb + rb);
                    continue;
                }
                for (int64_t i = 0; i < nrb; i++) {
                    int64_t r = rb + i;
                    const uint8_t *row = j->w + (size_t)r * j->row_bytes;
                    float t = cv > 0 ? MM_HSUM(MM_LOADU(accb + (i * nbb + b) * MM_VL)) : 0.0f;
                    for (int64_t c = cv; c < j->cols; c++)
                        t += mm_weight_at(j, row, c) * xb[c];
                    yb[r] = t + (j->bias ? j->bias[r] : 0.0f);
                }
            }
        }
    }
}

/* ---- q8_0 / q4_0 ---- */

/* The weight tile: int8 values (MM_NR x MM_KS), their absolute values, the block scales. */
typedef struct mm_qtile {
    int8_t *w;
    uint8_t *aw;
    float *d;
} mm_qtile;

#ifndef MM_Q_PAIRS /* the 8-lane rule (see MM_Q_PAIRS below for the 16-lane one) */
/* Block k of one weight row (signed values w, their absolute values aw, scale vdw) times the
 * activation blocks xv[0..nb) (scales xd[b][k]), added into a[0..nb): the one definition of the
 * q8_0/q4_0 arithmetic, shared by the tiled and the direct path so that they agree bitwise. The
 * scale dw * dx is one f32 product. */
MM_INLINE void mm_q_block_fma(int nb, __m256i w, __m256i aw, __m256 vdw, const __m256i *xv,
                              const float *const *xd, int64_t k, __m256 *a)
{
    for (int b = 0; b < nb; b++) {
        __m256i s = _mm256_sign_epi8(xv[b], w);
        __m256 p = _mm256_cvtepi32_ps(MM_QDOT(aw, s));
        __m256 sc = _mm256_mul_ps(vdw, _mm256_broadcast_ss(&xd[b][k]));
        a[b] = _mm256_fmadd_ps(sc, p, a[b]);
    }
}

MM_INLINE void mm_q_kernel(int nr, int nb, const mm_qtile *t, const int8_t *const *xq,
                           const float *const *xd, int64_t nblk, float *acc, int64_t ms, bool first)
{
    __m256 a[MM_NR][MM_NB];
    for (int r = 0; r < nr; r++)
        for (int b = 0; b < nb; b++)
            a[r][b] =
                first ? _mm256_setzero_ps() : _mm256_loadu_ps(acc + ((int64_t)r * ms + b) * 8);
    for (int64_t k = 0; k < nblk; k++) {
        __m256i xv[MM_NB];
        for (int b = 0; b < nb; b++)
            xv[b] = _mm256_loadu_si256((const __m256i *)(const void *)(xq[b] + 32 * k));
        for (int r = 0; r < nr; r++) {
            __m256i w =
                _mm256_loadu_si256((const __m256i *)(const void *)(t->w + r * MM_KS + 32 * k));
            __m256i aw =
                _mm256_loadu_si256((const __m256i *)(const void *)(t->aw + r * MM_KS + 32 * k));
            /* broadcasts from memory use load ports */
            __m256 vdw = _mm256_broadcast_ss(&t->d[r * (MM_KS / 32) + k]);
            mm_q_block_fma(nb, w, aw, vdw, xv, xd, k, a[r]);
        }
    }
    for (int r = 0; r < nr; r++)
        for (int b = 0; b < nb; b++)
            _mm256_storeu_ps(acc + ((int64_t)r * ms + b) * 8, a[r][b]);
}

#define MM_Q_CASE(NR_, NB_)                                                                 \
    static void mm_q_kernel_##NR_##_##NB_(const mm_qtile *t, const int8_t *const *xq,       \
                                          const float *const *xd, int64_t nblk, float *acc, \
                                          int64_t ms, bool first)                           \
    {                                                                                       \
        mm_q_kernel(MM_ROWS_##NR_, NB_, t, xq, xd, nblk, acc, ms, first);                   \
    }
MM_Q_CASE(n, 3)
MM_Q_CASE(n, 2)
MM_Q_CASE(n, 1)
MM_Q_CASE(1, 3)
MM_Q_CASE(1, 2)
MM_Q_CASE(1, 1)

static void mm_q_dispatch(int nr, int nb, const mm_qtile *t, const int8_t *const *xq,
                          const float *const *xd, int64_t nblk, float *acc, int64_t ms, bool first)
{
    if (nr == MM_NR) {
        if (nb == 3)
            mm_q_kernel_n_3(t, xq, xd, nblk, acc, ms, first);
        else if (nb == 2)
            mm_q_kernel_n_2(t, xq, xd, nblk, acc, ms, first);
        else
            mm_q_kernel_n_1(t, xq, xd, nblk, acc, ms, first);
        return;
    }
    for (int r = 0; r < nr; r++) {
        mm_qtile one = {t->w + r * MM_KS, t->aw + r * MM_KS, t->d + r * (MM_KS / 32)};
        float *a = acc + (int64_t)r * ms * 8;
        if (nb == 3)
            mm_q_kernel_1_3(&one, xq, xd, nblk, a, ms, first);
        else if (nb == 2)
            mm_q_kernel_1_2(&one, xq, xd, nblk, a, ms, first);
        else
            mm_q_kernel_1_1(&one, xq, xd, nblk, a, ms, first);
    }
}

#endif /* !MM_Q_PAIRS */

/* a decode pass over q8_0/q4_0 rows (mm_q_direct, mm_qp_direct): rows, activations and their
 * scales, blocks, the rows' f32 scales or NULL, what to prefetch, accumulators and their
 * batch stride */
typedef void (*mm_qdirect_fn)(const uint8_t *const *, const int8_t *const *, const float *const *,
                              int64_t, const float *, const uint8_t *, size_t, float *, int64_t);

/* The 32 values of the q8_0/q4_0 block at b as signed bytes, and its scale. */
MM_INLINE __m256i mm_q_block(sm_dtype t, const uint8_t *b)
{
    if (t == SM_DTYPE_Q8_0)
        return _mm256_loadu_si256((const __m256i *)(const void *)(b + 2));
    __m128i q = _mm_loadu_si128((const __m128i *)(const void *)(b + 2));
    __m256i both = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    return _mm256_sub_epi8(_mm256_and_si256(both, _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(8));
}

MM_INLINE float mm_q_scale(const uint8_t *b)
{
    uint16_t dh;
    memcpy(&dh, b, 2);
    return _cvtsh_ss(dh);
}

/* Unpacks nblk blocks of one weight row into the tile row i. */
static void mm_q_unpack(sm_dtype t, const uint8_t *src, int64_t nblk, const mm_qtile *tile, int i)
{
    size_t bsz = t == SM_DTYPE_Q8_0 ? 34 : 18;
    for (int64_t k = 0; k < nblk; k++) {
        const uint8_t *b = src + bsz * (size_t)k;
        __m256i w = mm_q_block(t, b);
        tile->d[i * (MM_KS / 32) + k] = mm_q_scale(b);
        _mm256_storeu_si256((__m256i *)(void *)(tile->w + i * MM_KS + 32 * k), w);
        _mm256_storeu_si256((__m256i *)(void *)(tile->aw + i * MM_KS + 32 * k), _mm256_abs_epi8(w));
    }
}

/* Shared by the two decode row loops (mm_q_rows_direct, mm_qp_rows_direct). */

/* The quantized activations and their scales of the nb batch rows from b0. */
static void mm_q_pass_x(const sm_mm_job *j, int64_t b0, int nb, int64_t nblk,
                        const int8_t *xq[MM_NB], const float *xd[MM_NB])
{
    for (int b = 0; b < nb; b++) {
        xq[b] = j->xq + (b0 + b) * j->cols;
        xd[b] = j->xd + (b0 + b) * nblk;
    }
}

/* The f32 scales of nr weight rows, row i at dw + i * nblk. */
static void mm_q_row_scales(const sm_mm_job *j, const uint8_t *const *w, int nr, int64_t nblk,
                            float *dw)
{
    size_t bsz = j->dtype == SM_DTYPE_Q8_0 ? 34 : 18;
    for (int i = 0; i < nr; i++)
        for (int64_t k = 0; k < nblk; k++)
            dw[i * nblk + k] = mm_q_scale(w[i] + bsz * (size_t)k);
}

/* The outputs of rows r .. r + nr from their MM_QL-lane accumulators (row i, batch row b at
 * accb + (i * batch + b) * MM_QL), plus the bias. */
static void mm_q_group_out(const sm_mm_job *j, int64_t r, int nr, int64_t nblk, const float *accb)
{
    for (int i = 0; i < nr; i++) {
        float bias = j->bias ? j->bias[r + i] : 0.0f;
        for (int64_t b = 0; b < j->batch; b++) {
            const float *a = accb + (i * j->batch + b) * MM_QL;
#ifdef MM_Q_PAIRS
            float t = nblk > 0 ? MM_HSUM(_mm512_loadu_ps(a)) : 0.0f;
#else
            float t = nblk > 0 ? mm_hsum8(_mm256_loadu_ps(a)) : 0.0f;
#endif
            j->y[b * j->ldy + r + i] = t + bias;
        }
    }
}

#ifndef MM_Q_PAIRS
/* Small batches (decode): the blocks are unpacked in registers as they stream in, with the
 * arithmetic of mm_q_kernel (mm_q_block_fma on the same values). Lanes go to acc as in
 * mm_f_direct; pf, pf_len: weights to fetch into L2 meanwhile (NULL: none). */
MM_INLINE void mm_q_direct(sm_dtype t, int nr, int nb, const uint8_t *const *w,
                           const int8_t *const *xq, const float *const *xd, int64_t nblk,
                           const float *dw, const uint8_t *pf, size_t pf_len, float *acc,
                           int64_t ms)
{
    const size_t bsz = t == SM_DTYPE_Q8_0 ? 34 : 18;
    mm_prefetch pfs = mm_prefetch_init(pf, pf_len, nblk);
    __m256 a[MM_NR][MM_NB];
    for (int r = 0; r < nr; r++)
        for (int b = 0; b < nb; b++)
            a[r][b] = _mm256_setzero_ps();
    int64_t k = 0;
#ifdef MM_Q_ROWS4
    if (t == SM_DTYPE_Q8_0 && nr == MM_NR && nb >= 2 && dw) {
        MM_Q_ROWS4(nb, (const int8_t *)(w[0] + 2), (intptr_t)bsz, w[1] - w[0], xq[0], xq[1] - xq[0],
                   dw, nblk, xd, nblk, &pfs, a);
        k = nblk;
    }
#else
    (void)dw;
#endif
    for (; k < nblk; k++) {
        mm_prefetch_step(&pfs);
        __m256i xv[MM_NB];
        for (int b = 0; b < nb; b++)
            xv[b] = _mm256_loadu_si256((const __m256i *)(const void *)(xq[b] + 32 * k));
        for (int r = 0; r < nr; r++) {
            const uint8_t *blk = w[r] + bsz * (size_t)k;
            __m256i wq = mm_q_block(t, blk);
            __m256i aw = _mm256_abs_epi8(wq);
            mm_q_block_fma(nb, wq, aw, _mm256_set1_ps(mm_q_scale(blk)), xv, xd, k, a[r]);
        }
    }
    for (int r = 0; r < nr; r++)
        for (int b = 0; b < nb; b++)
            _mm256_storeu_ps(acc + ((int64_t)r * ms + b) * 8, a[r][b]);
}

#define MM_QD_CASE(T_, TN_, NR_, NB_)                                                           \
    static void mm_q_direct_##TN_##_##NR_##_##NB_(                                              \
        const uint8_t *const *w, const int8_t *const *xq, const float *const *xd, int64_t nblk, \
        const float *dw, const uint8_t *pf, size_t pf_len, float *acc, int64_t ms)              \
    {                                                                                           \
        mm_q_direct(T_, MM_ROWS_##NR_, NB_, w, xq, xd, nblk, dw, pf, pf_len, acc, ms);          \
    }
#define MM_QD_CASES(T_, TN_)  \
    MM_QD_CASE(T_, TN_, n, 3) \
    MM_QD_CASE(T_, TN_, n, 2) \
    MM_QD_CASE(T_, TN_, n, 1) \
    MM_QD_CASE(T_, TN_, 1, 3) \
    MM_QD_CASE(T_, TN_, 1, 2) \
    MM_QD_CASE(T_, TN_, 1, 1)
MM_QD_CASES(SM_DTYPE_Q8_0, q8)
MM_QD_CASES(SM_DTYPE_Q4_0, q4)

/* [q8_0/q4_0][rows MM_NR or 1][batch rows - 1] */
static const mm_qdirect_fn mm_qdirect_fns[2][2][MM_NB] = {
    {{mm_q_direct_q8_n_1, mm_q_direct_q8_n_2, mm_q_direct_q8_n_3},
     {mm_q_direct_q8_1_1, mm_q_direct_q8_1_2, mm_q_direct_q8_1_3}},
    {{mm_q_direct_q4_n_1, mm_q_direct_q4_n_2, mm_q_direct_q4_n_3},
     {mm_q_direct_q4_1_1, mm_q_direct_q4_1_2, mm_q_direct_q4_1_3}},
};

#endif /* !MM_Q_PAIRS */

#ifdef MM_Q_PAIRS
/* ---- q8_0/q4_0 with two blocks per 512-bit vector (MM_Q_PAIRS) ----
 * Arithmetic per output, in place of the 8-lane rule at the top: one 16-lane accumulator;
 * block k goes to the lanes 8 (k & 1) .. 8 (k & 1) + 7, where lane l of that half gets
 * fma(dw_k * dx_k, (float)isum_l, acc) exactly as before; the last block of an odd count is
 * added with zeros in the other half (which adds +0 there); at the end lanes l and l + 8 are
 * added, then the 8-lane tree (MM_HSUM, mm_hsum16). One vpdpbusd then does 64 products, where
 * the 8-lane rule did 32 per instruction. */
#define MM_QP_NR 4  /* weight rows per micro kernel (4 x 3 accumulators, registers to spare) */
#define MM_QP_NR1 8 /* weight rows per decode group at batch 1: more rows streaming at once */

/* [v[0] x 8 | v[1] x 8] */
MM_INLINE __m512 mm_qp_scales(const float *v)
{
    __m128 two = _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(const void *)v));
    return _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
                                 _mm512_castps128_ps512(two));
}

/* One pair of blocks of one weight row (absolute values aw, the mask of its negative values,
 * scales vdw) times the activation pairs xv[0..nb) (scales vdx), added into a[0..nb): the one
 * definition of this arithmetic, shared by the tiled and the direct path. */
MM_INLINE void mm_qp_fma(int nb, __m512i aw, __mmask64 neg, __m512 vdw, const __m512i *xv,
                         const __m512 *vdx, __m512 *a)
{
    for (int b = 0; b < nb; b++) {
        __m512i sx = _mm512_mask_sub_epi8(xv[b], neg, _mm512_setzero_si512(), xv[b]);
        __m512 p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), aw, sx));
        a[b] = _mm512_fmadd_ps(_mm512_mul_ps(vdw, vdx[b]), p, a[b]);
    }
}

/* the activation blocks k, k + 1 of the batch rows (one block, zeros above, when single) */
MM_INLINE void mm_qp_load_x(int nb, const int8_t *const *xq, const float *const *xd, int64_t k,
                            bool single, __m512i *xv, __m512 *vdx)
{
    for (int b = 0; b < nb; b++) {
        if (single) {
            xv[b] = _mm512_zextsi256_si512(
                _mm256_loadu_si256((const __m256i *)(const void *)(xq[b] + 32 * k)));
            vdx[b] = _mm512_set1_ps(xd[b][k]);
        } else {
            xv[b] = _mm512_loadu_si512((const void *)(xq[b] + 32 * k));
            vdx[b] = mm_qp_scales(xd[b] + k);
        }
    }
}

/* Tiled path (prompts): rows [0, nr) of the tile, nr <= MM_QP_NR. */
MM_INLINE void mm_qp_kernel(int nr, int nb, const mm_qtile *t, const int8_t *const *xq,
                            const float *const *xd, int64_t nblk, float *acc, int64_t ms,
                            bool first)
{
    __m512 a[MM_QP_NR][MM_NB];
    for (int r = 0; r < nr; r++)
        for (int b = 0; b < nb; b++)
            a[r][b] =
                first ? _mm512_setzero_ps() : _mm512_loadu_ps(acc + ((int64_t)r * ms + b) * 16);
    for (int64_t k = 0; k < nblk; k += 2) {
        bool single = k + 1 == nblk;
        __m512i xv[MM_NB];
        __m512 vdx[MM_NB];
        mm_qp_load_x(nb, xq, xd, k, single, xv, vdx);
        for (int r = 0; r < nr; r++) {
            const int8_t *w = t->w + r * MM_KS + 32 * k;
            const uint8_t *aw = t->aw + r * MM_KS + 32 * k;
            const float *d = t->d + r * (MM_KS / 32) + k;
            __m512i wv, awv;
            __m512 vdw;
            if (single) {
                wv = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)w));
                awv = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)aw));
                vdw = _mm512_set1_ps(d[0]);
            } else {
                wv = _mm512_loadu_si512((const void *)w);
                awv = _mm512_loadu_si512((const void *)aw);
                vdw = mm_qp_scales(d);
            }
            mm_qp_fma(nb, awv, _mm512_movepi8_mask(wv), vdw, xv, vdx, a[r]);
        }
    }
    for (int r = 0; r < nr; r++)
        for (int b = 0; b < nb; b++)
            _mm512_storeu_ps(acc + ((int64_t)r * ms + b) * 16, a[r][b]);
}

#define MM_QP_CASE(NR_, NB_)                                                                 \
    static void mm_qp_kernel_##NR_##_##NB_(const mm_qtile *t, const int8_t *const *xq,       \
                                           const float *const *xd, int64_t nblk, float *acc, \
                                           int64_t ms, bool first)                           \
    {                                                                                        \
        mm_qp_kernel(NR_, NB_, t, xq, xd, nblk, acc, ms, first);                             \
    }
MM_QP_CASE(4, 3)
MM_QP_CASE(4, 2)
MM_QP_CASE(4, 1)
MM_QP_CASE(1, 3)
MM_QP_CASE(1, 2)
MM_QP_CASE(1, 1)

static void mm_qp_dispatch(int nr, int nb, const mm_qtile *t, const int8_t *const *xq,
                           const float *const *xd, int64_t nblk, float *acc, int64_t ms, bool first)
{
    for (int r = 0; r < nr;) {
        int n = nr - r >= MM_QP_NR ? MM_QP_NR : 1;
        mm_qtile part = {t->w + r * MM_KS, t->aw + r * MM_KS, t->d + r * (MM_KS / 32)};
        float *a = acc + (int64_t)r * ms * 16;
        if (n == MM_QP_NR)
            (nb == 3   ? mm_qp_kernel_4_3
             : nb == 2 ? mm_qp_kernel_4_2
                       : mm_qp_kernel_4_1)(&part, xq, xd, nblk, a, ms, first);
        else
            (nb == 3   ? mm_qp_kernel_1_3
             : nb == 2 ? mm_qp_kernel_1_2
                       : mm_qp_kernel_1_1)(&part, xq, xd, nblk, a, ms, first);
        r += n;
    }
}

/* One weight row's pair of blocks at blk (or one block, zeros above, when single) times the
 * activation pairs, added into a; scales from d (the row's f32 scales at block k) when
 * has_d, else read with the blocks. */
MM_INLINE void mm_qp_direct_row(sm_dtype t, size_t bsz, const uint8_t *blk, bool has_d,
                                const float *d, bool single, int nb, const __m512i *xv,
                                const __m512 *vdx, __m512 *a)
{
    __m512i wq;
    __m512 vdw;
    if (single) {
        wq = _mm512_zextsi256_si512(mm_q_block(t, blk));
        vdw = _mm512_set1_ps(has_d ? d[0] : mm_q_scale(blk));
    } else {
        wq = _mm512_inserti64x4(_mm512_castsi256_si512(mm_q_block(t, blk)),
                                mm_q_block(t, blk + bsz), 1);
        vdw = has_d ? mm_qp_scales(d)
                    : _mm512_insertf32x8(_mm512_set1_ps(mm_q_scale(blk)),
                                         _mm256_set1_ps(mm_q_scale(blk + bsz)), 1);
    }
    mm_qp_fma(nb, _mm512_abs_epi8(wq), _mm512_movepi8_mask(wq), vdw, xv, vdx, a);
}

/* Direct path (decode): nr rows read from their blocks as they stream in; with has_dw their
 * scales as f32 from dw (row r at dw + r * nblk), else read with the blocks (one pass); the
 * lanes go to acc as in mm_q_direct. */
MM_INLINE void mm_qp_direct(sm_dtype t, int nr, int nb, const uint8_t *const *w,
                            const int8_t *const *xq, const float *const *xd, int64_t nblk,
                            bool has_dw, const float *dw, const uint8_t *pf, size_t pf_len,
                            float *acc, int64_t ms)
{
    const size_t bsz = t == SM_DTYPE_Q8_0 ? 34 : 18;
    mm_prefetch pfs = mm_prefetch_init(pf, pf_len, nblk);
    __m512 a[MM_QP_NR1][MM_NB];
    for (int r = 0; r < nr; r++)
        for (int b = 0; b < nb; b++)
            a[r][b] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 2 <= nblk; k += 2) {
        mm_prefetch_step(&pfs);
        mm_prefetch_step(&pfs);
        __m512i xv[MM_NB];
        __m512 vdx[MM_NB];
        mm_qp_load_x(nb, xq, xd, k, false, xv, vdx);
        for (int r = 0; r < nr; r++)
            mm_qp_direct_row(t, bsz, w[r] + bsz * (size_t)k, has_dw,
                             has_dw ? dw + r * nblk + k : NULL, false, nb, xv, vdx, a[r]);
    }
    if (k < nblk) {
        __m512i xv[MM_NB];
        __m512 vdx[MM_NB];
        mm_qp_load_x(nb, xq, xd, k, true, xv, vdx);
        for (int r = 0; r < nr; r++)
            mm_qp_direct_row(t, bsz, w[r] + bsz * (size_t)k, has_dw,
                             has_dw ? dw + r * nblk + k : NULL, true, nb, xv, vdx, a[r]);
    }
    for (int r = 0; r < nr; r++)
        for (int b = 0; b < nb; b++)
            _mm512_storeu_ps(acc + ((int64_t)r * ms + b) * 16, a[r][b]);
}

/* instances: 8 x 1 (batch 1, scales read with the blocks), 4 x nb (several passes, scales from
 * the table), 1 x nb (the rows left over; either) */
#define MM_QPD_CASE(T_, TN_, NR_, NB_, HAS_DW_)                                                 \
    static void mm_qp_direct_##TN_##_##NR_##_##NB_(                                             \
        const uint8_t *const *w, const int8_t *const *xq, const float *const *xd, int64_t nblk, \
        const float *dw, const uint8_t *pf, size_t pf_len, float *acc, int64_t ms)              \
    {                                                                                           \
        mm_qp_direct(T_, NR_, NB_, w, xq, xd, nblk, HAS_DW_, dw, pf, pf_len, acc, ms);          \
    }
#define MM_QPD_CASES(T_, TN_)              \
    MM_QPD_CASE(T_, TN_, 8, 1, false)      \
    MM_QPD_CASE(T_, TN_, 4, 3, true)       \
    MM_QPD_CASE(T_, TN_, 4, 2, true)       \
    MM_QPD_CASE(T_, TN_, 4, 1, true)       \
    MM_QPD_CASE(T_, TN_, 1, 3, dw != NULL) \
    MM_QPD_CASE(T_, TN_, 1, 2, dw != NULL) \
    MM_QPD_CASE(T_, TN_, 1, 1, dw != NULL)
MM_QPD_CASES(SM_DTYPE_Q8_0, q8)
MM_QPD_CASES(SM_DTYPE_Q4_0, q4)

/* [q8_0/q4_0][rows MM_QP_NR or 1][batch rows - 1] */
static const mm_qdirect_fn mm_qpdirect_fns[2][2][MM_NB] = {
    {{mm_qp_direct_q8_4_1, mm_qp_direct_q8_4_2, mm_qp_direct_q8_4_3},
     {mm_qp_direct_q8_1_1, mm_qp_direct_q8_1_2, mm_qp_direct_q8_1_3}},
    {{mm_qp_direct_q4_4_1, mm_qp_direct_q4_4_2, mm_qp_direct_q4_4_3},
     {mm_qp_direct_q4_1_1, mm_qp_direct_q4_1_2, mm_qp_direct_q4_1_3}},
};

/* The pair counterpart of mm_q_rows_direct: batch 1 takes 8 rows at a time and reads their
 * scales with the blocks, so that the rows stream from memory once, in the vector loop with its
 * prefetch; larger batches take MM_QP_NR rows at a time, their scales converted once for all
 * the passes (after the accumulators in the row buffer). */
static void mm_qp_rows_direct(const sm_mm_job *j, int64_t r0, int64_t r1, float *accb)
{
    int passes = mm_passes(j->batch);
    int64_t nblk = j->cols / 32;
    int ti = j->dtype == SM_DTYPE_Q8_0 ? 0 : 1;
    /* the table, when it fits in the row buffer after the accumulators (rows of up to about
     * 500,000 columns); else the rows go one at a time with their scales read inline */
    bool fits = MM_QP_NR * MM_DIRECT_BATCH * 16 + MM_QP_NR * nblk <= (int64_t)MM_NCR * MM_MC * 16;
    float *dw = j->batch > 1 && fits ? accb + MM_QP_NR * MM_DIRECT_BATCH * 16 : NULL;
    int group = j->batch == 1 ? MM_QP_NR1 : MM_QP_NR;
    for (int64_t r = r0; r < r1; r += group) {
        int nr = (int)(r1 - r < group ? r1 - r : group);
        const uint8_t *w[MM_QP_NR1];
        for (int i = 0; i < nr; i++)
            w[i] = j->w + (size_t)(r + i) * j->row_bytes;
        if (dw)
            mm_q_row_scales(j, w, nr, nblk, dw);
        int pass = 0;
        for (int64_t b0 = 0, nb; b0 < j->batch; b0 += nb, pass++) {
            nb = mm_pass_rows(j->batch - b0);
            const int8_t *xq[MM_NB];
            const float *xd[MM_NB];
            mm_q_pass_x(j, b0, (int)nb, nblk, xq, xd);
            size_t pf_len;
            const uint8_t *pf = mm_next_part(j, r + nr, r1, group, pass, passes, &pf_len);
            float *acc = accb + b0 * 16;
            if (nr == MM_QP_NR1 && group == MM_QP_NR1) {
                (ti == 0 ? mm_qp_direct_q8_8_1 : mm_qp_direct_q4_8_1)(w, xq, xd, nblk, dw, pf,
                                                                      pf_len, acc, j->batch);
            } else if (nr == MM_QP_NR && group == MM_QP_NR && dw) {
                mm_qpdirect_fns[ti][0][nb - 1](w, xq, xd, nblk, dw, pf, pf_len, acc, j->batch);
            } else {
                for (int i = 0; i < nr; i++)
                    mm_qpdirect_fns[ti][1][nb - 1](w + i, xq, xd, nblk, dw ? dw + i * nblk : NULL,
                                                   NULL, 0, acc + i * j->batch * 16, j->batch);
            }
        }
        mm_q_group_out(j, r, nr, nblk, accb);
    }
}
#endif /* MM_Q_PAIRS */

#ifndef MM_Q_PAIRS
/* The q8_0/q4_0 counterpart of mm_f_rows_direct: whole rows, MM_NR at a time, passes of up to
 * MM_NB batch rows, which share the fetching of the next MM_NR rows. */
static void mm_q_rows_direct(const sm_mm_job *j, int64_t r0, int64_t r1, float *accb)
{
    int passes = mm_passes(j->batch);
    int64_t nblk = j->cols / 32;
    int ti = j->dtype == SM_DTYPE_Q8_0 ? 0 : 1;
    /* q8_0 passes of 2-3 batch rows take the rows' scales as f32, converted once for all the
     * passes, after the accumulators in the row buffer (when they fit) */
    float *dw = NULL;
    if (j->dtype == SM_DTYPE_Q8_0 && j->batch >= 2 &&
        MM_NR * MM_DIRECT_BATCH * 8 + MM_NR * nblk <= (int64_t)MM_NCR * MM_MC * 8)
        dw = accb + MM_NR * MM_DIRECT_BATCH * 8;
    for (int64_t r = r0; r < r1; r += MM_NR) {
        int nr = (int)(r1 - r < MM_NR ? r1 - r : MM_NR);
        const uint8_t *w[MM_NR];
        for (int i = 0; i < nr; i++)
            w[i] = j->w + (size_t)(r + i) * j->row_bytes;
        if (dw && nr == MM_NR)
            mm_q_row_scales(j, w, nr, nblk, dw);
        int pass = 0;
        for (int64_t b0 = 0, nb; b0 < j->batch; b0 += nb, pass++) {
            nb = mm_pass_rows(j->batch - b0);
            const int8_t *xq[MM_NB];
            const float *xd[MM_NB];
            mm_q_pass_x(j, b0, (int)nb, nblk, xq, xd);
            size_t pf_len;
            const uint8_t *pf = mm_next_part(j, r + nr, r1, MM_NR, pass, passes, &pf_len);
            float *acc = accb + b0 * 8;
            if (nr == MM_NR) {
                mm_qdirect_fns[ti][0][nb - 1](w, xq, xd, nblk, dw, pf, pf_len, acc, j->batch);
            } else {
                for (int i = 0; i < nr; i++)
                    mm_qdirect_fns[ti][1][nb - 1](w + i, xq, xd, nblk, NULL, NULL, 0,
                                                  acc + i * j->batch * 8, j->batch);
            }
        }
        mm_q_group_out(j, r, nr, nblk, accb);
    }
}

#endif /* !MM_Q_PAIRS */

static void mm_q_rows(const sm_mm_job *j, int64_t r0, int64_t r1, float *scr)
{
    mm_qtile tile = {(int8_t *)scr, (uint8_t *)scr + MM_NR * MM_KS, scr + MM_NR * MM_KS / 2};
    float *accb = scr + MM_NR * MM_KS + MM_NR * MM_KS / 32;
    if (j->batch <= MM_DIRECT_BATCH) {
#ifdef MM_Q_PAIRS
        mm_qp_rows_direct(j, r0, r1, accb);
#else
        mm_q_rows_direct(j, r0, r1, accb);
#endif
        return;
    }
    int64_t nbt_all = j->cols / 32;
    size_t bsz = j->dtype == SM_DTYPE_Q8_0 ? 34 : 18;
    /* blocks per tile, chosen as for f32 above */
    int64_t kcb = j->batch <= MM_WHOLE_ROWS && nbt_all <= MM_KS / 32 ? nbt_all : MM_KC / 32;
    int64_t ncr = j->batch <= 8 ? MM_NR : MM_NCR;
    for (int64_t rb = r0; rb < r1; rb += ncr) {
        int64_t nrb = r1 - rb < ncr ? r1 - rb : ncr;
        for (int64_t bb = 0; bb < j->batch; bb += MM_MC) {
            int64_t nbb = j->batch - bb < MM_MC ? j->batch - bb : MM_MC;
            for (int64_t k0 = 0; k0 < nbt_all; k0 += kcb) {
                int64_t kn = nbt_all - k0 < kcb ? nbt_all - k0 : kcb;
                for (int64_t rt = 0; rt < nrb; rt += MM_NR) {
                    int nrt = (int)(nrb - rt < MM_NR ? nrb - rt : MM_NR);
                    for (int i = 0; i < nrt; i++)
                        mm_q_unpack(j->dtype,
                                    j->w + (size_t)(rb + rt + i) * j->row_bytes + bsz * k0, kn,
                                    &tile, i);
                    mm_tile_pf pf = mm_tile_next(j, r1, rb, nrb, rt, bb + nbb >= j->batch, k0, kcb,
                                                 nbt_all, bsz);
                    int passes = mm_passes(nbb), pass = 0;
                    for (int64_t b = 0, nbt; b < nbb; b += nbt, pass++) {
                        nbt = mm_pass_rows(nbb - b);
                        mm_tile_pf_part(&pf, j->row_bytes, pass, passes);
                        const int8_t *xq[MM_NB];
                        const float *xd[MM_NB];
                        for (int i = 0; i < nbt; i++) {
                            xq[i] = j->xq + (bb + b + i) * j->cols + 32 * k0;
                            xd[i] = j->xd + (bb + b + i) * nbt_all + k0;
                        }
#ifdef MM_Q_PAIRS
                        mm_qp_dispatch(nrt, nbt, &tile, xq, xd, kn, accb + (rt * nbb + b) * 16, nbb,
                                       k0 == 0);
#else
                        mm_q_dispatch(nrt, nbt, &tile, xq, xd, kn, accb + (rt * nbb + b) * 8, nbb,
                                      k0 == 0);
#endif
                    }
                }
            }
            for (int64_t b = 0; b < nbb; b++) {
                float *yb = j->y + (bb + b) * j->ldy + rb;
#if defined(MM_Q_PAIRS) || MM_VL == 8
                /* MM_VL lanes: 16 with MM_Q_PAIRS, else 8 */
                mm_sums(accb + b * MM_VL, nbb * MM_VL, nrb, j->bias ? j->bias + rb : NULL, yb);
#else
                /* 8-lane accumulators under 16-lane vectors (test_kernels_vl16) */
                for (int64_t i = 0; i < nrb; i++)
                    yb[i] = mm_hsum8(_mm256_loadu_ps(accb + (i * nbb + b) * 8)) +
                            (j->bias ? j->bias[rb + i] : 0.0f);
#endif
            }
        }
    }
}

static void mm_rows(const sm_mm_job *j, int64_t r0, int64_t r1, int task)
{
    float *scr = j->scratch + (int64_t)task * j->scratch_floats;
    if (j->dtype == SM_DTYPE_Q8_0 || j->dtype == SM_DTYPE_Q4_0)
        mm_q_rows(j, r0, r1, scr);
    else
        mm_f_rows(j, r0, r1, scr);
}
