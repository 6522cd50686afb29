/* broker_worker: the worker endpoint: READY/HEARTBEAT/PROGRESS/RESULT/FAIL/DISCONNECT,
 * dispatch of queued jobs by credit (a worker's announced slots minus the jobs it holds),
 * heartbeats, lease extension and the loss of silent workers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"
#include "sm_log.h"

enum { W_READY, W_HEARTBEAT, W_PROGRESS, W_RESULT, W_FAIL, W_DISCONNECT };
static const char *const worker_cmds[] = {"READY", "HEARTBEAT",  "PROGRESS", "RESULT",
                                          "FAIL",  "DISCONNECT", NULL};

/* The peer that sent the message being handled: its ROUTER identity, its ZAP User-Id (the
 * CURVE key's name, "" without CURVE), the parsed request, and its registration if any. */
typedef struct wpeer {
    const unsigned char *ident;
    size_t len;
    const char *user;
    const sm_request *req;
    sm_worker *w;
} wpeer;

/* How a bad message counts against its peer (peers.h). */
typedef enum { BAD_NONE, BAD_QUIETABLE, BAD_BANNABLE } bad_kind;

/* Logs, at most every 5 s, how many worker-side messages found the peer's queue full. */
static void note_dropped_send(sm_broker *b)
{
    b->dropped_sends++;
    int64_t now = sm_now_ms();
    if (now < b->next_drop_log_ms)
        return;
    b->next_drop_log_ms = now + 5000;
    char n[24];
    snprintf(n, sizeof n, "%llu", (unsigned long long)(b->dropped_sends - b->dropped_logged));
    b->dropped_logged = b->dropped_sends;
    sm_log(SM_LOG_WARN, "worker-side messages dropped: the peer's queue is full or it is gone",
           "count", n, NULL);
}

/* Sends without waiting (the worker socket's send timeout is 0): a peer that does not read
 * loses the message, which is counted, and never stalls the loop. */
static bool send_to(sm_broker *b, const unsigned char *ident, size_t len, const char *command,
                    const unsigned char *id, size_t id_len, const json_t *body)
{
    sm_frame idf = {ident, len};
    sm_err err;
    if (sm_proto_send_msg(b->worker, &idf, SM_PROTO_WORKER, command, id, id_len, body, &err) ==
        SM_OK)
        return true;
    note_dropped_send(b);
    return false;
}

void sm_broker_worker_send(sm_broker *b, sm_worker *w, const char *command, const char *id,
                           const json_t *body)
{
    send_to(b, w->ident, w->ident_len, command, (const unsigned char *)id, strlen(id), body);
}

/* hex of the first 32 bytes of an identity */
static void ident_hex(const unsigned char *ident, size_t len, char out[68])
{
    size_t n = len < 32 ? len : 32;
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", ident[i]);
    out[2 * n] = '\0';
}

/* Bans the peer: its registration goes (its jobs back to the queue, not charged) and it is
 * told to disconnect; its messages are dropped unread until the ban ends. */
static void ban(sm_broker *b, const wpeer *p)
{
    char hex[68];
    ident_hex(p->ident, p->len, hex);
    sm_log(SM_LOG_WARN, "worker-side peer banned for sending too many bad messages", "peer", hex,
           "key", p->user, "worker", p->w ? p->w->name : "", NULL);
    json_t *body = json_pack("{s:s}", "reason", "too many bad messages");
    send_to(b, p->ident, p->len, "DISCONNECT", (const unsigned char *)"", 0, body);
    json_decref(body);
    if (p->w)
        sm_broker_worker_drop(b, p->w, false, NULL);
}

/* Answers command to a message; a bad one (kind) counts against the peer, which past its caps
 * gets no answer or a ban. Returns false when the peer was banned (p->w is then gone). */
static bool answer(sm_broker *b, const wpeer *p, bad_kind kind, const char *command,
                   const json_t *body)
{
    sm_peer_verdict v = SM_PEER_REPLY;
    if (kind != BAD_NONE)
        v = sm_peers_bad(b->peers, p->ident, p->len, kind == BAD_BANNABLE, sm_now_ms());
    if (v == SM_PEER_BANNED) {
        ban(b, p);
        return false;
    }
    if (v == SM_PEER_REPLY)
        send_to(b, p->ident, p->len, command, p->req->id, p->req->id_len, body);
    return true;
}

static bool send_error(sm_broker *b, const wpeer *p, bad_kind kind, sm_code code, const char *msg,
                       bool retryable)
{
    json_t *body = sm_proto_error_body(code, msg, retryable);
    bool kept = answer(b, p, kind, "ERROR", body);
    json_decref(body);
    return kept;
}

/* A RESULT, FAIL or PROGRESS from a peer that does not hold the job's lease: ESTATE, and a
 * warning naming the peer (only while it is still answered, so a flood cannot fill the log). */
static void refuse(sm_broker *b, const wpeer *p, bad_kind kind, int64_t job_id, const char *why)
{
    char msg[160], hex[68], job[24];
    snprintf(msg, sizeof msg, "job %lld: %s", (long long)job_id, why);
    snprintf(job, sizeof job, "%lld", (long long)job_id);
    ident_hex(p->ident, p->len, hex);
    sm_peer_verdict v = sm_peers_bad(b->peers, p->ident, p->len, kind == BAD_BANNABLE, sm_now_ms());
    if (v == SM_PEER_BANNED) {
        ban(b, p);
        return;
    }
    if (v != SM_PEER_REPLY)
        return;
    sm_log(SM_LOG_WARN, "refused a worker message for a job the peer does not hold", "command",
           p->req->command, "job", job, "peer", hex, "key", p->user, "worker",
           p->w ? p->w->name : "(not registered)", NULL);
    json_t *body = sm_proto_error_body(SM_ESTATE, msg, false);
    send_to(b, p->ident, p->len, "ERROR", p->req->id, p->req->id_len, body);
    json_decref(body);
}

void sm_broker_worker_drop(sm_broker *b, sm_worker *w, bool failure, const char *reason)
{
    if (w->njobs > 0) {
        json_t *events = NULL;
        sm_err err;
        sm_code rc = b->db_up ? sm_store_release(b->store, w->owner, false, failure,
                                                 reason ? reason : "", b->backoff_ms, &events, &err)
                              : sm_err_set(&err, SM_EDB, "database unavailable");
        if (rc) {
            sm_broker_db_failed(b, rc);
            sm_log(SM_LOG_WARN, "cannot release a worker's jobs; their leases will expire",
                   "worker", w->name, "error", err.msg, NULL);
        } else {
            sm_broker_publish_all(b, events);
        }
        b->dispatch_wanted = true;
    }
    sm_metrics_worker_disconnected(b->metrics);
    sm_workers_remove(&b->workers, w);
}

static void ready(sm_broker *b, wpeer *p)
{
    const json_t *body = p->req->body;
    const char *name = NULL, *model = NULL, *device = NULL;
    int64_t slots = 0;
    sm_err err;
    sm_code rc = sm_json_str(body, "name", false, 128, &name, &err);
    if (!rc)
        rc = sm_json_str(body, "model", false, 256, &model, &err);
    if (!rc)
        rc = sm_json_str(body, "device", false, 16, &device, &err);
    if (!rc)
        rc = sm_json_int(body, "slots", true, 1, 4096, &slots, &err);
    if (rc) {
        send_error(b, p, BAD_BANNABLE, rc, err.msg, false);
        return;
    }
    sm_worker *w = p->w;
    bool fresh = !w;
    if (!w && !(w = sm_workers_add(&b->workers, p->ident, p->len, b->instance))) {
        send_error(b, p, BAD_NONE, SM_ENOMEM, "cannot register the worker", false);
        return;
    }
    snprintf(w->name, sizeof w->name, "%s", name ? name : w->owner);
    snprintf(w->model, sizeof w->model, "%s", model ? model : "");
    snprintf(w->device, sizeof w->device, "%s", device ? device : "");
    bool capped = slots > b->max_worker_slots;
    w->capacity = (int)(capped ? b->max_worker_slots : slots);
    w->last_seen_ms = sm_now_ms();
    w->last_extend_ms = w->last_seen_ms;
    if (fresh || capped) {
        sm_metrics_worker_connected(b->metrics);
        char s[16], asked[16];
        snprintf(s, sizeof s, "%d", w->capacity);
        snprintf(asked, sizeof asked, "%lld", (long long)slots);
        sm_log(capped ? SM_LOG_WARN : SM_LOG_INFO,
               capped ? "worker ready; slots capped at broker.max_worker_slots" : "worker ready",
               "worker", w->name, "model", w->model, "device", w->device, "slots", s, "asked",
               asked, "key", p->user, NULL);
    }
    b->dispatch_wanted = true;
}

/* The job_id of a RESULT/FAIL/PROGRESS, or 0 after answering a bad one. */
static int64_t job_of(sm_broker *b, const wpeer *p)
{
    sm_err err;
    int64_t job_id = 0;
    sm_code rc = sm_json_int(p->req->body, "job_id", true, 1, INT64_MAX, &job_id, &err);
    if (rc) {
        send_error(b, p, BAD_BANNABLE, rc, err.msg, false);
        return 0;
    }
    return job_id;
}

/* Whether p holds the lease of job_id; refuses the message otherwise (kind: how an
 * unregistered peer's message counts). */
static bool holds(sm_broker *b, const wpeer *p, int64_t job_id, bad_kind kind)
{
    if (!p->w) {
        refuse(b, p, kind, job_id, "unknown worker: send READY first");
        return false;
    }
    if (!sm_worker_job_find(p->w, job_id)) {
        /* a registered worker resends what it finished before a broker restart or failover:
         * answered up to the cap, never a reason for a ban */
        refuse(b, p, BAD_QUIETABLE, job_id, "not leased to this worker");
        return false;
    }
    return true;
}

static void publish_one(sm_broker *b, json_t *event)
{
    if (!event)
        return;
    json_t *arr = json_array();
    json_array_append_new(arr, event);
    sm_broker_publish_all(b, arr);
}

/* An unusable RESULT from the lease holder is a failed attempt of that job. */
static void reject_result(sm_broker *b, const wpeer *p, int64_t job_id, const char *msg)
{
    sm_worker_job_remove(p->w, job_id);
    char state[16];
    json_t *event = NULL;
    sm_err err;
    sm_code rc =
        sm_store_fail(b->store, job_id, p->w->owner, msg, true, b->backoff_ms, state, &event, &err);
    if (rc)
        sm_broker_db_failed(b, rc);
    else
        publish_one(b, event);
    b->dispatch_wanted = true;
    send_error(b, p, BAD_NONE, SM_EINVAL, msg, false);
}

static void acknowledge_result(sm_broker *b, const wpeer *p, int64_t job_id, bool duplicate)
{
    json_t *ack = json_pack("{s:I, s:b}", "job_id", (json_int_t)job_id, "duplicate", duplicate);
    answer(b, p, BAD_NONE, "ACK", ack);
    json_decref(ack);
}

static void result(sm_broker *b, wpeer *p)
{
    int64_t job_id = job_of(b, p);
    if (!job_id)
        return;
    if (p->w && !sm_worker_job_find(p->w, job_id) && sm_worker_done_find(p->w, job_id)) {
        acknowledge_result(b, p, job_id, true); /* a resend of a stored result */
        return;
    }
    if (!holds(b, p, job_id, BAD_BANNABLE))
        return;
    if (!b->db_up) {
        send_error(b, p, BAD_NONE, SM_EDB, "database unavailable; send again later", true);
        return;
    }
    sm_err err;
    char msg[SM_ERR_MSG_MAX + 48];
    sm_code rc = sm_validate_result(p->req->body, &err);
    if (rc) {
        snprintf(msg, sizeof msg, "result rejected: %s", err.msg);
        reject_result(b, p, job_id, msg);
        return;
    }
    sm_worker *w = p->w;
    json_t *event = NULL;
    sm_result_in in = {job_id, w->owner, w->name, p->req->body};
    rc = sm_store_result(b->store, &in, &event, &err);
    if (rc == SM_EDB && sm_broker_db_failed(b, rc)) {
        send_error(b, p, BAD_NONE, SM_EDB, "database unavailable; send again later", true);
        return;
    }
    if (rc == SM_EINVAL || rc == SM_EDB) { /* the scores or a constraint refused it */
        snprintf(msg, sizeof msg, "result rejected%s: %s", rc == SM_EDB ? " by the database" : "",
                 err.msg);
        reject_result(b, p, job_id, msg);
        return;
    }
    int64_t streamed = sm_worker_job_find(w, job_id)->tokens; /* counted from PROGRESS */
    sm_worker_job_remove(w, job_id);
    b->dispatch_wanted = true;
    if (rc) { /* the lease ended meanwhile (expired, cancelled) */
        send_error(b, p, BAD_NONE, rc, err.msg, false);
        return;
    }
    sm_worker_done_add(w, job_id);
    json_int_t completion =
        json_integer_value(json_object_get(json_object_get(p->req->body, "tokens"), "completion"));
    if (completion > streamed)
        sm_metrics_tokens_generated(b->metrics, (uint64_t)(completion - streamed));
    acknowledge_result(b, p, job_id, false);
    sm_metrics_grading_done(b->metrics);
    sm_broker_publish(b, event);
    json_decref(event);
}

static void fail_job(sm_broker *b, wpeer *p)
{
    sm_err err;
    const char *error = NULL;
    bool retryable = true;
    int64_t job_id = job_of(b, p);
    if (!job_id)
        return;
    sm_code rc = sm_json_str(p->req->body, "error", true, 10000, &error, &err);
    if (!rc)
        rc = sm_json_bool(p->req->body, "retryable", false, &retryable, &err);
    if (rc) {
        send_error(b, p, BAD_BANNABLE, rc, err.msg, false);
        return;
    }
    if (!holds(b, p, job_id, BAD_BANNABLE))
        return;
    if (!b->db_up) {
        send_error(b, p, BAD_NONE, SM_EDB, "database unavailable; send again later", true);
        return;
    }
    char state[16];
    json_t *event = NULL;
    rc = sm_store_fail(b->store, job_id, p->w->owner, error, retryable, b->backoff_ms, state,
                       &event, &err);
    if (rc) {
        bool down = sm_broker_db_failed(b, rc);
        send_error(b, p, BAD_NONE, rc, err.msg, down);
        return;
    }
    sm_worker_job_remove(p->w, job_id);
    b->dispatch_wanted = true;
    json_t *ack = json_pack("{s:I, s:s}", "job_id", (json_int_t)job_id, "state",
                            state[0] ? state : "no longer leased");
    answer(b, p, BAD_NONE, "ACK", ack);
    json_decref(ack);
    publish_one(b, event);
}

static void progress(sm_broker *b, wpeer *p)
{
    sm_err err;
    int64_t tokens = 0;
    int64_t job_id = job_of(b, p);
    if (!job_id)
        return;
    sm_code rc = sm_json_int(p->req->body, "tokens", true, 0, INT32_MAX, &tokens, &err);
    if (rc) {
        send_error(b, p, BAD_BANNABLE, rc, err.msg, false);
        return;
    }
    /* an honest worker streams PROGRESS of jobs this broker no longer knows (cancelled, or
     * before a restart): refused, but not counted towards a ban */
    if (!holds(b, p, job_id, BAD_QUIETABLE))
        return;
    sm_wjob *j = sm_worker_job_find(p->w, job_id);
    if (tokens > j->tokens) {
        sm_metrics_tokens_generated(b->metrics, (uint64_t)(tokens - j->tokens));
        j->tokens = tokens;
    }
    int64_t now = sm_now_ms();
    if (b->db_up && now - j->stored_ms >= 1000) {
        j->stored_ms = now;
        rc = sm_store_progress(b->store, job_id, p->w->owner, tokens, b->lease_ms, &err);
        if (rc)
            sm_broker_db_failed(b, rc);
    }
}

static void dispatch_command(sm_broker *b, wpeer *p)
{
    switch (p->req->cmd) {
    case W_READY:
        ready(b, p);
        break;
    case W_RESULT:
        result(b, p);
        break;
    case W_FAIL:
        fail_job(b, p);
        break;
    case W_PROGRESS:
        progress(b, p);
        break;
    case W_DISCONNECT:
        if (p->w) {
            sm_log(SM_LOG_INFO, "worker disconnected", "worker", p->w->name, NULL);
            sm_broker_worker_drop(b, p->w, false, NULL);
        }
        break;
    case W_HEARTBEAT:
        if (!p->w) { /* e.g. after a broker restart: the worker announces itself again */
            json_t *body = json_pack("{s:s}", "reason", "unknown worker: send READY");
            answer(b, p, BAD_QUIETABLE, "DISCONNECT", body);
            json_decref(body);
        }
        break;
    }
}

void sm_broker_worker_message(sm_broker *b, sm_msg *m)
{
    sm_frame f[SM_PROTO_MAX_FRAMES];
    for (int i = 0; i < m->n; i++)
        f[i] = sm_msg_frame(m, i);
    if (m->n < 1 || f[0].size == 0 || f[0].size > 255)
        return;
    int64_t now = sm_now_ms();
    if (sm_peers_banned(b->peers, f[0].data, f[0].size, now))
        return;
    sm_request req;
    sm_err err;
    sm_code rc = sm_proto_parse(SM_PROTO_WORKER, worker_cmds, f + 1, m->n - 1, m->total - 1,
                                b->max_body, &req, &err);
    wpeer p = {f[0].data, f[0].size, sm_msg_user(m), &req,
               sm_workers_find(&b->workers, f[0].data, f[0].size)};
    if (p.w)
        p.w->last_seen_ms = now;
    if (rc)
        send_error(b, &p, BAD_BANNABLE, rc, err.msg, false);
    else
        dispatch_command(b, &p);
    sm_request_clear(&req);
}

void sm_broker_dispatch(sm_broker *b)
{
    int n = b->workers.n;
    if (n == 0 || !b->db_up)
        return;
    int start = b->workers.rr++ % n;
    for (int k = 0; k < n && b->db_up; k++) {
        if (k >= b->workers.n)
            break;
        sm_worker *w = b->workers.w[(start + k) % b->workers.n];
        int free_slots = w->capacity - w->njobs;
        while (free_slots > 0) {
            int want = free_slots < SM_CLAIM_MAX ? free_slots : SM_CLAIM_MAX;
            json_t *jobs = NULL;
            sm_err err;
            sm_code rc =
                sm_store_claim(b->store, w->owner, w->model, want, b->lease_ms, &jobs, &err);
            if (rc) {
                sm_broker_db_failed(b, rc);
                sm_log(SM_LOG_WARN, "claim failed", "error", err.msg, NULL);
                return;
            }
            size_t i;
            json_t *job;
            bool lost = false;
            json_array_foreach(jobs, i, job)
            {
                int64_t id = json_integer_value(json_object_get(job, "job_id"));
                char ids[24];
                snprintf(ids, sizeof ids, "%lld", (long long)id);
                sm_worker_job_add(w, id);
                if (!lost && !send_to(b, w->ident, w->ident_len, "JOB", (const unsigned char *)ids,
                                      strlen(ids), job))
                    lost = true;
            }
            int got = (int)json_array_size(jobs);
            json_decref(jobs);
            if (lost) {
                sm_log(SM_LOG_WARN, "worker unreachable; its jobs go back", "worker", w->name,
                       NULL);
                sm_broker_worker_drop(b, w, false, NULL);
                break;
            }
            w->last_extend_ms = sm_now_ms();
            free_slots -= got;
            if (got < want)
                return; /* the queue (for this model) is empty for now */
        }
    }
}

void sm_broker_worker_timers(sm_broker *b, int64_t now)
{
    if (now < b->next_heartbeat_ms)
        return;
    b->next_heartbeat_ms = now + b->heartbeat_ms;
    for (int i = 0; i < b->workers.n;) {
        sm_worker *w = b->workers.w[i];
        if (now - w->last_seen_ms > b->heartbeat_timeout_ms) {
            char reason[200];
            snprintf(reason, sizeof reason, "worker %s lost (silent for %lld ms)", w->name,
                     (long long)(now - w->last_seen_ms));
            sm_log(SM_LOG_WARN, "worker lost", "worker", w->name, NULL);
            sm_broker_worker_drop(b, w, true, reason);
            continue; /* the slot i now holds another worker */
        }
        sm_broker_worker_send(b, w, "HEARTBEAT", "", NULL);
        if (b->db_up && w->njobs > 0 && now - w->last_extend_ms >= b->lease_ms / 3) {
            sm_err err;
            sm_code rc = sm_store_extend(b->store, w->owner, b->lease_ms, &err);
            if (rc)
                sm_broker_db_failed(b, rc);
            else
                w->last_extend_ms = now;
        }
        i++;
    }
    sm_metrics_workers_set(b->metrics, b->workers.n);
}
