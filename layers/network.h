/* network.h - BlazeNeo end to end, as a graph (see network.c). */
#ifndef BZN_NETWORK_H
#define BZN_NETWORK_H

#include "graph.h"
#include "wfile.h"

/* The graph of the variant `cfg` describes, for an h x w input: every node with its shapes,
 * the convolutions as specifications (module path, kernel, BatchNorm) whose weights the
 * model binds (engine/fold.c). */
bzn_status bzn_network_build(const bzn_wf_config *cfg, int height, int width, int run_aux, bzn_graph *g,
                             bzn_error *err);

#endif
