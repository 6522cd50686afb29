/* test_redact: database URLs and connection strings never show their password: not in
 * sm_db_redact (what the CLI prints), not in a log line (sm_log_redact), and not in the error of
 * a failed connection (sm_db_connect), for tricky passwords (spaces, quotes, backslashes,
 * percent-encoding, query parameters, nested connection strings) and for strings libpq cannot
 * parse, whose error messages quote pieces of the input. Every secret contains "SEKRIT". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sm_db.h"
#include "sm_log.h"

/* Connection strings that libpq accepts; the server (port 1 on loopback) refuses at once. */
static const char *const good[] = {
    "postgresql://alice:SEKRIT one@127.0.0.1:1/stepmark?connect_timeout=5",
    "postgres://alice:SEKRIT%20two%27%22x@127.0.0.1:1/stepmark?sslmode=disable",
    "postgresql://alice:SEKRIT'three\"q\\@127.0.0.1:1/x",
    "host=127.0.0.1 port=1 user=bob password='SEKRIT four \\' SEKRIT five' dbname=x",
    "password = 'SEKRIT six'  host=127.0.0.1 port=1",
    "postgresql://127.0.0.1:1/x?user=bob&password=SEKRIT%20seven",
    "postgresql:///x?host=127.0.0.1&port=1&password=SEKRIT8",
    "host=127.0.0.1 port=1 password=SEKRIT\\ nine",
    "host=127.0.0.1 port=1 dbname='host=db password=SEKRIT10'",
    "postgresql://alice:SEKRIT11@127.0.0.1:1/x?password=SEKRIT12",
    "sslpassword=SEKRIT13 host=127.0.0.1 port=1 password=x",
    "host=127.0.0.1 port=1 password=\"SEKRIT14\"",
};

/* Strings libpq rejects, with its message quoting the input. */
static const char *const bad[] = {
    "postgresql://alice:SEKRIT%zz15@127.0.0.1:1/x",
    "host=127.0.0.1 password='SEKRIT16 unterminated",
    "host=127.0.0.1 SEKRIT17",
    "postgresql://alice:SEKRIT18@[::1/x",
    "postgresql://alice:SEKRIT19@127.0.0.1:1/x?SEKRIT20",
};

#define N(a) (sizeof a / sizeof a[0])

static void assert_clean(const char *what, const char *text)
{
    if (strstr(text, "SEKRIT"))
        fail_msg("%s shows a password: %s", what, text);
}

static void redacted_copies_hide_passwords(void **state)
{
    (void)state;
    char out[1024], line[1200];
    for (size_t i = 0; i < N(good); i++) {
        sm_db_redact(good[i], out, sizeof out);
        assert_clean("sm_db_redact", out);
        assert_non_null(strstr(out, "password=***"));
        assert_non_null(strstr(out, "127.0.0.1"));
        snprintf(line, sizeof line, "cannot connect to %s: refused", good[i]);
        sm_log_redact(NULL, line, out, sizeof out);
        assert_clean("sm_log_redact", out);
    }
    for (size_t i = 0; i < N(bad); i++) {
        sm_db_redact(bad[i], out, sizeof out);
        assert_string_equal(out, "(invalid connection string)");
    }
}

static void redacted_copy_is_readable(void **state)
{
    (void)state;
    char out[512];
    sm_db_redact("postgresql://alice:a%20b@db.example:5433/stepmark?sslmode=require", out,
                 sizeof out);
    assert_string_equal(out, "user=alice password=*** dbname=stepmark host=db.example "
                             "port=5433 sslmode=require");
    sm_db_redact("host='/tmp/my data/run' port=5432 user=stepmark dbname=stepmark", out,
                 sizeof out);
    assert_string_equal(out, "user=stepmark dbname=stepmark host='/tmp/my data/run' port=5432");
    sm_db_redact("", out, sizeof out);
    assert_string_equal(out, "(libpq defaults)");
    char tiny[12];
    sm_db_redact("host=127.0.0.1 password=SEKRIT user=someone", tiny, sizeof tiny);
    assert_clean("a truncated sm_db_redact", tiny);
}

static void failed_connections_hide_passwords(void **state)
{
    (void)state;
    sm_err err;
    PGconn *conn = NULL;
    for (size_t i = 0; i < N(good); i++) {
        assert_int_equal(sm_db_connect(good[i], &conn, &err), SM_EDB);
        assert_null(conn);
        assert_clean("sm_db_connect", err.msg);
        assert_non_null(strstr(err.msg, "password=***"));
    }
    for (size_t i = 0; i < N(bad); i++) {
        assert_int_equal(sm_db_connect(bad[i], &conn, &err), SM_ECONFIG);
        assert_null(conn);
        assert_clean("sm_db_connect (unparsable)", err.msg);
        assert_non_null(strstr(err.msg, "invalid database URL"));
    }
}

static void log_lines_hide_passwords(void **state)
{
    (void)state;
    char path[] = "/tmp/stepmark-test-redact-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    sm_err err;
    assert_int_equal(sm_log_configure(SM_LOG_INFO, path, &err), SM_OK);
    for (size_t i = 0; i < N(good); i++) {
        sm_logf(SM_LOG_ERROR, "cannot connect to %s", good[i]);
        sm_log(SM_LOG_INFO, "database", "url", good[i], NULL);
        sm_log(SM_LOG_INFO, good[i], NULL);
    }
    sm_log_close();
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(path);
    assert_true(n > 100);
    assert_clean("the log", buf);
}

static void free_text_keeps_the_rest(void **state)
{
    (void)state;
    char out[256];
    sm_log_redact(NULL, "password authentication failed for user \"bob\"", out, sizeof out);
    assert_string_equal(out, "password authentication failed for user \"bob\"");
    sm_log_redact(NULL, "url=postgresql://u:p w@h/db next=1", out, sizeof out);
    assert_string_equal(out, "url=postgresql://u:***@h/db next=1");
    sm_log_redact(NULL, "a password = 'x y' b=2", out, sizeof out);
    assert_string_equal(out, "a password = *** b=2");
    sm_log_redact(NULL, "peer tcp://127.0.0.1:5555 from a@b", out, sizeof out);
    assert_string_equal(out, "peer tcp://127.0.0.1:5555 from a@b");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(redacted_copies_hide_passwords),
        cmocka_unit_test(redacted_copy_is_readable),
        cmocka_unit_test(failed_connections_hide_passwords),
        cmocka_unit_test(log_lines_hide_passwords),
        cmocka_unit_test(free_text_keeps_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
