/* test_validate_masked: the broker's strict check of a RESULT's "masked" object (the
 * injection-masked pass, daemon/validate.c): what is accepted, and each rule that refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "validate.h"

/* A valid needs_review RESULT with a masked pass; flag: the extra flag or NULL. */
static json_t *body(const char *masked, const char *flag)
{
    json_error_t je;
    json_t *m = json_loads(masked, 0, &je);
    assert_non_null(m);
    json_t *b = json_pack(
        "{s:i, s:s, s:f, s:[s], s:{s:s, s:s}, s:s, s:s, s:o}", "job_id", 3, "status",
        "needs_review", "max_score", 4.0, "flags", "injection:role_marker", "model", "name", "m",
        "hash", "h", "engine_version", "e", "prompt_template_version", "proof-v1", "masked", m);
    if (flag)
        json_array_append_new(json_object_get(b, "flags"), json_string(flag));
    return b;
}

static sm_code check(const char *masked, const char *flag)
{
    json_t *b = body(masked, flag);
    sm_err err;
    sm_code rc = sm_validate_result(b, &err);
    if (rc)
        fprintf(stderr, "refused: %s\n", err.msg);
    json_decref(b);
    return rc;
}

#define OK_SPANS "\"spans\": [{\"start\": 0, \"end\": 4}, {\"start\": 9, \"end\": 12}]"

static void accepted(void **state)
{
    (void)state;
    assert_int_equal(
        check("{\"score\": null, \"margin\": 0.4, \"differs\": false, " OK_SPANS "}", NULL), SM_OK);
    assert_int_equal(check("{\"score\": 2.5, \"margin\": 0.4, \"differs\": true, " OK_SPANS
                           ", \"summary\": \"s\", \"content\": \"[removed]\", \"steps\": [{"
                           "\"number\": 1, \"verdict\": \"correct\"}], \"reasoning\": [{"
                           "\"sample\": 0, \"text\": \"t\", \"tokens\": 3}], \"tokens\": {"
                           "\"prompt\": 5, \"completion\": 3}}",
                           "injection:score_differs"),
                     SM_OK);
}

static void refused(void **state)
{
    (void)state;
    /* differs and the flag must agree, both ways */
    assert_int_equal(
        check("{\"score\": 1, \"margin\": 0.4, \"differs\": true, " OK_SPANS "}", NULL), SM_EINVAL);
    assert_int_equal(check("{\"score\": 1, \"margin\": 0.4, \"differs\": false, " OK_SPANS "}",
                           "injection:score_differs"),
                     SM_EINVAL);
    /* scores and margin within [0, max_score]; required fields; no unknown field */
    assert_int_equal(
        check("{\"score\": 4.5, \"margin\": 0.4, \"differs\": false, " OK_SPANS "}", NULL),
        SM_EINVAL);
    assert_int_equal(
        check("{\"score\": -1, \"margin\": 0.4, \"differs\": false, " OK_SPANS "}", NULL),
        SM_EINVAL);
    assert_int_equal(check("{\"score\": 1, \"margin\": 5, \"differs\": false, " OK_SPANS "}", NULL),
                     SM_EINVAL);
    assert_int_equal(check("{\"score\": 1, \"differs\": false, " OK_SPANS "}", NULL), SM_EINVAL);
    assert_int_equal(check("{\"score\": 1, \"margin\": 0.4, \"differs\": false}", NULL), SM_EINVAL);
    assert_int_equal(
        check("{\"score\": 1, \"margin\": 0.4, \"differs\": false, \"x\": 1, " OK_SPANS "}", NULL),
        SM_EINVAL);
    assert_int_equal(
        check("{\"score\": \"1\", \"margin\": 0.4, \"differs\": false, " OK_SPANS "}", NULL),
        SM_EINVAL);
    /* spans: non-empty, in order, not overlapping, only start and end */
    assert_int_equal(
        check("{\"score\": 1, \"margin\": 0.4, \"differs\": false, \"spans\": []}", NULL),
        SM_EINVAL);
    assert_int_equal(check("{\"score\": 1, \"margin\": 0.4, \"differs\": false, \"spans\": [{"
                           "\"start\": 3, \"end\": 3}]}",
                           NULL),
                     SM_EINVAL);
    assert_int_equal(check("{\"score\": 1, \"margin\": 0.4, \"differs\": false, \"spans\": [{"
                           "\"start\": 0, \"end\": 5}, {\"start\": 4, \"end\": 8}]}",
                           NULL),
                     SM_EINVAL);
    assert_int_equal(check("{\"score\": 1, \"margin\": 0.4, \"differs\": false, \"spans\": [{"
                           "\"start\": 0, \"end\": 5, \"kind\": 1}]}",
                           NULL),
                     SM_EINVAL);
    /* a bad step or chain inside */
    assert_int_equal(check("{\"score\": 1, \"margin\": 0.4, \"differs\": false, " OK_SPANS
                           ", \"steps\": [{\"number\": 1, \"verdict\": \"great\"}]}",
                           NULL),
                     SM_EINVAL);
    /* only in a needs_review result */
    json_t *b = body("{\"score\": 1, \"margin\": 0.4, \"differs\": false, " OK_SPANS "}", NULL);
    json_object_set_new(b, "status", json_string("graded"));
    json_object_set_new(b, "score", json_real(3));
    sm_err err;
    assert_int_equal(sm_validate_result(b, &err), SM_EINVAL);
    /* the flag without a masked object */
    json_object_del(b, "masked");
    json_object_set_new(b, "status", json_string("needs_review"));
    json_array_append_new(json_object_get(b, "flags"), json_string("injection:score_differs"));
    assert_int_equal(sm_validate_result(b, &err), SM_EINVAL);
    json_decref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(accepted), cmocka_unit_test(refused)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
