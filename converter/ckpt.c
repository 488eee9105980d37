/*
 * ckpt.c - reading PyTorch checkpoints: the glue between zip.c and pickle.c (see ckpt.h).
 *
 * Since PyTorch 1.6, torch.save(obj, "name.pth") writes a zip archive (stored, not
 * compressed) whose entries all live in one top-level folder (by default the file name
 * without extension, e.g. "name/"):
 *
 *   name/data.pkl    the object, pickled; each tensor is a call
 *                    torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)
 *                    and each storage a persistent id ('storage', torch.FloatStorage,
 *                    "<key>", "cpu", numel)
 *   name/data/<key>  the raw bytes of storage <key>, little-endian, numel elements
 *   name/version     the format version ("3")
 *
 * A tensor is a strided view of its storage: element (i0, i1, ...) lives at storage
 * element offset + i0*stride[0] + i1*stride[1] + ... . Several tensors may share a storage
 * (a transposed copy, a slice). This file finds data.pkl, runs the pickle, picks the state
 * dict out of the usual wrappers, and copies every tensor into a fresh contiguous buffer
 * after checking that all the elements it reads lie inside its storage.
 *
 * Memory: reading a checkpoint of S bytes allocates at most pk_memory_budget(S) = 16 S + 1 MiB
 * (PK_MEMORY_FACTOR, PK_MEMORY_SLACK) in all, besides the zip directory (at most about S):
 * the pickle VM gets that budget, and what it leaves is what the tensor table, the names and
 * the materialised tensors may use. (A real checkpoint needs about S: tensors are stored
 * once, and the pickle is small beside them.)
 */
#include "ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "pickle.h"
#include "zip.h"

#define NAME_SHOWN 200 /* longest name quoted in a message */
#define ALLOC_OVERHEAD 16 /* what malloc keeps per block, counted in the budget */

size_t bzn_ck_dtype_size(bzn_ck_dtype t) {
    switch (t) {
    case BZN_CK_F32: return 4;
    case BZN_CK_F16: return 2;
    case BZN_CK_BF16: return 2;
    case BZN_CK_F64: return 8;
    case BZN_CK_I64: return 8;
    case BZN_CK_I32: return 4;
    case BZN_CK_U8: return 1;
    case BZN_CK_I8: return 1;
    case BZN_CK_BOOL: return 1;
    }
    return 0;
}

const char *bzn_ck_dtype_name(bzn_ck_dtype t) {
    switch (t) {
    case BZN_CK_F32: return "f32";
    case BZN_CK_F16: return "f16";
    case BZN_CK_BF16: return "bf16";
    case BZN_CK_F64: return "f64";
    case BZN_CK_I64: return "i64";
    case BZN_CK_I32: return "i32";
    case BZN_CK_U8: return "u8";
    case BZN_CK_I8: return "i8";
    case BZN_CK_BOOL: return "bool";
    }
    return "?";
}

void bzn_ckpt_free(bzn_ckpt *ck) {
    if (!ck) return;
    for (int i = 0; i < ck->count; i++) {
        free(ck->tensors[i].name);
        free(ck->tensors[i].data);
    }
    free(ck->tensors);
    ck->tensors = NULL;
    ck->count = 0;
}

const bzn_ck_tensor *bzn_ckpt_find(const bzn_ckpt *ck, const char *name) {
    if (!ck || !name) return NULL;
    for (int i = 0; i < ck->count; i++)
        if (strcmp(ck->tensors[i].name, name) == 0) return &ck->tensors[i];
    return NULL;
}

/* ---- helpers --------------------------------------------------------------------- */

static int shown(size_t len) { return (int)(len < NAME_SHOWN ? len : NAME_SHOWN); }

/* Prefix the message already in err with "what: ". */
static bzn_status prefix_error(bzn_error *err, bzn_status st, const char *what, size_t what_len) {
    if (!err) return st;
    char msg[sizeof err->msg];
    memcpy(msg, err->msg, sizeof msg);
    msg[sizeof msg - 1] = '\0';
    return bzn_fail(err, st, "%.*s: %s", shown(what_len), what, msg);
}

/* Everything one read needs, freed in one place. */
typedef struct {
    zip_archive zip;
    const char *folder;   /* "name/" (points into the archive), prefix of every entry */
    size_t folder_len;
    pk_vm *vm;
    uint64_t bytes_left;  /* what is left of the memory budget after the pickle, for the tensors */
    bzn_ckpt out;
} reader;

static void reader_free(reader *r) {
    pk_free(r->vm);
    zip_close(&r->zip);
    bzn_ckpt_free(&r->out);
}

/* Find the one "<folder>/data.pkl" entry, whatever the folder is called. */
static bzn_status find_pickle(reader *r, const zip_entry **pkl, bzn_error *err) {
    static const char tail[] = "/data.pkl";
    const size_t tail_len = sizeof tail - 1;
    *pkl = NULL;
    for (size_t i = 0; i < r->zip.count; i++) {
        const zip_entry *e = &r->zip.entries[i];
        if (e->name_len <= tail_len || memcmp(e->name + e->name_len - tail_len, tail, tail_len) != 0) continue;
        if (memchr(e->name, '/', e->name_len - tail_len)) continue; /* not a top-level folder */
        if (*pkl)
            return bzn_fail(err, BZN_ERR_FORMAT, "the archive holds more than one data.pkl ('%.*s' and '%.*s')",
                            shown((*pkl)->name_len), (*pkl)->name, shown(e->name_len), e->name);
        *pkl = e;
    }
    if (!*pkl)
        return bzn_fail(err, BZN_ERR_FORMAT, "the zip archive has no <folder>/data.pkl entry: not a PyTorch "
                                             "checkpoint written by torch.save");
    r->folder = (*pkl)->name;
    r->folder_len = (*pkl)->name_len - tail_len + 1; /* keep the '/' */
    return BZN_OK;
}

/* The zip entry "<folder>/<rest...>" (rest given as pieces), or NULL. */
static const zip_entry *find_in_folder(const reader *r, const char *rest, const char *key, size_t key_len,
                                       bzn_status *st, bzn_error *err) {
    size_t rest_len = strlen(rest);
    char *name = malloc(r->folder_len + rest_len + key_len + 1);
    if (!name) {
        *st = bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
        return NULL;
    }
    memcpy(name, r->folder, r->folder_len);
    memcpy(name + r->folder_len, rest, rest_len);
    memcpy(name + r->folder_len + rest_len, key, key_len);
    name[r->folder_len + rest_len + key_len] = '\0';
    const zip_entry *e = zip_find(&r->zip, name);
    free(name);
    *st = BZN_OK;
    return e;
}

/* torch >= 2.1 records the byte order of the storages; only little-endian is read. */
static bzn_status check_byteorder(reader *r, bzn_error *err) {
    bzn_status st;
    const zip_entry *e = find_in_folder(r, "byteorder", "", 0, &st, err);
    if (st || !e) return st;
    const uint8_t *p;
    size_t n;
    if ((st = zip_entry_data(&r->zip, e, &p, &n, err))) return st;
    if (n >= 3 && memcmp(p, "big", 3) == 0)
        return bzn_fail(err, BZN_ERR_UNSUPPORTED, "the checkpoint stores big-endian tensors; re-save it on a "
                                                  "little-endian machine");
    return BZN_OK;
}

/* Follow {"state_dict": {...}}, {"model": {...}} and {"model_state_dict": {...}}. */
static const pk_obj *unwrap(const pk_obj *top) {
    static const char *const wrappers[] = {"state_dict", "model_state_dict", "model"};
    for (int depth = 0; depth < 4 && top->kind == PK_DICT; depth++) {
        const pk_obj *inner = NULL;
        for (size_t i = 0; i < sizeof wrappers / sizeof wrappers[0] && !inner; i++) {
            const pk_obj *v = pk_dict_get(top, wrappers[i]);
            if (v && v->kind == PK_DICT) inner = v;
        }
        if (!inner) break;
        top = inner;
    }
    return top;
}

/* Why a top-level object that is not a dict cannot be read. */
static bzn_status not_a_state_dict(const pk_obj *top, bzn_error *err) {
    if (top->kind == PK_OBJECT && top->u.object.cls) {
        const pk_obj *g = top->u.object.cls;
        return bzn_fail(err, BZN_ERR_UNSUPPORTED, "the checkpoint holds a pickled %.*s.%.*s object, not a state "
                        "dict; save model.state_dict() instead", shown(g->u.global.module_len), g->u.global.module,
                        shown(g->u.global.name_len), g->u.global.name);
    }
    return bzn_fail(err, BZN_ERR_UNSUPPORTED, "the checkpoint holds a %s, not a state dict (a dict of tensors)",
                    pk_kind_name(top->kind));
}

/* A state-dict value that looks like a tensor this reader cannot rebuild (quantized,
 * sparse, ...): REDUCE turned its torch._utils._rebuild_* call into an opaque object. */
static int is_unknown_torch_tensor(const pk_obj *v) {
    if (v->kind != PK_OBJECT || !v->u.object.cls) return 0;
    const pk_obj *g = v->u.object.cls;
    return g->u.global.module_len >= 5 && memcmp(g->u.global.module, "torch", 5) == 0 &&
           g->u.global.name_len >= 8 && memcmp(g->u.global.name, "_rebuild", 8) == 0;
}

/* Element count of a shape, or -1 when it overflows int64. */
static int64_t shape_numel(const int64_t *shape, int ndim) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 0) return 0;
    }
    for (int i = 0; i < ndim; i++) {
        if (n > INT64_MAX / shape[i]) return -1;
        n *= shape[i];
    }
    return n;
}

/* Copy tensor t (named name) out of its storage into o, contiguous and row-major. */
static bzn_status materialise(reader *r, const pk_obj *t, bzn_ck_tensor *o, bzn_error *err) {
    const pk_obj *s = t->u.tensor->storage;
    const int ndim = t->u.tensor->ndim;
    const int64_t *shape = t->u.tensor->shape, *stride = t->u.tensor->stride;
    const size_t esize = bzn_ck_dtype_size(s->u.storage.dtype);
    const char *key = s->u.storage.key;
    const size_t key_len = s->u.storage.key_len;

    o->dtype = s->u.storage.dtype;
    o->ndim = ndim;
    for (int i = 0; i < ndim; i++) o->shape[i] = shape[i];

    int64_t numel = shape_numel(shape, ndim);
    if (numel < 0 || (uint64_t)numel > SIZE_MAX / esize)
        return bzn_fail(err, BZN_ERR_FORMAT, "tensor '%s': its shape has too many elements", o->name);
    if (memchr(key, '\0', key_len))
        return bzn_fail(err, BZN_ERR_FORMAT, "tensor '%s': storage key contains a NUL byte", o->name);

    /* The storage's bytes: <folder>/data/<key>, holding at least numel elements. */
    bzn_status st;
    const zip_entry *e = find_in_folder(r, "data/", key, key_len, &st, err);
    if (st) return st;
    if (!e)
        return bzn_fail(err, BZN_ERR_FORMAT, "tensor '%s': storage 'data/%.*s' is missing from the archive",
                        o->name, shown(key_len), key);
    const uint8_t *bytes;
    size_t nbytes;
    if ((st = zip_entry_data(&r->zip, e, &bytes, &nbytes, err))) return st;
    uint64_t storage_numel = (uint64_t)s->u.storage.numel;
    if (storage_numel > nbytes / esize)
        return bzn_fail(err, BZN_ERR_FORMAT, "storage 'data/%.*s' is %zu bytes but its header says %llu %s "
                        "elements (%s %zu bytes each)", shown(key_len), key, nbytes,
                        (unsigned long long)storage_numel, bzn_ck_dtype_name(o->dtype), s->u.storage.type_name,
                        esize);

    o->nbytes = (size_t)numel * esize;
    if (numel == 0) return BZN_OK; /* nothing to read; data stays NULL */

    /* Highest storage element read: offset + sum (shape[i] - 1) * stride[i]; all terms are
     * non-negative (pickle.c checked), so checking against INT64_MAX suffices. */
    uint64_t last = (uint64_t)t->u.tensor->offset;
    for (int i = 0; i < ndim; i++) {
        uint64_t span = (uint64_t)(shape[i] - 1), st_i = (uint64_t)stride[i];
        if (st_i && span > ((uint64_t)INT64_MAX - last) / st_i)
            return bzn_fail(err, BZN_ERR_FORMAT, "tensor '%s': its strides overflow", o->name);
        last += span * st_i;
    }
    if (last >= storage_numel)
        return bzn_fail(err, BZN_ERR_FORMAT, "tensor '%s': storage 'data/%.*s' is %llu bytes but the tensor needs "
                        "%llu (offset %lld, up to element %llu)", o->name, shown(key_len), key,
                        (unsigned long long)(storage_numel * esize),
                        (unsigned long long)((last + 1) <= UINT64_MAX / esize ? (last + 1) * esize : UINT64_MAX),
                        (long long)t->u.tensor->offset, (unsigned long long)last);

    if (o->nbytes > r->bytes_left || r->bytes_left - o->nbytes < ALLOC_OVERHEAD)
        return bzn_fail(err, BZN_ERR_UNSUPPORTED, "tensor '%s': the tensors would need far more memory than the "
                        "checkpoint's size (broadcast views?); refusing", o->name);
    r->bytes_left -= o->nbytes + ALLOC_OVERHEAD;
    o->data = malloc(o->nbytes);
    if (!o->data) return bzn_fail(err, BZN_ERR_NOMEM, "tensor '%s': out of memory for %zu bytes", o->name, o->nbytes);

    /* Contiguous (row-major strides, ignoring dimensions of size 1): one memcpy. */
    int contiguous = 1;
    int64_t expect = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        if (shape[i] != 1 && stride[i] != expect) contiguous = 0;
        expect *= shape[i];
    }
    const uint8_t *base = bytes + (size_t)t->u.tensor->offset * esize;
    if (contiguous) {
        memcpy(o->data, base, o->nbytes);
        return BZN_OK;
    }
    /* General case: walk the multi-index like an odometer, moving the source position by
     * stride[d] when digit d advances and back by (shape[d] - 1) * stride[d] when it wraps. */
    uint8_t *dst = o->data;
    int64_t idx[PK_MAX_DIMS] = {0};
    size_t src = 0; /* elements from base */
    for (int64_t n = 0; n < numel; n++) {
        memcpy(dst + (size_t)n * esize, base + src * esize, esize);
        for (int d = ndim - 1; d >= 0; d--) {
            if (++idx[d] < shape[d]) {
                src += (size_t)stride[d];
                break;
            }
            src -= (size_t)((shape[d] - 1) * stride[d]);
            idx[d] = 0;
        }
    }
    return BZN_OK;
}

static int name_ptr_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Two entries may end up with one name (e.g. "module.x" and "x"): refuse that. */
static bzn_status check_unique_names(const bzn_ckpt *ck, bzn_error *err) {
    if (ck->count < 2) return BZN_OK;
    char **names = malloc((size_t)ck->count * sizeof *names);
    if (!names) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < ck->count; i++) names[i] = ck->tensors[i].name;
    qsort(names, (size_t)ck->count, sizeof *names, name_ptr_cmp);
    bzn_status st = BZN_OK;
    for (int i = 1; i < ck->count && !st; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            st = bzn_fail(err, BZN_ERR_FORMAT, "tensor name '%.*s' appears twice in the state dict",
                          shown(strlen(names[i])), names[i]);
    free(names);
    return st;
}

/* Turn the state dict's tensor values into r->out. */
static bzn_status collect(reader *r, const pk_obj *sd, bzn_error *err) {
    size_t n = 0;
    for (size_t i = 0; i < sd->u.dict.len; i++) {
        const pk_obj *k = sd->u.dict.keys[i], *v = sd->u.dict.values[i];
        if (v->kind == PK_TENSOR) {
            if (k->kind != PK_STR || memchr(k->u.str.s, '\0', k->u.str.len))
                return bzn_fail(err, BZN_ERR_FORMAT, "state dict entry %zu holds a tensor but its key is not a "
                                                     "string", i);
            n++;
        } else if (is_unknown_torch_tensor(v)) {
            const pk_obj *g = v->u.object.cls;
            return bzn_fail(err, BZN_ERR_UNSUPPORTED, "state dict entry '%.*s' is built by %.*s.%.*s, which this "
                            "reader does not support (only plain dense tensors are)",
                            k->kind == PK_STR ? shown(k->u.str.len) : 1, k->kind == PK_STR ? k->u.str.s : "?",
                            shown(g->u.global.module_len), g->u.global.module, shown(g->u.global.name_len),
                            g->u.global.name);
        }
        /* other values (ints, strings, nested dicts, unknown objects) are skipped */
    }
    if (n == 0) {
        /* torch.save({"model": model}) pickles the whole nn.Module: say so */
        const pk_obj *m = pk_dict_get(sd, "model");
        if (m && m->kind == PK_OBJECT && m->u.object.cls) return not_a_state_dict(m, err);
        return bzn_fail(err, BZN_ERR_UNSUPPORTED, "no tensors found: the checkpoint's dict has %zu entries and "
                        "none is a tensor", sd->u.dict.len);
    }
    if (n > (size_t)INT32_MAX) return bzn_fail(err, BZN_ERR_UNSUPPORTED, "too many tensors");

    /* the table, the names and check_unique_names's array count against the budget too (a
     * pickle may name one tensor many times; repeated names are refused only at the end) */
    uint64_t table = (uint64_t)n * (sizeof *r->out.tensors + sizeof(char *) + 2 * ALLOC_OVERHEAD) + 2 * ALLOC_OVERHEAD;
    for (size_t i = 0; i < sd->u.dict.len; i++)
        if (sd->u.dict.values[i]->kind == PK_TENSOR) table += sd->u.dict.keys[i]->u.str.len;
    if (table > r->bytes_left)
        return bzn_fail(err, BZN_ERR_UNSUPPORTED, "the state dict's %zu tensors would need far more memory than "
                        "the checkpoint's size; refusing", n);
    r->bytes_left -= table;
    r->out.tensors = calloc(n, sizeof *r->out.tensors);
    if (!r->out.tensors) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < sd->u.dict.len; i++) {
        const pk_obj *k = sd->u.dict.keys[i], *v = sd->u.dict.values[i];
        if (v->kind != PK_TENSOR) continue;
        bzn_ck_tensor *o = &r->out.tensors[r->out.count++];
        /* nn.DataParallel saves every key with a "module." prefix */
        const char *name = k->u.str.s;
        size_t len = k->u.str.len;
        if (len > 7 && memcmp(name, "module.", 7) == 0) {
            name += 7;
            len -= 7;
        }
        if (!(o->name = malloc(len + 1))) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
        memcpy(o->name, name, len);
        o->name[len] = '\0';
        bzn_status st = materialise(r, v, o, err);
        if (st) return st;
    }
    return check_unique_names(&r->out, err);
}

static bzn_status read_checkpoint(reader *r, const uint8_t *data, size_t size, bzn_error *err) {
    if (size == 0) return bzn_fail(err, BZN_ERR_FORMAT, "the file is empty: not a PyTorch checkpoint");
    if (!zip_looks_like_zip(data, size)) {
        if (size >= 2 && data[0] == 0x80 && data[1] == 0x02)
            return bzn_fail(err, BZN_ERR_UNSUPPORTED, "not a zip archive: this is a PyTorch < 1.6 (legacy) "
                            "checkpoint (it starts with a protocol-2 pickle); re-save it with torch.save(...) "
                            "from PyTorch >= 1.6");
        return bzn_fail(err, BZN_ERR_FORMAT, "not a zip archive: this looks like a PyTorch < 1.6 (legacy) "
                        "checkpoint or not a checkpoint at all; re-save it with torch.save(...) from "
                        "PyTorch >= 1.6");
    }
    bzn_status st = zip_open(&r->zip, data, size, err);
    if (st) return st;
    const zip_entry *pkl;
    if ((st = find_pickle(r, &pkl, err))) return st;
    if ((st = check_byteorder(r, err))) return st;

    const uint8_t *p;
    size_t n;
    if ((st = zip_entry_data(&r->zip, pkl, &p, &n, err))) return st;
    pk_obj *top;
    if ((st = pk_load_sized(p, n, size, &r->vm, &top, err))) return prefix_error(err, st, pkl->name, pkl->name_len);

    const pk_obj *sd = unwrap(top);
    if (sd->kind != PK_DICT) return not_a_state_dict(sd, err);
    r->bytes_left = pk_memory_budget(size) - pk_memory_used(r->vm);
    return collect(r, sd, err);
}

bzn_status bzn_ckpt_read_memory(const uint8_t *data, size_t size, bzn_ckpt *out, bzn_error *err) {
    if (!out) return bzn_fail(err, BZN_ERR_ARG, "bzn_ckpt_read_memory: out is NULL");
    out->tensors = NULL;
    out->count = 0;
    if (!data && size) return bzn_fail(err, BZN_ERR_ARG, "bzn_ckpt_read_memory: data is NULL");
    reader r;
    memset(&r, 0, sizeof r);
    bzn_status st = read_checkpoint(&r, data, size, err);
    if (!st) {
        *out = r.out; /* hand the tensors over */
        r.out.tensors = NULL;
        r.out.count = 0;
    }
    reader_free(&r);
    return st;
}

/* Whole file into memory: the reader needs random access (the zip directory is at the end). */
static bzn_status slurp(const char *path, uint8_t **buf, size_t *len, bzn_error *err) {
    char ebuf[128]; /* errno text */
    int fd = open(path, O_RDONLY);
    if (fd < 0) return bzn_fail(err, BZN_ERR_IO, "%s: cannot open: %s", path, bzn_errno_text(errno, ebuf, sizeof ebuf));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return bzn_fail(err, BZN_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX - 1) {
        close(fd);
        return bzn_fail(err, BZN_ERR_NOMEM, "%s: too large to read", path);
    }
    size_t n = (size_t)sb.st_size, got = 0;
    uint8_t *b = malloc(n ? n : 1);
    if (!b) {
        close(fd);
        return bzn_fail(err, BZN_ERR_NOMEM, "%s: out of memory for %zu bytes", path, n);
    }
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            bzn_status st = bzn_fail(err, BZN_ERR_IO, "%s: read error%s%s", path, r < 0 ? ": " : " (file shrank)",
                                     r < 0 ? bzn_errno_text(errno, ebuf, sizeof ebuf) : "");
            free(b);
            close(fd);
            return st;
        }
        got += (size_t)r;
    }
    close(fd);
    *buf = b;
    *len = n;
    return BZN_OK;
}

bzn_status bzn_ckpt_read_file(const char *path, bzn_ckpt *out, bzn_error *err) {
    if (!out) return bzn_fail(err, BZN_ERR_ARG, "bzn_ckpt_read_file: out is NULL");
    out->tensors = NULL;
    out->count = 0;
    if (!path) return bzn_fail(err, BZN_ERR_ARG, "bzn_ckpt_read_file: path is NULL");
    uint8_t *buf = NULL;
    size_t len = 0;
    bzn_status st = slurp(path, &buf, &len, err);
    if (st) return st;
    st = bzn_ckpt_read_memory(buf, len, out, err);
    free(buf);
    if (st) return prefix_error(err, st, path, strlen(path));
    return BZN_OK;
}
