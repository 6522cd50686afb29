/* sm_dev: the CPU engine or the CUDA plugin behind one interface (see sm_dev.h). */
#include "sm_dev.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sm_cuda_plugin.h"

struct sm_dev_model {
    sm_device device;
    sm_model *cpu;
    bool owns_cpu;
    const sm_cuda_api *api;
    sm_cuda_model *cu;
    char dir[1024];
    /* the device's sequences of one forward call */
    sm_seq **cpu_seqs;
    sm_cuda_seq **cu_seqs;
    int scratch_cap;
};

struct sm_dev_seq {
    sm_dev_model *m;
    int64_t max_ctx;
    sm_seq *cpu;
    sm_cuda_seq *cu;
};

sm_code sm_device_parse(const char *name, sm_device *out, sm_err *err)
{
    if (name && strcmp(name, "cpu") == 0)
        *out = SM_DEVICE_CPU;
    else if (name && strcmp(name, "cuda") == 0)
        *out = SM_DEVICE_CUDA;
    else
        return sm_err_set(err, SM_EINVAL, "device %s: cpu or cuda", name ? name : "(none)");
    return SM_OK;
}

/* The model's folder: path itself, or the folder of a file (GGUF). */
static void dir_of(const char *path, char *buf, size_t size)
{
    snprintf(buf, size, "%s", path);
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
        char *slash = strrchr(buf, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(buf, size, ".");
    }
}

static sm_code load_cuda(sm_dev_model *d, const char *path, const sm_dev_opts *opts, sm_err *err)
{
    sm_code rc = sm_cuda_plugin_open(opts->cuda_plugin, &d->api, err);
    if (rc)
        return rc;
    sm_cuda_opts co;
    d->api->opts_init(&co);
    co.fast = opts->cpu.fast;
    co.int8 = opts->cuda_int8;
    rc = d->api->model_load(path, &co, &d->cu, err);
    if (!rc)
        dir_of(path, d->dir, sizeof d->dir);
    return rc;
}

sm_code sm_dev_load(const char *path, const sm_dev_opts *opts, sm_dev_model **out, sm_err *err)
{
    *out = NULL;
    sm_dev_model *d = calloc(1, sizeof *d);
    if (!d)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    d->device = opts->device;
    sm_code rc;
    if (opts->device == SM_DEVICE_CUDA) {
        rc = load_cuda(d, path, opts, err);
    } else {
        d->owns_cpu = true;
        rc = sm_model_load(path, &opts->cpu, &d->cpu, err);
        if (!rc)
            snprintf(d->dir, sizeof d->dir, "%s", sm_model_dir(d->cpu));
    }
    if (rc) {
        sm_dev_free(&d);
        return rc;
    }
    *out = d;
    return SM_OK;
}

sm_code sm_dev_wrap_cpu(sm_model *model, sm_dev_model **out, sm_err *err)
{
    sm_dev_model *d = calloc(1, sizeof *d);
    if (!d)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    d->device = SM_DEVICE_CPU;
    d->cpu = model;
    snprintf(d->dir, sizeof d->dir, "%s", sm_model_dir(model));
    *out = d;
    return SM_OK;
}

void sm_dev_free(sm_dev_model **pm)
{
    sm_dev_model *d = *pm;
    if (!d)
        return;
    if (d->owns_cpu)
        sm_model_free(&d->cpu);
    if (d->cu)
        d->api->model_free(&d->cu);
    free(d->cpu_seqs);
    free(d->cu_seqs);
    free(d);
    *pm = NULL;
}

sm_device sm_dev_device(const sm_dev_model *m)
{
    return m->device;
}

const sm_model_config *sm_dev_config(const sm_dev_model *m)
{
    return m->cu ? m->api->model_config(m->cu) : &sm_model_info(m->cpu)->config;
}

sm_model *sm_dev_cpu(sm_dev_model *m)
{
    return m->cpu;
}

sm_pool *sm_dev_pool(sm_dev_model *m)
{
    return m->cpu ? sm_model_pool(m->cpu) : NULL;
}

void sm_dev_dir(const sm_dev_model *m, char *buf, size_t size)
{
    snprintf(buf, size, "%s", m->dir);
}

void sm_dev_describe(const sm_dev_model *m, char *buf, size_t size)
{
    if (m->cu)
        m->api->describe(0, buf, size);
    else
        snprintf(buf, size, "cpu");
}

sm_code sm_dev_seq_new(sm_dev_model *m, int64_t max_ctx, sm_dev_seq **out, sm_err *err)
{
    *out = NULL;
    sm_dev_seq *s = calloc(1, sizeof *s);
    if (!s)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    s->m = m;
    s->max_ctx = max_ctx;
    sm_code rc = m->cu ? m->api->seq_new(m->cu, max_ctx, &s->cu, err)
                       : sm_seq_new(m->cpu, max_ctx, &s->cpu, err);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return SM_OK;
}

void sm_dev_seq_free(sm_dev_seq **ps)
{
    sm_dev_seq *s = *ps;
    if (!s)
        return;
    if (s->cu)
        s->m->api->seq_free(&s->cu);
    sm_seq_free(&s->cpu);
    free(s);
    *ps = NULL;
}

int64_t sm_dev_seq_pos(const sm_dev_seq *s)
{
    return s->cu ? s->m->api->seq_pos(s->cu) : sm_seq_pos(s->cpu);
}

sm_code sm_dev_seq_reset(sm_dev_seq *s, sm_err *err)
{
    if (!s->m->cu)
        return sm_seq_truncate(s->cpu, 0, err);
    /* a fresh sequence: the old one's pages go back to the pool */
    s->m->api->seq_free(&s->cu);
    return s->m->api->seq_new(s->m->cu, s->max_ctx, &s->cu, err);
}

sm_code sm_dev_seq_copy_prefix(sm_dev_seq *dst, const sm_dev_seq *src, int64_t n, sm_err *err)
{
    if (dst->m != src->m)
        return sm_err_set(err, SM_EINVAL, "copy_prefix: sequences of two models");
    return dst->cu ? dst->m->api->seq_copy_prefix(dst->cu, src->cu, n, err)
                   : sm_seq_copy_prefix(dst->cpu, src->cpu, n, err);
}

sm_code sm_dev_forward(sm_dev_model *m, sm_dev_seq *const *seqs, const int32_t *const *tokens,
                       const int64_t *n_tokens, int n_seqs, float *logits, sm_err *err)
{
    if (n_seqs < 1)
        return sm_err_set(err, SM_EINVAL, "forward: no sequences");
    if (n_seqs > m->scratch_cap) {
        sm_seq **a = realloc(m->cpu_seqs, (size_t)n_seqs * sizeof *a);
        if (a)
            m->cpu_seqs = a;
        sm_cuda_seq **b = realloc(m->cu_seqs, (size_t)n_seqs * sizeof *b);
        if (b)
            m->cu_seqs = b;
        if (!a || !b)
            return sm_err_set(err, SM_ENOMEM, "out of memory");
        m->scratch_cap = n_seqs;
    }
    for (int i = 0; i < n_seqs; i++) {
        if (seqs[i]->m != m)
            return sm_err_set(err, SM_EINVAL, "forward: a sequence of another model");
        m->cpu_seqs[i] = seqs[i]->cpu;
        m->cu_seqs[i] = seqs[i]->cu;
    }
    if (m->cu)
        return m->api->forward(m->cu, m->cu_seqs, tokens, n_tokens, n_seqs, logits, err);
    return sm_model_forward(m->cpu, m->cpu_seqs, tokens, n_tokens, n_seqs, logits, err);
}
