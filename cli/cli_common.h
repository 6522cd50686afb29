/* cli_common: helpers shared by the stepmark subcommands: option lookup, loading the
 * configuration (exit 2 on rejection), and connecting to the configured database (starting the
 * private cluster when no URL is set). */
#ifndef SM_CLI_COMMON_H
#define SM_CLI_COMMON_H

#include <libpq-fe.h>

#include "sm_config.h"
#include "sm_pgembed.h"

/* The value after `--name` in argv (or after `--name=`), else NULL. */
const char *sm_cli_opt(int argc, char **argv, const char *name);
/* Whether the flag `--name` is present. */
int sm_cli_flag(int argc, char **argv, const char *name);

/* Loads the configuration named by --config (or $STEPMARK_CONFIG, or defaults). Prints the
 * error and returns SM_EXIT_CONFIG on failure, else 0. */
int sm_cli_load_config(int argc, char **argv, sm_config *cfg);

/* Connects to cfg's database; with no URL configured, starts (or reuses) the private cluster
 * in cfg->database.data_dir and returns its handle in *pg (stop it with sm_pgembed_stop).
 * Prints errors; returns 0 or 1. */
int sm_cli_connect(const sm_config *cfg, PGconn **conn, sm_pgembed **pg);

#endif
