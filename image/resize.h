/* resize.h - the PIL-identical resize with its plans and buffers kept between calls, so a
 * stream of frames of one size allocates only for the first (bzn_resize_bilinear, public,
 * is the one-shot form). */
#ifndef BZN_RESIZE_H
#define BZN_RESIZE_H

#include "blazeneo.h"
#include "parallel.h"

typedef struct bzn_resizer bzn_resizer;

/* The resampling plan along one axis, PIL's to the bit: for each output sample, the first
 * input sample it reads, how many it reads, and their 22-bit fixed-point weights (ksize
 * slots per output sample). Made here for the host resize and for backends that resize on
 * their device (the CUDA backend's image.cu). */
typedef struct {
    int *first;
    int *count;
    int32_t *weight;
    int ksize;
    int16_t *wide3; /* horizontal, 3 channels, AVX2 (resize.c): per output and channel its weights
                       as byte lanes, split into 11-bit halves; NULL: the plain loop */
} bzn_resize_axis;
/* 0, or -1 when out of memory or the factor is absurd */
int bzn_resize_plan(int in_size, int out_size, bzn_resize_axis *p);
void bzn_resize_plan_free(bzn_resize_axis *p);

bzn_resizer *bzn_resizer_new(void); /* NULL when out of memory */
void bzn_resizer_free(bzn_resizer *r);
/* bzn_resize_bilinear, reusing r's plans and buffers while the geometry stays the same, with
 * the rows split over par's threads (NULL: one; the result does not depend on it) */
bzn_status bzn_resizer_run(bzn_resizer *r, const uint8_t *src, int sw, int sh, int sstride, int channels,
                           uint8_t *dst, int dw, int dh, const bzn_parallel *par, bzn_error *err);

#endif
