/*
 * hardblock.c - HarDNet's harmonic dense block (Chao et al., ICCV 2019).
 *
 * Layer l (1..n) reads the concatenation of layers l - 2^i for every 2^i dividing l
 * (layer 0 is the block input), newest first, and produces `growth * 1.7^m` channels
 * (m = number of i >= 1 with 2^i | l), rounded to an even number. The block outputs the
 * odd layers and the last one. Here those layers write straight into their slice of the
 * block's output buffer; the other layers get buffers of their own.
 */
#include <stdio.h>

#include "layers.h"

#define GRMUL 1.7

/* links of layer l, newest first; returns how many */
static int links_of(int l, int *links) {
    int n = 0;
    for (int i = 0; i < 10; i++) {
        int dv = 1 << i;
        if (l % dv == 0 && l - dv >= 0) links[n++] = l - dv;
    }
    return n;
}

static int width_of(int l, int growth) {
    double w = growth;
    for (int i = 1; i < 10; i++)
        if (l % (1 << i) == 0) w *= GRMUL;
    return (int)((int)(w + 1) / 2) * 2; /* Python: int(int(w + 1) / 2) * 2 */
}

static int kept(int l, int n_layers) { return (l % 2 == 1) || l == n_layers; }

int bzn_hardblock_out_channels(int cin, int growth, int n_layers) {
    (void)cin;
    int c = 0;
    for (int l = 1; l <= n_layers; l++)
        if (kept(l, n_layers)) c += width_of(l, growth);
    return c;
}

bzn_value bzn_hardblock(bzn_builder *b, const char *name, bzn_value x, int growth, int n_layers) {
    bzn_value none = {0}, layer[33];
    if (b->status != BZN_OK) return none;
    if (n_layers < 1 || n_layers > 32) {
        bzn_builder_fail(b, BZN_ERR_ARG, "'%s': unsupported layer count %d", name, n_layers);
        return none;
    }
    const int out_c = bzn_hardblock_out_channels(x.c, growth, n_layers);
    const int out_buf = bzn_builder_buffer(b, out_c, x.h, x.w);
    layer[0] = x;
    int c0 = 0; /* next free channel of the output buffer */
    for (int l = 1; l <= n_layers && b->status == BZN_OK; l++) {
        int links[10];
        const int nl = links_of(l, links);
        bzn_value in = {0};
        for (int i = 0; i < nl; i++)
            if (bzn_value_cat(&in, &layer[links[i]]) != 0)
                bzn_builder_fail(b, BZN_ERR_UNSUPPORTED, "'%s': too many pieces in a concatenation", name);
        const int w = width_of(l, growth);
        bzn_dst dst = BZN_DST_NEW;
        if (kept(l, n_layers)) {
            dst = (bzn_dst){out_buf, c0};
            c0 += w;
        }
        char lname[BZN_NAME_MAX];
        snprintf(lname, sizeof lname, "%s.layers.%d", name, l - 1);
        layer[l] = bzn_conv_layer(b, lname, in, w, 3, 1, dst);
    }
    if (b->status != BZN_OK) return none;
    bzn_value out = bzn_value_of(b->g, out_buf);
    bzn_name_value(b, name, out);
    return out;
}
