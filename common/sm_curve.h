/* sm_curve: CURVE key handling for the stepmark sockets: generating and reading z85 key files,
 * configuring server and client sockets, the allow-list of peer public keys checked by the
 * broker's ZAP handler, and deciding whether an endpoint is on loopback (where CURVE is not
 * required). A key file holds one 40-character z85 key on its first non-comment line. */
#ifndef SM_CURVE_H
#define SM_CURVE_H

#include <stdbool.h>
#include <stdint.h>

#include "sm_error.h"

#define SM_CURVE_Z85 41 /* 40 characters and a NUL */

/* Makes a new key pair. */
sm_code sm_curve_keygen(char pub[SM_CURVE_Z85], char sec[SM_CURVE_Z85], sm_err *err);

/* Writes base.public (mode 0644) and base.secret (mode 0600, refused if it already exists).*/
sm_code sm_curve_write_pair(const char *base, char pub[SM_CURVE_Z85], sm_err *err);

/* Reads the z85 key in path. */
sm_code sm_curve_read_key(const char *path, char out[SM_CURVE_Z85], sm_err *err);

/* Reads the z85 secret key in path, refusing (SM_ECONFIG, with the fix in the message) a file
 * that group or others may access, one owned by another user (root excepted), or one that is
 * not a regular file. */
sm_code sm_curve_read_secret(const char *path, char out[SM_CURVE_Z85], sm_err *err);

/* A key given either as the path of a key file or literally (40 z85 characters, when no
 * file has that name). */
sm_code sm_curve_key_arg(const char *value, char out[SM_CURVE_Z85], sm_err *err);

/* The public key of a secret key. */
sm_code sm_curve_public_of(const char *secret, char pub[SM_CURVE_Z85], sm_err *err);

/* Makes sock a CURVE server with this secret key (call before bind). */
sm_code sm_curve_server(void *sock, const char *secret, sm_err *err);

/* Makes sock a CURVE client of server_public with this secret key (before connect). */
sm_code sm_curve_client(void *sock, const char *server_public, const char *secret, sm_err *err);

/* True for ipc://, inproc:// and tcp:// endpoints on 127.0.0.0/8, ::1 or localhost. */
bool sm_endpoint_is_local(const char *endpoint);

/* The allow-list: lines "Z85KEY [name]", '#' comments and blank lines ignored. */
typedef struct sm_keyset sm_keyset;
sm_code sm_keyset_load(const char *path, sm_keyset **out, sm_err *err);
/* Whether the 32-byte key is allowed; *name receives its name (or the z85 form). */
bool sm_keyset_find(const sm_keyset *ks, const uint8_t key[32], const char **name);
int sm_keyset_count(const sm_keyset *ks);
/* The name of a key present in both sets, or NULL when they share none. */
const char *sm_keyset_common(const sm_keyset *a, const sm_keyset *b);
void sm_keyset_free(sm_keyset **ks);

#endif
