/* winograd.c - FP32 3x3 stride-1 convolutions by Winograd F(4x4, 3x3) (see winograd.h).
 *
 * How a frame runs.
 *  - The tiles. Output tile (ty, t) covers output rows 4 ty .. 4 ty + 3 and columns 4 t ..
 *    4 t + 3, and reads padded input rows 4 ty .. 4 ty + 5, columns 4 t .. 4 t + 5 (padded:
 *    input row y - pad, column x - pad, zeros outside the image). Each tile row has one tile
 *    more than the output needs (t = tiles_x, a "dummy" computed and dropped, as the direct
 *    kernel computes the padding columns), so that tile m = ty (tiles_x + 1) + t starts at
 *    column 4 m of a row-strip laid out below: every loop then runs over whole vectors.
 *  - 1. The rows, once per frame (all threads, by channel): the padded input, every row once,
 *    in four strips by row mod 4: strip X[c][r] holds padded rows r, 4 + r, 8 + r, ... one
 *    after the other, 4 (tiles_x + 1) floats each. Row i of tile m = ty (tiles_x + 1) + t is
 *    padded row 4 ty + i: for i < 4 strip i from float 4 m on, for i = 4, 5 strip i - 4 one
 *    row (4 (tiles_x + 1) floats) further; its six columns are the six floats there.
 *  - 2. The work items: one block of NB = 48 consecutive tiles (the block kernel's columns)
 *    and a share of the output channels. Each thread, on its own scratch:
 *      a. transforms the block's input, every input channel: V[ij] (in_c x 48, 36 of them),
 *         which stays in the core's cache (the block kernel reads row c of V[ij] at
 *         koff[c] = 48 c);
 *      b. for each group of up to 32 output channels of its share: the 36 GEMM blocks
 *         M[ij] = U[ij] x V[ij] (8 channels x 48 tiles at a time), then the output transform
 *         of each channel, + bias, the activation, written into the output.
 *  - Few blocks (small images: 44x44 is three) and several threads: "shared V". Step 1 makes
 *    every block's V instead (all threads, by channel, each with its own strips); then the
 *    work items are the 36 positions: M[ij] = U[ij] x V[ij] for every block and every output
 *    channel, into a shared M ([block][ij][out_c rounded up to 8][48]), so that each of U[ij]
 *    and V[ij] is read once; then the output transforms, by block and group of channels.
 *    (Shared out by output channels instead, each share read all of a block's V, several MB,
 *    once per group of 32 channels: the 44x44 layers took 1.3x as long, 29.3 against 22.2 ms
 *    per frame on an Intel Xeon with AVX-512, 2 threads.)
 */
#include "winograd.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#if defined(__x86_64__) || defined(__i386__)
#define BZN_X86 1
#endif

#define NB BZN_S8_NR  /* tiles per block: the block kernel's 48 columns */
#define MR BZN_F32_MR  /* output channels per block kernel call: its 8 rows */
#define GROUP 32      /* output channels whose 36 GEMM blocks are kept for the output transform */
#define LQ 64         /* the input transform's rows: NB + 1 tiles, rounded up to whole vectors */

/* channel c of the (virtually concatenated) input (as cpu.c's) */
static const float *in_channel(const bzn_conv_args *a, int c) {
    int s = 0;
    while (s < a->n_in - 1 && c >= a->in[s].channels) c -= a->in[s++].channels;
    return a->in[s].data + (size_t)c * a->in_h * a->in_w;
}

int bzn_wino_shape_ok(const bzn_conv_args *a) {
    return !a->qweight && a->weight && a->k == 3 && a->stride <= 1 && a->dilation <= 1;
}

/* ---- the kernels, transformed once per model ----------------------------------------- */

void bzn_wino_weights_free(bzn_wino_weights *w) {
    if (!w) return;
    free(w->u);
    free(w);
}

/* U = G g G^T for every (output, input) channel pair, computed in double and rounded once:
 * G's entries (1/6, 1/12, 1/24) are not floats, so the rounding would otherwise come twice. */
bzn_status bzn_wino_weights_make(const bzn_conv_args *a, bzn_wino_weights **out, size_t *bytes, bzn_error *err) {
    static const double G[6][3] = {{1.0 / 4, 0, 0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                   {-1.0 / 6, 1.0 / 6, -1.0 / 6}, {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                   {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
    *out = NULL;
    const size_t n = (size_t)BZN_WINO_POS * a->out_c * a->in_c;
    bzn_wino_weights *w = calloc(1, sizeof *w);
    if (w) w->u = aligned_alloc(64, (n * sizeof *w->u + 63) / 64 * 64);
    if (!w || !w->u) {
        bzn_wino_weights_free(w);
        return bzn_fail(err, BZN_ERR_NOMEM, "out of memory transforming 3x3 weights for Winograd");
    }
    w->tag = BZN_WINO_TAG;
    w->in_c = a->in_c;
    w->out_c = a->out_c;
    for (int oc = 0; oc < a->out_c; oc++)
        for (int ic = 0; ic < a->in_c; ic++) {
            const float *g = a->weight + ((size_t)oc * a->in_c + ic) * 9; /* g[ky][kx] */
            double gg[6][3];                                              /* G g */
            for (int i = 0; i < 6; i++)
                for (int x = 0; x < 3; x++) gg[i][x] = G[i][0] * g[x] + G[i][1] * g[3 + x] + G[i][2] * g[6 + x];
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 6; j++) /* (G g G^T)[i][j] */
                    w->u[((size_t)(6 * i + j) * a->out_c + oc) * a->in_c + ic] =
                        (float)(gg[i][0] * G[j][0] + gg[i][1] * G[j][1] + gg[i][2] * G[j][2]);
        }
    *out = w;
    *bytes = n * sizeof *w->u;
    return BZN_OK;
}

/* ---- the transforms -------------------------------------------------------------------- */

/* The loops below write arrays that never overlap the ones they read; GCC cannot see it
 * (they are pieces of one buffer) and would otherwise keep them scalar. */
#if defined(__GNUC__) && !defined(__clang__)
#define WINO_IVDEP _Pragma("GCC ivdep")
#else
#define WINO_IVDEP
#endif

/* B^T d for a column d0..d5 (the first matrix of winograd.h, rows o0..o5). The order of the
 * operations is fixed (no contraction into fused multiply-adds: ISO C), so every instruction
 * set's build of these loops gives the same floats. */
#define WINO_BT(d0, d1, d2, d3, d4, d5, o0, o1, o2, o3, o4, o5) \
    do {                                                      \
        o0 = 4.0f * d0 - 5.0f * d2 + d4;                      \
        o1 = (d3 + d4) - 4.0f * (d1 + d2);                    \
        o2 = (d4 - d3) + 4.0f * (d1 - d2);                    \
        o3 = (d4 - d2) + 2.0f * (d3 - d1);                    \
        o4 = (d4 - d2) - 2.0f * (d3 - d1);                    \
        o5 = 4.0f * d1 - 5.0f * d3 + d5;                      \
    } while (0)

/* A^T m for a column m0..m5 (rows o0..o3 of A^T) */
#define WINO_AT(m0, m1, m2, m3, m4, m5, o0, o1, o2, o3) \
    do {                                              \
        const float p12 = m1 + m2, n12 = m1 - m2;      \
        const float p34 = m3 + m4, n34 = m3 - m4;      \
        o0 = m0 + p12 + p34;                          \
        o1 = n12 + 2.0f * n34;                        \
        o2 = p12 + 4.0f * p34;                        \
        o3 = (n12 + 8.0f * n34) + m5;                 \
    } while (0)

/* The input transform of one block of tiles of one input channel: x[i] is row i of the
 * block's first tile (in the strips), into V[6 i + j][tile k] at v[(6 i + j) ps + k].
 * Down first, splitting the columns by phase p = column mod 4 on the way (so that "across"
 * reads consecutive floats): Q[i][p][k] = (B^T d)[i] for the column d = x[0..5][4 k + p];
 * then across: V[6 i + j][k] = (B^T q)[j] with q = Q[i][0..3][k], Q[i][0][k + 1],
 * Q[i][1][k + 1] (tile k's six columns are phases 0..3 of tile k and phases 0, 1 of tile
 * k + 1). q: 24 LQ floats. */
static inline __attribute__((always_inline)) void in_block_body(const float *const x[6], float *q, float *v,
                                                                 size_t ps) {
    const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3], *x4 = x[4], *x5 = x[5];
    WINO_IVDEP
    for (int k = 0; k < LQ; k++) { /* down: four phases per tile */
#define WINO_DOWN(p)                                                                                           \
    {                                                                                                          \
        float o0, o1, o2, o3, o4, o5;                                                                          \
        WINO_BT(x0[4 * k + p], x1[4 * k + p], x2[4 * k + p], x3[4 * k + p], x4[4 * k + p], x5[4 * k + p], o0, o1, \
                o2, o3, o4, o5);                                                                               \
        q[p * LQ + k] = o0, q[(4 + p) * LQ + k] = o1, q[(8 + p) * LQ + k] = o2;                                \
        q[(12 + p) * LQ + k] = o3, q[(16 + p) * LQ + k] = o4, q[(20 + p) * LQ + k] = o5;                       \
    }
        WINO_DOWN(0) WINO_DOWN(1) WINO_DOWN(2) WINO_DOWN(3)
#undef WINO_DOWN
    }
    for (int i = 0; i < 6; i++) { /* across, straight into V */
        const float *q0 = q + (size_t)(4 * i) * LQ, *q1 = q0 + LQ, *q2 = q1 + LQ, *q3 = q2 + LQ;
        float *v0 = v + (size_t)(6 * i) * ps, *v1 = v0 + ps, *v2 = v1 + ps, *v3 = v2 + ps, *v4 = v3 + ps, *v5 = v4 + ps;
        WINO_IVDEP
        for (int k = 0; k < NB; k++) {
            float o0, o1, o2, o3, o4, o5;
            WINO_BT(q0[k], q1[k], q2[k], q3[k], q0[k + 1], q1[k + 1], o0, o1, o2, o3, o4, o5);
            v0[k] = o0, v1[k] = o1, v2[k] = o2, v3[k] = o3, v4[k] = o4, v5[k] = o5;
        }
    }
}

typedef bzn_wino_runs out_runs; /* (winograd.h) */
_Static_assert(NB == BZN_WINO_NB, "one block of tiles for the kernels and the runs");

/* The output transform of one output channel over a block's tiles, written into its plane o:
 * m[(6 i + j) ps + t] is M[i][j] of tile t. First down (S[y][j][t] = (A^T M[.][j])[y]), then
 * across each output row y of every tile (A^T S[y][.])[x], + bias, the activation, stored at
 * output pixel (4 ty + y, 4 tx + x); a tile sticking out past the right or bottom edge keeps
 * its inside pixels. */
static inline __attribute__((always_inline)) void out_tiles_body(const float *m, size_t ps, const out_runs *r,
                                                                  float bias, bzn_act act, float *o) {
    float S[4][6][NB], ob[4][4 * NB];
    for (int j = 0; j < 6; j++)
        for (int t = 0; t < NB; t++)
            WINO_AT(m[(size_t)j * ps + t], m[(size_t)(6 + j) * ps + t], m[(size_t)(12 + j) * ps + t],
                    m[(size_t)(18 + j) * ps + t], m[(size_t)(24 + j) * ps + t], m[(size_t)(30 + j) * ps + t],
                    S[0][j][t], S[1][j][t], S[2][j][t], S[3][j][t]);
    /* across every tile of the block (whole vectors), row y of tile t at ob[y][4 t .. 4 t + 3]:
     * one loop per activation, so that each vectorises */
#define WINO_ROWS(F)                                                                                \
    for (int y = 0; y < 4; y++)                                                                     \
        for (int t = 0; t < NB; t++) {                                                              \
            float y0, y1, y2, y3;                                                                   \
            WINO_AT(S[y][0][t], S[y][1][t], S[y][2][t], S[y][3][t], S[y][4][t], S[y][5][t], y0, y1, y2, y3); \
            ob[y][4 * t] = F(y0 + bias), ob[y][4 * t + 1] = F(y1 + bias);                          \
            ob[y][4 * t + 2] = F(y2 + bias), ob[y][4 * t + 3] = F(y3 + bias);                      \
        }
#define WINO_NONE(v) (v)
    switch (act) {
    case BZN_ACT_NONE: WINO_ROWS(WINO_NONE); break;
    case BZN_ACT_RELU: WINO_ROWS(bzn_relu); break;
    case BZN_ACT_RELU6: WINO_ROWS(bzn_relu6); break;
    }
#undef WINO_ROWS
#undef WINO_NONE
    for (int u = 0; u < r->n; u++) { /* each run of tiles: its rows, cut at the edges */
        const int tx = r->tx[u], cols = 4 * (tx + r->len[u]) <= r->out_w ? 4 * r->len[u] : r->out_w - 4 * tx;
        for (int y = 0; y < 4 && 4 * r->ty[u] + y < r->out_h; y++)
            memcpy(o + (size_t)(4 * r->ty[u] + y) * r->out_w + 4 * tx, &ob[y][4 * r->t0[u]], (size_t)cols * sizeof *o);
    }
}

/* the same C for each instruction set (the loops above vectorise over tiles) */
#define WINO_VARIANT(name, attr)                                                                            \
    attr static void in_block_##name(const float *const x[6], float *q, float *v, size_t ps) {               \
        in_block_body(x, q, v, ps);                                                                         \
    }                                                                                                       \
    attr static void out_tiles_##name(const float *m, size_t ps, const out_runs *r, float bias, bzn_act act, \
                                      float *o) {                                                         \
        out_tiles_body(m, ps, r, bias, act, o);                                                             \
    }
WINO_VARIANT(generic, )
#ifdef BZN_X86
WINO_VARIANT(avx2, __attribute__((target("avx2,fma"))))
WINO_VARIANT(avx512, __attribute__((target("avx512f"))))
#endif

/* ---- the plan, per context ------------------------------------------------------------- */

struct bzn_wino_plan {
    bzn_f32_kernel kern;
    int threads;
    int in_h, in_w, pad;
    int tiles_y, tiles_x; /* output tiles down and across: ceil(out / 4) (+ 1 dummy per row) */
    int tblocks, mblocks; /* blocks of NB tiles; of MR output channels */
    int out_c;
    int msplit;           /* shares of the output channels per block of tiles */
    int shared_v;         /* V of every block made first, by all threads (see bzn_wino_conv) */
    size_t xlen;          /* floats per strip X[c][r] */
    size_t vlen;          /* floats of one block's V: 36 in_c NB */
    size_t mlen;          /* shared V: floats of one block's M: 36 mblocks MR NB */
    size_t shared_floats; /* the strips of every channel (4 in_c xlen), or every block's V and M */
    size_t thread_floats; /* per thread: V and the GEMM blocks (or one channel's strips), Q */
    size_t *koff;         /* koff[c] = NB c: where input channel c's row of V[ij] starts */
    /* the transforms, compiled for the plan's instruction set (same floats on every one) */
    void (*in_block)(const float *const x[6], float *q, float *v, size_t ps);
    void (*out_tiles)(const float *m, size_t ps, const out_runs *r, float bias, bzn_act act, float *o);
};

#define ACC_FLOATS ((size_t)BZN_WINO_POS * GROUP * NB) /* [36][GROUP][NB] */
#define Q_FLOATS ((size_t)24 * LQ)

void bzn_wino_plan_free(bzn_wino_plan *p) {
    if (!p) return;
    free(p->koff);
    free(p);
}

bzn_status bzn_wino_plan_make(const bzn_conv_args *a, bzn_f32_kernel kern, int threads, bzn_wino_plan **out,
                              bzn_error *err) {
    *out = NULL;
    bzn_wino_plan *p = calloc(1, sizeof *p);
    if (p) p->koff = malloc((size_t)a->in_c * sizeof *p->koff);
    if (!p || !p->koff) {
        bzn_wino_plan_free(p);
        return bzn_fail(err, BZN_ERR_NOMEM, "out of memory preparing a Winograd convolution");
    }
    p->kern = kern;
    p->threads = threads;
    p->in_h = a->in_h, p->in_w = a->in_w, p->pad = a->pad;
    p->tiles_y = (a->out_h + BZN_WINO_OUT - 1) / BZN_WINO_OUT;
    p->tiles_x = (a->out_w + BZN_WINO_OUT - 1) / BZN_WINO_OUT;
    p->tblocks = (p->tiles_y * (p->tiles_x + 1) + NB - 1) / NB;
    p->mblocks = (a->out_c + MR - 1) / MR;
    p->out_c = a->out_c;
    /* few blocks of tiles: share the output channels out too, so that every thread has work;
       then the blocks' input is transformed once, by all threads, instead of by each */
    p->msplit = 1;
    while (p->tblocks * p->msplit < 4 * threads && 2 * p->msplit <= p->mblocks) p->msplit *= 2;
    p->shared_v = threads > 1 && p->msplit > 1;
    /* a block's transform reads its strips up to tile m0 + LQ, one row further for i = 4, 5 */
    p->xlen = (size_t)4 * (NB * (p->tblocks - 1) + LQ) + (size_t)4 * (p->tiles_x + 1);
    p->vlen = (size_t)BZN_WINO_POS * a->in_c * NB;
    p->mlen = (size_t)BZN_WINO_POS * p->mblocks * MR * NB;
    p->shared_floats = p->shared_v ? p->tblocks * (p->vlen + p->mlen) : (size_t)4 * a->in_c * p->xlen;
    p->thread_floats = (p->shared_v ? 4 * p->xlen : p->vlen + ACC_FLOATS) + Q_FLOATS;
    for (int c = 0; c < a->in_c; c++) p->koff[c] = (size_t)c * NB;
    p->in_block = in_block_generic;
    p->out_tiles = out_tiles_generic;
#ifdef BZN_X86
    if (kern == BZN_F32_AVX512) p->in_block = in_block_avx512, p->out_tiles = out_tiles_avx512;
    if (kern == BZN_F32_AVX2) p->in_block = in_block_avx2, p->out_tiles = out_tiles_avx2;
#endif
    *out = p;
    return BZN_OK;
}

size_t bzn_wino_scratch(const bzn_wino_plan *p) {
    return (p->shared_floats + (size_t)p->threads * p->thread_floats) * sizeof(float);
}

/* ---- one frame ------------------------------------------------------------------------- */

typedef struct {
    const bzn_wino_plan *p;
    const bzn_conv_args *a;
    float *shared, *threads_at; /* the strips or every block's V; the per-thread areas */
} wino_job;

/* The four strips of input channel c (s: 4 xlen floats): padded rows r, 4 + r, 8 + r, ... for
 * the tile rows 0 .. tiles_y (the last one for the bottom rows of the last tile row); the
 * rest of each strip (read by the last block's tiles past the output) zeros. */
static void fill_strips(const bzn_wino_plan *p, const bzn_conv_args *a, int c, float *s) {
    const int wp = 4 * (p->tiles_x + 1), pad = p->pad, in_w = p->in_w;
    const float *xc = in_channel(a, c);
    for (int r = 0; r < 4; r++) {
        for (int ty = 0; ty <= p->tiles_y; ty++, s += wp) {
            const int y = 4 * ty + r - pad;
            if (y < 0 || y >= p->in_h) {
                memset(s, 0, (size_t)wp * sizeof *s);
                continue;
            }
            memset(s, 0, (size_t)pad * sizeof *s); /* (wp >= in_w + 2 pad + 2: the row fits) */
            memcpy(s + pad, xc + (size_t)y * in_w, (size_t)in_w * sizeof *s);
            memset(s + pad + in_w, 0, (size_t)(wp - pad - in_w) * sizeof *s);
        }
        const size_t used = (size_t)(p->tiles_y + 1) * wp;
        memset(s, 0, (p->xlen - used) * sizeof *s);
        s += p->xlen - used;
    }
}

/* block tb's input transform for channel c, whose strips are s, into v (its V, channel c's
 * rows: v[(6 i + j) ps + k]) */
static void transform_block(const bzn_wino_plan *p, const float *s, int tb, float *q, float *v, size_t ps) {
    const float *x[6];
    for (int i = 0; i < 4; i++) x[i] = s + (size_t)i * p->xlen + (size_t)4 * NB * tb;
    x[4] = x[0] + 4 * (p->tiles_x + 1), x[5] = x[1] + 4 * (p->tiles_x + 1); /* the next tile row's rows 0, 1 */
    p->in_block(x, q, v, ps);
}

/* the tiles of block tb that are output, by runs in one tile row */
void bzn_wino_block_runs(int tiles_y, int tiles_x, int tb, bzn_wino_runs *r) {
    const int txp = tiles_x + 1, m0 = tb * NB;
    r->n = 0;
    for (int k = 0; k < NB;) {
        const int ty = (m0 + k) / txp, t = (m0 + k) % txp;
        if (ty >= tiles_y) break;
        const int len = tiles_x - t < NB - k ? tiles_x - t : NB - k;
        if (len <= 0) { /* the dummy */
            k++;
            continue;
        }
        r->t0[r->n] = k, r->len[r->n] = len, r->ty[r->n] = ty, r->tx[r->n] = t;
        r->n++;
        k += len;
    }
}

/* share `share` of the output channels of a block (v: its V), GROUP at a time: the 36 GEMM
 * blocks, then each channel's output transform, into the output */
static void block_gemm(const bzn_wino_plan *p, const bzn_conv_args *a, const float *v, int share, const out_runs *runs,
                       float *acc) {
    const bzn_wino_weights *w = a->weights;
    const int in_c = a->in_c, out_c = a->out_c;
    const size_t ps = (size_t)in_c * NB, hw = (size_t)a->out_h * a->out_w;
    const int mb_lo = share * p->mblocks / p->msplit, mb_hi = (share + 1) * p->mblocks / p->msplit;
    const int oc_hi = mb_hi * MR < out_c ? mb_hi * MR : out_c;
    for (int g0 = mb_lo * MR; g0 < oc_hi; g0 += GROUP) {
        const int rows = oc_hi - g0 < GROUP ? oc_hi - g0 : GROUP;
        for (int pos = 0; pos < BZN_WINO_POS; pos++) {
            const float *u = w->u + ((size_t)pos * out_c + g0) * in_c, *vp = v + pos * ps;
            float *c = acc + (size_t)pos * GROUP * NB;
            if (p->kern == BZN_F32_SGEMM) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, NB, in_c, 1.0f, u, in_c, vp, NB, 0.0f, c,
                            NB);
                continue;
            }
            for (int r0 = 0; r0 < rows; r0 += MR) {
                const float *wr[MR]; /* rows past out_c repeat the last (computed, not stored) */
                for (int r = 0; r < MR; r++) wr[r] = u + (size_t)(r0 + r < rows ? r0 + r : rows - 1) * in_c;
                bzn_f32_block(p->kern, in_c, vp, p->koff, wr, (float(*)[NB])(c + (size_t)r0 * NB), 0);
            }
        }
        for (int r = 0; r < rows; r++)
            p->out_tiles(acc + (size_t)r * NB, (size_t)GROUP * NB, runs, a->bias ? a->bias[g0 + r] : 0.0f, a->act,
                         a->out + (size_t)(g0 + r) * hw);
    }
}

/* private V, phase 1: the strips of every channel, items (channel) */
static void strip_items(void *arg, int lo, int hi, int tid) {
    (void)tid;
    const wino_job *j = arg;
    for (int c = lo; c < hi; c++) fill_strips(j->p, j->a, c, j->shared + (size_t)4 * c * j->p->xlen);
}

/* shared V, phase 1: items (channel): its strips, then its rows of every block's V */
static void shared_v_items(void *arg, int lo, int hi, int tid) {
    const wino_job *j = arg;
    const bzn_wino_plan *p = j->p;
    float *s = j->threads_at + (size_t)tid * p->thread_floats, *q = s + 4 * p->xlen;
    for (int c = lo; c < hi; c++) {
        fill_strips(p, j->a, c, s);
        for (int tb = 0; tb < p->tblocks; tb++)
            transform_block(p, s, tb, q, j->shared + tb * p->vlen + (size_t)c * NB, (size_t)j->a->in_c * NB);
    }
}

/* shared V: block tb's M ([36][mblocks MR][NB]), after every block's V */
static float *shared_m(const wino_job *j, int tb) {
    return j->shared + (size_t)j->p->tblocks * j->p->vlen + (size_t)tb * j->p->mlen;
}

/* shared V, phase 2: items (position ij): M[ij] = U[ij] x V[ij] of every block, all the output
 * channels (8 at a time: the rows past out_c are computed into M's padding rows) */
static void shared_m_items(void *arg, int lo, int hi, int tid) {
    (void)tid;
    const wino_job *j = arg;
    const bzn_wino_plan *p = j->p;
    const bzn_wino_weights *w = j->a->weights;
    const int in_c = j->a->in_c, out_c = p->out_c, rows = p->mblocks * MR;
    for (int pos = lo; pos < hi; pos++) {
        const float *u = w->u + (size_t)pos * out_c * in_c;
        for (int tb = 0; tb < p->tblocks; tb++) {
            const float *vp = j->shared + tb * p->vlen + (size_t)pos * in_c * NB;
            float *m = shared_m(j, tb) + (size_t)pos * rows * NB;
            if (p->kern == BZN_F32_SGEMM) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out_c, NB, in_c, 1.0f, u, in_c, vp, NB, 0.0f, m,
                            NB);
                continue;
            }
            for (int r0 = 0; r0 < out_c; r0 += MR) {
                const float *wr[MR]; /* rows past out_c repeat the last */
                for (int r = 0; r < MR; r++) wr[r] = u + (size_t)(r0 + r < out_c ? r0 + r : out_c - 1) * in_c;
                bzn_f32_block(p->kern, in_c, vp, p->koff, wr, (float(*)[NB])(m + (size_t)r0 * NB), 0);
            }
        }
    }
}

/* shared V, phase 3: items (block, group of GROUP output channels): the output transforms */
static void shared_out_items(void *arg, int lo, int hi, int tid) {
    (void)tid;
    const wino_job *j = arg;
    const bzn_wino_plan *p = j->p;
    const bzn_conv_args *a = j->a;
    const int groups = (p->out_c + GROUP - 1) / GROUP;
    const size_t hw = (size_t)a->out_h * a->out_w, ps = (size_t)p->mblocks * MR * NB;
    out_runs runs;
    runs.out_h = a->out_h;
    runs.out_w = a->out_w;
    for (int item = lo; item < hi; item++) {
        const int tb = item / groups, g0 = item % groups * GROUP;
        const int g1 = g0 + GROUP < p->out_c ? g0 + GROUP : p->out_c;
        bzn_wino_block_runs(p->tiles_y, p->tiles_x, tb, &runs);
        const float *m = shared_m(j, tb);
        for (int oc = g0; oc < g1; oc++)
            p->out_tiles(m + (size_t)oc * NB, ps, &runs, a->bias ? a->bias[oc] : 0.0f, a->act, a->out + (size_t)oc * hw);
    }
}

/* private V, phase 2: items (block of NB tiles, share of the output channels) */
static void wino_items(void *arg, int lo, int hi, int tid) {
    const wino_job *j = arg;
    const bzn_wino_plan *p = j->p;
    const bzn_conv_args *a = j->a;
    float *t = j->threads_at + (size_t)tid * p->thread_floats;
    float *v = t, *acc = t + p->vlen, *q = acc + ACC_FLOATS;
    out_runs runs;
    runs.out_h = a->out_h;
    runs.out_w = a->out_w;
    int have = -1; /* the block of tiles runs (and, private V, v) describe */
    for (int item = lo; item < hi; item++) {
        const int tb = item / p->msplit, share = item % p->msplit;
        if (have != tb) {
            bzn_wino_block_runs(p->tiles_y, p->tiles_x, tb, &runs);
            for (int c = 0; c < a->in_c; c++)
                transform_block(p, j->shared + (size_t)4 * c * p->xlen, tb, q, v + (size_t)c * NB, (size_t)a->in_c * NB);
            have = tb;
        }
        block_gemm(p, a, v, share, &runs, acc);
    }
}

/* Private V (many blocks): the strips first (all threads, by channel), then each thread
 * transforms its blocks' input itself, where it stays in cache for the GEMMs. Shared V (few
 * blocks, shared out by output channels): every block's V first (all threads, by channel),
 * so that no block's input is transformed twice. */
void bzn_wino_conv(bzn_pool *pool, const bzn_wino_plan *p, const bzn_conv_args *a, void *scratch) {
    wino_job j = {p, a, scratch, (float *)scratch + p->shared_floats};
    if (p->shared_v) {
        bzn_pool_run_chunks(pool, a->in_c, 1, shared_v_items, &j);
        bzn_pool_run_chunks(pool, BZN_WINO_POS, 1, shared_m_items, &j);
        bzn_pool_run_chunks(pool, p->tblocks * ((p->out_c + GROUP - 1) / GROUP), 1, shared_out_items, &j);
        return;
    }
    bzn_pool_run_chunks(pool, a->in_c, 1, strip_items, &j);
    bzn_pool_run_chunks(pool, p->tblocks * p->msplit, p->msplit, wino_items, &j); /* whole blocks: V once each */
}
