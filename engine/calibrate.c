/*
 * calibrate.c - INT8 post-training calibration, as TensorRT 7.1 does it (the paper's setting):
 * histograms and thresholds. The spec: ../shared/spec/int8-calibration.md.
 *
 * Why calibrate. INT8 stores a tensor x as q = clamp(round(x / scale), -127, 127) with one
 * scale per tensor, scale = amax / 127: everything in [-amax, amax] gets one of 255 levels and
 * everything beyond is clipped to +-amax. The choice of amax is a trade. amax = max|x|
 * (MinMax) never clips, but one rare outlier stretches the grid so much that the bulk of the
 * values, close to 0, share a handful of levels. A smaller amax resolves the bulk finely and
 * clips the few values above it. Calibration picks amax per tensor from the values the FP32
 * network actually produces on representative frames.
 *
 * What is recorded. For each tensor: the largest |x| and a histogram of |x| (2048 bins over
 * [0, max|x| of the first frame]; a later frame with a larger max adds bins of the same width,
 * the pytorch-quantization rule). Memory is bounded: at most BZN_CALIB_MAX_BINS bins per tensor;
 * beyond that neighbouring bins are merged in pairs, doubling the width (an addition of this
 * engine: the reference grows without bound, which only matters when a later frame's max is
 * more than 16x the first frame's).
 *
 * Entropy calibration (IInt8EntropyCalibrator2; NVIDIA's public reference is
 * pytorch-quantization's _compute_amax_entropy, reproduced here step by step). Think of the
 * histogram as a probability distribution of |x|. Clipping at amax = i bins and quantizing to
 * 128 magnitudes turns it into another distribution; the best amax is the one whose quantized
 * distribution loses the least information about the original, measured by the
 * Kullback-Leibler divergence KL(P || Q) = sum_j p_j log(p_j / q_j) (0 when Q = P, larger the
 * more Q misrepresents P). For every candidate i from 128 to the number of bins:
 *   - P, the reference: bins[0..i-1], with all the mass beyond (the values that would be
 *     clipped) added to the last kept bin, because clipping moves them there;
 *   - Q, the quantized view: bins[0..i-1] merged into 128 groups (bin j goes to group
 *     j*128/i, so each group is one int8 level), each group's mass spread evenly over the
 *     group's non-empty bins (empty bins stay 0: quantization does not create values where
 *     there were none). Q does not get the clipped mass: that is exactly what clipping loses;
 *   - KL(P || Q), both normalised to sum 1.
 * The answer is the last i with the smallest KL, amax = i * bin width. Before all that,
 * bins[0] (exact zeros: after a ReLU, often most of the tensor) is set to bins[1], so that
 * the spike at 0 does not dominate the divergence.
 *
 * Two details follow scipy.stats.entropy and numpy.argmin, which the reference uses:
 *   - a bin with p > 0 and q = 0 makes KL = +inf; a Q that is all zeros (every bin below i
 *     empty) makes KL NaN, and argmin takes a NaN as the minimum - so when bins 0..127 are
 *     all empty, the reference (and this code) answers with the first non-empty bin's lower
 *     edge. Surprising, but it is what TensorRT's published reference does;
 *   - ties: "the last i of the minimum" is taken within 1e-12 (absolute), so that rounding
 *     noise between two mathematically equal divergences cannot decide the answer.
 * tests/ref/entropy_ref.py is an independent numpy implementation of the same steps; the test
 * compares both on fixed and random histograms.
 *
 * Percentile (TensorRT's legacy calibrator, pytorch-quantization's rule): the first bin j where
 * the cumulative fraction of values reaches p/100, amax = j * width - that bin's lower edge.
 * MinMax: amax = max |x|. A tensor that was exactly 0 on every frame has no histogram (no
 * width could be set); all three give amax = 0, scale 0.
 *
 * TensorRT's calibration cache (reading, writing, matching it to a network) is calibcache.c.
 */
#include "calibrate.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "error.h"

#define GROUPS 128    /* int8 magnitudes 0..127: the quantized distribution has 128 levels */
#define START_BIN 128 /* the fewest bins a candidate amax may keep */
#define KL_TIE 1e-12  /* divergences closer than this are equal */

const char *bzn_calib_method_name(bzn_calib_method m) {
    switch (m) {
    case BZN_CALIB_ENTROPY: return "entropy";
    case BZN_CALIB_MINMAX: return "minmax";
    case BZN_CALIB_PERCENTILE: return "percentile";
    }
    return "unknown";
}

const char *bzn_calib_trt_name(bzn_calib_method m) {
    switch (m) {
    case BZN_CALIB_ENTROPY: return "EntropyCalibration2";
    case BZN_CALIB_MINMAX: return "MinMaxCalibration";
    case BZN_CALIB_PERCENTILE: return "LegacyCalibration";
    }
    return NULL;
}

/* ---- the histogram of |x| ---------------------------------------------------------------- */

void bzn_calib_hist_init(bzn_calib_hist *h, size_t max_bins) {
    memset(h, 0, sizeof *h);
    h->max_bins = max_bins < BZN_CALIB_BINS ? BZN_CALIB_BINS : max_bins;
}

void bzn_calib_hist_free(bzn_calib_hist *h) {
    free(h->counts);
    h->counts = NULL;
    h->n = h->cap = 0;
}

int bzn_calib_absmax(const float *x, size_t n, float *out) {
    float m = 0.0f;
    int finite = 1;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        finite &= isfinite(a) != 0;
        m = a > m ? a : m;
    }
    if (!finite) return -1;
    *out = m;
    return 0;
}

/* What an observation with max |x| = m does to the shape of h: the bin count and width after
 * it, and how many pair merges get there. The histogram itself is not touched. */
typedef struct {
    size_t n;
    double width;
    int merges;
} hist_plan;

static hist_plan plan_for(const bzn_calib_hist *h, float m) {
    hist_plan p = {h->n, h->width, 0};
    if (m == 0.0f) return p;          /* nothing but zeros: no new range */
    if (p.width == 0.0) {             /* the first non-zero observation fixes the width */
        p.width = (double)m / BZN_CALIB_BINS;
        p.n = BZN_CALIB_BINS;
        return p;
    }
    double need = ceil((double)m / p.width);
    while (need > (double)h->max_bins) { /* too many bins: merge pairs, doubling the width */
        p.width *= 2.0;
        p.n = (p.n + 1) / 2;
        p.merges++;
        need = ceil((double)m / p.width);
    }
    if (need > (double)p.n) p.n = (size_t)need;
    return p;
}

bzn_status bzn_calib_hist_reserve(bzn_calib_hist *h, float batch_max, bzn_error *err) {
    hist_plan p = plan_for(h, batch_max);
    size_t need = p.n > h->n ? p.n : h->n; /* merging happens in place, growing needs room */
    if (need <= h->cap) return BZN_OK;
    uint64_t *c = realloc(h->counts, need * sizeof *c);
    if (!c) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory for a %zu-bin histogram", need);
    h->counts = c;
    h->cap = need;
    return BZN_OK;
}

void bzn_calib_hist_add(bzn_calib_hist *h, const float *x, size_t n, float batch_max) {
    if (n == 0) return;
    hist_plan p = plan_for(h, batch_max);
    if (h->width == 0.0 && p.width > 0.0) { /* the histogram starts: held zeros go to bin 0 */
        memset(h->counts, 0, p.n * sizeof *h->counts);
        h->counts[0] = h->zeros;
        h->zeros = 0;
    } else if (h->width > 0.0) {
        for (int k = 0; k < p.merges; k++) { /* bins 2j and 2j+1 become bin j */
            size_t half = (h->n + 1) / 2;
            for (size_t j = 0; j < half; j++)
                h->counts[j] = h->counts[2 * j] + (2 * j + 1 < h->n ? h->counts[2 * j + 1] : 0);
            h->n = half;
        }
        if (p.n > h->n) memset(h->counts + h->n, 0, (p.n - h->n) * sizeof *h->counts);
    }
    h->n = p.n;
    h->width = p.width;
    h->merges += p.merges;
    if (batch_max > h->max_abs) h->max_abs = batch_max;
    h->values += n;
    if (h->width == 0.0) { /* still nothing but zeros */
        h->zeros += n;
        return;
    }
    const double w = h->width;
    const size_t last = h->n - 1;
    uint64_t *counts = h->counts;
    for (size_t i = 0; i < n; i++) {
        /* division, not multiplication by 1/w: floor(|x| / w) exactly as the reference */
        double q = (double)fabsf(x[i]) / w;
        size_t j = q >= (double)last ? last : (size_t)q;
        counts[j]++;
    }
}

bzn_status bzn_calib_hist_observe(bzn_calib_hist *h, const float *x, size_t n, bzn_error *err) {
    float m;
    if (bzn_calib_absmax(x, n, &m) != 0) return bzn_fail(err, BZN_ERR_FORMAT, "NaN or infinite value");
    bzn_status s = bzn_calib_hist_reserve(h, m, err);
    if (s == BZN_OK) bzn_calib_hist_add(h, x, n, m);
    return s;
}

/* ---- amax from a histogram ---------------------------------------------------------------- */

/* KL(P || Q) for a candidate of i bins (see the top of the file). b(j) is the histogram with
 * bins[0] replaced by bins[1]; `tail` is the mass of bins i.. that P folds into its last bin;
 * `total` the mass of all bins (the sum of P). scipy.stats.entropy's rules: NaN when Q sums to
 * 0, +inf when some p > 0 meets q = 0.
 * Bin j belongs to group floor(j * 128 / i), so group g is the run of bins from
 * ceil(g * i / 128) up to ceil((g + 1) * i / 128): walking the groups visits the bins in order,
 * and every sum below adds the same numbers in the same order as a walk over the bins would. */
static double kl_divergence(const uint64_t *hist, size_t i, uint64_t tail, uint64_t total) {
#define B(j) ((j) == 0 ? hist[1] : hist[j])
    size_t edge[GROUPS + 1];   /* group g = bins edge[g] .. edge[g+1]-1 */
    double mean[GROUPS];       /* Q on the group's non-empty bins: its mass / their number */
    uint32_t nonempty[GROUPS];
    for (size_t g = 0; g <= GROUPS; g++) edge[g] = (g * i + GROUPS - 1) / GROUPS;
    double qsum = 0.0; /* the sum of Q, bin by bin */
    for (size_t g = 0; g < GROUPS; g++) {
        double mass = 0.0;
        uint32_t k = 0;
        for (size_t j = edge[g]; j < edge[g + 1]; j++) {
            uint64_t c = B(j);
            if (c) {
                mass += (double)c;
                k++;
            }
        }
        nonempty[g] = k;
        mean[g] = k ? mass / k : 0.0;
        for (uint32_t r = 0; r < k; r++) qsum += mean[g];
    }
    if (qsum == 0.0) return NAN;
    const double psum = (double)total;
    double kl = 0.0;
    for (size_t g = 0; g < GROUPS; g++) {
        if (!nonempty[g] && edge[g + 1] != i) continue; /* all empty, and P's last bin is elsewhere */
        const double q = mean[g] / qsum;
        for (size_t j = edge[g]; j < edge[g + 1]; j++) {
            uint64_t c = B(j);
            double pj = (double)c + (j == i - 1 ? (double)tail : 0.0);
            if (pj == 0.0) continue;     /* p = 0 contributes nothing */
            if (c == 0) return INFINITY; /* p > 0 where Q is empty */
            double p = pj / psum;
            kl += p * log(p / q);
        }
    }
    return kl;
#undef B
}

size_t bzn_calib_entropy_bin(const uint64_t *hist, size_t n) {
    if (n < START_BIN) return n;
    uint64_t total = hist[1];                      /* bins[0] = bins[1] */
    for (size_t j = 1; j < n; j++) total += hist[j];
    uint64_t head = hist[1];                       /* mass of bins 0 .. i-1 */
    for (size_t j = 1; j < START_BIN; j++) head += hist[j];
    double best = INFINITY;
    size_t best_i = n, last_nan = 0;
    for (size_t i = START_BIN; i <= n; i++) {
        if (i > START_BIN) head += hist[i - 1];
        double kl = kl_divergence(hist, i, total - head, total);
        if (isnan(kl)) {
            last_nan = i;
        } else if (kl < best) { /* a new minimum (later candidates that tie it win, below) */
            best = kl;
            best_i = i;
        } else if (kl <= best + KL_TIE) {
            best_i = i;
        }
    }
    /* numpy.argmin sees a NaN as the minimum; the reference scans the divergences reversed */
    return last_nan ? last_nan : best_i;
}

size_t bzn_calib_percentile_bin(const uint64_t *hist, size_t n, double percentile) {
    uint64_t total = 0;
    for (size_t j = 0; j < n; j++) total += hist[j];
    if (total == 0) return 0;
    /* cumsum(hist / total) accumulated in the reference's order, then searchsorted (left) */
    const double target = percentile / 100.0, t = (double)total;
    double cdf = 0.0;
    for (size_t j = 0; j < n; j++) {
        cdf += (double)hist[j] / t;
        if (cdf >= target) return j;
    }
    return n;
}

float bzn_calib_hist_amax(const bzn_calib_hist *h, bzn_calib_method method, double percentile) {
    if (h->width == 0.0) return 0.0f; /* exactly 0 everywhere: nothing to represent */
    switch (method) {
    case BZN_CALIB_ENTROPY: return (float)((double)bzn_calib_entropy_bin(h->counts, h->n) * h->width);
    case BZN_CALIB_PERCENTILE:
        return (float)((double)bzn_calib_percentile_bin(h->counts, h->n, percentile) * h->width);
    case BZN_CALIB_MINMAX: return h->max_abs;
    }
    return 0.0f;
}

/* ---- which tensors: "input" and every layer's primary name --------------------------------- */

int bzn_calib_list_tensors(const bzn_ctx *c, bzn_calib_tensor_ref **out) {
    const int nl = bzn_ctx_num_layers(c);
    bzn_calib_tensor_ref *t = malloc((size_t)(nl + 1) * sizeof *t);
    if (!t) return -1;
    bzn_layer_info li;
    int n = 0;
    if (nl > 0 && bzn_ctx_layer(c, 0, &li) == BZN_OK) /* the first layer reads the input */
        t[n++] = (bzn_calib_tensor_ref){"input", -1, li.in_channels, li.in_height, li.in_width};
    for (int i = 0; i < nl; i++) {
        if (bzn_ctx_layer(c, i, &li) != BZN_OK) continue;
        int dup = 0;
        for (int k = 0; k < n && !dup; k++) dup = strcmp(t[k].name, li.name) == 0;
        if (!dup) t[n++] = (bzn_calib_tensor_ref){li.name, i, li.channels, li.height, li.width};
    }
    *out = t;
    return n;
}

/* ---- the calibrator ------------------------------------------------------------------------ */

typedef struct {
    char *name;
    int layer, c, h, w;
    bzn_calib_hist hist;
} calib_tensor;

struct bzn_calibrator {
    calib_tensor *t;
    int n;
    int n_layers;       /* of the contexts it accepts */
    int observations;
    float *scratch;     /* one layer's output */
    size_t scratch_n;
    float *batch_max;   /* per tensor, during observe */
    bzn_backend *host;  /* an instance of the context's backend, for its threads (NULL: one) */
};

bzn_status bzn_calibrator_create(const bzn_ctx *c, bzn_calibrator **out, bzn_error *err) {
    if (!out) return bzn_fail(err, BZN_ERR_ARG, "NULL output pointer");
    *out = NULL;
    if (!c) return bzn_fail(err, BZN_ERR_ARG, "NULL context");
    bzn_calib_tensor_ref *refs;
    int n = bzn_calib_list_tensors(c, &refs);
    if (n < 0) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    bzn_calibrator *cal = calloc(1, sizeof *cal);
    if (cal) cal->t = calloc((size_t)(n ? n : 1), sizeof *cal->t);
    if (cal) cal->batch_max = calloc((size_t)(n ? n : 1), sizeof *cal->batch_max);
    int ok = cal && cal->t && cal->batch_max;
    for (int i = 0; ok && i < n; i++) {
        calib_tensor *ct = &cal->t[i];
        ct->name = strdup(refs[i].name);
        ok = ct->name != NULL;
        ct->layer = refs[i].layer;
        ct->c = refs[i].c;
        ct->h = refs[i].h;
        ct->w = refs[i].w;
        bzn_calib_hist_init(&ct->hist, BZN_CALIB_MAX_BINS);
        cal->n = i + 1;
        size_t count = (size_t)ct->c * ct->h * ct->w;
        if (ct->layer >= 0 && count > cal->scratch_n) cal->scratch_n = count;
    }
    if (ok && cal->scratch_n) ok = (cal->scratch = malloc(cal->scratch_n * sizeof *cal->scratch)) != NULL;
    free(refs);
    if (!ok) {
        bzn_calibrator_free(cal);
        return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    }
    cal->n_layers = bzn_ctx_num_layers(c);
    const bzn_backend_options bo = {bzn_ctx_threads(c), 0};
    if (bzn_backend_create(bzn_ctx_backend(c), &bo, &cal->host, NULL) != BZN_OK) cal->host = NULL;
    *out = cal;
    return BZN_OK;
}

void bzn_calibrator_free(bzn_calibrator *cal) {
    if (!cal) return;
    if (cal->host) cal->host->destroy(cal->host);
    for (int i = 0; i < cal->n; i++) {
        free(cal->t[i].name);
        bzn_calib_hist_free(&cal->t[i].hist);
    }
    free(cal->t);
    free(cal->scratch);
    free(cal->batch_max);
    free(cal);
}

int bzn_calibrator_num_tensors(const bzn_calibrator *cal) { return cal ? cal->n : 0; }
int bzn_calibrator_num_observations(const bzn_calibrator *cal) { return cal ? cal->observations : 0; }

bzn_status bzn_calibrator_tensor(const bzn_calibrator *cal, int i, bzn_calib_tensor_info *info) {
    if (!cal || !info || i < 0 || i >= cal->n) return BZN_ERR_ARG;
    const calib_tensor *t = &cal->t[i];
    info->name = t->name;
    info->layer = t->layer;
    info->channels = t->c;
    info->height = t->h;
    info->width = t->w;
    info->max_abs = t->hist.max_abs;
    info->bins = (int)t->hist.n;
    info->bin_width = t->hist.width;
    info->merges = t->hist.merges;
    info->values = t->hist.values;
    return BZN_OK;
}

/* The data of tensor t in the last run of c: the input in place, a layer copied to scratch. */
static bzn_status tensor_data(bzn_calibrator *cal, const bzn_ctx *c, const calib_tensor *t, const float **data,
                              bzn_error *err) {
    if (t->layer < 0) {
        *data = bzn_ctx_input(c);
        return *data ? BZN_OK : bzn_fail(err, BZN_ERR_ARG, "no frame has been run on this context yet");
    }
    *data = cal->scratch;
    return bzn_ctx_layer_output(c, t->layer, cal->scratch, cal->scratch_n, err);
}

bzn_status bzn_calibrator_observe(bzn_calibrator *cal, const bzn_ctx *c, bzn_error *err) {
    if (!cal || !c) return bzn_fail(err, BZN_ERR_ARG, "NULL calibrator or context");
    if (!bzn_ctx_input(c)) return bzn_fail(err, BZN_ERR_ARG, "no frame has been run on this context yet");
    /* the same network at the same size: same layers, names and shapes */
    if (bzn_ctx_num_layers(c) != cal->n_layers)
        return bzn_fail(err, BZN_ERR_ARG, "calibrator made for a network of %d layers, this context has %d",
                        cal->n_layers, bzn_ctx_num_layers(c));
    for (int i = 0; i < cal->n; i++) {
        const calib_tensor *t = &cal->t[i];
        bzn_layer_info li;
        bzn_ctx_layer(c, t->layer < 0 ? 0 : t->layer, &li);
        int ch = t->layer < 0 ? li.in_channels : li.channels, h = t->layer < 0 ? li.in_height : li.height,
            w = t->layer < 0 ? li.in_width : li.width;
        if ((t->layer >= 0 && strcmp(li.name, t->name) != 0) || ch != t->c || h != t->h || w != t->w)
            return bzn_fail(err, BZN_ERR_ARG,
                            "calibrator made for another network or size: '%s' is %dx%dx%d here, was %dx%dx%d",
                            t->layer < 0 ? "input" : li.name, ch, h, w, t->c, t->h, t->w);
    }
    /* pass 1: every tensor's max |x|, refusing NaN and infinity before anything changes */
    for (int i = 0; i < cal->n; i++) {
        const calib_tensor *t = &cal->t[i];
        const float *x;
        bzn_status s = tensor_data(cal, c, t, &x, err);
        if (s != BZN_OK) return s;
        if (bzn_calib_absmax(x, (size_t)t->c * t->h * t->w, &cal->batch_max[i]) != 0)
            return bzn_fail(err, BZN_ERR_FORMAT, "'%s' holds NaN or infinite values: nothing recorded from this frame",
                            t->name);
    }
    /* pass 2: the memory every histogram will need (only capacity changes) */
    for (int i = 0; i < cal->n; i++) {
        bzn_status s = bzn_calib_hist_reserve(&cal->t[i].hist, cal->batch_max[i], err);
        if (s != BZN_OK) return s;
    }
    /* pass 3: record; nothing can fail any more */
    for (int i = 0; i < cal->n; i++) {
        calib_tensor *t = &cal->t[i];
        const float *x;
        if (tensor_data(cal, c, t, &x, err) != BZN_OK) return BZN_ERR_BACKEND; /* cannot happen: pass 1 read it */
        bzn_calib_hist_add(&t->hist, x, (size_t)t->c * t->h * t->w, cal->batch_max[i]);
    }
    cal->observations++;
    return BZN_OK;
}

/* ---- tables -------------------------------------------------------------------------------- */

bzn_calib_table *bzn_calib_table_new(int count, bzn_calib_method method) {
    bzn_calib_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->method = method;
    t->scales = calloc((size_t)(count ? count : 1), sizeof *t->scales);
    t->amax = calloc((size_t)(count ? count : 1), sizeof *t->amax);
    if (!t->scales || !t->amax) {
        bzn_calib_table_free(t);
        return NULL;
    }
    return t;
}

void bzn_calib_table_free(bzn_calib_table *t) {
    if (!t) return;
    for (int i = 0; i < t->count; i++) free((char *)t->scales[i].name); /* the table owns its names */
    free(t->scales);
    free(t->amax);
    free(t);
}

typedef struct {
    const bzn_calibrator *cal;
    bzn_calib_table *t;
    bzn_calib_method method;
    double percentile;
    int first; /* the group's first tensor */
} amax_job;

static void amax_one(void *arg, int k) {
    const amax_job *j = arg;
    const int i = j->first + k;
    const float a = bzn_calib_hist_amax(&j->cal->t[i].hist, j->method, j->percentile);
    j->t->amax[i] = a;
    j->t->scales[i].scale = a / 127.0f;
}

bzn_status bzn_calibrator_compute(const bzn_calibrator *cal, bzn_calib_method method, double percentile,
                                  bzn_calib_table **out, bzn_error *err) {
    return bzn_calibrator_compute_progress(cal, method, percentile, NULL, NULL, out, err);
}

bzn_status bzn_calibrator_compute_progress(const bzn_calibrator *cal, bzn_calib_method method, double percentile,
                                           bzn_progress_fn progress, void *user, bzn_calib_table **out,
                                           bzn_error *err) {
    if (!out) return bzn_fail(err, BZN_ERR_ARG, "NULL output pointer");
    *out = NULL;
    if (!cal) return bzn_fail(err, BZN_ERR_ARG, "NULL calibrator");
    if (!bzn_calib_trt_name(method)) return bzn_fail(err, BZN_ERR_ARG, "unknown calibration method %d", (int)method);
    if (percentile == 0.0) percentile = BZN_CALIB_DEFAULT_PERCENTILE;
    if (method == BZN_CALIB_PERCENTILE && !(percentile > 0.0 && percentile <= 100.0))
        return bzn_fail(err, BZN_ERR_ARG, "percentile %g is outside (0, 100]", percentile);
    if (cal->observations == 0) return bzn_fail(err, BZN_ERR_ARG, "nothing observed yet: run frames and observe them first");
    bzn_calib_table *t = bzn_calib_table_new(cal->n, method);
    if (!t) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < cal->n; i++) {
        if (!(t->scales[i].name = strdup(cal->t[i].name))) {
            bzn_calib_table_free(t);
            return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
        }
        t->count = i + 1;
    }
    /* entropy costs O(bins^2) per tensor (about 2 M logarithms at 2048 bins): spread the
     * tensors over the backend's threads; with a progress callback, in groups of 4 per thread,
     * telling it after each group from this thread */
    amax_job j = {cal, t, method, percentile, 0};
    const bzn_parallel par = bzn_backend_parallel(cal->host);
    const int group = progress ? 4 * (par.threads > 1 ? par.threads : 1) : cal->n;
    for (j.first = 0; j.first < cal->n; j.first += group) {
        const int n = cal->n - j.first < group ? cal->n - j.first : group;
        bzn_parallel_for(&par, n, amax_one, &j);
        if (progress) progress(user, j.first + n, cal->n, cal->t[j.first + n - 1].name);
    }
    *out = t;
    return BZN_OK;
}
