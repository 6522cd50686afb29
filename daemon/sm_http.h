/* sm_http: the HTTP side of stepmarkd: the teacher review web application (static files from
 * cfg->http.static_dir, or those built into the binary), its JSON API, gradebook exports,
 * live progress and the Prometheus /metrics page. It runs on libmicrohttpd's own thread pool
 * (cfg->http.threads) with its own small pool of database connections
 * (cfg->database.pool_size), so it never blocks the broker's loop; the broker only shares
 * the atomic counters in sm_metrics. */
#ifndef SM_HTTP_H
#define SM_HTTP_H

#include "sm_config.h"
#include "sm_error.h"
#include "sm_metrics.h"

typedef struct sm_http sm_http;

/* Starts listening on cfg->http.address:cfg->http.port (port 0 = any free port) with database
 * url db_url. metrics may be NULL (then only database figures are reported). */
sm_code sm_http_start(const sm_config *cfg, const char *db_url, sm_metrics *metrics, sm_http **out,
                      sm_err *err);

/* The TCP port actually bound (useful when cfg->http.port was 0). */
int sm_http_port(const sm_http *http);

/* Stops the server, waits for its threads, closes its connections, frees and nulls *http. */
void sm_http_stop(sm_http **http);

#endif
