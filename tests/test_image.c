/*
 * test_image.c - JPEG decoding, PNG writing, the PIL-compatible resize, colour masks.
 *
 * The resize and the decoder are compared with PIL (tests/ref/pil_resize.py run by
 * $BZN_PYTHON) on the sample frames in samples/; those cases return early with a note
 * when PIL is not available. Everything else needs only the C library.
 */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jpeglib.h> /* after stdio.h: the tests encode JPEGs of their own */

#include "blazeneo.h"
#include "testutil.h"

/* The sample frames (NeoPolyp-Small dev-test) and their sizes. */
static const struct {
    const char *name;
    int width, height;
} samples[] = {
    {"16d4ca6160127cd1d5ff99c267599fc4.jpeg", 1280, 995},
    {"9ccf01a1b73b5f8ef0693db713abd61d.jpeg", 1280, 977},
    {"25605da2023387fd56c04414eaa922bc.jpeg", 1280, 959},
    {"68f9d4c331587f9b9d49e2f4ee179798.jpeg", 1280, 969},
};
#define NSAMPLES ((int)(sizeof samples / sizeof samples[0]))

/* ---- helpers ---------------------------------------------------------------------- */

static const char *source_dir(void) {
    const char *d = tu_env("BZN_SOURCE_DIR");
    ck_assert_msg(d != NULL, "BZN_SOURCE_DIR is not set (run the tests through ctest)");
    return d;
}

static const char *sample_path(int i) {
    return tu_path(source_dir(), tu_path("samples", samples[i].name));
}

/* PIL is needed for the comparison tests; without it they pass with a note. */
static int have_pil(const char *test) {
    if (tu_have_python("PIL")) return 1;
    fprintf(stderr, "note: %s: BZN_PYTHON (%s) cannot import PIL\n", test,
            tu_env("BZN_PYTHON") ? tu_env("BZN_PYTHON") : "unset");
    tu_missing_in(test, "python3-pil");
    return 0;
}

/* PIL's Image.open(path).convert("RGB").resize((w, h), BILINEAR) as w*h*3 bytes. */
static uint8_t *pil_resize(const char *image, int w, int h, const char *tmpdir) {
    const char *out = tu_path(tmpdir, "pil.raw");
    const char *script = tu_path(source_dir(), "tests/ref/pil_resize.py");
    int rc = tu_run("\"%s\" \"%s\" \"%s\" %d %d \"%s\"", tu_env("BZN_PYTHON"), script, image, w, h, out);
    ck_assert_msg(rc == 0, "%s failed (exit %d) on %s %dx%d", script, rc, image, w, h);
    size_t len = 0;
    uint8_t *data = tu_read_file(out, &len);
    ck_assert_msg(data != NULL, "cannot read %s", out);
    ck_assert_msg(len == (size_t)w * h * 3, "%s wrote %zu bytes, expected %dx%dx3", script, len, w, h);
    unlink(out);
    return data;
}

/* Compare with the reference, print the histogram of |differences|, return the max. */
static int compare_report(const char *what, const uint8_t *got, const uint8_t *want, size_t n) {
    size_t hist[3] = {0, 0, 0}; /* |d| = 0, 1, more */
    int maxd = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)got[i] - (int)want[i]);
        hist[d < 2 ? d : 2]++;
        if (d > maxd) maxd = d;
    }
    printf("%-58s max |diff| %3d   |d|=0: %zu  |d|=1: %zu  |d|>1: %zu\n", what, maxd, hist[0], hist[1],
           hist[2]);
    fflush(stdout);
    return maxd;
}

static void remove_dir(char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                const char *p = tu_path(dir, e->d_name);
                struct stat st;
                if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
                    rmdir(p);
                else
                    unlink(p);
            }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

static int count_entries(const char *dir) {
    int n = 0;
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

/* Deterministic pseudo-random bytes. */
static uint32_t lcg_state = 12345;
static uint8_t rnd8(void) {
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return (uint8_t)(lcg_state >> 24);
}


/* ---- decoding --------------------------------------------------------------------- */

START_TEST(test_decode_samples) {
    for (int i = 0; i < NSAMPLES; i++) {
        bzn_image img;
        bzn_error err = {0};
        bzn_status st = bzn_image_load_jpeg(sample_path(i), &img, &err);
        ck_assert_msg(st == BZN_OK, "%s: %s", samples[i].name, err.msg);
        ck_assert_int_eq(img.width, samples[i].width);
        ck_assert_int_eq(img.height, samples[i].height);
        ck_assert_int_eq(img.channels, 3);
        ck_assert_ptr_nonnull(img.pixels);

        /* decoding from memory gives the same pixels */
        size_t len = 0;
        uint8_t *data = tu_read_file(sample_path(i), &len);
        ck_assert_ptr_nonnull(data);
        bzn_image mem;
        ck_assert_int_eq(bzn_image_decode_jpeg(data, len, &mem, &err), BZN_OK);
        ck_assert_int_eq(mem.width, img.width);
        ck_assert_int_eq(mem.height, img.height);
        ck_assert(memcmp(mem.pixels, img.pixels, (size_t)img.width * img.height * 3) == 0);
        free(data);
        bzn_image_free(&mem);
        bzn_image_free(&img);
        ck_assert_ptr_null(img.pixels);
        bzn_image_free(&img); /* twice is harmless */
    }
    bzn_image_free(NULL);
}
END_TEST

/* Our decode against PIL's (both use libjpeg; a same-size resize is PIL's plain decode). */
START_TEST(test_decode_matches_pil) {
    if (!have_pil(__func__)) return;
    char *tmp = tu_tmpdir("image-pil-decode");
    ck_assert_ptr_nonnull(tmp);
    for (int i = 0; i < NSAMPLES; i++) {
        bzn_image img;
        bzn_error err = {0};
        ck_assert_msg(bzn_image_load_jpeg(sample_path(i), &img, &err) == BZN_OK, "%s", err.msg);
        uint8_t *ref = pil_resize(sample_path(i), img.width, img.height, tmp);
        char what[128];
        snprintf(what, sizeof what, "decode %.8s %dx%d", samples[i].name, img.width, img.height);
        int maxd = compare_report(what, img.pixels, ref, (size_t)img.width * img.height * 3);
        ck_assert_msg(maxd <= 1, "%s: decode differs from PIL by %d", samples[i].name, maxd);
        free(ref);
        bzn_image_free(&img);
    }
    remove_dir(tmp);
}
END_TEST

/* Greyscale, CMYK and progressive JPEGs (made by PIL from a sample) decode to the same RGB
 * as PIL's Image.open(...).convert("RGB"). */
START_TEST(test_decode_colour_spaces) {
    if (!have_pil(__func__)) return;
    char *tmp = tu_tmpdir("image-colour");
    ck_assert_ptr_nonnull(tmp);
    static const struct {
        const char *mode, *save_options;
    } kinds[] = {{"L", ""}, {"CMYK", ""}, {"RGB", ", progressive=True"}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        const char *jpg = tu_path(tmp, "conv.jpg");
        const char *raw = tu_path(tmp, "conv.raw");
        int rc = tu_run("\"%s\" -c 'import sys\nfrom PIL import Image\n"
                        "im = Image.open(sys.argv[1]).convert(\"%s\").resize((160, 120))\n"
                        "im.save(sys.argv[2], quality=90%s)\n"
                        "im = Image.open(sys.argv[2]).convert(\"RGB\")\n"
                        "open(sys.argv[3], \"wb\").write(im.tobytes())' \"%s\" \"%s\" \"%s\"",
                        tu_env("BZN_PYTHON"), kinds[k].mode, kinds[k].save_options, sample_path(0), jpg,
                        raw);
        ck_assert_int_eq(rc, 0);
        size_t len = 0;
        uint8_t *ref = tu_read_file(raw, &len);
        ck_assert_ptr_nonnull(ref);
        ck_assert_uint_eq(len, 160 * 120 * 3);
        bzn_image img;
        bzn_error err = {0};
        ck_assert_msg(bzn_image_load_jpeg(jpg, &img, &err) == BZN_OK, "%s JPEG: %s", kinds[k].mode,
                      err.msg);
        ck_assert_int_eq(img.width, 160);
        ck_assert_int_eq(img.height, 120);
        ck_assert_int_eq(img.channels, 3);
        char what[64];
        snprintf(what, sizeof what, "decode %s%s JPEG to RGB", kinds[k].mode,
                 kinds[k].save_options[0] ? " progressive" : "");
        ck_assert_int_le(compare_report(what, img.pixels, ref, len), 1);
        free(ref);
        bzn_image_free(&img);
        unlink(jpg);
        unlink(raw);
    }
    remove_dir(tmp);
}
END_TEST

/* Load `bytes` from a file called `name` and expect failure with `want`. */
static void expect_load_error(const char *dir, const char *name, const void *bytes, size_t len,
                              bzn_status want, const char *must_contain) {
    const char *path = tu_path(dir, name);
    ck_assert_int_eq(tu_write_file(path, bytes, len), 0);
    bzn_image img;
    bzn_error err = {0};
    bzn_status st = bzn_image_load_jpeg(path, &img, &err);
    printf("  %-22s -> %-16s %s\n", name, bzn_status_name(st), err.msg);
    fflush(stdout);
    ck_assert_msg(st == want, "%s: got status %s (%s), expected %s", name, bzn_status_name(st), err.msg,
                  bzn_status_name(want));
    ck_assert_int_eq(err.status, want);
    ck_assert_ptr_null(img.pixels);
    ck_assert_msg(strstr(err.msg, path) != NULL, "message does not name the file: %s", err.msg);
    if (must_contain)
        ck_assert_msg(strstr(err.msg, must_contain) != NULL, "message lacks '%s': %s", must_contain, err.msg);

    /* the same through the memory API */
    bzn_error err2 = {0};
    ck_assert_int_eq(bzn_image_decode_jpeg(bytes, len, &img, &err2), want);
    ck_assert_ptr_null(img.pixels);
    ck_assert(err2.msg[0] != '\0');
    unlink(path);
}

START_TEST(test_decode_errors) {
    char *tmp = tu_tmpdir("image-errors");
    ck_assert_ptr_nonnull(tmp);
    size_t len = 0;
    uint8_t *jpg = tu_read_file(sample_path(0), &len);
    ck_assert_ptr_nonnull(jpg);

    const char *text = "hello, this is not an image\n";
    expect_load_error(tmp, "cat.txt", text, strlen(text), BZN_ERR_FORMAT,
                      "not a JPEG file (starts with 0x68 0x65)");
    expect_load_error(tmp, "empty.jpg", "", 0, BZN_ERR_FORMAT, "empty");
    expect_load_error(tmp, "one.jpg", "\xff", 1, BZN_ERR_FORMAT, "not a JPEG");
    expect_load_error(tmp, "soi-only.jpg", "\xff\xd8", 2, BZN_ERR_FORMAT, NULL);
    expect_load_error(tmp, "soi-eoi.jpg", "\xff\xd8\xff\xd9", 4, BZN_ERR_FORMAT, NULL);

    /* truncated at several points, down to just the missing EOI marker */
    const double cuts[] = {0.001, 0.10, 0.50, 0.99};
    for (int i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "cut-%g.jpg", cuts[i] * 100);
        expect_load_error(tmp, name, jpg, (size_t)(len * cuts[i]), BZN_ERR_FORMAT, NULL);
    }
    expect_load_error(tmp, "no-eoi.jpg", jpg, len - 2, BZN_ERR_FORMAT, NULL);

    /* garbage after the SOI marker */
    uint8_t garbage[4096];
    garbage[0] = 0xFF;
    garbage[1] = 0xD8;
    for (size_t i = 2; i < sizeof garbage; i++) garbage[i] = rnd8();
    expect_load_error(tmp, "garbage.jpg", garbage, sizeof garbage, BZN_ERR_FORMAT, NULL);
    memset(garbage + 2, 0, sizeof garbage - 2);
    expect_load_error(tmp, "zeros.jpg", garbage, sizeof garbage, BZN_ERR_FORMAT, NULL);

    /* a PNG renamed .jpg */
    uint8_t px[4 * 4 * 3] = {0};
    const char *png = tu_path(tmp, "real.png");
    bzn_error err = {0};
    ck_assert_int_eq(bzn_image_write_png(png, px, 4, 4, 3, &err), BZN_OK);
    size_t plen = 0;
    uint8_t *pbytes = tu_read_file(png, &plen);
    ck_assert_ptr_nonnull(pbytes);
    expect_load_error(tmp, "renamed-png.jpg", pbytes, plen, BZN_ERR_FORMAT, "PNG");
    free(pbytes);
    unlink(png);

    /* frame size in the SOF0 header patched: too large, and zero height */
    size_t sof = 0;
    for (size_t i = 2; i + 9 < len && !sof; i++)
        if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) sof = i;
    ck_assert_msg(sof != 0, "no SOF0 marker in the sample");
    uint8_t *big = malloc(len);
    ck_assert_ptr_nonnull(big);
    memcpy(big, jpg, len);
    big[sof + 5] = 0x4E; /* height 20000 */
    big[sof + 6] = 0x20;
    big[sof + 7] = 0x4E; /* width 20000 */
    big[sof + 8] = 0x20;
    expect_load_error(tmp, "huge.jpg", big, len, BZN_ERR_UNSUPPORTED, "20000x20000");
    memcpy(big, jpg, len);
    big[sof + 5] = 0;
    big[sof + 6] = 0;
    expect_load_error(tmp, "zero-height.jpg", big, len, BZN_ERR_FORMAT, NULL);

    /* damaged entropy-coded data: must not crash; either decodes or is FORMAT */
    for (int k = 0; k < 8; k++) {
        memcpy(big, jpg, len);
        size_t at = len / 3 + (size_t)k * len / 16;
        for (int j = 0; j < 64; j++) big[at + (size_t)j] = rnd8();
        bzn_image img;
        bzn_status st = bzn_image_decode_jpeg(big, len, &img, &err);
        ck_assert_msg(st == BZN_OK || st == BZN_ERR_FORMAT, "damaged data: %s", err.msg);
        if (st == BZN_OK) {
            ck_assert_int_eq(img.width, 1280);
            bzn_image_free(&img);
        } else {
            ck_assert_ptr_null(img.pixels);
        }
    }
    free(big);

    /* missing file, directory, bad arguments */
    bzn_image img;
    ck_assert_int_eq(bzn_image_load_jpeg(tu_path(tmp, "missing.jpg"), &img, &err), BZN_ERR_IO);
    ck_assert_msg(strstr(err.msg, "missing.jpg") && strstr(err.msg, "No such file"), "%s", err.msg);
    ck_assert_int_eq(bzn_image_load_jpeg(tmp, &img, &err), BZN_ERR_IO);
    ck_assert_ptr_null(img.pixels);
    ck_assert_int_eq(bzn_image_load_jpeg(NULL, &img, &err), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_image_load_jpeg(sample_path(0), NULL, &err), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_image_decode_jpeg(NULL, 10, &img, &err), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_image_decode_jpeg(NULL, 0, &img, NULL), BZN_ERR_FORMAT);
    ck_assert_int_eq(bzn_image_decode_jpeg(jpg, len / 2, &img, NULL), BZN_ERR_FORMAT); /* err may be NULL */

    free(jpg);
    remove_dir(tmp);
}
END_TEST

/* ---- frame headers that claim a huge image (memory bounds) ---------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* A minimal JPEG written byte by byte: SOI, DQT (all ones), SOF`sof` (0xC0 baseline, 0xC2
 * progressive Huffman, 0xC9 sequential arithmetic, 0xCA progressive arithmetic) claiming
 * w x h with nc components (the first sampled `samp0`, e.g. 0x22, the others 1x1), for
 * Huffman a DC and an AC table that each hold one 1-bit code (symbol 0: a zero DC difference,
 * an end of block), one SOS over all components (a DC-first scan when progressive, a full
 * sequential scan otherwise), `ndata` bytes of entropy-coded data (zeros, or pseudo-random
 * bytes without 0xFF when `noise`), EOI. With zero data every bit is one valid block, so
 * ndata >= blocks / 8 makes a complete Huffman-coded image. Returns a malloc'd buffer. */
static uint8_t *craft_jpeg(int sof, int w, int h, int nc, int samp0, size_t ndata, int noise, size_t *len) {
    uint8_t *b = malloc(200 + ndata);
    ck_assert_ptr_nonnull(b);
    size_t n = 0;
    int arith = sof >= 0xC9, progressive = sof == 0xC2 || sof == 0xCA;
    b[n++] = 0xFF, b[n++] = 0xD8;                                  /* SOI */
    b[n++] = 0xFF, b[n++] = 0xDB, b[n++] = 0, b[n++] = 67, b[n++] = 0; /* DQT, table 0 */
    for (int i = 0; i < 64; i++) b[n++] = 1;
    b[n++] = 0xFF, b[n++] = (uint8_t)sof, b[n++] = 0, b[n++] = (uint8_t)(8 + 3 * nc), b[n++] = 8;
    b[n++] = (uint8_t)(h >> 8), b[n++] = (uint8_t)h, b[n++] = (uint8_t)(w >> 8), b[n++] = (uint8_t)w;
    b[n++] = (uint8_t)nc;
    for (int c = 0; c < nc; c++) b[n++] = (uint8_t)(c + 1), b[n++] = (uint8_t)(c ? 0x11 : samp0), b[n++] = 0;
    if (!arith) { /* DHT: DC table 0 and AC table 0, one code of length 1 each, for symbol 0 */
        b[n++] = 0xFF, b[n++] = 0xC4, b[n++] = 0, b[n++] = 2 + 2 * 18;
        for (int cls = 0; cls < 2; cls++) {
            b[n++] = (uint8_t)(cls << 4), b[n++] = 1;
            for (int i = 1; i < 16; i++) b[n++] = 0;
            b[n++] = 0;
        }
    }
    b[n++] = 0xFF, b[n++] = 0xDA, b[n++] = 0, b[n++] = (uint8_t)(6 + 2 * nc), b[n++] = (uint8_t)nc;
    for (int c = 0; c < nc; c++) b[n++] = (uint8_t)(c + 1), b[n++] = 0x00;
    b[n++] = 0, b[n++] = progressive ? 0 : 63, b[n++] = 0; /* Ss, Se, Ah/Al */
    for (size_t i = 0; i < ndata; i++) {
        uint8_t v = noise ? rnd8() : 0;
        b[n++] = v == 0xFF ? 0xFE : v;
    }
    b[n++] = 0xFF, b[n++] = 0xD9; /* EOI */
    *len = n;
    return b;
}

/* What a decode in a child process did: its result and how much its peak RSS grew. */
typedef struct {
    bzn_status status;
    char msg[sizeof(((bzn_error *)0)->msg)];
    int width, height;
    long peak_growth_kb; /* ru_maxrss after the decode minus before it */
    double seconds;
} child_decode;

/* Decode in a forked child so that its peak RSS can be measured on its own (ru_maxrss of a
 * process only grows). Outside AddressSanitizer (which reserves terabytes of address space)
 * the child's address space is also capped at 1 GiB over what it starts with, so that a
 * regression fails here with an allocation failure instead of taking gigabytes. */
static child_decode decode_in_child(const uint8_t *data, size_t len) {
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
#ifndef UNDER_ASAN
        unsigned long vm_pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (f && fscanf(f, "%lu", &vm_pages) == 1) {
            rlim_t cap = (rlim_t)vm_pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)1 << 30);
            struct rlimit rl = {cap, cap};
            setrlimit(RLIMIT_AS, &rl);
        }
        if (f) fclose(f);
#endif
        child_decode r;
        memset(&r, 0, sizeof r);
        struct rusage before, after;
        struct timespec t0, t1;
        getrusage(RUSAGE_SELF, &before);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        bzn_image img;
        bzn_error err = {0};
        r.status = bzn_image_decode_jpeg(data, len, &img, &err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        getrusage(RUSAGE_SELF, &after);
        memcpy(r.msg, err.msg, sizeof r.msg);
        r.width = img.width;
        r.height = img.height;
        r.peak_growth_kb = after.ru_maxrss - before.ru_maxrss;
        r.seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        bzn_image_free(&img);
        ssize_t w = write(fds[1], &r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? 0 : 1);
    }
    close(fds[1]);
    child_decode r;
    memset(&r, 0, sizeof r);
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t k = read(fds[0], (char *)&r + got, sizeof r - got);
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(fds[0]);
    int wst = 0;
    ck_assert_int_eq(waitpid(pid, &wst, 0), pid);
    ck_assert_msg(WIFEXITED(wst) && WEXITSTATUS(wst) == 0 && got == sizeof r,
                  "the decoding child died (%s %d): killed for memory?",
                  WIFSIGNALED(wst) ? "signal" : "exit", WIFSIGNALED(wst) ? WTERMSIG(wst) : WEXITSTATUS(wst));
    return r;
}

/* 1-2 KB files whose frame header claims a huge image. Before the fix a progressive
 * arithmetic one made libjpeg allocate (and, fed zeros past the end of the data as the
 * standard says, fill) the whole coefficient buffer: 1.5-2.3 GB and 5 s, and some even
 * "decoded". They must be refused at once, from the header, whatever the coding. */
START_TEST(test_decode_huge_claims) {
    char *tmp = tu_tmpdir("image-huge-claims");
    ck_assert_ptr_nonnull(tmp);
    static const struct {
        const char *name;
        int sof, w, h, nc, samp0, noise;
        const char *kind; /* in the message: what would have been allocated */
    } cases[] = {
        {"prog-arith-16k-rgb.jpg", 0xCA, 16384, 16384, 3, 0x11, 1, "1.6 GB coefficient buffer"},
        {"prog-arith-16k-rgb-0.jpg", 0xCA, 16384, 16384, 3, 0x11, 0, "1.6 GB coefficient buffer"},
        {"prog-arith-16k-cmyk.jpg", 0xCA, 16384, 16384, 4, 0x11, 1, "2.1 GB coefficient buffer"},
        {"prog-arith-8k-420.jpg", 0xCA, 8192, 8192, 3, 0x22, 1, "201.3 MB coefficient buffer"},
        {"prog-arith-8k-rgb.jpg", 0xCA, 8192, 8192, 3, 0x11, 1, "402.7 MB coefficient buffer"},
        {"prog-huff-16k-rgb.jpg", 0xC2, 16384, 16384, 3, 0x11, 0, "1.6 GB coefficient buffer"},
        {"prog-huff-16k-grey.jpg", 0xC2, 16384, 16384, 1, 0x11, 1, "536.9 MB coefficient buffer"},
        {"prog-huff-8k-420.jpg", 0xC2, 8192, 8192, 3, 0x22, 0, "201.3 MB coefficient buffer"},
        {"seq-arith-16k-rgb.jpg", 0xC9, 16384, 16384, 3, 0x11, 1, "805.3 MB image"},
        {"baseline-16k-rgb.jpg", 0xC0, 16384, 16384, 3, 0x11, 0, "805.3 MB image"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = 0;
        uint8_t *jpg = craft_jpeg(cases[i].sof, cases[i].w, cases[i].h, cases[i].nc, cases[i].samp0, 1500,
                                  cases[i].noise, &len);
        child_decode r = decode_in_child(jpg, len);
        printf("  %-26s %zu B -> %-16s peak RSS +%ld MB, %.2f s: %s\n", cases[i].name, len,
               bzn_status_name(r.status), r.peak_growth_kb / 1024, r.seconds, r.msg);
        fflush(stdout);
        ck_assert_msg(r.peak_growth_kb < 300 * 1024, "%s: the decode's peak RSS grew by %ld MB", cases[i].name,
                      r.peak_growth_kb / 1024);
        ck_assert_msg(r.status == BZN_ERR_FORMAT, "%s: status %s (%s), expected %s", cases[i].name,
                      bzn_status_name(r.status), r.msg, bzn_status_name(BZN_ERR_FORMAT));
        char claim[64];
        snprintf(claim, sizeof claim, "%s claims %dx%d but the file is only",
                 cases[i].sof == 0xC2 || cases[i].sof == 0xCA ? "progressive JPEG" : "JPEG", cases[i].w, cases[i].h);
        ck_assert_msg(strstr(r.msg, claim) && strstr(r.msg, cases[i].kind), "%s: unclear message: %s",
                      cases[i].name, r.msg);
        /* through the file API: the message names the file */
        expect_load_error(tmp, cases[i].name, jpg, len, BZN_ERR_FORMAT, claim);
        free(jpg);
    }
    remove_dir(tmp);
}
END_TEST

/* An image in memory through libjpeg's encoder: grey (1) or RGB (3), blank (mid-grey) or
 * a noisy gradient. Returns a buffer from libjpeg (free() it). */
static uint8_t *encode_jpeg(int w, int h, int nc, int progressive, int arith, int blank, unsigned long *len) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e); /* on error: prints and exits, which fails the test */
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    *len = 0;
    jpeg_mem_dest(&c, &out, len);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = nc;
    c.in_color_space = nc == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    c.arith_code = arith ? TRUE : FALSE;
    jpeg_start_compress(&c, TRUE);
    uint8_t *row = malloc((size_t)w * nc);
    ck_assert_ptr_nonnull(row);
    lcg_state = 777;
    while (c.next_scanline < c.image_height) {
        int y = (int)c.next_scanline;
        for (int x = 0; x < w * nc; x++)
            row[x] = blank ? 128 : (uint8_t)((x / nc * 255 / w + y * 255 / h) / 2 + x % nc * 40 + (rnd8() >> 5));
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    return out;
}

static void expect_all(const bzn_image *img, int lo, int hi, const char *what) {
    size_t n = (size_t)img->width * img->height * 3, i = 0;
    while (i < n && img->pixels[i] >= lo && img->pixels[i] <= hi) i++;
    ck_assert_msg(i == n, "%s: byte %zu is %d, not in [%d, %d]", what, i, i < n ? img->pixels[i] : 0, lo, hi);
}

/* Legitimate big progressive JPEGs still decode, down to the smallest file that can hold
 * the image: the size check must never refuse a complete Huffman-coded file. */
START_TEST(test_decode_large_progressive) {
    bzn_error err = {0};
    bzn_image img;

    /* a noisy 4096x4096 frame: progressive Huffman and progressive arithmetic coding give
     * the same coefficients, so the same pixels, as baseline */
    unsigned long blen, plen, alen;
    uint8_t *base = encode_jpeg(4096, 4096, 3, 0, 0, 0, &blen);
    uint8_t *prog = encode_jpeg(4096, 4096, 3, 1, 0, 0, &plen);
    uint8_t *arith = encode_jpeg(4096, 4096, 3, 1, 1, 0, &alen);
    bzn_image ref;
    ck_assert_msg(bzn_image_decode_jpeg(base, blen, &ref, &err) == BZN_OK, "baseline: %s", err.msg);
    const uint8_t *files[] = {prog, arith};
    const unsigned long lens[] = {plen, alen};
    for (int k = 0; k < 2; k++) {
        ck_assert_msg(bzn_image_decode_jpeg(files[k], lens[k], &img, &err) == BZN_OK, "%s 4096x4096 (%lu B): %s",
                      k ? "arithmetic" : "progressive", lens[k], err.msg);
        ck_assert_int_eq(img.width, 4096);
        ck_assert_int_eq(img.height, 4096);
        ck_assert_msg(memcmp(img.pixels, ref.pixels, (size_t)4096 * 4096 * 3) == 0,
                      "progressive decode differs from baseline");
        bzn_image_free(&img);
    }
    printf("  4096x4096 noisy: baseline %lu B, progressive %lu B, arithmetic %lu B: same pixels\n", blen, plen, alen);
    bzn_image_free(&ref);
    free(base);
    free(prog);
    free(arith);

    /* blank 8192x8192 (the engine's largest side) progressive, grey and colour: libjpeg's
     * encoder makes them about 2 bits per 8x8 block (263 KB and 394 KB, for a 134 MB and a
     * 201 MB coefficient buffer) */
    for (int nc = 1; nc <= 3; nc += 2) {
        unsigned long len;
        uint8_t *jpg = encode_jpeg(8192, 8192, nc, 1, 0, 1, &len);
        ck_assert_msg(bzn_image_decode_jpeg(jpg, len, &img, &err) == BZN_OK, "blank 8192x8192 x%d (%lu B): %s",
                      nc, len, err.msg);
        ck_assert_int_eq(img.width, 8192);
        ck_assert_int_eq(img.height, 8192);
        expect_all(&img, 127, 129, "blank 8192x8192");
        printf("  blank 8192x8192 progressive, %d component(s): %lu B, decoded\n", nc, len);
        bzn_image_free(&img);
        free(jpg);
    }

    /* the least a complete Huffman file can be: one DC-first scan of one bit per block
     * (8192x8192 grey: 1048576 blocks, 131072 bytes); it decodes. Shorter is refused from
     * the header (and would hit the end of its data otherwise). */
    size_t len, hdr;
    uint8_t *jpg = craft_jpeg(0xC2, 8192, 8192, 1, 0x11, 0, 0, &hdr);
    free(jpg);
    jpg = craft_jpeg(0xC2, 8192, 8192, 1, 0x11, 131072, 0, &len);
    ck_assert_msg(bzn_image_decode_jpeg(jpg, len, &img, &err) == BZN_OK, "minimal 8192x8192: %s", err.msg);
    expect_all(&img, 128, 128, "minimal 8192x8192");
    bzn_image_free(&img);
    free(jpg);
    jpg = craft_jpeg(0xC2, 8192, 8192, 1, 0x11, 131072 - hdr - 1, 0, &len);
    ck_assert_uint_eq(len, 131071);
    ck_assert_int_eq(bzn_image_decode_jpeg(jpg, len, &img, &err), BZN_ERR_FORMAT);
    ck_assert_msg(strstr(err.msg, "claims 8192x8192 but the file is only 131.1 KB"), "%s", err.msg);
    free(jpg);

    /* arithmetic coding can take less than a bit per block: a blank 2048x2048 colour
     * progressive image is a few hundred bytes; small decodes (64 MiB) are never refused */
    unsigned long alen2;
    uint8_t *tiny = encode_jpeg(2048, 2048, 3, 1, 1, 1, &alen2);
    ck_assert_msg(bzn_image_decode_jpeg(tiny, alen2, &img, &err) == BZN_OK, "blank arithmetic (%lu B): %s", alen2,
                  err.msg);
    ck_assert_int_eq(img.width, 2048);
    expect_all(&img, 127, 129, "blank arithmetic 2048x2048");
    printf("  blank 2048x2048 progressive arithmetic: %lu B, decoded\n", alen2);
    bzn_image_free(&img);
    free(tiny);
}
END_TEST

/* ---- resize against PIL ------------------------------------------------------------- */

START_TEST(test_resize_matches_pil) {
    if (!have_pil(__func__)) return;
    char *tmp = tu_tmpdir("image-pil-resize");
    ck_assert_ptr_nonnull(tmp);
    static const int sizes[][2] = {{352, 352}, {256, 256}, {96, 64}, {2000, 200}, {1, 1}};
    bzn_error err = {0};
    for (int i = 0; i < NSAMPLES; i++) {
        bzn_image img;
        ck_assert_msg(bzn_image_load_jpeg(sample_path(i), &img, &err) == BZN_OK, "%s", err.msg);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            int w = sizes[s][0], h = sizes[s][1];
            uint8_t *out = malloc((size_t)w * h * 3);
            ck_assert_ptr_nonnull(out);
            ck_assert_msg(bzn_resize_bilinear(img.pixels, img.width, img.height, img.width * 3, 3, out, w, h,
                                              &err) == BZN_OK,
                          "%s", err.msg);
            uint8_t *ref = pil_resize(sample_path(i), w, h, tmp);
            char what[128];
            snprintf(what, sizeof what, "resize %.8s %dx%d -> %dx%d", samples[i].name, img.width, img.height,
                     w, h);
            ck_assert_int_le(compare_report(what, out, ref, (size_t)w * h * 3), 1);
            free(ref);
            free(out);
        }
        bzn_image_free(&img);
    }

    /* Upscaling: a 200x150 crop of a frame to 2000x1500, and tiny noise images; the
     * inputs go to PIL as PNG files written by bzn_image_write_png. */
    bzn_image img;
    ck_assert_int_eq(bzn_image_load_jpeg(sample_path(0), &img, &err), BZN_OK);
    struct {
        int sw, sh, dw, dh, crop;
    } cases[] = {
        {200, 150, 2000, 1500, 1}, {13, 7, 96, 64, 0}, {13, 7, 5, 3, 0},
        {13, 7, 1, 1, 0},          {1, 1, 7, 5, 0},    {9, 11, 400, 2, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int sw = cases[c].sw, sh = cases[c].sh, dw = cases[c].dw, dh = cases[c].dh;
        uint8_t *src = malloc((size_t)sw * sh * 3);
        ck_assert_ptr_nonnull(src);
        for (int y = 0; y < sh; y++)
            for (int x = 0; x < sw * 3; x++)
                src[(size_t)y * sw * 3 + x] =
                    cases[c].crop ? img.pixels[(size_t)(400 + y) * img.width * 3 + (size_t)(500 * 3 + x)]
                                  : rnd8();
        const char *png = tu_path(tmp, "src.png");
        ck_assert_int_eq(bzn_image_write_png(png, src, sw, sh, 3, &err), BZN_OK);
        uint8_t *out = malloc((size_t)dw * dh * 3);
        ck_assert_ptr_nonnull(out);
        ck_assert_int_eq(bzn_resize_bilinear(src, sw, sh, sw * 3, 3, out, dw, dh, &err), BZN_OK);
        uint8_t *ref = pil_resize(png, dw, dh, tmp);
        char what[128];
        snprintf(what, sizeof what, "resize %s %dx%d -> %dx%d", cases[c].crop ? "crop" : "noise", sw, sh, dw,
                 dh);
        ck_assert_int_le(compare_report(what, out, ref, (size_t)dw * dh * 3), 1);
        free(ref);
        free(out);
        free(src);
        unlink(png);
    }
    bzn_image_free(&img);
    remove_dir(tmp);
}
END_TEST

/* ---- resize properties (no PIL needed) ---------------------------------------------- */

static uint8_t *resize_or_fail(const uint8_t *src, int sw, int sh, int stride, int ch, int dw, int dh) {
    uint8_t *out = malloc((size_t)dw * dh * ch);
    ck_assert_ptr_nonnull(out);
    bzn_error err = {0};
    ck_assert_msg(bzn_resize_bilinear(src, sw, sh, stride, ch, out, dw, dh, &err) == BZN_OK, "%s", err.msg);
    return out;
}

/* (3 channels take the AVX2 horizontal pass where the CPU has it, 1 channel the plain loop:
 * the per-channel comparison below holds the one to the other, bit for bit) */
START_TEST(test_resize_properties) {
    static const int sizes[][4] = {{37, 23, 352, 352}, {640, 480, 352, 352}, {50, 40, 50, 17}, {50, 40, 13, 40},
                                   {50, 40, 50, 40},   {1, 9, 3, 2},         {1280, 995, 352, 352}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int sw = sizes[s][0], sh = sizes[s][1], dw = sizes[s][2], dh = sizes[s][3];
        for (int ch = 1; ch <= 4; ch++) {
            /* noise image with a padded stride */
            int stride = sw * ch + 13;
            uint8_t *src = malloc((size_t)stride * sh);
            ck_assert_ptr_nonnull(src);
            for (size_t i = 0; i < (size_t)stride * sh; i++) src[i] = rnd8();
            uint8_t *out = resize_or_fail(src, sw, sh, stride, ch, dw, dh);

            /* every channel is resized on its own: same as a 1-channel resize */
            uint8_t *plane = malloc((size_t)sw * sh);
            ck_assert_ptr_nonnull(plane);
            for (int c = 0; c < ch; c++) {
                for (int y = 0; y < sh; y++)
                    for (int x = 0; x < sw; x++)
                        plane[(size_t)y * sw + x] = src[(size_t)y * stride + (size_t)x * ch + c];
                uint8_t *po = resize_or_fail(plane, sw, sh, sw, 1, dw, dh);
                size_t bad = 0;
                while (bad < (size_t)dw * dh && po[bad] == out[bad * ch + c]) bad++;
                ck_assert_msg(bad == (size_t)dw * dh, "%dx%d->%dx%d channel %d of %d differs at pixel %zu",
                              sw, sh, dw, dh, c, ch, bad);
                free(po);
            }
            if (sw == dw && sh == dh) /* same size: an exact copy */
                for (int y = 0; y < sh; y++)
                    ck_assert(memcmp(out + (size_t)y * sw * ch, src + (size_t)y * stride, (size_t)sw * ch) ==
                              0);
            free(plane);
            free(out);

            /* a constant image stays constant */
            for (int value = 77; value <= 255; value += 255 - 77) {
                memset(src, value, (size_t)stride * sh);
                out = resize_or_fail(src, sw, sh, stride, ch, dw, dh);
                size_t same = 0;
                while (same < (size_t)dw * dh * ch && out[same] == value) same++;
                ck_assert_msg(same == (size_t)dw * dh * ch, "constant %d changed at byte %zu", value, same);
                free(out);
            }
            free(src);
        }
    }

    /* invalid arguments */
    uint8_t a[64] = {0}, b[64];
    bzn_error err = {0};
    ck_assert_int_eq(bzn_resize_bilinear(NULL, 4, 4, 12, 3, b, 2, 2, &err), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_resize_bilinear(a, 4, 4, 12, 3, NULL, 2, 2, &err), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_resize_bilinear(a, 4, 4, 12, 0, b, 2, 2, &err), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_resize_bilinear(a, 4, 4, 12, 5, b, 2, 2, &err), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_resize_bilinear(a, 4, 4, 11, 3, b, 2, 2, &err), BZN_ERR_ARG);
    ck_assert_msg(strstr(err.msg, "stride") != NULL, "%s", err.msg);
    ck_assert_int_eq(bzn_resize_bilinear(a, 0, 4, 12, 3, b, 2, 2, &err), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_resize_bilinear(a, 4, 4, 12, 3, b, 2, -1, NULL), BZN_ERR_ARG);
}
END_TEST

/* ---- PNG writer ----------------------------------------------------------------------- */

START_TEST(test_png_round_trip) {
    char *tmp = tu_tmpdir("image-png");
    ck_assert_ptr_nonnull(tmp);
    bzn_error err = {0};
    static const int sizes[][2] = {{1, 1}, {7, 3}, {352, 352}, {1280, 995}};
    for (int ch = 1; ch <= 3; ch += 2)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            int w = sizes[s][0], h = sizes[s][1];
            size_t n = (size_t)w * h * ch;
            uint8_t *px = malloc(n);
            ck_assert_ptr_nonnull(px);
            for (size_t i = 0; i < n; i++) px[i] = rnd8();
            const char *path = tu_path(tmp, "rt.png");
            ck_assert_msg(bzn_image_write_png(path, px, w, h, ch, &err) == BZN_OK, "%s", err.msg);
            int rw, rh, rc;
            uint8_t *back = tu_read_png(path, 0, &rw, &rh, &rc);
            ck_assert_msg(back != NULL, "libpng cannot read %s back", path);
            ck_assert_int_eq(rw, w);
            ck_assert_int_eq(rh, h);
            ck_assert_int_eq(rc, ch);
            ck_assert(memcmp(back, px, n) == 0);
            struct stat st;
            ck_assert_int_eq(stat(path, &st), 0);
            ck_assert_int_eq(st.st_mode & 0777, 0644);
            ck_assert_int_eq(count_entries(tmp), 1); /* no temporary file left behind */
            free(back);
            free(px);
        }
    remove_dir(tmp);
}
END_TEST

START_TEST(test_png_errors) {
    char *tmp = tu_tmpdir("image-png-err");
    ck_assert_ptr_nonnull(tmp);
    bzn_error err = {0};
    uint8_t px[12 * 8 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)i;

    /* a good file first: every failed write below must leave it as it is */
    const char *path = tu_path(tmp, "keep.png");
    ck_assert_int_eq(bzn_image_write_png(path, px, 12, 8, 3, &err), BZN_OK);
    size_t len0 = 0;
    uint8_t *orig = tu_read_file(path, &len0);
    ck_assert_ptr_nonnull(orig);

    ck_assert_int_eq(bzn_image_write_png(path, px, 0, 0, 3, &err), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_image_write_png(path, px, 12, -8, 1, &err), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_image_write_png(path, px, 12, 8, 2, &err), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_image_write_png(path, px, 12, 8, 4, &err), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_image_write_png(path, NULL, 12, 8, 3, &err), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_image_write_png(NULL, px, 12, 8, 3, &err), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_image_write_png("", px, 12, 8, 3, NULL), BZN_ERR_ARG);

    /* rejected by libpng after the temporary file exists (over its width limit) */
    uint8_t *wide = calloc(1000001, 1);
    ck_assert_ptr_nonnull(wide);
    ck_assert_int_eq(bzn_image_write_png(path, wide, 1000001, 1, 1, &err), BZN_ERR_ARG);
    printf("  too wide: %s\n", err.msg);
    free(wide);

    size_t len1 = 0;
    uint8_t *now = tu_read_file(path, &len1);
    ck_assert_ptr_nonnull(now);
    ck_assert(len1 == len0 && memcmp(now, orig, len0) == 0);
    ck_assert_int_eq(count_entries(tmp), 1); /* temporary files removed */
    free(now);

    /* a folder that does not exist */
    ck_assert_int_eq(bzn_image_write_png(tu_path(tmp, "nope/out.png"), px, 12, 8, 3, &err), BZN_ERR_IO);
    ck_assert_msg(strstr(err.msg, "nope/out.png") != NULL, "%s", err.msg);
    printf("  missing folder: %s\n", err.msg);

    /* the destination is a folder: rename fails, the folder and its content survive */
    const char *dir = tu_path(tmp, "dir.png");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    ck_assert_int_eq(tu_write_file(tu_path(dir, "inside"), "x", 1), 0);
    ck_assert_int_eq(bzn_image_write_png(dir, px, 12, 8, 3, &err), BZN_ERR_IO);
    printf("  onto a folder: %s\n", err.msg);
    struct stat st;
    ck_assert_int_eq(stat(dir, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_int_eq(count_entries(dir), 1);
    ck_assert_int_eq(count_entries(tmp), 2); /* keep.png and dir.png only */
    unlink(tu_path(dir, "inside"));

    /* overwriting works and replaces the content */
    uint8_t grey[5 * 4] = {1, 2, 3};
    ck_assert_int_eq(bzn_image_write_png(path, grey, 5, 4, 1, &err), BZN_OK);
    int w, h, c;
    uint8_t *back = tu_read_png(path, 0, &w, &h, &c);
    ck_assert_ptr_nonnull(back);
    ck_assert(w == 5 && h == 4 && c == 1 && memcmp(back, grey, sizeof grey) == 0);
    free(back);
    free(orig);
    remove_dir(tmp);
}
END_TEST

/* ---- colour masks ----------------------------------------------------------------------- */

START_TEST(test_colorize_overlay) {
    const uint8_t classes[] = {0, 1, 2, 3, 255};
    uint8_t rgb[5 * 3];
    memset(rgb, 99, sizeof rgb);
    bzn_colorize(classes, 5, rgb);
    const uint8_t want[5 * 3] = {255, 0, 0, 0, 255, 0, 0, 0, 0, 255, 255, 0, 0, 0, 0}; /* 3: undefined, yellow */
    ck_assert(memcmp(rgb, want, sizeof want) == 0);
    bzn_colorize(NULL, 5, rgb); /* no crash */

    /* the blend alone (no outline, no legend): (1 - alpha) * frame + alpha * colour, rounded */
    bzn_error e;
    bzn_overlay_style st = {.alpha = 0.5f, .outline = 0, .dark_edge = 1, .legend = BZN_LEGEND_NONE};
    const uint8_t frame[5 * 3] = {100, 100, 100, 100, 100, 100, 100, 100, 100, 10, 20, 30, 10, 20, 30};
    uint8_t out[5 * 3];
    ck_assert_int_eq(bzn_overlay_draw(frame, classes, 5, 1, &st, out, &e), BZN_OK);
    const uint8_t half[5 * 3] = {178, 50, 50, 50, 178, 50, 100, 100, 100, 10, 20, 30, 10, 20, 30};
    ck_assert(memcmp(out, half, sizeof half) == 0);

    const uint8_t cls2[] = {0, 1};
    const uint8_t f2[6] = {10, 10, 10, 10, 10, 10};
    st.alpha = 0.25f; /* 0.75 * 10 + 0.25 * 255 = 71.25 */
    ck_assert_int_eq(bzn_overlay_draw(f2, cls2, 2, 1, &st, out, &e), BZN_OK);
    const uint8_t quarter[6] = {71, 8, 8, 8, 71, 8};
    ck_assert(memcmp(out, quarter, 6) == 0);
    const float alphas[] = {0.0f, 1.0f, 7.0f, -1.0f, NAN}; /* clamped to [0, 1]; NaN: 0 */
    const uint8_t *alpha_want[] = {f2, want, want, f2, f2};
    for (int k = 0; k < 5; k++) {
        st.alpha = alphas[k];
        ck_assert_int_eq(bzn_overlay_draw(f2, cls2, 2, 1, &st, out, &e), BZN_OK);
        ck_assert_msg(memcmp(out, alpha_want[k], 6) == 0, "alpha %g", alphas[k]);
    }
    st.alpha = 0.25f;
    uint8_t inplace[6] = {10, 10, 10, 10, 10, 10};
    ck_assert_int_eq(bzn_overlay_draw(inplace, cls2, 2, 1, &st, inplace, &e), BZN_OK);
    ck_assert(memcmp(inplace, quarter, 6) == 0);

    /* bad arguments are errors, never a crash */
    ck_assert_int_eq(bzn_overlay_draw(NULL, cls2, 2, 1, &st, out, &e), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_overlay_draw(f2, NULL, 2, 1, &st, out, &e), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_overlay_draw(f2, cls2, 2, 1, &st, NULL, NULL), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_overlay_draw(f2, cls2, 0, 1, &st, out, &e), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_overlay_draw(f2, cls2, 2, -1, &st, out, &e), BZN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "size"));
    st.outline = BZN_OVERLAY_MAX_OUTLINE + 1;
    ck_assert_int_eq(bzn_overlay_draw(f2, cls2, 2, 1, &st, out, &e), BZN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "outline"));
    st.outline = -2;
    ck_assert_int_eq(bzn_overlay_draw(f2, cls2, 2, 1, &st, out, &e), BZN_ERR_ARG);
    st.outline = 0;
    st.legend = (bzn_legend_corner)5;
    ck_assert_int_eq(bzn_overlay_draw(f2, cls2, 2, 1, &st, out, &e), BZN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "legend"));

    /* the default: the blend kept, an outline scaled to the frame, a dark edge, a legend */
    const bzn_overlay_style d = bzn_overlay_default_style();
    ck_assert(d.alpha == 0.45f && d.outline == BZN_OVERLAY_AUTO && d.dark_edge && d.legend == BZN_LEGEND_TOP_LEFT);
}
END_TEST

/* The outline, as its definition says, pixel by pixel: for a pixel of class c in {0, 1}, a pixel
 * of another region (0, 1, or background: anything else) in the square of radius `outline`
 * around it, inside the frame; for a background pixel, a polyp pixel within the dark edge. */
static void overlay_naive(const uint8_t *frame, const uint8_t *cls, int w, int h, float alpha, int outline, int dark,
                          uint8_t *out) {
    static const uint8_t col[2][3] = {{255, 0, 0}, {0, 255, 0}};
    const int rim = outline && dark ? (outline / 2 > 1 ? outline / 2 : 1) : 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const size_t i = (size_t)y * w + x;
            const int reg = cls[i] < 2 ? cls[i] : 2;
            const int r = reg < 2 ? outline : rim;
            int edge = 0;
            for (int yy = y - r; yy <= y + r; yy++)
                for (int xx = x - r; xx <= x + r; xx++) {
                    if (yy < 0 || xx < 0 || yy >= h || xx >= w) continue;
                    const int q = cls[(size_t)yy * w + xx] < 2 ? cls[(size_t)yy * w + xx] : 2;
                    if (reg < 2 ? q != reg : q < 2) edge = 1;
                }
            for (int k = 0; k < 3; k++) {
                const uint8_t f = frame[3 * i + k];
                if (reg == 2) out[3 * i + k] = edge ? 0 : f;
                else if (edge) out[3 * i + k] = col[reg][k];
                else out[3 * i + k] = (uint8_t)floorf((1.0f - alpha) * f + alpha * col[reg][k] + 0.5f);
            }
        }
}

static uint8_t *px(uint8_t *img, int w, int x, int y) { return img + 3 * ((size_t)y * w + x); }

START_TEST(test_overlay_outline) {
    bzn_error e;
    /* a 6x5 neoplastic block in a 12x9 background, on a grey frame */
    enum { W = 12, H = 9 };
    uint8_t cls[W * H], frame[W * H * 3], out[W * H * 3];
    memset(cls, 2, sizeof cls);
    for (int y = 2; y <= 6; y++)
        for (int x = 3; x <= 8; x++) cls[y * W + x] = 0;
    memset(frame, 100, sizeof frame);
    bzn_overlay_style st = {.alpha = 0.5f, .outline = 1, .dark_edge = 0, .legend = BZN_LEGEND_NONE};
    ck_assert_int_eq(bzn_overlay_draw(frame, cls, W, H, &st, out, &e), BZN_OK);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const uint8_t *p = px(out, W, x, y);
            const int in = x >= 3 && x <= 8 && y >= 2 && y <= 6, border = in && (x == 3 || x == 8 || y == 2 || y == 6);
            if (border) ck_assert_msg(p[0] == 255 && p[1] == 0 && p[2] == 0, "(%d,%d) not red", x, y);
            else if (in) ck_assert_msg(p[0] == 178 && p[1] == 50 && p[2] == 50, "(%d,%d) not blended", x, y);
            else ck_assert_msg(p[0] == 100 && p[1] == 100 && p[2] == 100, "(%d,%d) changed", x, y);
        }
    /* the dark edge: the ring of background around the block, one pixel wide */
    st.dark_edge = 1;
    ck_assert_int_eq(bzn_overlay_draw(frame, cls, W, H, &st, out, &e), BZN_OK);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const int in = x >= 3 && x <= 8 && y >= 2 && y <= 6, ring = !in && x >= 2 && x <= 9 && y >= 1 && y <= 7;
            const uint8_t *p = px(out, W, x, y);
            if (ring) ck_assert_msg(p[0] == 0 && p[1] == 0 && p[2] == 0, "(%d,%d) not dark", x, y);
            else if (!in) ck_assert_msg(p[0] == 100, "(%d,%d) changed", x, y);
        }
    /* two pixels wide: only the 2x1 centre is blended */
    st.outline = 2;
    ck_assert_int_eq(bzn_overlay_draw(frame, cls, W, H, &st, out, &e), BZN_OK);
    for (int y = 2; y <= 6; y++)
        for (int x = 3; x <= 8; x++) {
            const uint8_t *p = px(out, W, x, y);
            const int centre = y == 4 && (x == 5 || x == 6);
            ck_assert_msg(p[0] == (centre ? 178 : 255) && p[1] == (centre ? 50 : 0), "(%d,%d)", x, y);
        }

    /* neoplastic beside non-neoplastic, filling the frame: a red and a green line where they
     * meet, no dark edge between them, no line along the frame's edge */
    enum { W2 = 10, H2 = 4 };
    uint8_t cls2[W2 * H2], f2[W2 * H2 * 3], o2[W2 * H2 * 3];
    for (int i = 0; i < W2 * H2; i++) cls2[i] = i % W2 < 5 ? 0 : 1;
    memset(f2, 100, sizeof f2);
    st = (bzn_overlay_style){.alpha = 0.5f, .outline = 1, .dark_edge = 1, .legend = BZN_LEGEND_NONE};
    ck_assert_int_eq(bzn_overlay_draw(f2, cls2, W2, H2, &st, o2, &e), BZN_OK);
    for (int y = 0; y < H2; y++)
        for (int x = 0; x < W2; x++) {
            const uint8_t *p = px(o2, W2, x, y);
            if (x == 4) ck_assert_msg(p[0] == 255 && p[1] == 0, "(%d,%d) not red", x, y);
            else if (x == 5) ck_assert_msg(p[0] == 0 && p[1] == 255, "(%d,%d) not green", x, y);
            else if (x < 4) ck_assert_msg(p[0] == 178 && p[1] == 50, "(%d,%d) not blended red", x, y);
            else ck_assert_msg(p[0] == 50 && p[1] == 178, "(%d,%d) not blended green", x, y);
        }

    /* random maps (blobs and noise, every class value) against the definition, every width and
     * both edges, out of place and in place */
    enum { W3 = 53, H3 = 37 };
    uint8_t cls3[W3 * H3], f3[W3 * H3 * 3], o3[W3 * H3 * 3], want[W3 * H3 * 3];
    unsigned seed = 12345;
    for (int trial = 0; trial < 6; trial++) {
        for (int y = 0; y < H3; y++)
            for (int x = 0; x < W3; x++) {
                seed = seed * 1103515245u + 12345u;
                const int blob = ((x / (3 + trial)) + (y / (2 + trial))) % 3;
                cls3[y * W3 + x] = (seed >> 16) % 11 == 0 ? (uint8_t)((seed >> 8) % 5) : (uint8_t)(blob == 2 ? 2 + trial % 2 * 253 : blob);
            }
        for (size_t i = 0; i < sizeof f3; i++) f3[i] = (uint8_t)((i * 37 + trial) & 255);
        for (int outline = 0; outline <= 4; outline++)
            for (int dark = 0; dark < 2; dark++) {
                st = (bzn_overlay_style){.alpha = 0.3f, .outline = outline, .dark_edge = dark, .legend = BZN_LEGEND_NONE};
                overlay_naive(f3, cls3, W3, H3, 0.3f, outline, dark, want);
                ck_assert_int_eq(bzn_overlay_draw(f3, cls3, W3, H3, &st, o3, &e), BZN_OK);
                ck_assert_msg(memcmp(o3, want, sizeof want) == 0, "trial %d outline %d dark %d", trial, outline, dark);
                memcpy(o3, f3, sizeof o3);
                ck_assert_int_eq(bzn_overlay_draw(o3, cls3, W3, H3, &st, o3, &e), BZN_OK);
                ck_assert_msg(memcmp(o3, want, sizeof want) == 0, "in place: trial %d outline %d", trial, outline);
            }
    }
}
END_TEST

/* BZN_OVERLAY_AUTO: 2 pixels up to 1250-pixel frames, then min(width, height) / 500, rounded */
START_TEST(test_overlay_auto_width) {
    const int sizes[][3] = {{64, 64, 2}, {1280, 995, 2}, {1920, 1500, 3}, {3840, 2160, 4}};
    for (int k = 0; k < 4; k++) {
        const int w = sizes[k][0], h = sizes[k][1];
        const size_t n = (size_t)w * h;
        uint8_t *cls = malloc(n), *img = calloc(3 * n, 1);
        ck_assert(cls && img);
        for (size_t i = 0; i < n; i++) cls[i] = (int)(i % w) < w / 2 ? 0 : 2; /* left half neoplastic */
        bzn_overlay_style st = bzn_overlay_default_style();
        st.legend = BZN_LEGEND_NONE;
        bzn_error e;
        ck_assert_int_eq(bzn_overlay_draw(img, cls, w, h, &st, img, &e), BZN_OK);
        /* on a black frame the line is pure red and the blend is not (0.45 * 255 = 115) */
        int red = 0;
        const uint8_t *row = img + 3 * (size_t)w * (h / 2);
        for (int x = 0; x < w; x++) red += row[3 * x] == 255;
        ck_assert_msg(red == sizes[k][2], "%dx%d: a line of %d pixels", w, h, red);
        free(cls);
        free(img);
    }
}
END_TEST

/* The legend: in its corner of a frame large enough, white text and both swatches on the
 * darkened frame; nothing elsewhere; left out of a small frame. */
START_TEST(test_overlay_legend) {
    const int w = 352, h = 352;
    const size_t n = (size_t)w * h;
    uint8_t *cls = malloc(n), *frame = malloc(3 * n), *out = malloc(3 * n);
    ck_assert(cls && frame && out);
    memset(cls, 2, n);
    memset(frame, 200, 3 * n);
    bzn_error e;
    const bzn_legend_corner corners[] = {BZN_LEGEND_TOP_LEFT, BZN_LEGEND_TOP_RIGHT, BZN_LEGEND_BOTTOM_LEFT,
                                         BZN_LEGEND_BOTTOM_RIGHT};
    for (int k = 0; k < 4; k++) {
        bzn_overlay_style st = bzn_overlay_default_style();
        st.legend = corners[k];
        ck_assert_int_eq(bzn_overlay_draw(frame, cls, w, h, &st, out, &e), BZN_OK);
        const int right = k % 2, bottom = k / 2;
        int white = 0, red = 0, green = 0, dark = 0, x0 = w, x1 = -1, y0 = h, y1 = -1;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                const uint8_t *p = px(out, w, x, y);
                if (p[0] == 200 && p[1] == 200 && p[2] == 200) continue;
                white += p[0] == 255 && p[1] == 255 && p[2] == 255;
                red += p[0] == 255 && p[1] == 0 && p[2] == 0;
                green += p[0] == 0 && p[1] == 255 && p[2] == 0;
                dark += p[0] == 60 && p[1] == 60 && p[2] == 60; /* 200 * 77 / 256, rounded */
                if (x < x0) x0 = x;
                if (x > x1) x1 = x;
                if (y < y0) y0 = y;
                if (y > y1) y1 = y;
            }
        ck_assert_msg(white > 100 && red == 49 && green == 49 && dark > 500, "corner %d: %d white %d red %d green %d dark",
                      k, white, red, green, dark);
        /* 99 x 25 font pixels (scale 1 at 352), 4 from the corner's edges */
        ck_assert_int_eq(x1 - x0 + 1, 99);
        ck_assert_int_eq(y1 - y0 + 1, 25);
        ck_assert_int_eq(right ? w - 1 - x1 : x0, 4);
        ck_assert_int_eq(bottom ? h - 1 - y1 : y0, 4);
    }
    /* in place gives the same */
    uint8_t *copy = malloc(3 * n);
    ck_assert_ptr_nonnull(copy);
    bzn_overlay_style st = bzn_overlay_default_style();
    ck_assert_int_eq(bzn_overlay_draw(frame, cls, w, h, &st, out, &e), BZN_OK);
    memcpy(copy, frame, 3 * n);
    ck_assert_int_eq(bzn_overlay_draw(copy, cls, w, h, &st, copy, &e), BZN_OK);
    ck_assert(memcmp(copy, out, 3 * n) == 0);
    /* a frame too small for it: no legend (all background: the frame unchanged) */
    ck_assert_int_eq(bzn_overlay_draw(frame, cls, 200, 64, &st, out, &e), BZN_OK);
    ck_assert(memcmp(out, frame, 3 * 200 * 64) == 0);
    /* the default differs from the old flat blend: a frame with a polyp gets an outline */
    cls[100 * w + 100] = 0;
    ck_assert_int_eq(bzn_overlay_draw(frame, cls, w, h, NULL, out, &e), BZN_OK);
    const uint8_t *p = px(out, w, 100, 100), *q = px(out, w, 101, 100);
    ck_assert(p[0] == 255 && p[1] == 0 && p[2] == 0); /* a one-pixel region is all outline */
    ck_assert(q[0] == 0 && q[1] == 0 && q[2] == 0);   /* with its dark edge */
    free(copy);
    free(cls);
    free(frame);
    free(out);
}
END_TEST

/* The scale of the probability map: a ramp from white (top) to black, labelled, in a black
 * box in the corner; nothing on a small picture or with BZN_LEGEND_NONE. */
START_TEST(test_grey_scale) {
    const int w = 352, h = 352;
    uint8_t *g = malloc((size_t)w * h);
    ck_assert_ptr_nonnull(g);
    memset(g, 77, (size_t)w * h);
    bzn_error e;
    ck_assert_int_eq(bzn_grey_scale_draw(g, w, h, BZN_LEGEND_TOP_RIGHT, &e), BZN_OK);
    int x0 = w, x1 = -1, y0 = h, y1 = -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (g[y * w + x] != 77) {
                if (x < x0) x0 = x;
                if (x > x1) x1 = x;
                if (y < y0) y0 = y;
                if (y > y1) y1 = y;
            }
    ck_assert_int_eq(w - 1 - x1, 4); /* 4 from the right */
    ck_assert_int_eq(y0, 4);
    ck_assert_int_eq(x1 - x0 + 1, 21);  /* 3 + 5 + 2 + 1 + 6 + 1 + 3 */
    ck_assert_int_eq(y1 - y0 + 1, 104); /* 3 + 1 + 96 + 1 + 3 */
    /* the ramp: its column from 255 at the top to 0 at the bottom, never rising */
    const int rx = x0 + 3 + 5 + 2 + 1 + 2, ry = y0 + 3 + 1;
    ck_assert_int_eq(g[ry * w + rx], 255);
    ck_assert_int_eq(g[(ry + 95) * w + rx], 0);
    for (int r = 1; r < 96; r++) ck_assert_int_le(g[(ry + r) * w + rx], g[(ry + r - 1) * w + rx]);
    /* the labels: "1" beside the top (white pixels in the label column's top rows), "0" beside the bottom */
    int top = 0, bot = 0;
    for (int y = ry; y < ry + 7; y++)
        for (int x = x0 + 3; x < x0 + 8; x++) top += g[y * w + x] == 255;
    for (int y = ry + 89; y < ry + 96; y++)
        for (int x = x0 + 3; x < x0 + 8; x++) bot += g[y * w + x] == 255;
    ck_assert_int_eq(top, 10); /* the glyph "1" has 10 pixels */
    ck_assert_int_eq(bot, 19); /* "0" has 19 */
    /* too small, or no corner: nothing drawn */
    memset(g, 77, (size_t)w * h);
    ck_assert_int_eq(bzn_grey_scale_draw(g, 100, 100, BZN_LEGEND_TOP_LEFT, &e), BZN_OK);
    ck_assert_int_eq(bzn_grey_scale_draw(g, w, h, BZN_LEGEND_NONE, &e), BZN_OK);
    for (int i = 0; i < w * h; i++) ck_assert_int_eq(g[i], 77);
    ck_assert_int_eq(bzn_grey_scale_draw(NULL, w, h, BZN_LEGEND_TOP_LEFT, &e), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_grey_scale_draw(g, 0, h, BZN_LEGEND_TOP_LEFT, &e), BZN_ERR_ARG);
    ck_assert_int_eq(bzn_grey_scale_draw(g, w, h, (bzn_legend_corner)9, &e), BZN_ERR_ARG);
    free(g);
}
END_TEST

static Suite *image_suite(void) {
    Suite *s = suite_create("image");
    TU_ADD_CASE(s, test_decode_samples);
    TU_ADD_CASE(s, test_decode_matches_pil);
    TU_ADD_CASE(s, test_decode_colour_spaces);
    TU_ADD_CASE(s, test_decode_errors);
    TU_ADD_CASE(s, test_decode_huge_claims);
    TU_ADD_CASE(s, test_decode_large_progressive);
    TU_ADD_CASE(s, test_resize_matches_pil);
    TU_ADD_CASE(s, test_resize_properties);
    TU_ADD_CASE(s, test_png_round_trip);
    TU_ADD_CASE(s, test_png_errors);
    TU_ADD_CASE(s, test_colorize_overlay);
    TU_ADD_CASE(s, test_overlay_outline);
    TU_ADD_CASE(s, test_overlay_auto_width);
    TU_ADD_CASE(s, test_overlay_legend);
    TU_ADD_CASE(s, test_grey_scale);
    return s;
}

int main(void) {
    return tu_run_suite(image_suite());
}
