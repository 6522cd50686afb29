/* sm_wmetrics_http: the worker's small metrics HTTP server (libmicrohttpd, one thread):
 * GET or HEAD /metrics answers the Prometheus text of sm_wmetrics; anything else is 404 or
 * 405. No authentication: bind it to loopback or a network only Prometheus reaches. */
#ifndef SM_WMETRICS_HTTP_H
#define SM_WMETRICS_HTTP_H

#include "sm_config.h"
#include "sm_error.h"

typedef struct sm_wmetrics_server sm_wmetrics_server;

typedef struct sm_wmetrics_listen {
    const char *address; /* an IPv4 or IPv6 address; NULL or "" = 127.0.0.1 */
    int port;            /* 0 = any free port (see sm_wmetrics_server_port) */
} sm_wmetrics_listen;

/* Starts serving on l. SM_EINVAL for a bad address or port, SM_EIO when it cannot listen. */
sm_code sm_wmetrics_server_start(const sm_wmetrics_listen *l, sm_wmetrics_server **out,
                                 sm_err *err);

/* From the configuration: *out stays NULL when worker.metrics_port is 0 (off). */
sm_code sm_wmetrics_server_from_config(const sm_config *cfg, sm_wmetrics_server **out, sm_err *err);

/* The port it listens on. */
int sm_wmetrics_server_port(const sm_wmetrics_server *s);

void sm_wmetrics_server_stop(sm_wmetrics_server **s);

#endif
