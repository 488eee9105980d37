/*
 * blazeneo.h - the one public header of the BlazeNeo inference engine.
 *
 * A model (bzn_model) is the immutable weights of one BlazeNeo network, loaded from a
 * weight file (see weights/FORMAT.md). A context (bzn_ctx) holds everything one thread
 * needs to run that model at one input size: the planned activation arena, scratch space
 * and the backend. Models may be shared by many contexts; a context is used by one thread
 * at a time. Nothing here uses global state, prints, or exits: every call that can fail
 * returns a bzn_status and, when `err` is not NULL, a message the caller can show.
 *
 * Minimal use:
 *   bzn_model *m; bzn_ctx *c; bzn_error e;
 *   if (bzn_model_open("models/blazeneo-dha.bzn", &m, &e)) { puts(e.msg); return 1; }
 *   bzn_ctx_options o = bzn_ctx_default_options(m);
 *   if (bzn_ctx_create(m, &o, &c, &e)) { ... }
 *   bzn_run_rgb(c, rgb, width, height, width * 3, &e);
 *   bzn_class_map(c, classes, width, height, &e);   // 0 neo, 1 non, 2 background
 */
#ifndef BLAZENEO_H
#define BLAZENEO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is compiled with hidden symbols: what this header declares is its whole API,
 * and the shared library exports that alone. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define BZN_VERSION_STRING "0.1.0"

typedef enum {
    BZN_OK = 0,
    BZN_ERR_ARG,          /* invalid argument (NULL pointer, bad size, ...) */
    BZN_ERR_IO,           /* file cannot be opened, read or written */
    BZN_ERR_FORMAT,       /* malformed, truncated or corrupted input */
    BZN_ERR_UNSUPPORTED,  /* well-formed but not something this engine runs */
    BZN_ERR_NOMEM,        /* allocation failed */
    BZN_ERR_BACKEND,      /* backend unavailable or failed at run time */
    BZN_ERR_NONFINITE     /* the network's output holds NaN or infinity (weights out of range):
                             the run has no result, since a class map would be meaningless */
} bzn_status;

/* Caller-owned error message buffer, filled when a call fails. */
typedef struct {
    bzn_status status;
    char msg[512];
} bzn_error;

const char *bzn_status_name(bzn_status s);

/* ---- model ---------------------------------------------------------------------- */

typedef enum { BZN_AGG_LSC = 0, BZN_AGG_IDA = 1, BZN_AGG_DIA = 2, BZN_AGG_DHA = 3 } bzn_aggregation;

/* FP32: every convolution in float. INT8: convolutions on int8 weights (per output channel,
 * BatchNorm folded first) and int8 inputs (one scale per tensor, from calibration), with int32
 * accumulation; outputs are dequantized to float, where activations, pooling and upsampling run.
 * FP16: convolutions on half weights and half inputs with float accumulation (the CUDA
 * backend's tensor cores). TF32: convolutions on weights and inputs rounded to TF32 (10-bit
 * mantissa) with float accumulation (tensor cores; FP32 itself never uses TF32). Not every
 * backend runs every precision: bzn_ctx_create refuses one its backend lacks, naming those it
 * has (bzn_backend_supports). */
typedef enum {
    BZN_PRECISION_FP32 = 0,
    BZN_PRECISION_INT8 = 1,
    BZN_PRECISION_FP16 = 2,
    BZN_PRECISION_TF32 = 3
} bzn_precision;
const char *bzn_precision_name(bzn_precision p);

typedef struct {
    bzn_aggregation aggregation; /* aggregation of the main path (agg2) */
    int has_aux;                 /* auxiliary branch (agg1 DHA + head_1) present */
    int num_classes;             /* main head classes: 3 (softmax) or 2 (two sigmoids) */
    int default_height, default_width;
    float mean[3], std[3];       /* input normalisation, RGB */
    int weight_dtype;            /* storage type of the first convolution's weights: 0 f32, 1 f16,
                                    2 int8 (see num_int8_convs) */
    int num_convs;               /* convolutions (with the auxiliary branch) */
    int num_int8_convs;          /* of those, stored int8 (an INT8 weight file; the others f32) */
    int num_act_scales;          /* activation scales stored in the file (INT8 weight files) */
    int64_t params_main;         /* parameters on the main path (no aux, no classifier) */
    int64_t params_total;        /* parameters including the auxiliary branch */
    int num_tensors;             /* entries in the weight file's tensor table */
    uint64_t file_bytes;         /* size of the weight file */
    uint64_t weight_bytes;       /* memory the model itself holds for its convolutions: the
                                    biases and BatchNorm scales. The weights stay in the file
                                    (an INT8 file's int8 ones are used in place) and are folded,
                                    quantized or packed into the forms each backend runs when a
                                    context first needs them: bzn_model_prepared_bytes */
    bzn_precision precision;     /* what the file is made for, and bzn_ctx_default_options' choice:
                                    INT8 for an INT8 weight file (num_int8_convs > 0 and its
                                    activation scales stored), else FP32 */
} bzn_model_info;

typedef struct bzn_model bzn_model;

bzn_status bzn_model_open(const char *path, bzn_model **out, bzn_error *err);
/* The buffer is copied; the caller may free it after the call. */
bzn_status bzn_model_open_memory(const void *data, size_t size, bzn_model **out, bzn_error *err);
void bzn_model_free(bzn_model *m);
void bzn_model_get_info(const bzn_model *m, bzn_model_info *info);
const char *bzn_aggregation_name(bzn_aggregation a);

/* One entry of the weight file's tensor table. */
typedef struct {
    const char *name;   /* the PyTorch state-dict key */
    int dtype;          /* 0 f32, 1 f16, 2 i8 */
    int ndim;
    int64_t shape[4];
    uint64_t offset, nbytes;
} bzn_weight_info;
int bzn_model_num_weights(const bzn_model *m);
bzn_status bzn_model_weight(const bzn_model *m, int i, bzn_weight_info *out);
/* "f32", "f16", "i8" for bzn_weight_info.dtype 0, 1, 2 ("?" otherwise) */
const char *bzn_weight_dtype_name(int dtype);

/* ---- context -------------------------------------------------------------------- */

/* Backends are chosen by name. Those this build has ("cpu", the default: own SIMD kernels,
 * OpenBLAS, its own threads; "ref": plain C loops, the oracle; "cuda" when built with
 * BLAZENEO_CUDA: hand-written kernels on an NVIDIA GPU) are listed by these. */
int bzn_backend_count(void);
const char *bzn_backend_name(int i);        /* NULL when i is out of range */
const char *bzn_backend_description(int i); /* one line */
/* 1 when backend i runs precision p (cpu and ref: FP32 and INT8; cuda: also FP16, TF32) */
int bzn_backend_supports(int i, bzn_precision p);


/* The quantization scale of one activation tensor, by name: the PyTorch module path of the
 * layer producing it (as bzn_ctx_layer names it), or "input". scale = amax / 127. */
typedef struct {
    const char *name;
    float scale;
} bzn_tensor_scale;

typedef struct {
    int height, width;        /* network input size: multiples of 32 */
    const char *backend;      /* a backend's name (bzn_backend_name); NULL: the default, "cpu" */
    int device;               /* backends with several devices: which one (0) */
    int threads;              /* 0 = backend default */
    int batch;                /* frames run together (0 or 1: one); outputs are per frame */
    int run_aux;              /* also run the auxiliary branch (when the model has it) */
    int keep_intermediates;   /* keep every module output alive for inspection (trace) */
    bzn_precision precision;  /* FP32, INT8, FP16 or TF32; the default is the model's (bzn_model_info.precision):
                                 INT8 for an INT8 weight file. FP32 on an INT8 weight file runs its
                                 dequantized weights in float (a debugging mode) */
    /* INT8: activation scales (a calibration cache, see bzn_calib_cache_read); NULL uses the
     * scales stored in a quantized model file */
    const bzn_tensor_scale *scales;
    int n_scales;
    /* INT8: comma-separated layer names (e.g. "rfb4.branch3.2,head_2.head") kept in FP32 */
    const char *keep_fp32;
} bzn_ctx_options;

typedef struct bzn_ctx bzn_ctx;

/* The model's input size, the default backend, batch 1, and the model's precision (INT8 for an
 * INT8 weight file, with its stored scales; else FP32); NULL: 352x352 FP32. */
bzn_ctx_options bzn_ctx_default_options(const bzn_model *m);
/* An input size as users write it: "352" (square) or "512x384" (width x height), each 1..8192
 * (that it is a multiple of 32 is bzn_ctx_create's check). BZN_ERR_ARG when it is neither. */
bzn_status bzn_parse_size(const char *s, int *width, int *height, bzn_error *err);
bzn_status bzn_ctx_create(const bzn_model *m, const bzn_ctx_options *opt, bzn_ctx **out,
                          bzn_error *err);
void bzn_ctx_free(bzn_ctx *c);

/* Memory planned at creation (running a frame allocates nothing), in the backend's memory:
 * the activation arena (every tensor, by liveness, times the batch), the backend's scratch
 * space (im2col columns, padded input planes), and the two together. */
size_t bzn_ctx_activation_bytes(const bzn_ctx *c);
size_t bzn_ctx_scratch_bytes(const bzn_ctx *c);
size_t bzn_ctx_arena_bytes(const bzn_ctx *c);
/* What the context runs on: its backend's name, the host threads the backend uses, the batch. */
const char *bzn_ctx_backend(const bzn_ctx *c);
/* What the backend says it runs on, for reports: the CPU backend names its kernels' instruction
 * set ("avx512 kernels: FP32 avx512, INT8 avx512-vnni"); "" when it says nothing. */
const char *bzn_ctx_backend_detail(const bzn_ctx *c);
int bzn_ctx_threads(const bzn_ctx *c);
int bzn_ctx_batch(const bzn_ctx *c);
/* Bytes of the weights in the forms contexts run (folded to float, quantized, dequantized or
 * packed by a backend), made once per model and backend and shared by all of its contexts.
 * An INT8 context on a float weight file quantizes from a transient fold: it holds no floats. */
size_t bzn_model_prepared_bytes(const bzn_model *m);

/* INT8: how many convolution outputs go to the next convolution as int8 (quantized once,
 * with the consumer's scale, in the producer's epilogue) instead of as float: a tensor read
 * by exactly one INT8 convolution as its whole input. 0 for FP32, and with
 * keep_intermediates (every tensor then stays float for inspection). */
int bzn_ctx_int8_handoffs(const bzn_ctx *c);

/* ---- running -------------------------------------------------------------------- */

/* Preprocess an 8-bit RGB frame of any size (antialiased bilinear resize to the context's
 * input size, like PIL, then normalise) and run the network. `stride` is bytes per row. */
bzn_status bzn_run_rgb(bzn_ctx *c, const uint8_t *rgb, int width, int height, int stride,
                       bzn_error *err);
/* Run on an already preprocessed N x 3 x H x W float tensor (NCHW; N the context's batch,
 * H and W its input size). */
bzn_status bzn_run_tensor(bzn_ctx *c, const float *input, bzn_error *err);
/* A batch of 1 to N frames (N the context's batch), each of any size; results per frame,
 * equal bit for bit to running each alone. */
typedef struct {
    const uint8_t *rgb;
    int width, height, stride;
} bzn_frame;
bzn_status bzn_run_rgb_batch(bzn_ctx *c, const bzn_frame *frames, int n, bzn_error *err);

/* A run that fails returns the backend's status and words (BZN_ERR_BACKEND for a failed
 * kernel or a lost device), or BZN_ERR_NONFINITE when the outputs are not finite; the
 * output calls below then repeat why there is no result. The output calls read frame 0;
 * the _at forms any frame of the last run. */

/* Class per pixel of the last run, nearest-neighbour resized to width x height
 * (pass the context's input size for the model-resolution map):
 * 0 neoplastic, 1 non-neoplastic, 2 background. */
bzn_status bzn_class_map(const bzn_ctx *c, uint8_t *out, int width, int height, bzn_error *err);
bzn_status bzn_class_map_at(const bzn_ctx *c, int frame, uint8_t *out, int width, int height, bzn_error *err);

/* The auxiliary head's polyp probability of the last run as 8-bit grey (255 * sigmoid,
 * rounded), bilinearly resized to width x height (as PIL's resize): the context must run
 * the auxiliary branch (run_aux, a model that has it). */
bzn_status bzn_polyp_map(const bzn_ctx *c, uint8_t *out, int width, int height, bzn_error *err);
bzn_status bzn_polyp_map_at(const bzn_ctx *c, int frame, uint8_t *out, int width, int height, bzn_error *err);

typedef enum { BZN_OUT_MAIN = 0, BZN_OUT_AUX = 1 } bzn_output;

/* Logits of the last run at input resolution (1 x C x H x W, after the x8 upsample).
 * The pointer stays valid until the next run or bzn_ctx_free. */
bzn_status bzn_logits(const bzn_ctx *c, bzn_output which, const float **data, int *channels,
                      int *height, int *width, bzn_error *err);
bzn_status bzn_logits_at(const bzn_ctx *c, int frame, bzn_output which, const float **data, int *channels,
                         int *height, int *width, bzn_error *err);

/* Probabilities at input resolution, written into `out` (C x H x W floats): softmax over
 * the classes for a 3-class head, sigmoid per map for a 2-class head or the aux head. */
bzn_status bzn_probabilities(const bzn_ctx *c, bzn_output which, float *out, size_t count,
                             bzn_error *err);
bzn_status bzn_probabilities_at(const bzn_ctx *c, int frame, bzn_output which, float *out, size_t count,
                                bzn_error *err);

/* ---- inspection (teaching, auditing, per-layer comparison with PyTorch) ----------- */

typedef struct {
    const char *name;    /* PyTorch module path: "encoder.base.3.layers.5", "rfb4.conv_cat" */
    const char *aliases; /* space-separated containers with the same output: "rfb4", "head_2" */
    int channels, height, width;          /* output shape */
    int in_channels, in_height, in_width; /* input shape */
    int64_t params, macs; /* of the operation producing it (0 for pooling/upsampling) */
    const char *op;       /* "conv3x3 s1 d1 +relu6", "maxpool3x3 s2", "upsample x2", "concat" */
    bzn_precision precision; /* how this context runs it: INT8 for its quantized convolutions,
                                FP32 for everything else (pooling and upsampling are float) */
    int int8_output;         /* 1: the output goes to the next convolution as int8 and is never
                                written as float (INT8 hand-off, see bzn_ctx_int8_handoffs) */
} bzn_layer_info;

/* Layers in execution order; valid without running. */
int bzn_ctx_num_layers(const bzn_ctx *c);
bzn_status bzn_ctx_layer(const bzn_ctx *c, int i, bzn_layer_info *info);
/* Copy the output of layer i from the last run into out (channels*height*width floats).
 * Requires keep_intermediates, since other outputs share memory. */
bzn_status bzn_ctx_layer_output(const bzn_ctx *c, int i, float *out, size_t count, bzn_error *err);
bzn_status bzn_ctx_layer_output_at(const bzn_ctx *c, int frame, int i, float *out, size_t count, bzn_error *err);
/* Per-layer timing: while enabled, every run adds each layer's time (ms, measured by the
 * backend's own timers: the host clock on the CPU, events on a GPU) and count. Off by
 * default (it costs a timer mark per layer). */
void bzn_ctx_set_profiling(bzn_ctx *c, int on);
void bzn_ctx_reset_profile(bzn_ctx *c);
bzn_status bzn_ctx_layer_time(const bzn_ctx *c, int i, double *total_ms, int64_t *runs);

/* The preprocessed input tensor of frame 0 of the last run (3 x H x W floats, host memory). */
const float *bzn_ctx_input(const bzn_ctx *c);

/* ---- converting PyTorch checkpoints ------------------------------------------------ */

typedef struct {
    int f16;                      /* store convolution weights as f16 (BatchNorm stays f32) */
    int default_height, default_width; /* 0: 352 x 352 */
} bzn_convert_options;

typedef struct {
    bzn_aggregation aggregation;
    int has_aux, num_classes;
    int tensors_written, tensors_dropped; /* dropped: classifier, num_batches_tracked */
    double max_f16_error;                 /* largest |f32 - f16| over converted weights */
    char max_f16_error_tensor[80];        /* where it occurred */
    uint64_t file_bytes;
} bzn_convert_report;

/* Read a PyTorch checkpoint (torch.save zip format), recognise the BlazeNeo variant from its
 * keys and shapes, and write a weight file. The output is validated by loading it before it
 * replaces `out_path`; on any error nothing is left at `out_path` that was not there. */
bzn_status bzn_convert_checkpoint(const char *in_path, const char *out_path, const bzn_convert_options *opt,
                                  bzn_convert_report *report, bzn_error *err);

/* ---- accuracy (the paper's eq. 7-8, micro-averaged over every pixel of a set) ------- */

enum { BZN_CLASS_NEO = 0, BZN_CLASS_NON = 1, BZN_CLASS_BACKGROUND = 2, BZN_CLASS_UNDEFINED = 3 };
enum { BZN_METRIC_SEG = 0, BZN_METRIC_NEO = 1, BZN_METRIC_NON = 2 };

typedef struct {
    uint64_t tp[3], fp[3], fn[3]; /* indexed by BZN_METRIC_*: seg (polyp), neo, non */
} bzn_confusion;

/* Ground-truth colour mask (RGB) to classes: neoplastic where R >= 128 and G < 128,
 * non-neoplastic where G >= 128 and R < 128, else background. */
void bzn_mask_to_classes(const uint8_t *rgb, size_t n, uint8_t *classes);
/* The same, with NeoPolyp-Large's yellow label (R >= 128 and G >= 128: a polyp whose neoplasm
 * status is unknown) as BZN_CLASS_UNDEFINED; returns how many pixels have it. */
size_t bzn_mask_to_classes_undefined(const uint8_t *rgb, size_t n, uint8_t *classes);
/* Add one image's predicted and true class maps (same size) to the counts. A true
 * BZN_CLASS_UNDEFINED pixel is a polyp for seg and is left out of neo and non (the paper's
 * eq. 7-8: "I does not include undefined neoplasm pixels"). */
void bzn_confusion_add(bzn_confusion *c, const uint8_t *pred, const uint8_t *truth, size_t n);
/* a += b */
void bzn_confusion_merge(bzn_confusion *a, const bzn_confusion *b);
/* Dice = 2TP / (2TP + FP + FN), IoU = TP / (TP + FP + FN); 1 when there is nothing to find. */
double bzn_dice(const bzn_confusion *c, int metric);
double bzn_iou(const bzn_confusion *c, int metric);

/* ---- INT8 weight files -------------------------------------------------------------- */

/* Write an INT8 weight file: BatchNorm folded into every convolution, weights int8 per output
 * channel (those named in keep_fp32, comma-separated, stay f32), biases f32, and the activation
 * scales; about a quarter of the f32 file. The scales must cover every tensor an INT8 context
 * of this model needs (checked by building one); `weight_scale` tensors are referenced from the
 * int8 weights, activation scales are stored as `<tensor>.act_scale`. */
bzn_status bzn_quantize_model(const bzn_model *m, const bzn_tensor_scale *scales, int n_scales,
                              const char *keep_fp32, const char *out_path, bzn_error *err);

/* ---- writing files ---------------------------------------------------------------------
 *
 * The writer the library uses for every file it writes (weight files, calibration caches,
 * PNGs), for callers' own outputs too. A regular file (or a missing one) is replaced
 * atomically: the bytes go to "<target>.tmp.XXXXXX" beside it, are synced and renamed over it
 * on success, and removed on failure, so readers see the old file or the whole new one. A
 * symbolic link is followed (the file it names is replaced). A device, FIFO or socket, and
 * "-" (standard output), are written in place. Errors name `path` and the real cause.
 *
 *   bzn_writer *w;
 *   if (bzn_writer_open("out.csv", &w, &e)) return e.status;
 *   fprintf(bzn_writer_stream(w), ...);
 *   if (bzn_writer_close(w, 0, &e)) return e.status;   // flush, sync, rename; any write error
 */
typedef struct bzn_writer bzn_writer;
bzn_status bzn_writer_open(const char *path, bzn_writer **out, bzn_error *err);
FILE *bzn_writer_stream(bzn_writer *w);
/* errno of the first failed write to the stream (0: none), for the caller's own message */
int bzn_writer_error(const bzn_writer *w);
/* Finish: with `discard` (the caller's writing failed and it has reported why) the temporary
 * file is removed, the target left as it was, and BZN_ERR_IO returned without a message. */
bzn_status bzn_writer_close(bzn_writer *w, int discard, bzn_error *err);
/* Remove every temporary file a writer of this process has open; async-signal-safe, for a
 * program's SIGINT/SIGTERM handlers (the library installs none). */
void bzn_writer_remove_temporaries(void);

/* ---- images (JPEG in, PNG out, the spec's resize) --------------------------------- */

typedef struct {
    uint8_t *pixels;  /* rows of width*channels bytes, top to bottom */
    int width, height, channels;
} bzn_image;

/* Decode a JPEG file (or buffer) to 8-bit RGB. Non-JPEG or corrupt data is BZN_ERR_FORMAT. */
bzn_status bzn_image_load_jpeg(const char *path, bzn_image *img, bzn_error *err);
bzn_status bzn_image_decode_jpeg(const void *data, size_t size, bzn_image *img, bzn_error *err);
void bzn_image_free(bzn_image *img);

/* Write a PNG (channels 1 grey, 3 RGB). Written to a temporary name in the same folder and
 * renamed, so an existing file is never left half-written. */
bzn_status bzn_image_write_png(const char *path, const uint8_t *pixels, int width, int height,
                               int channels, bzn_error *err);

/* PIL-compatible bilinear resize of interleaved 8-bit images (antialiases when shrinking:
 * the triangle filter's support scales with the shrink factor), as Image.resize(BILINEAR). */
bzn_status bzn_resize_bilinear(const uint8_t *src, int sw, int sh, int sstride, int channels,
                               uint8_t *dst, int dw, int dh, bzn_error *err);

/* Colour mask from a class map: 0 neoplastic red, 1 non-neoplastic green, 2 black,
 * 3 (undefined, ground truth only) yellow. */
void bzn_colorize(const uint8_t *classes, size_t n, uint8_t *rgb);

/* How bzn_overlay_draw marks the polyps over a frame. */
typedef enum {
    BZN_LEGEND_NONE = 0,
    BZN_LEGEND_TOP_LEFT = 1, /* the default: in endoscopy frames, the black margin outside the view */
    BZN_LEGEND_TOP_RIGHT = 2,
    BZN_LEGEND_BOTTOM_LEFT = 3,
    BZN_LEGEND_BOTTOM_RIGHT = 4
} bzn_legend_corner;
#define BZN_OVERLAY_AUTO (-1)      /* outline: scaled to the frame, see below */
#define BZN_OVERLAY_MAX_OUTLINE 64 /* the widest outline, in pixels */
typedef struct {
    float alpha;  /* blend of the class colour over a polyp's inside: (1-alpha)*frame +
                     alpha*colour, rounded; clamped to 0..1 (NaN: 0); 0 = the frame as it is */
    int outline;  /* width in pixels of a line in the full class colour along the inside of each
                     polyp region's border: the pixels of class c (0 or 1) with a pixel of another
                     class within `outline` pixels (the 3x3, 5x5, ... square around them: 8-
                     neighbours) inside the frame (a region cut by the frame's edge has no line
                     there); 0 = none; BZN_OVERLAY_AUTO = max(2, round(min(width, height) / 500)),
                     2 up to 1250-pixel frames */
    int dark_edge; /* nonzero: background pixels within max(1, outline / 2) pixels of a polyp are
                      drawn black, a dark rim outside the coloured line, so that the red line
                      stands out on red mucosa (nothing is drawn where neoplastic meets non-
                      neoplastic: red beside green needs no rim); no effect without an outline */
    bzn_legend_corner legend; /* a legend in this corner (BZN_LEGEND_NONE: none): a red and a
                      green swatch labelled "neoplastic" and "non-neoplastic" in a built-in 5x7
                      pixel font, white on the frame darkened to 30%, scaled by
                      max(1, round(min(width, height) / 480)); left out when it would take more
                      than half the frame's width or a third of its height */
} bzn_overlay_style;
/* alpha 0.45, outline BZN_OVERLAY_AUTO, dark_edge 1, legend BZN_LEGEND_TOP_LEFT */
bzn_overlay_style bzn_overlay_default_style(void);
/* The frame (RGB24, rows of width*3 bytes) with a class map of the same size drawn over it as
 * `style` says (NULL: the default style) into out_rgb: background pixels are copied (or the dark
 * edge), polyp pixels blended (or the outline), then the legend. Every output pixel depends only
 * on the frame pixel at its place and the classes, so out_rgb may be frame_rgb (in place).
 * Deterministic; no allocation (O(pixels x outline) time); BZN_ERR_ARG for NULL pointers, a size
 * <= 0 or an outline outside BZN_OVERLAY_AUTO..BZN_OVERLAY_MAX_OUTLINE. */
bzn_status bzn_overlay_draw(const uint8_t *frame_rgb, const uint8_t *classes, int width, int height,
                            const bzn_overlay_style *style, uint8_t *out_rgb, bzn_error *err);
/* A probability scale on a grey picture such as bzn_polyp_map's (rows of width bytes, in
 * place): a vertical ramp from black (0, bottom) to white (1, top) labelled "1" and "0", in a
 * black box in `corner`, scaled and left out as the overlay's legend is; BZN_LEGEND_NONE draws
 * nothing. BZN_ERR_ARG for a NULL picture or a size <= 0. */
bzn_status bzn_grey_scale_draw(uint8_t *grey, int width, int height, bzn_legend_corner corner, bzn_error *err);

/* Progress of a long call: `done` of `total` steps, the last one named; called on the caller's
 * thread (the library never prints: showing it is the caller's business). */
typedef void (*bzn_progress_fn)(void *user, int done, int total, const char *name);

/* ---- INT8 calibration (TensorRT-style post-training; ../shared/spec/int8-calibration.md) --
 *
 * Run the FP32 network over calibration frames, record per tensor the largest |x| and a
 * histogram of |x|, and turn that into one scale per tensor (scale = amax / 127, symmetric
 * int8). The tensors are `input` (the preprocessed network input) and the output of every
 * layer bzn_ctx_layer lists, named by its primary `name` (never by an alias: "rfb4.conv_cat",
 * not "rfb4"), in execution order; a layer whose name was already taken is skipped. With
 * run_aux the auxiliary branch's layers (agg1.*, head_1.head, upsample_1) are included too.
 *
 *   bzn_calibrator *cal;  bzn_calib_table *t;
 *   bzn_calibrator_create(ctx, &cal, &e);               // ctx made with keep_intermediates
 *   for each frame: bzn_run_rgb(ctx, ...); bzn_calibrator_observe(cal, ctx, &e);
 *   bzn_calibrator_compute(cal, BZN_CALIB_ENTROPY, 0, &t, &e);
 *   bzn_calib_cache_write("model.cache", t, &e);       // TensorRT's text format
 *
 * Histogram: BZN_CALIB_BINS bins over [0, max|x| of the first observation]; a later, larger max
 * keeps the bin width and grows the bin count to ceil(max / width) (pytorch-quantization's
 * rule), up to BZN_CALIB_MAX_BINS: past that, neighbouring bins merge in pairs (the width
 * doubles) so memory stays bounded. Exact zeros are counted. A tensor that was exactly 0 on
 * every frame has no histogram; every method then gives amax = 0 (scale 0: quantize it to 0). */
typedef enum {
    BZN_CALIB_ENTROPY = 0,   /* IInt8EntropyCalibrator2: amax minimising KL(P || Q), cache header
                                TRT-7103-EntropyCalibration2 */
    BZN_CALIB_MINMAX = 1,    /* IInt8MinMaxCalibrator: amax = max |x|, TRT-7103-MinMaxCalibration */
    BZN_CALIB_PERCENTILE = 2 /* the given percentile of |x| (pytorch-quantization's rule),
                                TRT-7103-LegacyCalibration */
} bzn_calib_method;

#define BZN_CALIB_BINS 2048
#define BZN_CALIB_MAX_BINS 32768
#define BZN_CALIB_DEFAULT_PERCENTILE 99.99

/* "entropy", "minmax", "percentile" */
const char *bzn_calib_method_name(bzn_calib_method m);

typedef struct bzn_calibrator bzn_calibrator;

/* A calibrator for the tensors of contexts like `c` (same model, size and run_aux). */
bzn_status bzn_calibrator_create(const bzn_ctx *c, bzn_calibrator **out, bzn_error *err);
void bzn_calibrator_free(bzn_calibrator *cal);
/* Record the tensors of the last run of `c`, which must have been created with
 * keep_intermediates. All or nothing: on any error (no run yet, no keep_intermediates, a
 * different network, a NaN or infinite activation) the calibrator is unchanged. */
bzn_status bzn_calibrator_observe(bzn_calibrator *cal, const bzn_ctx *c, bzn_error *err);
int bzn_calibrator_num_tensors(const bzn_calibrator *cal);
int bzn_calibrator_num_observations(const bzn_calibrator *cal);

typedef struct {
    const char *name;  /* "input" or the layer's name */
    int layer;         /* bzn_ctx_layer index; -1 for the input */
    int channels, height, width;
    float max_abs;     /* largest |x| seen */
    int bins;          /* histogram bins now (0: every value so far was exactly 0) */
    double bin_width;
    int merges;        /* times the bins were merged to stay within BZN_CALIB_MAX_BINS */
    uint64_t values;   /* values recorded (elements x observations) */
} bzn_calib_tensor_info;
bzn_status bzn_calibrator_tensor(const bzn_calibrator *cal, int i, bzn_calib_tensor_info *info);

/* Per-tensor scales: what a computation gives and a calibration cache holds. `scales` can be
 * passed as bzn_ctx_options.scales / n_scales. */
typedef struct {
    bzn_calib_method method;
    int count;
    bzn_tensor_scale *scales; /* count entries: name and scale = amax / 127 (names owned here) */
    float *amax;              /* count entries: the amax (for a cache read: scale * 127) */
} bzn_calib_table;

/* amax per tensor by `method`; `percentile` (0..100, 0 = the default 99.99) is used by
 * BZN_CALIB_PERCENTILE only. Needs at least one observation. */
bzn_status bzn_calibrator_compute(const bzn_calibrator *cal, bzn_calib_method method, double percentile,
                                  bzn_calib_table **out, bzn_error *err);
/* The same, telling `progress` (may be NULL) after each group of tensors (a few per thread)
 * how many of bzn_calibrator_num_tensors are done, the last one named: entropy's search costs
 * seconds per tensor whose histogram has grown. The table is the same bit for bit. */
bzn_status bzn_calibrator_compute_progress(const bzn_calibrator *cal, bzn_calib_method method, double percentile,
                                           bzn_progress_fn progress, void *user, bzn_calib_table **out,
                                           bzn_error *err);
void bzn_calib_table_free(bzn_calib_table *t);

/* TensorRT's calibration cache: "TRT-7103-<Calibrator>", then "name: <hex>" per tensor, the
 * hex being the float32 bits of the scale, lower-case, no 0x, no zero padding. Written to a
 * temporary file in the same folder and renamed. */
bzn_status bzn_calib_cache_write(const char *path, const bzn_calib_table *t, bzn_error *err);
/* Strict reading: any TRT-<digits>- version of the three calibrators above; every line must be
 * "name: hex" with 1-8 hex digits; duplicate names, NaN, infinite or negative scales are errors
 * naming the line. (amax = scale * 127.) */
bzn_status bzn_calib_cache_read(const char *path, bzn_calib_table **out, bzn_error *err);
bzn_status bzn_calib_cache_parse(const void *data, size_t size, bzn_calib_table **out, bzn_error *err);
/* BZN_OK when the table names exactly the tensors a calibrator of `c` records; otherwise
 * BZN_ERR_FORMAT with the unknown and the missing names listed (nothing is guessed). */
bzn_status bzn_calib_cache_check(const bzn_calib_table *t, const bzn_ctx *c, bzn_error *err);

/* ---- INT8 sensitivity: which convolutions lose the most when quantized ------------ */

typedef struct {
    const char *name;    /* the convolution (a bzn_ctx_layer name; valid while the context is) */
    double logits_error; /* relative L2 error of the main logits against FP32, mean over frames */
    double dice;         /* Dice of the polyp mask against FP32's, mean over frames */
} bzn_sensitivity;

typedef struct {
    bzn_sensitivity all;      /* every convolution in INT8 (name NULL) */
    bzn_sensitivity *layers;  /* each convolution alone in INT8, the others FP32: most sensitive
                                 (largest logits error) first */
    int n_layers;
} bzn_sensitivity_report;

/* On n_frames preprocessed inputs (n x 3 x H x W at the size of `fp`, an FP32 context), with
 * the activation scales of `scales` (checked against the network): the whole network in
 * INT8, then each convolution alone. The top of the ranking is what bzn_quantize_model's
 * keep_fp32 is for. `progress` (may be NULL) is called after each convolution. */
bzn_status bzn_int8_sensitivity(bzn_ctx *fp, const float *inputs, int n_frames, const bzn_calib_table *scales,
                                bzn_sensitivity_report *report, bzn_progress_fn progress, void *user, bzn_error *err);
void bzn_sensitivity_report_free(bzn_sensitivity_report *r);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif
