/* cmd_bench: `stepmark-engine bench --model PATH [options]` measures the engine on this
 * machine: prompt processing (one sequence, --prompt-tokens in one forward step) in tokens/s and
 * GFLOP/s next to the machine's measured peak for the weight type; decoding at batch 1, 4 and 16
 * (aggregate tokens/s) next to the memory-bandwidth limit (measured read bandwidth / weight
 * bytes read per step); peak memory; and the speed of the other kernel mode (fast vs
 * deterministic) for the same work. Every figure is the median of several runs. Token ids are
 * seeded pseudo-random ids, so the numbers do not depend on a tokenizer or on text.
 * With --depths, it measures decode at long contexts instead (cmd_bench_ctx.c); with --device
 * cuda, prompt and decode on the GPU through the CUDA plugin (cmd_bench_cuda.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <jansson.h>

#include "cmd_bench_ctx.h"
#include "cmd_bench_cuda.h"
#include "cmd_model_opts.h"
#include "cmd_timing.h"
#include "commands.h"
#include "sm_membw.h"
#include "sm_model.h"

typedef struct bench_args {
    const char *path;
    sm_model_opts opts;
    bool json;
    bool compare; /* also measure the other kernel mode */
    int64_t prompt_tokens;
    int64_t decode_tokens;
    int64_t decode_ctx; /* prompt length of each decoding sequence */
    int repeats;
    const sm_kctx *peak_kc; /* NULL, or: measure the machine's peak before each prompt */
    sm_dtype peak_dtype;
    sm_pool *bw_pool;      /* NULL, or: measure the bandwidth before each decode round */
    sm_bench_ctx_args ctx; /* n_depths > 0: the long-context mode */
    bool cuda;             /* --device cuda */
} bench_args;

typedef struct bench_result {
    double prefill_s;    /* median seconds for one prompt */
    double peak_gflops;  /* median of the peaks measured between the prompts (0: none) */
    double bw_gbs;       /* best bandwidth measured before and between decode rounds (0: none) */
    char bw_method[160]; /* the read method that gave it */
    size_t bw_bytes;     /* the size of the buffer it read */
    double rss_mb;       /* peak resident memory without the bandwidth test's buffer */
    double decode_s[3];  /* median seconds per step at batch 1, 4, 16 */
} bench_result;

static const int batches[3] = {1, 4, 16};

/* The bandwidth test's buffer: 0, sm_membw's default (1 GiB, or 8 times the last-level cache
 * where that is larger). */
#define SM_BENCH_BW_BYTES 0

/* seeded ids in [0, vocab) (xorshift) */
static void fill_ids(int32_t *ids, int64_t n, int64_t vocab, uint64_t *state)
{
    for (int64_t i = 0; i < n; i++) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        ids[i] = (int32_t)(*state % (uint64_t)vocab);
    }
}

/* Median seconds of a prompt of a->prompt_tokens tokens in one forward step of a new sequence.
 * With a->peak_kc, the machine's peak is measured just before each prompt and *peak is the
 * median of those: on a shared machine whose speed drifts, prompt and peak are then taken in
 * the same spells, and their ratio is fair. */
static sm_code bench_prefill(sm_model *m, const bench_args *a, double *out, double *peak,
                             sm_err *err)
{
    int64_t vocab = sm_model_info(m)->config.vocab;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)a->prompt_tokens);
    float *logits = malloc(sizeof(float) * (size_t)vocab);
    double *times = calloc((size_t)a->repeats, sizeof(double));
    double *peaks = calloc((size_t)a->repeats, sizeof(double));
    sm_code rc = SM_OK;
    *peak = 0;
    if (!ids || !logits || !times || !peaks) {
        rc = sm_err_set(err, SM_ENOMEM, "bench: out of memory");
        goto done;
    }
    uint64_t state = 0x9e3779b97f4a7c15ull;
    fill_ids(ids, a->prompt_tokens, vocab, &state);
    for (int r = 0; r < a->repeats && rc == SM_OK; r++) {
        sm_seq *seq = NULL;
        rc = sm_seq_new(m, a->prompt_tokens + 1, &seq, err);
        if (rc != SM_OK)
            break;
        const int32_t *toks = ids;
        if (a->peak_kc && sm_kernels_peak(a->peak_kc, a->peak_dtype, &peaks[r], err) != SM_OK)
            peaks[r] = 0; /* no peak: the timing stands, the ratio is left out */
        double t0 = sm_cmd_now_s();
        rc = sm_model_forward(m, &seq, &toks, &a->prompt_tokens, 1, logits, err);
        times[r] = sm_cmd_now_s() - t0;
        sm_seq_free(&seq);
    }
    if (rc == SM_OK) {
        *out = sm_cmd_median(times, a->repeats);
        if (a->peak_kc)
            *peak = sm_cmd_median(peaks, a->repeats);
    }
done:
    free(ids);
    free(logits);
    free(times);
    free(peaks);
    return rc;
}

/* One group of sequences decoding together (one batch size). */
typedef struct decode_group {
    int batch;
    sm_seq **seqs;
    int32_t *ids;
    const int32_t **toks;
    int64_t *ntok;
    int64_t per; /* ids per sequence */
    double *times;
} decode_group;

static void decode_group_free(decode_group *g)
{
    for (int b = 0; g->seqs && b < g->batch; b++)
        sm_seq_free(&g->seqs[b]);
    free(g->seqs);
    free(g->ids);
    free((void *)g->toks);
    free(g->ntok);
    free(g->times);
}

/* The context every decoding sequence starts from: one sequence given a prompt of
 * a->decode_ctx tokens (computed once, then copied into each sequence, so that a long
 * --decode-ctx costs one prompt, not one per sequence). */
static sm_code decode_base_new(sm_model *m, const bench_args *a, sm_seq **base, int32_t **ids,
                               float *logits, sm_err *err)
{
    int64_t vocab = sm_model_info(m)->config.vocab;
    *ids = malloc(sizeof(int32_t) * (size_t)a->decode_ctx);
    if (!*ids)
        return sm_err_set(err, SM_ENOMEM, "bench: out of memory");
    uint64_t state = 0x2545f4914f6cdd1dull;
    fill_ids(*ids, a->decode_ctx, vocab, &state);
    sm_code rc = sm_seq_new(m, a->decode_ctx, base, err);
    if (rc == SM_OK) {
        const int32_t *toks = *ids;
        rc = sm_model_forward(m, base, &toks, &a->decode_ctx, 1, logits, err);
    }
    return rc;
}

/* batch sequences, each the base context followed by b + 1 more tokens (lengths differ a
 * little, as in real batches), the extra tokens of all in one forward step. */
static sm_code decode_group_start(sm_model *m, const bench_args *a, const sm_seq *base,
                                  const int32_t *base_ids, int batch, decode_group *g,
                                  float *logits, sm_err *err)
{
    int64_t vocab = sm_model_info(m)->config.vocab;
    g->batch = batch;
    g->per = a->decode_ctx + batch + a->decode_tokens;
    g->seqs = calloc((size_t)batch, sizeof *g->seqs);
    g->ids = malloc(sizeof(int32_t) * (size_t)g->per * (size_t)batch);
    g->toks = calloc((size_t)batch, sizeof *g->toks);
    g->ntok = calloc((size_t)batch, sizeof *g->ntok);
    g->times = calloc((size_t)a->decode_tokens, sizeof(double));
    if (!g->seqs || !g->ids || !g->toks || !g->ntok || !g->times)
        return sm_err_set(err, SM_ENOMEM, "bench: out of memory");
    uint64_t state = 0x2545f4914f6cdd1dull + (uint64_t)batch;
    fill_ids(g->ids, g->per * batch, vocab, &state);
    sm_code rc = SM_OK;
    for (int b = 0; b < batch && rc == SM_OK; b++) {
        memcpy(g->ids + b * g->per, base_ids, sizeof(int32_t) * (size_t)a->decode_ctx);
        rc = sm_seq_new(m, g->per + 1, &g->seqs[b], err);
        if (rc == SM_OK)
            rc = sm_seq_copy_prefix(g->seqs[b], base, a->decode_ctx, err);
        g->toks[b] = g->ids + b * g->per + a->decode_ctx;
        g->ntok[b] = b + 1;
    }
    if (rc == SM_OK)
        rc = sm_model_forward(m, g->seqs, g->toks, g->ntok, batch, logits, err);
    return rc;
}

static double max_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* Median seconds of one decode step at each batch size of batch[0..n). The steps of the
 * different sizes take turns (step s of every size, then step s + 1), so that a slow spell of
 * a shared machine slows every size alike and the ratios between them stay fair. With
 * a->bw_pool, the memory bandwidth limit is measured first as the best of every read method and
 * thread count, then again with the best method before each round (in the same spells as the
 * decode steps); r->bw_gbs is the best of all of them, and r->rss_mb the peak resident memory
 * without the bandwidth buffer. */
static sm_code bench_decode(sm_model *m, const bench_args *a, const int *batch, int n, double *out,
                            bench_result *r, sm_err *err)
{
    int64_t vocab = sm_model_info(m)->config.vocab;
    int max_batch = 0;
    for (int i = 0; i < n; i++)
        max_batch = batch[i] > max_batch ? batch[i] : max_batch;
    decode_group *g = calloc((size_t)n, sizeof *g);
    float *logits = malloc(sizeof(float) * (size_t)vocab * (size_t)max_batch);
    sm_code rc = SM_OK;
    if (!g || !logits)
        rc = sm_err_set(err, SM_ENOMEM, "bench: out of memory");
    sm_seq *base = NULL;
    int32_t *base_ids = NULL;
    if (rc == SM_OK)
        rc = decode_base_new(m, a, &base, &base_ids, logits, err);
    for (int i = 0; i < n && rc == SM_OK; i++)
        rc = decode_group_start(m, a, base, base_ids, batch[i], &g[i], logits, err);
    sm_seq_free(&base);
    free(base_ids);
    sm_membw_buf *bwb = NULL;
    sm_membw_result bw = {0};
    double rss_model = max_rss_mb();
    if (rc == SM_OK && a->bw_pool)
        rc = sm_membw_buf_new(SM_BENCH_BW_BYTES, &bwb, err);
    if (rc == SM_OK && bwb)
        rc = sm_membw_read(a->bw_pool, bwb, 2, &bw, err);
    for (int64_t s = 0; s < a->decode_tokens && rc == SM_OK; s++) {
        double gbs = 0;
        if (bwb)
            rc = sm_membw_read_method(a->bw_pool, bwb, &bw.method, 1, &gbs, err);
        bw.gbs = gbs > bw.gbs ? gbs : bw.gbs;
        for (int i = 0; i < n && rc == SM_OK; i++) {
            decode_group *q = &g[i];
            for (int b = 0; b < q->batch; b++) {
                q->toks[b] = q->ids + b * q->per + a->decode_ctx + b + 1 + s;
                q->ntok[b] = 1;
            }
            double t0 = sm_cmd_now_s();
            rc = sm_model_forward(m, q->seqs, q->toks, q->ntok, q->batch, logits, err);
            q->times[s] = sm_cmd_now_s() - t0;
        }
    }
    for (int i = 0; i < n && rc == SM_OK; i++)
        out[i] = sm_cmd_median(g[i].times, (int)a->decode_tokens);
    if (rc == SM_OK && bwb) {
        r->bw_gbs = bw.gbs;
        r->bw_bytes = sm_membw_buf_bytes(bwb);
        sm_membw_method_str(&bw.method, r->bw_method, sizeof r->bw_method);
        /* the buffer stayed resident through the rounds: the peak without it is the larger
         * of the peak before it and the peak during the rounds less its size */
        double during = max_rss_mb() - (double)sm_membw_buf_bytes(bwb) / 1048576.0;
        r->rss_mb = during > rss_model ? during : rss_model;
    }
    sm_membw_buf_free(&bwb);
    for (int i = 0; g && i < n; i++)
        decode_group_free(&g[i]);
    free(g);
    free(logits);
    return rc;
}

static sm_code bench_mode(sm_model *m, const bench_args *a, bool decode_all, bench_result *r,
                          sm_err *err)
{
    sm_code rc = bench_prefill(m, a, &r->prefill_s, &r->peak_gflops, err);
    r->decode_s[0] = r->decode_s[1] = r->decode_s[2] = 0;
    if (rc == SM_OK && decode_all)
        rc = bench_decode(m, a, batches, 3, r->decode_s, r, err);
    else if (rc == SM_OK)
        rc = bench_decode(m, a, &batches[2], 1, &r->decode_s[2], r, err);
    return rc;
}

static const sm_arg_opt bench_opts[] = {
    {"model", 0, SM_ARG_VALUE, "PATH", "the model folder or GGUF file", true},
    {"json", 0, SM_ARG_FLAG, NULL, "print the figures as JSON", false},
    {"prompt-tokens", 0, SM_ARG_VALUE, "N", "prompt length (default 512)", false},
    {"decode-tokens", 0, SM_ARG_VALUE, "N", "decode steps per round (default 16)", false},
    {"decode-ctx", 0, SM_ARG_VALUE, "N", "context of each decoding sequence (default 32)", false},
    {"repeats", 0, SM_ARG_VALUE, "N", "runs per figure, 1..1000 (default 3)", false},
    {"no-compare", 0, SM_ARG_FLAG, NULL, "skip the other kernel mode", false},
    {"depths", 0, SM_ARG_VALUE, "LIST",
     "long-context mode: decode at these context depths, e.g. 1024,4096,16384 (synthetic "
     "contexts)",
     false},
    {"batches", 0, SM_ARG_VALUE, "LIST", "batch sizes of the long-context mode (default 1,16)",
     false},
    {"device", 0, SM_ARG_VALUE, "cpu|cuda", "where to run the model (default cpu)", false},
    {0}};
static const sm_args_spec bench_spec = {
    "stepmark-engine bench",
    NULL,
    "Measures prompt and decode speed next to the machine's peak and memory bandwidth.",
    bench_opts,
    sm_cmd_model_opts,
    0,
    0};

static int parse_count(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Reads the count option name into *out (unchanged when absent); -1 with a message when bad. */
static int count_opt(const sm_args *args, const char *name, int64_t hi, int64_t *out)
{
    const char *v = sm_args_get(args, name);
    if (v && parse_count(v, 1, hi, out) < 0) {
        sm_args_usage_error(bench_spec.prog, "--%s needs a count, 1 to %lld (got '%s')", name,
                            (long long)hi, v);
        return -1;
    }
    return 0;
}

/* Reads --depths and --batches into c; -1 with a message when bad. */
static int ctx_opts(const sm_args *args, sm_bench_ctx_args *c)
{
    const char *d = sm_args_get(args, "depths"), *b = sm_args_get(args, "batches");
    if (d &&
        (c->n_depths = sm_bench_parse_list(d, 1, 1 << 24, c->depths, SM_BENCH_MAX_POINTS)) < 1) {
        sm_args_usage_error(bench_spec.prog,
                            "--depths needs a list of positions, e.g. "
                            "1024,4096,16384 (got '%s')",
                            d);
        return -1;
    }
    if (b &&
        (c->n_batches = sm_bench_parse_list(b, 1, 1024, c->batches, SM_BENCH_MAX_POINTS)) < 1) {
        sm_args_usage_error(bench_spec.prog,
                            "--batches needs a list of batch sizes 1..1024, "
                            "e.g. 1,16 (got '%s')",
                            b);
        return -1;
    }
    if (b && !d) {
        sm_args_usage_error(bench_spec.prog, "--batches goes with --depths");
        return -1;
    }
    if (c->n_batches == 0) {
        c->batches[0] = 1;
        c->batches[1] = 16;
        c->n_batches = 2;
    }
    return 0;
}

/* The long-context mode: returns the exit status. */
static int bench_ctx_main(sm_model *m, bench_args *a)
{
    sm_err err = {0};
    const sm_model_summary *s = sm_model_info(m);
    sm_pool *pool = NULL;
    json_t *o = NULL;
    a->ctx.decode_tokens = a->decode_tokens;
    sm_code rc = sm_pool_new(s->threads, &pool, &err);
    if (rc == SM_OK)
        rc = sm_bench_ctx_run(m, &a->ctx, pool, &o, &err);
    sm_pool_free(&pool);
    if (rc != SM_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return rc == SM_ELIMIT ? 2 : 1;
    }
    if (a->json) {
        json_object_set_new(o, "model", json_string(a->path));
        json_object_set_new(o, "dtype", json_string(sm_dtype_name(s->weight_dtype)));
        json_object_set_new(o, "isa", json_string(sm_isa_name(s->isa)));
        json_object_set_new(o, "threads", json_integer(s->threads));
        json_object_set_new(o, "mode", json_string(s->deterministic ? "deterministic" : "fast"));
        char *txt = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
        if (txt)
            printf("%s\n", txt);
        free(txt);
    } else {
        sm_bench_ctx_print(a->path, s, o);
    }
    json_decref(o);
    return 0;
}

/* Fills a from argv; returns SM_ARGS_CONTINUE, or the exit status. */
static int bench_parse(int argc, char **argv, bench_args *a)
{
    sm_args args;
    int rc = sm_args_parse(&bench_spec, argc, argv, &args);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    int64_t repeats = a->repeats;
    a->path = sm_args_get(&args, "model"); /* points into argv */
    a->json = sm_args_has(&args, "json");
    a->compare = !sm_args_has(&args, "no-compare");
    if (sm_cmd_model_opts_get(&args, &a->opts) != 0 ||
        count_opt(&args, "prompt-tokens", 1 << 20, &a->prompt_tokens) != 0 ||
        count_opt(&args, "decode-tokens", 1 << 20, &a->decode_tokens) != 0 ||
        count_opt(&args, "decode-ctx", 1 << 20, &a->decode_ctx) != 0 ||
        count_opt(&args, "repeats", 1000, &repeats) != 0 || ctx_opts(&args, &a->ctx) != 0)
        rc = SM_ARGS_EXIT_USAGE;
    a->repeats = (int)repeats;
    const char *device = sm_args_get(&args, "device");
    a->cuda = device && strcmp(device, "cuda") == 0;
    if (device && !a->cuda && strcmp(device, "cpu") != 0) {
        fprintf(stderr, "bench: --device is cpu or cuda, not %s\n", device);
        rc = SM_ARGS_EXIT_USAGE;
    }
    if (rc == SM_ARGS_CONTINUE && a->cuda && a->ctx.n_depths > 0) {
        fprintf(stderr, "bench: --depths is not available with --device cuda\n");
        rc = SM_ARGS_EXIT_USAGE;
    }
    sm_args_free(&args);
    return rc;
}

/* What the main mode's measurements say, as printed. */
typedef struct bench_report {
    double prefill_tps, prefill_gflops, peak, tps[3], bw, limit_tps, bw_frac, rss_mb;
    double other_prefill_tps, other_tps16;
    const char *mode, *other, *peak_method;
    bool fast_blas;
    char blas_core[64];
} bench_report;

/* Runs the model's own mode (with the peak and bandwidth probes) and, with --compare, the
 * other mode; *rss_after_main is the peak resident memory after the first. */
static sm_code bench_run_modes(sm_model *m, bench_args *a, const sm_model_summary *s,
                               bench_result *main_r, bench_result *other_r, double *rss_after_main,
                               sm_err *err)
{
    /* the machine's peak for this weight type, with the model's kernels and thread count,
     * measured between the prompts of the main mode (see bench_prefill) */
    sm_pool *ppool = NULL;
    sm_kctx kc = {.isa = s->isa, .deterministic = s->deterministic};
    sm_code rc = sm_pool_new(s->threads, &ppool, err);
    if (rc != SM_OK)
        return rc;
    kc.pool = ppool;
    a->peak_kc = &kc;
    a->peak_dtype = s->weight_dtype;
    a->bw_pool = ppool;
    bool fast = !s->deterministic;
    rc = bench_mode(m, a, true, main_r, err);
    a->peak_kc = NULL;
    a->bw_pool = NULL;
    sm_pool_free(&ppool);
    *rss_after_main = max_rss_mb();
    if (rc == SM_OK && a->compare) {
        sm_model_set_fast(m, !fast);
        rc = bench_mode(m, a, false, other_r, err);
        sm_model_set_fast(m, fast);
    }
    return rc;
}

static void bench_figures(const bench_args *a, const sm_model_summary *s,
                          const bench_result *main_r, const bench_result *other_r,
                          double rss_after_main, bench_report *r)
{
    const sm_model_config *c = &s->config;
    /* work per prompt: every weight matrix once per token except the LM head (last position
     * only), plus attention (q.k and p.v over the causal prefix) */
    double P = (double)a->prompt_tokens;
    double embed = (double)c->vocab * (double)c->hidden;
    double body = (double)s->n_params - embed - (c->tied ? 0.0 : embed);
    double attn =
        4.0 * (double)c->n_layers * (double)c->n_heads * (double)c->head_dim * P * (P + 1) / 2;
    double flops = 2.0 * body * P + 2.0 * embed + attn;
    r->prefill_tps = P / main_r->prefill_s;
    r->prefill_gflops = flops / main_r->prefill_s / 1e9;
    r->peak = main_r->peak_gflops;
    for (int i = 0; i < 3; i++)
        r->tps[i] = batches[i] / main_r->decode_s[i];
    r->bw = main_r->bw_gbs;
    r->limit_tps = r->bw * 1e9 / (double)s->bytes_per_token;
    r->bw_frac = r->tps[0] / r->limit_tps;
    /* a new overall peak in the other mode (run without the bandwidth buffer) counts as is */
    double rss_end = max_rss_mb();
    r->rss_mb = main_r->rss_mb;
    if (rss_end > rss_after_main && rss_end > r->rss_mb)
        r->rss_mb = rss_end;
    r->other_prefill_tps = a->compare ? P / other_r->prefill_s : 0;
    r->other_tps16 = a->compare ? 16 / other_r->decode_s[2] : 0;
    r->mode = s->deterministic ? "deterministic" : "fast";
    r->other = s->deterministic ? "fast" : "deterministic";
    /* which kernels fast mode gives prompts on this machine */
    sm_kctx fast_k = {.isa = s->isa, .deterministic = false};
    r->fast_blas = sm_kernels_fast_uses_blas(&fast_k, r->blas_core, sizeof r->blas_core);
    r->fast_blas = r->fast_blas && !s->packed; /* repacked weights keep their 8-bit products */
    /* the instruction the variant's peak loop runs for this weight type (sm_kvariant.peak) */
    r->peak_method =
        s->weight_dtype == SM_DTYPE_Q8_0 || s->weight_dtype == SM_DTYPE_Q4_0 ||
                sm_dtype_is_kquant(s->weight_dtype)
            ? "8-bit dot-product instruction loop, all threads, between the prompts"
        : s->weight_dtype == SM_DTYPE_BF16 && s->isa == SM_ISA_AVX512BF16
            ? "bf16 dot-product (vdpbf16ps) instruction loop, all threads, between the prompts"
            : "f32 FMA instruction loop, all threads, between the prompts";
}

static void bench_print_json(const bench_args *a, const sm_model_summary *s,
                             const bench_result *main_r, const bench_report *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "model", json_string(a->path));
    json_object_set_new(o, "dtype", json_string(sm_dtype_name(s->weight_dtype)));
    json_object_set_new(o, "isa", json_string(sm_isa_name(s->isa)));
    json_object_set_new(o, "threads", json_integer(s->threads));
    json_object_set_new(o, "mode", json_string(r->mode));
    json_object_set_new(o, "prompt_tokens", json_integer(a->prompt_tokens));
    json_object_set_new(o, "decode_tokens", json_integer(a->decode_tokens));
    json_object_set_new(o, "prefill_tps", json_real(r->prefill_tps));
    json_object_set_new(o, "prefill_gflops", json_real(r->prefill_gflops));
    json_object_set_new(o, "peak_gflops", json_real(r->peak));
    json_object_set_new(o, "peak_method", json_string(r->peak_method));
    json_object_set_new(o, "prefill_peak_fraction",
                        json_real(r->peak > 0 ? r->prefill_gflops / r->peak : 0));
    json_object_set_new(o, "decode_tps_batch1", json_real(r->tps[0]));
    json_object_set_new(o, "decode_tps_batch4", json_real(r->tps[1]));
    json_object_set_new(o, "decode_tps_batch16", json_real(r->tps[2]));
    json_object_set_new(o, "batch16_speedup", json_real(r->tps[2] / r->tps[0]));
    json_object_set_new(o, "bandwidth_gbs", json_real(r->bw));
    json_object_set_new(o, "bandwidth_method", json_string(main_r->bw_method));
    json_object_set_new(o, "bytes_per_token", json_integer((json_int_t)s->bytes_per_token));
    json_object_set_new(o, "bandwidth_limit_tps", json_real(r->limit_tps));
    json_object_set_new(o, "bandwidth_fraction", json_real(r->bw_frac));
    json_object_set_new(o, "peak_rss_mb", json_real(r->rss_mb));
    json_object_set_new(o, "fast_prompt_openblas", json_boolean(r->fast_blas));
    json_object_set_new(o, "openblas_core", json_string(r->blas_core));
    if (a->compare) {
        char key[64];
        snprintf(key, sizeof key, "%s_prefill_tps", r->other);
        json_object_set_new(o, key, json_real(r->other_prefill_tps));
        snprintf(key, sizeof key, "%s_decode_tps_batch16", r->other);
        json_object_set_new(o, key, json_real(r->other_tps16));
    }
    char *txt = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    if (txt)
        printf("%s\n", txt);
    free(txt);
    json_decref(o);
}

static void bench_print_text(const bench_args *a, const sm_model_summary *s,
                             const bench_result *main_r, const bench_report *r)
{
    printf("model:            %s (%s weights%s, %lld params, %s kernels, %d threads, %s)\n",
           a->path, sm_dtype_name(s->weight_dtype), s->packed ? " repacked" : "",
           (long long)s->n_params, sm_isa_name(s->isa), s->threads, r->mode);
    printf("prompt (%lld tok): %.1f tokens/s, %.1f GFLOP/s = %.0f%% of peak %.1f GFLOP/s (%s)\n",
           (long long)a->prompt_tokens, r->prefill_tps, r->prefill_gflops,
           r->peak > 0 ? 100 * r->prefill_gflops / r->peak : 0, r->peak, r->peak_method);
    printf("decode batch 1:   %.2f tokens/s (%.0f%% of the bandwidth limit %.2f tokens/s)\n",
           r->tps[0], 100 * r->bw_frac, r->limit_tps);
    printf("decode batch 4:   %.2f tokens/s aggregate (%.2fx batch 1)\n", r->tps[1],
           r->tps[1] / r->tps[0]);
    printf("decode batch 16:  %.2f tokens/s aggregate (%.2fx batch 1)\n", r->tps[2],
           r->tps[2] / r->tps[0]);
    printf("bandwidth:        %.2f GB/s measured (the best read of %.0f MiB: %s; every "
           "method and thread count tried, then the best again between the decode rounds)\n",
           r->bw, (double)main_r->bw_bytes / 1048576.0, main_r->bw_method);
    printf("bytes per token:  %.1f MB of weights read per decode step\n",
           (double)s->bytes_per_token / 1e6);
    printf("peak memory:      %.0f MB resident\n", r->rss_mb);
    if (a->compare)
        printf("%s mode:   prompt %.1f tokens/s (%s is %.2fx), decode batch 16 %.2f "
               "tokens/s (%s is %.2fx)\n",
               r->other, r->other_prefill_tps, r->mode, r->prefill_tps / r->other_prefill_tps,
               r->other_tps16, r->mode, r->tps[2] / r->other_tps16);
    if (s->packed)
        printf("fast-mode prompts: the engine's own kernels (8-bit products of the "
               "repacked %s weights)\n",
               sm_dtype_name(s->weight_dtype));
    else
        printf("fast-mode prompts: %s (OpenBLAS runs its %s kernels on this CPU)\n",
               r->fast_blas ? "OpenBLAS sgemm" : "the engine's own kernels", r->blas_core);
    printf("(medians: prompt over %d runs, decode over %lld steps after a %lld-token prompt;"
           " the batch sizes' steps take turns)\n",
           a->repeats, (long long)a->decode_tokens, (long long)a->decode_ctx);
}

/* --device cuda: the same measurements through the CUDA plugin (cmd_bench_cuda.c). */
static int bench_cuda(const bench_args *a)
{
    sm_bench_cuda_args ca = {.path = a->path,
                             .fast = a->opts.fast,
                             .json = a->json,
                             .prompt_tokens = a->prompt_tokens,
                             .decode_tokens = a->decode_tokens,
                             .decode_ctx = a->decode_ctx,
                             .repeats = a->repeats};
    return sm_cmd_bench_cuda(&ca);
}

int sm_cmd_bench(int argc, char **argv)
{
    bench_args a = {
        .compare = true, .prompt_tokens = 512, .decode_tokens = 16, .decode_ctx = 32, .repeats = 3};
    sm_model_opts_init(&a.opts);
    int prc = bench_parse(argc, argv, &a);
    if (prc != SM_ARGS_CONTINUE)
        return prc;
    if (a.cuda)
        return bench_cuda(&a);
    sm_err err = {0};
    sm_model *m = NULL;
    if (sm_model_load(a.path, &a.opts, &m, &err) != SM_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    int status = 0;
    const sm_model_summary *s = sm_model_info(m);
    const sm_model_config *c = &s->config;
    bench_result main_r = {0}, other_r = {0};
    double rss_after_main = 0;
    if (a.ctx.n_depths > 0) {
        status = bench_ctx_main(m, &a);
    } else if (a.prompt_tokens + 1 > c->max_pos ||
               a.decode_ctx + 16 + a.decode_tokens + 1 > c->max_pos) {
        fprintf(stderr, "bench: the model's %lld positions are too few for these lengths\n",
                (long long)c->max_pos);
        status = 2;
    } else if (bench_run_modes(m, &a, s, &main_r, &other_r, &rss_after_main, &err) != SM_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        status = 1;
    } else {
        bench_report r;
        bench_figures(&a, s, &main_r, &other_r, rss_after_main, &r);
        if (a.json)
            bench_print_json(&a, s, &main_r, &r);
        else
            bench_print_text(&a, s, &main_r, &r);
    }
    sm_model_free(&m);
    return status;
}
