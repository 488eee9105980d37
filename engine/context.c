/*
 * context.c - one thread's way of running a model at one input size.
 *
 * Creating a context builds the graph for its size, plans every activation buffer into
 * one arena (by liveness, see graph.c) and sizes the scratch space the backend needs; all
 * of it is allocated here, once. Running is then a walk down the node list.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "graph.h"
#include "model.h"
#include "network.h"
#include "resize.h"

/* INT8 form of one convolution node (precision INT8, not kept in FP32) */
typedef struct {
    int8_t *qweight;  /* [out][in][k][k], per-output-channel symmetric */
    float *wscale;    /* [out] */
    float in_scale;   /* the input tensor's scale (the largest of its pieces') */
    int owned;        /* qweight/wscale allocated here (not the model's) */
    int hand_to;      /* INT8 hand-off: 1 + the node that gets this output as int8, or 0 */
    int handed;       /* INT8 hand-off: the input arrives already quantized */
} qconv;

#define MAX_SIDE 8192 /* the largest input width and height */

struct bzn_ctx {
    const bzn_model *model;
    bzn_ctx_options opt;
    bzn_graph g;
    bzn_backend *backend;
    float *arena;         /* every activation */
    size_t arena_floats;
    void *scratch;        /* backend scratch (im2col) */
    size_t scratch_bytes;
    uint8_t *resized;     /* the frame resized to the input size, RGB */
    bzn_resizer *resizer; /* the resize's plans and buffers, kept while frames keep their size */
    void **prepared;      /* per node: the backend's own form of a convolution (conv_prepare) */
    float **fweight;      /* per node: float weights dequantized here for a convolution stored
                             int8 in its file but run in FP32 (else NULL: the model's are used) */
    int threads;          /* for the engine's own loops (resize, class map) */
    int has_run;
    bzn_error run_error;  /* why the last run has no result (status BZN_OK: none failed) */
    int profiling;        /* per-layer timing on */
    double *layer_ms;     /* per node: accumulated wall time */
    int64_t profiled_runs;
    qconv *q;             /* per node, INT8 only */
};

const char *bzn_precision_name(bzn_precision p) { return p == BZN_PRECISION_INT8 ? "int8" : "fp32"; }

bzn_ctx_options bzn_ctx_default_options(const bzn_model *m) {
    bzn_ctx_options o;
    memset(&o, 0, sizeof o);
    o.height = m ? m->wf.config.default_height : 352;
    o.width = m ? m->wf.config.default_width : 352;
    o.backend = BZN_BACKEND_CPU;
    return o;
}

static float *buf_ptr(const bzn_ctx *c, int buf) { return c->arena + c->g.bufs[buf].offset; }

/* pointer to channel 0 of a slice */
static float *slice_ptr(const bzn_ctx *c, const bzn_slice *s) {
    const bzn_buffer *b = &c->g.bufs[s->buf];
    return buf_ptr(c, s->buf) + (size_t)s->c0 * b->h * b->w;
}

static void conv_args(const bzn_ctx *c, const bzn_node *n, bzn_conv_args *a) {
    memset(a, 0, sizeof *a);
    a->n_in = n->in.n;
    for (int i = 0; i < n->in.n; i++) {
        a->in[i].data = slice_ptr(c, &n->in.seg[i]);
        a->in[i].channels = n->in.seg[i].c;
    }
    a->in_c = n->in.c;
    a->in_h = n->in.h;
    a->in_w = n->in.w;
    a->out = slice_ptr(c, &n->out.seg[0]);
    a->out_c = n->out.c;
    a->out_h = n->out.h;
    a->out_w = n->out.w;
    a->weight = c->fweight && c->fweight[n - c->g.nodes] ? c->fweight[n - c->g.nodes] : n->conv->weight;
    a->bias = n->conv->bias;
    a->k = n->k;
    a->stride = n->stride;
    a->pad = n->pad;
    a->dilation = n->dilation;
    a->act = n->act;
    a->prepared = c->prepared ? c->prepared[n - c->g.nodes] : NULL;
    const qconv *q = c->q ? &c->q[n - c->g.nodes] : NULL;
    if (q && q->qweight) {
        a->qweight = q->qweight;
        a->wscale = q->wscale;
        a->in_scale = q->in_scale;
        if (q->handed) a->in_q = a->in[0].data; /* the producer's buffer holds int8 planes */
    }
}

/* A convolution's arguments, with its INT8 hand-off to the next one (`next` holds that
 * one's arguments, which outlive the call). */
static void conv_args_handoff(const bzn_ctx *c, const bzn_node *n, bzn_conv_args *a, bzn_conv_args *next) {
    conv_args(c, n, a);
    const qconv *q = c->q ? &c->q[n - c->g.nodes] : NULL;
    if (q && q->hand_to) {
        conv_args(c, &c->g.nodes[q->hand_to - 1], next);
        a->out_q = a->out;
        a->next = next;
    }
}

/* ---- INT8 set-up ------------------------------------------------------------------------ */

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

static int find_scale(const bzn_ctx_options *o, const char *name, float *scale) {
    for (int i = 0; i < o->n_scales; i++)
        if (o->scales[i].name && !strcmp(o->scales[i].name, name)) {
            *scale = o->scales[i].scale;
            return 1;
        }
    return 0;
}

/* The scale of a convolution's input: the largest scale among the tensors its pieces come
 * from (the network input, or the layers that wrote those channels), so that one int8 scale
 * covers the whole concatenation. */
static bzn_status input_scale(const bzn_ctx *c, int node, float *out, bzn_error *err) {
    const bzn_node *n = &c->g.nodes[node];
    float best = 0;
    for (int s = 0; s < n->in.n; s++) {
        const bzn_slice *sl = &n->in.seg[s];
        int found = 0;
        if (sl->buf == c->g.input_buf) {
            float v;
            if (!find_scale(&c->opt, "input", &v))
                return bzn_fail(err, BZN_ERR_ARG, "INT8: no activation scale for tensor 'input' (needed by '%s')", n->name);
            best = v > best ? v : best;
            continue;
        }
        for (int j = 0; j < node; j++) {
            const bzn_node *p = &c->g.nodes[j];
            if (p->kind == BZN_NODE_CONCAT || p->out.seg[0].buf != sl->buf) continue;
            const bzn_slice *o = &p->out.seg[0];
            if (o->c0 >= sl->c0 + sl->c || sl->c0 >= o->c0 + o->c) continue; /* other channels */
            float v;
            if (!find_scale(&c->opt, p->name, &v))
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

void bzn_quantize_weights(const bzn_conv_weights *cw, int8_t *qweight, float *wscale) {
    const size_t per = (size_t)cw->cin * cw->k * cw->k;
    for (int o = 0; o < cw->cout; o++) {
        const float *w = cw->weight + o * per;
        float amax = 0;
        for (size_t i = 0; i < per; i++) amax = fmaxf(amax, fabsf(w[i]));
        const float scale = amax > 0 ? amax / 127.0f : 1.0f;
        wscale[o] = scale;
        const float inv = 1.0f / scale;
        for (size_t i = 0; i < per; i++) qweight[o * per + i] = (int8_t)bzn_quantize(w[i], inv);
    }
}

/* The weights of one INT8 convolution: those stored in an INT8 file, or quantized here. */
static bzn_status int8_weights(const bzn_conv_weights *cw, qconv *q, bzn_error *err) {
    if (cw->qweight) {
        q->qweight = (int8_t *)cw->qweight;
        q->wscale = (float *)cw->wscale;
        return BZN_OK;
    }
    q->qweight = malloc((size_t)cw->cout * cw->cin * cw->k * cw->k);
    q->wscale = malloc((size_t)cw->cout * sizeof *q->wscale);
    q->owned = 1;
    if (!q->qweight || !q->wscale) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory quantizing '%s'", cw->name);
    bzn_quantize_weights(cw, q->qweight, q->wscale);
    return BZN_OK;
}

/* INT8 hand-offs: a convolution's output stays int8 when its buffer is read by exactly one
 * node, an INT8 convolution taking that whole buffer as its only input (so its scale is the
 * producer's own), and nobody inspects it (keep_intermediates off). The consumer's int8
 * layout must fit in the float buffer. Everywhere else - concatenations whose pieces have
 * different scales, tensors read by several layers, pools and upsamplings - it stays float. */
static void plan_handoffs(bzn_ctx *c) {
    if (c->opt.keep_intermediates || !c->backend->conv_qin_bytes) return;
    for (int i = 0; i < c->g.n_nodes; i++) {
        const bzn_node *p = &c->g.nodes[i];
        if (p->kind != BZN_NODE_CONV || !c->q[i].qweight) continue;
        const int buf = p->out.seg[0].buf;
        const bzn_buffer *b = &c->g.bufs[buf];
        if (b->pinned || p->out.seg[0].c0 != 0 || p->out.c != b->c) continue;
        int readers = 0, consumer = -1;
        for (int j = 0; j < c->g.n_nodes; j++)
            for (int s = 0; s < c->g.nodes[j].in.n; s++)
                if (c->g.nodes[j].in.seg[s].buf == buf) {
                    readers++;
                    consumer = j;
                }
        if (readers != 1) continue;
        const bzn_node *n = &c->g.nodes[consumer];
        if (n->kind != BZN_NODE_CONV || !c->q[consumer].qweight || n->in.n != 1 || n->in.c != b->c) continue;
        bzn_conv_args a;
        conv_args(c, n, &a);
        if (c->backend->conv_qin_bytes(c->backend->ctx, &a) > (size_t)b->c * b->h * b->w * sizeof(float)) continue;
        c->q[i].hand_to = consumer + 1;
        c->q[consumer].handed = 1;
    }
}

int bzn_ctx_int8_handoffs(const bzn_ctx *c) {
    int n = 0;
    for (int i = 0; c && c->q && i < c->g.n_nodes; i++) n += c->q[i].hand_to != 0;
    return n;
}

/* Float weights for the convolutions that run in FP32 but are stored int8 (an INT8 file run
 * with precision FP32, or with --keep-fp32): dequantized, q * wscale. */
static bzn_status dequantize_fp32_convs(bzn_ctx *c, bzn_error *err) {
    for (int i = 0; i < c->g.n_nodes; i++) {
        const bzn_node *n = &c->g.nodes[i];
        if (n->kind != BZN_NODE_CONV || n->conv->weight || (c->q && c->q[i].qweight)) continue;
        const bzn_conv_weights *cw = n->conv;
        const size_t per = (size_t)cw->cin * cw->k * cw->k;
        if (!c->fweight && !(c->fweight = calloc((size_t)c->g.n_nodes, sizeof *c->fweight)))
            return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
        if (!(c->fweight[i] = malloc((size_t)cw->cout * per * sizeof(float))))
            return bzn_fail(err, BZN_ERR_NOMEM, "out of memory dequantizing '%s'", cw->name);
        for (int o = 0; o < cw->cout; o++)
            for (size_t j = 0; j < per; j++) c->fweight[i][o * per + j] = (float)cw->qweight[o * per + j] * cw->wscale[o];
    }
    return BZN_OK;
}

static bzn_status setup_int8(bzn_ctx *c, bzn_error *err) {
    if (!c->opt.scales) { /* the scales stored in an INT8 weight file */
        c->opt.scales = c->model->act_scales;
        c->opt.n_scales = c->model->n_act_scales;
        if (!c->opt.n_scales)
            return bzn_fail(err, BZN_ERR_ARG,
                            "INT8 needs activation scales: give a calibration cache (--calib) or use a model "
                            "written by 'blazeneo quantize'");
    }
    c->q = calloc((size_t)c->g.n_nodes, sizeof *c->q);
    if (!c->q) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    /* every name in keep_fp32 must be a convolution of this network */
    for (const char *p = c->opt.keep_fp32; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int ok = len == 0;
        for (int i = 0; !ok && i < c->g.n_nodes; i++)
            ok = c->g.nodes[i].kind == BZN_NODE_CONV && strlen(c->g.nodes[i].name) == len &&
                 !strncmp(c->g.nodes[i].name, p, len);
        if (!ok) return bzn_fail(err, BZN_ERR_ARG, "--keep-fp32: '%.*s' is not a convolution of this network", (int)len, p);
        p = e ? e + 1 : NULL;
    }
    for (int i = 0; i < c->g.n_nodes; i++) {
        const bzn_node *n = &c->g.nodes[i];
        if (n->kind != BZN_NODE_CONV || bzn_name_in_list(c->opt.keep_fp32, n->name)) continue;
        if (c->model->int8_file && !n->conv->qweight) continue; /* kept in FP32 when quantized */
        bzn_status s = input_scale(c, i, &c->q[i].in_scale, err);
        if (s == BZN_OK) s = int8_weights(n->conv, &c->q[i], err);
        if (s != BZN_OK) return s;
    }
    return BZN_OK;
}

bzn_status bzn_ctx_create(const bzn_model *m, const bzn_ctx_options *opt, bzn_ctx **out, bzn_error *err) {
    if (!m || !out) return bzn_fail(err, BZN_ERR_ARG, "NULL model or output pointer");
    *out = NULL;
    bzn_ctx_options o = opt ? *opt : bzn_ctx_default_options(m);
    if (o.height < 32 || o.width < 32 || o.height % 32 || o.width % 32 || o.height > MAX_SIDE || o.width > MAX_SIDE)
        return bzn_fail(err, BZN_ERR_UNSUPPORTED,
                        "input size %dx%d: BlazeNeo needs a width and height that are multiples of 32 "
                        "(32 to %d), e.g. 352x352",
                        o.width, o.height, MAX_SIDE);
    if (o.threads < 0 || o.threads > 1024) return bzn_fail(err, BZN_ERR_ARG, "invalid thread count %d", o.threads);
    bzn_ctx *c = calloc(1, sizeof *c);
    if (!c) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    c->model = m;
    c->opt = o;
    c->threads = o.threads > 0 ? o.threads : omp_get_num_procs();
    bzn_status s;
    switch (o.backend) {
    case BZN_BACKEND_CPU: s = bzn_backend_cpu_create(c->threads, &c->backend, err); break;
    case BZN_BACKEND_REF: s = bzn_backend_ref_create(&c->backend, err); break;
    default: s = bzn_fail(err, BZN_ERR_UNSUPPORTED, "unknown backend %d", (int)o.backend);
    }
    /* the model is complete and immutable: building with create = 0 only looks weights up */
    if (s == BZN_OK) s = bzn_network_build((bzn_model *)m, 0, o.height, o.width, o.run_aux, &c->g, err);
    if (s == BZN_OK) {
        c->arena_floats = bzn_graph_plan(&c->g, o.keep_intermediates);
        if (c->arena_floats == 0 || posix_memalign((void **)&c->arena, 64, c->arena_floats * sizeof(float)) != 0) {
            c->arena = NULL;
            s = bzn_fail(err, BZN_ERR_NOMEM, "out of memory allocating %zu MB of activations",
                         (c->arena_floats * sizeof(float)) >> 20);
        }
    }
    if (s == BZN_OK && o.precision == BZN_PRECISION_INT8) s = setup_int8(c, err);
    else if (s == BZN_OK && o.precision != BZN_PRECISION_FP32)
        s = bzn_fail(err, BZN_ERR_UNSUPPORTED, "unknown precision %d", (int)o.precision);
    if (s == BZN_OK) s = dequantize_fp32_convs(c, err);
    if (s == BZN_OK && !(c->prepared = calloc((size_t)c->g.n_nodes, sizeof *c->prepared)))
        s = bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    if (s == BZN_OK) {
        for (int i = 0; i < c->g.n_nodes; i++) {
            if (c->g.nodes[i].kind != BZN_NODE_CONV) continue;
            bzn_conv_args a;
            conv_args(c, &c->g.nodes[i], &a);
            if (c->backend->conv_prepare) {
                int failed = 0;
                a.prepared = c->prepared[i] = c->backend->conv_prepare(c->backend->ctx, &a, &failed);
                if (failed) {
                    s = bzn_fail(err, BZN_ERR_NOMEM, "out of memory preparing '%s'", c->g.nodes[i].name);
                    break;
                }
            }
            size_t need = c->backend->conv_scratch(c->backend->ctx, &a);
            if (need > c->scratch_bytes) c->scratch_bytes = need;
        }
        if (c->q) plan_handoffs(c);
        if ((c->scratch_bytes && posix_memalign(&c->scratch, 64, c->scratch_bytes) != 0) ||
            !(c->resized = malloc((size_t)o.height * o.width * 3)) || !(c->resizer = bzn_resizer_new()) ||
            !(c->layer_ms = calloc((size_t)c->g.n_nodes, sizeof *c->layer_ms))) {
            c->scratch = NULL;
            s = bzn_fail(err, BZN_ERR_NOMEM, "out of memory allocating %zu MB of scratch space",
                         c->scratch_bytes >> 20);
        }
    }
    if (s != BZN_OK) {
        bzn_ctx_free(c);
        return s;
    }
    memset(c->arena, 0, c->arena_floats * sizeof(float));
    c->opt.scales = NULL; /* used only while creating: the caller may free them now */
    c->opt.n_scales = 0;
    c->opt.keep_fp32 = NULL;
    *out = c;
    return BZN_OK;
}

void bzn_ctx_free(bzn_ctx *c) {
    if (!c) return;
    for (int i = 0; c->prepared && i < c->g.n_nodes; i++)
        if (c->prepared[i] && c->backend->conv_release) c->backend->conv_release(c->backend->ctx, c->prepared[i]);
    free(c->prepared);
    if (c->q) {
        for (int i = 0; i < c->g.n_nodes; i++) {
            if (c->q[i].owned) {
                free(c->q[i].qweight);
                free(c->q[i].wscale);
            }
        }
        free(c->q);
    }
    for (int i = 0; c->fweight && i < c->g.n_nodes; i++) free(c->fweight[i]);
    free(c->fweight);
    if (c->backend) c->backend->destroy(c->backend);
    bzn_graph_free(&c->g);
    free(c->arena);
    free(c->scratch);
    free(c->resized);
    bzn_resizer_free(c->resizer);
    free(c->layer_ms);
    free(c);
}

size_t bzn_ctx_arena_bytes(const bzn_ctx *c) { return c->arena_floats * sizeof(float) + c->scratch_bytes; }

/* ---- running ------------------------------------------------------------------------ */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Number of values of x[0..n) that are NaN or infinite (exponent bits all ones): an integer
 * test that vectorises, about 0.1 ms over a 3 x 352 x 352 output. */
static size_t count_nonfinite(const float *x, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        bad += (u & 0x7f800000u) == 0x7f800000u;
    }
    return bad;
}

/* A run whose output is not finite has no result: NaN or infinity would silently become a
 * class (argmax over NaN picks the first class, neoplastic), so the run fails instead. */
static bzn_status check_outputs(bzn_ctx *c, bzn_error *err) {
    const int bufs[2] = {c->g.main_buf, c->g.aux_buf};
    for (int k = 0; k < 2; k++) {
        if (bufs[k] < 0) continue;
        const bzn_buffer *b = &c->g.bufs[bufs[k]];
        const size_t n = (size_t)b->c * b->h * b->w, bad = count_nonfinite(buf_ptr(c, bufs[k]), n);
        if (bad)
            return bzn_fail(err, BZN_ERR_NONFINITE,
                            "the %s head's output is not finite (%zu of %zu values are NaN or infinite): the weights "
                            "are out of range for this input; no class map can be made",
                            k ? "auxiliary" : "main", bad, n);
    }
    return BZN_OK;
}

/* What the run returns; a failure is kept so that later output calls can say why. */
static bzn_status run_done(bzn_ctx *c, bzn_error *err) {
    const bzn_status s = check_outputs(c, &c->run_error);
    c->has_run = s == BZN_OK;
    if (s != BZN_OK && err) *err = c->run_error;
    return s;
}

static void forward(bzn_ctx *c) {
    const bzn_backend *be = c->backend;
    double t = c->profiling ? now_ms() : 0;
    for (int i = 0; i < c->g.n_nodes; i++) {
        const bzn_node *n = &c->g.nodes[i];
        switch (n->kind) {
        case BZN_NODE_CONV: {
            bzn_conv_args a, next;
            conv_args_handoff(c, n, &a, &next);
            be->conv(be->ctx, &a, c->scratch);
            break;
        }
        case BZN_NODE_MAXPOOL: {
            bzn_pool_args a = {slice_ptr(c, &n->in.seg[0]), slice_ptr(c, &n->out.seg[0]), n->in.c, n->in.h,
                               n->in.w, n->out.h, n->out.w, n->k, n->stride, n->pad};
            be->maxpool(be->ctx, &a);
            break;
        }
        case BZN_NODE_UPSAMPLE: {
            bzn_upsample_args a = {slice_ptr(c, &n->in.seg[0]), slice_ptr(c, &n->out.seg[0]), n->in.c, n->in.h,
                                   n->in.w, n->factor};
            be->upsample(be->ctx, &a);
            break;
        }
        case BZN_NODE_CONCAT: break; /* already in place */
        }
        if (c->profiling) {
            const double t1 = now_ms();
            c->layer_ms[i] += t1 - t;
            t = t1;
        }
    }
    if (c->profiling) c->profiled_runs++;
}

bzn_status bzn_run_tensor(bzn_ctx *c, const float *input, bzn_error *err) {
    if (!c || !input) return bzn_fail(err, BZN_ERR_ARG, "NULL context or input");
    c->has_run = 0; /* until this run completes: never answer with an older frame */
    c->run_error.status = BZN_OK;
    memcpy(buf_ptr(c, c->g.input_buf), input, (size_t)3 * c->g.height * c->g.width * sizeof(float));
    forward(c);
    return run_done(c, err);
}

bzn_status bzn_run_rgb(bzn_ctx *c, const uint8_t *rgb, int width, int height, int stride, bzn_error *err) {
    if (!c || !rgb) return bzn_fail(err, BZN_ERR_ARG, "NULL context or frame");
    c->has_run = 0; /* until this run completes: never answer with an older frame */
    c->run_error.status = BZN_OK;
    if (width < 1 || height < 1 || (int64_t)stride < 3 * (int64_t)width)
        return bzn_fail(err, BZN_ERR_ARG, "invalid frame geometry %dx%d, stride %d", width, height, stride);
    const int H = c->g.height, W = c->g.width;
    bzn_status s = bzn_resizer_run(c->resizer, rgb, width, height, stride, 3, c->resized, W, H, c->threads, err);
    if (s != BZN_OK) return s;
    /* torchvision's ToTensor then Normalize: (v / 255 - mean) / std, HWC -> CHW */
    const bzn_wf_config *cfg = &c->model->wf.config;
    float *x = buf_ptr(c, c->g.input_buf);
    const size_t plane = (size_t)H * W;
    for (int ch = 0; ch < 3; ch++) {
        const float mean = cfg->mean[ch], sd = cfg->std[ch];
        for (size_t i = 0; i < plane; i++) x[ch * plane + i] = ((float)c->resized[3 * i + ch] / 255.0f - mean) / sd;
    }
    forward(c);
    return run_done(c, err);
}

/* ---- outputs -------------------------------------------------------------------------- */

static bzn_status no_result(const bzn_ctx *c, bzn_error *err) {
    if (c->run_error.status != BZN_OK)
        return bzn_fail(err, c->run_error.status, "the last run failed: %s", c->run_error.msg);
    return bzn_fail(err, BZN_ERR_ARG, "no frame has been run on this context yet");
}

bzn_status bzn_logits(const bzn_ctx *c, bzn_output which, const float **data, int *channels, int *height,
                      int *width, bzn_error *err) {
    if (!c || !data) return bzn_fail(err, BZN_ERR_ARG, "NULL context or output pointer");
    if (!c->has_run) return no_result(c, err);
    int buf = which == BZN_OUT_AUX ? c->g.aux_buf : c->g.main_buf;
    if (buf < 0)
        return bzn_fail(err, BZN_ERR_ARG, "the auxiliary head was not run (model without it, or run_aux = 0)");
    *data = buf_ptr(c, buf);
    if (channels) *channels = c->g.bufs[buf].c;
    if (height) *height = c->g.height;
    if (width) *width = c->g.width;
    return BZN_OK;
}

bzn_status bzn_probabilities(const bzn_ctx *c, bzn_output which, float *out, size_t count, bzn_error *err) {
    const float *x;
    int C, H, W;
    bzn_status s = bzn_logits(c, which, &x, &C, &H, &W, err);
    if (s != BZN_OK) return s;
    const size_t plane = (size_t)H * W;
    if (!out || count < (size_t)C * plane)
        return bzn_fail(err, BZN_ERR_ARG, "output buffer holds %zu floats, %zu needed", count, (size_t)C * plane);
    if (C == 3) {
        for (size_t i = 0; i < plane; i++) {
            float m = fmaxf(x[i], fmaxf(x[plane + i], x[2 * plane + i])), sum = 0;
            for (int k = 0; k < 3; k++) sum += out[k * plane + i] = expf(x[k * plane + i] - m);
            for (int k = 0; k < 3; k++) out[k * plane + i] /= sum;
        }
    } else {
        for (size_t i = 0; i < (size_t)C * plane; i++) out[i] = 1.0f / (1.0f + expf(-x[i]));
    }
    return BZN_OK;
}

/* class per pixel at model resolution: 0 neo, 1 non, 2 background */
static uint8_t classify(const float *x, size_t plane, int C, size_t i) {
    if (C == 3) {
        int best = 0;
        for (int k = 1; k < 3; k++)
            if (x[k * plane + i] > x[best * plane + i]) best = k;
        return (uint8_t)best;
    }
    /* two sigmoid maps: polyp when max(sigmoid) > 0.5, i.e. max logit > 0; neo when p_neo >= p_non */
    const float neo = x[i], non = x[plane + i];
    if (fmaxf(neo, non) <= 0.0f) return 2;
    return neo >= non ? 0 : 1;
}

bzn_status bzn_class_map(const bzn_ctx *c, uint8_t *out, int width, int height, bzn_error *err) {
    const float *x;
    int C, H, W;
    bzn_status s = bzn_logits(c, BZN_OUT_MAIN, &x, &C, &H, &W, err);
    if (s != BZN_OK) return s;
    if (!out || width < 1 || height < 1) return bzn_fail(err, BZN_ERR_ARG, "invalid class map size");
    const size_t plane = (size_t)H * W;
    /* nearest neighbour exactly as PIL's Image.resize(NEAREST), the protocol's reference:
       the source coordinate starts at half a step and advances by in/out (in double). Each
       thread classifies a source row once (W <= MAX_SIDE) for the output rows that use it. */
    const double sy = (double)H / height, sx = (double)W / width;
#pragma omp parallel num_threads(c->threads)
    {
        uint8_t row[MAX_SIDE];
        int have = -1, at = -1; /* the source row in `row`; the output row fy belongs to */
        double fy = 0;
#pragma omp for schedule(static)
        for (int y = 0; y < height; y++) {
            if (at != y) /* a thread's first row: the running sum up to here, added as it runs */
                for (fy = sy / 2, at = 0; at < y; at++) fy += sy;
            int iy = (int)fy;
            fy += sy;
            at = y + 1;
            if (iy > H - 1) iy = H - 1;
            if (iy != have) {
                for (int i = 0; i < W; i++) row[i] = classify(x, plane, C, (size_t)iy * W + i);
                have = iy;
            }
            double fx = sx / 2;
            for (int xx = 0; xx < width; xx++, fx += sx) {
                int ix = (int)fx;
                if (ix > W - 1) ix = W - 1;
                out[(size_t)y * width + xx] = row[ix];
            }
        }
    }
    return BZN_OK;
}

/* ---- inspection --------------------------------------------------------------------------- */

int bzn_ctx_num_layers(const bzn_ctx *c) { return c->g.n_nodes; }

bzn_status bzn_ctx_layer(const bzn_ctx *c, int i, bzn_layer_info *info) {
    if (!c || !info || i < 0 || i >= c->g.n_nodes) return BZN_ERR_ARG;
    const bzn_node *n = &c->g.nodes[i];
    info->name = n->name;
    info->aliases = n->aliases;
    info->channels = n->out.c;
    info->height = n->out.h;
    info->width = n->out.w;
    info->in_channels = n->in.c;
    info->in_height = n->in.h;
    info->in_width = n->in.w;
    info->params = n->params;
    info->macs = n->macs;
    info->op = n->op;
    info->precision = c->q && c->q[i].qweight ? BZN_PRECISION_INT8 : BZN_PRECISION_FP32;
    info->int8_output = c->q && c->q[i].hand_to != 0;
    return BZN_OK;
}

bzn_status bzn_ctx_layer_output(const bzn_ctx *c, int i, float *out, size_t count, bzn_error *err) {
    if (!c || i < 0 || i >= c->g.n_nodes) return bzn_fail(err, BZN_ERR_ARG, "no layer %d", i);
    const bzn_node *n = &c->g.nodes[i];
    const size_t plane = (size_t)n->out.h * n->out.w;
    if (!out || count < (size_t)n->out.c * plane)
        return bzn_fail(err, BZN_ERR_ARG, "output buffer too small for '%s'", n->name);
    /* a run whose output was not finite still left every layer's output to look at, to find
       where the NaN or infinity arose */
    if (!c->has_run && c->run_error.status != BZN_ERR_NONFINITE) return no_result(c, err);
    for (int s = 0; s < n->out.n; s++)
        if (!c->opt.keep_intermediates && !c->g.bufs[n->out.seg[s].buf].pinned)
            return bzn_fail(err, BZN_ERR_ARG,
                            "'%s' shares memory with later layers: create the context with keep_intermediates",
                            n->name);
    for (int s = 0; s < n->out.n; s++) {
        memcpy(out, slice_ptr(c, &n->out.seg[s]), (size_t)n->out.seg[s].c * plane * sizeof(float));
        out += (size_t)n->out.seg[s].c * plane;
    }
    return BZN_OK;
}

void bzn_ctx_set_profiling(bzn_ctx *c, int on) {
    if (c) c->profiling = on != 0;
}

void bzn_ctx_reset_profile(bzn_ctx *c) {
    if (!c) return;
    memset(c->layer_ms, 0, (size_t)c->g.n_nodes * sizeof *c->layer_ms);
    c->profiled_runs = 0;
}

bzn_status bzn_ctx_layer_time(const bzn_ctx *c, int i, double *total_ms, int64_t *runs) {
    if (!c || i < 0 || i >= c->g.n_nodes) return BZN_ERR_ARG;
    if (total_ms) *total_ms = c->layer_ms[i];
    if (runs) *runs = c->profiled_runs;
    return BZN_OK;
}

const float *bzn_ctx_input(const bzn_ctx *c) { return c->has_run ? buf_ptr(c, c->g.input_buf) : NULL; }
