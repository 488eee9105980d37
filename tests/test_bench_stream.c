/*
 * test_bench_stream.c - `blazeneo bench` and `blazeneo stream` as a user (or a script) meets them:
 *
 *   bench   the --json report is well-formed and complete (every key, positive numbers,
 *           min <= median <= max), --layers lists every layer and marks the 10 slowest, --svg
 *           writes an SVG that parses as XML with one bar per layer, bad options exit 2.
 *   stream  raw frames in, exactly one raw frame out per frame in every output format, and
 *           the outputs agree with the library (mask = colorize(classes), overlay = blend);
 *           a truncated final frame exits 1 naming the missing bytes after writing every
 *           complete frame; a closed output pipe exits 1 with a message (no SIGPIPE death);
 *           usage errors exit 2.
 *
 * Everything runs at a 64x64 network size with a few iterations, and nothing asserts on time:
 * the machine may be slow or busy.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blazeneo.h"
#include "testutil.h"

static const char *cli, *src;
static char *tmp;
static char out[1 << 17]; /* what the last command printed */

#define MODEL "\"$BZN_SOURCE_DIR/models/blazeneo-dha-neopolyp-small-f16.bzn\""
#define FW 96 /* stream frame size */
#define FH 64

/* the CLI in the temporary folder: stdin from `in` (NULL: /dev/null), stdout to `outfile`
 * (NULL: captured with stderr into `out`) */
#define run_io(in, outfile, ...) tu_cli_io(tmp, in, outfile, out, sizeof out, __VA_ARGS__)
#define run(...) run_io(NULL, NULL, __VA_ARGS__)


/* The main-path layers of the shipped model at 64x64, as the library lists them. */
static bzn_model *model;
static bzn_ctx *ctx64;

static void open_model(void) {
    bzn_error e;
    ck_assert_msg(bzn_model_open(tu_path(src, "models/blazeneo-dha-neopolyp-small-f16.bzn"), &model, &e) == BZN_OK,
                  "%s", e.msg);
    bzn_ctx_options o = bzn_ctx_default_options(model);
    o.width = o.height = 64;
    o.backend = "ref"; /* only listed, never run */
    ck_assert_msg(bzn_ctx_create(model, &o, &ctx64, &e) == BZN_OK, "%s", e.msg);
}

static void close_model(void) {
    bzn_ctx_free(ctx64);
    bzn_model_free(model);
    ctx64 = NULL;
    model = NULL;
}

/* ---- bench ------------------------------------------------------------------------------- */

/* Minimal JSON look-up: the number after "key": searched from `from`; 0 if absent. */
static int json_number(const char *from, const char *key, double *v) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(from, pat);
    if (!p) return 0;
    char *end;
    *v = strtod(p + strlen(pat), &end);
    return end != p + strlen(pat);
}

static void check_stats(const char *json, const char *what) {
    static const char *keys[] = {"min_ms", "median_ms", "mean_ms", "p90_ms", "p99_ms", "max_ms", "fps"};
    double v[7];
    for (int i = 0; i < 7; i++) {
        ck_assert_msg(json_number(json, keys[i], &v[i]), "%s: no %s in %s", what, keys[i], out);
        ck_assert_msg(v[i] > 0, "%s: %s = %g", what, keys[i], v[i]);
    }
    ck_assert_msg(v[0] <= v[1] && v[1] <= v[3] && v[3] <= v[4] && v[4] <= v[5], "%s: percentiles out of order", what);
    ck_assert_msg(v[0] <= v[2] && v[2] <= v[5], "%s: mean outside [min, max]", what);
}

static const char *PY_JSON_CHECK =
    "import json, sys\n"
    "d = json.load(open(sys.argv[1]))\n"
    "stats = ['min_ms', 'median_ms', 'mean_ms', 'p90_ms', 'p99_ms', 'max_ms', 'fps']\n"
    "for o in (d, d['network']):\n"
    "    for k in stats:\n"
    "        assert isinstance(o[k], (int, float)) and o[k] > 0, k\n"
    "    assert o['min_ms'] <= o['median_ms'] <= o['p90_ms'] <= o['p99_ms'] <= o['max_ms']\n"
    "    assert o['min_ms'] <= o['mean_ms'] <= o['max_ms']\n"
    "for k in ['gmac', 'params', 'peak_rss_mb', 'weight_file_bytes', 'weight_bytes', 'activation_bytes', 'scratch_bytes',\n"
    "          'threads']:\n"
    "    assert d[k] > 0, k\n"
    "# FP32 folds every float weight (4 bytes each; params also counts BatchNorm's 2 per channel),\n"
    "# plus Winograd's transforms of the 3x3 ones it runs (36 floats for 9: at most 4x more)\n"
    "assert 3.9 * d['params'] <= d['prepared_weight_bytes'] <= 20 * d['params']\n"
    "assert d['weight_bytes'] < 0.04 * d['prepared_weight_bytes']  # the model: biases and BN scales\n"
    "assert d['backend_detail'].split()[0] in ('scalar', 'avx2', 'avxvnni', 'avx512', 'amx'), d['backend_detail']\n"
    "assert d['backend'] == 'cpu' and d['precision'] == 'fp32', (d['backend'], d['precision'])\n"
    "assert d['size'] == '64x64' and d['width'] == 64 and d['height'] == 64\n"
    "assert d['batch'] == int(sys.argv[2]) and d['iters'] == 3\n"
    "assert d['machine']['cpu'] and d['machine']['nproc'] >= 1\n"
    "assert abs(d['fps'] - d['batch'] * 1000 / d['median_ms']) < 0.01 * d['fps']\n";

START_TEST(bench_json) {
    ck_assert_int_eq(tu_write_file(tu_path(tmp, "check_json.py"), PY_JSON_CHECK, strlen(PY_JSON_CHECK)), 0);
    const int have_py = tu_have_python("json");
    for (int batch = 1; batch <= 2; batch++) {
        char name[64];
        snprintf(name, sizeof name, "bench%d.json", batch);
        ck_assert_int_eq(run_io(NULL, name, "bench -m " MODEL " -s 64 -n 3 --warmup 1 -t 1 --batch %d --json", batch), 0);
        char *json = (char *)tu_read_file(tu_path(tmp, name), NULL);
        ck_assert_ptr_nonnull(json);
        /* without python: the keys are there and the numbers make sense */
        check_stats(json, "end to end");
        const char *net = strstr(json, "\"network\"");
        ck_assert_ptr_nonnull(net);
        check_stats(net, "network alone");
        static const char *keys[] = {"gmac", "params", "peak_rss_mb", "threads", "nproc"};
        for (int i = 0; i < 5; i++) {
            double v;
            ck_assert_msg(json_number(json, keys[i], &v) && v > 0, "no positive %s", keys[i]);
        }
        double params;
        json_number(json, "params", &params);
        ck_assert_int_eq((long long)params, 17143324); /* the main path of the shipped model */
        ck_assert_ptr_nonnull(strstr(json, "\"backend\": \"cpu\""));
        ck_assert_ptr_nonnull(strstr(json, "\"precision\": \"fp32\""));
        ck_assert_ptr_nonnull(strstr(json, "\"machine\""));
        free(json);
        /* with python: it parses as JSON, with the right types */
        if (have_py)
            ck_assert_msg(tu_run("cd '%s' && \"$BZN_PYTHON\" check_json.py %s %d", tmp, name, batch) == 0,
                          "%s is not complete, well-formed JSON", name);
    }
    if (!have_py) fprintf(stderr, "no python with json: JSON checked by the minimal parser only\n");
}
END_TEST

/* bench run as a larger process's child (fork, then exec, as Python's subprocess does;
 * `stdout_path` receives its output): its exit status */
static int bench_child(const char *stdout_path, size_t ballast_bytes) {
    unsigned char *ballast = ballast_bytes ? malloc(ballast_bytes) : NULL;
    if (ballast_bytes && !ballast) return -1;
    for (size_t k = 0; k < ballast_bytes; k += 4096) ballast[k] = (unsigned char)(k >> 12) | 1; /* resident */
    char model[4096];
    snprintf(model, sizeof model, "%s/models/blazeneo-dha-neopolyp-small-f16.bzn", tu_env("BZN_SOURCE_DIR"));
    const pid_t pid = fork();
    if (pid == 0) {
        const int fd = open(stdout_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 1) < 0) _exit(126);
        char *argv[] = {"blazeneo", "bench", "-m", model, "-s", "64", "-n", "1", "--warmup", "0", "-t", "1", "--json", NULL};
        execv(tu_env("BZN_CLI"), argv);
        _exit(127);
    }
    int status = -1;
    if (pid > 0) waitpid(pid, &status, 0);
    free(ballast);
    return pid > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The peak RSS that bench reports is its own: started by a process that holds 600 MB more,
 * it reports about the same. (getrusage's ru_maxrss would not: Linux carries it across exec,
 * so it includes the parent's RSS at the fork.) */
START_TEST(bench_rss_is_its_own) {
    double rss[2];
    for (int i = 0; i < 2; i++) {
        const char *path = tu_path(tmp, "rss.json");
        ck_assert_int_eq(bench_child(path, i ? (size_t)600 << 20 : 0), 0);
        char *json = (char *)tu_read_file(path, NULL);
        ck_assert_ptr_nonnull(json);
        ck_assert(json_number(json, "peak_rss_mb", &rss[i]) && rss[i] > 0);
        free(json);
    }
    fprintf(stderr, "  bench's peak RSS: %.1f MB, %.1f MB as the child of a process 600 MB larger\n", rss[0], rss[1]);
    ck_assert_msg(rss[1] < rss[0] + 200, "%.1f MB from a larger parent against %.1f MB", rss[1], rss[0]);
}
END_TEST

START_TEST(bench_layers) {
    open_model();
    ck_assert_int_eq(run("bench -m " MODEL " -s 64 -n 2 --warmup 0 -t 1 --layers"), 0);
    ck_assert_ptr_nonnull(strstr(out, "median"));
    ck_assert_ptr_nonnull(strstr(out, "peak RSS"));
    /* every layer, in execution order, as "index  [top]  name  op" */
    const char *pos = strstr(out, "per-layer profile");
    ck_assert_ptr_nonnull(pos);
    const int n = bzn_ctx_num_layers(ctx64);
    ck_assert_int_gt(n, 100);
    for (int i = 0; i < n; i++) {
        bzn_layer_info li;
        ck_assert_int_eq(bzn_ctx_layer(ctx64, i, &li), BZN_OK);
        char needle[256];
        snprintf(needle, sizeof needle, " %s ", li.name);
        const char *hit = strstr(pos, needle);
        ck_assert_msg(hit, "layer %d (%s) missing or out of order", i, li.name);
        pos = hit + strlen(needle);
    }
    /* the 10 slowest, each rank once */
    for (int k = 1; k <= 10; k++) {
        char mark[16];
        snprintf(mark, sizeof mark, " *%d ", k);
        const char *a = strstr(out, mark);
        ck_assert_msg(a && !strstr(a + 1, mark), "rank %d marked %s", k, a ? "twice" : "nowhere");
    }
    ck_assert_ptr_null(strstr(out, " *11 "));
    ck_assert_ptr_null(strstr(out, " int8")); /* FP32: every layer runs fp32 */

    /* INT8 (scales from one calibration frame, the sample): each layer says how it runs, and
       the layers marked int8>8 are exactly the hand-offs the report counts */
    ck_assert_int_eq(run("calibrate -m " MODEL " --images \"$BZN_SOURCE_DIR/samples\" -n 1 -s 64 -q -o l.cache"), 0);
    ck_assert_int_eq(run("bench -m " MODEL " -p int8 --calib l.cache -s 64 -n 1 --warmup 0 -t 2 --layers"), 0);
    int handoffs = -1, marked = 0, int8 = 0;
    const char *h = strstr(out, "int8          : ");
    ck_assert_msg(h && sscanf(h, "int8          : %d convolution outputs", &handoffs) == 1, "%s", out);
    for (const char *p = strstr(out, "per-layer profile"); (p = strstr(p, " int8")); p += 5) {
        int8++;
        marked += !strncmp(p, " int8>8 ", 8);
    }
    ck_assert_int_gt(handoffs, 10);
    ck_assert_int_eq(marked, handoffs);
    ck_assert_int_gt(int8, 100);
    close_model();
}
END_TEST

static const char *PY_SVG_COUNT =
    "import sys, xml.etree.ElementTree as ET\n"
    "root = ET.parse(sys.argv[1]).getroot()\n"
    "assert root.tag == '{http://www.w3.org/2000/svg}svg', root.tag\n"
    "bars = [r for r in root.iter('{http://www.w3.org/2000/svg}rect') if r.get('class') == 'bar']\n"
    "assert all(float(r.get('width')) >= 0 for r in bars)\n"
    "print(len(bars))\n";

START_TEST(bench_svg) {
    open_model();
    const int n = bzn_ctx_num_layers(ctx64);
    ck_assert_int_eq(tu_run("mkdir -p '%s/svg'", tmp), 0);
    ck_assert_int_eq(run("bench -m " MODEL " -s 64 -n 2 --warmup 0 -t 1 --json --svg svg/layers.svg"), 0);
    size_t len;
    char *svg = (char *)tu_read_file(tu_path(tmp, "svg/layers.svg"), &len);
    ck_assert_ptr_nonnull(svg);
    ck_assert_ptr_nonnull(strstr(svg, "<svg"));
    ck_assert_ptr_nonnull(strstr(svg, "</svg>"));
    int bars = 0;
    for (const char *p = svg; (p = strstr(p, "class=\"bar\"")); p++) bars++;
    ck_assert_int_eq(bars, n);
    free(svg);
    ck_assert_int_eq(tu_run("ls '%s/svg' | grep -q tmp", tmp), 1); /* no temporary left behind */
    if (tu_have_python("xml.etree.ElementTree")) {
        ck_assert_int_eq(tu_write_file(tu_path(tmp, "svg_count.py"), PY_SVG_COUNT, strlen(PY_SVG_COUNT)), 0);
        ck_assert_int_eq(tu_run("cd '%s' && \"$BZN_PYTHON\" svg_count.py svg/layers.svg > svg/count.txt", tmp), 0);
        char *count = (char *)tu_read_file(tu_path(tmp, "svg/count.txt"), NULL);
        ck_assert_ptr_nonnull(count);
        ck_assert_int_eq(atoi(count), n);
        free(count);
    } else {
        fprintf(stderr, "no python: SVG not parsed as XML, bars counted as text\n");
    }
    /* an SVG that cannot be written is a failure, not a silent success */
    ck_assert_int_eq(run("bench -m " MODEL " -s 64 -n 1 --warmup 0 --svg no/such/dir/x.svg"), 1);
    ck_assert_ptr_nonnull(strstr(out, "x.svg"));
    close_model();
}
END_TEST

/* --streams: N contexts at once, each with its share of the threads, in the report and the JSON */
START_TEST(bench_streams) {
    ck_assert_int_eq(run_io(NULL, "streams.json", "bench -m " MODEL " -s 64 -n 3 --warmup 1 -t 2 --streams 2 --json"), 0);
    char *json = (char *)tu_read_file(tu_path(tmp, "streams.json"), NULL);
    ck_assert_ptr_nonnull(json);
    const char *st = strstr(json, "\"streams\"");
    ck_assert_msg(st, "no streams object in %s", json);
    double n, each, ips, one, median;
    ck_assert(json_number(st, "n", &n) && json_number(st, "threads_each", &each));
    ck_assert(json_number(st, "images_per_s", &ips) && json_number(st, "one_context_images_per_s", &one));
    ck_assert(json_number(st, "median_ms", &median));
    ck_assert_int_eq((int)n, 2);
    ck_assert_int_eq((int)each, 1); /* -t 2 over 2 streams */
    ck_assert_msg(ips > 0 && one > 0 && median > 0, "images/s %g, one context %g, median %g", ips, one, median);
    free(json);
    ck_assert_int_eq(run("bench -m " MODEL " -s 64 -n 2 --warmup 0 -t 1 --streams 3"), 0);
    ck_assert_msg(strstr(out, "3 contexts x 1 thread, 3 streams at once"), "%s", out);
    ck_assert_int_eq(run("bench -m " MODEL " --streams 0"), 2);
    ck_assert_int_eq(run("bench -m " MODEL " --streams 65"), 2);
}
END_TEST

START_TEST(bench_usage) {
    ck_assert_int_eq(run("bench --help"), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: blazeneo bench"));
    ck_assert_ptr_nonnull(strstr(out, "--batch"));
    ck_assert_int_eq(run("bench"), 2);
    ck_assert_ptr_nonnull(strstr(out, "no model"));
    ck_assert_int_eq(run("bench -m " MODEL " --batch 0"), 2);
    ck_assert_ptr_nonnull(strstr(out, "batch"));
    ck_assert_int_eq(run("bench -m " MODEL " --batch -3"), 2);
    ck_assert_int_eq(run("bench -m " MODEL " --batch two"), 2);
    ck_assert_int_eq(run("bench -m " MODEL " -n 0"), 2);
    ck_assert_int_eq(run("bench -m " MODEL " --warmup -1"), 2);
    ck_assert_int_eq(run("bench -m " MODEL " -t x"), 2);
    ck_assert_int_eq(run("bench -m " MODEL " -p int4"), 2);
    ck_assert_ptr_nonnull(strstr(out, "precision"));
    ck_assert_int_eq(run("bench -m " MODEL " -b gpu"), 2);
    ck_assert_int_eq(run("bench -m " MODEL " -s banana"), 2);
    ck_assert_int_eq(run("bench -m " MODEL " --frobnicate"), 2);
    ck_assert_int_eq(run("bench -m " MODEL " extra"), 2);
    /* bad input: exit 1 */
    ck_assert_int_eq(run("bench -m /nonexistent.bzn -n 1"), 1);
    ck_assert_int_eq(run("bench -m " MODEL " -s 33 -n 1"), 1);
    ck_assert_ptr_nonnull(strstr(out, "multiples of 32"));
    ck_assert_int_eq(run("bench -m " MODEL " -s 64 -n 1 --image /nonexistent.jpeg"), 1);
}
END_TEST

/* ---- stream ------------------------------------------------------------------------------ */

/* `count` frames of FWxFH: the sample frames resized (so the network sees colonoscopy-like
 * content), written back to back to tmp/name; returns the pixels (caller frees). */
static uint8_t *make_frames(const char *name, int count) {
    static const char *samples[] = {"16d4ca6160127cd1d5ff99c267599fc4", "25605da2023387fd56c04414eaa922bc",
                                    "68f9d4c331587f9b9d49e2f4ee179798", "9ccf01a1b73b5f8ef0693db713abd61d"};
    const size_t fb = (size_t)FW * FH * 3;
    uint8_t *frames = malloc(fb * count);
    ck_assert_ptr_nonnull(frames);
    for (int i = 0; i < count; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "samples/%s.jpeg", samples[i % 4]);
        bzn_image img;
        bzn_error e;
        ck_assert_msg(bzn_image_load_jpeg(tu_path(src, rel), &img, &e) == BZN_OK, "%s", e.msg);
        ck_assert_int_eq(bzn_resize_bilinear(img.pixels, img.width, img.height, img.width * 3, 3, frames + fb * i, FW,
                                             FH, &e), BZN_OK);
        bzn_image_free(&img);
    }
    ck_assert_int_eq(tu_write_file(tu_path(tmp, name), frames, fb * count), 0);
    return frames;
}

START_TEST(stream_outputs) {
    const int n = 3;
    const size_t npix = (size_t)FW * FH;
    uint8_t *frames = make_frames("frames3.raw", n);
    static const char *kinds[] = {"classes", "mask", "overlay"};
    uint8_t *res[3];
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "out_%s.raw", kinds[k]);
        ck_assert_int_eq(run_io("frames3.raw", name, "stream -m " MODEL " -W %d -H %d -s 64 -t 1 --out %s --stats 2",
                                FW, FH, kinds[k]), 0);
        ck_assert_ptr_nonnull(strstr(out, "total: 3 frames")); /* the final statistics */
        ck_assert_ptr_nonnull(strstr(out, "frames 1-2"));      /* --stats 2 */
        ck_assert_ptr_nonnull(strstr(out, "FPS"));
        size_t len;
        res[k] = tu_read_file(tu_path(tmp, name), &len);
        ck_assert_ptr_nonnull(res[k]);
        ck_assert_uint_eq(len, n * npix * (k == 0 ? 1 : 3));
    }
    /* the three outputs describe the same segmentation */
    uint8_t *expect = malloc(npix * 3);
    ck_assert_ptr_nonnull(expect);
    for (int f = 0; f < n; f++) {
        const uint8_t *cls = res[0] + npix * f;
        for (size_t i = 0; i < npix; i++) ck_assert_uint_le(cls[i], 2);
        bzn_colorize(cls, npix, expect);
        ck_assert_msg(memcmp(expect, res[1] + 3 * npix * f, 3 * npix) == 0, "frame %d: mask != colorize(classes)", f);
        bzn_error e;
        ck_assert_int_eq(bzn_overlay_draw(frames + 3 * npix * f, cls, FW, FH, NULL, expect, &e), BZN_OK);
        ck_assert_msg(memcmp(expect, res[2] + 3 * npix * f, 3 * npix) == 0, "frame %d: overlay != default style", f);
    }
    /* the overlay options: a style of one's own, and no marking at all (the frames unchanged) */
    ck_assert_int_eq(run_io("frames3.raw", "out_styled.raw",
                            "stream -m " MODEL " -W %d -H %d -s 64 -t 1 --out overlay --alpha 0.2 --outline 3 --no-legend",
                            FW, FH), 0);
    size_t len_styled;
    uint8_t *styled = tu_read_file(tu_path(tmp, "out_styled.raw"), &len_styled);
    ck_assert_ptr_nonnull(styled);
    ck_assert_uint_eq(len_styled, n * npix * 3);
    bzn_overlay_style st = bzn_overlay_default_style();
    st.alpha = 0.2f;
    st.outline = 3;
    st.legend = BZN_LEGEND_NONE;
    for (int f = 0; f < n; f++) {
        bzn_error e;
        ck_assert_int_eq(bzn_overlay_draw(frames + 3 * npix * f, res[0] + npix * f, FW, FH, &st, expect, &e), BZN_OK);
        ck_assert_msg(memcmp(expect, styled + 3 * npix * f, 3 * npix) == 0, "frame %d: --alpha 0.2 --outline 3", f);
    }
    free(styled);
    ck_assert_int_eq(run_io("frames3.raw", "out_plain.raw",
                            "stream -m " MODEL " -W %d -H %d -s 64 -t 1 --out overlay --alpha 0 --no-outline --no-legend",
                            FW, FH), 0);
    uint8_t *plain = tu_read_file(tu_path(tmp, "out_plain.raw"), &len_styled);
    ck_assert_ptr_nonnull(plain);
    ck_assert_uint_eq(len_styled, n * npix * 3);
    ck_assert_msg(memcmp(plain, frames, n * npix * 3) == 0, "--alpha 0 --no-outline --no-legend changed the frames");
    free(plain);
    free(expect);
    for (int k = 0; k < 3; k++) free(res[k]);
    free(frames);
    /* no input at all: no output, no error */
    ck_assert_int_eq(run_io(NULL, "empty.raw", "stream -m " MODEL " -W %d -H %d -s 64", FW, FH), 0);
    size_t len = 1;
    free(tu_read_file(tu_path(tmp, "empty.raw"), &len));
    ck_assert_uint_eq(len, 0);
}
END_TEST

START_TEST(stream_truncated) {
    const size_t fb = (size_t)FW * FH * 3;
    free(make_frames("frames3t.raw", 3));
    /* two whole frames and 1000 bytes of a third: 18432 - 1000 = 17432 bytes missing */
    ck_assert_int_eq(tu_run("cd '%s' && head -c %zu frames3t.raw > cut.raw", tmp, 2 * fb + 1000), 0);
    ck_assert_int_eq(run_io("cut.raw", "cut_out.raw", "stream -m " MODEL " -W %d -H %d -s 64 -t 1", FW, FH), 1);
    char missing[32];
    snprintf(missing, sizeof missing, "%zu", fb - 1000);
    ck_assert_msg(strstr(out, missing) != NULL, "message does not say %s bytes are missing: %s", missing, out);
    ck_assert_ptr_nonnull(strstr(out, "missing"));
    size_t len;
    free(tu_read_file(tu_path(tmp, "cut_out.raw"), &len));
    ck_assert_uint_eq(len, 2 * fb); /* the complete frames were all written */
}
END_TEST

START_TEST(stream_closed_pipe) {
    /* 30 frames (550 kB of masks, more than a pipe buffer) into a reader that exits at once:
     * a write must fail with EPIPE, and the command must report it and exit 1 (a death by
     * SIGPIPE would read as 141 here). */
    free(make_frames("frames30.raw", 30));
    ck_assert_int_eq(tu_run("cd '%s' && ( '%s' stream -m " MODEL " -W %d -H %d -s 64 -t 1 < frames30.raw 2> pipe.log; "
                            "echo $? > pipe.rc ) | true",
                            tmp, cli, FW, FH), 0);
    char *rc = (char *)tu_read_file(tu_path(tmp, "pipe.rc"), NULL);
    char *log = (char *)tu_read_file(tu_path(tmp, "pipe.log"), NULL);
    ck_assert_ptr_nonnull(rc);
    ck_assert_ptr_nonnull(log);
    ck_assert_msg(atoi(rc) == 1, "exit status %d, stderr: %s", atoi(rc), log);
    ck_assert_msg(strstr(log, "cannot write") != NULL, "%s", log);
    free(rc);
    free(log);
}
END_TEST

START_TEST(stream_usage) {
    ck_assert_int_eq(run("stream --help"), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: blazeneo stream"));
    ck_assert_ptr_nonnull(strstr(out, "gray"));
    ck_assert_ptr_nonnull(strstr(out, "--alpha A"));
    ck_assert_ptr_nonnull(strstr(out, "-i - -pix_fmt yuv420p out.mp4")); /* players need yuv420p */
    ck_assert_int_eq(run("stream -W 96 -H 64"), 2);
    ck_assert_ptr_nonnull(strstr(out, "no model"));
    ck_assert_int_eq(run("stream -m " MODEL " -W 96"), 2);
    ck_assert_int_eq(run("stream -m " MODEL " -H 64"), 2);
    ck_assert_int_eq(run("stream -m " MODEL " -W 0 -H 64"), 2);
    ck_assert_int_eq(run("stream -m " MODEL " -W 96 -H 64x"), 2);
    ck_assert_int_eq(run("stream -m " MODEL " -W 96 -H 64 --out jpeg"), 2);
    ck_assert_ptr_nonnull(strstr(out, "mask, overlay, classes"));
    ck_assert_int_eq(run("stream -m " MODEL " -W 96 -H 64 --stats 0"), 2);
    ck_assert_int_eq(run("stream -m " MODEL " -W 96 -H 64 -p int4"), 2);
    ck_assert_int_eq(run("stream -m " MODEL " -W 96 -H 64 -b gpu"), 2);
    ck_assert_int_eq(run("stream -m " MODEL " -W 96 -H 64 video.raw"), 2);
    ck_assert_int_eq(run("stream -m " MODEL " -W 96 -H 64 --frobnicate"), 2);
    /* the overlay options: for --out overlay only, with valid values */
    ck_assert_int_eq(run("stream -m " MODEL " -W 96 -H 64 --alpha 0.3"), 2);
    ck_assert_msg(strstr(out, "--alpha is for --out overlay"), "%s", out);
    ck_assert_int_eq(run("stream -m " MODEL " -W 96 -H 64 --out classes --no-legend"), 2);
    ck_assert_msg(strstr(out, "--no-legend is for --out overlay"), "%s", out);
    ck_assert_int_eq(run("stream -m " MODEL " -W 96 -H 64 --out overlay --alpha 1.5"), 2);
    ck_assert_msg(strstr(out, "invalid alpha '1.5'"), "%s", out);
    ck_assert_int_eq(run("stream -m " MODEL " -W 96 -H 64 --out overlay --outline -2"), 2);
    ck_assert_int_eq(run("stream -m " MODEL " -W 96 -H 64 --out overlay --legend middle"), 2);
    ck_assert_msg(strstr(out, "tl, tr, bl, br"), "%s", out);
    /* bad input: exit 1 */
    ck_assert_int_eq(run("stream -m /nonexistent.bzn -W 96 -H 64"), 1);
    ck_assert_int_eq(run("stream -m " MODEL " -W 96 -H 64 -s 33"), 1);
}
END_TEST

int main(void) {
    cli = tu_env("BZN_CLI");
    src = tu_env("BZN_SOURCE_DIR");
    if (!cli || !src) {
        fprintf(stderr, "test_bench_stream: run through ctest (BZN_CLI and BZN_SOURCE_DIR unset)\n");
        return 1;
    }
    tmp = tu_tmpdir("bench");
    if (!tmp) {
        fprintf(stderr, "test_bench_stream: cannot create a temporary folder\n");
        return 1;
    }
    Suite *s = suite_create("bench_stream");
    TCase *tc = tu_case(s, "bench_stream", 900);
    tcase_add_test(tc, bench_usage);
    tcase_add_test(tc, bench_json);
    tcase_add_test(tc, bench_rss_is_its_own);
    tcase_add_test(tc, bench_layers);
    tcase_add_test(tc, bench_streams);
    tcase_add_test(tc, bench_svg);
    tcase_add_test(tc, stream_usage);
    tcase_add_test(tc, stream_outputs);
    tcase_add_test(tc, stream_truncated);
    tcase_add_test(tc, stream_closed_pipe);
    const int failed = tu_run_suite(s);
    free(tmp);
    return failed;
}
