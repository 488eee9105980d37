/*
 * mma.cuh - the tensor-core instructions the convolution uses, each behind one small
 * function: inline PTX under nvcc, the emulator's rebuild across the warp's 32 lanes under
 * BZN_CUDA_EMU (tests/cudaemu). Fragment layouts are those of NVIDIA's PTX ISA manual
 * ("Matrix Fragments for mma.m16n8k16 / mma.m16n8k32"); with groupID g = lane / 4 and
 * t = lane % 4:
 *
 *   m16n8k16, f16 in, f32 accumulate      m16n8k32, s8 in, s32 accumulate
 *   a[i]: 2 halves, row g + 8*(i&1),      a[i]: 4 bytes, row g + 8*(i&1),
 *         cols 2t + 8*(i>>1) + {0,1}            cols 4t + 16*(i>>1) + {0..3}
 *   b[j]: 2 halves, col g,                b[j]: 4 bytes, col g,
 *         rows 2t + 8j + {0,1}                  rows 4t + 16j + {0..3}
 *   c/d[r]: row g + 8*(r>>1), col 2t + (r&1)  (both)
 *
 * The lower-indexed element sits in the low bits of each 32-bit register. m16n8k8 with tf32
 * holds one element per register: a[i] row g + 8*(i&1), col t + 4*(i>>1); b[j] row t + 4j.
 */
#ifndef BZN_CUDA_MMA_CUH
#define BZN_CUDA_MMA_CUH

#include "common.cuh"

namespace bzn_cuda {

/* d += A(16x16 f16) * B(16x8 f16), fp32 accumulation */
__device__ __forceinline__ void mma_f16(float d[4], const uint32_t a[4], const uint32_t b[2]) {
#ifdef BZN_CUDA_EMU
    cudaemu_mma_m16n8k16_f32f16(d, a, b, d);
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

/* d += A(16x32 s8) * B(32x8 s8), int32 accumulation */
__device__ __forceinline__ void mma_s8(int d[4], const uint32_t a[4], const uint32_t b[2]) {
#ifdef BZN_CUDA_EMU
    cudaemu_mma_m16n8k32_s32s8(d, a, b, d);
#else
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

/* d += A(16x8 tf32) * B(8x8 tf32), fp32 accumulation */
__device__ __forceinline__ void mma_tf32(float d[4], const uint32_t a[4], const uint32_t b[2]) {
#ifdef BZN_CUDA_EMU
    cudaemu_mma_m16n8k8_f32tf32(d, a, b, d);
#else
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

/* x rounded to TF32 (10 mantissa bits, ties away from zero), as a float */
__device__ __forceinline__ float to_tf32(float x) {
#ifdef BZN_CUDA_EMU
    return __uint_as_float(cudaemu_cvt_rna_tf32(x));
#else
    uint32_t u;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(u) : "f"(x));
    return __uint_as_float(u);
#endif
}

} // namespace bzn_cuda

#endif
