/* sm_pgembed: the private ("embedded") PostgreSQL cluster that stepmark runs when no database
 * URL is configured. It creates a cluster in a data folder with initdb (once), starts it on a
 * unix socket inside that folder with no TCP listener, creates the `stepmark` database, and
 * stops it with a fast shutdown. When run as root, the server runs as the `postgres` system user
 * (PostgreSQL refuses to run as root) and the data folder is given to that user. */
#ifndef SM_PGEMBED_H
#define SM_PGEMBED_H

#include "sm_error.h"

typedef struct sm_pgembed sm_pgembed;

/* Starts (initialising first if needed) the cluster in data_dir. If it is already running
 * (postmaster.pid of a live server), it is reused and left running by sm_pgembed_stop unless
 * this call started it. */
sm_code sm_pgembed_start(const char *data_dir, sm_pgembed **out, sm_err *err);

/* The libpq URL of the `stepmark` database in the running cluster. */
const char *sm_pgembed_url(const sm_pgembed *pg);

/* Stops the cluster if this handle started it; frees the handle and nulls *pg. */
sm_code sm_pgembed_stop(sm_pgembed **pg, sm_err *err);

/* Stops whatever cluster runs in data_dir (used by `stepmark pg stop`). */
sm_code sm_pgembed_stop_dir(const char *data_dir, sm_err *err);

/* Frees the handle and nulls *pg, leaving the server running (for `stepmark pg start`). */
void sm_pgembed_detach(sm_pgembed **pg);

#endif
