/* sm_sampler: token sampling (penalty, temperature, top-k, top-p, min-p) over a private
 * xoshiro256** generator seeded through splitmix64, and stop-string search. */
#include "sm_sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct sm_sampler {
    sm_sampler_params p;
    int64_t vocab;
    uint64_t s[4];
    float *logits;  /* working copy */
    float *probs;   /* result distribution over the vocabulary */
    int32_t *idx;   /* candidate ids */
    uint8_t *seen;  /* repetition-penalty marks */
};

void sm_sampler_params_init(sm_sampler_params *p)
{
    memset(p, 0, sizeof *p);
    p->top_p = 1.0;
    p->repeat_penalty = 1.0;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(sm_sampler *s)
{
    uint64_t *st = s->s;
    uint64_t r = rotl(st[1] * 5, 7) * 9;
    uint64_t t = st[1] << 17;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = rotl(st[3], 45);
    return r;
}

double sm_sampler_uniform(sm_sampler *s) { return (double)(next_u64(s) >> 11) * 0x1.0p-53; }

sm_code sm_sampler_new(const sm_sampler_params *p, int64_t vocab, sm_sampler **out, sm_err *err)
{
    *out = NULL;
    if (!(p->temperature >= 0.0) || p->top_k < 0 || !(p->top_p > 0.0 && p->top_p <= 1.0) ||
        !(p->min_p >= 0.0 && p->min_p <= 1.0) || !(p->repeat_penalty > 0.0) || vocab < 1 ||
        !isfinite(p->temperature) || !isfinite(p->repeat_penalty)) {
        return sm_err_set(err, SM_EINVAL,
                          "bad sampling parameters (temperature >= 0, top_k >= 0, top_p in "
                          "(0, 1], min_p in [0, 1], repetition penalty > 0)");
    }
    sm_sampler *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    s->p = *p;
    s->vocab = vocab;
    s->logits = malloc((size_t)vocab * sizeof *s->logits);
    s->probs = malloc((size_t)vocab * sizeof *s->probs);
    s->idx = malloc((size_t)vocab * sizeof *s->idx);
    s->seen = calloc((size_t)vocab, 1);
    if (!s->logits || !s->probs || !s->idx || !s->seen) {
        sm_sampler_free(&s);
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++) {
        s->s[i] = splitmix64(&x);
    }
    *out = s;
    return SM_OK;
}

void sm_sampler_free(sm_sampler **ps)
{
    sm_sampler *s = *ps;
    if (s == NULL) {
        return;
    }
    free(s->logits);
    free(s->probs);
    free(s->idx);
    free(s->seen);
    free(s);
    *ps = NULL;
}

const float *sm_sampler_probs(const sm_sampler *s) { return s->probs; }

/* Sort candidates by logit descending, then id ascending (a total order: stable results). */

static int cmp_cand(const void *a, const void *b, void *ctx)
{
    const float *l = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (l[x] != l[y]) {
        return l[x] > l[y] ? -1 : 1;
    }
    return x < y ? -1 : x > y;
}

sm_code sm_sampler_sample(sm_sampler *s, const float *logits, const int32_t *history,
                          size_t n_history, int32_t *token, sm_err *err)
{
    int64_t V = s->vocab;
    float *l = s->logits;
    memcpy(l, logits, (size_t)V * sizeof *l);
    for (int64_t i = 0; i < V; i++) {
        if (isnan(l[i])) {
            return sm_err_set(err, SM_EINVAL, "logit %lld is NaN", (long long)i);
        }
    }
    if (s->p.repeat_penalty != 1.0 && n_history > 0) {
        size_t from = 0;
        if (s->p.repeat_last_n > 0 && n_history > (size_t)s->p.repeat_last_n) {
            from = n_history - (size_t)s->p.repeat_last_n;
        }
        float r = (float)s->p.repeat_penalty;
        for (size_t i = from; i < n_history; i++) {
            int32_t t = history[i];
            if (t >= 0 && t < V && !s->seen[t]) {
                s->seen[t] = 1;
                l[t] = l[t] > 0 ? l[t] / r : l[t] * r;
            }
        }
        for (size_t i = from; i < n_history; i++) {
            if (history[i] >= 0 && history[i] < V) {
                s->seen[history[i]] = 0;
            }
        }
    }
    memset(s->probs, 0, (size_t)V * sizeof *s->probs);
    if (s->p.temperature == 0.0 || s->p.top_k == 1) {
        int64_t best = 0;
        for (int64_t i = 1; i < V; i++) {
            if (l[i] > l[best]) {
                best = i;
            }
        }
        s->probs[best] = 1.0f;
        *token = (int32_t)best;
        return SM_OK;
    }
    /* Candidates: every id, sorted when a filter needs the order. */
    int64_t n = V;
    float maxl = l[0];
    for (int64_t i = 0; i < V; i++) {
        s->idx[i] = (int32_t)i;
        maxl = l[i] > maxl ? l[i] : maxl;
    }
    double inv_t = 1.0 / s->p.temperature;
    bool need_sort = s->p.top_k > 0 || s->p.top_p < 1.0 || s->p.min_p > 0.0;
    if (need_sort) {
        /* Drop ids whose probability underflows relative to the best (exp(-100) ~ 4e-44):
         * they can never be drawn, and sorting fewer candidates is much faster. */
        int64_t m = 0;
        for (int64_t i = 0; i < V; i++) {
            if ((double)(l[i] - maxl) * inv_t > -100.0) {
                s->idx[m++] = (int32_t)i;
            }
        }
        n = m;
        qsort_r(s->idx, (size_t)n, sizeof *s->idx, cmp_cand, l);
        if (s->p.top_k > 0 && n > s->p.top_k) {
            n = s->p.top_k;
        }
    }
    /* Softmax over the candidates at the temperature, in double. */
    double sum = 0.0;
    double *w = malloc((size_t)n * sizeof *w);
    if (w == NULL) {
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    for (int64_t i = 0; i < n; i++) {
        w[i] = exp(((double)l[s->idx[i]] - (double)maxl) * inv_t);
        sum += w[i];
    }
    if (s->p.top_p < 1.0) {
        double c = 0.0;
        int64_t keep = n;
        for (int64_t i = 0; i < n; i++) {
            c += w[i] / sum;
            if (c >= s->p.top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (s->p.min_p > 0.0) {
        double cut = w[0] * s->p.min_p; /* w[0] is the best candidate after sorting */
        int64_t keep = 1;
        while (keep < n && w[keep] >= cut) {
            keep++;
        }
        n = keep;
    }
    sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        sum += w[i];
    }
    double u = sm_sampler_uniform(s) * sum, c = 0.0;
    int32_t pick = s->idx[n - 1];
    bool picked = false;
    for (int64_t i = 0; i < n; i++) {
        s->probs[s->idx[i]] = (float)(w[i] / sum);
        c += w[i];
        if (!picked && u < c) {
            pick = s->idx[i];
            picked = true;
        }
    }
    free(w);
    *token = pick;
    return SM_OK;
}

int64_t sm_stop_find(const char *text, size_t len, size_t from, const char *const *stops,
                     size_t n)
{
    int64_t best = -1;
    for (size_t i = 0; i < n; i++) {
        size_t sl = strlen(stops[i]);
        if (sl == 0 || sl > len) {
            continue;
        }
        size_t start = from >= sl ? from - sl + 1 : 0;
        const char *p = memmem(text + start, len - start, stops[i], sl);
        if (p != NULL && (best < 0 || p - text < best)) {
            best = p - text;
        }
    }
    return best;
}
