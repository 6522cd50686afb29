/* sm_dev: one interface over the engine's two forward passes, the CPU engine (sm_model.h) and
 * the CUDA backend loaded as a plugin (sm_cuda_plugin.h), for the code that only needs a model,
 * sequences and logits: the worker's scheduler (sm_sched) and the stepmark-engine commands
 * run, logits and bench. Logits always come back to the host, so sampling (sm_sampler) and
 * stop strings are the same code on both devices. Used by one thread at a time. */
#ifndef SM_DEV_H
#define SM_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"
#include "sm_model.h"
#include "sm_pool.h"

typedef enum sm_device { SM_DEVICE_CPU = 0, SM_DEVICE_CUDA } sm_device;

typedef struct sm_dev_opts {
    sm_device device;
    const char *cuda_plugin; /* the plugin's path; NULL or "": $SM_CUDA_PLUGIN or the defaults */
    sm_model_opts cpu;       /* the CPU engine's options; on CUDA only .fast is used */
    bool cuda_int8;          /* CUDA: int8 weight-only matrices */
} sm_dev_opts;

typedef struct sm_dev_model sm_dev_model;
typedef struct sm_dev_seq sm_dev_seq;

/* "cpu" or "cuda"; SM_EINVAL otherwise. */
sm_code sm_device_parse(const char *name, sm_device *out, sm_err *err);

/* Loads the model at path on the device. CUDA: the plugin's errors (not found, ABI, no CUDA
 * device), then sm_cuda_model_load's. */
sm_code sm_dev_load(const char *path, const sm_dev_opts *opts, sm_dev_model **out, sm_err *err);
/* A CPU model loaded by the caller, which keeps owning it (sm_dev_free leaves it). */
sm_code sm_dev_wrap_cpu(sm_model *model, sm_dev_model **out, sm_err *err);
void sm_dev_free(sm_dev_model **m);

sm_device sm_dev_device(const sm_dev_model *m);
const sm_model_config *sm_dev_config(const sm_dev_model *m);
/* The CPU model (NULL on CUDA), and its thread pool (NULL on CUDA). */
sm_model *sm_dev_cpu(sm_dev_model *m);
sm_pool *sm_dev_pool(sm_dev_model *m);
/* The folder of the model's files (the tokenizer's), into buf. */
void sm_dev_dir(const sm_dev_model *m, char *buf, size_t size);
/* One line about the device (CPU: "cpu"; CUDA: the GPU's name, memory, driver). */
void sm_dev_describe(const sm_dev_model *m, char *buf, size_t size);

sm_code sm_dev_seq_new(sm_dev_model *m, int64_t max_ctx, sm_dev_seq **out, sm_err *err);
void sm_dev_seq_free(sm_dev_seq **s);
int64_t sm_dev_seq_pos(const sm_dev_seq *s);
/* Drops every position (the sequence starts again empty). */
sm_code sm_dev_seq_reset(sm_dev_seq *s, sm_err *err);
/* As sm_seq_copy_prefix / sm_cuda_seq_copy_prefix (both of the same model). */
sm_code sm_dev_seq_copy_prefix(sm_dev_seq *dst, const sm_dev_seq *src, int64_t n, sm_err *err);
/* As sm_model_forward: logits (n_seqs rows of vocab) may be NULL. */
sm_code sm_dev_forward(sm_dev_model *m, sm_dev_seq *const *seqs, const int32_t *const *tokens,
                       const int64_t *n_tokens, int n_seqs, float *logits, sm_err *err);

#endif
