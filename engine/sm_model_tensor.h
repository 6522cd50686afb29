/* sm_model_tensor: what the model loader needs from a weight file: a read-only memory-mapped
 * file, and a tensor record (name, stored type, shape outermost first as in PyTorch, bytes)
 * that the safetensors and GGUF readers fill after checking it lies inside the file. */
#ifndef SM_MODEL_TENSOR_H
#define SM_MODEL_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"
#include "sm_kernels.h"

#define SM_TENSOR_MAX_DIMS 4

typedef struct sm_tensor {
    char *name;
    sm_dtype dtype;     /* SM_DTYPE_COUNT: a stored type the engine does not compute with */
    char type_name[16]; /* the file's own name for the type, for messages */
    int n_dims;
    int64_t shape[SM_TENSOR_MAX_DIMS]; /* outermost first: a matrix is (rows, cols) */
    const void *data;
    size_t nbytes;
} sm_tensor;

typedef struct sm_mapped_file {
    const uint8_t *data;
    size_t size;
} sm_mapped_file;

/* Maps path read-only. An empty file maps to data == NULL, size 0. */
sm_code sm_file_map(const char *path, sm_mapped_file *out, sm_err *err);
void sm_file_unmap(sm_mapped_file *f);

/* Number of elements of t (0 on overflow past INT64_MAX, which readers reject). */
int64_t sm_tensor_numel(const sm_tensor *t);

/* Writes "[a, b, c]" into buf. */
void sm_tensor_shape_str(const sm_tensor *t, char *buf, size_t cap);

/* Checks that tensors (sorted by data) do not overlap: SM_EFORMAT naming the pair if so.
 * Reorders the array of pointers. */
sm_code sm_tensors_check_overlap(const sm_tensor **ts, size_t n, const char *file, sm_err *err);

#endif
