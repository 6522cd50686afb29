/* sm_similarity_lex: the tokenizers behind sm_similarity. Code (C, C++, Java, Python): comments
 * and whitespace dropped, keywords and operators kept, every other identifier becomes one token
 * "$id", every number "$num", every string or character literal "$str". Text (proofs, math):
 * words case-folded, numbers kept, math symbols kept, LaTeX markup ($, braces, \left, \quad,
 * \begin{...} ...) and punctuation dropped. Bytes that are not text (control bytes, NUL) only
 * separate tokens. */
#include <stdlib.h>
#include <string.h>

#include "sm_similarity.h"

uint64_t sm_sim_hash_norm(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static const char *const kw_c[] = {
    "auto",   "break",  "case",    "char",   "const",    "continue", "default",  "do",
    "double", "else",   "enum",    "extern", "float",    "for",      "goto",     "if",
    "inline", "int",    "long",    "return", "short",    "signed",   "sizeof",   "static",
    "struct", "switch", "typedef", "union",  "unsigned", "void",     "volatile", "while",
    "bool",   "true",   "false",   "NULL",   "#include", "#define",  NULL};
static const char *const kw_cpp[] = {
    "class",     "public", "private", "protected", "virtual",  "template", "typename",
    "namespace", "using",  "new",     "delete",    "this",     "nullptr",  "auto",
    "const",     "try",    "catch",   "throw",     "operator", "std",      "vector",
    "string",    "cout",   "cin",     "endl",      NULL};
static const char *const kw_java[] = {
    "abstract",   "boolean",  "break",     "byte",   "case",   "catch",      "char",
    "class",      "continue", "default",   "do",     "double", "else",       "extends",
    "final",      "finally",  "float",     "for",    "if",     "implements", "import",
    "instanceof", "int",      "interface", "long",   "new",    "package",    "private",
    "protected",  "public",   "return",    "short",  "static", "super",      "switch",
    "this",       "throw",    "throws",    "try",    "void",   "while",      "true",
    "false",      "null",     "String",    "System", NULL};
static const char *const kw_py[] = {
    "and",    "as",    "assert",   "break", "class", "continue", "def",   "del",    "elif", "else",
    "except", "False", "finally",  "for",   "from",  "global",   "if",    "import", "in",   "is",
    "lambda", "None",  "nonlocal", "not",   "or",    "pass",     "raise", "return", "True", "try",
    "while",  "with",  "yield",    "print", "range", "len",      "self",  NULL};

static bool in_list(const char *const *l, const char *s, size_t n)
{
    for (; *l; l++)
        if (strlen(*l) == n && memcmp(*l, s, n) == 0)
            return true;
    return false;
}

static bool is_keyword(sm_sim_lang lang, const char *s, size_t n)
{
    switch (lang) {
    case SM_SIM_C:
        return in_list(kw_c, s, n);
    case SM_SIM_CPP:
        return in_list(kw_c, s, n) || in_list(kw_cpp, s, n);
    case SM_SIM_JAVA:
        return in_list(kw_java, s, n);
    case SM_SIM_PYTHON:
        return in_list(kw_py, s, n);
    default:
        return false;
    }
}

typedef struct lexer {
    const char *s;
    size_t len, i;
    sm_sim_token *t;
    size_t n, cap;
    bool full; /* SM_SIM_MAX_TOKENS reached */
} lexer;

static bool emit(lexer *x, uint64_t h, size_t start, size_t end)
{
    if (x->n == SM_SIM_MAX_TOKENS) {
        x->full = true;
        return true;
    }
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 256;
        sm_sim_token *t = realloc(x->t, cap * sizeof *t);
        if (!t)
            return false;
        x->t = t;
        x->cap = cap;
    }
    x->t[x->n++] = (sm_sim_token){h, (uint32_t)start, (uint32_t)end};
    return true;
}

static bool ident_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool ident_char(unsigned char c)
{
    return ident_start(c) || (c >= '0' && c <= '9');
}

static bool digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Skips to the end of a literal that opened with quote q (escapes honoured); a newline ends a
 * one-line literal, the end of the text ends any. Python triple quotes when triple. */
static void skip_string(lexer *x, char q, bool triple)
{
    while (x->i < x->len) {
        char c = x->s[x->i];
        if (c == '\\') {
            x->i += 2;
            continue;
        }
        if (triple) {
            if (c == q && x->i + 2 < x->len && x->s[x->i + 1] == q && x->s[x->i + 2] == q) {
                x->i += 3;
                return;
            }
        } else if (c == q || c == '\n') {
            x->i++;
            return;
        }
        x->i++;
    }
    if (x->i > x->len)
        x->i = x->len;
}

/* Skips a comment at x->i; true when there was one. */
static bool skip_comment(lexer *x, sm_sim_lang lang)
{
    const char *s = x->s + x->i;
    size_t left = x->len - x->i;
    bool hash = lang == SM_SIM_PYTHON && s[0] == '#';
    bool line = hash || (lang != SM_SIM_PYTHON && left >= 2 && s[0] == '/' && s[1] == '/');
    if (line) {
        const char *nl = memchr(s, '\n', left);
        x->i = nl ? (size_t)(nl - x->s) : x->len;
        return true;
    }
    if (lang != SM_SIM_PYTHON && left >= 2 && s[0] == '/' && s[1] == '*') {
        x->i += 2;
        while (x->i + 1 < x->len && !(x->s[x->i] == '*' && x->s[x->i + 1] == '/'))
            x->i++;
        x->i = x->i + 1 < x->len ? x->i + 2 : x->len;
        return true;
    }
    return false;
}

/* One code token at x->i (whitespace, comments already skipped). */
static bool code_token(lexer *x, sm_sim_lang lang)
{
    size_t st = x->i;
    unsigned char c = (unsigned char)x->s[st];
    if (c == '"' || c == '\'') {
        bool triple = lang == SM_SIM_PYTHON && st + 2 < x->len && x->s[st + 1] == (char)c &&
                      x->s[st + 2] == (char)c;
        x->i += triple ? 3 : 1;
        skip_string(x, (char)c, triple);
        return emit(x, sm_sim_hash_norm("$str", 4), st, x->i);
    }
    if (digit(c) || (c == '.' && st + 1 < x->len && digit((unsigned char)x->s[st + 1]))) {
        while (x->i < x->len && (ident_char((unsigned char)x->s[x->i]) || x->s[x->i] == '.'))
            x->i++;
        return emit(x, sm_sim_hash_norm("$num", 4), st, x->i);
    }
    if (ident_start(c) || (c == '#' && lang != SM_SIM_PYTHON)) {
        x->i++;
        while (x->i < x->len && ident_char((unsigned char)x->s[x->i]))
            x->i++;
        size_t n = x->i - st;
        if (is_keyword(lang, x->s + st, n))
            return emit(x, sm_sim_hash_norm(x->s + st, n), st, x->i);
        return emit(x, sm_sim_hash_norm(c == '#' ? "$pp" : "$id", 3), st, x->i);
    }
    x->i++;
    if (c < 0x20 || c == 0x7f)
        return true; /* control and binary bytes only separate */
    return emit(x, sm_sim_hash_norm((const char *)&x->s[st], 1), st, x->i);
}

static bool lex_code(lexer *x, sm_sim_lang lang)
{
    while (x->i < x->len && !x->full) {
        unsigned char c = (unsigned char)x->s[x->i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            x->i++;
            continue;
        }
        if (skip_comment(x, lang))
            continue;
        if (!code_token(x, lang))
            return false;
    }
    return true;
}

/* LaTeX commands that only format: dropped. */
static const char *const tex_noise[] = {
    "left",         "right",     "big",    "Big",    "bigg",     "Bigg",    "bigl",     "bigr",
    "displaystyle", "textstyle", "mathrm", "mathbf", "mathit",   "mathcal", "mathbb",   "text",
    "textbf",       "textit",    "emph",   "quad",   "qquad",    "label",   "nonumber", "limits",
    "operatorname", "boxed",     "tag",    "item",   "noindent", "hspace",  "vspace",   "newline",
    "par",          "mbox",      "hbox",   NULL};

/* A LaTeX command at x->i (a backslash). */
static bool tex_command(lexer *x)
{
    size_t st = x->i++;
    size_t name = x->i;
    while (x->i < x->len &&
           ((x->s[x->i] >= 'a' && x->s[x->i] <= 'z') || (x->s[x->i] >= 'A' && x->s[x->i] <= 'Z')))
        x->i++;
    size_t n = x->i - name;
    if (n == 0) { /* \, \; \! \\ \{ and the like */
        if (x->i < x->len)
            x->i++;
        return true;
    }
    if ((n == 5 && memcmp(x->s + name, "begin", 5) == 0) ||
        (n == 3 && memcmp(x->s + name, "end", 3) == 0)) {
        if (x->i < x->len && x->s[x->i] == '{') {
            const char *close = memchr(x->s + x->i, '}', x->len - x->i);
            x->i = close ? (size_t)(close - x->s) + 1 : x->len;
        }
        return true;
    }
    if (in_list(tex_noise, x->s + name, n))
        return true;
    return emit(x, sm_sim_hash_norm(x->s + st, x->i - st), st, x->i);
}

/* A word, case-folded (ASCII letters; other UTF-8 bytes kept as they are). */
static bool text_word(lexer *x)
{
    size_t st = x->i;
    uint64_t h = 1469598103934665603ull;
    while (x->i < x->len) {
        unsigned char c = (unsigned char)x->s[x->i];
        if (!(ident_start(c) && c != '_') && !digit(c))
            break;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        h = (h ^ c) * 1099511628211ull;
        x->i++;
    }
    return emit(x, h, st, x->i);
}

static bool lex_text(lexer *x)
{
    static const char math[] = "=+-*/^<>()[]|!";
    while (x->i < x->len && !x->full) {
        unsigned char c = (unsigned char)x->s[x->i];
        size_t st = x->i;
        bool ok = true;
        if (c == '\\') {
            ok = tex_command(x);
        } else if (digit(c)) {
            while (x->i < x->len &&
                   (digit((unsigned char)x->s[x->i]) || (x->s[x->i] == '.' && x->i + 1 < x->len &&
                                                         digit((unsigned char)x->s[x->i + 1]))))
                x->i++;
            ok = emit(x, sm_sim_hash_norm(x->s + st, x->i - st), st, x->i);
        } else if (ident_start(c) && c != '_') {
            ok = text_word(x);
        } else if (c != 0 && strchr(math, c)) {
            x->i++;
            ok = emit(x, sm_sim_hash_norm(x->s + st, 1), st, x->i);
        } else {
            x->i++; /* whitespace, punctuation, $ { } & ~ _ %, control bytes */
        }
        if (!ok)
            return false;
    }
    return true;
}

sm_code sm_sim_tokenize(const sm_sim_opts *o, const char *text, size_t len, sm_sim_token **out,
                        size_t *n, sm_err *err)
{
    *out = NULL;
    *n = 0;
    if (!text && len)
        return sm_err_set(err, SM_EINVAL, "similarity: no text");
    lexer x = {.s = text, .len = len > SM_SIM_MAX_BYTES ? SM_SIM_MAX_BYTES : len};
    bool ok = o->lang == SM_SIM_TEXT ? lex_text(&x) : lex_code(&x, o->lang);
    if (!ok) {
        free(x.t);
        return sm_err_set(err, SM_ENOMEM, "similarity: out of memory while tokenizing");
    }
    *out = x.t;
    *n = x.n;
    return SM_OK;
}

sm_code sm_sim_lang_parse(const char *kind, const char *language, sm_sim_lang *out, sm_err *err)
{
    *out = SM_SIM_TEXT;
    if (!kind || strcmp(kind, "code") != 0)
        return SM_OK;
    static const struct {
        const char *name;
        sm_sim_lang lang;
    } langs[] = {{"c", SM_SIM_C},
                 {"cpp", SM_SIM_CPP},
                 {"c++", SM_SIM_CPP},
                 {"python", SM_SIM_PYTHON},
                 {"java", SM_SIM_JAVA}};
    for (size_t i = 0; language && i < sizeof langs / sizeof langs[0]; i++) {
        if (strcmp(language, langs[i].name) == 0) {
            *out = langs[i].lang;
            return SM_OK;
        }
    }
    return sm_err_set(err, SM_EINVAL, "similarity: unknown language of code '%s'",
                      language ? language : "");
}
