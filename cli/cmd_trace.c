/* cmd_trace.c - `blazeneo trace -m MODEL [-s SIZE] IMAGE -o DIR`: every intermediate tensor as .npy */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "npy.h"

static void help(void) {
    printf("usage: blazeneo trace -m MODEL [-s SIZE] IMAGE -o DIR\n\n"
           "Run one image and write, for auditing against PyTorch (tests/ref/compare_trace.py):\n"
           "  DIR/input.npy          the preprocessed 1x3xHxW float32 input\n"
           "  DIR/<module>.npy       the output of every module, named by its PyTorch path\n"
           "                         (encoder.base.3.layers.5, rfb4.branch2.2, agg2.block_31.1,\n"
           "                         head_2, ...); containers whose output is the same tensor\n"
           "                         (rfb4, agg2, encoder.base.3 ...) get their own file too\n"
           "  DIR/main.npy, aux.npy  logits at input resolution, 1xCxHxW\n\n"
           "  -m, --model FILE   weight file\n"
           "  -o, --output DIR   output folder (created if missing)\n"
           "  -s, --size SIZE    network input size (default: the model's)\n"
           "  -b, --backend B    the backend:\n");
    cli_backend_help(stdout, 19);
    cli_precision_help(stdout, 19);
    printf("  -h, --help         this help\n");
}

static int write4(const char *dir, const char *name, const float *data, int c, int h, int w) {
    char path[4096];
    cli_path_join(path, sizeof path, dir, "%s.npy", name);
    int64_t shape[4] = {1, c, h, w};
    bzn_error e;
    if (bzn_npy_write(path, data, 4, shape, &e) != BZN_OK) return cli_error("trace", &e);
    return 0;
}

int cmd_trace(int argc, char **argv) {
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"output", required_argument, 0, 'o'},
                                         {"size", required_argument, 0, 's'},  {"backend", required_argument, 0, 'b'},
                                         {"help", no_argument, 0, 'h'},        CLI_PRECISION_OPTIONS,
                                         {0}};
    const char *model = NULL, *outdir = NULL;
    int c;
    cli_config cfg = {.run_aux = 1, .keep_intermediates = 1};
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:o:s:b:p:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'o': outdir = optarg; break;
        case 's':
            if (cli_parse_size(optarg, &cfg.width, &cfg.height))
                return cli_usage_error("trace", "invalid size '%s'", optarg);
            break;
        case 'b':
            if (cli_parse_backend("trace", optarg, &cfg.backend)) return EXIT_USAGE;
            break;
        case 'h': help(); return EXIT_OK;
        default:
            if (cli_precision_option("trace", c, optarg, &cfg)) return EXIT_USAGE;
        }
    }
    if (!model) return cli_usage_error("trace", "no model given (-m MODEL)");
    if (!outdir) return cli_usage_error("trace", "no output folder given (-o DIR)");
    if (argc - optind != 1) return cli_usage_error("trace", "expected exactly one IMAGE");
    bzn_image img = {0};
    bzn_error e;
    if (bzn_image_load_jpeg(argv[optind], &img, &e) != BZN_OK) return cli_error("trace", &e);
    bzn_model *m;
    bzn_ctx *ctx;
    if (bzn_model_open(model, &m, &e) != BZN_OK) {
        bzn_image_free(&img);
        return cli_error("trace", &e);
    }
    /* INT8 (-p int8, --calib or an INT8 weight file): the main path (calibration caches and
       INT8 files cover it; the auxiliary head is a training aid) */
    if (cli_precision_of(m, &cfg) == BZN_PRECISION_INT8) cfg.run_aux = 0;
    if (cli_ctx_create("trace", m, &cfg, &ctx)) {
        bzn_model_free(m);
        bzn_image_free(&img);
        return EXIT_FAIL;
    }
    int rc = EXIT_OK;
    float *buf = NULL;
    if (cli_mkdir(outdir) != 0) {
        fprintf(stderr, "blazeneo trace: cannot create output folder '%s'\n", outdir);
        rc = EXIT_FAIL;
    } else if (bzn_run_rgb(ctx, img.pixels, img.width, img.height, img.width * 3, &e) != BZN_OK) {
        rc = cli_error("trace", &e);
    }
    int files = 0;
    if (rc == EXIT_OK) {
        bzn_layer_info li;
        bzn_ctx_layer(ctx, 0, &li);
        const bzn_ctx_options o = bzn_ctx_default_options(m);
        int H = cfg.height ? cfg.height : o.height, W = cfg.width ? cfg.width : o.width;
        rc = write4(outdir, "input", bzn_ctx_input(ctx), 3, H, W) ? EXIT_FAIL : EXIT_OK;
        files++;
        for (int i = 0; rc == EXIT_OK && i < bzn_ctx_num_layers(ctx); i++) {
            bzn_ctx_layer(ctx, i, &li);
            size_t n = (size_t)li.channels * li.height * li.width;
            float *nb = realloc(buf, n * sizeof *buf);
            if (!nb) {
                fprintf(stderr, "blazeneo trace: out of memory\n");
                rc = EXIT_FAIL;
                break;
            }
            buf = nb;
            if (bzn_ctx_layer_output(ctx, i, buf, n, &e) != BZN_OK) {
                rc = cli_error("trace", &e);
                break;
            }
            /* the module itself, then every container with the same output */
            char names[512];
            snprintf(names, sizeof names, "%s %s", li.name, li.aliases);
            for (char *save, *tok = strtok_r(names, " ", &save); tok && rc == EXIT_OK; tok = strtok_r(NULL, " ", &save)) {
                rc = write4(outdir, tok, buf, li.channels, li.height, li.width) ? EXIT_FAIL : EXIT_OK;
                files++;
            }
        }
        static const struct { bzn_output which; const char *name; } outs[] = {{BZN_OUT_MAIN, "main"}, {BZN_OUT_AUX, "aux"}};
        for (int k = 0; k < 2 && rc == EXIT_OK; k++) {
            const float *x;
            int C, HH, WW;
            if (bzn_logits(ctx, outs[k].which, &x, &C, &HH, &WW, NULL) != BZN_OK) continue; /* no aux head */
            rc = write4(outdir, outs[k].name, x, C, HH, WW) ? EXIT_FAIL : EXIT_OK;
            files++;
        }
    }
    if (rc == EXIT_OK) printf("wrote %d tensors to %s\n", files, outdir);
    free(buf);
    bzn_image_free(&img);
    bzn_ctx_free(ctx);
    bzn_model_free(m);
    return rc;
}
