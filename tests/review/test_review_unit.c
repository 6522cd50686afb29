/* test_review_unit: SHA-256 against the FIPS 180-4 / NIST example vectors, random tokens, and
 * the metrics counters, histogram and Prometheus rendering used by the review side. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sm_metrics.h"
#include "sm_sha256.h"

static void sha_vectors(void **state)
{
    (void)state;
    char hex[SM_SHA256_HEX];
    assert_true(sm_sha256_hex("", 0, hex));
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sm_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sm_sha256_hex(m, strlen(m), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void sha_incremental_million_a(void **state)
{
    (void)state;
    char block[1001];
    memset(block, 'a', sizeof block);
    sm_sha256_ctx ctx;
    sm_sha256_init(&ctx);
    for (int i = 0; i < 1000; i++)
        sm_sha256_update(&ctx, block, i % 2 ? 999 : 1001); /* uneven pieces, 1e6 in all */
    uint8_t d[SM_SHA256_LEN];
    assert_true(sm_sha256_final(&ctx, d));
    static const uint8_t want[SM_SHA256_LEN] = {0xcd, 0xc7, 0x6e, 0x5c, 0x99, 0x14, 0xfb, 0x92,
                                                0x81, 0xa1, 0xc7, 0xe2, 0x84, 0xd7, 0x3e, 0x67,
                                                0xf1, 0x80, 0x9a, 0x48, 0xa4, 0x97, 0x20, 0x0e,
                                                0x04, 0x6d, 0x39, 0xcc, 0xc7, 0x11, 0x2c, 0xd0};
    assert_memory_equal(d, want, sizeof want);
}

static void random_tokens(void **state)
{
    (void)state;
    char a[65], b[65];
    assert_int_equal(sm_random_hex(32, a, NULL), SM_OK);
    assert_int_equal(sm_random_hex(32, b, NULL), SM_OK);
    assert_int_equal(strlen(a), 64);
    assert_string_not_equal(a, b);
    assert_true(strspn(a, "0123456789abcdef") == 64);
    sm_err err;
    assert_int_equal(sm_random_hex(0, a, &err), SM_EINVAL);
    assert_int_equal(sm_random_hex(65, a, &err), SM_EINVAL);
}

static void metrics_counts_and_histogram(void **state)
{
    (void)state;
    sm_metrics *m = NULL;
    assert_int_equal(sm_metrics_new(&m, NULL), SM_OK);
    sm_metrics_submissions_accepted(m, 5);
    sm_metrics_grading_done(m);
    sm_metrics_grading_failed(m);
    sm_metrics_worker_connected(m);
    sm_metrics_worker_connected(m);
    sm_metrics_worker_disconnected(m);
    sm_metrics_tokens_generated(m, 100);
    sm_metrics_ack_observe_seconds(m, 0.0005); /* le 0.0005 */
    sm_metrics_ack_observe_seconds(m, 0.0006); /* le 0.001 */
    sm_metrics_ack_observe_seconds(m, 0.007);  /* le 0.01 */
    sm_metrics_ack_observe_seconds(m, 1000);   /* +Inf only */
    sm_metrics_ack_observe_seconds(m, -1);     /* ignored */
    sm_metrics_snapshot s;
    sm_metrics_snapshot_get(m, &s);
    assert_int_equal(s.submissions_accepted, 5);
    assert_int_equal(s.gradings_done, 1);
    assert_int_equal(s.gradings_failed, 1);
    assert_int_equal(s.workers_connected, 1);
    assert_int_equal(s.tokens_generated, 100);
    assert_int_equal(s.ack_count, 4);
    assert_int_equal(s.ack_buckets[0], 1);
    assert_int_equal(s.ack_buckets[1], 2);
    assert_int_equal(s.ack_buckets[4], 3); /* le 10 */
    assert_int_equal(s.ack_buckets[SM_METRICS_ACK_BUCKETS - 1], 3);
    assert_int_equal(s.ack_buckets[SM_METRICS_ACK_BUCKETS], 4);
    assert_true(s.ack_sum_seconds > 1000 && s.ack_sum_seconds < 1000.01);
    assert_true(s.tokens_per_second >= 0);

    char *text = NULL;
    assert_int_equal(sm_metrics_render(m, &text, NULL), SM_OK);
    assert_non_null(strstr(text, "# TYPE stepmark_ack_latency_seconds histogram\n"));
    assert_non_null(strstr(text, "stepmark_ack_latency_seconds_bucket{le=\"0.0005\"} 1\n"));
    assert_non_null(strstr(text, "stepmark_ack_latency_seconds_bucket{le=\"0.01\"} 3\n"));
    assert_non_null(strstr(text, "stepmark_ack_latency_seconds_bucket{le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(text, "stepmark_ack_latency_seconds_count 4\n"));
    assert_null(strstr(text, "_ms")); /* every duration in seconds */
    assert_non_null(strstr(text, "stepmark_submissions_accepted_total 5\n"));
    assert_non_null(strstr(text, "stepmark_workers_connected 1\n"));
    free(text);
    sm_metrics_workers_set(m, 7);
    sm_metrics_snapshot_get(m, &s);
    assert_int_equal(s.workers_connected, 7);
    sm_metrics_free(&m);
    assert_null(m);
    /* A NULL metrics object is accepted everywhere (the HTTP side without a broker). */
    sm_metrics_grading_done(NULL);
    sm_metrics_snapshot_get(NULL, &s);
    assert_int_equal(s.ack_count, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sha_vectors),
        cmocka_unit_test(sha_incremental_million_a),
        cmocka_unit_test(random_tokens),
        cmocka_unit_test(metrics_counts_and_histogram),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
