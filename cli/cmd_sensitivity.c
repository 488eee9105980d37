/*
 * cmd_sensitivity.c - `blazeneo sensitivity -m MODEL --calib CACHE --images DIR [-n N]`
 *
 * Which convolutions lose the most when quantized? For each convolution alone in INT8 (all
 * others FP32), run the frames and compare with FP32: the relative error of the logits and
 * the Dice of the polyp masks against FP32's. The top of the list is what --keep-fp32 is for.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void help(void) {
    printf("usage: blazeneo sensitivity -m MODEL --calib CACHE --images DIR [-n N] [-s SIZE] [--top K]\n\n"
           "Rank the convolutions by how much quantizing each one alone (all others FP32) changes\n"
           "the output: relative L2 error of the main logits and Dice of the polyp mask against\n"
           "FP32's, averaged over the frames. Use the top of the list with quantize --keep-fp32.\n\n"
           "  -m, --model FILE    FP32/FP16 weight file\n"
           "  -c, --calib CACHE   calibration cache (blazeneo calibrate)\n"
           "  --images DIR        frames to measure on (e.g. the calibration set)\n"
           "  -n N                use the first N frames (default 4)\n"
           "  -s, --size SIZE     network input size (default: the model's)\n"
           "  --top K             print the K most sensitive layers (default: all)\n"
           "  -t, --threads N     CPU threads\n"
           "  -h, --help          this help\n");
}

static void on_progress(void *user, int done, int total, const char *name) {
    (void)user;
    fprintf(stderr, "\r[%d/%d] %-40s", done, total, name);
}

int cmd_sensitivity(int argc, char **argv) {
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"calib", required_argument, 0, 'c'},
                                         {"images", required_argument, 0, 'i'}, {"size", required_argument, 0, 's'},
                                         {"top", required_argument, 0, 'k'},    {"threads", required_argument, 0, 't'},
                                         {"help", no_argument, 0, 'h'},         {0}};
    const char *model = NULL, *calib = NULL, *images = NULL;
    int n_frames = 4, w = 0, h = 0, top = 0, threads = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:c:n:s:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'c': calib = optarg; break;
        case 'i': images = optarg; break;
        case 'n':
            if (cli_parse_int(optarg, 1, 100000, &n_frames)) return cli_usage_error("sensitivity", "invalid -n '%s'", optarg);
            break;
        case 's':
            if (cli_parse_size(optarg, &w, &h)) return cli_usage_error("sensitivity", "invalid size '%s'", optarg);
            break;
        case 'k':
            if (cli_parse_int(optarg, 0, 100000, &top)) return cli_usage_error("sensitivity", "invalid --top '%s'", optarg);
            break;
        case 't':
            if (cli_parse_int(optarg, 0, 1024, &threads))
                return cli_usage_error("sensitivity", "invalid thread count '%s'", optarg);
            break;
        case 'h': help(); return EXIT_OK;
        default: return cli_bad_option("sensitivity", c);
        }
    }
    if (!model || !calib || !images) return cli_usage_error("sensitivity", "-m, --calib and --images are required");
    if (n_frames < 1) return cli_usage_error("sensitivity", "-n must be at least 1");
    cli_list list;
    char *dirs[1] = {(char *)images};
    if (cli_collect_images("sensitivity", dirs, 1, &list)) return EXIT_FAIL;
    if (n_frames > list.count) n_frames = list.count;

    bzn_error e;
    bzn_model *m = NULL;
    bzn_ctx *fp = NULL;
    bzn_calib_table *t = NULL;
    int rc = EXIT_FAIL;
    /* the FP32 context the INT8 runs are measured against */
    const cli_config cfg = {.width = w, .height = h, .threads = threads, .precision = BZN_PRECISION_FP32,
                            .precision_set = 1, .precision_why = "the reference: each INT8 layer is measured against it"};
    if (cli_open("sensitivity", model, &cfg, &m, &fp)) goto out;
    if (bzn_calib_cache_read(calib, &t, &e) != BZN_OK) {
        cli_error("sensitivity", &e);
        goto out;
    }
    /* the frames' input tensors, preprocessed once */
    bzn_ctx_options fo = bzn_ctx_default_options(m);
    const int H = h ? h : fo.height, W = w ? w : fo.width;
    const size_t in_n = (size_t)3 * H * W;
    float *inputs = malloc((size_t)n_frames * in_n * sizeof *inputs);
    if (!inputs) goto oom;
    for (int f = 0; f < n_frames; f++) {
        bzn_image img;
        if (bzn_image_load_jpeg(list.paths[f], &img, &e) != BZN_OK ||
            bzn_run_rgb(fp, img.pixels, img.width, img.height, img.width * 3, &e) != BZN_OK) {
            bzn_image_free(&img);
            cli_error("sensitivity", &e);
            goto out_free;
        }
        bzn_image_free(&img);
        memcpy(inputs + f * in_n, bzn_ctx_input(fp), in_n * sizeof(float));
    }
    bzn_sensitivity_report r;
    if (bzn_int8_sensitivity(fp, inputs, n_frames, t, &r, on_progress, NULL, &e) != BZN_OK) {
        fprintf(stderr, "\n");
        cli_error("sensitivity", &e);
        goto out_free;
    }
    fprintf(stderr, "\r%60s\r", "");
    printf("all convolutions in INT8: logits error %.4f, polyp Dice vs FP32 %.4f (%d frames)\n\n", r.all.logits_error,
           r.all.dice, n_frames);
    printf("%-4s %-30s %14s %16s\n", "rank", "layer quantized alone", "logits error", "Dice vs FP32");
    for (int i = 0; i < r.n_layers && (top <= 0 || i < top); i++)
        printf("%-4d %-30s %14.5f %16.4f\n", i + 1, r.layers[i].name, r.layers[i].logits_error, r.layers[i].dice);
    bzn_sensitivity_report_free(&r);
    rc = EXIT_OK;
    goto out_free;
oom:
    fprintf(stderr, "blazeneo sensitivity: out of memory\n");
out_free:
    free(inputs);
out:
    bzn_calib_table_free(t);
    bzn_ctx_free(fp);
    bzn_model_free(m);
    cli_list_free(&list);
    return rc;
}
