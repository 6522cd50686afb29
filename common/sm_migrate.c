/* sm_migrate: applies the built-in schema migrations under an advisory lock (see sm_migrate.h). */
#include "sm_migrate.h"

#include <stdio.h>
#include <stdlib.h>

#include "sm_db.h"
#include "sm_log.h"

/* Advisory lock key shared by every stepmark process: "stepmark" in ASCII. */
#define SM_MIGRATE_LOCK "7310593858020108907"

static sm_code applied_versions(PGconn *conn, int **versions, int *n, sm_err *err)
{
    PGresult *r;
    sm_code rc = sm_db_query(conn, "SELECT version FROM schema_migrations ORDER BY version", 0,
                             NULL, &r, err);
    if (rc != SM_OK)
        return rc;
    *n = PQntuples(r);
    *versions = calloc((size_t)*n + 1, sizeof **versions);
    if (!*versions) {
        PQclear(r);
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    for (int i = 0; i < *n; i++)
        (*versions)[i] = atoi(PQgetvalue(r, i, 0));
    PQclear(r);
    return SM_OK;
}

static int contains(const int *v, int n, int x)
{
    for (int i = 0; i < n; i++)
        if (v[i] == x)
            return 1;
    return 0;
}

static sm_code apply_one(PGconn *conn, const sm_migration *m, sm_err *err)
{
    sm_code rc = sm_db_exec(conn, "BEGIN", err);
    if (rc != SM_OK)
        return rc;
    rc = sm_db_exec(conn, m->sql, err);
    if (rc == SM_OK) {
        char ver[16];
        snprintf(ver, sizeof ver, "%d", m->version);
        const char *params[] = {ver, m->name};
        rc = sm_db_query(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1::int, $2)",
                         2, params, NULL, err);
    }
    if (rc == SM_OK)
        rc = sm_db_exec(conn, "COMMIT", err);
    if (rc != SM_OK) {
        sm_err ignored;
        sm_db_exec(conn, "ROLLBACK", &ignored);
        return sm_err_prefix(err, "migration %s", m->name);
    }
    sm_log(SM_LOG_INFO, "migration applied", "name", m->name, NULL);
    return SM_OK;
}

sm_code sm_migrate(PGconn *conn, int *applied, sm_err *err)
{
    if (applied)
        *applied = 0;
    sm_code rc = sm_db_exec(conn, "SELECT pg_advisory_lock(" SM_MIGRATE_LOCK ")", err);
    if (rc != SM_OK)
        return rc;
    rc = sm_db_exec(conn,
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version integer PRIMARY KEY,"
                    " name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())",
                    err);
    int *have = NULL, n_have = 0;
    if (rc == SM_OK)
        rc = applied_versions(conn, &have, &n_have, err);
    if (rc == SM_OK) {
        int count;
        const sm_migration *all = sm_migrations(&count);
        for (int i = 0; i < count && rc == SM_OK; i++) {
            if (contains(have, n_have, all[i].version))
                continue;
            rc = apply_one(conn, &all[i], err);
            if (rc == SM_OK && applied)
                (*applied)++;
        }
    }
    free(have);
    sm_err unlock_err;
    sm_db_exec(conn, "SELECT pg_advisory_unlock(" SM_MIGRATE_LOCK ")", &unlock_err);
    return rc;
}

sm_code sm_migrate_current(PGconn *conn, int *version, sm_err *err)
{
    *version = 0;
    PGresult *r;
    sm_code rc =
        sm_db_query(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL, &r, err);
    if (rc != SM_OK)
        return rc;
    int exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!exists)
        return SM_OK;
    rc = sm_db_query(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations", 0, NULL, &r,
                     err);
    if (rc != SM_OK)
        return rc;
    *version = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return SM_OK;
}
