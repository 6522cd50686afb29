/* sm_cuda_internal: the CUDA backend's model and sequence structures, shared by
 * sm_cuda_model.c (loading, weights, the page pool) and sm_cuda_forward.c (sequences, the
 * forward pass, sampling). */
#ifndef SM_CUDA_INTERNAL_H
#define SM_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "sm_cuda.h"
#include "sm_cuda_kernels.h"

/* Rows pushed through the layers at once; longer steps go in chunks. */
#define SM_CUDA_CHUNK 2048

/* A weight matrix on the GPU: rows x cols, bf16, or int8 with one scale per row. */
typedef struct cu_mat {
    int rows, cols;
    uint16_t *bf;
    int8_t *i8;
    float *scale;
} cu_mat;

typedef struct cu_layer {
    cu_mat q, k, v, o, gate, up, down;
    float *bq, *bk, *bv, *attn_norm, *mlp_norm;
} cu_layer;

/* Device scratch of one step, grown as needed. */
typedef struct cu_scratch {
    int64_t rows; /* rows of x, tmp, q, k, v, gate, up, in, ids, meta */
    float *x, *tmp, *q, *k, *v, *gate, *up;
    uint16_t *in; /* bf16 inputs of the products: [rows][max(hidden, q dim, intermediate)] */
    int32_t *ids;
    sm_cu_row *meta;
    int32_t *last_idx;
    int64_t part_n; /* floats in part */
    float *part;
    int64_t tables_n; /* ints in tables */
    int32_t *tables;
    int seqs; /* rows of last_in, logits, tokens, seeds, counters */
    uint16_t *last_in;
    float *logits;
    int32_t *tokens;
    uint64_t *seeds, *counters;
} cu_scratch;

struct sm_cuda_model {
    sm_model_config cfg;
    sm_cu_shape sh;
    sm_cuda_opts opts;
    cudaStream_t stream;
    cublasHandle_t blas;
    cu_mat embed, lm_head; /* lm_head.bf == embed.bf when tied */
    float *final_norm;
    cu_layer *layers;
    void **owned; /* every device allocation of the weights */
    size_t n_owned, cap_owned;
    size_t weight_bytes, step_bytes;
    uint16_t *pool; /* KV pages */
    size_t page_bytes;
    int64_t n_pages;
    int32_t *free_pages; /* host stack of free page numbers */
    int64_t n_free;
    cu_scratch s;
    int last_seqs; /* sequences of the last forward (rows of s.logits) */
};

struct sm_cuda_seq {
    sm_cuda_model *m;
    int64_t pos, max_ctx;
    int32_t *pages; /* host: page of positions [i * SM_CUDA_PAGE, ...) */
    int64_t n_pages, cap_pages;
};

/* An sm_code for a failed CUDA runtime call (what: the step that failed). */
sm_code sm_cuda_fail(sm_err *err, int cuda_error, const char *what);
/* cudaMalloc that records nothing; SM_ENOMEM with the size on failure. */
sm_code sm_cuda_alloc(void **p, size_t bytes, const char *what, sm_err *err);
/* Makes s hold pages for n positions. SM_ELIMIT when the pool is out of pages. */
sm_code sm_cuda_seq_reserve(sm_cuda_seq *s, int64_t n, sm_err *err);

#endif
