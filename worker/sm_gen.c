/* sm_gen: the backend interface's dispatch, and the local backend over sm_sched (sm_gen.h). */
#include "sm_gen.h"

#include <stdlib.h>
#include <string.h>

sm_code sm_gen_submit(sm_gen_backend *b, const sm_task_spec *spec, sm_err *err)
{
    return b->ops->submit(b->impl, spec, err);
}

sm_code sm_gen_step(sm_gen_backend *b, bool *progressed, sm_err *err)
{
    return b->ops->step(b->impl, progressed, err);
}

int sm_gen_cancel(sm_gen_backend *b, void *user)
{
    return b->ops->cancel(b->impl, user);
}

int64_t sm_gen_user_tokens(const sm_gen_backend *b, const void *user)
{
    return b->ops->user_tokens(b->impl, user);
}

bool sm_gen_take_failed(sm_gen_backend *b, void **user, char *msg, size_t n)
{
    return b->ops->take_failed(b->impl, user, msg, n);
}

void sm_gen_get_stats(const sm_gen_backend *b, sm_gen_stats *st)
{
    memset(st, 0, sizeof *st);
    b->ops->stats(b->impl, st);
}

void sm_gen_free(sm_gen_backend *b)
{
    if (b && b->ops) {
        b->ops->free(b->impl);
        b->ops = NULL;
        b->impl = NULL;
    }
}

/* ---- local: the scheduler ---- */

typedef struct local {
    sm_sched *s;
    sm_gen_done_fn done;
    sm_dev_model *owned; /* the model, when the backend took it over (sm_gen_local_new_dev) */
} local;

static sm_code local_done(void *user, sm_task *t, sm_err *err)
{
    const local *L = sm_task_done_ctx(t);
    sm_gen_result r = {.tag = sm_task_tag(t),
                       .finish = sm_task_finish(t),
                       .text = sm_task_text(t, NULL),
                       .phase_tokens = sm_task_phase_tokens(t),
                       .total_tokens = sm_task_total_tokens(t),
                       .prompt_tokens = sm_task_prompt_tokens(t),
                       .cached_tokens = sm_task_cached_tokens(t)};
    sm_gen_next next = {0};
    sm_code rc = L->done(user, &r, &next, err);
    if (!rc && next.ids)
        rc = sm_task_continue(t, next.ids, next.n, next.max_new, err);
    free(next.ids);
    return rc;
}

static sm_code local_submit(void *impl, const sm_task_spec *spec, sm_err *err)
{
    return sm_sched_submit(((local *)impl)->s, spec, err);
}

static sm_code local_step(void *impl, bool *progressed, sm_err *err)
{
    return sm_sched_step(((local *)impl)->s, progressed, err);
}

static int local_cancel(void *impl, void *user)
{
    return sm_sched_cancel(((local *)impl)->s, user);
}

static int64_t local_user_tokens(const void *impl, const void *user)
{
    return sm_sched_user_tokens(((const local *)impl)->s, user);
}

static bool local_take_failed(void *impl, void **user, char *msg, size_t n)
{
    (void)impl, (void)user, (void)msg, (void)n;
    return false; /* a failed step fails every job (sm_gen_step's error) */
}

static void local_stats(const void *impl, sm_gen_stats *st)
{
    const local *L = impl;
    sm_sched_stats s;
    sm_sched_get_stats(L->s, &s);
    st->generated_tokens = s.generated_tokens;
    st->prompt_tokens = s.prompt_tokens;
    st->cache_hits = s.cache_hits;
    st->cache_misses = s.cache_misses;
    st->running = sm_sched_running(L->s);
}

static void local_free(void *impl)
{
    local *L = impl;
    if (L) {
        sm_sched_free(&L->s);
        sm_dev_free(&L->owned);
    }
    free(L);
}

static const sm_gen_ops local_ops = {local_submit,      local_step,        local_cancel,
                                     local_user_tokens, local_take_failed, local_stats,
                                     local_free};

/* The scheduler over a CPU model (cpu) or a model on any device (dev, taken over). */
static sm_code local_new(sm_model *cpu, sm_dev_model *dev, const sm_tokenizer *tok,
                         const sm_sched_opts *opts, sm_gen_done_fn done, sm_gen_backend *out,
                         sm_err *err)
{
    local *L = calloc(1, sizeof *L);
    if (!L) {
        sm_dev_free(&dev);
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    L->done = done;
    L->owned = dev;
    sm_sched_opts o = *opts;
    o.done_ctx = L;
    sm_code rc = dev ? sm_sched_new_dev(dev, tok, &o, local_done, &L->s, err)
                     : sm_sched_new(cpu, tok, &o, local_done, &L->s, err);
    if (rc) {
        local_free(L);
        return rc;
    }
    *out = (sm_gen_backend){&local_ops, L};
    return SM_OK;
}

sm_code sm_gen_local_new(sm_model *model, const sm_tokenizer *tok, const sm_sched_opts *opts,
                         sm_gen_done_fn done, sm_gen_backend *out, sm_err *err)
{
    return local_new(model, NULL, tok, opts, done, out, err);
}

sm_code sm_gen_local_new_dev(sm_dev_model *model, const sm_tokenizer *tok,
                             const sm_sched_opts *opts, sm_gen_done_fn done, sm_gen_backend *out,
                             sm_err *err)
{
    return local_new(NULL, model, tok, opts, done, out, err);
}
