/* sm_chat: the Qwen chat template of tokenizer_config.json, written in C for plain
 * conversations (system/user/assistant, no tools): "<|im_start|>role\ncontent<|im_end|>\n" per
 * message, the template's <think> handling of assistant turns after the last user turn, and
 * "<|im_start|>assistant\n" as the generation prompt. sm_chat_encode encodes the template's
 * <|im_start|>/<|im_end|> markers as special tokens and everything else as plain text, so
 * special-token text inside a message never becomes a control token. */
#include <stdlib.h>
#include <string.h>

#include "sm_tokenizer.h"

static const char IM_START[] = "<|im_start|>";
static const char IM_END[] = "<|im_end|>";

typedef struct chat_buf {
    char *s;
    size_t len, cap;
    size_t *marks; /* start offsets of the template's special markers */
    size_t n_marks, cap_marks;
    bool oom;
} chat_buf;

static void put(chat_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void puts_(chat_buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void mark(chat_buf *b, const char *marker)
{
    if (b->oom)
        return;
    if (b->n_marks == b->cap_marks) {
        size_t cap = b->cap_marks ? b->cap_marks * 2 : 16;
        size_t *p = realloc(b->marks, cap * sizeof *p);
        if (!p) {
            b->oom = true;
            return;
        }
        b->marks = p;
        b->cap_marks = cap;
    }
    b->marks[b->n_marks++] = b->len;
    puts_(b, marker);
}

static bool starts_with(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

static bool ends_with(const char *s, const char *p)
{
    size_t n = strlen(s), m = strlen(p);
    return n >= m && memcmp(s + n - m, p, m) == 0;
}

/* Python's s.strip('\n') family on the range [*a, *b). */
static void lstrip_nl(const char **a, const char *b)
{
    while (*a < b && **a == '\n')
        (*a)++;
}
static void rstrip_nl(const char *a, const char **b)
{
    while (*b > a && (*b)[-1] == '\n')
        (*b)--;
}

/* Last occurrence of needle in [a, b), or NULL. */
static const char *find_last(const char *a, const char *b, const char *needle)
{
    size_t m = strlen(needle);
    const char *found = NULL;
    for (const char *p = a; p + m <= b; p++)
        if (memcmp(p, needle, m) == 0)
            found = p;
    return found;
}

static void render_assistant(chat_buf *b, const char *content, bool after_last_query, bool last)
{
    const char *c = content, *ce = content + strlen(content);
    const char *r = "", *re = r; /* reasoning_content */
    const char *first_end = strstr(content, "</think>");
    if (first_end) {
        /* content.split('</think>')[-1].lstrip('\n') */
        c = find_last(content, ce, "</think>") + strlen("</think>");
        lstrip_nl(&c, ce);
        /* content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') */
        r = content;
        re = first_end;
        rstrip_nl(r, &re);
        const char *open = find_last(r, re, "<think>");
        if (open)
            r = open + strlen("<think>");
        lstrip_nl(&r, re);
    }
    mark(b, IM_START);
    puts_(b, "assistant\n");
    if (after_last_query && (last || re > r)) {
        /* '<think>\n' + reasoning.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') */
        lstrip_nl(&r, re);
        rstrip_nl(r, &re);
        lstrip_nl(&c, ce);
        puts_(b, "<think>\n");
        put(b, r, (size_t)(re - r));
        puts_(b, "\n</think>\n\n");
    }
    put(b, c, (size_t)(ce - c));
    mark(b, IM_END);
    puts_(b, "\n");
}

static sm_code render(const sm_chat_message *msgs, size_t n, bool add_generation_prompt,
                      chat_buf *b, sm_err *err)
{
    if (!msgs && n)
        return sm_err_set(err, SM_EINVAL, "chat: NULL messages");
    for (size_t i = 0; i < n; i++) {
        const char *role = msgs[i].role;
        if (!role || !msgs[i].content)
            return sm_err_set(err, SM_EINVAL, "chat: message %zu has no role or content", i);
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant"))
            return sm_err_set(err, SM_EINVAL, "chat: message %zu has unsupported role \"%.32s\"", i,
                              role);
    }
    /* the index of the last user message that is not a wrapped tool response */
    size_t last_query = n ? n - 1 : 0;
    for (size_t k = n; k-- > 0;) {
        const char *c = msgs[k].content;
        if (strcmp(msgs[k].role, "user") == 0 &&
            !(starts_with(c, "<tool_response>") && ends_with(c, "</tool_response>"))) {
            last_query = k;
            break;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const char *role = msgs[i].role;
        if (strcmp(role, "assistant") == 0) {
            render_assistant(b, msgs[i].content, i > last_query, i + 1 == n);
            continue;
        }
        mark(b, IM_START);
        puts_(b, role);
        puts_(b, "\n");
        puts_(b, msgs[i].content);
        mark(b, IM_END);
        puts_(b, "\n");
    }
    if (add_generation_prompt) {
        mark(b, IM_START);
        puts_(b, "assistant\n");
    }
    put(b, "", 0);
    if (b->oom)
        return sm_err_set(err, SM_ENOMEM, "chat: out of memory");
    return SM_OK;
}

sm_code sm_chat_render(const sm_chat_message *msgs, size_t n, bool add_generation_prompt,
                       char **out, size_t *len, sm_err *err)
{
    if (!out)
        return sm_err_set(err, SM_EINVAL, "chat: NULL output");
    *out = NULL;
    if (len)
        *len = 0;
    chat_buf b = {0};
    sm_code rc = render(msgs, n, add_generation_prompt, &b, err);
    free(b.marks);
    if (rc) {
        free(b.s);
        return rc;
    }
    *out = b.s;
    if (len)
        *len = b.len;
    return SM_OK;
}

static sm_code append(int32_t **ids, size_t *n, size_t *cap, const int32_t *src, size_t k,
                      sm_err *err)
{
    if (*n + k > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *n + k)
            c *= 2;
        int32_t *p = realloc(*ids, c * sizeof *p);
        if (!p)
            return sm_err_set(err, SM_ENOMEM, "chat: out of memory");
        *ids = p;
        *cap = c;
    }
    if (k)
        memcpy(*ids + *n, src, k * sizeof *src);
    *n += k;
    return SM_OK;
}

sm_code sm_chat_encode(const sm_tokenizer *tok, const sm_chat_message *msgs, size_t n,
                       bool add_generation_prompt, int32_t **ids, size_t *n_ids, sm_err *err)
{
    if (!tok || !ids || !n_ids)
        return sm_err_set(err, SM_EINVAL, "chat: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    int32_t start_id = sm_tokenizer_token_id(tok, IM_START);
    int32_t end_id = sm_tokenizer_token_id(tok, IM_END);
    if (start_id < 0 || end_id < 0)
        return sm_err_set(err, SM_EUNSUPPORTED,
                          "chat: the tokenizer has no <|im_start|>/<|im_end|> tokens");
    chat_buf b = {0};
    sm_code rc = render(msgs, n, add_generation_prompt, &b, err);
    int32_t *out = NULL;
    size_t len = 0, cap = 0, pos = 0;
    for (size_t m = 0; rc == SM_OK && m <= b.n_marks; m++) {
        size_t end = m < b.n_marks ? b.marks[m] : b.len;
        if (end > pos) {
            int32_t *part;
            size_t k;
            rc = sm_tokenizer_encode(tok, b.s + pos, end - pos, false, &part, &k, err);
            if (rc)
                break;
            rc = append(&out, &len, &cap, part, k, err);
            free(part);
            if (rc)
                break;
        }
        if (m == b.n_marks)
            break;
        bool is_start = strncmp(b.s + end, IM_START, strlen(IM_START)) == 0;
        int32_t id = is_start ? start_id : end_id;
        rc = append(&out, &len, &cap, &id, 1, err);
        pos = end + (is_start ? strlen(IM_START) : strlen(IM_END));
    }
    free(b.s);
    free(b.marks);
    if (rc) {
        free(out);
        return rc;
    }
    if (!out && !(out = malloc(sizeof *out)))
        return sm_err_set(err, SM_ENOMEM, "chat: out of memory");
    *ids = out;
    *n_ids = len;
    return SM_OK;
}
