/* isa.c - choosing the CPU backend's instruction set at run time (see isa.h). */
#include "isa.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

static const char *const isa_names[BZN_ISAS] = {"scalar", "avx2", "avxvnni", "avx512", "amx"};

int bzn_isa_runs(bzn_isa isa) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    switch (isa) {
    case BZN_ISA_SCALAR: return 1;
    case BZN_ISA_AVX2: return avx2;
    case BZN_ISA_AVXVNNI: return avx2 && bzn_s8_kernel_runs(BZN_S8_AVXVNNI);
    case BZN_ISA_AVX512: return __builtin_cpu_supports("avx512f") && avx2;
    case BZN_ISA_AMX: return bzn_isa_runs(BZN_ISA_AVX512) && bzn_s8_kernel_runs(BZN_S8_AMX);
    default: return 0;
    }
#else
    return isa == BZN_ISA_SCALAR;
#endif
}

bzn_isa bzn_isa_best(void) {
    for (int i = BZN_ISAS - 1; i > BZN_ISA_SCALAR; i--)
        if (bzn_isa_runs((bzn_isa)i)) return (bzn_isa)i;
    return BZN_ISA_SCALAR;
}

const char *bzn_isa_name(bzn_isa isa) { return isa >= BZN_ISA_SCALAR && isa < BZN_ISAS ? isa_names[isa] : "?"; }

int bzn_isa_parse(const char *name) {
    for (int i = 0; i < BZN_ISAS; i++)
        if (name && !strcmp(name, isa_names[i])) return i;
    return -1;
}

/* "scalar, avx2, ..." : the ISAs this CPU runs */
static void runs_list(char *buf, size_t size) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < BZN_ISAS && len < size; i++)
        if (bzn_isa_runs((bzn_isa)i)) len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? ", " : "", isa_names[i]);
}

bzn_status bzn_isa_choose(bzn_isa *isa, bzn_error *err) {
    const char *want = getenv("BZN_ISA");
    *isa = bzn_isa_best();
    if (!want || !*want) return BZN_OK;
    char runs[64];
    runs_list(runs, sizeof runs);
    const int w = bzn_isa_parse(want);
    if (w < 0)
        return bzn_fail(err, BZN_ERR_ARG, "BZN_ISA=%s: expected scalar, avx2, avxvnni, avx512 or amx (this CPU runs %s)",
                        want, runs);
    if (!bzn_isa_runs((bzn_isa)w))
        return bzn_fail(err, BZN_ERR_UNSUPPORTED, "BZN_ISA=%s: this CPU lacks it (it runs %s)", want, runs);
    *isa = (bzn_isa)w;
    return BZN_OK;
}

/* the best int8 kernel the CPU runs, at most the one isa names */
bzn_s8_kernel bzn_isa_s8_kernel(bzn_isa isa) {
    const bzn_s8_kernel cap = isa == BZN_ISA_AMX       ? BZN_S8_AMX
                              : isa == BZN_ISA_AVX512  ? BZN_S8_VNNI
                              : isa == BZN_ISA_AVXVNNI ? BZN_S8_AVXVNNI
                              : isa == BZN_ISA_AVX2    ? BZN_S8_AVX2
                                                       : BZN_S8_REF;
    for (int k = cap; k > BZN_S8_REF; k--)
        if (bzn_s8_kernel_runs((bzn_s8_kernel)k)) return (bzn_s8_kernel)k;
    return BZN_S8_REF;
}

bzn_f32_kernel bzn_isa_f32_kernel(bzn_isa isa) {
    const bzn_f32_kernel best = bzn_f32_best_kernel();
    const bzn_f32_kernel cap = isa >= BZN_ISA_AVX512 ? BZN_F32_AVX512 : isa != BZN_ISA_SCALAR ? BZN_F32_AVX2 : BZN_F32_SGEMM;
    return best < cap ? best : cap;
}
