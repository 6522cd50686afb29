/* test_peers: the worker endpoint's accounting of bad messages (daemon/peers.c): the reply
 * cap, the ban and its end, the window, messages that never ban, and a flood of identities
 * that cannot evict a live ban. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "peers.h"

static sm_peers *make(void)
{
    sm_peer_limits l = {.error_replies = 3, .ban_errors = 10, .ban_ms = 5000};
    sm_peers *p;
    sm_err err;
    assert_int_equal(sm_peers_new(&l, &p, &err), SM_OK);
    return p;
}

#define ID(s) (const unsigned char *)(s), strlen(s)

static void test_reply_cap_then_ban(void **state)
{
    (void)state;
    sm_peers *p = make();
    for (int i = 0; i < 3; i++)
        assert_int_equal(sm_peers_bad(p, ID("a"), true, 1000), SM_PEER_REPLY);
    for (int i = 3; i < 10; i++)
        assert_int_equal(sm_peers_bad(p, ID("a"), true, 1000), SM_PEER_QUIET);
    assert_false(sm_peers_banned(p, ID("a"), 1000));
    assert_int_equal(sm_peers_bad(p, ID("a"), true, 1000), SM_PEER_BANNED);
    assert_true(sm_peers_banned(p, ID("a"), 1001));
    assert_true(sm_peers_banned(p, ID("a"), 5999));
    assert_false(sm_peers_banned(p, ID("a"), 6000));
    assert_int_equal(sm_peers_dropped(p), 2);
    assert_int_equal(sm_peers_bans(p), 1);
    /* another peer was never affected */
    assert_false(sm_peers_banned(p, ID("b"), 1001));
    assert_int_equal(sm_peers_bad(p, ID("b"), true, 1001), SM_PEER_REPLY);
    sm_peers_free(&p);
    assert_null(p);
}

static void test_window_resets(void **state)
{
    (void)state;
    sm_peers *p = make();
    for (int i = 0; i < 5; i++)
        sm_peers_bad(p, ID("a"), true, 0);
    assert_int_equal(sm_peers_bad(p, ID("a"), true, 100), SM_PEER_QUIET);
    assert_int_equal(sm_peers_bad(p, ID("a"), true, SM_PEERS_WINDOW_MS + 1), SM_PEER_REPLY);
    /* ten bannable errors per window, spread over windows, never ban */
    for (int w = 0; w < 5; w++)
        for (int i = 0; i < 9; i++)
            assert_int_not_equal(sm_peers_bad(p, ID("c"), true, (w + 2) * SM_PEERS_WINDOW_MS),
                                 SM_PEER_BANNED);
    sm_peers_free(&p);
}

static void test_quietable_never_bans(void **state)
{
    (void)state;
    sm_peers *p = make();
    for (int i = 0; i < 1000; i++)
        assert_int_not_equal(sm_peers_bad(p, ID("a"), false, 10), SM_PEER_BANNED);
    assert_false(sm_peers_banned(p, ID("a"), 11));
    assert_int_equal(sm_peers_bad(p, ID("a"), false, 12), SM_PEER_QUIET);
    sm_peers_free(&p);
}

static void test_flood_of_identities_keeps_bans(void **state)
{
    (void)state;
    sm_peers *p = make();
    for (int i = 0; i <= 10; i++)
        sm_peers_bad(p, ID("evil"), true, 0);
    assert_true(sm_peers_banned(p, ID("evil"), 1));
    char id[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(id, sizeof id, "fresh-%d", i);
        sm_peers_bad(p, ID(id), true, 2);
    }
    assert_true(sm_peers_banned(p, ID("evil"), 3));
    /* identities longer than a ROUTER identity are never tracked (and never banned) */
    unsigned char big[300];
    memset(big, 'x', sizeof big);
    assert_int_equal(sm_peers_bad(p, big, sizeof big, true, 4), SM_PEER_QUIET);
    assert_false(sm_peers_banned(p, big, sizeof big, 4));
    sm_peers_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_cap_then_ban),
        cmocka_unit_test(test_window_resets),
        cmocka_unit_test(test_quietable_never_bans),
        cmocka_unit_test(test_flood_of_identities_keeps_bans),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
