/* test_model_files: unit tests of model loading from files written by the test itself: a
 * valid tiny model in safetensors (single and sharded) and GGUF form loads and runs, and every
 * kind of broken file (truncated, corrupt header, wrong shape, offsets past the end, overlap,
 * missing tensor, bad dtype, bad config.json/generation_config.json, bad GGUF metadata, and
 * every truncation and seeded random corruption of the headers) gives a clear error code and
 * never a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sm_gguf.h"
#include "sm_model.h"
#include "sm_safetensors.h"

/* The tiny shape: hidden 32, 1 layer, 2 heads of 16, 1 kv head, MLP 64, vocab 40, tied. */
#define H 32
#define KV 16
#define I 64
#define V 40

typedef struct tent {
    char name[96];
    char dtype[16];
    int nd;
    int64_t shape[2];
    uint64_t begin, end;
} tent;

typedef struct model_spec {
    tent t[32];
    int n;
    uint64_t data_size;
} model_spec;

static void add(model_spec *m, const char *name, int64_t r, int64_t c)
{
    tent *t = &m->t[m->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->dtype, sizeof t->dtype, "F32");
    t->nd = c ? 2 : 1;
    t->shape[0] = r;
    t->shape[1] = c;
    uint64_t bytes = (uint64_t)r * (uint64_t)(c ? c : 1) * 4;
    t->begin = m->data_size;
    t->end = t->begin + bytes;
    m->data_size = t->end;
}

static void spec_hf(model_spec *m)
{
    memset(m, 0, sizeof *m);
    add(m, "model.embed_tokens.weight", V, H);
    add(m, "model.norm.weight", H, 0);
    add(m, "model.layers.0.input_layernorm.weight", H, 0);
    add(m, "model.layers.0.post_attention_layernorm.weight", H, 0);
    add(m, "model.layers.0.self_attn.q_proj.weight", H, H);
    add(m, "model.layers.0.self_attn.q_proj.bias", H, 0);
    add(m, "model.layers.0.self_attn.k_proj.weight", KV, H);
    add(m, "model.layers.0.self_attn.k_proj.bias", KV, 0);
    add(m, "model.layers.0.self_attn.v_proj.weight", KV, H);
    add(m, "model.layers.0.self_attn.v_proj.bias", KV, 0);
    add(m, "model.layers.0.self_attn.o_proj.weight", H, H);
    add(m, "model.layers.0.mlp.gate_proj.weight", I, H);
    add(m, "model.layers.0.mlp.up_proj.weight", I, H);
    add(m, "model.layers.0.mlp.down_proj.weight", H, I);
}

static tent *find(model_spec *m, const char *name)
{
    for (int i = 0; i < m->n; i++) {
        if (strstr(m->t[i].name, name)) {
            return &m->t[i];
        }
    }
    return NULL;
}

static void drop(model_spec *m, const char *name)
{
    tent *t = find(m, name);
    assert_non_null(t);
    *t = m->t[--m->n];
}

static char g_dir[256];

static void write_file(const char *name, const void *data, size_t n)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void write_text(const char *name, const char *s)
{
    write_file(name, s, strlen(s));
}

static const char *CONFIG =
    "{\"architectures\": [\"Qwen2ForCausalLM\"], \"model_type\": \"qwen2\", \"hidden_size\": 32,"
    " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 1,"
    " \"intermediate_size\": 64, \"vocab_size\": 40, \"max_position_embeddings\": 64,"
    " \"rope_theta\": 10000.0, \"rms_norm_eps\": 1e-6, \"tie_word_embeddings\": true,"
    " \"eos_token_id\": 39, \"bos_token_id\": 0}";

/* Serialises m as safetensors bytes (header padded to 8 like the reference writer). */
static uint8_t *st_bytes(const model_spec *m, size_t *len)
{
    char *hdr = malloc(65536);
    size_t o = (size_t)snprintf(hdr, 65536, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < m->n; i++) {
        const tent *t = &m->t[i];
        o += (size_t)snprintf(hdr + o, 65536 - o, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name,
                              t->dtype);
        for (int d = 0; d < t->nd; d++) {
            o += (size_t)snprintf(hdr + o, 65536 - o, "%s%lld", d ? "," : "",
                                  (long long)t->shape[d]);
        }
        o += (size_t)snprintf(hdr + o, 65536 - o, "],\"data_offsets\":[%llu,%llu]}",
                              (unsigned long long)t->begin, (unsigned long long)t->end);
    }
    o += (size_t)snprintf(hdr + o, 65536 - o, "}");
    while (o % 8) {
        hdr[o++] = ' ';
    }
    *len = 8 + o + m->data_size;
    uint8_t *b = calloc(1, *len);
    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)((uint64_t)o >> (8 * i));
    }
    memcpy(b + 8, hdr, o);
    float *d = (float *)(b + 8 + o);
    for (uint64_t i = 0; i < m->data_size / 4; i++) {
        float v = 0.1f * (float)((int)(i * 7919 % 201) - 100) / 100.0f;
        memcpy(&d[i], &v, 4);
    }
    free(hdr);
    return b;
}

static void write_st(const char *name, const model_spec *m)
{
    size_t n;
    uint8_t *b = st_bytes(m, &n);
    write_file(name, b, n);
    free(b);
}

static sm_code load(sm_model **out, sm_err *err)
{
    sm_model_opts o;
    sm_model_opts_init(&o);
    o.threads = 1;
    return sm_model_load(g_dir, &o, out, err);
}

/* Loads g_dir expecting code; when it loads, runs two tokens through it. */
static void expect(sm_code code, const char *msg_part)
{
    sm_model *m = NULL;
    sm_err err = {0};
    sm_code rc = load(&m, &err);
    if (rc != code || (msg_part && !strstr(err.msg, msg_part))) {
        fprintf(stderr, "expected %s (%s), got %s: %s\n", sm_code_name(code),
                msg_part ? msg_part : "", sm_code_name(rc), err.msg);
    }
    assert_int_equal(rc, code);
    if (msg_part) {
        assert_non_null(strstr(err.msg, msg_part));
    }
    if (rc == SM_OK) {
        sm_seq *s = NULL;
        assert_int_equal(sm_seq_new(m, 0, &s, &err), SM_OK);
        int32_t ids[2] = {1, 2};
        const int32_t *tp = ids;
        int64_t n = 2;
        float lg[V];
        assert_int_equal(sm_model_forward(m, &s, &tp, &n, 1, lg, &err), SM_OK);
        for (int i = 0; i < V; i++) {
            assert_true(lg[i] == lg[i]);
        }
        sm_seq_free(&s);
        sm_model_free(&m);
    }
    assert_null(m);
}

static void clean_dir(void)
{
    const char *names[] = {"config.json",       "generation_config.json",
                           "model.safetensors", "model.safetensors.index.json",
                           "a.safetensors",     "b.safetensors",
                           "model.gguf"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", g_dir, names[i]);
        unlink(p);
    }
}

static int setup(void **state)
{
    (void)state;
    clean_dir();
    write_text("config.json", CONFIG);
    return 0;
}

static void test_valid(void **state)
{
    (void)state;
    model_spec m;
    spec_hf(&m);
    write_st("model.safetensors", &m);
    expect(SM_OK, NULL);
    write_text("generation_config.json",
               "{\"eos_token_id\": [38, 39], \"do_sample\": true, \"temperature\": 0.6}");
    sm_model *mod = NULL;
    sm_err err = {0};
    assert_int_equal(load(&mod, &err), SM_OK);
    const sm_model_summary *s = sm_model_info(mod);
    assert_int_equal(s->config.n_eos, 2);
    assert_int_equal(s->config.eos_ids[1], 39);
    assert_true(s->config.has_sampling && s->config.do_sample);
    assert_int_equal(s->n_params,
                     V * H + H + 2 * H + H * H + H + 2 * (KV * H + KV) + H * H + 3 * I * H);
    /* context limit: an error, not a crash */
    sm_seq *q = NULL;
    assert_int_equal(sm_seq_new(mod, 65, &q, &err), SM_ELIMIT);
    assert_int_equal(sm_seq_new(mod, 3, &q, &err), SM_OK);
    int32_t ids[4] = {1, 2, 3, 4};
    const int32_t *tp = ids;
    int64_t n = 4;
    assert_int_equal(sm_model_forward(mod, &q, &tp, &n, 1, NULL, &err), SM_ELIMIT);
    assert_int_equal(sm_seq_pos(q), 0);
    ids[0] = V;
    n = 1;
    assert_int_equal(sm_model_forward(mod, &q, &tp, &n, 1, NULL, &err), SM_EINVAL);
    sm_seq_free(&q);
    sm_model_free(&mod);
    write_text("generation_config.json", "{\"temperature\": \"hot\"}");
    expect(SM_EFORMAT, "temperature");
}

static void test_st_truncated(void **state)
{
    (void)state;
    model_spec m;
    spec_hf(&m);
    size_t n;
    uint8_t *b = st_bytes(&m, &n);
    write_file("model.safetensors", b, n - 100);
    expect(SM_EFORMAT, "past the end");
    write_file("model.safetensors", b, 5);
    expect(SM_EFORMAT, "truncated");
    write_file("model.safetensors", b, 0);
    expect(SM_EFORMAT, NULL);
    /* every cut inside the header fails cleanly */
    size_t hl = 8 + (size_t)b[0] + ((size_t)b[1] << 8);
    for (size_t cut = 0; cut < hl + 8; cut += 7) {
        write_file("model.safetensors", b, cut);
        expect(SM_EFORMAT, NULL);
    }
    free(b);
}

static void test_st_corrupt_header(void **state)
{
    (void)state;
    model_spec m;
    spec_hf(&m);
    size_t n;
    uint8_t *b = st_bytes(&m, &n);
    uint8_t save[8];
    memcpy(save, b, 8);
    memset(b, 0xff, 8); /* header length far past the end */
    write_file("model.safetensors", b, n);
    expect(SM_EFORMAT, "header length");
    memcpy(b, save, 8);
    b[8] = '[';
    write_file("model.safetensors", b, n);
    expect(SM_EFORMAT, "JSON");
    b[8] = '{';
    b[20] = 0x01;
    write_file("model.safetensors", b, n);
    expect(SM_EFORMAT, NULL);
    free(b);
}

static void test_st_shapes_offsets(void **state)
{
    (void)state;
    model_spec m;
    spec_hf(&m);
    find(&m, "q_proj.weight")->shape[0] = 16; /* bytes no longer match the shape */
    write_st("model.safetensors", &m);
    expect(SM_EFORMAT, "do not match");

    spec_hf(&m);
    tent *q = find(&m, "q_proj.weight");
    q->shape[0] = 16;
    q->shape[1] = 64; /* same byte count, wrong shape for the config */
    write_st("model.safetensors", &m);
    expect(SM_EFORMAT, "shape");

    spec_hf(&m);
    tent *t = find(&m, "down_proj");
    t->begin += 1u << 20;
    t->end += 1u << 20;
    write_st("model.safetensors", &m);
    expect(SM_EFORMAT, "past the end");

    spec_hf(&m);
    t = find(&m, "k_proj.bias");
    tent *u = find(&m, "v_proj.bias");
    u->begin = t->begin; /* overlap */
    u->end = t->end;
    write_st("model.safetensors", &m);
    expect(SM_EFORMAT, "overlap");

    spec_hf(&m);
    find(&m, "o_proj")->end = find(&m, "o_proj")->begin - 4;
    write_st("model.safetensors", &m);
    expect(SM_EFORMAT, "data_offsets");

    spec_hf(&m);
    drop(&m, "up_proj");
    write_st("model.safetensors", &m);
    expect(SM_EFORMAT, "missing tensor model.layers.0.mlp.up_proj.weight");

    spec_hf(&m);
    snprintf(find(&m, "gate_proj")->dtype, 16, "F33");
    write_st("model.safetensors", &m);
    expect(SM_EFORMAT, "unknown dtype");

    spec_hf(&m);
    snprintf(find(&m, "gate_proj")->dtype, 16, "I32");
    write_st("model.safetensors", &m);
    expect(SM_EUNSUPPORTED, "unsupported type");

    spec_hf(&m);
    find(&m, "model.norm")->nd = 2;
    find(&m, "model.norm")->shape[1] = 1;
    write_st("model.safetensors", &m);
    expect(SM_EFORMAT, "shape");
}

static void test_config_errors(void **state)
{
    (void)state;
    model_spec m;
    spec_hf(&m);
    write_st("model.safetensors", &m);
    static const struct {
        const char *from, *to;
        sm_code code;
        const char *msg;
    } cases[] = {
        {"\"hidden_size\": 32,", "", SM_EFORMAT, "missing \"hidden_size\""},
        {"\"hidden_size\": 32", "\"hidden_size\": \"32\"", SM_EFORMAT, "integer"},
        {"\"hidden_size\": 32", "\"hidden_size\": -32", SM_EFORMAT, "out of range"},
        {"\"num_key_value_heads\": 1", "\"num_key_value_heads\": 3", SM_EFORMAT, "multiple"},
        {"\"num_attention_heads\": 2", "\"num_attention_heads\": 3", SM_EFORMAT, "multiple"},
        {"\"vocab_size\": 40", "\"vocab_size\": 41", SM_EFORMAT, "shape"},
        {"\"intermediate_size\": 64", "\"intermediate_size\": 65", SM_EFORMAT, "shape"},
        {"\"num_hidden_layers\": 1", "\"num_hidden_layers\": 2", SM_EFORMAT, "missing tensor"},
        {"\"model_type\": \"qwen2\"", "\"model_type\": \"llama\"", SM_EFORMAT, NULL},
        {"\"eos_token_id\": 39", "\"eos_token_id\": 40", SM_EFORMAT, "eos_token_id"},
        {"\"rope_theta\": 10000.0",
         "\"rope_theta\": 10000.0, \"rope_scaling\": {\"type\": \"yarn\"}", SM_EUNSUPPORTED,
         "rope_scaling"},
        {"\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false", SM_EFORMAT,
         "missing tensor lm_head.weight"},
        {"}", "", SM_EFORMAT, NULL},
        {"{", "[", SM_EFORMAT, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[2048];
        const char *p = strstr(CONFIG, cases[i].from);
        assert_non_null(p);
        snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - CONFIG), CONFIG, cases[i].to,
                 p + strlen(cases[i].from));
        if (strcmp(cases[i].from, "\"model_type\": \"qwen2\"") == 0) {
            /* also drop the architectures entry */
            char *a = strstr(buf, "Qwen2ForCausalLM");
            memcpy(a, "LlamaForCausalLM", 16);
        }
        write_text("config.json", buf);
        expect(cases[i].code == SM_EFORMAT && cases[i].msg == NULL && strstr(cases[i].to, "llama")
                   ? SM_EUNSUPPORTED
                   : cases[i].code,
               cases[i].msg);
    }
    clean_dir();
    expect(SM_ENOTFOUND, NULL);
}

static void test_sharded(void **state)
{
    (void)state;
    model_spec all, a, b;
    spec_hf(&all);
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    char idx[8192];
    size_t o = (size_t)snprintf(idx, sizeof idx, "{\"metadata\": {}, \"weight_map\": {");
    for (int i = 0; i < all.n; i++) {
        model_spec *s = i % 2 ? &a : &b;
        add(s, all.t[i].name, all.t[i].shape[0], all.t[i].nd == 2 ? all.t[i].shape[1] : 0);
        o += (size_t)snprintf(idx + o, sizeof idx - o, "%s\"%s\": \"%s\"", i ? ", " : "",
                              all.t[i].name, i % 2 ? "a.safetensors" : "b.safetensors");
    }
    snprintf(idx + o, sizeof idx - o, "}}");
    write_st("a.safetensors", &a);
    write_st("b.safetensors", &b);
    write_text("model.safetensors.index.json", idx);
    expect(SM_OK, NULL);
    /* a shard that does not hold what the index says */
    drop(&a, "gate_proj");
    write_st("a.safetensors", &a);
    expect(SM_EFORMAT, "is not in a.safetensors");
    /* a missing shard */
    char p[512];
    snprintf(p, sizeof p, "%s/b.safetensors", g_dir);
    unlink(p);
    expect(SM_ENOTFOUND, NULL);
    write_text("model.safetensors.index.json",
               "{\"weight_map\": {\"model.norm.weight\": \"../x.safetensors\"}}");
    expect(SM_EFORMAT, "bad file name");
    write_text("model.safetensors.index.json", "{\"weight_map\": 3}");
    expect(SM_EFORMAT, "weight_map");
}

/* ---- GGUF ---- */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 1024;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put32(buf *b, uint32_t v)
{
    put(b, &v, 4);
}
static void put64(buf *b, uint64_t v)
{
    put(b, &v, 8);
}
static void putstr(buf *b, const char *s)
{
    put64(b, strlen(s));
    put(b, s, strlen(s));
}
static void kv_u32(buf *b, const char *k, uint32_t v)
{
    putstr(b, k);
    put32(b, 4);
    put32(b, v);
}
static void kv_f32(buf *b, const char *k, float v)
{
    putstr(b, k);
    put32(b, 6);
    put(b, &v, 4);
}
static void kv_str(buf *b, const char *k, const char *v)
{
    putstr(b, k);
    put32(b, 8);
    putstr(b, v);
}

typedef struct gguf_opts {
    const char *arch;
    bool skip_blocks; /* leave out qwen2.block_count */
    uint32_t version;
    int64_t offset_shift; /* added to the last tensor's offset */
    uint32_t bad_type;    /* ggml type of the first tensor if nonzero */
    bool dup;             /* name the second tensor like the first */
    int64_t wrong_rows;   /* rows of attn_q if nonzero */
} gguf_opts;

static const char *gg_name(const char *hf, char *out, size_t cap)
{
    static const char *map[][2] = {{"model.embed_tokens.weight", "token_embd.weight"},
                                   {"model.norm.weight", "output_norm.weight"},
                                   {"input_layernorm.weight", "attn_norm.weight"},
                                   {"post_attention_layernorm.weight", "ffn_norm.weight"},
                                   {"self_attn.q_proj.weight", "attn_q.weight"},
                                   {"self_attn.q_proj.bias", "attn_q.bias"},
                                   {"self_attn.k_proj.weight", "attn_k.weight"},
                                   {"self_attn.k_proj.bias", "attn_k.bias"},
                                   {"self_attn.v_proj.weight", "attn_v.weight"},
                                   {"self_attn.v_proj.bias", "attn_v.bias"},
                                   {"self_attn.o_proj.weight", "attn_output.weight"},
                                   {"mlp.gate_proj.weight", "ffn_gate.weight"},
                                   {"mlp.up_proj.weight", "ffn_up.weight"},
                                   {"mlp.down_proj.weight", "ffn_down.weight"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(hf, map[i][0]) == 0) {
            snprintf(out, cap, "%s", map[i][1]);
            return out;
        }
        const char *p = strstr(hf, map[i][0]);
        if (p && strncmp(hf, "model.layers.0.", 15) == 0) {
            snprintf(out, cap, "blk.0.%s", map[i][1]);
            return out;
        }
    }
    return NULL;
}

static uint8_t *gguf_bytes(const gguf_opts *go, size_t *len)
{
    model_spec m;
    spec_hf(&m);
    buf b = {0};
    put32(&b, 0x46554747u);
    put32(&b, go->version ? go->version : 3);
    put64(&b, (uint64_t)m.n);
    put64(&b, go->skip_blocks ? 8 : 9);
    kv_str(&b, "general.architecture", go->arch ? go->arch : "qwen2");
    kv_u32(&b, "qwen2.context_length", 64);
    kv_u32(&b, "qwen2.embedding_length", H);
    if (!go->skip_blocks) {
        kv_u32(&b, "qwen2.block_count", 1);
    }
    kv_u32(&b, "qwen2.feed_forward_length", I);
    kv_u32(&b, "qwen2.attention.head_count", 2);
    kv_u32(&b, "qwen2.attention.head_count_kv", 1);
    kv_f32(&b, "qwen2.attention.layer_norm_rms_epsilon", 1e-6f);
    kv_u32(&b, "tokenizer.ggml.eos_token_id", 39);
    uint64_t off = 0;
    for (int i = 0; i < m.n; i++) {
        char gn[96];
        const char *name = gg_name(m.t[i].name, gn, sizeof gn);
        assert_non_null(name);
        if (go->dup && i == 1) {
            gg_name(m.t[0].name, gn, sizeof gn);
        }
        putstr(&b, gn);
        put32(&b, (uint32_t)m.t[i].nd);
        int64_t rows = m.t[i].shape[0];
        if (go->wrong_rows && strstr(gn, "attn_q.weight")) {
            rows = go->wrong_rows;
        }
        if (m.t[i].nd == 2) {
            put64(&b, (uint64_t)m.t[i].shape[1]);
        }
        put64(&b, (uint64_t)rows);
        put32(&b, i == 0 && go->bad_type ? go->bad_type : 0);
        put64(&b, off + (i == m.n - 1 ? (uint64_t)go->offset_shift : 0));
        off += (m.t[i].end - m.t[i].begin + 31) / 32 * 32;
    }
    while (b.n % 32) {
        uint8_t z = 0;
        put(&b, &z, 1);
    }
    size_t data = b.n;
    for (uint64_t i = 0; i < off; i++) {
        uint8_t z = (uint8_t)(i * 13);
        put(&b, &z, 1);
    }
    /* make the data valid f32 values */
    for (size_t i = data; i + 4 <= b.n; i += 4) {
        float v = 0.01f * (float)(int)((i / 4) % 17);
        memcpy(b.p + i, &v, 4);
    }
    *len = b.n;
    return b.p;
}

static void write_gguf(const gguf_opts *go)
{
    size_t n;
    uint8_t *b = gguf_bytes(go, &n);
    write_file("model.gguf", b, n);
    free(b);
}

static int setup_gguf(void **state)
{
    (void)state;
    clean_dir();
    return 0;
}

static void test_gguf_valid_and_metadata(void **state)
{
    (void)state;
    gguf_opts go = {0};
    write_gguf(&go);
    expect(SM_OK, NULL);
    char p[512];
    snprintf(p, sizeof p, "%s/model.gguf", g_dir);
    sm_gguf *g = NULL;
    sm_err err = {0};
    assert_int_equal(sm_gguf_open(p, &g, &err), SM_OK);
    int64_t v;
    double f;
    char *s;
    assert_int_equal(sm_gguf_get_int(g, "qwen2.block_count", &v, &err), SM_OK);
    assert_int_equal(v, 1);
    assert_int_equal(sm_gguf_get_float(g, "qwen2.attention.layer_norm_rms_epsilon", &f, &err),
                     SM_OK);
    assert_true(f > 0.9e-6 && f < 1.1e-6);
    assert_int_equal(sm_gguf_get_str(g, "general.architecture", &s, &err), SM_OK);
    assert_string_equal(s, "qwen2");
    free(s);
    assert_int_equal(sm_gguf_get_int(g, "general.architecture", &v, &err), SM_EFORMAT);
    assert_int_equal(sm_gguf_get_int(g, "nope", &v, &err), SM_ENOTFOUND);
    const sm_tensor *t = sm_gguf_find(g, "blk.0.ffn_down.weight");
    assert_non_null(t);
    assert_int_equal(t->shape[0], H);
    assert_int_equal(t->shape[1], I);
    sm_gguf_close(&g);
    assert_null(g);
}

static void test_gguf_broken(void **state)
{
    (void)state;
    gguf_opts go = {0};
    go.arch = "llama";
    write_gguf(&go);
    expect(SM_EUNSUPPORTED, "not qwen2");
    go = (gguf_opts){.skip_blocks = true};
    write_gguf(&go);
    expect(SM_EFORMAT, "qwen2.block_count");
    go = (gguf_opts){.version = 4};
    write_gguf(&go);
    expect(SM_EUNSUPPORTED, "version");
    go = (gguf_opts){.offset_shift = 16};
    write_gguf(&go);
    expect(SM_EFORMAT, "not aligned");
    go = (gguf_opts){.offset_shift = 1 << 20};
    write_gguf(&go);
    expect(SM_EFORMAT, "past the end");
    go = (gguf_opts){.offset_shift = -32};
    write_gguf(&go);
    expect(SM_EFORMAT, "overlap");
    go = (gguf_opts){.bad_type = 99};
    write_gguf(&go);
    expect(SM_EFORMAT, "unknown ggml type");
    go = (gguf_opts){.bad_type = 14}; /* Q6_K: known, not computed with */
    write_gguf(&go);
    expect(SM_EFORMAT, NULL);
    go = (gguf_opts){.dup = true};
    write_gguf(&go);
    expect(SM_EFORMAT, "duplicate");
    go = (gguf_opts){.wrong_rows = 16};
    write_gguf(&go);
    expect(SM_EFORMAT, NULL);

    size_t n;
    go = (gguf_opts){0};
    uint8_t *b = gguf_bytes(&go, &n);
    b[0] = 'X';
    write_file("model.gguf", b, n);
    expect(SM_EFORMAT, "magic");
    b[0] = 'G';
    uint64_t huge = 1ull << 40;
    uint8_t save[8];
    memcpy(save, b + 8, 8);
    memcpy(b + 8, &huge, 8); /* tensor count */
    write_file("model.gguf", b, n);
    expect(SM_EFORMAT, "do not fit");
    memcpy(b + 8, save, 8);
    memcpy(b + 24, &huge, 8); /* length of the first key */
    write_file("model.gguf", b, n);
    expect(SM_EFORMAT, "string length");
    free(b);
}

static void test_gguf_truncations(void **state)
{
    (void)state;
    gguf_opts go = {0};
    size_t n;
    uint8_t *b = gguf_bytes(&go, &n);
    for (size_t cut = 0; cut < n; cut += cut < 1200 ? 3 : 97) {
        write_file("model.gguf", b, cut);
        expect(SM_EFORMAT, NULL);
    }
    free(b);
}

/* Seeded random corruption of header bytes: each load either fails with an error code or
 * succeeds; AddressSanitizer catches any out-of-bounds access. */
static void test_random_corruption(void **state)
{
    (void)state;
    uint64_t x = 42;
    gguf_opts go = {0};
    size_t gn, sn;
    uint8_t *g = gguf_bytes(&go, &gn);
    model_spec m;
    spec_hf(&m);
    uint8_t *s = st_bytes(&m, &sn);
    size_t shl = 8 + (size_t)s[0] + ((size_t)s[1] << 8);
    for (int iter = 0; iter < 300; iter++) {
        bool is_g = iter % 2 == 0;
        uint8_t *src = is_g ? g : s;
        size_t len = is_g ? gn : sn, hdr = is_g ? 1100 : shl;
        uint8_t *c = malloc(len);
        memcpy(c, src, len);
        for (int k = 0; k < 1 + iter % 4; k++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            c[(x >> 33) % hdr] ^= (uint8_t)(1u << ((x >> 20) % 8));
        }
        clean_dir();
        if (!is_g) {
            write_text("config.json", CONFIG);
        }
        write_file(is_g ? "model.gguf" : "model.safetensors", c, len);
        sm_model *mod = NULL;
        sm_err err = {0};
        sm_code rc = load(&mod, &err);
        assert_true(rc == SM_OK || err.msg[0] != '\0');
        if (rc == SM_OK) {
            sm_model_free(&mod);
        }
        free(c);
    }
    free(g);
    free(s);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/sm_model_files_XXXXXX");
    if (mkdtemp(g_dir) == NULL) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_valid, setup),
        cmocka_unit_test_setup(test_st_truncated, setup),
        cmocka_unit_test_setup(test_st_corrupt_header, setup),
        cmocka_unit_test_setup(test_st_shapes_offsets, setup),
        cmocka_unit_test_setup(test_config_errors, setup),
        cmocka_unit_test_setup(test_sharded, setup),
        cmocka_unit_test_setup(test_gguf_valid_and_metadata, setup_gguf),
        cmocka_unit_test_setup(test_gguf_broken, setup_gguf),
        cmocka_unit_test_setup(test_gguf_truncations, setup_gguf),
        cmocka_unit_test(test_random_corruption),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    clean_dir();
    rmdir(g_dir);
    return rc;
}
