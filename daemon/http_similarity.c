/* http_similarity: the teacher's view of alike submissions (sm_similarity_db.h).
 *   GET  /api/assignments/ID/similarity  the latest run and its pairs, best first
 *   POST /api/assignments/ID/similarity  compares the class now (the review page's button)
 *   GET  /api/similarity/ID              one pair: both texts and the matching regions
 * Only a teacher of the assignment's course sees or starts anything; anyone else gets 404. */
#include <stdio.h>
#include <stdlib.h>

#include "http_internal.h"
#include "sm_db.h"
#include "sm_similarity_db.h"

/* True when the signed-in teacher teaches the assignment's course; else fills rs. */
static bool may_see(http_req *rq, http_resp *rs, PGconn *db, int64_t assignment_id)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)assignment_id);
    const char *p[] = {id, rq->teacher_id_s};
    PGresult *r;
    sm_err err = {0};
    if (sm_db_query(db,
                    "SELECT 1 FROM assignment a JOIN course_teacher ct ON ct.course_id ="
                    " a.course_id WHERE a.id = $1::bigint AND ct.teacher_id = $2::bigint",
                    2, p, &r, &err) != SM_OK) {
        http_db_failed(rs, &err);
        return false;
    }
    bool ok = PQntuples(r) == 1;
    PQclear(r);
    if (!ok)
        http_resp_error(rs, 404, "ENOTFOUND", "no such assignment");
    return ok;
}

void http_api_similarity(http_req *rq, http_resp *rs, int64_t assignment_id)
{
    PGconn *db = http_db(rq, rs);
    if (!db || !may_see(rq, rs, db, assignment_id))
        return;
    json_t *doc;
    sm_err err = {0};
    if (sm_sim_db_pairs(db, assignment_id, &doc, &err) != SM_OK) {
        http_db_failed(rs, &err);
        return;
    }
    http_resp_json(rs, 200, doc);
}

void http_api_similarity_run(http_req *rq, http_resp *rs, int64_t assignment_id)
{
    PGconn *db = http_db(rq, rs);
    if (!db || !may_see(rq, rs, db, assignment_id))
        return;
    char by[64];
    snprintf(by, sizeof by, "teacher:%s", rq->teacher_id_s);
    sm_sim_run_req req = {.assignment_id = assignment_id, .started_by = by};
    json_t *sum, *doc;
    sm_err err = {0};
    sm_code rc = sm_sim_db_run(db, &req, &sum, &err);
    if (rc == SM_EINVAL || rc == SM_ELIMIT || rc == SM_ESTATE) {
        http_resp_error(rs, rc == SM_ESTATE ? 409 : 422, sm_code_name(rc), err.msg);
        return;
    }
    if (rc != SM_OK) {
        http_db_failed(rs, &err);
        return;
    }
    if (sm_sim_db_pairs(db, assignment_id, &doc, &err) != SM_OK) {
        json_decref(sum);
        http_db_failed(rs, &err);
        return;
    }
    json_object_set_new(doc, "summary", sum);
    http_resp_json(rs, 200, doc);
}

void http_api_similarity_pair(http_req *rq, http_resp *rs, int64_t pair_id)
{
    PGconn *db = http_db(rq, rs);
    if (!db)
        return;
    json_t *doc;
    sm_err err = {0};
    sm_code rc = sm_sim_db_pair(db, pair_id, &doc, &err);
    if (rc == SM_ENOTFOUND) {
        http_resp_error(rs, 404, "ENOTFOUND", "no such pair");
        return;
    }
    if (rc != SM_OK) {
        http_db_failed(rs, &err);
        return;
    }
    int64_t aid = (int64_t)json_integer_value(json_object_get(doc, "assignment_id"));
    if (!may_see(rq, rs, db, aid)) {
        json_decref(doc);
        return;
    }
    http_resp_json(rs, 200, doc);
}
