/*
 * cmd_stream.c - `blazeneo stream -m MODEL -W WIDTH -H HEIGHT [...]`: segment a video stream.
 *
 * Frames come in on stdin as raw RGB24 (WIDTH*HEIGHT*3 bytes each, rows top to bottom, no
 * header: what `ffmpeg -i in.mp4 -f rawvideo -pix_fmt rgb24 -` writes) and go out on stdout,
 * one output frame per input frame, in a raw format ffmpeg can read back:
 *
 *   --out mask      the colour mask (neoplastic red, non-neoplastic green, background black), rgb24
 *   --out overlay   the frame with the polyps blended and outlined in their colour and a legend
 *                   (--alpha, --outline, --legend as segment --overlay), rgb24
 *   --out classes   the class of every pixel as one byte (0 neoplastic, 1 non-neoplastic,
 *                   2 background): gray8, i.e. ffmpeg's `-pix_fmt gray`
 *
 * Each frame is written with write(2) as soon as it is ready (no stdio buffering), so a
 * downstream player sees it at once. Latency statistics go to stderr.
 *
 * Unix details a student might trip over, handled here:
 *   - read(2) on a pipe returns whatever is available, often less than a frame: read_full()
 *     loops until the frame is complete or the stream ends (and retries on EINTR);
 *   - write(2) may also write less than asked: write_full() loops too;
 *   - when the reader of stdout goes away, the kernel sends SIGPIPE, whose default action kills
 *     the process silently. We ignore SIGPIPE, so write() fails with EPIPE instead, and we
 *     report it and exit 1 like any other error.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char *CMD = "stream";

static void help(void) {
    printf("usage: blazeneo stream -m MODEL -W WIDTH -H HEIGHT [-b BACKEND] [-p PRECISION] [-s SIZE]\n"
           "                       [-t THREADS] [--out mask|overlay|classes] [--stats N]\n"
           "                       [--alpha A] [--outline N|--no-outline] [--legend CORNER|--no-legend]\n\n"
           "Segment a video: raw RGB24 frames of WIDTH x HEIGHT (WIDTH*HEIGHT*3 bytes each) are read\n"
           "from stdin until it ends, and one output frame per input frame is written to stdout:\n"
           "  --out mask      colour mask, rgb24 (neoplastic red, non-neoplastic green) [default]\n"
           "  --out overlay   the frame with the polyps blended and outlined in their colour, and\n"
           "                  a legend, rgb24 (--alpha, --outline, --legend below)\n"
           "  --out classes   one byte per pixel, 0 neoplastic / 1 non-neoplastic / 2 background:\n"
           "                  gray8 (ffmpeg -pix_fmt gray), WIDTH*HEIGHT bytes per frame\n\n"
           "  -m, --model FILE    weight file\n"
           "  -W, --width N       frame width in pixels\n"
           "  -H, --height N      frame height in pixels\n"
           "  -s, --size SIZE     network input size, multiple of 32 (default: the model's, 352)\n"
           "  -b, --backend B     the backend:\n");
    cli_backend_help(stdout, 20);
    cli_precision_help(stdout, 20);
    printf("  -t, --threads N     CPU threads (default: all)\n"
           "  --stats N           also print statistics of the last N frames every N frames\n");
    cli_overlay_help(stdout, 20);
    printf("  -h, --help          this help\n\n"
           "At the end, stderr gets the frame count, the latency per frame (mean, median, p90, max:\n"
           "from a frame fully read to its output written) and the sustained FPS (frames / wall time\n"
           "from the first frame's arrival to the last frame written, input waits included).\n"
           "A final frame cut short is an error (exit 1) after every complete frame was written.\n\n"
           "Example (a video through ffmpeg and back):\n"
           "  ffmpeg -i in.mp4 -f rawvideo -pix_fmt rgb24 - |\n"
           "    blazeneo stream -m model.bzn -W 1280 -H 720 --out overlay |\n"
           "    ffmpeg -f rawvideo -pix_fmt rgb24 -s 1280x720 -r 25 -i - -pix_fmt yuv420p out.mp4\n"
           "(-pix_fmt yuv420p on the output side: what players expect of an H.264 file)\n");
}

typedef enum { OUT_MASK, OUT_OVERLAY, OUT_CLASSES } out_kind;

/* Read exactly n bytes unless the input ends first. Returns the number of bytes read
 * (n, or fewer only at end of input), or -1 on a read error (errno set). */
static ssize_t read_full(int fd, uint8_t *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break; /* end of input */
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Write all n bytes; 0 on success, -1 on error (errno set, EPIPE when the reader is gone). */
static int write_full(int fd, const uint8_t *buf, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}



/* ---- latency statistics ------------------------------------------------------------------- */

typedef struct {
    double *ms; /* latency of every frame so far */
    size_t n, cap;
} latencies;

static int lat_push(latencies *l, double ms) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 1024;
        double *p = realloc(l->ms, cap * sizeof *p);
        if (!p) return -1;
        l->ms = p;
        l->cap = cap;
    }
    l->ms[l->n++] = ms;
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* p-th percentile of sorted[0..n), linear interpolation (numpy's default) */
static double percentile(const double *sorted, size_t n, double p) {
    double pos = p / 100.0 * (double)(n - 1);
    size_t lo = (size_t)pos;
    if (lo >= n - 1) return sorted[n - 1];
    return sorted[lo] + (pos - (double)lo) * (sorted[lo + 1] - sorted[lo]);
}

/* One line of statistics over ms[0..n) (which is left untouched) and `wall_ms` of wall time. */
static void print_stats(const char *label, const double *ms, size_t n, double wall_ms) {
    if (n == 0) {
        fprintf(stderr, "blazeneo %s: %s: no frames\n", CMD, label);
        return;
    }
    double *s = malloc(n * sizeof *s);
    if (!s) return;
    memcpy(s, ms, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += s[i];
    fprintf(stderr,
            "blazeneo %s: %s: %zu frame%s, latency mean %.1f / median %.1f / p90 %.1f / max %.1f ms, "
            "sustained %.2f FPS\n",
            CMD, label, n, n == 1 ? "" : "s", sum / n, percentile(s, n, 50), percentile(s, n, 90), s[n - 1],
            wall_ms > 0 ? n * 1000.0 / wall_ms : 0.0);
    free(s);
}

/* ---- the command ---------------------------------------------------------------------------- */

/* what the command line asks for */
typedef struct {
    const char *model, *backend;
    int fw, fh, w, h, threads, stats_every;
    out_kind out;
    cli_overlay ov;
    cli_config pcfg; /* -p, --calib, --keep-fp32 */;
} stream_args;

/* The command line into *a: -1 to go on, else the exit status (help, a usage error). */
static int parse_args(int argc, char **argv, stream_args *a) {
    enum { OPT_OUT = 256, OPT_STATS };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"width", required_argument, 0, 'W'},
        {"height", required_argument, 0, 'H'},    {"size", required_argument, 0, 's'},
        {"backend", required_argument, 0, 'b'},   
        {"threads", required_argument, 0, 't'},   {"out", required_argument, 0, OPT_OUT},
        {"stats", required_argument, 0, OPT_STATS}, {"help", no_argument, 0, 'h'},
        CLI_PRECISION_OPTIONS, CLI_OVERLAY_OPTIONS, {0}};
    *a = (stream_args){.out = OUT_MASK};
    cli_overlay_init(&a->ov);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:W:H:s:b:p:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'W':
            if (cli_parse_int(optarg, 1, 16384, &a->fw)) return cli_usage_error(CMD, "invalid width '%s' (1 to 16384)", optarg);
            break;
        case 'H':
            if (cli_parse_int(optarg, 1, 16384, &a->fh)) return cli_usage_error(CMD, "invalid height '%s' (1 to 16384)", optarg);
            break;
        case 's':
            if (cli_parse_size(optarg, &a->w, &a->h)) return cli_usage_error(CMD, "invalid size '%s'", optarg);
            break;
        case 'b':
            if (cli_parse_backend(CMD, optarg, &a->backend)) return EXIT_USAGE;
            break;
        case 't':
            if (cli_parse_int(optarg, 0, 1024, &a->threads))
                return cli_usage_error(CMD, "invalid thread count '%s' (0 = all, up to 1024)", optarg);
            break;
        case OPT_OUT:
            if (!strcmp(optarg, "mask")) a->out = OUT_MASK;
            else if (!strcmp(optarg, "overlay")) a->out = OUT_OVERLAY;
            else if (!strcmp(optarg, "classes")) a->out = OUT_CLASSES;
            else return cli_usage_error(CMD, "unknown output '%s' (mask, overlay, classes)", optarg);
            break;
        case OPT_STATS:
            if (cli_parse_int(optarg, 1, 1 << 30, &a->stats_every))
                return cli_usage_error(CMD, "invalid --stats '%s' (frames, at least 1)", optarg);
            break;
        case 'h': help(); return EXIT_OK;
        default: {
            int r = cli_overlay_option(CMD, c, optarg, &a->ov);
            if (r < 0) r = cli_precision_option(CMD, c, optarg, &a->pcfg);
            if (r) return EXIT_USAGE;
        }
        }
    }
    const char *ov_opt = a->ov.given ? a->ov.given : a->ov.legend_given;
    if (ov_opt && a->out != OUT_OVERLAY) return cli_usage_error(CMD, "%s is for --out overlay", ov_opt);
    if (!a->model) return cli_usage_error(CMD, "no model given (-m MODEL)");
    if (!a->fw || !a->fh) return cli_usage_error(CMD, "the frame size is needed (-W WIDTH -H HEIGHT)");
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s' (frames come on stdin)", argv[optind]);
    if (isatty(STDIN_FILENO))
        return cli_usage_error(CMD, "stdin is a terminal: pipe raw RGB24 frames in (e.g. from ffmpeg)");
    if (isatty(STDOUT_FILENO))
        return cli_usage_error(CMD, "stdout is a terminal: redirect or pipe the raw output frames");
    return -1;
}

static int run(const stream_args *a) {
    const int fw = a->fw, fh = a->fh, stats_every = a->stats_every;
    const out_kind out = a->out;
    cli_config pcfg = a->pcfg;
    bzn_model *m = NULL;
    bzn_ctx *ctx = NULL;
    pcfg.width = a->w;
    pcfg.height = a->h;
    pcfg.threads = a->threads;
    pcfg.backend = a->backend;
    if (cli_open(CMD, a->model, &pcfg, &m, &ctx)) return EXIT_FAIL;

    const size_t npix = (size_t)fw * fh, in_bytes = npix * 3;
    const size_t out_bytes = out == OUT_CLASSES ? npix : npix * 3;
    uint8_t *frame = malloc(in_bytes), *classes = malloc(npix);
    uint8_t *rgb = out == OUT_CLASSES ? NULL : malloc(npix * 3);
    latencies lat = {0};
    int rc = EXIT_OK;
    if (!frame || !classes || (out != OUT_CLASSES && !rgb)) {
        fprintf(stderr, "blazeneo %s: out of memory for %dx%d frames\n", CMD, fw, fh);
        rc = EXIT_FAIL;
        goto done;
    }
    /* a closed pipe must be an error we can report, not a silent death */
    signal(SIGPIPE, SIG_IGN);

    double t_first = 0, t_last = 0, t_window = 0;
    for (;;) {
        ssize_t got = read_full(STDIN_FILENO, frame, in_bytes);
        if (got < 0) {
            fprintf(stderr, "blazeneo %s: cannot read frame %zu: %s\n", CMD, lat.n + 1, strerror(errno));
            rc = EXIT_FAIL;
            break;
        }
        if (got == 0) break; /* clean end of the stream */
        if ((size_t)got < in_bytes) {
            fprintf(stderr,
                    "blazeneo %s: the input ended in the middle of frame %zu: got %zd of %zu bytes, "
                    "%zu bytes missing (is the frame size %dx%d right?)\n",
                    CMD, lat.n + 1, got, in_bytes, in_bytes - (size_t)got, fw, fh);
            rc = EXIT_FAIL;
            break;
        }
        double t0 = cli_now_ms();
        if (lat.n == 0) t_first = t_window = t0;

        bzn_error e = {0};
        if (bzn_run_rgb(ctx, frame, fw, fh, fw * 3, &e) != BZN_OK ||
            bzn_class_map(ctx, classes, fw, fh, &e) != BZN_OK) {
            fprintf(stderr, "blazeneo %s: frame %zu: %s\n", CMD, lat.n + 1, e.msg);
            rc = EXIT_FAIL;
            break;
        }
        const uint8_t *result = classes;
        if (out == OUT_MASK) bzn_colorize(classes, npix, rgb), result = rgb;
        if (out == OUT_OVERLAY) {
            if (bzn_overlay_draw(frame, classes, fw, fh, &a->ov.style, rgb, &e) != BZN_OK) {
                fprintf(stderr, "blazeneo %s: frame %zu: %s\n", CMD, lat.n + 1, e.msg);
                rc = EXIT_FAIL;
                break;
            }
            result = rgb;
        }
        if (write_full(STDOUT_FILENO, result, out_bytes) != 0) {
            fprintf(stderr, "blazeneo %s: cannot write frame %zu: %s%s\n", CMD, lat.n + 1, strerror(errno),
                    errno == EPIPE ? " (the reading end of the output was closed)" : "");
            rc = EXIT_FAIL;
            break;
        }
        t_last = cli_now_ms();
        if (lat_push(&lat, t_last - t0) != 0) {
            fprintf(stderr, "blazeneo %s: out of memory\n", CMD);
            rc = EXIT_FAIL;
            break;
        }
        if (stats_every && lat.n % (size_t)stats_every == 0) {
            char label[64];
            snprintf(label, sizeof label, "frames %zu-%zu", lat.n - stats_every + 1, lat.n);
            print_stats(label, lat.ms + lat.n - stats_every, (size_t)stats_every, t_last - t_window);
            t_window = t_last;
        }
    }
    /* the summary, also after an error: it covers the frames that were written */
    print_stats("total", lat.ms, lat.n, t_last - t_first);

done:
    free(lat.ms);
    free(rgb);
    free(classes);
    free(frame);
    bzn_ctx_free(ctx);
    bzn_model_free(m);
    return rc;
}

int cmd_stream(int argc, char **argv) {
    stream_args a;
    const int rc = parse_args(argc, argv, &a);
    return rc >= 0 ? rc : run(&a);
}
