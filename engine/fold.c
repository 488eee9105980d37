/*
 * fold.c - a model's convolutions from its weight file: each convolution node of the graph
 * (layers/conv.c: its module path, shape and BatchNorm) is checked against the file's
 * tensors, once, when the model is loaded (its BatchNorm folded into a scale
 * and a bias per channel); a context's graph is then bound to those convolutions by module
 * path, and the weights are folded where a backend needs them in float.
 *
 * PyTorch runs conv -> BN -> ReLU as three passes; inference can do one. BatchNorm in
 * inference form is an affine map per output channel,
 *     bn(y) = (y - mean) / sqrt(var + eps) * gamma + beta  =  s * y + (beta - s * mean),
 * with s = gamma / sqrt(var + eps), so it folds into the convolution: W' = s * W and a bias
 * b' = beta - s * mean.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "f16.h"
#include "model.h"

#define BN_EPS 1e-5f

typedef struct {
    bzn_model *m;
    int create;        /* folding (model loading), else only looking up */
    bzn_status status; /* the first error */
    bzn_error *err;
} folder;

#define fold_fail(b, ...) bzn_fail_first(&(b)->status, (b)->err, __VA_ARGS__)

/* Find a tensor, check its shape, mark it used. */
static const bzn_wf_tensor *get_tensor(folder *b, const char *name, int ndim, const int *shape) {
    const bzn_wfile *wf = &b->m->wf;
    const bzn_wf_tensor *t = bzn_wfile_find(wf, name);
    if (!t) {
        fold_fail(b, BZN_ERR_FORMAT, "weight file lacks tensor '%s'", name);
        return NULL;
    }
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == (uint32_t)shape[i];
    if (!ok) {
        char want[64] = "", got[64] = "";
        for (int i = 0; i < ndim; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", i ? "x" : "", shape[i]);
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%u", i ? "x" : "", t->shape[i]);
        fold_fail(b, BZN_ERR_FORMAT, "tensor '%s' has shape [%s], the architecture needs [%s]", name, got,
                         want);
        return NULL;
    }
    if (t->dtype == BZN_DT_I8 && (ndim != 4 || t->scale_index == BZN_WF_NO_SCALE)) {
        fold_fail(b, BZN_ERR_FORMAT, "tensor '%s' is int8 but not a convolution weight with scales", name);
        return NULL;
    }
    b->m->used[t - wf->tensors] = 1;
    return t;
}

static float tensor_at(const bzn_wf_tensor *t, size_t i) {
    if (t->dtype == BZN_DT_I8) return (float)((const int8_t *)t->data)[i];
    if (t->dtype == BZN_DT_F16) {
        uint16_t h;
        memcpy(&h, (const uint8_t *)t->data + 2 * i, 2);
        return bzn_f16_to_f32(h);
    }
    float f;
    memcpy(&f, (const uint8_t *)t->data + 4 * i, 4);
    return f;
}

/* A float weight with BatchNorm folded in: W'[o][i] = s[o] * W[o][i]. The loader checks every
 * one is finite, and bzn_conv_fold_floats makes them, by this one expression. */
static float folded_at(const bzn_wf_tensor *w, float s, size_t i) { return s * tensor_at(w, i); }

/* Fold one convolution (and its BN) from the weight file into model->convs.
 * A file written by `blazeneo quantize` is already folded: `<name>.conv.bias` holds the
 * folded bias (no BatchNorm tensors), and `<name>.conv.weight` may be int8 with per-output-
 * channel scales (then there are no float weights: cw->src is -1). */
static const bzn_conv_weights *fold(folder *b, const char *name, int cin, int cout, int k,
                                    const char *bn_key) {
    char key[160];
    snprintf(key, sizeof key, "%s.conv.weight", name);
    const bzn_wf_tensor *w = get_tensor(b, key, 4, (int[]){cout, cin, k, k});
    const bzn_wf_tensor *wscale = NULL, *folded_bias = NULL;
    const bzn_wf_tensor *bn[4] = {NULL, NULL, NULL, NULL};
    static const char *bn_names[4] = {"weight", "bias", "running_mean", "running_var"};
    snprintf(key, sizeof key, "%s.conv.bias", name);
    if (bzn_wfile_find(&b->m->wf, key)) {
        folded_bias = get_tensor(b, key, 1, (int[]){cout});
    } else if (bn_key) {
        for (int i = 0; i < 4; i++) {
            snprintf(key, sizeof key, "%s.%s.%s", name, bn_key, bn_names[i]);
            bn[i] = get_tensor(b, key, 1, (int[]){cout});
        }
    }
    if (b->status == BZN_OK && w->dtype == BZN_DT_I8) {
        if (bn_key && !folded_bias) { /* int8 weights are quantized after folding: BN must be gone */
            fold_fail(b, BZN_ERR_FORMAT, "'%s.conv.weight' is int8 but its BatchNorm is not folded (no '%s.conv.bias')",
                             name, name);
            return NULL;
        }
        const int8_t *q = (const int8_t *)w->data;
        for (uint64_t i = 0; i < w->nbytes; i++)
            if (q[i] == -128) { /* symmetric quantization never produces it; the kernels assume so */
                fold_fail(b, BZN_ERR_FORMAT, "'%s.conv.weight' holds -128: int8 weights must be in -127..127", name);
                return NULL;
            }
        wscale = &b->m->wf.tensors[w->scale_index];
        if (wscale->dtype != BZN_DT_F32 || wscale->ndim != 1 || wscale->shape[0] != (uint32_t)cout) {
            fold_fail(b, BZN_ERR_FORMAT, "'%s.conv.weight': its scales '%s' are not %d f32 values", name,
                             wscale->name, cout);
            return NULL;
        }
        b->m->used[w->scale_index] = 1;
    }
    if (b->status != BZN_OK) return NULL;

    bzn_model *m = b->m;
    if (m->n_convs == m->cap_convs) {
        int cap = m->cap_convs ? 2 * m->cap_convs : 256;
        bzn_conv_weights *nc = realloc(m->convs, (size_t)cap * sizeof *nc);
        if (!nc) {
            fold_fail(b, BZN_ERR_NOMEM, "out of memory folding '%s'", name);
            return NULL;
        }
        m->convs = nc;
        m->cap_convs = cap;
    }
    bzn_conv_weights *cw = &m->convs[m->n_convs];
    memset(cw, 0, sizeof *cw);
    snprintf(cw->name, sizeof cw->name, "%s", name);
    cw->cin = cin;
    cw->cout = cout;
    cw->k = k;
    const size_t per_out = (size_t)cin * k * k;
    const int has_bias = bn_key || folded_bias;
    /* the weights stay in the file: int8 ones are used where they lie (a context that runs
       such a convolution in FP32 dequantizes its own), float ones are folded where a backend
       runs them in float (bzn_conv_fold_floats); here they are only checked */
    cw->src = wscale ? -1 : (int)(w - b->m->wf.tensors);
    cw->scale = wscale ? NULL : malloc((size_t)cout * sizeof *cw->scale);
    cw->bias = has_bias ? malloc((size_t)cout * sizeof *cw->bias) : NULL;
    if ((!wscale && !cw->scale) || (has_bias && !cw->bias)) {
        free(cw->scale);
        free(cw->bias);
        fold_fail(b, BZN_ERR_NOMEM, "out of memory folding '%s'", name);
        return NULL;
    }
    if (wscale) {
        cw->qweight = (const int8_t *)w->data;
        cw->wscale = (const float *)wscale->data;
    }
    for (int o = 0; o < cout; o++) {
        float s = wscale ? tensor_at(wscale, o) : 1.0f;
        if (folded_bias) {
            cw->bias[o] = tensor_at(folded_bias, o);
        } else if (bn_key) {
            const float gamma = tensor_at(bn[0], o), beta = tensor_at(bn[1], o);
            const float mean = tensor_at(bn[2], o), var = tensor_at(bn[3], o);
            if (!(var >= 0) || !isfinite(var) || !isfinite(gamma) || !isfinite(beta) || !isfinite(mean)) {
                free(cw->scale);
                free(cw->bias);
                fold_fail(b, BZN_ERR_FORMAT, "'%s.%s': non-finite or negative statistics at channel %d",
                                 name, bn_key, o);
                return NULL;
            }
            s = gamma / sqrtf(var + BN_EPS);
            cw->bias[o] = beta - s * mean;
        }
        /* (an int8 weight is at most 127 times its scale: that must be finite too) */
        if (!isfinite(s) || (wscale && !isfinite(127.0f * s)) || (cw->bias && !isfinite(cw->bias[o]))) {
            free(cw->scale);
            free(cw->bias);
            fold_fail(b, BZN_ERR_FORMAT, "'%s': non-finite scale or bias at channel %d", name, o);
            return NULL;
        }
        for (size_t i = 0; !wscale && i < per_out; i++) {
            const float v = folded_at(w, s, o * per_out + i);
            if (!isfinite(v)) {
                free(cw->scale);
                free(cw->bias);
                fold_fail(b, BZN_ERR_FORMAT, "'%s.conv.weight': non-finite weight in output channel %d", name, o);
                return NULL;
            }
        }
        if (!wscale) cw->scale[o] = s;
    }
    cw->params = (int64_t)cout * (int64_t)per_out + (bn_key ? 2 * cout : 0);
    m->n_convs++;
    return cw;
}

/* The folded weights of a convolution: folded now while loading, looked up afterwards (a
 * module used twice, with the same shape, is folded once). */
static const bzn_conv_weights *conv_weights(folder *b, const char *name, int cin, int cout, int k,
                                            const char *bn_key) {
    for (int i = 0; i < b->m->n_convs; i++) {
        const bzn_conv_weights *cw = &b->m->convs[i];
        if (strcmp(cw->name, name) == 0) {
            if (cw->cin != cin || cw->cout != cout || cw->k != k) {
                fold_fail(b, BZN_ERR_ARG, "'%s' is used with a different shape", name);
                return NULL;
            }
            return cw;
        }
    }
    if (!b->create) {
        fold_fail(b, BZN_ERR_ARG, "'%s' was not loaded with the model", name);
        return NULL;
    }
    return fold(b, name, cin, cout, k, bn_key);
}

static bzn_status walk(folder *b, bzn_graph *g) {
    for (int i = 0; b->status == BZN_OK && i < g->n_nodes; i++) {
        bzn_node *n = &g->nodes[i];
        if (n->kind == BZN_NODE_CONV) n->conv = conv_weights(b, n->name, n->in.c, n->out.c, n->k, n->bn_key);
    }
    return b->status;
}

bzn_status bzn_model_fold(bzn_model *m, bzn_graph *g, bzn_error *err) {
    folder b = {m, 1, BZN_OK, err};
    return walk(&b, g);
}

bzn_status bzn_model_bind(const bzn_model *m, bzn_graph *g, bzn_error *err) {
    folder b = {(bzn_model *)m, 0, BZN_OK, err}; /* only looks up */
    return walk(&b, g);
}

void bzn_conv_fold_floats(const bzn_model *m, const bzn_conv_weights *cw, float *dst) {
    const bzn_wf_tensor *w = &m->wf.tensors[cw->src];
    const size_t per = (size_t)cw->cin * cw->k * cw->k;
    for (int o = 0; o < cw->cout; o++)
        for (size_t i = 0; i < per; i++) dst[o * per + i] = folded_at(w, cw->scale[o], o * per + i);
    /* the file's pages were read for this copy: they need not stay resident */
    bzn_wfile_release_range(&m->wf, w->data, (size_t)w->nbytes);
}
