/* test_wmetrics: the worker's Prometheus metrics: the text format (HELP/TYPE lines, counter
 * names, labels escaped, durations in seconds), the classification of sandbox results, and
 * the metrics HTTP server over a real socket (GET /metrics 200, other paths 404, POST 405,
 * bad addresses refused); every worker metric the Grafana dashboard (argv[1]) uses exists.
 * Usage: test_wmetrics [DASHBOARD_JSON] */
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

#include "sm_wmetrics.h"
#include "sm_wmetrics_http.h"

static void has(const char *text, const char *line)
{
    if (!strstr(text, line))
        fail_msg("missing \"%s\" in:\n%s", line, text);
}

static void render_format(void **state)
{
    (void)state;
    sm_wmetrics_reset();
    sm_wmetrics_job_received();
    sm_wmetrics_job_received();
    sm_wmetrics_job_completed();
    sm_wmetrics_job_failed();
    sm_wmetrics_tokens_generated(40);
    sm_wmetrics_tokens_generated(2);
    sm_wmetrics_prompt_cache(3, 1);
    sm_wmetrics_slots(4);
    sm_wmetrics_busy_slots(2);
    sm_wmetrics_sandbox_run(SM_SANDBOX_PASSED);
    sm_wmetrics_sandbox_run(SM_SANDBOX_ERROR);
    sm_wmetrics_sandbox_run(SM_SANDBOX_ERROR);
    sm_wmetrics_sandbox_run(SM_SANDBOX_OUTCOMES); /* ignored */
    sm_wmetrics_model_loaded(1.25, "Vibe\"Thinker\\1.5B\n");
    sm_wmetrics_worker_name("w1");
    char *text = NULL;
    assert_int_equal(sm_wmetrics_render(&text, NULL), SM_OK);
    has(text, "# TYPE stepmark_worker_jobs_received_total counter\n"
              "stepmark_worker_jobs_received_total 2\n");
    has(text, "stepmark_worker_jobs_completed_total 1\n");
    has(text, "stepmark_worker_jobs_failed_total 1\n");
    has(text, "# TYPE stepmark_worker_tokens_generated_total counter\n"
              "stepmark_worker_tokens_generated_total 42\n");
    has(text, "stepmark_worker_prompt_cache_hits_total 3\n");
    has(text, "stepmark_worker_prompt_cache_misses_total 1\n");
    has(text, "# TYPE stepmark_worker_sandbox_runs_total counter\n");
    has(text, "stepmark_worker_sandbox_runs_total{outcome=\"passed\"} 1\n");
    has(text, "stepmark_worker_sandbox_runs_total{outcome=\"error\"} 2\n");
    has(text, "stepmark_worker_sandbox_runs_total{outcome=\"compile_error\"} 0\n");
    has(text, "# TYPE stepmark_worker_busy_slots gauge\nstepmark_worker_busy_slots 2\n");
    has(text, "stepmark_worker_slots 4\n");
    has(text, "# TYPE stepmark_worker_model_load_seconds gauge\n"
              "stepmark_worker_model_load_seconds 1.250000\n");
    has(text, "stepmark_worker_info{worker=\"w1\",model=\"Vibe\\\"Thinker\\\\1.5B\\n\"} 1\n");
    /* every sample line belongs to a metric with HELP and TYPE lines; no millisecond units */
    char *all = strdup(text);
    assert_non_null(all);
    assert_null(strstr(all, "_ms"));
    int samples = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        char name[128], want[200];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(line, "{ "), line);
        snprintf(want, sizeof want, "# HELP %s ", name);
        has(all, want);
        snprintf(want, sizeof want, "# TYPE %s ", name);
        has(all, want);
        samples++;
    }
    assert_int_equal(samples, 15);
    free(all);
    free(text);
    sm_wmetrics_snapshot s;
    sm_wmetrics_snapshot_get(&s);
    assert_int_equal(s.tokens_generated, 42);
    sm_wmetrics_reset();
    sm_wmetrics_snapshot_get(&s);
    assert_int_equal(s.tokens_generated, 0);
    assert_int_equal(s.sandbox_runs[SM_SANDBOX_ERROR], 0);
}

static sm_sandbox_outcome classify(sm_code rc, const char *json)
{
    json_t *doc = json ? json_loads(json, 0, NULL) : NULL;
    sm_sandbox_outcome o = sm_wmetrics_sandbox_classify(rc, doc);
    json_decref(doc);
    return o;
}

static void sandbox_outcomes(void **state)
{
    (void)state;
    assert_int_equal(classify(SM_EIO, NULL), SM_SANDBOX_ERROR);
    assert_int_equal(classify(SM_OK, NULL), SM_SANDBOX_ERROR);
    assert_int_equal(classify(SM_OK, "{\"compile\":{\"ok\":false},\"passed\":0,\"total\":2}"),
                     SM_SANDBOX_COMPILE_ERROR);
    assert_int_equal(classify(SM_OK, "{\"compile\":{\"ok\":true},\"passed\":2,\"total\":2}"),
                     SM_SANDBOX_PASSED);
    assert_int_equal(classify(SM_OK, "{\"passed\":1,\"total\":2,\"tests\":[{\"passed\":true},"
                                     "{\"passed\":false,\"timed_out\":false}]}"),
                     SM_SANDBOX_FAILED);
    assert_int_equal(classify(SM_OK, "{\"passed\":1,\"total\":2,\"tests\":[{\"passed\":true},"
                                     "{\"passed\":false,\"memory_exceeded\":true}]}"),
                     SM_SANDBOX_LIMIT);
}

/* One HTTP/1.0 request on a new connection; returns the whole response (malloc'd). */
static char *http(int port, const char *request)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(write(fd, request, strlen(request)), (ssize_t)strlen(request));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    ssize_t n;
    while ((n = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    close(fd);
    return buf;
}

static void server(void **state)
{
    (void)state;
    sm_wmetrics_reset();
    sm_wmetrics_tokens_generated(7);
    sm_wmetrics_server *s = NULL;
    sm_err err = {0};
    sm_wmetrics_listen l = {.address = "127.0.0.1", .port = 0};
    assert_int_equal(sm_wmetrics_server_start(&l, &s, &err), SM_OK);
    int port = sm_wmetrics_server_port(s);
    assert_true(port > 0);
    char *r = http(port, "GET /metrics HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.0 200") ? r : strstr(r, "HTTP/1.1 200"));
    has(r, "Content-Type: text/plain; version=0.0.4");
    has(r, "stepmark_worker_tokens_generated_total 7\n");
    free(r);
    r = http(port, "GET /other HTTP/1.0\r\n\r\n");
    has(r, " 404 ");
    free(r);
    r = http(port, "POST /metrics HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi");
    has(r, " 405 ");
    free(r);
    /* the same port cannot be taken twice; bad addresses and ports are refused */
    sm_wmetrics_server *s2 = NULL;
    l.port = port;
    assert_int_equal(sm_wmetrics_server_start(&l, &s2, &err), SM_EIO);
    assert_null(s2);
    l.address = "not-an-address";
    assert_int_equal(sm_wmetrics_server_start(&l, &s2, &err), SM_EINVAL);
    l = (sm_wmetrics_listen){.address = "127.0.0.1", .port = 70000};
    assert_int_equal(sm_wmetrics_server_start(&l, &s2, &err), SM_EINVAL);
    sm_wmetrics_server_stop(&s);
    assert_null(s);
    sm_wmetrics_server_stop(&s); /* twice is harmless */
    sm_wmetrics_reset();
}

static const char *dashboard;

/* Every stepmark_worker_* name in the dashboard's queries is rendered. */
static void dashboard_names(void **state)
{
    (void)state;
    if (!dashboard)
        skip();
    json_error_t je;
    json_t *d = json_load_file(dashboard, 0, &je);
    if (!d)
        fail_msg("%s: %s", dashboard, je.text);
    char *text = NULL;
    assert_int_equal(sm_wmetrics_render(&text, NULL), SM_OK);
    int used = 0;
    size_t i, k;
    json_t *p, *t;
    json_array_foreach(json_object_get(d, "panels"), i, p)
    {
        json_array_foreach(json_object_get(p, "targets"), k, t)
        {
            const char *e = json_string_value(json_object_get(t, "expr"));
            for (const char *m = e ? strstr(e, "stepmark_worker_") : NULL; m;
                 m = strstr(m + 1, "stepmark_worker_")) {
                char name[128], want[140];
                snprintf(name, sizeof name, "%.*s", (int)strspn(m, "abcdefghijklmnopqrstuvwxyz_"),
                         m);
                snprintf(want, sizeof want, "# TYPE %s ", name);
                has(text, want);
                used++;
            }
        }
    }
    assert_true(used >= 6);
    free(text);
    json_decref(d);
}

int main(int argc, char **argv)
{
    dashboard = argc > 1 ? argv[1] : NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(render_format),
        cmocka_unit_test(sandbox_outcomes),
        cmocka_unit_test(server),
        cmocka_unit_test(dashboard_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
