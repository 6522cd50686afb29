// kernels_attention: attention over the paged f16 KV cache for prompts and decode steps alike.
// One block per (row, kv head, split): its warps are the query heads sharing that kv head
// (grouped-query attention: the group reads each key and value once from global memory into
// L1), each running an online softmax over the split's positions. Splits are SM_CUDA_SPLIT
// positions long whatever the batch (split-K for long contexts), and a second kernel merges a
// row's splits in order, so a row's result depends only on its own sequence.
#include <math.h>

#include "cu_common.cuh"

enum { MAX_PER_LANE = SM_CUDA_MAX_HEAD_DIM / 32 };

// One split's partial result for one row and query head: acc[head_dim], then max, then sum.
static __device__ __forceinline__ float *part_at(float *part, const sm_cu_shape &sh, int row,
                                                 int head, int split, int max_splits)
{
    int64_t i = (static_cast<int64_t>(row) * sh.n_heads + head) * max_splits + split;
    return part + i * (sh.head_dim + 2);
}

static __global__ void attn_split_kernel(sm_cu_shape sh, int layer, const float *q,
                                         const sm_cu_row *meta, int max_splits, sm_cu_kv kv,
                                         float *part)
{
    int row = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
    int group = sh.n_heads / sh.n_kv_heads;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int hd = sh.head_dim, per = hd / 32, kvd = sh.n_kv_heads * hd;
    sm_cu_row m = meta[row];
    int p0 = split * SM_CUDA_SPLIT, p1 = min(p0 + SM_CUDA_SPLIT, m.pos + 1);
    const int32_t *table = kv.tables + static_cast<int64_t>(m.seq) * kv.table_stride;
    float scale = rsqrtf(static_cast<float>(hd));
    for (int g = warp; g < group; g += blockDim.x >> 5) {
        int head = kvh * group + g;
        const float *qh = q + (static_cast<int64_t>(row) * sh.n_heads + head) * hd;
        float qv[MAX_PER_LANE], acc[MAX_PER_LANE];
        for (int i = 0; i < per; i++) {
            qv[i] = qh[lane + 32 * i] * scale;
            acc[i] = 0.0f;
        }
        float mx = -INFINITY, sum = 0.0f;
        for (int p = p0; p < p1; p++) {
            int64_t base =
                (static_cast<int64_t>(table[p / SM_CUDA_PAGE]) * sh.n_layers + layer) * 2;
            int slot = p % SM_CUDA_PAGE;
            const uint16_t *kp = kv.pool + (base * SM_CUDA_PAGE + slot) * kvd + kvh * hd;
            const uint16_t *vp = kv.pool + ((base + 1) * SM_CUDA_PAGE + slot) * kvd + kvh * hd;
            float d = 0.0f;
            for (int i = 0; i < per; i++)
                d += qv[i] * sm_h2f(kp[lane + 32 * i]);
            d = sm_warp_sum(d);
            float nm = fmaxf(mx, d);
            float corr = expf(mx - nm), e = expf(d - nm);
            sum = sum * corr + e;
            for (int i = 0; i < per; i++)
                acc[i] = acc[i] * corr + e * sm_h2f(vp[lane + 32 * i]);
            mx = nm;
        }
        float *out = part_at(part, sh, row, head, split, max_splits);
        for (int i = 0; i < per; i++)
            out[lane + 32 * i] = acc[i];
        if (lane == 0) {
            out[hd] = mx;
            out[hd + 1] = sum;
        }
    }
}

// Merges a row's splits in order: out = sum_s acc_s e^(m_s - M) / sum_s l_s e^(m_s - M).
static __global__ void attn_merge_kernel(sm_cu_shape sh, const sm_cu_row *meta, int max_splits,
                                         const float *part, uint16_t *out)
{
    int row = blockIdx.x, head = blockIdx.y, hd = sh.head_dim;
    int n_splits = meta[row].pos / SM_CUDA_SPLIT + 1;
    const float *p = part_at(const_cast<float *>(part), sh, row, head, 0, max_splits);
    float mx = -INFINITY;
    for (int s = 0; s < n_splits; s++)
        mx = fmaxf(mx, p[s * (hd + 2) + hd]);
    float total = 0.0f;
    for (int s = 0; s < n_splits; s++)
        total += p[s * (hd + 2) + hd + 1] * expf(p[s * (hd + 2) + hd] - mx);
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float o = 0.0f;
        for (int s = 0; s < n_splits; s++)
            o += p[s * (hd + 2) + i] * expf(p[s * (hd + 2) + hd] - mx);
        out[(static_cast<int64_t>(row) * sh.n_heads + head) * hd + i] = sm_f2bf(o / total);
    }
}

int sm_cu_attention(sm_cu_stream *s, const sm_cu_shape *sh, int layer, const float *q,
                    const sm_cu_row *rows_meta, int rows, int max_splits, sm_cu_kv kv, float *part,
                    uint16_t *out)
{
    if (rows <= 0)
        return 0;
    if (sh->head_dim % 32 != 0 || sh->head_dim > SM_CUDA_MAX_HEAD_DIM ||
        sh->n_heads % sh->n_kv_heads != 0)
        return static_cast<int>(cudaErrorInvalidValue);
    int group = sh->n_heads / sh->n_kv_heads;
    int warps = group < 16 ? group : 16;
    dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(sh->n_kv_heads),
              static_cast<unsigned>(max_splits));
    attn_split_kernel<<<grid, 32 * warps, 0, SM_CU_STREAM(s)>>>(*sh, layer, q, rows_meta,
                                                                max_splits, kv, part);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return static_cast<int>(e);
    dim3 mgrid(static_cast<unsigned>(rows), static_cast<unsigned>(sh->n_heads));
    attn_merge_kernel<<<mgrid, 128, 0, SM_CU_STREAM(s)>>>(*sh, rows_meta, max_splits, part, out);
    return static_cast<int>(cudaGetLastError());
}
