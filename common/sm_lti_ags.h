/* sm_lti_ags: the LTI Advantage services stepmark calls on a platform (docs/lti.md): OAuth2
 * client credentials with a JWT client assertion signed by the tool's key (RFC 7523, IMS
 * Security Framework 4.1), access tokens cached until they expire; HTTP requests with a bearer
 * token (libcurl); the Names and Role Provisioning Services roster import; and the settings and
 * log of grade passback (Assignment and Grade Services) that the CLI and stepmarkd share
 * (schema/012_lti_ags.sql). stepmarkd's passback thread (daemon/lti_passback.c) posts the
 * scores. */
#ifndef SM_LTI_AGS_H
#define SM_LTI_AGS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "sm_error.h"

#define SM_LTI_SCOPE_LINEITEM "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
#define SM_LTI_SCOPE_LINEITEM_RO "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
#define SM_LTI_SCOPE_SCORE "https://purl.imsglobal.org/spec/lti-ags/scope/score"
#define SM_LTI_SCOPE_NRPS \
    "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
#define SM_LTI_TOKEN_SLOTS 16
#define SM_LTI_TOKEN_MAX 4096

typedef struct sm_lti_token_slot {
    int64_t platform_id;
    char scope[512];
    char token[SM_LTI_TOKEN_MAX];
    int64_t expires; /* monotonic seconds; 0 = empty */
} sm_lti_token_slot;

/* One libcurl handle and the access tokens it got, per platform and scope. Not thread-safe:
 * one per thread (the passback thread, a CLI command). */
typedef struct sm_lti_client {
    void *curl;
    int64_t timeout_ms;
    const volatile int *abort; /* non-zero aborts a transfer in flight; may be NULL */
    sm_lti_token_slot tokens[SM_LTI_TOKEN_SLOTS];
} sm_lti_client;

sm_code sm_lti_client_init(sm_lti_client *c, int64_t timeout_ms, sm_err *err);
void sm_lti_client_free(sm_lti_client *c);

/* The platform a service call goes to. */
typedef struct sm_lti_service {
    int64_t platform_id;
    char client_id[512];
    char token_url[1024];
} sm_lti_service;
/* Reads platform id's client id and token URL; SM_ENOTFOUND when there is none. */
sm_code sm_lti_service_load(PGconn *db, int64_t platform_id, sm_lti_service *out, sm_err *err);

/* An HTTP exchange. status 0: no response came (err says why). */
typedef struct sm_lti_response {
    long status;
    char *body; /* malloc'd, NUL-terminated (may be empty) */
    size_t len;
    char next[1024];     /* the Link header's rel="next" URL, "" when none */
    int64_t duration_ms; /* of the request */
} sm_lti_response;
void sm_lti_response_free(sm_lti_response *r);

/* An access token for scope (space-separated scopes): cached, else requested from the token
 * URL with a fresh client assertion signed by the tool's current key (read from db). On
 * failure *resp holds the token endpoint's answer when there was one. */
sm_code sm_lti_access_token(sm_lti_client *c, PGconn *db, const sm_lti_service *svc,
                            const char *scope, const char **token, sm_lti_response *resp,
                            sm_err *err);
/* Forgets the cached tokens of a platform (after a 401). */
void sm_lti_token_forget(sm_lti_client *c, int64_t platform_id);

typedef struct sm_lti_request {
    const char *method; /* "GET" or "POST" */
    const char *url;
    const char *token;        /* bearer token, or NULL */
    const char *accept;       /* Accept header, or NULL */
    const char *content_type; /* with body */
    const char *body;         /* POST body, or NULL */
} sm_lti_request;
/* Sends rq. SM_OK whenever a response came back (any status: look at out->status); SM_EIO
 * when none did (a refused connection, a timeout), with the reason in err. */
sm_code sm_lti_send(sm_lti_client *c, const sm_lti_request *rq, sm_lti_response *out, sm_err *err);

/* ---- roster (Names and Role Provisioning Services 2.0) ---- */
typedef struct sm_lti_roster_result {
    int contexts; /* LMS courses of the stepmark course with a roster URL */
    int members;  /* members read */
    int removed;  /* members marked Deleted (no longer in the roster) */
} sm_lti_roster_result;
/* Imports the roster of every LMS course mapped to the stepmark course with code course_code
 * (all pages, following Link rel="next") into lti_member. SM_ENOTFOUND: no such course;
 * SM_ESTATE: no LMS course of it sent a roster URL yet (an instructor must launch first). */
sm_code sm_lti_roster_sync(sm_lti_client *c, PGconn *db, const char *course_code,
                           sm_lti_roster_result *out, sm_err *err);

/* Imports the roster of one LMS course (platform_id, context_id: as stored in lti_context)
 * from the roster URL its launches sent (stepmarkd does this after an instructor's launch).
 * SM_ENOTFOUND: no such LMS course; SM_ESTATE: it has no roster URL. */
sm_code sm_lti_roster_sync_context(sm_lti_client *c, PGconn *db, const char *platform_id,
                                   const char *context_id, sm_lti_roster_result *out, sm_err *err);

/* ---- settings and log (CLI) ---- */
typedef enum sm_lti_policy { SM_LTI_ON_APPROVAL, SM_LTI_ON_RELEASE } sm_lti_policy;
/* Sets the passback policy of a course (assignment_code NULL) or of one of its assignments. */
sm_code sm_lti_passback_set(PGconn *db, const char *course_code, const char *assignment_code,
                            sm_lti_policy policy, sm_err *err);
/* Sets which claim is a learner's student_ref in a course: "sub", "sourcedid" or "email". */
sm_code sm_lti_student_ref_set(PGconn *db, const char *course_code, const char *from, sm_err *err);
/* The course's settings and targets: {course, student_ref_from, passback, assignments:
 * [{code, passback}], targets: [{platform_id, context_id, lineitems, pending, attempts,
 * next_attempt_at, last_error, delivered}]}. */
sm_code sm_lti_course_status(PGconn *db, const char *course_code, json_t **out, sm_err *err);
/* The newest `limit` passback log rows (of one course when course_code is not NULL), newest
 * first: [{id, at, course, context_id, event, event_id, submission_id, user, attempt, outcome,
 * detail, status_code, error, duration_ms}]. */
sm_code sm_lti_passback_log(PGconn *db, const char *course_code, int limit, json_t **out,
                            sm_err *err);

#endif
