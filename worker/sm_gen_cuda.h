/* sm_gen_cuda: the worker's generation on a GPU (worker.device: cuda). The model is loaded
 * through the CUDA plugin (engine/sm_cuda_plugin.h: $SM_CUDA_PLUGIN or
 * ../lib/stepmark/libstepmark-cuda.so beside the program) and the worker's usual scheduler runs
 * over it (sm_sched through sm_dev: continuous batching of the slots in one sm_cuda_forward per
 * step, the prefix cache with sm_cuda_seq_copy_prefix, stop strings, max tokens, the repair
 * phase). Each step's last logits are copied to the host and sampled there with the engine's
 * sm_sampler, so a job's sampling settings (temperature, top-p/k, min-p, repetition penalty,
 * seed) mean exactly what they mean on the CPU. */
#ifndef SM_GEN_CUDA_H
#define SM_GEN_CUDA_H

#include <stdbool.h>
#include <stddef.h>

#include "sm_config.h"
#include "sm_dev.h"
#include "sm_error.h"
#include "sm_gen.h"

/* Whether a run of the worker on a GPU has been recorded (docs/engine-gpu.md): until then the
 * worker's startup log warns that device cuda is unverified. */
extern const bool sm_gen_cuda_verified;

/* Loads cfg->worker.model on the GPU: the plugin, a CUDA device, then the model (bf16 weights;
 * worker.deterministic false: cuBLAS products). Errors: the plugin's
 * (not found: where it looked; wrong file; ABI), "no CUDA device", SM_ECONFIG for a worker.dtype
 * the GPU does not run, and sm_cuda_model_load's. version gets the engine version recorded with
 * results (e.g. 0.9.0+cuda+det+bf16). */
sm_code sm_gen_cuda_load(const sm_config *cfg, sm_dev_model **out, char *version, size_t n,
                         sm_err *err);

/* The backend over model (taken over); opts->slots at most SM_CUDA_MAX_BATCH. */
sm_code sm_gen_cuda_new(sm_dev_model *model, const sm_tokenizer *tok, const sm_sched_opts *opts,
                        sm_gen_done_fn done, sm_gen_backend *out, sm_err *err);

#endif
