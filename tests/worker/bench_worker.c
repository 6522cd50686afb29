/* stepmark-worker-bench: how fast the worker's generation path grades a queue of submissions.
 * It builds N grading prompts for one proof assignment with the real prompt template (so all
 * share the system prompt + assignment prefix), queues them all, and runs the worker's
 * scheduler (continuous batching over S slots, prefix cache on or off) until every one has
 * generated --max-new tokens (or stopped earlier at EOS). For every (slots, cache) pair, in
 * one run, it prints wall time, generated tokens/s (all work included: prompts and decoding),
 * submissions/hour, the prompt tokens computed or taken from the cache, and the tokens/s of
 * the pure decoding steps (every busy slot generating, none reading a prompt), then the
 * ratios to the first slot count.
 *   stepmark-worker-bench --model DIR [--submissions 64] [--max-new 32] [--slots 1,4,16]
 *       [--cache off,on] [--dtype bf16] [--threads N] [--fast]
 * Weights may be random (tests/engine/make_model.py): speed depends only on the shape. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_grade.h"
#include "sm_prompt.h"
#include "sm_sched.h"

typedef struct counts {
    int done;
    int64_t tokens;
} counts;

static sm_code on_done(void *user, sm_task *t, sm_err *err)
{
    (void)err;
    counts *c = user;
    c->done++;
    c->tokens += sm_task_total_tokens(t);
    return SM_OK;
}

static int parse_list(const char *s, int *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1024)
            return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

typedef struct bench_cfg {
    const char *model_dir, *slots_arg, *cache_arg, *dtype;
    int n_sub, threads;
    int64_t max_new;
    bool fast;
    int slots[16], n_slots;
    bool cache_modes[2];
    int n_cache;
} bench_cfg;

/* One (slots, cache) run: tokens/s with everything, and of the pure decoding steps. */
typedef struct bench_run {
    double tps, decode_tps;
} bench_run;

static int usage(void)
{
    fprintf(stderr, "usage: stepmark-worker-bench --model DIR [--submissions 64] "
                    "[--max-new 32] [--slots 1,4,16] [--cache off,on] [--dtype T] "
                    "[--threads N] [--fast]\n");
    return 2;
}

/* 0, or the exit code of a bad command line (said on stderr). */
static int parse_args(int argc, char **argv, bench_cfg *cfg)
{
    *cfg = (bench_cfg){.slots_arg = "1,4,16", .cache_arg = "off,on", .n_sub = 64, .max_new = 32};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--fast")) {
            cfg->fast = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "stepmark-worker-bench: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--model"))
            cfg->model_dir = v;
        else if (!strcmp(a, "--submissions"))
            cfg->n_sub = atoi(v);
        else if (!strcmp(a, "--max-new"))
            cfg->max_new = atoll(v);
        else if (!strcmp(a, "--slots"))
            cfg->slots_arg = v;
        else if (!strcmp(a, "--cache"))
            cfg->cache_arg = v;
        else if (!strcmp(a, "--dtype"))
            cfg->dtype = v;
        else if (!strcmp(a, "--threads"))
            cfg->threads = atoi(v);
        else {
            fprintf(stderr, "stepmark-worker-bench: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    cfg->n_slots = parse_list(cfg->slots_arg, cfg->slots, 16);
    if (strstr(cfg->cache_arg, "off"))
        cfg->cache_modes[cfg->n_cache++] = false;
    if (strstr(cfg->cache_arg, "on"))
        cfg->cache_modes[cfg->n_cache++] = true;
    if (!cfg->model_dir || cfg->n_sub < 1 || cfg->max_new < 1 || cfg->n_slots < 1 ||
        cfg->n_cache < 1)
        return usage();
    return 0;
}

/* n grading prompts of one proof assignment, with different student answers. */
static sm_code build_prompts(const sm_prompt_set *ps, const sm_tokenizer *tok, sm_prompt *pr, int n,
                             sm_err *err)
{
    for (int i = 0; i < n; i++) {
        char student[512];
        snprintf(student, sizeof student,
                 "Let n = 2k + 1 for an integer k (student %d).\nThen n^2 = 4k^2 + 4k + 1 = "
                 "2(2k^2 + 2k) + 1.\nSince 2k^2 + 2k is an integer, n^2 is odd. (%d)",
                 i, i * 37 % 101);
        sm_prompt_input in = {.kind = SM_KIND_PROOF,
                              .title = "Odd squares",
                              .statement = "Prove that the square of an odd integer is odd.",
                              .rubric = "2 points: write n = 2k + 1. 1 point: expand. 1 point: "
                                        "conclude.",
                              .max_score = 4,
                              .checks = "",
                              .student = student};
        sm_code rc = sm_prompt_build(ps, tok, &in, &pr[i], err);
        if (rc != SM_OK)
            return rc;
    }
    return SM_OK;
}

/* Grades every prompt with the scheduler at slots slots, printing the run's line. */
static sm_code run_one(const bench_cfg *cfg, sm_model *m, sm_tokenizer *tok, const sm_prompt *pr,
                       size_t max_prompt, int slots, bool cache, bench_run *out, sm_err *err)
{
    sm_sched_opts so = {
        .slots = slots, .max_ctx = (int64_t)max_prompt + cfg->max_new + 8, .prefix_cache = cache};
    sm_sched *s;
    counts c = {0};
    sm_code rc = sm_sched_new(m, tok, &so, on_done, &s, err);
    if (rc != SM_OK)
        return rc;
    for (int i = 0; i < cfg->n_sub && rc == SM_OK; i++) {
        sm_task_spec t = {.user = &c,
                          .tag = i,
                          .prompt = pr[i].ids,
                          .n_prompt = pr[i].n_ids,
                          .n_prefix = pr[i].n_prefix,
                          .max_new = cfg->max_new};
        sm_sampler_params_init(&t.sampling);
        t.sampling.temperature = 0.6;
        t.sampling.top_p = 0.95;
        t.sampling.seed = 1000 + (uint64_t)i;
        rc = sm_sched_submit(s, &t, err);
    }
    int64_t t0 = sm_mono_ms();
    bool prog;
    while (rc == SM_OK && c.done < cfg->n_sub)
        rc = sm_sched_step(s, &prog, err);
    if (rc == SM_OK) {
        double wall = (double)(sm_mono_ms() - t0) / 1000.0;
        sm_sched_stats st;
        sm_sched_get_stats(s, &st);
        out->tps = (double)c.tokens / wall;
        out->decode_tps = st.decode_us ? (double)st.decode_tokens * 1e6 / (double)st.decode_us : 0;
        printf("%5d %6s %9.1f %10lld %9.2f %12.0f %11lld %10lld %12.2f\n", slots,
               cache ? "on" : "off", wall, (long long)c.tokens, out->tps,
               (double)cfg->n_sub / wall * 3600.0, (long long)st.prompt_tokens,
               (long long)st.cached_tokens, out->decode_tps);
        fflush(stdout);
    }
    sm_sched_free(&s);
    return rc;
}

static void print_ratios(const bench_cfg *cfg, bench_run runs[2][16])
{
    printf("\ntokens/s relative to %d slot%s (target: 16 slots >= 5x of 1 slot):\n", cfg->slots[0],
           cfg->slots[0] == 1 ? "" : "s");
    for (int ci = 0; ci < cfg->n_cache; ci++) {
        printf("  cache %-3s", cfg->cache_modes[ci] ? "on" : "off");
        for (int si = 0; si < cfg->n_slots; si++)
            printf("  %d slots: %.2fx", cfg->slots[si], runs[ci][si].tps / runs[ci][0].tps);
        printf("\n  decoding only");
        for (int si = 0; si < cfg->n_slots; si++)
            printf("  %d slots: %.2fx", cfg->slots[si],
                   runs[ci][0].decode_tps > 0 ? runs[ci][si].decode_tps / runs[ci][0].decode_tps
                                              : 0.0);
        printf("\n");
    }
    if (cfg->n_cache == 2)
        for (int si = 0; si < cfg->n_slots; si++)
            printf("prefix cache on/off at %d slots: %.2fx tokens/s\n", cfg->slots[si],
                   runs[1][si].tps / runs[0][si].tps);
}

int main(int argc, char **argv)
{
    bench_cfg cfg;
    int prc = parse_args(argc, argv, &cfg);
    if (prc)
        return prc;
    sm_err err;
    sm_model_opts mo;
    sm_model_opts_init(&mo);
    mo.threads = cfg.threads;
    mo.fast = cfg.fast;
    if (cfg.dtype) {
        if (sm_dtype_parse(cfg.dtype, &mo.dtype, &err)) {
            fprintf(stderr, "stepmark-worker-bench: %s\n", err.msg);
            return 2;
        }
        mo.dtype_set = true;
    }
    sm_model *m = NULL;
    sm_tokenizer *tok = NULL;
    sm_prompt_set *ps = NULL;
    sm_prompt *pr = calloc((size_t)cfg.n_sub, sizeof *pr);
    int rc = 0;
    if (!pr || sm_model_load(cfg.model_dir, &mo, &m, &err) ||
        sm_tokenizer_load(sm_model_dir(m), &tok, &err) || sm_prompt_set_load(NULL, &ps, &err) ||
        build_prompts(ps, tok, pr, cfg.n_sub, &err)) {
        fprintf(stderr, "stepmark-worker-bench: %s\n", pr ? err.msg : "out of memory");
        rc = 1;
    }
    size_t max_prompt = 0, total_prompt = 0;
    for (int i = 0; i < cfg.n_sub && rc == 0; i++) {
        if (pr[i].n_ids > max_prompt)
            max_prompt = pr[i].n_ids;
        total_prompt += pr[i].n_ids;
    }
    if (rc == 0) {
        const sm_model_summary *info = sm_model_info(m);
        printf("stepmark-worker-bench: model %s (%lld params, %s, %d threads, %s)\n", cfg.model_dir,
               (long long)info->n_params, sm_dtype_name(info->weight_dtype), info->threads,
               info->deterministic ? "deterministic" : "fast");
        printf("%d submissions, prompts of %zu tokens on average (%zu shared prefix), %lld new "
               "tokens each, temperature 0.6, top-p 0.95\n\n",
               cfg.n_sub, total_prompt / (size_t)cfg.n_sub, pr[0].n_prefix, (long long)cfg.max_new);
        printf("%5s %6s %9s %10s %9s %12s %11s %10s %12s\n", "slots", "cache", "wall_s",
               "gen_tokens", "tok/s", "subm/hour", "prompt_comp", "prompt_hit", "decode_tok/s");
    }
    bench_run runs[2][16] = {{{0}}};
    for (int ci = 0; ci < cfg.n_cache && rc == 0; ci++)
        for (int si = 0; si < cfg.n_slots && rc == 0; si++)
            if (run_one(&cfg, m, tok, pr, max_prompt, cfg.slots[si], cfg.cache_modes[ci],
                        &runs[ci][si], &err)) {
                fprintf(stderr, "stepmark-worker-bench: %s\n", err.msg);
                rc = 1;
            }
    if (rc == 0)
        print_ratios(&cfg, runs);
    for (int i = 0; pr && i < cfg.n_sub; i++)
        sm_prompt_clear(&pr[i]);
    free(pr);
    sm_prompt_set_free(&ps);
    sm_tokenizer_free(&tok);
    sm_model_free(&m);
    return rc;
}
