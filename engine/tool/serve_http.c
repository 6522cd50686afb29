/* serve_http: the HTTP side of `stepmark-engine serve` (libmicrohttpd, one thread per
 * connection): body size limit, bearer-key check, routing of /health, /metrics, /v1/models,
 * /v1/completions and /v1/chat/completions, OpenAI's error shape, and the Prometheus page.
 * The request bodies and response bodies of the two generation endpoints are in serve_api.c. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "serve_api.h"

enum { EP_COMPLETIONS, EP_CHAT, EP_MODELS, EP_HEALTH, EP_METRICS, EP_OTHER, EP_COUNT };
static const char *const ep_names[EP_COUNT] = {"completions", "chat_completions", "models",
                                               "health",      "metrics",          "other"};
static const int status_codes[] = {200, 400, 401, 404, 405, 413, 429, 500, 503};
#define N_STATUS (sizeof status_codes / sizeof status_codes[0])

struct serve_http {
    struct MHD_Daemon *d;
    serve_engine *e;
    serve_http_opts o;
    pthread_mutex_t lock;
    uint64_t requests[EP_COUNT][N_STATUS];
};

/* Per connection: the request body read so far. */
typedef struct conn_state {
    char *body;
    size_t len, cap;
    bool too_large;
    int ep;
    double t0;
} conn_state;

void serve_http_count(serve_http *h, int ep, unsigned status)
{
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < N_STATUS; i++)
        if ((unsigned)status_codes[i] == status)
            h->requests[ep][i]++;
    pthread_mutex_unlock(&h->lock);
}

/* Sends text with a content type; the body is copied. */
static enum MHD_Result send_body(struct MHD_Connection *c, unsigned status, const char *type,
                                 const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

enum MHD_Result serve_send_json(serve_http *h, struct MHD_Connection *c, int ep, unsigned status,
                                json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!s)
        return MHD_NO;
    serve_http_count(h, ep, status);
    enum MHD_Result ok = send_body(c, status, "application/json", s, strlen(s));
    free(s);
    return ok;
}

json_t *serve_error_json(const serve_error *e)
{
    return json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "message", e->message, "type", e->type,
                     "param", e->param[0] ? e->param : NULL, "code", e->code);
}

enum MHD_Result serve_send_error(serve_http *h, struct MHD_Connection *c, int ep,
                                 const serve_error *e)
{
    return serve_send_json(h, c, ep, (unsigned)e->status, serve_error_json(e));
}

void serve_error_set(serve_error *e, int status, const char *param, const char *code,
                     const char *fmt, ...)
{
    e->status = status;
    e->type = status == 401   ? "authentication_error"
              : status == 429 ? "rate_limit_error"
              : status >= 500 ? "server_error"
                              : "invalid_request_error";
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

const serve_http_opts *serve_http_options(const serve_http *h)
{
    return &h->o;
}

serve_engine *serve_http_engine(const serve_http *h)
{
    return h->e;
}

/* Constant-time comparison of the Authorization header with "Bearer KEY". */
static bool authorized(const serve_http *h, struct MHD_Connection *c)
{
    if (!h->o.api_key)
        return true;
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!v || strncmp(v, "Bearer ", 7) != 0)
        return false;
    v += 7;
    size_t n = strlen(v), k = strlen(h->o.api_key);
    unsigned diff = (unsigned)(n ^ k);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)v[i] ^ (unsigned char)h->o.api_key[i < k ? i : 0];
    return diff == 0 && k > 0;
}

static json_t *model_json(const serve_http *h)
{
    const serve_opts *so = serve_engine_opts(h->e);
    return json_pack("{s:s, s:s, s:I, s:s, s:{s:s, s:s, s:I, s:i, s:b}}", "id", h->o.model_name,
                     "object", "model", "created", (json_int_t)0, "owned_by", "stepmark",
                     "stepmark", "sha256", h->o.model_sha256, "system_fingerprint",
                     h->o.fingerprint, "max_model_len", (json_int_t)so->ctx, "slots", so->slots,
                     "deterministic", so->deterministic);
}

static enum MHD_Result on_models(serve_http *h, struct MHD_Connection *c, const char *url)
{
    serve_error e;
    if (strcmp(url, "/v1/models") == 0)
        return serve_send_json(h, c, EP_MODELS, 200,
                               json_pack("{s:s, s:[o]}", "object", "list", "data", model_json(h)));
    const char *name = url + strlen("/v1/models/");
    if (strcmp(name, h->o.model_name) == 0)
        return serve_send_json(h, c, EP_MODELS, 200, model_json(h));
    serve_error_set(&e, 404, "model", "model_not_found", "The model `%s` does not exist.", name);
    return serve_send_error(h, c, EP_MODELS, &e);
}

/* Appends printf output to a growing buffer; returns -1 when out of memory. */
static int bprintf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int bprintf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -1;
        if ((size_t)n < *cap - *len) {
            *len += (size_t)n;
            return 0;
        }
        char *p = realloc(*buf, *cap * 2 + (size_t)n);
        if (!p)
            return -1;
        *buf = p;
        *cap = *cap * 2 + (size_t)n;
    }
}

static int metrics_requests(serve_http *h, char **b, size_t *n, size_t *cap)
{
    int bad = bprintf(b, n, cap,
                      "# HELP stepmark_serve_requests_total HTTP requests by endpoint and "
                      "status.\n# TYPE stepmark_serve_requests_total counter\n");
    pthread_mutex_lock(&h->lock);
    for (int ep = 0; ep < EP_COUNT; ep++)
        for (size_t i = 0; i < N_STATUS; i++)
            if (h->requests[ep][i])
                bad |=
                    bprintf(b, n, cap,
                            "stepmark_serve_requests_total{endpoint=\"%s\",status=\"%d\"} "
                            "%llu\n",
                            ep_names[ep], status_codes[i], (unsigned long long)h->requests[ep][i]);
    pthread_mutex_unlock(&h->lock);
    return bad;
}

static int metrics_engine(serve_http *h, char **b, size_t *n, size_t *cap)
{
    serve_stats st;
    serve_engine_stats(h->e, &st);
    int bad = 0;
#define COUNTER(name, help, v)                                                                   \
    bad |=                                                                                       \
        bprintf(b, n, cap, "# HELP " name " " help "\n# TYPE " name " counter\n" name " %llu\n", \
                (unsigned long long)(v))
#define GAUGE(name, help, v) \
    bad |= bprintf(b, n, cap, "# HELP " name " " help "\n# TYPE " name " gauge\n" name " %d\n", (v))
    COUNTER("stepmark_serve_prompt_tokens_total", "Prompt tokens admitted.", st.prompt_tokens);
    COUNTER("stepmark_serve_generation_tokens_total", "Tokens generated.", st.generated_tokens);
    COUNTER("stepmark_serve_steps_total", "Forward steps.", st.steps);
    COUNTER("stepmark_serve_batched_steps_total", "Forward steps over more than one sequence.",
            st.batched_steps);
    COUNTER("stepmark_serve_step_sequences_total", "Sequences summed over forward steps.",
            st.step_seqs);
    GAUGE("stepmark_serve_queue_depth", "Requests waiting for a slot.", st.queued);
    GAUGE("stepmark_serve_active_sequences", "Sequences in the batch now.", st.active);
    GAUGE("stepmark_serve_active_sequences_max", "Most sequences batched at once since start.",
          st.active_max);
#undef COUNTER
#undef GAUGE
    const char *hn = "stepmark_serve_request_duration_seconds";
    bad |= bprintf(b, n, cap,
                   "# HELP %s Time from request to last byte of a generation request.\n"
                   "# TYPE %s histogram\n",
                   hn, hn);
    for (int i = 0; i < SERVE_LAT_BUCKETS; i++)
        bad |= bprintf(b, n, cap, "%s_bucket{le=\"%g\"} %llu\n", hn, serve_lat_bounds[i],
                       (unsigned long long)st.lat_buckets[i]);
    bad |= bprintf(b, n, cap, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", hn,
                   (unsigned long long)st.lat_buckets[SERVE_LAT_BUCKETS], hn, st.lat_sum, hn,
                   (unsigned long long)st.lat_count);
    return bad;
}

static enum MHD_Result on_metrics(serve_http *h, struct MHD_Connection *c)
{
    size_t n = 0, cap = 4096;
    char *b = malloc(cap);
    if (!b || metrics_requests(h, &b, &n, &cap) || metrics_engine(h, &b, &n, &cap)) {
        free(b);
        return MHD_NO;
    }
    serve_http_count(h, EP_METRICS, 200);
    enum MHD_Result ok = send_body(c, 200, "text/plain; version=0.0.4", b, n);
    free(b);
    return ok;
}

static int endpoint_of(const char *url)
{
    if (strcmp(url, "/v1/completions") == 0)
        return EP_COMPLETIONS;
    if (strcmp(url, "/v1/chat/completions") == 0)
        return EP_CHAT;
    if (strcmp(url, "/v1/models") == 0 || strncmp(url, "/v1/models/", 11) == 0)
        return EP_MODELS;
    if (strcmp(url, "/health") == 0)
        return EP_HEALTH;
    if (strcmp(url, "/metrics") == 0)
        return EP_METRICS;
    return EP_OTHER;
}

static enum MHD_Result dispatch(serve_http *h, struct MHD_Connection *c, const char *url,
                                const char *method, conn_state *cs)
{
    serve_error e;
    int ep = cs->ep;
    bool post = ep == EP_COMPLETIONS || ep == EP_CHAT;
    if (cs->too_large) {
        serve_error_set(&e, 413, NULL, "request_too_large",
                        "The request body is larger than %zu bytes.", h->o.max_body);
        return serve_send_error(h, c, ep, &e);
    }
    if (ep == EP_HEALTH) {
        serve_http_count(h, ep, 200);
        return send_body(c, 200, "application/json", "{\"status\":\"ok\"}", 15);
    }
    if (!authorized(h, c)) {
        serve_error_set(&e, 401, NULL, "invalid_api_key", "Incorrect API key provided.");
        return serve_send_error(h, c, ep, &e);
    }
    if (ep == EP_OTHER) {
        serve_error_set(&e, 404, NULL, "not_found", "No route %s %s.", method, url);
        return serve_send_error(h, c, ep, &e);
    }
    if (strcmp(method, post ? "POST" : "GET") != 0) {
        serve_error_set(&e, 405, NULL, "method_not_allowed", "%s needs %s.", url,
                        post ? "POST" : "GET");
        return serve_send_error(h, c, ep, &e);
    }
    if (ep == EP_METRICS)
        return on_metrics(h, c);
    if (ep == EP_MODELS)
        return on_models(h, c, url);
    return serve_api_generate(h, c, ep == EP_CHAT, cs->body ? cs->body : "", cs->len, cs->t0);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    serve_http *h = cls;
    conn_state *cs = *con_cls;
    if (!cs) {
        if (!(cs = calloc(1, sizeof *cs)))
            return MHD_NO;
        cs->t0 = serve_now();
        cs->ep = endpoint_of(url);
        *con_cls = cs;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > h->o.max_body) {
            cs->too_large = true;
            return dispatch(h, c, url, method, cs);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (cs->too_large || cs->len + n > h->o.max_body) {
            cs->too_large = true;
            return MHD_YES;
        }
        if (cs->len + n + 1 > cs->cap) {
            size_t cap = (cs->len + n + 1) * 2;
            char *p = realloc(cs->body, cap);
            if (!p)
                return MHD_NO;
            cs->body = p;
            cs->cap = cap;
        }
        memcpy(cs->body + cs->len, upload, n);
        cs->len += n;
        cs->body[cs->len] = '\0';
        return MHD_YES;
    }
    return dispatch(h, c, url, method, cs);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    conn_state *cs = *con_cls;
    if (cs) {
        free(cs->body);
        free(cs);
        *con_cls = NULL;
    }
}

static sm_code parse_address(const serve_http_opts *o, struct sockaddr_storage *ss, unsigned *fl,
                             sm_err *err)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, o->address, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)o->port);
        return SM_OK;
    }
    if (inet_pton(AF_INET6, o->address, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)o->port);
        *fl |= MHD_USE_IPv6;
        return SM_OK;
    }
    return sm_err_set(err, SM_EINVAL, "--address %s is not a numeric IPv4 or IPv6 address",
                      o->address);
}

sm_code serve_http_start(serve_engine *e, const serve_http_opts *o, serve_http **out, int *port,
                         sm_err *err)
{
    struct sockaddr_storage ss;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;
    sm_code rc = parse_address(o, &ss, &flags, err);
    if (rc)
        return rc;
    serve_http *h = calloc(1, sizeof *h);
    if (!h)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    h->e = e;
    h->o = *o;
    pthread_mutex_init(&h->lock, NULL);
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, &ss,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_conns,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (!h->d) {
        pthread_mutex_destroy(&h->lock);
        free(h);
        return sm_err_set(err, SM_EIO, "cannot listen on %s port %d", o->address, o->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    *port = di ? di->port : o->port;
    *out = h;
    return SM_OK;
}

void serve_http_stop(serve_http **hp)
{
    serve_http *h = *hp;
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    pthread_mutex_destroy(&h->lock);
    free(h);
    *hp = NULL;
}
