/* sm_membw: measures the machine's memory read bandwidth (streaming reads over a buffer much
 * larger than the caches, split over the threads of a pool), to compare decode speed with the
 * bandwidth limit. */
#ifndef SM_MEMBW_H
#define SM_MEMBW_H

#include <stddef.h>

#include "sm_error.h"
#include "sm_pool.h"

/* Reads a buffer of bytes (rounded down to 4 KiB; at least 64 MiB) repeats times with 1, 2, ...
 * up to every thread of pool (NULL: one thread) and stores the best rate in GB/s (10^9
 * bytes/s). */
sm_code sm_membw_measure(sm_pool *pool, size_t bytes, int repeats, double *gbs, sm_err *err);

/* The same with a buffer kept between measurements (to measure again and again, between
 * other work, without allocating and touching a new one each time). */
typedef struct sm_membw_buf sm_membw_buf;
sm_code sm_membw_buf_new(size_t bytes, sm_membw_buf **out, sm_err *err);
size_t sm_membw_buf_bytes(const sm_membw_buf *b);
sm_code sm_membw_read(sm_pool *pool, sm_membw_buf *b, int repeats, double *gbs, sm_err *err);
void sm_membw_buf_free(sm_membw_buf **b);

#endif
