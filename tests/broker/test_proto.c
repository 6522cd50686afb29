/* test_proto: unit tests of the protocol codec (common/sm_proto.c) and the CURVE helpers that
 * need no network: framing checks, typed errors, UTF-8, JSON limits, field readers, a real
 * round trip over an inproc socket pair, ERROR bodies that always carry a code, key files
 * (secret ones refused when others may read them), and bindable loopback endpoints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sm_curve.h"
#include "sm_endpoint.h"
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
    sm_frame f[5] = {{(const unsigned char *)"", 0},
                     {(const unsigned char *)"SMC1", 4},
                     {(const unsigned char *)"SUBMIT", 6},
                     {(const unsigned char *)"9", 1},
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
    assert_int_equal(parse5("", "SMC1", "SUBMIT", "", big, sizeof big, 1024, &r, &err), SM_ELIMIT);
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
    json_t *o = json_pack("{s:s, s:i, s:f, s:b, s:[], s:n, s:s}", "s", "abc", "i", 5, "d", 0.5, "b",
                          1, "a", "n", "e", "");
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
    assert_int_equal(
        sm_proto_parse(SM_PROTO_CLIENT, cmds, f + 1, m.n - 1, m.total - 1, 100, &r, &err), SM_OK);
    assert_int_equal(r.cmd, 1);
    assert_true(json_equal(r.body, body));
    /* reply through the identity */
    assert_int_equal(
        sm_proto_send_msg(router, &f[0], SM_PROTO_CLIENT, "OK", r.id, r.id_len, NULL, &err), SM_OK);
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

/* A key file whose path is 40 z85-valid characters is read as a file, not taken as a key;
 * keysets say which key two of them share. */
static void test_key_arg_and_roles(void **state)
{
    (void)state;
    char dir[] = "/tmp/sm-kr-XXXXXX"; /* 17 characters; + "/" + 22 = 40 */
    assert_non_null(mkdtemp(dir));
    char base[64], path[64], pub[SM_CURVE_Z85], got[SM_CURVE_Z85], other[SM_CURVE_Z85];
    snprintf(base, sizeof base, "%s/abcdefghijklmno", dir);
    sm_err err;
    assert_int_equal(sm_curve_write_pair(base, pub, &err), SM_OK);
    snprintf(path, sizeof path, "%s.public", base);
    assert_int_equal(strlen(path), 40);
    assert_int_equal(sm_curve_key_arg(path, got, &err), SM_OK);
    assert_string_equal(got, pub);
    snprintf(path, sizeof path, "%s/o", dir);
    assert_int_equal(sm_curve_write_pair(path, other, &err), SM_OK);
    char lists[2][64];
    const char *const contents[2] = {pub, other};
    sm_keyset *ks[2];
    for (int i = 0; i < 2; i++) {
        snprintf(lists[i], sizeof lists[i], "%s/list%d", dir, i);
        FILE *fp = fopen(lists[i], "w");
        fprintf(fp, "%s k%d\n", contents[i], i);
        fclose(fp);
        assert_int_equal(sm_keyset_load(lists[i], &ks[i], &err), SM_OK);
    }
    assert_null(sm_keyset_common(ks[0], ks[1]));
    sm_keyset_free(&ks[1]);
    FILE *fp = fopen(lists[1], "a");
    fprintf(fp, "%s again\n", pub);
    fclose(fp);
    assert_int_equal(sm_keyset_load(lists[1], &ks[1], &err), SM_OK);
    assert_string_equal(sm_keyset_common(ks[0], ks[1]), "k0");
    for (int i = 0; i < 2; i++)
        sm_keyset_free(&ks[i]);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* Sends an ERROR built from msg over an inproc pair and checks what arrives: a JSON object
 * with the code's name and a non-empty message. */
static void check_error_reply(void *a, void *b, sm_code code, const char *msg, bool build)
{
    sm_err err;
    json_t *body = build ? sm_proto_error_body(code, msg, false) : NULL;
    if (build)
        assert_non_null(body);
    assert_int_equal(sm_proto_send_msg(a, NULL, SM_PROTO_CLIENT, "ERROR",
                                       (const unsigned char *)"1", 1, body, &err),
                     SM_OK);
    json_decref(body);
    sm_msg m;
    assert_int_equal(sm_msg_recv(b, &m, 0, &err), SM_OK);
    sm_frame g = sm_msg_frame(&m, 5);
    json_error_t je;
    json_t *got = json_loadb((const char *)g.data, g.size, 0, &je);
    assert_non_null(got);
    const char *c = json_string_value(json_object_get(got, "code"));
    const char *text = json_string_value(json_object_get(got, "message"));
    assert_non_null(c);
    assert_non_null(text);
    assert_true(strlen(text) > 0);
    if (build)
        assert_string_equal(c, sm_code_name(code));
    json_decref(got);
    sm_msg_close(&m);
}

static void test_error_body_always_coded(void **state)
{
    (void)state;
    /* frames with invalid UTF-8: every parse error still gives a coded, non-empty body */
    static const char *const bad[] = {"\xff\xfe", "S\xc3\x28", "\xed\xa0\x80X", "\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sm_request r;
        sm_err err;
        const sm_code want[] = {SM_EUNSUPPORTED, SM_EUNSUPPORTED, SM_EINVAL};
        for (int k = 0; k < 3; k++) { /* bad protocol, command, body */
            sm_code got =
                k == 0   ? parse5("", bad[i], "SUBMIT", "1", "{}", 2, 100, &r, &err)
                : k == 1 ? parse5("", "SMC1", bad[i], "1", "{}", 2, 100, &r, &err)
                         : parse5("", "SMC1", "SUBMIT", "1", bad[i], strlen(bad[i]), 100, &r, &err);
            assert_int_equal(got, want[k]);
            json_t *body = sm_proto_error_body(got, err.msg, false);
            assert_non_null(body);
            assert_string_equal(json_string_value(json_object_get(body, "code")),
                                sm_code_name(want[k]));
            assert_true(strlen(json_string_value(json_object_get(body, "message"))) > 0);
            json_decref(body);
            sm_request_clear(&r);
        }
    }
    /* a message with invalid bytes keeps its valid text; an empty one gets the code's name */
    json_t *body = sm_proto_error_body(SM_EINVAL, "bad \xff\xfe byte \xc3\xa9", true);
    assert_non_null(body);
    assert_string_equal(json_string_value(json_object_get(body, "message")),
                        "bad ?? byte \xc3\xa9");
    assert_true(json_is_true(json_object_get(body, "retryable")));
    json_decref(body);
    body = sm_proto_error_body(SM_ELIMIT, "", false);
    assert_string_equal(json_string_value(json_object_get(body, "message")), "ELIMIT");
    json_decref(body);
    /* over real sockets, including an ERROR sent without a body */
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    assert_int_equal(zmq_bind(router, "inproc://err"), 0);
    assert_int_equal(zmq_connect(dealer, "inproc://err"), 0);
    check_error_reply(dealer, router, SM_EUNSUPPORTED, "unknown command \"\xff\"", true);
    check_error_reply(dealer, router, SM_EINVAL, "\xc3", true);
    check_error_reply(dealer, router, SM_EINTERNAL, NULL, false);
    zmq_close(router);
    zmq_close(dealer);
    zmq_ctx_term(ctx);
}

/* Writes a fresh key pair under dir and returns the secret file's path in path. */
static void fresh_pair(const char *dir, const char *name, char *path, size_t n, char *pub)
{
    char base[256];
    sm_err err;
    snprintf(base, sizeof base, "%s/%s", dir, name);
    assert_int_equal(sm_curve_write_pair(base, pub, &err), SM_OK);
    snprintf(path, n, "%s.secret", base);
}

static void test_secret_key_file_mode(void **state)
{
    (void)state;
    char dir[] = "/tmp/sm-secret-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[300], pub[SM_CURVE_Z85], sec[SM_CURVE_Z85], pub2[SM_CURVE_Z85];
    sm_err err;
    fresh_pair(dir, "k", path, sizeof path, pub);
    assert_int_equal(sm_curve_read_secret(path, sec, &err), SM_OK); /* 0600 from keygen */
    assert_int_equal(sm_curve_public_of(sec, pub2, &err), SM_OK);
    assert_string_equal(pub, pub2);
    static const mode_t open_modes[] = {0644, 0640, 0604, 0620, 0660, 0666, 0700 | 0010};
    for (size_t i = 0; i < sizeof open_modes / sizeof open_modes[0]; i++) {
        assert_int_equal(chmod(path, open_modes[i]), 0);
        memset(sec, 0, sizeof sec);
        assert_int_equal(sm_curve_read_secret(path, sec, &err), SM_ECONFIG);
        assert_non_null(strstr(err.msg, path));
        assert_non_null(strstr(err.msg, "chmod 600"));
        assert_string_equal(sec, "");
    }
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(sm_curve_read_secret(path, sec, &err), SM_OK);
    /* public keys stay readable by anyone through sm_curve_read_key */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(sm_curve_read_key(path, sec, &err), SM_OK);
    unlink(path);
    assert_int_equal(sm_curve_read_secret(path, sec, &err), SM_EIO);
    assert_int_equal(sm_curve_read_secret(dir, sec, &err), SM_ECONFIG); /* a directory */
    snprintf(path, sizeof path, "%s/k.public", dir);
    unlink(path);
    rmdir(dir);
}

static void test_bindable_endpoint(void **state)
{
    (void)state;
    char buf[SM_ENDPOINT_MAX];
    assert_string_equal(sm_endpoint_bindable("tcp://localhost:5555", buf, sizeof buf),
                        "tcp://127.0.0.1:5555");
    assert_string_equal(sm_endpoint_bindable("tcp://LocalHost:1", buf, sizeof buf),
                        "tcp://127.0.0.1:1");
    static const char *const same[] = {"tcp://127.0.0.1:5555", "tcp://localhost.example:5",
                                       "tcp://*:5555",         "ipc:///tmp/localhost:1",
                                       "tcp://localhost",      ""};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++)
        assert_ptr_equal(sm_endpoint_bindable(same[i], buf, sizeof buf), same[i]);
    char tiny[8];
    const char *ep = "tcp://localhost:5555";
    assert_ptr_equal(sm_endpoint_bindable(ep, tiny, sizeof tiny), ep);
    assert_string_equal(sm_bind_host("localhost"), "127.0.0.1");
    assert_string_equal(sm_bind_host("::1"), "::1");
    assert_string_equal(sm_bind_host("10.0.0.1"), "10.0.0.1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_curve_keys),
        cmocka_unit_test(test_error_body_always_coded),
        cmocka_unit_test(test_secret_key_file_mode),
        cmocka_unit_test(test_bindable_endpoint),
        cmocka_unit_test(test_key_arg_and_roles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
