/* stepmarkd: the stepmark broker daemon. Loads the configuration, starts the private
 * PostgreSQL cluster when no database URL is configured, applies pending migrations, then
 * serves the ZeroMQ broker (and the HTTP side when http.enabled) until SIGTERM or SIGINT. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "broker.h"
#include "sm_args.h"
#include "sm_config.h"
#include "sm_db.h"
#include "sm_http.h"
#include "sm_log.h"
#include "sm_metrics.h"
#include "sm_migrate.h"
#include "sm_pgembed.h"
#include "webhooks.h"
#include "lti_passback.h"

static volatile sig_atomic_t stop_requested; /* set by the signal handler only */

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static const sm_arg_opt daemon_opts[] = {
    {"config", 0, SM_ARG_VALUE, "FILE", "configuration file (default $STEPMARK_CONFIG)", false},
    {0}};
static const sm_args_spec daemon_spec = {
    "stepmarkd",
    NULL,
    "Serves the stepmark broker: clients on broker.client_endpoint, workers on\n"
    "broker.worker_endpoint, events on broker.event_endpoint (docs/protocol.md),\n"
    "and the review web application when http.enabled. With no database.url\n"
    "($STEPMARK_DATABASE_URL) a private PostgreSQL runs in database.data_dir.\n"
    "Stops gracefully on SIGTERM or SIGINT.",
    daemon_opts,
    NULL,
    0,
    0};

static int migrate(const char *url, sm_err *err)
{
    PGconn *conn;
    if (sm_db_connect(url, &conn, err) != SM_OK)
        return 1;
    int applied = 0;
    sm_code rc = sm_migrate(conn, &applied, err);
    PQfinish(conn);
    if (rc)
        return 1;
    if (applied > 0)
        sm_logf(SM_LOG_INFO, "applied %d migration%s", applied, applied == 1 ? "" : "s");
    return 0;
}

int main(int argc, char **argv)
{
    sm_args a;
    int prc = sm_args_parse(&daemon_spec, argc, argv, &a);
    if (prc != SM_ARGS_CONTINUE)
        return prc;
    const char *config = sm_args_get(&a, "config"); /* points into argv */
    sm_args_free(&a);
    sm_config cfg;
    sm_err err;
    if (sm_config_init(&cfg, config, &err) != SM_OK) {
        fprintf(stderr, "stepmarkd: %s\n", err.msg);
        return SM_EXIT_CONFIG;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int status = 1;
    sm_pgembed *pg = NULL;
    sm_metrics *metrics = NULL;
    sm_broker *broker = NULL;
    sm_http *http = NULL;
    sm_webhooks *webhooks = NULL;
    sm_lti_passback *passback = NULL;
    const char *url = cfg.database.url;
    if (!url[0]) {
        if (sm_pgembed_start(cfg.database.data_dir, &pg, &err) != SM_OK)
            goto out;
        url = sm_pgembed_url(pg);
    }
    if (migrate(url, &err) || sm_metrics_new(&metrics, &err) != SM_OK)
        goto out;
    sm_code rc = sm_broker_new(&cfg, url, metrics, &broker, &err);
    if (rc) {
        if (rc == SM_ECONFIG)
            status = SM_EXIT_CONFIG;
        goto out;
    }
    if (cfg.http.enabled && sm_http_start(&cfg, url, metrics, &http, &err) != SM_OK)
        goto out;
    if (cfg.webhooks.enabled && sm_webhooks_start(&cfg, url, metrics, &webhooks, &err) != SM_OK)
        goto out;
    if (cfg.webhooks.enabled && sm_lti_passback_start(&cfg, url, &passback, &err) != SM_OK)
        goto out;
    if (sm_broker_run(broker, &stop_requested, &err) == SM_OK)
        status = 0;
out:
    if (status != 0)
        sm_log(SM_LOG_ERROR, "stepmarkd failed", "error", err.msg, NULL);
    sm_lti_passback_stop(&passback);
    sm_webhooks_stop(&webhooks);
    sm_http_stop(&http);
    sm_broker_free(&broker);
    sm_metrics_free(&metrics);
    if (pg && sm_pgembed_stop(&pg, &err) != SM_OK) {
        sm_log(SM_LOG_ERROR, "cannot stop PostgreSQL", "error", err.msg, NULL);
        status = 1;
    }
    sm_log(SM_LOG_INFO, "stepmarkd stopped", NULL);
    sm_log_close();
    return status;
}
