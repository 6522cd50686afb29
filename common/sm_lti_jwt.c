/* sm_lti_jwt: RS256 JSON Web Tokens and RSA JWKs for LTI 1.3 on OpenSSL 3's EVP interface
 * (see sm_lti_jwt.h). */
#include "sm_lti_jwt.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>

sm_code sm_lti_b64url_encode(const unsigned char *in, size_t n, char **out, sm_err *err)
{
    char *b = malloc(4 * ((n + 2) / 3) + 1);
    if (!b)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    int len = EVP_EncodeBlock((unsigned char *)b, in, (int)n);
    while (len > 0 && b[len - 1] == '=')
        len--;
    b[len] = '\0';
    for (int i = 0; i < len; i++)
        b[i] = b[i] == '+' ? '-' : b[i] == '/' ? '_' : b[i];
    *out = b;
    return SM_OK;
}

sm_code sm_lti_b64url_decode(const char *in, size_t n, unsigned char **out, size_t *len,
                             sm_err *err)
{
    if (n % 4 == 1 || n > 1u << 20)
        return sm_err_set(err, SM_EFORMAT, "not base64url");
    size_t padded = (n + 3) / 4 * 4;
    char *t = malloc(padded + 1);
    unsigned char *b = malloc(padded / 4 * 3 + 1);
    if (!t || !b) {
        free(t);
        free(b);
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '+' || c == '/' || c == '=') { /* only the URL-safe alphabet, no padding */
            free(t);
            free(b);
            return sm_err_set(err, SM_EFORMAT, "not base64url");
        }
        t[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    for (size_t i = n; i < padded; i++)
        t[i] = '=';
    t[padded] = '\0';
    int got = padded ? EVP_DecodeBlock(b, (unsigned char *)t, (int)padded) : 0;
    free(t);
    if (got < 0) {
        free(b);
        return sm_err_set(err, SM_EFORMAT, "not base64url");
    }
    *len = (size_t)got - (padded - n); /* EVP_DecodeBlock counts the padding as zero bytes */
    b[*len] = '\0';
    *out = b;
    return SM_OK;
}

/* A big number parameter of pkey as base64url. */
static sm_code bn_param_b64(EVP_PKEY *pkey, const char *name, char **out, sm_err *err)
{
    BIGNUM *bn = NULL;
    if (!EVP_PKEY_get_bn_param(pkey, name, &bn))
        return sm_err_set(err, SM_EINTERNAL, "cannot read the key's %s", name);
    int n = BN_num_bytes(bn);
    unsigned char *buf = malloc((size_t)n + 1);
    sm_code rc = SM_ENOMEM;
    if (buf) {
        BN_bn2bin(bn, buf);
        rc = sm_lti_b64url_encode(buf, (size_t)n, out, err);
    } else {
        sm_err_set(err, rc, "out of memory");
    }
    free(buf);
    BN_free(bn);
    return rc;
}

/* The RFC 7638 thumbprint of an RSA key: base64url(SHA-256({"e":..,"kty":"RSA","n":..})). */
static sm_code thumbprint(const char *n, const char *e, char kid[SM_LTI_KID_MAX], sm_err *err)
{
    size_t len = strlen(n) + strlen(e) + 32;
    char *s = malloc(len);
    if (!s)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    snprintf(s, len, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", e, n);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok = EVP_Digest(s, strlen(s), md, &mdlen, EVP_sha256(), NULL);
    free(s);
    char *b = NULL;
    if (!ok)
        return sm_err_set(err, SM_EINTERNAL, "SHA-256 failed");
    sm_code rc = sm_lti_b64url_encode(md, mdlen, &b, err);
    if (rc == SM_OK)
        snprintf(kid, SM_LTI_KID_MAX, "%s", b);
    free(b);
    return rc;
}

static sm_code key_to_pem(EVP_PKEY *pkey, char **out, sm_err *err)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio || !PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL)) {
        BIO_free(bio);
        return sm_err_set(err, SM_EINTERNAL, "cannot write the private key");
    }
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    *out = malloc((size_t)len + 1);
    if (*out) {
        memcpy(*out, data, (size_t)len);
        (*out)[len] = '\0';
    }
    BIO_free_all(bio); /* a memory BIO clears nothing; the PEM lived only in this process */
    return *out ? SM_OK : sm_err_set(err, SM_ENOMEM, "out of memory");
}

sm_code sm_lti_keygen(sm_lti_keypair *out, sm_err *err)
{
    memset(out, 0, sizeof *out);
    EVP_PKEY *pkey = EVP_RSA_gen(SM_LTI_KEY_BITS);
    if (!pkey)
        return sm_err_set(err, SM_EINTERNAL, "cannot generate an RSA key");
    char *n = NULL, *e = NULL;
    sm_code rc = bn_param_b64(pkey, OSSL_PKEY_PARAM_RSA_N, &n, err);
    if (rc == SM_OK)
        rc = bn_param_b64(pkey, OSSL_PKEY_PARAM_RSA_E, &e, err);
    if (rc == SM_OK)
        rc = thumbprint(n, e, out->kid, err);
    if (rc == SM_OK)
        rc = key_to_pem(pkey, &out->private_pem, err);
    if (rc == SM_OK) {
        out->public_jwk = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "kty", "RSA", "alg", "RS256",
                                    "use", "sig", "kid", out->kid, "n", n, "e", e);
        if (!out->public_jwk)
            rc = sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    free(n);
    free(e);
    EVP_PKEY_free(pkey);
    if (rc != SM_OK)
        sm_lti_keypair_clear(out);
    return rc;
}

void sm_lti_keypair_clear(sm_lti_keypair *k)
{
    if (k->private_pem) {
        OPENSSL_cleanse(k->private_pem, strlen(k->private_pem));
        free(k->private_pem);
    }
    json_decref(k->public_jwk);
    memset(k, 0, sizeof *k);
}

static sm_code b64_json(const char *s, size_t n, char **out, sm_err *err)
{
    return sm_lti_b64url_encode((const unsigned char *)s, n, out, err);
}

/* EVP_DigestSign with SHA-256 over input. */
static sm_code rs256_sign(const char *private_pem, const char *input, unsigned char **sig,
                          size_t *sig_len, sm_err *err)
{
    BIO *bio = BIO_new_mem_buf(private_pem, -1);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!pkey)
        return sm_err_set(err, SM_EFORMAT, "cannot read the tool's private key");
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    sm_code rc = SM_OK;
    *sig = NULL;
    if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) != 1 ||
        EVP_DigestSign(md, NULL, sig_len, (const unsigned char *)input, strlen(input)) != 1 ||
        !(*sig = malloc(*sig_len)) ||
        EVP_DigestSign(md, *sig, sig_len, (const unsigned char *)input, strlen(input)) != 1) {
        free(*sig);
        *sig = NULL;
        rc = sm_err_set(err, SM_EINTERNAL, "RS256 signing failed");
    }
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pkey);
    return rc;
}

sm_code sm_lti_jwt_sign(const char *private_pem, const char *kid, json_t *claims, char **jwt,
                        sm_err *err)
{
    *jwt = NULL;
    json_t *header = json_pack("{s:s,s:s,s:s}", "alg", "RS256", "typ", "JWT", "kid", kid);
    char *h = header ? json_dumps(header, JSON_COMPACT) : NULL;
    char *p = json_dumps(claims, JSON_COMPACT);
    json_decref(header);
    char *hb = NULL, *pb = NULL, *sb = NULL, *input = NULL;
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    sm_code rc = h && p ? SM_OK : sm_err_set(err, SM_ENOMEM, "cannot encode the JWT");
    if (rc == SM_OK)
        rc = b64_json(h, strlen(h), &hb, err);
    if (rc == SM_OK)
        rc = b64_json(p, strlen(p), &pb, err);
    if (rc == SM_OK) {
        size_t n = strlen(hb) + strlen(pb) + 2;
        input = malloc(n);
        if (input)
            snprintf(input, n, "%s.%s", hb, pb);
        else
            rc = sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    if (rc == SM_OK)
        rc = rs256_sign(private_pem, input, &sig, &sig_len, err);
    if (rc == SM_OK)
        rc = sm_lti_b64url_encode(sig, sig_len, &sb, err);
    if (rc == SM_OK) {
        size_t n = strlen(input) + strlen(sb) + 2;
        *jwt = malloc(n);
        if (*jwt)
            snprintf(*jwt, n, "%s.%s", input, sb);
        else
            rc = sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    free(h);
    free(p);
    free(hb);
    free(pb);
    free(sb);
    free(input);
    free(sig);
    return rc;
}

static sm_code part_json(const char *s, size_t n, json_t **out, sm_err *err)
{
    unsigned char *raw = NULL;
    size_t len = 0;
    sm_code rc = sm_lti_b64url_decode(s, n, &raw, &len, err);
    if (rc != SM_OK)
        return rc;
    json_error_t je;
    *out = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, &je);
    free(raw);
    if (!*out || !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return sm_err_set(err, SM_EFORMAT, "a JWT part is not a JSON object");
    }
    return SM_OK;
}

sm_code sm_lti_jwt_parse(const char *token, sm_lti_jwt *out, sm_err *err)
{
    memset(out, 0, sizeof *out);
    const char *d1 = token ? strchr(token, '.') : NULL;
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d2 || strchr(d2 + 1, '.'))
        return sm_err_set(err, SM_EFORMAT, "not a compact JWT (three parts)");
    sm_code rc = part_json(token, (size_t)(d1 - token), &out->header, err);
    if (rc == SM_OK)
        rc = part_json(d1 + 1, (size_t)(d2 - d1 - 1), &out->payload, err);
    if (rc == SM_OK)
        rc = sm_lti_b64url_decode(d2 + 1, strlen(d2 + 1), &out->sig, &out->sig_len, err);
    if (rc == SM_OK) {
        out->signing_input = strndup(token, (size_t)(d2 - token));
        if (!out->signing_input)
            rc = sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    if (rc != SM_OK)
        sm_lti_jwt_free(out);
    return rc;
}

void sm_lti_jwt_free(sm_lti_jwt *t)
{
    json_decref(t->header);
    json_decref(t->payload);
    free(t->signing_input);
    free(t->sig);
    memset(t, 0, sizeof *t);
}

static BIGNUM *jwk_bn(const json_t *jwk, const char *name)
{
    const char *s = json_string_value(json_object_get(jwk, name));
    unsigned char *raw = NULL;
    size_t len = 0;
    if (!s || sm_lti_b64url_decode(s, strlen(s), &raw, &len, NULL) != SM_OK)
        return NULL;
    BIGNUM *bn = len ? BN_bin2bn(raw, (int)len, NULL) : NULL;
    free(raw);
    return bn;
}

/* The public RSA key of a JWK {kty: RSA, n, e}, or NULL. */
static EVP_PKEY *jwk_public_key(const json_t *jwk)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    if (!kty || strcmp(kty, "RSA") != 0)
        return NULL;
    BIGNUM *n = jwk_bn(jwk, "n"), *e = jwk_bn(jwk, "e");
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    if (n && e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) &&
        (params = OSSL_PARAM_BLD_to_param(bld)) &&
        (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    if (pkey && EVP_PKEY_get_bits(pkey) < SM_LTI_KEY_BITS) {
        EVP_PKEY_free(pkey); /* a short RSA key is not accepted */
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pkey;
}

sm_code sm_lti_jwt_verify(const sm_lti_jwt *t, const json_t *jwk, sm_err *err)
{
    const char *alg = json_string_value(json_object_get(t->header, "alg"));
    if (!alg || strcmp(alg, "RS256") != 0)
        return sm_err_set(err, SM_EUNSUPPORTED, "the JWT's alg is %s, not RS256",
                          alg ? alg : "missing");
    EVP_PKEY *pkey = jwk_public_key(jwk);
    if (!pkey)
        return sm_err_set(err, SM_EFORMAT, "the platform's key is not a usable RSA key");
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) == 1 &&
             EVP_DigestVerify(md, t->sig, t->sig_len, (const unsigned char *)t->signing_input,
                              strlen(t->signing_input)) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pkey);
    return ok ? SM_OK : sm_err_set(err, SM_EPROTO, "the JWT's signature does not match");
}
