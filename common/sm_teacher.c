/* sm_teacher: teacher accounts with hashed, rotatable, revocable sign-in tokens (see
 * sm_teacher.h and schema/004_teacher_access.sql). */
#include "sm_teacher.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_db.h"

/* Advisory lock key serialising `teacher add` so that two adds cannot create the same name:
 * "smteachr" in ASCII. */
#define SM_TEACHER_LOCK "8317133620616603762"

bool sm_teacher_token_hash(const char *token, char out[SM_SHA256_HEX])
{
    return sm_sha256_hex(token, strlen(token), out);
}

sm_code sm_teacher_parse_lifetime(const char *text, int64_t *seconds, sm_err *err)
{
    const char *p = text ? text : "";
    size_t digits = strspn(p, "0123456789");
    int64_t unit = 0;
    if (digits > 0 && digits <= 12 && p[digits] != '\0' && p[digits + 1] == '\0') {
        switch (p[digits]) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        case 'w':
            unit = 7 * 86400;
            break;
        default:
            break;
        }
    }
    if (unit == 0)
        return sm_err_set(err, SM_EINVAL,
                          "bad lifetime '%s': want a number and a unit s, m, h, d or w, e.g. 30d",
                          p);
    long long n = strtoll(p, NULL, 10); /* at most 12 digits: no overflow */
    if (n <= 0 || n > SM_TEACHER_MAX_LIFETIME_S / unit)
        return sm_err_set(err, SM_EINVAL,
                          "bad lifetime '%s': must be above 0 and at most %lld days", p,
                          SM_TEACHER_MAX_LIFETIME_S / 86400);
    *seconds = (int64_t)n * unit;
    return SM_OK;
}

/* Runs fn(conn, ctx, err) inside one transaction: committed if it succeeds, else rolled back. */
typedef sm_code (*tx_fn)(PGconn *conn, void *ctx, sm_err *err);

static sm_code in_tx(PGconn *conn, tx_fn fn, void *ctx, sm_err *err)
{
    sm_code rc = sm_db_exec(conn, "BEGIN", err);
    if (rc != SM_OK)
        return rc;
    rc = fn(conn, ctx, err);
    if (rc == SM_OK)
        rc = sm_db_exec(conn, "COMMIT", err);
    if (rc != SM_OK) {
        sm_err ignored;
        sm_db_exec(conn, "ROLLBACK", &ignored);
    }
    return rc;
}

/* Records a change of a teacher's access in audit_log (actor "cli"). */
static sm_code audit(PGconn *conn, const char *action, const char *tid, sm_err *err)
{
    const char *p[] = {action, tid};
    return sm_db_query(conn,
                       "INSERT INTO audit_log (actor, action, subject, details) "
                       "SELECT 'cli', $1, 'teacher:' || id, jsonb_build_object('expires_at', "
                       "token_expires_at) FROM teacher WHERE id = $2::bigint",
                       2, p, NULL, err);
}

typedef struct add_ctx {
    const sm_teacher_spec *spec;
    const char *hash;
    char lifetime[24];
    char tid[24];
} add_ctx;

/* Fails with SM_ESTATE when a teacher called name exists (under the add lock). */
static sm_code check_new_name(PGconn *conn, const char *name, sm_err *err)
{
    PGresult *r;
    sm_code rc = sm_db_exec(conn, "SELECT pg_advisory_xact_lock(" SM_TEACHER_LOCK ")", err);
    const char *p[] = {name};
    if (rc == SM_OK)
        rc = sm_db_query(conn, "SELECT min(id) FROM teacher WHERE name = $1 HAVING count(*) > 0", 1,
                         p, &r, err);
    if (rc != SM_OK)
        return rc;
    if (PQntuples(r) > 0)
        rc = sm_err_set(err, SM_ESTATE,
                        "teacher '%s' already exists (id %s); to replace a lost or leaked token "
                        "run `stepmark teacher rotate '%s'`, which also ends their sessions",
                        name, PQgetvalue(r, 0, 0), name);
    PQclear(r);
    return rc;
}

/* Links teacher tid to the course with the given code; SM_ENOTFOUND if there is none. */
static sm_code link_course(PGconn *conn, const char *tid, const char *code, sm_err *err)
{
    PGresult *r;
    const char *p[] = {tid, code};
    sm_code rc = sm_db_query(conn,
                             "INSERT INTO course_teacher (course_id, teacher_id) "
                             "SELECT id, $1::bigint FROM course WHERE code = $2 "
                             "ON CONFLICT DO NOTHING RETURNING course_id",
                             2, p, &r, err);
    if (rc != SM_OK)
        return rc;
    int found = PQntuples(r);
    PQclear(r);
    if (found > 0)
        return SM_OK;
    /* Either no such course or the same code given twice. */
    rc = sm_db_query(conn, "SELECT 1 FROM course WHERE code = $1", 1, p + 1, &r, err);
    if (rc != SM_OK)
        return rc;
    found = PQntuples(r);
    PQclear(r);
    return found ? SM_OK : sm_err_set(err, SM_ENOTFOUND, "no course with code '%s'", code);
}

static sm_code add_in_tx(PGconn *conn, void *vctx, sm_err *err)
{
    add_ctx *c = vctx;
    sm_code rc = check_new_name(conn, c->spec->name, err);
    if (rc != SM_OK)
        return rc;
    PGresult *r;
    const char *p[] = {c->spec->name, c->hash, c->lifetime};
    rc = sm_db_query(conn,
                     "INSERT INTO teacher (name, token_hash, token_expires_at) VALUES ($1, $2, "
                     "CASE WHEN $3::bigint > 0 THEN now() + $3::bigint * interval '1 second' END) "
                     "RETURNING id",
                     3, p, &r, err);
    if (rc != SM_OK)
        return rc;
    snprintf(c->tid, sizeof c->tid, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    for (int i = 0; i < c->spec->ncourses && rc == SM_OK; i++)
        rc = link_course(conn, c->tid, c->spec->course_codes[i], err);
    return rc == SM_OK ? audit(conn, "teacher_add", c->tid, err) : rc;
}

static sm_code check_lifetime(int64_t lifetime_s, sm_err *err)
{
    if (lifetime_s < 0 || lifetime_s > SM_TEACHER_MAX_LIFETIME_S)
        return sm_err_set(err, SM_EINVAL, "token lifetime out of range");
    return SM_OK;
}

/* A fresh token in token and its hash in hash. */
static sm_code new_token(char token[SM_TEACHER_TOKEN_LEN], char hash[SM_SHA256_HEX], sm_err *err)
{
    sm_code rc = sm_random_hex(SM_TEACHER_TOKEN_BYTES, token, err);
    if (rc == SM_OK && !sm_teacher_token_hash(token, hash))
        rc = sm_err_set(err, SM_ENOMEM, "hashing the token failed (out of memory)");
    return rc;
}

sm_code sm_teacher_add(PGconn *conn, const sm_teacher_spec *spec, char token[SM_TEACHER_TOKEN_LEN],
                       int64_t *id, sm_err *err)
{
    size_t nlen = spec->name ? strlen(spec->name) : 0;
    if (nlen < 1 || nlen > SM_TEACHER_NAME_MAX)
        return sm_err_set(err, SM_EINVAL, "teacher name must have 1 to %d characters",
                          SM_TEACHER_NAME_MAX);
    if (spec->ncourses < 1)
        return sm_err_set(err, SM_EINVAL, "a teacher needs at least one course");
    char hash[SM_SHA256_HEX];
    sm_code rc = check_lifetime(spec->lifetime_s, err);
    if (rc == SM_OK)
        rc = new_token(token, hash, err);
    if (rc != SM_OK)
        return rc;
    add_ctx c = {.spec = spec, .hash = hash};
    snprintf(c.lifetime, sizeof c.lifetime, "%lld", (long long)spec->lifetime_s);
    rc = in_tx(conn, add_in_tx, &c, err);
    if (rc != SM_OK)
        memset(token, 0, SM_TEACHER_TOKEN_LEN);
    else if (id)
        *id = strtoll(c.tid, NULL, 10);
    return rc;
}

sm_code sm_teacher_find(PGconn *conn, const char *name, int64_t *id, sm_err *err)
{
    PGresult *r;
    const char *p[] = {name ? name : ""};
    sm_code rc = sm_db_query(conn,
                             "SELECT count(*), string_agg(id::text, ', ' ORDER BY id), min(id) "
                             "FROM teacher WHERE name = $1",
                             1, p, &r, err);
    if (rc != SM_OK)
        return rc;
    long n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    if (n == 0)
        rc = sm_err_set(err, SM_ENOTFOUND, "no teacher called '%s'", p[0]);
    else if (n > 1)
        rc = sm_err_set(err, SM_ESTATE, "%ld teachers are called '%s' (ids %s): give one with --id",
                        n, p[0], PQgetvalue(r, 0, 1));
    else
        *id = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    PQclear(r);
    return rc;
}

typedef enum access_change { ACCESS_ROTATE, ACCESS_REVOKE } access_change;

typedef struct change_ctx {
    access_change what;
    char tid[24];
    char lifetime[24];
    const char *hash; /* rotate: the new token's hash */
} change_ctx;

static sm_code change_in_tx(PGconn *conn, void *vctx, sm_err *err)
{
    change_ctx *c = vctx;
    PGresult *r;
    const char *p[] = {c->tid, c->hash, c->lifetime};
    sm_code rc =
        c->what == ACCESS_ROTATE
            ? sm_db_query(conn,
                          "UPDATE teacher SET token_hash = $2, token_created_at = now(), "
                          "token_expires_at = CASE WHEN $3::bigint > 0 THEN now() + "
                          "$3::bigint * interval '1 second' END, revoked_at = NULL, "
                          "token_epoch = token_epoch + 1 WHERE id = $1::bigint RETURNING id",
                          3, p, &r, err)
            : sm_db_query(conn,
                          "UPDATE teacher SET token_hash = NULL, token_expires_at = NULL, "
                          "revoked_at = COALESCE(revoked_at, now()), "
                          "token_epoch = token_epoch + 1 WHERE id = $1::bigint RETURNING id",
                          1, p, &r, err);
    if (rc != SM_OK)
        return rc;
    int found = PQntuples(r);
    PQclear(r);
    if (!found)
        return sm_err_set(err, SM_ENOTFOUND, "no teacher with id %s", c->tid);
    rc = sm_db_query(conn, "DELETE FROM teacher_session WHERE teacher_id = $1::bigint", 1, p, NULL,
                     err);
    if (rc == SM_OK)
        rc = audit(conn, c->what == ACCESS_ROTATE ? "token_rotate" : "token_revoke", c->tid, err);
    return rc;
}

sm_code sm_teacher_rotate(PGconn *conn, int64_t id, int64_t lifetime_s,
                          char token[SM_TEACHER_TOKEN_LEN], sm_err *err)
{
    char hash[SM_SHA256_HEX];
    sm_code rc = check_lifetime(lifetime_s, err);
    if (rc == SM_OK)
        rc = new_token(token, hash, err);
    if (rc != SM_OK)
        return rc;
    change_ctx c = {.what = ACCESS_ROTATE, .hash = hash};
    snprintf(c.tid, sizeof c.tid, "%lld", (long long)id);
    snprintf(c.lifetime, sizeof c.lifetime, "%lld", (long long)lifetime_s);
    rc = in_tx(conn, change_in_tx, &c, err);
    if (rc != SM_OK)
        memset(token, 0, SM_TEACHER_TOKEN_LEN);
    return rc;
}

sm_code sm_teacher_revoke(PGconn *conn, int64_t id, sm_err *err)
{
    change_ctx c = {.what = ACCESS_REVOKE, .hash = NULL};
    snprintf(c.tid, sizeof c.tid, "%lld", (long long)id);
    return in_tx(conn, change_in_tx, &c, err);
}

sm_code sm_teacher_list(PGconn *conn, PGresult **rows, sm_err *err)
{
    return sm_db_query(
        conn,
        "WITH f AS (SELECT 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'::text AS fmt) "
        "SELECT t.id, t.name, COALESCE(string_agg(c.code, ',' ORDER BY c.code), ''), "
        "CASE WHEN t.token_hash IS NULL THEN 'revoked' "
        "WHEN t.token_expires_at <= now() THEN 'expired' ELSE 'active' END, "
        "to_char(t.token_created_at AT TIME ZONE 'UTC', f.fmt), "
        "COALESCE(to_char(t.token_expires_at AT TIME ZONE 'UTC', f.fmt), 'never'), "
        "COALESCE(to_char(t.last_used_at AT TIME ZONE 'UTC', f.fmt), 'never') "
        "FROM f, teacher t LEFT JOIN course_teacher ct ON ct.teacher_id = t.id "
        "LEFT JOIN course c ON c.id = ct.course_id GROUP BY t.id, f.fmt ORDER BY t.id",
        0, NULL, rows, err);
}
