/*
 * test_gst.c - the GStreamer element `blazeneo` (gst/) as a gst-launch-1.0 user meets it.
 *
 *   inspect      gst-inspect-1.0 documents the element and every property
 *   outputs      videotestsrc -> tee -> three blazeneo (overlay, mask, classes) -> filesink: one
 *                output frame per input frame, of the size each output format has (overlay and
 *                mask RGB, classes GRAY8), the mask the classes' colours and the overlay the
 *                library's drawing of them; then the defaults (the model's own network size)
 *   same_as_cli  the sample frames as a raw clip (filesrc + rawvideoparse): the element's classes,
 *                mask and overlay (outlines and legend included) equal `blazeneo stream` on the
 *                same frames byte for byte; the frames are 254 pixels wide, so GStreamer pads
 *                every row (a stride of 764 bytes for RGB, 256 for GRAY8) and the element must
 *                read and write those strides, also a source's own stride (800, in a GstVideoMeta);
 *                BGRx and RGBx input (through videoconvert) give the same results; INT8 with a
 *                calibration cache equals the CLI's INT8, and precision=auto (the default) runs
 *                INT8 with a cache or an INT8 weight file (blazeneo quantize), as the CLI does
 *   caps_change  three segments of different frame sizes through concat: the element
 *                renegotiates mid-stream and every frame comes out at its own size
 *   errors       a missing or broken model, an unknown backend, a bad precision, a calibration
 *                cache that is missing, broken or given with fp32: gst-launch exits non-zero
 *                (not by a signal) with the library's own message
 *   metadata     every output buffer carries GstBlazeneoMeta (still after videoconvert), and the
 *                optional bus message (message=true, seen with gst-launch-1.0 -m) has the pixel
 *                counts of the class map and the polyp fraction
 *
 * The network runs at 64x64 with two threads and the frames are small, so the whole test takes
 * some seconds. GST_PLUGIN_PATH points at the built plugin and GST_REGISTRY at a file in the
 * test's temporary folder (the user's registry is never touched).
 *
 * Sanitizer builds (BZN_SANITIZE=1): the plugin is built with AddressSanitizer like the library,
 * and gst-launch-1.0 (not built with it) can only load it with the ASan runtime preloaded, so the
 * test runs every case with LD_PRELOAD set to the libasan the plugin links (found with ldd) and
 * ASAN_OPTIONS=detect_leaks=0 (GStreamer keeps its type system and registry allocated until the
 * process exits; leaks are checked in the library's own tests). Without a libasan to preload it
 * skips, saying so.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blazeneo.h"
#include "testutil.h"

static const char *src;        /* BZN_SOURCE_DIR */
static char *tmp;              /* this run's temporary folder */
static char plugin_dir[4096];  /* where libgstblazeneo.so is */
static char log_text[1 << 18]; /* what the last gst-launch printed (stdout and stderr) */

#define MODEL_REL "models/blazeneo-dha-neopolyp-small-f16.bzn"
#define MODEL "\"$BZN_SOURCE_DIR/" MODEL_REL "\""
/* what every run of the element gets: the 64x64 network on two threads */
#define BZN "blazeneo model=" MODEL " size=64 threads=2"

/* The sample frames: 254x190, so that GStreamer's rows (rounded up to 4 bytes) are padded,
 * and large enough for the overlay's legend. */
#define FW 254
#define FH 190
#define NFRAMES 4
#define RGB_STRIDE ((FW * 3 + 3) / 4 * 4) /* 764 */
#define GRAY_STRIDE ((FW + 3) / 4 * 4)    /* 256 */
#define WIDE_STRIDE 800                   /* a source's own row stride */

/* ---- running things ------------------------------------------------------------------------ */

/* gst-launch-1.0 with printf-style arguments in the temporary folder; everything it prints into
 * log_text. Returns its exit status (a death by a signal reads as 128 + the signal). */
static int gst_launch(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int gst_launch(const char *fmt, ...) {
    char args[6144];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    const int rc = tu_run("cd '%s' && gst-launch-1.0 %s > gst-log.txt 2>&1", tmp, args);
    tu_slurp(tu_path(tmp, "gst-log.txt"), log_text, sizeof log_text);
    return rc;
}

/* gst-launch failed as an error should: a non-zero exit, not a crash */
static void assert_clean_failure(int rc, const char *what) {
    ck_assert_msg(rc != 0, "%s: gst-launch succeeded:\n%s", what, log_text);
    ck_assert_msg(rc < 128 || rc == 255, "%s: gst-launch died (exit status %d):\n%s", what, rc, log_text);
}

/* The CLI ($BZN_CLI) in the temporary folder, stdin from `in`, stdout to `out`. */
static int cli(const char *in, const char *out, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cli(const char *in, const char *out, const char *fmt, ...) {
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    const int rc = tu_run("cd '%s' && \"$BZN_CLI\" %s < '%s' > '%s' 2> cli-log.txt", tmp, args, in, out);
    tu_slurp(tu_path(tmp, "cli-log.txt"), log_text, sizeof log_text);
    return rc;
}

static uint8_t *read_tmp(const char *name, size_t *len) {
    uint8_t *d = tu_read_file(tu_path(tmp, name), len);
    ck_assert_msg(d != NULL, "cannot read %s", name);
    return d;
}

/* ---- the sample clip ----------------------------------------------------------------------- */

/* The sample frames resized to FW x FH with the library, written twice: packed (frames.raw,
 * what `blazeneo stream` reads) and with GStreamer's row padding (frames-gst.raw, what
 * rawvideoparse reads for format=rgb). Returns the packed frames (caller frees). */
static uint8_t *make_clip(void) {
    static const char *samples[NFRAMES] = {"16d4ca6160127cd1d5ff99c267599fc4", "25605da2023387fd56c04414eaa922bc",
                                           "68f9d4c331587f9b9d49e2f4ee179798", "9ccf01a1b73b5f8ef0693db713abd61d"};
    const size_t fb = (size_t)FW * FH * 3, gb = (size_t)RGB_STRIDE * FH;
    uint8_t *frames = malloc(fb * NFRAMES), *padded = calloc(NFRAMES, gb);
    ck_assert_ptr_nonnull(frames);
    ck_assert_ptr_nonnull(padded);
    for (int i = 0; i < NFRAMES; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "samples/%s.jpeg", samples[i]);
        bzn_image img;
        bzn_error e;
        ck_assert_msg(bzn_image_load_jpeg(tu_path(src, rel), &img, &e) == BZN_OK, "%s", e.msg);
        ck_assert_msg(bzn_resize_bilinear(img.pixels, img.width, img.height, img.width * 3, 3, frames + fb * i, FW, FH,
                                          &e) == BZN_OK, "%s", e.msg);
        bzn_image_free(&img);
        for (int y = 0; y < FH; y++)
            memcpy(padded + gb * i + (size_t)RGB_STRIDE * y, frames + fb * i + (size_t)FW * 3 * y, (size_t)FW * 3);
    }
    ck_assert_int_eq(tu_write_file(tu_path(tmp, "frames.raw"), frames, fb * NFRAMES), 0);
    ck_assert_int_eq(tu_write_file(tu_path(tmp, "frames-gst.raw"), padded, gb * NFRAMES), 0);
    free(padded);
    /* and with rows WIDE_STRIDE bytes apart, a stride of the source's own choosing: rawvideoparse
     * then describes the buffers with a GstVideoMeta */
    uint8_t *wide = calloc(NFRAMES, (size_t)WIDE_STRIDE * FH);
    ck_assert_ptr_nonnull(wide);
    for (int r = 0; r < FH * NFRAMES; r++)
        memcpy(wide + (size_t)WIDE_STRIDE * r, frames + (size_t)FW * 3 * r, (size_t)FW * 3);
    ck_assert_int_eq(tu_write_file(tu_path(tmp, "frames-wide.raw"), wide, (size_t)WIDE_STRIDE * FH * NFRAMES), 0);
    free(wide);
    return frames;
}

/* the clip as GStreamer caps: filesrc + rawvideoparse (and with rows 800 bytes apart) */
#define CLIP_SRC "filesrc location=frames-gst.raw ! rawvideoparse width=254 height=190 format=rgb framerate=25/1"

/* A file of NFRAMES frames with rows `stride` bytes apart, of which the first `row` count,
 * with the padding removed: what `blazeneo stream` would have written. */
static uint8_t *unpad(const char *name, int stride, int row) {
    size_t len;
    uint8_t *d = read_tmp(name, &len);
    ck_assert_msg(len == (size_t)stride * FH * NFRAMES, "%s: %zu bytes, expected %d frames of %d rows of %d", name,
                  len, NFRAMES, FH, stride);
    uint8_t *p = malloc((size_t)row * FH * NFRAMES);
    ck_assert_ptr_nonnull(p);
    for (int r = 0; r < FH * NFRAMES; r++) memcpy(p + (size_t)row * r, d + (size_t)stride * r, (size_t)row);
    free(d);
    return p;
}

/* the first differing byte of two outputs, for a readable failure */
static void assert_same(const uint8_t *a, const uint8_t *b, size_t n, int bytes_per_pixel, const char *what) {
    for (size_t i = 0; i < n; i++) {
        if (a[i] == b[i]) continue;
        const size_t px = i / (size_t)bytes_per_pixel, frame_px = (size_t)FW * FH;
        ck_abort_msg("%s: differs from blazeneo stream at frame %zu, pixel (%zu, %zu), byte %zu: %u != %u", what,
                     px / frame_px, px % frame_px % FW, px % frame_px / FW, i, a[i], b[i]);
    }
}

/* ---- the cases --------------------------------------------------------------------------- */

START_TEST(inspect) {
    ck_assert_int_eq(tu_run("cd '%s' && gst-inspect-1.0 blazeneo > inspect.txt 2>&1", tmp), 0);
    tu_slurp(tu_path(tmp, "inspect.txt"), log_text, sizeof log_text);
    static const char *expect[] = {"Filter/Effect/Video", "BlazeNeo-C", "BlazeNeo polyp segmentation", "model ",
                                   "backend ", "precision ", "calib ", "keep-fp32 ", "size ", "threads ", "output ",
                                   "alpha ", "outline ", "dark-edge ", "legend ", "message ", "GRAY8", "BGRx", "RGBx",
                                   "overlay", "mask", "classes", "fp32", "int8", "0.45"};
    for (size_t i = 0; i < sizeof expect / sizeof *expect; i++)
        ck_assert_msg(strstr(log_text, expect[i]), "gst-inspect-1.0 blazeneo does not show '%s':\n%s", expect[i],
                      log_text);
    /* the backend property lists this build's backends */
    for (int i = 0; i < bzn_backend_count(); i++) ck_assert_ptr_nonnull(strstr(log_text, bzn_backend_name(i)));
}
END_TEST

START_TEST(outputs) {
    /* one pipeline, three elements side by side (each with its own model and context, on its
     * own streaming thread behind a queue), and the input itself: 64x48 RGB rows are 192 bytes,
     * not padded, so the element reads and writes the frames in place */
    const int n = 5, w = 64, h = 48;
    const size_t npix = (size_t)w * h;
    int rc = gst_launch("videotestsrc num-buffers=%d pattern=ball ! video/x-raw,format=RGB,width=%d,height=%d ! "
                        "tee name=t t. ! queue ! filesink location=out-input.raw "
                        "t. ! queue ! " BZN " output=overlay ! filesink location=out-overlay.raw "
                        "t. ! queue ! " BZN " output=mask ! filesink location=out-mask.raw "
                        "t. ! queue ! " BZN " output=classes ! filesink location=out-classes.raw",
                        n, w, h);
    ck_assert_msg(rc == 0, "exit status %d:\n%s", rc, log_text);
    static const struct {
        const char *name;
        int bytes; /* per pixel */
    } files[] = {{"out-input.raw", 3}, {"out-overlay.raw", 3}, {"out-mask.raw", 3}, {"out-classes.raw", 1}};
    uint8_t *data[4];
    for (int k = 0; k < 4; k++) {
        size_t len;
        data[k] = read_tmp(files[k].name, &len);
        ck_assert_msg(len == (size_t)n * npix * files[k].bytes, "%s: %zu bytes, not %d frames of %dx%dx%d",
                      files[k].name, len, n, w, h, files[k].bytes);
    }
    /* classes are 0, 1 or 2; the mask is their colours; the overlay is the library's drawing
     * of them over the input in the default style */
    uint8_t *expect = malloc(npix * 3);
    ck_assert_ptr_nonnull(expect);
    for (int f = 0; f < n; f++) {
        const uint8_t *in = data[0] + npix * 3 * f, *cls = data[3] + npix * f;
        for (size_t i = 0; i < npix; i++) ck_assert_uint_le(cls[i], 2);
        bzn_colorize(cls, npix, expect);
        ck_assert_msg(!memcmp(expect, data[2] + npix * 3 * f, npix * 3), "frame %d: mask != colours of classes", f);
        bzn_error e;
        const bzn_overlay_style style = bzn_overlay_default_style();
        ck_assert_int_eq(bzn_overlay_draw(in, cls, w, h, &style, expect, &e), BZN_OK);
        ck_assert_msg(!memcmp(expect, data[1] + npix * 3 * f, npix * 3), "frame %d: overlay != the library's", f);
    }
    free(expect);
    for (int k = 0; k < 4; k++) free(data[k]);

    /* the defaults: the model's own 352x352 network, overlay out in the input's format */
    rc = gst_launch("videotestsrc num-buffers=2 ! video/x-raw,format=BGRx,width=%d,height=%d ! blazeneo model="
                    MODEL " threads=2 ! filesink location=out-default.raw", w, h);
    ck_assert_msg(rc == 0, "defaults: exit status %d:\n%s", rc, log_text);
    size_t len;
    free(read_tmp("out-default.raw", &len));
    ck_assert_uint_eq(len, 2u * w * h * 4);
}
END_TEST

START_TEST(same_as_cli) {
    const size_t npix = (size_t)FW * FH * NFRAMES;
    uint8_t *frames = make_clip();
    free(frames);

    /* the CLI's outputs on the packed frames */
    static const char *kinds[] = {"classes", "mask", "overlay"};
    uint8_t *ref[3];
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "cli-%s.raw", kinds[k]);
        int rc = cli("frames.raw", name, "stream -m " MODEL " -W %d -H %d -s 64 -t 2 --out %s", FW, FH, kinds[k]);
        ck_assert_msg(rc == 0, "blazeneo stream --out %s: exit status %d: %s", kinds[k], rc, log_text);
        size_t len;
        ref[k] = read_tmp(name, &len);
        ck_assert_uint_eq(len, npix * (k == 0 ? 1 : 3));
    }
    /* there are polyps in the sample frames, and a legend on the overlay: the comparison is
     * not of two empty masks or of plain copies */
    size_t polyp = 0;
    for (size_t i = 0; i < npix; i++) polyp += ref[0][i] < 2;
    ck_assert_msg(polyp > 1000, "only %zu polyp pixels in the samples", polyp);
    int rc = cli("frames.raw", "cli-nolegend.raw", "stream -m " MODEL " -W %d -H %d -s 64 -t 2 --out overlay "
                 "--no-legend", FW, FH);
    ck_assert_msg(rc == 0, "blazeneo stream --no-legend: exit status %d: %s", rc, log_text);
    size_t len;
    uint8_t *nolegend = read_tmp("cli-nolegend.raw", &len);
    ck_assert_uint_eq(len, npix * 3);
    ck_assert_msg(memcmp(nolegend, ref[2], npix * 3) != 0, "the overlay has no legend at %dx%d", FW, FH);
    free(nolegend);

    /* the element on the padded RGB frames, each output */
    for (int k = 0; k < 3; k++) {
        rc = gst_launch(CLIP_SRC " ! " BZN " output=%s ! filesink location=gst-%s.raw", kinds[k], kinds[k]);
        ck_assert_msg(rc == 0, "output=%s: exit status %d:\n%s", kinds[k], rc, log_text);
        char name[64], what[64];
        snprintf(name, sizeof name, "gst-%s.raw", kinds[k]);
        snprintf(what, sizeof what, "RGB output=%s", kinds[k]);
        uint8_t *got = k == 0 ? unpad(name, GRAY_STRIDE, FW) : unpad(name, RGB_STRIDE, FW * 3);
        assert_same(got, ref[k], npix * (k == 0 ? 1 : 3), k == 0 ? 1 : 3, what);
        free(got);
    }

    /* rows 800 bytes apart, as the source's GstVideoMeta says */
    rc = gst_launch("filesrc location=frames-wide.raw ! rawvideoparse width=254 height=190 format=rgb "
                    "framerate=25/1 plane-strides=\"<%d>\" ! " BZN " output=overlay ! filesink location=gst-wide.raw",
                    WIDE_STRIDE);
    ck_assert_msg(rc == 0, "stride %d: exit status %d:\n%s", WIDE_STRIDE, rc, log_text);
    uint8_t *got = unpad("gst-wide.raw", RGB_STRIDE, FW * 3);
    assert_same(got, ref[2], npix * 3, 3, "RGB rows 800 bytes apart, output=overlay");
    free(got);

    /* BGRx in (channels swapped on the way in, and back on the way out), overlay out in BGRx,
     * made RGB again by videoconvert (a lossless repacking between RGB formats) */
    rc = gst_launch(CLIP_SRC " ! videoconvert ! video/x-raw,format=BGRx ! " BZN " output=overlay ! "
                        "video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=RGB ! "
                        "filesink location=gst-bgrx-overlay.raw");
    ck_assert_msg(rc == 0, "BGRx overlay: exit status %d:\n%s", rc, log_text);
    got = unpad("gst-bgrx-overlay.raw", RGB_STRIDE, FW * 3);
    assert_same(got, ref[2], npix * 3, 3, "BGRx output=overlay");
    free(got);
    /* RGBx in, classes out */
    rc = gst_launch(CLIP_SRC " ! videoconvert ! video/x-raw,format=RGBx ! " BZN " output=classes ! "
                    "filesink location=gst-rgbx-classes.raw");
    ck_assert_msg(rc == 0, "RGBx classes: exit status %d:\n%s", rc, log_text);
    got = unpad("gst-rgbx-classes.raw", GRAY_STRIDE, FW);
    assert_same(got, ref[0], npix, 1, "RGBx output=classes");
    free(got);
    for (int k = 0; k < 3; k++) free(ref[k]);

    /* INT8 with a calibration cache (one frame, the CLI's calibrate): the same as the CLI's INT8 */
    rc = tu_run("cd '%s' && \"$BZN_CLI\" calibrate -m " MODEL " --images \"$BZN_SOURCE_DIR/samples\" -n 1 -s 64 -q "
                "-o int8.cache > calibrate-log.txt 2>&1", tmp);
    ck_assert_msg(rc == 0, "blazeneo calibrate: exit status %d", rc);
    rc = cli("frames.raw", "cli-int8.raw", "stream -m " MODEL " -W %d -H %d -s 64 -t 2 -p int8 --calib int8.cache "
             "--out classes", FW, FH);
    ck_assert_msg(rc == 0, "blazeneo stream -p int8: exit status %d: %s", rc, log_text);
    rc = gst_launch(CLIP_SRC " ! " BZN " precision=int8 calib=int8.cache output=classes ! "
                    "filesink location=gst-int8.raw");
    ck_assert_msg(rc == 0, "precision=int8: exit status %d:\n%s", rc, log_text);
    uint8_t *want = read_tmp("cli-int8.raw", &len);
    ck_assert_uint_eq(len, npix);
    got = unpad("gst-int8.raw", GRAY_STRIDE, FW);
    assert_same(got, want, npix, 1, "precision=int8 output=classes");
    free(got);
    /* precision=auto (the default) with a cache: int8, as the CLI's --calib without -p */
    rc = gst_launch(CLIP_SRC " ! " BZN " calib=int8.cache output=classes ! filesink location=gst-auto.raw");
    ck_assert_msg(rc == 0, "calib without precision: exit status %d:\n%s", rc, log_text);
    got = unpad("gst-auto.raw", GRAY_STRIDE, FW);
    assert_same(got, want, npix, 1, "calib=... (precision auto) output=classes");
    free(got);
    free(want);
    /* an INT8 weight file runs int8 by default (auto: the file's precision) */
    rc = tu_run("cd '%s' && \"$BZN_CLI\" quantize -m " MODEL " --calib int8.cache -o q.bzn > quantize-log.txt 2>&1",
                tmp);
    ck_assert_msg(rc == 0, "blazeneo quantize: exit status %d", rc);
    rc = cli("frames.raw", "cli-q.raw", "stream -m q.bzn -W %d -H %d -s 64 -t 2 -p int8 --out classes", FW, FH);
    ck_assert_msg(rc == 0, "blazeneo stream -m q.bzn -p int8: exit status %d: %s", rc, log_text);
    rc = gst_launch(CLIP_SRC " ! blazeneo model=q.bzn size=64 threads=2 output=classes ! filesink location=gst-q.raw");
    ck_assert_msg(rc == 0, "model=q.bzn: exit status %d:\n%s", rc, log_text);
    want = read_tmp("cli-q.raw", &len);
    ck_assert_uint_eq(len, npix);
    got = unpad("gst-q.raw", GRAY_STRIDE, FW);
    assert_same(got, want, npix, 1, "INT8 weight file (precision auto) output=classes");
    free(got);
    free(want);
}
END_TEST

/* The fields of the bus message of one frame, from gst-launch-1.0 -m's log. */
typedef struct {
    int width, height;
    unsigned long long neo, non, background;
    double fraction;
} frame_message;

static int find_message(const char *log, int frame, frame_message *m) {
    char key[64];
    snprintf(key, sizeof key, "(element): blazeneo, frame=(guint64)%d,", frame);
    const char *p = strstr(log, key);
    if (!p) return 0;
    p += strlen(key);
    return sscanf(p,
                  " timestamp=(guint64)%*u, width=(int)%d, height=(int)%d, neoplastic=(guint64)%llu, "
                  "non-neoplastic=(guint64)%llu, background=(guint64)%llu, polyp-fraction=(double)%lf",
                  &m->width, &m->height, &m->neo, &m->non, &m->background, &m->fraction) == 6;
}

START_TEST(caps_change) {
    /* 64x48, then 94x70 (padded rows), then 64x48 again: concat passes each segment's caps
     * downstream, so the element is renegotiated twice while the pipeline plays */
    static const struct {
        int w, h, n;
    } seg[] = {{64, 48, 2}, {94, 70, 3}, {64, 48, 1}};
    int rc = gst_launch("-m concat name=c ! " BZN " output=classes message=true ! filesink location=caps.raw "
                        "videotestsrc num-buffers=%d ! video/x-raw,format=RGB,width=%d,height=%d ! c. "
                        "videotestsrc num-buffers=%d pattern=ball ! video/x-raw,format=BGRx,width=%d,height=%d ! c. "
                        "videotestsrc num-buffers=%d ! video/x-raw,format=RGBx,width=%d,height=%d ! c.",
                        seg[0].n, seg[0].w, seg[0].h, seg[1].n, seg[1].w, seg[1].h, seg[2].n, seg[2].w, seg[2].h);
    ck_assert_msg(rc == 0, "exit status %d:\n%s", rc, log_text);
    size_t expect = 0;
    int frame = 0;
    for (int s = 0; s < 3; s++) {
        expect += (size_t)seg[s].n * ((seg[s].w + 3) / 4 * 4) * seg[s].h; /* GRAY8 rows padded to 4 */
        for (int i = 0; i < seg[s].n; i++, frame++) {
            frame_message m;
            ck_assert_msg(find_message(log_text, frame, &m), "no message for frame %d:\n%s", frame, log_text);
            ck_assert_msg(m.width == seg[s].w && m.height == seg[s].h, "frame %d is %dx%d, not %dx%d", frame, m.width,
                          m.height, seg[s].w, seg[s].h);
            ck_assert_uint_eq(m.neo + m.non + m.background, (unsigned long long)seg[s].w * seg[s].h);
        }
    }
    ck_assert_msg(!find_message(log_text, frame, &(frame_message){0}), "more than %d frames", frame);
    size_t len;
    free(read_tmp("caps.raw", &len));
    ck_assert_msg(len == expect, "%zu bytes out, expected %zu", len, expect);
}
END_TEST

/* the element with the properties of one error case (%s) */
#define ERROR_PIPELINE                                                                                    \
    "videotestsrc num-buffers=2 ! video/x-raw,format=RGB,width=64,height=48 ! blazeneo threads=2 size=64 %s " \
    "! fakesink"

START_TEST(errors) {
    bzn_error e;
    bzn_model *m = NULL;
    bzn_ctx *c = NULL;
    char want[sizeof e.msg];
    char extra[1024];
#define FAILS_WITH(what, props, message)                                                                       \
    do {                                                                                                       \
        snprintf(extra, sizeof extra, "%s", props);                                                            \
        assert_clean_failure(gst_launch(ERROR_PIPELINE, extra), what);                                         \
        ck_assert_msg(strstr(log_text, message), "%s: the message '%s' is not in:\n%s", what, message, log_text); \
    } while (0)

    /* a missing weight file: the library's own words */
    ck_assert_int_ne(bzn_model_open("/nonexistent/model.bzn", &m, &e), BZN_OK);
    snprintf(want, sizeof want, "%s", e.msg);
    FAILS_WITH("missing model", "model=/nonexistent/model.bzn", want);
    /* a file that is not a weight file */
    ck_assert_int_ne(bzn_model_open(tu_path(src, "README.md"), &m, &e), BZN_OK);
    snprintf(want, sizeof want, "%s", e.msg);
    FAILS_WITH("not a model", "model=\"$BZN_SOURCE_DIR/README.md\"", want);
    /* no model at all */
    FAILS_WITH("no model", "", "model");

    /* the library's words for an unknown backend and for INT8 without scales */
    ck_assert_int_eq(bzn_model_open(tu_path(src, MODEL_REL), &m, &e), BZN_OK);
    bzn_ctx_options o = bzn_ctx_default_options(m);
    o.width = o.height = 64;
    o.backend = "gpu";
    ck_assert_int_ne(bzn_ctx_create(m, &o, &c, &e), BZN_OK);
    snprintf(want, sizeof want, "%s", e.msg);
    FAILS_WITH("unknown backend", "model=" MODEL " backend=gpu", want);
    o.backend = NULL;
    o.precision = BZN_PRECISION_INT8;
    ck_assert_int_ne(bzn_ctx_create(m, &o, &c, &e), BZN_OK);
    snprintf(want, sizeof want, "%s", e.msg);
    FAILS_WITH("int8 without scales", "model=" MODEL " precision=int8", want);
    bzn_model_free(m);

    /* a precision that does not exist: GStreamer refuses the property value itself */
    FAILS_WITH("bad precision", "model=" MODEL " precision=int4", "precision");
    /* a network size that is not a multiple of 32 (the library says so), and one that is no size */
    FAILS_WITH("bad size", "model=" MODEL " size=33", "multiples of 32");
    FAILS_WITH("not a size", "model=" MODEL " size=banana", "banana");

    /* calibration caches: missing, broken (the library's words, as the CLI shows them), with fp32 */
    bzn_calib_table *t = NULL;
    ck_assert_int_ne(bzn_calib_cache_read("/nonexistent/x.cache", &t, &e), BZN_OK);
    snprintf(want, sizeof want, "%s", e.msg);
    FAILS_WITH("missing cache", "model=" MODEL " precision=int8 calib=/nonexistent/x.cache", want);
    static const char broken[] = "TRT-7103-EntropyCalibration2\nno hex here\n";
    ck_assert_int_eq(tu_write_file(tu_path(tmp, "broken.cache"), broken, strlen(broken)), 0);
    ck_assert_int_ne(bzn_calib_cache_read(tu_path(tmp, "broken.cache"), &t, &e), BZN_OK);
    /* the message names the path as given: cut it at the path and look for the rest */
    const char *rest = strstr(e.msg, "broken.cache");
    snprintf(want, sizeof want, "%s", rest ? rest : e.msg);
    FAILS_WITH("broken cache", "model=" MODEL " precision=int8 calib=broken.cache", want);
    FAILS_WITH("cache with fp32", "model=" MODEL " precision=fp32 calib=broken.cache", "calib is for precision=int8");
#undef FAILS_WITH
}
END_TEST

START_TEST(metadata) {
    free(make_clip());
    /* the class map of the clip, and the messages of the same run */
    int rc = gst_launch("-m " CLIP_SRC " ! " BZN " output=classes message=true ! filesink location=meta-classes.raw");
    ck_assert_msg(rc == 0, "exit status %d:\n%s", rc, log_text);
    uint8_t *cls = unpad("meta-classes.raw", GRAY_STRIDE, FW);
    const size_t fp = (size_t)FW * FH;
    for (int f = 0; f < NFRAMES; f++) {
        unsigned long long count[3] = {0, 0, 0};
        for (size_t i = 0; i < fp; i++) count[cls[fp * f + i]]++;
        frame_message m;
        ck_assert_msg(find_message(log_text, f, &m), "no message for frame %d:\n%s", f, log_text);
        ck_assert_int_eq(m.width, FW);
        ck_assert_int_eq(m.height, FH);
        ck_assert_msg(m.neo == count[0] && m.non == count[1] && m.background == count[2],
                      "frame %d: message %llu/%llu/%llu, class map %llu/%llu/%llu", f, m.neo, m.non, m.background,
                      count[0], count[1], count[2]);
        const double fraction = (double)(count[0] + count[1]) / (double)fp;
        ck_assert_msg(m.fraction > fraction - 1e-5 && m.fraction < fraction + 1e-5, "frame %d: fraction %g, not %g",
                      f, m.fraction, fraction);
    }
    free(cls);
    ck_assert_msg(!find_message(log_text, NFRAMES, &(frame_message){0}), "a message for a frame that was not there");
    /* no messages unless asked for */
    rc = gst_launch("-m " CLIP_SRC " ! " BZN " ! fakesink");
    ck_assert_msg(rc == 0, "exit status %d:\n%s", rc, log_text);
    ck_assert_ptr_null(strstr(log_text, "(element): blazeneo"));
    /* the meta is on every buffer, and survives a conversion downstream (identity lists the
     * metas of each buffer it sees) */
    rc = gst_launch("-v " CLIP_SRC " ! " BZN " output=mask ! videoconvert ! video/x-raw,format=I420 ! "
                    "identity silent=false ! fakesink");
    ck_assert_msg(rc == 0, "exit status %d:\n%s", rc, log_text);
    int chains = 0, metas = 0;
    for (const char *p = log_text; (p = strstr(p, "last-message = chain")); p++) {
        chains++;
        const char *eol = strchr(p, '\n');
        const char *meta = strstr(p, "GstBlazeneoMeta");
        metas += meta && (!eol || meta < eol);
    }
    ck_assert_msg(chains == NFRAMES && metas == NFRAMES, "%d buffers, %d with GstBlazeneoMeta:\n%s", chains, metas,
                  log_text);
}
END_TEST

/* ---- setting up -------------------------------------------------------------------------- */

int main(void) {
    src = tu_env("BZN_SOURCE_DIR");
    const char *build = tu_env("BZN_BUILD_DIR");
    if (!src || !build || !tu_env("BZN_CLI")) {
        fprintf(stderr, "test_gst: run through ctest (BZN_SOURCE_DIR, BZN_BUILD_DIR and BZN_CLI unset)\n");
        return 1;
    }
    if (tu_run("command -v gst-launch-1.0 >/dev/null 2>&1 && command -v gst-inspect-1.0 >/dev/null 2>&1") != 0 &&
        tu_missing("gst-launch-1.0 and gst-inspect-1.0 (Debian: gstreamer1.0-tools)"))
        return TU_SKIP;
    snprintf(plugin_dir, sizeof plugin_dir, "%s/gst", build);
    struct stat st;
    if (stat(tu_path(plugin_dir, "libgstblazeneo.so"), &st) != 0 &&
        tu_missing("the GStreamer element (gst/libgstblazeneo.so: built when CMake finds libgstreamer1.0-dev and "
                   "libgstreamer-plugins-base1.0-dev, BLAZENEO_GSTREAMER not OFF)"))
        return TU_SKIP;
    tmp = tu_tmpdir("gst");
    if (!tmp) {
        fprintf(stderr, "test_gst: cannot create a temporary folder\n");
        return 1;
    }
    /* only this plugin from the build tree, and a registry of our own */
    setenv("GST_PLUGIN_PATH", plugin_dir, 1);
    setenv("GST_REGISTRY", tu_path(tmp, "registry.bin"), 1);
    setenv("GST_DEBUG_NO_COLOR", "1", 1);
    const char *san = tu_env("BZN_SANITIZE");
    if (san && !strcmp(san, "1")) {
        /* the plugin needs the ASan runtime loaded first: the one it links */
        char cmd[8192], asan[4096] = "";
        snprintf(cmd, sizeof cmd, "ldd '%s/libgstblazeneo.so' | awk '/libasan/ {print $3}' > '%s/asan.txt'",
                 plugin_dir, tmp);
        if (tu_run("%s", cmd) == 0) tu_slurp(tu_path(tmp, "asan.txt"), asan, sizeof asan);
        asan[strcspn(asan, "\n")] = 0;
        if (!asan[0] || stat(asan, &st) != 0)
            return tu_skip("sanitizer build, and no libasan found to preload into gst-launch-1.0 (ldd of the "
                           "plugin names none)");
        setenv("LD_PRELOAD", asan, 1);
        /* GStreamer keeps its type system and registry until exit: no leak report */
        setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
        fprintf(stderr, "test_gst: sanitizer build: gst-launch-1.0 runs with LD_PRELOAD=%s\n", asan);
    }
    /* the plugin must load: a broken one would only show as "no element blazeneo" below */
    if (tu_run("gst-inspect-1.0 blazeneo > '%s/inspect0.txt' 2>&1", tmp) != 0) {
        char text[4096];
        tu_slurp(tu_path(tmp, "inspect0.txt"), text, sizeof text);
        fprintf(stderr, "test_gst: the plugin in %s does not load:\n%s\n", plugin_dir, text);
        return 1;
    }
    if (tu_run("gst-inspect-1.0 videotestsrc >/dev/null 2>&1 && gst-inspect-1.0 rawvideoparse >/dev/null 2>&1 && "
               "gst-inspect-1.0 videoconvert >/dev/null 2>&1") != 0 &&
        tu_missing("GStreamer's base plugins: videotestsrc, rawvideoparse, videoconvert (gstreamer1.0-plugins-base)"))
        return TU_SKIP;

    Suite *s = suite_create("gst");
    TCase *tc = tu_case(s, "gst", 600);
    tcase_add_test(tc, inspect);
    tcase_add_test(tc, outputs);
    tcase_add_test(tc, same_as_cli);
    tcase_add_test(tc, caps_change);
    tcase_add_test(tc, errors);
    tcase_add_test(tc, metadata);
    const int failed = tu_run_suite(s);
    /* the temporary folder stays when something failed, for a look at the logs and frames */
    if (!failed && tu_run("rm -rf '%s'", tmp) != 0) fprintf(stderr, "test_gst: cannot remove %s\n", tmp);
    free(tmp);
    return failed;
}
