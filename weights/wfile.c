/* wfile.c - reading, validating and writing BlazeNeo weight files (see FORMAT.md). */
#define _DEFAULT_SOURCE /* madvise */
#include "wfile.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32.h"
#include "error.h"

/* ---- little-endian fields ------------------------------------------------------- */

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static float rdf32(const uint8_t *p) {
    uint32_t u = rd32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void wr64(uint8_t *p, uint64_t v) {
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}
static void wrf32(uint8_t *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    wr32(p, u);
}

/* The fuzzing build (tests/fuzz) ignores checksums, as zip.c does there: otherwise almost
 * every mutation would stop at a checksum and never reach the checks behind it. */
static int crc_mismatch(uint32_t computed, uint32_t stored) {
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    (void)computed;
    (void)stored;
    return 0;
#else
    return computed != stored;
#endif
}

/* ---- dtypes ------------------------------------------------------------------------ */

size_t bzn_dtype_size(bzn_dtype t) {
    switch (t) {
    case BZN_DT_F32: return 4;
    case BZN_DT_F16: return 2;
    case BZN_DT_I8: return 1;
    }
    return 0;
}

const char *bzn_weight_dtype_name(int dtype) {
    switch ((bzn_dtype)dtype) {
    case BZN_DT_F32: return "f32";
    case BZN_DT_F16: return "f16";
    case BZN_DT_I8: return "i8";
    }
    return "?";
}

/* element count, or UINT64_MAX when it would overflow (never a valid size) */
uint64_t bzn_wf_numel(int ndim, const uint32_t *shape) {
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] && n > UINT64_MAX / 8 / shape[i]) return UINT64_MAX;
        n *= shape[i];
    }
    return n;
}


/* ---- header layout (offsets in bytes; FORMAT.md has the table) ------------------ */

enum {
    H_MAGIC = 0, H_VERSION = 8, H_HEADER_BYTES = 12, H_COUNT = 16, H_ENTRY_BYTES = 20,
    H_TABLE_OFF = 24, H_DATA_OFF = 32, H_FILE_BYTES = 40, H_AGG = 48, H_AUX = 52,
    H_CLASSES = 56, H_HEIGHT = 60, H_WIDTH = 64, H_MEAN = 68, H_STD = 80, H_TABLE_CRC = 92,
    H_HEADER_CRC = 124
};
enum { E_NAME = 0, E_DTYPE = 80, E_NDIM = 84, E_SHAPE = 88, E_OFFSET = 104, E_NBYTES = 112,
       E_CRC = 120, E_SCALE = 124 };

static uint64_t align_up(uint64_t v) { return (v + BZN_WF_ALIGN - 1) / BZN_WF_ALIGN * BZN_WF_ALIGN; }

/* ---- validation ------------------------------------------------------------------ */

static int cmp_by_offset(const void *a, const void *b) {
    const bzn_wf_tensor *x = *(bzn_wf_tensor *const *)a, *y = *(bzn_wf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}
static int cmp_by_name(const void *a, const void *b) {
    return strcmp((*(bzn_wf_tensor *const *)a)->name, (*(bzn_wf_tensor *const *)b)->name);
}

static bzn_status parse(bzn_wfile *wf, bzn_error *err) {
    const uint8_t *p = wf->base;
    size_t size = wf->size;
    if (size < BZN_WF_HEADER_BYTES) {
        if (size >= 8 && memcmp(p, BZN_WF_MAGIC, 8) != 0)
            return bzn_fail(err, BZN_ERR_FORMAT, "not a BlazeNeo weight file (bad magic)");
        return bzn_fail(err, BZN_ERR_FORMAT, "truncated weight file: %zu bytes, the header alone is %u",
                        size, BZN_WF_HEADER_BYTES);
    }
    if (memcmp(p + H_MAGIC, BZN_WF_MAGIC, 8) != 0) {
        if (p[0] == 'P' && p[1] == 'K')
            return bzn_fail(err, BZN_ERR_FORMAT,
                            "this is a zip archive (a PyTorch checkpoint?), not a BlazeNeo weight file: "
                            "convert it first with 'blazeneo convert IN.pth OUT.bzn'");
        return bzn_fail(err, BZN_ERR_FORMAT, "not a BlazeNeo weight file (bad magic)");
    }
    uint32_t version = rd32(p + H_VERSION);
    if (version != BZN_WF_VERSION)
        return bzn_fail(err, BZN_ERR_UNSUPPORTED, "weight file version %u, this engine reads version %u",
                        version, BZN_WF_VERSION);
    if (crc_mismatch(bzn_crc32(p, H_HEADER_CRC), rd32(p + H_HEADER_CRC)))
        return bzn_fail(err, BZN_ERR_FORMAT, "header checksum mismatch (corrupted header)");
    if (rd32(p + H_HEADER_BYTES) != BZN_WF_HEADER_BYTES || rd32(p + H_ENTRY_BYTES) != BZN_WF_ENTRY_BYTES)
        return bzn_fail(err, BZN_ERR_FORMAT, "unexpected header or table entry size");
    uint64_t file_bytes = rd64(p + H_FILE_BYTES);
    if (file_bytes != size)
        return bzn_fail(err, BZN_ERR_FORMAT, "file is %zu bytes but its header says %llu (truncated?)", size,
                        (unsigned long long)file_bytes);
    uint32_t count = rd32(p + H_COUNT);
    uint64_t table_off = rd64(p + H_TABLE_OFF), data_off = rd64(p + H_DATA_OFF);
    if (count == 0 || count > BZN_WF_MAX_TENSORS)
        return bzn_fail(err, BZN_ERR_FORMAT, "implausible tensor count %u", count);
    uint64_t table_end = table_off + (uint64_t)count * BZN_WF_ENTRY_BYTES;
    if (table_off != BZN_WF_HEADER_BYTES || table_end > size)
        return bzn_fail(err, BZN_ERR_FORMAT, "tensor table lies outside the file");
    if (data_off < table_end || data_off % BZN_WF_ALIGN || data_off > size)
        return bzn_fail(err, BZN_ERR_FORMAT, "data section offset %llu is invalid",
                        (unsigned long long)data_off);
    if (crc_mismatch(bzn_crc32(p + table_off, (size_t)(table_end - table_off)), rd32(p + H_TABLE_CRC)))
        return bzn_fail(err, BZN_ERR_FORMAT, "tensor table checksum mismatch (corrupted table)");

    bzn_wf_config *c = &wf->config;
    uint32_t agg = rd32(p + H_AGG), aux = rd32(p + H_AUX), classes = rd32(p + H_CLASSES);
    uint32_t h = rd32(p + H_HEIGHT), w = rd32(p + H_WIDTH);
    if (agg > BZN_AGG_DHA) return bzn_fail(err, BZN_ERR_FORMAT, "unknown aggregation code %u", agg);
    if (aux > 1) return bzn_fail(err, BZN_ERR_FORMAT, "invalid auxiliary flag %u", aux);
    if (classes != 2 && classes != 3)
        return bzn_fail(err, BZN_ERR_UNSUPPORTED, "head with %u classes (2 or 3 supported)", classes);
    if (h == 0 || w == 0 || h % 32 || w % 32 || h > 8192 || w > 8192)
        return bzn_fail(err, BZN_ERR_FORMAT, "default input size %ux%u is not a multiple of 32", w, h);
    c->aggregation = (bzn_aggregation)agg;
    c->has_aux = (int)aux;
    c->num_classes = (int)classes;
    c->default_height = (int)h;
    c->default_width = (int)w;
    for (int i = 0; i < 3; i++) {
        c->mean[i] = rdf32(p + H_MEAN + 4 * i);
        c->std[i] = rdf32(p + H_STD + 4 * i);
        if (!isfinite(c->mean[i]) || !isfinite(c->std[i]) || !(c->std[i] > 0))
            return bzn_fail(err, BZN_ERR_FORMAT, "invalid normalisation constants in header");
    }

    wf->tensors = calloc(count, sizeof *wf->tensors);
    bzn_wf_tensor **order = malloc(count * sizeof *order);
    if (!wf->tensors || !order) {
        free(order);
        return bzn_fail(err, BZN_ERR_NOMEM, "out of memory reading the tensor table");
    }
    wf->count = (int)count;
    uint64_t data_size = size - data_off;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *e = p + table_off + (uint64_t)i * BZN_WF_ENTRY_BYTES;
        bzn_wf_tensor *t = &wf->tensors[i];
        order[i] = t;
        if (memchr(e + E_NAME, 0, BZN_WF_NAME_BYTES) == NULL || e[E_NAME] == 0) {
            free(order);
            return bzn_fail(err, BZN_ERR_FORMAT, "tensor #%u has an empty or unterminated name", i);
        }
        memcpy(t->name, e + E_NAME, BZN_WF_NAME_BYTES);
        uint32_t dt = rd32(e + E_DTYPE), nd = rd32(e + E_NDIM);
        if (dt > BZN_DT_I8 || nd > 4) {
            free(order);
            return bzn_fail(err, BZN_ERR_FORMAT, "tensor '%s': invalid dtype %u or rank %u", t->name, dt, nd);
        }
        t->dtype = (bzn_dtype)dt;
        t->ndim = (int)nd;
        for (int d = 0; d < 4; d++) {
            t->shape[d] = rd32(e + E_SHAPE + 4 * d);
            if ((uint32_t)d >= nd ? t->shape[d] != 0 : (t->shape[d] == 0 || t->shape[d] > (1u << 24))) {
                free(order);
                return bzn_fail(err, BZN_ERR_FORMAT, "tensor '%s': invalid shape", t->name);
            }
        }
        t->offset = rd64(e + E_OFFSET);
        t->nbytes = rd64(e + E_NBYTES);
        t->crc32 = rd32(e + E_CRC);
        t->scale_index = rd32(e + E_SCALE);
        const uint64_t numel = bzn_wf_numel(t->ndim, t->shape);
        if (numel == UINT64_MAX || t->nbytes != numel * bzn_dtype_size(t->dtype)) {
            free(order);
            return bzn_fail(err, BZN_ERR_FORMAT, "tensor '%s': size %llu does not match its shape", t->name,
                            (unsigned long long)t->nbytes);
        }
        if (t->offset % BZN_WF_ALIGN) {
            free(order);
            return bzn_fail(err, BZN_ERR_FORMAT, "tensor '%s': data not %u-byte aligned", t->name, BZN_WF_ALIGN);
        }
        if (t->offset > data_size || t->nbytes > data_size - t->offset) {
            free(order);
            return bzn_fail(err, BZN_ERR_FORMAT, "tensor '%s': data lies outside the file (truncated?)", t->name);
        }
        if (t->scale_index != BZN_WF_NO_SCALE && (t->dtype != BZN_DT_I8 || t->scale_index >= count)) {
            free(order);
            return bzn_fail(err, BZN_ERR_FORMAT, "tensor '%s': invalid scale reference", t->name);
        }
        t->data = p + data_off + t->offset;
    }
    /* names unique */
    qsort(order, count, sizeof *order, cmp_by_name);
    for (uint32_t i = 1; i < count; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            bzn_status s = bzn_fail(err, BZN_ERR_FORMAT, "tensor '%s' appears twice", order[i]->name);
            free(order);
            return s;
        }
    /* no two tensors share bytes */
    qsort(order, count, sizeof *order, cmp_by_offset);
    for (uint32_t i = 1; i < count; i++)
        if (order[i - 1]->offset + order[i - 1]->nbytes > order[i]->offset) {
            bzn_status s = bzn_fail(err, BZN_ERR_FORMAT, "tensors '%s' and '%s' overlap", order[i - 1]->name,
                                    order[i]->name);
            free(order);
            return s;
        }
    free(order);
    for (uint32_t i = 0; i < count; i++) {
        const bzn_wf_tensor *t = &wf->tensors[i];
        if (crc_mismatch(bzn_crc32(t->data, (size_t)t->nbytes), t->crc32))
            return bzn_fail(err, BZN_ERR_FORMAT, "tensor '%s': data checksum mismatch (corrupted file)", t->name);
    }
    return BZN_OK;
}

bzn_status bzn_wfile_open(const char *path, bzn_wfile *wf, bzn_error *err) {
    char ebuf[128]; /* errno text */
    memset(wf, 0, sizeof *wf);
    if (!path) return bzn_fail(err, BZN_ERR_ARG, "no weight file path given");
    int fd = open(path, O_RDONLY);
    if (fd < 0) return bzn_fail(err, BZN_ERR_IO, "%s: %s", path, bzn_errno_text(errno, ebuf, sizeof ebuf));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return bzn_fail(err, BZN_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return bzn_fail(err, BZN_ERR_FORMAT, "%s: empty file", path);
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return bzn_fail(err, BZN_ERR_IO, "%s: cannot map: %s", path, bzn_errno_text(errno, ebuf, sizeof ebuf));
    wf->base = m;
    wf->size = (size_t)st.st_size;
    wf->mapped = 1;
    bzn_status s = parse(wf, err);
    if (s != BZN_OK) {
        if (err) { /* prefix the file name */
            char tmp[sizeof err->msg];
            size_t n = strlen(path);
            if (n > sizeof tmp / 2) n = sizeof tmp / 2;
            memcpy(tmp, path, n);
            snprintf(tmp + n, sizeof tmp - n, ": %.*s", (int)(sizeof tmp - n - 3), err->msg);
            memcpy(err->msg, tmp, sizeof tmp);
        }
        bzn_wfile_close(wf);
    }
    return s;
}

bzn_status bzn_wfile_open_memory(const void *data, size_t size, bzn_wfile *wf, bzn_error *err) {
    memset(wf, 0, sizeof *wf);
    if (!data && size) return bzn_fail(err, BZN_ERR_ARG, "NULL buffer");
    /* copy into 64-byte aligned memory so the data section is aligned as in a mapping */
    void *copy = NULL;
    if (posix_memalign(&copy, BZN_WF_ALIGN, size ? size : 1) != 0)
        return bzn_fail(err, BZN_ERR_NOMEM, "out of memory copying %zu bytes", size);
    if (size) memcpy(copy, data, size);
    wf->base = copy;
    wf->size = size;
    bzn_status s = parse(wf, err);
    if (s != BZN_OK) bzn_wfile_close(wf);
    return s;
}

void bzn_wfile_close(bzn_wfile *wf) {
    if (!wf) return;
    if (wf->base) {
        if (wf->mapped)
            munmap(wf->base, wf->size);
        else
            free(wf->base);
    }
    free(wf->tensors);
    memset(wf, 0, sizeof *wf);
}

void bzn_wfile_release_range(const bzn_wfile *wf, const void *p, size_t n) {
    if (!wf || !wf->mapped || !wf->base || !p) return;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), base = (uintptr_t)wf->base;
    const uintptr_t lo = (uintptr_t)p, hi = lo + n;
    if (page == 0 || page == (uintptr_t)-1 || lo < base || hi > base + wf->size) return;
    const uintptr_t a = (lo + page - 1) / page * page, z = hi / page * page; /* whole pages only */
    if (a < z) (void)madvise((void *)a, z - a, MADV_DONTNEED); /* advice: may fail */
}

void bzn_wfile_release_pages(bzn_wfile *wf) {
    if (wf) bzn_wfile_release_range(wf, wf->base, wf->size);
}

const bzn_wf_tensor *bzn_wfile_find(const bzn_wfile *wf, const char *name) {
    for (int i = 0; i < wf->count; i++)
        if (strcmp(wf->tensors[i].name, name) == 0) return &wf->tensors[i];
    return NULL;
}

/* ---- writing ------------------------------------------------------------------------ */

static int write_all(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n; }

bzn_status bzn_wfile_write_stream(FILE *f, const bzn_wf_config *cfg, const bzn_wf_input *t, int count,
                                  bzn_error *err) {
    if (!f || !cfg || !t || count <= 0 || (uint32_t)count > BZN_WF_MAX_TENSORS)
        return bzn_fail(err, BZN_ERR_ARG, "invalid arguments to the weight file writer");
    uint64_t table_off = BZN_WF_HEADER_BYTES;
    uint64_t data_off = align_up(table_off + (uint64_t)count * BZN_WF_ENTRY_BYTES);
    uint8_t *table = calloc((size_t)count, BZN_WF_ENTRY_BYTES);
    if (!table) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    uint64_t off = 0, end = 0;
    for (int i = 0; i < count; i++) {
        uint8_t *e = table + (size_t)i * BZN_WF_ENTRY_BYTES;
        size_t len = strlen(t[i].name);
        if (len == 0 || len >= BZN_WF_NAME_BYTES || t[i].ndim < 0 || t[i].ndim > 4) {
            free(table);
            return bzn_fail(err, BZN_ERR_ARG, "tensor '%s': name too long or bad rank", t[i].name);
        }
        memcpy(e + E_NAME, t[i].name, len);
        wr32(e + E_DTYPE, (uint32_t)t[i].dtype);
        wr32(e + E_NDIM, (uint32_t)t[i].ndim);
        for (int d = 0; d < 4; d++) wr32(e + E_SHAPE + 4 * d, d < t[i].ndim ? t[i].shape[d] : 0);
        uint64_t nb = bzn_wf_numel(t[i].ndim, t[i].shape) * bzn_dtype_size(t[i].dtype);
        wr64(e + E_OFFSET, off);
        wr64(e + E_NBYTES, nb);
        wr32(e + E_CRC, bzn_crc32(t[i].data, (size_t)nb));
        wr32(e + E_SCALE, t[i].scale_index);
        end = off + nb;
        off = align_up(end);
    }
    uint64_t file_bytes = data_off + end; /* no padding after the last tensor */
    uint8_t hdr[BZN_WF_HEADER_BYTES] = {0};
    memcpy(hdr + H_MAGIC, BZN_WF_MAGIC, 8);
    wr32(hdr + H_VERSION, BZN_WF_VERSION);
    wr32(hdr + H_HEADER_BYTES, BZN_WF_HEADER_BYTES);
    wr32(hdr + H_COUNT, (uint32_t)count);
    wr32(hdr + H_ENTRY_BYTES, BZN_WF_ENTRY_BYTES);
    wr64(hdr + H_TABLE_OFF, table_off);
    wr64(hdr + H_DATA_OFF, data_off);
    wr64(hdr + H_FILE_BYTES, file_bytes);
    wr32(hdr + H_AGG, (uint32_t)cfg->aggregation);
    wr32(hdr + H_AUX, cfg->has_aux ? 1u : 0u);
    wr32(hdr + H_CLASSES, (uint32_t)cfg->num_classes);
    wr32(hdr + H_HEIGHT, (uint32_t)cfg->default_height);
    wr32(hdr + H_WIDTH, (uint32_t)cfg->default_width);
    for (int i = 0; i < 3; i++) {
        wrf32(hdr + H_MEAN + 4 * i, cfg->mean[i]);
        wrf32(hdr + H_STD + 4 * i, cfg->std[i]);
    }
    wr32(hdr + H_TABLE_CRC, bzn_crc32(table, (size_t)count * BZN_WF_ENTRY_BYTES));
    wr32(hdr + H_HEADER_CRC, bzn_crc32(hdr, H_HEADER_CRC));

    static const uint8_t zeros[BZN_WF_ALIGN] = {0};
    int ok = write_all(f, hdr, sizeof hdr);
    ok = ok && write_all(f, table, (size_t)count * BZN_WF_ENTRY_BYTES);
    uint64_t pos = table_off + (uint64_t)count * BZN_WF_ENTRY_BYTES;
    ok = ok && write_all(f, zeros, (size_t)(data_off - pos));
    pos = 0;
    for (int i = 0; ok && i < count; i++) {
        const uint8_t *e = table + (size_t)i * BZN_WF_ENTRY_BYTES;
        uint64_t o = rd64(e + E_OFFSET), nb = rd64(e + E_NBYTES);
        ok = ok && write_all(f, zeros, (size_t)(o - pos));
        ok = ok && write_all(f, t[i].data, (size_t)nb);
        pos = o + nb;
    }
    free(table);
    return ok ? BZN_OK : BZN_ERR_IO; /* the stream's error flag says why; its owner reports it */
}

bzn_status bzn_wfile_write(const char *path, const bzn_wf_config *cfg, const bzn_wf_input *t, int count,
                           bzn_error *err) {
    bzn_writer *out;
    bzn_status s = bzn_writer_open(path, &out, err);
    if (s != BZN_OK) return s;
    s = bzn_wfile_write_stream(bzn_writer_stream(out), cfg, t, count, err);
    if (s != BZN_OK && s != BZN_ERR_IO) { /* invalid input, reported: nothing was written */
        bzn_writer_close(out, 1, NULL);
        return s;
    }
    return bzn_writer_close(out, 0, err); /* a failed write left the stream's error flag set: reported here */
}
