/* sm_wmetrics_http: the worker's metrics HTTP server (see sm_wmetrics_http.h). */
#include "sm_wmetrics_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sm_endpoint.h"
#include "sm_log.h"
#include "sm_wmetrics.h"

enum { METRICS_MAX_CONNECTIONS = 16, METRICS_TIMEOUT_S = 10 };

struct sm_wmetrics_server {
    struct MHD_Daemon *mhd;
    int port;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result plain(struct MHD_Connection *c, unsigned status, const char *msg)
{
    char *body = strdup(msg);
    return body ? reply(c, status, "text/plain; charset=utf-8", body, strlen(body)) : MHD_NO;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    (void)upload;
    if (!*con_cls) { /* first call: headers only; any body is discarded below */
        *con_cls = c;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return plain(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    if (strcmp(url, "/metrics") != 0)
        return plain(c, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n");
    char *text = NULL;
    sm_err err = {0};
    if (sm_wmetrics_render(&text, &err) != SM_OK)
        return plain(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render metrics\n");
    return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
}

/* Fills ss from l; *flags gets MHD_USE_IPv6 for an IPv6 address. */
static sm_code listen_address(const sm_wmetrics_listen *l, struct sockaddr_storage *ss,
                              unsigned *flags, sm_err *err)
{
    memset(ss, 0, sizeof *ss);
    if (l->port < 0 || l->port > 65535)
        return sm_err_set(err, SM_EINVAL, "worker.metrics_port %d out of range", l->port);
    const char *addr = sm_bind_host(l->address && l->address[0] ? l->address : "127.0.0.1");
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)l->port);
    } else if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)l->port);
        *flags |= MHD_USE_IPv6;
    } else {
        return sm_err_set(err, SM_EINVAL, "worker.metrics_address '%s' is not an IP address", addr);
    }
    return SM_OK;
}

sm_code sm_wmetrics_server_start(const sm_wmetrics_listen *l, sm_wmetrics_server **out, sm_err *err)
{
    *out = NULL;
    struct sockaddr_storage ss;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;
    sm_code rc = listen_address(l, &ss, &flags, err);
    if (rc != SM_OK)
        return rc;
    sm_wmetrics_server *s = calloc(1, sizeof *s);
    if (!s)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, &ss,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_MAX_CONNECTIONS,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_TIMEOUT_S,
                              MHD_OPTION_END);
    const char *addr = l->address && l->address[0] ? l->address : "127.0.0.1";
    if (!s->mhd) {
        free(s);
        return sm_err_set(err, SM_EIO, "cannot listen for worker metrics on %s port %d", addr,
                          l->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : l->port;
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    sm_log(SM_LOG_INFO, "worker metrics listening", "address", addr, "port", port, "path",
           "/metrics", NULL);
    *out = s;
    return SM_OK;
}

sm_code sm_wmetrics_server_from_config(const sm_config *cfg, sm_wmetrics_server **out, sm_err *err)
{
    *out = NULL;
    if (cfg->worker.metrics_port == 0)
        return SM_OK;
    sm_wmetrics_listen l = {.address = cfg->worker.metrics_address,
                            .port = (int)cfg->worker.metrics_port};
    return sm_wmetrics_server_start(&l, out, err);
}

int sm_wmetrics_server_port(const sm_wmetrics_server *s)
{
    return s ? s->port : 0;
}

void sm_wmetrics_server_stop(sm_wmetrics_server **s)
{
    if (!s || !*s)
        return;
    MHD_stop_daemon((*s)->mhd);
    free(*s);
    *s = NULL;
}
