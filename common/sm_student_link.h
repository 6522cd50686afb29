/* sm_student_link: signed, expiring per-student links to released feedback (docs/
 * student-feedback.md). A link names a course and a student (student_ref, as the LMS sent it)
 * and an expiry; it is signed with HMAC-SHA256 (OpenSSL) under a server key kept in PostgreSQL
 * (table student_link_key, 008_student_links.sql): 32 bytes from RAND_bytes, made on first use;
 * rotating the key invalidates every link. The token is
 *     base64url("sl1:" course_id ":" expires_unix ":" student_ref) "." base64url(hmac)
 * and the link is PUBLIC_URL/student?t=TOKEN. Used by `stepmark student link|rotate-key`, the
 * student page's API (GET /api/student/feedback) and, for LMSs, the HTTP API. */
#ifndef SM_STUDENT_LINK_H
#define SM_STUDENT_LINK_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"

#define SM_STUDENT_KEY_BYTES 32
#define SM_STUDENT_REF_MAX 200   /* bytes, as in submission.student_ref */
#define SM_STUDENT_TOKEN_MAX 512 /* a token and its NUL always fit */
#define SM_STUDENT_URL_MAX 1200  /* a base URL of up to 600 bytes, the path and a token */
#define SM_STUDENT_LINK_DEFAULT_DAYS 30
#define SM_STUDENT_LINK_MAX_DAYS 400

/* What a token says. */
typedef struct sm_student_claims {
    int64_t course_id;
    int64_t expires; /* Unix seconds; the link is refused from this second on */
    char student_ref[SM_STUDENT_REF_MAX + 1];
} sm_student_claims;

/* Signs claims with key into token. SM_EINVAL for an empty or too long student_ref, or one
 * holding a control character. */
sm_code sm_student_token_sign(const unsigned char key[SM_STUDENT_KEY_BYTES],
                              const sm_student_claims *claims, char token[SM_STUDENT_TOKEN_MAX],
                              sm_err *err);

/* Checks token's signature under key and that it has not expired at now (Unix seconds); fills
 * *claims. Every failure (malformed, tampered, signed with another key, expired) is SM_EINVAL
 * with the same message, so a caller cannot tell them apart. */
sm_code sm_student_token_verify(const unsigned char key[SM_STUDENT_KEY_BYTES], const char *token,
                                int64_t now, sm_student_claims *claims, sm_err *err);

/* The current key, creating it (RAND_bytes) when there is none yet. */
sm_code sm_student_key_get(PGconn *db, unsigned char key[SM_STUDENT_KEY_BYTES], sm_err *err);

/* Replaces the key with a new random one: every link made before stops working. */
sm_code sm_student_key_rotate(PGconn *db, sm_err *err);

/* A link to make. */
typedef struct sm_student_link_req {
    const char *course_code; /* must exist (SM_ENOTFOUND) */
    const char *student_ref; /* 1..200 bytes, no control characters */
    int days;                /* lifetime, 1..SM_STUDENT_LINK_MAX_DAYS; 0: the default (30) */
    const char *base_url;    /* http:// or https:// URL the students reach stepmarkd at */
} sm_student_link_req;

typedef struct sm_student_link {
    char url[SM_STUDENT_URL_MAX];     /* base_url + "/student?t=" + token */
    char token[SM_STUDENT_TOKEN_MAX]; /* the token alone */
    int64_t expires;                  /* Unix seconds */
    char expires_at[32];              /* the same as "YYYY-MM-DDTHH:MM:SSZ" */
} sm_student_link;

/* Makes a link for req (the key is created on first use). SM_EINVAL for a bad student_ref,
 * days or base_url, SM_ENOTFOUND for an unknown course, SM_EDB on a database failure. This is
 * the one function to call to hand out links (the CLI, an LMS endpoint). */
sm_code sm_student_link_make(PGconn *db, const sm_student_link_req *req, sm_student_link *out,
                             sm_err *err);

/* Verifies token against the current key at the current time (sm_student_token_verify). */
sm_code sm_student_link_check(PGconn *db, const char *token, sm_student_claims *claims,
                              sm_err *err);

/* The base URL students reach stepmarkd at: public_url (the http.public_url setting) without
 * its trailing slashes when set, else http(s)://ADDRESS:PORT from the http settings (https when
 * tls is true). */
void sm_student_base_url(const char *public_url, const char *address, int64_t port, bool tls,
                         char *out, size_t n);

#endif
