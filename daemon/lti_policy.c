/* lti_policy: the teacher's choice, from the assignment page, of when an assignment's grades go
 * back to the LMS (docs/lti.md, grade passback): POST /api/assignments/ID/lti-passback with
 * {"policy": "on-approval" | "on-release" | "default"} ("default": the course's policy). Only
 * for assignments of the teacher's courses that are linked to an LMS course; a signed-in
 * session with its CSRF token, like every POST of the review API. The passback thread
 * (lti_passback.c) reads the policy when it handles each event, so the change applies to every
 * grade event not yet sent. */
#include <stdio.h>
#include <string.h>

#include "http_internal.h"
#include "http_store.h"
#include "sm_log.h"

/* The policy the body asks for: 'on-approval', 'on-release' or NULL (the course's); false with
 * a 400 when it names none of these. */
static bool read_policy(http_req *rq, http_resp *rs, const char **policy)
{
    json_t *body = json_incref(rq->json);
    if (!body && rq->body) {
        sm_err err = {0};
        if (http_body_json(rq->body, rq->len, &body, &err) != SM_OK) {
            http_resp_error(rs, 400, "EINVAL", err.msg);
            return false;
        }
    }
    const char *v = json_string_value(json_object_get(body, "policy"));
    static const char *const known[] = {"on-approval", "on-release"};
    *policy = NULL;
    for (size_t i = 0; v && i < sizeof known / sizeof known[0]; i++)
        if (strcmp(v, known[i]) == 0)
            *policy = known[i];
    bool ok = *policy || (v && strcmp(v, "default") == 0);
    json_decref(body);
    if (!ok)
        http_resp_error(rs, 400, "EINVAL", "policy must be on-approval, on-release or default");
    return ok;
}

void http_api_lti_passback(http_req *rq, http_resp *rs, int64_t assignment_id)
{
    const char *policy;
    if (!read_policy(rq, rs, &policy))
        return;
    PGconn *db = http_db(rq, rs);
    if (!db)
        return;
    char aid[24];
    snprintf(aid, sizeof aid, "%lld", (long long)assignment_id);
    const char *p[] = {aid, rq->teacher_id_s, policy};
    PGresult *r;
    sm_err err = {0};
    if (http_store_lti_passback_set(db, p, &r, &err) != SM_OK) {
        http_db_failed(rs, &err);
        return;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        http_resp_error(rs, 404, "ENOTFOUND", "no such assignment linked to an LMS course");
        return;
    }
    sm_log(SM_LOG_INFO, "lti passback policy", "teacher", rq->teacher_id_s, "assignment", aid,
           "policy", policy ? policy : "course default", NULL);
    http_resp_json(rs, 200, http_row_json(r, 0));
    PQclear(r);
}
