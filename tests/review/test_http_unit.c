/* test_http_unit: the HTTP side without a database (so it runs in the sanitizer build with the
 * other unit tests): built-in static files and security headers, path checks, sign-in
 * refusals and the rate limit, CSRF/content-type checks, /metrics with the database down,
 * the CSV cell and JSON string escaping helpers, the input checks (UTF-8, decimals, JSON
 * bodies with duplicate keys) and the refusal of plain HTTP on a non-loopback address. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "http_internal.h"
#include "sm_config.h"
#include "sm_http.h"
#include "sm_metrics.h"

typedef struct fixture {
    sm_http *http;
    sm_metrics *metrics;
} fixture;

/* Sends a raw request and returns the whole response (malloc'd). */
static char *http_raw(int port, const char *request)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    size_t n = strlen(request);
    assert_int_equal(write(fd, request, n), (ssize_t)n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t got;
    while ((got = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)got;
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    buf[len] = '\0';
    close(fd);
    return buf;
}

static char *get(int port, const char *path)
{
    char req[4096];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
             path);
    return http_raw(port, req);
}

static char *post(int port, const char *path, const char *type, const char *body)
{
    char req[2048];
    snprintf(req, sizeof req,
             "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: %s\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             path, type, strlen(body), body);
    return http_raw(port, req);
}

static int status_of(const char *resp)
{
    int code = 0;
    sscanf(resp, "HTTP/1.1 %d", &code);
    return code;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    sm_config cfg;
    sm_config_defaults(&cfg);
    cfg.http.port = 0;
    cfg.http.threads = 2;
    cfg.http.login_attempts_per_minute = 3;
    cfg.database.pool_size = 2;
    sm_err err = {0};
    assert_int_equal(sm_metrics_new(&f->metrics, &err), SM_OK);
    sm_metrics_submissions_accepted(f->metrics, 7);
    /* A database that cannot be reached: the server must still start and answer. */
    assert_int_equal(sm_http_start(&cfg,
                                   "host=/nonexistent-stepmark-dir port=1 dbname=x "
                                   "connect_timeout=1",
                                   f->metrics, &f->http, &err),
                     SM_OK);
    assert_true(sm_http_port(f->http) > 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sm_http_stop(&f->http);
    assert_null(f->http);
    sm_metrics_free(&f->metrics);
    free(f);
    return 0;
}

static void static_files_and_headers(void **state)
{
    fixture *f = *state;
    int port = sm_http_port(f->http);
    char *r = get(port, "/");
    assert_int_equal(status_of(r), 200);
    assert_non_null(strstr(r, "Content-Security-Policy: default-src 'self'"));
    assert_non_null(strstr(r, "X-Content-Type-Options: nosniff"));
    assert_non_null(strstr(r, "X-Frame-Options: DENY"));
    assert_non_null(strstr(r, "text/html"));
    assert_non_null(strstr(r, "<script src=\"app.js\""));
    free(r);
    r = get(port, "/style.css");
    assert_int_equal(status_of(r), 200);
    assert_non_null(strstr(r, "text/css"));
    free(r);
    const char *bad[] = {"/nope.js", "/../CMakeLists.txt", "/.hidden", "/a/b", "/%2e%2e/x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = get(port, bad[i]);
        assert_int_equal(status_of(r), 404);
        free(r);
    }
    r = post(port, "/index.html", "application/json", "{}");
    assert_int_equal(status_of(r), 405);
    free(r);
}

static void api_refusals(void **state)
{
    fixture *f = *state;
    int port = sm_http_port(f->http);
    char *r = get(port, "/api/courses");
    assert_int_equal(status_of(r), 401);
    assert_non_null(strstr(r, "application/json"));
    free(r);
    r = post(port, "/api/submissions/1/review", "application/json", "{\"action\":\"approve\"}");
    assert_int_equal(status_of(r), 401);
    free(r);
    r = get(port, "/api/signin");
    assert_int_equal(status_of(r), 405);
    free(r);
    r = post(port, "/api/signin", "text/plain", "{\"token\":\"x\"}");
    assert_int_equal(status_of(r), 415);
    free(r);
    /* Malformed tokens are refused without touching the database, and count for the limit. */
    for (int i = 0; i < 3; i++) {
        r = post(port, "/api/signin", "application/json", "{\"token\":\"abc\"}");
        assert_int_equal(status_of(r), 401);
        free(r);
    }
    r = post(port, "/api/signin", "application/json", "{\"token\":\"abc\"}");
    assert_int_equal(status_of(r), 429);
    assert_non_null(strstr(r, "Retry-After: "));
    free(r);
    char big[1500];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char path[1600];
    snprintf(path, sizeof path, "/api/%s", big);
    r = get(port, path);
    assert_int_equal(status_of(r), 414);
    free(r);
}

static void metrics_without_database(void **state)
{
    fixture *f = *state;
    char *r = get(sm_http_port(f->http), "/metrics");
    assert_int_equal(status_of(r), 200);
    assert_non_null(strstr(r, "stepmark_submissions_accepted_total 7\n"));
    assert_non_null(strstr(r, "stepmark_database_up 0\n"));
    assert_non_null(strstr(r, "# TYPE stepmark_queue_depth gauge\n"));
    free(r);
}

static char *cell(const char *s, bool text)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    http_csv_cell(f, s, text, true);
    fclose(f);
    return buf;
}

static void csv_cells(void **state)
{
    (void)state;
    struct {
        const char *in;
        bool text;
        const char *out;
    } cases[] = {
        {"plain", true, "plain\r\n"},
        {"a,b", true, "\"a,b\"\r\n"},
        {"say \"hi\"", true, "\"say \"\"hi\"\"\"\r\n"},
        {"two\nlines", true, "\"two\nlines\"\r\n"},
        {"=1+1", true, "\"'=1+1\"\r\n"},
        {"+1", true, "\"'+1\"\r\n"},
        {"-1", true, "\"'-1\"\r\n"},
        {"@SUM(A1)", true, "\"'@SUM(A1)\"\r\n"},
        {"\tx", true, "\"'\tx\"\r\n"},
        {"7.50", false, "7.50\r\n"},
        {NULL, true, "\r\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = cell(cases[i].in, cases[i].text);
        assert_string_equal(got, cases[i].out);
        free(got);
    }
}

static void json_strings(void **state)
{
    (void)state;
    json_t *v = http_json_string("caf\xc3\xa9 <b>");
    assert_string_equal(json_string_value(v), "caf\xc3\xa9 <b>");
    json_decref(v);
    v = http_json_string("bad \xff\xfe byte \xc3");
    assert_string_equal(json_string_value(v), "bad \xef\xbf\xbd\xef\xbf\xbd byte \xef\xbf\xbd");
    json_decref(v);
    v = http_json_string("\xed\xa0\x80 surrogate");
    assert_non_null(json_string_value(v));
    json_decref(v);
    int64_t id;
    assert_true(http_parse_id("42", &id) && id == 42);
    assert_false(http_parse_id("0", &id));
    assert_false(http_parse_id("-1", &id));
    assert_false(http_parse_id("1x", &id));
    assert_false(http_parse_id("9999999999999999999", &id));
    assert_false(http_parse_id("", &id));
}

static void input_checks(void **state)
{
    (void)state;
    const char *utf8_ok[] = {
        "", "abc", "caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf"};
    for (size_t i = 0; i < sizeof utf8_ok / sizeof utf8_ok[0]; i++)
        assert_true(http_utf8_valid(utf8_ok[i], strlen(utf8_ok[i])));
    const char *utf8_bad[] = {"\xff",
                              "\xc3\x28",
                              "\xc0\xaf",
                              "\xe0\x80\xaf",
                              "\xed\xa0\x80",
                              "\xf4\x90\x80\x80",
                              "\xf8\x88\x80\x80\x80",
                              "ab\xc3",
                              "\x80"};
    for (size_t i = 0; i < sizeof utf8_bad / sizeof utf8_bad[0]; i++)
        assert_false(http_utf8_valid(utf8_bad[i], strlen(utf8_bad[i])));
    assert_false(http_utf8_valid("a\0b", 3));

    const char *num_ok[] = {"0", "7", "-1.5", "9.50", "999999999", "-999999999.99", "0.000001"};
    for (size_t i = 0; i < sizeof num_ok / sizeof num_ok[0]; i++)
        assert_true(http_decimal_valid(num_ok[i]));
    const char *num_bad[] = {"",
                             "0x10",
                             "1e5",
                             " 5",
                             "5 ",
                             "+5",
                             "nan",
                             "inf",
                             "-inf",
                             "1.",
                             ".5",
                             "-",
                             "1..2",
                             "1,5",
                             "1000000000",
                             "--1",
                             "1.0000000000000000000000000000001"};
    for (size_t i = 0; i < sizeof num_bad / sizeof num_bad[0]; i++)
        assert_false(http_decimal_valid(num_bad[i]));
    assert_false(http_decimal_valid(NULL));

    struct {
        const char *body;
        bool ok;
    } bodies[] = {
        {"{\"action\":\"approve\"}", true},
        {"{\"action\":\"approve\",\"action\":\"regrade\"}", false},
        {"{\"a\":{\"b\":1,\"b\":2}}", false},
        {"[1]", false},
        {"\"x\"", false},
        {"{\"c\":\"\xff\"}", false},
        {"{\"c\":\"a\\u0000b\"}", false},
        {"{not json", false},
        {"", false},
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        json_t *doc = NULL;
        sm_err err = {0};
        sm_code rc = http_body_json(bodies[i].body, strlen(bodies[i].body), &doc, &err);
        assert_int_equal(rc == SM_OK, bodies[i].ok);
        assert_int_equal(doc != NULL, bodies[i].ok);
        if (!bodies[i].ok)
            assert_true(err.msg[0] != '\0');
        json_decref(doc);
    }
}

/* Starts the server with the given http settings; returns the code (and stops it again). */
static sm_code start_with(const char *address, bool proxy, const char *cert, const char *key,
                          sm_err *err)
{
    sm_config cfg;
    sm_config_defaults(&cfg);
    cfg.http.port = 0;
    cfg.http.threads = 1;
    snprintf(cfg.http.address, sizeof cfg.http.address, "%s", address);
    cfg.http.behind_tls_proxy = proxy;
    snprintf(cfg.http.tls_cert_file, sizeof cfg.http.tls_cert_file, "%s", cert);
    snprintf(cfg.http.tls_key_file, sizeof cfg.http.tls_key_file, "%s", key);
    sm_http *h = NULL;
    sm_code rc =
        sm_http_start(&cfg, "host=/nonexistent-stepmark-dir port=1 dbname=x", NULL, &h, err);
    assert_int_equal(h != NULL, rc == SM_OK);
    sm_http_stop(&h);
    return rc;
}

static void plain_http_only_on_loopback(void **state)
{
    (void)state;
    sm_err err = {0};
    assert_int_equal(start_with("127.0.0.1", false, "", "", &err), SM_OK);
    assert_int_equal(start_with("127.0.0.2", false, "", "", &err), SM_OK);
    assert_int_equal(start_with("::1", false, "", "", &err), SM_OK);
    assert_int_equal(start_with("localhost", false, "", "", &err), SM_OK);
    assert_int_equal(start_with("0.0.0.0", false, "", "", &err), SM_ECONFIG);
    assert_non_null(strstr(err.msg, "http.behind_tls_proxy"));
    assert_non_null(strstr(err.msg, "http.tls_cert_file"));
    assert_int_equal(start_with("::", false, "", "", &err), SM_ECONFIG);
    assert_int_equal(start_with("0.0.0.0", true, "", "", &err), SM_OK);
    assert_int_equal(start_with("0.0.0.0", false, "/nonexistent/cert.pem", "", &err), SM_ECONFIG);
    assert_non_null(strstr(err.msg, "together"));
    assert_int_equal(
        start_with("0.0.0.0", false, "/nonexistent/cert.pem", "/nonexistent/key.pem", &err),
        SM_ECONFIG);
    assert_non_null(strstr(err.msg, "/nonexistent/cert.pem"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(static_files_and_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(api_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_without_database, setup, teardown),
        cmocka_unit_test(csv_cells),
        cmocka_unit_test(json_strings),
        cmocka_unit_test(input_checks),
        cmocka_unit_test(plain_http_only_on_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
