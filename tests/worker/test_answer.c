/* test_answer: the math answer checks (sm_answer): a table of student texts against answer keys
 * across every supported form (equal and not equal, with the expected method), extraction from
 * \boxed{} with nested braces / "Final Answer:" / the last expression, and hostile inputs that
 * must finish quickly without crashing (long strings, deep nesting, division by zero, 10^1000). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "sm_answer.h"

typedef struct cmp_case {
    const char *student;
    const char *key;
    bool equal;
    const char *method; /* NULL = don't check */
} cmp_case;

static const cmp_case cases[] = {
    /* integers */
    {"\\boxed{42}", "42", true, "integer"},
    {"\\boxed{42}", "43", false, "integer"},
    {"\\boxed{-7}", "-7", true, "integer"},
    {"\\boxed{007}", "7", true, "integer"},
    {"\\boxed{1,000}", "1000", true, "integer"},
    {"Final Answer: 1,234,567", "1234567", true, "integer"},
    {"\\boxed{1{,}000}", "1000", true, "integer"},
    {"\\boxed{1\\,000}", "1000", true, "integer"},
    {"\\boxed{123456789012345678901234567890}", "123456789012345678901234567890", true, "integer"},
    {"\\boxed{123456789012345678901234567890}", "123456789012345678901234567891", false, "integer"},
    {"\\boxed{-0}", "0", true, "integer"},
    {"\\boxed{12}", "-12", false, "integer"},
    /* fractions */
    {"\\boxed{\\frac{1}{2}}", "1/2", true, "fraction"},
    {"\\boxed{\\dfrac{3}{4}}", "\\frac{6}{8}", true, "fraction"},
    {"\\boxed{\\tfrac{2}{3}}", "2/3", true, "fraction"},
    {"\\boxed{\\frac12}", "1/2", true, "fraction"},
    {"\\boxed{2/3}", "3/4", false, "fraction"},
    {"\\boxed{-\\frac{5}{3}}", "\\frac{-5}{3}", true, "fraction"},
    {"\\boxed{\\frac{4}{2}}", "2", true, "fraction"},
    {"\\boxed{\\frac{1}{3}}", "0.3", false, NULL},
    /* decimals with tolerance */
    {"\\boxed{0.5}", "1/2", true, NULL},
    {"\\boxed{0.5}", "\\frac{1}{2}", true, NULL},
    {"\\boxed{3.14159265}", "3.1415926535", true, "decimal"},
    {"\\boxed{3.14}", "3.1415926535", false, "decimal"},
    {"\\boxed{0.3333333}", "\\frac{1}{3}", true, NULL},
    {"\\boxed{2.50}", "2.5", true, "decimal"},
    {"\\boxed{.75}", "3/4", true, NULL},
    {"\\boxed{1.5e3}", "1500", true, "decimal"},
    {"\\boxed{2.0}", "2", true, "decimal"},
    {"\\boxed{100.5}", "100.4", false, "decimal"},
    {"\\boxed{1000000.5}", "1000000.4", true, "decimal"}, /* relative difference 1e-7 */
    /* percent */
    {"\\boxed{50\\%}", "0.5", true, "decimal"},
    {"\\boxed{50\\%}", "50", true, "decimal"},
    {"\\boxed{25\\%}", "0.5", false, "decimal"},
    {"\\boxed{12.5\\%}", "\\frac{1}{8}", true, NULL},
    /* expressions */
    {"\\boxed{2\\sqrt{3}}", "\\sqrt{12}", true, "expression"},
    {"\\boxed{2\\sqrt{3}}", "\\sqrt{13}", false, "expression"},
    {"\\boxed{2\\pi}", "6.283185307", true, "expression"},
    {"\\boxed{2pi}", "2\\pi", true, "expression"},
    {"\\boxed{\\frac{\\pi}{2}}", "1.5707963", true, "expression"},
    {"\\boxed{3 \\cdot 4}", "12", true, "expression"},
    {"\\boxed{3 \\times 4 + 1}", "13", true, "expression"},
    {"\\boxed{2^{10}}", "1024", true, "expression"},
    {"\\boxed{(1+2)^2}", "9", true, "expression"},
    {"\\boxed{\\sqrt{2}/2}", "\\frac{1}{\\sqrt{2}}", true, "expression"},
    {"\\boxed{\\sqrt[3]{27}}", "3", true, "expression"},
    {"\\boxed{sqrt(16)}", "4", true, "expression"},
    {"\\boxed{5!}", "120", true, "expression"},
    {"\\boxed{\\left(\\frac{1}{2}\\right)^{2}}", "0.25", true, "expression"},
    {"\\boxed{2(3+4)}", "14", true, "expression"},
    {"\\boxed{1 - 2 - 3}", "-4", true, "expression"},
    {"\\boxed{2^{-1}}", "0.5", true, "expression"},
    {"\\boxed{2^{64}}", "18446744073709551616", true, "expression"},
    /* sets: order-free */
    {"\\boxed{\\{1, 2, 3\\}}", "\\{3, 1, 2\\}", true, "set"},
    {"\\boxed{\\{1, 2, 3\\}}", "\\{1, 2, 4\\}", false, "set"},
    {"\\boxed{\\{1, 2\\}}", "\\{1, 2, 3\\}", false, "set"},
    {"\\boxed{\\{\\frac{1}{2}, -1\\}}", "\\{-1, 0.5\\}", true, "set"},
    {"x = 2, 3", "\\{3, 2\\}", true, "set"},
    {"\\boxed{2, -2}", "-2, 2", true, "set"},
    {"\\boxed{\\{1, 1, 2\\}}", "\\{1, 2, 2\\}", false, "set"},
    /* tuples: ordered */
    {"\\boxed{(1, 2)}", "(1, 2)", true, "tuple"},
    {"\\boxed{(1, 2)}", "(2, 1)", false, "tuple"},
    {"\\boxed{\\left( \\frac{1}{2}, 3 \\right)}", "(0.5, 3)", true, "tuple"},
    {"\\boxed{(1, (2, 3))}", "(1, (2, 3))", true, "tuple"},
    {"\\boxed{(1, (2, 3))}", "(1, (3, 2))", false, "tuple"},
    {"\\boxed{(1, 2, 3)}", "(1, 2)", false, "tuple"},
    {"\\boxed{[0, 1)}", "(0, 1]", false, "tuple"},
    {"\\boxed{(1,2)}", "\\{1, 2\\}", false, NULL},
    /* LaTeX noise, units, trailing period */
    {"The answer is $\\boxed{\\,5\\,}$.", "5", true, "integer"},
    {"\\boxed{5 \\text{ cm}}", "5", true, NULL},
    {"\\boxed{12\\text{ apples}}", "12", true, NULL},
    {"\\boxed{90^\\circ}", "90", true, NULL},
    {"\\boxed{\\displaystyle \\frac{1}{4}}", "0.25", true, NULL},
    {"Final Answer: $x = 7$.", "7", true, "integer"},
    {"\\boxed{\\mathbf{8}}", "8", true, NULL},
    {"**Final Answer:** 9", "9", true, "integer"},
    /* text answers */
    {"\\boxed{\\text{No solution}}", "no solution", true, "string"},
    {"\\boxed{\\text{yes}}", "no", false, "string"},
    {"\\boxed{x^2+1}", "x^2 + 1", true, "string"},
    {"\\boxed{3x}", "3", false, NULL},
    /* mixed numbers, MATH-style answer lines, membership */
    {"\\boxed{3\\frac{1}{2}}", "3.5", true, "expression"},
    {"\\boxed{-3\\frac{1}{2}}", "-7/2", true, "expression"},
    {"Final Answer: The final answer is $12$. I hope it is correct.", "12", true, "integer"},
    {"Final Answer: 12. I hope it is correct.", "12", true, "integer"},
    {"\\boxed{x \\in \\{1,2\\}}", "\\{2,1\\}", true, "set"},
    {"\\boxed{\\frac{3}{4}x}", "0.75", false, "string"},
    /* the key written as a solution */
    {"\\boxed{6}", "The answer is \\boxed{6}", true, "integer"},
    /* no answer */
    {"I do not know.", "5", false, "none"},
};

static void test_compare_table(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *out = NULL;
        sm_err err = {0};
        assert_int_equal(sm_answer_compare(cases[i].student, cases[i].key, &out, &err), SM_OK);
        bool eq = json_is_true(json_object_get(out, "equal"));
        const char *method = json_string_value(json_object_get(out, "method"));
        assert_non_null(method);
        assert_non_null(json_string_value(json_object_get(out, "detail")));
        if (eq != cases[i].equal || (cases[i].method && strcmp(method, cases[i].method) != 0)) {
            char *s = json_dumps(out, JSON_COMPACT);
            fprintf(stderr, "case %zu: %s vs %s: want equal=%d method=%s, got %s\n", i,
                    cases[i].student, cases[i].key, cases[i].equal,
                    cases[i].method ? cases[i].method : "*", s);
            free(s);
            failures++;
        }
        json_decref(out);
    }
    assert_true(sizeof cases / sizeof cases[0] >= 60);
    assert_int_equal(failures, 0);
}

typedef struct extract_case {
    const char *text;
    const char *answer; /* NULL = none */
} extract_case;

static const extract_case extracts[] = {
    {"so we get \\boxed{\\frac{a^{2}}{b_{1}}} as required", "\\frac{a^{2}}{b_{1}}"},
    {"first \\boxed{1}, then correcting: \\boxed{2}", "2"},
    {"\\boxed{\\{1, \\{2\\}\\}}", "\\{1, \\{2\\}\\}"},
    {"\\boxed{{{{x}}}}", "{{{x}}}"},
    {"Thus \\boxed 5 is it", "5"},
    {"an unbalanced \\boxed{3 and earlier \\boxed{4}", "4"},
    {"Work...\nFinal Answer: 17\n", "17"},
    {"Work...\nFinal answer:\n\n  $\\frac{3}{5}$\n", "\\frac{3}{5}"},
    {"**Final Answer**: 12.", "12"},
    {"The final answer is 8", "8"},
    {"Some steps\nAnswer: (1, 2)", "(1, 2)"},
    {"Therefore the area is $A = 3\\pi$.", "3\\pi"},
    {"We get \\[ x = \\frac{1}{2} \\]", "\\frac{1}{2}"},
    {"Step 1: 2+2\nStep 2: so 2 + 2 = 4", "4"},
    {"no numbers here at all", NULL},
    {"", NULL},
    {"\\boxed{}", NULL},
};

static void test_extract(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof extracts / sizeof extracts[0]; i++) {
        char *ans = (char *)1;
        sm_err err = {0};
        assert_int_equal(sm_answer_extract(extracts[i].text, &ans, &err), SM_OK);
        bool ok = extracts[i].answer ? (ans && strcmp(ans, extracts[i].answer) == 0) : ans == NULL;
        if (!ok) {
            fprintf(stderr, "extract %zu: '%s': want '%s', got '%s'\n", i, extracts[i].text,
                    extracts[i].answer ? extracts[i].answer : "(none)", ans ? ans : "(none)");
            failures++;
        }
        free(ans);
    }
    assert_int_equal(failures, 0);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    char *ans = NULL;
    json_t *out = NULL;
    sm_err err = {0};
    assert_int_equal(sm_answer_extract(NULL, &ans, &err), SM_EINVAL);
    assert_int_equal(sm_answer_compare(NULL, "1", &out, &err), SM_EINVAL);
    assert_int_equal(sm_answer_compare("1", NULL, &out, &err), SM_EINVAL);
    assert_int_equal(sm_answer_compare("1", "1", NULL, &err), SM_EINVAL);
    assert_null(out);
}

static double secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Builds prefix + n copies of unit + suffix. */
static char *repeat(const char *prefix, const char *unit, size_t n, const char *suffix)
{
    size_t pl = strlen(prefix), ul = strlen(unit), sl = strlen(suffix);
    char *s = malloc(pl + ul * n + sl + 1);
    assert_non_null(s);
    memcpy(s, prefix, pl);
    for (size_t i = 0; i < n; i++)
        memcpy(s + pl + i * ul, unit, ul);
    memcpy(s + pl + ul * n, suffix, sl + 1);
    return s;
}

/* Every hostile input: returns SM_OK, a result with equal false (or a sane true), quickly. */
static void check_hostile(const char *student, const char *key, bool want_equal)
{
    json_t *out = NULL;
    sm_err err = {0};
    double t0 = secs();
    assert_int_equal(sm_answer_compare(student, key, &out, &err), SM_OK);
    double dt = secs() - t0;
    assert_non_null(out);
    if (json_is_true(json_object_get(out, "equal")) != want_equal) {
        char *s = json_dumps(out, JSON_COMPACT);
        fprintf(stderr, "hostile: want equal=%d: %.300s\n", want_equal, s);
        free(s);
        fail();
    }
    json_decref(out);
    if (dt > 0.2)
        fprintf(stderr, "hostile: slow (%.2f s) on %.60s...\n", dt, student);
    assert_true(dt < 5.0);
}

static void test_hostile(void **state)
{
    (void)state;
    /* very long strings */
    char *s = repeat("", "x", 3 * 1024 * 1024, "");
    check_hostile(s, "5", false);
    free(s);
    s = repeat("\\boxed{", "1", 100000, "}");
    check_hostile(s, "5", false);
    free(s);
    s = repeat("", "\\boxed{", 200000, "");
    check_hostile(s, "5", false);
    free(s);
    s = repeat("Final Answer: ", "9", 2000000, "");
    check_hostile(s, "9", false);
    free(s);
    /* deep nesting: parentheses, braces, sets */
    s = repeat("\\boxed{", "(", 5000, "1");
    check_hostile(s, "1", false);
    free(s);
    char *open = repeat("\\boxed{", "(", 3000, "");
    char *full = repeat(open, ")", 3000, "}");
    check_hostile(full, "1", false);
    free(open);
    free(full);
    open = repeat("\\boxed{", "{", 3000, "2");
    full = repeat(open, "}", 3000, "}");
    check_hostile(full, "2", true); /* too deep to evaluate; grouping braces vanish in the text */
    free(open);
    free(full);
    open = repeat("\\boxed{", "\\{1,", 500, "2");
    full = repeat(open, "\\}", 500, "}");
    check_hostile(full, "2", false);
    free(open);
    free(full);
    /* nesting that is still fine */
    check_hostile("\\boxed{((((((((1))))))))}", "1", true);
    /* many elements */
    s = repeat("\\boxed{\\{", "1,", 10000, "1\\}}");
    check_hostile(s, "\\{1\\}", false);
    free(s);
    /* arithmetic edge cases */
    check_hostile("\\boxed{1/0}", "1", false);
    check_hostile("\\boxed{\\frac{1}{0}}", "\\frac{1}{0}", true); /* same text, no value */
    check_hostile("\\boxed{0^{-1}}", "0", false);
    check_hostile("\\boxed{10^{1000}}", "10^{1000}", true);
    check_hostile("\\boxed{10^{1000}}", "10^{999}", false);
    check_hostile("\\boxed{10^{10^{10^{10}}}}", "1", false);
    check_hostile("\\boxed{2^2^2^2^2^2^2^2}", "4", false);
    check_hostile("\\boxed{99999999999999999999^99999999}", "1", false);
    check_hostile("\\boxed{\\sqrt{-4}}", "2", false);
    check_hostile("\\boxed{1e999999}", "1", false);
    check_hostile("\\boxed{9223372036854775807 + 1}", "9223372036854775808", true);
    check_hostile("\\boxed{-9223372036854775808 * -1}", "9223372036854775808", true);
    check_hostile("\\boxed{170!}", "1", false);
    s = repeat("\\boxed{", "1+", 100000, "1}");
    check_hostile(s, "100001", false); /* longer than the evaluator takes: compared as text */
    free(s);
    s = repeat("\\boxed{", "1+", 1000, "1}");
    check_hostile(s, "1001", true);
    free(s);
    s = repeat("\\boxed{", "-", 5000, "1}");
    check_hostile(s, "1", false);
    free(s);
    /* invalid UTF-8 and control bytes */
    check_hostile("\\boxed{\xff\xfe\x01}", "1", false);
    check_hostile("\\boxed{5}", "\xc3\x28", false);
    /* unbalanced brackets */
    check_hostile("\\boxed{(1, 2}", "(1, 2)", false);
    check_hostile("\\boxed{)1(}", "1", false);
    check_hostile("$$$$$$$$$$", "1", false);
    check_hostile("\\boxed{\\frac}", "1", false);
    check_hostile("\\boxed{\\sqrt}", "1", false);
    check_hostile("\\boxed{\\text{}}", "1", false);
}

typedef struct prose_case {
    const char *student, *key;
    bool equal;
    const char *extracted; /* NULL = don't check */
    const char *rule;      /* NULL = don't check */
} prose_case;

static const prose_case prose[] = {
    {"Some work.\nHence the result is 0.75.", "3/4", true, "0.75", "\"the result is\" sentence"},
    {"Solving the system,\nso x = 3 and y = -1", "(3,-1)", true, "x = 3, y = -1",
     "variables in a sentence"},
    {"so x = 3 and y = -1", "x=3, y=-1", true, NULL, NULL},
    {"so y = -1 and x = 3", "x=3, y=-1", true, NULL, NULL},
    {"so x = 3 and y = 1", "(3,-1)", false, NULL, NULL},
    {"The area is 16 cm^2", "16 cm^2", true, "16 cm^2", NULL},
    {"It equals 2.5 meters", "5/2 m", true, "2.5 meters", NULL},
    {"It equals 250 cm", "2.5 m", true, NULL, NULL},
    {"It equals 2.5 kg", "2.5 m", false, NULL, NULL},
    {"The trip takes 90 min", "1.5 h", true, NULL, NULL},
    {"We get 1000 ml", "1 l", true, NULL, NULL},
    {"We get 50%", "0.5", true, "50%", NULL},
    {"Answer: 16 cm", "16", true, "16 cm", "answer line"},
    {"The answer is 7 apples", "7", true, "7 apples", NULL},
    {"The answer is 7 apples", "7 apples", true, NULL, NULL},
    {"The answer is 7 apples", "7 pears", false, NULL, NULL},
    {"therefore the probability is 3/8", "0.375", true, "3/8", NULL},
    {"In 2 steps we get 12", "12", true, "12", NULL},
    {"First we add 3 and 4, then double: 14", "14", true, "14", NULL},
    {"\\boxed{12345678901234567890123/3}", "4115226300411522630041", true, NULL, NULL},
    {"\\boxed{12345678901234567890123/3}", "4115226300411522630042", false, NULL, NULL},
    {"\\boxed{90^\\circ}", "90 degrees", true, NULL, NULL},
};

static void test_prose(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof prose / sizeof prose[0]; i++) {
        json_t *out = NULL;
        sm_err err = {0};
        assert_int_equal(sm_answer_compare(prose[i].student, prose[i].key, &out, &err), SM_OK);
        bool eq = json_is_true(json_object_get(out, "equal"));
        const char *ex = json_string_value(json_object_get(out, "extracted"));
        const char *rule = json_string_value(json_object_get(out, "rule"));
        assert_non_null(rule);
        if (eq != prose[i].equal ||
            (prose[i].extracted && (!ex || strcmp(ex, prose[i].extracted))) ||
            (prose[i].rule && strcmp(rule, prose[i].rule))) {
            char *s = json_dumps(out, JSON_COMPACT);
            fprintf(stderr, "prose %zu: %s vs %s: want equal=%d, got %s\n", i, prose[i].student,
                    prose[i].key, prose[i].equal, s);
            free(s);
            failures++;
        }
        json_decref(out);
    }
    assert_int_equal(failures, 0);
}

/* The details a teacher sees: rule, source sentence, values, units and percent notes. */
static void test_details(void **state)
{
    (void)state;
    json_t *out = NULL;
    sm_err err = {0};
    assert_int_equal(sm_answer_compare("Working.\nAnswer: 16 cm", "16", &out, &err), SM_OK);
    assert_string_equal(json_string_value(json_object_get(out, "source")), "Answer: 16 cm");
    assert_non_null(strstr(json_string_value(json_object_get(out, "units")), "only in the answer"));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(out, "values"), "extracted")), "16");
    json_decref(out);
    assert_int_equal(sm_answer_compare("\\boxed{12345678901234567890123/3}",
                                       "4115226300411522630041", &out, &err),
                     SM_OK);
    assert_non_null(strstr(json_string_value(json_object_get(out, "detail")), "(exact)"));
    json_decref(out);
    assert_int_equal(sm_answer_compare("\\boxed{2^{100000}}", "1", &out, &err), SM_OK);
    assert_non_null(strstr(json_string_value(json_object_get(out, "detail")),
                           "exponent too large to compare exactly"));
    json_decref(out);
}

static void check_policy(const char *policy, const char *student, const char *key, bool want)
{
    json_error_t je;
    json_t *pj = json_loads(policy, 0, &je);
    assert_non_null(pj);
    sm_answer_policy pol;
    sm_err err = {0};
    assert_int_equal(sm_answer_policy_parse(pj, &pol, &err), SM_OK);
    json_decref(pj);
    json_t *out = NULL;
    assert_int_equal(sm_answer_compare_policy(student, key, &pol, &out, &err), SM_OK);
    if (json_is_true(json_object_get(out, "equal")) != want) {
        char *s = json_dumps(out, JSON_COMPACT);
        fprintf(stderr, "policy %s: %s vs %s: want %d, got %s\n", policy, student, key, want, s);
        free(s);
        fail();
    }
    json_decref(out);
}

static void test_policy(void **state)
{
    (void)state;
    check_policy("{}", "We get 50%", "0.5", true);
    check_policy("{}", "We get 50%", "50", true);
    check_policy("{\"percent\": \"ratio\"}", "We get 50%", "0.5", true);
    check_policy("{\"percent\": \"ratio\"}", "We get 50%", "50", false);
    check_policy("{\"percent\": \"percent\"}", "We get 50%", "50", true);
    check_policy("{\"percent\": \"percent\"}", "We get 50%", "0.5", false);
    check_policy("{\"tolerance\": 0.01}", "\\boxed{3.14}", "3.1415926", true);
    check_policy("{\"tolerance\": 0}", "\\boxed{0.3333333}", "1/3", false);
    check_policy("{\"units\": \"ignore\"}", "It equals 2.5 kg", "2.5 m", true);
    check_policy("{\"units\": \"check\"}", "It equals 2.5 kg", "2.5 m", false);
    static const char *const bad[] = {"[]",
                                      "{\"percent\": \"half\"}",
                                      "{\"tolerance\": -1}",
                                      "{\"tolerance\": \"1\"}",
                                      "{\"units\": 3}",
                                      "{\"x\": 1}",
                                      NULL};
    for (int i = 0; bad[i]; i++) {
        json_error_t je;
        json_t *pj = json_loads(bad[i], 0, &je);
        sm_answer_policy pol;
        sm_err err = {0};
        assert_int_equal(sm_answer_policy_parse(pj, &pol, &err), SM_EINVAL);
        json_decref(pj);
    }
}

static void test_hostile_prose(void **state)
{
    (void)state;
    char *s = repeat("so ", "x = 1 and ", 100000, "y = 2");
    check_hostile(s, "(1, 2)", true); /* x repeated: the first of each name counts */
    free(s);
    s = repeat("The result is ", "9", 100000, " cm");
    check_hostile(s, "9 cm", false);
    free(s);
    s = repeat("We get ", "1 km/", 2000, "h");
    check_hostile(s, "1", false);
    free(s);
    s = repeat("The result is ", "is ", 200000, "5");
    check_hostile(s, "5", false); /* a last line over 200 bytes is no answer */
    free(s);
    check_hostile("\\boxed{10^{10^{5}}}", "1", false);
    check_hostile("\\boxed{1e40000}", "1", false);
    check_hostile("\\boxed{2^{32000} - 2^{32000}}", "0", true);  /* exact, under the bound */
    check_hostile("\\boxed{2^{32768} - 2^{32768}}", "0", false); /* over it: refused */
    check_hostile("\\boxed{1000!/999!}", "1000", true);
    check_hostile("It is 5 m^3", "5000 l", true);
    check_hostile("It is 5 mm^{-9}", "5", false); /* no unit: compared as text */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compare_table), cmocka_unit_test(test_extract),
        cmocka_unit_test(test_bad_arguments), cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_prose),         cmocka_unit_test(test_details),
        cmocka_unit_test(test_policy),        cmocka_unit_test(test_hostile_prose),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
