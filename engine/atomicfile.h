/*
 * atomicfile.h - writing a file so that readers see the old one or the complete new one,
 * never half of it: the bytes go to a temporary file next to the destination
 * ("path.tmp.XXXXXX", made by mkstemp so two writers never collide), which is flushed to disk
 * and renamed over `path` (rename() within one folder is atomic). On any failure the
 * temporary file is removed and an existing file at `path` is left as it was. The new file
 * takes the permissions of the file it replaces, or rw-r--r--.
 *
 * Used by every file the library writes: weight files, calibration caches, PNG masks.
 */
#ifndef BZN_ATOMICFILE_H
#define BZN_ATOMICFILE_H

#include <stdio.h>

#include "blazeneo.h"

typedef struct {
    FILE *f; /* write here, between open and close */
    char *tmp;
    const char *path;
} bzn_atomic;

bzn_status bzn_atomic_open(bzn_atomic *a, const char *path, bzn_error *err);
/* Flush, sync, close and rename. With `discard` (the caller's writing failed and it has
 * reported why), or on any error here, the temporary file is removed instead. */
bzn_status bzn_atomic_close(bzn_atomic *a, int discard, bzn_error *err);

#endif
