/* stepmark-cuda-bench: decode speed of the CUDA backend on a model with random weights made on
 * the GPU (any Qwen2 shape; default VibeThinker-1.5B's), for scripts/gpu-check:
 *   stepmark-cuda-bench bandwidth              device read and copy bandwidth (GB/s)
 *   stepmark-cuda-bench decode --batch B --prompt P --gen G [--ctx C] [--fast] [--det]
 * decode: B sequences each get a P-token prompt (or a synthetic C-position context), then G
 * decode steps of all B at once with greedy sampling on the GPU; prints prompt and decode
 * tokens/s and, for B = 1, the fraction of the bandwidth limit (weight bytes per step over the
 * step time, against the measured read bandwidth). Exits 77 without a CUDA device. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sm_cuda.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static sm_model_config shape_1p5b(void)
{
    sm_model_config c = {.hidden = 1536,
                         .n_layers = 28,
                         .n_heads = 12,
                         .n_kv_heads = 2,
                         .head_dim = 128,
                         .intermediate = 8960,
                         .vocab = 151936,
                         .max_pos = 131072,
                         .rope_theta = 1e6,
                         .rms_eps = 1e-6,
                         .tied = true,
                         .bos_id = -1};
    return c;
}

typedef struct args {
    int batch, prompt, gen;
    int64_t ctx;
    bool fast;
} args;

static int die(const sm_err *e)
{
    fprintf(stderr, "cuda-bench: %s\n", e->msg);
    return 1;
}

static int decode(const args *a)
{
    sm_err e = {0};
    sm_cuda_opts o;
    sm_cuda_opts_init(&o);
    o.fast = a->fast;
    sm_model_config c = shape_1p5b();
    sm_cuda_model *m = NULL;
    if (sm_cuda_model_random(&c, &o, 42, &m, &e))
        return die(&e);
    int B = a->batch;
    sm_cuda_seq **s = calloc((size_t)B, sizeof(*s));
    int32_t *toks = calloc((size_t)B * (size_t)(a->prompt > 1 ? a->prompt : 1), sizeof(int32_t));
    const int32_t **tp = calloc((size_t)B, sizeof(*tp));
    int64_t *n = calloc((size_t)B, sizeof(int64_t));
    int32_t *next = calloc((size_t)B, sizeof(int32_t));
    int rc = 0;
    for (int i = 0; i < B && !rc; i++) {
        int64_t need = (a->ctx > 0 ? a->ctx : a->prompt) + a->gen + 1;
        if (sm_cuda_seq_new(m, need, &s[i], &e))
            rc = die(&e);
        for (int t = 0; t < a->prompt; t++)
            toks[(size_t)i * (size_t)a->prompt + (size_t)t] = (int32_t)((i * 131 + t * 7) % 151000);
        tp[i] = toks + (size_t)i * (size_t)a->prompt;
        n[i] = a->prompt;
        if (!rc && a->ctx > 0 && sm_cuda_seq_fill_synthetic(s[i], a->ctx, (uint64_t)i, &e))
            rc = die(&e);
    }
    double t0 = now(), t1 = t0, step_s = 1;
    size_t step_bytes = sm_cuda_step_bytes(m);
    if (!rc && a->ctx <= 0) {
        /* prompts in groups whose rows stay near 16k per step */
        int per = a->prompt > 0 ? 16384 / a->prompt : B;
        per = per < 1 ? 1 : per;
        for (int i = 0; i < B && !rc; i += per) {
            int k = B - i < per ? B - i : per;
            if (sm_cuda_forward(m, s + i, tp + i, n + i, k, NULL, &e))
                rc = die(&e);
        }
        t1 = now();
    }
    for (int i = 0; i < B; i++) {
        n[i] = 1;
        tp[i] = &next[i];
    }
    if (!rc && sm_cuda_forward(m, s, tp, n, B, NULL, &e)) /* the first decode step's logits */
        rc = die(&e);
    double t2 = now();
    for (int g = 0; g < a->gen && !rc; g++) {
        if (sm_cuda_sample(m, B, 0.0, NULL, NULL, next, &e) ||
            sm_cuda_forward(m, s, tp, n, B, NULL, &e))
            rc = die(&e);
    }
    double t3 = now();
    if (!rc) {
        double step = (t3 - t2) / a->gen;
        printf("batch %d prompt %d ctx %lld gen %d (%s): prompt %.0f tok/s, decode %.1f tok/s "
               "aggregate, %.2f ms/step, weights %.2f GB per step\n",
               B, a->prompt, (long long)a->ctx, a->gen, a->fast ? "fast" : "deterministic",
               a->ctx <= 0 && t1 > t0 ? (double)B * a->prompt / (t1 - t0) : 0.0, (double)B / step,
               step * 1e3, (double)sm_cuda_step_bytes(m) / 1e9);
        step_s = step;
    }
    for (int i = 0; i < B; i++)
        sm_cuda_seq_free(&s[i]);
    sm_cuda_model_free(&m);
    free(s);
    free(toks);
    free(tp);
    free(n);
    free(next);
    /* after the model (and its KV pool) is freed: the probe needs room for two buffers */
    if (!rc && B == 1) {
        double rd = 0, cp = 0;
        if (sm_cuda_measure_bandwidth(0, (size_t)1 << 31, &rd, &cp, &e))
            return die(&e);
        printf("bandwidth: read %.0f GB/s, copy %.0f GB/s; batch-1 decode reads %.0f GB/s of "
               "weights = %.1f%% of the read limit\n",
               rd, cp, (double)step_bytes / step_s / 1e9,
               100.0 * (double)step_bytes / step_s / 1e9 / rd);
    }
    return rc;
}

int main(int argc, char **argv)
{
    char why[256], info[256];
    if (!sm_cuda_available(why, sizeof(why))) {
        printf("SKIP: %s\n", why);
        return SM_CUDA_SKIP;
    }
    sm_cuda_describe(0, info, sizeof(info));
    printf("device: %s\n", info);
    if (argc >= 2 && strcmp(argv[1], "bandwidth") == 0) {
        sm_err e = {0};
        double rd = 0, cp = 0;
        if (sm_cuda_measure_bandwidth(0, (size_t)1 << 31, &rd, &cp, &e))
            return die(&e);
        printf("bandwidth: read %.0f GB/s, copy %.0f GB/s\n", rd, cp);
        return 0;
    }
    args a = {.batch = 1, .prompt = 16, .gen = 64};
    if (argc < 2 || strcmp(argv[1], "decode") != 0) {
        fprintf(stderr,
                "usage: %s bandwidth | decode [--batch B] [--prompt P] [--gen G] "
                "[--ctx C] [--fast]\n",
                argv[0]);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : "0";
        if (!strcmp(argv[i], "--batch"))
            a.batch = atoi(v), i++;
        else if (!strcmp(argv[i], "--prompt"))
            a.prompt = atoi(v), i++;
        else if (!strcmp(argv[i], "--gen"))
            a.gen = atoi(v), i++;
        else if (!strcmp(argv[i], "--ctx"))
            a.ctx = atoll(v), i++;
        else if (!strcmp(argv[i], "--fast"))
            a.fast = true;
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (a.batch < 1 || a.batch > SM_CUDA_MAX_BATCH || a.gen < 1 || a.prompt < 1) {
        fprintf(stderr, "batch 1..%d, gen >= 1, prompt >= 1\n", SM_CUDA_MAX_BATCH);
        return 2;
    }
    return decode(&a);
}
