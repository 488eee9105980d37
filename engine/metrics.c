/* metrics.c - Dice and IoU for polyp (seg), neoplastic and non-neoplastic pixels. */
#include <string.h>

#include "blazeneo.h"

void bzn_mask_to_classes(const uint8_t *rgb, size_t n, uint8_t *classes) {
    for (size_t i = 0; i < n; i++) {
        const uint8_t r = rgb[3 * i], g = rgb[3 * i + 1];
        classes[i] = (r >= 128 && g < 128) ? BZN_CLASS_NEO : (g >= 128 && r < 128) ? BZN_CLASS_NON : BZN_CLASS_BACKGROUND;
    }
}

size_t bzn_mask_to_classes_undefined(const uint8_t *rgb, size_t n, uint8_t *classes) {
    bzn_mask_to_classes(rgb, n, classes);
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (rgb[3 * i] >= 128 && rgb[3 * i + 1] >= 128) { /* yellow: red and green both on */
            classes[i] = BZN_CLASS_UNDEFINED;
            count++;
        }
    return count;
}

void bzn_confusion_add(bzn_confusion *c, const uint8_t *pred, const uint8_t *truth, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const int p = pred[i], t = truth[i];
        /* seg: any polyp class against background (an undefined polyp is a polyp) */
        const int ps = p != BZN_CLASS_BACKGROUND, ts = t != BZN_CLASS_BACKGROUND;
        c->tp[BZN_METRIC_SEG] += ps && ts;
        c->fp[BZN_METRIC_SEG] += ps && !ts;
        c->fn[BZN_METRIC_SEG] += !ps && ts;
        if (t == BZN_CLASS_UNDEFINED) continue; /* neither neo nor non: left out of both */
        for (int k = 0; k < 2; k++) { /* neo (class 0) and non (class 1) */
            const int pk = p == k, tk = t == k;
            c->tp[1 + k] += pk && tk;
            c->fp[1 + k] += pk && !tk;
            c->fn[1 + k] += !pk && tk;
        }
    }
}

void bzn_confusion_merge(bzn_confusion *a, const bzn_confusion *b) {
    for (int k = 0; k < 3; k++) {
        a->tp[k] += b->tp[k];
        a->fp[k] += b->fp[k];
        a->fn[k] += b->fn[k];
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
