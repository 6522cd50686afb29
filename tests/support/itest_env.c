/* itest_env: the broker integration tests' shared harness (itest_env.h). */
#include "itest_env.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

env E;

void cleanup(void)
{
    if (E.broker > 0) {
        kill(E.broker, SIGKILL);
        waitpid(E.broker, NULL, 0);
    }
    for (int i = 0; i < E.nothers; i++)
        if (E.others[i]->pid > 0) {
            kill(E.others[i]->pid, SIGKILL);
            waitpid(E.others[i]->pid, NULL, 0);
            E.others[i]->pid = 0;
        }
    for (int i = 0; i < E.nworkers; i++)
        if (E.workers[i] > 0) {
            kill(E.workers[i], SIGKILL);
            waitpid(E.workers[i], NULL, 0);
        }
    if (E.db)
        PQfinish(E.db);
    if (E.pg) {
        sm_err err;
        sm_pgembed_stop(&E.pg, &err);
    } else if (E.dbname[0]) {
        PGconn *c = PQconnectdb(E.admin_url);
        char sql[128];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", E.dbname);
        PQclear(PQexec(c, sql));
        PQfinish(c);
    }
    if (E.dir[0] && !getenv("SM_KEEP")) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", E.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", E.dir);
    }
}

void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "tail -n 30 %s/broker.log 1>&2", E.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "(no broker log)\n");
    snprintf(cmd, sizeof cmd, "test -f %s/worker.log && tail -n 30 %s/worker.log 1>&2", E.dir,
             E.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "(no worker log)\n");
    for (int i = 0; i < E.nothers; i++) {
        snprintf(cmd, sizeof cmd, "echo '--- %s:' 1>&2; tail -n 30 %s 1>&2", E.others[i]->name,
                 E.others[i]->log);
        if (system(cmd) != 0)
            fprintf(stderr, "(no log of %s)\n", E.others[i]->name);
    }
    cleanup();
    exit(1);
}

long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

long long q_int(const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(E.db, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
        fail("query failed: %s: %s", sql, PQerrorMessage(E.db));
    long long v = PQgetisnull(r, 0, 0) ? -1 : atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

/* Waits until the integer query equals want. */
void wait_for(long long want, long timeout_ms, const char *sql)
{
    long end = now_ms() + timeout_ms;
    long long v = -2;
    while (now_ms() < end) {
        v = q_int("%s", sql);
        if (v == want)
            return;
        sleep_ms(50);
    }
    fail("waited %ld ms for %s = %lld, have %lld", timeout_ms, sql, want, v);
}

/* A broker configuration at path: the endpoints, the test defaults and extra. */
static void write_config_file(const char *path, const char *cep, const char *wep, const char *eep,
                              const char *extra)
{
    static const char *const defaults[] = {
        "  heartbeat_ms: 100\n",    "  heartbeat_timeout_ms: 1000\n", "  lease_ms: 3000\n",
        "  retry_backoff_ms: 50\n", "  max_body_bytes: 8192\n",       "  group_commit_us: 1000\n"};
    FILE *fp = fopen(path, "w");
    CHECK(fp);
    fprintf(fp,
            "broker:\n"
            "  client_endpoint: \"%s\"\n"
            "  worker_endpoint: \"%s\"\n"
            "  event_endpoint: \"%s\"\n",
            cep, wep, eep);
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) { /* unless extra has it */
        size_t key = strcspn(defaults[i], ":") + 1;                     /* "  name:" */
        bool overridden = false;
        for (const char *e = extra; e && *e; e += strcspn(e, "\n") + (e[strcspn(e, "\n")] != 0))
            if (!strncmp(e, defaults[i], key))
                overridden = true;
        if (!overridden)
            fputs(defaults[i], fp);
    }
    fprintf(fp,
            "%s"
            "http:\n  enabled: false\n"
            "logging:\n  level: info\n",
            extra ? extra : "");
    fclose(fp);
}

void write_config(const char *extra)
{
    snprintf(E.cfg, sizeof E.cfg, "%s/stepmark.yaml", E.dir);
    write_config_file(E.cfg, E.cep, E.wep, E.eep, extra);
}

void setup(const char *name, const char *extra)
{
    snprintf(E.dir, sizeof E.dir, "/tmp/smb-%s-XXXXXX", name);
    CHECKM(mkdtemp(E.dir), "mkdtemp: %s", strerror(errno));
    chmod(E.dir, 0777);
    snprintf(E.cep, sizeof E.cep, "ipc://%s/client", E.dir);
    snprintf(E.wep, sizeof E.wep, "ipc://%s/worker", E.dir);
    snprintf(E.eep, sizeof E.eep, "ipc://%s/events", E.dir);
    const char *fixture = getenv("STEPMARK_DATABASE_URL");
    CHECKM(fixture && *fixture, "STEPMARK_DATABASE_URL is not set (run through ctest)");
    snprintf(E.admin_url, sizeof E.admin_url, "%s", fixture);
    snprintf(E.dbname, sizeof E.dbname, "it_%s_%d", name, (int)getpid());
    const char *kw = strstr(fixture, "dbname=");
    const char *slash = strstr(fixture, "///");
    if (kw) { /* key=value form: replace the dbname value */
        const char *end = kw + 7 + strcspn(kw + 7, " ");
        snprintf(E.url, sizeof E.url, "%.*sdbname=%s%s", (int)(kw - fixture), fixture, E.dbname,
                 end);
    } else { /* postgresql:///NAME?params -> postgresql:///it_x?params */
        CHECKM(slash, "unexpected database URL form %s", fixture);
        const char *q = strchr(slash, '?');
        snprintf(E.url, sizeof E.url, "%.*s///%s%s", (int)(slash - fixture), fixture, E.dbname,
                 q ? q : "");
    }
    PGconn *c = PQconnectdb(E.admin_url);
    CHECKM(PQstatus(c) == CONNECTION_OK, "cannot connect: %s", PQerrorMessage(c));
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", E.dbname);
    PGresult *r = PQexec(c, sql);
    CHECKM(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    setenv("STEPMARK_DATABASE_URL", E.url, 1);
    write_config(extra);
}

void connect_db(void)
{
    if (E.db)
        PQfinish(E.db);
    E.db = PQconnectdb(E.url);
    CHECKM(PQstatus(E.db) == CONNECTION_OK, "cannot connect: %s", PQerrorMessage(E.db));
}

sm_client *client_with(const char *server, const char *secret, int timeout_ms, int retries)
{
    sm_client_opts o = {.endpoint = E.cep,
                        .server_key = server,
                        .secret_key = secret,
                        .timeout_ms = timeout_ms,
                        .retries = retries};
    sm_client *c;
    sm_err err;
    CHECKM(sm_client_new(NULL, &o, &c, &err) == SM_OK, "client: %s", err.msg);
    return c;
}

sm_client *client(void)
{
    return client_with(NULL, NULL, 3000, 3);
}

pid_t spawn(const char *log, char *const argv[])
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        FILE *fp = fopen(log, "a");
        if (fp) {
            dup2(fileno(fp), 1);
            dup2(fileno(fp), 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

int cli_run(const char *first, ...)
{
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)E.cli;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && n < 28; a = va_arg(ap, const char *))
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n++] = "--config";
    argv[n++] = E.cfg;
    argv[n] = NULL;
    char log[128];
    snprintf(log, sizeof log, "%s/cli.log", E.dir);
    unlink(log);
    pid_t pid = spawn(log, argv);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    FILE *fp = fopen(log, "r");
    CHECK(fp);
    size_t len = fread(E.cli_out, 1, sizeof E.cli_out - 1, fp);
    fclose(fp);
    E.cli_out[len] = '\0';
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

void start_broker(void)
{
    char log[128];
    snprintf(log, sizeof log, "%s/broker.log", E.dir);
    char *argv[] = {(char *)E.stepmarkd, "--config", E.cfg, NULL};
    E.broker = spawn(log, argv);
    sm_client *c = client_with(NULL, NULL, 200, 0);
    long end = now_ms() + 20000;
    for (;;) {
        sm_err err;
        if (sm_client_call(c, "PING", NULL, NULL, &err) == SM_OK)
            break;
        int st;
        if (waitpid(E.broker, &st, WNOHANG) == E.broker) {
            E.broker = 0;
            fail("stepmarkd exited with status %d", WEXITSTATUS(st));
        }
        CHECKM(now_ms() < end, "stepmarkd did not answer PING: %s", err.msg);
        sm_client_free(&c);
        c = client_with(NULL, NULL, 200, 0);
    }
    sm_client_free(&c);
    if (!E.db)
        connect_db();
}

/* Stops the broker with sig and returns its exit status. */
int stop_broker(int sig)
{
    kill(E.broker, sig);
    int st = 0;
    waitpid(E.broker, &st, 0);
    E.broker = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* sm_testworker on the worker endpoint wep with the arguments first, ap (NULL-terminated). */
static pid_t start_worker_va(const char *wep, const char *first, va_list ap)
{
    char log[128];
    snprintf(log, sizeof log, "%s/worker.log", E.dir);
    char wl[128];
    snprintf(wl, sizeof wl, "%s/done.log", E.dir);
    char *argv[24] = {(char *)E.worker, "--endpoint", (char *)wep, "--log", wl};
    int n = 5;
    for (const char *a = first; a && n < 22; a = va_arg(ap, const char *))
        argv[n++] = (char *)a;
    argv[n] = NULL;
    CHECKM(E.nworkers < (int)(sizeof E.workers / sizeof E.workers[0]), "too many workers");
    pid_t pid = spawn(log, argv);
    E.workers[E.nworkers++] = pid;
    return pid;
}

/* Starts sm_testworker with the extra arguments given (NULL-terminated). */
pid_t start_worker(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    pid_t pid = start_worker_va(E.wep, first, ap);
    va_end(ap);
    return pid;
}

pid_t start_worker_at(const char *wep, const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    pid_t pid = start_worker_va(wep, first, ap);
    va_end(ap);
    return pid;
}

void broker_setup(itest_broker *b, const char *name, const char *extra)
{
    CHECKM(E.nothers < (int)(sizeof E.others / sizeof E.others[0]), "too many brokers");
    memset(b, 0, sizeof *b);
    snprintf(b->name, sizeof b->name, "%s", name);
    snprintf(b->cfg, sizeof b->cfg, "%s/%s.yaml", E.dir, name);
    snprintf(b->log, sizeof b->log, "%s/%s.log", E.dir, name);
    snprintf(b->cep, sizeof b->cep, "ipc://%s/%s-client", E.dir, name);
    snprintf(b->wep, sizeof b->wep, "ipc://%s/%s-worker", E.dir, name);
    snprintf(b->eep, sizeof b->eep, "ipc://%s/%s-events", E.dir, name);
    write_config_file(b->cfg, b->cep, b->wep, b->eep, extra);
    E.others[E.nothers++] = b;
}

sm_client *client_at(const char *cep)
{
    sm_client_opts o = {.endpoint = cep, .timeout_ms = 3000, .retries = 3};
    sm_client *c;
    sm_err err;
    CHECKM(sm_client_new(NULL, &o, &c, &err) == SM_OK, "client: %s", err.msg);
    return c;
}

void broker_spawn(itest_broker *b)
{
    char *argv[] = {(char *)E.stepmarkd, "--config", b->cfg, NULL};
    b->pid = spawn(b->log, argv);
}

void broker_start(itest_broker *b)
{
    broker_spawn(b);
    broker_wait(b);
}

void broker_wait(itest_broker *b)
{
    long end = now_ms() + 20000;
    for (;;) {
        sm_client_opts o = {.endpoint = b->cep, .timeout_ms = 200, .retries = 0};
        sm_client *c;
        sm_err err;
        CHECKM(sm_client_new(NULL, &o, &c, &err) == SM_OK, "client: %s", err.msg);
        sm_code rc = sm_client_call(c, "PING", NULL, NULL, &err);
        sm_client_free(&c);
        if (rc == SM_OK)
            break;
        int st;
        if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
            b->pid = 0;
            fail("stepmarkd %s exited with status %d", b->name, WEXITSTATUS(st));
        }
        CHECKM(now_ms() < end, "stepmarkd %s did not answer PING: %s", b->name, err.msg);
    }
    if (!E.db)
        connect_db();
}

int broker_stop(itest_broker *b, int sig)
{
    kill(b->pid, sig);
    int st = 0;
    waitpid(b->pid, &st, 0);
    b->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int wait_worker(pid_t pid, long timeout_ms)
{
    long end = now_ms() + timeout_ms;
    while (now_ms() < end) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            for (int i = 0; i < E.nworkers; i++)
                if (E.workers[i] == pid)
                    E.workers[i] = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        sleep_ms(20);
    }
    fail("worker %d did not exit within %ld ms", (int)pid, timeout_ms);
}

json_t *call_ok(sm_client *c, const char *cmd, json_t *body)
{
    json_t *reply;
    sm_err err;
    sm_code rc = sm_client_call(c, cmd, body, &reply, &err);
    json_decref(body);
    CHECKM(rc == SM_OK, "%s failed: %s %s", cmd, sm_code_name(rc), err.msg);
    return reply;
}

sm_code call_err(sm_client *c, const char *cmd, json_t *body, char *msg)
{
    json_t *reply;
    sm_err err;
    sm_code rc = sm_client_call(c, cmd, body, &reply, &err);
    json_decref(body);
    json_decref(reply);
    if (msg)
        snprintf(msg, 256, "%s", err.msg);
    return rc;
}

void make_assignment(sm_client *c, const char *course, const char *code, const char *kind,
                     const char *language)
{
    json_decref(call_ok(c, "COURSE_PUT", json_pack("{s:s, s:s}", "code", course, "title", "T")));
    json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:s, s:f}", "course", course, "code", code, "kind",
                          kind, "statement", "Show that 1 + 1 = 2.", "rubric", "1 point per step",
                          "max_score", 4.0);
    if (language)
        json_object_set_new(b, "language", json_string(language));
    json_decref(call_ok(c, "ASSIGNMENT_CREATE", b));
}

long long submit(sm_client *c, const char *key, const char *priority, bool *dup)
{
    json_t *r = call_ok(c, "SUBMIT",
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "course", "CS101", "assignment",
                                  "hw1", "student_ref", "s-1", "idempotency_key", key, "content",
                                  "1 + 1 = 2 because ...", "priority", priority));
    long long id = json_integer_value(json_object_get(r, "submission_id"));
    if (dup)
        *dup = json_is_true(json_object_get(r, "duplicate"));
    json_decref(r);
    CHECK(id > 0);
    return id;
}

void *sub_socket(void *ctx, const char *prefix)
{
    void *s = zmq_socket(ctx, ZMQ_SUB);
    zmq_setsockopt(s, ZMQ_SUBSCRIBE, prefix, strlen(prefix));
    zmq_connect(s, E.eep);
    return s;
}

json_t *next_event(void *s, long timeout_ms, char *topic)
{
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, timeout_ms) != 1)
        return NULL;
    sm_msg m;
    sm_err err;
    if (sm_msg_recv(s, &m, 0, &err) != SM_OK)
        return NULL;
    CHECK(m.total == 3);
    sm_frame t = sm_msg_frame(&m, 0), v = sm_msg_frame(&m, 1), b = sm_msg_frame(&m, 2);
    CHECK(v.size == 4 && !memcmp(v.data, "SME1", 4));
    snprintf(topic, 256, "%.*s", (int)t.size, (const char *)t.data);
    json_t *j = json_loadb((const char *)b.data, b.size, 0, NULL);
    sm_msg_close(&m);
    return j;
}

json_t *worker_recv(void *s, const char *want)
{
    return worker_recv_skipping(s, want, false);
}

json_t *worker_recv_skipping(void *s, const char *want, bool skip_jobs)
{
    static const char *const cmds[] = {"JOB",    "HEARTBEAT",  "ACK", "ERROR",
                                       "CANCEL", "DISCONNECT", NULL};
    long end = now_ms() + 10000;
    while (now_ms() < end) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 200) != 1)
            continue;
        sm_msg m;
        sm_err err;
        CHECK(sm_msg_recv(s, &m, 0, &err) == SM_OK);
        sm_frame f[SM_PROTO_MAX_FRAMES];
        for (int i = 0; i < m.n; i++)
            f[i] = sm_msg_frame(&m, i);
        sm_request r;
        CHECK(sm_proto_parse(SM_PROTO_WORKER, cmds, f, m.n, m.total, 1 << 24, &r, &err) == SM_OK);
        sm_msg_close(&m);
        if (!strcmp(r.command, want)) {
            json_t *b = r.body;
            r.body = NULL;
            sm_request_clear(&r);
            return b;
        }
        CHECKM(!strcmp(r.command, "HEARTBEAT") || (skip_jobs && !strcmp(r.command, "JOB")),
               "got %s while waiting for %s", r.command, want);
        sm_request_clear(&r);
    }
    fail("no %s within 10 s", want);
}

void worker_send(void *s, const char *cmd, json_t *body)
{
    sm_err err;
    CHECK(sm_proto_send_msg(s, NULL, SM_PROTO_WORKER, cmd, (const unsigned char *)"r", 1, body,
                            &err) == SM_OK);
    json_decref(body);
}

int free_port(void)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_PUB);
    char ep[128] = "";
    size_t len = sizeof ep;
    CHECK(zmq_bind(s, "tcp://127.0.0.1:*") == 0);
    zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &len);
    zmq_close(s);
    zmq_ctx_term(ctx);
    const char *colon = strrchr(ep, ':');
    CHECK(colon);
    return atoi(colon + 1);
}

int itest_main(int argc, char **argv, const char *prog, const itest_case *cases, size_t n)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s CASE STEPMARKD TESTWORKER STEPMARK\n", prog);
        return 2;
    }
    E.stepmarkd = argv[2];
    E.worker = argv[3];
    E.cli = argv[4];
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(cases[i].name, argv[1])) {
            cases[i].fn();
            cleanup();
            printf("PASS %s\n", argv[1]);
            return 0;
        }
    fprintf(stderr, "unknown case %s\n", argv[1]);
    return 2;
}
