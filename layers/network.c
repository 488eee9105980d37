/*
 * network.c - BlazeNeo, top to bottom: the forward pass as the paper draws it (Fig. 3).
 *
 *   frame (3 x H x W, normalised)
 *     -> HarDNet-68 encoder            f3: 320 x H/8   f4: 640 x H/16   f5: 1024 x H/32
 *     -> RFB on each                   x3, x4, x5: 32 channels each
 *     -> aggregation (LSC/IDA/DIA/DHA) 32 x H/8
 *     -> head: 3x3 conv to C maps, x8 bilinear upsample -> logits C x H x W
 *   plus, when present and asked for, the auxiliary branch: DHA aggregation -> 1-map head.
 */
#include "network.h"

#include <string.h>

#include "error.h"
#include "layers.h"

bzn_status bzn_network_build(const bzn_wf_config *cfg, int height, int width, int run_aux, bzn_graph *g,
                             bzn_error *err) {
    bzn_builder b = {.g = g, .status = BZN_OK, .err = err};
    memset(g, 0, sizeof *g);
    g->height = height;
    g->width = width;
    g->aux_buf = -1;

    g->input_buf = bzn_builder_buffer(&b, 3, height, width);
    g->main_buf = bzn_builder_buffer(&b, cfg->num_classes, height, width);
    if (cfg->has_aux && run_aux) g->aux_buf = bzn_builder_buffer(&b, 1, height, width);
    if (b.status != BZN_OK) return b.status;
    g->bufs[g->input_buf].pinned = g->bufs[g->main_buf].pinned = 1;
    if (g->aux_buf >= 0) g->bufs[g->aux_buf].pinned = 1;

    bzn_value f3, f4, f5;
    bzn_encoder(&b, bzn_value_of(g, g->input_buf), &f3, &f4, &f5);

    bzn_value x3 = bzn_rfb(&b, "rfb3", f3); /* 32 x H/8 */
    bzn_value x4 = bzn_rfb(&b, "rfb4", f4); /* 32 x H/16 */
    bzn_value x5 = bzn_rfb(&b, "rfb5", f5); /* 32 x H/32 */

    if (g->aux_buf >= 0) {
        bzn_value a1 = bzn_aggregate(&b, "agg1", BZN_AGG_DHA, x5, x4, x3);
        bzn_head(&b, "head_1", "upsample_1", a1, 1, g->aux_buf);
    }
    bzn_value a2 = bzn_aggregate(&b, "agg2", cfg->aggregation, x5, x4, x3);
    bzn_head(&b, "head_2", "upsample_2", a2, cfg->num_classes, g->main_buf);
    return b.status;
}
