/* http_server: the libmicrohttpd server of stepmarkd: start/stop, collecting request bodies,
 * routing to the API handlers, and sending responses with the security headers every page
 * carries (CSP default-src 'self', nosniff, no framing, no referrer).
 * A request is judged on its first call, before any of its body is read: a POST to the API
 * without a valid session and CSRF token is answered at once and its body never enters memory;
 * admitted bodies are kept up to a limit (small for sign-in). Connections are limited in total
 * and per client address, and idle ones time out. Plain HTTP is served on loopback only:
 * elsewhere TLS (a certificate and key, via GnuTLS) or a declared TLS proxy in front. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "http_internal.h"
#include "http_release.h"
#include "sm_endpoint.h"
#include "sm_log.h"
#include "sm_student_link.h"

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
    char *s =
        doc ? json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(12)) : NULL;
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
    if (!e) { /* msg is not valid UTF-8: a parser's message may quote the client's bytes */
        char safe[512];
        size_t i = 0;
        for (; msg && msg[i] && i + 1 < sizeof safe; i++)
            safe[i] = (unsigned char)msg[i] < 0x80 ? msg[i] : '?';
        safe[i] = '\0';
        e = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", safe);
    }
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

static bool is(const char *a, const char *b)
{
    return a && strcmp(a, b) == 0;
}

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

    if (n >= 1 && is(seg[0], "lti")) { /* LTI 1.3 launches from an LMS: lti_launch.c */
        http_lti_route(rq, rs, n, seg);
        return;
    }
    if (n == 0 || !is(seg[0], "api")) {
        if (!get)
            http_resp_error(rs, 405, "EINVAL", "method not allowed");
        else if (n == 1 && is(seg[0], "metrics"))
            http_metrics_page(rq, rs);
        else if (n == 1 && (is(seg[0], "healthz") || is(seg[0], "readyz")))
            http_health(rq, rs, seg[0]);
        else if (n == 1 && is(seg[0], "student")) /* a student's feedback page */
            http_static(rq, rs, "student.html");
        else
            http_static(rq, rs, n == 0 ? "index.html" : rq->url + 1);
        return;
    }
    if (n >= 2 && is(seg[1], "v1")) {
        http_v1_route(rq, rs); /* service tokens, not sessions: http_v1.c */
        return;
    }
    if (n == 3 && is(seg[1], "student") && is(seg[2], "feedback")) {
        if (!get) /* the signed link is the credential: no session (http_release.c) */
            http_resp_error(rs, 405, "EINVAL", "method not allowed");
        else
            http_student_feedback(rq, rs);
        return;
    }
    if (n == 2 && is(seg[1], "signin")) {
        if (!post)
            http_resp_error(rs, 405, "EINVAL", "method not allowed");
        else if (rq->post_checked || http_auth_check_post(rq, rs, false))
            http_api_signin(rq, rs);
        return;
    }
    if (!rq->auth_loaded && http_auth_load(rq, rs) != SM_OK)
        return;
    if (n == 2 && is(seg[1], "session") && get) {
        http_api_session(rq, rs);
        return;
    }
    if (!rq->signed_in) {
        http_resp_error(rs, 401, "EAUTH", "sign in first");
        return;
    }
    if (post && !rq->post_checked && !http_auth_check_post(rq, rs, true))
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
    else if (n == 4 && is(what, "assignments") && is(sub, "release") && post)
        http_api_release(rq, rs, id);
    else if (n == 4 && is(what, "assignments") && is(sub, "lti-passback") && post)
        http_api_lti_passback(rq, rs, id);
    else if (n == 4 && is(what, "assignments") && is(sub, "releases") && get)
        http_api_releases(rq, rs, id);
    else if (n == 4 && is(what, "assignments") && is(sub, "similarity") && get)
        http_api_similarity(rq, rs, id);
    else if (n == 4 && is(what, "assignments") && is(sub, "similarity") && post)
        http_api_similarity_run(rq, rs, id);
    else if (n == 3 && is(what, "similarity") && get)
        http_api_similarity_pair(rq, rs, id);
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

static enum MHD_Result send_response(const sm_http *h, struct MHD_Connection *c, http_resp *rs)
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
    MHD_add_response_header(r, "Content-Security-Policy", rs->csp ? rs->csp : CSP);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Cache-Control", rs->cacheable ? "no-cache" : "no-store");
    if (h->tls)
        MHD_add_response_header(r, "Strict-Transport-Security", "max-age=31536000");
    if (rs->set_cookie) {
        /* Over HTTPS the session cookie is never to be sent over plain HTTP. */
        char cookie[512];
        if (h->tls && !strstr(rs->set_cookie, "; Secure") &&
            (size_t)snprintf(cookie, sizeof cookie, "%s; Secure", rs->set_cookie) < sizeof cookie)
            MHD_add_response_header(r, "Set-Cookie", cookie);
        else
            MHD_add_response_header(r, "Set-Cookie", rs->set_cookie);
    }
    if (rs->disposition)
        MHD_add_response_header(r, "Content-Disposition", rs->disposition);
    if (rs->location)
        MHD_add_response_header(r, "Location", rs->location);
    if (rs->bearer_challenge)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"stepmark\"");
    if (rs->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", rs->retry_after);
        MHD_add_response_header(r, "Retry-After", ra);
    }
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)rs->status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Returns the request's database connection to the pool, logs and queues the response. */
static enum MHD_Result respond(http_req *rq, http_resp *rs)
{
    if (!rs->body && !rs->content_type)
        http_resp_error(rs, 500, "EINTERNAL", "no response");
    if (rq->db) {
        http_pool_put(rq->http->pool, rq->db);
        rq->db = NULL;
    }
    if (rs->status >= 500)
        sm_log(SM_LOG_WARN, "http request failed", "method", rq->method, "path", rq->url, NULL);
    else
        sm_log(SM_LOG_DEBUG, "http request", "method", rq->method, "path", rq->url, NULL);
    rq->answered = true;
    enum MHD_Result ret = send_response(rq->http, rq->conn, rs);
    free(rs->body);
    free(rs->set_cookie);
    free(rs->disposition);
    free(rs->csp);
    free(rs->location);
    return ret;
}

/* The Content-Length the client announced is above limit. */
static bool announced_too_big(const http_req *rq, size_t limit)
{
    const char *cl = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Content-Length");
    if (!cl)
        return false; /* chunked: counted while it arrives */
    char *end;
    unsigned long long n = strtoull(cl, &end, 10);
    return end == cl || *end != '\0' || n > limit;
}

/* Runs on the first call of a request, before libmicrohttpd reads any of its body: checks the
 * path and query, and for a POST to the API the content type, origin, session and CSRF token,
 * then decides how much body may be kept (rq->body_limit). Returns false with rs filled when
 * the request is refused: it is answered without its body ever being read into memory. */
static bool admit(http_req *rq, http_resp *rs)
{
    if (!http_input_check(rq, rs))
        return false;
    char buf[512];
    char *seg[8] = {0};
    if (!is(rq->method, "POST") || strlen(rq->url) >= sizeof buf)
        return true; /* no body is kept; route() answers */
    int n = split_path(rq->url, buf, sizeof buf, seg, 6);
    if (n >= 1 && is(seg[0], "lti")) { /* an LMS's form post (lti_launch.c) */
        if (!http_lti_admit(rq, rs))
            return false;
    } else if (n == 0 || !is(seg[0], "api")) {
        return true; /* route() answers 405; the body is discarded unread */
    } else if (n >= 2 && is(seg[1], "v1")) {
        if (!http_v1_admit(rq, rs))
            return false;
    } else if (n == 2 && is(seg[1], "signin")) {
        if (!http_auth_check_post(rq, rs, false))
            return false;
        rq->body_limit = HTTP_SIGNIN_MAX_BODY;
    } else {
        if (http_auth_load(rq, rs) != SM_OK)
            return false;
        rq->auth_loaded = true;
        if (!rq->signed_in) {
            http_resp_error(rs, 401, "EAUTH", "sign in first");
            return false;
        }
        if (!http_auth_check_post(rq, rs, true))
            return false;
        rq->body_limit = HTTP_MAX_BODY;
    }
    rq->post_checked = true;
    if (announced_too_big(rq, rq->body_limit)) {
        http_resp_error(rs, 413, "ELIMIT", "request body too large");
        return false;
    }
    /* The session is known: the connection goes back to the pool while the body arrives. */
    if (rq->db) {
        http_pool_put(rq->http->pool, rq->db);
        rq->db = NULL;
    }
    return true;
}

/* Keeps one piece of an admitted body. Returns false when the body grows past its limit. */
static bool keep_body(http_req *rq, const char *upload, size_t size)
{
    if (rq->body_limit == 0)
        return true; /* nothing may be kept: discarded */
    if (rq->len + size > rq->body_limit)
        return false;
    if (rq->len + size + 1 > rq->cap) {
        size_t cap = (rq->len + size + 1) * 2;
        if (cap > rq->body_limit + 1)
            cap = rq->body_limit + 1;
        char *b = realloc(rq->body, cap);
        if (!b)
            return false;
        rq->body = b;
        rq->cap = cap;
    }
    memcpy(rq->body + rq->len, upload, size);
    rq->len += size;
    rq->body[rq->len] = '\0';
    return true;
}

/* The request is complete: parses an API body, then routes. */
static void dispatch(http_req *rq, http_resp *rs)
{
    if (rq->too_big) {
        http_resp_error(rs, 413, "ELIMIT", "request body too large");
        return;
    }
    /* /api/v1 parses its bodies as SUBMIT does (http_v1_submit.c) */
    if (rq->body_limit > 0 && rq->len > 0 && !rq->v1 && !rq->form) {
        sm_err err = {0};
        if (http_body_json(rq->body, rq->len, &rq->json, &err) != SM_OK) {
            http_resp_error(rs, 400, "EINVAL", err.msg);
            return;
        }
    }
    route(rq, rs);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    http_req *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        *con_cls = rq;
        rq->http = cls;
        rq->conn = c;
        rq->method = method;
        rq->url = url;
        client_address(c, rq->client, sizeof rq->client);
        http_resp rs = {.status = 500};
        if (!admit(rq, &rs))
            return respond(rq, &rs);
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t size = *upload_size;
        *upload_size = 0;
        if (rq->answered || rq->too_big)
            return MHD_YES;
        if (!keep_body(rq, upload, size)) {
            rq->too_big = true;
            free(rq->body);
            rq->body = NULL;
            rq->len = rq->cap = 0;
        }
        return MHD_YES;
    }
    if (rq->answered)
        return MHD_YES;
    http_resp rs = {.status = 500};
    dispatch(rq, &rs);
    return respond(rq, &rs);
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
    if (rq->db)
        http_pool_put(rq->http->pool, rq->db);
    free(rq->body);
    json_decref(rq->json);
    /* The csrf token is a secret of the session: clear it. */
    memset(rq, 0, sizeof *rq);
    free(rq);
    *con_cls = NULL;
}

/* libmicrohttpd's own messages (a connection refused at a limit, a failed TLS handshake) come
 * as fast as clients cause them: at most MHD_LOG_BURST lines per MHD_LOG_WINDOW_S seconds are
 * logged, then one line with the count of those left out. */
enum { MHD_LOG_BURST = 10, MHD_LOG_WINDOW_S = 10 };
static pthread_mutex_t mhd_log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    time_t window;     /* start of the current window (monotonic seconds) */
    unsigned logged;   /* lines logged in it */
    unsigned left_out; /* lines left out in it */
} mhd_log_rate;

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned left_out = 0;
    bool log = false;
    pthread_mutex_lock(&mhd_log_lock);
    if (ts.tv_sec - mhd_log_rate.window >= MHD_LOG_WINDOW_S) {
        left_out = mhd_log_rate.left_out;
        mhd_log_rate.window = ts.tv_sec;
        mhd_log_rate.logged = mhd_log_rate.left_out = 0;
    }
    if (mhd_log_rate.logged < MHD_LOG_BURST) {
        mhd_log_rate.logged++;
        log = true;
    } else {
        mhd_log_rate.left_out++;
    }
    pthread_mutex_unlock(&mhd_log_lock);
    if (left_out > 0) {
        char n[16];
        snprintf(n, sizeof n, "%u", left_out);
        sm_log(SM_LOG_WARN, "http server: messages left out (rate limit)", "count", n, NULL);
    }
    if (!log)
        return;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    sm_log(SM_LOG_WARN, "http server", "detail", msg, NULL);
}

/* Parses cfg->http.address into ss; *loopback tells whether only this machine can connect. */
static sm_code listen_address(const sm_config *cfg, struct sockaddr_storage *ss, unsigned *flags,
                              bool *loopback, sm_err *err)
{
    memset(ss, 0, sizeof *ss);
    const char *addr = sm_bind_host(cfg->http.address[0] ? cfg->http.address : "127.0.0.1");
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)cfg->http.port);
        *loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
    } else if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)cfg->http.port);
        *flags |= MHD_USE_IPv6;
        *loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr) ||
                    (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr) && v6->sin6_addr.s6_addr[12] == 127);
    } else {
        return sm_err_set(err, SM_EINVAL, "http.address '%s' is not an IP address", addr);
    }
    return SM_OK;
}

/* Reads a whole PEM file (at most 1 MiB) into a malloc'd NUL-terminated string. */
static sm_code read_pem(const char *setting, const char *path, char **out, sm_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return sm_err_set(err, SM_ECONFIG, "%s: cannot open '%s': %s", setting, path,
                          strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        st.st_size > 1024 * 1024) {
        fclose(f);
        return sm_err_set(err, SM_ECONFIG, "%s: '%s' is not a PEM file of at most 1 MiB", setting,
                          path);
    }
    if (strcmp(setting, "http.tls_key_file") == 0 && (st.st_mode & 077))
        sm_log(SM_LOG_WARN, "http: the TLS key file is readable by others; chmod 600 it", "file",
               path, NULL);
    char *b = malloc((size_t)st.st_size + 1);
    size_t got = b ? fread(b, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!b || got != (size_t)st.st_size) {
        free(b);
        return sm_err_set(err, SM_EIO, "%s: cannot read '%s'", setting, path);
    }
    b[got] = '\0';
    *out = b;
    return SM_OK;
}

/* Frees the TLS material (the key is cleared first). */
static void tls_free(sm_http *h)
{
    if (h->tls_key) {
        explicit_bzero(h->tls_key, strlen(h->tls_key));
        free(h->tls_key);
    }
    free(h->tls_cert);
    h->tls_key = h->tls_cert = NULL;
    h->tls = false;
}

/* Plain HTTP only on loopback: elsewhere TLS, here or in a proxy declared in front. Loads the
 * certificate and key when configured. */
static sm_code transport_policy(const sm_config *cfg, bool loopback, sm_http *h, sm_err *err)
{
    bool cert = cfg->http.tls_cert_file[0] != '\0', key = cfg->http.tls_key_file[0] != '\0';
    if (cert != key)
        return sm_err_set(err, SM_ECONFIG,
                          "http.tls_cert_file and http.tls_key_file must be set together");
    if (cert) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
            return sm_err_set(err, SM_ECONFIG,
                              "this libmicrohttpd was built without TLS: use a TLS proxy and "
                              "http.behind_tls_proxy instead");
        sm_code rc = read_pem("http.tls_cert_file", cfg->http.tls_cert_file, &h->tls_cert, err);
        if (rc == SM_OK)
            rc = read_pem("http.tls_key_file", cfg->http.tls_key_file, &h->tls_key, err);
        if (rc != SM_OK) {
            tls_free(h);
            return rc;
        }
        h->tls = true;
        return SM_OK;
    }
    if (loopback)
        return SM_OK;
    if (!cfg->http.behind_tls_proxy)
        return sm_err_set(err, SM_ECONFIG,
                          "http.address %s is not a loopback address: serving plain HTTP there "
                          "would send teacher tokens and session cookies in clear; set "
                          "http.tls_cert_file and http.tls_key_file, or set "
                          "http.behind_tls_proxy: true if a TLS proxy is in front",
                          cfg->http.address);
    sm_log(SM_LOG_WARN,
           "http: plain HTTP on a non-loopback address (http.behind_tls_proxy): only a TLS proxy "
           "in front may reach it",
           "address", cfg->http.address, NULL);
    return SM_OK;
}

static unsigned setting(int64_t v, unsigned fallback)
{
    return v > 0 ? (unsigned)v : fallback;
}

/* Starts libmicrohttpd on ss with the limits of cfg (and TLS when h->tls). */
static struct MHD_Daemon *start_mhd(const sm_config *cfg, sm_http *h, unsigned flags,
                                    struct sockaddr_storage *ss, unsigned threads)
{
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_SOCK_ADDR, 0, ss},
        {MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)threads, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)setting(cfg->http.connection_timeout_seconds, 30),
         NULL},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)setting(cfg->http.max_connections, 256), NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT,
         (intptr_t)setting(cfg->http.max_connections_per_address, 32), NULL},
        {MHD_OPTION_END, 0, NULL}, /* TLS options go here */
        {MHD_OPTION_END, 0, NULL},
        {MHD_OPTION_END, 0, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    if (h->tls) {
        flags |= MHD_USE_TLS;
        opts[5] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert};
        opts[6] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key};
        opts[7] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
                                          (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"};
    }
    return MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
                            on_mhd_log, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                            MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
}

static void http_free(sm_http *h)
{
    http_lti_stop(h);
    http_pool_free(&h->pool);
    tls_free(h);
    pthread_mutex_destroy(&h->rate_lock);
    free(h);
}

sm_code sm_http_start(const sm_config *cfg, const char *db_url, sm_metrics *metrics, sm_http **out,
                      sm_err *err)
{
    *out = NULL;
    if (cfg->http.port < 0 || cfg->http.port > 65535)
        return sm_err_set(err, SM_EINVAL, "http.port %lld out of range", (long long)cfg->http.port);
    struct sockaddr_storage ss;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    bool loopback = false;
    sm_code rc = listen_address(cfg, &ss, &flags, &loopback, err);
    if (rc != SM_OK)
        return rc;
    const char *addr = cfg->http.address[0] ? cfg->http.address : "127.0.0.1";

    sm_http *h = calloc(1, sizeof *h);
    if (!h)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    h->metrics = metrics;
    snprintf(h->static_dir, sizeof h->static_dir, "%s", cfg->http.static_dir);
    h->login_per_minute = (int)setting(cfg->http.login_attempts_per_minute, 10);
    h->api_max_body = (size_t)setting(cfg->broker.max_body_bytes, 1024 * 1024);
    h->api_max_attempts = (int)setting(cfg->broker.max_attempts, 3);
    http_rate_init(h);
    rc = transport_policy(cfg, loopback, h, err);
    unsigned threads = setting(cfg->http.threads, 2);
    int pool = cfg->database.pool_size > 0 ? (int)cfg->database.pool_size : (int)threads;
    if (rc == SM_OK)
        rc = http_pool_new(db_url, pool, &h->pool, err);
    if (rc == SM_OK)
        rc = http_lti_start(h, cfg, db_url, err);
    if (rc != SM_OK) {
        http_free(h);
        return rc;
    }
    h->mhd = start_mhd(cfg, h, flags, &ss, threads);
    if (!h->mhd) {
        bool tls = h->tls;
        http_free(h);
        return sm_err_set(err, SM_EIO, "cannot listen for HTTP%s on %s port %lld", tls ? "S" : "",
                          addr, (long long)cfg->http.port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : (int)cfg->http.port;
    sm_student_base_url(cfg->http.public_url, cfg->http.address, h->port, h->tls, h->student_base,
                        sizeof h->student_base);
    char port[16], nthreads[16], per_address[16];
    snprintf(port, sizeof port, "%d", h->port);
    snprintf(nthreads, sizeof nthreads, "%u", threads);
    snprintf(per_address, sizeof per_address, "%u",
             setting(cfg->http.max_connections_per_address, 32));
    sm_log(SM_LOG_INFO, "http listening", "address", addr, "port", port, "threads", nthreads, "tls",
           h->tls ? "yes" : "no", "per_address", per_address, "static",
           h->static_dir[0] ? h->static_dir : "built-in", NULL);
    *out = h;
    return SM_OK;
}

int sm_http_port(const sm_http *http)
{
    return http ? http->port : 0;
}

void sm_http_stop(sm_http **http)
{
    if (!http || !*http)
        return;
    sm_http *h = *http;
    MHD_stop_daemon(h->mhd);
    http_free(h);
    *http = NULL;
    sm_log(SM_LOG_INFO, "http stopped", NULL);
}
