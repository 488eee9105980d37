/*
 * isa.h - which x86 instruction set the CPU backend's kernels use, chosen at run time.
 *
 * The best the CPU reports, or lower when BZN_ISA says so (to test or compare the simpler
 * paths on a machine that has the better ones):
 *   BZN_ISA=scalar   no kernel of ours: FP32 on im2col + OpenBLAS sgemm, INT8 the plain C GEMM
 *   BZN_ISA=avx2     AVX2 + FMA kernels (FP32 4 x 24 register tile, INT8 vpmaddubsw)
 *   BZN_ISA=avxvnni  the AVX2 FP32 kernel; INT8 on AVX-VNNI (256-bit vpdpbusd: Alder Lake and
 *                    later Intel client cores, AMD Zen 5)
 *   BZN_ISA=avx512   AVX-512F FP32 kernel; INT8 on AVX-512 VNNI where the CPU has it, else the
 *                    best of AVX-VNNI and AVX2 it has
 *   BZN_ISA=amx      the AVX-512 FP32 kernel; INT8 on AMX tiles (Sapphire Rapids and later
 *                    Xeons, where the OS lets the process use them), its strided
 *                    convolutions on AVX-512 VNNI
 * The levels are not a strict ladder (an AVX-512 CPU may lack AVX-VNNI): the best is the
 * highest the CPU runs. A value the CPU cannot run, or an unknown one, is an error naming
 * what this CPU runs.
 */
#ifndef BZN_CPU_ISA_H
#define BZN_CPU_ISA_H

#include "blazeneo.h"
#include "gemm_f32.h"
#include "gemm_s8.h"

typedef enum {
    BZN_ISA_SCALAR = 0,
    BZN_ISA_AVX2 = 1,
    BZN_ISA_AVXVNNI = 2,
    BZN_ISA_AVX512 = 3,
    BZN_ISA_AMX = 4,
    BZN_ISAS = 5
} bzn_isa;

/* whether this CPU runs isa's kernels */
int bzn_isa_runs(bzn_isa isa);
/* the best this CPU runs */
bzn_isa bzn_isa_best(void);
const char *bzn_isa_name(bzn_isa isa);
/* by name ("scalar", "avx2", "avxvnni", "avx512", "amx"); -1 when unknown */
int bzn_isa_parse(const char *name);
/* the ISA to run: BZN_ISA when set (checked against the CPU), else the best */
bzn_status bzn_isa_choose(bzn_isa *isa, bzn_error *err);
/* the kernels an ISA runs */
bzn_s8_kernel bzn_isa_s8_kernel(bzn_isa isa);
bzn_f32_kernel bzn_isa_f32_kernel(bzn_isa isa);

#endif
