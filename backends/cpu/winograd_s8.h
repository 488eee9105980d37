/*
 * winograd_s8.h - INT8 3x3, stride-1, dilation-1 convolutions by an integer Winograd
 * F(4x4, 3x3) that gives exactly the int32 sums of the direct convolution (AVX2).
 *
 * The FP32 Winograd (winograd.h) computes, per 4x4 output tile, input channel c and output
 * channel o,  Y = A^T [ sum_c (G g_oc G^T) (.) (B^T d_c B) ] A.  For integer d and g that is
 * the exact integer correlation, but G has the fractions 1/4, 1/6, 1/12, 1/24. Here:
 *
 *   G' = diag(s) G with s = (4, 6, 6, 24, 24, 1):
 *
 *        |  1  0  0 |
 *        | -1 -1 -1 |      U' = G' g G'^T, integers: |U'| <= 7 x 7 x 127 = 6223 (int16)
 *   G' = | -1  1 -1 |      V  = B^T d B (B^T: winograd.h), d = q in -128..127:
 *        |  1  2  4 |           |V| <= 10 x 10 x 128 = 12800 (int16; B^T's rows add up to
 *        |  1 -2  4 |           at most 10 in absolute value)
 *        |  0  0  1 |
 *
 *   M'[i][j] = sum_c U'[i][j] V[i][j]      (vpmaddwd: int16 pairs of input channels into int32)
 *   576 Y = A^T (F (.) M') A,  F[i][j] = (24 / s_i)(24 / s_j), 24 / s = (6, 4, 4, 1, 1, 24)
 *
 * since (G g G^T)[i][j] = U'[i][j] / (s_i s_j). Every step after the int16 inputs is a ring
 * operation (add, subtract, multiply by an integer), so computed modulo 2^32 (int32 lanes
 * that wrap, as vpmaddwd's sums and vpaddd do) it gives 576 Y mod 2^32 = 64 (9 Y mod 2^26),
 * whatever the intermediate sums' sizes: shifted right by 6 and multiplied by the inverse of
 * 9 modulo 2^32 (0x38e38e39) that is Y mod 2^26, and Y itself where |Y| < 2^25. The only
 * products that are not exact ring operations are vpmaddwd's (int16 x int16, two summed
 * into int32): at most 2 x 6223 x 12800 < 2^31, never wrapped.
 *
 * The condition |Y| < 2^25 is checked per convolution from its weights, once
 * (bzn_wino_s8_exact): |Y| <= 128 sum |w| over the output channel's 9 in_c weights, so
 * every channel needs sum |w| < 2^18. A convolution that fails it stays direct. So the
 * result is the direct kernel's, bit for bit, for any input, and the epilogue (bias,
 * activation, the consumer's quantization) is the same code.
 *
 * Cost: 36 multiplies per tile and channel pair instead of 144, at vpmaddwd's 16 per
 * instruction where the direct AVX2 kernel does 32 per vpmaddubsw + vpmaddwd pair: about
 * 2x fewer multiply instructions, plus the transforms. On AVX-512 VNNI and AMX CPUs, whose
 * int8 instructions are 2x and 60x denser, the direct kernels stay (not measured there).
 * The transformed weights are 36 / 9 x 2 bytes = 8x the int8 weights' size.
 *
 * Per frame (bzn_wino_s8_conv): the input's int8 planes (cpu.c's layout) are spread into
 * int16 row strips by row mod 4 and column mod 4 ("phase"), every group of 4 channels once; then work
 * items of one block of 48 tiles and a share of the output channels: the block's V (every
 * input channel pair, interleaved for vpmaddwd), the 36 GEMMs for 16 output channels at a
 * time, the output transforms and the caller's store of each run of output pixels.
 */
#ifndef BZN_CPU_WINOGRAD_S8_H
#define BZN_CPU_WINOGRAD_S8_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "pool.h"

#define BZN_WINO_S8_TAG 0x57494e38 /* "WIN8": tells these weights from the others (cpu.c) */

/* U'[ij][oc][c] for ij = 6 i + j, output channels rounded up to 4 (the rows past out_c are
 * zero), input channels in pairs, as many as 2 ceil(in_c / 4) (those past in_c zero), the 4
 * rows of a quad side by side: [36][oc_pad / 4][pairs][4 rows][2] */
typedef struct {
    uint32_t tag; /* BZN_WINO_S8_TAG */
    int in_c, out_c, oc_pad, pairs;
    int16_t *u;
} bzn_wino_s8_weights;

/* 3x3, stride and dilation 1 (0: not known yet), int8 weights, and the sums provably exact */
int bzn_wino_s8_ok(const bzn_conv_args *a);
bzn_status bzn_wino_s8_weights_make(const bzn_conv_args *a, bzn_wino_s8_weights **out, size_t *bytes,
                                    bzn_error *err);
void bzn_wino_s8_weights_free(bzn_wino_s8_weights *w);

typedef struct bzn_wino_s8_plan bzn_wino_s8_plan;
bzn_status bzn_wino_s8_plan_make(const bzn_conv_args *a, int threads, bzn_wino_s8_plan **out, bzn_error *err);
void bzn_wino_s8_plan_free(bzn_wino_s8_plan *p);
size_t bzn_wino_s8_scratch(const bzn_wino_s8_plan *p);

/* The caller's epilogue of `rows` (<= 4) output channels from oc0 (a multiple of 4) over n
 * output pixels from (oy, ox) of one row: acc[r][0 .. n) are channel oc0 + r's int32 sums. */
typedef void (*bzn_wino_s8_store_fn)(void *arg, int oc0, int rows, const int32_t *const acc[4], int n, int oy,
                                     int ox);

/* one frame: planes are the input quantized in cpu.c's layout ([ceil(in_c / 4)][in_h + 2 pad]
 * [in_w + 2 pad][4] bytes, q + 128); a->weights the bzn_wino_s8_weights; scratch at least
 * bzn_wino_s8_scratch bytes */
void bzn_wino_s8_conv(bzn_pool *pool, const bzn_wino_s8_plan *p, const bzn_conv_args *a, const uint8_t *planes,
                      void *scratch, bzn_wino_s8_store_fn store, void *store_arg);

#endif
