/* cmd_attnbench: `stepmark-engine attnbench` measures one layer's decode attention for a batch
 * of sequences with long contexts, with an f32 and an f16 KV cache. Each of --seqs sequences
 * has its own cache of --positions positions (together far larger than the CPU caches, as in a
 * worker's slots); one query per sequence, as in a decode step; one thread, as each row's
 * attention runs in a decode step. The two cache types take turns, round after round, so that
 * a slow spell of a shared machine slows both alike. Prints the minimum and median time of a
 * round, the GFLOP/s (q.k and p.v) and the cache bytes read per second at the median.
 *   stepmark-engine attnbench [--positions 1024] [--seqs 16] [--heads 12] [--kv-heads 2]
 *       [--head-dim 128] [--rounds 50] [--isa NAME] */
#include <stdio.h>
#include <stdlib.h>

#include "cmd_timing.h"
#include "commands.h"
#include "sm_args.h"
#include "sm_kernels.h"

static const sm_arg_opt attn_opts[] = {
    {"positions", 0, SM_ARG_VALUE, "N", "context length (default 1024)", false},
    {"seqs", 0, SM_ARG_VALUE, "N", "sequences (default 16)", false},
    {"heads", 0, SM_ARG_VALUE, "N", "query heads (default 12)", false},
    {"kv-heads", 0, SM_ARG_VALUE, "N", "key/value heads (default 2)", false},
    {"head-dim", 0, SM_ARG_VALUE, "N", "head size (default 128)", false},
    {"rounds", 0, SM_ARG_VALUE, "N", "rounds (default 50)", false},
    {"isa", 0, SM_ARG_VALUE, "NAME", "kernel instruction set", false},
    {0}};
static const sm_args_spec attn_spec = {
    "stepmark-engine attnbench",
    NULL,
    "Decode attention of one layer over long contexts, f32 vs f16 KV cache.",
    attn_opts,
    NULL,
    0,
    0};

/* The sizes of the run. */
typedef struct attn_sizes {
    long positions, seqs, heads, kv_heads, head_dim, rounds;
} attn_sizes;

/* Reads the options into z and k->isa; returns SM_ARGS_CONTINUE or the exit status. */
static int attn_parse(int argc, char **argv, attn_sizes *z, sm_kctx *k)
{
    sm_args a;
    int rc = sm_args_parse(&attn_spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    const char *names[] = {"positions", "seqs", "heads", "kv-heads", "head-dim", "rounds"};
    long *dst[] = {&z->positions, &z->seqs, &z->heads, &z->kv_heads, &z->head_dim, &z->rounds};
    for (int i = 0; i < 6 && rc == SM_ARGS_CONTINUE; i++) {
        const char *v = sm_args_get(&a, names[i]);
        char *end;
        if (v && ((*dst[i] = strtol(v, &end, 10)) < 1 || *end || end == v))
            rc = sm_args_usage_error(attn_spec.prog, "--%s needs a positive count", names[i]);
    }
    const char *isa = sm_args_get(&a, "isa");
    sm_err err = {0};
    if (rc == SM_ARGS_CONTINUE && isa &&
        (sm_isa_parse(isa, &k->isa, &err) != SM_OK || !sm_isa_supported(k->isa))) {
        fprintf(stderr, "--isa %s: not available here\n", isa);
        rc = SM_ARGS_EXIT_USAGE;
    }
    sm_args_free(&a);
    return rc;
}

int sm_cmd_attnbench(int argc, char **argv)
{
    attn_sizes z = {1024, 16, 12, 2, 128, 50};
    sm_kctx k = {.isa = sm_isa_detect(), .pool = NULL, .deterministic = true};
    int prc = attn_parse(argc, argv, &z, &k);
    if (prc != SM_ARGS_CONTINUE)
        return prc;
    long positions = z.positions, seqs = z.seqs, heads = z.heads, kv_heads = z.kv_heads;
    long head_dim = z.head_dim, rounds = z.rounds;
    if (heads % kv_heads != 0 || positions > (1L << 24) || seqs > 4096 || head_dim > 4096) {
        fprintf(stderr, "attnbench: heads must be a multiple of kv heads; sizes too large\n");
        return 2;
    }
    int64_t stride = kv_heads * head_dim, n = positions * stride;
    float *q = malloc(sizeof(float) * (size_t)(heads * head_dim));
    float *out = malloc(sizeof(float) * (size_t)(heads * head_dim));
    void **kc[2], **vc[2];
    double *t[2];
    for (int d = 0; d < 2; d++) {
        kc[d] = calloc((size_t)seqs, sizeof(void *));
        vc[d] = calloc((size_t)seqs, sizeof(void *));
        t[d] = malloc(sizeof(double) * (size_t)rounds);
    }
    if (!q || !out)
        return 1;
    for (int64_t i = 0; i < heads * head_dim; i++)
        q[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
    for (int d = 0; d < 2; d++)
        for (long s = 0; s < seqs; s++) {
            size_t esz = d ? 2 : 4;
            kc[d][s] = malloc(esz * (size_t)n);
            vc[d][s] = malloc(esz * (size_t)n);
            if (!kc[d][s] || !vc[d][s]) {
                fprintf(stderr, "attnbench: out of memory\n");
                return 1;
            }
            for (int64_t i = 0; i < n; i++) {
                float kv = (float)((i * 7919 + s) % 1000) / 1000.0f - 0.5f;
                float vv = (float)((i * 104729 + s) % 1000) / 1000.0f - 0.5f;
                if (d) {
                    ((uint16_t *)kc[d][s])[i] = sm_f32_to_f16(kv);
                    ((uint16_t *)vc[d][s])[i] = sm_f32_to_f16(vv);
                } else {
                    ((float *)kc[d][s])[i] = kv;
                    ((float *)vc[d][s])[i] = vv;
                }
            }
        }
    float sink = 0.0f;
    for (long r = 0; r < rounds; r++)
        for (int d = 0; d < 2; d++) {
            double t0 = sm_cmd_now_s();
            for (long s = 0; s < seqs; s++)
                sm_attention(&k, q, (int)heads, (int)kv_heads, (int)head_dim, kc[d][s], vc[d][s],
                             d ? SM_DTYPE_F16 : SM_DTYPE_F32, stride, positions, out, NULL);
            t[d][r] = sm_cmd_now_s() - t0;
            sink += out[0];
        }
    printf("attention of one layer: %ld sequences x %ld positions, %ld/%ld heads of %ld, "
           "1 thread, %s kernels, %ld rounds (checksum %g)\n",
           seqs, positions, heads, kv_heads, head_dim, sm_isa_name(k.isa), rounds, (double)sink);
    double flops = 4.0 * (double)heads * (double)head_dim * (double)positions * (double)seqs;
    double med[2];
    for (int d = 0; d < 2; d++) {
        med[d] = sm_cmd_median(t[d], (int)rounds); /* sorts: t[d][0] is the minimum */
        double bytes = 2.0 * (double)n * (d ? 2 : 4) * (double)seqs;
        printf("%s cache: min %.3f ms, median %.3f ms, %.1f GFLOP/s, %.1f GB/s of cache read "
               "(at the median)\n",
               d ? "f16" : "f32", t[d][0] * 1e3, med[d] * 1e3, flops / med[d] / 1e9,
               bytes / med[d] / 1e9);
    }
    printf("f16 / f32 speed: %.2fx (medians)\n", med[0] / med[1]);
    for (int d = 0; d < 2; d++) {
        for (long s = 0; s < seqs; s++) {
            free(kc[d][s]);
            free(vc[d][s]);
        }
        free(kc[d]);
        free(vc[d]);
        free(t[d]);
    }
    free(q);
    free(out);
    return 0;
}
