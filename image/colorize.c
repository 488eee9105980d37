/*
 * colorize.c - turning a class map into pictures: a colour mask, the mask drawn over the
 * video frame (blend, outline, legend), and a scale for the auxiliary head's grey map.
 *
 * Classes follow the NeoPolyp masks: 0 neoplastic (red), 1 non-neoplastic (green),
 * 2 background (black), 3 undefined (yellow, NeoPolyp-Large's label for a polyp of unknown
 * neoplasm status; only ground truth has it). Any other value is drawn as background.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "blazeneo.h"
#include "error.h"

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

/* ---- the overlay -------------------------------------------------------------------- */

bzn_overlay_style bzn_overlay_default_style(void) {
    bzn_overlay_style st;
    st.alpha = 0.45f;
    st.outline = BZN_OVERLAY_AUTO;
    st.dark_edge = 1;
    st.legend = BZN_LEGEND_TOP_LEFT;
    return st;
}

/* For the overlay a pixel is neoplastic (0), non-neoplastic (1) or background (2). */
static inline uint8_t region_of(uint8_t cls) { return cls < 2 ? cls : 2; }

/* Whether the square of radius r around a pixel holds only its own region, without any
 * buffer: for each row of the square, the run of equal regions that contains the pixel's
 * column, [start, end]; the square is uniform when every row's run has the region and covers
 * the square's columns. Along an output row x only grows, so each run is found by one forward
 * scan: O(width) per row of the window and output row. */
typedef struct {
    int start, end; /* the run containing the current column; end < 0: none yet */
    uint8_t region;
} row_run;

typedef struct {
    const uint8_t *classes;
    int width, height;
    int y, top;                               /* the output row; the first row tracked */
    row_run run[2 * BZN_OVERLAY_MAX_OUTLINE + 1];
} window;

static void window_row(window *w, int y, int radius) {
    w->y = y;
    w->top = y - radius < 0 ? 0 : y - radius;
    const int bottom = y + radius >= w->height ? w->height - 1 : y + radius;
    for (int k = 0; k <= bottom - w->top; k++) w->run[k].end = -1;
}

static int window_uniform(window *w, int x, int r, uint8_t region) {
    const int W = w->width;
    const int y0 = w->y - r < 0 ? 0 : w->y - r, y1 = w->y + r >= w->height ? w->height - 1 : w->y + r;
    const int x0 = x - r < 0 ? 0 : x - r, x1 = x + r >= W ? W - 1 : x + r;
    for (int yy = y0; yy <= y1; yy++) {
        row_run *rr = &w->run[yy - w->top];
        const uint8_t *row = w->classes + (size_t)yy * W;
        while (rr->end < x) {
            int s = rr->end + 1, e = s;
            const uint8_t reg = region_of(row[s]);
            while (e + 1 < W && region_of(row[e + 1]) == reg) e++;
            rr->start = s;
            rr->end = e;
            rr->region = reg;
        }
        if (rr->region != region || rr->start > x0 || rr->end < x1) return 0;
    }
    return 1;
}

static int row_has_polyp(const uint8_t *row, int width) {
    for (int x = 0; x < width; x++)
        if (row[x] < 2) return 1;
    return 0;
}

/* ---- a 5x8 pixel font with the few characters the legends need -------------------------
 * 5 x 7 cells (capitals and digits rows 0-6, lower case rows 2-6) and a descender row, 7. */

static const struct {
    char ch;
    uint8_t rows[8]; /* bit 4 the leftmost column */
} glyphs[] = {
    {'a', {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F, 0x00}}, {'c', {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E, 0x00}},
    {'e', {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E, 0x00}}, {'i', {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E, 0x00}},
    {'l', {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00}}, {'n', {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00}},
    {'o', {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E, 0x00}}, {'p', {0x00, 0x00, 0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10}},
    {'s', {0x00, 0x00, 0x0F, 0x10, 0x0E, 0x01, 0x1E, 0x00}}, {'t', {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06, 0x00}},
    {'-', {0x00, 0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}}, {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E, 0x00}},
    {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00}},
};
#define GLYPH_W 5
#define GLYPH_H 8   /* with the descender */
#define GLYPH_CAP 7 /* a digit's height */
#define GLYPH_ADVANCE 6

static const uint8_t *glyph_of(char ch) {
    for (size_t i = 0; i < sizeof glyphs / sizeof *glyphs; i++)
        if (glyphs[i].ch == ch) return glyphs[i].rows;
    return NULL; /* a space */
}

static int text_width(const char *t, int scale) {
    const int n = (int)strlen(t);
    return n ? (n * GLYPH_ADVANCE - (GLYPH_ADVANCE - GLYPH_W)) * scale : 0;
}

/* Text at (x, y) (its top left), each font pixel a scale x scale square of `value` (channels
 * bytes). The caller has checked that it fits. */
static void draw_text(uint8_t *img, int width, int channels, int x, int y, int scale, const char *t,
                      const uint8_t *value) {
    for (; *t; t++, x += GLYPH_ADVANCE * scale) {
        const uint8_t *g = glyph_of(*t);
        if (!g) continue;
        for (int gy = 0; gy < GLYPH_H; gy++)
            for (int gx = 0; gx < GLYPH_W; gx++) {
                if (!(g[gy] & (0x10 >> gx))) continue;
                for (int dy = 0; dy < scale; dy++) {
                    uint8_t *p = img + ((size_t)(y + gy * scale + dy) * width + x + gx * scale) * channels;
                    for (int dx = 0; dx < scale; dx++, p += channels) memcpy(p, value, (size_t)channels);
                }
            }
    }
}

static void fill_rect(uint8_t *img, int width, int channels, int x, int y, int w, int h, const uint8_t *value) {
    for (int yy = y; yy < y + h; yy++) {
        uint8_t *p = img + ((size_t)yy * width + x) * channels;
        for (int xx = 0; xx < w; xx++, p += channels) memcpy(p, value, (size_t)channels);
    }
}

/* The size unit of legends: one font pixel, max(1, round(min(width, height) / 480)). */
static int legend_scale(int width, int height) {
    const int m = width < height ? width : height;
    const int s = (m + 240) / 480;
    return s < 1 ? 1 : s;
}

/* Where a box of w x h goes in `corner`, `margin` from the edges; 0 when it does not fit in
 * half the width and a third of the height. */
static int place_box(int width, int height, bzn_legend_corner corner, int w, int h, int margin, int *x, int *y) {
    if (margin + w > width / 2 || margin + h > height / 3) return 0;
    const int right = corner == BZN_LEGEND_TOP_RIGHT || corner == BZN_LEGEND_BOTTOM_RIGHT;
    const int bottom = corner == BZN_LEGEND_BOTTOM_LEFT || corner == BZN_LEGEND_BOTTOM_RIGHT;
    *x = right ? width - margin - w : margin;
    *y = bottom ? height - margin - h : margin;
    return 1;
}

static void draw_legend(uint8_t *out, int width, int height, bzn_legend_corner corner) {
    static const char *labels[2] = {"neoplastic", "non-neoplastic"};
    static const uint8_t white[3] = {255, 255, 255};
    const int s = legend_scale(width, height), pad = 3 * s, swatch = GLYPH_CAP * s, line = GLYPH_H * s, gap = 3 * s;
    const int tw = text_width(labels[1], s); /* the longer one */
    const int bw = pad + swatch + gap + tw + pad, bh = pad + 2 * line + gap + pad;
    int bx, by;
    if (!place_box(width, height, corner, bw, bh, 4 * s, &bx, &by)) return;
    for (int yy = by; yy < by + bh; yy++) { /* the frame darkened to 30% under the legend */
        uint8_t *p = out + ((size_t)yy * width + bx) * 3;
        for (int k = 0; k < 3 * bw; k++) p[k] = (uint8_t)((p[k] * 77 + 128) >> 8);
    }
    for (int c = 0; c < 2; c++) {
        const int ly = by + pad + c * (line + gap);
        fill_rect(out, width, 3, bx + pad, ly, swatch, swatch, colour_of((uint8_t)c));
        draw_text(out, width, 3, bx + pad + swatch + gap, ly, s, labels[c], white);
    }
}

bzn_status bzn_overlay_draw(const uint8_t *frame_rgb, const uint8_t *classes, int width, int height,
                            const bzn_overlay_style *style, uint8_t *out_rgb, bzn_error *err) {
    if (!frame_rgb || !classes || !out_rgb)
        return bzn_fail(err, BZN_ERR_ARG, "overlay: %s is NULL", !frame_rgb ? "the frame" : !classes ? "the class map" : "the output");
    if (width <= 0 || height <= 0) return bzn_fail(err, BZN_ERR_ARG, "overlay: invalid size %dx%d", width, height);
    const bzn_overlay_style st = style ? *style : bzn_overlay_default_style();
    if (st.outline < BZN_OVERLAY_AUTO || st.outline > BZN_OVERLAY_MAX_OUTLINE)
        return bzn_fail(err, BZN_ERR_ARG, "overlay: outline %d out of range (0..%d, or BZN_OVERLAY_AUTO)", st.outline,
                        BZN_OVERLAY_MAX_OUTLINE);
    if ((int)st.legend < BZN_LEGEND_NONE || (int)st.legend > BZN_LEGEND_BOTTOM_RIGHT)
        return bzn_fail(err, BZN_ERR_ARG, "overlay: unknown legend corner %d", (int)st.legend);
    float alpha = st.alpha;
    if (!(alpha > 0.0f)) alpha = 0.0f; /* NaN too */
    if (alpha > 1.0f) alpha = 1.0f;
    int outline = st.outline;
    if (outline == BZN_OVERLAY_AUTO) {
        const int m = width < height ? width : height;
        outline = (m + 250) / 500;
        if (outline < 2) outline = 2;
        if (outline > BZN_OVERLAY_MAX_OUTLINE) outline = BZN_OVERLAY_MAX_OUTLINE;
    }
    const int rim = outline && st.dark_edge ? (outline / 2 > 1 ? outline / 2 : 1) : 0;
    const int reach = outline > rim ? outline : rim; /* how far a pixel looks */

    /* the blend of every value with each class colour: (1 - alpha) * v + alpha * colour,
     * rounded; a convex combination of two values in [0, 255] stays in [0, 255] */
    uint8_t blend[2][3][256];
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < 3; k++)
            for (int v = 0; v < 256; v++)
                blend[c][k][v] = (uint8_t)floorf((1.0f - alpha) * (float)v + alpha * (float)class_colour[c][k] + 0.5f);

    window win;
    win.classes = classes;
    win.width = width;
    win.height = height;
    /* the nearest rows with a polyp pixel at or above / below the current one (-1 / height:
     * none): rows farther than `reach` from any polyp are copied */
    int last_polyp = -1, next_polyp = -1;
    const size_t row_bytes = (size_t)width * 3;
    for (int y = 0; y < height; y++) {
        if (next_polyp < y) {
            if (next_polyp >= 0) last_polyp = next_polyp;
            next_polyp = y;
            while (next_polyp < height && !row_has_polyp(classes + (size_t)next_polyp * width, width)) next_polyp++;
        }
        if (next_polyp == y) last_polyp = y;
        const uint8_t *f = frame_rgb + row_bytes * y;
        uint8_t *o = out_rgb + row_bytes * y;
        const int near = (last_polyp >= 0 && y - last_polyp <= reach) || (next_polyp < height && next_polyp - y <= reach);
        if (!near) {
            if (o != f) memmove(o, f, row_bytes);
            continue;
        }
        const uint8_t *cls = classes + (size_t)y * width;
        window_row(&win, y, reach);
        for (int x = 0; x < width; x++, f += 3, o += 3) {
            const uint8_t reg = region_of(cls[x]);
            if (reg < 2) {
                if (outline && !window_uniform(&win, x, outline, reg)) {
                    o[0] = class_colour[reg][0], o[1] = class_colour[reg][1], o[2] = class_colour[reg][2];
                } else {
                    o[0] = blend[reg][0][f[0]], o[1] = blend[reg][1][f[1]], o[2] = blend[reg][2][f[2]];
                }
            } else if (rim && !window_uniform(&win, x, rim, 2)) {
                o[0] = o[1] = o[2] = 0;
            } else if (o != f) {
                o[0] = f[0], o[1] = f[1], o[2] = f[2];
            }
        }
    }
    if (st.legend != BZN_LEGEND_NONE) draw_legend(out_rgb, width, height, st.legend);
    return BZN_OK;
}

/* ---- the probability scale -------------------------------------------------------------- */

bzn_status bzn_grey_scale_draw(uint8_t *grey, int width, int height, bzn_legend_corner corner, bzn_error *err) {
    if (!grey) return bzn_fail(err, BZN_ERR_ARG, "grey scale: the picture is NULL");
    if (width <= 0 || height <= 0) return bzn_fail(err, BZN_ERR_ARG, "grey scale: invalid size %dx%d", width, height);
    if ((int)corner < BZN_LEGEND_NONE || (int)corner > BZN_LEGEND_BOTTOM_RIGHT)
        return bzn_fail(err, BZN_ERR_ARG, "grey scale: unknown corner %d", (int)corner);
    if (corner == BZN_LEGEND_NONE) return BZN_OK;
    /* pad | label | gap | border | ramp | border | pad, across; pad | border | ramp | border |
     * pad, down; "1" beside the ramp's top, "0" beside its bottom */
    const int s = legend_scale(width, height), pad = 3 * s, gap = 2 * s, border = s, ramp_w = 6 * s, ramp_h = 96 * s;
    const int bw = pad + GLYPH_W * s + gap + border + ramp_w + border + pad, bh = pad + border + ramp_h + border + pad;
    int bx, by;
    if (!place_box(width, height, corner, bw, bh, 4 * s, &bx, &by)) return BZN_OK;
    static const uint8_t black = 0, mid = 128, white = 255;
    fill_rect(grey, width, 1, bx, by, bw, bh, &black);
    const int rx = bx + pad + GLYPH_W * s + gap, ry = by + pad; /* the border's top left */
    fill_rect(grey, width, 1, rx, ry, ramp_w + 2 * border, ramp_h + 2 * border, &mid);
    for (int r = 0; r < ramp_h; r++) { /* 255 at the top to 0 at the bottom, rounded */
        const uint8_t v = (uint8_t)(((ramp_h - 1 - r) * 510 + (ramp_h - 1)) / (2 * (ramp_h - 1)));
        memset(grey + (size_t)(ry + border + r) * width + rx + border, v, (size_t)ramp_w);
    }
    draw_text(grey, width, 1, bx + pad, ry + border, s, "1", &white);
    draw_text(grey, width, 1, bx + pad, ry + border + ramp_h - GLYPH_CAP * s, s, "0", &white);
    return BZN_OK;
}
