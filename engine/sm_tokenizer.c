/* sm_tokenizer: loading a tokenizer directory (tokenizer.json through the binary cache when a
 * valid one exists, else through sm_tok_json; tokenizer_config.json for the eos token), building
 * the lookup structures (text and byte arenas, hash maps, added-token matchers, the compiled
 * pre-tokenizer regex, the word cache), the id/text lookups and freeing. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include "sm_log.h"
#include "sm_tok_internal.h"

#define SM_TOK_MAX_FILE ((size_t)1 << 30)

static sm_code read_file(const char *path, char **data, size_t *size, bool *missing, sm_err *err)
{
    *data = NULL;
    *size = 0;
    *missing = false;
    struct stat st;
    if (stat(path, &st) != 0) {
        *missing = errno == ENOENT || errno == ENOTDIR;
        return sm_err_set(err, *missing ? SM_ENOTFOUND : SM_EIO, "tokenizer: cannot stat %s: %s",
                          path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode))
        return sm_err_set(err, SM_EFORMAT, "tokenizer: %s is not a regular file", path);
    if ((size_t)st.st_size > SM_TOK_MAX_FILE)
        return sm_err_set(err, SM_ELIMIT, "tokenizer: %s is larger than 1 GiB", path);
    FILE *f = fopen(path, "rb");
    if (!f)
        return sm_err_set(err, SM_EIO, "tokenizer: cannot open %s: %s", path, strerror(errno));
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        fclose(f);
        return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory reading %s", path);
    }
    size_t got = fread(buf, 1, (size_t)st.st_size, f);
    bool bad = ferror(f) || got != (size_t)st.st_size;
    fclose(f);
    if (bad) {
        free(buf);
        return sm_err_set(err, SM_EIO, "tokenizer: cannot read %s", path);
    }
    buf[got] = 0;
    *data = buf;
    *size = got;
    return SM_OK;
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Decoded bytes of a token text: byte-level characters back to bytes; a text with any
 * character outside the byte alphabet is kept as its UTF-8 bytes (HF's ByteLevel decoder). */
static size_t token_bytes(const char *t, size_t n, uint8_t *out)
{
    size_t k = 0, i = 0;
    while (i < n) {
        uint8_t c = (uint8_t)t[i];
        unsigned cp;
        size_t l;
        if (c < 0x80) {
            cp = c;
            l = 1;
        } else if ((c & 0xE0) == 0xC0 && i + 1 < n) {
            cp = (unsigned)(c & 0x1F) << 6 | ((uint8_t)t[i + 1] & 0x3F);
            l = 2;
        } else {
            cp = 0xFFFF; /* 3- and 4-byte characters are never in the byte alphabet */
            l = 1;
        }
        int b = -1;
        if (cp < 256 && sm_tok_byte_char(cp) == cp)
            b = (int)cp;
        else if (cp >= 256 && cp <= 288)
            b = (int)(cp - 256);
        else if (cp >= 289 && cp <= 322)
            b = (int)(cp - 162);
        else if (cp == 323)
            b = 173;
        if (b < 0) {
            memcpy(out, t, n);
            return n;
        }
        out[k++] = (uint8_t)b;
        i += l;
    }
    return k;
}

/* The token texts and their bytes, indexed by id; *n_vocab_out: the ids with a text. */
static sm_code build_texts(const sm_tok_spec *spec, sm_tokenizer *tok, size_t *n_vocab_out,
                           sm_err *err)
{
    size_t n = spec->n_ids;
    tok->n_ids = n;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        if (spec->text[i])
            total += strlen(spec->text[i]) + 1;
    if (total >= UINT32_MAX)
        return sm_err_set(err, SM_ELIMIT, "tokenizer: vocabulary too large");
    tok->text_off = malloc((n ? n : 1) * sizeof(uint32_t));
    tok->text_len = malloc((n ? n : 1) * sizeof(uint32_t));
    tok->bytes_off = malloc((n ? n : 1) * sizeof(uint32_t));
    tok->bytes_len = malloc((n ? n : 1) * sizeof(uint32_t));
    tok->is_special = calloc(n ? n : 1, 1);
    tok->text = malloc(total ? total : 1);
    tok->bytes = malloc(total ? total : 1);
    if (!tok->text_off || !tok->text_len || !tok->bytes_off || !tok->bytes_len ||
        !tok->is_special || !tok->text || !tok->bytes)
        return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory");
    size_t off = 0, boff = 0, n_vocab = 0;
    for (size_t i = 0; i < n; i++) {
        if (!spec->text[i]) {
            tok->text_off[i] = UINT32_MAX;
            tok->text_len[i] = 0;
            tok->bytes_off[i] = 0;
            tok->bytes_len[i] = 0;
            continue;
        }
        size_t l = strlen(spec->text[i]);
        memcpy(tok->text + off, spec->text[i], l + 1);
        tok->text_off[i] = (uint32_t)off;
        tok->text_len[i] = (uint32_t)l;
        off += l + 1;
        size_t bl = token_bytes(spec->text[i], l, tok->bytes + boff);
        tok->bytes_off[i] = (uint32_t)boff;
        tok->bytes_len[i] = (uint32_t)bl;
        boff += bl;
        n_vocab++;
    }
    tok->text_size = off;
    *n_vocab_out = n_vocab;
    return SM_OK;
}

/* The added tokens, their content normalized as the tokenizer's normalizer says where they ask
 * for it, marked special where they are, and in the map of all texts. */
static sm_code build_added(const sm_tok_spec *spec, sm_tokenizer *tok, sm_err *err)
{
    tok->n_added = spec->n_added;
    tok->added = calloc(spec->n_added ? spec->n_added : 1, sizeof *tok->added);
    if (!tok->added)
        return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < spec->n_added; i++) {
        sm_tok_added *a = &tok->added[i];
        *a = spec->added[i];
        a->content = NULL;
        const char *src = spec->added[i].content;
        if (a->normalized && spec->normalizer == SM_TOK_NORM_NFC) {
            utf8proc_uint8_t *nfc = NULL;
            utf8proc_ssize_t l =
                utf8proc_map((const utf8proc_uint8_t *)src, (utf8proc_ssize_t)a->len, &nfc,
                             UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            if (l <= 0) {
                free(nfc);
                return sm_err_set(err, SM_EFORMAT, "tokenizer: added token %d is not valid UTF-8",
                                  a->id);
            }
            a->content = (char *)nfc;
            a->len = (size_t)l;
        } else {
            a->content = strndup(src, a->len);
            if (!a->content)
                return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory");
        }
        if (!sm_tok_utf8_valid((const uint8_t *)a->content, a->len))
            return sm_err_set(err, SM_EFORMAT, "tokenizer: added token %d is not valid UTF-8",
                              a->id);
        if (a->special)
            tok->is_special[a->id] = 1;
        sm_tok_strmap_put(&tok->all, tok, a->id);
    }
    return SM_OK;
}

/* The text -> id maps (the vocabulary without added tokens; all of them) and the ids of the
 * 256 byte tokens. */
static sm_code build_maps(const sm_tok_spec *spec, sm_tokenizer *tok, sm_err *err)
{
    size_t n = spec->n_ids;
    int32_t *order = malloc((n ? n : 1) * sizeof *order);
    if (!order)
        return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (tok->text_off[i] != UINT32_MAX && !spec->is_added[i])
            order[k++] = (int32_t)i;
    sm_tok_strmap_put_all(&tok->vocab, tok, order, k);
    k = 0;
    for (size_t i = 0; i < n; i++)
        if (tok->text_off[i] != UINT32_MAX)
            order[k++] = (int32_t)i;
    sm_tok_strmap_put_all(&tok->all, tok, order, k);
    free(order);
    for (unsigned b = 0; b < 256; b++) {
        unsigned cp = sm_tok_byte_char(b);
        char t[2];
        size_t tl = 1;
        if (cp < 0x80) {
            t[0] = (char)cp;
        } else {
            t[0] = (char)(0xC0 | (cp >> 6));
            t[1] = (char)(0x80 | (cp & 0x3F));
            tl = 2;
        }
        tok->byte_id[b] = sm_tok_strmap_get(&tok->vocab, tok, t, tl);
    }
    return SM_OK;
}

/* The merges: (left id, right id) -> (rank, merged id). */
static sm_code build_merges(const sm_tok_spec *spec, sm_tokenizer *tok, sm_err *err)
{
    size_t n = spec->n_ids;
    sm_code rc;
    if ((rc = sm_tok_pairmap_init(&tok->merges, spec->n_merges, err)))
        return rc;
    tok->n_merges = spec->n_merges;
    for (size_t i = 0; i < spec->n_merges; i++) {
        const uint32_t *m = spec->merge_triples + 3 * i;
        if (i + 16 < spec->n_merges) {
            const uint32_t *f = m + 48;
            uint64_t key = ((uint64_t)f[0] << 32) | f[1];
            __builtin_prefetch(
                &tok->merges.slots[((key * 0x9E3779B97F4A7C15ull) >> 32) & tok->merges.mask], 1);
        }
        if (m[0] >= n || m[1] >= n || m[2] >= n)
            return sm_err_set(err, SM_EFORMAT, "tokenizer: merge %zu refers to an unknown id", i);
        sm_tok_pairmap_put(&tok->merges, (int32_t)m[0], (int32_t)m[1], (uint32_t)i, (int32_t)m[2]);
    }
    tok->ignore_merges = spec->ignore_merges;
    tok->normalizer = spec->normalizer;
    return SM_OK;
}

/* The matchers of added tokens in raw and in normalized text. */
static sm_code build_matchers(const sm_tok_spec *spec, sm_tokenizer *tok, sm_err *err)
{
    const sm_tok_added **raw = calloc(spec->n_added ? spec->n_added : 1, sizeof *raw);
    const sm_tok_added **norm = calloc(spec->n_added ? spec->n_added : 1, sizeof *norm);
    if (!raw || !norm) {
        free(raw);
        free(norm);
        return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory");
    }
    size_t nr = 0, nn = 0;
    for (size_t i = 0; i < tok->n_added; i++) {
        if (tok->added[i].normalized)
            norm[nn++] = &tok->added[i];
        else
            raw[nr++] = &tok->added[i];
    }
    sm_tok_matcher_build(&tok->raw_matcher, raw, nr);
    sm_tok_matcher_build(&tok->norm_matcher, norm, nn);
    return SM_OK;
}

/* The pre-tokenizer's Split regex, compiled (with JIT where PCRE2 has it). */
static sm_code build_regex(const sm_tok_spec *spec, sm_tokenizer *tok, sm_err *err)
{
    if (spec->regex) {
        tok->regex = strdup(spec->regex);
        if (!tok->regex)
            return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory");
        int ecode;
        PCRE2_SIZE eoff;
        tok->re = pcre2_compile((PCRE2_SPTR)tok->regex, PCRE2_ZERO_TERMINATED,
                                PCRE2_UTF | PCRE2_UCP, &ecode, &eoff, NULL);
        if (!tok->re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ecode, msg, sizeof msg);
            return sm_err_set(err, SM_EFORMAT,
                              "tokenizer.json: the Split regex does not compile at offset %zu: %s",
                              (size_t)eoff, (const char *)msg);
        }
        /* without JIT support pcre2_match runs the interpreter */
        tok->re_jit = pcre2_jit_compile(tok->re, PCRE2_JIT_COMPLETE) == 0;
    }
    return SM_OK;
}

static sm_code build(const sm_tok_spec *spec, sm_tokenizer *tok, sm_err *err)
{
    size_t n_vocab = 0;
    sm_code rc;
    if ((rc = build_texts(spec, tok, &n_vocab, err)) ||
        (rc = sm_tok_strmap_init(&tok->vocab, n_vocab, err)) ||
        (rc = sm_tok_strmap_init(&tok->all, n_vocab, err)) || (rc = build_added(spec, tok, err)) ||
        (rc = build_maps(spec, tok, err)) || (rc = build_merges(spec, tok, err)) ||
        (rc = build_matchers(spec, tok, err)) || (rc = build_regex(spec, tok, err)))
        return rc;
    return sm_bpe_cache_new(&tok->cache, err);
}

/* eos_token of tokenizer_config.json: a string or an object with "content". */
static sm_code read_config(const char *dir, sm_tokenizer *tok, sm_err *err)
{
    tok->eos_id = -1;
    char *path = path_join(dir, "tokenizer_config.json");
    if (!path)
        return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory");
    char *data;
    size_t size;
    bool missing;
    sm_code rc = read_file(path, &data, &size, &missing, err);
    if (rc) {
        free(path);
        if (missing) {
            sm_err_clear(err);
            return SM_OK;
        }
        return rc;
    }
    json_error_t jerr;
    json_t *root = json_loadb(data, size, 0, &jerr);
    free(data);
    if (!json_is_object(root)) {
        json_decref(root);
        rc = sm_err_set(err, SM_EFORMAT, "tokenizer: %s is not a JSON object (line %d: %s)", path,
                        jerr.line, root ? "not an object" : jerr.text);
        free(path);
        return rc;
    }
    free(path);
    const json_t *eos = json_object_get(root, "eos_token");
    if (json_is_object(eos))
        eos = json_object_get(eos, "content");
    if (json_is_string(eos))
        tok->eos_id = sm_tokenizer_token_id(tok, json_string_value(eos));
    json_decref(root);
    return SM_OK;
}

static char *default_cache_dir(void)
{
    const char *env = getenv("SM_TOKENIZER_CACHE");
    if (env && *env)
        return strcmp(env, "off") == 0 ? NULL : strdup(env);
    env = getenv("XDG_CACHE_HOME");
    if (env && *env)
        return path_join(env, "stepmark");
    env = getenv("HOME");
    if (env && *env)
        return path_join(env, ".cache/stepmark");
    return NULL;
}

static void mkdir_p(const char *dir)
{
    char *p = strdup(dir);
    if (!p)
        return;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        mkdir(p, 0755);
        *s = '/';
    }
    mkdir(p, 0755);
    free(p);
}

sm_code sm_tokenizer_load_cached(const char *dir, const char *cache_dir, sm_tokenizer **out,
                                 sm_err *err)
{
    if (!dir || !out)
        return sm_err_set(err, SM_EINVAL, "tokenizer: load given a NULL argument");
    *out = NULL;
    char *path = path_join(dir, "tokenizer.json");
    if (!path)
        return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory");
    char *json;
    size_t size;
    bool missing;
    sm_code rc = read_file(path, &json, &size, &missing, err);
    free(path);
    if (rc)
        return rc;
    uint64_t hash = sm_tok_hash(json, size);

    sm_tok_spec spec;
    char *cache_path = NULL;
    bool from_cache = false;
    if (cache_dir) {
        char name[80];
        snprintf(name, sizeof name, "tokenizer-%016llx-%llu.bin", (unsigned long long)hash,
                 (unsigned long long)size);
        cache_path = path_join(cache_dir, name);
        from_cache = cache_path && sm_tok_cache_read(cache_path, hash, size, &spec, NULL) == SM_OK;
    }
    if (!from_cache) {
        rc = sm_tok_json_parse(json, size, &spec, err);
        if (rc == SM_OK && cache_path) {
            sm_err werr = {0};
            mkdir_p(cache_dir);
            if (sm_tok_cache_write(cache_path, hash, size, &spec, &werr))
                sm_log(SM_LOG_DEBUG, "tokenizer cache not written", "error", werr.msg, NULL);
        }
    }
    free(json);
    free(cache_path);
    if (rc)
        return rc;

    sm_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) {
        sm_tok_spec_clear(&spec);
        return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory");
    }
    pthread_mutex_init(&tok->cache_lock, NULL);
    rc = build(&spec, tok, err);
    sm_tok_spec_clear(&spec);
    if (rc == SM_OK)
        rc = read_config(dir, tok, err);
    if (rc) {
        sm_tokenizer_free(&tok);
        return rc;
    }
    *out = tok;
    return SM_OK;
}

sm_code sm_tokenizer_load(const char *dir, sm_tokenizer **out, sm_err *err)
{
    char *cache_dir = default_cache_dir();
    sm_code rc = sm_tokenizer_load_cached(dir, cache_dir, out, err);
    free(cache_dir);
    return rc;
}

void sm_tokenizer_free(sm_tokenizer **tokp)
{
    if (!tokp || !*tokp)
        return;
    sm_tokenizer *tok = *tokp;
    free(tok->text_off);
    free(tok->text_len);
    free(tok->text);
    free(tok->bytes_off);
    free(tok->bytes_len);
    free(tok->bytes);
    free(tok->is_special);
    sm_tok_strmap_free(&tok->vocab);
    sm_tok_strmap_free(&tok->all);
    sm_tok_pairmap_free(&tok->merges);
    if (tok->added)
        for (size_t i = 0; i < tok->n_added; i++)
            free(tok->added[i].content);
    free(tok->added);
    free((void *)tok->raw_matcher.tok);
    free((void *)tok->norm_matcher.tok);
    free(tok->regex);
    pcre2_code_free(tok->re);
    sm_bpe_cache_free(&tok->cache);
    pthread_mutex_destroy(&tok->cache_lock);
    free(tok);
    *tokp = NULL;
}

int32_t sm_tokenizer_token_id(const sm_tokenizer *tok, const char *token_text)
{
    if (!tok || !token_text)
        return -1;
    return sm_tok_strmap_get(&tok->all, tok, token_text, strlen(token_text));
}

const char *sm_tokenizer_id_text(const sm_tokenizer *tok, int32_t id)
{
    if (!tok || id < 0 || (size_t)id >= tok->n_ids || tok->text_off[id] == UINT32_MAX)
        return NULL;
    return tok->text + tok->text_off[id];
}

bool sm_tokenizer_is_special(const sm_tokenizer *tok, int32_t id)
{
    return tok && id >= 0 && (size_t)id < tok->n_ids && tok->is_special[id];
}

size_t sm_tokenizer_vocab_size(const sm_tokenizer *tok)
{
    return tok ? tok->n_ids : 0;
}

int32_t sm_tokenizer_eos_id(const sm_tokenizer *tok)
{
    return tok ? tok->eos_id : -1;
}
