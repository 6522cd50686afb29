/* sm_tok_map: the tokenizer's hash function and its two open-addressing hash maps (linear
 * probing, power-of-two tables, never more than half full): token text -> id, whose keys are
 * the strings of the tokenizer's text arena, and BPE merge pair -> (rank, merged id). */
#include <stdlib.h>
#include <string.h>

#include "sm_tok_internal.h"

uint64_t sm_tok_hash(const void *data, size_t n)
{
    const uint8_t *s = data;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    uint64_t v = 0;
    if (n)
        memcpy(&v, s, n);
    h = (h ^ v) * 0x94d049bb133111ebull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

static size_t table_size(size_t capacity)
{
    size_t size = 16;
    while (size < capacity * 2)
        size <<= 1;
    return size;
}

sm_code sm_tok_strmap_init(sm_tok_strmap *m, size_t capacity, sm_err *err)
{
    size_t size = table_size(capacity);
    m->slots = calloc(size, sizeof *m->slots);
    m->mask = size - 1;
    if (!m->slots)
        return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory for the vocabulary map");
    return SM_OK;
}

void sm_tok_strmap_free(sm_tok_strmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->mask = 0;
}

static bool strmap_slot_is(const struct sm_tokenizer *tok, uint64_t slot, uint64_t h64,
                           const char *s, size_t n)
{
    if ((slot >> 32) != (h64 >> 32))
        return false;
    uint32_t id = (uint32_t)slot - 1;
    return tok->text_len[id] == n && memcmp(tok->text + tok->text_off[id], s, n) == 0;
}

static void strmap_put_hashed(sm_tok_strmap *m, const struct sm_tokenizer *tok, int32_t id,
                              uint64_t h64)
{
    const char *s = tok->text + tok->text_off[id];
    size_t n = tok->text_len[id];
    size_t i = (size_t)h64 & m->mask;
    while (m->slots[i]) {
        if (strmap_slot_is(tok, m->slots[i], h64, s, n))
            return;
        i = (i + 1) & m->mask;
    }
    m->slots[i] = (h64 >> 32 << 32) | ((uint64_t)(uint32_t)id + 1);
}

void sm_tok_strmap_put(sm_tok_strmap *m, const struct sm_tokenizer *tok, int32_t id)
{
    strmap_put_hashed(m, tok, id, sm_tok_hash(tok->text + tok->text_off[id], tok->text_len[id]));
}

void sm_tok_strmap_put_all(sm_tok_strmap *m, const struct sm_tokenizer *tok, const int32_t *ids,
                           size_t n)
{
    enum { AHEAD = 16 };
    uint64_t ring[AHEAD];
    for (size_t i = 0; i < n + AHEAD; i++) {
        if (i >= AHEAD)
            strmap_put_hashed(m, tok, ids[i - AHEAD], ring[i % AHEAD]);
        if (i < n) {
            int32_t id = ids[i];
            ring[i % AHEAD] = sm_tok_hash(tok->text + tok->text_off[id], tok->text_len[id]);
            __builtin_prefetch(&m->slots[ring[i % AHEAD] & m->mask], 1);
        }
    }
}

int32_t sm_tok_strmap_get(const sm_tok_strmap *m, const struct sm_tokenizer *tok, const char *s,
                          size_t n)
{
    if (!m->slots)
        return -1;
    uint64_t h64 = sm_tok_hash(s, n);
    size_t i = (size_t)h64 & m->mask;
    while (m->slots[i]) {
        if (strmap_slot_is(tok, m->slots[i], h64, s, n))
            return (int32_t)((uint32_t)m->slots[i] - 1);
        i = (i + 1) & m->mask;
    }
    return -1;
}

sm_code sm_tok_pairmap_init(sm_tok_pairmap *m, size_t capacity, sm_err *err)
{
    size_t size = table_size(capacity);
    m->slots = malloc(size * sizeof *m->slots);
    if (!m->slots)
        return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory for merges");
    memset(m->slots, 0xff, size * sizeof *m->slots);
    m->mask = size - 1;
    return SM_OK;
}

void sm_tok_pairmap_free(sm_tok_pairmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->mask = 0;
}

/* A pair listed twice keeps its last entry, as HF's HashMap collect does. */
void sm_tok_pairmap_put(sm_tok_pairmap *m, int32_t a, int32_t b, uint32_t rank, int32_t id)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & m->mask;
    while (m->slots[i].key != UINT64_MAX) {
        if (m->slots[i].key == key)
            break;
        i = (i + 1) & m->mask;
    }
    m->slots[i].key = key;
    m->slots[i].rank = rank;
    m->slots[i].id = id;
}
