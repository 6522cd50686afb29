/* http_release: releasing feedback to students (docs/teacher-guide.md, docs/
 * student-feedback.md). A teacher releases an assignment's gradings, or selected submissions',
 * as review rows with action 'release' (the review history); only existing gradings with a
 * score and no pending regrade are released, releasing again is harmless, and a regrade's new
 * grading needs a new release. A student reads their released feedback through a signed,
 * expiring link: GET /api/student/feedback?t=TOKEN answers without a teacher session, and every
 * bad link gets the same 403. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_release.h"
#include "sm_db.h"
#include "sm_log.h"
#include "sm_student_link.h"

#define MAX_SELECTED 5000
#define STUDENT_LINK_REFUSED                                                                  \
    "This feedback link is not valid: it may have expired or been changed. Ask your teacher " \
    "for a new link."

/* What a release request asks for. */
typedef struct release_in {
    char *ids;      /* PostgreSQL array literal of the selected submissions, NULL = all */
    json_t *wanted; /* the selected ids as a JSON array, NULL = all */
    bool include_reasoning;
} release_in;

/* Reads {"submissions": [ID...], "include_reasoning": bool}; every key is optional and an
 * empty body means {}. Fills a 400 and returns false when it is malformed. */
static bool read_release(http_req *rq, http_resp *rs, release_in *in)
{
    json_t *body = json_incref(rq->json);
    if (!body && rq->body && rq->len > 0) {
        sm_err err = {0};
        if (http_body_json(rq->body, rq->len, &body, &err) != SM_OK) {
            http_resp_error(rs, 400, "EINVAL", err.msg);
            return false;
        }
    }
    bool ok = true;
    json_t *subs = body ? json_object_get(body, "submissions") : NULL;
    json_t *reasoning = body ? json_object_get(body, "include_reasoning") : NULL;
    if (reasoning && !json_is_boolean(reasoning)) {
        http_resp_error(rs, 400, "EINVAL", "include_reasoning must be true or false");
        ok = false;
    } else if (subs && (!json_is_array(subs) || json_array_size(subs) == 0 ||
                        json_array_size(subs) > MAX_SELECTED)) {
        http_resp_error(rs, 400, "EINVAL", "submissions must be a list of 1 to 5000 ids");
        ok = false;
    }
    in->include_reasoning = json_is_true(reasoning);
    if (ok && subs) {
        size_t cap = json_array_size(subs) * 21 + 3, k = 0, i;
        in->ids = malloc(cap);
        in->wanted = json_array();
        json_t *v;
        if (!in->ids || !in->wanted) {
            http_resp_error(rs, 500, "ENOMEM", "out of memory");
            json_decref(body);
            return false;
        }
        in->ids[k++] = '{';
        json_array_foreach(subs, i, v)
        {
            if (!json_is_integer(v) || json_integer_value(v) <= 0) {
                http_resp_error(rs, 400, "EINVAL", "submissions must be positive integer ids");
                ok = false;
                break;
            }
            k += (size_t)snprintf(in->ids + k, cap - k, "%s%lld", i ? "," : "",
                                  (long long)json_integer_value(v));
            json_array_append(in->wanted, v);
        }
        if (ok)
            snprintf(in->ids + k, cap - k, "}");
    }
    json_decref(body);
    return ok;
}

static void release_in_free(release_in *in)
{
    free(in->ids);
    json_decref(in->wanted);
}

/* The outcome of one request, reported back to the teacher. */
typedef struct release_out {
    json_t *released, *already, *skipped;
} release_out;

static void skip(release_out *o, json_t *id, const char *reason)
{
    json_array_append_new(o->skipped,
                          json_pack("{s:O,s:s}", "submission_id", id, "reason", reason));
}

/* Releases every candidate row that can be; runs inside the open transaction. */
static sm_code release_rows(PGconn *db, http_req *rq, PGresult *r, const release_in *in,
                            release_out *o, sm_err *err)
{
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *id = json_integer(strtoll(PQgetvalue(r, i, REL_COL_SUBMISSION), NULL, 10));
        const char *released = PQgetvalue(r, i, REL_COL_RELEASED);
        sm_code rc = SM_OK;
        if (PQgetisnull(r, i, REL_COL_GRADING))
            skip(o, id, "not graded yet");
        else if (PQgetvalue(r, i, REL_COL_PENDING)[0] == 't')
            skip(o, id, "a regrade is pending");
        else if (PQgetisnull(r, i, REL_COL_SCORE))
            skip(o, id, "no score: adjust it first");
        else if (!PQgetisnull(r, i, REL_COL_RELEASED) &&
                 (released[0] == 't') == in->include_reasoning)
            json_array_append(o->already, id);
        else {
            rc = http_release_insert(db, PQgetvalue(r, i, REL_COL_GRADING), rq->teacher_id_s,
                                     PQgetvalue(r, i, REL_COL_SCORE), in->include_reasoning, err);
            if (rc == SM_OK)
                json_array_append(o->released, id);
        }
        json_decref(id);
        if (rc != SM_OK)
            return rc;
    }
    return SM_OK;
}

/* Selected ids that are not submissions of this assignment. */
static void skip_missing(PGresult *r, const release_in *in, release_out *o)
{
    size_t i;
    json_t *v;
    json_array_foreach(in->wanted, i, v)
    {
        bool found = false;
        for (int k = 0; k < PQntuples(r) && !found; k++)
            found =
                strtoll(PQgetvalue(r, k, REL_COL_SUBMISSION), NULL, 10) == json_integer_value(v);
        if (!found)
            skip(o, v, "not a submission of this assignment");
    }
}

/* The whole request inside the open transaction; SM_ENOTFOUND with rs filled when the
 * assignment is not the teacher's. */
static sm_code release_tx(PGconn *db, http_req *rq, http_resp *rs, const char *aid,
                          const release_in *in, release_out *o, sm_err *err)
{
    bool owned = false;
    sm_code rc = http_release_assignment_owned(db, aid, rq->teacher_id_s, &owned, err);
    if (rc != SM_OK)
        return rc;
    if (!owned) {
        http_resp_error(rs, 404, "ENOTFOUND", "no such assignment");
        return SM_ENOTFOUND;
    }
    PGresult *r;
    rc = http_release_candidates(db, aid, in->ids, &r, err);
    if (rc != SM_OK)
        return rc;
    rc = release_rows(db, rq, r, in, o, err);
    if (in->wanted)
        skip_missing(r, in, o);
    PQclear(r);
    if (rc != SM_OK || json_array_size(o->released) == 0)
        return rc;
    json_t *details = json_pack("{s:O,s:b}", "submissions", o->released, "include_reasoning",
                                in->include_reasoning);
    char *text = json_dumps(details, JSON_COMPACT);
    json_decref(details);
    rc = text ? http_release_audit(db, rq->teacher_id_s, aid, text, err)
              : sm_err_set(err, SM_ENOMEM, "out of memory");
    free(text);
    return rc;
}

void http_api_release(http_req *rq, http_resp *rs, int64_t assignment_id)
{
    release_in in = {0};
    if (!read_release(rq, rs, &in)) {
        release_in_free(&in);
        return;
    }
    PGconn *db = http_db(rq, rs);
    if (!db) {
        release_in_free(&in);
        return;
    }
    char aid[24];
    snprintf(aid, sizeof aid, "%lld", (long long)assignment_id);
    release_out o = {json_array(), json_array(), json_array()};
    sm_err err = {0};
    sm_code rc = sm_db_exec(db, "BEGIN", &err);
    if (rc == SM_OK)
        rc = release_tx(db, rq, rs, aid, &in, &o, &err);
    if (rc == SM_OK)
        rc = sm_db_exec(db, "COMMIT", &err);
    if (rc != SM_OK) {
        sm_err ignored;
        sm_db_exec(db, "ROLLBACK", &ignored);
        if (rc != SM_ENOTFOUND)
            http_db_failed(rs, &err);
        json_decref(o.released);
        json_decref(o.already);
        json_decref(o.skipped);
        release_in_free(&in);
        return;
    }
    char n[16];
    snprintf(n, sizeof n, "%zu", json_array_size(o.released));
    sm_log(SM_LOG_INFO, "feedback released", "teacher", rq->teacher_id_s, "assignment", aid,
           "released", n, NULL);
    http_resp_json(rs, 200,
                   json_pack("{s:o,s:o,s:o,s:b}", "released", o.released, "already_released",
                             o.already, "skipped", o.skipped, "include_reasoning",
                             in.include_reasoning));
    release_in_free(&in);
}

void http_api_releases(http_req *rq, http_resp *rs, int64_t assignment_id)
{
    PGconn *db = http_db(rq, rs);
    if (!db)
        return;
    char aid[24];
    snprintf(aid, sizeof aid, "%lld", (long long)assignment_id);
    sm_err err = {0};
    bool owned = false;
    PGresult *r = NULL;
    sm_code rc = http_release_assignment_owned(db, aid, rq->teacher_id_s, &owned, &err);
    if (rc == SM_OK && !owned) {
        http_resp_error(rs, 404, "ENOTFOUND", "no such assignment");
        return;
    }
    if (rc == SM_OK)
        rc = http_release_states(db, aid, &r, &err);
    if (rc != SM_OK) {
        http_db_failed(rs, &err);
        return;
    }
    json_t *doc = json_pack("{s:o}", "submissions", http_rows_json(r));
    PQclear(r);
    http_resp_json(rs, 200, doc);
}

/* One row of http_student_feedback_rows as the student page shows it. */
static json_t *feedback_item(PGresult *r, int i)
{
    json_t *row = http_row_json(r, i);
    json_t *item = json_object_get(row, "feedback");
    item = json_is_object(item) ? json_incref(item) : json_object();
    json_object_set_new(item, "assignment",
                        json_pack("{s:O,s:O,s:O}", "code", json_object_get(row, "assignment_code"),
                                  "title", json_object_get(row, "assignment_title"), "kind",
                                  json_object_get(row, "assignment_kind")));
    json_object_set(item, "submitted_at", json_object_get(row, "submitted_at"));
    json_decref(row);
    return item;
}

/* The student's course and released feedback; SM_ENOTFOUND when the course is gone. */
static sm_code student_doc(PGconn *db, const sm_student_claims *c, json_t **out, sm_err *err)
{
    char cid[24], exp[32];
    snprintf(cid, sizeof cid, "%lld", (long long)c->course_id);
    PGresult *r;
    sm_code rc = http_student_course(db, cid, &r, err);
    if (rc != SM_OK)
        return rc;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return SM_ENOTFOUND;
    }
    time_t t = (time_t)c->expires;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(exp, sizeof exp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *doc = json_pack("{s:{s:o,s:o},s:o,s:s,s:[]}", "course", "code",
                            http_json_string(PQgetvalue(r, 0, 0)), "title",
                            http_json_string(PQgetvalue(r, 0, 1)), "student_ref",
                            http_json_string(c->student_ref), "expires_at", exp, "feedback");
    PQclear(r);
    if (!doc)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    rc = http_student_feedback_rows(db, cid, c->student_ref, &r, err);
    if (rc != SM_OK) {
        json_decref(doc);
        return rc;
    }
    json_t *list = json_object_get(doc, "feedback");
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(list, feedback_item(r, i));
    PQclear(r);
    *out = doc;
    return SM_OK;
}

void http_student_feedback(http_req *rq, http_resp *rs)
{
    const char *token = http_arg(rq, "t");
    if (!token) {
        http_resp_error(rs, 403, "EAUTH", STUDENT_LINK_REFUSED);
        return;
    }
    PGconn *db = http_db(rq, rs);
    if (!db)
        return;
    sm_student_claims c;
    sm_err err = {0};
    json_t *doc = NULL;
    sm_code rc = sm_student_link_check(db, token, &c, &err);
    if (rc == SM_OK)
        rc = student_doc(db, &c, &doc, &err);
    if (rc == SM_EINVAL || rc == SM_ENOTFOUND) {
        sm_log(SM_LOG_INFO, "student link refused", "client", rq->client, NULL);
        http_resp_error(rs, 403, "EAUTH", STUDENT_LINK_REFUSED);
        return;
    }
    if (rc != SM_OK) {
        http_db_failed(rs, &err);
        return;
    }
    http_resp_json(rs, 200, doc);
}
