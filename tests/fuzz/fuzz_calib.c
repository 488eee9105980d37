/*
 * fuzz_calib.c - libFuzzer harness for the calibration cache parser (TensorRT's text format,
 * engine/calibrate.c; see README.md). Any bytes must give a status or a table whose names are
 * NUL-terminated and whose scales are finite and non-negative, in time linear in the input.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blazeneo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bzn_calib_table *t;
    bzn_error err;
    if (bzn_calib_cache_parse(data, size, &t, &err) == BZN_OK) {
        for (int i = 0; i < t->count; i++)
            if (!t->scales[i].name || !strlen(t->scales[i].name) || !isfinite(t->scales[i].scale) ||
                t->scales[i].scale < 0)
                abort();
        bzn_calib_table_free(t);
    }
    return 0;
}
