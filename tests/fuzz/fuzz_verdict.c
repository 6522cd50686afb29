/* fuzz_verdict: fuzz target for the verdict block parser (worker/sm_verdict.c). The first
 * input byte picks the assignment's maximum score; the rest is the model's critique. A
 * parsed verdict must keep its promises: steps numbered 1..n without gaps (at most
 * SM_VERDICT_MAX_STEPS), a known verdict and non-empty bounded fields on each, a score in
 * [0, maximum] and the assignment's maximum; a refusal leaves the verdict empty and says why.
 * A first byte with its high bit set grades against a rubric of three criteria (maxima 2, 3 and 0.5, total 5.5):
 * a parsed block then scores each of them once, in order, within its maximum, with a verdict
 * matching its points, and a score equal to their sum. */
#include <math.h>
#include <string.h>

#include "fuzz_common.h"
#include "sm_rubric.h"
#include "sm_verdict.h"

static const sm_rubric *fuzz_rubric(void)
{
    static sm_rubric r;
    static int loaded;
    if (!loaded) {
        json_t *j = json_loads("[{\"id\": \"setup\", \"description\": \"d\", \"points\": 2},"
                               " {\"id\": \"step\", \"description\": \"d\", \"points\": 3},"
                               " {\"id\": \"a.b-c_d\", \"description\": \"d\", \"points\": 0.5}]",
                               0, NULL);
        FUZZ_CHECK(j && sm_rubric_parse(j, &r, NULL) == SM_OK); /* r borrows nothing from j */
        json_decref(j);
        loaded = 1;
    }
    return &r;
}

static void fuzz_criteria(const sm_verdict *v, const sm_rubric *r)
{
    FUZZ_CHECK(v->n_criteria == (r ? r->n : 0));
    double sum = 0;
    for (int i = 0; i < v->n_criteria; i++) {
        const sm_verdict_criterion *c = &v->criteria[i];
        FUZZ_CHECK(strcmp(c->id, r->c[i].id) == 0 && c->max_points == r->c[i].points);
        FUZZ_CHECK(c->points >= 0 && c->points <= c->max_points);
        FUZZ_CHECK(c->verdict != SM_CRIT_MET || c->points == c->max_points);
        FUZZ_CHECK(c->verdict != SM_CRIT_NOT_MET || c->points == 0);
        FUZZ_CHECK(c->verdict != SM_CRIT_PARTLY || (c->points > 0 && c->points < c->max_points));
        FUZZ_CHECK(c->evidence != NULL && strlen(c->evidence) <= SM_VERDICT_MAX_FIELD);
        sum += c->points;
    }
    FUZZ_CHECK(!r || fabs(v->score - sum) < 0.006);
}

static void fuzz_field(const char *s)
{
    FUZZ_CHECK(s != NULL && s[0] != '\0' && strlen(s) <= SM_VERDICT_MAX_FIELD);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const double maxima[] = {10, 1, 2.5, 100, 0.5, 7, 1000, 0.25};
    if (size < 1)
        return 0;
    const sm_rubric *r = (data[0] & 0x80) ? fuzz_rubric() : NULL;
    double max = r ? r->total : maxima[data[0] % (sizeof maxima / sizeof maxima[0])];
    sm_verdict v;
    memset(&v, 0x5A, sizeof v);
    sm_err err = {0};
    if (sm_verdict_parse((const char *)data + 1, size - 1, max, r, &v, &err) != SM_OK) {
        FUZZ_CHECK(err.msg[0] != '\0');
        FUZZ_CHECK(v.steps == NULL && v.n_steps == 0 && v.summary == NULL);
        FUZZ_CHECK(v.criteria == NULL && v.n_criteria == 0);
        return 0;
    }
    FUZZ_CHECK(v.n_steps >= 1 && v.n_steps <= SM_VERDICT_MAX_STEPS);
    for (int i = 0; i < v.n_steps; i++) {
        FUZZ_CHECK(v.steps[i].number == i + 1);
        FUZZ_CHECK(v.steps[i].verdict >= SM_VERDICT_CORRECT &&
                   v.steps[i].verdict < SM_VERDICT_KINDS);
        fuzz_field(v.steps[i].quoted);
        fuzz_field(v.steps[i].explanation);
        FUZZ_CHECK(sm_verdict_kind_name(v.steps[i].verdict) != NULL);
    }
    FUZZ_CHECK(isfinite(v.score) && v.score >= 0 && v.score <= max);
    FUZZ_CHECK(v.max_score == max);
    fuzz_field(v.summary);
    fuzz_criteria(&v, r);
    char num[32];
    sm_verdict_format_number(v.score, num, sizeof num);
    FUZZ_CHECK(num[0] != '\0');
    sm_verdict_clear(&v);
    return 0;
}
