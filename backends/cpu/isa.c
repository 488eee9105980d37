/* isa.c - choosing the CPU backend's instruction set at run time (see isa.h). */
#include "isa.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

static const char *const isa_names[] = {"scalar", "avx2", "avx512"};

bzn_isa bzn_isa_best(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return BZN_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return BZN_ISA_AVX2;
#endif
    return BZN_ISA_SCALAR;
}

const char *bzn_isa_name(bzn_isa isa) { return isa >= BZN_ISA_SCALAR && isa <= BZN_ISA_AVX512 ? isa_names[isa] : "?"; }

int bzn_isa_parse(const char *name) {
    for (int i = 0; i <= BZN_ISA_AVX512; i++)
        if (name && !strcmp(name, isa_names[i])) return i;
    return -1;
}

bzn_status bzn_isa_choose(bzn_isa *isa, bzn_error *err) {
    const bzn_isa best = bzn_isa_best();
    const char *want = getenv("BZN_ISA");
    *isa = best;
    if (!want || !*want) return BZN_OK;
    const int w = bzn_isa_parse(want);
    if (w < 0)
        return bzn_fail(err, BZN_ERR_ARG, "BZN_ISA=%s: expected scalar, avx2 or avx512 (this CPU runs up to %s)",
                        want, bzn_isa_name(best));
    if ((bzn_isa)w > best)
        return bzn_fail(err, BZN_ERR_UNSUPPORTED, "BZN_ISA=%s: this CPU lacks it (it runs up to %s)", want,
                        bzn_isa_name(best));
    *isa = (bzn_isa)w;
    return BZN_OK;
}

bzn_s8_kernel bzn_isa_s8_kernel(bzn_isa isa) {
    const bzn_s8_kernel best = bzn_s8_best_kernel();
    const bzn_s8_kernel cap = isa == BZN_ISA_AVX512 ? BZN_S8_VNNI : isa == BZN_ISA_AVX2 ? BZN_S8_AVX2 : BZN_S8_REF;
    return best < cap ? best : cap;
}

bzn_f32_kernel bzn_isa_f32_kernel(bzn_isa isa) {
    const bzn_f32_kernel best = bzn_f32_best_kernel();
    const bzn_f32_kernel cap = isa == BZN_ISA_AVX512 ? BZN_F32_AVX512 : isa == BZN_ISA_AVX2 ? BZN_F32_AVX2 : BZN_F32_SGEMM;
    return best < cap ? best : cap;
}
