/* sm_db: small helpers over libpq shared by the daemon and the CLI: connecting with a clear
 * error, running a statement and checking its status, and transactions. */
#ifndef SM_DB_H
#define SM_DB_H

#include <libpq-fe.h>

#include "sm_error.h"

/* Connects to url; on failure returns SM_EDB with libpq's message (password masked). */
sm_code sm_db_connect(const char *url, PGconn **out, sm_err *err);

/* Runs sql (no parameters) and checks it returned COMMAND_OK or TUPLES_OK. */
sm_code sm_db_exec(PGconn *conn, const char *sql, sm_err *err);

/* Runs a parameterised statement (text parameters); *out receives the result on success,
 * which the caller PQclear()s. out may be NULL. */
sm_code sm_db_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                    PGresult **out, sm_err *err);

#endif
