/*
 * sensitivity.c - which convolutions lose the most when quantized (bzn_int8_sensitivity).
 *
 * For each convolution alone in INT8 (all the others FP32), run the frames and compare with
 * FP32: the relative L2 error of the main logits, and the Dice of the polyp mask against
 * FP32's. The top of the ranking is what to keep in FP32 (bzn_quantize_model's keep_fp32).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "error.h"

typedef struct {
    bzn_ctx *fp;
    const float *inputs;
    int n_frames;
    size_t in_n, out_n, px; /* floats per input and per logits tensor; pixels per class map */
    float *ref;             /* FP32 logits per frame */
    uint8_t *ref_cls, *cls; /* FP32 class maps per frame; one frame's, quantized */
} sens_job;

static int is_conv(const bzn_layer_info *li) { return li->op && !strncmp(li->op, "conv", 4); }

/* The quantized context (INT8 but for keep) on every frame, against FP32. */
static bzn_status measure(sens_job *j, const bzn_ctx_options *o, const char *keep, int check_names,
                          const bzn_calib_table *names, bzn_sensitivity *out, bzn_error *err) {
    bzn_ctx_options qo = *o;
    qo.keep_fp32 = keep;
    bzn_ctx *q;
    bzn_status s = bzn_ctx_create(bzn_ctx_model(j->fp), &qo, &q, err);
    if (s != BZN_OK) return s;
    if (check_names) s = bzn_calib_cache_check(names, q, err); /* the scales name this network */
    double err_sum = 0, dice_sum = 0;
    for (int f = 0; s == BZN_OK && f < j->n_frames; f++) {
        const float *x;
        s = bzn_run_tensor(q, j->inputs + f * j->in_n, err);
        if (s == BZN_OK) s = bzn_logits(q, BZN_OUT_MAIN, &x, NULL, NULL, NULL, err);
        if (s == BZN_OK) s = bzn_class_map(q, j->cls, o->width, o->height, err);
        if (s != BZN_OK) break;
        const float *r = j->ref + f * j->out_n;
        double num = 0, den = 0;
        for (size_t i = 0; i < j->out_n; i++) {
            num += (double)(x[i] - r[i]) * (x[i] - r[i]);
            den += (double)r[i] * r[i];
        }
        err_sum += sqrt(num / (den > 0 ? den : 1));
        bzn_confusion conf = {{0}, {0}, {0}};
        bzn_confusion_add(&conf, j->cls, j->ref_cls + f * j->px, j->px);
        dice_sum += bzn_dice(&conf, BZN_METRIC_SEG);
    }
    bzn_ctx_free(q);
    out->logits_error = err_sum / j->n_frames;
    out->dice = dice_sum / j->n_frames;
    return s;
}

static int most_sensitive_first(const void *a, const void *b) {
    const bzn_sensitivity *x = a, *y = b;
    return x->logits_error < y->logits_error ? 1 : x->logits_error > y->logits_error ? -1 : 0;
}

bzn_status bzn_int8_sensitivity(bzn_ctx *fp, const float *inputs, int n_frames, const bzn_calib_table *scales,
                                bzn_sensitivity_report *report, bzn_progress_fn progress, void *user, bzn_error *err) {
    if (!fp || !inputs || n_frames < 1 || !scales || !report)
        return bzn_fail(err, BZN_ERR_ARG, "sensitivity: NULL argument or no frames");
    memset(report, 0, sizeof *report);
    bzn_ctx_options o = *bzn_ctx_options_of(fp);
    if (o.precision != BZN_PRECISION_FP32) return bzn_fail(err, BZN_ERR_ARG, "sensitivity: the reference context must be FP32");
    o.batch = 1;
    o.precision = BZN_PRECISION_INT8;
    o.scales = scales->scales;
    o.n_scales = scales->count;
    o.keep_intermediates = 0;
    const int L = bzn_ctx_num_layers(fp);
    bzn_layer_info li;
    bzn_ctx_layer(fp, L - 1, &li); /* the main logits' shape */
    sens_job j = {fp, inputs, n_frames, (size_t)3 * o.height * o.width, 0, (size_t)o.height * o.width, NULL, NULL, NULL};
    const float *x;
    int C, H, W;
    size_t keep_len = 1;
    int nconv = 0;
    for (int i = 0; i < L; i++) {
        bzn_ctx_layer(fp, i, &li);
        if (is_conv(&li)) nconv++, keep_len += strlen(li.name) + 1;
    }
    char *keep = malloc(keep_len);
    report->layers = calloc((size_t)nconv + 1, sizeof *report->layers);
    j.ref_cls = malloc((size_t)n_frames * j.px);
    j.cls = malloc(j.px);
    bzn_status s = keep && report->layers && j.ref_cls && j.cls ? BZN_OK : bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    /* FP32's logits and class maps on every frame */
    for (int f = 0; s == BZN_OK && f < n_frames; f++) {
        s = bzn_run_tensor(fp, inputs + f * j.in_n, err);
        if (s == BZN_OK) s = bzn_logits(fp, BZN_OUT_MAIN, &x, &C, &H, &W, err);
        if (s == BZN_OK && !j.ref) {
            j.out_n = (size_t)C * H * W;
            if (!(j.ref = malloc((size_t)n_frames * j.out_n * sizeof *j.ref))) s = bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
        }
        if (s == BZN_OK) {
            memcpy(j.ref + f * j.out_n, x, j.out_n * sizeof *x);
            s = bzn_class_map(fp, j.ref_cls + f * j.px, o.width, o.height, err);
        }
    }
    /* everything in INT8 first (and the scales checked against the network), then each
       convolution alone */
    if (s == BZN_OK) s = measure(&j, &o, NULL, 1, scales, &report->all, err);
    for (int target = 0; s == BZN_OK && target < L; target++) {
        bzn_ctx_layer(fp, target, &li);
        if (!is_conv(&li)) continue;
        keep[0] = 0;
        for (int i = 0; i < L; i++) {
            bzn_layer_info lj;
            bzn_ctx_layer(fp, i, &lj);
            if (i == target || !is_conv(&lj)) continue;
            strcat(keep, keep[0] ? "," : "");
            strcat(keep, lj.name);
        }
        bzn_sensitivity *r = &report->layers[report->n_layers];
        r->name = li.name;
        s = measure(&j, &o, keep, 0, NULL, r, err);
        if (s == BZN_OK) report->n_layers++;
        if (s == BZN_OK && progress) progress(user, report->n_layers, nconv, li.name);
    }
    if (s == BZN_OK) qsort(report->layers, (size_t)report->n_layers, sizeof *report->layers, most_sensitive_first);
    free(keep);
    free(j.ref);
    free(j.ref_cls);
    free(j.cls);
    if (s != BZN_OK) bzn_sensitivity_report_free(report);
    return s;
}

void bzn_sensitivity_report_free(bzn_sensitivity_report *r) {
    if (!r) return;
    free(r->layers);
    memset(r, 0, sizeof *r);
}
