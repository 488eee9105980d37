/* gemm_f32.c - the FP32 direct convolution's block kernels (see gemm_f32.h). */
#include "gemm_f32.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BZN_X86 1
#endif

bzn_f32_kernel bzn_f32_best_kernel(void) {
#ifdef BZN_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return BZN_F32_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return BZN_F32_AVX2;
#endif
    return BZN_F32_SGEMM;
}

const char *bzn_f32_kernel_name(bzn_f32_kernel k) {
    return k == BZN_F32_AVX512 ? "avx512" : k == BZN_F32_AVX2 ? "avx2" : "im2col+sgemm";
}

#ifdef BZN_X86
#define F32_NZ (BZN_S8_NR / 16) /* zmm registers per row of the tile */

__attribute__((target("avx512f"))) static void f32_block_avx512(int K, const float *b0, const size_t *koff,
                                                                const float *const w[BZN_F32_MR],
                                                                float acc_out[BZN_F32_MR][BZN_S8_NR], int add) {
    __m512 acc[BZN_F32_MR][F32_NZ];
    for (int r = 0; r < BZN_F32_MR; r++)
        for (int z = 0; z < F32_NZ; z++) acc[r][z] = add ? _mm512_loadu_ps(&acc_out[r][16 * z]) : _mm512_setzero_ps();
    for (int k = 0; k < K; k++) {
        const float *b = b0 + koff[k];
        __m512 bz[F32_NZ];
        for (int z = 0; z < F32_NZ; z++) bz[z] = _mm512_loadu_ps(b + 16 * z);
        for (int r = 0; r < BZN_F32_MR; r++) {
            const __m512 wv = _mm512_set1_ps(w[r][k]);
            for (int z = 0; z < F32_NZ; z++) acc[r][z] = _mm512_fmadd_ps(bz[z], wv, acc[r][z]);
        }
    }
    for (int r = 0; r < BZN_F32_MR; r++)
        for (int z = 0; z < F32_NZ; z++) _mm512_storeu_ps(&acc_out[r][16 * z], acc[r][z]);
}

/* the AVX2 sub-block: rows r0..r0+3, columns c0..c0+23. The twelve accumulators are named
 * variables: GCC 12 kept an array of them on the stack, storing all twelve every iteration. */
#define F32_MR2 4
#define F32_NR2 24
#define F32_ROW(r, a0, a1, a2)                                \
    do {                                                      \
        const __m256 wv = _mm256_broadcast_ss(&w[r][k]);      \
        a0 = _mm256_fmadd_ps(y0, wv, a0);                     \
        a1 = _mm256_fmadd_ps(y1, wv, a1);                     \
        a2 = _mm256_fmadd_ps(y2, wv, a2);                     \
    } while (0)
__attribute__((target("avx2,fma"))) static void f32_sub_avx2(int K, const float *b0, const size_t *koff,
                                                            const float *const w[F32_MR2],
                                                            float acc_out[BZN_F32_MR][BZN_S8_NR], int r0, int c0, int add) {
    float *o0 = &acc_out[r0][c0], *o1 = &acc_out[r0 + 1][c0], *o2 = &acc_out[r0 + 2][c0], *o3 = &acc_out[r0 + 3][c0];
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
    __m256 a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
    if (add) {
        a00 = _mm256_loadu_ps(o0), a01 = _mm256_loadu_ps(o0 + 8), a02 = _mm256_loadu_ps(o0 + 16);
        a10 = _mm256_loadu_ps(o1), a11 = _mm256_loadu_ps(o1 + 8), a12 = _mm256_loadu_ps(o1 + 16);
        a20 = _mm256_loadu_ps(o2), a21 = _mm256_loadu_ps(o2 + 8), a22 = _mm256_loadu_ps(o2 + 16);
        a30 = _mm256_loadu_ps(o3), a31 = _mm256_loadu_ps(o3 + 8), a32 = _mm256_loadu_ps(o3 + 16);
    }
    for (int k = 0; k < K; k++) {
        const float *b = b0 + koff[k];
        const __m256 y0 = _mm256_loadu_ps(b), y1 = _mm256_loadu_ps(b + 8), y2 = _mm256_loadu_ps(b + 16);
        F32_ROW(0, a00, a01, a02);
        F32_ROW(1, a10, a11, a12);
        F32_ROW(2, a20, a21, a22);
        F32_ROW(3, a30, a31, a32);
    }
    _mm256_storeu_ps(o0, a00), _mm256_storeu_ps(o0 + 8, a01), _mm256_storeu_ps(o0 + 16, a02);
    _mm256_storeu_ps(o1, a10), _mm256_storeu_ps(o1 + 8, a11), _mm256_storeu_ps(o1 + 16, a12);
    _mm256_storeu_ps(o2, a20), _mm256_storeu_ps(o2 + 8, a21), _mm256_storeu_ps(o2 + 16, a22);
    _mm256_storeu_ps(o3, a30), _mm256_storeu_ps(o3 + 8, a31), _mm256_storeu_ps(o3 + 16, a32);
}
#undef F32_ROW

static void f32_block_avx2(int K, const float *b, const size_t *koff, const float *const w[BZN_F32_MR],
                           float acc[BZN_F32_MR][BZN_S8_NR], int add) {
    for (int r0 = 0; r0 < BZN_F32_MR; r0 += F32_MR2)
        for (int c0 = 0; c0 < BZN_S8_NR; c0 += F32_NR2) f32_sub_avx2(K, b + c0, koff, w + r0, acc, r0, c0, add);
}
#endif

void bzn_f32_block(bzn_f32_kernel kern, int K, const float *b, const size_t *koff, const float *const w[BZN_F32_MR],
                   float acc[BZN_F32_MR][BZN_S8_NR], int add) {
#ifdef BZN_X86
    if (kern == BZN_F32_AVX512) {
        f32_block_avx512(K, b, koff, w, acc, add);
        return;
    }
    if (kern == BZN_F32_AVX2) {
        f32_block_avx2(K, b, koff, w, acc, add);
        return;
    }
#endif
    (void)kern; /* not reached by the backend (it runs sgemm), kept as the definition */
    for (int r = 0; r < BZN_F32_MR; r++)
        for (int j = 0; j < BZN_S8_NR; j++) {
            float s = add ? acc[r][j] : 0.0f;
            for (int k = 0; k < K; k++) s = __builtin_fmaf(w[r][k], b[koff[k] + j], s);
            acc[r][j] = s;
        }
}
