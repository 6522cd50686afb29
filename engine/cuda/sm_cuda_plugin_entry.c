/* The entry point of the plugin libstepmark-cuda.so: the table of the backend's functions that
 * engine/sm_cuda_plugin.c loads (see sm_cuda_plugin.h). The only symbol the module exports. */
#include "../sm_cuda_plugin.h"

__attribute__((visibility("default"))) const sm_cuda_api *sm_cuda_plugin_api(void);

static const sm_cuda_api api = {
    .abi = SM_CUDA_ABI,
    .size = sizeof(sm_cuda_api),
    .opts_init = sm_cuda_opts_init,
    .available = sm_cuda_available,
    .describe = sm_cuda_describe,
    .model_load = sm_cuda_model_load,
    .model_random = sm_cuda_model_random,
    .model_free = sm_cuda_model_free,
    .model_config = sm_cuda_model_config,
    .weight_bytes = sm_cuda_weight_bytes,
    .step_bytes = sm_cuda_step_bytes,
    .kv_bytes_per_pos = sm_cuda_kv_bytes_per_pos,
    .free_positions = sm_cuda_free_positions,
    .set_fast = sm_cuda_set_fast,
    .seq_new = sm_cuda_seq_new,
    .seq_free = sm_cuda_seq_free,
    .seq_pos = sm_cuda_seq_pos,
    .seq_copy_prefix = sm_cuda_seq_copy_prefix,
    .seq_fill_synthetic = sm_cuda_seq_fill_synthetic,
    .forward = sm_cuda_forward,
    .sample = sm_cuda_sample,
    .sync = sm_cuda_sync,
    .measure_bandwidth = sm_cuda_measure_bandwidth,
};

const sm_cuda_api *sm_cuda_plugin_api(void)
{
    return &api;
}
