/*
 * test_ops.c - every operation of every registered backend (at 1 and 2 threads) against the
 * plain C reference backend, over sweeps of shapes, strides, dilations, kernel sizes,
 * paddings, multi-part inputs and activations (in the spirit of ggml's test-backend-ops).
 * Operands go through each backend's own memory (alloc, upload, download), so a backend
 * whose memory is not the host's is tested the same way. The reference itself is checked
 * against hand-computed values first.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "gemm_f32.h"
#include "gemm_s8.h"
#include "isa.h"
#include "testutil.h"
#include "winograd.h"
#include "winograd_s8.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}
static float *rand_buf(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

static bzn_backend *make_named(const char *name, int threads) {
    bzn_backend *b = NULL;
    bzn_error e;
    const bzn_backend_options o = {threads, 0};
    bzn_status s = bzn_backend_create(name, &o, &b, &e);
    ck_assert_msg(s == BZN_OK, "%s: %s", name, e.msg);
    return b;
}

static bzn_backend *make_ref(void) { return make_named("ref", 1); }

/* The registry's backends whose memory is the host's, which these cases drive with host
 * pointers (main fills it; a device backend, cuda, has its own test: tests/cuda_ops.c). */
static const char *host_backends[16];
static int n_host_backends;
static void find_host_backends(void) {
    for (int i = 0; i < bzn_backend_count() && n_host_backends < 16; i++) {
        bzn_backend *b;
        bzn_error e;
        if (bzn_backend_create(bzn_backend_name(i), NULL, &b, &e) != BZN_OK) {
            fprintf(stderr, "test_ops: backend %s left out: %s\n", bzn_backend_name(i), e.msg);
            continue;
        }
        if (b->host_memory)
            host_backends[n_host_backends++] = bzn_backend_name(i);
        else
            fprintf(stderr, "test_ops: backend %s left out: device memory (its own test covers it)\n", b->name);
        b->destroy(b);
    }
}

/* loop index -> (host-memory backend, threads 1 or 2) */
static int n_configs(void) { return 2 * n_host_backends; }
static bzn_backend *make_config(int i) { return make_named(host_backends[i / 2], 1 + i % 2); }

/* ---- operands in a backend's memory ---- */

static void *to_backend(bzn_backend *be, const void *host, size_t bytes) {
    void *d;
    bzn_error e;
    ck_assert_msg(be->alloc(be, bytes, &d, &e) == BZN_OK, "%s alloc: %s", be->name, e.msg);
    if (host) ck_assert_msg(be->upload(be, d, host, bytes, &e) == BZN_OK, "%s upload: %s", be->name, e.msg);
    return d;
}

static void from_backend(bzn_backend *be, void *host, const void *d, size_t bytes) {
    bzn_error e;
    ck_assert_msg(be->download(be, host, d, bytes, &e) == BZN_OK, "%s download: %s", be->name, e.msg);
}

/* Run a (host-pointer) convolution on `be`: weights prepared as for a model, the plan's
 * per-context preparation, operands copied into the backend's memory; out_host gets
 * out_floats floats from out_at floats before a->out (sentinels around the output). */
static void backend_conv(bzn_backend *be, const bzn_conv_args *host, float *out_base, size_t out_at, size_t out_floats) {
    bzn_error e;
    bzn_conv_args a = *host;
    if (a.batch == 0) a.batch = 1;
    void *weights = NULL;
    size_t wbytes;
    if (be->weights_prepare) ck_assert_msg(be->weights_prepare(be, &a, &weights, &wbytes, &e) == BZN_OK, "%s", e.msg);
    a.weights = weights;
    void *seg_dev[BZN_MAX_SEGMENTS];
    for (int s = 0; s < a.n_in; s++) {
        const size_t n = (size_t)a.in[s].channels * a.in_h * a.in_w + (size_t)(a.batch - 1) * a.in[s].batch_stride;
        seg_dev[s] = to_backend(be, a.in[s].data, n * sizeof(float));
        a.in[s].data = seg_dev[s];
    }
    float *out_dev = to_backend(be, out_base, out_floats * sizeof(float));
    a.out = out_dev + out_at;
    void *prep = NULL, *scratch = NULL;
    if (be->conv_prepare) ck_assert_msg(be->conv_prepare(be, &a, &prep, &e) == BZN_OK, "%s", e.msg);
    a.prepared = prep;
    const size_t sb = be->conv_scratch(be, &a);
    if (sb) scratch = to_backend(be, NULL, sb);
    ck_assert_msg(be->conv(be, &a, scratch, &e) == BZN_OK, "%s conv: %s", be->name, e.msg);
    if (be->synchronize) ck_assert_msg(be->synchronize(be, &e) == BZN_OK, "%s", e.msg);
    from_backend(be, out_base, out_dev, out_floats * sizeof(float));
    if (be->conv_release) be->conv_release(be, prep);
    if (weights) be->weights_release(weights);
    if (scratch) be->free(be, scratch);
    for (int s = 0; s < a.n_in; s++) be->free(be, seg_dev[s]);
    be->free(be, out_dev);
}

static void backend_pool(bzn_backend *be, const bzn_pool_args *host, float *out, size_t in_floats, size_t out_floats) {
    bzn_error e;
    bzn_pool_args a = *host;
    float *in_dev = to_backend(be, a.in, in_floats * sizeof(float)), *out_dev = to_backend(be, NULL, out_floats * sizeof(float));
    a.in = in_dev;
    a.out = out_dev;
    ck_assert_msg(be->maxpool(be, &a, &e) == BZN_OK, "%s maxpool: %s", be->name, e.msg);
    if (be->synchronize) ck_assert_msg(be->synchronize(be, &e) == BZN_OK, "%s", e.msg);
    from_backend(be, out, out_dev, out_floats * sizeof(float));
    be->free(be, in_dev);
    be->free(be, out_dev);
}

static void backend_upsample(bzn_backend *be, const bzn_upsample_args *host, float *out, size_t in_floats,
                             size_t out_floats) {
    bzn_error e;
    bzn_upsample_args a = *host;
    float *in_dev = to_backend(be, a.in, in_floats * sizeof(float)), *out_dev = to_backend(be, NULL, out_floats * sizeof(float));
    a.in = in_dev;
    a.out = out_dev;
    ck_assert_msg(be->upsample(be, &a, &e) == BZN_OK, "%s upsample: %s", be->name, e.msg);
    if (be->synchronize) ck_assert_msg(be->synchronize(be, &e) == BZN_OK, "%s", e.msg);
    from_backend(be, out, out_dev, out_floats * sizeof(float));
    be->free(be, in_dev);
    be->free(be, out_dev);
}

/* max |a - b| relative to max(1, max |b|) */
static double rel_err(const float *a, const float *b, size_t n) {
    double m = 1, d = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(b[i]) > m) m = fabs(b[i]);
        double x = fabs((double)a[i] - b[i]);
        if (x > d || isnan(x)) d = x;
    }
    return d / m;
}

/* ---- the reference against hand-computed values ----------------------------------- */

START_TEST(ref_conv_known) {
    bzn_backend *r = make_ref();
    /* 1 channel 3x3 input 1..9, 3x3 kernel of ones, pad 1: each output sums its neighbourhood */
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[9], out[9], bias = 0.5f;
    for (int i = 0; i < 9; i++) w[i] = 1;
    bzn_conv_args a = {.batch = 1, .n_in = 1, .in_c = 1, .in_h = 3, .in_w = 3, .out = out, .out_c = 1, .out_h = 3,
                       .out_w = 3, .weight = w, .bias = &bias, .k = 3, .stride = 1, .pad = 1, .dilation = 1};
    a.in[0] = (bzn_segment){x, 1, 0};
    ck_assert_int_eq(r->conv(r, &a, NULL, NULL), BZN_OK);
    const float want[9] = {12.5f, 21.5f, 16.5f, 27.5f, 45.5f, 33.5f, 24.5f, 39.5f, 28.5f};
    for (int i = 0; i < 9; i++) ck_assert_float_eq_tol(out[i], want[i], 1e-6);
    /* ReLU6 clamps */
    a.act = BZN_ACT_RELU6;
    ck_assert_int_eq(r->conv(r, &a, NULL, NULL), BZN_OK);
    for (int i = 0; i < 9; i++) ck_assert_float_eq(out[i], 6.0f);
    r->destroy(r);
}
END_TEST

START_TEST(ref_upsample_known) {
    bzn_backend *r = make_ref();
    /* PyTorch: F.interpolate([[0, 1]], scale_factor=2, mode="bilinear") = [0, .25, .75, 1] per row */
    float x[2] = {0, 1}, out[8];
    bzn_upsample_args a = {1, x, out, 0, 0, 1, 1, 2, 2};
    ck_assert_int_eq(r->upsample(r, &a, NULL), BZN_OK);
    const float want[4] = {0, 0.25f, 0.75f, 1};
    for (int y = 0; y < 2; y++)
        for (int i = 0; i < 4; i++) ck_assert_float_eq_tol(out[y * 4 + i], want[i], 1e-7);
    r->destroy(r);
}
END_TEST

START_TEST(ref_maxpool_known) {
    bzn_backend *r = make_ref();
    /* padding never wins: all-negative input keeps negative maxima at the border */
    float x[16], out[4];
    for (int i = 0; i < 16; i++) x[i] = -(float)(i + 1);
    bzn_pool_args a = {1, x, out, 0, 0, 1, 4, 4, 2, 2, 3, 2, 1};
    ck_assert_int_eq(r->maxpool(r, &a, NULL), BZN_OK);
    ck_assert_float_eq(out[0], -1.0f);
    ck_assert_float_eq(out[1], -2.0f);
    ck_assert_float_eq(out[2], -5.0f);
    ck_assert_float_eq(out[3], -6.0f);
    r->destroy(r);
}
END_TEST

/* ---- backends against the reference -------------------------------------------------- */

typedef struct {
    int cin, cout, h, w, k, stride, pad, dil, segs, act, bias, batch;
} conv_case;

static void run_conv_case(bzn_backend *be, const conv_case *c) {
    bzn_backend *ref = make_ref();
    const int batch = c->batch ? c->batch : 1;
    const int oh = bzn_out_size(c->h, c->k, c->stride, c->pad, c->dil);
    const int ow = bzn_out_size(c->w, c->k, c->stride, c->pad, c->dil);
    ck_assert(oh > 0 && ow > 0);
    const size_t plane = (size_t)c->h * c->w, out_n = (size_t)c->cout * oh * ow;
    float *w = rand_buf((size_t)c->cout * c->cin * c->k * c->k), *bias = rand_buf((size_t)c->cout);
    bzn_conv_args a = {.batch = batch, .in_c = c->cin, .in_h = c->h, .in_w = c->w, .out_c = c->cout, .out_h = oh,
                       .out_w = ow, .weight = w, .bias = c->bias ? bias : NULL, .k = c->k, .stride = c->stride,
                       .pad = c->pad, .dilation = c->dil, .act = (bzn_act)c->act, .out_batch_stride = out_n + 5};
    /* split the input channels into `segs` separately allocated pieces */
    float *pieces[BZN_MAX_SEGMENTS];
    int left = c->cin;
    a.n_in = 0;
    for (int s = 0; s < c->segs; s++) {
        int ch = s == c->segs - 1 ? left : (c->cin / c->segs > 0 ? c->cin / c->segs : 1);
        if (ch > left) ch = left;
        if (ch == 0) break;
        const size_t stride = (size_t)ch * plane + 3 * s; /* frames apart, with gaps */
        pieces[a.n_in] = rand_buf(stride * batch);
        a.in[a.n_in] = (bzn_segment){pieces[a.n_in], ch, stride};
        a.n_in++;
        left -= ch;
    }
    /* the output sits in the middle of a bigger buffer with sentinels around it (and
       between the frames of a batch) */
    const size_t guard = 37, span = a.out_batch_stride * (batch - 1) + out_n;
    float *big = malloc((span + 2 * guard) * sizeof *big), *want = malloc(span * sizeof *want);
    for (size_t i = 0; i < span + 2 * guard; i++) big[i] = 1234.5f;
    for (size_t i = 0; i < span; i++) want[i] = 1234.5f;
    backend_conv(be, &a, big, guard, span + 2 * guard);
    a.out = want;
    ck_assert_int_eq(ref->conv(ref, &a, NULL, NULL), BZN_OK);
    double err = rel_err(big + guard, want, span);
    for (size_t i = 0; i < guard; i++) {
        ck_assert_float_eq(big[i], 1234.5f);
        ck_assert_float_eq(big[guard + span + i], 1234.5f);
    }
    for (int f = 0; f + 1 < batch; f++)
        for (size_t i = out_n; i < a.out_batch_stride; i++) ck_assert_float_eq(big[guard + f * a.out_batch_stride + i], 1234.5f);
    ck_assert_msg(err < 1e-5, "%s conv cin %d cout %d %dx%d k%d s%d p%d d%d segs %d act %d batch %d: rel err %g",
                  be->name, c->cin, c->cout, c->h, c->w, c->k, c->stride, c->pad, c->dil, a.n_in, c->act, batch, err);
    for (int s = 0; s < a.n_in; s++) free(pieces[s]);
    free(big);
    free(want);
    free(w);
    free(bias);
    ref->destroy(ref);
}

START_TEST(conv_sweep) {
    bzn_backend *be = make_config(_i);
    static const int ks[] = {1, 3, 5}, strides[] = {1, 2}, dils[] = {1, 3, 5};
    static const int sizes[][2] = {{7, 7}, {14, 14}, {11, 6}, {1, 1}, {78, 14}};
    static const int chans[][2] = {{3, 32}, {14, 24}, {33, 1}, {64, 3}};
    int n = 0;
    for (size_t ki = 0; ki < 3; ki++)
        for (size_t si = 0; si < 2; si++)
            for (size_t di = 0; di < 3; di++) {
                if (ks[ki] != 3 && dils[di] != 1) continue; /* BlazeNeo dilates only 3x3 kernels */
                for (size_t zi = 0; zi < sizeof sizes / sizeof *sizes; zi++) {
                    const int k = ks[ki], d = dils[di];
                    conv_case c = {.k = k, .stride = strides[si], .dil = d, .h = sizes[zi][0], .w = sizes[zi][1]};
                    const size_t chi = (ki + si + di + zi) % 4;
                    c.cin = chans[chi][0];
                    c.cout = chans[chi][1];
                    c.pad = (n % 3 == 0) ? 0 : d * (k / 2); /* unpadded and "same" */
                    c.segs = 1 + n % 3;
                    c.act = n % 3;
                    c.bias = n % 2;
                    c.batch = 1 + (n % 5 == 0); /* some as a batch of two frames */
                    if (bzn_out_size(c.h, k, c.stride, c.pad, d) < 1) c.pad = d * (k / 2);
                    run_conv_case(be, &c);
                    n++;
                }
            }
    ck_assert_int_ge(n, 50);
    be->destroy(be);
}
END_TEST

/* sizes big enough for the multi-threaded GEMM split, and BlazeNeo's real shapes */
START_TEST(conv_blazeneo_shapes) {
    bzn_backend *be = make_named(host_backends[_i], 2);
    static const conv_case cases[] = {
        {3, 32, 64, 64, 3, 2, 1, 1, 1, BZN_ACT_RELU6, 1, 2},   /* encoder.base.0, batch 2 */
        {102, 40, 22, 22, 3, 1, 1, 1, 3, BZN_ACT_RELU6, 1, 2}, /* a HarDBlock layer reading 3 pieces, batch 2 */
        {262, 256, 11, 11, 1, 1, 0, 1, 1, BZN_ACT_RELU6, 1, 1},/* transition 1x1 */
        {320, 32, 11, 11, 1, 1, 0, 1, 4, BZN_ACT_NONE, 0, 1},  /* 1x1 over a 4-piece concatenation */
        {32, 32, 22, 22, 3, 1, 3, 3, 1, BZN_ACT_NONE, 0, 1},   /* rfb branch2.2 */
        {32, 32, 22, 22, 3, 1, 5, 5, 1, BZN_ACT_NONE, 0, 1},   /* rfb branch3.2 */
        {32, 32, 22, 22, 5, 1, 2, 1, 1, BZN_ACT_NONE, 0, 1},   /* rfb branch3.1 */
        {96, 32, 44, 44, 3, 1, 1, 1, 3, BZN_ACT_RELU, 1, 1},   /* agg block_33.0 (DIA/DHA) */
        {32, 3, 44, 44, 3, 1, 1, 1, 1, BZN_ACT_NONE, 0, 1},    /* head */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_conv_case(be, &cases[i]);
    be->destroy(be);
}
END_TEST

START_TEST(pool_and_upsample_sweep) {
    bzn_backend *ref = make_ref(), *be = make_config(_i);
    static const int sizes[][2] = {{1, 1}, {2, 2}, {3, 3}, {7, 5}, {9, 13}, {11, 11}, {44, 22}, {88, 88}};
    static const int pools[][3] = {{2, 2, 0}, {3, 2, 1}};
    for (size_t zi = 0; zi < sizeof sizes / sizeof *sizes; zi++) {
        const int h = sizes[zi][0], w = sizes[zi][1], c = 5;
        float *x = rand_buf((size_t)c * h * w);
        for (size_t i = (size_t)2 * h * w + 3; i < (size_t)c * h * w; i += 29) /* NaN wins (channels 2..) */
            x[i] = i % 2 ? NAN : -INFINITY;
        for (size_t i = (size_t)h * w; i < (size_t)2 * h * w; i++) /* channel 1: maxima tied between -0 and +0 */
            x[i] = i % 3 == 0 ? -0.0f : i % 5 == 0 ? 0.0f : -fabsf(x[i]) - 0.5f;
        for (size_t pi = 0; pi < 2; pi++) {
            const int k = pools[pi][0], s = pools[pi][1], p = pools[pi][2];
            const int oh = bzn_out_size(h, k, s, p, 1), ow = bzn_out_size(w, k, s, p, 1);
            if (oh < 1 || ow < 1) continue;
            float *o1 = malloc((size_t)c * oh * ow * sizeof *o1), *o2 = malloc((size_t)c * oh * ow * sizeof *o2);
            bzn_pool_args a = {1, x, o1, 0, 0, c, h, w, oh, ow, k, s, p};
            backend_pool(be, &a, o1, (size_t)c * h * w, (size_t)c * oh * ow);
            a.out = o2;
            ck_assert_int_eq(ref->maxpool(ref, &a, NULL), BZN_OK);
            ck_assert_msg(memcmp(o1, o2, (size_t)c * oh * ow * sizeof *o1) == 0, "maxpool %dx%d k%d s%d p%d", h, w, k,
                          s, p);
            free(o1);
            free(o2);
        }
        free(x);
        x = rand_buf((size_t)c * h * w); /* finite: upsampling is compared with a tolerance */
        for (int f = 2; f <= 8; f *= 2) {
            const size_t n = (size_t)c * h * f * w * f;
            float *o1 = malloc(n * sizeof *o1), *o2 = malloc(n * sizeof *o2);
            bzn_upsample_args a = {1, x, o1, 0, 0, c, h, w, f};
            backend_upsample(be, &a, o1, (size_t)c * h * w, n);
            a.out = o2;
            ck_assert_int_eq(ref->upsample(ref, &a, NULL), BZN_OK);
            ck_assert_msg(rel_err(o1, o2, n) < 1e-6, "upsample x%d of %dx%d", f, h, w);
            free(o1);
            free(o2);
        }
        free(x);
    }
    ref->destroy(ref);
    be->destroy(be);
}
END_TEST

/* every FP32 direct kernel the CPU runs gives the floats of the definition (one fused
 * multiply-add per term, k in order) exactly, with B's rows scattered (koff reversed), in one
 * call over K and in two (the second adding to the first: how the backend runs K in chunks) */
START_TEST(f32_block_kernels_exact) {
    static const int ks[] = {1, 2, 7, 27, 130, 577};
    const bzn_f32_kernel best = bzn_f32_best_kernel();
    int checked = 0;
    for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
        const int K = ks[ki];
        const size_t row = BZN_S8_NR + 5; /* B's rows lie apart, unaligned */
        float *wbuf = rand_buf((size_t)BZN_F32_MR * K), *b = rand_buf((size_t)K * row + 3);
        size_t *koff = malloc((size_t)K * sizeof *koff);
        for (int k = 0; k < K; k++) koff[k] = (size_t)(K - 1 - k) * row + 3;
        const float *w[BZN_F32_MR];
        for (int r = 0; r < BZN_F32_MR; r++) w[r] = wbuf + (size_t)r * K;
        for (int kern = BZN_F32_SGEMM; kern <= (int)best; kern++)
            for (int k1 = K; k1 >= K / 3 && k1 > 0; k1 = k1 == K ? K / 3 : 0) { /* first chunk: k < k1 */
                float acc[BZN_F32_MR][BZN_S8_NR];
                bzn_f32_block((bzn_f32_kernel)kern, k1, b, koff, w, acc, 0);
                if (k1 < K) {
                    const float *w2[BZN_F32_MR];
                    for (int r = 0; r < BZN_F32_MR; r++) w2[r] = w[r] + k1;
                    bzn_f32_block((bzn_f32_kernel)kern, K - k1, b, koff + k1, w2, acc, 1);
                }
                for (int r = 0; r < BZN_F32_MR; r++)
                    for (int j = 0; j < BZN_S8_NR; j++) {
                        float want = 0;
                        for (int k = 0; k < K; k++) want = fmaf(w[r][k], b[koff[k] + j], want);
                        ck_assert_msg(acc[r][j] == want, "%s K%d (chunk %d) at (%d,%d): %.9g != %.9g",
                                      bzn_f32_kernel_name((bzn_f32_kernel)kern), K, k1, r, j, acc[r][j], want);
                    }
                checked++;
            }
        free(wbuf);
        free(b);
        free(koff);
    }
    fprintf(stderr, "  FP32 direct kernels: %d checks, best kernel here: %s\n", checked, bzn_f32_kernel_name(best));
}
END_TEST

/* ---- INT8 ---------------------------------------------------------------------------- */

/* every int8 GEMM kernel the CPU runs gives exactly the integers of the definition, on
 * every block of C, with B's k-groups evenly spaced (as a convolution's channel groups at one
 * tap) or scattered (goff in reverse order, with gaps), with and without the promise that B
 * holds no negative q, in one call over K and in two chunks */
START_TEST(s8_gemm_kernels_exact) {
    static const int ms[] = {1, 3, 8, 14, 33}, ns[] = {1, 31, 32, 33, 100}, ks[] = {1, 3, 4, 27, 130, 577};
    const bzn_s8_kernel best = bzn_s8_best_kernel();
    int checked = 0;
    for (size_t mi = 0; mi < 5; mi++)
        for (size_t ni = 0; ni < 5; ni++)
            for (size_t ki = 0; ki < 6; ki++) {
                const int m = ms[mi], n = ns[ni], k = ks[ki], kg = bzn_s8_kpad(k) / 4;
                const int tiles = (n + BZN_S8_NR - 1) / BZN_S8_NR, gbytes = tiles * BZN_S8_NR * 4 + 64;
                const int kgmax = bzn_s8_kg_packed(BZN_S8_AMX, kg); /* the most any packing takes */
                int8_t *a = malloc((size_t)m * k), *ap = malloc((size_t)bzn_s8_mpad(m) * kgmax * 4);
                uint8_t *b = malloc((size_t)k * n), *bp = malloc((size_t)kg * gbytes);
                int32_t *rs = malloc((size_t)m * sizeof *rs);
                size_t *goff = malloc((size_t)kg * sizeof *goff);
                for (int i = 0; i < m * k; i++) a[i] = (int8_t)(frand() * 127.5f);
                /* half the shapes with B >= 128 only, passed as such (the AVX2 kernel's other path) */
                const int nonneg = (int)((mi + ni + ki) % 2), scattered = (int)((mi + ki) % 2);
                for (int i = 0; i < k * n; i++) {
                    const float r = frand();
                    b[i] = (uint8_t)(128 + (int)((nonneg ? fabsf(r) : r) * 127.5f));
                }
                /* extreme values too: the AVX2 path must not saturate */
                a[0] = -127;
                b[0] = nonneg ? 128 : 1;
                if (k * n > 1) b[1] = 255;
                memset(bp, 128, (size_t)kg * gbytes);
                for (int g = 0; g < kg; g++) goff[g] = (size_t)(scattered ? kg - 1 - g : g) * gbytes + 64;
                for (int r = 0; r < k; r++)
                    for (int j = 0; j < n; j++) bp[goff[r / 4] + (size_t)j * 4 + r % 4] = b[(size_t)r * n + j];
                for (int kern = BZN_S8_REF; kern < BZN_S8_KERNELS; kern++) {
                    if (!bzn_s8_kernel_runs((bzn_s8_kernel)kern)) continue;
                    const int kgp = bzn_s8_kg_packed((bzn_s8_kernel)kern, kg);
                    bzn_s8_pack_a((bzn_s8_kernel)kern, a, m, k, ap, rs);
                    for (int t = 0; t < tiles; t++)
                        for (int mb = 0; mb < bzn_s8_mpad(m) / BZN_S8_MR; mb++) {
                            int32_t c[BZN_S8_MR][BZN_S8_NR];
                            const int rows = m - mb * BZN_S8_MR < BZN_S8_MR ? m - mb * BZN_S8_MR : BZN_S8_MR;
                            const int8_t *ab = ap + (size_t)mb * kgp * BZN_S8_MR * 4;
                            const uint8_t *bt = bp + (size_t)t * BZN_S8_NR * 4;
                            /* some blocks in two chunks (split at a multiple of 16 groups, as AMX needs) */
                            const int g1 = (t + mb) % 2 && kg > 16 ? kg / 2 / 16 * 16 : kg;
                            bzn_s8_block((bzn_s8_kernel)kern, g1, ab, rs + mb * BZN_S8_MR, rows, bt, goff, nonneg, c, 0);
                            if (g1 < kg)
                                bzn_s8_block((bzn_s8_kernel)kern, kg - g1, ab + (size_t)g1 * BZN_S8_MR * 4,
                                             rs + mb * BZN_S8_MR, rows, bt, goff + g1, nonneg, c, 1);
                            for (int r = 0; r < rows; r++)
                                for (int jj = 0; jj < BZN_S8_NR && t * BZN_S8_NR + jj < n; jj++) {
                                    const int i = mb * BZN_S8_MR + r, j = t * BZN_S8_NR + jj;
                                    int32_t want = 0;
                                    for (int x = 0; x < k; x++)
                                        want += (int32_t)a[i * k + x] * ((int32_t)b[(size_t)x * n + j] - 128);
                                    ck_assert_msg(c[r][jj] == want, "%s m%d n%d k%d%s at (%d,%d): %d != %d",
                                                  bzn_s8_kernel_name((bzn_s8_kernel)kern), m, n, k,
                                                  scattered ? " scattered" : "", i, j, c[r][jj], want);
                                }
                        }
                    bzn_s8_end((bzn_s8_kernel)kern);
                    checked++;
                }
                free(a); free(ap); free(b); free(bp); free(rs); free(goff);
            }
    fprintf(stderr, "  int8 GEMM: %d checks, best kernel here: %s\n", checked, bzn_s8_kernel_name(best));
}
END_TEST

/* int8 convolution: the CPU backend equals the reference bit for bit */
/* every kernel's quantize4 is bzn_quantize exactly: ties to even, the clamps, NaN, infinities,
 * values past the int32 range, channels left out (NULL), every length (vector bodies, tails) */
START_TEST(s8_quantize4_exact) {
    static const float special[] = {NAN, -NAN, INFINITY, -INFINITY, 1e30f, -1e30f, 3e9f, -3e9f, 127.5f, -127.5f,
                                    127.49f, -127.49f, -127.4f, 126.5f, 0.5f, 1.5f, 2.5f, -0.5f, -2.5f, -0.0f,
                                    1e-40f, 0.49999997f};
    enum { N = 53 };
    float ch[4][N];
    int checked = 0;
    for (int round = 0; round < 40; round++) {
        for (int l = 0; l < 4; l++)
            for (int i = 0; i < N; i++) {
                const int k = (round * 7 + l * 13 + i * 5) % 64;
                ch[l][i] = k < (int)(sizeof special / sizeof *special) ? special[k] : frand() * 200.0f;
            }
        const float inv = round % 2 ? 1.0f : 0.73f;
        const float *x[4] = {ch[0], round % 3 ? ch[1] : NULL, ch[2], round % 5 ? ch[3] : NULL};
        for (int n = 0; n <= N; n += 1 + round % 3)
            for (int kern = BZN_S8_REF; kern < BZN_S8_KERNELS; kern++) {
                if (!bzn_s8_kernel_runs((bzn_s8_kernel)kern)) continue;
                uint8_t got[4 * N + 4];
                got[4 * n] = 0xA5; /* nothing past n pixels */
                bzn_s8_quantize4((bzn_s8_kernel)kern, x, n, inv, got);
                for (int i = 0; i < n; i++)
                    for (int l = 0; l < 4; l++) {
                        const int want = x[l] ? bzn_quantize(x[l][i], inv) + 128 : 128;
                        ck_assert_msg(got[4 * i + l] == want, "%s: x %g (inv %g): %d, not %d",
                                      bzn_s8_kernel_name((bzn_s8_kernel)kern), x[l] ? x[l][i] : 0.0, inv,
                                      got[4 * i + l], want);
                    }
                ck_assert_int_eq(got[4 * n], 0xA5);
                checked++;
            }
    }
    fprintf(stderr, "  quantize4: %d checks\n", checked);
}
END_TEST

START_TEST(conv_int8_sweep) {
    bzn_backend *ref = make_ref(), *be = make_config(_i);
    static const conv_case cases[] = {
        {3, 32, 16, 16, 3, 2, 1, 1, 1, BZN_ACT_RELU6, 1, 1}, {14, 24, 7, 7, 3, 1, 1, 1, 2, BZN_ACT_RELU6, 1, 1},
        {33, 1, 11, 6, 1, 1, 0, 1, 3, BZN_ACT_NONE, 0, 1},   {32, 32, 22, 22, 3, 1, 3, 3, 1, BZN_ACT_NONE, 0, 1},
        {32, 32, 22, 22, 3, 1, 5, 5, 1, BZN_ACT_NONE, 1, 1}, {32, 32, 22, 22, 5, 1, 2, 1, 1, BZN_ACT_RELU, 0, 1},
        {102, 40, 22, 22, 3, 1, 1, 1, 3, BZN_ACT_RELU6, 1, 1}, {262, 256, 11, 11, 1, 1, 0, 1, 1, BZN_ACT_RELU6, 1, 1},
        {64, 3, 78, 14, 3, 1, 1, 1, 1, BZN_ACT_NONE, 0, 1},  {7, 5, 1, 1, 3, 1, 1, 1, 1, BZN_ACT_RELU, 1, 1},
        {6, 9, 15, 13, 3, 2, 2, 2, 2, BZN_ACT_RELU, 1, 1},   {5, 17, 9, 40, 1, 2, 0, 1, 1, BZN_ACT_NONE, 0, 1},
        {9, 10, 5, 70, 3, 1, 1, 1, 1, BZN_ACT_RELU6, 1, 1},  {13, 8, 33, 37, 5, 1, 2, 1, 3, BZN_ACT_NONE, 1, 1},
    };
    /* each case twice: any input, and an input >= 0 passed as such (in_nonneg) */
    for (size_t cj = 0; cj < 2 * sizeof cases / sizeof *cases; cj++) {
        const size_t ci = cj / 2;
        const int nonneg = (int)(cj % 2);
        const conv_case *c = &cases[ci];
        const int oh = bzn_out_size(c->h, c->k, c->stride, c->pad, c->dil);
        const int ow = bzn_out_size(c->w, c->k, c->stride, c->pad, c->dil);
        const size_t wn = (size_t)c->cout * c->cin * c->k * c->k, plane = (size_t)c->h * c->w;
        const size_t on = (size_t)c->cout * oh * ow;
        int8_t *qw = malloc(wn);
        float *ws = malloc((size_t)c->cout * sizeof *ws), *bias = rand_buf((size_t)c->cout);
        for (size_t i = 0; i < wn; i++) qw[i] = (int8_t)(frand() * 127.5f);
        for (int i = 0; i < c->cout; i++) ws[i] = 0.001f + 0.01f * (frand() + 1);
        bzn_conv_args a = {.batch = 1, .in_c = c->cin, .in_h = c->h, .in_w = c->w, .out_c = c->cout, .out_h = oh,
                           .out_w = ow, .bias = c->bias ? bias : NULL, .k = c->k, .stride = c->stride, .pad = c->pad,
                           .dilation = c->dil, .act = (bzn_act)c->act, .qweight = qw, .wscale = ws, .in_scale = 0.023f,
                           .in_nonneg = nonneg};
        float *pieces[BZN_MAX_SEGMENTS];
        int left = c->cin;
        for (int sg = 0; sg < c->segs && left > 0; sg++) {
            int ch = sg == c->segs - 1 ? left : (c->cin / c->segs > 0 ? c->cin / c->segs : 1);
            pieces[a.n_in] = rand_buf((size_t)ch * plane);
            for (size_t i = 0; i < (size_t)ch * plane; i++) /* some values clip at +-127 */
                pieces[a.n_in][i] = nonneg ? fabsf(4 * pieces[a.n_in][i]) : 4 * pieces[a.n_in][i];
            a.in[a.n_in] = (bzn_segment){pieces[a.n_in], ch, 0};
            a.n_in++;
            left -= ch;
        }
        float *got = malloc(on * sizeof *got), *want = malloc(on * sizeof *want);
        a.out = got;
        backend_conv(be, &a, got, 0, on);
        a.out = want;
        ck_assert_int_eq(ref->conv(ref, &a, NULL, NULL), BZN_OK);
        ck_assert_msg(memcmp(got, want, on * sizeof *got) == 0, "%s: int8 conv case %zu%s differs from the reference",
                      be->name, ci, nonneg ? " (input >= 0)" : "");
        for (int sg = 0; sg < a.n_in; sg++) free(pieces[sg]);
        free(qw); free(ws); free(bias); free(got); free(want);
    }
    ref->destroy(ref);
    be->destroy(be);
}
END_TEST

START_TEST(registry) {
    bzn_backend *b = (bzn_backend *)1;
    bzn_error e;
    const bzn_backend_options bad = {-3, 0};
    for (int i = 0; i < bzn_backend_count(); i++) {
        ck_assert_int_eq(bzn_backend_create(bzn_backend_name(i), &bad, &b, &e), BZN_ERR_ARG);
        ck_assert_ptr_null(b);
        ck_assert_ptr_nonnull(bzn_backend_description(i));
    }
    ck_assert_int_eq(bzn_backend_create("no-such", NULL, &b, &e), BZN_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(e.msg, "unknown backend 'no-such' (this build has: cpu, ref"), "%s", e.msg);
    ck_assert_ptr_null(bzn_backend_name(bzn_backend_count()));
    ck_assert_int_eq(bzn_backend_create(NULL, NULL, &b, &e), BZN_OK); /* the default */
    ck_assert_str_eq(b->name, bzn_backend_name(0));
    b->destroy(b);
}
END_TEST

/* ---- Winograd F(4,3) (backends/cpu/winograd.h) ---------------------------------------- */

/* A CPU backend made with BZN_WINOGRAD=value (read when the backend is made); the
 * environment is restored. */
static bzn_backend *make_cpu_wino(const char *value, int threads) {
    const char *old = getenv("BZN_WINOGRAD");
    char *saved = old ? strdup(old) : NULL;
    setenv("BZN_WINOGRAD", value, 1);
    bzn_backend *b = make_named("cpu", threads);
    if (saved) setenv("BZN_WINOGRAD", saved, 1);
    else unsetenv("BZN_WINOGRAD");
    free(saved);
    return b;
}

/* The input of a case as c->segs pieces (the last takes the rest), each its own buffer of
 * batch frames `gap` floats longer than its channels: x = fill where fill != 0, else scale
 * times a random value in [-1, 1); |x| where nonneg. Into a->in; pieces[] to free. */
static void case_input(const conv_case *c, int batch, size_t gap, float scale, float fill, int nonneg, bzn_conv_args *a,
                       float *pieces[]) {
    const size_t plane = (size_t)c->h * c->w;
    int left = c->cin;
    for (int sg = 0; sg < c->segs && left > 0; sg++) {
        const int ch = sg == c->segs - 1 ? left : (c->cin / c->segs > 0 ? c->cin / c->segs : 1);
        const size_t stride = (size_t)ch * plane + gap;
        pieces[a->n_in] = rand_buf(stride * batch);
        for (size_t i = 0; i < stride * batch; i++) {
            const float x = fill != 0.0f ? fill : scale * pieces[a->n_in][i];
            pieces[a->n_in][i] = nonneg ? fabsf(x) : x;
        }
        a->in[a->n_in] = (bzn_segment){pieces[a->n_in], ch, stride};
        a->n_in++;
        left -= ch;
    }
}

/* one 3x3 convolution (c->k, stride, dil ignored) on `be` and on the reference; returns the
 * largest difference relative to the range (max - min) of the reference's output before the
 * activation; *wino: whether `be` made Winograd weights for it */
static double wino_case(bzn_backend *be, const conv_case *c, int *wino) {
    bzn_backend *ref = make_ref();
    const int batch = c->batch ? c->batch : 1, oh = c->h + 2 * c->pad - 2, ow = c->w + 2 * c->pad - 2;
    ck_assert(oh > 0 && ow > 0);
    const size_t out_n = (size_t)c->cout * oh * ow;
    float *w = rand_buf((size_t)c->cout * c->cin * 9), *bias = rand_buf((size_t)c->cout);
    bzn_conv_args a = {.batch = batch, .in_c = c->cin, .in_h = c->h, .in_w = c->w, .out_c = c->cout, .out_h = oh,
                       .out_w = ow, .weight = w, .bias = c->bias ? bias : NULL, .k = 3, .stride = 1, .pad = c->pad,
                       .dilation = 1, .act = (bzn_act)c->act, .out_batch_stride = out_n + 3};
    float *pieces[BZN_MAX_SEGMENTS];
    case_input(c, batch, 7, 3.0f, 0.0f, 0, &a, pieces); /* a range like BlazeNeo's */
    void *wts = NULL;
    size_t wbytes = 0;
    bzn_error e;
    ck_assert_int_eq(be->weights_prepare(be, &a, &wts, &wbytes, &e), BZN_OK);
    *wino = wts && *(const uint32_t *)wts == BZN_WINO_TAG;
    if (*wino) ck_assert_uint_eq(wbytes, (size_t)BZN_WINO_POS * c->cin * c->cout * sizeof(float));
    if (wts) be->weights_release(wts);
    /* the output between sentinels, as in run_conv_case */
    const size_t guard = 29, span = a.out_batch_stride * (batch - 1) + out_n;
    float *big = malloc((span + 2 * guard) * sizeof *big), *want = malloc(span * sizeof *want);
    for (size_t i = 0; i < span + 2 * guard; i++) big[i] = 1234.5f;
    for (size_t i = 0; i < span; i++) want[i] = 1234.5f;
    backend_conv(be, &a, big, guard, span + 2 * guard);
    /* the scale: the range of the convolution before its activation (ReLU6 would clip it) */
    a.out = want;
    a.act = BZN_ACT_NONE;
    ck_assert_int_eq(ref->conv(ref, &a, NULL, NULL), BZN_OK);
    double lo = INFINITY, hi = -INFINITY, d = 0;
    for (int f = 0; f < batch; f++)
        for (size_t i = 0; i < out_n; i++) {
            const float r = want[f * a.out_batch_stride + i];
            lo = r < lo ? r : lo;
            hi = r > hi ? r : hi;
        }
    a.act = (bzn_act)c->act;
    ck_assert_int_eq(ref->conv(ref, &a, NULL, NULL), BZN_OK);
    for (size_t i = 0; i < guard; i++) {
        ck_assert_float_eq(big[i], 1234.5f);
        ck_assert_float_eq(big[guard + span + i], 1234.5f);
    }
    for (int f = 0; f < batch; f++) {
        const float *g = big + guard + f * a.out_batch_stride, *r = want + f * a.out_batch_stride;
        for (size_t i = 0; i < out_n; i++) {
            const double x = fabs((double)g[i] - r[i]);
            if (x > d || isnan(x)) d = x;
        }
        for (size_t i = out_n; f + 1 < batch && i < a.out_batch_stride; i++) ck_assert_float_eq(g[i], 1234.5f);
    }
    for (int s = 0; s < a.n_in; s++) free(pieces[s]);
    free(big);
    free(want);
    free(w);
    free(bias);
    ref->destroy(ref);
    return d / (hi > lo ? hi - lo : 1.0);
}

/* The tolerance of Winograd F(4,3) against the reference, relative to the range of the
 * output before its activation: measured at most 3.2e-6 over the cases below (the direct
 * path on the same operands: 2.9e-7; inputs uniform in [-3, 3), weights in [-1, 1)), so
 * 2e-5 leaves a margin of 6x; a wrong tap, tile or edge gives errors of the order of 1e-1. */
#define WINO_TOL 2e-5

/* odd, non-square and tiny sizes, sizes that are not multiples of 4, padding 0, 1 and 2,
 * multi-piece inputs, every activation, channel counts that are not multiples of 8, batch 2,
 * rows of more tiles than a block holds, many blocks and one; BZN_WINOGRAD=all on the CPU
 * backend at 1 thread and at 2 (where few blocks take the "shared V" path; test_ops_avx2 /
 * _scalar repeat it on the other kernels) */
START_TEST(conv_winograd_vs_reference) {
    bzn_backend *be = make_cpu_wino("all", 1 + _i);
    static const conv_case cases[] = {
        /* cin cout h w k s pad d segs act bias batch */
        {1, 1, 1, 1, 3, 1, 1, 1, 1, BZN_ACT_NONE, 1, 1},     {3, 5, 2, 3, 3, 1, 1, 1, 1, BZN_ACT_RELU, 0, 1},
        {7, 9, 4, 4, 3, 1, 0, 1, 1, BZN_ACT_NONE, 1, 1},     {5, 3, 3, 3, 3, 1, 0, 1, 2, BZN_ACT_NONE, 1, 1},
        {13, 17, 5, 7, 3, 1, 1, 1, 2, BZN_ACT_RELU6, 1, 1},  {16, 16, 11, 11, 3, 1, 1, 1, 3, BZN_ACT_RELU6, 1, 1},
        {24, 14, 22, 22, 3, 1, 1, 1, 1, BZN_ACT_RELU6, 1, 1}, {33, 20, 13, 9, 3, 1, 1, 1, 1, BZN_ACT_RELU, 0, 1},
        {32, 32, 44, 44, 3, 1, 1, 1, 4, BZN_ACT_NONE, 0, 1}, {102, 40, 22, 22, 3, 1, 1, 1, 3, BZN_ACT_RELU6, 1, 2},
        {78, 24, 45, 37, 3, 1, 1, 1, 2, BZN_ACT_RELU6, 1, 1}, {20, 12, 88, 88, 3, 1, 1, 1, 1, BZN_ACT_RELU, 1, 1},
        {40, 9, 9, 100, 3, 1, 2, 1, 1, BZN_ACT_NONE, 1, 1},  {300, 11, 11, 11, 3, 1, 1, 1, 5, BZN_ACT_RELU6, 1, 1},
        {9, 10, 6, 300, 3, 1, 1, 1, 2, BZN_ACT_RELU, 1, 1},   /* tile rows longer than a block of 48 tiles */
        {32, 24, 176, 176, 3, 1, 1, 1, 1, BZN_ACT_RELU6, 1, 1}, /* encoder.base.1's size: 42 blocks */
    };
    double worst = 0, worst_direct = 0;
    bzn_backend *direct = _i == 0 ? make_cpu_wino("0", 1) : NULL; /* for comparison, once */
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const conv_case *c = &cases[i];
        int wino;
        rng = 0x9E3779B97F4A7C15ull + i; /* the same operands for both backends */
        const double err = wino_case(be, c, &wino);
        ck_assert_msg(wino, "case %zu: no Winograd weights with BZN_WINOGRAD=all", i);
        ck_assert_msg(err < WINO_TOL, "winograd cin %d cout %d %dx%d p%d segs %d act %d batch %d: %g of the range",
                      c->cin, c->cout, c->h, c->w, c->pad, c->segs, c->act, c->batch, err);
        worst = err > worst ? err : worst;
        if (direct) {
            rng = 0x9E3779B97F4A7C15ull + i;
            const double e0 = wino_case(direct, c, &wino);
            ck_assert(!wino && e0 < WINO_TOL);
            worst_direct = e0 > worst_direct ? e0 : worst_direct;
        }
    }
    const char *isa = getenv("BZN_ISA");
    fprintf(stderr, "  Winograd F(4,3) (%s, %d threads): worst error %.2g of the output range",
            isa && *isa ? isa : bzn_isa_name(bzn_isa_best()), 1 + _i, worst);
    if (direct) {
        fprintf(stderr, " (the direct path: %.2g)", worst_direct);
        direct->destroy(direct);
    }
    fprintf(stderr, "\n");
    be->destroy(be);
}
END_TEST

/* ---- INT8 Winograd (backends/cpu/winograd_s8.h) ------------------------------------------ */

/* One INT8 3x3 stride-1 convolution on `be` and on the reference, which must agree bit for
 * bit. Weights: wfill 0 random in -127..127, else all equal to wfill; the input: random, or
 * (xfill != 0) all xfill (clipped at +-127 when quantized). Returns whether `be` made
 * Winograd weights for it. */
static int int8_wino_case(bzn_backend *be, const conv_case *c, int wfill, float xfill, int nonneg) {
    bzn_backend *ref = make_ref();
    const int batch = c->batch ? c->batch : 1, oh = c->h + 2 * c->pad - 2, ow = c->w + 2 * c->pad - 2;
    const size_t out_n = (size_t)c->cout * oh * ow, wn = (size_t)c->cout * c->cin * 9;
    int8_t *qw = malloc(wn);
    float *ws = malloc((size_t)c->cout * sizeof *ws), *bias = rand_buf((size_t)c->cout);
    for (size_t i = 0; i < wn; i++) qw[i] = (int8_t)(wfill ? wfill : (int)(frand() * 127.5f));
    for (int i = 0; i < c->cout; i++) ws[i] = 0.001f + 0.01f * (frand() + 1);
    bzn_conv_args a = {.batch = batch, .in_c = c->cin, .in_h = c->h, .in_w = c->w, .out_c = c->cout, .out_h = oh,
                       .out_w = ow, .bias = c->bias ? bias : NULL, .k = 3, .stride = 1, .pad = c->pad,
                       .dilation = 1, .act = (bzn_act)c->act, .qweight = qw, .wscale = ws, .in_scale = 0.023f,
                       .in_nonneg = nonneg, .out_batch_stride = out_n + 3};
    float *pieces[BZN_MAX_SEGMENTS];
    case_input(c, batch, 5, 4.0f, xfill, nonneg, &a, pieces); /* some values clip at +-127 */
    void *wts = NULL;
    size_t wbytes = 0;
    bzn_error e;
    ck_assert_int_eq(be->weights_prepare(be, &a, &wts, &wbytes, &e), BZN_OK);
    const int wino = wts && *(const uint32_t *)wts == BZN_WINO_S8_TAG;
    if (wino) /* [36][out_c to 4][2 ceil(in_c / 4) pairs][2] int16 */
        ck_assert_uint_eq(wbytes, (size_t)BZN_WINO_POS * ((c->cout + 3) / 4 * 4) * ((c->cin + 3) / 4 * 4) * 2);
    if (wts) be->weights_release(wts);
    const size_t span = a.out_batch_stride * (batch - 1) + out_n, guard = 17;
    float *got = malloc((span + 2 * guard) * sizeof *got), *want = malloc(span * sizeof *want);
    for (size_t i = 0; i < span + 2 * guard; i++) got[i] = 1234.5f;
    for (size_t i = 0; i < span; i++) want[i] = 1234.5f;
    backend_conv(be, &a, got, guard, span + 2 * guard);
    a.out = want;
    ck_assert_int_eq(ref->conv(ref, &a, NULL, NULL), BZN_OK);
    for (size_t i = 0; i < guard; i++) {
        ck_assert_float_eq(got[i], 1234.5f);
        ck_assert_float_eq(got[guard + span + i], 1234.5f);
    }
    for (int f = 0; f < batch; f++)
        ck_assert_msg(memcmp(got + guard + f * a.out_batch_stride, want + f * a.out_batch_stride,
                             out_n * sizeof *got) == 0,
                      "int8 3x3 cin %d cout %d %dx%d p%d segs %d batch %d (weights %d, input %g%s, Winograd %d) "
                      "differs from the reference in frame %d",
                      c->cin, c->cout, c->h, c->w, c->pad, c->segs, batch, wfill, xfill, nonneg ? ", >= 0" : "", wino, f);
    for (int sg = 0; sg < a.n_in; sg++) free(pieces[sg]);
    free(got); free(want); free(qw); free(ws); free(bias);
    ref->destroy(ref);
    return wino;
}

/* Bit for bit the reference's integers, whatever the shape: odd and tiny sizes, padding 0-2,
 * channel counts that are not multiples of 4, multi-piece inputs, batch 2, many blocks of
 * tiles (private V) and few (shared V at 2 threads), tile rows longer than a block, inputs
 * >= 0 or not; then at the edge of the proof (winograd_s8.h: |Y| < 2^25 where 128 sum |w| <
 * 2^25): 229 input channels of weights all +-127 under inputs all +-127 give sums of
 * +-33.24 million, 99% of 2^25, still by Winograd; 230 channels fail the bound and stay
 * direct. With BZN_WINOGRAD=all, on the CPU backend whose INT8 kernel is AVX2 (the only one
 * that runs it), every case is by Winograd but the last; on the others none is. */
START_TEST(conv_int8_winograd_exact) {
    bzn_backend *be = make_cpu_wino("all", 1 + _i);
    const int on = strstr(be->detail, "INT8 avx2;") != NULL;
    static const conv_case cases[] = {
        /* cin cout h w k s pad d segs act bias batch */
        {1, 1, 1, 1, 3, 1, 1, 1, 1, BZN_ACT_NONE, 1, 1},      {3, 5, 2, 3, 3, 1, 1, 1, 1, BZN_ACT_RELU, 0, 1},
        {7, 9, 4, 4, 3, 1, 0, 1, 1, BZN_ACT_NONE, 1, 1},      {13, 17, 5, 7, 3, 1, 1, 1, 2, BZN_ACT_RELU6, 1, 2},
        {16, 16, 11, 11, 3, 1, 1, 1, 3, BZN_ACT_RELU6, 1, 1}, {24, 14, 22, 22, 3, 1, 1, 1, 1, BZN_ACT_RELU6, 1, 1},
        {33, 21, 13, 9, 3, 1, 2, 1, 1, BZN_ACT_RELU, 0, 1},   {64, 32, 44, 44, 3, 1, 1, 1, 4, BZN_ACT_NONE, 0, 1},
        {102, 40, 22, 22, 3, 1, 1, 1, 3, BZN_ACT_RELU6, 1, 1}, {78, 24, 45, 37, 3, 1, 1, 1, 2, BZN_ACT_RELU6, 1, 1},
        {20, 12, 88, 88, 3, 1, 1, 1, 1, BZN_ACT_RELU, 1, 1},  {9, 10, 6, 300, 3, 1, 1, 1, 2, BZN_ACT_RELU, 1, 1},
    };
    int n = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int nonneg = 0; nonneg < 2; nonneg++, n++)
            ck_assert_int_eq(int8_wino_case(be, &cases[i], 0, 0.0f, nonneg), on);
    const conv_case edge = {229, 8, 9, 10, 3, 1, 1, 1, 2, BZN_ACT_NONE, 1, 1};
    for (int sign = -1; sign <= 1; sign += 2)
        for (int xs = -1; xs <= 1; xs += 2, n++) ck_assert_int_eq(int8_wino_case(be, &edge, 127 * sign, 50.0f * xs, 0), on);
    const conv_case past = {230, 8, 9, 10, 3, 1, 1, 1, 1, BZN_ACT_NONE, 1, 1};
    ck_assert_int_eq(int8_wino_case(be, &past, 127, 50.0f, 0), 0);
    fprintf(stderr, "  INT8 Winograd (%s, %d threads): %d cases + 1 past the bound, bit-exact%s\n", be->detail, 1 + _i,
            n, on ? "" : " (by the direct kernel: Winograd runs on the AVX2 one)");
    be->destroy(be);
}
END_TEST

/* The rule (backends/cpu/cpu.c: wino_channels_pay, wino_size_pays), seen through
 * weights_prepare, which applies it whole when it is given the layer's geometry: Winograd
 * weights for 3x3, stride-1, dilation-1 FP32 convolutions with 8 or more channels in and out
 * at sizes where the block kernel does at least 2x fewer multiply-adds (18x18 up at pad 1);
 * never for dilated (RFB's d = 3, 5), strided, 1x1 / 5x5 or BZN_WINOGRAD=0. INT8 the same,
 * where the INT8 kernel is AVX2 (winograd_s8.h). Without the geometry (the engine's weight
 * cache) the channel half decides alone. */
static int wino_chosen(bzn_backend *be, int k, int stride, int dil, int cin, int cout, int h, int w, int geometry,
                       int int8) {
    float *wt = rand_buf((size_t)cout * cin * k * k);
    int8_t *qw = calloc((size_t)cout * cin * k * k, 1);
    float *ws = rand_buf((size_t)cout);
    const int pad = dil * (k / 2);
    bzn_conv_args a = {.batch = 1, .n_in = 1, .in_c = cin, .out_c = cout, .weight = wt, .k = k, .stride = stride,
                       .pad = pad, .dilation = dil};
    if (geometry) {
        a.in_h = h, a.in_w = w;
        a.out_h = bzn_out_size(h, k, stride, pad, dil), a.out_w = bzn_out_size(w, k, stride, pad, dil);
    } else {
        a.stride = a.dilation = a.pad = 0; /* what the weight cache gives: channels and k */
    }
    if (int8) a.weight = NULL, a.qweight = qw, a.wscale = ws;
    void *wts = NULL;
    size_t bytes = 0;
    bzn_error e;
    ck_assert_int_eq(be->weights_prepare(be, &a, &wts, &bytes, &e), BZN_OK);
    const int wino = wts && *(const uint32_t *)wts == (int8 ? BZN_WINO_S8_TAG : BZN_WINO_TAG);
    if (wts) be->weights_release(wts);
    if (!wts) ck_assert_uint_eq(bytes, 0);
    free(wt);
    free(qw);
    free(ws);
    return wino;
}

START_TEST(conv_winograd_rule) {
    bzn_backend *be = make_cpu_wino("1", 1), *off = make_cpu_wino("0", 1), *all = make_cpu_wino("all", 1);
    bzn_backend *dflt = make_named("cpu", 1); /* BZN_WINOGRAD as ctest leaves it: unset */
    /* h, w, Winograd? */
    static const int sizes[][3] = {{176, 176, 1}, {88, 88, 1}, {44, 44, 1}, {22, 22, 1}, {18, 18, 1}, {16, 16, 0},
                                   {14, 14, 0},   {11, 11, 0}, {11, 44, 1}, {12, 90, 1}, {3, 3, 0}};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        const int h = sizes[i][0], w = sizes[i][1], want = sizes[i][2];
        ck_assert_msg(wino_chosen(be, 3, 1, 1, 64, 32, h, w, 1, 0) == want, "%dx%d: Winograd %s", h, w,
                      want ? "expected" : "not expected");
        if (!getenv("BZN_WINOGRAD")) ck_assert_int_eq(wino_chosen(dflt, 3, 1, 1, 64, 32, h, w, 1, 0), want);
        ck_assert(!wino_chosen(off, 3, 1, 1, 64, 32, h, w, 1, 0));
        ck_assert(wino_chosen(all, 3, 1, 1, 64, 32, h, w, 1, 0)); /* every eligible shape */
    }
    ck_assert(wino_chosen(be, 3, 1, 1, 8, 8, 44, 44, 1, 0));   /* 8 channels in and out */
    ck_assert(!wino_chosen(be, 3, 1, 1, 7, 64, 44, 44, 1, 0)); /* fewer: no */
    ck_assert(!wino_chosen(be, 3, 1, 1, 32, 3, 44, 44, 1, 0)); /* (BlazeNeo's head) */
    ck_assert(!wino_chosen(be, 3, 1, 1, 3, 32, 88, 88, 1, 0));
    static const int other[][3] = {{3, 1, 3}, {3, 1, 5}, {3, 2, 1}, {1, 1, 1}, {5, 1, 1}}; /* k, stride, dilation */
    for (size_t i = 0; i < sizeof other / sizeof *other; i++) {
        ck_assert(!wino_chosen(be, other[i][0], other[i][1], other[i][2], 32, 32, 44, 44, 1, 0));
        ck_assert(!wino_chosen(all, other[i][0], other[i][1], other[i][2], 32, 32, 44, 44, 1, 0));
    }
    /* INT8: by Winograd on the AVX2 kernel, by the same rule; else its own packed weights */
    const int int8_on = strstr(be->detail, "INT8 avx2;") != NULL;
    ck_assert_int_eq(wino_chosen(all, 3, 1, 1, 32, 32, 44, 44, 1, 1), int8_on);
    ck_assert_int_eq(wino_chosen(be, 3, 1, 1, 32, 32, 44, 44, 1, 1), int8_on);
    ck_assert_int_eq(wino_chosen(be, 3, 1, 1, 32, 32, 0, 0, 0, 1), int8_on);
    ck_assert(!wino_chosen(be, 3, 1, 1, 32, 32, 11, 11, 1, 1));
    ck_assert(!wino_chosen(be, 3, 2, 1, 32, 32, 44, 44, 1, 1));
    ck_assert(!wino_chosen(be, 3, 1, 3, 32, 32, 44, 44, 1, 1));
    ck_assert(!wino_chosen(off, 3, 1, 1, 32, 32, 44, 44, 1, 1));
    /* the weight cache's call (no geometry): channels decide; conv_prepare checks the rest */
    ck_assert(wino_chosen(be, 3, 1, 1, 64, 32, 0, 0, 0, 0));
    ck_assert(!wino_chosen(be, 3, 1, 1, 4, 32, 0, 0, 0, 0));
    ck_assert(!wino_chosen(be, 1, 1, 1, 64, 32, 0, 0, 0, 0));
    ck_assert(!wino_chosen(off, 3, 1, 1, 64, 32, 0, 0, 0, 0));
    be->destroy(be);
    off->destroy(off);
    all->destroy(all);
    dflt->destroy(dflt);
    /* an unknown value is refused, as BZN_ISA's are */
    const char *old = getenv("BZN_WINOGRAD");
    char *saved = old ? strdup(old) : NULL;
    setenv("BZN_WINOGRAD", "yes", 1);
    bzn_backend *b = NULL;
    bzn_error e;
    const bzn_backend_options o = {1, 0};
    ck_assert_int_eq(bzn_backend_create("cpu", &o, &b, &e), BZN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "BZN_WINOGRAD=yes"));
    if (saved) setenv("BZN_WINOGRAD", saved, 1);
    else unsetenv("BZN_WINOGRAD");
    free(saved);
}
END_TEST

/* BZN_WINOGRAD=0 is the direct path as it was: no prepared FP32 weights, and on the AVX2 /
 * AVX-512 kernels the floats of its definition (gemm_f32.h: one fused multiply-add per term,
 * k = (input channel, ky, kx) in order, then + bias, then the activation) bit for bit; with
 * Winograd on, a layer the rule leaves direct (11x11) is bit for bit the same as with it off. */
START_TEST(conv_winograd_off_is_direct) {
    bzn_backend *off = make_cpu_wino("0", 1 + _i), *on = make_cpu_wino("1", 1 + _i);
    const int exact = bzn_isa_f32_kernel(bzn_isa_best()) != BZN_F32_SGEMM && bzn_isa_parse(getenv("BZN_ISA")) != 0;
    static const conv_case cases[] = {
        {24, 14, 22, 22, 3, 1, 1, 1, 2, BZN_ACT_RELU6, 1, 1}, {13, 9, 11, 11, 3, 1, 1, 1, 1, BZN_ACT_RELU, 0, 1},
        {40, 16, 45, 37, 3, 1, 1, 1, 3, BZN_ACT_NONE, 1, 1}, {64, 20, 11, 11, 3, 1, 1, 1, 1, BZN_ACT_RELU6, 1, 1},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        const conv_case *c = &cases[ci];
        const int oh = c->h, ow = c->w;
        const size_t plane = (size_t)c->h * c->w, on_n = (size_t)c->cout * oh * ow;
        float *w = rand_buf((size_t)c->cout * c->cin * 9), *bias = rand_buf((size_t)c->cout);
        bzn_conv_args a = {.batch = 1, .in_c = c->cin, .in_h = c->h, .in_w = c->w, .out_c = c->cout, .out_h = oh,
                           .out_w = ow, .weight = w, .bias = c->bias ? bias : NULL, .k = 3, .stride = 1, .pad = 1,
                           .dilation = 1, .act = (bzn_act)c->act};
        float *pieces[BZN_MAX_SEGMENTS];
        int left = c->cin;
        for (int sg = 0; sg < c->segs && left > 0; sg++) {
            const int ch = sg == c->segs - 1 ? left : c->cin / c->segs;
            pieces[a.n_in] = rand_buf((size_t)ch * plane);
            a.in[a.n_in] = (bzn_segment){pieces[a.n_in], ch, 0};
            a.n_in++;
            left -= ch;
        }
        void *wts = (void *)1;
        size_t bytes = 1;
        bzn_error e;
        ck_assert_int_eq(off->weights_prepare(off, &a, &wts, &bytes, &e), BZN_OK);
        ck_assert_ptr_null(wts); /* FP32: read where they lie, as before */
        ck_assert_uint_eq(bytes, 0);
        float *got = malloc(on_n * sizeof *got), *want = malloc(on_n * sizeof *want), *auto_ = malloc(on_n * sizeof *auto_);
        backend_conv(off, &a, got, 0, on_n);
        backend_conv(on, &a, auto_, 0, on_n);
        if (oh < 18) /* the rule leaves it direct: the same code, the same floats */
            ck_assert_msg(memcmp(got, auto_, on_n * sizeof *got) == 0, "case %zu: BZN_WINOGRAD=1 differs from 0", ci);
        if (exact) {
            for (int oc = 0; oc < c->cout; oc++)
                for (int oy = 0; oy < oh; oy++)
                    for (int ox = 0; ox < ow; ox++) {
                        float sum = 0;
                        int ch0 = 0;
                        for (int sg = 0; sg < a.n_in; sg++) {
                            for (int ic = 0; ic < a.in[sg].channels; ic++)
                                for (int ky = 0; ky < 3; ky++)
                                    for (int kx = 0; kx < 3; kx++) {
                                        const int iy = oy - 1 + ky, ix = ox - 1 + kx;
                                        const float x = iy >= 0 && iy < c->h && ix >= 0 && ix < c->w
                                                            ? a.in[sg].data[(size_t)ic * plane + (size_t)iy * c->w + ix]
                                                            : 0.0f;
                                        sum = fmaf(w[(((size_t)oc * c->cin + ch0 + ic) * 3 + ky) * 3 + kx], x, sum);
                                    }
                            ch0 += a.in[sg].channels;
                        }
                        want[((size_t)oc * oh + oy) * ow + ox] = bzn_activate(sum + (c->bias ? bias[oc] : 0.0f), a.act);
                    }
            ck_assert_msg(memcmp(got, want, on_n * sizeof *got) == 0, "case %zu: BZN_WINOGRAD=0 is not the direct path",
                          ci);
        }
        for (int sg = 0; sg < a.n_in; sg++) free(pieces[sg]);
        free(w);
        free(bias);
        free(got);
        free(want);
        free(auto_);
    }
    off->destroy(off);
    on->destroy(on);
}
END_TEST

int main(void) {
    /* BZN_ISA forces a kernel path: one this CPU lacks cannot be tested here */
    const char *isa = getenv("BZN_ISA");
    if (isa && *isa && bzn_isa_parse(isa) >= 0 && !bzn_isa_runs((bzn_isa)bzn_isa_parse(isa))) {
        fprintf(stderr, "test_ops: SKIPPED: BZN_ISA=%s, which this CPU lacks (its best: %s)\n", isa, bzn_isa_name(bzn_isa_best()));
        return TU_SKIP;
    }
    find_host_backends();
    Suite *s = suite_create("ops");
    TCase *tc = tu_case(s, "reference", 60);
    tcase_add_test(tc, ref_conv_known);
    tcase_add_test(tc, ref_upsample_known);
    tcase_add_test(tc, ref_maxpool_known);
    tcase_add_test(tc, registry);
    tc = tu_case(s, "backends-vs-reference", 900);
    tcase_add_loop_test(tc, conv_sweep, 0, n_configs());
    tcase_add_loop_test(tc, conv_blazeneo_shapes, 0, n_host_backends);
    tcase_add_loop_test(tc, pool_and_upsample_sweep, 0, n_configs());
    tcase_add_test(tc, s8_gemm_kernels_exact);
    tcase_add_test(tc, s8_quantize4_exact);
    tcase_add_test(tc, f32_block_kernels_exact);
    tcase_add_loop_test(tc, conv_int8_sweep, 0, n_configs());
    tcase_add_loop_test(tc, conv_winograd_vs_reference, 0, 2);
    tcase_add_test(tc, conv_winograd_rule);
    tcase_add_loop_test(tc, conv_int8_winograd_exact, 0, 2);
    tcase_add_loop_test(tc, conv_winograd_off_is_direct, 0, 2);
    return tu_run_suite(s);
}
