/* test_proto: unit tests of the protocol codec (common/sm_proto.c) and the CURVE helpers that
 * need no network: framing checks, typed errors, UTF-8, JSON limits, field readers, a real
 * round trip over an inproc socket pair, and key files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sm_curve.h"
#include "sm_proto.h"

static const char *const cmds[] = {"SUBMIT", "STATUS", NULL};

static sm_code parse5(const char *d, const char *proto, const char *cmd, const char *id,
                      const char *body, size_t body_len, size_t max, sm_request *r, sm_err *err)
{
    sm_frame f[5] = {{(const unsigned char *)d, strlen(d)},
                     {(const unsigned char *)proto, strlen(proto)},
                     {(const unsigned char *)cmd, strlen(cmd)},
                     {(const unsigned char *)id, strlen(id)},
                     {(const unsigned char *)body, body_len}};
    return sm_proto_parse(SM_PROTO_CLIENT, cmds, f, 5, 5, max, r, err);
}

#define PARSE(b) parse5("", "SMC1", "SUBMIT", "7", b, strlen(b), 1024, &r, &err)

static void test_parse_ok(void **state)
{
    (void)state;
    sm_request r;
    sm_err err;
    assert_int_equal(PARSE("{\"a\": 1}"), SM_OK);
    assert_int_equal(r.cmd, 0);
    assert_string_equal(r.command, "SUBMIT");
    assert_int_equal(r.id_len, 1);
    assert_memory_equal(r.id, "7", 1);
    assert_int_equal(json_integer_value(json_object_get(r.body, "a")), 1);
    sm_request_clear(&r);
}

static void test_parse_errors(void **state)
{
    (void)state;
    sm_request r;
    sm_err err;
    /* wrong frame counts */
    sm_frame f[5] = {{(const unsigned char *)"", 0}, {(const unsigned char *)"SMC1", 4},
                     {(const unsigned char *)"SUBMIT", 6}, {(const unsigned char *)"9", 1},
                     {(const unsigned char *)"{}", 2}};
    assert_int_equal(sm_proto_parse(SM_PROTO_CLIENT, cmds, f, 4, 4, 100, &r, &err), SM_EPROTO);
    assert_memory_equal(r.id, "9", 1); /* the id is kept for the error reply */
    sm_request_clear(&r);
    assert_int_equal(sm_proto_parse(SM_PROTO_CLIENT, cmds, f, 5, 6, 100, &r, &err), SM_EPROTO);
    sm_request_clear(&r);
    assert_int_equal(parse5("x", "SMC1", "SUBMIT", "", "{}", 2, 100, &r, &err), SM_EPROTO);
    sm_request_clear(&r);
    assert_int_equal(parse5("", "SMC2", "SUBMIT", "", "{}", 2, 100, &r, &err), SM_EUNSUPPORTED);
    sm_request_clear(&r);
    assert_int_equal(parse5("", "SMC1", "DELETE", "", "{}", 2, 100, &r, &err), SM_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "DELETE"));
    sm_request_clear(&r);
    assert_int_equal(parse5("", "SMC1", "", "", "{}", 2, 100, &r, &err), SM_EUNSUPPORTED);
    sm_request_clear(&r);
    char longid[100];
    memset(longid, 'i', 99);
    longid[99] = 0;
    assert_int_equal(parse5("", "SMC1", "SUBMIT", longid, "{}", 2, 100, &r, &err), SM_EPROTO);
    sm_request_clear(&r);
    /* body checks */
    assert_int_equal(PARSE("{\"a\": "), SM_EFORMAT);
    sm_request_clear(&r);
    assert_int_equal(PARSE("[1, 2]"), SM_EFORMAT);
    sm_request_clear(&r);
    assert_int_equal(PARSE("{\"a\": 1, \"a\": 2}"), SM_EFORMAT);
    sm_request_clear(&r);
    assert_int_equal(PARSE("{\"a\": \"x\\u0000y\"}"), SM_EFORMAT);
    sm_request_clear(&r);
    assert_int_equal(PARSE("{\"a\": \"\xff\"}"), SM_EINVAL);
    sm_request_clear(&r);
    char deep[200] = "{\"a\":";
    for (int i = 0; i < 20; i++)
        strcat(deep, "[");
    for (int i = 0; i < 20; i++)
        strcat(deep, "]");
    strcat(deep, "}");
    assert_int_equal(PARSE(deep), SM_EFORMAT);
    sm_request_clear(&r);
    char big[2000];
    memset(big, ' ', sizeof big);
    memcpy(big, "{}", 2);
    assert_int_equal(parse5("", "SMC1", "SUBMIT", "", big, sizeof big, 1024, &r, &err),
                     SM_ELIMIT);
    sm_request_clear(&r);
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(sm_utf8_valid((const unsigned char *)"plain", 5));
    assert_true(sm_utf8_valid((const unsigned char *)"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    assert_false(sm_utf8_valid((const unsigned char *)"\xc0\xaf", 2));         /* overlong */
    assert_false(sm_utf8_valid((const unsigned char *)"\xe0\x80\xaf", 3));     /* overlong */
    assert_false(sm_utf8_valid((const unsigned char *)"\xed\xa0\x80", 3));     /* surrogate */
    assert_false(sm_utf8_valid((const unsigned char *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(sm_utf8_valid((const unsigned char *)"\xe2\x82", 2));         /* truncated */
    assert_false(sm_utf8_valid((const unsigned char *)"\x80", 1));
}

static void test_fields(void **state)
{
    (void)state;
    json_t *o = json_pack("{s:s, s:i, s:f, s:b, s:[], s:n, s:s}", "s", "abc", "i", 5, "d", 0.5,
                          "b", 1, "a", "n", "e", "");
    sm_err err;
    const char *s = NULL;
    int64_t i = 0;
    double d = 0;
    bool b = false;
    const json_t *a = NULL;
    assert_int_equal(sm_json_str(o, "s", true, 3, &s, &err), SM_OK);
    assert_string_equal(s, "abc");
    assert_int_equal(sm_json_str(o, "s", true, 2, &s, &err), SM_EINVAL);
    assert_int_equal(sm_json_str(o, "i", true, 10, &s, &err), SM_EINVAL);
    assert_int_equal(sm_json_str(o, "missing", true, 10, &s, &err), SM_EINVAL);
    assert_non_null(strstr(err.msg, "missing"));
    assert_int_equal(sm_json_str(o, "n", false, 10, &s, &err), SM_OK);
    assert_int_equal(sm_json_str(o, "e", true, 10, &s, &err), SM_EINVAL);
    assert_int_equal(sm_json_int(o, "i", true, 1, 5, &i, &err), SM_OK);
    assert_int_equal(i, 5);
    assert_int_equal(sm_json_int(o, "i", true, 6, 9, &i, &err), SM_EINVAL);
    assert_int_equal(sm_json_int(o, "d", true, 0, 9, &i, &err), SM_EINVAL);
    assert_int_equal(sm_json_num(o, "d", true, 0, 1, &d, &err), SM_OK);
    assert_int_equal(sm_json_num(o, "i", true, 0, 1, &d, &err), SM_EINVAL);
    assert_int_equal(sm_json_bool(o, "b", true, &b, &err), SM_OK);
    assert_true(b);
    assert_int_equal(sm_json_typed(o, "a", true, JSON_ARRAY, &a, &err), SM_OK);
    assert_int_equal(sm_json_typed(o, "a", true, JSON_OBJECT, &a, &err), SM_EINVAL);
    assert_true(sm_proto_code_ok("CS-101.a_b", 200));
    assert_false(sm_proto_code_ok("a/b", 200));
    assert_false(sm_proto_code_ok("", 200));
    assert_false(sm_proto_code_ok("a b", 200));
    json_decref(o);
    assert_int_equal(sm_proto_code_from_name("ELIMIT"), SM_ELIMIT);
    assert_int_equal(sm_proto_code_from_name("nonsense"), SM_EINTERNAL);
    json_t *e = sm_proto_error_body(SM_ENOTFOUND, "gone", false);
    assert_string_equal(json_string_value(json_object_get(e, "code")), "ENOTFOUND");
    json_decref(e);
}

static void test_roundtrip(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    assert_int_equal(zmq_bind(router, "inproc://t"), 0);
    assert_int_equal(zmq_connect(dealer, "inproc://t"), 0);
    json_t *body = json_pack("{s:s}", "k", "v\xc3\xa9");
    sm_err err;
    assert_int_equal(sm_proto_send_msg(dealer, NULL, SM_PROTO_CLIENT, "STATUS",
                                       (const unsigned char *)"42", 2, body, &err),
                     SM_OK);
    sm_msg m;
    assert_int_equal(sm_msg_recv(router, &m, 0, &err), SM_OK);
    assert_int_equal(m.total, 6);
    sm_frame f[SM_PROTO_MAX_FRAMES];
    for (int i = 0; i < m.n; i++)
        f[i] = sm_msg_frame(&m, i);
    sm_request r;
    assert_int_equal(sm_proto_parse(SM_PROTO_CLIENT, cmds, f + 1, m.n - 1, m.total - 1, 100,
                                    &r, &err),
                     SM_OK);
    assert_int_equal(r.cmd, 1);
    assert_true(json_equal(r.body, body));
    /* reply through the identity */
    assert_int_equal(sm_proto_send_msg(router, &f[0], SM_PROTO_CLIENT, "OK", r.id, r.id_len,
                                       NULL, &err),
                     SM_OK);
    sm_request_clear(&r);
    sm_msg_close(&m);
    assert_int_equal(sm_msg_recv(dealer, &m, 0, &err), SM_OK);
    assert_int_equal(m.total, 5);
    sm_frame g = sm_msg_frame(&m, 4);
    assert_memory_equal(g.data, "{}", 2);
    sm_msg_close(&m);
    /* more frames than kept are counted and dropped */
    for (int i = 0; i < 11; i++)
        zmq_send(dealer, "x", 1, i < 10 ? ZMQ_SNDMORE : 0);
    assert_int_equal(sm_msg_recv(router, &m, 0, &err), SM_OK);
    assert_int_equal(m.total, 12);
    assert_int_equal(m.n, SM_PROTO_MAX_FRAMES);
    sm_msg_close(&m);
    assert_int_equal(sm_msg_recv(router, &m, ZMQ_DONTWAIT, &err), SM_ESTATE);
    json_decref(body);
    zmq_close(router);
    zmq_close(dealer);
    zmq_ctx_term(ctx);
}

static void test_curve_keys(void **state)
{
    (void)state;
    char dir[] = "/tmp/sm-curve-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char base[256], path[300];
    snprintf(base, sizeof base, "%s/k", dir);
    char pub[SM_CURVE_Z85], sec[SM_CURVE_Z85], pub2[SM_CURVE_Z85];
    sm_err err;
    assert_int_equal(sm_curve_write_pair(base, pub, &err), SM_OK);
    assert_int_not_equal(sm_curve_write_pair(base, pub2, &err), SM_OK); /* no overwrite */
    snprintf(path, sizeof path, "%s.secret", base);
    assert_int_equal(sm_curve_read_key(path, sec, &err), SM_OK);
    assert_int_equal(sm_curve_public_of(sec, pub2, &err), SM_OK);
    assert_string_equal(pub, pub2);
    assert_int_equal(sm_curve_key_arg(pub, pub2, &err), SM_OK);
    unlink(path);
    snprintf(path, sizeof path, "%s.public", base);
    unlink(path);
    /* allow-list */
    snprintf(path, sizeof path, "%s/allow", dir);
    FILE *fp = fopen(path, "w");
    fprintf(fp, "# comment\n\n%s lms-prod\n", pub);
    fclose(fp);
    sm_keyset *ks;
    assert_int_equal(sm_keyset_load(path, &ks, &err), SM_OK);
    assert_int_equal(sm_keyset_count(ks), 1);
    uint8_t bin[32];
    zmq_z85_decode(bin, pub);
    const char *name = NULL;
    assert_true(sm_keyset_find(ks, bin, &name));
    assert_string_equal(name, "lms-prod");
    bin[0] ^= 1;
    assert_false(sm_keyset_find(ks, bin, &name));
    sm_keyset_free(&ks);
    assert_null(ks);
    fp = fopen(path, "w");
    fprintf(fp, "not-a-key\n");
    fclose(fp);
    assert_int_equal(sm_keyset_load(path, &ks, &err), SM_EFORMAT);
    unlink(path);
    rmdir(dir);
    assert_true(sm_endpoint_is_local("ipc:///tmp/x"));
    assert_true(sm_endpoint_is_local("tcp://127.0.0.1:5555"));
    assert_true(sm_endpoint_is_local("tcp://localhost:5555"));
    assert_true(sm_endpoint_is_local("tcp://[::1]:5555"));
    assert_false(sm_endpoint_is_local("tcp://*:5555"));
    assert_false(sm_endpoint_is_local("tcp://0.0.0.0:5555"));
    assert_false(sm_endpoint_is_local("tcp://10.0.0.1:5555"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),    cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_utf8),        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_roundtrip),   cmocka_unit_test(test_curve_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
