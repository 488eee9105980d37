/*
 * gemm_f32.h - the block kernel of the CPU backend's direct FP32 convolution.
 *
 * One 8 x NR block of a float GEMM (NR = BZN_S8_NR columns, as the int8 kernels' tiles, so
 * that the convolution code serves both): A's rows are read where they lie (w[r][k],
 * r < 8: the convolution's weights, row-major), B's row k is the NR floats at b + koff[k] (a
 * kernel tap of one input channel over NR consecutive pixels of a zero-padded plane):
 *
 *   acc[r][j] = sum_k w[r][k] * b[koff[k] + j]
 *
 * Two kernels, chosen at run time from what the CPU reports:
 *   - AVX-512F: the whole 8 x 48 block in 24 zmm accumulators;
 *   - AVX2 + FMA: 16 ymm registers hold a 4 x 24 sub-block (12 accumulators, 3 loads of B,
 *     1 broadcast), and the block is four such passes over K.
 * Both sum over k in the same order, one fused multiply-add per term (vfmadd231ps), so they
 * give the same floats; the CPU backend runs im2col + OpenBLAS sgemm where neither is there.
 */
#ifndef BZN_GEMM_F32_H
#define BZN_GEMM_F32_H

#include <stddef.h>

#include "gemm_s8.h"

#define BZN_F32_MR 8 /* rows of A per block */

typedef enum { BZN_F32_SGEMM = 0, BZN_F32_AVX2 = 1, BZN_F32_AVX512 = 2 } bzn_f32_kernel;

/* the best direct kernel this CPU runs (BZN_F32_SGEMM: none) */
bzn_f32_kernel bzn_f32_best_kernel(void);
const char *bzn_f32_kernel_name(bzn_f32_kernel k);
/* add: acc += the sum instead of acc = (one GEMM over K in chunks: the terms of every element
 * are then added in the same order as in one call over all of K, so the floats are the same) */
void bzn_f32_block(bzn_f32_kernel kern, int K, const float *b, const size_t *koff, const float *const w[BZN_F32_MR],
                   float acc[BZN_F32_MR][BZN_S8_NR], int add);

#endif
