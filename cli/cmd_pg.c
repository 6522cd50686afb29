/* cmd_pg: `stepmark pg start|stop|url --data DIR` (manage a private PostgreSQL cluster, used by
 * the test harness and scripts) and `stepmark up` (the private cluster with the schema applied,
 * kept running until Ctrl-C or SIGTERM, then stopped cleanly). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "sm_db.h"
#include "sm_migrate.h"

int sm_cli_pg(int argc, char **argv)
{
    const char *data = sm_cli_opt(argc, argv, "--data");
    if (argc < 2 || !data || sm_cli_flag(argc, argv, "--help")) {
        fprintf(stderr, "usage: stepmark pg start|stop|url --data DIR\n"
                        "  start: create the cluster if needed, start it, print its URL\n"
                        "  stop:  stop the cluster running in DIR\n"
                        "  url:   print the connection string of the cluster in DIR\n");
        return 2;
    }
    sm_err err;
    sm_pgembed *pg = NULL;
    if (strcmp(argv[1], "start") == 0) {
        if (sm_pgembed_start(data, &pg, &err) != SM_OK) {
            fprintf(stderr, "stepmark pg start: %s\n", err.msg);
            return 1;
        }
        printf("%s\n", sm_pgembed_url(pg));
        sm_pgembed_detach(&pg);
        return 0;
    }
    if (strcmp(argv[1], "stop") == 0) {
        if (sm_pgembed_stop_dir(data, &err) != SM_OK) {
            fprintf(stderr, "stepmark pg stop: %s\n", err.msg);
            return 1;
        }
        return 0;
    }
    if (strcmp(argv[1], "url") == 0) {
        if (sm_pgembed_start(data, &pg, &err) != SM_OK) {
            fprintf(stderr, "stepmark pg url: %s\n", err.msg);
            return 1;
        }
        printf("%s\n", sm_pgembed_url(pg));
        sm_pgembed_detach(&pg);
        return 0;
    }
    fprintf(stderr, "stepmark pg: unknown action \"%s\" (start, stop or url)\n", argv[1]);
    return 2;
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

int sm_cli_up(int argc, char **argv)
{
    if (sm_cli_flag(argc, argv, "--help")) {
        printf("usage: stepmark up [--config FILE] [--exit]\n"
               "Starts the private PostgreSQL (when database.url is empty), applies pending\n"
               "migrations, prints a summary and serves until Ctrl-C (or exits with --exit).\n");
        return 0;
    }
    sm_config cfg;
    int rc = sm_cli_load_config(argc, argv, &cfg);
    if (rc)
        return rc;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);

    PGconn *conn;
    sm_pgembed *pg;
    if (sm_cli_connect(&cfg, &conn, &pg))
        return 1;
    sm_err err;
    int applied;
    rc = 0;
    if (sm_migrate(conn, &applied, &err) != SM_OK) {
        fprintf(stderr, "stepmark up: %s\n", err.msg);
        rc = 1;
    } else {
        char safe[1024];
        sm_db_redact(pg ? sm_pgembed_url(pg) : cfg.database.url, safe, sizeof safe);
        printf("database: %s\n", safe);
        if (pg)
            printf("private cluster: %s\n", cfg.database.data_dir);
        printf("migrations applied now: %d\n", applied);
        rc = print_summary(conn);
        fflush(stdout);
    }
    PQfinish(conn);
    if (rc == 0 && !sm_cli_flag(argc, argv, "--exit")) {
        printf("serving; press Ctrl-C to stop\n");
        fflush(stdout);
        int sig;
        sigwait(&set, &sig);
    }
    if (pg && sm_pgembed_stop(&pg, &err) != SM_OK) {
        fprintf(stderr, "stepmark up: %s\n", err.msg);
        rc = 1;
    }
    return rc;
}
