/* sm_pool: a fixed thread pool for the engine's kernels. sm_pool_run splits n_tasks tasks over
 * the pool's threads (the caller's thread works too) and returns when all are done. Task i
 * always computes the same piece of work, so results never depend on scheduling. */
#ifndef SM_POOL_H
#define SM_POOL_H

#include "sm_error.h"

typedef struct sm_pool sm_pool;
typedef void (*sm_pool_fn)(void *arg, int task, int n_tasks);

/* threads <= 0 means one per online CPU. */
sm_code sm_pool_new(int threads, sm_pool **out, sm_err *err);
void sm_pool_free(sm_pool **pool);
int sm_pool_threads(const sm_pool *pool);
void sm_pool_run(sm_pool *pool, sm_pool_fn fn, void *arg, int n_tasks);

#endif
