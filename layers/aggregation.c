/*
 * aggregation.c - BlazeNeo's decoders, fusing the RFB outputs x1 (H/32), x2 (H/16) and
 * x3 (H/8) into one 32 x H/8 map. Every block_XY is two 3x3 BasicConvs (BN, ReLU).
 *
 *   LSC: x22 = block_22(up(x1) | x2);  out = block_33(up(x22) | x3)
 *   IDA: x22 as LSC; x23 = block_23(up(x2) | x3);  out = block_33(up(x22) | x23)
 *   DIA: as IDA but out = block_33(up(x22) | x23 | x3)
 *   DHA: x33 = DIA's output; x32 = block_32(up(x22) | x33);  out = block_31(up4(x1) | x32)
 *
 * `|` is channel concatenation: never copied, the first conv of each block reads the pieces.
 * The upsample modules keep the authors' names (upsample_1 .. upsample_5).
 */
#include <stdio.h>

#include "layers.h"

static bzn_value up(bzn_builder *b, const char *agg, const char *which, bzn_value x, int factor) {
    char n[BZN_NAME_MAX];
    snprintf(n, sizeof n, "%s.%s", agg, which);
    bzn_value v = bzn_upsample(b, n, x, factor, BZN_DST_NEW);
    snprintf(n, sizeof n, "%s.%s.0", agg, which); /* the Upsample inside the authors' Sequential */
    bzn_alias(b, n);
    return v;
}

/* cat(a, b[, c]) as one value */
static bzn_value cat(bzn_builder *b, bzn_value x, bzn_value y, const bzn_value *z) {
    bzn_value v = {0};
    if (b->status != BZN_OK) return v;
    if (bzn_value_cat(&v, &x) || bzn_value_cat(&v, &y) || (z && bzn_value_cat(&v, z)))
        bzn_builder_fail(b, BZN_ERR_UNSUPPORTED, "too many pieces in a concatenation");
    return v;
}

static bzn_value block(bzn_builder *b, const char *agg, const char *which, bzn_value x) {
    char n[BZN_NAME_MAX];
    snprintf(n, sizeof n, "%s.%s.0", agg, which);
    x = bzn_basic_conv(b, n, x, 32, 3, BZN_DST_NEW);
    snprintf(n, sizeof n, "%s.%s.1", agg, which);
    x = bzn_basic_conv(b, n, x, 32, 3, BZN_DST_NEW);
    snprintf(n, sizeof n, "%s.%s", agg, which);
    bzn_alias(b, n);
    return x;
}

bzn_value bzn_aggregate(bzn_builder *b, const char *name, bzn_aggregation kind, bzn_value x1, bzn_value x2,
                        bzn_value x3) {
    bzn_value x22, x23, x33, x32, out;
    /* shapes for a 352x352 input: x1 32x11x11, x2 32x22x22, x3 32x44x44 */
    x22 = block(b, name, "block_22", cat(b, up(b, name, "upsample_1", x1, 2), x2, NULL)); /* 32x22x22 */
    if (kind == BZN_AGG_LSC) {
        out = block(b, name, "block_33", cat(b, up(b, name, "upsample_3", x22, 2), x3, NULL)); /* 32x44x44 */
    } else {
        x23 = block(b, name, "block_23", cat(b, up(b, name, "upsample_2", x2, 2), x3, NULL)); /* 32x44x44 */
        bzn_value u22 = up(b, name, "upsample_3", x22, 2);                                    /* 32x44x44 */
        x33 = block(b, name, "block_33", cat(b, u22, x23, kind == BZN_AGG_IDA ? NULL : &x3));
        out = x33;
        if (kind == BZN_AGG_DHA) {
            x32 = block(b, name, "block_32", cat(b, up(b, name, "upsample_4", x22, 2), x33, NULL));
            out = block(b, name, "block_31", cat(b, up(b, name, "upsample_5", x1, 4), x32, NULL));
        }
    }
    bzn_alias(b, name);
    return out;
}
