/* sm_service: service tokens for the HTTP API (/api/v1, docs/http-api.md), used by
 * `stepmark service` and by the HTTP side. A service token belongs to a named system (a
 * Moodle or Canvas plugin) and is scoped to some courses. It is random, shown once, stored only
 * as its SHA-256 (schema/006_grades_flow.sql), optionally with an expiry; revoking it clears
 * the hash so it can never match again. */
#ifndef SM_SERVICE_H
#define SM_SERVICE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "sm_error.h"
#include "sm_sha256.h"

#define SM_SERVICE_PREFIX "sms_" /* every service token starts with it */
#define SM_SERVICE_TOKEN_BYTES 32
/* "sms_" + 64 hex digits + NUL */
#define SM_SERVICE_TOKEN_LEN (sizeof SM_SERVICE_PREFIX - 1 + 2 * SM_SERVICE_TOKEN_BYTES + 1)
#define SM_SERVICE_NAME_MAX 200

/* A service token to create. */
typedef struct sm_service_spec {
    const char *name;
    const char *const *course_codes; /* each must exist */
    int ncourses;                    /* at least one */
    int64_t lifetime_s;              /* 0: the token does not expire */
} sm_service_spec;

/* Creates the named token for the courses in one transaction (SM_ESTATE if the name exists,
 * SM_ENOTFOUND for an unknown course). token receives the token text, shown once. */
sm_code sm_service_add(PGconn *conn, const sm_service_spec *spec, char token[SM_SERVICE_TOKEN_LEN],
                       sm_err *err);

/* Revokes the named token (its hash is cleared). SM_ENOTFOUND when there is no such token. */
sm_code sm_service_revoke(PGconn *conn, const char *name, sm_err *err);

/* Every token as a JSON array of {id, name, courses[], state (active|expired|revoked),
 * created_at, expires_at, revoked_at, last_used_at} (never hashes), by name. */
sm_code sm_service_list(PGconn *conn, char **json, sm_err *err);

/* Whether text has the form of a service token ("sms_" and 64 lowercase hex digits). */
bool sm_service_token_well_formed(const char *text);

#endif
