/* sm_inject: prompt-injection patterns in student text (PCRE2, caseless, UTF). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "sm_inject.h"

#include <pcre2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    const char *re;
} patterns[SM_INJECT_KINDS] = {
    {"injection:ignore_instructions",
     "\\b(ignore|disregard|forget|override|skip)\\b[^.\\n]{0,40}?\\b(previous|prior|above|"
     "earlier|preceding|all|any|your|the|system|grading)\\b[^.\\n]{0,40}?\\b(instructions?|"
     "prompts?|rules|directions|guidelines|rubric)\\b"},
    {"injection:role_marker",
     "<\\|[a-z_]{2,32}\\|>|^[ \\t>#*]*(system|assistant|user|developer)[ \\t]*:|\\[/?INST\\]|"
     "<</?SYS>>|^[ \\t]*#{1,6}[ \\t]*(system|instruction)s?\\b"},
    {"injection:fake_verdict",
     "^[ \\t]*=+[ \\t]*(END[ \\t]+)?VERDICT[ \\t]*=+|^[ \\t]*SCORE[ \\t]*:[ \\t]*[0-9]|"
     "^[ \\t]*STEP[ \\t]+[0-9]+[ \\t]*:[ \\t]*(correct|incorrect|incomplete|unclear)\\b"},
    {"injection:addresses_grader",
     "\\b(dear|note (to|for)( the)?|attention|hey|hello)[ ,]+(grader|marker|examiner|ai|model|"
     "assistant|chatbot|llm)\\b|\\b(you are|you're|act as|pretend to be)[ \\t]+(now[ \\t]+)?"
     "(a|an|the|my)?[ \\t]*\\w*[ \\t]*(grader|assistant|model|ai)\\b|\\b(give|award|assign|grant)"
     "[ \\t]+(me|this|the student|it)[^.\\n]{0,30}\\b(full|maximum|max|all|perfect|100%?)[ \\t]+"
     "(marks?|score|points|credit|grade)\\b|\\bfull (marks|score|points|credit)\\b"},
};

static pcre2_code *compile(int i)
{
    int ec;
    PCRE2_SIZE eo;
    return pcre2_compile((PCRE2_SPTR)patterns[i].re, PCRE2_ZERO_TERMINATED,
                         PCRE2_CASELESS | PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &ec, &eo, NULL);
}

static bool utf8_error(int rc)
{
    return rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21;
}

sm_code sm_inject_scan(const char *text, size_t len, const char *names[SM_INJECT_KINDS], int *n,
                       sm_err *err)
{
    *n = 0;
    for (int i = 0; i < SM_INJECT_KINDS; i++) {
        pcre2_code *re = compile(i);
        if (!re)
            return sm_err_set(err, SM_EINTERNAL, "injection pattern %d does not compile", i);
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
        if (!md) {
            pcre2_code_free(re);
            return sm_err_set(err, SM_ENOMEM, "out of memory");
        }
        int rc = pcre2_match(re, (PCRE2_SPTR)text, len, 0, 0, md, NULL);
        pcre2_match_data_free(md);
        pcre2_code_free(re);
        if (utf8_error(rc))
            return sm_err_set(err, SM_EINVAL, "student text is not valid UTF-8");
        if (rc > 0)
            names[(*n)++] = patterns[i].name;
        else if (rc != PCRE2_ERROR_NOMATCH)
            names[(*n)++] = patterns[i].name; /* match limit hit on hostile text: flag it */
    }
    return SM_OK;
}

const char *sm_inject_kind_name(int kind)
{
    return kind >= 0 && kind < SM_INJECT_KINDS ? patterns[kind].name : "";
}

/* Appends the matches of pattern i in text from byte 0 on; a match limit hit stops quietly. */
static sm_code find_one(int i, const char *text, size_t len, sm_inject_span *spans, int max, int *n,
                        sm_err *err)
{
    pcre2_code *re = compile(i);
    if (!re)
        return sm_err_set(err, SM_EINTERNAL, "injection pattern %d does not compile", i);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) {
        pcre2_code_free(re);
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    sm_code out = SM_OK;
    for (size_t at = 0; at <= len && *n < max;) {
        uint32_t opts = at > 0 ? PCRE2_NO_UTF_CHECK : 0;
        int rc = pcre2_match(re, (PCRE2_SPTR)text, len, at, opts, md, NULL);
        if (utf8_error(rc)) {
            out = sm_err_set(err, SM_EINVAL, "student text is not valid UTF-8");
            break;
        }
        if (rc <= 0)
            break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] > ov[0])
            spans[(*n)++] = (sm_inject_span){.start = ov[0], .end = ov[1], .kind = i};
        at = ov[1] > at ? ov[1] : at + 1;
        while (at < len && ((unsigned char)text[at] & 0xC0) == 0x80)
            at++; /* an empty match: on to the next character */
    }
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return out;
}

sm_code sm_inject_find(const char *text, size_t len, sm_inject_span *spans, int max, int *n,
                       sm_err *err)
{
    *n = 0;
    for (int i = 0; i < SM_INJECT_KINDS; i++) {
        sm_code rc = find_one(i, text, len, spans, max, n, err);
        if (rc)
            return rc;
    }
    return SM_OK;
}

static bool cont_byte(const char *text, size_t at)
{
    return ((unsigned char)text[at] & 0xC0) == 0x80;
}

static bool space_at(const char *text, size_t at)
{
    return text[at] == ' ' || text[at] == '\t' || text[at] == '\n' || text[at] == '\r' ||
           text[at] == '\f' || text[at] == '\v';
}

static int cmp_span(const void *a, const void *b)
{
    const sm_inject_span *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Whether text[from, to) is white space only. */
static bool blank(const char *text, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        if (!space_at(text, i))
            return false;
    return true;
}

int sm_inject_normalize(const char *text, size_t len, sm_inject_span *s, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        sm_inject_span v = s[i];
        v.end = v.end > len ? len : v.end;
        v.start = v.start > v.end ? v.end : v.start;
        while (v.start > 0 && v.start < len && cont_byte(text, v.start))
            v.start--;
        while (v.end < len && cont_byte(text, v.end))
            v.end++;
        if (v.end > v.start)
            s[k++] = v;
    }
    if (k > 1) /* s may be NULL when there are no spans */
        qsort(s, (size_t)k, sizeof *s, cmp_span);
    int m = 0;
    for (int i = 0; i < k; i++) {
        if (m > 0 && (s[i].start <= s[m - 1].end || blank(text, s[m - 1].end, s[i].start))) {
            if (s[i].end > s[m - 1].end)
                s[m - 1].end = s[i].end;
            if (s[i].kind < s[m - 1].kind)
                s[m - 1].kind = s[i].kind;
            continue;
        }
        s[m++] = s[i];
    }
    return m;
}

static bool sentence_end(char c)
{
    return c == '.' || c == '!' || c == '?';
}

/* The start of the sentence holding text[at], or at when none starts within reach. */
static size_t widen_back(const char *text, size_t at)
{
    for (size_t b = at, steps = 0; steps <= SM_INJECT_WIDEN_MAX; b--, steps++) {
        if (b == 0 || text[b - 1] == '\n')
            return b;
        if (b >= 2 && space_at(text, b - 1) && sentence_end(text[b - 2]))
            return b;
    }
    return at;
}

/* The end of the sentence holding text[at - 1], or at when none ends within reach. */
static size_t widen_fwd(const char *text, size_t len, size_t at)
{
    for (size_t e = at, steps = 0; steps <= SM_INJECT_WIDEN_MAX; e++, steps++) {
        if (e >= len || text[e] == '\n')
            return e;
        if (e > 0 && sentence_end(text[e - 1]) && space_at(text, e))
            return e;
    }
    return at;
}

int sm_inject_widen(const char *text, size_t len, sm_inject_span *s, int n)
{
    n = sm_inject_normalize(text, len, s, n);
    for (int i = 0; i < n; i++) {
        s[i].start = widen_back(text, s[i].start);
        s[i].end = widen_fwd(text, len, s[i].end);
    }
    return sm_inject_normalize(text, len, s, n);
}

sm_code sm_inject_mask(const char *text, size_t len, const sm_inject_span *spans, int n,
                       const char *marker, char **out, sm_err *err)
{
    *out = NULL;
    sm_inject_span *s = n > 0 ? malloc((size_t)n * sizeof *s) : NULL;
    if (n > 0 && !s)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    if (n > 0)
        memcpy(s, spans, (size_t)n * sizeof *s);
    n = sm_inject_normalize(text, len, s, n);
    size_t ml = strlen(marker), cap = len + (size_t)n * ml + 1, o = 0, at = 0;
    char *p = malloc(cap);
    if (!p) {
        free(s);
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        memcpy(p + o, text + at, s[i].start - at);
        o += s[i].start - at;
        memcpy(p + o, marker, ml);
        o += ml;
        at = s[i].end;
    }
    memcpy(p + o, text + at, len - at);
    p[o + len - at] = '\0';
    free(s);
    *out = p;
    return SM_OK;
}
