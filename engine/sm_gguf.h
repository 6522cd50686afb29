/* sm_gguf: a read-only, memory-mapped GGUF file (versions 2 and 3, little-endian). Every
 * string length, array count, tensor dimension, type and offset is checked against the file
 * size while parsing; tensor offsets must respect general.alignment, lie inside the data area
 * and not overlap. Tensors of types the engine computes with (f32, f16, bf16, q8_0, q4_0,
 * q4_k, q5_k, q6_k) get
 * that sm_dtype; others are recorded (so their bytes are still checked) as SM_DTYPE_COUNT.
 * Shapes are given outermost first like PyTorch (GGUF's ne[] reversed). */
#ifndef SM_GGUF_H
#define SM_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"
#include "sm_model_tensor.h"

typedef struct sm_gguf sm_gguf;

/* Errors: SM_ENOTFOUND, SM_EIO, SM_EFORMAT, SM_EUNSUPPORTED (big-endian or a version other
 * than 2/3), SM_ENOMEM. */
sm_code sm_gguf_open(const char *path, sm_gguf **out, sm_err *err);
void sm_gguf_close(sm_gguf **g);

size_t sm_gguf_tensor_count(const sm_gguf *g);
const sm_tensor *sm_gguf_tensor(const sm_gguf *g, size_t i);
const sm_tensor *sm_gguf_find(const sm_gguf *g, const char *name);

/* Metadata lookups: SM_ENOTFOUND when the key is absent, SM_EFORMAT when it has another type.
 * get_int accepts every integer type (and bool); get_float accepts f32, f64 and integers. */
sm_code sm_gguf_get_int(const sm_gguf *g, const char *key, int64_t *out, sm_err *err);
sm_code sm_gguf_get_float(const sm_gguf *g, const char *key, double *out, sm_err *err);
/* The string is not NUL-terminated inside the file: *out is a malloc'd copy. */
sm_code sm_gguf_get_str(const sm_gguf *g, const char *key, char **out, sm_err *err);
/* Number of elements of an array value. */
sm_code sm_gguf_get_array_len(const sm_gguf *g, const char *key, uint64_t *n, sm_err *err);

#endif
