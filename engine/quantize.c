/*
 * quantize.c - writing INT8 weight files (see bzn_quantize_model in blazeneo.h).
 *
 * What TensorRT does to a convolution, done once and stored: fold BatchNorm into it, then
 * quantize each output channel's weights symmetrically (scale = max|w| / 127). The file keeps
 * the model's configuration and PyTorch names, so everything else (tracing, evaluation) works
 * unchanged; the activation scales from calibration travel with it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "int8plan.h"
#include "model.h"
#include "weightcache.h"

bzn_status bzn_quantize_model(const bzn_model *m, const bzn_tensor_scale *scales, int n_scales, const char *keep_fp32,
                              const char *out_path, bzn_error *err) {
    if (!m || !out_path || (!scales && n_scales)) return bzn_fail(err, BZN_ERR_ARG, "invalid arguments");
    if (m->int8_file) return bzn_fail(err, BZN_ERR_ARG, "this model is already quantized");
    /* an INT8 context checks the scales (every tensor it needs, nothing unknown) and keep_fp32 */
    bzn_ctx_options o = bzn_ctx_default_options(m);
    o.backend = "ref"; /* no packing needed */
    o.run_aux = 0; /* the main path must be covered; the auxiliary head's scales are optional */
    o.precision = BZN_PRECISION_INT8;
    o.scales = scales;
    o.n_scales = n_scales;
    o.keep_fp32 = keep_fp32;
    bzn_ctx *check;
    bzn_status s = bzn_ctx_create(m, &o, &check, err);
    if (s != BZN_OK) return s;
    bzn_ctx_free(check);
    /* the int8 weights are those that context made, kept by the model for its backend */
    bzn_backend *ref;
    s = bzn_backend_create("ref", NULL, &ref, err);
    if (s != BZN_OK) return s;

    /* per conv: weight (+ weight_scale) (+ bias); then one act_scale per tensor */
    const int cap = 3 * m->n_convs + n_scales;
    bzn_wf_input *t = calloc((size_t)cap, sizeof *t);
    char (*names)[BZN_WF_NAME_BYTES] = calloc((size_t)cap, sizeof *names);
    int n = 0;
    if (!t || !names) s = bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    for (int i = 0; s == BZN_OK && i < m->n_convs; i++) {
        const bzn_conv_weights *cw = &m->convs[i];
        const int keep = bzn_name_in_list(keep_fp32, cw->name);
        if (snprintf(names[n], BZN_WF_NAME_BYTES, "%s.conv.weight", cw->name) >= (int)BZN_WF_NAME_BYTES) {
            s = bzn_fail(err, BZN_ERR_UNSUPPORTED, "name too long: %s", cw->name);
            break;
        }
        /* the weights in the form written: folded floats (kept), or int8 and their scales */
        bzn_conv_form f;
        if ((s = bzn_weights_get(m, ref, cw, keep ? BZN_PRECISION_FP32 : BZN_PRECISION_INT8, NULL, &f, err)) != BZN_OK)
            break;
        t[n] = (bzn_wf_input){names[n], BZN_DT_F32, 4, {(uint32_t)cw->cout, (uint32_t)cw->cin, (uint32_t)cw->k, (uint32_t)cw->k},
                              f.weight, BZN_WF_NO_SCALE};
        if (!keep) {
            const float *ws = f.wscale;
            t[n].dtype = BZN_DT_I8;
            t[n].data = f.qweight;
            t[n].scale_index = (uint32_t)(n + 1);
            n++;
            if (snprintf(names[n], BZN_WF_NAME_BYTES, "%s.conv.weight_scale", cw->name) >= (int)BZN_WF_NAME_BYTES) {
                s = bzn_fail(err, BZN_ERR_UNSUPPORTED, "name too long: %s", cw->name);
                break;
            }
            t[n] = (bzn_wf_input){names[n], BZN_DT_F32, 1, {(uint32_t)cw->cout, 0, 0, 0}, ws, BZN_WF_NO_SCALE};
        }
        n++;
        if (cw->bias) {
            if (snprintf(names[n], BZN_WF_NAME_BYTES, "%s.conv.bias", cw->name) >= (int)BZN_WF_NAME_BYTES) {
                s = bzn_fail(err, BZN_ERR_UNSUPPORTED, "name too long: %s", cw->name);
                break;
            }
            t[n] = (bzn_wf_input){names[n], BZN_DT_F32, 1, {(uint32_t)cw->cout, 0, 0, 0}, cw->bias, BZN_WF_NO_SCALE};
            n++;
        }
    }
    for (int i = 0; s == BZN_OK && i < n_scales; i++) {
        if (snprintf(names[n], BZN_WF_NAME_BYTES, "%s.act_scale", scales[i].name) >= (int)BZN_WF_NAME_BYTES) {
            s = bzn_fail(err, BZN_ERR_UNSUPPORTED, "tensor name too long: %s", scales[i].name);
            break;
        }
        t[n] = (bzn_wf_input){names[n], BZN_DT_F32, 1, {1, 0, 0, 0}, &scales[i].scale, BZN_WF_NO_SCALE};
        n++;
    }
    /* it must load back before it replaces anything */
    if (s == BZN_OK) s = bzn_model_write_checked(out_path, &m->wf.config, t, n, NULL, err);
    ref->destroy(ref);
    free(names);
    free(t);
    return s;
}
