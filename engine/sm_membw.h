/* sm_membw: measures the machine's memory read bandwidth, to compare decode speed with the
 * bandwidth limit. A single read loop can understate what the memory gives (one stream per
 * core is bound by the latency of its misses; a compiler's loop may not use the widest loads),
 * so the limit is the best of several read methods: load width (plain C, AVX2, AVX-512, each
 * also with non-temporal loads), how the buffer is cut between threads (one stream per
 * thread, eight streams per thread with software prefetch, or interleaved blocks) and thread
 * counts 1..the pool's, over a buffer much larger than the last-level cache. */
#ifndef SM_MEMBW_H
#define SM_MEMBW_H

#include <stdbool.h>
#include <stddef.h>

#include "sm_error.h"
#include "sm_pool.h"

typedef enum sm_membw_load {
    SM_MEMBW_PLAIN,     /* a C loop of 64-bit adds (vectorised by the compiler, baseline ISA) */
    SM_MEMBW_AVX2,      /* 256-bit loads */
    SM_MEMBW_AVX2_NT,   /* 256-bit non-temporal loads (vmovntdqa) */
    SM_MEMBW_AVX512,    /* 512-bit loads */
    SM_MEMBW_AVX512_NT, /* 512-bit non-temporal loads */
    SM_MEMBW_LOAD_COUNT
} sm_membw_load;

typedef enum sm_membw_chunking {
    SM_MEMBW_CONTIGUOUS, /* each thread one contiguous part, read front to back */
    SM_MEMBW_STREAMS,    /* each thread's part read as 8 streams side by side, with prefetch */
    SM_MEMBW_BLOCKS,     /* 1 MiB blocks dealt to the threads in turn (2 or more threads) */
    SM_MEMBW_CHUNKING_COUNT
} sm_membw_chunking;

typedef struct sm_membw_method {
    sm_membw_load load;
    sm_membw_chunking chunking;
    int threads;
} sm_membw_method;

typedef struct sm_membw_result {
    double gbs;             /* GB/s (10^9 bytes/s) */
    sm_membw_method method; /* the method that gave it */
} sm_membw_result;

/* Whether this CPU can run the load method. */
bool sm_membw_load_supported(sm_membw_load load);
const char *sm_membw_load_name(sm_membw_load load);
const char *sm_membw_chunking_name(sm_membw_chunking chunking);
/* "avx2 loads, 8 streams per thread with prefetch, 2 threads" */
void sm_membw_method_str(const sm_membw_method *m, char *buf, size_t cap);

/* A buffer to read, kept between measurements (to measure again and again, between other
 * work, without allocating and touching a new one each time). bytes is rounded down to 4 KiB;
 * 0 asks for the default: 1 GiB, or 8 times the last-level cache where that is larger (up to
 * 4 GiB); at least 64 MiB. The buffer is written once, so that its pages are really mapped. */
typedef struct sm_membw_buf sm_membw_buf;
sm_code sm_membw_buf_new(size_t bytes, sm_membw_buf **out, sm_err *err);
size_t sm_membw_buf_bytes(const sm_membw_buf *b);
void sm_membw_buf_free(sm_membw_buf **b);

/* Reads the buffer with one method repeats times (method->threads <= the pool's threads; a
 * NULL pool: 1) and stores the best rate. SM_EUNSUPPORTED for a load this CPU lacks. */
sm_code sm_membw_read_method(sm_pool *pool, sm_membw_buf *b, const sm_membw_method *method,
                             int repeats, double *gbs, sm_err *err);

/* The best of every supported method and thread count 1..the pool's (NULL: 1), each tried
 * repeats times (the rounds take turns over the methods, so that a slow spell of a shared
 * machine does not favour one). */
sm_code sm_membw_read(sm_pool *pool, sm_membw_buf *b, int repeats, sm_membw_result *best,
                      sm_err *err);

/* The same over a new buffer of bytes (see sm_membw_buf_new). */
sm_code sm_membw_measure(sm_pool *pool, size_t bytes, int repeats, sm_membw_result *best,
                         sm_err *err);

#endif
