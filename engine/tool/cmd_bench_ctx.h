/* cmd_bench_ctx: `stepmark-engine bench --depths ...`: decode at long contexts (see the .c). */
#ifndef SM_CMD_BENCH_CTX_H
#define SM_CMD_BENCH_CTX_H

#include <stdint.h>

#include <jansson.h>

#include "sm_model.h"
#include "sm_pool.h"

#define SM_BENCH_MAX_POINTS 16

typedef struct sm_bench_ctx_args {
    int64_t depths[SM_BENCH_MAX_POINTS];
    int n_depths;
    int64_t batches[SM_BENCH_MAX_POINTS];
    int n_batches;
    int64_t decode_tokens;
} sm_bench_ctx_args;

/* Parses a comma-separated list of at most cap integers in [lo, hi] into out; returns the
 * count, or -1 when malformed. */
int sm_bench_parse_list(const char *s, int64_t lo, int64_t hi, int64_t *out, int cap);

/* Measures the bandwidth limit with bw_pool, then decode at every depth and batch size; *out:
 * {kv_dtype, kv_bytes_per_token, bytes_per_token, bandwidth_gbs, bandwidth_method,
 * decode_tokens, context, points: [{depth, batch, tps, step_ms, kv_mb, kv_read_gbs, read_gbs,
 * bandwidth_fraction}]}. */
sm_code sm_bench_ctx_run(sm_model *m, const sm_bench_ctx_args *a, sm_pool *bw_pool, json_t **out,
                         sm_err *err);

/* Prints *o (from sm_bench_ctx_run) as a table. */
void sm_bench_ctx_print(const char *path, const sm_model_summary *s, const json_t *o);

#endif
