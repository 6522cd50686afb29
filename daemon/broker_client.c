/* broker_client: the client endpoint's commands. SUBMITs are validated, then queued for the
 * next group commit (one statement for the whole group) and acknowledged only after it
 * commits; the other commands run at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"
#include "grades.h"
#include "sm_log.h"

enum {
    C_SUBMIT,
    C_STATUS,
    C_RESULT,
    C_CANCEL,
    C_COURSE_PUT,
    C_ASSIGNMENT_CREATE,
    C_ASSIGNMENT_UPDATE,
    C_ASSIGNMENT_GET,
    C_PING,
    C_LIST
};
static const char *const client_cmds[] = {"SUBMIT",
                                          "STATUS",
                                          "RESULT",
                                          "CANCEL",
                                          "COURSE_PUT",
                                          "ASSIGNMENT_CREATE",
                                          "ASSIGNMENT_UPDATE",
                                          "ASSIGNMENT_GET",
                                          "PING",
                                          "LIST",
                                          NULL};

typedef struct ctx {
    sm_broker *b;
    const unsigned char *ident;
    size_t ident_len;
    const sm_request *req;
} ctx;

static void ok(ctx *c, json_t *body)
{
    sm_broker_reply(c->b, c->ident, c->ident_len, c->req->id, c->req->id_len, true, body);
}

static void fail(ctx *c, sm_code code, const char *msg)
{
    bool retry = sm_broker_db_failed(c->b, code) || code == SM_EDB;
    bool down = !c->b->db_up;
    sm_broker_reply_error(c->b, c->ident, c->ident_len, c->req->id, c->req->id_len, code,
                          down ? "database unavailable; retry later" : msg, retry && down);
}

static bool db_ready(ctx *c)
{
    if (c->b->db_up)
        return true;
    sm_broker_reply_error(c->b, c->ident, c->ident_len, c->req->id, c->req->id_len, SM_EDB,
                          "database unavailable; retry later", true);
    return false;
}

static sm_code lookup(sm_broker *b, const char *course, const char *code, sm_assignment_ref *out,
                      sm_err *err)
{
    int64_t now = sm_now_ms();
    for (int i = 0; i < SM_CACHE_SLOTS; i++) {
        sm_cached *e = &b->cache[i];
        if (e->expires_ms > now && !strcmp(e->course, course) && !strcmp(e->code, code)) {
            *out = e->ref;
            return SM_OK;
        }
    }
    sm_code rc = sm_store_assignment_ref(b->store, course, code, out, err);
    if (rc)
        return rc;
    sm_cached *e = &b->cache[b->cache_next];
    b->cache_next = (b->cache_next + 1) % SM_CACHE_SLOTS;
    snprintf(e->course, sizeof e->course, "%s", course);
    snprintf(e->code, sizeof e->code, "%s", code);
    e->ref = *out;
    e->expires_ms = now + SM_CACHE_TTL_MS;
    return SM_OK;
}

static void forget(sm_broker *b, const char *course, const char *code)
{
    for (int i = 0; i < SM_CACHE_SLOTS; i++)
        if (!strcmp(b->cache[i].course, course) && !strcmp(b->cache[i].code, code))
            b->cache[i].expires_ms = 0;
}

static void submit(ctx *c, sm_request *req, sm_msg *m, int64_t recv_us)
{
    sm_broker *b = c->b;
    const char *course, *code;
    int priority;
    sm_err err;
    sm_code rc = sm_validate_submit(req->body, &course, &code, &priority, &err);
    if (rc) {
        fail(c, rc, err.msg);
        return;
    }
    if (!db_ready(c))
        return;
    sm_assignment_ref a;
    rc = lookup(b, course, code, &a, &err);
    if (!rc)
        rc = sm_validate_submit_kind(req->body, &a, &err);
    if (rc) {
        fail(c, rc, err.msg);
        return;
    }
    sm_pending *p = &b->batch[b->nbatch];
    memset(p, 0, sizeof *p);
    p->ident = malloc(c->ident_len ? c->ident_len : 1);
    if (!p->ident) {
        fail(c, SM_ENOMEM, "out of memory");
        return;
    }
    memcpy(p->ident, c->ident, c->ident_len);
    p->ident_len = c->ident_len;
    memcpy(p->id, req->id, req->id_len);
    p->id_len = req->id_len;
    p->body = req->body;
    req->body = NULL;
    p->recv_us = recv_us;
    p->dup_of = -1;
    const char *user = sm_msg_user(m);
    p->item = (sm_submit_item){
        .assignment_id = a.id,
        .student_ref = json_string_value(json_object_get(p->body, "student_ref")),
        .key = json_string_value(json_object_get(p->body, "idempotency_key")),
        .content = json_string_value(json_object_get(p->body, "content")),
        .language = json_string_value(json_object_get(p->body, "language")),
        .client = user[0] ? user : NULL,
        .priority = priority,
    };
    if (user[0]) { /* the metadata dies with the message: keep a copy in the body */
        json_object_set_new(p->body, "_client", json_string(user));
        p->item.client = json_string_value(json_object_get(p->body, "_client"));
    }
    for (int i = 0; i < b->nbatch; i++)
        if (b->batch[i].dup_of < 0 && !strcmp(b->batch[i].item.key, p->item.key)) {
            p->dup_of = i;
            break;
        }
    if (b->nbatch == 0)
        b->batch_since_us = recv_us;
    b->nbatch++;
}

/* Commits the batch in one statement, or row by row when the batch as a whole is refused
 * (so that one bad row cannot fail the others), then replies to everyone. */
void sm_broker_commit(sm_broker *b)
{
    int n = b->nbatch;
    if (n == 0)
        return;
    sm_submit_item items[SM_BATCH_MAX];
    int map[SM_BATCH_MAX];
    int m = 0;
    for (int i = 0; i < n; i++)
        if (b->batch[i].dup_of < 0) {
            map[i] = m;
            items[m++] = b->batch[i].item;
        } else {
            map[i] = -1;
        }
    sm_err err;
    sm_code rc = b->db_up ? sm_store_submit(b->store, items, m, (int)b->max_attempts, &err)
                          : sm_err_set(&err, SM_EDB, "database unavailable");
    sm_code rcs[SM_BATCH_MAX];
    char msgs[1][SM_ERR_MSG_MAX];
    for (int i = 0; i < m; i++)
        rcs[i] = rc;
    snprintf(msgs[0], sizeof msgs[0], "%s", err.msg);
    if (rc && b->db_up && sm_store_alive(b->store)) {
        if (m > 1)
            sm_log(SM_LOG_WARN, "group commit refused; committing one by one", "error", err.msg,
                   NULL);
        for (int i = 0; i < m; i++) {
            rcs[i] =
                m > 1 ? sm_store_submit(b->store, &items[i], 1, (int)b->max_attempts, &err) : rc;
            if (rcs[i] && sm_store_alive(b->store)) {
                rcs[i] = SM_EINVAL; /* refused by a constraint: permanent */
                snprintf(msgs[0], sizeof msgs[0], "%s", err.msg);
            } else if (rcs[i]) {
                sm_broker_db_failed(b, SM_EDB);
            }
        }
    } else if (rc) {
        sm_broker_db_failed(b, rc);
    }
    if (rc)
        sm_logf(SM_LOG_WARN, "group commit of %d submissions failed: %s", m, msgs[0]);
    int64_t now = sm_now_us();
    uint64_t accepted = 0;
    for (int i = 0; i < n; i++) {
        sm_pending *p = &b->batch[i];
        int k = map[i] >= 0 ? map[i] : map[p->dup_of];
        if (rcs[k] == SM_OK) {
            json_t *ack =
                json_pack("{s:I, s:b}", "submission_id", (json_int_t)items[k].submission_id,
                          "duplicate", items[k].duplicate || map[i] < 0);
            sm_broker_reply(b, p->ident, p->ident_len, p->id, p->id_len, true, ack);
            if (!items[k].duplicate && map[i] >= 0)
                accepted++;
            sm_metrics_ack_observe_seconds(b->metrics, (double)(now - p->recv_us) / 1e6);
        } else {
            bool down = !b->db_up || rcs[k] == SM_EDB;
            sm_broker_reply_error(
                b, p->ident, p->ident_len, p->id, p->id_len, rcs[k] == SM_EDB ? SM_EDB : rcs[k],
                down ? "not stored: database unavailable; retry later" : msgs[0], down);
        }
        free(p->ident);
        json_decref(p->body);
    }
    b->nbatch = 0;
    if (accepted) {
        sm_metrics_submissions_accepted(b->metrics, accepted);
        b->dispatch_wanted = true;
    }
}

static sm_code id_field(const json_t *body, int64_t *id, sm_err *err)
{
    return sm_json_int(body, "submission_id", true, 1, INT64_MAX, id, err);
}

static void cancel(ctx *c)
{
    sm_broker *b = c->b;
    int64_t sid;
    sm_err err;
    sm_code rc = id_field(c->req->body, &sid, &err);
    if (rc) {
        fail(c, rc, err.msg);
        return;
    }
    if (!db_ready(c))
        return;
    json_t *reply;
    char owner[128];
    int64_t job_id;
    rc = sm_store_cancel(b->store, sid, &reply, owner, &job_id, &err);
    if (rc) {
        fail(c, rc, err.msg);
        return;
    }
    sm_worker *w = owner[0] ? sm_workers_by_owner(&b->workers, owner) : NULL;
    if (w && sm_worker_job_remove(w, job_id)) {
        json_t *body = json_pack("{s:I}", "job_id", (json_int_t)job_id);
        char id[24];
        snprintf(id, sizeof id, "%lld", (long long)job_id);
        sm_broker_worker_send(b, w, "CANCEL", id, body);
        json_decref(body);
        b->dispatch_wanted = true;
    }
    ok(c, reply);
}

/* LIST: one page of an assignment's submissions in change order (grades.h). */
static void list(ctx *c)
{
    const char *course, *code;
    sm_list_query q;
    sm_err err;
    sm_code rc = sm_validate_list(c->req->body, &course, &code, &q, &err);
    if (!rc && !db_ready(c))
        return;
    sm_assignment_ref a;
    if (!rc)
        rc = lookup(c->b, course, code, &a, &err);
    json_t *page = NULL;
    if (!rc) {
        q.assignment_id = a.id;
        rc = sm_grades_list(sm_store_conn(c->b->store), &q, &page, &err);
    }
    if (rc) {
        fail(c, rc, err.msg);
        return;
    }
    json_object_set_new(page, "course", json_string(course));
    json_object_set_new(page, "assignment", json_string(code));
    ok(c, page);
}

static void status(ctx *c)
{
    const json_t *body = c->req->body;
    json_t *reply = NULL;
    sm_err err;
    int64_t sid = 0;
    const char *key = NULL;
    sm_code rc = sm_json_str(body, "idempotency_key", false, 200, &key, &err);
    if (!rc && !key)
        rc = id_field(body, &sid, &err);
    if (!rc && !db_ready(c))
        return;
    if (!rc)
        rc = sm_store_status(c->b->store, sid, key, &reply, &err);
    rc ? fail(c, rc, err.msg) : ok(c, reply);
}

static void result_get(ctx *c)
{
    const json_t *body = c->req->body;
    json_t *reply = NULL;
    sm_err err;
    int64_t sid = 0;
    bool reasoning = false;
    sm_code rc = id_field(body, &sid, &err);
    if (!rc)
        rc = sm_json_bool(body, "reasoning", false, &reasoning, &err);
    if (!rc && !db_ready(c))
        return;
    if (!rc)
        rc = sm_store_result_get(c->b->store, sid, reasoning, &reply, &err);
    rc ? fail(c, rc, err.msg) : ok(c, reply);
}

static void course_put(ctx *c, const char *actor)
{
    const json_t *body = c->req->body;
    json_t *reply = NULL;
    sm_err err;
    const char *code = NULL, *title = NULL;
    sm_code rc = sm_json_str(body, "code", true, 200, &code, &err);
    if (!rc && !sm_proto_code_ok(code, 200))
        rc = sm_err_set(&err, SM_EINVAL,
                        "field \"code\" may only hold letters, digits, "
                        "'.', '_' and '-'");
    if (!rc)
        rc = sm_json_str(body, "title", false, 500, &title, &err);
    if (!rc && !db_ready(c))
        return;
    if (!rc)
        rc = sm_store_course_put(c->b->store, code, title, actor, &reply, &err);
    rc ? fail(c, rc, err.msg) : ok(c, reply);
}

/* An update's rubric cross-checks: the stored assignment with the update's fields laid over
 * (max_score dropped when a new rubric of criteria comes without one: it becomes the sum). */
static sm_code update_rubric_ok(sm_store *s, const json_t *body, sm_err *err)
{
    json_t *a = NULL;
    sm_code rc = sm_store_assignment_get(s, json_string_value(json_object_get(body, "course")),
                                         json_string_value(json_object_get(body, "code")), &a, err);
    if (rc)
        return rc == SM_ENOTFOUND ? SM_OK : rc; /* the update itself says so */
    json_object_update(a, (json_t *)body);
    if (json_is_array(json_object_get(body, "rubric")) && !json_object_get(body, "max_score"))
        json_object_del(a, "max_score");
    rc = sm_validate_assignment_rubric(a, err);
    json_decref(a);
    return rc;
}

static void assignment_put(ctx *c, const char *actor, bool update)
{
    const json_t *body = c->req->body;
    json_t *reply = NULL;
    sm_err err;
    sm_code rc = sm_validate_assignment(body, !update, &err);
    if (!rc && !db_ready(c))
        return;
    if (!rc && update)
        rc = update_rubric_ok(c->b->store, body, &err);
    if (!rc)
        rc = sm_store_assignment_put(c->b->store, body, update, actor, &reply, &err);
    if (!rc)
        forget(c->b, json_string_value(json_object_get(body, "course")),
               json_string_value(json_object_get(body, "code")));
    rc ? fail(c, rc, err.msg) : ok(c, reply);
}

static void assignment_get(ctx *c)
{
    const json_t *body = c->req->body;
    json_t *reply = NULL;
    sm_err err;
    const char *course = NULL, *code = NULL;
    sm_code rc = sm_json_str(body, "course", true, 200, &course, &err);
    if (!rc)
        rc = sm_json_str(body, "code", true, 200, &code, &err);
    if (!rc && !db_ready(c))
        return;
    if (!rc)
        rc = sm_store_assignment_get(c->b->store, course, code, &reply, &err);
    rc ? fail(c, rc, err.msg) : ok(c, reply);
}

void sm_broker_client_message(sm_broker *b, sm_msg *m)
{
    int64_t recv_us = sm_now_us();
    sm_frame f[SM_PROTO_MAX_FRAMES];
    for (int i = 0; i < m->n; i++)
        f[i] = sm_msg_frame(m, i);
    if (m->n < 1 || f[0].size == 0 || f[0].size > 255)
        return; /* no routing identity: cannot answer */
    sm_request req;
    sm_err err;
    ctx c = {b, f[0].data, f[0].size, &req};
    sm_code rc = sm_proto_parse(SM_PROTO_CLIENT, client_cmds, f + 1, m->n - 1, m->total - 1,
                                b->max_body, &req, &err);
    if (rc) {
        sm_broker_reply_error(b, c.ident, c.ident_len, req.id, req.id_len, rc, err.msg, false);
        sm_request_clear(&req);
        return;
    }
    const char *user = sm_msg_user(m);
    const char *actor = user[0] ? user : "client";
    switch (req.cmd) {
    case C_SUBMIT:
        submit(&c, &req, m, recv_us);
        break;
    case C_PING:
        ok(&c, json_pack("{s:s, s:s}", "protocol", SM_PROTO_CLIENT, "broker", b->instance));
        break;
    case C_STATUS:
        status(&c);
        break;
    case C_RESULT:
        result_get(&c);
        break;
    case C_CANCEL:
        cancel(&c);
        break;
    case C_LIST:
        list(&c);
        break;
    case C_COURSE_PUT:
        course_put(&c, actor);
        break;
    case C_ASSIGNMENT_CREATE:
    case C_ASSIGNMENT_UPDATE:
        assignment_put(&c, actor, req.cmd == C_ASSIGNMENT_UPDATE);
        break;
    case C_ASSIGNMENT_GET:
        assignment_get(&c);
        break;
    }
    sm_request_clear(&req);
}
