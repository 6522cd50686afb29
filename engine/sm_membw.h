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

#endif
