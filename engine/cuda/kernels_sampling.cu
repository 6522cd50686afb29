// kernels_sampling: next-token choice on the GPU, one block per sequence: greedy (argmax, the
// lowest index on ties) or, with a temperature, the Gumbel-max trick (argmax of logit / T plus
// Gumbel noise from a seeded hash of (seed, counter, token)), which samples softmax(logit / T)
// exactly and reproducibly without a sort or a prefix sum.
#include <math.h>

#include "cu_common.cuh"

enum { THREADS = 1024 };

static __device__ __forceinline__ bool better(float v, int i, float bv, int bi)
{
    return v > bv || (v == bv && i < bi);
}

static __global__ void sample_kernel(const float *logits, int vocab, float temperature,
                                     const uint64_t *seeds, const uint64_t *counters, int32_t *out)
{
    __shared__ float sv[THREADS];
    __shared__ int si[THREADS];
    const float *row = logits + static_cast<int64_t>(blockIdx.x) * vocab;
    uint64_t key = 0;
    if (temperature > 0.0f)
        key = sm_mix64(seeds[blockIdx.x] ^ sm_mix64(counters[blockIdx.x]));
    float bv = -INFINITY;
    int bi = vocab;
    for (int i = threadIdx.x; i < vocab; i += THREADS) {
        float v = row[i];
        if (temperature > 0.0f) {
            float u = sm_unit(sm_mix64(key ^ static_cast<uint64_t>(i)));
            v = v / temperature - logf(-logf(u));
        }
        if (better(v, i, bv, bi)) {
            bv = v;
            bi = i;
        }
    }
    sv[threadIdx.x] = bv;
    si[threadIdx.x] = bi;
    __syncthreads();
    for (int w = THREADS / 2; w > 0; w >>= 1) {
        if (static_cast<int>(threadIdx.x) < w &&
            better(sv[threadIdx.x + w], si[threadIdx.x + w], sv[threadIdx.x], si[threadIdx.x])) {
            sv[threadIdx.x] = sv[threadIdx.x + w];
            si[threadIdx.x] = si[threadIdx.x + w];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0)
        out[blockIdx.x] = si[0] < vocab ? si[0] : 0;
}

int sm_cu_sample(sm_cu_stream *s, const float *logits, int n, int vocab, float temperature,
                 const uint64_t *seeds, const uint64_t *counters, int32_t *out)
{
    if (n > 0)
        sample_kernel<<<n, THREADS, 0, SM_CU_STREAM(s)>>>(logits, vocab, temperature, seeds,
                                                          counters, out);
    return static_cast<int>(cudaGetLastError());
}
