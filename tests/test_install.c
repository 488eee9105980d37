/*
 * test_install.c - the library as an embedder gets it: `cmake --install` into a temporary
 * prefix, then a program outside the tree (examples/segment_one.c) built against that prefix
 * four ways and run on a sample frame:
 *
 *   pkg-config, shared       cc ... $(pkg-config --cflags --libs blazeneo)
 *   pkg-config, static       cc ... $(pkg-config --static --libs blazeneo), libblazeneo.a named
 *   find_package, shared     blazeneo::blazeneo         (tests/consumer/CMakeLists.txt)
 *   find_package, static     blazeneo::blazeneo_static
 *
 * Each consumer's mask must equal the CLI's for the same frame byte for byte. Also checked:
 * the installed layout, the shared library's SONAME and that it exports the bzn_ API and
 * nothing else (exactly the functions the header declares), the installed CLI and model, and
 * that the pkg-config file still works after the prefix is moved; and, without installing, the
 * project inside a parent project through add_subdirectory.
 *
 * Skipped in sanitizer builds: their library needs the sanitizer runtime in every consumer,
 * and the Release pass covers installation.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *SAMPLE = "samples/16d4ca6160127cd1d5ff99c267599fc4.jpeg";
static const char *src, *build, *tmp;
static char prefix[1024], libdir[1200], reference_mask[1024], install_log[1024];
static int install_rc = -1;

/* Run a shell command (printf-style) with its output appended to tmp/log; on failure the
 * case fails with the command's output in the message. */
static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    const char *log = tu_path(tmp, "log");
    int rc = tu_run("{ %s ; } > '%s' 2>&1", cmd, log);
    if (rc != 0) {
        char out[4096];
        tu_slurp(log, out, sizeof out);
        ck_abort_msg("exit %d: %.600s\n%.2400s", rc, cmd, out); /* Check caps a message near 4 KiB */
    }
}

/* 1 when the file's bytes equal the reference mask's */
static int same_as_reference(const char *path) {
    size_t na, nb;
    uint8_t *a = tu_read_file(path, &na), *b = tu_read_file(reference_mask, &nb);
    int same = a && b && na == nb && memcmp(a, b, na) == 0;
    free(a);
    free(b);
    return same;
}

static void require_install(void) {
    if (install_rc != 0) {
        char out[4096];
        tu_slurp(install_log, out, sizeof out);
        ck_abort_msg("cmake --install failed (%d):\n%s", install_rc, out);
    }
}

START_TEST(installed_layout) {
    require_install();
    static const char *files[] = {"include/blazeneo.h", "bin/blazeneo",
                                  "share/blazeneo/blazeneo-dha-neopolyp-small-f16.bzn",
                                  "share/doc/blazeneo/examples/segment_one.c"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) sh("test -f '%s/%s'", prefix, files[i]);
    static const char *libfiles[] = {"libblazeneo.a", "libblazeneo.so.0", "libblazeneo.so", "pkgconfig/blazeneo.pc",
                                     "cmake/blazeneo/blazeneoConfig.cmake", "cmake/blazeneo/blazeneoConfigVersion.cmake",
                                     "cmake/blazeneo/blazeneoTargets.cmake",
                                     "cmake/blazeneo/blazeneoStaticTargets.cmake"};
    for (size_t i = 0; i < sizeof libfiles / sizeof *libfiles; i++) sh("test -f '%s/%s'", libdir, libfiles[i]);
    /* the development link and the SONAME link point at the versioned file */
    sh("test -L '%s/libblazeneo.so' && test -L '%s/libblazeneo.so.0'", libdir, libdir);
    sh("readelf -d '%s/libblazeneo.so' | grep -q 'SONAME.*\\[libblazeneo.so.0\\]'", libdir);
    /* the installed CLI runs the installed model */
    sh("'%s/bin/blazeneo' info '%s/share/blazeneo/blazeneo-dha-neopolyp-small-f16.bzn' | grep -q DHA", prefix,
       prefix);
}
END_TEST

START_TEST(exports_only_the_api) {
    require_install();
    const char *so = tu_path(libdir, "libblazeneo.so");
    const char *exported = tu_path(tmp, "exported.txt"), *declared = tu_path(tmp, "declared.txt");
    sh("nm -D --defined-only '%s' | awk '$2 ~ /^[TDRB]$/ {print $3}' | sort -u > '%s'", so, exported);
    /* every function the header declares: a name followed by '(' at the start of a declaration */
    sh("grep -o 'bzn_[a-z0-9_]*(' '%s/include/blazeneo.h' | tr -d '(' | sort -u > '%s'", prefix, declared);
    /* the same two lists: nothing internal leaks, nothing declared is missing */
    sh("diff '%s' '%s'", declared, exported);
    sh("test $(wc -l < '%s') -gt 50", exported);
}
END_TEST

START_TEST(pkgconfig_shared) {
    require_install();
    const char *exe = tu_path(tmp, "pc_shared");
    sh("export PKG_CONFIG_PATH='%s/pkgconfig'; \"$BZN_CC\" -std=c11 -Wall -Werror -o '%s' "
       "'%s/examples/segment_one.c' $(pkg-config --cflags --libs blazeneo) -Wl,-rpath,'%s'",
       libdir, exe, src, libdir);
    /* linked against the installed shared library, not a copy of the code */
    sh("ldd '%s' | grep -q '%s/libblazeneo.so.0'", exe, libdir);
    sh("cd '%s' && '%s' '%s/share/blazeneo/blazeneo-dha-neopolyp-small-f16.bzn' '%s' '%s/pc_shared.png'", src,
       exe, prefix, SAMPLE, tmp);
    ck_assert_msg(same_as_reference(tu_path(tmp, "pc_shared.png")), "mask differs from the CLI's");
}
END_TEST

START_TEST(pkgconfig_static) {
    require_install();
    const char *exe = tu_path(tmp, "pc_static");
    /* with the shared library installed too, -lblazeneo would pick it: name the archive */
    sh("export PKG_CONFIG_PATH='%s/pkgconfig'; \"$BZN_CC\" -std=c11 -Wall -Werror -o '%s' "
       "'%s/examples/segment_one.c' $(pkg-config --cflags blazeneo) "
       "$(pkg-config --static --libs blazeneo | sed 's/-lblazeneo /-l:libblazeneo.a /')",
       libdir, exe, src);
    sh("! ldd '%s' | grep -q libblazeneo", exe);
    sh("cd '%s' && '%s' '%s/share/blazeneo/blazeneo-dha-neopolyp-small-f16.bzn' '%s' '%s/pc_static.png'", src,
       exe, prefix, SAMPLE, tmp);
    ck_assert_msg(same_as_reference(tu_path(tmp, "pc_static.png")), "mask differs from the CLI's");
}
END_TEST

static void find_package_build(const char *link) {
    require_install();
    char dir[1024], mask[1024];
    snprintf(dir, sizeof dir, "%s/consumer_%s", tmp, link);
    snprintf(mask, sizeof mask, "%s/fp_%s.png", tmp, link);
    sh("\"$BZN_CMAKE\" -S '%s/tests/consumer' -B '%s' -DCMAKE_PREFIX_PATH='%s' -DBZN_LINK=%s "
       "-DBZN_EXAMPLE='%s/examples/segment_one.c' -DCMAKE_C_COMPILER=\"$BZN_CC\" "
       "&& \"$BZN_CMAKE\" --build '%s'",
       src, dir, prefix, link, src, dir);
    if (strcmp(link, "static") == 0)
        sh("! ldd '%s/segment_one' | grep -q libblazeneo", dir);
    else
        sh("ldd '%s/segment_one' | grep -q '%s/libblazeneo.so.0'", dir, libdir);
    /* the model path the package reports (blazeneo_MODEL) */
    sh("cd '%s' && '%s/segment_one' \"$(cat '%s/model_path.txt')\" '%s' '%s'", src, dir, dir, SAMPLE, mask);
    ck_assert_msg(same_as_reference(mask), "mask differs from the CLI's");
}

START_TEST(find_package_shared) { find_package_build("shared"); }
END_TEST

START_TEST(find_package_static) { find_package_build("static"); }
END_TEST

START_TEST(pkgconfig_relocatable) {
    require_install();
    char moved[1024];
    const char *ld = tu_env("BZN_LIBDIR");
    snprintf(moved, sizeof moved, "%s/moved", tmp);
    sh("rm -rf '%s' && cp -a '%s' '%s'", moved, prefix, moved);
    sh("test \"$(PKG_CONFIG_PATH='%s/%s/pkgconfig' pkg-config --variable=libdir blazeneo)\" -ef '%s/%s'", moved, ld,
       moved, ld);
    sh("test \"$(PKG_CONFIG_PATH='%s/%s/pkgconfig' pkg-config --variable=modeldir blazeneo)\" -ef "
       "'%s/share/blazeneo'",
       moved, ld, moved);
}
END_TEST

/* Inside a parent project (add_subdirectory) the project sets no build type in the cache and
 * builds no tests; the parent links blazeneo::blazeneo as it would an installed one. */
START_TEST(add_subdirectory_parent) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/parent", tmp);
    sh("mkdir -p '%s/src' && printf '%%s\\n' 'cmake_minimum_required(VERSION 3.18)' 'project(parent C)' "
       "'add_subdirectory(\"%s\" blazeneo)' 'add_executable(app \"%s/examples/segment_one.c\")' "
       "'target_link_libraries(app PRIVATE blazeneo::blazeneo)' > '%s/src/CMakeLists.txt'",
       dir, src, src, dir);
    sh("\"$BZN_CMAKE\" -S '%s/src' -B '%s/build' -DCMAKE_C_COMPILER=\"$BZN_CC\" -DBLAZENEO_GSTREAMER=OFF", dir, dir);
    sh("grep -q '^CMAKE_BUILD_TYPE:STRING=$' '%s/build/CMakeCache.txt'", dir);
    sh("grep -q '^BZN_BUILD_TESTS:BOOL=OFF$' '%s/build/CMakeCache.txt'", dir);
    sh("\"$BZN_CMAKE\" --build '%s/build' --target app -j2", dir);
    sh("cd '%s' && '%s/build/app' models/blazeneo-dha-neopolyp-small-f16.bzn '%s' '%s/parent.png'", src, dir, SAMPLE,
       tmp);
    ck_assert_msg(same_as_reference(tu_path(tmp, "parent.png")), "mask differs from the CLI's");
}
END_TEST

int main(void) {
    const char *san = tu_env("BZN_SANITIZE");
    if (san && strcmp(san, "1") == 0) {
        fprintf(stderr, "test_install: SKIPPED: sanitizer build (every consumer would need the sanitizer "
                        "runtime); the Release build tests installation\n");
        return TU_SKIP;
    }
    src = tu_env("BZN_SOURCE_DIR");
    build = tu_env("BZN_BUILD_DIR");
    if (!src || !build || !tu_env("BZN_CMAKE") || !tu_env("BZN_CC") || !tu_env("BZN_LIBDIR")) {
        fprintf(stderr, "test_install: run through ctest (BZN_SOURCE_DIR, BZN_BUILD_DIR, BZN_CMAKE, BZN_CC, BZN_LIBDIR)\n");
        return 1;
    }
    if (tu_run("command -v pkg-config >/dev/null && command -v readelf >/dev/null") != 0 &&
        tu_missing("pkg-config and readelf (binutils)"))
        return TU_SKIP;
    tmp = tu_tmpdir("install");
    if (!tmp) {
        fprintf(stderr, "test_install: cannot create a temporary folder\n");
        return 1;
    }
    /* install once; the cases (forked) read the tree */
    snprintf(prefix, sizeof prefix, "%s/prefix", tmp);
    snprintf(libdir, sizeof libdir, "%s/%s", prefix, tu_env("BZN_LIBDIR"));
    snprintf(install_log, sizeof install_log, "%s/install.log", tmp);
    install_rc = tu_run("\"$BZN_CMAKE\" --install '%s' --prefix '%s' > '%s' 2>&1", build, prefix, install_log);
    /* the reference: the build tree's CLI on the same frame */
    snprintf(reference_mask, sizeof reference_mask, "%s/ref/16d4ca6160127cd1d5ff99c267599fc4.png", tmp);
    if (tu_run("cd '%s' && \"$BZN_CLI\" segment -m models/blazeneo-dha-neopolyp-small-f16.bzn -o '%s/ref' '%s' "
               ">/dev/null 2>&1",
               src, tmp, SAMPLE) != 0) {
        fprintf(stderr, "test_install: the CLI could not make the reference mask\n");
        return 1;
    }

    Suite *s = suite_create("install");
    TCase *tc = tu_case(s, "install", 600);
    tcase_add_test(tc, installed_layout);
    tcase_add_test(tc, exports_only_the_api);
    tcase_add_test(tc, pkgconfig_shared);
    tcase_add_test(tc, pkgconfig_static);
    tcase_add_test(tc, find_package_shared);
    tcase_add_test(tc, find_package_static);
    tcase_add_test(tc, pkgconfig_relocatable);
    tcase_add_test(tc, add_subdirectory_parent);
    return tu_run_suite(s);
}
