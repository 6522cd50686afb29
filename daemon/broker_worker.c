/* broker_worker: the worker endpoint: READY/HEARTBEAT/PROGRESS/RESULT/FAIL/DISCONNECT,
 * dispatch of queued jobs by credit (a worker's announced slots minus the jobs it holds),
 * heartbeats, lease extension and the loss of silent workers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"
#include "sm_log.h"

enum { W_READY, W_HEARTBEAT, W_PROGRESS, W_RESULT, W_FAIL, W_DISCONNECT };
static const char *const worker_cmds[] = {"READY", "HEARTBEAT", "PROGRESS", "RESULT", "FAIL",
                                          "DISCONNECT", NULL};

static bool send_to(sm_broker *b, const unsigned char *ident, size_t len, const char *command,
                    const unsigned char *id, size_t id_len, const json_t *body)
{
    sm_frame idf = {ident, len};
    sm_err err;
    return sm_proto_send_msg(b->worker, &idf, SM_PROTO_WORKER, command, id, id_len, body,
                             &err) == SM_OK;
}

void sm_broker_worker_send(sm_broker *b, sm_worker *w, const char *command, const char *id,
                           const json_t *body)
{
    send_to(b, w->ident, w->ident_len, command, (const unsigned char *)id, strlen(id), body);
}

static void send_error(sm_broker *b, const unsigned char *ident, size_t len,
                       const sm_request *req, sm_code code, const char *msg, bool retryable)
{
    json_t *body = sm_proto_error_body(code, msg, retryable);
    send_to(b, ident, len, "ERROR", req->id, req->id_len, body);
    json_decref(body);
}

void sm_broker_worker_drop(sm_broker *b, sm_worker *w, bool failure, const char *reason)
{
    if (w->njobs > 0) {
        json_t *events = NULL;
        sm_err err;
        sm_code rc = b->db_up ? sm_store_release(b->store, w->owner, false, failure,
                                                 reason ? reason : "", b->backoff_ms, &events,
                                                 &err)
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

static void ready(sm_broker *b, sm_worker *w, const unsigned char *ident, size_t len,
                  const sm_request *req)
{
    const json_t *body = req->body;
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
        send_error(b, ident, len, req, rc, err.msg, false);
        return;
    }
    bool fresh = !w;
    if (!w && !(w = sm_workers_add(&b->workers, ident, len, b->instance))) {
        send_error(b, ident, len, req, SM_ENOMEM, "cannot register the worker", false);
        return;
    }
    snprintf(w->name, sizeof w->name, "%s", name ? name : w->owner);
    snprintf(w->model, sizeof w->model, "%s", model ? model : "");
    snprintf(w->device, sizeof w->device, "%s", device ? device : "");
    w->capacity = (int)slots;
    w->last_seen_ms = sm_now_ms();
    w->last_extend_ms = w->last_seen_ms;
    if (fresh) {
        sm_metrics_worker_connected(b->metrics);
        char s[16];
        snprintf(s, sizeof s, "%d", w->capacity);
        sm_log(SM_LOG_INFO, "worker ready", "worker", w->name, "model", w->model, "device",
               w->device, "slots", s, NULL);
    }
    b->dispatch_wanted = true;
}

static void result(sm_broker *b, sm_worker *w, const unsigned char *ident, size_t len,
                   const sm_request *req)
{
    sm_err err;
    int64_t job_id = 0;
    sm_code rc = sm_json_int(req->body, "job_id", true, 1, INT64_MAX, &job_id, &err);
    if (rc) {
        send_error(b, ident, len, req, rc, err.msg, false);
        return;
    }
    if (!b->db_up) {
        send_error(b, ident, len, req, SM_EDB, "database unavailable; send again later", true);
        return;
    }
    rc = sm_validate_result(req->body, &err);
    if (rc) {
        /* an unusable result is a failed attempt of the worker that holds the job */
        char msg[SM_ERR_MSG_MAX + 32];
        snprintf(msg, sizeof msg, "result rejected: %s", err.msg);
        sm_err verr = err; /* the reply goes out after the job's state has changed */
        if (w && sm_worker_job_remove(w, job_id)) {
            char state[16];
            json_t *event = NULL;
            sm_err e2;
            sm_code frc = sm_store_fail(b->store, job_id, w->owner, msg, true, b->backoff_ms,
                                        state, &event, &e2);
            if (frc) {
                sm_broker_db_failed(b, frc);
            } else if (event) {
                json_t *arr = json_array();
                json_array_append_new(arr, event);
                sm_broker_publish_all(b, arr);
            }
            b->dispatch_wanted = true;
        }
        send_error(b, ident, len, req, rc, verr.msg, false);
        return;
    }
    json_t *event = NULL;
    bool duplicate = false;
    rc = sm_store_result(b->store, job_id, w ? w->name : "unknown", req->body, &event,
                         &duplicate, &err);
    if (rc == SM_EDB && sm_broker_db_failed(b, rc)) {
        send_error(b, ident, len, req, SM_EDB, "database unavailable; send again later", true);
        return;
    }
    int64_t streamed = 0; /* tokens already counted from PROGRESS */
    sm_wjob *wj = w ? sm_worker_job_find(w, job_id) : NULL;
    if (wj)
        streamed = wj->tokens;
    if (rc == SM_EDB) {
        /* refused by a constraint (connection alive): a failed attempt, like an invalid body */
        char msg[SM_ERR_MSG_MAX + 48];
        snprintf(msg, sizeof msg, "result rejected by the database: %s", err.msg);
        if (wj) {
            char state[16];
            json_t *ev = NULL;
            sm_err e2;
            sm_code frc = sm_store_fail(b->store, job_id, w->owner, msg, true, b->backoff_ms,
                                        state, &ev, &e2);
            if (frc)
                sm_broker_db_failed(b, frc);
            else if (ev) {
                json_t *arr = json_array();
                json_array_append_new(arr, ev);
                sm_broker_publish_all(b, arr);
            }
        }
        send_error(b, ident, len, req, SM_EINVAL, msg, false);
    }
    if (w && sm_worker_job_remove(w, job_id))
        b->dispatch_wanted = true;
    if (rc) {
        if (rc != SM_EDB)
            send_error(b, ident, len, req, rc, err.msg, false);
        return;
    }
    json_int_t completion =
        json_integer_value(json_object_get(json_object_get(req->body, "tokens"), "completion"));
    if (event && completion > streamed)
        sm_metrics_tokens_generated(b->metrics, (uint64_t)(completion - streamed));
    json_t *ack = json_pack("{s:I, s:b}", "job_id", (json_int_t)job_id, "duplicate", duplicate);
    send_to(b, ident, len, "ACK", req->id, req->id_len, ack);
    json_decref(ack);
    if (event) {
        sm_metrics_grading_done(b->metrics);
        sm_broker_publish(b, event);
        json_decref(event);
    }
}

static void fail_job(sm_broker *b, sm_worker *w, const unsigned char *ident, size_t len,
                     const sm_request *req)
{
    sm_err err;
    int64_t job_id = 0;
    const char *error = NULL;
    bool retryable = true;
    sm_code rc = sm_json_int(req->body, "job_id", true, 1, INT64_MAX, &job_id, &err);
    if (!rc)
        rc = sm_json_str(req->body, "error", true, 10000, &error, &err);
    if (!rc)
        rc = sm_json_bool(req->body, "retryable", false, &retryable, &err);
    if (rc) {
        send_error(b, ident, len, req, rc, err.msg, false);
        return;
    }
    if (!w) {
        send_error(b, ident, len, req, SM_ESTATE, "unknown worker: send READY first", false);
        return;
    }
    if (!b->db_up) {
        send_error(b, ident, len, req, SM_EDB, "database unavailable; send again later", true);
        return;
    }
    char state[16];
    json_t *event = NULL;
    rc = sm_store_fail(b->store, job_id, w->owner, error, retryable, b->backoff_ms, state,
                       &event, &err);
    if (rc) {
        bool down = sm_broker_db_failed(b, rc);
        send_error(b, ident, len, req, rc, err.msg, down);
        return;
    }
    sm_worker_job_remove(w, job_id);
    b->dispatch_wanted = true;
    json_t *ack = json_pack("{s:I, s:s}", "job_id", (json_int_t)job_id, "state",
                            state[0] ? state : "not leased to this worker");
    send_to(b, ident, len, "ACK", req->id, req->id_len, ack);
    json_decref(ack);
    if (event) {
        json_t *arr = json_array();
        json_array_append_new(arr, event);
        sm_broker_publish_all(b, arr);
    }
}

static void progress(sm_broker *b, sm_worker *w, const unsigned char *ident, size_t len,
                     const sm_request *req)
{
    sm_err err;
    int64_t job_id = 0, tokens = 0;
    sm_code rc = sm_json_int(req->body, "job_id", true, 1, INT64_MAX, &job_id, &err);
    if (!rc)
        rc = sm_json_int(req->body, "tokens", true, 0, INT32_MAX, &tokens, &err);
    if (rc) {
        send_error(b, ident, len, req, rc, err.msg, false);
        return;
    }
    sm_wjob *j = sm_worker_job_find(w, job_id);
    if (!j)
        return; /* a job this broker did not lease to w (cancelled, or before a restart) */
    if (tokens > j->tokens) {
        sm_metrics_tokens_generated(b->metrics, (uint64_t)(tokens - j->tokens));
        j->tokens = tokens;
    }
    int64_t now = sm_now_ms();
    if (b->db_up && now - j->stored_ms >= 1000) {
        j->stored_ms = now;
        rc = sm_store_progress(b->store, job_id, w->owner, tokens, b->lease_ms, &err);
        if (rc)
            sm_broker_db_failed(b, rc);
    }
}

void sm_broker_worker_message(sm_broker *b, sm_msg *m)
{
    sm_frame f[SM_PROTO_MAX_FRAMES];
    for (int i = 0; i < m->n; i++)
        f[i] = sm_msg_frame(m, i);
    if (m->n < 1 || f[0].size == 0 || f[0].size > 255)
        return;
    const unsigned char *ident = f[0].data;
    size_t len = f[0].size;
    sm_request req;
    sm_err err;
    sm_code rc = sm_proto_parse(SM_PROTO_WORKER, worker_cmds, f + 1, m->n - 1, m->total - 1,
                                b->max_body, &req, &err);
    sm_worker *w = sm_workers_find(&b->workers, ident, len);
    if (w)
        w->last_seen_ms = sm_now_ms();
    if (rc) {
        send_error(b, ident, len, &req, rc, err.msg, false);
        sm_request_clear(&req);
        return;
    }
    switch (req.cmd) {
    case W_READY:
        ready(b, w, ident, len, &req);
        break;
    case W_RESULT:
        result(b, w, ident, len, &req);
        break;
    case W_FAIL:
        fail_job(b, w, ident, len, &req);
        break;
    case W_DISCONNECT:
        if (w) {
            sm_log(SM_LOG_INFO, "worker disconnected", "worker", w->name, NULL);
            sm_broker_worker_drop(b, w, false, NULL);
        }
        break;
    case W_HEARTBEAT:
    case W_PROGRESS:
        if (!w) {
            json_t *body = json_pack("{s:s}", "reason", "unknown worker: send READY");
            send_to(b, ident, len, "DISCONNECT", req.id, req.id_len, body);
            json_decref(body);
        } else if (req.cmd == W_PROGRESS) {
            progress(b, w, ident, len, &req);
        }
        break;
    }
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
            sm_code rc = sm_store_claim(b->store, w->owner, w->model, want, b->lease_ms, &jobs,
                                        &err);
            if (rc) {
                sm_broker_db_failed(b, rc);
                sm_log(SM_LOG_WARN, "claim failed", "error", err.msg, NULL);
                return;
            }
            size_t i;
            json_t *job;
            bool lost = false;
            json_array_foreach(jobs, i, job) {
                int64_t id = json_integer_value(json_object_get(job, "job_id"));
                char ids[24];
                snprintf(ids, sizeof ids, "%lld", (long long)id);
                sm_worker_job_add(w, id);
                if (!lost && !send_to(b, w->ident, w->ident_len, "JOB",
                                      (const unsigned char *)ids, strlen(ids), job))
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
