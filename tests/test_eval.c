/*
 * test_eval.c - `blazeneo eval` and the metrics under it.
 *
 *  - the library's counting (bzn_mask_to_classes, bzn_confusion_add, bzn_dice, bzn_iou)
 *    against confusion counts worked out by hand, empty sets included;
 *  - the "undefined" (yellow) label of cli/report.c, also by hand;
 *  - the command end to end on three small frames with masks (tests/data/eval: the
 *    repository's sample frames, downscaled, with their dev-test masks and one yellow
 *    blob): JSON complete and equal to the same protocol computed here in-process, the
 *    per-image CSV, several configurations side by side;
 *  - every way the input can be wrong: the file is named, the exit status is 1 and no
 *    metrics are printed;
 *  - the HTML report: every thumbnail present, worst Dice first, and (when chromium is
 *    installed) rendered in a headless browser with every image loaded.
 */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blazeneo.h"
#include "testutil.h"

/* The CLI is not a library: compile the file under test in, to check its counting rules. */
#include "report.c"

static const char *cli, *src;
static char *tmp;
static char out[1 << 16], err[1 << 16]; /* stdout and stderr of the last run() */
static int run_rc;
/* `blazeneo ARGS` in tmp: stdout into out, stderr into err; the exit status */
#define run(...)                                                                                   \
    (run_rc = tu_cli_io(tmp, NULL, "out.txt", err, sizeof err, __VA_ARGS__),                        \
     tu_slurp(tu_path(tmp, "out.txt"), out, sizeof out), run_rc)



#define MODEL "\"$BZN_SOURCE_DIR/models/blazeneo-dha-neopolyp-small-f16.bzn\""
#define FIX "\"$BZN_SOURCE_DIR/tests/data/eval\""

/* A fresh copy of the fixture set: DIR/images (a.jpg, b.jpeg, c.jpg), DIR/masks. */
static void make_set(const char *dir) {
    ck_assert_int_eq(tu_run("cd '%s' && rm -rf %s && mkdir -p %s && cp -r " FIX "/images " FIX "/masks %s/", tmp, dir,
                            dir, dir),
                     0);
}

/* ---- the library's metrics, by hand ------------------------------------------------- */

/* 2 x 3 pixels. Ground truth colours (thresholds at their edges) and prediction:
 *   truth  neo  neo  non        pred  neo  non  non
 *          bg   bg   non              neo  bg   bg
 * seg: truth polyp {0,1,2,5}, pred polyp {0,1,2,3}: TP 3, FP 1 (3), FN 1 (5)
 * neo: truth {0,1}, pred {0,3}: TP 1, FP 1, FN 1     non: truth {2,5}, pred {1,2}: TP 1, FP 1, FN 1 */
START_TEST(metrics_by_hand) {
    const uint8_t rgb[6 * 3] = {
        128, 0,   0,  /* R >= 128, G < 128: neo */
        255, 127, 90, /* still neo: G just under */
        127, 128, 0,  /* R < 128, G >= 128: non */
        127, 127, 0,  /* neither channel on: background */
        128, 128, 0,  /* both on (yellow): background for the library */
        0,   255, 255 /* non */
    };
    const uint8_t want_truth[6] = {0, 0, 1, 2, 2, 1};
    const uint8_t pred[6] = {0, 1, 1, 0, 2, 2};
    uint8_t truth[6];
    bzn_mask_to_classes(rgb, 6, truth);
    ck_assert_mem_eq(truth, want_truth, 6);

    bzn_confusion c = {0};
    bzn_confusion_add(&c, pred, truth, 6);
    const uint64_t tp[3] = {3, 1, 1}, fp[3] = {1, 1, 1}, fn[3] = {1, 1, 1};
    for (int m = 0; m < 3; m++) {
        ck_assert_uint_eq(c.tp[m], tp[m]);
        ck_assert_uint_eq(c.fp[m], fp[m]);
        ck_assert_uint_eq(c.fn[m], fn[m]);
    }
    ck_assert_double_eq_tol(bzn_dice(&c, BZN_METRIC_SEG), 6.0 / 8.0, 1e-12);
    ck_assert_double_eq_tol(bzn_iou(&c, BZN_METRIC_SEG), 3.0 / 5.0, 1e-12);
    ck_assert_double_eq_tol(bzn_dice(&c, BZN_METRIC_NEO), 2.0 / 4.0, 1e-12);
    ck_assert_double_eq_tol(bzn_iou(&c, BZN_METRIC_NEO), 1.0 / 3.0, 1e-12);
    ck_assert_double_eq_tol(bzn_dice(&c, BZN_METRIC_NON), 0.5, 1e-12);
    ck_assert_double_eq_tol(bzn_iou(&c, BZN_METRIC_NON), 1.0 / 3.0, 1e-12);

    /* micro-averaging: counts add up before dividing. A second image where all 6 truth
     * pixels are missed adds FN 6 to seg (4 + 2 more than before: all six are polyp). */
    const uint8_t all_neo[6] = {0, 0, 0, 0, 0, 0}, none[6] = {2, 2, 2, 2, 2, 2};
    bzn_confusion_add(&c, none, all_neo, 6);
    ck_assert_uint_eq(c.fn[BZN_METRIC_SEG], 1 + 6);
    ck_assert_uint_eq(c.fn[BZN_METRIC_NEO], 1 + 6);
    ck_assert_double_eq_tol(bzn_dice(&c, BZN_METRIC_SEG), 6.0 / (6 + 1 + 7), 1e-12);
    ck_assert_double_eq_tol(bzn_iou(&c, BZN_METRIC_NEO), 1.0 / (1 + 1 + 7), 1e-12);
}
END_TEST

START_TEST(metrics_empty_sets) {
    const uint8_t bg[4] = {2, 2, 2, 2}, neo[4] = {0, 0, 0, 0}, non[4] = {1, 1, 1, 1};
    bzn_confusion c = {0};
    /* nothing at all: nothing to find and nothing found scores 1 */
    for (int m = 0; m < 3; m++) {
        ck_assert_double_eq(bzn_dice(&c, m), 1.0);
        ck_assert_double_eq(bzn_iou(&c, m), 1.0);
    }
    bzn_confusion_add(&c, bg, bg, 4); /* a frame without polyp, correctly empty */
    bzn_confusion_add(&c, bg, bg, 0); /* zero pixels change nothing */
    for (int m = 0; m < 3; m++) {
        ck_assert_uint_eq(c.tp[m] + c.fp[m] + c.fn[m], 0);
        ck_assert_double_eq(bzn_dice(&c, m), 1.0);
    }
    /* empty truth, polyp predicted: all false positives, 0 */
    bzn_confusion f = {0};
    bzn_confusion_add(&f, neo, bg, 4);
    ck_assert_uint_eq(f.fp[BZN_METRIC_SEG], 4);
    ck_assert_uint_eq(f.fp[BZN_METRIC_NEO], 4);
    ck_assert_double_eq(bzn_dice(&f, BZN_METRIC_SEG), 0.0);
    ck_assert_double_eq(bzn_iou(&f, BZN_METRIC_NEO), 0.0);
    ck_assert_double_eq(bzn_dice(&f, BZN_METRIC_NON), 1.0); /* no non anywhere */
    /* polyp present, nothing predicted: all false negatives, 0 */
    bzn_confusion g = {0};
    bzn_confusion_add(&g, bg, non, 4);
    ck_assert_uint_eq(g.fn[BZN_METRIC_NON], 4);
    ck_assert_double_eq(bzn_dice(&g, BZN_METRIC_NON), 0.0);
    ck_assert_double_eq(bzn_iou(&g, BZN_METRIC_SEG), 0.0);
    /* the right polyp, the wrong class: seg perfect, neo and non 0 */
    bzn_confusion h = {0};
    bzn_confusion_add(&h, non, neo, 4);
    ck_assert_double_eq(bzn_dice(&h, BZN_METRIC_SEG), 1.0);
    ck_assert_double_eq(bzn_dice(&h, BZN_METRIC_NEO), 0.0);
    ck_assert_double_eq(bzn_dice(&h, BZN_METRIC_NON), 0.0);
}
END_TEST

/* ---- the undefined label (cli/report.c) --------------------------------------------- */

/* 2 x 3, with two undefined (yellow) ground-truth pixels:
 *   truth  neo  und  non       pred  neo  neo  non
 *          bg   und  bg              non  bg   bg
 * seg (undefined is polyp): truth {0,1,2,4}, pred {0,1,2,3}: TP 3, FP 1, FN 1
 * neo, pixels 1 and 4 left out: truth {0}, pred {0}: TP 1, FP 0, FN 0
 * non, same: truth {2}, pred {2,3}: TP 1, FP 1, FN 0 */
START_TEST(undefined_by_hand) {
    const uint8_t rgb[6 * 3] = {255, 0, 0, 255, 255, 0, 0, 255, 0, 0, 0, 0, 128, 128, 128, 20, 20, 20};
    const uint8_t pred[6] = {0, 0, 1, 1, 2, 2};
    uint8_t truth[6];
    bzn_mask_to_classes(rgb, 6, truth);
    const uint8_t spec_truth[6] = {0, 2, 1, 2, 2, 2};
    ck_assert_mem_eq(truth, spec_truth, 6);
    ck_assert_uint_eq(bzn_mask_to_classes_undefined(rgb, 6, truth), 2);
    const uint8_t want[6] = {0, BZN_CLASS_UNDEFINED, 1, 2, BZN_CLASS_UNDEFINED, 2};
    ck_assert_mem_eq(truth, want, 6);

    bzn_confusion c = {0};
    bzn_confusion_add(&c, pred, truth, 6);
    const uint64_t tp[3] = {3, 1, 1}, fp[3] = {1, 0, 1}, fn[3] = {1, 0, 0};
    for (int m = 0; m < 3; m++) {
        ck_assert_uint_eq(c.tp[m], tp[m]);
        ck_assert_uint_eq(c.fp[m], fp[m]);
        ck_assert_uint_eq(c.fn[m], fn[m]);
    }
    ck_assert_double_eq_tol(bzn_dice(&c, BZN_METRIC_NEO), 1.0, 1e-12);
    ck_assert_double_eq_tol(bzn_dice(&c, BZN_METRIC_NON), 2.0 / 3.0, 1e-12);

    /* without undefined pixels: the reference protocol, counted by hand */
    uint8_t p[997], t[997];
    uint32_t x = 12345;
    for (int i = 0; i < 997; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = (uint8_t)((x >> 24) % 3);
        t[i] = (uint8_t)((x >> 16) % 3);
    }
    bzn_confusion a = {0}, b = {0}, s = {0};
    bzn_confusion_add(&a, p, t, 997);
    for (int i = 0; i < 997; i++) {
        const int ps = p[i] != 2, ts = t[i] != 2;
        b.tp[0] += ps && ts, b.fp[0] += ps && !ts, b.fn[0] += !ps && ts;
        for (int k = 0; k < 2; k++)
            b.tp[1 + k] += p[i] == k && t[i] == k, b.fp[1 + k] += p[i] == k && t[i] != k,
                b.fn[1 + k] += p[i] != k && t[i] == k;
    }
    ck_assert_mem_eq(&a, &b, sizeof a);
    bzn_confusion_merge(&s, &a);
    bzn_confusion_merge(&s, &a);
    ck_assert_uint_eq(s.tp[1], 2 * a.tp[1]);
    ck_assert_uint_eq(s.fn[2], 2 * a.fn[2]);
}
END_TEST

/* ---- end to end ------------------------------------------------------------------------ */

/* The number after "key": in text (first occurrence); NAN when absent. */
static double json_num(const char *text, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(text, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

/* Minimal well-formedness: brackets balance outside strings, an array at the top. */
static int json_balanced(const char *s) {
    int depth = 0, in_str = 0;
    while (*s == ' ' || *s == '\n') s++;
    if (*s != '[') return 0;
    for (; *s; s++) {
        if (in_str) {
            if (*s == '\\' && s[1]) s++;
            else if (*s == '"') in_str = 0;
        } else if (*s == '"') in_str = 1;
        else if (*s == '[' || *s == '{') depth++;
        else if (*s == ']' || *s == '}') {
            if (--depth < 0) return 0;
        }
    }
    return depth == 0 && !in_str;
}

/* The protocol in-process on the fixture set: counts of the set under `rule`. */
static void protocol_here(int size, eval_undefined_rule rule, bzn_confusion *total, uint64_t *undefined) {
    static const char *const images[3] = {"a.jpg", "b.jpeg", "c.jpg"}, *const masks[3] = {"a.jpg", "b.jpg", "c.jpg"};
    bzn_error e;
    bzn_model *m;
    ck_assert_msg(bzn_model_open(tu_path(src, "models/blazeneo-dha-neopolyp-small-f16.bzn"), &m, &e) == BZN_OK, "%s",
                  e.msg);
    bzn_ctx_options o = bzn_ctx_default_options(m);
    o.width = o.height = size;
    o.threads = 1;
    bzn_ctx *c;
    ck_assert_int_eq(bzn_ctx_create(m, &o, &c, &e), BZN_OK);
    memset(total, 0, sizeof *total);
    *undefined = 0;
    for (int i = 0; i < 3; i++) {
        char ip[4096], mp[4096];
        snprintf(ip, sizeof ip, "%s/tests/data/eval/images/%s", src, images[i]);
        snprintf(mp, sizeof mp, "%s/tests/data/eval/masks/%s", src, masks[i]);
        bzn_image img, mask;
        ck_assert_msg(bzn_image_load_jpeg(ip, &img, &e) == BZN_OK, "%s", e.msg);
        ck_assert_msg(bzn_image_load_jpeg(mp, &mask, &e) == BZN_OK, "%s", e.msg);
        const size_t n = (size_t)mask.width * mask.height;
        uint8_t *pred = malloc(n), *truth = malloc(n);
        ck_assert_int_eq(bzn_run_rgb(c, img.pixels, img.width, img.height, img.width * 3, &e), BZN_OK);
        ck_assert_int_eq(bzn_class_map(c, pred, mask.width, mask.height, &e), BZN_OK);
        if (rule == EVAL_UNDEFINED_NONE) /* test_accuracy's protocol */
            bzn_mask_to_classes(mask.pixels, n, truth);
        else
            *undefined += bzn_mask_to_classes_undefined(mask.pixels, n, truth);
        bzn_confusion_add(total, pred, truth, n);
        free(pred);
        free(truth);
        bzn_image_free(&img);
        bzn_image_free(&mask);
    }
    bzn_ctx_free(c);
    bzn_model_free(m);
}

/* The JSON object of configuration `label` (backend) checked against counts computed here. */
static void check_json_against(const char *json, const char *backend, const bzn_confusion *want, uint64_t undefined) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"backend\": \"%s\"", backend);
    const char *obj = strstr(json, pat);
    ck_assert_msg(obj != NULL, "no %s object in %s", backend, json);
    static const char *const keys[] = {"dice_seg", "dice_neo", "dice_non", "iou_seg", "iou_neo", "iou_non"};
    for (int k = 0; k < 6; k++) {
        double v = json_num(obj, keys[k]);
        double w = k < 3 ? bzn_dice(want, k) : bzn_iou(want, k - 3);
        ck_assert_msg(fabs(v - w) < 1.5e-6, "%s %s: eval %.6f, in-process %.6f", backend, keys[k], v, w);
    }
    ck_assert_double_eq(json_num(obj, "images"), 3);
    ck_assert_double_eq(json_num(obj, "undefined_pixels"), (double)undefined);
    /* the raw counts: "seg": {"tp": ... */
    for (int m = 0; m < 3; m++) {
        snprintf(pat, sizeof pat, "\"%s\": {", metric_name[m]);
        const char *q = strstr(obj, pat);
        ck_assert_ptr_nonnull(q);
        ck_assert_double_eq(json_num(q, "tp"), (double)want->tp[m]);
        ck_assert_double_eq(json_num(q, "fp"), (double)want->fp[m]);
        ck_assert_double_eq(json_num(q, "fn"), (double)want->fn[m]);
    }
}

static void check_json_valid(const char *path) {
    ck_assert_msg(json_balanced(out), "not JSON: %s", out);
    if (tu_have_python("json")) {
        ck_assert_int_eq(tu_run("\"$BZN_PYTHON\" -c 'import json,sys\n"
                                "d = json.load(open(sys.argv[1]))\n"
                                "keys = \"dice_seg dice_neo dice_non iou_seg iou_neo iou_non images backend precision "
                                "model size ms_per_image\".split()\n"
                                "assert isinstance(d, list) and d and all(k in o for o in d for k in keys), d' '%s'",
                                path),
                         0);
    }
}

START_TEST(eval_matches_protocol) {
    make_set("set");
    ck_assert_int_eq(tu_run("echo notes > '%s/set/images/notes.txt' && cp '%s/set/masks/a.jpg' '%s/set/masks/zz.jpg'",
                            tmp, tmp, tmp),
                     0);
    ck_assert_int_eq(run("eval -q -t 1 -s 128 -m " MODEL " --images set/images --masks set/masks --json --csv scores.csv"), 0);
    check_json_valid(tu_path(tmp, "out.txt"));
    ck_assert_ptr_nonnull(strstr(err, "ignored")); /* the stray text file is mentioned, not evaluated */
    ck_assert_ptr_nonnull(strstr(err, "1 mask in set/masks without an image"));
    static const char *const keys[] = {"\"model\"", "\"backend\": \"cpu\"", "\"precision\": \"fp32\"",
                                       "\"size\": \"128x128\"", "\"images\": 3", "\"ms_per_image\"", "\"dice_seg\"",
                                       "\"iou_non\"", "\"undefined\": \"yellow\""};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) ck_assert_msg(strstr(out, keys[i]), "%s missing", keys[i]);

    bzn_confusion want;
    uint64_t undefined;
    protocol_here(128, EVAL_UNDEFINED_YELLOW, &want, &undefined);
    ck_assert_uint_gt(undefined, 1000); /* c.jpg's yellow blob */
    check_json_against(out, "cpu", &want, undefined);

    /* the CSV: header, one row per image, written in place (no temporary left) */
    char csv[1 << 14];
    tu_slurp(tu_path(tmp, "scores.csv"), csv, sizeof csv);
    ck_assert_msg(!strncmp(csv, "image,mask,config,", 18), "%s", csv);
    ck_assert_ptr_nonnull(strstr(csv, "\na.jpg,a.jpg,cpu/fp32,"));
    ck_assert_ptr_nonnull(strstr(csv, "\nb.jpeg,b.jpg,cpu/fp32,")); /* matched by stem */
    ck_assert_ptr_nonnull(strstr(csv, "\nc.jpg,c.jpg,cpu/fp32,"));
    int lines = 0;
    for (const char *p = csv; *p; p++) lines += *p == '\n';
    ck_assert_int_eq(lines, 4);
    ck_assert_int_eq(tu_run("ls '%s' | grep -q tmp", tmp), 1);

    /* --undefined none: exactly the spec's protocol as the library runs it (test_accuracy) */
    ck_assert_int_eq(run("eval -q -t 1 -s 128 -m " MODEL " --images set/images --masks set/masks --json --undefined none"), 0);
    protocol_here(128, EVAL_UNDEFINED_NONE, &want, &undefined);
    check_json_against(out, "cpu", &want, 0);
    ck_assert_ptr_nonnull(strstr(out, "\"undefined\": \"none\""));

    /* the table */
    ck_assert_int_eq(run("eval -t 1 -s 128 -m " MODEL " --images set/images --masks set/masks"), 0);
    ck_assert_ptr_nonnull(strstr(out, "Dice seg  Dice neo  Dice non   IoU seg   IoU neo   IoU non  images  ms/image"));
    ck_assert_ptr_nonnull(strstr(out, "\ncpu/fp32 "));
    ck_assert_ptr_nonnull(strstr(err, "[3/3]")); /* progress on stderr */
}
END_TEST

/* Several configurations, side by side; the report for them. */
START_TEST(eval_configurations_and_report) {
    make_set("set2");
    ck_assert_int_eq(run("eval -q -t 1 -s 64 -m " MODEL " --images set2/images --masks set2/masks -b cpu -b ref -b cpu "
                         "-p fp32 -p fp32 --json --csv per-image.csv --report rep"),
                     0);
    check_json_valid(tu_path(tmp, "out.txt"));
    int objects = 0;
    for (const char *p = strstr(out, "\"backend\""); p; p = strstr(p + 1, "\"backend\"")) objects++;
    ck_assert_int_eq(objects, 2); /* cpu/fp32 and ref/fp32: repeated options count once */
    bzn_confusion want;
    uint64_t undefined;
    protocol_here(64, EVAL_UNDEFINED_YELLOW, &want, &undefined);
    check_json_against(out, "cpu", &want, undefined);
    const char *ref = strstr(out, "\"backend\": \"ref\"");
    ck_assert_ptr_nonnull(ref);
    ck_assert(fabs(json_num(ref, "dice_seg") - bzn_dice(&want, 0)) < 2e-3); /* another backend, same network */

    /* the report: 3 images x (frame, truth, 2 x (prediction, overlay)) thumbnails */
    struct stat st;
    ck_assert_int_eq(stat(tu_path(tmp, "rep/index.html"), &st), 0);
    ck_assert_int_eq(tu_run("test $(ls '%s/rep/img' | grep -c 'png$') -eq 18", tmp), 0);
    ck_assert_int_eq(tu_run("cd '%s' && ls -A rep rep/img | grep -q tmp", tmp), 1);
    char html[1 << 16];
    tu_slurp(tu_path(tmp, "rep/index.html"), html, sizeof html);
    ck_assert_ptr_nonnull(strstr(html, "<table class=\"metrics\">"));
    ck_assert_ptr_nonnull(strstr(html, "ref/fp32"));
    ck_assert_msg(!strstr(html, "http://") && !strstr(html, "https://"), "the page must not load anything remote");
    /* every <img> names a file that exists */
    int imgs = 0;
    for (const char *p = strstr(html, "<img src=\""); p; p = strstr(p + 1, "<img src=\"")) {
        char name[256];
        ck_assert_int_eq(sscanf(p + 10, "%255[^\"]", name), 1);
        ck_assert_msg(stat(tu_path(tmp, tu_path("rep", name)), &st) == 0 && st.st_size > 100, "%s missing", name);
        imgs++;
    }
    ck_assert_int_eq(imgs, 18);
    /* worst first: by the CSV's per-image Dice seg of the first configuration (cpu/fp32) */
    char csv[1 << 14];
    tu_slurp(tu_path(tmp, "per-image.csv"), csv, sizeof csv);
    static const char *const names[3] = {"a.jpg", "b.jpeg", "c.jpg"};
    double dice[3];
    for (int i = 0; i < 3; i++) {
        char row[64];
        snprintf(row, sizeof row, "\n%s,", names[i]);
        const char *p = strstr(csv, row);
        ck_assert_ptr_nonnull(p);
        ck_assert_ptr_nonnull(strstr(p, "cpu/fp32,cpu,fp32,"));
        p = strstr(p, "cpu/fp32,cpu,fp32,") + strlen("cpu/fp32,cpu,fp32,");
        int w, h;
        ck_assert_int_eq(sscanf(p, "%d,%d,%lf", &w, &h, &dice[i]), 3);
    }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            char ni[64], nj[64];
            snprintf(ni, sizeof ni, ">%s<", names[i]);
            snprintf(nj, sizeof nj, ">%s<", names[j]);
            if (dice[i] < dice[j]) ck_assert_msg(strstr(html, ni) < strstr(html, nj), "%s before %s", names[i], names[j]);
        }

    /* rendered in a real browser, when one is installed */
    if (tu_run("command -v chromium >/dev/null 2>&1") != 0 && tu_missing("chromium (the report is not rendered)"))
        return;
    const char *flags = "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
                        "--disable-background-networking --disable-component-update --disable-sync "
                        "--disable-dev-shm-usage";
    ck_assert_int_eq(tu_run("cd '%s' && mkdir -p chrome && HOME=\"$PWD/chrome\" timeout 180 chromium %s "
                            "--user-data-dir=\"$PWD/chrome/profile\" --dump-dom \"file://$PWD/rep/index.html\" "
                            "> dom.html 2> chrome.log",
                            tmp, flags),
                     0);
    char dom[1 << 16];
    tu_slurp(tu_path(tmp, "dom.html"), dom, sizeof dom);
    ck_assert_msg(strstr(dom, "data-images-loaded=\"18/18\""), "not every image loaded: %.300s",
                  strstr(dom, "<body") ? strstr(dom, "<body") : dom);
    ck_assert_int_eq(tu_run("cd '%s' && HOME=\"$PWD/chrome\" timeout 180 chromium %s --user-data-dir=\"$PWD/chrome/profile\" "
                            "--hide-scrollbars --window-size=1200,3000 --screenshot=\"$PWD/report.png\" "
                            "\"file://$PWD/rep/index.html\" >> chrome.log 2>&1",
                            tmp, flags),
                     0);
    size_t n = 0;
    uint8_t *png = tu_read_file(tu_path(tmp, "report.png"), &n);
    ck_assert_msg(png && n > 24 && !memcmp(png, "\x89PNG\r\n\x1a\n", 8), "no screenshot");
    const int w = png[16] << 24 | png[17] << 16 | png[18] << 8 | png[19];
    const int h = png[20] << 24 | png[21] << 16 | png[22] << 8 | png[23];
    ck_assert_int_eq(w, 1200);
    ck_assert_int_eq(h, 3000);
    ck_assert_msg(n > 50000, "screenshot of %zu bytes: an empty page?", n); /* photos compress badly */
    free(png);
}
END_TEST

/* ---- everything a user can get wrong -------------------------------------------------- */

START_TEST(eval_bad_input) {
    /* a frame without its mask */
    make_set("nomask");
    ck_assert_int_eq(tu_run("rm '%s/nomask/masks/b.jpg'", tmp), 0);
    ck_assert_int_eq(run("eval -q -m " MODEL " --images nomask/images --masks nomask/masks --csv x.csv --report xr"), 1);
    ck_assert_msg(strstr(err, "b.jpeg") && strstr(err, "no mask"), "%s", err);
    ck_assert_str_eq(out, ""); /* no metrics */
    struct stat st;
    ck_assert_int_ne(stat(tu_path(tmp, "x.csv"), &st), 0);
    ck_assert_int_ne(stat(tu_path(tmp, "xr/index.html"), &st), 0);

    /* a mask of another size than its frame */
    make_set("size");
    ck_assert_int_eq(tu_run("cp " FIX "/wrong-size.jpg '%s/size/masks/c.jpg'", tmp), 0);
    ck_assert_int_eq(run("eval -q -t 1 -s 64 -m " MODEL " --images size/images --masks size/masks --json"), 1);
    ck_assert_msg(strstr(err, "c.jpg") && strstr(err, "120x90") && strstr(err, "240x182"), "%s", err);
    ck_assert_ptr_nonnull(strstr(err, "no metrics"));
    ck_assert_str_eq(out, "");

    /* an unreadable frame, and a mask that is not an image: both named */
    make_set("bad");
    ck_assert_int_eq(tu_run("cd '%s/bad' && echo garbage > images/d.jpg && cp masks/a.jpg masks/d.jpg && "
                            "head -c 300 masks/b.jpg > b.jpg && mv b.jpg masks/b.jpg",
                            tmp),
                     0);
    ck_assert_int_eq(run("eval -q -t 1 -s 64 -m " MODEL " --images bad/images --masks bad/masks"), 1);
    ck_assert_msg(strstr(err, "d.jpg") && strstr(err, "b.jpg"), "%s", err);
    ck_assert_ptr_nonnull(strstr(err, "2 of 4"));
    ck_assert_str_eq(out, "");

    /* two masks with the frame's stem and neither with its file name: which one? */
    make_set("twice");
    ck_assert_int_eq(tu_run("cp '%s/twice/masks/b.jpg' '%s/twice/masks/b.jpe'", tmp, tmp), 0);
    ck_assert_int_eq(run("eval -q -m " MODEL " --images twice/images --masks twice/masks"), 1);
    ck_assert_msg(strstr(err, "b.jpeg") && strstr(err, "several masks"), "%s", err);
    /* ...but the mask with the frame's own file name wins */
    ck_assert_int_eq(tu_run("cp '%s/twice/masks/b.jpg' '%s/twice/masks/b.jpeg'", tmp, tmp), 0);
    ck_assert_int_eq(run("eval -q -t 1 -s 64 -m " MODEL " --images twice/images --masks twice/masks"), 0);

    /* empty and missing folders */
    ck_assert_int_eq(tu_run("mkdir -p '%s/empty' '%s/textonly' && echo x > '%s/textonly/readme.txt'", tmp, tmp, tmp), 0);
    ck_assert_int_eq(run("eval -m " MODEL " --images empty --masks nomask/masks"), 1);
    ck_assert_msg(strstr(err, "empty") && strstr(err, "no images"), "%s", err);
    ck_assert_int_eq(run("eval -m " MODEL " --images textonly --masks nomask/masks"), 1);
    ck_assert_msg(strstr(err, "textonly") && strstr(err, "no images"), "%s", err);
    ck_assert_int_eq(run("eval -m " MODEL " --images nomask/images --masks empty"), 1);
    ck_assert_int_eq(run("eval -m " MODEL " --images missing --masks nomask/masks"), 1);
    ck_assert_msg(strstr(err, "missing") && strstr(err, "No such file"), "%s", err);
    ck_assert_int_eq(run("eval -m nothere.bzn --images size/images --masks size/masks"), 1);
    ck_assert_ptr_nonnull(strstr(err, "nothere.bzn"));
    ck_assert_int_eq(run("eval -m " MODEL " -s 100 --images size/images --masks size/masks"), 1);
    ck_assert_ptr_nonnull(strstr(err, "32"));
}
END_TEST

START_TEST(eval_usage) {
    ck_assert_int_eq(run("eval --help"), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: blazeneo eval"));
    ck_assert_int_eq(run("--help"), 0);
    ck_assert_ptr_nonnull(strstr(out, "eval"));
    ck_assert_int_eq(run("eval --images a --masks b"), 2);
    ck_assert_ptr_nonnull(strstr(err, "no model"));
    ck_assert_int_eq(run("eval -m " MODEL " --masks b"), 2);
    ck_assert_ptr_nonnull(strstr(err, "--images"));
    ck_assert_int_eq(run("eval -m " MODEL " --images a"), 2);
    ck_assert_ptr_nonnull(strstr(err, "--masks"));
    ck_assert_int_eq(run("eval -m " MODEL " --images a --masks b -b gpu"), 2);
    ck_assert_ptr_nonnull(strstr(err, "gpu"));
    ck_assert_int_eq(run("eval -m " MODEL " --images a --masks b -p int4"), 2);
    ck_assert_ptr_nonnull(strstr(err, "int4"));
    ck_assert_int_eq(run("eval -m " MODEL " --images a --masks b --undefined blue"), 2);
    ck_assert_int_eq(run("eval -m " MODEL " --images a --masks b -s banana"), 2);
    ck_assert_int_eq(run("eval -m " MODEL " --images a --masks b -t -3"), 2);
    ck_assert_int_eq(run("eval -m " MODEL " --images a --masks b extra"), 2);
    ck_assert_int_eq(run("eval --no-such-option"), 2);
}
END_TEST

int main(void) {
    cli = tu_env("BZN_CLI");
    src = tu_env("BZN_SOURCE_DIR");
    if (!cli || !src) {
        fprintf(stderr, "test_eval: run through ctest (BZN_CLI and BZN_SOURCE_DIR unset)\n");
        return 1;
    }
    tmp = tu_tmpdir("eval");
    Suite *s = suite_create("eval");
    TCase *metrics = tu_case(s, "metrics", 60);
    tcase_add_test(metrics, metrics_by_hand);
    tcase_add_test(metrics, metrics_empty_sets);
    tcase_add_test(metrics, undefined_by_hand);
    TCase *cmd = tu_case(s, "command", 900);
    tcase_add_test(cmd, eval_usage);
    tcase_add_test(cmd, eval_matches_protocol);
    tcase_add_test(cmd, eval_configurations_and_report);
    tcase_add_test(cmd, eval_bad_input);
    const int failed = tu_run_suite(s);
    free(tmp);
    return failed;
}
