/* http_release: releasing feedback to students. The teacher's side (POST
 * /api/assignments/ID/release, GET /api/assignments/ID/releases) and the student's side
 * (GET /api/student/feedback?t=TOKEN, no session: the signed link of sm_student_link.h is the
 * credential). The SQL lives in http_release_store.c, one statement per function. */
#ifndef SM_HTTP_RELEASE_H
#define SM_HTTP_RELEASE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "http_internal.h"

/* ---- handlers (http_release.c) ---- */
void http_api_release(http_req *rq, http_resp *rs, int64_t assignment_id);
void http_api_releases(http_req *rq, http_resp *rs, int64_t assignment_id);
void http_student_feedback(http_req *rq, http_resp *rs);

/* ---- SQL (http_release_store.c) ---- */
/* *owned: the assignment exists and is in one of the teacher's courses. */
sm_code http_release_assignment_owned(PGconn *db, const char *assignment_id, const char *teacher_id,
                                      bool *owned, sm_err *err);

/* Columns of http_release_candidates' rows. */
typedef enum http_release_col {
    REL_COL_SUBMISSION, /* submission id */
    REL_COL_GRADING,    /* its latest grading, NULL when none */
    REL_COL_PENDING,    /* a grading job is queued or running: t/f */
    REL_COL_SCORE,      /* the final score (reviewed, else the model's), NULL when none */
    REL_COL_RELEASED,   /* the latest grading's latest release's include_reasoning, NULL when
                            it was never released */
} http_release_col;
/* The assignment's submissions (all, or those whose ids are in ids, a PostgreSQL array
 * literal such as "{1,2}"), locked FOR UPDATE like a review locks them, by id. */
sm_code http_release_candidates(PGconn *db, const char *assignment_id, const char *ids,
                                PGresult **out, sm_err *err);

/* A review row with action 'release' for grading_id, recording the released score. */
sm_code http_release_insert(PGconn *db, const char *grading_id, const char *teacher_id,
                            const char *score, bool include_reasoning, sm_err *err);

/* The audit-log entry of one release request; details is a JSON object. */
sm_code http_release_audit(PGconn *db, const char *teacher_id, const char *assignment_id,
                           const char *details, sm_err *err);

/* Per submission of the assignment: id, state (sm_final's, or NULL), released_at,
 * include_reasoning, and visible_grading_id (the grading the student sees, or NULL). */
sm_code http_release_states(PGconn *db, const char *assignment_id, PGresult **out, sm_err *err);

/* The course's code and title; no row when it does not exist. */
sm_code http_student_course(PGconn *db, const char *course_id, PGresult **out, sm_err *err);

/* The student's released feedback in the course: one row per submission with released
 * feedback, columns assignment_code, assignment_title, assignment_kind, submission_id,
 * submitted_at, feedback (jsonb of sm_released_feedback). */
sm_code http_student_feedback_rows(PGconn *db, const char *course_id, const char *student_ref,
                                   PGresult **out, sm_err *err);

#endif
