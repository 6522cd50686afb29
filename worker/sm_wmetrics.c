/* sm_wmetrics: the worker's process-wide counters and their Prometheus rendering (see
 * sm_wmetrics.h). Counters and gauges are atomics; the two names shown in
 * stepmark_worker_info are kept under a mutex. */
#include "sm_wmetrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const OUTCOME_NAMES[SM_SANDBOX_OUTCOMES] = {"passed", "failed", "limit_exceeded",
                                                               "compile_error", "error"};

static struct {
    atomic_uint_least64_t jobs_received, jobs_completed, jobs_failed;
    atomic_uint_least64_t tokens_generated, cache_hits, cache_misses;
    atomic_uint_least64_t sandbox_runs[SM_SANDBOX_OUTCOMES];
    atomic_int_least64_t busy_slots, slots;
    atomic_uint_least64_t model_load_us;
} W;

static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;
static char worker_name[256], model_name[256];

sm_sandbox_outcome sm_wmetrics_sandbox_classify(sm_code rc, const json_t *result)
{
    if (rc != SM_OK || !json_is_object(result))
        return SM_SANDBOX_ERROR;
    const json_t *comp = json_object_get(result, "compile");
    if (json_is_object(comp) && !json_is_true(json_object_get(comp, "ok")))
        return SM_SANDBOX_COMPILE_ERROR;
    json_int_t passed = json_integer_value(json_object_get(result, "passed"));
    json_int_t total = json_integer_value(json_object_get(result, "total"));
    if (passed == total)
        return SM_SANDBOX_PASSED;
    size_t i;
    const json_t *t;
    json_array_foreach(json_object_get(result, "tests"), i, t)
    {
        if (json_is_true(json_object_get(t, "timed_out")) ||
            json_is_true(json_object_get(t, "cpu_exceeded")) ||
            json_is_true(json_object_get(t, "memory_exceeded")))
            return SM_SANDBOX_LIMIT;
    }
    return SM_SANDBOX_FAILED;
}

void sm_wmetrics_job_received(void)
{
    atomic_fetch_add(&W.jobs_received, 1);
}
void sm_wmetrics_job_completed(void)
{
    atomic_fetch_add(&W.jobs_completed, 1);
}
void sm_wmetrics_job_failed(void)
{
    atomic_fetch_add(&W.jobs_failed, 1);
}
void sm_wmetrics_tokens_generated(uint64_t n)
{
    atomic_fetch_add(&W.tokens_generated, n);
}
void sm_wmetrics_busy_slots(int64_t busy)
{
    atomic_store(&W.busy_slots, busy);
}
void sm_wmetrics_slots(int64_t slots)
{
    atomic_store(&W.slots, slots);
}

void sm_wmetrics_prompt_cache(uint64_t hits, uint64_t misses)
{
    atomic_fetch_add(&W.cache_hits, hits);
    atomic_fetch_add(&W.cache_misses, misses);
}

void sm_wmetrics_sandbox_run(sm_sandbox_outcome o)
{
    if ((int)o >= 0 && o < SM_SANDBOX_OUTCOMES)
        atomic_fetch_add(&W.sandbox_runs[o], 1);
}

void sm_wmetrics_model_loaded(double seconds, const char *model)
{
    double us = seconds > 0 ? seconds * 1e6 : 0;
    atomic_store(&W.model_load_us, us > 1e15 ? (uint64_t)1e15 : (uint64_t)llround(us));
    pthread_mutex_lock(&names_lock);
    snprintf(model_name, sizeof model_name, "%s", model ? model : "");
    pthread_mutex_unlock(&names_lock);
}

void sm_wmetrics_worker_name(const char *name)
{
    pthread_mutex_lock(&names_lock);
    snprintf(worker_name, sizeof worker_name, "%s", name ? name : "");
    pthread_mutex_unlock(&names_lock);
}

void sm_wmetrics_snapshot_get(sm_wmetrics_snapshot *out)
{
    *out =
        (sm_wmetrics_snapshot){.jobs_received = atomic_load(&W.jobs_received),
                               .jobs_completed = atomic_load(&W.jobs_completed),
                               .jobs_failed = atomic_load(&W.jobs_failed),
                               .tokens_generated = atomic_load(&W.tokens_generated),
                               .cache_hits = atomic_load(&W.cache_hits),
                               .cache_misses = atomic_load(&W.cache_misses),
                               .busy_slots = atomic_load(&W.busy_slots),
                               .slots = atomic_load(&W.slots),
                               .model_load_seconds = (double)atomic_load(&W.model_load_us) / 1e6};
    for (int i = 0; i < SM_SANDBOX_OUTCOMES; i++)
        out->sandbox_runs[i] = atomic_load(&W.sandbox_runs[i]);
}

void sm_wmetrics_reset(void)
{
    atomic_store(&W.jobs_received, 0);
    atomic_store(&W.jobs_completed, 0);
    atomic_store(&W.jobs_failed, 0);
    atomic_store(&W.tokens_generated, 0);
    atomic_store(&W.cache_hits, 0);
    atomic_store(&W.cache_misses, 0);
    atomic_store(&W.busy_slots, 0);
    atomic_store(&W.slots, 0);
    atomic_store(&W.model_load_us, 0);
    for (int i = 0; i < SM_SANDBOX_OUTCOMES; i++)
        atomic_store(&W.sandbox_runs[i], 0);
    sm_wmetrics_worker_name("");
    sm_wmetrics_model_loaded(0, "");
}

/* Writes s as a label value: backslash, double quote and newline escaped. */
static void label_value(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\n') {
            fputs("\\n", f);
            continue;
        }
        if (*s == '\\' || *s == '"')
            fputc('\\', f);
        fputc(*s, f);
    }
}

static void counter(FILE *f, const char *name, const char *help, uint64_t v)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
            (unsigned long long)v);
}

static void render_info(FILE *f)
{
    fputs("# HELP stepmark_worker_info The worker's name and model (value 1).\n"
          "# TYPE stepmark_worker_info gauge\nstepmark_worker_info{worker=\"",
          f);
    pthread_mutex_lock(&names_lock);
    label_value(f, worker_name);
    fputs("\",model=\"", f);
    label_value(f, model_name);
    pthread_mutex_unlock(&names_lock);
    fputs("\"} 1\n", f);
}

static void render_all(FILE *f, const sm_wmetrics_snapshot *s)
{
    render_info(f);
    counter(f, "stepmark_worker_jobs_received_total", "Jobs received from the broker.",
            s->jobs_received);
    counter(f, "stepmark_worker_jobs_completed_total", "Jobs graded and their results sent.",
            s->jobs_completed);
    counter(f, "stepmark_worker_jobs_failed_total", "Jobs that could not be graded (FAIL sent).",
            s->jobs_failed);
    counter(f, "stepmark_worker_tokens_generated_total",
            "Tokens generated; tokens/s is rate() of this counter.", s->tokens_generated);
    counter(f, "stepmark_worker_prompt_cache_hits_total",
            "Shared prompt prefixes taken from the prefix cache.", s->cache_hits);
    counter(f, "stepmark_worker_prompt_cache_misses_total",
            "Shared prompt prefixes computed because the cache did not have them.",
            s->cache_misses);
    fputs("# HELP stepmark_worker_sandbox_runs_total Sandbox runs of code checks by outcome "
          "(error: the sandbox itself failed).\n"
          "# TYPE stepmark_worker_sandbox_runs_total counter\n",
          f);
    for (int i = 0; i < SM_SANDBOX_OUTCOMES; i++)
        fprintf(f, "stepmark_worker_sandbox_runs_total{outcome=\"%s\"} %llu\n", OUTCOME_NAMES[i],
                (unsigned long long)s->sandbox_runs[i]);
    fprintf(f,
            "# HELP stepmark_worker_busy_slots Generation slots decoding a task now.\n"
            "# TYPE stepmark_worker_busy_slots gauge\nstepmark_worker_busy_slots %lld\n"
            "# HELP stepmark_worker_slots Generation slots configured (worker.slots).\n"
            "# TYPE stepmark_worker_slots gauge\nstepmark_worker_slots %lld\n"
            "# HELP stepmark_worker_model_load_seconds Time taken to load the model and "
            "tokenizer (0 while loading).\n"
            "# TYPE stepmark_worker_model_load_seconds gauge\n"
            "stepmark_worker_model_load_seconds %.6f\n",
            (long long)s->busy_slots, (long long)s->slots, s->model_load_seconds);
}

sm_code sm_wmetrics_render(char **out, sm_err *err)
{
    *out = NULL;
    sm_wmetrics_snapshot s;
    sm_wmetrics_snapshot_get(&s);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return sm_err_set(err, SM_ENOMEM, "out of memory rendering worker metrics");
    render_all(f, &s);
    if (fclose(f) != 0 || !buf) {
        free(buf);
        return sm_err_set(err, SM_ENOMEM, "out of memory rendering worker metrics");
    }
    *out = buf;
    return SM_OK;
}
