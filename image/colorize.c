/*
 * colorize.c - turning a class map into pictures: a colour mask, and the mask blended
 * over the video frame.
 *
 * Classes follow the NeoPolyp masks: 0 neoplastic (red), 1 non-neoplastic (green),
 * 2 background (black), 3 undefined (yellow, NeoPolyp-Large's label for a polyp of unknown
 * neoplasm status; only ground truth has it). Any other value is drawn as background.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "blazeneo.h"

static const uint8_t class_colour[4][3] = {
    {255, 0, 0},   /* 0 neoplastic */
    {0, 255, 0},   /* 1 non-neoplastic */
    {0, 0, 0},     /* 2 background */
    {255, 255, 0}, /* 3 undefined */
};

static const uint8_t *colour_of(uint8_t cls) {
    return class_colour[cls < 4 ? cls : 2];
}

void bzn_colorize(const uint8_t *classes, size_t n, uint8_t *rgb) {
    if (!classes || !rgb) return;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *c = colour_of(classes[i]);
        rgb[3 * i + 0] = c[0];
        rgb[3 * i + 1] = c[1];
        rgb[3 * i + 2] = c[2];
    }
}

/* out = (1 - alpha) * frame + alpha * colour on polyp pixels (class 0 or 1), rounded to
 * the nearest integer; background pixels are copied. alpha is clamped to [0, 1] (NaN
 * counts as 0). out_rgb may be the same buffer as frame_rgb. */
void bzn_overlay(const uint8_t *frame_rgb, const uint8_t *classes, size_t n, float alpha,
                 uint8_t *out_rgb) {
    if (!frame_rgb || !classes || !out_rgb) return;
    if (!(alpha > 0.0f)) alpha = 0.0f;
    if (alpha > 1.0f) alpha = 1.0f;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *f = frame_rgb + 3 * i;
        uint8_t *o = out_rgb + 3 * i;
        if (classes[i] > 1) { /* background: the frame as it is */
            o[0] = f[0];
            o[1] = f[1];
            o[2] = f[2];
            continue;
        }
        const uint8_t *c = colour_of(classes[i]);
        for (int k = 0; k < 3; k++) {
            /* a convex combination of two values in [0, 255] stays in [0, 255] */
            float v = (1.0f - alpha) * (float)f[k] + alpha * (float)c[k];
            o[k] = (uint8_t)floorf(v + 0.5f);
        }
    }
}
