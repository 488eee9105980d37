/* gemm_f32.c - the FP32 direct convolution's block kernel (see gemm_f32.h). */
#include "gemm_f32.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BZN_X86 1
#endif

#define BZN_F32_NZ (BZN_S8_NR / 16) /* zmm registers per row of the tile */

int bzn_f32_direct_available(void) {
#ifdef BZN_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

#ifdef BZN_X86
__attribute__((target("avx512f"))) static void f32_block_avx512(int K, const float *b0, const size_t *koff,
                                                                const float *const w[BZN_S8_MR],
                                                                float acc_out[BZN_S8_MR][BZN_S8_NR]) {
    __m512 acc[BZN_S8_MR][BZN_F32_NZ];
    for (int r = 0; r < BZN_S8_MR; r++)
        for (int z = 0; z < BZN_F32_NZ; z++) acc[r][z] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++) {
        const float *b = b0 + koff[k];
        __m512 bz[BZN_F32_NZ];
        for (int z = 0; z < BZN_F32_NZ; z++) bz[z] = _mm512_loadu_ps(b + 16 * z);
        for (int r = 0; r < BZN_S8_MR; r++) {
            const __m512 wv = _mm512_set1_ps(w[r][k]);
            for (int z = 0; z < BZN_F32_NZ; z++) acc[r][z] = _mm512_fmadd_ps(bz[z], wv, acc[r][z]);
        }
    }
    for (int r = 0; r < BZN_S8_MR; r++)
        for (int z = 0; z < BZN_F32_NZ; z++) _mm512_storeu_ps(&acc_out[r][16 * z], acc[r][z]);
}
#endif

void bzn_f32_block(int K, const float *b, const size_t *koff, const float *const w[BZN_S8_MR],
                   float acc[BZN_S8_MR][BZN_S8_NR]) {
#ifdef BZN_X86
    f32_block_avx512(K, b, koff, w, acc);
#else
    for (int r = 0; r < BZN_S8_MR; r++)
        for (int j = 0; j < BZN_S8_NR; j++) {
            float s = 0;
            for (int k = 0; k < K; k++) s += w[r][k] * b[koff[k] + j];
            acc[r][j] = s;
        }
#endif
}

