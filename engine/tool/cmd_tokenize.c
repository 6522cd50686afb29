/* cmd_tokenize: `stepmark-engine tokenize --tokenizer DIR [--special]` reads UTF-8 text on
 * standard input (all of it, byte for byte) and prints its token ids on one line separated by
 * spaces; `stepmark-engine detokenize --tokenizer DIR` reads whitespace-separated ids and
 * writes their text. Without --special, special-token text is encoded as plain text.
 * With --lines, every '\n'-separated line of the input is a separate item (tokenize: one line
 * of ids per input line; detokenize: one line of text per line of ids). With --items, tokenize
 * takes NUL-separated items (one line of ids each) and detokenize writes each line's text
 * followed by a NUL byte. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "sm_args.h"
#include "sm_tokenizer.h"

static char *read_stdin(size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    for (;;) {
        if (n == cap) {
            char *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                return NULL;
            }
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(stdin)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static const sm_arg_opt tokenize_opts[] = {
    {"tokenizer", 0, SM_ARG_VALUE, "DIR", "the tokenizer's folder", true},
    {"special", 0, SM_ARG_FLAG, NULL, "read special-token text as special tokens", false},
    {"lines", 0, SM_ARG_FLAG, NULL, "one item per line", false},
    {"items", 0, SM_ARG_FLAG, NULL, "NUL-separated items", false},
    {0}};
static const sm_args_spec tokenize_spec = {
    "stepmark-engine tokenize",
    NULL,
    "UTF-8 text on standard input -> token ids on one line (per item).",
    tokenize_opts,
    NULL,
    0,
    0};
/* detokenize's table: --tokenizer and the separators, without --special */
static const sm_arg_opt detokenize_opts[] = {
    {"tokenizer", 0, SM_ARG_VALUE, "DIR", "the tokenizer's folder", true},
    {"lines", 0, SM_ARG_FLAG, NULL, "one line of text per line of ids", false},
    {"items", 0, SM_ARG_FLAG, NULL, "write a NUL byte after each line's text", false},
    {0}};
static const sm_args_spec detokenize_spec = {
    "stepmark-engine detokenize",
    NULL,
    "Whitespace-separated token ids on standard input -> their text.",
    detokenize_opts,
    NULL,
    0,
    0};

/* Parses --tokenizer DIR and, if allowed, --special. Returns SM_ARGS_CONTINUE or the exit
 * status. */
static int parse_args(int argc, char **argv, bool allow_special, const char **dir, bool *special,
                      int *sep)
{
    sm_args a;
    int rc = sm_args_parse(allow_special ? &tokenize_spec : &detokenize_spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    *dir = sm_args_get(&a, "tokenizer"); /* points into argv */
    *special = sm_args_has(&a, "special");
    *sep = -1;                          /* -1: the whole input is one item */
    for (int i = 0; i < a.nseen; i++) { /* the last of --lines/--items wins */
        if (!strcmp(a.seen[i].opt->name, "lines"))
            *sep = '\n';
        if (!strcmp(a.seen[i].opt->name, "items"))
            *sep = '\0';
    }
    sm_args_free(&a);
    return SM_ARGS_CONTINUE;
}

static sm_tokenizer *load(const char *dir, const char *cmd)
{
    sm_err err = {0};
    sm_tokenizer *tok = NULL;
    if (sm_tokenizer_load(dir, &tok, &err)) {
        fprintf(stderr, "%s: %s (%s)\n", cmd, err.msg, sm_code_name(err.code));
        return NULL;
    }
    return tok;
}

/* Encodes text[0..len) and prints its ids followed by a newline. */
static int print_ids(const sm_tokenizer *tok, const char *text, size_t len, bool special)
{
    sm_err err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (sm_tokenizer_encode(tok, text, len, special, &ids, &n, &err)) {
        fprintf(stderr, "tokenize: %s (%s)\n", err.msg, sm_code_name(err.code));
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        printf(i ? " %" PRId32 : "%" PRId32, ids[i]);
    printf("\n");
    free(ids);
    return 0;
}

int sm_cmd_tokenize(int argc, char **argv)
{
    const char *dir;
    bool special;
    int sep;
    int rc = parse_args(argc, argv, true, &dir, &special, &sep);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    rc = 0;
    size_t len;
    char *text = read_stdin(&len);
    if (!text) {
        fprintf(stderr, "tokenize: cannot read standard input\n");
        return 1;
    }
    sm_tokenizer *tok = load(dir, "tokenize");
    if (!tok) {
        free(text);
        return 1;
    }
    if (sep < 0) {
        rc = print_ids(tok, text, len, special);
    } else {
        size_t start = 0;
        for (size_t i = 0; i <= len && rc == 0; i++) {
            if (i < len && text[i] != (char)sep)
                continue;
            rc = print_ids(tok, text + start, i - start, special);
            start = i + 1;
        }
    }
    if (fflush(stdout) != 0)
        rc = 1;
    free(text);
    sm_tokenizer_free(&tok);
    return rc;
}

/* Parses whitespace-separated ids in [p, end) into *ids (malloc'd, freed by the caller). */
static int parse_ids(const char *p, const char *end, int32_t **ids, size_t *n)
{
    size_t cap = 64;
    *n = 0;
    *ids = malloc(cap * sizeof **ids);
    if (!*ids)
        return 1;
    for (;;) {
        while (p < end && strchr(" \t\r\n", *p))
            p++;
        if (p >= end)
            return 0;
        char *q;
        errno = 0;
        long v = strtol(p, &q, 10);
        if (q == p || errno || v < 0 || v > INT32_MAX || q > end ||
            (q < end && !strchr(" \t\r\n", *q))) {
            fprintf(stderr, "detokenize: \"%.20s\" is not a token id\n", p);
            return 2;
        }
        if (*n == cap) {
            int32_t *g = realloc(*ids, cap * 2 * sizeof **ids);
            if (!g)
                return 1;
            *ids = g;
            cap *= 2;
        }
        (*ids)[(*n)++] = (int32_t)v;
        p = q;
    }
}

/* Decodes the ids in [p, end) and writes the text, followed by the byte term unless it is -1. */
static int print_text(const sm_tokenizer *tok, const char *p, const char *end, int term)
{
    int32_t *ids;
    size_t n;
    int rc = parse_ids(p, end, &ids, &n);
    if (rc == 0) {
        sm_err err = {0};
        char *out = NULL;
        size_t olen = 0;
        if (sm_tokenizer_decode(tok, ids, n, &out, &olen, &err)) {
            fprintf(stderr, "detokenize: %s (%s)\n", err.msg, sm_code_name(err.code));
            rc = 1;
        } else if (fwrite(out, 1, olen, stdout) != olen || (term >= 0 && putchar(term) == EOF)) {
            rc = 1;
        }
        free(out);
    }
    free(ids);
    return rc;
}

int sm_cmd_detokenize(int argc, char **argv)
{
    const char *dir;
    bool special;
    int sep;
    int rc = parse_args(argc, argv, false, &dir, &special, &sep);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    rc = 0;
    size_t len;
    char *text = read_stdin(&len);
    if (!text) {
        fprintf(stderr, "detokenize: cannot read standard input\n");
        return 1;
    }
    sm_tokenizer *tok = load(dir, "detokenize");
    if (!tok) {
        free(text);
        return 1;
    }
    if (sep < 0) {
        rc = print_text(tok, text, text + len, -1);
    } else {
        size_t start = 0;
        for (size_t i = 0; i < len && rc == 0; i++) {
            if (text[i] != '\n')
                continue;
            rc = print_text(tok, text + start, text + i, sep);
            start = i + 1;
        }
        if (rc == 0 && start < len)
            rc = print_text(tok, text + start, text + len, sep);
    }
    if (fflush(stdout) != 0)
        rc = 1;
    sm_tokenizer_free(&tok);
    free(text);
    return rc;
}
