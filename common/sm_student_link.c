/* sm_student_link: signed, expiring per-student feedback links (see sm_student_link.h): the
 * token format, HMAC-SHA256 signing and checking with OpenSSL, and the server key in
 * PostgreSQL (one SQL statement per function). */
#include "sm_student_link.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sm_db.h"

#define TOKEN_PREFIX "sl1:"
#define MAC_BYTES 32
#define PAYLOAD_MAX (sizeof TOKEN_PREFIX + 2 * 21 + SM_STUDENT_REF_MAX + 1)
#define INVALID_LINK "the link is invalid or has expired"

/* ---- base64url without padding (OpenSSL's EVP_EncodeBlock / EVP_DecodeBlock) ---- */

/* Encodes n bytes into out (cap bytes); false when it does not fit. */
static bool b64url_encode(const unsigned char *in, size_t n, char *out, size_t cap)
{
    if (4 * ((n + 2) / 3) + 1 > cap)
        return false;
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (int i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return true;
}

/* Decodes the n characters at in into out (cap bytes); *len receives the byte count. False for
 * anything but canonical unpadded base64url. */
static bool b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap, size_t *len)
{
    if (n == 0 || n % 4 == 1 || n * 3 / 4 > cap)
        return false;
    char buf[4 * (PAYLOAD_MAX / 3 + 2)];
    if (n + 3 >= sizeof buf)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return false;
        buf[i] = c;
    }
    size_t pad = (4 - n % 4) % 4;
    memset(buf + n, '=', pad);
    unsigned char tmp[sizeof buf];
    int got = EVP_DecodeBlock(tmp, (const unsigned char *)buf, (int)(n + pad));
    if (got < 0 || (size_t)got < pad || (size_t)got - pad > cap)
        return false;
    *len = (size_t)got - pad;
    memcpy(out, tmp, *len);
    /* canonical: encoding it again gives the same text */
    char again[sizeof buf];
    return b64url_encode(out, *len, again, sizeof again) && strlen(again) == n &&
           memcmp(again, in, n) == 0;
}

/* ---- tokens ---- */

static bool ref_valid(const char *ref)
{
    size_t n = ref ? strlen(ref) : 0;
    if (n == 0 || n > SM_STUDENT_REF_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)ref[i] < 0x20 || ref[i] == 0x7f)
            return false;
    return true;
}

static bool mac(const unsigned char key[SM_STUDENT_KEY_BYTES], const void *data, size_t n,
                unsigned char out[MAC_BYTES])
{
    unsigned int len = 0;
    return HMAC(EVP_sha256(), key, SM_STUDENT_KEY_BYTES, data, n, out, &len) && len == MAC_BYTES;
}

sm_code sm_student_token_sign(const unsigned char key[SM_STUDENT_KEY_BYTES],
                              const sm_student_claims *claims, char token[SM_STUDENT_TOKEN_MAX],
                              sm_err *err)
{
    if (!ref_valid(claims->student_ref))
        return sm_err_set(err, SM_EINVAL,
                          "the student reference must be 1 to %d bytes without control "
                          "characters",
                          SM_STUDENT_REF_MAX);
    if (claims->course_id <= 0 || claims->expires <= 0)
        return sm_err_set(err, SM_EINVAL, "a link needs a course and an expiry");
    char payload[PAYLOAD_MAX];
    int n = snprintf(payload, sizeof payload, TOKEN_PREFIX "%" PRId64 ":%" PRId64 ":%s",
                     claims->course_id, claims->expires, claims->student_ref);
    unsigned char m[MAC_BYTES];
    if (n < 0 || (size_t)n >= sizeof payload || !mac(key, payload, (size_t)n, m))
        return sm_err_set(err, SM_EINTERNAL, "cannot sign the link");
    if (!b64url_encode((const unsigned char *)payload, (size_t)n, token, SM_STUDENT_TOKEN_MAX))
        return sm_err_set(err, SM_EINTERNAL, "the link is too long");
    size_t k = strlen(token);
    token[k++] = '.';
    if (!b64url_encode(m, sizeof m, token + k, SM_STUDENT_TOKEN_MAX - k))
        return sm_err_set(err, SM_EINTERNAL, "the link is too long");
    OPENSSL_cleanse(m, sizeof m);
    return SM_OK;
}

/* Parses "sl1:COURSE:EXPIRES:REF" (n bytes, not NUL-terminated) into c. */
static bool parse_payload(const char *p, size_t n, sm_student_claims *c)
{
    char buf[PAYLOAD_MAX];
    if (n >= sizeof buf || memchr(p, '\0', n))
        return false;
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (strncmp(buf, TOKEN_PREFIX, strlen(TOKEN_PREFIX)) != 0)
        return false;
    char *s = buf + strlen(TOKEN_PREFIX), *end;
    c->course_id = strtoll(s, &end, 10);
    if (end == s || *end != ':' || c->course_id <= 0)
        return false;
    s = end + 1;
    c->expires = strtoll(s, &end, 10);
    if (end == s || *end != ':' || c->expires <= 0)
        return false;
    s = end + 1;
    if (!ref_valid(s))
        return false;
    snprintf(c->student_ref, sizeof c->student_ref, "%s", s);
    return true;
}

sm_code sm_student_token_verify(const unsigned char key[SM_STUDENT_KEY_BYTES], const char *token,
                                int64_t now, sm_student_claims *claims, sm_err *err)
{
    memset(claims, 0, sizeof *claims);
    const char *dot = token ? strchr(token, '.') : NULL;
    if (!dot || strlen(token) >= SM_STUDENT_TOKEN_MAX)
        return sm_err_set(err, SM_EINVAL, INVALID_LINK);
    unsigned char payload[PAYLOAD_MAX], got[MAC_BYTES], want[MAC_BYTES];
    size_t plen = 0, mlen = 0;
    bool ok = b64url_decode(token, (size_t)(dot - token), payload, sizeof payload, &plen) &&
              b64url_decode(dot + 1, strlen(dot + 1), got, sizeof got, &mlen) &&
              mlen == MAC_BYTES && mac(key, payload, plen, want) &&
              CRYPTO_memcmp(got, want, MAC_BYTES) == 0;
    sm_student_claims c;
    ok = ok && parse_payload((const char *)payload, plen, &c) && now < c.expires;
    OPENSSL_cleanse(want, sizeof want);
    if (!ok)
        return sm_err_set(err, SM_EINVAL, INVALID_LINK);
    *claims = c;
    return SM_OK;
}

/* ---- the server key (one statement per function) ---- */

/* Reads the key; *found is false when there is none yet. */
static sm_code key_read(PGconn *db, unsigned char key[SM_STUDENT_KEY_BYTES], bool *found,
                        sm_err *err)
{
    PGresult *r;
    sm_code rc = sm_db_query(db, "SELECT encode(secret, 'hex') FROM student_link_key WHERE id = 1",
                             0, NULL, &r, err);
    if (rc != SM_OK)
        return rc;
    *found = PQntuples(r) == 1;
    if (*found) {
        const char *hex = PQgetvalue(r, 0, 0);
        bool ok = strlen(hex) == 2 * SM_STUDENT_KEY_BYTES;
        for (int i = 0; ok && i < SM_STUDENT_KEY_BYTES; i++) {
            unsigned v;
            ok = sscanf(hex + 2 * i, "%2x", &v) == 1;
            key[i] = (unsigned char)v;
        }
        PQclear(r);
        if (!ok)
            return sm_err_set(err, SM_EDB, "student_link_key holds a malformed key");
        return SM_OK;
    }
    PQclear(r);
    return SM_OK;
}

/* A new random key as hex (RAND_bytes). */
static sm_code key_new_hex(char hex[2 * SM_STUDENT_KEY_BYTES + 1], sm_err *err)
{
    unsigned char k[SM_STUDENT_KEY_BYTES];
    if (RAND_bytes(k, sizeof k) != 1)
        return sm_err_set(err, SM_EINTERNAL, "OpenSSL could not make a random key");
    for (int i = 0; i < SM_STUDENT_KEY_BYTES; i++)
        snprintf(hex + 2 * i, 3, "%02x", k[i]);
    OPENSSL_cleanse(k, sizeof k);
    return SM_OK;
}

/* Stores hex as the key unless one exists (replace: overwrite it). */
static sm_code key_store(PGconn *db, const char *hex, bool replace, sm_err *err)
{
    const char *p[] = {hex};
    return sm_db_query(db,
                       replace ? "INSERT INTO student_link_key (id, secret) VALUES "
                                 "(1, decode($1, 'hex')) ON CONFLICT (id) DO UPDATE SET "
                                 "secret = EXCLUDED.secret, created_at = now()"
                               : "INSERT INTO student_link_key (id, secret) VALUES "
                                 "(1, decode($1, 'hex')) ON CONFLICT (id) DO NOTHING",
                       1, p, NULL, err);
}

sm_code sm_student_key_get(PGconn *db, unsigned char key[SM_STUDENT_KEY_BYTES], sm_err *err)
{
    bool found = false;
    sm_code rc = key_read(db, key, &found, err);
    if (rc != SM_OK || found)
        return rc;
    char hex[2 * SM_STUDENT_KEY_BYTES + 1];
    rc = key_new_hex(hex, err);
    if (rc == SM_OK)
        rc = key_store(db, hex, false, err);
    OPENSSL_cleanse(hex, sizeof hex);
    /* read again: a concurrent first use may have stored its key first */
    if (rc == SM_OK)
        rc = key_read(db, key, &found, err);
    if (rc == SM_OK && !found)
        rc = sm_err_set(err, SM_EDB, "the student link key was not stored");
    return rc;
}

sm_code sm_student_key_rotate(PGconn *db, sm_err *err)
{
    char hex[2 * SM_STUDENT_KEY_BYTES + 1];
    sm_code rc = key_new_hex(hex, err);
    if (rc == SM_OK)
        rc = key_store(db, hex, true, err);
    OPENSSL_cleanse(hex, sizeof hex);
    return rc;
}

/* The id of the course with this code. */
static sm_code course_find(PGconn *db, const char *code, int64_t *id, sm_err *err)
{
    const char *p[] = {code};
    PGresult *r;
    sm_code rc = sm_db_query(db, "SELECT id FROM course WHERE code = $1", 1, p, &r, err);
    if (rc != SM_OK)
        return rc;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return sm_err_set(err, SM_ENOTFOUND, "no course with code '%s'", code);
    }
    *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return SM_OK;
}

static bool base_url_valid(const char *u)
{
    size_t n = u ? strlen(u) : 0;
    bool scheme =
        (n > 7 && strncmp(u, "http://", 7) == 0) || (n > 8 && strncmp(u, "https://", 8) == 0);
    if (!scheme || n > 600 || strpbrk(u, "?#"))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)u[i] <= 0x20 || u[i] == 0x7f)
            return false;
    return true;
}

sm_code sm_student_link_make(PGconn *db, const sm_student_link_req *req, sm_student_link *out,
                             sm_err *err)
{
    memset(out, 0, sizeof *out);
    int days = req->days ? req->days : SM_STUDENT_LINK_DEFAULT_DAYS;
    if (days < 1 || days > SM_STUDENT_LINK_MAX_DAYS)
        return sm_err_set(err, SM_EINVAL, "a link lasts 1 to %d days", SM_STUDENT_LINK_MAX_DAYS);
    if (!base_url_valid(req->base_url))
        return sm_err_set(err, SM_EINVAL,
                          "the public URL must be an http:// or https:// URL without query "
                          "(http.public_url), got '%s'",
                          req->base_url ? req->base_url : "");
    if (!ref_valid(req->student_ref))
        return sm_err_set(err, SM_EINVAL,
                          "the student reference must be 1 to %d bytes without control "
                          "characters",
                          SM_STUDENT_REF_MAX);
    sm_student_claims c = {.expires = (int64_t)time(NULL) + (int64_t)days * 86400};
    snprintf(c.student_ref, sizeof c.student_ref, "%s", req->student_ref);
    unsigned char key[SM_STUDENT_KEY_BYTES];
    sm_code rc = course_find(db, req->course_code ? req->course_code : "", &c.course_id, err);
    if (rc == SM_OK)
        rc = sm_student_key_get(db, key, err);
    if (rc == SM_OK)
        rc = sm_student_token_sign(key, &c, out->token, err);
    OPENSSL_cleanse(key, sizeof key);
    if (rc != SM_OK)
        return rc;
    size_t b = strlen(req->base_url);
    while (b > 0 && req->base_url[b - 1] == '/')
        b--;
    snprintf(out->url, sizeof out->url, "%.*s/student?t=%s", (int)b, req->base_url, out->token);
    out->expires = c.expires;
    time_t t = (time_t)c.expires;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out->expires_at, sizeof out->expires_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return SM_OK;
}

sm_code sm_student_link_check(PGconn *db, const char *token, sm_student_claims *claims, sm_err *err)
{
    unsigned char key[SM_STUDENT_KEY_BYTES];
    sm_code rc = sm_student_key_get(db, key, err);
    if (rc == SM_OK)
        rc = sm_student_token_verify(key, token, (int64_t)time(NULL), claims, err);
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

void sm_student_base_url(const char *public_url, const char *address, int64_t port, bool tls,
                         char *out, size_t n)
{
    if (public_url && public_url[0]) {
        size_t b = strlen(public_url);
        while (b > 0 && public_url[b - 1] == '/')
            b--;
        snprintf(out, n, "%.*s", (int)b, public_url);
        return;
    }
    const char *host = address && address[0] ? address : "127.0.0.1";
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)
        host = "localhost";
    bool v6 = strchr(host, ':') != NULL;
    snprintf(out, n, "%s://%s%s%s:%" PRId64, tls ? "https" : "http", v6 ? "[" : "", host,
             v6 ? "]" : "", port);
}
