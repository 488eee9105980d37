/*
 * winograd.h - FP32 3x3, stride-1, dilation-1 convolutions by Winograd's minimal filtering
 * algorithm F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
 *
 * A direct 3x3 convolution spends 9 multiply-adds per output pixel, input channel and output
 * channel. Winograd's F(4,3) computes a 4x4 block of outputs (a "tile") from the 6x6 block of
 * input around it with 36 multiplies instead of 16 x 9 = 144, once the 6x6 input and the 3x3
 * kernel have been moved into a "transformed domain" where the convolution is an elementwise
 * product. Per tile, per input channel c and output channel o:
 *
 *   U = G g G^T     (6x6)  the kernel g (3x3) transformed, once per model
 *   V = B^T d B     (6x6)  the input block d (6x6) transformed, once per frame and channel
 *   M = sum_c U_oc (.) V_c  elementwise product, summed over the input channels
 *   Y = A^T M A     (4x4)  the output tile, then + bias and the activation
 *
 * with (the interpolation points 0, 1, -1, 2, -2 and infinity)
 *
 *          | 4   0  -5   0   1   0 |          |  1/4     0     0  |
 *          | 0  -4  -4   1   1   0 |          | -1/6  -1/6  -1/6  |          | 1  1   1  1   1  0 |
 *   B^T =  | 0   4  -4  -1   1   0 |     G =  | -1/6   1/6  -1/6  |   A^T =  | 0  1  -1  2  -2  0 |
 *          | 0  -2  -1   2   1   0 |          |  1/24  1/12  1/6  |          | 0  1   1  4   4  0 |
 *          | 0   2  -1  -2   1   0 |          |  1/24 -1/12  1/6  |          | 0  1  -1  8  -8  1 |
 *          | 0   4   0  -5   0   1 |          |  0     0     1    |
 *
 * The sum over input channels, for each of the 36 positions (i, j) of the 6x6 domain, is a
 * matrix product: M[ij] (out_c x tiles) = U[ij] (out_c x in_c) x V[ij] (in_c x tiles). Those 36
 * GEMMs run on the direct convolution's own 8 x 48 block kernel (bzn_f32_block: 8 output
 * channels x 48 tiles), or on OpenBLAS sgemm where the CPU has no kernel of ours (BZN_ISA=scalar).
 *
 * Per frame (bzn_wino_conv; winograd.c has the details):
 *   1. the input, zero padded, is laid out in row strips so that every tile's 6x6 block is
 *      read with whole vectors;
 *   2. for every block of 48 tiles, each thread transforms the block's input, every input
 *      channel (V[ij], kept in the core's cache), then for every 8 output channels runs the
 *      36 GEMM blocks and at once, while they are in cache, the output transform with bias
 *      and activation, written straight into the output (which may be a channel slice of a
 *      concatenation); tiles that stick out past the output's right or bottom edge keep only
 *      their inside pixels.
 *
 * Accuracy: the transforms add and subtract values of different sizes (coefficients up to 8,
 * down to 1/24), so the results carry a few more float roundings than a direct convolution's:
 * against the plain C reference, at most 3.2e-6 of the output's range over tests/test_ops.c's
 * cases (the direct kernel: 2.9e-7; the test allows 2e-5); through the whole network, every
 * module within 7.4e-6 of its range of PyTorch's (tests/test_parity.c, limit 1e-4; 1.2e-5
 * with BZN_WINOGRAD=all); on the shipped model and the four sample frames, every module within
 * 2.2e-5 of its range of the direct path's, the logits within 7e-7, the class maps identical.
 * Why F(4,3) and not F(6,3) (8x8 input tiles, 64 multiplies per 36 outputs, 21% fewer than
 * F(4,3)'s 36 per 16): the transforms' coefficients grow (up to 32 and down to 1/90), which
 * costs roughly another order of magnitude of error; its kernels are 7.1x the 3x3 weights'
 * size instead of 4x; and here the GEMMs take only half to two thirds of a Winograd layer's
 * time (profiled), the rest being transforms, which get more expensive with the tile.
 */
#ifndef BZN_CPU_WINOGRAD_H
#define BZN_CPU_WINOGRAD_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "gemm_f32.h"
#include "pool.h"

#define BZN_WINO_OUT 4   /* output tile: 4 x 4 pixels */
#define BZN_WINO_IN 6    /* input tile: 6 x 6 pixels (4 + 3 - 1) */
#define BZN_WINO_POS 36  /* positions of the transformed domain: 6 x 6 */
#define BZN_WINO_TAG 0x57494e4f /* "WINO": tells these weights from the INT8 ones (cpu.c) */

/* A convolution's kernels in the transformed domain (weights_prepare, once per model):
 * u[ij][oc][ic] = (G g G^T)[i][j] for g = weight[oc][ic], ij = 6 i + j; row oc of position ij
 * is one row of the GEMM's A, in_c floats. */
typedef struct {
    uint32_t tag; /* BZN_WINO_TAG */
    int in_c, out_c;
    float *u;
} bzn_wino_weights;

/* What one convolution needs per context (conv_prepare): its tiling, chunks and offset table. */
typedef struct bzn_wino_plan bzn_wino_plan;

/* Where a block of BZN_WINO_NB consecutive tiles goes (tile m = ty (tiles_x + 1) + t: one
 * dummy per tile row, computed and dropped), for the FP32 and the INT8 Winograd: runs of
 * consecutive tiles in one tile row (tile t0 .. t0 + len - 1 of the block is tile row ty,
 * tile columns tx .. tx + len - 1). */
#define BZN_WINO_NB 48 /* tiles per block: the block kernels' columns */
typedef struct {
    int out_h, out_w, n;
    int t0[BZN_WINO_NB], len[BZN_WINO_NB], ty[BZN_WINO_NB], tx[BZN_WINO_NB];
} bzn_wino_runs;
/* block tb's runs (out_h, out_w are the caller's) */
void bzn_wino_block_runs(int tiles_y, int tiles_x, int tb, bzn_wino_runs *r);

/* k 3, stride 1, dilation 1 (a stride or dilation of 0 counts as "not known yet": the weight
 * cache prepares weights before it knows the layer's geometry) and float weights. */
int bzn_wino_shape_ok(const bzn_conv_args *a);
bzn_status bzn_wino_weights_make(const bzn_conv_args *a, bzn_wino_weights **out, size_t *bytes, bzn_error *err);
void bzn_wino_weights_free(bzn_wino_weights *w);

/* kern: the block kernel (BZN_F32_SGEMM: OpenBLAS); threads: the pool's */
bzn_status bzn_wino_plan_make(const bzn_conv_args *a, bzn_f32_kernel kern, int threads, bzn_wino_plan **out,
                              bzn_error *err);
void bzn_wino_plan_free(bzn_wino_plan *p);
size_t bzn_wino_scratch(const bzn_wino_plan *p);
/* one frame; a->weights is the bzn_wino_weights, scratch at least bzn_wino_scratch bytes */
void bzn_wino_conv(bzn_pool *pool, const bzn_wino_plan *p, const bzn_conv_args *a, void *scratch);

#endif
