/* metrics.c - Dice and IoU for polyp (seg), neoplastic and non-neoplastic pixels. */
#include <string.h>

#include "blazeneo.h"

void bzn_mask_to_classes(const uint8_t *rgb, size_t n, uint8_t *classes) {
    for (size_t i = 0; i < n; i++) {
        const uint8_t r = rgb[3 * i], g = rgb[3 * i + 1];
        classes[i] = (r >= 128 && g < 128) ? BZN_CLASS_NEO : (g >= 128 && r < 128) ? BZN_CLASS_NON : BZN_CLASS_BACKGROUND;
    }
}

void bzn_confusion_add(bzn_confusion *c, const uint8_t *pred, const uint8_t *truth, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const int p = pred[i], t = truth[i];
        /* seg: any polyp class against background */
        const int ps = p != BZN_CLASS_BACKGROUND, ts = t != BZN_CLASS_BACKGROUND;
        c->tp[BZN_METRIC_SEG] += ps && ts;
        c->fp[BZN_METRIC_SEG] += ps && !ts;
        c->fn[BZN_METRIC_SEG] += !ps && ts;
        for (int k = 0; k < 2; k++) { /* neo (class 0) and non (class 1) */
            const int pk = p == k, tk = t == k;
            c->tp[1 + k] += pk && tk;
            c->fp[1 + k] += pk && !tk;
            c->fn[1 + k] += !pk && tk;
        }
    }
}

double bzn_dice(const bzn_confusion *c, int m) {
    const double d = 2.0 * c->tp[m] + c->fp[m] + c->fn[m];
    return d > 0 ? 2.0 * c->tp[m] / d : 1.0;
}

double bzn_iou(const bzn_confusion *c, int m) {
    const double d = (double)c->tp[m] + c->fp[m] + c->fn[m];
    return d > 0 ? c->tp[m] / d : 1.0;
}
