/* sm_sha256: SHA-256 over OpenSSL's EVP digests, and random hex tokens. */
#include "sm_sha256.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/evp.h>

void sm_sha256_init(sm_sha256_ctx *ctx)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    ctx->md = md;
    ctx->ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
}

void sm_sha256_update(sm_sha256_ctx *ctx, const void *data, size_t len)
{
    if (ctx->ok && len > 0)
        ctx->ok = EVP_DigestUpdate(ctx->md, data, len) == 1;
}

bool sm_sha256_final(sm_sha256_ctx *ctx, uint8_t out[SM_SHA256_LEN])
{
    unsigned int n = 0;
    bool ok = ctx->ok && EVP_DigestFinal_ex(ctx->md, out, &n) == 1 && n == SM_SHA256_LEN;
    if (!ok)
        memset(out, 0, SM_SHA256_LEN);
    sm_sha256_discard(ctx);
    return ok;
}

void sm_sha256_discard(sm_sha256_ctx *ctx)
{
    EVP_MD_CTX_free(ctx->md);
    ctx->md = NULL;
    ctx->ok = false;
}

static void to_hex(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

bool sm_sha256_hex(const void *data, size_t len, char out[SM_SHA256_HEX])
{
    uint8_t d[SM_SHA256_LEN];
    unsigned int n = 0;
    if (EVP_Digest(data, len, d, &n, EVP_sha256(), NULL) != 1 || n != SM_SHA256_LEN) {
        out[0] = '\0';
        return false;
    }
    to_hex(d, sizeof d, out);
    return true;
}

sm_code sm_random_hex(size_t nbytes, char *out, sm_err *err)
{
    uint8_t b[64];
    if (nbytes == 0 || nbytes > sizeof b)
        return sm_err_set(err, SM_EINVAL, "random token size %zu out of range", nbytes);
    size_t got = 0;
    while (got < nbytes) {
        ssize_t n = getrandom(b + got, nbytes - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return sm_err_set(err, SM_EIO, "getrandom: %s", strerror(errno));
        }
        got += (size_t)n;
    }
    to_hex(b, nbytes, out);
    memset(b, 0, sizeof b);
    return SM_OK;
}
