/* sm_testspec: strict validation of a code assignment's test objects (see sm_testspec.h and
 * docs/teacher-guide.md, "Tests of code"). */
#include "sm_testspec.h"

#include <ctype.h>
#include <string.h>

#include "sm_proto.h"

#define NAME_MAX_LEN 200
#define IO_MAX_INPUT (16 * 1024 * 1024)
#define IO_MAX_ARGS 32
#define CALL_MAX_ARGS 64
#define CALL_MAX_JSON (1024 * 1024)

static const char *const kind_names[] = {"io", "call", "pytest", "driver", "junit"};

sm_test_kind sm_test_kind_of(const json_t *t)
{
    const json_t *k = json_object_get(t, "kind");
    if (!k || json_is_null(k))
        return SM_TEST_IO;
    if (!json_is_string(k))
        return SM_TEST_BAD;
    for (int i = 0; i < SM_TEST_BAD; i++)
        if (strcmp(json_string_value(k), kind_names[i]) == 0)
            return (sm_test_kind)i;
    return SM_TEST_BAD;
}

const char *sm_test_kind_name(sm_test_kind k)
{
    return k >= SM_TEST_IO && k < SM_TEST_BAD ? kind_names[k] : "unknown";
}

double sm_test_points(const json_t *t)
{
    const json_t *p = json_object_get(t, "points");
    return json_is_number(p) ? json_number_value(p) : 1.0;
}

bool sm_test_kind_fits(sm_test_kind k, const char *language)
{
    if (!language)
        return k != SM_TEST_BAD;
    bool py = strcmp(language, "python") == 0 || strcmp(language, "python3") == 0;
    bool c =
        strcmp(language, "c") == 0 || strcmp(language, "cpp") == 0 || strcmp(language, "c++") == 0;
    switch (k) {
    case SM_TEST_IO:
        return true;
    case SM_TEST_CALL:
    case SM_TEST_PYTEST:
        return py;
    case SM_TEST_DRIVER:
        return c;
    case SM_TEST_JUNIT:
        return strcmp(language, "java") == 0;
    default:
        return false;
    }
}

bool sm_test_ident_ok(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max || isdigit((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_') || (unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

static bool one_of(const char *s, const char *const *set)
{
    for (int i = 0; set[i]; i++)
        if (strcmp(s, set[i]) == 0)
            return true;
    return false;
}

static sm_code only_keys(const json_t *t, const char *const *common, const char *const *own,
                         sm_err *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)t, k, v)
    {
        if (!one_of(k, common) && !one_of(k, own))
            return sm_err_set(err, SM_EINVAL, "unknown field \"%.64s\" for kind %s", k,
                              sm_test_kind_name(sm_test_kind_of(t)));
    }
    return SM_OK;
}

static sm_code need_text(const json_t *t, const char *key, bool required, size_t max, sm_err *err)
{
    const json_t *v = json_object_get(t, key);
    if (!v || json_is_null(v))
        return required ? sm_err_set(err, SM_EINVAL, "field \"%s\" is required", key) : SM_OK;
    if (!json_is_string(v))
        return sm_err_set(err, SM_EINVAL, "field \"%s\" must be a string", key);
    if (json_string_length(v) > max)
        return sm_err_set(err, SM_EINVAL, "field \"%s\" is longer than %zu bytes", key, max);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return sm_err_set(err, SM_EINVAL, "field \"%s\" holds a NUL byte", key);
    return SM_OK;
}

static sm_code check_io(const json_t *t, sm_err *err)
{
    static const char *const own[] = {"input", "expected_output", "args", "timeout_seconds", NULL};
    sm_code rc = only_keys(
        t, (const char *const[]){"kind", "name", "points", "time_ms", "memory_mb", NULL}, own, err);
    if (!rc)
        rc = need_text(t, "input", false, IO_MAX_INPUT, err);
    if (!rc)
        rc = need_text(t, "expected_output", true, IO_MAX_INPUT, err);
    const json_t *args = NULL;
    if (!rc)
        rc = sm_json_typed(t, "args", false, JSON_ARRAY, &args, err);
    if (!rc && args && json_array_size(args) > IO_MAX_ARGS)
        rc = sm_err_set(err, SM_EINVAL, "field \"args\" holds more than %d strings", IO_MAX_ARGS);
    size_t i;
    const json_t *a;
    json_array_foreach(args, i, a)
    {
        if (!rc && (!json_is_string(a) || json_string_length(a) > 4096 ||
                    strlen(json_string_value(a)) != json_string_length(a)))
            rc = sm_err_set(err, SM_EINVAL, "args[%zu] must be a string of at most 4096 bytes", i);
    }
    double d;
    if (!rc)
        rc = sm_json_num(t, "timeout_seconds", false, 0.001, 6000, &d, err);
    return rc;
}

/* Size of v as compact JSON, or SIZE_MAX when it cannot be encoded. */
static size_t json_size(const json_t *v)
{
    return json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
}

static sm_code check_call(const json_t *t, sm_err *err)
{
    static const char *const own[] = {"function",           "args",      "kwargs",
                                      "expected",           "tolerance", "unordered",
                                      "expected_exception", NULL};
    sm_code rc = only_keys(
        t, (const char *const[]){"kind", "name", "points", "time_ms", "memory_mb", NULL}, own, err);
    const char *s = NULL;
    if (!rc)
        rc = sm_json_str(t, "function", true, 200, &s, err);
    if (!rc && !sm_test_ident_ok(s, 200))
        rc = sm_err_set(err, SM_EINVAL, "field \"function\" must be a Python identifier");
    const json_t *args = NULL, *kw = NULL;
    if (!rc)
        rc = sm_json_typed(t, "args", false, JSON_ARRAY, &args, err);
    if (!rc && args && json_array_size(args) > CALL_MAX_ARGS)
        rc = sm_err_set(err, SM_EINVAL, "field \"args\" holds more than %d values", CALL_MAX_ARGS);
    if (!rc)
        rc = sm_json_typed(t, "kwargs", false, JSON_OBJECT, &kw, err);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)kw, k, v)
    {
        if (!rc && !sm_test_ident_ok(k, 200))
            rc = sm_err_set(err, SM_EINVAL, "kwargs: \"%.64s\" is not a Python identifier", k);
    }
    bool has_exp = json_object_get(t, "expected") != NULL;
    if (!rc)
        rc = sm_json_str(t, "expected_exception", false, 200, &s, err);
    bool has_exc = !rc && json_object_get(t, "expected_exception");
    if (!rc && has_exc && !sm_test_ident_ok(s, 200))
        rc = sm_err_set(err, SM_EINVAL, "field \"expected_exception\" must be an exception name");
    if (!rc && has_exp == has_exc)
        rc = sm_err_set(err, SM_EINVAL,
                        "a call test needs exactly one of \"expected\" and "
                        "\"expected_exception\"");
    if (!rc && json_size(t) > CALL_MAX_JSON)
        rc = sm_err_set(err, SM_EINVAL, "the test is larger than %d bytes", CALL_MAX_JSON);
    double d;
    bool b;
    if (!rc)
        rc = sm_json_num(t, "tolerance", false, 0, 1e6, &d, err);
    if (!rc)
        rc = sm_json_bool(t, "unordered", false, &b, err);
    return rc;
}

static sm_code check_source_kind(const json_t *t, sm_test_kind k, sm_err *err)
{
    static const char *const py[] = {"file", "module", NULL};
    static const char *const drv[] = {"source", "expected_output", NULL};
    static const char *const ju[] = {"source", NULL};
    const char *const *own = k == SM_TEST_PYTEST ? py : k == SM_TEST_DRIVER ? drv : ju;
    sm_code rc = only_keys(
        t, (const char *const[]){"kind", "name", "points", "time_ms", "memory_mb", NULL}, own, err);
    const char *key = k == SM_TEST_PYTEST ? "file" : "source";
    if (!rc)
        rc = need_text(t, key, true, SM_TEST_SOURCE_MAX, err);
    if (!rc && json_string_length(json_object_get(t, key)) == 0)
        rc = sm_err_set(err, SM_EINVAL, "field \"%s\" must not be empty", key);
    if (!rc && k == SM_TEST_DRIVER)
        rc = need_text(t, "expected_output", false, IO_MAX_INPUT, err);
    const char *m = NULL;
    if (!rc && k == SM_TEST_PYTEST)
        rc = sm_json_str(t, "module", false, 100, &m, err);
    if (!rc && m && (!sm_test_ident_ok(m, 100) || strcmp(m, "pytest") == 0))
        rc = sm_err_set(err, SM_EINVAL, "field \"module\" must be a Python module name");
    return rc;
}

/* One test object, whatever its kind. */
static sm_code check_test(const json_t *t, const char *language, sm_err *err)
{
    if (!json_is_object(t))
        return sm_err_set(err, SM_EINVAL, "must be an object");
    sm_test_kind k = sm_test_kind_of(t);
    if (k == SM_TEST_BAD)
        return sm_err_set(err, SM_EINVAL, "\"kind\" must be io, call, pytest, driver or junit");
    if (language && !sm_test_kind_fits(k, language))
        return sm_err_set(err, SM_EINVAL,
                          "kind %s cannot test %s code (call and pytest: python; "
                          "driver: c, cpp; junit: java)",
                          sm_test_kind_name(k), language);
    const char *s = NULL;
    double d;
    int64_t n;
    sm_code rc = sm_json_str(t, "name", false, NAME_MAX_LEN, &s, err);
    if (!rc)
        rc = sm_json_num(t, "points", false, 0, 1e6, &d, err);
    if (!rc)
        rc = sm_json_int(t, "time_ms", false, 1, SM_TEST_TIME_MS_MAX, &n, err);
    if (!rc)
        rc = sm_json_int(t, "memory_mb", false, SM_TEST_MEMORY_MB_MIN, SM_TEST_MEMORY_MB_MAX, &n,
                         err);
    if (rc)
        return rc;
    switch (k) {
    case SM_TEST_IO:
        return check_io(t, err);
    case SM_TEST_CALL:
        return check_call(t, err);
    default:
        return check_source_kind(t, k, err);
    }
}

sm_code sm_tests_validate(const json_t *tests, const char *language, sm_err *err)
{
    if (!json_is_array(tests))
        return sm_err_set(err, SM_EINVAL, "tests must be an array");
    if (json_array_size(tests) > SM_TESTS_MAX)
        return sm_err_set(err, SM_EINVAL, "more than %d tests", SM_TESTS_MAX);
    size_t i;
    const json_t *t;
    json_array_foreach(tests, i, t)
    {
        sm_code rc = check_test(t, language, err);
        if (rc)
            return sm_err_prefix(err, "tests[%zu]", i);
    }
    return SM_OK;
}
