/* sm_criteria: the checks of each rubric criterion and the RESULT's per-criterion aggregate
 * (see sm_criteria.h). */
#include "sm_criteria.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_result.h"

#define NOMEM(err) sm_err_set(err, SM_ENOMEM, "out of memory while assembling a result")
/* full points for a criterion whose check failed, or none while all of them passed */
#define SM_CRITERION_CONTRADICTS_FLAG "checks_contradict_criterion"

static const char *str_of(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* Whether check entry e is one that the criterion's check name names. */
static bool entry_matches(const json_t *e, const char *name)
{
    const char *kind = str_of(e, "kind");
    if (!strcmp(name, "compile") || !strcmp(name, "answer"))
        return !strcmp(kind, name);
    if (!strcmp(name, "tests"))
        return !strcmp(kind, "test");
    return !strncmp(name, "test:", 5) && !strcmp(kind, "test") &&
           !strcmp(str_of(e, "name"), name + 5);
}

/* Appends "label passed|FAILED" (or "... not run") to text, comma-separated. */
static void add_text(char **text, const char *what, const char *outcome)
{
    char *t = NULL;
    if (asprintf(&t, "%s%s%s %s", *text ? *text : "", *text ? ", " : "", what, outcome) < 0)
        t = NULL;
    free(*text);
    *text = t;
}

static const char *label_of(const json_t *e, char *buf, size_t n)
{
    const char *kind = str_of(e, "kind");
    if (!strcmp(kind, "test"))
        snprintf(buf, n, "test %s", str_of(e, "name"));
    else if (!strcmp(kind, "answer"))
        snprintf(buf, n, "final answer check");
    else if (!strcmp(str_of(e, "name"), "sandbox"))
        snprintf(buf, n, "the sandbox (the program could not be run)");
    else
        snprintf(buf, n, "compilation");
    return buf;
}

sm_crit_checks sm_criteria_checks(const json_t *checks, const sm_criterion *c, char **text)
{
    if (text)
        *text = NULL;
    if (c->n_checks == 0)
        return SM_CRIT_CHECKS_NONE;
    bool any_failed = false, all_ran = true;
    size_t i;
    const json_t *e;
    json_array_foreach((json_t *)checks, i, e)
    {
        bool hit = false;
        for (int k = 0; k < c->n_checks && !hit; k++)
            hit = entry_matches(e, c->checks[k]);
        if (!hit)
            continue;
        bool ok = json_is_true(json_object_get(e, "passed"));
        any_failed |= !ok;
        char label[200];
        if (text)
            add_text(text, label_of(e, label, sizeof label), ok ? "passed" : "FAILED");
    }
    for (int k = 0; k < c->n_checks; k++) {
        bool ran = false;
        json_array_foreach((json_t *)checks, i, e) ran |= entry_matches(e, c->checks[k]);
        if (ran)
            continue;
        all_ran = false;
        if (text) {
            char what[240];
            const char *n = c->checks[k];
            snprintf(what, sizeof what, "%s%s",
                     !strcmp(n, "tests")     ? "the tests"
                     : !strcmp(n, "compile") ? "compilation"
                     : !strcmp(n, "answer")  ? "final answer check"
                                             : "test ",
                     !strncmp(n, "test:", 5) ? n + 5 : "");
            add_text(text, what, "not run");
        }
    }
    return any_failed ? SM_CRIT_CHECKS_FAILED
           : all_ran  ? SM_CRIT_CHECKS_PASSED
                      : SM_CRIT_CHECKS_NONE;
}

/* What the valid samples say about criterion k. */
typedef struct crit_vote {
    double points;           /* median, 2 decimals */
    sm_crit_verdict verdict; /* majority */
    double agreement;
    const char *evidence;
} crit_vote;

static double median_points(const sm_job *j, int k)
{
    double v[64];
    int n = 0;
    for (int i = 0; i < j->n_samples && n < 64; i++)
        if (j->s[i].valid && j->s[i].v.n_criteria > k)
            v[n++] = j->s[i].v.criteria[k].points;
    return round(sm_grade_median(v, n) * 100.0) / 100.0;
}

/* The majority verdict on criterion k (a tie: the representative's, else the more severe),
 * its share of the valid samples and the evidence of the representative or the first valid
 * sample holding it. */
static void vote(const sm_job *j, int rep, int k, crit_vote *out)
{
    static const sm_crit_verdict order[] = {SM_CRIT_NOT_MET, SM_CRIT_PARTLY, SM_CRIT_MET};
    int count[SM_CRIT_KINDS] = {0}, n_valid = 0;
    for (int i = 0; i < j->n_samples; i++)
        if (j->s[i].valid && j->s[i].v.n_criteria > k) {
            count[j->s[i].v.criteria[k].verdict]++;
            n_valid++;
        }
    const sm_verdict_criterion *rc = &j->s[rep].v.criteria[k];
    sm_crit_verdict best = rc->verdict;
    for (int o = 0; o < SM_CRIT_KINDS; o++)
        if (count[order[o]] > count[best])
            best = order[o];
    out->verdict = best;
    out->agreement = n_valid ? (double)count[best] / n_valid : 0;
    out->evidence = rc->evidence;
    if (rc->verdict != best)
        for (int i = 0; i < j->n_samples; i++)
            if (j->s[i].valid && j->s[i].v.n_criteria > k &&
                j->s[i].v.criteria[k].verdict == best) {
                out->evidence = j->s[i].v.criteria[k].evidence;
                break;
            }
}

static json_t *entry_json(const sm_criterion *c, const crit_vote *v)
{
    json_t *o = json_pack("{s:s, s:s, s:f}", "id", c->id, "description", c->description,
                          "max_points", c->points);
    if (!o)
        return NULL;
    int bad = json_object_set_new(o, "verdict",
                                  v ? json_string(sm_crit_verdict_name(v->verdict)) : json_null());
    bad |= json_object_set_new(o, "points", v ? json_real(v->points) : json_null());
    bad |= json_object_set_new(o, "evidence", json_string(v && v->evidence ? v->evidence : ""));
    bad |= json_object_set_new(o, "agreement", v ? json_real(v->agreement) : json_null());
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Whether the checks contradict the points: full points with a failed check, or none with
 * every check passed. */
static bool contradicts(const sm_job *j, const sm_criterion *c, double points)
{
    sm_crit_checks st = sm_criteria_checks(j->checks, c, NULL);
    return (st == SM_CRIT_CHECKS_FAILED && points >= c->points - 1e-9) ||
           (st == SM_CRIT_CHECKS_PASSED && points <= 1e-9);
}

sm_code sm_criteria_json(const sm_job *j, json_t *r, json_t *flags, double *score, sm_err *err)
{
    const sm_rubric *rb = &j->rubric;
    if (rb->n <= 0)
        return SM_OK;
    crit_vote *v = calloc((size_t)rb->n, sizeof *v);
    json_t *arr = json_array();
    if (!v || !arr || json_object_set_new(r, "criteria", arr)) {
        free(v);
        return NOMEM(err);
    }
    double sum = 0;
    for (int k = 0; k < rb->n; k++)
        sum += v[k].points = median_points(j, k);
    *score = round(sum * 100.0) / 100.0;
    int rep = sm_grade_representative(j, *score);
    bool contra = false;
    sm_code rc = SM_OK;
    for (int k = 0; !rc && k < rb->n; k++) {
        vote(j, rep, k, &v[k]);
        contra |= contradicts(j, &rb->c[k], v[k].points);
        if (json_array_append_new(arr, entry_json(&rb->c[k], &v[k])))
            rc = NOMEM(err);
    }
    free(v);
    size_t i;
    json_t *f;
    json_array_foreach(flags, i, f) if (!strcmp(json_string_value(f),
                                                SM_CRITERION_CONTRADICTS_FLAG)) contra = false;
    if (!rc && contra && json_array_append_new(flags, json_string(SM_CRITERION_CONTRADICTS_FLAG)))
        rc = NOMEM(err);
    return rc;
}

sm_code sm_criteria_json_empty(const sm_job *j, json_t *r, sm_err *err)
{
    if (j->rubric.n <= 0)
        return SM_OK;
    json_t *arr = json_array();
    if (!arr || json_object_set_new(r, "criteria", arr))
        return NOMEM(err);
    for (int k = 0; k < j->rubric.n; k++)
        if (json_array_append_new(arr, entry_json(&j->rubric.c[k], NULL)))
            return NOMEM(err);
    return SM_OK;
}
