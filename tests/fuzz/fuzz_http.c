/* fuzz_http: fuzz target for the HTTP side's request parsing (daemon/http_*.c): the query
 * string of the submission list (http_input_check, then http_filter_read: state, flag, min,
 * max, q, sort) and the JSON body of a review action (http_review_read_body), plus the
 * helpers that turn outside text into ids, JSON strings and CSV cells. The input is "query 0xFF body". The query and body
 * travel as a real HTTP request through libmicrohttpd (a daemon without a listening socket,
 * fed one socketpair per input and run in this thread), so the handlers see exactly what the
 * server would give them. Properties: a refusal is a 400 with a body; an accepted filter holds
 * only valid UTF-8 and numbers PostgreSQL's numeric accepts; an accepted review has a known
 * action, a bounded comment and, to adjust, a score written in full. */
#include <math.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "http_internal.h"
#include "sm_proto.h"

#define FUZZ_HTTP_MAX (64 * 1024)

typedef struct fuzz_upload {
    char *body;
    size_t len;
    bool handled;
} fuzz_upload;

static bool fuzz_utf8(const char *s)
{
    return !s || sm_utf8_valid((const unsigned char *)s, strlen(s));
}

/* What PostgreSQL's numeric input takes: [+-] digits [. digits] [e[+-]digits], or NULL. */
static bool fuzz_pg_numeric(const char *s)
{
    if (!s)
        return true;
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    size_t digits = 0;
    while (*p >= '0' && *p <= '9')
        p++, digits++;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            digits++;
    if (digits == 0)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

static void fuzz_resp_free(http_resp *rs)
{
    free(rs->body);
    free(rs->set_cookie);
    free(rs->disposition);
    memset(rs, 0, sizeof *rs);
}

/* As the server does: the path and every argument checked first, then the filter read. */
static void fuzz_filter(struct MHD_Connection *c, const char *url)
{
    http_req rq = {.conn = c, .url = url, .method = "GET"};
    http_resp rs = {0};
    http_filter f;
    if (!http_input_check(&rq, &rs)) {
        FUZZ_CHECK(rs.status == 400 && rs.body != NULL);
    } else if (http_filter_read(&rq, &rs, &f)) {
        FUZZ_CHECK(rs.status == 0 && f.order != NULL);
        FUZZ_CHECK(fuzz_utf8(f.state) && fuzz_utf8(f.flag) && fuzz_utf8(f.q));
        FUZZ_CHECK(fuzz_pg_numeric(f.min) && fuzz_pg_numeric(f.max));
    } else {
        FUZZ_CHECK(rs.status == 400 && rs.body != NULL);
    }
    fuzz_resp_free(&rs);
}

static void fuzz_review(fuzz_upload *u)
{
    http_req rq = {.body = u->body, .len = u->len};
    http_resp rs = {0};
    http_review_in in;
    json_t *body = NULL;
    if (http_review_read_body(&rq, &rs, &body, &in)) {
        FUZZ_CHECK(rs.status == 0 && in.action && in.comment);
        FUZZ_CHECK(!strcmp(in.action, "approve") || !strcmp(in.action, "adjust") ||
                   !strcmp(in.action, "regrade"));
        const json_t *score = json_object_get(body, "score");
        if (!strcmp(in.action, "adjust") && score) {
            /* a score: read to 2 decimals, never together with criteria */
            double want = json_number_value(score);
            char *end;
            double got = strtod(in.score, &end);
            FUZZ_CHECK(!in.criteria && in.score[0] != '\0' && *end == '\0');
            FUZZ_CHECK(fabs(got - want) <= 0.005 + 1e-9 * fabs(want));
        } else if (!strcmp(in.action, "adjust")) {
            /* criteria, or neither: the grading decides which it needs (review_score) */
            FUZZ_CHECK(in.score[0] == '\0');
        } else {
            FUZZ_CHECK(!in.criteria);
        }
    } else {
        FUZZ_CHECK(rs.status == 400 && rs.body != NULL);
    }
    json_decref(body);
    fuzz_resp_free(&rs);
}

/* Outside text as an id, a JSON string (made valid UTF-8) and a CSV cell (never a formula). */
static void fuzz_helpers(const uint8_t *data, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        return;
    memcpy(s, data, n);
    s[n] = '\0';
    int64_t id;
    if (http_parse_id(s, &id))
        FUZZ_CHECK(id > 0 && strspn(s, "0123456789") == strlen(s) && id == strtoll(s, NULL, 10));
    json_t *j = http_json_string(s);
    FUZZ_CHECK(json_is_string(j));
    json_decref(j);
    char *cell = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&cell, &len);
    if (f) {
        http_csv_cell(f, s, true, true);
        fclose(f);
        const char *c = cell[0] == '"' ? cell + 1 : cell; /* first byte of the content */
        FUZZ_CHECK(len >= 2 && (s[0] == '\0' || c[0] == '\0' || !strchr("=+-@\t\r", c[0])));
        free(cell);
    }
    free(s);
}

static enum MHD_Result fuzz_handler(void *cls, struct MHD_Connection *c, const char *url,
                                    const char *method, const char *version, const char *data,
                                    size_t *data_size, void **con_cls)
{
    (void)cls, (void)method, (void)version;
    fuzz_upload *u = *con_cls;
    if (!u) {
        *con_cls = u = calloc(1, sizeof *u);
        return u ? MHD_YES : MHD_NO;
    }
    if (*data_size) {
        char *nb = realloc(u->body, u->len + *data_size + 1);
        if (!nb)
            return MHD_NO;
        memcpy(nb + u->len, data, *data_size);
        u->body = nb;
        u->len += *data_size;
        u->body[u->len] = '\0';
        *data_size = 0;
        return MHD_YES;
    }
    fuzz_filter(c, url);
    fuzz_review(u);
    u->handled = true;
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_NO_CONTENT, r);
    MHD_destroy_response(r);
    return ret;
}

static void fuzz_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    fuzz_upload *u = *con_cls;
    if (u) {
        free(u->body);
        free(u);
        *con_cls = NULL;
    }
}

static struct MHD_Daemon *fuzz_daemon(void)
{
    static struct MHD_Daemon *d;
    if (!d) {
        d = MHD_start_daemon(MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL, fuzz_handler, NULL,
                             MHD_OPTION_NOTIFY_COMPLETED, fuzz_completed, NULL, MHD_OPTION_END);
        if (!d) {
            fprintf(stderr, "fuzz_http: cannot start libmicrohttpd\n");
            exit(1);
        }
    }
    return d;
}

/* The request: the query with the bytes a request line cannot hold %-escaped (so that '%',
 * '&' and '=' stay the fuzzer's), then the body. */
static size_t fuzz_request(char *out, size_t cap, const uint8_t *q, size_t qn, const uint8_t *b,
                           size_t bn)
{
    size_t k = (size_t)snprintf(out, cap, "POST /api/assignments/1?");
    for (size_t i = 0; i < qn && k + 4 < cap; i++) {
        if (q[i] <= 0x20 || q[i] >= 0x7f || q[i] == '#')
            k += (size_t)snprintf(out + k, cap - k, "%%%02X", q[i]);
        else
            out[k++] = (char)q[i];
    }
    k += (size_t)snprintf(out + k, cap - k,
                          " HTTP/1.1\r\nHost: fuzz\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                          bn);
    if (k + bn > cap)
        return 0;
    memcpy(out + k, b, bn);
    return k + bn;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char req[4 * FUZZ_HTTP_MAX];
    if (size > FUZZ_HTTP_MAX)
        return 0;
    const uint8_t *sep = memchr(data, 0xFF, size);
    size_t qn = sep ? (size_t)(sep - data) : size;
    const uint8_t *b = sep ? sep + 1 : data + size;
    size_t bn = sep ? size - qn - 1 : 0;
    fuzz_helpers(data, qn);
    size_t n = fuzz_request(req, sizeof req, data, qn, b, bn);
    int sv[2];
    if (n == 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return 0;
    struct MHD_Daemon *d = fuzz_daemon();
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (MHD_add_connection(d, sv[0], (struct sockaddr *)&peer, sizeof peer) != MHD_YES) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    size_t off = 0;
    char reply[4096];
    bool eof = false;
    for (int round = 0; round < 1000 && !eof; round++) {
        if (off < n) {
            ssize_t w = send(sv[1], req + off, n - off, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0)
                off += (size_t)w;
        }
        MHD_run(d);
        ssize_t r = recv(sv[1], reply, sizeof reply, MSG_DONTWAIT);
        eof = r == 0;
    }
    close(sv[1]);
    MHD_run(d); /* lets the daemon see the close and finish the connection */
    return 0;
}
