/* sm_client: a client of stepmarkd's client endpoint (SMC1), used by the stepmark CLI, the
 * load generator and the tests. Synchronous calls retry on a timeout (the lazy-pirate way:
 * a fresh socket and the same request again, which is safe because SUBMIT carries an
 * idempotency key and every other request is a read or idempotent) and on errors that the
 * broker marks retryable (its database is briefly unavailable). Asynchronous send/receive is
 * available for pipelining many requests on one socket. */
#ifndef SM_CLIENT_H
#define SM_CLIENT_H

#include <stdbool.h>

#include <jansson.h>

#include "sm_error.h"

typedef struct sm_client sm_client;

typedef struct sm_client_opts {
    const char *endpoint;   /* e.g. tcp://127.0.0.1:5555 */
    const char *server_key; /* broker public key (z85 or key file); NULL = no CURVE */
    const char *secret_key; /* this client's secret key (z85 or key file) */
    int timeout_ms;         /* per attempt; 0 = 5000 */
    int retries;            /* extra attempts after a timeout or retryable error; <0 = 0 */
} sm_client_opts;

/* zctx may be NULL (the client then owns a context). */
sm_code sm_client_new(void *zctx, const sm_client_opts *opts, sm_client **out, sm_err *err);
void sm_client_free(sm_client **c);

/* Sends command with body (NULL = {}) and waits for its reply. On OK, *reply (if non-NULL)
 * receives the reply body (json_decref it). On an ERROR reply returns the error's code with
 * its message in err (and *reply, if non-NULL, receives the error body). */
sm_code sm_client_call(sm_client *c, const char *command, const json_t *body, json_t **reply,
                       sm_err *err);

/* Pipelining: send a request with correlation id id; receive any reply. */
sm_code sm_client_send(sm_client *c, const char *command, const char *id, const json_t *body,
                       sm_err *err);
typedef struct sm_client_reply {
    bool ok;      /* OK or ERROR */
    char id[65];  /* correlation id */
    json_t *body; /* owned by the caller */
} sm_client_reply;
/* Waits up to timeout_ms for a reply: SM_OK, SM_ESTATE on timeout, other codes on errors. */
sm_code sm_client_recv(sm_client *c, int timeout_ms, sm_client_reply *out, sm_err *err);

#endif
