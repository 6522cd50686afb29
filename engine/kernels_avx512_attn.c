/* kernels_avx512_attn: attention over the KV cache with 16-lane vectors, for the AVX-512
 * variants, when the head size is a multiple of 16 (the AVX2 attention otherwise).
 *
 * The query heads of one kv head (grouped-query attention: 6 per kv head in Qwen2-1.5B) take
 * each chunk of SM_ATTN_CHUNK positions together, in register tiles of up to 6 heads x 4 key
 * rows for the scores and 6 heads x 64 values for the weighted sum, so one load and widening
 * of a key or value vector serves every head of the tile (the AVX2 kernel shares a load
 * between two heads, with 8 lanes). The kv heads of a call take turns on each chunk too: a
 * cache row holds every kv head side by side, so each row is fetched whole, once per chunk,
 * rather than in one piece per kv head.
 *
 * Arithmetic per head, the same whichever tile or other heads it shares: a score q . k is one
 * 16-lane accumulator of FMAs in order of the values, then mm_hsum16's tree, times the scale;
 * the online softmax per chunk (softmax_chunk16); each output value o = o * corr, then
 * o = fma(e_p, v_p, o) in order of the positions; at the end o / l. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels_exp.h"
#include "kernels_hsum.h"
#include "kernels_isa.h"

#define A5_INLINE static inline __attribute__((always_inline))
#define A5_HEADS 8 /* query heads that take turns on one chunk of keys and values */
#define A5_TH 6    /* query heads per register tile */
#define A5_TR 4    /* key rows per score tile */
#define A5_TV 4    /* value vectors (of 16) per output tile */
/* mm_exp8 on 16 lanes, inlined (a call per 8 lanes was a tenth of the attention's time) */
A5_INLINE __m512 exp16(__m512 x)
{
    __m256 lo = mm_exp8(_mm512_castps512_ps256(x)), hi = mm_exp8(_mm512_extractf32x8_ps(x, 1));
    return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
}

_Static_assert(SM_ATTN_CHUNK == 64, "softmax_chunk16 sums four vectors of scores");

/* 16 cache values from element i of row p, as f32 (f16 widened exactly). */
A5_INLINE __m512 kv_load16(const char *p, int64_t i, bool kv_f16)
{
    if (kv_f16)
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p + 2 * i)));
    return _mm512_loadu_ps((const float *)(const void *)p + i);
}

/* The unsummed lanes of q_h . k_r for nh heads (q, hd apart) and nr key rows (k, rs bytes
 * apart): lanes[h * 16 + r]. */
A5_INLINE void score_tile(int nh, int nr, const float *q, int hd, const char *k, int64_t rs,
                          bool kv_f16, __m512 *lanes)
{
    __m512 acc[A5_TH][A5_TR];
    for (int h = 0; h < nh; h++)
        for (int r = 0; r < nr; r++)
            acc[h][r] = _mm512_setzero_ps();
    for (int c = 0; c < hd; c += 16) {
        __m512 kv[A5_TR];
        for (int r = 0; r < nr; r++)
            kv[r] = kv_load16(k + r * rs, c, kv_f16);
        for (int h = 0; h < nh; h++) {
            __m512 qv = _mm512_loadu_ps(q + (int64_t)h * hd + c);
            for (int r = 0; r < nr; r++)
                acc[h][r] = _mm512_fmadd_ps(qv, kv[r], acc[h][r]);
        }
    }
    for (int h = 0; h < nh; h++)
        for (int r = 0; r < nr; r++)
            lanes[h * 16 + r] = acc[h][r];
}

/* o_h[i .. i + 16 nv) = o_h * corr_h + sum_p e_h[p] v_p for nh heads (o and e hd and
 * SM_ATTN_CHUNK apart), positions in order. */
A5_INLINE void value_tile(int nh, int nv, float *o, int hd, int i, const float *corr,
                          const float *e, const char *v, int64_t rs, int64_t np, bool kv_f16)
{
    __m512 acc[A5_TH][A5_TV];
    for (int h = 0; h < nh; h++) {
        __m512 c = _mm512_set1_ps(corr[h]);
        for (int j = 0; j < nv; j++)
            acc[h][j] = _mm512_mul_ps(_mm512_loadu_ps(o + (int64_t)h * hd + i + 16 * j), c);
    }
    for (int64_t p = 0; p < np; p++) {
        const char *vp = v + p * rs;
        __m512 vv[A5_TV];
        for (int j = 0; j < nv; j++)
            vv[j] = kv_load16(vp, i + 16 * j, kv_f16);
        for (int h = 0; h < nh; h++) {
            __m512 ep = _mm512_set1_ps(e[h * SM_ATTN_CHUNK + p]);
            for (int j = 0; j < nv; j++)
                acc[h][j] = _mm512_fmadd_ps(ep, vv[j], acc[h][j]);
        }
    }
    for (int h = 0; h < nh; h++)
        for (int j = 0; j < nv; j++)
            _mm512_storeu_ps(o + (int64_t)h * hd + i + 16 * j, acc[h][j]);
}

/* One function per tile shape (nh heads 1..6; 4 rows or 1, 4 vectors or 1) and cache type,
 * so that every loop above has constant bounds. */
typedef void (*score_fn)(const float *, int, const char *, int64_t, __m512 *);
typedef void (*value_fn)(float *, int, int, const float *, const float *, const char *, int64_t,
                         int64_t);

#define A5_SCORE(NH, NR, F16, SUF)                                                        \
    static void score_##NH##_##NR##SUF(const float *q, int hd, const char *k, int64_t rs, \
                                       __m512 *lanes)                                     \
    {                                                                                     \
        score_tile(NH, NR, q, hd, k, rs, F16, lanes);                                     \
    }
#define A5_VALUE(NH, NV, F16, SUF)                                                                 \
    static void value_##NH##_##NV##SUF(float *o, int hd, int i, const float *corr, const float *e, \
                                       const char *v, int64_t rs, int64_t np)                      \
    {                                                                                              \
        value_tile(NH, NV, o, hd, i, corr, e, v, rs, np, F16);                                     \
    }
#define A5_SHAPES(NH, F16, SUF) \
    A5_SCORE(NH, 4, F16, SUF)   \
    A5_SCORE(NH, 1, F16, SUF) A5_VALUE(NH, 4, F16, SUF) A5_VALUE(NH, 1, F16, SUF)
/* clang-format off */
#define A5_ALL(F16, SUF) \
    A5_SHAPES(1, F16, SUF) A5_SHAPES(2, F16, SUF) A5_SHAPES(3, F16, SUF) \
    A5_SHAPES(4, F16, SUF) A5_SHAPES(5, F16, SUF) A5_SHAPES(6, F16, SUF)
/* clang-format on */
A5_ALL(false, _f32)
A5_ALL(true, _f16)

#define A5_TABLE(KIND, N, SUF)                                                      \
    {                                                                               \
        KIND##_1_##N##SUF, KIND##_2_##N##SUF, KIND##_3_##N##SUF, KIND##_4_##N##SUF, \
            KIND##_5_##N##SUF, KIND##_6_##N##SUF                                    \
    }
/* [f16][4 rows / 1 row][heads - 1] */
static const score_fn score_fns[2][2][A5_TH] = {
    {A5_TABLE(score, 4, _f32), A5_TABLE(score, 1, _f32)},
    {A5_TABLE(score, 4, _f16), A5_TABLE(score, 1, _f16)},
};
/* [f16][4 vectors / 1 vector][heads - 1] */
static const value_fn value_fns[2][2][A5_TH] = {
    {A5_TABLE(value, 4, _f32), A5_TABLE(value, 1, _f32)},
    {A5_TABLE(value, 4, _f16), A5_TABLE(value, 1, _f16)},
};

/* Fetches n rows of bytes bytes each, rs apart, from p (into L2: the cache's rows come from
 * memory, far too many for the hardware prefetchers to run ahead of the loads). */
static void fetch_rows(const char *p, int64_t rs, int64_t n, int64_t bytes)
{
    for (int64_t r = 0; r < n; r++)
        for (int64_t b = 0; b < bytes; b += 64)
            _mm_prefetch(p + r * rs + b, _MM_HINT_T1);
}

/* The online softmax of one chunk with 16-lane vectors: s[0..np) becomes exp(s * scale - new
 * max) (s[np..] up to the next multiple of 16 becomes 0); updates the head's running max m and
 * sum l (the chunk's part: up to four 16-lane vectors added in a fixed tree, then mm_hsum16)
 * and returns the factor the head's earlier output must be scaled by. */
static float softmax_chunk16(float *s, int64_t np, float scale, float *m, float *l)
{
    __m512 v[SM_ATTN_CHUNK / 16];
    int nv = (int)((np + 15) / 16);
    __m512 vs = _mm512_set1_ps(scale), vmax = _mm512_set1_ps(-INFINITY);
    for (int i = 0; i < nv; i++) {
        int64_t n = np - 16 * i < 16 ? np - 16 * i : 16;
        __mmask16 k = (__mmask16)((1u << n) - 1u);
        v[i] = _mm512_mul_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), k, s + 16 * i), vs);
        vmax = _mm512_max_ps(vmax, v[i]);
    }
    float mnew = fmaxf(*m, _mm512_reduce_max_ps(vmax));
    float corr = expf(*m - mnew);
    __m512 vm = _mm512_set1_ps(mnew), sum;
    for (int i = 0; i < nv; i++) {
        __m512 x = _mm512_sub_ps(v[i], vm); /* exp(-inf) is 0: the lanes past np */
        __m512 e = exp16(x);
        _mm512_storeu_ps(s + 16 * i, e);
        v[i] = e;
    }
    sum = nv > 1 ? _mm512_add_ps(v[0], v[1]) : v[0];
    if (nv > 2)
        sum = _mm512_add_ps(sum, nv > 3 ? _mm512_add_ps(v[2], v[3]) : v[2]);
    *l = *l * corr + mm_hsum16(sum);
    *m = mnew;
    return corr;
}

/* The scores s[h][0..np) of heads h0 .. h0 + nh against one chunk of keys kc, unscaled; when
 * fetch is not 0, the chunk's rows of values (vc) and the next chunk's nk rows of keys are
 * fetched meanwhile, fetch bytes of each row from there. */
static void chunk_scores(const sm_attn_job *a, int h0, int nh, const char *kc, int64_t rs,
                         int64_t np, const char *vc, int64_t nk, int64_t fetch,
                         float s[A5_HEADS][SM_ATTN_CHUNK])
{
    int hd = a->head_dim, f16 = a->kv_f16;
    __m512 lanes[A5_HEADS * 16];
    for (int64_t p0 = 0; p0 < np; p0 += 16) {
        int n16 = np - p0 < 16 ? (int)(np - p0) : 16;
        if (fetch > 0 && p0 < nk) {
            int64_t n = nk - p0 < 16 ? nk - p0 : 16;
            fetch_rows(kc + (SM_ATTN_CHUNK + p0) * rs, rs, n, fetch);
            fetch_rows(vc + (SM_ATTN_CHUNK + p0) * rs, rs, n, fetch);
        }
        if (n16 < 16) /* lanes past the chunk's end are summed too, and dropped */
            memset(lanes, 0, sizeof lanes);
        for (int hg = 0; hg < nh; hg += A5_TH) {
            int nt = nh - hg < A5_TH ? nh - hg : A5_TH;
            const float *q = a->q + (int64_t)(h0 + hg) * hd;
            int r = 0;
            for (; r + A5_TR <= n16; r += A5_TR)
                score_fns[f16][0][nt - 1](q, hd, kc + (p0 + r) * rs, rs, lanes + hg * 16 + r);
            for (; r < n16; r++)
                score_fns[f16][1][nt - 1](q, hd, kc + (p0 + r) * rs, rs, lanes + hg * 16 + r);
        }
        for (int h = 0; h < nh; h++) {
            float sum[16];
            _mm512_storeu_ps(sum, mm_hsum16x16(lanes + h * 16));
            memcpy(s[h] + p0, sum, sizeof(float) * (size_t)n16);
        }
    }
}

/* Query heads h0 .. h0 + nh (at most A5_HEADS) of kv head kvh, with their online softmax's
 * state. */
typedef struct a5_heads {
    int h0, nh;
    const char *k, *v; /* the kv head's part of the first cache row */
    float m[A5_HEADS], l[A5_HEADS];
    float s[A5_HEADS][SM_ATTN_CHUNK];
} a5_heads;

/* kv heads whose query heads take turns on each chunk (all of Qwen2-1.5B's two), so that the
 * cache rows, which hold every kv head side by side, are read whole and once per chunk */
#define A5_GROUPS 4

static void heads_init(const sm_attn_job *a, int kvh, int h0, int nh, a5_heads *g)
{
    int64_t esz = a->kv_f16 ? 2 : 4;
    g->h0 = h0;
    g->nh = nh;
    g->k = (const char *)a->k + (int64_t)kvh * a->head_dim * esz;
    g->v = (const char *)a->v + (int64_t)kvh * a->head_dim * esz;
    for (int j = 0; j < nh; j++) {
        g->m[j] = -INFINITY;
        g->l[j] = 0.0f;
    }
    memset(a->out + (int64_t)h0 * a->head_dim, 0, sizeof(float) * (size_t)(nh * a->head_dim));
}

/* The chunk of positions from p0 for the heads of g; fetch as in chunk_scores. */
static void heads_chunk(const sm_attn_job *a, a5_heads *g, int64_t p0, int64_t fetch)
{
    int hd = a->head_dim, f16 = a->kv_f16;
    int64_t rs = a->kv_stride * (f16 ? 2 : 4);
    int64_t np = a->n_pos - p0 < SM_ATTN_CHUNK ? a->n_pos - p0 : SM_ATTN_CHUNK;
    int64_t left = a->n_pos - p0 - np;
    const char *vc = g->v + p0 * rs;
    float corr[A5_HEADS];
    chunk_scores(a, g->h0, g->nh, g->k + p0 * rs, rs, np, vc,
                 left < SM_ATTN_CHUNK ? left : SM_ATTN_CHUNK, fetch, g->s);
    for (int j = 0; j < g->nh; j++)
        corr[j] = softmax_chunk16(g->s[j], np, a->scale, &g->m[j], &g->l[j]);
    float *out = a->out + (int64_t)g->h0 * hd;
    for (int hg = 0; hg < g->nh; hg += A5_TH) {
        int nt = g->nh - hg < A5_TH ? g->nh - hg : A5_TH;
        float *o = out + (int64_t)hg * hd;
        int i = 0;
        for (; i + 16 * A5_TV <= hd; i += 16 * A5_TV)
            value_fns[f16][0][nt - 1](o, hd, i, corr + hg, g->s[hg], vc, rs, np);
        for (; i < hd; i += 16)
            value_fns[f16][1][nt - 1](o, hd, i, corr + hg, g->s[hg], vc, rs, np);
    }
}

static void heads_finish(const sm_attn_job *a, const a5_heads *g)
{
    for (int j = 0; j < g->nh; j++) {
        float *o = a->out + (int64_t)(g->h0 + j) * a->head_dim;
        __m512 inv = _mm512_set1_ps(g->l[j] > 0.0f ? 1.0f / g->l[j] : 0.0f);
        for (int i = 0; i < a->head_dim; i += 16)
            _mm512_storeu_ps(o + i, _mm512_mul_ps(_mm512_loadu_ps(o + i), inv));
    }
}

/* The heads of g[0 .. ng), of kv heads kv_first .. kv_last, chunk by chunk; the first group
 * fetches the part of each row that all of them read. */
static void attn_groups(const sm_attn_job *a, a5_heads *g, int ng, int kv_first, int kv_last)
{
    int64_t fetch = (int64_t)(kv_last - kv_first + 1) * a->head_dim * (a->kv_f16 ? 2 : 4);
    for (int64_t p0 = 0; p0 < a->n_pos; p0 += SM_ATTN_CHUNK)
        for (int i = 0; i < ng; i++)
            heads_chunk(a, &g[i], p0, i == 0 ? fetch : 0);
    for (int i = 0; i < ng; i++)
        heads_finish(a, &g[i]);
}

void sm_avx512_attention_kvs(const sm_attn_job *a, int kv0, int kv1)
{
    if (a->head_dim % 16 != 0 || a->kv_q8) {
        sm_avx2_attention_kvs(a, kv0, kv1);
        return;
    }
    int group = a->n_heads / a->n_kv_heads;
    a5_heads g[A5_GROUPS];
    int ng = 0, first = kv0;
    for (int kvh = kv0; kvh < kv1; kvh++) {
        for (int h0 = kvh * group; h0 < (kvh + 1) * group; h0 += A5_HEADS) {
            if (ng == A5_GROUPS) {
                attn_groups(a, g, ng, first, kvh);
                ng = 0;
                first = kvh;
            }
            int nh = (kvh + 1) * group - h0 < A5_HEADS ? (kvh + 1) * group - h0 : A5_HEADS;
            heads_init(a, kvh, h0, nh, &g[ng++]);
        }
    }
    if (ng > 0)
        attn_groups(a, g, ng, first, kv1 - 1);
}
