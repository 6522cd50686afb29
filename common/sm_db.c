/* sm_db: libpq helpers with stepmark errors (see sm_db.h). */
#include "sm_db.h"

#include <string.h>

#include "sm_log.h"

static void trim_newline(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
}

sm_code sm_db_connect(const char *url, PGconn **out, sm_err *err)
{
    *out = NULL;
    PGconn *conn = PQconnectdb(url ? url : "");
    if (!conn)
        return sm_err_set(err, SM_ENOMEM, "cannot allocate a database connection");
    if (PQstatus(conn) != CONNECTION_OK) {
        char safe[SM_ERR_MSG_MAX];
        char msg[SM_ERR_MSG_MAX];
        sm_log_redact(NULL, url ? url : "", safe, sizeof safe);
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(conn));
        trim_newline(msg);
        PQfinish(conn);
        return sm_err_set(err, SM_EDB, "cannot connect to %s: %s", safe, msg);
    }
    PQsetNoticeProcessor(conn, NULL, NULL);
    PGresult *r = PQexec(conn, "SET client_min_messages = warning");
    PQclear(r);
    *out = conn;
    return SM_OK;
}

static sm_code check_result(PGconn *conn, PGresult *r, const char *sql, sm_err *err)
{
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return SM_OK;
    char msg[SM_ERR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(conn));
    trim_newline(msg);
    char head[64];
    snprintf(head, sizeof head, "%.60s", sql);
    for (char *c = head; *c; c++)
        if (*c == '\n')
            *c = ' ';
    return sm_err_set(err, SM_EDB, "%s (in: %s...)", msg, head);
}

sm_code sm_db_exec(PGconn *conn, const char *sql, sm_err *err)
{
    PGresult *r = PQexec(conn, sql);
    sm_code rc = check_result(conn, r, sql, err);
    PQclear(r);
    return rc;
}

sm_code sm_db_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                    PGresult **out, sm_err *err)
{
    if (out)
        *out = NULL;
    PGresult *r = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    sm_code rc = check_result(conn, r, sql, err);
    if (rc != SM_OK || !out)
        PQclear(r);
    else
        *out = r;
    return rc;
}
