/* sm_tok_internal: the private layout of sm_tokenizer shared by the tokenizer modules
 * (sm_tokenizer.c load/lookup, sm_tok_json.c tokenizer.json reader, sm_tok_cache.c binary cache,
 * sm_tok_map.c hash maps, sm_bpe.c BPE merges and word cache, sm_tok_encode.c encoding,
 * sm_tok_decode.c decoding). Nothing here is part of the engine's public API. */
#ifndef SM_TOK_INTERNAL_H
#define SM_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>

#include "sm_tokenizer.h"

/* The largest token id + 1 accepted (real vocabularies stay below 300k). */
#define SM_TOK_MAX_IDS (1u << 22)

/* ---- hashing and open-addressing maps (sm_tok_map.c) ---- */
uint64_t sm_tok_hash(const void *data, size_t n);

/* string -> id; strings live in the tokenizer's text arena (looked up through tok). */
typedef struct sm_tok_strmap {
    uint64_t *slots; /* upper 32 bits of the hash << 32 | (id + 1); 0 = empty */
    size_t mask;
} sm_tok_strmap;

/* (left id, right id) -> (rank, merged id) */
typedef struct sm_tok_pairslot {
    uint64_t key; /* left << 32 | right; UINT64_MAX = empty */
    uint32_t rank;
    int32_t id;
} sm_tok_pairslot;
typedef struct sm_tok_pairmap {
    sm_tok_pairslot *slots;
    size_t mask;
} sm_tok_pairmap;

/* ---- added tokens ---- */
typedef struct sm_tok_added {
    int32_t id;
    char *content; /* as matched: NFC-normalized when normalized is set */
    size_t len;
    bool special, lstrip, rstrip, single_word, normalized;
} sm_tok_added;

/* A set of added tokens matched leftmost-longest, like Aho-Corasick in HF. */
typedef struct sm_tok_matcher {
    size_t n;
    const sm_tok_added **tok; /* sorted by first byte, then length descending */
    uint32_t first[257];      /* tok[first[b] .. first[b+1]) start with byte b */
} sm_tok_matcher;

/* ---- BPE word cache (sm_bpe.c) ---- */
typedef struct sm_bpe_cache sm_bpe_cache;

enum { SM_TOK_NORM_NONE = 0, SM_TOK_NORM_NFC = 1 };

struct sm_tokenizer {
    /* vocabulary: every id in [0, n_ids) may have a text (vocab key or added content) */
    size_t n_ids;
    uint32_t *text_off; /* UINT32_MAX = no token with this id */
    uint32_t *text_len;
    char *text; /* arena, each string NUL-terminated */
    size_t text_size;
    uint32_t *bytes_off; /* decoded bytes of each id (ByteLevel decoder) */
    uint32_t *bytes_len;
    uint8_t *bytes;
    uint8_t *is_special;  /* per id */
    sm_tok_strmap vocab;  /* model vocabulary only: byte-level text -> id */
    sm_tok_strmap all;    /* added tokens first, then the model vocabulary */
    int32_t byte_id[256]; /* id of the single-byte token for each byte, -1 if none */
    sm_tok_pairmap merges;
    size_t n_merges;
    uint32_t *merge_triples; /* n_merges * 3: left, right, merged (kept for the cache) */
    bool ignore_merges;

    sm_tok_added *added;
    size_t n_added;
    sm_tok_matcher raw_matcher;  /* added tokens with normalized=false */
    sm_tok_matcher norm_matcher; /* added tokens with normalized=true */

    int normalizer;
    char *regex; /* Split pattern from tokenizer.json (NULL: no split) */
    pcre2_code *re;
    bool re_jit;    /* re was JIT-compiled: match with pcre2_jit_match */
    int32_t eos_id; /* tokenizer_config.json eos_token, -1 if none */

    sm_bpe_cache *cache;
    pthread_mutex_t cache_lock;
};

/* Everything parsed out of tokenizer.json before the lookup structures are built. */
typedef struct sm_tok_spec {
    size_t n_ids;
    char **text; /* per id, NULL = none; owned */
    uint8_t *is_added;
    size_t n_merges;
    uint32_t *merge_triples;
    bool ignore_merges;
    sm_tok_added *added;
    size_t n_added;
    int normalizer;
    char *regex;
} sm_tok_spec;

void sm_tok_spec_clear(sm_tok_spec *spec);

/* sm_tok_json.c: parse tokenizer.json bytes into spec. */
sm_code sm_tok_json_parse(const char *json, size_t len, sm_tok_spec *spec, sm_err *err);

/* sm_tok_cache.c: binary form of a spec, keyed by the hash and size of tokenizer.json. */
sm_code sm_tok_cache_read(const char *path, uint64_t json_hash, uint64_t json_size,
                          sm_tok_spec *spec, sm_err *err);
sm_code sm_tok_cache_write(const char *path, uint64_t json_hash, uint64_t json_size,
                           const sm_tok_spec *spec, sm_err *err);

/* sm_tok_map.c */
sm_code sm_tok_strmap_init(sm_tok_strmap *m, size_t capacity, sm_err *err);
void sm_tok_strmap_free(sm_tok_strmap *m);
/* Inserts id under its text (tok->text); keeps an existing entry. */
void sm_tok_strmap_put(sm_tok_strmap *m, const struct sm_tokenizer *tok, int32_t id);
/* Inserts ids[0..n) in order (prefetching ahead, for loading large vocabularies). */
void sm_tok_strmap_put_all(sm_tok_strmap *m, const struct sm_tokenizer *tok, const int32_t *ids,
                           size_t n);
int32_t sm_tok_strmap_get(const sm_tok_strmap *m, const struct sm_tokenizer *tok, const char *s,
                          size_t n);
sm_code sm_tok_pairmap_init(sm_tok_pairmap *m, size_t capacity, sm_err *err);
void sm_tok_pairmap_free(sm_tok_pairmap *m);
void sm_tok_pairmap_put(sm_tok_pairmap *m, int32_t a, int32_t b, uint32_t rank, int32_t id);

static inline const sm_tok_pairslot *sm_tok_pairmap_get(const sm_tok_pairmap *m, int32_t a,
                                                        int32_t b)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & m->mask;
    for (;;) {
        const sm_tok_pairslot *s = &m->slots[i];
        if (s->key == key)
            return s;
        if (s->key == UINT64_MAX)
            return NULL;
        i = (i + 1) & m->mask;
    }
}

/* The code point of byte b in the GPT-2 byte-level alphabet: printable Latin-1 bytes map to
 * themselves, the others (0-32, 127-160, 173) to 256, 257, ... in byte order. */
static inline unsigned sm_tok_byte_char(unsigned b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)
        return b;
    if (b <= 32)
        return 256 + b;
    if (b <= 160)
        return b + 162; /* 127 -> 289 */
    return 323;         /* 173 */
}

/* sm_bpe.c */
sm_code sm_bpe_cache_new(sm_bpe_cache **out, sm_err *err);
void sm_bpe_cache_free(sm_bpe_cache **c);
/* Appends the BPE ids of one pre-token (raw bytes) to *ids (growing it); cache may be NULL. */
sm_code sm_bpe_word(const sm_tokenizer *tok, sm_bpe_cache *cache, const uint8_t *w, size_t n,
                    int32_t **ids, size_t *n_ids, size_t *cap, sm_err *err);

/* sm_tok_encode.c */
bool sm_tok_utf8_valid(const uint8_t *s, size_t n);
void sm_tok_matcher_build(sm_tok_matcher *m, const sm_tok_added **toks, size_t n);

/* sm_tok_decode.c: appends the lossy UTF-8 text of bytes b[0..n) (maximal invalid subparts
 * replaced with U+FFFD, as Rust's from_utf8_lossy) to out; stops before an incomplete but
 * valid-so-far tail when final is false, returning the number of bytes consumed. */
size_t sm_tok_utf8_lossy(const uint8_t *b, size_t n, bool final, char *out, size_t *out_len);

#endif
