/*
 * kernels.h - the CUDA backend's kernels as the host side sees them: one launcher per
 * operation, each enqueuing its kernel on a stream (kernels in conv.cu, pool.cu, image.cu).
 * C++ (the backend is compiled as CUDA / C++); shapes are the engine's (backend.h).
 */
#ifndef BZN_CUDA_KERNELS_H
#define BZN_CUDA_KERNELS_H

#include "common.cuh"

extern "C" {
#include "backend.h"
}

namespace bzn_cuda {

/* How a convolution's weights are stored on the device (weights_prepare, once per model):
 * the GEMM's A matrix, M = out_c rows by K = in_c * k * k columns (k index = (ic, ky, kx)),
 * zero-padded to Mpad (a multiple of CONV_BM) by Kpad (a multiple of CONV_BK):
 *   PREC_F32: float, K-major [Kpad][Mpad] (CUDA cores read a row of M per k step)
 *   PREC_F16: half, M-major [Mpad][Kpad] (tensor-core A fragments are runs along K)
 *   PREC_S8:  int8, M-major [Mpad][Kpad], with per-output-channel scales wscale[Mpad]
 *   PREC_TF32: float rounded to TF32, M-major [Mpad][Kpad]. */
enum { PREC_F32 = 0, PREC_F16 = 1, PREC_S8 = 2, PREC_TF32 = 3 };
enum { CONV_BM = 64, CONV_BN = 64, CONV_BK = 32, CONV_THREADS = 128 };

struct ConvParams {
    const float *seg[BZN_MAX_SEGMENTS]; /* frame 0, channel 0 of each input segment */
    int seg_end[BZN_MAX_SEGMENTS];      /* channels up to and including segment s */
    long long in_bstride, out_bstride;  /* floats from frame to frame */
    int in_c, in_h, in_w, out_c, out_h, out_w;
    int k, stride, pad, dil, act;
    int K, Kpad, Mpad;
    const void *w;       /* the A matrix, as above */
    const float *bias;   /* [out_c], or NULL */
    const float *wscale; /* INT8: [Mpad] */
    float in_scale, inv_in_scale; /* INT8: the input's per-tensor scale, and 1 / it */
    float *out;          /* frame 0, channel 0 of the output slice */
    /* INT8 hand-offs (backend.h): the input already quantized, and/or the output written
     * quantized for the next convolution (1 / its in_scale), both [C][H][W] int8 per frame,
     * frames the float tensor's stride apart (in bytes here) */
    const int8_t *in_q;
    int8_t *out_q;
    long long in_q_bstride, out_q_bstride;
    float out_inv_scale;
};

/* Implicit GEMM: out[m][n] = act(sum_k A[m][k] * im2col(in)[k][n] + bias[m]), one
 * CONV_BM x CONV_BN tile of (out channels x pixels) per block, batch frames on grid z. */
cudaError_t conv(int prec, const ConvParams &p, int batch, cudaStream_t stream);

cudaError_t maxpool(const bzn_pool_args &a, cudaStream_t stream);
cudaError_t upsample(const bzn_upsample_args &a, cudaStream_t stream);

/* The frame's pre-processing (image.cu): PIL's antialiased bilinear resize of the uint8
 * RGB frame (axis plans from bzn_resize_plan: first tap, tap count and 22-bit weights per
 * output sample, ksize slots each), then (v / 255 - mean) / std into 3 planes of floats. */
struct ResizeAxis {
    const int *first, *count;
    const int32_t *weight;
    int ksize;
};
cudaError_t preprocess(const uint8_t *rgb, int sw, int sh, int stride, uint8_t *tmp, const ResizeAxis &px,
                       const ResizeAxis &py, int dw, int dh, const float mean[3], const float std[3], float *out,
                       cudaStream_t stream);

/* The outputs' post-processing (image.cu): how many of n floats are NaN or infinite (added
 * to *count, device memory), and the class map at the frame's size (bzn_class_map's rule,
 * at the engine's nearest-neighbour rows and columns, device memory) into out (device). */
cudaError_t count_nonfinite(const float *x, size_t n, unsigned long long *count, cudaStream_t stream);
cudaError_t class_map(const float *x, int C, int H, int W, const int *rows, const int *cols, int width, int height,
                      uint8_t *out, cudaStream_t stream);

} // namespace bzn_cuda

#endif
