/* serve_engine: the generation thread of `stepmark-engine serve`. A fixed number of slots, each
 * with its own KV-cache sequence; every step is one sm_model_forward over all busy slots (a slot
 * still reading its prompt feeds up to `chunk` prompt ids, the others one token), then each slot
 * samples, detokenizes, checks EOS, stop strings and max_tokens, and publishes its text under
 * the lock. A finished or cancelled request leaves its slot and the next queued one takes it at
 * the next step (continuous batching). A step runs the deterministic (batch-invariant) kernels
 * whenever one of its requests asked for them, so such a request's tokens do not depend on
 * what else is batched. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve.h"

#define MAX_EOS 12

const double serve_lat_bounds[SERVE_LAT_BUCKETS] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                    1,    2.5,   5,    10,  30,   60};

typedef struct slot {
    serve_req *req; /* NULL: free */
    sm_seq *seq;
    sm_sampler *sampler;
    sm_detok_stream *ds;
    size_t fed; /* ids of req->ids already in the KV cache */
    int64_t n_feed;
    size_t max_stop; /* longest stop string */
} slot;

struct serve_engine {
    sm_model *model;
    sm_tokenizer *tok;
    serve_opts opts;
    int64_t vocab;
    int32_t eos[MAX_EOS];
    int n_eos;
    slot *slots;
    float *logits;
    sm_seq **b_seqs;
    const int32_t **b_toks;
    int64_t *b_n;
    int *b_slot;
    pthread_t thread;
    bool started, stopping;
    pthread_mutex_t lock;
    pthread_cond_t wake;     /* the generation thread waits for work */
    pthread_cond_t progress; /* HTTP threads wait for results */
    serve_req **queue;       /* FIFO ring */
    int q_head, q_len;
    serve_stats st;
};

double serve_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

serve_req *serve_req_new(const int32_t *prompt, size_t n_prompt, int64_t max_tokens)
{
    serve_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->ids = malloc((n_prompt + (size_t)max_tokens + 1) * sizeof *r->ids);
    r->text = malloc(256);
    r->toks = calloc((size_t)max_tokens + 1, sizeof *r->toks);
    if (!r->ids || !r->text || !r->toks) {
        free(r->ids);
        free(r->text);
        free(r->toks);
        free(r);
        return NULL;
    }
    memcpy(r->ids, prompt, n_prompt * sizeof *prompt);
    r->n_prompt = n_prompt;
    r->max_tokens = max_tokens;
    r->text_cap = 256;
    r->stop_index = -1;
    r->eos_id = -1;
    r->text[0] = '\0';
    r->logprobs = -1;
    r->refs = 1;
    sm_sampler_params_init(&r->sampling);
    return r;
}

static void req_free(serve_req *r)
{
    for (size_t i = 0; i < r->n_stops; i++)
        free(r->stops[i]);
    free(r->ids);
    free(r->text);
    free(r->toks);
    free(r);
}

/* Drops a reference with the lock held. */
static void req_unref_locked(serve_req *r)
{
    if (--r->refs == 0)
        req_free(r);
}

void serve_req_release(serve_engine *e, serve_req *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&e->lock);
    req_unref_locked(r);
    pthread_mutex_unlock(&e->lock);
}

void serve_engine_lock(serve_engine *e)
{
    pthread_mutex_lock(&e->lock);
}

void serve_engine_unlock(serve_engine *e)
{
    pthread_mutex_unlock(&e->lock);
}

bool serve_engine_wait(serve_engine *e, double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double t = (double)ts.tv_nsec * 1e-9 + seconds;
    ts.tv_sec += (time_t)t;
    ts.tv_nsec = (long)((t - (double)(time_t)t) * 1e9);
    return pthread_cond_timedwait(&e->progress, &e->lock, &ts) == 0;
}

void serve_engine_cancel(serve_engine *e, serve_req *r)
{
    r->cancelled = true;
    pthread_cond_signal(&e->wake);
}

const sm_tokenizer *serve_engine_tokenizer(const serve_engine *e)
{
    return e->tok;
}

const serve_opts *serve_engine_opts(const serve_engine *e)
{
    return &e->opts;
}

void serve_engine_observe(serve_engine *e, double seconds)
{
    pthread_mutex_lock(&e->lock);
    int b = 0;
    while (b < SERVE_LAT_BUCKETS && seconds > serve_lat_bounds[b])
        b++;
    for (; b <= SERVE_LAT_BUCKETS; b++)
        e->st.lat_buckets[b]++;
    e->st.lat_count++;
    e->st.lat_sum += seconds;
    pthread_mutex_unlock(&e->lock);
}

void serve_engine_stats(serve_engine *e, serve_stats *st)
{
    pthread_mutex_lock(&e->lock);
    *st = e->st;
    pthread_mutex_unlock(&e->lock);
}

sm_code serve_engine_submit(serve_engine *e, serve_req *r, sm_err *err)
{
    for (size_t i = 0; i < r->n_prompt; i++)
        if (r->ids[i] < 0 || r->ids[i] >= e->vocab)
            return sm_err_set(err, SM_EINVAL, "token id %d is outside the vocabulary (0..%lld)",
                              (int)r->ids[i], (long long)e->vocab - 1);
    if ((int64_t)r->n_prompt + r->max_tokens > e->opts.ctx)
        return sm_err_set(err, SM_EINVAL,
                          "This model's maximum context length is %lld tokens; the prompt has "
                          "%zu tokens and max_tokens is %lld",
                          (long long)e->opts.ctx, r->n_prompt, (long long)r->max_tokens);
    pthread_mutex_lock(&e->lock);
    sm_code rc = SM_OK;
    if (e->stopping)
        rc = sm_err_set(err, SM_ESTATE, "the server is shutting down");
    else if (e->q_len >= e->opts.queue)
        rc = sm_err_set(err, SM_ELIMIT, "%d requests are already waiting; retry later", e->q_len);
    if (rc == SM_OK) {
        r->refs++;
        r->t_submit = serve_now();
        e->queue[(e->q_head + e->q_len++) % e->opts.queue] = r;
        e->st.queued = e->q_len;
        pthread_cond_signal(&e->wake);
    }
    pthread_mutex_unlock(&e->lock);
    return rc;
}

/* Ends a slot's request (lock held). */
static void slot_finish(serve_engine *e, slot *s, serve_finish f, const char *msg)
{
    serve_req *r = s->req;
    if (f == SERVE_FINISH_ERROR && msg)
        snprintf(r->error, sizeof r->error, "%s", msg);
    r->finish = f;
    r->safe_len = r->text_len;
    r->done = true;
    req_unref_locked(r);
    s->req = NULL;
    e->st.active--;
}

/* Takes queued requests into free slots (lock held). */
static void admit(serve_engine *e)
{
    for (int i = 0; i < e->opts.slots && e->q_len > 0; i++) {
        slot *s = &e->slots[i];
        if (s->req)
            continue;
        serve_req *r = NULL;
        while (!r && e->q_len > 0) {
            r = e->queue[e->q_head];
            e->q_head = (e->q_head + 1) % e->opts.queue;
            e->q_len--;
            if (r->cancelled) {
                r->finish = SERVE_FINISH_ERROR;
                r->done = true;
                req_unref_locked(r);
                r = NULL;
            }
        }
        if (!r)
            break;
        sm_err err = {0};
        sm_sampler_free(&s->sampler);
        sm_detok_stream_free(&s->ds);
        if (sm_seq_truncate(s->seq, 0, &err) ||
            sm_sampler_new(&r->sampling, e->vocab, &s->sampler, &err) ||
            sm_detok_stream_new(e->tok, &s->ds, &err)) {
            snprintf(r->error, sizeof r->error, "%s", err.msg);
            r->finish = SERVE_FINISH_ERROR;
            r->done = true;
            req_unref_locked(r);
            continue;
        }
        s->req = r;
        s->fed = 0;
        s->max_stop = 0;
        for (size_t k = 0; k < r->n_stops; k++)
            if (strlen(r->stops[k]) > s->max_stop)
                s->max_stop = strlen(r->stops[k]);
        e->st.active++;
        e->st.prompt_tokens += r->n_prompt;
    }
    e->st.queued = e->q_len;
    if (e->st.active > e->st.active_max)
        e->st.active_max = e->st.active;
}

static bool is_eos(const serve_engine *e, int32_t id)
{
    for (int i = 0; i < e->n_eos; i++)
        if (e->eos[i] == id)
            return true;
    return false;
}

/* The log-softmax of the sampled id and the n_top most likely ids into t. */
static void logprobs(const float *lg, int64_t vocab, int n_top, serve_tok *t)
{
    float mx = lg[0];
    for (int64_t v = 1; v < vocab; v++)
        mx = lg[v] > mx ? lg[v] : mx;
    double sum = 0;
    for (int64_t v = 0; v < vocab; v++)
        sum += exp((double)(lg[v] - mx));
    double lse = (double)mx + log(sum);
    t->logprob = (float)((double)lg[t->id] - lse);
    t->n_top = 0;
    for (int64_t v = 0; v < vocab; v++) {
        int k = t->n_top;
        if (k == n_top && (k == 0 || lg[v] <= lg[t->top_id[k - 1]]))
            continue;
        if (k == n_top)
            k--;
        while (k > 0 && lg[t->top_id[k - 1]] < lg[v]) {
            t->top_id[k] = t->top_id[k - 1];
            k--;
        }
        t->top_id[k] = (int32_t)v;
        if (t->n_top < n_top)
            t->n_top++;
    }
    for (int k = 0; k < t->n_top; k++)
        t->top_lp[k] = (float)((double)lg[t->top_id[k]] - lse);
}

static int append_text(serve_req *r, const char *p, size_t n)
{
    if (r->text_len + n + 1 > r->text_cap) {
        size_t cap = 2 * (r->text_len + n + 1);
        char *q = realloc(r->text, cap);
        if (!q)
            return -1;
        r->text = q;
        r->text_cap = cap;
    }
    memcpy(r->text + r->text_len, p, n);
    r->text_len += n;
    r->text[r->text_len] = '\0';
    return 0;
}

/* Bytes at the end of text that could still begin a stop string (held back from streaming). */
/* The stop string that matched at text offset at (the longest, when several begin there). */
static int stop_at(const serve_req *r, size_t at)
{
    int best = -1;
    for (size_t i = 0; i < r->n_stops; i++) {
        size_t n = strlen(r->stops[i]);
        if (at + n <= r->text_len && memcmp(r->text + at, r->stops[i], n) == 0 &&
            (best < 0 || n > strlen(r->stops[best])))
            best = (int)i;
    }
    return best;
}

static size_t held_back(const serve_req *r, size_t max_stop)
{
    size_t lim = max_stop ? max_stop - 1 : 0;
    for (size_t k = lim < r->text_len ? lim : r->text_len; k > 0; k--)
        for (size_t i = 0; i < r->n_stops; i++)
            if (strlen(r->stops[i]) > k && memcmp(r->text + r->text_len - k, r->stops[i], k) == 0)
                return k;
    return 0;
}

/* Samples the next token of slot s from its logits row and publishes it (lock held). */
static sm_code sample_slot(serve_engine *e, slot *s, const float *lg, sm_err *err)
{
    serve_req *r = s->req;
    int32_t id;
    size_t n_hist = r->n_prompt + r->n_gen;
    sm_code rc = sm_sampler_sample(s->sampler, lg, r->ids, n_hist, &id, err);
    if (rc)
        return rc;
    r->ids[n_hist] = id;
    r->n_gen++;
    e->st.generated_tokens++;
    if (r->n_gen == 1)
        r->t_first = serve_now();
    if (!r->ignore_eos && is_eos(e, id)) {
        char buf[SM_DETOK_STREAM_MIN_CAP];
        size_t bl = 0;
        if (sm_detok_stream_flush(s->ds, buf, sizeof buf, &bl, err) == SM_OK && bl)
            append_text(r, buf, bl);
        r->eos_id = id;
        slot_finish(e, s, SERVE_FINISH_STOP, NULL);
        return SM_OK;
    }
    serve_tok *t = &r->toks[r->n_toks++];
    t->id = id;
    t->text_offset = r->text_len;
    if (r->logprobs >= 0)
        logprobs(lg, e->vocab, r->logprobs, t);
    char buf[2 * SM_DETOK_STREAM_MIN_CAP]; /* a token, then the flushed tail */
    size_t bl = 0, from = r->text_len > s->max_stop ? r->text_len - s->max_stop : 0;
    rc = sm_detok_stream_push(s->ds, id, buf, sizeof buf, &bl, err);
    bool last = r->n_gen >= (size_t)r->max_tokens;
    size_t bl2 = 0;
    if (rc == SM_OK && last)
        rc = sm_detok_stream_flush(s->ds, buf + bl, sizeof buf - bl, &bl2, err);
    if (rc)
        return rc;
    if (append_text(r, buf, bl + bl2))
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    int64_t at = r->n_stops ? sm_stop_find(r->text, r->text_len, from,
                                           (const char *const *)r->stops, r->n_stops)
                            : -1;
    if (at >= 0) {
        r->stop_index = stop_at(r, (size_t)at);
        r->text_len = (size_t)at;
        r->text[at] = '\0';
        while (r->n_toks > 0 && r->toks[r->n_toks - 1].text_offset >= (size_t)at)
            r->n_toks--;
        slot_finish(e, s, SERVE_FINISH_STOP, NULL);
    } else if (last) {
        slot_finish(e, s, SERVE_FINISH_LENGTH, NULL);
    } else {
        r->safe_len = r->text_len - held_back(r, s->max_stop);
    }
    return SM_OK;
}

/* Gathers the step's batch (lock held); returns its size and whether it must be deterministic. */
static int gather(serve_engine *e, bool *det)
{
    int n = 0;
    *det = false;
    for (int i = 0; i < e->opts.slots; i++) {
        slot *s = &e->slots[i];
        if (s->req && s->req->cancelled)
            slot_finish(e, s, SERVE_FINISH_ERROR, "cancelled");
        if (!s->req)
            continue;
        serve_req *r = s->req;
        size_t have = r->n_prompt + r->n_gen;
        int64_t left = (int64_t)(have - s->fed);
        s->n_feed = left > e->opts.chunk ? e->opts.chunk : left;
        e->b_seqs[n] = s->seq;
        e->b_toks[n] = r->ids + s->fed;
        e->b_n[n] = s->n_feed;
        e->b_slot[n] = i;
        *det = *det || r->deterministic;
        n++;
    }
    return n;
}

/* One step over the busy slots; the lock is held on entry and on return. */
static void step(serve_engine *e)
{
    bool det;
    int n = gather(e, &det);
    if (n == 0)
        return;
    pthread_mutex_unlock(&e->lock);
    sm_err err = {0};
    sm_model_set_fast(e->model, !det);
    sm_code rc = sm_model_forward(e->model, e->b_seqs, e->b_toks, e->b_n, n, e->logits, &err);
    pthread_mutex_lock(&e->lock);
    e->st.steps++;
    e->st.step_seqs += (uint64_t)n;
    if (n > 1)
        e->st.batched_steps++;
    for (int b = 0; b < n; b++) {
        slot *s = &e->slots[e->b_slot[b]];
        if (rc) {
            slot_finish(e, s, SERVE_FINISH_ERROR, err.msg);
            continue;
        }
        s->fed += (size_t)s->n_feed;
        if (s->fed < s->req->n_prompt + s->req->n_gen)
            continue; /* more of the prompt to read */
        sm_err e2 = {0};
        if (sample_slot(e, s, e->logits + (size_t)b * (size_t)e->vocab, &e2) != SM_OK && s->req)
            slot_finish(e, s, SERVE_FINISH_ERROR, e2.msg);
    }
    pthread_cond_broadcast(&e->progress);
}

static void *engine_main(void *arg)
{
    serve_engine *e = arg;
    pthread_mutex_lock(&e->lock);
    while (!e->stopping) {
        admit(e);
        if (e->st.active == 0) {
            pthread_cond_wait(&e->wake, &e->lock);
            continue;
        }
        step(e);
    }
    for (int i = 0; i < e->opts.slots; i++)
        if (e->slots[i].req)
            slot_finish(e, &e->slots[i], SERVE_FINISH_ERROR, "the server is shutting down");
    while (e->q_len > 0) {
        serve_req *r = e->queue[e->q_head];
        e->q_head = (e->q_head + 1) % e->opts.queue;
        e->q_len--;
        snprintf(r->error, sizeof r->error, "the server is shutting down");
        r->finish = SERVE_FINISH_ERROR;
        r->done = true;
        req_unref_locked(r);
    }
    pthread_cond_broadcast(&e->progress);
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

static void add_eos(serve_engine *e, int32_t id)
{
    if (id < 0 || e->n_eos >= MAX_EOS || is_eos(e, id))
        return;
    e->eos[e->n_eos++] = id;
}

static sm_code engine_alloc(serve_engine *e, sm_err *err)
{
    int n = e->opts.slots;
    e->slots = calloc((size_t)n, sizeof *e->slots);
    e->logits = malloc((size_t)n * (size_t)e->vocab * sizeof *e->logits);
    e->b_seqs = calloc((size_t)n, sizeof *e->b_seqs);
    e->b_toks = calloc((size_t)n, sizeof *e->b_toks);
    e->b_n = calloc((size_t)n, sizeof *e->b_n);
    e->b_slot = calloc((size_t)n, sizeof *e->b_slot);
    e->queue = calloc((size_t)e->opts.queue, sizeof *e->queue);
    if (!e->slots || !e->logits || !e->b_seqs || !e->b_toks || !e->b_n || !e->b_slot || !e->queue)
        return sm_err_set(err, SM_ENOMEM, "out of memory for %d slots", n);
    for (int i = 0; i < n; i++) {
        sm_code rc = sm_seq_new(e->model, e->opts.ctx, &e->slots[i].seq, err);
        if (rc)
            return rc;
    }
    return SM_OK;
}

sm_code serve_engine_new(sm_model *model, sm_tokenizer *tok, const serve_opts *opts,
                         serve_engine **out, sm_err *err)
{
    serve_engine *e = calloc(1, sizeof *e);
    if (!e) {
        sm_model_free(&model);
        sm_tokenizer_free(&tok);
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    e->model = model;
    e->tok = tok;
    e->opts = *opts;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->wake, NULL);
    pthread_cond_init(&e->progress, NULL);
    const sm_model_config *c = &sm_model_info(model)->config;
    e->vocab = c->vocab;
    for (int i = 0; i < c->n_eos; i++)
        add_eos(e, c->eos_ids[i]);
    add_eos(e, sm_tokenizer_eos_id(tok));
    add_eos(e, sm_tokenizer_token_id(tok, "<|im_end|>"));
    add_eos(e, sm_tokenizer_token_id(tok, "<|endoftext|>"));
    sm_code rc = engine_alloc(e, err);
    if (rc == SM_OK && pthread_create(&e->thread, NULL, engine_main, e) != 0)
        rc = sm_err_set(err, SM_EINTERNAL, "cannot start the generation thread");
    e->started = rc == SM_OK;
    if (rc) {
        serve_engine_free(&e);
        return rc;
    }
    *out = e;
    return SM_OK;
}

void serve_engine_shutdown(serve_engine *e)
{
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    pthread_cond_signal(&e->wake);
    pthread_cond_broadcast(&e->progress);
    pthread_mutex_unlock(&e->lock);
    if (e->started)
        pthread_join(e->thread, NULL);
    e->started = false;
}

void serve_engine_free(serve_engine **ep)
{
    serve_engine *e = *ep;
    if (!e)
        return;
    serve_engine_shutdown(e);
    for (int i = 0; e->slots && i < e->opts.slots; i++) {
        sm_seq_free(&e->slots[i].seq);
        sm_sampler_free(&e->slots[i].sampler);
        sm_detok_stream_free(&e->slots[i].ds);
    }
    free(e->slots);
    free(e->logits);
    free(e->b_seqs);
    free(e->b_toks);
    free(e->b_n);
    free(e->b_slot);
    free(e->queue);
    sm_model_free(&e->model);
    sm_tokenizer_free(&e->tok);
    pthread_cond_destroy(&e->wake);
    pthread_cond_destroy(&e->progress);
    pthread_mutex_destroy(&e->lock);
    free(e);
    *ep = NULL;
}

/* Whether the engine is shutting down (lock held). */
bool serve_engine_stopping(const serve_engine *e)
{
    return e->stopping;
}
