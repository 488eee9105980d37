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

typedef struct {
    const char *name;
    double rel_err, dice;
} score;

static int by_error(const void *a, const void *b) {
    const score *x = a, *y = b;
    return x->rel_err < y->rel_err ? 1 : x->rel_err > y->rel_err ? -1 : 0;
}

/* Dice of the polyp pixels of a class map against FP32's */
static double seg_dice(const uint8_t *a, const uint8_t *b, size_t n) {
    bzn_confusion conf = {0};
    bzn_confusion_add(&conf, a, b, n);
    return bzn_dice(&conf, BZN_METRIC_SEG);
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
        default: return cli_usage_error("sensitivity", "unknown option");
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
    const cli_config cfg = {.width = w, .height = h, .threads = threads};
    if (cli_open("sensitivity", model, &cfg, &m, &fp)) goto out;
    if (bzn_calib_cache_read(calib, &t, &e) != BZN_OK) {
        cli_error("sensitivity", &e);
        goto out;
    }
    /* FP32 reference outputs for every frame: the input tensors, logits and class maps */
    const float *x;
    int C, H, W;
    bzn_ctx_options fo = bzn_ctx_default_options(m);
    H = h ? h : fo.height;
    W = w ? w : fo.width;
    const size_t in_n = (size_t)3 * H * W;
    float *inputs = malloc((size_t)n_frames * in_n * sizeof *inputs);
    float *ref = NULL;
    uint8_t *ref_cls = malloc((size_t)n_frames * H * W), *cls = malloc((size_t)H * W);
    if (!inputs || !ref_cls || !cls) goto oom;
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
        bzn_logits(fp, BZN_OUT_MAIN, &x, &C, &H, &W, NULL);
        if (!ref && !(ref = malloc((size_t)n_frames * C * H * W * sizeof *ref))) goto oom;
        memcpy(ref + (size_t)f * C * H * W, x, (size_t)C * H * W * sizeof *x);
        bzn_class_map(fp, ref_cls + (size_t)f * H * W, W, H, NULL);
    }
    /* the convolutions, and a keep-FP32 list of all of them but one */
    int L = bzn_ctx_num_layers(fp), nconv = 0;
    size_t list_len = 1;
    bzn_layer_info li;
    for (int i = 0; i < L; i++) {
        bzn_ctx_layer(fp, i, &li);
        if (!strncmp(li.op, "conv", 4)) nconv++, list_len += strlen(li.name) + 1;
    }
    score *sc = calloc((size_t)nconv + 1, sizeof *sc);
    char *keep = malloc(list_len);
    if (!sc || !keep) {
        free(sc);
        free(keep);
        goto oom;
    }
    int k = 0;
    for (int target = -1; target < L; target++) { /* target -1: everything in INT8 */
        if (target >= 0) {
            bzn_ctx_layer(fp, target, &li);
            if (strncmp(li.op, "conv", 4)) continue;
        }
        keep[0] = 0;
        for (int i = 0; target >= 0 && i < L; i++) {
            bzn_layer_info lj;
            bzn_ctx_layer(fp, i, &lj);
            if (i == target || strncmp(lj.op, "conv", 4)) continue;
            strcat(keep, keep[0] ? "," : "");
            strcat(keep, lj.name);
        }
        bzn_ctx_options o = bzn_ctx_default_options(m);
        o.width = W;
        o.height = H;
        o.threads = threads;
        o.precision = BZN_PRECISION_INT8;
        o.scales = t->scales;
        o.n_scales = t->count;
        o.keep_fp32 = keep;
        bzn_ctx *q;
        if (bzn_ctx_create(m, &o, &q, &e) != BZN_OK) {
            free(sc);
            free(keep);
            cli_error("sensitivity", &e);
            goto out_free;
        }
        double err_sum = 0, dice_sum = 0;
        if (target < 0 && bzn_calib_cache_check(t, q, &e) != BZN_OK) { /* the cache names this network */
            bzn_ctx_free(q);
            free(sc);
            free(keep);
            cli_error("sensitivity", &e);
            goto out_free;
        }
        for (int f = 0; f < n_frames; f++) {
            if (bzn_run_tensor(q, inputs + f * in_n, &e) != BZN_OK) {
                bzn_ctx_free(q);
                free(sc);
                free(keep);
                cli_error("sensitivity", &e);
                goto out_free;
            }
            bzn_logits(q, BZN_OUT_MAIN, &x, &C, &H, &W, NULL);
            const float *r = ref + (size_t)f * C * H * W;
            double num = 0, den = 0;
            for (size_t i = 0; i < (size_t)C * H * W; i++) {
                num += (double)(x[i] - r[i]) * (x[i] - r[i]);
                den += (double)r[i] * r[i];
            }
            err_sum += sqrt(num / (den > 0 ? den : 1));
            bzn_class_map(q, cls, W, H, NULL);
            dice_sum += seg_dice(cls, ref_cls + (size_t)f * H * W, (size_t)H * W);
        }
        bzn_ctx_free(q);
        if (target < 0) {
            printf("all convolutions in INT8: logits error %.4f, polyp Dice vs FP32 %.4f (%d frames)\n\n",
                   err_sum / n_frames, dice_sum / n_frames, n_frames);
            printf("%-4s %-30s %14s %16s\n", "rank", "layer quantized alone", "logits error", "Dice vs FP32");
            continue;
        }
        sc[k].name = li.name;
        sc[k].rel_err = err_sum / n_frames;
        sc[k].dice = dice_sum / n_frames;
        k++;
        fprintf(stderr, "\r[%d/%d] %-40s", k, nconv, li.name);
    }
    fprintf(stderr, "\r%60s\r", "");
    qsort(sc, (size_t)k, sizeof *sc, by_error);
    for (int i = 0; i < k && (top <= 0 || i < top); i++)
        printf("%-4d %-30s %14.5f %16.4f\n", i + 1, sc[i].name, sc[i].rel_err, sc[i].dice);
    free(sc);
    free(keep);
    rc = EXIT_OK;
    goto out_free;
oom:
    fprintf(stderr, "blazeneo sensitivity: out of memory\n");
out_free:
    free(inputs);
    free(ref);
    free(ref_cls);
    free(cls);
out:
    bzn_calib_table_free(t);
    bzn_ctx_free(fp);
    bzn_model_free(m);
    cli_list_free(&list);
    return rc;
}
