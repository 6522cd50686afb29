/* validate: checks of SUBMIT, assignment and RESULT bodies before anything reaches the
 * database (docs/protocol.md lists every field and limit). */
#include <math.h>
#include <string.h>

#include "broker_int.h"
#include "grades.h"
#include "sm_notebook.h"
#include "sm_rubric.h"
#include "sm_testspec.h"
#include "sm_answer_policy.h"

#define MAX_CODE 200
#define MAX_TEXT (64u * 1024 * 1024)

static bool one_of(const char *s, const char *const *set)
{
    for (int i = 0; set[i]; i++)
        if (strcmp(s, set[i]) == 0)
            return true;
    return false;
}

static const char *const kinds[] = {"proof", "code", "math", NULL};
static const char *const languages[] = {"c", "cpp", "python", "java", NULL};

/* Rejects keys of obj that are not in allowed. */
static sm_code only_keys(const json_t *obj, const char *const *allowed, const char *what,
                         sm_err *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        if (!one_of(k, allowed))
            return sm_err_set(err, SM_EINVAL, "unknown field \"%.64s\" in %s", k, what);
    }
    return SM_OK;
}

static sm_code code_field(const json_t *body, const char *key, const char **out, sm_err *err)
{
    sm_code rc = sm_json_str(body, key, true, MAX_CODE, out, err);
    if (rc)
        return rc;
    if (!sm_proto_code_ok(*out, MAX_CODE))
        return sm_err_set(err, SM_EINVAL,
                          "field \"%s\" may only hold letters, digits, '.', '_' and '-'", key);
    return SM_OK;
}

static bool no_nul(const json_t *v)
{
    return !json_is_string(v) || strlen(json_string_value(v)) == json_string_length(v);
}

sm_code sm_validate_submit(const json_t *body, const char **course, const char **assignment,
                           int *priority, sm_err *err)
{
    static const char *const keys[] = {"course",          "assignment", "student_ref",
                                       "idempotency_key", "content",    "language",
                                       "priority",        "kind",       NULL};
    sm_code rc = only_keys(body, keys, "SUBMIT", err);
    const char *s = NULL, *p = NULL;
    if (!rc)
        rc = code_field(body, "course", course, err);
    if (!rc)
        rc = code_field(body, "assignment", assignment, err);
    if (!rc)
        rc = sm_json_str(body, "student_ref", true, 200, &s, err);
    if (!rc)
        rc = sm_json_str(body, "idempotency_key", true, 200, &s, err);
    if (!rc)
        rc = sm_json_str(body, "content", true, MAX_TEXT, &s, err);
    if (!rc)
        rc = sm_json_str(body, "language", false, 32, &s, err);
    if (!rc)
        rc = sm_json_str(body, "kind", false, 16, &s, err);
    if (!rc)
        rc = sm_json_str(body, "priority", false, 16, &p, err);
    if (rc)
        return rc;
    *priority = 0;
    if (p && strcmp(p, "batch") == 0)
        *priority = 1;
    else if (p && strcmp(p, "interactive") != 0)
        return sm_err_set(err, SM_EINVAL, "field \"priority\" must be interactive or batch");
    return SM_OK;
}

sm_code sm_validate_submit_kind(const json_t *body, const sm_assignment_ref *a, sm_err *err)
{
    const char *kind = json_string_value(json_object_get(body, "kind"));
    if (kind && strcmp(kind, a->kind) != 0)
        return sm_err_set(err, SM_EINVAL, "kind \"%.16s\" does not match the assignment's kind %s",
                          kind, a->kind);
    const char *lang = json_string_value(json_object_get(body, "language"));
    if (lang && !one_of(lang, languages))
        return sm_err_set(err, SM_EINVAL, "unknown language \"%.32s\" (c, cpp, python, java)",
                          lang);
    if (strcmp(a->kind, "code") == 0 && !lang && !a->language[0])
        return sm_err_set(err, SM_EINVAL,
                          "a code submission needs a language (the assignment names none)");
    const char *content = json_string_value(json_object_get(body, "content"));
    if (strcmp(a->kind, "code") == 0 && strcmp(lang ? lang : a->language, "python") == 0 &&
        sm_notebook_detect(content))
        return sm_notebook_check(content, NULL, err);
    return SM_OK;
}

static sm_code check_sampling(const json_t *s, sm_err *err)
{
    static const char *const keys[] = {
        "temperature",    "top_p",   "top_k", "min_p", "repetition_penalty",
        "max_new_tokens", "samples", "seed",  NULL};
    sm_code rc = only_keys(s, keys, "sampling", err);
    double d;
    int64_t i;
    if (!rc)
        rc = sm_json_num(s, "temperature", false, 0, 5, &d, err);
    if (!rc)
        rc = sm_json_num(s, "top_p", false, 0, 1, &d, err);
    if (!rc)
        rc = sm_json_int(s, "top_k", false, 0, 1000000, &i, err);
    if (!rc)
        rc = sm_json_num(s, "min_p", false, 0, 1, &d, err);
    if (!rc)
        rc = sm_json_num(s, "repetition_penalty", false, 0.01, 10, &d, err);
    if (!rc)
        rc = sm_json_int(s, "max_new_tokens", false, 1, 1000000, &i, err);
    if (!rc)
        rc = sm_json_int(s, "samples", false, 1, 64, &i, err);
    if (!rc)
        rc = sm_json_int(s, "seed", false, 0, INT64_MAX, &i, err);
    return rc ? sm_err_prefix(err, "sampling") : SM_OK;
}

/* The rubric's shape: free text (up to MAX_TEXT) or a list of criteria (sm_rubric_parse). */
static sm_code check_rubric(const json_t *body, sm_err *err)
{
    const json_t *v = json_object_get(body, "rubric");
    const char *s;
    if (!json_is_array(v))
        return sm_json_str(body, "rubric", false, MAX_TEXT, &s, err);
    sm_rubric r;
    sm_code rc = sm_rubric_parse(v, &r, err);
    sm_rubric_clear(&r);
    return rc;
}

/* Whether the assignment's tests hold one named name. */
static bool has_test(const json_t *tests, const char *name)
{
    size_t i;
    json_t *t;
    json_array_foreach(tests, i, t)
    {
        const char *n = json_string_value(json_object_get(t, "name"));
        if (n && strcmp(n, name) == 0)
            return true;
    }
    return false;
}

/* The checks of criterion c against the assignment a: tests need tests, answer an answer key,
 * test:<name> a test of that name. */
static sm_code check_criterion_checks(const sm_criterion *c, const json_t *a, sm_err *err)
{
    const json_t *tests = json_object_get(a, "tests");
    bool have_tests = json_array_size(tests) > 0;
    bool have_key = json_is_string(json_object_get(a, "answer_key"));
    for (int k = 0; k < c->n_checks; k++) {
        const char *ck = c->checks[k];
        if (!strcmp(ck, "answer") && !have_key)
            return sm_err_set(err, SM_EINVAL,
                              "criterion \"%s\" checks the answer, but the assignment has no "
                              "answer_key",
                              c->id);
        if ((!strcmp(ck, "tests") || !strncmp(ck, "test:", 5)) && !have_tests)
            return sm_err_set(err, SM_EINVAL,
                              "criterion \"%s\" checks tests, but the assignment has none", c->id);
        if (!strncmp(ck, "test:", 5) && !has_test(tests, ck + 5))
            return sm_err_set(err, SM_EINVAL,
                              "criterion \"%s\" checks \"%.200s\", but the assignment has no "
                              "test named \"%.200s\"",
                              c->id, ck, ck + 5);
    }
    return SM_OK;
}

sm_code sm_validate_assignment_rubric(const json_t *a, sm_err *err)
{
    const json_t *v = json_object_get(a, "rubric");
    if (!json_is_array(v))
        return SM_OK;
    sm_rubric r;
    sm_code rc = sm_rubric_parse(v, &r, err);
    for (int i = 0; !rc && i < r.n; i++)
        rc = check_criterion_checks(&r.c[i], a, err);
    const json_t *mx = json_object_get(a, "max_score");
    if (!rc && json_is_number(mx) && fabs(json_number_value(mx) - r.total) > 0.005)
        rc = sm_err_set(err, SM_EINVAL,
                        "max_score %g is not the sum of the rubric's points, %g (omit max_score "
                        "to use the sum)",
                        json_number_value(mx), r.total);
    sm_rubric_clear(&r);
    return rc;
}

sm_code sm_validate_assignment(const json_t *body, bool create, sm_err *err)
{
    static const char *const keys[] = {
        "course",   "code",          "title", "kind",       "statement", "reference_solution",
        "rubric",   "language",      "tests", "answer_key", "max_score", "model",
        "sampling", "answer_policy", NULL};
    sm_code rc = only_keys(body, keys, "assignment", err);
    const char *s = NULL, *kind = NULL, *lang = NULL;
    const json_t *tests = NULL, *sampling = NULL;
    double d;
    if (!rc)
        rc = code_field(body, "course", &s, err);
    if (!rc)
        rc = code_field(body, "code", &s, err);
    if (!rc)
        rc = sm_json_str(body, "title", false, 500, &s, err);
    if (!rc)
        rc = sm_json_str(body, "kind", create, 16, &kind, err);
    if (!rc && kind && !one_of(kind, kinds))
        rc = sm_err_set(err, SM_EINVAL, "field \"kind\" must be proof, code or math");
    if (!rc)
        rc = sm_json_str(body, "statement", create, MAX_TEXT, &s, err);
    if (!rc)
        rc = sm_json_str(body, "reference_solution", false, MAX_TEXT, &s, err);
    if (!rc)
        rc = check_rubric(body, err);
    if (!rc)
        rc = sm_json_str(body, "language", false, 32, &lang, err);
    if (!rc && lang && !one_of(lang, languages))
        rc = sm_err_set(err, SM_EINVAL, "field \"language\" must be c, cpp, python or java");
    if (!rc)
        rc = sm_json_typed(body, "tests", false, JSON_ARRAY, &tests, err);
    if (!rc && tests)
        rc = sm_tests_validate(tests, lang, err);
    if (!rc)
        rc = sm_json_str(body, "answer_key", false, 100000, &s, err);
    sm_answer_policy policy; /* the worker's own parser: one set of rules (null clears it) */
    if (!rc)
        rc = sm_answer_policy_parse(json_object_get(body, "answer_policy"), &policy, err);
    if (!rc)
        rc = sm_json_num(body, "max_score", false, 0.01, 999999, &d, err);
    if (!rc)
        rc = sm_json_str(body, "model", false, 256, &s, err);
    if (!rc)
        rc = sm_json_typed(body, "sampling", false, JSON_OBJECT, &sampling, err);
    if (!rc && sampling)
        rc = check_sampling(sampling, err);
    if (!rc && create)
        rc = sm_validate_assignment_rubric(body, err);
    return rc;
}

static sm_code check_steps(const json_t *steps, sm_err *err)
{
    static const char *const verdicts[] = {"correct", "incorrect", "incomplete", "unclear", NULL};
    static const char *const keys[] = {"number",      "quoted",    "verdict",
                                       "explanation", "agreement", NULL};
    size_t i;
    json_t *e;
    int64_t seen_max = 0;
    json_array_foreach(steps, i, e)
    {
        if (!json_is_object(e))
            return sm_err_set(err, SM_EINVAL, "steps[%zu] must be an object", i);
        const char *s;
        int64_t n;
        double d;
        sm_code rc = only_keys(e, keys, "a step", err);
        if (!rc)
            rc = sm_json_int(e, "number", true, 1, 100000, &n, err);
        if (!rc)
            rc = sm_json_str(e, "quoted", false, MAX_TEXT, &s, err);
        if (!rc)
            rc = sm_json_str(e, "verdict", true, 16, &s, err);
        if (!rc && !one_of(s, verdicts))
            rc = sm_err_set(err, SM_EINVAL,
                            "verdict must be correct, incorrect, incomplete or unclear");
        if (!rc)
            rc = sm_json_str(e, "explanation", false, MAX_TEXT, &s, err);
        if (!rc)
            rc = sm_json_num(e, "agreement", false, 0, 1, &d, err);
        if (!rc && n <= seen_max)
            rc = sm_err_set(err, SM_EINVAL, "step numbers must increase");
        if (rc)
            return sm_err_prefix(err, "steps[%zu]", i);
        seen_max = n;
    }
    return SM_OK;
}

static sm_code check_checks(const json_t *checks, sm_err *err)
{
    static const char *const ckinds[] = {"compile", "test", "answer", NULL};
    static const char *const keys[] = {"kind",           "name",    "passed", "time_ms",
                                       "output_excerpt", "details", NULL};
    size_t i;
    json_t *e;
    json_array_foreach(checks, i, e)
    {
        if (!json_is_object(e))
            return sm_err_set(err, SM_EINVAL, "checks[%zu] must be an object", i);
        const char *s;
        bool b;
        int64_t n;
        const json_t *o;
        sm_code rc = only_keys(e, keys, "a check", err);
        if (!rc)
            rc = sm_json_str(e, "kind", true, 16, &s, err);
        if (!rc && !one_of(s, ckinds))
            rc = sm_err_set(err, SM_EINVAL, "kind must be compile, test or answer");
        if (!rc)
            rc = sm_json_str(e, "name", false, 500, &s, err);
        if (!rc)
            rc = sm_json_bool(e, "passed", true, &b, err);
        if (!rc)
            rc = sm_json_int(e, "time_ms", false, 0, INT32_MAX, &n, err);
        if (!rc)
            rc = sm_json_str(e, "output_excerpt", false, 1000000, &s, err);
        if (!rc)
            rc = sm_json_typed(e, "details", false, JSON_OBJECT, &o, err);
        if (rc)
            return sm_err_prefix(err, "checks[%zu]", i);
    }
    return SM_OK;
}

static sm_code check_reasoning(const json_t *rs, sm_err *err)
{
    static const char *const keys[] = {"sample", "text", "tokens", NULL};
    size_t i;
    json_t *e;
    int64_t last = -1;
    json_array_foreach(rs, i, e)
    {
        if (!json_is_object(e))
            return sm_err_set(err, SM_EINVAL, "reasoning[%zu] must be an object", i);
        const char *s;
        int64_t n, t;
        sm_code rc = only_keys(e, keys, "a reasoning chain", err);
        if (!rc)
            rc = sm_json_int(e, "sample", true, 0, 1000, &n, err);
        if (!rc)
            rc = sm_json_str(e, "text", true, MAX_TEXT, &s, err);
        if (!rc)
            rc = sm_json_int(e, "tokens", false, 0, INT32_MAX, &t, err);
        if (!rc && n <= last)
            rc = sm_err_set(err, SM_EINVAL, "sample numbers must increase");
        if (rc)
            return sm_err_prefix(err, "reasoning[%zu]", i);
        last = n;
    }
    return SM_OK;
}

/* The provisional score from the checks: only in a needs_review result without the model's
 * score; {score within [0, max_score], basis tests|answer_key, detail}. */
static sm_code check_provisional(const json_t *p, bool has_score, const char *status,
                                 double max_score, sm_err *err)
{
    static const char *const keys[] = {"score", "basis", "detail", NULL};
    if (!p)
        return SM_OK;
    if (!json_is_object(p))
        return sm_err_set(err, SM_EINVAL, "field \"provisional\" must be an object");
    if (has_score || strcmp(status, "needs_review") != 0)
        return sm_err_set(err, SM_EINVAL,
                          "a provisional score belongs only in a needs_review result without a "
                          "score");
    double d;
    const char *s = NULL;
    sm_code rc = only_keys(p, keys, "provisional", err);
    if (!rc)
        rc = sm_json_num(p, "score", true, 0, max_score + 0.005, &d, err);
    if (!rc)
        rc = sm_json_str(p, "basis", true, 16, &s, err);
    if (!rc && strcmp(s, "tests") != 0 && strcmp(s, "answer_key") != 0)
        rc = sm_err_set(err, SM_EINVAL, "field \"basis\" must be tests or answer_key");
    if (!rc)
        rc = sm_json_str(p, "detail", false, 1000, &s, err);
    return rc ? sm_err_prefix(err, "provisional") : SM_OK;
}

/* The criteria of a RESULT for an assignment scored by criteria: [{id, description,
 * max_points, verdict (met|partly|not_met or null), points (null exactly with the verdict),
 * evidence, agreement}], 1..50 entries, unique ids, points within [0, max_points]; their sum
 * equals the score (within 0.01) when score is not NULL. The store matches them against the
 * assignment's rubric_criteria (ids, order and max_points). */
static sm_code check_criteria(const json_t *cs, const json_t *score, sm_err *err)
{
    static const char *const verdicts[] = {"met", "partly", "not_met", NULL};
    static const char *const keys[] = {"id",     "description", "max_points", "verdict",
                                       "points", "evidence",    "agreement",  NULL};
    size_t i, n = json_array_size(cs);
    json_t *e;
    double sum = 0;
    if (n < 1 || n > 50)
        return sm_err_set(err, SM_EINVAL, "field \"criteria\" must hold 1 to 50 criteria");
    json_array_foreach(cs, i, e)
    {
        const char *id = NULL, *s = NULL, *verdict = NULL;
        double max = 0, pts = 0, d;
        sm_code rc = json_is_object(e) ? only_keys(e, keys, "a criterion", err)
                                       : sm_err_set(err, SM_EINVAL, "must be an object");
        if (!rc)
            rc = sm_json_str(e, "id", true, 32, &id, err);
        for (size_t k = 0; !rc && k < i; k++)
            if (!strcmp(id, json_string_value(json_object_get(json_array_get(cs, k), "id"))))
                rc = sm_err_set(err, SM_EINVAL, "criterion \"%s\" appears twice", id);
        if (!rc)
            rc = sm_json_str(e, "description", false, 100000, &s, err);
        if (!rc)
            rc = sm_json_num(e, "max_points", true, 0.01, 999999, &max, err);
        if (!rc)
            rc = sm_json_str(e, "verdict", false, 16, &verdict, err);
        if (!rc && verdict && !one_of(verdict, verdicts))
            rc = sm_err_set(err, SM_EINVAL, "verdict must be met, partly, not_met or null");
        if (!rc)
            rc = sm_json_num(e, "points", false, 0, max + 0.005, &pts, err);
        if (!rc && !verdict != !json_is_number(json_object_get(e, "points")))
            rc = sm_err_set(err, SM_EINVAL, "verdict and points must be null together");
        if (!rc)
            rc = sm_json_str(e, "evidence", false, MAX_TEXT, &s, err);
        if (!rc)
            rc = sm_json_num(e, "agreement", false, 0, 1, &d, err);
        if (rc)
            return sm_err_prefix(err, "criteria[%zu]", i);
        sum += verdict ? pts : 0;
    }
    if (json_is_number(score) && fabs(sum - json_number_value(score)) > 0.01)
        return sm_err_set(err, SM_EINVAL, "score %g is not the sum of the criteria's points, %g",
                          json_number_value(score), sum);
    return SM_OK;
}

/* Whether flags (an array of strings) holds f. */
static bool has_flag(const json_t *flags, const char *f)
{
    size_t i;
    json_t *v;
    json_array_foreach(flags, i,
                       v) if (json_is_string(v) && !strcmp(json_string_value(v), f)) return true;
    return false;
}

static sm_code check_flags(const json_t *flags, sm_err *err)
{
    size_t i;
    json_t *f;
    json_array_foreach(flags, i, f)
    {
        if (!json_is_string(f) || json_string_length(f) > 200 || !no_nul(f))
            return sm_err_set(err, SM_EINVAL, "flags[%zu] must be a short string", i);
    }
    return SM_OK;
}

/* The masked spans: [{start, end}] byte offsets, in order, not overlapping. */
static sm_code check_spans(const json_t *spans, sm_err *err)
{
    static const char *const keys[] = {"start", "end", NULL};
    size_t i;
    json_t *e;
    int64_t last = -1;
    if (json_array_size(spans) < 1 || json_array_size(spans) > 1000)
        return sm_err_set(err, SM_EINVAL, "field \"spans\" must hold 1 to 1000 spans");
    json_array_foreach(spans, i, e)
    {
        int64_t a = 0, b = 0;
        sm_code rc = json_is_object(e) ? only_keys(e, keys, "a span", err)
                                       : sm_err_set(err, SM_EINVAL, "must be an object");
        if (!rc)
            rc = sm_json_int(e, "start", true, 0, INT64_MAX, &a, err);
        if (!rc)
            rc = sm_json_int(e, "end", true, 0, INT64_MAX, &b, err);
        if (!rc && (a >= b || a < last))
            rc = sm_err_set(err, SM_EINVAL, "spans must be non-empty, in order, not overlapping");
        if (rc)
            return sm_err_prefix(err, "spans[%zu]", i);
        last = b;
    }
    return SM_OK;
}

/* The injection-masked pass: only in a needs_review result flagged injection:*; {score (null
 * when the masked pass gave none), margin, differs (with the flag injection:score_differs
 * exactly when true), spans, and optionally summary, steps, content, reasoning, tokens}. */
static sm_code check_masked(const json_t *body, double max_score, sm_err *err)
{
    static const char *const keys[] = {"score",   "summary",  "steps",   "margin",
                                       "differs", "spans",    "content", "reasoning",
                                       "tokens",  "criteria", NULL};
    const json_t *m = json_object_get(body, "masked"), *flags = json_object_get(body, "flags");
    bool flagged = has_flag(flags, "injection:score_differs");
    if (!m)
        return flagged ? sm_err_set(err, SM_EINVAL,
                                    "flag injection:score_differs without "
                                    "\"masked\"")
                       : SM_OK;
    if (!json_is_object(m))
        return sm_err_set(err, SM_EINVAL, "field \"masked\" must be an object");
    if (strcmp(json_string_value(json_object_get(body, "status")), "needs_review") != 0)
        return sm_err_set(err, SM_EINVAL, "a masked score belongs only in a needs_review result");
    const json_t *o = NULL, *sc = json_object_get(m, "score");
    double d;
    bool differs = false;
    int64_t n;
    const char *s;
    sm_code rc = only_keys(m, keys, "masked", err);
    if (!rc && !json_is_null(sc))
        rc = sm_json_num(m, "score", true, 0, max_score + 0.005, &d, err);
    if (!rc)
        rc = sm_json_num(m, "margin", true, 0, max_score + 0.005, &d, err);
    if (!rc)
        rc = sm_json_bool(m, "differs", true, &differs, err);
    if (!rc && differs != flagged)
        rc = sm_err_set(err, SM_EINVAL,
                        "\"differs\" must be true exactly when the flags hold "
                        "injection:score_differs");
    if (!rc)
        rc = sm_json_str(m, "summary", false, 100000, &s, err);
    if (!rc)
        rc = sm_json_str(m, "content", false, MAX_TEXT, &s, err);
    if (!rc && (rc = sm_json_typed(m, "spans", true, JSON_ARRAY, &o, err)) == SM_OK)
        rc = check_spans(o, err);
    o = NULL; /* sm_json_typed leaves it as it was when the field is absent */
    if (!rc && (rc = sm_json_typed(m, "steps", false, JSON_ARRAY, &o, err)) == SM_OK && o)
        rc = check_steps(o, err);
    o = NULL;
    if (!rc && (rc = sm_json_typed(m, "reasoning", false, JSON_ARRAY, &o, err)) == SM_OK && o)
        rc = check_reasoning(o, err);
    o = NULL;
    if (!rc && (rc = sm_json_typed(m, "criteria", false, JSON_ARRAY, &o, err)) == SM_OK && o)
        rc = check_criteria(o, sc, err);
    o = NULL;
    if (!rc && (rc = sm_json_typed(m, "tokens", false, JSON_OBJECT, &o, err)) == SM_OK && o) {
        rc = sm_json_int(o, "prompt", false, 0, INT32_MAX, &n, err);
        if (!rc)
            rc = sm_json_int(o, "completion", false, 0, INT32_MAX, &n, err);
    }
    return rc ? sm_err_prefix(err, "masked") : SM_OK;
}

sm_code sm_validate_result(const json_t *body, sm_err *err)
{
    static const char *const keys[] = {"job_id",
                                       "score",
                                       "max_score",
                                       "status",
                                       "summary",
                                       "steps",
                                       "checks",
                                       "flags",
                                       "confidence",
                                       "reasoning",
                                       "model",
                                       "engine_version",
                                       "prompt_template_version",
                                       "sampling",
                                       "seed",
                                       "tokens",
                                       "timings",
                                       "provisional",
                                       "masked",
                                       "criteria",
                                       NULL};
    sm_code rc = only_keys(body, keys, "RESULT", err);
    const char *s = NULL;
    double score = 0, max_score = 0, d;
    int64_t n;
    const json_t *steps = NULL, *checks = NULL, *flags = NULL, *reasoning = NULL, *model = NULL,
                 *o = NULL, *tokens = NULL;
    if (!rc)
        rc = sm_json_int(body, "job_id", true, 1, INT64_MAX, &n, err);
    if (!rc)
        rc = sm_json_str(body, "status", true, 16, &s, err);
    if (!rc && strcmp(s, "graded") != 0 && strcmp(s, "needs_review") != 0)
        rc = sm_err_set(err, SM_EINVAL, "field \"status\" must be graded or needs_review");
    /* max_score is optional: the stored one is the assignment's, and the store checks the score
     * against it (a max_score given must match it) */
    max_score = 999999;
    if (!rc)
        rc = sm_json_num(body, "max_score", false, 0.01, 999999, &max_score, err);
    bool has_score = json_is_number(json_object_get(body, "score"));
    if (!rc)
        rc = sm_json_num(body, "score", false, 0, max_score + 0.005, &score, err); /* 2 decimals */
    if (!rc && !has_score && !strcmp(s, "graded"))
        rc = sm_err_set(err, SM_EINVAL, "a graded result needs a score");
    if (!rc)
        rc = check_provisional(json_object_get(body, "provisional"), has_score, s, max_score, err);
    if (!rc)
        rc = sm_json_str(body, "summary", false, 100000, &s, err);
    if (!rc)
        rc = sm_json_typed(body, "steps", false, JSON_ARRAY, &steps, err);
    if (!rc && steps)
        rc = check_steps(steps, err);
    if (!rc)
        rc = sm_json_typed(body, "checks", false, JSON_ARRAY, &checks, err);
    if (!rc && checks)
        rc = check_checks(checks, err);
    if (!rc)
        rc = sm_json_typed(body, "flags", false, JSON_ARRAY, &flags, err);
    if (!rc && flags)
        rc = check_flags(flags, err);
    if (!rc)
        rc = check_masked(body, max_score, err);
    o = NULL;
    if (!rc && (rc = sm_json_typed(body, "criteria", false, JSON_ARRAY, &o, err)) == SM_OK && o)
        rc = check_criteria(o, json_object_get(body, "score"), err);
    if (!rc)
        rc = sm_json_num(body, "confidence", false, 0, 1, &d, err);
    if (!rc)
        rc = sm_json_typed(body, "reasoning", false, JSON_ARRAY, &reasoning, err);
    if (!rc && reasoning)
        rc = check_reasoning(reasoning, err);
    if (!rc)
        rc = sm_json_typed(body, "model", true, JSON_OBJECT, &model, err);
    if (!rc)
        rc = sm_json_str(model, "name", true, 256, &s, err);
    if (!rc)
        rc = sm_json_str(model, "hash", true, 256, &s, err);
    if (!rc)
        rc = sm_json_str(body, "engine_version", true, 100, &s, err);
    if (!rc)
        rc = sm_json_str(body, "prompt_template_version", true, 100, &s, err);
    if (!rc)
        rc = sm_json_typed(body, "sampling", false, JSON_OBJECT, &o, err);
    if (!rc)
        rc = sm_json_int(body, "seed", false, INT64_MIN, INT64_MAX, &n, err);
    if (!rc)
        rc = sm_json_typed(body, "tokens", false, JSON_OBJECT, &tokens, err);
    if (!rc && tokens)
        rc = sm_json_int(tokens, "prompt", false, 0, INT32_MAX, &n, err);
    if (!rc && tokens)
        rc = sm_json_int(tokens, "completion", false, 0, INT32_MAX, &n, err);
    if (!rc)
        rc = sm_json_typed(body, "timings", false, JSON_OBJECT, &o, err);
    return rc;
}

sm_code sm_validate_list(const json_t *body, const char **course, const char **assignment,
                         sm_list_query *q, sm_err *err)
{
    static const char *const keys[] = {"course", "assignment", "updated_since",
                                       "cursor", "limit",      NULL};
    memset(q, 0, sizeof *q);
    int64_t limit = 0;
    sm_code rc = only_keys(body, keys, "LIST", err);
    if (!rc)
        rc = code_field(body, "course", course, err);
    if (!rc)
        rc = code_field(body, "assignment", assignment, err);
    if (!rc)
        rc = sm_json_str(body, "updated_since", false, 64, &q->updated_since, err);
    if (!rc && q->updated_since && !sm_grades_rfc3339_ok(q->updated_since))
        rc = sm_err_set(err, SM_EINVAL,
                        "field \"updated_since\" must be an RFC 3339 date-time such as "
                        "2026-12-01T08:00:00Z");
    if (!rc)
        rc = sm_json_str(body, "cursor", false, 64, &q->cursor, err);
    if (!rc)
        rc = sm_json_int(body, "limit", false, 1, SM_LIST_MAX, &limit, err);
    q->limit = (int)limit;
    return rc;
}
