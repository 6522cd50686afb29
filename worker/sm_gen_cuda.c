/* sm_gen_cuda: the worker's generation on a GPU through the CUDA plugin (see sm_gen_cuda.h). */
#include "sm_gen_cuda.h"

#include <stdio.h>
#include <string.h>

#include "sm_cuda_plugin.h"
#include "sm_log.h"

#ifndef SM_VERSION
#define SM_VERSION "0"
#endif

/* Set to true once docs/engine-gpu.md records a verified GPU run of the worker. */
const bool sm_gen_cuda_verified = false;

sm_code sm_gen_cuda_load(const sm_config *cfg, sm_dev_model **out, char *version, size_t n,
                         sm_err *err)
{
    *out = NULL;
    const char *dtype = cfg->worker.dtype;
    if (dtype[0] && strcmp(dtype, "bf16") != 0)
        return sm_err_set(err, SM_ECONFIG, "worker.dtype %s: device cuda runs bf16 weights", dtype);
    if (!sm_gen_cuda_verified)
        sm_log(SM_LOG_WARN,
               "worker.device cuda is UNVERIFIED: the CUDA backend has not been run on a GPU "
               "yet (no GPU run recorded in docs/engine-gpu.md); check its grades against a "
               "cpu worker before relying on them",
               NULL);
    sm_dev_opts o = {.device = SM_DEVICE_CUDA};
    sm_model_opts_init(&o.cpu);
    o.cpu.fast = !cfg->worker.deterministic;
    sm_code rc = sm_dev_load(cfg->worker.model, &o, out, err);
    if (rc)
        return sm_err_prefix(err, "worker.device cuda");
    char dev[256];
    sm_dev_describe(*out, dev, sizeof dev);
    sm_log(SM_LOG_INFO, "cuda device", "device", dev, NULL);
    snprintf(version, n, "%s+cuda+%s+bf16", SM_VERSION, o.cpu.fast ? "fast" : "det");
    return SM_OK;
}

sm_code sm_gen_cuda_new(sm_dev_model *model, const sm_tokenizer *tok, const sm_sched_opts *opts,
                        sm_gen_done_fn done, sm_gen_backend *out, sm_err *err)
{
    if (opts->slots > SM_CUDA_MAX_BATCH) {
        sm_dev_free(&model);
        return sm_err_set(err, SM_ECONFIG, "worker.slots %d: device cuda runs at most %d",
                          opts->slots, SM_CUDA_MAX_BATCH);
    }
    return sm_gen_local_new_dev(model, tok, opts, done, out, err);
}
