/* http_v1_link: POST /api/v1/courses/{course}/feedback-links, an LMS's way to get a student's
 * signed, expiring link to their released feedback (docs/student-feedback.md) without the CLI.
 * The body is {"student_ref": "...", "days": N} (days optional, 1..400, default 30); the student
 * is in the body, not the path, because a student_ref is free text that may hold "/" or "?".
 * The course must be one of the token's (else 404, as for an unknown course). The link is made
 * by sm_student_link_make, as `stepmark student link` makes it, at the base URL students reach
 * stepmarkd at (http.public_url, else the server's own address). Making a link stores nothing:
 * any number may be made; they all stop working when the key is rotated. */
#include <stdio.h>
#include <string.h>

#include "http_v1.h"
#include "sm_log.h"
#include "sm_proto.h"
#include "sm_student_link.h"

/* Reads {"student_ref", "days"} from the request's body into req; else fills rs. */
static bool read_body(http_req *rq, http_resp *rs, json_t **body, sm_student_link_req *req)
{
    sm_err err = {0};
    const char *ref = NULL;
    int64_t days = 0;
    sm_code rc = sm_proto_parse_body((const unsigned char *)(rq->body ? rq->body : ""), rq->len,
                                     rq->http->api_max_body, body, &err);
    if (rc == SM_OK) {
        const char *key;
        json_t *v;
        json_object_foreach(*body, key, v)
        {
            if (strcmp(key, "student_ref") != 0 && strcmp(key, "days") != 0) {
                rc = sm_err_set(&err, SM_EINVAL, "unknown field \"%.64s\"", key);
                break;
            }
        }
    }
    if (rc == SM_OK)
        rc = sm_json_str(*body, "student_ref", true, SM_STUDENT_REF_MAX, &ref, &err);
    if (rc == SM_OK)
        rc = sm_json_int(*body, "days", false, 1, SM_STUDENT_LINK_MAX_DAYS, &days, &err);
    if (rc != SM_OK) {
        http_v1_fail(rs, rc, err.msg);
        return false;
    }
    req->student_ref = ref;
    req->days = (int)days;
    return true;
}

void http_v1_feedback_link(http_req *rq, http_resp *rs, const char *course)
{
    json_t *body = NULL;
    sm_student_link_req req = {.course_code = course, .base_url = rq->http->student_base};
    int64_t cid;
    if (!read_body(rq, rs, &body, &req) || !http_v1_course_in_scope(rq, rs, course, &cid)) {
        json_decref(body);
        return;
    }
    sm_student_link link;
    sm_err err = {0};
    sm_code rc = sm_student_link_make(rq->db, &req, &link, &err);
    if (rc != SM_OK) {
        http_v1_fail(rs, rc, err.msg);
        json_decref(body);
        return;
    }
    sm_log(SM_LOG_INFO, "http api: student link made", "service", rq->service_id_s, "course",
           course, NULL);
    http_resp_json(rs, 200,
                   json_pack("{s:s,s:O,s:s,s:s}", "course", course, "student_ref",
                             json_object_get(body, "student_ref"), "url", link.url, "expires_at",
                             link.expires_at));
    json_decref(body);
}
