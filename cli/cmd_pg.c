/* cmd_pg: `stepmark pg start|stop|url --data DIR` (manage a private PostgreSQL cluster, used by
 * the test harness and scripts) and `stepmark pg serve` (the configured database with the
 * schema applied: the private cluster is kept running until Ctrl-C or SIGTERM, then stopped
 * cleanly). `stepmark up`, its old name, is an alias that says so. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "sm_db.h"
#include "sm_migrate.h"

typedef enum pg_action { PG_START, PG_STOP, PG_URL } pg_action;

static const sm_arg_opt data_opts[] = {
    {"data", 0, SM_ARG_VALUE, "DIR", "the cluster's data folder", true}, {0}};
static const sm_args_spec pg_specs[] = {
    {"stepmark pg start", NULL, "Creates the cluster in DIR if needed, starts it, prints its URL.",
     data_opts, NULL, 0, 0},
    {"stepmark pg stop", NULL, "Stops the cluster running in DIR.", data_opts, NULL, 0, 0},
    {"stepmark pg url", NULL, "Prints the connection string of the cluster in DIR (starting it).",
     data_opts, NULL, 0, 0},
};

static int pg_action_run(pg_action act, int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&pg_specs[act], argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    const char *data = sm_args_get(&a, "data");
    sm_err err;
    sm_pgembed *pg = NULL;
    sm_code code =
        act == PG_STOP ? sm_pgembed_stop_dir(data, &err) : sm_pgembed_start(data, &pg, &err);
    if (code != SM_OK) {
        fprintf(stderr, "%s: %s\n", pg_specs[act].prog, err.msg);
        rc = 1;
    } else {
        if (pg)
            printf("%s\n", sm_pgembed_url(pg));
        sm_pgembed_detach(&pg);
        rc = 0;
    }
    sm_args_free(&a);
    return rc;
}

static int pg_start(int argc, char **argv)
{
    return pg_action_run(PG_START, argc, argv);
}

static int pg_stop(int argc, char **argv)
{
    return pg_action_run(PG_STOP, argc, argv);
}

static int pg_url(int argc, char **argv)
{
    return pg_action_run(PG_URL, argc, argv);
}

static int pg_serve(int argc, char **argv);

int sm_cli_pg(int argc, char **argv)
{
    static const sm_args_cmd cmds[] = {
        {"start", pg_start, "create the cluster if needed, start it, print its URL"},
        {"stop", pg_stop, "stop the cluster running in DIR"},
        {"url", pg_url, "print the connection string of the cluster in DIR"},
        {"serve", pg_serve, "the configured database, migrated, kept running until Ctrl-C"},
    };
    static const sm_args_group g = {"stepmark pg", NULL, cmds, sizeof cmds / sizeof cmds[0]};
    return sm_args_dispatch(&g, argc, argv);
}

/* Prints one line per table of the schema with its row count. */
static int print_summary(PGconn *conn)
{
    sm_err err;
    int version;
    if (sm_migrate_current(conn, &version, &err) != SM_OK) {
        fprintf(stderr, "stepmark: %s\n", err.msg);
        return 1;
    }
    PGresult *r;
    if (sm_db_query(conn,
                    "SELECT c.relname, c.reltuples::bigint FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' "
                    "ORDER BY c.relname",
                    0, NULL, &r, &err) != SM_OK) {
        fprintf(stderr, "stepmark: %s\n", err.msg);
        return 1;
    }
    printf("schema version %d, %d tables:", version, PQntuples(r));
    for (int i = 0; i < PQntuples(r); i++)
        printf(" %s", PQgetvalue(r, i, 0));
    printf("\n");
    PQclear(r);
    return 0;
}

static const sm_arg_opt serve_opts[] = {
    {"data", 0, SM_ARG_VALUE, "DIR", "the private cluster's folder (default: database.data_dir)",
     false},
    {"exit", 0, SM_ARG_FLAG, NULL, "exit after the summary instead of serving", false},
    SM_CLI_CONFIG_OPT,
    {0}};
static const sm_args_spec serve_spec = {
    "stepmark pg serve",
    NULL,
    "Starts the private PostgreSQL (when database.url is empty), applies pending migrations,\n"
    "prints a summary and keeps the cluster running until Ctrl-C (or exits with --exit).\n"
    "It starts neither the broker (stepmarkd) nor a worker (stepmark-worker).",
    serve_opts,
    NULL,
    0,
    0};

/* Migrates the configured database and prints the summary; 0 or 1. */
static int serve_migrate(const sm_config *cfg, PGconn *conn, const sm_pgembed *pg)
{
    sm_err err;
    int applied;
    if (sm_migrate(conn, &applied, &err) != SM_OK) {
        fprintf(stderr, "stepmark pg serve: %s\n", err.msg);
        return 1;
    }
    char safe[1024];
    sm_db_redact(pg ? sm_pgembed_url(pg) : cfg->database.url, safe, sizeof safe);
    printf("database: %s\n", safe);
    if (pg)
        printf("private cluster: %s\n", cfg->database.data_dir);
    printf("migrations applied now: %d\n", applied);
    int rc = print_summary(conn);
    fflush(stdout);
    return rc;
}

static int pg_serve(int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&serve_spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    static sm_config cfg;
    rc = sm_cli_load_config(&a, &cfg);
    const char *data = sm_args_get(&a, "data");
    bool stay = !sm_args_has(&a, "exit");
    sm_args_free(&a);
    if (rc)
        return rc;
    if (data)
        snprintf(cfg.database.data_dir, sizeof cfg.database.data_dir, "%s", data);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);

    PGconn *conn;
    sm_pgembed *pg;
    if (sm_cli_connect(&cfg, &conn, &pg))
        return 1;
    rc = serve_migrate(&cfg, conn, pg);
    PQfinish(conn);
    if (rc == 0 && stay && pg) {
        printf("serving; press Ctrl-C to stop\n");
        fflush(stdout);
        int sig;
        sigwait(&set, &sig);
    }
    sm_err err;
    if (pg && sm_pgembed_stop(&pg, &err) != SM_OK) {
        fprintf(stderr, "stepmark pg serve: %s\n", err.msg);
        rc = 1;
    }
    return rc;
}

int sm_cli_up(int argc, char **argv)
{
    fprintf(stderr, "stepmark: `up` is now `stepmark pg serve` (it starts the database only, "
                    "not the broker or a worker)\n");
    return pg_serve(argc, argv);
}
