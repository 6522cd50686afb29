/* sm_db: small helpers over libpq shared by the daemon and the CLI: connecting with a clear
 * error, showing a database URL without its password, running a statement and checking its
 * status, and transactions. */
#ifndef SM_DB_H
#define SM_DB_H

#include <libpq-fe.h>

#include "sm_error.h"

/* Connects to url (a postgresql:// URI or a key=value connection string). A string libpq
 * cannot parse is SM_ECONFIG; a failed connection is SM_EDB with libpq's message. Neither
 * message ever holds the password. */
sm_code sm_db_connect(const char *url, PGconn **out, sm_err *err);

/* Writes into out (size n) conninfo as parsed by libpq and written back as key=value pairs
 * with the password (and any other secret option) shown as "***": what to print or log
 * instead of a database URL. "(invalid connection string)" when libpq cannot parse it. */
void sm_db_redact(const char *conninfo, char *out, size_t n);

/* Runs sql (no parameters) and checks it returned COMMAND_OK or TUPLES_OK. */
sm_code sm_db_exec(PGconn *conn, const char *sql, sm_err *err);

/* Runs a parameterised statement (text parameters); *out receives the result on success,
 * which the caller PQclear()s. out may be NULL. */
sm_code sm_db_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                    PGresult **out, sm_err *err);

#endif
