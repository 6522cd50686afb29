/* sm_model_weights: the model's weights, from the tensors of its open files (safetensors or
 * GGUF) to compute-ready matrices and vectors. Each tensor is found by its role and layer,
 * checked against the configuration's shape, and used in place (memory-mapped) when it already
 * has the compute type, else converted (and q8_0 repacked for the SIMD kernels) once, here, by
 * every thread of the model's pool. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sm_model_internal.h"
#include "sm_pool.h"

/* ---- ownership of converted buffers ---- */

static void *model_alloc(sm_model *m, size_t n)
{
    if (m->n_owned == m->cap_owned) {
        size_t cap = m->cap_owned ? 2 * m->cap_owned : 64;
        void **p = realloc(m->owned, cap * sizeof *p);
        if (p == NULL) {
            return NULL;
        }
        m->owned = p;
        m->cap_owned = cap;
    }
    void *p = NULL;
    size_t sz = (n + 63) / 64 * 64;
    if (posix_memalign(&p, 64, sz ? sz : 64) != 0) {
        return NULL;
    }
    m->owned[m->n_owned++] = p;
    return p;
}

/* ---- tensors by role ---- */

enum role {
    R_EMBED,
    R_NORM,
    R_LMHEAD,
    R_Q,
    R_K,
    R_V,
    R_QB,
    R_KB,
    R_VB,
    R_O,
    R_ATTN_NORM,
    R_MLP_NORM,
    R_GATE,
    R_UP,
    R_DOWN
};

static void tensor_name(const sm_model *m, enum role r, int64_t l, char *buf, size_t cap)
{
    static const char *hf[] = {"model.embed_tokens.weight",
                               "model.norm.weight",
                               "lm_head.weight",
                               "model.layers.%lld.self_attn.q_proj.weight",
                               "model.layers.%lld.self_attn.k_proj.weight",
                               "model.layers.%lld.self_attn.v_proj.weight",
                               "model.layers.%lld.self_attn.q_proj.bias",
                               "model.layers.%lld.self_attn.k_proj.bias",
                               "model.layers.%lld.self_attn.v_proj.bias",
                               "model.layers.%lld.self_attn.o_proj.weight",
                               "model.layers.%lld.input_layernorm.weight",
                               "model.layers.%lld.post_attention_layernorm.weight",
                               "model.layers.%lld.mlp.gate_proj.weight",
                               "model.layers.%lld.mlp.up_proj.weight",
                               "model.layers.%lld.mlp.down_proj.weight"};
    static const char *gg[] = {
        "token_embd.weight",           "output_norm.weight",        "output.weight",
        "blk.%lld.attn_q.weight",      "blk.%lld.attn_k.weight",    "blk.%lld.attn_v.weight",
        "blk.%lld.attn_q.bias",        "blk.%lld.attn_k.bias",      "blk.%lld.attn_v.bias",
        "blk.%lld.attn_output.weight", "blk.%lld.attn_norm.weight", "blk.%lld.ffn_norm.weight",
        "blk.%lld.ffn_gate.weight",    "blk.%lld.ffn_up.weight",    "blk.%lld.ffn_down.weight"};
    const char *fmt = m->gguf ? gg[r] : hf[r];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(buf, cap, fmt, (long long)l);
#pragma GCC diagnostic pop
}

static const sm_tensor *lookup(const sm_model *m, const char *name)
{
    if (m->gguf) {
        return sm_gguf_find(m->gguf, name);
    }
    for (size_t i = 0; i < m->n_st; i++) {
        const sm_tensor *t = sm_safetensors_find(m->st[i], name);
        if (t) {
            return t;
        }
    }
    return NULL;
}

/* ---- conversions ---- */

static sm_code row_to_f32(sm_dtype t, const void *src, int64_t cols, float *dst, sm_err *err)
{
    const uint8_t *s = src;
    switch (t) {
    case SM_DTYPE_F32:
        memcpy(dst, src, (size_t)cols * 4);
        return SM_OK;
    case SM_DTYPE_F16:
    case SM_DTYPE_BF16:
        for (int64_t i = 0; i < cols; i++) {
            uint16_t v;
            memcpy(&v, s + 2 * i, 2);
            dst[i] = t == SM_DTYPE_F16 ? sm_f16_to_f32(v) : sm_bf16_to_f32(v);
        }
        return SM_OK;
    default:
        return sm_dequantize_row(t, src, cols, dst, err);
    }
}

static sm_code row_from_f32(sm_dtype t, const float *src, int64_t cols, void *dst, sm_err *err)
{
    uint8_t *d = dst;
    switch (t) {
    case SM_DTYPE_F32:
        memcpy(dst, src, (size_t)cols * 4);
        return SM_OK;
    case SM_DTYPE_F16:
    case SM_DTYPE_BF16:
        for (int64_t i = 0; i < cols; i++) {
            uint16_t v = t == SM_DTYPE_F16 ? sm_f32_to_f16(src[i]) : sm_f32_to_bf16(src[i]);
            memcpy(d + 2 * i, &v, 2);
        }
        return SM_OK;
    default:
        return sm_quantize_row(t, src, cols, dst, err);
    }
}

typedef struct convert_job {
    const sm_tensor *src;
    sm_dtype to;
    int pack; /* 0, or rows go on to the kernels' packed layout of this width */
    int64_t rows, cols;
    uint8_t *dst;
    sm_code rc[64];
    sm_err err[64];
} convert_job;

/* Rows in units of 16 (sm_pack_rows packs a matrix in parts that start at such rows): a task
 * converts whole units. */
static void convert_task(void *arg, int task, int n_tasks)
{
    convert_job *j = arg;
    int64_t unit = 16, units = (j->rows + unit - 1) / unit;
    int64_t u0 = units * task / n_tasks, u1 = units * (task + 1) / n_tasks;
    size_t sb = sm_dtype_row_bytes(j->src->dtype, j->cols);
    size_t qb = sm_dtype_row_bytes(j->to, j->cols);
    bool convert = j->src->dtype != j->to;
    float *tmp = malloc((size_t)j->cols * sizeof *tmp);
    /* a unit's rows as stored in to, before packing */
    uint8_t *rows = j->pack && convert ? malloc(qb * (size_t)unit) : NULL;
    if (tmp == NULL || (j->pack && convert && rows == NULL)) {
        j->rc[task] = sm_err_set(&j->err[task], SM_ENOMEM, "out of memory");
        free(tmp);
        return;
    }
    for (int64_t u = u0; u < u1; u++) {
        int64_t r0 = u * unit, n = j->rows - r0 < unit ? j->rows - r0 : unit;
        const uint8_t *src = (const uint8_t *)j->src->data + (size_t)r0 * sb;
        sm_code rc = SM_OK;
        if (convert) { /* to type to (into rows when packed next) */
            uint8_t *out = j->pack ? rows : j->dst + (size_t)r0 * qb;
            for (int64_t i = 0; i < n && rc == SM_OK; i++) {
                rc = row_to_f32(j->src->dtype, src + (size_t)i * sb, j->cols, tmp, &j->err[task]);
                if (rc == SM_OK) {
                    rc = row_from_f32(j->to, tmp, j->cols, out + (size_t)i * qb, &j->err[task]);
                }
            }
            src = out;
        }
        if (rc == SM_OK && j->pack) {
            rc = sm_pack_rows(j->pack, j->to, src, n, j->cols,
                              j->dst + sm_packed_bytes(j->pack, j->to, r0, j->cols), &j->err[task]);
        }
        if (rc != SM_OK) {
            j->rc[task] = rc;
            break;
        }
    }
    free(tmp);
    free(rows);
}

static bool is_block(sm_dtype t)
{
    return sm_dtype_block(t) > 1;
}

/* A converted tensor's file pages were read once: drops them from this process (they stay in
 * the page cache, and a later read, an embedding row say, maps them again), so that converting
 * at load does not hold both copies resident. Advice only: a failure changes nothing. */
static void release_source(const void *data, size_t bytes)
{
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        return;
    uintptr_t from = ((uintptr_t)data + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;
    uintptr_t to = ((uintptr_t)data + bytes) / (uintptr_t)page * (uintptr_t)page;
    if (to > from)
        (void)madvise((void *)from, to - from, MADV_DONTNEED);
}

static sm_code load_matrix(sm_model *m, enum role r, int64_t l, int64_t rows, int64_t cols,
                           sm_matrix *out, sm_err *err)
{
    char name[128], shape[96];
    tensor_name(m, r, l, name, sizeof name);
    const sm_tensor *t = lookup(m, name);
    if (t == NULL) {
        return sm_err_set(err, SM_EFORMAT, "missing tensor %s", name);
    }
    if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols) {
        sm_tensor_shape_str(t, shape, sizeof shape);
        return sm_err_set(err, SM_EFORMAT, "tensor %s has shape %s, the config needs [%lld, %lld]",
                          name, shape, (long long)rows, (long long)cols);
    }
    if (t->dtype == SM_DTYPE_COUNT) {
        return sm_err_set(err, SM_EUNSUPPORTED, "tensor %s has unsupported type %s", name,
                          t->type_name);
    }
    m->n_stored[t->dtype]++;
    sm_dtype to = m->dtype_set ? m->dtype : t->dtype == SM_DTYPE_F16 ? SM_DTYPE_BF16 : t->dtype;
    if (is_block(to) && cols % sm_dtype_block(to) != 0) {
        return sm_err_set(err, SM_EUNSUPPORTED, "tensor %s: %lld columns cannot be stored as %s",
                          name, (long long)cols, sm_dtype_name(to));
    }
    out->dtype = to;
    out->rows = rows;
    out->cols = cols;
    /* q8_0 and q4_0 weights go to the layout the SIMD kernels read fastest (repacked once,
     * here) */
    int pack = m->pack[to];
    out->packed = pack;
    size_t align = t->dtype == SM_DTYPE_F32 ? 4 : 2;
    if (to == t->dtype && !pack && (uintptr_t)t->data % align == 0) {
        out->data = t->data;
        return SM_OK;
    }
    size_t bytes =
        pack ? sm_packed_bytes(pack, to, rows, cols) : sm_dtype_row_bytes(to, cols) * (size_t)rows;
    uint8_t *dst = model_alloc(m, bytes);
    if (dst == NULL) {
        return sm_err_set(err, SM_ENOMEM, "out of memory converting %s to %s", name,
                          sm_dtype_name(to));
    }
    convert_job *j = calloc(1, sizeof *j);
    if (j == NULL) {
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    *j = (convert_job){.src = t, .to = to, .pack = pack, .rows = rows, .cols = cols, .dst = dst};
    int n_tasks = m->pool ? sm_pool_threads(m->pool) : 1;
    n_tasks = n_tasks > 64 ? 64 : n_tasks < 1 ? 1 : n_tasks;
    if (m->pool) {
        sm_pool_run(m->pool, convert_task, j, n_tasks);
    } else {
        convert_task(j, 0, 1);
    }
    sm_code rc = SM_OK;
    for (int i = 0; i < n_tasks && rc == SM_OK; i++) {
        if (j->rc[i] != SM_OK) {
            rc = sm_err_set(err, j->rc[i], "tensor %s: %s", name, j->err[i].msg);
        }
    }
    free(j);
    out->data = dst;
    if (rc == SM_OK)
        release_source(t->data, sm_dtype_row_bytes(t->dtype, cols) * (size_t)rows);
    return rc;
}

static sm_code load_vector(sm_model *m, enum role r, int64_t l, int64_t n, float **out, sm_err *err)
{
    char name[128], shape[96];
    tensor_name(m, r, l, name, sizeof name);
    const sm_tensor *t = lookup(m, name);
    if (t == NULL) {
        return sm_err_set(err, SM_EFORMAT, "missing tensor %s", name);
    }
    if (t->n_dims != 1 || t->shape[0] != n) {
        sm_tensor_shape_str(t, shape, sizeof shape);
        return sm_err_set(err, SM_EFORMAT, "tensor %s has shape %s, the config needs [%lld]", name,
                          shape, (long long)n);
    }
    if (t->dtype != SM_DTYPE_F32 && t->dtype != SM_DTYPE_F16 && t->dtype != SM_DTYPE_BF16) {
        return sm_err_set(err, SM_EUNSUPPORTED, "tensor %s has unsupported type %s", name,
                          t->type_name);
    }
    float *v = model_alloc(m, (size_t)n * sizeof *v);
    if (v == NULL) {
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    *out = v;
    return row_to_f32(t->dtype, t->data, n, v, err);
}

static size_t matrix_bytes(const sm_matrix *w)
{
    return w->packed ? sm_packed_bytes(w->packed, w->dtype, w->rows, w->cols)
                     : sm_dtype_row_bytes(w->dtype, w->cols) * (size_t)w->rows;
}

/* The width of the packed layout for the model's matrices of type t (q8_0, q4_0 or q4_k), or
 * 0. Packing pads rows to whole groups of 8 blocks (256 values; width 8) or to groups of 16
 * rows of a multiple of 64 bytes (width 16), and q4_k's layout keeps its scales and mins a
 * byte each (148 bytes per 256 values against 144), so it is used only where that adds at
 * most 1/16 to the bytes of all the matrices: VibeThinker-1.5B's shapes add 0.04% (q8_0,
 * width 8), nothing (q8_0, width 16; q4_0) or 3.2% (q4_k); Qwen2-0.5B's (hidden size 896) would
 * add 11-12% with width 8, which batch-1 decoding, bound by the bytes it reads, would pay
 * for. */
static int model_pack_width(const sm_model *m, sm_dtype t)
{
    int width = sm_kernels_pack_width(&m->k, t);
    const sm_model_config *c = &m->info.config;
    int64_t h = c->hidden, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    int64_t shapes[8][2] = {{c->vocab, h},
                            {qd, h},
                            {kvd, h},
                            {kvd, h},
                            {h, qd},
                            {c->intermediate, h},
                            {c->intermediate, h},
                            {h, c->intermediate}};
    double plain = 0, packed = 0;
    for (int i = 0; i < 8 && width; i++) {
        size_t pb = sm_packed_bytes(width, t, shapes[i][0], shapes[i][1]);
        if (pb == 0)
            return 0; /* such a matrix cannot be of type t */
        double times = i == 0 ? (c->tied ? 1.0 : 2.0) : (double)c->n_layers;
        plain += times * (double)shapes[i][0] * (double)sm_dtype_row_bytes(t, shapes[i][1]);
        packed += times * (double)pb;
    }
    return width && packed <= plain * (1.0 + 1.0 / 16) ? width : 0;
}

sm_code sm_model_load_weights(sm_model *m, sm_err *err)
{
    const sm_model_config *c = &m->info.config;
    int64_t h = c->hidden, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    int64_t inter = c->intermediate;
    sm_code rc;
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (m->layers == NULL) {
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    for (int t = 0; t < SM_DTYPE_COUNT; t++)
        m->pack[t] = model_pack_width(m, (sm_dtype)t);
    if ((rc = load_matrix(m, R_EMBED, 0, c->vocab, h, &m->embed, err)) ||
        (rc = load_vector(m, R_NORM, 0, h, &m->final_norm, err))) {
        return rc;
    }
    if (c->tied) {
        m->lm_head = m->embed;
    } else if ((rc = load_matrix(m, R_LMHEAD, 0, c->vocab, h, &m->lm_head, err))) {
        return rc;
    }
    size_t bytes = matrix_bytes(&m->lm_head) + (size_t)h * 4;
    size_t all = bytes + (c->tied ? 0 : matrix_bytes(&m->embed));
    int64_t params = c->vocab * h * (c->tied ? 1 : 2) + h;
    for (int64_t l = 0; l < c->n_layers; l++) {
        sm_layer *L = &m->layers[l];
        if ((rc = load_matrix(m, R_Q, l, qd, h, &L->q, err)) ||
            (rc = load_matrix(m, R_K, l, kvd, h, &L->k, err)) ||
            (rc = load_matrix(m, R_V, l, kvd, h, &L->v, err)) ||
            (rc = load_matrix(m, R_O, l, h, qd, &L->o, err)) ||
            (rc = load_matrix(m, R_GATE, l, inter, h, &L->gate, err)) ||
            (rc = load_matrix(m, R_UP, l, inter, h, &L->up, err)) ||
            (rc = load_matrix(m, R_DOWN, l, h, inter, &L->down, err)) ||
            (rc = load_vector(m, R_QB, l, qd, &L->bq, err)) ||
            (rc = load_vector(m, R_KB, l, kvd, &L->bk, err)) ||
            (rc = load_vector(m, R_VB, l, kvd, &L->bv, err)) ||
            (rc = load_vector(m, R_ATTN_NORM, l, h, &L->attn_norm, err)) ||
            (rc = load_vector(m, R_MLP_NORM, l, h, &L->mlp_norm, err))) {
            return rc;
        }
        const sm_matrix *ms[] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (size_t i = 0; i < 7; i++) {
            bytes += matrix_bytes(ms[i]);
            params += ms[i]->rows * ms[i]->cols;
        }
        bytes += (size_t)(qd + 2 * kvd + 2 * h) * 4;
        params += qd + 2 * kvd + 2 * h;
    }
    m->info.bytes_per_token = bytes;
    m->info.weight_bytes = all + (bytes - matrix_bytes(&m->lm_head) - (size_t)h * 4);
    m->info.n_params = params;
    m->info.weight_dtype = m->layers[0].q.dtype;
    m->info.packed = m->layers[0].q.packed;
    size_t best = 0;
    for (int t = 0; t < SM_DTYPE_COUNT; t++) {
        m->info.n_stored[t] = (int)m->n_stored[t];
        if (m->n_stored[t] > best) {
            best = m->n_stored[t];
            m->info.stored_dtype = (sm_dtype)t;
        }
    }
    return SM_OK;
}
