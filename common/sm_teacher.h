/* sm_teacher: teacher accounts and their sign-in tokens (used by `stepmark teacher` and the
 * review tests). A teacher has at most one valid token: random, returned once, stored only as
 * its SHA-256 hash, optionally with an expiry. Rotating replaces it, revoking removes it; both
 * increase the teacher's token epoch, which ends every session opened with an earlier token
 * (the HTTP side accepts a session only while its epoch is the teacher's). */
#ifndef SM_TEACHER_H
#define SM_TEACHER_H

#include <libpq-fe.h>
#include <stdint.h>

#include "sm_error.h"
#include "sm_sha256.h"

#define SM_TEACHER_TOKEN_BYTES 32
#define SM_TEACHER_TOKEN_LEN (2 * SM_TEACHER_TOKEN_BYTES + 1)
#define SM_TEACHER_NAME_MAX 200
/* The longest token lifetime accepted: ten years. */
#define SM_TEACHER_MAX_LIFETIME_S (3650LL * 86400)

/* A teacher to create. */
typedef struct sm_teacher_spec {
    const char *name;
    const char *const *course_codes; /* each must exist */
    int ncourses;                    /* at least one */
    int64_t lifetime_s;              /* token lifetime in seconds; 0: the token does not expire */
} sm_teacher_spec;

/* Creates the teacher linked to the courses, in one transaction. A teacher of the same name must
 * not exist (SM_ESTATE, with a message pointing to `stepmark teacher rotate`). token receives
 * the sign-in token (hex); *id the new teacher's id (id may be NULL). */
sm_code sm_teacher_add(PGconn *conn, const sm_teacher_spec *spec, char token[SM_TEACHER_TOKEN_LEN],
                       int64_t *id, sm_err *err);

/* The id of the teacher called name: SM_ENOTFOUND if none, SM_ESTATE (the ids in the message)
 * if several share the name (possible in databases from before 004_teacher_access). */
sm_code sm_teacher_find(PGconn *conn, const char *name, int64_t *id, sm_err *err);

/* Gives teacher id a new token (lifetime_s as in sm_teacher_spec), invalidating the old one and
 * ending their sessions; also re-enables a revoked teacher. SM_ENOTFOUND if there is no such
 * teacher. */
sm_code sm_teacher_rotate(PGconn *conn, int64_t id, int64_t lifetime_s,
                          char token[SM_TEACHER_TOKEN_LEN], sm_err *err);

/* Invalidates teacher id's token and ends their sessions; the teacher, their courses and reviews
 * stay (rotate gives them access again). SM_ENOTFOUND if there is no such teacher. */
sm_code sm_teacher_revoke(PGconn *conn, int64_t id, sm_err *err);

/* Columns of sm_teacher_list's rows. Times are UTC, "YYYY-MM-DDTHH:MM:SSZ". */
typedef enum sm_teacher_col {
    SM_TEACHER_COL_ID,
    SM_TEACHER_COL_NAME,
    SM_TEACHER_COL_COURSES,   /* course codes, comma-separated */
    SM_TEACHER_COL_STATE,     /* "active", "expired" or "revoked" */
    SM_TEACHER_COL_CREATED,   /* when the current token was issued */
    SM_TEACHER_COL_EXPIRES,   /* "never" or a time */
    SM_TEACHER_COL_LAST_USED, /* "never" or a time (sign-in or signed-in request) */
    SM_TEACHER_NCOLS
} sm_teacher_col;

/* Every teacher, by id; the caller PQclear()s *rows. Never includes tokens or hashes. */
sm_code sm_teacher_list(PGconn *conn, PGresult **rows, sm_err *err);

/* Parses a token lifetime: a positive whole number and a unit, s (seconds), m (minutes),
 * h (hours), d (days) or w (weeks), e.g. "30d"; at most SM_TEACHER_MAX_LIFETIME_S. */
sm_code sm_teacher_parse_lifetime(const char *text, int64_t *seconds, sm_err *err);

/* The hash stored for a token (hex SHA-256 of the token text); false when hashing failed. */
bool sm_teacher_token_hash(const char *token, char out[SM_SHA256_HEX]);

#endif
