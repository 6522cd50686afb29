/* sm_model_internal: the model's and the sequences' insides, shared by the files that make up
 * sm_model (see sm_model.h):
 *   sm_model_load.c     finding and opening the files (safetensors or GGUF), the model's life;
 *   sm_model_weights.c  tensors by role, converted or repacked into compute-ready weights;
 *   sm_model_seq.c      sequences and their KV caches;
 *   sm_model_forward.c  the activations and the batched forward pass. */
#ifndef SM_MODEL_INTERNAL_H
#define SM_MODEL_INTERNAL_H

#include "sm_gguf.h"
#include "sm_model.h"
#include "sm_safetensors.h"

/* Rows pushed through the layers at once; longer steps are processed in chunks. */
#define SM_MODEL_CHUNK 512
#define SM_MODEL_MAX_SHARDS 4096

typedef struct sm_layer {
    sm_matrix q, k, v, o, gate, up, down;
    float *bq, *bk, *bv, *attn_norm, *mlp_norm;
} sm_layer;

/* The activation buffers of one forward chunk: each holds rows rows of width[buffer] floats. */
typedef enum sm_act {
    SM_ACT_X,    /* the residual stream (hidden) */
    SM_ACT_XN,   /* its normed copy (hidden) */
    SM_ACT_TMP,  /* a product added to the stream (hidden) */
    SM_ACT_Q,    /* queries (heads * head_dim) */
    SM_ACT_ATT,  /* attention output (heads * head_dim) */
    SM_ACT_K,    /* new keys (kv heads * head_dim) */
    SM_ACT_V,    /* new values (kv heads * head_dim) */
    SM_ACT_GATE, /* MLP gate, then silu(gate) * up (intermediate) */
    SM_ACT_UP,   /* MLP up (intermediate) */
    SM_ACT_COUNT
} sm_act;

/* The activations (sized and sliced by sm_model_forward.c's acts_* functions), plus the
 * attention's score scratch: one slice per row-parallel attention task, or all of it for one
 * call over every head. */
typedef struct sm_acts {
    int64_t rows;                /* rows every buffer holds (0: none yet) */
    int64_t width[SM_ACT_COUNT]; /* floats per row of each buffer */
    float *buf[SM_ACT_COUNT];
    float *att_scratch;
    int64_t att_scratch_n; /* floats in att_scratch */
    int64_t att_tasks;     /* slices it is cut into for row-parallel attention */
} sm_acts;

struct sm_model {
    sm_model_summary info;
    char *dir;
    sm_pool *pool;
    sm_kctx k;
    sm_safetensors **st;
    size_t n_st;
    sm_gguf *gguf;
    bool dtype_set;
    sm_dtype dtype;
    int pack[SM_DTYPE_COUNT]; /* 0, or matrices of that type are repacked with this width */
    sm_matrix embed, lm_head;
    float *final_norm;
    sm_layer *layers;
    void **owned;
    size_t n_owned, cap_owned;
    size_t n_stored[SM_DTYPE_COUNT + 1];
    sm_acts acts; /* forward scratch */
};

struct sm_seq {
    sm_model *model;
    int64_t pos, max_ctx;
    uint8_t *kv; /* values of the model's kv_dtype */
    size_t kv_bytes;
};

/* Bytes of one KV cache value (1: the 8-bit cache's int8, whose rows end in scales). */
static inline size_t sm_model_kv_value_bytes(const sm_model *m)
{
    return m->info.kv_dtype == SM_DTYPE_Q8_0 ? 1 : m->info.kv_dtype == SM_DTYPE_F16 ? 2 : 4;
}

/* Bytes of one position of one layer's keys (or values): kv_dim values, and for the 8-bit
 * cache one f32 scale per kv head after them. */
static inline size_t sm_model_kv_row_bytes(const sm_model *m)
{
    return sm_model_kv_bytes_per_pos(&m->info.config, m->info.kv_dtype) /
           (2 * (size_t)m->info.config.n_layers);
}

/* sm_model_weights.c: reads every weight of the model's configuration from its open files into
 * compute-ready matrices and vectors, and fills the summary's sizes and counts. */
sm_code sm_model_load_weights(sm_model *m, sm_err *err);

/* sm_model_seq.c: the K (which = 0) or V (1) cache of layer l: max_ctx rows of kv_dim values. */
void *sm_seq_cache(const sm_seq *s, int64_t l, int which);
/* Writes the kv_dim values x as position pos of layer l's K (which = 0) or V cache. */
void sm_seq_kv_store(sm_seq *s, int64_t l, int which, int64_t pos, const float *x);

/* sm_model_forward.c: frees the activations. */
void sm_acts_free(sm_acts *a);

#endif
