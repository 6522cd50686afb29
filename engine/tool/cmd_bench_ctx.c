/* cmd_bench_ctx: the long-context part of `stepmark-engine bench` (--depths): decode speed at
 * given context depths and batch sizes, with the KV cache's memory and the bytes per second the
 * decode step reads (weights + KV cache) next to the measured memory-bandwidth limit.
 * The contexts are synthetic: every sequence's cache is filled with seeded pseudo-random values
 * (sm_seq_fill_synthetic) instead of running a prompt, since a decode step's speed depends on
 * the cache's size, not its content, and a 16k-token prompt per sequence would take minutes on
 * a small machine. Each figure is the median over --decode-tokens steps. */
#include "cmd_bench_ctx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_timing.h"
#include "sm_membw.h"

int sm_bench_parse_list(const char *s, int64_t lo, int64_t hi, int64_t *out, int cap)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < lo || v > hi || n == cap || (*end != ',' && *end != '\0'))
            return -1;
        out[n++] = v;
        p = *end == ',' ? end + 1 : end;
        if (*end == ',' && *p == '\0')
            return -1;
    }
    return n;
}

/* seeded ids in [0, vocab) (xorshift) */
static int32_t next_id(uint64_t *st, int64_t vocab)
{
    *st ^= *st << 13;
    *st ^= *st >> 7;
    *st ^= *st << 17;
    return (int32_t)(*st % (uint64_t)vocab);
}

/* Median seconds of one decode step of batch sequences at context depth. */
static sm_code ctx_point(sm_model *m, const sm_bench_ctx_args *a, int64_t depth, int batch,
                         double *step_s, sm_err *err)
{
    int64_t vocab = sm_model_info(m)->config.vocab;
    sm_seq **seqs = calloc((size_t)batch, sizeof *seqs);
    int32_t *ids = calloc((size_t)batch, sizeof *ids);
    const int32_t **toks = calloc((size_t)batch, sizeof *toks);
    int64_t *ntok = calloc((size_t)batch, sizeof *ntok);
    float *logits = malloc(sizeof(float) * (size_t)vocab * (size_t)batch);
    double *times = calloc((size_t)a->decode_tokens, sizeof *times);
    sm_code rc = SM_OK;
    if (!seqs || !ids || !toks || !ntok || !logits || !times)
        rc = sm_err_set(err, SM_ENOMEM, "bench: out of memory");
    for (int b = 0; b < batch && rc == SM_OK; b++) {
        rc = sm_seq_new(m, depth + a->decode_tokens + 1, &seqs[b], err);
        if (rc == SM_OK)
            rc = sm_seq_fill_synthetic(seqs[b], depth, 0x9e3779b97f4a7c15ull + (uint64_t)b, err);
        toks[b] = &ids[b];
        ntok[b] = 1;
    }
    uint64_t st = 0x2545f4914f6cdd1dull + (uint64_t)depth;
    for (int64_t s = 0; s < a->decode_tokens && rc == SM_OK; s++) {
        for (int b = 0; b < batch; b++)
            ids[b] = next_id(&st, vocab);
        double t0 = sm_cmd_now_s();
        rc = sm_model_forward(m, seqs, toks, ntok, batch, logits, err);
        times[s] = sm_cmd_now_s() - t0;
    }
    if (rc == SM_OK)
        *step_s = sm_cmd_median(times, (int)a->decode_tokens);
    for (int b = 0; seqs && b < batch; b++)
        sm_seq_free(&seqs[b]);
    free(seqs);
    free(ids);
    free((void *)toks);
    free(ntok);
    free(logits);
    free(times);
    return rc;
}

sm_code sm_bench_ctx_run(sm_model *m, const sm_bench_ctx_args *a, sm_pool *bw_pool, json_t **out,
                         sm_err *err)
{
    const sm_model_summary *s = sm_model_info(m);
    *out = NULL;
    for (int i = 0; i < a->n_depths; i++)
        if (a->depths[i] + a->decode_tokens + 1 > s->config.max_pos)
            return sm_err_set(err, SM_ELIMIT, "depth %lld: the model has %lld positions",
                              (long long)a->depths[i], (long long)s->config.max_pos);
    sm_membw_result bw = {0};
    sm_code rc = sm_membw_measure(bw_pool, 0, 2, &bw, err);
    if (rc != SM_OK)
        return rc;
    json_t *rows = json_array();
    for (int i = 0; i < a->n_depths && rc == SM_OK; i++) {
        for (int j = 0; j < a->n_batches && rc == SM_OK; j++) {
            int64_t depth = a->depths[i];
            int batch = (int)a->batches[j];
            double step = 0;
            rc = ctx_point(m, a, depth, batch, &step, err);
            if (rc != SM_OK)
                break;
            /* each step reads the weights once and every sequence's cache up to its length
             * (the median step is in the middle of the run) */
            double kv_pos = (double)depth + (double)a->decode_tokens / 2.0;
            double kv_read = (double)batch * kv_pos * (double)s->kv_bytes_per_token;
            double total = kv_read + (double)s->bytes_per_token;
            double kv_mb = (double)batch * (double)(depth + a->decode_tokens + 1) *
                           (double)s->kv_bytes_per_token / 1048576.0;
            json_t *r = json_object();
            json_object_set_new(r, "depth", json_integer(depth));
            json_object_set_new(r, "batch", json_integer(batch));
            json_object_set_new(r, "tps", json_real((double)batch / step));
            json_object_set_new(r, "step_ms", json_real(step * 1e3));
            json_object_set_new(r, "kv_mb", json_real(kv_mb));
            json_object_set_new(r, "kv_read_gbs", json_real(kv_read / step / 1e9));
            json_object_set_new(r, "read_gbs", json_real(total / step / 1e9));
            json_object_set_new(r, "bandwidth_fraction", json_real(total / step / 1e9 / bw.gbs));
            json_array_append_new(rows, r);
        }
    }
    if (rc != SM_OK) {
        json_decref(rows);
        return rc;
    }
    char method[160];
    sm_membw_method_str(&bw.method, method, sizeof method);
    json_t *o = json_object();
    json_object_set_new(o, "kv_dtype", json_string(sm_dtype_name(s->kv_dtype)));
    json_object_set_new(o, "kv_bytes_per_token", json_integer((json_int_t)s->kv_bytes_per_token));
    json_object_set_new(o, "bytes_per_token", json_integer((json_int_t)s->bytes_per_token));
    json_object_set_new(o, "bandwidth_gbs", json_real(bw.gbs));
    json_object_set_new(o, "bandwidth_method", json_string(method));
    json_object_set_new(o, "decode_tokens", json_integer(a->decode_tokens));
    json_object_set_new(o, "context", json_string("synthetic (seeded random KV values)"));
    json_object_set_new(o, "points", rows);
    *out = o;
    return SM_OK;
}

void sm_bench_ctx_print(const char *path, const sm_model_summary *s, const json_t *o)
{
    printf("model:  %s (%s weights, %s KV cache %.1f KiB per position, %s kernels, %d threads, "
           "%s)\n",
           path, sm_dtype_name(s->weight_dtype), sm_dtype_name(s->kv_dtype),
           (double)s->kv_bytes_per_token / 1024.0, sm_isa_name(s->isa), s->threads,
           s->deterministic ? "deterministic" : "fast");
    printf("bandwidth limit: %.2f GB/s (%s)\n",
           json_real_value(json_object_get(o, "bandwidth_gbs")),
           json_string_value(json_object_get(o, "bandwidth_method")));
    printf("%8s %6s %12s %10s %10s %12s %12s %9s\n", "depth", "batch", "tokens/s", "step ms",
           "KV MiB", "KV GB/s", "read GB/s", "of limit");
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(o, "points"), i, r)
    {
        printf("%8lld %6lld %12.2f %10.2f %10.1f %12.2f %12.2f %8.0f%%\n",
               (long long)json_integer_value(json_object_get(r, "depth")),
               (long long)json_integer_value(json_object_get(r, "batch")),
               json_real_value(json_object_get(r, "tps")),
               json_real_value(json_object_get(r, "step_ms")),
               json_real_value(json_object_get(r, "kv_mb")),
               json_real_value(json_object_get(r, "kv_read_gbs")),
               json_real_value(json_object_get(r, "read_gbs")),
               100 * json_real_value(json_object_get(r, "bandwidth_fraction")));
    }
    printf("(synthetic contexts: each sequence's KV cache filled with seeded random values, no "
           "prompt run; medians over %lld decode steps; read = weights + KV cache per step)\n",
           (long long)json_integer_value(json_object_get(o, "decode_tokens")));
}
