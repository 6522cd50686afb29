/* broker_itest: integration tests of stepmarkd with real PostgreSQL and real ZeroMQ sockets.
 * Usage: broker_itest CASE STEPMARKD TESTWORKER STEPMARK. Each case creates its own database in
 * the cluster of $STEPMARK_DATABASE_URL (the ctest fixture), a temporary folder for ipc://
 * endpoints and logs, runs the broker (and sm_testworker processes) and checks the rows. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "sm_client.h"
#include "sm_curve.h"
#include "sm_pgembed.h"
#include "sm_proto.h"
#include "itest_env.h"

/* ---- cases ---- */

static void case_submit(void)
{
    setup("submit", NULL);
    start_broker();
    sm_client *c = client();
    make_assignment(c, "CS101", "hw1", "proof", NULL);
    bool dup = true;
    long long id = submit(c, "k-1", "batch", &dup);
    CHECK(!dup);
    CHECK(q_int("SELECT count(*) FROM submission WHERE id = %lld AND idempotency_key = 'k-1'"
                " AND content LIKE '1 + 1 = 2%%' AND student_ref = 's-1'",
                id) == 1);
    CHECK(q_int("SELECT count(*) FROM job WHERE submission_id = %lld AND state = 'queued'"
                " AND priority = 1 AND attempts = 0 AND max_attempts = 3",
                id) == 1);
    json_t *st = call_ok(c, "STATUS", json_pack("{s:I}", "submission_id", (json_int_t)id));
    CHECK(!strcmp(json_string_value(json_object_get(st, "state")), "queued"));
    CHECK(!strcmp(json_string_value(json_object_get(st, "priority")), "batch"));
    json_decref(st);
    st = call_ok(c, "STATUS", json_pack("{s:s}", "idempotency_key", "k-1"));
    CHECK(json_integer_value(json_object_get(st, "submission_id")) == id);
    json_decref(st);
    CHECK(call_err(c, "RESULT", json_pack("{s:I}", "submission_id", (json_int_t)id), NULL) ==
          SM_ESTATE);
    CHECK(call_err(c, "STATUS", json_pack("{s:I}", "submission_id", (json_int_t)99999), NULL) ==
          SM_ENOTFOUND);
    /* many at once through one socket: one group commit, every one ACKed with its own id */
    for (int i = 0; i < 100; i++) {
        char key[32], rid[16];
        snprintf(key, sizeof key, "many-%d", i);
        snprintf(rid, sizeof rid, "%d", i);
        json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:s}", "course", "CS101", "assignment", "hw1",
                              "student_ref", key, "idempotency_key", key, "content", "x");
        sm_err err;
        CHECK(sm_client_send(c, "SUBMIT", rid, b, &err) == SM_OK);
        json_decref(b);
    }
    for (int i = 0; i < 100; i++) {
        sm_client_reply r;
        sm_err err;
        CHECKM(sm_client_recv(c, 5000, &r, &err) == SM_OK, "no ACK: %s", err.msg);
        CHECK(r.ok);
        long long sid = json_integer_value(json_object_get(r.body, "submission_id"));
        CHECK(q_int("SELECT count(*) FROM submission WHERE id = %lld AND"
                    " idempotency_key = 'many-%s'",
                    sid, r.id) == 1);
        json_decref(r.body);
    }
    CHECK(q_int("SELECT count(*) FROM job") == 101);
    sm_client_free(&c);
    CHECK(stop_broker(SIGTERM) == 0);
}

static void case_idempotent(void)
{
    setup("idem", NULL);
    start_broker();
    sm_client *c = client();
    make_assignment(c, "CS101", "hw1", "proof", NULL);
    bool dup;
    long long a = submit(c, "same", "interactive", &dup);
    CHECK(!dup);
    long long b = submit(c, "same", "interactive", &dup);
    CHECK(dup && a == b);
    /* the same key several times in one group commit */
    for (int i = 0; i < 5; i++) {
        char rid[8];
        snprintf(rid, sizeof rid, "%d", i);
        json_t *body =
            json_pack("{s:s, s:s, s:s, s:s, s:s}", "course", "CS101", "assignment", "hw1",
                      "student_ref", "s", "idempotency_key", "burst", "content", "y");
        sm_err err;
        CHECK(sm_client_send(c, "SUBMIT", rid, body, &err) == SM_OK);
        json_decref(body);
    }
    long long first = 0;
    int fresh = 0;
    for (int i = 0; i < 5; i++) {
        sm_client_reply r;
        sm_err err;
        CHECK(sm_client_recv(c, 5000, &r, &err) == SM_OK && r.ok);
        long long id = json_integer_value(json_object_get(r.body, "submission_id"));
        fresh += !json_is_true(json_object_get(r.body, "duplicate"));
        if (!first)
            first = id;
        CHECK(id == first);
        json_decref(r.body);
    }
    CHECK(fresh == 1);
    CHECK(q_int("SELECT count(*) FROM submission") == 2);
    CHECK(q_int("SELECT count(*) FROM job") == 2);
    /* after a broker restart too */
    CHECK(stop_broker(SIGTERM) == 0);
    start_broker();
    sm_client_free(&c);
    c = client();
    CHECK(submit(c, "same", "interactive", &dup) == a && dup);
    CHECK(q_int("SELECT count(*) FROM submission") == 2);
    sm_client_free(&c);
}

/* Sends raw frames on a DEALER and returns the ERROR code name ("" for OK). */
static void raw_expect(void *s, int n, const char *const *frames, const size_t *lens,
                       const char *want)
{
    for (int i = 0; i < n; i++)
        zmq_send(s, frames[i], lens ? lens[i] : strlen(frames[i]), i + 1 < n ? ZMQ_SNDMORE : 0);
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    CHECKM(zmq_poll(&it, 1, 5000) == 1, "no reply (want %s)", want);
    sm_msg m;
    sm_err err;
    CHECK(sm_msg_recv(s, &m, 0, &err) == SM_OK);
    CHECKM(m.total == 5, "reply has %d frames", m.total);
    sm_frame cmd = sm_msg_frame(&m, 2), body = sm_msg_frame(&m, 4);
    json_t *j = json_loadb((const char *)body.data, body.size, 0, NULL);
    const char *code = json_string_value(json_object_get(j, "code"));
    if (!strcmp(want, "OK"))
        CHECKM(cmd.size == 2 && !memcmp(cmd.data, "OK", 2), "want OK, got %s", code);
    else
        CHECKM(code && !strcmp(code, want), "want %s, got %s (%.*s)", want, code ? code : "OK",
               (int)body.size, (const char *)body.data);
    json_decref(j);
    sm_msg_close(&m);
}

/* Malformed client requests, each answered with its error code on the same socket. */
static void malformed_client_requests(void *s, const char *good)
{
    {
        const char *f[] = {"", "SMC1", "SUBMIT"};
        raw_expect(s, 3, f, NULL, "EPROTO");
    }
    {
        const char *f[] = {"", "SMC1", "SUBMIT", "1", good, "extra"};
        raw_expect(s, 6, f, NULL, "EPROTO");
    }
    {
        const char *f[] = {"x", "SMC1", "SUBMIT", "1", good};
        raw_expect(s, 5, f, NULL, "EPROTO");
    }
    {
        const char *f[] = {"", "SMC9", "SUBMIT", "1", good};
        raw_expect(s, 5, f, NULL, "EUNSUPPORTED");
    }
    {
        const char *f[] = {"", "SMC1", "DROP_TABLES", "1", good};
        raw_expect(s, 5, f, NULL, "EUNSUPPORTED");
    }
    {
        const char *f[] = {"", "SMC1", "SUBMIT", "1", "{\"course\": "};
        raw_expect(s, 5, f, NULL, "EFORMAT");
    }
    {
        const char *f[] = {"", "SMC1", "SUBMIT", "1", "[]"};
        raw_expect(s, 5, f, NULL, "EFORMAT");
    }
    {
        const char *bad = "{\"course\":\"CS101\",\"assignment\":\"hw1\",\"student_ref\":\"s\","
                          "\"idempotency_key\":\"k\",\"content\":\"\xc3\x28\"}";
        const char *f[] = {"", "SMC1", "SUBMIT", "1", bad};
        raw_expect(s, 5, f, NULL, "EINVAL");
    }
    {
        static char big[10000];
        int n = snprintf(big, sizeof big,
                         "{\"course\":\"CS101\",\"assignment\":\"hw1\","
                         "\"student_ref\":\"s\",\"idempotency_key\":\"k\","
                         "\"content\":\"");
        memset(big + n, 'a', 9000);
        strcpy(big + n + 9000, "\"}");
        const char *f[] = {"", "SMC1", "SUBMIT", "1", big};
        raw_expect(s, 5, f, NULL, "ELIMIT");
    }
    {
        const char *b = "{\"course\":\"CS101\",\"assignment\":\"nope\",\"student_ref\":\"s\","
                        "\"idempotency_key\":\"k\",\"content\":\"c\"}";
        const char *f[] = {"", "SMC1", "SUBMIT", "1", b};
        raw_expect(s, 5, f, NULL, "ENOTFOUND");
    }
    {
        const char *b = "{\"course\":\"CS101\",\"assignment\":\"hw1\",\"student_ref\":\"s\","
                        "\"content\":\"c\"}";
        const char *f[] = {"", "SMC1", "SUBMIT", "1", b};
        raw_expect(s, 5, f, NULL, "EINVAL"); /* no idempotency key */
    }
    {
        const char *b = "{\"course\":\"CS101\",\"assignment\":\"hw1\",\"student_ref\":\"s\","
                        "\"idempotency_key\":\"k\",\"content\":\"c\",\"colour\":\"red\"}";
        const char *f[] = {"", "SMC1", "SUBMIT", "1", b};
        raw_expect(s, 5, f, NULL, "EINVAL"); /* unknown field */
    }
    {
        const char *b = "{\"course\":\"CS101\",\"assignment\":\"hw1\",\"student_ref\":\"s\","
                        "\"idempotency_key\":\"k\",\"content\":\"c\",\"kind\":\"code\"}";
        const char *f[] = {"", "SMC1", "SUBMIT", "1", b};
        raw_expect(s, 5, f, NULL, "EINVAL"); /* kind does not match */
    }
    {
        const char *b = "{\"course\":\"CS101\",\"assignment\":\"prog\",\"student_ref\":\"s\","
                        "\"idempotency_key\":\"k\",\"content\":\"int main\"}";
        const char *f[] = {"", "SMC1", "SUBMIT", "1", b};
        raw_expect(s, 5, f, NULL, "EINVAL"); /* code without a language */
    }
    {
        const char *b = "{\"course\":\"CS101\",\"assignment\":\"hw1\",\"student_ref\":\"s\","
                        "\"idempotency_key\":\"k\",\"content\":\"c\",\"priority\":\"urgent\"}";
        const char *f[] = {"", "SMC1", "SUBMIT", "1", b};
        raw_expect(s, 5, f, NULL, "EINVAL");
    }
    {
        const char *b = "{\"course\":\"CS101\",\"assignment\":\"hw1\",\"student_ref\":42,"
                        "\"idempotency_key\":\"k\",\"content\":\"c\"}";
        const char *f[] = {"", "SMC1", "SUBMIT", "1", b};
        raw_expect(s, 5, f, NULL, "EINVAL");
    }
    {
        const char *f[] = {"", "SMC1", "STATUS", "1", "{\"submission_id\":\"x\"}"};
        raw_expect(s, 5, f, NULL, "EINVAL");
    }
}

static void case_malformed(void)
{
    setup("malformed", NULL);
    start_broker();
    sm_client *c = client();
    make_assignment(c, "CS101", "hw1", "proof", NULL);
    make_assignment(c, "CS101", "prog", "code", NULL);
    sm_client_free(&c);
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    zmq_connect(s, E.cep);
    const char *good = "{\"course\":\"CS101\",\"assignment\":\"hw1\",\"student_ref\":\"s\","
                       "\"idempotency_key\":\"k\",\"content\":\"c\"}";
    malformed_client_requests(s, good);
    /* the worker endpoint checks the same way */
    void *w = zmq_socket(ctx, ZMQ_DEALER);
    zmq_connect(w, E.wep);
    {
        const char *f[] = {"", "SMW1", "READY", "", "{\"slots\": 0}"};
        raw_expect(w, 5, f, NULL, "EINVAL");
    }
    {
        const char *f[] = {"", "SMW1", "RESULT", "", "{\"job_id\": \"five\"}"};
        raw_expect(w, 5, f, NULL, "EINVAL");
    }
    { /* a well-formed RESULT from a peer that holds no lease (it never sent READY) */
        const char *f[] = {"", "SMW1", "RESULT", "", "{\"job_id\": 5, \"score\": \"high\"}"};
        raw_expect(w, 5, f, NULL, "ESTATE");
    }
    {
        const char *f[] = {"", "SMC1", "READY", "", "{}"};
        raw_expect(w, 5, f, NULL, "EUNSUPPORTED");
    }
    /* a well-formed request still works on the same socket */
    {
        const char *f[] = {"", "SMC1", "SUBMIT", "1", good};
        raw_expect(s, 5, f, NULL, "OK");
    }
    zmq_close(s);
    zmq_close(w);
    zmq_ctx_term(ctx);
    CHECK(q_int("SELECT count(*) FROM submission") == 1);
    CHECK(q_int("SELECT count(*) FROM job") == 1);
    CHECK(q_int("SELECT count(*) FROM grading") == 0);
    CHECK(stop_broker(SIGTERM) == 0);
}

static void case_assignment(void)
{
    setup("assign", NULL);
    start_broker();
    sm_client *c = client();
    make_assignment(c, "CS101", "hw1", "math", NULL);
    char msg[256];
    CHECK(call_err(c, "ASSIGNMENT_CREATE",
                   json_pack("{s:s, s:s, s:s, s:s}", "course", "CS101", "code", "hw1", "kind",
                             "math", "statement", "again"),
                   msg) == SM_ESTATE);
    CHECK(call_err(c, "ASSIGNMENT_CREATE",
                   json_pack("{s:s, s:s, s:s, s:s}", "course", "NOPE", "code", "hw1", "kind",
                             "math", "statement", "s"),
                   msg) == SM_ENOTFOUND);
    CHECK(call_err(c, "ASSIGNMENT_CREATE",
                   json_pack("{s:s, s:s, s:s, s:s}", "course", "CS101", "code", "hw2", "kind",
                             "essay", "statement", "s"),
                   msg) == SM_EINVAL);
    CHECK(call_err(c, "ASSIGNMENT_CREATE",
                   json_pack("{s:s, s:s, s:s, s:s, s:{s:f}}", "course", "CS101", "code", "hw2",
                             "kind", "math", "statement", "s", "sampling", "temperature", 9.0),
                   msg) == SM_EINVAL);
    CHECK(call_err(c, "ASSIGNMENT_UPDATE",
                   json_pack("{s:s, s:s, s:s}", "course", "CS101", "code", "zzz", "title", "t"),
                   msg) == SM_ENOTFOUND);
    json_decref(call_ok(c, "ASSIGNMENT_UPDATE",
                        json_pack("{s:s, s:s, s:s, s:s, s:[{s:s, s:s, s:s}], s:{s:f, s:i}}",
                                  "course", "CS101", "code", "hw1", "title", "Week 1", "answer_key",
                                  "2", "tests", "name", "t1", "input", "1 1", "expected_output",
                                  "2", "sampling", "temperature", 0.6, "samples", 3)));
    json_t *a =
        call_ok(c, "ASSIGNMENT_GET", json_pack("{s:s, s:s}", "course", "CS101", "code", "hw1"));
    CHECK(!strcmp(json_string_value(json_object_get(a, "title")), "Week 1"));
    CHECK(!strcmp(json_string_value(json_object_get(a, "answer_key")), "2"));
    CHECK(!strcmp(json_string_value(json_object_get(a, "kind")), "math")); /* untouched */
    CHECK(!strcmp(json_string_value(json_object_get(a, "statement")), "Show that 1 + 1 = 2."));
    CHECK(json_array_size(json_object_get(a, "tests")) == 1);
    CHECK(json_integer_value(json_object_get(json_object_get(a, "sampling"), "samples")) == 3);
    json_decref(a);
    CHECK(q_int("SELECT count(*) FROM audit_log WHERE action LIKE 'assignment %%'") == 2);
    /* course update keeps one row */
    json_t *r = call_ok(c, "COURSE_PUT", json_pack("{s:s, s:s}", "code", "CS101", "title", "New"));
    CHECK(json_is_false(json_object_get(r, "created")));
    json_decref(r);
    CHECK(q_int("SELECT count(*) FROM course WHERE title = 'New'") == 1);
    CHECK(call_err(c, "COURSE_PUT", json_pack("{s:s}", "code", "bad code/1"), msg) == SM_EINVAL);
    /* the JOB carries the assignment as updated */
    long long id = submit(c, "k", "interactive", NULL);
    (void)id;
    sm_client_free(&c);
    pid_t w = start_worker("--results", "1", NULL, NULL, NULL, NULL);
    CHECK(wait_worker(w, 20000) == 0);
    CHECK(q_int("SELECT count(*) FROM grading") == 1);
    CHECK(stop_broker(SIGTERM) == 0);
}

static void case_priority(void)
{
    setup("prio", NULL);
    start_broker();
    sm_client *c = client();
    make_assignment(c, "CS101", "hw1", "proof", NULL);
    for (int i = 0; i < 4; i++) {
        char k[16];
        snprintf(k, sizeof k, "b%d", i);
        submit(c, k, "batch", NULL);
    }
    submit(c, "i0", "interactive", NULL);
    submit(c, "i1", "interactive", NULL);
    sm_client_free(&c);
    pid_t w = start_worker("--results", "6", "--work-ms", "10", NULL, NULL);
    CHECK(wait_worker(w, 30000) == 0);
    char path[128], line[128];
    snprintf(path, sizeof path, "%s/done.log", E.dir);
    FILE *fp = fopen(path, "r");
    CHECK(fp);
    for (int i = 0; i < 6 && fgets(line, sizeof line, fp); i++)
        CHECKM(strstr(line, i < 2 ? "interactive" : "batch"), "line %d: %s", i, line);
    fclose(fp);
    /* and batch jobs in age order */
    CHECK(q_int("SELECT count(*) FROM grading") == 6);
    CHECK(stop_broker(SIGTERM) == 0);
}

static void case_worker_dies(void)
{
    setup("dies", NULL);
    start_broker();
    sm_client *c = client();
    make_assignment(c, "CS101", "hw1", "proof", NULL);
    long long id = submit(c, "k", "interactive", NULL);
    sm_client_free(&c);
    /* a worker that dies before any PROGRESS: the job goes back without costing an attempt */
    pid_t a = start_worker("--die-after", "1", "--name", "doomed", NULL, NULL);
    CHECK(wait_worker(a, 10000) == 3);
    wait_for(1, 10000,
             "SELECT count(*) FROM job WHERE state = 'queued' AND attempts = 0"
             " AND unstarted_losses = 1 AND last_error LIKE 'worker doomed lost%"
             "attempt not charged)'");
    /* one that dies after reporting PROGRESS: the attempt counts */
    a = start_worker("--die-after", "1", "--die-progress", "--name", "doomed2", NULL, NULL);
    CHECK(wait_worker(a, 10000) == 3);
    wait_for(1, 10000,
             "SELECT count(*) FROM job WHERE state = 'queued' AND attempts = 1"
             " AND last_error LIKE 'worker doomed2 lost (silent for % ms)'");
    /* another worker completes the job */
    pid_t b = start_worker("--results", "1", "--name", "healthy", NULL, NULL);
    CHECK(wait_worker(b, 20000) == 0);
    CHECK(q_int("SELECT count(*) FROM grading WHERE submission_id = %lld AND worker = 'healthy'",
                id) == 1);
    CHECK(q_int("SELECT attempts FROM job WHERE submission_id = %lld AND state = 'done'", id) == 2);
    CHECK(stop_broker(SIGTERM) == 0);
}

static void case_retry_dead(void)
{
    setup("dead", "  max_attempts: 2\n");
    start_broker();
    void *ctx = zmq_ctx_new();
    void *sub = sub_socket(ctx, "CS101/");
    sleep_ms(200); /* let the subscription reach the broker */
    sm_client *c = client();
    make_assignment(c, "CS101", "hw1", "proof", NULL);
    long long id = submit(c, "k", "interactive", NULL);
    pid_t w = start_worker("--fail", NULL, NULL, NULL, NULL, NULL);
    wait_for(1, 15000,
             "SELECT count(*) FROM job WHERE state = 'dead' AND attempts = 2 AND"
             " last_error = 'test failure' AND finished_at IS NOT NULL");
    char topic[256];
    json_t *e = next_event(sub, 5000, topic);
    CHECKM(e, "no dead event");
    CHECKM(!strcmp(topic, "CS101/hw1/dead"), "topic %s", topic);
    CHECK(json_integer_value(json_object_get(e, "submission_id")) == id);
    json_decref(e);
    kill(w, SIGTERM);
    wait_worker(w, 5000);
    /* a FAIL that is not retryable is dead at once */
    long long id2 = submit(c, "k2", "interactive", NULL);
    w = start_worker("--fatal", NULL, NULL, NULL, NULL, NULL);
    wait_for(1, 15000, "SELECT count(*) FROM job WHERE state = 'dead' AND attempts = 1");
    json_t *st = call_ok(c, "STATUS", json_pack("{s:I}", "submission_id", (json_int_t)id2));
    CHECK(!strcmp(json_string_value(json_object_get(st, "state")), "dead"));
    CHECK(!strcmp(json_string_value(json_object_get(st, "last_error")), "test failure"));
    json_decref(st);
    CHECK(q_int("SELECT count(*) FROM grading") == 0);
    sm_client_free(&c);
    zmq_close(sub);
    zmq_ctx_term(ctx);
    CHECK(stop_broker(SIGTERM) == 0);
}

static void case_broker_sigkill(void)
{
    setup("sigkill", NULL);
    write_config("  lease_ms: 1500\n");
    /* lease_ms appears twice otherwise: rewrite without the default line */
    FILE *fp = fopen(E.cfg, "r");
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    buf[n] = 0;
    fclose(fp);
    char *l = strstr(buf, "  lease_ms: 3000\n");
    if (l)
        memmove(l, l + 17, strlen(l + 17) + 1);
    fp = fopen(E.cfg, "w");
    fputs(buf, fp);
    fclose(fp);
    start_broker();
    sm_client *c = client();
    make_assignment(c, "CS101", "hw1", "proof", NULL);
    /* 1: ACKed, not yet dispatched (no worker), then SIGKILL */
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof k, "a%d", i);
        submit(c, k, "batch", NULL);
    }
    CHECK(stop_broker(SIGKILL) == 128 + SIGKILL);
    start_broker();
    pid_t w = start_worker("--results", "20", "--slots", "4", "--work-ms", "5", NULL, NULL);
    CHECK(wait_worker(w, 30000) == 0);
    CHECK(q_int("SELECT count(*) FROM grading") == 20);
    CHECK(q_int("SELECT count(DISTINCT submission_id) FROM grading") == 20);
    CHECK(q_int("SELECT count(*) FROM job") == 20);
    CHECK(q_int("SELECT count(*) FROM job WHERE state = 'done' AND attempts = 1") == 20);
    /* 2: killed while jobs are leased to a busy worker: its results or the requeued jobs,
     * never both */
    for (int i = 0; i < 6; i++) {
        char k[16];
        snprintf(k, sizeof k, "b%d", i);
        submit(c, k, "batch", NULL);
    }
    w = start_worker("--results", "6", "--slots", "3", "--work-ms", "1200", NULL, NULL);
    wait_for(3, 10000, "SELECT count(*) FROM job WHERE state = 'leased'");
    CHECK(stop_broker(SIGKILL) == 128 + SIGKILL);
    sleep_ms(300);
    start_broker();
    CHECK(wait_worker(w, 40000) == 0);
    /* its six ACKs may include a duplicate of a requeued job: a second worker finishes up */
    start_worker("--slots", "3", NULL, NULL, NULL, NULL);
    wait_for(26, 20000, "SELECT count(*) FROM grading");
    sleep_ms(2000); /* leases expire, results resent: still one grading per job */
    CHECK(q_int("SELECT count(*) FROM grading") == 26);
    CHECK(q_int("SELECT count(DISTINCT submission_id) FROM grading") == 26);
    CHECK(q_int("SELECT count(*) FROM job WHERE state <> 'done'") == 0);
    sm_client_free(&c);
    CHECK(stop_broker(SIGTERM) == 0);
}

static void case_duplicate_result(void)
{
    setup("dupres", NULL);
    start_broker();
    void *ctx = zmq_ctx_new();
    void *sub = sub_socket(ctx, "CS101/hw1/");
    sleep_ms(200);
    sm_client *c = client();
    make_assignment(c, "CS101", "hw1", "proof", NULL);
    long long id = submit(c, "k", "interactive", NULL);
    pid_t w = start_worker("--duplicate", "--results", "1", NULL, NULL, NULL, NULL);
    CHECKM(wait_worker(w, 20000) == 0, "the second RESULT was not acknowledged as duplicate");
    CHECK(q_int("SELECT count(*) FROM grading") == 1);
    CHECK(q_int("SELECT count(*) FROM critique_step") == 2);
    CHECK(q_int("SELECT count(*) FROM reasoning_chain") == 1);
    CHECK(q_int("SELECT count(*) FROM check_result") == 1);
    char topic[256];
    json_t *e = next_event(sub, 5000, topic);
    CHECKM(e, "no result event");
    CHECKM(!strcmp(topic, "CS101/hw1/result"), "topic %s", topic);
    CHECK(json_integer_value(json_object_get(e, "submission_id")) == id);
    CHECK(json_number_value(json_object_get(e, "score")) == 2.0);
    json_decref(e);
    CHECK(next_event(sub, 500, topic) == NULL); /* one event only */
    json_t *r = call_ok(c, "RESULT",
                        json_pack("{s:I, s:b}", "submission_id", (json_int_t)id, "reasoning", 1));
    CHECK(json_array_size(json_object_get(r, "steps")) == 2);
    CHECK(json_array_size(json_object_get(r, "reasoning")) == 1);
    CHECK(!strcmp(json_string_value(json_object_get(json_object_get(r, "model"), "name")),
                  "testworker"));
    json_decref(r);
    sm_client_free(&c);
    zmq_close(sub);
    zmq_ctx_term(ctx);
    CHECK(stop_broker(SIGTERM) == 0);
}

/* Receives the next message of command want on a worker socket, skipping HEARTBEATs. */

static json_t *bad_result(long long job_id, double score)
{
    return json_pack("{s:I, s:s, s:f, s:f, s:{s:s, s:s}, s:s, s:s}", "job_id", (json_int_t)job_id,
                     "status", "graded", "score", score, "max_score", 4.0, "model", "name", "m",
                     "hash", "h", "engine_version", "1", "prompt_template_version", "p");
}

/* A RESULT the broker cannot store is a failed attempt of the worker that holds the job,
 * whether the broker's checks or the database's constraints refuse it. */
static void case_bad_result(void)
{
    setup("badres", NULL);
    start_broker();
    sm_client *c = client();
    make_assignment(c, "CS101", "hw1", "proof", NULL);
    long long id = submit(c, "k", "interactive", NULL);
    sm_client_free(&c);
    void *ctx = zmq_ctx_new();
    void *w = zmq_socket(ctx, ZMQ_DEALER);
    zmq_connect(w, E.wep);
    worker_send(w, "READY", json_pack("{s:s, s:i}", "name", "raw", "slots", 1));
    json_t *job = worker_recv(w, "JOB");
    long long jid = json_integer_value(json_object_get(job, "job_id"));
    CHECK(json_integer_value(json_object_get(job, "submission_id")) == id);
    CHECK(
        !strcmp(json_string_value(json_object_get(json_object_get(job, "assignment"), "statement")),
                "Show that 1 + 1 = 2."));
    json_decref(job);
    worker_send(w, "RESULT", bad_result(jid, 5.0)); /* above max_score */
    json_t *e = worker_recv(w, "ERROR");
    CHECK(!strcmp(json_string_value(json_object_get(e, "code")), "EINVAL"));
    json_decref(e);
    CHECK(q_int("SELECT count(*) FROM job WHERE id = %lld AND state IN ('queued', 'leased')"
                " AND last_error LIKE 'result rejected: %%'",
                jid) == 1);
    /* it comes back (attempt 2); now a result that only a database constraint refuses (one
     * this test adds, since the broker's own checks cover the schema's) */
    job = worker_recv(w, "JOB");
    CHECK(json_integer_value(json_object_get(job, "attempt")) == 2);
    json_decref(job);
    PQclear(PQexec(E.db, "ALTER TABLE grading ADD CONSTRAINT itest_refuse"
                         " CHECK (summary IS DISTINCT FROM 'refuse me')"));
    json_t *r2 = bad_result(jid, 3.0);
    json_object_set_new(r2, "summary", json_string("refuse me"));
    worker_send(w, "RESULT", r2);
    e = worker_recv(w, "ERROR");
    CHECK(!strcmp(json_string_value(json_object_get(e, "code")), "EINVAL"));
    json_decref(e);
    CHECK(q_int("SELECT count(*) FROM job WHERE id = %lld AND attempts = 2 AND last_error LIKE "
                "'result rejected by the database%%'",
                jid) == 1);
    /* attempt 3 with a good score is stored */
    job = worker_recv(w, "JOB");
    json_decref(job);
    worker_send(w, "RESULT", bad_result(jid, 4.0));
    json_t *ack = worker_recv(w, "ACK");
    CHECK(json_is_false(json_object_get(ack, "duplicate")));
    json_decref(ack);
    CHECK(q_int("SELECT count(*) FROM grading WHERE job_id = %lld AND score = 4", jid) == 1);
    worker_send(w, "DISCONNECT", NULL);
    zmq_close(w);
    zmq_ctx_term(ctx);
    CHECK(stop_broker(SIGTERM) == 0);
}

static void case_cancel(void)
{
    setup("cancel", NULL);
    start_broker();
    sm_client *c = client();
    make_assignment(c, "CS101", "hw1", "proof", NULL);
    long long id = submit(c, "k", "interactive", NULL);
    long long keep = submit(c, "k2", "batch", NULL);
    json_t *r = call_ok(c, "CANCEL", json_pack("{s:I}", "submission_id", (json_int_t)id));
    CHECK(json_is_true(json_object_get(r, "cancelled")));
    CHECK(!strcmp(json_string_value(json_object_get(r, "state")), "cancelled"));
    json_decref(r);
    r = call_ok(c, "CANCEL", json_pack("{s:I}", "submission_id", (json_int_t)id));
    CHECK(json_is_false(json_object_get(r, "cancelled")));
    json_decref(r);
    CHECK(call_err(c, "CANCEL", json_pack("{s:I}", "submission_id", (json_int_t)424242), NULL) ==
          SM_ENOTFOUND);
    pid_t w = start_worker("--results", "1", NULL, NULL, NULL, NULL);
    CHECK(wait_worker(w, 20000) == 0);
    CHECK(q_int("SELECT count(*) FROM grading WHERE submission_id = %lld", keep) == 1);
    CHECK(q_int("SELECT count(*) FROM grading WHERE submission_id = %lld", id) == 0);
    /* cancelling a leased job tells its worker */
    long long slow = submit(c, "k3", "interactive", NULL);
    w = start_worker("--work-ms", "3000", NULL, NULL, NULL, NULL);
    wait_for(1, 10000, "SELECT count(*) FROM job WHERE state = 'leased'");
    r = call_ok(c, "CANCEL", json_pack("{s:I}", "submission_id", (json_int_t)slow));
    CHECK(json_is_true(json_object_get(r, "cancelled")));
    json_decref(r);
    sleep_ms(3500);
    CHECK(q_int("SELECT count(*) FROM grading WHERE submission_id = %lld", slow) == 0);
    CHECK(q_int("SELECT count(*) FROM job WHERE submission_id = %lld AND state = 'cancelled'",
                slow) == 1);
    sm_client_free(&c);
    CHECK(stop_broker(SIGTERM) == 0);
}

/* SIGTERM: received SUBMITs are acknowledged, leased jobs go back to the queue without
 * counting as an attempt, and the job is graded once after a restart. */
static void case_graceful(void)
{
    setup("graceful", NULL);
    start_broker();
    sm_client *c = client();
    make_assignment(c, "CS101", "hw1", "proof", NULL);
    long long id = submit(c, "k", "interactive", NULL);
    start_worker("--work-ms", "1500", "--name", "w1", NULL);
    wait_for(1, 10000, "SELECT count(*) FROM job WHERE state = 'leased' AND attempts = 1");
    /* a burst of SUBMITs, then SIGTERM at once: every one is answered, none lost */
    for (int i = 0; i < 50; i++) {
        char key[32], rid[16];
        snprintf(key, sizeof key, "burst-%d", i);
        snprintf(rid, sizeof rid, "%d", i);
        json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:s}", "course", "CS101", "assignment", "hw1",
                              "student_ref", key, "idempotency_key", key, "content", "x");
        sm_err err;
        CHECK(sm_client_send(c, "SUBMIT", rid, b, &err) == SM_OK);
        json_decref(b);
    }
    sleep_ms(20);
    CHECK(stop_broker(SIGTERM) == 0);
    int acked = 0;
    for (;;) {
        sm_client_reply r;
        sm_err err;
        if (sm_client_recv(c, 300, &r, &err) != SM_OK)
            break;
        if (r.ok) {
            acked++;
            CHECK(q_int("SELECT count(*) FROM submission WHERE id = %lld",
                        (long long)json_integer_value(json_object_get(r.body, "submission_id"))) ==
                  1);
        }
        json_decref(r.body);
    }
    fprintf(stderr, "%d of 50 SUBMITs acknowledged before the shutdown\n", acked);
    CHECK(q_int("SELECT count(*) FROM job WHERE submission_id = %lld AND state = 'queued'"
                " AND attempts = 0 AND lease_owner IS NULL",
                id) == 1);
    sm_client_free(&c);
    start_broker();
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM grading WHERE submission_id = %lld", id);
    wait_for(1, 20000, sql);
    sleep_ms(2000); /* the first worker's own RESULT for it, if any, is a duplicate */
    CHECK(q_int("SELECT count(*) FROM grading WHERE submission_id = %lld", id) == 1);
    CHECK(q_int("SELECT count(*) - count(DISTINCT submission_id) FROM grading") == 0);
    CHECK(stop_broker(SIGTERM) == 0);
}

/* A TCP port on loopback that is free now (the kernel picks it). */

static void case_curve(void)
{
    setup("curve", NULL);
    /* 1: a non-loopback endpoint without CURVE is refused at start (exit 2) */
    int port = free_port(), port2 = free_port();
    while (port2 == port)
        port2 = free_port();
    snprintf(E.cep, sizeof E.cep, "tcp://0.0.0.0:%d", port);
    write_config(NULL);
    char log[128];
    snprintf(log, sizeof log, "%s/broker.log", E.dir);
    char *argv[] = {(char *)E.stepmarkd, "--config", E.cfg, NULL};
    pid_t p = spawn(log, argv);
    int st;
    waitpid(p, &st, 0);
    CHECKM(WIFEXITED(st) && WEXITSTATUS(st) == 2, "insecure remote endpoint accepted");
    /* 2: CURVE with an allow-list */
    char base[128], srv_pub[SM_CURVE_Z85], cli_pub[SM_CURVE_Z85], wrk_pub[SM_CURVE_Z85],
        bad_pub[SM_CURVE_Z85];
    sm_err err;
    snprintf(base, sizeof base, "%s/broker", E.dir);
    CHECK(sm_curve_write_pair(base, srv_pub, &err) == SM_OK);
    snprintf(base, sizeof base, "%s/lms", E.dir);
    CHECK(sm_curve_write_pair(base, cli_pub, &err) == SM_OK);
    snprintf(base, sizeof base, "%s/worker", E.dir);
    CHECK(sm_curve_write_pair(base, wrk_pub, &err) == SM_OK);
    snprintf(base, sizeof base, "%s/stranger", E.dir);
    CHECK(sm_curve_write_pair(base, bad_pub, &err) == SM_OK);
    char allow[128], wallow[128];
    snprintf(allow, sizeof allow, "%s/client_keys", E.dir);
    FILE *fp = fopen(allow, "w");
    fprintf(fp, "# LMS clients\n%s lms\n", cli_pub);
    fclose(fp);
    snprintf(wallow, sizeof wallow, "%s/worker_keys", E.dir);
    fp = fopen(wallow, "w");
    fprintf(fp, "# workers\n%s worker-1\n", wrk_pub);
    fclose(fp);
    snprintf(E.cep, sizeof E.cep, "tcp://0.0.0.0:%d", port);
    snprintf(E.wep, sizeof E.wep, "tcp://0.0.0.0:%d", port2);
    char extra[1024];
    snprintf(extra, sizeof extra,
             "  curve:\n    enabled: true\n    secret_key_file: \"%s/broker.secret\"\n"
             "    client_keys_file: \"%s\"\n    worker_keys_file: \"%s\"\n",
             E.dir, allow, wallow);
    write_config(extra);
    snprintf(E.cep, sizeof E.cep, "tcp://127.0.0.1:%d", port);
    snprintf(E.wep, sizeof E.wep, "tcp://127.0.0.1:%d", port2);
    E.broker = spawn(log, argv);
    char srv[128], cli[128], wrk[128], bad[128];
    snprintf(srv, sizeof srv, "%s/broker.public", E.dir);
    snprintf(cli, sizeof cli, "%s/lms.secret", E.dir);
    snprintf(wrk, sizeof wrk, "%s/worker.secret", E.dir);
    snprintf(bad, sizeof bad, "%s/stranger.secret", E.dir);
    sm_client *c = NULL;
    long end = now_ms() + 20000;
    for (;;) {
        c = client_with(srv, cli, 300, 0);
        if (sm_client_call(c, "PING", NULL, NULL, &err) == SM_OK)
            break;
        sm_client_free(&c);
        CHECKM(now_ms() < end, "CURVE client with an allowed key got no answer: %s", err.msg);
    }
    connect_db();
    make_assignment(c, "CS101", "hw1", "proof", NULL);
    long long id = submit(c, "k", "interactive", NULL);
    CHECK(q_int("SELECT count(*) FROM submission WHERE id = %lld AND client_id = 'lms'", id) == 1);
    /* a key outside the allow-list, and a plain client, get nothing */
    sm_client *x = client_with(srv, bad, 700, 0);
    CHECK(sm_client_call(x, "PING", NULL, NULL, &err) == SM_ESTATE);
    sm_client_free(&x);
    x = client_with(NULL, NULL, 700, 0);
    CHECK(sm_client_call(x, "PING", NULL, NULL, &err) == SM_ESTATE);
    sm_client_free(&x);
    /* an allowed worker grades over CURVE */
    pid_t w = start_worker("--results", "1", "--server-key", srv, "--secret-key", wrk, NULL);
    CHECK(wait_worker(w, 20000) == 0);
    CHECK(q_int("SELECT count(*) FROM grading") == 1);
    sm_client_free(&c);
    CHECK(stop_broker(SIGTERM) == 0);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[4400];
    snprintf(full, sizeof full, "cd %s && { %s ; } >> cli.log 2>&1", E.dir, cmd);
    int st = system(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void case_cli(void)
{
    setup("cli", NULL);
    start_broker();
    const char *s = E.cli;
    const char *cf = E.cfg;
    CHECK(sh("%s course create --config %s --code CS101 --title 'Intro'", s, cf) == 0);
    FILE *fp = fopen("/dev/null", "r");
    fclose(fp);
    char path[256];
    snprintf(path, sizeof path, "%s/hw1.yaml", E.dir);
    fp = fopen(path, "w");
    fprintf(fp, "course: CS101\ncode: hw1\ntitle: Loops\nkind: code\nlanguage: python\n"
                "statement: |\n  Print the sum of two numbers.\nmax_score: 5\n"
                "tests:\n  - name: small\n    input: \"1 2\"\n    expected_output: \"3\"\n"
                "sampling:\n  temperature: 0.6\n  top_p: 0.95\n");
    fclose(fp);
    CHECK(sh("%s assignment create --config %s --file hw1.yaml", s, cf) == 0);
    CHECK(sh("%s assignment create --config %s --file hw1.yaml", s, cf) == 1); /* exists */
    CHECK(sh("%s assignment update --config %s --course CS101 --code hw1 --title 'For loops'", s,
             cf) == 0);
    CHECK(sh("%s assignment show --config %s --course CS101 --code hw1 > show.json", s, cf) == 0);
    CHECK(q_int("SELECT count(*) FROM assignment WHERE title = 'For loops' AND kind = 'code'"
                " AND language = 'python' AND max_score = 5 AND jsonb_array_length(tests) = 1"
                " AND (sampling->>'top_p')::float = 0.95") == 1);
    CHECK(sh("mkdir class && for i in 1 2 3 4 5; do echo \"print($i)\" > class/student$i.py;"
             " done") == 0);
    CHECK(sh("%s submit --config %s --course CS101 --assignment hw1 class", s, cf) == 0);
    CHECK(sh("%s submit --config %s --course CS101 --assignment hw1 class --json > again.json", s,
             cf) == 0);
    CHECK(q_int("SELECT count(*) FROM submission WHERE language = 'python'") == 5);
    CHECK(q_int("SELECT count(*) FROM job WHERE priority = 1") == 5);
    CHECK(sh("%s submit --config %s --course CS101 --assignment hw1 --student zoe"
             " class/student1.py --json > one.json",
             s, cf) == 0);
    long long id = q_int("SELECT id FROM submission WHERE student_ref = 'zoe'");
    CHECK(id > 0);
    pid_t w = start_worker("--results", "6", "--slots", "2", "--work-ms", "5", NULL, NULL);
    CHECK(sh("%s wait --config %s %lld --timeout-s 30", s, cf, id) == 0);
    CHECK(wait_worker(w, 20000) == 0);
    CHECK(sh("%s status --config %s %lld", s, cf, id) == 0);
    CHECK(sh("%s result --config %s %lld --json > result.json", s, cf, id) == 0);
    CHECK(sh("grep -q '\"verdict\": \"incorrect\"' result.json") == 0);
    CHECK(sh("%s result --config %s %lld --reasoning | grep -q 'Let me check'", s, cf, id) == 0);
    CHECK(sh("%s result --config %s 999999", s, cf) == 1);
    CHECK(sh("%s cancel --config %s %lld | grep -q 'not cancelled'", s, cf, id) == 0);
    CHECK(sh("%s keygen --out k1 | grep -Eq '^.{40}$' && test -s k1.secret && test -s k1.public"
             " && test \"$(stat -c %%a k1.secret)\" = 600",
             s) == 0);
    CHECK(sh("%s keygen --out k1", s) == 1); /* never overwrites a secret */
    CHECK(stop_broker(SIGTERM) == 0);
}

/* ---- PostgreSQL restarted under load ---- */

typedef struct loader {
    int n;
    volatile int *stop;
    int acked;
    char (*keys)[32];
    long long *ids;
    int cap;
    int errors;
} loader;

static void *load_thread(void *arg)
{
    loader *l = arg;
    sm_client_opts o = {.endpoint = E.cep, .timeout_ms = 2000, .retries = 0};
    sm_client *c;
    sm_err err;
    if (sm_client_new(NULL, &o, &c, &err) != SM_OK)
        return NULL;
    for (int i = 0; !*l->stop && l->acked < l->cap; i++) {
        char key[32];
        snprintf(key, sizeof key, "t%d-%d", l->n, i);
        json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:s}", "course", "CS101", "assignment", "hw1",
                              "student_ref", key, "idempotency_key", key, "content", "work");
        json_t *r;
        /* keep retrying this key until it is acknowledged (the broker answers retryable
         * errors while PostgreSQL is down) */
        sm_code rc;
        do {
            rc = sm_client_call(c, "SUBMIT", b, &r, &err);
            if (rc) {
                bool retryable = rc == SM_ESTATE || json_is_true(json_object_get(r, "retryable"));
                json_decref(r);
                if (!retryable) {
                    fprintf(stderr, "SUBMIT refused: %s\n", err.msg);
                    break;
                }
                l->errors++;
                sleep_ms(100);
            }
        } while (rc && !*l->stop);
        json_decref(b);
        if (rc)
            break;
        snprintf(l->keys[l->acked], 32, "%s", key);
        l->ids[l->acked++] = json_integer_value(json_object_get(r, "submission_id"));
        json_decref(r);
    }
    sm_client_free(&c);
    return NULL;
}

static void case_pg_restart(void)
{
    snprintf(E.dir, sizeof E.dir, "/tmp/smb-pgr-XXXXXX");
    CHECK(mkdtemp(E.dir));
    chmod(E.dir, 0777);
    snprintf(E.cep, sizeof E.cep, "ipc://%s/client", E.dir);
    snprintf(E.wep, sizeof E.wep, "ipc://%s/worker", E.dir);
    snprintf(E.eep, sizeof E.eep, "ipc://%s/events", E.dir);
    char data[128];
    snprintf(data, sizeof data, "%s/pg", E.dir);
    sm_err err;
    CHECKM(sm_pgembed_start(data, &E.pg, &err) == SM_OK, "private cluster: %s", err.msg);
    snprintf(E.url, sizeof E.url, "%s", sm_pgembed_url(E.pg));
    setenv("STEPMARK_DATABASE_URL", E.url, 1);
    write_config(NULL);
    start_broker();
    sm_client *c = client();
    make_assignment(c, "CS101", "hw1", "proof", NULL);
    sm_client_free(&c);
    enum { THREADS = 4, CAP = 100000 };
    volatile int stop = 0;
    loader l[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        l[i] = (loader){.n = i, .stop = &stop, .cap = CAP};
        l[i].keys = calloc(CAP, 32);
        l[i].ids = calloc(CAP, sizeof(long long));
        pthread_create(&t[i], NULL, load_thread, &l[i]);
    }
    sleep_ms(1500);
    PQfinish(E.db);
    E.db = NULL;
    int before = 0;
    for (int i = 0; i < THREADS; i++)
        before += l[i].acked;
    CHECKM(sm_pgembed_stop(&E.pg, &err) == SM_OK, "stop: %s", err.msg);
    sleep_ms(1500);
    CHECKM(sm_pgembed_start(data, &E.pg, &err) == SM_OK, "restart: %s", err.msg);
    int during = 0;
    for (int i = 0; i < THREADS; i++)
        during += l[i].acked;
    sleep_ms(2000);
    stop = 1;
    int total = 0, errors = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        total += l[i].acked;
        errors += l[i].errors;
    }
    fprintf(stderr,
            "acked %d before the stop, %d by the restart, %d in all; %d retryable "
            "errors\n",
            before, during, total, errors);
    CHECK(before > 0);
    CHECKM(total > during, "nothing acknowledged after PostgreSQL came back");
    CHECK(errors > 0); /* the outage was seen */
    connect_db();
    /* every acknowledged submission is there, with its id and a job */
    int missing = 0;
    for (int i = 0; i < THREADS; i++)
        for (int k = 0; k < l[i].acked; k++)
            if (q_int("SELECT count(*) FROM submission s JOIN job j ON j.submission_id = s.id"
                      " WHERE s.id = %lld AND s.idempotency_key = '%s'",
                      l[i].ids[k], l[i].keys[k]) != 1)
                missing++;
    CHECKM(missing == 0, "%d acknowledged submissions lost", missing);
    CHECK(q_int("SELECT count(*) FROM submission") >= total);
    CHECK(q_int("SELECT count(*) FROM submission") <= total + THREADS);
    for (int i = 0; i < THREADS; i++) {
        free(l[i].keys);
        free(l[i].ids);
    }
    CHECK(stop_broker(SIGTERM) == 0);
}

int main(int argc, char **argv)
{
    static const itest_case cases[] = {{"submit", case_submit},
                                       {"idempotent", case_idempotent},
                                       {"malformed", case_malformed},
                                       {"assignment", case_assignment},
                                       {"priority", case_priority},
                                       {"worker_dies", case_worker_dies},
                                       {"retry_dead", case_retry_dead},
                                       {"broker_sigkill", case_broker_sigkill},
                                       {"duplicate_result", case_duplicate_result},
                                       {"cancel", case_cancel},
                                       {"bad_result", case_bad_result},
                                       {"graceful", case_graceful},
                                       {"curve", case_curve},
                                       {"cli", case_cli},
                                       {"pg_restart", case_pg_restart}};
    return itest_main(argc, argv, "broker_itest", cases, sizeof cases / sizeof cases[0]);
}
