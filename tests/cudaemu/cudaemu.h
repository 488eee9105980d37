/* cudaemu.h - CPU emulator of the CUDA execution model (test-only).
 *
 * Force-included before each backend .cu file when it is compiled as C++:
 *   clang++ -x c++ -std=c++17 -DBZN_CUDA_EMU -include tests/cudaemu/cudaemu.h
 * Runtime in cudaemu.cc.  See README.md in this directory.
 *
 * Threads of a block are fibers that switch only at __syncthreads(),
 * warp collectives, the mma/ldmatrix wrappers, and thread exit.  Blocks run one
 * at a time, so __shared__ variables are static storage in a dedicated linker
 * section that the runtime fills with 0xFF before each block.
 */
#ifndef CUDAEMU_H
#define CUDAEMU_H

#ifndef __cplusplus
#error "cudaemu.h must be compiled as C++ (clang++ -x c++ -std=c++17)"
#endif

/* Standard headers first: some of them use attribute names (__noinline__)
 * that the macros below redefine. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>
#include <algorithm>
#include <limits>

#define CUDAEMU 1

/* ------------------------------------------------------------------ */
/* Qualifiers                                                          */
/* ------------------------------------------------------------------ */
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
/* Blocks run one at a time: block-shared storage is static storage in one
 * section (poisoned with 0xFF before each block).  Needs clang++ (g++ drops
 * the section attribute on static locals of template functions). */
#define __shared__ static __attribute__((section("cudaemu_shared"), aligned(16)))
/* __restrict__ is understood by clang++ as is. */

/* ------------------------------------------------------------------ */
/* Vector types                                                        */
/* ------------------------------------------------------------------ */
struct uint3 { unsigned int x, y, z; };
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};
struct int3 { int x, y, z; };
struct float3 { float x, y, z; };
struct __align__(8) float2 { float x, y; };
struct __align__(16) float4 { float x, y, z, w; };
struct __align__(8) int2 { int x, y; };
struct __align__(16) int4 { int x, y, z, w; };
struct __align__(8) uint2 { unsigned int x, y; };
struct __align__(16) uint4 { unsigned int x, y, z, w; };
struct __align__(4) char4 { signed char x, y, z, w; };
struct __align__(4) uchar4 { unsigned char x, y, z, w; };
struct __align__(2) char2 { signed char x, y; };
struct __align__(2) uchar2 { unsigned char x, y; };
struct __align__(4) short2 { short x, y; };
struct __align__(4) ushort2 { unsigned short x, y; };
struct __align__(8) short4 { short x, y, z, w; };
struct __align__(16) double2 { double x, y; };

static inline float2 make_float2(float x, float y) { return float2{x, y}; }
static inline float3 make_float3(float x, float y, float z) { return float3{x, y, z}; }
static inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
static inline int2 make_int2(int x, int y) { return int2{x, y}; }
static inline int3 make_int3(int x, int y, int z) { return int3{x, y, z}; }
static inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }
static inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }
static inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
static inline char4 make_char4(signed char x, signed char y, signed char z, signed char w) { return char4{x, y, z, w}; }
static inline uchar4 make_uchar4(unsigned char x, unsigned char y, unsigned char z, unsigned char w) { return uchar4{x, y, z, w}; }
static inline short2 make_short2(short x, short y) { return short2{x, y}; }
static inline ushort2 make_ushort2(unsigned short x, unsigned short y) { return ushort2{x, y}; }
static inline double2 make_double2(double x, double y) { return double2{x, y}; }

/* ------------------------------------------------------------------ */
/* Runtime API types                                                   */
/* ------------------------------------------------------------------ */
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorCudartUnloading = 4,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidPitchValue = 12,
  cudaErrorInvalidSymbol = 13,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorInsufficientDriver = 35,
  cudaErrorMissingConfiguration = 52,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidKernelImage = 200,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorIllegalState = 401,
  cudaErrorNotReady = 600,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorLaunchFailure = 719,
  cudaErrorNotSupported = 801,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureMerge = 902,
  cudaErrorStreamCaptureUnmatched = 903,
  cudaErrorStreamCaptureUnjoined = 904,
  cudaErrorStreamCaptureIsolation = 905,
  cudaErrorStreamCaptureImplicit = 906,
  cudaErrorCapturedEvent = 907,
  cudaErrorStreamCaptureWrongThread = 908,
  cudaErrorUnknown = 999
};
#define cudaErrorInvalidHandle cudaErrorInvalidResourceHandle

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};

enum cudaStreamCaptureMode {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2
};
enum cudaStreamCaptureStatus {
  cudaStreamCaptureStatusNone = 0,
  cudaStreamCaptureStatusActive = 1,
  cudaStreamCaptureStatusInvalidated = 2
};

#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventBlockingSync 0x01
#define cudaEventDisableTiming 0x02
#define cudaEventInterprocess 0x04
#define cudaHostAllocDefault 0x00
#define cudaHostAllocPortable 0x01
#define cudaHostAllocMapped 0x02
#define cudaHostAllocWriteCombined 0x04

struct CUstream_st;
struct CUevent_st;
struct CUgraph_st;
struct CUgraphExec_st;
typedef CUstream_st *cudaStream_t;
typedef CUevent_st *cudaEvent_t;
typedef CUgraph_st *cudaGraph_t;
typedef CUgraphExec_st *cudaGraphExec_t;
#define cudaStreamLegacy ((cudaStream_t)0x1)
#define cudaStreamPerThread ((cudaStream_t)0x2)

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  int regsPerBlock;
  int warpSize;
  size_t memPitch;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int clockRate;
  size_t totalConstMem;
  int major;
  int minor;
  size_t textureAlignment;
  int deviceOverlap;
  int multiProcessorCount;
  int kernelExecTimeoutEnabled;
  int integrated;
  int canMapHostMemory;
  int computeMode;
  int concurrentKernels;
  int ECCEnabled;
  int pciBusID;
  int pciDeviceID;
  int pciDomainID;
  int asyncEngineCount;
  int unifiedAddressing;
  int memoryClockRate;
  int memoryBusWidth;
  int l2CacheSize;
  int maxThreadsPerMultiProcessor;
  size_t sharedMemPerMultiprocessor;
  int regsPerMultiprocessor;
  int managedMemory;
  size_t sharedMemPerBlockOptin;
  int maxBlocksPerMultiProcessor;
};

enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
  cudaFuncAttributePreferredSharedMemoryCarveout = 9
};

/* Runtime API (host).  Implemented in cudaemu.cc. */
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaSetDevice(int dev);
cudaError_t cudaGetDevice(int *dev);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int dev);
cudaError_t cudaRuntimeGetVersion(int *v);
cudaError_t cudaDriverGetVersion(int *v);
cudaError_t cudaDeviceReset(void);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaMalloc(void **p, size_t n);
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocHost(void **p, size_t n);
cudaError_t cudaHostAlloc(void **p, size_t n, unsigned int flags);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s = 0);
cudaError_t cudaMemset(void *dst, int value, size_t n);
cudaError_t cudaMemsetAsync(void *dst, int value, size_t n, cudaStream_t s = 0);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamQuery(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int flags = 0);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int flags);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventQuery(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g);
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *st);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *ge, cudaGraph_t g, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t ge, cudaStream_t s);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t ge);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
template <class F>
static inline cudaError_t cudaFuncSetAttribute(F *, cudaFuncAttribute, int) { return cudaSuccess; }
template <class T>
static inline cudaError_t cudaMemcpyToSymbol(T &sym, const void *src, size_t n, size_t off = 0,
                                             cudaMemcpyKind = cudaMemcpyHostToDevice) {
  if (off + n > sizeof(T)) return cudaErrorInvalidValue;
  memcpy(reinterpret_cast<char *>(&sym) + off, src, n);
  return cudaSuccess;
}

/* ------------------------------------------------------------------ */
/* Emulator control API                                                */
/* ------------------------------------------------------------------ */
/* The launch entry point the project's launch macro expands to. */
cudaError_t cudaemu_launch(dim3 grid, dim3 block, cudaStream_t stream, const char *file, int line,
                           std::function<void()> body);
/* "forward" (default), "reverse", "random", "random:SEED", "greedy".
 * Returns 0 on success, -1 for an unknown name (order unchanged). */
int cudaemu_set_order(const char *order);
const char *cudaemu_order_name(void);
/* "late" (default) or "early". Returns 0 / -1. */
int cudaemu_set_cpasync_mode(const char *mode);
/* Re-read CUDAEMU_* environment variables (tests). */
void cudaemu_reload_env(void);
void cudaemu_stats(long *launches, long *blocks, long *switches);

/* ------------------------------------------------------------------ */
/* Per-thread (fiber) state visible to kernel code                     */
/* ------------------------------------------------------------------ */
struct cudaemu_tstate {
  uint3 tid;          /* threadIdx */
  unsigned linear;    /* linear thread id in block */
  unsigned lane;      /* linear % 32 */
  unsigned warp;      /* linear / 32 */
  unsigned pad_;
  uint64_t cin[12];   /* collective inputs  (written by this lane) */
  uint64_t cout[4];   /* collective outputs (written by the completing lane) */
};
extern __thread cudaemu_tstate *cudaemu_cur_;
extern __thread uint3 cudaemu_blockIdx_;
extern __thread uint3 cudaemu_blockDim_;
extern __thread uint3 cudaemu_gridDim_;

#define threadIdx (cudaemu_cur_->tid)
#define blockIdx (cudaemu_blockIdx_)
#define blockDim (cudaemu_blockDim_)
#define gridDim (cudaemu_gridDim_)
static constexpr int warpSize = 32;

enum {
  CUDAEMU_K_SYNCWARP = 1, CUDAEMU_K_SHFL_IDX, CUDAEMU_K_SHFL_UP, CUDAEMU_K_SHFL_DOWN,
  CUDAEMU_K_SHFL_XOR, CUDAEMU_K_BALLOT, CUDAEMU_K_ANY, CUDAEMU_K_ALL,
  CUDAEMU_K_MMA_F16, CUDAEMU_K_MMA_S8, CUDAEMU_K_LDMATRIX, CUDAEMU_K_MMA_TF32
};
enum { CUDAEMU_B_PLAIN = 0, CUDAEMU_B_COUNT, CUDAEMU_B_AND, CUDAEMU_B_OR };

/* Block barrier; returns the reduction for count/and/or. */
int cudaemu_block_barrier(const char *file, int line, int kind, int pred);
/* Warp collective; inputs in cudaemu_cur_->cin, outputs in ->cout. */
void cudaemu_warp_collective(const char *file, int line, unsigned mask, int kind);
unsigned cudaemu_activemask(void);

#define __syncthreads() cudaemu_block_barrier(__FILE__, __LINE__, CUDAEMU_B_PLAIN, 0)
#define __syncthreads_count(p) cudaemu_block_barrier(__FILE__, __LINE__, CUDAEMU_B_COUNT, (p) ? 1 : 0)
#define __syncthreads_and(p) cudaemu_block_barrier(__FILE__, __LINE__, CUDAEMU_B_AND, (p) ? 1 : 0)
#define __syncthreads_or(p) cudaemu_block_barrier(__FILE__, __LINE__, CUDAEMU_B_OR, (p) ? 1 : 0)

static inline void cudaemu_syncwarp(const char *f, int l, unsigned mask = 0xffffffffu) {
  cudaemu_warp_collective(f, l, mask, CUDAEMU_K_SYNCWARP);
}
template <class T>
static inline uint64_t cudaemu_to_bits_(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a type > 8 bytes");
  uint64_t b = 0;
  memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
static inline T cudaemu_from_bits_(uint64_t b) {
  T v;
  memcpy(&v, &b, sizeof(T));
  return v;
}
template <class T>
static inline T cudaemu_shfl_(const char *f, int l, int kind, unsigned mask, T v, int param, int width) {
  cudaemu_tstate *t = cudaemu_cur_;
  t->cin[0] = cudaemu_to_bits_(v);
  t->cin[1] = (uint64_t)(int64_t)param;
  t->cin[2] = (uint64_t)width;
  cudaemu_warp_collective(f, l, mask, kind);
  return cudaemu_from_bits_<T>(cudaemu_cur_->cout[0]);
}
template <class T>
static inline T cudaemu_shfl_sync(const char *f, int l, unsigned mask, T v, int src, int width = 32) {
  return cudaemu_shfl_(f, l, CUDAEMU_K_SHFL_IDX, mask, v, src, width);
}
template <class T>
static inline T cudaemu_shfl_up_sync(const char *f, int l, unsigned mask, T v, unsigned d, int width = 32) {
  return cudaemu_shfl_(f, l, CUDAEMU_K_SHFL_UP, mask, v, (int)d, width);
}
template <class T>
static inline T cudaemu_shfl_down_sync(const char *f, int l, unsigned mask, T v, unsigned d, int width = 32) {
  return cudaemu_shfl_(f, l, CUDAEMU_K_SHFL_DOWN, mask, v, (int)d, width);
}
template <class T>
static inline T cudaemu_shfl_xor_sync(const char *f, int l, unsigned mask, T v, int lm, int width = 32) {
  return cudaemu_shfl_(f, l, CUDAEMU_K_SHFL_XOR, mask, v, lm, width);
}
static inline unsigned cudaemu_vote_(const char *f, int l, int kind, unsigned mask, int pred) {
  cudaemu_cur_->cin[0] = pred ? 1 : 0;
  cudaemu_warp_collective(f, l, mask, kind);
  return (unsigned)cudaemu_cur_->cout[0];
}
#define __syncwarp(...) cudaemu_syncwarp(__FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_sync(...) cudaemu_shfl_sync(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(...) cudaemu_shfl_up_sync(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(...) cudaemu_shfl_down_sync(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_xor_sync(...) cudaemu_shfl_xor_sync(__FILE__, __LINE__, __VA_ARGS__)
#define __ballot_sync(m, p) cudaemu_vote_(__FILE__, __LINE__, CUDAEMU_K_BALLOT, (m), (p) ? 1 : 0)
#define __any_sync(m, p) ((int)cudaemu_vote_(__FILE__, __LINE__, CUDAEMU_K_ANY, (m), (p) ? 1 : 0))
#define __all_sync(m, p) ((int)cudaemu_vote_(__FILE__, __LINE__, CUDAEMU_K_ALL, (m), (p) ? 1 : 0))
#define __activemask() cudaemu_activemask()

/* Tensor-core / async-copy wrappers (same names as the project's PTX wrappers). */
void cudaemu_mma_m16n8k16_f32f16(float d[4], const unsigned a[4], const unsigned b[2], const float c[4]);
/* mma.sync.m16n8k8.row.col.f32.tf32.tf32.f32: A 16x8, B 8x8 (one tf32 per register, the low
 * 13 mantissa bits ignored as the hardware does), C/D 16x8 f32. a[i]: row g + 8*(i&1), col
 * t + 4*(i>>1); b[j]: row t + 4*j, col g; c/d as m16n8k16. */
void cudaemu_mma_m16n8k8_f32tf32(float d[4], const unsigned a[4], const unsigned b[2], const float c[4]);
/* cvt.rna.tf32.f32: round to the 10-bit tf32 mantissa, ties away from zero (bits as a float) */
unsigned cudaemu_cvt_rna_tf32(float x);
void cudaemu_mma_m16n8k32_s32s8(int d[4], const unsigned a[4], const unsigned b[2], const int c[4]);
void cudaemu_ldmatrix_x4(unsigned r[4], const void *smem_row_ptr);
void cudaemu_cp_async_16(void *smem_dst, const void *gmem_src, int src_bytes);
void cudaemu_cp_async_commit(void);
void cudaemu_cp_async_wait_all(void);
void cudaemu_cp_async_wait_group(int n);

/* ------------------------------------------------------------------ */
/* Device intrinsics                                                   */
/* ------------------------------------------------------------------ */
template <class T>
static inline T __ldg(const T *p) { return *p; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __frcp_rn(float a) { return 1.0f / a; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
static inline float rsqrtf(float a) { return 1.0f / sqrtf(a); }
static inline float __frsqrt_rn(float a) { return 1.0f / sqrtf(a); }
/* glibc's <math.h> declares __expf & co. itself; map them to the libm
 * functions instead of redefining them. */
#define __expf(a) expf(a)
#define __logf(a) logf(a)
#define __log2f(a) log2f(a)
#define __sinf(a) sinf(a)
#define __cosf(a) cosf(a)
#define __powf(a, b) powf(a, b)
#define __tanhf(a) tanhf(a)
#define __exp10f(a) powf(10.0f, (a))
static inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }
static inline int cudaemu_f2i_sat_(float r) {
  if (r != r) return 0;
  if (r >= 2147483648.0f) return 2147483647;
  if (r <= -2147483648.0f) return (-2147483647 - 1);
  return (int)r;
}
static inline int __float2int_rn(float x) { return cudaemu_f2i_sat_(nearbyintf(x)); }
static inline int __float2int_rz(float x) { return cudaemu_f2i_sat_(truncf(x)); }
static inline int __float2int_rd(float x) { return cudaemu_f2i_sat_(floorf(x)); }
static inline int __float2int_ru(float x) { return cudaemu_f2i_sat_(ceilf(x)); }
static inline unsigned __float2uint_rn(float x) {
  float r = nearbyintf(x);
  if (!(r > 0.0f)) return 0u;
  if (r >= 4294967296.0f) return 0xffffffffu;
  return (unsigned)r;
}
static inline float __int2float_rn(int x) { return (float)x; }
static inline float __uint2float_rn(unsigned x) { return (float)x; }
static inline int __float_as_int(float x) { int i; memcpy(&i, &x, 4); return i; }
static inline unsigned __float_as_uint(float x) { unsigned i; memcpy(&i, &x, 4); return i; }
static inline float __int_as_float(int i) { float x; memcpy(&x, &i, 4); return x; }
static inline float __uint_as_float(unsigned i) { float x; memcpy(&x, &i, 4); return x; }

static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
static inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
static inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }

static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
static inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
  return (x >> 16) | (x << 16);
}
static inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
  uint64_t v = ((uint64_t)y << 32) | x;
  unsigned r = 0;
  for (int i = 0; i < 4; i++) r |= (unsigned)((v >> (8 * ((s >> (4 * i)) & 7))) & 0xff) << (8 * i);
  return r;
}
static inline int __mul24(int a, int b) { return (int)((unsigned)a * (unsigned)b); }
static inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
static inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }

/* Atomics: every fiber runs on one OS thread, so plain operations suffice. */
static inline int atomicAdd(int *p, int v) { int o = *p; *p = (int)((unsigned)o + (unsigned)v); return o; }
static inline unsigned atomicAdd(unsigned *p, unsigned v) { unsigned o = *p; *p = o + v; return o; }
static inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v) { unsigned long long o = *p; *p = o + v; return o; }
static inline float atomicAdd(float *p, float v) { float o = *p; *p = o + v; return o; }
static inline double atomicAdd(double *p, double v) { double o = *p; *p = o + v; return o; }
static inline int atomicSub(int *p, int v) { int o = *p; *p = (int)((unsigned)o - (unsigned)v); return o; }
static inline unsigned atomicSub(unsigned *p, unsigned v) { unsigned o = *p; *p = o - v; return o; }
static inline int atomicMax(int *p, int v) { int o = *p; if (v > o) *p = v; return o; }
static inline unsigned atomicMax(unsigned *p, unsigned v) { unsigned o = *p; if (v > o) *p = v; return o; }
static inline long long atomicMax(long long *p, long long v) { long long o = *p; if (v > o) *p = v; return o; }
static inline unsigned long long atomicMax(unsigned long long *p, unsigned long long v) { unsigned long long o = *p; if (v > o) *p = v; return o; }
static inline int atomicMin(int *p, int v) { int o = *p; if (v < o) *p = v; return o; }
static inline unsigned atomicMin(unsigned *p, unsigned v) { unsigned o = *p; if (v < o) *p = v; return o; }
static inline long long atomicMin(long long *p, long long v) { long long o = *p; if (v < o) *p = v; return o; }
static inline unsigned long long atomicMin(unsigned long long *p, unsigned long long v) { unsigned long long o = *p; if (v < o) *p = v; return o; }
static inline int atomicExch(int *p, int v) { int o = *p; *p = v; return o; }
static inline unsigned atomicExch(unsigned *p, unsigned v) { unsigned o = *p; *p = v; return o; }
static inline unsigned long long atomicExch(unsigned long long *p, unsigned long long v) { unsigned long long o = *p; *p = v; return o; }
static inline float atomicExch(float *p, float v) { float o = *p; *p = v; return o; }
static inline int atomicCAS(int *p, int c, int v) { int o = *p; if (o == c) *p = v; return o; }
static inline unsigned atomicCAS(unsigned *p, unsigned c, unsigned v) { unsigned o = *p; if (o == c) *p = v; return o; }
static inline unsigned long long atomicCAS(unsigned long long *p, unsigned long long c, unsigned long long v) { unsigned long long o = *p; if (o == c) *p = v; return o; }
static inline unsigned short atomicCAS(unsigned short *p, unsigned short c, unsigned short v) { unsigned short o = *p; if (o == c) *p = v; return o; }
static inline int atomicAnd(int *p, int v) { int o = *p; *p = o & v; return o; }
static inline unsigned atomicAnd(unsigned *p, unsigned v) { unsigned o = *p; *p = o & v; return o; }
static inline int atomicOr(int *p, int v) { int o = *p; *p = o | v; return o; }
static inline unsigned atomicOr(unsigned *p, unsigned v) { unsigned o = *p; *p = o | v; return o; }
static inline int atomicXor(int *p, int v) { int o = *p; *p = o ^ v; return o; }
static inline unsigned atomicXor(unsigned *p, unsigned v) { unsigned o = *p; *p = o ^ v; return o; }
static inline void __threadfence(void) {}
static inline void __threadfence_block(void) {}
static inline void __threadfence_system(void) {}
long long cudaemu_clock64(void);
static inline long long clock64(void) { return cudaemu_clock64(); }

static inline void __nanosleep(unsigned) {}

/* ------------------------------------------------------------------ */
/* Half precision                                                      */
/* ------------------------------------------------------------------ */
struct __align__(2) __half { unsigned short x; };
struct __align__(4) __half2 { __half x, y; };
typedef __half half;
typedef __half2 half2;

static inline unsigned short cudaemu_f2h_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) /* inf or NaN (NaN stays NaN: quiet bit set) */
    return (unsigned short)(sign | (a > 0x7f800000u ? (0x7e00u | ((a >> 13) & 0x3ffu)) : 0x7c00u));
  if (a >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u); /* >= 65520 rounds to inf */
  if (a < 0x38800000u) {                                           /* half subnormal or zero */
    uint32_t e = a >> 23;
    uint32_t s = 126u - e; /* >= 14 */
    if (s > 24u) return (unsigned short)sign;
    uint32_t m = (a & 0x7fffffu) | 0x800000u;
    uint32_t q = m >> s, rem = m & ((1u << s) - 1u), half = 1u << (s - 1u);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return (unsigned short)(sign | q);
  }
  uint32_t h = ((((a >> 23) - 112u) << 10) | ((a >> 13) & 0x3ffu));
  uint32_t rem = a & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
  return (unsigned short)(sign | h);
}
static inline float cudaemu_h2f_bits(unsigned short h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
  if (e == 0x1fu) u = sign | 0x7f800000u | (m << 13);
  else if (e != 0) u = sign | ((e + 112u) << 23) | (m << 13);
  else if (m == 0) u = sign;
  else { /* subnormal: normalise */
    int sh = __builtin_clz(m) - 21; /* bring the leading 1 to bit 10 */
    m = (m << sh) & 0x3ffu;
    u = sign | ((uint32_t)(113 - sh) << 23) | (m << 13);
  }
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static inline __half __float2half_rn(float f) { __half h; h.x = cudaemu_f2h_bits(f); return h; }
static inline __half __float2half(float f) { return __float2half_rn(f); }
static inline float __half2float(__half h) { return cudaemu_h2f_bits(h.x); }
static inline unsigned short __half_as_ushort(__half h) { return h.x; }
static inline __half __ushort_as_half(unsigned short u) { __half h; h.x = u; return h; }
static inline short __half_as_short(__half h) { return (short)h.x; }
static inline __half __short_as_half(short s) { __half h; h.x = (unsigned short)s; return h; }
static inline __half2 __floats2half2_rn(float lo, float hi) { __half2 r; r.x = __float2half_rn(lo); r.y = __float2half_rn(hi); return r; }
static inline __half2 __float2half2_rn(float v) { return __floats2half2_rn(v, v); }
static inline __half2 __halves2half2(__half lo, __half hi) { __half2 r; r.x = lo; r.y = hi; return r; }
static inline __half2 __half2half2(__half v) { return __halves2half2(v, v); }
static inline float2 __half22float2(__half2 h) { return make_float2(__half2float(h.x), __half2float(h.y)); }
static inline float __low2float(__half2 h) { return __half2float(h.x); }
static inline float __high2float(__half2 h) { return __half2float(h.y); }
static inline __half __low2half(__half2 h) { return h.x; }
static inline __half __high2half(__half2 h) { return h.y; }
static inline __half __hadd(__half a, __half b) { return __float2half_rn(__half2float(a) + __half2float(b)); }
static inline __half __hsub(__half a, __half b) { return __float2half_rn(__half2float(a) - __half2float(b)); }
static inline __half __hmul(__half a, __half b) { return __float2half_rn(__half2float(a) * __half2float(b)); }
static inline __half __hfma(__half a, __half b, __half c) { return __float2half_rn(fmaf(__half2float(a), __half2float(b), __half2float(c))); }

#endif /* CUDAEMU_H */
