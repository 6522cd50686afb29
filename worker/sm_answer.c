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

static bool extract_boxed(const char *s, size_t n, char **out, const char **at)
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
        *at = best;
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
static bool extract_after(const char *s, size_t n, const char *marker, char **out, const char **at)
{
    const char *hit = last_ci(s, n, marker);
    if (!hit)
        return false;
    *at = hit;
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
            const char *inner;
            if (extract_boxed(a, len, out, &inner))
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

/* ---- units (used by extraction to tell unit words from prose, and by comparison) ---------- */

/* A unit: its dimension (length m, mass g, time s, angle degree) and its size in base units. */
typedef struct unit_def {
    const char *name;
    signed char dim[4];
    int64_t num, den;
} unit_def;

static const unit_def unit_defs[] = {
    {"mm", {1, 0, 0, 0}, 1, 1000},
    {"millimeter", {1, 0, 0, 0}, 1, 1000},
    {"millimetre", {1, 0, 0, 0}, 1, 1000},
    {"cm", {1, 0, 0, 0}, 1, 100},
    {"centimeter", {1, 0, 0, 0}, 1, 100},
    {"centimetre", {1, 0, 0, 0}, 1, 100},
    {"dm", {1, 0, 0, 0}, 1, 10},
    {"m", {1, 0, 0, 0}, 1, 1},
    {"meter", {1, 0, 0, 0}, 1, 1},
    {"metre", {1, 0, 0, 0}, 1, 1},
    {"km", {1, 0, 0, 0}, 1000, 1},
    {"kilometer", {1, 0, 0, 0}, 1000, 1},
    {"kilometre", {1, 0, 0, 0}, 1000, 1},
    {"mg", {0, 1, 0, 0}, 1, 1000},
    {"milligram", {0, 1, 0, 0}, 1, 1000},
    {"g", {0, 1, 0, 0}, 1, 1},
    {"gram", {0, 1, 0, 0}, 1, 1},
    {"kg", {0, 1, 0, 0}, 1000, 1},
    {"kilogram", {0, 1, 0, 0}, 1000, 1},
    {"ms", {0, 0, 1, 0}, 1, 1000},
    {"s", {0, 0, 1, 0}, 1, 1},
    {"sec", {0, 0, 1, 0}, 1, 1},
    {"second", {0, 0, 1, 0}, 1, 1},
    {"min", {0, 0, 1, 0}, 60, 1},
    {"minute", {0, 0, 1, 0}, 60, 1},
    {"h", {0, 0, 1, 0}, 3600, 1},
    {"hr", {0, 0, 1, 0}, 3600, 1},
    {"hour", {0, 0, 1, 0}, 3600, 1},
    {"ml", {3, 0, 0, 0}, 1, 1000000},
    {"mL", {3, 0, 0, 0}, 1, 1000000},
    {"milliliter", {3, 0, 0, 0}, 1, 1000000},
    {"millilitre", {3, 0, 0, 0}, 1, 1000000},
    {"l", {3, 0, 0, 0}, 1, 1000},
    {"L", {3, 0, 0, 0}, 1, 1000},
    {"liter", {3, 0, 0, 0}, 1, 1000},
    {"litre", {3, 0, 0, 0}, 1, 1000},
    {"deg", {0, 0, 0, 1}, 1, 1},
    {"degree", {0, 0, 0, 1}, 1, 1},
};

/* Words that are never a unit (math names and glue). */
static const char *const not_units[] = {"pi", "sqrt", "and", "or",   "of", "is", "the",
                                        "to", "in",   "for", "frac", "so", NULL};

static const unit_def *find_unit(const char *w, size_t n)
{
    for (size_t i = 0; i < sizeof unit_defs / sizeof unit_defs[0]; i++) {
        size_t m = strlen(unit_defs[i].name);
        if (m == n && strncmp(w, unit_defs[i].name, n) == 0)
            return &unit_defs[i];
        /* plural of a spelled-out unit: meters, hours, degrees */
        if (m >= 3 && n == m + 1 && w[m] == 's' && strncmp(w, unit_defs[i].name, m) == 0)
            return &unit_defs[i];
    }
    if (n == 4 && strncmp(w, "secs", 4) == 0)
        return find_unit("s", 1);
    if ((n == 3 && strncmp(w, "hrs", 3) == 0) || (n == 4 && strncmp(w, "mins", 4) == 0))
        return find_unit(w, n - 1);
    return NULL;
}

static bool never_unit(const char *w, size_t n)
{
    for (int i = 0; not_units[i]; i++)
        if (strlen(not_units[i]) == n && strncasecmp(w, not_units[i], n) == 0)
            return true;
    return false;
}

/* A parsed unit: known (dimension and size) or a plain word ("apples"). */
typedef struct unit_info {
    bool present, known;
    int dim[4];
    int64_t num, den;
    char text[64];
} unit_info;

/* One factor of a unit: word ('^' exponent)?; returns chars used, 0 when not a unit. */
static size_t unit_factor(const char *s, int sign, bool alone, unit_info *u)
{
    size_t n = 0;
    while (isalpha((unsigned char)s[n]))
        n++;
    if (n == 0 || n > 20 || never_unit(s, n))
        return 0;
    const unit_def *d = find_unit(s, n);
    size_t i = n;
    int e = 1;
    if (s[i] == '^') {
        size_t j = i + 1 + (s[i + 1] == '{');
        bool neg = s[j] == '-';
        j += neg;
        if (s[j] < '1' || s[j] > '3')
            return 0;
        e = (s[j] - '0') * (neg ? -1 : 1);
        j++;
        if (s[i + 1] == '{' && s[j++] != '}')
            return 0;
        i = j;
    }
    if (!d) {
        /* a word that is no known unit: only alone ("7 apples"), and of two letters or more */
        if (!alone || n < 2 || e != 1)
            return 0;
        u->known = false;
        return i;
    }
    for (int k = 0; k < 4; k++)
        u->dim[k] += d->dim[k] * e * sign;
    for (int k = 0; k < (e < 0 ? -e : e); k++) {
        bool up = (e > 0) == (sign > 0);
        if (__builtin_mul_overflow(u->num, up ? d->num : d->den, &u->num) ||
            __builtin_mul_overflow(u->den, up ? d->den : d->num, &u->den))
            return 0;
    }
    return i;
}

/* Whether all of s is a unit expression: factor (('/' | '*' | ' ') factor)*, at most 4. */
static bool parse_unit(const char *s, unit_info *u)
{
    memset(u, 0, sizeof *u);
    u->known = true;
    u->num = u->den = 1;
    size_t i = 0, count = 0;
    int sign = 1;
    bool single_word = true;
    for (size_t k = 0; s[k]; k++)
        if (!isalpha((unsigned char)s[k]) && !is_space(s[k]))
            single_word = false;
    for (;;) {
        while (is_space(s[i]))
            i++;
        if (!s[i])
            break;
        if (count > 0 && (s[i] == '/' || s[i] == '*')) {
            sign = s[i] == '/' ? -1 : sign;
            i++;
            while (is_space(s[i]))
                i++;
        }
        size_t used = unit_factor(s + i, sign, single_word && count == 0, u);
        if (used == 0 || ++count > 4 || (!u->known && count > 1))
            return false;
        i += used;
    }
    if (count == 0)
        return false;
    size_t n = strlen(s);
    const char *a = s;
    while (n && is_space(a[n - 1]))
        n--;
    while (n && is_space(*a))
        a++, n--;
    snprintf(u->text, sizeof u->text, "%.*s", (int)(n < 60 ? n : 60), a);
    /* "apples" and "apple" are the same thing */
    size_t tl = strlen(u->text);
    if (!u->known && tl > 3 && u->text[tl - 1] == 's')
        u->text[tl - 1] = '\0';
    u->present = true;
    return true;
}

/* Where a trailing unit starts in s ("16 cm^2" -> 3), or 0 when none. */
static size_t unit_start(const char *s, unit_info *u)
{
    for (size_t i = 1; s[i]; i++) {
        if (!isalpha((unsigned char)s[i]) || isalpha((unsigned char)s[i - 1]) || s[i - 1] == '\\' ||
            s[i - 1] == '_')
            continue;
        char p = s[i - 1];
        if (!(is_space(p) || isdigit((unsigned char)p) || p == '}' || p == ')' || p == '%'))
            continue;
        if (parse_unit(s + i, u))
            return i;
    }
    return 0;
}

/* ---- prose: "Hence the result is 0.75", "so x = 3 and y = -1" ----------------------------- */

static bool word_char(char c)
{
    return isalpha((unsigned char)c);
}

/* Whether s[0..n) reads as a sentence: two words or more that are no unit or math name. */
static bool prose_like(const char *s, size_t n)
{
    int words = 0;
    for (size_t i = 0; i < n && words < 2;) {
        if (!word_char(s[i]) || (i > 0 && (s[i - 1] == '\\' || word_char(s[i - 1])))) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && word_char(s[j]))
            j++;
        size_t w = j - i;
        if (w >= 2 && !find_unit(s + i, w) && !(w == 2 && strncasecmp(s + i, "pi", 2) == 0) &&
            !(w == 4 && strncmp(s + i, "sqrt", 4) == 0) && !(j < n && s[j] == '('))
            words++;
        i = j;
    }
    return words >= 2;
}

/* The last sentence of s[0..n) that holds a digit (a period between digits is a decimal). */
static void last_sentence(const char **s, size_t *n)
{
    const char *a = *s;
    size_t len = *n, end = len;
    while (end > 0) {
        size_t b = end;
        while (b > 0) {
            char c = a[b - 1];
            bool stop = (c == '.' || c == '!' || c == '?' || c == ';') && b < end &&
                        is_space(a[b]) &&
                        !(b >= 2 && isdigit((unsigned char)a[b - 2]) && b < len &&
                          isdigit((unsigned char)a[b]));
            if (stop)
                break;
            b--;
        }
        for (size_t k = b; k < end; k++)
            if (isdigit((unsigned char)a[k])) {
                *s = a + b;
                *n = end - b;
                trim_answer(s, n);
                return;
            }
        if (b == 0)
            break;
        end = b - 1;
    }
}

/* "x = 3 and y = -1" (two variables or more, each a letter with an optional subscript):
 * "x = 3, y = -1". */
static bool prose_variables(const char *s, size_t n, char **out)
{
    sbuf b = {0};
    int count = 0;
    char names[8][8];
    for (size_t i = 0; i < n && count < 8; i++) {
        if (!isalpha((unsigned char)s[i]) ||
            (i > 0 && (isalnum((unsigned char)s[i - 1]) || s[i - 1] == '\\')))
            continue;
        size_t j = i + 1;
        if (j < n && s[j] == '_' && j + 1 < n && isalnum((unsigned char)s[j + 1]))
            j += 2;
        while (j < n && isdigit((unsigned char)s[j]))
            j++;
        size_t name_end = j;
        while (j < n && s[j] == ' ')
            j++;
        if (j >= n || s[j] != '=' || name_end - i > 6 || (j + 1 < n && s[j + 1] == '='))
            continue;
        size_t v = j + 1, e = v;
        while (e < n && s[e] != ',' && s[e] != ';' &&
               !(e + 5 <= n && strncmp(s + e, " and ", 5) == 0) && s[e] != '=')
            e++;
        if (e < n && s[e] == '=')
            continue; /* "x = y = 2": not a plain value */
        const char *val = s + v;
        size_t vl = e - v;
        trim_answer(&val, &vl);
        if (vl == 0)
            continue;
        for (int k = 0; k < count; k++)
            if (strncmp(names[k], s + i, name_end - i) == 0 && names[k][name_end - i] == '\0')
                goto next;
        snprintf(names[count], sizeof names[count], "%.*s", (int)(name_end - i), s + i);
        if (count++)
            sb_putn(&b, ", ", 2);
        sb_putn(&b, s + i, name_end - i);
        sb_putn(&b, " = ", 3);
        sb_putn(&b, val, vl);
        i = e > 0 ? e - 1 : e;
    next:;
    }
    if (count < 2 || b.oom) {
        free(b.p);
        return false;
    }
    *out = b.p;
    return true;
}

/* The value after the last "is" / "equals" / "=" / "get" ... of a sentence, cut at "because",
 * "since", ", which". */
static bool prose_verb(const char *s, size_t n, char **out)
{
    static const char *const verbs[] = {" is ",    " equals ", " equal to ", " are ",   " get ",
                                        " gives ", " obtain ", " becomes ",  " makes ", " be ",
                                        " was ",   "=",        "\\approx",   NULL};
    const char *best = NULL;
    size_t best_len = 0;
    for (int v = 0; verbs[v]; v++) {
        const char *hit = last_ci(s, n, verbs[v]);
        if (hit && (!best || hit > best))
            best = hit, best_len = strlen(verbs[v]);
    }
    if (!best)
        return false;
    const char *a = best + best_len;
    size_t len = n - (size_t)(a - s);
    static const char *const cuts[] = {" because", " since", ", which", ", so",
                                       " as ",     " for ",  NULL};
    for (int c = 0; cuts[c]; c++) {
        const char *hit = last_ci(a, len, cuts[c]);
        while (hit) { /* the first one */
            const char *earlier = last_ci(a, (size_t)(hit - a), cuts[c]);
            if (!earlier)
                break;
            hit = earlier;
        }
        if (hit)
            len = (size_t)(hit - a);
    }
    trim_answer(&a, &len);
    bool digit = false;
    for (size_t i = 0; i < len && !digit; i++)
        digit = isdigit((unsigned char)a[i]);
    if (!digit || len == 0)
        return false;
    *out = dup_range(a, len);
    return true;
}

/* The last number of a sentence, with a unit word after it when there is one. */
static bool prose_last_number(const char *s, size_t n, char **out)
{
    size_t e = n;
    while (e > 0 && !isdigit((unsigned char)s[e - 1]))
        e--;
    if (e == 0)
        return false;
    size_t b = e;
    while (b > 0 && (isdigit((unsigned char)s[b - 1]) || s[b - 1] == '.' || s[b - 1] == '/' ||
                     s[b - 1] == ','))
        b--;
    if (b > 0 && s[b - 1] == '-')
        b--;
    /* a % or a unit word right after it */
    size_t x = e;
    if (x < n && s[x] == '%')
        x++;
    else {
        size_t w = x;
        while (w < n && s[w] == ' ')
            w++;
        size_t we = w;
        while (we < n && isalpha((unsigned char)s[we]))
            we++;
        if (we > w && find_unit(s + w, we - w))
            x = we;
    }
    const char *a = s + b;
    size_t len = x - b;
    trim_answer(&a, &len);
    if (len == 0)
        return false;
    *out = dup_range(a, len);
    return true;
}

/* The final answer of a line of prose: variables, else the value after a verb, else the
 * sentence's last number. */
static bool extract_prose(const char *s, size_t n, char **out, const char **at, size_t *at_len,
                          const char **rule)
{
    const char *a = s;
    size_t len = n;
    last_sentence(&a, &len);
    *at = a;
    *at_len = len;
    if (prose_variables(a, len, out)) {
        *rule = "variables in a sentence";
        return true;
    }
    if (prose_verb(a, len, out)) {
        *rule = "\"the result is\" sentence";
        return true;
    }
    if (prose_last_number(a, len, out)) {
        *rule = "last number in a sentence";
        return true;
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

static bool extract_last_math(const char *s, size_t n, char **out, const char **at, size_t *at_len,
                              const char **rule)
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
    *at = a;
    *at_len = len;
    *rule = best ? "last math expression" : "last line";
    if (!best && prose_like(a, len))
        return extract_prose(a, len, out, at, at_len, rule);
    rhs(&a, &len);
    trim_answer(&a, &len);
    if (len == 0)
        return false;
    *out = dup_range(a, len);
    return true;
}

/* The line of text[0..n) around p. */
static void line_at(const char *text, size_t n, const char *p, const char **at, size_t *at_len)
{
    const char *b = p, *e = p;
    while (b > text && b[-1] != '\n')
        b--;
    while (e < text + n && *e != '\n')
        e++;
    *at = b;
    *at_len = (size_t)(e - b);
}

/* An answer line that is itself a sentence ("Answer: so x = 3 and y = -1"): read it as prose. */
static void refine_prose(sm_answer_found *f)
{
    char *a = f->answer, *better = NULL;
    size_t n = strlen(a);
    if (prose_variables(a, n, &better) ||
        (prose_like(a, n) && (prose_verb(a, n, &better) || prose_last_number(a, n, &better)))) {
        free(f->answer);
        f->answer = better;
    }
}

static bool find_rules(const char *text, size_t n, sm_answer_found *f, const char **at,
                       size_t *at_len)
{
    static const struct {
        const char *marker, *rule;
    } markers[] = {{"final answer", "final-answer line"},
                   {"answer:", "answer line"},
                   {"the answer is", "\"the answer is\" sentence"}};
    const char *hit = NULL;
    if (extract_boxed(text, n, &f->answer, &hit)) {
        f->rule = "boxed";
        line_at(text, n, hit, at, at_len);
        return true;
    }
    for (size_t m = 0; m < sizeof markers / sizeof markers[0]; m++) {
        if (extract_after(text, n, markers[m].marker, &f->answer, &hit)) {
            f->rule = markers[m].rule;
            line_at(text, n, hit, at, at_len);
            if (f->answer)
                refine_prose(f);
            return true;
        }
    }
    return extract_last_math(text, n, &f->answer, at, at_len, &f->rule);
}

sm_code sm_answer_find(const char *text, sm_answer_found *f, sm_err *err)
{
    if (f)
        *f = (sm_answer_found){.rule = "none"};
    if (!text || !f)
        return sm_err_set(err, SM_EINVAL, "answer: NULL argument");
    size_t n = strlen(text), cut = 0;
    if (n > SM_ANSWER_MAX_TEXT) {
        cut = n - SM_ANSWER_MAX_TEXT;
        text += cut;
        n = SM_ANSWER_MAX_TEXT;
    }
    const char *at = NULL;
    size_t at_len = 0;
    if (find_rules(text, n, f, &at, &at_len)) {
        if (!f->answer)
            return sm_err_set(err, SM_ENOMEM, "answer: out of memory");
        if (f->answer[0] == '\0') {
            free(f->answer);
            f->answer = NULL;
        }
    }
    if (!f->answer) {
        f->rule = "none";
    } else if (at) {
        f->span_off = cut + (size_t)(at - text);
        f->span_len = at_len;
    }
    return SM_OK;
}

sm_code sm_answer_extract(const char *text, char **answer, sm_err *err)
{
    if (answer)
        *answer = NULL;
    if (!answer)
        return sm_err_set(err, SM_EINVAL, "answer: NULL argument");
    sm_answer_found f;
    sm_code rc = sm_answer_find(text, &f, err);
    *answer = f.answer;
    return rc;
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
    {"^{\\circ}", " deg"},
    {"^\\circ", " deg"},
    {"\\circ", " deg"},
    {"\\degree", " deg"},
    {"\\{", "\x01"},
    {"\\}", "\x02"},
    {"\\lbrace", "\x01"},
    {"\\rbrace", "\x02"},
    {"\\lparen", "("},
    {"\\rparen", ")"},
    {"\\langle", "("},
    {"\\rangle", ")"},
    {"\\$", ""},
    {"\xc2\xb0", " deg"},     /* ° */
    {"\xc2\xb2", "^2"},       /* ² */
    {"\xc2\xb3", "^3"},       /* ³ */
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

/* A text command (\text{...}, \mathrm{...}) at in[*i]: a text-only answer keeps its words, a
 * short unit after a value stays as a word ("5 cm") for the comparison to read. */
static bool put_text_cmd(const char *in, size_t n, size_t *i, sbuf *b)
{
    for (int t = 0; text_cmds[t]; t++) {
        if (!match_cmd(in + *i, text_cmds[t]))
            continue;
        size_t j = *i + strlen(text_cmds[t]);
        while (j < n && in[j] == ' ')
            j++;
        size_t st, len;
        if (!brace_group(in, n, j, &st, &len))
            continue;
        bool alone = true;
        for (size_t k = 0; k < *i && alone; k++)
            alone = is_space(in[k]) || in[k] == '$';
        for (size_t k = st + len + 1; k < n && alone; k++)
            alone = is_space(in[k]) || in[k] == '$' || in[k] == '.';
        sb_putc(b, ' ');
        if (len < 40 || alone)
            sb_putn(b, in + st, len);
        *i = st + len + 1;
        return true;
    }
    return false;
}

/* A command whose group is kept as a group at in[*i]: {content}. */
static bool put_keep_cmd(const char *in, size_t n, size_t *i, sbuf *b)
{
    for (int t = 0; keep_cmds[t]; t++) {
        if (!match_cmd(in + *i, keep_cmds[t]))
            continue;
        size_t j = *i + strlen(keep_cmds[t]);
        while (j < n && in[j] == ' ')
            j++;
        size_t st, len;
        if (!brace_group(in, n, j, &st, &len))
            continue;
        sb_putc(b, '{');
        sb_putn(b, in + st, len);
        sb_putc(b, '}');
        *i = st + len + 1;
        return true;
    }
    return false;
}

/* A replacement of reps[] at in[*i]. */
static bool put_replacement(const char *in, size_t *i, sbuf *b)
{
    for (size_t r = 0; r < sizeof reps / sizeof reps[0]; r++) {
        size_t m = strlen(reps[r].from);
        if (strncmp(in + *i, reps[r].from, m) != 0)
            continue;
        /* \left( vs \leftarrow: a letter command must end at a non-letter */
        if (reps[r].from[0] == '\\' && isalpha((unsigned char)reps[r].from[m - 1]) &&
            isalpha((unsigned char)in[*i + m]))
            continue;
        sb_putn(b, reps[r].to, strlen(reps[r].to));
        *i += m;
        return true;
    }
    return false;
}

/* Drops a leading "x =" or "x \in" (a single variable name, maybe with a subscript). */
static void drop_variable(const char **ap, size_t *lenp)
{
    const char *a = *ap;
    size_t len = *lenp, v = 0;
    while (v < len && a[v] == ' ')
        v++;
    if (v >= len || !isalpha((unsigned char)a[v]))
        return;
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
    size_t skip = 0;
    if (v < len && a[v] == '=' && (v + 1 >= len || a[v + 1] != '=') &&
        memchr(a + v + 1, '=', len - v - 1) == NULL)
        skip = v + 1;
    else if (v + 3 <= len && strncmp(a + v, "\\in", 3) == 0 && !isalpha((unsigned char)a[v + 3]))
        skip = v + 3; /* x \in \{1, 2\} */
    if (skip) {
        *ap = a + skip;
        *lenp = len - skip;
        trim_answer(ap, lenp);
    }
}

/* Normalizes one answer into a new string (NULL on OOM). */
static char *normalize(const char *in)
{
    size_t n = strlen(in);
    sbuf b = {0};
    sb_putn(&b, "", 0);
    for (size_t i = 0; i < n;)
        if (!put_text_cmd(in, n, &i, &b) && !put_keep_cmd(in, n, &i, &b) &&
            !put_replacement(in, &i, &b))
            sb_putc(&b, in[i++]);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    const char *a = b.p;
    size_t len = b.n;
    trim_answer(&a, &len);
    drop_variable(&a, &len);
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
    char detail[600];
    const sm_answer_policy *pol;
    char va[96], vb[96]; /* the values compared last (normalized) */
    char units[200], percent[80];
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

static bool close_enough(double a, double b, double tol)
{
    double diff = fabs(a - b), scale = fmax(fabs(a), fabs(b));
    return diff <= ABS_TOL || diff <= tol * scale;
}

/* |a - b| <= tol * max(|a|, |b|) (or <= ABS_TOL), exactly. */
static bool q_close(const mpq_t a, const mpq_t b, double tol)
{
    mpq_t d, s, t;
    mpq_inits(d, s, t, NULL);
    mpq_sub(d, a, b);
    mpq_abs(d, d);
    mpq_abs(s, a);
    mpq_abs(t, b);
    if (mpq_cmp(t, s) > 0)
        mpq_set(s, t);
    mpq_set_d(t, tol);
    mpq_mul(s, s, t);
    bool ok = mpq_cmp(d, s) <= 0;
    if (!ok) {
        mpq_set_d(t, ABS_TOL);
        ok = mpq_cmp(d, t) <= 0;
    }
    mpq_clears(d, s, t, NULL);
    return ok;
}

static bool vals_equal(const ans_val *a, const ans_val *b, double tol, bool *exactly)
{
    *exactly = a->exact && b->exact && !a->has_decimal && !b->has_decimal;
    if (a->exact && b->exact && mpq_equal(a->q, b->q))
        return *exactly = true;
    if (*exactly)
        return false;
    if (a->exact && b->exact)
        return q_close(a->q, b->q, tol);
    return close_enough(a->v, b->v, tol);
}

static void fmt_val(char *buf, size_t len, const ans_val *v)
{
    if (!v->exact) {
        snprintf(buf, len, "%.10g", v->v);
        return;
    }
    size_t nd = mpz_sizeinbase(mpq_numref(v->q), 10), dd = mpz_sizeinbase(mpq_denref(v->q), 10);
    if (nd + dd > 60) {
        snprintf(buf, len, "%.10g (exact, %zu/%zu digits)", v->v, nd, dd);
        return;
    }
    char *s = mpq_get_str(NULL, 10, v->q);
    snprintf(buf, len, "%s", s ? s : "?");
    void (*freefunc)(void *, size_t);
    mp_get_memory_functions(NULL, NULL, &freefunc);
    if (s)
        freefunc(s, strlen(s) + 1);
}

static void compare_any(const char *a, const char *b, int depth, cmp_result *r);

/* A scalar answer evaluated: its value, a trailing %, a trailing unit. */
typedef struct scalar {
    ans_val v;
    bool ok, percent;
    unit_info unit;
    char why[128];
} scalar;

/* Evaluates an element: a trailing unit ("16 cm^2") and % are read apart. */
static void eval_scalar(const char *s, scalar *out)
{
    memset(out, 0, sizeof *out);
    size_t n = strlen(s);
    if (n > SM_ANSWER_MAX_ANSWER) {
        ans_val_init(&out->v);
        snprintf(out->why, sizeof out->why, "answer too long to evaluate");
        return;
    }
    char *mem = malloc(2 * (SM_ANSWER_MAX_ANSWER + 1));
    if (!mem) {
        ans_val_init(&out->v);
        snprintf(out->why, sizeof out->why, "out of memory");
        return;
    }
    char *buf = mem, *th = mem + SM_ANSWER_MAX_ANSWER + 1;
    memcpy(buf, s, n + 1);
    unit_info u;
    size_t us = unit_start(buf, &u);
    if (us > 0) {
        out->unit = u;
        buf[us] = '\0';
        n = us;
    }
    while (n && is_space(buf[n - 1]))
        buf[--n] = '\0';
    out->percent = n && buf[n - 1] == '%';
    if (out->percent)
        buf[--n] = '\0';
    const char *src = thousands(buf, n, th, SM_ANSWER_MAX_ANSWER + 1) ? th : buf;
    out->ok = ans_eval(src, &out->v, out->why, sizeof out->why);
    free(mem);
}

/* Applies the percent policy; returns false when the two cannot be equal under it. */
static void percent_scale(ans_val *v)
{
    if (v->exact) {
        mpq_t h;
        mpq_init(h);
        mpq_set_ui(h, 1, 100);
        mpq_mul(v->q, v->q, h);
        mpq_clear(h);
    }
    v->v /= 100.0;
}

/* Both values in base units when the units are comparable; a note either way. */
static bool apply_units(scalar *a, scalar *b, cmp_result *r)
{
    unit_info *ua = &a->unit, *ub = &b->unit;
    if (!ua->present && !ub->present)
        return true;
    if (r->pol->units == SM_UNITS_IGNORE) {
        snprintf(r->units, sizeof r->units, "units ignored (assignment policy): %s / %s",
                 ua->present ? ua->text : "none", ub->present ? ub->text : "none");
        return true;
    }
    if (!ua->present || !ub->present) {
        snprintf(r->units, sizeof r->units,
                 "unit \"%s\" only in the %s: accepted, numbers compared as they are",
                 ua->present ? ua->text : ub->text, ua->present ? "answer" : "key");
        return true;
    }
    if (!ua->known || !ub->known) {
        bool same = strcasecmp(ua->text, ub->text) == 0;
        snprintf(r->units, sizeof r->units, "units \"%s\" and \"%s\" %s", ua->text, ub->text,
                 same ? "are the same" : "differ");
        return same;
    }
    if (memcmp(ua->dim, ub->dim, sizeof ua->dim) != 0) {
        snprintf(r->units, sizeof r->units,
                 "units \"%s\" and \"%s\" measure different things: not equal", ua->text, ub->text);
        return false;
    }
    scalar *sides[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        ans_val *v = &sides[k]->v;
        unit_info *u = &sides[k]->unit;
        if (v->exact) {
            mpq_t f;
            mpq_init(f);
            mpz_set_si(mpq_numref(f), (long)u->num);
            mpz_set_si(mpq_denref(f), (long)u->den);
            mpq_canonicalize(f);
            mpq_mul(v->q, v->q, f);
            mpq_clear(f);
        }
        v->v = v->v * (double)u->num / (double)u->den;
    }
    if (strcmp(ua->text, ub->text) == 0)
        snprintf(r->units, sizeof r->units, "same unit \"%s\"", ua->text);
    else
        snprintf(r->units, sizeof r->units, "\"%s\" converted to \"%s\" (same dimension)", ua->text,
                 ub->text);
    return true;
}

/* Compares two evaluated scalars under the policy (percent, units, tolerance). */
static void compare_values(scalar *sa, scalar *sb, cmp_result *r)
{
    ans_val *va = &sa->v, *vb = &sb->v;
    bool pa = sa->percent, pb = sb->percent, exactly = false, eq = false;
    const sm_answer_policy *pol = r->pol;
    if (!apply_units(sa, sb, r)) {
        r->equal = false;
        r->method = "units";
        snprintf(r->detail, sizeof r->detail, "%s", r->units);
        return;
    }
    if (pol->percent == SM_PERCENT_RATIO) {
        if (pa)
            percent_scale(va);
        if (pb)
            percent_scale(vb);
        if (pa || pb)
            snprintf(r->percent, sizeof r->percent, "%% read as a ratio (50%% = 0.5)");
        eq = vals_equal(va, vb, pol->tolerance, &exactly);
    } else if (pol->percent == SM_PERCENT_PERCENT) {
        if (pa || pb)
            snprintf(r->percent, sizeof r->percent, "%% read as a number of percent (50%% = 50)");
        eq = vals_equal(va, vb, pol->tolerance, &exactly);
    } else {
        eq = vals_equal(va, vb, pol->tolerance, &exactly);
        if (pa || pb)
            snprintf(r->percent, sizeof r->percent, "%% sign ignored (50%% = 50)");
        if (!eq && pa != pb) {
            /* "50%" against "0.5": the percent side divided by 100 */
            ans_val scaled;
            ans_val_init(&scaled);
            ans_val_copy(&scaled, pa ? va : vb);
            percent_scale(&scaled);
            eq = vals_equal(pa ? &scaled : va, pa ? vb : &scaled, pol->tolerance, &exactly);
            if (eq)
                snprintf(r->percent, sizeof r->percent, "%% read as a ratio (50%% = 0.5)");
            ans_val_clear(&scaled);
        }
    }
    r->equal = eq;
    r->method = scalar_method(va, vb);
    if ((pa || pb) && strcmp(r->method, "integer") == 0)
        r->method = "decimal";
    fmt_val(r->va, sizeof r->va, va);
    fmt_val(r->vb, sizeof r->vb, vb);
    char tol[64] = "";
    if (eq && !exactly)
        snprintf(tol, sizeof tol, " (within relative tolerance %g)", pol->tolerance);
    snprintf(r->detail, sizeof r->detail, "values %s and %s %s%s%s%s%s", r->va, r->vb,
             eq ? "are equal" : "differ", exactly ? " (exact)" : tol, r->percent[0] ? "; " : "",
             r->percent, r->units[0] ? "; " : "");
    size_t dl = strlen(r->detail);
    snprintf(r->detail + dl, sizeof r->detail - dl, "%s", r->units);
}

/* Integers of any size (with thousands separators) compared as text; false when not both. */
static bool compare_int_text(const char *a, const char *b, cmp_result *r)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > SM_ANSWER_MAX_ANSWER || lb > SM_ANSWER_MAX_ANSWER)
        return false;
    const size_t M = SM_ANSWER_MAX_ANSWER + 1;
    char *mem = malloc(4 * M);
    if (!mem)
        return false;
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
    const char *ia = thousands(ca, strlen(ca), ta, M) ? ta : ca;
    const char *ib = thousands(cb, strlen(cb), tb, M) ? tb : cb;
    bool both = is_integer_text(ia) && is_integer_text(ib);
    if (both) {
        r->equal = int_text_equal(ia, ib);
        r->method = "integer";
        snprintf(r->detail, sizeof r->detail, "integers %.150s %s %.150s", ia,
                 r->equal ? "==" : "!=", ib);
        snprintf(r->va, sizeof r->va, "%.90s", ia);
        snprintf(r->vb, sizeof r->vb, "%.90s", ib);
    }
    free(mem);
    return both;
}

static void compare_scalar(const char *a, const char *b, cmp_result *r)
{
    if (compare_int_text(a, b, r))
        return;
    scalar *sc = malloc(2 * sizeof *sc);
    if (!sc) {
        r->equal = false;
        r->method = "none";
        snprintf(r->detail, sizeof r->detail, "out of memory");
        return;
    }
    scalar *sa = &sc[0], *sb = &sc[1];
    eval_scalar(a, sa);
    eval_scalar(b, sb);
    if (sa->ok && sb->ok) {
        compare_values(sa, sb, r);
    } else {
        /* not numbers: compare as normalized text */
        char *x = canonical(a), *y = canonical(b);
        r->method = "string";
        r->equal = x && y && strcmp(x, y) == 0;
        const char *why = !sa->ok ? sa->why : sb->why;
        snprintf(r->detail, sizeof r->detail, "compared as text (%s%s): %s",
                 !sa->ok ? "" : "key: ", why, r->equal ? "identical" : "different");
        free(x);
        free(y);
    }
    ans_val_clear(&sa->v);
    ans_val_clear(&sb->v);
    free(sc);
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
            cmp_result sub = {.pol = r->pol};
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

/* "x = 3, y = -1": two named values or more. Fills names (each up to 7 chars) and the value
 * spans; returns the count, 0 when s is no such list. */
static int assignments(const char *s, char names[][8], size_t *vst, size_t *vlen)
{
    size_t st[MAX_ELEMS], len[MAX_ELEMS];
    int k = split_top(s, strlen(s), st, len);
    if (k < 2 || k > 16)
        return 0;
    for (int i = 0; i < k; i++) {
        const char *e = s + st[i];
        size_t j = 0, n = len[i];
        while (j < n && e[j] == ' ')
            j++;
        size_t b = j;
        if (j >= n || !isalpha((unsigned char)e[j]))
            return 0;
        j++;
        while (j < n && (isalnum((unsigned char)e[j]) || e[j] == '_' || e[j] == '{' || e[j] == '}'))
            j++;
        if (j - b > 7)
            return 0;
        snprintf(names[i], 8, "%.*s", (int)(j - b), e + b);
        while (j < n && e[j] == ' ')
            j++;
        if (j >= n || e[j] != '=' || memchr(e + j + 1, '=', n - j - 1))
            return 0;
        vst[i] = st[i] + j + 1;
        vlen[i] = n - j - 1;
    }
    return k;
}

/* Builds "(v1, v2, ...)" from an assignment list, in the order given by order[] (or as
 * written). NULL on OOM. */
static char *as_tuple(const char *s, int k, const size_t *vst, const size_t *vlen, const int *order)
{
    sbuf b = {0};
    sb_putc(&b, '(');
    for (int i = 0; i < k; i++) {
        int x = order ? order[i] : i;
        if (i)
            sb_putn(&b, ", ", 2);
        sb_putn(&b, s + vst[x], vlen[x]);
    }
    sb_putc(&b, ')');
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* Variables: "x = 3, y = -1" against "(3, -1)" (as written) or "y = -1, x = 3" (by name).
 * Returns false when neither side is such a list (then compare as usual). */
static bool compare_assignments(const char *a, const char *b, cmp_result *r)
{
    char na[16][8], nb[16][8];
    size_t ast[16], alen[16], bst[16], blen[16];
    int ka = assignments(a, na, ast, alen), kb = assignments(b, nb, bst, blen);
    if (!ka && !kb)
        return false;
    char *ta = NULL, *tb = NULL;
    if (ka && kb) {
        int order[16];
        for (int i = 0; i < kb && ka == kb; i++) {
            order[i] = -1;
            for (int j = 0; j < ka; j++)
                if (strcmp(nb[i], na[j]) == 0)
                    order[i] = j;
            if (order[i] < 0) {
                r->equal = false;
                r->method = "tuple";
                snprintf(r->detail, sizeof r->detail, "variable %s of the key is not in the answer",
                         nb[i]);
                return true;
            }
        }
        if (ka != kb) {
            r->equal = false;
            r->method = "tuple";
            snprintf(r->detail, sizeof r->detail, "%d variables against %d", ka, kb);
            return true;
        }
        ta = as_tuple(a, ka, ast, alen, order);
        tb = as_tuple(b, kb, bst, blen, NULL);
    } else {
        ta = ka ? as_tuple(a, ka, ast, alen, NULL) : strdup(a);
        tb = kb ? as_tuple(b, kb, bst, blen, NULL) : strdup(b);
    }
    if (ta && tb) {
        compare_any(ta, tb, 1, r);
        size_t dl = strlen(r->detail);
        snprintf(r->detail + dl, sizeof r->detail - dl, "%s",
                 ka && kb ? " (variables matched by name)"
                          : " (variables taken in the order written)");
    } else {
        r->equal = false;
        snprintf(r->detail, sizeof r->detail, "out of memory");
    }
    free(ta);
    free(tb);
    return true;
}

/* The comparison's findings into res. */
static void put_result(json_t *res, const cmp_result *r)
{
    json_object_set_new(res, "equal", json_boolean(r->equal));
    json_object_set_new(res, "method", json_string(r->method));
    json_object_set_new(res, "detail", str_or_null(r->detail));
    if (r->va[0] || r->vb[0])
        json_object_set_new(res, "values",
                            json_pack("{s:o, s:o}", "extracted", str_or_null(r->va), "expected",
                                      str_or_null(r->vb)));
    if (r->units[0])
        json_object_set_new(res, "units", str_or_null(r->units));
    if (r->percent[0])
        json_object_set_new(res, "percent", str_or_null(r->percent));
    json_object_set_new(res, "policy", sm_answer_policy_json(r->pol));
}

static sm_code compare_values_policy(const char *a, const char *b, const sm_answer_policy *pol,
                                     json_t **out, sm_err *err)
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
    cmp_result r = {.equal = false, .method = "none", .pol = pol};
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
        else if (!compare_assignments(na, nb, &r))
            compare_any(na, nb, 0, &r);
        unmark(na);
        unmark(nb);
        json_object_set_new(
            res, "normalized",
            json_pack("{s:o,s:o}", "extracted", str_or_null(na), "expected", str_or_null(nb)));
        free(na);
        free(nb);
    }
    put_result(res, &r);
    *out = res;
    return SM_OK;
}

sm_code sm_answer_compare_values(const char *a, const char *b, json_t **out, sm_err *err)
{
    sm_answer_policy pol = sm_answer_policy_default();
    return compare_values_policy(a, b, &pol, out, err);
}

/* The key, itself extracted when written as a solution ("\boxed{3}", "Answer: 3"). */
static sm_code key_answer(const char *answer_key, char **key, sm_err *err)
{
    *key = NULL;
    if (strstr(answer_key, "\\boxed") || strstr(answer_key, "\\fbox") ||
        last_ci(answer_key, strlen(answer_key), "answer")) {
        sm_code rc = sm_answer_extract(answer_key, key, err);
        if (rc != SM_OK)
            return rc;
    }
    if (!*key) {
        const char *k = answer_key;
        size_t n = strlen(k);
        trim_answer(&k, &n);
        *key = dup_range(k, n);
        if (!*key)
            return sm_err_set(err, SM_ENOMEM, "answer: out of memory");
    }
    return SM_OK;
}

sm_code sm_answer_compare_policy(const char *student_text, const char *answer_key,
                                 const sm_answer_policy *policy, json_t **out, sm_err *err)
{
    if (out)
        *out = NULL;
    if (!student_text || !answer_key || !out)
        return sm_err_set(err, SM_EINVAL, "answer: NULL argument");
    sm_answer_policy def = sm_answer_policy_default();
    sm_answer_found f;
    char *key = NULL;
    sm_code rc = sm_answer_find(student_text, &f, err);
    if (rc != SM_OK)
        return rc;
    rc = key_answer(answer_key, &key, err);
    if (rc == SM_OK)
        rc = compare_values_policy(f.answer, key, policy ? policy : &def, out, err);
    if (rc == SM_OK) {
        size_t n = f.span_len > 300 ? 300 : f.span_len;
        char *src = f.answer ? dup_range(student_text + f.span_off, n) : NULL;
        json_object_set_new(*out, "rule", json_string(f.rule));
        json_object_set_new(*out, "source", str_or_null(src));
        free(src);
    }
    free(f.answer);
    free(key);
    return rc;
}

sm_code sm_answer_compare(const char *student_text, const char *answer_key, json_t **out,
                          sm_err *err)
{
    return sm_answer_compare_policy(student_text, answer_key, NULL, out, err);
}
