/*
 * test_engine.c - the library API and the engine's invariants: argument checking with clear
 * messages, the activation memory plan (no two live tensors share bytes, and sharing does
 * happen), determinism, contexts used from several threads, and model loading from memory.
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blazeneo.h"
#include "graph.h"
#include "model.h"
#include "network.h"
#include "wfile.h"
#include "testutil.h"

static bzn_model *model;

static const char *shipped(void) {
    return tu_path(tu_env("BZN_SOURCE_DIR"), "models/blazeneo-dha-neopolyp-small-f16.bzn");
}

static float *random_input(int h, int w, unsigned seed) {
    float *x = malloc((size_t)3 * h * w * sizeof *x);
    for (size_t i = 0; i < (size_t)3 * h * w; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / (float)(1u << 24) * 4.0f - 2.0f;
    }
    return x;
}

START_TEST(bad_sizes) {
    static const int sizes[][2] = {{33, 33}, {0, 352}, {352, 16}, {8224, 352}, {-32, 64}, {352, 100}};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        bzn_ctx_options o = bzn_ctx_default_options(model);
        o.height = sizes[i][0];
        o.width = sizes[i][1];
        bzn_ctx *c = (bzn_ctx *)1;
        bzn_error e = {0};
        ck_assert_int_eq(bzn_ctx_create(model, &o, &c, &e), BZN_ERR_UNSUPPORTED);
        ck_assert_ptr_null(c);
        ck_assert_ptr_nonnull(strstr(e.msg, "multiples of 32"));
    }
    bzn_ctx_options o = bzn_ctx_default_options(model);
    o.backend = "no-such-backend";
    bzn_ctx *c;
    bzn_error e;
    ck_assert_int_eq(bzn_ctx_create(model, &o, &c, &e), BZN_ERR_UNSUPPORTED);
    ck_assert_int_eq(bzn_ctx_create(NULL, &o, &c, &e), BZN_ERR_ARG);
    for (int b = 0; b < 2; b++) /* thread counts are checked whatever the backend */
        for (int t = 0; t < 2; t++) {
            o = bzn_ctx_default_options(model);
            o.backend = b ? "ref" : "cpu";
            o.threads = t ? 100000 : -1;
            ck_assert_int_eq(bzn_ctx_create(model, &o, &c, &e), BZN_ERR_ARG);
            ck_assert_ptr_nonnull(strstr(e.msg, "thread count"));
        }
    bzn_model *none;
    ck_assert_int_eq(bzn_model_open(NULL, &none, &e), BZN_ERR_ARG);
}
END_TEST

START_TEST(misuse_before_and_after_run) {
    bzn_ctx_options o = bzn_ctx_default_options(model);
    o.height = 64;
    o.width = 96;
    bzn_ctx *c;
    bzn_error e;
    ck_assert_int_eq(bzn_ctx_create(model, &o, &c, &e), BZN_OK);
    const float *logits;
    int C, H, W;
    ck_assert_int_eq(bzn_logits(c, BZN_OUT_MAIN, &logits, &C, &H, &W, &e), BZN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "no frame"));
    uint8_t px[3 * 10 * 10] = {0};
    ck_assert_int_eq(bzn_run_rgb(c, px, 10, 10, 20, &e), BZN_ERR_ARG); /* stride too small */
    ck_assert_int_eq(bzn_run_rgb(c, px, 0, 10, 30, &e), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_run_rgb(c, NULL, 10, 10, 30, &e), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_run_rgb(c, px, 10, 10, 30, &e), BZN_OK);
    ck_assert_int_eq(bzn_logits(c, BZN_OUT_MAIN, &logits, &C, &H, &W, &e), BZN_OK);
    ck_assert_int_eq(C, 3);
    ck_assert_int_eq(H, 64);
    ck_assert_int_eq(W, 96);
    /* the aux head was not asked for */
    ck_assert_int_eq(bzn_logits(c, BZN_OUT_AUX, &logits, &C, &H, &W, &e), BZN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "auxiliary"));
    /* intermediate tensors share memory unless kept */
    float *buf = malloc(64 * 96 * 64 * sizeof *buf);
    ck_assert_int_eq(bzn_ctx_layer_output(c, 3, buf, 64 * 96 * 64, &e), BZN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "keep_intermediates"));
    ck_assert_int_eq(bzn_ctx_layer_output(c, 0, buf, 1, &e), BZN_ERR_ARG); /* too small */
    ck_assert_int_eq(bzn_ctx_layer_output(c, 100000, buf, 1, &e), BZN_ERR_ARG);
    float probs[3 * 64 * 96];
    ck_assert_int_eq(bzn_probabilities(c, BZN_OUT_MAIN, probs, 10, &e), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_probabilities(c, BZN_OUT_MAIN, probs, sizeof probs / sizeof *probs, &e), BZN_OK);
    for (int i = 0; i < 64 * 96; i++) {
        float s = probs[i] + probs[64 * 96 + i] + probs[2 * 64 * 96 + i];
        ck_assert_float_eq_tol(s, 1.0f, 1e-5f);
    }
    uint8_t cls[50 * 70];
    ck_assert_int_eq(bzn_class_map(c, cls, 70, 50, &e), BZN_OK);
    for (int i = 0; i < 50 * 70; i++) ck_assert_uint_le(cls[i], 2);
    ck_assert_int_eq(bzn_class_map(c, cls, 0, 50, &e), BZN_ERR_ARG);
    free(buf);
    bzn_ctx_free(c);
}
END_TEST

/* A model whose output overflows (head weights of 1e38: finite, so every loader check passes)
 * gives logits that are inf and NaN; the run must fail with BZN_ERR_NONFINITE rather than let
 * a class map colour the whole frame neoplastic, and the CLI must exit 1 with the reason. */
START_TEST(nonfinite_output_is_an_error) {
    bzn_wfile wf;
    bzn_error e;
    ck_assert_int_eq(bzn_wfile_open(shipped(), &wf, &e), BZN_OK);
    bzn_wf_input *in = calloc((size_t)wf.count, sizeof *in);
    float *huge = NULL;
    for (int i = 0; i < wf.count; i++) {
        const bzn_wf_tensor *t = &wf.tensors[i];
        in[i].name = t->name;
        in[i].dtype = t->dtype;
        in[i].ndim = t->ndim;
        memcpy(in[i].shape, t->shape, sizeof in[i].shape);
        in[i].data = t->data;
        in[i].scale_index = t->scale_index;
        if (!strcmp(t->name, "head_2.head.conv.weight")) {
            const size_t n = (size_t)bzn_wf_numel(t->ndim, t->shape);
            huge = malloc(n * sizeof *huge);
            for (size_t k = 0; k < n; k++) huge[k] = (k % 2 ? -1e38f : 1e38f);
            in[i].dtype = BZN_DT_F32;
            in[i].data = huge;
        }
    }
    ck_assert_ptr_nonnull(huge);
    char *dir = tu_tmpdir("nonfinite");
    const char *path = tu_path(dir, "huge-head.bzn");
    ck_assert_int_eq(bzn_wfile_write(path, &wf.config, in, wf.count, &e), BZN_OK);
    free(huge);
    free(in);
    bzn_wfile_close(&wf);

    bzn_model *m;
    ck_assert_int_eq(bzn_model_open(path, &m, &e), BZN_OK);
    bzn_ctx_options o = bzn_ctx_default_options(m);
    o.height = o.width = 64;
    bzn_ctx *c;
    ck_assert_int_eq(bzn_ctx_create(m, &o, &c, &e), BZN_OK);
    uint8_t px[3 * 40 * 30];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 37);
    ck_assert_int_eq(bzn_run_rgb(c, px, 40, 30, 120, &e), BZN_ERR_NONFINITE);
    ck_assert_ptr_nonnull(strstr(e.msg, "not finite"));
    uint8_t cls[30 * 40];
    ck_assert_int_eq(bzn_class_map(c, cls, 40, 30, &e), BZN_ERR_NONFINITE);
    ck_assert_ptr_nonnull(strstr(e.msg, "last run failed"));
    const float *logits;
    ck_assert_int_eq(bzn_logits(c, BZN_OUT_MAIN, &logits, NULL, NULL, NULL, &e), BZN_ERR_NONFINITE);
    float *x = random_input(64, 64, 7);
    ck_assert_int_eq(bzn_run_tensor(c, x, &e), BZN_ERR_NONFINITE);
    /* the layers can still be inspected, to find where the overflow starts */
    int last = bzn_ctx_num_layers(c) - 1;
    bzn_layer_info li;
    ck_assert_int_eq(bzn_ctx_layer(c, last, &li), BZN_OK);
    ck_assert_str_eq(li.name, "upsample_2");
    float head[3 * 64 * 64];
    ck_assert_int_eq(bzn_ctx_layer_output(c, last, head, sizeof head / sizeof *head, &e), BZN_OK);
    ck_assert(!isfinite(head[0]) || !isfinite(head[1]));
    free(x);
    bzn_ctx_free(c);
    bzn_model_free(m);

    char out[8192];
    const int rc = tu_cli(dir, out, sizeof out,
                          "segment -m huge-head.bzn -s 64 -o masks \"$BZN_SOURCE_DIR/samples/16d4ca6160127cd1d5ff99c267599fc4.jpeg\"");
    ck_assert_msg(rc == 1, "segment exited %d: %s", rc, out);
    ck_assert_ptr_nonnull(strstr(out, "not finite"));
    ck_assert_int_eq(tu_run("test -e '%s/masks/16d4ca6160127cd1d5ff99c267599fc4.png'", dir), 1);
    free(dir);
}
END_TEST

/* No two buffers that are alive at the same time share a byte; liveness does save memory. */
START_TEST(memory_plan) {
    static const int sizes[][2] = {{352, 352}, {64, 96}, {256, 512}};
    for (size_t s = 0; s < 3; s++) {
        for (int keep = 0; keep < 2; keep++) {
            bzn_graph g;
            bzn_error e;
            ck_assert_int_eq(bzn_network_build(&model->wf.config, sizes[s][0], sizes[s][1], 1, &g, &e), BZN_OK);
            size_t arena = bzn_graph_plan(&g, keep), naive = 0;
            for (int i = 0; i < g.n_bufs; i++) {
                const bzn_buffer *a = &g.bufs[i];
                size_t na = (size_t)a->c * a->h * a->w;
                naive += na;
                ck_assert(a->offset + na <= arena);
                ck_assert_int_eq(a->offset % 16, 0);
                for (int j = i + 1; j < g.n_bufs; j++) {
                    const bzn_buffer *b = &g.bufs[j];
                    size_t nb = (size_t)b->c * b->h * b->w;
                    int live_together = !(a->last < b->first || b->last < a->first);
                    int share = a->offset < b->offset + nb && b->offset < a->offset + na;
                    ck_assert_msg(!(live_together && share), "buffers %d and %d overlap while both alive", i, j);
                }
            }
            if (!keep) ck_assert_msg(arena * 3 < naive, "arena %zu floats vs %zu unplanned", arena, naive);
            if (s == 0 && !keep)
                fprintf(stderr, "  352x352: arena %.1f MB, %.1f MB without sharing\n", arena * 4 / 1e6, naive * 4 / 1e6);
            bzn_graph_free(&g);
        }
    }
}
END_TEST

typedef struct {
    const float *input;
    float *logits;
    int h, w;
    const char *backend;
    int keep, threads;
} job;

static void *run_job(void *arg) {
    job *j = arg;
    bzn_ctx_options o = bzn_ctx_default_options(model);
    o.height = j->h;
    o.width = j->w;
    o.backend = j->backend;
    o.keep_intermediates = j->keep;
    o.threads = j->threads;
    bzn_ctx *c;
    if (bzn_ctx_create(model, &o, &c, NULL) != BZN_OK) return NULL;
    const float *x;
    int C, H, W;
    for (int rep = 0; rep < 2; rep++) /* a second run must not depend on the first */
        if (bzn_run_tensor(c, j->input, NULL) != BZN_OK || bzn_logits(c, BZN_OUT_MAIN, &x, &C, &H, &W, NULL) != BZN_OK) {
            bzn_ctx_free(c);
            return NULL;
        }
    memcpy(j->logits, x, (size_t)C * H * W * sizeof *x);
    bzn_ctx_free(c);
    return j;
}

/* The same frame gives the same logits: in any thread, kept or shared memory, twice in a row
 * (bit for bit with the same thread count). */
START_TEST(determinism_and_threads) {
    const int h = 64, w = 128;
    const size_t n = (size_t)3 * h * w;
    float *in = random_input(h, w, 7);
    job base = {in, malloc(n * sizeof(float)), h, w, "cpu", 0, 1};
    ck_assert_ptr_nonnull(run_job(&base));
    job jobs[3] = {{in, malloc(n * sizeof(float)), h, w, "cpu", 1, 1},
                   {in, malloc(n * sizeof(float)), h, w, "cpu", 0, 1},
                   {in, malloc(n * sizeof(float)), h, w, "cpu", 0, 2}};
    pthread_t t[3];
    for (int i = 0; i < 3; i++) ck_assert_int_eq(pthread_create(&t[i], NULL, run_job, &jobs[i]), 0);
    for (int i = 0; i < 3; i++) {
        void *r;
        pthread_join(t[i], &r);
        ck_assert_ptr_nonnull(r);
        if (jobs[i].threads == base.threads) { /* same work split: bit for bit */
            ck_assert_msg(memcmp(jobs[i].logits, base.logits, n * sizeof(float)) == 0, "job %d differs", i);
        } else { /* another split of the GEMM columns may take other kernel paths */
            for (size_t k = 0; k < n; k++)
                ck_assert_msg(fabsf(jobs[i].logits[k] - base.logits[k]) <= 1e-4f * (1 + fabsf(base.logits[k])),
                              "job %d differs at %zu", i, k);
        }
        free(jobs[i].logits);
    }
    free(base.logits);
    free(in);
}
END_TEST

/* ---- nothing allocated per frame -------------------------------------------------------
 * test_engine is linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc (tests/CMakeLists.txt):
 * every allocation of the library (linked statically into this test) is counted here. */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
static volatile long allocations;
void *__wrap_malloc(size_t n) {
    __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED);
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t m) {
    __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED);
    return __real_calloc(n, m);
}
void *__wrap_realloc(void *p, size_t n) {
    __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED);
    return __real_realloc(p, n);
}

START_TEST(no_allocation_per_frame) {
    const int w = 200, h = 150; /* a frame of its own size: the resize is part of the run */
    uint8_t *frame = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++) frame[i] = (uint8_t)(i * 7);
    for (int precision = 0; precision < 2; precision++) {
        bzn_ctx_options o = bzn_ctx_default_options(model);
        o.height = 64;
        o.width = 96;
        o.threads = 2;
        bzn_calib_table *t = NULL;
        bzn_error e;
        if (precision == 1) { /* scales from one calibration frame */
            bzn_ctx_options k = o;
            k.keep_intermediates = 1;
            bzn_ctx *kc;
            bzn_calibrator *cal;
            ck_assert_int_eq(bzn_ctx_create(model, &k, &kc, &e), BZN_OK);
            ck_assert_int_eq(bzn_run_rgb(kc, frame, w, h, w * 3, &e), BZN_OK);
            ck_assert_int_eq(bzn_calibrator_create(kc, &cal, &e), BZN_OK);
            ck_assert_int_eq(bzn_calibrator_observe(cal, kc, &e), BZN_OK);
            ck_assert_int_eq(bzn_calibrator_compute(cal, BZN_CALIB_MINMAX, 0, &t, &e), BZN_OK);
            bzn_calibrator_free(cal);
            bzn_ctx_free(kc);
            o.precision = BZN_PRECISION_INT8;
            o.scales = t->scales;
            o.n_scales = t->count;
        }
        bzn_ctx *c;
        ck_assert_msg(bzn_ctx_create(model, &o, &c, &e) == BZN_OK, "%s", e.msg);
        ck_assert_int_eq(bzn_run_rgb(c, frame, w, h, w * 3, &e), BZN_OK); /* first frame: plans the resize */
        /* (no ck_assert inside the counted loop: Check's bookkeeping allocates) */
        const long before = allocations;
        int failures = 0;
        for (int i = 0; i < 3; i++) failures += bzn_run_rgb(c, frame, w, h, w * 3, &e) != BZN_OK;
        const long after = allocations;
        ck_assert_int_eq(failures, 0);
        ck_assert_msg(after == before, "%s: %ld allocations in 3 frames", precision ? "int8" : "fp32",
                      after - before);
        bzn_ctx_free(c);
        bzn_calib_table_free(t);
    }
    free(frame);
}
END_TEST

/* INT8 hand-offs (a convolution's output passed on as int8) change nothing: the logits are
 * bit for bit those of the same context with every tensor kept float (keep_intermediates),
 * on both backends, main and auxiliary heads */
START_TEST(int8_handoffs_exact) {
    const int h = 64, w = 96;
    float *x = random_input(h, w, 7);
    bzn_error e;
    bzn_ctx_options o = bzn_ctx_default_options(model);
    o.height = h;
    o.width = w;
    o.run_aux = 1;
    o.keep_intermediates = 1;
    bzn_ctx *c;
    bzn_calibrator *cal;
    bzn_calib_table *t;
    ck_assert_int_eq(bzn_ctx_create(model, &o, &c, &e), BZN_OK);
    ck_assert_int_eq(bzn_run_tensor(c, x, &e), BZN_OK);
    ck_assert_int_eq(bzn_calibrator_create(c, &cal, &e), BZN_OK);
    ck_assert_int_eq(bzn_calibrator_observe(cal, c, &e), BZN_OK);
    ck_assert_int_eq(bzn_calibrator_compute(cal, BZN_CALIB_ENTROPY, 0, &t, &e), BZN_OK);
    bzn_calibrator_free(cal);
    ck_assert_int_eq(bzn_ctx_int8_handoffs(c), 0); /* FP32 */
    bzn_ctx_free(c);
    o.precision = BZN_PRECISION_INT8;
    o.scales = t->scales;
    o.n_scales = t->count;
    o.threads = 2;
    for (int backend = 0; backend < 2; backend++) {
        o.backend = backend ? "ref" : "cpu";
        bzn_ctx *kept, *handed;
        o.keep_intermediates = 1;
        ck_assert_msg(bzn_ctx_create(model, &o, &kept, &e) == BZN_OK, "%s", e.msg);
        o.keep_intermediates = 0;
        ck_assert_msg(bzn_ctx_create(model, &o, &handed, &e) == BZN_OK, "%s", e.msg);
        ck_assert_int_eq(bzn_ctx_int8_handoffs(kept), 0);
        const int n = bzn_ctx_int8_handoffs(handed);
        ck_assert_int_ge(n, 10); /* encoder.base.0, the RFB branches, the aggregation blocks */
        ck_assert_int_eq(bzn_run_tensor(kept, x, &e), BZN_OK);
        ck_assert_int_eq(bzn_run_tensor(handed, x, &e), BZN_OK);
        for (int which = 0; which < 2; which++) {
            const float *a, *b;
            int ca, ha, wa, cb, hb, wb;
            ck_assert_int_eq(bzn_logits(kept, which ? BZN_OUT_AUX : BZN_OUT_MAIN, &a, &ca, &ha, &wa, &e), BZN_OK);
            ck_assert_int_eq(bzn_logits(handed, which ? BZN_OUT_AUX : BZN_OUT_MAIN, &b, &cb, &hb, &wb, &e), BZN_OK);
            ck_assert(ca == cb && ha == hb && wa == wb);
            ck_assert_msg(memcmp(a, b, (size_t)ca * ha * wa * sizeof *a) == 0,
                          "%s backend, %s head: hand-offs changed the logits", backend ? "ref" : "cpu",
                          which ? "aux" : "main");
        }
        fprintf(stderr, "  %s: %d INT8 hand-offs, logits identical\n", backend ? "ref" : "cpu", n);
        bzn_ctx_free(kept);
        bzn_ctx_free(handed);
    }
    bzn_calib_table_free(t);
    free(x);
}
END_TEST

/* The graph's promise that a node's input is never negative (engine/graph.h; kernels rely on
 * it) holds on a real run: every tensor written into the input of a node marked so is >= 0,
 * and most convolutions are marked (all but the first and those after a convolution without
 * activation). */
START_TEST(nonneg_inputs_hold) {
    const int h = 64, w = 96;
    bzn_graph g;
    bzn_error e;
    ck_assert_int_eq(bzn_network_build(&model->wf.config, h, w, 1, &g, &e), BZN_OK);
    unsigned char *nonneg = malloc((size_t)g.n_nodes);
    bzn_graph_nonneg_inputs(&g, nonneg);
    float *x = random_input(h, w, 11);
    bzn_ctx_options o = bzn_ctx_default_options(model);
    o.height = h;
    o.width = w;
    o.keep_intermediates = 1;
    o.run_aux = 1; /* as the graph above */
    bzn_ctx *c;
    ck_assert_int_eq(bzn_ctx_create(model, &o, &c, &e), BZN_OK);
    ck_assert_int_eq(bzn_run_tensor(c, x, &e), BZN_OK);
    ck_assert_int_eq(bzn_ctx_num_layers(c), g.n_nodes);
    int convs = 0, marked = 0, checked = 0;
    for (int i = 0; i < g.n_nodes; i++) {
        const bzn_node *n = &g.nodes[i];
        bzn_layer_info info;
        ck_assert_int_eq(bzn_ctx_layer(c, i, &info), BZN_OK);
        ck_assert_str_eq(info.name, n->name); /* the context's layers are the graph's nodes */
        if (n->kind == BZN_NODE_CONV) {
            convs++;
            marked += nonneg[i];
        }
        if (!nonneg[i]) continue;
        for (int j = 0; j < i; j++) { /* every writer of what node i reads */
            const bzn_node *wr = &g.nodes[j];
            int overlaps = 0;
            for (int s = 0; s < n->in.n; s++)
                for (int t = 0; t < wr->out.n; t++)
                    overlaps |= wr->kind != BZN_NODE_CONCAT && n->in.seg[s].buf == wr->out.seg[t].buf &&
                                n->in.seg[s].c0 < wr->out.seg[t].c0 + wr->out.seg[t].c &&
                                wr->out.seg[t].c0 < n->in.seg[s].c0 + n->in.seg[s].c;
            if (!overlaps) continue;
            const size_t count = (size_t)wr->out.c * wr->out.h * wr->out.w;
            float *y = malloc(count * sizeof *y);
            ck_assert_int_eq(bzn_ctx_layer_output(c, j, y, count, &e), BZN_OK);
            for (size_t k = 0; k < count; k++)
                ck_assert_msg(y[k] >= 0.0f, "%s reads %s, marked >= 0, but it holds %g", n->name, wr->name, y[k]);
            free(y);
            checked++;
        }
    }
    ck_assert_int_eq(nonneg[0], 0); /* the first convolution reads the normalised image */
    ck_assert_int_ge(marked * 4, convs * 3);
    fprintf(stderr, "  %d of %d convolutions read only values >= 0 (%d writers checked)\n", marked, convs, checked);
    bzn_ctx_free(c);
    free(x);
    free(nonneg);
    bzn_graph_free(&g);
}
END_TEST

START_TEST(open_from_memory) {
    size_t len;
    uint8_t *buf = tu_read_file(shipped(), &len);
    bzn_model *m2;
    bzn_error e;
    ck_assert_int_eq(bzn_model_open_memory(buf, len, &m2, &e), BZN_OK);
    free(buf); /* the model keeps its own copy */
    bzn_model_info a, b;
    bzn_model_get_info(model, &a);
    bzn_model_get_info(m2, &b);
    ck_assert_int_eq(memcmp(&a, &b, sizeof a), 0);
    ck_assert_int_eq(a.params_main, 17143324);
    ck_assert_int_eq(a.params_total, 17291708);
    ck_assert_int_eq(a.aggregation, BZN_AGG_DHA);
    bzn_model_free(m2);
    ck_assert_int_eq(bzn_model_open_memory(NULL, 10, &m2, &e), BZN_ERR_ARG);
}
END_TEST

int main(void) {
    bzn_error e;
    if (bzn_model_open(shipped(), &model, &e) != BZN_OK) {
        fprintf(stderr, "test_engine: %s\n", e.msg);
        return 1;
    }
    Suite *s = suite_create("engine");
    TCase *tc = tu_case(s, "api", 600);
    tcase_add_test(tc, bad_sizes);
    tcase_add_test(tc, misuse_before_and_after_run);
    tcase_add_test(tc, memory_plan);
    tcase_add_test(tc, nonneg_inputs_hold);
    tcase_add_test(tc, determinism_and_threads);
    tcase_add_test(tc, open_from_memory);
    tcase_add_test(tc, no_allocation_per_frame);
    tcase_add_test(tc, int8_handoffs_exact);
    tcase_add_test(tc, nonfinite_output_is_an_error);
    const int failed = tu_run_suite(s);
    bzn_model_free(model);
    return failed;
}
