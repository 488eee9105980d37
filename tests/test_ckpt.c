/*
 * test_ckpt.c - the PyTorch checkpoint reader (converter/ckpt.c, zip.c, pickle.c).
 *
 * The fixtures in tests/data/ckpt/ were made by tests/data/ckpt/make_fixtures.py; the values
 * checked here are the formulas used there. Besides reading them back exactly, the tests
 * feed the reader every truncation and many single-byte corruptions of a fixture, broken
 * archives and pickles, and every regression input found by fuzzing (tests/data/ckpt/crashes):
 * the reader must answer each with a status, never a crash (run under ASan/valgrind too).
 * Pickles built here that flood the VM with objects must leave the memory a small multiple
 * of their size (measured in a child process). Whole BlazeNeo checkpoints made by
 * tests/ref/make_ckpt_variants.py at test time (skipped without python3-torch) go through
 * the converter: every accepted layout gives the plain checkpoint's weight file byte for
 * byte, and the refused ones say why.
 */
#define _DEFAULT_SOURCE /* wait4 */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckpt.h"
#include "pickle.h"
#include "crc32.h"
#include "testutil.h"
#include "zip.h"
#include "wfile.h"

/* ---- helpers ----------------------------------------------------------------------- */

static const char *fixture(const char *name) {
    const char *src = tu_env("BZN_SOURCE_DIR");
    static char rel[512];
    snprintf(rel, sizeof rel, "tests/data/ckpt/%s", name);
    return tu_path(src ? src : ".", rel);
}

static uint8_t *fixture_bytes(const char *name, size_t *len) {
    uint8_t *b = tu_read_file(fixture(name), len);
    ck_assert_msg(b != NULL, "cannot read fixture %s", fixture(name));
    return b;
}

static void load_ok(const char *name, bzn_ckpt *ck) {
    bzn_error e = {0};
    bzn_status st = bzn_ckpt_read_file(fixture(name), ck, &e);
    ck_assert_msg(st == BZN_OK, "%s: %s", name, e.msg);
}

/* Read a fixture that must fail with status want and a message containing part. */
static void load_fails(const char *name, bzn_status want, const char *part) {
    bzn_ckpt ck = {(bzn_ck_tensor *)1, 99};
    bzn_error e = {0};
    bzn_status st = bzn_ckpt_read_file(fixture(name), &ck, &e);
    ck_assert_msg(st == want, "%s: status %d (%s), wanted %d", name, (int)st, e.msg, (int)want);
    ck_assert_msg(strstr(e.msg, part) != NULL, "%s: message '%s' lacks '%s'", name, e.msg, part);
    ck_assert(ck.tensors == NULL && ck.count == 0);
}

static const bzn_ck_tensor *get(const bzn_ckpt *ck, const char *name, bzn_ck_dtype dtype, int ndim,
                                const int64_t *shape) {
    const bzn_ck_tensor *t = bzn_ckpt_find(ck, name);
    ck_assert_msg(t != NULL, "tensor %s missing", name);
    ck_assert_msg(t->dtype == dtype, "%s: dtype %s", name, bzn_ck_dtype_name(t->dtype));
    ck_assert_int_eq(t->ndim, ndim);
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        ck_assert_msg(t->shape[i] == shape[i], "%s: shape[%d] = %lld", name, i, (long long)t->shape[i]);
        numel *= shape[i];
    }
    ck_assert_uint_eq(t->nbytes, (size_t)numel * bzn_ck_dtype_size(dtype));
    return t;
}

static const float *get_f32(const bzn_ckpt *ck, const char *name, int ndim, const int64_t *shape) {
    return get(ck, name, BZN_CK_F32, ndim, shape)->data;
}

static float half_to_float(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(m | 1024), e - 25);
    return (h & 0x8000) ? -v : v;
}

static float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* The 2-tensor state dict of small_state_dict() in make_fixtures.py. */
static void check_small(const bzn_ckpt *ck) {
    ck_assert_int_eq(ck->count, 2);
    ck_assert_str_eq(ck->tensors[0].name, "a.weight");
    ck_assert_str_eq(ck->tensors[1].name, "a.bias");
    const float *w = get_f32(ck, "a.weight", 2, (int64_t[]){2, 2});
    const float *b = get_f32(ck, "a.bias", 1, (int64_t[]){2});
    ck_assert(w[0] == 1.0f && w[1] == 2.0f && w[2] == 3.0f && w[3] == 4.0f);
    ck_assert(b[0] == -1.0f && b[1] == 1.0f);
}

static void check_small_fixture(const char *name) {
    bzn_ckpt ck;
    load_ok(name, &ck);
    check_small(&ck);
    bzn_ckpt_free(&ck);
}

/* Read a buffer that may or may not be a valid checkpoint; check the result is coherent. */
static bzn_status read_any(const uint8_t *data, size_t len) {
    bzn_ckpt ck;
    bzn_error e = {0};
    bzn_status st = bzn_ckpt_read_memory(data, len, &ck, &e);
    if (st == BZN_OK) {
        ck_assert(ck.count > 0 && ck.tensors != NULL);
        for (int i = 0; i < ck.count; i++) {
            const bzn_ck_tensor *t = &ck.tensors[i];
            ck_assert(t->name != NULL && t->ndim >= 0 && t->ndim <= 8);
            int64_t numel = 1;
            for (int d = 0; d < t->ndim; d++) numel *= t->shape[d];
            ck_assert_uint_eq(t->nbytes, (size_t)numel * bzn_ck_dtype_size(t->dtype));
        }
        bzn_ckpt_free(&ck);
    } else {
        ck_assert(ck.tensors == NULL && ck.count == 0);
        ck_assert(e.msg[0] != '\0');
        ck_assert_int_eq(e.status, st);
    }
    return st;
}

/* Rewrite the CRC-32 of every zip entry in buf (in place) to match its bytes, the way the
 * fuzzing build ignores them: corrupted inputs then reach the parsers behind the checksum.
 * Uses the central-directory layout: a header is 46 bytes before its name, CRC at +16;
 * an entry's bytes follow its 30-byte local header, name and extra field. */
static void repair_crcs(uint8_t *buf, size_t len) {
    zip_archive za;
    bzn_error e;
    if (zip_open(&za, buf, len, &e) != BZN_OK) return;
    for (size_t i = 0; i < za.count; i++) {
        const zip_entry *z = &za.entries[i];
        uint64_t lo = z->local_offset;
        if (lo > len || len - lo < 30) continue;
        uint64_t start = lo + 30 + (buf[lo + 26] | buf[lo + 27] << 8) + (buf[lo + 28] | buf[lo + 29] << 8);
        if (start > len || z->size > len - start) continue;
        uint32_t crc = bzn_crc32_update(0, buf + start, (size_t)z->size);
        uint8_t *h = (uint8_t *)z->name - 46 + 16;
        for (int j = 0; j < 4; j++) h[j] = (uint8_t)(crc >> (8 * j));
    }
    zip_close(&za);
}

/* ---- reading the fixtures ----------------------------------------------------------- */

START_TEST(test_plain_state_dict) {
    bzn_ckpt ck;
    load_ok("plain.pth", &ck);
    static const char *names[] = {"conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean",
                                  "bn.running_var", "bn.num_batches_tracked"};
    ck_assert_int_eq(ck.count, 7);
    for (int i = 0; i < 7; i++) ck_assert_str_eq(ck.tensors[i].name, names[i]);

    const float *w = get_f32(&ck, "conv.weight", 4, (int64_t[]){2, 3, 2, 2});
    for (int i = 0; i < 24; i++) ck_assert_float_eq(w[i], (float)(i - 12) * 0.25f);
    const float *b = get_f32(&ck, "conv.bias", 1, (int64_t[]){2});
    ck_assert(b[0] == 0.5f && b[1] == -1.5f);
    const float *g = get_f32(&ck, "bn.weight", 1, (int64_t[]){2});
    ck_assert(g[0] == 1.0f && g[1] == 2.0f);
    const float *be = get_f32(&ck, "bn.bias", 1, (int64_t[]){2});
    ck_assert(be[0] == -0.125f && be[1] == 0.125f);
    const float *rm = get_f32(&ck, "bn.running_mean", 1, (int64_t[]){2});
    ck_assert(rm[0] == 0.25f && rm[1] == -0.25f);
    const float *rv = get_f32(&ck, "bn.running_var", 1, (int64_t[]){2});
    ck_assert(rv[0] == 1.5f && rv[1] == 2.5f);
    const bzn_ck_tensor *n = get(&ck, "bn.num_batches_tracked", BZN_CK_I64, 0, NULL);
    ck_assert_uint_eq(n->nbytes, 8);
    ck_assert_int_eq(*(const int64_t *)n->data, 1234567890123LL);
    bzn_ckpt_free(&ck);
    bzn_ckpt_free(&ck); /* freeing twice is harmless */
}
END_TEST

START_TEST(test_dtypes) {
    bzn_ckpt ck;
    load_ok("dtypes.pth", &ck);
    ck_assert_int_eq(ck.count, 11); /* meta_int and meta_str are not tensors: skipped */
    ck_assert(bzn_ckpt_find(&ck, "meta_int") == NULL && bzn_ckpt_find(&ck, "meta_str") == NULL);

    const uint16_t *h = get(&ck, "f16", BZN_CK_F16, 2, (int64_t[]){2, 3})->data;
    for (int i = 0; i < 6; i++) ck_assert_float_eq(half_to_float(h[i]), (float)i * 0.5f - 1.0f);
    ck_assert_uint_eq(h[0], 0xBC00); /* -1.0 */
    const uint16_t *bf = get(&ck, "bf16", BZN_CK_BF16, 1, (int64_t[]){4})->data;
    ck_assert(bf16_to_float(bf[0]) == 1.0f && bf16_to_float(bf[1]) == -2.0f && bf16_to_float(bf[2]) == 0.5f &&
              bf16_to_float(bf[3]) == 3.0f);
    const double *d = get(&ck, "f64", BZN_CK_F64, 1, (int64_t[]){3})->data;
    ck_assert(d[0] == 1.0 / 3.0 && d[1] == -2.5 && d[2] == 1e300);
    const int64_t *l = get(&ck, "i64", BZN_CK_I64, 1, (int64_t[]){3})->data;
    ck_assert(l[0] == -5 && l[1] == (int64_t)1 << 40 && l[2] == 7);
    const int32_t *i32 = get(&ck, "i32", BZN_CK_I32, 1, (int64_t[]){2})->data;
    ck_assert(i32[0] == INT32_MIN && i32[1] == INT32_MAX);
    const uint8_t *u8 = get(&ck, "u8", BZN_CK_U8, 1, (int64_t[]){3})->data;
    ck_assert(u8[0] == 0 && u8[1] == 128 && u8[2] == 255);
    const int8_t *i8 = get(&ck, "i8", BZN_CK_I8, 1, (int64_t[]){3})->data;
    ck_assert(i8[0] == -128 && i8[1] == 0 && i8[2] == 127);
    const uint8_t *bo = get(&ck, "bool", BZN_CK_BOOL, 1, (int64_t[]){3})->data;
    ck_assert(bo[0] == 1 && bo[1] == 0 && bo[2] == 1);
    const float *sc = get_f32(&ck, "scalar", 0, NULL);
    ck_assert(sc[0] == 2.5f);
    const bzn_ck_tensor *em = get(&ck, "empty", BZN_CK_F32, 2, (int64_t[]){0, 3});
    ck_assert_uint_eq(em->nbytes, 0);
    ck_assert_ptr_null(em->data);
    const float *p = get_f32(&ck, "param", 1, (int64_t[]){2}); /* nn.Parameter */
    ck_assert(p[0] == 0.75f && p[1] == -0.75f);
    bzn_ckpt_free(&ck);
}
END_TEST

START_TEST(test_wrappers) {
    check_small_fixture("wrap_state_dict.pth"); /* optimizer tensors are not included */
    check_small_fixture("wrap_model.pth");
    check_small_fixture("wrap_model_state_dict.pth");
}
END_TEST

START_TEST(test_module_prefix) { check_small_fixture("module_prefix.pth"); }
END_TEST

START_TEST(test_custom_folder_proto4_zip64) {
    check_small_fixture("custom_folder.pth");
    check_small_fixture("proto4.pth");
    check_small_fixture("zip64.pth");
}
END_TEST

START_TEST(test_strided_views) {
    bzn_ckpt ck;
    load_ok("strided.pth", &ck);
    ck_assert_int_eq(ck.count, 7);
    const float *base = get_f32(&ck, "base", 1, (int64_t[]){30});
    for (int i = 0; i < 30; i++) ck_assert(base[i] == (float)i);
    /* arange(12).reshape(3,4).t(): element [i][j] is j*4 + i */
    const float *t = get_f32(&ck, "transposed", 2, (int64_t[]){4, 3});
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) ck_assert(t[i * 3 + j] == (float)(j * 4 + i));
    const float *sl = get_f32(&ck, "slice", 1, (int64_t[]){6}); /* base[5:11] */
    for (int i = 0; i < 6; i++) ck_assert(sl[i] == (float)(5 + i));
    const float *sub = get_f32(&ck, "sub2d", 2, (int64_t[]){3, 3}); /* base.reshape(5,6)[1:4, 2:5] */
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) ck_assert(sub[i * 3 + j] == (float)((i + 1) * 6 + j + 2));
    const float *st = get_f32(&ck, "step", 1, (int64_t[]){10}); /* base[1::3] */
    for (int i = 0; i < 10; i++) ck_assert(st[i] == (float)(1 + 3 * i));
    const float *bc = get_f32(&ck, "bcast", 2, (int64_t[]){2, 3}); /* arange(3).expand(2,3) */
    for (int i = 0; i < 6; i++) ck_assert(bc[i] == (float)(i % 3));
    /* (arange(6) * 0.25).reshape(2,3).half().t(): [i][j] = (j*3 + i) / 4 */
    const uint16_t *ht = get(&ck, "half_t", BZN_CK_F16, 2, (int64_t[]){3, 2})->data;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) ck_assert(half_to_float(ht[i * 2 + j]) == (float)(j * 3 + i) * 0.25f);
    bzn_ckpt_free(&ck);
}
END_TEST

/* _rebuild_from_type_v2 (tensor subclasses) in an OrderedDict built from a list of pairs;
 * both tensors view the storage [0.5, 1.5, 2.5, 3.5]. */
START_TEST(test_from_type_and_pairs) {
    bzn_ckpt ck;
    load_ok("from_type.pth", &ck);
    ck_assert_int_eq(ck.count, 2);
    const float *x = get_f32(&ck, "x", 1, (int64_t[]){3}); /* offset 1 */
    ck_assert(x[0] == 1.5f && x[1] == 2.5f && x[2] == 3.5f);
    const float *y = get_f32(&ck, "y", 2, (int64_t[]){2, 2}); /* stride (1, 2): transposed */
    ck_assert(y[0] == 0.5f && y[1] == 2.5f && y[2] == 1.5f && y[3] == 3.5f);
    bzn_ckpt_free(&ck);
}
END_TEST

START_TEST(test_read_memory_and_api) {
    size_t len;
    uint8_t *buf = fixture_bytes("plain.pth", &len);
    bzn_ckpt ck;
    bzn_error e;
    ck_assert_int_eq(bzn_ckpt_read_memory(buf, len, &ck, &e), BZN_OK);
    free(buf); /* the result owns copies */
    ck_assert_int_eq(ck.count, 7);
    ck_assert(bzn_ckpt_find(&ck, "nope") == NULL);
    ck_assert(bzn_ckpt_find(&ck, NULL) == NULL);
    ck_assert(bzn_ckpt_find(NULL, "conv.bias") == NULL);
    ck_assert(bzn_ckpt_find(&ck, "conv.bias") == &ck.tensors[1]);
    bzn_ckpt_free(&ck);
    bzn_ckpt_free(NULL);

    ck_assert_int_eq(bzn_ckpt_read_memory(NULL, 10, &ck, &e), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_ckpt_read_memory((const uint8_t *)"x", 1, NULL, &e), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_ckpt_read_file(NULL, &ck, &e), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_ckpt_read_file(fixture("does-not-exist.pth"), &ck, &e), BZN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(e.msg, "does-not-exist.pth"));
    ck_assert_int_eq(bzn_ckpt_read_file(fixture(""), &ck, &e), BZN_ERR_IO); /* a directory */
    ck_assert_int_eq(bzn_ckpt_read_memory((const uint8_t *)"x", 1, &ck, NULL), BZN_ERR_FORMAT); /* err may be NULL */

    static const size_t sizes[] = {4, 2, 2, 8, 8, 4, 1, 1, 1};
    for (int t = BZN_CK_F32; t <= BZN_CK_BOOL; t++) {
        ck_assert_uint_eq(bzn_ck_dtype_size((bzn_ck_dtype)t), sizes[t]);
        ck_assert_str_ne(bzn_ck_dtype_name((bzn_ck_dtype)t), "?");
    }
    ck_assert_uint_eq(bzn_ck_dtype_size((bzn_ck_dtype)99), 0);
}
END_TEST

/* ---- zip and pickle units ----------------------------------------------------------- */

START_TEST(test_zip_reader) {
    ck_assert_uint_eq(bzn_crc32_update(0, "123456789", 9), 0xCBF43926u); /* the standard check value */
    ck_assert_uint_eq(bzn_crc32_update(bzn_crc32_update(0, "1234", 4), "56789", 5), 0xCBF43926u);

    size_t len;
    uint8_t *buf = fixture_bytes("custom_folder.pth", &len);
    zip_archive za;
    bzn_error e;
    ck_assert_int_eq(zip_open(&za, buf, len, &e), BZN_OK);
    ck_assert_uint_eq(za.count, 4); /* data.pkl, data/0, data/1, version */
    const zip_entry *v = zip_find(&za, "My-Model_v2.final/version");
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_null(zip_find(&za, "My-Model_v2.final/versio"));
    ck_assert_ptr_null(zip_find(&za, "My-Model_v2.final/version2"));
    const uint8_t *p;
    size_t n;
    ck_assert_int_eq(zip_entry_data(&za, v, &p, &n, &e), BZN_OK);
    ck_assert(n == 2 && p[0] == '3' && p[1] == '\n');
    zip_close(&za);
    free(buf);

    /* an archive with no entries at all is a valid zip (22 bytes of EOCD) */
    static const uint8_t empty_zip[22] = {'P', 'K', 5, 6};
    ck_assert_int_eq(zip_open(&za, empty_zip, sizeof empty_zip, &e), BZN_OK);
    ck_assert_uint_eq(za.count, 0);
    ck_assert_ptr_null(zip_find(&za, "x"));
    zip_close(&za);
    bzn_ckpt ck;
    ck_assert_int_ne(bzn_ckpt_read_memory(empty_zip, sizeof empty_zip, &ck, &e), BZN_OK);
    ck_assert_ptr_nonnull(strstr(e.msg, "data.pkl"));
}
END_TEST

/* Run a pickle; return its status (objects freed). */
static bzn_status run_pickle(const char *bytes, size_t len, pk_obj **top_kind_out, pk_kind *kind) {
    pk_vm *vm;
    pk_obj *top;
    bzn_error e = {0};
    bzn_status st = pk_load((const uint8_t *)bytes, len, &vm, &top, &e);
    if (st == BZN_OK) {
        if (kind) *kind = top->kind;
        pk_free(vm);
    } else {
        ck_assert_ptr_null(vm);
        ck_assert(e.msg[0] != '\0');
    }
    (void)top_kind_out;
    return st;
}
#define PICKLE(s) (s), sizeof(s) - 1

START_TEST(test_pickle_vm) {
    pk_kind k;
    /* good ones */
    ck_assert_int_eq(run_pickle(PICKLE("\x80\x02}q\x00(X\x01\x00\x00\x00" "aK\x01u."), NULL, &k), BZN_OK);
    ck_assert_int_eq(k, PK_DICT);
    ck_assert_int_eq(run_pickle(PICKLE("\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00]\x94(K\x01K\x02" "e."), NULL, &k),
                     BZN_OK);
    ck_assert_int_eq(k, PK_LIST);
    ck_assert_int_eq(run_pickle(PICKLE("N."), NULL, &k), BZN_OK);
    ck_assert_int_eq(k, PK_NONE);

    /* the values of scalars */
    pk_vm *vm;
    pk_obj *top;
    bzn_error e;
    static const char ints[] = "(J\xfe\xff\xff\xff\x8a\x01\xff\x8a\x02\x00\x80\x8a\x00M\xff\xffG\x3f\xf8\x00\x00"
                               "\x00\x00\x00\x00\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01t.";
    ck_assert_int_eq(pk_load((const uint8_t *)ints, sizeof ints - 1, &vm, &top, &e), BZN_OK);
    ck_assert_int_eq(top->kind, PK_TUPLE);
    ck_assert_uint_eq(top->u.seq.len, 7);
    ck_assert(top->u.seq.items[0]->u.integer == -2);
    ck_assert(top->u.seq.items[1]->u.integer == -1);
    ck_assert(top->u.seq.items[2]->u.integer == -32768);
    ck_assert(top->u.seq.items[3]->u.integer == 0);
    ck_assert(top->u.seq.items[4]->u.integer == 65535);
    ck_assert(top->u.seq.items[5]->kind == PK_FLOAT && top->u.seq.items[5]->u.real == 1.5);
    ck_assert(top->u.seq.items[6]->kind == PK_OBJECT); /* 2^64: wider than int64 */
    pk_free(vm);

    /* bad ones: each must fail cleanly */
    static const struct {
        const char *bytes;
        size_t len;
        const char *msg;
    } bad[] = {
        {PICKLE(""), "STOP"},
        {PICKLE("\x80\x02"), "STOP"},
        {PICKLE("."), "underflow"},
        {PICKLE("(."), "underflow"},
        {PICKLE("t."), "MARK"},
        {PICKLE("\x80\x09N."), "protocol"},
        {PICKLE("h\x05."), "memo"},
        {PICKLE("Nr\xff\xff\xff\x7f."), "memo"},
        {PICKLE("q\x00."), "underflow"},
        {PICKLE("X\xff\xff\xff\xff"), "truncated"},
        {PICKLE("\x8d\xff\xff\xff\xff\xff\xff\xff\xff"), "truncated"},
        {PICKLE("\x95\xff\x00\x00\x00\x00\x00\x00\x00N."), "frame"},
        {PICKLE("ctorch\nFloat"), "GLOBAL"},
        {PICKLE("(K\x01K\x02u."), "SETITEMS"},
        {PICKLE("}(K\x01u."), "odd"},
        {PICKLE("K\x01K\x02K\x03s."), "dict"},
        {PICKLE("K\x01K\x02" "a."), "list"},
        {PICKLE("K\x01)R."), "call"},
        {PICKLE("ccollections\nOrderedDict\nK\x01R."), "tuple"},
        {PICKLE("(X\x07\x00\x00\x00storagectorch\nShortStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x01tQ."),
         "ShortStorage"},
        {PICKLE("(X\x03\x00\x00\x00" "fooK\x01tQ."), "persistent id"},
        {PICKLE("ctorch._utils\n_rebuild_tensor_v2\n(K\x01K\x00)\x29tR."), "storage"},
        {PICKLE("I1\n."), "0x49 (INT)"},
        {PICKLE("\xff"), "0xff"},
        {PICKLE("\x8b\xff\xff\xff\xff"), "negative"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&e, 0, sizeof e);
        bzn_status st = pk_load((const uint8_t *)bad[i].bytes, bad[i].len, &vm, &top, &e);
        ck_assert_msg(st != BZN_OK, "bad pickle %zu was accepted", i);
        ck_assert_msg(strstr(e.msg, bad[i].msg) != NULL, "bad pickle %zu: '%s' lacks '%s'", i, e.msg, bad[i].msg);
        ck_assert_ptr_null(vm);
    }

    /* deep MARK nesting and a long stack hit the limits, not the memory */
    size_t n = 200000;
    char *deep = malloc(n + 1);
    memset(deep, '(', n);
    deep[n] = '.';
    ck_assert_int_eq(run_pickle(deep, n + 1, NULL, NULL), BZN_ERR_UNSUPPORTED);
    free(deep);
}
END_TEST

/* ---- broken inputs ------------------------------------------------------------------ */

START_TEST(test_error_fixtures) {
    load_fails("empty.pth", BZN_ERR_FORMAT, "empty");
    load_fails("legacy.pth", BZN_ERR_UNSUPPORTED, "legacy");
    load_fails("legacy.pth", BZN_ERR_UNSUPPORTED, "re-save it with torch.save");
    load_fails("deflate.pth", BZN_ERR_UNSUPPORTED, "DEFLATE");
    load_fails("bad_storage_size.pth", BZN_ERR_FORMAT, "storage 'data/0' is 20 bytes");
    load_fails("out_of_bounds.pth", BZN_ERR_FORMAT, "is 24 bytes but the tensor needs 36");
    load_fails("overflow.pth", BZN_ERR_FORMAT, "'w'");
    load_fails("missing_storage.pth", BZN_ERR_FORMAT, "'data/7' is missing");
    load_fails("qtensor.pth", BZN_ERR_UNSUPPORTED, "_rebuild_qtensor");
    load_fails("bad_opcode.pth", BZN_ERR_UNSUPPORTED, "unsupported pickle opcode 0x49 (INT) at offset 11");
    load_fails("bad_opcode.pth", BZN_ERR_UNSUPPORTED, "op/data.pkl: ");
    load_fails("no_tensors.pth", BZN_ERR_UNSUPPORTED, "no tensors");
    load_fails("full_model.pth", BZN_ERR_UNSUPPORTED, "pickled __main__.Tiny object, not a state dict; save "
                                                      "model.state_dict() instead");
    load_fails("stride_overflow.pth", BZN_ERR_FORMAT, "strides overflow");
    load_fails("broadcast_bomb.pth", BZN_ERR_UNSUPPORTED, "far more memory");
    load_fails("byteorder_big.pth", BZN_ERR_UNSUPPORTED, "big-endian");

    bzn_ckpt ck;
    bzn_error e;
    ck_assert_int_eq(bzn_ckpt_read_memory((const uint8_t *)"", 0, &ck, &e), BZN_ERR_FORMAT);
    static const char text[] = "just some text, not a checkpoint";
    ck_assert_int_eq(bzn_ckpt_read_memory((const uint8_t *)text, sizeof text, &ck, &e), BZN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "not a zip archive: this looks like a PyTorch < 1.6 (legacy) checkpoint "
                                        "or not a checkpoint at all; re-save it with torch.save(...) from "
                                        "PyTorch >= 1.6"));
    static const uint8_t legacy[] = {0x80, 0x02, 0x8a, 0x0a};
    ck_assert_int_eq(bzn_ckpt_read_memory(legacy, sizeof legacy, &ck, &e), BZN_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e.msg, "not a zip archive"));

    /* a flipped byte inside a storage is caught by the CRC */
    size_t len;
    uint8_t *buf = fixture_bytes("plain.pth", &len);
    zip_archive za;
    ck_assert_int_eq(zip_open(&za, buf, len, &e), BZN_OK);
    const uint8_t *p;
    size_t n;
    ck_assert_int_eq(zip_entry_data(&za, zip_find(&za, "plain/data/0"), &p, &n, &e), BZN_OK);
    size_t at = (size_t)(p - buf);
    zip_close(&za);
    buf[at] ^= 1;
    ck_assert_int_eq(bzn_ckpt_read_memory(buf, len, &ck, &e), BZN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "CRC"));
    free(buf);
}
END_TEST

/* Every prefix of a checkpoint is an error (the zip directory is at the end). */
START_TEST(test_truncation_everywhere) {
    static const char *names[] = {"module_prefix.pth", "zip64.pth"};
    for (int f = 0; f < 2; f++) {
        size_t len;
        uint8_t *buf = fixture_bytes(names[f], &len);
        for (size_t cut = 0; cut < len; cut++) {
            uint8_t *part = malloc(cut ? cut : 1); /* exactly sized, so ASan sees any overread */
            memcpy(part, buf, cut);
            ck_assert_msg(read_any(part, cut) != BZN_OK, "%s cut at %zu was accepted", names[f], cut);
            free(part);
        }
        ck_assert_int_eq(read_any(buf, len), BZN_OK);
        free(buf);
    }
}
END_TEST

/* Single-byte corruption at every offset, with the CRCs as they are and repaired: an error
 * or a coherent result, never a crash. */
START_TEST(test_corruption_everywhere) {
    size_t len;
    uint8_t *buf = fixture_bytes("strided.pth", &len);
    uint8_t *copy = malloc(len);
    int ok = 0, failed = 0;
    for (size_t i = 0; i < len; i++) {
        static const int kinds = 3;
        for (int k = 0; k < kinds; k++) {
            memcpy(copy, buf, len);
            copy[i] = k == 0 ? (uint8_t)(buf[i] ^ 0xFF) : k == 1 ? (uint8_t)(buf[i] ^ 0x01) : 0;
            if (read_any(copy, len) == BZN_OK) ok++;
            else failed++;
            repair_crcs(copy, len); /* and once more past the checksums */
            read_any(copy, len);
        }
    }
    ck_assert(failed > 0 && ok > 0); /* padding bytes don't matter, headers do */
    free(copy);
    free(buf);
}
END_TEST

/* Corrupt every byte of data.pkl and repair its CRC, so that the pickle VM and the
 * tensor checks (not the checksum) have to deal with the damage. */
START_TEST(test_pickle_corruption_everywhere) {
    static const char *names[] = {"strided.pth", "proto4.pth", "wrap_state_dict.pth"};
    for (int f = 0; f < 3; f++) {
        size_t len;
        uint8_t *buf = fixture_bytes(names[f], &len);
        zip_archive za;
        bzn_error e;
        ck_assert_int_eq(zip_open(&za, buf, len, &e), BZN_OK);
        const zip_entry *pkl = NULL;
        for (size_t i = 0; i < za.count; i++)
            if (za.entries[i].name_len > 9 && memcmp(za.entries[i].name + za.entries[i].name_len - 9, "/data.pkl", 9) == 0)
                pkl = &za.entries[i];
        ck_assert_ptr_nonnull(pkl);
        const uint8_t *p;
        size_t n;
        ck_assert_int_eq(zip_entry_data(&za, pkl, &p, &n, &e), BZN_OK);
        size_t at = (size_t)(p - buf);
        zip_close(&za);

        uint8_t *copy = malloc(len);
        int ok = 0;
        for (size_t i = 0; i < n; i++) {
            for (int k = 0; k < 4; k++) {
                memcpy(copy, buf, len);
                uint8_t *b = copy + at + i;
                *b = k == 0 ? (uint8_t)(*b ^ 0xFF) : k == 1 ? (uint8_t)(*b ^ 0x01) : k == 2 ? (uint8_t)(*b + 1) : 0x80;
                repair_crcs(copy, len);
                if (read_any(copy, len) == BZN_OK) ok++;
            }
        }
        ck_assert(ok > 0); /* e.g. changed values or names still read */
        free(copy);
        free(buf);
    }
}
END_TEST

/* Inputs that once crashed or hung the reader (found by tests/fuzz/fuzz_ckpt.c). */
START_TEST(test_fuzz_regressions) {
    const char *dir = fixture("crashes");
    DIR *d = opendir(dir);
    if (!d) return; /* no regressions recorded */
    struct dirent *de;
    int count = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || strcmp(de->d_name, "README.md") == 0) continue;
        size_t len;
        uint8_t *buf = tu_read_file(tu_path(dir, de->d_name), &len);
        ck_assert_msg(buf != NULL, "cannot read %s", de->d_name);
        /* as the fuzzer saw it: CRCs ignored (repaired), pickles also run on their own */
        uint8_t *exact = malloc(len ? len : 1);
        memcpy(exact, buf, len);
        read_any(exact, len);
        repair_crcs(exact, len);
        read_any(exact, len);
        if (len > 0 && exact[0] == 0x80) {
            pk_vm *vm;
            pk_obj *top;
            bzn_error e;
            if (pk_load(exact, len, &vm, &top, &e) == BZN_OK) pk_free(vm);
        }
        free(exact);
        free(buf);
        count++;
    }
    closedir(d);
    printf("test_fuzz_regressions: %d inputs\n", count);
}
END_TEST

/* ---- memory: hostile pickles that create objects far beyond their size --------------- */

static void put16(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v) {
    put16(p, v & 0xFFFF);
    put16(p + 2, v >> 16);
}

/* A checkpoint around a bare pickle, laid out like torch.save's (stored entries):
 * c/data.pkl = pkl, c/data/0 = the float 1.0, c/version. */
static uint8_t *ckpt_from_pickle(const uint8_t *pkl, size_t pkl_len, size_t *out_len) {
    static const float one = 1.0f;
    const struct {
        const char *name;
        const void *data;
        size_t len;
    } e[3] = {{"c/data.pkl", pkl, pkl_len}, {"c/data/0", &one, sizeof one}, {"c/version", "3\n", 2}};
    uint8_t *b = malloc(pkl_len + 512), *p = b;
    uint32_t offset[3], crc[3];
    for (int i = 0; i < 3; i++) { /* local header, name, bytes */
        size_t nl = strlen(e[i].name);
        offset[i] = (uint32_t)(p - b);
        crc[i] = bzn_crc32_update(0, e[i].data, e[i].len);
        memset(p, 0, 30);
        put32(p, 0x04034B50);
        put16(p + 4, 20);
        put32(p + 14, crc[i]);
        put32(p + 18, (uint32_t)e[i].len);
        put32(p + 22, (uint32_t)e[i].len);
        put16(p + 26, (uint32_t)nl);
        memcpy(p + 30, e[i].name, nl);
        memcpy(p + 30 + nl, e[i].data, e[i].len);
        p += 30 + nl + e[i].len;
    }
    uint8_t *cd = p;
    for (int i = 0; i < 3; i++) { /* central directory */
        size_t nl = strlen(e[i].name);
        memset(p, 0, 46);
        put32(p, 0x02014B50);
        put16(p + 4, 20);
        put16(p + 6, 20);
        put32(p + 16, crc[i]);
        put32(p + 20, (uint32_t)e[i].len);
        put32(p + 24, (uint32_t)e[i].len);
        put16(p + 28, (uint32_t)nl);
        put32(p + 42, offset[i]);
        memcpy(p + 46, e[i].name, nl);
        p += 46 + nl;
    }
    memset(p, 0, 22); /* end of central directory */
    put32(p, 0x06054B50);
    put16(p + 8, 3);
    put16(p + 10, 3);
    put32(p + 12, (uint32_t)(p - cd));
    put32(p + 16, (uint32_t)(cd - b));
    *out_len = (size_t)(p + 22 - b);
    return b;
}

/* A valid state dict {"w": tensor [1.0] in storage '0'} and STOP, to end every flood. */
static const char flood_tail[] =
    "}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n("
    "(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x01tQ"
    "K\x00K\x01\x85K\x01\x85\x89" "ccollections\nOrderedDict\n)RtRs.";

/* Floods: pickles of about `size` bytes that repeat one cheap construction. */
enum {
    FLOOD_MARK_DICTS,  /* MARK, 65534 EMPTY_DICTs, POP_MARK: one object per byte */
    FLOOD_DICT_POP,    /* EMPTY_DICT POP */
    FLOOD_LIST_POP,    /* EMPTY_LIST POP */
    FLOOD_TUPLE1_POP,  /* NONE TUPLE1 POP: an object and an item array per 3 bytes */
    FLOOD_DICT_COPIES, /* OrderedDict(d) of one 4096-item dict, again and again through the memo */
    FLOOD_INTS,        /* BININT2 256 POP: one object per 4 bytes, within the budget */
    FLOOD_MEMOIZE,     /* NONE, then MEMOIZE after MEMOIZE: the memo grows */
    FLOOD_DUP,         /* NONE, then DUP after DUP: the stack grows */
    FLOOD_KINDS
};
static const char *const flood_names[FLOOD_KINDS] = {"mark-dicts", "dict-pop", "list-pop", "tuple1-pop",
                                                     "dict-copies", "ints", "memoize", "dup"};

static uint8_t *flood_pickle(int kind, size_t size, size_t *len) {
    const size_t tail = sizeof flood_tail - 1;
    uint8_t *b = malloc(size + 65536 + 16384 + tail), *p = b;
    *p++ = 0x80;
    *p++ = 2;
    static const struct {
        const char *ops;
        size_t len;
    } unit[FLOOD_KINDS] = {{"", 0},           {"}0", 2},        {"]0", 2},   {"N\x85" "0", 3},
                           {"h\x00h\x02R0", 6}, {"M\x00\x01" "0", 4}, {"\x94", 1}, {"2", 1}};
    if (kind == FLOOD_DICT_COPIES) { /* memo 0 = OrderedDict, memo 2 = (d,) with 4096 items in d */
        static const char head[] = "ccollections\nOrderedDict\nq\x00}(";
        memcpy(p, head, sizeof head - 1);
        p += sizeof head - 1;
        for (int i = 0; i < 4096; i++, p += 3) memcpy(p, "K\x00N", 3);
        memcpy(p, "u\x85q\x02" "0", 5);
        p += 5;
    }
    if (kind == FLOOD_MEMOIZE || kind == FLOOD_DUP) *p++ = 'N';
    while ((size_t)(p - b) < size) {
        if (kind == FLOOD_MARK_DICTS) { /* (groups of 65534: the stack holds 2^20) */
            size_t n = size < 65536 ? size / 2 : 65534;
            *p++ = '(';
            memset(p, '}', n);
            p += n;
            *p++ = '1';
        } else {
            memcpy(p, unit[kind].ops, unit[kind].len);
            p += unit[kind].len;
        }
    }
    if (kind == FLOOD_MEMOIZE || kind == FLOOD_DUP) *p++ = '0';
    memcpy(p, flood_tail, tail);
    *len = (size_t)(p + tail - b);
    return b;
}

/* What a child process saw reading a checkpoint from memory. */
typedef struct {
    long start_kb; /* its peak RSS when it started (its RSS at the fork) */
    bzn_status status;
    char msg[512];
} child_report;

/* Read data in a child process; the growth of its peak RSS (ru_maxrss from wait4 minus its
 * own at the start), in bytes. Independent of RLIMIT_AS, so it works under ASan too. */
static long long read_peak_growth(const uint8_t *data, size_t len, child_report *rep) {
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        child_report r;
        memset(&r, 0, sizeof r);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        r.start_kb = ru.ru_maxrss;
        bzn_ckpt ck;
        bzn_error e = {0};
        r.status = bzn_ckpt_read_memory(data, len, &ck, &e);
        snprintf(r.msg, sizeof r.msg, "%s", e.msg);
        bzn_ckpt_free(&ck);
        ssize_t w = write(fds[1], &r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? 0 : 1);
    }
    close(fds[1]);
    ssize_t got = 0;
    while (got < (ssize_t)sizeof *rep) {
        ssize_t n = read(fds[0], (char *)rep + got, sizeof *rep - (size_t)got);
        if (n <= 0) break;
        got += n;
    }
    close(fds[0]);
    int wstatus;
    struct rusage ru;
    ck_assert_int_eq(wait4(pid, &wstatus, 0, &ru), pid);
    ck_assert_msg(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0 && got == (ssize_t)sizeof *rep,
                  "the reading child died (status 0x%x)", wstatus);
    return ((long long)ru.ru_maxrss - rep->start_kb) * 1024;
}

/* The pickle VM charges every allocation (objects even when POP drops them at once, items,
 * stack, marks, memo) to a budget of PK_MEMORY_FACTOR (16) bytes per byte of checkpoint plus
 * PK_MEMORY_SLACK, and the tensors get what it leaves: however a 10 MB checkpoint is made,
 * reading it must never grow the peak RSS by more than 20 times its size plus a few MB
 * (before the budget covered every object: 64 times for mark-dicts, 256 for dict-copies). */
START_TEST(test_memory_bounded_by_size) {
    const size_t size = 10u << 20;
    /* the budget's 16, and malloc's slack; AddressSanitizer adds its shadow memory (an eighth)
     * and a redzone around every block */
    const char *san = tu_env("BZN_SANITIZE");
    const double factor = san && strcmp(san, "0") != 0 ? 26 : 20;
    const long long slack = 16ll << 20;
    for (int kind = 0; kind < FLOOD_KINDS; kind++) {
        size_t pkl_len, len;
        uint8_t *pkl = flood_pickle(kind, size, &pkl_len);
        uint8_t *ck = ckpt_from_pickle(pkl, pkl_len, &len);
        child_report rep;
        long long growth = read_peak_growth(ck, len, &rep);
        printf("test_memory_bounded_by_size: %-11s %5.1f MB: peak RSS +%6.1f MB (%4.1fx), status %d: %.140s\n",
               flood_names[kind], len / 1048576.0, growth / 1048576.0, (double)growth / (double)len,
               (int)rep.status, rep.status ? rep.msg : "read");
        ck_assert_msg(growth < (long long)(factor * (double)len) + slack,
                      "%s: reading a %zu-byte checkpoint grew the peak RSS by %lld bytes (%.1fx its size)",
                      flood_names[kind], len, growth, (double)growth / (double)len);
        if (kind <= FLOOD_DICT_COPIES) { /* far beyond the budget: refused, saying why */
            ck_assert_msg(rep.status == BZN_ERR_FORMAT, "%s: status %d (%s)", flood_names[kind], (int)rep.status,
                          rep.msg);
            ck_assert_msg(strstr(rep.msg, "c/data.pkl: pickle exceeds its memory budget") &&
                              strstr(rep.msg, "far too many objects or items for its size"),
                          "%s: %s", flood_names[kind], rep.msg);
        }
        if (kind == FLOOD_MARK_DICTS) { /* the bare pickle too, with the budget made from its own size */
            pk_vm *vm;
            pk_obj *top;
            bzn_error e = {0};
            ck_assert_int_eq(pk_load(pkl, pkl_len, &vm, &top, &e), BZN_ERR_FORMAT);
            ck_assert_ptr_nonnull(strstr(e.msg, "exceeds its memory budget"));
            ck_assert_ptr_null(vm);
        }
        free(ck);
        free(pkl);
    }
}
END_TEST

/* The floods' construction is sound: each ends in a state dict that reads when the flood is
 * small; and small pickles (the fixtures) fit in the slack. */
START_TEST(test_small_floods_read) {
    for (int kind = 0; kind < FLOOD_KINDS; kind++) {
        size_t pkl_len, len;
        uint8_t *pkl = flood_pickle(kind, 4096, &pkl_len);
        uint8_t *ck = ckpt_from_pickle(pkl, pkl_len, &len);
        bzn_ckpt out;
        bzn_error e = {0};
        ck_assert_msg(bzn_ckpt_read_memory(ck, len, &out, &e) == BZN_OK, "%s: %s", flood_names[kind], e.msg);
        ck_assert_int_eq(out.count, 1);
        const float *w = get_f32(&out, "w", 1, (int64_t[]){1});
        ck_assert(w[0] == 1.0f);
        bzn_ckpt_free(&out);
        free(ck);
        free(pkl);
    }
    /* the budget: 16 bytes per byte plus 1 MiB, and what the shipped-size pickles use */
    ck_assert_uint_eq(pk_memory_budget(1000), 16000 + ((size_t)1 << 20));
    ck_assert_uint_eq(pk_memory_budget(SIZE_MAX / 2), SIZE_MAX);
    ck_assert_uint_eq(pk_memory_used(NULL), 0);
    size_t len;
    uint8_t *buf = fixture_bytes("plain.pth", &len);
    zip_archive za;
    bzn_error e;
    ck_assert_int_eq(zip_open(&za, buf, len, &e), BZN_OK);
    const uint8_t *p;
    size_t n;
    ck_assert_int_eq(zip_entry_data(&za, zip_find(&za, "plain/data.pkl"), &p, &n, &e), BZN_OK);
    pk_vm *vm;
    pk_obj *top;
    ck_assert_int_eq(pk_load(p, n, &vm, &top, &e), BZN_OK);
    ck_assert_uint_gt(pk_memory_used(vm), n);
    ck_assert_uint_lt(pk_memory_used(vm), pk_memory_budget(n));
    pk_free(vm);
    zip_close(&za);
    free(buf);
}
END_TEST

/* ---- whole BlazeNeo checkpoints through the converter ---------------------------------- */

/* The checkpoints of tests/ref/make_ckpt_variants.py (made once, kept in the build tree), or
 * NULL when python3-torch is absent (the caller returns: skipped, or failed in CI). */
static const char *variants_dir(const char *test) {
    static char dir[1024];
    if (!tu_have_python("torch,numpy")) {
        tu_missing_in(test, "python3 with torch and numpy (apt-get install python3-torch)");
        return NULL;
    }
    snprintf(dir, sizeof dir, "%s/ckpt_variants", tu_env("BZN_BUILD_DIR") ? tu_env("BZN_BUILD_DIR") : "/tmp");
    ck_assert_msg(tu_run("\"%s\" \"%s/tests/ref/make_ckpt_variants.py\" \"%s\"", tu_env("BZN_PYTHON"),
                         tu_env("BZN_SOURCE_DIR"), dir) == 0,
                  "make_ckpt_variants.py failed");
    return dir;
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* The same state dict behind a "module." prefix, in each training wrapper, as f64, as bf16
 * and as non-contiguous views converts to a weight file identical, byte for byte, to the
 * plain checkpoint's. */
START_TEST(test_variants_convert_identically) {
    const char *dir = variants_dir(__func__);
    if (!dir) return;
    char *out = tu_tmpdir("ckpt-variants");
    ck_assert_ptr_nonnull(out);
    static const char *const same[] = {"module_prefix", "wrap_state_dict", "wrap_model", "wrap_model_state_dict",
                                       "f64", "bf16", "noncontig"};
    char in[2048], path[2048];
    bzn_error e = {0};
    bzn_convert_report want, rep;
    snprintf(in, sizeof in, "%s/plain.pth", dir);
    snprintf(path, sizeof path, "%s/plain.bzn", out);
    ck_assert_msg(bzn_convert_checkpoint(in, path, NULL, &want, &e) == BZN_OK, "plain: %s", e.msg);
    ck_assert(want.aggregation == BZN_AGG_DHA && want.has_aux && want.num_classes == 3);
    size_t plain_len;
    uint8_t *plain = tu_read_file(path, &plain_len);
    ck_assert_ptr_nonnull(plain);
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        snprintf(in, sizeof in, "%s/%s.pth", dir, same[i]);
        snprintf(path, sizeof path, "%s/%s.bzn", out, same[i]);
        ck_assert_msg(bzn_convert_checkpoint(in, path, NULL, &rep, &e) == BZN_OK, "%s: %s", same[i], e.msg);
        ck_assert_int_eq(rep.tensors_written, want.tensors_written);
        ck_assert_int_eq(rep.tensors_dropped, want.tensors_dropped);
        size_t len;
        uint8_t *got = tu_read_file(path, &len);
        ck_assert_ptr_nonnull(got);
        ck_assert_msg(len == plain_len && memcmp(got, plain, len) == 0,
                      "%s.pth does not convert to the same bytes as plain.pth", same[i]);
        free(got);
        remove(path);
    }
    free(plain);
    remove(tu_path(out, "plain.bzn"));
    rmdir(out);
    free(out);
}
END_TEST

/* Checkpoints that cannot be converted: refused with a message that says why, and no
 * output file (nor a partial one) left behind. */
START_TEST(test_variants_refused) {
    const char *dir = variants_dir(__func__);
    if (!dir) return;
    char *out = tu_tmpdir("ckpt-refused");
    ck_assert_ptr_nonnull(out);
    static const struct {
        const char *name;
        bzn_status status;
        const char *msg;
    } bad[] = {
        {"legacy", BZN_ERR_UNSUPPORTED, "legacy.pth: not a zip archive: this is a PyTorch < 1.6 (legacy) checkpoint "
                                        "(it starts with a protocol-2 pickle); re-save it with torch.save(...) from "
                                        "PyTorch >= 1.6"},
        {"full_model", BZN_ERR_UNSUPPORTED, "full_model.pth: the checkpoint holds a pickled blazeneo_ref.BlazeNeo "
                                            "object, not a state dict; save model.state_dict() instead"},
        {"wrap_full_model", BZN_ERR_UNSUPPORTED, "wrap_full_model.pth: the checkpoint holds a pickled "
                                                 "blazeneo_ref.BlazeNeo object, not a state dict"},
        {"nan", BZN_ERR_FORMAT, "'rfb4.branch1.1.conv.weight': non-finite weight in output channel 3"},
        {"wrong_shape", BZN_ERR_FORMAT, "tensor 'rfb4.branch1.1.conv.weight' has shape [32x31x3x3], the "
                                        "architecture needs [32x32x3x3]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char in[2048], path[2048], partial[2100];
        snprintf(in, sizeof in, "%s/%s.pth", dir, bad[i].name);
        snprintf(path, sizeof path, "%s/%s.bzn", out, bad[i].name);
        snprintf(partial, sizeof partial, "%s.partial", path);
        bzn_error e = {0};
        bzn_status st = bzn_convert_checkpoint(in, path, NULL, NULL, &e);
        ck_assert_msg(st == bad[i].status, "%s: status %d (%s), wanted %d", bad[i].name, (int)st, e.msg,
                      (int)bad[i].status);
        ck_assert_msg(strstr(e.msg, bad[i].msg) != NULL, "%s: message '%s' lacks '%s'", bad[i].name, e.msg,
                      bad[i].msg);
        ck_assert_msg(!file_exists(path) && !file_exists(partial), "%s: an output file was left", bad[i].name);
    }
    rmdir(out);
    free(out);
}
END_TEST

/* ---- the project's real checkpoint (shared/, when present) --------------------------- */

START_TEST(test_shared_model) {
    const char *path = tu_path(tu_env("BZN_SHARED_DIR"), "models/blazeneo-dha-neopolyp-small.pth");
    bzn_ckpt ck;
    bzn_error e = {0};
    ck_assert_msg(bzn_ckpt_read_file(path, &ck, &e) == BZN_OK, "%s", e.msg);
    ck_assert_int_eq(ck.count, 586);
    get(&ck, "encoder.base.0.conv.weight", BZN_CK_F32, 4, (int64_t[]){32, 3, 3, 3});
    int tracked = 0;
    for (int i = 0; i < ck.count; i++) {
        const bzn_ck_tensor *t = &ck.tensors[i];
        size_t len = strlen(t->name);
        if (len >= 19 && strcmp(t->name + len - 19, "num_batches_tracked") == 0) {
            ck_assert_int_eq(t->dtype, BZN_CK_I64);
            ck_assert_int_eq(t->ndim, 0);
            ck_assert_uint_eq(t->nbytes, 8);
            tracked++;
        }
    }
    ck_assert_int_gt(tracked, 0);
    bzn_ckpt_free(&ck);
}
END_TEST

static Suite *ckpt_suite(void) {
    Suite *s = suite_create("ckpt");
    TU_ADD_CASE(s, test_plain_state_dict);
    TU_ADD_CASE(s, test_dtypes);
    TU_ADD_CASE(s, test_wrappers);
    TU_ADD_CASE(s, test_module_prefix);
    TU_ADD_CASE(s, test_custom_folder_proto4_zip64);
    TU_ADD_CASE(s, test_strided_views);
    TU_ADD_CASE(s, test_from_type_and_pairs);
    TU_ADD_CASE(s, test_read_memory_and_api);
    TU_ADD_CASE(s, test_zip_reader);
    TU_ADD_CASE(s, test_pickle_vm);
    TU_ADD_CASE(s, test_error_fixtures);
    TU_ADD_CASE(s, test_truncation_everywhere);
    TU_ADD_CASE(s, test_corruption_everywhere);
    TU_ADD_CASE(s, test_pickle_corruption_everywhere);
    TU_ADD_CASE(s, test_fuzz_regressions);
    TU_ADD_CASE(s, test_memory_bounded_by_size);
    TU_ADD_CASE(s, test_small_floods_read);
    TU_ADD_CASE(s, test_variants_convert_identically);
    TU_ADD_CASE(s, test_variants_refused);
    if (tu_have_shared())
        TU_ADD_CASE(s, test_shared_model);
    else
        tu_skip_case("test_shared_model", "needs ../shared/models/blazeneo-dha-neopolyp-small.pth");
    return s;
}

int main(void) {
    return tu_run_suite(ckpt_suite());
}
