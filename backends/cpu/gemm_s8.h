/*
 * gemm_s8.h - int8 matrix multiplication for quantized convolutions.
 *
 *   C[m][n] = sum_k A[m][k] * B[k][n]    A: int8 weights, B: uint8 activations, C: int32
 *
 * Activations are quantized symmetrically (q in -127..127) and stored offset by 128 as
 * uint8 (the form vpdpbusd multiplies); the caller removes the offset with
 * 128 * rowsum(A[m]). Five kernels compute exactly the same integers:
 *   - a plain C reference,
 *   - AVX2 (vpmaddubsw on |a| and sign-transferred weights, exact: no saturation),
 *   - AVX-VNNI (the 256-bit, VEX-encoded vpdpbusd of AVX2-only client CPUs: Alder Lake and
 *     later Intel cores, AMD Zen 5 client parts; 32 multiply-adds per instruction),
 *   - AVX-512 VNNI (vpdpbusd on zmm, 64 multiply-adds per instruction),
 *   - AMX (Sapphire Rapids and later Xeons: tdpbsud multiplies a 16 x 64 tile of weights by a
 *     16 x 16 x 4 tile of activations into 16 x 16 int32, 16384 multiply-adds per instruction),
 * chosen at run time from what the CPU (and, for AMX, the operating system) reports, never
 * assumed at build time. vpdpbusd and tdpbsud add u8 x s8 products in int32 without
 * intermediate saturation, so they are exact for any input.
 *
 * Layouts (K padded to a multiple of 4, M to 16):
 *   A: [M/16][K/4][16 rows][4 k]   (bzn_s8_pack_a); for AMX, K padded to 64 and each block
 *      [K/64][16 rows][64 k] (a tile's rows are output channels, 64 k bytes each)
 *   B: NR = 48 columns at a time; the 192 bytes of group g (4 k x 48 columns, [48][4])
 *      start at b + goff[g]. A convolution points the groups straight into its input
 *      (stride 1: the input is stored 4 channels interleaved, so a kernel tap of 4 channels
 *      over 48 consecutive pixels is 192 consecutive bytes) or packs a tile (goff[g] = 192 g).
 */
#ifndef BZN_GEMM_S8_H
#define BZN_GEMM_S8_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

#define BZN_S8_MR 16 /* rows of A per block: one AMX tile; the other kernels run it in 4 or 8 */
#define BZN_S8_NR 48 /* columns of B per tile: 8 x 3 zmm accumulators, or 3 AMX tiles */
#define BZN_S8_AMX_KG 16 /* groups of 4 k per AMX tile (64 bytes a row) */

typedef enum {
    BZN_S8_REF = 0,
    BZN_S8_AVX2 = 1,
    BZN_S8_AVXVNNI = 2,
    BZN_S8_VNNI = 3,
    BZN_S8_AMX = 4,
    BZN_S8_KERNELS = 5
} bzn_s8_kernel;

static inline int bzn_s8_kpad(int k) { return (k + 3) / 4 * 4; }
static inline int bzn_s8_mpad(int m) { return (m + BZN_S8_MR - 1) / BZN_S8_MR * BZN_S8_MR; }
/* the groups of 4 k of A's packed blocks (kg rounded up to 16 for AMX) */
static inline int bzn_s8_kg_packed(bzn_s8_kernel kern, int kg) {
    return kern == BZN_S8_AMX ? (kg + BZN_S8_AMX_KG - 1) / BZN_S8_AMX_KG * BZN_S8_AMX_KG : kg;
}

/* whether this CPU runs kernel k (an AVX-512 VNNI CPU may lack AVX-VNNI, and the reverse;
 * AMX also needs the kernel's permission, asked for once: Linux arch_prctl) */
int bzn_s8_kernel_runs(bzn_s8_kernel k);
/* the best kernel this CPU runs */
bzn_s8_kernel bzn_s8_best_kernel(void);
const char *bzn_s8_kernel_name(bzn_s8_kernel k);

/* pack A (M x K, row-major) for kernel kern into `packed` (mpad * 4 kg_packed bytes);
 * rowsum[m] = sum_k A[m][k] */
void bzn_s8_pack_a(bzn_s8_kernel kern, const int8_t *a, int m, int k, int8_t *packed, int32_t *rowsum);

/* One block of C: acc = A rows [16 mb, 16 mb + 16) x (B - 128) over NR columns, exact; with
 * `add`, acc += (a GEMM over K in chunks: rowsum is then not read). Only the first `rows`
 * rows (<= 16) of acc are written.
 * a_block = a_packed + (mb * kg_packed + g0) * 64 for the chunk of K starting at group g0
 * (a multiple of 16 for AMX), rowsum = rowsum + 16 mb.
 * AMX reads 16 groups of B as one tile where they are equally spaced (a convolution's
 * channel groups at one kernel tap, or a packed tile), and gathers them otherwise (and for
 * a last partial tile). It configures the thread's tiles at its first call.
 * b_nonneg: the caller knows every B byte is >= 128 (q >= 0: the input came out of a ReLU),
 * which spares the AVX2 kernel a sign transfer per row; the others compute the same either
 * way. With it set and a byte below 128 the AVX2 result is wrong, so it is a promise. */
void bzn_s8_block(bzn_s8_kernel kern, int kg, const int8_t *a_block, const int32_t *rowsum, int rows,
                  const uint8_t *b, const size_t *goff, int b_nonneg, int32_t acc[BZN_S8_MR][BZN_S8_NR], int add);

/* After a thread's last bzn_s8_block with kern (AMX: release the tiles, so that the thread's
 * saved state is small again); nothing for the other kernels. */
void bzn_s8_end(bzn_s8_kernel kern);

/* the epilogue: out[i] = act(acc[i] * mult + bias) (AVX-512 with the VNNI and AMX kernels, AVX2
 * with the AVX2 and AVX-VNNI ones; the same floats on every one) */
void bzn_s8_dequantize(bzn_s8_kernel kern, const int32_t *acc, int n, float mult, float bias, bzn_act act, float *out);

/* four channels' rows quantized and interleaved, one pixel per dword:
 * dst[4 i + l] = bzn_quantize(x[l][i], inv_scale) + 128, or 128 where x[l] is NULL (AVX2 or
 * AVX-512BW where the kernel allows) */
void bzn_s8_quantize4(bzn_s8_kernel kern, const float *const x[4], int n, float inv_scale, uint8_t *dst);

#endif
