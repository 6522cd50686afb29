/* sm_bpe: byte-level BPE on one pre-token, exactly as Hugging Face's Word::merge_all does it:
 * one symbol per byte, a min-heap of candidate merges ordered by (rank, position), stale heap
 * entries skipped when the pair at their position no longer yields the same merged id. Also
 * the bounded word cache (direct-mapped, 16384 slots of short words) that spares repeated
 * words the merge loop, like HF's BPE cache. */
#include <stdlib.h>
#include <string.h>

#include "sm_tok_internal.h"

#define CACHE_SLOTS 16384
#define CACHE_KEY_MAX 38
#define CACHE_IDS_MAX 20
/* A single pre-token (e.g. letters without a space) is refused beyond this: its merge state
 * takes 64 bytes per byte. */
#define SM_BPE_MAX_WORD (16 << 20)

typedef struct cache_slot {
    uint64_t hash;
    uint8_t klen; /* 0 = empty */
    uint8_t nids;
    char key[CACHE_KEY_MAX];
    int32_t ids[CACHE_IDS_MAX];
} cache_slot;

struct sm_bpe_cache {
    cache_slot slots[CACHE_SLOTS];
};

sm_code sm_bpe_cache_new(sm_bpe_cache **out, sm_err *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory for the word cache");
    return SM_OK;
}

void sm_bpe_cache_free(sm_bpe_cache **c)
{
    if (!c || !*c)
        return;
    free(*c);
    *c = NULL;
}

typedef struct symbol {
    int32_t id;
    int32_t prev, next;
    int32_t len; /* 0 = merged into its left neighbour */
} symbol;

typedef struct heap_item {
    uint64_t key; /* rank << 32 | position: the smallest pops first */
    int32_t new_id;
} heap_item;

static void heap_push(heap_item *h, size_t *n, heap_item it)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p].key <= it.key)
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = it;
}

static heap_item heap_pop(heap_item *h, size_t *n)
{
    heap_item top = h[0];
    heap_item last = h[--(*n)];
    size_t i = 0, len = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= len)
            break;
        if (c + 1 < len && h[c + 1].key < h[c].key)
            c++;
        if (last.key <= h[c].key)
            break;
        h[i] = h[c];
        i = c;
    }
    if (len)
        h[i] = last;
    return top;
}

static sm_code append_ids(int32_t **ids, size_t *n_ids, size_t *cap, const int32_t *src, size_t n,
                          sm_err *err)
{
    if (*n_ids + n > *cap) {
        size_t c = *cap ? *cap : 64;
        while (c < *n_ids + n)
            c *= 2;
        int32_t *p = realloc(*ids, c * sizeof *p);
        if (!p)
            return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory for ids");
        *ids = p;
        *cap = c;
    }
    memcpy(*ids + *n_ids, src, n * sizeof *src);
    *n_ids += n;
    return SM_OK;
}

static void try_push(const sm_tokenizer *tok, heap_item *heap, size_t *nh, const symbol *sym,
                     int32_t pos, int32_t right)
{
    const sm_tok_pairslot *m = sm_tok_pairmap_get(&tok->merges, sym[pos].id, sym[right].id);
    if (m)
        heap_push(heap, nh, (heap_item){(uint64_t)m->rank << 32 | (uint32_t)pos, m->id});
}

/* Runs the merges over n symbols; the first symbol always stays the first. */
static void merge_all(const sm_tokenizer *tok, symbol *sym, int32_t n, heap_item *heap)
{
    size_t nh = 0;
    for (int32_t i = 0; i + 1 < n; i++)
        try_push(tok, heap, &nh, sym, i, i + 1);
    while (nh) {
        heap_item top = heap_pop(heap, &nh);
        int32_t pos = (int32_t)(uint32_t)top.key;
        if (sym[pos].len == 0 || sym[pos].next < 0)
            continue;
        int32_t next = sym[pos].next;
        const sm_tok_pairslot *m = sm_tok_pairmap_get(&tok->merges, sym[pos].id, sym[next].id);
        if (!m || m->id != top.new_id)
            continue;
        sym[pos].id = top.new_id;
        sym[pos].len += sym[next].len;
        sym[pos].next = sym[next].next;
        sym[next].len = 0;
        if (sym[pos].next >= 0)
            sym[sym[pos].next].prev = pos;
        if (sym[pos].prev >= 0)
            try_push(tok, heap, &nh, sym, sym[pos].prev, pos);
        if (sym[pos].next >= 0)
            try_push(tok, heap, &nh, sym, pos, sym[pos].next);
    }
}

/* The byte-level text of raw bytes (each byte one code point of the GPT-2 byte alphabet). */
static size_t bytelevel_text(const uint8_t *w, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned cp = sm_tok_byte_char(w[i]);
        if (cp < 0x80) {
            out[k++] = (char)cp;
        } else {
            out[k++] = (char)(0xC0 | (cp >> 6));
            out[k++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    return k;
}

sm_code sm_bpe_word(const sm_tokenizer *tok, sm_bpe_cache *cache, const uint8_t *w, size_t n,
                    int32_t **ids, size_t *n_ids, size_t *cap, sm_err *err)
{
    if (n == 0)
        return SM_OK;
    cache_slot *slot = NULL;
    uint64_t h = 0;
    if (cache && n <= CACHE_KEY_MAX) {
        h = sm_tok_hash(w, n);
        slot = &cache->slots[h & (CACHE_SLOTS - 1)];
        if (slot->klen == n && slot->hash == h && memcmp(slot->key, w, n) == 0)
            return append_ids(ids, n_ids, cap, slot->ids, slot->nids, err);
    }
    if (tok->ignore_merges) {
        char small[512];
        char *text = 2 * n <= sizeof small ? small : malloc(2 * n);
        if (!text)
            return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory");
        size_t tl = bytelevel_text(w, n, text);
        int32_t id = sm_tok_strmap_get(&tok->vocab, tok, text, tl);
        if (text != small)
            free(text);
        if (id >= 0)
            return append_ids(ids, n_ids, cap, &id, 1, err);
    }

    symbol small_sym[64];
    heap_item small_heap[3 * 64];
    symbol *sym = small_sym;
    heap_item *heap = small_heap;
    if (n > 64) {
        if (n > SM_BPE_MAX_WORD)
            return sm_err_set(err, SM_ELIMIT,
                              "tokenizer: one pre-token of %zu bytes (more than %d MiB without a "
                              "break)",
                              n, SM_BPE_MAX_WORD >> 20);
        sym = malloc(n * sizeof *sym);
        heap = malloc(3 * n * sizeof *heap);
        if (!sym || !heap) {
            free(sym);
            free(heap);
            return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory for a long word");
        }
    }
    int32_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = tok->byte_id[w[i]];
        if (id < 0)
            continue; /* no token for this byte and no unk: HF drops it */
        sym[ns] = (symbol){id, ns - 1, ns + 1, 1};
        ns++;
    }
    if (ns)
        sym[ns - 1].next = -1;
    merge_all(tok, sym, ns, heap);

    sm_code rc = SM_OK;
    size_t start = *n_ids;
    for (int32_t i = ns ? 0 : -1; i >= 0 && rc == SM_OK; i = sym[i].next)
        rc = append_ids(ids, n_ids, cap, &sym[i].id, 1, err);
    if (sym != small_sym) {
        free(sym);
        free(heap);
    }
    if (rc == SM_OK && slot && *n_ids - start <= CACHE_IDS_MAX) {
        slot->hash = h;
        slot->klen = (uint8_t)n;
        slot->nids = (uint8_t)(*n_ids - start);
        memcpy(slot->key, w, n);
        memcpy(slot->ids, *ids + start, slot->nids * sizeof(int32_t));
    }
    return rc;
}
