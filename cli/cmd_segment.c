/* cmd_segment.c - `blazeneo segment -m MODEL [-s SIZE] -o DIR [--overlay] [--aux] IMAGE|DIR...` */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void help(void) {
    printf("usage: blazeneo segment -m MODEL -o DIR [-s SIZE] [--overlay] [--aux] IMAGE|DIR...\n\n"
           "Segment JPEG frames. For each image, DIR/<stem>.png is the colour mask at the image's\n"
           "own size: neoplastic red, non-neoplastic green, background black.\n\n"
           "  -m, --model FILE   weight file (blazeneo convert makes one from a .pth)\n"
           "  -o, --output DIR   output folder (created if missing)\n"
           "  -s, --size SIZE    network input size, multiple of 32 (default: the model's, 352)\n"
           "  --overlay          also DIR/<stem>_overlay.png: the frame with the polyps blended in\n"
           "                     their colour and outlined, and a legend (the options below)\n"
           "  --aux              also DIR/<stem>_aux.png: the auxiliary head's polyp probability as\n"
           "                     grey (black 0 to white 1), with a scale in the legend's corner\n");
    cli_overlay_help(stdout, 19);
    printf("                     (--legend and --no-legend place or drop --aux's scale too)\n"
           "  -b, --backend B    the backend:\n");
    cli_backend_help(stdout, 19);
    printf("  -t, --threads N    CPU threads (default: all)\n");
    cli_precision_help(stdout, 19);
    printf("  -q, --quiet        no progress line and no precision note\n"
           "  -h, --help         this help\n\n"
           "Directories are expanded to the files they hold; a file that is not a JPEG is\n"
           "reported and skipped, and the exit status is then 1.\n");
}

typedef struct {
    uint8_t *classes, *rgb, *aux;
} seg_buffers;

static int segment_one(bzn_ctx *ctx, const char *path, const char *outdir, int overlay, const cli_overlay *ov, int aux,
                       seg_buffers *sb, bzn_error *e) {
    bzn_image img = {0};
    bzn_status s = bzn_image_load_jpeg(path, &img, e);
    if (s != BZN_OK) return -1;
    const size_t n = (size_t)img.width * img.height;
    char stem[1024], out[4096];
    cli_stem(path, stem, sizeof stem);
    free(sb->classes);
    free(sb->rgb);
    free(sb->aux);
    sb->classes = malloc(n);
    sb->rgb = malloc(3 * n);
    sb->aux = aux ? malloc(n) : NULL;
    if (!sb->classes || !sb->rgb || (aux && !sb->aux)) {
        bzn_image_free(&img);
        e->status = BZN_ERR_NOMEM;
        snprintf(e->msg, sizeof e->msg, "%s: out of memory", path);
        return -1;
    }
    s = bzn_run_rgb(ctx, img.pixels, img.width, img.height, img.width * 3, e);
    if (s == BZN_OK) s = bzn_class_map(ctx, sb->classes, img.width, img.height, e);
    if (s == BZN_OK) {
        bzn_colorize(sb->classes, n, sb->rgb);
        cli_path_join(out, sizeof out, outdir, "%s.png", stem);
        s = bzn_image_write_png(out, sb->rgb, img.width, img.height, 3, e);
    }
    if (s == BZN_OK && overlay) {
        s = bzn_overlay_draw(img.pixels, sb->classes, img.width, img.height, &ov->style, sb->rgb, e);
    }
    if (s == BZN_OK && overlay) {
        cli_path_join(out, sizeof out, outdir, "%s_overlay.png", stem);
        s = bzn_image_write_png(out, sb->rgb, img.width, img.height, 3, e);
    }
    if (s == BZN_OK && aux) s = bzn_polyp_map(ctx, sb->aux, img.width, img.height, e);
    if (s == BZN_OK && aux) s = bzn_grey_scale_draw(sb->aux, img.width, img.height, ov->style.legend, e);
    if (s == BZN_OK && aux) {
        cli_path_join(out, sizeof out, outdir, "%s_aux.png", stem);
        s = bzn_image_write_png(out, sb->aux, img.width, img.height, 1, e);
    }
    bzn_image_free(&img);
    return s == BZN_OK ? 0 : -1;
}

typedef struct {
    char *name; /* an output file name, without the folder */
    int input;  /* the input that writes it */
} out_name;

static int cmp_out_name(const void *a, const void *b) {
    const out_name *x = a, *y = b;
    const int c = strcmp(x->name, y->name);
    return c ? c : (x->input > y->input) - (x->input < y->input);
}

/* Every file a run writes is DIR/<stem><suffix>.png: two inputs whose names collide (equal
 * stems, or `a.jpg` with --overlay beside `a_overlay.jpg`) would overwrite each other's
 * outputs. Refuse before running, naming both inputs and the file. */
static int check_output_names(const cli_list *list, int overlay, int aux) {
    const char *suffixes[3] = {""};
    int ns = 1;
    if (overlay) suffixes[ns++] = "_overlay";
    if (aux) suffixes[ns++] = "_aux";
    const size_t total = (size_t)list->count * ns;
    out_name *names = calloc(total + 1, sizeof *names);
    int bad = !names;
    for (size_t k = 0; !bad && k < total; k++) {
        char stem[1024], name[1100];
        cli_stem(list->paths[k / ns], stem, sizeof stem);
        snprintf(name, sizeof name, "%s%s.png", stem, suffixes[k % ns]);
        names[k].input = (int)(k / ns);
        bad = !(names[k].name = strdup(name));
    }
    if (!bad) qsort(names, total, sizeof *names, cmp_out_name);
    for (size_t k = 1; !bad && k < total; k++)
        if (!strcmp(names[k - 1].name, names[k].name)) {
            /* one input's own names differ by their suffixes: these are two inputs */
            fprintf(stderr, "blazeneo segment: '%s' and '%s' would both write '%s': rename one of them\n",
                    list->paths[names[k - 1].input], list->paths[names[k].input], names[k].name);
            bad = 1;
        }
    for (size_t k = 0; names && k < total; k++) free(names[k].name);
    free(names);
    return bad ? -1 : 0;
}

/* what the command line asks for */
typedef struct {
    const char *model, *outdir;
    int overlay, quiet;
    cli_overlay ov;
    cli_config cfg;
    int first_image; /* argv[first_image..argc): the images */;
    int argc;
    char **argv;
} segment_args;

/* The command line into *a: -1 to go on, else the exit status (help, a usage error). */
static int parse_args(int argc, char **argv, segment_args *a) {
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},  {"output", required_argument, 0, 'o'},
                                         {"size", required_argument, 0, 's'},   {"overlay", no_argument, 0, 'O'},
                                         {"aux", no_argument, 0, 'a'},          {"backend", required_argument, 0, 'b'},
                                         {"threads", required_argument, 0, 't'}, {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},         CLI_PRECISION_OPTIONS,
                                         CLI_OVERLAY_OPTIONS,                   {0}};
    memset(a, 0, sizeof *a);
    cli_overlay_init(&a->ov);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:o:s:b:t:p:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'o': a->outdir = optarg; break;
        case 's':
            if (cli_parse_size(optarg, &a->cfg.width, &a->cfg.height))
                return cli_usage_error("segment", "invalid size '%s'", optarg);
            break;
        case 'O': a->overlay = 1; break;
        case 'a': a->cfg.run_aux = 1; break;
        case 'b':
            if (cli_parse_backend("segment", optarg, &a->cfg.backend)) return EXIT_USAGE;
            break;
        case 't':
            if (cli_parse_int(optarg, 0, 1024, &a->cfg.threads))
                return cli_usage_error("segment", "invalid thread count '%s' (0 = all)", optarg);
            break;
        case 'q': a->quiet = a->cfg.quiet = 1; break;
        case 'h': help(); return EXIT_OK;
        default: {
            int r = cli_overlay_option("segment", c, optarg, &a->ov);
            if (r < 0) r = cli_precision_option("segment", c, optarg, &a->cfg);
            if (r) return EXIT_USAGE;
        }
        }
    }
    if (a->ov.given && !a->overlay) return cli_usage_error("segment", "%s is for --overlay", a->ov.given);
    if (a->ov.legend_given && !a->overlay && !a->cfg.run_aux)
        return cli_usage_error("segment", "%s is for --overlay or --aux", a->ov.legend_given);
    if (!a->model) return cli_usage_error("segment", "no model given (-m MODEL)");
    if (!a->outdir) return cli_usage_error("segment", "no output folder given (-o DIR)");
    if (optind >= argc) return cli_usage_error("segment", "no images given");
    a->argc = argc;
    a->argv = argv;
    a->first_image = optind;
    return -1;
}

static int run(const segment_args *a) {
    const char *model = a->model, *outdir = a->outdir;
    const int overlay = a->overlay, quiet = a->quiet;
    const cli_config cfg = a->cfg;
    const int aux = cfg.run_aux;
    cli_list list;
    if (cli_collect_images("segment", a->argv + a->first_image, a->argc - a->first_image, &list)) return EXIT_FAIL;
    if (check_output_names(&list, overlay, aux)) {
        cli_list_free(&list);
        return EXIT_FAIL;
    }
    bzn_model *m;
    bzn_ctx *ctx;
    if (cli_open("segment", model, &cfg, &m, &ctx)) {
        cli_list_free(&list);
        return EXIT_FAIL;
    }
    bzn_model_info mi;
    bzn_model_get_info(m, &mi);
    int rc = EXIT_OK, ok = 0, failed = 0;
    if (aux && !mi.has_aux) {
        fprintf(stderr, "blazeneo segment: --aux: this model has no auxiliary head\n");
        rc = EXIT_FAIL;
    } else if (cli_mkdir(outdir) != 0) {
        fprintf(stderr, "blazeneo segment: cannot create output folder '%s'\n", outdir);
        rc = EXIT_FAIL;
    }
    seg_buffers sb = {0};
    const int progress = !quiet && list.count > 1, tty = isatty(2);
    double t_total = 0;
    for (int i = 0; rc == EXIT_OK && i < list.count; i++) {
        bzn_error e = {0};
        double t0 = cli_now_ms();
        if (segment_one(ctx, list.paths[i], outdir, overlay, &a->ov, aux, &sb, &e) != 0) {
            if (progress && tty) fprintf(stderr, "\n");
            fprintf(stderr, "blazeneo segment: %s\n", e.msg);
            failed++; /* keep going: one bad file does not stop the others */
            continue;
        }
        double dt = cli_now_ms() - t0;
        t_total += dt;
        ok++;
        if (progress)
            fprintf(stderr, "%s[%d/%d] %s  %.0f ms%s", tty ? "\r" : "", i + 1, list.count, list.paths[i], dt,
                    tty ? "\033[K" : "\n");
    }
    if (progress && tty) fprintf(stderr, "\n");
    if (rc == EXIT_OK && !quiet)
        fprintf(stderr, "segmented %d image%s into %s (%.1f ms per image)%s", ok, ok == 1 ? "" : "s", outdir,
                ok ? t_total / ok : 0.0, failed ? "" : "\n");
    if (rc == EXIT_OK && failed) {
        fprintf(stderr, "%s%d file%s failed\n", quiet ? "blazeneo segment: " : ", ", failed, failed == 1 ? "" : "s");
        rc = EXIT_FAIL;
    }
    cli_list_free(&list);
    free(sb.classes);
    free(sb.rgb);
    free(sb.aux);
    bzn_ctx_free(ctx);
    bzn_model_free(m);
    return rc;
}

int cmd_segment(int argc, char **argv) {
    segment_args a;
    const int rc = parse_args(argc, argv, &a);
    return rc >= 0 ? rc : run(&a);
}
