/* lti_passback: the grade passback thread (see lti_passback.h). One turn: make a cursor for
 * every LMS course with grade services, then for each due target with an event waiting, take
 * its advisory lock and handle its events in order until one fails or a batch is done. */
#include "lti_passback.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "sm_db.h"
#include "sm_log.h"
#include "sm_lti_ags.h"
#include "sm_webhook.h"

#define LOCK_CLASS 1819568496 /* the advisory lock space of LTI passback targets */
#define DUE_MAX 100
#define BATCH_MAX 100
#define PRUNE_EVERY_MS 3600000
#define STR_(x) #x
#define STR(x) STR_(x)
#define TARGET_LOCK "(" STR(LOCK_CLASS) ", hashtext($1 || ':' || $2))"
#define LINEITEM_CT "application/vnd.ims.lis.v2.lineitem+json"
#define LINEITEMS_ACCEPT "application/vnd.ims.lis.v2.lineitemcontainer+json"
#define SCORE_CT "application/vnd.ims.lis.v1.score+json"

struct sm_lti_passback {
    int64_t first_backoff_ms, max_backoff_ms, poll_ms, log_days, timeout_ms;
    char *db_url;
    char broker[64];
    PGconn *db;
    sm_lti_client client;
    volatile int abort_flag;
    unsigned rng;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stop;
    int64_t next_prune_ms, next_connect_ms;
};

typedef enum outcome { OUT_POSTED, OUT_SKIPPED, OUT_FAILED, OUT_REJECTED } outcome;
static const char *const outcome_names[] = {"posted", "skipped", "failed", "rejected"};

/* One event of a target and what handling it gave. */
typedef struct job {
    char platform[24], context[256];
    int attempt;
    char xid[24], eid[24], kind[64], submission[24], assignment[24];
    json_t *payload;
    char sub[256]; /* the LMS user, "" when none maps */
    char policy[16];
    char max_score[24], title[256];
    char lineitem[1024], link_id[256], link_lineitem[1024], lineitems[1024], scopes[1024];
    outcome out;
    char detail[256];
    long status;
    char error[SM_ERR_MSG_MAX];
    int64_t duration_ms;
} job;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void db_failed(sm_lti_passback *p, const sm_err *err)
{
    sm_log(SM_LOG_WARN, "lti passback: database statement failed", "error", err->msg, NULL);
    if (p->db && PQstatus(p->db) != CONNECTION_OK) {
        PQfinish(p->db);
        p->db = NULL;
    }
}

/* Reads the target's next due event into j; *found: whether there is one. */
static sm_code next_event(sm_lti_passback *p, job *j, bool *found, sm_err *err)
{
    static const char sql[] =
        "SELECT k.attempts + 1, e.xid::text, e.id, e.kind, e.submission_id, e.assignment_id, "
        "e.payload::text, "
        "(SELECT st.sub FROM lti_student st WHERE st.platform_id = k.platform_id AND "
        "  st.context_id = k.context_id AND st.student_ref = e.payload->>'student_ref' "
        "  ORDER BY st.status, st.sub LIMIT 1), "
        "sm_lti_passback_policy(e.assignment_id), a.max_score::text, "
        "COALESCE(NULLIF(a.title, ''), a.code), "
        "(SELECT li.url FROM lti_lineitem li WHERE li.platform_id = k.platform_id AND "
        "  li.context_id = k.context_id AND li.assignment_id = e.assignment_id), "
        "(SELECT l.resource_link_id FROM lti_resource_link l WHERE l.platform_id = k.platform_id "
        "  AND l.context_id = k.context_id AND l.assignment_id = e.assignment_id "
        "  ORDER BY l.ags_lineitem IS NULL, l.chosen_at LIMIT 1), "
        "(SELECT l.ags_lineitem FROM lti_resource_link l WHERE l.platform_id = k.platform_id "
        "  AND l.context_id = k.context_id AND l.assignment_id = e.assignment_id "
        "  AND l.ags_lineitem IS NOT NULL ORDER BY l.chosen_at LIMIT 1), "
        "x.ags_lineitems, array_to_string(x.ags_scopes, ' ') "
        "FROM lti_passback_cursor k JOIN lti_context x ON x.platform_id = k.platform_id "
        "  AND x.context_id = k.context_id "
        "CROSS JOIN LATERAL (SELECT * FROM event_outbox o WHERE o.course_id = x.course_id "
        "  AND (o.xid, o.id) > (k.cursor_xid, k.cursor_id) "
        "  AND o.xid < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY o.xid, o.id LIMIT 1) e "
        "JOIN assignment a ON a.id = e.assignment_id "
        "WHERE k.platform_id = $1::bigint AND k.context_id = $2 AND k.next_attempt_at <= now() "
        "AND x.ags_lineitems IS NOT NULL";
    const char *params[] = {j->platform, j->context};
    PGresult *r;
    sm_code rc = sm_db_query(p->db, sql, 2, params, &r, err);
    if (rc != SM_OK)
        return rc;
    *found = PQntuples(r) == 1;
    if (*found) {
        j->attempt = atoi(PQgetvalue(r, 0, 0));
        char *dst[] = {j->xid,      j->eid,     j->kind,          j->submission, j->assignment,
                       NULL,        j->sub,     j->policy,        j->max_score,  j->title,
                       j->lineitem, j->link_id, j->link_lineitem, j->lineitems,  j->scopes};
        size_t cap[] = {sizeof j->xid,           sizeof j->eid,        sizeof j->kind,
                        sizeof j->submission,    sizeof j->assignment, 0,
                        sizeof j->sub,           sizeof j->policy,     sizeof j->max_score,
                        sizeof j->title,         sizeof j->lineitem,   sizeof j->link_id,
                        sizeof j->link_lineitem, sizeof j->lineitems,  sizeof j->scopes};
        for (int i = 0; i < 15; i++)
            if (dst[i])
                snprintf(dst[i], cap[i], "%s", PQgetvalue(r, 0, i + 1));
        j->payload = json_loads(PQgetvalue(r, 0, 6), 0, NULL);
        if (!j->payload)
            rc = sm_err_set(err, SM_EFORMAT, "event %s has an unreadable payload", j->eid);
    }
    PQclear(r);
    return rc;
}

/* Logs j and moves the cursor (anything but a failure) or schedules the retry. */
static sm_code record(sm_lti_passback *p, const job *j, sm_err *err)
{
    static const char sql[] =
        "WITH log AS (INSERT INTO lti_passback_log (platform_id, context_id, event_id, event, "
        "submission_id, user_sub, attempt, outcome, detail, status_code, error, duration_ms, "
        "broker) VALUES ($1::bigint, $2, $3::bigint, $4, $5::bigint, NULLIF($6, ''), $7::int, "
        "$8, $9, $10::int, $11, $12::int, $13)) "
        "UPDATE lti_passback_cursor SET "
        "cursor_xid = CASE WHEN $14::boolean THEN $15::xid8 ELSE cursor_xid END, "
        "cursor_id = CASE WHEN $14::boolean THEN $3::bigint ELSE cursor_id END, "
        "attempts = CASE WHEN $14::boolean THEN 0 ELSE attempts + 1 END, "
        "next_attempt_at = CASE WHEN $14::boolean THEN now() "
        "  ELSE clock_timestamp() + $16::bigint * interval '1 millisecond' END, "
        "last_error = CASE WHEN $14::boolean THEN NULL ELSE $11 END, "
        "delivered = delivered + CASE WHEN $14::boolean THEN 1 ELSE 0 END, "
        "last_success_at = CASE WHEN $14::boolean THEN now() ELSE last_success_at END "
        "WHERE platform_id = $1::bigint AND context_id = $2";
    bool advance = j->out != OUT_FAILED;
    char attempt[16], status[16], duration[24], wait[24];
    snprintf(attempt, sizeof attempt, "%d", j->attempt);
    snprintf(status, sizeof status, "%ld", j->status);
    snprintf(duration, sizeof duration, "%" PRId64, j->duration_ms);
    snprintf(wait, sizeof wait, "%" PRId64,
             sm_webhook_backoff_ms(p->first_backoff_ms, p->max_backoff_ms, j->attempt,
                                   (uint32_t)rand_r(&p->rng)));
    const char *params[] = {j->platform,
                            j->context,
                            j->eid,
                            j->kind,
                            j->submission,
                            j->sub,
                            attempt,
                            outcome_names[j->out],
                            j->detail,
                            j->status ? status : NULL,
                            j->error[0] ? j->error : NULL,
                            duration,
                            p->broker,
                            advance ? "true" : "false",
                            j->xid,
                            wait};
    sm_code rc = sm_db_query(p->db, sql, 16, params, NULL, err);
    if (j->out == OUT_FAILED || j->out == OUT_REJECTED)
        sm_log(SM_LOG_WARN, "lti passback failed", "context", j->context, "event", j->eid,
               "attempt", attempt, "outcome", outcome_names[j->out], "error", j->error, NULL);
    return rc;
}

/* The score to post for j's event under its policy, or NULL with j->detail saying why not. */
static json_t *score_body(job *j)
{
    const json_t *final = json_object_get(j->payload, "final");
    const char *state = json_string_value(json_object_get(final, "state"));
    const char *at = json_string_value(json_object_get(j->payload, "at"));
    if (!j->sub[0]) {
        snprintf(j->detail, sizeof j->detail, "no LMS user has student_ref '%.150s'",
                 json_string_value(json_object_get(j->payload, "student_ref")));
        return NULL;
    }
    if (!state || !at) {
        snprintf(j->detail, sizeof j->detail, "not graded");
        return NULL;
    }
    bool full = strcmp(state, "released") == 0 ||
                (strcmp(j->policy, "on-approval") == 0 &&
                 (strcmp(state, "approved") == 0 || strcmp(state, "adjusted") == 0));
    if (!full && strcmp(state, "model_graded") != 0) {
        snprintf(j->detail, sizeof j->detail, "%s: policy %s waits for the release", state,
                 j->policy);
        return NULL;
    }
    json_t *b =
        json_pack("{s:s,s:s,s:s,s:s}", "userId", j->sub, "timestamp", at, "activityProgress",
                  "Submitted", "gradingProgress", full ? "FullyGraded" : "PendingManual");
    const json_t *score = json_object_get(final, "score"),
                 *max = json_object_get(final, "max_score");
    const char *comment = json_string_value(json_object_get(final, "comment"));
    if (full && json_is_number(score) && json_is_number(max)) {
        json_object_set(b, "scoreGiven", (json_t *)score);
        json_object_set(b, "scoreMaximum", (json_t *)max);
        if (comment && comment[0])
            json_object_set_new(b, "comment", json_string(comment));
        snprintf(j->detail, sizeof j->detail, "FullyGraded %g/%g", json_number_value(score),
                 json_number_value(max));
    } else {
        snprintf(j->detail, sizeof j->detail, "PendingManual");
    }
    return b;
}

/* Whether an HTTP status is worth retrying (the platform is down, busy or the token stale). */
static bool transient(long status)
{
    return status == 0 || status >= 500 || status == 401 || status == 403 || status == 408 ||
           status == 429;
}

/* Sets j's outcome from an exchange that did not give 2xx. */
static void failed(sm_lti_passback *p, job *j, const char *what, sm_code rc,
                   const sm_lti_response *resp, const sm_err *err)
{
    j->status = resp->status;
    j->duration_ms += resp->duration_ms;
    if (rc != SM_OK && resp->status == 0)
        snprintf(j->error, sizeof j->error, "%s: %s", what, err->msg);
    else
        snprintf(j->error, sizeof j->error, "%s: HTTP %ld %.200s", what, resp->status,
                 resp->body ? resp->body : "");
    for (char *c = j->error; *c; c++)
        if ((unsigned char)*c < ' ')
            *c = ' ';
    j->out = transient(resp->status) ? OUT_FAILED : OUT_REJECTED;
    if (resp->status == 401)
        sm_lti_token_forget(&p->client, strtoll(j->platform, NULL, 10));
}

/* The scopes to ask for: those of grade services the platform granted this course. */
static void wanted_scopes(const job *j, char *out, size_t n)
{
    out[0] = 0;
    const char *all[] = {SM_LTI_SCOPE_LINEITEM, SM_LTI_SCOPE_LINEITEM_RO, SM_LTI_SCOPE_SCORE};
    for (int i = 0; i < 3; i++) {
        char padded[1100], needle[200];
        snprintf(padded, sizeof padded, " %s ", j->scopes);
        snprintf(needle, sizeof needle, " %s ", all[i]);
        if (strstr(padded, needle) || !j->scopes[0])
            snprintf(out + strlen(out), n - strlen(out), "%s%s", out[0] ? " " : "", all[i]);
    }
}

/* Finds or creates the assignment's line item; j->lineitem on success. */
static bool ensure_lineitem(sm_lti_passback *p, job *j, const char *token)
{
    sm_err err = {0};
    sm_lti_response resp = {0};
    char url[1400], rid[64];
    snprintf(rid, sizeof rid, "stepmark-assignment-%s", j->assignment);
    if (j->link_lineitem[0]) {
        snprintf(j->lineitem, sizeof j->lineitem, "%s", j->link_lineitem);
    } else {
        snprintf(url, sizeof url, "%s%sresource_id=%s", j->lineitems,
                 strchr(j->lineitems, '?') ? "&" : "?", rid);
        sm_lti_request get = {"GET", url, token, LINEITEMS_ACCEPT, NULL, NULL};
        sm_code rc = sm_lti_send(&p->client, &get, &resp, &err);
        if (rc != SM_OK || resp.status != 200) {
            failed(p, j, "line items", rc, &resp, &err);
            sm_lti_response_free(&resp);
            return false;
        }
        j->duration_ms += resp.duration_ms;
        json_t *list = json_loads(resp.body, 0, NULL), *it;
        size_t i;
        json_array_foreach(list, i, it)
        {
            const char *id = json_string_value(json_object_get(it, "id"));
            const char *r = json_string_value(json_object_get(it, "resourceId"));
            if (id && r && strcmp(r, rid) == 0 && !j->lineitem[0])
                snprintf(j->lineitem, sizeof j->lineitem, "%s", id);
        }
        json_decref(list);
        sm_lti_response_free(&resp);
    }
    if (!j->lineitem[0]) {
        json_t *li = json_pack("{s:f,s:s,s:s,s:s}", "scoreMaximum", strtod(j->max_score, NULL),
                               "label", j->title, "resourceId", rid, "tag", "stepmark");
        if (j->link_id[0])
            json_object_set_new(li, "resourceLinkId", json_string(j->link_id));
        char *body = json_dumps(li, JSON_COMPACT);
        json_decref(li);
        sm_lti_request post = {"POST", j->lineitems, token, LINEITEM_CT, LINEITEM_CT, body};
        sm_code rc = body ? sm_lti_send(&p->client, &post, &resp, &err) : SM_ENOMEM;
        free(body);
        json_t *made =
            rc == SM_OK && resp.status / 100 == 2 ? json_loads(resp.body, 0, NULL) : NULL;
        const char *id = json_string_value(json_object_get(made, "id"));
        if (id)
            snprintf(j->lineitem, sizeof j->lineitem, "%s", id);
        json_decref(made);
        if (!id) {
            if (rc == SM_OK && resp.status / 100 == 2)
                resp.status = 502; /* a 2xx without an id: retry */
            failed(p, j, "create line item", rc, &resp, &err);
            sm_lti_response_free(&resp);
            return false;
        }
        j->duration_ms += resp.duration_ms;
        sm_lti_response_free(&resp);
    }
    const char *params[] = {j->platform, j->context, j->assignment, j->lineitem};
    if (sm_db_query(p->db,
                    "INSERT INTO lti_lineitem (platform_id, context_id, assignment_id, url) "
                    "VALUES ($1::bigint, $2, $3::bigint, $4) ON CONFLICT DO NOTHING",
                    4, params, NULL, &err) != SM_OK) {
        snprintf(j->error, sizeof j->error, "%s", err.msg);
        j->out = OUT_FAILED;
        return false;
    }
    return true;
}

/* The scores URL of a line item: its path + "/scores", before any query. */
static void scores_url(const char *lineitem, char *out, size_t n)
{
    const char *q = strchr(lineitem, '?');
    size_t len = q ? (size_t)(q - lineitem) : strlen(lineitem);
    while (len > 0 && lineitem[len - 1] == '/')
        len--;
    snprintf(out, n, "%.*s/scores%s", (int)len, lineitem, q ? q : "");
}

/* Handles one event: a skip, or a token, the line item and the score post. */
static void handle(sm_lti_passback *p, job *j)
{
    json_t *body = score_body(j);
    if (!body) {
        j->out = OUT_SKIPPED;
        return;
    }
    sm_err err = {0};
    sm_lti_service svc;
    sm_lti_response resp = {0};
    const char *token = NULL;
    char scope[600], url[1400];
    wanted_scopes(j, scope, sizeof scope);
    sm_code rc = sm_lti_service_load(p->db, strtoll(j->platform, NULL, 10), &svc, &err);
    if (rc == SM_OK)
        rc = sm_lti_access_token(&p->client, p->db, &svc, scope, &token, &resp, &err);
    if (rc != SM_OK) {
        failed(p, j, "access token", rc, &resp, &err);
        j->out = OUT_FAILED; /* a token is always worth retrying: the settings may be fixed */
    } else if (j->lineitem[0] || ensure_lineitem(p, j, token)) {
        char *text = json_dumps(body, JSON_COMPACT);
        scores_url(j->lineitem, url, sizeof url);
        sm_lti_request post = {"POST", url, token, NULL, SCORE_CT, text};
        sm_lti_response_free(&resp);
        rc = text ? sm_lti_send(&p->client, &post, &resp, &err) : SM_ENOMEM;
        free(text);
        if (rc == SM_OK && resp.status / 100 == 2) {
            j->out = OUT_POSTED;
            j->status = resp.status;
            j->duration_ms += resp.duration_ms;
        } else {
            failed(p, j, "score", rc, &resp, &err);
        }
    }
    sm_lti_response_free(&resp);
    json_decref(body);
}

static void deliver_target(sm_lti_passback *p, const char *platform, const char *context)
{
    for (int n = 0; n < BATCH_MAX && !atomic_load(&p->stop); n++) {
        job *j = calloc(1, sizeof *j);
        if (!j)
            return;
        snprintf(j->platform, sizeof j->platform, "%s", platform);
        snprintf(j->context, sizeof j->context, "%s", context);
        bool found = false;
        sm_err err = {0};
        sm_code rc = next_event(p, j, &found, &err);
        if (rc == SM_OK && found) {
            handle(p, j);
            rc = record(p, j, &err);
        }
        if (rc != SM_OK)
            db_failed(p, &err);
        bool go_on = rc == SM_OK && found && j->out != OUT_FAILED;
        json_decref(j->payload);
        free(j);
        if (!go_on)
            return;
    }
}

static bool target_bool(sm_lti_passback *p, const char *sql, const char *platform,
                        const char *context)
{
    const char *params[] = {platform, context};
    PGresult *r;
    sm_err err;
    if (sm_db_query(p->db, sql, 2, params, &r, &err) != SM_OK) {
        db_failed(p, &err);
        return false;
    }
    bool t = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return t;
}

static void deliver_due(sm_lti_passback *p)
{
    static const char due_sql[] =
        "WITH made AS (INSERT INTO lti_passback_cursor (platform_id, context_id) "
        "  SELECT platform_id, context_id FROM lti_context WHERE course_id IS NOT NULL AND "
        "  ags_lineitems IS NOT NULL ON CONFLICT DO NOTHING) "
        "SELECT k.platform_id, k.context_id FROM lti_passback_cursor k JOIN lti_context x ON "
        "x.platform_id = k.platform_id AND x.context_id = k.context_id "
        "WHERE k.next_attempt_at <= now() AND x.ags_lineitems IS NOT NULL AND EXISTS (SELECT 1 "
        "  FROM event_outbox e WHERE e.course_id = x.course_id "
        "  AND (e.xid, e.id) > (k.cursor_xid, k.cursor_id) "
        "  AND e.xid < pg_snapshot_xmin(pg_current_snapshot())) "
        "ORDER BY k.next_attempt_at, k.platform_id, k.context_id LIMIT " STR(DUE_MAX);
    PGresult *r;
    sm_err err;
    if (sm_db_query(p->db, due_sql, 0, NULL, &r, &err) != SM_OK) {
        db_failed(p, &err);
        return;
    }
    for (int i = 0; i < PQntuples(r) && p->db && !atomic_load(&p->stop); i++) {
        const char *plat = PQgetvalue(r, i, 0), *ctx = PQgetvalue(r, i, 1);
        if (!target_bool(p, "SELECT pg_try_advisory_lock" TARGET_LOCK, plat, ctx))
            continue;
        deliver_target(p, plat, ctx);
        if (p->db)
            target_bool(p, "SELECT pg_advisory_unlock" TARGET_LOCK, plat, ctx);
    }
    PQclear(r);
}

static void prune(sm_lti_passback *p, int64_t now)
{
    if (now < p->next_prune_ms)
        return;
    p->next_prune_ms = now + PRUNE_EVERY_MS;
    char days[24];
    snprintf(days, sizeof days, "%" PRId64, p->log_days);
    const char *params[] = {days};
    sm_err err;
    if (sm_db_query(p->db,
                    "DELETE FROM lti_passback_log WHERE at < now() - $1::int * interval '1 day'", 1,
                    params, NULL, &err) != SM_OK)
        db_failed(p, &err);
}

static bool connected(sm_lti_passback *p, int64_t now)
{
    if (p->db)
        return true;
    if (now < p->next_connect_ms)
        return false;
    sm_err err;
    if (sm_db_connect(p->db_url, &p->db, &err) != SM_OK) {
        p->db = NULL;
        p->next_connect_ms = now + 5000;
        sm_log(SM_LOG_WARN, "lti passback: cannot connect to the database; retrying", "error",
               err.msg, NULL);
        return false;
    }
    return true;
}

static void pause_turn(sm_lti_passback *p)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    int64_t ns = until.tv_nsec + (p->poll_ms % 1000) * 1000000;
    until.tv_sec += p->poll_ms / 1000 + ns / 1000000000;
    until.tv_nsec = ns % 1000000000;
    pthread_mutex_lock(&p->mu);
    while (!atomic_load(&p->stop) && pthread_cond_timedwait(&p->cv, &p->mu, &until) == 0) {
    }
    pthread_mutex_unlock(&p->mu);
}

static void *run(void *arg)
{
    sm_lti_passback *p = arg;
    while (!atomic_load(&p->stop)) {
        int64_t now = mono_ms();
        if (connected(p, now)) {
            deliver_due(p);
            if (p->db)
                prune(p, now);
        }
        pause_turn(p);
    }
    return NULL;
}

static void free_passback(sm_lti_passback *p)
{
    if (p->db)
        PQfinish(p->db);
    sm_lti_client_free(&p->client);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->db_url);
    free(p);
}

sm_code sm_lti_passback_start(const sm_config *cfg, const char *db_url, sm_lti_passback **out,
                              sm_err *err)
{
    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return sm_err_set(err, SM_EINTERNAL, "LTI passback: libcurl initialisation failed");
    sm_lti_passback *p = calloc(1, sizeof *p);
    if (!p)
        return sm_err_set(err, SM_ENOMEM, "out of memory starting LTI passback");
    p->timeout_ms = cfg->webhooks.timeout_ms;
    p->first_backoff_ms = cfg->webhooks.first_backoff_ms;
    p->max_backoff_ms = cfg->webhooks.max_backoff_ms;
    p->poll_ms = cfg->webhooks.poll_ms;
    p->log_days = cfg->webhooks.log_days;
    p->rng = (unsigned)time(NULL) ^ ((unsigned)getpid() << 8);
    char host[40] = "";
    gethostname(host, sizeof host - 1);
    snprintf(p->broker, sizeof p->broker, "%s:%d", host, (int)getpid());
    atomic_init(&p->stop, false);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&p->mu, NULL);
    p->db_url = strdup(db_url);
    if (!p->db_url || sm_lti_client_init(&p->client, p->timeout_ms, err) != SM_OK) {
        free_passback(p);
        return sm_err_set(err, SM_ENOMEM, "out of memory starting LTI passback");
    }
    p->client.abort = &p->abort_flag;
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int prc = pthread_create(&p->thread, NULL, run, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (prc != 0) {
        free_passback(p);
        return sm_err_set(err, SM_EINTERNAL, "cannot start the LTI passback thread");
    }
    *out = p;
    return SM_OK;
}

void sm_lti_passback_stop(sm_lti_passback **pp)
{
    if (!pp || !*pp)
        return;
    sm_lti_passback *p = *pp;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    p->abort_flag = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    free_passback(p);
    curl_global_cleanup();
    *pp = NULL;
}
