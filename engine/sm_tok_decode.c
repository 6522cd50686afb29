/* sm_tok_decode: ids -> text with the ByteLevel decoder (each token's byte-level characters
 * back to bytes, then a lossy UTF-8 conversion that replaces each maximal invalid subpart with
 * U+FFFD, exactly as Rust's String::from_utf8_lossy in Hugging Face `tokenizers`), and the
 * streaming decoder, which holds back an incomplete UTF-8 tail until the next token. */
#include <stdlib.h>
#include <string.h>

#include "sm_tok_internal.h"

static void emit(char *out, size_t *k, const uint8_t *src, size_t n)
{
    if (out)
        memcpy(out + *k, src, n);
    *k += n;
}

static const uint8_t replacement[3] = {0xEF, 0xBF, 0xBD};

size_t sm_tok_utf8_lossy(const uint8_t *b, size_t n, bool final, char *out, size_t *out_len)
{
    size_t i = 0, k = 0;
    while (i < n) {
        size_t start = i;
        uint8_t c = b[i++];
        if (c < 0x80) {
            emit(out, &k, &c, 1);
            continue;
        }
        size_t width = (c >= 0xC2 && c <= 0xDF)   ? 2
                       : (c >= 0xE0 && c <= 0xEF) ? 3
                       : (c >= 0xF0 && c <= 0xF4) ? 4
                                                  : 0;
        bool ok = width != 0;
        for (size_t j = 1; ok && j < width; j++) {
            if (i >= n) { /* the sequence is cut by the end of the input */
                if (!final) {
                    *out_len = k;
                    return start;
                }
                ok = false;
                break;
            }
            uint8_t d = b[i];
            bool cont;
            if (j == 1 && c == 0xE0)
                cont = d >= 0xA0 && d <= 0xBF;
            else if (j == 1 && c == 0xED)
                cont = d >= 0x80 && d <= 0x9F;
            else if (j == 1 && c == 0xF0)
                cont = d >= 0x90 && d <= 0xBF;
            else if (j == 1 && c == 0xF4)
                cont = d >= 0x80 && d <= 0x8F;
            else
                cont = (d & 0xC0) == 0x80;
            if (!cont) {
                ok = false;
                break;
            }
            i++;
        }
        if (ok)
            emit(out, &k, b + start, i - start);
        else
            emit(out, &k, replacement, 3);
    }
    *out_len = k;
    return n;
}

sm_code sm_tokenizer_decode(const sm_tokenizer *tok, const int32_t *ids, size_t n, char **text,
                            size_t *len, sm_err *err)
{
    if (!tok || !text || (!ids && n))
        return sm_err_set(err, SM_EINVAL, "tokenizer: decode given a NULL argument");
    *text = NULL;
    if (len)
        *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0)
            return sm_err_set(err, SM_EINVAL, "tokenizer: negative token id %d", ids[i]);
        if ((size_t)ids[i] < tok->n_ids)
            total += tok->bytes_len[ids[i]];
    }
    uint8_t *raw = malloc(total ? total : 1);
    char *out = malloc(3 * total + 1);
    if (!raw || !out) {
        free(raw);
        free(out);
        return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory decoding %zu ids", n);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if ((size_t)ids[i] >= tok->n_ids)
            continue; /* unknown ids are skipped, as in HF */
        memcpy(raw + k, tok->bytes + tok->bytes_off[ids[i]], tok->bytes_len[ids[i]]);
        k += tok->bytes_len[ids[i]];
    }
    size_t olen;
    sm_tok_utf8_lossy(raw, k, true, out, &olen);
    free(raw);
    out[olen] = 0;
    *text = out;
    if (len)
        *len = olen;
    return SM_OK;
}

struct sm_detok_stream {
    const sm_tokenizer *tok;
    uint8_t pending[4];
    size_t n_pending;
};

sm_code sm_detok_stream_new(const sm_tokenizer *tok, sm_detok_stream **out, sm_err *err)
{
    if (!tok || !out)
        return sm_err_set(err, SM_EINVAL, "detok stream: NULL argument");
    *out = calloc(1, sizeof **out);
    if (!*out)
        return sm_err_set(err, SM_ENOMEM, "detok stream: out of memory");
    (*out)->tok = tok;
    return SM_OK;
}

void sm_detok_stream_free(sm_detok_stream **s)
{
    if (!s || !*s)
        return;
    free(*s);
    *s = NULL;
}

static sm_code stream_emit(sm_detok_stream *s, const uint8_t *tb, size_t tn, bool final, char *out,
                           size_t cap, size_t *out_len, sm_err *err)
{
    uint8_t small[512];
    size_t n = s->n_pending + tn;
    uint8_t *buf = n <= sizeof small ? small : malloc(n);
    if (!buf)
        return sm_err_set(err, SM_ENOMEM, "detok stream: out of memory");
    memcpy(buf, s->pending, s->n_pending);
    if (tn)
        memcpy(buf + s->n_pending, tb, tn);
    size_t need;
    sm_tok_utf8_lossy(buf, n, final, NULL, &need);
    sm_code rc = SM_OK;
    if (!out || need + 1 > cap) {
        rc = sm_err_set(err, SM_ELIMIT, "detok stream: output needs %zu bytes, buffer has %zu",
                        need + 1, cap);
    } else {
        size_t used = sm_tok_utf8_lossy(buf, n, final, out, out_len);
        out[*out_len] = 0;
        s->n_pending = n - used; /* at most 3 bytes: an incomplete character */
        memcpy(s->pending, buf + used, s->n_pending);
    }
    if (buf != small)
        free(buf);
    return rc;
}

sm_code sm_detok_stream_push(sm_detok_stream *s, int32_t id, char *out, size_t cap, size_t *out_len,
                             sm_err *err)
{
    if (!s || !out_len)
        return sm_err_set(err, SM_EINVAL, "detok stream: NULL argument");
    *out_len = 0;
    if (id < 0)
        return sm_err_set(err, SM_EINVAL, "detok stream: negative token id %d", id);
    const sm_tokenizer *tok = s->tok;
    const uint8_t *tb = NULL;
    size_t tn = 0;
    if ((size_t)id < tok->n_ids) {
        tb = tok->bytes + tok->bytes_off[id];
        tn = tok->bytes_len[id];
    }
    return stream_emit(s, tb, tn, false, out, cap, out_len, err);
}

sm_code sm_detok_stream_flush(sm_detok_stream *s, char *out, size_t cap, size_t *out_len,
                              sm_err *err)
{
    if (!s || !out_len)
        return sm_err_set(err, SM_EINVAL, "detok stream: NULL argument");
    *out_len = 0;
    return stream_emit(s, NULL, 0, true, out, cap, out_len, err);
}
