/*
 * backend.h - what a compute backend provides: a struct of function pointers plus a context.
 *
 * The engine owns the graph and the memory plan (which bytes of the activation arena each
 * tensor lives in, and when); a backend owns the memory itself and runs operations on it.
 *   - Memory: the arena and scratch space are allocated by the backend (alloc/free) in its
 *     own memory; bytes cross with upload/download (a backend may take the uint8 frame and
 *     pre-process it itself). A backend whose memory is the host's (host_memory = 1: cpu,
 *     ref) lets the engine read and write it in place, with no copies.
 *   - Every entry point that can fail returns a bzn_status and fills the bzn_error with the
 *     backend's own words; the engine passes it up to the caller (bzn_run_* return it).
 *   - Plan once, run many: every operation's arguments are made once, at context creation,
 *     into a bzn_plan. A backend may run the whole plan itself (run, then synchronize: a GPU
 *     captures it as one graph); otherwise the engine calls the operations in order.
 *   - Timers: marks recorded in the backend's execution order (events on a GPU, the host
 *     clock on the CPU), so a per-layer profile measures the work, not its launch.
 *   - Weights: a convolution's weights in the backend's own form (packed, in device memory)
 *     are made once per model and backend (weights_prepare) and shared by every context;
 *     what depends on the input size (offset tables) is made per context (conv_prepare).
 *   - Batch: every operation runs on `batch` frames; frame n of a tensor lies batch_stride
 *     floats after frame 0.
 *   - Threads: a backend that owns host threads lends them to the engine's own loops
 *     (parallel_for), so the engine itself links no threading runtime.
 *
 * Tensors are NCHW, float32. A convolution's input may be a list of channel segments (a
 * concatenation that was never materialised: each segment points at channel 0 of its own
 * C x H x W block), and its output may be a channel slice of a larger tensor (a producer
 * writing straight into its place in a concatenation).
 *
 * The backends this build has are listed in one table (registry.c); each lives in its own
 * folder: backends/ref (plain C loops, the oracle every other backend is tested against),
 * backends/cpu (own SIMD kernels, OpenBLAS, its own worker threads).
 */
#ifndef BZN_BACKEND_H
#define BZN_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "blazeneo.h"
#include "parallel.h"

#define BZN_MAX_SEGMENTS 16

typedef enum { BZN_ACT_NONE = 0, BZN_ACT_RELU = 1, BZN_ACT_RELU6 = 2 } bzn_act;

typedef struct {
    const float *data;   /* frame 0, channel 0 of this segment; channels are H*W floats apart */
    int channels;
    size_t batch_stride; /* floats from one frame to the next */
} bzn_segment;

typedef struct bzn_conv_args {
    int batch; /* frames */
    /* input: the concatenation of the segments, in order; spatial size in_h x in_w */
    bzn_segment in[BZN_MAX_SEGMENTS];
    int n_in, in_c, in_h, in_w;
    /* output: out_c x out_h x out_w contiguous floats per frame */
    float *out;
    size_t out_batch_stride;
    int out_c, out_h, out_w;
    /* weights [out_c][in_c][k][k] with BatchNorm folded in; bias [out_c] or NULL */
    const float *weight, *bias;
    int k, stride, pad, dilation;
    bzn_act act;
    /* INT8 (when qweight is not NULL): weights quantized per output channel, [out_c][in_c][k][k]
     * with scales wscale[out_c]; the input quantized per tensor, q = clamp(rint(x / in_scale),
     * -127, 127); int32 accumulation; out = acc * in_scale * wscale[oc] + bias, then act. */
    const int8_t *qweight;
    const float *wscale;
    float in_scale;
    /* every input value is >= 0 and not NaN, on every frame (it came out of ReLUs, through
     * pooling or upsampling; engine/graph.h): a promise kernels may use (the CPU's AVX2 INT8
     * kernel then multiplies q directly, without a sign transfer) */
    int in_nonneg;
    /* a float convolution's arithmetic: FP32 (0), or, on a backend that lists them, FP16 or
     * TF32: weights and input rounded to half or to TF32, products accumulated in float;
     * `weight` holds the floats either way (weights_prepare makes the rounded form) */
    bzn_precision math;
    const void *weights;  /* weights_prepare's form of these weights (shared), or NULL */
    const void *prepared; /* conv_prepare's per-context data for this convolution, or NULL */
    /* INT8 hand-off (NULL unless the engine arranged one; see conv_qin_bytes): when a tensor
     * goes from one INT8 convolution to exactly one other, as that one's whole input, the
     * producer writes it already quantized with the consumer's in_scale, in the backend's
     * own int8 layout, and the consumer reads it as it is. Bit for bit what quantizing the
     * float tensor would give; only the float tensor is never written. Frame n's bytes lie
     * n * batch_stride * sizeof(float) after frame 0's (the float tensor's place). */
    const void *in_q;                 /* this input, already quantized (in[] is not read) */
    void *out_q;                      /* write the output here, quantized for `next`, not to out */
    const struct bzn_conv_args *next; /* the consumer, when out_q */
} bzn_conv_args;

typedef struct {
    int batch;
    const float *in;
    float *out;
    size_t in_batch_stride, out_batch_stride;
    int c, in_h, in_w, out_h, out_w;
    int k, stride, pad; /* padding never wins the max (PyTorch semantics) */
} bzn_pool_args;

typedef struct {
    int batch;
    const float *in;
    float *out;
    size_t in_batch_stride, out_batch_stride;
    int c, in_h, in_w, factor; /* bilinear, align_corners=False, out = in * factor */
} bzn_upsample_args;

/* One operation of a context's plan, and the plan: every operation of the network in
 * execution order, with its arguments, made once when the context is created. */
typedef enum { BZN_OP_CONV, BZN_OP_MAXPOOL, BZN_OP_UPSAMPLE } bzn_op_kind;

typedef struct {
    bzn_op_kind kind;
    int node; /* the graph node (bzn_ctx_layer index) it computes */
    union {
        bzn_conv_args conv;
        bzn_pool_args pool;
        bzn_upsample_args upsample;
    } u;
} bzn_op;

typedef struct {
    bzn_op *ops;
    int n_ops;
    void *scratch; /* the backend's memory, at least every op's conv_scratch bytes */
} bzn_plan;

typedef struct {
    int threads; /* 0: the backend's default (all cores) */
    int device;  /* backends with several devices: which one */
} bzn_backend_options;

typedef struct bzn_backend bzn_backend;
struct bzn_backend {
    const char *name;
    void *ctx;
    int host_memory; /* 1: alloc'd memory is the host's, read and written in place */
    int threads;     /* the host threads it uses (reported by bzn_ctx_threads) */
    int device;      /* which device (prepared weights are shared per backend, device and form) */
    int weights_form; /* which form its prepared weights take where that depends on its settings
                         (the CPU backend: the kernels' instruction set and the Winograd setting) */
    const char *detail; /* what it runs on, for reports (the CPU: its kernels' instruction set);
                           may be NULL */
    unsigned precisions; /* the precisions it runs, bit (1u << bzn_precision) each; 0: FP32 and INT8 */

    /* ---- memory: 64-byte aligned, zero-filled ---- */
    bzn_status (*alloc)(bzn_backend *b, size_t bytes, void **mem, bzn_error *err);
    void (*free)(bzn_backend *b, void *mem);
    bzn_status (*upload)(bzn_backend *b, void *dst, const void *src, size_t bytes, bzn_error *err);
    bzn_status (*download)(bzn_backend *b, void *dst, const void *src, size_t bytes, bzn_error *err);

    /* ---- weights, once per model (optional): the backend's form of one convolution's
     * weights (a's weight/qweight/wscale/bias, k, channels; no activations), and its size ---- */
    bzn_status (*weights_prepare)(bzn_backend *b, const bzn_conv_args *a, void **weights, size_t *bytes,
                                  bzn_error *err);
    void (*weights_release)(void *weights); /* self-contained: may outlive every context */
    /* optional: 0 when a float convolution with these arguments (a context's geometry and
     * `weights`, weight NULL) never reads the floats a->weight, because the backend's form
     * replaces them (the CPU's Winograd transforms where that size runs them): the engine
     * then keeps no floats for it. NULL: the floats are always read. */
    int (*conv_reads_floats)(bzn_backend *b, const bzn_conv_args *a);

    /* ---- convolution ---- */
    /* optional: what the convolution needs per context (offset tables), in a.prepared */
    bzn_status (*conv_prepare)(bzn_backend *b, const bzn_conv_args *a, void **prepared, bzn_error *err);
    void (*conv_release)(bzn_backend *b, void *prepared);
    /* scratch bytes conv() needs for these arguments (planned once, at context creation) */
    size_t (*conv_scratch)(bzn_backend *b, const bzn_conv_args *a);
    /* optional (INT8 hand-offs): bytes of one frame of a's input in the backend's int8 layout */
    size_t (*conv_qin_bytes)(bzn_backend *b, const bzn_conv_args *a);
    /* scratch: at least conv_scratch() bytes of the backend's memory */
    bzn_status (*conv)(bzn_backend *b, const bzn_conv_args *a, void *scratch, bzn_error *err);
    bzn_status (*maxpool)(bzn_backend *b, const bzn_pool_args *a, bzn_error *err);
    bzn_status (*upsample)(bzn_backend *b, const bzn_upsample_args *a, bzn_error *err);

    /* ---- optional: a frame's pre-processing on the backend, so that only its uint8 pixels
     * cross: the RGB frame (host memory, any size) resized as PIL's antialiased bilinear and
     * normalised, (v / 255 - mean) / std, into `input` (3 x height x width floats of the
     * backend's memory). Absent: the engine does it on the host and uploads the floats. ---- */
    bzn_status (*preprocess)(bzn_backend *b, const bzn_frame *frame, const float mean[3], const float std[3],
                             float *input, int height, int width, bzn_error *err);

    /* ---- optional: the outputs' post-processing on the backend, so that only uint8 crosses
     * back (both or neither; absent: the engine downloads the logits after every run and
     * does it on the host). count_nonfinite: how many of the n floats at x (the backend's
     * memory) are NaN or infinite. class_map: for each pixel (i, j) of a width x height map,
     * the class (0 neo, 1 non, 2 background; bzn_class_map's rule) of the logits, C planes of
     * H x W floats at x (the backend's memory), at pixel (rows[i], cols[j]) - the engine's
     * nearest-neighbour indices - into out (host memory). The logits are then downloaded
     * only when a caller asks for them. ---- */
    bzn_status (*count_nonfinite)(bzn_backend *b, const float *x, size_t n, size_t *bad, bzn_error *err);
    bzn_status (*class_map)(bzn_backend *b, const float *x, int C, int H, int W, const int *rows, const int *cols,
                            int width, int height, uint8_t *out, bzn_error *err);

    /* ---- the whole plan (optional: else the engine calls the ops in order) ---- */
    bzn_status (*run)(bzn_backend *b, const bzn_plan *p, bzn_error *err);
    /* optional: wait until everything submitted has finished (synchronous backends: absent) */
    bzn_status (*synchronize)(bzn_backend *b, bzn_error *err);

    /* ---- timers: n marks recorded in execution order; ms between two of them once the
     * backend has synchronized ---- */
    bzn_status (*timers)(bzn_backend *b, int n, bzn_error *err);
    bzn_status (*mark)(bzn_backend *b, int i, bzn_error *err);
    bzn_status (*elapsed_ms)(bzn_backend *b, int from, int to, double *ms, bzn_error *err);

    /* ---- optional: fn(arg, i) for every i in [0, n) on the backend's host threads, for the
     * engine's own loops (resize, class map, calibration); absent: in order ---- */
    void (*parallel_for)(bzn_backend *b, int n, bzn_task_fn fn, void *arg);

    void (*destroy)(bzn_backend *b);
};

/* The backend's host threads as a bzn_parallel (its parallel_for, or in order). */
bzn_parallel bzn_backend_parallel(bzn_backend *b);

/* ---- the registry (registry.c): one line per backend of this build ---- */
typedef struct {
    const char *name;
    const char *description;
    unsigned precisions; /* as bzn_backend.precisions */
    bzn_status (*create)(const bzn_backend_options *opt, bzn_backend **out, bzn_error *err);
} bzn_backend_entry;

/* The backends of this build, NULL-terminated by name; the first is the default. */
extern const bzn_backend_entry bzn_backend_registry[];
/* Create backend `name` (NULL: the default); an unknown name is an error listing the known. */
bzn_status bzn_backend_create(const char *name, const bzn_backend_options *opt, bzn_backend **out, bzn_error *err);

/* Constructors (listed in the registry). */
bzn_status bzn_backend_ref_create(const bzn_backend_options *opt, bzn_backend **out, bzn_error *err);
bzn_status bzn_backend_cpu_create(const bzn_backend_options *opt, bzn_backend **out, bzn_error *err);
bzn_status bzn_backend_cuda_create(const bzn_backend_options *opt, bzn_backend **out, bzn_error *err);

/* The precisions a backend runs, as a bit set (0 means FP32 and INT8). */
#define BZN_PRECISIONS_DEFAULT ((1u << BZN_PRECISION_FP32) | (1u << BZN_PRECISION_INT8))
static inline unsigned bzn_precision_set(unsigned precisions) {
    return precisions ? precisions : BZN_PRECISIONS_DEFAULT;
}

/* ---- helpers every backend shares ---- */

/* Host memory for backends whose memory is the host's (cpu, ref); host clock timers. */
bzn_status bzn_host_alloc(bzn_backend *b, size_t bytes, void **mem, bzn_error *err);
void bzn_host_free(bzn_backend *b, void *mem);
bzn_status bzn_host_copy(bzn_backend *b, void *dst, const void *src, size_t bytes, bzn_error *err);
/* the host-clock timers: ctx-independent state kept in *clock */
typedef struct {
    double *t;
    int n;
} bzn_host_clock;
bzn_status bzn_host_clock_init(bzn_host_clock *c, int n, bzn_error *err);
bzn_status bzn_host_clock_mark(bzn_host_clock *c, int i, bzn_error *err);
bzn_status bzn_host_clock_elapsed(const bzn_host_clock *c, int from, int to, double *ms, bzn_error *err);
void bzn_host_clock_free(bzn_host_clock *c);

/* A batched operation run frame by frame by a batch-1 implementation `one`, which gets the
 * backend's ctx (backends whose kernels take one frame). */
typedef void (*bzn_conv_one_fn)(void *ctx, const bzn_conv_args *frame, void *scratch);
typedef void (*bzn_pool_one_fn)(void *ctx, const bzn_pool_args *frame);
typedef void (*bzn_upsample_one_fn)(void *ctx, const bzn_upsample_args *frame);
bzn_status bzn_conv_frames(bzn_backend *b, const bzn_conv_args *a, void *scratch, bzn_conv_one_fn one);
bzn_status bzn_pool_frames(bzn_backend *b, const bzn_pool_args *a, bzn_pool_one_fn one);
bzn_status bzn_upsample_frames(bzn_backend *b, const bzn_upsample_args *a, bzn_upsample_one_fn one);

/* The quantization every backend applies to an activation: clamp x / scale to [-127, 127]
 * (NaN counts as -127), then round to nearest even. SIMD code computes exactly this. */
static inline int bzn_quantize(float x, float inv_scale) {
    float v = x * inv_scale;
    if (!(v >= -127.0f)) v = -127.0f;
    if (v > 127.0f) v = 127.0f;
    return (int)__builtin_rintf(v);
}

/* The activations, as every backend applies them. Written so that compilers vectorise them
 * (fmaxf/fminf become library calls); NaN gives 0, as fmaxf(NaN, 0) does. */
static inline float bzn_relu(float v) { return v > 0.0f ? v : 0.0f; }
static inline float bzn_relu6(float v) {
    v = v > 0.0f ? v : 0.0f;
    return v < 6.0f ? v : 6.0f;
}
static inline float bzn_activate(float v, bzn_act act) {
    return act == BZN_ACT_RELU ? bzn_relu(v) : act == BZN_ACT_RELU6 ? bzn_relu6(v) : v;
}

/* Output size of a convolution or pooling window along one axis. */
static inline int bzn_out_size(int in, int k, int stride, int pad, int dilation) {
    return (in + 2 * pad - dilation * (k - 1) - 1) / stride + 1;
}

#endif
