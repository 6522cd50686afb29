/* http_api: the read side of the review API: courses, assignments (counts by state, flagged
 * count, score histogram, filtered and sorted submissions) and one submission with everything
 * a teacher needs to review it. Every query joins course_teacher on the signed-in teacher, so a
 * teacher only ever sees their own courses; anything else is "not found". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "sm_db.h"

/* Per-assignment summary in one pass over its submissions: total, counts by state, flagged,
 * mean final score and a 10-bin histogram of final scores. Columns need alias a for the
 * assignment and ASSIGNMENT_SUMMARY_JOIN after the FROM list. */
#define ASSIGNMENT_SUMMARY                                                             \
    "a.id, a.code, a.title, a.kind, a.max_score, a.course_id, agg.total, agg.counts, " \
    "agg.flagged, agg.mean_score, agg.histogram"
#define ASSIGNMENT_SUMMARY_JOIN                                                                  \
    " LEFT JOIN LATERAL (SELECT count(*) AS total, "                                             \
    "jsonb_strip_nulls(jsonb_build_object("                                                      \
    "  'queued', NULLIF(count(*) FILTER (WHERE x.state = 'queued'), 0), "                        \
    "  'running', NULLIF(count(*) FILTER (WHERE x.state = 'running'), 0), "                      \
    "  'failed', NULLIF(count(*) FILTER (WHERE x.state = 'failed'), 0), "                        \
    "  'cancelled', NULLIF(count(*) FILTER (WHERE x.state = 'cancelled'), 0), "                  \
    "  'needs_review', NULLIF(count(*) FILTER (WHERE x.state = 'needs_review'), 0), "            \
    "  'graded', NULLIF(count(*) FILTER (WHERE x.state = 'graded'), 0), "                        \
    "  'reviewed', NULLIF(count(*) FILTER (WHERE x.state = 'reviewed'), 0))) AS counts, "        \
    "count(*) FILTER (WHERE x.flagged) AS flagged, "                                             \
    "round(avg(x.final_score), 2) AS mean_score, "                                               \
    "jsonb_build_array("                                                                         \
    "  count(*) FILTER (WHERE x.bin = 1), count(*) FILTER (WHERE x.bin = 2), "                   \
    "  count(*) FILTER (WHERE x.bin = 3), count(*) FILTER (WHERE x.bin = 4), "                   \
    "  count(*) FILTER (WHERE x.bin = 5), count(*) FILTER (WHERE x.bin = 6), "                   \
    "  count(*) FILTER (WHERE x.bin = 7), count(*) FILTER (WHERE x.bin = 8), "                   \
    "  count(*) FILTER (WHERE x.bin = 9), count(*) FILTER (WHERE x.bin = 10)"                    \
    ") AS histogram "                                                                            \
    "FROM (SELECT y.state, y.flagged, y.final_score, CASE WHEN y.final_score IS NOT NULL "       \
    "  THEN least(greatest(width_bucket(y.final_score, 0, a.max_score, 10), 1), 10) END AS bin " \
    "  FROM submission_status y "                                                                \
    "  WHERE y.assignment_id = a.id) x) agg ON true"

void http_api_courses(http_req *rq, http_resp *rs)
{
    PGconn *db = http_db(rq, rs);
    if (!db)
        return;
    const char *p[] = {rq->teacher_id_s};
    PGresult *r;
    sm_err err = {0};
    if (sm_db_query(db,
                    "SELECT c.id, c.code, c.title, "
                    "(SELECT count(*) FROM assignment a WHERE a.course_id = c.id) AS assignments, "
                    "(SELECT count(*) FROM submission s JOIN assignment a ON a.id = "
                    "  s.assignment_id WHERE a.course_id = c.id) AS submissions, "
                    "(SELECT count(*) FROM submission_status st JOIN assignment a ON a.id = "
                    "  st.assignment_id WHERE a.course_id = c.id AND st.state = 'needs_review') "
                    "  AS needs_review "
                    "FROM course c JOIN course_teacher ct ON ct.course_id = c.id "
                    "WHERE ct.teacher_id = $1::bigint ORDER BY c.code",
                    1, p, &r, &err) != SM_OK) {
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
    if (sm_db_query(db,
                    "SELECT c.id, c.code, c.title FROM course c JOIN course_teacher ct ON "
                    "ct.course_id = c.id AND ct.teacher_id = $2::bigint WHERE c.id = $1::bigint",
                    2, p, &r, &err) != SM_OK) {
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
    if (sm_db_query(
            db,
            "SELECT " ASSIGNMENT_SUMMARY " FROM assignment a JOIN course_teacher ct ON "
            "ct.course_id = a.course_id AND ct.teacher_id = $2::bigint" ASSIGNMENT_SUMMARY_JOIN
            " WHERE a.course_id = $1::bigint "
            "ORDER BY a.created_at, a.id",
            2, p, &r, &err) != SM_OK) {
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

/* Parameters $2..$6 of every filtered query ($1 is the assignment, $7 the teacher). */
#define FILTER_WHERE                                                                       \
    " st.assignment_id = $1::bigint"                                                       \
    " AND ($2::text IS NULL OR st.state = $2)"                                             \
    " AND ($3::text IS NULL OR ($3 = '*' AND st.flagged) OR ($3 = '-' AND NOT st.flagged)" \
    "      OR $3 = ANY(st.flags))"                                                         \
    " AND ($4::numeric IS NULL OR st.final_score >= $4::numeric)"                          \
    " AND ($5::numeric IS NULL OR st.final_score <= $5::numeric)"                          \
    " AND ($6::text IS NULL OR strpos(lower(st.student_ref), lower($6)) > 0)"              \
    " AND EXISTS (SELECT 1 FROM assignment fa JOIN course_teacher fct ON fct.course_id ="  \
    "   fa.course_id WHERE fa.id = st.assignment_id AND fct.teacher_id = $7::bigint)"

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
    if (sm_db_query(db,
                    "SELECT " ASSIGNMENT_SUMMARY ", a.statement, a.rubric, a.answer_key, "
                    "a.language, c.code AS course_code, c.title AS course_title, "
                    "COALESCE((SELECT jsonb_agg(DISTINCT fl) FROM submission_status x, "
                    "  unnest(x.flags) AS fl WHERE x.assignment_id = a.id), '[]') AS flag_names "
                    "FROM assignment a JOIN course c ON c.id = a.course_id "
                    "JOIN course_teacher ct ON ct.course_id = a.course_id AND "
                    "ct.teacher_id = $2::bigint" ASSIGNMENT_SUMMARY_JOIN " WHERE a.id = $1::bigint",
                    2, p, &r, &err) != SM_OK) {
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
    char sql[2048];
    snprintf(sql, sizeof sql,
             "SELECT st.submission_id AS id, st.student_ref, st.state, st.final_score, "
             "st.model_score, st.max_score, to_jsonb(st.flags) AS flags, st.flagged, "
             "st.confidence, st.received_at, st.graded_at, st.reviewed_at "
             "FROM submission_status st WHERE" FILTER_WHERE " ORDER BY %s LIMIT 5000",
             f.order);
    if (sm_db_query(db, sql, 7, fp, &r, &err) != SM_OK) {
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
    char sql[2048];
    snprintf(sql, sizeof sql,
             "WITH l AS (SELECT st.submission_id AS id, row_number() OVER (ORDER BY %s) AS rn "
             "FROM submission_status st WHERE" FILTER_WHERE ") "
             "SELECT (SELECT id FROM l WHERE rn = cur.rn - 1) AS prev, "
             "(SELECT id FROM l WHERE rn = cur.rn + 1) AS next, cur.rn AS position, "
             "(SELECT count(*) FROM l) AS count FROM l cur WHERE cur.id = $8::bigint",
             f->order);
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
        sm_code rc = sm_db_query(db, sql, 8, p, &r, err);
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

static sm_code add_rows(PGconn *db, json_t *doc, const char *key, const char *sql, int n,
                        const char *const *p, sm_err *err)
{
    PGresult *r;
    sm_code rc = sm_db_query(db, sql, n, p, &r, err);
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
    if (sm_db_query(db,
                    "SELECT s.id, s.student_ref, s.content, s.language, s.received_at, "
                    "a.id AS assignment_id, a.code AS assignment_code, a.title AS "
                    "assignment_title, a.kind, a.statement, a.answer_key, a.max_score, "
                    "a.language AS assignment_language, c.id AS course_id, c.code AS "
                    "course_code, c.title AS course_title, st.state, st.final_score, "
                    "st.model_score, st.flagged, st.grading_id, st.job_state "
                    "FROM submission s JOIN assignment a ON a.id = s.assignment_id "
                    "JOIN course c ON c.id = a.course_id "
                    "JOIN course_teacher ct ON ct.course_id = a.course_id AND "
                    "ct.teacher_id = $2::bigint "
                    "JOIN submission_status st ON st.submission_id = s.id "
                    "WHERE s.id = $1::bigint",
                    2, p, &r, &err) != SM_OK) {
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
        rc = sm_db_query(db,
                         "SELECT id, job_id, status, score, max_score, summary, "
                         "to_jsonb(flags) AS flags, confidence, model_name, model_hash, "
                         "engine_version, prompt_template_version, sampling, seed, "
                         "prompt_tokens, completion_tokens, timings, worker, created_at "
                         "FROM grading WHERE id = $1::bigint",
                         1, pg, &r, &err);
        if (rc == SM_OK) {
            json_object_set_new(doc, "grading", http_row_json(r, 0));
            PQclear(r);
        }
        if (rc == SM_OK)
            rc = add_rows(db, doc, "steps",
                          "SELECT step_no, quoted, verdict, explanation, agreement FROM "
                          "critique_step WHERE grading_id = $1::bigint ORDER BY step_no",
                          1, pg, &err);
        if (rc == SM_OK)
            rc = add_rows(db, doc, "checks",
                          "SELECT id, kind, name, passed, time_ms, output_excerpt, details FROM "
                          "check_result WHERE grading_id = $1::bigint ORDER BY id",
                          1, pg, &err);
        if (rc == SM_OK)
            rc = add_rows(db, doc, "chains",
                          "SELECT sample_no, text, tokens FROM reasoning_chain WHERE "
                          "grading_id = $1::bigint ORDER BY sample_no",
                          1, pg, &err);
    } else {
        json_object_set_new(doc, "grading", json_null());
        json_object_set_new(doc, "steps", json_array());
        json_object_set_new(doc, "checks", json_array());
        json_object_set_new(doc, "chains", json_array());
    }
    if (rc == SM_OK)
        rc = add_rows(db, doc, "gradings",
                      "SELECT id, status, score, max_score, seed, model_name, created_at FROM "
                      "grading WHERE submission_id = $1::bigint ORDER BY created_at DESC, id DESC",
                      1, pid, &err);
    if (rc == SM_OK)
        rc = add_rows(db, doc, "reviews",
                      "SELECT r.id, r.grading_id, r.action, r.old_score, r.new_score, r.comment, "
                      "r.created_at, t.name AS teacher FROM review r JOIN grading g ON "
                      "g.id = r.grading_id JOIN teacher t ON t.id = r.teacher_id "
                      "WHERE g.submission_id = $1::bigint ORDER BY r.created_at DESC, r.id DESC",
                      1, pid, &err);
    if (rc == SM_OK)
        rc = add_rows(db, doc, "jobs",
                      "SELECT id, state, priority, attempts, seed, last_error, created_at, "
                      "finished_at FROM job WHERE submission_id = $1::bigint ORDER BY id DESC",
                      1, pid, &err);
    if (rc == SM_OK)
        rc = add_nav(db, rq, &f, aid, ids, doc, &err);
    if (rc != SM_OK) {
        json_decref(doc);
        http_db_failed(rs, &err);
        return;
    }
    http_resp_json(rs, 200, doc);
}
