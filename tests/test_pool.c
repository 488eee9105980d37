/*
 * test_pool.c - the CPU backend's worker threads (backends/cpu/pool.c): every item of every
 * run is done exactly once, by the thread the static split gives it, whatever the thread and
 * item counts (chunked runs: once, in chunks of whole grains); runs follow each other with no lost wake-up, also after the workers fell
 * asleep; a pool is destroyed cleanly whether its workers spin or sleep. (Run it under
 * ThreadSanitizer too: clang -fsanitize=thread, see the comment at the end.)
 */
#include <check.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "parallel.h"
#include "pool.h"
#include "testutil.h"

typedef struct {
    int n;
    atomic_int *hits;     /* per item */
    atomic_int calls;     /* fn calls */
    int bad_range, bad_tid;
    int nthreads;         /* threads the split should use */
} job;

static void mark(void *arg, int lo, int hi, int tid) {
    job *j = arg;
    atomic_fetch_add(&j->calls, 1);
    int elo, ehi;
    bzn_split(j->n, j->nthreads, tid, &elo, &ehi);
    if (lo != elo || hi != ehi) j->bad_range = 1; /* one writer per tid: no race on the flag's value */
    if (tid < 0 || tid >= j->nthreads) j->bad_tid = 1;
    for (int i = lo; i < hi; i++) atomic_fetch_add(&j->hits[i], 1);
}

static void check_run(bzn_pool *p, int n, int max_threads) {
    job j = {.n = n};
    j.hits = calloc((size_t)(n > 0 ? n : 1), sizeof *j.hits);
    int t = max_threads > 0 && max_threads < bzn_pool_threads(p) ? max_threads : bzn_pool_threads(p);
    j.nthreads = t > n ? n : t;
    bzn_pool_run(p, n, max_threads, mark, &j);
    for (int i = 0; i < n; i++) ck_assert_msg(atomic_load(&j.hits[i]) == 1, "n %d max %d: item %d done %d times", n,
                                              max_threads, i, atomic_load(&j.hits[i]));
    ck_assert_msg(!j.bad_range && !j.bad_tid, "n %d max %d: a thread got another's range", n, max_threads);
    ck_assert_int_eq(atomic_load(&j.calls), n <= 0 ? 0 : j.nthreads);
    free(j.hits);
}

START_TEST(every_item_once) {
    static const int threads[] = {1, 2, 3, 5, 8};
    for (size_t ti = 0; ti < sizeof threads / sizeof *threads; ti++) {
        bzn_pool *p;
        ck_assert_int_eq(bzn_pool_create(threads[ti], &p, NULL), BZN_OK);
        ck_assert_int_eq(bzn_pool_threads(p), threads[ti]);
        static const int ns[] = {0, 1, 2, 3, 7, 64, 1000};
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
            for (int max = 0; max <= threads[ti] + 1; max++) check_run(p, ns[ni], max);
        bzn_pool_destroy(p);
    }
}
END_TEST

/* chunked runs: every item once, in chunks of whole grains (each starts at a multiple of
 * the grain; only the last may be shorter), on valid thread ids */
typedef struct {
    int n, grain, threads;
    atomic_int *hits;
    atomic_int bad;
} chunk_job;

static void mark_chunk(void *arg, int lo, int hi, int tid) {
    chunk_job *j = arg;
    if (lo % j->grain || (hi % j->grain && hi != j->n) || lo >= hi || tid < 0 || tid >= j->threads)
        atomic_store(&j->bad, 1);
    for (int i = lo; i < hi; i++) atomic_fetch_add(&j->hits[i], 1);
}

START_TEST(chunks_every_item_once) {
    static const int threads[] = {1, 2, 3, 8}, ns[] = {0, 1, 2, 7, 64, 1000, 4099}, grains[] = {1, 2, 3, 16};
    for (size_t ti = 0; ti < sizeof threads / sizeof *threads; ti++) {
        bzn_pool *p;
        ck_assert_int_eq(bzn_pool_create(threads[ti], &p, NULL), BZN_OK);
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
            for (size_t gi = 0; gi < sizeof grains / sizeof *grains; gi++)
                for (int rep = 0; rep < 20; rep++) {
                    chunk_job j = {ns[ni], grains[gi], threads[ti], calloc((size_t)ns[ni] + 1, sizeof(atomic_int)), 0};
                    bzn_pool_run_chunks(p, j.n, j.grain, mark_chunk, &j);
                    for (int i = 0; i < j.n; i++)
                        ck_assert_msg(atomic_load(&j.hits[i]) == 1, "%d threads, n %d, grain %d: item %d done %d times",
                                      j.threads, j.n, j.grain, i, atomic_load(&j.hits[i]));
                    ck_assert_msg(!atomic_load(&j.bad), "%d threads, n %d, grain %d: a chunk off the grain",
                                  j.threads, j.n, j.grain);
                    free(j.hits);
                }
        bzn_pool_destroy(p);
    }
}
END_TEST

/* many short runs back to back (workers spinning), then runs after a pause long enough for
 * them to fall asleep on the condition variable */
START_TEST(back_to_back_and_after_sleep) {
    bzn_pool *p;
    ck_assert_int_eq(bzn_pool_create(4, &p, NULL), BZN_OK);
    for (int r = 0; r < 20000; r++) check_run(p, 1 + r % 17, 0);
    for (int r = 0; r < 20; r++) {
        const struct timespec pause = {0, 3 * 1000 * 1000}; /* 3 ms: far past the spin */
        nanosleep(&pause, NULL);
        check_run(p, 100, 0);
    }
    bzn_pool_destroy(p);
}
END_TEST

START_TEST(destroy_spinning_or_sleeping) {
    for (int r = 0; r < 200; r++) { /* right after a run: the workers still spin */
        bzn_pool *p;
        ck_assert_int_eq(bzn_pool_create(3, &p, NULL), BZN_OK);
        check_run(p, 10, 0);
        bzn_pool_destroy(p);
    }
    bzn_pool *p;
    ck_assert_int_eq(bzn_pool_create(3, &p, NULL), BZN_OK);
    const struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL); /* asleep before any job */
    bzn_pool_destroy(p);
    bzn_pool_destroy(NULL);
    ck_assert_int_ge(bzn_pool_cpus(), 1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("pool");
    TCase *tc = tu_case(s, "pool", 300);
    tcase_add_test(tc, every_item_once);
    tcase_add_test(tc, chunks_every_item_once);
    tcase_add_test(tc, back_to_back_and_after_sleep);
    tcase_add_test(tc, destroy_spinning_or_sleeping);
    return tu_run_suite(s);
}

/* ThreadSanitizer, by hand (the pool alone; OpenBLAS and Check are not instrumented):
 *   clang -std=c11 -g -O1 -fsanitize=thread -ffunction-sections -Wl,--gc-sections -D_POSIX_C_SOURCE=200809L \
 *     -Iinclude -Iutil -Ibackends/cpu -Itests tests/test_pool.c tests/testutil.c backends/cpu/pool.c util/error.c \
 *     $(pkg-config --cflags --libs check libpng) -lm && CK_FORK=no ./a.out
 * (the unused parts of testutil.c, which call into the library, are dropped by the linker)
 */
