/* sm_gen: where a worker's generation runs. The engine thread (sm_wrun.c) talks to one backend
 * through this interface: submit tasks, step (do some work and call back the tasks that
 * finished a phase), cancel a job's tasks, count its tokens. Two implementations:
 *   - local (sm_gen.c): the in-process scheduler (sm_sched: slots, continuous batching,
 *     prefix cache) over the CPU engine, or over the CUDA backend (sm_gen_cuda.c);
 *   - remote (sm_gen_remote.c): an OpenAI-compatible server (vLLM, SGLang, llama.cpp's server,
 *     stepmark-engine serve) over HTTP, /v1/completions with the prompt's token ids, up to
 *     worker.remote.max_concurrency requests at once from a thread of its own.
 * The callback sees the same thing from both: the phase's text (ending with the stop string
 * when it stopped there), how it ended, token counts, and may continue the task with more ids
 * (the repair request). Used by one thread. */
#ifndef SM_GEN_H
#define SM_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sm_config.h"
#include "sm_error.h"
#include "sm_sched.h"

/* What one finished phase of a task produced. Strings valid during the callback. */
typedef struct sm_gen_result {
    int tag;
    sm_finish finish;
    const char *text;      /* the phase's text; ends with the stop string when it stopped there */
    int64_t phase_tokens;  /* generated in this phase */
    int64_t total_tokens;  /* generated in all phases */
    int64_t prompt_tokens; /* prompt ids the generator read itself (all phases) */
    int64_t cached_tokens; /* prompt ids taken from a prefix cache (local only) */
    const char *server_model; /* remote: the model the server answered with; NULL locally */
    const char *fingerprint;  /* remote: its system_fingerprint ("" when none); NULL locally */
} sm_gen_result;

/* Set by the callback to generate again after the phase: ids appended after what the task has
 * read and generated, and at most max_new more tokens. ids is malloc'd and taken over. */
typedef struct sm_gen_next {
    int32_t *ids;
    size_t n;
    int64_t max_new;
} sm_gen_next;

/* Called when a task's phase ends. A non-OK return aborts the step and is returned by it. */
typedef sm_code (*sm_gen_done_fn)(void *user, const sm_gen_result *r, sm_gen_next *next,
                                  sm_err *err);

typedef struct sm_gen_stats {
    int64_t generated_tokens;
    int64_t prompt_tokens;
    int64_t cache_hits, cache_misses;    /* local prefix cache */
    int64_t requests, retries, failures; /* remote */
    int running;                         /* tasks generating now */
} sm_gen_stats;

typedef struct sm_gen_ops {
    sm_code (*submit)(void *impl, const sm_task_spec *spec, sm_err *err);
    sm_code (*step)(void *impl, bool *progressed, sm_err *err);
    int (*cancel)(void *impl, void *user);
    int64_t (*user_tokens)(const void *impl, const void *user);
    bool (*take_failed)(void *impl, void **user, char *msg, size_t n);
    void (*stats)(const void *impl, sm_gen_stats *st);
    void (*free)(void *impl);
} sm_gen_ops;

typedef struct sm_gen_backend {
    const sm_gen_ops *ops;
    void *impl;
} sm_gen_backend;

/* The local scheduler over model (see sm_sched.h for opts). */
sm_code sm_gen_local_new(sm_model *model, const sm_tokenizer *tok, const sm_sched_opts *opts,
                         sm_gen_done_fn done, sm_gen_backend *out, sm_err *err);

/* The same over a model on any device (sm_dev.h: the CUDA backend), which the backend takes
 * over (freed with it, or on failure). */
sm_code sm_gen_local_new_dev(sm_dev_model *model, const sm_tokenizer *tok,
                             const sm_sched_opts *opts, sm_gen_done_fn done, sm_gen_backend *out,
                             sm_err *err);

/* A remote OpenAI-compatible server, as cfg->worker.remote says; the API key is read from
 * worker.remote.api_key_file (refused when group or others may read it). tok encodes the
 * generated text again for a continuation's prompt. */
sm_code sm_gen_remote_new(const sm_config *cfg, const sm_tokenizer *tok, sm_gen_done_fn done,
                          sm_gen_backend *out, sm_err *err);

/* Queues a task (copied). */
sm_code sm_gen_submit(sm_gen_backend *b, const sm_task_spec *spec, sm_err *err);
/* Does some work: the local backend one scheduler step, the remote one waits up to 50 ms for
 * answers; callbacks run here, on the caller's thread. *progressed: something happened. */
sm_code sm_gen_step(sm_gen_backend *b, bool *progressed, sm_err *err);
/* Drops every task of user without callbacks; returns how many. */
int sm_gen_cancel(sm_gen_backend *b, void *user);
/* Tokens generated so far by the unfinished tasks of user. */
int64_t sm_gen_user_tokens(const sm_gen_backend *b, const void *user);
/* A user whose task failed for good (the remote server after every retry): true with its
 * user and message, its other tasks already cancelled; false when none. */
bool sm_gen_take_failed(sm_gen_backend *b, void **user, char *msg, size_t n);
void sm_gen_get_stats(const sm_gen_backend *b, sm_gen_stats *st);
void sm_gen_free(sm_gen_backend *b);

#endif
