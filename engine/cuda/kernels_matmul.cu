// kernels_matmul: the deterministic mode's matrix products (bf16 or int8 weights, bf16
// activations, f32 sums). One warp per output column and up to ROWS rows per block; each lane
// sums its strided slice of the dot product in order and the warp adds the lanes in a fixed
// tree, so an output's value is the same whatever the number of rows (batch-invariant), unlike
// cuBLAS whose algorithm choice depends on the shape. Fast mode uses cuBLAS instead.
#include "cu_common.cuh"

enum { WARPS = 8, ROWS = 8 };

static __device__ __forceinline__ void bf16x8(uint4 v, float *f)
{
    const uint32_t u[4] = {v.x, v.y, v.z, v.w};
    for (int i = 0; i < 4; i++) {
        f[2 * i] = __uint_as_float(u[i] << 16);
        f[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
    }
}

static __device__ __forceinline__ void load_w(const uint16_t *w, int64_t off, float *f)
{
    bf16x8(*reinterpret_cast<const uint4 *>(w + off), f);
}

static __device__ __forceinline__ void load_w(const int8_t *w, int64_t off, float *f)
{
    uint2 v = *reinterpret_cast<const uint2 *>(w + off);
    const uint32_t u[2] = {v.x, v.y};
    for (int i = 0; i < 8; i++)
        f[i] = static_cast<float>(static_cast<int8_t>((u[i / 4] >> (8 * (i % 4))) & 0xffu));
}

template <typename W>
static __global__ void matmul_kernel(const uint16_t *x, const W *w, const float *scale, int rows,
                                     int out_n, int cols, float *y)
{
    int o = blockIdx.x * WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    int r0 = blockIdx.y * ROWS, nr = min(ROWS, rows - r0);
    if (o >= out_n)
        return;
    float acc[ROWS];
    for (int r = 0; r < ROWS; r++)
        acc[r] = 0.0f;
    const int64_t wrow = static_cast<int64_t>(o) * cols;
    for (int k = lane * 8; k < cols; k += 32 * 8) {
        float wf[8];
        load_w(w, wrow + k, wf);
        for (int r = 0; r < ROWS; r++) {
            if (r >= nr)
                break;
            float xf[8];
            bf16x8(*reinterpret_cast<const uint4 *>(x + static_cast<int64_t>(r0 + r) * cols + k),
                   xf);
            float s = acc[r];
            for (int i = 0; i < 8; i++)
                s = fmaf(xf[i], wf[i], s);
            acc[r] = s;
        }
    }
    float sc = scale ? scale[o] : 1.0f;
    for (int r = 0; r < nr; r++) {
        float v = sm_warp_sum(acc[r]);
        if (lane == 0)
            y[static_cast<int64_t>(r0 + r) * out_n + o] = v * sc;
    }
}

template <typename W>
static int launch(sm_cu_stream *s, const uint16_t *x, const W *w, const float *scale, int rows,
                  int out_n, int cols, float *y)
{
    if (cols % 8 != 0)
        return static_cast<int>(cudaErrorInvalidValue);
    if (rows <= 0 || out_n <= 0)
        return 0;
    dim3 grid(static_cast<unsigned>((out_n + WARPS - 1) / WARPS),
              static_cast<unsigned>((rows + ROWS - 1) / ROWS));
    matmul_kernel<W><<<grid, 32 * WARPS, 0, SM_CU_STREAM(s)>>>(x, w, scale, rows, out_n, cols, y);
    return static_cast<int>(cudaGetLastError());
}

int sm_cu_matmul_det(sm_cu_stream *s, const uint16_t *x, const uint16_t *w, int rows, int out_n,
                     int cols, float *y)
{
    return launch<uint16_t>(s, x, w, nullptr, rows, out_n, cols, y);
}

int sm_cu_matmul_i8(sm_cu_stream *s, const uint16_t *x, const int8_t *w, const float *scale,
                    int rows, int out_n, int cols, float *y)
{
    return launch<int8_t>(s, x, w, scale, rows, out_n, cols, y);
}
