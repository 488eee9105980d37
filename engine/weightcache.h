/*
 * weightcache.h - the forms of a model's convolution weights that contexts run, made once
 * per model and backend and shared by every context of that model on that backend (as ncnn
 * separates upload_model from create_pipeline): the int8 weights of an INT8 context (the
 * file's own, or quantized here from a transient fold of the floats), the floats of an FP32
 * context (folded here from the file, or dequantized from an INT8 file), and the backend's
 * prepared form of
 * either (packed, or in device memory). Each form is made on first use, under the model's
 * lock, and lives until the model is freed: contexts hold only activations and scratch.
 */
#ifndef BZN_WEIGHTCACHE_H
#define BZN_WEIGHTCACHE_H

#include "backend.h"
#include "graph.h"
#include "model.h"

typedef struct {
    const float *weight;   /* FP32 (NULL for INT8) */
    const int8_t *qweight; /* INT8: [out][in][k][k], per-output-channel symmetric (NULL for FP32) */
    const float *wscale;   /* INT8: [out] */
    const void *prepared;  /* the backend's form (weights_prepare), or NULL */
} bzn_conv_form;

/* The form of convolution `cw` (one of m->convs) that a context on backend `b` runs at
 * precision `p` (FP16 and TF32 have FP32's floats, and prepared forms of their own). `geom` (may be NULL) is the requesting context's convolution
 * (sizes, stride, padding, dilation): the backend may prepare a form only where that
 * geometry will use it (the CPU backend's Winograd weights), and a context of another size
 * then runs that layer without it. Thread-safe. */
bzn_status bzn_weights_get(const bzn_model *m, bzn_backend *b, const bzn_conv_weights *cw, bzn_precision p,
                           const bzn_conv_args *geom, bzn_conv_form *out, bzn_error *err);
/* Free every form (bzn_model_free). */
void bzn_weights_free_all(bzn_model *m);

#endif
