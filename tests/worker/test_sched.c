/* test_sched: the worker's scheduler on a small random model with the real tokenizer:
 *   - sm_seq_copy_prefix: a sequence continued from a copied prefix gives bitwise the same
 *     logits as one that computed everything, and its argument checks;
 *   - reproducibility: each task's tokens are identical whether it runs alone in one slot
 *     without the prefix cache, or batched with others (continuous batching over fewer slots
 *     than tasks, different lengths, prefix cache on, prompt split into chunks);
 *   - stop strings and EOS end a phase; a continuation (the repair path) keeps the KV cache;
 *   - cancel removes a job's tasks.
 * Usage: test_sched MODEL_DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_sched.h"

static const char *model_dir;
static int failures;

#define CHECK(c)                                                                  \
    do {                                                                          \
        if (!(c)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
            failures++;                                                           \
        }                                                                         \
    } while (0)
#define OK(expr)                                                                           \
    do {                                                                                   \
        sm_code rc_ = (expr);                                                              \
        if (rc_ != SM_OK) {                                                                \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, err.msg); \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

#define NT 5
#define MAXGEN 64

typedef struct rec {
    int32_t ids[NT][MAXGEN * 2];
    size_t n[NT];
    char text[NT][4096];
    sm_finish finish[NT];
    int phases[NT];
    bool repair; /* continue once after the first phase */
    const sm_tokenizer *tok;
} rec;

static sm_code on_done(void *user, sm_task *t, sm_err *err)
{
    rec *r = user;
    int i = sm_task_tag(t);
    size_t n;
    const int32_t *ids = sm_task_phase_ids(t, &n);
    for (size_t k = 0; k < n && r->n[i] < MAXGEN * 2; k++)
        r->ids[i][r->n[i]++] = ids[k];
    strncat(r->text[i], sm_task_text(t, NULL), sizeof r->text[i] - strlen(r->text[i]) - 1);
    r->finish[i] = sm_task_finish(t);
    r->phases[i]++;
    if (r->repair && r->phases[i] == 1) {
        int32_t more[3] = {11, 12, 13};
        return sm_task_continue(t, more, 3, 5, err);
    }
    return SM_OK;
}

/* Prompts: a shared prefix of 40 ids and a distinct tail per task. */
static void make_prompt(int i, int32_t *p, size_t *n, size_t *n_prefix)
{
    size_t k = 0;
    for (int j = 0; j < 40; j++)
        p[k++] = 100 + j * 7;
    for (int j = 0; j < 5 + 3 * i; j++)
        p[k++] = 2000 + 13 * i + j;
    *n = k;
    *n_prefix = 40;
}

static void run(sm_model *m, const sm_tokenizer *tok, int slots, bool cache, int64_t chunk,
                const int *which, int n_which, rec *r, bool with_stop)
{
    sm_err err;
    sm_sched_opts o = {
        .slots = slots, .max_ctx = 256, .prefix_cache = cache, .prefill_chunk = chunk};
    sm_sched *s;
    OK(sm_sched_new(m, tok, &o, on_done, &s, &err));
    static const char *const stops[] = {"zzzz-never", NULL};
    for (int w = 0; w < n_which; w++) {
        int i = which[w];
        int32_t p[64];
        size_t n, np;
        make_prompt(i, p, &n, &np);
        sm_task_spec t = {.user = r,
                          .tag = i,
                          .prompt = p,
                          .n_prompt = n,
                          .n_prefix = np,
                          .max_new = 8 + 6 * i,
                          .stops = with_stop ? stops : NULL};
        sm_sampler_params_init(&t.sampling);
        t.sampling.temperature = 1.0;
        t.sampling.top_p = 0.95;
        t.sampling.seed = 1000 + (uint64_t)i;
        OK(sm_sched_submit(s, &t, &err));
    }
    bool prog = true;
    int steps = 0;
    while (sm_sched_pending(s) + sm_sched_running(s) > 0 && steps < 10000) {
        OK(sm_sched_step(s, &prog, &err));
        steps++;
        CHECK(sm_sched_running(s) <= slots);
    }
    sm_sched_stats st;
    sm_sched_get_stats(s, &st);
    if (cache)
        CHECK(st.cache_hits + st.cache_misses == n_which && st.cached_tokens == 40 * n_which);
    else
        CHECK(st.cached_tokens == 0);
    sm_sched_free(&s);
}

static void test_copy_prefix(sm_model *m)
{
    sm_err err;
    sm_seq *a, *b, *c, *small;
    OK(sm_seq_new(m, 64, &a, &err));
    OK(sm_seq_new(m, 64, &b, &err));
    OK(sm_seq_new(m, 64, &c, &err));
    OK(sm_seq_new(m, 4, &small, &err));
    int32_t p[20];
    for (int i = 0; i < 20; i++)
        p[i] = 500 + 31 * i;
    int64_t vocab = sm_model_info(m)->config.vocab;
    float *la = malloc((size_t)vocab * sizeof *la), *lc = malloc((size_t)vocab * sizeof *lc);
    const int32_t *pp = p;
    int64_t n = 12;
    OK(sm_model_forward(m, &a, &pp, &n, 1, NULL, &err));
    /* b continues from a's first 8 positions */
    OK(sm_seq_copy_prefix(b, a, 8, &err));
    CHECK(sm_seq_pos(b) == 8);
    const int32_t *rest = p + 8;
    n = 12;
    OK(sm_model_forward(m, &b, &rest, &n, 1, la, &err));
    /* c computes all 20 at once */
    n = 20;
    OK(sm_model_forward(m, &c, &pp, &n, 1, lc, &err));
    CHECK(memcmp(la, lc, (size_t)vocab * sizeof *la) == 0);
    CHECK(sm_seq_copy_prefix(b, a, 13, &err) == SM_EINVAL); /* a holds 12 */
    CHECK(sm_seq_copy_prefix(a, a, 4, &err) == SM_EINVAL);
    CHECK(sm_seq_copy_prefix(small, a, 5, &err) == SM_ELIMIT);
    CHECK(sm_seq_copy_prefix(small, a, 0, &err) == SM_OK && sm_seq_pos(small) == 0);
    free(la);
    free(lc);
    sm_seq_free(&a);
    sm_seq_free(&b);
    sm_seq_free(&c);
    sm_seq_free(&small);
}

/* Each task alone (the references, into ref), then batched in 5 slots with the prefix cache
 * and 7-id prompt chunks, through 2 slots in another order, and continued with a second phase:
 * the same ids and texts. */
static void test_batching(sm_model *m, sm_tokenizer *tok, rec *ref)
{
    static rec bat, two, rep;
    for (int i = 0; i < NT; i++) {
        int w = i;
        run(m, tok, 1, false, 0, &w, 1, ref, false);
        CHECK(ref->n[i] > 0);
        CHECK(ref->finish[i] == SM_FINISH_LENGTH || ref->finish[i] == SM_FINISH_EOS);
        CHECK(ref->n[i] <= (size_t)(8 + 6 * i));
    }
    int all[NT] = {0, 1, 2, 3, 4};
    run(m, tok, NT, true, 7, all, NT, &bat, true);
    /* continuous batching: 5 tasks through 2 slots, in another order */
    int order[NT] = {4, 2, 0, 3, 1};
    run(m, tok, 2, true, 0, order, NT, &two, false);
    for (int i = 0; i < NT; i++) {
        CHECK(bat.n[i] == ref->n[i] && !memcmp(bat.ids[i], ref->ids[i], ref->n[i] * 4));
        CHECK(two.n[i] == ref->n[i] && !memcmp(two.ids[i], ref->ids[i], ref->n[i] * 4));
        CHECK(!strcmp(bat.text[i], ref->text[i]) && !strcmp(two.text[i], ref->text[i]));
        CHECK(bat.finish[i] == ref->finish[i]);
    }
    /* a continuation: the first phase is unchanged and a second one runs */
    rep.repair = true;
    run(m, tok, 3, true, 0, all, NT, &rep, false);
    for (int i = 0; i < NT; i++) {
        CHECK(rep.phases[i] == 2);
        CHECK(rep.n[i] >= ref->n[i] && !memcmp(rep.ids[i], ref->ids[i], ref->n[i] * 4));
    }
}

static void test_stop_string(sm_model *m, sm_tokenizer *tok, const rec *ref)
{
    sm_err err;
    /* stop strings: a stop taken from the reference output ends the phase right there */
    int i = 4;
    const char *t = ref->text[i];
    size_t L = strlen(t);
    if (L >= 12) {
        char stop[8];
        memcpy(stop, t + L / 2, 4);
        stop[4] = '\0';
        const char *const stops[] = {stop, NULL};
        rec one = {0};
        sm_sched_opts o = {.slots = 1, .max_ctx = 256};
        sm_sched *s;
        OK(sm_sched_new(m, tok, &o, on_done, &s, &err));
        int32_t p[64];
        size_t n, np;
        make_prompt(i, p, &n, &np);
        sm_task_spec ts = {.user = &one,
                           .tag = i,
                           .prompt = p,
                           .n_prompt = n,
                           .n_prefix = np,
                           .max_new = 8 + 6 * i,
                           .stops = stops};
        sm_sampler_params_init(&ts.sampling);
        ts.sampling.temperature = 1.0;
        ts.sampling.top_p = 0.95;
        ts.sampling.seed = 1000 + (uint64_t)i;
        OK(sm_sched_submit(s, &ts, &err));
        bool prog;
        while (sm_sched_running(s) + sm_sched_pending(s) > 0)
            OK(sm_sched_step(s, &prog, &err));
        CHECK(one.finish[i] == SM_FINISH_STOP);
        const char *at = strstr(ref->text[i], stop);
        CHECK(strlen(one.text[i]) == (size_t)(at - ref->text[i]) + strlen(stop));
        sm_sched_free(&s);
    }
}

static void test_cancel(sm_model *m, sm_tokenizer *tok)
{
    sm_err err;
    /* cancel: queued and running tasks of a user disappear without callbacks */
    rec c1 = {0}, c2 = {0};
    sm_sched_opts o = {.slots = 1, .max_ctx = 256};
    sm_sched *s;
    OK(sm_sched_new(m, tok, &o, on_done, &s, &err));
    for (int i = 0; i < 2; i++) {
        int32_t p[64];
        size_t n, np;
        make_prompt(i, p, &n, &np);
        sm_task_spec ts = {
            .user = i ? &c2 : &c1, .tag = i, .prompt = p, .n_prompt = n, .max_new = 4};
        sm_sampler_params_init(&ts.sampling);
        OK(sm_sched_submit(s, &ts, &err));
        OK(sm_sched_submit(s, &ts, &err));
    }
    bool prog;
    OK(sm_sched_step(s, &prog, &err));
    CHECK(sm_sched_cancel(s, &c1) == 2);
    CHECK(sm_sched_pending(s) + sm_sched_running(s) == 2);
    while (sm_sched_running(s) + sm_sched_pending(s) > 0)
        OK(sm_sched_step(s, &prog, &err));
    CHECK(c1.phases[0] == 0 && c2.phases[1] == 2);
    int32_t big[300] = {0};
    sm_task_spec too = {.user = &c1, .prompt = big, .n_prompt = 300, .max_new = 4};
    sm_sampler_params_init(&too.sampling);
    CHECK(sm_sched_submit(s, &too, &err) == SM_ELIMIT);
    sm_sched_free(&s);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_sched MODEL_DIR\n");
        return 2;
    }
    model_dir = argv[1];
    sm_err err;
    sm_model_opts mo;
    sm_model_opts_init(&mo);
    mo.threads = 2;
    sm_model *m;
    sm_tokenizer *tok;
    OK(sm_model_load(model_dir, &mo, &m, &err));
    OK(sm_tokenizer_load_cached(model_dir, NULL, &tok, &err));
    test_copy_prefix(m);
    static rec ref;
    test_batching(m, tok, &ref);
    test_stop_string(m, tok, &ref);
    test_cancel(m, tok);
    sm_tokenizer_free(&tok);
    sm_model_free(&m);
    if (failures)
        fprintf(stderr, "%d checks failed\n", failures);
    else
        printf("test_sched: all checks passed\n");
    return failures ? 1 : 0;
}
