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
    float *logits;          /* working copy */
    float *probs;           /* result distribution over the vocabulary */
    int32_t *idx;           /* candidate ids */
    int32_t *idx2;          /* the radix sort's second id buffer (allocated on first use) */
    uint32_t *keys, *keys2; /* its sort keys */
    double *w;              /* unnormalised probabilities */
    uint8_t *seen;          /* repetition-penalty marks */
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

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

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

double sm_sampler_uniform(sm_sampler *s)
{
    return (double)(next_u64(s) >> 11) * 0x1.0p-53;
}

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
    s->w = malloc((size_t)vocab * sizeof *s->w);
    if (!s->logits || !s->probs || !s->idx || !s->seen || !s->w) {
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
    free(s->idx2);
    free(s->keys);
    free(s->keys2);
    free(s->seen);
    free(s->w);
    free(s);
    *ps = NULL;
}

const float *sm_sampler_probs(const sm_sampler *s)
{
    return s->probs;
}

/* Candidate order: logit descending, then id ascending (a total order: stable results). */
static bool better(const float *l, int32_t a, int32_t b)
{
    return l[a] > l[b] || (l[a] == l[b] && a < b);
}

static void sift_down(const float *l, int32_t *h, int64_t n, int64_t i)
{
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= n) {
            return;
        }
        if (c + 1 < n && better(l, h[c], h[c + 1])) {
            c++; /* the worse child */
        }
        if (!better(l, h[i], h[c])) {
            return;
        }
        int32_t t = h[i];
        h[i] = h[c];
        h[c] = t;
        i = c;
    }
}

/* Writes the k best ids of l[0, V) into out, best first, with a min-heap of the k best so far
 * (its root the worst of them). Returns k. */
static int64_t select_top(const float *l, int64_t V, int64_t k, int32_t *out)
{
    for (int64_t i = 0; i < k; i++) {
        out[i] = (int32_t)i;
    }
    for (int64_t i = k / 2 - 1; i >= 0; i--) {
        sift_down(l, out, k, i);
    }
    for (int64_t i = k; i < V; i++) {
        if (better(l, (int32_t)i, out[0])) {
            out[0] = (int32_t)i;
            sift_down(l, out, k, 0);
        }
    }
    /* heap sort: repeatedly move the worst to the end */
    for (int64_t n = k; n > 1; n--) {
        int32_t t = out[0];
        out[0] = out[n - 1];
        out[n - 1] = t;
        sift_down(l, out, n - 1, 0);
    }
    return k;
}

/* A key whose ascending order is the candidate order (logit descending; -0 and +0 equal). */
static uint32_t order_key(float v)
{
    uint32_t u;
    if (v == 0.0f)
        v = 0.0f;
    memcpy(&u, &v, sizeof u);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u); /* ascending in v */
    return ~u;                                      /* descending in v */
}

/* Writes every id of l[0, V) into out in candidate order (as select_top with k = V would) with
 * a stable least-significant-digit radix sort: 4 passes of 8 bits, ids start ascending, so
 * equal logits stay in id order. O(V): no comparison sort over the whole vocabulary. */
static sm_code sort_all(sm_sampler *s, const float *l, int32_t *out, sm_err *err)
{
    int64_t V = s->vocab;
    if (!s->keys) {
        s->keys = malloc((size_t)V * sizeof *s->keys);
        s->keys2 = malloc((size_t)V * sizeof *s->keys2);
        s->idx2 = malloc((size_t)V * sizeof *s->idx2);
        if (!s->keys || !s->keys2 || !s->idx2) {
            free(s->keys);
            free(s->keys2);
            free(s->idx2);
            s->keys = s->keys2 = NULL;
            s->idx2 = NULL;
            return sm_err_set(err, SM_ENOMEM, "out of memory");
        }
    }
    uint32_t *k = s->keys, *k2 = s->keys2;
    int32_t *id = out, *id2 = s->idx2;
    for (int64_t i = 0; i < V; i++) {
        k[i] = order_key(l[i]);
        id[i] = (int32_t)i;
    }
    for (int shift = 0; shift < 32; shift += 8) {
        int64_t count[257] = {0};
        for (int64_t i = 0; i < V; i++)
            count[((k[i] >> shift) & 0xff) + 1]++;
        for (int b = 0; b < 256; b++)
            count[b + 1] += count[b];
        for (int64_t i = 0; i < V; i++) {
            int64_t at = count[(k[i] >> shift) & 0xff]++;
            k2[at] = k[i];
            id2[at] = id[i];
        }
        uint32_t *tk = k;
        k = k2;
        k2 = tk;
        int32_t *ti = id;
        id = id2;
        id2 = ti;
    }
    /* an even number of passes: the sorted ids are back in out */
    return SM_OK;
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
    /* Weights exp((l - max) / T) of every id, in double. */
    double inv_t = 1.0 / s->p.temperature;
    float maxl = l[0];
    for (int64_t i = 1; i < V; i++) {
        maxl = l[i] > maxl ? l[i] : maxl;
    }
    double *w = s->w, z_all = 0.0;
    for (int64_t i = 0; i < V; i++) {
        w[i] = exp(((double)l[i] - (double)maxl) * inv_t);
        z_all += w[i];
    }
    int64_t n;
    if (s->p.top_k > 0 || s->p.top_p < 1.0) {
        /* The k best ids in order; for top-p alone the 64 best, else (a flat distribution)
         * every id in order: the same candidates as any k that holds top_p of the mass. */
        int64_t k = s->p.top_k > 0 ? s->p.top_k : 64;
        k = k > V ? V : k;
        n = select_top(l, V, k, s->idx);
        if (s->p.top_k <= 0 && k < V) {
            double c = 0.0;
            for (int64_t i = 0; i < n; i++) {
                c += w[s->idx[i]];
            }
            if (!(c >= s->p.top_p * z_all)) {
                sm_code rc = sort_all(s, l, s->idx, err);
                if (rc != SM_OK) {
                    return rc;
                }
                n = V;
            }
        }
        if (s->p.top_p < 1.0) {
            double z = 0.0;
            for (int64_t i = 0; i < n; i++) {
                z += w[s->idx[i]];
            }
            if (s->p.top_k <= 0) {
                z = z_all;
            }
            double c = 0.0;
            for (int64_t i = 0; i < n; i++) {
                c += w[s->idx[i]];
                if (c >= s->p.top_p * z) {
                    n = i + 1;
                    break;
                }
            }
        }
    } else {
        n = V;
        for (int64_t i = 0; i < V; i++) {
            s->idx[i] = (int32_t)i;
        }
    }
    if (s->p.min_p > 0.0) {
        /* w of the best id is 1; keep ids with w >= min_p (order preserved). */
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++) {
            if (w[s->idx[i]] >= s->p.min_p) {
                s->idx[m++] = s->idx[i];
            }
        }
        n = m;
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        sum += w[s->idx[i]];
    }
    double u = sm_sampler_uniform(s) * sum, c = 0.0;
    int32_t pick = s->idx[n - 1];
    bool picked = false;
    for (int64_t i = 0; i < n; i++) {
        s->probs[s->idx[i]] = (float)(w[s->idx[i]] / sum);
        c += w[s->idx[i]];
        if (!picked && u < c) {
            pick = s->idx[i];
            picked = true;
        }
    }
    *token = pick;
    return SM_OK;
}

int64_t sm_stop_find(const char *text, size_t len, size_t from, const char *const *stops, size_t n)
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
