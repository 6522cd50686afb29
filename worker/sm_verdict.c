/* sm_verdict: strict parser of the verdict block that ends a critique (format in sm_verdict.h
 * and docs/worker.md). */
#include "sm_verdict.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const kind_names[SM_VERDICT_KINDS] = {"correct", "incorrect", "incomplete",
                                                         "unclear"};

const char *sm_verdict_kind_name(sm_verdict_kind k)
{
    return (k >= 0 && k < SM_VERDICT_KINDS) ? kind_names[k] : "unclear";
}

void sm_verdict_format_number(double v, char *buf, size_t n)
{
    if (fabs(v - nearbyint(v)) < 1e-9 && fabs(v) < 1e15) {
        snprintf(buf, n, "%.0f", v);
        return;
    }
    snprintf(buf, n, "%.4f", v);
    size_t l = strlen(buf);
    while (l > 0 && buf[l - 1] == '0')
        buf[--l] = '\0';
    if (l > 0 && buf[l - 1] == '.')
        buf[--l] = '\0';
}

void sm_verdict_clear(sm_verdict *v)
{
    for (int i = 0; i < v->n_steps; i++) {
        free(v->steps[i].quoted);
        free(v->steps[i].explanation);
    }
    free(v->steps);
    free(v->summary);
    memset(v, 0, sizeof *v);
}

/* One line of the block: [s, e) with surrounding whitespace removed. */
typedef struct line {
    const char *s;
    size_t n;
} line;

static line trim(const char *s, const char *e)
{
    while (s < e && isspace((unsigned char)*s))
        s++;
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    return (line){s, (size_t)(e - s)};
}

static bool line_is(line l, const char *lit)
{
    return l.n == strlen(lit) && strncasecmp(l.s, lit, l.n) == 0;
}

/* If l starts with keyword (case-insensitive) followed by ':', the rest (trimmed) in *rest. */
static bool keyed(line l, const char *kw, line *rest)
{
    size_t k = strlen(kw);
    if (l.n <= k || strncasecmp(l.s, kw, k) != 0 || l.s[k] != ':')
        return false;
    *rest = trim(l.s + k + 1, l.s + l.n);
    return true;
}

static char *dup_field(line l, bool strip_quotes)
{
    if (strip_quotes && l.n >= 2 && l.s[0] == '"' && l.s[l.n - 1] == '"') {
        l.s++;
        l.n -= 2;
    }
    char *p = malloc(l.n + 1);
    if (p) {
        memcpy(p, l.s, l.n);
        p[l.n] = '\0';
    }
    return p;
}

/* A plain decimal number: digits with an optional fraction, nothing else. */
static bool parse_number(const char *s, size_t n, double *out)
{
    if (n == 0 || n > 32)
        return false;
    size_t i = 0, digits = 0;
    while (i < n && isdigit((unsigned char)s[i]))
        i++, digits++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && isdigit((unsigned char)s[i]))
            i++, digits++;
    }
    if (i != n || digits == 0)
        return false;
    char buf[40];
    memcpy(buf, s, n);
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    return isfinite(*out);
}

static sm_code field(line rest, const char *what, int step, bool quotes, char **out, sm_err *err)
{
    if (rest.n == 0)
        return sm_err_set(err, SM_EFORMAT, "step %d: %s is empty", step, what);
    if (rest.n > SM_VERDICT_MAX_FIELD)
        return sm_err_set(err, SM_EFORMAT, "step %d: %s is longer than %d bytes", step, what,
                          SM_VERDICT_MAX_FIELD);
    if (!(*out = dup_field(rest, quotes)))
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    if (!**out) { /* QUOTE: "" */
        free(*out);
        *out = NULL;
        return sm_err_set(err, SM_EFORMAT, "step %d: %s is empty", step, what);
    }
    return SM_OK;
}

static sm_code parse_block(const char *p, const char *end, double max_score, sm_verdict *v,
                           sm_err *err)
{
    enum { WANT_STEP, WANT_QUOTE, WANT_WHY, WANT_SUMMARY, WANT_END } st = WANT_STEP;
    bool have_score = false;
    int cap = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        line l = trim(p, le);
        p = nl ? nl + 1 : end;
        if (l.n == 0)
            continue;
        line rest;
        int cur = v->n_steps;
        if (line_is(l, SM_VERDICT_END)) {
            if (st != WANT_END)
                return sm_err_set(err, SM_EFORMAT, "the block ends before %s",
                                  st == WANT_QUOTE ? "the QUOTE line"
                                  : st == WANT_WHY ? "the WHY line"
                                  : !have_score    ? "a SCORE line"
                                                   : "the SUMMARY line");
            for (; p < end; p++)
                if (!isspace((unsigned char)*p))
                    return sm_err_set(err, SM_EFORMAT, "text after \"%s\"", SM_VERDICT_END);
            return SM_OK;
        }
        switch (st) {
        case WANT_STEP:
            if (keyed(l, "STEP", &rest) || (l.n > 5 && !strncasecmp(l.s, "STEP ", 5))) {
                /* "STEP n: verdict" */
                const char *s = l.s + 4, *e = l.s + l.n;
                while (s < e && *s == ' ')
                    s++;
                const char *stop = s; /* the line is not NUL-terminated: no strtol */
                long n = 0;
                for (; stop < e && isdigit((unsigned char)*stop); stop++)
                    if (n < 1000000) /* saturates: any larger number is out of sequence */
                        n = n * 10 + (*stop - '0');
                if (stop == s || stop >= e || *stop != ':')
                    return sm_err_set(err, SM_EFORMAT, "a STEP line must read \"STEP n: verdict\"");
                if (n != cur + 1)
                    return sm_err_set(err, SM_EFORMAT, "step %ld where step %d was expected", n,
                                      cur + 1);
                if (cur >= SM_VERDICT_MAX_STEPS)
                    return sm_err_set(err, SM_EFORMAT, "more than %d steps", SM_VERDICT_MAX_STEPS);
                line vw = trim(stop + 1, e);
                int k = -1;
                for (int i = 0; i < SM_VERDICT_KINDS; i++)
                    if (line_is(vw, kind_names[i]))
                        k = i;
                if (k < 0)
                    return sm_err_set(err, SM_EFORMAT,
                                      "step %d: the verdict must be correct, incorrect, "
                                      "incomplete or unclear",
                                      cur + 1);
                if (cur == cap) {
                    cap = cap ? 2 * cap : 8;
                    sm_verdict_step *ns = realloc(v->steps, (size_t)cap * sizeof *ns);
                    if (!ns)
                        return sm_err_set(err, SM_ENOMEM, "out of memory");
                    v->steps = ns;
                }
                v->steps[cur] = (sm_verdict_step){.number = cur + 1, .verdict = k};
                v->n_steps = cur + 1;
                st = WANT_QUOTE;
            } else if (keyed(l, "SCORE", &rest)) {
                if (cur == 0)
                    return sm_err_set(err, SM_EFORMAT, "no STEP before SCORE");
                const char *slash = memchr(rest.s, '/', rest.n);
                if (!slash)
                    return sm_err_set(err, SM_EFORMAT, "SCORE must read \"points/maximum\"");
                line a = trim(rest.s, slash), b = trim(slash + 1, rest.s + rest.n);
                double mx;
                if (!parse_number(a.s, a.n, &v->score) || !parse_number(b.s, b.n, &mx))
                    return sm_err_set(err, SM_EFORMAT,
                                      "SCORE must read \"points/maximum\" with "
                                      "plain numbers");
                if (fabs(mx - max_score) > 1e-6 * (1 + max_score)) {
                    char want[32];
                    sm_verdict_format_number(max_score, want, sizeof want);
                    return sm_err_set(err, SM_EFORMAT, "the maximum in SCORE must be %s", want);
                }
                if (v->score > max_score + 1e-9)
                    return sm_err_set(err, SM_EFORMAT, "the score is above the maximum");
                if (v->score > max_score) /* within the tolerance: never above the maximum */
                    v->score = max_score;
                v->max_score = max_score;
                have_score = true;
                st = WANT_SUMMARY;
            } else {
                return sm_err_set(err, SM_EFORMAT, "expected a STEP or SCORE line, found \"%.*s\"",
                                  (int)(l.n < 40 ? l.n : 40), l.s);
            }
            break;
        case WANT_QUOTE:
            if (!keyed(l, "QUOTE", &rest))
                return sm_err_set(err, SM_EFORMAT, "step %d: expected a QUOTE line", cur);
            if (field(rest, "QUOTE", cur, true, &v->steps[cur - 1].quoted, err))
                return err ? err->code : SM_EFORMAT;
            st = WANT_WHY;
            break;
        case WANT_WHY:
            if (!keyed(l, "WHY", &rest))
                return sm_err_set(err, SM_EFORMAT, "step %d: expected a WHY line", cur);
            if (field(rest, "WHY", cur, false, &v->steps[cur - 1].explanation, err))
                return err ? err->code : SM_EFORMAT;
            st = WANT_STEP;
            break;
        case WANT_SUMMARY:
            if (!keyed(l, "SUMMARY", &rest))
                return sm_err_set(err, SM_EFORMAT, "expected the SUMMARY line after SCORE");
            if (rest.n == 0)
                return sm_err_set(err, SM_EFORMAT, "SUMMARY is empty");
            if (rest.n > SM_VERDICT_MAX_FIELD)
                return sm_err_set(err, SM_EFORMAT, "SUMMARY is too long");
            if (!(v->summary = dup_field(rest, false)))
                return sm_err_set(err, SM_ENOMEM, "out of memory");
            st = WANT_END;
            break;
        case WANT_END:
            return sm_err_set(err, SM_EFORMAT, "expected \"%s\" after SUMMARY", SM_VERDICT_END);
        }
    }
    return sm_err_set(err, SM_EFORMAT, "the verdict block is not closed with \"%s\"",
                      SM_VERDICT_END);
}

/* Start of the last line of text[0, len) that reads exactly SM_VERDICT_BEGIN, or NULL. */
static const char *last_begin(const char *text, size_t len)
{
    const char *found = NULL, *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (line_is(trim(p, le), SM_VERDICT_BEGIN))
            found = nl ? nl + 1 : end;
        p = nl ? nl + 1 : end;
    }
    return found;
}

sm_code sm_verdict_parse(const char *text, size_t len, double max_score, sm_verdict *out,
                         sm_err *err)
{
    memset(out, 0, sizeof *out);
    if (!text)
        return sm_err_set(err, SM_EINVAL, "no text");
    if (memchr(text, '\0', len))
        return sm_err_set(err, SM_EFORMAT, "the output holds a NUL byte");
    const char *start = text;
    for (const char *t = text; (t = memmem(t, len - (size_t)(t - text), "</think>", 8)); t += 8)
        start = t + 8;
    const char *body = last_begin(start, len - (size_t)(start - text));
    if (!body)
        return sm_err_set(err, SM_EFORMAT, "no line \"%s\" starts a verdict block",
                          SM_VERDICT_BEGIN);
    sm_code rc = parse_block(body, text + len, max_score, out, err);
    if (rc)
        sm_verdict_clear(out);
    return rc;
}

sm_code sm_verdict_instructions(double max_score, char **out, sm_err *err)
{
    char mx[32];
    sm_verdict_format_number(max_score, mx, sizeof mx);
    int n = asprintf(
        out,
        "End your answer with this verdict block, exactly in this format, one item per line "
        "and nothing after it:\n"
        "%s\n"
        "STEP 1: <correct|incorrect|incomplete|unclear>\n"
        "QUOTE: <the student's step 1, copied on one line>\n"
        "WHY: <why the step is right or wrong, on one line>\n"
        "STEP 2: ...\n"
        "QUOTE: ...\n"
        "WHY: ...\n"
        "(one STEP/QUOTE/WHY group per step of the student's work, numbered 1, 2, 3, ...)\n"
        "SCORE: <points>/%s\n"
        "SUMMARY: <one line for the student>\n"
        "%s",
        SM_VERDICT_BEGIN, mx, SM_VERDICT_END);
    if (n < 0) {
        *out = NULL;
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    return SM_OK;
}
