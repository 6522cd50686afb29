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

static const char *const crit_names[SM_CRIT_KINDS] = {"met", "partly", "not_met"};

const char *sm_verdict_kind_name(sm_verdict_kind k)
{
    return (k >= 0 && k < SM_VERDICT_KINDS) ? kind_names[k] : "unclear";
}

const char *sm_crit_verdict_name(sm_crit_verdict k)
{
    return (k >= 0 && k < SM_CRIT_KINDS) ? crit_names[k] : "not_met";
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
    for (int i = 0; i < v->n_criteria; i++)
        free(v->criteria[i].evidence);
    free(v->criteria);
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
    return (line){s, e > s ? (size_t)(e - s) : 0}; /* e before s: empty, not a huge length */
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

/* The parser's position in the block. */
typedef enum block_state {
    WANT_STEP,
    WANT_QUOTE,
    WANT_WHY,
    WANT_CRITERION, /* after a criterion's EVIDENCE: the next CRITERION or SCORE */
    WANT_EVIDENCE,
    WANT_SUMMARY,
    WANT_END
} block_state;

/* What a block being read has so far. */
typedef struct block_reader {
    sm_verdict *v;
    double max_score;
    const sm_rubric *rubric; /* NULL without criteria */
    block_state st;
    bool have_score;
    int cap;
} block_reader;

/* "STEP n: verdict": the next step, numbered in sequence, with a known verdict. */
static sm_code step_line(block_reader *b, line l, sm_err *err)
{
    sm_verdict *v = b->v;
    int cur = v->n_steps;
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
        return sm_err_set(err, SM_EFORMAT, "step %ld where step %d was expected", n, cur + 1);
    if (cur >= SM_VERDICT_MAX_STEPS)
        return sm_err_set(err, SM_EFORMAT, "more than %d steps", SM_VERDICT_MAX_STEPS);
    line vw = trim(stop + 1, e);
    int k = -1;
    for (int i = 0; i < SM_VERDICT_KINDS; i++)
        if (line_is(vw, kind_names[i]))
            k = i;
    if (k < 0)
        return sm_err_set(err, SM_EFORMAT,
                          "step %d: the verdict must be correct, incorrect, incomplete or unclear",
                          cur + 1);
    if (cur == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 8;
        sm_verdict_step *ns = realloc(v->steps, (size_t)b->cap * sizeof *ns);
        if (!ns)
            return sm_err_set(err, SM_ENOMEM, "out of memory");
        v->steps = ns;
    }
    v->steps[cur] = (sm_verdict_step){.number = cur + 1, .verdict = k};
    v->n_steps = cur + 1;
    b->st = WANT_QUOTE;
    return SM_OK;
}

/* The complaint about a SCORE that is not "points/maximum" in plain numbers: words ("three out
 * of four"), unicode minus signs or fractions ("2½"), a decimal comma. */
static sm_code score_format_error(double max_score, sm_err *err)
{
    char mx[32];
    sm_verdict_format_number(max_score, mx, sizeof mx);
    return sm_err_set(err, SM_EFORMAT,
                      "SCORE must read \"points/maximum\" (here \"<points>/%s\") with plain "
                      "numbers: digits and at most one decimal point",
                      mx);
}

/* With criteria: all of them listed, and SCORE (a/m as written) the sum of their points, which
 * becomes the score. */
static sm_code score_is_sum(block_reader *b, line a, line m, sm_err *err)
{
    sm_verdict *v = b->v;
    if (v->n_criteria < b->rubric->n)
        return sm_err_set(err, SM_EFORMAT,
                          "criterion \"%s\" is missing: write one CRITERION line per criterion, "
                          "in the rubric's order, before SCORE",
                          b->rubric->c[v->n_criteria].id);
    double sum = 0;
    for (int i = 0; i < v->n_criteria; i++)
        sum += v->criteria[i].points;
    sum = round(sum * 100.0) / 100.0;
    if (fabs(v->score - sum) > 0.005) {
        char s[32];
        sm_verdict_format_number(sum, s, sizeof s);
        return sm_err_set(err, SM_EFORMAT,
                          "SCORE %.*s/%.*s is not the sum of the criteria's points, %s", (int)a.n,
                          a.s, (int)m.n, m.s, s);
    }
    v->score = sum;
    return SM_OK;
}

/* "SCORE: a/b": b the assignment's maximum, 0 <= a <= b. */
static sm_code score_line(block_reader *b, line rest, sm_err *err)
{
    sm_verdict *v = b->v;
    if (v->n_steps == 0)
        return sm_err_set(err, SM_EFORMAT, "no STEP before SCORE");
    const char *slash = memchr(rest.s, '/', rest.n);
    if (!slash)
        return score_format_error(b->max_score, err);
    line a = trim(rest.s, slash), m = trim(slash + 1, rest.s + rest.n);
    double mx;
    if (!parse_number(a.s, a.n, &v->score) || !parse_number(m.s, m.n, &mx))
        return score_format_error(b->max_score, err);
    if (fabs(mx - b->max_score) > 1e-6 * (1 + b->max_score)) {
        char want[32];
        sm_verdict_format_number(b->max_score, want, sizeof want);
        return sm_err_set(err, SM_EFORMAT, "the maximum in SCORE must be %s", want);
    }
    if (v->score > b->max_score + 1e-9)
        return sm_err_set(err, SM_EFORMAT, "the score is above the maximum");
    if (b->rubric) {
        sm_code rc = score_is_sum(b, a, m, err);
        if (rc)
            return rc;
    }
    if (v->score > b->max_score) /* within the tolerance: never above the maximum */
        v->score = b->max_score;
    v->max_score = b->max_score;
    b->have_score = true;
    b->st = WANT_SUMMARY;
    return SM_OK;
}

/* The "=== END VERDICT ===" line: everything must be there, and after it only whitespace or
 * one closing markdown fence ("```"). */
static sm_code end_line(const block_reader *b, const char *p, const char *end, sm_err *err)
{
    if (b->st != WANT_END)
        return sm_err_set(err, SM_EFORMAT, "the block ends before %s",
                          b->st == WANT_QUOTE      ? "the QUOTE line"
                          : b->st == WANT_WHY      ? "the WHY line"
                          : b->st == WANT_EVIDENCE ? "the EVIDENCE line"
                          : !b->have_score         ? "a SCORE line"
                                                   : "the SUMMARY line");
    line rest = trim(p, end);
    if (rest.n == 0 || line_is(rest, "```"))
        return SM_OK;
    return sm_err_set(err, SM_EFORMAT, "text after \"%s\"", SM_VERDICT_END);
}

/* The id of a CRITERION line must be the rubric's next criterion; anything else is named. */
static sm_code criterion_id(const block_reader *b, line id, sm_err *err)
{
    const sm_rubric *r = b->rubric;
    int next = b->v->n_criteria, found = -1;
    for (int i = 0; i < r->n && found < 0; i++)
        if (id.n == strlen(r->c[i].id) && !memcmp(id.s, r->c[i].id, id.n))
            found = i;
    if (found == next)
        return SM_OK;
    int shown = (int)(id.n < 40 ? id.n : 40);
    if (next >= r->n)
        return sm_err_set(err, SM_EFORMAT,
                          "CRITERION \"%.*s\" after all %d criteria: write SCORE next", shown, id.s,
                          r->n);
    if (found < 0)
        return sm_err_set(err, SM_EFORMAT, "unknown criterion \"%.*s\"; the next one is \"%s\"",
                          shown, id.s, r->c[next].id);
    if (found < next)
        return sm_err_set(err, SM_EFORMAT, "criterion \"%s\" is repeated; the next one is \"%s\"",
                          r->c[found].id, r->c[next].id);
    return sm_err_set(err, SM_EFORMAT,
                      "criterion \"%s\" comes before \"%s\": list the criteria in the rubric's "
                      "order",
                      r->c[next].id, r->c[found].id);
}

/* "points/maximum" of criterion c with verdict k: plain numbers, the criterion's maximum, at
 * most 2 decimals, and points matching the verdict. */
static sm_code criterion_points(const sm_criterion *c, sm_crit_verdict k, line pts, double *out,
                                sm_err *err)
{
    char mx[32];
    sm_verdict_format_number(c->points, mx, sizeof mx);
    const char *slash = memchr(pts.s, '/', pts.n);
    line a = trim(pts.s, slash ? slash : pts.s + pts.n);
    line m = slash ? trim(slash + 1, pts.s + pts.n) : (line){NULL, 0};
    double p, max;
    if (!slash || !parse_number(a.s, a.n, &p) || !parse_number(m.s, m.n, &max))
        return sm_err_set(err, SM_EFORMAT,
                          "criterion \"%s\": write its points as \"<points>/%s\" with plain "
                          "numbers",
                          c->id, mx);
    if (fabs(max - c->points) > 1e-6)
        return sm_err_set(err, SM_EFORMAT, "criterion \"%s\": its maximum is %s", c->id, mx);
    if (p > c->points + 1e-9)
        return sm_err_set(err, SM_EFORMAT, "criterion \"%s\": %.*s points is above its maximum %s",
                          c->id, (int)a.n, a.s, mx);
    if (!sm_rubric_two_decimals(p))
        return sm_err_set(err, SM_EFORMAT, "criterion \"%s\": points have at most 2 decimals",
                          c->id);
    p = fmin(round(p * 100.0) / 100.0, c->points);
    if (k == SM_CRIT_MET && p != c->points)
        return sm_err_set(err, SM_EFORMAT,
                          "criterion \"%s\": met means all %s points; write partly otherwise",
                          c->id, mx);
    if (k == SM_CRIT_NOT_MET && p != 0)
        return sm_err_set(err, SM_EFORMAT, "criterion \"%s\": not_met means 0 points", c->id);
    if (k == SM_CRIT_PARTLY && (p <= 0 || p >= c->points))
        return sm_err_set(err, SM_EFORMAT,
                          "criterion \"%s\": partly means more than 0 and less than %s points",
                          c->id, mx);
    *out = p;
    return SM_OK;
}

/* "CRITERION id: verdict points/maximum": the rubric's next criterion. */
static sm_code criterion_line(block_reader *b, line l, sm_err *err)
{
    sm_verdict *v = b->v;
    if (!b->rubric)
        return sm_err_set(err, SM_EFORMAT,
                          "this assignment has no criteria: leave out the CRITERION lines");
    if (v->n_steps == 0)
        return sm_err_set(err, SM_EFORMAT, "no STEP before the CRITERION lines");
    const char *e = l.s + l.n, *colon = memchr(l.s, ':', l.n);
    if (!colon)
        return sm_err_set(err, SM_EFORMAT,
                          "a CRITERION line must read \"CRITERION id: verdict points/maximum\"");
    sm_code rc = criterion_id(b, trim(l.s + 10, colon), err);
    if (rc)
        return rc;
    const sm_criterion *c = &b->rubric->c[v->n_criteria];
    line rest = trim(colon + 1, e);
    const char *sp = rest.s;
    while (sp < e && !isspace((unsigned char)*sp))
        sp++;
    line vw = {rest.s, (size_t)(sp - rest.s)};
    int k = -1;
    for (int i = 0; i < SM_CRIT_KINDS; i++)
        if (line_is(vw, crit_names[i]))
            k = i;
    if (k < 0)
        return sm_err_set(err, SM_EFORMAT,
                          "criterion \"%s\": the verdict must be met, partly or not_met", c->id);
    double p = 0;
    if ((rc = criterion_points(c, (sm_crit_verdict)k, trim(sp, e), &p, err)))
        return rc;
    if (!v->criteria && !(v->criteria = calloc((size_t)b->rubric->n, sizeof *v->criteria)))
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    sm_verdict_criterion *vc = &v->criteria[v->n_criteria++];
    memcpy(vc->id, c->id, sizeof vc->id);
    vc->verdict = (sm_crit_verdict)k;
    vc->points = p;
    vc->max_points = c->points;
    b->st = WANT_EVIDENCE;
    return SM_OK;
}

/* "EVIDENCE: <quote or none>" after a CRITERION line. */
static sm_code evidence_line(block_reader *b, line l, sm_err *err)
{
    sm_verdict_criterion *vc = &b->v->criteria[b->v->n_criteria - 1];
    line rest;
    if (!keyed(l, "EVIDENCE", &rest))
        return sm_err_set(err, SM_EFORMAT, "criterion \"%s\": expected an EVIDENCE line", vc->id);
    if (rest.n > SM_VERDICT_MAX_FIELD)
        return sm_err_set(err, SM_EFORMAT, "criterion \"%s\": EVIDENCE is longer than %d bytes",
                          vc->id, SM_VERDICT_MAX_FIELD);
    if (!(vc->evidence = dup_field(rest, true)))
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    if (!vc->evidence[0])
        return sm_err_set(err, SM_EFORMAT,
                          "criterion \"%s\": EVIDENCE is empty (write none when there is none)",
                          vc->id);
    if (!strcasecmp(vc->evidence, "none"))
        vc->evidence[0] = '\0';
    b->st = WANT_CRITERION;
    return SM_OK;
}

/* One non-empty line of the block, other than the end line. */
static sm_code block_line(block_reader *b, line l, sm_err *err)
{
    line rest;
    int cur = b->v->n_steps;
    switch (b->st) {
    case WANT_STEP:
    case WANT_CRITERION:
        if (b->st == WANT_STEP &&
            (keyed(l, "STEP", &rest) || (l.n > 5 && !strncasecmp(l.s, "STEP ", 5))))
            return step_line(b, l, err);
        if (l.n > 10 && !strncasecmp(l.s, "CRITERION ", 10))
            return criterion_line(b, l, err);
        if (keyed(l, "SCORE", &rest))
            return score_line(b, rest, err);
        if (b->st == WANT_CRITERION)
            return sm_err_set(err, SM_EFORMAT, "expected a CRITERION or SCORE line, found \"%.*s\"",
                              (int)(l.n < 40 ? l.n : 40), l.s);
        if (l.n >= 8 && memmem(l.s, l.n, "</think>", 8))
            return sm_err_set(err, SM_EFORMAT,
                              "the verdict block must come after the reasoning (after </think>)");
        return sm_err_set(err, SM_EFORMAT, "expected a STEP or SCORE line, found \"%.*s\"",
                          (int)(l.n < 40 ? l.n : 40), l.s);
    case WANT_QUOTE:
        if (!keyed(l, "QUOTE", &rest))
            return sm_err_set(err, SM_EFORMAT, "step %d: expected a QUOTE line", cur);
        b->st = WANT_WHY;
        return field(rest, "QUOTE", cur, true, &b->v->steps[cur - 1].quoted, err);
    case WANT_WHY:
        if (!keyed(l, "WHY", &rest))
            return sm_err_set(err, SM_EFORMAT, "step %d: expected a WHY line", cur);
        b->st = WANT_STEP;
        return field(rest, "WHY", cur, false, &b->v->steps[cur - 1].explanation, err);
    case WANT_EVIDENCE:
        return evidence_line(b, l, err);
    case WANT_SUMMARY:
        if (!keyed(l, "SUMMARY", &rest))
            return sm_err_set(err, SM_EFORMAT, "expected the SUMMARY line after SCORE");
        if (rest.n == 0)
            return sm_err_set(err, SM_EFORMAT, "SUMMARY is empty");
        if (rest.n > SM_VERDICT_MAX_FIELD)
            return sm_err_set(err, SM_EFORMAT, "SUMMARY is too long");
        if (!(b->v->summary = dup_field(rest, false)))
            return sm_err_set(err, SM_ENOMEM, "out of memory");
        b->st = WANT_END;
        return SM_OK;
    case WANT_END:
        break;
    }
    return sm_err_set(err, SM_EFORMAT, "expected \"%s\" after SUMMARY", SM_VERDICT_END);
}

/* The block's lines from p (just after the begin line) to end; v->block_len set on success. */
static sm_code parse_block(const char *p, const char *end, double max_score,
                           const sm_rubric *rubric, sm_verdict *v, sm_err *err)
{
    block_reader b = {.v = v, .max_score = max_score, .rubric = rubric, .st = WANT_STEP};
    const char *body = p;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        line l = trim(p, le);
        p = nl ? nl + 1 : end;
        if (l.n == 0)
            continue;
        if (!nl && !line_is(l, SM_VERDICT_END)) /* cut off (max_new_tokens) mid-line */
            break;
        if (line_is(l, SM_VERDICT_END)) {
            sm_code rc = end_line(&b, p, end, err);
            if (!rc)
                v->block_len = (size_t)(l.s - body);
            return rc;
        }
        sm_code rc = block_line(&b, l, err);
        if (rc)
            return rc;
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

sm_code sm_verdict_parse(const char *text, size_t len, double max_score, const sm_rubric *rubric,
                         sm_verdict *out, sm_err *err)
{
    memset(out, 0, sizeof *out);
    if (rubric && rubric->n <= 0)
        rubric = NULL;
    if (!text)
        return sm_err_set(err, SM_EINVAL, "no text");
    if (memchr(text, '\0', len))
        return sm_err_set(err, SM_EFORMAT, "the output holds a NUL byte");
    const char *body = last_begin(text, len);
    if (!body)
        return sm_err_set(err, SM_EFORMAT, "no line \"%s\" starts a verdict block",
                          SM_VERDICT_BEGIN);
    sm_code rc = parse_block(body, text + len, max_score, rubric, out, err);
    if (rc)
        sm_verdict_clear(out);
    else
        out->block_start = (size_t)(body - text);
    return rc;
}

/* Writes the trimmed, non-empty lines of s[0, n) to buf, lower-cased, each followed by '\n',
 * and a NUL. buf has room for n + 2 bytes; returns the length without the NUL. */
static size_t normalize_lines(const char *s, size_t n, char *buf)
{
    size_t k = 0;
    const char *p = s, *end = s + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        line l = trim(p, nl ? nl : end);
        p = nl ? nl + 1 : end;
        if (l.n == 0)
            continue;
        for (size_t i = 0; i < l.n; i++)
            buf[k++] = (char)tolower((unsigned char)l.s[i]);
        buf[k++] = '\n';
    }
    buf[k] = '\0';
    return k;
}

sm_code sm_verdict_check_own(const sm_verdict *v, const char *text, const char *student,
                             sm_err *err)
{
    if (!student || !*student || v->block_len == 0)
        return SM_OK;
    size_t sn = strlen(student);
    char *blk = malloc(v->block_len + 3), *stu = malloc(sn + 3);
    if (!blk || !stu) {
        free(blk);
        free(stu);
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    blk[0] = stu[0] = '\n'; /* so that the copy must start at a line of the student's work */
    size_t bl = 1 + normalize_lines(text + v->block_start, v->block_len, blk + 1);
    size_t su = 1 + normalize_lines(student, sn, stu + 1);
    bool copied = bl > 1 && memmem(stu, su, blk, bl) != NULL;
    free(blk);
    free(stu);
    if (copied)
        return sm_err_set(err, SM_EFORMAT,
                          "the verdict block is copied from the student's work; write your own");
    return SM_OK;
}

/* The CRITERION/EVIDENCE lines of the instructions, one pair per criterion of r. */
static void criteria_instructions(FILE *f, const sm_rubric *r)
{
    for (int i = 0; i < r->n; i++) {
        char mx[32];
        sm_verdict_format_number(r->c[i].points, mx, sizeof mx);
        fprintf(f, "CRITERION %s: <met|partly|not_met> <points>/%s\n", r->c[i].id, mx);
        fprintf(f, "EVIDENCE: <the student's step that shows it, quoted on one line, or none>\n");
    }
    fprintf(f, "(one CRITERION/EVIDENCE pair per criterion, exactly these ids in this order: met "
               "= all its points, not_met = 0, partly = more than 0 and less than all; SCORE = "
               "the sum of the criteria's points)\n");
}

sm_code sm_verdict_instructions(double max_score, const sm_rubric *rubric, char **out, sm_err *err)
{
    char mx[32];
    sm_verdict_format_number(max_score, mx, sizeof mx);
    size_t size = 0;
    *out = NULL;
    FILE *f = open_memstream(out, &size);
    if (!f)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    fprintf(f,
            "End your answer with this verdict block, exactly in this format, one item per line "
            "and nothing after it:\n"
            "%s\n"
            "STEP 1: <correct|incorrect|incomplete|unclear>\n"
            "QUOTE: <the student's step 1, copied on one line>\n"
            "WHY: <why the step is right or wrong, on one line>\n"
            "STEP 2: ...\n"
            "QUOTE: ...\n"
            "WHY: ...\n"
            "(one STEP/QUOTE/WHY group per step of the student's work, numbered 1, 2, 3, ...)\n",
            SM_VERDICT_BEGIN);
    if (rubric && rubric->n > 0)
        criteria_instructions(f, rubric);
    fprintf(f, "SCORE: <points>/%s\nSUMMARY: <one line for the student>\n%s", mx, SM_VERDICT_END);
    if (ferror(f) | fclose(f)) {
        free(*out);
        *out = NULL;
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    return SM_OK;
}
