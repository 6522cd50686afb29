/* sm_modelid: model name and file hash (see sm_modelid.h). */
#include "sm_modelid.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

static sm_code hash_file(sm_sha256_ctx *h, const char *dir, const char *file, sm_err *err)
{
    char path[4096];
    if (dir)
        snprintf(path, sizeof path, "%s/%s", dir, file);
    else
        snprintf(path, sizeof path, "%s", file);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return sm_err_set(err, errno == ENOENT ? SM_ENOTFOUND : SM_EIO, "%s: %s", path,
                          strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0) {
        fclose(fp);
        return sm_err_set(err, SM_EIO, "%s: %s", path, strerror(errno));
    }
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    sm_sha256_update(h, base, strlen(base) + 1);
    uint8_t sz[8];
    for (int i = 0; i < 8; i++)
        sz[i] = (uint8_t)((uint64_t)st.st_size >> (8 * i));
    sm_sha256_update(h, sz, 8);
    size_t cap = 1 << 20;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        fclose(fp);
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    size_t n;
    while ((n = fread(buf, 1, cap, fp)) > 0)
        sm_sha256_update(h, buf, n);
    bool bad = ferror(fp);
    free(buf);
    fclose(fp);
    return bad ? sm_err_set(err, SM_EIO, "%s: read error", path) : SM_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The shards named by the index, sorted and without repeats. */
static sm_code shards(sm_sha256_ctx *h, const char *dir, sm_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    json_error_t je;
    json_t *idx = json_load_file(path, 0, &je);
    json_t *map = json_object_get(idx, "weight_map");
    if (!json_is_object(map)) {
        json_decref(idx);
        return sm_err_set(err, SM_EFORMAT, "%s: no weight_map", path);
    }
    size_t n = json_object_size(map), k = 0;
    const char **names = calloc(n ? n : 1, sizeof *names);
    if (!names) {
        json_decref(idx);
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    const char *key;
    json_t *v;
    json_object_foreach(map, key, v)
    {
        if (json_is_string(v))
            names[k++] = json_string_value(v);
    }
    qsort(names, k, sizeof *names, cmp_str);
    sm_code rc = hash_file(h, dir, "model.safetensors.index.json", err);
    for (size_t i = 0; !rc && i < k; i++)
        if (i == 0 || strcmp(names[i], names[i - 1]))
            rc = strchr(names[i], '/') ? sm_err_set(err, SM_EFORMAT, "shard name with '/'")
                                       : hash_file(h, dir, names[i], err);
    free(names);
    json_decref(idx);
    return rc;
}

sm_code sm_modelid_compute(const char *path, char *name, size_t name_size, char hash[SM_SHA256_HEX],
                           sm_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return sm_err_set(err, SM_ENOTFOUND, "%s: %s", path, strerror(errno));
    size_t l = strlen(path);
    while (l > 1 && path[l - 1] == '/')
        l--;
    size_t b = l;
    while (b > 0 && path[b - 1] != '/')
        b--;
    snprintf(name, name_size, "%.*s", (int)(l - b), path + b);
    sm_sha256_ctx h;
    sm_sha256_init(&h);
    sm_code rc;
    if (!S_ISDIR(st.st_mode)) {
        rc = hash_file(&h, NULL, path, err);
    } else {
        char p[4096];
        snprintf(p, sizeof p, "%s/config.json", path);
        if (access(p, R_OK) == 0) {
            rc = hash_file(&h, path, "config.json", err);
            snprintf(p, sizeof p, "%s/model.safetensors", path);
            if (!rc)
                rc = access(p, R_OK) == 0 ? hash_file(&h, path, "model.safetensors", err)
                                          : shards(&h, path, err);
        } else { /* a folder holding one GGUF file */
            DIR *d = opendir(path);
            char found[1024] = "";
            struct dirent *e;
            while (d && (e = readdir(d)))
                if (strlen(e->d_name) > 5 && !strcmp(e->d_name + strlen(e->d_name) - 5, ".gguf"))
                    snprintf(found, sizeof found, "%s", e->d_name);
            if (d)
                closedir(d);
            rc = found[0] ? hash_file(&h, path, found, err)
                          : sm_err_set(err, SM_ENOTFOUND, "%s: no config.json or .gguf", path);
        }
    }
    uint8_t d[SM_SHA256_LEN];
    if (rc) {
        sm_sha256_discard(&h);
        return rc;
    }
    if (!sm_sha256_final(&h, d))
        return sm_err_set(err, SM_ENOMEM, "hashing the model failed (out of memory)");
    for (int i = 0; i < SM_SHA256_LEN; i++)
        snprintf(hash + 2 * i, 3, "%02x", d[i]);
    return SM_OK;
}
