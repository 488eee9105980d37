/* pool.c - the CPU backend's worker threads (see pool.h).
 *
 * Waiting: a waiter spins on an atomic generation counter for a while, then registers as a
 * sleeper and waits on the pool's condition variable under its mutex. A publisher bumps the
 * counter (sequentially consistent) and broadcasts only when someone sleeps; since the waiter
 * re-checks the counter under the mutex after registering, and the publisher reads the
 * sleeper count after bumping, either the waiter sees the new value or the publisher sees
 * the sleeper, never neither (no lost wake-up). */
#define _GNU_SOURCE /* sched_getaffinity */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "error.h"
#include "parallel.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* spins before sleeping: about 30-100 microseconds of pause instructions */
enum { SPINS = 2000 };

typedef struct {
    bzn_pool *pool;
    int tid;
} worker_arg;

struct bzn_pool {
    int threads; /* the caller and the workers */
    pthread_t *workers;
    worker_arg *args;
    int started; /* workers created */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint sleepers;
    /* the job: written by the caller before job_gen is bumped, read by workers after */
    bzn_pool_fn fn;
    void *arg;
    int n, nthreads;
    int grain;        /* 0: static shares; else chunks of grain items from `next` */
    atomic_int next;  /* the first item not yet handed out (chunked runs) */
    int stop;
    atomic_uint job_gen;  /* bumped once per job (and to stop) */
    atomic_int pending;   /* workers that have not finished the job */
    atomic_uint done_gen; /* bumped when the last worker finishes */
};

static void wait_change(bzn_pool *p, atomic_uint *w, unsigned old) {
    for (int i = 0; i < SPINS; i++) {
        if (atomic_load_explicit(w, memory_order_acquire) != old) return;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleepers, 1);
    while (atomic_load(w) == old) pthread_cond_wait(&p->cv, &p->mu);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mu);
}

static void bump(bzn_pool *p, atomic_uint *w) {
    atomic_fetch_add(w, 1);
    if (atomic_load(&p->sleepers)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

static void run_share(bzn_pool *p, int tid) {
    if (tid >= p->nthreads) return;
    if (p->grain) { /* take chunks until none is left */
        for (;;) {
            const int lo = atomic_fetch_add_explicit(&p->next, p->grain, memory_order_relaxed);
            if (lo >= p->n) return;
            p->fn(p->arg, lo, lo + p->grain < p->n ? lo + p->grain : p->n, tid);
        }
    }
    int lo, hi;
    bzn_split(p->n, p->nthreads, tid, &lo, &hi);
    if (lo < hi) p->fn(p->arg, lo, hi, tid);
}

static void *worker(void *v) {
    worker_arg *wa = v;
    bzn_pool *p = wa->pool;
    unsigned seen = 0;
    for (;;) {
        wait_change(p, &p->job_gen, seen);
        seen = atomic_load(&p->job_gen);
        if (p->stop) return NULL;
        run_share(p, wa->tid);
        if (atomic_fetch_sub(&p->pending, 1) == 1) bump(p, &p->done_gen);
    }
}

bzn_status bzn_pool_create(int threads, bzn_pool **out, bzn_error *err) {
    *out = NULL;
    if (threads < 1) threads = 1;
    bzn_pool *p = calloc(1, sizeof *p);
    if (!p) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory creating %d threads", threads);
    p->threads = threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (threads > 1) {
        p->workers = calloc((size_t)threads - 1, sizeof *p->workers);
        p->args = calloc((size_t)threads - 1, sizeof *p->args);
        if (!p->workers || !p->args) {
            bzn_pool_destroy(p);
            return bzn_fail(err, BZN_ERR_NOMEM, "out of memory creating %d threads", threads);
        }
        for (int i = 0; i < threads - 1; i++) {
            p->args[i] = (worker_arg){p, i + 1};
            if (pthread_create(&p->workers[i], NULL, worker, &p->args[i]) != 0) {
                bzn_pool_destroy(p);
                return bzn_fail(err, BZN_ERR_BACKEND, "cannot start worker thread %d of %d", i + 2, threads);
            }
            p->started++;
        }
    }
    *out = p;
    return BZN_OK;
}

void bzn_pool_destroy(bzn_pool *p) {
    if (!p) return;
    if (p->started) {
        p->stop = 1;
        bump(p, &p->job_gen);
        for (int i = 0; i < p->started; i++) pthread_join(p->workers[i], NULL);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->workers);
    free(p->args);
    free(p);
}

int bzn_pool_threads(const bzn_pool *p) { return p ? p->threads : 1; }

int bzn_pool_cpus(void) {
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* the job on t threads (t >= 2): static shares (grain 0) or chunks */
static void run_job(bzn_pool *p, int n, int t, int grain, bzn_pool_fn fn, void *arg) {
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->nthreads = t;
    p->grain = grain;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed); /* published by the bump below */
    atomic_store(&p->pending, p->threads - 1);
    const unsigned done = atomic_load(&p->done_gen);
    bump(p, &p->job_gen); /* every worker wakes; those past nthreads only report done */
    run_share(p, 0);
    wait_change(p, &p->done_gen, done);
}

void bzn_pool_run(bzn_pool *p, int n, int max_threads, bzn_pool_fn fn, void *arg) {
    if (n <= 0) return;
    int t = max_threads > 0 && max_threads < p->threads ? max_threads : p->threads;
    if (t > n) t = n;
    if (t <= 1) {
        fn(arg, 0, n, 0);
        return;
    }
    run_job(p, n, t, 0, fn, arg);
}

void bzn_pool_run_chunks(bzn_pool *p, int n, int grain, bzn_pool_fn fn, void *arg) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    const int chunks = (n + grain - 1) / grain;
    const int t = p->threads < chunks ? p->threads : chunks;
    if (t <= 1) {
        fn(arg, 0, n, 0);
        return;
    }
    /* about 8 chunks per thread: small enough to even out, large enough to cost nothing */
    const int per = chunks / (8 * t);
    run_job(p, n, t, per > 1 ? per * grain : grain, fn, arg);
}
