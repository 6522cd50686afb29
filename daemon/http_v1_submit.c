/* http_v1_submit: POST /api/v1/submissions. The body is a SUBMIT body (docs/protocol.md) and
 * goes the way of a ZeroMQ SUBMIT: the same parser and size limit (sm_proto_parse_body,
 * broker.max_body_bytes), the same checks (validate.c) and the same store statement
 * (sm_store_submit_conn), so it is committed before the reply. The Idempotency-Key header is
 * the submission's idempotency key: the same key with the same request answers 200 with the
 * same submission; with a different request (course, assignment, student_ref, content or
 * language) 409. The broker's dispatch reads the queue every 500 ms, so a worker gets the job
 * within about half a second. */
#include <stdio.h>
#include <string.h>

#include "http_store.h"
#include "http_v1.h"
#include "sm_log.h"
#include "sm_proto.h"
#include "validate.h"

#define KEY_MAX 200 /* as SUBMIT's idempotency_key */

/* The Idempotency-Key header into body's idempotency_key; else fills a 400. */
static bool take_key(http_req *rq, http_resp *rs, json_t *body)
{
    const char *key = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Idempotency-Key");
    if (!key || !key[0]) {
        http_resp_error(rs, 400, "EINVAL",
                        "the Idempotency-Key header is required (one unique key per submission; "
                        "send the same key again to retry safely)");
        return false;
    }
    if (strlen(key) > KEY_MAX || !sm_utf8_valid((const unsigned char *)key, strlen(key))) {
        http_resp_error(rs, 400, "EINVAL", "Idempotency-Key must be 1 to 200 bytes of UTF-8");
        return false;
    }
    json_t *given = json_object_get(body, "idempotency_key");
    if (given && !(json_is_string(given) && !strcmp(json_string_value(given), key))) {
        http_resp_error(rs, 400, "EINVAL",
                        "the body's idempotency_key differs from the Idempotency-Key header "
                        "(leave it out of the body)");
        return false;
    }
    json_object_set_new(body, "idempotency_key", json_string(key));
    return true;
}

/* The answer for a key that existed already: the same request (200) or another one (409). */
static void repeat(http_req *rq, http_resp *rs, const sm_submit_item *it)
{
    http_submit_seen seen;
    sm_err err = {0};
    if (http_store_v1_submit_seen(rq->db, it->key, it->assignment_id, it->student_ref, it->content,
                                  it->language, &seen, &err) != SM_OK) {
        http_v1_fail(rs, SM_EDB, err.msg);
        return;
    }
    if (!seen.same || seen.submission_id != it->submission_id) {
        http_resp_error(rs, 409, "ESTATE",
                        "this Idempotency-Key was already used for a different submission "
                        "(course, assignment, student_ref, content or language differ); use a "
                        "new key for new work");
        return;
    }
    http_resp_json(
        rs, 200,
        json_pack("{s:I,s:b}", "submission_id", (json_int_t)it->submission_id, "duplicate", 1));
}

/* Validates the parsed body, resolves its assignment within the token's courses and stores it. */
static void submit_body(http_req *rq, http_resp *rs, json_t *body)
{
    const char *course, *code;
    int priority;
    sm_err err = {0};
    sm_code rc = sm_validate_submit(body, &course, &code, &priority, &err);
    PGconn *db = rc == SM_OK ? http_db(rq, rs) : NULL;
    if (rc != SM_OK) {
        http_v1_fail(rs, rc, err.msg);
        return;
    }
    if (!db)
        return;
    int64_t cid;
    sm_assignment_ref a;
    rc = http_store_service_course(db, rq->service_id, course, &cid, &err);
    if (rc == SM_OK)
        rc = sm_store_assignment_ref_conn(db, course, code, &a, &err);
    if (rc == SM_ENOTFOUND) /* the same words whether the course is unknown or not the token's */
        rc = sm_err_set(&err, SM_ENOTFOUND, "unknown assignment %s/%s", course, code);
    if (rc == SM_OK)
        rc = sm_validate_submit_kind(body, &a, &err);
    if (rc != SM_OK) {
        http_v1_fail(rs, rc, err.msg);
        return;
    }
    char client[40];
    snprintf(client, sizeof client, "service:%s", rq->service_id_s);
    sm_submit_item it = {
        .assignment_id = a.id,
        .student_ref = json_string_value(json_object_get(body, "student_ref")),
        .key = json_string_value(json_object_get(body, "idempotency_key")),
        .content = json_string_value(json_object_get(body, "content")),
        .language = json_string_value(json_object_get(body, "language")),
        .client = client,
        .priority = priority,
    };
    rc = sm_store_submit_conn(db, &it, 1, rq->http->api_max_attempts, &err);
    if (rc != SM_OK && PQstatus(db) == CONNECTION_OK && PQtransactionStatus(db) == PQTRANS_IDLE)
        rc = SM_EINVAL; /* refused by a constraint: permanent, as for SUBMIT */
    if (rc != SM_OK) {
        http_v1_fail(rs, rc == SM_EINVAL ? SM_EINVAL : SM_EDB, err.msg);
        return;
    }
    if (it.duplicate) {
        repeat(rq, rs, &it);
        return;
    }
    sm_log(SM_LOG_INFO, "http api: submission stored", "service", rq->service_id_s, NULL);
    http_resp_json(
        rs, 201,
        json_pack("{s:I,s:b}", "submission_id", (json_int_t)it.submission_id, "duplicate", 0));
}

void http_v1_submit(http_req *rq, http_resp *rs)
{
    json_t *body = NULL;
    sm_err err = {0};
    sm_code rc = sm_proto_parse_body((const unsigned char *)(rq->body ? rq->body : ""), rq->len,
                                     rq->http->api_max_body, &body, &err);
    if (rc != SM_OK) {
        http_v1_fail(rs, rc, err.msg);
        return;
    }
    if (take_key(rq, rs, body))
        submit_body(rq, rs, body);
    json_decref(body);
}
