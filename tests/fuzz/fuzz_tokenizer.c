/* fuzz_tokenizer: fuzz target for the tokenizer's encoder (engine/sm_tok_*.c) with the real
 * Qwen tokenizer files: the directory in $SM_FUZZ_TOKENIZER, else the one compiled in
 * (SM_FUZZ_TOKENIZER_DIR: <build>/qwen-tokenizer, unpacked from third_party/). The first input
 * byte picks whether special tokens are recognised; the rest is the text. Valid UTF-8 must
 * encode to ids inside the vocabulary, which decode (whole and through the streaming
 * detokenizer) without error back to the NFC form of the text; invalid UTF-8 must be refused
 * with a message. */
#include <stdbool.h>
#include <string.h>

#include <utf8proc.h>

#include "fuzz_common.h"
#include "sm_tokenizer.h"

static const sm_tokenizer *fuzz_tok(void)
{
    static sm_tokenizer *tok;
    if (!tok) {
        const char *dir = getenv("SM_FUZZ_TOKENIZER");
        sm_err err = {0};
        if (!dir || !*dir)
            dir = SM_FUZZ_TOKENIZER_DIR;
        if (sm_tokenizer_load_cached(dir, NULL, &tok, &err) != SM_OK) {
            fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
            exit(1);
        }
    }
    return tok;
}

static void fuzz_detok(const sm_tokenizer *tok, const int32_t *ids, size_t n)
{
    sm_detok_stream *s = NULL;
    sm_err err = {0};
    FUZZ_CHECK(sm_detok_stream_new(tok, &s, &err) == SM_OK);
    char out[SM_DETOK_STREAM_MIN_CAP];
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(sm_detok_stream_push(s, ids[i], out, sizeof out, &len, &err) == SM_OK);
    FUZZ_CHECK(sm_detok_stream_flush(s, out, sizeof out, &len, &err) == SM_OK);
    sm_detok_stream_free(&s);
}

/* Byte-level BPE loses nothing but what NFC normalizes: decode(encode(text)) == NFC(text). */
static void fuzz_round_trip(const char *text, size_t len, const char *back, size_t back_len)
{
    if (memchr(text, '\0', len))
        return;
    char *t = strndup(text, len);
    FUZZ_CHECK(t != NULL);
    utf8proc_uint8_t *nfc = utf8proc_NFC((const utf8proc_uint8_t *)t);
    FUZZ_CHECK(nfc != NULL);
    size_t nfc_len = strlen((const char *)nfc);
    if (back_len != nfc_len || memcmp(back, nfc, nfc_len) != 0) {
        fprintf(stderr, "round trip: NFC text %zu bytes, decoded %zu bytes\n", nfc_len, back_len);
        FUZZ_CHECK(!"decode(encode(text)) == NFC(text)");
    }
    free(nfc);
    free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    const sm_tokenizer *tok = fuzz_tok();
    bool special = data[0] & 1;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int32_t *ids = NULL;
    size_t n = 0;
    sm_err err = {0};
    sm_code rc = sm_tokenizer_encode(tok, text, len, special, &ids, &n, &err);
    if (rc != SM_OK) {
        FUZZ_CHECK(err.msg[0] != '\0');
        free(ids);
        return 0;
    }
    FUZZ_CHECK(ids != NULL);
    FUZZ_CHECK(len == 0 || n > 0);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(ids[i] >= 0 && (size_t)ids[i] < sm_tokenizer_vocab_size(tok));
    char *back = NULL;
    size_t back_len = 0;
    FUZZ_CHECK(sm_tokenizer_decode(tok, ids, n, &back, &back_len, &err) == SM_OK);
    fuzz_round_trip(text, len, back, back_len);
    free(back);
    fuzz_detok(tok, ids, n);
    free(ids);
    return 0;
}
