/* sm_endpoint: turning a configured listen address into one that can be bound. ZeroMQ cannot
 * bind a tcp:// endpoint to a host name, and the HTTP listener takes IP addresses only, yet
 * "localhost" is documented (and accepted elsewhere) as loopback; these helpers translate it to
 * 127.0.0.1 and leave every other address untouched. */
#ifndef SM_ENDPOINT_H
#define SM_ENDPOINT_H

#include <stddef.h>

/* The host to bind for a configured listen host: "127.0.0.1" for "localhost" (any case),
 * otherwise host itself. */
const char *sm_bind_host(const char *host);

#define SM_ENDPOINT_MAX 512 /* room for any endpoint the configuration allows */

/* The endpoint to pass to zmq_bind for ep: "tcp://localhost:PORT" (any case) is written into
 * buf (size n) as "tcp://127.0.0.1:PORT" and buf is returned; any other endpoint, or one that
 * does not fit, is returned as is. */
const char *sm_endpoint_bindable(const char *ep, char *buf, size_t n);

#endif
