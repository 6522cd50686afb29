/* http_v1: what the files of the service API /api/v1 (http_v1.c, http_v1_submit.c) share. */
#ifndef SM_HTTP_V1_H
#define SM_HTTP_V1_H

#include "http_internal.h"

/* Fills rs with the error for code: 400 EINVAL/EFORMAT, 404 ENOTFOUND, 409 ESTATE, 413 ELIMIT,
 * 503 EDB (logged, Retry-After), else 500 EINTERNAL (logged, msg not shown). */
void http_v1_fail(http_resp *rs, sm_code code, const char *msg);

/* POST /api/v1/submissions (http_v1_submit.c), rq authenticated. */
void http_v1_submit(http_req *rq, http_resp *rs);

/* Whether course (a path segment) is one of the token's courses, into *id; else fills rs with
 * the 404 of an unknown course (or 503). Takes rq->db. */
bool http_v1_course_in_scope(http_req *rq, http_resp *rs, const char *course, int64_t *id);

/* POST /api/v1/courses/{course}/feedback-links (http_v1_link.c), rq authenticated. */
void http_v1_feedback_link(http_req *rq, http_resp *rs, const char *course);

#endif
