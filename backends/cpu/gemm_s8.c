/* gemm_s8.c - int8 GEMM kernels: reference, AVX2, AVX-VNNI, AVX-512 VNNI, AMX (see gemm_s8.h). */
#define _GNU_SOURCE /* syscall */
#include "gemm_s8.h"

#include <pthread.h>
#include <string.h>

#include "backend.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define BZN_X86 1
#endif
#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#define BZN_AMX 1
#endif

#ifdef BZN_AMX
/* AMX needs the CPU's tiles (CPUID.(EAX=7,ECX=0):EDX bits 24 AMX-TILE, 25 AMX-INT8), the
 * operating system's saving of them (XCR0 bits 17 and 18) and, on Linux, the process's
 * permission to use them: asked for once (arch_prctl ARCH_REQ_XCOMP_PERM, XTILEDATA), which
 * is what makes the first tile instruction not fault. */
static int amx_ok;
static void amx_probe(void) {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d >> 24 & 1) || !(d >> 25 & 1)) return;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c >> 27 & 1)) return; /* OSXSAVE: xgetbv is there */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) return;
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    amx_ok = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}
static int amx_runs(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, amx_probe);
    return amx_ok;
}
#endif

int bzn_s8_kernel_runs(bzn_s8_kernel k) {
#ifdef BZN_X86
    __builtin_cpu_init();
    switch (k) {
    case BZN_S8_REF: return 1;
    case BZN_S8_AVX2: return __builtin_cpu_supports("avx2");
    case BZN_S8_AVXVNNI: { /* CPUID.(EAX=7,ECX=1):EAX bit 4 (not every compiler's cpu_supports names it) */
        unsigned a = 0, b = 0, c = 0, d = 0;
        return __builtin_cpu_supports("avx2") && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 4 & 1);
    }
    case BZN_S8_VNNI: return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
#ifdef BZN_AMX
    case BZN_S8_AMX: return bzn_s8_kernel_runs(BZN_S8_VNNI) && amx_runs(); /* (its epilogues are AVX-512) */
#endif
    default: return 0;
    }
#else
    return k == BZN_S8_REF;
#endif
}

bzn_s8_kernel bzn_s8_best_kernel(void) {
    for (int k = BZN_S8_KERNELS - 1; k > BZN_S8_REF; k--)
        if (bzn_s8_kernel_runs((bzn_s8_kernel)k)) return (bzn_s8_kernel)k;
    return BZN_S8_REF;
}

const char *bzn_s8_kernel_name(bzn_s8_kernel k) {
    static const char *const names[BZN_S8_KERNELS] = {"reference", "avx2", "avx-vnni", "avx512-vnni", "amx"};
    return k >= BZN_S8_REF && k < BZN_S8_KERNELS ? names[k] : "?";
}

void bzn_s8_pack_a(bzn_s8_kernel kern, const int8_t *a, int m, int k, int8_t *packed, int32_t *rowsum) {
    const int mp = bzn_s8_mpad(m), kg = bzn_s8_kg_packed(kern, bzn_s8_kpad(k) / 4);
    memset(packed, 0, (size_t)mp * kg * 4);
    for (int r = 0; r < m; r++) {
        int32_t s = 0;
        for (int j = 0; j < k; j++) {
            const size_t blk = (size_t)r / BZN_S8_MR * kg * BZN_S8_MR * 4; /* the block's bytes start */
            const int row = r % BZN_S8_MR, g = j / 4, lane = j % 4;
            const size_t at = kern == BZN_S8_AMX /* [K/64][16 rows][64 k] */
                                  ? blk + ((size_t)(g / BZN_S8_AMX_KG) * BZN_S8_MR + row) * 64 + (g % BZN_S8_AMX_KG) * 4
                                  : blk + ((size_t)g * BZN_S8_MR + row) * 4; /* [K/4][16 rows][4 k] */
            packed[at + lane] = a[(size_t)r * k + j];
            s += a[(size_t)r * k + j];
        }
        rowsum[r] = s;
    }
}

/* One MR x NR tile of C, plain C: the definition every kernel must reproduce exactly. */
static void tile_ref(int kg, const size_t *goff, const int8_t *a, const uint8_t *b, int rows, int add,
                     int32_t acc[BZN_S8_MR][BZN_S8_NR]) {
    if (!add) memset(acc, 0, sizeof(int32_t) * BZN_S8_MR * BZN_S8_NR);
    for (int g = 0; g < kg; g++)
        for (int r = 0; r < rows; r++)
            for (int n = 0; n < BZN_S8_NR; n++)
                for (int l = 0; l < 4; l++)
                    acc[r][n] += (int32_t)a[(g * BZN_S8_MR + r) * 4 + l] * ((int32_t)b[goff[g] + n * 4 + l] - 128);
}

#ifdef BZN_X86
/* The 4 rows' weights of one group of 4 k (16 bytes), in both lanes; a row's 4 bytes are then
 * spread by vpshufd. On AMD EPYC (Zen 3) a broadcast load per row costs a vector pipe too,
 * and four of them per group kept the multiplies waiting (the INT8 Winograd's GEMM, the same
 * change: 1.5x). */
__attribute__((target("avx2"))) static inline __m256i rows4(const int8_t *ag) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)ag));
}

/* One 4 x 8 piece of the tile (4 int32 accumulators: with the 8 columns' q, |q| and the rows'
 * temporaries the 16 ymm registers hold it; 8 rows at once spill accumulators). q * w over
 * pairs by vpmaddubsw, which multiplies unsigned by signed bytes: |q| times w * sign(q).
 * |q| <= 127 keeps every pair's sum within int16: never saturated. */
__attribute__((target("avx2"))) static inline void piece_avx2(int kg, const size_t *goff, const int8_t *a,
                                                              const uint8_t *b, __m256i acc[4]) {
    const __m256i flip = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1);
    for (int g = 0; g < kg; g++) {
        const __m256i q = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(b + goff[g])), flip); /* 8 px x 4 k */
        const __m256i aq = _mm256_abs_epi8(q);
        const __m256i w16 = rows4(a + (size_t)g * BZN_S8_MR * 4);
#define P8_ROW(r, sel) \
    acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(_mm256_maddubs_epi16(aq, _mm256_sign_epi8(_mm256_shuffle_epi32(w16, sel), q)), ones))
        P8_ROW(0, 0x00);
        P8_ROW(1, 0x55);
        P8_ROW(2, 0xaa);
        P8_ROW(3, 0xff);
#undef P8_ROW
    }
}

/* One 4 x 16 piece of the tile where no q is negative (`nonneg`): q itself times w, without
 * the sign transfer, and 8 accumulators, so each broadcast weight serves two vectors of B (the
 * 4 x 8 piece above spends one broadcast, which on Zen 3 takes a vector pipe, per 2 multiplies
 * instead of 4). Measured on AMD EPYC (Zen 3, AVX2 only, 2 threads, 4 alternating rounds):
 * the INT8 network 104-191 ms against 150-177 ms with 4 x 8 pieces (medians of 10 runs each;
 * the machine's speed swung by 1.5x). The sign-transferring path needs |q| and q of both
 * vectors and would spill. */
#define P16_ROW(r, a0, a1)                                                                     \
    do {                                                                                       \
        const __m256i w = _mm256_shuffle_epi32(w16, (r) * 0x55);                               \
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_maddubs_epi16(q0, w), ones));        \
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_maddubs_epi16(q1, w), ones));        \
    } while (0)
__attribute__((target("avx2"))) static void piece16_avx2(int kg, const size_t *goff, const int8_t *a,
                                                         const uint8_t *b, int32_t *o0, int add) {
    const __m256i flip = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1);
    int32_t *o1 = o0 + BZN_S8_NR, *o2 = o1 + BZN_S8_NR, *o3 = o2 + BZN_S8_NR;
    __m256i a00 = _mm256_setzero_si256(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    if (add) {
        a00 = _mm256_loadu_si256((const __m256i *)o0), a01 = _mm256_loadu_si256((const __m256i *)(o0 + 8));
        a10 = _mm256_loadu_si256((const __m256i *)o1), a11 = _mm256_loadu_si256((const __m256i *)(o1 + 8));
        a20 = _mm256_loadu_si256((const __m256i *)o2), a21 = _mm256_loadu_si256((const __m256i *)(o2 + 8));
        a30 = _mm256_loadu_si256((const __m256i *)o3), a31 = _mm256_loadu_si256((const __m256i *)(o3 + 8));
    }
    for (int g = 0; g < kg; g++) {
        const uint8_t *bg = b + goff[g];
        const __m256i q0 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)bg), flip);
        const __m256i q1 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(bg + 32)), flip);
        const __m256i w16 = rows4(a + (size_t)g * BZN_S8_MR * 4);
        P16_ROW(0, a00, a01);
        P16_ROW(1, a10, a11);
        P16_ROW(2, a20, a21);
        P16_ROW(3, a30, a31);
    }
    _mm256_storeu_si256((__m256i *)o0, a00), _mm256_storeu_si256((__m256i *)(o0 + 8), a01);
    _mm256_storeu_si256((__m256i *)o1, a10), _mm256_storeu_si256((__m256i *)(o1 + 8), a11);
    _mm256_storeu_si256((__m256i *)o2, a20), _mm256_storeu_si256((__m256i *)(o2 + 8), a21);
    _mm256_storeu_si256((__m256i *)o3, a30), _mm256_storeu_si256((__m256i *)(o3 + 8), a31);
}
__attribute__((target("avx2"))) static void tile_avx2(int kg, const size_t *goff, const int8_t *a, const uint8_t *b,
                                                       int rows, int nonneg, int add,
                                                       int32_t acc_out[BZN_S8_MR][BZN_S8_NR]) {
    if (nonneg) {
        for (int r0 = 0; r0 < rows; r0 += 4)
            for (int j = 0; j < BZN_S8_NR / 16; j++)
                piece16_avx2(kg, goff, a + r0 * 4, b + j * 64, &acc_out[r0][j * 16], add);
        return;
    }
    for (int r0 = 0; r0 < rows; r0 += 4)
        for (int j = 0; j < BZN_S8_NR / 8; j++) {
            __m256i acc[4];
            for (int r = 0; r < 4; r++)
                acc[r] = add ? _mm256_loadu_si256((const __m256i *)&acc_out[r0 + r][j * 8]) : _mm256_setzero_si256();
            piece_avx2(kg, goff, a + r0 * 4, b + j * 32, acc);
            for (int r = 0; r < 4; r++) _mm256_storeu_si256((__m256i *)&acc_out[r0 + r][j * 8], acc[r]);
        }
}

/* acc += u8 x s8 dot products of 4, VEX-encoded (AVX-VNNI). Inline assembly: the intrinsic
 * has the accumulator-copy problem described at dpbusd below, and "x" keeps to ymm0-15. */
__attribute__((target("avx2,avxvnni"))) static inline __m256i dpbusd_vex(__m256i acc, __m256i u8, __m256i s8) {
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(u8), "x"(s8));
    return acc;
}

/* The tile in passes of 4 rows x 24 columns: 12 accumulators, 3 loads of B and one
 * broadcast weight register fill the 16 ymm registers; per k group 12 vpdpbusd. */
__attribute__((target("avx2,avxvnni"))) static void tile_avxvnni(int kg, const size_t *goff, const int8_t *a,
                                                                 const uint8_t *b, const int32_t *rowsum128, int rows,
                                                                 int add, int32_t acc_out[BZN_S8_MR][BZN_S8_NR]) {
    for (int r0 = 0; r0 < rows; r0 += 4)
        for (int c0 = 0; c0 < BZN_S8_NR; c0 += 24) {
            __m256i acc[4][3];
            for (int r = 0; r < 4; r++)
                for (int z = 0; z < 3; z++)
                    acc[r][z] = add ? _mm256_loadu_si256((const __m256i *)&acc_out[r0 + r][c0 + 8 * z])
                                    : _mm256_setzero_si256();
            for (int g = 0; g < kg; g++) {
                const uint8_t *bg = b + goff[g] + 4 * c0;
                const __m256i b0 = _mm256_loadu_si256((const __m256i *)bg),
                              b1 = _mm256_loadu_si256((const __m256i *)(bg + 32)),
                              b2 = _mm256_loadu_si256((const __m256i *)(bg + 64));
                const int8_t *ag = a + ((size_t)g * BZN_S8_MR + r0) * 4;
                for (int r = 0; r < 4; r++) {
                    int32_t w4;
                    memcpy(&w4, ag + r * 4, 4);
                    const __m256i w = _mm256_set1_epi32(w4);
                    acc[r][0] = dpbusd_vex(acc[r][0], b0, w);
                    acc[r][1] = dpbusd_vex(acc[r][1], b1, w);
                    acc[r][2] = dpbusd_vex(acc[r][2], b2, w);
                }
            }
            for (int r = 0; r < 4; r++) { /* remove the +128 offset of the activations */
                const __m256i off = _mm256_set1_epi32(rowsum128[r0 + r]);
                for (int z = 0; z < 3; z++)
                    _mm256_storeu_si256((__m256i *)&acc_out[r0 + r][c0 + 8 * z], _mm256_sub_epi32(acc[r][z], off));
            }
        }
}

#define BZN_S8_NZ (BZN_S8_NR / 16) /* zmm registers per row of the tile */

/* acc += u8 x s8 dot products of 4 (vpdpbusd). Inline assembly: GCC 12 copies the
 * accumulator of the intrinsic into a new register at every call, twice the instructions. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static inline __m512i dpbusd(__m512i acc, __m512i u8,
                                                                                    __m512i s8) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "v"(s8));
    return acc;
}

/* 8 rows of the tile, from row r0 */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void half_vnni(int kg, const size_t *goff, const int8_t *a,
                                                                             const uint8_t *b, const int32_t *rowsum128,
                                                                             int r0, int add,
                                                                             int32_t acc_out[BZN_S8_MR][BZN_S8_NR]) {
    enum { H = 8 };
    __m512i acc[H][BZN_S8_NZ]; /* 24 accumulators: enough in flight to hide vpdpbusd's latency */
    for (int r = 0; r < H; r++)
        for (int z = 0; z < BZN_S8_NZ; z++)
            acc[r][z] = add ? _mm512_loadu_si512(&acc_out[r0 + r][16 * z]) : _mm512_setzero_si512();
    for (int g = 0; g < kg; g++) {
        const uint8_t *bg = b + goff[g];
        __m512i bz[BZN_S8_NZ]; /* 16 columns x 4 k each */
        for (int z = 0; z < BZN_S8_NZ; z++) bz[z] = _mm512_loadu_si512(bg + 64 * z);
        const int8_t *ag = a + ((size_t)g * BZN_S8_MR + r0) * 4;
        for (int r = 0; r < H; r++) {
            int32_t w4;
            memcpy(&w4, ag + r * 4, 4);
            const __m512i w = _mm512_set1_epi32(w4);
            for (int z = 0; z < BZN_S8_NZ; z++) acc[r][z] = dpbusd(acc[r][z], bz[z], w);
        }
    }
    for (int r = 0; r < H; r++) { /* remove the +128 offset of the activations */
        const __m512i off = _mm512_set1_epi32(rowsum128[r0 + r]);
        for (int z = 0; z < BZN_S8_NZ; z++)
            _mm512_storeu_si512(&acc_out[r0 + r][16 * z], _mm512_sub_epi32(acc[r][z], off));
    }
}
/* the tile in halves of 8 rows (the 32 zmm registers hold 8 x 48 accumulators and B) */
static void tile_vnni(int kg, const size_t *goff, const int8_t *a, const uint8_t *b, const int32_t *rowsum128,
                      int rows, int add, int32_t acc_out[BZN_S8_MR][BZN_S8_NR]) {
    for (int r0 = 0; r0 < rows; r0 += 8) half_vnni(kg, goff, a, b, rowsum128, r0, add, acc_out);
}
#endif

#ifdef BZN_AMX
/* The AMX tiles: 0-2 the block's C (16 rows x 16 columns of int32 each), 3 its A (16 rows x
 * 16 groups of 4 k), 4-6 B (16 groups x 16 columns x 4 k). A thread's configuration stays
 * until bzn_s8_end. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_config;
static _Thread_local int amx_configured;

static void amx_configure(void) {
    amx_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 7; t++) c.rows[t] = 16, c.colsb[t] = 64;
    /* (not _tile_loadconfig: GCC 12 does not see that it reads the struct, and drops the
       stores above; the same for the other tile intrinsics below) */
    __asm__ volatile("ldtilecfg %0" : : "m"(c));
    amx_configured = 1;
}

/* The tile instructions as inline assembly that tells the compiler which memory they read
 * and write ("memory"): GCC 12's intrinsics do not, so it may drop the stores of a buffer
 * that only a tile load reads, or move loads across a tile store. */
#define TILE_LOAD(t, base, stride) \
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #t : : "r"(base), "r"((long)(stride)) : "memory")
#define TILE_STORE(t, base, stride) \
    __asm__ volatile("tilestored %%tmm" #t ", (%0,%1,1)" : : "r"(base), "r"((long)(stride)) : "memory")
#define TILE_ZERO(t) __asm__ volatile("tilezero %%tmm" #t : :)
#define TILE_DPBSUD(c, a, b) __asm__ volatile("tdpbsud %%tmm" #b ", %%tmm" #a ", %%tmm" #c : :) /* c += a (s8) x b (u8) */

/* whether groups g[0..16) lie `stride` (> 0) bytes apart */
static int evenly_spaced(const size_t *g, long *stride) {
    if (g[1] <= g[0]) return 0;
    const size_t s = g[1] - g[0];
    for (int i = 2; i < BZN_S8_AMX_KG; i++)
        if (g[i] - g[0] != (size_t)i * s) return 0;
    *stride = (long)s;
    return 1;
}

/* Per 16 groups of k: one tile of A and three of B (48 columns), three tdpbsud (16 x 16 x 64
 * multiply-adds each, C += A x B with A signed and B unsigned). Where the 16 groups are not
 * evenly spaced in B, or fewer remain, they are gathered into a tile-shaped buffer first
 * (missing groups 128: A is zero there). */
__attribute__((target("avx512f"))) static void tile_amx(int kg, const size_t *goff, const int8_t *a,
                                                                          const uint8_t *b, const int32_t *rowsum128,
                                                                          int add, int32_t acc[BZN_S8_MR][BZN_S8_NR]) {
    enum { ROW = BZN_S8_NR * 4 }; /* bytes of one group of B and of one row of C */
    if (!amx_configured) amx_configure();
    if (add) {
        TILE_LOAD(0, &acc[0][0], ROW);
        TILE_LOAD(1, &acc[0][16], ROW);
        TILE_LOAD(2, &acc[0][32], ROW);
    } else { /* C starts at -128 rowsum: the activations' offset, removed up front */
        _Alignas(64) int32_t off[BZN_S8_MR][16];
        for (int r = 0; r < BZN_S8_MR; r++) _mm512_store_si512(off[r], _mm512_set1_epi32(-rowsum128[r]));
        TILE_LOAD(0, off, 64);
        TILE_LOAD(1, off, 64);
        TILE_LOAD(2, off, 64);
    }
    _Alignas(64) uint8_t gathered[BZN_S8_AMX_KG * ROW];
    for (int g0 = 0; g0 < kg; g0 += BZN_S8_AMX_KG, a += BZN_S8_MR * 64) {
        const int n = kg - g0 < BZN_S8_AMX_KG ? kg - g0 : BZN_S8_AMX_KG;
        const uint8_t *bs = gathered;
        long stride = ROW;
        if (n == BZN_S8_AMX_KG && evenly_spaced(goff + g0, &stride))
            bs = b + goff[g0];
        else {
            stride = ROW;
            for (int r = 0; r < n; r++) memcpy(gathered + r * ROW, b + goff[g0 + r], ROW);
            memset(gathered + n * ROW, 128, (size_t)(BZN_S8_AMX_KG - n) * ROW);
        }
        TILE_LOAD(3, a, 64);
        TILE_LOAD(4, bs, stride);
        TILE_DPBSUD(0, 3, 4);
        TILE_LOAD(5, bs + 64, stride);
        TILE_DPBSUD(1, 3, 5);
        TILE_LOAD(6, bs + 128, stride);
        TILE_DPBSUD(2, 3, 6);
    }
    TILE_STORE(0, &acc[0][0], ROW);
    TILE_STORE(1, &acc[0][16], ROW);
    TILE_STORE(2, &acc[0][32], ROW);
}

static void amx_release(void) {
    __asm__ volatile("tilerelease");
    amx_configured = 0;
}
#endif

void bzn_s8_end(bzn_s8_kernel kern) {
#ifdef BZN_AMX
    if (kern == BZN_S8_AMX && amx_configured) amx_release();
#endif
    (void)kern;
}

void bzn_s8_block(bzn_s8_kernel kern, int kg, const int8_t *a_block, const int32_t *rowsum, int rows,
                  const uint8_t *b, const size_t *goff, int b_nonneg, int32_t acc[BZN_S8_MR][BZN_S8_NR], int add) {
    switch (kern) {
#ifdef BZN_X86
    case BZN_S8_AMX:
    case BZN_S8_VNNI:
    case BZN_S8_AVXVNNI: {
        int32_t rs[BZN_S8_MR] = {0}; /* 128 * rowsum: the activations' offset, removed once (first chunk) */
        for (int r = 0; r < rows && !add; r++) rs[r] = 128 * rowsum[r];
#ifdef BZN_AMX
        if (kern == BZN_S8_AMX) {
            tile_amx(kg, goff, a_block, b, rs, add, acc);
            break;
        }
#endif
        if (kern == BZN_S8_VNNI)
            tile_vnni(kg, goff, a_block, b, rs, rows, add, acc);
        else
            tile_avxvnni(kg, goff, a_block, b, rs, rows, add, acc);
        break;
    }
    case BZN_S8_AVX2: tile_avx2(kg, goff, a_block, b, rows, b_nonneg, add, acc); break;
#endif
    default: (void)rowsum; (void)b_nonneg; tile_ref(kg, goff, a_block, b, rows, add, acc); break;
    }
}

/* pixels [i, n) of bzn_s8_quantize4, one at a time */
static void quantize4_scalar(const float *const x[4], int i, int n, float inv, uint8_t *dst) {
    for (; i < n; i++)
        for (int l = 0; l < 4; l++) dst[4 * i + l] = x[l] ? (uint8_t)(bzn_quantize(x[l][i], inv) + 128) : 128;
}

#ifdef BZN_X86
/* 8 pixels (AVX2) or 16 (AVX-512BW) at a time, exactly bzn_quantize: per channel x * inv,
 * min(127, v) (NaN stays NaN: minps returns its second operand then), rounded to nearest even
 * (NaN and anything below -2^31 become INT_MIN); the four channels packed with signed
 * saturation to int16, then int8 (so INT_MIN becomes -128), max -127 (NaN and every v < -127
 * end at -127, as in bzn_quantize); each 128-bit lane then holds 4 channels x 4 pixels, which
 * one byte shuffle turns into 4 pixels x 4 channels; xor 0x80 adds the offset 128. */
__attribute__((target("avx2"))) static __m256i quantize_ch_avx2(const float *x, int i, __m256 inv) {
    if (!x) return _mm256_setzero_si256();
    return _mm256_cvtps_epi32(_mm256_min_ps(_mm256_set1_ps(127.0f), _mm256_mul_ps(_mm256_loadu_ps(x + i), inv)));
}

__attribute__((target("avx2"))) static void quantize4_avx2(const float *const x[4], int n, float inv, uint8_t *dst) {
    const __m256 vinv = _mm256_set1_ps(inv);
    const __m256i lo = _mm256_set1_epi8(-127), flip = _mm256_set1_epi8((char)0x80);
    const __m256i order = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, /* per lane */
                                           0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i q01 = _mm256_packs_epi32(quantize_ch_avx2(x[0], i, vinv), quantize_ch_avx2(x[1], i, vinv));
        const __m256i q23 = _mm256_packs_epi32(quantize_ch_avx2(x[2], i, vinv), quantize_ch_avx2(x[3], i, vinv));
        const __m256i q = _mm256_max_epi8(_mm256_packs_epi16(q01, q23), lo);
        _mm256_storeu_si256((__m256i *)(dst + 4 * i), _mm256_xor_si256(_mm256_shuffle_epi8(q, order), flip));
    }
    quantize4_scalar(x, i, n, inv, dst);
}

__attribute__((target("avx512f,avx512bw"))) static __m512i quantize_ch_avx512(const float *x, int i, __mmask16 k,
                                                                               __m512 inv) {
    if (!x) return _mm512_setzero_si512();
    return _mm512_cvtps_epi32(_mm512_min_ps(_mm512_set1_ps(127.0f), _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), inv)));
}

/* the last pixels in one masked step (rows of 11 or 22 pixels are mostly tail) */
__attribute__((target("avx512f,avx512bw"))) static void quantize4_avx512(const float *const x[4], int n, float inv,
                                                                        uint8_t *dst) {
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i lo = _mm512_set1_epi8(-127), flip = _mm512_set1_epi8((char)0x80);
    const __m512i order = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
    for (int i = 0; i < n; i += 16) {
        const int rest = n - i;
        const __mmask16 k = rest >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rest) - 1);
        const __mmask64 bytes = rest >= 16 ? ~(__mmask64)0 : (((__mmask64)1 << (4 * rest)) - 1);
        const __m512i q01 = _mm512_packs_epi32(quantize_ch_avx512(x[0], i, k, vinv), quantize_ch_avx512(x[1], i, k, vinv));
        const __m512i q23 = _mm512_packs_epi32(quantize_ch_avx512(x[2], i, k, vinv), quantize_ch_avx512(x[3], i, k, vinv));
        const __m512i q = _mm512_max_epi8(_mm512_packs_epi16(q01, q23), lo);
        _mm512_mask_storeu_epi8(dst + 4 * i, bytes, _mm512_xor_si512(_mm512_shuffle_epi8(q, order), flip));
    }
}
#endif

#ifdef BZN_X86
/* 16 at a time, the last ones masked; mul then add, never fused (as the reference) */
__attribute__((target("avx512f"))) static void dequantize_avx512(const int32_t *acc, int n, float mult, float bias,
                                                                 bzn_act act, float *out) {
    const __m512 m = _mm512_set1_ps(mult), b = _mm512_set1_ps(bias), zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);
    for (int i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(k, acc + i)), m), b);
        if (act != BZN_ACT_NONE) v = _mm512_max_ps(v, zero); /* NaN -> 0, like bzn_relu */
        if (act == BZN_ACT_RELU6) v = _mm512_min_ps(v, six);
        _mm512_mask_storeu_ps(out + i, k, v);
    }
}

/* the AVX2 one: 8 at a time, the tail by the plain loop below (the same floats: a multiply,
 * then an add, never fused; max and min as bzn_relu6's comparisons, NaN -> 0) */
__attribute__((target("avx2"))) static int dequantize_avx2(const int32_t *acc, int n, float mult, float bias,
                                                            bzn_act act, float *out) {
    const __m256 m = _mm256_set1_ps(mult), b = _mm256_set1_ps(bias), zero = _mm256_setzero_ps(), six = _mm256_set1_ps(6.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(acc + i))), m), b);
        if (act != BZN_ACT_NONE) v = _mm256_max_ps(v, zero);
        if (act == BZN_ACT_RELU6) v = _mm256_min_ps(v, six);
        _mm256_storeu_ps(out + i, v);
    }
    return i;
}
#endif

void bzn_s8_dequantize(bzn_s8_kernel kern, const int32_t *acc, int n, float mult, float bias, bzn_act act, float *out) {
#ifdef BZN_X86
    if (kern >= BZN_S8_VNNI) {
        dequantize_avx512(acc, n, mult, bias, act, out);
        return;
    }
    if (kern >= BZN_S8_AVX2) {
        const int done = dequantize_avx2(acc, n, mult, bias, act, out);
        acc += done, out += done, n -= done;
    }
#endif
    (void)kern;
    switch (act) { /* one loop per activation, so that each vectorises */
    case BZN_ACT_NONE:
        for (int i = 0; i < n; i++) out[i] = (float)acc[i] * mult + bias;
        break;
    case BZN_ACT_RELU:
        for (int i = 0; i < n; i++) out[i] = bzn_relu((float)acc[i] * mult + bias);
        break;
    case BZN_ACT_RELU6:
        for (int i = 0; i < n; i++) out[i] = bzn_relu6((float)acc[i] * mult + bias);
        break;
    }
}

void bzn_s8_quantize4(bzn_s8_kernel kern, const float *const x[4], int n, float inv_scale, uint8_t *dst) {
#ifdef BZN_X86
    if (kern >= BZN_S8_VNNI) { /* (AVX-512BW with them) */
        quantize4_avx512(x, n, inv_scale, dst);
        return;
    }
    if (kern >= BZN_S8_AVX2) {
        quantize4_avx2(x, n, inv_scale, dst);
        return;
    }
#endif
    (void)kern;
    quantize4_scalar(x, 0, n, inv_scale, dst);
}
