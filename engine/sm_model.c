/* sm_model: loading a Qwen2 model (Hugging Face directory or GGUF file) into compute-ready
 * weights, per-sequence KV caches, and the batched forward pass:
 *   x = embed[token]; per layer: x += o_proj(attn(rope(q), rope(k), v)) over rmsnorm(x),
 *   x += down(silu(gate(h)) * up(h)) with h = rmsnorm(x); logits = lm_head(rmsnorm(x)).
 * All rows of all sequences in a step go through each weight matrix in one sm_matmul; the
 * per-row work (norms, rotary embedding, attention against the row's own sequence) never mixes
 * rows, so with batch-invariant kernels a sequence's results do not depend on its companions. */
#include "sm_model.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sm_gguf.h"
#include "sm_log.h"
#include "sm_pool.h"
#include "sm_safetensors.h"

/* Rows pushed through the layers at once; longer steps are processed in chunks. */
#define SM_MODEL_CHUNK 512
#define SM_MODEL_MAX_SHARDS 4096

typedef struct sm_layer {
    sm_matrix q, k, v, o, gate, up, down;
    float *bq, *bk, *bv, *attn_norm, *mlp_norm;
} sm_layer;

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
    int pack; /* 0, or q8_0 matrices are repacked for the kernels with this width */
    sm_matrix embed, lm_head;
    float *final_norm;
    sm_layer *layers;
    void **owned;
    size_t n_owned, cap_owned;
    size_t n_stored[SM_DTYPE_COUNT + 1];
    /* forward scratch, for scratch_rows rows */
    int64_t scratch_rows;
    float *x, *xn, *q, *kb, *vb, *att, *gate, *up, *tmp;
    float *att_scratch;
    int64_t att_scratch_n;
};

struct sm_seq {
    sm_model *model;
    int64_t pos, max_ctx;
    uint8_t *kv; /* values of the model's kv_dtype */
    size_t kv_bytes;
};

/* Bytes of one KV cache value. */
static size_t kv_value_bytes(const sm_model *m)
{
    return m->info.kv_dtype == SM_DTYPE_F16 ? 2 : 4;
}

void sm_model_opts_init(sm_model_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->dtype = SM_DTYPE_F32;
    opts->isa = SM_ISA_PORTABLE;
}

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
    /* q8_0 weights go to the layout the SIMD kernels read fastest (repacked once, here) */
    int pack = to == SM_DTYPE_Q8_0 ? m->pack : 0;
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

/* The width of the packed layout for the model's q8_0 matrices, or 0. Packing pads rows to
 * whole groups of 8 blocks (256 values; width 8) or to groups of 16 rows of a multiple of 64
 * bytes (width 16), so it is used only where that adds at most 1/32 to the bytes of all the
 * matrices: VibeThinker-1.5B's shapes add 0.04% (width 8) or nothing (16); Qwen2-0.5B's
 * (hidden size 896) would add 11-12% with width 8, which batch-1 decoding, bound by the bytes
 * it reads, would pay for. */
static int model_pack_width(const sm_model *m)
{
    int width = sm_kernels_pack_width(&m->k, SM_DTYPE_Q8_0);
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
        size_t pb = sm_packed_bytes(width, SM_DTYPE_Q8_0, shapes[i][0], shapes[i][1]);
        if (pb == 0)
            return 0; /* such a matrix cannot be q8_0 */
        double times = i == 0 ? (c->tied ? 1.0 : 2.0) : (double)c->n_layers;
        plain +=
            times * (double)shapes[i][0] * (double)sm_dtype_row_bytes(SM_DTYPE_Q8_0, shapes[i][1]);
        packed += times * (double)pb;
    }
    return width && packed <= plain * (1.0 + 1.0 / 32) ? width : 0;
}

static sm_code load_weights(sm_model *m, sm_err *err)
{
    const sm_model_config *c = &m->info.config;
    int64_t h = c->hidden, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    int64_t inter = c->intermediate;
    sm_code rc;
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (m->layers == NULL) {
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    m->pack = model_pack_width(m);
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

/* ---- opening the files ---- */

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) {
        snprintf(p, n, "%s/%s", dir, name);
    }
    return p;
}

static sm_code open_shard(sm_model *m, const char *file, sm_err *err)
{
    for (size_t i = 0; i < m->n_st; i++) {
        const char *p = sm_safetensors_path(m->st[i]);
        const char *base = strrchr(p, '/');
        if (strcmp(base ? base + 1 : p, file) == 0) {
            return SM_OK;
        }
    }
    if (m->n_st >= SM_MODEL_MAX_SHARDS) {
        return sm_err_set(err, SM_ELIMIT, "more than %d safetensors shards", SM_MODEL_MAX_SHARDS);
    }
    char *path = path_join(m->dir, file);
    if (path == NULL) {
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    sm_safetensors **st = realloc(m->st, (m->n_st + 1) * sizeof *st);
    if (st == NULL) {
        free(path);
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    m->st = st;
    sm_code rc = sm_safetensors_open(path, &m->st[m->n_st], err);
    free(path);
    if (rc == SM_OK) {
        m->n_st++;
    }
    return rc;
}

static sm_code open_hf(sm_model *m, sm_err *err)
{
    char *cfg = path_join(m->dir, "config.json");
    char *gen = path_join(m->dir, "generation_config.json");
    char *idx = path_join(m->dir, "model.safetensors.index.json");
    sm_code rc = SM_OK;
    json_t *root = NULL;
    if (cfg == NULL || gen == NULL || idx == NULL) {
        rc = sm_err_set(err, SM_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = sm_model_config_parse(cfg, gen, &m->info.config, err)) != SM_OK) {
        goto done;
    }
    m->info.format = "safetensors";
    if (access(idx, F_OK) != 0) {
        rc = open_shard(m, "model.safetensors", err);
        goto done;
    }
    json_error_t jerr;
    root = json_load_file(idx, JSON_REJECT_DUPLICATES, &jerr);
    json_t *wm = root ? json_object_get(root, "weight_map") : NULL;
    if (!json_is_object(wm)) {
        rc = sm_err_set(err, SM_EFORMAT, "%s: %s", idx,
                        root ? "no \"weight_map\" object" : jerr.text);
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(wm, key, v)
    {
        const char *f = json_string_value(v);
        if (f == NULL || f[0] == '\0' || strchr(f, '/') != NULL || strcmp(f, "..") == 0 ||
            strcmp(f, ".") == 0) {
            rc = sm_err_set(err, SM_EFORMAT, "%s: tensor %s: bad file name", idx, key);
            goto done;
        }
        if ((rc = open_shard(m, f, err)) != SM_OK) {
            goto done;
        }
        for (size_t i = 0; i < m->n_st; i++) {
            const char *p = sm_safetensors_path(m->st[i]);
            if (strcmp(strrchr(p, '/') + 1, f) == 0 && sm_safetensors_find(m->st[i], key) == NULL) {
                rc = sm_err_set(err, SM_EFORMAT, "%s: tensor %s is not in %s", idx, key, f);
                goto done;
            }
        }
    }
done:
    json_decref(root);
    free(cfg);
    free(gen);
    free(idx);
    return rc;
}

static sm_code gguf_int(const sm_gguf *g, const char *key, bool required, int64_t def, int64_t lo,
                        int64_t hi, int64_t *out, sm_err *err)
{
    sm_code rc = sm_gguf_get_int(g, key, out, err);
    if (rc == SM_ENOTFOUND && !required) {
        *out = def;
        return SM_OK;
    }
    if (rc == SM_ENOTFOUND) {
        return sm_err_set(err, SM_EFORMAT, "GGUF metadata lacks %s", key);
    }
    if (rc == SM_OK && (*out < lo || *out > hi)) {
        return sm_err_set(err, SM_EFORMAT, "GGUF %s = %lld is out of range", key, (long long)*out);
    }
    return rc;
}

static sm_code gguf_float(const sm_gguf *g, const char *key, double def, double lo, double hi,
                          double *out, sm_err *err)
{
    sm_code rc = sm_gguf_get_float(g, key, out, err);
    if (rc == SM_ENOTFOUND) {
        *out = def;
        return SM_OK;
    }
    if (rc == SM_OK && !(*out >= lo && *out <= hi)) {
        return sm_err_set(err, SM_EFORMAT, "GGUF %s = %g is out of range", key, *out);
    }
    return rc;
}

static sm_code open_gguf(sm_model *m, const char *file, sm_err *err)
{
    sm_code rc = sm_gguf_open(file, &m->gguf, err);
    if (rc != SM_OK) {
        return rc;
    }
    m->info.format = "gguf";
    const sm_gguf *g = m->gguf;
    char *arch = NULL;
    rc = sm_gguf_get_str(g, "general.architecture", &arch, err);
    if (rc == SM_ENOTFOUND) {
        return sm_err_set(err, SM_EFORMAT, "%s: no general.architecture", file);
    }
    if (rc != SM_OK) {
        return rc;
    }
    if (strcmp(arch, "qwen2") != 0) {
        rc =
            sm_err_set(err, SM_EUNSUPPORTED, "%s: architecture \"%.64s\" is not qwen2", file, arch);
        free(arch);
        return rc;
    }
    free(arch);
    sm_model_config *c = &m->info.config;
    memset(c, 0, sizeof *c);
    c->temperature = 1.0;
    c->top_p = 1.0;
    c->repetition_penalty = 1.0;
    int64_t bos, eos, eot;
    if ((rc = gguf_int(g, "qwen2.embedding_length", true, 0, 1, 1 << 20, &c->hidden, err)) ||
        (rc = gguf_int(g, "qwen2.block_count", true, 0, 1, 1024, &c->n_layers, err)) ||
        (rc = gguf_int(g, "qwen2.attention.head_count", true, 0, 1, 4096, &c->n_heads, err)) ||
        (rc = gguf_int(g, "qwen2.attention.head_count_kv", false, c->n_heads, 1, 4096,
                       &c->n_kv_heads, err)) ||
        (rc = gguf_int(g, "qwen2.feed_forward_length", true, 0, 1, 1 << 20, &c->intermediate,
                       err)) ||
        (rc = gguf_int(g, "qwen2.context_length", true, 0, 1, 1 << 24, &c->max_pos, err)) ||
        (rc = gguf_int(g, "qwen2.attention.key_length", false,
                       c->hidden / (c->n_heads ? c->n_heads : 1), 2, 4096, &c->head_dim, err)) ||
        (rc = gguf_float(g, "qwen2.rope.freq_base", 10000.0, 1.0, 1e12, &c->rope_theta, err)) ||
        (rc = gguf_float(g, "qwen2.attention.layer_norm_rms_epsilon", 1e-6, 1e-30, 1.0, &c->rms_eps,
                         err)) ||
        (rc = gguf_int(g, "tokenizer.ggml.bos_token_id", false, -1, 0, INT32_MAX, &bos, err)) ||
        (rc = gguf_int(g, "tokenizer.ggml.eos_token_id", false, -1, 0, INT32_MAX, &eos, err)) ||
        (rc = gguf_int(g, "tokenizer.ggml.eot_token_id", false, -1, 0, INT32_MAX, &eot, err))) {
        return rc;
    }
    if (c->head_dim % 2 != 0 || c->n_heads % c->n_kv_heads != 0) {
        return sm_err_set(err, SM_EFORMAT, "%s: inconsistent head counts/sizes", file);
    }
    const sm_tensor *emb = sm_gguf_find(g, "token_embd.weight");
    if (emb == NULL || emb->n_dims != 2 || emb->shape[0] < 1 || emb->shape[0] > (1 << 24)) {
        return sm_err_set(err, SM_EFORMAT, "%s: missing or malformed token_embd.weight", file);
    }
    c->vocab = emb->shape[0];
    c->tied = sm_gguf_find(g, "output.weight") == NULL;
    c->bos_id = bos >= 0 && bos < c->vocab ? (int32_t)bos : -1;
    if (eos >= 0 && eos < c->vocab) {
        c->eos_ids[c->n_eos++] = (int32_t)eos;
    }
    if (eot >= 0 && eot < c->vocab && eot != eos) {
        c->eos_ids[c->n_eos++] = (int32_t)eot;
    }
    return SM_OK;
}

/* Finds the model: a directory with config.json, a .gguf file, or a directory with one .gguf. */
static sm_code resolve(const char *path, char **dir, char **gguf, sm_err *err)
{
    struct stat st;
    *dir = *gguf = NULL;
    if (stat(path, &st) != 0) {
        return sm_err_set(err, SM_ENOTFOUND, "%s: %s", path, strerror(errno));
    }
    if (S_ISREG(st.st_mode)) {
        const char *slash = strrchr(path, '/');
        *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
        size_t n = strlen(path);
        bool hf = (n >= 5 && strcmp(path + n - 5, ".json") == 0) ||
                  (n >= 12 && strcmp(path + n - 12, ".safetensors") == 0);
        if (hf) { /* config.json or a weights file: the directory holding it */
            return *dir ? SM_OK : sm_err_set(err, SM_ENOMEM, "out of memory");
        }
        *gguf = strdup(path);
        return *gguf && *dir ? SM_OK : sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    if (!S_ISDIR(st.st_mode)) {
        return sm_err_set(err, SM_EINVAL, "%s: not a file or directory", path);
    }
    if ((*dir = strdup(path)) == NULL) {
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    char *cfg = path_join(path, "config.json");
    bool has_cfg = cfg && access(cfg, F_OK) == 0;
    free(cfg);
    if (has_cfg) {
        return SM_OK;
    }
    DIR *d = opendir(path);
    if (d == NULL) {
        return sm_err_set(err, SM_EIO, "%s: %s", path, strerror(errno));
    }
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".gguf") == 0) {
            n++;
            free(*gguf);
            *gguf = path_join(path, e->d_name);
        }
    }
    closedir(d);
    if (n == 1 && *gguf) {
        return SM_OK;
    }
    return sm_err_set(err, SM_ENOTFOUND, "%s: no config.json and %s .gguf file", path,
                      n == 0 ? "no" : "more than one");
}

sm_code sm_model_load(const char *path, const sm_model_opts *opts, sm_model **out, sm_err *err)
{
    *out = NULL;
    sm_model_opts def;
    if (opts == NULL) {
        sm_model_opts_init(&def);
        opts = &def;
    }
    if (opts->dtype_set && (opts->dtype < 0 || opts->dtype >= SM_DTYPE_COUNT)) {
        return sm_err_set(err, SM_EINVAL, "bad weight type");
    }
    if (opts->dtype_set && sm_dtype_is_kquant(opts->dtype)) {
        return sm_err_set(err, SM_EUNSUPPORTED,
                          "--dtype %s: the engine does not quantize to K-quants; K-quant weights "
                          "are used as a GGUF file stores them",
                          sm_dtype_name(opts->dtype));
    }
    if (opts->isa_set && !sm_isa_supported(opts->isa)) {
        return sm_err_set(err, SM_EUNSUPPORTED, "this CPU cannot run %s kernels",
                          sm_isa_name(opts->isa));
    }
    if (opts->kv_dtype_set && opts->kv_dtype != SM_DTYPE_F32 && opts->kv_dtype != SM_DTYPE_F16) {
        return sm_err_set(err, SM_EINVAL, "the KV cache holds f32 or f16 values");
    }
    sm_model *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    m->dtype_set = opts->dtype_set;
    m->dtype = opts->dtype;
    char *gguf = NULL;
    sm_code rc = resolve(path, &m->dir, &gguf, err);
    if (rc == SM_OK) {
        rc = gguf ? open_gguf(m, gguf, err) : open_hf(m, err);
    }
    free(gguf);
    if (rc == SM_OK) {
        rc = sm_pool_new(opts->threads, &m->pool, err);
    }
    if (rc == SM_OK) {
        rc = sm_kbufs_new(&m->k.bufs, err);
    }
    if (rc == SM_OK) {
        m->k.isa = opts->isa_set ? opts->isa : sm_isa_detect();
        m->k.pool = m->pool;
        m->k.deterministic = !opts->fast;
        rc = load_weights(m, err);
    }
    if (rc != SM_OK) {
        if (err != NULL && strncmp(err->msg, path, strlen(path)) != 0) {
            sm_err_prefix(err, "%s", path);
        }
        sm_model_free(&m);
        return rc;
    }
    const sm_model_config *c = &m->info.config;
    /* f16 keys and values lose nothing that matters next to 16-bit or 8-bit weights and halve
     * the cache's memory and the bytes attention reads; f32 weights keep an exact f32 cache,
     * and so does the portable variant (no f16 conversion instruction: f16 is slower there) */
    bool kv_f32 = m->info.weight_dtype == SM_DTYPE_F32 || m->k.isa == SM_ISA_PORTABLE;
    m->info.kv_dtype = opts->kv_dtype_set ? opts->kv_dtype : kv_f32 ? SM_DTYPE_F32 : SM_DTYPE_F16;
    m->info.kv_bytes_per_token =
        (size_t)c->n_layers * 2 * (size_t)(c->n_kv_heads * c->head_dim) * kv_value_bytes(m);
    m->info.threads = sm_pool_threads(m->pool);
    m->info.isa = m->k.isa;
    m->info.deterministic = m->k.deterministic;
    sm_logf(SM_LOG_INFO,
            "model loaded: %s (%s, stored %s, compute %s%s), %lld layers, hidden %lld, "
            "vocab %lld, %.1f MiB of weights, %s KV cache %.1f KiB per position, %d threads, "
            "%s kernels",
            path, m->info.format, sm_dtype_name(m->info.stored_dtype),
            sm_dtype_name(m->info.weight_dtype), m->info.packed ? " repacked" : "",
            (long long)c->n_layers, (long long)c->hidden, (long long)c->vocab,
            (double)m->info.weight_bytes / 1048576.0, sm_dtype_name(m->info.kv_dtype),
            (double)m->info.kv_bytes_per_token / 1024.0, m->info.threads, sm_isa_name(m->k.isa));
    *out = m;
    return SM_OK;
}

static void free_scratch(sm_model *m)
{
    free(m->x);
    free(m->xn);
    free(m->q);
    free(m->kb);
    free(m->vb);
    free(m->att);
    free(m->gate);
    free(m->up);
    free(m->tmp);
    m->x = m->xn = m->q = m->kb = m->vb = m->att = m->gate = m->up = m->tmp = NULL;
    m->scratch_rows = 0;
}

void sm_model_free(sm_model **pm)
{
    sm_model *m = *pm;
    if (m == NULL) {
        return;
    }
    free_scratch(m);
    free(m->att_scratch);
    for (size_t i = 0; i < m->n_owned; i++) {
        free(m->owned[i]);
    }
    free(m->owned);
    free(m->layers);
    for (size_t i = 0; i < m->n_st; i++) {
        sm_safetensors_close(&m->st[i]);
    }
    free(m->st);
    sm_gguf_close(&m->gguf);
    sm_pool_free(&m->pool);
    sm_kbufs_free(&m->k.bufs);
    free(m->dir);
    free(m);
    *pm = NULL;
}

const sm_model_summary *sm_model_info(const sm_model *m)
{
    return &m->info;
}

void sm_model_set_fast(sm_model *m, bool fast)
{
    m->k.deterministic = !fast;
    m->info.deterministic = !fast;
}

const char *sm_model_dir(const sm_model *m)
{
    return m->dir;
}

sm_pool *sm_model_pool(sm_model *m)
{
    return m->pool && sm_pool_threads(m->pool) > 1 ? m->pool : NULL;
}

/* ---- sequences ---- */

sm_code sm_seq_new(sm_model *m, int64_t max_ctx, sm_seq **out, sm_err *err)
{
    *out = NULL;
    const sm_model_config *c = &m->info.config;
    if (max_ctx <= 0) {
        max_ctx = c->max_pos;
    }
    if (max_ctx > c->max_pos) {
        return sm_err_set(err, SM_ELIMIT, "context %lld exceeds the model's maximum %lld",
                          (long long)max_ctx, (long long)c->max_pos);
    }
    size_t per = m->info.kv_bytes_per_token;
    if ((uint64_t)max_ctx > SIZE_MAX / per) {
        return sm_err_set(err, SM_ELIMIT, "context %lld is too large", (long long)max_ctx);
    }
    size_t bytes = per * (size_t)max_ctx;
    sm_logf(SM_LOG_INFO, "kv cache: %lld positions x %zu bytes = %.1f MiB (committed as filled)",
            (long long)max_ctx, per, (double)bytes / 1048576.0);
    sm_seq *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) {
        free(s);
        return sm_err_set(err, SM_ENOMEM, "cannot reserve %zu bytes of KV cache: %s", bytes,
                          strerror(errno));
    }
    s->model = m;
    s->max_ctx = max_ctx;
    s->kv = p;
    s->kv_bytes = bytes;
    *out = s;
    return SM_OK;
}

void sm_seq_free(sm_seq **ps)
{
    sm_seq *s = *ps;
    if (s == NULL) {
        return;
    }
    munmap(s->kv, s->kv_bytes);
    free(s);
    *ps = NULL;
}

int64_t sm_seq_pos(const sm_seq *s)
{
    return s->pos;
}

int64_t sm_seq_max_ctx(const sm_seq *s)
{
    return s->max_ctx;
}

sm_code sm_seq_truncate(sm_seq *s, int64_t pos, sm_err *err)
{
    if (pos < 0 || pos > s->pos) {
        return sm_err_set(err, SM_EINVAL, "cannot truncate a sequence of %lld positions to %lld",
                          (long long)s->pos, (long long)pos);
    }
    s->pos = pos;
    return SM_OK;
}

static void *seq_cache(const sm_seq *s, int64_t l, int which, int64_t kvd);

sm_code sm_seq_copy(const sm_seq *src, int64_t n_pos, int64_t max_ctx, sm_seq **out, sm_err *err)
{
    *out = NULL;
    if (n_pos < 0 || n_pos > src->pos) {
        return sm_err_set(err, SM_EINVAL, "cannot copy %lld positions of a sequence of %lld",
                          (long long)n_pos, (long long)src->pos);
    }
    sm_model *m = src->model;
    if (max_ctx <= 0) {
        max_ctx = m->info.config.max_pos;
    }
    if (max_ctx < n_pos) {
        return sm_err_set(err, SM_ELIMIT, "a context of %lld cannot hold %lld positions",
                          (long long)max_ctx, (long long)n_pos);
    }
    sm_seq *s;
    sm_code rc = sm_seq_new(m, max_ctx, &s, err);
    if (rc != SM_OK) {
        return rc;
    }
    const sm_model_config *c = &m->info.config;
    int64_t kvd = c->n_kv_heads * c->head_dim;
    for (int64_t l = 0; l < c->n_layers; l++) {
        for (int which = 0; which < 2; which++) {
            memcpy(seq_cache(s, l, which, kvd), seq_cache(src, l, which, kvd),
                   (size_t)(n_pos * kvd) * kv_value_bytes(m));
        }
    }
    s->pos = n_pos;
    *out = s;
    return SM_OK;
}

/* K (which = 0) or V (1) cache of layer l: max_ctx rows of kv_dim values. */
static void *seq_cache(const sm_seq *s, int64_t l, int which, int64_t kvd)
{
    return s->kv +
           ((size_t)(2 * l + which) * (size_t)s->max_ctx) * (size_t)kvd * kv_value_bytes(s->model);
}

sm_code sm_seq_copy_prefix(sm_seq *dst, const sm_seq *src, int64_t n, sm_err *err)
{
    if (dst == src || dst->model != src->model || n < 0 || n > src->pos) {
        return sm_err_set(err, SM_EINVAL, "cannot copy %lld positions of a sequence of %lld",
                          (long long)n, (long long)src->pos);
    }
    if (n > dst->max_ctx) {
        return sm_err_set(err, SM_ELIMIT, "prefix of %lld positions exceeds the context %lld",
                          (long long)n, (long long)dst->max_ctx);
    }
    const sm_model_config *c = &src->model->info.config;
    int64_t kvd = c->n_kv_heads * c->head_dim;
    for (int64_t l = 0; l < c->n_layers; l++) {
        for (int w = 0; w < 2; w++) {
            memcpy(seq_cache(dst, l, w, kvd), seq_cache(src, l, w, kvd),
                   (size_t)n * (size_t)kvd * kv_value_bytes(src->model));
        }
    }
    dst->pos = n;
    return SM_OK;
}

/* ---- forward ---- */

static sm_code ensure_scratch(sm_model *m, int64_t rows, int64_t max_pos, sm_err *err)
{
    const sm_model_config *c = &m->info.config;
    if (rows > m->scratch_rows) {
        free_scratch(m);
        size_t r = (size_t)rows;
        size_t qd = (size_t)(c->n_heads * c->head_dim), kvd = (size_t)(c->n_kv_heads * c->head_dim);
        size_t h = (size_t)c->hidden, in = (size_t)c->intermediate;
        m->x = malloc(r * h * 4);
        m->xn = malloc(r * h * 4);
        m->tmp = malloc(r * h * 4);
        m->q = malloc(r * qd * 4);
        m->att = malloc(r * qd * 4);
        m->kb = malloc(r * kvd * 4);
        m->vb = malloc(r * kvd * 4);
        m->gate = malloc(r * in * 4);
        m->up = malloc(r * in * 4);
        if (!m->x || !m->xn || !m->tmp || !m->q || !m->att || !m->kb || !m->vb || !m->gate ||
            !m->up) {
            free_scratch(m);
            return sm_err_set(err, SM_ENOMEM, "out of memory for %lld rows of activations",
                              (long long)rows);
        }
        m->scratch_rows = rows;
    }
    /* n_heads per position for one call, or one slice per row-parallel attention task */
    int64_t threads = m->pool ? sm_pool_threads(m->pool) : 1;
    int64_t need = max_pos * (c->n_heads > 4 * threads ? c->n_heads : 4 * threads);
    if (need > m->att_scratch_n) {
        float *p = realloc(m->att_scratch, (size_t)need * sizeof *p);
        if (p == NULL) {
            return sm_err_set(err, SM_ENOMEM, "out of memory");
        }
        m->att_scratch = p;
        m->att_scratch_n = need;
    }
    return SM_OK;
}

/* Writes the kv_dim values x as position pos of layer l's K (which = 0) or V cache. f16 values
 * are rounded to nearest; magnitudes beyond f16's range are clamped to its largest finite
 * value rather than becoming infinite. */
static void kv_store(const sm_model *m, sm_seq *s, int64_t l, int which, int64_t pos,
                     const float *x)
{
    const sm_model_config *c = &m->info.config;
    int64_t kvd = c->n_kv_heads * c->head_dim;
    if (m->info.kv_dtype == SM_DTYPE_F32) {
        memcpy((float *)seq_cache(s, l, which, kvd) + pos * kvd, x, (size_t)kvd * sizeof *x);
        return;
    }
    uint16_t *dst = (uint16_t *)seq_cache(s, l, which, kvd) + pos * kvd;
    for (int64_t i = 0; i < kvd; i++) {
        float v = x[i] > 65504.0f ? 65504.0f : x[i] < -65504.0f ? -65504.0f : x[i];
        dst[i] = sm_f32_to_f16(v);
    }
}

typedef struct row_info {
    sm_seq *seq;
    int64_t pos;
    int32_t token;
    int last; /* index of the sequence whose last new position this is, else -1 */
} row_info;

typedef struct attn_rows {
    const sm_model *m;
    const row_info *ri;
    int64_t n, l, stride; /* stride: floats of attention scratch per task */
    sm_kctx k1;           /* the model's kernel context without its pool: one row per task */
} attn_rows;

/* Attention of rows task, task + n_tasks, ... (interleaved: later prompt rows are longer). */
static void attn_rows_task(void *arg, int task, int n_tasks)
{
    const attn_rows *a = arg;
    const sm_model_config *c = &a->m->info.config;
    int64_t hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    for (int64_t r = task; r < a->n; r += n_tasks) {
        const row_info *ri = &a->ri[r];
        sm_attention(&a->k1, a->m->q + r * qd, (int)c->n_heads, (int)c->n_kv_heads, (int)hd,
                     seq_cache(ri->seq, a->l, 0, kvd), seq_cache(ri->seq, a->l, 1, kvd),
                     a->m->info.kv_dtype, kvd, ri->pos + 1, a->m->att + r * qd,
                     a->m->att_scratch + task * a->stride);
    }
}

/* Runs rows [0, n) of ri through the model; writes the final-normed hidden state of rows that
 * end a sequence into last[seq index * hidden]. */
static sm_code forward_rows(sm_model *m, const row_info *ri, int64_t n, float *last, sm_err *err)
{
    const sm_model_config *c = &m->info.config;
    const sm_kctx *k = &m->k;
    int64_t h = c->hidden, hd = c->head_dim;
    int64_t qd = c->n_heads * hd, kvd = c->n_kv_heads * hd, in = c->intermediate;
    float eps = (float)c->rms_eps;
    sm_code rc;
    for (int64_t r = 0; r < n; r++) {
        if ((rc = sm_matrix_row_f32(&m->embed, ri[r].token, m->x + r * h, err)) != SM_OK) {
            return rc;
        }
    }
    for (int64_t l = 0; l < c->n_layers; l++) {
        const sm_layer *L = &m->layers[l];
        for (int64_t r = 0; r < n; r++) {
            sm_rmsnorm(k, m->x + r * h, L->attn_norm, h, eps, m->xn + r * h);
        }
        if ((rc = sm_matmul(k, &L->q, L->bq, m->xn, h, n, m->q, qd, err)) ||
            (rc = sm_matmul(k, &L->k, L->bk, m->xn, h, n, m->kb, kvd, err)) ||
            (rc = sm_matmul(k, &L->v, L->bv, m->xn, h, n, m->vb, kvd, err))) {
            return rc;
        }
        for (int64_t r = 0; r < n; r++) {
            sm_rope(k, m->q + r * qd, (int)c->n_heads, (int)hd, ri[r].pos, c->rope_theta);
            sm_rope(k, m->kb + r * kvd, (int)c->n_kv_heads, (int)hd, ri[r].pos, c->rope_theta);
            kv_store(m, ri[r].seq, l, 0, ri[r].pos, m->kb + r * kvd);
            kv_store(m, ri[r].seq, l, 1, ri[r].pos, m->vb + r * kvd);
        }
        int threads = m->pool ? sm_pool_threads(m->pool) : 1;
        if (n >= 2 * threads && threads > 1) {
            /* Several rows: one row per task, each on one thread (same results per row). */
            attn_rows a = {m, ri, n, l, m->att_scratch_n / (4 * threads), *k};
            a.k1.pool = NULL;
            a.k1.bufs = NULL; /* the tasks run at once: none shares the model's buffers */
            sm_pool_run(m->pool, attn_rows_task, &a, (int)(n < 4 * threads ? n : 4 * threads));
        } else {
            for (int64_t r = 0; r < n; r++) {
                sm_attention(k, m->q + r * qd, (int)c->n_heads, (int)c->n_kv_heads, (int)hd,
                             seq_cache(ri[r].seq, l, 0, kvd), seq_cache(ri[r].seq, l, 1, kvd),
                             m->info.kv_dtype, kvd, ri[r].pos + 1, m->att + r * qd, m->att_scratch);
            }
        }
        if ((rc = sm_matmul(k, &L->o, NULL, m->att, qd, n, m->tmp, h, err))) {
            return rc;
        }
        for (int64_t i = 0; i < n * h; i++) {
            m->x[i] += m->tmp[i];
        }
        for (int64_t r = 0; r < n; r++) {
            sm_rmsnorm(k, m->x + r * h, L->mlp_norm, h, eps, m->xn + r * h);
        }
        if ((rc = sm_matmul(k, &L->gate, NULL, m->xn, h, n, m->gate, in, err)) ||
            (rc = sm_matmul(k, &L->up, NULL, m->xn, h, n, m->up, in, err))) {
            return rc;
        }
        for (int64_t r = 0; r < n; r++) {
            sm_silu_mul(k, m->gate + r * in, m->up + r * in, in);
        }
        if ((rc = sm_matmul(k, &L->down, NULL, m->gate, in, n, m->tmp, h, err))) {
            return rc;
        }
        for (int64_t i = 0; i < n * h; i++) {
            m->x[i] += m->tmp[i];
        }
    }
    for (int64_t r = 0; r < n; r++) {
        if (ri[r].last >= 0) {
            sm_rmsnorm(k, m->x + r * h, m->final_norm, h, eps, last + (size_t)ri[r].last * h);
        }
    }
    return SM_OK;
}

sm_code sm_model_forward(sm_model *m, sm_seq *const *seqs, const int32_t *const *tokens,
                         const int64_t *n_tokens, int n_seqs, float *logits, sm_err *err)
{
    const sm_model_config *c = &m->info.config;
    if (n_seqs < 1) {
        return sm_err_set(err, SM_EINVAL, "no sequences");
    }
    int64_t total = 0, max_pos = 0;
    for (int i = 0; i < n_seqs; i++) {
        sm_seq *s = seqs[i];
        if (s == NULL || s->model != m || tokens[i] == NULL || n_tokens[i] < 1) {
            return sm_err_set(err, SM_EINVAL, "sequence %d: bad sequence or no tokens", i);
        }
        for (int j = 0; j < i; j++) {
            if (seqs[j] == s) {
                return sm_err_set(err, SM_EINVAL, "sequence %d appears twice in one step", i);
            }
        }
        if (n_tokens[i] > s->max_ctx - s->pos) {
            return sm_err_set(err, SM_ELIMIT,
                              "sequence %d: %lld + %lld positions exceed its context of %lld", i,
                              (long long)s->pos, (long long)n_tokens[i], (long long)s->max_ctx);
        }
        for (int64_t t = 0; t < n_tokens[i]; t++) {
            if (tokens[i][t] < 0 || tokens[i][t] >= c->vocab) {
                return sm_err_set(err, SM_EINVAL, "sequence %d: token id %d outside [0, %lld)", i,
                                  tokens[i][t], (long long)c->vocab);
            }
        }
        total += n_tokens[i];
        if (s->pos + n_tokens[i] > max_pos) {
            max_pos = s->pos + n_tokens[i];
        }
    }
    row_info *ri = malloc((size_t)total * sizeof *ri);
    float *last = malloc((size_t)n_seqs * (size_t)c->hidden * sizeof *last);
    sm_code rc = SM_OK;
    if (ri == NULL || last == NULL) {
        rc = sm_err_set(err, SM_ENOMEM, "out of memory");
        goto done;
    }
    int64_t r = 0;
    for (int i = 0; i < n_seqs; i++) {
        for (int64_t t = 0; t < n_tokens[i]; t++, r++) {
            ri[r] =
                (row_info){seqs[i], seqs[i]->pos + t, tokens[i][t], t == n_tokens[i] - 1 ? i : -1};
        }
    }
    int64_t chunk = total < SM_MODEL_CHUNK ? total : SM_MODEL_CHUNK;
    if ((rc = ensure_scratch(m, chunk, max_pos, err)) != SM_OK) {
        goto done;
    }
    for (int64_t r0 = 0; r0 < total && rc == SM_OK; r0 += chunk) {
        int64_t n = total - r0 < chunk ? total - r0 : chunk;
        rc = forward_rows(m, ri + r0, n, last, err);
    }
    if (rc == SM_OK && logits != NULL) {
        rc = sm_matmul(&m->k, &m->lm_head, NULL, last, c->hidden, n_seqs, logits, c->vocab, err);
    }
    if (rc == SM_OK) {
        for (int i = 0; i < n_seqs; i++) {
            seqs[i]->pos += n_tokens[i];
        }
    }
done:
    free(ri);
    free(last);
    return rc;
}
