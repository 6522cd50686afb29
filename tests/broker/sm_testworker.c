/* sm_testworker: a small worker for the broker's integration tests that speaks the real
 * worker protocol (SMW1, docs/protocol.md): READY with slots, heartbeats, JOB, PROGRESS,
 * RESULT (resent until acknowledged), FAIL, CANCEL, DISCONNECT. Its "grading" is a fixed
 * well-formed result (half marks). Options make it misbehave on purpose:
 *   --die-after N   exit(3) upon receiving its N-th job, without answering it
 *   --die-progress  with --die-after: send one PROGRESS for that job before exiting
 *   --fail          answer every job with a retryable FAIL (--fatal: not retryable)
 *   --duplicate     send every RESULT twice; exit 4 unless the second is ACKed as duplicate
 *   --results N     exit 0 after N acknowledged RESULTs
 *   --log FILE      append "job_id submission_id priority" per acknowledged RESULT */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sm_curve.h"
#include "sm_proto.h"

typedef struct job {
    int64_t id, sid;
    char priority[16];
    double max_score;
    int64_t seed;
    long due_ms, resend_ms;
    int sent; /* RESULTs sent */
    int acks;
} job;

typedef struct opts {
    const char *endpoint, *name, *log, *server_key, *secret_key;
    int slots, work_ms, die_after, results, heartbeat_ms, timeout_ms;
    int fail, fatal, duplicate, die_progress;
} opts;

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static volatile sig_atomic_t stop;
static void on_term(int s)
{
    (void)s;
    stop = 1;
}

static void *open_sock(void *ctx, const opts *o)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (o->server_key) {
        char sk[SM_CURVE_Z85], sec[SM_CURVE_Z85];
        sm_err err;
        if (sm_curve_key_arg(o->server_key, sk, &err) ||
            sm_curve_key_arg(o->secret_key, sec, &err) || sm_curve_client(s, sk, sec, &err)) {
            fprintf(stderr, "testworker: %s\n", err.msg);
            exit(2);
        }
    }
    if (zmq_connect(s, o->endpoint) != 0) {
        fprintf(stderr, "testworker: connect %s: %s\n", o->endpoint, zmq_strerror(errno));
        exit(2);
    }
    return s;
}

static void send(void *s, const char *cmd, int64_t id, json_t *body)
{
    char ids[24] = "";
    if (id)
        snprintf(ids, sizeof ids, "%lld", (long long)id);
    sm_err err;
    sm_proto_send_msg(s, NULL, SM_PROTO_WORKER, cmd, (const unsigned char *)ids, strlen(ids), body,
                      &err);
    json_decref(body);
}

static void ready(void *s, const opts *o)
{
    send(s, "READY", 0,
         json_pack("{s:s, s:s, s:s, s:i}", "name", o->name, "model", "testworker", "device", "cpu",
                   "slots", o->slots));
}

static json_t *result_body(const job *j, const opts *o)
{
    return json_pack(
        "{s:I, s:s, s:f, s:f, s:s, s:[{s:i, s:s, s:s, s:s, s:f}, {s:i, s:s, s:s, s:s}],"
        " s:[{s:s, s:s, s:b, s:i, s:s}], s:[], s:f, s:[{s:i, s:s, s:i}],"
        " s:{s:s, s:s}, s:s, s:s, s:{s:f}, s:I, s:{s:i, s:i}, s:{s:i}}",
        "job_id", (json_int_t)j->id, "status", "graded", "score", j->max_score / 2, "max_score",
        j->max_score, "summary", "half of the steps hold", "steps", "number", 1, "quoted", "x = 2",
        "verdict", "correct", "explanation", "fine", "agreement", 1.0, "number", 2, "quoted",
        "so x = 5", "verdict", "incorrect", "explanation", "arithmetic slip", "checks", "kind",
        "answer", "name", "final answer", "passed", false, "time_ms", 1, "output_excerpt", "5 != 4",
        "flags", "confidence", 0.75, "reasoning", "sample", 0, "text", "Let me check step 1.",
        "tokens", 6, "model", "name", "testworker", "hash", "0000", "engine_version", "test",
        "prompt_template_version", "t1", "sampling", "temperature", 0.0, "seed",
        (json_int_t)j->seed, "tokens", "prompt", 12, "completion", 6, "timings", "total_ms",
        o->work_ms);
}

/* Reads the options into o; -1 after naming a bad one. */
static int parse_opts(int argc, char **argv, opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(s) (!strcmp(a, s) && v && (++i, 1))
        if (OPT("--endpoint"))
            o->endpoint = v;
        else if (OPT("--name"))
            o->name = v;
        else if (OPT("--slots"))
            o->slots = atoi(v);
        else if (OPT("--work-ms"))
            o->work_ms = atoi(v);
        else if (OPT("--die-after"))
            o->die_after = atoi(v);
        else if (OPT("--results"))
            o->results = atoi(v);
        else if (OPT("--log"))
            o->log = v;
        else if (OPT("--heartbeat-ms"))
            o->heartbeat_ms = atoi(v);
        else if (OPT("--server-key"))
            o->server_key = v;
        else if (OPT("--secret-key"))
            o->secret_key = v;
        else if (!strcmp(a, "--fail"))
            o->fail = 1;
        else if (!strcmp(a, "--fatal"))
            o->fail = o->fatal = 1;
        else if (!strcmp(a, "--duplicate"))
            o->duplicate = 1;
        else if (!strcmp(a, "--die-progress"))
            o->die_progress = 1;
        else {
            fprintf(stderr, "testworker: bad argument %s\n", a);
            return -1;
        }
    }
    return 0;
}

/* A JOB: the n-th received; dies here with --die-after, else joins jobs. */
static void take_job(void *s, const opts *o, const sm_request *r, int n, job *jobs, int *njobs,
                     long now)
{
    int64_t jid = json_integer_value(json_object_get(r->body, "job_id"));
    if (o->die_after && n >= o->die_after) {
        fprintf(stderr, "testworker: dying with job %lld\n", (long long)jid);
        if (o->die_progress) {
            send(s, "PROGRESS", jid,
                 json_pack("{s:I, s:i}", "job_id", (json_int_t)jid, "tokens", 3));
            struct timespec ts = {0, 300 * 1000000L}; /* let it leave */
            nanosleep(&ts, NULL);
        }
        _exit(3);
    }
    if (*njobs < 256) {
        job *j = &jobs[(*njobs)++];
        memset(j, 0, sizeof *j);
        j->id = jid;
        j->sid = json_integer_value(json_object_get(r->body, "submission_id"));
        snprintf(j->priority, sizeof j->priority, "%s",
                 json_string_value(json_object_get(r->body, "priority")));
        j->max_score =
            json_number_value(json_object_get(json_object_get(r->body, "assignment"), "max_score"));
        j->seed = json_integer_value(json_object_get(r->body, "seed"));
        j->due_ms = now + o->work_ms;
    }
}

/* Sends the RESULT (or FAIL) of every job whose work is done, and resends unacknowledged ones. */
static void send_due(void *s, const opts *o, job *jobs, int njobs, long now)
{
    for (int i = 0; i < njobs; i++) {
        job *j = &jobs[i];
        if (now < j->due_ms || (j->sent && now < j->resend_ms))
            continue;
        if (!j->sent)
            send(s, "PROGRESS", j->id,
                 json_pack("{s:I, s:i}", "job_id", (json_int_t)j->id, "tokens", 6));
        if (o->fail)
            send(s, "FAIL", j->id,
                 json_pack("{s:I, s:s, s:b}", "job_id", (json_int_t)j->id, "error", "test failure",
                           "retryable", !o->fatal));
        else
            send(s, "RESULT", j->id, result_body(j, o));
        if (o->duplicate && !j->sent && !o->fail)
            send(s, "RESULT", j->id, result_body(j, o));
        j->sent++;
        j->resend_ms = now + 1000; /* resend until acknowledged */
    }
}

/* The broker's commands to a worker, in the order of cmds (the parser gives their index). */
enum broker_cmd { CMD_JOB, CMD_HEARTBEAT, CMD_ACK, CMD_ERROR, CMD_CANCEL, CMD_DISCONNECT };
static const char *const cmds[] = {"JOB",    "HEARTBEAT",  "ACK", "ERROR",
                                   "CANCEL", "DISCONNECT", NULL};

/* What the worker holds and has counted. */
typedef struct worker_state {
    job jobs[256];
    int njobs, received, acked, status;
} worker_state;

/* An ACK or ERROR of a RESULT: a retryable error resends it later; the (last expected)
 * acknowledgement lets the job go, logged when --log is set. */
static void on_ack(worker_state *w, const opts *o, const sm_request *r, long now)
{
    bool retry = r->cmd == CMD_ERROR && json_is_true(json_object_get(r->body, "retryable"));
    if (r->cmd == CMD_ERROR)
        fprintf(stderr, "testworker: error: %s\n",
                json_string_value(json_object_get(r->body, "message")));
    int64_t id = strtoll((const char *)r->id, NULL, 10);
    for (int i = 0; i < w->njobs; i++) {
        job *j = &w->jobs[i];
        if (j->id != id || j->sent == 0)
            continue;
        if (retry) {
            j->resend_ms = now + 300;
            return;
        }
        j->acks++;
        bool dup = json_is_true(json_object_get(r->body, "duplicate"));
        if (o->duplicate && j->acks == 2 && !dup) {
            fprintf(stderr, "testworker: second RESULT not a duplicate\n");
            w->status = 4;
        }
        if (j->acks < (o->duplicate && !o->fail ? 2 : 1))
            return;
        if (r->cmd == CMD_ACK && !o->fail) {
            w->acked++;
            FILE *fp = o->log ? fopen(o->log, "a") : NULL;
            if (fp) {
                fprintf(fp, "%lld %lld %s\n", (long long)j->id, (long long)j->sid, j->priority);
                fclose(fp);
            }
        }
        w->jobs[i] = w->jobs[--w->njobs];
        return;
    }
}

/* Every message waiting on s. */
static void on_messages(void *s, worker_state *w, const opts *o, long now, long *last_heard)
{
    sm_msg m;
    sm_err err;
    while (sm_msg_recv(s, &m, ZMQ_DONTWAIT, &err) == SM_OK) {
        sm_frame f[SM_PROTO_MAX_FRAMES];
        for (int i = 0; i < m.n; i++)
            f[i] = sm_msg_frame(&m, i);
        sm_request r;
        sm_code rc = sm_proto_parse(SM_PROTO_WORKER, cmds, f, m.n, m.total, 1 << 28, &r, &err);
        sm_msg_close(&m);
        *last_heard = now;
        if (rc) {
            fprintf(stderr, "testworker: bad message: %s\n", err.msg);
            sm_request_clear(&r);
            continue;
        }
        int64_t jid = json_integer_value(json_object_get(r.body, "job_id"));
        if (r.cmd == CMD_JOB) {
            take_job(s, o, &r, ++w->received, w->jobs, &w->njobs, now);
        } else if (r.cmd == CMD_ACK || r.cmd == CMD_ERROR) {
            on_ack(w, o, &r, now);
        } else if (r.cmd == CMD_CANCEL) {
            for (int i = 0; i < w->njobs; i++)
                if (w->jobs[i].id == jid)
                    w->jobs[i] = w->jobs[--w->njobs];
        } else if (r.cmd == CMD_DISCONNECT) {
            ready(s, o);
        }
        sm_request_clear(&r);
    }
}

int main(int argc, char **argv)
{
    opts o = {.endpoint = NULL,
              .name = "testworker",
              .slots = 1,
              .work_ms = 50,
              .heartbeat_ms = 200,
              .timeout_ms = 3000};
    if (parse_opts(argc, argv, &o))
        return 2;
    if (!o.endpoint) {
        fprintf(stderr, "usage: sm_testworker --endpoint EP [options]\n");
        return 2;
    }
    signal(SIGTERM, on_term);
    void *ctx = zmq_ctx_new();
    void *s = open_sock(ctx, &o);
    ready(s, &o);
    static worker_state w;
    long last_hb = now_ms(), last_heard = now_ms();
    while (!stop) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        zmq_poll(&it, 1, 10);
        long now = now_ms();
        if (it.revents & ZMQ_POLLIN)
            on_messages(s, &w, &o, now, &last_heard);
        send_due(s, &o, w.jobs, w.njobs, now);
        if (o.results && w.acked >= o.results)
            break;
        if (now - last_hb >= o.heartbeat_ms) {
            send(s, "HEARTBEAT", 0, NULL);
            last_hb = now;
        }
        if (now - last_heard > o.timeout_ms) {
            /* the broker went silent: reconnect on a fresh socket and announce again */
            zmq_close(s);
            s = open_sock(ctx, &o);
            ready(s, &o);
            last_heard = now;
            for (int i = 0; i < w.njobs; i++)
                w.jobs[i].resend_ms = now;
        }
    }
    send(s, "DISCONNECT", 0, NULL);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return w.status;
}
