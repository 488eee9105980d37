/* int8plan.c - see int8plan.h. */
#include "int8plan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

int bzn_name_in_list(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, name, n)) return 1;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

static int find_scale(const bzn_tensor_scale *scales, int n_scales, const char *name, float *scale) {
    for (int i = 0; i < n_scales; i++)
        if (scales[i].name && !strcmp(scales[i].name, name)) {
            *scale = scales[i].scale;
            return 1;
        }
    return 0;
}

/* The scale of a convolution's input: the largest scale among the tensors its pieces come
 * from (the network input, or the layers that wrote those channels), so that one int8 scale
 * covers the whole concatenation. */
static bzn_status input_scale(const bzn_graph *g, const bzn_tensor_scale *scales, int n_scales, int node, float *out,
                              bzn_error *err) {
    const bzn_node *n = &g->nodes[node];
    float best = 0;
    for (int s = 0; s < n->in.n; s++) {
        const bzn_slice *sl = &n->in.seg[s];
        int found = 0;
        if (sl->buf == g->input_buf) {
            float v;
            if (!find_scale(scales, n_scales, "input", &v))
                return bzn_fail(err, BZN_ERR_ARG, "INT8: no activation scale for tensor 'input' (needed by '%s')", n->name);
            best = v > best ? v : best;
            continue;
        }
        for (int j = 0; j < node; j++) {
            const bzn_node *p = &g->nodes[j];
            if (p->kind == BZN_NODE_CONCAT || p->out.seg[0].buf != sl->buf) continue;
            const bzn_slice *o = &p->out.seg[0];
            if (o->c0 >= sl->c0 + sl->c || sl->c0 >= o->c0 + o->c) continue; /* other channels */
            float v;
            if (!find_scale(scales, n_scales, p->name, &v))
                return bzn_fail(err, BZN_ERR_ARG, "INT8: no activation scale for tensor '%s' (needed by '%s')", p->name,
                                n->name);
            best = v > best ? v : best;
            found = 1;
        }
        if (!found) return bzn_fail(err, BZN_ERR_ARG, "INT8: cannot tell which layer produces the input of '%s'", n->name);
    }
    if (!(best >= 0) || !isfinite(best))
        return bzn_fail(err, BZN_ERR_FORMAT, "INT8: invalid activation scale %g for the input of '%s'", best, n->name);
    /* scale 0: the tensor was exactly 0 in calibration; quantize it (almost) to 0 */
    *out = best > 0 ? best : 1e-30f;
    return BZN_OK;
}

bzn_status bzn_int8_plan(const bzn_model *m, const bzn_graph *g, const bzn_ctx_options *o, bzn_int8_node **out,
                         bzn_error *err) {
    *out = NULL;
    const bzn_tensor_scale *scales = o->scales;
    int n_scales = o->n_scales;
    if (!scales) { /* the scales stored in an INT8 weight file */
        scales = m->act_scales;
        n_scales = m->n_act_scales;
        if (!n_scales)
            return bzn_fail(err, BZN_ERR_ARG,
                            "INT8 needs activation scales: give a calibration cache or use a model written by "
                            "'blazeneo quantize'");
    }
    /* every name in keep_fp32 must be a convolution of this network */
    for (const char *p = o->keep_fp32; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int ok = len == 0;
        for (int i = 0; !ok && i < g->n_nodes; i++)
            ok = g->nodes[i].kind == BZN_NODE_CONV && strlen(g->nodes[i].name) == len && !strncmp(g->nodes[i].name, p, len);
        if (!ok) return bzn_fail(err, BZN_ERR_ARG, "keep_fp32: '%.*s' is not a convolution of this network", (int)len, p);
        p = e ? e + 1 : NULL;
    }
    bzn_int8_node *q = calloc((size_t)g->n_nodes, sizeof *q);
    if (!q) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < g->n_nodes; i++) {
        const bzn_node *n = &g->nodes[i];
        if (n->kind != BZN_NODE_CONV || bzn_name_in_list(o->keep_fp32, n->name)) continue;
        if (m->int8_file && !n->conv->qweight) continue; /* kept in FP32 when quantized */
        bzn_status s = input_scale(g, scales, n_scales, i, &q[i].in_scale, err);
        if (s != BZN_OK) {
            free(q);
            return s;
        }
        q[i].int8 = 1;
    }
    *out = q;
    return BZN_OK;
}

void bzn_int8_plan_handoffs(const bzn_graph *g, bzn_int8_node *q, size_t (*qin_bytes)(void *u, int consumer), void *u) {
    for (int i = 0; i < g->n_nodes; i++) {
        const bzn_node *p = &g->nodes[i];
        if (p->kind != BZN_NODE_CONV || !q[i].int8) continue;
        const int buf = p->out.seg[0].buf;
        const bzn_buffer *b = &g->bufs[buf];
        if (b->pinned || p->out.seg[0].c0 != 0 || p->out.c != b->c) continue;
        int readers = 0, consumer = -1;
        for (int j = 0; j < g->n_nodes; j++)
            for (int s = 0; s < g->nodes[j].in.n; s++)
                if (g->nodes[j].in.seg[s].buf == buf) {
                    readers++;
                    consumer = j;
                }
        if (readers != 1) continue;
        const bzn_node *n = &g->nodes[consumer];
        if (n->kind != BZN_NODE_CONV || !q[consumer].int8 || n->in.n != 1 || n->in.c != b->c) continue;
        if (qin_bytes(u, consumer) > (size_t)b->c * b->h * b->w * sizeof(float)) continue;
        q[i].hand_to = consumer + 1;
        q[consumer].handed = 1;
    }
}
