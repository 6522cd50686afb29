/* test_lti_jwt: the RS256 JWTs and RSA JWKs of common/sm_lti_jwt.c without a database: base64url
 * round trips and refusals, a generated key signs a token that its public JWK verifies, and a
 * changed payload, another key, another alg, a short or malformed key, or a malformed token is
 * refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sm_lti.h"
#include "sm_lti_jwt.h"

static void b64url(void **state)
{
    (void)state;
    const unsigned char in[] = {0xfb, 0xff, 0x00, 0x41, 0x42};
    for (size_t n = 0; n <= sizeof in; n++) {
        char *enc = NULL;
        unsigned char *dec = NULL;
        size_t len = 0;
        assert_int_equal(sm_lti_b64url_encode(in, n, &enc, NULL), SM_OK);
        assert_null(strpbrk(enc, "+/="));
        assert_int_equal(sm_lti_b64url_decode(enc, strlen(enc), &dec, &len, NULL), SM_OK);
        assert_int_equal(len, n);
        assert_memory_equal(dec, in, n);
        free(enc);
        free(dec);
    }
    unsigned char *dec = NULL;
    size_t len = 0;
    assert_int_equal(sm_lti_b64url_decode("a+b/", 4, &dec, &len, NULL), SM_EFORMAT);
    assert_int_equal(sm_lti_b64url_decode("abcde", 5, &dec, &len, NULL), SM_EFORMAT);
    assert_int_equal(sm_lti_b64url_decode("ab==", 4, &dec, &len, NULL), SM_EFORMAT);
}

/* A token signed with a fresh key: header kid, verifies against the public JWK. */
static void sign_verify(void **state)
{
    (void)state;
    sm_lti_keypair kp, other;
    sm_err err = {0};
    assert_int_equal(sm_lti_keygen(&kp, &err), SM_OK);
    assert_int_equal(sm_lti_keygen(&other, &err), SM_OK);
    assert_non_null(strstr(kp.private_pem, "PRIVATE KEY"));
    assert_null(json_object_get(kp.public_jwk, "d")); /* no private part in the JWK */
    assert_string_equal(json_string_value(json_object_get(kp.public_jwk, "kid")), kp.kid);
    json_t *claims = json_pack("{s:s,s:i}", "iss", "tool", "iat", 1700000000);
    char *jwt = NULL;
    assert_int_equal(sm_lti_jwt_sign(kp.private_pem, kp.kid, claims, &jwt, &err), SM_OK);
    sm_lti_jwt t;
    assert_int_equal(sm_lti_jwt_parse(jwt, &t, &err), SM_OK);
    assert_string_equal(json_string_value(json_object_get(t.header, "kid")), kp.kid);
    assert_string_equal(json_string_value(json_object_get(t.payload, "iss")), "tool");
    assert_int_equal(sm_lti_jwt_verify(&t, kp.public_jwk, &err), SM_OK);
    assert_int_equal(sm_lti_jwt_verify(&t, other.public_jwk, &err), SM_EPROTO);
    sm_lti_jwt_free(&t);

    /* the payload changed after signing: eyJ...(header).<other payload>.<signature> */
    char *dot = strchr(jwt, '.'), *dot2 = strchr(dot + 1, '.');
    char *forged = NULL;
    json_t *evil = json_pack("{s:s,s:i}", "iss", "evil", "iat", 1700000000);
    char *ej = json_dumps(evil, JSON_COMPACT), *eb = NULL;
    assert_int_equal(sm_lti_b64url_encode((unsigned char *)ej, strlen(ej), &eb, NULL), SM_OK);
    size_t n = strlen(jwt) + strlen(eb) + 2;
    forged = malloc(n);
    snprintf(forged, n, "%.*s.%s%s", (int)(dot - jwt), jwt, eb, dot2);
    assert_int_equal(sm_lti_jwt_parse(forged, &t, &err), SM_OK);
    assert_int_equal(sm_lti_jwt_verify(&t, kp.public_jwk, &err), SM_EPROTO);
    /* another alg in the header is refused before any key is used */
    json_object_set_new(t.header, "alg", json_string("none"));
    assert_int_equal(sm_lti_jwt_verify(&t, kp.public_jwk, &err), SM_EUNSUPPORTED);
    sm_lti_jwt_free(&t);
    free(forged);
    free(ej);
    free(eb);
    json_decref(evil);
    free(jwt);
    json_decref(claims);
    sm_lti_keypair_clear(&kp);
    sm_lti_keypair_clear(&other);
}

static void bad_keys_and_tokens(void **state)
{
    (void)state;
    sm_lti_jwt t;
    sm_err err = {0};
    assert_int_equal(sm_lti_jwt_parse("abc", &t, &err), SM_EFORMAT);
    assert_int_equal(sm_lti_jwt_parse("a.b.c.d", &t, &err), SM_EFORMAT);
    assert_int_equal(sm_lti_jwt_parse("e30.W10.AA", &t, &err), SM_EFORMAT); /* payload [] */
    assert_int_equal(sm_lti_jwt_parse("eyJhbGciOiJSUzI1NiJ9.e30.AAAA", &t, &err), SM_OK);
    json_t *short_key = json_pack("{s:s,s:s,s:s}", "kty", "RSA", "n", "AQAB", "e", "AQAB");
    json_t *ec_key = json_pack("{s:s,s:s,s:s}", "kty", "EC", "x", "AQAB", "y", "AQAB");
    assert_int_equal(sm_lti_jwt_verify(&t, short_key, &err), SM_EFORMAT);
    assert_int_equal(sm_lti_jwt_verify(&t, ec_key, &err), SM_EFORMAT);
    sm_lti_jwt_free(&t);
    json_decref(short_key);
    json_decref(ec_key);
    char *jwt = NULL;
    json_t *c = json_object();
    assert_int_equal(sm_lti_jwt_sign("not a pem", "k", c, &jwt, &err), SM_EFORMAT);
    assert_null(jwt);
    json_decref(c);
}

static void base_url(void **state)
{
    (void)state;
    char out[256];
    sm_lti_base_url("https://grading.example.edu//", false, "127.0.0.1", 8080, out, sizeof out);
    assert_string_equal(out, "https://grading.example.edu");
    sm_lti_base_url("", true, "::1", 8443, out, sizeof out);
    assert_string_equal(out, "https://[::1]:8443");
    sm_lti_base_url(NULL, false, "127.0.0.1", 8080, out, sizeof out);
    assert_string_equal(out, "http://127.0.0.1:8080");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(b64url),
        cmocka_unit_test(sign_verify),
        cmocka_unit_test(bad_keys_and_tokens),
        cmocka_unit_test(base_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
