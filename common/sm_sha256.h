/* sm_sha256: SHA-256 (FIPS 180-4), used to store only hashes of teacher tokens and session
 * ids; plus random hex tokens from the kernel's getrandom(). Kept local so that stepmark
 * needs no crypto library and no PostgreSQL extension. */
#ifndef SM_SHA256_H
#define SM_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"

#define SM_SHA256_LEN 32
#define SM_SHA256_HEX 65 /* 64 hex digits and a NUL */

typedef struct sm_sha256_ctx {
    uint32_t state[8];
    uint64_t bytes;
    uint8_t block[64];
    size_t used;
} sm_sha256_ctx;

void sm_sha256_init(sm_sha256_ctx *ctx);
void sm_sha256_update(sm_sha256_ctx *ctx, const void *data, size_t len);
void sm_sha256_final(sm_sha256_ctx *ctx, uint8_t out[SM_SHA256_LEN]);

/* One-shot digest of data, as lowercase hex. */
void sm_sha256_hex(const void *data, size_t len, char out[SM_SHA256_HEX]);

/* Fills out with 2*nbytes lowercase hex digits of kernel randomness and a NUL (out must hold
 * 2*nbytes+1 bytes; nbytes <= 64). */
sm_code sm_random_hex(size_t nbytes, char *out, sm_err *err);

#endif
