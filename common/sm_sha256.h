/* sm_sha256: SHA-256 digests through OpenSSL's EVP interface (stored hashes of teacher tokens
 * and session ids, model and prompt identities), and random hex tokens from the kernel's
 * getrandom(). */
#ifndef SM_SHA256_H
#define SM_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"

#define SM_SHA256_LEN 32
#define SM_SHA256_HEX 65 /* 64 hex digits and a NUL */

/* A digest in progress. Every context that was initialised ends in sm_sha256_final or
 * sm_sha256_discard, which free what OpenSSL allocated. */
typedef struct sm_sha256_ctx {
    void *md; /* EVP_MD_CTX */
    bool ok;  /* false once an OpenSSL call failed (out of memory) */
} sm_sha256_ctx;

void sm_sha256_init(sm_sha256_ctx *ctx);
void sm_sha256_update(sm_sha256_ctx *ctx, const void *data, size_t len);
/* Writes the digest and frees the context. False (out zeroed) when OpenSSL failed at any
 * point of this digest. */
__attribute__((warn_unused_result)) bool sm_sha256_final(sm_sha256_ctx *ctx,
                                                         uint8_t out[SM_SHA256_LEN]);
/* Frees a context without a digest (an error path). */
void sm_sha256_discard(sm_sha256_ctx *ctx);

/* One-shot digest of data, as lowercase hex. False when OpenSSL failed (out of memory): out is
 * then the empty string, which matches no stored hash, so a lookup by it fails closed;
 * callers that store a hash check the result. */
bool sm_sha256_hex(const void *data, size_t len, char out[SM_SHA256_HEX]);

/* Fills out with 2*nbytes lowercase hex digits of kernel randomness and a NUL (out must hold
 * 2*nbytes+1 bytes; nbytes <= 64). */
sm_code sm_random_hex(size_t nbytes, char *out, sm_err *err);

#endif
