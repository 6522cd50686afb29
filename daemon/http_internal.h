/* http_internal: what the files of the HTTP side (daemon/http_*.c) share: the server object,
 * one request and its response, the database pool, the sign-in rate limiter and the route
 * handlers. Not used outside daemon/http_*.c. */
#ifndef SM_HTTP_INTERNAL_H
#define SM_HTTP_INTERNAL_H

#include <jansson.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "sm_error.h"
#include "sm_http.h"
#include "sm_metrics.h"
#include "sm_sha256.h"

#define HTTP_MAX_BODY (1024 * 1024)
#define HTTP_SIGNIN_MAX_BODY 4096 /* {"token": "<64 hex>"} with room to spare */
#define HTTP_MAX_DECIMAL 32       /* longest number accepted in a query parameter */
#define HTTP_SESSION_HOURS 12
#define HTTP_COOKIE "sm_session"

/* ---- database connection pool (http_pool.c) ---- */
typedef struct http_pool http_pool;
sm_code http_pool_new(const char *url, int size, http_pool **out, sm_err *err);
/* Takes a connection, waiting up to a few seconds; reconnects a broken one. */
sm_code http_pool_get(http_pool *p, PGconn **out, sm_err *err);
/* Returns a connection; a connection left inside a transaction is rolled back. */
void http_pool_put(http_pool *p, PGconn *conn);
void http_pool_free(http_pool **p);

/* ---- sign-in rate limiter (http_auth.c) ---- */
#define HTTP_RATE_SLOTS 1024
typedef struct http_rate_slot { /* a token bucket per client address */
    char client[64];
    double tokens; /* attempts left; refilled at login_per_minute / 60 per second */
    double last;   /* monotonic seconds of the last update */
} http_rate_slot;

struct sm_http {
    struct MHD_Daemon *mhd;
    http_pool *pool;
    sm_metrics *metrics;
    char static_dir[512];
    int port;
    int login_per_minute;
    bool tls;       /* served over TLS by libmicrohttpd itself */
    char *tls_cert; /* PEM, malloc'd, while tls */
    char *tls_key;  /* PEM, malloc'd, cleared before it is freed */
    pthread_mutex_t rate_lock;
    http_rate_slot rate[HTTP_RATE_SLOTS];
    size_t api_max_body;  /* /api/v1 bodies: broker.max_body_bytes, as for SUBMIT */
    int api_max_attempts; /* broker.max_attempts for jobs submitted over /api/v1 */
    struct http_lti *lti; /* LTI 1.3 settings and the platforms' key cache (lti_jwks.c) */
    /* the base URL students reach this server at, for their feedback links (http_v1_link.c) */
    char student_base[640];
};

/* ---- one request and its response ---- */
typedef struct http_req {
    /* filled while the body arrives */
    char *body;
    size_t len, cap;
    bool too_big;
    /* decided on the first call, from the method, path and headers, before any body byte */
    size_t body_limit; /* bytes of body kept; 0 = any body is discarded unread */
    bool auth_loaded;  /* http_auth_load has run */
    bool post_checked; /* http_auth_check_post has passed */
    bool answered;     /* a response is queued already (refused before its body) */
    json_t *json;      /* a POST /api body parsed (duplicate keys refused), or NULL */
    /* filled at dispatch */
    sm_http *http;
    struct MHD_Connection *conn;
    const char *method;
    const char *url;
    char client[64];
    PGconn *db; /* taken from the pool on first use (http_db) */
    bool signed_in;
    int64_t teacher_id;
    char teacher_id_s[24];
    char teacher_name[256];
    char csrf[SM_SHA256_HEX];
    /* /api/v1 (http_v1*.c): a service token instead of a session */
    bool v1;
    int64_t service_id; /* the authenticated token, 0 = none yet */
    char service_id_s[24];
    bool form; /* /lti: an HTML form's body (urlencoded), not JSON (lti_launch.c) */
} http_req;

typedef struct http_resp {
    int status;
    char *body; /* malloc'd */
    size_t len;
    const char *content_type;
    char *set_cookie;      /* malloc'd, may be NULL */
    char *disposition;     /* malloc'd Content-Disposition, may be NULL */
    int retry_after;       /* seconds, 0 = none */
    bool cacheable;        /* static files */
    bool bearer_challenge; /* 401 of /api/v1: WWW-Authenticate: Bearer */
    char *csp;             /* malloc'd Content-Security-Policy replacing the default, or NULL */
    char *location;        /* malloc'd Location of a redirect, or NULL */
} http_resp;

/* ---- helpers (http_server.c) ---- */
void http_resp_json(http_resp *rs, int status, json_t *doc); /* steals doc */
void http_resp_error(http_resp *rs, int status, const char *code, const char *msg);
void http_resp_text(http_resp *rs, int status, const char *type, char *body, size_t len);
/* The request's database connection, taken from the pool on first call; on failure it fills
 * a 503 response and returns NULL. */
PGconn *http_db(http_req *rq, http_resp *rs);
/* A query parameter, or NULL when absent or empty. */
const char *http_arg(http_req *rq, const char *name);
/* Parses a positive decimal id; false if s is not one. */
bool http_parse_id(const char *s, int64_t *out);
/* Logs a database failure and fills a 500 response. */
void http_db_failed(http_resp *rs, const sm_err *err);

/* ---- checks on client input (http_input.c) ---- */
/* True when s[0..n) is valid UTF-8 (no NUL, no overlong forms, no surrogates). */
bool http_utf8_valid(const char *s, size_t n);
/* True for a plain decimal: optional '-', 1 to 9 digits, optional '.' and digits; nothing else
 * (no hex, exponent, spaces, inf or nan), so PostgreSQL's numeric always accepts it. */
bool http_decimal_valid(const char *s);
/* The path and every query parameter must be valid UTF-8; else fills a 400, returns false. */
bool http_input_check(http_req *rq, http_resp *rs);
/* Parses a request body that must be a JSON object; duplicate keys are refused. */
sm_code http_body_json(const char *body, size_t len, json_t **out, sm_err *err);

/* ---- rows to JSON (http_json.c) ---- */
/* One row as an object keyed by column name (numbers, booleans, json/jsonb typed). */
json_t *http_row_json(const PGresult *r, int row);
/* Every row as an array of objects. */
json_t *http_rows_json(const PGresult *r);
/* A string that is valid UTF-8 for JSON (invalid bytes replaced by U+FFFD). */
json_t *http_json_string(const char *s);

/* ---- auth (http_auth.c) ---- */
/* Loads the session from the cookie into rq (rq->signed_in). */
sm_code http_auth_load(http_req *rq, http_resp *rs);
/* For POSTs: checks content type, Origin and X-CSRF-Token; fills a 403 and returns false. */
bool http_auth_check_post(http_req *rq, http_resp *rs, bool need_csrf);
void http_api_signin(http_req *rq, http_resp *rs);
void http_api_signout(http_req *rq, http_resp *rs);
void http_api_session(http_req *rq, http_resp *rs);
void http_rate_init(sm_http *h);
/* The per-address limit on authentication attempts (login_attempts_per_minute): 0 when client
 * may try now, else the seconds to wait. take counts one attempt (a sign-in, or a failed
 * bearer token); without it the bucket is only looked at. */
int http_rate_check(sm_http *h, const char *client, bool take);

/* ---- the service API /api/v1 (http_v1*.c, docs/http-api.md) ---- */
/* On a POST's first call: content type, bearer token, body limit; false with rs filled. */
bool http_v1_admit(http_req *rq, http_resp *rs);
/* Every /api/v1 request; authenticates the bearer token unless http_v1_admit did. */
void http_v1_route(http_req *rq, http_resp *rs);

/* ---- API (http_api.c, http_review.c, http_export.c, http_progress.c) ---- */
void http_api_courses(http_req *rq, http_resp *rs);
void http_api_course(http_req *rq, http_resp *rs, int64_t id);
void http_api_assignment(http_req *rq, http_resp *rs, int64_t id);
void http_api_submission(http_req *rq, http_resp *rs, int64_t id);
void http_api_review(http_req *rq, http_resp *rs, int64_t submission_id);
void http_api_export_csv(http_req *rq, http_resp *rs, int64_t assignment_id);
void http_api_export_json(http_req *rq, http_resp *rs, int64_t assignment_id);
void http_api_progress(http_req *rq, http_resp *rs);
/* POST /api/assignments/ID/lti-passback: the assignment's grade passback policy (lti_policy.c) */
void http_api_lti_passback(http_req *rq, http_resp *rs, int64_t assignment_id);
/* alike submissions (http_similarity.c) */
void http_api_similarity(http_req *rq, http_resp *rs, int64_t assignment_id);
void http_api_similarity_run(http_req *rq, http_resp *rs, int64_t assignment_id);
void http_api_similarity_pair(http_req *rq, http_resp *rs, int64_t pair_id);
void http_metrics_page(http_req *rq, http_resp *rs);
/* /healthz and /readyz (http_health.c): probe is "healthz" or "readyz"; no session needed. */
void http_health(http_req *rq, http_resp *rs, const char *probe);

/* ---- exports (http_export.c) ---- */
/* Writes one CSV cell and a separator (or CRLF when last): quoted when needed; a text cell
 * starting with = + - @ tab or CR gets a leading ' (no formula injection). */
void http_csv_cell(FILE *f, const char *s, bool text, bool last);

/* ---- LTI 1.3 (lti_*.c, docs/lti.md) ---- */
sm_code http_lti_start(sm_http *h, const sm_config *cfg, const char *db_url, sm_err *err);
void http_lti_stop(sm_http *h);
/* On a POST's first call to /lti/...: decides its body limit; false with rs filled. */
bool http_lti_admit(http_req *rq, http_resp *rs);
/* Every request under /lti/ (seg: the path's n segments). */
void http_lti_route(http_req *rq, http_resp *rs, int n, char **seg);

/* ---- static files (http_static.c) ---- */
void http_static(http_req *rq, http_resp *rs, const char *path);

/* Files built from daemon/web/ by cmake/embed_web.cmake. */
typedef struct sm_web_file {
    const char *name;
    const unsigned char *data;
    size_t len;
} sm_web_file;
const sm_web_file *sm_web_files(int *count);

/* ---- request parsing, also called by the fuzz target tests/fuzz/fuzz_http.c ---- */
/* The submission filter of an assignment's list (query arguments state, flag, min, max, q,
 * sort). http_filter_read fills it, or fills a 400 in rs and returns false. */
typedef struct http_filter {
    const char *state, *flag, *min, *max, *q;
    const char *order; /* SQL ORDER BY list, from a fixed table */
} http_filter;
bool http_filter_read(http_req *rq, http_resp *rs, http_filter *f);
/* A review action's JSON body (rq->body): {"action", "comment", "score"}.
 * http_review_read_body parses it into in (strings owned by *body, which the caller
 * json_decref's), or fills a 400 in rs and returns false. */
typedef struct http_review_in {
    const char *action;
    const char *comment;
    char score[32];         /* "" = none */
    bool provisional;       /* approve: take the grading's provisional score from the checks */
    const json_t *criteria; /* adjust: {"id": points} for a grading scored by criteria, or NULL */
} http_review_in;
bool http_review_read_body(http_req *rq, http_resp *rs, json_t **body, http_review_in *in);

#endif
