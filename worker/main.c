/* stepmark-worker: grades submissions handed out by the broker (docs/worker.md).
 *   stepmark-worker [--config FILE] [--model DIR] [--endpoint EP] [--name NAME] [--slots N]
 * Options override the worker.* settings of the configuration. SIGTERM/SIGINT drain (finish
 * the jobs in progress, then exit 0); a second one exits at once. Exit status 2 for a
 * configuration error, 1 for any other failure.
 * Before starting, a worker on the local engine checks that its slots' KV caches (slots x
 * (max_prompt_tokens + max_new_tokens) positions) fit in the memory available, and refuses to
 * start or lowers its slots as worker.on_memory_short says. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_args.h"
#include "sm_config.h"
#include "sm_log.h"
#include "sm_model.h"
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

/* Bytes of memory available: MemAvailable, or less where this process's cgroup (v2) has a lower
 * limit; 0 when unknown. */
static uint64_t memory_available(void)
{
    uint64_t avail = 0, kib;
    char line[256];
    FILE *f = fopen("/proc/meminfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %" SCNu64 " kB", &kib) == 1)
            avail = kib * 1024;
    if (f)
        fclose(f);
    uint64_t max, cur;
    FILE *fm = fopen("/sys/fs/cgroup/memory.max", "r");
    FILE *fc = fopen("/sys/fs/cgroup/memory.current", "r");
    if (fm && fc && fscanf(fm, "%" SCNu64, &max) == 1 && fscanf(fc, "%" SCNu64, &cur) == 1 &&
        max > cur && (avail == 0 || max - cur < avail))
        avail = max - cur;
    if (fm)
        fclose(fm);
    if (fc)
        fclose(fc);
    return avail;
}

/* The KV cache memory check (see the top of this file): SM_ECONFIG when it does not fit and
 * on_memory_short is refuse (or not even one slot fits). */
static sm_code check_kv_memory(sm_config *cfg, sm_err *err)
{
    sm_model_opts mo;
    sm_model_opts_init(&mo);
    if (strcmp(cfg->worker.kv_dtype, "auto") != 0) {
        if (sm_dtype_parse(cfg->worker.kv_dtype, &mo.kv_dtype, err) != SM_OK)
            return SM_ECONFIG;
        mo.kv_dtype_set = true;
    }
    if (strcmp(cfg->worker.dtype, "stored") != 0 &&
        sm_dtype_parse(cfg->worker.dtype, &mo.dtype, NULL) == SM_OK)
        mo.dtype_set = true;
    sm_model_config mc;
    sm_code rc = sm_model_peek_config(cfg->worker.model, &mc, err);
    if (rc != SM_OK)
        return rc;
    sm_dtype kvt = sm_model_default_kv_dtype(&mo);
    uint64_t per_slot = (uint64_t)sm_model_kv_bytes_per_pos(&mc, kvt) *
                        (uint64_t)(cfg->worker.max_prompt_tokens + cfg->worker.max_new_tokens);
    uint64_t avail = memory_available();
    if (avail == 0 || per_slot * (uint64_t)cfg->worker.slots <= avail)
        return SM_OK;
    double gib = 1024.0 * 1024.0 * 1024.0;
    uint64_t fit = avail / per_slot;
    bool lower = strcmp(cfg->worker.on_memory_short, "lower_slots") == 0;
    if (!lower || fit == 0)
        return sm_err_set(err, SM_ECONFIG,
                          "memory too short: %lld slots x (%lld + %lld) positions of %s KV cache "
                          "need %.2f GiB, only %.2f GiB is available (%llu slots fit); lower "
                          "worker.slots or the token limits, use worker.kv_dtype: q8_0, or set "
                          "worker.on_memory_short: lower_slots",
                          (long long)cfg->worker.slots, (long long)cfg->worker.max_prompt_tokens,
                          (long long)cfg->worker.max_new_tokens, sm_dtype_name(kvt),
                          (double)(per_slot * (uint64_t)cfg->worker.slots) / gib,
                          (double)avail / gib, (unsigned long long)fit);
    char old[32], now[32];
    snprintf(old, sizeof old, "%lld", (long long)cfg->worker.slots);
    snprintf(now, sizeof now, "%llu", (unsigned long long)fit);
    sm_log(SM_LOG_WARN, "memory too short for the KV caches of every slot: slots lowered", "slots",
           old, "lowered_to", now, NULL);
    fprintf(stderr, "stepmark-worker: memory too short for %s slots' KV caches: lowered to %s\n",
            old, now);
    cfg->worker.slots = (int64_t)fit;
    return SM_OK;
}

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
    sm_code rc = SM_OK;
    /* the host memory check does not apply to a GPU's KV cache (device cuda) */
    bool host_kv =
        strcmp(cfg.worker.engine, "remote") != 0 && strcmp(cfg.worker.device, "cpu") == 0;
    if (host_kv && (rc = check_kv_memory(&cfg, &err)) != SM_OK) {
        fprintf(stderr, "stepmark-worker: %s\n", err.msg);
        return rc == SM_ECONFIG ? SM_EXIT_CONFIG : 1;
    }
    rc = sm_wmetrics_server_from_config(&cfg, &metrics, &err);
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
