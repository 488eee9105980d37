/*
 * wfile.h - the BlazeNeo weight file: flat, little-endian, versioned, self-describing.
 * The layout is documented byte by byte in weights/FORMAT.md.
 *
 *   [header 128 B][tensor table: count x 128 B][padding][data, each tensor 64-B aligned]
 *
 * The header carries the model configuration (aggregation, auxiliary branch, classes,
 * default input size, normalisation); each table entry carries a tensor's PyTorch name,
 * dtype, shape, offset, size and CRC-32. The loader checks all of it before use.
 */
#ifndef BZN_WFILE_H
#define BZN_WFILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "blazeneo.h"

#define BZN_WF_MAGIC "BLAZENEO"
#define BZN_WF_VERSION 1u
#define BZN_WF_HEADER_BYTES 128u
#define BZN_WF_ENTRY_BYTES 128u
#define BZN_WF_NAME_BYTES 80u
#define BZN_WF_ALIGN 64u
#define BZN_WF_MAX_TENSORS 100000u
#define BZN_WF_NO_SCALE 0xFFFFFFFFu

typedef enum { BZN_DT_F32 = 0, BZN_DT_F16 = 1, BZN_DT_I8 = 2 } bzn_dtype;

typedef struct {
    bzn_aggregation aggregation;
    int has_aux;
    int num_classes;
    int default_height, default_width;
    float mean[3], std[3];
} bzn_wf_config;

typedef struct {
    char name[BZN_WF_NAME_BYTES]; /* NUL-terminated */
    bzn_dtype dtype;
    int ndim;                     /* 0..4 */
    uint32_t shape[4];
    uint64_t offset;              /* from the start of the data section */
    uint64_t nbytes;
    uint32_t crc32;
    uint32_t scale_index;         /* int8: table index of its f32 per-channel scales */
    const void *data;             /* loader: points into the mapped file */
} bzn_wf_tensor;

typedef struct {
    bzn_wf_config config;
    bzn_wf_tensor *tensors;
    int count;
    /* backing storage: either an mmap of the file or a malloc'd copy of a buffer */
    void *base;
    size_t size;
    int mapped;
} bzn_wfile;

/* Map/copy and validate a weight file: magic, version, header and table CRCs, bounds,
 * alignment, overlaps, names, dtypes, shapes and per-tensor CRCs. The first problem is
 * reported by name ("tensor 'rfb3.conv_cat.bn.bias': data checksum mismatch"). */
bzn_status bzn_wfile_open(const char *path, bzn_wfile *wf, bzn_error *err);
bzn_status bzn_wfile_open_memory(const void *data, size_t size, bzn_wfile *wf, bzn_error *err);
void bzn_wfile_close(bzn_wfile *wf);
/* A mapped file: drop its pages from the process's memory (madvise MADV_DONTNEED) once they
 * have been read, e.g. folded into float weights; the file still backs the mapping, so a
 * later read of any tensor faults its pages back in. A copy from memory is left as it is. */
void bzn_wfile_release_pages(bzn_wfile *wf);
/* The same for the whole pages within [p, p + n) of the mapping (a tensor's data). */
void bzn_wfile_release_range(const bzn_wfile *wf, const void *p, size_t n);
const bzn_wf_tensor *bzn_wfile_find(const bzn_wfile *wf, const char *name);

/* One tensor to write: data in the given dtype, shape as given. */
typedef struct {
    const char *name;
    bzn_dtype dtype;
    int ndim;
    uint32_t shape[4];
    const void *data;
    uint32_t scale_index;
} bzn_wf_input;

/* Write a weight file to a stream: BZN_ERR_IO when a write fails (the stream's error flag is
 * set; its owner reports why), BZN_ERR_ARG for invalid input (before anything is written). */
bzn_status bzn_wfile_write_stream(FILE *f, const bzn_wf_config *cfg, const bzn_wf_input *t, int count,
                                  bzn_error *err);
/* Write a weight file with the library's writer (atomic replace; see bzn_writer_open). */
bzn_status bzn_wfile_write(const char *path, const bzn_wf_config *cfg, const bzn_wf_input *t,
                           int count, bzn_error *err);

size_t bzn_dtype_size(bzn_dtype t);
uint64_t bzn_wf_numel(int ndim, const uint32_t *shape);

#endif
