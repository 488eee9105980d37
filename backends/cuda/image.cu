/*
 * image.cu - a frame's pre- and post-processing on the GPU, so that only uint8 crosses
 * PCIe: in, PIL's antialiased bilinear resize (image/resize.c, to the last bit: the same
 * 22-bit fixed-point weights, made on the host by bzn_resize_plan, the same rounding and
 * the 8-bit intermediate image), then torchvision's normalisation into 3 float planes; out,
 * the finiteness check of the logits and the class map at the frame's own size (the
 * engine's rule and nearest-neighbour indices, engine/context.c).
 */
#include "kernels.h"

namespace bzn_cuda {

#define BZN_RESIZE_BITS 22 /* image/resize.c's PRECISION_BITS */

__device__ __forceinline__ uint8_t clip8(int32_t acc) {
    const int32_t v = acc >> BZN_RESIZE_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* horizontal pass: every row of the frame to dw pixels (tmp: sh x dw x 3) */
__global__ void resize_rows_kernel(const uint8_t *rgb, int sh, int stride, ResizeAxis px, int dw, uint8_t *tmp) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y;
    if (x >= dw || y >= sh) return;
    const int32_t *k = px.weight + (size_t)x * px.ksize;
    const uint8_t *p = rgb + (size_t)y * stride + (size_t)px.first[x] * 3;
    int32_t acc[3] = {1 << (BZN_RESIZE_BITS - 1), 1 << (BZN_RESIZE_BITS - 1), 1 << (BZN_RESIZE_BITS - 1)};
    for (int t = 0; t < px.count[x]; t++, p += 3)
        for (int c = 0; c < 3; c++) acc[c] += (int32_t)p[c] * k[t];
    for (int c = 0; c < 3; c++) tmp[((size_t)y * dw + x) * 3 + c] = clip8(acc[c]);
}

/* vertical pass and normalisation: (v / 255 - mean) / std, HWC -> CHW */
__global__ void resize_columns_kernel(const uint8_t *tmp, ResizeAxis py, int dw, int dh, float m0, float m1, float m2,
                                      float s0, float s1, float s2, float *out) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y;
    if (x >= dw || y >= dh) return;
    const int32_t *k = py.weight + (size_t)y * py.ksize;
    const uint8_t *p = tmp + ((size_t)py.first[y] * dw + x) * 3;
    int32_t acc[3] = {1 << (BZN_RESIZE_BITS - 1), 1 << (BZN_RESIZE_BITS - 1), 1 << (BZN_RESIZE_BITS - 1)};
    for (int t = 0; t < py.count[y]; t++, p += (size_t)dw * 3)
        for (int c = 0; c < 3; c++) acc[c] += (int32_t)p[c] * k[t];
    const float mean[3] = {m0, m1, m2}, sd[3] = {s0, s1, s2};
    const size_t plane = (size_t)dw * dh;
    for (int c = 0; c < 3; c++)
        out[c * plane + (size_t)y * dw + x] = __fsub_rn((float)clip8(acc[c]) / 255.0f, mean[c]) / sd[c];
}

cudaError_t preprocess(const uint8_t *rgb, int sw, int sh, int stride, uint8_t *tmp, const ResizeAxis &px,
                       const ResizeAxis &py, int dw, int dh, const float mean[3], const float std[3], float *out,
                       cudaStream_t stream) {
    (void)sw;
    cudaError_t e = BZN_LAUNCH(resize_rows_kernel, dim3(ceil_div((size_t)dw, 128), (unsigned)sh), dim3(128), stream,
                               rgb, sh, stride, px, dw, tmp);
    if (e != cudaSuccess) return e;
    return BZN_LAUNCH(resize_columns_kernel, dim3(ceil_div((size_t)dw, 128), (unsigned)dh), dim3(128), stream, tmp, py,
                      dw, dh, mean[0], mean[1], mean[2], std[0], std[1], std[2], out);
}

__global__ void nonfinite_kernel(const float *x, size_t n, unsigned long long *count) {
    unsigned long long bad = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        bad += (__float_as_uint(x[i]) & 0x7f800000u) == 0x7f800000u;
    if (bad) atomicAdd(count, bad);
}

cudaError_t count_nonfinite(const float *x, size_t n, unsigned long long *count, cudaStream_t stream) {
    const unsigned blocks = ceil_div(n, 256) < 1024 ? ceil_div(n, 256) : 1024;
    return BZN_LAUNCH(nonfinite_kernel, dim3(blocks ? blocks : 1), dim3(256), stream, x, n, count);
}

/* 0 neo, 1 non, 2 background: argmax of 3 logits (the first on ties), or of 2 sigmoid maps
 * polyp when either logit > 0, neo when neo >= non (engine/context.c, classify) */
__global__ void classmap_kernel(const float *x, int C, int H, int W, const int *rows, const int *cols, int width,
                                int height, uint8_t *out) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x, i = blockIdx.y;
    if (j >= width || i >= height) return;
    const size_t plane = (size_t)H * W, p = (size_t)rows[i] * W + cols[j];
    uint8_t c;
    if (C == 3) {
        int best = 0;
        for (int k = 1; k < 3; k++)
            if (x[k * plane + p] > x[best * plane + p]) best = k;
        c = (uint8_t)best;
    } else {
        const float neo = x[p], non = x[plane + p];
        c = fmaxf(neo, non) <= 0.0f ? 2 : neo >= non ? 0 : 1;
    }
    out[(size_t)i * width + j] = c;
}

cudaError_t class_map(const float *x, int C, int H, int W, const int *rows, const int *cols, int width, int height,
                      uint8_t *out, cudaStream_t stream) {
    return BZN_LAUNCH(classmap_kernel, dim3(ceil_div((size_t)width, 128), (unsigned)height), dim3(128), stream, x, C, H,
                      W, rows, cols, width, height, out);
}

} // namespace bzn_cuda
