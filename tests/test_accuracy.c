/*
 * test_accuracy.c - the shipped model on NeoPolyp-Small dev-test (100 frames never seen in
 * training) must reproduce PyTorch's accuracy (../shared/models/README.md) within 0.002
 * Dice and IoU for seg, neo and non, under the spec's protocol: PIL-style resize to 352,
 * argmax, nearest-neighbour class map back to the mask's size, micro-averaged counts.
 * Skipped when ../shared is absent.
 */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* micro-averaged counts of the context's predictions over dev-test */
static bzn_confusion devtest(bzn_ctx *c) {
    const char *shared = tu_env("BZN_SHARED_DIR");
    char images[2048], masks[2048];
    snprintf(images, sizeof images, "%s/data/neopolyp-small/dev-test/images", shared);
    snprintf(masks, sizeof masks, "%s/data/neopolyp-small/dev-test/masks", shared);
    bzn_error e;
    char *names[512];
    const int n = list_dir(images, names, 512);
    ck_assert_int_eq(n, 100);

    bzn_confusion conf = {0};
    for (int i = 0; i < n; i++) {
        char ip[4096], mp[4096];
        snprintf(ip, sizeof ip, "%s/%s", images, names[i]);
        snprintf(mp, sizeof mp, "%s/%s", masks, names[i]); /* masks share the image's file name */
        bzn_image img, mask;
        ck_assert_msg(bzn_image_load_jpeg(ip, &img, &e) == BZN_OK, "%s", e.msg);
        ck_assert_msg(bzn_image_load_jpeg(mp, &mask, &e) == BZN_OK, "%s", e.msg);
        const size_t np = (size_t)mask.width * mask.height;
        uint8_t *pred = malloc(np), *truth = malloc(np);
        ck_assert_int_eq(bzn_run_rgb(c, img.pixels, img.width, img.height, img.width * 3, &e), BZN_OK);
        ck_assert_int_eq(bzn_class_map(c, pred, mask.width, mask.height, &e), BZN_OK);
        bzn_mask_to_classes(mask.pixels, np, truth);
        bzn_confusion_add(&conf, pred, truth, np);
        free(pred);
        free(truth);
        bzn_image_free(&img);
        bzn_image_free(&mask);
        free(names[i]);
    }
    return conf;
}

static const char *label[3] = {"seg", "neo", "non"};

static void run_devtest(const char *model_path, const char *backend) {
    bzn_error e;
    bzn_model *m;
    ck_assert_msg(bzn_model_open(model_path, &m, &e) == BZN_OK, "%s", e.msg);
    bzn_ctx_options o = bzn_ctx_default_options(m);
    o.backend = backend;
    bzn_ctx *c;
    ck_assert_int_eq(bzn_ctx_create(m, &o, &c, &e), BZN_OK);
    bzn_confusion conf = devtest(c);
    for (int k = 0; k < 3; k++) {
        double dice = bzn_dice(&conf, k), iou = bzn_iou(&conf, k);
        fprintf(stderr, "  %s: Dice %.4f (PyTorch %.4f)  IoU %.4f (PyTorch %.4f)\n", label[k], dice, ref_dice[k], iou,
                ref_iou[k]);
        ck_assert_msg(dice > ref_dice[k] - 0.002 && dice < ref_dice[k] + 0.002, "Dice %s %.4f", label[k], dice);
        ck_assert_msg(iou > ref_iou[k] - 0.002 && iou < ref_iou[k] + 0.002, "IoU %s %.4f", label[k], iou);
    }
    bzn_ctx_free(c);
    bzn_model_free(m);
}

/* INT8 as TensorRT does it (entropy calibration on 16 frames of the calibration set, never
 * dev-test; per-channel weights), through an INT8 weight file: Dice seg within one point of
 * FP32 (the paper's TensorRT INT8 lost 3.6). */
START_TEST(int8_devtest) {
    bzn_error e;
    bzn_model *m;
    ck_assert_int_eq(bzn_model_open(tu_path(tu_env("BZN_SOURCE_DIR"), "models/blazeneo-dha-neopolyp-small-f16.bzn"), &m, &e),
                     BZN_OK);
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
    bzn_calib_table *t;
    ck_assert_int_eq(bzn_calibrator_compute(cal, BZN_CALIB_ENTROPY, 0, &t, &e), BZN_OK);
    char *dir = tu_tmpdir("int8"), path[4096];
    snprintf(path, sizeof path, "%s/int8.bzn", dir);
    ck_assert_msg(bzn_quantize_model(m, t->scales, t->count, NULL, path, &e) == BZN_OK, "%s", e.msg);
    bzn_calib_table_free(t);
    bzn_calibrator_free(cal);
    bzn_ctx_free(c);

    /* FP32 and INT8 side by side */
    o = bzn_ctx_default_options(m);
    ck_assert_int_eq(bzn_ctx_create(m, &o, &c, &e), BZN_OK);
    bzn_confusion fp = devtest(c);
    bzn_ctx_free(c);
    bzn_model *q;
    ck_assert_msg(bzn_model_open(path, &q, &e) == BZN_OK, "%s", e.msg);
    o = bzn_ctx_default_options(q);
    o.precision = BZN_PRECISION_INT8;
    ck_assert_msg(bzn_ctx_create(q, &o, &c, &e) == BZN_OK, "%s", e.msg);
    bzn_confusion i8 = devtest(c);
    for (int k = 0; k < 3; k++)
        fprintf(stderr, "  %s: Dice FP32 %.4f INT8 %.4f   IoU FP32 %.4f INT8 %.4f\n", label[k], bzn_dice(&fp, k),
                bzn_dice(&i8, k), bzn_iou(&fp, k), bzn_iou(&i8, k));
    ck_assert_msg(fabs(bzn_dice(&i8, BZN_METRIC_SEG) - bzn_dice(&fp, BZN_METRIC_SEG)) < 0.01, "INT8 Dice seg %.4f vs %.4f",
                  bzn_dice(&i8, BZN_METRIC_SEG), bzn_dice(&fp, BZN_METRIC_SEG));
    bzn_ctx_free(c);
    bzn_model_free(q);
    bzn_model_free(m);
    remove(path);
    remove(dir);
    free(dir);
}
END_TEST

/* the shipped f16-stored model (the weights are exactly on the f16 grid, so it is the same network) */
START_TEST(shipped_model_devtest) {
    run_devtest(tu_path(tu_env("BZN_SOURCE_DIR"), "models/blazeneo-dha-neopolyp-small-f16.bzn"), "cpu");
}
END_TEST

int main(void) {
    if (!tu_have_shared()) {
        fprintf(stderr, "test_accuracy: skipped (../shared with the model and dev-test data is absent)\n");
        return TU_SKIP;
    }
    Suite *s = suite_create("accuracy");
    TCase *tc = tu_case(s, "dev-test", 1200);
    tcase_add_test(tc, shipped_model_devtest);
    tcase_add_test(tc, int8_devtest);
    return tu_run_suite(s);
}
