/* test_config: the YAML configuration loader: defaults, the example file, every kind of
 * rejection with its file:line:column, and environment overrides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sm_config.h"

static sm_code parse(const char *text, sm_config *cfg, sm_err *err)
{
    sm_config_defaults(cfg);
    sm_err_clear(err);
    return sm_config_parse(cfg, "t.yaml", text, strlen(text), err);
}

/* Asserts text is rejected with a message starting with want (e.g. "t.yaml:3:5: "). */
static void expect_reject(const char *text, const char *want_prefix, const char *want_part)
{
    sm_config cfg;
    sm_err err;
    assert_int_equal(parse(text, &cfg, &err), SM_ECONFIG);
    if (strncmp(err.msg, want_prefix, strlen(want_prefix)) != 0 ||
        (want_part && !strstr(err.msg, want_part)))
        fail_msg("got \"%s\", want prefix \"%s\" containing \"%s\"", err.msg, want_prefix,
                 want_part ? want_part : "");
}

static void example_file_equals_defaults(void **state)
{
    (void)state;
    sm_config want, got;
    sm_err err;
    sm_config_defaults(&want);
    sm_config_defaults(&got);
    if (sm_config_load(&got, SM_EXAMPLE_CONFIG, &err) != SM_OK)
        fail_msg("%s", err.msg);
    memset(got.path, 0, sizeof got.path);
    assert_memory_equal(&want, &got, sizeof want);
}

static void values_are_read(void **state)
{
    (void)state;
    sm_config cfg;
    sm_err err;
    const char *text = "database:\n  url: \"postgresql://u@h/db\"\n"
                       "worker:\n  slots: 16\n  prefix_cache: false\n  dtype: q8_0\n"
                       "  kv_dtype: f16\n  isa: avx512bf16\n"
                       "  sampling:\n    temperature: 1.0\n    top_k: 40\n"
                       "http:\n  port: 9000\n";
    assert_int_equal(parse(text, &cfg, &err), SM_OK);
    assert_string_equal(cfg.database.url, "postgresql://u@h/db");
    assert_int_equal(cfg.worker.slots, 16);
    assert_false(cfg.worker.prefix_cache);
    assert_string_equal(cfg.worker.dtype, "q8_0");
    assert_string_equal(cfg.worker.kv_dtype, "f16");
    assert_string_equal(cfg.worker.isa, "avx512bf16");
    assert_true(cfg.worker.sampling.temperature == 1.0);
    assert_int_equal(cfg.worker.sampling.top_k, 40);
    assert_int_equal(cfg.http.port, 9000);
    /* untouched settings keep their defaults */
    assert_int_equal(cfg.broker.max_attempts, 3);
}

static void empty_file_gives_defaults(void **state)
{
    (void)state;
    sm_config cfg, def;
    sm_err err;
    sm_config_defaults(&def);
    assert_int_equal(parse("", &cfg, &err), SM_OK);
    assert_memory_equal(&cfg, &def, sizeof cfg);
    assert_int_equal(parse("# only a comment\n", &cfg, &err), SM_OK);
    assert_int_equal(parse("worker:\n", &cfg, &err), SM_OK);
}

static void unknown_keys_rejected(void **state)
{
    (void)state;
    expect_reject("databse:\n  url: x\n", "t.yaml:1:1: ", "unknown key \"databse\"");
    expect_reject("worker:\n  slots: 2\n  slotz: 3\n",
                  "t.yaml:3:3: ", "unknown key \"worker.slotz\"");
    expect_reject("worker:\n  sampling:\n    temprature: 0.5\n",
                  "t.yaml:3:5: ", "worker.sampling.temprature");
}

static void wrong_types_rejected(void **state)
{
    (void)state;
    expect_reject("worker:\n  slots: many\n", "t.yaml:2:10: ", "expected an integer");
    expect_reject("worker:\n  slots: \"4\"\n", "t.yaml:2:10: ", "expected an integer");
    expect_reject("worker:\n  slots: 4.5\n", "t.yaml:2:10: ", "expected an integer");
    expect_reject("worker:\n  prefix_cache: maybe\n", "t.yaml:2:17: ", "expected true or false");
    expect_reject("worker:\n  sampling:\n    top_p: high\n", "t.yaml:3:12: ", "expected a number");
    expect_reject("worker:\n  sampling: 3\n", "t.yaml:2:13: ", "expected a mapping");
    expect_reject("worker:\n  model: [a, b]\n", "t.yaml:2:10: ", "expected a single value");
    expect_reject("- a\n- b\n", "t.yaml:1:1: ", "top level must be a mapping");
}

static void out_of_range_rejected(void **state)
{
    (void)state;
    expect_reject("worker:\n  slots: 0\n", "t.yaml:2:10: ", "out of range");
    expect_reject("http:\n  port: 70000\n", "t.yaml:2:9: ", "out of range");
    expect_reject("worker:\n  sampling:\n    top_p: 1.5\n", "t.yaml:3:12: ", "out of range");
    expect_reject("worker:\n  slots: 99999999999999999999999\n", "t.yaml:2:10: ", "integer");
    expect_reject("worker:\n  device: tpu\n", "t.yaml:2:11: ", "not one of cpu|cuda");
    expect_reject("worker:\n  kv_dtype: bf16\n", "t.yaml:2:13: ", "not one of auto|f32|f16");
    expect_reject("worker:\n  dtype: q4_k\n",
                  "t.yaml:2:10: ", "not one of f32|bf16|q8_0|q4_0|stored");
    expect_reject("worker:\n  isa: sse2\n", "t.yaml:2:8: ", "not one of auto|portable|avx2");
    expect_reject("logging:\n  level: loud\n", "t.yaml:2:10: ", "not one of");
}

static void malformed_yaml_rejected(void **state)
{
    (void)state;
    expect_reject("worker:\n  slots: 4\n bad: 1\n", "t.yaml:3:", "malformed YAML");
    expect_reject("worker:\n  model: \"unterminated\n", "t.yaml:", "malformed YAML");
    expect_reject("worker: {slots: 4\n", "t.yaml:", "malformed YAML");
    expect_reject("\tworker:\n", "t.yaml:1:1: ", "malformed YAML");
    expect_reject("worker:\n  slots: 4\n  slots: 5\n", "t.yaml:3:3: ", "duplicate key");
    expect_reject("worker:\n  slots: 4\n---\nhttp:\n  port: 1\n",
                  "t.yaml:4:1: ", "only one YAML document");
}

static void strings_too_long_rejected(void **state)
{
    (void)state;
    char text[2048];
    char longv[SM_CONFIG_STR + 10];
    memset(longv, 'a', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    snprintf(text, sizeof text, "worker:\n  model: %s\n", longv);
    expect_reject(text, "t.yaml:2:10: ", "longer than");
}

static void missing_file_is_io_error(void **state)
{
    (void)state;
    sm_config cfg;
    sm_err err;
    sm_config_defaults(&cfg);
    assert_int_equal(sm_config_load(&cfg, "/nonexistent/stepmark.yaml", &err), SM_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/stepmark.yaml"));
}

static void environment_overrides_secrets(void **state)
{
    (void)state;
    sm_config cfg;
    sm_err err;
    assert_int_equal(parse("database:\n  url: \"host=file\"\n", &cfg, &err), SM_OK);
    setenv("STEPMARK_DATABASE_URL", "host=/run/env", 1);
    setenv("STEPMARK_HTTP_PORT", "8181", 1);
    assert_int_equal(sm_config_apply_env(&cfg, &err), SM_OK);
    assert_string_equal(cfg.database.url, "host=/run/env");
    assert_int_equal(cfg.http.port, 8181);
    setenv("STEPMARK_HTTP_PORT", "eighty", 1);
    assert_int_equal(sm_config_apply_env(&cfg, &err), SM_ECONFIG);
    assert_non_null(strstr(err.msg, "STEPMARK_HTTP_PORT"));
    unsetenv("STEPMARK_HTTP_PORT");
    unsetenv("STEPMARK_DATABASE_URL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(example_file_equals_defaults),
        cmocka_unit_test(values_are_read),
        cmocka_unit_test(empty_file_gives_defaults),
        cmocka_unit_test(unknown_keys_rejected),
        cmocka_unit_test(wrong_types_rejected),
        cmocka_unit_test(out_of_range_rejected),
        cmocka_unit_test(malformed_yaml_rejected),
        cmocka_unit_test(strings_too_long_rejected),
        cmocka_unit_test(missing_file_is_io_error),
        cmocka_unit_test(environment_overrides_secrets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
