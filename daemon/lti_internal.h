/* lti_internal: what the LTI 1.3 files of stepmarkd's HTTP side share (lti_jwks.c: settings,
 * the tool's JWKS and the platforms' key cache; lti_launch.c: login and launch; lti_pages.c:
 * the HTML pages, course mapping and deep linking). docs/lti.md describes the flow. */
#ifndef SM_LTI_INTERNAL_H
#define SM_LTI_INTERNAL_H

#include <jansson.h>
#include <pthread.h>

#include "http_internal.h"

#define LTI_CACHE_SLOTS 32
#define LTI_URL_MAX 1024
#define LTI_STATE_COOKIE "sm_lti_state"
#define LTI_STATE_SECONDS 600   /* a login must come back as a launch within this */
#define LTI_LAUNCH_SECONDS 3600 /* the mapping page / deep linking picker stays usable this long */

#define LTI_ROSTER_MIN_SECONDS 60 /* an instructor's launch imports the roster at most this often */

/* ---- the roster import after an instructor's launch (lti_roster.c) ---- */
typedef struct lti_roster lti_roster;
/* Starts the roster thread, which connects to db_url when it first has work. */
sm_code lti_roster_start(const char *db_url, lti_roster **out, sm_err *err);
/* Stops the thread (aborting a transfer in flight) and frees r; *r becomes NULL. */
void lti_roster_stop(lti_roster **r);
/* Queues the roster import of an LMS course; returns at once (never waits on the LMS). */
void lti_roster_request(lti_roster *r, const char *platform_id, const char *context_id);

typedef struct lti_cache_slot { /* one platform's JWKS */
    char url[LTI_URL_MAX];
    json_t *jwks;
    double fetched; /* monotonic seconds of the last fetch attempt, 0 = never */
} lti_cache_slot;

struct http_lti {
    int64_t skew_s;    /* lti.clock_skew_seconds */
    int64_t refetch_s; /* lti.jwks_refetch_seconds */
    int64_t grace_days;
    char public_url[LTI_URL_MAX]; /* http.public_url, "" = from the Host header */
    pthread_mutex_t lock;
    lti_cache_slot cache[LTI_CACHE_SLOTS];
    lti_roster *roster; /* the roster imports after instructors' launches */
};

/* The public key of the platform whose JWKS is at url with this kid (new reference): from the
 * cache, else fetched again (at most once per refetch_s). SM_ENOTFOUND: no such kid. */
sm_code lti_platform_key(struct http_lti *l, const char *url, const char *kid, json_t **jwk,
                         sm_err *err);
/* GET /lti/jwks.json */
void lti_tool_jwks(http_req *rq, http_resp *rs);
/* The tool's base URL without a trailing slash: http.public_url, else scheme://Host. */
void lti_base_url(http_req *rq, char *out, size_t n);
/* The request came over TLS (served by us, or a proxy sending X-Forwarded-Proto: https). */
bool lti_secure(http_req *rq);

/* ---- forms (lti_pages.c) ---- */
/* The decoded value of name in an urlencoded body (malloc'd), or NULL. */
char *lti_form_get(const char *body, const char *name);
/* HTML-escaped copy of s (malloc'd; NULL only when out of memory). */
char *lti_html(const char *s);
/* Fills rs with a page: title and body HTML (already escaped); status. */
void lti_page(http_resp *rs, int status, const char *title, const char *body_html);
/* A refused launch: a clear page and a log line with the reason. */
void lti_refuse(http_req *rq, http_resp *rs, int status, const char *reason, const char *detail);

/* ---- after a valid launch (lti_pages.c) ---- */
typedef struct lti_launch_ctx {
    char platform_id[24];
    char client_id[512];
    char issuer[512];
    json_t *claims; /* the id_token's payload (borrowed) */
} lti_launch_ctx;
/* An Instructor's or TA's launch (resource link or deep linking request). */
void lti_instructor(http_req *rq, http_resp *rs, const lti_launch_ctx *c);
/* A Learner's launch. */
void lti_learner(http_req *rq, http_resp *rs, const lti_launch_ctx *c);
/* POST /lti/map and POST /lti/deeplink: the instructor's choices. */
void lti_map_post(http_req *rq, http_resp *rs);
void lti_deeplink_post(http_req *rq, http_resp *rs);

#endif
