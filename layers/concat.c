/*
 * concat.c - naming values. Concatenations cost nothing here (producers write into slices
 * of one buffer, or consumers read the pieces where they lie), so a "concat" node only
 * gives a value its PyTorch module name, for tracing and for the layer table.
 */
#include <stdio.h>
#include <string.h>

#include "layers.h"

void bzn_name_value(bzn_builder *b, const char *name, bzn_value x) {
    if (b->status != BZN_OK) return;
    bzn_node *n = bzn_graph_add(b->g, BZN_NODE_CONCAT, name);
    if (!n) {
        bzn_builder_fail(b, BZN_ERR_NOMEM, "out of memory building the graph");
        return;
    }
    n->in = n->out = x;
    snprintf(n->op, sizeof n->op, "concat (%d part%s)", x.n, x.n == 1 ? "" : "s");
}

void bzn_alias(bzn_builder *b, const char *alias) {
    if (b->status != BZN_OK || b->g->n_nodes == 0) return;
    bzn_node *n = &b->g->nodes[b->g->n_nodes - 1];
    size_t used = strlen(n->aliases);
    snprintf(n->aliases + used, sizeof n->aliases - used, "%s%s", used ? " " : "", alias);
}
