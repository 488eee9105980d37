/*
 * pickle.h - a minimal, safe pickle virtual machine for what torch.save writes.
 *
 * A pickle is a little stack-machine program: each one-byte opcode pushes a value
 * (an int, a string, an empty dict, ...), or pops values and combines them (TUPLE,
 * SETITEMS, REDUCE = "call f(*args)"), and STOP returns the value on top of the stack.
 * A "memo" table lets the program store a value (BINPUT) and push it again later (BINGET),
 * which is how shared objects (a storage used by several tensors) are expressed.
 *
 * This VM never calls anything: REDUCE only understands a fixed list of callables
 * (collections.OrderedDict, torch._utils._rebuild_tensor_v2, _rebuild_parameter, ...)
 * and turns any other call into an opaque PK_OBJECT. Persistent ids (BINPERSID) of the
 * form ('storage', torch.FloatStorage, key, location, numel) become PK_STORAGE values
 * that name the zip entry holding the bytes; the bytes themselves are not read here.
 *
 * All objects live in one arena owned by the pk_vm and are freed together by pk_free.
 * Strings point into the pickle buffer, which must outlive the VM.
 */
#ifndef BZN_PICKLE_H
#define BZN_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "blazeneo.h"
#include "ckpt.h"

#define PK_MAX_DIMS 8

typedef enum {
    PK_NONE,
    PK_BOOL,
    PK_INT,     /* fits in int64 */
    PK_FLOAT,
    PK_STR,     /* unicode or (Python 2) byte strings: bytes as written, not NUL-terminated */
    PK_BYTES,
    PK_GLOBAL,  /* a class or function named by GLOBAL / STACK_GLOBAL: module + name */
    PK_TUPLE,   /* also frozensets */
    PK_LIST,    /* also sets */
    PK_DICT,    /* dicts and OrderedDicts, items in insertion order */
    PK_STORAGE, /* a torch storage (from a persistent id) */
    PK_TENSOR,  /* a tensor view of a storage */
    PK_OBJECT   /* anything else: an instance of an unknown class, a too-large int, ... */
} pk_kind;

typedef struct pk_obj pk_obj;

/* A tensor view of a storage (kept apart from pk_obj because it is large and rare). */
typedef struct {
    pk_obj *storage;                /* a PK_STORAGE */
    int64_t offset;                 /* storage offset, in elements */
    int ndim;
    int64_t shape[PK_MAX_DIMS], stride[PK_MAX_DIMS];
} pk_tensor;

struct pk_obj {
    pk_kind kind;
    pk_obj *arena_next; /* every object of a VM, for pk_free */
    union {
        int boolean;
        int64_t integer;
        double real;
        struct { const char *s; size_t len; } str;              /* PK_STR, PK_BYTES */
        struct { const char *module, *name; size_t module_len, name_len; } global;
        struct { pk_obj **items; size_t len, cap; } seq;        /* PK_TUPLE, PK_LIST */
        struct { pk_obj **keys, **values; size_t len, cap; } dict;
        struct {
            bzn_ck_dtype dtype;
            const char *type_name;          /* "FloatStorage", ... (static string) */
            const char *key; size_t key_len; /* the zip entry is <folder>/data/<key> */
            int64_t numel;                  /* elements, as the persistent id says */
        } storage;
        pk_tensor *tensor;                  /* PK_TENSOR */
        struct {
            pk_obj *cls;     /* the PK_GLOBAL that was called, or NULL */
            const char *what; /* short description (static string) */
        } object;
    } u;
};

typedef struct pk_vm pk_vm;

/* Run the pickle in data[0..size). On success *vm owns every object and *result is the
 * unpickled value; free with pk_free(*vm). On failure nothing is left allocated. */
bzn_status pk_load(const uint8_t *data, size_t size, pk_vm **vm, pk_obj **result, bzn_error *err);
void pk_free(pk_vm *vm);

/* The value stored under a string key in a PK_DICT (the last one if repeated); NULL if none. */
pk_obj *pk_dict_get(const pk_obj *dict, const char *key);
/* 1 when g is a PK_GLOBAL naming module.name. */
int pk_is_global(const pk_obj *g, const char *module, const char *name);
/* A short name of the value's kind, for messages ("dict", "tensor", ...). */
const char *pk_kind_name(pk_kind kind);

#endif
