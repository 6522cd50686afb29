/* cmd_model_opts: argument helpers shared by the model subcommands (run, logits, info, and any
 * other command that loads a model): the common model options and id lists. */
#ifndef SM_CMD_MODEL_OPTS_H
#define SM_CMD_MODEL_OPTS_H

#include <stddef.h>
#include <stdint.h>

#include "sm_args.h"
#include "sm_model.h"

/* The options --dtype T, --kv-dtype T, --threads N, --fast, --isa NAME, for a spec's `more`
 * table (sm_args.h). */
extern const sm_arg_opt sm_cmd_model_opts[];

/* Reads the options above from a into opts; returns 0, or -1 (message printed) when a value is
 * bad. */
int sm_cmd_model_opts_get(const sm_args *a, sm_model_opts *opts);

/* Parses whitespace-separated non-negative integer ids. Returns 0, or -1 with a message. */
int sm_cmd_parse_ids(const char *s, int32_t **ids, size_t *n);

#endif
