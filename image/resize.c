/*
 * resize.c - bilinear resize that gives the same pixels as PIL's
 * Image.resize(size, Image.BILINEAR) (Pillow's 8-bit "resample" code path).
 *
 * The network was trained on frames resized by PIL, so the engine has to resize the
 * same way, down to the rounding. PIL's algorithm:
 *
 *  - It is separable: first every row is resized horizontally into a temporary image,
 *    then every column of that is resized vertically. A pass is skipped when its
 *    dimension does not change (then the pixels are copied exactly).
 *  - Output sample i covers the input interval centred on center = (i + 0.5) * scale,
 *    scale = in_size / out_size. Its value is a weighted average of the input samples
 *    near the centre, weighted by the triangle ("tent") filter 1 - |d|.
 *  - When shrinking (scale > 1) the triangle is stretched by the scale, so it averages
 *    over all the input pixels that fall into the output pixel (antialiasing). When
 *    enlarging, it is the classic two-tap linear interpolation.
 *  - The weights of each output sample are normalised to sum to 1 in double precision,
 *    then turned into 22-bit fixed point integers (PRECISION_BITS = 32 - 8 - 2: 8 bits
 *    for the pixel value, 2 spare bits). Sums are rounded by adding one half before the
 *    shift, and clipped to 0..255. The intermediate image is 8-bit too (clipped), which
 *    is why a float implementation differs from PIL by a grey level here and there.
 *
 * Channels are resized independently (no alpha premultiplication; PIL does premultiply
 * for "RGBA" and "LA" images, so compare 2- and 4-channel results with PIL's "RGBa"/"La").
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blazeneo.h"
#include "error.h"
#include "resize.h"

#define PRECISION_BITS (32 - 8 - 2)
#define HALF (1 << (PRECISION_BITS - 1))

void bzn_resize_plan_free(bzn_resize_axis *p) {
    free(p->first);
    free(p->count);
    free(p->weight);
    free(p->wide3);
    memset(p, 0, sizeof *p);
}

/* The triangle filter of PIL's BILINEAR: support 1. */
static double triangle(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Weights for resizing in_size samples to out_size samples. The arithmetic follows PIL
 * step by step (same operations in the same order), since the fixed-point rounding of the
 * weights decides the last bit of the output. Returns 0, or -1 when out of memory. */
int bzn_resize_plan(int in_size, int out_size, bzn_resize_axis *p) {
    memset(p, 0, sizeof *p);
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale; /* stretch the filter when shrinking */
    double support = 1.0 * filterscale;             /* triangle support is 1 */
    double inv_filterscale = 1.0 / filterscale;
    double ceil_support = ceil(support);
    if (ceil_support > (INT_MAX - 1) / 2) return -1; /* absurd shrink factor */
    int ksize = (int)ceil_support * 2 + 1;           /* most taps any output can have */

    if ((size_t)out_size > SIZE_MAX / sizeof(int32_t) / (size_t)ksize) return -1;
    p->ksize = ksize;
    p->first = malloc((size_t)out_size * sizeof *p->first);
    p->count = malloc((size_t)out_size * sizeof *p->count);
    p->weight = calloc((size_t)out_size * (size_t)ksize, sizeof *p->weight);
    double *w = malloc((size_t)ksize * sizeof *w);
    if (!p->first || !p->count || !p->weight || !w) {
        free(w);
        bzn_resize_plan_free(p);
        return -1;
    }

    for (int i = 0; i < out_size; i++) {
        double center = (i + 0.5) * scale;
        /* input samples whose centres lie within the support, rounded like PIL */
        int lo = (int)(center - support + 0.5);
        int hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in_size) hi = in_size;
        int n = hi - lo;

        double sum = 0.0;
        for (int t = 0; t < n; t++) {
            /* distance from the output centre to the centre of input sample lo + t,
             * in filter units */
            w[t] = triangle(((double)(t + lo) - center + 0.5) * inv_filterscale);
            sum += w[t];
        }
        int32_t *k = p->weight + (size_t)i * (size_t)ksize;
        for (int t = 0; t < n; t++) {
            double v = sum != 0.0 ? w[t] / sum : w[t];
            /* to fixed point, rounding half away from zero (weights are never negative) */
            k[t] = (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        p->first[i] = lo;
        p->count[i] = n;
    }
    free(w);
    return 0;
}

/* Back from fixed point: drop the fraction (the HALF added up front rounds) and clip. */
static inline uint8_t clip8(int32_t acc) {
    int32_t v = acc >> PRECISION_BITS; /* acc is never negative: weights are >= 0 */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Horizontal pass, one row: dw pixels of C channels (a compile-time constant in the calls
 * below, so the channel loops unroll). */
static inline void resize_row(const uint8_t *in, const bzn_resize_axis *px, uint8_t *out, int dw, const int C) {
    for (int x = 0; x < dw; x++) {
        const int32_t *k = px->weight + (size_t)x * (size_t)px->ksize;
        const uint8_t *p = in + (size_t)px->first[x] * (size_t)C;
        int32_t acc[4] = {HALF, HALF, HALF, HALF};
        for (int t = 0; t < px->count[x]; t++, p += C)
            for (int c = 0; c < C; c++) acc[c] += (int32_t)p[c] * k[t];
        for (int c = 0; c < C; c++) out[(size_t)x * (size_t)C + (size_t)c] = clip8(acc[c]);
    }
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BZN_X86 1
#endif

/* The horizontal pass of 3-channel rows with AVX2, exactly the loop above: an output's taps
 * are at most 10 consecutive pixels, 32 bytes from its first (lane j: channel j % 3 of tap
 * j / 3), multiplied by each channel's weights laid out on those lanes (zero on the other
 * channels' and past its taps). The weights (22 bits) are split into halves of 11 bits so that
 * vpmaddwd multiplies 16-bit lanes; each pair of lanes holds at most one nonzero product and
 * every sum stays below 2^31, so the integers are PIL's. Measured on an Intel Xeon (one
 * thread, 1280x995 -> 352x995): 2.4 ms with the plain loop. */
enum { WIDE3_LANES = 32 };
static int wide3_fits(const bzn_resize_axis *p) { return 3 * p->ksize <= WIDE3_LANES - 2; }

/* AVX2 there, and not turned off by BZN_ISA=scalar (as for the CPU backend's kernels) */
static int wide3_runs(void) {
#ifdef BZN_X86
    const char *isa = getenv("BZN_ISA");
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && !(isa && !strcmp(isa, "scalar"));
#else
    return 0;
#endif
}

/* the lanes of output x: [x][channel][low, high][32] */
static int make_wide3(bzn_resize_axis *p, int out_size) {
    p->wide3 = calloc((size_t)out_size * 3 * 2 * WIDE3_LANES, sizeof *p->wide3);
    if (!p->wide3) return -1;
    for (int x = 0; x < out_size; x++)
        for (int t = 0; t < p->count[x]; t++) {
            const int32_t w = p->weight[(size_t)x * p->ksize + t];
            for (int c = 0; c < 3; c++) {
                int16_t *l = p->wide3 + ((size_t)x * 3 + c) * 2 * WIDE3_LANES;
                l[3 * t + c] = (int16_t)(w & 2047);
                l[WIDE3_LANES + 3 * t + c] = (int16_t)(w >> 11);
            }
        }
    return 0;
}

#ifdef BZN_X86
__attribute__((target("avx2"))) static int32_t wide3_sum(__m256i b0, __m256i b1, const int16_t *l) {
    const __m256i lo = _mm256_add_epi32(_mm256_madd_epi16(b0, _mm256_loadu_si256((const __m256i *)l)),
                                        _mm256_madd_epi16(b1, _mm256_loadu_si256((const __m256i *)(l + 16))));
    const __m256i hi = _mm256_add_epi32(_mm256_madd_epi16(b0, _mm256_loadu_si256((const __m256i *)(l + 32))),
                                        _mm256_madd_epi16(b1, _mm256_loadu_si256((const __m256i *)(l + 48))));
    const __m256i s = _mm256_add_epi32(_mm256_slli_epi32(hi, 11), lo);
    __m128i v = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4e));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xb1));
    return _mm_cvtsi128_si32(v);
}

/* outputs [0, dw) of a row of `in_bytes` bytes; those whose 32 bytes would run past the row
 * take the plain loop */
__attribute__((target("avx2"))) static void resize_row3_avx2(const uint8_t *in, size_t in_bytes,
                                                             const bzn_resize_axis *px, uint8_t *out, int dw) {
    for (int x = 0; x < dw; x++) {
        const size_t off = (size_t)px->first[x] * 3;
        uint8_t *o = out + (size_t)x * 3;
        if (off + WIDE3_LANES > in_bytes) {
            const int32_t *k = px->weight + (size_t)x * (size_t)px->ksize;
            int32_t acc[3] = {HALF, HALF, HALF};
            for (int t = 0; t < px->count[x]; t++)
                for (int c = 0; c < 3; c++) acc[c] += (int32_t)in[off + 3 * (size_t)t + c] * k[t];
            for (int c = 0; c < 3; c++) o[c] = clip8(acc[c]);
            continue;
        }
        const __m256i b0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(in + off)));
        const __m256i b1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(in + off + 16)));
        const int16_t *l = px->wide3 + (size_t)x * 3 * 2 * WIDE3_LANES;
        for (int c = 0; c < 3; c++) o[c] = clip8(HALF + wide3_sum(b0, b1, l + c * 2 * WIDE3_LANES));
    }
}
#endif

/* One pass over rows, split into as many parts as there are threads. */
typedef struct {
    const uint8_t *src;
    size_t sstride;
    int channels, y0, rows, parts;
    const bzn_resize_axis *plan;
    uint8_t *dst;
    int dw;
    size_t row_bytes; /* the vertical pass: bytes of a row; the horizontal: of an input row */
} pass;

/* Horizontal pass: rows [y0, y0 + rows) of src into rows 0.. of dst (dw pixels each). */
static void rows_part(void *arg, int part) {
    const pass *p = arg;
    int lo, hi;
    bzn_split(p->rows, p->parts, part, &lo, &hi);
    for (int y = lo; y < hi; y++) {
        const uint8_t *in = p->src + (size_t)(p->y0 + y) * p->sstride;
        uint8_t *out = p->dst + (size_t)y * (size_t)p->dw * (size_t)p->channels;
#ifdef BZN_X86
        if (p->plan->wide3) {
            resize_row3_avx2(in, p->row_bytes, p->plan, out, p->dw);
            continue;
        }
#endif
        switch (p->channels) {
        case 1: resize_row(in, p->plan, out, p->dw, 1); break;
        case 3: resize_row(in, p->plan, out, p->dw, 3); break;
        default: resize_row(in, p->plan, out, p->dw, p->channels); break;
        }
    }
}

static void resize_rows(const uint8_t *src, int sstride, int sw, int channels, int y0, int rows,
                        const bzn_resize_axis *px, uint8_t *dst, int dw, const bzn_parallel *par) {
    const int parts = par ? par->threads : 1;
    pass p = {src, (size_t)sstride, channels, y0, rows, parts > 0 ? parts : 1, px, dst, dw, (size_t)sw * channels};
    bzn_parallel_for(par, p.parts, rows_part, &p);
}

/* Vertical pass: each output row is a weighted sum of a few input rows, byte by byte along
 * the rows, tap by tap into a row of int32 sums (the loop over the row vectorises; over the
 * taps inside it, it did not: 0.84 ms for 1280x995 -> 352x352 on one core of an Intel Xeon). */
enum { COLUMN_SPAN = 1024 }; /* bytes of a row summed at a time (the sums stay in L1) */
__attribute__((target_clones("avx2", "default"))) static void columns_part(void *arg, int part) {
    const pass *p = arg;
    const bzn_resize_axis *py = p->plan;
    int lo, hi;
    bzn_split(p->rows, p->parts, part, &lo, &hi);
    int32_t acc[COLUMN_SPAN];
    for (int y = lo; y < hi; y++) {
        const int32_t *k = py->weight + (size_t)y * (size_t)py->ksize;
        const uint8_t *in = p->src + (size_t)py->first[y] * p->sstride;
        const int n = py->count[y];
        uint8_t *out = p->dst + (size_t)y * p->row_bytes;
        for (size_t i0 = 0; i0 < p->row_bytes; i0 += COLUMN_SPAN) {
            const size_t len = p->row_bytes - i0 < COLUMN_SPAN ? p->row_bytes - i0 : COLUMN_SPAN;
            for (size_t i = 0; i < len; i++) acc[i] = HALF;
            for (int t = 0; t < n; t++) {
                const uint8_t *r = in + (size_t)t * p->sstride + i0;
                const int32_t w = k[t];
                for (size_t i = 0; i < len; i++) acc[i] += (int32_t)r[i] * w;
            }
            for (size_t i = 0; i < len; i++) out[i0 + i] = clip8(acc[i]);
        }
    }
}

static void resize_columns(const uint8_t *src, size_t sstride, size_t row_bytes, const bzn_resize_axis *py, int dh,
                           uint8_t *dst, const bzn_parallel *par) {
    const int parts = par ? par->threads : 1;
    pass p = {src, sstride, 0, 0, dh, parts > 0 ? parts : 1, py, dst, 0, row_bytes};
    bzn_parallel_for(par, p.parts, columns_part, &p);
}

/* ---- the plans and buffers of one geometry, kept for the next frame of the same size ---- */

struct bzn_resizer {
    int sw, sh, channels, dw, dh; /* the geometry the plans were made for (0: none yet) */
    bzn_resize_axis px, py;             /* py.first is relative to row y0 when there is a tmp image */
    int y0, y1;                   /* the input rows the vertical pass reads */
    uint8_t *tmp;                 /* horizontally resized rows [y0, y1) */
};

static void resizer_clear(bzn_resizer *r) {
    bzn_resize_plan_free(&r->px);
    bzn_resize_plan_free(&r->py);
    free(r->tmp);
    memset(r, 0, sizeof *r);
}

void bzn_resizer_free(bzn_resizer *r) {
    if (!r) return;
    resizer_clear(r);
    free(r);
}

/* (Re)build the plans and buffers for a geometry; nothing happens when it is the same. */
static int resizer_prepare(bzn_resizer *r, int sw, int sh, int channels, int dw, int dh) {
    if (r->sw == sw && r->sh == sh && r->channels == channels && r->dw == dw && r->dh == dh) return 0;
    resizer_clear(r);
    const int need_h = dw != sw, need_v = dh != sh;
    const size_t row_bytes = (size_t)dw * (size_t)channels;
    if ((need_h && bzn_resize_plan(sw, dw, &r->px) != 0) || (need_v && bzn_resize_plan(sh, dh, &r->py) != 0)) goto oom;
    if (need_h && channels == 3 && wide3_fits(&r->px) && wide3_runs() && make_wide3(&r->px, dw) != 0) goto oom;
    if (need_v) {
        /* the vertical pass reads rows [y0, y1) of its input: only those need the
           horizontal pass (all of them in practice, but it is cheap to be exact) */
        r->y0 = r->py.first[0];
        r->y1 = r->py.first[dh - 1] + r->py.count[dh - 1];
        if (need_h) {
            if (!(r->tmp = malloc((size_t)(r->y1 - r->y0) * row_bytes))) goto oom;
            for (int y = 0; y < dh; y++) r->py.first[y] -= r->y0; /* rows of tmp start at y0 */
        }
    }
    r->sw = sw;
    r->sh = sh;
    r->channels = channels;
    r->dw = dw;
    r->dh = dh;
    return 0;
oom:
    resizer_clear(r);
    return -1;
}

bzn_status bzn_resizer_run(bzn_resizer *r, const uint8_t *src, int sw, int sh, int sstride, int channels,
                           uint8_t *dst, int dw, int dh, const bzn_parallel *par, bzn_error *err) {
    if (!src || !dst)
        return bzn_fail(err, BZN_ERR_ARG, "resize: %s image is NULL", src ? "destination" : "source");
    if (channels < 1 || channels > 4)
        return bzn_fail(err, BZN_ERR_ARG, "resize: %d channels (expected 1 to 4)", channels);
    if (sw <= 0 || sh <= 0 || dw <= 0 || dh <= 0)
        return bzn_fail(err, BZN_ERR_ARG, "resize: invalid size %dx%d -> %dx%d", sw, sh, dw, dh);
    if ((int64_t)sstride < (int64_t)sw * channels)
        return bzn_fail(err, BZN_ERR_ARG, "resize: stride %d is less than %d pixels x %d channels",
                        sstride, sw, channels);
    if ((uint64_t)dw * (uint64_t)channels > SIZE_MAX / sizeof(int32_t) / (uint64_t)dh)
        return bzn_fail(err, BZN_ERR_NOMEM, "resize: output %dx%d is too large", dw, dh);

    const size_t row_bytes = (size_t)dw * (size_t)channels; /* one output row */
    const int need_h = dw != sw, need_v = dh != sh;
    if (!need_h && !need_v) { /* same size: PIL returns a copy */
        for (int y = 0; y < sh; y++)
            memcpy(dst + (size_t)y * row_bytes, src + (size_t)y * (size_t)sstride, row_bytes);
        return BZN_OK;
    }
    if (resizer_prepare(r, sw, sh, channels, dw, dh) != 0)
        return bzn_fail(err, BZN_ERR_NOMEM, "resize %dx%d -> %dx%d: out of memory", sw, sh, dw, dh);
    if (!need_v) { /* horizontal pass only, straight into dst */
        resize_rows(src, sstride, sw, channels, 0, sh, &r->px, dst, dw, par);
        return BZN_OK;
    }
    const uint8_t *vin = src;
    size_t vstride = (size_t)sstride;
    if (need_h) {
        resize_rows(src, sstride, sw, channels, r->y0, r->y1 - r->y0, &r->px, r->tmp, dw, par);
        vin = r->tmp;
        vstride = row_bytes;
    }
    resize_columns(vin, vstride, row_bytes, &r->py, dh, dst, par);
    return BZN_OK;
}

bzn_resizer *bzn_resizer_new(void) { return calloc(1, sizeof(bzn_resizer)); }

bzn_status bzn_resize_bilinear(const uint8_t *src, int sw, int sh, int sstride, int channels,
                               uint8_t *dst, int dw, int dh, bzn_error *err) {
    bzn_resizer r;
    memset(&r, 0, sizeof r);
    bzn_status s = bzn_resizer_run(&r, src, sw, sh, sstride, channels, dst, dw, dh, NULL, err);
    resizer_clear(&r);
    return s;
}
