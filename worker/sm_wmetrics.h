/* sm_wmetrics: a worker's own Prometheus metrics. One set per process: the connection,
 * preparation and engine threads (and the sandbox) update them with C11 atomics, never
 * blocking; the metrics HTTP server (sm_wmetrics_http.c) renders them. Durations are in
 * seconds, as Prometheus conventions ask. */
#ifndef SM_WMETRICS_H
#define SM_WMETRICS_H

#include <stdint.h>

#include <jansson.h>

#include "sm_error.h"

/* How one sandbox run ended (the label outcome of stepmark_worker_sandbox_runs_total). */
typedef enum sm_sandbox_outcome {
    SM_SANDBOX_PASSED = 0,    /* compiled, every test passed */
    SM_SANDBOX_FAILED,        /* some test gave a wrong answer or crashed */
    SM_SANDBOX_LIMIT,         /* some test hit a time, CPU or memory limit */
    SM_SANDBOX_COMPILE_ERROR, /* the student's program did not compile */
    SM_SANDBOX_ERROR,         /* the sandbox could not run the checks (a worker failure) */
    SM_SANDBOX_OUTCOMES
} sm_sandbox_outcome;

/* The outcome of sm_sandbox_run_tests from its return code and result object. */
sm_sandbox_outcome sm_wmetrics_sandbox_classify(sm_code rc, const json_t *result);

void sm_wmetrics_job_received(void);
void sm_wmetrics_job_completed(void);
void sm_wmetrics_job_failed(void);
void sm_wmetrics_tokens_generated(uint64_t n);
void sm_wmetrics_prompt_cache(uint64_t hits, uint64_t misses);
void sm_wmetrics_busy_slots(int64_t busy);
void sm_wmetrics_slots(int64_t slots);
void sm_wmetrics_sandbox_run(sm_sandbox_outcome o);
/* The model is loaded: how long it took and its name (kept for stepmark_worker_info). */
void sm_wmetrics_model_loaded(double seconds, const char *model);
/* The worker's name as announced to the broker. */
void sm_wmetrics_worker_name(const char *name);

/* A copy of the counters (for tests and rendering). */
typedef struct sm_wmetrics_snapshot {
    uint64_t jobs_received, jobs_completed, jobs_failed;
    uint64_t tokens_generated, cache_hits, cache_misses;
    uint64_t sandbox_runs[SM_SANDBOX_OUTCOMES];
    int64_t busy_slots, slots;
    double model_load_seconds; /* 0 until the model is loaded */
} sm_wmetrics_snapshot;
void sm_wmetrics_snapshot_get(sm_wmetrics_snapshot *out);

/* The metrics in Prometheus text format (HELP/TYPE lines), malloc'd; the caller frees it. */
sm_code sm_wmetrics_render(char **out, sm_err *err);

/* Zeroes every counter (tests only). */
void sm_wmetrics_reset(void);

#endif
