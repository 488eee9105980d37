/*
 * test_cli.c - the blazeneo command line as a user meets it: exit statuses (0 ok, 1 bad
 * input, 2 usage), clear messages for everything a user can get wrong, outputs never left
 * half-written, and one segment run under valgrind.
 */
#include <check.h>
#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blazeneo.h"
#include "cli.h"

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
        tu_skip_case(__func__, "sanitizer build: valgrind runs in the plain build");
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
             "cd '%s' && OPENBLAS_CORETYPE=Haswell BZN_ISA=avx2 valgrind -q --error-exitcode=99 "
             "--leak-check=full --errors-for-leak-kinds=definite '%s' segment -m "
             "\"%s/models/blazeneo-dha-neopolyp-small-f16.bzn\" -s 64 -p int8 --calib vg.cache -o vg8 "
             "\"%s/samples/16d4ca6160127cd1d5ff99c267599fc4.jpeg\" > vg8.log 2>&1",
             tmp, cli, src, src);
    rc = tu_run("%s", cmd);
    if (rc != 0) tu_run("cat '%s/vg8.log' >&2", tmp);
    ck_assert_int_eq(rc, 0);
}
END_TEST

/* ---- hardening: outputs that are not regular files, write errors, names, signals ---------- */

#define CAL1 "calibrate -q -m " MODEL " -s 64 --images cal1 -o "

static void make_cal1(void) {
    ck_assert_int_eq(tu_run("mkdir -p '%s/cal1' && cp \"%s/samples/16d4ca6160127cd1d5ff99c267599fc4.jpeg\" '%s/cal1/'",
                            tmp, src, tmp), 0);
}

static int no_temporaries(const char *dir) { return tu_run("ls -a '%s' | grep -q '\\.tmp\\.'", dir) == 1; }

/* A device, FIFO or "-" is written in place (never replaced by a regular file), its write
 * errors reported; a symbolic link is followed, the link itself kept. */
START_TEST(output_targets) {
    make_cal1();
    struct stat st;
    /* a character device, named directly and through a link in our folder */
    ck_assert_int_eq(run(CAL1 "/dev/full"), 1);
    ck_assert_msg(strstr(out, "cannot write '/dev/full': No space left on device"), "%s", out);
    ck_assert_ptr_null(strstr(out, "wrote"));
    ck_assert_int_eq(tu_run("ln -sf /dev/full '%s/full.cache'", tmp), 0);
    ck_assert_int_eq(run(CAL1 "full.cache"), 1);
    ck_assert_msg(strstr(out, "No space left on device"), "%s", out);
    ck_assert_int_eq(lstat(tu_path(tmp, "full.cache"), &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    ck_assert_int_eq(stat("/dev/full", &st), 0);
    ck_assert(S_ISCHR(st.st_mode));
    /* a PNG through such a link: the real cause, not libpng's "Write Error" */
    ck_assert_int_eq(tu_run("mkdir -p '%s/pngfull' && ln -sf /dev/full '%s/pngfull/16d4ca6160127cd1d5ff99c267599fc4.png'",
                            tmp, tmp), 0);
    ck_assert_int_eq(run("segment -q -m " MODEL " -s 64 -o pngfull " SAMPLE), 1);
    ck_assert_msg(strstr(out, "No space left on device"), "%s", out);
    ck_assert_int_eq(lstat(tu_path(tmp, "pngfull/16d4ca6160127cd1d5ff99c267599fc4.png"), &st), 0);
    ck_assert(S_ISLNK(st.st_mode));

    /* a FIFO: the reader gets the cache, the FIFO stays a FIFO */
    ck_assert_int_eq(tu_run("cd '%s' && mkfifo pipe.cache && (cat pipe.cache > from-pipe.txt &)", tmp), 0);
    ck_assert_int_eq(run(CAL1 "pipe.cache"), 0);
    ck_assert_int_eq(lstat(tu_path(tmp, "pipe.cache"), &st), 0);
    ck_assert(S_ISFIFO(st.st_mode));
    char text[8192] = "";
    for (int i = 0; i < 500 && !strstr(text, "input: "); i++) { /* cat finishes once we closed it */
        tu_run("sleep 0.01");
        tu_slurp(tu_path(tmp, "from-pipe.txt"), text, sizeof text);
    }
    ck_assert_msg(!strncmp(text, "TRT-7103-EntropyCalibration2\n", 29), "%s", text);

    /* a symbolic link to a regular file, and a dangling one: the file named is written */
    ck_assert_int_eq(tu_run("cd '%s' && echo old > real.cache && ln -sf real.cache link.cache && "
                            "ln -sf made.cache dangling.cache", tmp), 0);
    ck_assert_int_eq(run(CAL1 "link.cache"), 0);
    ck_assert_int_eq(lstat(tu_path(tmp, "link.cache"), &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    tu_slurp(tu_path(tmp, "real.cache"), text, sizeof text);
    ck_assert_msg(!strncmp(text, "TRT-7103-", 9), "%s", text);
    ck_assert_int_eq(run(CAL1 "dangling.cache"), 0);
    tu_slurp(tu_path(tmp, "made.cache"), text, sizeof text);
    ck_assert_msg(!strncmp(text, "TRT-7103-", 9), "%s", text);

    /* "-": the cache on stdout, the summary on stderr */
    ck_assert_int_eq(tu_cli_io(tmp, NULL, tu_path(tmp, "stdout.txt"), out, sizeof out,
                               "calibrate -m " MODEL " -s 64 --images cal1 -o -"), 0);
    tu_slurp(tu_path(tmp, "stdout.txt"), text, sizeof text);
    ck_assert_msg(!strncmp(text, "TRT-7103-EntropyCalibration2\n", 29), "%s", text);
    ck_assert_ptr_null(strstr(text, "calibrated"));
    ck_assert_ptr_nonnull(strstr(out, "calibrated"));
    ck_assert(no_temporaries(tmp));
}
END_TEST

/* A write that fails on a regular file (here: over the file size limit, as on a full disk)
 * names the user's file and the real cause, and leaves neither the file nor a temporary. */
START_TEST(write_errors_name_the_cause) {
    make_cal1();
    ck_assert_int_eq(tu_run("mkdir -p '%s/fsz' && cd '%s' && (trap '' XFSZ; ulimit -f 2; \"$BZN_CLI\" " CAL1
                            "fsz/big.cache > fsz.log 2>&1); test $? = 1", tmp, tmp), 0);
    tu_slurp(tu_path(tmp, "fsz.log"), out, sizeof out);
    ck_assert_msg(strstr(out, "cannot write 'fsz/big.cache': File too large"), "%s", out);
    ck_assert_int_eq(tu_run("test -e '%s/fsz/big.cache'", tmp), 1);
    ck_assert(no_temporaries(tu_path(tmp, "fsz")));
    if (!tu_have_shared()) {
        tu_missing("../shared (the trained checkpoint)");
        return;
    }
    /* convert: no internal ".partial" name, no "Input/output error" */
    ck_assert_int_eq(tu_run("cd '%s' && (trap '' XFSZ; ulimit -f 2048; \"$BZN_CLI\" convert "
                            "\"$BZN_SHARED_DIR/models/blazeneo-dha-neopolyp-small.pth\" fsz/model.bzn > conv.log 2>&1); "
                            "test $? = 1", tmp), 0);
    tu_slurp(tu_path(tmp, "conv.log"), out, sizeof out);
    ck_assert_msg(strstr(out, "cannot write 'fsz/model.bzn': File too large"), "%s", out);
    ck_assert_ptr_null(strstr(out, "partial"));
    ck_assert_int_eq(tu_run("test -e '%s/fsz/model.bzn'", tmp), 1);
    ck_assert(no_temporaries(tu_path(tmp, "fsz")));
}
END_TEST

/* Every command's standard output is checked: a full disk under it is exit 1 and a message. */
START_TEST(stdout_write_errors) {
    static const char *cmds[] = {"info " MODEL, "info --tensors " MODEL, "info --layers " MODEL, "--help",
                                 "info --help", "--version",
                                 "eval -q -t 1 -s 64 -m " MODEL " --images \"$BZN_SOURCE_DIR/tests/data/eval/images\" "
                                 "--masks \"$BZN_SOURCE_DIR/tests/data/eval/masks\" --json"};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        ck_assert_int_eq(tu_cli_io(tmp, NULL, "/dev/null", out, sizeof out, "%s", cmds[i]), 0);
        const int rc = tu_cli_io(tmp, NULL, "/dev/full", out, sizeof out, "%s", cmds[i]);
        ck_assert_msg(rc == 1, "'%s' > /dev/full exited %d", cmds[i], rc);
        ck_assert_msg(strstr(out, "standard output: No space left on device"), "'%s': %s", cmds[i], out);
    }
    if (!tu_have_shared()) {
        tu_missing("../shared (the trained checkpoint)");
        return;
    }
    const int rc = tu_cli_io(tmp, NULL, "/dev/full", out, sizeof out,
                             "convert \"$BZN_SHARED_DIR/models/blazeneo-dha-neopolyp-small.pth\" conv-stdout.bzn");
    ck_assert_msg(rc == 1 && strstr(out, "No space left on device"), "convert: %d %s", rc, out);
}
END_TEST

/* Inputs whose outputs would collide (`a.jpg` with --overlay beside `a_overlay.jpg`) are
 * refused before anything runs, naming both. */
START_TEST(segment_output_collisions) {
    ck_assert_int_eq(tu_run("mkdir -p '%s/coll' && cd '%s/coll' && for n in a.jpg a_overlay.jpg b.jpg b_aux.jpeg; do "
                            "cp \"%s/samples/16d4ca6160127cd1d5ff99c267599fc4.jpeg\" $n; done", tmp, tmp, src), 0);
    ck_assert_int_eq(run("segment -q -m " MODEL " -s 64 --overlay -o coll_out coll"), 1);
    ck_assert_msg(strstr(out, "would both write 'a_overlay.png'"), "%s", out);
    ck_assert_int_eq(tu_run("test -e '%s/coll_out/a.png'", tmp), 1);
    ck_assert_int_eq(run("segment -q -m " MODEL " -s 64 --aux -o coll_out coll"), 1);
    ck_assert_msg(strstr(out, "would both write 'b_aux.png'"), "%s", out);
    ck_assert_int_eq(run("segment -q -m " MODEL " -s 64 -o coll_out coll"), 0); /* no suffixes: no collision */
    ck_assert_int_eq(tu_run("mkdir -p '%s/same' && cp '%s/coll/a.jpg' '%s/same/x.jpg' && cp '%s/coll/a.jpg' "
                            "'%s/same/x.jpeg'", tmp, tmp, tmp, tmp, tmp), 0);
    ck_assert_int_eq(run("segment -q -m " MODEL " -s 64 -o same_out same"), 1);
    ck_assert_msg(strstr(out, "would both write 'x.png'"), "%s", out);
}
END_TEST

/* SIGTERM (or SIGINT) while an output is being written removes its temporary file, and the
 * process still dies of the signal. The writer and the CLI's handler, in a child process. */
START_TEST(signal_removes_temporaries) {
    char *dir = tu_tmpdir("signal");
    for (int k = 0; k < 2; k++) {
        const int sig = k ? SIGINT : SIGTERM;
        int ready[2];
        ck_assert_int_eq(pipe(ready), 0);
        const pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            cli_catch_fatal_signals();
            bzn_writer *w;
            if (bzn_writer_open(tu_path(dir, "model.bzn"), &w, NULL) != BZN_OK) _exit(3);
            static char block[1 << 20];
            fwrite(block, 1, sizeof block, bzn_writer_stream(w));
            fflush(bzn_writer_stream(w));
            if (write(ready[1], "x", 1) != 1) _exit(4);
            for (;;) pause();
        }
        char c;
        ck_assert_int_eq(read(ready[0], &c, 1), 1);
        close(ready[0]);
        close(ready[1]);
        ck_assert(!no_temporaries(dir)); /* the temporary file is there, half written */
        kill(pid, sig);
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == sig);
        ck_assert(no_temporaries(dir));
        ck_assert_int_eq(tu_run("test -e '%s/model.bzn'", dir), 1);
    }
    free(dir);
}
END_TEST

/* ---- the overlay, precision notes, progress, skips, cosmetics ---------------------------- */

#define STEM "16d4ca6160127cd1d5ff99c267599fc4"


/* segment --overlay draws bzn_overlay_draw's picture with the style the options say (the
 * default: blend, outline, legend); --aux's map gets the probability scale */
START_TEST(segment_overlay_options) {
    bzn_error e;
    bzn_image frame;
    ck_assert_int_eq(bzn_image_load_jpeg(tu_path(src, "samples/" STEM ".jpeg"), &frame, &e), BZN_OK);
    const size_t n = (size_t)frame.width * frame.height;
    uint8_t *classes = malloc(n), *want = malloc(3 * n);
    ck_assert(classes && want);
    static const struct {
        const char *options;
        float alpha;
        int outline, legend;
    } styles[] = {
        {"", 0.45f, BZN_OVERLAY_AUTO, BZN_LEGEND_TOP_LEFT},
        {"--alpha 0.3 --outline 5 --legend br", 0.3f, 5, BZN_LEGEND_BOTTOM_RIGHT},
        {"--alpha 0 --no-outline --no-legend", 0.0f, 0, BZN_LEGEND_NONE},
    };
    for (int k = 0; k < 3; k++) {
        ck_assert_msg(run("segment -q -m " MODEL " -s 64 --overlay --aux %s -o ov%d " SAMPLE, styles[k].options, k) == 0,
                      "%s", out);
        char path[64];
        int w, h;
        snprintf(path, sizeof path, "ov%d/" STEM ".png", k);
        uint8_t *mask = tu_read_png(tu_path(tmp, path), 3, &w, &h, NULL);
        ck_assert_ptr_nonnull(mask);
        ck_assert(w == frame.width && h == frame.height);
        bzn_mask_to_classes(mask, n, classes);
        free(mask);
        bzn_overlay_style st = bzn_overlay_default_style();
        st.alpha = styles[k].alpha;
        st.outline = styles[k].outline;
        st.legend = (bzn_legend_corner)styles[k].legend;
        ck_assert_int_eq(bzn_overlay_draw(frame.pixels, classes, w, h, &st, want, &e), BZN_OK);
        snprintf(path, sizeof path, "ov%d/" STEM "_overlay.png", k);
        uint8_t *got = tu_read_png(tu_path(tmp, path), 3, &w, &h, NULL);
        ck_assert_ptr_nonnull(got);
        ck_assert_msg(memcmp(got, want, 3 * n) == 0, "segment --overlay %s", styles[k].options);
        if (k == 2) ck_assert(memcmp(got, frame.pixels, 3 * n) == 0); /* nothing drawn at all */
        free(got);
    }
    /* the aux map: the probability scale in the legend's corner, none with --no-legend */
    int w, h;
    uint8_t *aux = tu_read_png(tu_path(tmp, "ov0/" STEM "_aux.png"), 1, &w, &h, NULL);
    uint8_t *bare = tu_read_png(tu_path(tmp, "ov2/" STEM "_aux.png"), 1, &w, &h, NULL);
    ck_assert(aux && bare);
    ck_assert(memcmp(aux, bare, n) != 0);
    ck_assert_int_eq(bzn_grey_scale_draw(bare, w, h, BZN_LEGEND_TOP_LEFT, &e), BZN_OK);
    ck_assert(memcmp(aux, bare, n) == 0);
    free(aux);
    free(bare);
    /* the options are for --overlay (the legend ones for --aux too), with valid values */
    ck_assert_int_eq(run("segment -q -m " MODEL " -s 64 --alpha 0.5 -o ov " SAMPLE), 2);
    ck_assert_msg(strstr(out, "--alpha is for --overlay"), "%s", out);
    ck_assert_int_eq(run("segment -q -m " MODEL " -s 64 --no-legend -o ov " SAMPLE), 2);
    ck_assert_msg(strstr(out, "--no-legend is for --overlay or --aux"), "%s", out);
    ck_assert_int_eq(run("segment -q -m " MODEL " -s 64 --overlay --alpha half -o ov " SAMPLE), 2);
    ck_assert_int_eq(run("segment -q -m " MODEL " -s 64 --overlay --outline 65 -o ov " SAMPLE), 2);
    ck_assert_int_eq(run("segment -q -m " MODEL " -s 64 --overlay --legend left -o ov " SAMPLE), 2);
    ck_assert_msg(strstr(out, "tl, tr, bl, br"), "%s", out);
    free(classes);
    free(want);
    bzn_image_free(&frame);
}
END_TEST

/* An INT8 weight file runs INT8 unless told otherwise, and every running command says which
 * precision runs and why; -p fp32 on it is allowed and said to be the dequantized weights. */
START_TEST(precision_of_the_weight_file) {
    make_cal1();
    ck_assert_msg(run(CAL1 "q.cache") == 0, "%s", out);
    ck_assert_msg(run("quantize -m " MODEL " --calib q.cache -o q.bzn") == 0, "%s", out);
    bzn_error e;
    bzn_model *q;
    ck_assert_int_eq(bzn_model_open(tu_path(tmp, "q.bzn"), &q, &e), BZN_OK);
    bzn_model_info qi;
    bzn_model_get_info(q, &qi);
    ck_assert_int_eq(qi.precision, BZN_PRECISION_INT8);
    ck_assert_int_eq(bzn_ctx_default_options(q).precision, BZN_PRECISION_INT8);
    bzn_model_free(q);

    ck_assert_msg(run("segment -m q.bzn -s 64 -o p_default " SAMPLE) == 0, "%s", out);
    ck_assert_msg(strstr(out, "blazeneo segment: precision int8 (from the weight file)"), "%s", out);
    ck_assert_msg(run("segment -m q.bzn -s 64 -p int8 -o p_int8 " SAMPLE) == 0, "%s", out);
    ck_assert_msg(strstr(out, "precision int8 (-p int8)"), "%s", out);
    ck_assert_msg(run("segment -m q.bzn -s 64 -p fp32 -o p_fp32 " SAMPLE) == 0, "%s", out);
    ck_assert_msg(strstr(out, "precision fp32 (-p fp32: this INT8 weight file's weights dequantized"), "%s", out);
    /* the default really is INT8: the same mask as -p int8 */
    size_t n1, n2;
    uint8_t *a = tu_read_file(tu_path(tmp, "p_default/" STEM ".png"), &n1),
            *b = tu_read_file(tu_path(tmp, "p_int8/" STEM ".png"), &n2);
    ck_assert(a && b && n1 == n2 && memcmp(a, b, n1) == 0);
    free(a);
    free(b);
    ck_assert_msg(run("segment -q -m q.bzn -s 64 -o p_quiet " SAMPLE) == 0, "%s", out);
    ck_assert_msg(!strstr(out, "precision"), "-q: %s", out);
    /* an FP32 model: FP32, or INT8 with a cache (--calib alone implies -p int8) */
    ck_assert_msg(run("segment -m " MODEL " -s 64 -o p_f " SAMPLE) == 0, "%s", out);
    ck_assert_msg(strstr(out, "precision fp32 (from the weight file)"), "%s", out);
    ck_assert_msg(run("segment -m " MODEL " -s 64 --calib q.cache -o p_c " SAMPLE) == 0, "%s", out);
    ck_assert_msg(strstr(out, "precision int8 (--calib, activation scales from q.cache)"), "%s", out);
    ck_assert_int_eq(run("segment -m " MODEL " -s 64 -p fp32 --calib q.cache -o p_c " SAMPLE), 1);
    ck_assert_msg(strstr(out, "--calib is for -p int8"), "%s", out);
    /* INT8 with the auxiliary head needs its scales: said how to get them */
    ck_assert_int_eq(run("segment -m q.bzn -s 64 --aux -o p_aux " SAMPLE), 1);
    ck_assert_msg(strstr(out, "calibrate --aux, then quantize; or -p fp32"), "%s", out);
    /* the other commands */
    ck_assert_msg(run("eval -m q.bzn -s 64 -t 1 --images \"$BZN_SOURCE_DIR/tests/data/eval/images\" "
                      "--masks \"$BZN_SOURCE_DIR/tests/data/eval/masks\"") == 0, "%s", out);
    ck_assert_msg(strstr(out, "blazeneo eval: precision int8 (from the weight file)") && strstr(out, "cpu/int8"), "%s", out);
    ck_assert_msg(run("bench -m q.bzn -s 64 -n 1 --warmup 0 -t 1") == 0, "%s", out);
    ck_assert_msg(strstr(out, "blazeneo bench: precision int8 (from the weight file)") && strstr(out, "precision int8"),
                  "%s", out);
    ck_assert_msg(run("stream -m q.bzn -W 96 -H 64 -s 64 -t 1") == 0, "%s", out);
    ck_assert_msg(strstr(out, "blazeneo stream: precision int8 (from the weight file)"), "%s", out);
    ck_assert_msg(run("trace -m q.bzn -s 64 " SAMPLE " -o p_tr") == 0, "%s", out);
    ck_assert_msg(strstr(out, "blazeneo trace: precision int8 (from the weight file)"), "%s", out);
    ck_assert_int_eq(tu_run("test -e '%s/p_tr/main.npy' && test ! -e '%s/p_tr/aux.npy'", tmp, tmp), 0);
    ck_assert_msg(run("calibrate -m q.bzn -s 64 --images cal1 -o p.cache") == 0, "%s", out);
    ck_assert_msg(strstr(out, "precision fp32 (calibration measures the FP32 network; this INT8 weight file's weights "
                              "dequantized to float)"), "%s", out);
    ck_assert_msg(run("info q.bzn") == 0, "%s", out);
    ck_assert_msg(strstr(out, "\nprecision   : int8 (an INT8 weight file"), "%s", out);
    ck_assert_msg(run("info " MODEL) == 0, "%s", out);
    ck_assert_msg(strstr(out, "\nprecision   : fp32"), "%s", out);
}
END_TEST

/* calibrate shows its progress while it computes the thresholds (after the last frame) */
/* precisions a backend lacks, and the CUDA backend where this build has it but no GPU answers */
START_TEST(backend_precisions_and_devices) {
    ck_assert_int_eq(run("segment -m " MODEL " -s 64 -b cpu -p fp16 -o pp " SAMPLE), 1);
    ck_assert_msg(strstr(out, "backend 'cpu' does not run fp16 (it runs: fp32, int8)"), "%s", out);
    ck_assert_int_eq(run("segment -m " MODEL " -s 64 -p bf16 -o pp " SAMPLE), 2);
    ck_assert_msg(strstr(out, "unknown precision 'bf16' (fp32, tf32, fp16, int8)"), "%s", out);
    ck_assert_int_eq(run("bench -m " MODEL " --device x"), 2);
    ck_assert_msg(strstr(out, "invalid --device 'x'"), "%s", out);
    int has_cuda = 0;
    for (int i = 0; i < bzn_backend_count(); i++) has_cuda |= !strcmp(bzn_backend_name(i), "cuda");
    if (!has_cuda) return; /* a build without BLAZENEO_CUDA */
    const int rc = run("segment -m " MODEL " -s 64 -b cuda -p fp16 -o pc " SAMPLE);
    if (rc == 0) return; /* a GPU: test_cuda covers it */
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(out, "blazeneo segment: cuda: ") && strstr(out, "CUDA error"), "%s", out);
}
END_TEST

START_TEST(calibrate_progress) {
    make_cal1();
    ck_assert_msg(run("calibrate -m " MODEL " -s 64 --images cal1 -o prog.cache") == 0, "%s", out);
    const char *frames = strstr(out, "[1/1]"), *first = strstr(out, "computing thresholds: "),
               *last = strstr(out, "computing thresholds: 124/124 tensors (upsample_2)");
    ck_assert_msg(frames && first && last && frames < first && first <= last, "%s", out);
    ck_assert_msg(strstr(last, "calibrated 124 tensors"), "%s", out);
    ck_assert_msg(run("calibrate -q -m " MODEL " -s 64 --images cal1 -o prog.cache") == 0, "%s", out);
    ck_assert_msg(!strstr(out, "computing thresholds"), "-q: %s", out);
}
END_TEST

/* The last line of a file's text (without its newline) into buf. */
static void last_line(const char *text, char *buf, size_t size) {
    size_t n = strlen(text);
    while (n && text[n - 1] == '\n') n--;
    size_t start = n;
    while (start && text[start - 1] != '\n') start--;
    snprintf(buf, size, "%.*s", (int)(n - start), text + start);
}

/* A skipped test ends with one line saying why; a test that skipped some cases ends with their
 * names and reasons. (The tests themselves, run with what they need made absent.) */
START_TEST(skips_say_why) {
    const char *build = tu_env("BZN_BUILD_DIR");
    ck_assert_ptr_nonnull(build);
    char line[4096];
    const int rc = tu_run("cd '%s' && env -u CI BZN_SHARED_DIR=/nonexistent '%s/tests/test_accuracy' > skip1.log 2>&1",
                          tmp, build);
    ck_assert_int_eq(rc, TU_SKIP);
    tu_slurp(tu_path(tmp, "skip1.log"), out, sizeof out);
    last_line(out, line, sizeof line);
    ck_assert_msg(!strncmp(line, "SKIPPED: test_accuracy: needs ../shared", 39), "last line: '%s'", line);
    ck_assert_int_eq(tu_run("cd '%s' && env -u CI BZN_PYTHON=/nonexistent/python3 '%s/tests/test_image' > skip2.log 2>&1",
                            tmp, build), 0);
    tu_slurp(tu_path(tmp, "skip2.log"), out, sizeof out);
    last_line(out, line, sizeof line);
    ck_assert_msg(!strncmp(line, "skipped cases: ", 15) && strstr(line, "test_decode_matches_pil (needs python3-pil)"),
                  "last line: '%s'", line);
    ck_assert_msg(strstr(out, "100%: Checks:"), "%s", out); /* the skipped cases pass */
}
END_TEST

/* Column of the description on the help line that starts with `opt` (-1: no such line). */
static int help_column(const char *help, const char *opt) {
    char key[128];
    snprintf(key, sizeof key, "\n  %s ", opt);
    const char *p = strstr(help, key);
    if (!p) return -1;
    p += 1;
    const char *q = p + 2 + strlen(opt);
    while (*q == ' ') q++;
    return (int)(q - p);
}

/* Directory arguments ending in '/' give no double slashes; help columns line up; `info`'s
 * lines align; an unknown option is one message */
START_TEST(cosmetics) {
    char buf[64];
    ck_assert_int_eq(cli_path_join(buf, sizeof buf, "out/", "%s.png", "x"), 0);
    ck_assert_str_eq(buf, "out/x.png");
    ck_assert_int_eq(cli_path_join(buf, sizeof buf, "out//", "x"), 0);
    ck_assert_str_eq(buf, "out/x");
    ck_assert_int_eq(cli_path_join(buf, sizeof buf, "out", "x"), 0);
    ck_assert_str_eq(buf, "out/x");
    ck_assert_int_eq(cli_path_join(buf, sizeof buf, "/", "x"), 0);
    ck_assert_str_eq(buf, "/x");
    ck_assert_int_eq(cli_path_join(buf, sizeof buf, "", "x"), 0);
    ck_assert_str_eq(buf, "x");
    ck_assert_int_eq(cli_path_join(buf, 8, "abcdef", "ghij"), -1);

    ck_assert_int_eq(tu_run("mkdir -p '%s/slash' && cp \"%s/samples/" STEM ".jpeg\" \"%s/samples/"
                            "25605da2023387fd56c04414eaa922bc.jpeg\" '%s/slash/'", tmp, src, src, tmp), 0);
    ck_assert_msg(run("segment -m " MODEL " -s 64 -o slash_out/ slash/") == 0, "%s", out);
    ck_assert_msg(!strstr(out, "//"), "%s", out);
    ck_assert_msg(strstr(out, "slash/" STEM ".jpeg"), "%s", out);
    ck_assert_int_eq(tu_run("test -e '%s/slash_out/" STEM ".png'", tmp), 0);
    ck_assert_msg(run("eval -t 1 -s 64 -m " MODEL " --images \"$BZN_SOURCE_DIR/tests/data/eval/images/\" "
                      "--masks \"$BZN_SOURCE_DIR/tests/data/eval/masks/\" --report rep/") == 0, "%s", out);
    ck_assert_msg(strstr(out, "report in rep/index.html") && !strstr(out, "//"), "%s", out);

    /* the top-level usage: every description in one column */
    ck_assert_int_eq(run("--help"), 0);
    const int col = help_column(out, "calibrate");
    static const char *cmds[] = {"convert", "eval", "info", "segment", "quantize", "sensitivity", "trace", "bench", "stream"};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        ck_assert_msg(help_column(out, cmds[i]) == col, "%s: column %d, not %d\n%s", cmds[i], help_column(out, cmds[i]),
                      col, out);
    /* -p, --precision and the overlay options line up with each command's other options */
    static const char *helps[] = {"segment", "bench", "stream", "trace"};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(run("%s --help", helps[i]), 0);
        const int c = help_column(out, "-m, --model FILE");
        ck_assert_int_gt(c, 0);
        ck_assert_msg(help_column(out, "-p, --precision P") == c && help_column(out, "--calib CACHE") == c &&
                          help_column(out, "--keep-fp32 NAMES") == c,
                      "%s --help:\n%s", helps[i], out);
        if (i == 0 || i == 2)
            ck_assert_msg(help_column(out, "--alpha A") == c && help_column(out, "--legend CORNER") == c, "%s --help:\n%s",
                          helps[i], out);
    }
    /* info: "at WxH" padded like the other labels */
    ck_assert_int_eq(run("info " MODEL), 0);
    ck_assert_msg(strstr(out, "\nat 352x352  : 11.034 GMAC"), "%s", out);
    ck_assert_int_eq(run("info -s 1024x768 " MODEL), 0);
    ck_assert_msg(strstr(out, "\nat 1024x768 : "), "%s", out);
    /* an unknown option or a missing argument: getopt's words once, then the hint */
    static const char *all[] = {"calibrate", "convert", "eval", "info", "segment", "quantize", "sensitivity", "trace",
                                "bench", "stream"};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        ck_assert_int_eq(run("%s --no-such-option", all[i]), 2);
        char want[256];
        snprintf(want, sizeof want, "blazeneo %s: unrecognized option '--no-such-option'\nTry 'blazeneo %s --help'.\n",
                 all[i], all[i]);
        ck_assert_msg(!strcmp(out, want), "%s: '%s'", all[i], out);
    }
    ck_assert_int_eq(run("segment -m"), 2);
    ck_assert_msg(!strcmp(out, "blazeneo segment: option requires an argument -- 'm'\nTry 'blazeneo segment --help'.\n"),
                  "'%s'", out);
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
    tcase_add_test(tc, output_targets);
    tcase_add_test(tc, write_errors_name_the_cause);
    tcase_add_test(tc, stdout_write_errors);
    tcase_add_test(tc, segment_output_collisions);
    tcase_add_test(tc, signal_removes_temporaries);
    tcase_add_test(tc, segment_overlay_options);
    tcase_add_test(tc, precision_of_the_weight_file);
    tcase_add_test(tc, backend_precisions_and_devices);
    tcase_add_test(tc, calibrate_progress);
    tcase_add_test(tc, skips_say_why);
    tcase_add_test(tc, cosmetics);
    const int failed = tu_run_suite(s);
    free(tmp);
    return failed;
}
