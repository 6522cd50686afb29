/* cmd_bench_cuda: `stepmark-engine bench --device cuda`: the benchmark on the GPU through the
 * CUDA plugin (see cmd_bench_cuda.c). */
#ifndef SM_CMD_BENCH_CUDA_H
#define SM_CMD_BENCH_CUDA_H

#include <stdbool.h>
#include <stdint.h>

typedef struct sm_bench_cuda_args {
    const char *path;
    bool fast;
    bool json;
    int64_t prompt_tokens, decode_tokens, decode_ctx;
    int repeats;
} sm_bench_cuda_args;

/* Runs it; the exit status (1 with a message when the plugin, the device or the model fails). */
int sm_cmd_bench_cuda(const sm_bench_cuda_args *a);

#endif
