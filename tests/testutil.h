/* testutil.h - small helpers shared by the Check tests (paths, files, subprocesses). */
#ifndef BZN_TESTUTIL_H
#define BZN_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Exit code that ctest reports as "skipped" (SKIP_RETURN_CODE 77). */
#define TU_SKIP 77

/* Environment set by ctest: BZN_SOURCE_DIR, BZN_BUILD_DIR, BZN_SHARED_DIR, BZN_PYTHON, BZN_CLI.
 * Returns NULL when unset or empty. */
const char *tu_env(const char *name);
/* Path join into a static rotating buffer (valid for the next 8 calls). */
const char *tu_path(const char *dir, const char *rel);
/* 1 when BZN_PYTHON can import all of the comma-separated modules ("torch,numpy"). */
int tu_have_python(const char *modules);
/* 1 when the shared/ folder (model and data) is present. */
int tu_have_shared(void);
/* A test case that needs something absent (a tool, a Python module, ../shared): locally it is
 * skipped with a note on stderr and 1 is returned (the caller returns); in CI (environment CI
 * set), where tools/install-deps.sh --test installs everything, the absence fails the case.
 * The skip is recorded under the calling function's name (a test's, `foo` for START_TEST(foo)),
 * and tu_run_suite ends the run with "skipped cases: foo (needs X), ...". Called from main()
 * (the whole test cannot run; main then returns TU_SKIP), it prints "SKIPPED: needs X" as the
 * test's last line instead. tu_missing_in names the case itself (a helper's callers). */
#define tu_missing(what) tu_missing_in(__func__, (what))
int tu_missing_in(const char *test, const char *what);
/* A case left out for `reason` (e.g. not even added to the suite): recorded as tu_missing does. */
void tu_skip_case(const char *test, const char *reason);
/* The whole test is skipped: "SKIPPED: <reason>" as its last line of output (ctest -V shows it;
 * ctest itself says only "***Skipped"); returns TU_SKIP, for main to return. */
int tu_skip(const char *reason);
/* Run a shell command built printf-style; returns its exit status (-1 on failure to run). */
int tu_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Run the CLI ($BZN_CLI) with printf-style arguments in folder `dir`, stdin from /dev/null;
 * its stdout and stderr together are copied into out (NUL-terminated). Returns the exit status. */
int tu_cli(const char *dir, char *out, size_t outsize, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The same with stdin from file `in` (NULL: /dev/null) and stdout to file `outfile` (NULL:
 * captured with stderr); out gets what was captured. */
int tu_cli_io(const char *dir, const char *in, const char *outfile, char *out, size_t outsize, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* A file's text into buf (NUL-terminated, cut to size; empty when unreadable). */
void tu_slurp(const char *path, char *buf, size_t size);
/* Run a Check suite with the usual runner; returns the process exit status (0 all passed).
 * The last line of output is then "skipped cases: NAME (reason), ..." when some were skipped. */
struct Suite;
struct TCase;
int tu_run_suite(struct Suite *s);
/* A new test case of suite s, with a timeout in seconds (valgrind and dev-test runs are slow). */
struct TCase *tu_case(struct Suite *s, const char *name, int timeout_s);
/* One test case per test (named after it), 600 s each */
#define TU_ADD_CASE(suite, fn) tcase_add_test(tu_case(suite, #fn, 600), fn)
/* A fresh empty directory under the build tree (or /tmp); caller frees. */
char *tu_tmpdir(const char *tag);
/* Whole file into a malloc'd buffer (NULL on error). */
uint8_t *tu_read_file(const char *path, size_t *len);
int tu_write_file(const char *path, const void *data, size_t len);
/* A PNG read back with libpng's simplified API: as grey (want 1), RGB (want 3) or its stored
 * format (want 0); *channels (may be NULL) gets the channel count. NULL when unreadable. */
uint8_t *tu_read_png(const char *path, int want, int *w, int *h, int *channels);

/* max |a - b| over the range of b, max(b) - min(b) (at least 1e-6); NaN counts as infinitely far */
double tu_range_err(const float *a, const float *b, size_t n);
/* The main then auxiliary logits of frame `frame` of a context that ran both, copied (caller
 * frees); *n: their count. Fails the test case when either is missing. */
struct bzn_ctx;
float *tu_logits_copy(const struct bzn_ctx *c, int frame, size_t *n);

#endif
