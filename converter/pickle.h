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
 * All objects are owned by the pk_vm and freed together by pk_free; immutable values
 * (None, booleans, the empty tuple, small ints) may be shared between several places.
 * Strings point into the pickle buffer, which must outlive the VM.
 *
 * Memory is bounded by the input's size: everything the VM allocates (the VM itself, every
 * object, even one that a POP discards at once, container items, the stack, the marks, the
 * memo, with malloc's overhead) counts against a budget of PK_MEMORY_FACTOR bytes per input
 * byte plus PK_MEMORY_SLACK, and a pickle that needs more is refused ("exceeds its memory
 * budget") before the allocation is made. torch.save pickles need 7 to 10 bytes per byte
 * of pickle (protocol 4, more compact: up to 14), and far less per byte of checkpoint.
 */
#ifndef BZN_PICKLE_H
#define BZN_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "blazeneo.h"
#include "ckpt.h"

#define PK_MAX_DIMS 8
#define PK_MEMORY_FACTOR 16               /* bytes of memory allowed per byte of input ... */
#define PK_MEMORY_SLACK ((size_t)1 << 20) /* ... plus this much */

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
    int ndim;                       /* at most PK_MAX_DIMS */
    int64_t *shape, *stride;        /* ndim each, in dims[] */
    int64_t dims[];
} pk_tensor;

struct pk_obj {
    pk_kind kind;
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
 * unpickled value; free with pk_free(*vm). On failure nothing is left allocated. The VM
 * may allocate at most pk_memory_budget(size) bytes (BZN_ERR_FORMAT, "exceeds its memory
 * budget", beyond). */
bzn_status pk_load(const uint8_t *data, size_t size, pk_vm **vm, pk_obj **result, bzn_error *err);
/* The same with the budget made from budget_size >= size bytes: the checkpoint reader
 * passes the size of the whole checkpoint, of which the pickle is a part. */
bzn_status pk_load_sized(const uint8_t *data, size_t size, size_t budget_size, pk_vm **vm, pk_obj **result,
                         bzn_error *err);
void pk_free(pk_vm *vm);

/* PK_MEMORY_FACTOR * size + PK_MEMORY_SLACK (SIZE_MAX when that overflows). */
size_t pk_memory_budget(size_t size);
/* The bytes a loaded VM charged to its budget: all it allocated, including the stack, the
 * marks and the memo that pk_load freed at the end. 0 for NULL. */
size_t pk_memory_used(const pk_vm *vm);

/* The value stored under a string key in a PK_DICT (the last one if repeated); NULL if none. */
pk_obj *pk_dict_get(const pk_obj *dict, const char *key);
/* 1 when g is a PK_GLOBAL naming module.name. */
int pk_is_global(const pk_obj *g, const char *module, const char *name);
/* A short name of the value's kind, for messages ("dict", "tensor", ...). */
const char *pk_kind_name(pk_kind kind);

#endif
