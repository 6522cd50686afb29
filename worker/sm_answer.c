/* sm_answer: final-answer extraction (\boxed{}, "Final Answer:", the last expression) and
 * comparison by value with an answer key: integers of any size, fractions, decimals with a
 * relative tolerance, percents, simple expressions (sm_answer_eval.c), sets (order-free) and
 * tuples (ordered), after removing LaTeX noise. Every step is bounded in time and memory. */
#include "sm_answer.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sm_answer_eval.h"

#define REL_TOL 1e-6
#define ABS_TOL 1e-12
#define MAX_ELEMS 256
#define MAX_NEST 8
#define BOXED_TRIES 8
/* set braces from \{ \} are kept apart from grouping braces during normalization */
#define SET_OPEN '\x01'
#define SET_CLOSE '\x02'

/* ---- small string helpers --------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 64);
        while (cap < b->n + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_putc(sbuf *b, char c)
{
    sb_putn(b, &c, 1);
}

static char *dup_range(const char *s, size_t n)
{
    char *o = malloc(n + 1);
    if (!o)
        return NULL;
    memcpy(o, s, n);
    o[n] = '\0';
    return o;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Trims spaces, $ signs, markdown emphasis and trailing periods around s[0..n). */
static void trim_answer(const char **s, size_t *n)
{
    const char *a = *s;
    size_t len = *n;
    for (int round = 0; round < 8; round++) {
        size_t before = len;
        while (len && (is_space(*a) || *a == '$' || *a == '*'))
            a++, len--;
        while (len && (is_space(a[len - 1]) || a[len - 1] == '$' || a[len - 1] == '*' ||
                       a[len - 1] == '.' || a[len - 1] == ';'))
            len--;
        if (len == before)
            break;
    }
    *s = a;
    *n = len;
}

/* Case-insensitive search for the last occurrence of w in s[0..n); NULL when absent. */
static const char *last_ci(const char *s, size_t n, const char *w)
{
    size_t m = strlen(w);
    if (m > n)
        return NULL;
    for (size_t i = n - m + 1; i-- > 0;)
        if (strncasecmp(s + i, w, m) == 0)
            return s + i;
    return NULL;
}

/* ---- extraction --------------------------------------------------------------------------- */

/* The content of the brace group starting at s[i] == '{' (balanced, \{ \} skipped);
 * returns false when unbalanced. */
static bool brace_group(const char *s, size_t n, size_t i, size_t *start, size_t *len)
{
    if (i >= n || s[i] != '{')
        return false;
    int depth = 0;
    for (size_t j = i; j < n; j++) {
        if (s[j] == '\\' && j + 1 < n && (s[j + 1] == '{' || s[j + 1] == '}')) {
            j++;
            continue;
        }
        if (s[j] == '{')
            depth++;
        else if (s[j] == '}' && --depth == 0) {
            *start = i + 1;
            *len = j - i - 1;
            return true;
        }
    }
    return false;
}

static bool extract_boxed(const char *s, size_t n, char **out)
{
    static const char *const cmds[] = {"\\boxed", "\\fbox"};
    size_t limit = n;
    for (int tries = 0; tries < BOXED_TRIES; tries++) {
        const char *best = NULL;
        size_t best_len = 0;
        for (int c = 0; c < 2; c++) {
            const char *hit = last_ci(s, limit, cmds[c]);
            if (hit && (!best || hit > best))
                best = hit, best_len = strlen(cmds[c]);
        }
        if (!best)
            return false;
        size_t i = (size_t)(best - s) + best_len;
        while (i < n && is_space(s[i]))
            i++;
        size_t st, len;
        if (brace_group(s, n, i, &st, &len)) {
            const char *a = s + st;
            trim_answer(&a, &len);
            *out = dup_range(a, len);
            return true;
        }
        if (i < n && s[i] != '{') {
            /* \boxed 5: the next token */
            size_t j = i;
            while (j < n && !is_space(s[j]) && s[j] != '$')
                j++;
            if (j > i) {
                const char *a = s + i;
                size_t len2 = j - i;
                trim_answer(&a, &len2);
                *out = dup_range(a, len2);
                return true;
            }
        }
        limit = (size_t)(best - s);
    }
    return false;
}

/* The rest of the line after the last marker (or the next non-empty line). */
static bool extract_after(const char *s, size_t n, const char *marker, char **out)
{
    const char *hit = last_ci(s, n, marker);
    if (!hit)
        return false;
    const char *p = hit + strlen(marker);
    const char *end = s + n;
    /* skip the "**" / ":" / "is" glue around the marker */
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '*' || *p == ':' || *p == '-'))
            p++;
        if (end - p >= 3 && strncasecmp(p, "is ", 3) == 0) {
            p += 3;
            continue;
        }
        break;
    }
    for (int lines = 0; lines < 3 && p < end; lines++) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e)
            e = end;
        const char *a = p;
        size_t len = (size_t)(e - p);
        trim_answer(&a, &len);
        if (len > 0) {
            /* an answer line may still hold a \boxed{} */
            if (extract_boxed(a, len, out))
                return true;
            /* "$12$. I hope it is correct.": the first $...$ of the line */
            const char *d1 = memchr(p, '$', (size_t)(e - p));
            const char *d2 = d1 ? memchr(d1 + 1, '$', (size_t)(e - d1 - 1)) : NULL;
            while (d2 && d2 + 1 < e && d2[1] == '$' && d2 == d1 + 1) /* $$...$$ */
                d1 = d2, d2 = memchr(d1 + 1, '$', (size_t)(e - d1 - 1));
            if (d1 && d2 && d2 > d1 + 1) {
                const char *m = d1 + 1;
                size_t ml = (size_t)(d2 - m);
                trim_answer(&m, &ml);
                if (ml > 0) {
                    *out = dup_range(m, ml);
                    return true;
                }
            }
            /* "12. I hope it is correct.": stop at the end of the first sentence */
            for (size_t k = 0; k + 2 < len; k++)
                if (a[k] == '.' && a[k + 1] == ' ' && isupper((unsigned char)a[k + 2])) {
                    len = k;
                    trim_answer(&a, &len);
                    break;
                }
            *out = dup_range(a, len);
            return true;
        }
        p = e + 1;
    }
    return false;
}

/* The right-hand side of the last '=' (or \approx) in s[0..n), else all of it. */
static void rhs(const char **s, size_t *n)
{
    const char *a = *s;
    size_t len = *n;
    for (size_t i = len; i-- > 0;) {
        bool eq = a[i] == '=' && !(i + 1 < len && a[i + 1] == '=') &&
                  !(i > 0 && strchr("<>!=", a[i - 1]));
        bool approx = i + 7 <= len && strncmp(a + i, "\\approx", 7) == 0;
        if (eq || approx) {
            size_t skip = eq ? 1 : 7;
            *s = a + i + skip;
            *n = len - i - skip;
            return;
        }
    }
}

static bool extract_last_math(const char *s, size_t n, char **out)
{
    /* the last $...$, \(...\) or \[...\] */
    const char *best = NULL;
    size_t best_len = 0;
    for (size_t i = n; i-- > 0 && !best;) {
        if (s[i] == '$' && (i == 0 || s[i - 1] != '\\')) {
            size_t close = i;
            size_t j = close;
            while (j > 0 && s[j - 1] == '$')
                j--; /* $$ */
            size_t k = j;
            while (k > 0 && !(s[k - 1] == '$' && (k < 2 || s[k - 2] != '\\')))
                k--;
            if (k == 0)
                break;
            best = s + k;
            best_len = j - k;
            if (best_len == 0)
                best = NULL;
            break;
        }
        if (s[i] == ')' && i > 0 && s[i - 1] == '\\') {
            const char *o = last_ci(s, i, "\\(");
            if (o)
                best = o + 2, best_len = (size_t)(s + i - 1 - best);
            break;
        }
        if (s[i] == ']' && i > 0 && s[i - 1] == '\\') {
            const char *o = last_ci(s, i, "\\[");
            if (o)
                best = o + 2, best_len = (size_t)(s + i - 1 - best);
            break;
        }
        if (s[i] == '\n' && i + 1 < n) {
            /* only look inside the last non-empty line for inline math */
            size_t k = i + 1;
            while (k < n && is_space(s[k]))
                k++;
            if (k < n)
                break;
        }
    }
    const char *a;
    size_t len;
    if (best) {
        a = best;
        len = best_len;
    } else {
        /* the last non-empty line */
        size_t e = n;
        while (e > 0 && is_space(s[e - 1]))
            e--;
        size_t b = e;
        while (b > 0 && s[b - 1] != '\n')
            b--;
        a = s + b;
        len = e - b;
        if (len == 0)
            return false;
        bool has_eq = memchr(a, '=', len) != NULL;
        bool has_digit = false;
        for (size_t i = 0; i < len && !has_digit; i++)
            has_digit = isdigit((unsigned char)a[i]);
        if (!has_eq && (!has_digit || len > 200))
            return false;
    }
    rhs(&a, &len);
    trim_answer(&a, &len);
    if (len == 0)
        return false;
    *out = dup_range(a, len);
    return true;
}

sm_code sm_answer_extract(const char *text, char **answer, sm_err *err)
{
    if (answer)
        *answer = NULL;
    if (!text || !answer)
        return sm_err_set(err, SM_EINVAL, "answer: NULL argument");
    size_t n = strlen(text);
    if (n > SM_ANSWER_MAX_TEXT) {
        text += n - SM_ANSWER_MAX_TEXT;
        n = SM_ANSWER_MAX_TEXT;
    }
    char *out = NULL;
    if (extract_boxed(text, n, &out) || extract_after(text, n, "final answer", &out) ||
        extract_after(text, n, "answer:", &out) || extract_after(text, n, "the answer is", &out) ||
        extract_last_math(text, n, &out)) {
        if (!out)
            return sm_err_set(err, SM_ENOMEM, "answer: out of memory");
        if (out[0] == '\0') {
            free(out);
            out = NULL;
        }
    }
    *answer = out;
    return SM_OK;
}

/* ---- normalization ---------------------------------------------------------------------- */

typedef struct rep {
    const char *from, *to;
} rep;

/* Replacements applied left to right at each position (longest first where prefixes clash). */
static const rep reps[] = {
    {"\\displaystyle", ""},
    {"\\left", ""},
    {"\\right", ""},
    {"\\bigl", ""},
    {"\\bigr", ""},
    {"\\Bigl", ""},
    {"\\Bigr", ""},
    {"\\big", ""},
    {"\\Big", ""},
    {"\\!", ""},
    {"\\,", ""},
    {"\\;", ""},
    {"\\:", ""},
    {"\\quad", " "},
    {"\\qquad", " "},
    {"\\ ", " "},
    {"{,}", ""},
    {"\\dfrac", "\\frac"},
    {"\\tfrac", "\\frac"},
    {"\\cdot", "*"},
    {"\\times", "*"},
    {"\\div", "/"},
    {"\\%", "%"},
    {"^{\\circ}", ""},
    {"^\\circ", ""},
    {"\\circ", ""},
    {"\\degree", ""},
    {"\\{", "\x01"},
    {"\\}", "\x02"},
    {"\\lbrace", "\x01"},
    {"\\rbrace", "\x02"},
    {"\\lparen", "("},
    {"\\rparen", ")"},
    {"\\langle", "("},
    {"\\rangle", ")"},
    {"\\$", ""},
    {"\xc2\xb0", ""},         /* ° */
    {"\xe2\x88\x92", "-"},    /* − */
    {"\xc3\x97", "*"},        /* × */
    {"\xc2\xb7", "*"},        /* · */
    {"\xc3\xb7", "/"},        /* ÷ */
    {"\xcf\x80", "\\pi"},     /* π */
    {"\xe2\x88\x9a", "sqrt"}, /* √ */
    {"\xe2\x80\xaf", ""},     /* narrow no-break space (thousands) */
    {"\xc2\xa0", " "},        /* no-break space */
    {"$", ""},
    {"~", " "},
    {"\\(", ""},
    {"\\)", ""},
    {"\\[", ""},
    {"\\]", ""},
    {"**", ""},
};

/* Text commands whose argument is a unit or a remark: dropped (kept when alone). */
static const char *const text_cmds[] = {"\\text", "\\textbf", "\\textrm",       "\\mathrm",
                                        "\\mbox", "\\textit", "\\operatorname", NULL};
/* Commands whose argument is kept (formatting only). */
static const char *const keep_cmds[] = {"\\mathbf", "\\boldsymbol", "\\mathit",
                                        "\\bm",     "\\boxed",      NULL};

static bool match_cmd(const char *s, const char *cmd)
{
    size_t n = strlen(cmd);
    return strncmp(s, cmd, n) == 0 && !isalpha((unsigned char)s[n]);
}

/* Normalizes one answer into a new string (NULL on OOM). only_text is set when the answer was
 * nothing but \text{...} (then its content is kept). */
static char *normalize(const char *in)
{
    size_t n = strlen(in);
    sbuf b = {0};
    sb_putn(&b, "", 0);
    for (size_t i = 0; i < n;) {
        bool done = false;
        for (int t = 0; text_cmds[t] && !done; t++) {
            if (!match_cmd(in + i, text_cmds[t]))
                continue;
            size_t j = i + strlen(text_cmds[t]);
            while (j < n && in[j] == ' ')
                j++;
            size_t st, len;
            if (brace_group(in, n, j, &st, &len)) {
                /* a text-only answer keeps its words; a unit after a value goes */
                bool alone = true;
                for (size_t k = 0; k < i && alone; k++)
                    alone = is_space(in[k]) || in[k] == '$';
                for (size_t k = st + len + 1; k < n && alone; k++)
                    alone = is_space(in[k]) || in[k] == '$' || in[k] == '.';
                if (alone)
                    sb_putn(&b, in + st, len);
                else
                    sb_putc(&b, ' ');
                i = st + len + 1;
                done = true;
            }
        }
        for (int t = 0; keep_cmds[t] && !done; t++) {
            if (!match_cmd(in + i, keep_cmds[t]))
                continue;
            size_t j = i + strlen(keep_cmds[t]);
            while (j < n && in[j] == ' ')
                j++;
            size_t st, len;
            if (brace_group(in, n, j, &st, &len)) {
                /* keep the group as a group: {content} */
                sb_putc(&b, '{');
                sb_putn(&b, in + st, len);
                sb_putc(&b, '}');
                i = st + len + 1;
                done = true;
            }
        }
        for (size_t r = 0; r < sizeof reps / sizeof reps[0] && !done; r++) {
            size_t m = strlen(reps[r].from);
            if (strncmp(in + i, reps[r].from, m) != 0)
                continue;
            /* \left( vs \leftarrow: a letter command must end at a non-letter */
            if (reps[r].from[0] == '\\' && isalpha((unsigned char)reps[r].from[m - 1]) &&
                isalpha((unsigned char)in[i + m]))
                continue;
            sb_putn(&b, reps[r].to, strlen(reps[r].to));
            i += m;
            done = true;
        }
        if (!done)
            sb_putc(&b, in[i++]);
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    /* trim and drop a leading "x =" (a single variable name) */
    const char *a = b.p;
    size_t len = b.n;
    trim_answer(&a, &len);
    size_t k = 0;
    while (k < len && a[k] == ' ')
        k++;
    size_t v = k;
    if (v < len && isalpha((unsigned char)a[v])) {
        v++;
        if (v < len && a[v] == '_') {
            v++;
            if (v < len && a[v] == '{') {
                while (v < len && a[v] != '}')
                    v++;
                if (v < len)
                    v++;
            } else if (v < len && isalnum((unsigned char)a[v])) {
                v++;
            }
        }
        while (v < len && a[v] == ' ')
            v++;
        if (v < len && a[v] == '=' && (v + 1 >= len || a[v + 1] != '=') &&
            memchr(a + v + 1, '=', len - v - 1) == NULL) {
            a += v + 1;
            len -= v + 1;
            trim_answer(&a, &len);
        } else if (v + 3 <= len && strncmp(a + v, "\\in", 3) == 0 &&
                   !isalpha((unsigned char)a[v + 3])) {
            a += v + 3; /* x \in \{1, 2\} */
            len -= v + 3;
            trim_answer(&a, &len);
        }
    }
    char *o = dup_range(a, len);
    free(b.p);
    return o;
}

/* A copy without spaces or grouping braces, lower-cased: the string comparison. */
static char *canonical(const char *s)
{
    size_t n = strlen(s);
    char *o = malloc(n + 1);
    if (!o)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (is_space(c) || c == '{' || c == '}')
            continue;
        if (c == SET_OPEN)
            c = '{';
        else if (c == SET_CLOSE)
            c = '}';
        o[j++] = (char)tolower((unsigned char)c);
    }
    o[j] = '\0';
    return o;
}

/* ---- structure: sets, tuples, lists ------------------------------------------------------- */

typedef enum shape { SHAPE_SCALAR, SHAPE_SET, SHAPE_TUPLE, SHAPE_LIST } shape;

static bool is_open(char c)
{
    return c == '(' || c == '[' || c == '{' || c == SET_OPEN;
}
static bool is_close(char c)
{
    return c == ')' || c == ']' || c == '}' || c == SET_CLOSE;
}

/* Whether s[0..n) is one bracket pair around everything (the first opener closes at the end). */
static bool wrapped(const char *s, size_t n)
{
    if (n < 2 || !is_open(s[0]) || !is_close(s[n - 1]))
        return false;
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_open(s[i]))
            depth++;
        else if (is_close(s[i]) && --depth == 0)
            return i == n - 1;
        if (depth > 4096)
            return false;
    }
    return false;
}

/* Splits s[0..n) at top-level commas into at most MAX_ELEMS pieces; returns the count, or -1
 * when unbalanced or too many. */
static int split_top(const char *s, size_t n, size_t *st, size_t *len)
{
    int count = 0, depth = 0;
    size_t b = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && is_open(s[i]))
            depth++;
        else if (i < n && is_close(s[i])) {
            if (--depth < 0)
                return -1;
        } else if (i == n || (s[i] == ',' && depth == 0)) {
            if (count >= MAX_ELEMS)
                return -1;
            st[count] = b;
            len[count] = i - b;
            count++;
            b = i + 1;
        }
    }
    return depth == 0 ? count : -1;
}

/* "1,000" / "12,345,678.5": a number with thousands separators (the commas are removed). */
static bool thousands(const char *s, size_t n, char *out, size_t outlen)
{
    size_t i = 0, j = 0;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        out[j++] = s[i++];
    size_t lead = 0;
    while (i < n && isdigit((unsigned char)s[i]) && lead < 4)
        out[j++] = s[i++], lead++;
    if (lead == 0 || lead > 3 || i >= n || s[i] != ',')
        return false;
    int groups = 0;
    while (i < n && s[i] == ',') {
        if (i + 3 >= n + 0 && i + 3 > n)
            return false;
        if (i + 4 > n)
            return false;
        for (int k = 1; k <= 3; k++)
            if (!isdigit((unsigned char)s[i + (size_t)k]))
                return false;
        if (j + 3 >= outlen)
            return false;
        memcpy(out + j, s + i + 1, 3);
        j += 3;
        i += 4;
        groups++;
    }
    if (i < n && s[i] == '.') {
        out[j++] = s[i++];
        while (i < n && isdigit((unsigned char)s[i]) && j + 1 < outlen)
            out[j++] = s[i++];
    }
    if (i < n && s[i] == '%' && j + 1 < outlen)
        out[j++] = s[i++];
    if (i != n || groups == 0)
        return false;
    out[j] = '\0';
    return true;
}

/* ---- comparison ------------------------------------------------------------------------- */

typedef struct cmp_result {
    bool equal;
    const char *method;
    char detail[400];
} cmp_result;

static bool is_integer_text(const char *s)
{
    size_t i = 0;
    if (s[i] == '-' || s[i] == '+')
        i++;
    if (!isdigit((unsigned char)s[i]))
        return false;
    for (; s[i]; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* Compares two integers written in decimal, any length. */
static bool int_text_equal(const char *a, const char *b)
{
    bool na = a[0] == '-', nb = b[0] == '-';
    if (a[0] == '-' || a[0] == '+')
        a++;
    if (b[0] == '-' || b[0] == '+')
        b++;
    while (a[0] == '0' && a[1])
        a++;
    while (b[0] == '0' && b[1])
        b++;
    bool za = strcmp(a, "0") == 0, zb = strcmp(b, "0") == 0;
    if (za && zb)
        return true;
    return na == nb && strcmp(a, b) == 0;
}

static bool close_enough(double a, double b)
{
    double diff = fabs(a - b), scale = fmax(fabs(a), fabs(b));
    return diff <= ABS_TOL || diff <= REL_TOL * scale;
}

static bool vals_equal(const ans_val *a, const ans_val *b, bool *exactly)
{
    *exactly = a->exact && b->exact && !a->has_decimal && !b->has_decimal;
    if (*exactly)
        return a->n == b->n && a->d == b->d;
    if (a->exact && b->exact && a->n == b->n && a->d == b->d)
        return *exactly = true;
    return close_enough(a->v, b->v);
}

/* Drops trailing unit words ("5 cm", "12 apples"): words of two or more letters that are not
 * a known name, after a space or a digit. */
static void strip_units(char *s)
{
    for (int round = 0; round < 3; round++) {
        size_t n = strlen(s);
        while (n && is_space(s[n - 1]))
            n--;
        size_t e = n;
        while (n && isalpha((unsigned char)s[n - 1]))
            n--;
        size_t w = e - n;
        if (w < 2 || n == 0 || s[n - 1] == '\\')
            return;
        if (!(is_space(s[n - 1]) || isdigit((unsigned char)s[n - 1]) || s[n - 1] == '}'))
            return;
        if ((w == 2 && strncmp(s + n, "pi", 2) == 0) || (w == 4 && strncmp(s + n, "sqrt", 4) == 0))
            return;
        s[n] = '\0';
        while (n && is_space(s[n - 1]))
            s[--n] = '\0';
    }
}

static const char *scalar_method(const ans_val *a, const ans_val *b)
{
    if (a->has_ops || b->has_ops)
        return "expression";
    if (a->has_fraction || b->has_fraction)
        return "fraction";
    if (a->has_decimal || b->has_decimal)
        return "decimal";
    return "integer";
}

static void fmt_val(char *buf, size_t len, const ans_val *v)
{
    if (v->exact && v->d == 1)
        snprintf(buf, len, "%lld", (long long)v->n);
    else if (v->exact)
        snprintf(buf, len, "%lld/%lld", (long long)v->n, (long long)v->d);
    else
        snprintf(buf, len, "%.10g", v->v);
}

static void compare_any(const char *a, const char *b, int depth, cmp_result *r);

/* Evaluates an element; a trailing % divides by 100 (and is reported). */
static bool eval_scalar(const char *s, ans_val *v, bool *percent, char *why, int why_len)
{
    size_t n = strlen(s);
    if (n > SM_ANSWER_MAX_ANSWER) {
        snprintf(why, (size_t)why_len, "answer too long to evaluate");
        return false;
    }
    /* three work buffers on the heap: this runs inside nested set/tuple comparisons */
    char *mem = malloc(3 * (SM_ANSWER_MAX_ANSWER + 1));
    if (!mem) {
        snprintf(why, (size_t)why_len, "out of memory");
        return false;
    }
    char *buf = mem, *th = mem + SM_ANSWER_MAX_ANSWER + 1, *tmp = th + SM_ANSWER_MAX_ANSWER + 1;
    memcpy(buf, s, n + 1);
    while (n && is_space(buf[n - 1]))
        buf[--n] = '\0';
    *percent = n && buf[n - 1] == '%';
    if (*percent)
        buf[--n] = '\0';
    const char *src = buf;
    if (thousands(buf, n, th, SM_ANSWER_MAX_ANSWER + 1))
        src = th;
    bool ok = ans_eval(src, v, why, why_len);
    if (!ok) {
        /* units: "5 cm" */
        snprintf(tmp, SM_ANSWER_MAX_ANSWER + 1, "%s", src);
        strip_units(tmp);
        char why2[128];
        ok = strcmp(tmp, src) != 0 && tmp[0] && ans_eval(tmp, v, why2, sizeof why2);
    }
    free(mem);
    return ok;
}

static void compare_scalar(const char *a, const char *b, cmp_result *r)
{
    /* integers of any size (with thousands separators) compare as text */
    const char *ia = a, *ib = b;
    size_t la = strlen(a), lb = strlen(b);
    char *mem = NULL;
    if (la <= SM_ANSWER_MAX_ANSWER && lb <= SM_ANSWER_MAX_ANSWER &&
        (mem = malloc(4 * (SM_ANSWER_MAX_ANSWER + 1))) != NULL) {
        const size_t M = SM_ANSWER_MAX_ANSWER + 1;
        char *ta = mem, *tb = mem + M, *ca = mem + 2 * M, *cb = mem + 3 * M;
        /* spaces inside a number ("1 000") are not meaningful */
        size_t j = 0;
        for (size_t i = 0; a[i]; i++)
            if (!is_space(a[i]))
                ca[j++] = a[i];
        ca[j] = '\0';
        j = 0;
        for (size_t i = 0; b[i]; i++)
            if (!is_space(b[i]))
                cb[j++] = b[i];
        cb[j] = '\0';
        ia = thousands(ca, strlen(ca), ta, M) ? ta : ca;
        ib = thousands(cb, strlen(cb), tb, M) ? tb : cb;
        if (is_integer_text(ia) && is_integer_text(ib)) {
            r->equal = int_text_equal(ia, ib);
            r->method = "integer";
            snprintf(r->detail, sizeof r->detail, "integers %.150s %s %.150s", ia,
                     r->equal ? "==" : "!=", ib);
            free(mem);
            return;
        }
        free(mem);
    }
    ans_val va, vb;
    bool pa = false, pb = false;
    char wa[128] = "", wb[128] = "";
    bool oka = eval_scalar(a, &va, &pa, wa, sizeof wa);
    bool okb = eval_scalar(b, &vb, &pb, wb, sizeof wb);
    if (oka && okb) {
        bool exactly = false, eq = vals_equal(&va, &vb, &exactly);
        const char *how = "";
        if (!eq && (pa != pb)) {
            /* "50%" against "0.5": the percent side divided by 100 */
            ans_val *p = pa ? &va : &vb;
            ans_val scaled = *p;
            scaled.v /= 100.0;
            if (scaled.exact && !__builtin_mul_overflow(scaled.d, 100, &scaled.d)) {
                int64_t g = scaled.n, h = scaled.d;
                while (h) {
                    int64_t t = g % h;
                    g = h;
                    h = t;
                }
                if (g < 0)
                    g = -g;
                if (g > 1)
                    scaled.n /= g, scaled.d /= g;
            } else {
                scaled.exact = false;
            }
            eq = pa ? vals_equal(&scaled, &vb, &exactly) : vals_equal(&va, &scaled, &exactly);
            if (eq)
                how = " (as a percentage)";
        }
        r->equal = eq;
        r->method = scalar_method(&va, &vb);
        if ((pa || pb) && strcmp(r->method, "integer") == 0)
            r->method = "decimal";
        char fa[64], fb[64];
        fmt_val(fa, sizeof fa, &va);
        fmt_val(fb, sizeof fb, &vb);
        snprintf(r->detail, sizeof r->detail, "values %s%s and %s%s %s%s%s", fa, pa ? "%" : "", fb,
                 pb ? "%" : "", eq ? "are equal" : "differ",
                 exactly ? " (exact)"
                 : eq    ? " (within relative tolerance 1e-6)"
                         : "",
                 how);
        return;
    }
    /* not numbers: compare as normalized text */
    char *x = canonical(a), *y = canonical(b);
    r->method = "string";
    r->equal = x && y && strcmp(x, y) == 0;
    snprintf(r->detail, sizeof r->detail, "compared as text (%s%s%s)%s", !oka ? "student: " : "",
             !oka ? wa : "", (!oka && !okb) ? "; key: " : "",
             r->equal ? ": identical" : ": different");
    if (oka && !okb)
        snprintf(r->detail, sizeof r->detail, "compared as text (key: %s): %s", wb,
                 r->equal ? "identical" : "different");
    if (!oka && !okb)
        snprintf(r->detail, sizeof r->detail, "compared as text (%s): %s", wa,
                 r->equal ? "identical" : "different");
    free(x);
    free(y);
}

static shape shape_of(const char *s, size_t n, size_t *inner_st, size_t *inner_len)
{
    *inner_st = 0;
    *inner_len = n;
    if (wrapped(s, n)) {
        char o = s[0];
        size_t st[MAX_ELEMS], len[MAX_ELEMS];
        int k = split_top(s + 1, n - 2, st, len);
        if (o == SET_OPEN || (o == '{' && k > 1)) {
            *inner_st = 1;
            *inner_len = n - 2;
            return SHAPE_SET;
        }
        if ((o == '(' || o == '[') && k > 1) {
            *inner_st = 1;
            *inner_len = n - 2;
            return SHAPE_TUPLE;
        }
        return SHAPE_SCALAR;
    }
    char tmp[64];
    size_t st[MAX_ELEMS], len[MAX_ELEMS];
    if (n < sizeof tmp && thousands(s, n, tmp, sizeof tmp))
        return SHAPE_SCALAR;
    int k = split_top(s, n, st, len);
    return k > 1 ? SHAPE_LIST : SHAPE_SCALAR;
}

static char *elem(const char *s, size_t st, size_t len)
{
    const char *a = s + st;
    trim_answer(&a, &len);
    return dup_range(a, len);
}

static void compare_elements(const char *a, size_t an, const char *b, size_t bn, bool ordered,
                             int depth, cmp_result *r)
{
    size_t ast[MAX_ELEMS], alen[MAX_ELEMS], bst[MAX_ELEMS], blen[MAX_ELEMS];
    int ka = split_top(a, an, ast, alen), kb = split_top(b, bn, bst, blen);
    if (ka < 0 || kb < 0) {
        r->equal = false;
        snprintf(r->detail, sizeof r->detail, "unbalanced or too many elements");
        return;
    }
    if (ka != kb) {
        r->equal = false;
        snprintf(r->detail, sizeof r->detail, "%d elements against %d", ka, kb);
        return;
    }
    bool used[MAX_ELEMS] = {false};
    for (int i = 0; i < ka; i++) {
        char *x = elem(a, ast[i], alen[i]);
        bool found = false;
        for (int j = ordered ? i : 0; j < (ordered ? i + 1 : kb) && x && !found; j++) {
            if (used[j])
                continue;
            char *y = elem(b, bst[j], blen[j]);
            cmp_result sub = {0};
            if (y)
                compare_any(x, y, depth + 1, &sub);
            free(y);
            if (sub.equal)
                found = used[j] = true;
        }
        if (!found) {
            r->equal = false;
            snprintf(r->detail, sizeof r->detail, "element %d (%.60s) %s", i + 1, x ? x : "?",
                     ordered ? "differs" : "has no equal element in the key");
            free(x);
            return;
        }
        free(x);
    }
    r->equal = true;
    snprintf(r->detail, sizeof r->detail, "all %d elements equal%s", ka,
             ordered ? " in order" : " (order ignored)");
}

static void compare_any(const char *a, const char *b, int depth, cmp_result *r)
{
    if (depth > MAX_NEST) {
        r->equal = false;
        r->method = "string";
        snprintf(r->detail, sizeof r->detail, "nested too deeply");
        return;
    }
    size_t an = strlen(a), bn = strlen(b), ast, alen, bst, blen;
    shape sa = shape_of(a, an, &ast, &alen), sb = shape_of(b, bn, &bst, &blen);
    if (sa == SHAPE_SCALAR && sb == SHAPE_SCALAR) {
        compare_scalar(a, b, r);
        return;
    }
    /* a bare list takes the other side's shape; two bare lists compare as sets */
    if (sa == SHAPE_LIST)
        sa = sb == SHAPE_TUPLE ? SHAPE_TUPLE : SHAPE_SET;
    if (sb == SHAPE_LIST)
        sb = sa == SHAPE_TUPLE ? SHAPE_TUPLE : SHAPE_SET;
    if (sa != sb || sa == SHAPE_SCALAR || sb == SHAPE_SCALAR) {
        r->equal = false;
        r->method = sa == SHAPE_SET || sb == SHAPE_SET ? "set" : "tuple";
        snprintf(r->detail, sizeof r->detail, "a %s against a %s",
                 sa == SHAPE_SET     ? "set"
                 : sa == SHAPE_TUPLE ? "tuple"
                                     : "single value",
                 sb == SHAPE_SET     ? "set"
                 : sb == SHAPE_TUPLE ? "tuple"
                                     : "single value");
        return;
    }
    if (sa == SHAPE_TUPLE && (a[0] != b[0] || a[an - 1] != b[bn - 1]) &&
        (wrapped(a, an) && wrapped(b, bn))) {
        /* (1,2) against [1,2]: an interval's ends differ; a plain list of values does not */
        bool interval = a[0] == '[' || b[0] == '[' || a[an - 1] == ']' || b[bn - 1] == ']';
        if (interval && (a[0] == '(') != (b[0] == '(')) {
            r->equal = false;
            r->method = "tuple";
            snprintf(r->detail, sizeof r->detail, "different brackets: %c...%c against %c...%c",
                     a[0], a[an - 1], b[0], b[bn - 1]);
            return;
        }
    }
    r->method = sa == SHAPE_SET ? "set" : "tuple";
    compare_elements(a + ast, alen, b + bst, blen, sa == SHAPE_TUPLE, depth, r);
}

static json_t *str_or_null(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    /* not valid UTF-8: replace the bad bytes */
    size_t n = strlen(s);
    char *c = malloc(n + 1);
    if (!c)
        return json_null();
    for (size_t i = 0; i <= n; i++)
        c[i] = (unsigned char)s[i] >= 0x80 ? '?' : s[i];
    j = json_string(c);
    free(c);
    return j ? j : json_null();
}

/* A printable copy of a normalized answer (set markers back to braces). */
static void unmark(char *s)
{
    for (; *s; s++) {
        if (*s == SET_OPEN)
            *s = '{';
        else if (*s == SET_CLOSE)
            *s = '}';
    }
}

sm_code sm_answer_compare_values(const char *a, const char *b, json_t **out, sm_err *err)
{
    if (out)
        *out = NULL;
    if (!b || !out)
        return sm_err_set(err, SM_EINVAL, "answer: NULL argument");
    json_t *res = json_object();
    if (!res)
        return sm_err_set(err, SM_ENOMEM, "answer: out of memory");
    json_object_set_new(res, "extracted", str_or_null(a));
    json_object_set_new(res, "expected", str_or_null(b));
    cmp_result r = {.equal = false, .method = "none"};
    if (!a) {
        snprintf(r.detail, sizeof r.detail, "no final answer found");
    } else if (strlen(a) > SM_ANSWER_MAX_ANSWER || strlen(b) > SM_ANSWER_MAX_ANSWER) {
        r.method = "string";
        char *x = canonical(a), *y = canonical(b);
        r.equal = x && y && strcmp(x, y) == 0;
        free(x);
        free(y);
        snprintf(r.detail, sizeof r.detail, "answer longer than %d bytes: compared as text",
                 SM_ANSWER_MAX_ANSWER);
    } else {
        char *na = normalize(a), *nb = normalize(b);
        if (!na || !nb) {
            free(na);
            free(nb);
            json_decref(res);
            return sm_err_set(err, SM_ENOMEM, "answer: out of memory");
        }
        if (!na[0])
            snprintf(r.detail, sizeof r.detail, "empty answer");
        else if (!nb[0])
            snprintf(r.detail, sizeof r.detail, "empty answer key");
        else
            compare_any(na, nb, 0, &r);
        unmark(na);
        unmark(nb);
        json_object_set_new(
            res, "normalized",
            json_pack("{s:o,s:o}", "extracted", str_or_null(na), "expected", str_or_null(nb)));
        free(na);
        free(nb);
    }
    json_object_set_new(res, "equal", json_boolean(r.equal));
    json_object_set_new(res, "method", json_string(r.method));
    json_object_set_new(res, "detail", str_or_null(r.detail));
    *out = res;
    return SM_OK;
}

sm_code sm_answer_compare(const char *student_text, const char *answer_key, json_t **out,
                          sm_err *err)
{
    if (out)
        *out = NULL;
    if (!student_text || !answer_key || !out)
        return sm_err_set(err, SM_EINVAL, "answer: NULL argument");
    char *a = NULL, *key = NULL;
    sm_code rc = sm_answer_extract(student_text, &a, err);
    if (rc != SM_OK)
        return rc;
    /* the key itself may be written as a solution ("\boxed{3}", "Answer: 3") */
    if (strstr(answer_key, "\\boxed") || strstr(answer_key, "\\fbox") ||
        last_ci(answer_key, strlen(answer_key), "answer")) {
        rc = sm_answer_extract(answer_key, &key, err);
        if (rc != SM_OK) {
            free(a);
            return rc;
        }
    }
    if (!key) {
        const char *k = answer_key;
        size_t n = strlen(k);
        trim_answer(&k, &n);
        key = dup_range(k, n);
        if (!key) {
            free(a);
            return sm_err_set(err, SM_ENOMEM, "answer: out of memory");
        }
    }
    rc = sm_answer_compare_values(a, key, out, err);
    free(a);
    free(key);
    return rc;
}
