/*
 * int8plan.h - which convolutions of a context run in INT8, with which input scales, and
 * which of their outputs go to the next convolution as int8 (hand-offs).
 */
#ifndef BZN_INT8PLAN_H
#define BZN_INT8PLAN_H

#include "graph.h"
#include "model.h"

/* per graph node */
typedef struct {
    int int8;       /* a convolution run in INT8 */
    float in_scale; /* its input tensor's scale (the largest of its pieces') */
    int hand_to;    /* hand-off: 1 + the node that gets this output as int8, or 0 */
    int handed;     /* hand-off: the input arrives already quantized */
} bzn_int8_node;

/* The INT8 plan of graph g (precision INT8): every convolution not named in keep_fp32 (and,
 * in an INT8 weight file, stored int8) with its input scale from o->scales, or the file's
 * own scales when o->scales is NULL. *out: g->n_nodes entries, caller frees. */
bzn_status bzn_int8_plan(const bzn_model *m, const bzn_graph *g, const bzn_ctx_options *o, bzn_int8_node **out,
                         bzn_error *err);

/* Hand-offs: a convolution's output stays int8 when its buffer is read by exactly one
 * node, an INT8 convolution taking that whole buffer as its only input, nobody inspects it
 * (keep_intermediates off), and the consumer's int8 layout (qin_bytes(u, consumer)) fits in
 * the float buffer. */
void bzn_int8_plan_handoffs(const bzn_graph *g, bzn_int8_node *q, size_t (*qin_bytes)(void *u, int consumer), void *u);

/* 1 when `name` is one of the comma-separated names of `list` (NULL: none) */
int bzn_name_in_list(const char *list, const char *name);

#endif
