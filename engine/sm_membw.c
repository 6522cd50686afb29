/* sm_membw: memory read bandwidth as the best of several read methods (see sm_membw.h). Each
 * load method is one kernel that walks one or more streams side by side, a 64-byte line of each
 * at a time (with software prefetch ahead of each when asked); the chunkings call it on each
 * thread's share of the buffer. The AVX2 and AVX-512 kernels are compiled for their ISA with
 * target attributes and only run after a run-time CPU check. The sums of what was read are
 * kept and checked, so that no compiler can drop the loads. */
#include "sm_membw.h"

#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MEMBW_MAX_TASKS 1024
#define MEMBW_LINE 64
#define MEMBW_STREAMS 8
#define MEMBW_AHEAD 2048              /* bytes ahead of each stream to prefetch */
#define MEMBW_BLOCK ((size_t)1 << 20) /* block of the interleaved chunking */

/* Sums the 64-bit words of streams streams, each len bytes (a multiple of 64), the s-th at
 * base + s * stride, one line of each stream in turn. */
typedef uint64_t (*membw_kernel)(const uint8_t *base, size_t len, size_t stride, int streams,
                                 bool prefetch);

static uint64_t read_plain(const uint8_t *base, size_t len, size_t stride, int streams,
                           bool prefetch)
{
    uint64_t s[8] = {0};
    for (size_t i = 0; i < len; i += MEMBW_LINE)
        for (int st = 0; st < streams; st++) {
            const uint64_t *q = (const uint64_t *)(base + (size_t)st * stride + i);
            if (prefetch)
                __builtin_prefetch((const char *)q + MEMBW_AHEAD, 0, 2);
            for (int l = 0; l < 8; l++)
                s[l] += q[l];
        }
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

#if defined(__x86_64__)
#define MEMBW_X86 1

/* One kernel per (width, non-temporal) pair. */
#define MEMBW_AVX2_KERNEL(name, load)                                               \
    __attribute__((target("avx2"))) static uint64_t name(                           \
        const uint8_t *base, size_t len, size_t stride, int streams, bool prefetch) \
    {                                                                               \
        __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();           \
        for (size_t i = 0; i < len; i += MEMBW_LINE)                                \
            for (int st = 0; st < streams; st++) {                                  \
                const uint8_t *q = base + (size_t)st * stride + i;                  \
                if (prefetch)                                                       \
                    _mm_prefetch((const char *)q + MEMBW_AHEAD, _MM_HINT_T1);       \
                a0 = _mm256_add_epi64(a0, load((__m256i *)(uintptr_t)q));           \
                a1 = _mm256_add_epi64(a1, load((__m256i *)(uintptr_t)(q + 32)));    \
            }                                                                       \
        a0 = _mm256_add_epi64(a0, a1);                                              \
        uint64_t w[4];                                                              \
        _mm256_storeu_si256((__m256i *)w, a0);                                      \
        return w[0] + w[1] + w[2] + w[3];                                           \
    }

#define MEMBW_AVX512_KERNEL(name, load)                                             \
    __attribute__((target("avx512f"))) static uint64_t name(                        \
        const uint8_t *base, size_t len, size_t stride, int streams, bool prefetch) \
    {                                                                               \
        __m512i a0 = _mm512_setzero_si512();                                        \
        for (size_t i = 0; i < len; i += MEMBW_LINE)                                \
            for (int st = 0; st < streams; st++) {                                  \
                const uint8_t *q = base + (size_t)st * stride + i;                  \
                if (prefetch)                                                       \
                    _mm_prefetch((const char *)q + MEMBW_AHEAD, _MM_HINT_T1);       \
                a0 = _mm512_add_epi64(a0, load((void *)(uintptr_t)q));              \
            }                                                                       \
        return (uint64_t)_mm512_reduce_add_epi64(a0);                               \
    }

#define MEMBW_LOAD256(p) _mm256_load_si256(p)
#define MEMBW_LOAD256_NT(p) _mm256_stream_load_si256(p)
#define MEMBW_LOAD512(p) _mm512_load_si512(p)
#define MEMBW_LOAD512_NT(p) _mm512_stream_load_si512(p)
MEMBW_AVX2_KERNEL(read_avx2, MEMBW_LOAD256)
MEMBW_AVX2_KERNEL(read_avx2_nt, MEMBW_LOAD256_NT)
MEMBW_AVX512_KERNEL(read_avx512, MEMBW_LOAD512)
MEMBW_AVX512_KERNEL(read_avx512_nt, MEMBW_LOAD512_NT)
#endif

static const struct {
    const char *name;
    membw_kernel fn;
} membw_loads[SM_MEMBW_LOAD_COUNT] = {
    [SM_MEMBW_PLAIN] = {"plain C", read_plain},
#ifdef MEMBW_X86
    [SM_MEMBW_AVX2] = {"avx2", read_avx2},
    [SM_MEMBW_AVX2_NT] = {"avx2 non-temporal", read_avx2_nt},
    [SM_MEMBW_AVX512] = {"avx512", read_avx512},
    [SM_MEMBW_AVX512_NT] = {"avx512 non-temporal", read_avx512_nt},
#else
    [SM_MEMBW_AVX2] = {"avx2", NULL},
    [SM_MEMBW_AVX2_NT] = {"avx2 non-temporal", NULL},
    [SM_MEMBW_AVX512] = {"avx512", NULL},
    [SM_MEMBW_AVX512_NT] = {"avx512 non-temporal", NULL},
#endif
};

bool sm_membw_load_supported(sm_membw_load load)
{
    if (load < 0 || load >= SM_MEMBW_LOAD_COUNT || !membw_loads[load].fn)
        return false;
#ifdef MEMBW_X86
    __builtin_cpu_init();
    if (load == SM_MEMBW_AVX2 || load == SM_MEMBW_AVX2_NT)
        return __builtin_cpu_supports("avx2");
    if (load == SM_MEMBW_AVX512 || load == SM_MEMBW_AVX512_NT)
        return __builtin_cpu_supports("avx512f");
#endif
    return true;
}

const char *sm_membw_load_name(sm_membw_load load)
{
    return load >= 0 && load < SM_MEMBW_LOAD_COUNT ? membw_loads[load].name : "?";
}

const char *sm_membw_chunking_name(sm_membw_chunking chunking)
{
    static const char *names[SM_MEMBW_CHUNKING_COUNT] = {
        [SM_MEMBW_CONTIGUOUS] = "one stream per thread",
        [SM_MEMBW_STREAMS] = "8 streams per thread with prefetch",
        [SM_MEMBW_BLOCKS] = "1 MiB blocks interleaved over the threads"};
    return chunking >= 0 && chunking < SM_MEMBW_CHUNKING_COUNT ? names[chunking] : "?";
}

void sm_membw_method_str(const sm_membw_method *m, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s loads, %s, %d thread%s", sm_membw_load_name(m->load),
             sm_membw_chunking_name(m->chunking), m->threads, m->threads == 1 ? "" : "s");
}

/* ---- one pass ---- */

typedef struct membw_job {
    const uint8_t *buf;
    size_t bytes;
    membw_kernel fn;
    sm_membw_chunking chunking;
    int readers; /* tasks that read in this pass; the others return at once */
    uint64_t sums[MEMBW_MAX_TASKS];
    size_t read[MEMBW_MAX_TASKS]; /* bytes each task read */
} membw_job;

static void membw_task(void *arg, int task, int n_tasks)
{
    (void)n_tasks;
    membw_job *j = arg;
    if (task >= j->readers)
        return;
    size_t n = (size_t)j->readers, t = (size_t)task;
    uint64_t sum = 0;
    size_t read = 0;
    if (j->chunking == SM_MEMBW_CONTIGUOUS) {
        size_t per = j->bytes / n / MEMBW_LINE * MEMBW_LINE;
        sum = j->fn(j->buf + per * t, per, 0, 1, false);
        read = per;
    } else if (j->chunking == SM_MEMBW_STREAMS) {
        size_t per = j->bytes / n / MEMBW_STREAMS / MEMBW_LINE * MEMBW_LINE;
        sum = j->fn(j->buf + per * MEMBW_STREAMS * t, per, per, MEMBW_STREAMS, true);
        read = per * MEMBW_STREAMS;
    } else {
        for (size_t blk = t; (blk + 1) * MEMBW_BLOCK <= j->bytes; blk += n) {
            sum += j->fn(j->buf + blk * MEMBW_BLOCK, MEMBW_BLOCK, 0, 1, false);
            read += MEMBW_BLOCK;
        }
    }
    j->sums[task] = sum;
    j->read[task] = read;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct sm_membw_buf {
    uint8_t *data;
    size_t bytes;
    membw_job job;
};

/* One timed pass of method m; *gbs its rate. SM_EINTERNAL if the sums show a lost read. */
static sm_code membw_pass(sm_pool *pool, sm_membw_buf *b, const sm_membw_method *m, double *gbs,
                          sm_err *err)
{
    membw_job *j = &b->job;
    int threads = pool ? sm_pool_threads(pool) : 1;
    threads = threads > MEMBW_MAX_TASKS ? MEMBW_MAX_TASKS : threads;
    j->buf = b->data;
    j->bytes = b->bytes;
    j->fn = membw_loads[m->load].fn;
    j->chunking = m->chunking;
    j->readers = m->threads;
    double t0 = now_s();
    if (pool && m->threads > 1)
        sm_pool_run(pool, membw_task, j, threads);
    else
        membw_task(j, 0, 1);
    double dt = now_s() - t0;
    size_t read = 0;
    for (int t = 0; t < m->threads; t++) {
        /* the buffer holds 0x0101... words: a part that was read cannot sum to zero */
        if (j->read[t] > 0 && j->sums[t] == 0)
            return sm_err_set(err, SM_EINTERNAL, "membw: read check failed");
        read += j->read[t];
    }
    *gbs = dt > 0 ? (double)read / dt / 1e9 : 0;
    return SM_OK;
}

/* ---- the buffer ---- */

static size_t default_bytes(void)
{
    size_t bytes = (size_t)1 << 30;
#ifdef _SC_LEVEL3_CACHE_SIZE
    long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (llc > 0 && (size_t)llc * 8 > bytes)
        bytes = (size_t)llc * 8;
    if (bytes > ((size_t)4 << 30))
        bytes = (size_t)4 << 30;
#endif
    return bytes;
}

sm_code sm_membw_buf_new(size_t bytes, sm_membw_buf **out, sm_err *err)
{
    if (!out)
        return sm_err_set(err, SM_EINVAL, "membw: null result pointer");
    if (bytes == 0)
        bytes = default_bytes();
    if (bytes < ((size_t)64 << 20))
        bytes = (size_t)64 << 20;
    bytes &= ~(size_t)4095;
    sm_membw_buf *b = calloc(1, sizeof *b);
    uint8_t *data = b ? aligned_alloc(4096, bytes) : NULL;
    if (!data) {
        free(b);
        return sm_err_set(err, SM_ENOMEM, "membw: cannot allocate %zu bytes", bytes);
    }
    memset(data, 1, bytes);
    b->data = data;
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
        free((*b)->data);
        free(*b);
        *b = NULL;
    }
}

/* ---- measurements ---- */

sm_code sm_membw_read_method(sm_pool *pool, sm_membw_buf *b, const sm_membw_method *method,
                             int repeats, double *gbs, sm_err *err)
{
    if (!b || !method || !gbs)
        return sm_err_set(err, SM_EINVAL, "membw: null argument");
    int threads = pool ? sm_pool_threads(pool) : 1;
    if (method->threads < 1 || method->threads > threads || method->threads > MEMBW_MAX_TASKS ||
        method->chunking < 0 || method->chunking >= SM_MEMBW_CHUNKING_COUNT)
        return sm_err_set(err, SM_EINVAL, "membw: bad method (threads %d of %d)", method->threads,
                          threads);
    if (!sm_membw_load_supported(method->load))
        return sm_err_set(err, SM_EUNSUPPORTED, "membw: this CPU has no %s loads",
                          sm_membw_load_name(method->load));
    *gbs = 0;
    for (int r = 0; r < (repeats < 1 ? 1 : repeats); r++) {
        double g;
        sm_code rc = membw_pass(pool, b, method, &g, err);
        if (rc != SM_OK)
            return rc;
        *gbs = g > *gbs ? g : *gbs;
    }
    return SM_OK;
}

sm_code sm_membw_read(sm_pool *pool, sm_membw_buf *b, int repeats, sm_membw_result *best,
                      sm_err *err)
{
    if (!b || !best)
        return sm_err_set(err, SM_EINVAL, "membw: null argument");
    int threads = pool ? sm_pool_threads(pool) : 1;
    threads = threads > MEMBW_MAX_TASKS ? MEMBW_MAX_TASKS : threads;
    memset(best, 0, sizeof *best);
    for (int r = 0; r < (repeats < 1 ? 1 : repeats); r++)
        for (int t = 1; t <= threads; t++)
            for (int l = 0; l < SM_MEMBW_LOAD_COUNT; l++)
                for (int c = 0; c < SM_MEMBW_CHUNKING_COUNT; c++) {
                    sm_membw_method m = {(sm_membw_load)l, (sm_membw_chunking)c, t};
                    if (!sm_membw_load_supported(m.load) || (c == SM_MEMBW_BLOCKS && t == 1))
                        continue;
                    double g;
                    sm_code rc = membw_pass(pool, b, &m, &g, err);
                    if (rc != SM_OK)
                        return rc;
                    if (g > best->gbs)
                        *best = (sm_membw_result){g, m};
                }
    return SM_OK;
}

sm_code sm_membw_measure(sm_pool *pool, size_t bytes, int repeats, sm_membw_result *best,
                         sm_err *err)
{
    if (!best)
        return sm_err_set(err, SM_EINVAL, "membw: null result pointer");
    sm_membw_buf *b = NULL;
    sm_code rc = sm_membw_buf_new(bytes, &b, err);
    if (rc == SM_OK)
        rc = sm_membw_read(pool, b, repeats, best, err);
    sm_membw_buf_free(&b);
    return rc;
}
