/* remote_e2e: stepmark-worker with worker.engine: remote, end to end with the real broker
 * (stepmarkd), real PostgreSQL (the ctest "pg" fixture) and `stepmark-engine serve` on the small
 * random model, behind a small fault-injecting proxy (remote_proxy.py). First a key file that
 * others may read is refused. Then the worker starts while nothing listens on the server's
 * port (its requests fail to connect and are retried), the server and proxy come up, the
 * proxy answers the first requests 429 (retried after Retry-After), and math, proof and code
 * submissions are graded: checks run by the worker, the verdict parsing and its one repair
 * request, and every grading stored with the server's model name and system_fingerprint. At
 * most worker.remote.max_concurrency requests were in flight at once (the proxy's count and
 * serve's /metrics), the API key reached the server from the key file, a regrade with the
 * same seed reproduces the reasoning chain byte for byte (serve --deterministic), and SIGTERM
 * drains and exits 0.
 * Usage: remote_e2e STEPMARKD STEPMARK_WORKER MODEL_DIR ENGINE_TOOL PYTHON PROXY_SCRIPT */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest_env.h"

#define API_KEY "remote-e2e-key"

static const char *model_dir, *engine_tool, *python, *proxy_script;
static int proxy_port, serve_port;
static pid_t worker_pid, serve_pid, proxy_pid;
static char key_file[160];

static void kill_extra(void)
{
    pid_t p[] = {serve_pid, proxy_pid};
    for (int i = 0; i < 2; i++)
        if (p[i] > 0) {
            kill(p[i], SIGKILL);
            waitpid(p[i], NULL, 0);
        }
    serve_pid = proxy_pid = 0;
}

/* The whole file (NUL-terminated, malloc'd; "" when it cannot be read). */
static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    size_t cap = 1 << 16, len = 0;
    char *buf = calloc(1, cap);
    CHECK(buf);
    while (fp && len + 1 < cap) {
        size_t r = fread(buf + len, 1, cap - 1 - len, fp);
        if (r == 0)
            break;
        len += r;
        if (len + 1 == cap) {
            char *p = realloc(buf, cap * 2);
            CHECK(p);
            buf = p;
            cap *= 2;
        }
    }
    buf[len] = '\0';
    if (fp)
        fclose(fp);
    return buf;
}

/* Waits until the file log contains text. */
static void wait_log(const char *log, const char *text, long timeout_ms)
{
    long end = now_ms() + timeout_ms;
    while (now_ms() < end) {
        char *s = slurp(log);
        bool found = strstr(s, text) != NULL;
        free(s);
        if (found)
            return;
        sleep_ms(50);
    }
    fail("waited %ld ms for \"%s\" in %s", timeout_ms, text, log);
}

/* GET path from 127.0.0.1:port with the API key: the whole response. */
static char *http_get(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.0\r\nAuthorization: Bearer " API_KEY "\r\n\r\n", path);
    CHECK(write(fd, req, (size_t)n) == n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    CHECK(buf);
    ssize_t r;
    while (len + 1 < cap && (r = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    buf[len] = '\0';
    close(fd);
    return buf;
}

/* The JSON body of a GET. */
static json_t *http_json(int port, const char *path)
{
    char *resp = http_get(port, path);
    char *body = strstr(resp, "\r\n\r\n");
    json_t *j = body ? json_loads(body + 4, 0, NULL) : NULL;
    CHECKM(j != NULL, "GET %s: %.300s", path, resp);
    free(resp);
    return j;
}

/* A Prometheus sample's value in serve's /metrics. */
static double serve_metric(const char *name)
{
    char *m = http_get(serve_port, "/metrics");
    char pat[128];
    snprintf(pat, sizeof pat, "\n%s ", name);
    char *p = strstr(m, pat);
    CHECKM(p != NULL, "no %s in serve's /metrics", name);
    double v = strtod(p + strlen(pat), NULL);
    free(m);
    return v;
}

static void write_key(mode_t mode)
{
    FILE *fp = fopen(key_file, "w");
    CHECK(fp && fputs(API_KEY "\n", fp) >= 0 && fclose(fp) == 0);
    CHECK(chmod(key_file, mode) == 0);
}

static void setup_remote(void)
{
    setup("remote", "");
    proxy_port = free_port();
    snprintf(key_file, sizeof key_file, "%s/api.key", E.dir);
    char extra[2048];
    snprintf(extra, sizeof extra,
             "  heartbeat_ms: 200\n  heartbeat_timeout_ms: 3000\n  lease_ms: 120000\n"
             "  max_body_bytes: 4194304\n"
             "worker:\n  name: remote\n  broker_endpoint: \"%s\"\n  model: \"%s\"\n"
             "  max_prompt_tokens: 4096\n  max_new_tokens: 24\n  samples: 1\n"
             "  sampling:\n    temperature: 0.8\n    top_p: 0.95\n"
             "  engine: remote\n  remote:\n    base_url: \"http://127.0.0.1:%d/v1/\"\n"
             "    api_key_file: \"%s\"\n    model: model\n    max_concurrency: 2\n"
             "    timeout_ms: 120000\n    retries: 30\n",
             E.wep, model_dir, proxy_port, key_file);
    write_config(extra);
}

static pid_t start_real_worker(void)
{
    char log[128];
    snprintf(log, sizeof log, "%s/worker.log", E.dir);
    char *wargv[] = {(char *)E.worker, "--config", E.cfg, NULL};
    worker_pid = spawn(log, wargv);
    E.workers[E.nworkers++] = worker_pid; /* cleanup() kills it */
    return worker_pid;
}

/* A key file that group or others may read: the worker refuses to start, naming the fix. */
static void check_key_mode(void)
{
    write_key(0644);
    pid_t p = start_real_worker();
    CHECK(wait_worker(p, 30000) != 0);
    E.nworkers--;
    char log[128];
    snprintf(log, sizeof log, "%s/worker.log", E.dir);
    wait_log(log, "chmod 600", 1000);
    CHECK(unlink(log) == 0);
    write_key(0600);
}

/* serve on the worker's model (with the API key from its environment), then the proxy in
 * front of it on the port the worker already uses, answering its first two POSTs 429. */
static void start_server_and_proxy(void)
{
    char slog[128], plog[128], port[16], up[64];
    snprintf(slog, sizeof slog, "%s/serve.log", E.dir);
    setenv("STEPMARK_ENGINE_API_KEY", API_KEY, 1);
    char *sargv[] = {(char *)engine_tool,
                     "serve",
                     "--model",
                     (char *)model_dir,
                     "--port",
                     "0",
                     "--slots",
                     "4",
                     "--threads",
                     "1",
                     "--deterministic",
                     NULL};
    serve_pid = spawn(slog, sargv);
    unsetenv("STEPMARK_ENGINE_API_KEY");
    long end = now_ms() + 120000;
    while (!serve_port && now_ms() < end) {
        char *s = slurp(slog);
        for (char *line = s; line && *line;
             line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
            if (line[0] >= '1' && line[0] <= '9' &&
                strspn(line, "0123456789") == strcspn(line, "\n"))
                serve_port = atoi(line);
        free(s);
        CHECKM(waitpid(serve_pid, NULL, WNOHANG) != serve_pid, "serve exited");
        sleep_ms(50);
    }
    CHECKM(serve_port > 0, "serve printed no port");
    snprintf(plog, sizeof plog, "%s/proxy.log", E.dir);
    snprintf(port, sizeof port, "%d", proxy_port);
    snprintf(up, sizeof up, "http://127.0.0.1:%d", serve_port);
    char *pargv[] = {(char *)python, (char *)proxy_script, port, up, "--fail-429", "2", NULL};
    proxy_pid = spawn(plog, pargv);
    wait_log(plog, "ready", 30000);
}

static long long submit_to(sm_client *c, const char *assignment, const char *key,
                           const char *content)
{
    json_t *r =
        call_ok(c, "SUBMIT",
                json_pack("{s:s, s:s, s:s, s:s, s:s}", "course", "M1", "assignment", assignment,
                          "student_ref", key, "idempotency_key", key, "content", content));
    long long id = json_integer_value(json_object_get(r, "submission_id"));
    json_decref(r);
    CHECK(id > 0);
    return id;
}

static void make_assignments(sm_client *c)
{
    json_decref(call_ok(c, "COURSE_PUT", json_pack("{s:s, s:s}", "code", "M1", "title", "Maths")));
    json_decref(call_ok(c, "ASSIGNMENT_CREATE",
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:f}", "course", "M1", "code",
                                  "eq", "kind", "math", "title", "Linear equation", "statement",
                                  "Solve 2x + 3 = 11.", "answer_key", "4", "max_score", 4.0)));
    json_decref(
        call_ok(c, "ASSIGNMENT_CREATE",
                json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:f}", "course", "M1", "code", "odd",
                          "kind", "proof", "title", "Odd squares", "statement",
                          "Prove that the square of an odd number is odd.", "rubric",
                          "2 points for the algebra, 2 for the conclusion", "max_score", 4.0)));
    json_decref(
        call_ok(c, "ASSIGNMENT_CREATE",
                json_pack("{s:s, s:s, s:s, s:s, s:s, s:[{s:s, s:s, s:s}], s:f}", "course", "M1",
                          "code", "sum", "kind", "code", "language", "python", "statement",
                          "Read two integers and print their sum.", "tests", "name", "small",
                          "input", "2 3\n", "expected_output", "5\n", "max_score", 4.0)));
}

static void wait_graded(long long want, long timeout_ms, const char *sql)
{
    long end = now_ms() + timeout_ms;
    long long v = -2;
    while (now_ms() < end) {
        if ((v = q_int("%s", sql)) >= want)
            return;
        CHECKM(waitpid(worker_pid, NULL, WNOHANG) != worker_pid, "the worker exited");
        sleep_ms(100);
    }
    fail("waited %ld ms for %s >= %lld, have %lld", timeout_ms, sql, want, v);
}

/* Every grading has the server's identity: its model name, its system_fingerprint (which
 * names the model file's hash, as /v1/models gives it), and the remote engine version. */
static void check_identity(long long n)
{
    json_t *models = http_json(serve_port, "/v1/models");
    const char *sha = json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(models, "data"), 0), "stepmark"), "sha256"));
    CHECKM(sha && strlen(sha) == 64, "no stepmark.sha256 in /v1/models");
    CHECK(q_int("SELECT count(*) FROM grading WHERE model_name = 'model' AND"
                " model_hash LIKE 'stepmark-engine-%%' AND model_hash LIKE '%%%.16s' AND"
                " engine_version LIKE 'remote+%%' AND completion_tokens > 0 AND"
                " prompt_tokens > 100",
                sha) == n);
    json_decref(models);
}

/* The checks ran in the worker and the verdict parser asked for its one repair. */
static void check_first_batch(long long right, long long code_ok)
{
    check_identity(5);
    CHECK(q_int("SELECT count(*) FROM grading WHERE status = 'needs_review' AND"
                " 'invalid_verdict' = ANY(flags)") == 5);
    CHECK(q_int("SELECT count(*) FROM reasoning_chain WHERE text LIKE"
                " '%%[verdict block rejected:%%' AND tokens > 0") == 5);
    CHECK(q_int("SELECT count(*) FROM check_result c JOIN grading g ON g.id = c.grading_id"
                " WHERE g.submission_id = %lld AND c.kind = 'answer' AND c.passed",
                right) == 1);
    CHECK(q_int("SELECT count(*) FROM check_result c JOIN grading g ON g.id = c.grading_id"
                " WHERE g.submission_id = %lld AND c.kind = 'test' AND c.passed",
                code_ok) == 1);
}

/* The limits held: two 429s and connection errors were retried, no more than two requests
 * were in flight at once (the proxy's count and serve's), every request carried the key. */
static void check_limits(void)
{
    json_t *st = http_json(proxy_port, "/_proxy/stats");
    long long rejected = json_integer_value(json_object_get(st, "rejected_429"));
    long long inflight = json_integer_value(json_object_get(st, "max_inflight"));
    long long forwarded = json_integer_value(json_object_get(st, "forwarded"));
    long long noauth = json_integer_value(json_object_get(st, "auth_missing"));
    json_decref(st);
    CHECKM(rejected == 2, "proxy rejected %lld", rejected);
    CHECKM(inflight >= 1 && inflight <= 2, "max in flight %lld", inflight);
    CHECKM(forwarded >= 10, "forwarded %lld", forwarded); /* critique + repair per job */
    CHECKM(noauth == 0, "%lld requests without the key", noauth);
    double active_max = serve_metric("stepmark_serve_active_sequences_max");
    CHECKM(active_max >= 1 && active_max <= 2, "serve batched %g", active_max);
    char log[128];
    snprintf(log, sizeof log, "%s/worker.log", E.dir);
    char *s = slurp(log);
    CHECKM(strstr(s, "HTTP 429; retry"), "no 429 retry in the worker's log");
    CHECKM(strstr(s, "Could not connect") || strstr(s, "Couldn't connect"),
           "no connection retry in the worker's log");
    free(s);
}

/* The proof again with the same seed: serve --deterministic gives the same chain. */
static void check_regrade(long long s_proof)
{
    long long g1 = q_int("SELECT max(id) FROM grading WHERE submission_id = %lld", s_proof);
    long long j1 = q_int("SELECT job_id FROM grading WHERE id = %lld", g1);
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO job (submission_id, state, priority, seed) SELECT submission_id,"
             " 'queued', 0, seed FROM job WHERE id = %lld",
             j1);
    PGresult *r = PQexec(E.db, sql);
    CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
    PQclear(r);
    sm_client *c = client();
    submit_to(c, "odd", "r1", "Let n = 2k + 3. Then n^2 is odd."); /* makes the broker dispatch */
    sm_client_free(&c);
    wait_graded(7, 240000, "SELECT count(*) FROM grading");
    long long g2 = q_int("SELECT max(id) FROM grading WHERE submission_id = %lld", s_proof);
    CHECK(g2 != g1);
    CHECK(q_int("SELECT count(*) FROM reasoning_chain a, reasoning_chain b WHERE"
                " a.grading_id = %lld AND b.grading_id = %lld AND a.sample_no = b.sample_no"
                " AND a.text = b.text AND length(a.text) > 0",
                g1, g2) == 1);
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s STEPMARKD STEPMARK_WORKER MODEL_DIR ENGINE_TOOL PYTHON PROXY\n",
                argv[0]);
        return 2;
    }
    E.stepmarkd = argv[1];
    E.worker = argv[2];
    model_dir = argv[3];
    engine_tool = argv[4];
    python = argv[5];
    proxy_script = argv[6];
    atexit(kill_extra);
    setup_remote();
    start_broker();
    connect_db();
    check_key_mode();
    sm_client *c = client();
    make_assignments(c);
    char log[128];
    snprintf(log, sizeof log, "%s/worker.log", E.dir);
    start_real_worker();
    long long right = submit_to(c, "eq", "s1", "2x = 8, so x = \\boxed{4}");
    submit_to(c, "eq", "s2", "2x = 14, so x = \\boxed{7}");
    long long proof = submit_to(c, "odd", "s3", "Let n = 2k + 1. Then n^2 = 4k^2 + 4k + 1.");
    long long code_ok =
        submit_to(c, "sum", "s4", "a, b = map(int, input().split())\nprint(a + b)\n");
    submit_to(c, "sum", "s5", "a, b = map(int, input().split())\nprint(a - b)\n");
    /* nothing listens yet: the worker's requests fail to connect and are retried */
    wait_log(log, "retry 2 of 30", 60000);
    start_server_and_proxy();
    wait_graded(5, 300000, "SELECT count(*) FROM grading");
    check_first_batch(right, code_ok);
    check_limits();
    check_regrade(proof);
    sm_client_free(&c);
    kill(worker_pid, SIGTERM);
    CHECK(wait_worker(worker_pid, 60000) == 0);
    E.nworkers = 0;
    kill_extra();
    cleanup();
    printf("remote_e2e: ok\n");
    return 0;
}
