/* testutil.c - see testutil.h. */
#include <png.h>

#include "testutil.h"

#include "blazeneo.h"

#include <check.h>

#include <fcntl.h>
#include <math.h>
#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const char *tu_env(const char *name) {
    const char *v = getenv(name);
    return (v && *v) ? v : NULL;
}

const char *tu_path(const char *dir, const char *rel) {
    static char buf[8][4096];
    static int next;
    char *b = buf[next++ & 7];
    snprintf(b, sizeof buf[0], "%s/%s", dir ? dir : ".", rel);
    return b;
}

int tu_run(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    if (st == -1) return -1;
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    return -1;
}

int tu_have_python(const char *modules) {
    const char *py = tu_env("BZN_PYTHON");
    if (!py) return 0;
    char list[512];
    snprintf(list, sizeof list, "%s", modules);
    for (char *p = list; *p; p++)
        if (*p == ',') *p = ' ';
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "\"%s\" -c 'import sys\nfor m in \"%s\".split(): __import__(m)' >/dev/null 2>&1",
             py, list);
    return tu_run("%s", cmd) == 0;
}

/* ---- skips ---------------------------------------------------------------------------
 * Check runs every case in a child process: a skip is appended, one line "name\treason", to a
 * file the parent named before running the suite (the children inherit its name), and the
 * parent lists them at the end. */

static char skip_log[4096];

static const char *skip_log_path(void) {
    if (!skip_log[0]) {
        const char *b = tu_env("BZN_BUILD_DIR");
        char dir[3800];
        snprintf(dir, sizeof dir, "%s/testtmp", b ? b : "/tmp");
        mkdir(dir, 0755);
        snprintf(skip_log, sizeof skip_log, "%s/skips-%ld.txt", dir, (long)getpid());
        remove(skip_log);
    }
    return skip_log;
}

void tu_skip_case(const char *test, const char *reason) {
    char name[256], line[1024];
    snprintf(name, sizeof name, "%s", test ? test : "?");
    const size_t n = strlen(name);
    if (n > 3 && !strcmp(name + n - 3, "_fn")) name[n - 3] = 0; /* START_TEST(foo) is foo_fn */
    const int len = snprintf(line, sizeof line, "%s\t%s\n", name, reason);
    const int fd = open(skip_log_path(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) return;
    if (write(fd, line, (size_t)(len < (int)sizeof line ? len : (int)sizeof line - 1)) < 0) { /* a note lost */ }
    close(fd);
}

int tu_skip(const char *reason) {
    fflush(stdout);
    fprintf(stderr, "SKIPPED: %s\n", reason);
    fflush(stderr);
    return TU_SKIP;
}

int tu_missing_in(const char *test, const char *what) {
    if (tu_env("CI")) ck_abort_msg("%s is missing, but CI installs it", what);
    char reason[1024];
    snprintf(reason, sizeof reason, "needs %s", what);
    if (test && !strcmp(test, "main")) { /* the whole test: main returns TU_SKIP next */
        tu_skip(reason);
        return 1;
    }
    fprintf(stderr, "note: skipped (needs %s)\n", what);
    tu_skip_case(test, reason);
    return 1;
}

/* "skipped cases: a (needs X), b (needs Y)" from the log, each case once; removes the log */
static void print_skipped_cases(void) {
    if (!skip_log[0]) return;
    char text[16384] = "";
    tu_slurp(skip_log, text, sizeof text);
    remove(skip_log);
    if (!text[0]) return;
    char out[16384] = "";
    size_t used = 0;
    int count = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char *tab = strchr(l, '\t');
        if (!tab) continue;
        *tab = 0;
        char item[1100];
        snprintf(item, sizeof item, "%s (%s)", l, tab + 1);
        if (strstr(out, item)) continue; /* the same case and reason twice */
        used += (size_t)snprintf(out + used, sizeof out - used, "%s%s", count++ ? ", " : "", item);
        if (used >= sizeof out) break;
    }
    fflush(stdout);
    fprintf(stderr, "skipped cases: %s\n", out);
    fflush(stderr);
}

int tu_have_shared(void) {
    const char *d = tu_env("BZN_SHARED_DIR");
    struct stat st;
    return d && stat(tu_path(d, "models/blazeneo-dha-neopolyp-small.pth"), &st) == 0;
}

void tu_slurp(const char *path, char *buf, size_t size) {
    size_t n = 0;
    uint8_t *text = tu_read_file(path, &n);
    if (n >= size) n = size - 1;
    memcpy(buf, text ? (char *)text : "", n);
    buf[n] = 0;
    free(text);
}

static int cli_va(const char *dir, const char *in, const char *outfile, char *out, size_t outsize, const char *fmt,
                  va_list ap) {
    char args[4096], log[2048];
    vsnprintf(args, sizeof args, fmt, ap);
    snprintf(log, sizeof log, "%s/cli-log.txt", dir);
    int rc;
    if (outfile)
        rc = tu_run("cd '%s' && \"$BZN_CLI\" %s < '%s' > '%s' 2> '%s'", dir, args, in ? in : "/dev/null", outfile, log);
    else
        rc = tu_run("cd '%s' && \"$BZN_CLI\" %s < '%s' > '%s' 2>&1", dir, args, in ? in : "/dev/null", log);
    tu_slurp(log, out, outsize);
    return rc;
}

int tu_cli(const char *dir, char *out, size_t outsize, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = cli_va(dir, NULL, NULL, out, outsize, fmt, ap);
    va_end(ap);
    return rc;
}

int tu_cli_io(const char *dir, const char *in, const char *outfile, char *out, size_t outsize, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = cli_va(dir, in, outfile, out, outsize, fmt, ap);
    va_end(ap);
    return rc;
}

TCase *tu_case(Suite *s, const char *name, int timeout_s) {
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, timeout_s);
    suite_add_tcase(s, tc);
    return tc;
}

int tu_run_suite(Suite *s) {
    skip_log_path(); /* named here, in the parent, before the cases fork */
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    print_skipped_cases();
    return failed ? 1 : 0;
}

char *tu_tmpdir(const char *tag) {
    const char *base = tu_env("BZN_BUILD_DIR");
    char tmpl[4096];
    if (base) {
        snprintf(tmpl, sizeof tmpl, "%s/testtmp", base);
        mkdir(tmpl, 0755);
        snprintf(tmpl, sizeof tmpl, "%s/testtmp/%s-XXXXXX", base, tag);
    } else {
        snprintf(tmpl, sizeof tmpl, "/tmp/bzn-%s-XXXXXX", tag);
    }
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

uint8_t *tu_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return NULL; }
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) { fclose(f); return NULL; }
    uint8_t *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    if (buf && len) *len = (size_t)n;
    return buf;
}

int tu_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

uint8_t *tu_read_png(const char *path, int want, int *w, int *h, int *channels) {
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&pi, path)) return NULL;
    if (want == 1) pi.format = PNG_FORMAT_GRAY;
    if (want == 3) pi.format = PNG_FORMAT_RGB;
    uint8_t *buf = malloc(PNG_IMAGE_SIZE(pi));
    if (!buf || !png_image_finish_read(&pi, NULL, buf, 0, NULL)) {
        free(buf);
        png_image_free(&pi);
        return NULL;
    }
    *w = (int)pi.width;
    *h = (int)pi.height;
    if (channels) *channels = (int)PNG_IMAGE_PIXEL_CHANNELS(pi.format);
    return buf;
}

double tu_range_err(const float *a, const float *b, size_t n) {
    float lo = INFINITY, hi = -INFINITY;
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        if (b[i] < lo) lo = b[i];
        if (b[i] > hi) hi = b[i];
        const double x = fabs((double)a[i] - b[i]);
        if (x > d || isnan(x)) d = isnan(x) ? INFINITY : x;
    }
    const double r = hi - lo;
    return d / (r > 1e-6 ? r : 1e-6);
}

float *tu_logits_copy(const bzn_ctx *c, int frame, size_t *n) {
    const float *x, *y;
    int C, H, W, C2;
    bzn_error e;
    ck_assert_msg(bzn_logits_at(c, frame, BZN_OUT_MAIN, &x, &C, &H, &W, &e) == BZN_OK, "%s", e.msg);
    ck_assert_msg(bzn_logits_at(c, frame, BZN_OUT_AUX, &y, &C2, NULL, NULL, &e) == BZN_OK, "%s", e.msg);
    const size_t a = (size_t)C * H * W, b = (size_t)C2 * H * W;
    float *out = malloc((a + b) * sizeof *out);
    memcpy(out, x, a * sizeof *out);
    memcpy(out + a, y, b * sizeof *out);
    *n = a + b;
    return out;
}
