/*
 * head.c - a segmentation head: a 3x3 conv (no BN, no activation) from 32 channels to one
 * map per class at H/8 (`<name>.head`), then a x8 bilinear upsample to the input size.
 */
#include <stdio.h>

#include "layers.h"

bzn_value bzn_head(bzn_builder *b, const char *name, const char *upsample_name, bzn_value x, int classes,
                   int out_buf) {
    char n[BZN_NAME_MAX];
    snprintf(n, sizeof n, "%s.head", name);
    bzn_value h = bzn_conv(b, n, x, classes, 3, 1, 1, 1, NULL, BZN_ACT_NONE, BZN_DST_NEW); /* C x H/8 */
    bzn_alias(b, name);
    return bzn_upsample(b, upsample_name, h, 8, (bzn_dst){out_buf, 0});                 /* C x H */
}
