/*
 * parallel.h - how the library's host loops (a frame's resize, the class map, calibration)
 * are spread over threads without knowing whose threads they are: a bzn_parallel runs
 * fn(arg, i) for every i in [0, n), in any order and at once, and returns when all are done.
 * The CPU backend lends its worker threads (bzn_backend.parallel_for); NULL runs in order on
 * the caller's thread. Results never depend on how the work is spread.
 */
#ifndef BZN_PARALLEL_H
#define BZN_PARALLEL_H

typedef void (*bzn_task_fn)(void *arg, int i);

typedef struct {
    void (*run)(void *self, int n, bzn_task_fn fn, void *arg);
    void *self;
    int threads; /* how many at once (1: in order) */
} bzn_parallel;

static inline void bzn_parallel_for(const bzn_parallel *p, int n, bzn_task_fn fn, void *arg) {
    if (p && p->run && p->threads > 1 && n > 1) {
        p->run(p->self, n, fn, arg);
        return;
    }
    for (int i = 0; i < n; i++) fn(arg, i);
}

/* i-th of n near-equal parts of [0, total): [*lo, *hi) */
static inline void bzn_split(int total, int n, int i, int *lo, int *hi) {
    *lo = (int)((long long)total * i / n);
    *hi = (int)((long long)total * (i + 1) / n);
}

#endif
