// cudaemu.cc - runtime of the CPU emulator of the CUDA execution model.
// See cudaemu.h and README.md.  Build: clang++ -std=c++17 (C++, not CUDA).
#include "cudaemu.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>
#include <vector>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUDAEMU_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define CUDAEMU_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(CUDAEMU_ASAN)
#define CUDAEMU_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(CUDAEMU_TSAN)
#define CUDAEMU_TSAN 1
#endif
#ifdef CUDAEMU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef CUDAEMU_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#if defined(__x86_64__) && !defined(CUDAEMU_FORCE_UCONTEXT)
#define CUDAEMU_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

__thread cudaemu_tstate *cudaemu_cur_;
__thread uint3 cudaemu_blockIdx_;
__thread uint3 cudaemu_blockDim_;
__thread uint3 cudaemu_gridDim_;

// Bounds of the __shared__ section (all translation units together).
extern "C" {
extern char __start_cudaemu_shared[] __attribute__((weak));
extern char __stop_cudaemu_shared[] __attribute__((weak));
}

#ifdef CUDAEMU_ASM_SWITCH
// cudaemu_ctx_switch(void **save_sp, void *new_sp): saves the callee-saved
// registers, MXCSR and the x87 control word on the current stack, stores the
// stack pointer in *save_sp, loads new_sp and restores the same set from it.
// cudaemu_fiber_entry: first "return address" of a fresh fiber; calls
// r13(r12) with an aligned stack.
asm(R"(
  .text
  .globl cudaemu_ctx_switch
  .hidden cudaemu_ctx_switch
  .type cudaemu_ctx_switch,@function
  .p2align 4
cudaemu_ctx_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $16, %rsp
  stmxcsr 8(%rsp)
  fnstcw 12(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr 8(%rsp)
  fldcw 12(%rsp)
  addq $16, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size cudaemu_ctx_switch, .-cudaemu_ctx_switch

  .globl cudaemu_fiber_entry
  .hidden cudaemu_fiber_entry
  .type cudaemu_fiber_entry,@function
  .p2align 4
cudaemu_fiber_entry:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size cudaemu_fiber_entry, .-cudaemu_fiber_entry
)");
extern "C" void cudaemu_ctx_switch(void **save_sp, void *new_sp);
extern "C" void cudaemu_fiber_entry(void);
#endif

namespace {

// ------------------------------------------------------------------------
// Configuration (environment)
// ------------------------------------------------------------------------
enum Order { ORD_FORWARD, ORD_REVERSE, ORD_RANDOM, ORD_GREEDY };

struct Config {
  int order = ORD_FORWARD;
  uint64_t seed = 1;
  char order_name[64] = "forward";
  bool cp_late = true;
  int devices = 1;
  bool driver = true;
  bool poison_shared = true;
  bool poison_malloc = true;
  size_t stack_bytes = 0;
};
Config g_cfg;
std::once_flag g_env_once;
std::mutex g_launch_mtx;  // launches are serialised (stats, PRNG)
uint64_t g_rng = 1;
std::atomic<long> g_launches{0}, g_blocks{0}, g_switches{0};

bool parse_order(const char *s) {
  if (!s || !*s || !strcmp(s, "forward")) {
    g_cfg.order = ORD_FORWARD;
  } else if (!strcmp(s, "reverse")) {
    g_cfg.order = ORD_REVERSE;
  } else if (!strcmp(s, "greedy")) {
    g_cfg.order = ORD_GREEDY;
  } else if (!strncmp(s, "random", 6) && (s[6] == 0 || s[6] == ':')) {
    uint64_t seed = 1;
    if (s[6] == ':') {
      char *end = nullptr;
      seed = strtoull(s + 7, &end, 0);
      if (end == s + 7 || *end) return false;
    }
    g_cfg.order = ORD_RANDOM;
    g_cfg.seed = seed;
    g_rng = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    if (!g_rng) g_rng = 1;
    snprintf(g_cfg.order_name, sizeof g_cfg.order_name, "random:%llu", (unsigned long long)seed);
    return true;
  } else {
    return false;
  }
  snprintf(g_cfg.order_name, sizeof g_cfg.order_name, "%s", s && *s ? s : "forward");
  return true;
}

void load_env() {
  const char *o = getenv("CUDAEMU_ORDER");
  if (!parse_order(o)) {
    fprintf(stderr, "cudaemu: unknown CUDAEMU_ORDER '%s' (forward|reverse|random[:SEED]|greedy)\n", o);
    abort();
  }
  const char *c = getenv("CUDAEMU_CPASYNC");
  if (!c || !strcmp(c, "late")) g_cfg.cp_late = true;
  else if (!strcmp(c, "early")) g_cfg.cp_late = false;
  else {
    fprintf(stderr, "cudaemu: unknown CUDAEMU_CPASYNC '%s' (late|early)\n", c);
    abort();
  }
  const char *d = getenv("CUDAEMU_DEVICES");
  g_cfg.devices = d && *d ? atoi(d) : 1;
  if (g_cfg.devices < 0) g_cfg.devices = 0;
  const char *dr = getenv("CUDAEMU_DRIVER");
  g_cfg.driver = !(dr && !strcmp(dr, "0"));
  const char *p = getenv("CUDAEMU_POISON");
  g_cfg.poison_shared = !(p && !strcmp(p, "0"));
  const char *pm = getenv("CUDAEMU_MALLOC_POISON");
  g_cfg.poison_malloc = !(pm && !strcmp(pm, "0"));
  const char *sk = getenv("CUDAEMU_STACK_KB");
  g_cfg.stack_bytes = sk && *sk ? (size_t)atol(sk) * 1024 : 0;
}
inline void env() { std::call_once(g_env_once, load_env); }

inline uint64_t rng_next() {
  uint64_t x = g_rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  g_rng = x;
  return x * 0x2545F4914F6CDD1Dull;
}

// ------------------------------------------------------------------------
// Fibers
// ------------------------------------------------------------------------
struct Ctx {
#ifdef CUDAEMU_ASM_SWITCH
  void *sp = nullptr;
#else
  ucontext_t uc;
#endif
  const void *stack_lo = nullptr;
  size_t stack_size = 0;
  void *asan_fake = nullptr;
  void *tsan_fiber = nullptr;
};

enum FState { F_RUN, F_BAR, F_WARP, F_EXIT };

struct CpOp {
  void *dst;
  const void *src;
  int bytes;
  long group;
  bool done;
};

struct Fiber {
  cudaemu_tstate pub;  // first member: cudaemu_cur_ points here
  Ctx ctx;
  int idx = 0;
  int state = F_EXIT;
  int pred = 0;
  std::vector<CpOp> cp;
  long cp_group = 0;  // number of committed groups = id of the open group
};

struct WarpGroup {
  unsigned mask, arrived;
  const char *file;
  int line, kind, first_lane;
};

struct Warp {
  WarpGroup g[32];
  int ng;
  unsigned exited, existing;
};

enum { RQ_CAP = 2048, RQ_MASK = RQ_CAP - 1 };

struct Emu {
  std::vector<Fiber *> fibers;
  Ctx sched;
  int n = 0, nwarps = 0;
  int rq[RQ_CAP];
  unsigned head = 0, tail = 0;
  int bar_arrived = 0, bar_kind = 0, bar_first = -1, bar_acc = 0, bar_result = 0;
  const char *bar_file = nullptr;
  int bar_line = 0;
  int exited = 0, first_exited = -1;
  Warp warps[32];
  const std::function<void()> *body = nullptr;
  const char *launch_file = "?";
  int launch_line = 0;
  bool in_kernel = false;
  long switches = 0;
};

__thread Emu *t_emu;

size_t stack_bytes() {
  if (g_cfg.stack_bytes) return (g_cfg.stack_bytes + 4095) & ~(size_t)4095;
#if defined(CUDAEMU_ASAN) || defined(CUDAEMU_TSAN)
  return 256 * 1024;
#else
  return 64 * 1024;
#endif
}

inline void switch_ctx(Ctx *from, Ctx *to) {
#ifdef CUDAEMU_ASAN
  __sanitizer_start_switch_fiber(&from->asan_fake, to->stack_lo, to->stack_size);
#endif
#ifdef CUDAEMU_TSAN
  __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
#ifdef CUDAEMU_ASM_SWITCH
  cudaemu_ctx_switch(&from->sp, to->sp);
#else
  swapcontext(&from->uc, &to->uc);
#endif
#ifdef CUDAEMU_ASAN
  __sanitizer_finish_switch_fiber(from->asan_fake, nullptr, nullptr);
#endif
}

void on_exit_thread(Emu *e, Fiber *f);
int pick(Emu *e);

[[noreturn]] void fiber_main(Fiber *self) {
#ifdef CUDAEMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
  for (;;) {
    Emu *e = t_emu;
    (*e->body)();
    on_exit_thread(e, self);
    // Hand over to the next runnable fiber (or the scheduler); resumed for
    // the next block, which runs the body again.
    int nx = pick(e);
    Ctx *to;
    if (nx < 0) {
      to = &e->sched;
    } else {
      Fiber *f = e->fibers[nx];
      cudaemu_cur_ = &f->pub;
      to = &f->ctx;
    }
    e->switches++;
    switch_ctx(&self->ctx, to);
  }
}

#ifndef CUDAEMU_ASM_SWITCH
void fiber_entry_uc(unsigned lo, unsigned hi) {
  fiber_main(reinterpret_cast<Fiber *>(((uintptr_t)hi << 32) | (uintptr_t)lo));
}
#endif

Fiber *make_fiber(int idx) {
  Fiber *f = new Fiber();
  f->idx = idx;
  size_t sz = stack_bytes();
  size_t guard = 4096;
  void *mem = mmap(nullptr, sz + guard, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) {
    fprintf(stderr, "cudaemu: cannot allocate fiber stack: %s\n", strerror(errno));
    abort();
  }
  mprotect(mem, guard, PROT_NONE);  // stack overflow -> SIGSEGV
  char *lo = static_cast<char *>(mem) + guard;
  f->ctx.stack_lo = lo;
  f->ctx.stack_size = sz;
#ifdef CUDAEMU_ASM_SWITCH
  uintptr_t top = ((uintptr_t)lo + sz) & ~(uintptr_t)15;
  uint64_t *t = reinterpret_cast<uint64_t *>(top);
  // Frame popped by cudaemu_ctx_switch (see the asm above).
  t[-3] = (uint64_t)(uintptr_t)&cudaemu_fiber_entry;  // return address
  t[-4] = 0;                                          // rbp (ends frame chains)
  t[-5] = 0;                                          // rbx
  t[-6] = (uint64_t)(uintptr_t)f;                     // r12 -> rdi
  t[-7] = (uint64_t)(uintptr_t)&fiber_main;           // r13 -> called
  t[-8] = 0;                                          // r14
  t[-9] = 0;                                          // r15
  uint32_t mx = 0x1F80;
  uint16_t cw = 0x037F;
  memcpy(reinterpret_cast<char *>(&t[-10]), &mx, 4);      // at sp+8
  memcpy(reinterpret_cast<char *>(&t[-10]) + 4, &cw, 2);  // at sp+12
  t[-11] = 0;
  f->ctx.sp = &t[-11];
#else
  getcontext(&f->ctx.uc);
  f->ctx.uc.uc_stack.ss_sp = lo;
  f->ctx.uc.uc_stack.ss_size = sz;
  f->ctx.uc.uc_link = nullptr;
  uintptr_t p = (uintptr_t)f;
  makecontext(&f->ctx.uc, (void (*)())fiber_entry_uc, 2, (unsigned)(p & 0xffffffffu), (unsigned)(p >> 32));
#endif
#ifdef CUDAEMU_TSAN
  f->ctx.tsan_fiber = __tsan_create_fiber(0);
#endif
  f->cp.reserve(64);
  return f;
}

Emu *get_emu() {
  if (!t_emu) {
    t_emu = new Emu();
    t_emu->fibers.reserve(1024);
  }
  return t_emu;
}

// ------------------------------------------------------------------------
// Run queue and scheduling policies
// ------------------------------------------------------------------------
inline void push_back(Emu *e, int i) { e->rq[(e->tail++) & RQ_MASK] = i; }
inline void push_front(Emu *e, int i) { e->rq[(--e->head) & RQ_MASK] = i; }

int pick(Emu *e) {
  unsigned cnt = e->tail - e->head;
  if (!cnt) return -1;
  if (g_cfg.order == ORD_RANDOM && cnt > 1) {
    unsigned k = (unsigned)(rng_next() % cnt);
    std::swap(e->rq[(e->head + k) & RQ_MASK], e->rq[e->head & RQ_MASK]);
  }
  return e->rq[(e->head++) & RQ_MASK];
}

// Make every fiber waiting at the block barrier runnable, in policy order.
void release_block(Emu *e) {
  int n = e->n;
  auto rel = [e](int i) {
    Fiber *f = e->fibers[i];
    if (f->state == F_BAR) {
      f->state = F_RUN;
      push_back(e, i);
    }
  };
  switch (g_cfg.order) {
    case ORD_REVERSE:
      for (int i = n - 1; i >= 0; i--) rel(i);
      break;
    case ORD_GREEDY:  // last warp first, lanes in order
      for (int w = e->nwarps - 1; w >= 0; w--)
        for (int i = w * 32; i < n && i < w * 32 + 32; i++) rel(i);
      break;
    default:
      for (int i = 0; i < n; i++) rel(i);
  }
}

// Make the lanes of a completed warp collective runnable.
void release_warp(Emu *e, int w, unsigned mask) {
  int base = w * 32;
  switch (g_cfg.order) {
    case ORD_REVERSE:
      for (int l = 31; l >= 0; l--)
        if (mask >> l & 1) { e->fibers[base + l]->state = F_RUN; push_back(e, base + l); }
      break;
    case ORD_GREEDY:  // the warp keeps running ahead of the others
      for (int l = 31; l >= 0; l--)
        if (mask >> l & 1) { e->fibers[base + l]->state = F_RUN; push_front(e, base + l); }
      break;
    default:
      for (int l = 0; l < 32; l++)
        if (mask >> l & 1) { e->fibers[base + l]->state = F_RUN; push_back(e, base + l); }
  }
}

// The calling fiber has set its state (waiting, or runnable and queued):
// continue with the next runnable fiber.
void resched(Emu *e, Fiber *self) {
  int nx = pick(e);
  if (nx == self->idx) return;
  Ctx *to;
  if (nx < 0) {
    to = &e->sched;
  } else {
    Fiber *f = e->fibers[nx];
    cudaemu_cur_ = &f->pub;
    to = &f->ctx;
  }
  e->switches++;
  switch_ctx(&self->ctx, to);
}

// ------------------------------------------------------------------------
// Error reports
// ------------------------------------------------------------------------
const char *kind_name(int k) {
  switch (k) {
    case CUDAEMU_K_SYNCWARP: return "__syncwarp";
    case CUDAEMU_K_SHFL_IDX: return "__shfl_sync";
    case CUDAEMU_K_SHFL_UP: return "__shfl_up_sync";
    case CUDAEMU_K_SHFL_DOWN: return "__shfl_down_sync";
    case CUDAEMU_K_SHFL_XOR: return "__shfl_xor_sync";
    case CUDAEMU_K_BALLOT: return "__ballot_sync";
    case CUDAEMU_K_ANY: return "__any_sync";
    case CUDAEMU_K_ALL: return "__all_sync";
    case CUDAEMU_K_MMA_F16: return "mma.m16n8k16.f32.f16";
    case CUDAEMU_K_MMA_S8: return "mma.m16n8k32.s32.s8";
    case CUDAEMU_K_MMA_TF32: return "mma.m16n8k8.f32.tf32";
    case CUDAEMU_K_LDMATRIX: return "ldmatrix.x4";
  }
  return "?";
}
const char *bar_name(int k) {
  switch (k) {
    case CUDAEMU_B_COUNT: return "__syncthreads_count";
    case CUDAEMU_B_AND: return "__syncthreads_and";
    case CUDAEMU_B_OR: return "__syncthreads_or";
  }
  return "__syncthreads";
}

struct TidStr {
  char s[64];
};
TidStr tid_str(Emu *e, int i) {
  TidStr t;
  const uint3 &v = e->fibers[i]->pub.tid;
  snprintf(t.s, sizeof t.s, "thread (%u,%u,%u) [warp %d lane %d]", v.x, v.y, v.z, i / 32, i % 32);
  return t;
}

void report_head(Emu *e) {
  fprintf(stderr, "cudaemu: ERROR in kernel launched at %s:%d, block (%u,%u,%u) of grid (%u,%u,%u), block dim (%u,%u,%u), order %s\n",
          e->launch_file, e->launch_line, cudaemu_blockIdx_.x, cudaemu_blockIdx_.y, cudaemu_blockIdx_.z, cudaemu_gridDim_.x,
          cudaemu_gridDim_.y, cudaemu_gridDim_.z, cudaemu_blockDim_.x, cudaemu_blockDim_.y, cudaemu_blockDim_.z, g_cfg.order_name);
}

[[noreturn]] __attribute__((format(printf, 2, 3))) void die(Emu *e, const char *fmt, ...) {
  if (e && e->in_kernel) report_head(e);
  fprintf(stderr, "cudaemu: ");
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
  fflush(stderr);
  abort();
}

inline bool same_site(const char *f1, int l1, const char *f2, int l2) {
  return l1 == l2 && (f1 == f2 || !strcmp(f1, f2));
}

void deadlock_report(Emu *e) {
  report_head(e);
  fprintf(stderr, "cudaemu: DEADLOCK: no runnable thread, %d of %d threads waiting, %d exited\n", e->n - e->exited, e->n, e->exited);
  if (e->bar_arrived)
    fprintf(stderr, "cudaemu:   %d thread(s) wait at %s %s:%d (first: %s)\n", e->bar_arrived, bar_name(e->bar_kind), e->bar_file,
            e->bar_line, tid_str(e, e->bar_first).s);
  for (int w = 0; w < e->nwarps; w++) {
    Warp &W = e->warps[w];
    for (int k = 0; k < W.ng; k++) {
      WarpGroup &g = W.g[k];
      unsigned missing = g.mask & ~g.arrived;
      fprintf(stderr, "cudaemu:   warp %d: lanes 0x%08x wait at %s %s:%d with mask 0x%08x; lanes 0x%08x never arrived", w, g.arrived,
              kind_name(g.kind), g.file, g.line, g.mask, missing);
      for (int l = 0; l < 32; l++) {
        if (!(missing >> l & 1)) continue;
        Fiber *f = e->fibers[w * 32 + l];
        if (f->state == F_BAR) fprintf(stderr, " [lane %d is at %s %s:%d]", l, bar_name(e->bar_kind), e->bar_file, e->bar_line);
        else if (f->state == F_EXIT) fprintf(stderr, " [lane %d exited]", l);
        else if (f->state == F_WARP) fprintf(stderr, " [lane %d is at another warp collective]", l);
      }
      fprintf(stderr, "\n");
    }
  }
  fflush(stderr);
  abort();
}

// ------------------------------------------------------------------------
// Thread exit
// ------------------------------------------------------------------------
void on_exit_thread(Emu *e, Fiber *f) {
  int i = f->idx;
  if (!f->cp.empty())
    die(e, "%s exited with %zu cp.async copies not waited for (missing cp_async_wait_all/wait_group)", tid_str(e, i).s,
        f->cp.size());
  if (e->bar_arrived)
    die(e, "%s exited (returned from the kernel) while %s waits at %s %s:%d: every thread of the block must reach each barrier",
        tid_str(e, i).s, tid_str(e, e->bar_first).s, bar_name(e->bar_kind), e->bar_file, e->bar_line);
  unsigned lane = f->pub.lane;
  Warp &W = e->warps[f->pub.warp];
  for (int k = 0; k < W.ng; k++) {
    if (W.g[k].mask >> lane & 1)
      die(e, "%s exited (returned from the kernel) while lanes 0x%08x of its warp wait at %s %s:%d whose mask 0x%08x includes it",
          tid_str(e, i).s, W.g[k].arrived, kind_name(W.g[k].kind), W.g[k].file, W.g[k].line, W.g[k].mask);
  }
  f->state = F_EXIT;
  W.exited |= 1u << lane;
  if (e->exited++ == 0) e->first_exited = i;
}

inline Emu *kernel_emu(const char *what) {
  Emu *e = t_emu;
  if (!e || !e->in_kernel || !cudaemu_cur_) {
    fprintf(stderr, "cudaemu: %s called outside a kernel\n", what);
    abort();
  }
  return e;
}

// ------------------------------------------------------------------------
// Shared-memory helpers
// ------------------------------------------------------------------------
inline bool in_shared(const void *p, size_t n) {
  const char *s = __start_cudaemu_shared, *t = __stop_cudaemu_shared;
  const char *c = static_cast<const char *>(p);
  return s && c >= s && c + n <= t;
}

void poison_shared() {
  char *s = __start_cudaemu_shared, *t = __stop_cudaemu_shared;
  if (s && t > s && g_cfg.poison_shared) memset(s, 0xFF, (size_t)(t - s));
}

// ------------------------------------------------------------------------
// Collective completion
// ------------------------------------------------------------------------
inline uint32_t lo32(uint64_t v) { return (uint32_t)v; }

/* tf32 operands: the float's top 19 bits (sign, exponent, 10 mantissa bits) */
inline float tf32_value(uint32_t u) {
  u &= 0xffffe000u;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* The float mmas' common half: each lane's C fragment (row g + 8*(i>=2), col 2t + (i&1)),
 * then D = A * B + C summed in k order (the products of f16 or tf32 operands are exact in
 * fp32), scattered back in the same layout. */
template <int K>
void finish_mma_f32(Emu *e, int base, const float (&A)[16][K], const float (&B)[K][8]) {
  float C[16][8];
  for (int l = 0; l < 32; l++) {
    const uint64_t *in = e->fibers[base + l]->pub.cin;
    int g = l >> 2, t = l & 3;
    for (int i = 0; i < 4; i++) {
      uint32_t u = lo32(in[6 + i]);
      float c;
      memcpy(&c, &u, 4);
      C[g + 8 * (i >= 2)][t * 2 + (i & 1)] = c;
    }
  }
  for (int l = 0; l < 32; l++) {
    uint64_t *out = e->fibers[base + l]->pub.cout;
    int g = l >> 2, t = l & 3;
    for (int i = 0; i < 4; i++) {
      int r = g + 8 * (i >= 2), c = t * 2 + (i & 1);
      float acc = C[r][c];
      for (int k = 0; k < K; k++) acc = acc + A[r][k] * B[k][c];
      uint32_t u;
      memcpy(&u, &acc, 4);
      out[i] = u;
    }
  }
}

void complete_mma_tf32(Emu *e, int base) {
  float A[16][8], B[8][8];
  for (int l = 0; l < 32; l++) {
    const uint64_t *in = e->fibers[base + l]->pub.cin;
    int g = l >> 2, t = l & 3;
    for (int i = 0; i < 4; i++) A[g + 8 * (i & 1)][t + 4 * (i >> 1)] = tf32_value(lo32(in[i]));
    for (int j = 0; j < 2; j++) B[t + 4 * j][g] = tf32_value(lo32(in[4 + j]));
  }
  finish_mma_f32(e, base, A, B);
}

void complete_mma_f16(Emu *e, int base) {
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; l++) {
    const uint64_t *in = e->fibers[base + l]->pub.cin;
    int g = l >> 2, t = l & 3;
    for (int i = 0; i < 8; i++) {
      unsigned short h = (unsigned short)(lo32(in[i >> 1]) >> (16 * (i & 1)));
      A[g + 8 * ((i >> 1) & 1)][t * 2 + (i & 1) + 8 * (i >= 4)] = cudaemu_h2f_bits(h);
    }
    for (int i = 0; i < 4; i++) {
      unsigned short h = (unsigned short)(lo32(in[4 + (i >> 1)]) >> (16 * (i & 1)));
      B[t * 2 + (i & 1) + 8 * (i >= 2)][g] = cudaemu_h2f_bits(h);
    }
  }
  finish_mma_f32(e, base, A, B);
}

void complete_mma_s8(Emu *e, int base) {
  int A[16][32], B[32][8];
  uint32_t C[16][8];
  for (int l = 0; l < 32; l++) {
    const uint64_t *in = e->fibers[base + l]->pub.cin;
    int g = l >> 2, t = l & 3;
    for (int i = 0; i < 16; i++)
      A[g + 8 * ((i >> 2) & 1)][t * 4 + (i & 3) + 16 * (i >= 8)] = (int8_t)(uint8_t)(lo32(in[i >> 2]) >> (8 * (i & 3)));
    for (int i = 0; i < 8; i++)
      B[t * 4 + (i & 3) + 16 * (i >= 4)][g] = (int8_t)(uint8_t)(lo32(in[4 + (i >> 2)]) >> (8 * (i & 3)));
    for (int i = 0; i < 4; i++) C[g + 8 * (i >= 2)][t * 2 + (i & 1)] = lo32(in[6 + i]);
  }
  for (int l = 0; l < 32; l++) {
    uint64_t *out = e->fibers[base + l]->pub.cout;
    int g = l >> 2, t = l & 3;
    for (int i = 0; i < 4; i++) {
      int r = g + 8 * (i >= 2), c = t * 2 + (i & 1);
      uint32_t acc = C[r][c];  // wrapping int32 arithmetic (no .satfinite)
      for (int k = 0; k < 32; k++) acc += (uint32_t)(A[r][k] * B[k][c]);
      out[i] = acc;
    }
  }
}

void complete_ldmatrix(Emu *e, int base) {
  for (int l = 0; l < 32; l++) {
    const char *p = reinterpret_cast<const char *>((uintptr_t)e->fibers[base + l]->pub.cin[0]);
    if (((uintptr_t)p & 15) || !in_shared(p, 16))
      die(e, "ldmatrix: lane %d supplies address %p that is not a 16-byte aligned row in __shared__ memory", l, (const void *)p);
  }
  for (int l = 0; l < 32; l++) {
    uint64_t *out = e->fibers[base + l]->pub.cout;
    for (int m = 0; m < 4; m++) {
      const char *row = reinterpret_cast<const char *>((uintptr_t)e->fibers[base + m * 8 + l / 4]->pub.cin[0]);
      uint32_t v;
      memcpy(&v, row + 4 * (l % 4), 4);
      out[m] = v;
    }
  }
}

void complete_group(Emu *e, int w, const WarpGroup &g) {
  int base = w * 32;
  unsigned m = g.mask;
  switch (g.kind) {
    case CUDAEMU_K_SYNCWARP:
      break;
    case CUDAEMU_K_SHFL_IDX:
    case CUDAEMU_K_SHFL_UP:
    case CUDAEMU_K_SHFL_DOWN:
    case CUDAEMU_K_SHFL_XOR:
      for (int l = 0; l < 32; l++) {
        if (!(m >> l & 1)) continue;
        cudaemu_tstate &t = e->fibers[base + l]->pub;
        int width = (int)t.cin[2], p = (int)(int64_t)t.cin[1];
        if (width < 1 || width > 32 || (width & (width - 1)))
          die(e, "%s at %s:%d: width %d is not a power of two in [1,32]", kind_name(g.kind), g.file, g.line, width);
        int segbase = l & ~(width - 1), src = l;
        if (g.kind == CUDAEMU_K_SHFL_IDX) src = segbase + (p & (width - 1));
        else if (g.kind == CUDAEMU_K_SHFL_UP) { src = l - p; if (src < segbase) src = l; }
        else if (g.kind == CUDAEMU_K_SHFL_DOWN) { src = l + p; if (src >= segbase + width) src = l; }
        else { src = l ^ (p & 31); if (src >= segbase + width) src = l; }
        // Reading a lane that does not take part is undefined: poison.
        t.cout[0] = (m >> src & 1) ? e->fibers[base + src]->pub.cin[0] : ~(uint64_t)0;
      }
      break;
    case CUDAEMU_K_BALLOT:
    case CUDAEMU_K_ANY:
    case CUDAEMU_K_ALL: {
      unsigned b = 0;
      for (int l = 0; l < 32; l++)
        if ((m >> l & 1) && e->fibers[base + l]->pub.cin[0]) b |= 1u << l;
      uint64_t r = g.kind == CUDAEMU_K_BALLOT ? b : g.kind == CUDAEMU_K_ANY ? (b != 0) : (b == m);
      for (int l = 0; l < 32; l++)
        if (m >> l & 1) e->fibers[base + l]->pub.cout[0] = r;
      break;
    }
    case CUDAEMU_K_MMA_F16: complete_mma_f16(e, base); break;
    case CUDAEMU_K_MMA_S8: complete_mma_s8(e, base); break;
    case CUDAEMU_K_MMA_TF32: complete_mma_tf32(e, base); break;
    case CUDAEMU_K_LDMATRIX: complete_ldmatrix(e, base); break;
  }
}

// ------------------------------------------------------------------------
// Kernel execution
// ------------------------------------------------------------------------
void run_block(Emu *e) {
  poison_shared();
  int n = e->n;
  for (int i = 0; i < n; i++) {
    Fiber *f = e->fibers[i];
    f->state = F_BAR;  // released below in policy order
    f->cp.clear();
    f->cp_group = 0;
  }
  for (int w = 0; w < e->nwarps; w++) {
    Warp &W = e->warps[w];
    W.ng = 0;
    W.exited = 0;
    int k = n - w * 32;
    W.existing = k >= 32 ? 0xffffffffu : ((1u << k) - 1u);
  }
  e->head = e->tail = 0;
  e->bar_arrived = 0;
  e->exited = 0;
  e->first_exited = -1;
  release_block(e);
  for (;;) {
    int nx = pick(e);
    if (nx < 0) break;
    Fiber *f = e->fibers[nx];
    cudaemu_cur_ = &f->pub;
    e->switches++;
    switch_ctx(&e->sched, &f->ctx);
  }
  cudaemu_cur_ = nullptr;
  if (e->exited != n) deadlock_report(e);
}

cudaError_t run_kernel(dim3 grid, dim3 block, const char *file, int line, const std::function<void()> &body) {
  std::lock_guard<std::mutex> lk(g_launch_mtx);
  Emu *e = get_emu();
  if (e->in_kernel) {
    fprintf(stderr, "cudaemu: kernel launch from inside a kernel (%s:%d) is not supported\n", file, line);
    abort();
  }
  int n = (int)(block.x * block.y * block.z);
  while ((int)e->fibers.size() < n) e->fibers.push_back(make_fiber((int)e->fibers.size()));
  for (int i = 0; i < n; i++) {
    cudaemu_tstate &t = e->fibers[i]->pub;
    t.tid.x = (unsigned)i % block.x;
    t.tid.y = ((unsigned)i / block.x) % block.y;
    t.tid.z = (unsigned)i / (block.x * block.y);
    t.linear = (unsigned)i;
    t.lane = (unsigned)i & 31;
    t.warp = (unsigned)i >> 5;
  }
  e->n = n;
  e->nwarps = (n + 31) / 32;
  e->body = &body;
  e->launch_file = file ? file : "?";
  e->launch_line = line;
  e->switches = 0;
#ifdef CUDAEMU_ASAN
  {
    pthread_attr_t a;
    void *addr = nullptr;
    size_t sz = 0;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
      pthread_attr_getstack(&a, &addr, &sz);
      pthread_attr_destroy(&a);
    }
    e->sched.stack_lo = addr;
    e->sched.stack_size = sz;
  }
#endif
#ifdef CUDAEMU_TSAN
  e->sched.tsan_fiber = __tsan_get_current_fiber();
#endif
  cudaemu_gridDim_ = uint3{grid.x, grid.y, grid.z};
  cudaemu_blockDim_ = uint3{block.x, block.y, block.z};
  e->in_kernel = true;
  long nblocks = 0;
  for (unsigned z = 0; z < grid.z; z++)
    for (unsigned y = 0; y < grid.y; y++)
      for (unsigned x = 0; x < grid.x; x++) {
        cudaemu_blockIdx_ = uint3{x, y, z};
        run_block(e);
        nblocks++;
      }
  e->in_kernel = false;
  g_launches.fetch_add(1, std::memory_order_relaxed);
  g_blocks.fetch_add(nblocks, std::memory_order_relaxed);
  g_switches.fetch_add(e->switches, std::memory_order_relaxed);
  return cudaSuccess;
}

}  // namespace

// ------------------------------------------------------------------------
// Device-side entry points
// ------------------------------------------------------------------------
int cudaemu_block_barrier(const char *file, int line, int kind, int pred) {
  Emu *e = kernel_emu("__syncthreads");
  Fiber *self = reinterpret_cast<Fiber *>(cudaemu_cur_);
  int i = self->idx;
  if (e->exited)
    die(e, "%s reached %s at %s:%d after %s exited (returned from the kernel): every thread of the block must reach each barrier",
        tid_str(e, i).s, bar_name(kind), file, line, tid_str(e, e->first_exited).s);
  if (e->bar_arrived == 0) {
    e->bar_file = file;
    e->bar_line = line;
    e->bar_kind = kind;
    e->bar_first = i;
    e->bar_acc = kind == CUDAEMU_B_AND ? 1 : 0;
  } else if (!same_site(file, line, e->bar_file, e->bar_line) || kind != e->bar_kind) {
    die(e, "divergent barrier: %s is at %s %s:%d but %s waits at %s %s:%d", tid_str(e, i).s, bar_name(kind), file, line,
        tid_str(e, e->bar_first).s, bar_name(e->bar_kind), e->bar_file, e->bar_line);
  }
  if (kind == CUDAEMU_B_COUNT) e->bar_acc += pred;
  else if (kind == CUDAEMU_B_AND) e->bar_acc &= pred;
  else if (kind == CUDAEMU_B_OR) e->bar_acc |= pred;
  self->state = F_BAR;
  if (++e->bar_arrived == e->n) {
    e->bar_result = e->bar_acc;
    e->bar_arrived = 0;
    release_block(e);
  }
  resched(e, self);
  return e->bar_result;
}

void cudaemu_warp_collective(const char *file, int line, unsigned mask, int kind) {
  Emu *e = kernel_emu(kind_name(kind));
  Fiber *self = reinterpret_cast<Fiber *>(cudaemu_cur_);
  unsigned lane = self->pub.lane;
  int w = (int)self->pub.warp;
  Warp &W = e->warps[w];
  if (!(mask >> lane & 1))
    die(e, "%s calls %s at %s:%d with mask 0x%08x that does not include its own lane %u", tid_str(e, self->idx).s, kind_name(kind),
        file, line, mask, lane);
  if ((kind == CUDAEMU_K_MMA_F16 || kind == CUDAEMU_K_MMA_S8 || kind == CUDAEMU_K_MMA_TF32 || kind == CUDAEMU_K_LDMATRIX) &&
      W.existing != 0xffffffffu)
    die(e, "%s at %s:%d needs a full warp of 32 threads (warp %d has lanes 0x%08x)", kind_name(kind), file, line, w, W.existing);
  unsigned m = mask & W.existing;
  if (m & W.exited)
    die(e, "%s calls %s at %s:%d with mask 0x%08x, but lanes 0x%08x of that mask already exited", tid_str(e, self->idx).s,
        kind_name(kind), file, line, mask, m & W.exited);
  // Join the pending instance of this collective (same mask, kind, site).
  int gi = -1;
  for (int k = 0; k < W.ng; k++) {
    WarpGroup &g = W.g[k];
    if (g.mask == m && g.kind == kind && same_site(file, line, g.file, g.line)) { gi = k; break; }
  }
  if (gi < 0) {
    // A pending collective elsewhere that expects this lane, while lanes this
    // one now waits for are already waiting there: they can never meet.
    for (int k = 0; k < W.ng; k++) {
      WarpGroup &g = W.g[k];
      if ((g.mask >> lane & 1) && (g.arrived & m))
        die(e, "mismatched warp collective: lane %u is at %s %s:%d with mask 0x%08x, but lanes 0x%08x (first: lane %d) wait at %s %s:%d with mask 0x%08x",
            lane, kind_name(kind), file, line, m, g.arrived, g.first_lane, kind_name(g.kind), g.file, g.line, g.mask);
    }
    gi = W.ng++;
    WarpGroup &g = W.g[gi];
    g.mask = m;
    g.arrived = 0;
    g.file = file;
    g.line = line;
    g.kind = kind;
    g.first_lane = (int)lane;
  }
  WarpGroup &g = W.g[gi];
  g.arrived |= 1u << lane;
  self->state = F_WARP;
  if (g.arrived == g.mask) {
    WarpGroup done = g;
    W.g[gi] = W.g[--W.ng];
    complete_group(e, w, done);
    release_warp(e, w, done.mask);
  }
  resched(e, self);
}

unsigned cudaemu_activemask(void) {
  Emu *e = kernel_emu("__activemask");
  Warp &W = e->warps[cudaemu_cur_->warp];
  return W.existing & ~W.exited;
}

namespace {
/* a float-accumulating mma: this lane's fragments into the warp's exchange, d out of it */
void mma_f32(const char *name, int kind, float d[4], const unsigned a[4], const unsigned b[2], const float c[4]) {
  cudaemu_tstate *t = cudaemu_cur_;
  if (!t) kernel_emu(name);
  for (int i = 0; i < 4; i++) t->cin[i] = a[i];
  for (int i = 0; i < 2; i++) t->cin[4 + i] = b[i];
  for (int i = 0; i < 4; i++) {
    uint32_t u;
    memcpy(&u, &c[i], 4);
    t->cin[6 + i] = u;
  }
  cudaemu_warp_collective(name, 0, 0xffffffffu, kind);
  t = cudaemu_cur_;
  for (int i = 0; i < 4; i++) {
    uint32_t u = (uint32_t)t->cout[i];
    memcpy(&d[i], &u, 4);
  }
}
}  // namespace

void cudaemu_mma_m16n8k16_f32f16(float d[4], const unsigned a[4], const unsigned b[2], const float c[4]) {
  mma_f32("cudaemu_mma_m16n8k16_f32f16", CUDAEMU_K_MMA_F16, d, a, b, c);
}

void cudaemu_mma_m16n8k8_f32tf32(float d[4], const unsigned a[4], const unsigned b[2], const float c[4]) {
  mma_f32("cudaemu_mma_m16n8k8_f32tf32", CUDAEMU_K_MMA_TF32, d, a, b, c);
}

unsigned cudaemu_cvt_rna_tf32(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return (u & 0x7fffffu) ? (u | 0x400000u) & 0xffffe000u : u; /* inf, NaN */
  u += 0x1000u; /* half of the dropped 13 bits: ties away from zero (sign-magnitude) */
  return u & 0xffffe000u;
}

void cudaemu_mma_m16n8k32_s32s8(int d[4], const unsigned a[4], const unsigned b[2], const int c[4]) {
  cudaemu_tstate *t = cudaemu_cur_;
  if (!t) kernel_emu("cudaemu_mma_m16n8k32_s32s8");
  for (int i = 0; i < 4; i++) t->cin[i] = a[i];
  for (int i = 0; i < 2; i++) t->cin[4 + i] = b[i];
  for (int i = 0; i < 4; i++) t->cin[6 + i] = (uint32_t)c[i];
  cudaemu_warp_collective("cudaemu_mma_m16n8k32_s32s8", 0, 0xffffffffu, CUDAEMU_K_MMA_S8);
  t = cudaemu_cur_;
  for (int i = 0; i < 4; i++) d[i] = (int)(uint32_t)t->cout[i];
}

void cudaemu_ldmatrix_x4(unsigned r[4], const void *smem_row_ptr) {
  cudaemu_tstate *t = cudaemu_cur_;
  if (!t) kernel_emu("cudaemu_ldmatrix_x4");
  t->cin[0] = (uint64_t)(uintptr_t)smem_row_ptr;
  cudaemu_warp_collective("cudaemu_ldmatrix_x4", 0, 0xffffffffu, CUDAEMU_K_LDMATRIX);
  t = cudaemu_cur_;
  for (int i = 0; i < 4; i++) r[i] = (unsigned)t->cout[i];
}

namespace {
inline void cp_do(const CpOp &op) {
  if (op.bytes) memcpy(op.dst, op.src, (size_t)op.bytes);
  if (op.bytes < 16) memset(static_cast<char *>(op.dst) + op.bytes, 0, (size_t)(16 - op.bytes));
}
}  // namespace

void cudaemu_cp_async_16(void *smem_dst, const void *gmem_src, int src_bytes) {
  Emu *e = kernel_emu("cudaemu_cp_async_16");
  Fiber *self = reinterpret_cast<Fiber *>(cudaemu_cur_);
  if (src_bytes < 0 || src_bytes > 16) die(e, "cp.async: src_bytes %d not in [0,16] (%s)", src_bytes, tid_str(e, self->idx).s);
  if (((uintptr_t)smem_dst & 15) || !in_shared(smem_dst, 16))
    die(e, "cp.async: destination %p is not 16-byte aligned __shared__ memory (%s)", smem_dst, tid_str(e, self->idx).s);
  if (src_bytes && ((uintptr_t)gmem_src & 15))
    die(e, "cp.async: source %p is not 16-byte aligned (%s)", gmem_src, tid_str(e, self->idx).s);
  CpOp op{smem_dst, gmem_src, src_bytes, self->cp_group, false};
  if (!g_cfg.cp_late) {
    cp_do(op);
    op.done = true;
  }
  self->cp.push_back(op);
}

void cudaemu_cp_async_commit(void) {
  kernel_emu("cudaemu_cp_async_commit");
  reinterpret_cast<Fiber *>(cudaemu_cur_)->cp_group++;
}

void cudaemu_cp_async_wait_group(int n) {
  kernel_emu("cudaemu_cp_async_wait_group");
  Fiber *self = reinterpret_cast<Fiber *>(cudaemu_cur_);
  if (n < 0) n = 0;
  long limit = self->cp_group - n;  // groups with id < limit must be complete
  size_t k = 0;
  for (size_t j = 0; j < self->cp.size(); j++) {
    CpOp &op = self->cp[j];
    if (op.group < limit) {
      if (!op.done) cp_do(op);
    } else {
      self->cp[k++] = op;
    }
  }
  self->cp.resize(k);
}

void cudaemu_cp_async_wait_all(void) {
  cudaemu_cp_async_commit();
  cudaemu_cp_async_wait_group(0);
}

long long cudaemu_clock64(void) {
  return (long long)std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// ------------------------------------------------------------------------
// Emulator control
// ------------------------------------------------------------------------
int cudaemu_set_order(const char *order) {
  env();
  std::lock_guard<std::mutex> lk(g_launch_mtx);
  Config saved = g_cfg;
  if (!parse_order(order)) {
    g_cfg = saved;
    return -1;
  }
  return 0;
}
const char *cudaemu_order_name(void) {
  env();
  return g_cfg.order_name;
}
int cudaemu_set_cpasync_mode(const char *mode) {
  env();
  if (!strcmp(mode, "late")) g_cfg.cp_late = true;
  else if (!strcmp(mode, "early")) g_cfg.cp_late = false;
  else return -1;
  return 0;
}
void cudaemu_reload_env(void) {
  env();
  std::lock_guard<std::mutex> lk(g_launch_mtx);
  load_env();
}
void cudaemu_stats(long *launches, long *blocks, long *switches) {
  if (launches) *launches = g_launches.load();
  if (blocks) *blocks = g_blocks.load();
  if (switches) *switches = g_switches.load();
}

// ------------------------------------------------------------------------
// Runtime API
// ------------------------------------------------------------------------
enum NodeType { N_KERNEL, N_MEMCPY, N_MEMSET, N_EVENT };
struct Node {
  int type = N_KERNEL;
  dim3 grid, block;
  const char *file = nullptr;
  int line = 0;
  std::function<void()> body;
  void *dst = nullptr;
  const void *src = nullptr;
  size_t n = 0;
  int value = 0;
  CUevent_st *ev = nullptr;
};

struct CUstream_st {
  unsigned flags = 0;
  int capture = cudaStreamCaptureStatusNone;
  int mode = cudaStreamCaptureModeGlobal;
  std::vector<Node> nodes;
};
struct CUevent_st {
  unsigned flags = 0;
  bool recorded = false;
  double t_ms = 0;
};
struct CUgraph_st {
  std::vector<Node> nodes;
};
struct CUgraphExec_st {
  std::vector<Node> nodes;
};

namespace {
std::recursive_mutex g_rt;
std::set<CUstream_st *> g_streams;
std::set<CUevent_st *> g_events;
std::set<CUgraph_st *> g_graphs;
std::set<CUgraphExec_st *> g_execs;
std::map<uintptr_t, size_t> g_dev;  // device allocations: start -> size
std::unordered_map<void *, size_t> g_host;
thread_local cudaError_t t_last = cudaSuccess;
thread_local int t_device = 0;

inline cudaError_t ret(cudaError_t e) {
  if (e != cudaSuccess) t_last = e;
  return e;
}
// Common gate of runtime calls: driver present, device present.
inline cudaError_t gate() {
  env();
  if (!g_cfg.driver) return cudaErrorInsufficientDriver;
  if (g_cfg.devices == 0) return cudaErrorNoDevice;
  return cudaSuccess;
}
#define CUDAEMU_GATE()                     \
  do {                                     \
    cudaError_t g_ = gate();               \
    if (g_ != cudaSuccess) return ret(g_); \
  } while (0)

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline bool is_default(cudaStream_t s) { return s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread; }
bool valid_stream(cudaStream_t s) { return is_default(s) || g_streams.count(s); }

// A synchronous / unsafe call while a capture is active: invalidate the
// captures it conflicts with.  alloc: cudaMalloc-like (allowed in relaxed mode).
bool capture_conflict(bool alloc) {
  bool hit = false;
  for (CUstream_st *s : g_streams) {
    if (s->capture == cudaStreamCaptureStatusNone) continue;
    if (alloc && s->mode == cudaStreamCaptureModeRelaxed) continue;
    s->capture = cudaStreamCaptureStatusInvalidated;
    hit = true;
  }
  return hit;
}

// Is [p, p+n) inside one device allocation?
bool dev_range(const void *p, size_t n) {
  uintptr_t a = (uintptr_t)p;
  auto it = g_dev.upper_bound(a);
  if (it == g_dev.begin()) return false;
  --it;
  return a >= it->first && a + n <= it->first + it->second;
}

cudaError_t exec_node(const Node &nd) {
  switch (nd.type) {
    case N_KERNEL: return run_kernel(nd.grid, nd.block, nd.file, nd.line, nd.body);
    case N_MEMCPY: if (nd.n) memcpy(nd.dst, nd.src, nd.n); return cudaSuccess;
    case N_MEMSET: if (nd.n) memset(nd.dst, nd.value, nd.n); return cudaSuccess;
    case N_EVENT:
      nd.ev->recorded = true;
      nd.ev->t_ms = now_ms();
      return cudaSuccess;
  }
  return cudaErrorUnknown;
}

// Stream-ordered operation: appended to the capture of s, or executed now.
cudaError_t enqueue(cudaStream_t s, Node &&nd) {
  {
    std::lock_guard<std::recursive_mutex> lk(g_rt);
    if (!valid_stream(s)) return cudaErrorInvalidResourceHandle;
    if (!is_default(s)) {
      if (s->capture == cudaStreamCaptureStatusActive) {
        s->nodes.push_back(std::move(nd));
        return cudaSuccess;
      }
      if (s->capture == cudaStreamCaptureStatusInvalidated) return cudaErrorStreamCaptureInvalidated;
    } else if (s != cudaStreamPerThread) {
      // The legacy stream synchronises implicitly with blocking streams.
      bool hit = false;
      for (CUstream_st *c : g_streams)
        if (c->capture == cudaStreamCaptureStatusActive && !(c->flags & cudaStreamNonBlocking)) {
          c->capture = cudaStreamCaptureStatusInvalidated;
          hit = true;
        }
      if (hit) return cudaErrorStreamCaptureImplicit;
    }
  }
  return exec_node(nd);
}

bool valid_kind(cudaMemcpyKind k) { return (unsigned)k <= (unsigned)cudaMemcpyDefault; }

cudaError_t check_copy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) {
  if (!valid_kind(kind)) return cudaErrorInvalidMemcpyDirection;
  if (n == 0) return cudaSuccess;
  if (!dst || !src) return cudaErrorInvalidValue;
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  bool ddev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  bool sdev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (ddev && !dev_range(dst, n)) return cudaErrorInvalidValue;
  if (sdev && !dev_range(src, n)) return cudaErrorInvalidValue;
  return cudaSuccess;
}
}  // namespace

cudaError_t cudaemu_launch(dim3 grid, dim3 block, cudaStream_t stream, const char *file, int line, std::function<void()> body) {
  CUDAEMU_GATE();
  unsigned long long nt = (unsigned long long)block.x * block.y * block.z;
  if (nt < 1 || nt > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x < 1 || grid.y < 1 || grid.z < 1 ||
      grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535)
    return ret(cudaErrorInvalidConfiguration);
  if (!body) return ret(cudaErrorInvalidValue);
  Node nd;
  nd.type = N_KERNEL;
  nd.grid = grid;
  nd.block = block;
  nd.file = file;
  nd.line = line;
  nd.body = std::move(body);
  return ret(enqueue(stream, std::move(nd)));
}

static const struct {
  cudaError_t e;
  const char *name, *str;
} k_errs[] = {
    {cudaSuccess, "cudaSuccess", "no error"},
    {cudaErrorInvalidValue, "cudaErrorInvalidValue", "invalid argument"},
    {cudaErrorMemoryAllocation, "cudaErrorMemoryAllocation", "out of memory"},
    {cudaErrorInitializationError, "cudaErrorInitializationError", "initialization error"},
    {cudaErrorCudartUnloading, "cudaErrorCudartUnloading", "driver shutting down"},
    {cudaErrorInvalidConfiguration, "cudaErrorInvalidConfiguration", "invalid configuration argument"},
    {cudaErrorInvalidPitchValue, "cudaErrorInvalidPitchValue", "invalid pitch argument"},
    {cudaErrorInvalidSymbol, "cudaErrorInvalidSymbol", "invalid device symbol"},
    {cudaErrorInvalidDevicePointer, "cudaErrorInvalidDevicePointer", "invalid device pointer"},
    {cudaErrorInvalidMemcpyDirection, "cudaErrorInvalidMemcpyDirection", "invalid copy direction for memcpy"},
    {cudaErrorInsufficientDriver, "cudaErrorInsufficientDriver", "CUDA driver version is insufficient for CUDA runtime version"},
    {cudaErrorMissingConfiguration, "cudaErrorMissingConfiguration", "__global__ function call is not configured"},
    {cudaErrorNoDevice, "cudaErrorNoDevice", "no CUDA-capable device is detected"},
    {cudaErrorInvalidDevice, "cudaErrorInvalidDevice", "invalid device ordinal"},
    {cudaErrorInvalidKernelImage, "cudaErrorInvalidKernelImage", "device kernel image is invalid"},
    {cudaErrorInvalidResourceHandle, "cudaErrorInvalidResourceHandle", "invalid resource handle"},
    {cudaErrorIllegalState, "cudaErrorIllegalState", "the operation cannot be performed in the present state"},
    {cudaErrorNotReady, "cudaErrorNotReady", "device not ready"},
    {cudaErrorIllegalAddress, "cudaErrorIllegalAddress", "an illegal memory access was encountered"},
    {cudaErrorLaunchOutOfResources, "cudaErrorLaunchOutOfResources", "too many resources requested for launch"},
    {cudaErrorLaunchFailure, "cudaErrorLaunchFailure", "unspecified launch failure"},
    {cudaErrorNotSupported, "cudaErrorNotSupported", "operation not supported"},
    {cudaErrorStreamCaptureUnsupported, "cudaErrorStreamCaptureUnsupported", "operation not permitted when stream is capturing"},
    {cudaErrorStreamCaptureInvalidated, "cudaErrorStreamCaptureInvalidated", "operation failed due to a previous error during capture"},
    {cudaErrorStreamCaptureMerge, "cudaErrorStreamCaptureMerge", "operation would result in a merge of separate capture sequences"},
    {cudaErrorStreamCaptureUnmatched, "cudaErrorStreamCaptureUnmatched", "capture was not ended in the same stream as it began"},
    {cudaErrorStreamCaptureUnjoined, "cudaErrorStreamCaptureUnjoined", "capturing stream has unjoined work"},
    {cudaErrorStreamCaptureIsolation, "cudaErrorStreamCaptureIsolation", "dependency created on uncaptured work in another stream"},
    {cudaErrorStreamCaptureImplicit, "cudaErrorStreamCaptureImplicit", "operation would make the legacy stream depend on a capturing blocking stream"},
    {cudaErrorCapturedEvent, "cudaErrorCapturedEvent", "operation not permitted on an event last recorded in a capturing stream"},
    {cudaErrorStreamCaptureWrongThread, "cudaErrorStreamCaptureWrongThread", "attempt to terminate a thread-local capture sequence from another thread"},
    {cudaErrorUnknown, "cudaErrorUnknown", "unknown error"},
};

const char *cudaGetErrorString(cudaError_t e) {
  for (auto &x : k_errs)
    if (x.e == e) return x.str;
  return "unrecognized error code";
}
const char *cudaGetErrorName(cudaError_t e) {
  for (auto &x : k_errs)
    if (x.e == e) return x.name;
  return "cudaErrorUnknown";
}
cudaError_t cudaGetLastError(void) {
  cudaError_t e = t_last;
  t_last = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError(void) { return t_last; }

cudaError_t cudaGetDeviceCount(int *count) {
  env();
  if (!count) return ret(cudaErrorInvalidValue);
  *count = 0;
  if (!g_cfg.driver) return ret(cudaErrorInsufficientDriver);
  if (g_cfg.devices == 0) return ret(cudaErrorNoDevice);
  *count = g_cfg.devices;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int dev) {
  CUDAEMU_GATE();
  if (dev < 0 || dev >= g_cfg.devices) return ret(cudaErrorInvalidDevice);
  t_device = dev;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int *dev) {
  CUDAEMU_GATE();
  if (!dev) return ret(cudaErrorInvalidValue);
  *dev = t_device;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int dev) {
  CUDAEMU_GATE();
  if (!p) return ret(cudaErrorInvalidValue);
  if (dev < 0 || dev >= g_cfg.devices) return ret(cudaErrorInvalidDevice);
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "cudaemu (CPU emulator)");
  p->totalGlobalMem = (size_t)16 << 30;
  p->sharedMemPerBlock = 48 * 1024;
  p->regsPerBlock = 65536;
  p->warpSize = 32;
  p->memPitch = (size_t)1 << 31;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = 1024;
  p->maxThreadsDim[1] = 1024;
  p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 0x7fffffff;
  p->maxGridSize[1] = 65535;
  p->maxGridSize[2] = 65535;
  p->clockRate = 1000000;
  p->totalConstMem = 65536;
  p->major = 9;
  p->minor = 0;
  p->textureAlignment = 512;
  p->deviceOverlap = 1;
  p->multiProcessorCount = 132;
  p->canMapHostMemory = 1;
  p->concurrentKernels = 1;
  p->pciBusID = dev;
  p->asyncEngineCount = 1;
  p->unifiedAddressing = 1;
  p->memoryClockRate = 1000000;
  p->memoryBusWidth = 5120;
  p->l2CacheSize = 50 * 1024 * 1024;
  p->maxThreadsPerMultiProcessor = 2048;
  p->sharedMemPerMultiprocessor = 228 * 1024;
  p->regsPerMultiprocessor = 65536;
  p->managedMemory = 1;
  p->sharedMemPerBlockOptin = 48 * 1024;
  p->maxBlocksPerMultiProcessor = 32;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int *v) {
  env();
  if (!v) return ret(cudaErrorInvalidValue);
  *v = 12040;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int *v) {
  env();
  if (!v) return ret(cudaErrorInvalidValue);
  *v = g_cfg.driver ? 12040 : 0;
  return cudaSuccess;
}
cudaError_t cudaDeviceReset(void) {
  CUDAEMU_GATE();
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) {
  CUDAEMU_GATE();
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  if (capture_conflict(false)) return ret(cudaErrorStreamCaptureUnsupported);
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *f, size_t *t) {
  CUDAEMU_GATE();
  if (f) *f = (size_t)15 << 30;
  if (t) *t = (size_t)16 << 30;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t n) {
  CUDAEMU_GATE();
  if (!p) return ret(cudaErrorInvalidValue);
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  if (capture_conflict(true)) return ret(cudaErrorStreamCaptureUnsupported);
  *p = nullptr;
  if (n == 0) return cudaSuccess;
  void *q = nullptr;
  // Plain heap memory so that ASan red zones apply (size not rounded up).
  if (posix_memalign(&q, 256, n) != 0 || !q) return ret(cudaErrorMemoryAllocation);
  if (g_cfg.poison_malloc) memset(q, 0xFF, n);  // like uninitialised device memory: NaN / -1
  g_dev[(uintptr_t)q] = n;
  *p = q;
  return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
  CUDAEMU_GATE();
  if (!p) return cudaSuccess;
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  if (capture_conflict(true)) return ret(cudaErrorStreamCaptureUnsupported);
  auto it = g_dev.find((uintptr_t)p);
  if (it == g_dev.end()) return ret(cudaErrorInvalidValue);
  g_dev.erase(it);
  free(p);
  return cudaSuccess;
}
cudaError_t cudaHostAlloc(void **p, size_t n, unsigned int) {
  CUDAEMU_GATE();
  if (!p) return ret(cudaErrorInvalidValue);
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  if (capture_conflict(true)) return ret(cudaErrorStreamCaptureUnsupported);
  *p = nullptr;
  if (n == 0) return cudaSuccess;
  void *q = nullptr;
  if (posix_memalign(&q, 256, n) != 0 || !q) return ret(cudaErrorMemoryAllocation);
  g_host[q] = n;
  *p = q;
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t n) { return cudaHostAlloc(p, n, 0); }
cudaError_t cudaFreeHost(void *p) {
  CUDAEMU_GATE();
  if (!p) return cudaSuccess;
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  if (capture_conflict(true)) return ret(cudaErrorStreamCaptureUnsupported);
  auto it = g_host.find(p);
  if (it == g_host.end()) return ret(cudaErrorInvalidValue);
  g_host.erase(it);
  free(p);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) {
  CUDAEMU_GATE();
  {
    std::lock_guard<std::recursive_mutex> lk(g_rt);
    if (capture_conflict(false)) return ret(cudaErrorStreamCaptureUnsupported);
  }
  cudaError_t e = check_copy(dst, src, n, kind);
  if (e) return ret(e);
  if (n) memcpy(dst, src, n);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s) {
  CUDAEMU_GATE();
  cudaError_t e = check_copy(dst, src, n, kind);
  if (e) return ret(e);
  Node nd;
  nd.type = N_MEMCPY;
  nd.dst = dst;
  nd.src = src;
  nd.n = n;
  return ret(enqueue(s, std::move(nd)));
}
cudaError_t cudaMemset(void *dst, int value, size_t n) {
  CUDAEMU_GATE();
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  if (capture_conflict(false)) return ret(cudaErrorStreamCaptureUnsupported);
  if (n == 0) return cudaSuccess;
  if (!dst || !dev_range(dst, n)) return ret(cudaErrorInvalidValue);
  memset(dst, value, n);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *dst, int value, size_t n, cudaStream_t s) {
  CUDAEMU_GATE();
  {
    std::lock_guard<std::recursive_mutex> lk(g_rt);
    if (n && (!dst || !dev_range(dst, n))) return ret(cudaErrorInvalidValue);
  }
  Node nd;
  nd.type = N_MEMSET;
  nd.dst = dst;
  nd.value = value;
  nd.n = n;
  return ret(enqueue(s, std::move(nd)));
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags) {
  CUDAEMU_GATE();
  if (!s) return ret(cudaErrorInvalidValue);
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  CUstream_st *st = new CUstream_st();
  st->flags = flags;
  g_streams.insert(st);
  *s = st;
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  CUDAEMU_GATE();
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  if (is_default(s) || !g_streams.count(s)) return ret(cudaErrorInvalidResourceHandle);
  g_streams.erase(s);
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  CUDAEMU_GATE();
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  if (!valid_stream(s)) return ret(cudaErrorInvalidResourceHandle);
  if (!is_default(s) && s->capture != cudaStreamCaptureStatusNone) {
    s->capture = cudaStreamCaptureStatusInvalidated;
    return ret(cudaErrorStreamCaptureUnsupported);
  }
  if (is_default(s) && s != cudaStreamPerThread && capture_conflict(false)) return ret(cudaErrorStreamCaptureUnsupported);
  return cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t s) {
  CUDAEMU_GATE();
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  if (!valid_stream(s)) return ret(cudaErrorInvalidResourceHandle);
  if (!is_default(s) && s->capture != cudaStreamCaptureStatusNone) {
    s->capture = cudaStreamCaptureStatusInvalidated;
    return ret(cudaErrorStreamCaptureUnsupported);
  }
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int) {
  CUDAEMU_GATE();
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  if (!valid_stream(s) || !g_events.count(e)) return ret(cudaErrorInvalidResourceHandle);
  return cudaSuccess;  // everything runs in order on the host
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int flags) {
  CUDAEMU_GATE();
  if (!e) return ret(cudaErrorInvalidValue);
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  CUevent_st *ev = new CUevent_st();
  ev->flags = flags;
  g_events.insert(ev);
  *e = ev;
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, cudaEventDefault); }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  CUDAEMU_GATE();
  {
    std::lock_guard<std::recursive_mutex> lk(g_rt);
    if (!g_events.count(e)) return ret(cudaErrorInvalidResourceHandle);
  }
  Node nd;
  nd.type = N_EVENT;
  nd.ev = e;
  return ret(enqueue(s, std::move(nd)));
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  CUDAEMU_GATE();
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  if (!g_events.count(e)) return ret(cudaErrorInvalidResourceHandle);
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t e) {
  CUDAEMU_GATE();
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  if (!g_events.count(e)) return ret(cudaErrorInvalidResourceHandle);
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
  CUDAEMU_GATE();
  if (!ms) return ret(cudaErrorInvalidValue);
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  if (!g_events.count(a) || !g_events.count(b)) return ret(cudaErrorInvalidResourceHandle);
  if ((a->flags | b->flags) & cudaEventDisableTiming) return ret(cudaErrorInvalidResourceHandle);
  if (!a->recorded || !b->recorded) return ret(cudaErrorInvalidResourceHandle);
  *ms = (float)(b->t_ms - a->t_ms);
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  CUDAEMU_GATE();
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  if (!g_events.count(e)) return ret(cudaErrorInvalidResourceHandle);
  g_events.erase(e);
  delete e;
  return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
  CUDAEMU_GATE();
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  if (!valid_stream(s)) return ret(cudaErrorInvalidResourceHandle);
  if (is_default(s)) return ret(cudaErrorStreamCaptureUnsupported);
  if ((unsigned)mode > (unsigned)cudaStreamCaptureModeRelaxed) return ret(cudaErrorInvalidValue);
  if (s->capture != cudaStreamCaptureStatusNone) return ret(cudaErrorIllegalState);
  s->capture = cudaStreamCaptureStatusActive;
  s->mode = mode;
  s->nodes.clear();
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g) {
  CUDAEMU_GATE();
  if (!g) return ret(cudaErrorInvalidValue);
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  if (!valid_stream(s)) return ret(cudaErrorInvalidResourceHandle);
  *g = nullptr;
  if (is_default(s) || s->capture == cudaStreamCaptureStatusNone) return ret(cudaErrorIllegalState);
  bool bad = s->capture == cudaStreamCaptureStatusInvalidated;
  s->capture = cudaStreamCaptureStatusNone;
  if (bad) {
    s->nodes.clear();
    return ret(cudaErrorStreamCaptureInvalidated);
  }
  CUgraph_st *gr = new CUgraph_st();
  gr->nodes = std::move(s->nodes);
  s->nodes.clear();
  g_graphs.insert(gr);
  *g = gr;
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *st) {
  CUDAEMU_GATE();
  if (!st) return ret(cudaErrorInvalidValue);
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  if (!valid_stream(s)) return ret(cudaErrorInvalidResourceHandle);
  *st = is_default(s) ? cudaStreamCaptureStatusNone : (cudaStreamCaptureStatus)s->capture;
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *ge, cudaGraph_t g, unsigned long long) {
  CUDAEMU_GATE();
  if (!ge) return ret(cudaErrorInvalidValue);
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  if (!g_graphs.count(g)) return ret(cudaErrorInvalidValue);
  CUgraphExec_st *x = new CUgraphExec_st();
  x->nodes = g->nodes;
  g_execs.insert(x);
  *ge = x;
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t ge, cudaStream_t s) {
  CUDAEMU_GATE();
  std::vector<Node> *nodes;
  {
    std::lock_guard<std::recursive_mutex> lk(g_rt);
    if (!g_execs.count(ge)) return ret(cudaErrorInvalidResourceHandle);
    if (!valid_stream(s)) return ret(cudaErrorInvalidResourceHandle);
    nodes = &ge->nodes;
  }
  for (const Node &nd : *nodes) {
    Node copy = nd;
    cudaError_t e = enqueue(s, std::move(copy));
    if (e) return ret(e);
  }
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t ge) {
  CUDAEMU_GATE();
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  if (!g_execs.count(ge)) return ret(cudaErrorInvalidResourceHandle);
  g_execs.erase(ge);
  delete ge;
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
  CUDAEMU_GATE();
  std::lock_guard<std::recursive_mutex> lk(g_rt);
  if (!g_graphs.count(g)) return ret(cudaErrorInvalidValue);
  g_graphs.erase(g);
  delete g;
  return cudaSuccess;
}
