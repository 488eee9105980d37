/*
 * segment_one.c - the smallest complete use of the library: load a model, segment one JPEG,
 * write the colour mask. Build: part of the CMake build (build/segment_one).
 *   build/segment_one models/blazeneo-dha-neopolyp-small-f16.bzn samples/16d4ca6160127cd1d5ff99c267599fc4.jpeg mask.png
 */
#include <stdio.h>
#include <stdlib.h>

#include "blazeneo.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.bzn FRAME.jpg MASK.png\n", argv[0]);
        return 2;
    }
    bzn_error err;
    bzn_model *model = NULL;
    bzn_ctx *ctx = NULL;
    bzn_image frame = {0};
    uint8_t *classes = NULL, *rgb = NULL;
    int rc = 1;

    if (bzn_model_open(argv[1], &model, &err) != BZN_OK) goto fail;
    bzn_ctx_options opt = bzn_ctx_default_options(model); /* 352x352, CPU backend */
    if (bzn_ctx_create(model, &opt, &ctx, &err) != BZN_OK) goto fail;
    if (bzn_image_load_jpeg(argv[2], &frame, &err) != BZN_OK) goto fail;

    /* resize + normalise + network, then one class per pixel at the frame's own size */
    if (bzn_run_rgb(ctx, frame.pixels, frame.width, frame.height, frame.width * 3, &err) != BZN_OK) goto fail;
    size_t n = (size_t)frame.width * frame.height;
    classes = malloc(n);
    rgb = malloc(3 * n);
    if (!classes || !rgb) {
        fprintf(stderr, "out of memory\n");
        goto done;
    }
    if (bzn_class_map(ctx, classes, frame.width, frame.height, &err) != BZN_OK) goto fail;
    bzn_colorize(classes, n, rgb); /* neoplastic red, non-neoplastic green */
    if (bzn_image_write_png(argv[3], rgb, frame.width, frame.height, 3, &err) != BZN_OK) goto fail;
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "%s: %s\n", bzn_status_name(err.status), err.msg);
done:
    free(classes);
    free(rgb);
    bzn_image_free(&frame);
    bzn_ctx_free(ctx);
    bzn_model_free(model);
    return rc;
}
