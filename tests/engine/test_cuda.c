/* test_cuda: the CUDA backend (engine/cuda) against the CPU engine on a small seeded random
 * model written here as safetensors: logits within 3e-2 of the CPU f32 path (bf16 weights,
 * fast and deterministic products, int8 weights looser), a prompt longer than one attention
 * split and many KV pages, batched equal to single bitwise in deterministic mode, a copied
 * prefix (other pages) equal to the original, and sampling on the GPU. Exits 77 ("no CUDA
 * device") where no GPU can be used. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sm_cuda.h"

enum { HID = 256, LAYERS = 2, HEADS = 4, KVH = 2, HD = 64, INTER = 512, VOCAB = 1024 };

static int failures;

#define CHECK(cond, ...)                                         \
    do {                                                         \
        if (!(cond)) {                                           \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                        \
            fputc('\n', stderr);                                 \
            failures++;                                          \
        }                                                        \
    } while (0)

static uint64_t rng = 88172645463325252ull;

static float randn(void)
{
    double u1, u2;
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    u1 = ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    u2 = (double)(rng >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

typedef struct tensor {
    char name[64];
    int64_t rows, cols; /* cols 0: a vector */
    float *data;
} tensor;

static tensor tensors[LAYERS * 12 + 3];
static int n_tensors;

static void add(const char *name, int64_t rows, int64_t cols, float base, float std)
{
    tensor *t = &tensors[n_tensors++];
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->rows = rows;
    t->cols = cols;
    int64_t n = rows * (cols ? cols : 1);
    t->data = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        t->data[i] = base + std * randn();
}

/* Writes config.json and model.safetensors (f32) of the test shape into dir. */
static int write_model(const char *dir)
{
    char path[512], name[96];
    add("model.embed_tokens.weight", VOCAB, HID, 0, 0.5f);
    add("lm_head.weight", VOCAB, HID, 0, 0.2f);
    add("model.norm.weight", HID, 0, 1, 0.1f);
    static const struct {
        const char *n;
        int r, c;
    } m[] = {
        {"self_attn.q_proj.weight", HEADS * HD, HID}, {"self_attn.k_proj.weight", KVH * HD, HID},
        {"self_attn.v_proj.weight", KVH * HD, HID},   {"self_attn.o_proj.weight", HID, HEADS * HD},
        {"mlp.gate_proj.weight", INTER, HID},         {"mlp.up_proj.weight", INTER, HID},
        {"mlp.down_proj.weight", HID, INTER}};
    for (int l = 0; l < LAYERS; l++) {
        for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
            snprintf(name, sizeof(name), "model.layers.%d.%s", l, m[i].n);
            add(name, m[i].r, m[i].c, 0, 0.05f);
        }
        static const char *b[] = {"q", "k", "v"};
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof(name), "model.layers.%d.self_attn.%s_proj.bias", l, b[i]);
            add(name, i == 0 ? HEADS * HD : KVH * HD, 0, 0, 0.05f);
        }
        snprintf(name, sizeof(name), "model.layers.%d.input_layernorm.weight", l);
        add(name, HID, 0, 1, 0.1f);
        snprintf(name, sizeof(name), "model.layers.%d.post_attention_layernorm.weight", l);
        add(name, HID, 0, 1, 0.1f);
    }
    snprintf(path, sizeof(path), "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f,
            "{\"architectures\": [\"Qwen2ForCausalLM\"], \"model_type\": \"qwen2\", "
            "\"hidden_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
            "\"num_key_value_heads\": %d, \"intermediate_size\": %d, \"vocab_size\": %d, "
            "\"max_position_embeddings\": 4096, \"rope_theta\": 10000.0, "
            "\"rms_norm_eps\": 1e-6, \"tie_word_embeddings\": false, \"hidden_act\": "
            "\"silu\", \"use_sliding_window\": false, \"bos_token_id\": 0, "
            "\"eos_token_id\": %d, \"torch_dtype\": \"float32\"}\n",
            HID, LAYERS, HEADS, KVH, INTER, VOCAB, VOCAB - 1);
    fclose(f);
    size_t hcap = 65536, hlen = 0, off = 0;
    char *h = malloc(hcap);
    hlen += (size_t)snprintf(h + hlen, hcap - hlen, "{");
    for (int i = 0; i < n_tensors; i++) {
        tensor *t = &tensors[i];
        size_t bytes = (size_t)(t->rows * (t->cols ? t->cols : 1)) * 4;
        char shape[64];
        if (t->cols)
            snprintf(shape, sizeof(shape), "[%lld, %lld]", (long long)t->rows, (long long)t->cols);
        else
            snprintf(shape, sizeof(shape), "[%lld]", (long long)t->rows);
        hlen += (size_t)snprintf(h + hlen, hcap - hlen,
                                 "%s\"%s\": {\"dtype\": \"F32\", \"shape\": %s, "
                                 "\"data_offsets\": [%zu, %zu]}",
                                 i ? ", " : "", t->name, shape, off, off + bytes);
        off += bytes;
    }
    hlen += (size_t)snprintf(h + hlen, hcap - hlen, "}");
    while (hlen % 8)
        h[hlen++] = ' ';
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    if (!(f = fopen(path, "wb")))
        return -1;
    uint64_t n = hlen;
    fwrite(&n, 8, 1, f);
    fwrite(h, 1, hlen, f);
    for (int i = 0; i < n_tensors; i++)
        fwrite(tensors[i].data, 4,
               (size_t)(tensors[i].rows * (tensors[i].cols ? tensors[i].cols : 1)), f);
    free(h);
    return fclose(f);
}

/* max |a - b| / max |b| over n values. */
static double rel_err(const float *a, const float *b, int n)
{
    double d = 0, mx = 0;
    for (int i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        mx = fmax(mx, fabs((double)b[i]));
    }
    return mx > 0 ? d / mx : d;
}

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

#define OK(call)                                                                        \
    do {                                                                                \
        sm_err e_ = {0};                                                                \
        if ((call) != SM_OK) {                                                          \
            fprintf(stderr, "FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, e_.msg); \
            exit(1);                                                                    \
        }                                                                               \
    } while (0)
#define E (&e_)

static int32_t prompt[1100];

/* The CPU f32 reference: logits after the prompt of n tokens and after each of steps greedy
 * decode tokens (ref[(1 + steps) * VOCAB]); the decoded ids go to ids[n ...]. */
static void cpu_reference(const char *dir, int n, int steps, float *ref)
{
    sm_model_opts o;
    sm_model_opts_init(&o);
    o.dtype_set = true;
    o.dtype = SM_DTYPE_F32;
    o.threads = 2;
    sm_model *m = NULL;
    sm_seq *s = NULL;
    OK(sm_model_load(dir, &o, &m, E));
    OK(sm_seq_new(m, 2048, &s, E));
    int64_t len = n;
    const int32_t *t = prompt;
    OK(sm_model_forward(m, &s, &t, &len, 1, ref, E));
    for (int i = 0; i < steps; i++) {
        prompt[n + i] = argmax(ref + (size_t)i * VOCAB, VOCAB);
        t = prompt + n + i;
        len = 1;
        OK(sm_model_forward(m, &s, &t, &len, 1, ref + (size_t)(i + 1) * VOCAB, E));
    }
    sm_seq_free(&s);
    sm_model_free(&m);
}

/* The same on the GPU (teacher-forced with the CPU's ids); returns the worst relative error. */
static double gpu_vs_cpu(const char *dir, const sm_cuda_opts *o, int n, int steps, const float *ref)
{
    sm_cuda_model *m = NULL;
    sm_cuda_seq *s = NULL;
    float *lg = malloc(VOCAB * sizeof(float));
    OK(sm_cuda_model_load(dir, o, &m, E));
    OK(sm_cuda_seq_new(m, 2048, &s, E));
    double worst = 0;
    for (int i = 0; i <= steps; i++) {
        const int32_t *t = i ? prompt + n + i - 1 : prompt;
        int64_t len = i ? 1 : n;
        OK(sm_cuda_forward(m, &s, &t, &len, 1, lg, E));
        worst = fmax(worst, rel_err(lg, ref + (size_t)i * VOCAB, VOCAB));
    }
    sm_cuda_seq_free(&s);
    sm_cuda_model_free(&m);
    free(lg);
    return worst;
}

static void test_reference(const char *dir)
{
    enum { SHORT = 20, LONG = 1100 - 8, STEPS = 6 };
    float *ref = malloc((size_t)(STEPS + 1) * VOCAB * sizeof(float));
    sm_cuda_opts o;
    sm_cuda_opts_init(&o);
    for (int len = SHORT; len <= LONG; len += LONG - SHORT) {
        cpu_reference(dir, len, STEPS, ref);
        o.fast = false, o.int8 = false;
        double det = gpu_vs_cpu(dir, &o, len, STEPS, ref);
        o.fast = true;
        double fast = gpu_vs_cpu(dir, &o, len, STEPS, ref);
        o.fast = false, o.int8 = true;
        double i8 = gpu_vs_cpu(dir, &o, len, STEPS, ref);
        printf("prompt %d: relative error deterministic %.2e, fast %.2e, int8 %.2e\n", len, det,
               fast, i8);
        CHECK(det <= 3e-2, "deterministic bf16 vs CPU f32: %g", det);
        CHECK(fast <= 3e-2, "fast bf16 vs CPU f32: %g", fast);
        CHECK(i8 <= 8e-2, "int8 vs CPU f32: %g", i8);
    }
    free(ref);
}

/* Three sequences of different lengths advanced together, then each alone on a fresh model
 * state: bitwise equal logits (deterministic mode), for the prompts and two decode steps. Then
 * a copied prefix continues bitwise like its source. Then sampling. */
static void test_batch(const char *dir)
{
    enum { N = 3 };
    static const int64_t lens[N] = {7, 600, 33};
    sm_cuda_opts o;
    sm_cuda_opts_init(&o);
    sm_cuda_model *m = NULL;
    OK(sm_cuda_model_load(dir, &o, &m, E));
    float *together = malloc((size_t)3 * N * VOCAB * sizeof(float));
    float *alone = malloc((size_t)3 * N * VOCAB * sizeof(float));
    sm_cuda_seq *s[N];
    for (int i = 0; i < N; i++)
        OK(sm_cuda_seq_new(m, 2048, &s[i], E));
    const int32_t *t[N] = {prompt, prompt + 100, prompt + 200};
    static const int32_t next[2][N] = {{5, 6, 7}, {9, 10, 11}};
    int64_t one[N] = {1, 1, 1};
    OK(sm_cuda_forward(m, s, t, lens, N, together, E));
    for (int k = 0; k < 2; k++) {
        const int32_t *tn[N] = {&next[k][0], &next[k][1], &next[k][2]};
        OK(sm_cuda_forward(m, s, tn, one, N, together + (size_t)(k + 1) * N * VOCAB, E));
    }
    for (int i = 0; i < N; i++) {
        sm_cuda_seq *a = NULL;
        OK(sm_cuda_seq_new(m, 2048, &a, E));
        OK(sm_cuda_forward(m, &a, &t[i], &lens[i], 1, alone + (size_t)i * VOCAB, E));
        for (int k = 0; k < 2; k++) {
            const int32_t *tn = &next[k][i];
            OK(sm_cuda_forward(m, &a, &tn, &one[0], 1,
                               alone + ((size_t)(k + 1) * N + (size_t)i) * VOCAB, E));
        }
        sm_cuda_seq_free(&a);
    }
    CHECK(memcmp(together, alone, (size_t)3 * N * VOCAB * sizeof(float)) == 0,
          "batched logits differ from single (max diff %g)",
          rel_err(together, alone, 3 * N * VOCAB));

    /* a copy of the 600-position sequence's first 590 positions, continued with the same ids,
     * equals the source continued from 590 (recomputed in a fresh sequence) */
    sm_cuda_seq *c = NULL, *r = NULL;
    OK(sm_cuda_seq_new(m, 2048, &c, E));
    OK(sm_cuda_seq_new(m, 2048, &r, E));
    int64_t pre = 590, rest = 10;
    const int32_t *tp = prompt + 100, *tr = prompt + 100 + 590;
    float *a1 = malloc(VOCAB * sizeof(float)), *a2 = malloc(VOCAB * sizeof(float));
    OK(sm_cuda_forward(m, &r, &tp, &pre, 1, NULL, E));
    OK(sm_cuda_seq_copy_prefix(c, r, pre, E));
    OK(sm_cuda_forward(m, &c, &tr, &rest, 1, a1, E));
    OK(sm_cuda_forward(m, &r, &tr, &rest, 1, a2, E));
    CHECK(memcmp(a1, a2, VOCAB * sizeof(float)) == 0, "copied prefix differs");

    /* greedy sampling picks the host argmax; a seeded sample repeats */
    int32_t g[N], x1[N], x2[N];
    const int32_t *tn[N] = {&next[0][0], &next[0][1], &next[0][2]};
    OK(sm_cuda_forward(m, s, tn, one, N, together, E));
    OK(sm_cuda_sample(m, N, 0.0, NULL, NULL, g, E));
    uint64_t seeds[N] = {1, 2, 3}, ctr[N] = {4, 5, 6};
    OK(sm_cuda_sample(m, N, 0.8, seeds, ctr, x1, E));
    OK(sm_cuda_sample(m, N, 0.8, seeds, ctr, x2, E));
    for (int i = 0; i < N; i++) {
        CHECK(g[i] == argmax(together + (size_t)i * VOCAB, VOCAB), "greedy %d", i);
        CHECK(x1[i] == x2[i] && x1[i] >= 0 && x1[i] < VOCAB, "seeded sample %d", i);
    }
    for (int i = 0; i < N; i++)
        sm_cuda_seq_free(&s[i]);
    sm_cuda_seq_free(&c);
    sm_cuda_seq_free(&r);
    sm_cuda_model_free(&m);
    free(together);
    free(alone);
    free(a1);
    free(a2);
}

int main(void)
{
    char why[256];
    if (!sm_cuda_available(why, sizeof(why))) {
        printf("SKIP: no CUDA device (%s)\n", why);
        return SM_CUDA_SKIP;
    }
    char info[256];
    sm_cuda_describe(0, info, sizeof(info));
    printf("device: %s\n", info);
    char dir[] = "/tmp/sm_test_cuda_XXXXXX";
    if (!mkdtemp(dir) || write_model(dir) != 0) {
        fprintf(stderr, "FAIL: cannot write the test model\n");
        return 1;
    }
    for (int i = 0; i < (int)(sizeof(prompt) / sizeof(prompt[0])); i++)
        prompt[i] = (int32_t)((i * 7919 + 13) % VOCAB);
    test_reference(dir);
    test_batch(dir);
    char path[600];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
    for (int i = 0; i < n_tensors; i++)
        free(tensors[i].data);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
