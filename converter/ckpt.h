/*
 * ckpt.h - reading PyTorch checkpoints (torch.save zip format, >= 1.6) without Python.
 *
 * A checkpoint is a zip archive (stored entries) holding `<folder>/data.pkl`, a pickle
 * (protocol 2) of the saved object, and one `<folder>/data/<key>` entry per storage.
 * This reader understands the subset torch.save produces for state dicts: dicts and
 * OrderedDicts (collections.OrderedDict), tensors rebuilt by torch._utils._rebuild_tensor_v2
 * over Float/Half/Double/Long/Int/BFloat16 storages (persistent ids), with storage offsets
 * and strides, and the usual wrappers ({"state_dict": ...}, {"model": ...}, a "module."
 * prefix). Everything read from the file is bounds-checked; memory is bounded by the file
 * size: all the reader allocates, pickle objects and materialised tensors together, is at
 * most 16 times the checkpoint's size plus 1 MiB (ckpt.c), or the read is refused.
 */
#ifndef BZN_CKPT_H
#define BZN_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "blazeneo.h"

typedef enum {
    BZN_CK_F32 = 0,
    BZN_CK_F16 = 1,
    BZN_CK_BF16 = 2,
    BZN_CK_F64 = 3,
    BZN_CK_I64 = 4,
    BZN_CK_I32 = 5,
    BZN_CK_U8 = 6,
    BZN_CK_I8 = 7,
    BZN_CK_BOOL = 8
} bzn_ck_dtype;

typedef struct {
    char *name;           /* state-dict key, wrapper and "module." prefix removed */
    bzn_ck_dtype dtype;   /* element type as stored in the checkpoint */
    int ndim;             /* 0 for scalars, at most 8 */
    int64_t shape[8];
    void *data;           /* contiguous row-major copy (strides applied), native dtype;
                             NULL when the tensor has no elements (nbytes == 0) */
    size_t nbytes;        /* = numel * element size */
} bzn_ck_tensor;

typedef struct {
    bzn_ck_tensor *tensors; /* in pickle (= state-dict) order */
    int count;
} bzn_ckpt;

/* Read a checkpoint from a file or from memory. On failure *out is left empty and
 * err says what was wrong (e.g. "not a zip archive: checkpoints from PyTorch < 1.6 ...
 * re-save it with torch.save", "data.pkl: unsupported pickle opcode 0x.. at offset N",
 * "storage 'data/17' is 400 bytes but the tensor needs 512"). */
bzn_status bzn_ckpt_read_file(const char *path, bzn_ckpt *out, bzn_error *err);
bzn_status bzn_ckpt_read_memory(const uint8_t *data, size_t size, bzn_ckpt *out, bzn_error *err);
void bzn_ckpt_free(bzn_ckpt *ck);

/* Look a tensor up by name; NULL when absent. */
const bzn_ck_tensor *bzn_ckpt_find(const bzn_ckpt *ck, const char *name);
size_t bzn_ck_dtype_size(bzn_ck_dtype t);
const char *bzn_ck_dtype_name(bzn_ck_dtype t);

#endif
