/*
 * rfb.c - the receptive field block: four branches of growing receptive field (1x1; 3x3;
 * 3x3 then dilation 3; 5x5 then dilation 5), concatenated and fused by a 1x1 conv to 32
 * channels. Branches 1-3 are purely linear (no BN, no ReLU). Each branch's last conv writes
 * straight into its quarter of the concatenation buffer.
 */
#include <stdio.h>

#include "layers.h"

#define C 32 /* output channels of every branch and of the block */

static bzn_value plain(bzn_builder *b, const char *name, const char *suffix, bzn_value x, int k, int pad,
                       int dil, bzn_dst dst) {
    char n[BZN_NAME_MAX];
    snprintf(n, sizeof n, "%s.%s", name, suffix);
    return bzn_conv(b, n, x, C, k, 1, pad, dil, NULL, BZN_ACT_NONE, dst);
}

static void branch_alias(bzn_builder *b, const char *name, int branch) {
    char n[BZN_NAME_MAX];
    snprintf(n, sizeof n, "%s.branch%d", name, branch);
    bzn_alias(b, n);
}

bzn_value bzn_rfb(bzn_builder *b, const char *name, bzn_value x) {
    char n[BZN_NAME_MAX];
    const int cat = bzn_builder_buffer(b, 4 * C, x.h, x.w); /* 128 x h x w */
    bzn_value t;

    snprintf(n, sizeof n, "%s.branch0.0", name);
    bzn_conv(b, n, x, C, 1, 1, 0, 1, "bn", BZN_ACT_RELU, (bzn_dst){cat, 0});
    branch_alias(b, name, 0);

    t = plain(b, name, "branch1.0", x, 1, 0, 1, BZN_DST_NEW);
    plain(b, name, "branch1.1", t, 3, 1, 1, (bzn_dst){cat, C});
    branch_alias(b, name, 1);

    t = plain(b, name, "branch2.0", x, 1, 0, 1, BZN_DST_NEW);
    t = plain(b, name, "branch2.1", t, 3, 1, 1, BZN_DST_NEW);
    plain(b, name, "branch2.2", t, 3, 3, 3, (bzn_dst){cat, 2 * C});
    branch_alias(b, name, 2);

    t = plain(b, name, "branch3.0", x, 1, 0, 1, BZN_DST_NEW);
    t = plain(b, name, "branch3.1", t, 5, 2, 1, BZN_DST_NEW);
    plain(b, name, "branch3.2", t, 3, 5, 5, (bzn_dst){cat, 3 * C});
    branch_alias(b, name, 3);

    if (b->status != BZN_OK) return (bzn_value){0};
    snprintf(n, sizeof n, "%s.conv_cat", name);
    bzn_value out = bzn_conv(b, n, bzn_value_of(b->g, cat), C, 1, 1, 0, 1, "bn", BZN_ACT_RELU, BZN_DST_NEW);
    bzn_alias(b, name);
    return out;
}
