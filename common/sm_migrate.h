/* sm_migrate: applies the numbered SQL migrations of schema/ (built into the programs) that a
 * database does not have yet. Each runs in its own transaction and is recorded in
 * schema_migrations; the whole run holds an advisory lock so that concurrent runs from several
 * processes apply each migration exactly once. */
#ifndef SM_MIGRATE_H
#define SM_MIGRATE_H

#include <libpq-fe.h>

#include "sm_error.h"

typedef struct sm_migration {
    int version;      /* from the file name: 001_init.sql -> 1 */
    const char *name; /* file name */
    const char *sql;
} sm_migration;

/* The migrations built into this program, in version order. */
const sm_migration *sm_migrations(int *count);

/* Applies pending migrations on conn; *applied receives how many were applied (may be NULL). */
sm_code sm_migrate(PGconn *conn, int *applied, sm_err *err);

/* The highest applied version (0 when none). */
sm_code sm_migrate_current(PGconn *conn, int *version, sm_err *err);

#endif
