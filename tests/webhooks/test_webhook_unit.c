/* test_webhook_unit: the pure parts of common/sm_webhook: which URLs may receive webhooks, the
 * Stepmark-Signature value against a vector computed with Python's hmac module, new secrets,
 * the backoff schedule (doubling, cap, jitter bounds) and the metrics lines of webhooks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sm_metrics.h"
#include "sm_webhook.h"

static void urls(void **state)
{
    (void)state;
    static const char *const good[] = {"https://lms.example/hooks/stepmark",
                                       "https://lms.example:8443/h?x=1",
                                       "http://127.0.0.1:8080/h",
                                       "http://127.9.9.9/h",
                                       "http://localhost:9/h",
                                       "http://LOCALHOST/h",
                                       "http://[::1]:8080/h"};
    static const char *const bad[] = {"http://example.com/h",
                                      "http://10.0.0.1/h",
                                      "http://128.0.0.1/h",
                                      "http://[::2]/h",
                                      "http://localhost.evil.example/h",
                                      "ftp://127.0.0.1/h",
                                      "file:///etc/passwd",
                                      "https://user:pw@lms.example/h",
                                      "https://lms.example/h#frag",
                                      "https://lms.example/a b",
                                      "lms.example/h",
                                      "",
                                      "https://"};
    sm_err err;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(sm_webhook_check_url(good[i], &err), SM_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sm_webhook_check_url(bad[i], &err), SM_EINVAL);
        assert_true(err.msg[0] != 0);
    }
    assert_int_equal(sm_webhook_check_url("http://example.com/h", &err), SM_EINVAL);
    assert_non_null(strstr(err.msg, "loopback"));
    char longurl[SM_WEBHOOK_URL_MAX + 40] = "https://lms.example/";
    memset(longurl + strlen(longurl), 'a', SM_WEBHOOK_URL_MAX);
    longurl[sizeof longurl - 1] = 0;
    assert_int_equal(sm_webhook_check_url(longurl, &err), SM_EINVAL);
}

static void signature(void **state)
{
    (void)state;
    char sig[SM_WEBHOOK_SIG_MAX];
    sm_err err;
    assert_int_equal(sm_webhook_sign("whsec_test", 1700000000, "{\"a\":1}", 7, sig, &err), SM_OK);
    /* python3: hmac.new(b'whsec_test', b'1700000000.{"a":1}', hashlib.sha256).hexdigest() */
    assert_string_equal(
        sig, "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789");
}

static void secrets(void **state)
{
    (void)state;
    char a[SM_WEBHOOK_SECRET_LEN], b[SM_WEBHOOK_SECRET_LEN];
    sm_err err;
    assert_int_equal(sm_webhook_new_secret(a, &err), SM_OK);
    assert_int_equal(sm_webhook_new_secret(b, &err), SM_OK);
    assert_int_equal(strlen(a), SM_WEBHOOK_SECRET_LEN - 1);
    assert_memory_equal(a, "whsec_", 6);
    assert_int_equal(strspn(a + 6, "0123456789abcdef"), 64);
    assert_string_not_equal(a, b);
}

static void backoff(void **state)
{
    (void)state;
    /* no jitter at the extremes: rnd 0 gives the lower half-bound, UINT32_MAX some value <= d */
    assert_int_equal(sm_webhook_backoff_ms(1000, 300000, 1, 0), 500);
    assert_int_equal(sm_webhook_backoff_ms(1000, 300000, 2, 0), 1000);
    assert_int_equal(sm_webhook_backoff_ms(1000, 300000, 3, 0), 2000);
    assert_int_equal(sm_webhook_backoff_ms(1000, 300000, 50, 0), 150000);
    assert_int_equal(sm_webhook_backoff_ms(1000, 300000, 1000000, 0), 150000);
    for (uint32_t r = 0; r < 5000; r += 7) {
        int64_t d = sm_webhook_backoff_ms(1000, 300000, 30, r * 2654435761u);
        assert_true(d >= 150000 && d <= 300000);
        d = sm_webhook_backoff_ms(1000, 300000, 3, r * 2654435761u);
        assert_true(d >= 2000 && d <= 4000);
    }
}

static void metrics(void **state)
{
    (void)state;
    sm_metrics *m;
    sm_err err;
    assert_int_equal(sm_metrics_new(&m, &err), SM_OK);
    sm_metrics_webhook_attempt(m, true);
    sm_metrics_webhook_attempt(m, true);
    sm_metrics_webhook_attempt(m, false);
    sm_metrics_webhook_backlog_set(m, 17);
    char *text;
    assert_int_equal(sm_metrics_render(m, &text, &err), SM_OK);
    assert_non_null(strstr(text, "stepmark_webhook_deliveries_total{result=\"ok\"} 2\n"));
    assert_non_null(strstr(text, "stepmark_webhook_deliveries_total{result=\"failed\"} 1\n"));
    assert_non_null(strstr(text, "stepmark_webhook_backlog 17\n"));
    free(text);
    sm_metrics_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(urls), cmocka_unit_test(signature),
                                       cmocka_unit_test(secrets), cmocka_unit_test(backoff),
                                       cmocka_unit_test(metrics)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
