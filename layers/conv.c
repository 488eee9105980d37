/*
 * conv.c - Conv2d -> [BatchNorm] -> [ReLU | ReLU6] as one node: the convolution's
 * specification (module path, channels, kernel, stride, padding, dilation, which BatchNorm,
 * which activation). The model folds the BatchNorm into its weights when it is loaded
 * (engine/fold.c), and the activation is applied as the output is written.
 */
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "layers.h"

int bzn_builder_buffer(bzn_builder *b, int c, int h, int w) {
    int i = bzn_graph_buffer(b->g, c, h, w);
    if (i < 0) bzn_builder_fail(b, BZN_ERR_NOMEM, "out of memory building the graph");
    return i;
}

bzn_value bzn_conv(bzn_builder *b, const char *name, bzn_value x, int cout, int k, int stride, int pad,
                   int dilation, const char *bn_key, bzn_act act, bzn_dst dst) {
    bzn_value none = {0};
    if (b->status != BZN_OK) return none;
    const int oh = bzn_out_size(x.h, k, stride, pad, dilation), ow = bzn_out_size(x.w, k, stride, pad, dilation);
    if (oh < 1 || ow < 1) {
        bzn_builder_fail(b, BZN_ERR_UNSUPPORTED, "'%s': input %dx%d is too small", name, x.w, x.h);
        return none;
    }
    if (dst.buf < 0) dst = (bzn_dst){bzn_builder_buffer(b, cout, oh, ow), 0};
    if (b->status != BZN_OK) return none;
    bzn_node *n = bzn_graph_add(b->g, BZN_NODE_CONV, name);
    if (!n) {
        bzn_builder_fail(b, BZN_ERR_NOMEM, "out of memory building the graph");
        return none;
    }
    n->in = x;
    n->out = bzn_value_slice(b->g, dst.buf, dst.c0, cout);
    n->bn_key = bn_key;
    n->k = k;
    n->stride = stride;
    n->pad = pad;
    n->dilation = dilation;
    n->act = act;
    n->params = (int64_t)cout * x.c * k * k + (bn_key ? 2 * cout : 0); /* as PyTorch counts: conv + BN */
    n->macs = (int64_t)cout * oh * ow * x.c * k * k;
    static const char *act_names[] = {"", " relu", " relu6"};
    snprintf(n->op, sizeof n->op, "conv%dx%d s%d d%d%s%s", k, k, stride, dilation, bn_key ? " bn" : "",
             act_names[act]);
    return n->out;
}

bzn_value bzn_conv_layer(bzn_builder *b, const char *name, bzn_value x, int cout, int k, int stride,
                         bzn_dst dst) {
    return bzn_conv(b, name, x, cout, k, stride, k / 2, 1, "norm", BZN_ACT_RELU6, dst);
}

bzn_value bzn_basic_conv(bzn_builder *b, const char *name, bzn_value x, int cout, int k, bzn_dst dst) {
    return bzn_conv(b, name, x, cout, k, 1, k / 2, 1, "bn", BZN_ACT_RELU, dst);
}
