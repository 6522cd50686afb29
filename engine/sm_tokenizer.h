/* sm_tokenizer: the Qwen byte-level BPE tokenizer, identical to Hugging Face `tokenizers`.
 * Loads tokenizer.json (+ tokenizer_config.json) from a model directory: NFC normalizer, the
 * Split pre-tokenizer regex read from the file (PCRE2, UTF+UCP, JIT), ByteLevel mapping, BPE
 * merges by rank, added/special tokens, and the ByteLevel decoder. Also the Qwen chat template
 * (written in C) and a streaming detokenizer that only emits complete UTF-8 characters.
 * A loaded sm_tokenizer is read-only apart from an internal word cache guarded by a mutex, so
 * one tokenizer may be shared by several threads. */
#ifndef SM_TOKENIZER_H
#define SM_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"

typedef struct sm_tokenizer sm_tokenizer;

/* Loads the tokenizer in dir (which holds tokenizer.json and optionally tokenizer_config.json).
 * Errors: SM_ENOTFOUND (no tokenizer.json), SM_EFORMAT (malformed JSON or fields),
 * SM_EUNSUPPORTED (a model other than BPE, a pre-tokenizer/decoder other than the byte-level
 * ones), SM_EIO, SM_ENOMEM. */
sm_code sm_tokenizer_load(const char *dir, sm_tokenizer **out, sm_err *err);

/* Like sm_tokenizer_load, with an explicit cache directory for the binary form of the
 * tokenizer (NULL = no cache). The cache file is keyed by tokenizer.json's size, mtime and a
 * hash of its bytes, so a changed tokenizer.json is never served from a stale cache.
 * sm_tokenizer_load uses $SM_TOKENIZER_CACHE if set, else $XDG_CACHE_HOME/stepmark or
 * $HOME/.cache/stepmark; set SM_TOKENIZER_CACHE to "off" to disable the cache. */
sm_code sm_tokenizer_load_cached(const char *dir, const char *cache_dir, sm_tokenizer **out,
                                 sm_err *err);

void sm_tokenizer_free(sm_tokenizer **tok);

/* special=true: added/special tokens in text are recognised; false: tokens marked special
 * (<|im_start|>, <|im_end|>, <|endoftext|>, ...) are treated as plain text, while added tokens
 * not marked special (e.g. <think>) are still recognised, exactly like Hugging Face's
 * encode_special_tokens=True (transformers' split_special_tokens).
 * text must be valid UTF-8 (else SM_EINVAL). *ids is malloc'd (non-NULL even when *n_ids is 0),
 * caller frees. */
sm_code sm_tokenizer_encode(const sm_tokenizer *tok, const char *text, size_t len, bool special,
                            int32_t **ids, size_t *n_ids, sm_err *err);

/* Decodes ids to text (special tokens included). Invalid UTF-8 byte sequences produced by the
 * ids are replaced with U+FFFD, as Hugging Face does. *text is malloc'd, NUL-terminated.
 * Ids that have no token (>= vocab size, or gaps) are skipped, as Hugging Face does; a
 * negative id gives SM_EINVAL. len may be NULL. */
sm_code sm_tokenizer_decode(const sm_tokenizer *tok, const int32_t *ids, size_t n, char **text,
                            size_t *len, sm_err *err);

/* The id of a token given by its text (vocabulary or added token), -1 if none,
 * e.g. sm_tokenizer_token_id(tok, "<|im_end|>") == 151645 for Qwen. */
int32_t sm_tokenizer_token_id(const sm_tokenizer *tok, const char *token_text);

/* The text of a token id (the raw vocabulary string, byte-level encoded for BPE tokens; the
 * content for added tokens), NULL if the id is unknown. Valid while tok lives. */
const char *sm_tokenizer_id_text(const sm_tokenizer *tok, int32_t id);

/* True if id is an added token marked special (e.g. <|im_start|>, <|endoftext|>). */
bool sm_tokenizer_is_special(const sm_tokenizer *tok, int32_t id);

/* Max id + 1, including added tokens. */
size_t sm_tokenizer_vocab_size(const sm_tokenizer *tok);

/* The id of tokenizer_config.json's eos_token (e.g. <|im_end|>), -1 if none. */
int32_t sm_tokenizer_eos_id(const sm_tokenizer *tok);

/* Streaming decoder: emits text only when UTF-8 characters are complete. push appends the
 * decoded bytes of id and writes into out (capacity cap, NUL-terminated when cap > 0) all the
 * complete characters now available; a token of at most 256 bytes never needs more than
 * SM_DETOK_STREAM_MIN_CAP. flush writes whatever remains (an incomplete tail as U+FFFD).
 * SM_ELIMIT if cap is too small (nothing is consumed then). */
#define SM_DETOK_STREAM_MIN_CAP 1024
typedef struct sm_detok_stream sm_detok_stream;
sm_code sm_detok_stream_new(const sm_tokenizer *tok, sm_detok_stream **out, sm_err *err);
sm_code sm_detok_stream_push(sm_detok_stream *s, int32_t id, char *out, size_t cap, size_t *out_len,
                             sm_err *err);
sm_code sm_detok_stream_flush(sm_detok_stream *s, char *out, size_t cap, size_t *out_len,
                              sm_err *err);
void sm_detok_stream_free(sm_detok_stream **s);

/* Chat template: the Qwen template of tokenizer_config.json for plain conversations (no tools):
 * "<|im_start|>role\ncontent<|im_end|>\n" per message, then "<|im_start|>assistant\n" when
 * add_generation_prompt. Roles are "system", "user", "assistant". No default system prompt is
 * inserted. Assistant messages after the last user message get the template's
 * "<think>\n...\n</think>\n\n" treatment exactly as the Jinja template renders it. */
typedef struct sm_chat_message {
    const char *role;
    const char *content;
} sm_chat_message;

/* Renders msgs into *out (malloc'd, NUL-terminated). SM_EINVAL for a NULL/unknown role or
 * content. */
sm_code sm_chat_render(const sm_chat_message *msgs, size_t n, bool add_generation_prompt,
                       char **out, size_t *len, sm_err *err);

/* Renders then encodes: the template's own markers as special tokens, every message content
 * as plain text (so a student's "<|im_end|>" never becomes id 151645). */
sm_code sm_chat_encode(const sm_tokenizer *tok, const sm_chat_message *msgs, size_t n,
                       bool add_generation_prompt, int32_t **ids, size_t *n_ids, sm_err *err);

#endif
