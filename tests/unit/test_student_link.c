/* test_student_link: the signed student feedback links of common/sm_student_link.c without a
 * database: a token round-trips, and a tampered, foreign-key, expired or malformed token is
 * refused, always with the same message; bad student references and base URLs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sm_student_link.h"

static const unsigned char KEY[SM_STUDENT_KEY_BYTES] = "0123456789abcdef0123456789abcde";
static const unsigned char OTHER[SM_STUDENT_KEY_BYTES] = "0123456789abcdef0123456789abcdX";
#define NOW 1800000000LL

static void sign(const char *ref, int64_t expires, char token[SM_STUDENT_TOKEN_MAX])
{
    sm_student_claims c = {.course_id = 42, .expires = expires};
    snprintf(c.student_ref, sizeof c.student_ref, "%s", ref);
    sm_err err = {0};
    assert_int_equal(sm_student_token_sign(KEY, &c, token, &err), SM_OK);
}

/* Verifying token under key at now is refused with the one message every refusal has. */
static void refused(const unsigned char *key, const char *token, int64_t now)
{
    sm_student_claims c;
    sm_err err = {0};
    assert_int_equal(sm_student_token_verify(key, token, now, &c, &err), SM_EINVAL);
    assert_string_equal(err.msg, "the link is invalid or has expired");
    assert_int_equal(c.course_id, 0);
    assert_string_equal(c.student_ref, "");
}

static void round_trip(void **state)
{
    (void)state;
    const char *refs[] = {
        "S002",
        "ana@school.example",
        "a:b:c",
        "Zoë Ŧest",
        "=1+2",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"};
    for (size_t i = 0; i < sizeof refs / sizeof *refs; i++) {
        char token[SM_STUDENT_TOKEN_MAX];
        sign(refs[i], NOW + 60, token);
        assert_non_null(strchr(token, '.'));
        assert_null(strpbrk(token, "+/=?&# "));
        sm_student_claims c;
        sm_err err = {0};
        assert_int_equal(sm_student_token_verify(KEY, token, NOW, &c, &err), SM_OK);
        assert_int_equal(c.course_id, 42);
        assert_int_equal(c.expires, NOW + 60);
        assert_string_equal(c.student_ref, refs[i]);
    }
}

static void refuses_expired(void **state)
{
    (void)state;
    char token[SM_STUDENT_TOKEN_MAX];
    sign("S002", NOW, token);
    refused(KEY, token, NOW);
    refused(KEY, token, NOW + 86400);
}

static void refuses_tampering(void **state)
{
    (void)state;
    char token[SM_STUDENT_TOKEN_MAX];
    sign("S002", NOW + 60, token);
    refused(OTHER, token, NOW);
    for (size_t i = 0; token[i]; i++) { /* every single-character change */
        if (token[i] == '.')
            continue;
        char t[SM_STUDENT_TOKEN_MAX];
        memcpy(t, token, sizeof t);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        refused(KEY, t, NOW);
    }
    /* another student's claims under the first student's signature */
    char other[SM_STUDENT_TOKEN_MAX], mixed[2 * SM_STUDENT_TOKEN_MAX];
    sign("S003", NOW + 60, other);
    snprintf(mixed, sizeof mixed, "%.*s%s", (int)(strchr(other, '.') - other), other,
             strchr(token, '.'));
    refused(KEY, mixed, NOW);
}

static void refuses_malformed(void **state)
{
    (void)state;
    char token[SM_STUDENT_TOKEN_MAX], t[2 * SM_STUDENT_TOKEN_MAX];
    sign("S002", NOW + 60, token);
    const char *bad[] = {"", ".", "abc", "abc.", ".abc", "a.b.c", "====.===="};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        refused(KEY, bad[i], NOW);
    refused(KEY, NULL, NOW);
    snprintf(t, sizeof t, "%s=", token); /* padding is not canonical */
    refused(KEY, t, NOW);
    snprintf(t, sizeof t, "%s.", token);
    refused(KEY, t, NOW);
    snprintf(t, sizeof t, "%sAAAA", token); /* a longer MAC */
    refused(KEY, t, NOW);
    memset(t, 'A', sizeof t - 1); /* far too long */
    t[sizeof t - 1] = '\0';
    t[10] = '.';
    refused(KEY, t, NOW);
}

static void refuses_bad_refs(void **state)
{
    (void)state;
    const char *bad[] = {"", "a\nb", "tab\there", "del\x7f"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sm_student_claims c = {.course_id = 1, .expires = NOW};
        snprintf(c.student_ref, sizeof c.student_ref, "%s", bad[i]);
        char token[SM_STUDENT_TOKEN_MAX];
        sm_err err = {0};
        assert_int_equal(sm_student_token_sign(KEY, &c, token, &err), SM_EINVAL);
    }
}

static void base_url(void **state)
{
    (void)state;
    char out[256];
    sm_student_base_url("https://grading.example.edu///", "0.0.0.0", 8080, false, out, sizeof out);
    assert_string_equal(out, "https://grading.example.edu");
    sm_student_base_url("", "127.0.0.1", 8080, false, out, sizeof out);
    assert_string_equal(out, "http://127.0.0.1:8080");
    sm_student_base_url(NULL, "::1", 8443, true, out, sizeof out);
    assert_string_equal(out, "https://[::1]:8443");
    sm_student_base_url("", "0.0.0.0", 80, false, out, sizeof out);
    assert_string_equal(out, "http://localhost:80");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),        cmocka_unit_test(refuses_expired),
        cmocka_unit_test(refuses_tampering), cmocka_unit_test(refuses_malformed),
        cmocka_unit_test(refuses_bad_refs),  cmocka_unit_test(base_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
