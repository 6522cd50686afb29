/* sm_cuda_model: the CUDA backend's model: device checks, weights copied from the CPU loader
 * (bf16, or quantized to int8 per row) or made at random on the GPU, the KV page pool, and the
 * bandwidth probe. The forward pass is in sm_cuda_forward.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_cuda_internal.h"
#include "sm_model_internal.h"

void sm_cuda_opts_init(sm_cuda_opts *opts)
{
    memset(opts, 0, sizeof(*opts));
}

bool sm_cuda_available(char *why, size_t why_size)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n <= 0) {
        if (why)
            snprintf(why, why_size, "no CUDA device (%s)",
                     e != cudaSuccess ? cudaGetErrorString(e) : "none found");
        return false;
    }
    return true;
}

void sm_cuda_describe(int device, char *buf, size_t size)
{
    struct cudaDeviceProp p;
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    if (cudaGetDeviceProperties(&p, device) != cudaSuccess) {
        snprintf(buf, size, "CUDA device %d: unavailable", device);
        return;
    }
    snprintf(buf, size, "%s (sm_%d%d, %.1f GiB, %d SMs), driver %d, runtime %d", p.name, p.major,
             p.minor, (double)p.totalGlobalMem / (1 << 30), p.multiProcessorCount, drv, rt);
}

sm_code sm_cuda_fail(sm_err *err, int cuda_error, const char *what)
{
    cudaError_t e = (cudaError_t)cuda_error;
    return sm_err_set(err, e == cudaErrorMemoryAllocation ? SM_ENOMEM : SM_EIO, "cuda: %s: %s",
                      what, cudaGetErrorString(e));
}

sm_code sm_cuda_alloc(void **p, size_t bytes, const char *what, sm_err *err)
{
    *p = NULL;
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 16);
    if (e != cudaSuccess) {
        *p = NULL;
        return sm_err_set(err, SM_ENOMEM, "cuda: cannot allocate %zu bytes for %s: %s", bytes, what,
                          cudaGetErrorString(e));
    }
    return SM_OK;
}

/* A device allocation owned by the model (freed with it). */
static sm_code owned_alloc(sm_cuda_model *m, void **p, size_t bytes, const char *what, sm_err *err)
{
    if (m->n_owned == m->cap_owned) {
        size_t cap = m->cap_owned ? 2 * m->cap_owned : 64;
        void **o = realloc(m->owned, cap * sizeof(*o));
        if (!o)
            return sm_err_set(err, SM_ENOMEM, "out of memory");
        m->owned = o;
        m->cap_owned = cap;
    }
    sm_code rc = sm_cuda_alloc(p, bytes, what, err);
    if (rc == SM_OK)
        m->owned[m->n_owned++] = *p;
    return rc;
}

static sm_code upload(sm_cuda_model *m, void **dst, const void *src, size_t bytes, const char *what,
                      sm_err *err)
{
    sm_code rc = owned_alloc(m, dst, bytes, what, err);
    if (rc)
        return rc;
    cudaError_t e = cudaMemcpy(*dst, src, bytes, cudaMemcpyHostToDevice);
    return e == cudaSuccess ? SM_OK : sm_cuda_fail(err, e, what);
}

static float bf16_to_f32(uint16_t v)
{
    uint32_t u = (uint32_t)v << 16;
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* int8 rows with one scale each (max |w| / 127) from bf16 rows. */
static sm_code upload_int8(sm_cuda_model *m, cu_mat *d, const uint16_t *src, sm_err *err)
{
    size_t n = (size_t)d->rows * (size_t)d->cols;
    int8_t *q = malloc(n);
    float *sc = malloc((size_t)d->rows * sizeof(float));
    sm_code rc = SM_OK;
    if (!q || !sc) {
        rc = sm_err_set(err, SM_ENOMEM, "out of memory quantizing a %d x %d matrix", d->rows,
                        d->cols);
        goto out;
    }
    for (int r = 0; r < d->rows; r++) {
        const uint16_t *row = src + (size_t)r * (size_t)d->cols;
        float mx = 0.0f;
        for (int c = 0; c < d->cols; c++)
            mx = fmaxf(mx, fabsf(bf16_to_f32(row[c])));
        sc[r] = mx > 0.0f ? mx / 127.0f : 1.0f;
        for (int c = 0; c < d->cols; c++)
            q[(size_t)r * (size_t)d->cols + (size_t)c] =
                (int8_t)lrintf(bf16_to_f32(row[c]) / sc[r]);
    }
    if ((rc = upload(m, (void **)&d->i8, q, n, "int8 weights", err)) == SM_OK)
        rc = upload(m, (void **)&d->scale, sc, (size_t)d->rows * sizeof(float), "scales", err);
out:
    free(q);
    free(sc);
    return rc;
}

static sm_code upload_mat(sm_cuda_model *m, cu_mat *d, const sm_matrix *w, bool int8, sm_err *err)
{
    if (w->dtype != SM_DTYPE_BF16 || w->packed)
        return sm_err_set(err, SM_EINTERNAL, "cuda: expected bf16 weights from the loader, got %s",
                          sm_dtype_name(w->dtype));
    if (w->cols % 8 != 0 || w->rows > INT32_MAX || w->cols > INT32_MAX)
        return sm_err_set(err, SM_EUNSUPPORTED,
                          "cuda: a %lld x %lld matrix (columns must be a "
                          "multiple of 8)",
                          (long long)w->rows, (long long)w->cols);
    d->rows = (int)w->rows;
    d->cols = (int)w->cols;
    size_t n = (size_t)w->rows * (size_t)w->cols;
    if (int8) {
        m->weight_bytes += n + (size_t)w->rows * 4;
        return upload_int8(m, d, w->data, err);
    }
    m->weight_bytes += 2 * n;
    return upload(m, (void **)&d->bf, w->data, 2 * n, "bf16 weights", err);
}

static sm_code upload_vec(sm_cuda_model *m, float **d, const float *v, int64_t n, sm_err *err)
{
    *d = NULL;
    if (!v)
        return SM_OK;
    m->weight_bytes += (size_t)n * 4;
    return upload(m, (void **)d, v, (size_t)n * 4, "vectors", err);
}

static size_t mat_bytes(const cu_mat *w)
{
    size_t n = (size_t)w->rows * (size_t)w->cols;
    return w->i8 ? n + (size_t)w->rows * 4 : 2 * n;
}

/* The shape, stream, cuBLAS handle and layer array of a model of shape cfg. */
static sm_code model_new(const sm_model_config *cfg, const sm_cuda_opts *opts, sm_cuda_model **out,
                         sm_err *err)
{
    *out = NULL;
    char why[256];
    if (!sm_cuda_available(why, sizeof(why)))
        return sm_err_set(err, SM_EUNSUPPORTED, "cuda: %s", why);
    if (cfg->head_dim % 32 != 0 || cfg->head_dim > SM_CUDA_MAX_HEAD_DIM ||
        cfg->n_heads % cfg->n_kv_heads != 0 || cfg->hidden % 8 != 0 || cfg->intermediate % 8 != 0)
        return sm_err_set(err, SM_EUNSUPPORTED,
                          "cuda: head_dim %lld (must be a multiple of 32, "
                          "at most %d), hidden and intermediate multiples of 8",
                          (long long)cfg->head_dim, SM_CUDA_MAX_HEAD_DIM);
    sm_cuda_model *m = calloc(1, sizeof(*m));
    if (!m || !(m->layers = calloc((size_t)cfg->n_layers, sizeof(cu_layer)))) {
        free(m);
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    m->cfg = *cfg;
    m->opts = *opts;
    m->sh = (sm_cu_shape){.hidden = (int)cfg->hidden,
                          .n_heads = (int)cfg->n_heads,
                          .n_kv_heads = (int)cfg->n_kv_heads,
                          .head_dim = (int)cfg->head_dim,
                          .n_layers = (int)cfg->n_layers,
                          .rms_eps = (float)cfg->rms_eps,
                          .rope_theta = (float)cfg->rope_theta};
    *out = m;
    cudaError_t e = cudaSetDevice(opts->device);
    if (e == cudaSuccess)
        e = cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess)
        return sm_cuda_fail(err, e, "setting up the device");
    if (cublasCreate(&m->blas) != CUBLAS_STATUS_SUCCESS ||
        cublasSetStream(m->blas, m->stream) != CUBLAS_STATUS_SUCCESS)
        return sm_err_set(err, SM_EIO, "cuda: cannot create a cuBLAS handle");
    return SM_OK;
}

/* The KV page pool: opts->kv_gib, or 85% of the free memory less 1 GiB for the scratch. */
static sm_code pool_new(sm_cuda_model *m, sm_err *err)
{
    m->page_bytes = sm_cuda_kv_bytes_per_pos(m) * SM_CUDA_PAGE;
    size_t free_b = 0, total_b = 0;
    cudaError_t e = cudaMemGetInfo(&free_b, &total_b);
    if (e != cudaSuccess)
        return sm_cuda_fail(err, e, "reading free memory");
    double want = m->opts.kv_gib > 0 ? m->opts.kv_gib * (double)(1 << 30)
                                     : 0.85 * ((double)free_b - (double)(1u << 30));
    m->n_pages = want > 0 ? (int64_t)(want / (double)m->page_bytes) : 0;
    if (m->n_pages < 1)
        return sm_err_set(err, SM_ENOMEM, "cuda: no memory left for the KV cache (%zu MiB free)",
                          free_b >> 20);
    if (!(m->free_pages = malloc((size_t)m->n_pages * sizeof(int32_t))))
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    for (int64_t i = 0; i < m->n_pages; i++)
        m->free_pages[i] = (int32_t)(m->n_pages - 1 - i);
    m->n_free = m->n_pages;
    sm_code rc =
        sm_cuda_alloc((void **)&m->pool, (size_t)m->n_pages * m->page_bytes, "the KV cache", err);
    if (rc == SM_OK)
        fprintf(stderr, "cuda: KV cache %lld pages of %d positions (%.2f GiB)\n",
                (long long)m->n_pages, SM_CUDA_PAGE,
                (double)m->n_pages * (double)m->page_bytes / (1 << 30));
    return rc;
}

static void finish_sizes(sm_cuda_model *m)
{
    size_t per = 0;
    for (int64_t l = 0; l < m->cfg.n_layers; l++) {
        const cu_layer *L = &m->layers[l];
        per += mat_bytes(&L->q) + mat_bytes(&L->k) + mat_bytes(&L->v) + mat_bytes(&L->o) +
               mat_bytes(&L->gate) + mat_bytes(&L->up) + mat_bytes(&L->down);
    }
    m->step_bytes = per + mat_bytes(&m->lm_head);
}

static sm_code copy_layers(sm_cuda_model *m, const sm_model *cpu, sm_err *err)
{
    const sm_model_config *c = &m->cfg;
    bool i8 = m->opts.int8;
    sm_code rc = SM_OK;
    for (int64_t l = 0; l < c->n_layers && rc == SM_OK; l++) {
        const sm_layer *s = &cpu->layers[l];
        cu_layer *d = &m->layers[l];
        int64_t qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
        if ((rc = upload_mat(m, &d->q, &s->q, i8, err)) ||
            (rc = upload_mat(m, &d->k, &s->k, i8, err)) ||
            (rc = upload_mat(m, &d->v, &s->v, i8, err)) ||
            (rc = upload_mat(m, &d->o, &s->o, i8, err)) ||
            (rc = upload_mat(m, &d->gate, &s->gate, i8, err)) ||
            (rc = upload_mat(m, &d->up, &s->up, i8, err)) ||
            (rc = upload_mat(m, &d->down, &s->down, i8, err)) ||
            (rc = upload_vec(m, &d->bq, s->bq, qd, err)) ||
            (rc = upload_vec(m, &d->bk, s->bk, kvd, err)) ||
            (rc = upload_vec(m, &d->bv, s->bv, kvd, err)) ||
            (rc = upload_vec(m, &d->attn_norm, s->attn_norm, c->hidden, err)))
            break;
        rc = upload_vec(m, &d->mlp_norm, s->mlp_norm, c->hidden, err);
    }
    return rc;
}

sm_code sm_cuda_model_load(const char *path, const sm_cuda_opts *opts, sm_cuda_model **out,
                           sm_err *err)
{
    *out = NULL;
    char why[256];
    if (!sm_cuda_available(why, sizeof(why)))
        return sm_err_set(err, SM_EUNSUPPORTED, "cuda: %s", why);
    sm_model_opts mo;
    sm_model_opts_init(&mo);
    mo.dtype_set = true;
    mo.dtype = SM_DTYPE_BF16;
    mo.isa_set = true;
    mo.isa = SM_ISA_PORTABLE; /* plain row-major bf16, never repacked */
    sm_model *cpu = NULL;
    sm_code rc = sm_model_load(path, &mo, &cpu, err);
    if (rc)
        return rc;
    sm_cuda_model *m = NULL;
    if ((rc = model_new(&sm_model_info(cpu)->config, opts, &m, err)))
        goto out;
    if ((rc = upload_mat(m, &m->embed, &cpu->embed, false, err)))
        goto out;
    if (m->cfg.tied)
        m->lm_head = m->embed;
    else if ((rc = upload_mat(m, &m->lm_head, &cpu->lm_head, false, err)))
        goto out;
    if ((rc = upload_vec(m, &m->final_norm, cpu->final_norm, m->cfg.hidden, err)) ||
        (rc = copy_layers(m, cpu, err)))
        goto out;
    finish_sizes(m);
    rc = pool_new(m, err);
out:
    sm_model_free(&cpu);
    if (rc)
        sm_cuda_model_free(&m);
    *out = m;
    return rc;
}

/* A random rows x cols matrix (std 0.02) made on the GPU. */
static sm_code random_mat(sm_cuda_model *m, cu_mat *d, int64_t rows, int64_t cols, uint64_t seed,
                          sm_err *err)
{
    d->rows = (int)rows;
    d->cols = (int)cols;
    size_t n = (size_t)rows * (size_t)cols;
    sm_code rc = owned_alloc(m, (void **)&d->bf, 2 * n, "random weights", err);
    if (rc)
        return rc;
    m->weight_bytes += 2 * n;
    int e = sm_cu_fill_random_bf16((sm_cu_stream *)m->stream, d->bf, (int64_t)n, seed, 0.0f, 0.02f);
    return e ? sm_cuda_fail(err, e, "random weights") : SM_OK;
}

/* A vector of n values (ones for norms, small values for biases). */
static sm_code random_vec(sm_cuda_model *m, float **d, int64_t n, float base, sm_err *err)
{
    float *h = malloc((size_t)n * sizeof(float));
    if (!h)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++)
        h[i] = base + 0.01f * (float)((i * 7919) % 13 - 6);
    sm_code rc = upload_vec(m, d, h, n, err);
    free(h);
    return rc;
}

sm_code sm_cuda_model_random(const sm_model_config *cfg, const sm_cuda_opts *opts, uint64_t seed,
                             sm_cuda_model **out, sm_err *err)
{
    sm_cuda_opts o = *opts;
    o.int8 = false; /* random weights are bf16 only */
    sm_cuda_model *m = NULL;
    sm_code rc = model_new(cfg, &o, &m, err);
    const sm_model_config *c = cfg;
    int64_t qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim, h = c->hidden;
    if (rc == SM_OK && (rc = random_mat(m, &m->embed, c->vocab, h, seed, err)) == SM_OK) {
        m->lm_head = m->embed;
        if (!c->tied)
            rc = random_mat(m, &m->lm_head, c->vocab, h, seed + 1, err);
    }
    if (rc == SM_OK)
        rc = random_vec(m, &m->final_norm, h, 1.0f, err);
    for (int64_t l = 0; l < c->n_layers && rc == SM_OK; l++) {
        cu_layer *d = &m->layers[l];
        uint64_t s = seed + 100 * (uint64_t)(l + 1);
        if ((rc = random_mat(m, &d->q, qd, h, s, err)) ||
            (rc = random_mat(m, &d->k, kvd, h, s + 1, err)) ||
            (rc = random_mat(m, &d->v, kvd, h, s + 2, err)) ||
            (rc = random_mat(m, &d->o, h, qd, s + 3, err)) ||
            (rc = random_mat(m, &d->gate, c->intermediate, h, s + 4, err)) ||
            (rc = random_mat(m, &d->up, c->intermediate, h, s + 5, err)) ||
            (rc = random_mat(m, &d->down, h, c->intermediate, s + 6, err)) ||
            (rc = random_vec(m, &d->bq, qd, 0.0f, err)) ||
            (rc = random_vec(m, &d->bk, kvd, 0.0f, err)) ||
            (rc = random_vec(m, &d->bv, kvd, 0.0f, err)) ||
            (rc = random_vec(m, &d->attn_norm, h, 1.0f, err)))
            break;
        rc = random_vec(m, &d->mlp_norm, h, 1.0f, err);
    }
    if (rc == SM_OK) {
        finish_sizes(m);
        rc = pool_new(m, err);
    }
    if (rc)
        sm_cuda_model_free(&m);
    *out = m;
    return rc;
}

static void scratch_free(cu_scratch *s)
{
    void *p[] = {s->x,      s->tmp,     s->q,      s->k,      s->v,        s->gate,
                 s->up,     s->in,      s->ids,    s->meta,   s->last_idx, s->part,
                 s->tables, s->last_in, s->logits, s->tokens, s->seeds,    s->counters};
    for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++)
        cudaFree(p[i]);
    memset(s, 0, sizeof(*s));
}

void sm_cuda_model_free(sm_cuda_model **model)
{
    sm_cuda_model *m = *model;
    if (!m)
        return;
    cudaDeviceSynchronize();
    scratch_free(&m->s);
    for (size_t i = 0; i < m->n_owned; i++)
        cudaFree(m->owned[i]);
    cudaFree(m->pool);
    if (m->blas)
        cublasDestroy(m->blas);
    if (m->stream)
        cudaStreamDestroy(m->stream);
    free(m->owned);
    free(m->free_pages);
    free(m->layers);
    free(m);
    *model = NULL;
}

const sm_model_config *sm_cuda_model_config(const sm_cuda_model *m)
{
    return &m->cfg;
}

size_t sm_cuda_weight_bytes(const sm_cuda_model *m)
{
    return m->weight_bytes;
}

size_t sm_cuda_step_bytes(const sm_cuda_model *m)
{
    return m->step_bytes;
}

size_t sm_cuda_kv_bytes_per_pos(const sm_cuda_model *m)
{
    return (size_t)m->cfg.n_layers * 2 * (size_t)(m->cfg.n_kv_heads * m->cfg.head_dim) * 2;
}

int64_t sm_cuda_free_positions(const sm_cuda_model *m)
{
    return m->n_free * SM_CUDA_PAGE;
}

void sm_cuda_set_fast(sm_cuda_model *m, bool fast)
{
    m->opts.fast = fast;
}

/* Times rounds of fn over a buffer with CUDA events; best GB/s counting bytes_per_round. */
static sm_code time_rounds(int which, void *a, void *b, size_t bytes, float *sink, double *gbs,
                           sm_err *err)
{
    cudaEvent_t t0, t1;
    if (cudaEventCreate(&t0) != cudaSuccess || cudaEventCreate(&t1) != cudaSuccess)
        return sm_err_set(err, SM_EIO, "cuda: cannot create events");
    *gbs = 0;
    int e = 0;
    for (int round = 0; round < 6 && !e; round++) {
        cudaEventRecord(t0, 0);
        e = which == 0 ? sm_cu_read_bytes(NULL, a, (int64_t)bytes, sink)
                       : (int)cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0);
        cudaEventRecord(t1, 0);
        float ms = 0;
        if (!e && !(e = (int)cudaEventSynchronize(t1)) &&
            !(e = (int)cudaEventElapsedTime(&ms, t0, t1)) && round > 0 && ms > 0) {
            double moved = which == 0 ? (double)bytes : 2.0 * (double)bytes;
            double g = moved / (ms * 1e-3) / 1e9;
            *gbs = g > *gbs ? g : *gbs;
        }
    }
    cudaEventDestroy(t0);
    cudaEventDestroy(t1);
    return e ? sm_cuda_fail(err, e, "bandwidth probe") : SM_OK;
}

sm_code sm_cuda_measure_bandwidth(int device, size_t bytes, double *read_gbs, double *copy_gbs,
                                  sm_err *err)
{
    void *a = NULL, *b = NULL;
    float *sink = NULL;
    bytes &= ~(size_t)15;
    cudaError_t e = cudaSetDevice(device);
    if (e != cudaSuccess)
        return sm_cuda_fail(err, e, "setting the device");
    sm_code rc = sm_cuda_alloc(&a, bytes, "the probe buffer", err);
    if (rc == SM_OK)
        rc = sm_cuda_alloc(&b, bytes, "the probe buffer", err);
    if (rc == SM_OK)
        rc = sm_cuda_alloc((void **)&sink, 4096 * sizeof(float), "the probe sink", err);
    if (rc == SM_OK && (e = cudaMemset(a, 1, bytes)) != cudaSuccess)
        rc = sm_cuda_fail(err, e, "filling the probe buffer");
    if (rc == SM_OK)
        rc = time_rounds(0, a, b, bytes, sink, read_gbs, err);
    if (rc == SM_OK)
        rc = time_rounds(1, a, b, bytes, sink, copy_gbs, err);
    cudaFree(a);
    cudaFree(b);
    cudaFree(sink);
    return rc;
}
