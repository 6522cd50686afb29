/* cmd_model_opts: parsing of the model options and id lists shared by the model subcommands. */
#include "cmd_model_opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const sm_arg_opt sm_cmd_model_opts[] = {
    {"dtype", 0, SM_ARG_VALUE, "T", "weight type: f32, bf16, f16, q8_0 or q4_0", false},
    {"kv-dtype", 0, SM_ARG_VALUE, "T", "KV cache type: f32, f16 or q8_0 (8-bit)", false},
    {"threads", 0, SM_ARG_VALUE, "N", "threads, 1..1024", false},
    {"fast", 0, SM_ARG_FLAG, NULL, "fast (not bit-reproducible) kernels", false},
    {"isa", 0, SM_ARG_VALUE, "NAME", "kernel instruction set", false},
    {0}};

int sm_cmd_model_opts_get(const sm_args *a, sm_model_opts *opts)
{
    sm_err err = {0};
    const char *v;
    opts->fast = opts->fast || sm_args_has(a, "fast");
    if ((v = sm_args_get(a, "dtype"))) {
        if (sm_dtype_parse(v, &opts->dtype, &err) != SM_OK) {
            fprintf(stderr, "--dtype: %s\n", err.msg);
            return -1;
        }
        opts->dtype_set = true;
    }
    if ((v = sm_args_get(a, "kv-dtype"))) {
        if (sm_dtype_parse(v, &opts->kv_dtype, &err) != SM_OK ||
            (opts->kv_dtype != SM_DTYPE_F32 && opts->kv_dtype != SM_DTYPE_F16 &&
             opts->kv_dtype != SM_DTYPE_Q8_0)) {
            fprintf(stderr, "--kv-dtype: expected f32, f16 or q8_0, got \"%s\"\n", v);
            return -1;
        }
        opts->kv_dtype_set = true;
    }
    if ((v = sm_args_get(a, "isa"))) {
        if (sm_isa_parse(v, &opts->isa, &err) != SM_OK) {
            fprintf(stderr, "--isa: %s\n", err.msg);
            return -1;
        }
        opts->isa_set = true;
    }
    if ((v = sm_args_get(a, "threads"))) {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (errno || *end || end == v || n < 1 || n > 1024) {
            fprintf(stderr, "--threads: expected 1..1024, got \"%s\"\n", v);
            return -1;
        }
        opts->threads = (int)n;
    }
    return 0;
}

int sm_cmd_parse_ids(const char *s, int32_t **ids, size_t *n)
{
    size_t cap = 16;
    *n = 0;
    *ids = malloc(cap * sizeof **ids);
    if (*ids == NULL) {
        fprintf(stderr, "out of memory\n");
        return -1;
    }
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX ||
            (*end && *end != ' ' && *end != '\t' && *end != '\n' && *end != '\r' && *end != ',')) {
            fprintf(stderr, "bad token id near \"%.20s\"\n", p);
            free(*ids);
            *ids = NULL;
            return -1;
        }
        if (*n == cap) {
            int32_t *q = realloc(*ids, 2 * cap * sizeof *q);
            if (q == NULL) {
                free(*ids);
                *ids = NULL;
                fprintf(stderr, "out of memory\n");
                return -1;
            }
            *ids = q;
            cap *= 2;
        }
        (*ids)[(*n)++] = (int32_t)v;
        p = end;
    }
    return 0;
}
