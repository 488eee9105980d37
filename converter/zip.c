/*
 * zip.c - see zip.h.
 *
 * Layout of a zip archive (all integers little-endian):
 *
 *   [local header 1][bytes 1][data descriptor 1] ... [local header n][bytes n]...
 *   [central directory: one header per entry]
 *   [Zip64 end of central directory record]    (only in Zip64 archives)
 *   [Zip64 end of central directory locator]   (only in Zip64 archives)
 *   [end of central directory record (EOCD), then an optional comment of up to 64 KiB]
 *
 * A reader starts at the end: it searches backwards for the EOCD signature, which gives
 * the size and offset of the central directory. Sizes and offsets that do not fit in 16
 * or 32 bits are stored as 0xFFFF / 0xFFFFFFFF and the real value lives in a Zip64
 * record (for the EOCD) or a Zip64 "extra field" (for a central-directory entry).
 * PyTorch writes the Zip64 EOCD always, and sets bit 3 of the flags (a "data descriptor"
 * after the bytes), so the local headers carry zero sizes: the central directory is the
 * only trustworthy source of sizes, which is what this reader uses.
 */
#include "zip.h"



#include <stdlib.h>
#include <string.h>

#include "crc32.h"
#include "error.h"

#define SIG_LOCAL 0x04034b50u        /* "PK\3\4" */
#define SIG_CENTRAL 0x02014b50u      /* "PK\1\2" */
#define SIG_EOCD 0x06054b50u         /* "PK\5\6" */
#define SIG_EOCD64 0x06064b50u       /* "PK\6\6" */
#define SIG_EOCD64_LOC 0x07064b50u   /* "PK\6\7" */

#define EOCD_SIZE 22
#define EOCD64_LOC_SIZE 20
#define EOCD64_SIZE 56
#define CENTRAL_SIZE 46
#define LOCAL_SIZE 30
#define ZIP64_EXTRA_ID 0x0001

/* Names longer than this are cut in error messages. */
#define NAME_SHOWN 200

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

int zip_looks_like_zip(const uint8_t *data, size_t size) {
    if (!data || size < 4) return 0;
    uint32_t sig = rd32(data);
    return sig == SIG_LOCAL || sig == SIG_EOCD;
}

void zip_close(zip_archive *za) {
    if (!za) return;
    free(za->entries);
    free(za->verified);
    memset(za, 0, sizeof *za);
}

/* Order of entries: bytewise on the name, shorter first on a common prefix. */
static int name_cmp(const char *a, size_t alen, const char *b, size_t blen) {
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c) return c;
    return (alen > blen) - (alen < blen);
}

static int entry_cmp(const void *pa, const void *pb) {
    const zip_entry *a = pa, *b = pb;
    return name_cmp(a->name, a->name_len, b->name, b->name_len);
}

/* Find the EOCD record: the last "PK\5\6" whose comment fits the buffer. */
static int find_eocd(const uint8_t *d, size_t size, size_t *pos) {
    if (size < EOCD_SIZE) return 0;
    size_t last = size - EOCD_SIZE;
    size_t first = last > 0xFFFF ? last - 0xFFFF : 0; /* the comment is at most 65535 bytes */
    for (size_t p = last + 1; p-- > first;) {
        if (rd32(d + p) == SIG_EOCD && rd16(d + p + 20) <= size - p - EOCD_SIZE) {
            *pos = p;
            return 1;
        }
    }
    return 0;
}

/* Replace the 0xFFFFFFFF placeholders of one central-directory entry by the 64-bit values
 * of its Zip64 extra field (id 0x0001): uncompressed size, compressed size, local header
 * offset, in that order, each present only when its 32-bit field is the placeholder. */
static bzn_status apply_zip64_extra(zip_entry *e, const uint8_t *extra, size_t extra_len,
                                    int need_usize, int need_csize, int need_offset,
                                    bzn_error *err) {
    size_t p = 0;
    while (extra_len - p >= 4) {
        uint16_t id = rd16(extra + p), len = rd16(extra + p + 2);
        p += 4;
        if (len > extra_len - p)
            return bzn_fail(err, BZN_ERR_FORMAT, "zip: extra field of entry '%.*s' runs past its end",
                            (int)(e->name_len < NAME_SHOWN ? e->name_len : NAME_SHOWN), e->name);
        if (id == ZIP64_EXTRA_ID) {
            const uint8_t *f = extra + p;
            size_t need = 8u * (size_t)(need_usize + need_csize + need_offset);
            if (len < need)
                return bzn_fail(err, BZN_ERR_FORMAT, "zip: Zip64 extra field of entry '%.*s' is too short",
                                (int)(e->name_len < NAME_SHOWN ? e->name_len : NAME_SHOWN), e->name);
            if (need_usize) { e->size = rd64(f); f += 8; }
            if (need_csize) { e->comp_size = rd64(f); f += 8; }
            if (need_offset) e->local_offset = rd64(f);
            return BZN_OK;
        }
        p += len;
    }
    if (need_usize || need_csize || need_offset)
        return bzn_fail(err, BZN_ERR_FORMAT, "zip: entry '%.*s' needs a Zip64 extra field but has none",
                        (int)(e->name_len < NAME_SHOWN ? e->name_len : NAME_SHOWN), e->name);
    return BZN_OK;
}

bzn_status zip_open(zip_archive *za, const uint8_t *d, size_t size, bzn_error *err) {
    if (!za) return bzn_fail(err, BZN_ERR_ARG, "zip_open: archive is NULL");
    memset(za, 0, sizeof *za);
    if (!d && size) return bzn_fail(err, BZN_ERR_ARG, "zip_open: data is NULL");

    size_t eocd;
    if (!find_eocd(d, size, &eocd))
        return bzn_fail(err, BZN_ERR_FORMAT, "zip: no end of central directory record (not a zip archive, "
                                             "or truncated)");
    uint64_t count = rd16(d + eocd + 10);
    uint64_t cd_size = rd32(d + eocd + 12);
    uint64_t cd_offset = rd32(d + eocd + 16);
    if (rd16(d + eocd + 4) != 0 || rd16(d + eocd + 6) != 0)
        return bzn_fail(err, BZN_ERR_UNSUPPORTED, "zip: multi-volume archives are not supported");

    /* Zip64: a locator right before the EOCD points at the Zip64 EOCD record. */
    if (eocd >= EOCD64_LOC_SIZE && rd32(d + eocd - EOCD64_LOC_SIZE) == SIG_EOCD64_LOC) {
        const uint8_t *loc = d + eocd - EOCD64_LOC_SIZE;
        uint64_t rec = rd64(loc + 8);
        if (rec > size || size - rec < EOCD64_SIZE || rd32(d + rec) != SIG_EOCD64)
            return bzn_fail(err, BZN_ERR_FORMAT, "zip: the Zip64 end of central directory record is missing "
                                                 "or outside the file");
        count = rd64(d + rec + 32);
        cd_size = rd64(d + rec + 40);
        cd_offset = rd64(d + rec + 48);
    }

    if (cd_offset > size || cd_size > size - cd_offset)
        return bzn_fail(err, BZN_ERR_FORMAT, "zip: central directory (offset %llu, %llu bytes) lies outside "
                        "the %zu-byte file (truncated?)", (unsigned long long)cd_offset,
                        (unsigned long long)cd_size, size);
    if (count > cd_size / CENTRAL_SIZE)
        return bzn_fail(err, BZN_ERR_FORMAT, "zip: %llu entries cannot fit in a %llu-byte central directory",
                        (unsigned long long)count, (unsigned long long)cd_size);

    if (count) {
        za->entries = calloc((size_t)count, sizeof *za->entries);
        za->verified = calloc((size_t)count, 1);
        if (!za->entries || !za->verified) {
            zip_close(za);
            return bzn_fail(err, BZN_ERR_NOMEM, "zip: out of memory for %llu entries", (unsigned long long)count);
        }
    }

    const uint8_t *cd = d + cd_offset;
    size_t p = 0;
    for (uint64_t i = 0; i < count; i++) {
        if (cd_size - p < CENTRAL_SIZE || rd32(cd + p) != SIG_CENTRAL) {
            zip_close(za);
            return bzn_fail(err, BZN_ERR_FORMAT, "zip: central directory entry %llu is damaged",
                            (unsigned long long)i);
        }
        const uint8_t *h = cd + p;
        size_t name_len = rd16(h + 28), extra_len = rd16(h + 30), comment_len = rd16(h + 32);
        if (cd_size - p - CENTRAL_SIZE < name_len + extra_len + comment_len) {
            zip_close(za);
            return bzn_fail(err, BZN_ERR_FORMAT, "zip: central directory entry %llu runs past the directory",
                            (unsigned long long)i);
        }
        zip_entry *e = &za->entries[i];
        e->name = (const char *)h + CENTRAL_SIZE;
        e->name_len = name_len;
        e->flags = rd16(h + 8);
        e->method = rd16(h + 10);
        e->crc32 = rd32(h + 16);
        e->comp_size = rd32(h + 20);
        e->size = rd32(h + 24);
        e->local_offset = rd32(h + 42);
        bzn_status st = apply_zip64_extra(e, h + CENTRAL_SIZE + name_len, extra_len,
                                          e->size == 0xFFFFFFFFu, e->comp_size == 0xFFFFFFFFu,
                                          e->local_offset == 0xFFFFFFFFu, err);
        if (st) {
            zip_close(za);
            return st;
        }
        za->count++;
        p += CENTRAL_SIZE + name_len + extra_len + comment_len;
    }

    /* Sorted names make zip_find a binary search and duplicates easy to spot. */
    if (za->count > 1) {
        qsort(za->entries, za->count, sizeof *za->entries, entry_cmp);
        for (size_t i = 1; i < za->count; i++) {
            const zip_entry *a = &za->entries[i - 1], *b = &za->entries[i];
            if (name_cmp(a->name, a->name_len, b->name, b->name_len) == 0) {
                int shown = (int)(a->name_len < NAME_SHOWN ? a->name_len : NAME_SHOWN);
                bzn_status st = bzn_fail(err, BZN_ERR_FORMAT, "zip: entry '%.*s' appears twice", shown, a->name);
                zip_close(za);
                return st;
            }
        }
    }
    za->data = d;
    za->size = size;
    return BZN_OK;
}

const zip_entry *zip_find(const zip_archive *za, const char *name) {
    if (!za || !name) return NULL;
    size_t len = strlen(name), lo = 0, hi = za->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const zip_entry *e = &za->entries[mid];
        int c = name_cmp(name, len, e->name, e->name_len);
        if (c == 0) return e;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

bzn_status zip_entry_data(zip_archive *za, const zip_entry *e, const uint8_t **data, size_t *size,
                          bzn_error *err) {
    if (!za || !e || !data || !size || e < za->entries || e >= za->entries + za->count)
        return bzn_fail(err, BZN_ERR_ARG, "zip_entry_data: invalid arguments");
    int shown = (int)(e->name_len < NAME_SHOWN ? e->name_len : NAME_SHOWN);
    if (e->flags & 1)
        return bzn_fail(err, BZN_ERR_UNSUPPORTED, "zip: entry '%.*s' is encrypted", shown, e->name);
    if (e->method == 8)
        return bzn_fail(err, BZN_ERR_UNSUPPORTED, "zip: entry '%.*s' is compressed with DEFLATE, which this "
                        "reader does not support (torch.save never compresses; re-save the checkpoint with "
                        "torch.save, or re-zip it with 'zip -0')", shown, e->name);
    if (e->method != 0)
        return bzn_fail(err, BZN_ERR_UNSUPPORTED, "zip: entry '%.*s' uses compression method %u; only stored "
                        "(uncompressed) entries are supported", shown, e->name, (unsigned)e->method);
    if (e->comp_size != e->size)
        return bzn_fail(err, BZN_ERR_FORMAT, "zip: stored entry '%.*s' has different compressed (%llu) and "
                        "uncompressed (%llu) sizes", shown, e->name, (unsigned long long)e->comp_size,
                        (unsigned long long)e->size);

    /* The local header repeats the name and may carry its own (different) extra field;
     * the bytes start right after it. */
    uint64_t lo = e->local_offset;
    if (lo > za->size || za->size - lo < LOCAL_SIZE || rd32(za->data + lo) != SIG_LOCAL)
        return bzn_fail(err, BZN_ERR_FORMAT, "zip: local header of entry '%.*s' (offset %llu) is missing or "
                        "outside the file", shown, e->name, (unsigned long long)lo);
    const uint8_t *h = za->data + lo;
    size_t name_len = rd16(h + 26), extra_len = rd16(h + 28);
    if (za->size - lo - LOCAL_SIZE < name_len + extra_len)
        return bzn_fail(err, BZN_ERR_FORMAT, "zip: local header of entry '%.*s' runs past the end of the file",
                        shown, e->name);
    if (name_len != e->name_len || memcmp(h + LOCAL_SIZE, e->name, name_len) != 0)
        return bzn_fail(err, BZN_ERR_FORMAT, "zip: local header of entry '%.*s' names a different file",
                        shown, e->name);
    uint64_t start = lo + LOCAL_SIZE + name_len + extra_len;
    if (e->size > za->size - start)
        return bzn_fail(err, BZN_ERR_FORMAT, "zip: entry '%.*s' (%llu bytes at offset %llu) runs past the end "
                        "of the %zu-byte file (truncated?)", shown, e->name, (unsigned long long)e->size,
                        (unsigned long long)start, za->size);

    const uint8_t *bytes = za->data + start;
    size_t n = (size_t)e->size;
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    /* Fuzzing builds skip the checksum so that mutated inputs reach the parsers behind it. */
    size_t idx = (size_t)(e - za->entries);
    if (!za->verified[idx]) {
        uint32_t crc = bzn_crc32_update(0, bytes, n);
        if (crc != e->crc32)
            return bzn_fail(err, BZN_ERR_FORMAT, "zip: entry '%.*s' is corrupted (CRC-32 %08x, expected %08x)",
                            shown, e->name, (unsigned)crc, (unsigned)e->crc32);
        za->verified[idx] = 1;
    }
#endif
    *data = bytes;
    *size = n;
    return BZN_OK;
}
