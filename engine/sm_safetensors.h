/* sm_safetensors: a read-only, memory-mapped safetensors file. The 8-byte header length, the
 * JSON header, every tensor's dtype, shape and data_offsets are checked against the file size
 * (byte counts must match the shape, offsets lie inside the data area, tensors never overlap)
 * before any tensor is handed out. */
#ifndef SM_SAFETENSORS_H
#define SM_SAFETENSORS_H

#include <stddef.h>

#include "sm_error.h"
#include "sm_model_tensor.h"

typedef struct sm_safetensors sm_safetensors;

/* Errors: SM_ENOTFOUND, SM_EIO, SM_EFORMAT (truncated file, bad header length, malformed JSON,
 * unknown dtype, shape/size mismatch, offsets past the end, overlapping tensors), SM_ENOMEM. */
sm_code sm_safetensors_open(const char *path, sm_safetensors **out, sm_err *err);
void sm_safetensors_close(sm_safetensors **f);

size_t sm_safetensors_count(const sm_safetensors *f);
const sm_tensor *sm_safetensors_tensor(const sm_safetensors *f, size_t i);
/* NULL if the file holds no tensor of that name. */
const sm_tensor *sm_safetensors_find(const sm_safetensors *f, const char *name);
const char *sm_safetensors_path(const sm_safetensors *f);

#endif
