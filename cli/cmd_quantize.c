/* cmd_quantize.c - `blazeneo quantize -m MODEL --calib CACHE [--keep-fp32 NAME,...] -o MODEL_INT8` */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void help(void) {
    printf("usage: blazeneo quantize -m MODEL --calib CACHE [--keep-fp32 NAME,...] -o MODEL_INT8\n\n"
           "Write an INT8 weight file, as TensorRT builds its INT8 engine: BatchNorm folded into\n"
           "every convolution, weights quantized per output channel (symmetric int8), and the\n"
           "activation scales of the calibration cache (blazeneo calibrate) stored with them.\n"
           "Run it with -p int8 in segment, trace, eval, bench and stream.\n\n"
           "  -m, --model FILE        FP32/FP16 weight file\n"
           "  -c, --calib CACHE       calibration cache (TensorRT text format)\n"
           "  --keep-fp32 NAMES       comma-separated convolutions to keep in FP32\n"
           "                          (blazeneo sensitivity ranks them), e.g. head_2.head\n"
           "  -o, --output FILE       the INT8 weight file\n"
           "  -h, --help              this help\n");
}

int cmd_quantize(int argc, char **argv) {
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},   {"calib", required_argument, 0, 'c'},
                                         {"keep-fp32", required_argument, 0, 'k'}, {"output", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},           {0}};
    const char *model = NULL, *calib = NULL, *keep = NULL, *out = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:c:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'c': calib = optarg; break;
        case 'k': keep = optarg; break;
        case 'o': out = optarg; break;
        case 'h': help(); return EXIT_OK;
        default: return cli_bad_option("quantize", c);
        }
    }
    if (!model || !calib || !out) return cli_usage_error("quantize", "-m MODEL, --calib CACHE and -o FILE are required");
    if (optind != argc) return cli_usage_error("quantize", "unexpected argument '%s'", argv[optind]);
    bzn_error e;
    bzn_model *m = NULL;
    bzn_calib_table *t = NULL;
    int rc = EXIT_OK;
    if (bzn_model_open(model, &m, &e) != BZN_OK || bzn_calib_cache_read(calib, &t, &e) != BZN_OK ||
        bzn_quantize_model(m, t->scales, t->count, keep, out, &e) != BZN_OK) {
        rc = cli_error("quantize", &e);
    } else if (!cli_is_regular_file(out)) { /* "-", a FIFO, a device: written, not to be read back */
        fprintf(stderr, "%s -> %s\n", model, out);
    } else {
        bzn_model *q = NULL;
        if (bzn_model_open(out, &q, &e) != BZN_OK) {
            rc = cli_error("quantize", &e);
        } else {
            bzn_model_info a, b;
            bzn_model_get_info(m, &a);
            bzn_model_get_info(q, &b);
            printf("%s -> %s\n", model, out);
            printf("  calibration : %s, %d tensor scales (%s)\n", calib, t->count, bzn_calib_method_name(t->method));
            printf("  kept in FP32: %s\n", keep && *keep ? keep : "none");
            printf("  size        : %.1f MB (the source file is %.1f MB)\n", b.file_bytes / 1e6, a.file_bytes / 1e6);
        }
        bzn_model_free(q);
    }
    bzn_calib_table_free(t);
    bzn_model_free(m);
    return rc;
}
