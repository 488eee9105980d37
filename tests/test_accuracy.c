/*
 * test_accuracy.c - the shipped model on NeoPolyp-Small dev-test (100 frames never seen in
 * training) must reproduce PyTorch's accuracy (../shared/models/README.md) within 0.002
 * Dice and IoU for seg, neo and non, under the spec's protocol: PIL-style resize to 352,
 * argmax, nearest-neighbour class map back to the mask's size, micro-averaged counts; and
 * INT8 (16 calibration frames, an INT8 weight file) within a point of FP32. FP32 and INT8 run
 * over dev-test in one pass; progress every 10 frames on stderr. Skipped when ../shared is
 * absent.
 */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blazeneo.h"
#include "testutil.h"

/* PyTorch 1.13 FP32 reference, ../shared/models/README.md */
static const double ref_dice[3] = {0.8414, 0.8721, 0.3231};
static const double ref_iou[3] = {0.7263, 0.7732, 0.1927};

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* the sorted file names of a folder; returns how many */
static int list_dir(const char *dir, char **names, int max) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < max)
        if (de->d_name[0] != '.') names[n++] = strdup(de->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    return n;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The micro-averaged counts of each context's predictions over dev-test: every frame and mask
 * decoded once and run through all the contexts; progress on stderr every 10 frames. */
static void devtest(bzn_ctx *const *ctx, int nctx, bzn_confusion *conf, const char *what) {
    const char *shared = tu_env("BZN_SHARED_DIR");
    char images[2048], masks[2048];
    snprintf(images, sizeof images, "%s/data/neopolyp-small/dev-test/images", shared);
    snprintf(masks, sizeof masks, "%s/data/neopolyp-small/dev-test/masks", shared);
    bzn_error e;
    char *names[512];
    const int n = list_dir(images, names, 512);
    ck_assert_int_eq(n, 100);
    memset(conf, 0, (size_t)nctx * sizeof *conf);
    const double t0 = now_s();
    for (int i = 0; i < n; i++) {
        char ip[4096], mp[4096];
        snprintf(ip, sizeof ip, "%s/%s", images, names[i]);
        snprintf(mp, sizeof mp, "%s/%s", masks, names[i]); /* masks share the image's file name */
        bzn_image img, mask;
        ck_assert_msg(bzn_image_load_jpeg(ip, &img, &e) == BZN_OK, "%s", e.msg);
        ck_assert_msg(bzn_image_load_jpeg(mp, &mask, &e) == BZN_OK, "%s", e.msg);
        const size_t np = (size_t)mask.width * mask.height;
        uint8_t *pred = malloc(np), *truth = malloc(np);
        ck_assert(pred && truth);
        bzn_mask_to_classes(mask.pixels, np, truth);
        for (int k = 0; k < nctx; k++) {
            ck_assert_int_eq(bzn_run_rgb(ctx[k], img.pixels, img.width, img.height, img.width * 3, &e), BZN_OK);
            ck_assert_int_eq(bzn_class_map(ctx[k], pred, mask.width, mask.height, &e), BZN_OK);
            bzn_confusion_add(&conf[k], pred, truth, np);
        }
        free(pred);
        free(truth);
        bzn_image_free(&img);
        bzn_image_free(&mask);
        free(names[i]);
        if ((i + 1) % 10 == 0 || i + 1 == n)
            fprintf(stderr, "  dev-test %s: %d/%d frames, %.0f s\n", what, i + 1, n, now_s() - t0);
    }
}

static const char *label[3] = {"seg", "neo", "non"};

/* INT8 as TensorRT does it (entropy calibration on 16 frames of the calibration set, never
 * dev-test; per-channel weights) into an INT8 weight file, which runs INT8 by default. */
static char *make_int8_file(bzn_model *m) {
    bzn_error e;
    const double t0 = now_s();
    bzn_ctx_options o = bzn_ctx_default_options(m);
    o.keep_intermediates = 1;
    bzn_ctx *c;
    ck_assert_int_eq(bzn_ctx_create(m, &o, &c, &e), BZN_OK);
    bzn_calibrator *cal;
    ck_assert_int_eq(bzn_calibrator_create(c, &cal, &e), BZN_OK);
    char calib[2048], *names[512];
    snprintf(calib, sizeof calib, "%s/data/neopolyp-small/calib/images", tu_env("BZN_SHARED_DIR"));
    const int n = list_dir(calib, names, 512);
    ck_assert_int_ge(n, 16);
    for (int i = 0; i < n; i++) {
        if (i < 16) {
            bzn_image img;
            ck_assert_int_eq(bzn_image_load_jpeg(tu_path(calib, names[i]), &img, &e), BZN_OK);
            ck_assert_int_eq(bzn_run_rgb(c, img.pixels, img.width, img.height, img.width * 3, &e), BZN_OK);
            ck_assert_msg(bzn_calibrator_observe(cal, c, &e) == BZN_OK, "%s", e.msg);
            bzn_image_free(&img);
        }
        free(names[i]);
    }
    const double t1 = now_s();
    bzn_calib_table *t;
    ck_assert_int_eq(bzn_calibrator_compute(cal, BZN_CALIB_ENTROPY, 0, &t, &e), BZN_OK);
    char *dir = tu_tmpdir("int8"), *path = malloc(4096);
    ck_assert(dir && path);
    snprintf(path, 4096, "%s/int8.bzn", dir);
    free(dir);
    ck_assert_msg(bzn_quantize_model(m, t->scales, t->count, NULL, path, &e) == BZN_OK, "%s", e.msg);
    fprintf(stderr, "  calibrated on 16 frames in %.0f s, thresholds and INT8 file in %.0f s\n", t1 - t0, now_s() - t1);
    bzn_calib_table_free(t);
    bzn_calibrator_free(cal);
    bzn_ctx_free(c);
    return path;
}

/* The shipped f16-stored model (the weights are exactly on the f16 grid, so it is the same
 * network) must reproduce PyTorch's FP32 accuracy within 0.002; INT8, from an INT8 weight file,
 * must keep Dice seg within one point of FP32 (the paper's TensorRT INT8 lost 3.6). FP32 and
 * INT8 run side by side over dev-test, each frame decoded once. */
START_TEST(devtest_fp32_and_int8) {
    bzn_error e;
    bzn_model *m, *q;
    ck_assert_int_eq(bzn_model_open(tu_path(tu_env("BZN_SOURCE_DIR"), "models/blazeneo-dha-neopolyp-small-f16.bzn"), &m, &e),
                     BZN_OK);
    char *path = make_int8_file(m);
    ck_assert_msg(bzn_model_open(path, &q, &e) == BZN_OK, "%s", e.msg);
    bzn_ctx *ctx[2];
    bzn_ctx_options o = bzn_ctx_default_options(m);
    ck_assert_int_eq(o.precision, BZN_PRECISION_FP32);
    o.backend = "cpu";
    ck_assert_int_eq(bzn_ctx_create(m, &o, &ctx[0], &e), BZN_OK);
    o = bzn_ctx_default_options(q); /* an INT8 weight file runs INT8 without being told */
    ck_assert_int_eq(o.precision, BZN_PRECISION_INT8);
    ck_assert_msg(bzn_ctx_create(q, &o, &ctx[1], &e) == BZN_OK, "%s", e.msg);
    bzn_confusion conf[2];
    devtest(ctx, 2, conf, "FP32 + INT8");
    const bzn_confusion *fp = &conf[0], *i8 = &conf[1];
    for (int k = 0; k < 3; k++)
        fprintf(stderr, "  %s: Dice FP32 %.4f (PyTorch %.4f) INT8 %.4f   IoU FP32 %.4f (PyTorch %.4f) INT8 %.4f\n", label[k],
                bzn_dice(fp, k), ref_dice[k], bzn_dice(i8, k), bzn_iou(fp, k), ref_iou[k], bzn_iou(i8, k));
    for (int k = 0; k < 3; k++) {
        const double dice = bzn_dice(fp, k), iou = bzn_iou(fp, k);
        ck_assert_msg(dice > ref_dice[k] - 0.002 && dice < ref_dice[k] + 0.002, "FP32 Dice %s %.4f", label[k], dice);
        ck_assert_msg(iou > ref_iou[k] - 0.002 && iou < ref_iou[k] + 0.002, "FP32 IoU %s %.4f", label[k], iou);
    }
    ck_assert_msg(fabs(bzn_dice(i8, BZN_METRIC_SEG) - bzn_dice(fp, BZN_METRIC_SEG)) < 0.01, "INT8 Dice seg %.4f vs %.4f",
                  bzn_dice(i8, BZN_METRIC_SEG), bzn_dice(fp, BZN_METRIC_SEG));
    bzn_ctx_free(ctx[0]);
    bzn_ctx_free(ctx[1]);
    bzn_model_free(q);
    bzn_model_free(m);
    remove(path);
    char *slash = strrchr(path, '/');
    *slash = 0;
    remove(path);
    free(path);
}
END_TEST

int main(void) {
    if (!tu_have_shared()) {
        return tu_skip("test_accuracy: needs ../shared (the model and the NeoPolyp-Small dev-test data)");
    }
    Suite *s = suite_create("accuracy");
    TCase *tc = tu_case(s, "dev-test", 1200);
    tcase_add_test(tc, devtest_fp32_and_int8);
    return tu_run_suite(s);
}
