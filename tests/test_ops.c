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
#include "gemm_s8.h"
#include "testutil.h"

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

/* loop index -> (backend of the registry, threads 1 or 2) */
static int n_configs(void) { return 2 * bzn_backend_count(); }
static bzn_backend *make_config(int i) { return make_named(bzn_backend_name(i / 2), 1 + i % 2); }

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
    bzn_backend *be = make_named(bzn_backend_name(_i), 2);
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

/* ---- INT8 ---------------------------------------------------------------------------- */

/* every int8 GEMM kernel the CPU runs gives exactly the integers of the definition, on
 * every block of C, with B's k-groups scattered (goff in reverse order, with gaps) */
START_TEST(s8_gemm_kernels_exact) {
    static const int ms[] = {1, 3, 8, 14, 33}, ns[] = {1, 31, 32, 33, 100}, ks[] = {1, 3, 4, 27, 130, 577};
    const bzn_s8_kernel best = bzn_s8_best_kernel();
    int checked = 0;
    for (size_t mi = 0; mi < 5; mi++)
        for (size_t ni = 0; ni < 5; ni++)
            for (size_t ki = 0; ki < 6; ki++) {
                const int m = ms[mi], n = ns[ni], k = ks[ki], kp = bzn_s8_kpad(k), kg = kp / 4;
                const int tiles = (n + BZN_S8_NR - 1) / BZN_S8_NR, gbytes = tiles * BZN_S8_NR * 4 + 64;
                int8_t *a = malloc((size_t)m * k), *ap = malloc((size_t)bzn_s8_mpad(m) * kp);
                uint8_t *b = malloc((size_t)k * n), *bp = malloc((size_t)kg * gbytes);
                int32_t *rs = malloc((size_t)m * sizeof *rs);
                size_t *goff = malloc((size_t)kg * sizeof *goff);
                for (int i = 0; i < m * k; i++) a[i] = (int8_t)(frand() * 127.5f);
                for (int i = 0; i < k * n; i++) b[i] = (uint8_t)(128 + (int)(frand() * 127.5f));
                /* extreme values too: the AVX2 path must not saturate */
                a[0] = -127;
                b[0] = 1;
                if (k * n > 1) b[1] = 255;
                bzn_s8_pack_a(a, m, k, ap, rs);
                memset(bp, 128, (size_t)kg * gbytes);
                for (int g = 0; g < kg; g++) goff[g] = (size_t)(kg - 1 - g) * gbytes + 64;
                for (int r = 0; r < k; r++)
                    for (int j = 0; j < n; j++) bp[goff[r / 4] + (size_t)j * 4 + r % 4] = b[(size_t)r * n + j];
                for (int kern = BZN_S8_REF; kern <= (int)best; kern++) {
                    for (int t = 0; t < tiles; t++)
                        for (int mb = 0; mb < bzn_s8_mpad(m) / BZN_S8_MR; mb++) {
                            int32_t c[BZN_S8_MR][BZN_S8_NR];
                            const int rows = m - mb * BZN_S8_MR < BZN_S8_MR ? m - mb * BZN_S8_MR : BZN_S8_MR;
                            bzn_s8_block((bzn_s8_kernel)kern, kg, ap + (size_t)mb * kg * BZN_S8_MR * 4,
                                         rs + mb * BZN_S8_MR, rows, bp + (size_t)t * BZN_S8_NR * 4, goff, c);
                            for (int r = 0; r < rows; r++)
                                for (int jj = 0; jj < BZN_S8_NR && t * BZN_S8_NR + jj < n; jj++) {
                                    const int i = mb * BZN_S8_MR + r, j = t * BZN_S8_NR + jj;
                                    int32_t want = 0;
                                    for (int x = 0; x < k; x++)
                                        want += (int32_t)a[i * k + x] * ((int32_t)b[(size_t)x * n + j] - 128);
                                    ck_assert_msg(c[r][jj] == want, "%s m%d n%d k%d at (%d,%d): %d != %d",
                                                  bzn_s8_kernel_name((bzn_s8_kernel)kern), m, n, k, i, j, c[r][jj], want);
                                }
                        }
                    checked++;
                }
                free(a); free(ap); free(b); free(bp); free(rs); free(goff);
            }
    fprintf(stderr, "  int8 GEMM: %d checks, best kernel here: %s\n", checked, bzn_s8_kernel_name(best));
}
END_TEST

/* int8 convolution: the CPU backend equals the reference bit for bit */
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
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
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
                           .dilation = c->dil, .act = (bzn_act)c->act, .qweight = qw, .wscale = ws, .in_scale = 0.023f};
        float *pieces[BZN_MAX_SEGMENTS];
        int left = c->cin;
        for (int sg = 0; sg < c->segs && left > 0; sg++) {
            int ch = sg == c->segs - 1 ? left : (c->cin / c->segs > 0 ? c->cin / c->segs : 1);
            pieces[a.n_in] = rand_buf((size_t)ch * plane);
            for (size_t i = 0; i < (size_t)ch * plane; i++) pieces[a.n_in][i] *= 4; /* some values clip at +-127 */
            a.in[a.n_in] = (bzn_segment){pieces[a.n_in], ch, 0};
            a.n_in++;
            left -= ch;
        }
        float *got = malloc(on * sizeof *got), *want = malloc(on * sizeof *want);
        a.out = got;
        backend_conv(be, &a, got, 0, on);
        a.out = want;
        ck_assert_int_eq(ref->conv(ref, &a, NULL, NULL), BZN_OK);
        ck_assert_msg(memcmp(got, want, on * sizeof *got) == 0, "%s: int8 conv case %zu differs from the reference",
                      be->name, ci);
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

int main(void) {
    Suite *s = suite_create("ops");
    TCase *tc = tu_case(s, "reference", 60);
    tcase_add_test(tc, ref_conv_known);
    tcase_add_test(tc, ref_upsample_known);
    tcase_add_test(tc, ref_maxpool_known);
    tcase_add_test(tc, registry);
    tc = tu_case(s, "backends-vs-reference", 900);
    tcase_add_loop_test(tc, conv_sweep, 0, n_configs());
    tcase_add_loop_test(tc, conv_blazeneo_shapes, 0, bzn_backend_count());
    tcase_add_loop_test(tc, pool_and_upsample_sweep, 0, n_configs());
    tcase_add_test(tc, s8_gemm_kernels_exact);
    tcase_add_loop_test(tc, conv_int8_sweep, 0, n_configs());
    return tu_run_suite(s);
}
