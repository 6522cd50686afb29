/* sm_teacher: creating teacher accounts (used by `stepmark teacher add` and the review tests).
 * A teacher gets a random sign-in token that is returned once and stored only as its SHA-256
 * hash, and is linked to the courses they may see. */
#ifndef SM_TEACHER_H
#define SM_TEACHER_H

#include <libpq-fe.h>
#include <stdint.h>

#include "sm_error.h"
#include "sm_sha256.h"

#define SM_TEACHER_TOKEN_BYTES 32
#define SM_TEACHER_TOKEN_LEN (2 * SM_TEACHER_TOKEN_BYTES + 1)

/* Creates teacher `name` linked to the courses with the given codes (each must exist), in one
 * transaction. token receives the sign-in token (hex); *id the new teacher's id (may be NULL). */
sm_code sm_teacher_add(PGconn *conn, const char *name, const char *const *course_codes,
                       int ncourses, char token[SM_TEACHER_TOKEN_LEN], int64_t *id, sm_err *err);

/* The hash stored for a token (hex SHA-256 of the token text). */
void sm_teacher_token_hash(const char *token, char out[SM_SHA256_HEX]);

#endif
