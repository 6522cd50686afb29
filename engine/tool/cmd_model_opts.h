/* cmd_model_opts: argument helpers shared by the model subcommands (run, logits, info, and any
 * other command that loads a model): the common model options and id lists. */
#ifndef SM_CMD_MODEL_OPTS_H
#define SM_CMD_MODEL_OPTS_H

#include <stddef.h>
#include <stdint.h>

#include "sm_model.h"

/* If argv[*i] is one of --dtype T, --threads N, --fast, --isa NAME, consumes it (and its value)
 * into opts and returns 1; returns 0 if it is not one of them, -1 (message printed) when its
 * value is bad or missing. */
int sm_cmd_model_opt(int argc, char **argv, int *i, sm_model_opts *opts);

/* Parses whitespace-separated non-negative integer ids. Returns 0, or -1 with a message. */
int sm_cmd_parse_ids(const char *s, int32_t **ids, size_t *n);

/* Usage text for the options above. */
#define SM_CMD_MODEL_OPTS_HELP \
    "[--dtype f32|bf16|f16|q8_0|q4_0] [--kv-dtype f32|f16] [--threads N] [--fast] [--isa NAME]"

#endif
