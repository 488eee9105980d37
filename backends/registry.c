/*
 * registry.c - the backends this build has, in one table: the CLI's -b, its help, bench, the
 * tests (every op of every backend against ref) and bzn_ctx_create all read it. Adding a
 * backend is one folder, one line here and one line in CMakeLists.txt.
 */
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "error.h"

const bzn_backend_entry bzn_backend_registry[] = {
    {"cpu", "own AMX/AVX-512/AVX2 kernels and OpenBLAS on the host's cores", 0, bzn_backend_cpu_create},
    {"ref", "plain C loops, one thread: the oracle the other backends are tested against", 0, bzn_backend_ref_create},
#ifdef BZN_HAVE_CUDA /* BLAZENEO_CUDA: backends/cuda */
    {"cuda", "hand-written CUDA kernels on an NVIDIA GPU (FP32; TF32, FP16, INT8 tensor cores)",
     (1u << BZN_PRECISION_FP32) | (1u << BZN_PRECISION_TF32) | (1u << BZN_PRECISION_FP16) | (1u << BZN_PRECISION_INT8),
     bzn_backend_cuda_create},
#endif
    {NULL, NULL, 0, NULL},
};

bzn_status bzn_backend_create(const char *name, const bzn_backend_options *opt, bzn_backend **out, bzn_error *err) {
    if (!out) return bzn_fail(err, BZN_ERR_ARG, "NULL output pointer");
    *out = NULL;
    const bzn_backend_options none = {0, 0};
    if (!opt) opt = &none;
    /* checked here for every backend, those that ignore threads too */
    if (opt->threads < 0 || opt->threads > 1024) return bzn_fail(err, BZN_ERR_ARG, "invalid thread count %d", opt->threads);
    if (!name) name = bzn_backend_registry[0].name;
    for (const bzn_backend_entry *e = bzn_backend_registry; e->name; e++)
        if (!strcmp(e->name, name)) return e->create(opt, out, err);
    char known[256] = "";
    for (const bzn_backend_entry *e = bzn_backend_registry; e->name; e++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", e == bzn_backend_registry ? "" : ", ",
                 e->name);
    return bzn_fail(err, BZN_ERR_UNSUPPORTED, "unknown backend '%s' (this build has: %s)", name, known);
}

int bzn_backend_count(void) {
    int n = 0;
    while (bzn_backend_registry[n].name) n++;
    return n;
}

const char *bzn_backend_name(int i) { return i >= 0 && i < bzn_backend_count() ? bzn_backend_registry[i].name : NULL; }

const char *bzn_backend_description(int i) {
    return i >= 0 && i < bzn_backend_count() ? bzn_backend_registry[i].description : NULL;
}

int bzn_backend_supports(int i, bzn_precision p) {
    if (i < 0 || i >= bzn_backend_count() || (unsigned)p > 31) return 0;
    return (bzn_precision_set(bzn_backend_registry[i].precisions) >> p) & 1u;
}
