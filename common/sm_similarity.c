/* sm_similarity: fingerprints (k-gram hashes winnowed), the comparison of two fingerprinted
 * texts with their matching regions, and the pairs of a whole class through an inverted index
 * of hashes (see sm_similarity.h). */
#include <stdlib.h>
#include <string.h>

#include "sm_similarity.h"

static void defaults(const sm_sim_opts *o, int *k, int *w)
{
    bool text = o->lang == SM_SIM_TEXT;
    *k = o->k > 0 ? o->k : (text ? 5 : 12);
    *w = o->w > 0 ? o->w : (text ? 1 : 8);
    if (*k > 64)
        *k = 64;
    if (*w > 64)
        *w = 64;
    if (o->all)
        *w = 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Hashes of every k-gram (a polynomial over the token hashes). */
static uint64_t *kgrams(const sm_sim_token *t, size_t n, int k, size_t *count)
{
    *count = n >= (size_t)k ? n - (size_t)k + 1 : 0;
    uint64_t *g = malloc((*count ? *count : 1) * sizeof *g);
    if (!g)
        return NULL;
    for (size_t i = 0; i < *count; i++) {
        uint64_t h = 0;
        for (int j = 0; j < k; j++)
            h = h * 0x100000001b3ull + t[i + (size_t)j].h;
        g[i] = h ^ (h >> 29);
    }
    return g;
}

/* Winnowing: the minimum of every window of w k-grams, the rightmost on a tie; a position is
 * recorded once even when it stays the minimum of several windows. */
static size_t winnow(const uint64_t *g, size_t count, int w, size_t *pick)
{
    size_t np = 0, last = SIZE_MAX;
    if (count == 0)
        return 0;
    size_t windows = count >= (size_t)w ? count - (size_t)w + 1 : 1;
    for (size_t s = 0; s < windows; s++) {
        size_t end = s + (size_t)w < count ? s + (size_t)w : count;
        size_t m = s;
        for (size_t i = s + 1; i < end; i++)
            if (g[i] <= g[m])
                m = i;
        if (m != last)
            pick[np++] = last = m;
    }
    return np;
}

static sm_code make_uniq(sm_sim_doc *d, sm_err *err)
{
    d->uniq = malloc((d->nfps ? d->nfps : 1) * sizeof *d->uniq);
    if (!d->uniq)
        return sm_err_set(err, SM_ENOMEM, "similarity: out of memory");
    for (size_t i = 0; i < d->nfps; i++)
        d->uniq[i] = d->fps[i].h;
    qsort(d->uniq, d->nfps, sizeof *d->uniq, cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < d->nfps; i++)
        if (u == 0 || d->uniq[u - 1] != d->uniq[i])
            d->uniq[u++] = d->uniq[i];
    d->nuniq = u;
    return SM_OK;
}

sm_code sm_sim_fingerprint(const sm_sim_opts *o, const char *text, size_t len, sm_sim_doc *out,
                           sm_err *err)
{
    memset(out, 0, sizeof *out);
    int k, w;
    defaults(o, &k, &w);
    sm_sim_token *t;
    size_t n;
    sm_code rc = sm_sim_tokenize(o, text, len, &t, &n, err);
    if (rc != SM_OK)
        return rc;
    out->ntokens = n;
    size_t count;
    uint64_t *g = kgrams(t, n, k, &count);
    size_t *pick = malloc((count ? count : 1) * sizeof *pick);
    out->fps = malloc((count ? count : 1) * sizeof *out->fps);
    if (!g || !pick || !out->fps) {
        free(t);
        free(g);
        free(pick);
        sm_sim_doc_free(out);
        return sm_err_set(err, SM_ENOMEM, "similarity: out of memory");
    }
    size_t np = winnow(g, count, w, pick);
    for (size_t i = 0; i < np; i++) {
        size_t p = pick[i];
        out->fps[i] = (sm_sim_fp){g[p], t[p].start, t[p + (size_t)k - 1].end};
    }
    out->nfps = np;
    free(t);
    free(g);
    free(pick);
    rc = make_uniq(out, err);
    if (rc != SM_OK)
        sm_sim_doc_free(out);
    return rc;
}

void sm_sim_doc_free(sm_sim_doc *d)
{
    free(d->fps);
    free(d->uniq);
    memset(d, 0, sizeof *d);
}

bool sm_sim_hashset_has(const sm_sim_hashset *s, uint64_t h)
{
    return s && s->n && bsearch(&h, s->h, s->n, sizeof h, cmp_u64) != NULL;
}

void sm_sim_hashset_free(sm_sim_hashset *s)
{
    free(s->h);
    s->h = NULL;
    s->n = 0;
}

static bool sorted_has(const uint64_t *v, size_t n, uint64_t h)
{
    return n && bsearch(&h, v, n, sizeof h, cmp_u64) != NULL;
}

static size_t kept_count(const sm_sim_doc *d, const sm_sim_hashset *ex)
{
    size_t n = 0;
    for (size_t i = 0; i < d->nuniq; i++)
        n += !sm_sim_hashset_has(ex, d->uniq[i]);
    return n;
}

/* The first fingerprint of b with hash h (b->fps is in text order: linear scan is enough for
 * the few pairs above a threshold, but a sorted index keeps it fast). */
typedef struct fp_index {
    uint64_t h;
    uint32_t pos; /* index into fps */
} fp_index;

static int cmp_idx(const void *a, const void *b)
{
    const fp_index *x = a, *y = b;
    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Adds the pair of ranges to the regions, merging it into the last one when both sides
 * overlap or touch it. */
static bool add_region(sm_sim_match *m, size_t *cap, sm_sim_range a, sm_sim_range b)
{
    if (m->nregions) {
        sm_sim_region *r = &m->regions[m->nregions - 1];
        if (a.start <= r->a.end && b.start <= r->b.end && b.end >= r->b.start) {
            r->a.end = a.end > r->a.end ? a.end : r->a.end;
            r->b.start = b.start < r->b.start ? b.start : r->b.start;
            r->b.end = b.end > r->b.end ? b.end : r->b.end;
            return true;
        }
    }
    if (m->nregions == SM_SIM_MAX_REGIONS)
        return true;
    if (m->nregions == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        sm_sim_region *r = realloc(m->regions, c * sizeof *r);
        if (!r)
            return false;
        m->regions = r;
        *cap = c;
    }
    m->regions[m->nregions++] = (sm_sim_region){a, b};
    return true;
}

/* Regions: a's matching fingerprints in order, each with the occurrence in b that continues the
 * current region if there is one, else b's first occurrence. */
static sm_code regions(const sm_sim_doc *a, const sm_sim_doc *b, const sm_sim_hashset *ex,
                       sm_sim_match *m, sm_err *err)
{
    fp_index *ix = malloc((b->nfps ? b->nfps : 1) * sizeof *ix);
    if (!ix)
        return sm_err_set(err, SM_ENOMEM, "similarity: out of memory");
    for (size_t i = 0; i < b->nfps; i++)
        ix[i] = (fp_index){b->fps[i].h, (uint32_t)i};
    qsort(ix, b->nfps, sizeof *ix, cmp_idx);
    size_t cap = 0;
    for (size_t i = 0; i < a->nfps; i++) {
        uint64_t h = a->fps[i].h;
        if (sm_sim_hashset_has(ex, h))
            continue;
        fp_index key = {h, 0};
        size_t lo = 0, hi = b->nfps; /* lower bound of h */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cmp_idx(&ix[mid], &key) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == b->nfps || ix[lo].h != h)
            continue;
        size_t pick = ix[lo].pos;
        const sm_sim_region *last = m->nregions ? &m->regions[m->nregions - 1] : NULL;
        for (size_t j = lo; last && j < b->nfps && ix[j].h == h; j++) {
            if (b->fps[ix[j].pos].start <= last->b.end && b->fps[ix[j].pos].end >= last->b.end) {
                pick = ix[j].pos;
                break;
            }
        }
        sm_sim_range ra = {a->fps[i].start, a->fps[i].end};
        sm_sim_range rb = {b->fps[pick].start, b->fps[pick].end};
        if (!add_region(m, &cap, ra, rb)) {
            free(ix);
            return sm_err_set(err, SM_ENOMEM, "similarity: out of memory");
        }
    }
    free(ix);
    return SM_OK;
}

sm_code sm_sim_compare(const sm_sim_doc *a, const sm_sim_doc *b, const sm_sim_hashset *exclude,
                       sm_sim_match *out, sm_err *err)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < a->nuniq; i++)
        if (!sm_sim_hashset_has(exclude, a->uniq[i]) && sorted_has(b->uniq, b->nuniq, a->uniq[i]))
            out->shared++;
    out->na = kept_count(a, exclude);
    out->nb = kept_count(b, exclude);
    out->contain_a = out->na ? (double)out->shared / (double)out->na : 0;
    out->contain_b = out->nb ? (double)out->shared / (double)out->nb : 0;
    size_t uni = out->na + out->nb - out->shared;
    out->jaccard = uni ? (double)out->shared / (double)uni : 0;
    out->score = out->contain_a > out->contain_b ? out->contain_a : out->contain_b;
    if (out->shared == 0)
        return SM_OK;
    sm_code rc = regions(a, b, exclude, out, err);
    if (rc != SM_OK)
        sm_sim_match_free(out);
    return rc;
}

void sm_sim_match_free(sm_sim_match *m)
{
    free(m->regions);
    memset(m, 0, sizeof *m);
}

sm_sim_pos sm_sim_locate(const char *text, size_t len, uint32_t off)
{
    sm_sim_pos p = {1, 1, 0};
    for (size_t i = 0; i < len && i < off; i++) {
        unsigned char c = (unsigned char)text[i];
        if ((c & 0xC0) == 0x80)
            continue; /* a continuation byte: same character */
        p.chr++;
        if (c == '\n') {
            p.line++;
            p.col = 1;
        } else {
            p.col++;
        }
    }
    return p;
}
