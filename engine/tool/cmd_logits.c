/* cmd_logits: `stepmark-engine logits --model PATH --ids "ID ..." [options]` runs the ids as one
 * prompt and prints the logits of the last position, one per line (%.9g, enough to round-trip
 * a float). --device cuda runs it on the GPU through the CUDA plugin (sm_cuda_plugin.h). */
#include <stdio.h>
#include <stdlib.h>

#include "cmd_model_opts.h"
#include "commands.h"
#include "sm_dev.h"
#include "sm_model.h"

static const sm_arg_opt logits_opts[] = {
    {"model", 0, SM_ARG_VALUE, "PATH", "the model folder or GGUF file", true},
    {"ids", 0, SM_ARG_VALUE, "\"ID ...\"", "the prompt's token ids", true},
    {"device", 0, SM_ARG_VALUE, "cpu|cuda", "where to run it (default cpu)", false},
    {0}};
static const sm_args_spec logits_spec = {
    "stepmark-engine logits",
    NULL,
    "Runs the ids as one prompt and prints the logits of the last position, one per line.",
    logits_opts,
    sm_cmd_model_opts,
    0,
    0};

/* Prints n logits; 0, or 1 when stdout fails. */
static int print_logits(const float *lg, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        printf("%.9g\n", lg[i]);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

int sm_cmd_logits(int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&logits_spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE) {
        return rc;
    }
    sm_model_opts opts;
    sm_model_opts_init(&opts);
    /* the values point into argv */
    const char *path = sm_args_get(&a, "model"), *ids_s = sm_args_get(&a, "ids");
    const char *device = sm_args_get(&a, "device");
    rc = sm_cmd_model_opts_get(&a, &opts);
    sm_dev_opts dopts = {.device = SM_DEVICE_CPU, .cpu = opts};
    sm_err err = {0};
    if (rc == 0 && device && sm_device_parse(device, &dopts.device, &err) != SM_OK) {
        fprintf(stderr, "logits: --device is cpu or cuda, not %s\n", device);
        rc = -1;
    }
    sm_args_free(&a);
    if (rc != 0) {
        return 2;
    }
    int32_t *ids;
    size_t n;
    if (sm_cmd_parse_ids(ids_s, &ids, &n) != 0) {
        return 2;
    }
    if (n == 0) {
        fprintf(stderr, "logits: --ids is empty\n");
        free(ids);
        return 2;
    }
    sm_dev_model *m = NULL;
    sm_dev_seq *s = NULL;
    float *lg = NULL;
    int status = 1;
    if (sm_dev_load(path, &dopts, &m, &err) != SM_OK ||
        sm_dev_seq_new(m, (int64_t)n, &s, &err) != SM_OK) {
        fprintf(stderr, "logits: %s\n", err.msg);
        goto done;
    }
    int64_t V = sm_dev_config(m)->vocab;
    lg = malloc((size_t)V * sizeof *lg);
    int64_t nt = (int64_t)n;
    const int32_t *t = ids;
    if (lg == NULL || sm_dev_forward(m, &s, &t, &nt, 1, lg, &err) != SM_OK) {
        fprintf(stderr, "logits: %s\n", lg ? err.msg : "out of memory");
        goto done;
    }
    status = print_logits(lg, V);
done:
    free(lg);
    free(ids);
    sm_dev_seq_free(&s);
    sm_dev_free(&m);
    return status;
}
