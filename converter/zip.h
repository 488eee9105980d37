/*
 * zip.h - a small, read-only zip archive reader over a buffer in memory.
 *
 * Just enough of the zip format (PKWARE APPNOTE) for PyTorch checkpoints: the archive is
 * located through its End Of Central Directory record (and the Zip64 EOCD when present),
 * the central directory lists the entries, and each entry's bytes follow its local header.
 * Only STORED (uncompressed) entries can be read; torch.save never compresses. Nothing is
 * copied: entries point into the caller's buffer, which must outlive the archive. Every
 * length and offset read from the buffer is checked against the buffer's size.
 */
#ifndef BZN_ZIP_H
#define BZN_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "blazeneo.h"

/* One central-directory entry. */
typedef struct {
    const char *name;       /* points into the archive buffer; NOT NUL-terminated */
    size_t name_len;
    uint16_t flags;         /* general purpose bit flags (bit 0: encrypted) */
    uint16_t method;        /* 0 = stored, 8 = deflate, ... */
    uint32_t crc32;         /* CRC-32 of the uncompressed bytes */
    uint64_t comp_size;     /* bytes in the archive */
    uint64_t size;          /* bytes once uncompressed (= comp_size when stored) */
    uint64_t local_offset;  /* offset of the entry's local header in the buffer */
} zip_entry;

typedef struct {
    const uint8_t *data;    /* the whole archive (borrowed) */
    size_t size;
    zip_entry *entries;     /* sorted by name, for zip_find */
    size_t count;
    uint8_t *verified;      /* per entry: 1 once its CRC has been checked */
} zip_archive;

/* Parse the directory of the archive in data[0..size). On failure za is left empty. */
bzn_status zip_open(zip_archive *za, const uint8_t *data, size_t size, bzn_error *err);
void zip_close(zip_archive *za);

/* 1 when the buffer starts like a zip archive (local header or empty-archive EOCD). */
int zip_looks_like_zip(const uint8_t *data, size_t size);

/* Look an entry up by its full name ("archive/data/0"); NULL when absent. */
const zip_entry *zip_find(const zip_archive *za, const char *name);

/* The bytes of a STORED entry (checked against the buffer, local header and CRC-32).
 * DEFLATE and other methods give BZN_ERR_UNSUPPORTED. */
bzn_status zip_entry_data(zip_archive *za, const zip_entry *e, const uint8_t **data, size_t *size,
                          bzn_error *err);


#endif
