/* cmd_info: `stepmark-engine info --model PATH [options]` loads a model and prints its summary:
 * architecture, sizes, stored and compute types, parameter count, bytes, end-of-sequence ids,
 * sampling defaults and the KV-cache memory per 1000 positions. */
#include <stdio.h>

#include "cmd_model_opts.h"
#include "commands.h"
#include "sm_model.h"

static const sm_arg_opt info_opts[] = {
    {"model", 0, SM_ARG_VALUE, "PATH", "the model folder or GGUF file", true}, {0}};
static const sm_args_spec info_spec = {"stepmark-engine info",
                                       NULL,
                                       "Loads a model and prints its summary.",
                                       info_opts,
                                       sm_cmd_model_opts,
                                       0,
                                       0};

int sm_cmd_info(int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&info_spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE) {
        return rc;
    }
    sm_model_opts opts;
    sm_model_opts_init(&opts);
    const char *path = sm_args_get(&a, "model"); /* points into argv */
    rc = sm_cmd_model_opts_get(&a, &opts);
    sm_args_free(&a);
    if (rc != 0) {
        return 2;
    }
    sm_err err = {0};
    sm_model *m = NULL;
    if (sm_model_load(path, &opts, &m, &err) != SM_OK) {
        fprintf(stderr, "info: %s\n", err.msg);
        return 1;
    }
    const sm_model_summary *s = sm_model_info(m);
    const sm_model_config *c = &s->config;
    printf("model:             %s\n", path);
    printf("architecture:      Qwen2ForCausalLM (qwen2)\n");
    printf("format:            %s\n", s->format);
    printf("hidden size:       %lld\n", (long long)c->hidden);
    printf("layers:            %lld\n", (long long)c->n_layers);
    printf("attention heads:   %lld (key/value heads %lld, head size %lld)\n",
           (long long)c->n_heads, (long long)c->n_kv_heads, (long long)c->head_dim);
    printf("MLP size:          %lld\n", (long long)c->intermediate);
    printf("vocabulary:        %lld\n", (long long)c->vocab);
    printf("max positions:     %lld\n", (long long)c->max_pos);
    printf("rope theta:        %g\n", c->rope_theta);
    printf("rms norm eps:      %g\n", c->rms_eps);
    printf("tied embeddings:   %s\n", c->tied ? "yes" : "no");
    printf("stored type:       %s", sm_dtype_name(s->stored_dtype));
    int kinds = 0;
    for (int t = 0; t < SM_DTYPE_COUNT; t++)
        kinds += s->n_stored[t] > 0;
    int shown = 0;
    for (int t = 0; kinds > 1 && t < SM_DTYPE_COUNT; t++)
        if (s->n_stored[t] > 0)
            printf("%s%s %d", shown++ ? ", " : " (", sm_dtype_name((sm_dtype)t), s->n_stored[t]);
    printf("%s\n", kinds > 1 ? " matrices)" : "");
    printf("compute type:      %s\n", sm_dtype_name(s->weight_dtype));
    if (s->packed)
        printf("weight layout:     repacked for the %s kernels, %d blocks per group\n",
               sm_isa_name(s->isa), s->packed);
    printf("parameters:        %lld (%.3f B)\n", (long long)s->n_params, (double)s->n_params / 1e9);
    printf("weight bytes:      %zu (%.1f MiB)\n", s->weight_bytes,
           (double)s->weight_bytes / 1048576.0);
    printf("bytes per token:   %zu (weights read by one decode step)\n", s->bytes_per_token);
    printf("kv cache:          %s, %zu bytes per position, %.1f MiB per 1k positions\n",
           sm_dtype_name(s->kv_dtype), s->kv_bytes_per_token,
           (double)s->kv_bytes_per_token * 1000.0 / 1048576.0);
    printf("bos id:            %d\n", c->bos_id);
    printf("eos ids:          ");
    for (int i = 0; i < c->n_eos; i++) {
        printf(" %d", c->eos_ids[i]);
    }
    printf("%s\n", c->n_eos ? "" : " (none)");
    if (c->has_sampling) {
        printf("sampling defaults: do_sample %s, temperature %g, top_p %g, top_k %lld, min_p %g, "
               "repetition_penalty %g\n",
               c->do_sample ? "true" : "false", c->temperature, c->top_p, (long long)c->top_k,
               c->min_p, c->repetition_penalty);
    } else {
        printf("sampling defaults: none (no generation_config.json)\n");
    }
    printf("kernels:           %s, %d threads, %s\n", sm_isa_name(s->isa), s->threads,
           s->deterministic ? "deterministic" : "fast");
    sm_model_free(&m);
    return 0;
}
