/*
 * common.cuh - what every CUDA source of the backend includes: the runtime (or, with
 * BZN_CUDA_EMU, the CPU emulator tests/cudaemu/cudaemu.h, force-included by the build), the
 * launch macro and the small device helpers the kernels share.
 *
 * Kernels are launched only through BZN_LAUNCH, never with <<<>>>: under nvcc it is the
 * usual launch; under the emulator it hands the launch to cudaemu_launch as a closure, so
 * the very same source runs on the CPU, each CUDA thread a fiber (tests/cudaemu/README.md).
 */
#ifndef BZN_CUDA_COMMON_CUH
#define BZN_CUDA_COMMON_CUH

#include <stddef.h>
#include <stdint.h>

#ifndef BZN_CUDA_EMU
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#define BZN_LAUNCH(kernel, grid, block, stream, ...) (kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__), cudaGetLastError())
#else
#define BZN_LAUNCH(kernel, grid, block, stream, ...)                                                                   \
    cudaemu_launch((grid), (block), (stream), __FILE__, __LINE__, [=]() { kernel(__VA_ARGS__); })
#endif

namespace bzn_cuda {

/* the activations as the CPU backends apply them (backend.h): NaN gives 0 */
__device__ __forceinline__ float activate(float v, int act) {
    if (act == 1) return v > 0.0f ? v : 0.0f;
    if (act == 2) {
        v = v > 0.0f ? v : 0.0f;
        return v < 6.0f ? v : 6.0f;
    }
    return v;
}

/* bzn_quantize (backend.h): clamp x / scale to [-127, 127] (NaN: -127), round to nearest even */
__device__ __forceinline__ int quantize(float x, float inv_scale) {
    float v = __fmul_rn(x, inv_scale);
    if (!(v >= -127.0f)) v = -127.0f;
    if (v > 127.0f) v = 127.0f;
    return __float2int_rn(v);
}

static inline unsigned ceil_div(size_t a, unsigned b) { return (unsigned)((a + b - 1) / b); }

} // namespace bzn_cuda

#endif
