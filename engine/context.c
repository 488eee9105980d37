/*
 * context.c - one thread's way of running a model at one input size and batch.
 *
 * Creating a context builds the graph for its size, plans every activation buffer into one
 * arena (by liveness, see graph.c; `batch` copies of it, one per frame), makes every
 * operation's arguments once (the plan), and has the backend allocate the arena and the
 * scratch space in its own memory. Weights come from the model's shared forms
 * (weightcache.c). Running is then: the frames' pre-processing into the input tensor, the
 * plan on the backend, a check that the outputs are finite; nothing is allocated.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "error.h"
#include "graph.h"
#include "int8plan.h"
#include "model.h"
#include "network.h"
#include "resize.h"
#include "weightcache.h"

#define MAX_SIDE 8192 /* the largest input width and height */
#define MAX_BATCH 1024

struct bzn_ctx {
    const bzn_model *model;
    bzn_ctx_options opt;
    bzn_graph g;
    bzn_backend *backend;
    float *arena;          /* every activation, `batch` frames of frame_floats: the backend's memory */
    size_t frame_floats;
    void *scratch;         /* the backend's scratch (im2col, padded planes), the backend's memory */
    size_t scratch_bytes;
    bzn_plan plan;         /* every operation with its arguments, made at creation */
    void **prepared;       /* per node: the backend's per-context form of a convolution */
    bzn_int8_node *q;      /* per node, INT8 only */
    /* host side: the backend's memory itself when it is the host's, else copies */
    float *host_input;     /* batch x 3 x H x W, normalised */
    float *host_out[2];    /* main and aux logits, batch x C x H x W (NULL: not run) */
    uint8_t *resized;      /* one frame resized to the input size, RGB */
    float norm[3][256];    /* per channel and byte value: (v / 255 - mean) / std, the network input */
    uint8_t *aux8;         /* the aux head's probability at the input size, 0..255 (NULL: not run) */
    bzn_resizer *resizer;  /* the resize's plans and buffers, kept while frames keep their size */
    bzn_parallel par;      /* the backend's host threads, for the engine's own loops (resize, class map) */
    int frames_computed;   /* frames the last run computed (their layers can be inspected) */
    int frames_run;        /* of those, frames with results: finite outputs (0: none) */
    int input_on_device;   /* the backend pre-processed the last frames: host_input is stale */
    int outputs_on_device; /* the backend post-processes (class_map): host_out is fetched when asked for */
    int *nn_index;         /* a class map's nearest-neighbour rows then columns (grown, never shrunk) */
    size_t nn_cap;
    bzn_error run_error;   /* why the last run has no result (status BZN_OK: it has) */
    int profiling;
    double *layer_ms;      /* per node: accumulated time measured by the backend's timers */
    int64_t profiled_runs;
};

const char *bzn_precision_name(bzn_precision p) {
    return p == BZN_PRECISION_INT8   ? "int8"
           : p == BZN_PRECISION_FP16 ? "fp16"
           : p == BZN_PRECISION_TF32 ? "tf32"
                                     : "fp32";
}

/* the names of a backend's precisions, "fp32, int8", for messages */
static void precision_list(unsigned precisions, char *buf, size_t len) {
    const bzn_precision all[] = {BZN_PRECISION_FP32, BZN_PRECISION_TF32, BZN_PRECISION_FP16, BZN_PRECISION_INT8};
    if (len) buf[0] = 0;
    for (size_t k = 0, n = 0; k < sizeof all / sizeof *all; k++)
        if ((bzn_precision_set(precisions) >> all[k]) & 1u) {
            const size_t used = strlen(buf);
            snprintf(buf + used, len - used, "%s%s", n++ ? ", " : "", bzn_precision_name(all[k]));
        }
}

bzn_ctx_options bzn_ctx_default_options(const bzn_model *m) {
    bzn_ctx_options o;
    memset(&o, 0, sizeof o);
    o.height = m ? m->wf.config.default_height : 352;
    o.width = m ? m->wf.config.default_width : 352;
    o.batch = 1;
    o.precision = bzn_model_file_precision(m); /* an INT8 weight file runs INT8 */
    return o;
}

/* frame 0 of buffer `buf` in the arena */
static float *buf_ptr(const bzn_ctx *c, int buf) { return c->arena + c->g.bufs[buf].offset; }

/* frame 0, channel 0 of a slice */
static float *slice_ptr(const bzn_ctx *c, const bzn_slice *s) {
    const bzn_buffer *b = &c->g.bufs[s->buf];
    return buf_ptr(c, s->buf) + (size_t)s->c0 * b->h * b->w;
}

/* ---- the plan ----------------------------------------------------------------------------- */

static void conv_args(const bzn_ctx *c, const bzn_node *n, const bzn_conv_form *form, bzn_conv_args *a) {
    memset(a, 0, sizeof *a);
    a->batch = c->opt.batch;
    a->n_in = n->in.n;
    for (int i = 0; i < n->in.n; i++) {
        a->in[i].data = slice_ptr(c, &n->in.seg[i]);
        a->in[i].channels = n->in.seg[i].c;
        a->in[i].batch_stride = c->frame_floats;
    }
    a->in_c = n->in.c;
    a->in_h = n->in.h;
    a->in_w = n->in.w;
    a->out = slice_ptr(c, &n->out.seg[0]);
    a->out_batch_stride = c->frame_floats;
    a->out_c = n->out.c;
    a->out_h = n->out.h;
    a->out_w = n->out.w;
    a->weight = form->weight;
    a->qweight = form->qweight;
    a->wscale = form->wscale;
    a->weights = form->prepared;
    a->bias = n->conv->bias;
    a->k = n->k;
    a->stride = n->stride;
    a->pad = n->pad;
    a->dilation = n->dilation;
    a->act = n->act;
    if (a->qweight) a->in_scale = c->q[n - c->g.nodes].in_scale;
    const bzn_precision p = c->opt.precision;
    a->math = !a->qweight && (p == BZN_PRECISION_FP16 || p == BZN_PRECISION_TF32) ? p : BZN_PRECISION_FP32;
}

/* the op computing node i, or NULL (a concatenation computes nothing) */
static bzn_op *op_of(const bzn_ctx *c, int node) {
    for (int k = 0; k < c->plan.n_ops; k++)
        if (c->plan.ops[k].node == node) return &c->plan.ops[k];
    return NULL;
}

static size_t handoff_qin_bytes(void *u, int consumer) {
    const bzn_ctx *c = u;
    return c->backend->conv_qin_bytes(c->backend, &op_of(c, consumer)->u.conv);
}

/* Every operation's arguments, once: pointers into the arena, the model's shared weight
 * forms, the backend's per-context preparation, the INT8 hand-offs, the scratch size. */
static bzn_status build_plan(bzn_ctx *c, bzn_error *err) {
    bzn_backend *be = c->backend;
    c->plan.ops = calloc((size_t)c->g.n_nodes, sizeof *c->plan.ops);
    c->prepared = calloc((size_t)c->g.n_nodes, sizeof *c->prepared);
    unsigned char *nonneg = malloc((size_t)c->g.n_nodes); /* each node's input is >= 0 */
    if (!c->plan.ops || !c->prepared || !nonneg) {
        free(nonneg);
        return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    }
    bzn_graph_nonneg_inputs(&c->g, nonneg);
    for (int i = 0; i < c->g.n_nodes; i++) {
        const bzn_node *n = &c->g.nodes[i];
        bzn_op *op = &c->plan.ops[c->plan.n_ops];
        op->node = i;
        switch (n->kind) {
        case BZN_NODE_CONV: {
            op->kind = BZN_OP_CONV;
            bzn_conv_form form = {0};
            conv_args(c, n, &form, &op->u.conv); /* its geometry, for the backend's weight form */
            const bzn_precision p = c->q && c->q[i].int8 ? BZN_PRECISION_INT8 : op->u.conv.math;
            bzn_status s = bzn_weights_get(c->model, be, n->conv, p, &op->u.conv, &form, err);
            if (s != BZN_OK) {
                free(nonneg);
                return s;
            }
            conv_args(c, n, &form, &op->u.conv);
            op->u.conv.in_nonneg = nonneg[i];
            break;
        }
        case BZN_NODE_MAXPOOL:
            op->kind = BZN_OP_MAXPOOL;
            op->u.pool = (bzn_pool_args){c->opt.batch,   slice_ptr(c, &n->in.seg[0]), slice_ptr(c, &n->out.seg[0]),
                                         c->frame_floats, c->frame_floats, n->in.c, n->in.h, n->in.w, n->out.h,
                                         n->out.w,   n->k, n->stride, n->pad};
            break;
        case BZN_NODE_UPSAMPLE:
            op->kind = BZN_OP_UPSAMPLE;
            op->u.upsample = (bzn_upsample_args){c->opt.batch, slice_ptr(c, &n->in.seg[0]), slice_ptr(c, &n->out.seg[0]),
                                                 c->frame_floats, c->frame_floats, n->in.c, n->in.h, n->in.w, n->factor};
            break;
        case BZN_NODE_CONCAT: continue; /* already in place */
        }
        c->plan.n_ops++;
    }
    free(nonneg);
    if (c->q && be->conv_qin_bytes && !c->opt.keep_intermediates) {
        bzn_int8_plan_handoffs(&c->g, c->q, handoff_qin_bytes, c);
        for (int i = 0; i < c->g.n_nodes; i++) {
            if (c->q[i].handed) {
                bzn_conv_args *a = &op_of(c, i)->u.conv;
                a->in_q = a->in[0].data; /* the producer's buffer holds int8 planes */
            }
            if (c->q[i].hand_to) {
                bzn_conv_args *a = &op_of(c, i)->u.conv;
                a->out_q = a->out;
                a->next = &op_of(c, c->q[i].hand_to - 1)->u.conv;
            }
        }
    }
    for (int k = 0; k < c->plan.n_ops; k++) {
        bzn_op *op = &c->plan.ops[k];
        if (op->kind != BZN_OP_CONV) continue;
        if (be->conv_prepare) {
            bzn_status s = be->conv_prepare(be, &op->u.conv, &c->prepared[op->node], err);
            if (s != BZN_OK) return s;
            op->u.conv.prepared = c->prepared[op->node];
        }
        const size_t need = be->conv_scratch(be, &op->u.conv);
        if (need > c->scratch_bytes) c->scratch_bytes = need;
    }
    return BZN_OK;
}

/* ---- creating ----------------------------------------------------------------------------- */

static void make_norm_table(bzn_ctx *c); /* (with the preprocessing, below) */

bzn_status bzn_ctx_create(const bzn_model *m, const bzn_ctx_options *opt, bzn_ctx **out, bzn_error *err) {
    if (!m || !out) return bzn_fail(err, BZN_ERR_ARG, "NULL model or output pointer");
    *out = NULL;
    const bzn_ctx_options o = opt ? *opt : bzn_ctx_default_options(m);
    const bzn_backend_options bo = {o.threads, o.device};
    bzn_backend *b;
    bzn_status s = bzn_backend_create(o.backend, &bo, &b, err);
    if (s != BZN_OK) return s;
    return bzn_ctx_create_on(m, &o, b, out, err);
}

bzn_status bzn_ctx_create_on(const bzn_model *m, const bzn_ctx_options *opt, bzn_backend *backend, bzn_ctx **out,
                             bzn_error *err) {
    *out = NULL;
    bzn_ctx_options o = *opt;
    if (o.batch == 0) o.batch = 1;
    bzn_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        backend->destroy(backend);
        return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    }
    c->backend = backend;
    c->model = m;
    c->opt = o;
    bzn_status s = BZN_OK;
    if (o.height < 32 || o.width < 32 || o.height % 32 || o.width % 32 || o.height > MAX_SIDE || o.width > MAX_SIDE)
        s = bzn_fail(err, BZN_ERR_UNSUPPORTED,
                     "input size %dx%d: BlazeNeo needs a width and height that are multiples of 32 (32 to %d), "
                     "e.g. 352x352",
                     o.width, o.height, MAX_SIDE);
    else if (o.batch < 1 || o.batch > MAX_BATCH)
        s = bzn_fail(err, BZN_ERR_ARG, "invalid batch %d (1 to %d frames)", o.batch, MAX_BATCH);
    else if ((unsigned)o.precision > BZN_PRECISION_TF32)
        s = bzn_fail(err, BZN_ERR_UNSUPPORTED, "unknown precision %d", (int)o.precision);
    else if (!((bzn_precision_set(backend->precisions) >> o.precision) & 1u)) {
        char has[64];
        precision_list(backend->precisions, has, sizeof has);
        s = bzn_fail(err, BZN_ERR_UNSUPPORTED, "backend '%s' does not run %s (it runs: %s)", backend->name,
                     bzn_precision_name(o.precision), has);
    }
    /* this size's graph, its convolutions bound to the model's folded weights */
    if (s == BZN_OK) s = bzn_network_build(&m->wf.config, o.height, o.width, o.run_aux, &c->g, err);
    if (s == BZN_OK) s = bzn_model_bind(m, &c->g, err);
    if (s == BZN_OK) {
        c->frame_floats = bzn_graph_plan(&c->g, o.keep_intermediates);
        if (c->frame_floats == 0) s = bzn_fail(err, BZN_ERR_NOMEM, "out of memory planning the activations");
    }
    if (s == BZN_OK)
        s = backend->alloc(backend, c->frame_floats * c->opt.batch * sizeof(float), (void **)&c->arena, err);
    if (s == BZN_OK && o.precision == BZN_PRECISION_INT8) s = bzn_int8_plan(m, &c->g, &o, &c->q, err);
    if (s == BZN_OK) s = build_plan(c, err);
    if (s == BZN_OK && c->scratch_bytes) s = backend->alloc(backend, c->scratch_bytes, &c->scratch, err);
    c->plan.scratch = c->scratch;
    if (s == BZN_OK && backend->timers) s = backend->timers(backend, c->plan.n_ops + 1, err);
    c->par = bzn_backend_parallel(backend);
    if (s == BZN_OK) {
        const size_t in_floats = (size_t)c->opt.batch * 3 * o.height * o.width;
        if (backend->host_memory) {
            c->host_input = buf_ptr(c, c->g.input_buf);
        } else if (!(c->host_input = malloc(in_floats * sizeof(float)))) {
            s = bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
        }
        const int outs[2] = {c->g.main_buf, c->g.aux_buf};
        for (int k = 0; s == BZN_OK && k < 2; k++) {
            if (outs[k] < 0) continue;
            const bzn_buffer *b = &c->g.bufs[outs[k]];
            if (backend->host_memory)
                c->host_out[k] = buf_ptr(c, outs[k]);
            else if (!(c->host_out[k] = malloc((size_t)c->opt.batch * b->c * b->h * b->w * sizeof(float))))
                s = bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
        }
    }
    if (s == BZN_OK && c->g.aux_buf >= 0 && !(c->aux8 = malloc((size_t)o.height * o.width)))
        s = bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    if (s == BZN_OK && (!(c->resized = malloc((size_t)o.height * o.width * 3)) || !(c->resizer = bzn_resizer_new()) ||
                        !(c->layer_ms = calloc((size_t)c->g.n_nodes, sizeof *c->layer_ms))))
        s = bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    if (s != BZN_OK) {
        bzn_ctx_free(c);
        return s;
    }
    make_norm_table(c);
    c->opt.scales = NULL; /* used only while creating: the caller may free them now */
    c->opt.n_scales = 0;
    c->opt.keep_fp32 = NULL;
    c->opt.backend = backend->name;
    *out = c;
    return BZN_OK;
}

void bzn_ctx_free(bzn_ctx *c) {
    if (!c) return;
    bzn_backend *be = c->backend;
    for (int i = 0; c->prepared && i < c->g.n_nodes; i++)
        if (c->prepared[i] && be->conv_release) be->conv_release(be, c->prepared[i]);
    free(c->prepared);
    free(c->plan.ops);
    free(c->q);
    if (be) {
        if (!be->host_memory) {
            free(c->host_input);
            free(c->host_out[0]);
            free(c->host_out[1]);
        }
        if (c->arena) be->free(be, c->arena);
        if (c->scratch) be->free(be, c->scratch);
        be->destroy(be);
    }
    bzn_graph_free(&c->g);
    free(c->resized);
    free(c->aux8);
    bzn_resizer_free(c->resizer);
    free(c->layer_ms);
    free(c->nn_index);
    free(c);
}

size_t bzn_ctx_arena_bytes(const bzn_ctx *c) { return c->frame_floats * c->opt.batch * sizeof(float) + c->scratch_bytes; }

size_t bzn_ctx_activation_bytes(const bzn_ctx *c) { return c->frame_floats * c->opt.batch * sizeof(float); }

size_t bzn_ctx_scratch_bytes(const bzn_ctx *c) { return c->scratch_bytes; }

const bzn_ctx_options *bzn_ctx_options_of(const bzn_ctx *c) { return &c->opt; }

const bzn_model *bzn_ctx_model(const bzn_ctx *c) { return c->model; }

int bzn_ctx_threads(const bzn_ctx *c) { return c ? c->backend->threads : 0; }

int bzn_ctx_batch(const bzn_ctx *c) { return c ? c->opt.batch : 0; }

bzn_status bzn_parse_size(const char *s, int *width, int *height, bzn_error *err) {
    if (!s || !width || !height) return bzn_fail(err, BZN_ERR_ARG, "bzn_parse_size: NULL argument");
    char *end;
    long w = strtol(s, &end, 10), h = w;
    if (end != s && (*end == 'x' || *end == 'X')) {
        const char *p = end + 1;
        h = strtol(p, &end, 10);
        if (end == p) end = (char *)s; /* "512x": not a size */
    }
    if (end == s || *end || w <= 0 || h <= 0 || w > 8192 || h > 8192)
        return bzn_fail(err, BZN_ERR_ARG, "invalid size '%s' (\"352\" or \"512x384\": width x height)", s);
    *width = (int)w;
    *height = (int)h;
    return BZN_OK;
}

const char *bzn_ctx_backend(const bzn_ctx *c) { return c ? c->backend->name : NULL; }
const char *bzn_ctx_backend_detail(const bzn_ctx *c) {
    return c && c->backend->detail ? c->backend->detail : "";
}

int bzn_ctx_int8_handoffs(const bzn_ctx *c) {
    int n = 0;
    for (int i = 0; c && c->q && i < c->g.n_nodes; i++) n += c->q[i].hand_to != 0;
    return n;
}

/* ---- running ------------------------------------------------------------------------ */

/* Floats from one frame to the next of a tensor of `per` floats per frame on the host side:
 * the arena's own stride where the backend's memory is the host's, else packed copies. */
static size_t host_stride(const bzn_ctx *c, size_t per) { return c->backend->host_memory ? c->frame_floats : per; }

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

/* The outputs on the host (a download where the backend's memory is not the host's), and a
 * check that they are finite: NaN or infinity would silently become a class (argmax over NaN
 * picks the first class, neoplastic), so such a run fails instead. */
static bzn_status collect_outputs(bzn_ctx *c, int frames, bzn_error *err) {
    const int bufs[2] = {c->g.main_buf, c->g.aux_buf};
    bzn_backend *be = c->backend;
    /* a backend that post-processes: the check on the device, the logits left there */
    c->outputs_on_device = !be->host_memory && be->count_nonfinite && be->class_map;
    for (int k = 0; k < 2; k++) {
        if (bufs[k] < 0) continue;
        const bzn_buffer *b = &c->g.bufs[bufs[k]];
        const size_t per = (size_t)b->c * b->h * b->w;
        for (int f = 0; !be->host_memory && !c->outputs_on_device && f < frames; f++) {
            bzn_status s = be->download(be, c->host_out[k] + f * per, buf_ptr(c, bufs[k]) + f * c->frame_floats,
                                        per * sizeof(float), err);
            if (s != BZN_OK) return s;
        }
        for (int f = 0; f < frames; f++) {
            size_t bad;
            if (c->outputs_on_device) {
                bzn_status s = be->count_nonfinite(be, buf_ptr(c, bufs[k]) + f * c->frame_floats, per, &bad, err);
                if (s != BZN_OK) return s;
            } else {
                bad = count_nonfinite(c->host_out[k] + (size_t)f * host_stride(c, per), per);
            }
            if (bad)
                return bzn_fail(err, BZN_ERR_NONFINITE,
                                "the %s head's output is not finite (%zu of %zu values of frame %d are NaN or infinite): "
                                "the weights are out of range for this input; no class map can be made",
                                k ? "auxiliary" : "main", bad, per, f);
        }
    }
    return BZN_OK;
}

/* The plan on the backend: whole (its run), or op by op; with profiling, op by op between
 * the backend's timer marks. */
static bzn_status execute(bzn_ctx *c, bzn_error *err) {
    bzn_backend *be = c->backend;
    const int timed = c->profiling && be->mark && be->elapsed_ms;
    bzn_status s = BZN_OK;
    if (be->run && !timed) {
        s = be->run(be, &c->plan, err);
    } else {
        if (timed) s = be->mark(be, 0, err);
        for (int k = 0; s == BZN_OK && k < c->plan.n_ops; k++) {
            const bzn_op *op = &c->plan.ops[k];
            switch (op->kind) {
            case BZN_OP_CONV: s = be->conv(be, &op->u.conv, c->plan.scratch, err); break;
            case BZN_OP_MAXPOOL: s = be->maxpool(be, &op->u.pool, err); break;
            case BZN_OP_UPSAMPLE: s = be->upsample(be, &op->u.upsample, err); break;
            }
            if (s == BZN_OK && timed) s = be->mark(be, k + 1, err);
        }
    }
    if (s == BZN_OK && be->synchronize) s = be->synchronize(be, err);
    for (int k = 0; s == BZN_OK && timed && k < c->plan.n_ops; k++) {
        double ms;
        s = be->elapsed_ms(be, k, k + 1, &ms, err);
        c->layer_ms[c->plan.ops[k].node] += ms;
    }
    if (s == BZN_OK && timed) c->profiled_runs++;
    return s;
}

/* where frame f of the input tensor is written on the host */
static float *host_frame(const bzn_ctx *c, int f) {
    return c->host_input + (size_t)f * host_stride(c, (size_t)3 * c->g.height * c->g.width);
}

/* The input tensor of `frames` frames is in host_input (or, input_on_device, already in the
 * backend's memory): upload it, run, collect. A failure is kept, so that later output calls
 * can say why there is no result. */
static bzn_status run_frames(bzn_ctx *c, int frames, bzn_error *err) {
    bzn_status s = BZN_OK;
    const size_t in_bytes = (size_t)3 * c->g.height * c->g.width * sizeof(float);
    for (int f = 0; s == BZN_OK && !c->backend->host_memory && !c->input_on_device && f < frames; f++)
        s = c->backend->upload(c->backend, buf_ptr(c, c->g.input_buf) + f * c->frame_floats,
                               host_frame(c, f), in_bytes, &c->run_error);
    if (s == BZN_OK) s = execute(c, &c->run_error);
    if (s == BZN_OK) c->frames_computed = frames;
    if (s == BZN_OK) s = collect_outputs(c, frames, &c->run_error);
    if (s != BZN_OK && c->run_error.status != s) bzn_fail(&c->run_error, s, "%s", bzn_status_name(s));
    c->frames_run = s == BZN_OK ? frames : 0;
    if (s != BZN_OK && err) *err = c->run_error;
    return s;
}


static void begin_run(bzn_ctx *c) {
    c->frames_run = c->frames_computed = 0; /* until this run completes: never answer with an older frame */
    c->input_on_device = 0;
    c->run_error.status = BZN_OK;
    c->run_error.msg[0] = '\0';
}

bzn_status bzn_run_tensor(bzn_ctx *c, const float *input, bzn_error *err) {
    if (!c || !input) return bzn_fail(err, BZN_ERR_ARG, "NULL context or input");
    begin_run(c);
    const size_t per = (size_t)3 * c->g.height * c->g.width;
    for (int f = 0; f < c->opt.batch; f++) memcpy(host_frame(c, f), input + f * per, per * sizeof(float));
    return run_frames(c, c->opt.batch, err);
}

/* torchvision's ToTensor then Normalize, (v / 255 - mean) / std, for each of the 256 values
 * of each channel (the table's floats are the expression's, so looking them up changes
 * nothing) */
static void make_norm_table(bzn_ctx *c) {
    const bzn_wf_config *cfg = &c->model->wf.config;
    for (int ch = 0; ch < 3; ch++)
        for (int v = 0; v < 256; v++) c->norm[ch][v] = ((float)v / 255.0f - cfg->mean[ch]) / cfg->std[ch];
}

typedef struct {
    const bzn_ctx *c;
    float *x;
    size_t plane;
    int parts;
} norm_job;

static void norm_part(void *arg, int part) {
    const norm_job *j = arg;
    int lo, hi;
    bzn_split((int)j->plane, j->parts, part, &lo, &hi);
    const uint8_t *rgb = j->c->resized;
    float *r = j->x, *g = r + j->plane, *b = g + j->plane;
    for (int i = lo; i < hi; i++) {
        r[i] = j->c->norm[0][rgb[3 * i]];
        g[i] = j->c->norm[1][rgb[3 * i + 1]];
        b[i] = j->c->norm[2][rgb[3 * i + 2]];
    }
}

/* the frame resized (PIL's bilinear), then normalised, HWC -> CHW */
static bzn_status preprocess(bzn_ctx *c, const bzn_frame *fr, float *x, bzn_error *err) {
    const int H = c->g.height, W = c->g.width;
    bzn_status s = bzn_resizer_run(c->resizer, fr->rgb, fr->width, fr->height, fr->stride, 3, c->resized, W, H,
                                   &c->par, err);
    if (s != BZN_OK) return s;
    norm_job j = {c, x, (size_t)H * W, c->par.threads > 1 ? 4 * c->par.threads : 1};
    bzn_parallel_for(&c->par, j.parts, norm_part, &j);
    return BZN_OK;
}

bzn_status bzn_run_rgb_batch(bzn_ctx *c, const bzn_frame *frames, int n, bzn_error *err) {
    if (!c || !frames) return bzn_fail(err, BZN_ERR_ARG, "NULL context or frames");
    begin_run(c);
    if (n < 1 || n > c->opt.batch)
        return bzn_fail(err, BZN_ERR_ARG, "%d frames for a context of batch %d (1 to %d)", n, c->opt.batch, c->opt.batch);
    for (int f = 0; f < n; f++) {
        const bzn_frame *fr = &frames[f];
        if (!fr->rgb || fr->width < 1 || fr->height < 1 || (int64_t)fr->stride < 3 * (int64_t)fr->width)
            return bzn_fail(err, BZN_ERR_ARG, "invalid frame geometry %dx%d, stride %d%s", fr->width, fr->height,
                            fr->stride, fr->rgb ? "" : " (NULL pixels)");
    }
    bzn_backend *be = c->backend;
    const bzn_wf_config *cfg = &c->model->wf.config;
    for (int f = 0; f < n; f++) {
        bzn_status s;
        if (be->preprocess) { /* only the frame's uint8 pixels cross */
            s = be->preprocess(be, &frames[f], cfg->mean, cfg->std, buf_ptr(c, c->g.input_buf) + f * c->frame_floats,
                               c->g.height, c->g.width, &c->run_error);
            if (s != BZN_OK && err) *err = c->run_error;
        } else {
            s = preprocess(c, &frames[f], host_frame(c, f), err);
        }
        if (s != BZN_OK) return s;
    }
    c->input_on_device = be->preprocess != NULL;
    return run_frames(c, n, err);
}

bzn_status bzn_run_rgb(bzn_ctx *c, const uint8_t *rgb, int width, int height, int stride, bzn_error *err) {
    if (!c || !rgb) return bzn_fail(err, BZN_ERR_ARG, "NULL context or frame");
    const bzn_frame f = {rgb, width, height, stride};
    return bzn_run_rgb_batch(c, &f, 1, err);
}

/* ---- outputs -------------------------------------------------------------------------- */

static bzn_status no_result(const bzn_ctx *c, int frame, bzn_error *err) {
    if (c->run_error.status != BZN_OK)
        return bzn_fail(err, c->run_error.status, "the last run failed: %s", c->run_error.msg);
    if (c->frames_run > 0)
        return bzn_fail(err, BZN_ERR_ARG, "frame %d: the last run had %d frame%s", frame, c->frames_run,
                        c->frames_run == 1 ? "" : "s");
    return bzn_fail(err, BZN_ERR_ARG, "no frame has been run on this context yet");
}

bzn_status bzn_logits_at(const bzn_ctx *c, int frame, bzn_output which, const float **data, int *channels, int *height,
                         int *width, bzn_error *err) {
    if (!c || !data) return bzn_fail(err, BZN_ERR_ARG, "NULL context or output pointer");
    if (frame < 0 || frame >= c->frames_run) return no_result(c, frame, err);
    const int k = which == BZN_OUT_AUX;
    const int buf = k ? c->g.aux_buf : c->g.main_buf;
    if (buf < 0) return bzn_fail(err, BZN_ERR_ARG, "the auxiliary head was not run (model without it, or run_aux = 0)");
    const bzn_buffer *b = &c->g.bufs[buf];
    if (c->outputs_on_device) { /* first asked for since the run: fetched now, every frame of both */
        bzn_ctx *mc = (bzn_ctx *)c; /* the copies are a cache of the device's outputs */
        for (int kk = 0; kk < 2; kk++) {
            const int bk = kk ? c->g.aux_buf : c->g.main_buf;
            if (bk < 0) continue;
            const size_t per = (size_t)c->g.bufs[bk].c * c->g.bufs[bk].h * c->g.bufs[bk].w;
            for (int f = 0; f < c->frames_run; f++) {
                bzn_status s = c->backend->download(c->backend, c->host_out[kk] + f * per,
                                                    buf_ptr(c, bk) + f * c->frame_floats, per * sizeof(float), err);
                if (s != BZN_OK) return s;
            }
        }
        mc->outputs_on_device = 0;
    }
    *data = c->host_out[k] + (size_t)frame * host_stride(c, (size_t)b->c * b->h * b->w);
    if (channels) *channels = b->c;
    if (height) *height = c->g.height;
    if (width) *width = c->g.width;
    return BZN_OK;
}

bzn_status bzn_logits(const bzn_ctx *c, bzn_output which, const float **data, int *channels, int *height, int *width,
                      bzn_error *err) {
    return bzn_logits_at(c, 0, which, data, channels, height, width, err);
}

bzn_status bzn_probabilities_at(const bzn_ctx *c, int frame, bzn_output which, float *out, size_t count,
                                bzn_error *err) {
    const float *x;
    int C, H, W;
    bzn_status s = bzn_logits_at(c, frame, which, &x, &C, &H, &W, err);
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

bzn_status bzn_probabilities(const bzn_ctx *c, bzn_output which, float *out, size_t count, bzn_error *err) {
    return bzn_probabilities_at(c, 0, which, out, count, err);
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

/* One part of the output rows of a class map. */
typedef struct {
    const float *x;
    size_t plane;
    int C, H, W, width, height, parts;
    const int *rows, *cols; /* nearest_index's */
    uint8_t *out;
} classmap_job;

static void classmap_part(void *arg, int part) {
    const classmap_job *j = arg;
    int lo, hi;
    bzn_split(j->height, j->parts, part, &lo, &hi);
    uint8_t row[MAX_SIDE];
    int have = -1; /* the source row in `row` */
    for (int y = lo; y < hi; y++) {
        const int iy = j->rows[y];
        uint8_t *o = j->out + (size_t)y * j->width;
        if (iy == have && y > lo) { /* the same source row as the row above: a copy of it */
            memcpy(o, o - j->width, (size_t)j->width);
            continue;
        }
        if (iy != have) { /* each source row is classified once for the output rows that use it */
            for (int i = 0; i < j->W; i++) row[i] = classify(j->x, j->plane, j->C, (size_t)iy * j->W + i);
            have = iy;
        }
        for (int xx = 0; xx < j->width; xx++) o[xx] = row[j->cols[xx]];
    }
}

/* Nearest neighbour exactly as PIL's Image.resize(NEAREST), the protocol's reference: the
 * source coordinate starts at half a step and advances by in / out, a running sum in double
 * as PIL adds it, clamped to the last pixel. */
static void nearest_index(int in, int out, int *idx) {
    const double step = (double)in / out;
    double f = step / 2;
    for (int i = 0; i < out; i++, f += step) {
        const int v = (int)f;
        idx[i] = v > in - 1 ? in - 1 : v;
    }
}

bzn_status bzn_class_map_at(const bzn_ctx *c, int frame, uint8_t *out, int width, int height, bzn_error *err) {
    const float *x;
    int C, H, W;
    if (c && c->outputs_on_device) { /* the logits where the backend left them */
        if (frame < 0 || frame >= c->frames_run) return no_result(c, frame, err);
        x = buf_ptr(c, c->g.main_buf) + (size_t)frame * c->frame_floats;
        C = c->g.bufs[c->g.main_buf].c, H = c->g.height, W = c->g.width;
    } else {
        bzn_status s = bzn_logits_at(c, frame, BZN_OUT_MAIN, &x, &C, &H, &W, err);
        if (s != BZN_OK) return s;
    }
    if (!out || width < 1 || height < 1 || width > (1 << 16) || height > (1 << 16))
        return bzn_fail(err, BZN_ERR_ARG, "invalid class map size %dx%d", width, height);
    bzn_ctx *mc = (bzn_ctx *)c; /* the index tables are scratch, grown to the largest map asked for */
    const size_t need = (size_t)width + height;
    if (need > c->nn_cap) {
        int *p = realloc(c->nn_index, need * sizeof *p);
        if (!p) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
        mc->nn_index = p;
        mc->nn_cap = need;
    }
    int *rows = c->nn_index, *cols = c->nn_index + height;
    nearest_index(H, height, rows);
    nearest_index(W, width, cols);
    if (c->outputs_on_device) /* on the backend: only the class map crosses */
        return c->backend->class_map(c->backend, x, C, H, W, rows, cols, width, height, out, err);
    /* the rows split over the backend's threads */
    classmap_job j = {x, (size_t)H * W, C, H, W, width, height, c->par.threads, rows, cols, out};
    bzn_parallel_for(&c->par, j.parts, classmap_part, &j);
    return BZN_OK;
}

bzn_status bzn_class_map(const bzn_ctx *c, uint8_t *out, int width, int height, bzn_error *err) {
    return bzn_class_map_at(c, 0, out, width, height, err);
}

bzn_status bzn_polyp_map_at(const bzn_ctx *c, int frame, uint8_t *out, int width, int height, bzn_error *err) {
    const float *x;
    int C, H, W;
    bzn_status s = bzn_logits_at(c, frame, BZN_OUT_AUX, &x, &C, &H, &W, err);
    if (s != BZN_OK) return s;
    if (!out || width < 1 || height < 1) return bzn_fail(err, BZN_ERR_ARG, "invalid polyp map size");
    for (size_t i = 0; i < (size_t)H * W; i++) c->aux8[i] = (uint8_t)(1.0f / (1.0f + expf(-x[i])) * 255.0f + 0.5f);
    return bzn_resize_bilinear(c->aux8, W, H, W, 1, out, width, height, err);
}

bzn_status bzn_polyp_map(const bzn_ctx *c, uint8_t *out, int width, int height, bzn_error *err) {
    return bzn_polyp_map_at(c, 0, out, width, height, err);
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
    info->precision = c->q && c->q[i].int8 ? BZN_PRECISION_INT8
                      : c->opt.precision == BZN_PRECISION_INT8 ? BZN_PRECISION_FP32 /* kept in FP32 */
                                                               : c->opt.precision;
    info->int8_output = c->q && c->q[i].hand_to != 0;
    return BZN_OK;
}

bzn_status bzn_ctx_layer_output_at(const bzn_ctx *c, int frame, int i, float *out, size_t count, bzn_error *err) {
    if (!c || i < 0 || i >= c->g.n_nodes) return bzn_fail(err, BZN_ERR_ARG, "no layer %d", i);
    const bzn_node *n = &c->g.nodes[i];
    const size_t plane = (size_t)n->out.h * n->out.w;
    if (!out || count < (size_t)n->out.c * plane)
        return bzn_fail(err, BZN_ERR_ARG, "output buffer too small for '%s'", n->name);
    /* a run whose output was not finite still left every layer's output to look at, to find
       where the NaN or infinity arose */
    if (frame < 0 || frame >= c->frames_computed) return no_result(c, frame, err);
    for (int s = 0; s < n->out.n; s++)
        if (!c->opt.keep_intermediates && !c->g.bufs[n->out.seg[s].buf].pinned)
            return bzn_fail(err, BZN_ERR_ARG,
                            "'%s' shares memory with later layers: create the context with keep_intermediates",
                            n->name);
    for (int s = 0; s < n->out.n; s++) {
        const size_t bytes = (size_t)n->out.seg[s].c * plane * sizeof(float);
        bzn_status st = c->backend->download(c->backend, out, slice_ptr(c, &n->out.seg[s]) + frame * c->frame_floats,
                                             bytes, err);
        if (st != BZN_OK) return st;
        out += (size_t)n->out.seg[s].c * plane;
    }
    return BZN_OK;
}

bzn_status bzn_ctx_layer_output(const bzn_ctx *c, int i, float *out, size_t count, bzn_error *err) {
    return bzn_ctx_layer_output_at(c, 0, i, out, count, err);
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

const float *bzn_ctx_input(const bzn_ctx *c) {
    if (!c || c->frames_computed == 0) return NULL;
    if (c->input_on_device && !c->backend->host_memory) { /* made by the backend: fetched when asked for */
        bzn_ctx *m = (bzn_ctx *)c; /* a cache of the backend's tensor: the context's state does not change */
        if (m->backend->download(m->backend, m->host_input, buf_ptr(c, c->g.input_buf),
                                 (size_t)3 * c->g.height * c->g.width * sizeof(float), NULL) != BZN_OK)
            return NULL;
        m->input_on_device = 0;
    }
    return c->host_input;
}
