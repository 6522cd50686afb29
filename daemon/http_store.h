/* http_store: the SQL of stepmarkd's HTTP side, one statement per function, each over a pooled
 * PGconn (as daemon/store.c is for the broker). Rows come back as PGresults or as JSON built by
 * PostgreSQL. Errors are SM_EDB (the database failed), SM_ENOTFOUND where said. Where a
 * function takes p[N], those are the statement's parameters $1..$N as text (NULL for SQL NULL),
 * named in its comment. The release pages keep theirs in http_release_store.c. */
#ifndef SM_HTTP_STORE_H
#define SM_HTTP_STORE_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "sm_error.h"

/* ---- service tokens and their scope (/api/v1) ---- */

/* What a bearer token's hash names. */
typedef struct http_service_token {
    int64_t id;     /* 0: no live token has this hash (unknown or revoked) */
    bool expired;   /* the token's expires_at has passed */
    bool touch_due; /* last_used_at is older than a minute (or never set) */
} http_service_token;

sm_code http_store_service_token(PGconn *db, const char *hash, http_service_token *out,
                                 sm_err *err);
/* Records the token's last use now. */
sm_code http_store_service_touch(PGconn *db, int64_t token_id, sm_err *err);
/* The id of course code when token_id may act on it; SM_ENOTFOUND otherwise (unknown and out
 * of scope look alike). */
sm_code http_store_service_course(PGconn *db, int64_t token_id, const char *code,
                                  int64_t *course_id, sm_err *err);
/* SM_OK when the submission exists in a course of token_id, else SM_ENOTFOUND. */
sm_code http_store_service_submission(PGconn *db, int64_t token_id, int64_t submission_id,
                                      sm_err *err);

/* ---- /api/v1 reads ---- */

/* {"courses": [{code, title}]} of the token's courses, by code. */
sm_code http_store_v1_courses(PGconn *db, int64_t token_id, json_t **out, sm_err *err);
/* {"course", "assignments": [{code, title, kind, language, max_score, created_at,
 * updated_at}]} of a course, by code. */
sm_code http_store_v1_assignments(PGconn *db, int64_t course_id, json_t **out, sm_err *err);
/* One assignment: its public fields (no answer key, reference solution or tests) and its
 * number of submissions. SM_ENOTFOUND when the course has no such assignment. */
sm_code http_store_v1_assignment(PGconn *db, int64_t course_id, const char *code, json_t **out,
                                 sm_err *err);

/* An idempotent submission's earlier request, compared with a new one. */
typedef struct http_submit_seen {
    int64_t submission_id; /* 0: no submission has this key */
    bool same;             /* same assignment, student_ref, content and language */
} http_submit_seen;

sm_code http_store_v1_submit_seen(PGconn *db, const char *key, int64_t assignment_id,
                                  const char *student_ref, const char *content,
                                  const char *language, http_submit_seen *out, sm_err *err);

/* ---- teacher sign-in and sessions (http_auth.c) ---- */

/* A teacher's last use, now, unless written in the last $2 seconds. $1 teacher id, $2 seconds. */
sm_code http_store_teacher_touch(PGconn *db, const char *const p[2], sm_err *err);

/* The teacher of a live session: id, name, csrf_token and whether their last use is older than $2
 * seconds. $1 hash of the session id, $2 seconds. */
sm_code http_store_session(PGconn *db, const char *const p[2], PGresult **rows, sm_err *err);

/* The teacher with this token hash: id, name, token_epoch, expired. $1 token hash. */
sm_code http_store_teacher_by_token(PGconn *db, const char *const p[1], PGresult **rows,
                                    sm_err *err);

/* Deletes the expired sessions. */
sm_code http_store_sessions_purge(PGconn *db, sm_err *err);

/* A new session. $1 id hash, $2 teacher id, $3 CSRF token, $4 client address, $5 hours, $6 token
 * epoch. */
sm_code http_store_session_add(PGconn *db, const char *const p[6], sm_err *err);

/* Records a sign-in in audit_log. $1 teacher id, $2 client address. */
sm_code http_store_audit_signin(PGconn *db, const char *const p[2], sm_err *err);

/* A teacher's last use, now (sign-in). $1 teacher id. */
sm_code http_store_teacher_used(PGconn *db, const char *const p[1], sm_err *err);

/* Ends a session (sign-out). $1 hash of the session id. */
sm_code http_store_session_delete(PGconn *db, const char *const p[1], sm_err *err);

/* ---- progress and /metrics (http_progress.c) ---- */

/* Queue totals: queued, running, queued_interactive, queued_batch, graded_last_10min,
 * avg_completion_tokens. */
sm_code http_store_queue_summary(PGconn *db, PGresult **rows, sm_err *err);

/* Done/pending/failed per assignment of the teacher's courses. $1 teacher id. */
sm_code http_store_progress_assignments(PGconn *db, const char *const p[1], PGresult **rows,
                                        sm_err *err);

/* Jobs by state and priority (/metrics). */
sm_code http_store_queue_depth(PGconn *db, PGresult **rows, sm_err *err);

/* ---- the review API reads (http_api.c) ---- */

/* The teacher's courses with counts of assignments, submissions and needs_review. $1 teacher id. */
sm_code http_store_teacher_courses(PGconn *db, const char *const p[1], PGresult **rows,
                                   sm_err *err);

/* A course of the teacher (id, code, title). $1 course id, $2 teacher id. */
sm_code http_store_teacher_course(PGconn *db, const char *const p[2], PGresult **rows, sm_err *err);

/* The course's assignments with their summaries. $1 course id, $2 teacher id. */
sm_code http_store_course_assignments(PGconn *db, const char *const p[2], PGresult **rows,
                                      sm_err *err);

/* An assignment of the teacher with its summary, statement and flag names. $1 assignment id, $2
 * teacher id. */
sm_code http_store_assignment(PGconn *db, const char *const p[2], PGresult **rows, sm_err *err);

/* A submission of the teacher's courses with its assignment and status. $1 submission id, $2
 * teacher id. */
sm_code http_store_submission(PGconn *db, const char *const p[2], PGresult **rows, sm_err *err);

/* One grading. $1 grading id. */
sm_code http_store_grading(PGconn *db, const char *const p[1], PGresult **rows, sm_err *err);

/* A query of rows with one parameter (for http_api.c's lists). */
typedef sm_code http_store_rows_fn(PGconn *db, const char *const p[1], PGresult **rows,
                                   sm_err *err);
/* The critique steps of grading $1. */
http_store_rows_fn http_store_steps;
/* The checks of grading $1. */
http_store_rows_fn http_store_checks;
/* The reasoning chains of grading $1. */
http_store_rows_fn http_store_chains;
/* Every grading of submission $1, newest first. */
http_store_rows_fn http_store_gradings;
/* Every review of submission $1, newest first. */
http_store_rows_fn http_store_reviews;
/* Every job of submission $1, newest first. */
http_store_rows_fn http_store_jobs;
/* An assignment's submissions matching the filter, in the order order (an ORDER BY list from
 * http_api.c's fixed table, never client text). $1 assignment id, $2..$6 the filter (state,
 * flag, min, max, q; NULL = any), $7 teacher id. */
sm_code http_store_filtered_submissions(PGconn *db, const char *order, const char *const p[7],
                                        PGresult **rows, sm_err *err);
/* prev, next, position and count of submission $8 within that list (same $1..$7). */
sm_code http_store_submission_nav(PGconn *db, const char *order, const char *const p[8],
                                  PGresult **rows, sm_err *err);

/* ---- review actions (http_review.c) ---- */

/* Locks a submission of the teacher's courses for a review (FOR UPDATE). $1 submission id, $2
 * teacher id. */
sm_code http_store_review_lock(PGconn *db, const char *const p[2], PGresult **rows, sm_err *err);

/* grading_id, final_score, max_score and job_state of a submission. $1 submission id. */
sm_code http_store_review_state(PGconn *db, const char *const p[1], PGresult **rows, sm_err *err);

/* Queues a new job for a regrade. $1 submission id, $2 seed. */
sm_code http_store_regrade_job(PGconn *db, const char *const p[2], PGresult **rows, sm_err *err);

/* Stores a review. $1 grading id, $2 teacher id, $3 action, $4 old score, $5 new score, $6
 * comment. */
sm_code http_store_review_add(PGconn *db, const char *const p[6], PGresult **rows, sm_err *err);

/* Records a review in audit_log. $1..$6 as the review's audit entry. */
sm_code http_store_audit_review(PGconn *db, const char *const p[6], sm_err *err);

/* ---- the grade passback policy of an assignment (lti_policy.c) ---- */

/* Sets the LTI grade passback policy of an assignment of the teacher's courses whose course is
 * linked to an LMS course, or clears it (the course's policy applies), and records the change in
 * audit_log. One row (passback: the policy now in force, own: the assignment's, course: the
 * course's, NULL when unset), or none when the assignment is not the teacher's or its course has
 * no LMS link. $1 assignment id, $2 teacher id, $3 'on-approval', 'on-release' or NULL (clear). */
sm_code http_store_lti_passback_set(PGconn *db, const char *const p[3], PGresult **rows,
                                    sm_err *err);

/* ---- gradebook exports (http_export.c) ---- */

/* An assignment of the teacher's courses for an export (id, code, title, max_score, course_code).
 * $1 assignment id, $2 teacher id. */
sm_code http_store_export_assignment(PGconn *db, const char *const p[2], PGresult **rows,
                                     sm_err *err);

/* One row per student: their latest submission with its scores, final comment and LMS name
 * (student_name, '' when unknown). $1 assignment id. */
sm_code http_store_export_latest(PGconn *db, const char *const p[1], PGresult **rows, sm_err *err);

/* The JSON export rows: the latest per student with steps, checks and reviews. $1 assignment id. */
sm_code http_store_export_full(PGconn *db, const char *const p[1], PGresult **rows, sm_err *err);

#endif
