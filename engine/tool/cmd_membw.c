/* cmd_membw: `stepmark-engine membw [--threads N] [--mib N] [--repeats N] [--json]` measures
 * the machine's memory read bandwidth the way `bench` takes its limit: every read method
 * (load width, non-temporal or not, chunking) at every thread count 1..N, each the best of
 * --repeats passes over a buffer far larger than the last-level cache (the rounds take turns
 * over the methods). Prints each method's best and the overall best. */
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "commands.h"
#include "sm_args.h"
#include "sm_membw.h"

static const sm_arg_opt membw_opts[] = {
    {"threads", 0, SM_ARG_VALUE, "N", "most threads to try (default: every online CPU)", false},
    {"mib", 0, SM_ARG_VALUE, "N", "buffer size in MiB (default: 1024, or 8x the LLC)", false},
    {"repeats", 0, SM_ARG_VALUE, "N", "passes per method, the best kept (default 3)", false},
    {"json", 0, SM_ARG_FLAG, NULL, "print the figures as JSON", false},
    {0}};
static const sm_args_spec membw_spec = {
    "stepmark-engine membw",
    NULL,
    "Memory read bandwidth: the best of several read methods and thread counts.",
    membw_opts,
    NULL,
    0,
    0};

typedef struct membw_args {
    long threads, mib, repeats;
    bool json;
} membw_args;

static int membw_parse(int argc, char **argv, membw_args *z)
{
    sm_args a;
    int rc = sm_args_parse(&membw_spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    const char *names[] = {"threads", "mib", "repeats"};
    long *dst[] = {&z->threads, &z->mib, &z->repeats};
    long hi[] = {1024, 1L << 20, 1000};
    for (int i = 0; i < 3 && rc == SM_ARGS_CONTINUE; i++) {
        const char *v = sm_args_get(&a, names[i]);
        char *end;
        if (v && ((*dst[i] = strtol(v, &end, 10)) < 1 || *dst[i] > hi[i] || *end || end == v))
            rc = sm_args_usage_error(membw_spec.prog, "--%s needs a count, 1 to %ld", names[i],
                                     hi[i]);
    }
    z->json = sm_args_has(&a, "json");
    sm_args_free(&a);
    return rc;
}

/* Measures every method of this CPU at every thread count, the rounds taking turns; prints
 * them (text) or adds them to arr (JSON). */
static sm_code membw_table(sm_pool *pool, sm_membw_buf *b, const membw_args *z, json_t *arr,
                           sm_membw_result *best, sm_err *err)
{
    enum { MAX = SM_MEMBW_LOAD_COUNT * SM_MEMBW_CHUNKING_COUNT * 64 };
    static sm_membw_method ms[MAX];
    static double gbs[MAX];
    int n = 0, threads = sm_pool_threads(pool);
    for (int t = 1; t <= threads && t <= 64; t++)
        for (int l = 0; l < SM_MEMBW_LOAD_COUNT; l++)
            for (int c = 0; c < SM_MEMBW_CHUNKING_COUNT; c++)
                if (sm_membw_load_supported((sm_membw_load)l) && !(c == SM_MEMBW_BLOCKS && t == 1))
                    ms[n++] = (sm_membw_method){(sm_membw_load)l, (sm_membw_chunking)c, t};
    for (int i = 0; i < n; i++)
        gbs[i] = 0;
    for (long r = 0; r < z->repeats; r++)
        for (int i = 0; i < n; i++) {
            double g;
            sm_code rc = sm_membw_read_method(pool, b, &ms[i], 1, &g, err);
            if (rc != SM_OK)
                return rc;
            gbs[i] = g > gbs[i] ? g : gbs[i];
        }
    best->gbs = 0;
    for (int i = 0; i < n; i++) {
        char name[160];
        sm_membw_method_str(&ms[i], name, sizeof name);
        if (arr)
            json_array_append_new(arr, json_pack("{s:s,s:s,s:i,s:f}", "load",
                                                 sm_membw_load_name(ms[i].load), "chunking",
                                                 sm_membw_chunking_name(ms[i].chunking), "threads",
                                                 ms[i].threads, "gbs", gbs[i]));
        else
            printf("%8.2f GB/s  %s\n", gbs[i], name);
        if (gbs[i] > best->gbs)
            *best = (sm_membw_result){gbs[i], ms[i]};
    }
    return SM_OK;
}

int sm_cmd_membw(int argc, char **argv)
{
    membw_args z = {0, 0, 3, false};
    int prc = membw_parse(argc, argv, &z);
    if (prc != SM_ARGS_CONTINUE)
        return prc;
    sm_err err = {0};
    sm_pool *pool = NULL;
    sm_membw_buf *b = NULL;
    sm_membw_result best = {0};
    json_t *arr = z.json ? json_array() : NULL;
    sm_code rc = sm_pool_new((int)z.threads, &pool, &err);
    if (rc == SM_OK)
        rc = sm_membw_buf_new((size_t)z.mib << 20, &b, &err);
    if (rc == SM_OK && !z.json)
        printf("buffer: %.0f MiB; best of %ld passes per method\n",
               (double)sm_membw_buf_bytes(b) / 1048576.0, z.repeats);
    if (rc == SM_OK)
        rc = membw_table(pool, b, &z, arr, &best, &err);
    if (rc == SM_OK) {
        char name[160];
        sm_membw_method_str(&best.method, name, sizeof name);
        if (z.json) {
            json_t *o = json_pack("{s:f,s:s,s:I,s:o}", "gbs", best.gbs, "method", name, "bytes",
                                  (json_int_t)sm_membw_buf_bytes(b), "methods", arr);
            arr = NULL;
            char *txt = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
            if (txt)
                printf("%s\n", txt);
            free(txt);
            json_decref(o);
        } else {
            printf("best:   %.2f GB/s (%s)\n", best.gbs, name);
        }
    }
    json_decref(arr);
    sm_membw_buf_free(&b);
    sm_pool_free(&pool);
    if (rc != SM_OK) {
        fprintf(stderr, "membw: %s\n", err.msg);
        return 1;
    }
    return 0;
}
