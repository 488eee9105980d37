/*
 * cpu.c - the CPU backend: convolutions as GEMMs on its own kernels and OpenBLAS, on its own threads (pool.c).
 *
 * A convolution out[Cout][OH*OW] = W[Cout][Cin*k*k] x col[Cin*k*k][OH*OW] (+ bias, act).
 *  - INT8: own kernels (gemm_s8.c), B read in place from quantized, padded planes; on the
 *    AVX2 kernel the 3x3 stride-1 ones by an integer Winograd that gives the same sums
 *    (winograd_s8.h), from the same planes and through the same epilogue.
 *  - FP32, stride 1, on CPUs with AVX2 + FMA or AVX-512: the same scheme in float
 *    (bzn_f32_block), B read in place from a zero-padded copy of the input, no im2col.
 * The instruction set is chosen when the backend is made (isa.h; BZN_ISA may lower it).
 *  - FP32 otherwise: OpenBLAS sgemm. For a 1x1, stride-1, unpadded convolution the input
 *    already is `col` (no copy); each input segment is one GEMM on its slice of W's columns,
 *    accumulated (beta = 1). Otherwise im2col gathers the k*k shifted copies of every input
 *    channel into scratch.
 */
#include <cblas.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "backend.h"
#include "error.h"
#include "gemm_f32.h"
#include "gemm_s8.h"
#include "isa.h"
#include "pool.h"
#include "winograd.h"
#include "winograd_s8.h"

typedef struct {
    int threads;
    bzn_isa isa;        /* the instruction set of the kernels below (isa.h), chosen at run time */
    bzn_s8_kernel s8;   /* the int8 GEMM kernel (qkern: AMX runs the stride-1 convolutions only) */
    bzn_f32_kernel f32; /* FP32 stride-1 convolutions' direct kernel (BZN_F32_SGEMM: im2col + sgemm) */
    bzn_pool *pool;     /* the worker threads (pool.h): every parallel loop below runs on them */
    char detail[96];    /* bzn_backend.detail */
    int wino;           /* Winograd F(4,3) for 3x3 stride-1 convolutions (winograd.h): WINO_* */
    size_t l2_bytes;    /* the L2 cache of a core (0: unknown), for the GEMMs' chunks of K */
    bzn_host_clock clock;
} cpu_ctx;

/* An INT8 convolution's weights as the kernel reads them (weights_prepare, once per model):
 * in K order (ky, kx, group of 4 input channels, channel), missing channels 0, packed. */
typedef struct {
    uint32_t tag; /* 0; a Winograd convolution's weights start with BZN_WINO_TAG instead */
    int8_t *a;
    int32_t *rowsum;
} cpu_qweights;

/* What a convolution keeps from context creation (conv_prepare), for the direct FP32 and the
 * INT8 block GEMMs: where each k (FP32: input channel and tap; INT8: group of 4 k) starts in
 * the padded input planes, for output pixel 0; INT8 also has the per-channel output
 * multipliers and, for strides above 1, where each group lies in a packed tile. */
typedef struct {
    size_t *off;    /* FP32: floats; INT8: bytes */
    size_t *toff;   /* INT8, stride > 1: g * 4 NR bytes */
    float *mult;    /* INT8: in_scale * wscale[oc] */
    bzn_wino_plan *wino; /* FP32 by Winograd (then nothing else is set) */
    bzn_wino_s8_plan *wino8; /* INT8 by Winograd (then mult is set too) */
} cpu_qconv;

static int cpu_is_pointwise(const bzn_conv_args *a) {
    return a->k == 1 && a->stride == 1 && a->pad == 0;
}

static size_t align64(size_t n) { return (n + 63) / 64 * 64; }

/* The int8 kernel of a convolution: the context's, except that AMX, which reads 16 groups
 * of B as one tile, runs only where B is read in place from the planes (stride 1: the groups
 * at one tap lie evenly spaced); the strided ones (BlazeNeo's first convolution, 3 input
 * channels, whose B is gathered pixel by pixel) run on AVX-512 VNNI. */
static bzn_s8_kernel qkern(const cpu_ctx *ctx, const bzn_conv_args *a) {
    return ctx->s8 == BZN_S8_AMX && a->stride != 1 ? BZN_S8_VNNI : ctx->s8;
}

/* The INT8 convolution's input: the activations quantized once (uint8, value + 128) into
 * ceil(in_c / 4) groups of 4 channels; each group is a zero-padded hp x wp image whose pixels
 * are the 4 channels' bytes side by side ([group][hp][wp][4], padding and missing channels
 * 128). The GEMM's K runs over (ky, kx, group, channel in group): one group of 4 k at one
 * kernel tap over NR (48) consecutive pixels is 4 NR consecutive bytes of this buffer, and
 * the groups at one tap lie a plane apart (so that AMX reads 16 of them as one tile where
 * they do not straddle two taps). */
static int qgroups(const bzn_conv_args *a) { return (a->in_c + 3) / 4; }
static int qkg(const bzn_conv_args *a) { return a->k * a->k * qgroups(a); } /* K / 4 */

/* Padded planes of `bytes` per pixel and channel group: where the slack starts (stride-1
 * tiles run over the padded width and read up to (k-1) d + NR pixels past the last row) and
 * where it ends, 64-byte aligned. */
static size_t planes_slack(const bzn_conv_args *a, size_t groups, size_t bytes) {
    return groups * ((size_t)a->in_h + 2 * a->pad) * ((size_t)a->in_w + 2 * a->pad) * bytes;
}
static size_t planes_end(const bzn_conv_args *a, size_t groups, size_t bytes) {
    return align64(planes_slack(a, groups, bytes) + ((size_t)(a->k - 1) * a->dilation + 2 * BZN_S8_NR) * bytes);
}

/* Whether a convolution's GEMM may read B from packed tiles: strides above 1 (always:
 * gathered pixel by pixel), and AMX (an item of one tile and 8 weight blocks or more, copied
 * group by group: read in place, a tile's 16 rows lie in 16 planes, the tiles of a layer
 * walking 100+ planes side by side, and the tile loads wait on memory; from a contiguous copy
 * the big layers ran about 1.15x faster; with fewer than 8 blocks the copy cost more). */
enum { AMX_PACK_BLOCKS = 8 };
static int qpacked(const cpu_ctx *ctx, const bzn_conv_args *a) {
    return a->stride != 1 || (qkern(ctx, a) == BZN_S8_AMX && bzn_s8_mpad(a->out_c) / BZN_S8_MR >= AMX_PACK_BLOCKS);
}

/* INT8 scratch: the planes, then one packed tile (kg x 4 NR bytes) per thread where B may be
 * packed. */
static size_t qconv_scratch(const cpu_ctx *ctx, const bzn_conv_args *a) {
    const size_t tiles = qpacked(ctx, a) ? (size_t)ctx->threads * align64((size_t)qkg(a) * BZN_S8_NR * 4) : 0;
    return planes_end(a, (size_t)qgroups(a), 4) + tiles;
}

/* INT8 hand-offs: a's input as planes, slack included */
static size_t cpu_conv_qin_bytes(bzn_backend *b, const bzn_conv_args *a) {
    (void)b;
    return planes_end(a, (size_t)qgroups(a), 4);
}

/* FP32 convolutions run on the direct kernel wherever there is one (strides above 1 on
 * packed tiles: encoder.base.0, 3 -> 32 channels at stride 2, took 1.17 ms by im2col + sgemm
 * with K = 27 on an Intel Xeon, 2 threads, and 0.81 ms so) */
static int cpu_f32_direct(const cpu_ctx *ctx) {
    return ctx->f32 != BZN_F32_SGEMM;
}

/* ---- Winograd (winograd.h) --------------------------------------------------------------
 * BZN_WINOGRAD (read when the backend is made): 0 = off (every convolution as before, bit for
 * bit), unset or 1 = where it pays (the rule below), "all" = every 3x3 stride-1 dilation-1
 * FP32 convolution (tests, measurements). */
enum { WINO_OFF = 0, WINO_AUTO = 1, WINO_ALL = 2 };

/* The rule, in two halves, because the weights are transformed once per model (when only the
 * channel counts are known) and the spatial size is known per context:
 *  - channels: at least 8 in and 8 out (with fewer, the transforms cost about what they
 *    save: 32 -> 3 at 44x44, BlazeNeo's head, ran 0.8x - 0.9x);
 *  - size: the block kernel (8 channels x 48 columns, multiply-adds over all K) must do at
 *    least 2x fewer multiply-adds by Winograd. The direct kernel runs ceil(out_h x padded
 *    width / 48) blocks of 9 in_c; Winograd ceil(tile rows x (tiles across + 1) / 48) blocks
 *    of 36 in_c (winograd.c: 4x4 output tiles, one dummy per row); so: direct blocks >= 8 x
 *    Winograd blocks. At pad 1 that holds from 18x18 up (22x22: 2.75x, 44x44: 3.6x) and fails
 *    at 16x16 (1.5x), 14x14 and 11x11 (0.75x).
 * Measured at 352x352 (AMD EPYC, AVX-512, 2 threads, alternating runs): the 3x3 layers from
 * 22x22 up 1.9x faster together (1.8x - 2.4x on the big ones); the 11x11 ones would be slower
 * (one thread: 0.5x - 0.7x); a few tiny 22x22 layers (68 -> 40) break even at 2 threads and
 * gain 1.7x at one.
 * One block of tiles (22x22 at 352) pays too since its GEMMs run by position (winograd.c,
 * "shared V": each transformed weight and V read once): on an Intel Xeon (2 threads) the
 * 22x22 3x3 layers took 11.5 ms by Winograd against 18.3 ms direct with the AVX-512 kernels,
 * 17.6 against 28.6 ms with the AVX2 ones (BZN_ISA=avx2). (Before, by output channel, each
 * share read the block's V once per 32 channels, and on AMD EPYC Zen 3 with AVX2 the same
 * layers were slower by Winograd, 51-91 against 49-53 ms; not measured there since.) */
static int wino_channels_pay(const cpu_ctx *ctx, const bzn_conv_args *a) {
    return ctx->wino == WINO_ALL || (a->in_c >= 8 && a->out_c >= 8);
}
static int wino_size_pays(const cpu_ctx *ctx, const bzn_conv_args *a) {
    if (ctx->wino == WINO_ALL) return 1;
    const long direct = ((long)a->out_h * (a->in_w + 2 * a->pad) + BZN_S8_NR - 1) / BZN_S8_NR;
    const long tiles = (long)((a->out_h + 3) / 4) * ((a->out_w + 3) / 4 + 1);
    const long blocks = (tiles + BZN_S8_NR - 1) / BZN_S8_NR;
    return direct >= 8 * blocks;
}

/* INT8 by Winograd (winograd_s8.h): on the AVX2 kernel (the AVX-512 VNNI and AMX ones do 2x and
 * 60x more int8 multiply-adds per instruction; AVX-VNNI 2x), where the FP32 rule says it pays
 * and the sums are provably exact */
static int wino8_pays(const cpu_ctx *ctx, const bzn_conv_args *a) {
    if (ctx->s8 != BZN_S8_AVX2 || ctx->wino == WINO_OFF || !bzn_wino_s8_ok(a) || !wino_channels_pay(ctx, a)) return 0;
    return a->out_h <= 0 || (a->stride == 1 && a->dilation == 1 && wino_size_pays(ctx, a));
}

/* the weights are Winograd's (weights_prepare made them) */
static int wino_weights(const bzn_conv_args *a) {
    return a->weights && *(const uint32_t *)a->weights == BZN_WINO_TAG;
}

/* a float convolution that this context's settings and size run by Winograd, on the
 * Winograd weights weights_prepare made (conv_prepare plans it; it reads no floats) */
static int runs_wino(const cpu_ctx *ctx, const bzn_conv_args *a) {
    return !a->qweight && ctx->wino != WINO_OFF && wino_weights(a) && a->stride == 1 && a->dilation == 1 &&
           wino_size_pays(ctx, a);
}

static int cpu_conv_reads_floats(bzn_backend *b, const bzn_conv_args *a) { return !runs_wino(b->ctx, a); }

/* this context runs the convolution by Winograd (conv_prepare decided) */
static const bzn_wino_plan *wino_plan(const bzn_conv_args *a) {
    return a->prepared && !a->qweight ? ((const cpu_qconv *)a->prepared)->wino : NULL;
}

/* this context runs the INT8 convolution by Winograd: its weights are Winograd's */
static const bzn_wino_s8_plan *wino8_plan(const bzn_conv_args *a) {
    return a->prepared && a->qweight ? ((const cpu_qconv *)a->prepared)->wino8 : NULL;
}

static size_t cpu_conv_scratch(bzn_backend *b, const bzn_conv_args *a) {
    const cpu_ctx *ctx = b->ctx;
    if (wino_plan(a)) return bzn_wino_scratch(wino_plan(a));
    if (wino8_plan(a)) return planes_end(a, (size_t)qgroups(a), 4) + bzn_wino_s8_scratch(wino8_plan(a));
    if (a->qweight) return qconv_scratch(ctx, a);
    if (cpu_f32_direct(ctx)) /* the padded copy; strides above 1 one packed tile per thread too */
        return planes_end(a, (size_t)a->in_c, sizeof(float)) +
               (a->stride == 1 ? 0 : (size_t)ctx->threads * align64((size_t)a->in_c * a->k * a->k * BZN_S8_NR * 4));
    if (cpu_is_pointwise(a)) return 0;
    return (size_t)a->in_c * a->k * a->k * a->out_h * a->out_w * sizeof(float);
}

/* channel c of the (virtually concatenated) input */
static const float *cpu_in_channel(const bzn_conv_args *a, int c) {
    int s = 0;
    while (s < a->n_in - 1 && c >= a->in[s].channels) c -= a->in[s++].channels;
    return a->in[s].data + (size_t)c * a->in_h * a->in_w;
}

/* One row of col per (input channel, ky, kx): the input shifted by the kernel offset. */
typedef struct {
    const bzn_conv_args *a;
    float *col;
} im2col_job;

static void im2col_rows(void *arg, int lo, int hi, int tid) {
    (void)tid;
    const im2col_job *j = arg;
    const bzn_conv_args *a = j->a;
    float *col = j->col;
    const int k = a->k, oh = a->out_h, ow = a->out_w, kk = k * k;
    for (int r = lo; r < hi; r++) {
        const int c = r / kk, ky = (r % kk) / k, kx = r % k;
        const float *x = cpu_in_channel(a, c);
        float *dst = col + (size_t)r * oh * ow;
        for (int oy = 0; oy < oh; oy++) {
            const int iy = oy * a->stride - a->pad + ky * a->dilation;
            float *d = dst + (size_t)oy * ow;
            if (iy < 0 || iy >= a->in_h) {
                memset(d, 0, (size_t)ow * sizeof *d);
                continue;
            }
            const float *src = x + (size_t)iy * a->in_w;
            const int off = kx * a->dilation - a->pad;
            if (a->stride == 1) {
                /* valid ox: 0 <= ox + off < in_w */
                int lo = off < 0 ? -off : 0, hi = a->in_w - off;
                if (hi > ow) hi = ow;
                if (lo > ow) lo = ow;
                for (int ox = 0; ox < lo; ox++) d[ox] = 0;
                if (hi > lo) memcpy(d + lo, src + lo + off, (size_t)(hi - lo) * sizeof *d);
                for (int ox = hi > lo ? hi : lo; ox < ow; ox++) d[ox] = 0;
            } else {
                for (int ox = 0; ox < ow; ox++) {
                    const int ix = ox * a->stride + off;
                    d[ox] = (ix >= 0 && ix < a->in_w) ? src[ix] : 0.0f;
                }
            }
        }
    }
}

static void cpu_im2col(const cpu_ctx *ctx, const bzn_conv_args *a, float *col) {
    im2col_job j = {a, col};
    bzn_pool_run(ctx->pool, a->in_c * a->k * a->k, 0, im2col_rows, &j);
}

/* o[i] = act(s[i] + b) (o may be s); one loop per activation, so that each vectorises */
static void bias_act(bzn_act act, const float *s, size_t n, float b, float *o) {
    switch (act) {
    case BZN_ACT_NONE:
        for (size_t i = 0; i < n; i++) o[i] = s[i] + b;
        break;
    case BZN_ACT_RELU:
        for (size_t i = 0; i < n; i++) o[i] = bzn_relu(s[i] + b);
        break;
    case BZN_ACT_RELU6:
        for (size_t i = 0; i < n; i++) o[i] = bzn_relu6(s[i] + b);
        break;
    }
}

static void epilogue_channels(void *arg, int lo, int hi, int tid) {
    (void)tid;
    const bzn_conv_args *a = arg;
    const size_t hw = (size_t)a->out_h * a->out_w;
    for (int oc = lo; oc < hi; oc++) {
        float *o = a->out + (size_t)oc * hw;
        const float b = a->bias ? a->bias[oc] : 0.0f;
        if (a->act != BZN_ACT_NONE || b != 0.0f) bias_act(a->act, o, hw, b, o);
    }
}

static void cpu_epilogue(const cpu_ctx *ctx, const bzn_conv_args *a) {
    bzn_pool_run(ctx->pool, a->out_c, 0, epilogue_channels, (void *)a);
}

/* Work items of a convolution's block GEMM: its tiles of NR output pixels, each split into
 * msplit shares of the weight blocks (FP32 8 rows, INT8 16) when there are few tiles (the
 * small deep layers), so that every thread gets a share. Where B is read in place (stride 1) and there are at most
 * GROUP_MAX_TILES tiles (the deep 11x11 layers: 3 of 48 pixels), one item takes all of them,
 * weight blocks outer, so that each block of weights serves every tile while it is in cache
 * instead of all the weights streaming from memory once per tile (17.8 MB for one 11x11 FP32
 * layer of 500+ channels). A packed B (strided) is one tile per item, never shared out: it
 * would be packed again for every share. */
enum { GROUP_MAX_TILES = 8 };
typedef struct {
    int tiles, mblocks;
    int group;  /* tiles per item */
    int msplit; /* shares of the weight blocks per item */
} gemm_split;

/* the split, and the item count */
static int gemm_split_make(const cpu_ctx *ctx, int tiles, int mblocks, int in_place, gemm_split *s) {
    *s = (gemm_split){tiles, mblocks, in_place && tiles <= GROUP_MAX_TILES ? tiles : 1, 1};
    const int groups = (tiles + s->group - 1) / s->group;
    while (in_place && groups * s->msplit < 4 * ctx->threads && 2 * s->msplit <= mblocks) s->msplit *= 2;
    return groups * s->msplit;
}

/* item's tiles [*t0, *t1) and weight blocks [*mb0, *mb1) */
static void gemm_item(const gemm_split *s, int item, int *t0, int *t1, int *mb0, int *mb1) {
    const int share = item % s->msplit;
    *t0 = item / s->msplit * s->group;
    *t1 = *t0 + s->group < s->tiles ? *t0 + s->group : s->tiles;
    *mb0 = share * s->mblocks / s->msplit;
    *mb1 = (share + 1) * s->mblocks / s->msplit;
}

/* An item's GEMM runs over K in chunks, so that B's rows of a chunk (for all the item's tiles)
 * stay in cache while up to CHUNK_BLOCKS blocks (weight blocks x tiles) are accumulated from
 * them, instead of every weight block streaming the tile's whole B (K x 48: 442 KB in FP32 for
 * K = 2304) from further out once more. Each block's partial sums stay in an accumulator array
 * in between (the kernels' `add`). Where the core's L2 cache is large (1 MB or more), a chunk
 * fills half of it; else CHUNK_B_BYTES, about 3/4 of the smallest L1 data cache of the CPUs
 * the kernels run on (32 KB: Zen 2-4, Skylake). Each chunk stores and reloads the
 * accumulators and restarts B's prefetch, so on a large L2 the longer chunks win:
 *  - AMD EPYC (Zen 3, AVX2 only, 512 KB L2, 2 threads, 3 alternating rounds,
 *    BZN_WINOGRAD=0): L1 chunks made the 7 largest direct FP32 3x3 layers 1.3x faster
 *    together (encoder.base.8.layers.15 40 -> 26 ms); INT8, whose B is 4x smaller, about the
 *    same;
 *  - Intel Xeon (AVX-512, 2 MB L2; one thread, the FP32 kernel alone on
 *    encoder.base.11.layers.15, K = 6660): 93 GMAC/s in one pass against 75 in L1 chunks; in
 *    the network the 11x11 layers (three tiles per item: L1 chunks of 42 k) took 7.4 against
 *    7.9 ms per frame.
 * Summing a block over K in chunks adds each element's terms in the same order as one pass
 * would, so FP32 results are bit-identical. The accumulators of a batch (blocks x tiles) are
 * at most CHUNK_BLOCKS. */
enum { CHUNK_B_BYTES = 24 * 1024, CHUNK_BLOCKS = 8 };
_Static_assert((int)GROUP_MAX_TILES <= (int)CHUNK_BLOCKS, "a batch of one weight block and all its tiles must fit");
typedef struct {
    int blocks; /* weight blocks per batch (each with all the item's tiles) */
    int k;      /* K (FP32: k; INT8: groups of 4 k) per chunk */
} gemm_chunks;

/* the output channels of weight block mb of mr rows (mr, or fewer in the last) */
static int block_rows(const bzn_conv_args *a, int mb, int mr) {
    return a->out_c - mb * mr < mr ? a->out_c - mb * mr : mr;
}
static int imin(int x, int y) { return x < y ? x : y; }

/* for an item of `tiles` tiles whose B has K rows of `row_bytes` bytes (per tile), on a core
 * of `l2` bytes of L2 cache (0: unknown); chunks of K are whole multiples of `kmult` k (INT8
 * on AMX: 16 groups, one tile) */
static gemm_chunks gemm_chunks_make(int tiles, int K, size_t row_bytes, size_t l2, int kmult) {
    const size_t budget = l2 >= ((size_t)1 << 20) ? l2 / 2 : CHUNK_B_BYTES;
    const size_t k = budget / (row_bytes * tiles);
    gemm_chunks c = {CHUNK_BLOCKS / tiles > 0 ? CHUNK_BLOCKS / tiles : 1, k < (size_t)K ? (int)k : K};
    c.k = c.k < 16 ? 16 : c.k / kmult * kmult;
    return c;
}

/* ---- INT8 convolution ----------------------------------------------------------------- */

static void cpu_weights_release(void *weights) {
    cpu_qweights *w = weights;
    if (!w) return;
    if (w->tag == BZN_WINO_TAG) { /* the structs start with the tag */
        bzn_wino_weights_free(weights);
        return;
    }
    if (w->tag == BZN_WINO_S8_TAG) {
        bzn_wino_s8_weights_free(weights);
        return;
    }
    free(w->a);
    free(w->rowsum);
    free(w);
}

/* INT8: the weights in K order, packed for the GEMM kernel. FP32 reads them where they lie,
 * except 3x3 kernels that Winograd may run: those are transformed (U = G g G^T). */
static bzn_status cpu_weights_prepare(bzn_backend *b, const bzn_conv_args *a, void **weights, size_t *bytes,
                                      bzn_error *err) {
    const cpu_ctx *ctx = b->ctx;
    *weights = NULL;
    *bytes = 0;
    if (!a->qweight) {
        if (ctx->wino == WINO_OFF || !bzn_wino_shape_ok(a) || !wino_channels_pay(ctx, a)) return BZN_OK;
        /* (the engine's weight cache gives the geometry of the first context that asks: the
           weights are made only where that size uses them, so that layers Winograd does not
           pay for, such as the deep 11x11 ones at 352, take no memory) */
        if (a->out_h > 0 && (a->stride != 1 || a->dilation != 1 || !wino_size_pays(ctx, a))) return BZN_OK;
        return bzn_wino_weights_make(a, (bzn_wino_weights **)weights, bytes, err);
    }
    if (wino8_pays(ctx, a)) return bzn_wino_s8_weights_make(a, (bzn_wino_s8_weights **)weights, bytes, err);
    const int kk = a->k * a->k, cg = qgroups(a), K = 4 * qkg(a);
    const size_t packed = align64((size_t)bzn_s8_mpad(a->out_c) * 4 * bzn_s8_kg_packed(qkern(ctx, a), K / 4));
    cpu_qweights *q = calloc(1, sizeof *q);
    int8_t *w = calloc((size_t)a->out_c * K, 1);
    if (q) {
        q->a = aligned_alloc(64, packed);
        q->rowsum = malloc((size_t)a->out_c * sizeof *q->rowsum);
    }
    if (!q || !w || !q->a || !q->rowsum) {
        free(w);
        (void)b;
        cpu_weights_release(q);
        return bzn_fail(err, BZN_ERR_NOMEM, "out of memory packing int8 weights");
    }
    for (int oc = 0; oc < a->out_c; oc++)
        for (int c = 0; c < a->in_c; c++)
            for (int t = 0; t < kk; t++)
                w[(size_t)oc * K + ((size_t)t * cg + c / 4) * 4 + c % 4] = a->qweight[((size_t)oc * a->in_c + c) * kk + t];
    bzn_s8_pack_a(qkern(ctx, a), w, a->out_c, K, q->a, q->rowsum);
    free(w);
    *weights = q;
    *bytes = packed + (size_t)a->out_c * sizeof *q->rowsum;
    return BZN_OK;
}

static void cpu_conv_release(bzn_backend *b, void *prepared) {
    (void)b;
    cpu_qconv *q = prepared;
    if (!q) return;
    bzn_wino_plan_free(q->wino);
    bzn_wino_s8_plan_free(q->wino8);
    free(q->off);
    free(q->toff);
    free(q->mult);
    free(q);
}

/* The plane offsets of the direct FP32 kernel (k = input channel, tap) or of the INT8 one (k
 * = tap, group of 4 channels), which depend on the input size; INT8: the output multipliers,
 * which depend on the input's scale. */
static bzn_status cpu_conv_prepare(bzn_backend *b, const bzn_conv_args *a, void **prepared, bzn_error *err) {
    const cpu_ctx *ctx = b->ctx;
    *prepared = NULL;
    /* Winograd: where this context's backend runs it, the weights were made for it and the
     * layer's geometry and size qualify */
    if (runs_wino(ctx, a)) {
        cpu_qconv *q = calloc(1, sizeof *q);
        if (!q) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory preparing a convolution");
        bzn_status s = bzn_wino_plan_make(a, ctx->f32, ctx->threads, &q->wino, err);
        if (s != BZN_OK) {
            free(q);
            return s;
        }
        *prepared = q;
        return BZN_OK;
    }
    if (a->qweight && a->weights && *(const uint32_t *)a->weights == BZN_WINO_S8_TAG) {
        cpu_qconv *q = calloc(1, sizeof *q);
        if (q) q->mult = malloc((size_t)a->out_c * sizeof *q->mult);
        bzn_status s = q && q->mult ? bzn_wino_s8_plan_make(a, ctx->threads, &q->wino8, err)
                                    : bzn_fail(err, BZN_ERR_NOMEM, "out of memory preparing a convolution");
        if (s != BZN_OK) {
            cpu_conv_release(b, q);
            return s;
        }
        for (int oc = 0; oc < a->out_c; oc++) q->mult[oc] = a->in_scale * a->wscale[oc];
        *prepared = q;
        return BZN_OK;
    }
    if (!a->qweight && !cpu_f32_direct(ctx)) return BZN_OK; /* sgemm needs nothing */
    const int kk = a->k * a->k, cg = qgroups(a);
    const size_t hp = (size_t)a->in_h + 2 * a->pad, wp = (size_t)a->in_w + 2 * a->pad;
    const int n_off = a->qweight ? qkg(a) : a->in_c * kk;
    cpu_qconv *q = calloc(1, sizeof *q);
    if (q) {
        q->off = malloc((size_t)n_off * sizeof *q->off);
        if (a->qweight) {
            q->toff = qpacked(ctx, a) ? malloc((size_t)n_off * sizeof *q->toff) : NULL;
            q->mult = malloc((size_t)a->out_c * sizeof *q->mult);
        } else if (a->stride != 1) { /* FP32: a packed tile */
            q->toff = malloc((size_t)n_off * sizeof *q->toff);
        }
    }
    const int need_toff = a->qweight ? qpacked(ctx, a) : a->stride != 1;
    if (!q || !q->off || (need_toff && !q->toff) || (a->qweight && !q->mult)) {
        cpu_conv_release(b, q);
        return bzn_fail(err, BZN_ERR_NOMEM, "out of memory preparing a convolution");
    }
    for (int k = 0; k < n_off; k++) {
        /* the channel (group), tap row and tap column of k */
        const int c = a->qweight ? k % cg : k / kk, t = a->qweight ? k / cg : k % kk, ky = t / a->k, kx = t % a->k;
        q->off[k] = ((size_t)c * hp * wp + (size_t)ky * a->dilation * wp + (size_t)kx * a->dilation) * (a->qweight ? 4 : 1);
        if (q->toff) q->toff[k] = (size_t)k * BZN_S8_NR * (a->qweight ? 4 : 1); /* INT8: bytes; FP32: floats */
    }
    for (int oc = 0; a->qweight && oc < a->out_c; oc++) q->mult[oc] = a->in_scale * a->wscale[oc];
    *prepared = q;
    return BZN_OK;
}

/* The padding of padded row `row` (group row / hp, row row % hp) of a's planes: the whole
 * row when it is a padding row, else its left and right margins. Returns the input row that
 * goes inside, or -1. */
static int cpu_plane_border(const bzn_conv_args *a, uint8_t *planes, int row) {
    const int p = a->pad, wp = a->in_w + 2 * p, hp = a->in_h + 2 * p, iy = row % hp - p;
    uint8_t *dst = planes + (size_t)row * wp * 4;
    if (iy < 0 || iy >= a->in_h) {
        memset(dst, 128, (size_t)wp * 4);
        return -1;
    }
    memset(dst, 128, (size_t)p * 4);
    memset(dst + (size_t)(p + a->in_w) * 4, 128, (size_t)p * 4);
    return iy;
}

/* Quantize the input once into the planes (layout above), one padded row of one group of
 * four channels at a time. */
typedef struct {
    const cpu_ctx *ctx;
    const bzn_conv_args *a;
    uint8_t *planes;
} planes_job;

static void quantize_rows(void *arg, int lo, int hi, int tid) {
    (void)tid;
    const planes_job *j = arg;
    const bzn_conv_args *a = j->a;
    uint8_t *planes = j->planes;
    const int p = a->pad, wp = a->in_w + 2 * p, hp = a->in_h + 2 * p;
    const float inv = 1.0f / a->in_scale;
    for (int row = lo; row < hi; row++) {
        const int g = row / hp, iy = cpu_plane_border(a, planes, row);
        if (iy < 0) continue;
        const float *x[4];
        for (int l = 0; l < 4; l++)
            x[l] = 4 * g + l < a->in_c ? cpu_in_channel(a, 4 * g + l) + (size_t)iy * a->in_w : NULL;
        bzn_s8_quantize4(j->ctx->s8, x, a->in_w, inv, planes + ((size_t)row * wp + p) * 4);
    }
}

static void cpu_quantize_planes(const cpu_ctx *ctx, const bzn_conv_args *a, uint8_t *planes) {
    planes_job j = {ctx, a, planes};
    bzn_pool_run_chunks(ctx->pool, qgroups(a) * (a->in_h + 2 * a->pad), 1, quantize_rows, &j);
}

/* the consumer's padding rows and margins of a handed-over output (its planes) */
static void border_rows(void *arg, int lo, int hi, int tid) {
    (void)tid;
    const planes_job *j = arg;
    for (int row = lo; row < hi; row++) cpu_plane_border(j->a, j->planes, row);
}

/* A tile of NR output pixels for strides above 1: each k's 4 bytes per pixel (INT8: a group
 * of 4 channels; FP32: one float) gathered from the planes, at poff[k] x `scale` bytes
 * (INT8 1: its offsets are bytes; FP32 4: floats); columns past n are `zero` bytes (INT8 128,
 * FP32 0: 0.0f). */
static void cpu_pack_tile(const bzn_conv_args *a, const uint8_t *planes, const size_t *poff, size_t scale, int kg,
                          int n0, uint8_t zero, uint8_t *bt) {
    const int n = a->out_h * a->out_w, s = a->stride, wp = a->in_w + 2 * a->pad;
    size_t src[BZN_S8_NR];
    int cols = 0;
    for (; cols < BZN_S8_NR && n0 + cols < n; cols++) {
        const int oy = (n0 + cols) / a->out_w, ox = (n0 + cols) % a->out_w;
        src[cols] = ((size_t)oy * s * wp + (size_t)ox * s) * 4;
    }
    for (int g = 0; g < kg; g++) {
        const uint8_t *x = planes + poff[g] * scale;
        uint8_t *d = bt + (size_t)g * BZN_S8_NR * 4;
        for (int j = 0; j < cols; j++) memcpy(d + 4 * j, x + src[j], 4);
        memset(d + 4 * cols, zero, (size_t)(BZN_S8_NR - cols) * 4);
    }
}

/* The pieces of output rows in a tile of NR columns, pixels n0 .. n0 + NR - 1 of a grid `gw`
 * wide (the padded width for stride 1: the columns past out_w are dropped): piece u is
 * columns run_j[u] .. + run_len[u] of the tile, output pixel (run_y[u], run_x[u]) on. */
static int tile_runs(const bzn_conv_args *a, int n0, int gw, int run_j[], int run_len[], int run_y[], int run_x[]) {
    int runs = 0;
    for (int j = 0; j < BZN_S8_NR;) {
        const int oy = (n0 + j) / gw, ox = (n0 + j) % gw;
        if (oy >= a->out_h) break;
        const int len = gw - ox < BZN_S8_NR - j ? gw - ox : BZN_S8_NR - j;
        const int valid = ox < a->out_w ? (a->out_w - ox < len ? a->out_w - ox : len) : 0;
        if (valid) {
            run_j[runs] = j;
            run_len[runs] = valid;
            run_y[runs] = oy;
            run_x[runs++] = ox;
        }
        j += len;
    }
    return runs;
}

/* out[oc][oy][ox] = act(acc * in_scale * wscale[oc] + bias[oc]) for `rows` (<= 16) output
 * channels from oc0 over n output pixels of one row from (oy, ox), acc[r][0 .. n) being
 * channel oc0 + r's sums. With an INT8 hand-off the values go, quantized with the
 * consumer's scale, into the consumer's planes instead: groups of 4 channels (oc0 is a
 * multiple of 4), quantized and interleaved exactly as the consumer would. */
static void q_store_run(const cpu_ctx *ctx, const bzn_conv_args *a, const cpu_qconv *q, int oc0, int rows,
                        const int32_t *const acc[], int n, int oy, int ox) {
    if (!a->out_q) {
        const size_t hw = (size_t)a->out_h * a->out_w;
        for (int r = 0; r < rows; r++)
            bzn_s8_dequantize(ctx->s8, acc[r], n, q->mult[oc0 + r], a->bias ? a->bias[oc0 + r] : 0.0f, a->act,
                              a->out + (size_t)(oc0 + r) * hw + (size_t)oy * a->out_w + ox);
        return;
    }
    const bzn_conv_args *nx = a->next;
    const int pn = nx->pad, wpn = nx->in_w + 2 * pn, hpn = nx->in_h + 2 * pn;
    const float inv = 1.0f / nx->in_scale;
    for (int j0 = 0; j0 < n; j0 += BZN_S8_NR) { /* NR pixels at a time */
        const int len = imin(n - j0, BZN_S8_NR);
        float v[BZN_S8_MR][BZN_S8_NR];
        for (int r = 0; r < rows; r++)
            bzn_s8_dequantize(ctx->s8, acc[r] + j0, len, q->mult[oc0 + r], a->bias ? a->bias[oc0 + r] : 0.0f, a->act,
                              v[r]);
        for (int g = 0; 4 * g < rows; g++) {
            const float *x[4];
            for (int l = 0; l < 4; l++) x[l] = 4 * g + l < rows ? v[4 * g + l] : NULL;
            const size_t px = (size_t)(oc0 / 4 + g) * hpn * wpn + (size_t)(oy + pn) * wpn + ox + j0 + pn;
            bzn_s8_quantize4(ctx->s8, x, len, inv, (uint8_t *)a->out_q + px * 4);
        }
    }
}

/* the epilogue of one block of C whose columns are pixels n0 .. n0 + NR - 1 of a grid `gw`
 * wide (the padded width for stride 1: the columns past out_w are dropped), by runs */
static void cpu_qepilogue(const cpu_ctx *ctx, const bzn_conv_args *a, const cpu_qconv *q, int oc0, int rows, int n0,
                          int gw, int32_t acc[BZN_S8_MR][BZN_S8_NR]) {
    int run_j[BZN_S8_NR], run_len[BZN_S8_NR], run_y[BZN_S8_NR], run_x[BZN_S8_NR];
    const int runs = tile_runs(a, n0, gw, run_j, run_len, run_y, run_x);
    for (int u = 0; u < runs; u++) {
        const int32_t *rows_at[BZN_S8_MR];
        for (int r = 0; r < rows; r++) rows_at[r] = acc[r] + run_j[u];
        q_store_run(ctx, a, q, oc0, rows, rows_at, run_len[u], run_y[u], run_x[u]);
    }
}

/* Winograd's store (winograd_s8.h) */
typedef struct {
    const cpu_ctx *ctx;
    const bzn_conv_args *a;
} wino8_store_job;
static void wino8_store(void *arg, int oc0, int rows, const int32_t *const acc[4], int n, int oy, int ox) {
    const wino8_store_job *s = arg;
    q_store_run(s->ctx, s->a, s->a->prepared, oc0, rows, acc, n, oy, ox);
}

/* The GEMM of an INT8 convolution, items [lo, hi) (gemm_split) */
typedef struct {
    const cpu_ctx *ctx;
    const bzn_conv_args *a;
    const uint8_t *planes;
    uint8_t *tiles; /* where B may be packed (qpacked): one tile per thread */
    bzn_s8_kernel kern;
    int kg, direct, packed, gw; /* packed: qpacked */
    gemm_split split;
} qgemm_job;

static void qgemm_items(void *arg, int lo, int hi, int tid) {
    const qgemm_job *j = arg;
    const bzn_conv_args *a = j->a;
    const cpu_qconv *q = a->prepared;
    const cpu_qweights *qw = a->weights;
    const int kg = j->kg, kgp = bzn_s8_kg_packed(j->kern, kg);
    /* this thread's packed tile (where B may be packed) */
    uint8_t *bt = j->packed ? j->tiles + (size_t)tid * align64((size_t)kg * BZN_S8_NR * 4) : NULL;
    int32_t acc[CHUNK_BLOCKS][BZN_S8_MR][BZN_S8_NR]; /* [weight block of the batch x tile] */
    for (int item = lo; item < hi; item++) {
        int t0, t1, mb0, mb1;
        gemm_item(&j->split, item, &t0, &t1, &mb0, &mb1);
        const int nt = t1 - t0;
        const int pack = j->packed && (!j->direct || (nt == 1 && mb1 - mb0 >= AMX_PACK_BLOCKS));
        const size_t *goff = pack ? q->toff : q->off;
        if (pack && !j->direct) /* its one tile */
            cpu_pack_tile(a, j->planes, q->off, 1, kg, t0 * BZN_S8_NR, 128, bt);
        if (pack && j->direct) /* 48 pixels of each group, contiguous in the planes */
            for (int g = 0; g < kg; g++)
                memcpy(bt + (size_t)g * BZN_S8_NR * 4, j->planes + (size_t)t0 * BZN_S8_NR * 4 + q->off[g],
                       BZN_S8_NR * 4);
        const gemm_chunks ch =
            gemm_chunks_make(nt, kg, BZN_S8_NR * 4, j->ctx->l2_bytes, j->kern == BZN_S8_AMX ? BZN_S8_AMX_KG : 1);
        for (int mbb = mb0; mbb < mb1; mbb += ch.blocks) {
            const int mbe = imin(mbb + ch.blocks, mb1);
            for (int g0 = 0; g0 < kg; g0 += ch.k) {
                const int gn = imin(kg - g0, ch.k);
                for (int mb = mbb; mb < mbe; mb++) {
                    const int oc0 = mb * BZN_S8_MR, rows = block_rows(a, mb, BZN_S8_MR);
                    const int8_t *ab = qw->a + ((size_t)mb * kgp + g0) * BZN_S8_MR * 4;
                    for (int t = t0; t < t1; t++) {
                        const uint8_t *b = pack ? bt : j->planes + (size_t)t * BZN_S8_NR * 4;
                        bzn_s8_block(j->kern, gn, ab, qw->rowsum + oc0, rows, b, goff + g0, a->in_nonneg,
                                     acc[(mb - mbb) * nt + t - t0], g0 > 0);
                    }
                }
            }
            for (int mb = mbb; mb < mbe; mb++) {
                const int oc0 = mb * BZN_S8_MR, rows = block_rows(a, mb, BZN_S8_MR);
                for (int t = t0; t < t1; t++)
                    cpu_qepilogue(j->ctx, a, q, oc0, rows, t * BZN_S8_NR, j->gw, acc[(mb - mbb) * nt + t - t0]);
            }
        }
    }
    bzn_s8_end(j->kern);
}

/* Quantize the input into the planes, then, tile by tile of NR output pixels: multiply the
 * tile's B (stride 1: read in place from the planes; otherwise gathered into a small tile
 * that stays in cache) by every 16-row block of weights and write the block's outputs. */
static void cpu_conv_int8(cpu_ctx *ctx, const bzn_conv_args *a, void *scratch) {
    const int kg = qkg(a), mblocks = bzn_s8_mpad(a->out_c) / BZN_S8_MR;
    const int wp = a->in_w + 2 * a->pad, direct = a->stride == 1;
    const int gw = direct ? wp : a->out_w, tiles = (a->out_h * gw + BZN_S8_NR - 1) / BZN_S8_NR;
    const size_t slack = planes_slack(a, (size_t)qgroups(a), 4), tiles_at = planes_end(a, (size_t)qgroups(a), 4);
    const uint8_t *planes = a->in_q; /* handed over by the convolution before, slack included */
    if (!planes) {
        uint8_t *p = scratch;
        memset(p + slack, 128, tiles_at - slack);
        cpu_quantize_planes(ctx, a, p);
        planes = p;
    }
    /* handing the output over: the consumer's padding and slack first; the tiles fill the rest */
    if (a->out_q) {
        const size_t ns = planes_slack(a->next, (size_t)qgroups(a->next), 4);
        memset((uint8_t *)a->out_q + ns, 128, planes_end(a->next, (size_t)qgroups(a->next), 4) - ns);
        planes_job border = {ctx, a->next, a->out_q};
        bzn_pool_run(ctx->pool, qgroups(a->next) * (a->next->in_h + 2 * a->next->pad), 0, border_rows, &border);
    }
    if (wino8_plan(a)) {
        wino8_store_job st = {ctx, a};
        bzn_wino_s8_conv(ctx->pool, wino8_plan(a), a, planes, (uint8_t *)scratch + tiles_at, wino8_store, &st);
        return;
    }
    qgemm_job j = {ctx, a, planes, (uint8_t *)scratch + tiles_at, qkern(ctx, a), kg, direct, qpacked(ctx, a), gw, {0}};
    const int items = gemm_split_make(ctx, tiles, mblocks, direct, &j.split);
    bzn_pool_run_chunks(ctx->pool, items, 1, qgemm_items, &j);
}

/* ---- FP32 convolution, direct ----------------------------------------------------------- */

/* With a direct kernel (AVX2 or AVX-512): the input is copied into zero-padded planes, and
 * the GEMM reads its B in place, tile by tile of NR pixels over the padded grid (stride 1),
 * or from a tile packed pixel by pixel out of the planes (strides above 1), as the INT8
 * convolution does, with the weights read where they lie; bias and activation are applied
 * to each 8 x NR block. */
typedef struct {
    const cpu_ctx *ctx;
    const bzn_conv_args *a;
    float *planes;
    gemm_split split;
} fgemm_job;

static void pad_rows(void *arg, int lo, int hi, int tid) { /* the padded copy */
    (void)tid;
    const fgemm_job *j = arg;
    const bzn_conv_args *a = j->a;
    const int p = a->pad, hp = a->in_h + 2 * p, wp = a->in_w + 2 * p;
    for (int row = lo; row < hi; row++) {
        const int c = row / hp, iy = row % hp - p;
        float *d = j->planes + (size_t)row * wp;
        if (iy < 0 || iy >= a->in_h) {
            memset(d, 0, (size_t)wp * sizeof *d);
            continue;
        }
        memset(d, 0, (size_t)p * sizeof *d);
        memcpy(d + p, cpu_in_channel(a, c) + (size_t)iy * a->in_w, (size_t)a->in_w * sizeof *d);
        memset(d + p + a->in_w, 0, (size_t)p * sizeof *d);
    }
}

static void fgemm_items(void *arg, int lo, int hi, int tid) {
    const fgemm_job *j = arg;
    const bzn_conv_args *a = j->a;
    const cpu_qconv *q = a->prepared;
    const int K = a->in_c * a->k * a->k, direct = a->stride == 1;
    const int gw = direct ? a->in_w + 2 * a->pad : a->out_w; /* the grid the tiles run over */
    const size_t n = (size_t)a->out_h * a->out_w;
    float acc[CHUNK_BLOCKS][BZN_F32_MR][BZN_S8_NR]; /* [weight block of the batch x tile] */
    /* strides above 1: this thread's packed tile, after the padded copy */
    float *bt = direct ? NULL
                       : (float *)((uint8_t *)j->planes + planes_end(a, (size_t)a->in_c, sizeof(float)) +
                                   (size_t)tid * align64((size_t)K * BZN_S8_NR * 4));
    const size_t *koff = direct ? q->off : q->toff;
    for (int item = lo; item < hi; item++) {
        int t0, t1, mb0, mb1;
        gemm_item(&j->split, item, &t0, &t1, &mb0, &mb1);
        const int nt = t1 - t0;
        if (!direct)
            cpu_pack_tile(a, (const uint8_t *)j->planes, q->off, sizeof(float), K, t0 * BZN_S8_NR, 0, (uint8_t *)bt);
        const gemm_chunks ch = gemm_chunks_make(nt, K, BZN_S8_NR * sizeof(float), j->ctx->l2_bytes, 1);
        for (int mbb = mb0; mbb < mb1; mbb += ch.blocks) {
            const int mbe = imin(mbb + ch.blocks, mb1);
            for (int k0 = 0; k0 < K; k0 += ch.k) {
                const int kn = imin(K - k0, ch.k);
                for (int mb = mbb; mb < mbe; mb++) {
                    const int oc0 = mb * BZN_F32_MR, rows = block_rows(a, mb, BZN_F32_MR);
                    const float *w[BZN_F32_MR]; /* rows past out_c repeat the last (computed, not stored) */
                    for (int r = 0; r < BZN_F32_MR; r++)
                        w[r] = a->weight + (size_t)(oc0 + (r < rows ? r : rows - 1)) * K + k0;
                    for (int t = t0; t < t1; t++)
                        bzn_f32_block(j->ctx->f32, kn, direct ? j->planes + (size_t)t * BZN_S8_NR : bt, koff + k0, w,
                                      acc[(mb - mbb) * nt + t - t0], k0 > 0);
                }
            }
            for (int mb = mbb; mb < mbe; mb++) {
                const int oc0 = mb * BZN_F32_MR, rows = block_rows(a, mb, BZN_F32_MR);
                for (int t = t0; t < t1; t++) {
                    int run_j[BZN_S8_NR], run_len[BZN_S8_NR], run_y[BZN_S8_NR], run_x[BZN_S8_NR];
                    const int runs = tile_runs(a, t * BZN_S8_NR, gw, run_j, run_len, run_y, run_x);
                    const float(*ac)[BZN_S8_NR] = acc[(mb - mbb) * nt + t - t0];
                    for (int r = 0; r < rows; r++)
                        for (int u = 0; u < runs; u++)
                            bias_act(a->act, ac[r] + run_j[u], (size_t)run_len[u], a->bias ? a->bias[oc0 + r] : 0.0f,
                                     a->out + (size_t)(oc0 + r) * n + (size_t)run_y[u] * a->out_w + run_x[u]);
                }
            }
        }
    }
}

static void cpu_conv_f32_direct(const cpu_ctx *ctx, const bzn_conv_args *a, void *scratch) {
    const int mblocks = (a->out_c + BZN_F32_MR - 1) / BZN_F32_MR, direct = a->stride == 1;
    const int hp = a->in_h + 2 * a->pad, wp = a->in_w + 2 * a->pad, gw = direct ? wp : a->out_w;
    const int tiles = (a->out_h * gw + BZN_S8_NR - 1) / BZN_S8_NR;
    const size_t slack = planes_slack(a, (size_t)a->in_c, sizeof(float));
    memset((uint8_t *)scratch + slack, 0, planes_end(a, (size_t)a->in_c, sizeof(float)) - slack);
    fgemm_job j = {ctx, a, (float *)scratch, {0}};
    const int items = gemm_split_make(ctx, tiles, mblocks, direct, &j.split);
    bzn_pool_run(ctx->pool, a->in_c * hp, items, pad_rows, &j);
    bzn_pool_run_chunks(ctx->pool, items, 1, fgemm_items, &j);
}

/* C[:, cols] = A x B[:, cols] (+ C when accumulate), split by columns over the threads:
 * every thread runs a single-threaded sgemm on its own block of output pixels. */
typedef struct {
    int m, n, k, lda, block, accumulate;
    const float *a, *b;
    float *c;
} sgemm_job;

static void sgemm_blocks(void *arg, int lo, int hi, int tid) {
    (void)tid;
    const sgemm_job *g = arg;
    for (int blk = lo; blk < hi; blk++) {
        const int j0 = blk * g->block, nb = g->n - j0 < g->block ? g->n - j0 : g->block;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->m, nb, g->k, 1.0f, g->a, g->lda, g->b + j0, g->n,
                    g->accumulate ? 1.0f : 0.0f, g->c + j0, g->n);
    }
}

static void cpu_gemm(const cpu_ctx *ctx, int threads, int m, int n, int k, const float *a, int lda, const float *b,
                     float *c, int accumulate) {
    const int block = ((n + threads - 1) / threads + 15) / 16 * 16;
    sgemm_job g = {m, n, k, lda, block, accumulate, a, b, c};
    bzn_pool_run(ctx->pool, (n + block - 1) / block, threads, sgemm_blocks, &g);
}

static void cpu_conv1(void *vctx, const bzn_conv_args *a, void *scratch) {
    cpu_ctx *ctx = vctx;
    if (a->qweight) {
        cpu_conv_int8(ctx, a, scratch);
        return;
    }
    if (wino_plan(a)) {
        bzn_wino_conv(ctx->pool, wino_plan(a), a, scratch);
        return;
    }
    if (cpu_f32_direct(ctx)) {
        cpu_conv_f32_direct(ctx, a, scratch);
        return;
    }
    const int n = a->out_h * a->out_w, kk = a->k * a->k, K = a->in_c * kk;
    /* small outputs are not worth splitting */
    const int threads = (long)n * a->out_c * K < 2000000L ? 1 : ctx->threads;
    if (cpu_is_pointwise(a)) {
        int c0 = 0;
        for (int s = 0; s < a->n_in; s++) {
            cpu_gemm(ctx, threads, a->out_c, n, a->in[s].channels, a->weight + c0, K, a->in[s].data, a->out, s > 0);
            c0 += a->in[s].channels;
        }
    } else {
        float *col = scratch;
        cpu_im2col(ctx, a, col);
        cpu_gemm(ctx, threads, a->out_c, n, K, a->weight, K, col, a->out, 0);
    }
    cpu_epilogue(ctx, a);
}

/* One output of one channel; NaN wins, as in PyTorch. */
static inline float pool_one(const bzn_pool_args *a, const float *x, int oy, int ox, const int K) {
    const int y0 = oy * a->stride - a->pad, x0 = ox * a->stride - a->pad;
    float m = -INFINITY;
    if (y0 >= 0 && x0 >= 0 && y0 + K <= a->in_h && x0 + K <= a->in_w) { /* interior */
        const float *w = x + (size_t)y0 * a->in_w + x0;
        int nan = 0;
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                const float v = w[(size_t)ky * a->in_w + kx];
                m = v > m ? v : m; /* maxss */
                nan |= v != v;
            }
        return nan ? NAN : m;
    }
    for (int ky = 0; ky < K; ky++) {
        const int y = y0 + ky;
        if (y < 0 || y >= a->in_h) continue;
        for (int kx = 0; kx < K; kx++) {
            const int xx = x0 + kx;
            if (xx < 0 || xx >= a->in_w) continue;
            const float v = x[(size_t)y * a->in_w + xx];
            m = (v > m || v != v) ? v : m;
        }
    }
    return m;
}

#if defined(__SSE2__)
/* lanes that are NaN or -0: maxps differs from the reference there (NaN must win; between
 * -0 and +0 the first in the window wins), so such rows are left to the scalar code */
static inline __m128 pool_special(__m128 v) {
    const __m128 neg0 = _mm_castsi128_ps(_mm_cmpeq_epi32(_mm_castps_si128(v), _mm_set1_epi32((int)0x80000000u)));
    return _mm_or_ps(_mm_cmpunord_ps(v, v), neg0);
}

/* BlazeNeo's pools, 2x2 and 3x3 with stride 2 (padding K - 2), 4 outputs at a time for the
 * outputs [ox, hi) of a row whose windows lie inside the image; r[] are the window's rows.
 * Returns where it stopped; *special is set when an input was NaN or -0 (the caller redoes
 * the row). */
static int pool_row_sse2(const float *const *r, const int K, int ox, int hi, float *o, int *special) {
    __m128 un = _mm_setzero_ps();
    for (; ox + 4 <= hi; ox += 4) {
        const int x0 = 2 * ox - (K - 2); /* the first window's first column */
        __m128 lo = _mm_loadu_ps(r[0] + x0), hi4 = _mm_loadu_ps(r[0] + x0 + 4), lo1 = lo, hi1 = hi4;
        if (K == 3) {
            lo1 = _mm_loadu_ps(r[0] + x0 + 1);
            hi1 = _mm_loadu_ps(r[0] + x0 + 5);
        }
        un = _mm_or_ps(un, _mm_or_ps(pool_special(lo), pool_special(hi4)));
        if (K == 3) un = _mm_or_ps(un, pool_special(hi1)); /* (lo1 is inside lo and hi4) */
        for (int ky = 1; ky < K; ky++) { /* down the window's rows: columns x0 .. x0 + 7 (+ 1) */
            const __m128 a = _mm_loadu_ps(r[ky] + x0), b = _mm_loadu_ps(r[ky] + x0 + 4);
            lo = _mm_max_ps(lo, a);
            hi4 = _mm_max_ps(hi4, b);
            un = _mm_or_ps(un, _mm_or_ps(pool_special(a), pool_special(b)));
            if (K == 3) {
                const __m128 c = _mm_loadu_ps(r[ky] + x0 + 1), d = _mm_loadu_ps(r[ky] + x0 + 5);
                lo1 = _mm_max_ps(lo1, c);
                hi1 = _mm_max_ps(hi1, d);
                un = _mm_or_ps(un, pool_special(d)); /* (c is inside a and b) */
            }
        }
        /* across: window j covers columns x0 + 2j .. x0 + 2j + K - 1 */
        __m128 m = _mm_max_ps(_mm_shuffle_ps(lo, hi4, _MM_SHUFFLE(2, 0, 2, 0)),
                              _mm_shuffle_ps(lo, hi4, _MM_SHUFFLE(3, 1, 3, 1)));
        if (K == 3) m = _mm_max_ps(m, _mm_shuffle_ps(lo1, hi1, _MM_SHUFFLE(3, 1, 3, 1)));
        _mm_storeu_ps(o + ox, m);
    }
    *special = _mm_movemask_ps(un) != 0;
    return ox;
}
#endif

/* one channel; K is a compile-time constant in the specialised calls below, so the window
 * loops unroll */
static inline void pool_channel(const bzn_pool_args *a, const float *x, float *o, const int K) {
    for (int oy = 0; oy < a->out_h; oy++) {
        float *orow = o + (size_t)oy * a->out_w;
        int ox = 0;
#if defined(__SSE2__)
        const int y0 = oy * a->stride - a->pad;
        if ((K == 2 || K == 3) && a->stride == 2 && a->pad == K - 2 && y0 >= 0 && y0 + K <= a->in_h) {
            const float *r[3];
            for (int ky = 0; ky < K; ky++) r[ky] = x + (size_t)(y0 + ky) * a->in_w;
            const int lo = K - 2, span = a->in_w - K + a->pad; /* interior windows: [lo, hi) */
            const int hi = span < 0 ? 0 : (span / 2 + 1 < a->out_w ? span / 2 + 1 : a->out_w);
            int special = 0;
            for (; ox < lo && ox < a->out_w; ox++) orow[ox] = pool_one(a, x, oy, ox, K);
            if (ox < hi) {
                const int done = pool_row_sse2(r, K, ox, hi, orow, &special);
                if (!special) ox = done; /* else the scalar loop redoes it, as the reference does */
            }
        }
#endif
        for (; ox < a->out_w; ox++) orow[ox] = pool_one(a, x, oy, ox, K);
    }
}

static void maxpool_channels(void *arg, int lo, int hi, int tid) {
    (void)tid;
    const bzn_pool_args *a = arg;
    for (int c = lo; c < hi; c++) {
        const float *x = a->in + (size_t)c * a->in_h * a->in_w;
        float *o = a->out + (size_t)c * a->out_h * a->out_w;
        switch (a->k) { /* BlazeNeo's two pools get unrolled windows */
        case 2: pool_channel(a, x, o, 2); break;
        case 3: pool_channel(a, x, o, 3); break;
        default: pool_channel(a, x, o, a->k); break;
        }
    }
}

static void cpu_maxpool1(void *vctx, const bzn_pool_args *a) {
    const cpu_ctx *ctx = vctx;
    bzn_pool_run_chunks(ctx->pool, a->c, 1, maxpool_channels, (void *)a);
}

/* rows [lo, hi) of the (channel, output row) pairs, in chunks of output columns whose
 * source columns are tabulated once per chunk */
static void upsample_rows(void *arg, int lo, int hi, int tid) {
    (void)tid;
    const bzn_upsample_args *a = arg;
    enum { CHUNK = 2048 };
    const int f = a->factor, oh = a->in_h * f, ow = a->in_w * f;
    const float scale = 1.0f / (float)f; /* PyTorch: src = (dst + 0.5) / f - 0.5, >= 0 */
    int tx[CHUNK];
    float tl[CHUNK];
    for (int c0 = 0; c0 < ow; c0 += CHUNK) {
        const int cn = ow - c0 < CHUNK ? ow - c0 : CHUNK;
        for (int j = 0; j < cn; j++) {
            float sx = scale * ((float)(c0 + j) + 0.5f) - 0.5f;
            if (sx < 0) sx = 0;
            tx[j] = (int)sx;
            tl[j] = sx - (float)tx[j];
        }
        for (int cy = lo; cy < hi; cy++) {
            const int c = cy / oh, oy = cy % oh;
            float sy = scale * ((float)oy + 0.5f) - 0.5f;
            if (sy < 0) sy = 0;
            const int y0 = (int)sy, y1 = y0 < a->in_h - 1 ? y0 + 1 : y0;
            const float ly = sy - (float)y0;
            const float *r0 = a->in + ((size_t)c * a->in_h + y0) * a->in_w;
            const float *r1 = a->in + ((size_t)c * a->in_h + y1) * a->in_w;
            float *o = a->out + ((size_t)c * oh + oy) * ow + c0;
            for (int j = 0; j < cn; j++) {
                const int i0 = tx[j], i1 = i0 < a->in_w - 1 ? i0 + 1 : i0;
                const float l = tl[j];
                const float top = (1 - l) * r0[i0] + l * r0[i1];
                const float bot = (1 - l) * r1[i0] + l * r1[i1];
                o[j] = (1 - ly) * top + ly * bot;
            }
        }
    }
}

static void cpu_upsample1(void *vctx, const bzn_upsample_args *a) {
    const cpu_ctx *ctx = vctx;
    bzn_pool_run_chunks(ctx->pool, a->c * a->in_h * a->factor, 1, upsample_rows, (void *)a);
}

/* batches: frame by frame */
static bzn_status cpu_conv(bzn_backend *b, const bzn_conv_args *a, void *scratch, bzn_error *err) {
    (void)err;
    return bzn_conv_frames(b, a, scratch, cpu_conv1);
}
static bzn_status cpu_maxpool(bzn_backend *b, const bzn_pool_args *a, bzn_error *err) {
    (void)err;
    return bzn_pool_frames(b, a, cpu_maxpool1);
}
static bzn_status cpu_upsample(bzn_backend *b, const bzn_upsample_args *a, bzn_error *err) {
    (void)err;
    return bzn_upsample_frames(b, a, cpu_upsample1);
}

typedef struct {
    bzn_task_fn fn;
    void *arg;
} task_job;

static void task_range(void *arg, int lo, int hi, int tid) {
    (void)tid;
    const task_job *t = arg;
    for (int i = lo; i < hi; i++) t->fn(t->arg, i);
}

static void cpu_parallel_for(bzn_backend *b, int n, bzn_task_fn fn, void *arg) {
    const cpu_ctx *ctx = b->ctx;
    task_job t = {fn, arg};
    bzn_pool_run(ctx->pool, n, 0, task_range, &t);
}

static bzn_status cpu_timers(bzn_backend *b, int n, bzn_error *err) {
    return bzn_host_clock_init(&((cpu_ctx *)b->ctx)->clock, n, err);
}
static bzn_status cpu_mark(bzn_backend *b, int i, bzn_error *err) {
    return bzn_host_clock_mark(&((cpu_ctx *)b->ctx)->clock, i, err);
}
static bzn_status cpu_elapsed(bzn_backend *b, int from, int to, double *ms, bzn_error *err) {
    return bzn_host_clock_elapsed(&((cpu_ctx *)b->ctx)->clock, from, to, ms, err);
}

static void single_threaded_blas(void) { openblas_set_num_threads(1); }

static void cpu_destroy(bzn_backend *b) {
    if (!b) return;
    if (b->ctx) {
        bzn_host_clock_free(&((cpu_ctx *)b->ctx)->clock);
        bzn_pool_destroy(((cpu_ctx *)b->ctx)->pool);
    }
    free(b->ctx);
    free(b);
}

bzn_status bzn_backend_cpu_create(const bzn_backend_options *opt, bzn_backend **out, bzn_error *err) {
    int threads = opt ? opt->threads : 0;
    bzn_backend *b = calloc(1, sizeof *b);
    cpu_ctx *ctx = calloc(1, sizeof *ctx);
    if (!b || !ctx) {
        free(b);
        free(ctx);
        return bzn_fail(err, BZN_ERR_NOMEM, "out of memory creating the CPU backend");
    }
    /* One set of threads: the pool splits the work and every sgemm call runs on one thread.
       OpenBLAS's own thread pool would otherwise fight the pool for the cores. This is
       OpenBLAS's process-wide setting, so it is made once (README: "Threads"). */
    static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
    pthread_once(&blas_once, single_threaded_blas);
    if (threads == 0) threads = bzn_pool_cpus();
    ctx->threads = threads < 1 ? 1 : threads;
    bzn_status st = bzn_isa_choose(&ctx->isa, err);
    const char *wino = getenv("BZN_WINOGRAD");
    ctx->wino = !wino || !*wino || !strcmp(wino, "1") ? WINO_AUTO : !strcmp(wino, "0") ? WINO_OFF : WINO_ALL;
    if (st == BZN_OK && wino && *wino && strcmp(wino, "0") && strcmp(wino, "1") && strcmp(wino, "all"))
        st = bzn_fail(err, BZN_ERR_ARG, "BZN_WINOGRAD=%s: expected 0 (off), 1 (where it pays, the default) or all", wino);
    if (st == BZN_OK) st = bzn_pool_create(ctx->threads, &ctx->pool, err);
    if (st != BZN_OK) {
        free(b);
        free(ctx);
        return st;
    }
    ctx->s8 = bzn_isa_s8_kernel(ctx->isa);
#ifdef _SC_LEVEL2_CACHE_SIZE
    const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    ctx->l2_bytes = l2 > 0 ? (size_t)l2 : 0;
#endif
    ctx->f32 = bzn_isa_f32_kernel(ctx->isa);
    snprintf(ctx->detail, sizeof ctx->detail, "%s kernels: FP32 %s, INT8 %s%s; Winograd %s", bzn_isa_name(ctx->isa),
             bzn_f32_kernel_name(ctx->f32), bzn_s8_kernel_name(ctx->s8),
             ctx->isa != bzn_isa_best() ? " (lowered by BZN_ISA)" : "",
             ctx->wino == WINO_OFF ? "off" : ctx->wino == WINO_ALL ? "on every 3x3" : "where it pays");
    b->name = "cpu";
    b->weights_form = (int)ctx->isa * 4 + ctx->wino; /* (INT8 packing and Winograd's kernels follow both) */
    b->detail = ctx->detail;
    b->ctx = ctx;
    b->host_memory = 1;
    b->threads = ctx->threads;
    b->alloc = bzn_host_alloc;
    b->free = bzn_host_free;
    b->upload = bzn_host_copy;
    b->download = bzn_host_copy;
    b->weights_prepare = cpu_weights_prepare;
    b->conv_reads_floats = cpu_conv_reads_floats;
    b->weights_release = cpu_weights_release;
    b->conv_prepare = cpu_conv_prepare;
    b->conv_release = cpu_conv_release;
    b->conv_scratch = cpu_conv_scratch;
    b->conv = cpu_conv;
    b->conv_qin_bytes = cpu_conv_qin_bytes;
    b->maxpool = cpu_maxpool;
    b->upsample = cpu_upsample;
    b->timers = cpu_timers;
    b->mark = cpu_mark;
    b->elapsed_ms = cpu_elapsed;
    b->parallel_for = cpu_parallel_for;
    b->destroy = cpu_destroy;
    *out = b;
    return BZN_OK;
}
