/* http_server: the libmicrohttpd server of stepmarkd: start/stop, collecting request bodies,
 * routing to the API handlers, and sending responses with the security headers every page
 * carries (CSP default-src 'self', nosniff, no framing, no referrer). */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http_internal.h"
#include "sm_log.h"

static const char CSP[] = "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                          "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

void http_resp_text(http_resp *rs, int status, const char *type, char *body, size_t len)
{
    free(rs->body);
    rs->status = status;
    rs->content_type = type;
    rs->body = body;
    rs->len = len;
}

void http_resp_json(http_resp *rs, int status, json_t *doc)
{
    char *s = doc ? json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(12)) : NULL;
    json_decref(doc);
    if (!s) {
        s = strdup("{\"error\":{\"code\":\"EINTERNAL\",\"message\":\"cannot encode\"}}");
        status = 500;
    }
    http_resp_text(rs, status, "application/json; charset=utf-8", s, s ? strlen(s) : 0);
}

void http_resp_error(http_resp *rs, int status, const char *code, const char *msg)
{
    json_t *e = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
    http_resp_json(rs, status, e);
}

void http_db_failed(http_resp *rs, const sm_err *err)
{
    sm_log(SM_LOG_ERROR, "http database error", "error", err ? err->msg : "", NULL);
    http_resp_error(rs, 500, "EDB", "database error");
}

PGconn *http_db(http_req *rq, http_resp *rs)
{
    if (rq->db)
        return rq->db;
    sm_err err = {0};
    if (http_pool_get(rq->http->pool, &rq->db, &err) != SM_OK) {
        sm_log(SM_LOG_ERROR, "http: no database connection", "error", err.msg, NULL);
        http_resp_error(rs, 503, "EDB", "database unavailable");
        rq->db = NULL;
        return NULL;
    }
    return rq->db;
}

const char *http_arg(http_req *rq, const char *name)
{
    const char *v = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
    return v && v[0] ? v : NULL;
}

bool http_parse_id(const char *s, int64_t *out)
{
    if (!s || !*s || strlen(s) > 18)
        return false;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (*p - '0');
    }
    if (v <= 0)
        return false;
    *out = v;
    return true;
}

/* Splits "/api/x/12/y" into up to n segments (pointers into buf). */
static int split_path(const char *url, char *buf, size_t cap, char **seg, int n)
{
    snprintf(buf, cap, "%s", url);
    int k = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, "/", &save); t && k < n + 1; t = strtok_r(NULL, "/", &save))
        seg[k++] = t;
    return k;
}

static bool is(const char *a, const char *b) { return a && strcmp(a, b) == 0; }

static void route(http_req *rq, http_resp *rs)
{
    char buf[512];
    char *seg[8] = {0};
    bool get = is(rq->method, "GET") || is(rq->method, "HEAD");
    bool post = is(rq->method, "POST");
    if (strlen(rq->url) >= sizeof buf) {
        http_resp_error(rs, 414, "ELIMIT", "URL too long");
        return;
    }
    int n = split_path(rq->url, buf, sizeof buf, seg, 6);

    if (n == 0 || !is(seg[0], "api")) {
        if (!get)
            http_resp_error(rs, 405, "EINVAL", "method not allowed");
        else if (n == 1 && is(seg[0], "metrics"))
            http_metrics_page(rq, rs);
        else
            http_static(rq, rs, n == 0 ? "index.html" : rq->url + 1);
        return;
    }
    if (n == 2 && is(seg[1], "signin")) {
        if (!post)
            http_resp_error(rs, 405, "EINVAL", "method not allowed");
        else if (http_auth_check_post(rq, rs, false))
            http_api_signin(rq, rs);
        return;
    }
    if (http_auth_load(rq, rs) != SM_OK)
        return;
    if (n == 2 && is(seg[1], "session") && get) {
        http_api_session(rq, rs);
        return;
    }
    if (!rq->signed_in) {
        http_resp_error(rs, 401, "EAUTH", "sign in first");
        return;
    }
    if (post && !http_auth_check_post(rq, rs, true))
        return;

    /* /api/WHAT[/ID[/SUB]] */
    const char *what = n >= 2 ? seg[1] : "";
    const char *sub = n >= 4 ? seg[3] : "";
    int64_t id = 0;
    if (n >= 3 && !http_parse_id(seg[2], &id))
        http_resp_error(rs, 404, "ENOTFOUND", "not found");
    else if (n == 2 && is(what, "signout") && post)
        http_api_signout(rq, rs);
    else if (n == 2 && is(what, "courses") && get)
        http_api_courses(rq, rs);
    else if (n == 2 && is(what, "progress") && get)
        http_api_progress(rq, rs);
    else if (n == 3 && is(what, "courses") && get)
        http_api_course(rq, rs, id);
    else if (n == 3 && is(what, "assignments") && get)
        http_api_assignment(rq, rs, id);
    else if (n == 4 && is(what, "assignments") && is(sub, "export.csv") && get)
        http_api_export_csv(rq, rs, id);
    else if (n == 4 && is(what, "assignments") && is(sub, "export.json") && get)
        http_api_export_json(rq, rs, id);
    else if (n == 3 && is(what, "submissions") && get)
        http_api_submission(rq, rs, id);
    else if (n == 4 && is(what, "submissions") && is(sub, "review") && post)
        http_api_review(rq, rs, id);
    else
        http_resp_error(rs, 404, "ENOTFOUND", "not found");
}

static void client_address(struct MHD_Connection *c, char *out, size_t n)
{
    snprintf(out, n, "unknown");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    socklen_t len = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                           : sizeof(struct sockaddr_in);
    if (getnameinfo(ci->client_addr, len, out, (socklen_t)n, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(out, n, "unknown");
}

static enum MHD_Result send_response(struct MHD_Connection *c, http_resp *rs)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(rs->len, rs->body ? rs->body : (void *)"",
                                        rs->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(rs->body);
        rs->body = NULL;
        return MHD_NO;
    }
    rs->body = NULL; /* owned by the response now */
    MHD_add_response_header(r, "Content-Type", rs->content_type ? rs->content_type : "text/plain");
    MHD_add_response_header(r, "Content-Security-Policy", CSP);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Cache-Control", rs->cacheable ? "no-cache" : "no-store");
    if (rs->set_cookie)
        MHD_add_response_header(r, "Set-Cookie", rs->set_cookie);
    if (rs->disposition)
        MHD_add_response_header(r, "Content-Disposition", rs->disposition);
    if (rs->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", rs->retry_after);
        MHD_add_response_header(r, "Retry-After", ra);
    }
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)rs->status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    sm_http *h = cls;
    http_req *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (!rq->too_big) {
            if (rq->len + *upload_size > HTTP_MAX_BODY) {
                rq->too_big = true;
            } else {
                if (rq->len + *upload_size + 1 > rq->cap) {
                    size_t cap = (rq->len + *upload_size + 1) * 2;
                    char *b = realloc(rq->body, cap);
                    if (!b)
                        return MHD_NO;
                    rq->body = b;
                    rq->cap = cap;
                }
                memcpy(rq->body + rq->len, upload, *upload_size);
                rq->len += *upload_size;
                rq->body[rq->len] = '\0';
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    rq->http = h;
    rq->conn = c;
    rq->method = method;
    rq->url = url;
    client_address(c, rq->client, sizeof rq->client);
    http_resp rs = {.status = 500};
    if (rq->too_big)
        http_resp_error(&rs, 413, "ELIMIT", "request body too large");
    else
        route(rq, &rs);
    if (!rs.body && !rs.content_type)
        http_resp_error(&rs, 500, "EINTERNAL", "no response");
    if (rq->db) {
        http_pool_put(h->pool, rq->db);
        rq->db = NULL;
    }
    if (rs.status >= 500)
        sm_log(SM_LOG_WARN, "http request failed", "method", method, "path", url, NULL);
    else
        sm_log(SM_LOG_DEBUG, "http request", "method", method, "path", url, NULL);
    enum MHD_Result ret = send_response(c, &rs);
    free(rs.body);
    free(rs.set_cookie);
    free(rs.disposition);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    http_req *rq = *con_cls;
    if (!rq)
        return;
    free(rq->body);
    /* The csrf token is a secret of the session: clear it. */
    memset(rq, 0, sizeof *rq);
    free(rq);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    sm_log(SM_LOG_WARN, "http server", "detail", msg, NULL);
}

sm_code sm_http_start(const sm_config *cfg, const char *db_url, sm_metrics *metrics,
                      sm_http **out, sm_err *err)
{
    *out = NULL;
    if (cfg->http.port < 0 || cfg->http.port > 65535)
        return sm_err_set(err, SM_EINVAL, "http.port %lld out of range",
                          (long long)cfg->http.port);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    const char *addr = cfg->http.address[0] ? cfg->http.address : "127.0.0.1";
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)cfg->http.port);
    } else if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)cfg->http.port);
        flags |= MHD_USE_IPv6;
    } else {
        return sm_err_set(err, SM_EINVAL, "http.address '%s' is not an IP address", addr);
    }

    sm_http *h = calloc(1, sizeof *h);
    if (!h)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    h->metrics = metrics;
    snprintf(h->static_dir, sizeof h->static_dir, "%s", cfg->http.static_dir);
    h->login_per_minute = cfg->http.login_attempts_per_minute > 0
                              ? (int)cfg->http.login_attempts_per_minute
                              : 10;
    http_rate_init(h);
    int threads = cfg->http.threads > 0 ? (int)cfg->http.threads : 2;
    int pool = cfg->database.pool_size > 0 ? (int)cfg->database.pool_size : threads;
    sm_code rc = http_pool_new(db_url, pool, &h->pool, err);
    if (rc != SM_OK) {
        pthread_mutex_destroy(&h->rate_lock);
        free(h);
        return rc;
    }
    h->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
        MHD_OPTION_END);
    if (!h->mhd) {
        http_pool_free(&h->pool);
        pthread_mutex_destroy(&h->rate_lock);
        free(h);
        return sm_err_set(err, SM_EIO, "cannot listen for HTTP on %s port %lld", addr,
                          (long long)cfg->http.port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : (int)cfg->http.port;
    char port[16], nthreads[16];
    snprintf(port, sizeof port, "%d", h->port);
    snprintf(nthreads, sizeof nthreads, "%d", threads);
    sm_log(SM_LOG_INFO, "http listening", "address", addr, "port", port, "threads", nthreads,
           "static", h->static_dir[0] ? h->static_dir : "built-in", NULL);
    *out = h;
    return SM_OK;
}

int sm_http_port(const sm_http *http) { return http ? http->port : 0; }

void sm_http_stop(sm_http **http)
{
    if (!http || !*http)
        return;
    sm_http *h = *http;
    MHD_stop_daemon(h->mhd);
    http_pool_free(&h->pool);
    pthread_mutex_destroy(&h->rate_lock);
    free(h);
    *http = NULL;
    sm_log(SM_LOG_INFO, "http stopped", NULL);
}
