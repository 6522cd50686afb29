/* kernels_avx2_kq: the products of K-quant weights (q4_k, q5_k, q6_k) with AVX2, also used by
 * the AVX-512 variants. A super-block is decoded into registers (nibbles masked and shifted,
 * q5_k's and q6_k's high bits merged in, q6_k's values less 32). Decode (batches of under four
 * rows) multiplies straight from the GGUF blocks; larger batches unpack four rows at a time to
 * scratch (the form of kernels_isa.h), so that each activation block serves four rows. Per
 * block of 32: vpmaddubsw of the values (unsigned for q4_k/q5_k; q6_k's signed ones through
 * vpsignb) with the 8-bit activations, vpmaddwd with the 16-bit scales, an exact 8-lane int32
 * sum converted and accumulated with d * xd by FMA; the mins (q4_k/q5_k) in an 8-lane
 * accumulator of mn * xs. Both paths do the same operations in the same order, and lanes are
 * summed with the fixed tree of kernels_hsum.h: an output depends only on cols. */
#include <immintrin.h>

#include "kernels_hsum.h"
#include "kernels_kq_tmpl.h"

#define KQ_ROWS 4

/* One super-block decoded into registers: the 8 blocks' values (unsigned for q4_k/q5_k, q - 32
 * for q6_k), the scales as int16 pairs in 32-bit lanes (q4_k/q5_k: lane j for block j; q6_k:
 * lane i of s0 / s1 for the group of 16 values i / 8 + i), d and the 8 mins (dmin * min). */
typedef struct kq_sb {
    __m256i q[8];
    __m256i s0, s1;
    float d;
    __m256 mn;
} kq_sb;

static inline __attribute__((always_inline)) float kq_h2f(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* 32-bit lanes v -> the low 16 bits in both halves */
static inline __attribute__((always_inline)) __m256i kq_pairs(__m256i v)
{
    return _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi32(0xffff)),
                           _mm256_slli_epi32(v, 16));
}

/* the 12 bytes of 6-bit scales and mins of q4_k/q5_k: scales into lanes of *sc, mins of *m */
static inline __attribute__((always_inline)) void kq_scales_q45(const uint8_t *p, __m256i *sc,
                                                                __m256i *m)
{
    uint32_t u[4];
    memcpy(u, p, 12);
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
    u[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4);
    uint32_t mins_lo = u[1] & m6;
    u[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);
    u[2] = mins_lo;
    u[0] &= m6;
    *sc = _mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, (int)u[1], (int)u[0]));
    *m = _mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, (int)u[3], (int)u[2]));
}

static inline __attribute__((always_inline)) void kq_decode_q45(const uint8_t *b, bool q5, kq_sb *o)
{
    const uint8_t *qs = b + (q5 ? 48 : 16);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256i qh =
        q5 ? _mm256_loadu_si256((const __m256i *)(const void *)(b + 16)) : _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(qs + 32 * c));
        __m256i lo = _mm256_and_si256(v, m4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        if (q5) {
            const __m256i one = _mm256_set1_epi8(1);
            __m256i h0 = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c)), one);
            __m256i h1 = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c + 1)), one);
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(h0, 4));
            hi = _mm256_or_si256(hi, _mm256_slli_epi16(h1, 4));
        }
        o->q[2 * c] = lo;
        o->q[2 * c + 1] = hi;
    }
    __m256i sc, m;
    kq_scales_q45(b + 4, &sc, &m);
    o->s0 = kq_pairs(sc);
    o->s1 = o->s0;
    o->d = kq_h2f(b);
    o->mn = _mm256_mul_ps(_mm256_set1_ps(kq_h2f(b + 2)), _mm256_cvtepi32_ps(m));
}

static inline __attribute__((always_inline)) void kq_decode_q6(const uint8_t *b, kq_sb *o)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    const __m256i off = _mm256_set1_epi8(32);
    for (int n = 0; n < 2; n++) {
        __m256i l0 = _mm256_loadu_si256((const __m256i *)(const void *)(b + 64 * n));
        __m256i l1 = _mm256_loadu_si256((const __m256i *)(const void *)(b + 64 * n + 32));
        __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)(b + 128 + 32 * n));
        __m256i v[4];
        v[0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
                               _mm256_slli_epi16(_mm256_and_si256(h, m2), 4));
        v[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4));
        v[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4));
        v[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4));
        for (int g = 0; g < 4; g++)
            o->q[4 * n + g] = _mm256_sub_epi8(v[g], off);
    }
    __m128i s = _mm_loadu_si128((const __m128i *)(const void *)(b + 192));
    o->s0 = kq_pairs(_mm256_cvtepi8_epi32(s));
    o->s1 = kq_pairs(_mm256_cvtepi8_epi32(_mm_srli_si128(s, 8)));
    o->d = kq_h2f(b + 208);
    o->mn = _mm256_setzero_ps();
}

static inline __attribute__((always_inline)) void kq_decode(sm_dtype t, const uint8_t *b, kq_sb *o)
{
    if (t == SM_DTYPE_Q6_K)
        kq_decode_q6(b, o);
    else
        kq_decode_q45(b, t == SM_DTYPE_Q5_K, o);
}

/* the 16 int16 scales of block j: values 0-15 (low lane half) and 16-31 (high) */
static inline __attribute__((always_inline)) __m256i kq_scv(sm_dtype t, const kq_sb *o, int j)
{
    if (t != SM_DTYPE_Q6_K)
        return _mm256_permutevar8x32_epi32(o->s0, _mm256_set1_epi32(j));
    int a = (2 * j) % 8;
    return _mm256_permutevar8x32_epi32(j < 4 ? o->s0 : o->s1,
                                       _mm256_setr_epi32(a, a, a, a, a + 1, a + 1, a + 1, a + 1));
}

/* A row's super-blocks to the unpacked form (kernels_isa.h), from the decoded registers. */
static void kq_unpack_row_avx2(sm_dtype t, const uint8_t *src, int64_t cols, uint8_t *dst)
{
    size_t bsz = sm_dtype_row_bytes(t, SM_QK_BLOCK);
    int16_t *sc = KQ_SC(dst, cols);
    float *d = KQ_D(dst, cols), *mn = KQ_MN(dst, cols);
    for (int64_t s = 0; s < cols / SM_QK_BLOCK; s++) {
        kq_sb o;
        kq_decode(t, src + (size_t)s * bsz, &o);
        for (int j = 0; j < 8; j++) {
            int64_t k = 8 * s + j;
            _mm256_store_si256((__m256i *)(void *)(dst + 32 * k), o.q[j]);
            _mm256_store_si256((__m256i *)(void *)(sc + 16 * k), kq_scv(t, &o, j));
            d[k] = o.d;
        }
        _mm256_storeu_ps(mn + 8 * s, o.mn);
    }
}

/* nb (1..3) batch rows' outputs of one weight row straight from the GGUF blocks (decode:
 * batches of under KQ_ROWS rows; each super-block decoded once for them all): the same
 * operations, in the same order, as kq_dot on the unpacked row, so bitwise the same results. */
static inline __attribute__((always_inline)) void
kq_dot_direct(sm_dtype t, int nb, const uint8_t *row, int64_t cols, const int8_t *const *xq,
              const float *const *xd, const float *const *xs, float *out)
{
    bool sgn = t == SM_DTYPE_Q6_K;
    size_t bsz = sm_dtype_row_bytes(t, SM_QK_BLOCK);
    __m256 acc[KQ_ROWS - 1], accm[KQ_ROWS - 1];
    for (int b = 0; b < nb; b++) {
        acc[b] = _mm256_setzero_ps();
        accm[b] = _mm256_setzero_ps();
    }
    for (int64_t s = 0; s < cols / SM_QK_BLOCK; s++) {
        kq_sb o;
        const uint8_t *blk = row + (size_t)s * bsz;
        _mm_prefetch((const char *)(blk + 4 * bsz), _MM_HINT_T0);
        _mm_prefetch((const char *)(blk + 4 * bsz + 64), _MM_HINT_T0);
        _mm_prefetch((const char *)(blk + 4 * bsz + 128), _MM_HINT_T0);
        kq_decode(t, blk, &o);
        for (int b = 0; b < nb; b++) {
            /* d * xd of the 8 blocks (the same products as kq_dot's, one vector multiply) */
            __m256 dx = _mm256_mul_ps(_mm256_set1_ps(o.d), _mm256_loadu_ps(xd[b] + 8 * s));
            for (int j = 0; j < 8; j++) {
                int64_t k = 8 * s + j;
                __m256i x = _mm256_loadu_si256((const __m256i *)(const void *)(xq[b] + 32 * k));
                __m256i w = o.q[j];
                __m256i p = sgn ? _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w))
                                : _mm256_maddubs_epi16(w, x);
                __m256i si = _mm256_madd_epi16(p, kq_scv(t, &o, j));
                __m256 dxj = _mm256_permutevar8x32_ps(dx, _mm256_set1_epi32(j));
                acc[b] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si), dxj, acc[b]);
            }
            if (!sgn)
                accm[b] = _mm256_fmadd_ps(o.mn, _mm256_loadu_ps(xs[b] + 8 * s), accm[b]);
        }
    }
    for (int b = 0; b < nb; b++)
        out[b] = mm_hsum8(acc[b]) - mm_hsum8(accm[b]);
}

/* kq_dot_direct specialised for the type and the number of batch rows */
#define KQ_DIRECT_NB(T)                                  \
    switch (nb) {                                        \
    case 1:                                              \
        kq_dot_direct(T, 1, row, cols, xq, xd, xs, out); \
        break;                                           \
    case 2:                                              \
        kq_dot_direct(T, 2, row, cols, xq, xd, xs, out); \
        break;                                           \
    default:                                             \
        kq_dot_direct(T, 3, row, cols, xq, xd, xs, out); \
        break;                                           \
    }

static void kq_direct(sm_dtype t, int nb, const uint8_t *row, int64_t cols, const int8_t *const *xq,
                      const float *const *xd, const float *const *xs, float *out)
{
    if (t == SM_DTYPE_Q4_K) {
        KQ_DIRECT_NB(SM_DTYPE_Q4_K)
    } else if (t == SM_DTYPE_Q5_K) {
        KQ_DIRECT_NB(SM_DTYPE_Q5_K)
    } else {
        KQ_DIRECT_NB(SM_DTYPE_Q6_K)
    }
}

static void kq_rows_direct(const sm_mm_job *j, int64_t r0, int64_t r1)
{
    int64_t nblk = j->cols / SM_QBLOCK;
    const int8_t *xq[KQ_ROWS - 1];
    const float *xd[KQ_ROWS - 1], *xs[KQ_ROWS - 1];
    int nb = (int)j->batch; /* 1..KQ_ROWS - 1 */
    for (int b = 0; b < nb; b++) {
        xq[b] = j->xq + b * j->cols;
        xd[b] = j->xd + b * nblk;
        xs[b] = j->xs + b * nblk;
    }
    for (int64_t r = r0; r < r1; r++) {
        float out[KQ_ROWS - 1];
        kq_direct(j->dtype, nb, j->w + (size_t)r * j->row_bytes, j->cols, xq, xd, xs, out);
        for (int b = 0; b < nb; b++)
            j->y[b * j->ldy + r] = out[b] + (j->bias ? j->bias[r] : 0.0f);
    }
}

/* R (4 or 1) outputs of one batch row from R unpacked weight rows (each activation block
 * loaded once for them all). */
static inline __attribute__((always_inline)) void kq_dot(int R, const uint8_t *const *u, bool sgn,
                                                         int64_t cols, const int8_t *xq,
                                                         const float *xd, const float *xs,
                                                         float *out)
{
    __m256 acc[KQ_ROWS], accm[KQ_ROWS];
    const int16_t *sc[KQ_ROWS];
    const float *d[KQ_ROWS], *mn[KQ_ROWS];
    for (int r = 0; r < R; r++) {
        acc[r] = _mm256_setzero_ps();
        accm[r] = _mm256_setzero_ps();
        sc[r] = KQ_SC(u[r], cols);
        d[r] = KQ_D(u[r], cols);
        mn[r] = KQ_MN(u[r], cols);
    }
    int64_t nb = cols / 32;
    for (int64_t j = 0; j < nb; j++) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(const void *)(xq + 32 * j));
        float xdj = xd[j];
        for (int r = 0; r < R; r++) {
            __m256i w = _mm256_load_si256((const __m256i *)(const void *)(u[r] + 32 * j));
            __m256i p = sgn ? _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w))
                            : _mm256_maddubs_epi16(w, x);
            __m256i s = _mm256_madd_epi16(
                p, _mm256_load_si256((const __m256i *)(const void *)(sc[r] + 16 * j)));
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d[r][j] * xdj), acc[r]);
        }
    }
    if (!sgn) {
        for (int64_t j = 0; j < nb; j += 8) {
            __m256 x8 = _mm256_loadu_ps(xs + j);
            for (int r = 0; r < R; r++)
                accm[r] = _mm256_fmadd_ps(_mm256_loadu_ps(mn[r] + j), x8, accm[r]);
        }
    }
    for (int r = 0; r < R; r++)
        out[r] = mm_hsum8(acc[r]) - mm_hsum8(accm[r]);
}

void sm_avx2_kq_rows(const sm_mm_job *j, int64_t r0, int64_t r1, int task)
{
    if (j->batch < KQ_ROWS) {
        kq_rows_direct(j, r0, r1);
        return;
    }
    uint8_t *scr = (uint8_t *)(j->scratch + (int64_t)task * j->scratch_floats);
    size_t ub = sm_kq_unpacked_bytes(j->cols);
    int64_t nb = j->cols / SM_QBLOCK;
    bool sgn = j->dtype == SM_DTYPE_Q6_K;
    for (int64_t r = r0; r < r1; r += KQ_ROWS) {
        int nr = r1 - r < KQ_ROWS ? (int)(r1 - r) : KQ_ROWS;
        const uint8_t *u[KQ_ROWS];
        for (int i = 0; i < nr; i++) {
            kq_unpack_row_avx2(j->dtype, j->w + (size_t)(r + i) * j->row_bytes, j->cols,
                               scr + (size_t)i * ub);
            u[i] = scr + (size_t)i * ub;
        }
        for (int64_t b = 0; b < j->batch; b++) {
            const int8_t *xq = j->xq + b * j->cols;
            const float *xd = j->xd + b * nb, *xs = j->xs + b * nb;
            float out[KQ_ROWS];
            if (nr == KQ_ROWS) {
                kq_dot(KQ_ROWS, u, sgn, j->cols, xq, xd, xs, out);
            } else {
                for (int i = 0; i < nr; i++)
                    kq_dot(1, u + i, sgn, j->cols, xq, xd, xs, out + i);
            }
            for (int i = 0; i < nr; i++)
                j->y[b * j->ldy + r + i] = out[i] + (j->bias ? j->bias[r + i] : 0.0f);
        }
    }
}
