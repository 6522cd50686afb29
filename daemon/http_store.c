/* http_store: the HTTP side's SQL (http_store.h). */
#include "http_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_db.h"

static void i64(char buf[24], int64_t v)
{
    snprintf(buf, 24, "%" PRId64, v);
}

/* Runs sql and parses column 0 of row 0 as JSON (*out NULL when there is no row). */
static sm_code query_json(PGconn *db, const char *sql, int n, const char *const *p, json_t **out,
                          sm_err *err)
{
    *out = NULL;
    PGresult *r;
    sm_code rc = sm_db_query(db, sql, n, p, &r, err);
    if (rc != SM_OK)
        return rc;
    if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
        json_error_t je;
        *out = json_loads(PQgetvalue(r, 0, 0), 0, &je);
        if (!*out)
            rc = sm_err_set(err, SM_EINTERNAL, "database returned bad JSON: %s", je.text);
    }
    PQclear(r);
    return rc;
}

/* Runs sql; SM_OK when it returns a row (its first column, when id is not NULL, parsed into
 * *id), SM_ENOTFOUND with msg when none. */
static sm_code query_row(PGconn *db, const char *sql, int n, const char *const *p, int64_t *id,
                         const char *msg, sm_err *err)
{
    PGresult *r;
    sm_code rc = sm_db_query(db, sql, n, p, &r, err);
    if (rc != SM_OK)
        return rc;
    if (PQntuples(r) == 0)
        rc = sm_err_set(err, SM_ENOTFOUND, "%s", msg);
    else if (id)
        *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return rc;
}

sm_code http_store_service_token(PGconn *db, const char *hash, http_service_token *out, sm_err *err)
{
    memset(out, 0, sizeof *out);
    const char *p[] = {hash};
    PGresult *r;
    sm_code rc = sm_db_query(db,
                             "SELECT id, COALESCE(expires_at <= now(), false), "
                             "(last_used_at IS NULL OR last_used_at < now() - interval '60 s') "
                             "FROM service_token WHERE token_hash = $1 AND revoked_at IS NULL",
                             1, p, &r, err);
    if (rc != SM_OK)
        return rc;
    if (PQntuples(r) == 1) {
        out->id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        out->expired = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
        out->touch_due = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
    }
    PQclear(r);
    return SM_OK;
}

sm_code http_store_service_touch(PGconn *db, int64_t token_id, sm_err *err)
{
    char id[24];
    i64(id, token_id);
    const char *p[] = {id};
    /* the condition again, so that concurrent requests write once */
    return sm_db_query(db,
                       "UPDATE service_token SET last_used_at = now() WHERE id = $1::bigint AND "
                       "(last_used_at IS NULL OR last_used_at < now() - interval '60 s')",
                       1, p, NULL, err);
}

sm_code http_store_service_course(PGconn *db, int64_t token_id, const char *code,
                                  int64_t *course_id, sm_err *err)
{
    char id[24];
    i64(id, token_id);
    const char *p[] = {id, code};
    return query_row(db,
                     "SELECT c.id FROM course c JOIN service_token_course sc ON sc.course_id = "
                     "c.id WHERE sc.token_id = $1::bigint AND c.code = $2",
                     2, p, course_id, "no such course", err);
}

sm_code http_store_service_submission(PGconn *db, int64_t token_id, int64_t submission_id,
                                      sm_err *err)
{
    char id[24], sid[24];
    i64(id, token_id);
    i64(sid, submission_id);
    const char *p[] = {id, sid};
    return query_row(db,
                     "SELECT 1 FROM submission s JOIN assignment a ON a.id = s.assignment_id "
                     "JOIN service_token_course sc ON sc.course_id = a.course_id "
                     "WHERE s.id = $2::bigint AND sc.token_id = $1::bigint",
                     2, p, NULL, "no such submission", err);
}

sm_code http_store_v1_courses(PGconn *db, int64_t token_id, json_t **out, sm_err *err)
{
    char id[24];
    i64(id, token_id);
    const char *p[] = {id};
    return query_json(db,
                      "SELECT json_build_object('courses', COALESCE(json_agg(json_build_object("
                      "'code', c.code, 'title', c.title) ORDER BY c.code), '[]'))::text "
                      "FROM course c JOIN service_token_course sc ON sc.course_id = c.id "
                      "WHERE sc.token_id = $1::bigint",
                      1, p, out, err);
}

sm_code http_store_v1_assignments(PGconn *db, int64_t course_id, json_t **out, sm_err *err)
{
    char id[24];
    i64(id, course_id);
    const char *p[] = {id};
    return query_json(
        db,
        "SELECT json_build_object('course', c.code, 'assignments', (SELECT COALESCE(json_agg("
        "json_build_object('code', a.code, 'title', a.title, 'kind', a.kind, 'language', "
        "a.language, 'max_score', a.max_score, 'created_at', a.created_at, 'updated_at', "
        "a.updated_at) ORDER BY a.code), '[]') FROM assignment a WHERE a.course_id = c.id))::text "
        "FROM course c WHERE c.id = $1::bigint",
        1, p, out, err);
}

sm_code http_store_v1_assignment(PGconn *db, int64_t course_id, const char *code, json_t **out,
                                 sm_err *err)
{
    char id[24];
    i64(id, course_id);
    const char *p[] = {id, code};
    sm_code rc = query_json(
        db,
        "SELECT json_build_object('course', c.code, 'code', a.code, 'title', a.title, 'kind', "
        "a.kind, 'language', a.language, 'max_score', a.max_score, 'statement', a.statement, "
        "'rubric', COALESCE(a.rubric_criteria, to_jsonb(a.rubric)), 'created_at', "
        "a.created_at, 'updated_at', a.updated_at, "
        "'submissions', (SELECT count(*) FROM submission s WHERE s.assignment_id = a.id))::text "
        "FROM assignment a JOIN course c ON c.id = a.course_id "
        "WHERE a.course_id = $1::bigint AND a.code = $2",
        2, p, out, err);
    if (rc == SM_OK && !*out)
        rc = sm_err_set(err, SM_ENOTFOUND, "no such assignment");
    return rc;
}

sm_code http_store_v1_submit_seen(PGconn *db, const char *key, int64_t assignment_id,
                                  const char *student_ref, const char *content,
                                  const char *language, http_submit_seen *out, sm_err *err)
{
    memset(out, 0, sizeof *out);
    char aid[24];
    i64(aid, assignment_id);
    const char *p[] = {key, aid, student_ref, content, language};
    PGresult *r;
    sm_code rc = sm_db_query(db,
                             "SELECT id, (assignment_id = $2::bigint AND student_ref = $3 AND "
                             "content = $4 AND language IS NOT DISTINCT FROM $5) "
                             "FROM submission WHERE idempotency_key = $1",
                             5, p, &r, err);
    if (rc != SM_OK)
        return rc;
    if (PQntuples(r) == 1) {
        out->submission_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        out->same = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    }
    PQclear(r);
    return SM_OK;
}

/* ---- teacher sign-in and sessions (http_auth.c) ---- */

sm_code http_store_teacher_touch(PGconn *db, const char *const p[2], sm_err *err)
{
    return sm_db_query(
        db,
        "UPDATE teacher SET last_used_at = now() WHERE id = $1::bigint AND "
        "(last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2::int))",
        2, p, NULL, err);
}

sm_code http_store_session(PGconn *db, const char *const p[2], PGresult **rows, sm_err *err)
{
    return sm_db_query(db,
                       "SELECT t.id, t.name, s.csrf_token, (t.last_used_at IS NULL OR "
                       "t.last_used_at < now() - make_interval(secs => $2::int)) "
                       "FROM teacher_session s JOIN teacher t ON t.id = s.teacher_id "
                       "WHERE s.id_hash = $1 AND s.expires_at > now() "
                       "AND s.token_epoch = t.token_epoch AND t.token_hash IS NOT NULL "
                       "AND (t.token_expires_at IS NULL OR t.token_expires_at > now())",
                       2, p, rows, err);
}

sm_code http_store_teacher_by_token(PGconn *db, const char *const p[1], PGresult **rows,
                                    sm_err *err)
{
    return sm_db_query(db,
                       "SELECT id, name, token_epoch, token_expires_at <= now() FROM teacher "
                       "WHERE token_hash = $1",
                       1, p, rows, err);
}

sm_code http_store_sessions_purge(PGconn *db, sm_err *err)
{
    return sm_db_exec(db, "DELETE FROM teacher_session WHERE expires_at < now()", err);
}

sm_code http_store_session_add(PGconn *db, const char *const p[6], sm_err *err)
{
    return sm_db_query(db,
                       "INSERT INTO teacher_session (id_hash, teacher_id, csrf_token, client, "
                       "token_epoch, expires_at) SELECT $1, id, $3, $4, $6::int, "
                       "LEAST(now() + make_interval(hours => $5::int), token_expires_at) "
                       "FROM teacher WHERE id = $2::bigint",
                       6, p, NULL, err);
}

sm_code http_store_audit_signin(PGconn *db, const char *const p[2], sm_err *err)
{
    return sm_db_query(db,
                       "INSERT INTO audit_log (actor, action, subject, details) VALUES "
                       "('teacher:' || $1, 'signin', 'teacher:' || $1, "
                       "jsonb_build_object('client', $2::text))",
                       2, p, NULL, err);
}

sm_code http_store_teacher_used(PGconn *db, const char *const p[1], sm_err *err)
{
    return sm_db_query(db, "UPDATE teacher SET last_used_at = now() WHERE id = $1::bigint", 1, p,
                       NULL, err);
}

sm_code http_store_session_delete(PGconn *db, const char *const p[1], sm_err *err)
{
    return sm_db_query(db, "DELETE FROM teacher_session WHERE id_hash = $1", 1, p, NULL, err);
}

/* ---- progress and /metrics (http_progress.c) ---- */

sm_code http_store_queue_summary(PGconn *db, PGresult **rows, sm_err *err)
{
    return sm_db_query(db,
                       "SELECT count(*) FILTER (WHERE state = 'queued') AS queued, "
                       "count(*) FILTER (WHERE state = 'leased') AS running, "
                       "count(*) FILTER (WHERE state = 'queued' AND priority = 0) AS "
                       "queued_interactive, "
                       "count(*) FILTER (WHERE state = 'queued' AND priority = 1) AS queued_batch, "
                       "(SELECT count(*) FROM grading WHERE created_at > now() - interval "
                       "'10 minutes') AS graded_last_10min, "
                       "(SELECT avg(g.completion_tokens) FROM (SELECT completion_tokens FROM "
                       "grading ORDER BY id DESC LIMIT 200) g) AS avg_completion_tokens "
                       "FROM job WHERE state IN ('queued', 'leased')",
                       0, NULL, rows, err);
}

sm_code http_store_progress_assignments(PGconn *db, const char *const p[1], PGresult **rows,
                                        sm_err *err)
{
    return sm_db_query(db,
                       "SELECT a.id, a.code, a.title, c.code AS course_code, count(st.*) AS total, "
                       "count(*) FILTER (WHERE st.state IN ('graded', 'needs_review', 'reviewed')) "
                       "AS done, count(*) FILTER (WHERE st.state IN ('queued', 'running')) AS "
                       "pending, count(*) FILTER (WHERE st.state IN ('failed', 'cancelled')) AS "
                       "failed FROM assignment a JOIN course c ON c.id = a.course_id "
                       "JOIN course_teacher ct ON ct.course_id = a.course_id AND "
                       "ct.teacher_id = $1::bigint "
                       "JOIN submission_status st ON st.assignment_id = a.id "
                       "GROUP BY a.id, c.code ORDER BY c.code, a.created_at, a.id",
                       1, p, rows, err);
}

sm_code http_store_queue_depth(PGconn *db, PGresult **rows, sm_err *err)
{
    return sm_db_query(db,
                       "SELECT s.state, p.priority, count(j.id) FROM "
                       "unnest(ARRAY['queued','leased','done','dead','cancelled']) AS s(state) "
                       "CROSS JOIN unnest(ARRAY[0,1]) AS p(priority) "
                       "LEFT JOIN job j ON j.state = s.state AND j.priority = p.priority "
                       "GROUP BY s.state, p.priority ORDER BY s.state, p.priority",
                       0, NULL, rows, err);
}

/* ---- the review API reads (http_api.c) ---- */

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

/* The LMS name of row st's student (LTI roster, schema 012), '' when unknown. */
#define STUDENT_NAME                                                                                \
    "sm_lti_student_name((SELECT na.course_id FROM assignment na WHERE na.id = st.assignment_id), " \
    "st.student_ref)"

/* Parameters $2..$6 of every filtered query ($1 is the assignment, $7 the teacher). */
#define FILTER_WHERE                                                                       \
    " st.assignment_id = $1::bigint"                                                       \
    " AND ($2::text IS NULL OR st.state = $2)"                                             \
    " AND ($3::text IS NULL OR ($3 = '*' AND st.flagged) OR ($3 = '-' AND NOT st.flagged)" \
    "      OR $3 = ANY(st.flags))"                                                         \
    " AND ($4::numeric IS NULL OR st.final_score >= $4::numeric)"                          \
    " AND ($5::numeric IS NULL OR st.final_score <= $5::numeric)"                          \
    " AND ($6::text IS NULL OR strpos(lower(st.student_ref), lower($6)) > 0"               \
    "      OR strpos(lower(" STUDENT_NAME "), lower($6)) > 0)"                             \
    " AND EXISTS (SELECT 1 FROM assignment fa JOIN course_teacher fct ON fct.course_id ="  \
    "   fa.course_id WHERE fa.id = st.assignment_id AND fct.teacher_id = $7::bigint)"

sm_code http_store_teacher_courses(PGconn *db, const char *const p[1], PGresult **rows, sm_err *err)
{
    return sm_db_query(
        db,
        "SELECT c.id, c.code, c.title, "
        "(SELECT count(*) FROM assignment a WHERE a.course_id = c.id) AS assignments, "
        "(SELECT count(*) FROM submission s JOIN assignment a ON a.id = "
        "  s.assignment_id WHERE a.course_id = c.id) AS submissions, "
        "(SELECT count(*) FROM submission_status st JOIN assignment a ON a.id = "
        "  st.assignment_id WHERE a.course_id = c.id AND st.state = 'needs_review') "
        "  AS needs_review "
        "FROM course c JOIN course_teacher ct ON ct.course_id = c.id "
        "WHERE ct.teacher_id = $1::bigint ORDER BY c.code",
        1, p, rows, err);
}

sm_code http_store_teacher_course(PGconn *db, const char *const p[2], PGresult **rows, sm_err *err)
{
    return sm_db_query(db,
                       "SELECT c.id, c.code, c.title FROM course c JOIN course_teacher ct ON "
                       "ct.course_id = c.id AND ct.teacher_id = $2::bigint WHERE c.id = $1::bigint",
                       2, p, rows, err);
}

sm_code http_store_course_assignments(PGconn *db, const char *const p[2], PGresult **rows,
                                      sm_err *err)
{
    return sm_db_query(
        db,
        "SELECT " ASSIGNMENT_SUMMARY " FROM assignment a JOIN course_teacher ct ON "
        "ct.course_id = a.course_id AND ct.teacher_id = $2::bigint" ASSIGNMENT_SUMMARY_JOIN
        " WHERE a.course_id = $1::bigint "
        "ORDER BY a.created_at, a.id",
        2, p, rows, err);
}

/* An assignment's rubric as JSON: the list of criteria, or the free text (or null). */
#define RUBRIC_JSON "COALESCE(a.rubric_criteria, to_jsonb(a.rubric)) AS rubric"

sm_code http_store_assignment(PGconn *db, const char *const p[2], PGresult **rows, sm_err *err)
{
    return sm_db_query(
        db,
        "SELECT " ASSIGNMENT_SUMMARY ", a.statement, " RUBRIC_JSON ", a.answer_key, "
        "a.language, c.code AS course_code, c.title AS course_title, "
        "COALESCE((SELECT jsonb_agg(DISTINCT fl) FROM submission_status x, "
        "  unnest(x.flags) AS fl WHERE x.assignment_id = a.id), '[]') AS flag_names, "
        "EXISTS (SELECT 1 FROM lti_context lx WHERE lx.course_id = a.course_id) AS "
        "lti_linked, sm_lti_passback_policy(a.id) AS lti_passback, (SELECT "
        "ls.passback FROM lti_assignment_setting ls WHERE ls.assignment_id = a.id) "
        "AS lti_passback_own, (SELECT cs.passback FROM lti_course_setting cs WHERE "
        "cs.course_id = a.course_id) AS lti_passback_course "
        "FROM assignment a JOIN course c ON c.id = a.course_id "
        "JOIN course_teacher ct ON ct.course_id = a.course_id AND "
        "ct.teacher_id = $2::bigint" ASSIGNMENT_SUMMARY_JOIN " WHERE a.id = $1::bigint",
        2, p, rows, err);
}

sm_code http_store_submission(PGconn *db, const char *const p[2], PGresult **rows, sm_err *err)
{
    return sm_db_query(
        db,
        "SELECT s.id, s.student_ref, sm_lti_student_name(c.id, s.student_ref) "
        "AS student_name, s.content, s.language, s.received_at, "
        "a.id AS assignment_id, a.code AS assignment_code, a.title AS "
        "assignment_title, a.kind, a.statement, a.answer_key, a.max_score, " RUBRIC_JSON
        ", a.reference_solution, a.answer_policy, a.tests, "
        "a.language AS assignment_language, c.id AS course_id, c.code AS "
        "course_code, c.title AS course_title, st.state, st.final_score, "
        "st.model_score, st.flagged, st.grading_id, st.job_state "
        "FROM submission s JOIN assignment a ON a.id = s.assignment_id "
        "JOIN course c ON c.id = a.course_id "
        "JOIN course_teacher ct ON ct.course_id = a.course_id AND "
        "ct.teacher_id = $2::bigint "
        "JOIN submission_status st ON st.submission_id = s.id "
        "WHERE s.id = $1::bigint",
        2, p, rows, err);
}

sm_code http_store_grading(PGconn *db, const char *const p[1], PGresult **rows, sm_err *err)
{
    return sm_db_query(db,
                       "SELECT id, job_id, status, score, max_score, summary, "
                       "to_jsonb(flags) AS flags, confidence, model_name, model_hash, "
                       "engine_version, prompt_template_version, sampling, seed, "
                       "prompt_tokens, completion_tokens, timings, worker, created_at, "
                       "provisional_score, provisional_basis, provisional_detail, "
                       "masked_score, masked_margin, masked_differs, masked_summary, "
                       "masked_detail->>'content' AS masked_content, "
                       "sm_grading_criteria(id) AS criteria "
                       "FROM grading WHERE id = $1::bigint",
                       1, p, rows, err);
}

sm_code http_store_steps(PGconn *db, const char *const p[1], PGresult **rows, sm_err *err)
{
    return sm_db_query(db,
                       "SELECT step_no, quoted, verdict, explanation, agreement FROM "
                       "critique_step WHERE grading_id = $1::bigint ORDER BY step_no",
                       1, p, rows, err);
}

sm_code http_store_checks(PGconn *db, const char *const p[1], PGresult **rows, sm_err *err)
{
    return sm_db_query(db,
                       "SELECT id, kind, name, passed, time_ms, output_excerpt, details FROM "
                       "check_result WHERE grading_id = $1::bigint ORDER BY id",
                       1, p, rows, err);
}

sm_code http_store_chains(PGconn *db, const char *const p[1], PGresult **rows, sm_err *err)
{
    return sm_db_query(db,
                       "SELECT sample_no, text, tokens FROM reasoning_chain WHERE "
                       "grading_id = $1::bigint ORDER BY sample_no",
                       1, p, rows, err);
}

sm_code http_store_gradings(PGconn *db, const char *const p[1], PGresult **rows, sm_err *err)
{
    return sm_db_query(db,
                       "SELECT id, status, score, max_score, seed, model_name, created_at FROM "
                       "grading WHERE submission_id = $1::bigint ORDER BY created_at DESC, id DESC",
                       1, p, rows, err);
}

/* The points a review set per criterion, in rubric order ('[]' for none). */
#define REVIEW_CRITERIA                                                                   \
    "COALESCE((SELECT jsonb_agg(jsonb_build_object('id', rc.criterion_id, 'old_points', " \
    "rc.old_points, 'new_points', rc.new_points) ORDER BY gc.position) FROM "             \
    "review_criterion rc LEFT JOIN grading_criterion gc ON gc.grading_id = r.grading_id " \
    "AND gc.criterion_id = rc.criterion_id WHERE rc.review_id = r.id), '[]')"

sm_code http_store_reviews(PGconn *db, const char *const p[1], PGresult **rows, sm_err *err)
{
    return sm_db_query(db,
                       "SELECT r.id, r.grading_id, r.action, r.old_score, r.new_score, r.comment, "
                       "r.created_at, t.name AS teacher, " REVIEW_CRITERIA " AS criteria "
                       "FROM review r JOIN grading g ON "
                       "g.id = r.grading_id JOIN teacher t ON t.id = r.teacher_id "
                       "WHERE g.submission_id = $1::bigint ORDER BY r.created_at DESC, r.id DESC",
                       1, p, rows, err);
}

sm_code http_store_jobs(PGconn *db, const char *const p[1], PGresult **rows, sm_err *err)
{
    return sm_db_query(db,
                       "SELECT id, state, priority, attempts, seed, last_error, created_at, "
                       "finished_at FROM job WHERE submission_id = $1::bigint ORDER BY id DESC",
                       1, p, rows, err);
}

sm_code http_store_filtered_submissions(PGconn *db, const char *order, const char *const p[7],
                                        PGresult **rows, sm_err *err)
{
    char sql[4096];
    snprintf(sql, sizeof sql,
             "SELECT st.submission_id AS id, st.student_ref, " STUDENT_NAME " AS student_name, "
             "st.state, st.final_score, "
             "st.model_score, st.max_score, to_jsonb(st.flags) AS flags, st.flagged, "
             "st.confidence, st.received_at, st.graded_at, st.reviewed_at "
             "FROM submission_status st WHERE" FILTER_WHERE " ORDER BY %s LIMIT 5000",
             order);
    return sm_db_query(db, sql, 7, p, rows, err);
}

sm_code http_store_submission_nav(PGconn *db, const char *order, const char *const p[8],
                                  PGresult **rows, sm_err *err)
{
    char sql[4096];
    snprintf(sql, sizeof sql,
             "WITH l AS (SELECT st.submission_id AS id, row_number() OVER (ORDER BY %s) AS rn "
             "FROM submission_status st WHERE" FILTER_WHERE ") "
             "SELECT (SELECT id FROM l WHERE rn = cur.rn - 1) AS prev, "
             "(SELECT id FROM l WHERE rn = cur.rn + 1) AS next, cur.rn AS position, "
             "(SELECT count(*) FROM l) AS count FROM l cur WHERE cur.id = $8::bigint",
             order);
    return sm_db_query(db, sql, 8, p, rows, err);
}

/* ---- review actions (http_review.c) ---- */

sm_code http_store_review_lock(PGconn *db, const char *const p[2], PGresult **rows, sm_err *err)
{
    return sm_db_query(db,
                       "SELECT s.id FROM submission s JOIN assignment a ON a.id = "
                       "s.assignment_id JOIN course_teacher ct ON ct.course_id = "
                       "a.course_id AND ct.teacher_id = $2::bigint WHERE s.id = $1::bigint "
                       "FOR UPDATE OF s",
                       2, p, rows, err);
}

sm_code http_store_review_state(PGconn *db, const char *const p[1], PGresult **rows, sm_err *err)
{
    return sm_db_query(db,
                       "SELECT st.grading_id, st.final_score, st.max_score, st.job_state, "
                       "g.provisional_score FROM submission_status st LEFT JOIN grading g ON "
                       "g.id = st.grading_id WHERE st.submission_id = $1::bigint",
                       1, p, rows, err);
}

sm_code http_store_regrade_job(PGconn *db, const char *const p[2], PGresult **rows, sm_err *err)
{
    return sm_db_query(db,
                       "INSERT INTO job (submission_id, state, priority, seed) VALUES "
                       "($1::bigint, 'queued', 0, $2::bigint) RETURNING id",
                       2, p, rows, err);
}

sm_code http_store_review_add(PGconn *db, const char *const p[6], PGresult **rows, sm_err *err)
{
    return sm_db_query(db,
                       "INSERT INTO review (grading_id, teacher_id, action, old_score, "
                       "new_score, comment) VALUES ($1::bigint, $2::bigint, $3, $4::numeric, "
                       "$5::numeric, $6) RETURNING id, created_at",
                       6, p, rows, err);
}

sm_code http_store_audit_review(PGconn *db, const char *const p[6], sm_err *err)
{
    return sm_db_query(db,
                       "INSERT INTO audit_log (actor, action, subject, details) VALUES "
                       "('teacher:' || $1, 'review.' || $2, 'submission:' || $3, "
                       "jsonb_build_object('old_score', $4::numeric, 'new_score', $5::numeric, "
                       "'grading_id', $6::bigint))",
                       6, p, NULL, err);
}

/* ---- the grade passback policy of an assignment (lti_policy.c) ---- */

sm_code http_store_lti_passback_set(PGconn *db, const char *const p[3], PGresult **rows,
                                    sm_err *err)
{
    return sm_db_query(
        db,
        "WITH a AS (SELECT a.id, a.course_id FROM assignment a JOIN course_teacher ct ON "
        "  ct.course_id = a.course_id AND ct.teacher_id = $2::bigint WHERE a.id = $1::bigint "
        "  AND EXISTS (SELECT 1 FROM lti_context x WHERE x.course_id = a.course_id)), "
        "del AS (DELETE FROM lti_assignment_setting s USING a WHERE s.assignment_id = a.id "
        "  AND $3::text IS NULL), "
        "ins AS (INSERT INTO lti_assignment_setting (assignment_id, passback) SELECT id, $3 "
        "  FROM a WHERE $3::text IS NOT NULL ON CONFLICT (assignment_id) DO UPDATE SET "
        "  passback = EXCLUDED.passback RETURNING passback), "
        "au AS (INSERT INTO audit_log (actor, action, subject, details) SELECT 'teacher:' || "
        "  $2, 'lti.passback', 'assignment:' || a.id, jsonb_build_object('policy', "
        "  COALESCE($3, 'course default')) FROM a), "
        "cs AS (SELECT s.passback FROM lti_course_setting s JOIN a ON a.course_id = s.course_id) "
        "SELECT COALESCE((SELECT passback FROM ins), (SELECT passback FROM cs), 'on-release') AS "
        "passback, (SELECT passback FROM ins) AS own, (SELECT passback FROM cs) AS course "
        "FROM a",
        3, p, rows, err);
}

/* ---- gradebook exports (http_export.c) ---- */

/* One row per student: the latest submission. */
#define LATEST_PER_STUDENT                                                                   \
    "SELECT DISTINCT ON (st.student_ref) st.submission_id, st.student_ref, st.final_score, " \
    "st.model_score, st.max_score, st.state, st.flagged, to_jsonb(st.flags) AS flags, "      \
    "st.confidence, st.grading_id, st.reviewed_score, st.review_action, st.reviewed_at, "    \
    "sm_final(st.submission_id)->>'comment' AS feedback_comment, " STUDENT_NAME              \
    " AS student_name, sm_grading_criteria(st.grading_id) AS criteria "                      \
    "FROM submission_status st WHERE st.assignment_id = $1::bigint "                         \
    "ORDER BY st.student_ref, st.received_at DESC, st.submission_id DESC"

sm_code http_store_export_assignment(PGconn *db, const char *const p[2], PGresult **rows,
                                     sm_err *err)
{
    return sm_db_query(db,
                       "SELECT a.id, a.code, a.title, a.max_score, c.code AS course_code, "
                       "COALESCE(a.rubric_criteria, '[]') AS rubric_criteria FROM "
                       "assignment a JOIN course c ON c.id = a.course_id JOIN course_teacher ct ON "
                       "ct.course_id = a.course_id AND ct.teacher_id = $2::bigint "
                       "WHERE a.id = $1::bigint",
                       2, p, rows, err);
}

sm_code http_store_export_latest(PGconn *db, const char *const p[1], PGresult **rows, sm_err *err)
{
    return sm_db_query(db, LATEST_PER_STUDENT, 1, p, rows, err);
}

sm_code http_store_export_full(PGconn *db, const char *const p[1], PGresult **rows, sm_err *err)
{
    return sm_db_query(
        db,
        "SELECT l.*, "
        "COALESCE((SELECT jsonb_agg(jsonb_build_object('step_no', cs.step_no, "
        "  'quoted', cs.quoted, 'verdict', cs.verdict, 'explanation', "
        "  cs.explanation, 'agreement', cs.agreement) ORDER BY cs.step_no) "
        "  FROM critique_step cs WHERE cs.grading_id = l.grading_id), '[]') AS steps, "
        "COALESCE((SELECT jsonb_agg(jsonb_build_object('kind', cr.kind, 'name', "
        "  cr.name, 'passed', cr.passed) ORDER BY cr.id) FROM check_result cr "
        "  WHERE cr.grading_id = l.grading_id), '[]') AS checks, "
        "COALESCE((SELECT jsonb_agg(jsonb_build_object('action', rv.action, "
        "  'old_score', rv.old_score, 'new_score', rv.new_score, 'comment', "
        "  rv.comment, 'teacher', t.name, 'at', rv.created_at) ORDER BY "
        "  rv.created_at, rv.id) FROM review rv JOIN teacher t ON t.id = "
        "  rv.teacher_id WHERE rv.grading_id = l.grading_id), '[]') AS reviews, "
        "(SELECT g.summary FROM grading g WHERE g.id = l.grading_id) AS summary, "
        "sm_released_feedback(l.submission_id) AS released_feedback "
        "FROM (" LATEST_PER_STUDENT ") l ORDER BY l.student_ref",
        1, p, rows, err);
}
