/*
 * conv.cu - every BlazeNeo convolution (1x1, 3x3, 5x5; stride 1 and 2; dilation 1, 3, 5;
 * any channel count and spatial size) as one implicit GEMM, in three precisions.
 *
 *   C[m][n] = sum_k A[m][k] * B[k][n]     m: output channel (M = out_c)
 *                                         n: output pixel   (N = out_h * out_w)
 *                                         k: (ic, ky, kx)   (K = in_c * k * k)
 *
 * A is the prepared weight matrix (kernels.h). B is never stored: each block gathers its
 * CONV_BK x CONV_BN tile of im2col(input) straight from the input's channel segments (a
 * concatenation read where its pieces lie), with zero padding, converting to the precision
 * on the way (half, or int8 quantized with the input's scale). The epilogue adds the bias
 * (BatchNorm is folded in), applies ReLU/ReLU6 and writes the output slice in place.
 *
 * A block is 128 threads (4 warps) computing a 64 x 64 tile of C, K in steps of 32:
 *   - FP32 on CUDA cores: each thread 8 channels x 4 pixels, FFMA (true FP32, no TF32);
 *   - TF32, FP16 and INT8 on tensor cores: each warp 32 x 32, as 2 x 4 mma tiles of 16 x 8
 *     (m16n8k8 tf32 -> f32; m16n8k16 f16 -> f32; m16n8k32 s8 -> s32); shared tiles are
 *     K-contiguous so every
 *     fragment register is one 32-bit shared load (mma.cuh gives the layouts).
 * INT8's epilogue is the CPU backends' exactly: (float)acc * (in_scale * wscale[m]) + bias,
 * each operation rounded on its own (no FMA contraction), so results are bit for bit ref's.
 */
#include "kernels.h"
#include "mma.cuh"

namespace bzn_cuda {

template <int P> struct Elem;
template <> struct Elem<PREC_F32> {
    typedef float T;
    typedef float Acc;
    static __device__ __forceinline__ float from(float v, float) { return v; }
};
template <> struct Elem<PREC_F16> {
    typedef __half T;
    typedef float Acc;
    static __device__ __forceinline__ __half from(float v, float) { return __float2half_rn(v); }
};
template <> struct Elem<PREC_TF32> {
    typedef float T;
    typedef float Acc;
    static __device__ __forceinline__ float from(float v, float) { return to_tf32(v); }
};
template <> struct Elem<PREC_S8> {
    typedef int8_t T;
    typedef int Acc;
    static __device__ __forceinline__ int8_t from(float v, float inv) { return (int8_t)quantize(v, inv); }
};

/* Shared tiles. FP32: [k][m] and [k][n] (a thread reads a run of m or n per k step).
 * Tensor cores: [m][k] and [n][k] (fragment registers are runs along k). Row padding keeps
 * 16-byte rows for the vector copies of A and spreads the rows over the banks. */
template <int P> struct Tiles {
    typedef typename Elem<P>::T T;
    enum {
        MMA = P != PREC_F32,
        PAD = P == PREC_F32 || P == PREC_TF32 ? 4 : P == PREC_F16 ? 8 : 16,
        ROWS_A = MMA ? CONV_BM : CONV_BK,
        COLS_A = (MMA ? CONV_BK : CONV_BM) + PAD,
        ROWS_B = MMA ? CONV_BN : CONV_BK,
        COLS_B = (MMA ? CONV_BK : CONV_BN) + PAD,
    };
};

/* One K step's operands on their way from global memory to the shared tiles: loaded into
 * registers while the tensor cores (or FFMAs) work on the tile before, stored after it. */
template <int P> struct Stage {
    typedef Tiles<P> L;
    typedef typename Elem<P>::T T;
    enum {
        A_ELEMS = L::MMA ? CONV_BK : CONV_BM, /* a row of A's tile */
        A_ROWS = L::MMA ? CONV_BM : CONV_BK,
        A_CHUNKS = A_ELEMS * (int)sizeof(T) / 16,
        A_PER = A_ROWS * A_CHUNKS / CONV_THREADS, /* 16-byte chunks per thread */
    };
    static_assert(A_ROWS * A_CHUNKS % CONV_THREADS == 0, "A tile not a whole number of chunks per thread");
    uint4 a[A_PER];
    T b[16];

    /* A: 16-byte loads of the padded weight matrix (never out of range) */
    __device__ __forceinline__ void load_a(const ConvParams &p, int m0, int k0, int tid) {
        const T *W = (const T *)p.w;
#pragma unroll
        for (int u = 0; u < A_PER; u++) {
            const int c = tid + u * CONV_THREADS, r = c / A_CHUNKS, q = c % A_CHUNKS;
            const T *src = L::MMA ? W + (size_t)(m0 + r) * p.Kpad + k0 : W + (size_t)(k0 + r) * p.Mpad + m0;
            a[u] = __ldg((const uint4 *)src + q);
        }
    }
    __device__ __forceinline__ void store_a(T (*As)[L::COLS_A], int tid) const {
#pragma unroll
        for (int u = 0; u < A_PER; u++) {
            const int c = tid + u * CONV_THREADS, r = c / A_CHUNKS, q = c % A_CHUNKS;
            *((uint4 *)&As[r][0] + q) = a[u];
        }
    }

    /* B: this thread's row of the im2col tile (k = k0 + brow; 16 pixels from nb, the first at
     * (oy_b, ox_b)), gathered from the input segments and converted to the precision */
    __device__ __forceinline__ void load_b(const ConvParams &p, int k0, int brow, int nb, int oy_b, int ox_b,
                                           int frame) {
        const int kg = k0 + brow, N = p.out_h * p.out_w, kk2 = p.k * p.k;
        const float *src = NULL;
        const int8_t *qsrc = NULL; /* INT8 hand-off: the input as int8 */
        int dy = 0, dx = 0;
        if (kg < p.K) {
            const int ic = kg / kk2, r = kg - ic * kk2, ky = r / p.k, kx = r - ky * p.k;
            if (P == PREC_S8 && p.in_q) {
                qsrc = p.in_q + frame * p.in_q_bstride + (size_t)ic * p.in_h * p.in_w;
            } else {
                int s = 0;
                while (ic >= p.seg_end[s]) s++;
                const int cs = ic - (s ? p.seg_end[s - 1] : 0);
                src = p.seg[s] + frame * p.in_bstride + (size_t)cs * p.in_h * p.in_w;
            }
            dy = ky * p.dil - p.pad;
            dx = kx * p.dil - p.pad;
        }
        int oy = oy_b, ox = ox_b;
#pragma unroll
        for (int j = 0; j < 16; j++) {
            float v = 0.0f;
            int q = 0;
            if ((src || qsrc) && nb + j < N) {
                const int iy = oy * p.stride + dy, ix = ox * p.stride + dx;
                if ((unsigned)iy < (unsigned)p.in_h && (unsigned)ix < (unsigned)p.in_w) {
                    if (src)
                        v = __ldg(src + (size_t)iy * p.in_w + ix);
                    else
                        q = __ldg(qsrc + (size_t)iy * p.in_w + ix);
                }
            }
            if constexpr (P == PREC_S8)
                b[j] = qsrc ? (int8_t)q : Elem<P>::from(v, p.inv_in_scale);
            else
                b[j] = Elem<P>::from(v, p.inv_in_scale);
            if (++ox == p.out_w) ox = 0, oy++;
        }
    }
    __device__ __forceinline__ void store_b(T (*Bs)[L::COLS_B], int brow, int bcol) const {
#pragma unroll
        for (int j = 0; j < 16; j++) {
            if constexpr (L::MMA)
                Bs[bcol + j][brow] = b[j];
            else
                Bs[brow][bcol + j] = b[j];
        }
    }
};

template <int P>
__global__ void __launch_bounds__(CONV_THREADS) conv_kernel(ConvParams p) {
    typedef Tiles<P> L;
    typedef typename L::T T;
    /* two of each: the tile computed on, and the next one being stored */
    __shared__ __align__(16) T As2[2][L::ROWS_A][L::COLS_A];
    __shared__ __align__(16) T Bs2[2][L::ROWS_B][L::COLS_B];

    const int tid = threadIdx.x;
    const int N = p.out_h * p.out_w;
    const int n0 = blockIdx.x * CONV_BN, m0 = blockIdx.y * CONV_BM, frame = blockIdx.z;

    /* this thread's part of the B gather: one k row, 16 consecutive pixels */
    const int brow = tid / 4, bcol = (tid % 4) * 16;
    const int nb = n0 + bcol;
    const int oy_b = nb / p.out_w, ox_b = nb - (nb / p.out_w) * p.out_w;

    /* the accumulators: FP32 8 x 4 per thread; tensor cores 2 x 4 mma tiles of 4 per lane */
    typedef typename Elem<P>::Acc A;
    A acc[L::MMA ? 2 : 8][4][L::MMA ? 4 : 1];
    #pragma unroll
    for (int i = 0; i < (L::MMA ? 2 : 8); i++)
        #pragma unroll
        for (int j = 0; j < 4; j++)
            #pragma unroll
            for (int r = 0; r < (L::MMA ? 4 : 1); r++) acc[i][j][r] = 0;

    /* software pipeline: tile t + 1 is loaded into registers while tile t is computed, then
     * stored into the other buffer; one barrier per K step */
    Stage<P> st;
    st.load_a(p, m0, 0, tid);
    st.load_b(p, 0, brow, nb, oy_b, ox_b, frame);
    st.store_a(As2[0], tid);
    st.store_b(Bs2[0], brow, bcol);
    __syncthreads();
    const int tiles = p.Kpad / CONV_BK;
    for (int tile = 0; tile < tiles; tile++) {
        const int cur = tile & 1;
        const bool more = tile + 1 < tiles;
        if (more) {
            st.load_a(p, m0, (tile + 1) * CONV_BK, tid);
            st.load_b(p, (tile + 1) * CONV_BK, brow, nb, oy_b, ox_b, frame);
        }
        T (*As)[L::COLS_A] = As2[cur];
        T (*Bs)[L::COLS_B] = Bs2[cur];

        if constexpr (P == PREC_F32) {
            const int tm = tid / 16, tn = tid % 16;
            #pragma unroll
            for (int kk = 0; kk < CONV_BK; kk++) {
                float a[8], b[4];
                #pragma unroll
                for (int i = 0; i < 8; i++) a[i] = As[kk][tm * 8 + i];
                #pragma unroll
                for (int j = 0; j < 4; j++) b[j] = Bs[kk][tn * 4 + j];
                #pragma unroll
                for (int i = 0; i < 8; i++)
                    #pragma unroll
                    for (int j = 0; j < 4; j++) acc[i][j][0] = fmaf(a[i], b[j], acc[i][j][0]);
            }
        } else {
            const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
            const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;
            /* k per mma, and elements per 32-bit register */
            const int KSTEP = P == PREC_TF32 ? 8 : P == PREC_F16 ? 16 : 32, EW = P == PREC_TF32 ? 1 : P == PREC_F16 ? 2 : 4;
            #pragma unroll
            for (int ks = 0; ks < CONV_BK; ks += KSTEP) {
                uint32_t a[2][4], b[4][2];
                #pragma unroll
                for (int mi = 0; mi < 2; mi++)
                    #pragma unroll
                    for (int i = 0; i < 4; i++)
                        a[mi][i] = *(const uint32_t *)&As[wm + mi * 16 + g + 8 * (i & 1)]
                                                         [ks + EW * t + (KSTEP / 2) * (i >> 1)];
                #pragma unroll
                for (int ni = 0; ni < 4; ni++)
                    #pragma unroll
                    for (int j = 0; j < 2; j++)
                        b[ni][j] = *(const uint32_t *)&Bs[wn + ni * 8 + g][ks + EW * t + (KSTEP / 2) * j];
                #pragma unroll
                for (int mi = 0; mi < 2; mi++)
                    #pragma unroll
                    for (int ni = 0; ni < 4; ni++) {
                        if constexpr (P == PREC_F16)
                            mma_f16(acc[mi][ni], a[mi], b[ni]);
                        else if constexpr (P == PREC_TF32)
                            mma_tf32(acc[mi][ni], a[mi], b[ni]);
                        else
                            mma_s8(acc[mi][ni], a[mi], b[ni]);
                    }
            }
        }
        if (more) {
            st.store_a(As2[cur ^ 1], tid);
            st.store_b(Bs2[cur ^ 1], brow, bcol);
        }
        __syncthreads();
    }

    /* epilogue: bias, activation, the output slice */
    float *out = p.out + frame * p.out_bstride;
    if constexpr (P == PREC_F32) {
        const int tm = tid / 16, tn = tid % 16;
        #pragma unroll
        for (int i = 0; i < 8; i++) {
            const int m = m0 + tm * 8 + i;
            if (m >= p.out_c) break;
            const float bias = p.bias ? p.bias[m] : 0.0f;
            #pragma unroll
            for (int j = 0; j < 4; j++) {
                const int n = n0 + tn * 4 + j;
                if (n < N) out[(size_t)m * N + n] = activate(__fadd_rn(acc[i][j][0], bias), p.act);
            }
        }
    } else {
        const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
        const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;
        #pragma unroll
        for (int mi = 0; mi < 2; mi++)
            #pragma unroll
            for (int ni = 0; ni < 4; ni++)
                #pragma unroll
                for (int r = 0; r < 4; r++) {
                    const int m = m0 + wm + mi * 16 + g + 8 * (r >> 1), n = n0 + wn + ni * 8 + 2 * t + (r & 1);
                    if (m >= p.out_c || n >= N) continue;
                    const float bias = p.bias ? p.bias[m] : 0.0f;
                    float v;
                    if constexpr (P != PREC_S8)
                        v = __fadd_rn(acc[mi][ni][r], bias);
                    else
                        v = __fadd_rn(__fmul_rn((float)acc[mi][ni][r], __fmul_rn(p.in_scale, p.wscale[m])), bias);
                    v = activate(v, p.act);
                    if (P == PREC_S8 && p.out_q) /* handed to the next INT8 convolution as int8 */
                        p.out_q[frame * p.out_q_bstride + (size_t)m * N + n] = (int8_t)quantize(v, p.out_inv_scale);
                    else
                        out[(size_t)m * N + n] = v;
                }
    }
}

cudaError_t conv(int prec, const ConvParams &p, int batch, cudaStream_t stream) {
    const dim3 grid(ceil_div((size_t)p.out_h * p.out_w, CONV_BN), (unsigned)(p.Mpad / CONV_BM), (unsigned)batch);
    const dim3 block(CONV_THREADS);
    switch (prec) {
    case PREC_F32: return BZN_LAUNCH(conv_kernel<PREC_F32>, grid, block, stream, p);
    case PREC_F16: return BZN_LAUNCH(conv_kernel<PREC_F16>, grid, block, stream, p);
    case PREC_S8: return BZN_LAUNCH(conv_kernel<PREC_S8>, grid, block, stream, p);
    case PREC_TF32: return BZN_LAUNCH(conv_kernel<PREC_TF32>, grid, block, stream, p);
    }
    return cudaErrorInvalidValue;
}

} // namespace bzn_cuda
