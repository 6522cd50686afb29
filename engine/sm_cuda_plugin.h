/* sm_cuda_plugin: the CUDA backend (engine/cuda, sm_cuda.h) as a plugin. The backend is built as
 * the shared module libstepmark-cuda.so, which links the CUDA libraries; programs (the
 * stepmark-engine tool, the worker) link nothing of CUDA and load the module at run time with
 * dlopen. The module exports one C function, SM_CUDA_PLUGIN_SYMBOL, that returns a table of the
 * backend's functions (sm_cuda_api) with its ABI number; the loader refuses a table of another
 * ABI. Looked up, in order: an explicit path given by the caller, the environment variable
 * SM_CUDA_PLUGIN, then ../lib/stepmark/libstepmark-cuda.so next to the running program (an
 * installed tree, or build/bin in a build tree) and the build tree's lib/stepmark folder. */
#ifndef SM_CUDA_PLUGIN_H
#define SM_CUDA_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cuda/sm_cuda.h"
#include "sm_error.h"

/* Raised whenever sm_cuda_api changes (members added, removed or reordered). */
#define SM_CUDA_ABI 1
#define SM_CUDA_PLUGIN_SYMBOL "sm_cuda_plugin_api"
#define SM_CUDA_PLUGIN_FILE "libstepmark-cuda.so"
#define SM_CUDA_PLUGIN_ENV "SM_CUDA_PLUGIN"

/* The backend's functions, as declared in cuda/sm_cuda.h. */
typedef struct sm_cuda_api {
    int abi;     /* SM_CUDA_ABI of the module */
    size_t size; /* sizeof(sm_cuda_api) in the module */
    void (*opts_init)(sm_cuda_opts *opts);
    bool (*available)(char *why, size_t why_size);
    void (*describe)(int device, char *buf, size_t size);
    sm_code (*model_load)(const char *path, const sm_cuda_opts *opts, sm_cuda_model **out,
                          sm_err *err);
    sm_code (*model_random)(const sm_model_config *cfg, const sm_cuda_opts *opts, uint64_t seed,
                            sm_cuda_model **out, sm_err *err);
    void (*model_free)(sm_cuda_model **model);
    const sm_model_config *(*model_config)(const sm_cuda_model *m);
    size_t (*weight_bytes)(const sm_cuda_model *m);
    size_t (*step_bytes)(const sm_cuda_model *m);
    size_t (*kv_bytes_per_pos)(const sm_cuda_model *m);
    int64_t (*free_positions)(const sm_cuda_model *m);
    void (*set_fast)(sm_cuda_model *m, bool fast);
    sm_code (*seq_new)(sm_cuda_model *m, int64_t max_ctx, sm_cuda_seq **out, sm_err *err);
    void (*seq_free)(sm_cuda_seq **seq);
    int64_t (*seq_pos)(const sm_cuda_seq *s);
    sm_code (*seq_copy_prefix)(sm_cuda_seq *dst, const sm_cuda_seq *src, int64_t n, sm_err *err);
    sm_code (*seq_fill_synthetic)(sm_cuda_seq *s, int64_t n_pos, uint64_t seed, sm_err *err);
    sm_code (*forward)(sm_cuda_model *m, sm_cuda_seq *const *seqs, const int32_t *const *tokens,
                       const int64_t *n_tokens, int n_seqs, float *logits, sm_err *err);
    sm_code (*sample)(sm_cuda_model *m, int n_seqs, double temperature, const uint64_t *seeds,
                      const uint64_t *counters, int32_t *out, sm_err *err);
    sm_code (*sync)(sm_cuda_model *m, sm_err *err);
    sm_code (*measure_bandwidth)(int device, size_t bytes, double *read_gbs, double *copy_gbs,
                                 sm_err *err);
} sm_cuda_api;

/* The module's entry point. */
typedef const sm_cuda_api *(*sm_cuda_plugin_fn)(void);

/* Loads the module: from path when path is neither NULL nor "" (only there), else from
 * $SM_CUDA_PLUGIN when set (only there), else from the default places. The module stays loaded
 * for the rest of the process. Errors: SM_ENOTFOUND (the message lists every place tried and
 * why each failed), SM_EFORMAT (a file that is not the plugin: no entry point), SM_EUNSUPPORTED
 * (another ABI). */
sm_code sm_cuda_plugin_load(const char *path, const sm_cuda_api **out, sm_err *err);

/* sm_cuda_plugin_load, then checks that a CUDA device can be used: SM_EUNSUPPORTED with the
 * module's reason (e.g. "no CUDA device (...)") when not. */
sm_code sm_cuda_plugin_open(const char *path, const sm_cuda_api **out, sm_err *err);

#endif
