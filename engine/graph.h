/*
 * graph.h - the network as a list of nodes over planned buffers.
 *
 * Building: the layer builders in layers/ append nodes in execution order (the same order
 * PyTorch runs its modules). A node reads a *value* - a concatenation of channel slices of
 * buffers, never copied - and writes one slice of one buffer. A concatenation is therefore
 * free: its producers write into adjacent slices of one buffer, or a convolution reads the
 * pieces where they lie (its im2col gathers them).
 *
 * Planning: each buffer lives from the node that first writes it to the last node that
 * reads it; buffers whose lifetimes do not overlap share memory in one arena, allocated
 * once per context (nothing is allocated per frame).
 */
#ifndef BZN_GRAPH_H
#define BZN_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "blazeneo.h"

#define BZN_NAME_MAX 80

/* channels [c0, c0 + c) of buffer `buf` */
typedef struct {
    int buf, c0, c;
} bzn_slice;

/* a tensor flowing between layers: the concatenation of its slices, all h x w */
typedef struct {
    bzn_slice seg[BZN_MAX_SEGMENTS];
    int n, c, h, w;
} bzn_value;

typedef struct {
    int c, h, w;
    int first, last;  /* node indices of first write and last read */
    int pinned;       /* live for the whole run (input and outputs) */
    size_t offset;    /* in floats from the arena start */
} bzn_buffer;

typedef enum {
    BZN_NODE_CONV,
    BZN_NODE_MAXPOOL,
    BZN_NODE_UPSAMPLE,
    BZN_NODE_CONCAT /* virtual: names a value for inspection, computes nothing */
} bzn_node_kind;

/* A convolution's weights as the model holds them: checked at loading, BatchNorm folded into
 * a per-channel scale and a bias. The float weights themselves stay in the file: they are
 * folded (bzn_conv_fold_floats) into the forms of the backends that run them in float, and a
 * context that runs them in int8 quantizes them from a transient copy (engine/weightcache.c). */
typedef struct {
    char name[BZN_NAME_MAX]; /* module path, e.g. "encoder.base.3.layers.5" */
    int cin, cout, k;
    int src;       /* float weights: the file's [cout][cin][k][k] tensor (index); -1 when stored int8 */
    float *scale;  /* [cout], float weights: BatchNorm's s, which multiplies them (1 without BN) */
    float *bias;   /* [cout] or NULL */
    int64_t params; /* as PyTorch counts them: conv weight + BN weight and bias */
    /* from an INT8 weight file: the stored int8 weights and per-channel scales (point into
     * the mapped file); NULL otherwise (INT8 contexts then quantize the folded floats) */
    const int8_t *qweight;
    const float *wscale;
} bzn_conv_weights;

typedef struct {
    bzn_node_kind kind;
    char name[BZN_NAME_MAX];      /* PyTorch module path of the output */
    char aliases[2 * BZN_NAME_MAX]; /* space-separated containers with the same output */
    char op[48];                  /* human-readable: "conv3x3 s1 d1 relu6" */
    bzn_value in, out;
    const bzn_conv_weights *conv; /* the model's folded weights (engine/fold.c), by name */
    const char *bn_key;           /* convolutions: "norm", "bn" or NULL, the BatchNorm's key */
    int k, stride, pad, dilation, factor;
    bzn_act act;
    int64_t params, macs;
} bzn_node;

typedef struct {
    bzn_node *nodes;
    int n_nodes, cap_nodes;
    bzn_buffer *bufs;
    int n_bufs, cap_bufs;
    int input_buf;           /* 3 x H x W preprocessed input */
    int main_buf, aux_buf;   /* logits at input resolution; aux_buf -1 when not run */
    int height, width;
} bzn_graph;

void bzn_graph_free(bzn_graph *g);
/* a new buffer; returns its index or -1 when out of memory */
int bzn_graph_buffer(bzn_graph *g, int c, int h, int w);
/* a whole buffer as a value */
bzn_value bzn_value_of(const bzn_graph *g, int buf);
/* a channel slice of a buffer as a value */
bzn_value bzn_value_slice(const bzn_graph *g, int buf, int c0, int c);
/* append b's slices to a (merging adjacent slices); 0 on success, -1 on too many pieces */
int bzn_value_cat(bzn_value *a, const bzn_value *b);
/* append a node; returns a pointer to it or NULL when out of memory */
bzn_node *bzn_graph_add(bzn_graph *g, bzn_node_kind kind, const char *name);
/* compute buffer lifetimes and pack them into an arena; returns its size in floats */
size_t bzn_graph_plan(bzn_graph *g, int keep_all);
/* nonneg[i] = 1 when every value node i reads is >= 0 and not NaN, whatever the frame: it was
 * written by convolutions with a ReLU or ReLU6 and by pooling or bilinear upsampling (convex
 * combinations) of such values; 0 for the network input and anything downstream of a
 * convolution without activation. A hint for kernels (nonneg has n_nodes entries). */
void bzn_graph_nonneg_inputs(const bzn_graph *g, unsigned char *nonneg);

#endif
