/* sm_gguf: parses a GGUF file: magic "GGUF", version, tensor count, metadata count, metadata
 * key/value pairs, tensor infos (name, dims, ggml type, offset), padding to the alignment, and
 * the tensor data area. Every read goes through a bounds-checked cursor. */
#include "sm_gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_MAX_STR (1u << 24)
#define GGUF_MAX_COUNT (1u << 24)

enum {
    GT_U8 = 0,
    GT_I8,
    GT_U16,
    GT_I16,
    GT_U32,
    GT_I32,
    GT_F32,
    GT_BOOL,
    GT_STRING,
    GT_ARRAY,
    GT_U64,
    GT_I64,
    GT_F64,
    GT_COUNT
};

typedef struct gguf_kv {
    char *key;
    uint32_t type;
    const uint8_t *val; /* the value's bytes in the mapping (for arrays: after type+count) */
    uint32_t arr_type;
    uint64_t arr_n;
} gguf_kv;

struct sm_gguf {
    char *path;
    sm_mapped_file map;
    gguf_kv *kv;
    size_t n_kv;
    sm_tensor *tensors;
    size_t n_tensors;
};

typedef struct cursor {
    const uint8_t *p;
    size_t left;
    const char *path;
    sm_err *err;
} cursor;

static sm_code need(cursor *c, size_t n, const char *what)
{
    if (c->left < n) {
        return sm_err_set(c->err, SM_EFORMAT, "%s: truncated while reading %s", c->path, what);
    }
    return SM_OK;
}

static uint64_t rd_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static sm_code rd_u32(cursor *c, uint32_t *v, const char *what)
{
    if (need(c, 4, what) != SM_OK) {
        return SM_EFORMAT;
    }
    *v = (uint32_t)rd_le(c->p, 4);
    c->p += 4;
    c->left -= 4;
    return SM_OK;
}

static sm_code rd_u64(cursor *c, uint64_t *v, const char *what)
{
    if (need(c, 8, what) != SM_OK) {
        return SM_EFORMAT;
    }
    *v = rd_le(c->p, 8);
    c->p += 8;
    c->left -= 8;
    return SM_OK;
}

/* A string: u64 length then bytes. *s points into the mapping. */
static sm_code rd_str(cursor *c, const uint8_t **s, uint64_t *len, const char *what)
{
    if (rd_u64(c, len, what) != SM_OK) {
        return SM_EFORMAT;
    }
    if (*len > GGUF_MAX_STR || *len > c->left) {
        return sm_err_set(c->err, SM_EFORMAT, "%s: %s: string length %llu past the end", c->path,
                          what, (unsigned long long)*len);
    }
    *s = c->p;
    c->p += *len;
    c->left -= *len;
    return SM_OK;
}

static size_t scalar_size(uint32_t t)
{
    switch (t) {
    case GT_U8:
    case GT_I8:
    case GT_BOOL:
        return 1;
    case GT_U16:
    case GT_I16:
        return 2;
    case GT_U32:
    case GT_I32:
    case GT_F32:
        return 4;
    case GT_U64:
    case GT_I64:
    case GT_F64:
        return 8;
    default:
        return 0;
    }
}

/* Skips one value of type t (not an array). */
static sm_code skip_value(cursor *c, uint32_t t, const char *what)
{
    if (t == GT_STRING) {
        const uint8_t *s = NULL;
        uint64_t n = 0;
        return rd_str(c, &s, &n, what);
    }
    size_t sz = scalar_size(t);
    if (sz == 0) {
        return sm_err_set(c->err, SM_EFORMAT, "%s: %s: unknown value type %u", c->path, what, t);
    }
    if (need(c, sz, what) != SM_OK) {
        return SM_EFORMAT;
    }
    c->p += sz;
    c->left -= sz;
    return SM_OK;
}

static sm_code parse_kv(cursor *c, gguf_kv *kv)
{
    const uint8_t *s = NULL;
    uint64_t n = 0;
    if (rd_str(c, &s, &n, "metadata key") != SM_OK) {
        return SM_EFORMAT;
    }
    if ((kv->key = strndup((const char *)s, n)) == NULL) {
        return sm_err_set(c->err, SM_ENOMEM, "out of memory");
    }
    if (strlen(kv->key) != n) {
        return sm_err_set(c->err, SM_EFORMAT, "%s: metadata key with a NUL byte", c->path);
    }
    if (rd_u32(c, &kv->type, kv->key) != SM_OK) {
        return SM_EFORMAT;
    }
    if (kv->type == GT_ARRAY) {
        if (rd_u32(c, &kv->arr_type, kv->key) != SM_OK || rd_u64(c, &kv->arr_n, kv->key) != SM_OK) {
            return SM_EFORMAT;
        }
        if (kv->arr_type == GT_ARRAY || kv->arr_type >= GT_COUNT) {
            return sm_err_set(c->err, SM_EFORMAT, "%s: %s: bad array element type %u", c->path,
                              kv->key, kv->arr_type);
        }
        kv->val = c->p;
        if (kv->arr_type == GT_STRING) {
            if (kv->arr_n > c->left / 8) {
                return sm_err_set(c->err, SM_EFORMAT, "%s: %s: array of %llu strings past the end",
                                  c->path, kv->key, (unsigned long long)kv->arr_n);
            }
            for (uint64_t i = 0; i < kv->arr_n; i++) {
                if (skip_value(c, GT_STRING, kv->key) != SM_OK) {
                    return SM_EFORMAT;
                }
            }
        } else {
            size_t sz = scalar_size(kv->arr_type);
            if (kv->arr_n > c->left / sz) {
                return sm_err_set(c->err, SM_EFORMAT, "%s: %s: array of %llu values past the end",
                                  c->path, kv->key, (unsigned long long)kv->arr_n);
            }
            c->p += kv->arr_n * sz;
            c->left -= kv->arr_n * sz;
        }
        return SM_OK;
    }
    kv->val = c->p;
    return skip_value(c, kv->type, kv->key);
}

/* ggml's tensor types by their GGUF number: the engine's dtype (SM_DTYPE_COUNT: known but not
 * loadable), values per block, bytes per block, name. */
/* clang-format off */
static const struct ggml_type {
    uint32_t id;
    sm_dtype dt;
    int64_t blk;
    size_t bsz;
    const char *name;
} ggml_types[] = {
    {0, SM_DTYPE_F32, 1, 4, "F32"},         {1, SM_DTYPE_F16, 1, 2, "F16"},
    {2, SM_DTYPE_Q4_0, 32, 18, "Q4_0"},     {3, SM_DTYPE_COUNT, 32, 20, "Q4_1"},
    {6, SM_DTYPE_COUNT, 32, 22, "Q5_0"},    {7, SM_DTYPE_COUNT, 32, 24, "Q5_1"},
    {8, SM_DTYPE_Q8_0, 32, 34, "Q8_0"},     {10, SM_DTYPE_COUNT, 256, 84, "Q2_K"},
    {11, SM_DTYPE_COUNT, 256, 110, "Q3_K"}, {12, SM_DTYPE_Q4_K, 256, 144, "Q4_K"},
    {13, SM_DTYPE_Q5_K, 256, 176, "Q5_K"},  {14, SM_DTYPE_Q6_K, 256, 210, "Q6_K"},
    {24, SM_DTYPE_COUNT, 1, 1, "I8"},       {25, SM_DTYPE_COUNT, 1, 2, "I16"},
    {26, SM_DTYPE_COUNT, 1, 4, "I32"},      {27, SM_DTYPE_COUNT, 1, 8, "I64"},
    {28, SM_DTYPE_COUNT, 1, 8, "F64"},      {30, SM_DTYPE_BF16, 1, 2, "BF16"},
};
/* clang-format on */

static int ggml_type_info(uint32_t t, sm_dtype *dt, int64_t *blk, size_t *bsz, const char **name)
{
    for (size_t i = 0; i < sizeof ggml_types / sizeof ggml_types[0]; i++)
        if (ggml_types[i].id == t) {
            *dt = ggml_types[i].dt;
            *blk = ggml_types[i].blk;
            *bsz = ggml_types[i].bsz;
            *name = ggml_types[i].name;
            return 1;
        }
    return 0;
}

static sm_code parse_tensor_info(cursor *c, sm_tensor *t, uint64_t *offset)
{
    const uint8_t *s = NULL;
    uint64_t n = 0;
    if (rd_str(c, &s, &n, "tensor name") != SM_OK) {
        return SM_EFORMAT;
    }
    if ((t->name = strndup((const char *)s, n)) == NULL) {
        return sm_err_set(c->err, SM_ENOMEM, "out of memory");
    }
    uint32_t nd, type;
    if (rd_u32(c, &nd, t->name) != SM_OK) {
        return SM_EFORMAT;
    }
    if (nd == 0 || nd > SM_TENSOR_MAX_DIMS) {
        return sm_err_set(c->err, SM_EFORMAT, "%s: tensor %s: %u dimensions", c->path, t->name, nd);
    }
    t->n_dims = (int)nd;
    uint64_t ne[SM_TENSOR_MAX_DIMS];
    for (uint32_t i = 0; i < nd; i++) {
        if (rd_u64(c, &ne[i], t->name) != SM_OK) {
            return SM_EFORMAT;
        }
        if (ne[i] > (uint64_t)INT64_MAX / 2) {
            return sm_err_set(c->err, SM_EFORMAT, "%s: tensor %s: dimension too large", c->path,
                              t->name);
        }
        t->shape[nd - 1 - i] = (int64_t)ne[i];
    }
    if (rd_u32(c, &type, t->name) != SM_OK || rd_u64(c, offset, t->name) != SM_OK) {
        return SM_EFORMAT;
    }
    int64_t blk;
    size_t bsz;
    const char *tn;
    if (!ggml_type_info(type, &t->dtype, &blk, &bsz, &tn)) {
        return sm_err_set(c->err, SM_EFORMAT, "%s: tensor %s: unknown ggml type %u", c->path,
                          t->name, type);
    }
    snprintf(t->type_name, sizeof t->type_name, "%s", tn);
    if (ne[0] % (uint64_t)blk != 0) {
        return sm_err_set(c->err, SM_EFORMAT,
                          "%s: tensor %s: row of %llu values is not a multiple of the %s block",
                          c->path, t->name, (unsigned long long)ne[0], tn);
    }
    int64_t numel = sm_tensor_numel(t);
    int zero = 0;
    for (uint32_t i = 0; i < nd; i++) {
        zero |= ne[i] == 0;
    }
    if (numel == 0 && !zero) {
        return sm_err_set(c->err, SM_EFORMAT, "%s: tensor %s: too many elements", c->path, t->name);
    }
    uint64_t blocks = (uint64_t)numel / (uint64_t)blk;
    if (blocks > SIZE_MAX / bsz) {
        return sm_err_set(c->err, SM_EFORMAT, "%s: tensor %s: too large", c->path, t->name);
    }
    t->nbytes = (size_t)(blocks * bsz);
    return SM_OK;
}

static const gguf_kv *find_kv(const sm_gguf *g, const char *key)
{
    for (size_t i = 0; i < g->n_kv; i++) {
        if (strcmp(g->kv[i].key, key) == 0) {
            return &g->kv[i];
        }
    }
    return NULL;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp((*(const sm_tensor *const *)a)->name, (*(const sm_tensor *const *)b)->name);
}

static int cmp_kv_key(const void *a, const void *b)
{
    return strcmp((*(const gguf_kv *const *)a)->key, (*(const gguf_kv *const *)b)->key);
}

static sm_code check_unique_keys(const sm_gguf *g)
{
    if (g->n_kv < 2) {
        return SM_OK;
    }
    const gguf_kv **keys = malloc(g->n_kv * sizeof *keys);
    if (keys == NULL) {
        return SM_ENOMEM;
    }
    for (size_t i = 0; i < g->n_kv; i++) {
        keys[i] = &g->kv[i];
    }
    qsort(keys, g->n_kv, sizeof *keys, cmp_kv_key);
    sm_code rc = SM_OK;
    for (size_t i = 1; i < g->n_kv && rc == SM_OK; i++) {
        if (strcmp(keys[i - 1]->key, keys[i]->key) == 0) {
            rc = SM_EFORMAT;
        }
    }
    free(keys);
    return rc;
}

/* The header: magic, version, and the counts of tensors and metadata entries. */
static sm_code read_header(cursor *c, uint64_t *n_tensors, uint64_t *n_kv)
{
    uint32_t magic, version;
    sm_code rc = rd_u32(c, &magic, "magic");
    if (rc != SM_OK)
        return rc;
    if (magic != 0x46554747u)
        return sm_err_set(c->err, SM_EFORMAT, "%s: not a GGUF file (bad magic)", c->path);
    if ((rc = rd_u32(c, &version, "version")) != SM_OK)
        return rc;
    if (version != 2 && version != 3)
        return sm_err_set(c->err, SM_EUNSUPPORTED, "%s: GGUF version %u (supported: 2, 3%s)",
                          c->path, version,
                          (version & 0xffff) == 0 ? "; big-endian files are not" : "");
    if ((rc = rd_u64(c, n_tensors, "tensor count")) != SM_OK ||
        (rc = rd_u64(c, n_kv, "metadata count")) != SM_OK)
        return rc;
    /* Each tensor info takes at least 28 bytes, each key/value at least 13. */
    if (*n_tensors > GGUF_MAX_COUNT || *n_kv > GGUF_MAX_COUNT || *n_tensors > c->left / 28 ||
        *n_kv > c->left / 13)
        return sm_err_set(c->err, SM_EFORMAT, "%s: %llu tensors / %llu metadata entries do not fit",
                          c->path, (unsigned long long)*n_tensors, (unsigned long long)*n_kv);
    return SM_OK;
}

/* The metadata, its keys unique, and general.alignment (32 when absent). */
static sm_code read_metadata(sm_gguf *g, cursor *c, uint64_t n_kv, uint64_t *alignment)
{
    sm_code rc;
    for (uint64_t i = 0; i < n_kv; i++) {
        g->n_kv++;
        if ((rc = parse_kv(c, &g->kv[i])) != SM_OK)
            return rc;
    }
    if ((rc = check_unique_keys(g)) != SM_OK)
        return sm_err_set(c->err, rc, "%s: %s", g->path,
                          rc == SM_ENOMEM ? "out of memory" : "duplicate metadata key");
    *alignment = 32;
    if (find_kv(g, "general.alignment") == NULL)
        return SM_OK;
    int64_t v;
    if ((rc = sm_gguf_get_int(g, "general.alignment", &v, c->err)) != SM_OK)
        return rc;
    if (v <= 0 || v > (1 << 16) || (v & (v - 1)) != 0)
        return sm_err_set(c->err, SM_EFORMAT, "%s: general.alignment %lld is not a power of two",
                          g->path, (long long)v);
    *alignment = (uint64_t)v;
    return SM_OK;
}

/* The tensor infos (offsets[i] relative to the data area), their names unique. */
static sm_code read_tensor_infos(sm_gguf *g, cursor *c, uint64_t n, uint64_t *offsets,
                                 const sm_tensor **order)
{
    sm_code rc;
    for (uint64_t i = 0; i < n; i++) {
        g->n_tensors++;
        if ((rc = parse_tensor_info(c, &g->tensors[i], &offsets[i])) != SM_OK)
            return rc;
        order[i] = &g->tensors[i];
    }
    qsort(order, n, sizeof *order, cmp_tensor_name);
    for (uint64_t i = 1; i < n; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0)
            return sm_err_set(c->err, SM_EFORMAT, "%s: duplicate tensor %s", g->path,
                              order[i]->name);
    return SM_OK;
}

/* Points each tensor at its data after the aligned header: aligned, inside the file, and no two
 * overlapping. */
static sm_code place_tensors(sm_gguf *g, size_t header, uint64_t alignment, const uint64_t *offsets,
                             const sm_tensor **order, uint64_t n, sm_err *err)
{
    size_t data_start = (header + alignment - 1) / alignment * alignment;
    if (n > 0 && data_start > g->map.size)
        return sm_err_set(err, SM_EFORMAT, "%s: truncated before the tensor data", g->path);
    size_t data_size = data_start <= g->map.size ? g->map.size - data_start : 0;
    for (uint64_t i = 0; i < n; i++) {
        sm_tensor *t = &g->tensors[i];
        if (offsets[i] % alignment != 0)
            return sm_err_set(err, SM_EFORMAT, "%s: tensor %s: offset %llu not aligned to %llu",
                              g->path, t->name, (unsigned long long)offsets[i],
                              (unsigned long long)alignment);
        if (offsets[i] > data_size || t->nbytes > data_size - offsets[i])
            return sm_err_set(err, SM_EFORMAT,
                              "%s: tensor %s: %zu bytes at offset %llu past the end of the file "
                              "(data area %zu bytes; truncated?)",
                              g->path, t->name, t->nbytes, (unsigned long long)offsets[i],
                              data_size);
        t->data = g->map.data + data_start + offsets[i];
        order[i] = t;
    }
    return sm_tensors_check_overlap(order, n, g->path, err);
}

sm_code sm_gguf_open(const char *path, sm_gguf **out, sm_err *err)
{
    *out = NULL;
    sm_gguf *g = calloc(1, sizeof *g);
    if (g == NULL || (g->path = strdup(path)) == NULL) {
        free(g);
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    uint64_t *offsets = NULL;
    const sm_tensor **order = NULL;
    uint64_t n_tensors = 0, n_kv = 0, alignment = 32;
    sm_code rc = sm_file_map(path, &g->map, err);
    cursor c = {g->map.data, g->map.size, g->path, err};
    if (rc == SM_OK)
        rc = read_header(&c, &n_tensors, &n_kv);
    if (rc == SM_OK) {
        g->kv = calloc(n_kv ? n_kv : 1, sizeof *g->kv);
        g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
        offsets = calloc(n_tensors ? n_tensors : 1, sizeof *offsets);
        order = calloc(n_tensors ? n_tensors : 1, sizeof *order);
        if (g->kv == NULL || g->tensors == NULL || offsets == NULL || order == NULL)
            rc = sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    if (rc == SM_OK)
        rc = read_metadata(g, &c, n_kv, &alignment);
    if (rc == SM_OK)
        rc = read_tensor_infos(g, &c, n_tensors, offsets, order);
    if (rc == SM_OK)
        rc = place_tensors(g, g->map.size - c.left, alignment, offsets, order, n_tensors, err);
    free(offsets);
    free(order);
    if (rc != SM_OK) {
        sm_gguf_close(&g);
        return rc;
    }
    *out = g;
    return SM_OK;
}

void sm_gguf_close(sm_gguf **pg)
{
    sm_gguf *g = *pg;
    if (g == NULL) {
        return;
    }
    for (size_t i = 0; i < g->n_kv; i++) {
        free(g->kv[i].key);
    }
    for (size_t i = 0; i < g->n_tensors; i++) {
        free(g->tensors[i].name);
    }
    free(g->kv);
    free(g->tensors);
    sm_file_unmap(&g->map);
    free(g->path);
    free(g);
    *pg = NULL;
}

size_t sm_gguf_tensor_count(const sm_gguf *g)
{
    return g->n_tensors;
}

const sm_tensor *sm_gguf_tensor(const sm_gguf *g, size_t i)
{
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const sm_tensor *sm_gguf_find(const sm_gguf *g, const char *name)
{
    for (size_t i = 0; i < g->n_tensors; i++) {
        if (strcmp(g->tensors[i].name, name) == 0) {
            return &g->tensors[i];
        }
    }
    return NULL;
}

sm_code sm_gguf_get_int(const sm_gguf *g, const char *key, int64_t *out, sm_err *err)
{
    const gguf_kv *kv = find_kv(g, key);
    if (kv == NULL) {
        return sm_err_set(err, SM_ENOTFOUND, "%s: no metadata key %s", g->path, key);
    }
    const uint8_t *p = kv->val;
    switch (kv->type) {
    case GT_U8:
    case GT_BOOL:
        *out = p[0];
        return SM_OK;
    case GT_I8:
        *out = (int8_t)p[0];
        return SM_OK;
    case GT_U16:
        *out = (uint16_t)rd_le(p, 2);
        return SM_OK;
    case GT_I16:
        *out = (int16_t)(uint16_t)rd_le(p, 2);
        return SM_OK;
    case GT_U32:
        *out = (uint32_t)rd_le(p, 4);
        return SM_OK;
    case GT_I32:
        *out = (int32_t)(uint32_t)rd_le(p, 4);
        return SM_OK;
    case GT_I64:
        *out = (int64_t)rd_le(p, 8);
        return SM_OK;
    case GT_U64: {
        uint64_t v = rd_le(p, 8);
        if (v > (uint64_t)INT64_MAX) {
            return sm_err_set(err, SM_EFORMAT, "%s: %s: value too large", g->path, key);
        }
        *out = (int64_t)v;
        return SM_OK;
    }
    default:
        return sm_err_set(err, SM_EFORMAT, "%s: %s is not an integer", g->path, key);
    }
}

sm_code sm_gguf_get_float(const sm_gguf *g, const char *key, double *out, sm_err *err)
{
    const gguf_kv *kv = find_kv(g, key);
    if (kv == NULL) {
        return sm_err_set(err, SM_ENOTFOUND, "%s: no metadata key %s", g->path, key);
    }
    if (kv->type == GT_F32) {
        uint32_t u = (uint32_t)rd_le(kv->val, 4);
        float f;
        memcpy(&f, &u, 4);
        *out = f;
        return SM_OK;
    }
    if (kv->type == GT_F64) {
        uint64_t u = rd_le(kv->val, 8);
        memcpy(out, &u, 8);
        return SM_OK;
    }
    int64_t v;
    sm_code rc = sm_gguf_get_int(g, key, &v, err);
    if (rc == SM_OK) {
        *out = (double)v;
        return SM_OK;
    }
    return sm_err_set(err, SM_EFORMAT, "%s: %s is not a number", g->path, key);
}

sm_code sm_gguf_get_str(const sm_gguf *g, const char *key, char **out, sm_err *err)
{
    *out = NULL;
    const gguf_kv *kv = find_kv(g, key);
    if (kv == NULL) {
        return sm_err_set(err, SM_ENOTFOUND, "%s: no metadata key %s", g->path, key);
    }
    if (kv->type != GT_STRING) {
        return sm_err_set(err, SM_EFORMAT, "%s: %s is not a string", g->path, key);
    }
    uint64_t n = rd_le(kv->val, 8);
    if ((*out = strndup((const char *)kv->val + 8, n)) == NULL) {
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    return SM_OK;
}

sm_code sm_gguf_get_array_len(const sm_gguf *g, const char *key, uint64_t *n, sm_err *err)
{
    const gguf_kv *kv = find_kv(g, key);
    if (kv == NULL) {
        return sm_err_set(err, SM_ENOTFOUND, "%s: no metadata key %s", g->path, key);
    }
    if (kv->type != GT_ARRAY) {
        return sm_err_set(err, SM_EFORMAT, "%s: %s is not an array", g->path, key);
    }
    *n = kv->arr_n;
    return SM_OK;
}
