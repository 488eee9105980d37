/*
 * pool.h - the CPU backend's own worker threads.
 *
 * One pool per backend: threads - 1 workers plus the calling thread. bzn_pool_run(p, n, ...)
 * splits [0, n) into near-equal contiguous ranges, one per thread (OpenMP's static schedule),
 * runs fn on each, and returns when all are done. A thread waiting for work, or for the others
 * to finish, first spins briefly (work arrives every few hundred microseconds while a frame
 * runs) and then sleeps on a condition variable, so that a busy neighbour on the same cores
 * gets its share of the time instead of competing with spinning threads (with libgomp's
 * default spin-waiting, one busy process per core made a frame 6x slower).
 */
#ifndef BZN_CPU_POOL_H
#define BZN_CPU_POOL_H

#include "blazeneo.h"

typedef struct bzn_pool bzn_pool;

/* fn(arg, lo, hi, tid): this thread's range [lo, hi) of the n items; tid in [0, threads) */
typedef void (*bzn_pool_fn)(void *arg, int lo, int hi, int tid);

bzn_status bzn_pool_create(int threads, bzn_pool **out, bzn_error *err);
void bzn_pool_destroy(bzn_pool *p);
int bzn_pool_threads(const bzn_pool *p);
/* the CPUs this process may run on (its affinity mask), at least 1 */
int bzn_pool_cpus(void);
/* Run fn over [0, n) on at most max_threads threads (fewer when n is smaller; 0: all).
 * One thread, or n <= 1: fn runs on the caller alone. Not reentrant: fn must not call it. */
void bzn_pool_run(bzn_pool *p, int n, int max_threads, bzn_pool_fn fn, void *arg);
/* Run fn over [0, n) on all threads, in chunks handed out as threads get free: about 8 per
 * thread, each a multiple of `grain` consecutive items (the last one shorter), fn called once
 * per chunk with any tid. A thread the OS deschedules (a busy neighbour on its core) then
 * delays the others by at most a chunk, where a static share would keep the whole frame
 * waiting for its share. For loops whose items are independent of which thread runs them. */
void bzn_pool_run_chunks(bzn_pool *p, int n, int grain, bzn_pool_fn fn, void *arg);

#endif
