/* kernels_avx512_q8x: the AVX-512 VNNI products of q8_0 weights packed in groups of 16 rows
 * (width 16, kernels_q8x.c). A 512-bit vector holds 4 values of one block of each of 16 rows
 * (stored plus 128, unsigned); vpdpbusd with 4 activation values broadcast adds their products
 * into each row's own lane, which starts at the activations' correction (-128 x the block's
 * sum). Per output, over the blocks in order,
 *     acc = fma((float)isum_k, dw_k * dx_k, acc)      (acc from 0), then acc + bias,
 * whatever the batch, the tile or the column range: a tile carries acc through y from one
 * column range to the next (exactly), and each output has its own lane, so nothing is summed
 * across lanes. A tile is 2 groups (32 rows) x up to 6 batch rows: 12 int32 block sums, 12 f32
 * accumulators, 2 weight vectors and one broadcast activation in the 32 registers. */
#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "kernels_isa.h"

#define Q8R_NB 6      /* batch rows of a tile, at most */
#define Q8R_GROUPS 4  /* prompts: groups (of 16 rows) per block, whose weights stay in L2 */
#define Q8R_KC 96     /* prompts: blocks per column range when rows have more than 128 */
#define Q8R_DECODE 16 /* batches up to this read each pair of groups once, for all batch rows */
#define Q8R_DKC \
    16 /* decode: blocks per column range (a pair of groups' 17 KB stay in L1
                         over the passes) */

typedef struct q8r_args {
    const uint8_t *w;         /* the tile's first group */
    size_t gb;                /* bytes per group */
    int64_t nblk, k0, k1;     /* blocks per row; this column range */
    const uint8_t *x[Q8R_NB]; /* activation rows (kernels_q8x.c, width 16) */
    float *y;                 /* outputs of group r, batch row b at y + b * ldy + 16 r */
    int64_t ldy;
    __mmask16 m[2];    /* the rows of each group that exist */
    bool first;        /* accumulators start at 0, else from y */
    const float *bias; /* last column range only: the bias of the tile's rows, or NULL */
    /* decode: lines [pf_i, pf_end) of the next column range's regions are fetched meanwhile,
     * pf_per per block (line i of region n at pf[n] + 64 (i - the lines before region n)) */
    const char *pf[4];
    int64_t pf_lines[4], pf_i, pf_end, pf_per;
} q8r_args;

/* Fetches the next pf_per lines of a's share into L1. */
static inline __attribute__((always_inline)) void q8r_fetch(q8r_args *a)
{
    for (int64_t p = 0; p < a->pf_per && a->pf_i < a->pf_end; p++, a->pf_i++) {
        int64_t i = a->pf_i;
        int n = 0;
        while (i >= a->pf_lines[n]) {
            i -= a->pf_lines[n];
            n++;
        }
        _mm_prefetch(a->pf[n] + 64 * i, _MM_HINT_T0);
    }
}

static inline __attribute__((always_inline)) void q8r_tile(int ng, int nb, q8r_args *a)
{
    __m512 f[2][Q8R_NB];
    for (int r = 0; r < ng; r++)
        for (int b = 0; b < nb; b++)
            f[r][b] = a->first ? _mm512_setzero_ps()
                               : _mm512_maskz_loadu_ps(a->m[r], a->y + b * a->ldy + 16 * r);
    size_t xcorr = (size_t)a->nblk * 32, xsc = xcorr + (size_t)a->nblk * 4;
    const uint8_t *sc = a->w + (size_t)a->nblk * 512;
    for (int64_t k = a->k0; k < a->k1; k++) {
        __m512i s[2][Q8R_NB];
        for (int b = 0; b < nb; b++) {
            int32_t c;
            memcpy(&c, a->x[b] + xcorr + 4 * (size_t)k, 4);
            __m512i cv = _mm512_set1_epi32(c);
            for (int r = 0; r < ng; r++)
                s[r][b] = cv;
        }
        const uint8_t *wk = a->w + (size_t)k * 512;
        _Pragma("GCC unroll 8") for (int v = 0; v < 8; v++)
        {
            __m512i wv[2];
            for (int r = 0; r < ng; r++) {
                wv[r] = _mm512_loadu_si512((const void *)(wk + (size_t)r * a->gb + 64 * v));
                __asm__("" : "+v"(wv[r]));
            }
            for (int b = 0; b < nb; b++) {
                int32_t xi;
                memcpy(&xi, a->x[b] + 32 * (size_t)k + 4 * (size_t)v, 4);
                __m512i xv = _mm512_set1_epi32(xi);
                for (int r = 0; r < ng; r++)
                    s[r][b] = _mm512_dpbusd_epi32(s[r][b], wv[r], xv);
            }
        }
        q8r_fetch(a);
        for (int r = 0; r < ng; r++) {
            __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(
                (const __m256i *)(const void *)(sc + (size_t)r * a->gb + 32 * (size_t)k)));
            for (int b = 0; b < nb; b++) {
                float dx;
                memcpy(&dx, a->x[b] + xsc + 4 * (size_t)k, 4);
                f[r][b] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[r][b]),
                                          _mm512_mul_ps(dw, _mm512_set1_ps(dx)), f[r][b]);
            }
        }
    }
    for (int r = 0; r < ng; r++) {
        __m512 bv =
            a->bias ? _mm512_maskz_loadu_ps(a->m[r], a->bias + 16 * r) : _mm512_setzero_ps();
        for (int b = 0; b < nb; b++)
            _mm512_mask_storeu_ps(a->y + b * a->ldy + 16 * r, a->m[r],
                                  a->bias ? _mm512_add_ps(f[r][b], bv) : f[r][b]);
    }
}

typedef void (*q8r_tile_fn)(q8r_args *a);
#define Q8R_TILE(NG_, NB_)                          \
    static void q8r_tile_##NG_##_##NB_(q8r_args *a) \
    {                                               \
        q8r_tile(NG_, NB_, a);                      \
    }
Q8R_TILE(1, 1)
Q8R_TILE(1, 2)
Q8R_TILE(1, 3)
Q8R_TILE(1, 4)
Q8R_TILE(1, 5)
Q8R_TILE(1, 6)
Q8R_TILE(2, 1)
Q8R_TILE(2, 2)
Q8R_TILE(2, 3)
Q8R_TILE(2, 4)
Q8R_TILE(2, 5)
Q8R_TILE(2, 6)
static const q8r_tile_fn q8r_tiles[2][Q8R_NB] = {
    {q8r_tile_1_1, q8r_tile_1_2, q8r_tile_1_3, q8r_tile_1_4, q8r_tile_1_5, q8r_tile_1_6},
    {q8r_tile_2_1, q8r_tile_2_2, q8r_tile_2_3, q8r_tile_2_4, q8r_tile_2_5, q8r_tile_2_6},
};

/* Batch rows in the next pass when left remain: the fewest passes of at most Q8R_NB rows, as
 * even as they go (16 = 6 + 5 + 5). */
static int q8r_pass_rows(int64_t left)
{
    int64_t passes = (left + Q8R_NB - 1) / Q8R_NB;
    return (int)((left + passes - 1) / passes);
}

/* The regions of the column range a decode tile reads after a's (the next range of groups
 * [gb0, gb1), else the first of the next per groups before g1) in a->pf, a->pf_lines;
 * returns their lines. */
static int64_t q8r_next_range(q8r_args *a, const uint8_t *w, int64_t gb0, int64_t gb1, int64_t g1,
                              int64_t per, int64_t kc)
{
    int64_t n0 = a->k1, gn0 = gb0, gn1 = gb1;
    if (a->k1 == a->nblk) { /* the next groups' first range */
        n0 = 0;
        gn0 = gb1;
        gn1 = gb1 + per < g1 ? gb1 + per : g1;
    }
    int64_t n1 = n0 + kc < a->nblk ? n0 + kc : a->nblk, lines = 0;
    for (int n = 0; n < 4; n++)
        a->pf_lines[n] = 0;
    for (int64_t g = gn0; g < gn1 && g < gn0 + 2; g++) {
        const char *gp = (const char *)w + (size_t)g * a->gb;
        size_t s0 = (size_t)a->nblk * 512 + 32 * (size_t)n0, s1 = s0 + 32 * (size_t)(n1 - n0);
        int i = 2 * (int)(g - gn0);
        a->pf[i] = gp + 512 * (size_t)n0;
        a->pf_lines[i] = 8 * (n1 - n0);
        a->pf[i + 1] = gp + s0 / 64 * 64;
        a->pf_lines[i + 1] = (int64_t)((s1 - 1) / 64 - s0 / 64 + 1);
        lines += a->pf_lines[i] + a->pf_lines[i + 1];
    }
    return lines;
}

void sm_avx512_q8r_rows(const sm_mm_job *j, int64_t r0, int64_t r1, int task)
{
    (void)task;
    int64_t nblk = j->cols / SM_QBLOCK, g0 = r0 / 16, g1 = (r1 + 15) / 16;
    bool decode = j->batch <= Q8R_DECODE;
    /* decode: pairs of groups, each column range read from memory once and from L1 by the
     * other passes; prompts: blocks of Q8R_GROUPS groups, read from L2 by every pass while a
     * pass's activations stay in L1 */
    int64_t kc = decode ? Q8R_DKC : nblk <= 128 ? nblk : Q8R_KC;
    int64_t per = decode ? 2 : Q8R_GROUPS;
    q8r_args a = {.gb = j->row_bytes, .nblk = nblk, .ldy = j->ldy};
    for (int64_t gb0 = g0; gb0 < g1; gb0 += per) {
        int64_t gb1 = gb0 + per < g1 ? gb0 + per : g1;
        for (int64_t k0 = 0; k0 < nblk; k0 += kc) {
            a.k0 = k0;
            a.k1 = k0 + kc < nblk ? k0 + kc : nblk;
            a.first = k0 == 0;
            /* one batch row: the hardware's prefetching keeps up, and the fetch loop costs
             * (batch 1 read 24.2-24.3 tokens/s with it, 25.9-26.4 without) */
            int64_t lines =
                decode && j->batch > 1 ? q8r_next_range(&a, j->w, gb0, gb1, g1, per, kc) : 0;
            int64_t passes = (j->batch + Q8R_NB - 1) / Q8R_NB, p = 0;
            for (int64_t b = 0, nbt; b < j->batch; b += nbt, p++) {
                nbt = q8r_pass_rows(j->batch - b);
                /* decode: each pass fetches an equal share of the next range, so that the
                 * passes that read this one from L1 keep the memory busy too */
                a.pf_i = lines * p / passes;
                a.pf_end = lines * (p + 1) / passes;
                a.pf_per = (a.pf_end - a.pf_i + (a.k1 - a.k0) - 1) / (a.k1 - a.k0);
                for (int i = 0; i < nbt; i++)
                    a.x[i] = j->xp + (size_t)(b + i) * j->xp_stride;
                for (int64_t g = gb0; g < gb1; g += 2) {
                    int ng = gb1 - g < 2 ? 1 : 2;
                    for (int r = 0; r < ng; r++) {
                        int64_t left = r1 - (g + r) * 16;
                        a.m[r] = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
                    }
                    a.w = j->w + (size_t)g * a.gb;
                    a.y = j->y + b * j->ldy + g * 16;
                    a.bias = a.k1 == nblk && j->bias ? j->bias + g * 16 : NULL;
                    q8r_tiles[ng - 1][nbt - 1](&a);
                }
            }
        }
    }
}
