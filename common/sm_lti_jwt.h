/* sm_lti_jwt: the JSON Web Tokens and keys of LTI 1.3 (RFC 7515/7517/7519, RS256 only), on
 * OpenSSL's EVP interface: the tool's RSA key pair (generated, PEM, public JWK), signing the
 * tool's own JWTs (deep linking responses, and in phase 2 client assertions), and verifying a
 * platform's id_token against a JWK (n, e). No cryptography is written here; base64url is only
 * an encoding. */
#ifndef SM_LTI_JWT_H
#define SM_LTI_JWT_H

#include <jansson.h>
#include <stddef.h>

#include "sm_error.h"

#define SM_LTI_KEY_BITS 2048
#define SM_LTI_KID_MAX 64

/* A new RSA key pair: the private key in PEM (malloc'd; the caller clears and frees it), its
 * public JWK {kty, alg, use, kid, n, e} (new reference) and kid, the RFC 7638 thumbprint. */
typedef struct sm_lti_keypair {
    char *private_pem;
    json_t *public_jwk;
    char kid[SM_LTI_KID_MAX];
} sm_lti_keypair;
sm_code sm_lti_keygen(sm_lti_keypair *out, sm_err *err);
void sm_lti_keypair_clear(sm_lti_keypair *k);

/* Signs claims (not stolen) as a compact RS256 JWT with header {alg, typ, kid}. *jwt is
 * malloc'd. */
sm_code sm_lti_jwt_sign(const char *private_pem, const char *kid, json_t *claims, char **jwt,
                        sm_err *err);

/* A JWT split and decoded, not yet verified. */
typedef struct sm_lti_jwt {
    json_t *header;
    json_t *payload;
    char *signing_input; /* "header.payload" as received */
    unsigned char *sig;
    size_t sig_len;
} sm_lti_jwt;
/* Parses a compact JWS; SM_EFORMAT when it is not one. Free with sm_lti_jwt_free. */
sm_code sm_lti_jwt_parse(const char *token, sm_lti_jwt *out, sm_err *err);
void sm_lti_jwt_free(sm_lti_jwt *t);
/* Verifies t's RS256 signature with an RSA JWK {kty: RSA, n, e}; SM_EPROTO when it does not
 * match, SM_EUNSUPPORTED for another alg, SM_EFORMAT for an unusable key. */
sm_code sm_lti_jwt_verify(const sm_lti_jwt *t, const json_t *jwk, sm_err *err);

/* base64url without padding; *out malloc'd and NUL-terminated. */
sm_code sm_lti_b64url_encode(const unsigned char *in, size_t n, char **out, sm_err *err);
sm_code sm_lti_b64url_decode(const char *in, size_t n, unsigned char **out, size_t *len,
                             sm_err *err);

#endif
