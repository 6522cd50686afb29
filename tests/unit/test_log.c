/* test_log: the logger's line format and its redaction of secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sm_log.h"

static void redacts_url_passwords(void **state)
{
    (void)state;
    char out[256];
    sm_log_redact(NULL, "postgresql://alice:s3cret@db.example/stepmark", out, sizeof out);
    assert_string_equal(out, "postgresql://alice:***@db.example/stepmark");
    sm_log_redact(NULL, "host=db password=hunter2 user=bob", out, sizeof out);
    assert_string_equal(out, "host=db password=*** user=bob");
    sm_log_redact(NULL, "tcp://127.0.0.1:5555", out, sizeof out);
    assert_string_equal(out, "tcp://127.0.0.1:5555");
    sm_log_redact("teacher_token", "abcdef", out, sizeof out);
    assert_string_equal(out, "***");
    sm_log_redact("secret_key", "abcdef", out, sizeof out);
    assert_string_equal(out, "***");
    sm_log_redact("job", "42", out, sizeof out);
    assert_string_equal(out, "42");
    char tiny[8];
    sm_log_redact(NULL, "a very long value that is cut", tiny, sizeof tiny);
    assert_int_equal(strlen(tiny), 7);
}

static void writes_levels_and_fields_to_file(void **state)
{
    (void)state;
    char path[] = "/tmp/stepmark-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    sm_err err;
    assert_int_equal(sm_log_configure(SM_LOG_INFO, path, &err), SM_OK);
    sm_log(SM_LOG_DEBUG, "hidden", NULL);
    sm_log(SM_LOG_INFO, "job leased", "job", "42", "worker", "w 1", "token", "tok123", NULL);
    sm_logf(SM_LOG_ERROR, "cannot connect to postgresql://u:pw@h/db");
    sm_log_close();
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(path);
    assert_null(strstr(buf, "hidden"));
    assert_non_null(strstr(buf, "Z info  job leased job=42 worker=\"w 1\" token=***\n"));
    assert_non_null(strstr(buf, "error cannot connect to postgresql://u:***@h/db"));
    assert_null(strstr(buf, "tok123"));
    assert_null(strstr(buf, "pw@"));
}

static void parses_levels(void **state)
{
    (void)state;
    sm_log_level l;
    assert_int_equal(sm_log_level_parse("warn", &l), SM_OK);
    assert_int_equal(l, SM_LOG_WARN);
    assert_int_equal(sm_log_level_parse("DEBUG", &l), SM_OK);
    assert_int_equal(l, SM_LOG_DEBUG);
    assert_int_equal(sm_log_level_parse("loud", &l), SM_EINVAL);
    sm_err err;
    assert_int_equal(sm_log_configure(SM_LOG_INFO, "/nonexistent/dir/log", &err), SM_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(redacts_url_passwords),
        cmocka_unit_test(writes_levels_and_fields_to_file),
        cmocka_unit_test(parses_levels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
