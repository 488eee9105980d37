/*
 * gemm_f32.h - the block kernel of the CPU backend's direct FP32 convolution.
 *
 * One 8 x NR block of a float GEMM (the tile shape of the int8 kernels, BZN_S8_MR x BZN_S8_NR,
 * so that the convolution code serves both): A's rows are read where they lie (w[r][k],
 * r < 8: the convolution's weights, row-major), B's row k is the NR floats at b + koff[k] (a
 * kernel tap of one input channel over NR consecutive pixels of a zero-padded plane):
 *
 *   acc[r][j] = sum_k w[r][k] * b[koff[k] + j]
 *
 * AVX-512F (24 zmm accumulators, vfmadd231ps) where the CPU has it, which the backend asks
 * bzn_f32_direct_available() at run time; elsewhere the backend uses OpenBLAS sgemm instead.
 */
#ifndef BZN_GEMM_F32_H
#define BZN_GEMM_F32_H

#include <stddef.h>

#include "gemm_s8.h"

int bzn_f32_direct_available(void);
void bzn_f32_block(int K, const float *b, const size_t *koff, const float *const w[BZN_S8_MR],
                   float acc[BZN_S8_MR][BZN_S8_NR]);

#endif
