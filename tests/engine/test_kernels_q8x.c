/* test_kernels_q8x: q8_0 weights packed for the SIMD kernels (sm_pack_rows), widths 8 (AVX2)
 * and 16 (AVX-512), and q4_0 weights packed with width 8 (AVX2). Packing loses nothing (rows read back equal the GGUF rows); the packed
 * products equal, bitwise, a scalar rendering of their documented arithmetic for every batch
 * size (decode and prompt blocking, column tiles, rows left over, threads), so each output is
 * the same whatever it is batched with; they stay within rounding of a double-precision
 * product; grouped products (sm_matmul_group) equal the products alone; a context that cannot
 * read the layout is refused. A variant this CPU lacks is
 * reported and not tested. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels_isa.h"
#include "sm_kernels.h"
#include "sm_pool.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float rng_f(void) /* uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(uint32_t)(rng_state >> 16) / 2147483648.0 - 1.0);
}

static void fill(float *x, int64_t n, float scale)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = rng_f() * scale;
}

/* A q8_0 or q4_0 matrix as stored (GGUF blocks) and packed. */
typedef struct qmat {
    sm_dtype t;
    int width;
    int64_t rows, cols;
    uint8_t *q8;
    void *packed;
    sm_matrix m;
} qmat;

/* A q4_k or q5_k row of random super-blocks (the engine reads K-quants but never quantizes to
 * them): small positive d and dmin, every 6-bit scale and min and 4- or 5-bit value possible. */
static void q45k_random_row(uint8_t *row, int64_t cols, size_t block_bytes)
{
    for (int64_t g = 0; g < cols / 256; g++) {
        uint8_t *b = row + block_bytes * (size_t)g;
        uint16_t dd[2] = {sm_f32_to_f16(0.001f + 0.002f * fabsf(rng_f())),
                          sm_f32_to_f16(0.004f * fabsf(rng_f()))};
        memcpy(b, dd, 4);
        for (size_t i = 4; i < block_bytes; i++)
            b[i] = (uint8_t)(int)((rng_f() + 1.0f) * 128.0f);
    }
}

/* A q6_k row of random super-blocks: every 6-bit value and int8 scale possible, a small d. */
static void q6k_random_row(uint8_t *row, int64_t cols)
{
    for (int64_t g = 0; g < cols / 256; g++) {
        uint8_t *b = row + 210 * g;
        for (int i = 0; i < 208; i++)
            b[i] = (uint8_t)(int)((rng_f() + 1.0f) * 128.0f);
        uint16_t d = sm_f32_to_f16(0.0001f + 0.0002f * fabsf(rng_f()));
        memcpy(b + 208, &d, 2);
    }
}

static void qmat_make(qmat *a, sm_dtype t, int width, int64_t rows, int64_t cols)
{
    sm_err err;
    size_t rb = sm_dtype_row_bytes(t, cols);
    size_t pb = sm_packed_bytes(width, t, rows, cols);
    assert_true(pb > 0 && pb % (size_t)(4 * width) == 0);
    a->t = t;
    a->width = width;
    a->rows = rows;
    a->cols = cols;
    a->q8 = malloc(rb * (size_t)rows);
    assert_int_equal(posix_memalign(&a->packed, 64, pb), 0);
    float *row = malloc(sizeof *row * (size_t)cols);
    assert_non_null(a->q8);
    assert_non_null(row);
    bool kq = sm_dtype_is_kquant(t);
    for (int64_t r = 0; r < rows && kq; r++)
        if (t == SM_DTYPE_Q6_K)
            q6k_random_row(a->q8 + rb * (size_t)r, cols);
        else
            q45k_random_row(a->q8 + rb * (size_t)r, cols, t == SM_DTYPE_Q5_K ? 176 : 144);
    for (int64_t r = 0; r < rows && !kq; r++) {
        fill(row, cols, 0.5f);
        if (r % 7 == 3)
            row[r % cols] = 3.0f; /* some blocks with a larger scale */
        assert_int_equal(sm_quantize_row(t, row, cols, a->q8 + rb * (size_t)r, &err), SM_OK);
    }
    free(row);
    assert_int_equal(sm_pack_rows(width, t, a->q8, rows, cols, a->packed, &err), SM_OK);
    a->m = (sm_matrix){.dtype = t, .rows = rows, .cols = cols, .data = a->packed, .packed = width};
}

static void qmat_free(qmat *a)
{
    free(a->q8);
    free(a->packed);
}

/* The activation quantization of the kernels: d = max|x| / 127, q = round-half-even(x / d),
 * as x * (1 / d). */
static void quantize_x(const float *x, int64_t cols, int8_t *q, float *d)
{
    for (int64_t k = 0; k < cols / 32; k++) {
        float amax = 0.0f;
        for (int i = 0; i < 32; i++)
            amax = fmaxf(amax, fabsf(x[k * 32 + i]));
        float dk = amax / 127.0f, id = dk != 0.0f ? 1.0f / dk : 0.0f;
        d[k] = dk;
        for (int i = 0; i < 32; i++)
            q[k * 32 + i] = (int8_t)fminf(fmaxf(nearbyintf(x[k * 32 + i] * id), -127.0f), 127.0f);
    }
}

/* The integer sum of block k of row r with the activations' block k (q4_0: the 4-bit values
 * less 8, the first 16 in the low halves of the block's bytes, as GGUF stores them). */
static int32_t block_isum(const qmat *a, int64_t r, int64_t k, const int8_t *xq, float *dw)
{
    size_t bb = a->t == SM_DTYPE_Q4_0 ? 18 : 34;
    const uint8_t *b = a->q8 + sm_dtype_row_bytes(a->t, a->cols) * (size_t)r + bb * (size_t)k;
    uint16_t dh;
    memcpy(&dh, b, 2);
    *dw = sm_f16_to_f32(dh);
    int32_t isum = 0;
    for (int i = 0; i < 32; i++) {
        int w = a->t == SM_DTYPE_Q4_0 ? (i < 16 ? b[2 + i] & 15 : b[2 + i - 16] >> 4) - 8
                                      : (int8_t)b[2 + i];
        isum += (int32_t)w * xq[k * 32 + i];
    }
    return isum;
}

/* One output by the packed kernels' rule. Width 16: the blocks in order,
 * acc = fma(isum, dw * dx, acc), then the bias. Width 8: 8 lanes, lane j adds the blocks 8 G + j
 * in order the same way (padding blocks: isum 0, scale 0); then the 8-lane tree. */
static float ref_output(const qmat *a, int64_t r, const int8_t *xq, const float *xd, float bias)
{
    int64_t nblk = a->cols / 32, ng = (nblk + 7) / 8;
    float dw;
    if (a->width == 16) {
        float acc = 0.0f;
        for (int64_t k = 0; k < nblk; k++) {
            int32_t isum = block_isum(a, r, k, xq, &dw);
            acc = fmaf((float)isum, dw * xd[k], acc);
        }
        return acc + bias;
    }
    float lane[8] = {0};
    for (int64_t g = 0; g < ng; g++)
        for (int j = 0; j < 8; j++) {
            int64_t k = 8 * g + j;
            int32_t isum = 0;
            float s = 0.0f;
            if (k < nblk) {
                isum = block_isum(a, r, k, xq, &dw);
                s = dw * xd[k];
            }
            lane[j] = fmaf((float)isum, s, lane[j]);
        }
    float q[4];
    for (int l = 0; l < 4; l++)
        q[l] = lane[l] + lane[l + 4];
    return ((q[0] + q[2]) + (q[1] + q[3])) + bias;
}

/* One q4_k or q5_k output by the packed kernels' rule: 8 lanes, lane j adds sub-block j of
 * each super-block in order, acc = fma(isum, (d x scale) x dx, acc), then acc =
 * fma(-(dmin x min), xs, acc) with xs = dx x (sum of the activation block); then the 8-lane
 * tree. */
static float ref_output_q45k(const qmat *a, int64_t r, const int8_t *xq, const float *xd,
                             float bias)
{
    bool five = a->t == SM_DTYPE_Q5_K;
    size_t bb = five ? 176 : 144;
    const uint8_t *row = a->q8 + sm_dtype_row_bytes(a->t, a->cols) * (size_t)r;
    float lane[8] = {0};
    for (int64_t g = 0; g < a->cols / 256; g++) {
        const uint8_t *b = row + bb * (size_t)g, *qh = b + 16, *qs = b + (five ? 48 : 16);
        uint16_t dd[2];
        memcpy(dd, b, 4);
        float d = sm_f16_to_f32(dd[0]), dmin = sm_f16_to_f32(dd[1]);
        for (int j = 0; j < 8; j++) {
            int sc, m;
            sm_kq_scale_min(b + 4, j, &sc, &m);
            int64_t k = 8 * g + j;
            int32_t isum = 0, xsum = 0;
            for (int l = 0; l < 32; l++) {
                int q = (qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 15;
                if (five)
                    q |= ((qh[l] >> j) & 1) << 4;
                isum += q * xq[32 * k + l];
                xsum += xq[32 * k + l];
            }
            lane[j] = fmaf((float)isum, (d * (float)sc) * xd[k], lane[j]);
            lane[j] = fmaf(-(dmin * (float)m), xd[k] * (float)xsum, lane[j]);
        }
    }
    float q[4];
    for (int l = 0; l < 4; l++)
        q[l] = lane[l] + lane[l + 4];
    return ((q[0] + q[2]) + (q[1] + q[3])) + bias;
}

/* One q6_k output by the packed kernels' rule: 8 lanes, lane j adds the 32-value part j of
 * each super-block in order, acc = fma(isum, d x dx, acc) where isum is the exact sum of
 * scale x (q - 32) x over the part (each half of 16 values with its own scale); then the
 * 8-lane tree. */
static float ref_output_q6k(const qmat *a, int64_t r, const int8_t *xq, const float *xd, float bias)
{
    const uint8_t *row = a->q8 + sm_dtype_row_bytes(SM_DTYPE_Q6_K, a->cols) * (size_t)r;
    float lane[8] = {0};
    for (int64_t g = 0; g < a->cols / 256; g++) {
        const uint8_t *b = row + 210 * g;
        uint16_t dh;
        memcpy(&dh, b + 208, 2);
        float d = sm_f16_to_f32(dh);
        for (int j = 0; j < 8; j++) {
            int64_t k = 8 * g + j;
            int32_t isum = 0;
            for (int i = 0; i < 32; i++) {
                int vv = 32 * j + i, n = vv / 128, gg = (vv % 128) / 32, l = vv % 32;
                int lo = (b[64 * n + l + 32 * (gg & 1)] >> (4 * (gg >> 1))) & 15;
                int hi = (b[128 + 32 * n + l] >> (2 * gg)) & 3;
                isum += (int8_t)b[192 + vv / 16] * ((lo | (hi << 4)) - 32) * xq[32 * k + i];
            }
            lane[j] = fmaf((float)isum, d * xd[k], lane[j]);
        }
    }
    float q[4];
    for (int l = 0; l < 4; l++)
        q[l] = lane[l] + lane[l + 4];
    return ((q[0] + q[2]) + (q[1] + q[3])) + bias;
}

static void test_pack_roundtrip(void **state)
{
    (void)state;
    static const int64_t cols_list[] = {32, 96, 512, 544, 1536, 2080, 8960};
    for (size_t ci = 0; ci < 6 * sizeof cols_list / sizeof *cols_list; ci++) {
        int64_t cols = cols_list[ci / 6];
        static const sm_dtype types[6] = {SM_DTYPE_Q8_0, SM_DTYPE_Q8_0, SM_DTYPE_Q4_0,
                                          SM_DTYPE_Q4_K, SM_DTYPE_Q5_K, SM_DTYPE_Q6_K};
        sm_dtype t = types[ci % 6];
        if (cols % sm_dtype_block(t) != 0)
            continue;
        qmat a;
        /* q8_0 width 8, q8_0 width 16, then q4_0 and the K-quants width 8 */
        qmat_make(&a, t, ci % 6 == 1 ? 16 : 8, ci % 6 == 1 ? 21 : 5, cols);
        float *want = malloc(sizeof *want * (size_t)cols);
        float *got = malloc(sizeof *got * (size_t)cols);
        assert_non_null(want);
        assert_non_null(got);
        sm_err err;
        sm_matrix plain = {.dtype = a.t, .rows = a.rows, .cols = cols, .data = a.q8};
        for (int64_t r = 0; r < a.rows; r++) {
            assert_int_equal(sm_matrix_row_f32(&plain, r, want, &err), SM_OK);
            assert_int_equal(sm_matrix_row_f32(&a.m, r, got, &err), SM_OK);
            assert_memory_equal(want, got, sizeof *got * (size_t)cols);
        }
        assert_int_equal(sm_matrix_row_f32(&a.m, a.rows, got, &err), SM_EINVAL);
        free(want);
        free(got);
        qmat_free(&a);
    }
    /* q8_0 has packed layouts of widths 8 and 16, q4_0 one of width 8 */
    sm_err err;
    uint8_t src[64], dst[64];
    assert_int_equal(sm_packed_bytes(16, SM_DTYPE_Q4_0, 1, 32), 0);
    assert_int_equal(sm_packed_bytes(8, SM_DTYPE_Q4_K, 1, 128), 0);
    /* q5_k, width 8: 180 bytes per super-block, rows a multiple of 32 bytes */
    assert_int_equal(sm_packed_bytes(8, SM_DTYPE_Q5_K, 1, 256), 192);
    assert_int_equal(sm_packed_bytes(8, SM_DTYPE_Q5_K, 1, 1536), 1088);
    /* q4_k, width 8: 148 bytes per super-block, rows a multiple of 32 bytes */
    assert_int_equal(sm_packed_bytes(8, SM_DTYPE_Q4_K, 3, 1536), 3 * 896);
    /* q6_k, width 8: 210 bytes per super-block, rows a multiple of 32 bytes */
    assert_int_equal(sm_packed_bytes(8, SM_DTYPE_Q6_K, 2, 1536), 2 * 1280);
    /* q4_0, width 8: 144 bytes per group of 8 blocks, rows a multiple of 32 bytes */
    assert_int_equal(sm_packed_bytes(8, SM_DTYPE_Q4_0, 1, 32), 160);
    assert_int_equal(sm_packed_bytes(8, SM_DTYPE_Q4_0, 2, 1536), 2 * 864);
    assert_int_equal(sm_packed_bytes(8, SM_DTYPE_Q8_0, 1, 33), 0);
    assert_int_equal(sm_packed_bytes(4, SM_DTYPE_Q8_0, 1, 32), 0);
    assert_int_equal(sm_packed_bytes(16, SM_DTYPE_Q8_0, -1, 32), 0);
    /* width 16: groups of 16 rows, 544 bytes per block and group, a multiple of 64 */
    assert_int_equal(sm_packed_bytes(16, SM_DTYPE_Q8_0, 16, 64), 1088);
    assert_int_equal(sm_packed_bytes(16, SM_DTYPE_Q8_0, 17, 32), 2 * 576);
    assert_int_equal(sm_packed_bytes(8, SM_DTYPE_Q8_0, 3, 32), 3 * 288);
    assert_int_equal(sm_pack_rows(16, SM_DTYPE_BF16, src, 1, 32, dst, &err), SM_EUNSUPPORTED);
}

/* Each variant reads only its own width; the portable one none. */
static void test_refused(void **state)
{
    (void)state;
    static const int widths[SM_ISA_COUNT] = {0, 8, 16, 16};
    static const int q4_widths[SM_ISA_COUNT] = {0, 8, 0, 0};
    static const int kq_widths[SM_ISA_COUNT] = {0, 8, 8, 8}; /* the AVX2 products on AVX-512 */
    static const sm_dtype types[6] = {SM_DTYPE_Q8_0, SM_DTYPE_Q8_0, SM_DTYPE_Q4_0,
                                      SM_DTYPE_Q4_K, SM_DTYPE_Q5_K, SM_DTYPE_Q6_K};
    for (int wi = 0; wi < 6; wi++) {
        qmat a;
        qmat_make(&a, types[wi], wi == 1 ? 16 : 8, 4, 256);
        float x[256], y[4];
        fill(x, 256, 1.0f);
        sm_err err;
        for (int i = 0; i < SM_ISA_COUNT; i++) {
            if (!sm_isa_supported((sm_isa)i))
                continue;
            sm_kctx k = {.isa = (sm_isa)i, .deterministic = true};
            assert_int_equal(sm_kernels_pack_width(&k, SM_DTYPE_Q8_0), widths[i]);
            assert_int_equal(sm_kernels_pack_width(&k, SM_DTYPE_Q4_0), q4_widths[i]);
            assert_int_equal(sm_kernels_pack_width(&k, SM_DTYPE_Q4_K), kq_widths[i]);
            assert_int_equal(sm_kernels_pack_width(&k, SM_DTYPE_Q6_K), kq_widths[i]);
            assert_int_equal(sm_kernels_pack_width(&k, SM_DTYPE_Q5_K), kq_widths[i]);
            assert_int_equal(sm_kernels_pack_width(&k, SM_DTYPE_BF16), 0);
            const int *want = a.t == SM_DTYPE_Q8_0   ? widths
                              : a.t == SM_DTYPE_Q4_0 ? q4_widths
                                                     : kq_widths;
            if (want[i] != a.width) {
                assert_int_equal(sm_matmul(&k, &a.m, NULL, x, 256, 1, y, 4, &err), SM_EUNSUPPORTED);
                assert_non_null(strstr(err.msg, "packed"));
            }
        }
        qmat_free(&a);
    }
}

/* sm_matmul of a packed matrix (deterministic or fast mode: the same kernels) against
 * ref_output, bitwise, and against a double product
 * (the error relative to the sum of the products' magnitudes, which bounds what quantizing the
 * activations to 8 bits loses even where the products cancel). */
static void check_shape(sm_isa isa, sm_dtype t, sm_pool *pool, bool det, int64_t rows, int64_t cols,
                        int64_t batch)
{
    sm_kctx k = {.isa = isa, .pool = pool, .deterministic = det};
    qmat a;
    qmat_make(&a, t, sm_kernels_pack_width(&k, t), rows, cols);
    int64_t ldx = cols + 5, ldy = rows + 3, nblk = cols / 32;
    float *X = malloc(sizeof *X * (size_t)(ldx * batch));
    float *Y = malloc(sizeof *Y * (size_t)(ldy * batch));
    float *bias = malloc(sizeof *bias * (size_t)rows);
    float *deq = malloc(sizeof *deq * (size_t)cols);
    int8_t *xq = malloc((size_t)cols);
    float *xd = malloc(sizeof *xd * (size_t)nblk);
    assert_true(X && Y && bias && deq && xq && xd);
    fill(X, ldx * batch, 1.0f);
    fill(bias, rows, 0.1f);
    bool with_bias = (rows + batch) % 2 == 0;
    for (int64_t i = 0; i < ldy * batch; i++)
        Y[i] = -777.0f; /* the columns past rows must keep it */
    sm_err err;
    assert_int_equal(sm_matmul(&k, &a.m, with_bias ? bias : NULL, X, ldx, batch, Y, ldy, &err),
                     SM_OK);
    for (int64_t b = 0; b < batch; b++)
        for (int64_t r = rows; r < ldy; r++)
            if (Y[b * ldy + r] != -777.0f)
                fail_msg("%s %s %lldx%lld batch %lld: wrote past the rows, at %lld of batch row "
                         "%lld",
                         sm_isa_name(isa), sm_dtype_name(t), (long long)rows, (long long)cols,
                         (long long)batch, (long long)r, (long long)b);
    double num = 0, den = 0;
    sm_matrix plain = {.dtype = t, .rows = rows, .cols = cols, .data = a.q8};
    for (int64_t b = 0; b < batch; b++) {
        quantize_x(X + b * ldx, cols, xq, xd);
        for (int64_t r = 0; r < rows; r++) {
            float got = Y[b * ldy + r];
            float want =
                (t == SM_DTYPE_Q4_K || t == SM_DTYPE_Q5_K ? ref_output_q45k
                 : t == SM_DTYPE_Q6_K                     ? ref_output_q6k
                                      : ref_output)(&a, r, xq, xd, with_bias ? bias[r] : 0.0f);
            if (memcmp(&want, &got, sizeof got) != 0)
                fail_msg("%s %s %lldx%lld batch %lld det %d: row %lld of batch row %lld is "
                         "%.9g, the rule gives %.9g",
                         sm_isa_name(isa), sm_dtype_name(t), (long long)rows, (long long)cols,
                         (long long)batch, det, (long long)r, (long long)b, (double)got,
                         (double)want);
            assert_int_equal(sm_matrix_row_f32(&plain, r, deq, &err), SM_OK);
            double s = with_bias ? bias[r] : 0.0, mag = 0;
            for (int64_t c = 0; c < cols; c++) {
                s += (double)deq[c] * X[b * ldx + c];
                mag += fabs((double)deq[c] * X[b * ldx + c]);
            }
            num += (s - got) * (s - got);
            den += mag * mag;
        }
    }
    if (!(sqrt(num / den) < 1e-2))
        fail_msg("%s %s %lldx%lld batch %lld det %d: relative error %g", sm_isa_name(isa),
                 sm_dtype_name(t), (long long)rows, (long long)cols, (long long)batch, det,
                 sqrt(num / den));
    free(X);
    free(Y);
    free(bias);
    free(deq);
    free(xq);
    free(xd);
    qmat_free(&a);
}

static void test_products(void **state)
{
    (void)state;
    /* rows, cols, batch: decode (1-16; AVX2 sums a weight row's outputs for several batch
     * rows together; AVX-512 takes column ranges of 16 blocks in passes of up to 6 rows) and
     * prompt blocking (17+, past 63 batch rows, past 64 weight rows), rows not a multiple of
     * the micro tile or of AVX-512's groups of 16 (15 of a group, 47 = 2 groups and 15), a last
     * group of fewer blocks than AVX2's 8, rows long enough for column ranges (more than 4096
     * columns), the VibeThinker shapes' column counts */
    static const int64_t shapes[][3] = {
        {1, 32, 1},    {5, 64, 3},     {37, 96, 7},   {8, 544, 2},     {13, 1536, 4},
        {64, 512, 16}, {70, 2080, 17}, {9, 8960, 5},  {130, 1536, 40}, {67, 6400, 70},
        {4, 512, 1},   {12, 1024, 16}, {3, 8960, 33}, {6, 1536, 11},   {47, 544, 19},
        {15, 96, 2},   {7, 256, 1},    {19, 768, 9},  {66, 4352, 64},  {5, 2304, 20},
    };
    sm_pool *pool;
    sm_err err;
    assert_int_equal(sm_pool_new(3, &pool, &err), SM_OK);
    int tested = 0;
    for (int isa = SM_ISA_AVX2; isa < SM_ISA_COUNT; isa++) {
        if (!sm_isa_supported((sm_isa)isa)) {
            print_message("[ INFO     ] %s: not supported by this CPU, not tested\n",
                          sm_isa_name((sm_isa)isa));
            continue;
        }
        sm_kctx k = {.isa = (sm_isa)isa};
        static const sm_dtype types[] = {SM_DTYPE_Q8_0, SM_DTYPE_Q4_0, SM_DTYPE_Q4_K, SM_DTYPE_Q5_K,
                                         SM_DTYPE_Q6_K};
        for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
            sm_dtype t = types[ti];
            if (sm_kernels_pack_width(&k, t) == 0)
                continue;
            tested++;
            for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
                for (int p = 0; p < 2 && shapes[s][1] % sm_dtype_block(t) == 0; p++)
                    check_shape((sm_isa)isa, t, p ? pool : NULL, true, shapes[s][0], shapes[s][1],
                                shapes[s][2]);
            /* fast mode: the same kernels, bitwise, even where OpenBLAS would take other
             * prompts (ctest runs this test again with OPENBLAS_CORETYPE=Haswell) */
            check_shape((sm_isa)isa, t, pool, false, 70, 1536, 40);
            check_shape((sm_isa)isa, t, pool, false, 33, sm_dtype_is_kquant(t) ? 512 : 544, 3);
        }
    }
    print_message("[ INFO     ] packed products of %d variant and type pair(s) tested\n", tested);
    sm_pool_free(&pool);
}

/* One grouped product (sm_matmul_group) of the matrices a[0..n) against each alone: bitwise the
 * same outputs, and nothing written past each one's rows. */
static void check_group(sm_kctx *k, qmat *a, int n, int64_t batch)
{
    int64_t cols = a[0].cols, ldx = cols + 3;
    float *X = malloc(sizeof *X * (size_t)(ldx * batch));
    float *want[4], *got[4], *bias[4];
    sm_mm_part parts[4];
    assert_non_null(X);
    fill(X, ldx * batch, 1.0f);
    sm_err err;
    for (int i = 0; i < n; i++) {
        int64_t ldy = a[i].rows + 2;
        want[i] = malloc(sizeof(float) * (size_t)(ldy * batch));
        got[i] = malloc(sizeof(float) * (size_t)(ldy * batch));
        bias[i] = malloc(sizeof(float) * (size_t)a[i].rows);
        assert_true(want[i] && got[i] && bias[i]);
        fill(bias[i], a[i].rows, 0.1f);
        for (int64_t j = 0; j < ldy * batch; j++)
            want[i][j] = got[i][j] = -777.0f;
        parts[i] = (sm_mm_part){&a[i].m, i % 2 ? NULL : bias[i], got[i], ldy};
        assert_int_equal(sm_matmul(k, &a[i].m, parts[i].bias, X, ldx, batch, want[i], ldy, &err),
                         SM_OK);
    }
    assert_int_equal(sm_matmul_group(k, parts, n, X, ldx, batch, &err), SM_OK);
    for (int i = 0; i < n; i++) {
        if (memcmp(want[i], got[i], sizeof(float) * (size_t)(parts[i].ldy * batch)) != 0)
            fail_msg("%s group of %d, product %d (%s %lldx%lld), batch %lld, %s: not bitwise "
                     "the product alone",
                     sm_isa_name(k->isa), n, i, sm_dtype_name(a[i].t), (long long)a[i].rows,
                     (long long)cols, (long long)batch, k->pool ? "pool" : "one thread");
        free(want[i]);
        free(got[i]);
        free(bias[i]);
    }
    free(X);
}

static void test_groups(void **state)
{
    (void)state;
    sm_pool *pool;
    sm_err err;
    assert_int_equal(sm_pool_new(3, &pool, &err), SM_OK);
    static const int64_t batches[] = {1, 2, 5, 16, 17, 70};
    for (int isa = SM_ISA_AVX2; isa < SM_ISA_COUNT; isa++) {
        if (!sm_isa_supported((sm_isa)isa))
            continue;
        static const sm_dtype types[] = {SM_DTYPE_Q8_0, SM_DTYPE_Q4_0, SM_DTYPE_Q4_K,
                                         SM_DTYPE_Q6_K};
        for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
            sm_kctx k = {.isa = (sm_isa)isa, .deterministic = true};
            sm_dtype t = types[ti];
            int w = sm_kernels_pack_width(&k, t);
            if (w == 0)
                continue;
            /* q, k, v-like rows (one not a multiple of 8, one of 8), then a group whose second
             * matrix has another type (computed alone) */
            qmat a[3];
            qmat_make(&a[0], t, w, 70, 1536);
            qmat_make(&a[1], t, w, 8, 1536);
            qmat_make(&a[2], t, w, 37, 1536);
            for (size_t bi = 0; bi < sizeof batches / sizeof *batches; bi++)
                for (int p = 0; p < 2; p++) {
                    k.pool = p ? pool : NULL;
                    check_group(&k, a, 3, batches[bi]);
                    check_group(&k, a, 2, batches[bi]);
                }
            sm_dtype other = t;
            for (size_t oi = 0; oi < sizeof types / sizeof *types && other == t; oi++)
                if (types[oi] != t && sm_kernels_pack_width(&k, types[oi]) > 0)
                    other = types[oi];
            if (other != t) {
                qmat mixed[3] = {a[0], {0}, a[2]};
                qmat_make(&mixed[1], other, sm_kernels_pack_width(&k, other), 40, 1536);
                k.pool = pool;
                check_group(&k, mixed, 3, 16);
                qmat_free(&mixed[1]);
            }
            for (int i = 0; i < 3; i++)
                qmat_free(&a[i]);
        }
    }
    /* refusals: nothing is computed when any product is refused */
    sm_kctx k = {.isa = SM_ISA_PORTABLE};
    float x[64] = {0}, y[8];
    sm_matrix bad = {.dtype = SM_DTYPE_F32, .rows = 2, .cols = 32, .data = NULL};
    sm_matrix ok = {.dtype = SM_DTYPE_F32, .rows = 2, .cols = 32, .data = x};
    sm_mm_part parts[2] = {{&ok, NULL, y, 2}, {&bad, NULL, y + 4, 2}};
    y[0] = -777.0f;
    assert_int_equal(sm_matmul_group(&k, parts, 2, x, 32, 1, &err), SM_EINVAL);
    assert_true(y[0] == -777.0f);
    assert_int_equal(sm_matmul_group(&k, NULL, 2, x, 32, 1, &err), SM_EINVAL);
    assert_int_equal(sm_matmul_group(&k, parts, -1, x, 32, 1, &err), SM_EINVAL);
    assert_int_equal(sm_matmul_group(&k, parts, 0, x, 32, 1, &err), SM_OK);
    sm_pool_free(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_roundtrip),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_products),
        cmocka_unit_test(test_groups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
