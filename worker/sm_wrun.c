/* sm_wrun: the running worker: connection, preparation and engine threads (see sm_wrun.h). */
#include "sm_wrun.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sm_curve.h"
#include "sm_gen.h"
#include "sm_gen_cuda.h"
#include "sm_grade.h"
#include "sm_log.h"
#include "sm_modelid.h"
#include "sm_proto.h"
#include "sm_wmetrics.h"

#ifndef SM_VERSION
#define SM_VERSION "0"
#endif

/* A message between threads: a JOB body (connection -> preparation), a prepared job
 * (preparation -> engine), a CANCEL (-> engine), or a reply (-> connection). */
typedef enum { IT_JOB, IT_READY_JOB, IT_CANCEL, IT_RESULT, IT_FAIL, IT_PROGRESS } item_kind;

typedef struct item {
    item_kind kind;
    int64_t job_id;
    json_t *body;
    sm_job *job;
    struct item *next;
} item;

typedef struct queue {
    item *head, *tail;
} queue;

static void q_push(queue *q, item *it)
{
    it->next = NULL;
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
}

static item *q_pop(queue *q)
{
    item *it = q->head;
    if (it) {
        q->head = it->next;
        if (!q->head)
            q->tail = NULL;
    }
    return it;
}

static void item_free(item *it)
{
    if (!it)
        return;
    json_decref(it->body);
    sm_job_free(&it->job);
    free(it);
}

typedef struct wctx {
    const sm_config *cfg;
    sm_model *model;
    sm_dev_model *cuda; /* worker.device cuda: the model on the GPU, until the backend takes it */
    sm_tokenizer *tok;
    sm_prompt_set *prompts;
    sm_sandbox_limits sandbox;
    sm_grader g;
    char model_name[256];
    char model_hash[SM_SHA256_HEX];
    char engine_version[128];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    queue prep, engine, out;
    bool quit;
    int efd;            /* wakes the connection thread when `out` has items */
    bool remote;        /* worker.engine: remote (no model loaded, only its tokenizer) */
    int slots;          /* the job credit announced in READY */
    sm_gen_backend gen; /* the engine thread's; made before it starts */
} wctx;

static item *new_item(item_kind k, int64_t id, json_t *body)
{
    item *it = calloc(1, sizeof *it);
    if (it) {
        it->kind = k;
        it->job_id = id;
        it->body = body;
    } else {
        json_decref(body);
    }
    return it;
}

static void post_out(wctx *w, item *it)
{
    if (!it)
        return;
    pthread_mutex_lock(&w->mu);
    q_push(&w->out, it);
    pthread_mutex_unlock(&w->mu);
    uint64_t one = 1;
    if (write(w->efd, &one, sizeof one) < 0)
        sm_logf(SM_LOG_WARN, "eventfd write: %s", strerror(errno));
}

static void post_fail(wctx *w, int64_t id, const char *msg, bool retryable)
{
    post_out(w, new_item(IT_FAIL, id,
                         json_pack("{s:I, s:s, s:b}", "job_id", (json_int_t)id, "error", msg,
                                   "retryable", retryable)));
}

/* A job the model cannot grade: its RESULT carries the checks, the flag model_unavailable
 * and, where the checks allow, a provisional score. */
static void post_unavailable(wctx *w, sm_job *job, const char *why)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)job->id);
    sm_log(SM_LOG_WARN, "the model cannot grade this job", "job", id, "error", why, NULL);
    sm_job_set_unavailable(job, why);
    json_t *res = NULL;
    sm_err err;
    if (sm_job_result(job, &res, &err) == SM_OK)
        post_out(w, new_item(IT_RESULT, job->id, res));
    else
        post_fail(w, job->id, err.msg, true);
}

/* ---- preparation thread ---- */

static void *prep_main(void *arg)
{
    wctx *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->quit && !w->prep.head)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->quit) {
            pthread_mutex_unlock(&w->mu);
            return NULL;
        }
        item *it = q_pop(&w->prep);
        pthread_mutex_unlock(&w->mu);
        sm_job *job = NULL;
        sm_err err;
        sm_code rc = sm_job_new(&w->g, it->body, &job, &err);
        if (!rc)
            rc = sm_job_run_checks(job, &err);
        bool checked = !rc;
        if (!rc)
            rc = sm_job_prepare(job, &err);
        if (rc == SM_ELIMIT && checked) {
            /* the model cannot take this submission: the checks' result, for a teacher */
            post_unavailable(w, job, err.msg);
            sm_job_free(&job);
            item_free(it);
            continue;
        }
        if (rc) {
            char id[24];
            snprintf(id, sizeof id, "%lld", (long long)it->job_id);
            sm_log(SM_LOG_WARN, "job cannot be graded", "job", id, "error", err.msg, NULL);
            post_fail(w, it->job_id, err.msg, rc == SM_ENOMEM || rc == SM_EIO);
            sm_job_free(&job);
            item_free(it);
            continue;
        }
        json_decref(it->body);
        it->body = NULL;
        it->kind = IT_READY_JOB;
        it->job = job;
        pthread_mutex_lock(&w->mu);
        q_push(&w->engine, it);
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
}

/* ---- engine thread ---- */

typedef struct running {
    sm_job *job;
    int64_t reported; /* tokens last sent in PROGRESS */
} running;

/* The engine thread's state: the backend and the jobs it is generating for. */
typedef struct engine {
    wctx *w;
    sm_gen_backend *gen; /* w->gen */
    running *run;
    int nrun, caprun;
    int64_t last_progress;
    sm_gen_stats published;
} engine;

/* Adds what the backend did since the last call to the worker's metrics. */
static void publish_gen(engine *e)
{
    sm_gen_stats st;
    sm_gen_get_stats(e->gen, &st);
    sm_wmetrics_tokens_generated((uint64_t)(st.generated_tokens - e->published.generated_tokens));
    sm_wmetrics_prompt_cache((uint64_t)(st.cache_hits - e->published.cache_hits),
                             (uint64_t)(st.cache_misses - e->published.cache_misses));
    sm_wmetrics_busy_slots(st.running);
    e->published = st;
}

static sm_code open_backend(wctx *w, sm_err *err)
{
    const sm_config *c = w->cfg;
    if (w->remote)
        return sm_gen_remote_new(c, w->tok, sm_job_task_done, &w->gen, err);
    int64_t mp =
        w->cuda ? sm_dev_config(w->cuda)->max_pos : sm_model_info(w->model)->config.max_pos;
    sm_sched_opts so = {.slots = (int)c->worker.slots,
                        .max_ctx = c->worker.max_prompt_tokens + c->worker.max_new_tokens +
                                   SM_GRADE_REPAIR_TOKENS + 256,
                        .prefix_cache = c->worker.prefix_cache};
    if (so.max_ctx > mp)
        so.max_ctx = mp;
    if (w->cuda) {
        sm_dev_model *m = w->cuda;
        w->cuda = NULL; /* the backend's now, even when it fails */
        return sm_gen_cuda_new(m, w->tok, &so, sm_job_task_done, &w->gen, err);
    }
    return sm_gen_local_new(w->model, w->tok, &so, sm_job_task_done, &w->gen, err);
}

/* Removes run[i] (the job freed, or handed on). */
static void drop_running(engine *e, int i)
{
    sm_gen_cancel(e->gen, e->run[i].job);
    sm_job_free(&e->run[i].job);
    e->run[i] = e->run[--e->nrun];
}

/* A CANCEL or a prepared job from the queue. */
static void take_item(engine *e, item *it)
{
    sm_err err;
    if (it->kind == IT_CANCEL) {
        for (int i = 0; i < e->nrun; i++)
            if (e->run[i].job->id == it->job_id)
                drop_running(e, i--);
        item_free(it);
        return;
    }
    sm_job *job = it->job;
    it->job = NULL;
    item_free(it);
    if (e->nrun == e->caprun) {
        int cap = e->caprun ? 2 * e->caprun : 16;
        running *p = realloc(e->run, (size_t)cap * sizeof *p);
        if (!p) {
            post_fail(e->w, job->id, "out of memory", true);
            sm_job_free(&job);
            return;
        }
        e->run = p;
        e->caprun = cap;
    }
    if (sm_job_submit(job, e->gen, &err)) {
        post_fail(e->w, job->id, err.msg, false);
        sm_job_free(&job);
        return;
    }
    e->run[e->nrun++] = (running){job, 0};
}

/* Jobs whose generation failed for good (the remote server after its retries): a retryable
 * FAIL, so that the broker gives them to a worker again later. */
static void fail_failed(engine *e)
{
    void *user;
    char msg[256];
    while (sm_gen_take_failed(e->gen, &user, msg, sizeof msg))
        for (int i = 0; i < e->nrun; i++)
            if (e->run[i].job == user) {
                post_fail(e->w, e->run[i].job->id, msg, true);
                drop_running(e, i);
                break;
            }
}

/* RESULTs of the complete jobs, PROGRESS (about once a second) of the others. */
static void report(engine *e)
{
    sm_err err;
    int64_t now = sm_mono_ms();
    bool progress = now - e->last_progress >= 1000;
    if (progress)
        e->last_progress = now;
    for (int i = 0; i < e->nrun; i++) {
        sm_job *job = e->run[i].job;
        if (sm_job_complete(job)) {
            json_t *res = NULL;
            if (sm_job_result(job, &res, &err) == SM_OK)
                post_out(e->w, new_item(IT_RESULT, job->id, res));
            else
                post_fail(e->w, job->id, err.msg, true);
            drop_running(e, i--);
            continue;
        }
        /* both passes' tokens: a flagged job's masked pass runs alongside its main one */
        int64_t tok = sm_gen_user_tokens(e->gen, job) + sm_job_done_tokens(job);
        if (progress && tok > e->run[i].reported) {
            e->run[i].reported = tok;
            post_out(e->w, new_item(IT_PROGRESS, job->id,
                                    json_pack("{s:I, s:I}", "job_id", (json_int_t)job->id, "tokens",
                                              (json_int_t)tok)));
        }
    }
}

static void *engine_main(void *arg)
{
    wctx *w = arg;
    engine e = {.w = w, .gen = &w->gen, .last_progress = sm_mono_ms()};
    sm_err err;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->quit && !w->engine.head && e.nrun == 0)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->quit) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        queue in = w->engine;
        w->engine.head = w->engine.tail = NULL;
        pthread_mutex_unlock(&w->mu);
        for (item *it; (it = q_pop(&in));)
            take_item(&e, it);
        bool progressed = false;
        if (e.nrun > 0 && sm_gen_step(e.gen, &progressed, &err)) {
            /* an engine failure: give every running job back to the queue */
            sm_log(SM_LOG_ERROR, "engine step failed", "error", err.msg, NULL);
            while (e.nrun > 0) {
                post_fail(w, e.run[0].job->id, err.msg, true);
                drop_running(&e, 0);
            }
            publish_gen(&e);
            continue;
        }
        fail_failed(&e);
        publish_gen(&e);
        report(&e);
    }
    while (e.nrun > 0)
        drop_running(&e, 0);
    free(e.run);
    sm_wmetrics_busy_slots(0);
    return NULL;
}

/* ---- connection ---- */

typedef struct pending {
    int64_t job_id;
    json_t *body; /* RESULT or FAIL body, resent until acknowledged */
    const char *command;
    int64_t resend_ms;
} pending;

typedef struct conn {
    wctx *w;
    void *ctx, *sock;
    char name[256];
    int64_t last_heard, last_hb, backoff_ms, reconnect_at;
    pending *p;
    int np, capp;
    int64_t *held; /* jobs received and not yet finished */
    int nheld, capheld;
} conn;

static sm_code open_sock(conn *c, sm_err *err)
{
    const sm_config *cfg = c->w->cfg;
    c->sock = zmq_socket(c->ctx, ZMQ_DEALER);
    if (!c->sock)
        return sm_err_set(err, SM_EIO, "zmq_socket: %s", zmq_strerror(errno));
    int linger = 0;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
    const sm_curve_config *cc = &cfg->worker.curve;
    if (cc->enabled) {
        char server[SM_CURVE_Z85], secret[SM_CURVE_Z85];
        sm_code rc = sm_curve_key_arg(cc->server_public_key, server, err);
        if (!rc)
            rc = sm_curve_read_secret(cc->secret_key_file, secret, err);
        if (!rc)
            rc = sm_curve_client(c->sock, server, secret, err);
        memset(secret, 0, sizeof secret);
        if (rc)
            return rc;
    } else if (!sm_endpoint_is_local(cfg->worker.broker_endpoint) && !cc->allow_insecure_remote) {
        return sm_err_set(err, SM_ECONFIG,
                          "broker %s is not on loopback: enable worker.curve "
                          "(or set worker.curve.allow_insecure_remote)",
                          cfg->worker.broker_endpoint);
    }
    if (zmq_connect(c->sock, cfg->worker.broker_endpoint) != 0)
        return sm_err_set(err, SM_EIO, "connect %s: %s", cfg->worker.broker_endpoint,
                          zmq_strerror(errno));
    return SM_OK;
}

static void send_cmd(conn *c, const char *cmd, int64_t id, const json_t *body)
{
    char ids[24] = "";
    if (id)
        snprintf(ids, sizeof ids, "%lld", (long long)id);
    sm_err err;
    if (sm_proto_send_msg(c->sock, NULL, SM_PROTO_WORKER, cmd, (const unsigned char *)ids,
                          strlen(ids), body, &err))
        sm_log(SM_LOG_WARN, "send failed", "command", cmd, "error", err.msg, NULL);
}

static void send_ready(conn *c, int slots)
{
    json_t *b =
        json_pack("{s:s, s:s, s:s, s:i}", "name", c->name, "model", c->w->model_name, "device",
                  c->w->remote ? "remote" : c->w->cfg->worker.device, "slots", slots);
    send_cmd(c, "READY", 0, b);
    json_decref(b);
}

static void held_remove(conn *c, int64_t id)
{
    for (int i = 0; i < c->nheld; i++)
        if (c->held[i] == id) {
            c->held[i] = c->held[--c->nheld];
            return;
        }
}

static bool held_has(const conn *c, int64_t id)
{
    for (int i = 0; i < c->nheld; i++)
        if (c->held[i] == id)
            return true;
    return false;
}

static void pending_add(conn *c, const char *cmd, int64_t id, json_t *body)
{
    if (c->np == c->capp) {
        int cap = c->capp ? 2 * c->capp : 16;
        pending *p = realloc(c->p, (size_t)cap * sizeof *p);
        if (!p) {
            json_decref(body);
            return;
        }
        c->p = p;
        c->capp = cap;
    }
    c->p[c->np++] = (pending){id, body, cmd, sm_mono_ms() + 2000};
    send_cmd(c, cmd, id, body);
}

static void pending_done(conn *c, int64_t id)
{
    for (int i = 0; i < c->np; i++)
        if (c->p[i].job_id == id) {
            json_decref(c->p[i].body);
            c->p[i] = c->p[--c->np];
            held_remove(c, id);
            return;
        }
}

static void to_engine(wctx *w, item *it, bool prep)
{
    pthread_mutex_lock(&w->mu);
    q_push(prep ? &w->prep : &w->engine, it);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void on_message(conn *c, bool draining)
{
    static const char *const cmds[] = {"JOB",    "HEARTBEAT",  "ACK", "ERROR",
                                       "CANCEL", "DISCONNECT", NULL};
    sm_msg m;
    sm_err err;
    while (sm_msg_recv(c->sock, &m, ZMQ_DONTWAIT, &err) == SM_OK) {
        sm_frame f[SM_PROTO_MAX_FRAMES];
        for (int i = 0; i < m.n; i++)
            f[i] = sm_msg_frame(&m, i);
        sm_request r;
        sm_code rc = sm_proto_parse(SM_PROTO_WORKER, cmds, f, m.n, m.total, 1u << 30, &r, &err);
        sm_msg_close(&m);
        c->last_heard = sm_mono_ms();
        c->backoff_ms = 250;
        if (rc) {
            sm_log(SM_LOG_WARN, "bad message from the broker", "error", err.msg, NULL);
            sm_request_clear(&r);
            continue;
        }
        char idbuf[SM_PROTO_MAX_ID + 1];
        memcpy(idbuf, r.id, r.id_len);
        idbuf[r.id_len] = '\0';
        int64_t rid = strtoll(idbuf, NULL, 10);
        switch (r.cmd) {
        case 0: { /* JOB */
            json_t *jid = json_object_get(r.body, "job_id");
            int64_t id = json_is_integer(jid) ? json_integer_value(jid) : 0;
            if (id <= 0) {
                sm_log(SM_LOG_WARN, "JOB without job_id", NULL);
                break;
            }
            if (held_has(c, id))
                break; /* already working on it (a resent JOB) */
            if (draining) {
                json_t *b = json_pack("{s:I, s:s, s:b}", "job_id", (json_int_t)id, "error",
                                      "worker is shutting down", "retryable", 1);
                send_cmd(c, "FAIL", id, b);
                json_decref(b);
                break;
            }
            if (c->nheld == c->capheld) {
                int cap = c->capheld ? 2 * c->capheld : 16;
                int64_t *p = realloc(c->held, (size_t)cap * sizeof *p);
                if (!p)
                    break;
                c->held = p;
                c->capheld = cap;
            }
            c->held[c->nheld++] = id;
            sm_wmetrics_job_received();
            char ids[24];
            snprintf(ids, sizeof ids, "%lld", (long long)id);
            sm_log(SM_LOG_INFO, "job received", "job", ids, NULL);
            item *it = new_item(IT_JOB, id, json_incref(r.body));
            if (it)
                to_engine(c->w, it, true);
            break;
        }
        case 2: /* ACK */
            pending_done(c, rid);
            break;
        case 3: { /* ERROR */
            bool retry = json_is_true(json_object_get(r.body, "retryable"));
            const char *msg = json_string_value(json_object_get(r.body, "message"));
            sm_log(SM_LOG_WARN, "broker error", "message", msg ? msg : "", NULL);
            for (int i = 0; i < c->np; i++)
                if (c->p[i].job_id == rid) {
                    if (retry)
                        c->p[i].resend_ms = sm_mono_ms() + 1000;
                    else
                        pending_done(c, rid);
                    break;
                }
            break;
        }
        case 4: { /* CANCEL */
            json_t *jid = json_object_get(r.body, "job_id");
            int64_t id = json_is_integer(jid) ? json_integer_value(jid) : rid;
            held_remove(c, id);
            item *it = new_item(IT_CANCEL, id, NULL);
            if (it)
                to_engine(c->w, it, false);
            break;
        }
        case 5: /* DISCONNECT: the broker does not know us (it restarted) */
            send_ready(c, c->w->slots);
            break;
        default: /* HEARTBEAT */
            break;
        }
        sm_request_clear(&r);
    }
}

static void drain_out(conn *c)
{
    uint64_t v;
    if (read(c->w->efd, &v, sizeof v) < 0 && errno != EAGAIN)
        sm_logf(SM_LOG_WARN, "eventfd read: %s", strerror(errno));
    pthread_mutex_lock(&c->w->mu);
    queue out = c->w->out;
    c->w->out.head = c->w->out.tail = NULL;
    pthread_mutex_unlock(&c->w->mu);
    for (item *it; (it = q_pop(&out));) {
        if (it->kind == IT_PROGRESS) {
            if (held_has(c, it->job_id))
                send_cmd(c, "PROGRESS", it->job_id, it->body);
        } else if (held_has(c, it->job_id)) {
            char ids[24];
            snprintf(ids, sizeof ids, "%lld", (long long)it->job_id);
            sm_log(SM_LOG_INFO, it->kind == IT_RESULT ? "job graded" : "job failed", "job", ids,
                   "status",
                   it->kind == IT_RESULT ? json_string_value(json_object_get(it->body, "status"))
                                         : "failed",
                   NULL);
            if (it->kind == IT_RESULT)
                sm_wmetrics_job_completed();
            else
                sm_wmetrics_job_failed();
            pending_add(c, it->kind == IT_RESULT ? "RESULT" : "FAIL", it->job_id, it->body);
            it->body = NULL;
        }
        item_free(it);
    }
}

static sm_code serve(wctx *w, volatile sig_atomic_t *stop, sm_err *err)
{
    const sm_config *cfg = w->cfg;
    conn c = {.w = w, .backoff_ms = 250};
    if (cfg->worker.name[0])
        snprintf(c.name, sizeof c.name, "%s", cfg->worker.name);
    else {
        char host[128] = "worker";
        gethostname(host, sizeof host - 1);
        snprintf(c.name, sizeof c.name, "%s-%d", host, (int)getpid());
    }
    sm_wmetrics_worker_name(c.name);
    c.ctx = zmq_ctx_new();
    sm_code rc = open_sock(&c, err);
    if (rc) {
        if (c.sock)
            zmq_close(c.sock);
        zmq_ctx_term(c.ctx);
        return rc;
    }
    int slots = w->slots;
    send_ready(&c, slots);
    sm_log(SM_LOG_INFO, "worker ready", "worker", c.name, "broker", cfg->worker.broker_endpoint,
           "model", w->model_name, NULL);
    c.last_heard = c.last_hb = sm_mono_ms();
    bool draining = false;
    while (*stop < 2) {
        if (*stop == 1 && !draining) {
            draining = true;
            sm_log(SM_LOG_INFO, "draining: finishing the jobs in progress", NULL);
        }
        if (draining && c.nheld == 0 && c.np == 0)
            break;
        zmq_pollitem_t it[2] = {{c.sock, 0, ZMQ_POLLIN, 0}, {NULL, w->efd, ZMQ_POLLIN, 0}};
        if (zmq_poll(it, 2, 100) < 0 && errno != EINTR)
            break;
        if (it[0].revents & ZMQ_POLLIN)
            on_message(&c, draining);
        if (it[1].revents & ZMQ_POLLIN)
            drain_out(&c);
        int64_t now = sm_mono_ms();
        for (int i = 0; i < c.np; i++)
            if (now >= c.p[i].resend_ms) {
                send_cmd(&c, c.p[i].command, c.p[i].job_id, c.p[i].body);
                c.p[i].resend_ms = now + 2000;
            }
        if (now - c.last_hb >= cfg->broker.heartbeat_ms) {
            send_cmd(&c, "HEARTBEAT", 0, NULL);
            c.last_hb = now;
        }
        if (now - c.last_heard > cfg->broker.heartbeat_timeout_ms && now >= c.reconnect_at) {
            /* the broker went silent: a fresh socket, READY again, results resent */
            sm_logf(SM_LOG_WARN, "broker silent for %lld ms; reconnecting (backoff %lld ms)",
                    (long long)(now - c.last_heard), (long long)c.backoff_ms);
            zmq_close(c.sock);
            c.sock = NULL;
            if ((rc = open_sock(&c, err)))
                break;
            send_ready(&c, slots);
            for (int i = 0; i < c.np; i++)
                c.p[i].resend_ms = now;
            c.reconnect_at = now + c.backoff_ms;
            c.backoff_ms = c.backoff_ms * 2 > 8000 ? 8000 : c.backoff_ms * 2;
        }
    }
    if (c.sock) {
        send_cmd(&c, "DISCONNECT", 0, NULL);
        zmq_close(c.sock);
    }
    zmq_ctx_term(c.ctx);
    for (int i = 0; i < c.np; i++)
        json_decref(c.p[i].body);
    free(c.p);
    free(c.held);
    return rc;
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void sm_wrun_engine_version(const void *summary, char *out, size_t n)
{
    const sm_model_summary *s = summary;
    snprintf(out, n, "%s+%s+%s+%s+kv%s+t%d", SM_VERSION, sm_isa_name(s->isa),
             s->deterministic ? "det" : "fast", sm_dtype_name(s->weight_dtype),
             sm_dtype_name(s->kv_dtype), s->threads);
}

/* worker.device cuda: the model on the GPU through the CUDA plugin (sm_gen_cuda.h). */
static sm_code load_cuda(wctx *w, sm_err *err)
{
    const sm_config *cfg = w->cfg;
    sm_code rc = sm_modelid_compute(cfg->worker.model, w->model_name, sizeof w->model_name,
                                    w->model_hash, err);
    int64_t load_start_us = mono_us();
    if (!rc)
        rc = sm_gen_cuda_load(cfg, &w->cuda, w->engine_version, sizeof w->engine_version, err);
    char dir[1024];
    if (!rc) {
        sm_dev_dir(w->cuda, dir, sizeof dir);
        rc = sm_tokenizer_load(dir, &w->tok, err);
    }
    if (rc)
        return rc;
    sm_wmetrics_model_loaded((double)(mono_us() - load_start_us) / 1e6, w->model_name);
    w->slots = (int)cfg->worker.slots;
    return SM_OK;
}

/* The local engine: the model and its tokenizer, and the identity recorded with results. */
static sm_code load_local(wctx *w, sm_err *err)
{
    const sm_config *cfg = w->cfg;
    if (strcmp(cfg->worker.device, "cuda") == 0)
        return load_cuda(w, err);
    sm_model_opts mo;
    sm_model_opts_init(&mo);
    sm_code rc = SM_OK;
    /* "stored": each matrix as the file holds it (the only way to run K-quant GGUF files) */
    if (cfg->worker.dtype[0] && strcmp(cfg->worker.dtype, "stored") != 0) {
        rc = sm_dtype_parse(cfg->worker.dtype, &mo.dtype, err);
        mo.dtype_set = true;
    }
    if (!rc && strcmp(cfg->worker.kv_dtype, "auto") != 0 && cfg->worker.kv_dtype[0]) {
        rc = sm_dtype_parse(cfg->worker.kv_dtype, &mo.kv_dtype, err);
        mo.kv_dtype_set = true;
    }
    if (!rc && strcmp(cfg->worker.isa, "auto") != 0 && cfg->worker.isa[0]) {
        rc = sm_isa_parse(cfg->worker.isa, &mo.isa, err);
        mo.isa_set = true;
    }
    mo.threads = (int)cfg->worker.threads;
    mo.fast = !cfg->worker.deterministic;
    if (!rc)
        rc = sm_modelid_compute(cfg->worker.model, w->model_name, sizeof w->model_name,
                                w->model_hash, err);
    int64_t load_start_us = mono_us();
    if (!rc)
        rc = sm_model_load(cfg->worker.model, &mo, &w->model, err);
    if (!rc)
        rc = sm_tokenizer_load(sm_model_dir(w->model), &w->tok, err);
    if (rc)
        return rc;
    sm_wmetrics_model_loaded((double)(mono_us() - load_start_us) / 1e6, w->model_name);
    sm_wrun_engine_version(sm_model_info(w->model), w->engine_version, sizeof w->engine_version);
    w->slots = (int)cfg->worker.slots;
    return SM_OK;
}

/* A remote server: only the tokenizer (worker.model's folder, or the GGUF file's), since the
 * worker still builds the prompts' token ids; a job credit the server's concurrency allows. */
static sm_code load_remote(wctx *w, sm_err *err)
{
    const sm_config *cfg = w->cfg;
    char dir[SM_CONFIG_STR];
    snprintf(dir, sizeof dir, "%s", cfg->worker.model);
    struct stat st;
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof dir, ".");
    }
    sm_code rc = sm_tokenizer_load(dir, &w->tok, err);
    if (rc)
        return sm_err_prefix(err, "worker.model (the tokenizer of the remote model)");
    snprintf(w->model_name, sizeof w->model_name, "%s",
             cfg->worker.remote.model[0] ? cfg->worker.remote.model : "remote");
    snprintf(w->model_hash, sizeof w->model_hash, "unreported");
    snprintf(w->engine_version, sizeof w->engine_version, "remote+%s", SM_VERSION);
    sm_wmetrics_model_loaded(0, w->model_name);
    /* each job asks for `samples` generations at once: no more jobs than the server takes */
    int64_t credit = cfg->worker.remote.max_concurrency / cfg->worker.samples;
    w->slots = (int)(credit < 1 ? 1 : credit);
    return SM_OK;
}

sm_code sm_wrun(const sm_config *cfg, volatile sig_atomic_t *stop, sm_err *err)
{
    wctx w = {.cfg = cfg, .efd = -1, .remote = strcmp(cfg->worker.engine, "remote") == 0};
    if (!cfg->worker.model[0])
        return sm_err_set(err, SM_ECONFIG, "worker.model is not set");
    sm_code rc = w.remote ? load_remote(&w, err) : load_local(&w, err);
    if (!rc)
        rc = sm_prompt_set_load(cfg->worker.prompt_dir, &w.prompts, err);
    if (!rc)
        rc = open_backend(&w, err);
    if (rc) {
        sm_prompt_set_free(&w.prompts);
        sm_tokenizer_free(&w.tok);
        sm_model_free(&w.model);
        sm_dev_free(&w.cuda);
        return rc;
    }
    sm_wmetrics_slots(w.slots);
    sm_sandbox_limits_from_config(cfg, &w.sandbox);
    w.g = (sm_grader){.tok = w.tok,
                      .prompts = w.prompts,
                      .sandbox = &w.sandbox,
                      .cfg = cfg,
                      .model_name = w.model_name,
                      .model_hash = w.model_hash,
                      .engine_version = w.engine_version};
    sm_log(SM_LOG_INFO, "model loaded", "model", w.model_name, "hash", w.model_hash, "engine",
           w.engine_version, NULL);
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    w.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_t prep, eng;
    bool have_prep = false, have_eng = false;
    if (w.efd < 0)
        rc = sm_err_set(err, SM_EIO, "eventfd: %s", strerror(errno));
    if (!rc && !(have_prep = pthread_create(&prep, NULL, prep_main, &w) == 0))
        rc = sm_err_set(err, SM_EINTERNAL, "cannot start a thread");
    if (!rc && !(have_eng = pthread_create(&eng, NULL, engine_main, &w) == 0))
        rc = sm_err_set(err, SM_EINTERNAL, "cannot start a thread");
    if (!rc)
        rc = serve(&w, stop, err);
    pthread_mutex_lock(&w.mu);
    w.quit = true;
    pthread_cond_broadcast(&w.cv);
    pthread_mutex_unlock(&w.mu);
    if (have_prep)
        pthread_join(prep, NULL);
    if (have_eng)
        pthread_join(eng, NULL);
    queue *qs[] = {&w.prep, &w.engine, &w.out};
    for (int i = 0; i < 3; i++)
        for (item *it; (it = q_pop(qs[i]));)
            item_free(it);
    if (w.efd >= 0)
        close(w.efd);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    sm_gen_free(&w.gen);
    sm_prompt_set_free(&w.prompts);
    sm_tokenizer_free(&w.tok);
    sm_model_free(&w.model);
    return rc;
}
