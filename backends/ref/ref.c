/*
 * ref.c - the reference backend: the plainest possible loops, written to be obviously
 * right rather than fast. Every other backend's operations are tested against these.
 */
#include <math.h>
#include <stdlib.h>

#include "backend.h"
#include "error.h"

/* channel c of the (virtually concatenated) input */
static const float *ref_in_channel(const bzn_conv_args *a, int c) {
    for (int s = 0; s < a->n_in; s++) {
        if (c < a->in[s].channels) return a->in[s].data + (size_t)c * a->in_h * a->in_w;
        c -= a->in[s].channels;
    }
    return NULL; /* unreachable for consistent arguments */
}

static size_t ref_conv_scratch(bzn_backend *b, const bzn_conv_args *a) {
    (void)b;
    (void)a;
    return 0;
}

/* INT8 hand-offs: the reference's int8 layout is the plain one, [C][H][W] int8 values */
static size_t ref_conv_qin_bytes(bzn_backend *b, const bzn_conv_args *a) {
    (void)b;
    return (size_t)a->in_c * a->in_h * a->in_w;
}

/* One output value per (oc, oy, ox), summing over every input channel and kernel tap inside
 * the image. FP32: double sums of float products, bias first. INT8: the products of the
 * quantized input and weights (exact integers, also in a double), then the float epilogue
 * acc * in_scale * wscale[oc] + bias. */
static void ref_conv1(void *ctx, const bzn_conv_args *a, void *scratch) {
    (void)ctx;
    (void)scratch;
    const int k = a->k, int8 = a->qweight != NULL;
    const float inv = int8 ? 1.0f / a->in_scale : 0.0f;
    for (int oc = 0; oc < a->out_c; oc++) {
        const float bias = a->bias ? a->bias[oc] : 0.0f;
        for (int oy = 0; oy < a->out_h; oy++)
            for (int ox = 0; ox < a->out_w; ox++) {
                double acc = int8 ? 0.0 : bias;
                for (int ic = 0; ic < a->in_c; ic++) {
                    const float *x = ref_in_channel(a, ic);
                    const size_t w0 = ((size_t)oc * a->in_c + ic) * k * k;
                    for (int ky = 0; ky < k; ky++) {
                        int iy = oy * a->stride - a->pad + ky * a->dilation;
                        if (iy < 0 || iy >= a->in_h) continue;
                        for (int kx = 0; kx < k; kx++) {
                            int ix = ox * a->stride - a->pad + kx * a->dilation;
                            if (ix < 0 || ix >= a->in_w) continue;
                            const size_t xi = (size_t)iy * a->in_w + ix, wi = w0 + ky * k + kx;
                            if (!int8)
                                acc += (double)a->weight[wi] * x[xi];
                            else if (a->in_q) /* handed over already quantized */
                                acc += (double)a->qweight[wi] *
                                       ((const int8_t *)a->in_q)[(size_t)ic * a->in_h * a->in_w + xi];
                            else
                                acc += (double)a->qweight[wi] * bzn_quantize(x[xi], inv);
                        }
                    }
                }
                const float y = bzn_activate(int8 ? (float)acc * (a->in_scale * a->wscale[oc]) + bias : (float)acc, a->act);
                const size_t oi = ((size_t)oc * a->out_h + oy) * a->out_w + ox;
                if (a->out_q)
                    ((int8_t *)a->out_q)[oi] = (int8_t)bzn_quantize(y, 1.0f / a->next->in_scale);
                else
                    a->out[oi] = y;
            }
    }
}

static void ref_maxpool1(void *ctx, const bzn_pool_args *a) {
    (void)ctx;
    for (int c = 0; c < a->c; c++)
        for (int oy = 0; oy < a->out_h; oy++)
            for (int ox = 0; ox < a->out_w; ox++) {
                float m = -INFINITY;
                for (int ky = 0; ky < a->k; ky++)
                    for (int kx = 0; kx < a->k; kx++) {
                        int iy = oy * a->stride - a->pad + ky, ix = ox * a->stride - a->pad + kx;
                        if (iy < 0 || iy >= a->in_h || ix < 0 || ix >= a->in_w) continue;
                        float v = a->in[((size_t)c * a->in_h + iy) * a->in_w + ix];
                        if (v > m || isnan(v)) m = v;
                    }
                a->out[((size_t)c * a->out_h + oy) * a->out_w + ox] = m;
            }
}

/* PyTorch's source index for bilinear, align_corners=False: (dst + 0.5) / f - 0.5, >= 0 */
static void ref_src_index(int dst, int factor, int in, int *i0, int *i1, float *l1) {
    float scale = 1.0f / (float)factor;
    float src = scale * ((float)dst + 0.5f) - 0.5f;
    if (src < 0) src = 0;
    int i = (int)src;
    *i0 = i;
    *i1 = i < in - 1 ? i + 1 : i;
    *l1 = src - (float)i;
}

static void ref_upsample1(void *ctx, const bzn_upsample_args *a) {
    (void)ctx;
    int oh = a->in_h * a->factor, ow = a->in_w * a->factor;
    for (int c = 0; c < a->c; c++) {
        const float *x = a->in + (size_t)c * a->in_h * a->in_w;
        for (int oy = 0; oy < oh; oy++) {
            int y0, y1;
            float ly;
            ref_src_index(oy, a->factor, a->in_h, &y0, &y1, &ly);
            for (int ox = 0; ox < ow; ox++) {
                int x0, x1;
                float lx;
                ref_src_index(ox, a->factor, a->in_w, &x0, &x1, &lx);
                float top = (1 - lx) * x[y0 * a->in_w + x0] + lx * x[y0 * a->in_w + x1];
                float bot = (1 - lx) * x[y1 * a->in_w + x0] + lx * x[y1 * a->in_w + x1];
                a->out[((size_t)c * oh + oy) * ow + ox] = (1 - ly) * top + ly * bot;
            }
        }
    }
}

/* batches: frame by frame */
static bzn_status ref_conv(bzn_backend *b, const bzn_conv_args *a, void *scratch, bzn_error *err) {
    (void)err;
    return bzn_conv_frames(b, a, scratch, ref_conv1);
}
static bzn_status ref_maxpool(bzn_backend *b, const bzn_pool_args *a, bzn_error *err) {
    (void)err;
    return bzn_pool_frames(b, a, ref_maxpool1);
}
static bzn_status ref_upsample(bzn_backend *b, const bzn_upsample_args *a, bzn_error *err) {
    (void)err;
    return bzn_upsample_frames(b, a, ref_upsample1);
}

static bzn_status ref_timers(bzn_backend *b, int n, bzn_error *err) { return bzn_host_clock_init(b->ctx, n, err); }
static bzn_status ref_mark(bzn_backend *b, int i, bzn_error *err) { return bzn_host_clock_mark(b->ctx, i, err); }
static bzn_status ref_elapsed(bzn_backend *b, int from, int to, double *ms, bzn_error *err) {
    return bzn_host_clock_elapsed(b->ctx, from, to, ms, err);
}

static void ref_destroy(bzn_backend *b) {
    if (!b) return;
    bzn_host_clock_free(b->ctx);
    free(b->ctx);
    free(b);
}

bzn_status bzn_backend_ref_create(const bzn_backend_options *opt, bzn_backend **out, bzn_error *err) {
    (void)opt; /* one thread, one device */
    bzn_backend *b = calloc(1, sizeof *b);
    bzn_host_clock *clock = calloc(1, sizeof *clock);
    if (!b || !clock) {
        free(b);
        free(clock);
        return bzn_fail(err, BZN_ERR_NOMEM, "out of memory creating the reference backend");
    }
    b->name = "ref";
    b->ctx = clock;
    b->host_memory = 1;
    b->threads = 1;
    b->alloc = bzn_host_alloc;
    b->free = bzn_host_free;
    b->upload = bzn_host_copy;
    b->download = bzn_host_copy;
    b->conv_scratch = ref_conv_scratch;
    b->conv = ref_conv;
    b->conv_qin_bytes = ref_conv_qin_bytes;
    b->maxpool = ref_maxpool;
    b->upsample = ref_upsample;
    b->timers = ref_timers;
    b->mark = ref_mark;
    b->elapsed_ms = ref_elapsed;
    b->destroy = ref_destroy;
    *out = b;
    return BZN_OK;
}
