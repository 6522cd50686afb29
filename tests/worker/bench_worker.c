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

int main(int argc, char **argv)
{
    const char *model_dir = NULL, *slots_arg = "1,4,16", *cache_arg = "off,on", *dtype = NULL;
    int n_sub = 64, threads = 0;
    int64_t max_new = 32;
    bool fast = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--fast")) {
            fast = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "stepmark-worker-bench: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--model"))
            model_dir = v;
        else if (!strcmp(a, "--submissions"))
            n_sub = atoi(v);
        else if (!strcmp(a, "--max-new"))
            max_new = atoll(v);
        else if (!strcmp(a, "--slots"))
            slots_arg = v;
        else if (!strcmp(a, "--cache"))
            cache_arg = v;
        else if (!strcmp(a, "--dtype"))
            dtype = v;
        else if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else {
            fprintf(stderr, "stepmark-worker-bench: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    int slots[16];
    int n_slots = parse_list(slots_arg, slots, 16);
    bool cache_modes[2];
    int n_cache = 0;
    if (strstr(cache_arg, "off"))
        cache_modes[n_cache++] = false;
    if (strstr(cache_arg, "on"))
        cache_modes[n_cache++] = true;
    if (!model_dir || n_sub < 1 || max_new < 1 || n_slots < 1 || n_cache < 1) {
        fprintf(stderr, "usage: stepmark-worker-bench --model DIR [--submissions 64] "
                        "[--max-new 32] [--slots 1,4,16] [--cache off,on] [--dtype T] "
                        "[--threads N] [--fast]\n");
        return 2;
    }
    sm_err err;
    sm_model_opts mo;
    sm_model_opts_init(&mo);
    mo.threads = threads;
    mo.fast = fast;
    if (dtype) {
        if (sm_dtype_parse(dtype, &mo.dtype, &err)) {
            fprintf(stderr, "stepmark-worker-bench: %s\n", err.msg);
            return 2;
        }
        mo.dtype_set = true;
    }
    sm_model *m = NULL;
    sm_tokenizer *tok = NULL;
    sm_prompt_set *ps = NULL;
    if (sm_model_load(model_dir, &mo, &m, &err) || sm_tokenizer_load(sm_model_dir(m), &tok, &err) ||
        sm_prompt_set_load(NULL, &ps, &err)) {
        fprintf(stderr, "stepmark-worker-bench: %s\n", err.msg);
        return 1;
    }
    const sm_model_summary *info = sm_model_info(m);
    /* N prompts of one assignment */
    sm_prompt *pr = calloc((size_t)n_sub, sizeof *pr);
    size_t max_prompt = 0, total_prompt = 0;
    for (int i = 0; i < n_sub; i++) {
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
        if (sm_prompt_build(ps, tok, &in, &pr[i], &err)) {
            fprintf(stderr, "stepmark-worker-bench: %s\n", err.msg);
            return 1;
        }
        if (pr[i].n_ids > max_prompt)
            max_prompt = pr[i].n_ids;
        total_prompt += pr[i].n_ids;
    }
    printf("stepmark-worker-bench: model %s (%lld params, %s, %d threads, %s)\n", model_dir,
           (long long)info->n_params, sm_dtype_name(info->weight_dtype), info->threads,
           info->deterministic ? "deterministic" : "fast");
    printf("%d submissions, prompts of %zu tokens on average (%zu shared prefix), %lld new "
           "tokens each, temperature 0.6, top-p 0.95\n\n",
           n_sub, total_prompt / (size_t)n_sub, pr[0].n_prefix, (long long)max_new);
    printf("%5s %6s %9s %10s %9s %12s %11s %10s %12s\n", "slots", "cache", "wall_s", "gen_tokens",
           "tok/s", "subm/hour", "prompt_comp", "prompt_hit", "decode_tok/s");
    double tps_of[2][16] = {{0}}, dec_of[2][16] = {{0}};
    for (int ci = 0; ci < n_cache; ci++) {
        for (int si = 0; si < n_slots; si++) {
            sm_sched_opts so = {.slots = slots[si],
                                .max_ctx = (int64_t)max_prompt + max_new + 8,
                                .prefix_cache = cache_modes[ci]};
            sm_sched *s;
            counts c = {0};
            if (sm_sched_new(m, tok, &so, on_done, &s, &err)) {
                fprintf(stderr, "stepmark-worker-bench: %s\n", err.msg);
                return 1;
            }
            for (int i = 0; i < n_sub; i++) {
                sm_task_spec t = {.user = &c,
                                  .tag = i,
                                  .prompt = pr[i].ids,
                                  .n_prompt = pr[i].n_ids,
                                  .n_prefix = pr[i].n_prefix,
                                  .max_new = max_new};
                sm_sampler_params_init(&t.sampling);
                t.sampling.temperature = 0.6;
                t.sampling.top_p = 0.95;
                t.sampling.seed = 1000 + (uint64_t)i;
                if (sm_sched_submit(s, &t, &err)) {
                    fprintf(stderr, "stepmark-worker-bench: %s\n", err.msg);
                    return 1;
                }
            }
            int64_t t0 = sm_mono_ms();
            bool prog;
            while (c.done < n_sub) {
                if (sm_sched_step(s, &prog, &err)) {
                    fprintf(stderr, "stepmark-worker-bench: %s\n", err.msg);
                    return 1;
                }
            }
            double wall = (double)(sm_mono_ms() - t0) / 1000.0;
            sm_sched_stats st;
            sm_sched_get_stats(s, &st);
            double tps = (double)c.tokens / wall;
            tps_of[ci][si] = tps;
            double dec = st.decode_us ? (double)st.decode_tokens * 1e6 / (double)st.decode_us : 0;
            dec_of[ci][si] = dec;
            printf("%5d %6s %9.1f %10lld %9.2f %12.0f %11lld %10lld %12.2f\n", slots[si],
                   cache_modes[ci] ? "on" : "off", wall, (long long)c.tokens, tps,
                   (double)n_sub / wall * 3600.0, (long long)st.prompt_tokens,
                   (long long)st.cached_tokens, dec);
            fflush(stdout);
            sm_sched_free(&s);
        }
    }
    printf("\ntokens/s relative to %d slot%s (target: 16 slots >= 5x of 1 slot):\n", slots[0],
           slots[0] == 1 ? "" : "s");
    for (int ci = 0; ci < n_cache; ci++) {
        printf("  cache %-3s", cache_modes[ci] ? "on" : "off");
        for (int si = 0; si < n_slots; si++)
            printf("  %d slots: %.2fx", slots[si], tps_of[ci][si] / tps_of[ci][0]);
        printf("\n  decoding only");
        for (int si = 0; si < n_slots; si++)
            printf("  %d slots: %.2fx", slots[si],
                   dec_of[ci][0] > 0 ? dec_of[ci][si] / dec_of[ci][0] : 0.0);
        printf("\n");
    }
    if (n_cache == 2)
        for (int si = 0; si < n_slots; si++)
            printf("prefix cache on/off at %d slots: %.2fx tokens/s\n", slots[si],
                   tps_of[1][si] / tps_of[0][si]);
    for (int i = 0; i < n_sub; i++)
        sm_prompt_clear(&pr[i]);
    free(pr);
    sm_prompt_set_free(&ps);
    sm_tokenizer_free(&tok);
    sm_model_free(&m);
    return 0;
}
