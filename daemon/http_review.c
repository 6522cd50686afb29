/* http_review: a teacher's action on one submission: approve the current score, adjust it
 * (with a comment), or send it back for regrading (a new queued job with a new random seed,
 * which the broker picks up like any other). Every action is stored as a review row (who, when,
 * old and new score, comment) plus an audit-log entry; the model's grading is never changed.
 * approve with "provisional": true approves the grading's provisional score from the checks.
 * A grading scored by rubric criteria is adjusted criterion by criterion ("criteria": {"id":
 * points}; http_review_criteria.c): the review's new score is the sum of the current points. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "http_review_criteria.h"
#include "http_store.h"
#include "sm_db.h"
#include "sm_log.h"

#define MAX_COMMENT 10000

typedef http_review_in review_in;

static bool read_body(http_req *rq, http_resp *rs, json_t **body, review_in *in);
bool http_review_read_body(http_req *rq, http_resp *rs, json_t **body, http_review_in *in)
{
    return read_body(rq, rs, body, in);
}

/* An adjust's score, or its criteria (checked against the grading in review_score); with
 * neither, review_score says which the grading needs. */
static bool read_adjust(http_resp *rs, const json_t *s, review_in *in)
{
    if (in->criteria && s) {
        http_resp_error(rs, 400, "EINVAL", "give either criteria or a score, not both");
        return false;
    }
    if (in->criteria || !s)
        return true;
    if (!json_is_number(s) || !isfinite(json_number_value(s)) || json_number_value(s) < 0 ||
        json_number_value(s) >= 1e9) {
        http_resp_error(rs, 400, "EINVAL", "adjust needs a score (a number >= 0)");
        return false;
    }
    snprintf(in->score, sizeof in->score, "%.2f", json_number_value(s));
    return true;
}

/* Reads the action from the body: rq->json when the server parsed it before dispatch, else
 * rq->body parsed here; either way by http_body_json (a JSON object, duplicate keys refused).
 * *body is a reference the caller drops. */
static bool read_body(http_req *rq, http_resp *rs, json_t **body, review_in *in)
{
    *body = json_incref(rq->json);
    if (!*body && rq->body) {
        sm_err err = {0};
        if (http_body_json(rq->body, rq->len, body, &err) != SM_OK) {
            http_resp_error(rs, 400, "EINVAL", err.msg);
            return false;
        }
    }
    if (!*body || !json_is_object(*body)) {
        http_resp_error(rs, 400, "EINVAL", "body must be a JSON object");
        return false;
    }
    in->action = json_string_value(json_object_get(*body, "action"));
    json_t *c = json_object_get(*body, "comment");
    in->comment = c ? json_string_value(c) : "";
    json_t *s = json_object_get(*body, "score");
    json_t *prov = json_object_get(*body, "provisional");
    in->score[0] = '\0';
    in->provisional = json_is_true(prov);
    if (!in->action || (strcmp(in->action, "approve") != 0 && strcmp(in->action, "adjust") != 0 &&
                        strcmp(in->action, "regrade") != 0)) {
        http_resp_error(rs, 400, "EINVAL", "action must be approve, adjust or regrade");
        return false;
    }
    if (prov && (!json_is_boolean(prov) || (in->provisional && strcmp(in->action, "approve")))) {
        http_resp_error(rs, 400, "EINVAL", "provisional must be true or false, with approve");
        return false;
    }
    if (!in->comment || strlen(in->comment) > MAX_COMMENT) {
        http_resp_error(rs, 400, "EINVAL", "comment must be a string of at most 10000 bytes");
        return false;
    }
    in->criteria = json_object_get(*body, "criteria");
    if (in->criteria && strcmp(in->action, "adjust")) {
        http_resp_error(rs, 400, "EINVAL", "criteria belong only in an adjust");
        return false;
    }
    if (strcmp(in->action, "adjust") == 0) {
        if (!read_adjust(rs, s, in))
            return false;
        const char *t = in->comment;
        while (*t == ' ' || *t == '\n' || *t == '\t' || *t == '\r')
            t++;
        if (!*t) {
            http_resp_error(rs, 400, "EINVAL", "adjusting a score needs a comment");
            return false;
        }
    }
    return true;
}

/* Runs the action inside the open transaction; fills rs on refusal (returns SM_ESTATE). */
/* What act() needs to know of a submission's latest grading and job. */
typedef struct review_state {
    bool has_grading, has_final, has_prov, pending;
    char gid[24], final[32], max[32], prov[32];
    json_t *criteria; /* the grading's criteria with current points ([] without) */
    json_t *changes;  /* an adjust by criteria: the review_criterion rows to store */
    char crit_total[32];
} review_state;

static sm_code load_state(PGconn *db, const char *const p[2], review_state *st, sm_err *err)
{
    PGresult *r;
    sm_code rc = http_store_review_state(db, p, &r, err);
    if (rc != SM_OK)
        return rc;
    st->has_grading = !PQgetisnull(r, 0, 0);
    snprintf(st->gid, sizeof st->gid, "%s", PQgetvalue(r, 0, 0));
    st->has_final = !PQgetisnull(r, 0, 1);
    snprintf(st->final, sizeof st->final, "%s", PQgetvalue(r, 0, 1));
    snprintf(st->max, sizeof st->max, "%s", PQgetvalue(r, 0, 2));
    const char *job_state = PQgetvalue(r, 0, 3);
    st->pending = strcmp(job_state, "queued") == 0 || strcmp(job_state, "leased") == 0;
    st->has_prov = !PQgetisnull(r, 0, 4);
    snprintf(st->prov, sizeof st->prov, "%s", PQgetvalue(r, 0, 4));
    PQclear(r);
    st->criteria = NULL;
    st->changes = NULL;
    if (!st->has_grading)
        return SM_OK;
    return http_review_criteria_load(db, st->gid, &st->criteria, err);
}

/* An adjust's new score: in->score for a grading without criteria, the sum of the criteria's
 * points after the change for one scored by criteria; a 400 answered on rs otherwise. */
static sm_code adjust_score(http_resp *rs, const review_in *in, review_state *st,
                            const char **new_score)
{
    bool by_criteria = json_array_size(st->criteria) > 0;
    char msg[256];
    if (by_criteria && !in->criteria) {
        http_resp_error(rs, 400, "EINVAL",
                        "this grading is scored by criteria: adjust the criteria's points");
        return SM_ESTATE;
    }
    if (!by_criteria && in->criteria) {
        http_resp_error(rs, 400, "EINVAL", "this grading has no criteria: adjust its score");
        return SM_ESTATE;
    }
    if (!by_criteria && !in->score[0]) {
        http_resp_error(rs, 400, "EINVAL", "adjust needs a score (a number >= 0)");
        return SM_ESTATE;
    }
    if (by_criteria && !http_review_criteria_apply(st->criteria, in->criteria, &st->changes,
                                                   st->crit_total, msg)) {
        http_resp_error(rs, 400, "EINVAL", msg);
        return SM_ESTATE;
    }
    *new_score = by_criteria ? st->crit_total : in->score;
    if (strtod(*new_score, NULL) > strtod(st->max, NULL) + 0.005) {
        http_resp_error(rs, 400, "EINVAL", "score is above the maximum");
        return SM_ESTATE;
    }
    return SM_OK;
}

/* A new grading job with a fresh seed; its id and seed go into result. */
static sm_code regrade(PGconn *db, http_resp *rs, const char *sid, const review_state *st,
                       json_t *result, sm_err *err)
{
    if (st->pending) {
        http_resp_error(rs, 409, "ESTATE", "a grading job for this submission is already pending");
        return SM_ESTATE;
    }
    char hex[17], seed[24];
    sm_code rc = sm_random_hex(8, hex, err);
    if (rc != SM_OK)
        return rc;
    unsigned long long s = strtoull(hex, NULL, 16) & 0x7fffffffffffffffULL;
    snprintf(seed, sizeof seed, "%llu", s);
    const char *pj[] = {sid, seed};
    PGresult *r;
    rc = http_store_regrade_job(db, pj, &r, err);
    if (rc != SM_OK)
        return rc;
    json_object_set_new(result, "job_id", json_integer(strtoll(PQgetvalue(r, 0, 0), NULL, 10)));
    json_object_set_new(result, "seed", json_integer((json_int_t)s));
    PQclear(r);
    return SM_OK;
}

/* The score an approve or adjust records, or an error answered on rs. */
static sm_code review_score(http_resp *rs, const review_in *in, review_state *st,
                            const char **new_score)
{
    if (!st->has_grading) {
        http_resp_error(rs, 409, "ESTATE", "this submission has no grading yet");
        return SM_ESTATE;
    }
    if (st->pending) {
        http_resp_error(rs, 409, "ESTATE", "a regrade is pending; wait for its result");
        return SM_ESTATE;
    }
    if (strcmp(in->action, "approve") == 0 && in->provisional) {
        if (!st->has_prov) {
            http_resp_error(rs, 409, "ESTATE",
                            "this grading has no provisional score from the checks");
            return SM_ESTATE;
        }
        *new_score = st->prov;
    } else if (strcmp(in->action, "approve") == 0) {
        if (!st->has_final) {
            http_resp_error(rs, 409, "ESTATE",
                            "the model gave no score: adjust it instead of approving");
            return SM_ESTATE;
        }
        *new_score = st->final;
    } else {
        return adjust_score(rs, in, st, new_score);
    }
    return SM_OK;
}

static sm_code add_review(PGconn *db, http_req *rq, const review_in *in, const review_state *st,
                          const char *new_score, json_t *result, sm_err *err)
{
    const char *comment = in->provisional && !*in->comment
                              ? "approved the provisional score from the checks"
                              : in->comment;
    const char *pr[] = {st->gid,   rq->teacher_id_s, in->action, st->has_final ? st->final : NULL,
                        new_score, comment};
    PGresult *r;
    sm_code rc = http_store_review_add(db, pr, &r, err);
    if (rc != SM_OK)
        return rc;
    json_object_set_new(result, "review_id", json_integer(strtoll(PQgetvalue(r, 0, 0), NULL, 10)));
    if (st->changes)
        rc = http_review_criteria_store(db, PQgetvalue(r, 0, 0), st->changes, err);
    PQclear(r);
    return rc;
}

/* act() with the submission locked and its state st loaded. */
static sm_code act_on(PGconn *db, http_req *rq, http_resp *rs, const char *sid, const review_in *in,
                      review_state *st, json_t *result, sm_err *err)
{
    sm_code rc;
    const char *new_score = NULL;
    if (strcmp(in->action, "regrade") == 0) {
        rc = regrade(db, rs, sid, st, result, err);
        /* without a grading there is nothing to attach a review row to: the audit log has it */
        if (rc == SM_OK && st->has_grading)
            rc = add_review(db, rq, in, st, NULL, result, err);
    } else {
        rc = review_score(rs, in, st, &new_score);
        if (rc == SM_OK)
            rc = add_review(db, rq, in, st, new_score, result, err);
    }
    if (rc != SM_OK)
        return rc;
    const char *pa[] = {rq->teacher_id_s,
                        in->action,
                        sid,
                        st->has_final ? st->final : NULL,
                        new_score,
                        st->has_grading ? st->gid : NULL};
    rc = http_store_audit_review(db, pa, err);
    if (rc != SM_OK)
        return rc;
    if (new_score)
        json_object_set_new(result, "new_score", json_real(strtod(new_score, NULL)));
    return SM_OK;
}

static sm_code act(PGconn *db, http_req *rq, http_resp *rs, const char *sid, const review_in *in,
                   json_t *result, sm_err *err)
{
    const char *p[] = {sid, rq->teacher_id_s};
    PGresult *r;
    /* Lock the submission (scoped to the teacher) so concurrent reviews serialise. */
    sm_code rc = http_store_review_lock(db, p, &r, err);
    if (rc != SM_OK)
        return rc;
    int found = PQntuples(r);
    PQclear(r);
    if (!found) {
        http_resp_error(rs, 404, "ENOTFOUND", "no such submission");
        return SM_ENOTFOUND;
    }
    review_state st = {0};
    rc = load_state(db, p, &st, err);
    if (rc == SM_OK)
        rc = act_on(db, rq, rs, sid, in, &st, result, err);
    json_decref(st.criteria);
    json_decref(st.changes);
    return rc;
}

void http_api_review(http_req *rq, http_resp *rs, int64_t submission_id)
{
    json_t *body = NULL;
    review_in in;
    if (!read_body(rq, rs, &body, &in)) {
        json_decref(body);
        return;
    }
    PGconn *db = http_db(rq, rs);
    if (!db) {
        json_decref(body);
        return;
    }
    char sid[24];
    snprintf(sid, sizeof sid, "%lld", (long long)submission_id);
    sm_err err = {0};
    json_t *result = json_object();
    sm_code rc = sm_db_exec(db, "BEGIN", &err);
    if (rc == SM_OK)
        rc = act(db, rq, rs, sid, &in, result, &err);
    if (rc == SM_OK)
        rc = sm_db_exec(db, "COMMIT", &err);
    if (rc != SM_OK) {
        sm_err ignored;
        sm_db_exec(db, "ROLLBACK", &ignored);
        if (rc != SM_ENOTFOUND && rc != SM_ESTATE)
            http_db_failed(rs, &err);
        json_decref(result);
        json_decref(body);
        return;
    }
    sm_log(SM_LOG_INFO, "review stored", "teacher", rq->teacher_id_s, "submission", sid, "action",
           in.action, NULL);
    json_object_set_new(result, "action", json_string(in.action));
    json_decref(body);
    http_resp_json(rs, 200, result);
}
