/* sm_safetensors: reads and validates the safetensors format: u64 little-endian header size N,
 * N bytes of JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__"},
 * then the data area that the offsets index. */
#include "sm_safetensors.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SM_ST_MAX_HEADER (100u << 20)

struct sm_safetensors {
    char *path;
    sm_mapped_file map;
    sm_tensor *tensors;
    size_t n;
};

static const struct {
    const char *name;
    sm_dtype dtype;
    size_t size;
} st_types[] = {
    {"F32", SM_DTYPE_F32, 4},    {"F16", SM_DTYPE_F16, 2},       {"BF16", SM_DTYPE_BF16, 2},
    {"F64", SM_DTYPE_COUNT, 8},  {"I64", SM_DTYPE_COUNT, 8},     {"U64", SM_DTYPE_COUNT, 8},
    {"I32", SM_DTYPE_COUNT, 4},  {"U32", SM_DTYPE_COUNT, 4},     {"I16", SM_DTYPE_COUNT, 2},
    {"U16", SM_DTYPE_COUNT, 2},  {"I8", SM_DTYPE_COUNT, 1},      {"U8", SM_DTYPE_COUNT, 1},
    {"BOOL", SM_DTYPE_COUNT, 1}, {"F8_E4M3", SM_DTYPE_COUNT, 1}, {"F8_E5M2", SM_DTYPE_COUNT, 1},
};

static sm_code parse_tensor(sm_safetensors *f, const char *name, json_t *v, const uint8_t *base,
                            size_t data_size, sm_tensor *t, sm_err *err)
{
    const char *p = f->path;
    if (!json_is_object(v)) {
        return sm_err_set(err, SM_EFORMAT, "%s: tensor %s: entry is not an object", p, name);
    }
    json_t *jd = json_object_get(v, "dtype");
    json_t *js = json_object_get(v, "shape");
    json_t *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo) ||
        json_array_size(jo) != 2) {
        return sm_err_set(err, SM_EFORMAT,
                          "%s: tensor %s: needs dtype (string), shape (array) and "
                          "data_offsets ([begin, end])",
                          p, name);
    }
    size_t esize = 0;
    const char *dn = json_string_value(jd);
    for (size_t i = 0; i < sizeof st_types / sizeof st_types[0]; i++) {
        if (strcmp(dn, st_types[i].name) == 0) {
            t->dtype = st_types[i].dtype;
            esize = st_types[i].size;
        }
    }
    if (esize == 0) {
        return sm_err_set(err, SM_EFORMAT, "%s: tensor %s: unknown dtype \"%.32s\"", p, name, dn);
    }
    snprintf(t->type_name, sizeof t->type_name, "%s", dn);
    if (json_array_size(js) > SM_TENSOR_MAX_DIMS) {
        return sm_err_set(err, SM_EFORMAT, "%s: tensor %s: %zu dimensions (at most %d)", p, name,
                          json_array_size(js), SM_TENSOR_MAX_DIMS);
    }
    t->n_dims = (int)json_array_size(js);
    for (int i = 0; i < t->n_dims; i++) {
        json_t *d = json_array_get(js, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 0) {
            return sm_err_set(err, SM_EFORMAT, "%s: tensor %s: bad shape", p, name);
        }
        t->shape[i] = json_integer_value(d);
    }
    json_t *jb = json_array_get(jo, 0), *je = json_array_get(jo, 1);
    if (!json_is_integer(jb) || !json_is_integer(je) || json_integer_value(jb) < 0 ||
        json_integer_value(je) < json_integer_value(jb)) {
        return sm_err_set(err, SM_EFORMAT, "%s: tensor %s: bad data_offsets", p, name);
    }
    uint64_t begin = (uint64_t)json_integer_value(jb), end = (uint64_t)json_integer_value(je);
    if (end > data_size) {
        return sm_err_set(err, SM_EFORMAT,
                          "%s: tensor %s: data_offsets [%llu, %llu] past the end of the data "
                          "(%zu bytes; file truncated?)",
                          p, name, (unsigned long long)begin, (unsigned long long)end, data_size);
    }
    int64_t numel = sm_tensor_numel(t);
    int zero = 0;
    for (int i = 0; i < t->n_dims; i++) {
        zero |= t->shape[i] == 0;
    }
    if ((numel == 0 && !zero) || (uint64_t)numel > SIZE_MAX / esize ||
        (uint64_t)numel * esize != end - begin) {
        return sm_err_set(err, SM_EFORMAT,
                          "%s: tensor %s: %llu bytes of data do not match its shape and dtype %s",
                          p, name, (unsigned long long)(end - begin), dn);
    }
    t->data = base + begin;
    t->nbytes = (size_t)(end - begin);
    return SM_OK;
}

sm_code sm_safetensors_open(const char *path, sm_safetensors **out, sm_err *err)
{
    *out = NULL;
    sm_safetensors *f = calloc(1, sizeof *f);
    if (f == NULL || (f->path = strdup(path)) == NULL) {
        free(f);
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    sm_code rc = sm_file_map(path, &f->map, err);
    json_t *root = NULL;
    const sm_tensor **order = NULL;
    if (rc != SM_OK) {
        goto fail;
    }
    if (f->map.size < 8) {
        rc = sm_err_set(err, SM_EFORMAT, "%s: truncated (%zu bytes, no header)", path, f->map.size);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) {
        hlen = (hlen << 8) | f->map.data[i];
    }
    if (hlen < 2 || hlen > SM_ST_MAX_HEADER || hlen > f->map.size - 8) {
        rc =
            sm_err_set(err, SM_EFORMAT, "%s: header length %llu is invalid for a file of %zu bytes",
                       path, (unsigned long long)hlen, f->map.size);
        goto fail;
    }
    json_error_t jerr;
    root = json_loadb((const char *)f->map.data + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL || !json_is_object(root)) {
        rc = sm_err_set(err, SM_EFORMAT, "%s: header is not a JSON object: %s", path,
                        root == NULL ? jerr.text : "wrong type");
        goto fail;
    }
    const uint8_t *base = f->map.data + 8 + hlen;
    size_t data_size = f->map.size - 8 - (size_t)hlen;
    size_t cap = json_object_size(root);
    f->tensors = calloc(cap ? cap : 1, sizeof *f->tensors);
    if (f->tensors == NULL) {
        rc = sm_err_set(err, SM_ENOMEM, "out of memory");
        goto fail;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (strcmp(key, "__metadata__") == 0) {
            continue;
        }
        sm_tensor *t = &f->tensors[f->n];
        if ((t->name = strdup(key)) == NULL) {
            rc = sm_err_set(err, SM_ENOMEM, "out of memory");
            goto fail;
        }
        f->n++;
        rc = parse_tensor(f, key, val, base, data_size, t, err);
        if (rc != SM_OK) {
            goto fail;
        }
    }
    order = malloc((f->n ? f->n : 1) * sizeof *order);
    if (order == NULL) {
        rc = sm_err_set(err, SM_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < f->n; i++) {
        order[i] = &f->tensors[i];
    }
    rc = sm_tensors_check_overlap(order, f->n, path, err);
    if (rc != SM_OK) {
        goto fail;
    }
    free(order);
    json_decref(root);
    *out = f;
    return SM_OK;
fail:
    free(order);
    json_decref(root);
    sm_safetensors_close(&f);
    return rc;
}

void sm_safetensors_close(sm_safetensors **pf)
{
    sm_safetensors *f = *pf;
    if (f == NULL) {
        return;
    }
    for (size_t i = 0; i < f->n; i++) {
        free(f->tensors[i].name);
    }
    free(f->tensors);
    sm_file_unmap(&f->map);
    free(f->path);
    free(f);
    *pf = NULL;
}

size_t sm_safetensors_count(const sm_safetensors *f)
{
    return f->n;
}

const sm_tensor *sm_safetensors_tensor(const sm_safetensors *f, size_t i)
{
    return i < f->n ? &f->tensors[i] : NULL;
}

const sm_tensor *sm_safetensors_find(const sm_safetensors *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->tensors[i].name, name) == 0) {
            return &f->tensors[i];
        }
    }
    return NULL;
}

const char *sm_safetensors_path(const sm_safetensors *f)
{
    return f->path;
}
