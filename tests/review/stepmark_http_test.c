/* stepmark-http-test: runs only the HTTP side of stepmarkd (sm_http) against a database, for
 * the review tests: applies migrations, starts the server, prints "listening PORT" and serves
 * until its standard input closes. --demo-metrics records a few broker counters so that
 * /metrics has known values to check. --config FILE reads settings (the http: section: limits,
 * address, TLS) over the test defaults; the other options then override it. A refused start
 * prints the error and exits 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_config.h"
#include "sm_db.h"
#include "sm_http.h"
#include "sm_log.h"
#include "sm_metrics.h"
#include "sm_migrate.h"

static const char *opt(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

static int flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *url = opt(argc, argv, "--database");
    if (!url)
        url = getenv("STEPMARK_DATABASE_URL");
    if (!url || flag(argc, argv, "--help")) {
        fprintf(stderr, "usage: stepmark-http-test --database URL [--port N] [--threads N] "
                        "[--static DIR] [--login-limit N] [--config FILE] [--demo-metrics]\n");
        return 2;
    }
    sm_err err = {0};
    sm_log_configure(SM_LOG_INFO, NULL, &err);
    sm_config cfg;
    sm_config_defaults(&cfg);
    cfg.http.enabled = true;
    snprintf(cfg.http.address, sizeof cfg.http.address, "127.0.0.1");
    cfg.http.port = 0;
    cfg.http.threads = 4;
    const char *config = opt(argc, argv, "--config");
    if (config && sm_config_load(&cfg, config, &err) != SM_OK) {
        fprintf(stderr, "stepmark-http-test: %s\n", err.msg);
        return 2;
    }
    if (opt(argc, argv, "--port"))
        cfg.http.port = atoi(opt(argc, argv, "--port"));
    if (opt(argc, argv, "--threads"))
        cfg.http.threads = atoi(opt(argc, argv, "--threads"));
    cfg.database.pool_size = cfg.http.threads;
    if (opt(argc, argv, "--login-limit"))
        cfg.http.login_attempts_per_minute = atoi(opt(argc, argv, "--login-limit"));
    if (opt(argc, argv, "--static"))
        snprintf(cfg.http.static_dir, sizeof cfg.http.static_dir, "%s",
                 opt(argc, argv, "--static"));

    PGconn *conn = NULL;
    if (sm_db_connect(url, &conn, &err) != SM_OK || sm_migrate(conn, NULL, &err) != SM_OK) {
        fprintf(stderr, "stepmark-http-test: %s\n", err.msg);
        PQfinish(conn);
        return 1;
    }
    PQfinish(conn);

    sm_metrics *metrics = NULL;
    if (sm_metrics_new(&metrics, &err) != SM_OK) {
        fprintf(stderr, "stepmark-http-test: %s\n", err.msg);
        return 1;
    }
    if (flag(argc, argv, "--demo-metrics")) {
        sm_metrics_submissions_accepted(metrics, 3);
        sm_metrics_grading_done(metrics);
        sm_metrics_grading_done(metrics);
        sm_metrics_grading_failed(metrics);
        sm_metrics_worker_connected(metrics);
        sm_metrics_worker_connected(metrics);
        sm_metrics_worker_disconnected(metrics);
        sm_metrics_tokens_generated(metrics, 1234);
        sm_metrics_ack_observe_seconds(metrics, 0.0007);
        sm_metrics_ack_observe_seconds(metrics, 0.003);
        sm_metrics_ack_observe_seconds(metrics, 40.0);
    }
    sm_http *http = NULL;
    if (sm_http_start(&cfg, url, metrics, &http, &err) != SM_OK) {
        fprintf(stderr, "stepmark-http-test: %s\n", err.msg);
        sm_metrics_free(&metrics);
        return 1;
    }
    printf("listening %d\n", sm_http_port(http));
    fflush(stdout);
    char buf[256];
    while (fread(buf, 1, sizeof buf, stdin) > 0) {
    }
    sm_http_stop(&http);
    sm_metrics_free(&metrics);
    return 0;
}
