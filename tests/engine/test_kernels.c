/* test_kernels: the CPU kernels. Conversions and GGUF quantization against their reference
 * formulas; every matrix product type against a double-precision reference; deterministic mode
 * bitwise identical across batch sizes, strides and thread counts; every instruction-set variant
 * this CPU supports against the portable one; the thread pool. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sm_kernels.h"
#include "sm_membw.h"
#include "sm_pool.h"

/* small deterministic generator (xorshift) */
static uint64_t rng_state = 88172645463325252ull;
static uint32_t rng_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float rng_f(void) /* uniform in [-1, 1) */
{
    return (float)((double)rng_u32() / 2147483648.0 - 1.0);
}
static void fill(float *x, int64_t n, float scale)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = rng_f() * scale;
}

/* ---- conversions ---- */

static void test_bf16(void **state)
{
    (void)state;
    assert_int_equal(sm_f32_to_bf16(1.0f), 0x3f80);
    assert_true(sm_bf16_to_f32(0x3f80) == 1.0f);
    /* ties to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 */
    assert_int_equal(sm_f32_to_bf16(1.0f + 0.00390625f), 0x3f80);
    assert_int_equal(sm_f32_to_bf16(1.0f + 3 * 0.00390625f), 0x3f82);
    assert_int_equal(sm_f32_to_bf16(-2.0f), 0xc000);
    assert_true(isnan(sm_bf16_to_f32(sm_f32_to_bf16(NAN))));
    assert_int_equal(sm_f32_to_bf16(INFINITY), 0x7f80);
    for (int i = 0; i < 100000; i++) {
        float f = rng_f() * 1000.0f;
        float g = sm_bf16_to_f32(sm_f32_to_bf16(f));
        assert_true(fabsf(f - g) <= fabsf(f) * (1.0f / 256.0f));
    }
}

static void test_f16_all(void **state)
{
    (void)state;
    /* every f16 value round-trips, and agrees with the compiler's _Float16 */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sm_f16_to_f32((uint16_t)h);
        if (isnan(f)) {
            assert_true(((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff) != 0);
            continue;
        }
        assert_int_equal(sm_f32_to_f16(f), h);
#ifdef __FLT16_MAX__
        _Float16 r;
        uint16_t hh = (uint16_t)h;
        memcpy(&r, &hh, 2);
        assert_true((float)r == f);
#endif
    }
#ifdef __FLT16_MAX__
    /* rounding of f32 values, including subnormal and overflowing ones */
    for (int i = 0; i < 1000000; i++) {
        uint32_t u = rng_u32() << 1 ^ rng_u32();
        float f;
        memcpy(&f, &u, 4);
        if (isnan(f))
            continue;
        _Float16 r = (_Float16)f;
        uint16_t want;
        memcpy(&want, &r, 2);
        uint16_t got = sm_f32_to_f16(f);
        if (got != want)
            fail_msg("f32 %a (0x%08x): got 0x%04x want 0x%04x", (double)f, u, got, want);
    }
#endif
}

static void test_dtype_names(void **state)
{
    (void)state;
    sm_err err;
    for (int t = 0; t < SM_DTYPE_COUNT; t++) {
        sm_dtype d;
        assert_int_equal(sm_dtype_parse(sm_dtype_name((sm_dtype)t), &d, &err), SM_OK);
        assert_int_equal(d, t);
    }
    sm_dtype d;
    assert_int_equal(sm_dtype_parse("q5_1", &d, &err), SM_EINVAL);
    for (int i = 0; i < SM_ISA_COUNT; i++) {
        sm_isa isa;
        assert_int_equal(sm_isa_parse(sm_isa_name((sm_isa)i), &isa, &err), SM_OK);
        assert_int_equal(isa, i);
    }
    sm_isa isa;
    assert_int_equal(sm_isa_parse("sse9", &isa, &err), SM_EINVAL);
    assert_true(sm_isa_supported(SM_ISA_PORTABLE));
    assert_true(sm_isa_supported(sm_isa_detect()));
    assert_int_equal(sm_dtype_row_bytes(SM_DTYPE_Q8_0, 64), 68);
    assert_int_equal(sm_dtype_row_bytes(SM_DTYPE_Q4_0, 64), 36);
    assert_int_equal(sm_dtype_row_bytes(SM_DTYPE_BF16, 10), 20);
    assert_int_equal(sm_dtype_row_bytes(SM_DTYPE_Q4_K, 512), 288);
    assert_int_equal(sm_dtype_row_bytes(SM_DTYPE_Q5_K, 256), 176);
    assert_int_equal(sm_dtype_row_bytes(SM_DTYPE_Q6_K, 256), 210);
    float f[256] = {0};
    assert_int_equal(sm_dequantize_row(SM_DTYPE_Q6_K, f, 128, f, &err), SM_EINVAL);
}

/* The ggml reference formulas, written out independently of sm_quant.c. */
static void ref_q8_0(const float *x, uint8_t *out)
{
    float amax = 0;
    for (int j = 0; j < 32; j++)
        amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
    uint16_t dh = sm_f32_to_f16(d);
    memcpy(out, &dh, 2);
    for (int j = 0; j < 32; j++)
        out[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

static void test_quant_q8_0(void **state)
{
    (void)state;
    sm_err err;
    float x[256], y[256];
    uint8_t q[8 * 34], want[34];
    for (int it = 0; it < 200; it++) {
        fill(x, 256, it % 7 == 0 ? 1e-3f : 3.0f);
        if (it == 5)
            memset(x, 0, sizeof x);
        assert_int_equal(sm_quantize_row(SM_DTYPE_Q8_0, x, 256, q, &err), SM_OK);
        for (int b = 0; b < 8; b++) {
            ref_q8_0(x + 32 * b, want);
            assert_memory_equal(q + 34 * b, want, 34);
        }
        assert_int_equal(sm_dequantize_row(SM_DTYPE_Q8_0, q, 256, y, &err), SM_OK);
        for (int i = 0; i < 256; i++) {
            uint16_t dh;
            memcpy(&dh, q + 34 * (i / 32), 2);
            float amax = 0;
            for (int j = 32 * (i / 32); j < 32 * (i / 32) + 32; j++)
                amax = fmaxf(amax, fabsf(x[j]));
            double d = amax / 127.0, dq = sm_f16_to_f32(dh); /* f16 scale: its own rounding */
            assert_true(fabs(x[i] - y[i]) <= 0.5 * d * 1.001 + 127 * fabs(d - dq) + 1e-12);
        }
    }
    assert_int_equal(sm_quantize_row(SM_DTYPE_Q8_0, x, 33, q, &err), SM_EINVAL);
}

static void test_quant_q4_0(void **state)
{
    (void)state;
    sm_err err;
    float x[64], y[64];
    uint8_t q[2 * 18];
    /* a hand-made block: max |x| is -4 (signed max), so d = 0.5 */
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j % 8) * 0.5f - 2.0f; /* -2 .. 1.5 */
    x[3] = -4.0f;
    x[20] = 0.26f; /* 0.26/0.5 + 8.5 = 9.02 -> 9 -> value 0.5 */
    assert_int_equal(sm_quantize_row(SM_DTYPE_Q4_0, x, 32, q, &err), SM_OK);
    uint16_t dh;
    memcpy(&dh, q, 2);
    assert_true(sm_f16_to_f32(dh) == 0.5f);
    assert_int_equal(q[2 + 3] & 0x0f, 0);  /* -4 / 0.5 + 8.5 = 0.5 -> 0 */
    assert_int_equal(q[2 + 4] >> 4, 9);    /* element 20 in the high nibble of byte 4 */
    assert_int_equal(q[2 + 7] & 0x0f, 11); /* 1.5 / 0.5 + 8.5 = 11.5 -> 11 */
    assert_int_equal(sm_dequantize_row(SM_DTYPE_Q4_0, q, 32, y, &err), SM_OK);
    assert_true(y[3] == -4.0f);
    assert_true(y[20] == 0.5f);
    for (int it = 0; it < 200; it++) {
        fill(x, 64, 2.0f);
        assert_int_equal(sm_quantize_row(SM_DTYPE_Q4_0, x, 64, q, &err), SM_OK);
        assert_int_equal(sm_dequantize_row(SM_DTYPE_Q4_0, q, 64, y, &err), SM_OK);
        for (int i = 0; i < 64; i++) {
            memcpy(&dh, q + 18 * (i / 32), 2);
            float d = fabsf(sm_f16_to_f32(dh));
            assert_true(fabsf(x[i] - y[i]) <= d * 1.01f + 1e-6f);
        }
    }
}

/* ---- matrix products ---- */

typedef struct mat {
    sm_matrix m;
    void *buf;
    float *deq; /* the weights as the kernel sees them */
} mat;

/* Random K-quant super-blocks (the engine cannot quantize to them): random values, scales and
 * mins, with f16 scales d (and dmin) that keep the weights within about +-1. */
static void kq_random_row(sm_dtype t, int64_t cols, uint8_t *out)
{
    size_t bsz = sm_dtype_row_bytes(t, 256);
    for (size_t i = 0; i < bsz * (size_t)(cols / 256); i++)
        out[i] = (uint8_t)rng_u32();
    for (int64_t s = 0; s < cols / 256; s++) {
        uint8_t *b = out + (size_t)s * bsz;
        uint16_t d =
            sm_f32_to_f16((0.5f + 0.5f * fabsf(rng_f())) / (t == SM_DTYPE_Q6_K ? 4096 : 1000));
        uint16_t dmin = sm_f32_to_f16(fabsf(rng_f()) / 500);
        if (t == SM_DTYPE_Q6_K) {
            memcpy(b + 208, &d, 2);
        } else {
            memcpy(b, &d, 2);
            memcpy(b + 2, &dmin, 2);
        }
    }
}

/* cols usable for type t: K-quant rows hold whole blocks of 256 values */
static bool cols_ok(int t, int64_t cols)
{
    return cols % sm_dtype_block((sm_dtype)t) == 0;
}

static void mat_make(mat *a, sm_dtype t, int64_t rows, int64_t cols)
{
    sm_err err;
    size_t rb = sm_dtype_row_bytes(t, cols);
    a->buf = malloc(rb * (size_t)rows + 1);
    a->deq = malloc(sizeof(float) * (size_t)(rows * cols) + 1);
    float *row = malloc(sizeof(float) * (size_t)cols + 1);
    assert_non_null(a->buf);
    for (int64_t r = 0; r < rows; r++) {
        fill(row, cols, 0.5f);
        if (sm_dtype_is_kquant(t)) {
            kq_random_row(t, cols, (uint8_t *)a->buf + rb * r);
            assert_int_equal(sm_quantize_row(t, row, cols, a->buf, &err), SM_EUNSUPPORTED);
        } else {
            assert_int_equal(sm_quantize_row(t, row, cols, (uint8_t *)a->buf + rb * r, &err),
                             SM_OK);
        }
        assert_int_equal(
            sm_dequantize_row(t, (uint8_t *)a->buf + rb * r, cols, a->deq + r * cols, &err), SM_OK);
    }
    free(row);
    a->m = (sm_matrix){.dtype = t, .rows = rows, .cols = cols, .data = a->buf};
}

static void mat_free(mat *a)
{
    free(a->buf);
    free(a->deq);
}

/* relative error of y against a double-precision product with the dequantized weights */
static double rel_err(const mat *a, const float *bias, const float *X, int64_t ldx, int64_t batch,
                      const float *Y, int64_t ldy)
{
    double num = 0, den = 0;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t r = 0; r < a->m.rows; r++) {
            double s = bias ? bias[r] : 0;
            for (int64_t c = 0; c < a->m.cols; c++)
                s += (double)a->deq[r * a->m.cols + c] * X[b * ldx + c];
            double dlt = s - Y[b * ldy + r];
            num += dlt * dlt;
            den += s * s;
        }
    return sqrt(num / (den > 0 ? den : 1));
}

static void check_matmul_accuracy(sm_isa isa, sm_pool *pool)
{
    static const int64_t shapes[][3] = {{1, 32, 1},    {5, 64, 3},    {37, 96, 7},
                                        {64, 256, 16}, {13, 160, 40}, {8, 1024, 2}};
    static const int64_t fshapes[][3] = {{3, 5, 2}, {9, 17, 3}, {21, 43, 5}};
    for (int t = 0; t < SM_DTYPE_COUNT; t++) {
        int nshape = 6 + (t <= SM_DTYPE_BF16 ? 3 : 0);
        for (int s = 0; s < nshape; s++) {
            const int64_t *sh = s < 6 ? shapes[s] : fshapes[s - 6];
            int64_t rows = sh[0], cols = sh[1], batch = sh[2];
            if (!cols_ok(t, cols))
                continue;
            mat a;
            mat_make(&a, (sm_dtype)t, rows, cols);
            int64_t ldx = cols + 3, ldy = rows + 5;
            float *X = malloc(sizeof(float) * (size_t)(ldx * batch));
            float *Y = malloc(sizeof(float) * (size_t)(ldy * batch));
            float *bias = malloc(sizeof(float) * (size_t)rows);
            fill(X, ldx * batch, 1.0f);
            fill(bias, rows, 0.1f);
            for (int det = 0; det < 2; det++) {
                sm_kctx k = {.isa = isa, .pool = pool, .deterministic = det};
                sm_err err;
                assert_int_equal(
                    sm_matmul(&k, &a.m, s % 2 ? bias : NULL, X, ldx, batch, Y, ldy, &err), SM_OK);
                double e = rel_err(&a, s % 2 ? bias : NULL, X, ldx, batch, Y, ldy);
                /* activations are quantized to 8 bits for q8_0/q4_0 weights, and rounded to
                 * bf16 for bf16 weights by the avx512bf16 variant */
                double tol = t >= SM_DTYPE_Q8_0 ? 2e-2 : 1e-5;
                if (isa == SM_ISA_AVX512BF16 && t == SM_DTYPE_BF16)
                    tol = 1e-2;
                if (!(e < tol))
                    fail_msg("%s %s %lldx%lld batch %lld det %d: rel err %g", sm_isa_name(isa),
                             sm_dtype_name((sm_dtype)t), (long long)rows, (long long)cols,
                             (long long)batch, det, e);
            }
            free(X);
            free(Y);
            free(bias);
            mat_free(&a);
        }
    }
}

static void test_matmul_portable(void **state)
{
    (void)state;
    check_matmul_accuracy(SM_ISA_PORTABLE, NULL);
    sm_pool *pool;
    sm_err err;
    assert_int_equal(sm_pool_new(3, &pool, &err), SM_OK);
    check_matmul_accuracy(SM_ISA_PORTABLE, pool);
    sm_pool_free(&pool);
    assert_null(pool);
}

static void test_matmul_errors(void **state)
{
    (void)state;
    sm_err err;
    float x[64] = {0}, y[64];
    uint8_t w[68] = {0};
    sm_kctx k = {.isa = SM_ISA_PORTABLE, .deterministic = true};
    sm_matrix m = {.dtype = SM_DTYPE_Q8_0, .rows = 1, .cols = 48, .data = w};
    assert_int_equal(sm_matmul(&k, &m, NULL, x, 48, 1, y, 1, &err), SM_EINVAL);
    m.cols = 64;
    assert_int_equal(sm_matmul(&k, &m, NULL, x, 64, 1, y, 1, &err), SM_OK);
    assert_true(y[0] == 0.0f);
    assert_int_equal(sm_matmul(&k, &m, NULL, x, 10, 2, y, 1, &err), SM_EINVAL);
    assert_int_equal(sm_matmul(&k, NULL, NULL, x, 64, 1, y, 1, &err), SM_EINVAL);
    m.dtype = (sm_dtype)99;
    assert_int_equal(sm_matmul(&k, &m, NULL, x, 64, 1, y, 1, &err), SM_EINVAL);
    for (int i = SM_ISA_AVX2; i < SM_ISA_COUNT; i++) {
        if (sm_isa_supported((sm_isa)i))
            continue;
        m.dtype = SM_DTYPE_F32;
        k.isa = (sm_isa)i;
        assert_int_equal(sm_matmul(&k, &m, NULL, x, 64, 1, y, 1, &err), SM_EUNSUPPORTED);
    }
}

/* Deterministic mode: each row of a batch gives bitwise the output it gives alone, whatever the
 * batch size, strides and thread count. */
static void check_batch_invariance(sm_isa isa)
{
    sm_pool *pools[3] = {NULL};
    sm_err err;
    assert_int_equal(sm_pool_new(2, &pools[1], &err), SM_OK);
    assert_int_equal(sm_pool_new(5, &pools[2], &err), SM_OK);
    static const int64_t shapes[][2] = {{29, 64}, {67, 200}, {16, 1024}, {40, 96}, {23, 512}};
    for (int t = 0; t < SM_DTYPE_COUNT; t++) {
        for (int s = 0; s < 5; s++) {
            int64_t rows = shapes[s][0], cols = shapes[s][1];
            if (!cols_ok(t, cols))
                continue;
            mat a;
            mat_make(&a, (sm_dtype)t, rows, cols);
            int64_t maxb = 37;
            float *X = malloc(sizeof(float) * (size_t)(cols * maxb));
            float *Yref = malloc(sizeof(float) * (size_t)(rows * maxb));
            float *Y = malloc(sizeof(float) * (size_t)((rows + 1) * maxb));
            float *Xs = malloc(sizeof(float) * (size_t)((cols + 2) * maxb));
            fill(X, cols * maxb, 1.0f);
            sm_kctx k1 = {.isa = isa, .pool = NULL, .deterministic = true};
            for (int64_t b = 0; b < maxb; b++)
                assert_int_equal(
                    sm_matmul(&k1, &a.m, NULL, X + b * cols, cols, 1, Yref + b * rows, rows, &err),
                    SM_OK);
            static const int64_t batches[] = {2, 3, 4, 5, 7, 8, 16, 37};
            for (int p = 0; p < 3; p++) {
                for (int bi = 0; bi < 8; bi++) {
                    int64_t batch = batches[bi];
                    int64_t off = (bi * 5) % (maxb - batch + 1); /* rows off..off+batch-1 */
                    for (int64_t b = 0; b < batch; b++)
                        memcpy(Xs + b * (cols + 2), X + (off + b) * cols, sizeof(float) * cols);
                    sm_kctx k = {.isa = isa, .pool = pools[p], .deterministic = true};
                    assert_int_equal(
                        sm_matmul(&k, &a.m, NULL, Xs, cols + 2, batch, Y, rows + 1, &err), SM_OK);
                    for (int64_t b = 0; b < batch; b++)
                        if (memcmp(Y + b * (rows + 1), Yref + (off + b) * rows,
                                   sizeof(float) * rows) != 0)
                            fail_msg("%s %s %lldx%lld: batch %lld row %lld differs from alone",
                                     sm_isa_name(isa), sm_dtype_name((sm_dtype)t), (long long)rows,
                                     (long long)cols, (long long)batch, (long long)b);
                }
            }
            free(X);
            free(Xs);
            free(Y);
            free(Yref);
            mat_free(&a);
        }
    }
    sm_pool_free(&pools[1]);
    sm_pool_free(&pools[2]);
}

static void test_batch_invariance_portable(void **state)
{
    (void)state;
    check_batch_invariance(SM_ISA_PORTABLE);
}

/* ---- vector kernels ---- */

/* rmsnorm against a double-precision one, in place and not */
static void check_rmsnorm(const sm_kctx *k)
{
    for (int64_t n = 1; n < 300; n += 37) {
        float x[300], w[300], out[300];
        fill(x, n, 2.0f);
        fill(w, n, 1.0f);
        double ss = 0;
        for (int64_t i = 0; i < n; i++)
            ss += (double)x[i] * x[i];
        double sc = 1.0 / sqrt(ss / (double)n + 1e-6);
        sm_rmsnorm(k, x, w, n, 1e-6f, out);
        for (int64_t i = 0; i < n; i++)
            assert_true(fabs(out[i] - w[i] * x[i] * sc) <= 1e-5 * (fabs(w[i] * x[i] * sc) + 1e-3));
        sm_rmsnorm(k, x, w, n, 1e-6f, x); /* in place */
        assert_memory_equal(x, out, sizeof(float) * n);
    }
}

/* silu_mul, including large |x| */
static void check_silu_mul(const sm_kctx *k)
{
    float g[103], u[103], g0[103];
    fill(g, 103, 12.0f);
    fill(u, 103, 1.0f);
    g[0] = 100.0f;
    g[1] = -100.0f;
    g[2] = 0.0f;
    memcpy(g0, g, sizeof g);
    sm_silu_mul(k, g, u, 103);
    for (int i = 0; i < 103; i++) {
        double want = g0[i] / (1.0 + exp(-(double)g0[i])) * u[i];
        assert_true(fabs(g[i] - want) <= 2e-6 * fabs(want) + 1e-30);
    }
}

/* rope: against a double-precision rotation (angles as float32, like Hugging Face) */
static void check_rope(const sm_kctx *k)
{
    int nh = 3, hd = 128;
    float x[3 * 128], x0[3 * 128];
    fill(x, nh * hd, 1.0f);
    memcpy(x0, x, sizeof x);
    int64_t pos = 1234;
    sm_rope(k, x, nh, hd, pos, 1000000.0);
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < hd / 2; i++) {
            float inv = 1.0f / powf(1000000.0f, (float)(2 * i) / (float)hd);
            double ang = (double)((float)pos * inv);
            double a = x0[h * hd + i], b = x0[h * hd + i + hd / 2];
            assert_true(fabs(x[h * hd + i] - (a * cos(ang) - b * sin(ang))) < 1e-5);
            assert_true(fabs(x[h * hd + i + hd / 2] - (b * cos(ang) + a * sin(ang))) < 1e-5);
        }
}

/* One attention case: nh heads over nkv kv heads of hd values, np positions, an f32 or (kvt) an
 * f16 cache: against a double-precision softmax, and every head bitwise what it gives alone. */
static void check_attention_case(const sm_kctx *k, int kvt, int nh, int nkv, int hd, int64_t np)
{
    sm_isa isa = k->isa;
    sm_dtype kv_dtype = kvt ? SM_DTYPE_F16 : SM_DTYPE_F32;
    size_t esz = kvt ? 2 : 4;
    int64_t stride = nkv * hd + 8;
    float *q = malloc(sizeof(float) * nh * hd);
    float *kc = malloc(sizeof(float) * (size_t)(np * stride));
    float *vc = malloc(sizeof(float) * (size_t)(np * stride));
    float *out = malloc(sizeof(float) * nh * hd);
    float *one = malloc(sizeof(float) * hd);
    float *scratch = malloc(sizeof(float) * (size_t)np * nh);
    double *s = malloc(sizeof(double) * (size_t)np);
    fill(q, nh * hd, 1.0f);
    fill(kc, np * stride, 1.0f);
    fill(vc, np * stride, 1.0f);
    uint16_t *kh = malloc(2 * (size_t)(np * stride));
    uint16_t *vh = malloc(2 * (size_t)(np * stride));
    for (int64_t i = 0; i < np * stride; i++) {
        kh[i] = sm_f32_to_f16(kc[i]);
        vh[i] = sm_f32_to_f16(vc[i]);
        if (kvt) {
            kc[i] = sm_f16_to_f32(kh[i]);
            vc[i] = sm_f16_to_f32(vh[i]);
        }
    }
    const char *kbuf = kvt ? (const char *)kh : (const char *)kc;
    const char *vbuf = kvt ? (const char *)vh : (const char *)vc;
    sm_attention(k, q, nh, nkv, hd, kbuf, vbuf, kv_dtype, stride, np, out, scratch);
    for (int h = 0; h < nh; h++) {
        int kvh = h / (nh / nkv);
        double mx = -1e300, sum = 0;
        for (int64_t p = 0; p < np; p++) {
            double d = 0;
            for (int i = 0; i < hd; i++)
                d += (double)q[h * hd + i] * kc[p * stride + kvh * hd + i];
            s[p] = d / sqrt((double)hd);
            mx = s[p] > mx ? s[p] : mx;
        }
        for (int64_t p = 0; p < np; p++)
            sum += exp(s[p] - mx);
        for (int i = 0; i < hd; i++) {
            double o = 0;
            for (int64_t p = 0; p < np; p++)
                o += exp(s[p] - mx) / sum * vc[p * stride + kvh * hd + i];
            if (!(fabs(out[h * hd + i] - o) < 1e-5))
                fail_msg("%s attention (%s cache) %d/%d heads of %d, n_pos %lld head %d: "
                         "%g vs %g",
                         sm_isa_name(isa), sm_dtype_name(kv_dtype), nh, nkv, hd, (long long)np, h,
                         (double)out[h * hd + i], o);
        }
        sm_attention(k, q + h * hd, 1, 1, hd, kbuf + (size_t)(kvh * hd) * esz,
                     vbuf + (size_t)(kvh * hd) * esz, kv_dtype, stride, np, one, scratch);
        if (memcmp(one, out + h * hd, sizeof(float) * hd) != 0)
            fail_msg("%s attention (%s cache) %d/%d heads of %d, n_pos %lld: head %d "
                     "differs from the same head alone",
                     sm_isa_name(isa), sm_dtype_name(kv_dtype), nh, nkv, hd, (long long)np, h);
    }
    free(q);
    free(kc);
    free(vc);
    free(out);
    free(one);
    free(kh);
    free(vh);
    free(scratch);
    free(s);
}

/* attention against a double-precision softmax, for head layouts whose groups split into
     * pairs and a single head (7 per kv head), or into register tiles and chunks of heads
     * (13: 6 + 2 and 5 on AVX-512), kv heads taking turns on each chunk (2 x 6 heads; 3 x 9
     * heads: 8 + 1 per kv head, more groups than one pass takes on AVX-512), head sizes with
     * and without a vector tail (80: 64 + 16 on AVX-512; 40 and 36 take the AVX2 kernel
     * there); and
     * every head bitwise what the same head gives alone (heads share loads of keys and values,
     * never arithmetic); with an f32 and an f16 cache (the reference reads the f16 values) */
static void check_attention(const sm_kctx *k)
{
    static const int64_t npos_list[] = {1, 5, 64, 65, 300};
    static const int layouts[][3] = {{6, 2, 64}, {7, 1, 128}, {4, 4, 40},
                                     {3, 1, 36}, {13, 1, 80}, {27, 3, 16}};
    for (int kvt = 0; kvt < 2; kvt++)
        for (size_t li = 0; li < sizeof layouts / sizeof layouts[0]; li++)
            for (size_t pi = 0; pi < sizeof npos_list / sizeof npos_list[0]; pi++)
                check_attention_case(k, kvt, layouts[li][0], layouts[li][1], layouts[li][2],
                                     npos_list[pi]);
}

static void check_vector_kernels(sm_isa isa, sm_pool *pool)
{
    sm_kctx k = {.isa = isa, .pool = pool, .deterministic = true};
    check_rmsnorm(&k);
    check_silu_mul(&k);
    check_rope(&k);
    check_attention(&k);
}

static void test_vector_portable(void **state)
{
    (void)state;
    check_vector_kernels(SM_ISA_PORTABLE, NULL);
}

/* ---- every ISA variant this CPU supports against the portable one ---- */

/* q8_0/q4_0 rows too long for the decode path's scale table (AVX-512 keeps it after the
 * accumulators in the row buffer, up to about 500,000 columns): a batch of 4 still equals
 * each row alone bitwise, and the portable variant within rounding. */
static void test_q_long_rows(void **state)
{
    (void)state;
    enum { ROWS = 5, COLS = 32 * 16400, BATCH = 4 };
    sm_err err;
    float *X = malloc(sizeof *X * BATCH * COLS);
    float *Y = malloc(sizeof *Y * BATCH * ROWS), *Y1 = malloc(sizeof *Y1 * ROWS);
    float *Yp = malloc(sizeof *Yp * BATCH * ROWS);
    assert_non_null(X);
    assert_non_null(Y);
    assert_non_null(Y1);
    assert_non_null(Yp);
    fill(X, (int64_t)BATCH * COLS, 1.0f);
    for (int t = SM_DTYPE_Q8_0; t < SM_DTYPE_COUNT; t++) {
        mat a;
        mat_make(&a, (sm_dtype)t, ROWS, COLS);
        sm_kctx kp = {.isa = SM_ISA_PORTABLE, .deterministic = true};
        assert_int_equal(sm_matmul(&kp, &a.m, NULL, X, COLS, BATCH, Yp, ROWS, &err), SM_OK);
        for (int i = SM_ISA_AVX2; i < SM_ISA_COUNT; i++) {
            if (!sm_isa_supported((sm_isa)i))
                continue;
            sm_kctx k = {.isa = (sm_isa)i, .deterministic = true};
            assert_int_equal(sm_matmul(&k, &a.m, NULL, X, COLS, BATCH, Y, ROWS, &err), SM_OK);
            double num = 0, den = 0;
            for (int b = 0; b < BATCH; b++) {
                assert_int_equal(
                    sm_matmul(&k, &a.m, NULL, X + (int64_t)b * COLS, COLS, 1, Y1, ROWS, &err),
                    SM_OK);
                assert_memory_equal(Y + b * ROWS, Y1, sizeof *Y1 * ROWS);
                for (int r = 0; r < ROWS; r++) {
                    double d = (double)Y[b * ROWS + r] - Yp[b * ROWS + r];
                    num += d * d;
                    den += (double)Yp[b * ROWS + r] * Yp[b * ROWS + r];
                }
            }
            if (!(sqrt(num / den) < 1e-5))
                fail_msg("%s %s long rows: %g from portable", sm_isa_name((sm_isa)i),
                         sm_dtype_name((sm_dtype)t), sqrt(num / den));
        }
        mat_free(&a);
    }
    free(X);
    free(Y);
    free(Y1);
    free(Yp);
}

static void test_variants(void **state)
{
    (void)state;
    sm_pool *pool;
    sm_err err;
    assert_int_equal(sm_pool_new(2, &pool, &err), SM_OK);
    int tested = 0;
    for (int i = SM_ISA_AVX2; i < SM_ISA_COUNT; i++) {
        if (!sm_isa_supported((sm_isa)i)) {
            print_message("[ INFO     ] %s: not supported by this CPU, not tested\n",
                          sm_isa_name((sm_isa)i));
            continue;
        }
        tested++;
        check_matmul_accuracy((sm_isa)i, pool);
        check_batch_invariance((sm_isa)i);
        check_vector_kernels((sm_isa)i, pool);
        /* close to the portable variant on every dtype */
        for (int t = 0; t < SM_DTYPE_COUNT; t++) {
            mat a;
            int64_t cols = sm_dtype_is_kquant((sm_dtype)t) ? 512 : 320;
            mat_make(&a, (sm_dtype)t, 50, cols);
            float X[512 * 3], Y0[150], Y1[150];
            fill(X, 512 * 3, 1.0f);
            sm_kctx kp = {.isa = SM_ISA_PORTABLE, .deterministic = true};
            sm_kctx kv = {.isa = (sm_isa)i, .pool = pool, .deterministic = true};
            assert_int_equal(sm_matmul(&kp, &a.m, NULL, X, cols, 3, Y0, 50, &err), SM_OK);
            assert_int_equal(sm_matmul(&kv, &a.m, NULL, X, cols, 3, Y1, 50, &err), SM_OK);
            double num = 0, den = 0;
            for (int j = 0; j < 150; j++) {
                num += (double)(Y0[j] - Y1[j]) * (Y0[j] - Y1[j]);
                den += (double)Y0[j] * Y0[j];
            }
            double tol = i == SM_ISA_AVX512BF16 && t == SM_DTYPE_BF16 ? 1e-2 : 1e-5;
            if (!(sqrt(num / den) < tol))
                fail_msg("%s %s: %g from portable", sm_isa_name((sm_isa)i),
                         sm_dtype_name((sm_dtype)t), sqrt(num / den));
            mat_free(&a);
        }
    }
    print_message("[ INFO     ] %d accelerated variant(s) tested against portable\n", tested);
    sm_pool_free(&pool);
}

/* A context that keeps its buffers (as the model's does) gives bitwise the results of one that
 * allocates per call, over products of growing and shrinking batches, one of them past the
 * size above which a kept buffer is given back (bf16: 2100 x 8192 permuted floats, 69 MB). */
static void test_kept_buffers(void **state)
{
    (void)state;
    sm_pool *pool;
    sm_err err;
    assert_int_equal(sm_pool_new(2, &pool, &err), SM_OK);
    sm_kbufs *bufs = NULL;
    assert_int_equal(sm_kbufs_new(&bufs, &err), SM_OK);
    const int64_t rows = 16, cols = 8192, batches[] = {3, 40, 2100, 40, 3, 70};
    float *X = malloc(sizeof(float) * 2100 * (size_t)cols);
    float *Y0 = malloc(sizeof(float) * 2100 * (size_t)rows);
    float *Y1 = malloc(sizeof(float) * 2100 * (size_t)rows);
    assert_non_null(X);
    assert_non_null(Y0);
    assert_non_null(Y1);
    fill(X, 2100 * cols, 1.0f);
    const sm_dtype types[] = {SM_DTYPE_BF16, SM_DTYPE_Q8_0, SM_DTYPE_F32};
    for (int t = 0; t < 3; t++) {
        mat a;
        mat_make(&a, types[t], rows, cols);
        for (int det = 0; det < 2; det++) {
            sm_kctx plain = {.isa = sm_isa_detect(), .pool = pool, .deterministic = det};
            sm_kctx kept = plain;
            kept.bufs = bufs;
            for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++) {
                int64_t n = batches[i];
                assert_int_equal(sm_matmul(&plain, &a.m, NULL, X, cols, n, Y0, rows, &err), SM_OK);
                assert_int_equal(sm_matmul(&kept, &a.m, NULL, X, cols, n, Y1, rows, &err), SM_OK);
                if (memcmp(Y0, Y1, sizeof(float) * (size_t)(n * rows)) != 0)
                    fail_msg("%s batch %lld (%s): kept buffers change the results",
                             sm_dtype_name(types[t]), (long long)n, det ? "deterministic" : "fast");
            }
        }
        mat_free(&a);
    }
    sm_kbufs_free(&bufs);
    assert_null(bufs);
    sm_kbufs_free(&bufs); /* freeing twice is harmless */
    free(X);
    free(Y0);
    free(Y1);
    sm_pool_free(&pool);
}

static void test_peak(void **state)
{
    (void)state;
    sm_err err;
    sm_kctx k = {.isa = SM_ISA_PORTABLE, .deterministic = true};
    double g = 0;
    assert_int_equal(sm_kernels_peak(&k, SM_DTYPE_F32, &g, &err), SM_OK);
    assert_true(g > 0.01);
    k.isa = sm_isa_detect();
    assert_int_equal(sm_kernels_peak(&k, SM_DTYPE_Q8_0, &g, &err), SM_OK);
    assert_true(g > 0.01);
    assert_int_equal(sm_kernels_peak(&k, (sm_dtype)77, &g, &err), SM_EINVAL);
    /* every variant this CPU runs, for each kind of peak loop (f32 FMA, bf16 dot products on
     * avx512bf16, 8-bit dot products) */
    const sm_dtype kinds[] = {SM_DTYPE_F32, SM_DTYPE_BF16, SM_DTYPE_Q8_0};
    for (int i = 0; i < SM_ISA_COUNT; i++) {
        if (!sm_isa_supported((sm_isa)i))
            continue;
        k.isa = (sm_isa)i;
        for (size_t t = 0; t < sizeof kinds / sizeof kinds[0]; t++) {
            g = 0;
            assert_int_equal(sm_kernels_peak(&k, kinds[t], &g, &err), SM_OK);
            assert_true(g > 0.01);
        }
    }
}

/* The default variant is one the CPU runs, and never the opt-in avx512bf16 (whose bf16
 * activations are rounded: see sm_isa_detect). */
static void test_isa_default(void **state)
{
    (void)state;
    sm_isa d = sm_isa_detect();
    assert_true(sm_isa_supported(d));
    assert_int_not_equal(d, SM_ISA_AVX512BF16);
    if (sm_isa_supported(SM_ISA_AVX512))
        assert_int_equal(d, SM_ISA_AVX512);
    else if (sm_isa_supported(SM_ISA_AVX2))
        assert_int_equal(d, SM_ISA_AVX2);
}

static void test_membw(void **state)
{
    (void)state;
    sm_err err;
    sm_membw_result best;
    assert_int_equal(sm_membw_measure(NULL, 64 << 20, 2, &best, &err), SM_OK);
    assert_true(best.gbs > 0.1 && best.gbs < 10000);
    assert_int_equal(best.method.threads, 1);
    sm_pool *pool;
    assert_int_equal(sm_pool_new(2, &pool, &err), SM_OK);
    assert_int_equal(sm_membw_measure(pool, 64 << 20, 1, &best, &err), SM_OK);
    assert_true(best.gbs > 0.1 && best.gbs < 10000);
    assert_true(best.method.threads >= 1 && best.method.threads <= 2);
    assert_true(sm_membw_load_supported(best.method.load));
    char name[160];
    sm_membw_method_str(&best.method, name, sizeof name);
    assert_non_null(strstr(name, "loads, "));
    /* every method on its own: a supported one reads at a sane rate, another is refused */
    sm_membw_buf *b = NULL;
    assert_int_equal(sm_membw_buf_new(64 << 20, &b, &err), SM_OK);
    assert_int_equal(sm_membw_buf_bytes(b), (size_t)64 << 20);
    for (int l = 0; l < SM_MEMBW_LOAD_COUNT; l++)
        for (int c = 0; c < SM_MEMBW_CHUNKING_COUNT; c++) {
            sm_membw_method m = {(sm_membw_load)l, (sm_membw_chunking)c, 2};
            double g = 0;
            sm_code rc = sm_membw_read_method(pool, b, &m, 1, &g, &err);
            if (sm_membw_load_supported(m.load)) {
                assert_int_equal(rc, SM_OK);
                assert_true(g > 0.1 && g < 10000);
            } else {
                assert_int_equal(rc, SM_EUNSUPPORTED);
            }
        }
    assert_true(sm_membw_load_supported(SM_MEMBW_PLAIN));
    double g;
    sm_membw_method three = {SM_MEMBW_PLAIN, SM_MEMBW_CONTIGUOUS, 3};
    assert_int_equal(sm_membw_read_method(pool, b, &three, 1, &g, &err), SM_EINVAL);
    sm_membw_method one = {SM_MEMBW_PLAIN, SM_MEMBW_STREAMS, 1};
    assert_int_equal(sm_membw_read_method(NULL, b, &one, 1, &g, &err), SM_OK);
    sm_membw_buf_free(&b);
    sm_pool_free(&pool);
    assert_int_equal(sm_membw_measure(NULL, 64 << 20, 1, NULL, &err), SM_EINVAL);
}

/* ---- pool ---- */

typedef struct pool_arg {
    int *hits;
    int n;
} pool_arg;

static void pool_fn(void *arg, int task, int n_tasks)
{
    pool_arg *a = arg;
    assert_int_equal(n_tasks, a->n);
    __atomic_fetch_add(&a->hits[task], 1, __ATOMIC_RELAXED);
}

typedef struct nested_arg {
    sm_pool *pool;
    int *hits;
} nested_arg;

static void nested_fn(void *arg, int task, int n_tasks)
{
    (void)n_tasks;
    nested_arg *a = arg;
    pool_arg inner = {.hits = a->hits + task * 4, .n = 4};
    sm_pool_run(a->pool, pool_fn, &inner, 4); /* busy pool: runs inline */
}

static void test_pool(void **state)
{
    (void)state;
    sm_err err;
    for (int threads = 1; threads <= 4; threads++) {
        sm_pool *pool;
        assert_int_equal(sm_pool_new(threads, &pool, &err), SM_OK);
        assert_int_equal(sm_pool_threads(pool), threads);
        static int hits[70000];
        static const int counts[] = {1, 2, 3, 17, 1000, 70000};
        for (int rep = 0; rep < 300; rep++) {
            int n = counts[rep % 6];
            if (n == 70000 && rep > 6)
                continue;
            memset(hits, 0, sizeof(int) * (size_t)n);
            pool_arg a = {.hits = hits, .n = n};
            sm_pool_run(pool, pool_fn, &a, n);
            for (int i = 0; i < n; i++)
                assert_int_equal(hits[i], 1);
        }
        int nh[32] = {0};
        nested_arg na = {.pool = pool, .hits = nh};
        sm_pool_run(pool, nested_fn, &na, 8);
        for (int i = 0; i < 32; i++)
            assert_int_equal(nh[i], 1);
        sm_pool_free(&pool);
        assert_null(pool);
    }
    sm_pool *pool;
    assert_int_equal(sm_pool_new(0, &pool, &err), SM_OK);
    assert_true(sm_pool_threads(pool) >= 1);
    sm_pool_free(&pool);
    sm_pool_free(&pool); /* freeing NULL is fine */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_f16_all),
        cmocka_unit_test(test_dtype_names),
        cmocka_unit_test(test_quant_q8_0),
        cmocka_unit_test(test_quant_q4_0),
        cmocka_unit_test(test_matmul_portable),
        cmocka_unit_test(test_matmul_errors),
        cmocka_unit_test(test_batch_invariance_portable),
        cmocka_unit_test(test_vector_portable),
        cmocka_unit_test(test_variants),
        cmocka_unit_test(test_q_long_rows),
        cmocka_unit_test(test_kept_buffers),
        cmocka_unit_test(test_peak),
        cmocka_unit_test(test_isa_default),
        cmocka_unit_test(test_membw),
        cmocka_unit_test(test_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
