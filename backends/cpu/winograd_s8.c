/* winograd_s8.c - INT8 3x3 stride-1 convolutions by an exact integer Winograd F(4x4, 3x3)
 * (see winograd_s8.h for the arithmetic and why it is exact).
 *
 * The tiles are winograd.c's: output tile (ty, t) covers output rows 4 ty .. 4 ty + 3,
 * columns 4 t .. 4 t + 3 and reads padded rows 4 ty .. 4 ty + 5, columns 4 t .. 4 t + 5;
 * tile m = ty (tiles_x + 1) + t (one dummy per tile row, computed and dropped), so that a
 * block of NB consecutive tiles is NB consecutive columns of every array below.
 *  1. Strips, every group of 4 input channels once (all threads, by group; the planes' own
 *     interleave): S[g][r][p][m][l] = q of channel 4 g + l at padded row 4 ty + r, column
 *     4 t + p of tile m = ty (tiles_x + 1) + t, as int16 (q = byte - 128; zeros past the
 *     image). Row i of tile m is strip i (i < 4), or strip i - 4 at tile m + tiles_x + 1
 *     (i = 4, 5); its columns are phases 0..3 at m, phases 0, 1 at m + 1.
 *  2. Work items (block of NB tiles, share of the output channels), each on the thread's own
 *     scratch: the block's V for every group (down: Q[i][p][k][l] = (B^T d)[i] for column
 *     4 k + p; across: V[6 i + j][k] = (B^T q)[j], as two interleaved channel pairs); then,
 *     GROUP output channels at a time, the 36 GEMMs M'[ij] = U'[ij] x V[ij] and the output
 *     transforms, 4 channels at a time handed to the caller's store. With few blocks and
 *     several threads ("shared V"), every block's V is made first, by all threads, and the
 *     items then only read it.
 */
#include "winograd_s8.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gemm_s8.h"
#include "winograd.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BZN_X86 1
#define AVX2 __attribute__((target("avx2")))
#else
#define AVX2
#endif

#define NB BZN_WINO_NB /* tiles per block (48) */
#define LQ 64    /* tiles the down pass covers: NB + 1, rounded up */
#define GROUP 16 /* output channels whose M' is kept for the output transforms */
#define POS 36

static int imin(int x, int y) { return x < y ? x : y; }

/* ---- the weights, once per model ------------------------------------------------------- */

int bzn_wino_s8_ok(const bzn_conv_args *a) {
    if (!a->qweight || a->k != 3 || a->stride > 1 || a->dilation > 1) return 0;
    for (int oc = 0; oc < a->out_c; oc++) { /* |Y| <= 128 sum |w| < 2^25 (winograd_s8.h) */
        const int8_t *w = a->qweight + (size_t)oc * a->in_c * 9;
        long s = 0;
        for (int i = 0; i < a->in_c * 9; i++) s += w[i] < 0 ? -w[i] : w[i];
        if (s >= (1L << 18)) return 0;
    }
    return 1;
}

void bzn_wino_s8_weights_free(bzn_wino_s8_weights *w) {
    if (!w) return;
    free(w->u);
    free(w);
}

bzn_status bzn_wino_s8_weights_make(const bzn_conv_args *a, bzn_wino_s8_weights **out, size_t *bytes,
                                    bzn_error *err) {
    static const int G[6][3] = {{1, 0, 0}, {-1, -1, -1}, {-1, 1, -1}, {1, 2, 4}, {1, -2, 4}, {0, 0, 1}}; /* G' */
    *out = NULL;
    bzn_wino_s8_weights *w = calloc(1, sizeof *w);
    const int oc_pad = (a->out_c + 3) / 4 * 4, pairs = 2 * ((a->in_c + 3) / 4);
    const size_t n = (size_t)POS * oc_pad * pairs * 2;
    if (w) w->u = calloc(n, sizeof *w->u);
    if (!w || !w->u) {
        bzn_wino_s8_weights_free(w);
        return bzn_fail(err, BZN_ERR_NOMEM, "out of memory transforming 3x3 int8 weights for Winograd");
    }
    w->tag = BZN_WINO_S8_TAG;
    w->in_c = a->in_c, w->out_c = a->out_c, w->oc_pad = oc_pad, w->pairs = pairs;
    for (int oc = 0; oc < a->out_c; oc++)
        for (int c = 0; c < a->in_c; c++) {
            const int8_t *g = a->qweight + ((size_t)oc * a->in_c + c) * 9; /* g[ky][kx] */
            int gg[6][3];                                                  /* G' g */
            for (int i = 0; i < 6; i++)
                for (int x = 0; x < 3; x++) gg[i][x] = G[i][0] * g[x] + G[i][1] * g[3 + x] + G[i][2] * g[6 + x];
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 6; j++)
                    w->u[((((size_t)(6 * i + j) * (oc_pad / 4) + oc / 4) * pairs + c / 2) * 4 + oc % 4) * 2 + c % 2] =
                        (int16_t)(gg[i][0] * G[j][0] + gg[i][1] * G[j][1] + gg[i][2] * G[j][2]);
        }
    *out = w;
    *bytes = n * sizeof *w->u;
    return BZN_OK;
}

/* ---- the plan, per context ------------------------------------------------------------- */

struct bzn_wino_s8_plan {
    int threads, in_c;
    int in_h, in_w, pad, hp, wp;
    int tiles_y, tiles_x, tx1; /* tx1 = tiles_x + 1: tiles per tile row, the dummy included */
    int tblocks, quads;        /* blocks of NB tiles; groups of 4 output channels */
    int msplit;                /* shares of the output channels per block */
    int shared_v;              /* every block's V made first, by all threads (few blocks) */
    int groups;                /* of 4 input channels: ceil(in_c / 4) */
    size_t mlen;               /* tiles per strip S[g][r][p] (4 int16 each) */
    size_t vlen;               /* int16 of one block's V: 36 (2 groups) NB 2 */
    size_t shared_bytes;       /* the strips, and with shared_v every block's V */
    size_t thread_bytes;       /* per thread: V (private), M', Q, the output rows */
};

#define M_INTS ((size_t)POS * GROUP * NB)
#define Q_INT16 ((size_t)24 * LQ * 4)    /* a group's Q[6 i][4 p][LQ][4] */
#define Y_INTS ((size_t)4 * 4 * 4 * NB) /* four channels' output rows [4][4 y][4 NB] */

void bzn_wino_s8_plan_free(bzn_wino_s8_plan *p) { free(p); }

static size_t align64(size_t n) { return (n + 63) / 64 * 64; }

bzn_status bzn_wino_s8_plan_make(const bzn_conv_args *a, int threads, bzn_wino_s8_plan **out, bzn_error *err) {
    *out = NULL;
    bzn_wino_s8_plan *p = calloc(1, sizeof *p);
    if (!p) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory preparing an INT8 Winograd convolution");
    p->threads = threads;
    p->in_c = a->in_c;
    p->in_h = a->in_h, p->in_w = a->in_w, p->pad = a->pad;
    p->hp = a->in_h + 2 * a->pad, p->wp = a->in_w + 2 * a->pad;
    p->tiles_y = (a->out_h + 3) / 4, p->tiles_x = (a->out_w + 3) / 4, p->tx1 = p->tiles_x + 1;
    p->tblocks = (p->tiles_y * p->tx1 + NB - 1) / NB;
    p->quads = (a->out_c + 3) / 4;
    p->msplit = 1;
    while (p->tblocks * p->msplit < 4 * threads && 2 * p->msplit <= p->quads) p->msplit *= 2;
    /* the last block's down pass reads up to tile m0 + LQ - 1 (+ tx1 for rows 4, 5) */
    p->mlen = ((size_t)(p->tblocks - 1) * NB + LQ + p->tx1 + 15) / 16 * 16;
    p->groups = (a->in_c + 3) / 4;
    p->vlen = (size_t)POS * 2 * p->groups * NB * 2;
    /* few blocks and several threads: the shares of one block run on different threads, and
       each would transform the block's input again; so every block's V comes first */
    p->shared_v = threads > 1 && p->msplit > 1;
    const size_t strips = align64((size_t)p->groups * 16 * p->mlen * 4 * 2), v = align64(p->vlen * 2);
    p->shared_bytes = strips + (p->shared_v ? (size_t)p->tblocks * v : 0);
    p->thread_bytes = (p->shared_v ? 0 : v) + align64(M_INTS * 4) + align64(Q_INT16 * 2) + align64(Y_INTS * 4);
    *out = p;
    return BZN_OK;
}

static size_t strips_bytes(const bzn_wino_s8_plan *p) { return align64((size_t)p->groups * 16 * p->mlen * 4 * 2); }
static int16_t *strips_of(const bzn_wino_s8_plan *p, uint8_t *scratch, int g) {
    return (int16_t *)scratch + (size_t)g * 16 * p->mlen * 4;
}

size_t bzn_wino_s8_scratch(const bzn_wino_s8_plan *p) {
    return p->shared_bytes + (size_t)p->threads * p->thread_bytes;
}

/* The loops below write arrays that never overlap the ones they read (as in winograd.c) */
#if defined(__GNUC__) && !defined(__clang__)
#define IVDEP _Pragma("GCC ivdep")
#else
#define IVDEP
#endif

/* ---- the transforms --------------------------------------------------------------------- */

/* B^T d for a column d0..d5 (winograd.h), in int16: |d| <= 128 gives at most 1280 after one
 * pass and 12800 after two */
#define BT6(d0, d1, d2, d3, d4, d5, o0, o1, o2, o3, o4, o5) \
    do {                                                   \
        o0 = (int16_t)(4 * d0 - 5 * d2 + d4);              \
        o1 = (int16_t)((d3 + d4) - 4 * (d1 + d2));         \
        o2 = (int16_t)((d4 - d3) + 4 * (d1 - d2));         \
        o3 = (int16_t)((d4 - d2) + 2 * (d3 - d1));         \
        o4 = (int16_t)((d4 - d2) - 2 * (d3 - d1));         \
        o5 = (int16_t)(4 * d1 - 5 * d3 + d5);              \
    } while (0)

/* Step 1 for group g (4 channels): its 16 strips S[r][ph] (s: 16 mlen tiles of 4 int16) from
 * the planes, whose pixels are the group's 4 bytes: S[r][ph][m][l] = byte l of padded pixel
 * (4 ty + r, 4 t + ph) - 128 for tile m = ty tx1 + t, 0 past the image. */
#ifdef BZN_X86
/* 8 tiles of one padded row from pixel 4 t0 (the 32 pixels inside the row): the 4 x 4 dword
 * transpose of each lane splits the phases (lane 0 then holds the even tiles, lane 1 the odd
 * ones, which the permute puts in order), then bytes to int16 - 128 */
AVX2 static void strip8(const uint8_t *px, int16_t *d, size_t pstride) {
    const __m256i y0 = _mm256_loadu_si256((const __m256i *)px), y1 = _mm256_loadu_si256((const __m256i *)(px + 32));
    const __m256i y2 = _mm256_loadu_si256((const __m256i *)(px + 64)), y3 = _mm256_loadu_si256((const __m256i *)(px + 96));
    const __m256i t0 = _mm256_unpacklo_epi32(y0, y1), t1 = _mm256_unpackhi_epi32(y0, y1);
    const __m256i t2 = _mm256_unpacklo_epi32(y2, y3), t3 = _mm256_unpackhi_epi32(y2, y3);
    const __m256i ph[4] = {_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2), _mm256_unpacklo_epi64(t1, t3),
                           _mm256_unpackhi_epi64(t1, t3)};
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7), k128 = _mm256_set1_epi16(128);
    for (int h = 0; h < 4; h++) {
        const __m256i v = _mm256_permutevar8x32_epi32(ph[h], order);
        int16_t *o = d + (size_t)h * pstride;
        _mm256_storeu_si256((__m256i *)o, _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(v)), k128));
        _mm256_storeu_si256((__m256i *)(o + 16),
                            _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm256_extracti128_si256(v, 1)), k128));
    }
}
#endif
static void fill_strips(const bzn_wino_s8_plan *p, const uint8_t *planes, int g, int16_t *s) {
    const uint8_t *plane = planes + (size_t)g * p->hp * p->wp * 4;
    const int tx1 = p->tx1;
    const size_t pstride = p->mlen * 4, used = (size_t)(p->tiles_y + 1) * tx1;
    for (int r = 0; r < 4; r++) {
        int16_t *sr = s + (size_t)r * 4 * pstride;
        for (int ty = 0; ty <= p->tiles_y; ty++) {
            const int py = 4 * ty + r; /* padded row */
            int16_t *d = sr + (size_t)ty * tx1 * 4;
            if (py >= p->hp) {
                for (int ph = 0; ph < 4; ph++) memset(d + ph * pstride, 0, (size_t)tx1 * 4 * sizeof *d);
                continue;
            }
            const uint8_t *row = plane + (size_t)py * p->wp * 4;
            int t = 0;
#ifdef BZN_X86
            for (; 4 * (t + 8) <= p->wp; t += 8) strip8(row + (size_t)16 * t, d + 4 * t, pstride);
            for (; t < tx1; t += 8) { /* the rest through a copy padded with 128 (q = 0); the last 8
                                         tiles may run into the next tile row's, written later, or
                                         into the zeroed tail (mlen: 16 tiles past it) */
                uint8_t tail[128];
                const int px = p->wp - 4 * t;
                memset(tail, 128, sizeof tail);
                if (px > 0) memcpy(tail, row + (size_t)16 * t, (size_t)(px < 32 ? px : 32) * 4);
                strip8(tail, d + 4 * t, pstride);
            }
#endif
            for (; t < tx1; t++)
                for (int ph = 0; ph < 4; ph++) {
                    const int x = 4 * t + ph;
                    for (int l = 0; l < 4; l++)
                        d[ph * pstride + 4 * t + l] = x < p->wp ? (int16_t)(row[4 * x + l] - 128) : 0;
                }
        }
        for (int ph = 0; ph < 4; ph++) memset(sr + ph * pstride + used * 4, 0, (p->mlen - used) * 4 * sizeof *sr);
    }
}

/* Down, one group of one block: Q[i][ph][k][l] = (B^T d)[i], d = column 4 (m0 + k) + ph of the
 * tile rows, channel l, k < LQ. x[i][ph] = strip row i's phase ph at the block's first tile. */
AVX2 static void down_block(const int16_t *const x[6][4], int16_t *q) {
    for (int ph = 0; ph < 4; ph++) {
        const int16_t *x0 = x[0][ph], *x1 = x[1][ph], *x2 = x[2][ph], *x3 = x[3][ph], *x4 = x[4][ph], *x5 = x[5][ph];
        int16_t *q0 = q + (size_t)ph * LQ * 4, *q1 = q0 + 16 * LQ, *q2 = q1 + 16 * LQ, *q3 = q2 + 16 * LQ,
                *q4 = q3 + 16 * LQ, *q5 = q4 + 16 * LQ;
        IVDEP
        for (int k = 0; k < 4 * LQ; k++) {
            const int d0 = x0[k], d1 = x1[k], d2 = x2[k], d3 = x3[k], d4 = x4[k], d5 = x5[k];
            BT6(d0, d1, d2, d3, d4, d5, q0[k], q1[k], q2[k], q3[k], q4[k], q5[k]);
        }
    }
}

/* Across, one group (q: its Q) into V as two channel pairs (v: the first pair's rows; the
 * second's are 2 NB int16 further): v[(6 i + j) ps + 2 k + h] = (B^T q)[j] of channel h of
 * the pair, row i, tile k; q = Q[i][0..3][k], Q[i][0][k + 1], Q[i][1][k + 1]. */
#ifdef BZN_X86
AVX2 static inline void bt6_v(__m256i d0, __m256i d1, __m256i d2, __m256i d3, __m256i d4, __m256i d5, __m256i o[6]) {
    const __m256i d42 = _mm256_sub_epi16(d4, d2), d31 = _mm256_slli_epi16(_mm256_sub_epi16(d3, d1), 1);
    o[0] = _mm256_add_epi16(_mm256_sub_epi16(_mm256_slli_epi16(d0, 2), _mm256_add_epi16(_mm256_slli_epi16(d2, 2), d2)), d4);
    o[1] = _mm256_sub_epi16(_mm256_add_epi16(d3, d4), _mm256_slli_epi16(_mm256_add_epi16(d1, d2), 2));
    o[2] = _mm256_add_epi16(_mm256_sub_epi16(d4, d3), _mm256_slli_epi16(_mm256_sub_epi16(d1, d2), 2));
    o[3] = _mm256_add_epi16(d42, d31);
    o[4] = _mm256_sub_epi16(d42, d31);
    o[5] = _mm256_add_epi16(_mm256_sub_epi16(_mm256_slli_epi16(d1, 2), _mm256_add_epi16(_mm256_slli_epi16(d3, 2), d3)), d5);
}
AVX2 static void across_group(const int16_t *q, int16_t *v, size_t ps) {
    for (int i = 0; i < 6; i++) {
        const int16_t *qi = q + (size_t)16 * i * LQ;
        for (int k = 0; k < NB; k += 8) { /* 8 tiles: two vectors of 4 tiles x 4 channels */
#define LD(ph, t) _mm256_loadu_si256((const __m256i *)(qi + (ph) * LQ * 4 + 4 * (k + (t))))
            __m256i oa[6], ob[6];
            bt6_v(LD(0, 0), LD(1, 0), LD(2, 0), LD(3, 0), LD(0, 1), LD(1, 1), oa);
            bt6_v(LD(0, 4), LD(1, 4), LD(2, 4), LD(3, 4), LD(0, 5), LD(1, 5), ob);
#undef LD
            for (int j = 0; j < 6; j++) { /* dwords 0, 2 of each tile's pair of dwords: channels 0, 1 */
                const __m256 a = _mm256_castsi256_ps(oa[j]), b = _mm256_castsi256_ps(ob[j]);
                const __m256i p0 = _mm256_castps_si256(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
                const __m256i p1 = _mm256_castps_si256(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
                int16_t *d = v + (size_t)(6 * i + j) * ps + 2 * k;
                _mm256_storeu_si256((__m256i *)d, _mm256_permute4x64_epi64(p0, _MM_SHUFFLE(3, 1, 2, 0)));
                _mm256_storeu_si256((__m256i *)(d + 2 * NB), _mm256_permute4x64_epi64(p1, _MM_SHUFFLE(3, 1, 2, 0)));
            }
        }
    }
}
#else
static void across_group(const int16_t *q, int16_t *v, size_t ps) {
    for (int i = 0; i < 6; i++) {
        const int16_t *q0 = q + (size_t)16 * i * LQ, *q1 = q0 + 4 * LQ, *q2 = q1 + 4 * LQ, *q3 = q2 + 4 * LQ;
        for (int k = 0; k < NB; k++)
            for (int l = 0; l < 4; l++) {
                int16_t o[6];
                const int e = 4 * k + l, d0 = q0[e], d1 = q1[e], d2 = q2[e], d3 = q3[e], d4 = q0[e + 4], d5 = q1[e + 4];
                BT6(d0, d1, d2, d3, d4, d5, o[0], o[1], o[2], o[3], o[4], o[5]);
                for (int j = 0; j < 6; j++) v[(size_t)(6 * i + j) * ps + (l / 2) * 2 * NB + 2 * k + l % 2] = o[j];
            }
    }
}
#endif

/* ---- the GEMM: 4 output channels x NB tiles of M'[ij] ---------------------------------- */

/* c[r][t] = sum over pairs of u[pair][r] . v[pair][t] (int16 pairs, int32 sums that wrap): u
 * holds the 4 rows' pairs side by side, one 16-byte load per pair, each row's pair then
 * spread by vpshufd (on AMD EPYC Zen 3, a 4 x 48 block ran at 39-46 GMAC/s on one core so,
 * against 26 with a broadcast load per row: those take a vector pipe there too, and four
 * per pair left the multiplies waiting) */
#ifdef BZN_X86
AVX2 static void gemm4(int pairs, const int16_t *u, const int16_t *v, int32_t *c) {
    for (int h = 0; h < NB; h += 24) {
        __m256i acc[4][3];
        for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = acc[r][2] = _mm256_setzero_si256();
        for (int pr = 0; pr < pairs; pr++) {
            const int16_t *vp = v + (size_t)pr * 2 * NB + 2 * h;
            const __m256i b0 = _mm256_loadu_si256((const __m256i *)vp);
            const __m256i b1 = _mm256_loadu_si256((const __m256i *)(vp + 16));
            const __m256i b2 = _mm256_loadu_si256((const __m256i *)(vp + 32));
            const __m256i w4 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(u + (size_t)8 * pr)));
#define GEMM4_ROW(r, sel)                                                          \
    do {                                                                           \
        const __m256i w = _mm256_shuffle_epi32(w4, sel);                           \
        acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(w, b0));         \
        acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(w, b1));         \
        acc[r][2] = _mm256_add_epi32(acc[r][2], _mm256_madd_epi16(w, b2));         \
    } while (0)
            GEMM4_ROW(0, 0x00);
            GEMM4_ROW(1, 0x55);
            GEMM4_ROW(2, 0xaa);
            GEMM4_ROW(3, 0xff);
#undef GEMM4_ROW
        }
        for (int r = 0; r < 4; r++)
            for (int x = 0; x < 3; x++) _mm256_storeu_si256((__m256i *)(c + (size_t)r * NB + h + 8 * x), acc[r][x]);
    }
}
#else
static void gemm4(int pairs, const int16_t *u, const int16_t *v, int32_t *c) {
    for (int r = 0; r < 4; r++)
        for (int t = 0; t < NB; t++) {
            uint32_t s = 0;
            for (int pr = 0; pr < pairs; pr++)
                s += (uint32_t)((int32_t)u[8 * pr + 2 * r] * v[(size_t)pr * 2 * NB + 2 * t] +
                                (int32_t)u[8 * pr + 2 * r + 1] * v[(size_t)pr * 2 * NB + 2 * t + 1]);
            c[(size_t)r * NB + t] = (int32_t)s;
        }
}
#endif

/* ---- the output transform -------------------------------------------------------------- */

/* A^T m for a column m0..m5 (winograd.h), modulo 2^32 */
#define AT4(m0, m1, m2, m3, m4, m5, o0, o1, o2, o3)   \
    do {                                              \
        const uint32_t p12 = m1 + m2, n12 = m1 - m2;  \
        const uint32_t p34 = m3 + m4, n34 = m3 - m4;  \
        o0 = m0 + p12 + p34;                          \
        o1 = n12 + 2u * n34;                          \
        o2 = p12 + 4u * p34;                          \
        o3 = n12 + 8u * n34 + m5;                     \
    } while (0)

/* Y from 576 Y mod 2^32 (winograd_s8.h): Y mod 2^26, sign-extended */
static inline int32_t recover(uint32_t y576) {
    const uint32_t y = ((y576 >> 6) * 0x38e38e39u) & 0x3ffffffu;
    return (int32_t)(y ^ 0x2000000u) - 0x2000000;
}

/* One output channel over the block: m[(6 i + j) ps + t] = M'[i][j] of tile t, into
 * y[row][4 t + x] (4 rows of 4 NB). Down first (S[r][j][t], the F scaling on the way), then
 * across. */
AVX2 static void out_block(const int32_t *m, size_t ps, int32_t *y) {
    static const uint32_t f6[6] = {6, 4, 4, 1, 1, 24};
    uint32_t S[4][6][NB];
    for (int j = 0; j < 6; j++) {
        uint32_t f[6];
        for (int i = 0; i < 6; i++) f[i] = f6[i] * f6[j];
        const int32_t *c0 = m + (size_t)j * ps, *c1 = c0 + 6 * ps, *c2 = c1 + 6 * ps, *c3 = c2 + 6 * ps,
                      *c4 = c3 + 6 * ps, *c5 = c4 + 6 * ps;
        for (int t = 0; t < NB; t++) {
            const uint32_t m0 = f[0] * (uint32_t)c0[t], m1 = f[1] * (uint32_t)c1[t], m2 = f[2] * (uint32_t)c2[t];
            const uint32_t m3 = f[3] * (uint32_t)c3[t], m4 = f[4] * (uint32_t)c4[t], m5 = f[5] * (uint32_t)c5[t];
            AT4(m0, m1, m2, m3, m4, m5, S[0][j][t], S[1][j][t], S[2][j][t], S[3][j][t]);
        }
    }
    for (int r = 0; r < 4; r++)
        for (int t = 0; t < NB; t++) {
            uint32_t o0, o1, o2, o3;
            AT4(S[r][0][t], S[r][1][t], S[r][2][t], S[r][3][t], S[r][4][t], S[r][5][t], o0, o1, o2, o3);
            int32_t *d = y + (size_t)r * 4 * NB + 4 * t;
            d[0] = recover(o0), d[1] = recover(o1), d[2] = recover(o2), d[3] = recover(o3);
        }
}

/* ---- one frame ------------------------------------------------------------------------- */

typedef struct {
    const bzn_wino_s8_plan *p;
    const bzn_conv_args *a;
    const uint8_t *planes;
    uint8_t *scratch;
    bzn_wino_s8_store_fn store;
    void *store_arg;
} job;

static void strip_items(void *arg, int lo, int hi, int tid) {
    (void)tid;
    const job *j = arg;
    for (int g = lo; g < hi; g++) fill_strips(j->p, j->planes, g, strips_of(j->p, j->scratch, g));
}

/* block tb's V (v), input channel groups [g0, g1) (q: Q_INT16) */
static void block_v(const job *j, int tb, int g0, int g1, int16_t *q, int16_t *v) {
    const bzn_wino_s8_plan *p = j->p;
    const size_t ps = (size_t)2 * p->groups * NB * 2, m0 = (size_t)tb * NB * 4, pstride = p->mlen * 4;
    for (int g = g0; g < g1; g++) {
        const int16_t *s = strips_of(p, j->scratch, g), *x[6][4];
        for (int ph = 0; ph < 4; ph++) {
            for (int i = 0; i < 4; i++) x[i][ph] = s + ((size_t)i * 4 + ph) * pstride + m0;
            x[4][ph] = x[0][ph] + 4 * p->tx1, x[5][ph] = x[1][ph] + 4 * p->tx1; /* the next tile row's rows 0, 1 */
        }
        down_block(x, q);
        across_group(q, v + (size_t)g * 2 * 2 * NB, ps);
    }
}

/* this thread's area: M', Q, the output rows (and, private V, V after them) */
static uint8_t *thread_area(const job *j, int tid) {
    return j->scratch + j->p->shared_bytes + (size_t)tid * j->p->thread_bytes;
}
#define AREA_Q(t) ((int16_t *)((t) + align64(M_INTS * 4)))
#define AREA_Y(t) ((int32_t *)((t) + align64(M_INTS * 4) + align64(Q_INT16 * 2)))
#define AREA_V(t) ((int16_t *)((t) + align64(M_INTS * 4) + align64(Q_INT16 * 2) + align64(Y_INTS * 4)))
static int16_t *shared_v(const job *j, int tb) {
    return (int16_t *)(j->scratch + strips_bytes(j->p) + (size_t)tb * align64(j->p->vlen * 2));
}

/* shared V: items (channel group): its rows of every block's V */
static void shared_v_items(void *arg, int lo, int hi, int tid) {
    const job *j = arg;
    int16_t *q = AREA_Q(thread_area(j, tid));
    for (int tb = 0; tb < j->p->tblocks; tb++) block_v(j, tb, lo, hi, q, shared_v(j, tb));
}

/* items (block of tiles, share of the output channels) */
static void block_items(void *arg, int lo, int hi, int tid) {
    const job *j = arg;
    const bzn_wino_s8_plan *p = j->p;
    const bzn_conv_args *a = j->a;
    const bzn_wino_s8_weights *w = a->weights;
    uint8_t *t = thread_area(j, tid);
    int32_t *m = (int32_t *)t;
    int16_t *q = AREA_Q(t), *v = p->shared_v ? NULL : AREA_V(t);
    int32_t *y = AREA_Y(t);
    const size_t vps = (size_t)w->pairs * NB * 2; /* int16 per position of V */
    bzn_wino_runs runs = {0};
    int have = -1;
    for (int item = lo; item < hi; item++) {
        const int tb = item / p->msplit, share = item % p->msplit;
        if (have != tb) {
            bzn_wino_block_runs(p->tiles_y, p->tiles_x, tb, &runs);
            if (p->shared_v)
                v = shared_v(j, tb);
            else
                block_v(j, tb, 0, p->groups, q, v);
            have = tb;
        }
        const int oc_lo = share * p->quads / p->msplit * 4, oc_hi = imin((share + 1) * p->quads / p->msplit * 4, a->out_c);
        for (int g0 = oc_lo; g0 < oc_hi; g0 += GROUP) {
            const int rows = imin(oc_hi - g0, GROUP), quads = (rows + 3) / 4;
            for (int pos = 0; pos < POS; pos++)
                for (int r0 = 0; r0 < 4 * quads; r0 += 4)
                    gemm4(w->pairs, w->u + ((size_t)pos * w->oc_pad + g0 + r0) * w->pairs * 2, v + pos * vps,
                          m + ((size_t)pos * GROUP + r0) * NB);
            for (int r0 = 0; r0 < rows; r0 += 4) {
                const int n4 = imin(rows - r0, 4);
                for (int r = 0; r < n4; r++) out_block(m + (size_t)(r0 + r) * NB, (size_t)GROUP * NB, y + (size_t)r * 16 * NB);
                for (int u = 0; u < runs.n; u++) {
                    const int tx = runs.tx[u], cols = imin(4 * runs.len[u], a->out_w - 4 * tx);
                    for (int yy = 0; yy < 4 && 4 * runs.ty[u] + yy < a->out_h; yy++) {
                        const int32_t *acc[4];
                        for (int r = 0; r < 4; r++) acc[r] = y + (size_t)r * 16 * NB + (size_t)yy * 4 * NB + 4 * runs.t0[u];
                        j->store(j->store_arg, g0 + r0, n4, acc, cols, 4 * runs.ty[u] + yy, 4 * tx);
                    }
                }
            }
        }
    }
}

void bzn_wino_s8_conv(bzn_pool *pool, const bzn_wino_s8_plan *p, const bzn_conv_args *a, const uint8_t *planes,
                      void *scratch, bzn_wino_s8_store_fn store, void *store_arg) {
    job j = {p, a, planes, scratch, store, store_arg};
    bzn_pool_run_chunks(pool, p->groups, 1, strip_items, &j);
    if (p->shared_v) {
        bzn_pool_run_chunks(pool, p->groups, 1, shared_v_items, &j);
        bzn_pool_run_chunks(pool, p->tblocks * p->msplit, 1, block_items, &j);
        return;
    }
    bzn_pool_run_chunks(pool, p->tblocks * p->msplit, p->msplit, block_items, &j); /* whole blocks: V once each */
}
