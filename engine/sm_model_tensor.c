/* sm_model_tensor: read-only file mapping and tensor record helpers shared by the safetensors
 * and GGUF readers. */
#include "sm_model_tensor.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

sm_code sm_file_map(const char *path, sm_mapped_file *out, sm_err *err)
{
    out->data = NULL;
    out->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return sm_err_set(err, errno == ENOENT ? SM_ENOTFOUND : SM_EIO, "%s: %s", path,
                          strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return sm_err_set(err, SM_EIO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return sm_err_set(err, SM_EIO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return SM_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) {
        return sm_err_set(err, SM_EIO, "%s: mmap: %s", path, strerror(e));
    }
    /* weights are streamed once per step: 2 MiB pages, where the file system gives them,
     * spare the TLB misses of 4 KiB pages (advice only; failure changes nothing) */
    (void)madvise(p, (size_t)st.st_size, MADV_HUGEPAGE);
    out->data = p;
    out->size = (size_t)st.st_size;
    return SM_OK;
}

void sm_file_unmap(sm_mapped_file *f)
{
    if (f->data != NULL) {
        munmap((void *)f->data, f->size);
    }
    f->data = NULL;
    f->size = 0;
}

int64_t sm_tensor_numel(const sm_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++) {
        if (t->shape[i] < 0) {
            return 0;
        }
        if (t->shape[i] != 0 && n > INT64_MAX / t->shape[i]) {
            return 0;
        }
        n *= t->shape[i];
    }
    return n;
}

void sm_tensor_shape_str(const sm_tensor *t, char *buf, size_t cap)
{
    size_t off = 0;
    int w = snprintf(buf, cap, "[");
    off = w > 0 ? (size_t)w : 0;
    for (int i = 0; i < t->n_dims && off < cap; i++) {
        w = snprintf(buf + off, cap - off, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        off += w > 0 ? (size_t)w : 0;
    }
    if (off < cap) {
        snprintf(buf + off, cap - off, "]");
    }
}

static int cmp_by_data(const void *a, const void *b)
{
    const sm_tensor *x = *(const sm_tensor *const *)a;
    const sm_tensor *y = *(const sm_tensor *const *)b;
    uintptr_t px = (uintptr_t)x->data, py = (uintptr_t)y->data;
    return px < py ? -1 : px > py ? 1 : 0;
}

sm_code sm_tensors_check_overlap(const sm_tensor **ts, size_t n, const char *file, sm_err *err)
{
    if (n < 2) {
        return SM_OK;
    }
    qsort(ts, n, sizeof *ts, cmp_by_data);
    const sm_tensor *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        if (ts[i]->nbytes == 0) {
            continue;
        }
        if (prev != NULL && (uintptr_t)ts[i]->data < (uintptr_t)prev->data + prev->nbytes) {
            return sm_err_set(err, SM_EFORMAT, "%s: tensors %s and %s overlap", file, prev->name,
                              ts[i]->name);
        }
        prev = ts[i];
    }
    return SM_OK;
}
