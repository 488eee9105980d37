/*
 * layers.h - the building blocks of BlazeNeo, one file each, as the paper describes them.
 *
 * Each builder appends its nodes to the graph and returns its output value. Errors (a
 * missing tensor, a wrong shape) stick in the builder: later calls do nothing, and the
 * caller checks b->status once at the end, so the network reads top to bottom.
 */
#ifndef BZN_LAYERS_H
#define BZN_LAYERS_H

#include "error.h"
#include "graph.h"

typedef struct {
    bzn_graph *g;
    bzn_status status; /* first error, BZN_OK while all is well */
    bzn_error *err;
} bzn_builder;

/* Where a producer writes: a fresh buffer, or a slice of a concatenation buffer. */
typedef struct {
    int buf, c0; /* buf < 0: allocate a fresh buffer */
} bzn_dst;
#define BZN_DST_NEW ((bzn_dst){-1, 0})

/* the first error sticks (util/error.h) */
#define bzn_builder_fail(b, ...) bzn_fail_first(&(b)->status, (b)->err, __VA_ARGS__)
/* allocate a destination buffer, recording out of memory in the builder */
int bzn_builder_buffer(bzn_builder *b, int c, int h, int w);

/* conv.c: Conv2d (no bias) -> [BatchNorm] -> [ReLU|ReLU6], weights under `<name>.conv.weight`
 * and `<name>.<bn_key>.*` (bn_key "norm" in HarDNet's ConvLayer, "bn" in BasicConv, NULL: none) */
bzn_value bzn_conv(bzn_builder *b, const char *name, bzn_value x, int cout, int k, int stride,
                   int pad, int dilation, const char *bn_key, bzn_act act, bzn_dst dst);
/* HarDNet's ConvLayer(cin, cout, k, stride): conv k/2 padding, BN, ReLU6 */
bzn_value bzn_conv_layer(bzn_builder *b, const char *name, bzn_value x, int cout, int k, int stride,
                         bzn_dst dst);
/* the decoder's BasicConv with BN and ReLU, k x k, padding k/2 */
bzn_value bzn_basic_conv(bzn_builder *b, const char *name, bzn_value x, int cout, int k, bzn_dst dst);

/* maxpool.c */
bzn_value bzn_maxpool(bzn_builder *b, const char *name, bzn_value x, int k, int stride, int pad);
/* upsample.c: bilinear, align_corners=False, integer factor */
bzn_value bzn_upsample(bzn_builder *b, const char *name, bzn_value x, int factor, bzn_dst dst);
/* concat.c: names a value (a concatenation or a container's output) for inspection */
void bzn_name_value(bzn_builder *b, const char *name, bzn_value x);
void bzn_alias(bzn_builder *b, const char *alias);

/* hardblock.c: HarDBlock(cin, growth, n), grmul 1.7 */
bzn_value bzn_hardblock(bzn_builder *b, const char *name, bzn_value x, int growth, int n_layers);
int bzn_hardblock_out_channels(int cin, int growth, int n_layers);
/* encoder.c: HarDNet-68; returns f3 (320 x H/8), f4 (640 x H/16), f5 (1024 x H/32) */
void bzn_encoder(bzn_builder *b, bzn_value input, bzn_value *f3, bzn_value *f4, bzn_value *f5);
/* rfb.c: receptive field block, cin -> 32 */
bzn_value bzn_rfb(bzn_builder *b, const char *name, bzn_value x);
/* aggregation.c: LSC / IDA / DIA / DHA over x1 (H/32), x2 (H/16), x3 (H/8) */
bzn_value bzn_aggregate(bzn_builder *b, const char *name, bzn_aggregation kind, bzn_value x1,
                        bzn_value x2, bzn_value x3);
/* head.c: 3x3 conv to `classes` maps at H/8 (`<name>.head`), then x8 bilinear upsample */
bzn_value bzn_head(bzn_builder *b, const char *name, const char *upsample_name, bzn_value x,
                   int classes, int out_buf);

#endif
