/* weightcache.c - see weightcache.h. */
#include "weightcache.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

typedef struct {
    int8_t *qweight; /* quantized here (NULL: the file's, or not made) */
    float *wscale;
    float *fweight; /* the floats: folded from the file, or dequantized, here (NULL: not made,
                       or freed where the backend's form replaces them) */
    int float_users; /* contexts handed `fweight`: while any is, it stays */
    void *prepared[4]; /* the backend's form, by bzn_precision: FP32, INT8, FP16, TF32 */
    int made[4];
} conv_forms;

struct bzn_weight_cache {
    char backend[32];
    int device, form;
    void (*release)(void *weights);
    conv_forms *convs; /* one per m->convs */
    struct bzn_weight_cache *next;
};

/* Per-output-channel symmetric int8 quantization of folded weights: scale = max|w| / 127. */
static void quantize_weights(const bzn_conv_weights *cw, const float *folded, int8_t *qweight, float *wscale) {
    const size_t per = (size_t)cw->cin * cw->k * cw->k;
    for (int o = 0; o < cw->cout; o++) {
        const float *w = folded + o * per;
        float amax = 0;
        for (size_t i = 0; i < per; i++) amax = fmaxf(amax, fabsf(w[i]));
        const float scale = amax > 0 ? amax / 127.0f : 1.0f;
        wscale[o] = scale;
        const float inv = 1.0f / scale;
        for (size_t i = 0; i < per; i++) qweight[o * per + i] = (int8_t)bzn_quantize(w[i], inv);
    }
}

static struct bzn_weight_cache *find_cache(bzn_model *m, const bzn_backend *b, bzn_error *err) {
    for (struct bzn_weight_cache *c = m->caches; c; c = c->next)
        if (!strcmp(c->backend, b->name) && c->device == b->device && c->form == b->weights_form) return c;
    struct bzn_weight_cache *c = calloc(1, sizeof *c);
    if (c) c->convs = calloc((size_t)m->n_convs, sizeof *c->convs);
    if (!c || !c->convs) {
        free(c);
        bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
        return NULL;
    }
    snprintf(c->backend, sizeof c->backend, "%s", b->name);
    c->device = b->device;
    c->form = b->weights_form;
    c->release = b->weights_release;
    c->next = m->caches;
    m->caches = c;
    return c;
}

/* The precision's weights of one convolution, made once: INT8 quantized from the folded
 * floats (a transient copy: an INT8 context never holds float weights) unless the file stores
 * int8; FP32 folded from the file, or dequantized (q * wscale) when the file stores int8. */
static bzn_status make_weights(bzn_model *m, const bzn_conv_weights *cw, conv_forms *f, int int8, bzn_error *err) {
    const size_t per = (size_t)cw->cin * cw->k * cw->k, n = (size_t)cw->cout * per;
    if (int8 && !cw->qweight) {
        float *folded = f->fweight ? f->fweight : malloc(n * sizeof *folded);
        f->qweight = malloc(n);
        f->wscale = malloc((size_t)cw->cout * sizeof *f->wscale);
        if (!folded || !f->qweight || !f->wscale) {
            if (folded != f->fweight) free(folded);
            return bzn_fail(err, BZN_ERR_NOMEM, "out of memory quantizing '%s'", cw->name);
        }
        if (folded != f->fweight) bzn_conv_fold_floats(m, cw, folded);
        quantize_weights(cw, folded, f->qweight, f->wscale);
        if (folded != f->fweight) free(folded);
        m->prepared_bytes += n + (size_t)cw->cout * sizeof *f->wscale;
    } else if (!int8 && !f->fweight) {
        if (!(f->fweight = malloc(n * sizeof *f->fweight)))
            return bzn_fail(err, BZN_ERR_NOMEM, "out of memory for the float weights of '%s'", cw->name);
        if (cw->qweight)
            for (int o = 0; o < cw->cout; o++)
                for (size_t j = 0; j < per; j++) f->fweight[o * per + j] = (float)cw->qweight[o * per + j] * cw->wscale[o];
        else
            bzn_conv_fold_floats(m, cw, f->fweight);
        m->prepared_bytes += n * sizeof *f->fweight;
    }
    return BZN_OK;
}

bzn_status bzn_weights_get(const bzn_model *cm, bzn_backend *b, const bzn_conv_weights *cw, bzn_precision p,
                           const bzn_conv_args *geom, bzn_conv_form *out, bzn_error *err) {
    bzn_model *m = (bzn_model *)cm; /* the forms are a cache: the model's weights never change */
    const int i = (int)(cw - m->convs);
    if (i < 0 || i >= m->n_convs) return bzn_fail(err, BZN_ERR_ARG, "'%s' is not a convolution of this model", cw->name);
    if ((unsigned)p > BZN_PRECISION_TF32) return bzn_fail(err, BZN_ERR_ARG, "unknown precision %d", (int)p);
    const int int8 = p == BZN_PRECISION_INT8;
    pthread_mutex_lock(&m->lock);
    bzn_status s = BZN_OK;
    struct bzn_weight_cache *c = find_cache(m, b, err);
    conv_forms *f = c ? &c->convs[i] : NULL;
    if (!c) s = BZN_ERR_NOMEM;
    if (s == BZN_OK && !f->made[p]) {
        s = make_weights(m, cw, f, int8, err);
        if (s == BZN_OK && b->weights_prepare) {
            bzn_conv_args a;
            memset(&a, 0, sizeof a);
            a.in_c = cw->cin;
            a.out_c = cw->cout;
            a.k = cw->k;
            a.bias = cw->bias;
            a.math = int8 ? BZN_PRECISION_FP32 : p;
            if (geom) {
                a.in_h = geom->in_h;
                a.in_w = geom->in_w;
                a.out_h = geom->out_h;
                a.out_w = geom->out_w;
                a.stride = geom->stride;
                a.pad = geom->pad;
                a.dilation = geom->dilation;
            }
            if (int8) {
                a.qweight = f->qweight ? f->qweight : cw->qweight;
                a.wscale = f->wscale ? f->wscale : cw->wscale;
            } else {
                a.weight = f->fweight;
            }
            size_t bytes = 0;
            s = b->weights_prepare(b, &a, &f->prepared[p], &bytes, err);
            m->prepared_bytes += bytes;
        }
        if (s == BZN_OK) f->made[p] = 1;
    }
    /* A float form: the floats stay only where a context reads them. Where the backend's own
     * form replaces them at this geometry (the CPU's Winograd transforms), the context gets
     * none, and they are freed unless a context already holds them; a later context that
     * reads them folds them again. */
    int floats = 0;
    if (s == BZN_OK && !int8) {
        floats = !geom || !b->conv_reads_floats;
        if (!floats) {
            bzn_conv_args g = *geom;
            g.weight = NULL;
            g.qweight = NULL;
            g.weights = f->prepared[p];
            floats = b->conv_reads_floats(b, &g);
        }
        if (floats && !f->fweight) s = make_weights(m, cw, f, 0, err);
        if (s == BZN_OK && floats) f->float_users++;
        if (!floats && f->fweight && !f->float_users) {
            free(f->fweight);
            f->fweight = NULL;
            m->prepared_bytes -= (size_t)cw->cout * cw->cin * cw->k * cw->k * sizeof(float);
        }
    }
    if (s == BZN_OK) {
        memset(out, 0, sizeof *out);
        if (int8) {
            out->qweight = f->qweight ? f->qweight : cw->qweight;
            out->wscale = f->wscale ? f->wscale : cw->wscale;
        } else {
            out->weight = floats ? f->fweight : NULL;
        }
        out->prepared = f->prepared[p];
    }
    pthread_mutex_unlock(&m->lock);
    return s;
}

void bzn_weights_free_all(bzn_model *m) {
    while (m->caches) {
        struct bzn_weight_cache *c = m->caches;
        m->caches = c->next;
        for (int i = 0; i < m->n_convs; i++) {
            conv_forms *f = &c->convs[i];
            free(f->qweight);
            free(f->wscale);
            free(f->fweight);
            for (int k = 0; k < 4; k++)
                if (f->prepared[k] && c->release) c->release(f->prepared[k]);
        }
        free(c->convs);
        free(c);
    }
    m->prepared_bytes = 0;
}

size_t bzn_model_prepared_bytes(const bzn_model *m) {
    if (!m) return 0;
    pthread_mutex_lock(&((bzn_model *)m)->lock);
    const size_t n = m->prepared_bytes;
    pthread_mutex_unlock(&((bzn_model *)m)->lock);
    return n;
}
