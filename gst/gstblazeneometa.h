/*
 * gstblazeneometa.h - the per-frame result the `blazeneo` GStreamer element attaches to every
 * buffer it outputs, for downstream elements and applications.
 *
 * Every output buffer of `blazeneo` carries one GstBlazeneoMeta: how many pixels of the frame
 * were classified neoplastic, non-neoplastic and background, and the polyp area fraction.
 *
 * A plugin cannot be linked against (GStreamer loads it with dlopen()), so a downstream element
 * or an application does not call into the plugin: it finds the meta by its API type's name,
 * which the plugin registers when it is loaded. gst_buffer_get_blazeneo_meta() below does that
 * and needs nothing but this header:
 *
 *   #include "gstblazeneometa.h"
 *   ...
 *   const GstBlazeneoMeta *m = gst_buffer_get_blazeneo_meta(buffer);
 *   if (m) g_print("polyp: %.1f %% of the frame\n", 100.0 * m->polyp_fraction);
 *
 * The counts are those of the class map at the size the element saw the frame
 * (width x height below); an element that scales the video further down the pipeline copies
 * the meta unchanged, so compare the fraction, not the counts, after a scaler.
 */
#ifndef GST_BLAZENEO_META_H
#define GST_BLAZENEO_META_H

#include <gst/gst.h>

G_BEGIN_DECLS

/* The names the plugin registers: the meta API type, and the meta implementation. */
#define GST_BLAZENEO_META_API_NAME "GstBlazeneoMetaAPI"
#define GST_BLAZENEO_META_IMPL_NAME "GstBlazeneoMeta"

typedef struct {
    GstMeta meta;             /* the GStreamer header every meta starts with */
    gint width, height;       /* the frame the counts are of */
    guint64 neoplastic;       /* pixels of class 0: neoplastic polyp (red in the mask) */
    guint64 non_neoplastic;   /* pixels of class 1: non-neoplastic polyp (green) */
    guint64 background;       /* pixels of class 2: no polyp */
    gdouble polyp_fraction;   /* (neoplastic + non_neoplastic) / (width * height), 0 to 1 */
    guint64 frame;            /* 0 for the first frame the element processed since it started */
} GstBlazeneoMeta;

/* The meta of `buffer`, or NULL when it has none (or the plugin was never loaded). */
static inline GstBlazeneoMeta *gst_buffer_get_blazeneo_meta(GstBuffer *buffer) {
    const GType api = g_type_from_name(GST_BLAZENEO_META_API_NAME);
    return api ? (GstBlazeneoMeta *)gst_buffer_get_meta(buffer, api) : NULL;
}

/* Inside the plugin only (the functions live in libgstblazeneo.so, which nothing links). */
#ifdef GST_BLAZENEO_PLUGIN_BUILD
GType gst_blazeneo_meta_api_get_type(void);
const GstMetaInfo *gst_blazeneo_meta_get_info(void);
/* A new, zeroed meta on `buffer` (which must be writable). */
GstBlazeneoMeta *gst_buffer_add_blazeneo_meta(GstBuffer *buffer);
#endif

G_END_DECLS

#endif
