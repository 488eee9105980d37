/*
 * cmd_bench.c - `blazeneo bench -m MODEL [...]`: how fast one configuration runs, and where the
 * time and the memory go.
 *
 * A configuration is (backend, precision) at one input size and thread count. Two things are
 * timed, each over the same number of iterations after the same warm-up:
 *
 *   end to end     a decoded JPEG frame already in memory -> bzn_run_rgb (resize, normalise,
 *                  network) -> bzn_class_map back at the frame's own size. What a video
 *                  pipeline pays per frame, minus decoding and display.
 *   network alone  bzn_run_tensor on the already preprocessed input tensor: what PyTorch
 *                  benchmarks usually measure (bench/pytorch_bench.py does exactly this).
 *
 * Statistics are over per-iteration wall times (CLOCK_MONOTONIC): min, max, mean, and the
 * median / p90 / p99 percentiles with linear interpolation between the two nearest samples
 * (numpy's default, so they compare directly with the PyTorch script). FPS is
 * frames per iteration * 1000 / median.
 *
 * With --layers / --svg a separate pass runs the network alone with the engine's per-layer
 * profiling switched on, so the headline figures are never measured with profiling overhead.
 *
 * With --streams N a third timing compares two ways of spending the same threads on many
 * frames: the one context above (T threads on each frame in turn; images/s from its end to
 * end mean) against N contexts of T / N threads each, one per stream, all running end to end
 * at once on their own threads (images/s = frames done / wall time). Several streams share
 * one model, so its weights are held once.
 */
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char *CMD = "bench";

static void help(void) {
    printf("usage: blazeneo bench -m MODEL [-b BACKEND] [-p PRECISION] [-s SIZE] [-B N] [-n ITERS]\n"
           "                      [--warmup W] [-t THREADS] [--image JPEG] [--layers] [--svg FILE] [--json]\n\n"
           "Measure the latency and throughput of one configuration (backend, precision, size,\n"
           "threads), and its memory: weight file, folded weights, activation arena, peak RSS.\n\n"
           "Two timings, each ITERS iterations after W untimed warm-up iterations:\n"
           "  end to end     decoded frames in memory -> bzn_run_rgb_batch -> class maps at the frames' size\n"
           "  network alone  bzn_run_tensor on the preprocessed input (what PyTorch scripts time)\n"
           "reported as min / median / mean / p90 / p99 / max in ms, and FPS = batch * 1000 / median.\n\n"
           "  -m, --model FILE     weight file\n"
           "  -b, --backend B      the backend:\n");
    cli_backend_help(stdout, 21);
    cli_precision_help(stdout, 21);
    printf("  -s, --size SIZE      network input size, multiple of 32 (default: the model's, 352)\n"
           "  -B, --batch N        frames per run (default 1): the context runs N frames together\n"
           "                       (bzn_ctx_options.batch); latencies are per run, FPS is images/s\n"
           "  -n, --iters N        timed iterations (default 20)\n"
           "  --warmup W           untimed iterations first (default 3)\n"
           "  -t, --threads N      CPU threads (default: all)\n"
           "  --image JPEG         the frame to time (default: the first samples/*.jpeg next to the\n"
           "                       current folder or the executable, else a synthetic 1280x995 frame)\n"
           "  --layers             per-layer profile: time, share, GMAC and GFLOP/s of every layer in\n"
           "                       execution order, the 10 slowest marked (a separate profiled pass)\n"
           "  --svg FILE           draw the per-layer times as a bar chart (SVG)\n"
           "  --streams N          throughput: also run N contexts of THREADS / N threads each (at\n"
           "                       least 1) on N streams of frames at once, end to end, and report\n"
           "                       their images/s against the one context's (same frames, same run)\n"
           "  --json               one JSON object on stdout instead of the report (with --layers,\n"
           "                       the profile is its \"layers\" array)\n"
           "  -h, --help           this help\n\n"
           "Timings on a shared or busy machine are noisy: compare configurations measured side by\n"
           "side (bench/compare.py does so against PyTorch), not figures taken at different times.\n");
}


/* ---- statistics ------------------------------------------------------------------------- */

typedef struct {
    double min, max, mean, median, p90, p99;
} bench_stats;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* p-th percentile of sorted[0..n), linear interpolation between closest ranks (numpy default) */
static double percentile(const double *sorted, int n, double p) {
    double pos = p / 100.0 * (n - 1);
    int lo = (int)pos;
    if (lo >= n - 1) return sorted[n - 1];
    double frac = pos - lo;
    return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

/* sorts t in place (the order of the samples is not needed afterwards) */
static void compute_stats(double *t, int n, bench_stats *s) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += t[i];
    s->min = t[0];
    s->max = t[n - 1];
    s->mean = sum / n;
    s->median = percentile(t, n, 50);
    s->p90 = percentile(t, n, 90);
    s->p99 = percentile(t, n, 99);
}

/* ---- small helpers ---------------------------------------------------------------------- */


/* The value of the first "key: value" line of a /proc file (spaces after the colon skipped)
 * into buf; 0 when there is none. */
static int proc_field(const char *path, const char *key, char *buf, size_t size) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[512];
    const size_t klen = strlen(key);
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) != 0) continue;
        const char *v = strchr(line, ':');
        if (!v) continue;
        v++;
        while (*v == ' ' || *v == '\t') v++;
        snprintf(buf, size, "%s", v);
        buf[strcspn(buf, "\n")] = 0;
        found = 1;
    }
    fclose(f);
    return found;
}

/* "model name" of the first processor in /proc/cpuinfo, or "unknown" */
static void cpu_model(char *buf, size_t size) {
    if (!proc_field("/proc/cpuinfo", "model name", buf, size)) snprintf(buf, size, "unknown");
}

/* This process's peak RSS in MiB: VmHWM, the high-water mark of its own memory. (Not
 * getrusage's ru_maxrss: Linux carries that across exec, so a bench started by a larger
 * process, a Python script say, would report at least its parent's RSS at the fork.)
 * ru_maxrss only where /proc is missing. */
static double peak_rss_mb(void) {
    char v[64];
    if (proc_field("/proc/self/status", "VmHWM", v, sizeof v)) return strtod(v, NULL) / 1024.0; /* "123 kB" */
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return ru.ru_maxrss / 1024.0; /* Linux reports kilobytes */
}


/* First samples/<name>.jpeg (sorted) in the current folder, then in the executable's folder
 * and its parent (build/blazeneo -> samples/), into path; 0 when found. */
static int find_sample(char *path, size_t size) {
    char exe[PATH_MAX - 64], dirs[3][PATH_MAX];
    int nd = 0;
    snprintf(dirs[nd++], sizeof dirs[0], "samples");
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0; /* the executable's folder, e.g. /src/build */
            snprintf(dirs[nd++], sizeof dirs[0], "%s/samples", exe);
            if ((slash = strrchr(exe, '/'))) {
                *slash = 0; /* its parent, e.g. /src */
                snprintf(dirs[nd++], sizeof dirs[0], "%s/samples", exe);
            }
        }
    }
    for (int d = 0; d < nd; d++) {
        static const char *patterns[] = {"*.jpeg", "*.jpg"};
        for (int p = 0; p < 2; p++) {
            char pat[PATH_MAX + 16];
            if (snprintf(pat, sizeof pat, "%s/%s", dirs[d], patterns[p]) >= (int)sizeof pat) continue;
            glob_t g;
            int found = glob(pat, 0, NULL, &g) == 0 && g.gl_pathc > 0; /* glob sorts */
            if (found) snprintf(path, size, "%s", g.gl_pathv[0]);
            globfree(&g);
            if (found) return 0;
        }
    }
    return -1;
}

/* A deterministic stand-in for a colonoscopy frame: reddish, with texture. */
static int synthetic_frame(bzn_image *img, int width, int height) {
    img->pixels = malloc((size_t)width * height * 3);
    if (!img->pixels) return -1;
    img->width = width;
    img->height = height;
    img->channels = 3;
    uint32_t state = 12345;
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) {
            state = state * 1664525u + 1013904223u; /* LCG noise */
            int noise = (int)(state >> 27);         /* 0..31 */
            uint8_t *p = img->pixels + ((size_t)y * width + x) * 3;
            p[0] = (uint8_t)(150 + (x * 60) / width + noise / 2);
            p[1] = (uint8_t)(60 + (y * 60) / height + noise / 4);
            p[2] = (uint8_t)(50 + noise);
        }
    return 0;
}



/* ---- per-layer profile ------------------------------------------------------------------- */

typedef struct {
    bzn_layer_info info;
    double ms;   /* mean wall time per run */
    int rank;    /* 1 = slowest; 0 when not in the top 10 */
} layer_row;

#define TOP_N 10

static double gflops(const layer_row *r) { return r->ms > 0 ? 2.0 * (double)r->info.macs / (r->ms * 1e6) : 0; }

/* the profile's "runs" column: the arithmetic, and int8 out when the output is handed on as int8 */
static const char *layer_runs(const bzn_layer_info *l) {
    return l->precision != BZN_PRECISION_INT8 ? bzn_precision_name(l->precision) : l->int8_output ? "int8>8" : "int8";
}

/* Rank the TOP_N slowest layers (rows stay in execution order). */
static void rank_layers(layer_row *rows, int n) {
    for (int k = 1; k <= TOP_N && k <= n; k++) {
        int best = -1;
        for (int i = 0; i < n; i++)
            if (!rows[i].rank && (best < 0 || rows[i].ms > rows[best].ms)) best = i;
        rows[best].rank = k;
    }
}

static void print_layers(const layer_row *rows, int n, double total_ms) {
    printf("\nper-layer profile (network alone, mean of the profiled runs; * = %d slowest, ranked)\n", TOP_N);
    printf("%-4s %-4s %-34s %-26s %-6s %9s %7s %8s %9s\n", "#", "top", "layer", "op", "runs", "ms", "share", "GMAC",
           "GFLOP/s");
    for (int i = 0; i < n; i++) {
        const layer_row *r = &rows[i];
        char top[8] = "";
        if (r->rank) snprintf(top, sizeof top, "*%d", r->rank);
        char gf[16] = "-";
        if (r->info.macs > 0 && r->ms > 0) snprintf(gf, sizeof gf, "%.1f", gflops(r));
        printf("%-4d %-4s %-34s %-26s %-6s %9.3f %6.1f%% %8.4f %9s\n", i, top, r->info.name, r->info.op,
               layer_runs(&r->info), r->ms, total_ms > 0 ? 100.0 * r->ms / total_ms : 0.0, r->info.macs / 1e9, gf);
    }
    printf("sum of layers: %.3f ms per run\n", total_ms);
}

/* A horizontal bar chart, one bar per layer in execution order (the slowest highlighted),
 * written to a temporary file beside `path` and renamed over it only when complete. */
static int write_svg(const char *path, const layer_row *rows, int n, const char *title) {
    const int row_h = 14, label_w = 300, bar_w = 560, top = 48, bottom = 40;
    const int width = label_w + bar_w + 90, height = top + n * row_h + bottom;
    double max_ms = 0;
    for (int i = 0; i < n; i++)
        if (rows[i].ms > max_ms) max_ms = rows[i].ms;
    /* axis: a "nice" step (1, 2 or 5 x 10^k ms) giving about 5 ticks */
    double step = 1;
    if (max_ms > 0) {
        double raw = max_ms / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
        step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
    }
    const double axis_ms = max_ms > 0 ? max_ms * 1.05 : 1;
    const double scale = bar_w / axis_ms; /* pixels per ms */

    bzn_writer *w;
    bzn_error e;
    if (bzn_writer_open(path, &w, &e) != BZN_OK) return cli_error(CMD, &e);
    FILE *f = bzn_writer_stream(w);
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"monospace\" font-size=\"10\">\n", width, height, width, height);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n", width, height);
    fprintf(f, "<text x=\"10\" y=\"20\" font-size=\"14\">");
    cli_markup_text(f, title);
    fprintf(f, "</text>\n<text x=\"10\" y=\"36\">per-layer wall time (ms per run), execution order; "
               "red: the %d slowest</text>\n", TOP_N);
    /* grid lines and tick labels */
    for (int k = 0; k * step <= axis_ms; k++) {
        double t = k * step, x = label_w + t * scale;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n", x, top - 4, x,
                top + n * row_h);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", x, top + n * row_h + 14, t);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">ms</text>\n", label_w + bar_w / 2,
            top + n * row_h + 30);
    for (int i = 0; i < n; i++) {
        const layer_row *r = &rows[i];
        int y = top + i * row_h;
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", label_w - 6, y + row_h - 3);
        cli_markup_text(f, r->info.name);
        fprintf(f, "</text>\n<rect class=\"bar\" x=\"%d\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"%s\">"
                   "<title>", label_w, y + 1, r->ms * scale, row_h - 2, r->rank ? "#d62728" : "#4c78a8");
        cli_markup_text(f, r->info.name);
        fprintf(f, " (");
        cli_markup_text(f, r->info.op);
        fprintf(f, "): %.3f ms</title></rect>\n", r->ms);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" fill=\"#555\">%.2f</text>\n", label_w + r->ms * scale + 3,
                y + row_h - 3, r->ms);
    }
    fprintf(f, "</svg>\n");
    return bzn_writer_close(w, 0, &e) == BZN_OK ? 0 : cli_error(CMD, &e);
}

/* ---- reports ----------------------------------------------------------------------------- */

typedef struct {
    const char *model, *precision, *image;
    const char *backend;
    const char *backend_detail; /* bzn_ctx_backend_detail: the CPU's instruction set */
    int width, height, threads, batch, iters, warmup;
    int frame_w, frame_h;
    bench_stats e2e, net;
    int64_t params, macs;
    uint64_t file_bytes, weight_bytes, activation_bytes, scratch_bytes, prepared_bytes;
    double rss_mb;
    int handoffs; /* INT8 convolution outputs passed on as int8 */
    /* --streams: N contexts x threads_each against the one context */
    int streams, stream_threads;
    double one_ips, streams_ips; /* images/s */
    bench_stats stream;         /* per-frame latency over every stream's frames */
    char cpu[256];
    long nproc;
} bench_result;

static double fps_of(const bench_result *r, const bench_stats *s) { return r->batch * 1000.0 / s->median; }

static void json_stats(FILE *f, const bench_result *r, const bench_stats *s) {
    fprintf(f, "\"min_ms\": %.4f, \"median_ms\": %.4f, \"mean_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f, "
               "\"max_ms\": %.4f, \"fps\": %.3f",
            s->min, s->median, s->mean, s->p90, s->p99, s->max, fps_of(r, s));
}

static void print_json(const bench_result *r, const layer_row *rows, int n_rows) {
    FILE *f = stdout;
    fprintf(f, "{\"version\": ");
    cli_json_string(f, BZN_VERSION_STRING);
    fprintf(f, ", \"model\": ");
    cli_json_string(f, r->model);
    fprintf(f, ", \"backend\": \"%s\", \"backend_detail\": \"%s\", \"precision\": ", r->backend, r->backend_detail);
    cli_json_string(f, r->precision);
    fprintf(f, ", \"size\": \"%dx%d\", \"width\": %d, \"height\": %d, \"threads\": %d, \"batch\": %d, "
               "\"iters\": %d, \"warmup\": %d, ",
            r->width, r->height, r->width, r->height, r->threads, r->batch, r->iters, r->warmup);
    fprintf(f, "\"image\": ");
    cli_json_string(f, r->image);
    fprintf(f, ", \"frame_width\": %d, \"frame_height\": %d,\n ", r->frame_w, r->frame_h);
    json_stats(f, r, &r->e2e);
    fprintf(f, ",\n \"network\": {");
    json_stats(f, r, &r->net);
    fprintf(f, "},\n \"params\": %lld, \"gmac\": %.4f, \"weight_file_bytes\": %llu, \"weight_bytes\": %llu, "
               "\"activation_bytes\": %llu, \"scratch_bytes\": %llu, \"prepared_weight_bytes\": %llu, "
               "\"peak_rss_mb\": %.2f, \"int8_handoffs\": %d,\n",
            (long long)r->params, r->macs / 1e9, (unsigned long long)r->file_bytes,
            (unsigned long long)r->weight_bytes, (unsigned long long)r->activation_bytes,
            (unsigned long long)r->scratch_bytes, (unsigned long long)r->prepared_bytes, r->rss_mb, r->handoffs);
    if (r->streams)
        fprintf(f, " \"streams\": {\"n\": %d, \"threads_each\": %d, \"images_per_s\": %.3f, "
                   "\"one_context_images_per_s\": %.3f, \"median_ms\": %.4f, \"p90_ms\": %.4f},\n",
                r->streams, r->stream_threads, r->streams_ips, r->one_ips, r->stream.median, r->stream.p90);
    fprintf(f, " \"machine\": {\"cpu\": ");
    cli_json_string(f, r->cpu);
    fprintf(f, ", \"nproc\": %ld}", r->nproc);
    if (rows) {
        double total = 0;
        for (int i = 0; i < n_rows; i++) total += rows[i].ms;
        fprintf(f, ",\n \"layers\": [");
        for (int i = 0; i < n_rows; i++) {
            const layer_row *l = &rows[i];
            fprintf(f, "%s\n  {\"name\": ", i ? "," : "");
            cli_json_string(f, l->info.name);
            fprintf(f, ", \"op\": ");
            cli_json_string(f, l->info.op);
            fprintf(f, ", \"precision\": \"%s\", \"int8_output\": %s", bzn_precision_name(l->info.precision),
                    l->info.int8_output ? "true" : "false");
            fprintf(f, ", \"ms\": %.5f, \"share\": %.5f, \"gmac\": %.6f, \"gflops\": %.3f, \"top\": %d}", l->ms,
                    total > 0 ? l->ms / total : 0.0, l->info.macs / 1e9, gflops(l), l->rank);
        }
        fprintf(f, "\n ]");
    }
    fprintf(f, "}\n");
}

static void print_stats_row(const char *what, const bench_result *r, const bench_stats *s) {
    printf("  %-14s %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %9.1f\n", what, s->min, s->median, s->mean, s->p90, s->p99,
           s->max, fps_of(r, s));
}

static void print_report(const bench_result *r) {
    printf("model         : %s\n", r->model);
    printf("configuration : backend %s%s%s%s, precision %s, %dx%d input, %d thread%s, batch %d\n",
           r->backend, *r->backend_detail ? " (" : "", r->backend_detail, *r->backend_detail ? ")" : "", r->precision, r->width, r->height, r->threads, r->threads == 1 ? "" : "s",
           r->batch);
    printf("machine       : %s, %ld CPU%s online\n", r->cpu, r->nproc, r->nproc == 1 ? "" : "s");
    if (strcmp(r->image, "synthetic") == 0)
        printf("frame         : synthetic %dx%d (no --image, no samples/ found), kept in memory\n", r->frame_w,
               r->frame_h);
    else
        printf("frame         : %s (%dx%d), decoded once and kept in memory\n", r->image, r->frame_w, r->frame_h);
    printf("runs          : %d timed run%s of %d frame%s after %d warm-up\n\n", r->iters,
           r->iters == 1 ? "" : "s", r->batch, r->batch == 1 ? "" : "s", r->warmup);
    printf("  %-14s %8s %8s %8s %8s %8s %8s %9s\n", "ms/run", "min", "median", "mean", "p90", "p99", "max",
           r->batch == 1 ? "FPS" : "images/s");
    print_stats_row("end to end", r, &r->e2e);
    print_stats_row("network alone", r, &r->net);
    printf("\nwork          : %lld parameters, %.3f GMAC per frame (sum over the layers run)\n",
           (long long)r->params, r->macs / 1e9);
    printf("memory        : weight file %.1f MB, model's biases and BN scales %.1f MB, weights in the\n"
           "                backend's forms %.1f MB (folded, quantized, packed: shared by every context);\n"
           "                per context: activation arena %.1f MB (every tensor, by liveness, x batch)\n"
           "                + backend scratch %.1f MB (im2col columns, padded input planes);\n"
           "                peak RSS %.1f MB\n",
           r->file_bytes / 1e6, r->weight_bytes / 1e6, r->prepared_bytes / 1e6, r->activation_bytes / 1e6,
           r->scratch_bytes / 1e6, r->rss_mb);
    if (r->handoffs)
        printf("int8          : %d convolution outputs go to the next convolution as int8 (the rest as float)\n",
               r->handoffs);
    if (r->streams)
        printf("throughput    : end to end, images/s\n"
               "                1 context x %d thread%s, one frame at a time: %9.1f\n"
               "                %d contexts x %d thread%s, %d streams at once:  %9.1f  (%.2fx; per frame median %.2f ms,\n"
               "                p90 %.2f ms)\n",
               r->threads, r->threads == 1 ? "" : "s", r->one_ips, r->streams, r->stream_threads,
               r->stream_threads == 1 ? "" : "s", r->streams, r->streams_ips, r->streams_ips / r->one_ips,
               r->stream.median, r->stream.p90);
}

/* One end-to-end run: `batch` copies of the decoded frame through bzn_run_rgb_batch, then each
 * frame's class map at the frame's size (frames: batch entries, classes: width x height). */
static bzn_status run_frames(bzn_ctx *ctx, const bzn_image *img, int batch, bzn_frame *frames, uint8_t *classes,
                             bzn_error *e) {
    for (int b = 0; b < batch; b++) frames[b] = (bzn_frame){img->pixels, img->width, img->height, img->width * 3};
    bzn_status s = bzn_run_rgb_batch(ctx, frames, batch, e);
    for (int b = 0; s == BZN_OK && b < batch; b++) s = bzn_class_map_at(ctx, b, classes, img->width, img->height, e);
    return s;
}

/* ---- throughput: several streams at once ------------------------------------------------ */

/* Where the streams wait until every one is warm, then start together. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ready, go;
} start_gate;

typedef struct {
    bzn_ctx *ctx;
    const bzn_image *img;
    start_gate *start;
    int batch, iters, warmup;
    double *ms;   /* iters per-run times */
    double end;   /* when the last run finished (cli_now_ms) */
    bzn_error e;
    int failed;
} stream_job;

/* One stream: warm up, wait for the others, then run its frames end to end as fast as it can. */
static void *stream_main(void *arg) {
    stream_job *j = arg;
    uint8_t *classes = malloc((size_t)j->img->width * j->img->height);
    bzn_frame *frames = malloc((size_t)j->batch * sizeof *frames);
    if (!classes || !frames) {
        cli_fail(&j->e, BZN_ERR_NOMEM, "out of memory");
        j->failed = 1;
    }
    for (int it = -j->warmup; it < j->iters; it++) {
        if (it == 0) { /* every stream warm: start together */
            start_gate *g = j->start;
            pthread_mutex_lock(&g->mu);
            g->ready++;
            pthread_cond_broadcast(&g->cv);
            while (!g->go) pthread_cond_wait(&g->cv, &g->mu);
            pthread_mutex_unlock(&g->mu);
        }
        if (j->failed) continue;
        const double t0 = cli_now_ms();
        if (run_frames(j->ctx, j->img, j->batch, frames, classes, &j->e) != BZN_OK) j->failed = 1;
        else if (it >= 0) j->ms[it] = cli_now_ms() - t0;
    }
    j->end = cli_now_ms();
    free(classes);
    free(frames);
    return NULL;
}

/* --streams: n contexts of `threads` threads each on model m, iters runs each after warmup;
 * fills r->streams_ips and r->stream; 0, or an exit status after printing the error. */
static int run_streams(const bzn_model *m, const cli_config *cfg, int n, int threads, int iters, int warmup,
                       const bzn_image *img, bench_result *r) {
    cli_config c = *cfg;
    c.threads = threads;
    c.quiet = 1; /* the precision note was printed for the first context */
    stream_job *jobs = calloc((size_t)n, sizeof *jobs);
    pthread_t *tids = calloc((size_t)n, sizeof *tids);
    double *all = malloc((size_t)n * iters * sizeof *all);
    start_gate start = {.ready = 0, .go = 0};
    pthread_mutex_init(&start.mu, NULL);
    pthread_cond_init(&start.cv, NULL);
    int rc = 0, made = 0, started = 0;
    if (!jobs || !tids || !all) {
        fprintf(stderr, "blazeneo %s: out of memory\n", CMD);
        rc = EXIT_FAIL;
        goto done;
    }
    for (; made < n; made++)
        if ((rc = cli_ctx_create(CMD, m, &c, &jobs[made].ctx)) != 0) goto done;
    for (int i = 0; i < n; i++) {
        jobs[i] = (stream_job){jobs[i].ctx, img, &start, c.batch, iters, warmup, all + (size_t)i * iters, 0, {0}, 0};
        if (pthread_create(&tids[i], NULL, stream_main, &jobs[i]) != 0) break;
        started++;
    }
    if (started < n) { /* the ones started still run (and are waited for), but give no figure */
        fprintf(stderr, "blazeneo %s: cannot start %d stream threads\n", CMD, n);
        rc = EXIT_FAIL;
    }
    pthread_mutex_lock(&start.mu); /* every started stream warm: go */
    while (start.ready < started) pthread_cond_wait(&start.cv, &start.mu);
    start.go = 1;
    pthread_cond_broadcast(&start.cv);
    pthread_mutex_unlock(&start.mu);
    const double t0 = cli_now_ms();
    double end = t0;
    for (int i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
        if (jobs[i].end > end) end = jobs[i].end;
        if (jobs[i].failed && !rc) rc = cli_error(CMD, &jobs[i].e);
    }
    if (!rc) {
        r->streams = n;
        r->stream_threads = bzn_ctx_threads(jobs[0].ctx);
        r->streams_ips = (double)n * iters * c.batch * 1000.0 / (end - t0);
        compute_stats(all, n * iters, &r->stream);
    }
done:
    for (int i = 0; jobs && i < made; i++) bzn_ctx_free(jobs[i].ctx);
    pthread_cond_destroy(&start.cv);
    pthread_mutex_destroy(&start.mu);
    free(jobs);
    free(tids);
    free(all);
    return rc;
}

/* ---- the command ---------------------------------------------------------------------------- */

/* what the command line asks for */
typedef struct {
    const char *model, *image, *svg, *backend;
    cli_config pcfg; /* -p, --calib, --keep-fp32 */;
    int w, h, batch, iters, warmup, threads, layers, json, streams;
} bench_args;

/* The command line into *a: -1 to go on, else the exit status (help, a usage error). */
static int parse_args(int argc, char **argv, bench_args *a) {
    enum { OPT_WARMUP = 256, OPT_IMAGE, OPT_LAYERS, OPT_SVG, OPT_JSON, OPT_STREAMS };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"backend", required_argument, 0, 'b'},
        {"size", required_argument, 0, 's'},
        {"batch", required_argument, 0, 'B'}, {"iters", required_argument, 0, 'n'},
        {"warmup", required_argument, 0, OPT_WARMUP}, {"threads", required_argument, 0, 't'},
        {"image", required_argument, 0, OPT_IMAGE}, {"layers", no_argument, 0, OPT_LAYERS},
        {"svg", required_argument, 0, OPT_SVG},    {"json", no_argument, 0, OPT_JSON},
        {"streams", required_argument, 0, OPT_STREAMS},
        {"help", no_argument, 0, 'h'},             CLI_PRECISION_OPTIONS, {0}};
    *a = (bench_args){.batch = 1, .iters = 20, .warmup = 3};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:b:p:s:B:n:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'b':
            if (cli_parse_backend(CMD, optarg, &a->backend)) return EXIT_USAGE;
            break;
        case 's':
            if (cli_parse_size(optarg, &a->w, &a->h)) return cli_usage_error(CMD, "invalid size '%s'", optarg);
            break;
        case 'B':
            if (cli_parse_int(optarg, 1, 1024, &a->batch))
                return cli_usage_error(CMD, "invalid batch '%s' (1 to 1024 frames)", optarg);
            break;
        case 'n':
            if (cli_parse_int(optarg, 1, 1 << 24, &a->iters))
                return cli_usage_error(CMD, "invalid iteration count '%s' (at least 1)", optarg);
            break;
        case OPT_WARMUP:
            if (cli_parse_int(optarg, 0, 1 << 24, &a->warmup))
                return cli_usage_error(CMD, "invalid warm-up count '%s' (0 or more)", optarg);
            break;
        case 't':
            if (cli_parse_int(optarg, 0, 1024, &a->threads))
                return cli_usage_error(CMD, "invalid thread count '%s' (0 = all, up to 1024)", optarg);
            break;
        case OPT_IMAGE: a->image = optarg; break;
        case OPT_LAYERS: a->layers = 1; break;
        case OPT_SVG: a->svg = optarg; break;
        case OPT_JSON: a->json = 1; break;
        case OPT_STREAMS:
            if (cli_parse_int(optarg, 1, 64, &a->streams))
                return cli_usage_error(CMD, "invalid stream count '%s' (1 to 64)", optarg);
            break;
        case 'h': help(); return EXIT_OK;
        default:
            if (cli_precision_option(CMD, c, optarg, &a->pcfg)) return EXIT_USAGE;
        }
    }
    if (!a->model) return cli_usage_error(CMD, "no model given (-m MODEL)");
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    return -1;
}

static int run(const bench_args *a) {
    const char *model = a->model, *image = a->image, *svg = a->svg;
    const int batch = a->batch, iters = a->iters, warmup = a->warmup, layers = a->layers, json = a->json;
    cli_config pcfg = a->pcfg;
    /* the frame: decoded once, outside the timed loops */
    bzn_image img = {0};
    bzn_error e = {0};
    char sample[PATH_MAX];
    if (!image && find_sample(sample, sizeof sample) == 0) image = sample;
    if (image) {
        if (bzn_image_load_jpeg(image, &img, &e) != BZN_OK) return cli_error(CMD, &e);
    } else if (synthetic_frame(&img, 1280, 995) != 0) {
        fprintf(stderr, "blazeneo %s: out of memory\n", CMD);
        return EXIT_FAIL;
    }

    bzn_model *m = NULL;
    bzn_ctx *ctx = NULL;
    /* main path only, as at deployment and in the paper's latency tables */
    pcfg.width = a->w;
    pcfg.height = a->h;
    pcfg.threads = a->threads;
    pcfg.backend = a->backend;
    pcfg.batch = batch;
    if (cli_open(CMD, model, &pcfg, &m, &ctx)) {
        bzn_image_free(&img);
        return EXIT_FAIL;
    }

    bench_result r;
    memset(&r, 0, sizeof r);
    r.model = model;
    r.precision = bzn_precision_name(cli_precision_of(m, &pcfg));
    r.image = image ? image : "synthetic";
    r.backend = bzn_ctx_backend(ctx);
    r.backend_detail = bzn_ctx_backend_detail(ctx);
    r.threads = bzn_ctx_threads(ctx); /* what the library really uses */
    r.batch = batch;
    r.iters = iters;
    r.warmup = warmup;
    r.frame_w = img.width;
    r.frame_h = img.height;
    cpu_model(r.cpu, sizeof r.cpu);
    r.nproc = sysconf(_SC_NPROCESSORS_ONLN);

    const int n_layers = bzn_ctx_num_layers(ctx);
    layer_row *rows = calloc((size_t)n_layers, sizeof *rows);
    const size_t npix = (size_t)img.width * img.height;
    uint8_t *classes = malloc(npix);
    bzn_frame *frames = malloc((size_t)batch * sizeof *frames);
    double *e2e_ms = malloc((size_t)iters * sizeof *e2e_ms), *net_ms = malloc((size_t)iters * sizeof *net_ms);
    float *input = NULL;
    int rc = EXIT_OK;
    if (n_layers < 1 || !rows || !classes || !frames || !e2e_ms || !net_ms) {
        fprintf(stderr, "blazeneo %s: out of memory\n", CMD);
        rc = EXIT_FAIL;
        goto done;
    }
    for (int i = 0; i < n_layers; i++) {
        bzn_ctx_layer(ctx, i, &rows[i].info);
        r.params += rows[i].info.params;
        r.macs += rows[i].info.macs;
    }
    r.width = rows[0].info.in_width; /* the network input size: the first layer's input */
    r.height = rows[0].info.in_height;

    /* 1. end to end: iterations -warmup..-1 are the warm-up, 0..iters-1 are timed */
    for (int it = -warmup; it < iters; it++) {
        double t0 = cli_now_ms();
        if (run_frames(ctx, &img, batch, frames, classes, &e) != BZN_OK) {
            rc = cli_error(CMD, &e);
            goto done;
        }
        if (it >= 0) e2e_ms[it] = cli_now_ms() - t0;
    }

    /* 2. network alone, on the input tensor the last run preprocessed (the context is warm) */
    const size_t in_floats = (size_t)3 * r.width * r.height;
    if (!(input = malloc(batch * in_floats * sizeof *input))) {
        fprintf(stderr, "blazeneo %s: out of memory\n", CMD);
        rc = EXIT_FAIL;
        goto done;
    }
    for (int b = 0; b < batch; b++) memcpy(input + b * in_floats, bzn_ctx_input(ctx), in_floats * sizeof *input);
    for (int it = 0; it < iters; it++) {
        double t0 = cli_now_ms();
        if (bzn_run_tensor(ctx, input, &e) != BZN_OK) {
            rc = cli_error(CMD, &e);
            goto done;
        }
        net_ms[it] = cli_now_ms() - t0;
    }
    double e2e_total = 0;
    for (int it = 0; it < iters; it++) e2e_total += e2e_ms[it];
    r.one_ips = (double)iters * batch * 1000.0 / e2e_total;
    compute_stats(e2e_ms, iters, &r.e2e);
    compute_stats(net_ms, iters, &r.net);

    /* 2b. throughput: the same threads split over a->streams contexts (the one above idles) */
    if (a->streams) {
        const int each = r.threads / a->streams > 0 ? r.threads / a->streams : 1;
        if ((rc = run_streams(m, &pcfg, a->streams, each, iters, warmup, &img, &r)) != 0) goto done;
    }

    /* 3. optional profiled pass: the same number of network-alone runs, timed layer by layer */
    const int profile = layers || svg;
    if (profile) {
        bzn_ctx_set_profiling(ctx, 1);
        bzn_ctx_reset_profile(ctx);
        for (int it = 0; it < iters; it++)
            if (bzn_run_tensor(ctx, input, &e) != BZN_OK) {
                rc = cli_error(CMD, &e);
                goto done;
            }
        bzn_ctx_set_profiling(ctx, 0);
        for (int i = 0; i < n_layers; i++) {
            double total = 0;
            int64_t runs = 0;
            bzn_ctx_layer_time(ctx, i, &total, &runs);
            rows[i].ms = runs > 0 ? total / (double)runs : 0;
        }
        rank_layers(rows, n_layers);
    }

    /* memory, after everything ran (peak RSS is the high-water mark of the whole process) */
    bzn_model_info mi;
    bzn_model_get_info(m, &mi);
    r.file_bytes = mi.file_bytes;
    r.weight_bytes = mi.weight_bytes;
    r.activation_bytes = bzn_ctx_activation_bytes(ctx);
    r.scratch_bytes = bzn_ctx_scratch_bytes(ctx);
    r.prepared_bytes = bzn_model_prepared_bytes(m);
    r.handoffs = bzn_ctx_int8_handoffs(ctx);
    r.rss_mb = peak_rss_mb();

    if (svg) {
        char title[512];
        snprintf(title, sizeof title, "BlazeNeo %dx%d, %s %s, %d thread%s (%s)", r.width, r.height,
                 r.backend, r.precision, r.threads, r.threads == 1 ? "" : "s", r.cpu);
        if (write_svg(svg, rows, n_layers, title) != 0) rc = EXIT_FAIL;
    }
    if (json) {
        print_json(&r, layers ? rows : NULL, n_layers);
    } else {
        print_report(&r);
        if (layers) {
            double total = 0;
            for (int i = 0; i < n_layers; i++) total += rows[i].ms;
            print_layers(rows, n_layers, total);
        }
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "blazeneo %s: cannot write the report: %s\n", CMD, strerror(errno));
        rc = EXIT_FAIL;
    }

done:
    free(input);
    free(net_ms);
    free(e2e_ms);
    free(classes);
    free(frames);
    free(rows);
    bzn_ctx_free(ctx);
    bzn_model_free(m);
    bzn_image_free(&img);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    bench_args a;
    const int rc = parse_args(argc, argv, &a);
    return rc >= 0 ? rc : run(&a);
}
