/* test_rubric: sm_rubric_parse accepts free text, no rubric and well-formed criteria lists, and
 * rejects every malformed list with a message naming the field (ids, descriptions, points,
 * checks, sizes, unknown keys); sm_rubric_find and the total. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sm_rubric.h"

static const char *const GOOD =
    "[{\"id\": \"setup\", \"description\": \"Sets up the induction correctly\", \"points\": 2},"
    " {\"id\": \"step\", \"description\": \"Proves the inductive step\", \"points\": 3.5,"
    "  \"checks\": [\"tests\", \"test:add_small\"]},"
    " {\"id\": \"answer\", \"description\": \"States the right final answer\", \"points\": 0.25,"
    "  \"checks\": [\"answer\", \"compile\"]}]";

static json_t *load(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!j)
        fail_msg("bad test JSON: %s: %s", je.text, text);
    return j;
}

/* Parses text, expecting failure with a message containing want. */
static void expect_bad(const char *text, const char *want)
{
    json_t *j = load(text);
    sm_rubric r;
    sm_err err = {0};
    sm_code rc = sm_rubric_parse(j, &r, &err);
    if (rc != SM_EINVAL)
        fail_msg("accepted (rc %d): %s", rc, text);
    if (!strstr(err.msg, want))
        fail_msg("message \"%s\" lacks \"%s\" for %s", err.msg, want, text);
    assert_null(r.c);
    assert_int_equal(r.n, 0);
    sm_rubric_clear(&r);
    json_decref(j);
}

static void expect_good(const char *text, int n)
{
    json_t *j = load(text);
    sm_rubric r;
    sm_err err = {0};
    if (sm_rubric_parse(j, &r, &err) != SM_OK)
        fail_msg("rejected: %s: %s", err.msg, text);
    assert_int_equal(r.n, n);
    sm_rubric_clear(&r);
    json_decref(j);
}

static void parses_criteria(void **state)
{
    (void)state;
    json_t *j = load(GOOD);
    sm_rubric r;
    sm_err err = {0};
    assert_int_equal(sm_rubric_parse(j, &r, &err), SM_OK);
    assert_null(r.text);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.c[0].id, "setup");
    assert_string_equal(r.c[0].description, "Sets up the induction correctly");
    assert_true(r.c[0].points == 2.0);
    assert_int_equal(r.c[0].n_checks, 0);
    assert_int_equal(r.c[1].n_checks, 2);
    assert_string_equal(r.c[1].checks[0], "tests");
    assert_string_equal(r.c[1].checks[1], "test:add_small");
    assert_true(r.c[2].points == 0.25);
    assert_true(r.total == 5.75);
    assert_ptr_equal(sm_rubric_find(&r, "step"), &r.c[1]);
    assert_null(sm_rubric_find(&r, "Step"));
    assert_null(sm_rubric_find(&r, "nope"));
    assert_null(sm_rubric_find(&r, NULL));
    sm_rubric_clear(&r);
    assert_null(r.c);
    json_decref(j);
}

static void text_and_absent(void **state)
{
    (void)state;
    sm_rubric r;
    sm_err err = {0};
    assert_int_equal(sm_rubric_parse(NULL, &r, &err), SM_OK);
    assert_null(r.text);
    assert_null(r.c);
    json_t *null = json_null();
    assert_int_equal(sm_rubric_parse(null, &r, &err), SM_OK);
    assert_null(r.text);
    assert_int_equal(r.n, 0);
    json_t *s = json_string("Two points for the base case.");
    assert_int_equal(sm_rubric_parse(s, &r, &err), SM_OK);
    assert_string_equal(r.text, "Two points for the base case.");
    assert_null(r.c);
    assert_int_equal(r.n, 0);
    sm_rubric_clear(&r);
    json_decref(s);
    json_decref(null);
    assert_null(sm_rubric_find(NULL, "x"));
    sm_rubric_clear(NULL);
}

/* A list of n criteria c0..c(n-1) of 1 point each. */
static void many(char *buf, size_t size, int n)
{
    size_t o = 0;
    buf[o++] = '[';
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(buf + o, size - o,
                              "%s{\"id\": \"c%d\", \"description\": \"d\", \"points\": 1}",
                              i ? "," : "", i);
    snprintf(buf + o, size - o, "]");
}

static void rejects_shapes(void **state)
{
    (void)state;
    expect_bad("3", "rubric must be a string or an array");
    expect_bad("{\"id\": \"a\"}", "rubric must be a string or an array");
    expect_bad("true", "rubric must be a string or an array");
    expect_bad("[]", "1 to 50 criteria");
    expect_bad("[\"setup\"]", "rubric[0] must be an object");
    expect_bad("[{\"id\": \"a\", \"description\": \"d\", \"points\": 1, \"weight\": 2}]",
               "rubric[0] has an unknown key \"weight\"");
    char big[51 * 64 + 8];
    many(big, sizeof big, 51);
    expect_bad(big, "it has 51");
    many(big, sizeof big, 50);
    expect_good(big, 50);
}

static void ids(void **state)
{
    (void)state;
    expect_good("[{\"id\": \"A_z.0-9\", \"description\": \"d\", \"points\": 1}]", 1);
    expect_good("[{\"id\": \"abcdefghijklmnopqrstuvwxyz012345\", \"description\": \"d\","
                " \"points\": 1}]",
                1);
    expect_bad("[{\"id\": \"abcdefghijklmnopqrstuvwxyz0123456\", \"description\": \"d\","
               " \"points\": 1}]",
               "rubric[0].id must be 1 to 32");
    expect_bad("[{\"id\": \"\", \"description\": \"d\", \"points\": 1}]", "rubric[0].id");
    expect_bad("[{\"id\": \"has space\", \"description\": \"d\", \"points\": 1}]", "rubric[0].id");
    expect_bad("[{\"id\": \"caf\\u00e9\", \"description\": \"d\", \"points\": 1}]", "rubric[0].id");
    expect_bad("[{\"id\": \"a:b\", \"description\": \"d\", \"points\": 1}]", "rubric[0].id");
    expect_bad("[{\"id\": 7, \"description\": \"d\", \"points\": 1}]", "rubric[0].id");
    expect_bad("[{\"description\": \"d\", \"points\": 1}]", "rubric[0].id");
    expect_bad("[{\"id\": \"a\", \"description\": \"d\", \"points\": 1},"
               " {\"id\": \"b\", \"description\": \"d\", \"points\": 1},"
               " {\"id\": \"a\", \"description\": \"d\", \"points\": 1}]",
               "rubric[2].id \"a\" repeats rubric[0].id");
    /* case-sensitive: "a" and "A" are two criteria */
    expect_good("[{\"id\": \"a\", \"description\": \"d\", \"points\": 1},"
                " {\"id\": \"A\", \"description\": \"d\", \"points\": 1}]",
                2);
}

static void descriptions(void **state)
{
    (void)state;
    expect_good("[{\"id\": \"a\", \"description\": \"\\u00c9tape \\u2200n\", \"points\": 1}]", 1);
    expect_bad("[{\"id\": \"a\", \"description\": \"\", \"points\": 1}]",
               "rubric[0].description must be non-blank");
    expect_bad("[{\"id\": \"a\", \"description\": \" \\t\\n \", \"points\": 1}]",
               "rubric[0].description");
    expect_bad("[{\"id\": \"a\", \"description\": 5, \"points\": 1}]", "rubric[0].description");
    expect_bad("[{\"id\": \"a\", \"points\": 1}]", "rubric[0].description");
    expect_bad("[{\"id\": \"a\", \"description\": \"x\\u0000y\", \"points\": 1}]",
               "rubric[0].description");
    char text[2100 + 80];
    char desc[2002];
    memset(desc, 'x', 2000);
    desc[2000] = 0;
    snprintf(text, sizeof text, "[{\"id\": \"a\", \"description\": \"%s\", \"points\": 1}]", desc);
    expect_good(text, 1);
    desc[2000] = 'x';
    desc[2001] = 0;
    snprintf(text, sizeof text, "[{\"id\": \"a\", \"description\": \"%s\", \"points\": 1}]", desc);
    expect_bad(text, "1 to 2000 bytes");
    /* invalid UTF-8 cannot come through json_loads; build it without the check */
    json_t *arr = json_array();
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string("a"));
    json_object_set_new(o, "description", json_stringn_nocheck("bad \xc3\x28 utf", 10));
    json_object_set_new(o, "points", json_integer(1));
    json_array_append_new(arr, o);
    sm_rubric r;
    sm_err err = {0};
    assert_int_equal(sm_rubric_parse(arr, &r, &err), SM_EINVAL);
    assert_non_null(strstr(err.msg, "rubric[0].description"));
    json_object_set_new(o, "description", json_string_nocheck("overlong \xc0\xaf"));
    assert_int_equal(sm_rubric_parse(arr, &r, &err), SM_EINVAL);
    json_decref(arr);
}

static void points(void **state)
{
    (void)state;
    const char *good[] = {"1", "0.01", "2.5", "2.75", "999999", "999998.99", "1e2", "3.10"};
    const char *bad[] = {"0",         "-1",    "0.001", "1.005", "1000000",
                         "999999.01", "\"2\"", "null",  "true",  "[1]"};
    char text[200];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(text, sizeof text, "[{\"id\": \"a\", \"description\": \"d\", \"points\": %s}]",
                 good[i]);
        expect_good(text, 1);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text,
                 "[{\"id\": \"a\", \"description\": \"d\", \"points\": 1},"
                 " {\"id\": \"b\", \"description\": \"d\", \"points\": %s}]",
                 bad[i]);
        expect_bad(text, "rubric[1].points must be a number > 0 and <= 999999");
    }
    expect_bad("[{\"id\": \"a\", \"description\": \"d\"}]", "rubric[0].points");
    assert_true(sm_rubric_two_decimals(0.1 + 0.2));
    assert_true(sm_rubric_two_decimals(1.15));
    assert_false(sm_rubric_two_decimals(1.155));
}

static void checks(void **state)
{
    (void)state;
    expect_good("[{\"id\": \"a\", \"description\": \"d\", \"points\": 1, \"checks\":"
                " [\"compile\", \"answer\", \"tests\", \"test:x\", \"test:y z\"]}]",
                1);
    expect_bad("[{\"id\": \"a\", \"description\": \"d\", \"points\": 1, \"checks\": []}]",
               "rubric[0].checks must be an array of 1 to 20");
    expect_bad("[{\"id\": \"a\", \"description\": \"d\", \"points\": 1, \"checks\": \"tests\"}]",
               "rubric[0].checks must be an array");
    expect_bad("[{\"id\": \"a\", \"description\": \"d\", \"points\": 1, \"checks\": null}]",
               "rubric[0].checks must be an array");
    expect_bad("[{\"id\": \"a\", \"description\": \"d\", \"points\": 1, \"checks\":"
               " [\"tests\", \"lint\"]}]",
               "rubric[0].checks[1] must be \"compile\"");
    expect_bad("[{\"id\": \"a\", \"description\": \"d\", \"points\": 1, \"checks\": [\"test:\"]}]",
               "rubric[0].checks[0]");
    expect_bad("[{\"id\": \"a\", \"description\": \"d\", \"points\": 1, \"checks\": [\"Tests\"]}]",
               "rubric[0].checks[0]");
    expect_bad("[{\"id\": \"a\", \"description\": \"d\", \"points\": 1, \"checks\": [3]}]",
               "rubric[0].checks[0]");
    expect_bad("[{\"id\": \"a\", \"description\": \"d\", \"points\": 1, \"checks\":"
               " [\"test:x\", \"answer\", \"test:x\"]}]",
               "rubric[0].checks[2] repeats \"test:x\"");
    char text[1024];
    size_t o = (size_t)snprintf(text, sizeof text,
                                "[{\"id\": \"a\", \"description\": \"d\", \"points\": 1, "
                                "\"checks\": [");
    for (int i = 0; i < 21; i++)
        o += (size_t)snprintf(text + o, sizeof text - o, "%s\"test:t%d\"", i ? "," : "", i);
    snprintf(text + o, sizeof text - o, "]}]");
    expect_bad(text, "1 to 20");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_criteria), cmocka_unit_test(text_and_absent),
        cmocka_unit_test(rejects_shapes),  cmocka_unit_test(ids),
        cmocka_unit_test(descriptions),    cmocka_unit_test(points),
        cmocka_unit_test(checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
