/* cmd_bench_cuda: `stepmark-engine bench --model PATH --device cuda`: prompt processing (one
 * sequence, --prompt-tokens in one forward step) and decoding at batch 1, 4 and 16 (each
 * sequence first reads --decode-ctx seeded ids, then --decode-tokens steps with greedy
 * sampling on the GPU) on the CUDA backend, loaded through the plugin; the decode rate at batch
 * 1 is set against the device's measured read bandwidth (weight bytes per step / step time).
 * Every figure is the median of --repeats runs. */
#include "cmd_bench_cuda.h"

#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "cmd_timing.h"
#include "sm_cuda_plugin.h"

#define NB 3
static const int batches[NB] = {1, 4, 16};

typedef struct cu_bench {
    const sm_cuda_api *api;
    sm_cuda_model *m;
    const sm_bench_cuda_args *a;
    uint64_t state;
} cu_bench;

static void fill_ids(int32_t *ids, int64_t n, int64_t vocab, uint64_t *state)
{
    for (int64_t i = 0; i < n; i++) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        ids[i] = (int32_t)(*state % (uint64_t)vocab);
    }
}

/* Seconds of one prompt of a->prompt_tokens ids in a new sequence. */
static sm_code prompt_once(cu_bench *b, int32_t *ids, double *secs, sm_err *err)
{
    const sm_cuda_api *api = b->api;
    int64_t n = b->a->prompt_tokens;
    fill_ids(ids, n, api->model_config(b->m)->vocab, &b->state);
    sm_cuda_seq *s = NULL;
    const int32_t *t = ids;
    sm_code rc = api->seq_new(b->m, n + 1, &s, err);
    double t0 = sm_cmd_now_s();
    if (!rc)
        rc = api->forward(b->m, &s, &t, &n, 1, NULL, err);
    if (!rc)
        rc = api->sync(b->m, err);
    *secs = sm_cmd_now_s() - t0;
    api->seq_free(&s);
    return rc;
}

/* Seconds per decode step of batch sequences (after reading decode_ctx ids each). */
static sm_code decode_once(cu_bench *b, int batch, int32_t *ids, double *secs, sm_err *err)
{
    const sm_cuda_api *api = b->api;
    const sm_bench_cuda_args *a = b->a;
    sm_cuda_seq *s[16] = {0};
    const int32_t *t[16];
    int64_t n[16];
    uint64_t seeds[16] = {0}, counters[16] = {0};
    int32_t next[16];
    sm_code rc = SM_OK;
    int64_t vocab = api->model_config(b->m)->vocab;
    for (int i = 0; i < batch && !rc; i++) {
        fill_ids(ids + i * a->decode_ctx, a->decode_ctx, vocab, &b->state);
        t[i] = ids + i * a->decode_ctx;
        n[i] = a->decode_ctx;
        rc = api->seq_new(b->m, a->decode_ctx + a->decode_tokens + 1, &s[i], err);
    }
    if (!rc)
        rc = api->forward(b->m, s, t, n, batch, NULL, err);
    if (!rc)
        rc = api->sample(b->m, batch, 0, seeds, counters, next, err);
    double t0 = sm_cmd_now_s();
    for (int64_t k = 0; k < a->decode_tokens && !rc; k++) {
        for (int i = 0; i < batch; i++) {
            t[i] = &next[i];
            n[i] = 1;
        }
        rc = api->forward(b->m, s, t, n, batch, NULL, err);
        if (!rc)
            rc = api->sample(b->m, batch, 0, seeds, counters, next, err);
    }
    *secs = (sm_cmd_now_s() - t0) / (double)a->decode_tokens;
    for (int i = 0; i < batch; i++)
        api->seq_free(&s[i]);
    return rc;
}

/* The medians: prompt seconds, and seconds per decode step at each batch size. */
static sm_code measure(cu_bench *b, double *prompt_s, double *step_s, sm_err *err)
{
    const sm_bench_cuda_args *a = b->a;
    int64_t need = a->prompt_tokens > 16 * a->decode_ctx ? a->prompt_tokens : 16 * a->decode_ctx;
    int32_t *ids = malloc((size_t)need * sizeof *ids);
    double *v = malloc((size_t)a->repeats * sizeof *v);
    sm_code rc = ids && v ? SM_OK : sm_err_set(err, SM_ENOMEM, "out of memory");
    for (int r = 0; r < a->repeats && !rc; r++)
        rc = prompt_once(b, ids, &v[r], err);
    if (!rc)
        *prompt_s = sm_cmd_median(v, a->repeats);
    for (int k = 0; k < NB && !rc; k++) {
        for (int r = 0; r < a->repeats && !rc; r++)
            rc = decode_once(b, batches[k], ids, &v[r], err);
        if (!rc)
            step_s[k] = sm_cmd_median(v, a->repeats);
    }
    free(ids);
    free(v);
    return rc;
}

static void report(const cu_bench *b, const char *dev, double read_gbs, double prompt_s,
                   const double *step_s)
{
    const sm_bench_cuda_args *a = b->a;
    double step_gb = (double)b->api->step_bytes(b->m) / 1e9;
    double limit = read_gbs > 0 ? read_gbs / step_gb : 0;
    if (a->json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:f, s:f, s:f}", "device", "cuda", "gpu", dev,
                              "mode", a->fast ? "fast" : "deterministic", "prompt_tokens",
                              (json_int_t)a->prompt_tokens, "prompt_tok_s",
                              (double)a->prompt_tokens / prompt_s, "bandwidth_gbs", read_gbs,
                              "decode_limit_tok_s", limit);
        json_t *d = json_object();
        for (int k = 0; k < NB; k++) {
            char key[16];
            snprintf(key, sizeof key, "%d", batches[k]);
            json_object_set_new(d, key, json_real((double)batches[k] / step_s[k]));
        }
        json_object_set_new(o, "decode_tok_s", d);
        char *txt = json_dumps(o, JSON_INDENT(2));
        printf("%s\n", txt ? txt : "{}");
        free(txt);
        json_decref(o);
        return;
    }
    printf("device    cuda: %s (%s mode)\n", dev, a->fast ? "fast" : "deterministic");
    printf("prompt    %lld tokens: %.1f tok/s\n", (long long)a->prompt_tokens,
           (double)a->prompt_tokens / prompt_s);
    for (int k = 0; k < NB; k++)
        printf("decode    batch %2d: %.1f tok/s\n", batches[k], (double)batches[k] / step_s[k]);
    printf("bandwidth %.0f GB/s read; batch 1 limit %.1f tok/s (%.2f GB per step): %.0f%%\n",
           read_gbs, limit, step_gb, limit > 0 ? 100.0 / step_s[0] / limit : 0);
}

int sm_cmd_bench_cuda(const sm_bench_cuda_args *a)
{
    sm_err err = {0};
    cu_bench b = {.a = a, .state = 0x9E3779B97F4A7C15ull};
    if (sm_cuda_plugin_open(NULL, &b.api, &err) != SM_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    sm_cuda_opts o;
    b.api->opts_init(&o);
    o.fast = a->fast;
    double prompt_s = 0, step_s[NB] = {0}, read_gbs = 0, copy_gbs = 0;
    sm_code rc = b.api->model_load(a->path, &o, &b.m, &err);
    if (!rc)
        rc = b.api->measure_bandwidth(o.device, (size_t)1 << 30, &read_gbs, &copy_gbs, &err);
    if (!rc)
        rc = measure(&b, &prompt_s, step_s, &err);
    if (rc) {
        fprintf(stderr, "bench: %s\n", err.msg);
        b.api->model_free(&b.m);
        return 1;
    }
    char dev[256];
    b.api->describe(o.device, dev, sizeof dev);
    report(&b, dev, read_gbs, prompt_s, step_s);
    b.api->model_free(&b.m);
    return 0;
}
