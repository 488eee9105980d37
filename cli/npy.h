/* npy.h - (CLI and tests) NumPy .npy files (format 1.0, little-endian float32, C order): the exchange
 * format between the engine's trace and PyTorch (np.load / np.save). */
#ifndef BZN_NPY_H
#define BZN_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "blazeneo.h"

/* Write atomically (temporary name, then rename). */
bzn_status bzn_npy_write(const char *path, const float *data, int ndim, const int64_t *shape, bzn_error *err);
/* Read a float32 (little-endian, C order) array; *data is malloc'd. */
bzn_status bzn_npy_read(const char *path, float **data, int *ndim, int64_t shape[8], bzn_error *err);

#endif
