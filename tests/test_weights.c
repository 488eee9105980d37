/*
 * test_weights.c - the weight file: write/read round trip, then every way a file can be
 * damaged - truncated at every section, any byte flipped, bad magic/version, overlapping
 * or misaligned tensors, duplicate names, shapes that disagree with the architecture -
 * must give a clear error, never a crash and never a model that loads.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blazeneo.h"
#include "crc32.h"
#include "testutil.h"
#include "f16.h"
#include "wfile.h"

static const bzn_wf_config cfg = {BZN_AGG_LSC, 0, 3, 64, 96, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};

/* a small valid file with three tensors of different dtypes, in memory */
static uint8_t *small_file(size_t *len) {
    static float a[6] = {1, 2, 3, 4, 5, 6};
    static uint16_t h[5];
    static float c[1] = {42};
    for (int i = 0; i < 5; i++) h[i] = bzn_f32_to_f16((float)i / 4);
    bzn_wf_input t[3] = {{"alpha.weight", BZN_DT_F32, 2, {2, 3}, a, BZN_WF_NO_SCALE},
                         {"beta.conv.weight", BZN_DT_F16, 1, {5}, h, BZN_WF_NO_SCALE},
                         {"gamma", BZN_DT_F32, 1, {1}, c, BZN_WF_NO_SCALE}};
    char *dir = tu_tmpdir("weights");
    char path[4096];
    snprintf(path, sizeof path, "%s/small.bzn", dir);
    bzn_error e;
    ck_assert_int_eq(bzn_wfile_write(path, &cfg, t, 3, &e), BZN_OK);
    uint8_t *buf = tu_read_file(path, len);
    remove(path);
    remove(dir);
    free(dir);
    return buf;
}

START_TEST(round_trip) {
    size_t len;
    uint8_t *buf = small_file(&len);
    bzn_wfile wf;
    bzn_error e;
    ck_assert_msg(bzn_wfile_open_memory(buf, len, &wf, &e) == BZN_OK, "%s", e.msg);
    ck_assert_int_eq(wf.count, 3);
    ck_assert_int_eq(wf.config.aggregation, BZN_AGG_LSC);
    ck_assert_int_eq(wf.config.num_classes, 3);
    ck_assert_int_eq(wf.config.default_height, 64);
    ck_assert_int_eq(wf.config.default_width, 96);
    ck_assert_float_eq(wf.config.std[2], 0.225f);
    const bzn_wf_tensor *t = bzn_wfile_find(&wf, "alpha.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, 2);
    ck_assert_int_eq(t->shape[1], 3);
    ck_assert_float_eq(((const float *)t->data)[5], 6.0f);
    ck_assert_int_eq((uintptr_t)t->data % BZN_WF_ALIGN, 0);
    t = bzn_wfile_find(&wf, "beta.conv.weight");
    ck_assert_int_eq(t->dtype, BZN_DT_F16);
    ck_assert_float_eq(bzn_f16_to_f32(((const uint16_t *)t->data)[3]), 0.75f);
    ck_assert_ptr_null(bzn_wfile_find(&wf, "delta"));
    bzn_wfile_close(&wf);
    free(buf);
}
END_TEST

/* Every possible truncation of a small file is an error naming the problem. */
START_TEST(truncation_everywhere) {
    size_t len;
    uint8_t *buf = small_file(&len);
    for (size_t cut = 0; cut < len; cut++) {
        bzn_wfile wf;
        bzn_error e = {0};
        ck_assert_msg(bzn_wfile_open_memory(buf, cut, &wf, &e) != BZN_OK, "a file cut at %zu bytes loaded", cut);
        ck_assert(strlen(e.msg) > 0);
    }
    free(buf);
}
END_TEST

/* Any single flipped bit is caught (checksums cover the header, the table and the data). */
START_TEST(corruption_everywhere) {
    size_t len;
    uint8_t *buf = small_file(&len);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            buf[i] ^= (uint8_t)(1u << bit);
            bzn_wfile wf;
            bzn_error e = {0};
            bzn_status s = bzn_wfile_open_memory(buf, len, &wf, &e);
            /* padding bytes between tensors are not covered by a checksum: they may load */
            if (s == BZN_OK) {
                for (int k = 0; k < wf.count; k++) {
                    const uint8_t *p = wf.tensors[k].data;
                    ck_assert_msg(!((const uint8_t *)wf.base + i >= p && (const uint8_t *)wf.base + i < p + wf.tensors[k].nbytes),
                                  "flipped byte %zu inside tensor '%s' went unnoticed", i, wf.tensors[k].name);
                }
                ck_assert_msg(i >= BZN_WF_HEADER_BYTES + 3 * BZN_WF_ENTRY_BYTES, "header/table byte %zu unnoticed", i);
                bzn_wfile_close(&wf);
            } else {
                ck_assert(strlen(e.msg) > 0);
            }
            buf[i] ^= (uint8_t)(1u << bit);
        }
    }
    free(buf);
}
END_TEST

/* ---- crafted structural errors: each file is resealed (checksums recomputed) so only the
 *      check under test can fire. Offsets are those documented in weights/FORMAT.md. ---- */

static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

static void reseal(uint8_t *buf) {
    uint32_t count = get32(buf + 16);
    put32(buf + 92, bzn_crc32(buf + 128, (size_t)count * 128));
    put32(buf + 124, bzn_crc32(buf, 124));
}
static uint8_t *entry(uint8_t *buf, int i) { return buf + 128 + 128 * i; }

typedef void (*mutator)(uint8_t *buf);
static void m_version(uint8_t *b) { put32(b + 8, 2); }
static void m_count0(uint8_t *b) { put32(b + 16, 0); }
static void m_misaligned(uint8_t *b) { put64(entry(b, 1) + 104, get64(entry(b, 1) + 104) + 4); }
static void m_overlap(uint8_t *b) { put64(entry(b, 1) + 104, get64(entry(b, 0) + 104)); }
static void m_duplicate(uint8_t *b) { memcpy(entry(b, 2), entry(b, 0), 80); }
static void m_nbytes(uint8_t *b) { put64(entry(b, 0) + 112, 20); }
static void m_outside(uint8_t *b) { put64(entry(b, 2) + 104, 1u << 20); }
static void m_dtype(uint8_t *b) { put32(entry(b, 0) + 80, 7); }
static void m_rank(uint8_t *b) { put32(entry(b, 0) + 84, 5); }
static void m_classes(uint8_t *b) { put32(b + 56, 5); }
static void m_size33(uint8_t *b) { put32(b + 60, 33); }
static void m_agg(uint8_t *b) { put32(b + 48, 9); }
static void m_noname(uint8_t *b) { memset(entry(b, 1), 0, 80); }
static void m_unterminated(uint8_t *b) { memset(entry(b, 1), 'x', 80); }
static void m_filesize(uint8_t *b) { put64(b + 40, get64(b + 40) + 64); }
static void m_std0(uint8_t *b) { memset(b + 80, 0, 4); }

static const struct {
    const char *what;
    mutator f;
    const char *expect; /* a word the message must contain */
} mutations[] = {
    {"version", m_version, "version"},          {"no tensors", m_count0, "count"},
    {"misaligned", m_misaligned, "aligned"},    {"overlap", m_overlap, "overlap"},
    {"duplicate", m_duplicate, "twice"},        {"size vs shape", m_nbytes, "shape"},
    {"outside", m_outside, "outside"},          {"dtype", m_dtype, "dtype"},
    {"rank", m_rank, "rank"},                   {"classes", m_classes, "classes"},
    {"size 33", m_size33, "multiple of 32"},    {"aggregation", m_agg, "aggregation"},
    {"empty name", m_noname, "name"},           {"unterminated name", m_unterminated, "name"},
    {"file size", m_filesize, "truncated"},     {"zero std", m_std0, "normalisation"},
};

START_TEST(crafted_errors) {
    size_t len;
    uint8_t *orig = small_file(&len);
    uint8_t *buf = malloc(len);
    memcpy(buf, orig, len);
    mutations[_i].f(buf);
    reseal(buf);
    bzn_wfile wf;
    bzn_error e = {0};
    ck_assert_msg(bzn_wfile_open_memory(buf, len, &wf, &e) != BZN_OK, "%s: loaded", mutations[_i].what);
    ck_assert_msg(strstr(e.msg, mutations[_i].expect) != NULL, "%s: message '%s' lacks '%s'", mutations[_i].what, e.msg,
                  mutations[_i].expect);
    /* without resealing, the checksum catches it first */
    memcpy(buf, orig, len);
    mutations[_i].f(buf);
    ck_assert(bzn_wfile_open_memory(buf, len, &wf, &e) != BZN_OK);
    free(buf);
    free(orig);
}
END_TEST

START_TEST(not_a_weight_file) {
    bzn_wfile wf;
    bzn_error e = {0};
    uint8_t zip[200] = "PK\x03\x04";
    ck_assert_int_eq(bzn_wfile_open_memory(zip, sizeof zip, &wf, &e), BZN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "blazeneo convert"));
    uint8_t text[300];
    memset(text, 'a', sizeof text);
    ck_assert_int_eq(bzn_wfile_open_memory(text, sizeof text, &wf, &e), BZN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "magic"));
    ck_assert_int_eq(bzn_wfile_open_memory(text, 0, &wf, &e), BZN_ERR_FORMAT);
    ck_assert_int_eq(bzn_wfile_open("/nonexistent/model.bzn", &wf, &e), BZN_ERR_IO);
    ck_assert_int_eq(bzn_wfile_open("/tmp", &wf, &e), BZN_ERR_IO);
}
END_TEST

/* ---- the shipped model: architecture checks ------------------------------------------- */

static const char *shipped(void) {
    return tu_path(tu_env("BZN_SOURCE_DIR"), "models/blazeneo-dha-neopolyp-small-f16.bzn");
}

/* rewrite the shipped model with one change, then try to open it as a model */
static bzn_status rewrite_and_open(const char *drop, const char *reshape, const char *add, int aux, bzn_error *e) {
    bzn_wfile wf;
    ck_assert_int_eq(bzn_wfile_open(shipped(), &wf, e), BZN_OK);
    bzn_wf_input *in = calloc((size_t)wf.count + 1, sizeof *in);
    int n = 0;
    static float extra[4] = {1, 2, 3, 4};
    for (int i = 0; i < wf.count; i++) {
        const bzn_wf_tensor *t = &wf.tensors[i];
        if (drop && !strcmp(t->name, drop)) continue;
        in[n] = (bzn_wf_input){t->name, t->dtype, t->ndim, {t->shape[0], t->shape[1], t->shape[2], t->shape[3]}, t->data,
                               t->scale_index};
        if (reshape && !strcmp(t->name, reshape)) { /* same bytes, wrong shape: [a, b, 1, 1] -> [a, b/2, 2, 1] */
            in[n].shape[1] /= 2;
            in[n].shape[2] *= 2;
        }
        n++;
    }
    if (add) in[n++] = (bzn_wf_input){add, BZN_DT_F32, 1, {4}, extra, BZN_WF_NO_SCALE};
    bzn_wf_config c = wf.config;
    if (aux >= 0) c.has_aux = aux;
    char *dir = tu_tmpdir("arch");
    char path[4096];
    snprintf(path, sizeof path, "%s/m.bzn", dir);
    ck_assert_int_eq(bzn_wfile_write(path, &c, in, n, e), BZN_OK);
    bzn_model *m = NULL;
    bzn_status s = bzn_model_open(path, &m, e);
    bzn_model_free(m);
    remove(path);
    remove(dir);
    free(dir);
    free(in);
    bzn_wfile_close(&wf);
    return s;
}

START_TEST(architecture_checks) {
    bzn_error e = {0};
    ck_assert_int_eq(rewrite_and_open(NULL, NULL, NULL, -1, &e), BZN_OK); /* unchanged: loads */
    ck_assert_int_eq(rewrite_and_open("agg2.block_32.1.bn.running_var", NULL, NULL, -1, &e), BZN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "lacks tensor 'agg2.block_32.1.bn.running_var'"));
    ck_assert_int_eq(rewrite_and_open(NULL, "rfb3.conv_cat.conv.weight", NULL, -1, &e), BZN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "'rfb3.conv_cat.conv.weight' has shape [32x64x2x1]"));
    ck_assert_int_eq(rewrite_and_open(NULL, NULL, "decoder.extra.weight", -1, &e), BZN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "'decoder.extra.weight' is not part of"));
    /* header says no auxiliary head but the file has one: its tensors are unexpected */
    ck_assert_int_eq(rewrite_and_open(NULL, NULL, NULL, 0, &e), BZN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "agg1."));
}
END_TEST

/* The real model truncated in its header, its table, its first, middle and last tensor. */
START_TEST(shipped_model_truncated) {
    size_t len;
    uint8_t *buf = tu_read_file(shipped(), &len);
    ck_assert_ptr_nonnull(buf);
    bzn_model *m = NULL;
    bzn_error e;
    ck_assert_int_eq(bzn_model_open_memory(buf, len, &m, &e), BZN_OK);
    bzn_model_free(m);
    const size_t cuts[] = {0, 7, 64, 127, 128, 128 + 128 * 100 + 5, 128 + 128 * 491, 128 * 492 + 100, len / 2, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        m = NULL;
        e.msg[0] = 0;
        ck_assert_msg(bzn_model_open_memory(buf, cuts[i], &m, &e) != BZN_OK, "cut at %zu loaded", cuts[i]);
        ck_assert_ptr_null(m);
        ck_assert(strlen(e.msg) > 0);
    }
    /* a flipped byte in the middle of the weights */
    buf[len / 2] ^= 0x40;
    ck_assert_int_eq(bzn_model_open_memory(buf, len, &m, &e), BZN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "checksum"));
    free(buf);
}
END_TEST

/* Dropping a mapped file's pages (as a model does once it has folded them) loses nothing:
 * every tensor reads back with its checksum; a copy from memory is left alone. */
START_TEST(released_pages_read_back) {
    bzn_wfile wf;
    bzn_error e;
    ck_assert_int_eq(bzn_wfile_open(shipped(), &wf, &e), BZN_OK);
    bzn_wfile_release_pages(&wf);
    for (int i = 0; i < wf.count; i++) {
        const bzn_wf_tensor *t = &wf.tensors[i];
        ck_assert_msg(bzn_crc32(t->data, (size_t)t->nbytes) == t->crc32, "%s after release", t->name);
    }
    bzn_wfile_close(&wf);
    size_t len;
    uint8_t *buf = small_file(&len);
    ck_assert_int_eq(bzn_wfile_open_memory(buf, len, &wf, &e), BZN_OK);
    bzn_wfile_release_pages(&wf);
    ck_assert_float_eq(((const float *)bzn_wfile_find(&wf, "alpha.weight")->data)[5], 6.0f);
    bzn_wfile_close(&wf);
    free(buf);
}
END_TEST

START_TEST(f16_conversion) {
    /* exact values, rounding to nearest even, subnormals, overflow */
    ck_assert_uint_eq(bzn_f32_to_f16(1.0f), 0x3C00);
    ck_assert_uint_eq(bzn_f32_to_f16(-2.0f), 0xC000);
    ck_assert_uint_eq(bzn_f32_to_f16(65504.0f), 0x7BFF);
    ck_assert_uint_eq(bzn_f32_to_f16(65520.0f), 0x7C00);
    ck_assert_uint_eq(bzn_f32_to_f16(5.960464477539063e-08f), 0x0001);
    ck_assert_uint_eq(bzn_f32_to_f16(1.0f + 1.0f / 2048), 0x3C00); /* tie: to even */
    ck_assert_uint_eq(bzn_f32_to_f16(1.0f + 3.0f / 2048), 0x3C02);
    for (uint32_t h = 0; h < 0x7C00; h++) /* every finite half round-trips */
        ck_assert_uint_eq(bzn_f32_to_f16(bzn_f16_to_f32((uint16_t)h)), h);
}
END_TEST

int main(void) {
    Suite *s = suite_create("weights");
    TCase *tc = tu_case(s, "format", 300);
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, truncation_everywhere);
    tcase_add_test(tc, corruption_everywhere);
    tcase_add_loop_test(tc, crafted_errors, 0, sizeof mutations / sizeof *mutations);
    tcase_add_test(tc, not_a_weight_file);
    tcase_add_test(tc, f16_conversion);
    tcase_add_test(tc, released_pages_read_back);
    tc = tu_case(s, "architecture", 300);
    tcase_add_test(tc, architecture_checks);
    tcase_add_test(tc, shipped_model_truncated);
    return tu_run_suite(s);
}
