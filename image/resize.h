/* resize.h - the PIL-identical resize with its plans and buffers kept between calls, so a
 * stream of frames of one size allocates only for the first (bzn_resize_bilinear, public,
 * is the one-shot form). */
#ifndef BZN_RESIZE_H
#define BZN_RESIZE_H

#include "blazeneo.h"
#include "parallel.h"

typedef struct bzn_resizer bzn_resizer;

bzn_resizer *bzn_resizer_new(void); /* NULL when out of memory */
void bzn_resizer_free(bzn_resizer *r);
/* bzn_resize_bilinear, reusing r's plans and buffers while the geometry stays the same, with
 * the rows split over par's threads (NULL: one; the result does not depend on it) */
bzn_status bzn_resizer_run(bzn_resizer *r, const uint8_t *src, int sw, int sh, int sstride, int channels,
                           uint8_t *dst, int dw, int dh, const bzn_parallel *par, bzn_error *err);

#endif
