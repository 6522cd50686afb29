/* sm_similarity_db: runs the similarity check of one assignment over PostgreSQL and reads its
 * results back (schema/011_similarity.sql); used by `stepmark similarity` and by stepmarkd's
 * review API (daemon/http_similarity.c). The latest submission of each student is compared. */
#ifndef SM_SIMILARITY_DB_H
#define SM_SIMILARITY_DB_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "sm_error.h"

/* The assignment of a course by their codes; SM_ENOTFOUND when there is none. */
sm_code sm_sim_db_assignment(PGconn *db, const char *course, const char *assignment, int64_t *id,
                             sm_err *err);

/* Stores the assignment's settings: threshold (0 = leave as is, < 0 = back to the default)
 * and starter code (NULL = leave as is, "" = none). */
typedef struct sm_sim_settings {
    double threshold;
    const char *starter_code;
} sm_sim_settings;
sm_code sm_sim_db_configure(PGconn *db, int64_t assignment_id, const sm_sim_settings *s,
                            sm_err *err);

typedef struct sm_sim_run_req {
    int64_t assignment_id;
    double threshold;       /* 0 = the assignment's setting, else SM_SIM_DEFAULT_THRESHOLD */
    const char *started_by; /* "cli", "teacher:ID" */
} sm_sim_run_req;

/* Compares, stores the run (replacing the assignment's previous one) and returns its summary:
 * {run_id, assignment_id, method, threshold, submissions, pairs, fingerprint_ms, pair_ms}.
 * SM_ESTATE when a comparison of the same assignment is running (any broker, or the CLI). */
sm_code sm_sim_db_run(PGconn *db, const sm_sim_run_req *req, json_t **summary, sm_err *err);

/* The latest run and its pairs, best first: {"run": {...} | null, "threshold", "pairs": [{id,
 * score, contain_a, contain_b, jaccard, shared, a: {submission_id, student_ref}, b: {...}}]}. */
sm_code sm_sim_db_pairs(PGconn *db, int64_t assignment_id, json_t **out, sm_err *err);

/* One pair with both texts and the matching regions: {id, assignment_id, course_id, score, ...,
 * a: {submission_id, student_ref, content}, b: {...}, regions: [...]}; SM_ENOTFOUND when none. */
sm_code sm_sim_db_pair(PGconn *db, int64_t pair_id, json_t **out, sm_err *err);

#endif
