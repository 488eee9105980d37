// Second translation unit with __shared__ storage (checks that the
// cudaemu_shared section of several objects is one poisoned, writable range).
#include <functional>

#define TU2_LAUNCH(kernel, grid, block, ...) \
  cudaemu_launch(grid, block, 0, __FILE__, __LINE__, [=]() { kernel(__VA_ARGS__); })

template <int N>
__global__ void tu2_kernel(int *out) {
  __shared__ int s[N];
  __shared__ float f[N];
  int t = threadIdx.x;
  int base = blockIdx.x * N * 3;
  out[base + t] = (s[t] == -1) && (f[t] != f[t]);  // poisoned before use?
  s[t] = t + 1000 * (int)blockIdx.x;
  f[t] = (float)t;
  __syncthreads();
  out[base + N + t] = s[N - 1 - t];
  out[base + 2 * N + t] = (int)f[(t + 1) % N];
}

// Runs tu2_kernel on a device buffer of blocks*64*3 ints; returns the launch status.
int tu2_run(int *dev_out, int blocks) {
  return (int)TU2_LAUNCH(tu2_kernel<64>, dim3(blocks), dim3(64), dev_out);
}
