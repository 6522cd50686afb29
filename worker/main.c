/* stepmark-worker: grades submissions handed out by the broker (docs/worker.md).
 *   stepmark-worker [--config FILE] [--model DIR] [--endpoint EP] [--name NAME] [--slots N]
 * Options override the worker.* settings of the configuration. SIGTERM/SIGINT drain (finish
 * the jobs in progress, then exit 0); a second one exits at once. Exit status 2 for a
 * configuration error, 1 for any other failure. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_config.h"
#include "sm_log.h"
#include "sm_wrun.h"

static volatile sig_atomic_t stop_requests;

static void on_signal(int sig)
{
    (void)sig;
    if (stop_requests < 2)
        stop_requests++;
}

static int usage(FILE *fp)
{
    fprintf(fp, "usage: stepmark-worker [--config FILE] [--model DIR] [--endpoint EP] "
                "[--name NAME] [--slots N]\n");
    return fp == stdout ? 0 : SM_EXIT_CONFIG;
}

int main(int argc, char **argv)
{
    const char *config = NULL, *model = NULL, *endpoint = NULL, *name = NULL;
    long slots = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return usage(stdout);
        if (!v)
            return usage(stderr);
        if (!strcmp(a, "--config"))
            config = v;
        else if (!strcmp(a, "--model"))
            model = v;
        else if (!strcmp(a, "--endpoint"))
            endpoint = v;
        else if (!strcmp(a, "--name"))
            name = v;
        else if (!strcmp(a, "--slots")) {
            char *end;
            slots = strtol(v, &end, 10);
            if (*end || slots < 1 || slots > 1024) {
                fprintf(stderr, "stepmark-worker: --slots must be 1..1024\n");
                return SM_EXIT_CONFIG;
            }
        } else
            return usage(stderr);
        i++;
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
    sm_code rc = sm_wrun(&cfg, &stop_requests, &err);
    if (rc) {
        sm_log(SM_LOG_ERROR, "worker stopped", "error", err.msg, NULL);
        fprintf(stderr, "stepmark-worker: %s\n", err.msg);
        return rc == SM_ECONFIG ? SM_EXIT_CONFIG : 1;
    }
    sm_log(SM_LOG_INFO, "worker stopped", NULL);
    return 0;
}
