/* sm_model_load: a Qwen2 model's life: finding it (a Hugging Face directory or a GGUF file),
 * opening its files and reading its configuration (config.json or GGUF metadata), loading it
 * with the chosen kernels and thread pool (the weights themselves: sm_model_weights.c), and
 * freeing it. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sm_log.h"
#include "sm_model_internal.h"
#include "sm_pool.h"

void sm_model_opts_init(sm_model_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->dtype = SM_DTYPE_F32;
    opts->isa = SM_ISA_PORTABLE;
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
    if (opts->kv_dtype_set && opts->kv_dtype != SM_DTYPE_F32 && opts->kv_dtype != SM_DTYPE_F16 &&
        opts->kv_dtype != SM_DTYPE_Q8_0) {
        return sm_err_set(err, SM_EINVAL, "the KV cache holds f32, f16 or q8_0 values");
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
        rc = sm_model_load_weights(m, err);
    }
    if (rc != SM_OK) {
        if (err != NULL && strncmp(err->msg, path, strlen(path)) != 0) {
            sm_err_prefix(err, "%s", path);
        }
        sm_model_free(&m);
        return rc;
    }
    const sm_model_config *c = &m->info.config;
    if (opts->kv_dtype_set && opts->kv_dtype == SM_DTYPE_Q8_0 && c->head_dim % 8 != 0) {
        sm_err_set(err, SM_EUNSUPPORTED,
                   "%s: the 8-bit KV cache needs a head size that is a "
                   "multiple of 8 (this model's is %lld)",
                   path, (long long)c->head_dim);
        sm_model_free(&m);
        return SM_EUNSUPPORTED;
    }
    /* f16 keys and values lose nothing that matters next to 16-bit or 8-bit weights and halve
     * the cache's memory and the bytes attention reads; f32 weights keep an exact f32 cache,
     * and so does the portable variant (no f16 conversion instruction: f16 is slower there) */
    bool kv_f32 = m->info.weight_dtype == SM_DTYPE_F32 || m->k.isa == SM_ISA_PORTABLE;
    m->info.kv_dtype = opts->kv_dtype_set ? opts->kv_dtype : kv_f32 ? SM_DTYPE_F32 : SM_DTYPE_F16;
    m->info.kv_bytes_per_token = sm_model_kv_bytes_per_pos(c, m->info.kv_dtype);
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

size_t sm_model_kv_bytes_per_pos(const sm_model_config *c, sm_dtype kv_dtype)
{
    size_t kvd = (size_t)(c->n_kv_heads * c->head_dim);
    size_t row = kv_dtype == SM_DTYPE_Q8_0  ? kvd + 4 * (size_t)c->n_kv_heads
                 : kv_dtype == SM_DTYPE_F16 ? 2 * kvd
                                            : 4 * kvd;
    return (size_t)c->n_layers * 2 * row;
}

sm_dtype sm_model_default_kv_dtype(const sm_model_opts *opts)
{
    if (opts->kv_dtype_set) {
        return opts->kv_dtype;
    }
    sm_isa isa = opts->isa_set ? opts->isa : sm_isa_detect();
    bool f32 = (opts->dtype_set && opts->dtype == SM_DTYPE_F32) || isa == SM_ISA_PORTABLE;
    return f32 ? SM_DTYPE_F32 : SM_DTYPE_F16;
}

sm_code sm_model_peek_config(const char *path, sm_model_config *cfg, sm_err *err)
{
    sm_model *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    char *gguf = NULL;
    sm_code rc = resolve(path, &m->dir, &gguf, err);
    if (rc == SM_OK) {
        rc = gguf ? open_gguf(m, gguf, err) : open_hf(m, err);
    }
    free(gguf);
    if (rc == SM_OK) {
        *cfg = m->info.config;
    } else if (err != NULL && strncmp(err->msg, path, strlen(path)) != 0) {
        sm_err_prefix(err, "%s", path);
    }
    sm_model_free(&m);
    return rc;
}

void sm_model_free(sm_model **pm)
{
    sm_model *m = *pm;
    if (m == NULL) {
        return;
    }
    sm_acts_free(&m->acts);
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
