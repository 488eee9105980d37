/*
 * pickle.c - see pickle.h.
 *
 * The machine has a value stack, a "mark" stack (MARK remembers the stack height so that
 * a later TUPLE / SETITEMS / APPENDS can take every value pushed since) and the memo.
 * Opcode arguments follow the opcode byte: fixed-size little-endian integers, or a length
 * and that many bytes, or (GLOBAL) two newline-terminated lines. Every read is checked
 * against the end of the buffer, and every pop against the stack (and the current mark).
 *
 * Memory: every allocation the VM makes - each object (even one that a POP discards at
 * once: nothing is freed before pk_free), each tensor record, the item arrays of tuples,
 * lists and dicts each time one grows, and the stack, the mark stack and the memo - is
 * charged, with malloc's own overhead, to one budget of PK_MEMORY_FACTOR bytes per byte of
 * input plus PK_MEMORY_SLACK (see pickle.h); a pickle that needs more is refused before the
 * allocation is made. Strings are not copied (they point into the buffer). The budget also
 * bounds the work, since every step that adds an item pays for its slot.
 */
#include "pickle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* ---- opcodes (the ones this VM runs; names as in CPython's pickletools) ------------- */
enum {
    OP_MARK = '(', OP_STOP = '.', OP_POP = '0', OP_POP_MARK = '1', OP_DUP = '2',
    OP_BINFLOAT = 'G', OP_BININT = 'J', OP_BININT1 = 'K', OP_BININT2 = 'M', OP_NONE = 'N',
    OP_BINPERSID = 'Q', OP_REDUCE = 'R', OP_BINSTRING = 'T', OP_SHORT_BINSTRING = 'U',
    OP_BINUNICODE = 'X', OP_APPEND = 'a', OP_BUILD = 'b', OP_GLOBAL = 'c', OP_DICT = 'd',
    OP_EMPTY_DICT = '}', OP_APPENDS = 'e', OP_BINGET = 'h', OP_LONG_BINGET = 'j', OP_LIST = 'l',
    OP_EMPTY_LIST = ']', OP_BINPUT = 'q', OP_LONG_BINPUT = 'r', OP_SETITEM = 's', OP_TUPLE = 't',
    OP_EMPTY_TUPLE = ')', OP_SETITEMS = 'u', OP_BINBYTES = 'B', OP_SHORT_BINBYTES = 'C',
    /* protocol 2 */
    OP_PROTO = 0x80, OP_NEWOBJ = 0x81, OP_TUPLE1 = 0x85, OP_TUPLE2 = 0x86, OP_TUPLE3 = 0x87,
    OP_NEWTRUE = 0x88, OP_NEWFALSE = 0x89, OP_LONG1 = 0x8a, OP_LONG4 = 0x8b,
    /* protocol 4 */
    OP_SHORT_BINUNICODE = 0x8c, OP_BINUNICODE8 = 0x8d, OP_BINBYTES8 = 0x8e, OP_EMPTY_SET = 0x8f,
    OP_ADDITEMS = 0x90, OP_FROZENSET = 0x91, OP_NEWOBJ_EX = 0x92, OP_STACK_GLOBAL = 0x93,
    OP_MEMOIZE = 0x94, OP_FRAME = 0x95
};

/* Names of the standard opcodes this VM does not run, for error messages. */
static const char *unsupported_opcode_name(uint8_t op) {
    switch (op) {
    case 'I': return "INT";
    case 'L': return "LONG";
    case 'F': return "FLOAT";
    case 'S': return "STRING";
    case 'V': return "UNICODE";
    case 'P': return "PERSID";
    case 'g': return "GET";
    case 'p': return "PUT";
    case 'i': return "INST";
    case 'o': return "OBJ";
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    }
    return NULL;
}

/* ---- limits ---------------------------------------------------------------------- */
#define PK_MAX_STACK ((size_t)1 << 20)
#define PK_MAX_MARKS ((size_t)1 << 16)
#define PK_MAX_MEMO ((size_t)1 << 22)
#define PK_MAX_REDUCE_DEPTH 4
#define PK_SLAB_OBJECTS 256  /* objects are allocated this many at a time */

/* Objects live in slabs: one allocation per PK_SLAB_OBJECTS objects, none per object. */
typedef struct pk_slab {
    struct pk_slab *next;
    size_t used;
    pk_obj obj[PK_SLAB_OBJECTS];
} pk_slab;

struct pk_vm {
    const uint8_t *data;
    size_t size, pos;
    size_t op_at;          /* offset of the opcode being run, for messages */
    bzn_error *err;

    pk_slab *slabs;        /* every object, the newest slab first */
    size_t budget_size;    /* the input size the memory budget is made from (>= size) */
    size_t budget;         /* bytes of memory the VM may allocate, pk_memory_budget(budget_size) ... */
    size_t bytes_left;     /* ... and what is left of them */

    pk_obj **stack;
    size_t sp, stack_cap;
    size_t *marks;
    size_t nmarks, marks_cap;
    pk_obj **memo;         /* NULL = unset slot */
    size_t memo_cap, memo_count;

    /* shared immutable values, not in the slabs: None, True, False, (), and the ints
     * 0..255 (made when first used) */
    pk_obj none, yes, no, empty_tuple;
    pk_obj *small_int[256];
};

const char *pk_kind_name(pk_kind kind) {
    switch (kind) {
    case PK_NONE: return "None";
    case PK_BOOL: return "bool";
    case PK_INT: return "int";
    case PK_FLOAT: return "float";
    case PK_STR: return "str";
    case PK_BYTES: return "bytes";
    case PK_GLOBAL: return "global";
    case PK_TUPLE: return "tuple";
    case PK_LIST: return "list";
    case PK_DICT: return "dict";
    case PK_STORAGE: return "storage";
    case PK_TENSOR: return "tensor";
    case PK_OBJECT: return "object";
    }
    return "?";
}

static int str_is(const char *s, size_t len, const char *z) {
    size_t n = strlen(z);
    return len == n && memcmp(s, z, n) == 0;
}

int pk_is_global(const pk_obj *g, const char *module, const char *name) {
    return g && g->kind == PK_GLOBAL && str_is(g->u.global.module, g->u.global.module_len, module) &&
           str_is(g->u.global.name, g->u.global.name_len, name);
}

pk_obj *pk_dict_get(const pk_obj *dict, const char *key) {
    if (!dict || dict->kind != PK_DICT) return NULL;
    for (size_t i = dict->u.dict.len; i-- > 0;) {
        const pk_obj *k = dict->u.dict.keys[i];
        if (k->kind == PK_STR && str_is(k->u.str.s, k->u.str.len, key)) return dict->u.dict.values[i];
    }
    return NULL;
}

void pk_free(pk_vm *vm) {
    if (!vm) return;
    pk_slab *slab = vm->slabs;
    while (slab) {
        pk_slab *next = slab->next;
        for (size_t i = 0; i < slab->used; i++) {
            pk_obj *o = &slab->obj[i];
            if (o->kind == PK_TUPLE || o->kind == PK_LIST) free(o->u.seq.items);
            if (o->kind == PK_TENSOR) free(o->u.tensor);
            if (o->kind == PK_DICT) {
                free(o->u.dict.keys);
                free(o->u.dict.values);
            }
        }
        free(slab);
        slab = next;
    }
    free(vm->stack);
    free(vm->marks);
    free(vm->memo);
    free(vm);
}

/* ---- errors ---------------------------------------------------------------------- */

static bzn_status fail_at(pk_vm *vm, bzn_status st, const char *what) {
    return bzn_fail(vm->err, st, "%s (opcode 0x%02x at offset %zu)", what, vm->data[vm->op_at], vm->op_at);
}

static bzn_status nomem(pk_vm *vm) { return fail_at(vm, BZN_ERR_NOMEM, "out of memory"); }

/* ---- the memory budget ----------------------------------------------------------- */

/* Pay for n bytes about to be allocated (malloc's overhead included by the caller). */
static bzn_status charge(pk_vm *vm, size_t n) {
    if (n > vm->bytes_left)
        return bzn_fail(vm->err, BZN_ERR_FORMAT, "pickle exceeds its memory budget (%zu bytes: %d times the input's "
                        "%zu bytes plus %zu KiB): it creates far too many objects or items for its size (opcode "
                        "0x%02x at offset %zu)", vm->budget, PK_MEMORY_FACTOR, vm->budget_size,
                        (size_t)PK_MEMORY_SLACK >> 10, vm->data[vm->op_at], vm->op_at);
    vm->bytes_left -= n;
    return BZN_OK;
}

size_t pk_memory_budget(size_t size) {
    if (size > (SIZE_MAX - PK_MEMORY_SLACK) / PK_MEMORY_FACTOR) return SIZE_MAX;
    return PK_MEMORY_FACTOR * size + PK_MEMORY_SLACK;
}

size_t pk_memory_used(const pk_vm *vm) { return vm ? vm->budget - vm->bytes_left : 0; }

/* The memory malloc really takes for an n-byte block (n <= SIZE_MAX / 2): glibc adds an
 * 8-byte header and rounds up to 16, at least 32. */
static size_t block_size(size_t n) {
    size_t b = (n + 8 + 15) & ~(size_t)15;
    return b < 32 ? 32 : b;
}

/* Pay for a new n-byte block. */
static bzn_status charge_block(pk_vm *vm, size_t n) {
    return charge(vm, n > SIZE_MAX / 2 ? SIZE_MAX : block_size(n));
}

/* Pay for an array of n elements of elem bytes. When an array grows, the new one is paid for
 * in full: the block realloc gives back is not credited (it may stay in the process, in
 * malloc's free lists or a sanitizer's quarantine), so growing by doubling costs at most
 * twice the final size. */
static bzn_status charge_array(pk_vm *vm, size_t n, size_t elem) {
    return charge(vm, n > SIZE_MAX / 2 / elem ? SIZE_MAX : block_size(n * elem));
}

/* The VM's own stack, marks and memo (each capped by a PK_MAX_ limit besides the budget) are
 * paid for as they stand: growing one from cap to new_cap elements costs the difference. */
static bzn_status charge_vm_array(pk_vm *vm, size_t cap, size_t new_cap, size_t elem) {
    if (new_cap > SIZE_MAX / 2 / elem) return charge(vm, SIZE_MAX);
    return charge(vm, block_size(new_cap * elem) - (cap ? block_size(cap * elem) : 0));
}

/* ---- objects --------------------------------------------------------------------- */

/* A new object (zeroed but for its kind). */
static bzn_status new_obj(pk_vm *vm, pk_kind kind, pk_obj **out) {
    pk_slab *slab = vm->slabs;
    if (!slab || slab->used == PK_SLAB_OBJECTS) {
        bzn_status st = charge_block(vm, sizeof *slab);
        if (st) return st;
        if (!(slab = calloc(1, sizeof *slab))) return nomem(vm);
        slab->next = vm->slabs;
        vm->slabs = slab;
    }
    pk_obj *o = &slab->obj[slab->used++];
    o->kind = kind;
    *out = o;
    return BZN_OK;
}

/* The int v: shared for 0..255 (most ints in a torch pickle: offsets, small sizes). */
static bzn_status new_int(pk_vm *vm, int64_t v, pk_obj **out) {
    pk_obj **shared = v >= 0 && v < 256 ? &vm->small_int[v] : NULL;
    if (shared && *shared) {
        *out = *shared;
        return BZN_OK;
    }
    bzn_status st = new_obj(vm, PK_INT, out);
    if (st) return st;
    (*out)->u.integer = v;
    if (shared) *shared = *out;
    return BZN_OK;
}

/* A tuple or list holding a copy of items[0..n) (all empty tuples are one object). */
static bzn_status new_seq(pk_vm *vm, pk_kind kind, pk_obj *const *items, size_t n, pk_obj **out) {
    if (kind == PK_TUPLE && n == 0) {
        *out = &vm->empty_tuple;
        return BZN_OK;
    }
    pk_obj *o = NULL;
    bzn_status st = new_obj(vm, kind, &o);
    if (st) return st;
    if (n) {
        if ((st = charge_array(vm, n, sizeof *o->u.seq.items))) return st;
        o->u.seq.items = malloc(n * sizeof *o->u.seq.items);
        if (!o->u.seq.items) return nomem(vm);
        memcpy(o->u.seq.items, items, n * sizeof *items);
    }
    o->u.seq.len = o->u.seq.cap = n;
    *out = o;
    return BZN_OK;
}

static bzn_status seq_append(pk_vm *vm, pk_obj *list, pk_obj *item) {
    if (list->u.seq.len == list->u.seq.cap) {
        size_t cap = list->u.seq.cap ? 2 * list->u.seq.cap : 8;
        bzn_status st = charge_array(vm, cap, sizeof *list->u.seq.items);
        if (st) return st;
        pk_obj **items = realloc(list->u.seq.items, cap * sizeof *items);
        if (!items) return nomem(vm);
        list->u.seq.items = items;
        list->u.seq.cap = cap;
    }
    list->u.seq.items[list->u.seq.len++] = item;
    return BZN_OK;
}

/* Dicts keep every (key, value) pair in order; a repeated key is resolved by readers
 * (pk_dict_get takes the last one, the checkpoint reader refuses repeated tensor names). */
static bzn_status dict_set(pk_vm *vm, pk_obj *dict, pk_obj *key, pk_obj *value) {
    if (dict->u.dict.len == dict->u.dict.cap) {
        size_t cap = dict->u.dict.cap ? 2 * dict->u.dict.cap : 8;
        bzn_status st = charge_array(vm, cap, sizeof *dict->u.dict.keys);
        if (!st) st = charge_array(vm, cap, sizeof *dict->u.dict.values);
        if (st) return st;
        pk_obj **keys = realloc(dict->u.dict.keys, cap * sizeof *keys);
        if (!keys) return nomem(vm);
        dict->u.dict.keys = keys;
        pk_obj **values = realloc(dict->u.dict.values, cap * sizeof *values);
        if (!values) return nomem(vm);
        dict->u.dict.values = values;
        dict->u.dict.cap = cap;
    }
    dict->u.dict.keys[dict->u.dict.len] = key;
    dict->u.dict.values[dict->u.dict.len] = value;
    dict->u.dict.len++;
    return BZN_OK;
}

static bzn_status new_opaque(pk_vm *vm, pk_obj *cls, const char *what, pk_obj **out) {
    pk_obj *o = NULL;
    bzn_status st = new_obj(vm, PK_OBJECT, &o);
    if (st) return st;
    o->u.object.cls = cls;
    o->u.object.what = what;
    *out = o;
    return BZN_OK;
}

/* ---- reading opcode arguments ---------------------------------------------------- */

static bzn_status need(pk_vm *vm, uint64_t n) {
    if (n > vm->size - vm->pos) return fail_at(vm, BZN_ERR_FORMAT, "pickle is truncated");
    return BZN_OK;
}

static uint64_t read_le(pk_vm *vm, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)vm->data[vm->pos + (size_t)i] << (8 * i);
    vm->pos += (size_t)n;
    return v;
}

/* An n-byte little-endian unsigned argument. */
static bzn_status arg_uint(pk_vm *vm, int n, uint64_t *v) {
    bzn_status st = need(vm, (uint64_t)n);
    if (st) return st;
    *v = read_le(vm, n);
    return BZN_OK;
}

/* A byte string of len bytes, pushed as a PK_STR or PK_BYTES. */
static bzn_status push_string(pk_vm *vm, pk_kind kind, uint64_t len);

/* ---- the stack ------------------------------------------------------------------- */

static size_t stack_base(const pk_vm *vm) { return vm->nmarks ? vm->marks[vm->nmarks - 1] : 0; }

static bzn_status push(pk_vm *vm, pk_obj *o) {
    if (vm->sp == vm->stack_cap) {
        if (vm->stack_cap >= PK_MAX_STACK) return fail_at(vm, BZN_ERR_UNSUPPORTED, "pickle stack is too deep");
        size_t cap = vm->stack_cap ? 2 * vm->stack_cap : 64;
        bzn_status st = charge_vm_array(vm, vm->stack_cap, cap, sizeof *vm->stack);
        if (st) return st;
        pk_obj **s = realloc(vm->stack, cap * sizeof *s);
        if (!s) return nomem(vm);
        vm->stack = s;
        vm->stack_cap = cap;
    }
    vm->stack[vm->sp++] = o;
    return BZN_OK;
}

static bzn_status pop(pk_vm *vm, pk_obj **o) {
    if (vm->sp <= stack_base(vm)) return fail_at(vm, BZN_ERR_FORMAT, "pickle stack underflow");
    *o = vm->stack[--vm->sp];
    return BZN_OK;
}

static bzn_status top(pk_vm *vm, pk_obj **o) {
    if (vm->sp <= stack_base(vm)) return fail_at(vm, BZN_ERR_FORMAT, "pickle stack underflow");
    *o = vm->stack[vm->sp - 1];
    return BZN_OK;
}

/* The values pushed since the last MARK are stack[*start .. vm->sp); the caller uses them,
 * then sets vm->sp = *start. The mark itself is removed here. */
static bzn_status pop_mark(pk_vm *vm, size_t *start) {
    if (!vm->nmarks) return fail_at(vm, BZN_ERR_FORMAT, "pickle uses a MARK that was never set");
    *start = vm->marks[--vm->nmarks];
    return BZN_OK;
}

/* ---- memo ------------------------------------------------------------------------ */

static bzn_status memo_put(pk_vm *vm, uint64_t idx) {
    pk_obj *o = NULL;
    bzn_status st = top(vm, &o);
    if (st) return st;
    /* Pickles number memo entries 0, 1, 2, ...: an index can't exceed the opcode count. */
    if (idx >= PK_MAX_MEMO || idx > vm->size)
        return fail_at(vm, BZN_ERR_FORMAT, "pickle memo index is out of range");
    if (idx >= vm->memo_cap) {
        size_t cap = vm->memo_cap ? vm->memo_cap : 64;
        while (cap <= idx) cap *= 2;
        if ((st = charge_vm_array(vm, vm->memo_cap, cap, sizeof *vm->memo))) return st;
        pk_obj **m = realloc(vm->memo, cap * sizeof *m);
        if (!m) return nomem(vm);
        memset(m + vm->memo_cap, 0, (cap - vm->memo_cap) * sizeof *m);
        vm->memo = m;
        vm->memo_cap = cap;
    }
    if (!vm->memo[idx]) vm->memo_count++;
    vm->memo[idx] = o;
    return BZN_OK;
}

static bzn_status memo_get(pk_vm *vm, uint64_t idx) {
    if (idx >= vm->memo_cap || !vm->memo[idx])
        return fail_at(vm, BZN_ERR_FORMAT, "pickle reads a memo entry that was never stored");
    return push(vm, vm->memo[idx]);
}

static bzn_status push_string(pk_vm *vm, pk_kind kind, uint64_t len) {
    bzn_status st = need(vm, len);
    if (st) return st;
    pk_obj *o = NULL;
    if ((st = new_obj(vm, kind, &o))) return st;
    o->u.str.s = (const char *)vm->data + vm->pos;
    o->u.str.len = (size_t)len;
    vm->pos += (size_t)len;
    return push(vm, o);
}

/* ---- torch: storages and tensors ------------------------------------------------- */

static const struct {
    const char *name;
    bzn_ck_dtype dtype;
} storage_types[] = {
    {"FloatStorage", BZN_CK_F32},  {"HalfStorage", BZN_CK_F16}, {"BFloat16Storage", BZN_CK_BF16},
    {"DoubleStorage", BZN_CK_F64}, {"LongStorage", BZN_CK_I64}, {"IntStorage", BZN_CK_I32},
    {"ByteStorage", BZN_CK_U8},    {"CharStorage", BZN_CK_I8},  {"BoolStorage", BZN_CK_BOOL},
    {"UntypedStorage", BZN_CK_U8},
};

/* BINPERSID: torch.save writes each storage as the persistent id
 * ('storage', torch.<Type>Storage, key, location, numel); the bytes are the zip entry
 * <folder>/data/<key>. */
static bzn_status persistent_load(pk_vm *vm, pk_obj *pid, pk_obj **out) {
    if (pid->kind != PK_TUPLE || pid->u.seq.len < 5)
        return fail_at(vm, BZN_ERR_UNSUPPORTED, "unsupported persistent id (expected a 5-tuple "
                                                "('storage', type, key, location, numel))");
    pk_obj **it = pid->u.seq.items;
    if (it[0]->kind != PK_STR || !str_is(it[0]->u.str.s, it[0]->u.str.len, "storage"))
        return fail_at(vm, BZN_ERR_UNSUPPORTED, "unsupported persistent id (first item is not 'storage')");
    if (it[1]->kind != PK_GLOBAL || !str_is(it[1]->u.global.module, it[1]->u.global.module_len, "torch"))
        return fail_at(vm, BZN_ERR_FORMAT, "persistent id: storage type is not a torch class");
    if (it[2]->kind != PK_STR) return fail_at(vm, BZN_ERR_FORMAT, "persistent id: storage key is not a string");
    if (it[4]->kind != PK_INT || it[4]->u.integer < 0)
        return fail_at(vm, BZN_ERR_FORMAT, "persistent id: storage size is not a non-negative int");
    for (size_t i = 0; i < sizeof storage_types / sizeof storage_types[0]; i++) {
        if (!str_is(it[1]->u.global.name, it[1]->u.global.name_len, storage_types[i].name)) continue;
        pk_obj *s = NULL;
        bzn_status st = new_obj(vm, PK_STORAGE, &s);
        if (st) return st;
        s->u.storage.dtype = storage_types[i].dtype;
        s->u.storage.type_name = storage_types[i].name;
        s->u.storage.key = it[2]->u.str.s;
        s->u.storage.key_len = it[2]->u.str.len;
        s->u.storage.numel = it[4]->u.integer;
        *out = s;
        return BZN_OK;
    }
    char msg[200];
    int n = (int)(it[1]->u.global.name_len < 64 ? it[1]->u.global.name_len : 64);
    snprintf(msg, sizeof msg, "unsupported storage type torch.%.*s", n, it[1]->u.global.name);
    return fail_at(vm, BZN_ERR_UNSUPPORTED, msg);
}

/* A tuple (or list) of non-negative ints, at most PK_MAX_DIMS of them. */
static bzn_status int_tuple(pk_vm *vm, const pk_obj *t, int64_t *v, int *n, const char *what) {
    char msg[128];
    if (t->kind != PK_TUPLE && t->kind != PK_LIST) {
        snprintf(msg, sizeof msg, "tensor %s is a %s, not a tuple", what, pk_kind_name(t->kind));
        return fail_at(vm, BZN_ERR_FORMAT, msg);
    }
    if (t->u.seq.len > PK_MAX_DIMS) {
        snprintf(msg, sizeof msg, "tensor has %zu dimensions, at most %d are supported", t->u.seq.len,
                 PK_MAX_DIMS);
        return fail_at(vm, BZN_ERR_UNSUPPORTED, msg);
    }
    for (size_t i = 0; i < t->u.seq.len; i++) {
        const pk_obj *x = t->u.seq.items[i];
        if (x->kind != PK_INT || x->u.integer < 0) {
            snprintf(msg, sizeof msg, "tensor %s[%zu] is not a non-negative int", what, i);
            return fail_at(vm, BZN_ERR_FORMAT, msg);
        }
        v[i] = x->u.integer;
    }
    *n = (int)t->u.seq.len;
    return BZN_OK;
}

/* torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
 * backward_hooks[, metadata]) and the older _rebuild_tensor(storage, offset, size, stride):
 * only the first four arguments matter for the values. */
static bzn_status rebuild_tensor(pk_vm *vm, const pk_obj *args, pk_obj **out) {
    if (args->u.seq.len < 4) return fail_at(vm, BZN_ERR_FORMAT, "_rebuild_tensor: too few arguments");
    pk_obj **a = args->u.seq.items;
    if (a[0]->kind != PK_STORAGE) return fail_at(vm, BZN_ERR_FORMAT, "_rebuild_tensor: first argument is not a storage");
    if (a[1]->kind != PK_INT || a[1]->u.integer < 0)
        return fail_at(vm, BZN_ERR_FORMAT, "_rebuild_tensor: storage offset is not a non-negative int");
    int64_t shape[PK_MAX_DIMS], stride[PK_MAX_DIMS];
    int nd_shape = 0, nd_stride = 0;
    bzn_status st = int_tuple(vm, a[2], shape, &nd_shape, "size");
    if (!st) st = int_tuple(vm, a[3], stride, &nd_stride, "stride");
    if (st) return st;
    if (nd_shape != nd_stride)
        return fail_at(vm, BZN_ERR_FORMAT, "_rebuild_tensor: size and stride differ in length");
    /* one block: the record, then its shape and strides */
    const size_t dims_bytes = 2 * (size_t)nd_shape * sizeof(int64_t);
    pk_obj *t = NULL;
    st = new_obj(vm, PK_TENSOR, &t);
    if (!st) st = charge_block(vm, sizeof(pk_tensor) + dims_bytes);
    if (st) return st;
    pk_tensor *tt = malloc(sizeof *tt + (dims_bytes ? dims_bytes : 1));
    if (!tt) return nomem(vm);
    t->u.tensor = tt;
    tt->storage = a[0];
    tt->offset = a[1]->u.integer;
    tt->ndim = nd_shape;
    tt->shape = tt->dims;
    tt->stride = tt->dims + nd_shape;
    if (nd_shape) {
        memcpy(tt->shape, shape, (size_t)nd_shape * sizeof *shape);
        memcpy(tt->stride, stride, (size_t)nd_shape * sizeof *stride);
    }
    *out = t;
    return BZN_OK;
}

/* dict() / OrderedDict(): empty, or from a dict or a sequence of (key, value) pairs. */
static bzn_status make_dict(pk_vm *vm, const pk_obj *args, pk_obj **out) {
    pk_obj *d = NULL;
    bzn_status st = new_obj(vm, PK_DICT, &d);
    if (st) return st;
    *out = d;
    if (args->u.seq.len == 0) return BZN_OK;
    const pk_obj *src = args->u.seq.items[0];
    if (args->u.seq.len == 1 && src->kind == PK_DICT) {
        for (size_t i = 0; i < src->u.dict.len && !st; i++)
            st = dict_set(vm, d, src->u.dict.keys[i], src->u.dict.values[i]);
        return st;
    }
    if (args->u.seq.len == 1 && (src->kind == PK_LIST || src->kind == PK_TUPLE)) {
        for (size_t i = 0; i < src->u.seq.len && !st; i++) {
            const pk_obj *pair = src->u.seq.items[i];
            if ((pair->kind != PK_TUPLE && pair->kind != PK_LIST) || pair->u.seq.len != 2)
                return fail_at(vm, BZN_ERR_FORMAT, "OrderedDict(): item is not a (key, value) pair");
            st = dict_set(vm, d, pair->u.seq.items[0], pair->u.seq.items[1]);
        }
        return st;
    }
    return fail_at(vm, BZN_ERR_FORMAT, "OrderedDict(): unexpected arguments");
}

/* REDUCE (callable, args): the only place where a pickle "calls" something. */
static bzn_status reduce(pk_vm *vm, pk_obj *fn, pk_obj *args, int depth, pk_obj **out) {
    if (fn->kind != PK_GLOBAL) {
        char msg[96];
        snprintf(msg, sizeof msg, "REDUCE: cannot call a %s", pk_kind_name(fn->kind));
        return fail_at(vm, BZN_ERR_FORMAT, msg);
    }
    if (args->kind != PK_TUPLE) return fail_at(vm, BZN_ERR_FORMAT, "REDUCE: arguments are not a tuple");
    if (pk_is_global(fn, "collections", "OrderedDict") || pk_is_global(fn, "builtins", "dict") ||
        pk_is_global(fn, "__builtin__", "dict"))
        return make_dict(vm, args, out);
    if (pk_is_global(fn, "torch._utils", "_rebuild_tensor_v2") ||
        pk_is_global(fn, "torch._utils", "_rebuild_tensor"))
        return rebuild_tensor(vm, args, out);
    if (pk_is_global(fn, "torch._utils", "_rebuild_parameter") ||
        pk_is_global(fn, "torch._utils", "_rebuild_parameter_with_state")) {
        /* nn.Parameter(data, requires_grad, hooks[, state]): the data is the tensor */
        if (args->u.seq.len < 1 || args->u.seq.items[0]->kind != PK_TENSOR)
            return fail_at(vm, BZN_ERR_FORMAT, "_rebuild_parameter: first argument is not a tensor");
        *out = args->u.seq.items[0];
        return BZN_OK;
    }
    if (pk_is_global(fn, "torch._tensor", "_rebuild_from_type_v2")) {
        /* tensor subclasses: _rebuild_from_type_v2(func, type, args, state) = func(*args) */
        if (args->u.seq.len < 3 || args->u.seq.items[2]->kind != PK_TUPLE)
            return fail_at(vm, BZN_ERR_FORMAT, "_rebuild_from_type_v2: unexpected arguments");
        if (depth >= PK_MAX_REDUCE_DEPTH)
            return fail_at(vm, BZN_ERR_FORMAT, "_rebuild_from_type_v2: nested too deeply");
        return reduce(vm, args->u.seq.items[0], args->u.seq.items[2], depth + 1, out);
    }
    /* Anything else (numpy scalars, argparse.Namespace, quantized tensors, ...) becomes an
     * opaque object; the checkpoint reader decides whether that matters. */
    return new_opaque(vm, fn, "object", out);
}

/* ---- the interpreter loop -------------------------------------------------------- */

static bzn_status step(pk_vm *vm, int *done, pk_obj **result) {
    bzn_status st = BZN_OK;
    pk_obj *a = NULL, *b = NULL, *c = NULL, *o = NULL;
    uint64_t v = 0;
    size_t start = 0;
    vm->op_at = vm->pos;
    uint8_t op = vm->data[vm->pos++];
    switch (op) {
    case OP_PROTO:
        if ((st = arg_uint(vm, 1, &v))) return st;
        if (v > 5) return fail_at(vm, BZN_ERR_UNSUPPORTED, "unsupported pickle protocol (newer than 5)");
        return BZN_OK;
    case OP_FRAME: /* protocol 4 framing: only a buffering hint for readers */
        if ((st = arg_uint(vm, 8, &v))) return st;
        if (v > vm->size - vm->pos) return fail_at(vm, BZN_ERR_FORMAT, "pickle frame runs past the end (truncated?)");
        return BZN_OK;
    case OP_STOP:
        if ((st = pop(vm, result))) return st;
        *done = 1;
        return BZN_OK;

    /* marks and stack manipulation */
    case OP_MARK:
        if (vm->nmarks == vm->marks_cap) {
            if (vm->marks_cap >= PK_MAX_MARKS) return fail_at(vm, BZN_ERR_UNSUPPORTED, "pickle nests MARKs too deeply");
            size_t cap = vm->marks_cap ? 2 * vm->marks_cap : 16;
            if ((st = charge_vm_array(vm, vm->marks_cap, cap, sizeof *vm->marks))) return st;
            size_t *m = realloc(vm->marks, cap * sizeof *m);
            if (!m) return nomem(vm);
            vm->marks = m;
            vm->marks_cap = cap;
        }
        vm->marks[vm->nmarks++] = vm->sp;
        return BZN_OK;
    case OP_POP:
        if (vm->sp > stack_base(vm)) {
            vm->sp--;
            return BZN_OK;
        }
        return pop_mark(vm, &start); /* POP right after MARK discards the mark */
    case OP_POP_MARK:
        if ((st = pop_mark(vm, &start))) return st;
        vm->sp = start;
        return BZN_OK;
    case OP_DUP:
        if ((st = top(vm, &a))) return st;
        return push(vm, a);

    /* scalars */
    case OP_NONE: return push(vm, &vm->none);
    case OP_NEWTRUE: return push(vm, &vm->yes);
    case OP_NEWFALSE: return push(vm, &vm->no);
    case OP_BININT:
    case OP_BININT1:
    case OP_BININT2: {
        int n = op == OP_BININT ? 4 : op == OP_BININT1 ? 1 : 2;
        if ((st = arg_uint(vm, n, &v))) return st;
        if ((st = new_int(vm, op == OP_BININT ? (int64_t)(int32_t)(uint32_t)v : (int64_t)v, &o))) return st;
        return push(vm, o);
    }
    case OP_LONG1:
    case OP_LONG4: { /* n bytes of little-endian two's complement */
        if ((st = arg_uint(vm, op == OP_LONG1 ? 1 : 4, &v))) return st;
        if (op == OP_LONG4 && (int32_t)(uint32_t)v < 0) return fail_at(vm, BZN_ERR_FORMAT, "LONG4 with a negative length");
        if ((st = need(vm, v))) return st;
        if (v > 8) {
            vm->pos += (size_t)v;
            if ((st = new_opaque(vm, NULL, "integer wider than 64 bits", &o))) return st;
            return push(vm, o);
        }
        int n = (int)v;
        uint64_t bits = read_le(vm, n);
        if (n > 0 && n < 8 && (bits >> (8 * n - 1)) & 1) bits |= ~(uint64_t)0 << (8 * n); /* sign-extend */
        int64_t value;
        memcpy(&value, &bits, sizeof bits);
        if ((st = new_int(vm, value, &o))) return st;
        return push(vm, o);
    }
    case OP_BINFLOAT: { /* 8-byte big-endian IEEE double */
        if ((st = need(vm, 8))) return st;
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++) bits = (bits << 8) | vm->data[vm->pos + (size_t)i];
        vm->pos += 8;
        if ((st = new_obj(vm, PK_FLOAT, &o))) return st;
        memcpy(&o->u.real, &bits, sizeof bits);
        return push(vm, o);
    }

    /* strings */
    case OP_SHORT_BINUNICODE:
    case OP_SHORT_BINSTRING:
    case OP_SHORT_BINBYTES:
        if ((st = arg_uint(vm, 1, &v))) return st;
        return push_string(vm, op == OP_SHORT_BINBYTES ? PK_BYTES : PK_STR, v);
    case OP_BINUNICODE:
    case OP_BINBYTES:
        if ((st = arg_uint(vm, 4, &v))) return st;
        return push_string(vm, op == OP_BINBYTES ? PK_BYTES : PK_STR, v);
    case OP_BINSTRING:
        if ((st = arg_uint(vm, 4, &v))) return st;
        if ((int32_t)(uint32_t)v < 0) return fail_at(vm, BZN_ERR_FORMAT, "BINSTRING with a negative length");
        return push_string(vm, PK_STR, v);
    case OP_BINUNICODE8:
    case OP_BINBYTES8:
        if ((st = arg_uint(vm, 8, &v))) return st;
        return push_string(vm, op == OP_BINBYTES8 ? PK_BYTES : PK_STR, v);

    /* classes and functions */
    case OP_GLOBAL: { /* "module\nname\n" */
        const uint8_t *p = vm->data + vm->pos, *end = vm->data + vm->size;
        const uint8_t *nl1 = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1)) : NULL;
        if (!nl2) return fail_at(vm, BZN_ERR_FORMAT, "GLOBAL: unterminated module or name (truncated?)");
        if ((st = new_obj(vm, PK_GLOBAL, &o))) return st;
        o->u.global.module = (const char *)p;
        o->u.global.module_len = (size_t)(nl1 - p);
        o->u.global.name = (const char *)nl1 + 1;
        o->u.global.name_len = (size_t)(nl2 - nl1 - 1);
        vm->pos = (size_t)(nl2 + 1 - vm->data);
        return push(vm, o);
    }
    case OP_STACK_GLOBAL:
        if ((st = pop(vm, &b)) || (st = pop(vm, &a))) return st;
        if (a->kind != PK_STR || b->kind != PK_STR)
            return fail_at(vm, BZN_ERR_FORMAT, "STACK_GLOBAL: module or name is not a string");
        if ((st = new_obj(vm, PK_GLOBAL, &o))) return st;
        o->u.global.module = a->u.str.s;
        o->u.global.module_len = a->u.str.len;
        o->u.global.name = b->u.str.s;
        o->u.global.name_len = b->u.str.len;
        return push(vm, o);

    /* memo */
    case OP_BINPUT:
    case OP_LONG_BINPUT:
        if ((st = arg_uint(vm, op == OP_BINPUT ? 1 : 4, &v))) return st;
        return memo_put(vm, v);
    case OP_MEMOIZE: return memo_put(vm, vm->memo_count);
    case OP_BINGET:
    case OP_LONG_BINGET:
        if ((st = arg_uint(vm, op == OP_BINGET ? 1 : 4, &v))) return st;
        return memo_get(vm, v);

    /* containers */
    case OP_EMPTY_TUPLE: return push(vm, &vm->empty_tuple);
    case OP_EMPTY_DICT:
    case OP_EMPTY_LIST:
    case OP_EMPTY_SET:
        if ((st = new_obj(vm, op == OP_EMPTY_DICT ? PK_DICT : PK_LIST, &o))) return st;
        return push(vm, o);
    case OP_TUPLE1:
    case OP_TUPLE2:
    case OP_TUPLE3: {
        size_t n = (size_t)(op - OP_TUPLE1 + 1);
        if (vm->sp - stack_base(vm) < n) return fail_at(vm, BZN_ERR_FORMAT, "pickle stack underflow");
        vm->sp -= n;
        if ((st = new_seq(vm, PK_TUPLE, vm->stack + vm->sp, n, &o))) return st;
        return push(vm, o);
    }
    case OP_TUPLE:
    case OP_LIST:
    case OP_FROZENSET:
        if ((st = pop_mark(vm, &start))) return st;
        /* (the stack may still be unallocated: no pointer arithmetic on NULL) */
        st = new_seq(vm, op == OP_LIST ? PK_LIST : PK_TUPLE, vm->sp > start ? vm->stack + start : NULL,
                     vm->sp - start, &o);
        vm->sp = start;
        if (st) return st;
        return push(vm, o);
    case OP_DICT:
        if ((st = pop_mark(vm, &start))) return st;
        if ((vm->sp - start) % 2) return fail_at(vm, BZN_ERR_FORMAT, "DICT: odd number of items");
        if ((st = new_obj(vm, PK_DICT, &o))) return st;
        for (size_t i = start; i < vm->sp && !st; i += 2) st = dict_set(vm, o, vm->stack[i], vm->stack[i + 1]);
        vm->sp = start;
        if (st) return st;
        return push(vm, o);
    case OP_SETITEM:
        if ((st = pop(vm, &c)) || (st = pop(vm, &b)) || (st = top(vm, &a))) return st;
        if (a->kind == PK_OBJECT) return BZN_OK; /* d[k] = v on an unknown object: ignored */
        if (a->kind != PK_DICT) return fail_at(vm, BZN_ERR_FORMAT, "SETITEM on something that is not a dict");
        return dict_set(vm, a, b, c);
    case OP_SETITEMS:
        if ((st = pop_mark(vm, &start))) return st;
        if ((vm->sp - start) % 2) return fail_at(vm, BZN_ERR_FORMAT, "SETITEMS: odd number of items");
        if (start <= stack_base(vm)) return fail_at(vm, BZN_ERR_FORMAT, "SETITEMS without a dict");
        a = vm->stack[start - 1];
        if (a->kind == PK_DICT)
            for (size_t i = start; i < vm->sp && !st; i += 2) st = dict_set(vm, a, vm->stack[i], vm->stack[i + 1]);
        else if (a->kind != PK_OBJECT)
            st = fail_at(vm, BZN_ERR_FORMAT, "SETITEMS on something that is not a dict");
        vm->sp = start;
        return st;
    case OP_APPEND:
        if ((st = pop(vm, &b)) || (st = top(vm, &a))) return st;
        if (a->kind == PK_OBJECT) return BZN_OK;
        if (a->kind != PK_LIST) return fail_at(vm, BZN_ERR_FORMAT, "APPEND on something that is not a list");
        return seq_append(vm, a, b);
    case OP_APPENDS:
    case OP_ADDITEMS:
        if ((st = pop_mark(vm, &start))) return st;
        if (start <= stack_base(vm)) return fail_at(vm, BZN_ERR_FORMAT, "APPENDS without a list");
        a = vm->stack[start - 1];
        if (a->kind == PK_LIST)
            for (size_t i = start; i < vm->sp && !st; i++) st = seq_append(vm, a, vm->stack[i]);
        else if (a->kind != PK_OBJECT)
            st = fail_at(vm, BZN_ERR_FORMAT, "APPENDS on something that is not a list");
        vm->sp = start;
        return st;

    /* calls */
    case OP_BINPERSID:
        if ((st = pop(vm, &a))) return st;
        if ((st = persistent_load(vm, a, &o))) return st;
        return push(vm, o);
    case OP_REDUCE:
        if ((st = pop(vm, &b)) || (st = pop(vm, &a))) return st;
        if ((st = reduce(vm, a, b, 0, &o))) return st;
        return push(vm, o);
    case OP_NEWOBJ: /* cls.__new__(cls, *args) */
    case OP_NEWOBJ_EX:
        if (op == OP_NEWOBJ_EX && (st = pop(vm, &c))) return st; /* kwargs */
        if ((st = pop(vm, &b)) || (st = pop(vm, &a))) return st;
        if (a->kind != PK_GLOBAL || b->kind != PK_TUPLE)
            return fail_at(vm, BZN_ERR_FORMAT, "NEWOBJ: expects a class and an argument tuple");
        if (pk_is_global(a, "collections", "OrderedDict")) {
            if ((st = new_obj(vm, PK_DICT, &o))) return st;
        } else if ((st = new_opaque(vm, a, "object", &o))) {
            return st;
        }
        return push(vm, o);
    case OP_BUILD: /* obj.__setstate__(state): attributes are of no use here, drop them */
        if ((st = pop(vm, &b)) || (st = top(vm, &a))) return st;
        return BZN_OK;
    }

    const char *name = unsupported_opcode_name(op);
    if (name)
        return bzn_fail(vm->err, BZN_ERR_UNSUPPORTED, "unsupported pickle opcode 0x%02x (%s) at offset %zu", op, name,
                        vm->op_at);
    if (op >= 0x20 && op < 0x7f)
        return bzn_fail(vm->err, BZN_ERR_UNSUPPORTED, "unsupported pickle opcode 0x%02x ('%c') at offset %zu", op,
                        op, vm->op_at);
    return bzn_fail(vm->err, BZN_ERR_UNSUPPORTED, "unsupported pickle opcode 0x%02x at offset %zu", op, vm->op_at);
}

bzn_status pk_load(const uint8_t *data, size_t size, pk_vm **out_vm, pk_obj **result, bzn_error *err) {
    return pk_load_sized(data, size, size, out_vm, result, err);
}

bzn_status pk_load_sized(const uint8_t *data, size_t size, size_t budget_size, pk_vm **out_vm, pk_obj **result,
                         bzn_error *err) {
    if (!out_vm || !result || (!data && size) || budget_size < size)
        return bzn_fail(err, BZN_ERR_ARG, "pk_load: invalid arguments");
    *out_vm = NULL;
    *result = NULL;
    pk_vm *vm = calloc(1, sizeof *vm);
    if (!vm) return bzn_fail(err, BZN_ERR_NOMEM, "pickle: out of memory");
    vm->data = data;
    vm->size = size;
    vm->err = err;
    vm->budget_size = budget_size;
    vm->budget = pk_memory_budget(budget_size);
    vm->bytes_left = vm->budget - block_size(sizeof *vm); /* the VM itself counts too (the slack covers it) */
    vm->none.kind = PK_NONE;
    vm->yes.kind = vm->no.kind = PK_BOOL;
    vm->yes.u.boolean = 1;
    vm->empty_tuple.kind = PK_TUPLE;

    int done = 0;
    bzn_status st = BZN_OK;
    while (!done && !st) {
        if (vm->pos >= vm->size) {
            st = bzn_fail(err, BZN_ERR_FORMAT, "pickle ends without a STOP opcode (truncated?)");
            break;
        }
        st = step(vm, &done, result);
    }
    if (st) {
        pk_free(vm);
        *result = NULL;
        return st;
    }
    /* The stack and memo are not needed any more; the objects stay until pk_free. */
    free(vm->stack);
    free(vm->marks);
    free(vm->memo);
    vm->stack = NULL;
    vm->marks = NULL;
    vm->memo = NULL;
    *out_vm = vm;
    return BZN_OK;
}
