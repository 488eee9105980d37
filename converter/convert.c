/*
 * convert.c - PyTorch checkpoint -> BlazeNeo weight file.
 *
 * 1. read the checkpoint (ckpt.c: zip + pickle, no Python);
 * 2. drop what inference never uses: the HarDNet ImageNet classifier (encoder.base.16.*)
 *    and BatchNorm's num_batches_tracked counters;
 * 3. recognise the variant from the keys and shapes (which aggregation blocks exist and
 *    how wide block_33 is; auxiliary branch present; head classes);
 * 4. write the weight file next to the destination, load it as a model (which checks every
 *    tensor against the architecture), and only then move it into place.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blazeneo.h"
#include "ckpt.h"
#include "error.h"
#include "f16.h"
#include "model.h"
#include "wfile.h"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int dropped(const char *name) {
    return strncmp(name, "encoder.base.16.", 16) == 0 || ends_with(name, "num_batches_tracked");
}

static bzn_status detect(const bzn_ckpt *ck, bzn_wf_config *cfg, bzn_error *err) {
    static const char *required[] = {
        "encoder.base.0.conv.weight", "encoder.base.15.conv.weight", "rfb3.conv_cat.conv.weight",
        "rfb4.conv_cat.conv.weight",  "rfb5.conv_cat.conv.weight",   "agg2.block_22.0.conv.weight",
        "agg2.block_33.0.conv.weight", "head_2.head.conv.weight"};
    char missing[400] = "";
    int n_missing = 0;
    for (size_t i = 0; i < sizeof required / sizeof *required; i++)
        if (!bzn_ckpt_find(ck, required[i])) {
            size_t used = strlen(missing);
            snprintf(missing + used, sizeof missing - used, "%s%s", n_missing++ ? ", " : "", required[i]);
        }
    if (n_missing) {
        const char *example = ck->count ? ck->tensors[0].name : "(no tensors at all)";
        return bzn_fail(err, BZN_ERR_UNSUPPORTED,
                        "not a BlazeNeo checkpoint: missing %s (its first key is '%s')", missing, example);
    }
    const bzn_ck_tensor *b33 = bzn_ckpt_find(ck, "agg2.block_33.0.conv.weight");
    const bzn_ck_tensor *head = bzn_ckpt_find(ck, "head_2.head.conv.weight");
    if (b33->ndim != 4 || head->ndim != 4)
        return bzn_fail(err, BZN_ERR_FORMAT, "convolution weights must be 4-D");
    if (bzn_ckpt_find(ck, "agg2.block_32.0.conv.weight"))
        cfg->aggregation = BZN_AGG_DHA;
    else if (bzn_ckpt_find(ck, "agg2.block_23.0.conv.weight"))
        cfg->aggregation = b33->shape[1] == 96 ? BZN_AGG_DIA : BZN_AGG_IDA;
    else
        cfg->aggregation = BZN_AGG_LSC;
    cfg->has_aux = bzn_ckpt_find(ck, "head_1.head.conv.weight") != NULL;
    cfg->num_classes = (int)head->shape[0];
    if (cfg->num_classes != 2 && cfg->num_classes != 3)
        return bzn_fail(err, BZN_ERR_UNSUPPORTED, "head_2 has %d classes; BlazeNeo heads have 2 or 3",
                        cfg->num_classes);
    return BZN_OK;
}

static float ck_float(const bzn_ck_tensor *t, size_t i) {
    const uint8_t *p = (const uint8_t *)t->data;
    switch (t->dtype) {
    case BZN_CK_F32: { float f; memcpy(&f, p + 4 * i, 4); return f; }
    case BZN_CK_F64: { double d; memcpy(&d, p + 8 * i, 8); return (float)d; }
    case BZN_CK_F16: { uint16_t h; memcpy(&h, p + 2 * i, 2); return bzn_f16_to_f32(h); }
    case BZN_CK_BF16: {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    default: return 0.0f;
    }
}

static int is_float(bzn_ck_dtype t) {
    return t == BZN_CK_F32 || t == BZN_CK_F64 || t == BZN_CK_F16 || t == BZN_CK_BF16;
}

bzn_status bzn_convert_checkpoint(const char *in_path, const char *out_path, const bzn_convert_options *opt,
                                  bzn_convert_report *report, bzn_error *err) {
    bzn_convert_options o = {0};
    if (opt) o = *opt;
    bzn_convert_report rep;
    memset(&rep, 0, sizeof rep);
    if (!in_path || !out_path) return bzn_fail(err, BZN_ERR_ARG, "missing input or output path");
    if (o.default_height == 0) o.default_height = 352;
    if (o.default_width == 0) o.default_width = 352;
    if (o.default_height % 32 || o.default_width % 32 || o.default_height < 32 || o.default_width < 32)
        return bzn_fail(err, BZN_ERR_UNSUPPORTED, "default size %dx%d is not a multiple of 32", o.default_width,
                        o.default_height);

    bzn_ckpt ck;
    bzn_status s = bzn_ckpt_read_file(in_path, &ck, err);
    if (s != BZN_OK) return s;

    bzn_wf_config cfg = {.default_height = o.default_height,
                         .default_width = o.default_width,
                         .mean = {0.485f, 0.456f, 0.406f},
                         .std = {0.229f, 0.224f, 0.225f}};
    s = detect(&ck, &cfg, err);
    bzn_wf_input *in = calloc((size_t)ck.count + 1, sizeof *in);
    void **bufs = calloc((size_t)ck.count + 1, sizeof *bufs);
    int n = 0;
    if (s == BZN_OK && (!in || !bufs)) s = bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    for (int i = 0; s == BZN_OK && i < ck.count; i++) {
        const bzn_ck_tensor *t = &ck.tensors[i];
        if (dropped(t->name)) {
            rep.tensors_dropped++;
            continue;
        }
        if (!is_float(t->dtype)) {
            s = bzn_fail(err, BZN_ERR_UNSUPPORTED, "tensor '%s' has type %s; BlazeNeo weights are floating point",
                         t->name, bzn_ck_dtype_name(t->dtype));
            break;
        }
        if (t->ndim > 4 || strlen(t->name) >= BZN_WF_NAME_BYTES) {
            s = bzn_fail(err, BZN_ERR_UNSUPPORTED, "tensor '%s': rank %d or name length not supported", t->name,
                         t->ndim);
            break;
        }
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= (size_t)t->shape[d];
        bzn_wf_input *w = &in[n];
        w->name = t->name;
        w->ndim = t->ndim;
        w->scale_index = BZN_WF_NO_SCALE;
        for (int d = 0; d < t->ndim; d++) w->shape[d] = (uint32_t)t->shape[d];
        /* convolution weights may go to f16; BatchNorm statistics stay f32 (running_var
           reaches ~2.4e5 in the shipped model, beyond f16's 65504) */
        int to_f16 = o.f16 && ends_with(t->name, ".conv.weight");
        w->dtype = to_f16 ? BZN_DT_F16 : BZN_DT_F32;
        bufs[n] = malloc(numel * (to_f16 ? 2 : 4) + 1);
        if (!bufs[n]) {
            s = bzn_fail(err, BZN_ERR_NOMEM, "out of memory converting '%s'", t->name);
            break;
        }
        for (size_t k = 0; k < numel; k++) {
            float f = ck_float(t, k);
            if (to_f16) {
                uint16_t h = bzn_f32_to_f16(f);
                ((uint16_t *)bufs[n])[k] = h;
                double e = fabs((double)f - (double)bzn_f16_to_f32(h));
                if (e > rep.max_f16_error || (isnan(e) && !isnan(rep.max_f16_error))) {
                    rep.max_f16_error = e;
                    snprintf(rep.max_f16_error_tensor, sizeof rep.max_f16_error_tensor, "%s", t->name);
                }
            } else {
                ((float *)bufs[n])[k] = f;
            }
        }
        w->data = bufs[n];
        n++;
    }
    /* validated by loading before it replaces anything */
    if (s == BZN_OK) s = bzn_model_write_checked(out_path, &cfg, in, n, &rep.file_bytes, err);
    if (s == BZN_OK) {
        rep.aggregation = cfg.aggregation;
        rep.has_aux = cfg.has_aux;
        rep.num_classes = cfg.num_classes;
        rep.tensors_written = n;
        if (report) *report = rep;
    }
    for (int i = 0; i < n + 1 && bufs; i++) free(bufs[i]);
    free(bufs);
    free(in);
    bzn_ckpt_free(&ck);
    return s;
}
