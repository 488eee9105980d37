/*
 * test_parity.c - the engine against PyTorch, layer by layer and end to end.
 *
 * tests/ref/make_parity.py (Debian's python3-torch) builds BlazeNeo in every variant the
 * weight file can describe (LSC/IDA/DIA/DHA, auxiliary head on/off, 2 or 3 classes) with
 * random weights and non-trivial BatchNorm statistics, at several input sizes including
 * non-square ones, and saves each checkpoint with its input, its logits and the output of
 * every module. Here each checkpoint goes through the C converter, and the engine's outputs
 * must match PyTorch's to 1e-4 of each tensor's range, on the CPU and reference backends.
 * Skipped when python3-torch is absent.
 */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blazeneo.h"
#include "npy.h"
#include "testutil.h"

#define RTOL 1e-4

static char parity_dir[1024];


static size_t numel(int nd, const int64_t *shape) {
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)shape[i];
    return n;
}

/* the layer whose name or alias is `name`, or -1 */
static int find_layer(const bzn_ctx *c, const char *name) {
    bzn_layer_info li;
    size_t len = strlen(name);
    for (int i = 0; i < bzn_ctx_num_layers(c); i++) {
        bzn_ctx_layer(c, i, &li);
        if (!strcmp(li.name, name)) return i;
        for (const char *p = li.aliases; (p = strstr(p, name)); p += len)
            if ((p == li.aliases || p[-1] == ' ') && (p[len] == 0 || p[len] == ' ')) return i;
    }
    return -1;
}

static void check_case(const char *name, const char *backend) {
    char dir[2048], path[4096];
    snprintf(dir, sizeof dir, "%s/%s", parity_dir, name);
    bzn_error e;
    bzn_convert_report rep;
    snprintf(path, sizeof path, "%s/model-%s.bzn", dir, backend);
    ck_assert_msg(bzn_convert_checkpoint(tu_path(dir, "model.pth"), path, NULL, &rep, &e) == BZN_OK, "%s: %s", name,
                  e.msg);
    bzn_model *m;
    ck_assert_msg(bzn_model_open(path, &m, &e) == BZN_OK, "%s: %s", name, e.msg);

    float *input, *want;
    int nd;
    int64_t shape[8];
    ck_assert_int_eq(bzn_npy_read(tu_path(dir, "input.npy"), &input, &nd, shape, &e), BZN_OK);
    ck_assert_int_eq(nd, 4);
    bzn_ctx_options o = bzn_ctx_default_options(m);
    o.height = (int)shape[2];
    o.width = (int)shape[3];
    o.backend = backend;
    o.run_aux = 1;
    o.keep_intermediates = 1;
    bzn_ctx *c;
    ck_assert_msg(bzn_ctx_create(m, &o, &c, &e) == BZN_OK, "%s: %s", name, e.msg);
    ck_assert_int_eq(bzn_run_tensor(c, input, &e), BZN_OK);

    /* end to end */
    static const struct { bzn_output which; const char *file; } outs[] = {{BZN_OUT_MAIN, "main.npy"}, {BZN_OUT_AUX, "aux.npy"}};
    bzn_model_info mi;
    bzn_model_get_info(m, &mi);
    for (int k = 0; k < 1 + mi.has_aux; k++) {
        const float *got;
        int C, H, W;
        ck_assert_int_eq(bzn_npy_read(tu_path(dir, outs[k].file), &want, &nd, shape, &e), BZN_OK);
        ck_assert_int_eq(bzn_logits(c, outs[k].which, &got, &C, &H, &W, &e), BZN_OK);
        ck_assert_int_eq(numel(nd, shape), (size_t)C * H * W);
        double err = tu_range_err(got, want, (size_t)C * H * W);
        fprintf(stderr, "  %-22s %-4s %-8s rel err %.2e\n", name, o.backend,
                outs[k].file, err);
        ck_assert_msg(err <= RTOL, "%s %s: error %g of the range", name, outs[k].file, err);
        free(want);
    }
    /* every module PyTorch saw */
    snprintf(path, sizeof path, "%s/modules", dir);
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    int compared = 0;
    double worst = 0;
    char worst_name[256] = "";
    float *got = NULL;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".npy")) continue;
        char mod[256];
        snprintf(mod, sizeof mod, "%.*s", (int)(len - 4), de->d_name);
        int li = find_layer(c, mod);
        ck_assert_msg(li >= 0, "%s: the engine has no layer for PyTorch module '%s'", name, mod);
        snprintf(path, sizeof path, "%s/modules/%s", dir, de->d_name);
        ck_assert_int_eq(bzn_npy_read(path, &want, &nd, shape, &e), BZN_OK);
        bzn_layer_info info;
        bzn_ctx_layer(c, li, &info);
        size_t n = numel(nd, shape);
        ck_assert_msg(n == (size_t)info.channels * info.height * info.width, "%s: '%s' shape differs", name, mod);
        got = realloc(got, n * sizeof *got);
        ck_assert_int_eq(bzn_ctx_layer_output(c, li, got, n, &e), BZN_OK);
        double err = tu_range_err(got, want, n);
        if (err > worst) {
            worst = err;
            snprintf(worst_name, sizeof worst_name, "%s", mod);
        }
        ck_assert_msg(err <= RTOL, "%s: module '%s' differs by %g of its range", name, mod, err);
        free(want);
        compared++;
    }
    closedir(d);
    fprintf(stderr, "  %-22s %-4s %d modules, worst %s at %.2e\n", name, o.backend,
            compared, worst_name, worst);
    ck_assert_int_gt(compared, 100);
    free(got);
    free(input);
    bzn_ctx_free(c);
    bzn_model_free(m);
}

static char cases[16][64];
static int n_cases;

START_TEST(parity_cpu) { check_case(cases[_i], "cpu"); }
END_TEST
START_TEST(parity_ref) { check_case(cases[_i], "ref"); }
END_TEST

/* Variants must be told apart by the converter exactly as PyTorch built them. */
START_TEST(variant_detection) {
    for (int i = 0; i < n_cases; i++) {
        char dir[2048], path[4096];
        snprintf(dir, sizeof dir, "%s/%s", parity_dir, cases[i]);
        snprintf(path, sizeof path, "%s/model-detect.bzn", dir);
        bzn_error e;
        bzn_convert_report rep;
        ck_assert_int_eq(bzn_convert_checkpoint(tu_path(dir, "model.pth"), path, NULL, &rep, &e), BZN_OK);
        char want[64];
        snprintf(want, sizeof want, "%s_%s_c%d_", bzn_aggregation_name(rep.aggregation), rep.has_aux ? "aux" : "noaux",
                 rep.num_classes);
        for (char *p = want; *p; p++)
            if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
        ck_assert_msg(strncmp(cases[i], want, strlen(want)) == 0, "case %s detected as %s", cases[i], want);
    }
}
END_TEST

int main(void) {
    if (!tu_have_python("torch,numpy")) {
        return tu_skip("test_parity: needs python3 with torch and numpy (apt-get install python3-torch)");
    }
    snprintf(parity_dir, sizeof parity_dir, "%s/parity", tu_env("BZN_BUILD_DIR") ? tu_env("BZN_BUILD_DIR") : "/tmp");
    if (tu_run("\"%s\" \"%s/tests/ref/make_parity.py\" \"%s\"", tu_env("BZN_PYTHON"), tu_env("BZN_SOURCE_DIR"),
               parity_dir) != 0) {
        fprintf(stderr, "test_parity: make_parity.py failed\n");
        return 1;
    }
    FILE *f = fopen(tu_path(parity_dir, "cases.txt"), "r");
    if (!f) return 1;
    while (n_cases < 16 && fscanf(f, "%63s", cases[n_cases]) == 1) n_cases++;
    fclose(f);
    Suite *s = suite_create("parity");
    TCase *tc = tu_case(s, "pytorch", 900);
    tcase_add_test(tc, variant_detection);
    tcase_add_loop_test(tc, parity_cpu, 0, n_cases);
    tcase_add_loop_test(tc, parity_ref, 0, n_cases);
    const int failed = tu_run_suite(s);
    return failed || n_cases < 8 ? 1 : 0;
}
