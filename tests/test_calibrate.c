/*
 * test_calibrate.c - INT8 calibration: the entropy (KL), percentile and minmax amax on fixed
 * histograms and observation sequences against golden values from tests/ref/entropy_ref.py
 * (an independent numpy implementation of the spec), the same on random cases recomputed live
 * when Python with numpy is there, the calibration cache (round trip, malformed files, names
 * against a network) and `blazeneo calibrate` end to end.
 */
#include <check.h>
#include <pthread.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "blazeneo.h"
#include "calibrate.h"
#include "graph.h"
#include "model.h"
#include "network.h"
#include "testutil.h"

static bzn_model *model;
static char *tmp;

static const char *shipped(void) {
    return tu_path(tu_env("BZN_SOURCE_DIR"), "models/blazeneo-dha-neopolyp-small-f16.bzn");
}

/* ---- the cases, built exactly as entropy_ref.py builds them ------------------------------- */

/* entropy_ref.py's Lcg: 64-bit LCG, top 31 bits */
typedef struct {
    uint64_t x;
} lcg;
static uint32_t lcg_next(lcg *g) {
    g->x = g->x * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(g->x >> 33);
}
static float lcg_unit(lcg *g) { return (float)((double)(lcg_next(g) >> 7) / 16777216.0); }

static long lmax(long a, long b) { return a > b ? a : b; }

/* entropy_ref.fixed_hist */
static uint64_t *fixed_hist(const char *kind, size_t *out_n) {
    size_t n = strcmp(kind, "extended") ? 2048 : 5000;
    uint64_t *h = calloc(n, sizeof *h);
    for (size_t j = 0; j < n; j++) {
        long J = (long)j, N = (long)n;
        if (!strcmp(kind, "cauchy")) h[j] = 1000000000ULL * 1024 / (1024 + j * j);
        else if (!strcmp(kind, "cauchy_gaps")) h[j] = (j < 64 || j % 4 == 0) ? 1000000000ULL * 1024 / (1024 + j * j) : 0;
        else if (!strcmp(kind, "relu_spike")) h[j] = j == 0 ? 50000000 : (uint64_t)((N - J) * (N - J) / 64);
        else if (!strcmp(kind, "outliers")) h[j] = (uint64_t)lmax(0, 100000 - 300 * J);
        else if (!strcmp(kind, "zero_gap")) h[j] = j == 0 ? 1000000 : j < 400 ? 0 : 5 + j % 7;
        else if (!strcmp(kind, "uniform")) h[j] = 1000;
        else if (!strcmp(kind, "bimodal")) h[j] = (uint64_t)(lmax(0, 5000 - labs(J - 200) * 40) + lmax(0, 800 - labs(J - 1200) * 4));
        else if (!strcmp(kind, "extended")) h[j] = j < 2048 ? 100000000 / (1 + j) : (j % 97 == 0);
    }
    if (!strcmp(kind, "outliers")) {
        h[1500] = 3;
        h[n - 1] = 1;
    } else if (!strcmp(kind, "one_outlier")) {
        h[0] = 100;
        h[n - 1] = 1;
    } else if (!strcmp(kind, "bimodal")) {
        h[n - 1] += 1;
    } else if (!strcmp(kind, "lcg")) {
        lcg g = {1};
        for (size_t j = 0; j < n; j++) {
            uint64_t c = lcg_next(&g) % 1000;
            h[j] = lcg_next(&g) % 5 == 0 ? 0 : c;
        }
        if (h[n - 1] < 1) h[n - 1] = 1;
    } else if (!strcmp(kind, "extended")) {
        h[n - 1] = 1;
    }
    *out_n = n;
    return h;
}

typedef struct {
    float *v[3];
    size_t n[3];
    int count;
    size_t max_bins;
} obs_seq;

static float *relu(lcg *g, size_t count, float scale, uint32_t zero_every) {
    float *out = malloc(count * sizeof *out);
    for (size_t k = 0; k < count; k++) {
        float u = lcg_unit(g);
        out[k] = lcg_next(g) % zero_every == 0 ? 0.0f : u * scale;
    }
    return out;
}

static void obs_add(obs_seq *s, float *v, size_t n) {
    s->v[s->count] = v;
    s->n[s->count++] = n;
}

/* entropy_ref.observations */
static obs_seq observations(const char *kind) {
    static const struct {
        const char *kind;
        uint64_t seed;
    } seeds[] = {{"relu_growing", 7}, {"outlier_late", 11}, {"all_zero", 13},
                 {"zero_first", 17},  {"capped", 19},       {"signed", 23}};
    lcg g = {0};
    for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++)
        if (!strcmp(kind, seeds[i].kind)) g.x = seeds[i].seed;
    obs_seq s = {{0}, {0}, 0, BZN_CALIB_MAX_BINS};
    if (!strcmp(kind, "relu_growing")) {
        obs_add(&s, relu(&g, 5000, 1.0f, 2), 5000);
        obs_add(&s, relu(&g, 5000, 2.5f, 2), 5000);
        obs_add(&s, relu(&g, 5000, 0.7f, 2), 5000);
    } else if (!strcmp(kind, "outlier_late")) {
        for (int k = 0; k < 3; k++) obs_add(&s, relu(&g, 4000, 1.5f, 3), 4000);
        s.v[2][17] = 4.75f;
    } else if (!strcmp(kind, "all_zero")) {
        obs_add(&s, calloc(1000, sizeof(float)), 1000);
        obs_add(&s, calloc(500, sizeof(float)), 500);
    } else if (!strcmp(kind, "zero_first")) {
        obs_add(&s, calloc(700, sizeof(float)), 700);
        obs_add(&s, relu(&g, 3000, 2.0f, 4), 3000);
        obs_add(&s, relu(&g, 3000, 3.0f, 4), 3000);
    } else if (!strcmp(kind, "capped")) {
        s.max_bins = 4096;
        obs_add(&s, relu(&g, 3000, 1.0f, 2), 3000);
        obs_add(&s, relu(&g, 3000, 5.0f, 2), 3000);
        obs_add(&s, relu(&g, 3000, 9.0f, 2), 3000);
    } else if (!strcmp(kind, "signed")) {
        float *a = relu(&g, 6000, 3.0f, 5);
        for (size_t k = 0; k < 6000; k++)
            if (lcg_next(&g) % 2) a[k] = -a[k];
        obs_add(&s, a, 6000);
    }
    return s;
}

static void obs_free(obs_seq *s) {
    for (int i = 0; i < s->count; i++) free(s->v[i]);
}

/* entropy_ref.checksum: sum of (j + 1) * count[j], mod 2^64 */
static uint64_t checksum(const bzn_calib_hist *h) {
    uint64_t s = 0;
    for (size_t j = 0; j < h->n; j++) s += (uint64_t)(j + 1) * h->counts[j];
    return s;
}

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- golden values: `$BZN_PYTHON tests/ref/entropy_ref.py golden` ------------------------- */

/* generated by tests/ref/entropy_ref.py golden: fixed histograms */
static const struct {
    const char *kind;
    size_t entropy_bin;
    size_t percentile_bin[4]; /* at 99.99, 99.9, 50, 100 */
} golden_hist[] = {
    {"cauchy", 2048, {2027, 1860, 31, 2047}},
    {"cauchy_gaps", 1945, {1984, 1556, 22, 2048}},
    {"relu_spike", 2034, {1926, 1785, 0, 2040}},
    {"outliers", 333, {330, 323, 97, 2048}},
    {"zero_gap", 400, {2035, 1921, 0, 2048}},
    {"one_outlier", 2047, {2047, 2047, 0, 2047}},
    {"uniform", 2048, {2047, 2045, 1023, 2047}},
    {"bimodal", 1399, {1394, 1380, 217, 2047}},
    {"lcg", 2041, {2043, 2042, 1035, 2047}},
    {"extended", 2048, {2046, 2031, 33, 4999}},
};
static const double golden_percentiles[4] = {99.99, 99.9, 50.0, 100.0};

/* generated by tests/ref/entropy_ref.py golden: observation sequences; amax as float32 bits */
static const struct {
    const char *kind;
    size_t bins;
    double width;
    uint64_t checksum;
    uint32_t entropy, percentile, minmax;
} golden_obs[] = {
    {"relu_growing", 5120, 0x1.ffff4c0000000p-12, 10681109u, 0x401fffc8, 0x401fbfc8, 0x401ffba7},
    {"outlier_late", 6491, 0x1.7fac860000000p-11, 8217125u, 0x3fbfd643, 0x3fbfee3e, 0x40980000},
    {"all_zero", 0, 0.0, 0u, 0x00000000, 0x00000000, 0x00000000},
    {"zero_first", 3072, 0x1.fff62a0000000p-11, 5753538u, 0x403ffc50, 0x403fec50, 0x403ffc30},
    {"capped", 2304, 0x1.ffff660000000p-9, 2905664u, 0x410fffd5, 0x410fefd5, 0x410ffef9},
    {"signed", 2048, 0x1.7ff0560000000p-10, 4920281u, 0x403ff82b, 0x403fe02c, 0x403ff82b},
};

START_TEST(golden_histograms) {
    for (size_t c = 0; c < sizeof golden_hist / sizeof *golden_hist; c++) {
        size_t n;
        uint64_t *h = fixed_hist(golden_hist[c].kind, &n);
        uint64_t h0 = h[0];
        size_t e = bzn_calib_entropy_bin(h, n);
        ck_assert_msg(e == golden_hist[c].entropy_bin, "%s: entropy bin %zu, golden %zu", golden_hist[c].kind, e,
                      golden_hist[c].entropy_bin);
        ck_assert_uint_eq(h[0], h0); /* bins[0] = bins[1] works on a copy */
        for (int p = 0; p < 4; p++) {
            size_t b = bzn_calib_percentile_bin(h, n, golden_percentiles[p]);
            ck_assert_msg(b == golden_hist[c].percentile_bin[p], "%s: percentile %g bin %zu, golden %zu",
                          golden_hist[c].kind, golden_percentiles[p], b, golden_hist[c].percentile_bin[p]);
        }
        free(h);
    }
    /* fewer bins than int8 levels: nothing to choose, amax is the top */
    uint64_t small[100] = {[5] = 3, [99] = 1};
    ck_assert_uint_eq(bzn_calib_entropy_bin(small, 100), 100);
}
END_TEST

START_TEST(golden_observations) {
    for (size_t c = 0; c < sizeof golden_obs / sizeof *golden_obs; c++) {
        obs_seq s = observations(golden_obs[c].kind);
        bzn_calib_hist h;
        bzn_calib_hist_init(&h, s.max_bins);
        size_t total = 0;
        for (int i = 0; i < s.count; i++) {
            bzn_error e;
            ck_assert_int_eq(bzn_calib_hist_observe(&h, s.v[i], s.n[i], &e), BZN_OK);
            total += s.n[i];
        }
        const char *k = golden_obs[c].kind;
        ck_assert_msg(h.n == golden_obs[c].bins, "%s: %zu bins, golden %zu", k, h.n, golden_obs[c].bins);
        ck_assert_msg(h.width == golden_obs[c].width, "%s: width %a, golden %a", k, h.width, golden_obs[c].width);
        ck_assert_msg(checksum(&h) == golden_obs[c].checksum, "%s: checksum differs", k);
        ck_assert_uint_eq(h.values, total);
        uint64_t sum = h.zeros;
        for (size_t j = 0; j < h.n; j++) sum += h.counts[j];
        ck_assert_uint_eq(sum, total); /* zeros are counted; nothing lost when bins grow or merge */
        uint32_t got[3] = {bits(bzn_calib_hist_amax(&h, BZN_CALIB_ENTROPY, 99.99)),
                           bits(bzn_calib_hist_amax(&h, BZN_CALIB_PERCENTILE, 99.99)),
                           bits(bzn_calib_hist_amax(&h, BZN_CALIB_MINMAX, 0))};
        uint32_t want[3] = {golden_obs[c].entropy, golden_obs[c].percentile, golden_obs[c].minmax};
        static const char *names[3] = {"entropy", "percentile", "minmax"};
        for (int m = 0; m < 3; m++)
            ck_assert_msg(got[m] == want[m], "%s: %s amax %a (%08x), golden %a (%08x)", k, names[m],
                          (double)from_bits(got[m]), got[m], (double)from_bits(want[m]), want[m]);
        if (!strcmp(k, "capped")) ck_assert_int_eq(h.merges, 3);
        else ck_assert_int_eq(h.merges, 0);
        bzn_calib_hist_free(&h);
        obs_free(&s);
    }
}
END_TEST

/* the histogram rules on small hand-made observations */
START_TEST(histogram_rules) {
    bzn_calib_hist h;
    bzn_error e;
    bzn_calib_hist_init(&h, BZN_CALIB_MAX_BINS);
    float a[4] = {0.0f, -2.0f, 1.0f, 0.0f}; /* width 2/2048 */
    ck_assert_int_eq(bzn_calib_hist_observe(&h, a, 4, &e), BZN_OK);
    ck_assert_uint_eq(h.n, 2048);
    ck_assert(h.width == 2.0 / 2048);
    ck_assert_uint_eq(h.counts[0], 2);    /* zeros counted */
    ck_assert_uint_eq(h.counts[1024], 1); /* 1.0 */
    ck_assert_uint_eq(h.counts[2047], 1); /* the max lands in the last bin */
    float b[2] = {5.0f, 3.0f};            /* grows to ceil(5 / width) = 5120 bins, same width */
    ck_assert_int_eq(bzn_calib_hist_observe(&h, b, 2, &e), BZN_OK);
    ck_assert_uint_eq(h.n, 5120);
    ck_assert(h.width == 2.0 / 2048);
    ck_assert_uint_eq(h.counts[0], 2);
    ck_assert_uint_eq(h.counts[1024], 1);
    ck_assert_uint_eq(h.counts[2047], 1); /* old counts stay in the prefix */
    ck_assert_uint_eq(h.counts[3072], 1);
    ck_assert_uint_eq(h.counts[5119], 1);
    ck_assert_float_eq(h.max_abs, 5.0f);
    float bad[3] = {1.0f, NAN, 2.0f};
    ck_assert_int_eq(bzn_calib_hist_observe(&h, bad, 3, &e), BZN_ERR_FORMAT);
    bad[1] = -INFINITY;
    ck_assert_int_eq(bzn_calib_hist_observe(&h, bad, 3, &e), BZN_ERR_FORMAT);
    ck_assert_uint_eq(h.values, 6); /* refused frames leave nothing */
    bzn_calib_hist_free(&h);

    /* zeros before any width are held, then land in bin 0 */
    bzn_calib_hist_init(&h, BZN_CALIB_MAX_BINS);
    float z[5] = {0};
    ck_assert_int_eq(bzn_calib_hist_observe(&h, z, 5, &e), BZN_OK);
    ck_assert_uint_eq(h.n, 0);
    ck_assert_float_eq(bzn_calib_hist_amax(&h, BZN_CALIB_ENTROPY, 99.99), 0.0f);
    ck_assert_float_eq(bzn_calib_hist_amax(&h, BZN_CALIB_PERCENTILE, 99.99), 0.0f);
    ck_assert_float_eq(bzn_calib_hist_amax(&h, BZN_CALIB_MINMAX, 0), 0.0f);
    float one = 4.0f;
    ck_assert_int_eq(bzn_calib_hist_observe(&h, &one, 1, &e), BZN_OK);
    ck_assert_uint_eq(h.counts[0], 5);
    ck_assert_uint_eq(h.counts[2047], 1);
    /* spike of zeros plus one value: bins[0] = bins[1] = 0, so Q is empty (KL NaN) for every i
     * below 2048 and the reference's argmin picks the last NaN: 2047 */
    ck_assert_float_eq(bzn_calib_hist_amax(&h, BZN_CALIB_ENTROPY, 0), (float)(2047 * (4.0 / 2048)));
    ck_assert_float_eq(bzn_calib_hist_amax(&h, BZN_CALIB_PERCENTILE, 50), 0.0f); /* bin 0's lower edge */
    bzn_calib_hist_free(&h);

    /* a cap: 2048 bins of width 1/2048, then a max of 3 needs 6144 > 4096: merge once */
    bzn_calib_hist_init(&h, 4096);
    float c1 = 1.0f, c2[2] = {3.0f, 0.25f};
    ck_assert_int_eq(bzn_calib_hist_observe(&h, &c1, 1, &e), BZN_OK);
    ck_assert_int_eq(bzn_calib_hist_observe(&h, c2, 2, &e), BZN_OK);
    ck_assert_int_eq(h.merges, 1);
    ck_assert(h.width == 2.0 / 2048);
    ck_assert_uint_eq(h.n, 3072);
    ck_assert_uint_eq(h.counts[1023], 1); /* 1.0 was in old bin 2047 */
    ck_assert_uint_eq(h.counts[256], 1);  /* 0.25 / (2 / 2048) */
    ck_assert_uint_eq(h.counts[3071], 1);
    bzn_calib_hist_free(&h);
}
END_TEST

/* ---- random cases recomputed by entropy_ref.py ------------------------------------------- */

static int ref_run(const char *args, char *out, size_t size) {
    char log[4096];
    snprintf(log, sizeof log, "%s/ref.txt", tmp);
    int rc = tu_run("\"$BZN_PYTHON\" \"$BZN_SOURCE_DIR/tests/ref/entropy_ref.py\" %s > '%s'", args, log);
    size_t n = 0;
    uint8_t *t = tu_read_file(log, &n);
    if (n >= size) n = size - 1;
    memcpy(out, t ? (char *)t : "", n);
    out[n] = 0;
    free(t);
    return rc;
}

/* value of "key <value>" in the script's output */
static const char *ref_value(const char *out, const char *key) {
    static char v[128];
    size_t k = strlen(key);
    for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, key, k) && p[k] == ' ') {
            sscanf(p + k + 1, "%127s", v);
            return v;
        }
    ck_abort_msg("entropy_ref.py printed no '%s':\n%s", key, out);
    return "";
}

START_TEST(random_against_reference) {
    if (!tu_have_python("numpy") && tu_missing("python3-numpy")) return;
    uint64_t seed = (uint64_t)time(NULL);
    fprintf(stderr, "  random cases, seed %llu\n", (unsigned long long)seed);
    lcg g = {seed};
    char out[4096], args[16384], path[4096];
    /* histograms: a zero spike, a decaying bulk, gaps, a few far-out values */
    for (int c = 0; c < 3; c++) {
        size_t n = 2048 + lcg_next(&g) % 700;
        uint64_t *h = calloc(n, sizeof *h);
        uint32_t decay = 20 + lcg_next(&g) % 600, gaps = 2 + lcg_next(&g) % 6;
        h[0] = lcg_next(&g) % 2 ? lcg_next(&g) % 5000000 : 0;
        for (size_t j = 1; j < n; j++) {
            h[j] = (uint64_t)(100000.0 * decay / (decay + j)) * (1 + lcg_next(&g) % 3);
            if (lcg_next(&g) % gaps == 0) h[j] = 0;
        }
        for (int k = 0; k < 4; k++) h[n / 2 + lcg_next(&g) % (n / 2)] += 1 + lcg_next(&g) % 3;
        h[n - 1] += 1;
        double pct = c == 0 ? 99.99 : 90.0 + (lcg_next(&g) % 1000) / 100.0;
        snprintf(path, sizeof path, "%s/hist%d.txt", tmp, c);
        FILE *f = fopen(path, "w");
        fprintf(f, "%zu\n", n);
        for (size_t j = 0; j < n; j++) fprintf(f, "%llu\n", (unsigned long long)h[j]);
        fclose(f);
        snprintf(args, sizeof args, "hist '%s' --percentile %.17g", path, pct);
        ck_assert_int_eq(ref_run(args, out, sizeof out), 0);
        size_t want_e = strtoull(ref_value(out, "entropy_bin"), NULL, 10);
        size_t want_p = strtoull(ref_value(out, "percentile_bin"), NULL, 10);
        ck_assert_msg(bzn_calib_entropy_bin(h, n) == want_e, "seed %llu case %d: entropy bin %zu, reference %zu",
                      (unsigned long long)seed, c, bzn_calib_entropy_bin(h, n), want_e);
        ck_assert_msg(bzn_calib_percentile_bin(h, n, pct) == want_p, "seed %llu case %d: percentile bin %zu, reference %zu",
                      (unsigned long long)seed, c, bzn_calib_percentile_bin(h, n, pct), want_p);
        free(h);
    }
    /* observation sequences with growing ranges, some through the merge cap */
    for (int c = 0; c < 2; c++) {
        bzn_calib_hist h;
        size_t max_bins = c == 0 ? BZN_CALIB_MAX_BINS : 4096;
        bzn_calib_hist_init(&h, max_bins);
        int len = snprintf(args, sizeof args, "collect --max-bins %zu", max_bins);
        for (int o = 0; o < 3; o++) {
            size_t n = 2000 + lcg_next(&g) % 3000;
            float scale = 0.5f + (float)(lcg_next(&g) % 400) / 100.0f;
            float *v = relu(&g, n, scale, 2 + lcg_next(&g) % 4);
            if (o == 2) v[lcg_next(&g) % n] = -scale * (1.0f + (float)(lcg_next(&g) % 5)); /* an outlier */
            snprintf(path, sizeof path, "%s/obs%d_%d.f32", tmp, c, o);
            tu_write_file(path, v, n * sizeof *v); /* x86: little-endian float32 */
            len += snprintf(args + len, sizeof args - (size_t)len, " '%s'", path);
            bzn_error e;
            ck_assert_int_eq(bzn_calib_hist_observe(&h, v, n, &e), BZN_OK);
            free(v);
        }
        ck_assert_int_eq(ref_run(args, out, sizeof out), 0);
        ck_assert_uint_eq(h.n, strtoull(ref_value(out, "bins"), NULL, 10));
        ck_assert(h.width == strtod(ref_value(out, "width"), NULL));
        ck_assert_uint_eq(checksum(&h), strtoull(ref_value(out, "checksum"), NULL, 10));
        static const bzn_calib_method ms[3] = {BZN_CALIB_ENTROPY, BZN_CALIB_PERCENTILE, BZN_CALIB_MINMAX};
        for (int m = 0; m < 3; m++) {
            uint32_t want = (uint32_t)strtoul(ref_value(out, bzn_calib_method_name(ms[m])), NULL, 16);
            uint32_t got = bits(bzn_calib_hist_amax(&h, ms[m], 99.99));
            ck_assert_msg(got == want, "seed %llu sequence %d: %s amax %08x, reference %08x", (unsigned long long)seed, c,
                          bzn_calib_method_name(ms[m]), got, want);
        }
        bzn_calib_hist_free(&h);
    }
}
END_TEST

/* ---- the calibrator on the real network --------------------------------------------------- */

static void count_progress(void *user, int done, int total, const char *name) {
    (void)total;
    (void)name;
    ck_assert_int_eq(done, ++*(int *)user);
}

static bzn_ctx *make_ctx(int h, int w, int keep, int aux) {
    bzn_ctx_options o = bzn_ctx_default_options(model);
    o.height = h;
    o.width = w;
    o.keep_intermediates = keep;
    o.run_aux = aux;
    bzn_ctx *c;
    bzn_error e;
    ck_assert_msg(bzn_ctx_create(model, &o, &c, &e) == BZN_OK, "%s", e.msg);
    return c;
}

static void run_random(bzn_ctx *c, int h, int w, unsigned seed) {
    uint8_t *px = malloc((size_t)3 * h * w);
    for (size_t i = 0; i < (size_t)3 * h * w; i++) {
        seed = seed * 1664525u + 1013904223u;
        px[i] = (uint8_t)(seed >> 24);
    }
    bzn_error e;
    ck_assert_msg(bzn_run_rgb(c, px, w, h, w * 3, &e) == BZN_OK, "%s", e.msg);
    free(px);
}

/* One entry per distinct tensor: in this engine every layer writes its own tensor (containers
 * with the same output are its aliases), so the list is `input` plus every layer. */
START_TEST(tensor_names) {
    for (int aux = 0; aux < 2; aux++) {
        bzn_graph g;
        bzn_error e;
        ck_assert_int_eq(bzn_network_build(&model->wf.config, 64, 64, aux, &g, &e), BZN_OK);
        for (int i = 0; i < g.n_nodes; i++)
            for (int j = 0; j < i; j++) {
                const bzn_value *a = &g.nodes[i].out, *b = &g.nodes[j].out;
                ck_assert_msg(!(a->n == b->n && a->c == b->c && !memcmp(a->seg, b->seg, (size_t)a->n * sizeof *a->seg)),
                              "%s writes the same tensor as %s", g.nodes[i].name, g.nodes[j].name);
            }
        bzn_graph_free(&g);
        bzn_ctx *c = make_ctx(64, 64, 1, aux);
        bzn_calibrator *cal;
        ck_assert_int_eq(bzn_calibrator_create(c, &cal, &e), BZN_OK);
        ck_assert_int_eq(bzn_calibrator_num_tensors(cal), bzn_ctx_num_layers(c) + 1);
        ck_assert_int_eq(bzn_ctx_num_layers(c), aux ? 140 : 123);
        bzn_calib_tensor_info ti;
        ck_assert_int_eq(bzn_calibrator_tensor(cal, 0, &ti), BZN_OK);
        ck_assert_str_eq(ti.name, "input");
        ck_assert_int_eq(ti.layer, -1);
        ck_assert_int_eq(ti.channels * ti.height * ti.width, 3 * 64 * 64);
        for (int i = 0; i < bzn_ctx_num_layers(c); i++) {
            bzn_layer_info li;
            bzn_ctx_layer(c, i, &li);
            ck_assert_int_eq(bzn_calibrator_tensor(cal, i + 1, &ti), BZN_OK);
            ck_assert_str_eq(ti.name, li.name);
            ck_assert_int_eq(ti.layer, i);
        }
        ck_assert_int_eq(bzn_calibrator_tensor(cal, bzn_ctx_num_layers(c) + 1, &ti), BZN_ERR_ARG);
        bzn_calibrator_free(cal);
        bzn_ctx_free(c);
    }
}
END_TEST

START_TEST(calibrator_use_and_misuse) {
    bzn_ctx *c = make_ctx(64, 64, 1, 0);
    bzn_calibrator *cal;
    bzn_calib_table *t = (bzn_calib_table *)1;
    bzn_error e;
    ck_assert_int_eq(bzn_calibrator_create(NULL, &cal, &e), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_calibrator_create(c, &cal, &e), BZN_OK);
    ck_assert_int_eq(bzn_calibrator_observe(cal, c, &e), BZN_ERR_ARG); /* nothing run yet */
    ck_assert_ptr_nonnull(strstr(e.msg, "no frame"));
    ck_assert_int_eq(bzn_calibrator_compute(cal, BZN_CALIB_ENTROPY, 0, &t, &e), BZN_ERR_ARG);
    ck_assert_ptr_null(t);
    ck_assert_ptr_nonnull(strstr(e.msg, "nothing observed"));

    /* a context without keep_intermediates: refused, nothing recorded */
    bzn_ctx *lean = make_ctx(64, 64, 0, 0);
    run_random(lean, 64, 64, 1);
    ck_assert_int_eq(bzn_calibrator_observe(cal, lean, &e), BZN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "keep_intermediates"));
    ck_assert_int_eq(bzn_calibrator_num_observations(cal), 0);
    bzn_calib_tensor_info ti;
    bzn_calibrator_tensor(cal, 0, &ti);
    ck_assert_uint_eq(ti.values, 0);
    bzn_ctx_free(lean);

    /* another size: refused */
    bzn_ctx *other = make_ctx(64, 96, 1, 0);
    run_random(other, 64, 96, 1);
    ck_assert_int_eq(bzn_calibrator_observe(cal, other, &e), BZN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "another network or size"));
    bzn_ctx_free(other);

    /* two frames */
    run_random(c, 64, 64, 1);
    ck_assert_int_eq(bzn_calibrator_observe(cal, c, &e), BZN_OK);
    float in_max;
    ck_assert_int_eq(bzn_calib_absmax(bzn_ctx_input(c), 3 * 64 * 64, &in_max), 0);
    run_random(c, 64, 64, 2);
    ck_assert_int_eq(bzn_calibrator_observe(cal, c, &e), BZN_OK);
    float in_max2;
    bzn_calib_absmax(bzn_ctx_input(c), 3 * 64 * 64, &in_max2);
    ck_assert_int_eq(bzn_calibrator_num_observations(cal), 2);
    bzn_calibrator_tensor(cal, 0, &ti);
    ck_assert_float_eq(ti.max_abs, fmaxf(in_max, in_max2));
    ck_assert_uint_eq(ti.values, 2 * 3 * 64 * 64);
    ck_assert_int_ge(ti.bins, BZN_CALIB_BINS);

    /* a NaN in the input: refused with the tensor's name, nothing recorded */
    float *x = malloc(3 * 64 * 64 * sizeof *x);
    memcpy(x, bzn_ctx_input(c), 3 * 64 * 64 * sizeof *x);
    x[100] = NAN;
    bzn_run_tensor(c, x, &e);
    ck_assert_int_eq(bzn_calibrator_observe(cal, c, &e), BZN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "'input'"));
    ck_assert_int_eq(bzn_calibrator_num_observations(cal), 2);
    bzn_calibrator_tensor(cal, 5, &ti);
    ck_assert_uint_eq(ti.values, 2 * (uint64_t)ti.channels * ti.height * ti.width);
    free(x);

    /* every method: amax within [0, max|x|] except entropy, which may take the top bin's edge */
    static const bzn_calib_method ms[3] = {BZN_CALIB_ENTROPY, BZN_CALIB_MINMAX, BZN_CALIB_PERCENTILE};
    for (int m = 0; m < 3; m++) {
        ck_assert_int_eq(bzn_calibrator_compute(cal, ms[m], 0, &t, &e), BZN_OK);
        ck_assert_int_eq(t->method, ms[m]);
        ck_assert_int_eq(t->count, bzn_calibrator_num_tensors(cal));
        for (int i = 0; i < t->count; i++) {
            bzn_calibrator_tensor(cal, i, &ti);
            ck_assert_str_eq(t->scales[i].name, ti.name);
            ck_assert(t->amax[i] >= 0.0f);
            ck_assert(bits(t->scales[i].scale) == bits(t->amax[i] / 127.0f));
            if (ms[m] == BZN_CALIB_MINMAX) ck_assert(t->amax[i] == ti.max_abs);
            else ck_assert(t->amax[i] <= (float)((double)ti.bins * ti.bin_width));
        }
        ck_assert_int_eq(bzn_calib_cache_check(t, c, &e), BZN_OK);
        bzn_calib_table_free(t);
    }
    ck_assert_int_eq(bzn_calibrator_compute(cal, BZN_CALIB_PERCENTILE, 101, &t, &e), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_calibrator_compute(cal, BZN_CALIB_PERCENTILE, -1, &t, &e), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_calibrator_compute(cal, (bzn_calib_method)7, 0, &t, &e), BZN_ERR_ARG);
    bzn_calibrator_free(cal);
    bzn_calibrator_free(NULL);
    bzn_calib_table_free(NULL);
    bzn_ctx_free(c);
}
END_TEST

/* ---- the cache file ----------------------------------------------------------------------- */

static int count_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d));) n += strstr(de->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

START_TEST(cache_round_trip) {
    static const uint32_t patterns[] = {0x3c010a14, 0x3d8f5c29, 0x0,        0x1,        0x7f7fffff,
                                        0x00800000, 0x3f800000, 0x3c810204, 0x12345678, 0x000abcde};
    enum { N = sizeof patterns / sizeof *patterns };
    bzn_tensor_scale sc[N];
    char names[N][32];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], i == 0 ? "input" : "encoder.base.3.layers.%d", i);
        sc[i].name = names[i];
        sc[i].scale = from_bits(patterns[i]);
    }
    static const bzn_calib_method ms[3] = {BZN_CALIB_ENTROPY, BZN_CALIB_MINMAX, BZN_CALIB_PERCENTILE};
    static const char *headers[3] = {"TRT-7103-EntropyCalibration2", "TRT-7103-MinMaxCalibration",
                                     "TRT-7103-LegacyCalibration"};
    char path[4096];
    snprintf(path, sizeof path, "%s/round.cache", tmp);
    for (int m = 0; m < 3; m++) {
        bzn_calib_table t = {ms[m], N, sc, NULL};
        bzn_error e;
        ck_assert_msg(bzn_calib_cache_write(path, &t, &e) == BZN_OK, "%s", e.msg);
        size_t len;
        char *text = (char *)tu_read_file(path, &len);
        text[len] = 0;
        ck_assert(!strncmp(text, headers[m], strlen(headers[m])) && text[strlen(headers[m])] == '\n');
        /* lower-case hex, no 0x, no padding */
        ck_assert_ptr_nonnull(strstr(text, "\ninput: 3c010a14\n"));
        ck_assert_ptr_nonnull(strstr(text, "\nencoder.base.3.layers.2: 0\n"));
        ck_assert_ptr_nonnull(strstr(text, "\nencoder.base.3.layers.3: 1\n"));
        ck_assert_ptr_nonnull(strstr(text, "\nencoder.base.3.layers.9: abcde\n"));
        ck_assert(text[len - 1] == '\n');
        free(text);
        bzn_calib_table *r;
        ck_assert_msg(bzn_calib_cache_read(path, &r, &e) == BZN_OK, "%s", e.msg);
        ck_assert_int_eq(r->method, ms[m]);
        ck_assert_int_eq(r->count, N);
        for (int i = 0; i < N; i++) {
            ck_assert_str_eq(r->scales[i].name, names[i]);
            ck_assert_uint_eq(bits(r->scales[i].scale), patterns[i]); /* bit-exact */
            ck_assert(bits(r->amax[i]) == bits(r->scales[i].scale * 127.0f));
        }
        bzn_calib_table_free(r);
    }
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0644);

    /* the writer refuses what the reader would refuse, and leaves the old file alone */
    bzn_error e;
    size_t before_len;
    uint8_t *before = tu_read_file(path, &before_len);
    bzn_tensor_scale bad[2] = {{"input", 0.5f}, {"input", 0.25f}};
    bzn_calib_table t = {BZN_CALIB_ENTROPY, 2, bad, NULL};
    ck_assert_int_eq(bzn_calib_cache_write(path, &t, &e), BZN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "twice"));
    bad[1] = (bzn_tensor_scale){"x", -1.0f};
    ck_assert_int_eq(bzn_calib_cache_write(path, &t, &e), BZN_ERR_ARG);
    bad[1] = (bzn_tensor_scale){"x", NAN};
    ck_assert_int_eq(bzn_calib_cache_write(path, &t, &e), BZN_ERR_ARG);
    bad[1] = (bzn_tensor_scale){"a\nb", 1.0f};
    ck_assert_int_eq(bzn_calib_cache_write(path, &t, &e), BZN_ERR_ARG);
    bad[1] = (bzn_tensor_scale){"", 1.0f};
    ck_assert_int_eq(bzn_calib_cache_write(path, &t, &e), BZN_ERR_ARG);
    /* the first problem in entry order is the one named */
    bzn_tensor_scale bad3[3] = {{"a", 1.0f}, {"b", NAN}, {"a", 1.0f}};
    t = (bzn_calib_table){BZN_CALIB_ENTROPY, 3, bad3, NULL};
    ck_assert_int_eq(bzn_calib_cache_write(path, &t, &e), BZN_ERR_ARG);
    ck_assert_msg(strstr(e.msg, "scale of 'b'"), "%s", e.msg);
    bad3[1] = (bzn_tensor_scale){"a", 1.0f};
    bad3[2] = (bzn_tensor_scale){"b", NAN};
    ck_assert_int_eq(bzn_calib_cache_write(path, &t, &e), BZN_ERR_ARG);
    ck_assert_msg(strstr(e.msg, "'a' appears twice"), "%s", e.msg);
    t = (bzn_calib_table){BZN_CALIB_ENTROPY, 2, bad, NULL};
    size_t after_len;
    uint8_t *after = tu_read_file(path, &after_len);
    ck_assert(after_len == before_len && !memcmp(before, after, before_len));
    free(before);
    free(after);
    t.count = 1;
    ck_assert_int_eq(bzn_calib_cache_write("/nonexistent-dir/x.cache", &t, &e), BZN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(e.msg, "/nonexistent-dir/x.cache"));
    ck_assert_int_eq(bzn_calib_cache_write(NULL, &t, &e), BZN_ERR_ARG);
    ck_assert_int_eq(count_tmp_files(tmp), 0);
    bzn_calib_table *r;
    ck_assert_int_eq(bzn_calib_cache_read("/nonexistent.cache", &r, &e), BZN_ERR_IO);
    ck_assert_ptr_null(r);
    ck_assert_ptr_nonnull(strstr(e.msg, "/nonexistent.cache"));
}
END_TEST

START_TEST(cache_malformed) {
    static const struct {
        const char *text;
        const char *expect[2]; /* substrings of the message */
    } cases[] = {
        {"", {"empty", NULL}},
        {"\n", {"line 1", NULL}},
        {"input: 3f800000\n", {"line 1", "header"}},
        {"TRT-7103-EntropyCalibration\ninput: 3f800000\n", {"line 1", "EntropyCalibration2"}},
        {"TRT-abc-EntropyCalibration2\n", {"line 1", NULL}},
        {"TRT-7103-EntropyCalibration2 \n", {"line 1", NULL}},
        {"TRT-7103-EntropyCalibration2\ninput: zz\n", {"line 2", "hex"}},
        {"TRT-7103-EntropyCalibration2\ninput: 3f80000g\n", {"line 2", NULL}},
        {"TRT-7103-EntropyCalibration2\ninput 3f800000\n", {"line 2", "':'"}},
        {"TRT-7103-EntropyCalibration2\ninput:3f800000\n", {"line 2", NULL}},
        {"TRT-7103-EntropyCalibration2\ninput: 0x3f800000\n", {"line 2", NULL}},
        {"TRT-7103-EntropyCalibration2\ninput: -1\n", {"line 2", NULL}},
        {"TRT-7103-EntropyCalibration2\ninput: 3f800000 \n", {"line 2", NULL}},
        {"TRT-7103-EntropyCalibration2\ninput: 13f800000\n", {"line 2", NULL}},
        {"TRT-7103-EntropyCalibration2\ninput: \n", {"line 2", NULL}},
        {"TRT-7103-EntropyCalibration2\n: 3f800000\n", {"line 2", "name"}},
        {"TRT-7103-EntropyCalibration2\ninput: 3f800000\nx: 1\ninput: 3f000000\n", {"line 4", "line 2"}},
        /* duplicates: the first repeated line in file order, and before a later malformed line */
        {"TRT-7103-EntropyCalibration2\na: 1\nb: 1\nc: 1\nb: 2\na: 2\n", {"line 5: 'b' was already given on line 3", NULL}},
        {"TRT-7103-EntropyCalibration2\na: 1\nb: 1\nb: 1\nb: 1\na: 1\n", {"line 4: 'b' was already given on line 3", NULL}},
        {"TRT-7103-EntropyCalibration2\na: 1\na: 1\nnot a line\n", {"line 3: 'a' was already given on line 2", NULL}},
        {"TRT-7103-EntropyCalibration2\na: 1\nnot a line\na: 1\n", {"line 3", "':'"}},
        {"TRT-7103-EntropyCalibration2\ninput: bf800000\n", {"line 2", "negative"}},
        {"TRT-7103-EntropyCalibration2\ninput: 80000000\n", {"line 2", "negative"}},
        {"TRT-7103-EntropyCalibration2\ninput: 7fc00000\n", {"line 2", "NaN"}},
        {"TRT-7103-EntropyCalibration2\ninput: 7f800000\n", {"line 2", "infinite"}},
        {"TRT-7103-EntropyCalibration2\ninput: 3f800000\n\nx: 1\n", {"line 3", "empty line"}},
        {"TRT-7103-EntropyCalibration2\ninput: 3f800000\nx: 1\n\n", {"line 4", "empty line"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bzn_calib_table *t = (bzn_calib_table *)1;
        bzn_error e = {0};
        bzn_status s = bzn_calib_cache_parse(cases[i].text, strlen(cases[i].text), &t, &e);
        ck_assert_msg(s == BZN_ERR_FORMAT, "case %zu accepted: %s", i, cases[i].text);
        ck_assert_ptr_null(t);
        for (int k = 0; k < 2; k++)
            if (cases[i].expect[k])
                ck_assert_msg(strstr(e.msg, cases[i].expect[k]), "case %zu: '%s' lacks '%s'", i, e.msg, cases[i].expect[k]);
    }
    static const char nul[] = "TRT-7103-MinMaxCalibration\ni\0x: 1\n";
    bzn_calib_table *t;
    bzn_error e;
    ck_assert_int_eq(bzn_calib_cache_parse(nul, sizeof nul - 1, &t, &e), BZN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "NUL"));
    /* through a file: the path is in the message */
    char path[4096];
    snprintf(path, sizeof path, "%s/bad.cache", tmp);
    tu_write_file(path, "TRT-7103-EntropyCalibration2\ninput: nope\n", 41);
    ck_assert_int_eq(bzn_calib_cache_read(path, &t, &e), BZN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, path));
    ck_assert_ptr_nonnull(strstr(e.msg, "line 2"));

    /* accepted: other TensorRT versions, CRLF, no final newline, upper-case hex, header only */
    static const char *ok[] = {
        "TRT-8601-EntropyCalibration2\ninput: 3F800000\n",
        "TRT-7103-LegacyCalibration\r\ninput: 3f800000\r\nx: 1\r\n",
        "TRT-7103-MinMaxCalibration\ninput: 3f800000",
        "TRT-7103-EntropyCalibration2\n",
        "TRT-7103-EntropyCalibration2\n(Unnamed Layer* 3) [Convolution]_output: 3c010a14\n",
    };
    static const bzn_calib_method ok_m[] = {BZN_CALIB_ENTROPY, BZN_CALIB_PERCENTILE, BZN_CALIB_MINMAX,
                                            BZN_CALIB_ENTROPY, BZN_CALIB_ENTROPY};
    static const int ok_n[] = {1, 2, 1, 0, 1};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        ck_assert_msg(bzn_calib_cache_parse(ok[i], strlen(ok[i]), &t, &e) == BZN_OK, "case %zu: %s", i, e.msg);
        ck_assert_int_eq(t->method, ok_m[i]);
        ck_assert_int_eq(t->count, ok_n[i]);
        if (ok_n[i] && i < 3) {
            ck_assert_str_eq(t->scales[0].name, "input");
            ck_assert_float_eq(t->scales[0].scale, 1.0f);
        }
        bzn_calib_table_free(t);
    }
}
END_TEST

/* ---- caches at scale: linear time, a cap on the entries ---------------------------------- */

/* A cache of n distinct valid entries "t0000000: 3f800000", "t0000001: ...", in order (line
 * i + 2 names t<i>); with `dup` >= 0, the last entry repeats entry dup's name. *len: its size. */
static char *many_entries(int n, int dup, size_t *len) {
    static const char header[] = "TRT-7103-EntropyCalibration2\n";
    enum { LINE = 19 }; /* "t0000000: 3f800000\n" */
    char *text = malloc(sizeof header + (size_t)n * LINE);
    ck_assert_ptr_nonnull(text);
    memcpy(text, header, sizeof header - 1);
    char *p = text + sizeof header - 1;
    for (int i = 0; i < n; i++, p += LINE) {
        const unsigned k = (unsigned)(i == n - 1 && dup >= 0 ? dup : i) % 10000000u; /* 7 digits */
        snprintf(p, LINE + 1, "t%07u: 3f800000\n", k);
    }
    *len = (size_t)(p - text);
    return text;
}

/* the names of the tensors a calibrator of c records, as a table with scale 1 */
static bzn_calib_table *network_names(bzn_ctx *c, bzn_calibrator **cal) {
    bzn_error e;
    ck_assert_int_eq(bzn_calibrator_create(c, cal, &e), BZN_OK);
    const int n = bzn_calibrator_num_tensors(*cal);
    bzn_calib_table *t = calloc(1, sizeof *t);
    t->scales = calloc((size_t)BZN_CALIB_MAX_CACHE_ENTRIES, sizeof *t->scales);
    for (int i = 0; i < n; i++) {
        bzn_calib_tensor_info ti;
        ck_assert_int_eq(bzn_calibrator_tensor(*cal, i, &ti), BZN_OK);
        t->scales[t->count++] = (bzn_tensor_scale){ti.name, 1.0f}; /* borrowed from cal */
    }
    return t;
}

START_TEST(cache_too_many_entries) {
    enum { CAP = BZN_CALIB_MAX_CACHE_ENTRIES };
    char want[128];
    snprintf(want, sizeof want, "line %d: too many entries: a calibration cache holds at most %d", CAP + 2, CAP);
    bzn_calib_table *t;
    bzn_error e;
    size_t len;
    /* as many as the cap: accepted */
    char *text = many_entries(CAP, -1, &len);
    ck_assert_msg(bzn_calib_cache_parse(text, len, &t, &e) == BZN_OK, "%s", e.msg);
    ck_assert_int_eq(t->count, CAP);
    char last[16];
    snprintf(last, sizeof last, "t%07d", CAP - 1);
    ck_assert_str_eq(t->scales[CAP - 1].name, last);
    ck_assert_float_eq(t->scales[CAP - 1].scale, 1.0f);
    bzn_calib_table_free(t);
    free(text);
    /* one more: refused, saying why and what the cap is, directly and through a file */
    text = many_entries(CAP + 1, -1, &len);
    t = (bzn_calib_table *)1;
    ck_assert_int_eq(bzn_calib_cache_parse(text, len, &t, &e), BZN_ERR_FORMAT);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(e.msg, want), "'%s' lacks '%s'", e.msg, want);
    char path[4096];
    snprintf(path, sizeof path, "%s/many.cache", tmp);
    tu_write_file(path, text, len);
    ck_assert_int_eq(bzn_calib_cache_read(path, &t, &e), BZN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, path));
    ck_assert_msg(strstr(e.msg, want), "'%s' lacks '%s'", e.msg, want);
    free(text);
    /* a duplicate before the cap is the first problem, and is the one reported */
    text = many_entries(CAP + 1, -1, &len);
    memcpy(text + strlen("TRT-7103-EntropyCalibration2\n") + 19 * 100, "t0000007", 8);
    ck_assert_int_eq(bzn_calib_cache_parse(text, len, &t, &e), BZN_ERR_FORMAT);
    ck_assert_msg(strstr(e.msg, "line 102: 't0000007' was already given on line 9"), "%s", e.msg);
    free(text);

    /* the writer refuses what the reader would refuse, and writes nothing */
    bzn_tensor_scale *sc = malloc((size_t)(CAP + 1) * sizeof *sc);
    char (*names)[16] = malloc((size_t)(CAP + 1) * sizeof *names);
    for (int i = 0; i <= CAP; i++) {
        snprintf(names[i], sizeof names[i], "t%07d", i);
        sc[i] = (bzn_tensor_scale){names[i], 1.0f};
    }
    bzn_calib_table big = {BZN_CALIB_MINMAX, CAP + 1, sc, NULL};
    snprintf(path, sizeof path, "%s/many-written.cache", tmp);
    ck_assert_int_eq(bzn_calib_cache_write(path, &big, &e), BZN_ERR_ARG);
    ck_assert_msg(strstr(e.msg, "too many entries"), "%s", e.msg);
    snprintf(want, sizeof want, "at most %d", CAP);
    ck_assert_msg(strstr(e.msg, want), "%s", e.msg);
    struct stat st;
    ck_assert_int_ne(stat(path, &st), 0);
    /* at the cap: written and read back */
    big.count = CAP;
    ck_assert_msg(bzn_calib_cache_write(path, &big, &e) == BZN_OK, "%s", e.msg);
    ck_assert_msg(bzn_calib_cache_read(path, &t, &e) == BZN_OK, "%s", e.msg);
    ck_assert_int_eq(t->count, CAP);
    ck_assert_int_eq(t->method, BZN_CALIB_MINMAX);
    bzn_calib_table_free(t);
    free(names);
    free(sc);
}
END_TEST

/* In a test case of its own with a timeout of 20 s: the old parser compared each line with
 * every earlier one (quadratic: 4-6 s for 50,000 lines, about 7 s for each of the first two
 * parses below, hours for the 64 MB file); with reading, duplicate detection and matching
 * n log n or better, all of it takes about 0.3 s (2 s under ASan + UBSan). */
START_TEST(cache_parse_at_scale) {
    enum { CAP = BZN_CALIB_MAX_CACHE_ENTRIES };
    bzn_calib_table *t;
    bzn_error e;
    size_t len;
    /* the cap's worth of entries, the last repeating the first: every name is looked at */
    char *text = many_entries(CAP, 0, &len);
    ck_assert_int_eq(bzn_calib_cache_parse(text, len, &t, &e), BZN_ERR_FORMAT);
    char want[96];
    snprintf(want, sizeof want, "line %d: 't0000000' was already given on line 2", CAP + 1);
    ck_assert_msg(strstr(e.msg, want), "'%s' lacks '%s'", e.msg, want);
    free(text);
    /* and with a repetition in the middle */
    text = many_entries(CAP, CAP / 2, &len);
    ck_assert_int_eq(bzn_calib_cache_parse(text, len, &t, &e), BZN_ERR_FORMAT);
    snprintf(want, sizeof want, "line %d: 't%07d' was already given on line %d", CAP + 1, CAP / 2, CAP / 2 + 2);
    ck_assert_msg(strstr(e.msg, want), "'%s' lacks '%s'", e.msg, want);
    free(text);

    /* the largest file the reader takes (64 MB) of distinct valid short lines: refused at the cap */
    const size_t size = (size_t)64 << 20;
    char *big = malloc(size + 1);
    ck_assert_ptr_nonnull(big);
    static const char header[] = "TRT-7103-EntropyCalibration2\n";
    memcpy(big, header, sizeof header - 1);
    char line[] = "a0000000: 0\n"; /* the digits count up: every name differs */
    size_t at = sizeof header - 1;
    int lines = 1;
    for (; at + sizeof line - 1 <= size; at += sizeof line - 1, lines++) {
        memcpy(big + at, line, sizeof line - 1);
        for (int d = 7; d >= 1 && ++line[d] > '9'; d--) line[d] = '0';
    }
    ck_assert_int_gt(lines, 5 * 1000 * 1000);
    ck_assert_int_eq(bzn_calib_cache_parse(big, at, &t, &e), BZN_ERR_FORMAT);
    ck_assert_msg(strstr(e.msg, "too many entries"), "%s", e.msg);
    char path[4096];
    snprintf(path, sizeof path, "%s/64mb.cache", tmp);
    tu_write_file(path, big, at);
    free(big);
    ck_assert_int_eq(bzn_calib_cache_read(path, &t, &e), BZN_ERR_FORMAT);
    ck_assert_msg(strstr(e.msg, "too many entries"), "%s", e.msg);
    remove(path);

    /* matching the cap's worth of names against the network: the network's names and the
     * rest unknown, then none of them */
    bzn_ctx *c = make_ctx(64, 64, 1, 0);
    bzn_calibrator *cal;
    t = network_names(c, &cal);
    const int n_net = t->count;
    ck_assert_int_gt(n_net, 100);
    char (*names)[16] = malloc((size_t)CAP * sizeof *names);
    for (int i = n_net; i < CAP; i++) {
        snprintf(names[i], sizeof names[i], "t%07d", i);
        t->scales[t->count++] = (bzn_tensor_scale){names[i], 1.0f};
    }
    ck_assert_int_eq(bzn_calib_cache_check(t, c, &e), BZN_ERR_FORMAT);
    snprintf(want, sizeof want, "%d unknown tensors: t%07d, ", CAP - n_net, n_net);
    ck_assert_msg(strstr(e.msg, want), "'%s' lacks '%s'", e.msg, want);
    ck_assert_msg(strstr(e.msg, "; 0 missing"), "%s", e.msg);
    for (int i = 0; i < n_net; i++) {
        snprintf(names[i], sizeof names[i], "t%07d", i);
        t->scales[i].name = names[i];
    }
    ck_assert_int_eq(bzn_calib_cache_check(t, c, &e), BZN_ERR_FORMAT);
    snprintf(want, sizeof want, "%d unknown tensors: t0000000, ", CAP);
    ck_assert_msg(strstr(e.msg, want), "'%s' lacks '%s'", e.msg, want);
    snprintf(want, sizeof want, "; %d missing: input, ", n_net);
    ck_assert_msg(strstr(e.msg, want), "'%s' lacks '%s'", e.msg, want);
    ck_assert_uint_lt(strlen(e.msg), sizeof e.msg - 1);
    free(names);
    free(t->scales);
    free(t);
    bzn_calibrator_free(cal);
    bzn_ctx_free(c);
}
END_TEST

/* a table naming every tensor of c except `drop`, with `rename[0]` changed to `rename[1]` */
static bzn_calib_table *names_of(bzn_ctx *c, const char *drop, const char *from, const char *to) {
    bzn_calibrator *cal;
    bzn_calib_table *t;
    bzn_error e;
    run_random(c, 64, 64, 3);
    ck_assert_int_eq(bzn_calibrator_create(c, &cal, &e), BZN_OK);
    ck_assert_int_eq(bzn_calibrator_observe(cal, c, &e), BZN_OK);
    ck_assert_int_eq(bzn_calibrator_compute(cal, BZN_CALIB_MINMAX, 0, &t, &e), BZN_OK);
    bzn_calibrator_free(cal);
    for (int i = 0; i < t->count; i++) {
        if (drop && !strcmp(t->scales[i].name, drop)) {
            free((char *)t->scales[i].name);
            t->scales[i] = t->scales[--t->count];
            i--;
        } else if (from && !strcmp(t->scales[i].name, from)) {
            free((char *)t->scales[i].name);
            t->scales[i].name = strdup(to);
        }
    }
    return t;
}

START_TEST(cache_names_against_network) {
    bzn_ctx *c = make_ctx(64, 64, 1, 0), *ca = make_ctx(64, 64, 1, 1);
    bzn_error e;
    bzn_calib_table *t = names_of(c, NULL, NULL, NULL);
    ck_assert_int_eq(bzn_calib_cache_check(t, c, &e), BZN_OK);
    /* through a file and back */
    char path[4096];
    snprintf(path, sizeof path, "%s/net.cache", tmp);
    ck_assert_int_eq(bzn_calib_cache_write(path, t, &e), BZN_OK);
    bzn_calib_table *r;
    ck_assert_int_eq(bzn_calib_cache_read(path, &r, &e), BZN_OK);
    ck_assert_int_eq(bzn_calib_cache_check(r, c, &e), BZN_OK);
    bzn_calib_table_free(r);
    /* the main-path cache lacks the auxiliary branch */
    ck_assert_int_eq(bzn_calib_cache_check(t, ca, &e), BZN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "0 unknown"));
    ck_assert_ptr_nonnull(strstr(e.msg, "17 missing: agg1.upsample_1, agg1.block_22.0"));
    bzn_calib_table_free(t);

    /* an unknown name, an alias, a missing name: all listed */
    t = names_of(c, "head_2.head", "rfb5.branch1.0", "rfb5.branch9.0");
    ck_assert_int_eq(bzn_calib_cache_check(t, c, &e), BZN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "1 unknown tensor: rfb5.branch9.0"));
    ck_assert_ptr_nonnull(strstr(e.msg, "2 missing: rfb5.branch1.0, head_2.head"));
    bzn_calib_table_free(t);
    t = names_of(c, NULL, "rfb4.conv_cat", "rfb4");
    ck_assert_int_eq(bzn_calib_cache_check(t, c, &e), BZN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "rfb4 (an alias of rfb4.conv_cat)"));
    ck_assert_ptr_nonnull(strstr(e.msg, "1 missing: rfb4.conv_cat"));
    bzn_calib_table_free(t);

    /* an auxiliary-branch cache against a main-path context: unknown names and a hint */
    t = names_of(ca, NULL, NULL, NULL);
    ck_assert_int_eq(bzn_calib_cache_check(t, ca, &e), BZN_OK);
    ck_assert_int_eq(bzn_calib_cache_check(t, c, &e), BZN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "17 unknown tensors: agg1.upsample_1"));
    ck_assert_ptr_nonnull(strstr(e.msg, "run_aux"));
    ck_assert_ptr_nonnull(strstr(e.msg, "0 missing"));
    ck_assert_uint_lt(strlen(e.msg), sizeof e.msg - 1); /* long lists are cut, not truncated mid-way */
    bzn_calib_table_free(t);
    bzn_ctx_free(c);
    bzn_ctx_free(ca);
}
END_TEST

/* ---- the command line --------------------------------------------------------------------- */

static char out[65536]; /* what the last cli() printed */
#define cli(args) tu_cli(tmp, out, sizeof out, "%s", args)


#define MODEL "\"$BZN_SOURCE_DIR/models/blazeneo-dha-neopolyp-small-f16.bzn\""
#define CALIB "\"$BZN_SHARED_DIR/data/neopolyp-small/calib/images\""

/* The INT8 sensitivity ranking: every convolution once, most sensitive first, the whole
 * network's figures beside it; quantizing one layer never costs more than quantizing all
 * (on these frames), and the scales are checked against the network. */
START_TEST(sensitivity_ranking) {
    bzn_ctx *c = make_ctx(32, 32, 1, 0); /* small: about a hundred contexts are made */
    bzn_calibrator *cal;
    bzn_calib_table *t;
    bzn_error e;
    ck_assert_int_eq(bzn_calibrator_create(c, &cal, &e), BZN_OK);
    float *inputs = malloc(2 * 3 * 32 * 32 * sizeof *inputs);
    for (int f = 0; f < 2; f++) {
        run_random(c, 32, 32, 10 + f);
        ck_assert_int_eq(bzn_calibrator_observe(cal, c, &e), BZN_OK);
        memcpy(inputs + f * 3 * 32 * 32, bzn_ctx_input(c), 3 * 32 * 32 * sizeof *inputs);
    }
    ck_assert_int_eq(bzn_calibrator_compute(cal, BZN_CALIB_MINMAX, 0, &t, &e), BZN_OK);
    bzn_sensitivity_report r;
    int calls = 0;
    ck_assert_msg(bzn_int8_sensitivity(c, inputs, 2, t, &r, count_progress, &calls, &e) == BZN_OK, "%s", e.msg);
    int convs = 0;
    for (int i = 0; i < bzn_ctx_num_layers(c); i++) {
        bzn_layer_info li;
        bzn_ctx_layer(c, i, &li);
        convs += !strncmp(li.op, "conv", 4);
    }
    ck_assert_int_eq(r.n_layers, convs);
    ck_assert_int_eq(calls, convs);
    ck_assert(r.all.logits_error > 0 && r.all.dice >= 0 && r.all.dice <= 1);
    for (int i = 0; i < r.n_layers; i++) {
        ck_assert_ptr_nonnull(r.layers[i].name);
        ck_assert(r.layers[i].dice >= 0 && r.layers[i].dice <= 1);
        if (i) ck_assert(r.layers[i - 1].logits_error >= r.layers[i].logits_error);
    }
    ck_assert(r.layers[0].logits_error > 0 && r.layers[0].logits_error <= r.all.logits_error * 1.5);
    bzn_sensitivity_report_free(&r);
    /* scales that do not name this network: refused */
    free((char *)t->scales[3].name);
    t->scales[3].name = strdup("no.such.layer");
    ck_assert_int_eq(bzn_int8_sensitivity(c, inputs, 2, t, &r, NULL, NULL, &e), BZN_ERR_ARG);
    ck_assert_ptr_eq(r.layers, NULL);
    bzn_calib_table_free(t);
    bzn_calibrator_free(cal);
    free(inputs);
    bzn_ctx_free(c);
}
END_TEST

START_TEST(cli_usage) {
    ck_assert_int_eq(cli("calibrate --help"), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: blazeneo calibrate"));
    ck_assert_ptr_nonnull(strstr(out, "neopolyp-small/calib/images"));
    ck_assert_ptr_nonnull(strstr(out, "dev-test"));
    ck_assert_int_eq(cli("calibrate --images x -o y.cache"), 2);
    ck_assert_ptr_nonnull(strstr(out, "no model"));
    ck_assert_int_eq(cli("calibrate -m " MODEL " -o y.cache"), 2);
    ck_assert_int_eq(cli("calibrate -m " MODEL " --images x"), 2);
    ck_assert_int_eq(cli("calibrate -m " MODEL " --images x -o y --method kl"), 2);
    ck_assert_ptr_nonnull(strstr(out, "unknown method 'kl'"));
    ck_assert_int_eq(cli("calibrate -m " MODEL " --images x -o y --percentile 0"), 2);
    ck_assert_int_eq(cli("calibrate -m " MODEL " --images x -o y -n 0"), 2);
    ck_assert_int_eq(cli("calibrate -m " MODEL " --images x -o y -s banana"), 2);
    ck_assert_int_eq(cli("calibrate --bogus"), 2);
    ck_assert_int_eq(cli("calibrate -m " MODEL " --images /nonexistent -o y.cache"), 1);
    ck_assert_ptr_nonnull(strstr(out, "/nonexistent"));
    /* a file that is not a JPEG: stop, write nothing */
    ck_assert_int_eq(tu_run("mkdir -p '%s/junk' && echo hello > '%s/junk/a.jpg'", tmp, tmp), 0);
    ck_assert_int_eq(cli("calibrate -m " MODEL " --images junk -o junk.cache -s 64"), 1);
    ck_assert_ptr_nonnull(strstr(out, "a.jpg"));
    struct stat st;
    ck_assert_int_ne(stat(tu_path(tmp, "junk.cache"), &st), 0);
}
END_TEST

START_TEST(cli_end_to_end) {
    if (!tu_have_shared() && tu_missing("../shared")) return;
    ck_assert_msg(cli("calibrate -m " MODEL " --images " CALIB " -n 2 -s 64 -o e2e.cache") == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "[2/2]"));
    ck_assert_ptr_nonnull(strstr(out, "calibrated 124 tensors on 2 images at 64x64, method entropy"));
    ck_assert_ptr_nonnull(strstr(out, "amax: smallest"));
    bzn_calib_table *t;
    bzn_error e;
    ck_assert_msg(bzn_calib_cache_read(tu_path(tmp, "e2e.cache"), &t, &e) == BZN_OK, "%s", e.msg);
    ck_assert_int_eq(t->method, BZN_CALIB_ENTROPY);
    ck_assert_int_eq(t->count, 124);
    ck_assert_str_eq(t->scales[0].name, "input");
    bzn_ctx *c = make_ctx(64, 64, 0, 0);
    ck_assert_msg(bzn_calib_cache_check(t, c, &e) == BZN_OK, "%s", e.msg);
    for (int i = 0; i < t->count; i++) ck_assert(t->scales[i].scale > 0.0f);
    bzn_calib_table_free(t);
    bzn_ctx_free(c);

    ck_assert_msg(cli("calibrate -m " MODEL " --images " CALIB " -n 1 -s 64 -q --method percentile --percentile 99.9 "
                      "-o p.cache") == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "method percentile 99.9%"));
    size_t n;
    char *text = (char *)tu_read_file(tu_path(tmp, "p.cache"), &n);
    ck_assert(n > 27 && !strncmp(text, "TRT-7103-LegacyCalibration\ninput: ", 34));
    free(text);
}
END_TEST

/* An INT8 weight file runs exactly as the FP32 model with the same scales does (its int8
 * weights, used in place, are the ones a context would quantize itself); it holds no float
 * weights except those of --keep-fp32 convolutions; it still runs in FP32 (dequantized); it
 * is not quantized twice. */
START_TEST(int8_weight_file) {
    const int h = 64, w = 64;
    bzn_error e;
    bzn_ctx *k = make_ctx(h, w, 1, 0);
    run_random(k, h, w, 5);
    bzn_calibrator *cal;
    bzn_calib_table *t;
    ck_assert_int_eq(bzn_calibrator_create(k, &cal, &e), BZN_OK);
    ck_assert_int_eq(bzn_calibrator_observe(cal, k, &e), BZN_OK);
    ck_assert_int_eq(bzn_calibrator_compute(cal, BZN_CALIB_ENTROPY, 0, &t, &e), BZN_OK);
    bzn_calibrator_free(cal);
    const char *keep = "encoder.base.0,agg2.block_22.1", *path = tu_path(tmp, "file-int8.bzn");
    ck_assert_msg(bzn_quantize_model(model, t->scales, t->count, keep, path, &e) == BZN_OK, "%s", e.msg);
    bzn_model *q;
    ck_assert_msg(bzn_model_open(path, &q, &e) == BZN_OK, "%s", e.msg);
    ck_assert_int_eq(bzn_quantize_model(q, t->scales, t->count, NULL, tu_path(tmp, "twice.bzn"), &e), BZN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "already quantized"));
    bzn_model_info mi, qi;
    bzn_model_get_info(model, &mi);
    bzn_model_get_info(q, &qi);
    ck_assert_int_eq(mi.num_int8_convs, 0);
    ck_assert_int_eq(qi.num_convs, mi.num_convs);
    ck_assert_int_eq(qi.num_int8_convs, qi.num_convs - 2); /* all but the two kept */
    ck_assert_int_eq(qi.num_act_scales, t->count);
    /* the file's precision: what bzn_ctx_default_options picks */
    ck_assert_int_eq(mi.precision, BZN_PRECISION_FP32);
    ck_assert_int_eq(qi.precision, BZN_PRECISION_INT8);
    ck_assert_int_eq(bzn_ctx_default_options(model).precision, BZN_PRECISION_FP32);
    ck_assert_int_eq(bzn_ctx_default_options(q).precision, BZN_PRECISION_INT8);
    /* float weights left in the file: the two kept convolutions' (32x3x3x3 and 32x32x3x3) */
    uint64_t float_weights = 0;
    for (int i = 0; i < bzn_model_num_weights(q); i++) {
        bzn_weight_info wi;
        ck_assert_int_eq(bzn_model_weight(q, i, &wi), BZN_OK);
        if (wi.ndim == 4 && wi.dtype == 0) float_weights += wi.nbytes;
    }
    ck_assert_uint_eq(float_weights, (32 * 3 * 9 + 32 * 32 * 9) * sizeof(float));

    float *x = malloc((size_t)3 * h * w * sizeof *x);
    for (int i = 0; i < 3 * h * w; i++) x[i] = (float)((i * 37) % 101) / 25.0f - 2.0f;
    bzn_ctx_options o = bzn_ctx_default_options(model);
    o.height = h;
    o.width = w;
    bzn_ctx *ctx[4]; /* FP32 model in FP32; INT8 from the FP32 model + scales; the INT8 file; the file in FP32 */
    ck_assert_int_eq(bzn_ctx_create(model, &o, &ctx[0], &e), BZN_OK);
    o.precision = BZN_PRECISION_INT8;
    o.scales = t->scales;
    o.n_scales = t->count;
    o.keep_fp32 = keep;
    ck_assert_msg(bzn_ctx_create(model, &o, &ctx[1], &e) == BZN_OK, "%s", e.msg);
    bzn_ctx_options oq = bzn_ctx_default_options(q);
    oq.height = h;
    oq.width = w;
    oq.precision = BZN_PRECISION_INT8;
    ck_assert_msg(bzn_ctx_create(q, &oq, &ctx[2], &e) == BZN_OK, "%s", e.msg);
    oq.precision = BZN_PRECISION_FP32;
    ck_assert_msg(bzn_ctx_create(q, &oq, &ctx[3], &e) == BZN_OK, "%s", e.msg);
    const float *y[4];
    int c, hh, ww;
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(bzn_run_tensor(ctx[i], x, &e), BZN_OK);
        ck_assert_int_eq(bzn_logits(ctx[i], BZN_OUT_MAIN, &y[i], &c, &hh, &ww, &e), BZN_OK);
    }
    const size_t n = (size_t)c * hh * ww;
    ck_assert_msg(memcmp(y[1], y[2], n * sizeof(float)) == 0, "the INT8 file differs from INT8 with the same scales");
    float range = 0, d1 = 0, d3 = 0; /* FP32 against INT8, and against the dequantized weights in FP32 */
    for (size_t i = 0; i < n; i++) {
        range = fmaxf(range, fabsf(y[0][i]));
        d1 = fmaxf(d1, fabsf(y[0][i] - y[1][i]));
        d3 = fmaxf(d3, fabsf(y[0][i] - y[3][i]));
    }
    fprintf(stderr, "  INT8 file: %.1f KB of float weights; |logits| <= %.2f, FP32 vs INT8 %.3f, vs dequantized FP32 %.3f\n",
            float_weights / 1e3, range, d1, d3);
    ck_assert_msg(d3 > 0 && d3 < 0.1f * range, "dequantized FP32 run: %g of %g", d3, range);
    for (int i = 0; i < 4; i++) bzn_ctx_free(ctx[i]);
    free(x);
    bzn_model_free(q);
    bzn_calib_table_free(t);
    bzn_ctx_free(k);
}
END_TEST

/* bzn_calibrator_compute_progress: the same table as bzn_calibrator_compute, and the callback
 * told, on this thread, how far it got: counts that grow to the number of tensors, each with
 * the name of the last tensor done. Tried with 1 and 2 threads (groups of 4 per thread). */
typedef struct {
    int calls, last_done, total, ok;
    const bzn_calibrator *cal;
    pthread_t thread;
} progress_log;

static void on_progress(void *user, int done, int total, const char *name) {
    progress_log *p = user;
    bzn_calib_tensor_info ti;
    p->ok &= done > p->last_done && done <= total && pthread_equal(p->thread, pthread_self()) &&
             bzn_calibrator_tensor(p->cal, done - 1, &ti) == BZN_OK && name && !strcmp(name, ti.name);
    p->calls++;
    p->last_done = done;
    p->total = total;
}

START_TEST(compute_with_progress) {
    for (int threads = 1; threads <= 2; threads++) {
        bzn_error e;
        bzn_ctx_options o = bzn_ctx_default_options(model);
        o.height = o.width = 64;
        o.keep_intermediates = 1;
        o.threads = threads;
        bzn_ctx *c;
        ck_assert_int_eq(bzn_ctx_create(model, &o, &c, &e), BZN_OK);
        run_random(c, 64, 64, 11);
        bzn_calibrator *cal;
        ck_assert_int_eq(bzn_calibrator_create(c, &cal, &e), BZN_OK);
        ck_assert_int_eq(bzn_calibrator_observe(cal, c, &e), BZN_OK);
        for (int m = 0; m < 3; m++) {
            bzn_calib_table *a, *b;
            progress_log p = {0, 0, 0, 1, cal, pthread_self()};
            ck_assert_int_eq(bzn_calibrator_compute(cal, (bzn_calib_method)m, 0, &a, &e), BZN_OK);
            ck_assert_int_eq(bzn_calibrator_compute_progress(cal, (bzn_calib_method)m, 0, on_progress, &p, &b, &e), BZN_OK);
            const int n = bzn_calibrator_num_tensors(cal);
            ck_assert_msg(p.ok && p.last_done == n && p.total == n && p.calls >= n / (4 * threads) && p.calls <= n,
                          "method %d, %d threads: %d calls, last %d of %d", m, threads, p.calls, p.last_done, p.total);
            ck_assert_int_eq(a->count, b->count);
            ck_assert(memcmp(a->amax, b->amax, (size_t)a->count * sizeof *a->amax) == 0);
            bzn_calib_table_free(a);
            bzn_calib_table_free(b);
        }
        bzn_calib_table *t;
        ck_assert_int_eq(bzn_calibrator_compute_progress(cal, BZN_CALIB_ENTROPY, 0, NULL, NULL, &t, &e), BZN_OK);
        bzn_calib_table_free(t);
        bzn_calibrator_free(cal);
        bzn_ctx_free(c);
    }
}
END_TEST

int main(void) {
    bzn_error e;
    if (bzn_model_open(shipped(), &model, &e) != BZN_OK) {
        fprintf(stderr, "test_calibrate: %s\n", e.msg);
        return 1;
    }
    tmp = tu_tmpdir("calibrate");
    Suite *s = suite_create("calibrate");
    TCase *tc = tu_case(s, "calibration", 900);
    tcase_add_test(tc, golden_histograms);
    tcase_add_test(tc, golden_observations);
    tcase_add_test(tc, histogram_rules);
    tcase_add_test(tc, random_against_reference);
    tcase_add_test(tc, tensor_names);
    tcase_add_test(tc, calibrator_use_and_misuse);
    tcase_add_test(tc, cache_round_trip);
    tcase_add_test(tc, cache_malformed);
    tcase_add_test(tc, cache_names_against_network);
    tcase_add_test(tc, cache_too_many_entries);
    tcase_add_test(tc, sensitivity_ranking);
    tcase_add_test(tc, cli_usage);
    tcase_add_test(tc, cli_end_to_end);
    tcase_add_test(tc, int8_weight_file);
    tcase_add_test(tc, compute_with_progress);
    /* linear time: about 0.3 s (2 s with the sanitizers) when it is, hours when it is not */
    TCase *scale = tu_case(s, "cache at scale", 20);
    tcase_add_test(scale, cache_parse_at_scale);
    const int failed = tu_run_suite(s);
    bzn_model_free(model);
    tu_run("rm -rf '%s'", tmp);
    free(tmp);
    return failed;
}
