/* kernels: the public side of the CPU kernels (sm_kernels.h). It names dtypes and ISAs,
 * detects what the CPU supports, checks arguments, prepares activations (8-bit quantization for
 * q8_0/q4_0 and K-quant weights), splits work over the thread pool in row ranges (largest
 * first, on fixed boundaries) and calls the chosen instruction-set variant (kernels_isa.h). In
 * fast mode, large batches go through OpenBLAS sgemm on weight tiles converted to f32, where
 * OpenBLAS's kernels suit the CPU. */
#include "sm_kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kernels_isa.h"

/* Fast mode sends batches of at least this many rows to sgemm. */
#define SM_SGEMM_MIN_BATCH 32
#define SM_LONG_BATCH 64 /* batches from this size are split into smaller tasks */
/* Row tiles converted to f32 for sgemm hold about this many floats. */
#define SM_SGEMM_TILE_FLOATS (512 * 1024)

static const char *const dtype_names[SM_DTYPE_COUNT] = {"f32",  "f16",  "bf16", "q8_0",
                                                        "q4_0", "q4_k", "q5_k", "q6_k"};
static const char *const isa_names[SM_ISA_COUNT] = {"portable", "avx2", "avx512", "avx512bf16"};

const char *sm_dtype_name(sm_dtype t)
{
    return t >= 0 && t < SM_DTYPE_COUNT ? dtype_names[t] : "unknown";
}

sm_code sm_dtype_parse(const char *name, sm_dtype *out, sm_err *err)
{
    for (int i = 0; name && i < SM_DTYPE_COUNT; i++) {
        if (strcmp(name, dtype_names[i]) == 0) {
            *out = (sm_dtype)i;
            return SM_OK;
        }
    }
    return sm_err_set(err, SM_EINVAL,
                      "unknown dtype '%s' (expected f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k)",
                      name ? name : "(null)");
}

const char *sm_isa_name(sm_isa isa)
{
    return isa >= 0 && isa < SM_ISA_COUNT ? isa_names[isa] : "unknown";
}

sm_code sm_isa_parse(const char *name, sm_isa *out, sm_err *err)
{
    for (int i = 0; name && i < SM_ISA_COUNT; i++) {
        if (strcmp(name, isa_names[i]) == 0) {
            *out = (sm_isa)i;
            return SM_OK;
        }
    }
    return sm_err_set(err, SM_EINVAL,
                      "unknown instruction set '%s' (expected portable, avx2, avx512, avx512bf16)",
                      name ? name : "(null)");
}

bool sm_isa_supported(sm_isa isa)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("avx512vnni");
    switch (isa) {
    case SM_ISA_PORTABLE:
        return true;
    case SM_ISA_AVX2:
        return avx2;
    case SM_ISA_AVX512:
        return avx512;
    case SM_ISA_AVX512BF16:
        return avx512 && __builtin_cpu_supports("avx512bf16");
    default:
        return false;
    }
#else
    return isa == SM_ISA_PORTABLE;
#endif
}

/* avx512bf16 is never the default: on the Xeon (Emerald Rapids guest) it was measured on,
 * vdpbf16ps retires at about a quarter of the rate of vfmadd231ps (1.3 against 5.2 G zmm
 * instructions/s per core), so 32 bf16 products per instruction give half the f32 FMA rate;
 * the avx512 variant's f32 products are faster for prompts and batches, and exact in their
 * activations (avx512bf16 rounds them to bf16). --isa avx512bf16 still selects it. */
sm_isa sm_isa_detect(void)
{
    for (int i = SM_ISA_COUNT - 1; i > 0; i--)
        if (i != SM_ISA_AVX512BF16 && sm_isa_supported((sm_isa)i))
            return (sm_isa)i;
    return SM_ISA_PORTABLE;
}

/* The variant for isa, or the portable one when the CPU cannot run isa (the public functions
 * that return sm_code report that case as an error; the void ones fall back). */
static const sm_kvariant *variant(const sm_kctx *k)
{
    sm_isa isa = k ? k->isa : SM_ISA_PORTABLE;
    if (isa <= SM_ISA_PORTABLE || isa >= SM_ISA_COUNT || !sm_isa_supported(isa))
        return sm_kvariant_portable();
    switch (isa) {
    case SM_ISA_AVX2:
        return sm_kvariant_avx2();
    case SM_ISA_AVX512:
        return sm_kvariant_avx512();
    case SM_ISA_AVX512BF16:
        return sm_kvariant_avx512bf16();
    default:
        return sm_kvariant_portable();
    }
}

static int kctx_threads(const sm_kctx *k)
{
    return k && k->pool ? sm_pool_threads(k->pool) : 1;
}

static void run_tasks(const sm_kctx *k, sm_pool_fn fn, void *arg, int n_tasks)
{
    if (k && k->pool && n_tasks > 1) {
        sm_pool_run(k->pool, fn, arg, n_tasks);
    } else {
        for (int t = 0; t < n_tasks; t++)
            fn(arg, t, n_tasks);
    }
}

/* Kernel buffers start on a cache line, so that no 64-byte vector load of a tile or of prepared
 * activations splits across two lines (glibc's malloc gives 16-byte alignment). */
static void *kbuf_alloc(size_t bytes)
{
    return aligned_alloc(64, (bytes + 63) / 64 * 64);
}

/* A product's buffers: its activations (prepared, quantized, converted or sgemm tiles) and its
 * row scratch. */
enum { KBUF_X = 0, KBUF_SCRATCH, KBUF_SLOTS };

struct sm_kbufs {
    void *p[KBUF_SLOTS];
    size_t n[KBUF_SLOTS];
};

sm_code sm_kbufs_new(sm_kbufs **out, sm_err *err)
{
    *out = calloc(1, sizeof **out);
    return *out ? SM_OK : sm_err_set(err, SM_ENOMEM, "kernel buffers: out of memory");
}

void sm_kbufs_free(sm_kbufs **bufs)
{
    if (!*bufs)
        return;
    for (int i = 0; i < KBUF_SLOTS; i++)
        free((*bufs)->p[i]);
    free(*bufs);
    *bufs = NULL;
}

/* bytes for slot: the context's kept buffer (grown when too small), or a new one */
static void *kbuf_take(const sm_kctx *k, int slot, size_t bytes)
{
    sm_kbufs *b = k ? k->bufs : NULL;
    if (!b)
        return kbuf_alloc(bytes);
    if (!b->p[slot] || b->n[slot] < bytes) {
        free(b->p[slot]);
        b->n[slot] = (bytes + 63) / 64 * 64;
        b->p[slot] = kbuf_alloc(b->n[slot]);
        if (!b->p[slot])
            b->n[slot] = 0;
    }
    return b->p[slot];
}

/* A kept buffer larger than this is freed after its product (the worker's long prompt steps
 * would otherwise hold hundreds of MB of bf16 activations for the model's life). */
#define KBUF_KEEP_MAX ((size_t)64 << 20)

/* p from kbuf_take(k, slot, ...) (with kept buffers, p is the slot's buffer or NULL): freed
 * unless the context keeps it */
static void kbuf_give(const sm_kctx *k, int slot, void *p)
{
    sm_kbufs *b = k ? k->bufs : NULL;
    if (!b) {
        free(p);
        return;
    }
    if (b->n[slot] > KBUF_KEEP_MAX) {
        free(b->p[slot]);
        b->p[slot] = NULL;
        b->n[slot] = 0;
    }
}

/* ---- matrix products ---- */

/* Packed weights (kernels_q8x.c): bytes of a unit of sm_q8x_unit_rows rows, and of a batch
 * row of activations in the layout's order. */
static size_t packed_unit_bytes(sm_dtype t, int width, int64_t cols)
{
    const sm_w8_layout *l = sm_w8_layout_of(t);
    return l ? l->row_bytes(cols) : sm_q8x_unit_bytes(width, cols);
}

static size_t packed_x_bytes(sm_dtype t, int width, int64_t cols)
{
    return t == SM_DTYPE_Q8_0 ? sm_q8x_x_bytes(width, cols) : sm_q4x_x_bytes(cols);
}

/* The variant's products of packed weights of type t, and the scratch they want (NULLs where
 * it has none). */
static sm_packed_fns variant_packed(const sm_kvariant *v, sm_dtype t)
{
    if (t == SM_DTYPE_Q4_0)
        return (sm_packed_fns){v->q4x_rows, v->q4x_scratch_floats};
    if (sm_dtype_is_kquant(t) && !v->kqx)
        return (sm_packed_fns){NULL, NULL};
    if (t == SM_DTYPE_Q4_K)
        return v->kqx->q4k;
    if (t == SM_DTYPE_Q5_K)
        return v->kqx->q5k;
    if (t == SM_DTYPE_Q6_K)
        return v->kqx->q6k;
    return (sm_packed_fns){v->q8x_rows, v->q8x_scratch_floats};
}

/* The width of the packed layout of type t the variant reads, or 0. */
static int variant_pack_width(const sm_kvariant *v, sm_dtype t)
{
    if (sm_w8_layout_of(t))
        return variant_packed(v, t).rows ? 8 : 0;
    return t == SM_DTYPE_Q8_0 ? v->q8x_width : 0;
}

#define SM_MM_MAX_TASKS 64 /* tasks of one matrix's rows */
#define SM_MM_GROUP_MAX 4  /* matrices in one grouped product (sm_matmul_group) */
#define SM_MM_GROUP_TASKS (SM_MM_GROUP_MAX * SM_MM_MAX_TASKS)

typedef struct mm_ctx {
    const sm_kvariant *v;
    sm_mm_job *jobs; /* the products: one, or a group sharing the first one's activations */
    int64_t chunk;   /* sgemm: rows per task */
    /* task t: rows [task_r0[t], task_r1[t]) of jobs[task_job[t]] */
    int64_t task_r0[SM_MM_GROUP_TASKS], task_r1[SM_MM_GROUP_TASKS];
    uint8_t task_job[SM_MM_GROUP_TASKS];
    float *tiles; /* sgemm: one f32 tile per task */
    int64_t tile_rows;
} mm_ctx;

static void mm_task(void *arg, int t, int n)
{
    (void)n;
    mm_ctx *c = arg;
    sm_mm_job *j = &c->jobs[c->task_job[t]];
    int64_t r0 = c->task_r0[t], r1 = c->task_r1[t];
    if (r0 < r1 && j->packed)
        variant_packed(c->v, j->dtype).rows(j, r0, r1, t);
    else if (r0 < r1 && sm_dtype_is_kquant(j->dtype))
        (c->v->kq_rows ? c->v->kq_rows : sm_kq_rows)(j, r0, r1, t);
    else if (r0 < r1)
        c->v->matmul_rows(j, r0, r1, t);
}

static void quant_task(void *arg, int t, int n)
{
    mm_ctx *c = arg;
    sm_mm_job *j = c->jobs;
    int64_t nb = j->cols / SM_QBLOCK;
    for (int64_t b = t; b < j->batch; b += n) {
        c->v->quantize_x(j->x + b * j->ldx, j->cols, (int8_t *)j->xq + b * j->cols,
                         (float *)j->xd + b * nb);
        if (j->xs)
            sm_kq_x_sums(j->xq + b * j->cols, j->xd + b * nb, nb, (float *)j->xs + b * nb);
    }
}

/* Activations of packed weights: quantized as for GGUF blocks, then laid out for the width
 * (interleaved in groups for width 8, with what the type's products need after each group for
 * q4_0 and the K-quants; as they are, with corrections, for width 16). */
static void q8x_prepare_task(void *arg, int t, int n)
{
    mm_ctx *c = arg;
    sm_mm_job *j = c->jobs;
    int width = j->packed;
    int64_t nblk = j->cols / SM_QBLOCK, ng = sm_q8x_groups(width, j->cols);
    const sm_w8_layout *layout = sm_w8_layout_of(j->dtype);
    size_t group_bytes = layout ? SM_Q4X_XGROUP : (size_t)(36 * width);
    _Alignas(64) int8_t q[16 * SM_QBLOCK];
    _Alignas(64) float d[16];
    for (int64_t b = t; b < j->batch; b += n) {
        const float *x = j->x + b * j->ldx;
        uint8_t *out = (uint8_t *)j->xp + b * j->xp_stride;
        if (width == 16) {
            c->v->quantize_x(x, j->cols, (int8_t *)out,
                             (float *)(void *)(out + j->cols + 4 * (size_t)nblk));
            sm_q8r_finish_x(out, j->cols);
            continue;
        }
        for (int64_t g = 0; g < ng; g++) {
            int64_t kn = nblk - g * width < width ? nblk - g * width : width;
            c->v->quantize_x(x + g * width * SM_QBLOCK, kn * SM_QBLOCK, q, d);
            uint8_t *group = out + (size_t)g * group_bytes;
            sm_q8x_interleave_x(width, q, d, kn, group);
            if (layout)
                layout->finish_x(group, q, d, kn);
        }
    }
}

/* Activations for variants that want them permuted (permute_x), split over the pool by rows. */
typedef struct permute_ctx {
    const sm_kvariant *v;
    const float *x;
    int64_t ldx, cols, batch;
    float *out;
} permute_ctx;

static void permute_task(void *arg, int t, int n)
{
    permute_ctx *p = arg;
    for (int64_t b = t; b < p->batch; b += n)
        p->v->permute_x(p->x + b * p->ldx, p->cols, p->out + b * p->cols);
}

static void sgemm_task(void *arg, int t, int n)
{
    (void)n;
    mm_ctx *c = arg;
    sm_mm_job *j = c->jobs;
    float *tile = c->tiles + (int64_t)t * c->tile_rows * j->cols;
    int64_t end = (int64_t)(t + 1) * c->chunk < j->rows ? (int64_t)(t + 1) * c->chunk : j->rows;
    for (int64_t r0 = (int64_t)t * c->chunk; r0 < end; r0 += c->tile_rows) {
        int64_t nr = end - r0 < c->tile_rows ? end - r0 : c->tile_rows;
        c->v->rows_to_f32(j, r0, r0 + nr, tile);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)j->batch, (blasint)nr,
                    (blasint)j->cols, 1.0f, j->x, (blasint)j->ldx, tile, (blasint)j->cols, 0.0f,
                    j->y + r0, (blasint)j->ldy);
        if (j->bias)
            for (int64_t b = 0; b < j->batch; b++)
                for (int64_t r = r0; r < r0 + nr; r++)
                    j->y[b * j->ldy + r] += j->bias[r];
    }
}

/* OpenBLAS chooses its kernels by its own CPU detection when it is loaded; a release that does
 * not know the CPU falls back to older ones (Debian's 0.3.21 runs its SSE3 "Prescott" kernels
 * on the Xeon of family 6 model 207, 4x slower than the engine's AVX-512 tiles). These core
 * names are the ones whose kernels use 512-bit / 256-bit vectors with FMA. */
static bool blas_core_in(const char *core, const char *const *names)
{
    for (; *names; names++)
        if (strcasecmp(core, *names) == 0)
            return true;
    return false;
}

bool sm_kernels_fast_uses_blas(const sm_kctx *k, char *core, size_t core_len)
{
    static const char *const avx512_cores[] = {"SkylakeX", "Cooperlake", "SapphireRapids", NULL};
    static const char *const avx2_cores[] = {"Haswell",        "Zen", "SkylakeX", "Cooperlake",
                                             "SapphireRapids", NULL};
    const char *name = openblas_get_corename();
    if (!name)
        name = "unknown";
    if (core && core_len > 0)
        snprintf(core, core_len, "%s", name);
    sm_isa isa = k ? k->isa : SM_ISA_PORTABLE;
    if (isa == SM_ISA_AVX512 || isa == SM_ISA_AVX512BF16)
        return blas_core_in(name, avx512_cores);
    if (isa == SM_ISA_AVX2)
        return blas_core_in(name, avx2_cores);
    return true;
}

static sm_code matmul_sgemm(const sm_kctx *k, mm_ctx *c, sm_err *err)
{
    sm_mm_job *j = c->jobs;
    int threads = kctx_threads(k);
    int64_t tile_rows = SM_SGEMM_TILE_FLOATS / j->cols;
    if (tile_rows < 16)
        tile_rows = 16;
    int64_t chunk = (j->rows + threads - 1) / threads;
    if (tile_rows > chunk)
        tile_rows = chunk;
    c->tile_rows = tile_rows;
    c->chunk = chunk;
    c->tiles =
        kbuf_take(k, KBUF_X, (size_t)threads * (size_t)tile_rows * (size_t)j->cols * sizeof(float));
    if (!c->tiles)
        return sm_err_set(err, SM_ENOMEM, "matmul: no memory for %d sgemm tiles", threads);
    /* our pool runs one sgemm per thread: OpenBLAS itself must not start more threads */
    openblas_set_num_threads(1);
    run_tasks(k, sgemm_task, c, threads);
    kbuf_give(k, KBUF_X, c->tiles);
    return SM_OK;
}

/* Packed weights: activations in the packed layout (once for all of c's products, which share
 * it), then the variant's products. */
static sm_code matmul_q8x(const sm_kctx *k, mm_ctx *c, int n_jobs, int n_tasks, sm_err *err)
{
    sm_mm_job *j = c->jobs;
    int threads = kctx_threads(k);
    j->xp_stride = packed_x_bytes(j->dtype, j->packed, j->cols);
    uint8_t *xp = kbuf_take(k, KBUF_X, (size_t)j->batch * j->xp_stride);
    int64_t (*scratch_fn)(int64_t) = variant_packed(c->v, j->dtype).scratch_floats;
    j->scratch_floats = scratch_fn ? (scratch_fn(j->batch) + 15) / 16 * 16 : 0;
    j->scratch = j->scratch_floats
                     ? kbuf_take(k, KBUF_SCRATCH,
                                 (size_t)n_tasks * (size_t)j->scratch_floats * sizeof(float))
                     : NULL;
    if (!xp || (j->scratch_floats && !j->scratch)) {
        kbuf_give(k, KBUF_X, xp);
        kbuf_give(k, KBUF_SCRATCH, j->scratch);
        return sm_err_set(err, SM_ENOMEM, "matmul: no memory for packed activations");
    }
    j->xp = xp;
    for (int i = 1; i < n_jobs; i++) {
        c->jobs[i].xp = xp;
        c->jobs[i].xp_stride = j->xp_stride;
        c->jobs[i].scratch = j->scratch;
        c->jobs[i].scratch_floats = j->scratch_floats;
    }
    run_tasks(k, q8x_prepare_task, c, j->batch >= 4 ? threads : 1);
    run_tasks(k, mm_task, c, n_tasks);
    kbuf_give(k, KBUF_X, xp);
    kbuf_give(k, KBUF_SCRATCH, j->scratch);
    return SM_OK;
}

/* Splits rows [0, rows) of product job into tasks of whole units of align rows, largest first,
 * appended to c's tasks from *n_tasks: each task takes a 2 * threads-th of what is left, down to
 * a 16 * threads-th of the whole. Threads claim tasks in order, so the last ones, which a thread
 * held up (a shared machine) or just unlucky leaves the others waiting on, are small, while
 * most rows go in long tasks that stream their rows with the next ones prefetched. Task
 * boundaries fall on multiples of align whatever the thread count, so every row is computed the
 * same way. */
static void mm_schedule(mm_ctx *c, int *n_tasks, int job, int64_t rows, int64_t align, int threads)
{
    int64_t units = (rows + align - 1) / align;
    int64_t least = units / (16 * (int64_t)threads);
    if (least < 1)
        least = 1;
    int n = 0;
    for (int64_t done = 0; done < units; n++) {
        int64_t left = units - done;
        int64_t take = threads > 1 ? (left + 2 * threads - 1) / (2 * threads) : left;
        if (take < least)
            take = least;
        if (take > left || n == SM_MM_MAX_TASKS - 1)
            take = left;
        int t = *n_tasks + n;
        c->task_job[t] = (uint8_t)job;
        c->task_r0[t] = done * align;
        done += take;
        c->task_r1[t] = done * align < rows ? done * align : rows;
    }
    *n_tasks += n;
}

/* Tasks of several products, largest first (a stable order: equal sizes keep theirs). */
static void mm_sort_tasks(mm_ctx *c, int n_tasks)
{
    for (int i = 1; i < n_tasks; i++) {
        int64_t r0 = c->task_r0[i], r1 = c->task_r1[i];
        uint8_t jb = c->task_job[i];
        int k = i;
        for (; k > 0 && c->task_r1[k - 1] - c->task_r0[k - 1] < r1 - r0; k--) {
            c->task_r0[k] = c->task_r0[k - 1];
            c->task_r1[k] = c->task_r1[k - 1];
            c->task_job[k] = c->task_job[k - 1];
        }
        c->task_r0[k] = r0;
        c->task_r1[k] = r1;
        c->task_job[k] = jb;
    }
}

/* Rows in units a task never splits: whole 64-row blocks for prompts, whole decode units in
 * pairs (width 16's decode tiles take two groups), else 8. */
static int64_t mm_align(const sm_matrix *W, int64_t batch)
{
    int64_t unit = W->packed ? sm_q8x_unit_rows(W->packed) : 1;
    return batch >= SM_LONG_BATCH ? 64 : unit > 4 ? 2 * unit : 8;
}

/* The checks of sm_matmul's arguments. */
static sm_code matmul_check(const sm_kctx *k, const sm_matrix *W, const float *X, int64_t ldx,
                            int64_t batch, const float *Y, int64_t ldy, sm_err *err)
{
    if (!W || !X || !Y || !W->data)
        return sm_err_set(err, SM_EINVAL, "matmul: null argument");
    if (W->dtype < 0 || W->dtype >= SM_DTYPE_COUNT)
        return sm_err_set(err, SM_EINVAL, "matmul: unknown dtype %d", (int)W->dtype);
    if (W->rows < 0 || W->cols < 0 || batch < 0)
        return sm_err_set(err, SM_EINVAL, "matmul: negative size");
    if (batch > 1 && (ldx < W->cols || ldy < W->rows))
        return sm_err_set(err, SM_EINVAL,
                          "matmul: strides ldx=%lld ldy=%lld too small for %lld x %lld",
                          (long long)ldx, (long long)ldy, (long long)W->rows, (long long)W->cols);
    bool quant =
        W->dtype == SM_DTYPE_Q8_0 || W->dtype == SM_DTYPE_Q4_0 || sm_dtype_is_kquant(W->dtype);
    if (W->packed && variant_pack_width(variant(k), W->dtype) != W->packed)
        return sm_err_set(err, SM_EUNSUPPORTED,
                          "matmul: %s weights packed with width %d, which the %s kernels "
                          "do not read",
                          sm_dtype_name(W->dtype), W->packed,
                          sm_isa_name(k ? k->isa : SM_ISA_PORTABLE));
    if (quant && W->cols % sm_dtype_block(W->dtype) != 0)
        return sm_err_set(err, SM_EINVAL, "matmul: %s needs cols divisible by %lld, got %lld",
                          sm_dtype_name(W->dtype), (long long)sm_dtype_block(W->dtype),
                          (long long)W->cols);
    if (k && k->isa != SM_ISA_PORTABLE && !sm_isa_supported(k->isa))
        return sm_err_set(err, SM_EUNSUPPORTED, "matmul: this CPU cannot run %s kernels",
                          sm_isa_name(k->isa));
    return SM_OK;
}

static sm_mm_job mm_job_of(const sm_matrix *W, const float *bias, const float *X, int64_t ldx,
                           int64_t batch, float *Y, int64_t ldy)
{
    return (sm_mm_job){
        .dtype = W->dtype,
        .rows = W->rows,
        .cols = W->cols,
        .w = W->data,
        .row_bytes = W->packed ? packed_unit_bytes(W->dtype, W->packed, W->cols)
                               : sm_dtype_row_bytes(W->dtype, W->cols),
        .packed = W->packed,
        .bias = bias,
        .x = X,
        .ldx = ldx,
        .batch = batch,
        .y = Y,
        .ldy = ldy,
    };
}

/* The unpacked weights' products: activations quantized (q8_0, q4_0, K-quants) or permuted
 * or rounded to bf16 where the variant wants them so, then the variant's rows. */
static sm_code matmul_rows(const sm_kctx *k, mm_ctx *c, int n_tasks, sm_err *err)
{
    sm_mm_job *j = c->jobs;
    const sm_kvariant *v = c->v;
    int threads = kctx_threads(k);
    bool kq = sm_dtype_is_kquant(j->dtype);
    bool quant = j->dtype == SM_DTYPE_Q8_0 || j->dtype == SM_DTYPE_Q4_0 || kq;
    const float *x = j->x; /* the activations as the caller gave them */
    int64_t ldx = j->ldx;
    void *qbuf = NULL;
    if (quant) {
        int64_t nb = j->cols / SM_QBLOCK;
        /* scales, K-quant sums (xs), values */
        size_t nf = (size_t)j->batch * (size_t)nb * (kq ? 2 : 1);
        qbuf = kbuf_take(k, KBUF_X, nf * sizeof(float) + (size_t)j->batch * (size_t)j->cols);
        if (!qbuf)
            return sm_err_set(err, SM_ENOMEM, "matmul: no memory for quantized activations");
        j->xd = qbuf;
        j->xs = kq ? (float *)qbuf + j->batch * nb : NULL;
        j->xq = (int8_t *)((float *)qbuf + nf);
        run_tasks(k, quant_task, c, j->batch >= 4 ? threads : 1);
    }
    if (j->dtype == SM_DTYPE_BF16 && v->permute_x) {
        float *xp = kbuf_take(k, KBUF_X, (size_t)j->batch * (size_t)j->cols * sizeof *xp);
        if (!xp)
            return sm_err_set(err, SM_ENOMEM, "matmul: no memory for permuted activations");
        permute_ctx pc = {
            .v = v, .x = x, .ldx = ldx, .cols = j->cols, .batch = j->batch, .out = xp};
        run_tasks(k, permute_task, &pc, j->batch >= 4 ? threads : 1);
        qbuf = xp;
        j->x = xp;
        j->ldx = j->cols;
    }
    if (j->dtype == SM_DTYPE_BF16 && v->x_to_bf16) {
        qbuf = kbuf_take(k, KBUF_X, (size_t)j->batch * (size_t)j->cols * sizeof(uint16_t));
        if (!qbuf)
            return sm_err_set(err, SM_ENOMEM, "matmul: no memory for bf16 activations");
        j->xb = qbuf;
        for (int64_t b = 0; b < j->batch; b++)
            v->x_to_bf16(x + b * ldx, j->cols, (uint16_t *)qbuf + b * j->cols);
    }
    j->scratch_floats =
        kq ? sm_kq_scratch_floats(j->cols) : v->scratch_floats(j->dtype, j->cols, j->batch);
    if (j->scratch_floats > 0) {
        j->scratch_floats = (j->scratch_floats + 15) / 16 * 16;
        j->scratch =
            kbuf_take(k, KBUF_SCRATCH, (size_t)n_tasks * (size_t)j->scratch_floats * sizeof(float));
        if (!j->scratch) {
            kbuf_give(k, KBUF_X, qbuf);
            return sm_err_set(err, SM_ENOMEM, "matmul: no memory for row buffers");
        }
    }
    run_tasks(k, mm_task, c, n_tasks);
    kbuf_give(k, KBUF_X, qbuf);
    kbuf_give(k, KBUF_SCRATCH, j->scratch);
    return SM_OK;
}

sm_code sm_matmul(const sm_kctx *k, const sm_matrix *W, const float *bias, const float *X,
                  int64_t ldx, int64_t batch, float *Y, int64_t ldy, sm_err *err)
{
    sm_code rc = matmul_check(k, W, X, ldx, batch, Y, ldy, err);
    if (rc != SM_OK)
        return rc;
    if (batch == 0 || W->rows == 0)
        return SM_OK;
    if (W->cols == 0) {
        for (int64_t b = 0; b < batch; b++)
            for (int64_t r = 0; r < W->rows; r++)
                Y[b * ldy + r] = bias ? bias[r] : 0.0f;
        return SM_OK;
    }
    sm_mm_job job = mm_job_of(W, bias, X, ldx, batch, Y, ldy);
    mm_ctx c = {.v = variant(k), .jobs = &job};
    /* packed q8_0 weights: the 8-bit products are faster than f32 sgemm on converted tiles */
    if (k && !k->deterministic && batch >= SM_SGEMM_MIN_BATCH && !W->packed &&
        sm_kernels_fast_uses_blas(k, NULL, 0))
        return matmul_sgemm(k, &c, err);
    int n_tasks = 0;
    mm_schedule(&c, &n_tasks, 0, W->rows, mm_align(W, batch), kctx_threads(k));
    if (W->packed)
        return matmul_q8x(k, &c, 1, n_tasks, err);
    return matmul_rows(k, &c, n_tasks, err);
}

/* Whether b is packed in a's layout (so that a's prepared activations serve it). */
static bool same_packing(const sm_matrix *a, const sm_matrix *b)
{
    return a->packed && b->packed == a->packed && b->dtype == a->dtype && b->cols == a->cols;
}

sm_code sm_matmul_group(const sm_kctx *k, const sm_mm_part *parts, int n, const float *X,
                        int64_t ldx, int64_t batch, sm_err *err)
{
    if (n < 0 || (n > 0 && !parts))
        return sm_err_set(err, SM_EINVAL, "matmul: bad group of %d products", n);
    /* the first product and those packed as it is go together; the others one by one */
    sm_mm_job jobs[SM_MM_GROUP_MAX];
    int n_jobs = 0;
    bool grouped[SM_MM_GROUP_MAX] = {false};
    for (int i = 0; i < n; i++) {
        const sm_mm_part *p = &parts[i];
        sm_code rc = matmul_check(k, p->W, X, ldx, batch, p->Y, p->ldy, err);
        if (rc != SM_OK)
            return rc;
        if (i < SM_MM_GROUP_MAX && batch > 0 && p->W->rows > 0 && p->W->cols > 0 &&
            same_packing(parts[0].W, p->W)) {
            jobs[n_jobs++] = mm_job_of(p->W, p->bias, X, ldx, batch, p->Y, p->ldy);
            grouped[i] = true;
        }
    }
    for (int i = 0; i < n; i++) {
        if (grouped[i] && n_jobs > 1)
            continue;
        sm_code rc =
            sm_matmul(k, parts[i].W, parts[i].bias, X, ldx, batch, parts[i].Y, parts[i].ldy, err);
        if (rc != SM_OK)
            return rc;
    }
    if (n_jobs < 2)
        return SM_OK;
    mm_ctx c = {.v = variant(k), .jobs = jobs};
    int n_tasks = 0;
    for (int i = 0; i < n_jobs; i++)
        mm_schedule(&c, &n_tasks, i, jobs[i].rows, mm_align(parts[0].W, batch), kctx_threads(k));
    mm_sort_tasks(&c, n_tasks);
    return matmul_q8x(k, &c, n_jobs, n_tasks, err);
}

/* ---- packed weights ---- */

int sm_kernels_pack_width(const sm_kctx *k, sm_dtype t)
{
    /* variant() gives the portable table (no packed layouts) for a variant the CPU cannot run */
    return variant_pack_width(variant(k), t);
}

size_t sm_packed_bytes(int width, sm_dtype t, int64_t rows, int64_t cols)
{
    bool layout =
        t == SM_DTYPE_Q8_0 ? width == 8 || width == 16 : sm_w8_layout_of(t) != NULL && width == 8;
    if (!layout || rows < 0 || cols <= 0 || cols % sm_dtype_block(t) != 0)
        return 0;
    int64_t unit = sm_q8x_unit_rows(width);
    return (size_t)((rows + unit - 1) / unit) * packed_unit_bytes(t, width, cols);
}

sm_code sm_pack_rows(int width, sm_dtype t, const void *src, int64_t rows, int64_t cols, void *dst,
                     sm_err *err)
{
    if (!src || !dst || rows < 0)
        return sm_err_set(err, SM_EINVAL, "pack: bad argument");
    if (sm_packed_bytes(width, t, 1, cols) == 0)
        return sm_err_set(err, SM_EUNSUPPORTED,
                          "pack: no packed layout of width %d for %lld %s columns", width,
                          (long long)cols, sm_dtype_name(t));
    size_t rb = sm_dtype_row_bytes(t, cols), ub = packed_unit_bytes(t, width, cols);
    int64_t unit = sm_q8x_unit_rows(width);
    const sm_w8_layout *layout = sm_w8_layout_of(t);
    if (layout) {
        for (int64_t r = 0; r < rows; r++)
            layout->pack_row((const uint8_t *)src + (size_t)r * rb, cols,
                             (uint8_t *)dst + (size_t)r * ub);
        return SM_OK;
    }
    for (int64_t r = 0; r < rows; r += unit)
        sm_q8x_pack_unit(width, (const uint8_t *)src + (size_t)r * rb, rb,
                         (int)(rows - r < unit ? rows - r : unit), cols,
                         (uint8_t *)dst + (size_t)(r / unit) * ub);
    return SM_OK;
}

sm_code sm_matrix_row_f32(const sm_matrix *W, int64_t r, float *dst, sm_err *err)
{
    if (!W || !W->data || !dst || r < 0 || r >= W->rows)
        return sm_err_set(err, SM_EINVAL, "matrix row %lld: bad argument", (long long)r);
    if (W->packed) {
        if (sm_packed_bytes(W->packed, W->dtype, 1, W->cols) == 0)
            return sm_err_set(err, SM_EINVAL, "matrix row: no packed layout of width %d for %s",
                              W->packed, sm_dtype_name(W->dtype));
        int64_t unit = sm_q8x_unit_rows(W->packed);
        const uint8_t *u = (const uint8_t *)W->data +
                           (size_t)(r / unit) * packed_unit_bytes(W->dtype, W->packed, W->cols);
        const sm_w8_layout *layout = sm_w8_layout_of(W->dtype);
        if (layout)
            layout->row_to_f32(u, W->cols, dst);
        else
            sm_q8x_unit_row_to_f32(W->packed, u, (int)(r % unit), W->cols, dst);
        return SM_OK;
    }
    const uint8_t *row =
        (const uint8_t *)W->data + (size_t)r * sm_dtype_row_bytes(W->dtype, W->cols);
    return sm_dequantize_row(W->dtype, row, W->cols, dst, err);
}

/* ---- machine peak ---- */

typedef struct peak_ctx {
    const sm_kvariant *v;
    sm_dtype t;
    int64_t iters;
    double ops[1024];
} peak_ctx;

static void peak_task(void *arg, int t, int n)
{
    (void)n;
    peak_ctx *c = arg;
    c->ops[t % 1024] = c->v->peak(c->t, c->iters);
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

sm_code sm_kernels_peak(const sm_kctx *k, sm_dtype t, double *gflops, sm_err *err)
{
    if (!gflops || t < 0 || t >= SM_DTYPE_COUNT)
        return sm_err_set(err, SM_EINVAL, "peak: bad argument");
    if (k && k->isa != SM_ISA_PORTABLE && !sm_isa_supported(k->isa))
        return sm_err_set(err, SM_EUNSUPPORTED, "peak: this CPU cannot run %s kernels",
                          sm_isa_name(k->isa));
    int threads = kctx_threads(k);
    if (threads > 1024)
        threads = 1024;
    peak_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return sm_err_set(err, SM_ENOMEM, "peak: out of memory");
    c->v = variant(k);
    c->t = sm_dtype_is_kquant(t) ? SM_DTYPE_Q8_0 : t; /* K-quants: the same 8-bit products */
    /* calibrate to about 0.2 s per run, then keep the best of 5 runs */
    c->iters = 1 << 16;
    for (;;) {
        double t0 = wall_s();
        run_tasks(k, peak_task, c, threads);
        double dt = wall_s() - t0;
        if (dt > 0.05 || c->iters > ((int64_t)1 << 40))
            break;
        c->iters *= 4;
    }
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = wall_s();
        run_tasks(k, peak_task, c, threads);
        double dt = wall_s() - t0;
        double ops = 0;
        for (int i = 0; i < threads; i++)
            ops += c->ops[i];
        if (dt > 0 && ops / dt > best)
            best = ops / dt;
    }
    free(c);
    *gflops = best / 1e9;
    return SM_OK;
}

/* ---- vector kernels ---- */

void sm_rmsnorm(const sm_kctx *k, const float *x, const float *w, int64_t n, float eps, float *out)
{
    if (n > 0)
        variant(k)->rmsnorm(x, w, n, eps, out);
}

void sm_silu_mul(const sm_kctx *k, float *gate, const float *up, int64_t n)
{
    if (n > 0)
        variant(k)->silu_mul(gate, up, n);
}

/* Angles as Hugging Face computes them in float32: inv_freq = 1 / theta^(2i/d), then
 * pos * inv_freq, then cos and sin. */
void sm_rope(const sm_kctx *k, float *x, int n_heads, int head_dim, int64_t pos, double theta)
{
    enum { CH = 128 };
    if (n_heads <= 0 || head_dim < 2)
        return;
    const sm_kvariant *v = variant(k);
    int half = head_dim / 2;
    float cs[CH], sn[CH];
    for (int i0 = 0; i0 < half; i0 += CH) {
        int n = half - i0 < CH ? half - i0 : CH;
        for (int i = 0; i < n; i++) {
            float ex = (float)(2 * (i0 + i)) / (float)head_dim;
            float inv = 1.0f / powf((float)theta, ex);
            float ang = (float)pos * inv;
            cs[i] = (float)cos((double)ang);
            sn[i] = (float)sin((double)ang);
        }
        v->rope(x, n_heads, head_dim, i0, n, cs, sn);
    }
}

typedef struct attn_ctx {
    const sm_kvariant *v;
    const sm_attn_job *a;
} attn_ctx;

static void attn_task(void *arg, int t, int n)
{
    (void)n;
    attn_ctx *c = arg;
    c->v->attention_kvs(c->a, t, t + 1);
}

void sm_attention(const sm_kctx *k, const float *q, int n_heads, int n_kv_heads, int head_dim,
                  const void *kcache, const void *vcache, sm_dtype kv_dtype, int64_t kv_stride,
                  int64_t n_pos, float *out, float *scratch)
{
    (void)scratch; /* the online softmax keeps its scores in a fixed chunk on the stack */
    if (n_heads <= 0 || n_kv_heads <= 0 || head_dim <= 0 || n_heads % n_kv_heads != 0 ||
        (kv_dtype != SM_DTYPE_F32 && kv_dtype != SM_DTYPE_F16 && kv_dtype != SM_DTYPE_Q8_0))
        return;
    sm_attn_job a = {
        .q = q,
        .n_heads = n_heads,
        .n_kv_heads = n_kv_heads,
        .head_dim = head_dim,
        .k = kcache,
        .v = vcache,
        .kv_f16 = kv_dtype == SM_DTYPE_F16,
        .kv_q8 = kv_dtype == SM_DTYPE_Q8_0,
        .kv_stride = kv_stride,
        .n_pos = n_pos,
        .out = out,
        .scale = (float)(1.0 / sqrt((double)head_dim)),
    };
    attn_ctx c = {.v = variant(k), .a = &a};
    /* split over kv heads only when there is enough work to pay for waking the pool */
    if (n_pos * n_heads * head_dim >= 65536 && k->pool && sm_pool_threads(k->pool) > 1)
        run_tasks(k, attn_task, &c, n_kv_heads);
    else
        c.v->attention_kvs(&a, 0, n_kv_heads);
}
