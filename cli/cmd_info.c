/* cmd_info.c - `blazeneo info MODEL [-s SIZE] [--layers] [--tensors]` */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void help(void) {
    printf("usage: blazeneo info MODEL [-s SIZE] [--layers] [--tensors]\n\n"
           "Describe a weight file: variant, parameters and multiply-accumulates at a size.\n\n"
           "  -s, --size SIZE  input size, e.g. 352 or 512x384 (default: the model's)\n"
           "  --layers         every layer in execution order: input and output shapes,\n"
           "                   parameters and MACs (like torchinfo's summary)\n"
           "  --tensors        the weight file's tensor table\n"
           "  -h, --help       this help\n");
}

static int64_t total_macs(const bzn_ctx *c) {
    int64_t m = 0;
    bzn_layer_info li;
    for (int i = 0; i < bzn_ctx_num_layers(c); i++)
        if (bzn_ctx_layer(c, i, &li) == BZN_OK) m += li.macs;
    return m;
}

int cmd_info(int argc, char **argv) {
    static const struct option opts[] = {{"size", required_argument, 0, 's'},
                                         {"layers", no_argument, 0, 'l'},
                                         {"tensors", no_argument, 0, 't'},
                                         {"help", no_argument, 0, 'h'},
                                         {0}};
    int w = 0, h = 0, layers = 0, tensors = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:lth", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (cli_parse_size(optarg, &w, &h)) return cli_usage_error("info", "invalid size '%s'", optarg);
            break;
        case 'l': layers = 1; break;
        case 't': tensors = 1; break;
        case 'h': help(); return EXIT_OK;
        default: return cli_bad_option("info", c);
        }
    }
    if (argc - optind != 1) return cli_usage_error("info", "expected one MODEL");
    bzn_model *m;
    bzn_ctx *ctx;
    /* shapes, parameters and MACs: the FP32 plan (the same layers at any precision) */
    const cli_config cfg = {.width = w, .height = h, .backend = "ref", .run_aux = 1, .threads = 1,
                            .precision = BZN_PRECISION_FP32, .precision_set = 1, .quiet = 1};
    if (cli_open("info", argv[optind], &cfg, &m, &ctx)) return EXIT_FAIL;
    bzn_model_info mi;
    bzn_model_get_info(m, &mi);
    bzn_ctx *main_only = NULL;
    bzn_ctx_options o = bzn_ctx_default_options(m);
    if (w) o.width = w, o.height = h;
    o.backend = "ref";
    o.precision = BZN_PRECISION_FP32;
    bzn_error e;
    if (bzn_ctx_create(m, &o, &main_only, &e) != BZN_OK) {
        bzn_ctx_free(ctx);
        bzn_model_free(m);
        return cli_error("info", &e);
    }
    int W = o.width, H = o.height;
    int64_t macs_main = total_macs(main_only), macs_all = total_macs(ctx);
    printf("model       : %s\n", argv[optind]);
    printf("variant     : BlazeNeo %s aggregation, %s auxiliary head, %d-class main head (%s)\n",
           bzn_aggregation_name(mi.aggregation), mi.has_aux ? "with" : "without", mi.num_classes,
           mi.num_classes == 3 ? "softmax: neoplastic, non-neoplastic, background" : "two sigmoids: neo, non");
    if (mi.num_int8_convs)
        printf("weights     : %d tensors; INT8 file: %d of %d convolutions int8 (per output channel), the rest f32; "
               "%d activation scales\n",
               mi.num_tensors, mi.num_int8_convs, mi.num_convs, mi.num_act_scales);
    else
        printf("weights     : %d tensors, convolutions in %s\n", mi.num_tensors, mi.weight_dtype == 1 ? "f16" : "f32");
    printf("input       : default %dx%d, mean (%.3f, %.3f, %.3f), std (%.3f, %.3f, %.3f)\n", mi.default_width,
           mi.default_height, mi.mean[0], mi.mean[1], mi.mean[2], mi.std[0], mi.std[1], mi.std[2]);
    printf("parameters  : %lld on the main path, %lld with the auxiliary branch\n", (long long)mi.params_main,
           (long long)mi.params_total);
    if (mi.precision == BZN_PRECISION_INT8)
        printf("precision   : int8 (an INT8 weight file: the commands run it in INT8; -p fp32 runs its weights\n"
               "              dequantized to float)\n");
    else
        printf("precision   : fp32 (INT8 needs a calibration cache, -p int8 --calib, or an INT8 weight file)\n");
    char at[32];
    snprintf(at, sizeof at, "at %dx%d", W, H);
    printf("%-12s: %.3f GMAC main path%s", at, macs_main / 1e9, mi.has_aux ? "" : "\n");
    if (mi.has_aux) printf(", %.3f GMAC with the auxiliary branch\n", macs_all / 1e9);
    printf("activations : %.1f MB arena (main path, planned by liveness; the backend's scratch comes on top)\n",
           bzn_ctx_activation_bytes(main_only) / 1e6);
    if (tensors) {
        printf("\n%-48s %-5s %-18s %12s\n", "tensor", "type", "shape", "offset");
        for (int i = 0; i < bzn_model_num_weights(m); i++) {
            bzn_weight_info wi;
            if (bzn_model_weight(m, i, &wi) != BZN_OK) continue;
            char shape[64] = "";
            for (int d = 0; d < wi.ndim; d++)
                snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", d ? "x" : "",
                         (long long)wi.shape[d]);
            printf("%-48s %-5s %-18s %12llu\n", wi.name, bzn_weight_dtype_name(wi.dtype), shape, (unsigned long long)wi.offset);
        }
    }
    if (layers) {
        printf("\n%-4s %-34s %-26s %-16s %-16s %10s %10s\n", "#", "layer (PyTorch module)", "op", "input", "output",
               "params", "MMAC");
        bzn_layer_info li;
        for (int i = 0; i < bzn_ctx_num_layers(ctx); i++) {
            if (bzn_ctx_layer(ctx, i, &li) != BZN_OK) continue;
            char in[32], out[32];
            snprintf(in, sizeof in, "%dx%dx%d", li.in_channels, li.in_height, li.in_width);
            snprintf(out, sizeof out, "%dx%dx%d", li.channels, li.height, li.width);
            printf("%-4d %-34s %-26s %-16s %-16s %10lld %10.2f\n", i, li.name, li.op, in, out, (long long)li.params,
                   li.macs / 1e6);
        }
    }
    bzn_ctx_free(main_only);
    bzn_ctx_free(ctx);
    bzn_model_free(m);
    return EXIT_OK;
}
