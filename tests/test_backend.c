/*
 * test_backend.c - the engine over its backend interface:
 *   - a backend whose memory is not the host's (a wrapper around the CPU backend that copies
 *     on upload and download, runs whole plans and pre-processes frames itself) gives the CPU
 *     backend's logits bit for bit;
 *   - a fault-injecting wrapper fails each entry point at its first, second and last call:
 *     the backend's words reach the caller of bzn_ctx_create or bzn_run_* with the backend's
 *     status, later output calls say why there is no result, and nothing leaks (ASan);
 *   - batch N equals N batch-1 runs bit for bit, FP32 and INT8, on every registered backend;
 *   - weights prepared once per model and backend: a second context adds nothing.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "blazeneo.h"
#include "context.h"
#include "error.h"
#include "testutil.h"

static bzn_model *model;

/* ---- the wrapper: the CPU backend behind device-style memory, with faults ---------------- */

enum { E_ALLOC, E_UPLOAD, E_DOWNLOAD, E_WEIGHTS, E_PREPARE, E_CONV, E_POOL, E_UPSAMPLE, E_RUN, E_SYNC, E_TIMERS, E_MARK,
       E_ELAPSED, E_PREPROCESS, N_ENTRY };
static const char *entry_name[N_ENTRY] = {"alloc", "upload",  "download", "weights_prepare", "conv_prepare",
                                          "conv",  "maxpool", "upsample", "run",             "synchronize",
                                          "timers", "mark",   "elapsed_ms", "preprocess"};

typedef struct {
    bzn_backend *inner; /* the CPU backend */
    long calls[N_ENTRY];
    int fail_entry;     /* -1: none */
    long fail_at;       /* fail the fail_at-th call (1-based) */
    int use_run;        /* offer run() (whole plans) and preprocess() (frames uploaded as uint8) */
} fault_ctx;

static long counted[N_ENTRY]; /* calls seen by the last wrapper destroyed */

static int hit(bzn_backend *b, int entry, bzn_error *err, bzn_status *s) {
    fault_ctx *f = b->ctx;
    if (++f->calls[entry] == f->fail_at && f->fail_entry == entry) {
        *s = bzn_fail(err, BZN_ERR_BACKEND, "injected failure in %s (call %ld)", entry_name[entry], f->fail_at);
        return 1;
    }
    return 0;
}
#define FAULT(entry)                                                                                                   \
    do {                                                                                                               \
        bzn_status s_;                                                                                                 \
        if (hit(b, entry, err, &s_)) return s_;                                                                        \
    } while (0)
#define INNER(b) (((fault_ctx *)(b)->ctx)->inner)

static bzn_status f_alloc(bzn_backend *b, size_t bytes, void **mem, bzn_error *err) {
    *mem = NULL;
    FAULT(E_ALLOC);
    return bzn_host_alloc(b, bytes, mem, err);
}
static bzn_status f_upload(bzn_backend *b, void *dst, const void *src, size_t bytes, bzn_error *err) {
    FAULT(E_UPLOAD);
    memcpy(dst, src, bytes);
    return BZN_OK;
}
static bzn_status f_download(bzn_backend *b, void *dst, const void *src, size_t bytes, bzn_error *err) {
    FAULT(E_DOWNLOAD);
    memcpy(dst, src, bytes);
    return BZN_OK;
}
static bzn_status f_weights(bzn_backend *b, const bzn_conv_args *a, void **w, size_t *bytes, bzn_error *err) {
    *w = NULL;
    *bytes = 0;
    FAULT(E_WEIGHTS);
    return INNER(b)->weights_prepare(INNER(b), a, w, bytes, err);
}
static bzn_status f_prepare(bzn_backend *b, const bzn_conv_args *a, void **p, bzn_error *err) {
    *p = NULL;
    FAULT(E_PREPARE);
    return INNER(b)->conv_prepare(INNER(b), a, p, err);
}
static void f_release(bzn_backend *b, void *p) { INNER(b)->conv_release(INNER(b), p); }
static size_t f_scratch(bzn_backend *b, const bzn_conv_args *a) { return INNER(b)->conv_scratch(INNER(b), a); }
static size_t f_qin(bzn_backend *b, const bzn_conv_args *a) { return INNER(b)->conv_qin_bytes(INNER(b), a); }
static bzn_status f_conv(bzn_backend *b, const bzn_conv_args *a, void *scratch, bzn_error *err) {
    FAULT(E_CONV);
    return INNER(b)->conv(INNER(b), a, scratch, err);
}
static bzn_status f_pool(bzn_backend *b, const bzn_pool_args *a, bzn_error *err) {
    FAULT(E_POOL);
    return INNER(b)->maxpool(INNER(b), a, err);
}
static bzn_status f_upsample(bzn_backend *b, const bzn_upsample_args *a, bzn_error *err) {
    FAULT(E_UPSAMPLE);
    return INNER(b)->upsample(INNER(b), a, err);
}
static bzn_status f_run(bzn_backend *b, const bzn_plan *p, bzn_error *err) {
    FAULT(E_RUN);
    for (int k = 0; k < p->n_ops; k++) { /* as a GPU would replay a captured graph */
        const bzn_op *op = &p->ops[k];
        bzn_status s = op->kind == BZN_OP_CONV      ? f_conv(b, &op->u.conv, p->scratch, err)
                       : op->kind == BZN_OP_MAXPOOL ? f_pool(b, &op->u.pool, err)
                                                    : f_upsample(b, &op->u.upsample, err);
        if (s != BZN_OK) return s;
    }
    return BZN_OK;
}
static bzn_status f_sync(bzn_backend *b, bzn_error *err) {
    FAULT(E_SYNC);
    return BZN_OK;
}
static bzn_status f_timers(bzn_backend *b, int n, bzn_error *err) {
    FAULT(E_TIMERS);
    return INNER(b)->timers(INNER(b), n, err);
}
static bzn_status f_mark(bzn_backend *b, int i, bzn_error *err) {
    FAULT(E_MARK);
    return INNER(b)->mark(INNER(b), i, err);
}
static bzn_status f_elapsed(bzn_backend *b, int from, int to, double *ms, bzn_error *err) {
    FAULT(E_ELAPSED);
    return INNER(b)->elapsed_ms(INNER(b), from, to, ms, err);
}
/* as a GPU would do it on the device: PIL's resize, then (v / 255 - mean) / std */
static bzn_status f_preprocess(bzn_backend *b, const bzn_frame *fr, const float mean[3], const float std[3], float *input,
                               int height, int width, bzn_error *err) {
    FAULT(E_PREPROCESS);
    uint8_t *px = malloc((size_t)3 * height * width);
    if (!px) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    bzn_status s = bzn_resize_bilinear(fr->rgb, fr->width, fr->height, fr->stride, 3, px, width, height, err);
    const size_t plane = (size_t)height * width;
    for (int ch = 0; s == BZN_OK && ch < 3; ch++)
        for (size_t i = 0; i < plane; i++) input[ch * plane + i] = ((float)px[3 * i + ch] / 255.0f - mean[ch]) / std[ch];
    free(px);
    return s;
}

static void f_destroy(bzn_backend *b) {
    fault_ctx *f = b->ctx;
    memcpy(counted, f->calls, sizeof counted);
    f->inner->destroy(f->inner);
    free(f);
    free(b);
}

/* a "fault" backend: the CPU one with non-host memory semantics, failing call fail_at of
 * entry point fail_entry (-1: never) */
static bzn_backend *make_fault(int fail_entry, long fail_at, int use_run, int device) {
    bzn_backend *b = calloc(1, sizeof *b);
    fault_ctx *f = calloc(1, sizeof *f);
    bzn_error e;
    ck_assert_int_eq(bzn_backend_create("cpu", NULL, &f->inner, &e), BZN_OK);
    f->fail_entry = fail_entry;
    f->fail_at = fail_at;
    f->use_run = use_run;
    *b = (bzn_backend){.name = "fault",
                       .ctx = f,
                       .device = device, /* weights are prepared once per model, backend and device */
                       .host_memory = 0,
                       .threads = f->inner->threads,
                       .alloc = f_alloc,
                       .free = bzn_host_free,
                       .upload = f_upload,
                       .download = f_download,
                       .weights_prepare = f_weights,
                       .weights_release = f->inner->weights_release,
                       .conv_prepare = f_prepare,
                       .conv_release = f_release,
                       .conv_scratch = f_scratch,
                       .conv_qin_bytes = f_qin,
                       .conv = f_conv,
                       .maxpool = f_pool,
                       .upsample = f_upsample,
                       .run = use_run ? f_run : NULL,
                       .preprocess = use_run ? f_preprocess : NULL,
                       .synchronize = f_sync,
                       .timers = f_timers,
                       .mark = f_mark,
                       .elapsed_ms = f_elapsed,
                       .destroy = f_destroy};
    return b;
}

static const char *shipped(void) {
    return tu_path(tu_env("BZN_SOURCE_DIR"), "models/blazeneo-dha-neopolyp-small-f16.bzn");
}

/* a deterministic frame */
static uint8_t *test_frame(int w, int h, unsigned seed) {
    uint8_t *px = malloc((size_t)w * h * 3);
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        seed = seed * 1664525u + 1013904223u;
        px[i] = (uint8_t)(seed >> 24);
    }
    return px;
}

static bzn_ctx_options small_options(int int8, bzn_tensor_scale *scales, int n_scales) {
    bzn_ctx_options o = bzn_ctx_default_options(model);
    o.height = o.width = 64;
    o.run_aux = 1;
    o.threads = 2;
    if (int8) {
        o.precision = BZN_PRECISION_INT8;
        o.scales = scales;
        o.n_scales = n_scales;
    }
    return o;
}

/* scales for every tensor an INT8 context needs: 1.0 / 127 x a plausible amax */
static bzn_tensor_scale *fake_scales(int *n) {
    bzn_ctx_options o = small_options(0, NULL, 0);
    bzn_ctx *c;
    bzn_error e;
    ck_assert_int_eq(bzn_ctx_create(model, &o, &c, &e), BZN_OK);
    const int layers = bzn_ctx_num_layers(c);
    bzn_tensor_scale *s = calloc((size_t)layers + 1, sizeof *s);
    s[0] = (bzn_tensor_scale){strdup("input"), 2.7f / 127};
    int k = 1;
    for (int i = 0; i < layers; i++) {
        bzn_layer_info li;
        bzn_ctx_layer(c, i, &li);
        s[k++] = (bzn_tensor_scale){strdup(li.name), 4.0f / 127};
    }
    bzn_ctx_free(c);
    *n = k;
    return s;
}

static void free_scales(bzn_tensor_scale *s, int n) {
    for (int i = 0; i < n; i++) free((char *)s[i].name);
    free(s);
}


/* ---- tests ---------------------------------------------------------------------------- */

/* Device-style memory (every byte through upload/download) and whole-plan runs give the CPU
 * backend's results exactly, also for inspected layers and with per-layer timers. */
START_TEST(non_host_memory_matches_cpu) {
    int ns;
    bzn_tensor_scale *scales = fake_scales(&ns);
    uint8_t *px = test_frame(90, 70, 3);
    for (int int8 = 0; int8 < 2; int8++)
        for (int use_run = 0; use_run < 2; use_run++) {
            bzn_ctx_options o = small_options(int8, scales, ns);
            o.keep_intermediates = use_run; /* once with every layer kept, for inspection */
            bzn_ctx *cpu, *dev;
            bzn_error e;
            ck_assert_int_eq(bzn_ctx_create(model, &o, &cpu, &e), BZN_OK);
            ck_assert_msg(bzn_ctx_create_on(model, &o, make_fault(-1, 0, use_run, 0), &dev, &e) == BZN_OK, "%s", e.msg);
            ck_assert_str_eq(bzn_ctx_backend(dev), "fault");
            bzn_ctx_set_profiling(dev, use_run);
            ck_assert_int_eq(bzn_run_rgb(cpu, px, 90, 70, 270, &e), BZN_OK);
            ck_assert_msg(bzn_run_rgb(dev, px, 90, 70, 270, &e) == BZN_OK, "%s", e.msg);
            size_t n1, n2;
            float *a = tu_logits_copy(cpu, 0, &n1), *b = tu_logits_copy(dev, 0, &n2);
            ck_assert_uint_eq(n1, n2);
            ck_assert_msg(!memcmp(a, b, n1 * sizeof *a), "int8 %d run %d: logits differ", int8, use_run);
            uint8_t m1[70 * 90], m2[70 * 90];
            ck_assert_int_eq(bzn_class_map(cpu, m1, 90, 70, &e), BZN_OK);
            ck_assert_int_eq(bzn_class_map(dev, m2, 90, 70, &e), BZN_OK);
            ck_assert(!memcmp(m1, m2, sizeof m1));
            ck_assert(!memcmp(bzn_ctx_input(cpu), bzn_ctx_input(dev), 3 * 64 * 64 * sizeof(float)));
            if (use_run) {
                bzn_layer_info li;
                ck_assert_int_eq(bzn_ctx_layer(dev, 5, &li), BZN_OK);
                const size_t n = (size_t)li.channels * li.height * li.width;
                float *l1 = malloc(n * sizeof *l1), *l2 = malloc(n * sizeof *l2);
                ck_assert_int_eq(bzn_ctx_layer_output(cpu, 5, l1, n, &e), BZN_OK);
                ck_assert_int_eq(bzn_ctx_layer_output(dev, 5, l2, n, &e), BZN_OK);
                ck_assert(!memcmp(l1, l2, n * sizeof *l1));
                free(l1);
                free(l2);
                double total = 0, ms;
                int64_t runs;
                for (int i = 0; i < bzn_ctx_num_layers(dev); i++) {
                    ck_assert_int_eq(bzn_ctx_layer_time(dev, i, &ms, &runs), BZN_OK);
                    total += ms;
                }
                ck_assert_int_eq(runs, 1);
                ck_assert(total > 0);
            }
            free(a);
            free(b);
            bzn_ctx_free(cpu);
            bzn_ctx_free(dev);
        }
    free(px);
    free_scales(scales, ns);
}
END_TEST

/* Each entry point fails at its first, second and last call of a create + run (profiled,
 * plain, from a tensor) sequence: the status and the backend's words reach the caller,
 * nothing leaks. */
START_TEST(faults_reach_the_caller) {
    int ns;
    bzn_tensor_scale *scales = fake_scales(&ns);
    uint8_t *px = test_frame(50, 40, 9);
    float *zeros = calloc(3 * 64 * 64, sizeof *zeros);
    int device = 100; /* a fresh device number: weights not yet prepared for it */
    for (int int8 = 0; int8 < 2; int8++) {
        bzn_ctx_options o = small_options(int8, scales, ns);
        /* count every entry point's calls in a clean pass; whole-plan runs and the backend's
           own pre-processing, with one profiled run (op by op, timers) among them */
        long total[N_ENTRY];
        bzn_error e;
        bzn_ctx *c;
        ck_assert_int_eq(bzn_ctx_create_on(model, &o, make_fault(-1, 0, 1, device++), &c, &e), BZN_OK);
        bzn_ctx_set_profiling(c, 1);
        ck_assert_int_eq(bzn_run_rgb(c, px, 50, 40, 150, &e), BZN_OK);
        bzn_ctx_set_profiling(c, 0);
        ck_assert_int_eq(bzn_run_rgb(c, px, 50, 40, 150, &e), BZN_OK);
        ck_assert_int_eq(bzn_run_tensor(c, zeros, &e), BZN_OK);
        bzn_ctx_free(c);
        memcpy(total, counted, sizeof total);
        int injected = 0;
        for (int entry = 0; entry < N_ENTRY; entry++) {
            ck_assert_msg(total[entry] > 0, "%s never called", entry_name[entry]);
            const long at[3] = {1, 2, total[entry]};
            for (int k = 0; k < 3; k++) {
                if (at[k] > total[entry] || (k == 2 && at[2] <= 2)) continue;
                /* where the weights' preparation is to fail, a device they were never
                   prepared for */
                const int dev = entry == E_WEIGHTS ? device++ : 0;
                c = NULL;
                memset(&e, 0, sizeof e);
                bzn_status s = bzn_ctx_create_on(model, &o, make_fault(entry, at[k], 1, dev), &c, &e);
                if (s == BZN_OK) {
                    bzn_ctx_set_profiling(c, 1);
                    s = bzn_run_rgb(c, px, 50, 40, 150, &e);
                    bzn_ctx_set_profiling(c, 0);
                    if (s == BZN_OK) s = bzn_run_rgb(c, px, 50, 40, 150, &e);
                    if (s == BZN_OK) s = bzn_run_tensor(c, zeros, &e);
                    if (s != BZN_OK) { /* the outputs say why there are none */
                        uint8_t cls[40 * 50];
                        bzn_error e2;
                        ck_assert_int_eq(bzn_class_map(c, cls, 50, 40, &e2), BZN_ERR_BACKEND);
                        ck_assert_msg(strstr(e2.msg, "last run failed: injected failure"), "%s", e2.msg);
                    }
                }
                ck_assert_msg(s == BZN_ERR_BACKEND, "int8 %d: %s call %ld: status %d (%s)", int8, entry_name[entry], at[k],
                              s, e.msg);
                char want[96];
                snprintf(want, sizeof want, "injected failure in %s (call %ld)", entry_name[entry], at[k]);
                ck_assert_msg(strstr(e.msg, want), "%s: '%s'", want, e.msg);
                bzn_ctx_free(c);
                injected++;
            }
        }
        fprintf(stderr, "  int8 %d: %d injected failures reached the caller\n", int8, injected);
    }
    free(px);
    free(zeros);
    free_scales(scales, ns);
}
END_TEST

/* Batch N = N batch-1 runs, bit for bit, FP32 and INT8, on every registered backend; a
 * partial batch too; frames of different sizes. */
START_TEST(batch_equals_single_frames) {
    int ns;
    bzn_tensor_scale *scales = fake_scales(&ns);
    enum { N = 3 };
    static const int sizes[N][2] = {{90, 70}, {64, 64}, {41, 97}};
    uint8_t *px[N];
    bzn_frame frames[N];
    for (int f = 0; f < N; f++) {
        px[f] = test_frame(sizes[f][0], sizes[f][1], 100 + f);
        frames[f] = (bzn_frame){px[f], sizes[f][0], sizes[f][1], sizes[f][0] * 3};
    }
    for (int bi = 0; bi < bzn_backend_count(); bi++)
        for (int int8 = 0; int8 < 2; int8++) {
            bzn_ctx_options o = small_options(int8, scales, ns);
            o.height = o.width = 32; /* the smallest size: the reference backend is slow */
            o.backend = bzn_backend_name(bi);
            bzn_ctx *one, *many;
            bzn_error e;
            const bzn_status s = bzn_ctx_create(model, &o, &one, &e);
            if (s == BZN_ERR_BACKEND) { /* a device backend on a machine without its device */
                if (!int8) tu_skip_case(__func__, e.msg);
                continue;
            }
            ck_assert_int_eq(s, BZN_OK);
            o.batch = N;
            ck_assert_int_eq(bzn_ctx_create(model, &o, &many, &e), BZN_OK);
            ck_assert_int_eq(bzn_ctx_batch(many), N);
            ck_assert_int_eq(bzn_run_rgb_batch(many, frames, N, &e), BZN_OK);
            float *single[N];
            size_t n[N];
            for (int f = 0; f < N; f++) {
                ck_assert_int_eq(bzn_run_rgb_batch(one, &frames[f], 1, &e), BZN_OK);
                single[f] = tu_logits_copy(one, 0, &n[f]);
                size_t nb;
                float *batched = tu_logits_copy(many, f, &nb);
                ck_assert_uint_eq(nb, n[f]);
                ck_assert_msg(!memcmp(batched, single[f], nb * sizeof *batched), "%s int8 %d frame %d differs",
                              o.backend, int8, f);
                free(batched);
            }
            ck_assert_int_eq(bzn_ctx_batch(one), 1);
            /* the tensor path: N frames' inputs */
            float *in = malloc((size_t)N * 3 * 32 * 32 * sizeof *in);
            for (int f = 0; f < N; f++) {
                ck_assert_int_eq(bzn_run_rgb_batch(one, &frames[f], 1, &e), BZN_OK);
                memcpy(in + (size_t)f * 3 * 32 * 32, bzn_ctx_input(one), 3 * 32 * 32 * sizeof *in);
            }
            ck_assert_int_eq(bzn_run_tensor(many, in, &e), BZN_OK);
            for (int f = 0; f < N; f++) {
                size_t nb;
                float *batched = tu_logits_copy(many, f, &nb);
                ck_assert(!memcmp(batched, single[f], nb * sizeof *batched));
                free(batched);
            }
            /* a partial batch: frames past it have no result */
            ck_assert_int_eq(bzn_run_rgb_batch(many, frames + 1, 2, &e), BZN_OK);
            size_t nb;
            float *b0 = tu_logits_copy(many, 0, &nb);
            ck_assert(!memcmp(b0, single[1], nb * sizeof *b0));
            free(b0);
            uint8_t cls[32 * 32];
            ck_assert_int_eq(bzn_class_map_at(many, 2, cls, 32, 32, &e), BZN_ERR_ARG);
            ck_assert_msg(strstr(e.msg, "the last run had 2 frames"), "%s", e.msg);
            ck_assert_int_eq(bzn_run_rgb_batch(many, frames, N + 1, &e), BZN_ERR_ARG);
            ck_assert_int_eq(bzn_run_rgb_batch(many, frames, 0, &e), BZN_ERR_ARG);
            for (int f = 0; f < N; f++) free(single[f]);
            free(in);
            bzn_ctx_free(one);
            bzn_ctx_free(many);
        }
    bzn_ctx_options o = bzn_ctx_default_options(model);
    o.batch = -1;
    bzn_ctx *c;
    bzn_error e;
    ck_assert_int_eq(bzn_ctx_create(model, &o, &c, &e), BZN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "batch"));
    for (int f = 0; f < N; f++) free(px[f]);
    free_scales(scales, ns);
}
END_TEST

/* Prepared weights are made once per model and backend: a second context of the same kind
 * adds no bytes; another precision or backend adds its own forms once. */
START_TEST(weights_prepared_once) {
    int ns;
    bzn_tensor_scale *scales = fake_scales(&ns);
    bzn_model *m;
    bzn_error e;
    ck_assert_int_eq(bzn_model_open(shipped(), &m, &e), BZN_OK);
    ck_assert_uint_eq(bzn_model_prepared_bytes(m), 0);
    bzn_ctx_options o = small_options(1, scales, ns);
    bzn_ctx *a, *b, *c;
    ck_assert_int_eq(bzn_ctx_create(m, &o, &a, &e), BZN_OK);
    const size_t once = bzn_model_prepared_bytes(m);
    /* int8 weights quantized from the f16 file, and packed for the CPU kernels: at least
       one byte per weight */
    ck_assert_uint_ge(once, 17000000);
    o.height = o.width = 96; /* another size: per-context tables only */
    ck_assert_int_eq(bzn_ctx_create(m, &o, &b, &e), BZN_OK);
    ck_assert_uint_eq(bzn_model_prepared_bytes(m), once);
    o.backend = "ref";
    ck_assert_int_eq(bzn_ctx_create(m, &o, &c, &e), BZN_OK);
    const size_t with_ref = bzn_model_prepared_bytes(m);
    ck_assert_uint_gt(with_ref, once);
    bzn_ctx_free(c);
    ck_assert_int_eq(bzn_ctx_create(m, &o, &c, &e), BZN_OK);
    ck_assert_uint_eq(bzn_model_prepared_bytes(m), with_ref);
    fprintf(stderr, "  prepared weights: %.1f MB for the CPU backend's INT8 contexts (2 contexts), %.1f MB with ref's\n",
            once / 1e6, with_ref / 1e6);
    bzn_ctx_free(a);
    bzn_ctx_free(b);
    bzn_ctx_free(c);
    bzn_model_free(m);
    free_scales(scales, ns);
}
END_TEST

/* An INT8 context on a float weight file quantizes each convolution from a transient fold of
 * its floats: the model then holds the int8 weights and their scales, and no float weights
 * until a context runs in float. The ref backend prepares nothing more, so the bytes are
 * exact: 1 per weight and 4 per output channel, then 4 more per weight for FP32. */
START_TEST(int8_holds_no_floats) {
    int ns;
    bzn_tensor_scale *scales = fake_scales(&ns);
    bzn_model *m;
    bzn_error e;
    ck_assert_int_eq(bzn_model_open(shipped(), &m, &e), BZN_OK);
    uint64_t weights = 0, channels = 0;
    int convs = 0;
    for (int i = 0; i < bzn_model_num_weights(m); i++) {
        bzn_weight_info wi;
        ck_assert_int_eq(bzn_model_weight(m, i, &wi), BZN_OK);
        const size_t len = strlen(wi.name);
        if (wi.ndim != 4 || len < 12 || strcmp(wi.name + len - 12, ".conv.weight") != 0) continue;
        weights += (uint64_t)(wi.shape[0] * wi.shape[1] * wi.shape[2] * wi.shape[3]);
        channels += (uint64_t)wi.shape[0];
        convs++;
    }
    bzn_model_info mi;
    bzn_model_get_info(m, &mi);
    ck_assert_int_eq(mi.num_convs, convs);
    ck_assert_uint_lt(mi.weight_bytes, weights / 25); /* the model itself: biases and BN scales */
    bzn_ctx_options o = small_options(1, scales, ns);
    o.backend = "ref";
    bzn_ctx *q, *f;
    ck_assert_int_eq(bzn_ctx_create(m, &o, &q, &e), BZN_OK);
    ck_assert_uint_eq(bzn_model_prepared_bytes(m), weights + 4 * channels);
    o = small_options(0, NULL, 0);
    o.backend = "ref";
    ck_assert_int_eq(bzn_ctx_create(m, &o, &f, &e), BZN_OK);
    ck_assert_uint_eq(bzn_model_prepared_bytes(m), 5 * weights + 4 * channels);
    bzn_ctx_free(q);
    bzn_ctx_free(f);
    bzn_model_free(m);
    free_scales(scales, ns);
}
END_TEST

/* The CPU backend keeps no floats where its Winograd transforms replace them: a context at
 * 352 holds those layers' transforms alone; a later context at 64x64, which runs some of
 * them directly, folds their floats again (the model's bytes grow) and gives exactly what a
 * context on a fresh model gives, and the 352 context still gives what it gave. */
START_TEST(winograd_keeps_no_floats) {
    bzn_model *m, *fresh;
    bzn_error e;
    ck_assert_int_eq(bzn_model_open(shipped(), &m, &e), BZN_OK);
    ck_assert_int_eq(bzn_model_open(shipped(), &fresh, &e), BZN_OK);
    bzn_ctx_options o = small_options(0, NULL, 0);
    o.run_aux = 0;
    o.height = o.width = 352;
    bzn_ctx *big, *small, *fresh_small;
    ck_assert_int_eq(bzn_ctx_create(m, &o, &big, &e), BZN_OK);
    const size_t at352 = bzn_model_prepared_bytes(m);
    uint8_t *px = test_frame(90, 70, 3);
    const float *y;
    int c, h, w;
    ck_assert_int_eq(bzn_run_rgb(big, px, 90, 70, 270, &e), BZN_OK);
    ck_assert_int_eq(bzn_logits(big, BZN_OUT_MAIN, &y, &c, &h, &w, &e), BZN_OK);
    const size_t nb = (size_t)c * h * w;
    float *before = malloc(nb * sizeof *before);
    memcpy(before, y, nb * sizeof *before);
    o.height = o.width = 64;
    ck_assert_int_eq(bzn_ctx_create(m, &o, &small, &e), BZN_OK);
    ck_assert_int_eq(bzn_ctx_create(fresh, &o, &fresh_small, &e), BZN_OK);
    if (strstr(bzn_ctx_backend_detail(big), "Winograd")) /* (not with BZN_WINOGRAD=0) */
        ck_assert_uint_gt(bzn_model_prepared_bytes(m), at352);
    ck_assert_int_eq(bzn_run_rgb(big, px, 90, 70, 270, &e), BZN_OK);
    ck_assert_int_eq(bzn_logits(big, BZN_OUT_MAIN, &y, &c, &h, &w, &e), BZN_OK);
    ck_assert(memcmp(before, y, nb * sizeof *before) == 0);
    const float *ys[2];
    size_t n[2];
    bzn_ctx *pair[2] = {small, fresh_small};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(bzn_run_rgb(pair[i], px, 90, 70, 270, &e), BZN_OK);
        ck_assert_int_eq(bzn_logits(pair[i], BZN_OUT_MAIN, &ys[i], &c, &h, &w, &e), BZN_OK);
        n[i] = (size_t)c * h * w;
    }
    ck_assert(n[0] == n[1] && memcmp(ys[0], ys[1], n[0] * sizeof(float)) == 0);
    bzn_ctx_free(big);
    bzn_ctx_free(small);
    bzn_ctx_free(fresh_small);
    free(before);
    free(px);
    bzn_model_free(m);
    bzn_model_free(fresh);
}
END_TEST

int main(void) {
    bzn_error e;
    if (!tu_env("BZN_SOURCE_DIR") || bzn_model_open(shipped(), &model, &e) != BZN_OK) {
        fprintf(stderr, "test_backend: run through ctest (cannot open the shipped model)\n");
        return 1;
    }
    Suite *s = suite_create("backend");
    TCase *tc = tu_case(s, "interface", 900);
    tcase_add_test(tc, non_host_memory_matches_cpu);
    tcase_add_test(tc, faults_reach_the_caller);
    tcase_add_test(tc, batch_equals_single_frames);
    tcase_add_test(tc, weights_prepared_once);
    tcase_add_test(tc, int8_holds_no_floats);
    tcase_add_test(tc, winograd_keeps_no_floats);
    const int failed = tu_run_suite(s);
    bzn_model_free(model);
    return failed;
}
