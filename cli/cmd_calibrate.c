/* cmd_calibrate.c - `blazeneo calibrate -m MODEL --images DIR -o CACHE`: INT8 calibration cache */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void help(void) {
    printf("usage: blazeneo calibrate -m MODEL --images DIR -o CACHE [-n N] [--method M]\n"
           "                          [--percentile P] [-s SIZE] [--aux] [--table]\n\n"
           "Run the FP32 network over calibration frames and write the INT8 scale of every\n"
           "tensor (the input and each layer's output, named by PyTorch module path) as a\n"
           "TensorRT calibration cache: 'TRT-7103-<calibrator>', then 'name: <hex>' per tensor,\n"
           "hex = the float32 bits of scale = amax / 127.\n\n"
           "Calibrate on the calibration set, ../shared/data/neopolyp-small/calib/images, and\n"
           "never on dev-test: those frames measure accuracy, and tuning on them would flatter\n"
           "the INT8 results.\n\n"
           "  -m, --model FILE      weight file\n"
           "  --images DIR          calibration frames (JPEG); a folder is taken in sorted order\n"
           "  -o, --output CACHE    the cache to write (replaced atomically)\n"
           "  -n, --count N         use the first N frames (default: all)\n"
           "  --method M            entropy (TensorRT's IInt8EntropyCalibrator2, default),\n"
           "                        minmax (amax = max |x|) or percentile\n"
           "  --percentile P        for --method percentile: 0 < P <= 100 (default 99.99)\n"
           "  -s, --size SIZE       network input size (default: the model's, 352)\n"
           "  --aux                 also calibrate the auxiliary branch (agg1, head_1)\n"
           "  --table               print every tensor's amax, scale and max |x|\n"
           "  -t, --threads N       CPU threads (default: all)\n"
           "  -b, --backend B       the backend running the FP32 network (default: cpu; cuda\n"
           "                        runs it on the GPU, the statistics stay on the host)\n"
           "  --device N            -b cuda: which GPU (default 0)\n"
           "  -q, --quiet           no progress lines and no precision note\n"
           "  -h, --help            this help\n");
}

static int parse_method(const char *s, bzn_calib_method *m) {
    static const bzn_calib_method all[] = {BZN_CALIB_ENTROPY, BZN_CALIB_MINMAX, BZN_CALIB_PERCENTILE};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, bzn_calib_method_name(all[i]))) {
            *m = all[i];
            return 0;
        }
    return -1;
}

/* "computing thresholds: 40/124 tensors (agg2.block_31.1)": on a terminal one line, rewritten;
 * otherwise a line at every quarter */
typedef struct {
    int tty, last_quarter;
    double t0;
} compute_progress;

static void on_compute(void *user, int done, int total, const char *name) {
    compute_progress *p = user;
    const int quarter = (int)(4LL * done / total);
    if (!p->tty && quarter == p->last_quarter) return;
    p->last_quarter = quarter;
    fprintf(stderr, "%scomputing thresholds: %d/%d tensors (%s), %.1f s%s", p->tty ? "\r" : "", done, total, name,
            (cli_now_ms() - p->t0) / 1e3, p->tty ? "\033[K" : "\n");
    if (p->tty && done == total) fprintf(stderr, "\n");
}

/* what the command line asks for */
typedef struct {
    const char *model, *output;
    char *images;
    int w, h, count, aux, table, threads, quiet, device;
    const char *backend;
    double percentile;
    bzn_calib_method method;
} calibrate_args;

/* The command line into *a: -1 to go on, else the exit status (help, a usage error). */
static int parse_args(int argc, char **argv, calibrate_args *a) {
    enum { OPT_IMAGES = 256, OPT_METHOD, OPT_PERCENTILE, OPT_AUX, OPT_TABLE, OPT_DEVICE };
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"images", required_argument, 0, OPT_IMAGES},
                                         {"output", required_argument, 0, 'o'},
                                         {"count", required_argument, 0, 'n'},
                                         {"method", required_argument, 0, OPT_METHOD},
                                         {"percentile", required_argument, 0, OPT_PERCENTILE},
                                         {"size", required_argument, 0, 's'},
                                         {"aux", no_argument, 0, OPT_AUX},
                                         {"table", no_argument, 0, OPT_TABLE},
                                         {"threads", required_argument, 0, 't'},
                                         {"backend", required_argument, 0, 'b'},
                                         {"device", required_argument, 0, OPT_DEVICE},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0}};
    *a = (calibrate_args){.percentile = BZN_CALIB_DEFAULT_PERCENTILE, .method = BZN_CALIB_ENTROPY};
    int c;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:o:n:s:t:b:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case OPT_IMAGES: a->images = optarg; break;
        case 'o': a->output = optarg; break;
        case 'n':
            a->count = (int)strtol(optarg, &end, 10);
            if (*end || end == optarg || a->count <= 0)
                return cli_usage_error("calibrate", "invalid image count '%s' (a positive number)", optarg);
            break;
        case OPT_METHOD:
            if (parse_method(optarg, &a->method))
                return cli_usage_error("calibrate", "unknown method '%s' (entropy, minmax, percentile)", optarg);
            break;
        case OPT_PERCENTILE:
            a->percentile = strtod(optarg, &end);
            if (*end || end == optarg || !(a->percentile > 0.0 && a->percentile <= 100.0))
                return cli_usage_error("calibrate", "invalid percentile '%s' (0 < P <= 100)", optarg);
            break;
        case 's':
            if (cli_parse_size(optarg, &a->w, &a->h)) return cli_usage_error("calibrate", "invalid size '%s'", optarg);
            break;
        case OPT_AUX: a->aux = 1; break;
        case OPT_TABLE: a->table = 1; break;
        case 't':
            if (cli_parse_int(optarg, 0, 1024, &a->threads))
                return cli_usage_error("calibrate", "invalid thread count '%s' (0 = all)", optarg);
            break;
        case 'b':
            if (cli_parse_backend("calibrate", optarg, &a->backend)) return EXIT_USAGE;
            break;
        case OPT_DEVICE:
            if (cli_parse_int(optarg, 0, 255, &a->device))
                return cli_usage_error("calibrate", "invalid --device '%s' (0 to 255)", optarg);
            break;
        case 'q': a->quiet = 1; break;
        case 'h': help(); return EXIT_OK;
        default: return cli_bad_option("calibrate", c);
        }
    }
    if (!a->model) return cli_usage_error("calibrate", "no model given (-m MODEL)");
    if (!a->images) return cli_usage_error("calibrate", "no calibration images given (--images DIR)");
    if (!a->output) return cli_usage_error("calibrate", "no output given (-o CACHE)");
    if (optind < argc) return cli_usage_error("calibrate", "unexpected argument '%s'", argv[optind]);
    if (strstr(a->images, "dev-test"))
        fprintf(stderr, "blazeneo calibrate: warning: '%s' looks like the evaluation set; calibrate on "
                        "../shared/data/neopolyp-small/calib/images instead\n",
                a->images);
    return -1;
}

static int run(const calibrate_args *a) {
    const char *model = a->model, *output = a->output;
    char *images = a->images;
    int count = a->count;
    const int aux = a->aux, table = a->table, threads = a->threads, quiet = a->quiet, w = a->w, h = a->h;
    const double percentile = a->percentile;
    const bzn_calib_method method = a->method;
    cli_list list;
    if (cli_collect_images("calibrate", &images, 1, &list)) return EXIT_FAIL;
    if (count == 0 || count > list.count) count = list.count;
    bzn_model *m;
    bzn_ctx *ctx;
    const cli_config cfg = {.width = w, .height = h, .run_aux = aux, .keep_intermediates = 1, .threads = threads,
                            .backend = a->backend, .device = a->device,
                            .precision = BZN_PRECISION_FP32, .precision_set = 1, .quiet = quiet,
                            .precision_why = "calibration measures the FP32 network"};
    if (cli_open("calibrate", model, &cfg, &m, &ctx)) {
        cli_list_free(&list);
        return EXIT_FAIL;
    }
    bzn_model_info mi;
    bzn_model_get_info(m, &mi);
    bzn_layer_info li;
    bzn_ctx_layer(ctx, 0, &li);
    bzn_error e;
    bzn_calibrator *cal = NULL;
    bzn_calib_table *t = NULL;
    int rc = EXIT_OK;
    if (aux && !mi.has_aux) {
        fprintf(stderr, "blazeneo calibrate: --aux: this model has no auxiliary head\n");
        rc = EXIT_FAIL;
    } else if (bzn_calibrator_create(ctx, &cal, &e) != BZN_OK) {
        rc = cli_error("calibrate", &e);
    }
    const int progress = !quiet, tty = isatty(2);
    double t_run = 0;
    for (int i = 0; rc == EXIT_OK && i < count; i++) {
        double ti = cli_now_ms();
        bzn_image img = {0};
        if (bzn_image_load_jpeg(list.paths[i], &img, &e) != BZN_OK ||
            bzn_run_rgb(ctx, img.pixels, img.width, img.height, img.width * 3, &e) != BZN_OK ||
            bzn_calibrator_observe(cal, ctx, &e) != BZN_OK) {
            if (progress && tty) fprintf(stderr, "\n");
            /* a frame left out would change every statistic: stop, write nothing */
            fprintf(stderr, "blazeneo calibrate: %s: %s\n", list.paths[i], e.msg);
            rc = EXIT_FAIL;
        }
        bzn_image_free(&img);
        t_run += cli_now_ms() - ti;
        if (rc == EXIT_OK && progress)
            fprintf(stderr, "%s[%d/%d] %s  %.0f ms%s", tty ? "\r" : "", i + 1, count, list.paths[i],
                    cli_now_ms() - ti, tty ? "\033[K" : "\n");
    }
    if (progress && tty && rc == EXIT_OK) fprintf(stderr, "\n");
    double t_compute = cli_now_ms();
    compute_progress cp = {tty, 0, t_compute};
    if (rc == EXIT_OK && bzn_calibrator_compute_progress(cal, method, percentile, progress ? on_compute : NULL, &cp, &t,
                                                         &e) != BZN_OK) {
        if (progress && tty) fprintf(stderr, "\n");
        rc = cli_error("calibrate", &e);
    }
    t_compute = cli_now_ms() - t_compute;
    if (rc == EXIT_OK && bzn_calib_cache_write(output, t, &e) != BZN_OK) rc = cli_error("calibrate", &e);
    if (rc == EXIT_OK) {
        FILE *info = cli_summary_stream(output);
        if (table) {
            fprintf(info, "%-32s %12s %12s %12s %6s\n", "tensor", "amax", "scale", "max|x|", "bins");
            for (int i = 0; i < t->count; i++) {
                bzn_calib_tensor_info ti;
                bzn_calibrator_tensor(cal, i, &ti);
                fprintf(info, "%-32s %12.6g %12.6g %12.6g %6d\n", t->scales[i].name, (double)t->amax[i],
                              (double)t->scales[i].scale, (double)ti.max_abs, ti.bins);
            }
        }
        int lo = 0, hi = 0, merged = 0;
        for (int i = 0; i < t->count; i++) {
            if (t->amax[i] < t->amax[lo]) lo = i;
            if (t->amax[i] > t->amax[hi]) hi = i;
            bzn_calib_tensor_info ti;
            bzn_calibrator_tensor(cal, i, &ti);
            merged += ti.merges > 0;
        }
        char pct[32] = "";
        if (method == BZN_CALIB_PERCENTILE) snprintf(pct, sizeof pct, " %g%%", percentile);
        fprintf(info, "calibrated %d tensors on %d image%s at %dx%d, method %s%s\n", t->count, count, count == 1 ? "" : "s",
                      li.in_width, li.in_height, bzn_calib_method_name(method), pct);
        fprintf(info, "amax: smallest %.6g (%s), largest %.6g (%s)\n", (double)t->amax[lo], t->scales[lo].name,
                      (double)t->amax[hi], t->scales[hi].name);
        if (merged)
            fprintf(info, "note: %d tensor%s outgrew %d histogram bins; neighbouring bins were merged\n", merged,
                          merged == 1 ? "" : "s", BZN_CALIB_MAX_BINS);
        fprintf(info, "time: %.1f s running (%.0f ms per image), %.1f s computing scales\n", t_run / 1000.0,
                      t_run / count, t_compute / 1000.0);
        fprintf(info, "wrote %s\n", output);
    }
    bzn_calib_table_free(t);
    bzn_calibrator_free(cal);
    cli_list_free(&list);
    bzn_ctx_free(ctx);
    bzn_model_free(m);
    return rc;
}

int cmd_calibrate(int argc, char **argv) {
    calibrate_args a;
    const int rc = parse_args(argc, argv, &a);
    return rc >= 0 ? rc : run(&a);
}
