/* http_v1: the service API /api/v1 for systems that cannot speak ZeroMQ (LMS plugins), on the
 * HTTP server of stepmarkd (docs/http-api.md, docs/openapi.yaml). Requests carry a service token
 * (`stepmark service add`) as "Authorization: Bearer sms_...", never a session cookie, so no
 * CSRF token either. A token acts only on its courses: anything outside them is answered 404,
 * exactly as if it did not exist. Failed tokens count against the per-address limit of
 * authentication attempts that sign-in uses (429 with Retry-After once spent). Errors are
 * {"error": {"code", "message"}} with the protocol's codes (docs/protocol.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "grades.h"
#include "http_internal.h"
#include "http_store.h"
#include "http_v1.h"
#include "sm_log.h"
#include "sm_proto.h"
#include "sm_service.h"
#include "store.h"

void http_v1_fail(http_resp *rs, sm_code code, const char *msg)
{
    int status = 500;
    switch (code) {
    case SM_EINVAL:
    case SM_EFORMAT:
        status = 400;
        break;
    case SM_ENOTFOUND:
        status = 404;
        break;
    case SM_ESTATE:
        status = 409;
        break;
    case SM_ELIMIT:
        status = 413;
        break;
    case SM_EDB:
        sm_log(SM_LOG_ERROR, "http api: database error", "error", msg, NULL);
        rs->retry_after = 1;
        http_resp_error(rs, 503, "EDB", "database unavailable; nothing was stored; retry later");
        return;
    default:
        sm_log(SM_LOG_ERROR, "http api: internal error", "error", msg, NULL);
        http_resp_error(rs, 500, "EINTERNAL", "internal error");
        return;
    }
    http_resp_error(rs, status, sm_code_name(code), msg);
}

/* A refused token: 401 with a Bearer challenge, and one attempt counted against the address. */
static bool refuse(http_req *rq, http_resp *rs, const char *reason, const char *msg, bool count)
{
    if (count)
        http_rate_check(rq->http, rq->client, true);
    sm_log(SM_LOG_WARN, "http api: token refused", "client", rq->client, "reason", reason, NULL);
    rs->bearer_challenge = true;
    http_resp_error(rs, 401, "EAUTH", msg);
    return false;
}

/* Authenticates the request's bearer token into rq->service_id; else fills rs (401, 429, 503). */
static bool authenticate(http_req *rq, http_resp *rs)
{
    rq->v1 = true;
    if (rq->service_id)
        return true;
    int wait = http_rate_check(rq->http, rq->client, false);
    if (wait > 0) {
        sm_log(SM_LOG_WARN, "http api: rate limited", "client", rq->client, NULL);
        rs->retry_after = wait;
        http_resp_error(rs, 429, "ELIMIT", "too many failed authentications; try again later");
        return false;
    }
    const char *h = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Authorization");
    if (!h)
        return refuse(rq, rs, "missing",
                      "send the service token as \"Authorization: Bearer TOKEN\"", false);
    if (strncasecmp(h, "Bearer ", 7) != 0)
        return refuse(rq, rs, "malformed", "the Authorization header must be \"Bearer TOKEN\"",
                      true);
    const char *token = h + 7;
    while (*token == ' ')
        token++;
    if (!sm_service_token_well_formed(token))
        return refuse(rq, rs, "malformed", "not a service token (stepmark service add makes one)",
                      true);
    char hash[SM_SHA256_HEX];
    sm_sha256_hex(token, strlen(token), hash);
    PGconn *db = http_db(rq, rs);
    http_service_token t;
    sm_err err = {0};
    if (!db)
        return false;
    if (http_store_service_token(db, hash, &t, &err) != SM_OK) {
        http_v1_fail(rs, SM_EDB, err.msg);
        return false;
    }
    if (t.id == 0)
        return refuse(rq, rs, "unknown", "invalid or revoked token", true);
    if (t.expired)
        return refuse(rq, rs, "expired",
                      "this token has expired; ask your stepmark operator for "
                      "a new one",
                      true);
    if (t.touch_due && http_store_service_touch(db, t.id, &err) != SM_OK)
        sm_log(SM_LOG_WARN, "cannot record a service token's last use", "error", err.msg, NULL);
    rq->service_id = t.id;
    snprintf(rq->service_id_s, sizeof rq->service_id_s, "%lld", (long long)t.id);
    return true;
}

bool http_v1_admit(http_req *rq, http_resp *rs)
{
    rq->v1 = true;
    const char *type = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Content-Type");
    if (!authenticate(rq, rs))
        return false;
    if (!type || strncasecmp(type, "application/json", 16) != 0) {
        http_resp_error(rs, 415, "EINVAL", "requests must be application/json");
        return false;
    }
    rq->body_limit = rq->http->api_max_body;
    return true;
}

/* The submission of the path, when it lies in the token's courses; else fills rs. */
static bool submission_in_scope(http_req *rq, http_resp *rs, const char *seg, int64_t *id)
{
    sm_err err = {0};
    PGconn *db = http_db(rq, rs);
    if (!db)
        return false;
    sm_code rc = http_parse_id(seg, id)
                     ? http_store_service_submission(db, rq->service_id, *id, &err)
                     : sm_err_set(&err, SM_ENOTFOUND, "no such submission");
    if (rc != SM_OK)
        http_v1_fail(rs, rc, err.msg);
    return rc == SM_OK;
}

bool http_v1_course_in_scope(http_req *rq, http_resp *rs, const char *code, int64_t *id)
{
    sm_err err = {0};
    PGconn *db = http_db(rq, rs);
    if (!db)
        return false;
    sm_code rc = sm_proto_code_ok(code, 200)
                     ? http_store_service_course(db, rq->service_id, code, id, &err)
                     : sm_err_set(&err, SM_ENOTFOUND, "no such course");
    if (rc != SM_OK)
        http_v1_fail(rs, rc, err.msg);
    return rc == SM_OK;
}

/* Sends a JSON document from a query (rc, doc, err) as 200 or as the error. */
static void answer(http_resp *rs, sm_code rc, json_t *doc, const sm_err *err)
{
    if (rc == SM_OK)
        http_resp_json(rs, 200, doc ? doc : json_null());
    else
        http_v1_fail(rs, rc, err->msg);
}

/* ?reasoning=true|false (also 1|0); else fills a 400. */
static bool read_flag(http_req *rq, http_resp *rs, const char *name, bool *out)
{
    const char *v = http_arg(rq, name);
    *out = false;
    if (!v || !strcmp(v, "false") || !strcmp(v, "0"))
        return true;
    if (!strcmp(v, "true") || !strcmp(v, "1")) {
        *out = true;
        return true;
    }
    char msg[96];
    snprintf(msg, sizeof msg, "query parameter %s must be true or false", name);
    http_resp_error(rs, 400, "EINVAL", msg);
    return false;
}

/* GET /api/v1/submissions/{id}[/result|/final] */
static void submission(http_req *rq, http_resp *rs, const char *idseg, const char *what)
{
    int64_t id;
    bool reasoning = false;
    if (what && !strcmp(what, "result") && !read_flag(rq, rs, "reasoning", &reasoning))
        return;
    if (!submission_in_scope(rq, rs, idseg, &id))
        return;
    json_t *doc = NULL;
    sm_err err = {0};
    sm_code rc;
    if (!what) {
        rc = sm_grades_status(rq->db, id, &doc, &err);
    } else if (!strcmp(what, "result")) {
        rc = sm_grades_result(rq->db, id, reasoning, &doc, &err);
    } else {
        rc = sm_grades_final(rq->db, id, &doc, &err);
        if (rc == SM_OK)
            doc = json_pack("{s:I,s:o}", "submission_id", (json_int_t)id, "final",
                            doc ? doc : json_null());
    }
    answer(rs, rc, doc, &err);
}

/* GET /api/v1/courses/{course}/assignments/{code}/submissions?cursor=&updated_since=&limit= */
static void list(http_req *rq, http_resp *rs, const char *course, const char *code)
{
    int64_t cid, limit = 0;
    sm_list_query q = {.cursor = http_arg(rq, "cursor"),
                       .updated_since = http_arg(rq, "updated_since")};
    const char *l = http_arg(rq, "limit");
    if (l && (!http_parse_id(l, &limit) || limit > 1000)) {
        http_resp_error(rs, 400, "EINVAL", "limit must be a whole number from 1 to 1000");
        return;
    }
    if (q.updated_since && !sm_grades_rfc3339_ok(q.updated_since)) {
        http_resp_error(rs, 400, "EINVAL",
                        "updated_since must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z");
        return;
    }
    q.limit = (int)limit;
    if (!http_v1_course_in_scope(rq, rs, course, &cid))
        return;
    sm_assignment_ref a = {0};
    sm_err err = {0};
    sm_code rc = sm_proto_code_ok(code, 200)
                     ? sm_store_assignment_ref_conn(rq->db, course, code, &a, &err)
                     : sm_err_set(&err, SM_ENOTFOUND, "no such assignment");
    json_t *page = NULL;
    q.assignment_id = a.id;
    if (rc == SM_OK)
        rc = sm_grades_list(rq->db, &q, &page, &err);
    answer(rs, rc, page, &err);
}

/* GET /api/v1/courses[/{course}/assignments[/{code}[/submissions]]] */
static void courses(http_req *rq, http_resp *rs, char **seg, int n)
{
    json_t *doc = NULL;
    sm_err err = {0};
    int64_t cid;
    sm_code rc;
    if (n > 3 && (n < 5 || strcmp(seg[4], "assignments") != 0 ||
                  (n == 7 && strcmp(seg[6], "submissions") != 0))) {
        http_resp_error(rs, 404, "ENOTFOUND", "not found");
        return;
    }
    if (n == 7) {
        list(rq, rs, seg[3], seg[5]);
        return;
    }
    if (n == 3) {
        if (!http_db(rq, rs))
            return;
        rc = http_store_v1_courses(rq->db, rq->service_id, &doc, &err);
    } else if (!http_v1_course_in_scope(rq, rs, seg[3], &cid)) {
        return;
    } else if (n == 5) {
        rc = http_store_v1_assignments(rq->db, cid, &doc, &err);
    } else if (sm_proto_code_ok(seg[5], 200)) {
        rc = http_store_v1_assignment(rq->db, cid, seg[5], &doc, &err);
    } else {
        rc = sm_err_set(&err, SM_ENOTFOUND, "no such assignment");
    }
    answer(rs, rc, doc, &err);
}

void http_v1_route(http_req *rq, http_resp *rs)
{
    char buf[512];
    char *seg[9] = {0};
    int n = 0;
    if (strlen(rq->url) >= sizeof buf) {
        http_resp_error(rs, 414, "ELIMIT", "URL too long");
        return;
    }
    snprintf(buf, sizeof buf, "%s", rq->url);
    char *save = NULL;
    for (char *t = strtok_r(buf, "/", &save); t && n < 9; t = strtok_r(NULL, "/", &save))
        seg[n++] = t;
    bool get = !strcmp(rq->method, "GET") || !strcmp(rq->method, "HEAD");
    bool post = !strcmp(rq->method, "POST");
    if (!authenticate(rq, rs))
        return;
    /* seg: api v1 WHAT ... */
    const char *what = n >= 3 ? seg[2] : "";
    bool subs = !strcmp(what, "submissions");
    bool sub_item =
        subs && (n == 4 || (n == 5 && (!strcmp(seg[4], "result") || !strcmp(seg[4], "final"))));
    bool course_path = !strcmp(what, "courses") && n >= 3 && n <= 7;
    bool link_path = course_path && n == 5 && !strcmp(seg[4], "feedback-links");
    if (subs && n == 3)
        post ? http_v1_submit(rq, rs) : http_resp_error(rs, 405, "EINVAL", "use POST");
    else if (sub_item)
        get ? submission(rq, rs, seg[3], n == 5 ? seg[4] : NULL)
            : http_resp_error(rs, 405, "EINVAL", "use GET");
    else if (link_path)
        post ? http_v1_feedback_link(rq, rs, seg[3])
             : http_resp_error(rs, 405, "EINVAL", "use POST");
    else if (course_path)
        get ? courses(rq, rs, seg, n) : http_resp_error(rs, 405, "EINVAL", "use GET");
    else
        http_resp_error(rs, 404, "ENOTFOUND", "not found");
}
