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
    {"cpu", "own AVX-512/AVX2 kernels and OpenBLAS on the host's cores", bzn_backend_cpu_create},
    {"ref", "plain C loops, one thread: the oracle the other backends are tested against", bzn_backend_ref_create},
    {NULL, NULL, NULL},
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
