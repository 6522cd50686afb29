/* cmd_tokenize: `stepmark-engine tokenize --tokenizer DIR [--special]` reads UTF-8 text on
 * standard input (all of it, byte for byte) and prints its token ids on one line separated by
 * spaces; `stepmark-engine detokenize --tokenizer DIR` reads whitespace-separated ids and
 * writes their text. Without --special, special-token text is encoded as plain text. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "sm_tokenizer.h"

static char *read_stdin(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
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
        if (got == 0) break;
    }
    if (ferror(stdin)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* Parses --tokenizer DIR and, if allowed, --special. Returns 0 or the exit status 2. */
static int parse_args(int argc, char **argv, bool allow_special, const char **dir, bool *special) {
    *dir = NULL;
    *special = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) {
            *dir = argv[++i];
        } else if (allow_special && strcmp(argv[i], "--special") == 0) {
            *special = true;
        } else {
            fprintf(stderr, "%s: unknown argument \"%s\"\n", argv[0], argv[i]);
            return 2;
        }
    }
    if (!*dir) {
        fprintf(stderr, "usage: stepmark-engine %s --tokenizer DIR%s\n", argv[0],
                allow_special ? " [--special]" : "");
        return 2;
    }
    return 0;
}

static sm_tokenizer *load(const char *dir, const char *cmd) {
    sm_err err = {0};
    sm_tokenizer *tok = NULL;
    if (sm_tokenizer_load(dir, &tok, &err)) {
        fprintf(stderr, "%s: %s (%s)\n", cmd, err.msg, sm_code_name(err.code));
        return NULL;
    }
    return tok;
}

int sm_cmd_tokenize(int argc, char **argv) {
    const char *dir;
    bool special;
    int rc = parse_args(argc, argv, true, &dir, &special);
    if (rc) return rc;
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
    sm_err err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (sm_tokenizer_encode(tok, text, len, special, &ids, &n, &err)) {
        fprintf(stderr, "tokenize: %s (%s)\n", err.msg, sm_code_name(err.code));
        rc = 1;
    } else {
        for (size_t i = 0; i < n; i++) printf(i ? " %" PRId32 : "%" PRId32, ids[i]);
        printf("\n");
        if (fflush(stdout) != 0) rc = 1;
    }
    free(ids);
    free(text);
    sm_tokenizer_free(&tok);
    return rc;
}

int sm_cmd_detokenize(int argc, char **argv) {
    const char *dir;
    bool special;
    int rc = parse_args(argc, argv, false, &dir, &special);
    if (rc) return rc;
    size_t len;
    char *text = read_stdin(&len);
    if (!text) {
        fprintf(stderr, "detokenize: cannot read standard input\n");
        return 1;
    }
    size_t n = 0, cap = 64;
    int32_t *ids = malloc(cap * sizeof *ids);
    char *p = text, *end = text + len;
    while (ids && rc == 0) {
        while (p < end && strchr(" \t\r\n", *p)) p++;
        if (p >= end) break;
        char *q;
        errno = 0;
        long v = strtol(p, &q, 10);
        if (q == p || errno || v < 0 || v > INT32_MAX || (q < end && !strchr(" \t\r\n", *q))) {
            fprintf(stderr, "detokenize: \"%.20s\" is not a token id\n", p);
            rc = 2;
            break;
        }
        if (n == cap) {
            int32_t *g = realloc(ids, cap * 2 * sizeof *ids);
            if (!g) break;
            ids = g;
            cap *= 2;
        }
        ids[n++] = (int32_t)v;
        p = q;
    }
    if (!ids || (rc == 0 && p < end)) {
        fprintf(stderr, "detokenize: out of memory\n");
        rc = 1;
    }
    sm_tokenizer *tok = rc ? NULL : load(dir, "detokenize");
    if (!rc && !tok) rc = 1;
    if (tok) {
        sm_err err = {0};
        char *out = NULL;
        size_t olen = 0;
        if (sm_tokenizer_decode(tok, ids, n, &out, &olen, &err)) {
            fprintf(stderr, "detokenize: %s (%s)\n", err.msg, sm_code_name(err.code));
            rc = 1;
        } else if (fwrite(out, 1, olen, stdout) != olen || fflush(stdout) != 0) {
            rc = 1;
        }
        free(out);
    }
    sm_tokenizer_free(&tok);
    free(ids);
    free(text);
    return rc;
}
