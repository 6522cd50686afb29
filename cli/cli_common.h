/* cli_common: helpers shared by the stepmark subcommands: the --config option, loading the
 * configuration (exit 2 on rejection), and connecting to the configured database (starting the
 * private cluster when no URL is set). Options are parsed with sm_args (common/sm_args.h). */
#ifndef SM_CLI_COMMON_H
#define SM_CLI_COMMON_H

#include <libpq-fe.h>

#include "sm_args.h"
#include "sm_config.h"
#include "sm_pgembed.h"

/* The --config FILE option alone, for a spec's `more` table. */
extern const sm_arg_opt sm_cli_config_opts[];
#define SM_CLI_CONFIG_OPT                                                                         \
    {                                                                                             \
        "config", 0, SM_ARG_VALUE, "FILE", "configuration file (default $STEPMARK_CONFIG)", false \
    }

/* Loads the configuration named by --config (or $STEPMARK_CONFIG, or defaults). Prints the
 * error and returns SM_EXIT_CONFIG on failure, else 0. */
int sm_cli_load_config(const sm_args *a, sm_config *cfg);

/* Connects to cfg's database; with no URL configured, starts (or reuses) the private cluster
 * in cfg->database.data_dir and returns its handle in *pg (stop it with sm_pgembed_stop).
 * Prints errors; returns 0 or 1. */
int sm_cli_connect(const sm_config *cfg, PGconn **conn, sm_pgembed **pg);

/* Undoes sm_cli_connect: closes *conn and stops *pg (either may be NULL). Prints a failure to
 * stop as "PROG: message"; returns 1 then, else 0. */
int sm_cli_disconnect(const char *prog, PGconn **conn, sm_pgembed **pg);

#endif
