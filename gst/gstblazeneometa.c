/*
 * gstblazeneometa.c - registration of GstBlazeneoMeta (see gstblazeneometa.h).
 *
 * GStreamer metadata comes in two parts:
 *   - an API type ("GstBlazeneoMetaAPI"): what downstream code asks a buffer for;
 *   - an implementation (GstMetaInfo, "GstBlazeneoMeta"): the size of the struct and the
 *     functions that initialise, free and transform (copy) it.
 * Both are registered once per process, the first time they are asked for (g_once_init_*
 * makes that safe when several threads ask at the same time).
 */
#include "gstblazeneometa.h"

#include <string.h>

GType gst_blazeneo_meta_api_get_type(void) {
    static GType type = 0;
    if (g_once_init_enter(&type)) {
        /* No tags: the meta describes what is in the picture, not how its pixels are laid out,
         * so elements that convert or scale the video keep it (they drop metas whose tags
         * they do not know). */
        static const gchar *tags[] = {NULL};
        const GType t = gst_meta_api_type_register(GST_BLAZENEO_META_API_NAME, tags);
        g_once_init_leave(&type, t);
    }
    return type;
}

static gboolean meta_init(GstMeta *meta, gpointer params, GstBuffer *buffer) {
    (void)params;
    (void)buffer;
    GstBlazeneoMeta *m = (GstBlazeneoMeta *)meta;
    /* everything after the GstMeta header starts at zero */
    memset((guint8 *)m + sizeof m->meta, 0, sizeof *m - sizeof m->meta);
    return TRUE;
}

/* Called when a buffer carrying the meta is copied or transformed into another buffer
 * (gst_buffer_copy, a converter, a scaler): the new buffer gets the same counts. */
static gboolean meta_transform(GstBuffer *dest, GstMeta *meta, GstBuffer *buffer, GQuark type, gpointer data) {
    (void)buffer;
    (void)type;
    (void)data;
    const GstBlazeneoMeta *src = (const GstBlazeneoMeta *)meta;
    GstBlazeneoMeta *dst = gst_buffer_add_blazeneo_meta(dest);
    if (!dst) return FALSE;
    dst->width = src->width;
    dst->height = src->height;
    dst->neoplastic = src->neoplastic;
    dst->non_neoplastic = src->non_neoplastic;
    dst->background = src->background;
    dst->polyp_fraction = src->polyp_fraction;
    dst->frame = src->frame;
    return TRUE;
}

const GstMetaInfo *gst_blazeneo_meta_get_info(void) {
    static const GstMetaInfo *info = NULL;
    if (g_once_init_enter((GstMetaInfo **)&info)) {
        const GstMetaInfo *i = gst_meta_register(gst_blazeneo_meta_api_get_type(), GST_BLAZENEO_META_IMPL_NAME,
                                                 sizeof(GstBlazeneoMeta), meta_init, NULL, meta_transform);
        g_once_init_leave((GstMetaInfo **)&info, (GstMetaInfo *)i);
    }
    return info;
}

GstBlazeneoMeta *gst_buffer_add_blazeneo_meta(GstBuffer *buffer) {
    g_return_val_if_fail(GST_IS_BUFFER(buffer), NULL);
    return (GstBlazeneoMeta *)gst_buffer_add_meta(buffer, gst_blazeneo_meta_get_info(), NULL);
}
