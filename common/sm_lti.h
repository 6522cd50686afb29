/* sm_lti: what the CLI and stepmarkd share of LTI 1.3 (docs/lti.md): the platforms (issuer,
 * client id, deployments, OIDC auth, token and JWKS URLs) and the tool's own RSA keys in
 * PostgreSQL (schema/009_lti.sql): the current signing key, rotation, and the public JWKS with
 * rotated-out keys kept for a grace period. The private key never leaves the database except
 * into the memory of the program that signs with it. */
#ifndef SM_LTI_H
#define SM_LTI_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "sm_error.h"
#include "sm_lti_jwt.h"

typedef struct sm_lti_platform_spec {
    const char *issuer;
    const char *client_id;
    const char *auth_url;  /* the platform's OIDC authorization endpoint */
    const char *token_url; /* its OAuth2 token endpoint (phase 2: grade passback) */
    const char *jwks_url;  /* its public keys */
    const char *const *deployments;
    int n_deployments;
} sm_lti_platform_spec;

/* Registers a platform with its deployment ids; SM_ESTATE when (issuer, client id) exists. */
sm_code sm_lti_platform_add(PGconn *db, const sm_lti_platform_spec *spec, int64_t *id, sm_err *err);
/* Every platform as [{id, issuer, client_id, auth_url, token_url, jwks_url, deployments}]. */
sm_code sm_lti_platform_list(PGconn *db, json_t **out, sm_err *err);
/* Removes a platform (with its deployments, users, contexts and links); SM_ENOTFOUND. */
sm_code sm_lti_platform_remove(PGconn *db, int64_t id, sm_err *err);

/* The tool's current signing key (created on first use). private_pem: malloc'd; the caller
 * clears it with sm_lti_signer_clear. */
typedef struct sm_lti_signer {
    char kid[SM_LTI_KID_MAX];
    char *private_pem;
} sm_lti_signer;
sm_code sm_lti_signer_get(PGconn *db, sm_lti_signer *out, sm_err *err);
void sm_lti_signer_clear(sm_lti_signer *s);
/* Makes a new signing key; the old one is retired and stays in the JWKS for the grace
 * period. kid receives the new key's id. */
sm_code sm_lti_key_rotate(PGconn *db, char kid[SM_LTI_KID_MAX], sm_err *err);
/* The public JWKS {"keys": [...]}: the current key and those retired less than grace_days
 * ago (creates the first key when there is none). */
sm_code sm_lti_jwks(PGconn *db, int64_t grace_days, json_t **out, sm_err *err);

/* The tool's base URL without a trailing slash, from http.public_url or the listen address. */
void sm_lti_base_url(const char *public_url, bool tls, const char *address, int64_t port, char *out,
                     size_t n);

#endif
