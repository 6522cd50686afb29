/* sm_similarity_class: the pairs of a whole class. Every (hash, document) is put in one sorted
 * list (an inverted index); each hash shared by a few documents counts once for every pair of
 * them, a hash in more than max_per_hash documents is boilerplate and left out, as are the
 * starter code's hashes. Cost: sorting the fingerprints plus the pairs a hash joins, never a
 * comparison of every pair of texts. */
#include <stdlib.h>
#include <string.h>

#include "sm_similarity.h"

typedef struct entry {
    uint64_t h;
    uint32_t doc;
} entry;

static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    return x->doc < y->doc ? -1 : x->doc > y->doc;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_pair(const void *a, const void *b)
{
    const sm_sim_pair *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    if (x->a != y->a)
        return x->a < y->a ? -1 : 1;
    return x->b < y->b ? -1 : x->b > y->b;
}

/* Index of pair (a, b), a < b, in a triangular array of n documents. */
static size_t tri(size_t n, size_t a, size_t b)
{
    return a * n - a * (a + 1) / 2 + (b - a - 1);
}

typedef struct class_state {
    const sm_sim_doc *docs;
    size_t n;
    entry *e;
    size_t ne;
    uint32_t *count;  /* shared hashes per pair (triangular) */
    size_t *kept;     /* hashes per document, exclusions left out */
    uint64_t *common; /* boilerplate hashes */
    size_t ncommon;
} class_state;

static sm_code collect(class_state *s, const sm_sim_doc *base, sm_err *err)
{
    size_t total = 0;
    for (size_t i = 0; i < s->n; i++)
        total += s->docs[i].nuniq;
    s->e = malloc((total ? total : 1) * sizeof *s->e);
    s->kept = calloc(s->n ? s->n : 1, sizeof *s->kept);
    s->count = calloc(s->n > 1 ? s->n * (s->n - 1) / 2 : 1, sizeof *s->count);
    s->common = malloc((total ? total : 1) * sizeof *s->common);
    if (!s->e || !s->kept || !s->count || !s->common)
        return sm_err_set(err, SM_ENOMEM, "similarity: out of memory for %zu documents", s->n);
    for (size_t i = 0; i < s->n; i++) {
        const sm_sim_doc *d = &s->docs[i];
        for (size_t j = 0; j < d->nuniq; j++) {
            uint64_t h = d->uniq[j];
            if (base && base->nuniq && bsearch(&h, base->uniq, base->nuniq, sizeof h, cmp_u64))
                continue;
            s->e[s->ne++] = (entry){h, (uint32_t)i};
            s->kept[i]++;
        }
    }
    qsort(s->e, s->ne, sizeof *s->e, cmp_entry);
    return SM_OK;
}

static void count_pairs(class_state *s, size_t max_per_hash)
{
    for (size_t i = 0; i < s->ne;) {
        size_t j = i;
        while (j < s->ne && s->e[j].h == s->e[i].h)
            j++;
        if (j - i > max_per_hash) {
            s->common[s->ncommon++] = s->e[i].h;
            for (size_t x = i; x < j; x++)
                s->kept[s->e[x].doc]--;
        } else {
            for (size_t x = i; x < j; x++)
                for (size_t y = x + 1; y < j; y++)
                    s->count[tri(s->n, s->e[x].doc, s->e[y].doc)]++;
        }
        i = j;
    }
}

static sm_code pick_pairs(class_state *s, const sm_sim_class_opts *o, sm_sim_pair **pairs,
                          size_t *npairs, sm_err *err)
{
    double threshold = o->threshold > 0 ? o->threshold : SM_SIM_DEFAULT_THRESHOLD;
    size_t min_shared = o->min_shared ? o->min_shared : 5;
    size_t cap = 0;
    for (size_t a = 0; a < s->n; a++) {
        for (size_t b = a + 1; b < s->n; b++) {
            uint32_t c = s->count[tri(s->n, a, b)];
            size_t small = s->kept[a] < s->kept[b] ? s->kept[a] : s->kept[b];
            if (c < min_shared || small == 0)
                continue;
            double score = (double)c / (double)small;
            if (score < threshold)
                continue;
            if (*npairs == cap) {
                cap = cap ? cap * 2 : 64;
                sm_sim_pair *p = realloc(*pairs, cap * sizeof *p);
                if (!p)
                    return sm_err_set(err, SM_ENOMEM, "similarity: out of memory");
                *pairs = p;
            }
            (*pairs)[(*npairs)++] = (sm_sim_pair){a, b, c, score > 1 ? 1 : score};
        }
    }
    if (*npairs)
        qsort(*pairs, *npairs, sizeof **pairs, cmp_pair);
    return SM_OK;
}

/* exclude = the starter code's hashes and the boilerplate's, sorted. */
static sm_code make_exclude(class_state *s, const sm_sim_doc *base, sm_sim_hashset *ex, sm_err *err)
{
    size_t nb = base ? base->nuniq : 0;
    ex->h = malloc((nb + s->ncommon ? nb + s->ncommon : 1) * sizeof *ex->h);
    if (!ex->h)
        return sm_err_set(err, SM_ENOMEM, "similarity: out of memory");
    if (nb)
        memcpy(ex->h, base->uniq, nb * sizeof *ex->h);
    if (s->ncommon)
        memcpy(ex->h + nb, s->common, s->ncommon * sizeof *ex->h);
    ex->n = nb + s->ncommon;
    qsort(ex->h, ex->n, sizeof *ex->h, cmp_u64);
    return SM_OK;
}

sm_code sm_sim_class_pairs(const sm_sim_doc *docs, size_t n, const sm_sim_class_opts *o,
                           sm_sim_pair **pairs, size_t *npairs, sm_sim_hashset *exclude,
                           sm_err *err)
{
    *pairs = NULL;
    *npairs = 0;
    memset(exclude, 0, sizeof *exclude);
    if (n > SM_SIM_MAX_DOCS)
        return sm_err_set(err, SM_ELIMIT, "similarity: %zu submissions, at most %u are compared", n,
                          SM_SIM_MAX_DOCS);
    class_state s = {.docs = docs, .n = n};
    size_t max_per_hash = o->max_per_hash ? o->max_per_hash : (n / 10 > 10 ? n / 10 : 10);
    sm_code rc = collect(&s, o->base, err);
    if (rc == SM_OK) {
        count_pairs(&s, max_per_hash);
        rc = pick_pairs(&s, o, pairs, npairs, err);
    }
    if (rc == SM_OK)
        rc = make_exclude(&s, o->base, exclude, err);
    free(s.e);
    free(s.count);
    free(s.kept);
    free(s.common);
    if (rc != SM_OK) {
        free(*pairs);
        *pairs = NULL;
        *npairs = 0;
    }
    return rc;
}
