/* sm_db: libpq helpers with stepmark errors (see sm_db.h). */
#include "sm_db.h"

#include <stdbool.h>
#include <string.h>

#include "sm_log.h"

static void trim_newline(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
}

/* Whether a libpq connection option holds a secret (libpq marks those with dispchar "*"). */
static bool option_is_secret(const PQconninfoOption *opt)
{
    return (opt->dispchar && opt->dispchar[0] == '*') || !strcmp(opt->keyword, "password") ||
           !strcmp(opt->keyword, "sslpassword");
}

/* Appends " keyword=value" to out (size n, *len used), quoting the value as libpq would read
 * it back when it is empty or holds spaces, quotes or backslashes. */
static void put_option(char *out, size_t n, size_t *len, const char *keyword, const char *val)
{
    char quoted[1024];
    size_t q = 0;
    bool plain = *val != '\0' && !strpbrk(val, " \t\n\r\f\v'\\");
    if (!plain) {
        quoted[q++] = '\'';
        for (const char *c = val; *c && q + 3 < sizeof quoted; c++) {
            if (*c == '\'' || *c == '\\')
                quoted[q++] = '\\';
            quoted[q++] = *c;
        }
        quoted[q++] = '\'';
    }
    quoted[q] = '\0';
    int w =
        snprintf(out + *len, n - *len, "%s%s=%s", *len ? " " : "", keyword, plain ? val : quoted);
    if (w > 0)
        *len = *len + (size_t)w < n ? *len + (size_t)w : n - 1;
}

void sm_db_redact(const char *conninfo, char *out, size_t n)
{
    if (n == 0)
        return;
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", &perr);
    PQfreemem(perr);
    if (!opts) {
        snprintf(out, n, "(invalid connection string)");
        return;
    }
    size_t len = 0;
    out[0] = '\0';
    for (const PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val)
            continue;
        char safe[1024];
        /* a value may itself embed a URI or conninfo (dbname): mask inside it too */
        sm_log_redact(NULL, o->val, safe, sizeof safe);
        put_option(out, n, &len, o->keyword, option_is_secret(o) ? "***" : safe);
    }
    PQconninfoFree(opts);
    if (len == 0)
        snprintf(out, n, "(libpq defaults)");
}

/* Replaces in msg (NUL-terminated, in place) every occurrence of a secret option's value of
 * opts by "***". */
static void mask_secret_values(const PQconninfoOption *opts, char *msg, size_t cap)
{
    for (const PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (!o->val || !*o->val || !option_is_secret(o))
            continue;
        size_t vl = strlen(o->val);
        char *from = msg, *hit;
        while ((hit = strstr(from, o->val)) != NULL) {
            size_t tail = strlen(hit + vl);
            if (vl < 3 && hit + 3 + tail >= msg + cap) { /* no room: mask in place */
                memset(hit, '*', vl);
                from = hit + vl;
                continue;
            }
            memmove(hit + 3, hit + vl, tail + 1);
            memcpy(hit, "***", 3);
            from = hit + 3;
        }
    }
}

/* Copies libpq's message about a connection string it cannot parse into out with every quoted
 * part (which may be a piece of the password) replaced by "...". */
static void elide_quoted(const char *msg, char *out, size_t n)
{
    size_t o = 0;
    for (const char *c = msg; *c && o + 6 < n; c++) {
        const char *close = *c == '"' ? strchr(c + 1, '"') : NULL;
        if (!close) {
            out[o++] = *c;
            continue;
        }
        bool equals = close == c + 2 && c[1] == '='; /* libpq's `missing "="` */
        memcpy(out + o, equals ? "\"=\"" : "\"...\"", equals ? 3 : 5);
        o += equals ? 3 : 5;
        c = close;
    }
    out[o] = '\0';
    trim_newline(out);
}

sm_code sm_db_connect(const char *url, PGconn **out, sm_err *err)
{
    *out = NULL;
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(url ? url : "", &perr);
    if (!opts) {
        char msg[SM_ERR_MSG_MAX];
        elide_quoted(perr ? perr : "", msg, sizeof msg);
        PQfreemem(perr);
        return sm_err_set(err, SM_ECONFIG, "invalid database URL or connection string: %s", msg);
    }
    PGconn *conn = PQconnectdb(url ? url : "");
    if (!conn) {
        PQconninfoFree(opts);
        return sm_err_set(err, SM_ENOMEM, "cannot allocate a database connection");
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        char safe[SM_ERR_MSG_MAX];
        char msg[SM_ERR_MSG_MAX];
        sm_db_redact(url, safe, sizeof safe);
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(conn));
        trim_newline(msg);
        mask_secret_values(opts, msg, sizeof msg);
        PQconninfoFree(opts);
        PQfinish(conn);
        return sm_err_set(err, SM_EDB, "cannot connect to %s: %s", safe, msg);
    }
    PQconninfoFree(opts);
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
