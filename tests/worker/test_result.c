/* test_result: the parts of a RESULT body (worker/sm_result.h): median, representative sample,
 * per-step vote, confidence, contradiction with the checks, the provisional score from the
 * checks, the repair's token budget, and sm_job_result with a provisional score when the
 * critique is unreadable or the model unavailable; rubric criteria: the JOB's rubric, the
 * per-criterion median, majority, evidence and agreement, the score as their sum, the
 * checks_contradict_criterion flag. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sm_result.h"

static void median(void **state)
{
    (void)state;
    double a[] = {3, 1, 2};
    assert_true(sm_grade_median(a, 3) == 2);
    assert_true(a[0] == 1 && a[2] == 3); /* sorted */
    double b[] = {4, 1, 3, 2};
    assert_true(sm_grade_median(b, 4) == 2.5);
    double c[] = {7};
    assert_true(sm_grade_median(c, 1) == 7);
    assert_true(sm_grade_median(c, 0) == 0);
}

static void confidence(void **state)
{
    (void)state;
    assert_true(sm_grade_confidence(3, 3, 0, 4) == 1.0);
    /* mean agreement 0.5, scores spread over the whole range: halved again */
    assert_true(fabs(sm_grade_confidence(1, 2, 4, 4) - 0.25) < 1e-12);
    assert_true(fabs(sm_grade_confidence(2, 2, 1, 4) - 0.875) < 1e-12);
    assert_true(sm_grade_confidence(0, 0, 0, 4) == 0);
    assert_true(sm_grade_confidence(1, 1, 0, 0) == 0);
}

static void contradicts(void **state)
{
    (void)state;
    assert_true(sm_grade_contradicts(SM_CHECKS_PASSED, 10, 4.9));
    assert_false(sm_grade_contradicts(SM_CHECKS_PASSED, 10, 5));
    assert_true(sm_grade_contradicts(SM_CHECKS_FAILED, 10, 10));
    assert_false(sm_grade_contradicts(SM_CHECKS_FAILED, 10, 9.5));
    assert_true(sm_grade_contradicts(SM_CHECKS_NOT_COMPILED, 10, 5.5));
    assert_false(sm_grade_contradicts(SM_CHECKS_NOT_COMPILED, 10, 5));
    assert_false(sm_grade_contradicts(SM_CHECKS_NONE, 10, 0));
}

static void provisional_tests(void **state)
{
    (void)state;
    sm_provisional p;
    /* 3 of 4 points, max 10: 7.5 */
    sm_check_tally t = {.verdict = SM_CHECKS_FAILED,
                        .basis = SM_BASIS_TESTS,
                        .tests_passed = 2,
                        .tests_total = 3,
                        .points_earned = 3,
                        .points_total = 4};
    assert_true(sm_provisional_from_checks(&t, 10, &p));
    assert_true(p.score == 7.5);
    assert_int_equal(p.basis, SM_BASIS_TESTS);
    assert_string_equal(sm_provisional_basis_name(p.basis), "tests");
    assert_non_null(strstr(p.detail, "3 of 4 test points"));
    /* rounded to 2 decimals: 1/3 x 10 */
    t = (sm_check_tally){.verdict = SM_CHECKS_FAILED,
                         .basis = SM_BASIS_TESTS,
                         .tests_passed = 1,
                         .tests_total = 3,
                         .points_earned = 1,
                         .points_total = 3};
    assert_true(sm_provisional_from_checks(&t, 10, &p));
    assert_true(p.score == 3.33);
    /* every test passed: full marks */
    t.verdict = SM_CHECKS_PASSED;
    t.tests_passed = 3;
    t.points_earned = 3;
    assert_true(sm_provisional_from_checks(&t, 4, &p));
    assert_true(p.score == 4);
    /* tests worth 0 points each: counted */
    t = (sm_check_tally){
        .verdict = SM_CHECKS_FAILED, .basis = SM_BASIS_TESTS, .tests_passed = 1, .tests_total = 2};
    assert_true(sm_provisional_from_checks(&t, 4, &p));
    assert_true(p.score == 2);
    /* did not compile: 0 */
    t = (sm_check_tally){.verdict = SM_CHECKS_NOT_COMPILED, .basis = SM_BASIS_TESTS};
    assert_true(sm_provisional_from_checks(&t, 4, &p));
    assert_true(p.score == 0);
    assert_non_null(strstr(p.detail, "did not compile"));
    /* no tests ran (the sandbox was down, or none given): nothing */
    t = (sm_check_tally){.verdict = SM_CHECKS_NONE, .basis = SM_BASIS_TESTS};
    assert_false(sm_provisional_from_checks(&t, 4, &p));
    assert_int_equal(p.basis, SM_BASIS_NONE);
    t = (sm_check_tally){0};
    assert_false(sm_provisional_from_checks(&t, 4, &p));
}

static void provisional_answer(void **state)
{
    (void)state;
    sm_provisional p;
    sm_check_tally t = {
        .verdict = SM_CHECKS_PASSED, .basis = SM_BASIS_ANSWER_KEY, .answer_found = true};
    assert_true(sm_provisional_from_checks(&t, 4, &p));
    assert_true(p.score == 4);
    assert_string_equal(sm_provisional_basis_name(p.basis), "answer_key");
    assert_non_null(strstr(p.detail, "equals"));
    t.verdict = SM_CHECKS_FAILED;
    assert_true(sm_provisional_from_checks(&t, 4, &p));
    assert_true(p.score == 0);
    assert_non_null(strstr(p.detail, "does not equal"));
    /* no final answer found: the checks decide nothing */
    t.answer_found = false;
    assert_false(sm_provisional_from_checks(&t, 4, &p));
    /* a non-positive maximum: nothing */
    t.answer_found = true;
    assert_false(sm_provisional_from_checks(&t, 0, &p));
}

static void repair_budget(void **state)
{
    (void)state;
    /* the critique leaves a quarter (at most 512) for the repair; together max_new */
    assert_int_equal(sm_grade_critique_budget(24), 18);
    assert_int_equal(sm_grade_critique_budget(1024), 768);
    assert_int_equal(sm_grade_critique_budget(4096), 4096 - 512);
    assert_int_equal(sm_grade_critique_budget(3), 2);
    assert_int_equal(sm_grade_critique_budget(1), 1);
    assert_int_equal(sm_grade_repair_budget(24, 18), 6);
    assert_int_equal(sm_grade_repair_budget(24, 5), 19);
    assert_int_equal(sm_grade_repair_budget(24, 24), 0);
    assert_int_equal(sm_grade_repair_budget(24, 30), 0);
}

/* ---- jobs with fixed model outputs ---- */

#define BLOCK(step2, score)                                                         \
    "=== VERDICT ===\nSTEP 1: correct\nQUOTE: x + 2 = 5\nWHY: fine\nSTEP 2: " step2 \
    "\nQUOTE: x = 7\nWHY: why\nSCORE: " score "/4\nSUMMARY: s\n=== END VERDICT ==="

typedef struct fixture {
    sm_config cfg;
    sm_prompt_set *prompts;
    sm_grader g;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    sm_config_defaults(&f->cfg);
    sm_err err;
    if (!f || sm_prompt_set_load(NULL, &f->prompts, &err))
        return -1;
    f->g = (sm_grader){.prompts = f->prompts,
                       .cfg = &f->cfg,
                       .model_name = "m",
                       .model_hash = "abc",
                       .engine_version = "test"};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sm_prompt_set_free(&f->prompts);
    free(f);
    return 0;
}

static sm_job *make_job(fixture *f, const char *kind, const char *key, int samples)
{
    json_t *body = json_pack("{s:i, s:i, s:{s:s, s:s, s:s, s:f, s:{s:i}}, s:{s:s}}", "job_id", 7,
                             "seed", 42, "assignment", "kind", kind, "statement", "Solve x+2=5",
                             "answer_key", key, "max_score", 4.0, "sampling", "samples", samples,
                             "submission", "content", "x + 2 = 5\nx = \\boxed{3}");
    sm_job *j;
    sm_err err;
    assert_int_equal(sm_job_new(&f->g, body, &j, &err), SM_OK);
    json_decref(body);
    return j;
}

static bool has_flag(const json_t *r, const char *flag)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(r, "flags"), i, v)
    {
        if (!strcmp(json_string_value(v), flag))
            return true;
    }
    return false;
}

/* ---- rubric criteria ---- */

#define RUBRIC                                                                       \
    "[{\"id\": \"setup\", \"description\": \"Writes the equation\", \"points\": 1}," \
    " {\"id\": \"algebra\", \"description\": \"Isolates x\", \"points\": 2},"        \
    " {\"id\": \"answer\", \"description\": \"Right answer\", \"points\": 1,"        \
    "  \"checks\": [\"answer\"]}]"

/* A math job with the criteria above (max_score: a number, or < 0 to leave it out). */
static sm_code criteria_job(fixture *f, const char *key, double max, const char *rubric,
                            int samples, sm_job **j, sm_err *err)
{
    json_t *body =
        json_pack("{s:i, s:i, s:{s:s, s:s, s:s, s:o, s:{s:i}}, s:{s:s}}", "job_id", 7, "seed", 42,
                  "assignment", "kind", "math", "statement", "Solve x+2=5", "answer_key", key,
                  "rubric", json_loads(rubric, JSON_DECODE_ANY, NULL), "sampling", "samples",
                  samples, "submission", "content", "x + 2 = 5\nx = \\boxed{3}");
    assert_non_null(body);
    if (max >= 0)
        json_object_set_new(json_object_get(body, "assignment"), "max_score", json_real(max));
    sm_code rc = sm_job_new(&f->g, body, j, err);
    json_decref(body);
    return rc;
}

#define CB_HEAD "=== VERDICT ===\nSTEP 1: correct\nQUOTE: x = 3\nWHY: right\n"
#define CB(setup, algebra, answer, score)                                                  \
    CB_HEAD "CRITERION setup: " setup "\nEVIDENCE: x + 2 = 5\nCRITERION algebra: " algebra \
            "\nEVIDENCE: ev " algebra "\nCRITERION answer: " answer                        \
            "\nEVIDENCE: none\nSCORE: " score "/4\nSUMMARY: s\n=== END VERDICT ==="

static const json_t *criterion(const json_t *r, int k)
{
    return json_array_get(json_object_get(r, "criteria"), (size_t)k);
}

static double num(const json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

static void result_criteria(void **state)
{
    fixture *f = *state;
    sm_err err;
    sm_job *j;
    /* the answer is right (key 3) */
    assert_int_equal(criteria_job(f, "3", 4, RUBRIC, 3, &j, &err), SM_OK);
    assert_int_equal(j->rubric.n, 3);
    assert_int_equal(sm_job_run_checks(j, &err), SM_OK);
    assert_int_equal(sm_job_set_sample(j, 0, CB("met 1/1", "partly 1/2", "met 1/1", "3"),
                                       SM_FINISH_STOP, NULL, 10, &err),
                     SM_OK);
    assert_int_equal(sm_job_set_sample(j, 1, CB("met 1/1", "met 2/2", "met 1/1", "4"),
                                       SM_FINISH_STOP, NULL, 10, &err),
                     SM_OK);
    assert_int_equal(sm_job_set_sample(j, 2, CB("met 1/1", "partly 0.5/2", "not_met 0/1", "1.5"),
                                       SM_FINISH_STOP, NULL, 10, &err),
                     SM_OK);
    json_t *r;
    assert_int_equal(sm_job_result(j, &r, &err), SM_OK);
    /* medians 1, 1 and 1: the score is their sum (the median of the scores would be 3) */
    assert_int_equal(json_array_size(json_object_get(r, "criteria")), 3);
    assert_true(num(r, "score") == 3);
    const json_t *c = criterion(r, 1);
    assert_string_equal(json_string_value(json_object_get(c, "id")), "algebra");
    assert_string_equal(json_string_value(json_object_get(c, "description")), "Isolates x");
    assert_true(num(c, "max_points") == 2);
    assert_true(num(c, "points") == 1);
    assert_string_equal(json_string_value(json_object_get(c, "verdict")), "partly");
    assert_true(fabs(num(c, "agreement") - 2.0 / 3) < 1e-9);
    /* evidence of the representative (sample 0: its score 3 is nearest to 3) */
    assert_string_equal(json_string_value(json_object_get(c, "evidence")), "ev partly 1/2");
    c = criterion(r, 2);
    assert_string_equal(json_string_value(json_object_get(c, "verdict")), "met");
    assert_true(num(c, "points") == 1 && fabs(num(c, "agreement") - 2.0 / 3) < 1e-9);
    assert_string_equal(json_string_value(json_object_get(c, "evidence")), "");
    assert_true(num(criterion(r, 0), "agreement") == 1);
    assert_false(has_flag(r, "checks_contradict_criterion"));
    assert_true(num(r, "max_score") == 4);
    json_decref(r);
    sm_job_free(&j);
    /* the answer check passed but the criterion that lists it gets 0: flagged */
    assert_int_equal(criteria_job(f, "3", -1, RUBRIC, 1, &j, &err), SM_OK);
    assert_true(j->max_score == 4); /* left out: the criteria's total */
    assert_int_equal(sm_job_run_checks(j, &err), SM_OK);
    assert_int_equal(sm_job_set_sample(j, 0, CB("met 1/1", "met 2/2", "not_met 0/1", "3"),
                                       SM_FINISH_STOP, NULL, 10, &err),
                     SM_OK);
    assert_int_equal(sm_job_result(j, &r, &err), SM_OK);
    assert_true(has_flag(r, "checks_contradict_criterion"));
    assert_string_equal(json_string_value(json_object_get(r, "status")), "needs_review");
    json_decref(r);
    sm_job_free(&j);
    /* the check failed (key 4) and the criterion gets full points: flagged; 0 points: not */
    const char *texts[2] = {CB("met 1/1", "partly 1/2", "met 1/1", "3"),
                            CB("met 1/1", "partly 1/2", "not_met 0/1", "2")};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(criteria_job(f, "4", 4, RUBRIC, 1, &j, &err), SM_OK);
        assert_int_equal(sm_job_run_checks(j, &err), SM_OK);
        assert_int_equal(sm_job_set_sample(j, 0, texts[k], SM_FINISH_STOP, NULL, 10, &err), SM_OK);
        assert_int_equal(sm_job_result(j, &r, &err), SM_OK);
        assert_true(has_flag(r, "checks_contradict_criterion") == (k == 0));
        json_decref(r);
        sm_job_free(&j);
    }
}

static void result_criteria_invalid(void **state)
{
    fixture *f = *state;
    sm_err err;
    sm_job *j;
    /* no valid sample: every criterion without verdict, points or agreement; no score */
    assert_int_equal(criteria_job(f, "3", 4, RUBRIC, 1, &j, &err), SM_OK);
    assert_int_equal(sm_job_set_sample(j, 0, CB("met 1/1", "met 2/2", "met 1/1", "3"),
                                       SM_FINISH_STOP, "still 3", 10, &err),
                     SM_OK);
    assert_false(j->s[0].valid);
    assert_non_null(strstr(j->s[0].repair_request, "SCORE 3/4 is not the sum"));
    json_t *r;
    assert_int_equal(sm_job_result(j, &r, &err), SM_OK);
    assert_null(json_object_get(r, "score"));
    assert_int_equal(json_array_size(json_object_get(r, "criteria")), 3);
    for (int k = 0; k < 3; k++) {
        const json_t *c = criterion(r, k);
        assert_true(json_is_null(json_object_get(c, "verdict")));
        assert_true(json_is_null(json_object_get(c, "points")));
        assert_true(json_is_null(json_object_get(c, "agreement")));
        assert_string_equal(json_string_value(json_object_get(c, "evidence")), "");
        assert_true(num(c, "max_points") > 0);
    }
    json_decref(r);
    sm_job_free(&j);
    /* a plain block is refused for a criteria job; a criteria block for a free-text one */
    assert_int_equal(criteria_job(f, "3", 4, RUBRIC, 1, &j, &err), SM_OK);
    assert_int_equal(sm_job_set_sample(j, 0, CB_HEAD "SCORE: 1/4\nSUMMARY: s\n=== END VERDICT ===",
                                       SM_FINISH_STOP, NULL, 10, &err),
                     SM_OK);
    assert_non_null(strstr(j->s[0].error, "criterion \"setup\" is missing"));
    sm_job_free(&j);
    assert_int_equal(criteria_job(f, "3", 4, "\"free text\"", 1, &j, &err), SM_OK);
    assert_int_equal(j->rubric.n, 0);
    assert_string_equal(j->rubric.text, "free text");
    assert_int_equal(sm_job_set_sample(j, 0, CB("met 1/1", "met 2/2", "met 1/1", "4"),
                                       SM_FINISH_STOP, NULL, 10, &err),
                     SM_OK);
    assert_false(j->s[0].valid);
    assert_int_equal(sm_job_result(j, &r, &err), SM_OK);
    assert_null(json_object_get(r, "criteria"));
    json_decref(r);
    sm_job_free(&j);
    /* bad JOBs: a malformed rubric, a max_score other than the criteria's total */
    assert_int_equal(criteria_job(f, "3", 4,
                                  "[{\"id\": \"a\", \"description\": \"d\", \"points\": -1}]", 1,
                                  &j, &err),
                     SM_EINVAL);
    assert_null(j);
    assert_non_null(strstr(err.msg, "JOB assignment: rubric[0].points"));
    assert_int_equal(criteria_job(f, "3", 5, RUBRIC, 1, &j, &err), SM_EINVAL);
    assert_non_null(strstr(err.msg, "max_score 5 is not the sum of its criteria's points, 4"));
    assert_int_equal(criteria_job(f, "3", 4, "7", 1, &j, &err), SM_EINVAL);
    assert_non_null(strstr(err.msg, "rubric must be a string or an array"));
}

static void vote_and_representative(void **state)
{
    fixture *f = *state;
    sm_err err;
    sm_job *j = make_job(f, "proof", "", 3);
    assert_int_equal(
        sm_job_set_sample(j, 0, BLOCK("incorrect", "1"), SM_FINISH_STOP, NULL, 5, &err), SM_OK);
    assert_int_equal(sm_job_set_sample(j, 1, BLOCK("correct", "4"), SM_FINISH_STOP, NULL, 5, &err),
                     SM_OK);
    assert_int_equal(sm_job_set_sample(j, 2, BLOCK("unclear", "2"), SM_FINISH_STOP, NULL, 5, &err),
                     SM_OK);
    assert_int_equal(sm_grade_representative(j, 2), 2);
    assert_int_equal(sm_grade_representative(j, 3.9), 1);
    /* step 2: one vote each; the representative's own verdict wins the tie */
    sm_step_vote v = sm_grade_vote_step(j, 2, 1);
    assert_int_equal(v.verdict, SM_VERDICT_UNCLEAR);
    assert_true(fabs(v.agreement - 1.0 / 3) < 1e-12);
    v = sm_grade_vote_step(j, 0, 0);
    assert_int_equal(v.verdict, SM_VERDICT_CORRECT);
    assert_true(v.agreement == 1.0);
    sm_job_free(&j);
    /* two of three say incorrect: the majority, quoted from the first holder */
    j = make_job(f, "proof", "", 3);
    assert_int_equal(sm_job_set_sample(j, 0, BLOCK("correct", "4"), SM_FINISH_STOP, NULL, 5, &err),
                     SM_OK);
    assert_int_equal(
        sm_job_set_sample(j, 1, BLOCK("incorrect", "1"), SM_FINISH_STOP, NULL, 5, &err), SM_OK);
    assert_int_equal(
        sm_job_set_sample(j, 2, BLOCK("incorrect", "2"), SM_FINISH_STOP, NULL, 5, &err), SM_OK);
    v = sm_grade_vote_step(j, 0, 1);
    assert_int_equal(v.verdict, SM_VERDICT_INCORRECT);
    assert_ptr_equal(v.src, &j->s[1].v.steps[1]);
    sm_job_free(&j);
}

static void result_provisional_answer(void **state)
{
    fixture *f = *state;
    sm_err err;
    json_t *r;
    /* x = 3 equals the key: an unreadable critique gets the provisional full marks */
    sm_job *j = make_job(f, "math", "3", 1);
    assert_int_equal(sm_job_run_checks(j, &err), SM_OK);
    assert_int_equal(j->tally.verdict, SM_CHECKS_PASSED);
    assert_int_equal(sm_job_set_sample(j, 0, "noise", SM_FINISH_EOS, "more noise", 9, &err), SM_OK);
    assert_int_equal(sm_job_result(j, &r, &err), SM_OK);
    assert_string_equal(json_string_value(json_object_get(r, "status")), "needs_review");
    assert_null(json_object_get(r, "score"));
    assert_true(has_flag(r, "invalid_verdict"));
    assert_true(has_flag(r, "provisional_from_checks"));
    json_t *p = json_object_get(r, "provisional");
    assert_true(json_number_value(json_object_get(p, "score")) == 4);
    assert_string_equal(json_string_value(json_object_get(p, "basis")), "answer_key");
    assert_non_null(strstr(json_string_value(json_object_get(r, "summary")), "provisional"));
    json_decref(r);
    sm_job_free(&j);
    /* a wrong answer: 0 */
    j = make_job(f, "math", "5", 1);
    assert_int_equal(sm_job_run_checks(j, &err), SM_OK);
    assert_int_equal(sm_job_set_sample(j, 0, "noise", SM_FINISH_EOS, "noise", 9, &err), SM_OK);
    assert_int_equal(sm_job_result(j, &r, &err), SM_OK);
    p = json_object_get(r, "provisional");
    assert_true(json_is_number(json_object_get(p, "score")));
    assert_true(json_number_value(json_object_get(p, "score")) == 0);
    json_decref(r);
    sm_job_free(&j);
    /* a readable critique: the model's score, no provisional one */
    j = make_job(f, "math", "3", 1);
    assert_int_equal(sm_job_run_checks(j, &err), SM_OK);
    assert_int_equal(sm_job_set_sample(j, 0, BLOCK("correct", "4"), SM_FINISH_STOP, NULL, 9, &err),
                     SM_OK);
    assert_int_equal(sm_job_result(j, &r, &err), SM_OK);
    assert_true(json_number_value(json_object_get(r, "score")) == 4);
    assert_null(json_object_get(r, "provisional"));
    assert_false(has_flag(r, "provisional_from_checks"));
    json_decref(r);
    sm_job_free(&j);
}

static void result_unavailable(void **state)
{
    fixture *f = *state;
    sm_err err;
    json_t *r;
    /* the model cannot take the prompt: the checks still give their score */
    sm_job *j = make_job(f, "math", "3", 2);
    assert_int_equal(sm_job_run_checks(j, &err), SM_OK);
    assert_false(sm_job_complete(j));
    sm_job_set_unavailable(j, "the prompt is too long");
    assert_true(sm_job_complete(j));
    assert_int_equal(sm_job_result(j, &r, &err), SM_OK);
    assert_string_equal(json_string_value(json_object_get(r, "status")), "needs_review");
    assert_true(has_flag(r, "model_unavailable"));
    assert_false(has_flag(r, "invalid_verdict"));
    assert_true(has_flag(r, "provisional_from_checks"));
    assert_int_equal(json_array_size(json_object_get(r, "reasoning")), 0);
    assert_true(json_number_value(json_object_get(json_object_get(r, "provisional"), "score")) ==
                4);
    assert_non_null(strstr(json_string_value(json_object_get(r, "summary")), "too long"));
    json_decref(r);
    sm_job_free(&j);
    /* a proof: no checks, no provisional score */
    j = make_job(f, "proof", "", 1);
    assert_int_equal(sm_job_run_checks(j, &err), SM_OK);
    sm_job_set_unavailable(j, "too long");
    assert_int_equal(sm_job_result(j, &r, &err), SM_OK);
    assert_null(json_object_get(r, "provisional"));
    assert_true(has_flag(r, "model_unavailable"));
    assert_non_null(strstr(json_string_value(json_object_get(r, "summary")), "teacher"));
    json_decref(r);
    sm_job_free(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(median),
        cmocka_unit_test(confidence),
        cmocka_unit_test(contradicts),
        cmocka_unit_test(provisional_tests),
        cmocka_unit_test(provisional_answer),
        cmocka_unit_test(repair_budget),
        cmocka_unit_test_setup_teardown(vote_and_representative, setup, teardown),
        cmocka_unit_test_setup_teardown(result_provisional_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(result_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(result_criteria, setup, teardown),
        cmocka_unit_test_setup_teardown(result_criteria_invalid, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
