/*
 * backend.h - what a compute backend provides: a struct of function pointers plus a context.
 *
 * The engine owns the graph and the memory plan; a backend only runs operations on tensors
 * it is handed. Tensors are NCHW, batch 1, float32. A convolution's input may be a list of
 * channel segments (a concatenation that was never materialised: each segment points at
 * channel 0 of its own C x H x W block), and its output may be a channel slice of a larger
 * tensor (a producer writing straight into its place in a concatenation).
 *
 * Backends: backends/ref (plain C loops, the oracle every other backend is tested against)
 * and backends/cpu (im2col + OpenBLAS sgemm, OpenMP). A CUDA backend plugs in the same way.
 */
#ifndef BZN_BACKEND_H
#define BZN_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "blazeneo.h"

#define BZN_MAX_SEGMENTS 16

typedef enum { BZN_ACT_NONE = 0, BZN_ACT_RELU = 1, BZN_ACT_RELU6 = 2 } bzn_act;

typedef struct {
    const float *data; /* channel 0 of this segment; channels are H*W floats apart */
    int channels;
} bzn_segment;

typedef struct bzn_conv_args {
    /* input: the concatenation of the segments, in order; spatial size in_h x in_w */
    bzn_segment in[BZN_MAX_SEGMENTS];
    int n_in, in_c, in_h, in_w;
    /* output: out_c x out_h x out_w contiguous floats */
    float *out;
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
    const void *prepared; /* what conv_prepare made for this convolution, or NULL */
    /* INT8 hand-off (NULL unless the engine arranged one; see conv_qin_bytes): when a tensor
     * goes from one INT8 convolution to exactly one other, as that one's whole input, the
     * producer writes it already quantized with the consumer's in_scale, in the backend's
     * own int8 layout, and the consumer reads it as it is. Bit for bit what quantizing the
     * float tensor would give; only the float tensor is never written. */
    const void *in_q;                 /* this input, already quantized (in[] is not read) */
    void *out_q;                      /* write the output here, quantized for `next`, not to out */
    const struct bzn_conv_args *next; /* the consumer, when out_q */
} bzn_conv_args;

typedef struct {
    const float *in;
    float *out;
    int c, in_h, in_w, out_h, out_w;
    int k, stride, pad; /* padding never wins the max (PyTorch semantics) */
} bzn_pool_args;

typedef struct {
    const float *in;
    float *out;
    int c, in_h, in_w, factor; /* bilinear, align_corners=False, out = in * factor */
} bzn_upsample_args;

typedef struct bzn_backend {
    const char *name;
    void *ctx;
    /* optional: what a convolution needs that does not change from frame to frame (packed
     * weights, offset tables), made once at context creation for every convolution and passed
     * back in bzn_conv_args.prepared; NULL when nothing is needed (*failed = 1: out of memory) */
    void *(*conv_prepare)(void *ctx, const bzn_conv_args *a, int *failed);
    void (*conv_release)(void *ctx, void *prepared);
    /* scratch bytes conv() needs for these arguments (planned once, at context creation) */
    size_t (*conv_scratch)(void *ctx, const bzn_conv_args *a);
    /* scratch is at least conv_scratch() bytes, 64-byte aligned */
    void (*conv)(void *ctx, const bzn_conv_args *a, void *scratch);
    /* optional (INT8 hand-offs): bytes of a's input in the backend's int8 layout */
    size_t (*conv_qin_bytes)(void *ctx, const bzn_conv_args *a);
    void (*maxpool)(void *ctx, const bzn_pool_args *a);
    void (*upsample)(void *ctx, const bzn_upsample_args *a);
    void (*destroy)(struct bzn_backend *b);
} bzn_backend;

/* Constructors; threads = 0 picks the machine's default. */
bzn_status bzn_backend_ref_create(bzn_backend **out, bzn_error *err);
bzn_status bzn_backend_cpu_create(int threads, bzn_backend **out, bzn_error *err);

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
