/* sm_cuda_plugin: finds and loads libstepmark-cuda.so with dlopen and checks its table (see
 * sm_cuda_plugin.h). Needs no CUDA to build. */
#include "sm_cuda_plugin.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TRIED_MAX 1536

/* The places tried so far and why each failed, for the error message. */
typedef struct tried {
    char text[TRIED_MAX];
    size_t len;
} tried;

static void tried_add(tried *t, const char *file, const char *why)
{
    if (t->len >= sizeof t->text - 1)
        return;
    int n = snprintf(t->text + t->len, sizeof t->text - t->len, "%s%s (%s)", t->len ? "; " : "",
                     file, why);
    if (n > 0)
        t->len += (size_t)n < sizeof t->text - t->len ? (size_t)n : sizeof t->text - t->len - 1;
}

/* Opens file and takes its table: SM_ENOTFOUND when dlopen fails (the reason added to t), else
 * SM_EFORMAT or SM_EUNSUPPORTED for a wrong module. */
static sm_code try_file(const char *file, tried *t, const sm_cuda_api **out, sm_err *err)
{
    void *h = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        tried_add(t, file, why ? why : "cannot be loaded");
        return SM_ENOTFOUND;
    }
    sm_cuda_plugin_fn fn = NULL;
    void *sym = dlsym(h, SM_CUDA_PLUGIN_SYMBOL);
    memcpy(&fn, &sym, sizeof fn < sizeof sym ? sizeof fn : sizeof sym);
    if (!fn) {
        dlclose(h);
        return sm_err_set(err, SM_EFORMAT,
                          "cuda plugin %s: not a stepmark CUDA plugin (no %s function)", file,
                          SM_CUDA_PLUGIN_SYMBOL);
    }
    const sm_cuda_api *api = fn();
    if (!api || api->abi != SM_CUDA_ABI || api->size != sizeof(sm_cuda_api)) {
        int abi = api ? api->abi : 0;
        dlclose(h);
        return sm_err_set(err, SM_EUNSUPPORTED,
                          "cuda plugin %s: ABI %d, this program needs ABI %d (install the plugin "
                          "of the same stepmark version)",
                          file, abi, SM_CUDA_ABI);
    }
    *out = api; /* the module stays loaded: the CUDA runtime does not support unloading */
    return SM_OK;
}

/* dir(/proc/self/exe)/../lib/stepmark/FILE into buf; false when the link cannot be read. */
static bool beside_exe(char *buf, size_t size)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return false;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return false;
    *slash = '\0';
    int w = snprintf(buf, size, "%s/../lib/stepmark/%s", exe, SM_CUDA_PLUGIN_FILE);
    return w > 0 && (size_t)w < size;
}

sm_code sm_cuda_plugin_load(const char *path, const sm_cuda_api **out, sm_err *err)
{
    *out = NULL;
    tried t = {{0}, 0};
    const char *env = getenv(SM_CUDA_PLUGIN_ENV);
    const char *only = path && path[0] ? path : env && env[0] ? env : NULL;
    sm_code rc = SM_ENOTFOUND;
    if (only) {
        rc = try_file(only, &t, out, err);
    } else {
        char cand[PATH_MAX];
        if (beside_exe(cand, sizeof cand))
            rc = try_file(cand, &t, out, err);
#ifdef SM_CUDA_PLUGIN_BUILD_PATH
        if (rc == SM_ENOTFOUND)
            rc = try_file(SM_CUDA_PLUGIN_BUILD_PATH, &t, out, err);
#endif
    }
    if (rc != SM_ENOTFOUND)
        return rc;
    return sm_err_set(err, SM_ENOTFOUND,
                      "the CUDA plugin %s was not found (looked in: %s); install the "
                      "stepmark CUDA plugin, or give its path in %s",
                      SM_CUDA_PLUGIN_FILE, t.len ? t.text : "nowhere", SM_CUDA_PLUGIN_ENV);
}

sm_code sm_cuda_plugin_open(const char *path, const sm_cuda_api **out, sm_err *err)
{
    const sm_cuda_api *api = NULL;
    sm_code rc = sm_cuda_plugin_load(path, &api, err);
    if (rc)
        return rc;
    char why[256] = "";
    if (!api->available(why, sizeof why))
        return sm_err_set(err, SM_EUNSUPPORTED, "cuda: %s", why[0] ? why : "no CUDA device");
    *out = api;
    return SM_OK;
}
