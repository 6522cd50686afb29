/* sm_tok_encode: text -> ids, in Hugging Face's order: (1) split out added tokens that match
 * the raw text (leftmost-longest, with the lstrip/rstrip/single_word rules), (2) NFC-normalize
 * each remaining piece and split out added tokens marked "normalized", (3) pre-tokenize each
 * piece with the Split regex of tokenizer.json (PCRE2, UTF + UCP, JIT), (4) run byte-level BPE
 * on every pre-token. With special=false, added tokens marked special are not recognised (HF's
 * encode_special_tokens), so they are tokenized as the plain text they are. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "sm_tok_internal.h"

bool sm_tok_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t v;
            memcpy(&v, s + i, 8);
            if (!(v & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
        } else if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80)
                return false;
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80)
                return false;
            if (c == 0xE0 && s[i + 1] < 0xA0)
                return false; /* overlong */
            if (c == 0xED && s[i + 1] > 0x9F)
                return false; /* surrogate */
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 ||
                (s[i + 3] & 0xC0) != 0x80)
                return false;
            if (c == 0xF0 && s[i + 1] < 0x90)
                return false; /* overlong */
            if (c == 0xF4 && s[i + 1] > 0x8F)
                return false; /* > U+10FFFF */
            i += 4;
        } else {
            return false;
        }
    }
    return true;
}

/* Decodes the valid UTF-8 character at s (n > 0 bytes left); returns its length. */
static size_t utf8_next(const uint8_t *s, size_t n, uint32_t *cp)
{
    uint8_t c = s[0];
    if (c < 0x80 || n < 2) {
        *cp = c;
        return 1;
    }
    if (c < 0xE0) {
        *cp = (uint32_t)(c & 0x1F) << 6 | (s[1] & 0x3F);
        return 2;
    }
    if (c < 0xF0 || n < 4) {
        *cp = (uint32_t)(c & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
        return 3;
    }
    *cp = (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
          (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
    return 4;
}

/* Start of the valid UTF-8 character that ends at s[end - 1]. */
static size_t utf8_prev(const uint8_t *s, size_t end)
{
    size_t i = end - 1;
    while (i > 0 && (s[i] & 0xC0) == 0x80)
        i--;
    return i;
}

/* Unicode White_Space (Rust's char::is_whitespace and regex \s). */
static bool is_white_space(uint32_t c)
{
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Rust regex's Unicode \w: Alphabetic, marks, decimal digits, connector punctuation and the
 * join controls. Alphabetic is approximated by the letter categories, Nl, and the symbols that
 * carry Other_Alphabetic (circled/squared Latin letters). */
static bool is_word_char(uint32_t c)
{
    if (c < 0x80)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               c == '_';
    if (c == 0x200C || c == 0x200D || (c >= 0x24B6 && c <= 0x24E9) ||
        (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
        (c >= 0x1F170 && c <= 0x1F189))
        return true;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_PC:
        return true;
    default:
        return false;
    }
}

static int cmp_added(const void *a, const void *b)
{
    const sm_tok_added *x = *(const sm_tok_added *const *)a, *y = *(const sm_tok_added *const *)b;
    uint8_t fx = (uint8_t)x->content[0], fy = (uint8_t)y->content[0];
    if (fx != fy)
        return fx < fy ? -1 : 1;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* toks must stay allocated (m->tok is the sorted array itself). */
void sm_tok_matcher_build(sm_tok_matcher *m, const sm_tok_added **toks, size_t n)
{
    m->n = n;
    m->tok = toks;
    qsort(toks, n, sizeof *toks, cmp_added);
    size_t k = 0;
    for (unsigned b = 0; b < 257; b++) {
        while (k < n && (uint8_t)toks[k]->content[0] < b)
            k++;
        m->first[b] = (uint32_t)k;
    }
}

typedef struct enc {
    const sm_tokenizer *tok;
    sm_bpe_cache *cache;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    size_t jit_stack_size;
    bool limit_raised;
    bool special;
    int32_t *ids;
    size_t n, cap;
    sm_err *err;
} enc;

typedef sm_code (*piece_fn)(enc *e, const char *s, size_t n);

static sm_code push_id(enc *e, int32_t id)
{
    if (e->n == e->cap) {
        size_t c = e->cap ? e->cap * 2 : 64;
        int32_t *p = realloc(e->ids, c * sizeof *p);
        if (!p)
            return sm_err_set(e->err, SM_ENOMEM, "tokenizer: out of memory for ids");
        e->ids = p;
        e->cap = c;
    }
    e->ids[e->n++] = id;
    return SM_OK;
}

static sm_code bpe(enc *e, const char *s, size_t n)
{
    return sm_bpe_word(e->tok, e->cache, (const uint8_t *)s, n, &e->ids, &e->n, &e->cap, e->err);
}

static sm_code grow_jit_stack(enc *e)
{
    size_t size = e->jit_stack_size ? e->jit_stack_size * 4 : 1 << 20;
    if (size > (256u << 20))
        return sm_err_set(e->err, SM_ELIMIT, "tokenizer: pre-tokenizer regex needs too much stack");
    if (!e->mctx && !(e->mctx = pcre2_match_context_create(NULL)))
        return sm_err_set(e->err, SM_ENOMEM, "tokenizer: out of memory");
    if (e->jit_stack)
        pcre2_jit_stack_free(e->jit_stack);
    e->jit_stack = pcre2_jit_stack_create(32 * 1024, size, NULL);
    if (!e->jit_stack)
        return sm_err_set(e->err, SM_ENOMEM, "tokenizer: out of memory");
    e->jit_stack_size = size;
    pcre2_jit_stack_assign(e->mctx, NULL, e->jit_stack);
    return SM_OK;
}

/* PCRE2's default match limit (10 million steps) is reached by one linear backtrack over a
 * very long whitespace run (e.g. "\s*[\r\n]+" over 20 MB of spaces); raise it once to a
 * bound proportional to the subject, which still stops pathological backtracking. */
static sm_code raise_match_limit(enc *e, size_t n)
{
    if (e->limit_raised)
        return sm_err_set(e->err, SM_ELIMIT,
                          "tokenizer: the pre-tokenizer regex backtracks too much on this input");
    if (!e->mctx && !(e->mctx = pcre2_match_context_create(NULL)))
        return sm_err_set(e->err, SM_ENOMEM, "tokenizer: out of memory");
    uint64_t limit = 10000000ull + 64ull * n;
    pcre2_set_match_limit(e->mctx, limit > UINT32_MAX ? UINT32_MAX : (uint32_t)limit);
    e->limit_raised = true;
    return SM_OK;
}

/* Split pre-tokenizer, behaviour Isolated: every match and every gap between matches is a
 * pre-token. An empty match only splits (its gap ends there); the search resumes one
 * character further, as Oniguruma's find_iter does. */
static sm_code pretokenize(enc *e, const char *s, size_t n)
{
    const sm_tokenizer *tok = e->tok;
    if (!tok->re)
        return bpe(e, s, n);
    size_t last = 0, off = 0;
    sm_code rc = SM_OK;
    while (off < n && rc == SM_OK) {
        int m = tok->re_jit ? pcre2_jit_match(tok->re, (PCRE2_SPTR)s, n, off, 0, e->md, e->mctx)
                            : pcre2_match(tok->re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, e->md,
                                          e->mctx);
        if (m == PCRE2_ERROR_NOMATCH)
            break;
        if (m == PCRE2_ERROR_JIT_STACKLIMIT) {
            rc = grow_jit_stack(e);
            continue;
        }
        if (m == PCRE2_ERROR_MATCHLIMIT || m == PCRE2_ERROR_DEPTHLIMIT) {
            rc = raise_match_limit(e, n);
            continue;
        }
        if (m < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(m, msg, sizeof msg);
            return sm_err_set(e->err, SM_EINTERNAL, "tokenizer: regex match failed: %s", msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
        size_t ms = ov[0], me = ov[1];
        if (ms > last)
            rc = bpe(e, s + last, ms - last);
        if (rc)
            break;
        if (me == ms) {
            last = ms;
            uint32_t cp;
            off = ms + utf8_next((const uint8_t *)s + ms, n - ms, &cp);
            continue;
        }
        rc = bpe(e, s + ms, me - ms);
        last = off = me;
    }
    if (rc == SM_OK && last < n)
        rc = bpe(e, s + last, n - last);
    return rc;
}

/* HF's AddedVocabulary::find_matches over one piece: gaps go to fn, matches become ids. */
static sm_code split_added(enc *e, const sm_tok_matcher *m, const char *s, size_t n, piece_fn fn)
{
    if (m->n == 0)
        return fn(e, s, n);
    const uint8_t *u = (const uint8_t *)s;
    size_t start_offset = 0, pos = 0;
    sm_code rc = SM_OK;
    while (pos < n && rc == SM_OK) {
        uint32_t lo = m->first[u[pos]], hi = m->first[u[pos] + 1];
        const sm_tok_added *hit = NULL;
        for (uint32_t k = lo; k < hi; k++) {
            const sm_tok_added *t = m->tok[k];
            if (t->len <= n - pos && memcmp(s + pos, t->content, t->len) == 0) {
                hit = t;
                break;
            }
        }
        if (!hit) {
            pos++;
            continue;
        }
        size_t start = pos, stop = pos + hit->len;
        pos = stop;
        if (!e->special && hit->special)
            continue;
        if (hit->single_word) {
            uint32_t before = 0, after = 0;
            if (start > 0)
                utf8_next(u + utf8_prev(u, start), start - utf8_prev(u, start), &before);
            if (stop < n)
                utf8_next(u + stop, n - stop, &after);
            if ((start > 0 && is_word_char(before)) || (stop < n && is_word_char(after)))
                continue;
        }
        if (hit->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t p = utf8_prev(u, ns);
                uint32_t cp;
                utf8_next(u + p, ns - p, &cp);
                if (!is_white_space(cp))
                    break;
                ns = p;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (hit->rstrip) {
            while (stop < n) {
                uint32_t cp;
                size_t l = utf8_next(u + stop, n - stop, &cp);
                if (!is_white_space(cp))
                    break;
                stop += l;
            }
        }
        if (start_offset < start)
            rc = fn(e, s + start_offset, start - start_offset);
        if (rc == SM_OK)
            rc = push_id(e, hit->id);
        if (stop > start_offset)
            start_offset = stop;
    }
    if (rc == SM_OK && start_offset < n)
        rc = fn(e, s + start_offset, n - start_offset);
    return rc;
}

/* Code points that are NFC_Quick_Check=Yes, have combining class 0 and are never the second
 * character of a canonical composition: text made only of them is already NFC, and a
 * normalization boundary lies before each of them. tests/tokenizer/compare_hf.py checks every
 * range against Python's unicodedata. */
static const uint32_t nfc_stable_ranges[][2] = {
    /* nfc-stable-begin */
    {0x0000, 0x02FF}, {0x0375, 0x037D},   {0x037F, 0x0386}, {0x0388, 0x03FF}, {0x0400, 0x0482},
    {0x048A, 0x052F}, {0x05D0, 0x05EA},   {0x0621, 0x064A}, {0x0660, 0x066F}, {0x0671, 0x06D5},
    {0x0904, 0x093B}, {0x093D, 0x094C},   {0x094E, 0x0950}, {0x0960, 0x097F}, {0x1E00, 0x1EFF},
    {0x2002, 0x206F}, {0x2070, 0x20CF},   {0x2190, 0x2328}, {0x232B, 0x23FF}, {0x2460, 0x27BF},
    {0x27C0, 0x2ADB}, {0x2ADD, 0x2BFF},   {0x3000, 0x3029}, {0x3030, 0x303F}, {0x3041, 0x3096},
    {0x309B, 0x30FF}, {0x3400, 0x4DBF},   {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3}, {0xFE00, 0xFE0F},
    {0xFF01, 0xFFEF}, {0x1F000, 0x1FAFF},
    /* nfc-stable-end */
};

static bool nfc_stable(uint32_t c)
{
    size_t lo = 0, hi = sizeof nfc_stable_ranges / sizeof nfc_stable_ranges[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < nfc_stable_ranges[mid][0])
            hi = mid;
        else if (c > nfc_stable_ranges[mid][1])
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

/* Offset of the first code point that is not NFC-stable, or n. */
static size_t first_unstable(const uint8_t *u, size_t n, size_t i)
{
    while (i < n) {
        if (u[i] < 0xCC) { /* every lead byte below 0xCC starts a code point below U+0300 */
            i++;
            continue;
        }
        uint32_t cp;
        size_t l = utf8_next(u + i, n - i, &cp);
        if (!nfc_stable(cp))
            return i;
        i += l;
    }
    return n;
}

/* NFC of s[0..n): stable stretches are copied, each unstable stretch -- from the character
 * before its first unstable one (which may compose with it) to the next stable character --
 * goes through utf8proc. *out is NULL when s is already NFC. */
static sm_code nfc(const char *s, size_t n, char **out, size_t *out_len, sm_err *err)
{
    const uint8_t *u = (const uint8_t *)s;
    *out = NULL;
    size_t i = first_unstable(u, n, 0);
    if (i == n)
        return SM_OK;
    size_t cap = n + n / 2 + 16, k = 0, copied = 0;
    char *buf = malloc(cap);
    if (!buf)
        return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory normalizing");
    while (i < n) {
        size_t start = i > 0 ? utf8_prev(u, i) : 0;
        if (start < copied)
            start = copied;
        size_t end = i;
        while (end < n) { /* extend over unstable characters */
            uint32_t cp;
            size_t l = utf8_next(u + end, n - end, &cp);
            if (cp < 0x300 || nfc_stable(cp))
                break;
            end += l;
        }
        utf8proc_uint8_t *mapped = NULL;
        utf8proc_ssize_t ml = utf8proc_map(u + start, (utf8proc_ssize_t)(end - start), &mapped,
                                           UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (ml < 0) {
            free(mapped);
            free(buf);
            return sm_err_set(err, ml == UTF8PROC_ERROR_NOMEM ? SM_ENOMEM : SM_EINVAL,
                              "tokenizer: NFC normalization failed: %s", utf8proc_errmsg(ml));
        }
        size_t need = k + (start - copied) + (size_t)ml + (n - end) + 1;
        if (need > cap) {
            while (cap < need)
                cap *= 2;
            char *g = realloc(buf, cap);
            if (!g) {
                free(mapped);
                free(buf);
                return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory normalizing");
            }
            buf = g;
        }
        memcpy(buf + k, s + copied, start - copied);
        k += start - copied;
        memcpy(buf + k, mapped, (size_t)ml);
        k += (size_t)ml;
        free(mapped);
        copied = end;
        i = first_unstable(u, n, end);
    }
    memcpy(buf + k, s + copied, n - copied);
    k += n - copied;
    *out = buf;
    *out_len = k;
    return SM_OK;
}

static sm_code normalized_piece(enc *e, const char *s, size_t n)
{
    const sm_tokenizer *tok = e->tok;
    char *norm = NULL;
    size_t len = 0;
    if (tok->normalizer == SM_TOK_NORM_NFC) {
        sm_code rc = nfc(s, n, &norm, &len, e->err);
        if (rc)
            return rc;
    }
    sm_code rc = norm ? split_added(e, &tok->norm_matcher, norm, len, pretokenize)
                      : split_added(e, &tok->norm_matcher, s, n, pretokenize);
    free(norm);
    return rc;
}

sm_code sm_tokenizer_encode(const sm_tokenizer *tok, const char *text, size_t len, bool special,
                            int32_t **ids, size_t *n_ids, sm_err *err)
{
    if (!tok || !ids || !n_ids || (!text && len))
        return sm_err_set(err, SM_EINVAL, "tokenizer: encode given a NULL argument");
    *ids = NULL;
    *n_ids = 0;
    if (!sm_tok_utf8_valid((const uint8_t *)text, len))
        return sm_err_set(err, SM_EINVAL, "tokenizer: input is not valid UTF-8");
    enc e = {.tok = tok, .special = special, .err = err};
    e.cap = len / 3 + 16;
    e.ids = malloc(e.cap * sizeof *e.ids);
    if (!e.ids)
        return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory for ids");
    if (tok->re && !(e.md = pcre2_match_data_create_from_pattern(tok->re, NULL))) {
        free(e.ids);
        return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory");
    }
    bool locked = pthread_mutex_trylock((pthread_mutex_t *)&tok->cache_lock) == 0;
    if (locked)
        e.cache = tok->cache;
    sm_code rc = len ? split_added(&e, &tok->raw_matcher, text, len, normalized_piece) : SM_OK;
    if (locked)
        pthread_mutex_unlock((pthread_mutex_t *)&tok->cache_lock);
    pcre2_match_data_free(e.md);
    if (e.jit_stack)
        pcre2_jit_stack_free(e.jit_stack);
    pcre2_match_context_free(e.mctx);
    if (rc) {
        free(e.ids);
        return rc;
    }
    *ids = e.ids;
    *n_ids = e.n;
    return SM_OK;
}
