/* test_gen_cuda (label gpu): the worker's generation backend on a GPU (sm_gen_cuda: the CUDA
 * plugin under the worker's scheduler) against the CPU backend (sm_gen_local) on the small
 * random worker model with the real tokenizer, both with bf16 weights and greedy sampling:
 *   - the same text and finish reason for every task (5 tasks over 3 slots: continuous
 *     batching, a shared prefix through the prefix cache, a stop string, and a repair
 *     continuation after the first phase);
 *   - on the GPU, the same text with 1 slot and no prefix cache as with 3 slots and the cache
 *     (deterministic mode: batching does not change a task's tokens).
 * A near-tie between the two best logits can make bf16 rounding on the GPU pick another token
 * than the CPU: a failure prints both texts to inspect. Exits 77 without a CUDA device.
 * Usage: test_gen_cuda MODEL_DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_cuda_plugin.h"
#include "sm_gen.h"
#include "sm_gen_cuda.h"

#define NT 5
#define SKIP 77

static int failures;

typedef struct rec {
    char text[NT][4096];
    sm_finish finish[NT];
    int phases[NT];
} rec;

static sm_code on_done(void *user, const sm_gen_result *r, sm_gen_next *next, sm_err *err)
{
    (void)err;
    rec *c = user;
    int i = r->tag;
    strncat(c->text[i], r->text, sizeof c->text[i] - strlen(c->text[i]) - 1);
    c->finish[i] = r->finish;
    if (++c->phases[i] == 1 && i % 2 == 0) { /* the repair path: more ids, generate again */
        next->ids = malloc(3 * sizeof *next->ids);
        if (!next->ids)
            return SM_ENOMEM;
        next->ids[0] = 11, next->ids[1] = 12, next->ids[2] = 13;
        next->n = 3;
        next->max_new = 6;
    }
    return SM_OK;
}

/* Runs the 5 tasks to the end on backend b. */
static int run(sm_gen_backend *b, rec *r)
{
    sm_err err = {0};
    static const char *const stops[] = {"e", NULL};
    memset(r, 0, sizeof *r);
    for (int i = 0; i < NT; i++) {
        int32_t p[64];
        size_t n = 0;
        for (int j = 0; j < 40; j++)
            p[n++] = 100 + j * 7;
        for (int j = 0; j < 5 + 3 * i; j++)
            p[n++] = 2000 + 13 * i + j;
        sm_task_spec t = {.user = r,
                          .tag = i,
                          .prompt = p,
                          .n_prompt = n,
                          .n_prefix = 40,
                          .max_new = 24,
                          .stops = i == 3 ? stops : NULL};
        sm_sampler_params_init(&t.sampling);
        if (sm_gen_submit(b, &t, &err)) {
            fprintf(stderr, "submit: %s\n", err.msg);
            return 1;
        }
    }
    for (int guard = 0; guard < 100000; guard++) {
        bool progressed = false;
        if (sm_gen_step(b, &progressed, &err)) {
            fprintf(stderr, "step: %s\n", err.msg);
            return 1;
        }
        if (!progressed)
            return 0;
    }
    fprintf(stderr, "the tasks never finished\n");
    return 1;
}

static void compare(const char *what, const rec *a, const rec *b)
{
    for (int i = 0; i < NT; i++)
        if (strcmp(a->text[i], b->text[i]) != 0 || a->finish[i] != b->finish[i]) {
            fprintf(stderr, "FAIL %s: task %d:\n  %d [%s]\n  %d [%s]\n", what, i, a->finish[i],
                    a->text[i], b->finish[i], b->text[i]);
            failures++;
        }
}

static sm_code backends(const char *dir, const sm_tokenizer *tok, int slots, bool cache,
                        sm_gen_backend *out, sm_err *err)
{
    sm_config cfg;
    sm_config_defaults(&cfg);
    snprintf(cfg.worker.model, sizeof cfg.worker.model, "%s", dir);
    char version[128];
    sm_dev_model *m = NULL;
    sm_code rc = sm_gen_cuda_load(&cfg, &m, version, sizeof version, err);
    sm_sched_opts so = {.slots = slots, .max_ctx = 256, .prefix_cache = cache};
    return rc ? rc : sm_gen_cuda_new(m, tok, &so, on_done, out, err);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_gen_cuda MODEL_DIR\n");
        return 2;
    }
    sm_err err = {0};
    const sm_cuda_api *api = NULL;
    sm_code rc = sm_cuda_plugin_open(NULL, &api, &err);
    if (rc == SM_EUNSUPPORTED) {
        printf("SKIP: %s\n", err.msg);
        return SKIP;
    }
    sm_tokenizer *tok = NULL;
    sm_model *cpu = NULL;
    sm_model_opts mo;
    sm_model_opts_init(&mo);
    mo.dtype = SM_DTYPE_BF16;
    mo.dtype_set = true;
    if (rc || sm_tokenizer_load(argv[1], &tok, &err) || sm_model_load(argv[1], &mo, &cpu, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    static rec want, got, alone;
    sm_gen_backend b = {0};
    sm_sched_opts so = {.slots = 3, .max_ctx = 256, .prefix_cache = true};
    int st = sm_gen_local_new(cpu, tok, &so, on_done, &b, &err) ? 1 : run(&b, &want);
    sm_gen_free(&b);
    if (!st)
        st = backends(argv[1], tok, 3, true, &b, &err) ? 1 : run(&b, &got);
    sm_gen_free(&b);
    if (!st)
        st = backends(argv[1], tok, 1, false, &b, &err) ? 1 : run(&b, &alone);
    sm_gen_free(&b);
    if (st && err.msg[0])
        fprintf(stderr, "%s\n", err.msg);
    if (!st) {
        compare("cuda vs cpu", &want, &got);
        compare("cuda 3 slots vs 1 slot", &alone, &got);
    }
    sm_model_free(&cpu);
    sm_tokenizer_free(&tok);
    if (st || failures)
        return 1;
    printf("all passed: %d tasks, the same text on the GPU as on the CPU\n", NT);
    return 0;
}
