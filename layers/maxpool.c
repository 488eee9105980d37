/* maxpool.c - max pooling (HarDNet's downsampling between blocks). */
#include <stdio.h>

#include "layers.h"

bzn_value bzn_maxpool(bzn_builder *b, const char *name, bzn_value x, int k, int stride, int pad) {
    bzn_value none = {0};
    if (b->status != BZN_OK) return none;
    if (x.n != 1) {
        bzn_builder_fail(b, BZN_ERR_UNSUPPORTED, "'%s': pooling a multi-part concatenation", name);
        return none;
    }
    const int oh = bzn_out_size(x.h, k, stride, pad, 1), ow = bzn_out_size(x.w, k, stride, pad, 1);
    int buf = bzn_builder_buffer(b, x.c, oh, ow);
    bzn_node *n = b->status == BZN_OK ? bzn_graph_add(b->g, BZN_NODE_MAXPOOL, name) : NULL;
    if (!n) {
        bzn_builder_fail(b, BZN_ERR_NOMEM, "out of memory building the graph");
        return none;
    }
    n->in = x;
    n->out = bzn_value_of(b->g, buf);
    n->k = k;
    n->stride = stride;
    n->pad = pad;
    snprintf(n->op, sizeof n->op, "maxpool%dx%d s%d p%d", k, k, stride, pad);
    return n->out;
}
