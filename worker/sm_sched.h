/* sm_sched: the generation scheduler of a worker. A fixed number of slots, each with its own
 * KV-cache sequence, decode together: every step is one forward pass over all busy slots
 * (sm_model_forward, or sm_cuda_forward through sm_dev on a GPU; a slot still reading its prompt contributes up to prefill_chunk prompt tokens, the others
 * one token each). When a task finishes, its slot takes the next queued task at the next step
 * (continuous batching). The prefix cache keeps the KV cache of recently used shared prefixes
 * (system prompt + assignment part) and copies it into a slot instead of recomputing it.
 * In the engine's deterministic mode a task's tokens depend only on its prompt, sampling and
 * seed, never on what else is batched, whether its prefix came from the cache, or how its
 * prompt was split into chunks. Used by one thread. */
#ifndef SM_SCHED_H
#define SM_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sm_dev.h"
#include "sm_error.h"
#include "sm_model.h"
#include "sm_sampler.h"
#include "sm_tokenizer.h"

typedef enum sm_finish {
    SM_FINISH_NONE = 0,
    SM_FINISH_EOS,   /* an end-of-sequence token */
    SM_FINISH_STOP,  /* a stop string (kept at the end of the text) */
    SM_FINISH_LENGTH /* max_new tokens generated */
} sm_finish;

typedef struct sm_task sm_task;

/* Called when a task's generation phase ends. The callback reads sm_task_text etc., and may
 * call sm_task_continue to append more ids and generate again in the same slot (the KV cache
 * is kept); otherwise the scheduler frees the task after the callback returns. A non-OK return
 * aborts the step's remaining work and is returned by sm_sched_step. */
typedef sm_code (*sm_task_done_fn)(void *user, sm_task *task, sm_err *err);

typedef struct sm_sched_opts {
    int slots;       /* >= 1 */
    int64_t max_ctx; /* positions per slot */
    bool prefix_cache;
    int cache_entries;     /* prefixes kept (LRU); <= 0: 8 */
    int64_t prefill_chunk; /* most prompt ids one slot feeds per step; <= 0: 512 */
    void *done_ctx;        /* the caller's, returned by sm_task_done_ctx */
} sm_sched_opts;

typedef struct sm_sched sm_sched;

sm_code sm_sched_new(sm_model *model, const sm_tokenizer *tok, const sm_sched_opts *opts,
                     sm_task_done_fn done, sm_sched **out, sm_err *err);
/* The same over a model on any device (sm_dev.h; the CUDA backend included), which the caller
 * keeps owning. */
sm_code sm_sched_new_dev(sm_dev_model *model, const sm_tokenizer *tok, const sm_sched_opts *opts,
                         sm_task_done_fn done, sm_sched **out, sm_err *err);
void sm_sched_free(sm_sched **s);

/* A task: generate after prompt[0, n_prompt) (copied), whose first n_prefix ids are shareable
 * through the prefix cache, at most max_new tokens, stopping at EOS or at any of stops (NULL
 * terminated, copied). user/tag are the caller's (e.g. job and sample index). */
typedef struct sm_task_spec {
    void *user;
    int tag;
    const int32_t *prompt;
    size_t n_prompt;
    size_t n_prefix;
    sm_sampler_params sampling;
    int64_t max_new;
    const char *const *stops;
} sm_task_spec;

/* Queues a task (FIFO). SM_ELIMIT if prompt + max_new exceeds the slot context. */
sm_code sm_sched_submit(sm_sched *s, const sm_task_spec *spec, sm_err *err);

/* Runs one step (admits queued tasks to free slots, one forward pass, sampling, callbacks).
 * *progressed is false when there was nothing to do. */
sm_code sm_sched_step(sm_sched *s, bool *progressed, sm_err *err);

/* Removes every queued and running task of user without calling the callback; returns how
 * many were removed. */
int sm_sched_cancel(sm_sched *s, void *user);

/* Tokens generated so far by the running tasks of user (for progress reports). */
int64_t sm_sched_user_tokens(const sm_sched *s, const void *user);

/* Tasks queued or running. */
int sm_sched_pending(const sm_sched *s);
int sm_sched_running(const sm_sched *s);

typedef struct sm_sched_stats {
    int64_t steps;
    int64_t prompt_tokens;    /* prompt ids fed through the model */
    int64_t cached_tokens;    /* prompt ids taken from the prefix cache instead */
    int64_t generated_tokens; /* tokens sampled */
    int64_t cache_hits, cache_misses;
    /* steps where every busy slot decoded one token (no prompt reading): their count, wall
     * time and tokens, i.e. the pure decoding throughput of continuous batching */
    int64_t decode_steps, decode_us, decode_tokens;
} sm_sched_stats;
void sm_sched_get_stats(const sm_sched *s, sm_sched_stats *st);

/* ---- a task, inside the callback ---- */
void *sm_task_user(const sm_task *t);
void *sm_task_done_ctx(const sm_task *t);
int sm_task_tag(const sm_task *t);
sm_finish sm_task_finish(const sm_task *t);
/* The text generated in the phase that just ended (NUL-terminated, valid while the task is). */
const char *sm_task_text(const sm_task *t, size_t *len);
/* Tokens generated in the phase that just ended, and in all phases. */
int64_t sm_task_phase_tokens(const sm_task *t);
int64_t sm_task_total_tokens(const sm_task *t);
/* Prompt ids this task fed itself and took from the prefix cache (all phases). */
int64_t sm_task_prompt_tokens(const sm_task *t);
int64_t sm_task_cached_tokens(const sm_task *t);
/* The ids generated in the phase that just ended. */
const int32_t *sm_task_phase_ids(const sm_task *t, size_t *n);

/* Appends ids (fed before generating again) and starts another phase of at most max_new
 * tokens. Only inside the done callback. SM_ELIMIT if it would exceed the context. */
sm_code sm_task_continue(sm_task *t, const int32_t *ids, size_t n, int64_t max_new, sm_err *err);

#endif
