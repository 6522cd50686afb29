/* engine_check: end-to-end checks of the model forward pass (run by ctest on generated models).
 * Every mode takes --fast to use the fast (not batch-invariant) kernels and --kv-dtype f32|f16
 * to choose the KV cache's type (else the engine's default for the weight type).
 *   ref --model M --ref FILE [--dtype T] --tol X [--greedy]
 *       prompt + decode steps against a transformers reference file (hf_reference.py),
 *       relative error ||ours - ref|| / ||ref|| of every step's logits <= X; with --greedy our
 *       argmax must equal the reference's greedy token at every step.
 *   batch --model M [--dtype T]
 *       sequences of different lengths joining and leaving a batch give bitwise the same
 *       logits as each run alone; a prompt in one step equals it fed token by token.
 *   compare --a M1 --b M2 [--dtype-a T] [--dtype-b T] [--kv-dtype-a T] [--kv-dtype-b T]
 *           (--ids "..." | --prompt-len N) --steps N --tol X
 *       two copies of one model (e.g. GGUF and safetensors, or an 8-bit against an f16 KV
 *       cache) give the same logits; --prompt-len: a prompt of N seeded pseudo-random ids.
 *   tensor --gguf FILE --name N --out FILE [--x FILE --batch B]
 *       writes the GGUF tensor N dequantized (f32, row-major) to --out; with --x (B rows of
 *       f32 activations), writes instead the product W x (B rows of W's row count values).
 * Every mode takes --isa NAME to choose the kernels (else the CPU's default). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_gguf.h"
#include "sm_model.h"

static const char *arg(int argc, char **argv, const char *name)
{
    for (int i = 0; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return argv[i + 1];
        }
    }
    return NULL;
}

static int flag(int argc, char **argv, const char *name)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return 1;
        }
    }
    return 0;
}

static int g_fast;
static const char *g_isa;      /* --isa, or NULL: the CPU's default */
static const char *g_kv_dtype; /* --kv-dtype, or NULL: the engine's choice */

static sm_model *load(const char *path, const char *dtype)
{
    sm_model_opts o;
    sm_model_opts_init(&o);
    o.fast = g_fast;
    sm_err err = {0};
    if (dtype != NULL) {
        if (sm_dtype_parse(dtype, &o.dtype, &err) != SM_OK) {
            fprintf(stderr, "%s\n", err.msg);
            exit(2);
        }
        o.dtype_set = true;
    }
    if (g_kv_dtype != NULL) {
        if (sm_dtype_parse(g_kv_dtype, &o.kv_dtype, &err) != SM_OK) {
            fprintf(stderr, "%s\n", err.msg);
            exit(2);
        }
        o.kv_dtype_set = true;
    }
    if (g_isa != NULL) {
        if (sm_isa_parse(g_isa, &o.isa, &err) != SM_OK) {
            fprintf(stderr, "%s\n", err.msg);
            exit(2);
        }
        o.isa_set = true;
    }
    sm_model *m = NULL;
    if (sm_model_load(path, &o, &m, &err) != SM_OK) {
        fprintf(stderr, "load %s: %s\n", path, err.msg);
        exit(1);
    }
    return m;
}

static sm_seq *new_seq(sm_model *m)
{
    sm_seq *s = NULL;
    sm_err err = {0};
    if (sm_seq_new(m, 2048, &s, &err) != SM_OK) {
        fprintf(stderr, "seq: %s\n", err.msg);
        exit(1);
    }
    return s;
}

static void step(sm_model *m, sm_seq **seqs, const int32_t **toks, const int64_t *n, int ns,
                 float *logits)
{
    sm_err err = {0};
    if (sm_model_forward(m, seqs, toks, n, ns, logits, &err) != SM_OK) {
        fprintf(stderr, "forward: %s\n", err.msg);
        exit(1);
    }
}

static double rel_err(const float *a, const float *ref, int64_t n)
{
    double d = 0, r = 0;
    for (int64_t i = 0; i < n; i++) {
        d += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        r += (double)ref[i] * ref[i];
    }
    return sqrt(d) / (sqrt(r) > 0 ? sqrt(r) : 1);
}

static int64_t argmax(const float *x, int64_t n)
{
    int64_t b = 0;
    for (int64_t i = 1; i < n; i++) {
        if (x[i] > x[b]) {
            b = i;
        }
    }
    return b;
}

static int cmd_ref(int argc, char **argv)
{
    const char *mp = arg(argc, argv, "--model"), *rp = arg(argc, argv, "--ref");
    const char *tol_s = arg(argc, argv, "--tol");
    if (!mp || !rp || !tol_s) {
        fprintf(stderr, "ref: --model, --ref and --tol are required\n");
        return 2;
    }
    double tol = atof(tol_s);
    FILE *f = fopen(rp, "rb");
    int32_t hdr[3];
    if (f == NULL || fread(hdr, 4, 3, f) != 3 || hdr[0] < 1 || hdr[1] < 0 || hdr[2] < 1) {
        fprintf(stderr, "bad reference file %s\n", rp);
        return 1;
    }
    int64_t np_ = hdr[0], steps = hdr[1], V = hdr[2];
    int32_t *ids = malloc((size_t)(np_ + steps) * 4);
    float *ref = malloc((size_t)((steps + 1) * V) * 4);
    if (fread(ids, 4, (size_t)(np_ + steps), f) != (size_t)(np_ + steps) ||
        fread(ref, 4, (size_t)((steps + 1) * V), f) != (size_t)((steps + 1) * V)) {
        fprintf(stderr, "truncated reference file %s\n", rp);
        return 1;
    }
    fclose(f);
    sm_model *m = load(mp, arg(argc, argv, "--dtype"));
    if (sm_model_info(m)->config.vocab != V) {
        fprintf(stderr, "vocab mismatch\n");
        return 1;
    }
    sm_seq *s = new_seq(m);
    float *lg = malloc((size_t)V * 4);
    int fails = 0;
    double worst = 0;
    for (int64_t i = 0; i <= steps; i++) {
        const int32_t *t = i == 0 ? ids : &ids[np_ + i - 1];
        int64_t n = i == 0 ? np_ : 1;
        step(m, &s, &t, &n, 1, lg);
        double e = rel_err(lg, ref + i * V, V);
        worst = e > worst ? e : worst;
        if (e > tol) {
            fprintf(stderr, "step %lld: relative error %.3g > %.3g\n", (long long)i, e, tol);
            fails++;
        }
        if (flag(argc, argv, "--greedy") && i < steps && argmax(lg, V) != ids[np_ + i]) {
            fprintf(stderr, "step %lld: greedy token %lld, reference %d\n", (long long)i,
                    (long long)argmax(lg, V), ids[np_ + i]);
            fails++;
        }
    }
    printf("ref %s dtype %s: %lld steps, max relative error %.3g (tolerance %.3g)%s\n", mp,
           sm_dtype_name(sm_model_info(m)->weight_dtype), (long long)steps, worst, tol,
           fails ? " FAILED" : "");
    sm_seq_free(&s);
    sm_model_free(&m);
    free(lg);
    free(ids);
    free(ref);
    return fails ? 1 : 0;
}

/* A deterministic pseudo-random token stream. */
static int32_t tok_at(int seq, int64_t i, int64_t V)
{
    uint64_t x = (uint64_t)seq * 1000003u + (uint64_t)i * 7919u + 17u;
    x ^= x >> 13;
    x *= 0x9e3779b97f4a7c15ULL;
    return (int32_t)((x >> 33) % (uint64_t)V);
}

#define NSEQ 4
#define NSTEP 10

/* prompt lengths, the step each sequence joins, and how many steps it stays */
static const int64_t batch_plen[NSEQ] = {5, 1, 37, 600};
static const int batch_join[NSEQ] = {0, 1, 3, 2};
static const int batch_stay[NSEQ] = {NSTEP, 4, 6, 5};

/* One batch check: the model, the logits of each sequence alone, and scratch buffers. */
typedef struct batch_ctx {
    sm_model *m;
    int64_t V;
    float *alone; /* NSEQ * NSTEP * V logits */
    float *lg;    /* NSEQ * V logits */
    int32_t *buf; /* 1024 tokens */
} batch_ctx;

/* Alone: prompt in one step, then stay-1 decode steps of the stream's next tokens. */
static void batch_alone(const batch_ctx *b)
{
    int64_t V = b->V;
    for (int s = 0; s < NSEQ; s++) {
        sm_seq *q = new_seq(b->m);
        for (int k = 0; k < batch_stay[s]; k++) {
            int64_t start = k == 0 ? 0 : batch_plen[s] + k - 1, n = k == 0 ? batch_plen[s] : 1;
            for (int64_t i = 0; i < n; i++) {
                b->buf[i] = tok_at(s, start + i, V);
            }
            const int32_t *t = b->buf;
            step(b->m, &q, &t, &n, 1, b->alone + (s * NSTEP + k) * V);
        }
        sm_seq_free(&q);
    }
}

/* Batched: each step, every active sequence advances together. Returns the failures. */
static int batch_together(const batch_ctx *b)
{
    int64_t V = b->V;
    sm_seq *seqs[NSEQ] = {0};
    int done[NSEQ] = {0};
    int fails = 0;
    for (int st = 0; st < 16; st++) {
        sm_seq *act[NSEQ];
        const int32_t *toks[NSEQ];
        int64_t n[NSEQ];
        int idx[NSEQ], na = 0;
        int32_t *p = b->buf;
        for (int s = 0; s < NSEQ; s++) {
            if (st < batch_join[s] || done[s] >= batch_stay[s]) {
                continue;
            }
            if (seqs[s] == NULL) {
                seqs[s] = new_seq(b->m);
            }
            int k = done[s];
            int64_t start = k == 0 ? 0 : batch_plen[s] + k - 1;
            n[na] = k == 0 ? batch_plen[s] : 1;
            for (int64_t i = 0; i < n[na]; i++) {
                p[i] = tok_at(s, start + i, V);
            }
            toks[na] = p;
            p += n[na];
            act[na] = seqs[s];
            idx[na++] = s;
        }
        if (na == 0) {
            continue;
        }
        step(b->m, act, toks, n, na, b->lg);
        for (int i = 0; i < na; i++) {
            int s = idx[i];
            const float *want = b->alone + (s * NSTEP + done[s]) * V;
            if (memcmp(b->lg + i * V, want, (size_t)V * 4) != 0) {
                fprintf(stderr,
                        "step %d: sequence %d (its step %d, batch of %d) differs: rel %.3g\n", st,
                        s, done[s], na, rel_err(b->lg + i * V, want, V));
                fails++;
            }
            if (++done[s] == batch_stay[s]) {
                sm_seq_free(&seqs[s]);
            }
        }
    }
    return fails;
}

/* A prompt token by token, and copies of its cache, against the prompt alone in one step.
 * Adds to *fails; returns 1 where a copy cannot be made, else 0. */
static int batch_copies(const batch_ctx *b, int *fails)
{
    int64_t V = b->V;
    const float *want = b->alone + (2 * NSTEP) * V;
    /* A prompt in one step equals the same prompt fed one token at a time. */
    sm_seq *a = new_seq(b->m);
    for (int64_t i = 0; i < batch_plen[2]; i++) {
        b->buf[i] = tok_at(2, i, V);
        const int32_t *t = &b->buf[i];
        int64_t one = 1;
        step(b->m, &a, &t, &one, 1, b->lg);
    }
    if (memcmp(b->lg, want, (size_t)V * 4) != 0) {
        fprintf(stderr, "prompt token by token differs from one step: rel %.3g\n",
                rel_err(b->lg, want, V));
        (*fails)++;
    }
    /* A copy of the prompt's cache continues exactly like the original. */
    sm_seq *c = NULL;
    sm_err err = {0};
    if (sm_seq_copy(a, batch_plen[2] - 1, 0, &c, &err) != SM_OK) {
        fprintf(stderr, "seq_copy: %s\n", err.msg);
        return 1;
    }
    const int32_t *t = &b->buf[batch_plen[2] - 1];
    int64_t one = 1;
    step(b->m, &c, &t, &one, 1, b->lg);
    if (memcmp(b->lg, want, (size_t)V * 4) != 0) {
        fprintf(stderr, "a copied prefix differs: rel %.3g\n", rel_err(b->lg, want, V));
        (*fails)++;
    }
    /* The same through sm_seq_copy_prefix into a used sequence. */
    if (sm_seq_copy_prefix(c, a, batch_plen[2] - 1, &err) != SM_OK ||
        sm_seq_pos(c) != batch_plen[2] - 1) {
        fprintf(stderr, "seq_copy_prefix: %s\n", err.msg);
        return 1;
    }
    step(b->m, &c, &t, &one, 1, b->lg);
    if (memcmp(b->lg, want, (size_t)V * 4) != 0) {
        fprintf(stderr, "a prefix copied into a used sequence differs\n");
        (*fails)++;
    }
    sm_seq_free(&c);
    sm_seq_free(&a);
    return 0;
}

static int cmd_batch(int argc, char **argv)
{
    const char *mp = arg(argc, argv, "--model");
    if (!mp) {
        fprintf(stderr, "batch: --model is required\n");
        return 2;
    }
    batch_ctx b = {load(mp, arg(argc, argv, "--dtype")), 0, NULL, NULL, NULL};
    int64_t V = b.V = sm_model_info(b.m)->config.vocab;
    b.alone = calloc((size_t)(NSEQ * NSTEP * V), 4);
    b.lg = malloc((size_t)(NSEQ * V) * 4);
    b.buf = malloc(1024 * 4);
    batch_alone(&b);
    int fails = batch_together(&b);
    if (batch_copies(&b, &fails) != 0) {
        return 1;
    }
    printf("batch %s: %s\n", mp, fails ? "FAILED" : "bitwise identical");
    free(b.alone);
    free(b.lg);
    free(b.buf);
    sm_model_free(&b.m);
    return fails ? 1 : 0;
}

static int cmd_compare(int argc, char **argv)
{
    const char *pa = arg(argc, argv, "--a"), *pb = arg(argc, argv, "--b");
    const char *ids_s = arg(argc, argv, "--ids"), *tol_s = arg(argc, argv, "--tol");
    const char *steps_s = arg(argc, argv, "--steps"), *plen_s = arg(argc, argv, "--prompt-len");
    if (!pa || !pb || (!ids_s && !plen_s) || !tol_s) {
        fprintf(stderr, "compare: --a, --b, --ids and --tol are required\n");
        return 2;
    }
    double tol = atof(tol_s);
    int steps = steps_s ? atoi(steps_s) : 8;
    const char *kv = g_kv_dtype, *kva = arg(argc, argv, "--kv-dtype-a");
    const char *kvb = arg(argc, argv, "--kv-dtype-b");
    g_kv_dtype = kva ? kva : kv;
    sm_model *ma = load(pa, arg(argc, argv, "--dtype-a"));
    g_kv_dtype = kvb ? kvb : kv;
    sm_model *mb = load(pb, arg(argc, argv, "--dtype-b"));
    g_kv_dtype = kv;
    int64_t V = sm_model_info(ma)->config.vocab;
    if (sm_model_info(mb)->config.vocab != V) {
        fprintf(stderr, "vocab mismatch\n");
        return 1;
    }
    int64_t plen = plen_s ? atol(plen_s) : 0, n = 0;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(plen > 512 ? plen : 512));
    uint64_t st = 0x9e3779b97f4a7c15ull;
    for (; n < plen; n++) {
        st ^= st << 13;
        st ^= st >> 7;
        st ^= st << 17;
        ids[n] = (int32_t)(st % (uint64_t)V);
    }
    char *end;
    for (const char *p = ids_s; p && n < 512; p = end) {
        long v = strtol(p, &end, 10);
        if (end == p) {
            break;
        }
        ids[n++] = (int32_t)v;
    }
    sm_seq *sa = new_seq(ma), *sb = new_seq(mb);
    float *la = malloc((size_t)V * 4), *lb = malloc((size_t)V * 4);
    double worst = 0;
    for (int i = 0; i <= steps; i++) {
        const int32_t *t = ids;
        step(ma, &sa, &t, &n, 1, la);
        step(mb, &sb, &t, &n, 1, lb);
        double e = rel_err(la, lb, V);
        worst = e > worst ? e : worst;
        ids[0] = (int32_t)argmax(lb, V);
        n = 1;
    }
    printf("compare %s (%s, %s KV) vs %s (%s, %s KV): max relative error %.3g (tolerance "
           "%.3g)\n",
           pa, sm_dtype_name(sm_model_info(ma)->weight_dtype),
           sm_dtype_name(sm_model_info(ma)->kv_dtype), pb,
           sm_dtype_name(sm_model_info(mb)->weight_dtype),
           sm_dtype_name(sm_model_info(mb)->kv_dtype), worst, tol);
    free(ids);
    sm_seq_free(&sa);
    sm_seq_free(&sb);
    sm_model_free(&ma);
    sm_model_free(&mb);
    free(la);
    free(lb);
    return worst <= tol ? 0 : 1;
}

/* The product of a GGUF tensor with activations read from xpath (batch rows), into out. */
static int tensor_matmul(const sm_tensor *t, const char *xpath, int64_t batch, float *out,
                         sm_err *err)
{
    int64_t rows = t->shape[0], cols = t->shape[1];
    float *x = malloc((size_t)(batch * cols) * sizeof *x);
    FILE *f = fopen(xpath, "rb");
    size_t got = f && x ? fread(x, sizeof *x, (size_t)(batch * cols), f) : 0;
    if (f)
        fclose(f);
    if (got != (size_t)(batch * cols)) {
        free(x);
        fprintf(stderr, "tensor: %s: expected %lld floats\n", xpath, (long long)(batch * cols));
        return 1;
    }
    sm_kctx k = {.isa = sm_isa_detect(), .deterministic = true};
    if (g_isa && sm_isa_parse(g_isa, &k.isa, err) != SM_OK) {
        free(x);
        fprintf(stderr, "%s\n", err->msg);
        return 2;
    }
    sm_matrix w = {.dtype = t->dtype, .rows = rows, .cols = cols, .data = t->data};
    sm_code rc = sm_matmul(&k, &w, NULL, x, cols, batch, out, rows, err);
    free(x);
    if (rc != SM_OK)
        fprintf(stderr, "matmul: %s\n", err->msg);
    return rc == SM_OK ? 0 : 1;
}

static int cmd_tensor(int argc, char **argv)
{
    const char *path = arg(argc, argv, "--gguf"), *name = arg(argc, argv, "--name");
    const char *outp = arg(argc, argv, "--out"), *xpath = arg(argc, argv, "--x");
    const char *batch_s = arg(argc, argv, "--batch");
    if (!path || !name || !outp) {
        fprintf(stderr, "tensor: --gguf, --name and --out are required\n");
        return 2;
    }
    sm_err err = {0};
    sm_gguf *g = NULL;
    if (sm_gguf_open(path, &g, &err) != SM_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const sm_tensor *t = sm_gguf_find(g, name);
    if (t == NULL || t->n_dims != 2 || t->dtype == SM_DTYPE_COUNT) {
        fprintf(stderr, "tensor %s: missing, not a matrix, or of an unsupported type\n", name);
        sm_gguf_close(&g);
        return 1;
    }
    int64_t rows = t->shape[0], cols = t->shape[1];
    int64_t batch = xpath ? (batch_s ? atoll(batch_s) : 1) : rows;
    int64_t n = xpath ? batch * rows : rows * cols;
    float *out = malloc((size_t)n * sizeof *out);
    int rc = out ? 0 : 1;
    if (rc == 0 && xpath) {
        rc = tensor_matmul(t, xpath, batch, out, &err);
    }
    size_t rb = sm_dtype_row_bytes(t->dtype, cols);
    for (int64_t r = 0; rc == 0 && !xpath && r < rows; r++) {
        if (sm_dequantize_row(t->dtype, (const uint8_t *)t->data + (size_t)r * rb, cols,
                              out + r * cols, &err) != SM_OK) {
            fprintf(stderr, "dequantize: %s\n", err.msg);
            rc = 1;
        }
    }
    FILE *f = rc == 0 ? fopen(outp, "wb") : NULL;
    if (rc == 0 && (!f || fwrite(out, sizeof *out, (size_t)n, f) != (size_t)n)) {
        fprintf(stderr, "%s: cannot write\n", outp);
        rc = 1;
    }
    if (f)
        fclose(f);
    free(out);
    sm_gguf_close(&g);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: engine_check ref|batch|compare ...\n");
        return 2;
    }
    g_fast = flag(argc, argv, "--fast");
    g_kv_dtype = arg(argc, argv, "--kv-dtype");
    g_isa = arg(argc, argv, "--isa");
    if (strcmp(argv[1], "tensor") == 0) {
        return cmd_tensor(argc, argv);
    }
    if (strcmp(argv[1], "ref") == 0) {
        return cmd_ref(argc, argv);
    }
    if (strcmp(argv[1], "batch") == 0) {
        return cmd_batch(argc, argv);
    }
    if (strcmp(argv[1], "compare") == 0) {
        return cmd_compare(argc, argv);
    }
    fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
}
