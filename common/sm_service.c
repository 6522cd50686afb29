/* sm_service: service tokens for the HTTP API (sm_service.h). */
#include "sm_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_db.h"

bool sm_service_token_well_formed(const char *text)
{
    size_t plen = strlen(SM_SERVICE_PREFIX);
    if (!text || strlen(text) != SM_SERVICE_TOKEN_LEN - 1 ||
        strncmp(text, SM_SERVICE_PREFIX, plen) != 0)
        return false;
    for (const char *p = text + plen; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

static sm_code in_tx_end(PGconn *conn, sm_code rc, sm_err *err)
{
    if (rc == SM_OK)
        return sm_db_exec(conn, "COMMIT", err);
    sm_err ignored;
    sm_db_exec(conn, "ROLLBACK", &ignored);
    return rc;
}

/* Inserts the token row and its courses (inside the caller's transaction). */
static sm_code add_rows(PGconn *conn, const sm_service_spec *spec, const char *hash, sm_err *err)
{
    char life[24];
    snprintf(life, sizeof life, "%lld", (long long)spec->lifetime_s);
    const char *p[] = {spec->name, hash, life};
    PGresult *r;
    sm_code rc = sm_db_query(conn,
                             "INSERT INTO service_token (name, token_hash, expires_at) VALUES "
                             "($1, $2, CASE WHEN $3::bigint > 0 THEN now() + $3::bigint * "
                             "interval '1 second' END) ON CONFLICT (name) DO NOTHING RETURNING id",
                             3, p, &r, err);
    if (rc != SM_OK)
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return sm_err_set(err, SM_ESTATE,
                          "a service token called '%s' exists; revoke it or choose another name",
                          spec->name);
    }
    char id[24];
    snprintf(id, sizeof id, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    for (int i = 0; i < spec->ncourses && rc == SM_OK; i++) {
        const char *q[] = {id, spec->course_codes[i]};
        rc = sm_db_query(conn,
                         "INSERT INTO service_token_course (token_id, course_id) "
                         "SELECT $1::bigint, id FROM course WHERE code = $2 "
                         "ON CONFLICT DO NOTHING RETURNING course_id",
                         2, q, &r, err);
        if (rc != SM_OK)
            break;
        int n = PQntuples(r);
        PQclear(r);
        if (n == 0) /* an unknown course, or the same one twice */
            rc = sm_db_query(conn, "SELECT 1 FROM course WHERE code = $1", 1, q + 1, &r, err);
        if (n == 0 && rc == SM_OK) {
            n = PQntuples(r);
            PQclear(r);
            if (n == 0)
                rc = sm_err_set(err, SM_ENOTFOUND, "no course with code '%s'",
                                spec->course_codes[i]);
        }
    }
    const char *a[] = {id};
    if (rc == SM_OK)
        rc = sm_db_query(conn,
                         "INSERT INTO audit_log (actor, action, subject, details) SELECT 'cli', "
                         "'service_add', 'service:' || name, jsonb_build_object('expires_at', "
                         "expires_at) FROM service_token WHERE id = $1::bigint",
                         1, a, NULL, err);
    return rc;
}

sm_code sm_service_add(PGconn *conn, const sm_service_spec *spec, char token[SM_SERVICE_TOKEN_LEN],
                       sm_err *err)
{
    memset(token, 0, SM_SERVICE_TOKEN_LEN);
    size_t nlen = spec->name ? strlen(spec->name) : 0;
    if (nlen < 1 || nlen > SM_SERVICE_NAME_MAX)
        return sm_err_set(err, SM_EINVAL, "a service name must have 1 to %d characters",
                          SM_SERVICE_NAME_MAX);
    if (spec->ncourses < 1)
        return sm_err_set(err, SM_EINVAL, "a service token needs at least one course (--course)");
    if (spec->lifetime_s < 0)
        return sm_err_set(err, SM_EINVAL, "token lifetime out of range");
    char hex[2 * SM_SERVICE_TOKEN_BYTES + 1], hash[SM_SHA256_HEX];
    sm_code rc = sm_random_hex(SM_SERVICE_TOKEN_BYTES, hex, err);
    if (rc != SM_OK)
        return rc;
    snprintf(token, SM_SERVICE_TOKEN_LEN, "%s%s", SM_SERVICE_PREFIX, hex);
    memset(hex, 0, sizeof hex);
    if (!sm_sha256_hex(token, strlen(token), hash))
        return sm_err_set(err, SM_ENOMEM, "hashing the token failed (out of memory)");
    rc = sm_db_exec(conn, "BEGIN", err);
    if (rc == SM_OK)
        rc = in_tx_end(conn, add_rows(conn, spec, hash, err), err);
    if (rc != SM_OK)
        memset(token, 0, SM_SERVICE_TOKEN_LEN);
    return rc;
}

sm_code sm_service_revoke(PGconn *conn, const char *name, sm_err *err)
{
    const char *p[] = {name ? name : ""};
    PGresult *r;
    sm_code rc = sm_db_query(
        conn,
        "WITH u AS (UPDATE service_token SET token_hash = NULL, "
        "revoked_at = COALESCE(revoked_at, now()) WHERE name = $1 RETURNING name), "
        "a AS (INSERT INTO audit_log (actor, action, subject, details) SELECT 'cli', "
        "'service_revoke', 'service:' || name, '{}'::jsonb FROM u) SELECT count(*) FROM u",
        1, p, &r, err);
    if (rc != SM_OK)
        return rc;
    bool found = strcmp(PQgetvalue(r, 0, 0), "0") != 0;
    PQclear(r);
    return found ? SM_OK : sm_err_set(err, SM_ENOTFOUND, "no service token called '%s'", p[0]);
}

sm_code sm_service_list(PGconn *conn, char **json, sm_err *err)
{
    *json = NULL;
    PGresult *r;
    sm_code rc = sm_db_query(
        conn,
        "SELECT COALESCE(json_agg(json_build_object('id', t.id, 'name', t.name, "
        "'courses', (SELECT COALESCE(json_agg(c.code ORDER BY c.code), '[]') "
        "FROM service_token_course sc JOIN course c ON c.id = sc.course_id "
        "WHERE sc.token_id = t.id), "
        "'state', CASE WHEN t.token_hash IS NULL THEN 'revoked' "
        "WHEN t.expires_at <= now() THEN 'expired' ELSE 'active' END, "
        "'created_at', t.created_at, 'expires_at', t.expires_at, 'revoked_at', t.revoked_at, "
        "'last_used_at', t.last_used_at) ORDER BY t.name), '[]')::text FROM service_token t",
        0, NULL, &r, err);
    if (rc != SM_OK)
        return rc;
    *json = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return *json ? SM_OK : sm_err_set(err, SM_ENOMEM, "out of memory");
}
