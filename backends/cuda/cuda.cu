/*
 * cuda.cu - the CUDA backend: the engine's operations (backend.h) on one NVIDIA GPU, with
 * kernels written here (conv.cu, pool.cu, image.cu) and nothing beyond the CUDA runtime.
 *
 *   - Memory is the device's (host_memory = 0): the arena and scratch are cudaMalloc'd once
 *     per context; uploads and downloads go through pinned host memory.
 *   - One stream per context (each context has its own backend instance). Every operation
 *     is enqueued on it; the engine waits with synchronize().
 *   - run(): the whole plan is captured once into a CUDA graph, then replayed per frame
 *     (one launch from the host instead of one per layer). A profile (timers) runs the
 *     operations one by one between events instead.
 *   - Weights: prepared once per model (weights_prepare) into the A matrix of the implicit
 *     GEMM (kernels.h), in the precision's own type, in device memory shared by contexts.
 *   - preprocess(), count_nonfinite(), class_map(): only uint8 crosses PCIe - the frame's
 *     pixels in, the class map at the frame's size out; the resize, normalisation,
 *     finiteness check and argmax run on the GPU (image.cu). The logits are downloaded
 *     only when a caller asks for them.
 *   - Without a GPU or a driver every call fails with the runtime's own error, which the
 *     backend's constructor turns into a message (error 35, cudaErrorInsufficientDriver, on a
 *     machine with no NVIDIA driver); nothing crashes.
 *
 * The same source compiles for the CPU emulator (BZN_CUDA_EMU, tests/cudaemu), where the
 * constructor is bzn_backend_cudaemu_create, so the whole backend is tested without a GPU.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

extern "C" {
#include "error.h"
#include "f16.h"
#include "resize.h"
}

#ifdef BZN_CUDA_EMU
#define BZN_CUDA_CREATE bzn_backend_cudaemu_create
#define BZN_CUDA_NAME "cudaemu"
#else
#define BZN_CUDA_CREATE bzn_backend_cuda_create
#define BZN_CUDA_NAME "cuda"
#endif

extern "C" bzn_status BZN_CUDA_CREATE(const bzn_backend_options *opt, bzn_backend **out, bzn_error *err);

namespace {

using namespace bzn_cuda;

/* the weights of one convolution on the device (self-contained: freed without a backend) */
struct weights {
    int prec, device;
    int M, K, Mpad, Kpad;
    void *a;       /* the A matrix (kernels.h) */
    float *bias;   /* [M] or NULL */
    float *wscale; /* INT8: [Mpad] */
};

struct ctx {
    int device;
    cudaStream_t stream;
    char detail[192];
    /* pinned staging for uploads and downloads */
    void *pinned;
    size_t pinned_bytes;
    /* the captured plan */
    cudaGraphExec_t graph;
    const bzn_plan *graph_plan;
    int use_graph;
    /* timers */
    cudaEvent_t *events;
    int n_events;
    /* preprocess: the frame, the horizontal pass, and the resize plans of the last geometry */
    uint8_t *frame;
    size_t frame_bytes;
    uint8_t *tmp;
    size_t tmp_bytes;
    int geo[4]; /* sw, sh, dw, dh */
    void *plans;
    ResizeAxis px, py;
    /* post-processing: the nearest-neighbour tables, the class map, a counter */
    void *post;
    size_t post_bytes;
};

ctx *ctx_of(bzn_backend *b) { return (ctx *)b->ctx; }

/* The runtime's words for a failure, with what to do about the usual ones. */
bzn_status fail(bzn_error *err, cudaError_t e, const char *what) {
    const char *hint = "";
    if (e == cudaErrorInsufficientDriver)
        hint = " - this machine has no NVIDIA driver new enough for the CUDA runtime (no GPU?); use -b cpu";
    else if (e == cudaErrorNoDevice)
        hint = " - no CUDA-capable GPU is visible (CUDA_VISIBLE_DEVICES?); use -b cpu";
    else if (e == cudaErrorMemoryAllocation)
        hint = " - out of GPU memory";
    return bzn_fail(err, e == cudaErrorMemoryAllocation ? BZN_ERR_NOMEM : BZN_ERR_BACKEND,
                    "%s: %s: %s (CUDA error %d)%s", what, cudaGetErrorName(e), cudaGetErrorString(e), (int)e, hint);
}
#define CK(call, what)                                                                                                 \
    do {                                                                                                               \
        cudaError_t e_ = (call);                                                                                       \
        if (e_ != cudaSuccess) return fail(err, e_, what);                                                             \
    } while (0)

bzn_status set_device(ctx *c, bzn_error *err) {
    CK(cudaSetDevice(c->device), "cuda: selecting the device");
    return BZN_OK;
}

/* pinned staging of at least n bytes */
bzn_status staging(ctx *c, size_t n, bzn_error *err) {
    if (n <= c->pinned_bytes) return BZN_OK;
    if (c->pinned) cudaFreeHost(c->pinned);
    c->pinned = NULL;
    c->pinned_bytes = 0;
    CK(cudaMallocHost(&c->pinned, n), "cuda: pinned host memory");
    c->pinned_bytes = n;
    return BZN_OK;
}

/* device memory of at least n bytes, grown on demand (preprocess buffers) */
bzn_status grow(void **p, size_t *have, size_t n, bzn_error *err) {
    if (n <= *have) return BZN_OK;
    if (*p) cudaFree(*p);
    *p = NULL;
    *have = 0;
    CK(cudaMalloc(p, n), "cuda: device memory");
    *have = n;
    return BZN_OK;
}

/* ---- memory ---- */

bzn_status b_alloc(bzn_backend *b, size_t bytes, void **mem, bzn_error *err) {
    *mem = NULL;
    if (set_device(ctx_of(b), err)) return BZN_ERR_BACKEND;
    CK(cudaMalloc(mem, bytes ? bytes : 1), "cuda: allocating device memory");
    cudaError_t e = cudaMemsetAsync(*mem, 0, bytes, ctx_of(b)->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(ctx_of(b)->stream);
    if (e != cudaSuccess) {
        cudaFree(*mem);
        *mem = NULL;
        return fail(err, e, "cuda: clearing device memory");
    }
    return BZN_OK;
}

void b_free(bzn_backend *b, void *mem) {
    cudaSetDevice(ctx_of(b)->device);
    cudaFree(mem);
}

bzn_status b_upload(bzn_backend *b, void *dst, const void *src, size_t bytes, bzn_error *err) {
    ctx *c = ctx_of(b);
    bzn_status s = set_device(c, err);
    if (s == BZN_OK) s = staging(c, bytes, err);
    if (s != BZN_OK) return s;
    memcpy(c->pinned, src, bytes);
    CK(cudaMemcpyAsync(dst, c->pinned, bytes, cudaMemcpyHostToDevice, c->stream), "cuda: upload");
    CK(cudaStreamSynchronize(c->stream), "cuda: upload");
    return BZN_OK;
}

bzn_status b_download(bzn_backend *b, void *dst, const void *src, size_t bytes, bzn_error *err) {
    ctx *c = ctx_of(b);
    bzn_status s = set_device(c, err);
    if (s == BZN_OK) s = staging(c, bytes, err);
    if (s != BZN_OK) return s;
    CK(cudaMemcpyAsync(c->pinned, src, bytes, cudaMemcpyDeviceToHost, c->stream), "cuda: download");
    CK(cudaStreamSynchronize(c->stream), "cuda: download (a kernel before it may have failed)");
    memcpy(dst, c->pinned, bytes);
    return BZN_OK;
}

/* ---- weights ---- */

void release_weights(void *p) {
    weights *w = (weights *)p;
    if (!w) return;
    cudaSetDevice(w->device);
    cudaFree(w->a);
    cudaFree(w->bias);
    cudaFree(w->wscale);
    free(w);
}

size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

/* the kernel's precision for a convolution */
int prec_of(const bzn_conv_args *a) {
    return a->qweight ? PREC_S8 : a->math == BZN_PRECISION_FP16 ? PREC_F16 : a->math == BZN_PRECISION_TF32 ? PREC_TF32
                                                                                                       : PREC_F32;
}

/* a float rounded to TF32 on the host: cvt.rna.tf32.f32's rounding (ties away from zero) */
float tf32_round(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
    memcpy(&x, &u, 4);
    return x;
}

/* a host buffer to a new device buffer */
bzn_status to_device(const void *host, size_t bytes, void **dev, bzn_error *err) {
    CK(cudaMalloc(dev, bytes), "cuda: weights");
    CK(cudaMemcpy(*dev, host, bytes, cudaMemcpyHostToDevice), "cuda: weights");
    return BZN_OK;
}

bzn_status b_weights_prepare(bzn_backend *b, const bzn_conv_args *a, void **out, size_t *bytes, bzn_error *err) {
    *out = NULL;
    *bytes = 0;
    if (set_device(ctx_of(b), err)) return BZN_ERR_BACKEND;
    weights *w = (weights *)calloc(1, sizeof *w);
    if (!w) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    w->prec = prec_of(a);
    w->device = ctx_of(b)->device;
    w->M = a->out_c;
    w->K = a->in_c * a->k * a->k;
    w->Mpad = (int)round_up((size_t)w->M, CONV_BM);
    w->Kpad = (int)round_up((size_t)w->K, CONV_BK);
    const size_t n = (size_t)w->Mpad * w->Kpad, M = (size_t)w->M, K = (size_t)w->K;
    const size_t elem = w->prec == PREC_F32 || w->prec == PREC_TF32 ? 4 : w->prec == PREC_F16 ? 2 : 1;
    void *h = calloc(n, elem);
    float *hs = w->prec == PREC_S8 ? (float *)calloc((size_t)w->Mpad, sizeof(float)) : NULL;
    bzn_status s = h && (w->prec != PREC_S8 || hs) ? BZN_OK : bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    if (s == BZN_OK) {
        for (size_t m = 0; m < M; m++)
            for (size_t k = 0; k < K; k++) {
                if (w->prec == PREC_F32) /* K-major */
                    ((float *)h)[k * w->Mpad + m] = a->weight[m * K + k];
                else if (w->prec == PREC_F16)
                    ((uint16_t *)h)[m * w->Kpad + k] = bzn_f32_to_f16(a->weight[m * K + k]);
                else if (w->prec == PREC_TF32)
                    ((float *)h)[m * w->Kpad + k] = tf32_round(a->weight[m * K + k]);
                else
                    ((int8_t *)h)[m * w->Kpad + k] = a->qweight[m * K + k];
            }
        for (size_t m = 0; hs && m < M; m++) hs[m] = a->wscale[m];
        s = to_device(h, n * elem, &w->a, err);
    }
    if (s == BZN_OK && a->bias) s = to_device(a->bias, M * sizeof(float), (void **)&w->bias, err);
    if (s == BZN_OK && hs) s = to_device(hs, (size_t)w->Mpad * sizeof(float), (void **)&w->wscale, err);
    free(h);
    free(hs);
    if (s != BZN_OK) {
        release_weights(w);
        return s;
    }
    *bytes = n * elem + (a->bias ? M * sizeof(float) : 0) + (hs ? (size_t)w->Mpad * sizeof(float) : 0);
    *out = w;
    return BZN_OK;
}

/* ---- convolution ---- */

/* The kernel's parameters for these arguments (conv_prepare keeps them per context). */
bzn_status conv_params(const bzn_conv_args *a, ConvParams *p, bzn_error *err) {
    const weights *w = (const weights *)a->weights;
    if (!w) return bzn_fail(err, BZN_ERR_BACKEND, "cuda: convolution without prepared weights (weights_prepare)");
    const int want = prec_of(a);
    if (w->prec != want || w->M != a->out_c || w->K != a->in_c * a->k * a->k)
        return bzn_fail(err, BZN_ERR_ARG, "cuda: prepared weights do not match the convolution (%dx%d, %d -> %d)",
                        a->k, a->k, a->in_c, a->out_c);
    if (a->n_in < 1 || a->n_in > BZN_MAX_SEGMENTS) return bzn_fail(err, BZN_ERR_ARG, "cuda: %d input segments", a->n_in);
    if ((a->in_q || a->out_q) && !a->qweight)
        return bzn_fail(err, BZN_ERR_ARG, "cuda: an INT8 hand-off to or from a float convolution");
    if (a->out_q && (!a->next || !a->next->qweight))
        return bzn_fail(err, BZN_ERR_ARG, "cuda: an INT8 hand-off without an INT8 consumer");
    memset(p, 0, sizeof *p);
    int c = 0;
    for (int s = 0; s < a->n_in; s++) {
        if (a->in[s].batch_stride != a->in[0].batch_stride)
            return bzn_fail(err, BZN_ERR_UNSUPPORTED, "cuda: input segments with different frame strides");
        p->seg[s] = a->in[s].data;
        c += a->in[s].channels;
        p->seg_end[s] = c;
    }
    for (int s = a->n_in; s < BZN_MAX_SEGMENTS; s++) p->seg_end[s] = 1 << 30;
    if (c != a->in_c) return bzn_fail(err, BZN_ERR_ARG, "cuda: segments hold %d channels, not %d", c, a->in_c);
    p->in_bstride = (long long)a->in[0].batch_stride;
    p->out_bstride = (long long)a->out_batch_stride;
    p->in_c = a->in_c;
    p->in_h = a->in_h;
    p->in_w = a->in_w;
    p->out_c = a->out_c;
    p->out_h = a->out_h;
    p->out_w = a->out_w;
    p->k = a->k;
    p->stride = a->stride;
    p->pad = a->pad;
    p->dil = a->dilation;
    p->act = (int)a->act;
    p->K = w->K;
    p->Kpad = w->Kpad;
    p->Mpad = w->Mpad;
    p->w = w->a;
    p->bias = w->bias;
    p->wscale = w->wscale;
    p->in_scale = a->in_scale;
    p->inv_in_scale = a->qweight ? 1.0f / a->in_scale : 0.0f;
    p->out = a->out;
    p->in_q = (const int8_t *)a->in_q;
    p->out_q = (int8_t *)a->out_q;
    p->in_q_bstride = (long long)(a->in[0].batch_stride * sizeof(float));
    p->out_q_bstride = (long long)(a->out_batch_stride * sizeof(float));
    p->out_inv_scale = a->out_q ? 1.0f / a->next->in_scale : 0.0f;
    return BZN_OK;
}

/* INT8 hand-offs: the int8 layout is the plain one, [C][H][W] bytes per frame */
size_t b_conv_qin_bytes(bzn_backend *b, const bzn_conv_args *a) {
    (void)b;
    return (size_t)a->in_c * a->in_h * a->in_w;
}

bzn_status b_conv_prepare(bzn_backend *b, const bzn_conv_args *a, void **prepared, bzn_error *err) {
    (void)b;
    *prepared = NULL;
    ConvParams *p = (ConvParams *)malloc(sizeof *p);
    if (!p) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    bzn_status s = conv_params(a, p, err);
    if (s != BZN_OK) {
        free(p);
        return s;
    }
    *prepared = p;
    return BZN_OK;
}

void b_conv_release(bzn_backend *b, void *prepared) {
    (void)b;
    free(prepared);
}

size_t b_conv_scratch(bzn_backend *b, const bzn_conv_args *a) {
    (void)b;
    (void)a;
    return 0; /* implicit GEMM: no im2col buffer */
}

bzn_status b_conv(bzn_backend *b, const bzn_conv_args *a, void *scratch, bzn_error *err) {
    (void)scratch;
    ConvParams local;
    const ConvParams *p = (const ConvParams *)a->prepared;
    if (!p) {
        bzn_status s = conv_params(a, &local, err);
        if (s != BZN_OK) return s;
        p = &local;
    }
    CK(conv(((const weights *)a->weights)->prec, *p, a->batch, ctx_of(b)->stream), "cuda: convolution kernel");
    return BZN_OK;
}

bzn_status b_maxpool(bzn_backend *b, const bzn_pool_args *a, bzn_error *err) {
    CK(maxpool(*a, ctx_of(b)->stream), "cuda: max-pool kernel");
    return BZN_OK;
}

bzn_status b_upsample(bzn_backend *b, const bzn_upsample_args *a, bzn_error *err) {
    CK(upsample(*a, ctx_of(b)->stream), "cuda: upsample kernel");
    return BZN_OK;
}

/* ---- the frame ---- */

void free_plans(ctx *c) {
    cudaFree(c->plans);
    c->plans = NULL;
    memset(c->geo, 0, sizeof c->geo);
}

/* PIL's plans for sw x sh -> dw x dh, made on the host, kept on the device */
bzn_status make_plans(ctx *c, int sw, int sh, int dw, int dh, bzn_error *err) {
    if (c->plans && c->geo[0] == sw && c->geo[1] == sh && c->geo[2] == dw && c->geo[3] == dh) return BZN_OK;
    free_plans(c);
    bzn_resize_axis ax, ay;
    memset(&ax, 0, sizeof ax);
    memset(&ay, 0, sizeof ay);
    if (bzn_resize_plan(sw, dw, &ax) || bzn_resize_plan(sh, dh, &ay)) {
        bzn_resize_plan_free(&ax);
        bzn_resize_plan_free(&ay);
        return bzn_fail(err, BZN_ERR_NOMEM, "resize %dx%d -> %dx%d: out of memory", sw, sh, dw, dh);
    }
    /* one buffer: x first, x count, x weights, y first, y count, y weights (ints) */
    const size_t nx = (size_t)dw, ny = (size_t)dh, wx = nx * ax.ksize, wy = ny * ay.ksize;
    const size_t n = 2 * nx + wx + 2 * ny + wy;
    int32_t *h = (int32_t *)malloc(n * sizeof *h);
    bzn_status s = h ? BZN_OK : bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    if (s == BZN_OK) {
        int32_t *q = h;
        memcpy(q, ax.first, nx * 4), q += nx;
        memcpy(q, ax.count, nx * 4), q += nx;
        memcpy(q, ax.weight, wx * 4), q += wx;
        memcpy(q, ay.first, ny * 4), q += ny;
        memcpy(q, ay.count, ny * 4), q += ny;
        memcpy(q, ay.weight, wy * 4);
        s = to_device(h, n * sizeof *h, &c->plans, err);
    }
    if (s == BZN_OK) {
        const int32_t *d = (const int32_t *)c->plans;
        c->px = ResizeAxis{d, d + nx, d + 2 * nx, ax.ksize};
        d += 2 * nx + wx;
        c->py = ResizeAxis{d, d + ny, d + 2 * ny, ay.ksize};
        c->geo[0] = sw, c->geo[1] = sh, c->geo[2] = dw, c->geo[3] = dh;
    }
    free(h);
    bzn_resize_plan_free(&ax);
    bzn_resize_plan_free(&ay);
    return s;
}

bzn_status b_preprocess(bzn_backend *b, const bzn_frame *f, const float mean[3], const float std[3], float *input,
                        int height, int width, bzn_error *err) {
    ctx *c = ctx_of(b);
    const size_t row = (size_t)f->width * 3, bytes = row * f->height;
    bzn_status s = set_device(c, err);
    if (s == BZN_OK) s = make_plans(c, f->width, f->height, width, height, err);
    if (s == BZN_OK) s = staging(c, bytes, err);
    if (s == BZN_OK) s = grow((void **)&c->frame, &c->frame_bytes, bytes, err);
    if (s == BZN_OK) s = grow((void **)&c->tmp, &c->tmp_bytes, (size_t)width * 3 * f->height, err);
    if (s != BZN_OK) return s;
    for (int y = 0; y < f->height; y++) memcpy((uint8_t *)c->pinned + y * row, f->rgb + (size_t)y * f->stride, row);
    CK(cudaMemcpyAsync(c->frame, c->pinned, bytes, cudaMemcpyHostToDevice, c->stream), "cuda: frame upload");
    CK(preprocess(c->frame, f->width, f->height, (int)row, c->tmp, c->px, c->py, width, height, mean, std, input,
                  c->stream),
       "cuda: resize kernel");
    CK(cudaStreamSynchronize(c->stream), "cuda: frame upload"); /* the staging is reused next frame */
    return BZN_OK;
}

/* ---- the outputs ---- */

bzn_status b_count_nonfinite(bzn_backend *b, const float *x, size_t n, size_t *bad, bzn_error *err) {
    ctx *c = ctx_of(b);
    bzn_status s = set_device(c, err);
    if (s == BZN_OK) s = grow(&c->post, &c->post_bytes, 256, err);
    if (s == BZN_OK) s = staging(c, sizeof(unsigned long long), err);
    if (s != BZN_OK) return s;
    unsigned long long *count = (unsigned long long *)c->post;
    CK(cudaMemsetAsync(count, 0, sizeof *count, c->stream), "cuda: finiteness check");
    CK(count_nonfinite(x, n, count, c->stream), "cuda: finiteness check");
    CK(cudaMemcpyAsync(c->pinned, count, sizeof *count, cudaMemcpyDeviceToHost, c->stream), "cuda: finiteness check");
    CK(cudaStreamSynchronize(c->stream), "cuda: finiteness check");
    *bad = (size_t)*(unsigned long long *)c->pinned;
    return BZN_OK;
}

bzn_status b_class_map(bzn_backend *b, const float *x, int C, int H, int W, const int *rows, const int *cols, int width,
                       int height, uint8_t *out, bzn_error *err) {
    ctx *c = ctx_of(b);
    const size_t tables = ((size_t)width + height) * sizeof(int), map = (size_t)width * height;
    const size_t up = round_up(tables, 256);
    bzn_status s = set_device(c, err);
    if (s == BZN_OK) s = grow(&c->post, &c->post_bytes, up + map, err);
    if (s == BZN_OK) s = staging(c, tables > map ? tables : map, err);
    if (s != BZN_OK) return s;
    int *d_rows = (int *)c->post, *d_cols = d_rows + height;
    uint8_t *d_map = (uint8_t *)c->post + up;
    memcpy(c->pinned, rows, (size_t)height * sizeof(int));
    memcpy((int *)c->pinned + height, cols, (size_t)width * sizeof(int));
    CK(cudaMemcpyAsync(d_rows, c->pinned, tables, cudaMemcpyHostToDevice, c->stream), "cuda: class map");
    CK(class_map(x, C, H, W, d_rows, d_cols, width, height, d_map, c->stream), "cuda: class map kernel");
    CK(cudaStreamSynchronize(c->stream), "cuda: class map"); /* the staging holds the tables until here */
    CK(cudaMemcpyAsync(c->pinned, d_map, map, cudaMemcpyDeviceToHost, c->stream), "cuda: class map");
    CK(cudaStreamSynchronize(c->stream), "cuda: class map");
    memcpy(out, c->pinned, map);
    return BZN_OK;
}

/* ---- the whole plan ---- */

bzn_status enqueue(bzn_backend *b, const bzn_plan *p, bzn_error *err) {
    for (int i = 0; i < p->n_ops; i++) {
        const bzn_op *op = &p->ops[i];
        bzn_status s = op->kind == BZN_OP_CONV      ? b_conv(b, &op->u.conv, p->scratch, err)
                       : op->kind == BZN_OP_MAXPOOL ? b_maxpool(b, &op->u.pool, err)
                                                    : b_upsample(b, &op->u.upsample, err);
        if (s != BZN_OK) return s;
    }
    return BZN_OK;
}

void drop_graph(ctx *c) {
    if (c->graph) cudaGraphExecDestroy(c->graph);
    c->graph = NULL;
    c->graph_plan = NULL;
}

bzn_status b_run(bzn_backend *b, const bzn_plan *p, bzn_error *err) {
    ctx *c = ctx_of(b);
    if (set_device(c, err)) return BZN_ERR_BACKEND;
    if (!c->use_graph) return enqueue(b, p, err);
    if (c->graph_plan != p) { /* capture once; a plan's arguments never change */
        drop_graph(c);
        CK(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal), "cuda: graph capture");
        bzn_status s = enqueue(b, p, err);
        cudaGraph_t g = NULL;
        cudaError_t e = cudaStreamEndCapture(c->stream, &g);
        if (s == BZN_OK && e != cudaSuccess) s = fail(err, e, "cuda: graph capture");
        if (s == BZN_OK && (e = cudaGraphInstantiate(&c->graph, g, 0)) != cudaSuccess) {
            c->graph = NULL;
            s = fail(err, e, "cuda: graph instantiation");
        }
        if (g) cudaGraphDestroy(g);
        if (s != BZN_OK) return s;
        c->graph_plan = p;
    }
    CK(cudaGraphLaunch(c->graph, c->stream), "cuda: graph launch");
    return BZN_OK;
}

bzn_status b_synchronize(bzn_backend *b, bzn_error *err) {
    if (set_device(ctx_of(b), err)) return BZN_ERR_BACKEND;
    CK(cudaStreamSynchronize(ctx_of(b)->stream), "cuda: running the network");
    CK(cudaGetLastError(), "cuda: running the network");
    return BZN_OK;
}

/* ---- timers: events on the stream ---- */

void free_events(ctx *c) {
    for (int i = 0; i < c->n_events; i++) cudaEventDestroy(c->events[i]);
    free(c->events);
    c->events = NULL;
    c->n_events = 0;
}

bzn_status b_timers(bzn_backend *b, int n, bzn_error *err) {
    ctx *c = ctx_of(b);
    free_events(c);
    if (set_device(c, err)) return BZN_ERR_BACKEND;
    if (n < 0 || !(c->events = (cudaEvent_t *)calloc((size_t)n + 1, sizeof *c->events)))
        return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    for (; c->n_events < n; c->n_events++) CK(cudaEventCreate(&c->events[c->n_events]), "cuda: timer events");
    return BZN_OK;
}

bzn_status b_mark(bzn_backend *b, int i, bzn_error *err) {
    ctx *c = ctx_of(b);
    if (i < 0 || i >= c->n_events) return bzn_fail(err, BZN_ERR_ARG, "timer %d of %d", i, c->n_events);
    CK(cudaEventRecord(c->events[i], c->stream), "cuda: timer event");
    return BZN_OK;
}

bzn_status b_elapsed(bzn_backend *b, int from, int to, double *ms, bzn_error *err) {
    ctx *c = ctx_of(b);
    if (from < 0 || to < 0 || from >= c->n_events || to >= c->n_events)
        return bzn_fail(err, BZN_ERR_ARG, "timers %d..%d of %d", from, to, c->n_events);
    float f = 0;
    CK(cudaEventSynchronize(c->events[to]), "cuda: timer event");
    CK(cudaEventElapsedTime(&f, c->events[from], c->events[to]), "cuda: timer event");
    *ms = f;
    return BZN_OK;
}

void b_destroy(bzn_backend *b) {
    if (!b) return;
    ctx *c = ctx_of(b);
    if (c) {
        cudaSetDevice(c->device);
        drop_graph(c);
        free_events(c);
        free_plans(c);
        cudaFree(c->post);
        cudaFree(c->frame);
        cudaFree(c->tmp);
        if (c->pinned) cudaFreeHost(c->pinned);
        if (c->stream) cudaStreamDestroy(c->stream);
        free(c);
    }
    free(b);
}

} // namespace

extern "C" bzn_status BZN_CUDA_CREATE(const bzn_backend_options *opt, bzn_backend **out, bzn_error *err) {
    *out = NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) return fail(err, e, "cuda: no usable GPU");
    const int dev = opt ? opt->device : 0;
    if (dev < 0 || dev >= n)
        return bzn_fail(err, BZN_ERR_BACKEND, "cuda: device %d does not exist (this machine has %d CUDA device%s)", dev,
                        n, n == 1 ? "" : "s");
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, dev), "cuda: device properties");
    if (prop.major < 8)
        return bzn_fail(err, BZN_ERR_UNSUPPORTED,
                        "cuda: device %d (%s) has compute capability %d.%d; the tensor-core kernels need 8.0 or newer",
                        dev, prop.name, prop.major, prop.minor);
    bzn_backend *b = (bzn_backend *)calloc(1, sizeof *b);
    ctx *c = (ctx *)calloc(1, sizeof *c);
    if (!b || !c) {
        free(b);
        free(c);
        return bzn_fail(err, BZN_ERR_NOMEM, "out of memory creating the CUDA backend");
    }
    b->ctx = c;
    c->device = dev;
    const char *g = getenv("BZN_CUDA_GRAPH");
    c->use_graph = !(g && !strcmp(g, "0"));
    bzn_status s = set_device(c, err);
    if (s == BZN_OK && (e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess)
        s = fail(err, e, "cuda: creating a stream");
    if (s != BZN_OK) {
        b_destroy(b);
        return s;
    }
    snprintf(c->detail, sizeof c->detail, "device %d: %s, sm_%d%d, %d SMs, %.0f GiB%s", dev, prop.name, prop.major,
             prop.minor, prop.multiProcessorCount, (double)prop.totalGlobalMem / (1 << 30),
             c->use_graph ? ", CUDA graph" : "");
    b->name = BZN_CUDA_NAME;
    b->host_memory = 0;
    b->threads = 1;
    b->device = dev;
    b->detail = c->detail;
    b->precisions = (1u << BZN_PRECISION_FP32) | (1u << BZN_PRECISION_TF32) | (1u << BZN_PRECISION_FP16) |
                    (1u << BZN_PRECISION_INT8);
    b->alloc = b_alloc;
    b->free = b_free;
    b->upload = b_upload;
    b->download = b_download;
    b->weights_prepare = b_weights_prepare;
    b->weights_release = release_weights;
    b->conv_prepare = b_conv_prepare;
    b->conv_release = b_conv_release;
    b->conv_scratch = b_conv_scratch;
    b->conv_qin_bytes = b_conv_qin_bytes;
    b->conv = b_conv;
    b->maxpool = b_maxpool;
    b->upsample = b_upsample;
    b->preprocess = b_preprocess;
    b->count_nonfinite = b_count_nonfinite;
    b->class_map = b_class_map;
    b->run = b_run;
    b->synchronize = b_synchronize;
    b->timers = b_timers;
    b->mark = b_mark;
    b->elapsed_ms = b_elapsed;
    b->destroy = b_destroy;
    *out = b;
    return BZN_OK;
}
