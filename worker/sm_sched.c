/* sm_sched: continuous batching over a fixed set of slots, with a prefix cache (see
 * sm_sched.h). */
#include "sm_sched.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sm_log.h"

#define MAX_EOS 16

struct sm_task {
    void *user;
    void *done_ctx; /* the scheduler's opts.done_ctx */
    int tag;
    const sm_tokenizer *tok;
    int32_t *ids; /* prompt, generated ids and continuations */
    size_t n_ids, cap;
    size_t n_prefix;
    size_t fed;        /* ids already in the slot's KV cache */
    size_t sampled_at; /* index of the sampled id not fed yet, or SIZE_MAX */
    sm_sampler *smp;
    int64_t max_new;
    char **stops;
    size_t n_stops;
    size_t phase_start; /* index in ids of this phase's first generated id */
    int64_t phase_tokens, total_tokens, prompt_fed, cached;
    char *text;
    size_t text_len, text_cap;
    sm_detok_stream *ds;
    sm_finish finish;
    bool continued;
    sm_task *next;
};

typedef struct cache_entry {
    int32_t *ids;
    size_t n;
    sm_dev_seq *seq;
    uint64_t used;
} cache_entry;

struct sm_sched {
    sm_dev_model *m;
    sm_dev_model *owned; /* the wrapper sm_sched_new made around a CPU model */
    const sm_tokenizer *tok;
    sm_sched_opts o;
    sm_task_done_fn done;
    int64_t vocab;
    sm_dev_seq **seqs;
    sm_task **slot;
    sm_task *qhead, *qtail;
    int nq, nrun;
    cache_entry *cache;
    int n_cache;
    uint64_t clock;
    float *logits;
    int32_t eos[MAX_EOS];
    int n_eos;
    sm_dev_seq **bseq;
    const int32_t **btok;
    int64_t *bn;
    int *bslot;
    /* per batch row of the current step: whether it samples, the id drawn, its error */
    bool *bsample;
    int32_t *bid;
    sm_code *brc;
    sm_err *berr;
    int nb;
    sm_sched_stats st;
};

static void task_free(sm_task *t)
{
    if (!t)
        return;
    free(t->ids);
    sm_sampler_free(&t->smp);
    for (size_t i = 0; i < t->n_stops; i++)
        free(t->stops[i]);
    free(t->stops);
    free(t->text);
    sm_detok_stream_free(&t->ds);
    free(t);
}

static void add_eos(sm_sched *s, int32_t id)
{
    if (id < 0 || s->n_eos >= MAX_EOS)
        return;
    for (int i = 0; i < s->n_eos; i++)
        if (s->eos[i] == id)
            return;
    s->eos[s->n_eos++] = id;
}

sm_code sm_sched_new_dev(sm_dev_model *model, const sm_tokenizer *tok, const sm_sched_opts *opts,
                         sm_task_done_fn done, sm_sched **out, sm_err *err)
{
    *out = NULL;
    if (opts->slots < 1 || opts->slots > 1024 || opts->max_ctx < 2)
        return sm_err_set(err, SM_EINVAL, "scheduler: slots must be 1..1024 and max_ctx >= 2");
    sm_sched *s = calloc(1, sizeof *s);
    if (!s)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    s->m = model;
    s->tok = tok;
    s->o = *opts;
    if (s->o.cache_entries <= 0)
        s->o.cache_entries = 8;
    if (s->o.prefill_chunk <= 0)
        s->o.prefill_chunk = 512;
    s->done = done;
    const sm_model_config *c = sm_dev_config(model);
    s->vocab = c->vocab;
    for (int i = 0; i < c->n_eos; i++)
        add_eos(s, c->eos_ids[i]);
    add_eos(s, sm_tokenizer_eos_id(tok));
    add_eos(s, sm_tokenizer_token_id(tok, "<|im_end|>"));
    add_eos(s, sm_tokenizer_token_id(tok, "<|endoftext|>"));
    int n = s->o.slots;
    s->seqs = calloc((size_t)n, sizeof *s->seqs);
    s->slot = calloc((size_t)n, sizeof *s->slot);
    s->cache = calloc((size_t)s->o.cache_entries, sizeof *s->cache);
    s->logits = malloc((size_t)n * (size_t)s->vocab * sizeof *s->logits);
    s->bseq = calloc((size_t)n, sizeof *s->bseq);
    s->btok = calloc((size_t)n, sizeof *s->btok);
    s->bn = calloc((size_t)n, sizeof *s->bn);
    s->bslot = calloc((size_t)n, sizeof *s->bslot);
    s->bsample = calloc((size_t)n, sizeof *s->bsample);
    s->bid = calloc((size_t)n, sizeof *s->bid);
    s->brc = calloc((size_t)n, sizeof *s->brc);
    s->berr = calloc((size_t)n, sizeof *s->berr);
    if (!s->seqs || !s->slot || !s->cache || !s->logits || !s->bseq || !s->btok || !s->bn ||
        !s->bslot || !s->bsample || !s->bid || !s->brc || !s->berr) {
        sm_sched_free(&s);
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        sm_code rc = sm_dev_seq_new(model, opts->max_ctx, &s->seqs[i], err);
        if (rc) {
            sm_sched_free(&s);
            return rc;
        }
    }
    *out = s;
    return SM_OK;
}

sm_code sm_sched_new(sm_model *model, const sm_tokenizer *tok, const sm_sched_opts *opts,
                     sm_task_done_fn done, sm_sched **out, sm_err *err)
{
    sm_dev_model *d = NULL;
    sm_code rc = sm_dev_wrap_cpu(model, &d, err);
    if (!rc)
        rc = sm_sched_new_dev(d, tok, opts, done, out, err);
    if (rc) {
        sm_dev_free(&d);
        return rc;
    }
    (*out)->owned = d;
    return SM_OK;
}

void sm_sched_free(sm_sched **ps)
{
    sm_sched *s = *ps;
    if (!s)
        return;
    for (int i = 0; i < s->o.slots; i++) {
        if (s->seqs)
            sm_dev_seq_free(&s->seqs[i]);
        if (s->slot)
            task_free(s->slot[i]);
    }
    while (s->qhead) {
        sm_task *t = s->qhead;
        s->qhead = t->next;
        task_free(t);
    }
    for (int i = 0; s->cache && i < s->n_cache; i++) {
        free(s->cache[i].ids);
        sm_dev_seq_free(&s->cache[i].seq);
    }
    free(s->seqs);
    free(s->slot);
    free(s->cache);
    free(s->logits);
    free(s->bseq);
    free(s->btok);
    free(s->bn);
    free(s->bslot);
    free(s->bsample);
    free(s->bid);
    free(s->brc);
    free(s->berr);
    sm_dev_free(&s->owned);
    free(s);
    *ps = NULL;
}

static sm_code ids_append(sm_task *t, const int32_t *ids, size_t n, sm_err *err)
{
    if (t->n_ids + n > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->n_ids + n)
            cap *= 2;
        int32_t *p = realloc(t->ids, cap * sizeof *p);
        if (!p)
            return sm_err_set(err, SM_ENOMEM, "out of memory");
        t->ids = p;
        t->cap = cap;
    }
    memcpy(t->ids + t->n_ids, ids, n * sizeof *ids);
    t->n_ids += n;
    return SM_OK;
}

static sm_code text_append(sm_task *t, const char *p, size_t n, sm_err *err)
{
    if (t->text_len + n + 1 > t->text_cap) {
        size_t cap = t->text_cap ? t->text_cap : 1024;
        while (cap < t->text_len + n + 1)
            cap *= 2;
        char *q = realloc(t->text, cap);
        if (!q)
            return sm_err_set(err, SM_ENOMEM, "out of memory");
        t->text = q;
        t->text_cap = cap;
    }
    memcpy(t->text + t->text_len, p, n);
    t->text_len += n;
    t->text[t->text_len] = '\0';
    return SM_OK;
}

/* Starts a generation phase: empty text, a fresh streaming decoder. */
static sm_code phase_start(sm_task *t, int64_t max_new, sm_err *err)
{
    t->max_new = max_new;
    t->phase_start = t->n_ids;
    t->phase_tokens = 0;
    t->finish = SM_FINISH_NONE;
    t->text_len = 0;
    sm_detok_stream_free(&t->ds);
    sm_code rc = text_append(t, "", 0, err);
    return rc ? rc : sm_detok_stream_new(t->tok, &t->ds, err);
}

sm_code sm_sched_submit(sm_sched *s, const sm_task_spec *spec, sm_err *err)
{
    if (spec->n_prompt == 0 || spec->max_new < 1)
        return sm_err_set(err, SM_EINVAL, "a task needs a prompt and max_new >= 1");
    if ((int64_t)spec->n_prompt + spec->max_new > s->o.max_ctx)
        return sm_err_set(err, SM_ELIMIT,
                          "prompt of %zu tokens + %lld new exceeds the context "
                          "of %lld",
                          spec->n_prompt, (long long)spec->max_new, (long long)s->o.max_ctx);
    sm_task *t = calloc(1, sizeof *t);
    if (!t)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    t->user = spec->user;
    t->done_ctx = s->o.done_ctx;
    t->tag = spec->tag;
    t->tok = s->tok;
    t->n_prefix = spec->n_prefix < spec->n_prompt ? spec->n_prefix : spec->n_prompt - 1;
    t->sampled_at = SIZE_MAX;
    sm_code rc = ids_append(t, spec->prompt, spec->n_prompt, err);
    if (!rc)
        rc = sm_sampler_new(&spec->sampling, s->vocab, &t->smp, err);
    for (size_t i = 0; !rc && spec->stops && spec->stops[i]; i++) {
        char **p = realloc(t->stops, (t->n_stops + 1) * sizeof *p);
        if (!p || !(p[t->n_stops] = strdup(spec->stops[i]))) {
            if (p)
                t->stops = p;
            rc = sm_err_set(err, SM_ENOMEM, "out of memory");
            break;
        }
        t->stops = p;
        t->n_stops++;
    }
    if (!rc)
        rc = phase_start(t, spec->max_new, err);
    if (rc) {
        task_free(t);
        return rc;
    }
    if (s->qtail)
        s->qtail->next = t;
    else
        s->qhead = t;
    s->qtail = t;
    s->nq++;
    return SM_OK;
}

/* The cached KV of prefix ids[0, n), computing it when absent (evicting the least recently
 * used entry when full). */
static sm_code cache_get(sm_sched *s, const int32_t *ids, size_t n, cache_entry **out, sm_err *err)
{
    s->clock++;
    for (int i = 0; i < s->n_cache; i++) {
        cache_entry *e = &s->cache[i];
        if (e->n == n && !memcmp(e->ids, ids, n * sizeof *ids)) {
            e->used = s->clock;
            s->st.cache_hits++;
            *out = e;
            return SM_OK;
        }
    }
    s->st.cache_misses++;
    cache_entry *e;
    if (s->n_cache < s->o.cache_entries) {
        e = &s->cache[s->n_cache++];
    } else {
        e = &s->cache[0];
        for (int i = 1; i < s->n_cache; i++)
            if (s->cache[i].used < e->used)
                e = &s->cache[i];
        free(e->ids);
        sm_dev_seq_free(&e->seq);
    }
    memset(e, 0, sizeof *e);
    e->ids = malloc(n * sizeof *ids);
    if (!e->ids)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    memcpy(e->ids, ids, n * sizeof *ids);
    sm_code rc = sm_dev_seq_new(s->m, (int64_t)n, &e->seq, err);
    for (size_t at = 0; !rc && at < n;) {
        int64_t k = (int64_t)(n - at) < s->o.prefill_chunk ? (int64_t)(n - at) : s->o.prefill_chunk;
        const int32_t *p = ids + at;
        rc = sm_dev_forward(s->m, &e->seq, &p, &k, 1, NULL, err);
        at += (size_t)k;
    }
    if (rc) {
        free(e->ids);
        sm_dev_seq_free(&e->seq);
        *e = s->cache[--s->n_cache];
        return rc;
    }
    s->st.prompt_tokens += (int64_t)n;
    e->n = n;
    e->used = s->clock;
    *out = e;
    return SM_OK;
}

static sm_code admit(sm_sched *s, int i, sm_task *t, sm_err *err)
{
    sm_dev_seq *seq = s->seqs[i];
    sm_code rc = sm_dev_seq_reset(seq, err);
    if (rc)
        return rc;
    t->fed = 0;
    if (s->o.prefix_cache && t->n_prefix > 0) {
        cache_entry *e = NULL;
        rc = cache_get(s, t->ids, t->n_prefix, &e, err);
        if (rc)
            return rc;
        rc = sm_dev_seq_copy_prefix(seq, e->seq, (int64_t)t->n_prefix, err);
        if (rc)
            return rc;
        t->fed = t->n_prefix;
        t->cached += (int64_t)t->n_prefix;
        s->st.cached_tokens += (int64_t)t->n_prefix;
    }
    s->slot[i] = t;
    s->nrun++;
    return SM_OK;
}

static bool is_eos(const sm_sched *s, int32_t id)
{
    for (int i = 0; i < s->n_eos; i++)
        if (s->eos[i] == id)
            return true;
    return false;
}

/* Draws the next id of every batch row of this step that samples (rows task, task + n_tasks,
 * ...). Each task has its own sampler and generator, so the ids do not depend on which thread
 * draws them or in which order. */
static void sample_rows(void *arg, int task, int n_tasks)
{
    sm_sched *s = arg;
    for (int b = task; b < s->nb; b += n_tasks) {
        if (!s->bsample[b])
            continue;
        sm_task *t = s->slot[s->bslot[b]];
        s->brc[b] = sm_sampler_sample(t->smp, s->logits + (size_t)b * (size_t)s->vocab, t->ids,
                                      t->n_ids, &s->bid[b], &s->berr[b]);
    }
}

/* Appends the sampled id to the task; sets t->finish when the phase ends. */
static sm_code advance(sm_sched *s, sm_task *t, int32_t id, sm_err *err)
{
    sm_code rc;
    t->phase_tokens++;
    t->total_tokens++;
    s->st.generated_tokens++;
    char buf[SM_DETOK_STREAM_MIN_CAP];
    size_t bl = 0;
    if (is_eos(s, id)) {
        t->finish = SM_FINISH_EOS; /* not kept: a continuation supplies its own end marker */
    } else {
        if ((rc = ids_append(t, &id, 1, err)))
            return rc;
        t->sampled_at = t->n_ids - 1;
        size_t before = t->text_len;
        rc = sm_detok_stream_push(t->ds, id, buf, sizeof buf, &bl, err);
        if (!rc)
            rc = text_append(t, buf, bl, err);
        if (rc)
            return rc;
        if (t->n_stops) {
            size_t from = before > 64 ? before - 64 : 0;
            int64_t at =
                sm_stop_find(t->text, t->text_len, from, (const char *const *)t->stops, t->n_stops);
            if (at >= 0) {
                for (size_t k = 0; k < t->n_stops; k++)
                    if (!strncmp(t->text + at, t->stops[k], strlen(t->stops[k]))) {
                        t->text_len = (size_t)at + strlen(t->stops[k]);
                        t->text[t->text_len] = '\0';
                        break;
                    }
                t->finish = SM_FINISH_STOP;
                return SM_OK;
            }
        }
        if (t->phase_tokens >= t->max_new)
            t->finish = SM_FINISH_LENGTH;
    }
    if (t->finish != SM_FINISH_NONE) {
        rc = sm_detok_stream_flush(t->ds, buf, sizeof buf, &bl, err);
        if (!rc)
            rc = text_append(t, buf, bl, err);
    }
    return rc;
}

sm_code sm_sched_step(sm_sched *s, bool *progressed, sm_err *err)
{
    *progressed = false;
    sm_code rc;
    for (int i = 0; i < s->o.slots && s->qhead; i++) {
        if (s->slot[i])
            continue;
        sm_task *t = s->qhead;
        s->qhead = t->next;
        if (!s->qhead)
            s->qtail = NULL;
        s->nq--;
        t->next = NULL;
        if ((rc = admit(s, i, t, err))) {
            task_free(t);
            return rc;
        }
    }
    int nb = 0;
    for (int i = 0; i < s->o.slots; i++) {
        sm_task *t = s->slot[i];
        if (!t)
            continue;
        int64_t n = (int64_t)(t->n_ids - t->fed);
        if (n > s->o.prefill_chunk)
            n = s->o.prefill_chunk;
        s->bseq[nb] = s->seqs[i];
        s->btok[nb] = t->ids + t->fed;
        s->bn[nb] = n;
        s->bslot[nb] = i;
        nb++;
    }
    if (nb == 0)
        return SM_OK;
    bool decode_only = true;
    for (int b = 0; b < nb; b++)
        if (s->bn[b] != 1 || s->slot[s->bslot[b]]->fed + 1 != s->slot[s->bslot[b]]->n_ids)
            decode_only = false;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = sm_dev_forward(s->m, s->bseq, s->btok, s->bn, nb, s->logits, err);
    if (rc)
        return rc;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (decode_only) {
        s->st.decode_steps++;
        s->st.decode_tokens += nb;
        s->st.decode_us +=
            (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
    }
    *progressed = true;
    s->st.steps++;
    int n_sample = 0;
    for (int b = 0; b < nb; b++) {
        sm_task *t = s->slot[s->bslot[b]];
        size_t n = (size_t)s->bn[b];
        bool had_sample = t->sampled_at >= t->fed && t->sampled_at < t->fed + n;
        t->prompt_fed += (int64_t)n - (had_sample ? 1 : 0);
        s->st.prompt_tokens += (int64_t)n - (had_sample ? 1 : 0);
        if (had_sample)
            t->sampled_at = SIZE_MAX;
        t->fed += n;
        s->bsample[b] = t->fed >= t->n_ids; /* else still reading its prompt */
        s->brc[b] = SM_OK;
        n_sample += s->bsample[b];
    }
    /* the draws on the model's threads (idle between steps), then the rest in slot order */
    s->nb = nb;
    sm_pool *pool = sm_dev_pool(s->m);
    int n_tasks = pool ? sm_pool_threads(pool) : 1;
    if (pool && n_sample > 1)
        sm_pool_run(pool, sample_rows, s, n_sample < n_tasks ? n_sample : n_tasks);
    else
        sample_rows(s, 0, 1);
    for (int b = 0; b < nb; b++) {
        int i = s->bslot[b];
        sm_task *t = s->slot[i];
        if (!s->bsample[b] || !t)
            continue;
        if (s->brc[b]) {
            if (err)
                *err = s->berr[b];
            return s->brc[b];
        }
        if ((rc = advance(s, t, s->bid[b], err)))
            return rc;
        if (t->finish == SM_FINISH_NONE)
            continue;
        t->continued = false;
        rc = s->done(t->user, t, err);
        if (!t->continued) {
            s->slot[i] = NULL;
            s->nrun--;
            task_free(t);
        }
        if (rc)
            return rc;
    }
    return SM_OK;
}

sm_code sm_task_continue(sm_task *t, const int32_t *ids, size_t n, int64_t max_new, sm_err *err)
{
    if (n == 0 || max_new < 1)
        return sm_err_set(err, SM_EINVAL, "a continuation needs ids and max_new >= 1");
    sm_code rc = ids_append(t, ids, n, err);
    if (!rc)
        rc = phase_start(t, max_new, err);
    if (!rc)
        t->continued = true;
    return rc;
}

int sm_sched_cancel(sm_sched *s, void *user)
{
    int n = 0;
    for (sm_task **pp = &s->qhead; *pp;) {
        sm_task *t = *pp;
        if (t->user == user) {
            *pp = t->next;
            task_free(t);
            s->nq--;
            n++;
        } else {
            pp = &t->next;
        }
    }
    s->qtail = NULL;
    for (sm_task *t = s->qhead; t; t = t->next)
        s->qtail = t;
    for (int i = 0; i < s->o.slots; i++)
        if (s->slot[i] && s->slot[i]->user == user) {
            task_free(s->slot[i]);
            s->slot[i] = NULL;
            s->nrun--;
            n++;
        }
    return n;
}

int64_t sm_sched_user_tokens(const sm_sched *s, const void *user)
{
    int64_t n = 0;
    for (int i = 0; i < s->o.slots; i++)
        if (s->slot[i] && s->slot[i]->user == user)
            n += s->slot[i]->total_tokens;
    return n;
}

int sm_sched_pending(const sm_sched *s)
{
    return s->nq;
}
int sm_sched_running(const sm_sched *s)
{
    return s->nrun;
}
void sm_sched_get_stats(const sm_sched *s, sm_sched_stats *st)
{
    *st = s->st;
}

void *sm_task_user(const sm_task *t)
{
    return t->user;
}
void *sm_task_done_ctx(const sm_task *t)
{
    return t->done_ctx;
}

int sm_task_tag(const sm_task *t)
{
    return t->tag;
}
sm_finish sm_task_finish(const sm_task *t)
{
    return t->finish;
}
int64_t sm_task_phase_tokens(const sm_task *t)
{
    return t->phase_tokens;
}
int64_t sm_task_total_tokens(const sm_task *t)
{
    return t->total_tokens;
}
int64_t sm_task_prompt_tokens(const sm_task *t)
{
    return t->prompt_fed;
}
int64_t sm_task_cached_tokens(const sm_task *t)
{
    return t->cached;
}

const char *sm_task_text(const sm_task *t, size_t *len)
{
    if (len)
        *len = t->text_len;
    return t->text ? t->text : "";
}

const int32_t *sm_task_phase_ids(const sm_task *t, size_t *n)
{
    *n = t->n_ids - t->phase_start;
    return t->ids + t->phase_start;
}
