/* host.c - what the backends whose memory is the host's share: memory, copies, the host
 * clock as their timers, their threads for the engine, and running a batched operation
 * frame by frame. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "error.h"

bzn_status bzn_host_alloc(bzn_backend *b, size_t bytes, void **mem, bzn_error *err) {
    (void)b;
    *mem = NULL;
    if (bytes == 0) bytes = 64;
    bytes = (bytes + 63) / 64 * 64;
    if (!(*mem = aligned_alloc(64, bytes)))
        return bzn_fail(err, BZN_ERR_NOMEM, "out of memory allocating %zu MB", bytes >> 20);
    memset(*mem, 0, bytes);
    return BZN_OK;
}

void bzn_host_free(bzn_backend *b, void *mem) {
    (void)b;
    free(mem);
}

bzn_status bzn_host_copy(bzn_backend *b, void *dst, const void *src, size_t bytes, bzn_error *err) {
    (void)b;
    (void)err;
    if (dst != src && bytes) memmove(dst, src, bytes);
    return BZN_OK;
}

bzn_status bzn_host_clock_init(bzn_host_clock *c, int n, bzn_error *err) {
    if (n <= c->n) return BZN_OK;
    double *t = realloc(c->t, (size_t)n * sizeof *t);
    if (!t) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory for %d timers", n);
    c->t = t;
    c->n = n;
    return BZN_OK;
}

bzn_status bzn_host_clock_mark(bzn_host_clock *c, int i, bzn_error *err) {
    if (i < 0 || i >= c->n) return bzn_fail(err, BZN_ERR_ARG, "timer %d of %d", i, c->n);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    c->t[i] = ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
    return BZN_OK;
}

bzn_status bzn_host_clock_elapsed(const bzn_host_clock *c, int from, int to, double *ms, bzn_error *err) {
    if (from < 0 || to < 0 || from >= c->n || to >= c->n)
        return bzn_fail(err, BZN_ERR_ARG, "timers %d, %d of %d", from, to, c->n);
    *ms = c->t[to] - c->t[from];
    return BZN_OK;
}

void bzn_host_clock_free(bzn_host_clock *c) {
    free(c->t);
    c->t = NULL;
    c->n = 0;
}

static void run_on_backend(void *self, int n, bzn_task_fn fn, void *arg) {
    bzn_backend *b = self;
    b->parallel_for(b, n, fn, arg);
}

bzn_parallel bzn_backend_parallel(bzn_backend *b) {
    bzn_parallel p = {NULL, NULL, 1};
    if (b && b->parallel_for && b->threads > 1) p = (bzn_parallel){run_on_backend, b, b->threads};
    return p;
}

bzn_status bzn_conv_frames(bzn_backend *b, const bzn_conv_args *a, void *scratch, bzn_conv_one_fn one) {
    for (int n = 0; n < a->batch; n++) {
        bzn_conv_args f = *a;
        f.batch = 1;
        for (int s = 0; s < a->n_in; s++) f.in[s].data = a->in[s].data + (size_t)n * a->in[s].batch_stride;
        f.out = a->out + (size_t)n * a->out_batch_stride;
        if (a->in_q) f.in_q = (const uint8_t *)a->in_q + (size_t)n * a->in[0].batch_stride * sizeof(float);
        if (a->out_q) f.out_q = (uint8_t *)a->out_q + (size_t)n * a->out_batch_stride * sizeof(float);
        one(b->ctx, &f, scratch);
    }
    return BZN_OK;
}

bzn_status bzn_pool_frames(bzn_backend *b, const bzn_pool_args *a, bzn_pool_one_fn one) {
    for (int n = 0; n < a->batch; n++) {
        bzn_pool_args f = *a;
        f.batch = 1;
        f.in = a->in + (size_t)n * a->in_batch_stride;
        f.out = a->out + (size_t)n * a->out_batch_stride;
        one(b->ctx, &f);
    }
    return BZN_OK;
}

bzn_status bzn_upsample_frames(bzn_backend *b, const bzn_upsample_args *a, bzn_upsample_one_fn one) {
    for (int n = 0; n < a->batch; n++) {
        bzn_upsample_args f = *a;
        f.batch = 1;
        f.in = a->in + (size_t)n * a->in_batch_stride;
        f.out = a->out + (size_t)n * a->out_batch_stride;
        one(b->ctx, &f);
    }
    return BZN_OK;
}
