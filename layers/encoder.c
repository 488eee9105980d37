/*
 * encoder.c - HarDNet-68, BlazeNeo's encoder (`encoder.base.N`). Shapes for a 352x352 input.
 */
#include "layers.h"

void bzn_encoder(bzn_builder *b, bzn_value input, bzn_value *f3, bzn_value *f4, bzn_value *f5) {
    bzn_value x;                                                         /*   3 x 352 x 352 */
    x = bzn_conv_layer(b, "encoder.base.0", input, 32, 3, 2, BZN_DST_NEW); /*  32 x 176 x 176 */
    x = bzn_conv_layer(b, "encoder.base.1", x, 64, 3, 1, BZN_DST_NEW);     /*  64 x 176 x 176 */
    x = bzn_maxpool(b, "encoder.base.2", x, 3, 2, 1);                      /*  64 x  88 x  88 */
    x = bzn_hardblock(b, "encoder.base.3", x, 14, 8);                      /* 124 x  88 x  88 */
    x = bzn_conv_layer(b, "encoder.base.4", x, 128, 1, 1, BZN_DST_NEW);    /* 128 x  88 x  88 */
    x = bzn_maxpool(b, "encoder.base.5", x, 2, 2, 0);                      /* 128 x  44 x  44 */
    x = bzn_hardblock(b, "encoder.base.6", x, 16, 16);                     /* 262 x  44 x  44 */
    x = bzn_conv_layer(b, "encoder.base.7", x, 256, 1, 1, BZN_DST_NEW);    /* 256 x  44 x  44 */
    x = bzn_hardblock(b, "encoder.base.8", x, 20, 16);                     /* 328 x  44 x  44 */
    *f3 = bzn_conv_layer(b, "encoder.base.9", x, 320, 1, 1, BZN_DST_NEW);  /* 320 x  44 x  44 */
    x = bzn_maxpool(b, "encoder.base.10", *f3, 2, 2, 0);                   /* 320 x  22 x  22 */
    x = bzn_hardblock(b, "encoder.base.11", x, 40, 16);                    /* 654 x  22 x  22 */
    *f4 = bzn_conv_layer(b, "encoder.base.12", x, 640, 1, 1, BZN_DST_NEW); /* 640 x  22 x  22 */
    x = bzn_maxpool(b, "encoder.base.13", *f4, 2, 2, 0);                   /* 640 x  11 x  11 */
    x = bzn_hardblock(b, "encoder.base.14", x, 160, 4);                    /* 782 x  11 x  11 */
    *f5 = bzn_conv_layer(b, "encoder.base.15", x, 1024, 1, 1, BZN_DST_NEW); /* 1024 x 11 x 11 */
}
