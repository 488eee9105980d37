/* upsample.c - bilinear upsampling by an integer factor, align_corners=False. */
#include <stdio.h>

#include "layers.h"

bzn_value bzn_upsample(bzn_builder *b, const char *name, bzn_value x, int factor, bzn_dst dst) {
    bzn_value none = {0};
    if (b->status != BZN_OK) return none;
    if (x.n != 1) {
        bzn_builder_fail(b, BZN_ERR_UNSUPPORTED, "'%s': upsampling a multi-part concatenation", name);
        return none;
    }
    if (dst.buf < 0) dst = (bzn_dst){bzn_builder_buffer(b, x.c, x.h * factor, x.w * factor), 0};
    bzn_node *n = b->status == BZN_OK ? bzn_graph_add(b->g, BZN_NODE_UPSAMPLE, name) : NULL;
    if (!n) {
        bzn_builder_fail(b, BZN_ERR_NOMEM, "out of memory building the graph");
        return none;
    }
    n->in = x;
    n->out = bzn_value_slice(b->g, dst.buf, dst.c0, x.c);
    n->factor = factor;
    snprintf(n->op, sizeof n->op, "upsample x%d bilinear", factor);
    return n->out;
}
