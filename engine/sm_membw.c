/* sm_membw: memory read bandwidth (see sm_membw.h). Each thread sums its own contiguous part of
 * the buffer with 64-bit integer adds (vectorised by the compiler), as several streams with
 * software prefetch (see MEMBW_STREAMS); passes run with 1, 2, ...
 * up to all threads (one thread can already saturate the memory of a small machine, and other
 * processes may be using some cores), and the best pass is kept. The buffer is written once
 * when it is made, so that its pages are really mapped. */
#include "sm_membw.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct membw_job {
    const uint64_t *buf;
    size_t words;
    int readers; /* tasks that read in this pass; the others return at once */
    uint64_t sums[1024];
} membw_job;

/* Streams each reader walks side by side, and how far ahead of each it asks for lines: one
 * sequential stream per core is bound by the latency of its misses on a large server core
 * (measured on a 2-core Xeon guest: 7-10 GB/s for one stream, 11-14 GB/s for 8 streams with
 * the prefetch, per core), and the engine's products read several weight rows at once with
 * software prefetch, so a plain loop would understate what they get. */
#define MEMBW_STREAMS 8
#define MEMBW_AHEAD 2048

static void membw_task(void *arg, int task, int n_tasks)
{
    (void)n_tasks;
    membw_job *j = arg;
    if (task >= j->readers)
        return;
    size_t per = j->words / (size_t)j->readers / MEMBW_STREAMS / 8 * 8;
    const uint64_t *p = j->buf + per * MEMBW_STREAMS * (size_t)task;
    uint64_t s[8] = {0};
    for (size_t i = 0; i < per; i += 8)
        for (int st = 0; st < MEMBW_STREAMS; st++) {
            const uint64_t *q = p + per * (size_t)st + i;
            __builtin_prefetch((const char *)q + MEMBW_AHEAD, 0, 2);
            for (int l = 0; l < 8; l++)
                s[l] += q[l];
        }
    j->sums[task % 1024] = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct sm_membw_buf {
    uint64_t *words;
    size_t bytes;
    membw_job job;
};

sm_code sm_membw_buf_new(size_t bytes, sm_membw_buf **out, sm_err *err)
{
    if (!out)
        return sm_err_set(err, SM_EINVAL, "membw: null result pointer");
    if (bytes < ((size_t)64 << 20))
        bytes = (size_t)64 << 20;
    bytes &= ~(size_t)4095;
    sm_membw_buf *b = calloc(1, sizeof *b);
    uint64_t *words = b ? aligned_alloc(4096, bytes) : NULL;
    if (!words) {
        free(b);
        return sm_err_set(err, SM_ENOMEM, "membw: cannot allocate %zu bytes", bytes);
    }
    memset(words, 1, bytes);
    b->words = words;
    b->bytes = bytes;
    *out = b;
    return SM_OK;
}

size_t sm_membw_buf_bytes(const sm_membw_buf *b)
{
    return b ? b->bytes : 0;
}

void sm_membw_buf_free(sm_membw_buf **b)
{
    if (b && *b) {
        free((*b)->words);
        free(*b);
        *b = NULL;
    }
}

sm_code sm_membw_read(sm_pool *pool, sm_membw_buf *b, int repeats, double *gbs, sm_err *err)
{
    if (!gbs || !b)
        return sm_err_set(err, SM_EINVAL, "membw: null argument");
    if (repeats < 1)
        repeats = 1;
    membw_job *j = &b->job;
    j->buf = b->words;
    j->words = b->bytes / 8;
    int threads = sm_pool_threads(pool);
    if (threads > 1024)
        threads = 1024;
    double best = 0;
    uint64_t check = 0;
    for (int readers = 1; readers <= threads; readers++) {
        j->readers = readers;
        size_t read = j->words / (size_t)readers / MEMBW_STREAMS / 8 * 8 * MEMBW_STREAMS *
                      (size_t)readers * 8;
        for (int r = 0; r < repeats; r++) {
            double t0 = now_s();
            if (pool && readers > 1)
                sm_pool_run(pool, membw_task, j, threads);
            else
                membw_task(j, 0, 1);
            double dt = now_s() - t0;
            if (dt > 0 && (double)read / dt > best)
                best = (double)read / dt;
        }
        check += j->sums[0];
    }
    if (check == 0) /* the buffer holds 0x0101... words: the sums cannot be zero */
        return sm_err_set(err, SM_EINTERNAL, "membw: read check failed");
    *gbs = best / 1e9;
    return SM_OK;
}

sm_code sm_membw_measure(sm_pool *pool, size_t bytes, int repeats, double *gbs, sm_err *err)
{
    if (!gbs)
        return sm_err_set(err, SM_EINVAL, "membw: null result pointer");
    sm_membw_buf *b = NULL;
    sm_code rc = sm_membw_buf_new(bytes, &b, err);
    if (rc == SM_OK)
        rc = sm_membw_read(pool, b, repeats, gbs, err);
    sm_membw_buf_free(&b);
    return rc;
}
