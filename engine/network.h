/* network.h - BlazeNeo end to end, as a graph (see network.c). */
#ifndef BZN_NETWORK_H
#define BZN_NETWORK_H

#include "graph.h"
#include "model.h"

/* Build the graph of `m` for an h x w input. With create = 1 (model loading) the weights
 * are read from the file, checked against the architecture and folded into m->convs. */
bzn_status bzn_network_build(bzn_model *m, int create, int height, int width, int run_aux, bzn_graph *g,
                             bzn_error *err);

#endif
