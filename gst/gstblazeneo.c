/*
 * gstblazeneo.c - the `blazeneo` GStreamer element: polyp segmentation of every video frame.
 *
 *   ... ! videoconvert ! blazeneo model=model.bzn output=overlay ! videoconvert ! autovideosink
 *
 * The element is a GstVideoFilter: GStreamer hands it one mapped input frame and one mapped
 * output frame at a time (transform_frame), in order, on the streaming thread, and waits
 * for it to finish; a slow network therefore slows the pipeline down (back-pressure) rather
 * than piling frames up, and no frame is ever dropped or reordered here.
 *
 * What happens when:
 *   start      (READY -> PAUSED)  open the weight file, create the context (network input
 *                                 size, backend, precision, threads): errors fail the state
 *                                 change with the library's message
 *   set_info   (caps negotiated,  (re)allocate the per-frame-size buffers; called again on a
 *               or changed)       caps change mid-stream, the context is kept (it runs frames
 *                                 of any size)
 *   transform_frame               input -> packed RGB24 -> bzn_run_rgb -> bzn_class_map ->
 *                                 classes / colour mask / overlay, meta (+ bus message)
 *   stop       (PAUSED -> READY)  free everything
 *
 * Every call into the engine is the one `blazeneo stream` (cli/cmd_stream.c) makes, so the
 * output is the same, byte for byte, as `blazeneo stream --out ...` on the same RGB frames.
 *
 * Caps: input RGB, RGBx or BGRx of any size and frame rate. Output, same size and rate:
 *   output=overlay  the input's format, the polyps blended and outlined in their colour, a legend
 *   output=mask     RGB, the colour mask (neoplastic red, non-neoplastic green, black)
 *   output=classes  GRAY8, one byte per pixel: 0 neoplastic, 1 non-neoplastic, 2 background
 */
#include <stdlib.h>
#include <string.h>

#include <gst/base/gstbasetransform.h>
#include <gst/gst.h>
#include <gst/video/gstvideofilter.h>
#include <gst/video/video.h>

#include "blazeneo.h"
#include "gstblazeneometa.h"

GST_DEBUG_CATEGORY_STATIC(gst_blazeneo_debug);
#define GST_CAT_DEFAULT gst_blazeneo_debug

/* ---- the enumerations of the properties ------------------------------------------------- */

typedef enum {
    GST_BLAZENEO_OUTPUT_OVERLAY = 0,
    GST_BLAZENEO_OUTPUT_MASK = 1,
    GST_BLAZENEO_OUTPUT_CLASSES = 2
} GstBlazeneoOutput;

static GType gst_blazeneo_output_get_type(void) {
    static GType type = 0;
    if (g_once_init_enter(&type)) {
        static const GEnumValue values[] = {
            {GST_BLAZENEO_OUTPUT_OVERLAY, "The input frame with the mask blended over the polyps (input format)",
             "overlay"},
            {GST_BLAZENEO_OUTPUT_MASK, "Colour mask: neoplastic red, non-neoplastic green, background black (RGB)",
             "mask"},
            {GST_BLAZENEO_OUTPUT_CLASSES,
             "Class of every pixel as one byte: 0 neoplastic, 1 non-neoplastic, 2 background (GRAY8)", "classes"},
            {0, NULL, NULL}};
        g_once_init_leave(&type, g_enum_register_static("GstBlazeneoOutput", values));
    }
    return type;
}

/* the precisions have bzn_precision's values, so they convert by a cast; auto is the CLI's
 * default without -p: int8 with a calibration cache, else the weight file's own precision */
typedef enum {
    GST_BLAZENEO_PRECISION_FP32 = BZN_PRECISION_FP32,
    GST_BLAZENEO_PRECISION_INT8 = BZN_PRECISION_INT8,
    GST_BLAZENEO_PRECISION_FP16 = BZN_PRECISION_FP16,
    GST_BLAZENEO_PRECISION_TF32 = BZN_PRECISION_TF32,
    GST_BLAZENEO_PRECISION_AUTO = 100
} GstBlazeneoPrecision;

static GType gst_blazeneo_precision_get_type(void) {
    static GType type = 0;
    if (g_once_init_enter(&type)) {
        static const GEnumValue values[] = {
            {GST_BLAZENEO_PRECISION_AUTO,
             "int8 when 'calib' is set, else the weight file's own (int8 for an INT8 weight file, else fp32)", "auto"},
            {GST_BLAZENEO_PRECISION_FP32,
             "Every convolution in float (an INT8 weight file runs on its weights dequantized)", "fp32"},
            {GST_BLAZENEO_PRECISION_INT8,
             "Convolutions on int8 (an INT8 weight file, or any model with a calibration cache in 'calib')", "int8"},
            {GST_BLAZENEO_PRECISION_FP16, "Convolutions on half weights and inputs, float sums (backend cuda)", "fp16"},
            {GST_BLAZENEO_PRECISION_TF32, "Convolutions on TF32 tensor cores, float sums (backend cuda)", "tf32"},
            {0, NULL, NULL}};
        g_once_init_leave(&type, g_enum_register_static("GstBlazeneoPrecision", values));
    }
    return type;
}

/* the values are bzn_legend_corner's */
static GType gst_blazeneo_legend_get_type(void) {
    static GType type = 0;
    if (g_once_init_enter(&type)) {
        static const GEnumValue values[] = {
            {BZN_LEGEND_NONE, "No legend", "none"},
            {BZN_LEGEND_TOP_LEFT, "Top left corner (in endoscopy frames the black margin outside the view)",
             "top-left"},
            {BZN_LEGEND_TOP_RIGHT, "Top right corner", "top-right"},
            {BZN_LEGEND_BOTTOM_LEFT, "Bottom left corner", "bottom-left"},
            {BZN_LEGEND_BOTTOM_RIGHT, "Bottom right corner", "bottom-right"},
            {0, NULL, NULL}};
        g_once_init_leave(&type, g_enum_register_static("GstBlazeneoLegend", values));
    }
    return type;
}

/* ---- the element's instance and class ---------------------------------------------------- */

#define GST_TYPE_BLAZENEO (gst_blazeneo_get_type())
G_DECLARE_FINAL_TYPE(GstBlazeneo, gst_blazeneo, GST, BLAZENEO, GstVideoFilter)

struct _GstBlazeneo {
    GstVideoFilter parent;

    /* Properties. Set from the application thread, read from the streaming thread: every
     * access holds the object lock (GST_OBJECT_LOCK). */
    gchar *model_path;   /* weight file */
    gchar *backend;      /* backend name ("cpu") */
    gchar *calib;        /* INT8 calibration cache, or NULL */
    gchar *keep_fp32;    /* INT8: convolutions kept in FP32, or NULL */
    gchar *size;         /* network input size "352" or "512x384"; NULL: the model's */
    GstBlazeneoPrecision precision;
    guint threads;       /* 0: all cores */
    GstBlazeneoOutput output;
    bzn_overlay_style style; /* output=overlay: alpha, outline, dark edge, legend */
    gboolean post_messages;

    /* Made in start, freed in stop; used by the streaming thread only in between. */
    bzn_model *model;
    bzn_ctx *ctx;
    guint64 frames;      /* frames processed since start */

    /* Made in set_info for the negotiated frame size (remade when it changes). */
    int width, height;
    uint8_t *rgb;        /* the input frame as packed RGB24 (when it is not that already) */
    uint8_t *classes;    /* class map, width * height bytes */
    uint8_t *out_rgb;    /* packed RGB24 result (mask or overlay) before it goes to the output */
};

G_DEFINE_TYPE(GstBlazeneo, gst_blazeneo, GST_TYPE_VIDEO_FILTER)

enum {
    PROP_0,
    PROP_MODEL,
    PROP_BACKEND,
    PROP_PRECISION,
    PROP_CALIB,
    PROP_KEEP_FP32,
    PROP_SIZE,
    PROP_THREADS,
    PROP_OUTPUT,
    PROP_ALPHA,
    PROP_OUTLINE,
    PROP_DARK_EDGE,
    PROP_LEGEND,
    PROP_MESSAGE
};

#define DEFAULT_BACKEND "cpu"
#define DEFAULT_PRECISION GST_BLAZENEO_PRECISION_AUTO /* the CLI's default (no -p) */
#define DEFAULT_THREADS 0
#define DEFAULT_OUTPUT GST_BLAZENEO_OUTPUT_OVERLAY
/* the overlay style's defaults are the library's (bzn_overlay_default_style), as the CLI's */
#define DEFAULT_MESSAGE FALSE

#define INPUT_FORMATS "{ RGB, RGBx, BGRx }"

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(GST_VIDEO_CAPS_MAKE(INPUT_FORMATS)));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(GST_VIDEO_CAPS_MAKE("{ RGB, RGBx, BGRx, GRAY8 }")));

/* ---- the overlay: the one place that calls the library's drawing ----------------------- */

/* Draw the class map over the frame (packed RGB24 in and out, classes one byte per pixel, all
 * width x height) in `style`: the call `blazeneo stream --out overlay` makes. When the
 * library's overlay call changes, only this function changes. */
static bzn_status draw_overlay(const uint8_t *frame_rgb, const uint8_t *classes, int width, int height,
                               const bzn_overlay_style *style, uint8_t *out_rgb, bzn_error *err) {
    return bzn_overlay_draw(frame_rgb, classes, width, height, style, out_rgb, err);
}

/* ---- properties --------------------------------------------------------------------------- */

/* Properties that shape the context or the caps can only change while the element is
 * stopped (NULL or READY); a change while running is refused with a warning. */
static gboolean refuse_while_running(GstBlazeneo *self, const GParamSpec *pspec) {
    if (!self->ctx) return FALSE;
    GST_WARNING_OBJECT(self, "property '%s' cannot change while the element is running (set it in READY)",
                       pspec->name);
    return TRUE;
}

static void set_string(gchar **field, const GValue *value) {
    g_free(*field);
    const gchar *s = g_value_get_string(value);
    *field = (s && *s) ? g_strdup(s) : NULL; /* "" means unset */
}

static void gst_blazeneo_set_property(GObject *object, guint id, const GValue *value, GParamSpec *pspec) {
    GstBlazeneo *self = GST_BLAZENEO(object);
    GST_OBJECT_LOCK(self);
    switch (id) {
    case PROP_ALPHA: self->style.alpha = g_value_get_float(value); break;
    case PROP_OUTLINE: self->style.outline = g_value_get_int(value); break;
    case PROP_DARK_EDGE: self->style.dark_edge = g_value_get_boolean(value); break;
    case PROP_LEGEND: self->style.legend = (bzn_legend_corner)g_value_get_enum(value); break;
    case PROP_MESSAGE: self->post_messages = g_value_get_boolean(value); break;
    default:
        if (refuse_while_running(self, pspec)) break;
        switch (id) {
        case PROP_MODEL: set_string(&self->model_path, value); break;
        case PROP_BACKEND: set_string(&self->backend, value); break;
        case PROP_CALIB: set_string(&self->calib, value); break;
        case PROP_KEEP_FP32: set_string(&self->keep_fp32, value); break;
        case PROP_SIZE: set_string(&self->size, value); break;
        case PROP_PRECISION: self->precision = (GstBlazeneoPrecision)g_value_get_enum(value); break;
        case PROP_THREADS: self->threads = g_value_get_uint(value); break;
        case PROP_OUTPUT: self->output = (GstBlazeneoOutput)g_value_get_enum(value); break;
        default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec); break;
        }
    }
    GST_OBJECT_UNLOCK(self);
}

static void gst_blazeneo_get_property(GObject *object, guint id, GValue *value, GParamSpec *pspec) {
    GstBlazeneo *self = GST_BLAZENEO(object);
    GST_OBJECT_LOCK(self);
    switch (id) {
    case PROP_MODEL: g_value_set_string(value, self->model_path); break;
    case PROP_BACKEND: g_value_set_string(value, self->backend ? self->backend : DEFAULT_BACKEND); break;
    case PROP_CALIB: g_value_set_string(value, self->calib); break;
    case PROP_KEEP_FP32: g_value_set_string(value, self->keep_fp32); break;
    case PROP_SIZE: g_value_set_string(value, self->size); break;
    case PROP_PRECISION: g_value_set_enum(value, self->precision); break;
    case PROP_THREADS: g_value_set_uint(value, self->threads); break;
    case PROP_OUTPUT: g_value_set_enum(value, self->output); break;
    case PROP_ALPHA: g_value_set_float(value, self->style.alpha); break;
    case PROP_OUTLINE: g_value_set_int(value, self->style.outline); break;
    case PROP_DARK_EDGE: g_value_set_boolean(value, self->style.dark_edge != 0); break;
    case PROP_LEGEND: g_value_set_enum(value, self->style.legend); break;
    case PROP_MESSAGE: g_value_set_boolean(value, self->post_messages); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec); break;
    }
    GST_OBJECT_UNLOCK(self);
}

/* ---- caps: what goes out for what comes in --------------------------------------------- */

static GstBlazeneoOutput current_output(GstBlazeneo *self) {
    GST_OBJECT_LOCK(self);
    const GstBlazeneoOutput out = self->output;
    GST_OBJECT_UNLOCK(self);
    return out;
}

/* Given caps on one pad (`direction` says which), the caps possible on the other: the same
 * width, height, frame rate and pixel aspect ratio; the format as `output` decides. */
static GstCaps *gst_blazeneo_transform_caps(GstBaseTransform *trans, GstPadDirection direction, GstCaps *caps,
                                            GstCaps *filter) {
    GstBlazeneo *self = GST_BLAZENEO(trans);
    const GstBlazeneoOutput output = current_output(self);
    /* the formats on this side of the element and the ones the other side gets */
    const char *here, *there;
    if (output == GST_BLAZENEO_OUTPUT_OVERLAY) {
        here = there = NULL; /* the same format on both sides */
    } else {
        const char *out_format = output == GST_BLAZENEO_OUTPUT_MASK ? "RGB" : "GRAY8";
        here = direction == GST_PAD_SINK ? INPUT_FORMATS : out_format;
        there = direction == GST_PAD_SINK ? out_format : INPUT_FORMATS;
    }
    GstCaps *result;
    if (!here) {
        /* overlay: anything we accept, unchanged (the pad templates limit it to our formats) */
        GstCaps *allowed = gst_caps_from_string("video/x-raw, format=(string)" INPUT_FORMATS);
        result = gst_caps_intersect(caps, allowed);
        gst_caps_unref(allowed);
    } else {
        /* keep the structures that have a format of this side, then change the format */
        gchar *s = g_strdup_printf("video/x-raw, format=(string)%s", here);
        GstCaps *allowed = gst_caps_from_string(s);
        g_free(s);
        GstCaps *mine = gst_caps_intersect(caps, allowed);
        gst_caps_unref(allowed);
        result = gst_caps_new_empty();
        gchar *other = g_strdup_printf("video/x-raw, format=(string)%s", there);
        GstCaps *other_caps = gst_caps_from_string(other);
        g_free(other);
        const GValue *other_format = gst_structure_get_value(gst_caps_get_structure(other_caps, 0), "format");
        for (guint i = 0; i < gst_caps_get_size(mine); i++) {
            GstStructure *st = gst_structure_copy(gst_caps_get_structure(mine, i));
            gst_structure_set_value(st, "format", other_format);
            /* an RGB colour space says nothing about the other format's */
            gst_structure_remove_fields(st, "colorimetry", "chroma-site", NULL);
            result = gst_caps_merge_structure(result, st);
        }
        gst_caps_unref(other_caps);
        gst_caps_unref(mine);
    }
    if (filter) {
        GstCaps *t = gst_caps_intersect_full(filter, result, GST_CAPS_INTERSECT_FIRST);
        gst_caps_unref(result);
        result = t;
    }
    GST_DEBUG_OBJECT(self, "transformed %" GST_PTR_FORMAT " into %" GST_PTR_FORMAT, caps, result);
    return result;
}

/* ---- start and stop: the model and the context ------------------------------------------ */

/* What start needs from the properties, copied under the lock so start can take its time. */
typedef struct {
    gchar *model_path, *backend, *calib, *keep_fp32, *size;
    GstBlazeneoPrecision precision;
    guint threads;
} start_settings;

static void start_settings_clear(start_settings *s) {
    g_free(s->model_path);
    g_free(s->backend);
    g_free(s->calib);
    g_free(s->keep_fp32);
    g_free(s->size);
}

/* The precision that runs: the property's, or for auto what the CLI runs without -p: int8 with
 * a calibration cache, else the weight file's (bzn_ctx_default_options picks it). */
static bzn_precision precision_of(const bzn_model *m, const start_settings *s) {
    if (s->precision != GST_BLAZENEO_PRECISION_AUTO) return (bzn_precision)s->precision;
    if (s->calib) return BZN_PRECISION_INT8;
    return bzn_ctx_default_options(m).precision;
}

/* The context as the CLI makes it (cli/common.c, cli_ctx_create): the model's default options,
 * then size, backend, threads, precision, keep-fp32; with a calibration cache its scales,
 * and afterwards the check that the cache names exactly this network's tensors. On failure
 * *ctx is NULL and err says why (naming the cache when the cache is the cause). */
static bzn_status make_context(const bzn_model *m, const start_settings *s, bzn_ctx **ctx, bzn_error *err) {
    *ctx = NULL;
    bzn_ctx_options o = bzn_ctx_default_options(m);
    if (s->size && bzn_parse_size(s->size, &o.width, &o.height, err) != BZN_OK) return BZN_ERR_ARG;
    o.backend = s->backend;
    o.threads = (int)s->threads;
    o.precision = precision_of(m, s);
    o.keep_fp32 = s->keep_fp32;
    if (s->calib && o.precision != BZN_PRECISION_INT8) {
        err->status = BZN_ERR_ARG;
        snprintf(err->msg, sizeof err->msg, "calib is for precision=int8 (calibration cache '%s' given with fp32)",
                 s->calib);
        return BZN_ERR_ARG;
    }
    bzn_calib_table *t = NULL;
    if (s->calib) {
        bzn_status st = bzn_calib_cache_read(s->calib, &t, err);
        if (st != BZN_OK) return st;
        o.scales = t->scales;
        o.n_scales = t->count;
    }
    bzn_status st = bzn_ctx_create(m, &o, ctx, err);
    /* the cache must name exactly this network's tensors: nothing guessed, nothing ignored */
    if (st == BZN_OK && t) st = bzn_calib_cache_check(t, *ctx, err);
    bzn_calib_table_free(t);
    if (st != BZN_OK) {
        bzn_ctx_free(*ctx);
        *ctx = NULL;
        if (s->calib) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            snprintf(err->msg, sizeof err->msg, "%s: %.400s", s->calib, msg);
        }
    }
    return st;
}

static gboolean gst_blazeneo_start(GstBaseTransform *trans) {
    GstBlazeneo *self = GST_BLAZENEO(trans);
    start_settings s;
    GST_OBJECT_LOCK(self);
    s.model_path = g_strdup(self->model_path);
    s.backend = g_strdup(self->backend);
    s.calib = g_strdup(self->calib);
    s.keep_fp32 = g_strdup(self->keep_fp32);
    s.size = g_strdup(self->size);
    s.precision = self->precision;
    s.threads = self->threads;
    GST_OBJECT_UNLOCK(self);

    gboolean ok = FALSE;
    bzn_error e = {0};
    bzn_model *model = NULL;
    bzn_ctx *ctx = NULL;
    if (!s.model_path) {
        GST_ELEMENT_ERROR(self, RESOURCE, NOT_FOUND, ("No model given: set the 'model' property to a .bzn weight file"),
                          (NULL));
        goto done;
    }
    if (bzn_model_open(s.model_path, &model, &e) != BZN_OK) {
        GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("%s", e.msg), ("model='%s'", s.model_path));
        goto done;
    }
    if (make_context(model, &s, &ctx, &e) != BZN_OK) {
        GST_ELEMENT_ERROR(self, LIBRARY, SETTINGS, ("%s", e.msg),
                          ("model='%s' backend='%s' precision=%s%s calib='%s' size='%s' threads=%u", s.model_path,
                           s.backend ? s.backend : DEFAULT_BACKEND, bzn_precision_name(precision_of(model, &s)),
                           s.precision == GST_BLAZENEO_PRECISION_AUTO ? " (auto)" : "", s.calib ? s.calib : "",
                           s.size ? s.size : "", s.threads));
        bzn_model_free(model);
        model = NULL;
        goto done;
    }
    GST_INFO_OBJECT(self, "model %s on backend %s, %d thread(s), precision %s%s", s.model_path,
                    bzn_ctx_backend(ctx), bzn_ctx_threads(ctx), bzn_precision_name(precision_of(model, &s)),
                    s.precision == GST_BLAZENEO_PRECISION_AUTO ? " (auto)" : "");
    GST_OBJECT_LOCK(self);
    self->model = model;
    self->ctx = ctx;
    self->frames = 0;
    GST_OBJECT_UNLOCK(self);
    ok = TRUE;
done:
    start_settings_clear(&s);
    return ok;
}

static void free_frame_buffers(GstBlazeneo *self) {
    g_free(self->rgb);
    g_free(self->classes);
    g_free(self->out_rgb);
    self->rgb = self->classes = self->out_rgb = NULL;
    self->width = self->height = 0;
}

static gboolean gst_blazeneo_stop(GstBaseTransform *trans) {
    GstBlazeneo *self = GST_BLAZENEO(trans);
    GST_OBJECT_LOCK(self);
    bzn_ctx *ctx = self->ctx;
    bzn_model *model = self->model;
    self->ctx = NULL;
    self->model = NULL;
    GST_OBJECT_UNLOCK(self);
    bzn_ctx_free(ctx); /* the context first: it uses the model */
    bzn_model_free(model);
    free_frame_buffers(self);
    return TRUE;
}

/* ---- set_info: buffers for the negotiated frame size ------------------------------------ */

/* the largest frame side (as blazeneo stream's -W/-H): row sizes stay far from int's limit */
#define MAX_FRAME_SIDE 16384

static gboolean gst_blazeneo_set_info(GstVideoFilter *filter, GstCaps *incaps, GstVideoInfo *in_info,
                                      GstCaps *outcaps, GstVideoInfo *out_info) {
    (void)incaps;
    (void)outcaps;
    GstBlazeneo *self = GST_BLAZENEO(filter);
    const int w = GST_VIDEO_INFO_WIDTH(in_info), h = GST_VIDEO_INFO_HEIGHT(in_info);
    if (w != GST_VIDEO_INFO_WIDTH(out_info) || h != GST_VIDEO_INFO_HEIGHT(out_info) || w <= 0 || h <= 0) {
        GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("Input and output frame sizes differ (%dx%d and %dx%d)", w, h,
                                                    GST_VIDEO_INFO_WIDTH(out_info), GST_VIDEO_INFO_HEIGHT(out_info)),
                          (NULL));
        return FALSE;
    }
    if (w > MAX_FRAME_SIDE || h > MAX_FRAME_SIDE) {
        GST_ELEMENT_ERROR(self, STREAM, FORMAT, ("Frames of %dx%d are too large (at most %d pixels a side)", w, h,
                                                 MAX_FRAME_SIDE),
                          (NULL));
        return FALSE;
    }
    GST_INFO_OBJECT(self, "frames of %dx%d, %s in, %s out", w, h, GST_VIDEO_INFO_NAME(in_info),
                    GST_VIDEO_INFO_NAME(out_info));
    if (w == self->width && h == self->height) return TRUE; /* same size: the buffers fit */
    free_frame_buffers(self);
    const gsize npix = (gsize)w * (gsize)h;
    /* g_try_malloc: a huge frame is an error message, not an abort */
    self->rgb = g_try_malloc(npix * 3);
    self->classes = g_try_malloc(npix);
    self->out_rgb = g_try_malloc(npix * 3);
    if (!self->rgb || !self->classes || !self->out_rgb) {
        free_frame_buffers(self);
        GST_ELEMENT_ERROR(self, RESOURCE, NO_SPACE_LEFT, ("Out of memory for %dx%d frames", w, h), (NULL));
        return FALSE;
    }
    self->width = w;
    self->height = h;
    return TRUE;
}

/* ---- per frame ------------------------------------------------------------------------------ */

/* The input frame as packed RGB24 rows (what `blazeneo stream` reads): the frame itself when it
 * is RGB without row padding, else converted into self->rgb (RGBx: drop x; BGRx: swap B and R;
 * RGB with padded rows: the rows copied together). */
static const uint8_t *packed_rgb(GstBlazeneo *self, const GstVideoFrame *in) {
    const int w = self->width, h = self->height;
    const uint8_t *src = GST_VIDEO_FRAME_PLANE_DATA(in, 0);
    const int stride = GST_VIDEO_FRAME_PLANE_STRIDE(in, 0);
    const GstVideoFormat fmt = GST_VIDEO_FRAME_FORMAT(in);
    if (fmt == GST_VIDEO_FORMAT_RGB && stride == w * 3) return src;
    for (int y = 0; y < h; y++) {
        const uint8_t *s = src + (gsize)y * stride;
        uint8_t *d = self->rgb + (gsize)y * w * 3;
        if (fmt == GST_VIDEO_FORMAT_RGB) {
            memcpy(d, s, (gsize)w * 3);
        } else if (fmt == GST_VIDEO_FORMAT_RGBx) {
            for (int x = 0; x < w; x++, s += 4, d += 3) d[0] = s[0], d[1] = s[1], d[2] = s[2];
        } else { /* BGRx */
            for (int x = 0; x < w; x++, s += 4, d += 3) d[0] = s[2], d[1] = s[1], d[2] = s[0];
        }
    }
    return self->rgb;
}

/* Packed RGB24 (w x h) into the output frame: RGB rows copied to its stride, RGBx/BGRx with
 * the channels put back in place and the x byte set to 255. */
static void write_rgb(const uint8_t *rgb, int w, int h, GstVideoFrame *out) {
    uint8_t *dst = GST_VIDEO_FRAME_PLANE_DATA(out, 0);
    const int stride = GST_VIDEO_FRAME_PLANE_STRIDE(out, 0);
    const GstVideoFormat fmt = GST_VIDEO_FRAME_FORMAT(out);
    for (int y = 0; y < h; y++) {
        const uint8_t *s = rgb + (gsize)y * w * 3;
        uint8_t *d = dst + (gsize)y * stride;
        if (fmt == GST_VIDEO_FORMAT_RGB) {
            memcpy(d, s, (gsize)w * 3);
        } else if (fmt == GST_VIDEO_FORMAT_RGBx) {
            for (int x = 0; x < w; x++, s += 3, d += 4) d[0] = s[0], d[1] = s[1], d[2] = s[2], d[3] = 255;
        } else { /* BGRx */
            for (int x = 0; x < w; x++, s += 3, d += 4) d[0] = s[2], d[1] = s[1], d[2] = s[0], d[3] = 255;
        }
    }
}

/* Where a packed RGB24 result can be written: straight into the output frame when it is RGB
 * without row padding (no copy), else into self->out_rgb (then write_rgb). */
static uint8_t *rgb_target(GstBlazeneo *self, GstVideoFrame *out) {
    if (GST_VIDEO_FRAME_FORMAT(out) == GST_VIDEO_FORMAT_RGB &&
        GST_VIDEO_FRAME_PLANE_STRIDE(out, 0) == self->width * 3)
        return GST_VIDEO_FRAME_PLANE_DATA(out, 0);
    return self->out_rgb;
}

/* The per-frame figures the meta and the message carry. */
typedef struct {
    guint64 count[3]; /* pixels per class: neoplastic, non-neoplastic, background */
    gdouble polyp_fraction;
} frame_stats;

static frame_stats count_classes(const uint8_t *classes, gsize n) {
    frame_stats st = {{0, 0, 0}, 0.0};
    for (gsize i = 0; i < n; i++) st.count[classes[i] <= 2 ? classes[i] : 2]++;
    st.polyp_fraction = n ? (gdouble)(st.count[0] + st.count[1]) / (gdouble)n : 0.0;
    return st;
}

static void attach_results(GstBlazeneo *self, GstBuffer *buf, const frame_stats *st, guint64 frame,
                           gboolean post) {
    /* a buffer that went through another blazeneo before carries a copy of its meta: update
     * that one rather than adding a second */
    GstBlazeneoMeta *m = gst_buffer_get_blazeneo_meta(buf);
    if (!m) m = gst_buffer_add_blazeneo_meta(buf);
    if (m) {
        m->width = self->width;
        m->height = self->height;
        m->neoplastic = st->count[0];
        m->non_neoplastic = st->count[1];
        m->background = st->count[2];
        m->polyp_fraction = st->polyp_fraction;
        m->frame = frame;
    } else {
        GST_WARNING_OBJECT(self, "cannot attach the meta to frame %" G_GUINT64_FORMAT, frame);
    }
    if (!post) return;
    GstStructure *s = gst_structure_new(
        "blazeneo", "frame", G_TYPE_UINT64, frame, "timestamp", G_TYPE_UINT64, GST_BUFFER_PTS(buf), "width",
        G_TYPE_INT, self->width, "height", G_TYPE_INT, self->height, "neoplastic", G_TYPE_UINT64, st->count[0],
        "non-neoplastic", G_TYPE_UINT64, st->count[1], "background", G_TYPE_UINT64, st->count[2], "polyp-fraction",
        G_TYPE_DOUBLE, st->polyp_fraction, NULL);
    GstMessage *msg = gst_message_new_element(GST_OBJECT(self), s);
    if (!msg || !gst_element_post_message(GST_ELEMENT(self), msg))
        GST_DEBUG_OBJECT(self, "frame %" G_GUINT64_FORMAT ": no bus to post the message on", frame);
}

static GstFlowReturn gst_blazeneo_transform_frame(GstVideoFilter *filter, GstVideoFrame *in, GstVideoFrame *out) {
    GstBlazeneo *self = GST_BLAZENEO(filter);
    GST_OBJECT_LOCK(self);
    const GstBlazeneoOutput output = self->output;
    const bzn_overlay_style style = self->style;
    const gboolean post = self->post_messages;
    bzn_ctx *ctx = self->ctx;
    const guint64 frame = self->frames++;
    GST_OBJECT_UNLOCK(self);
    const int w = self->width, h = self->height;
    if (!ctx || !self->classes || GST_VIDEO_FRAME_WIDTH(in) != w || GST_VIDEO_FRAME_HEIGHT(in) != h) {
        GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("Frame before negotiation or of the wrong size"),
                          ("frame %" G_GUINT64_FORMAT ": %dx%d, negotiated %dx%d", frame, GST_VIDEO_FRAME_WIDTH(in),
                           GST_VIDEO_FRAME_HEIGHT(in), w, h));
        return GST_FLOW_NOT_NEGOTIATED;
    }
    const gsize npix = (gsize)w * (gsize)h;

    /* 1. the network, as `blazeneo stream` runs it */
    const uint8_t *rgb = packed_rgb(self, in);
    bzn_error e = {0};
    if (bzn_run_rgb(ctx, rgb, w, h, w * 3, &e) != BZN_OK || bzn_class_map(ctx, self->classes, w, h, &e) != BZN_OK) {
        GST_ELEMENT_ERROR(self, STREAM, FAILED, ("%s", e.msg), ("frame %" G_GUINT64_FORMAT, frame));
        return GST_FLOW_ERROR;
    }

    /* 2. the output frame */
    if (output == GST_BLAZENEO_OUTPUT_CLASSES) {
        uint8_t *dst = GST_VIDEO_FRAME_PLANE_DATA(out, 0);
        const int stride = GST_VIDEO_FRAME_PLANE_STRIDE(out, 0);
        for (int y = 0; y < h; y++) memcpy(dst + (gsize)y * stride, self->classes + (gsize)y * w, (gsize)w);
    } else {
        uint8_t *target = rgb_target(self, out);
        if (output == GST_BLAZENEO_OUTPUT_MASK) {
            bzn_colorize(self->classes, npix, target);
        } else if (draw_overlay(rgb, self->classes, w, h, &style, target, &e) != BZN_OK) {
            GST_ELEMENT_ERROR(self, STREAM, FAILED, ("%s", e.msg), ("frame %" G_GUINT64_FORMAT, frame));
            return GST_FLOW_ERROR;
        }
        if (target == self->out_rgb) write_rgb(target, w, h, out);
    }

    /* 3. the figures: meta on the buffer, and the optional bus message */
    const frame_stats st = count_classes(self->classes, npix);
    attach_results(self, out->buffer, &st, frame, post);
    return GST_FLOW_OK;
}

/* ---- the GObject boilerplate ----------------------------------------------------------- */

static void gst_blazeneo_finalize(GObject *object) {
    GstBlazeneo *self = GST_BLAZENEO(object);
    /* stop has normally run; a pipeline torn down in an error can still leave these */
    bzn_ctx_free(self->ctx);
    bzn_model_free(self->model);
    free_frame_buffers(self);
    g_free(self->model_path);
    g_free(self->backend);
    g_free(self->calib);
    g_free(self->keep_fp32);
    g_free(self->size);
    G_OBJECT_CLASS(gst_blazeneo_parent_class)->finalize(object);
}

static void gst_blazeneo_init(GstBlazeneo *self) {
    /* GstVideoFilter turns QoS on, which would skip frames that arrive late at a synchronised
     * sink; here every frame is segmented unless the user sets qos=true */
    gst_base_transform_set_qos_enabled(GST_BASE_TRANSFORM(self), FALSE);
    self->backend = g_strdup(DEFAULT_BACKEND);
    self->precision = DEFAULT_PRECISION;
    self->threads = DEFAULT_THREADS;
    self->output = DEFAULT_OUTPUT;
    self->style = bzn_overlay_default_style();
    self->post_messages = DEFAULT_MESSAGE;
}

/* "cpu (OpenBLAS ...), ref (...)": the backends this build has, for the property's help. */
static const gchar *backend_blurb(void) {
    GString *s = g_string_new("Backend that runs the network, one of this build's: ");
    for (int i = 0; i < bzn_backend_count(); i++) {
        const char *d = bzn_backend_description(i);
        g_string_append_printf(s, "%s%s%s%s%s", i ? "; " : "", bzn_backend_name(i), d ? " (" : "", d ? d : "",
                               d ? ")" : "");
    }
    /* interned: the string lives as long as the process, as a blurb must */
    const gchar *blurb = g_intern_string(s->str);
    g_string_free(s, TRUE);
    return blurb;
}

static void gst_blazeneo_class_init(GstBlazeneoClass *klass) {
    GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
    GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
    GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS(klass);
    GstVideoFilterClass *filter_class = GST_VIDEO_FILTER_CLASS(klass);

    gobject_class->set_property = gst_blazeneo_set_property;
    gobject_class->get_property = gst_blazeneo_get_property;
    gobject_class->finalize = gst_blazeneo_finalize;

    const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;
    const GParamFlags ready = rw | GST_PARAM_MUTABLE_READY;
    g_object_class_install_property(
        gobject_class, PROP_MODEL,
        g_param_spec_string("model", "Model",
                            "BlazeNeo weight file (.bzn, made by 'blazeneo convert' or 'blazeneo quantize'); opened "
                            "when the element goes from READY to PAUSED",
                            NULL, ready));
    g_object_class_install_property(gobject_class, PROP_BACKEND,
                                    g_param_spec_string("backend", "Backend", backend_blurb(), DEFAULT_BACKEND, ready));
    g_object_class_install_property(
        gobject_class, PROP_PRECISION,
        g_param_spec_enum("precision", "Precision",
                          "fp32, int8, fp16 or tf32 (as blazeneo -p; fp16 and tf32 on backend cuda); int8 needs an INT8 weight file (blazeneo quantize) or a "
                          "calibration cache in 'calib'. auto, the default, is the CLI's without -p: int8 with "
                          "'calib', else the weight file's own",
                          gst_blazeneo_precision_get_type(), DEFAULT_PRECISION, ready));
    g_object_class_install_property(
        gobject_class, PROP_CALIB,
        g_param_spec_string("calib", "Calibration cache",
                            "precision=int8: activation scales from a calibration cache (blazeneo calibrate), checked "
                            "against the network; not needed with an INT8 weight file (as blazeneo --calib)",
                            NULL, ready));
    g_object_class_install_property(
        gobject_class, PROP_KEEP_FP32,
        g_param_spec_string("keep-fp32", "Keep FP32",
                            "precision=int8: comma-separated convolutions kept in FP32 (as blazeneo --keep-fp32)",
                            NULL, ready));
    g_object_class_install_property(
        gobject_class, PROP_SIZE,
        g_param_spec_string("size", "Network input size",
                            "Size the network runs at, multiples of 32: \"352\" or \"512x384\" (width x height); "
                            "unset: the model's own (352x352). Frames of any size are resized to it and the mask "
                            "back to the frame (as blazeneo -s)",
                            NULL, ready));
    g_object_class_install_property(
        gobject_class, PROP_THREADS,
        g_param_spec_uint("threads", "Threads", "CPU threads the network runs on (0 = all cores)", 0, 1024,
                          DEFAULT_THREADS, ready));
    g_object_class_install_property(
        gobject_class, PROP_OUTPUT,
        g_param_spec_enum("output", "Output",
                          "What goes out: overlay (the input format), mask (RGB) or classes (GRAY8); same size "
                          "and frame rate as the input",
                          gst_blazeneo_output_get_type(), DEFAULT_OUTPUT, ready));
    const bzn_overlay_style style = bzn_overlay_default_style(); /* the defaults */
    const GParamFlags live = rw | GST_PARAM_MUTABLE_PLAYING; /* may change while playing */
    g_object_class_install_property(
        gobject_class, PROP_ALPHA,
        g_param_spec_float("alpha", "Alpha",
                           "output=overlay: weight of the class colour over the inside of polyps, "
                           "(1 - alpha) * frame + alpha * colour (background pixels stay as they are)",
                           0.0f, 1.0f, style.alpha, live | GST_PARAM_CONTROLLABLE));
    g_object_class_install_property(
        gobject_class, PROP_OUTLINE,
        g_param_spec_int("outline", "Outline",
                         "output=overlay: width in pixels of a line in the full class colour along the inside of "
                         "each polyp's border; 0 = none, -1 = scaled to the frame (max(2, round(min(width, height) / 500)))",
                         BZN_OVERLAY_AUTO, BZN_OVERLAY_MAX_OUTLINE, style.outline, live));
    g_object_class_install_property(
        gobject_class, PROP_DARK_EDGE,
        g_param_spec_boolean("dark-edge", "Dark edge",
                             "output=overlay: draw background pixels next to a polyp black, a dark rim outside the "
                             "outline that stands out on red mucosa (no effect without an outline)",
                             style.dark_edge != 0, live));
    g_object_class_install_property(
        gobject_class, PROP_LEGEND,
        g_param_spec_enum("legend", "Legend",
                          "output=overlay: corner of a legend naming the two colours (left out on frames too small "
                          "for it)",
                          gst_blazeneo_legend_get_type(), style.legend, live));
    g_object_class_install_property(
        gobject_class, PROP_MESSAGE,
        g_param_spec_boolean(
            "message", "Message",
            "Post an element message \"blazeneo\" on the bus for every frame, with the fields frame, timestamp, "
            "width, height, neoplastic, non-neoplastic, background (pixel counts) and polyp-fraction (see "
            "gst-launch-1.0 -m); the same figures are always on the buffer as GstBlazeneoMeta",
            DEFAULT_MESSAGE, live));

    gst_element_class_set_static_metadata(
        element_class, "BlazeNeo polyp segmentation", "Filter/Effect/Video",
        "Segments polyps in colonoscopy video with the BlazeNeo network: neoplastic and non-neoplastic polyps as "
        "an overlay, a colour mask or a class map, with per-frame pixel counts as buffer metadata",
        "BlazeNeo-C");
    gst_element_class_add_static_pad_template(element_class, &sink_template);
    gst_element_class_add_static_pad_template(element_class, &src_template);

    trans_class->transform_caps = GST_DEBUG_FUNCPTR(gst_blazeneo_transform_caps);
    trans_class->start = GST_DEBUG_FUNCPTR(gst_blazeneo_start);
    trans_class->stop = GST_DEBUG_FUNCPTR(gst_blazeneo_stop);
    /* never pass buffers through untouched, even when the caps on both sides are the same */
    trans_class->passthrough_on_same_caps = FALSE;
    filter_class->set_info = GST_DEBUG_FUNCPTR(gst_blazeneo_set_info);
    filter_class->transform_frame = GST_DEBUG_FUNCPTR(gst_blazeneo_transform_frame);

    gst_type_mark_as_plugin_api(gst_blazeneo_output_get_type(), 0);
    gst_type_mark_as_plugin_api(gst_blazeneo_precision_get_type(), 0);
    gst_type_mark_as_plugin_api(gst_blazeneo_legend_get_type(), 0);
}

/* ---- the plugin ------------------------------------------------------------------------------ */

static gboolean plugin_init(GstPlugin *plugin) {
    GST_DEBUG_CATEGORY_INIT(gst_blazeneo_debug, "blazeneo", 0, "BlazeNeo polyp segmentation");
    /* register the meta now, so downstream code finds its API type by name */
    if (!gst_blazeneo_meta_get_info()) return FALSE;
    return gst_element_register(plugin, "blazeneo", GST_RANK_NONE, GST_TYPE_BLAZENEO);
}

#define PACKAGE "blazeneo"
GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, blazeneo,
                  "BlazeNeo polyp segmentation (the BlazeNeo-C inference engine)", plugin_init, BZN_GST_VERSION,
                  GST_LICENSE_UNKNOWN, "BlazeNeo-C", "BlazeNeo-C source tree (gst/)")
