/* kernels_q8x_tmpl: products of q8_0 weights packed in groups of blocks along each row (width 8,
 * kernels_q8x.c) for every batch size, decode steps and prompts. A variant file (AVX2's,
 * kernels_avx2_q8x.c) defines the vector macros below and includes this file once; it gets
 * Q8X_ROWS_FN and Q8X_SCRATCH_FN for its table.
 *
 * Each vector product adds 4 values of each of the L blocks of a group into that block's own
 * int32 lane, so a group of L blocks costs 8 products per weight row and batch row, then one
 * conversion and one multiply-add for all L blocks (GGUF blocks read as they are need a
 * conversion, a scale and a multiply-add per block, and on AVX-512 a shuffle of their signs).
 *
 * Arithmetic per output (r, b), the same for every batch size, blocking and thread split: one
 * L-lane f32 accumulator A, zero at first; for each group G in order, the int32 lanes
 * I = the 8 products of the group (lane j: the exact integer sum
 * of block L G + j's 32 products), then A = fma((float)I, dw(r, G) * dx(b, G), A) lane by lane
 * (the scale one f32 product); then the lanes summed by Q8X_HSUM, then the bias.
 *
 * Required macros:
 *   Q8X_L                 blocks per group, the lanes of a vector
 *   Q8X_IV, Q8X_FV        int32 / f32 vector types of Q8X_L lanes
 *   Q8X_W, Q8X_LOAD_W(p)  a weight vector (4 Q8X_L bytes at p) as the products want it
 *   Q8X_LOAD_X(p)         4 Q8X_L activation bytes at p
 *   Q8X_DOT(i, w, x)      i + in lane l the sum of the 4 products of bytes 4l .. 4l+3
 *   Q8X_ZERO_I()          int32 lanes of zeros
 *   Q8X_ZERO_F(), Q8X_LOAD_F(p), Q8X_STORE_F(p, v), Q8X_MUL(a, b), Q8X_FMA(a, b, c) (a*b+c)
 *   Q8X_CVT(i)            int32 lanes to f32
 *   Q8X_LOAD_SCALES(p)    Q8X_L f16 values at p as f32 lanes
 *   Q8X_HSUM(v)           the lanes' sum in a fixed tree
 *   Q8X_NR, Q8X_NB        weight rows x batch rows (3 to 6) of a micro tile (int32 lanes in
 *                         registers)
 *   Q8X_ROWS_FN, Q8X_SCRATCH_FN  the names of the two functions made here
 * Optional: Q8X_IN_REG(v) keeps a loaded vector in a register; Q8X_HSUM_L(v) with Q8X_ADD(a, b)
 * sums Q8X_L vectors v[] at once (lane l: Q8X_HSUM(v[l]), bitwise); with it and Q8X_NR 2,
 * Q8X_STORE_PAIRS(y, ldy, v, bias, nb) stores lanes 2b and 2b + 1 of v, plus bias[0] and
 * bias[1] where bias is not NULL, at y + b ldy (b < nb <= Q8X_L / 2): a decode tile of 2 x nb
 * then sums its own outputs at its last group instead of storing its lanes for q8x_sums.
 * Other weight layouts with the same lanes (packed q4_0, kernels_avx2_q4x.c) also define:
 *   Q8X_GW                weight bytes of a group (default 32 Q8X_L)
 *   Q8X_XG                activation bytes of a group (default 36 Q8X_L: values, scales)
 *   Q8X_RG, Q8X_LOAD_RG(p)  what a weight row's group needs through its products, from its
 *                         Q8X_SCB scale bytes at p (default: nothing)
 *   Q8X_LOAD_WV(p, v, rg) weight vector v (0..7) of the group at p (default Q8X_LOAD_W at
 *                         p + 4 Q8X_L v)
 *   Q8X_GROUP_END(s, xg, rg)  the group's int32 lanes from the sums s its 8 Q8X_DOTs left,
 *                         with the batch row's activation group at xg (default: s)
 *   Q8X_WS, Q8X_LOAD_WS(p), Q8X_SCB  a weight row's scales for one group (Q8X_SCB bytes at p
 *                         after the row's values; default the Q8X_L f16 block scales)
 *   Q8X_APPLY(av, s, ws, xg)  the lanes av with the group's int32 lanes s added, scaled by
 *                         ws and the activation group at xg (default fma(s, ws x dx, av)) */
#ifndef Q8X_L
#error "define the vector macros before including kernels_q8x_tmpl.h"
#endif
#ifndef Q8X_IN_REG
#define Q8X_IN_REG(v) ((void)0)
#endif
#include <string.h>

#ifndef Q8X_GW
#define Q8X_GW (32 * Q8X_L) /* weight bytes of a group */
#endif
#ifndef Q8X_XG
#define Q8X_XG (36 * Q8X_L) /* activation bytes of a group */
#endif
#ifndef Q8X_LOAD_WV
#define Q8X_LOAD_WV(p, v, rg) Q8X_LOAD_W((p) + 4 * Q8X_L * (v))
#endif
#ifndef Q8X_GROUP_END
#define Q8X_GROUP_END(s, xg, rg) (s)
#endif
#define Q8X_XSC (32 * Q8X_L) /* the activation scales, within the group */
#ifndef Q8X_WS
#define Q8X_SCB (2 * Q8X_L)
#define Q8X_WS Q8X_FV
#define Q8X_LOAD_WS(p) Q8X_LOAD_SCALES(p)
#define Q8X_APPLY(av, s, ws, xg)                                                                  \
    Q8X_FMA(Q8X_CVT(s), Q8X_MUL((ws), Q8X_LOAD_F((const float *)(const void *)((xg) + Q8X_XSC))), \
            (av))
#endif
#define Q8X_NCR 64    /* weight rows per block (prompts; a multiple of Q8X_NR) */
#define Q8X_MC 60     /* batch rows per block (prompts; whole passes of 5 or 4) */
#define Q8X_KC 3072   /* columns per tile when a prompt's rows are longer than 4096 */
#define Q8X_DECODE 16 /* batches up to this stream each block of rows once, prefetching the next */
#define Q8X_DROWS 4   /* weight rows per block in decode (a multiple of Q8X_NR) */

#define Q8X_INLINE static inline __attribute__((always_inline))

/* Q8X_STORE_PAIRS: a decode tile of 2 weight rows x up to Q8X_L / 2 batch rows sums its own
 * lanes */
#if defined(Q8X_STORE_PAIRS) && defined(Q8X_HSUM_L) && Q8X_NR == 2
#define Q8X_PAIRS 1
#else
#define Q8X_PAIRS 0
#endif

/* the weight rows and activations one block's tiles read: a tile call covers rows
 * [rt, rt + Q8X_NR) of the block (fewer at its end, one row at a time) and nbt batch rows
 * from b, groups [g0, g1) */
typedef struct q8x_span {
    const uint8_t *wb; /* the block's first weight row */
    size_t wbytes, rb; /* weight bytes of a row (scales after them), bytes per row */
    const uint8_t *xb; /* the batch block's first activation row */
    size_t xs;         /* bytes per activation row */
    int64_t g0, g1;
    float *acc;
    int64_t ms; /* batch rows of the block (accumulator stride) */
    bool first;
    /* for tiles that sum: the output of the block's first row and batch row, row r and batch
     * row b at y[b * ldy + r], plus bias[r] where there is one (decode only) */
    float *y;
    int64_t ldy;
    const float *bias;
} q8x_span;

/* weight rows [rt, rt + nr) x batch rows [bt, bt + nb) of a block (sp) over its groups, into
 * their accumulators, zero first when sp->first; pf_n lines from pf are fetched meanwhile,
 * pf_per per group. With sums (a tile of Q8X_PAIRS shape whose groups end the rows), the last
 * group's lanes are summed into the outputs instead of stored. */
Q8X_INLINE void q8x_tile(int nr, int nb, const q8x_span *sp, int64_t rt, int64_t bt, const char *pf,
                         int64_t pf_n, int64_t pf_per, bool sums)
{
    /* everything in locals: read through sp (or the activation rows' pointers through an
     * array), GCC reloads them after every store to acc */
    size_t rb = sp->rb;
    const uint8_t *w = sp->wb + (size_t)rt * rb, *sc = w + sp->wbytes;
    int64_t g0 = sp->g0, g1 = sp->g1, ms = sp->ms;
    float *acc = sp->acc + (rt * ms + bt) * Q8X_L;
    bool first = sp->first;
    const uint8_t *x[Q8X_NB];
    for (int b = 0; b < nb; b++)
        x[b] = sp->xb + (size_t)(bt + b) * sp->xs;
    for (int64_t g = g0; g < g1; g++) {
        Q8X_IV s[Q8X_NR][Q8X_NB];
        for (int b = 0; b < nb; b++) {
            Q8X_IV c = Q8X_ZERO_I();
            for (int r = 0; r < nr; r++)
                s[r][b] = c;
        }
        const uint8_t *wg = w + (size_t)g * Q8X_GW;
#ifdef Q8X_RG
        Q8X_RG rg[Q8X_NR];
        for (int r = 0; r < nr; r++)
            rg[r] = Q8X_LOAD_RG(sc + (size_t)r * rb + Q8X_SCB * g);
#define Q8X_RG_OF(r) rg[r]
#else
#define Q8X_RG_OF(r) 0
#endif
        _Pragma("GCC unroll 8") for (int v = 0; v < 8; v++)
        {
            Q8X_W wv[Q8X_NR];
            for (int r = 0; r < nr; r++) {
                wv[r] = Q8X_LOAD_WV(wg + (size_t)r * rb, v, Q8X_RG_OF(r));
                Q8X_IN_REG(wv[r]);
            }
            for (int b = 0; b < nb; b++) {
                Q8X_IV xv = Q8X_LOAD_X(x[b] + (size_t)g * Q8X_XG + 4 * Q8X_L * v);
                Q8X_IN_REG(xv);
                for (int r = 0; r < nr; r++)
                    s[r][b] = Q8X_DOT(s[r][b], wv[r], xv);
            }
        }
        for (int b = 0; b < nb; b++)
            for (int r = 0; r < nr; r++)
                s[r][b] = Q8X_GROUP_END(s[r][b], x[b] + (size_t)g * Q8X_XG, Q8X_RG_OF(r));
#undef Q8X_RG_OF
        for (int64_t p = 0; p < pf_per && pf_n > 0; p++, pf_n--, pf += 64)
            _mm_prefetch(pf, _MM_HINT_T0);
        bool zero = first && g == g0;
#if Q8X_PAIRS
        if (nr == 2 && nb >= 2 && nb <= Q8X_L / 2 && sums && g == g1 - 1) {
            Q8X_FV v[Q8X_L]; /* lane 2 b + r: row r, batch row b (zeros past the tile's) */
            for (int l = 2 * nb; l < Q8X_L; l++)
                v[l] = Q8X_ZERO_F();
            for (int r = 0; r < nr; r++) {
                Q8X_WS ws = Q8X_LOAD_WS(sc + (size_t)r * rb + Q8X_SCB * g);
                for (int b = 0; b < nb; b++) {
                    Q8X_FV av = zero ? Q8X_ZERO_F() : Q8X_LOAD_F(acc + (r * ms + b) * Q8X_L);
                    v[2 * b + r] = Q8X_APPLY(av, s[r][b], ws, x[b] + (size_t)g * Q8X_XG);
                }
            }
            Q8X_STORE_PAIRS(sp->y + bt * sp->ldy + rt, sp->ldy, Q8X_HSUM_L(v),
                            sp->bias ? sp->bias + rt : NULL, nb);
            break;
        }
#endif
        for (int r = 0; r < nr; r++) {
            Q8X_WS ws = Q8X_LOAD_WS(sc + (size_t)r * rb + Q8X_SCB * g);
            for (int b = 0; b < nb; b++) {
                float *a = acc + (r * ms + b) * Q8X_L;
                Q8X_FV av = zero ? Q8X_ZERO_F() : Q8X_LOAD_F(a);
                Q8X_STORE_F(a, Q8X_APPLY(av, s[r][b], ws, x[b] + (size_t)g * Q8X_XG));
            }
        }
    }
}

typedef void (*q8x_tile_fn)(const q8x_span *, int64_t, int64_t, const char *, int64_t, int64_t,
                            bool);

#define Q8X_TILE(NAME_, NR_, NB_)                                                                 \
    static void q8x_tile_##NAME_##_##NB_(const q8x_span *sp, int64_t rt, int64_t bt,              \
                                         const char *pf, int64_t pf_n, int64_t pf_per, bool sums) \
    {                                                                                             \
        q8x_tile(NR_, NB_, sp, rt, bt, pf, pf_n, pf_per, sums);                                   \
    }
#if Q8X_NB < 3 || Q8X_NB > 6
#error "Q8X_NB is 3 to 6"
#endif
Q8X_TILE(n, Q8X_NR, 1)
Q8X_TILE(n, Q8X_NR, 2)
Q8X_TILE(n, Q8X_NR, 3)
Q8X_TILE(1, 1, 1)
Q8X_TILE(1, 1, 2)
Q8X_TILE(1, 1, 3)
#if Q8X_NB >= 4
Q8X_TILE(n, Q8X_NR, 4)
Q8X_TILE(1, 1, 4)
#endif
#if Q8X_NB >= 5
Q8X_TILE(n, Q8X_NR, 5)
Q8X_TILE(1, 1, 5)
#endif
#if Q8X_NB >= 6
Q8X_TILE(n, Q8X_NR, 6)
Q8X_TILE(1, 1, 6)
#endif

/* [Q8X_NR rows or 1][batch rows - 1] */
static const q8x_tile_fn q8x_tiles[2][6] = {
    {
        q8x_tile_n_1,
        q8x_tile_n_2,
        q8x_tile_n_3,
#if Q8X_NB >= 4
        q8x_tile_n_4,
#endif
#if Q8X_NB >= 5
        q8x_tile_n_5,
#endif
#if Q8X_NB >= 6
        q8x_tile_n_6,
#endif
    },
    {
        q8x_tile_1_1,
        q8x_tile_1_2,
        q8x_tile_1_3,
#if Q8X_NB >= 4
        q8x_tile_1_4,
#endif
#if Q8X_NB >= 5
        q8x_tile_1_5,
#endif
#if Q8X_NB >= 6
        q8x_tile_1_6,
#endif
    },
};

/* Batch rows in the next pass when left remain: the fewest passes of at most Q8X_NB rows,
 * as even as they go (so never a lone row after a full pass: 4 rows with 3 per pass go as
 * 2 + 2, 16 with 6 as 6 + 5 + 5). */
static int q8x_pass_rows(int64_t left)
{
    int64_t passes = (left + Q8X_NB - 1) / Q8X_NB;
    return (int)((left + passes - 1) / passes);
}

/* whether a tile of Q8X_NR rows x nbt batch rows sums its own outputs (q8x_call with sums);
 * batch 1's tiles leave theirs to q8x_sums (summing 2 lanes of 8 was no faster) */
static bool q8x_tile_sums(int nbt)
{
    return Q8X_PAIRS && nbt >= 2 && nbt <= Q8X_L / 2;
}

static void q8x_call(const q8x_span *sp, int64_t rt, int64_t nrb, int64_t b, int nbt,
                     const char *pf, int64_t pf_n, int64_t pf_per, bool sums)
{
    int nrt = (int)(nrb - rt < Q8X_NR ? nrb - rt : Q8X_NR);
    if (nrt == Q8X_NR) {
        q8x_tiles[0][nbt - 1](sp, rt, b, pf, pf_n, pf_per, sums && q8x_tile_sums(nbt));
        return;
    }
    for (int i = 0; i < nrt; i++) /* one row at a time; the first fetches */
        q8x_tiles[1][nbt - 1](sp, rt + i, b, pf, i ? 0 : pf_n, pf_per, false);
}

/* the lanes of one block of weight rows x batch rows */
int64_t Q8X_SCRATCH_FN(int64_t batch)
{
    if (batch <= Q8X_DECODE)
        return Q8X_DROWS * batch * Q8X_L;
    return Q8X_NCR * (batch < Q8X_MC ? batch : Q8X_MC) * Q8X_L;
}

/* the outputs of rows [rb0, rb0 + nrb) for batch rows bb + [b0, b1) of a block of nbb, from
 * their lanes in acc */
static void q8x_sums(const sm_mm_job *j, const float *acc, int64_t nbb, int64_t rb0, int64_t nrb,
                     int64_t bb, int64_t b0, int64_t b1)
{
#ifdef Q8X_HSUM_L
    /* a full decode block: its Q8X_DROWS weight rows for Q8X_L / Q8X_DROWS batch rows at once,
     * each batch row's outputs stored together */
    if (nrb == Q8X_DROWS && Q8X_L % Q8X_DROWS == 0) {
        enum { per = Q8X_L / Q8X_DROWS };
        for (; b0 + per <= b1; b0 += per) {
            Q8X_FV v[Q8X_L];
            float sum[Q8X_L];
            for (int l = 0; l < Q8X_L; l++)
                v[l] = Q8X_LOAD_F(acc + ((l % Q8X_DROWS) * nbb + b0 + l / Q8X_DROWS) * Q8X_L);
            Q8X_STORE_F(sum, Q8X_HSUM_L(v));
            for (int bi = 0; bi < per; bi++) {
                float *yb = j->y + (bb + b0 + bi) * j->ldy + rb0;
                const float *sb = sum + bi * Q8X_DROWS;
                if (j->bias)
                    for (int i = 0; i < Q8X_DROWS; i++)
                        yb[i] = sb[i] + j->bias[rb0 + i];
                else
                    memcpy(yb, sb, Q8X_DROWS * sizeof *sb);
            }
        }
    }
    /* a decode block's few weight rows: Q8X_L batch rows of one weight row at once (lanes of
     * the missing batch rows are zeros, summed and dropped) */
    if (nrb < Q8X_L && b1 - b0 >= Q8X_L / 2) {
        for (int64_t i = 0; i < nrb; i++) {
            float bias = j->bias ? j->bias[rb0 + i] : 0.0f;
            for (int64_t b = b0; b < b1; b += Q8X_L) {
                int n = b1 - b < Q8X_L ? (int)(b1 - b) : Q8X_L;
                Q8X_FV v[Q8X_L];
                float sum[Q8X_L];
                for (int l = 0; l < Q8X_L; l++)
                    v[l] = l < n ? Q8X_LOAD_F(acc + (i * nbb + b + l) * Q8X_L) : Q8X_ZERO_F();
                Q8X_STORE_F(sum, Q8X_HSUM_L(v));
                for (int l = 0; l < n; l++)
                    j->y[(bb + b + l) * j->ldy + rb0 + i] = sum[l] + bias;
            }
        }
        return;
    }
#endif
    for (int64_t b = b0; b < b1; b++) {
        float *yb = j->y + (bb + b) * j->ldy + rb0;
        int64_t i = 0;
#ifdef Q8X_HSUM_L
        for (; i + Q8X_L <= nrb; i += Q8X_L) {
            Q8X_FV v[Q8X_L];
            for (int l = 0; l < Q8X_L; l++)
                v[l] = Q8X_LOAD_F(acc + ((i + l) * nbb + b) * Q8X_L);
            Q8X_FV bv = j->bias ? Q8X_LOAD_F(j->bias + rb0 + i) : Q8X_ZERO_F();
            Q8X_STORE_F(yb + i, Q8X_ADD(Q8X_HSUM_L(v), bv));
        }
#endif
        for (; i < nrb; i++)
            yb[i] = Q8X_HSUM(Q8X_LOAD_F(acc + (i * nbb + b) * Q8X_L)) +
                    (j->bias ? j->bias[rb0 + i] : 0.0f);
    }
}

/* A decode step's passes over a block of weight rows and the share of the next block's lines
 * each (tile, pass) fetches: the same for every full block, so worked out once per call (the
 * divisions were a third of the loop's own time at batch 16). */
#define Q8X_MAX_PASSES ((Q8X_DECODE + Q8X_NB - 1) / Q8X_NB)
#define Q8X_MAX_PARTS (Q8X_DROWS / Q8X_NR * Q8X_MAX_PASSES)
typedef struct q8x_plan {
    int passes, pass_b[Q8X_MAX_PASSES + 1]; /* pass p: batch rows [pass_b[p], pass_b[p + 1]) */
    int64_t pf_lines, pf_at[Q8X_MAX_PARTS + 1], pf_per[Q8X_MAX_PARTS]; /* lines from the next
                                                * block's start, and per group, of each part */
} q8x_plan;

static void q8x_plan_passes(q8x_plan *pl, int64_t nbb)
{
    pl->passes = 0;
    pl->pass_b[0] = 0;
    for (int64_t b = 0; b < nbb; b += q8x_pass_rows(nbb - b)) {
        pl->pass_b[pl->passes + 1] = (int)(b + q8x_pass_rows(nbb - b));
        pl->passes++;
    }
    pl->pf_lines = -1;
}

/* the fetch shares of pf_lines lines over the parts of a block of nrb rows, kn groups */
static void q8x_plan_fetch(q8x_plan *pl, int64_t pf_lines, int64_t nrb, int64_t kn)
{
    int64_t parts = (nrb + Q8X_NR - 1) / Q8X_NR * pl->passes;
    pl->pf_lines = pf_lines;
    for (int64_t part = 0; part <= parts; part++)
        pl->pf_at[part] = pf_lines * part / parts;
    for (int64_t part = 0; part < parts; part++)
        pl->pf_per[part] = (pl->pf_at[part + 1] - pl->pf_at[part] + kn - 1) / kn;
}

/* decode: blocks of Q8X_DROWS rows, each streamed once for the whole batch */
static void q8x_rows_decode(const sm_mm_job *j, int64_t r0, int64_t r1, float *accb)
{
    int64_t ng = sm_q8x_groups(Q8X_L, j->cols), ncr = Q8X_DROWS;
    size_t rb = j->row_bytes;
    q8x_plan pl;
    q8x_plan_passes(&pl, j->batch);
    for (int64_t rb0 = r0; rb0 < r1; rb0 += ncr) {
        int64_t nrb = r1 - rb0 < ncr ? r1 - rb0 : ncr;
        q8x_span sp = {.wb = j->w + (size_t)rb0 * rb,
                       .wbytes = (size_t)ng * Q8X_GW,
                       .rb = rb,
                       .xb = j->xp,
                       .xs = j->xp_stride,
                       .g0 = 0,
                       .g1 = ng,
                       .acc = accb,
                       .ms = j->batch,
                       .first = true,
                       .y = j->y + rb0,
                       .ldy = j->ldy,
                       .bias = j->bias ? j->bias + rb0 : NULL};
        /* a tile's weight rows stay in L1 over the passes; the next block's lines are fetched
         * in equal parts over every (tile, pass) */
        int64_t next_rows = r1 - rb0 - nrb < ncr ? r1 - rb0 - nrb : ncr;
        int64_t pf_lines = next_rows * (int64_t)rb / 64;
        if (pf_lines != pl.pf_lines || nrb != ncr)
            q8x_plan_fetch(&pl, pf_lines, nrb, ng);
        const char *next = (const char *)(j->w + (size_t)(rb0 + nrb) * rb);
        /* tiles of whole rows sum their own outputs where their shape allows; the rest of the
         * block's lanes are summed after it */
        bool sums = nrb % Q8X_NR == 0;
        for (int64_t rt = 0, part = 0; rt < nrb; rt += Q8X_NR)
            for (int p = 0; p < pl.passes; p++, part++)
                q8x_call(&sp, rt, nrb, pl.pass_b[p], pl.pass_b[p + 1] - pl.pass_b[p],
                         next + 64 * pl.pf_at[part], pl.pf_at[part + 1] - pl.pf_at[part],
                         pl.pf_per[part], sums);
        for (int p = 0; p < pl.passes; p++)
            if (!sums || !q8x_tile_sums(pl.pass_b[p + 1] - pl.pass_b[p]))
                q8x_sums(j, accb, j->batch, rb0, nrb, 0, pl.pass_b[p], pl.pass_b[p + 1]);
    }
}

void Q8X_ROWS_FN(const sm_mm_job *j, int64_t r0, int64_t r1, int task)
{
    float *accb = j->scratch + (int64_t)task * j->scratch_floats;
    if (j->batch <= Q8X_DECODE) {
        q8x_rows_decode(j, r0, r1, accb);
        return;
    }
    int64_t ng = sm_q8x_groups(Q8X_L, j->cols);
    size_t rb = j->row_bytes;
    int64_t kg = j->cols <= 4096 ? ng : Q8X_KC / (32 * Q8X_L);
    for (int64_t rb0 = r0; rb0 < r1; rb0 += Q8X_NCR) {
        int64_t nrb = r1 - rb0 < Q8X_NCR ? r1 - rb0 : Q8X_NCR;
        for (int64_t bb = 0; bb < j->batch; bb += Q8X_MC) {
            int64_t nbb = j->batch - bb < Q8X_MC ? j->batch - bb : Q8X_MC;
            for (int64_t k0 = 0; k0 < ng; k0 += kg) {
                int64_t kn = ng - k0 < kg ? ng - k0 : kg;
                q8x_span sp = {.wb = j->w + (size_t)rb0 * rb,
                               .wbytes = (size_t)ng * Q8X_GW,
                               .rb = rb,
                               .xb = j->xp + (size_t)bb * j->xp_stride,
                               .xs = j->xp_stride,
                               .g0 = k0,
                               .g1 = k0 + kn,
                               .acc = accb,
                               .ms = nbb,
                               .first = k0 == 0};
                /* prompts: one pass's activations stay in L1 while the block's weight rows
                 * stream past them (from L2) */
                for (int64_t b = 0, nbt; b < nbb; b += nbt) {
                    nbt = q8x_pass_rows(nbb - b);
                    for (int64_t rt = 0; rt < nrb; rt += Q8X_NR)
                        q8x_call(&sp, rt, nrb, b, (int)nbt, NULL, 0, 0, false);
                    /* the pass's lanes are summed while they are still in cache */
                    if (k0 + kn == ng)
                        q8x_sums(j, accb, nbb, rb0, nrb, bb, b, b + nbt);
                }
            }
        }
    }
}
