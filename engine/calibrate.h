/*
 * calibrate.h - the pieces of INT8 calibration below the public API (calibrate.c): the
 * growing histogram of |x| and the three ways of turning a histogram into an amax; and what
 * the cache file (calibcache.c) shares with it.
 * Internal; exposed to the tests, which check them against tests/ref/entropy_ref.py.
 */
#ifndef BZN_CALIBRATE_H
#define BZN_CALIBRATE_H

#include <stddef.h>
#include <stdint.h>

#include "blazeneo.h"

/* The most entries a calibration cache may hold, read or written: one per tensor, and the
 * network has a few hundred. A longer cache is refused before it costs anything. */
#define BZN_CALIB_MAX_CACHE_ENTRIES 65536

/* The histogram of |x| of one tensor over all observations. Bin j counts the values with
 * floor(|x| / width) == j; the last bin also takes anything past the top edge (there is none
 * unless rounding puts the max itself there). */
typedef struct {
    uint64_t *counts; /* n bins (cap allocated) */
    size_t n, cap;
    double width;     /* 0 until an observation holds a non-zero value */
    uint64_t zeros;   /* exact zeros seen while width was still 0 (they go to bin 0 later) */
    float max_abs;    /* largest |x| seen */
    uint64_t values;  /* everything recorded */
    int merges;       /* pairs merged to stay within max_bins (each doubles the width) */
    size_t max_bins;  /* the cap: at least BZN_CALIB_BINS */
} bzn_calib_hist;

void bzn_calib_hist_init(bzn_calib_hist *h, size_t max_bins);
void bzn_calib_hist_free(bzn_calib_hist *h);

/* max |x| of n values into *out; -1 (and *out untouched) when one is NaN or infinite. */
int bzn_calib_absmax(const float *x, size_t n, float *out);
/* Make room for an observation whose max |x| is batch_max, without changing the histogram
 * (so that bzn_calib_hist_add cannot fail afterwards). */
bzn_status bzn_calib_hist_reserve(bzn_calib_hist *h, float batch_max, bzn_error *err);
/* Record n finite values whose max |x| is batch_max (after bzn_calib_hist_reserve). */
void bzn_calib_hist_add(bzn_calib_hist *h, const float *x, size_t n, float batch_max);
/* absmax + reserve + add; BZN_ERR_FORMAT on a non-finite value. */
bzn_status bzn_calib_hist_observe(bzn_calib_hist *h, const float *x, size_t n, bzn_error *err);

/* EntropyCalibration2's choice on a histogram of n bins: the i in [128, n] with amax =
 * i * width (n when n < 128). Does not modify hist. */
size_t bzn_calib_entropy_bin(const uint64_t *hist, size_t n);
/* pytorch-quantization's percentile: the first j with cumsum(hist / total)[j] >= p / 100,
 * amax = j * width (the lower edge of that bin); n when rounding keeps the sum below p. */
size_t bzn_calib_percentile_bin(const uint64_t *hist, size_t n, double percentile);
/* The amax of a histogram by method (0 for a tensor that was always exactly 0). */
float bzn_calib_hist_amax(const bzn_calib_hist *h, bzn_calib_method method, double percentile);

/* The tensors a calibrator of `c` records, in order: "input", then every layer's primary
 * name once. *out is malloc'd; returns the count, or -1 when out of memory. */
typedef struct {
    const char *name; /* borrowed from the context (layer names) or "input" */
    int layer;        /* -1 for the input */
    int c, h, w;
} bzn_calib_tensor_ref;
int bzn_calib_list_tensors(const bzn_ctx *c, bzn_calib_tensor_ref **out);

/* TensorRT's calibrator name in a cache header ("EntropyCalibration2"), NULL if unknown */
const char *bzn_calib_trt_name(bzn_calib_method m);
/* An empty table with room for count entries (count 0 allowed); NULL when out of memory. */
bzn_calib_table *bzn_calib_table_new(int count, bzn_calib_method method);

#endif
