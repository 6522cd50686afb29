// kernels_norm_rope: the CUDA backend's per-row kernels: embedding lookup, RMSNorm (fused with
// the residual add), biases + RoPE + KV cache store, the SiLU gate, row gathers, and the seeded
// fills and read probe used by random models and benchmarks. Each reduction has a fixed order,
// so a row's result never depends on the other rows of a step.
#include "cu_common.cuh"

static __global__ void embed_kernel(const uint16_t *embed, const int32_t *ids, int hidden, float *x)
{
    const uint16_t *src = embed + static_cast<int64_t>(ids[blockIdx.x]) * hidden;
    float *dst = x + static_cast<int64_t>(blockIdx.x) * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x)
        dst[i] = sm_bf2f(src[i]);
}

int sm_cu_embed(sm_cu_stream *s, const uint16_t *embed, const int32_t *ids, int rows, int hidden,
                float *x)
{
    if (rows > 0)
        embed_kernel<<<rows, 256, 0, SM_CU_STREAM(s)>>>(embed, ids, hidden, x);
    return static_cast<int>(cudaGetLastError());
}

enum { NORM_THREADS = 256 };

static __global__ void add_rmsnorm_kernel(float *x, const float *add, const float *w, int hidden,
                                          float eps, uint16_t *out)
{
    __shared__ float warp_sums[NORM_THREADS / 32];
    int64_t base = static_cast<int64_t>(blockIdx.x) * hidden;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < hidden; i += NORM_THREADS) {
        float v = x[base + i];
        if (add) {
            v += add[base + i];
            x[base + i] = v;
        }
        ss += v * v;
    }
    ss = sm_warp_sum(ss);
    if ((threadIdx.x & 31) == 0)
        warp_sums[threadIdx.x >> 5] = ss;
    __syncthreads();
    float total = 0.0f;
    for (int i = 0; i < NORM_THREADS / 32; i++)
        total += warp_sums[i];
    float inv = rsqrtf(total / static_cast<float>(hidden) + eps);
    for (int i = threadIdx.x; i < hidden; i += NORM_THREADS)
        out[base + i] = sm_f2bf(x[base + i] * inv * w[i]);
}

int sm_cu_add_rmsnorm(sm_cu_stream *s, float *x, const float *add, const float *w, int rows,
                      int hidden, float eps, uint16_t *out)
{
    if (rows > 0)
        add_rmsnorm_kernel<<<rows, NORM_THREADS, 0, SM_CU_STREAM(s)>>>(x, add, w, hidden, eps, out);
    return static_cast<int>(cudaGetLastError());
}

// Rotates the n_heads heads of x (bias added first when not NULL) at position pos, as Hugging
// Face does in float32: inv_freq = 1 / theta^(2i/d), angle = pos * inv_freq.
static __device__ void rope_heads(float *x, const float *bias, int n_heads, int hd, int pos,
                                  float theta)
{
    int half = hd / 2;
    for (int j = threadIdx.x; j < n_heads * half; j += blockDim.x) {
        int h = j / half, i = j % half;
        float *p = x + h * hd;
        float a = p[i], b = p[i + half];
        if (bias) {
            a += bias[h * hd + i];
            b += bias[h * hd + i + half];
        }
        float inv = 1.0f / powf(theta, static_cast<float>(2 * i) / static_cast<float>(hd));
        float ang = static_cast<float>(pos) * inv;
        double sn, cs;
        sincos(static_cast<double>(ang), &sn, &cs);
        float c = static_cast<float>(cs), sf = static_cast<float>(sn);
        p[i] = a * c - b * sf;
        p[i + half] = b * c + a * sf;
    }
}

static __global__ void qkv_rope_store_kernel(sm_cu_shape sh, int layer, float *q, float *k,
                                             const float *v, const float *bq, const float *bk,
                                             const float *bv, const sm_cu_row *meta, sm_cu_kv kv)
{
    int r = blockIdx.x;
    int qd = sh.n_heads * sh.head_dim, kvd = sh.n_kv_heads * sh.head_dim;
    sm_cu_row m = meta[r];
    rope_heads(q + static_cast<int64_t>(r) * qd, bq, sh.n_heads, sh.head_dim, m.pos, sh.rope_theta);
    float *kr = k + static_cast<int64_t>(r) * kvd;
    rope_heads(kr, bk, sh.n_kv_heads, sh.head_dim, m.pos, sh.rope_theta);
    __syncthreads();
    int32_t page = kv.tables[static_cast<int64_t>(m.seq) * kv.table_stride + m.pos / SM_CUDA_PAGE];
    int slot = m.pos % SM_CUDA_PAGE;
    int64_t page_base = (static_cast<int64_t>(page) * sh.n_layers + layer) * 2;
    uint16_t *kdst = kv.pool + (page_base * SM_CUDA_PAGE + slot) * kvd;
    uint16_t *vdst = kv.pool + ((page_base + 1) * SM_CUDA_PAGE + slot) * kvd;
    const float *vr = v + static_cast<int64_t>(r) * kvd;
    for (int i = threadIdx.x; i < kvd; i += blockDim.x) {
        kdst[i] = sm_f2h(kr[i]);
        vdst[i] = sm_f2h(vr[i] + (bv ? bv[i] : 0.0f));
    }
}

int sm_cu_qkv_rope_store(sm_cu_stream *s, const sm_cu_shape *sh, int layer, float *q, float *k,
                         const float *v, const float *bq, const float *bk, const float *bv,
                         const sm_cu_row *rows_meta, int rows, sm_cu_kv kv)
{
    if (rows > 0)
        qkv_rope_store_kernel<<<rows, 128, 0, SM_CU_STREAM(s)>>>(*sh, layer, q, k, v, bq, bk, bv,
                                                                 rows_meta, kv);
    return static_cast<int>(cudaGetLastError());
}

static __global__ void silu_mul_kernel(const float *gate, const float *up, int64_t n, uint16_t *out)
{
    int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) {
        float g = gate[i];
        out[i] = sm_f2bf(g / (1.0f + expf(-g)) * up[i]);
    }
}

int sm_cu_silu_mul(sm_cu_stream *s, const float *gate, const float *up, int64_t n, uint16_t *out)
{
    if (n > 0)
        silu_mul_kernel<<<static_cast<unsigned>((n + 255) / 256), 256, 0, SM_CU_STREAM(s)>>>(
            gate, up, n, out);
    return static_cast<int>(cudaGetLastError());
}

static __global__ void gather_kernel(const uint16_t *src, const int32_t *idx, int cols,
                                     uint16_t *dst)
{
    const uint16_t *a = src + static_cast<int64_t>(idx[blockIdx.x]) * cols;
    uint16_t *b = dst + static_cast<int64_t>(blockIdx.x) * cols;
    for (int i = threadIdx.x; i < cols; i += blockDim.x)
        b[i] = a[i];
}

int sm_cu_gather_rows(sm_cu_stream *s, const uint16_t *src, const int32_t *idx, int n, int cols,
                      uint16_t *dst)
{
    if (n > 0)
        gather_kernel<<<n, 256, 0, SM_CU_STREAM(s)>>>(src, idx, cols, dst);
    return static_cast<int>(cudaGetLastError());
}

static __global__ void fill_bf16_kernel(uint16_t *dst, int64_t n, uint64_t seed, float mean,
                                        float std)
{
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        uint64_t h = sm_mix64(seed ^ sm_mix64(static_cast<uint64_t>(i)));
        // Box-Muller from two 24-bit uniforms
        float u1 = sm_unit(h), u2 = sm_unit(h << 24);
        float z = sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
        dst[i] = sm_f2bf(mean + std * z);
    }
}

int sm_cu_fill_random_bf16(sm_cu_stream *s, uint16_t *dst, int64_t n, uint64_t seed, float mean,
                           float std)
{
    if (n > 0)
        fill_bf16_kernel<<<1024, 256, 0, SM_CU_STREAM(s)>>>(dst, n, seed, mean, std);
    return static_cast<int>(cudaGetLastError());
}

static __global__ void fill_f16_kernel(uint16_t *dst, int64_t n, uint64_t seed)
{
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
        dst[i] = sm_f2h(2.0f * sm_unit(sm_mix64(seed ^ sm_mix64(static_cast<uint64_t>(i)))) - 1.0f);
}

int sm_cu_fill_random_f16(sm_cu_stream *s, uint16_t *dst, int64_t n, uint64_t seed)
{
    if (n > 0)
        fill_f16_kernel<<<1024, 256, 0, SM_CU_STREAM(s)>>>(dst, n, seed);
    return static_cast<int>(cudaGetLastError());
}

static __global__ void read_kernel(const uint4 *src, int64_t n16, float *sink)
{
    uint32_t acc = 0;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n16;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        uint4 v = src[i];
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    // the sum is written only when impossible, so the reads cannot be optimised away
    if (acc == 0x9e3779b9u && threadIdx.x == 0)
        sink[blockIdx.x] = static_cast<float>(acc);
}

int sm_cu_read_bytes(sm_cu_stream *s, const void *src, int64_t n, float *sink)
{
    if (n >= 16)
        read_kernel<<<1056, 512, 0, SM_CU_STREAM(s)>>>(static_cast<const uint4 *>(src), n / 16,
                                                       sink);
    return static_cast<int>(cudaGetLastError());
}
