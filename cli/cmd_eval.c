/*
 * cmd_eval.c - `blazeneo eval -m MODEL --images DIR --masks DIR [-b B ...] [-p P ...] ...`
 *
 * The accuracy protocol of the spec (and of tests/ref/eval_ref.py), for one or more
 * configurations at once:
 *
 *   for every image, in file-name order, with the mask of the same stem:
 *     run the network on the frame (bzn_run_rgb: PIL-style resize to the input size),
 *     class map back at the mask's size (bzn_class_map: PIL nearest neighbour),
 *     ground truth from the colour mask (bzn_mask_to_classes, plus yellow = undefined),
 *     add the pixel counts (TP, FP, FN for seg, neo, non) to the configuration's totals;
 *   Dice and IoU from the totals (micro-averaged: every pixel of the set weighs the same).
 *
 * A configuration is a (backend, precision) pair; every combination of the -b and -p
 * options is one, each with its own context, all run on the same decoded frame. The set
 * is never silently shrunk: a missing mask, an unreadable file or a mask of another size
 * is reported by name, and then no metrics are printed and the exit status is 1.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "report.h"

#define CMD "eval"
#define MAX_CONFIGS 16

static void help(void) {
    printf("usage: blazeneo eval -m MODEL --images DIR --masks DIR [-b BACKEND]... [-p PRECISION]...\n"
           "                     [-s SIZE] [--json] [--csv FILE] [--report DIR] [-t N] [-q]\n\n"
           "Measure accuracy on a labelled set: micro-averaged Dice and IoU (the paper's eq. 7-8,\n"
           "pixel counts summed over the whole set) for seg (polyp), neo and non.\n\n"
           "  -m, --model FILE        weight file\n"
           "  --images DIR            the frames (.jpg/.jpeg/.png/.bmp by name; JPEG is decoded)\n"
           "  --masks DIR             colour masks, matched to frames by file stem: frame abc.jpeg\n"
           "                          goes with mask abc.<any extension>\n"
           "  -b, --backend B         the backend; repeat to compare:\n");
    cli_backend_help(stdout, 24);
    printf("  -p, --precision P       fp32, tf32 or fp16 (cuda only), int8 (default: the weight\n"
           "                          file's, int8 for an INT8 weight file); repeat to compare\n"
           "                          precisions\n"
           "  --calib CACHE           INT8 with an FP32 model: a calibration cache\n"
           "  --keep-fp32 NAMES       INT8: comma-separated convolutions kept in FP32\n"
           "  -s, --size SIZE         network input size, multiple of 32 (default: the model's)\n"
           "  --undefined RULE        yellow (default): mask pixels with R>=128 and G>=128 are\n"
           "                          \"undefined\" (NeoPolyp-Large): polyp for seg, left out of\n"
           "                          neo and non (so a white-on-black binary mask is scored\n"
           "                          for seg only); none: the spec's three colours only\n"
           "  --json                  print a JSON array, one object per configuration, instead\n"
           "                          of the table: dice_seg/neo/non, iou_seg/neo/non, images,\n"
           "                          backend, precision, model, size, ms_per_image, undefined,\n"
           "                          undefined_pixels and the raw counts (tp, fp, fn)\n"
           "  --csv FILE              per-image scores (one row per image and configuration);\n"
           "                          an image with nothing to find and nothing found scores 1\n"
           "  --report DIR            an HTML report: DIR/index.html with the metrics and every\n"
           "                          image (frame, truth, prediction, overlay), worst Dice first\n"
           "  -t, --threads N         CPU threads (default: all)\n"
           "  -q, --quiet             no progress line and no precision note\n"
           "  -h, --help              this help\n\n"
           "Every combination of backend and precision is evaluated on every image and printed\n"
           "as one row: Dice seg/neo/non, IoU seg/neo/non, images, ms/image (bzn_run_rgb +\n"
           "bzn_class_map, without decoding). A frame without a mask, an unreadable file or a\n"
           "mask whose size differs from its frame is reported by name and the exit status is 1\n"
           "(no metrics are printed: the set would be incomplete).\n");
}

/* ---- the image/mask pairs ------------------------------------------------------------- */

static int has_image_extension(const char *path) {
    static const char *const ext[] = {".jpg", ".jpeg", ".png", ".bmp"}; /* as eval_ref.py */
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return 0;
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        if (!strcasecmp(dot, ext[i])) return 1;
    return 0;
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* The mask for one image: the file of the same name if there is one, else the only file
 * with the same stem. Returns its index in `masks`, -1 when none, -2 when ambiguous. */
static int find_mask(const char *image_path, const cli_list *masks, char **mask_stems) {
    char stem[1024];
    cli_stem(image_path, stem, sizeof stem);
    int found = -1, matches = 0;
    for (int j = 0; j < masks->count; j++) {
        if (strcmp(mask_stems[j], stem)) continue;
        if (!strcmp(base_name(masks->paths[j]), base_name(image_path))) return j; /* same file name */
        found = j;
        matches++;
    }
    return matches > 1 ? -2 : found;
}

/* Lists the frames and pairs each with its mask. Prints every problem; 0 when all paired. */
static int pair_images(const char *images_dir, const char *masks_dir, cli_list *frames, cli_list *masks,
                       int **mask_of) {
    cli_list all;
    char *img_arg[1] = {(char *)images_dir}, *mask_arg[1] = {(char *)masks_dir};
    *mask_of = NULL;
    memset(frames, 0, sizeof *frames);
    memset(masks, 0, sizeof *masks);
    if (cli_collect_images(CMD, img_arg, 1, &all)) return -1;
    if (cli_collect_images(CMD, mask_arg, 1, masks)) {
        cli_list_free(&all);
        return -1;
    }
    /* keep the image files (by extension, as the reference script does); others are noted */
    int ignored = 0, rc = 0;
    frames->paths = calloc((size_t)all.count, sizeof *frames->paths);
    char **stems = calloc((size_t)masks->count, sizeof *stems);
    *mask_of = calloc((size_t)all.count, sizeof **mask_of);
    if (!frames->paths || !stems || !*mask_of) {
        fprintf(stderr, "blazeneo " CMD ": out of memory\n");
        rc = -1;
        goto done;
    }
    for (int i = 0; i < all.count; i++) {
        if (has_image_extension(all.paths[i])) {
            frames->paths[frames->count++] = all.paths[i];
            all.paths[i] = NULL; /* moved */
        } else {
            ignored++;
        }
    }
    if (ignored)
        fprintf(stderr, "blazeneo " CMD ": note: %d file%s in %s without an image extension ignored\n", ignored,
                ignored == 1 ? "" : "s", images_dir);
    if (frames->count == 0) {
        fprintf(stderr, "blazeneo " CMD ": %s: no images (.jpg, .jpeg, .png, .bmp) in this directory\n", images_dir);
        rc = -1;
        goto done;
    }
    for (int j = 0; j < masks->count; j++) {
        char stem[1024];
        cli_stem(masks->paths[j], stem, sizeof stem);
        if (!(stems[j] = strdup(stem))) {
            fprintf(stderr, "blazeneo " CMD ": out of memory\n");
            rc = -1;
            goto done;
        }
    }
    int missing = 0;
    for (int i = 0; i < frames->count; i++) {
        int j = find_mask(frames->paths[i], masks, stems);
        (*mask_of)[i] = j;
        if (j == -1) fprintf(stderr, "blazeneo " CMD ": %s: no mask with this stem in %s\n", frames->paths[i], masks_dir);
        if (j == -2)
            fprintf(stderr, "blazeneo " CMD ": %s: several masks with this stem in %s (which one?)\n", frames->paths[i],
                    masks_dir);
        missing += j < 0;
    }
    /* masks nobody asked for are harmless, but worth a word: a renamed frame shows up here */
    int unused = masks->count;
    char *used = calloc((size_t)masks->count, 1);
    for (int i = 0; used && i < frames->count; i++) {
        int j = (*mask_of)[i];
        if (j >= 0 && !used[j]) {
            used[j] = 1;
            unused--;
        }
    }
    free(used);
    if (unused && !missing)
        fprintf(stderr, "blazeneo " CMD ": note: %d mask%s in %s without an image\n", unused, unused == 1 ? "" : "s",
                masks_dir);
    if (missing) {
        fprintf(stderr, "blazeneo " CMD ": %d of %d image%s without a mask: nothing evaluated\n", missing,
                frames->count, frames->count == 1 ? "" : "s");
        rc = -1;
    }
done:
    for (int j = 0; stems && j < masks->count; j++) free(stems[j]);
    free(stems);
    cli_list_free(&all);
    return rc;
}

/* ---- one image, every configuration ---------------------------------------------------- */

typedef struct {
    uint8_t *truth;
    uint8_t *pred[MAX_CONFIGS];
    size_t size; /* pixels the buffers hold */
} eval_buffers;

/* Loads the pair, checks it, and (when `run` is set) runs every configuration on it.
 * Returns 0, or -1 with the problem in e->msg (file name included). */
static int eval_one(eval_results *r, int i, const char *frame_path, const char *mask_path, bzn_ctx **ctx, int run,
                    eval_buffers *b, eval_report *rp, double *ms, bzn_error *e) {
    eval_image *im = &r->images[i];
    bzn_image frame = {0}, mask = {0};
    int rc = -1;
    bzn_status s = bzn_image_load_jpeg(frame_path, &frame, e);
    if (s == BZN_OK) s = bzn_image_load_jpeg(mask_path, &mask, e);
    if (s != BZN_OK) goto done; /* the library's message names the file */
    if (mask.width != frame.width || mask.height != frame.height) {
        snprintf(e->msg, sizeof e->msg, "%s: mask is %dx%d but its image %s is %dx%d", mask_path, mask.width,
                 mask.height, frame_path, frame.width, frame.height);
        goto done;
    }
    im->width = frame.width;
    im->height = frame.height;
    if (!run) { /* an earlier pair failed: only check the rest, so every problem is listed */
        rc = 0;
        goto done;
    }
    const size_t n = (size_t)frame.width * frame.height;
    if (n > b->size) {
        free(b->truth);
        b->truth = malloc(n);
        int ok = b->truth != NULL;
        for (int k = 0; k < r->nconfigs; k++) {
            free(b->pred[k]);
            ok &= (b->pred[k] = malloc(n)) != NULL;
        }
        b->size = ok ? n : 0;
        if (!ok) {
            snprintf(e->msg, sizeof e->msg, "%s: out of memory", frame_path);
            goto done;
        }
    }
    if (r->undefined == EVAL_UNDEFINED_YELLOW)
        im->undefined_px = bzn_mask_to_classes_undefined(mask.pixels, n, b->truth);
    else
        bzn_mask_to_classes(mask.pixels, n, b->truth);
    r->undefined_px += im->undefined_px;
    for (int k = 0; k < r->nconfigs; k++) {
        double t0 = cli_now_ms();
        s = bzn_run_rgb(ctx[k], frame.pixels, frame.width, frame.height, frame.width * 3, e);
        if (s == BZN_OK) s = bzn_class_map(ctx[k], b->pred[k], frame.width, frame.height, e);
        if (s != BZN_OK) {
            char why[sizeof e->msg];
            memcpy(why, e->msg, sizeof why);
            snprintf(e->msg, sizeof e->msg, "%s (%s): %.200s", frame_path, r->configs[k].label, why);
            goto done;
        }
        ms[k] = cli_now_ms() - t0;
        r->configs[k].ms_total += ms[k];
        bzn_confusion_add(&im->conf[k], b->pred[k], b->truth, n);
        bzn_confusion_merge(&r->configs[k].total, &im->conf[k]);
    }
    if (rp && report_add_image(rp, i, &frame, b->truth, b->pred, e) != BZN_OK) goto done;
    rc = 0;
done:
    bzn_image_free(&frame);
    bzn_image_free(&mask);
    return rc;
}

/* ---- the command -------------------------------------------------------------------------- */

/* what the command line asks for */
typedef struct {
    const char *model, *images_dir, *masks_dir, *csv, *report_dir;
    int w, h, threads, quiet, json;
    eval_undefined_rule undefined;
    const char *backends[MAX_CONFIGS];
    bzn_precision prec[MAX_CONFIGS];
    int nb, np;
    cli_config pcfg; /* --calib and --keep-fp32, for the INT8 configurations */
} eval_args;

/* The command line into *a: -1 to go on, else the exit status (help, a usage error). */
static int parse_args(int argc, char **argv, eval_args *a) {
    enum { OPT_IMAGES = 256, OPT_MASKS, OPT_JSON, OPT_CSV, OPT_REPORT, OPT_UNDEFINED };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"images", required_argument, 0, OPT_IMAGES},
        {"masks", required_argument, 0, OPT_MASKS}, {"backend", required_argument, 0, 'b'},
        {"precision", required_argument, 0, 'p'}, {"size", required_argument, 0, 's'},
        {"json", no_argument, 0, OPT_JSON},       {"csv", required_argument, 0, OPT_CSV},
        {"report", required_argument, 0, OPT_REPORT}, {"undefined", required_argument, 0, OPT_UNDEFINED},
        {"threads", required_argument, 0, 't'},   {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},            CLI_PRECISION_OPTIONS, {0}};
    memset(a, 0, sizeof *a);
    a->undefined = EVAL_UNDEFINED_YELLOW;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:b:p:s:t:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case OPT_IMAGES: a->images_dir = optarg; break;
        case OPT_MASKS: a->masks_dir = optarg; break;
        case 'b': {
            const char *b;
            if (cli_parse_backend(CMD, optarg, &b)) return EXIT_USAGE;
            int dup = 0;
            for (int i = 0; i < a->nb; i++) dup |= a->backends[i] == b;
            if (!dup && a->nb < MAX_CONFIGS) a->backends[a->nb++] = b;
            break;
        }
        case 'p': {
            bzn_precision found;
            if (cli_parse_precision(optarg, &found))
                return cli_usage_error(CMD, "unknown precision '%s' (fp32, tf32, fp16, int8)", optarg);
            int dup = 0;
            for (int i = 0; i < a->np; i++) dup |= a->prec[i] == found;
            if (!dup && a->np < MAX_CONFIGS) a->prec[a->np++] = found;
            break;
        }
        case 's':
            if (cli_parse_size(optarg, &a->w, &a->h)) return cli_usage_error(CMD, "invalid size '%s'", optarg);
            break;
        case OPT_JSON: a->json = 1; break;
        case OPT_CSV: a->csv = optarg; break;
        case OPT_REPORT: a->report_dir = optarg; break;
        case OPT_UNDEFINED:
            if (!strcmp(optarg, "yellow")) a->undefined = EVAL_UNDEFINED_YELLOW;
            else if (!strcmp(optarg, "none")) a->undefined = EVAL_UNDEFINED_NONE;
            else return cli_usage_error(CMD, "unknown --undefined rule '%s' (yellow, none)", optarg);
            break;
        case 't': {
            char *end;
            long t = strtol(optarg, &end, 10);
            if (end == optarg || *end || t < 0 || t > 1024)
                return cli_usage_error(CMD, "invalid thread count '%s'", optarg);
            a->threads = (int)t;
            break;
        }
        case 'q': a->quiet = 1; break;
        case 'h': help(); return EXIT_OK;
        default:
            if (cli_precision_option(CMD, c, optarg, &a->pcfg)) return EXIT_USAGE;
        }
    }
    if (!a->model) return cli_usage_error(CMD, "no model given (-m MODEL)");
    if (!a->images_dir) return cli_usage_error(CMD, "no image folder given (--images DIR)");
    if (!a->masks_dir) return cli_usage_error(CMD, "no mask folder given (--masks DIR)");
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (a->nb == 0) a->backends[a->nb++] = bzn_backend_name(0);
    if (a->nb * (a->np ? a->np : 1) > MAX_CONFIGS) return cli_usage_error(CMD, "too many configurations (at most %d)", MAX_CONFIGS);
    return -1;
}

static int run(const eval_args *a) {
    const char *model = a->model, *masks_dir = a->masks_dir, *csv = a->csv, *report_dir = a->report_dir;
    const int w = a->w, h = a->h, threads = a->threads, quiet = a->quiet, json = a->json, nb = a->nb;
    const char *const *backends = a->backends;
    /* no -p: one precision, the weight file's (or INT8 with --calib), said once on stderr */
    bzn_precision prec[MAX_CONFIGS];
    int np = a->np;
    memcpy(prec, a->prec, sizeof prec);
    const cli_config pcfg = a->pcfg;
    /* 1. pair every frame with its mask before any work */
    cli_list frames, masks;
    int *mask_of;
    if (pair_images(a->images_dir, masks_dir, &frames, &masks, &mask_of)) {
        cli_list_free(&frames);
        cli_list_free(&masks);
        free(mask_of);
        return EXIT_FAIL;
    }

    /* 2. the model once, and one context per configuration */
    int rc = EXIT_OK;
    bzn_error e = {0};
    bzn_model *m = NULL;
    bzn_ctx *ctx[MAX_CONFIGS] = {0};
    eval_config configs[MAX_CONFIGS];
    memset(configs, 0, sizeof configs);
    eval_results r = {.model = model, .masks_dir = masks_dir, .undefined = a->undefined, .configs = configs,
                      .nimages = frames.count};
    r.images = calloc((size_t)frames.count, sizeof *r.images);
    eval_report *rp = NULL;
    eval_buffers buf = {0};
    if (!r.images) {
        fprintf(stderr, "blazeneo " CMD ": out of memory\n");
        rc = EXIT_FAIL;
        goto done;
    }
    for (int i = 0; i < frames.count; i++) {
        r.images[i].name = strdup(base_name(frames.paths[i]));
        r.images[i].mask = strdup(base_name(masks.paths[mask_of[i]]));
        r.images[i].conf = calloc((size_t)nb * (np ? np : 1), sizeof *r.images[i].conf);
        if (!r.images[i].name || !r.images[i].mask || !r.images[i].conf) {
            fprintf(stderr, "blazeneo " CMD ": out of memory\n");
            rc = EXIT_FAIL;
            goto done;
        }
    }
    if (bzn_model_open(model, &m, &e) != BZN_OK) {
        rc = cli_error(CMD, &e);
        goto done;
    }
    if (np == 0) prec[np++] = cli_precision_of(m, &pcfg);
    for (int bi = 0; bi < nb; bi++) {
        for (int pi = 0; pi < np; pi++) {
            eval_config *cf = &configs[r.nconfigs];
            cf->backend = backends[bi];
            cf->precision = bzn_precision_name(prec[pi]);
            snprintf(cf->label, sizeof cf->label, "%s/%s", cf->backend, cf->precision);
            cli_config cc = pcfg;
            cc.width = w;
            cc.height = h;
            cc.threads = threads;
            cc.backend = backends[bi];
            cc.precision = prec[pi];
            cc.precision_set = a->np > 0;
            cc.quiet = quiet;
            if (cc.precision != BZN_PRECISION_INT8) cc.calib = cc.keep_fp32 = NULL;
            if (cli_ctx_create(CMD, m, &cc, &ctx[r.nconfigs])) {
                fprintf(stderr, "blazeneo " CMD ": (configuration %s)\n", cf->label);
                rc = EXIT_FAIL;
                goto done;
            }
            const bzn_ctx_options o = bzn_ctx_default_options(m);
            r.width = w ? w : o.width;
            r.height = h ? h : o.height;
            r.nconfigs++;
        }
    }
    if (report_dir && report_open(report_dir, &r, &rp, &e) != BZN_OK) {
        rc = cli_error(CMD, &e);
        goto done;
    }

    /* 3. every image through every configuration */
    const int progress = !quiet, tty = isatty(2);
    int failed = 0;
    double t_start = cli_now_ms();
    for (int i = 0; i < frames.count; i++) {
        double ms[MAX_CONFIGS] = {0};
        if (eval_one(&r, i, frames.paths[i], masks.paths[mask_of[i]], ctx, failed == 0, &buf, rp, ms, &e) != 0) {
            if (progress && tty) fprintf(stderr, "\r\033[K");
            fprintf(stderr, "blazeneo " CMD ": %s\n", e.msg);
            failed++; /* stop measuring, but keep checking the other pairs */
            continue;
        }
        if (progress && failed == 0) {
            fprintf(stderr, "%s[%d/%d] %s ", tty ? "\r" : "", i + 1, frames.count, frames.paths[i]);
            for (int k = 0; k < r.nconfigs; k++)
                fprintf(stderr, " %s%s%.0f ms", r.nconfigs > 1 ? configs[k].label : "", r.nconfigs > 1 ? " " : "",
                        ms[k]);
            fprintf(stderr, "%s", tty ? "\033[K" : "\n");
        }
    }
    if (progress && tty && failed == 0) fprintf(stderr, "\n");
    if (failed) {
        fprintf(stderr, "blazeneo " CMD ": %d of %d image/mask pair%s failed: no metrics (the set would be incomplete)\n",
                failed, frames.count, frames.count == 1 ? "" : "s");
        rc = EXIT_FAIL;
        goto done;
    }

    /* 4. the outputs */
    if (json) eval_print_json(stdout, &r);
    else eval_print_table(stdout, &r);
    fflush(stdout);
    if (csv && eval_write_csv(csv, &r, &e) != BZN_OK) rc = cli_error(CMD, &e);
    if (rp && report_finish(rp, &e) != BZN_OK) rc = cli_error(CMD, &e);
    if (!quiet) {
        fprintf(stderr, "evaluated %d image%s, %d configuration%s, in %.1f s", frames.count,
                frames.count == 1 ? "" : "s", r.nconfigs, r.nconfigs == 1 ? "" : "s", (cli_now_ms() - t_start) / 1e3);
        if (csv && rc == EXIT_OK) fprintf(stderr, "; scores per image in %s", csv);
        char index[4096];
        cli_path_join(index, sizeof index, report_dir ? report_dir : "", "index.html");
        if (rp && rc == EXIT_OK) fprintf(stderr, "; report in %s", index);
        fprintf(stderr, "\n");
    }

done:
    report_free(rp);
    free(buf.truth);
    for (int k = 0; k < MAX_CONFIGS; k++) {
        free(buf.pred[k]);
        bzn_ctx_free(ctx[k]);
    }
    bzn_model_free(m);
    for (int i = 0; r.images && i < frames.count; i++) {
        free(r.images[i].name);
        free(r.images[i].mask);
        free(r.images[i].conf);
    }
    free(r.images);
    free(mask_of);
    cli_list_free(&frames);
    cli_list_free(&masks);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    eval_args a;
    const int rc = parse_args(argc, argv, &a);
    return rc >= 0 ? rc : run(&a);
}
