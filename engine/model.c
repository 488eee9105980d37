/*
 * model.c - opening a model: validate the weight file, then build the network once to
 * check every tensor against the architecture and fold BatchNorm into the convolutions
 * (fold.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"
#include "network.h"
#include "weightcache.h"

const char *bzn_aggregation_name(bzn_aggregation a) {
    static const char *names[] = {"LSC", "IDA", "DIA", "DHA"};
    return (unsigned)a < 4 ? names[a] : "?";
}

/* INT8 weight files carry one `<tensor>.act_scale` (f32, one value) per activation tensor. */
static bzn_status load_act_scales(bzn_model *m, bzn_error *err) {
    static const char suffix[] = ".act_scale";
    const size_t sl = sizeof suffix - 1;
    for (int pass = 0; pass < 2; pass++) {
        int n = 0;
        for (int i = 0; i < m->wf.count; i++) {
            const bzn_wf_tensor *t = &m->wf.tensors[i];
            size_t len = strlen(t->name);
            if (len <= sl || strcmp(t->name + len - sl, suffix)) continue;
            if (pass == 1) {
                float v;
                if (t->dtype != BZN_DT_F32 || t->ndim != 1 || t->shape[0] != 1)
                    return bzn_fail(err, BZN_ERR_FORMAT, "tensor '%s' must hold one f32 value", t->name);
                memcpy(&v, t->data, 4);
                if (!(v >= 0) || !isfinite(v))
                    return bzn_fail(err, BZN_ERR_FORMAT, "tensor '%s': invalid activation scale %g", t->name, v);
                char *name = malloc(len - sl + 1);
                if (!name) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
                memcpy(name, t->name, len - sl);
                name[len - sl] = 0;
                m->act_scales[n].name = name;
                m->act_scales[n].scale = v;
                m->n_act_scales = n + 1;
                m->used[i] = 1;
            }
            n++;
        }
        if (pass == 0 && n) {
            m->act_scales = calloc((size_t)n, sizeof *m->act_scales);
            if (!m->act_scales) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
        }
    }
    return BZN_OK;
}

static bzn_status finish_open(bzn_model *m, bzn_error *err) {
    m->used = calloc((size_t)m->wf.count, 1);
    if (!m->used) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    bzn_graph g;
    const bzn_wf_config *c = &m->wf.config;
    /* the whole network (the auxiliary branch too): every convolution folded from the file */
    bzn_status s = bzn_network_build(c, c->default_height, c->default_width, 1, &g, err);
    if (s == BZN_OK) s = bzn_model_fold(m, &g, err);
    bzn_graph_free(&g);
    if (s != BZN_OK) return s;
    s = load_act_scales(m, err);
    if (s != BZN_OK) return s;
    for (int i = 0; i < m->wf.count; i++)
        if (!m->used[i])
            return bzn_fail(err, BZN_ERR_FORMAT, "tensor '%s' is not part of a BlazeNeo %s%s network",
                            m->wf.tensors[i].name, bzn_aggregation_name(c->aggregation),
                            c->has_aux ? " with auxiliary branch" : "");
    for (int i = 0; i < m->n_convs; i++) {
        const char *n = m->convs[i].name;
        if (m->convs[i].qweight) m->int8_file = 1;
        int aux = strncmp(n, "agg1.", 5) == 0 || strncmp(n, "head_1.", 7) == 0;
        m->params_total += m->convs[i].params;
        if (!aux) m->params_main += m->convs[i].params;
    }
    /* every tensor is checked and folded: the mapped file's pages need not stay resident
       (an INT8 file's weights, read from the mapping, come back in as they are used) */
    bzn_wfile_release_pages(&m->wf);
    return BZN_OK;
}

static bzn_model *new_model(void) {
    bzn_model *m = calloc(1, sizeof *m);
    if (m && pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    return m;
}

static bzn_status open_common(bzn_model *m, bzn_status s, bzn_model **out, bzn_error *err) {
    if (s == BZN_OK) s = finish_open(m, err);
    if (s != BZN_OK) {
        bzn_model_free(m);
        return s;
    }
    *out = m;
    return BZN_OK;
}

bzn_status bzn_model_open(const char *path, bzn_model **out, bzn_error *err) {
    if (!out) return bzn_fail(err, BZN_ERR_ARG, "NULL output pointer");
    *out = NULL;
    bzn_model *m = new_model();
    if (!m) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    return open_common(m, bzn_wfile_open(path, &m->wf, err), out, err);
}

bzn_status bzn_model_open_memory(const void *data, size_t size, bzn_model **out, bzn_error *err) {
    if (!out) return bzn_fail(err, BZN_ERR_ARG, "NULL output pointer");
    *out = NULL;
    bzn_model *m = new_model();
    if (!m) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    return open_common(m, bzn_wfile_open_memory(data, size, &m->wf, err), out, err);
}

bzn_status bzn_model_write_checked(const char *path, const bzn_wf_config *cfg, const bzn_wf_input *t, int count,
                                   uint64_t *bytes, bzn_error *err) {
    /* made in memory and opened as a model (every check, the architecture included) before
     * anything is written to `path` */
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (!mem) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    bzn_status s = bzn_wfile_write_stream(mem, cfg, t, count, err);
    if (fclose(mem) != 0 && s == BZN_OK) s = BZN_ERR_IO;
    if (s == BZN_ERR_IO) s = bzn_fail(err, BZN_ERR_NOMEM, "out of memory building '%s'", path);
    if (s == BZN_OK) {
        bzn_model *m = NULL;
        s = bzn_model_open_memory(buf, len, &m, err);
        bzn_model_free(m);
    }
    bzn_writer *out = NULL;
    if (s == BZN_OK) s = bzn_writer_open(path, &out, err);
    if (s == BZN_OK) {
        fwrite(buf, 1, len, bzn_writer_stream(out)); /* a short write is reported by close */
        s = bzn_writer_close(out, 0, err);
    }
    if (s == BZN_OK && bytes) *bytes = len;
    free(buf);
    return s;
}

void bzn_model_free(bzn_model *m) {
    if (!m) return;
    bzn_weights_free_all(m);
    pthread_mutex_destroy(&m->lock);
    for (int i = 0; i < m->n_convs; i++) {
        free(m->convs[i].scale);
        free(m->convs[i].bias);
    }
    free(m->convs);
    free(m->used);
    for (int i = 0; i < m->n_act_scales; i++) free((char *)m->act_scales[i].name);
    free(m->act_scales);
    bzn_wfile_close(&m->wf);
    free(m);
}

bzn_precision bzn_model_file_precision(const bzn_model *m) {
    return m && m->int8_file && m->n_act_scales > 0 ? BZN_PRECISION_INT8 : BZN_PRECISION_FP32;
}

void bzn_model_get_info(const bzn_model *m, bzn_model_info *info) {
    memset(info, 0, sizeof *info);
    const bzn_wf_config *c = &m->wf.config;
    info->aggregation = c->aggregation;
    info->has_aux = c->has_aux;
    info->num_classes = c->num_classes;
    info->default_height = c->default_height;
    info->default_width = c->default_width;
    memcpy(info->mean, c->mean, sizeof info->mean);
    memcpy(info->std, c->std, sizeof info->std);
    const bzn_wf_tensor *w = bzn_wfile_find(&m->wf, "encoder.base.0.conv.weight");
    info->weight_dtype = w ? (int)w->dtype : 0;
    info->num_convs = m->n_convs;
    for (int i = 0; i < m->n_convs; i++) info->num_int8_convs += m->convs[i].qweight != NULL;
    info->num_act_scales = m->n_act_scales;
    info->precision = bzn_model_file_precision(m);
    info->params_main = m->params_main;
    info->params_total = m->params_total;
    info->num_tensors = m->wf.count;
    info->file_bytes = m->wf.size;
    for (int i = 0; i < m->n_convs; i++) {
        const bzn_conv_weights *cw = &m->convs[i];
        info->weight_bytes += ((cw->scale ? (uint64_t)cw->cout : 0) + (cw->bias ? cw->cout : 0)) * sizeof(float);
    }
}

int bzn_model_num_weights(const bzn_model *m) { return m->wf.count; }

bzn_status bzn_model_weight(const bzn_model *m, int i, bzn_weight_info *out) {
    if (i < 0 || i >= m->wf.count) return BZN_ERR_ARG;
    const bzn_wf_tensor *t = &m->wf.tensors[i];
    memset(out, 0, sizeof *out);
    out->name = t->name;
    out->dtype = (int)t->dtype;
    out->ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) out->shape[d] = t->shape[d];
    out->offset = t->offset;
    out->nbytes = t->nbytes;
    return BZN_OK;
}
