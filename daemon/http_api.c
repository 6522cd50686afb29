/* http_api: the read side of the review API: courses, assignments (counts by state, flagged
 * count, score histogram, filtered and sorted submissions) and one submission with everything
 * a teacher needs to review it. Every query joins course_teacher on the signed-in teacher, so a
 * teacher only ever sees their own courses; anything else is "not found". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "http_store.h"

void http_api_courses(http_req *rq, http_resp *rs)
{
    PGconn *db = http_db(rq, rs);
    if (!db)
        return;
    const char *p[] = {rq->teacher_id_s};
    PGresult *r;
    sm_err err = {0};
    if (http_store_teacher_courses(db, p, &r, &err) != SM_OK) {
        http_db_failed(rs, &err);
        return;
    }
    json_t *doc = json_pack("{s:o}", "courses", http_rows_json(r));
    PQclear(r);
    http_resp_json(rs, 200, doc);
}

void http_api_course(http_req *rq, http_resp *rs, int64_t id)
{
    PGconn *db = http_db(rq, rs);
    if (!db)
        return;
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    const char *p[] = {ids, rq->teacher_id_s};
    PGresult *r;
    sm_err err = {0};
    if (http_store_teacher_course(db, p, &r, &err) != SM_OK) {
        http_db_failed(rs, &err);
        return;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        http_resp_error(rs, 404, "ENOTFOUND", "no such course");
        return;
    }
    json_t *doc = json_pack("{s:o}", "course", http_row_json(r, 0));
    PQclear(r);
    if (http_store_course_assignments(db, p, &r, &err) != SM_OK) {
        json_decref(doc);
        http_db_failed(rs, &err);
        return;
    }
    json_object_set_new(doc, "assignments", http_rows_json(r));
    PQclear(r);
    http_resp_json(rs, 200, doc);
}

/* ---- submission filters shared by the list and the previous/next navigation ---- */

typedef http_filter filter;

static const struct {
    const char *name, *sql;
} SORTS[] = {
    {"student", "st.student_ref, st.submission_id"},
    {"-student", "st.student_ref DESC, st.submission_id DESC"},
    {"score", "st.final_score ASC NULLS FIRST, st.student_ref, st.submission_id"},
    {"-score", "st.final_score DESC NULLS LAST, st.student_ref, st.submission_id"},
    {"confidence", "st.confidence ASC NULLS FIRST, st.student_ref, st.submission_id"},
    {"-confidence", "st.confidence DESC NULLS LAST, st.student_ref, st.submission_id"},
    {"received", "st.received_at, st.submission_id"},
    {"-received", "st.received_at DESC, st.submission_id DESC"},
    {"state", "st.state, st.student_ref, st.submission_id"},
};

static const char *STATES[] = {"queued",       "running", "failed",  "cancelled",
                               "needs_review", "graded",  "reviewed"};

/* An absent bound, or a plain decimal within +-1e9 (never 0x10, 1e5, " 5", nan, inf). */
static bool valid_number(const char *s)
{
    return !s || http_decimal_valid(s);
}

/* Reads the filter from the query string; false (with a 400) if a value is invalid. */
static bool filter_read(http_req *rq, http_resp *rs, filter *f);
bool http_filter_read(http_req *rq, http_resp *rs, http_filter *f)
{
    return filter_read(rq, rs, f);
}

static bool filter_read(http_req *rq, http_resp *rs, filter *f)
{
    f->state = http_arg(rq, "state");
    f->flag = http_arg(rq, "flag");
    f->min = http_arg(rq, "min");
    f->max = http_arg(rq, "max");
    f->q = http_arg(rq, "q");
    const char *sort = http_arg(rq, "sort");
    f->order = SORTS[0].sql;
    if (sort) {
        bool found = false;
        for (size_t i = 0; i < sizeof SORTS / sizeof SORTS[0]; i++)
            if (strcmp(sort, SORTS[i].name) == 0) {
                f->order = SORTS[i].sql;
                found = true;
            }
        if (!found) {
            http_resp_error(rs, 400, "EINVAL", "unknown sort");
            return false;
        }
    }
    if (f->state) {
        bool found = false;
        for (size_t i = 0; i < sizeof STATES / sizeof STATES[0]; i++)
            found |= strcmp(f->state, STATES[i]) == 0;
        if (!found) {
            http_resp_error(rs, 400, "EINVAL", "unknown state");
            return false;
        }
    }
    if (!valid_number(f->min) || !valid_number(f->max)) {
        http_resp_error(rs, 400, "EINVAL",
                        "min and max must be plain decimal numbers between -1e9 and 1e9");
        return false;
    }
    if ((f->flag && strlen(f->flag) > 200) || (f->q && strlen(f->q) > 200)) {
        http_resp_error(rs, 400, "EINVAL", "filter too long");
        return false;
    }
    return true;
}

void http_api_assignment(http_req *rq, http_resp *rs, int64_t id)
{
    filter f;
    if (!filter_read(rq, rs, &f))
        return;
    PGconn *db = http_db(rq, rs);
    if (!db)
        return;
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    const char *p[] = {ids, rq->teacher_id_s};
    PGresult *r;
    sm_err err = {0};
    if (http_store_assignment(db, p, &r, &err) != SM_OK) {
        http_db_failed(rs, &err);
        return;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        http_resp_error(rs, 404, "ENOTFOUND", "no such assignment");
        return;
    }
    json_t *doc = json_pack("{s:o}", "assignment", http_row_json(r, 0));
    PQclear(r);

    const char *fp[] = {ids, f.state, f.flag, f.min, f.max, f.q, rq->teacher_id_s};
    if (http_store_filtered_submissions(db, f.order, fp, &r, &err) != SM_OK) {
        json_decref(doc);
        http_db_failed(rs, &err);
        return;
    }
    json_object_set_new(doc, "submissions", http_rows_json(r));
    PQclear(r);
    http_resp_json(rs, 200, doc);
}

/* Adds {prev, next, position, count} for submission sid within the filtered list, or within
 * the whole assignment when sid is not in the filtered list. */
static sm_code add_nav(PGconn *db, http_req *rq, const filter *f, const char *aid, const char *sid,
                       json_t *doc, sm_err *err)
{
    for (int pass = 0; pass < 2; pass++) {
        const char *p[] = {aid,
                           pass ? NULL : f->state,
                           pass ? NULL : f->flag,
                           pass ? NULL : f->min,
                           pass ? NULL : f->max,
                           pass ? NULL : f->q,
                           rq->teacher_id_s,
                           sid};
        PGresult *r;
        sm_code rc = http_store_submission_nav(db, f->order, p, &r, err);
        if (rc != SM_OK)
            return rc;
        if (PQntuples(r) == 1) {
            json_t *nav = http_row_json(r, 0);
            json_object_set_new(nav, "filtered", json_boolean(pass == 0));
            json_object_set_new(doc, "nav", nav);
            PQclear(r);
            return SM_OK;
        }
        PQclear(r);
    }
    json_object_set_new(doc, "nav", json_null());
    return SM_OK;
}

static sm_code add_rows(PGconn *db, json_t *doc, const char *key, http_store_rows_fn *query,
                        const char *const *p, sm_err *err)
{
    PGresult *r;
    sm_code rc = query(db, p, &r, err);
    if (rc != SM_OK)
        return rc;
    json_object_set_new(doc, key, http_rows_json(r));
    PQclear(r);
    return SM_OK;
}

void http_api_submission(http_req *rq, http_resp *rs, int64_t id)
{
    filter f;
    if (!filter_read(rq, rs, &f))
        return;
    PGconn *db = http_db(rq, rs);
    if (!db)
        return;
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    const char *p[] = {ids, rq->teacher_id_s};
    PGresult *r;
    sm_err err = {0};
    if (http_store_submission(db, p, &r, &err) != SM_OK) {
        http_db_failed(rs, &err);
        return;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        http_resp_error(rs, 404, "ENOTFOUND", "no such submission");
        return;
    }
    json_t *doc = json_pack("{s:o}", "submission", http_row_json(r, 0));
    char aid[24], gid[24] = "";
    snprintf(aid, sizeof aid, "%s", PQgetvalue(r, 0, PQfnumber(r, "assignment_id")));
    int gcol = PQfnumber(r, "grading_id");
    if (!PQgetisnull(r, 0, gcol))
        snprintf(gid, sizeof gid, "%s", PQgetvalue(r, 0, gcol));
    PQclear(r);

    const char *pid[] = {ids};
    const char *pg[] = {gid};
    sm_code rc = SM_OK;
    if (gid[0]) {
        rc = http_store_grading(db, pg, &r, &err);
        if (rc == SM_OK) {
            json_object_set_new(doc, "grading", http_row_json(r, 0));
            PQclear(r);
        }
        if (rc == SM_OK)
            rc = add_rows(db, doc, "steps", http_store_steps, pg, &err);
        if (rc == SM_OK)
            rc = add_rows(db, doc, "checks", http_store_checks, pg, &err);
        if (rc == SM_OK)
            rc = add_rows(db, doc, "chains", http_store_chains, pg, &err);
    } else {
        json_object_set_new(doc, "grading", json_null());
        json_object_set_new(doc, "steps", json_array());
        json_object_set_new(doc, "checks", json_array());
        json_object_set_new(doc, "chains", json_array());
    }
    if (rc == SM_OK)
        rc = add_rows(db, doc, "gradings", http_store_gradings, pid, &err);
    if (rc == SM_OK)
        rc = add_rows(db, doc, "reviews", http_store_reviews, pid, &err);
    if (rc == SM_OK)
        rc = add_rows(db, doc, "jobs", http_store_jobs, pid, &err);
    if (rc == SM_OK)
        rc = add_nav(db, rq, &f, aid, ids, doc, &err);
    if (rc != SM_OK) {
        json_decref(doc);
        http_db_failed(rs, &err);
        return;
    }
    http_resp_json(rs, 200, doc);
}
