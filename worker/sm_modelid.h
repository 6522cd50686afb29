/* sm_modelid: the identity of a model file recorded with every grading: its name (the folder
 * or file name) and a SHA-256 over config.json and every weight file (model.safetensors, the
 * shards named by model.safetensors.index.json, or the GGUF file), so a regrade can prove it
 * ran on the same weights. */
#ifndef SM_MODELID_H
#define SM_MODELID_H

#include "sm_error.h"
#include "sm_sha256.h"

/* name: at least 256 bytes; hash: SM_SHA256_HEX. Each file contributes its name, a NUL, its
 * size (8 bytes, little endian) and its bytes, in a fixed order. */
sm_code sm_modelid_compute(const char *path, char *name, size_t name_size, char hash[SM_SHA256_HEX],
                           sm_err *err);

#endif
