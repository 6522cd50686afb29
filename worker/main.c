/* stepmark-worker: grades submissions handed out by the broker (docs/worker.md).
 *   stepmark-worker [--config FILE] [--model DIR] [--endpoint EP] [--name NAME] [--slots N]
 * Options override the worker.* settings of the configuration. SIGTERM/SIGINT drain (finish
 * the jobs in progress, then exit 0); a second one exits at once. Exit status 2 for a
 * configuration error, 1 for any other failure. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_args.h"
#include "sm_config.h"
#include "sm_log.h"
#include "sm_wmetrics_http.h"
#include "sm_wrun.h"

static volatile sig_atomic_t stop_requests;

static void on_signal(int sig)
{
    (void)sig;
    if (stop_requests < 2)
        stop_requests++;
}

static const sm_arg_opt worker_opts[] = {
    {"config", 0, SM_ARG_VALUE, "FILE", "configuration file (default $STEPMARK_CONFIG)", false},
    {"model", 0, SM_ARG_VALUE, "DIR", "the model to grade with (worker.model)", false},
    {"endpoint", 0, SM_ARG_VALUE, "EP", "the broker's worker endpoint (worker.broker_endpoint)",
     false},
    {"name", 0, SM_ARG_VALUE, "NAME", "this worker's name (worker.name)", false},
    {"slots", 0, SM_ARG_VALUE, "N", "jobs graded at once, 1..1024 (worker.slots)", false},
    {0}};
static const sm_args_spec worker_spec = {
    "stepmark-worker",
    NULL,
    "Grades submissions handed out by the broker (docs/worker.md). Options override the\n"
    "worker.* settings. SIGTERM/SIGINT drain (finish the jobs in progress, then exit 0); a\n"
    "second one exits at once.",
    worker_opts,
    NULL,
    0,
    0};

int main(int argc, char **argv)
{
    sm_args a;
    int prc = sm_args_parse(&worker_spec, argc, argv, &a);
    if (prc != SM_ARGS_CONTINUE)
        return prc;
    /* the values point into argv, which outlives a */
    const char *config = sm_args_get(&a, "config"), *model = sm_args_get(&a, "model");
    const char *endpoint = sm_args_get(&a, "endpoint"), *name = sm_args_get(&a, "name");
    const char *slots_arg = sm_args_get(&a, "slots");
    sm_args_free(&a);
    long slots = 0;
    if (slots_arg) {
        char *end;
        slots = strtol(slots_arg, &end, 10);
        if (*end || end == slots_arg || slots < 1 || slots > 1024)
            return sm_args_usage_error("stepmark-worker", "--slots must be 1..1024");
    }
    static sm_config cfg;
    sm_err err;
    if (sm_config_init(&cfg, config, &err) != SM_OK) {
        fprintf(stderr, "stepmark-worker: %s\n", err.msg);
        return SM_EXIT_CONFIG;
    }
    if (model)
        snprintf(cfg.worker.model, sizeof cfg.worker.model, "%s", model);
    if (endpoint)
        snprintf(cfg.worker.broker_endpoint, sizeof cfg.worker.broker_endpoint, "%s", endpoint);
    if (name)
        snprintf(cfg.worker.name, sizeof cfg.worker.name, "%s", name);
    if (slots)
        cfg.worker.slots = slots;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sm_wmetrics_server *metrics = NULL;
    sm_code rc = sm_wmetrics_server_from_config(&cfg, &metrics, &err);
    if (rc == SM_OK)
        rc = sm_wrun(&cfg, &stop_requests, &err);
    sm_wmetrics_server_stop(&metrics);
    if (rc) {
        sm_log(SM_LOG_ERROR, "worker stopped", "error", err.msg, NULL);
        fprintf(stderr, "stepmark-worker: %s\n", err.msg);
        return rc == SM_ECONFIG ? SM_EXIT_CONFIG : 1;
    }
    sm_log(SM_LOG_INFO, "worker stopped", NULL);
    return 0;
}
