/*
 * test_cli.c - the blazeneo command line as a user meets it: exit statuses (0 ok, 1 bad
 * input, 2 usage), clear messages for everything a user can get wrong, outputs never left
 * half-written, and one segment run under valgrind.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"

static const char *cli, *src;
static char *tmp;
static char out[65536]; /* what the last run() printed */
#define run(...) tu_cli(tmp, out, sizeof out, __VA_ARGS__)


#define MODEL "\"$BZN_SOURCE_DIR/models/blazeneo-dha-neopolyp-small-f16.bzn\""
#define SAMPLE "\"$BZN_SOURCE_DIR/samples/16d4ca6160127cd1d5ff99c267599fc4.jpeg\""

static int png_size(const char *path, int *w, int *h) {
    size_t n;
    uint8_t *b = tu_read_file(path, &n);
    int ok = b && n > 24 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8);
    if (ok) {
        *w = b[16] << 24 | b[17] << 16 | b[18] << 8 | b[19];
        *h = b[20] << 24 | b[21] << 16 | b[22] << 8 | b[23];
    }
    free(b);
    return ok ? 0 : -1;
}

START_TEST(usage_errors) {
    ck_assert_int_eq(run("%s", ""), 2);
    ck_assert_int_eq(run("frobnicate"), 2);
    ck_assert_ptr_nonnull(strstr(out, "unknown command"));
    static const char *cmds[] = {"convert", "info", "segment", "trace"};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(run("%s --help", cmds[i]), 0);
        ck_assert_ptr_nonnull(strstr(out, "usage: blazeneo"));
        ck_assert_int_eq(run("%s --no-such-option", cmds[i]), 2);
    }
    ck_assert_int_eq(run("segment -o out " SAMPLE), 2);
    ck_assert_ptr_nonnull(strstr(out, "no model"));
    ck_assert_int_eq(run("segment -m " MODEL " " SAMPLE), 2);
    ck_assert_int_eq(run("segment -m " MODEL " -o out"), 2);
    ck_assert_int_eq(run("segment -m " MODEL " -o out -s banana " SAMPLE), 2);
    ck_assert_int_eq(run("convert onlyone"), 2);
    ck_assert_int_eq(run("convert a b --dtype f8"), 2);
}
END_TEST

START_TEST(bad_models) {
    /* a PyTorch checkpoint given where a weight file is expected */
    ck_assert_int_eq(run("segment -m \"$BZN_SOURCE_DIR/tests/data/ckpt/plain.pth\" -o out " SAMPLE), 1);
    ck_assert_ptr_nonnull(strstr(out, "blazeneo convert"));
    ck_assert_int_eq(run("segment -m /nonexistent.bzn -o out " SAMPLE), 1);
    ck_assert_ptr_nonnull(strstr(out, "No such file"));
    ck_assert_int_eq(tu_run("head -c 1000000 \"%s/models/blazeneo-dha-neopolyp-small-f16.bzn\" > '%s/cut.bzn'", src, tmp), 0);
    ck_assert_int_eq(run("info cut.bzn"), 1);
    ck_assert_ptr_nonnull(strstr(out, "truncated"));
    ck_assert_int_eq(run("segment -m " MODEL " -s 33 -o out " SAMPLE), 1);
    ck_assert_ptr_nonnull(strstr(out, "multiples of 32"));
}
END_TEST

START_TEST(bad_images) {
    ck_assert_int_eq(tu_run("mkdir -p '%s/empty' '%s/mixed'", tmp, tmp), 0);
    ck_assert_int_eq(run("segment -m " MODEL " -o out empty"), 1);
    ck_assert_ptr_nonnull(strstr(out, "no images"));
    ck_assert_int_eq(run("segment -m " MODEL " -o out missing.jpg"), 1);
    /* a directory with a stray text file: the frame is segmented, the text file reported */
    ck_assert_int_eq(tu_run("cp \"%s/samples/16d4ca6160127cd1d5ff99c267599fc4.jpeg\" '%s/mixed/' && echo hello > '%s/mixed/notes.txt'",
                            src, tmp, tmp), 0);
    ck_assert_int_eq(run("segment -q -m " MODEL " -s 96 -o mixed_out mixed"), 1);
    ck_assert_ptr_nonnull(strstr(out, "notes.txt"));
    ck_assert_ptr_nonnull(strstr(out, "not a JPEG"));
    struct stat st;
    ck_assert_int_eq(stat(tu_path(tmp, "mixed_out/16d4ca6160127cd1d5ff99c267599fc4.png"), &st), 0);
    /* a corrupt frame never clobbers an existing mask of the same name */
    ck_assert_int_eq(tu_run("mkdir -p '%s/keep' && echo precious > '%s/keep/broken.png' && "
                            "head -c 5000 \"%s/samples/16d4ca6160127cd1d5ff99c267599fc4.jpeg\" > '%s/broken.jpg'",
                            tmp, tmp, src, tmp), 0);
    ck_assert_int_eq(run("segment -m " MODEL " -s 64 -o keep broken.jpg"), 1);
    size_t n;
    uint8_t *kept = tu_read_file(tu_path(tmp, "keep/broken.png"), &n);
    ck_assert_ptr_nonnull(kept);
    ck_assert_int_eq(n, 9);
    ck_assert_int_eq(memcmp(kept, "precious\n", 9), 0);
    free(kept);
    ck_assert_int_eq(run("segment -m " MODEL " -s 64 -o keep broken.jpg"), 1);
    ck_assert_int_eq(tu_run("ls '%s/keep' | grep -q tmp", tmp), 1); /* no temporary left behind */
}
END_TEST

START_TEST(segment_samples) {
    ck_assert_int_eq(run("segment -m " MODEL " -o masks --overlay --aux \"$BZN_SOURCE_DIR/samples\""), 0);
    ck_assert_ptr_nonnull(strstr(out, "segmented 4 images"));
    static const char *stems[] = {"16d4ca6160127cd1d5ff99c267599fc4", "25605da2023387fd56c04414eaa922bc",
                                  "68f9d4c331587f9b9d49e2f4ee179798", "9ccf01a1b73b5f8ef0693db713abd61d"};
    for (int i = 0; i < 4; i++) {
        static const char *suffix[] = {"", "_overlay", "_aux"};
        for (int k = 0; k < 3; k++) {
            char p[512];
            snprintf(p, sizeof p, "masks/%s%s.png", stems[i], suffix[k]);
            int w, h;
            ck_assert_msg(png_size(tu_path(tmp, p), &w, &h) == 0, "%s missing", p);
            ck_assert_int_eq(w, 1280); /* the frame's own size */
            ck_assert(h >= 959 && h <= 995);
        }
    }
}
END_TEST

START_TEST(convert_errors) {
    ck_assert_int_eq(tu_run("echo 'not a checkpoint' > '%s/text.pth' && echo keep > '%s/existing.bzn'", tmp, tmp), 0);
    ck_assert_int_eq(run("convert text.pth existing.bzn"), 1);
    ck_assert_ptr_nonnull(strstr(out, "zip"));
    size_t n;
    uint8_t *kept = tu_read_file(tu_path(tmp, "existing.bzn"), &n);
    ck_assert_int_eq(n, 5);
    free(kept);
    ck_assert_int_eq(run("convert \"$BZN_SOURCE_DIR/tests/data/ckpt/plain.pth\" x.bzn"), 1);
    ck_assert_ptr_nonnull(strstr(out, "not a BlazeNeo checkpoint"));
    ck_assert_int_eq(run("convert missing.pth x.bzn"), 1);
}
END_TEST

START_TEST(info_and_trace) {
    ck_assert_int_eq(run("info " MODEL " --layers --tensors"), 0);
    ck_assert_ptr_nonnull(strstr(out, "17143324 on the main path"));
    ck_assert_ptr_nonnull(strstr(out, "11.034 GMAC"));
    ck_assert_ptr_nonnull(strstr(out, "encoder.base.3.layers.5"));
    ck_assert_ptr_nonnull(strstr(out, "rfb4.branch2.2"));
    ck_assert_int_eq(run("info -s 512x256 " MODEL), 0);
    ck_assert_ptr_nonnull(strstr(out, "at 512x256"));
    ck_assert_int_eq(run("trace -m " MODEL " -s 96x64 " SAMPLE " -o tr"), 0);
    static const char *files[] = {"input", "main", "aux", "encoder.base.3.layers.5", "encoder.base.3", "rfb4.branch2.2",
                                  "rfb4", "agg2.block_31.1", "agg2", "head_2", "upsample_2"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char p[256];
        snprintf(p, sizeof p, "tr/%s.npy", files[i]);
        struct stat st;
        ck_assert_msg(stat(tu_path(tmp, p), &st) == 0, "%s missing", p);
    }
}
END_TEST

START_TEST(segment_under_valgrind) {
    if (tu_env("BZN_SANITIZE") && !strcmp(tu_env("BZN_SANITIZE"), "1")) {
        fprintf(stderr, "sanitizer build: the valgrind case runs in the plain build\n");
        return;
    }
    if (tu_run("command -v valgrind >/dev/null") != 0 && tu_missing("valgrind")) return;
    /* valgrind does not emulate AVX-512: keep OpenBLAS on its AVX2 kernels */
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && OPENBLAS_CORETYPE=Haswell valgrind -q --error-exitcode=99 --leak-check=full "
             "--errors-for-leak-kinds=definite '%s' segment -m \"%s/models/blazeneo-dha-neopolyp-small-f16.bzn\" -s 64 "
             "--overlay --aux -o vg \"%s/samples/16d4ca6160127cd1d5ff99c267599fc4.jpeg\" > vg.log 2>&1",
             tmp, cli, src, src);
    int rc = tu_run("%s", cmd);
    if (rc != 0) tu_run("cat '%s/vg.log' >&2", tmp);
    ck_assert_int_eq(rc, 0);

    /* INT8: calibrate on the sample frames (outside valgrind), then segment with the cache under
       valgrind, with the AVX2 int8 kernel (valgrind has no AVX-512) */
    ck_assert_int_eq(run("calibrate -q -m " MODEL " -s 64 --images \"$BZN_SOURCE_DIR/samples\" -o vg.cache"), 0);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && OPENBLAS_CORETYPE=Haswell BZN_INT8_KERNEL=avx2 valgrind -q --error-exitcode=99 "
             "--leak-check=full --errors-for-leak-kinds=definite '%s' segment -m "
             "\"%s/models/blazeneo-dha-neopolyp-small-f16.bzn\" -s 64 -p int8 --calib vg.cache -o vg8 "
             "\"%s/samples/16d4ca6160127cd1d5ff99c267599fc4.jpeg\" > vg8.log 2>&1",
             tmp, cli, src, src);
    rc = tu_run("%s", cmd);
    if (rc != 0) tu_run("cat '%s/vg8.log' >&2", tmp);
    ck_assert_int_eq(rc, 0);
}
END_TEST

int main(void) {
    cli = tu_env("BZN_CLI");
    src = tu_env("BZN_SOURCE_DIR");
    if (!cli || !src) {
        fprintf(stderr, "test_cli: run through ctest (BZN_CLI and BZN_SOURCE_DIR unset)\n");
        return 1;
    }
    tmp = tu_tmpdir("cli");
    Suite *s = suite_create("cli");
    TCase *tc = tu_case(s, "cli", 900);
    tcase_add_test(tc, usage_errors);
    tcase_add_test(tc, bad_models);
    tcase_add_test(tc, bad_images);
    tcase_add_test(tc, segment_samples);
    tcase_add_test(tc, convert_errors);
    tcase_add_test(tc, info_and_trace);
    tcase_add_test(tc, segment_under_valgrind);
    const int failed = tu_run_suite(s);
    free(tmp);
    return failed;
}
