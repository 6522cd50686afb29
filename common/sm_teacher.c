/* sm_teacher: teacher accounts with hashed sign-in tokens (see sm_teacher.h). */
#include "sm_teacher.h"

#include <stdlib.h>
#include <string.h>

#include "sm_db.h"

void sm_teacher_token_hash(const char *token, char out[SM_SHA256_HEX])
{
    sm_sha256_hex(token, strlen(token), out);
}

static sm_code add_in_tx(PGconn *conn, const char *name, const char *const *codes, int n,
                         const char *hash, int64_t *id, sm_err *err)
{
    PGresult *r;
    const char *p1[] = {name, hash};
    sm_code rc = sm_db_query(conn, "INSERT INTO teacher (name, token_hash) VALUES ($1, $2) "
                                   "RETURNING id",
                             2, p1, &r, err);
    if (rc != SM_OK)
        return rc;
    char tid[32];
    snprintf(tid, sizeof tid, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    for (int i = 0; i < n; i++) {
        const char *p2[] = {tid, codes[i]};
        rc = sm_db_query(conn,
                         "INSERT INTO course_teacher (course_id, teacher_id) "
                         "SELECT id, $1::bigint FROM course WHERE code = $2 ON CONFLICT DO NOTHING "
                         "RETURNING course_id",
                         2, p2, &r, err);
        if (rc != SM_OK)
            return rc;
        int found = PQntuples(r);
        PQclear(r);
        if (found == 0) {
            /* Either no such course or the same code given twice. */
            const char *p3[] = {codes[i]};
            rc = sm_db_query(conn, "SELECT 1 FROM course WHERE code = $1", 1, p3, &r, err);
            if (rc != SM_OK)
                return rc;
            found = PQntuples(r);
            PQclear(r);
            if (found == 0)
                return sm_err_set(err, SM_ENOTFOUND, "no course with code '%s'", codes[i]);
        }
    }
    if (id)
        *id = strtoll(tid, NULL, 10);
    return SM_OK;
}

sm_code sm_teacher_add(PGconn *conn, const char *name, const char *const *course_codes,
                       int ncourses, char token[SM_TEACHER_TOKEN_LEN], int64_t *id, sm_err *err)
{
    size_t nlen = name ? strlen(name) : 0;
    if (nlen < 1 || nlen > 200)
        return sm_err_set(err, SM_EINVAL, "teacher name must have 1 to 200 characters");
    if (ncourses < 1)
        return sm_err_set(err, SM_EINVAL, "a teacher needs at least one course");
    sm_code rc = sm_random_hex(SM_TEACHER_TOKEN_BYTES, token, err);
    if (rc != SM_OK)
        return rc;
    char hash[SM_SHA256_HEX];
    sm_teacher_token_hash(token, hash);
    rc = sm_db_exec(conn, "BEGIN", err);
    if (rc != SM_OK)
        return rc;
    rc = add_in_tx(conn, name, course_codes, ncourses, hash, id, err);
    if (rc == SM_OK)
        rc = sm_db_exec(conn, "COMMIT", err);
    if (rc != SM_OK) {
        sm_err ignored;
        sm_db_exec(conn, "ROLLBACK", &ignored);
        memset(token, 0, SM_TEACHER_TOKEN_LEN);
    }
    return rc;
}
