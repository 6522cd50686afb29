/* sm_pool: persistent worker threads for the kernels (see sm_pool.h).
 *
 * A job is published as one 64-bit word: generation (32 bits) | task count (16) | next task
 * (16). Threads claim tasks with a compare-and-swap on that word, so a thread that wakes late
 * can never take a task of a finished job: its swap fails because the generation moved on. The
 * caller works on the tasks too, then waits until the count of finished tasks reaches the task
 * count. Idle workers spin a short while (the forward pass calls the pool many times in quick
 * succession) and then sleep on a condition variable. Jobs of more than 65535 tasks run in
 * several rounds. A call made while the pool is busy (from a task, or from a second thread)
 * runs its tasks inline on the calling thread. */
#include "sm_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define POOL_MAX_TASKS 0xffff
#define POOL_SPIN_NS 300000 /* how long an idle worker spins before it sleeps */

struct sm_pool {
    int threads; /* including the caller */
    pthread_t *tids;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic uint64_t word; /* gen << 32 | n_tasks << 16 | next */
    _Atomic int done;      /* tasks finished in the current job */
    _Atomic int sleepers;  /* workers waiting on cv */
    _Atomic int busy;      /* a job is being run */
    _Atomic int stop;
    _Atomic(sm_pool_fn) fn;
    _Atomic(void *) arg;
    _Atomic int total; /* the n_tasks the caller asked for (task indices go up to it) */
    _Atomic int base;  /* first task index of the current round */
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint32_t word_gen(uint64_t w)
{
    return (uint32_t)(w >> 32);
}

/* Claims and runs tasks of generation gen until none is left. */
static void work(sm_pool *p, uint32_t gen)
{
    uint64_t w = atomic_load(&p->word);
    for (;;) {
        if (word_gen(w) != gen)
            return;
        uint32_t n = (uint32_t)(w >> 16) & 0xffff, next = (uint32_t)w & 0xffff;
        if (next >= n)
            return;
        /* read the job before claiming: the claim succeeds only if it is still this job */
        sm_pool_fn fn = atomic_load_explicit(&p->fn, memory_order_relaxed);
        void *arg = atomic_load_explicit(&p->arg, memory_order_relaxed);
        int base = atomic_load_explicit(&p->base, memory_order_relaxed);
        int total = atomic_load_explicit(&p->total, memory_order_relaxed);
        if (atomic_compare_exchange_weak(&p->word, &w, w + 1)) {
            fn(arg, base + (int)next, total);
            atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
            w = atomic_load(&p->word);
        }
    }
}

static void *worker_main(void *vp)
{
    sm_pool *p = vp;
    uint32_t seen = word_gen(atomic_load(&p->word));
    for (;;) {
        uint64_t w = atomic_load(&p->word);
        if (word_gen(w) == seen && !atomic_load(&p->stop)) {
            uint64_t t0 = now_ns();
            for (unsigned i = 1;; i++) {
                cpu_relax();
                w = atomic_load(&p->word);
                if (word_gen(w) != seen || atomic_load(&p->stop))
                    break;
                if ((i & 255) == 0 && now_ns() - t0 > POOL_SPIN_NS) {
                    pthread_mutex_lock(&p->mu);
                    atomic_fetch_add(&p->sleepers, 1);
                    while (word_gen(atomic_load(&p->word)) == seen && !atomic_load(&p->stop))
                        pthread_cond_wait(&p->cv, &p->mu);
                    atomic_fetch_sub(&p->sleepers, 1);
                    pthread_mutex_unlock(&p->mu);
                    w = atomic_load(&p->word);
                    break;
                }
            }
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = word_gen(w);
        work(p, seen);
    }
}

sm_code sm_pool_new(int threads, sm_pool **out, sm_err *err)
{
    if (!out)
        return sm_err_set(err, SM_EINVAL, "pool: null out pointer");
    *out = NULL;
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    if (threads > 1024)
        return sm_err_set(err, SM_EINVAL, "pool: %d threads is too many", threads);
    sm_pool *p = calloc(1, sizeof *p);
    if (!p)
        return sm_err_set(err, SM_ENOMEM, "pool: out of memory");
    p->threads = threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (threads > 1) {
        p->tids = calloc((size_t)threads - 1, sizeof *p->tids);
        if (!p->tids) {
            sm_pool_free(&p);
            return sm_err_set(err, SM_ENOMEM, "pool: out of memory");
        }
        for (int i = 0; i < threads - 1; i++) {
            if (pthread_create(&p->tids[i], NULL, worker_main, p) != 0) {
                sm_pool_free(&p);
                return sm_err_set(err, SM_EINTERNAL, "pool: cannot start thread %d", i + 1);
            }
            p->started++;
        }
    }
    *out = p;
    return SM_OK;
}

void sm_pool_free(sm_pool **pool)
{
    if (!pool || !*pool)
        return;
    sm_pool *p = *pool;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++)
        pthread_join(p->tids[i], NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->tids);
    free(p);
    *pool = NULL;
}

int sm_pool_threads(const sm_pool *pool)
{
    return pool ? pool->threads : 1;
}

static void run_inline(sm_pool_fn fn, void *arg, int n_tasks)
{
    for (int t = 0; t < n_tasks; t++)
        fn(arg, t, n_tasks);
}

void sm_pool_run(sm_pool *pool, sm_pool_fn fn, void *arg, int n_tasks)
{
    if (n_tasks <= 0 || !fn)
        return;
    int expect = 0;
    if (!pool || pool->threads <= 1 || n_tasks == 1 ||
        !atomic_compare_exchange_strong(&pool->busy, &expect, 1)) {
        run_inline(fn, arg, n_tasks);
        return;
    }
    sm_pool *p = pool;
    atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&p->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&p->total, n_tasks, memory_order_relaxed);
    for (int base = 0; base < n_tasks; base += POOL_MAX_TASKS) {
        int n = n_tasks - base < POOL_MAX_TASKS ? n_tasks - base : POOL_MAX_TASKS;
        atomic_store_explicit(&p->base, base, memory_order_relaxed);
        atomic_store_explicit(&p->done, 0, memory_order_relaxed);
        uint32_t gen = word_gen(atomic_load(&p->word)) + 1;
        /* seq_cst: pairs with the sleepers count a worker raises before it waits */
        atomic_store(&p->word, (uint64_t)gen << 32 | (uint64_t)n << 16);
        if (atomic_load(&p->sleepers) > 0) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_broadcast(&p->cv);
            pthread_mutex_unlock(&p->mu);
        }
        work(p, gen);
        for (unsigned i = 1; atomic_load_explicit(&p->done, memory_order_acquire) < n; i++) {
            cpu_relax();
            if ((i & 1023) == 0)
                sched_yield();
        }
    }
    atomic_store(&p->busy, 0);
}
