/* sm_tok_cache: the binary form of a parsed tokenizer.json, so that loading skips the JSON
 * parse. The file records the size and a 64-bit hash of the tokenizer.json bytes it was made
 * from plus a hash of its own payload; a file that does not match exactly, or fails any bounds
 * check, is rejected (SM_EFORMAT) and the caller falls back to the JSON. Writes go to a
 * temporary file renamed into place, so readers never see a partial cache. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sm_tok_internal.h"

#define CACHE_MAGIC "SMTOKC02"

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} buf;

static void put(buf *b, const void *data, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 20;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put32(buf *b, uint32_t v)
{
    put(b, &v, 4);
}

sm_code sm_tok_cache_write(const char *path, uint64_t json_hash, uint64_t json_size,
                           const sm_tok_spec *spec, sm_err *err)
{
    buf b = {0};
    put32(&b, (uint32_t)spec->n_ids);
    put32(&b, (uint32_t)spec->n_merges);
    put32(&b, (uint32_t)spec->n_added);
    put32(&b, spec->ignore_merges ? 1u : 0u);
    put32(&b, (uint32_t)spec->normalizer);
    uint32_t rlen = spec->regex ? (uint32_t)strlen(spec->regex) : UINT32_MAX;
    put32(&b, rlen);
    if (spec->regex)
        put(&b, spec->regex, rlen);
    for (size_t i = 0; i < spec->n_ids; i++) {
        uint32_t len = spec->text[i] ? (uint32_t)strlen(spec->text[i]) : UINT32_MAX;
        put32(&b, len);
        put(&b, &spec->is_added[i], 1);
        if (spec->text[i])
            put(&b, spec->text[i], len);
    }
    put(&b, spec->merge_triples, spec->n_merges * 3 * sizeof(uint32_t));
    for (size_t i = 0; i < spec->n_added; i++) {
        const sm_tok_added *a = &spec->added[i];
        put32(&b, (uint32_t)a->id);
        put32(&b, (uint32_t)a->len);
        uint8_t flags = (uint8_t)(a->special | a->lstrip << 1 | a->rstrip << 2 |
                                  a->single_word << 3 | a->normalized << 4);
        put(&b, &flags, 1);
        put(&b, a->content, a->len);
    }
    if (b.oom) {
        free(b.p);
        return sm_err_set(err, SM_ENOMEM, "tokenizer cache: out of memory");
    }
    uint64_t header[5] = {0, json_size, json_hash, b.len, sm_tok_hash(b.p, b.len)};
    memcpy(&header[0], CACHE_MAGIC, 8);

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) {
        free(b.p);
        return sm_err_set(err, SM_ENOMEM, "tokenizer cache: out of memory");
    }
    snprintf(tmp, plen + 32, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    sm_code rc = SM_OK;
    if (!f) {
        rc = sm_err_set(err, SM_EIO, "tokenizer cache: cannot create %s: %s", tmp, strerror(errno));
    } else {
        bool ok = fwrite(header, sizeof header, 1, f) == 1 && fwrite(b.p, 1, b.len, f) == b.len;
        ok = (fclose(f) == 0) && ok;
        if (!ok || rename(tmp, path) != 0) {
            rc = sm_err_set(err, SM_EIO, "tokenizer cache: cannot write %s: %s", path,
                            strerror(errno));
            unlink(tmp);
        }
    }
    free(tmp);
    free(b.p);
    return rc;
}

typedef struct rd {
    const uint8_t *p;
    size_t left;
    bool bad;
} rd;

static const void *take(rd *r, size_t n)
{
    if (r->bad || n > r->left) {
        r->bad = true;
        return NULL;
    }
    const void *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

static uint32_t take32(rd *r)
{
    const void *p = take(r, 4);
    uint32_t v = 0;
    if (p)
        memcpy(&v, p, 4);
    return v;
}

static char *take_str(rd *r, size_t n)
{
    const void *p = take(r, n);
    if (!p)
        return NULL;
    char *s = malloc(n + 1);
    if (!s) {
        r->bad = true;
        return NULL;
    }
    memcpy(s, p, n);
    s[n] = 0;
    if (strlen(s) != n) { /* an embedded NUL cannot come from our writer */
        free(s);
        r->bad = true;
        return NULL;
    }
    return s;
}

static sm_code parse_payload(rd *r, sm_tok_spec *spec)
{
    spec->n_ids = take32(r);
    spec->n_merges = take32(r);
    spec->n_added = take32(r);
    spec->ignore_merges = take32(r) != 0;
    spec->normalizer = (int)take32(r);
    uint32_t rlen = take32(r);
    if (r->bad || spec->n_ids > SM_TOK_MAX_IDS || spec->n_added > spec->n_ids ||
        spec->n_merges > r->left / 12 || spec->n_ids > r->left / 5 ||
        (spec->normalizer != SM_TOK_NORM_NONE && spec->normalizer != SM_TOK_NORM_NFC))
        return SM_EFORMAT;
    if (rlen != UINT32_MAX && !(spec->regex = take_str(r, rlen)))
        return SM_EFORMAT;
    spec->text = calloc(spec->n_ids ? spec->n_ids : 1, sizeof *spec->text);
    spec->is_added = calloc(spec->n_ids ? spec->n_ids : 1, 1);
    spec->merge_triples = malloc((spec->n_merges ? spec->n_merges : 1) * 12);
    spec->added = calloc(spec->n_added ? spec->n_added : 1, sizeof *spec->added);
    if (!spec->text || !spec->is_added || !spec->merge_triples || !spec->added)
        return SM_ENOMEM;
    for (size_t i = 0; i < spec->n_ids; i++) {
        uint32_t len = take32(r);
        const uint8_t *added = take(r, 1);
        if (!added || *added > 1)
            return SM_EFORMAT;
        spec->is_added[i] = *added;
        if (len != UINT32_MAX && !(spec->text[i] = take_str(r, len)))
            return SM_EFORMAT;
    }
    const void *m = take(r, spec->n_merges * 12);
    if (!m)
        return SM_EFORMAT;
    memcpy(spec->merge_triples, m, spec->n_merges * 12);
    for (size_t i = 0; i < spec->n_merges * 3; i++)
        if (spec->merge_triples[i] >= spec->n_ids || !spec->text[spec->merge_triples[i]])
            return SM_EFORMAT;
    size_t n_added = spec->n_added;
    spec->n_added = 0;
    for (size_t i = 0; i < n_added; i++) {
        sm_tok_added *a = &spec->added[i];
        a->id = (int32_t)take32(r);
        a->len = take32(r);
        const uint8_t *flags = take(r, 1);
        if (!flags || (uint32_t)a->id >= spec->n_ids || a->len == 0)
            return SM_EFORMAT;
        if (!(a->content = take_str(r, a->len)))
            return SM_EFORMAT;
        spec->n_added++;
        a->special = *flags & 1;
        a->lstrip = *flags >> 1 & 1;
        a->rstrip = *flags >> 2 & 1;
        a->single_word = *flags >> 3 & 1;
        a->normalized = *flags >> 4 & 1;
    }
    return r->bad || r->left ? SM_EFORMAT : SM_OK;
}

sm_code sm_tok_cache_read(const char *path, uint64_t json_hash, uint64_t json_size,
                          sm_tok_spec *spec, sm_err *err)
{
    memset(spec, 0, sizeof *spec);
    FILE *f = fopen(path, "rb");
    if (!f)
        return sm_err_set(err, SM_ENOTFOUND, "tokenizer cache: no %s", path);
    uint64_t header[5];
    uint8_t *data = NULL;
    sm_code rc = SM_EFORMAT;
    if (fread(header, sizeof header, 1, f) == 1 && memcmp(&header[0], CACHE_MAGIC, 8) == 0 &&
        header[1] == json_size && header[2] == json_hash && header[3] < ((uint64_t)1 << 32)) {
        data = malloc(header[3] ? header[3] : 1);
        if (!data) {
            rc = SM_ENOMEM;
        } else if (fread(data, 1, header[3], f) == header[3] && fgetc(f) == EOF &&
                   sm_tok_hash(data, header[3]) == header[4]) {
            rd r = {data, header[3], false};
            rc = parse_payload(&r, spec);
        }
    }
    fclose(f);
    free(data);
    if (rc) {
        sm_tok_spec_clear(spec);
        return sm_err_set(err, rc, "tokenizer cache: %s is stale or corrupt", path);
    }
    return SM_OK;
}
