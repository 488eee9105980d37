/*
 * pool.cu - max-pool and bilinear upsample, one thread per output value, frames on grid y.
 * Both compute exactly what the reference backend does (backends/ref/ref.c): the same
 * operations in the same order, each rounded on its own (no FMA contraction), so their
 * outputs are bit for bit ref's.
 */
#include "kernels.h"

namespace bzn_cuda {

/* padding never wins the max; NaN does (PyTorch semantics) */
__global__ void maxpool_kernel(bzn_pool_args a) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, plane = (size_t)a.out_h * a.out_w;
    if (i >= (size_t)a.c * plane) return;
    const int c = (int)(i / plane), oy = (int)(i % plane) / a.out_w, ox = (int)(i % plane) % a.out_w;
    const float *x = a.in + blockIdx.y * a.in_batch_stride + (size_t)c * a.in_h * a.in_w;
    float m = -INFINITY;
    for (int ky = 0; ky < a.k; ky++) {
        const int iy = oy * a.stride - a.pad + ky;
        if (iy < 0 || iy >= a.in_h) continue;
        for (int kx = 0; kx < a.k; kx++) {
            const int ix = ox * a.stride - a.pad + kx;
            if (ix < 0 || ix >= a.in_w) continue;
            const float v = x[(size_t)iy * a.in_w + ix];
            if (v > m || v != v) m = v;
        }
    }
    a.out[blockIdx.y * a.out_batch_stride + i] = m;
}

/* PyTorch's source index for align_corners=False: (dst + 0.5) / f - 0.5, clamped at 0 */
__device__ __forceinline__ void src_index(int dst, int factor, int in, int *i0, int *i1, float *l1) {
    const float scale = 1.0f / (float)factor;
    float src = __fsub_rn(__fmul_rn(scale, __fadd_rn((float)dst, 0.5f)), 0.5f);
    if (src < 0) src = 0;
    const int i = (int)src;
    *i0 = i;
    *i1 = i < in - 1 ? i + 1 : i;
    *l1 = __fsub_rn(src, (float)i);
}

__device__ __forceinline__ float lerp(float a, float b, float l) {
    return __fadd_rn(__fmul_rn(__fsub_rn(1.0f, l), a), __fmul_rn(l, b));
}

__global__ void upsample_kernel(bzn_upsample_args a) {
    const int oh = a.in_h * a.factor, ow = a.in_w * a.factor;
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, plane = (size_t)oh * ow;
    if (i >= (size_t)a.c * plane) return;
    const int c = (int)(i / plane), oy = (int)(i % plane) / ow, ox = (int)(i % plane) % ow;
    const float *x = a.in + blockIdx.y * a.in_batch_stride + (size_t)c * a.in_h * a.in_w;
    int y0, y1, x0, x1;
    float ly, lx;
    src_index(oy, a.factor, a.in_h, &y0, &y1, &ly);
    src_index(ox, a.factor, a.in_w, &x0, &x1, &lx);
    const float top = lerp(x[y0 * a.in_w + x0], x[y0 * a.in_w + x1], lx);
    const float bot = lerp(x[y1 * a.in_w + x0], x[y1 * a.in_w + x1], lx);
    a.out[blockIdx.y * a.out_batch_stride + i] = lerp(top, bot, ly);
}

cudaError_t maxpool(const bzn_pool_args &a, cudaStream_t stream) {
    const size_t n = (size_t)a.c * a.out_h * a.out_w;
    return BZN_LAUNCH(maxpool_kernel, dim3(ceil_div(n, 256), (unsigned)a.batch), dim3(256), stream, a);
}

cudaError_t upsample(const bzn_upsample_args &a, cudaStream_t stream) {
    const size_t n = (size_t)a.c * a.in_h * a.factor * a.in_w * a.factor;
    return BZN_LAUNCH(upsample_kernel, dim3(ceil_div(n, 256), (unsigned)a.batch), dim3(256), stream, a);
}

} // namespace bzn_cuda
