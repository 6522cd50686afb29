/* sm_gen_remote: the remote generation backend (sm_gen.h): each task phase becomes one
 * /v1/completions request to an OpenAI-compatible server with the prompt as token ids, the
 * job's sampling and seed, max_tokens and the stop strings; the HTTP thread (sm_gen_http.c)
 * sends them, and sm_gen_step hands the answers to the callback on the engine thread. A
 * continuation (the repair request) is a new request whose prompt is the old one, the
 * generated text (encoded again) and the continuation's ids. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "sm_gen_remote.h"

typedef struct sm_rfail {
    void *user;
    char msg[256];
    struct sm_rfail *next;
} sm_rfail;

void sm_rreq_free(sm_rreq *q)
{
    if (!q)
        return;
    free(q->ids);
    for (char **s = q->stops; s && *s; s++)
        free(*s);
    free(q->stops);
    free(q->body);
    free(q->resp);
    free(q);
}

static sm_code append_ids(sm_rreq *q, const int32_t *ids, size_t n, sm_err *err)
{
    if (q->n_ids + n > q->cap) {
        size_t cap = q->cap ? q->cap : 1024;
        while (cap < q->n_ids + n)
            cap *= 2;
        int32_t *p = realloc(q->ids, cap * sizeof *p);
        if (!p)
            return sm_err_set(err, SM_ENOMEM, "out of memory");
        q->ids = p;
        q->cap = cap;
    }
    memcpy(q->ids + q->n_ids, ids, n * sizeof *ids);
    q->n_ids += n;
    return SM_OK;
}

/* The request JSON of q's next phase. */
static sm_code build_body(const sm_remote *R, sm_rreq *q, sm_err *err)
{
    json_t *ids = json_array(), *stop = json_array();
    json_t *b = json_object();
    for (size_t i = 0; ids && i < q->n_ids; i++)
        json_array_append_new(ids, json_integer(q->ids[i]));
    for (char **s = q->stops; stop && s && *s; s++)
        json_array_append_new(stop, json_string(*s));
    if (b && R->model[0])
        json_object_set_new(b, "model", json_string(R->model));
    if (b && ids && stop) {
        json_object_set_new(b, "prompt", ids);
        json_object_set_new(b, "max_tokens", json_integer(q->max_new));
        json_object_set_new(b, "temperature", json_real(q->sp.temperature));
        json_object_set_new(b, "top_p", json_real(q->sp.top_p));
        json_object_set_new(b, "seed", json_integer((json_int_t)(q->sp.seed & INT64_MAX)));
        json_object_set_new(b, "stop", stop);
        /* keep the stop string in the text (vLLM; SGLang's name); others ignore these */
        json_object_set_new(b, "include_stop_str_in_output", json_true());
        json_object_set_new(b, "no_stop_trim", json_true());
        if (q->sp.top_k > 0)
            json_object_set_new(b, "top_k", json_integer(q->sp.top_k));
        if (q->sp.min_p > 0)
            json_object_set_new(b, "min_p", json_real(q->sp.min_p));
        if (q->sp.repeat_penalty != 1.0)
            json_object_set_new(b, "repetition_penalty", json_real(q->sp.repeat_penalty));
        ids = stop = NULL;
    }
    json_decref(ids);
    json_decref(stop);
    free(q->body);
    q->body = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    return q->body ? SM_OK : sm_err_set(err, SM_ENOMEM, "out of memory");
}

static void enqueue(sm_remote *R, sm_rreq *q)
{
    q->state = SM_R_WAITING;
    q->attempt = 0;
    q->not_before_ms = 0;
    pthread_mutex_lock(&R->mu);
    sm_rreq **pp = &R->reqs; /* FIFO: at the end */
    while (*pp)
        pp = &(*pp)->next;
    q->next = NULL;
    *pp = q;
    pthread_mutex_unlock(&R->mu);
    sm_remote_wake(R);
}

static sm_code remote_submit(void *impl, const sm_task_spec *spec, sm_err *err)
{
    sm_remote *R = impl;
    if (spec->n_prompt == 0 || spec->max_new < 1)
        return sm_err_set(err, SM_EINVAL, "a task needs a prompt and max_new >= 1");
    sm_rreq *q = calloc(1, sizeof *q);
    size_t ns = 0;
    while (spec->stops && spec->stops[ns])
        ns++;
    if (q)
        q->stops = calloc(ns + 1, sizeof *q->stops);
    sm_code rc = q && q->stops ? SM_OK : sm_err_set(err, SM_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < ns; i++)
        if (!(q->stops[i] = strdup(spec->stops[i])))
            rc = sm_err_set(err, SM_ENOMEM, "out of memory");
    if (!rc)
        rc = append_ids(q, spec->prompt, spec->n_prompt, err);
    if (!rc) {
        q->user = spec->user;
        q->tag = spec->tag;
        q->sp = spec->sampling;
        q->max_new = spec->max_new;
        rc = build_body(R, q, err);
    }
    if (rc) {
        sm_rreq_free(q);
        return rc;
    }
    enqueue(R, q);
    return SM_OK;
}

static int remote_cancel(void *impl, void *user)
{
    sm_remote *R = impl;
    int n = 0;
    pthread_mutex_lock(&R->mu);
    for (sm_rreq **pp = &R->reqs; *pp;) {
        sm_rreq *q = *pp;
        if (q->user != user || q->cancelled) {
            pp = &q->next;
            continue;
        }
        n++;
        if (q->state == SM_R_FLIGHT) { /* the HTTP thread ends the transfer and frees it */
            q->cancelled = true;
            pp = &q->next;
        } else {
            *pp = q->next;
            sm_rreq_free(q);
        }
    }
    pthread_mutex_unlock(&R->mu);
    sm_remote_wake(R);
    return n;
}

static int64_t remote_user_tokens(const void *impl, const void *user)
{
    sm_remote *R = (sm_remote *)impl;
    int64_t n = 0;
    pthread_mutex_lock(&R->mu);
    for (const sm_rreq *q = R->reqs; q; q = q->next)
        if (q->user == user && !q->cancelled)
            n += q->total_tokens;
    pthread_mutex_unlock(&R->mu);
    return n;
}

static bool remote_take_failed(void *impl, void **user, char *msg, size_t n)
{
    sm_remote *R = impl;
    sm_rfail *f = R->failed;
    if (!f)
        return false;
    R->failed = f->next;
    *user = f->user;
    snprintf(msg, n, "%s", f->msg);
    free(f);
    return true;
}

static void remote_stats(const void *impl, sm_gen_stats *st)
{
    sm_remote *R = (sm_remote *)impl;
    pthread_mutex_lock(&R->mu);
    st->generated_tokens = R->generated;
    st->prompt_tokens = R->prompt;
    st->requests = R->requests;
    st->retries = R->retried;
    st->failures = R->failures;
    st->running = R->inflight;
    pthread_mutex_unlock(&R->mu);
}

/* A parsed answer. */
typedef struct answer {
    json_t *root;
    const char *text, *model, *fingerprint;
    sm_finish finish;
    int64_t completion, prompt;
} answer;

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return b > 0 && a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* How the phase ended, and the stop string to put back at the end of the text (NULL: none).
 * Servers that trim it say which one in stop_reason (vLLM, stepmark-engine serve) or
 * matched_stop (SGLang); servers that name no reason at all are taken to have stopped at it. */
static sm_finish finish_of(const sm_rreq *q, const json_t *choice, const char *text,
                           const char **put_back)
{
    *put_back = NULL;
    const char *fr = json_string_value(json_object_get(choice, "finish_reason"));
    if (!fr || strcmp(fr, "stop") != 0)
        return SM_FINISH_LENGTH;
    for (char **s = q->stops; s && *s; s++)
        if (ends_with(text, *s))
            return SM_FINISH_STOP;
    const json_t *why = json_object_get(choice, "stop_reason");
    if (!why)
        why = json_object_get(choice, "matched_stop");
    if (json_is_string(why)) {
        for (char **s = q->stops; s && *s; s++)
            if (!strcmp(json_string_value(why), *s))
                *put_back = *s;
        return *put_back ? SM_FINISH_STOP : SM_FINISH_EOS;
    }
    if (why) /* a token id or null: the end-of-sequence token */
        return SM_FINISH_EOS;
    *put_back = q->stops && q->stops[0] ? q->stops[0] : NULL;
    return *put_back ? SM_FINISH_STOP : SM_FINISH_EOS;
}

static sm_code parse_answer(const sm_rreq *q, answer *a, char **text, sm_err *err)
{
    json_error_t je;
    a->root = json_loads(q->resp ? q->resp : "", 0, &je);
    if (q->status != 200) {
        const char *m =
            json_string_value(json_object_get(json_object_get(a->root, "error"), "message"));
        return sm_err_set(err, SM_EIO, "the server answered HTTP %ld: %.200s", q->status,
                          m ? m : (q->resp ? q->resp : ""));
    }
    const json_t *choice = json_array_get(json_object_get(a->root, "choices"), 0);
    const char *t = json_string_value(json_object_get(choice, "text"));
    if (!t)
        return sm_err_set(err, SM_EIO, "the server's answer has no choices[0].text");
    const json_t *u = json_object_get(a->root, "usage");
    a->completion = json_integer_value(json_object_get(u, "completion_tokens"));
    a->prompt = json_integer_value(json_object_get(u, "prompt_tokens"));
    a->model = json_string_value(json_object_get(a->root, "model"));
    a->fingerprint = json_string_value(json_object_get(a->root, "system_fingerprint"));
    const char *put_back = NULL;
    a->finish = finish_of(q, choice, t, &put_back);
    size_t n = strlen(t), m = put_back ? strlen(put_back) : 0;
    if (!(*text = malloc(n + m + 1)))
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    memcpy(*text, t, n);
    memcpy(*text + n, put_back ? put_back : "", m + 1);
    a->text = *text;
    return SM_OK;
}

/* The next phase of q: the generated text (encoded again) and the continuation's ids. */
static sm_code continue_req(sm_remote *R, sm_rreq *q, const char *text, sm_gen_next *next,
                            sm_err *err)
{
    int32_t *gen = NULL;
    size_t ng = 0;
    sm_code rc = sm_tokenizer_encode(R->tok, text, strlen(text), false, &gen, &ng, err);
    if (!rc)
        rc = append_ids(q, gen, ng, err);
    free(gen);
    if (!rc)
        rc = append_ids(q, next->ids, next->n, err);
    q->max_new = next->max_new;
    if (!rc)
        rc = build_body(R, q, err);
    return rc;
}

/* Records that user's job failed; its other requests are dropped. */
static void fail_user(sm_remote *R, void *user, const char *msg)
{
    sm_rfail *f = calloc(1, sizeof *f);
    if (f) {
        f->user = user;
        snprintf(f->msg, sizeof f->msg, "remote generation failed: %s", msg);
        f->next = R->failed;
        R->failed = f;
    }
    pthread_mutex_lock(&R->mu);
    R->failures++;
    pthread_mutex_unlock(&R->mu);
    remote_cancel(R, user);
}

static bool user_failed(const sm_remote *R, const void *user)
{
    for (const sm_rfail *f = R->failed; f; f = f->next)
        if (f->user == user)
            return true;
    return false;
}

/* One answered request: the callback, then its next phase or its end. Takes q over. */
static sm_code deliver(sm_remote *R, sm_rreq *q, sm_err *err)
{
    answer a = {0};
    char *text = NULL;
    sm_err e;
    if (q->error[0] || parse_answer(q, &a, &text, &e)) {
        fail_user(R, q->user, q->error[0] ? q->error : e.msg);
        json_decref(a.root);
        sm_rreq_free(q);
        return SM_OK;
    }
    q->total_tokens += a.completion;
    q->prompt_tokens += a.prompt;
    pthread_mutex_lock(&R->mu);
    R->generated += a.completion;
    R->prompt += a.prompt;
    pthread_mutex_unlock(&R->mu);
    sm_gen_result r = {.tag = q->tag,
                       .finish = a.finish,
                       .text = a.text,
                       .phase_tokens = a.completion,
                       .total_tokens = q->total_tokens,
                       .prompt_tokens = q->prompt_tokens,
                       .server_model = a.model ? a.model : "",
                       .fingerprint = a.fingerprint ? a.fingerprint : ""};
    sm_gen_next next = {0};
    sm_code rc = R->done(q->user, &r, &next, err);
    if (!rc && next.ids)
        rc = continue_req(R, q, a.text, &next, err);
    if (!rc && next.ids)
        enqueue(R, q);
    else
        sm_rreq_free(q);
    free(next.ids);
    free(text);
    json_decref(a.root);
    return rc;
}

static sm_code remote_step(void *impl, bool *progressed, sm_err *err)
{
    sm_remote *R = impl;
    sm_rreq *ready = NULL, **tail = &ready;
    pthread_mutex_lock(&R->mu);
    bool any = false;
    for (const sm_rreq *q = R->reqs; q && !any; q = q->next)
        any = q->state == SM_R_DONE;
    if (!any) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&R->cv, &R->mu, &ts);
    }
    for (sm_rreq **pp = &R->reqs; *pp;) { /* take the answered ones, in order */
        sm_rreq *q = *pp;
        if (q->state != SM_R_DONE) {
            pp = &q->next;
            continue;
        }
        *pp = q->next;
        q->next = NULL;
        *tail = q;
        tail = &q->next;
    }
    pthread_mutex_unlock(&R->mu);
    *progressed = ready != NULL;
    sm_code rc = SM_OK;
    while (ready) {
        sm_rreq *q = ready;
        ready = q->next;
        q->next = NULL;
        if (rc || user_failed(R, q->user))
            sm_rreq_free(q);
        else
            rc = deliver(R, q, err);
    }
    return rc;
}

static void remote_free(void *impl)
{
    sm_remote *R = impl;
    if (!R)
        return;
    if (R->have_th) {
        pthread_mutex_lock(&R->mu);
        R->quit = true;
        pthread_mutex_unlock(&R->mu);
        sm_remote_wake(R);
        pthread_join(R->th, NULL);
    }
    for (sm_rreq *q = R->reqs, *nx; q; q = nx) {
        nx = q->next;
        sm_rreq_free(q);
    }
    for (sm_rfail *f = R->failed, *nx; f; f = nx) {
        nx = f->next;
        free(f);
    }
    if (R->multi)
        curl_multi_cleanup(R->multi);
    pthread_cond_destroy(&R->cv);
    pthread_mutex_destroy(&R->mu);
    memset(R->auth, 0, sizeof R->auth);
    free(R);
}

static const sm_gen_ops remote_ops = {remote_submit,      remote_step,        remote_cancel,
                                      remote_user_tokens, remote_take_failed, remote_stats,
                                      remote_free};

/* The API key from path: a regular file of this user (or root) that group and others cannot
 * read, as for every secret (docs/security.md); its first line, trimmed. */
static sm_code read_key(const char *path, char *out, size_t n, sm_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sm_err_set(err, SM_EIO, "cannot open worker.remote.api_key_file %s: %s", path,
                          strerror(errno));
    struct stat st;
    sm_code rc = SM_OK;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = sm_err_set(err, SM_ECONFIG, "worker.remote.api_key_file %s is not a regular file",
                        path);
    else if (st.st_uid != geteuid() && st.st_uid != 0)
        rc = sm_err_set(err, SM_ECONFIG,
                        "worker.remote.api_key_file %s is owned by uid %u, not by this user", path,
                        (unsigned)st.st_uid);
    else if (st.st_mode & (S_IRWXG | S_IRWXO))
        rc = sm_err_set(err, SM_ECONFIG,
                        "worker.remote.api_key_file %s is accessible by group or others "
                        "(mode %04o): run chmod 600 %s",
                        path, (unsigned)(st.st_mode & 07777), path);
    ssize_t len = rc ? 0 : read(fd, out, n - 1);
    close(fd);
    if (!rc && len < 0)
        rc = sm_err_set(err, SM_EIO, "cannot read %s: %s", path, strerror(errno));
    if (rc)
        return rc;
    out[len] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    if (!out[0] || strspn(out, " \t") == strlen(out))
        return sm_err_set(err, SM_ECONFIG, "worker.remote.api_key_file %s is empty", path);
    return SM_OK;
}

static sm_code remote_init(sm_remote *R, const sm_config *cfg, sm_err *err)
{
    const char *base = cfg->worker.remote.base_url;
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    if (bl == 0)
        return sm_err_set(err, SM_ECONFIG, "worker.engine is remote: set worker.remote.base_url");
    if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)
        return sm_err_set(err, SM_ECONFIG, "worker.remote.base_url %s is not http(s)://", base);
    snprintf(R->url, sizeof R->url, "%.*s/completions", (int)bl, base);
    snprintf(R->model, sizeof R->model, "%s", cfg->worker.remote.model);
    R->max_conc = (int)cfg->worker.remote.max_concurrency;
    R->timeout_ms = (long)cfg->worker.remote.timeout_ms;
    R->retries = (int)cfg->worker.remote.retries;
    if (cfg->worker.remote.api_key_file[0]) {
        char key[1024];
        sm_code rc = read_key(cfg->worker.remote.api_key_file, key, sizeof key, err);
        if (!rc)
            snprintf(R->auth, sizeof R->auth, "Authorization: Bearer %s", key);
        memset(key, 0, sizeof key);
        if (rc)
            return rc;
    }
    if (!(R->multi = curl_multi_init()))
        return sm_err_set(err, SM_ENOMEM, "curl_multi_init failed");
    curl_multi_setopt(R->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)R->max_conc);
    return SM_OK;
}

sm_code sm_gen_remote_new(const sm_config *cfg, const sm_tokenizer *tok, sm_gen_done_fn done,
                          sm_gen_backend *out, sm_err *err)
{
    sm_remote *R = calloc(1, sizeof *R);
    if (!R)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    pthread_mutex_init(&R->mu, NULL);
    pthread_cond_init(&R->cv, NULL);
    R->tok = tok;
    R->done = done;
    sm_code rc = remote_init(R, cfg, err);
    if (!rc && !(R->have_th = pthread_create(&R->th, NULL, sm_remote_http_main, R) == 0))
        rc = sm_err_set(err, SM_EINTERNAL, "cannot start the HTTP thread");
    if (rc) {
        remote_free(R);
        return rc;
    }
    *out = (sm_gen_backend){&remote_ops, R};
    return SM_OK;
}
