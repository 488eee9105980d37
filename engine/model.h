/* model.h - a loaded model: the validated weight file and the folded convolutions. */
#ifndef BZN_MODEL_H
#define BZN_MODEL_H

#include "blazeneo.h"
#include "graph.h"
#include "wfile.h"

struct bzn_model {
    bzn_wfile wf;               /* the mapped, validated file */
    bzn_conv_weights *convs;    /* every convolution, BatchNorm folded, in f32 */
    int n_convs, cap_convs;
    unsigned char *used;        /* per file tensor: consumed by the network */
    int64_t params_main, params_total;
};

#endif
