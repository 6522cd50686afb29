/* test_unittests: unit tests of functions and classes in the real sandbox (bubblewrap with
 * python3 + pytest, gcc, g++, javac + JUnit 5): call tests compared as values, exceptions,
 * pytest files (one result per test function), C and C++ drivers (the student's main renamed),
 * JUnit classes, points, per-test limits and a notebook's code cells. "spec" runs only the
 * validation of test objects (no sandbox). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sm_notebook.h"
#include "sm_sandbox.h"
#include "sm_testspec.h"

static sm_sandbox_limits limits(void)
{
    sm_sandbox_limits l = {.cpu_seconds = 5,
                           .wall_seconds = 20,
                           .memory_mb = 512,
                           .max_processes = 16,
                           .max_output_bytes = 65536,
                           .use_cgroups = true,
                           .bwrap = "/usr/bin/bwrap"};
    return l;
}

static json_t *run(const char *lang, const char *src, const char *tests_text)
{
    sm_sandbox_limits lim = limits();
    json_error_t je;
    json_t *tests = json_loads(tests_text, 0, &je);
    if (!tests)
        fprintf(stderr, "bad test JSON: %s\n", je.text);
    assert_non_null(tests);
    json_t *out = NULL;
    sm_err err = {0};
    sm_code rc = sm_sandbox_run_tests(&lim, lang, src, tests, &out, &err);
    if (rc != SM_OK)
        fprintf(stderr, "sm_sandbox_run_tests: %s\n", err.msg);
    assert_int_equal(rc, SM_OK);
    json_decref(tests);
    if (getenv("SM_TEST_VERBOSE")) {
        char *s = json_dumps(out, JSON_INDENT(1));
        fprintf(stderr, "%s\n", s);
        free(s);
    }
    return out;
}

static const json_t *at(const json_t *r, size_t i)
{
    const json_t *t = json_array_get(json_object_get(r, "tests"), i);
    assert_non_null(t);
    return t;
}

static bool passed(const json_t *t)
{
    return json_is_true(json_object_get(t, "passed"));
}

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static double num(const json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

static const char py_pal[] = "print('module level output')\n"
                             "def is_palindrome(s):\n"
                             "    s = ''.join(c.lower() for c in s if c.isalnum())\n"
                             "    return s == s[::-1]\n"
                             "def mean(xs):\n"
                             "    if not xs:\n"
                             "        raise ValueError('empty list')\n"
                             "    return sum(xs) / len(xs)\n"
                             "def pair(a):\n"
                             "    return (a, a * 2)\n"
                             "def one():\n"
                             "    return 1\n"
                             "def forever():\n"
                             "    while True:\n"
                             "        pass\n"
                             "def hog():\n"
                             "    return len(bytearray(400 * 1024 * 1024))\n"
                             "def bye():\n"
                             "    import os\n"
                             "    os._exit(0)\n";

static void test_python_call(void **state)
{
    (void)state;
    json_t *r = run(
        "python", py_pal,
        "[{\"kind\":\"call\",\"name\":\"abba\",\"function\":\"is_palindrome\",\"args\":[\"Ab,ba\"],"
        "\"expected\":true,\"points\":2},"
        "{\"kind\":\"call\",\"function\":\"is_palindrome\",\"args\":[\"abc\"],\"expected\":true},"
        "{\"kind\":\"call\",\"function\":\"mean\",\"args\":[[1,2]],\"expected\":1.5},"
        "{\"kind\":\"call\",\"function\":\"mean\",\"args\":[[0.1,0.2]],\"expected\":0.15,"
        "\"tolerance\":1e-9},"
        "{\"kind\":\"call\",\"function\":\"mean\",\"args\":[[]],\"expected_exception\":"
        "\"ValueError\"},"
        "{\"kind\":\"call\",\"function\":\"mean\",\"args\":[[]],\"expected\":0},"
        "{\"kind\":\"call\",\"function\":\"pair\",\"args\":[3],\"expected\":[3,6]},"
        "{\"kind\":\"call\",\"function\":\"one\",\"expected\":1.0},"
        "{\"kind\":\"call\",\"function\":\"one\",\"expected\":true},"
        "{\"kind\":\"call\",\"function\":\"missing\",\"expected\":1}]");
    assert_true(passed(at(r, 0)));
    assert_false(passed(at(r, 1)));
    assert_non_null(strstr(str(at(r, 1), "error"), "returned false, expected true"));
    assert_true(passed(at(r, 2)));
    assert_true(passed(at(r, 3)));
    assert_true(passed(at(r, 4)));
    const json_t *t5 = at(r, 5);
    assert_false(passed(t5));
    assert_string_equal(str(json_object_get(t5, "exception"), "type"), "ValueError");
    assert_string_equal(str(json_object_get(t5, "exception"), "message"), "empty list");
    assert_non_null(strstr(str(t5, "stderr"), "Traceback"));
    assert_true(passed(at(r, 6)));  /* a tuple is a list */
    assert_true(passed(at(r, 7)));  /* 1 == 1.0 */
    assert_false(passed(at(r, 8))); /* but 1 is not True */
    assert_non_null(strstr(str(at(r, 9), "error"), "no function missing"));
    assert_int_equal(json_integer_value(json_object_get(r, "passed")), 6);
    const json_t *pts = json_object_get(r, "points");
    assert_true(num(pts, "total") == 11.0);
    assert_true(num(pts, "earned") == 7.0);
    assert_true(num(at(r, 0), "points_earned") == 2.0);
    assert_non_null(strstr(str(at(r, 0), "output"), "module level output"));
    json_decref(r);
}

static void test_python_limits(void **state)
{
    (void)state;
    json_t *r =
        run("python", py_pal,
            "[{\"kind\":\"call\",\"function\":\"forever\",\"expected\":null,\"time_ms\":500},"
            "{\"kind\":\"call\",\"function\":\"hog\",\"expected\":0,\"memory_mb\":128},"
            "{\"kind\":\"call\",\"function\":\"bye\",\"expected\":null}]");
    const json_t *t0 = at(r, 0);
    assert_false(passed(t0));
    assert_true(json_is_true(json_object_get(t0, "cpu_exceeded")) ||
                json_is_true(json_object_get(t0, "timed_out")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(t0, "limits"), "time_ms")),
                     1500);
    const json_t *t1 = at(r, 1);
    assert_false(passed(t1));
    assert_true(json_is_true(json_object_get(t1, "memory_exceeded")));
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(t1, "limits"), "memory_mb")), 128);
    assert_non_null(strstr(str(at(r, 2), "error"), "before the test harness reported"));
    json_decref(r);
}

static void test_pytest(void **state)
{
    (void)state;
    json_t *r =
        run("python", py_pal,
            "[{\"kind\":\"pytest\",\"name\":\"teacher\",\"points\":4,\"module\":"
            "\"palindrome\",\"file\":"
            "\"from palindrome import is_palindrome, mean\\nimport pytest\\n"
            "def test_yes():\\n    assert is_palindrome('Racecar')\\n"
            "def test_no():\\n    assert is_palindrome('abc')\\n"
            "def test_raises():\\n    with pytest.raises(ValueError):\\n        mean([])\\n"
            "def test_mean():\\n    assert mean([2, 4]) == 3\\n\"},"
            "{\"kind\":\"pytest\",\"name\":\"broken\",\"file\":\"import nosuchmodule\\n\"}]");
    json_t *tests = json_object_get(r, "tests");
    assert_int_equal(json_array_size(tests), 5);
    assert_string_equal(str(at(r, 0), "name"), "teacher: test_yes");
    assert_true(passed(at(r, 0)));
    assert_false(passed(at(r, 1)));
    assert_non_null(strstr(str(at(r, 1), "error"), "assert"));
    assert_true(passed(at(r, 2)));
    assert_true(passed(at(r, 3)));
    assert_true(num(at(r, 0), "points") == 1.0);
    assert_false(passed(at(r, 4)));
    assert_non_null(strstr(str(at(r, 4), "error"), "collected"));
    assert_true(num(json_object_get(r, "points"), "earned") == 3.0);
    json_decref(r);
}

static void test_c_driver(void **state)
{
    (void)state;
    static const char src[] = "#include <stdio.h>\n#include <string.h>\n"
                              "int is_palindrome(const char *s) {\n"
                              "    size_t n = strlen(s);\n"
                              "    for (size_t i = 0; i < n / 2; i++)\n"
                              "        if (s[i] != s[n - 1 - i]) return 0;\n"
                              "    return 1;\n}\n"
                              "int main(void) { puts(\"student main\"); return 0; }\n";
    json_t *r =
        run("c", src,
            "[{\"kind\":\"driver\",\"name\":\"ok\",\"source\":\"#include <stdio.h>\\n"
            "int main(void) { if (!is_palindrome(\\\"abba\\\")) return 1; printf(\\\"%d\\\\n\\\", "
            "is_palindrome(\\\"ab\\\")); return 0; }\",\"expected_output\":\"0\"},"
            "{\"kind\":\"driver\",\"name\":\"fails\",\"source\":\"int main(void) { return "
            "is_palindrome(\\\"ab\\\") ? 0 : 3; }\"},"
            "{\"kind\":\"driver\",\"name\":\"student main\",\"source\":\"int main(void) { return "
            "student_main(); }\",\"expected_output\":\"student main\"},"
            "{\"kind\":\"driver\",\"name\":\"bad driver\",\"source\":\"int main(void) { return "
            "no_such_function(); }\"}]");
    assert_true(passed(at(r, 0)));
    assert_false(passed(at(r, 1)));
    assert_string_equal(str(at(r, 1), "error"), "exit code 3");
    assert_true(passed(at(r, 2)));
    assert_false(passed(at(r, 3)));
    assert_non_null(strstr(str(at(r, 3), "stderr"), "no_such_function"));
    json_decref(r);
}

static void test_cpp_driver(void **state)
{
    (void)state;
    static const char src[] = "#include <vector>\n"
                              "class Stack {\n  std::vector<int> v;\npublic:\n"
                              "  void push(int x) { v.push_back(x); }\n"
                              "  int pop() { int x = v.back(); v.pop_back(); return x; }\n"
                              "  bool empty() const { return v.empty(); }\n};\n";
    json_t *r = run("cpp", src,
                    "[{\"kind\":\"driver\",\"source\":\"#include <cassert>\\nint main() { Stack s; "
                    "s.push(1); s.push(2); return s.pop() == 2 && s.pop() == 1 && s.empty() ? 0 "
                    ": 1; }\"}]");
    assert_true(passed(at(r, 0)));
    assert_true(json_is_true(json_object_get(json_object_get(r, "compile"), "ok")));
    json_decref(r);
    r = run("cpp", "int broken( {", "[{\"kind\":\"driver\",\"source\":\"int main() {}\"}]");
    assert_false(json_is_true(json_object_get(json_object_get(r, "compile"), "ok")));
    assert_string_equal(str(at(r, 0), "error"), "compile error");
    json_decref(r);
}

static void test_junit(void **state)
{
    (void)state;
    static const char src[] =
        "public class Palindrome {\n"
        "    public static boolean check(String s) {\n"
        "        return new StringBuilder(s).reverse().toString().equals(s);\n"
        "    }\n}\n";
    json_t *r =
        run("java", src,
            "[{\"kind\":\"junit\",\"name\":\"unit\",\"points\":2,\"source\":"
            "\"import org.junit.jupiter.api.Test;\\n"
            "import static org.junit.jupiter.api.Assertions.*;\\n"
            "public class PalindromeTest {\\n"
            "  @Test void yes() { assertTrue(Palindrome.check(\\\"abba\\\")); }\\n"
            "  @Test void no() { assertTrue(Palindrome.check(\\\"abc\\\"), \\\"abc\\\"); }\\n"
            "}\\n\"}]");
    assert_int_equal(json_array_size(json_object_get(r, "tests")), 2);
    const json_t *y = NULL, *n = NULL;
    for (size_t i = 0; i < 2; i++) {
        if (strstr(str(at(r, i), "name"), "yes"))
            y = at(r, i);
        else
            n = at(r, i);
    }
    assert_non_null(y);
    assert_non_null(n);
    assert_true(passed(y));
    assert_false(passed(n));
    assert_non_null(strstr(str(n, "error"), "AssertionFailedError"));
    assert_true(num(json_object_get(r, "points"), "earned") == 1.0);
    json_decref(r);
}

static void test_notebook(void **state)
{
    (void)state;
    static const char nb[] =
        "{\"nbformat\":4,\"nbformat_minor\":5,\"metadata\":{},\"cells\":["
        "{\"cell_type\":\"markdown\",\"metadata\":{},\"source\":[\"# Squares\"]},"
        "{\"cell_type\":\"code\",\"metadata\":{},\"execution_count\":1,\"source\":[\"%matplotlib "
        "inline\\n\",\"def square(x):\\n\",\"    return x * x\"],\"outputs\":[{\"output_type\":"
        "\"stream\",\"name\":\"stdout\",\"text\":[\"STORED-OUTPUT-NEVER-SHOWN\"]}]},"
        "{\"cell_type\":\"code\",\"metadata\":{},\"source\":\"!pip install numpy\\nprint(square(3))"
        "\",\"outputs\":[]}]}";
    json_t *r = run("python", nb,
                    "[{\"kind\":\"call\",\"function\":\"square\",\"args\":[4],\"expected\":16},"
                    "{\"name\":\"io\",\"input\":\"\",\"expected_output\":\"9\"}]");
    assert_true(json_is_true(json_object_get(r, "notebook")));
    assert_true(passed(at(r, 0)));
    assert_true(passed(at(r, 1)));
    char *all = json_dumps(r, 0);
    assert_null(strstr(all, "STORED-OUTPUT"));
    free(all);
    json_decref(r);
}

/* ---- validation only ----------------------------------------------------------------------- */

static sm_code check(const char *text, const char *lang, sm_err *err)
{
    json_t *t = json_loads(text, 0, NULL);
    assert_non_null(t);
    sm_code rc = sm_tests_validate(t, lang, err);
    json_decref(t);
    return rc;
}

static void test_spec(void **state)
{
    (void)state;
    sm_err e = {0};
    assert_int_equal(check("[{\"input\":\"1\",\"expected_output\":\"1\",\"points\":2,"
                           "\"time_ms\":100,\"memory_mb\":64},"
                           "{\"kind\":\"call\",\"function\":\"f\",\"args\":[1,[2]],"
                           "\"kwargs\":{\"x\":null},\"expected\":null,\"tolerance\":0.1}]",
                           "python", &e),
                     SM_OK);
    struct {
        const char *json, *lang, *want;
    } bad[] = {
        {"[{\"kind\":\"call\",\"function\":\"f\",\"expected\":1}]", "c", "cannot test c"},
        {"[{\"kind\":\"shell\"}]", NULL, "\"kind\" must be"},
        {"[{\"kind\":\"call\",\"function\":\"f\"}]", NULL, "exactly one"},
        {"[{\"kind\":\"call\",\"function\":\"f\",\"expected\":1,\"expected_exception\":\"E\"}]",
         NULL, "exactly one"},
        {"[{\"kind\":\"call\",\"function\":\"os.system\",\"expected\":1}]", NULL, "identifier"},
        {"[{\"kind\":\"call\",\"function\":\"f\",\"expected\":1,\"input\":\"x\"}]", NULL,
         "unknown field \"input\""},
        {"[{\"kind\":\"pytest\",\"file\":\"\"}]", NULL, "must not be empty"},
        {"[{\"kind\":\"pytest\",\"file\":\"x\",\"module\":\"a.b\"}]", NULL, "module"},
        {"[{\"kind\":\"driver\"}]", NULL, "\"source\" is required"},
        {"[{\"kind\":\"junit\",\"source\":\"x\",\"expected_output\":\"y\"}]", NULL, "unknown"},
        {"[{\"expected_output\":\"1\",\"points\":-1}]", NULL, "points"},
        {"[{\"expected_output\":\"1\",\"time_ms\":0}]", NULL, "time_ms"},
        {"[{\"expected_output\":\"1\",\"memory_mb\":1}]", NULL, "memory_mb"},
        {"[{\"input\":\"1\"}]", NULL, "expected_output"},
        {"[{\"expected_output\":\"1\",\"args\":[1]}]", NULL, "args[0]"},
        {"[5]", NULL, "tests[0]: must be an object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&e, 0, sizeof e);
        sm_code rc = check(bad[i].json, bad[i].lang, &e);
        if (rc == SM_OK || !strstr(e.msg, bad[i].want))
            fprintf(stderr, "case %zu: rc %d, message \"%s\", wanted \"%s\"\n", i, rc, e.msg,
                    bad[i].want);
        assert_int_equal(rc, SM_EINVAL);
        assert_non_null(strstr(e.msg, bad[i].want));
    }
}

static void test_notebook_text(void **state)
{
    (void)state;
    static const char nb[] =
        "{\"nbformat\":4,\"metadata\":{},\"cells\":["
        "{\"cell_type\":\"markdown\",\"source\":[\"# Title\\n\",\"text\"]},"
        "{\"cell_type\":\"code\",\"source\":\"%time x = 1\\ndef f():\\n    return 2\","
        "\"outputs\":[{\"output_type\":\"stream\",\"text\":\"SECRET\"}]},"
        "{\"cell_type\":\"code\",\"source\":\"%%bash\\necho hi\"}]}";
    sm_err e = {0};
    char *text = NULL, *code = NULL;
    assert_true(sm_notebook_detect(nb));
    assert_false(sm_notebook_detect("def f(): pass"));
    assert_int_equal(sm_notebook_render(nb, &text, &e), SM_OK);
    assert_string_equal(text, "### [cell 1: markdown]\n# Title\ntext\n\n### [cell 2: code]\n"
                              "%time x = 1\ndef f():\n    return 2\n\n### [cell 3: code]\n"
                              "%%bash\necho hi\n");
    assert_int_equal(sm_notebook_code(nb, &code, &e), SM_OK);
    assert_string_equal(code, "# [cell 2]\n# (IPython) %time x = 1\ndef f():\n    return 2\n"
                              "# [cell 3]\n# (IPython) %%bash\n# (IPython) echo hi\n");
    assert_null(strstr(text, "SECRET"));
    free(text);
    free(code);
    const char *bad[] = {"{",
                         "[]",
                         "{\"nbformat\":3,\"cells\":[]}",
                         "{\"nbformat\":4}",
                         "{\"nbformat\":4,\"cells\":[{\"cell_type\":\"video\",\"source\":\"\"}]}",
                         "{\"nbformat\":4,\"cells\":[{\"cell_type\":\"code\",\"source\":[1]}]}",
                         "{\"nbformat\":4,\"nbformat\":4,\"cells\":[]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sm_notebook_check(bad[i], NULL, &e), SM_EINVAL);
        assert_true(strncmp(e.msg, "notebook: ", 10) == 0);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest spec[] = {cmocka_unit_test(test_spec),
                                      cmocka_unit_test(test_notebook_text)};
    const struct CMUnitTest python[] = {
        cmocka_unit_test(test_python_call), cmocka_unit_test(test_python_limits),
        cmocka_unit_test(test_pytest), cmocka_unit_test(test_notebook)};
    const struct CMUnitTest compiled[] = {cmocka_unit_test(test_c_driver),
                                          cmocka_unit_test(test_cpp_driver),
                                          cmocka_unit_test(test_junit)};
    if (argc > 1 && strcmp(argv[1], "spec") == 0)
        return cmocka_run_group_tests(spec, NULL, NULL);
    if (argc > 1 && strcmp(argv[1], "compiled") == 0)
        return cmocka_run_group_tests(compiled, NULL, NULL);
    return cmocka_run_group_tests(python, NULL, NULL);
}
