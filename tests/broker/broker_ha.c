/* broker_ha: two stepmarkd on one database (docs/protocol.md section 4, "Several brokers"),
 * with real PostgreSQL and real ZeroMQ sockets. Usage: broker_ha CASE STEPMARKD TESTWORKER
 * STEPMARK.
 *   kill9  clients submit to both brokers, sm_testworkers grade on both; one broker is killed
 *          with SIGKILL while its workers hold leases, and new workers start on the other. A
 *          worker that held a lease of the dead broker sends its RESULT to the other one and is
 *          refused. In the end every acknowledged submission has exactly one grading, and no
 *          job is lost, left leased or dead.
 *   term   one broker stopped with SIGTERM hands back only its own workers' jobs: the other
 *          broker's leases are untouched, and the other broker grades everything.
 *   reap_locked  while another session holds the row of one expired lease of a dead broker,
 *          the live broker still answers and reaps the others (its reaper skips locked rows). */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest_env.h"

enum { HA_FIRST = 40, HA_AFTER = 20 }; /* submissions before and after the kill */

/* A DEALER on the worker endpoint ep. */
static void *raw_worker(void *ctx, const char *ep)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    CHECK(zmq_connect(s, ep) == 0);
    return s;
}

/* A well-formed RESULT for job_id (score 1 of 4). */
static json_t *result_of(json_int_t job_id)
{
    return json_pack("{s:I, s:s, s:f, s:f, s:{s:s, s:s}, s:s, s:s}", "job_id", job_id, "status",
                     "graded", "score", 1.0, "max_score", 4.0, "model", "name", "m", "hash", "h",
                     "engine_version", "1", "prompt_template_version", "p");
}

static void ready_raw(void *s)
{
    worker_send(s, "READY",
                json_pack("{s:s, s:s, s:s, s:i}", "name", "raw", "model", "testworker", "device",
                          "cpu", "slots", 1));
}

/* The broker instance id (PING), checked to be "b" and 8 hex digits: fixed length, so that
 * one instance's lease-owner prefix "ID/" is never a prefix of another's. */
static void instance_of(sm_client *c, char out[16])
{
    json_t *r = call_ok(c, "PING", NULL);
    const char *id = json_string_value(json_object_get(r, "broker"));
    CHECKM(id && strlen(id) == 9 && id[0] == 'b' && strspn(id + 1, "0123456789abcdef") == 8,
           "bad instance id %s", id ? id : "(none)");
    snprintf(out, 16, "%s", id);
    json_decref(r);
}

/* The text of a one-value query into out ("" when NULL). */
static void q_text(char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void q_text(char *out, size_t size, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(E.db, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1) {
        PQclear(r);
        fail("query failed: %s: %s", sql, PQerrorMessage(E.db));
    }
    snprintf(out, size, "%s", PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0));
    PQclear(r);
}

static int count_lines(const char *path)
{
    FILE *fp = fopen(path, "r");
    int n = 0, ch;
    if (!fp)
        return 0;
    while ((ch = fgetc(fp)) != EOF)
        n += ch == '\n';
    fclose(fp);
    return n;
}

/* Submits n submissions keyed PREFIX-i, alternating between clients a and b. */
static void submit_both(sm_client *a, sm_client *b, const char *prefix, int n)
{
    for (int i = 0; i < n; i++) {
        char k[32];
        snprintf(k, sizeof k, "%s-%d", prefix, i);
        submit(i % 2 && b ? b : a, k, "batch", NULL);
    }
}

/* Every acknowledged submission has exactly one grading; no job is queued, leased or dead. */
static void check_exactly_once(int acknowledged)
{
    wait_for(0, 40000, "SELECT count(*) FROM job WHERE state IN ('queued', 'leased')");
    CHECK(q_int("SELECT count(*) FROM submission") == acknowledged);
    CHECK(q_int("SELECT count(*) FROM job") == acknowledged);
    CHECK(q_int("SELECT count(*) FROM job WHERE state <> 'done'") == 0);
    CHECK(q_int("SELECT count(*) FROM grading") == acknowledged);
    CHECK(q_int("SELECT count(*) FROM submission s WHERE"
                " (SELECT count(*) FROM grading g WHERE g.submission_id = s.id) <> 1") == 0);
    char log[128];
    snprintf(log, sizeof log, "%s/done.log", E.dir);
    int acked = count_lines(log); /* RESULTs a worker saw acknowledged */
    CHECKM(acked <= acknowledged, "%d RESULTs acknowledged for %d gradings", acked, acknowledged);
}

static void case_kill9(void)
{
    setup("ha_kill9", "  heartbeat_timeout_ms: 30000\n"); /* A keeps the raw worker */
    static itest_broker B;
    broker_setup(&B, "b", NULL);
    broker_spawn(&B); /* both start at once on the fresh database (migrations, instance ids) */
    start_broker();   /* A: E's broker */
    broker_wait(&B);
    sm_client *ca = client(), *cb = client_at(B.cep);
    char ia[16], ib[16];
    instance_of(ca, ia);
    instance_of(cb, ib);
    CHECKM(strcmp(ia, ib) != 0, "both brokers are instance %s", ia);
    make_assignment(ca, "CS101", "hw1", "proof", NULL);

    /* a raw worker of A takes one job and reports progress on it */
    long long sid0 = submit(cb, "raw-0", "batch", NULL);
    void *ctx = zmq_ctx_new();
    void *ra = raw_worker(ctx, E.wep);
    ready_raw(ra);
    json_t *job = worker_recv_skipping(ra, "JOB", true);
    json_int_t jid = json_integer_value(json_object_get(job, "job_id"));
    CHECK(json_integer_value(json_object_get(job, "submission_id")) == sid0);
    json_decref(job);
    worker_send(ra, "PROGRESS", json_pack("{s:I, s:i}", "job_id", jid, "tokens", 3));
    wait_for(1, 5000, "SELECT count(*) FROM job WHERE progressed_at IS NOT NULL");

    /* slow workers on A (their leases are held when A dies), quicker ones on B */
    start_worker("--name", "wa1", "--slots", "4", "--work-ms", "700", NULL, NULL);
    start_worker("--name", "wa2", "--slots", "4", "--work-ms", "700", NULL, NULL);
    start_worker_at(B.wep, "--name", "wb1", "--slots", "2", "--work-ms", "150", NULL, NULL);
    submit_both(ca, cb, "first", HA_FIRST);
    wait_for(1, 20000, "SELECT (count(*) > 0)::int FROM grading WHERE worker LIKE 'wa%'");
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT (count(*) >= 4)::int FROM job WHERE state = 'leased'"
             " AND lease_owner LIKE '%s/%%'",
             ia);
    wait_for(1, 20000, sql);
    CHECK(stop_broker(SIGKILL) == 128 + SIGKILL); /* A dies mid-batch, its leases held */
    /* the jobs leased to A (a RESULT that A was committing may still land) */
    char held[1024];
    q_text(held, sizeof held,
           "SELECT string_agg(id::text, ',') FROM job WHERE state = 'leased'"
           " AND lease_owner LIKE '%s/%%'",
           ia);
    CHECK(held[0]);

    /* A's raw worker moves to B and sends its RESULT for A's lease: refused, nothing stored */
    zmq_close(ra);
    void *rb = raw_worker(ctx, B.wep);
    ready_raw(rb);
    worker_send(rb, "RESULT", result_of(jid));
    json_t *e = worker_recv_skipping(rb, "ERROR", true);
    CHECKM(!strcmp(json_string_value(json_object_get(e, "code")), "ESTATE"), "code %s",
           json_string_value(json_object_get(e, "code")));
    json_decref(e);
    CHECK(q_int("SELECT count(*) FROM grading WHERE job_id = %lld", (long long)jid) == 0);
    zmq_close(rb);
    zmq_ctx_term(ctx);

    /* clients go on with B (a SUBMIT first sent to A is a duplicate there); new workers
     * start there */
    bool dup = false;
    long long first0 = q_int("SELECT id FROM submission WHERE idempotency_key = 'first-0'");
    CHECK(submit(cb, "first-0", "batch", &dup) == first0 && dup);
    submit_both(cb, NULL, "after", HA_AFTER);
    start_worker_at(B.wep, "--name", "wb2", "--slots", "4", "--work-ms", "50", NULL, NULL);
    start_worker_at(B.wep, "--name", "wb3", "--slots", "4", "--work-ms", "50", NULL, NULL);
    check_exactly_once(1 + HA_FIRST + HA_AFTER);
    /* A's leases were reaped by B, then graded by B's workers (or A's worker's RESULT was
     * committed as A died) */
    CHECK(q_int("SELECT count(*) FROM job j JOIN grading g ON g.job_id = j.id WHERE j.id IN (%s)"
                " AND j.last_error LIKE 'lease expired (held by %s/%%' AND g.worker LIKE 'wb%%'",
                held, ia) >= 1);
    CHECK(q_int("SELECT count(*) FROM job j JOIN grading g ON g.job_id = j.id WHERE j.id IN (%s)"
                " AND NOT (j.last_error LIKE 'lease expired (held by %s/%%' AND"
                "   g.worker LIKE 'wb%%' OR g.worker LIKE 'wa%%')",
                held, ia) == 0);
    CHECK(q_int("SELECT count(*) FROM grading WHERE worker = 'raw'") == 0);
    /* the raw worker had reported progress: that loss costs its attempt, others are free */
    CHECK(q_int("SELECT attempts FROM job WHERE id = %lld", (long long)jid) == 2);
    CHECK(q_int("SELECT max(attempts) FROM job") <= 2);
    sm_client_free(&ca);
    sm_client_free(&cb);
    CHECK(broker_stop(&B, SIGTERM) == 0);
}

static void case_term(void)
{
    setup("ha_term", "  lease_ms: 20000\n");
    static itest_broker B;
    broker_setup(&B, "b", "  lease_ms: 20000\n  heartbeat_timeout_ms: 30000\n"); /* keeps raw */
    start_broker();
    broker_start(&B);
    sm_client *ca = client(), *cb = client_at(B.cep);
    char ib[16];
    instance_of(cb, ib);
    make_assignment(ca, "CS101", "hw1", "proof", NULL);
    /* B's raw worker holds one lease; A's worker holds others; A stops gracefully */
    long long sid0 = submit(cb, "raw-0", "batch", NULL);
    void *ctx = zmq_ctx_new();
    void *rb = raw_worker(ctx, B.wep);
    ready_raw(rb);
    json_t *job = worker_recv_skipping(rb, "JOB", true);
    json_int_t jid = json_integer_value(json_object_get(job, "job_id"));
    CHECK(json_integer_value(json_object_get(job, "submission_id")) == sid0);
    json_decref(job);
    start_worker("--name", "wa1", "--slots", "4", "--work-ms", "60000", NULL, NULL);
    submit_both(ca, cb, "t", 8);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM job WHERE state = 'leased'"
             " AND lease_owner NOT LIKE '%s/%%'",
             ib);
    wait_for(4, 10000, sql);
    CHECK(stop_broker(SIGTERM) == 0);
    /* A handed back its 4 jobs, uncharged; B's lease is untouched */
    CHECK(q_int("%s", sql) == 0);
    CHECK(q_int("SELECT count(*) FROM job WHERE id = %lld AND state = 'leased' AND"
                " lease_owner LIKE '%s/%%' AND attempts = 1 AND last_error IS NULL",
                (long long)jid, ib) == 1);
    CHECK(q_int("SELECT max(attempts) FROM job WHERE id <> %lld", (long long)jid) <= 1);
    /* B's raw worker finishes its job; a worker on B grades the rest */
    worker_send(rb, "RESULT", result_of(jid));
    json_t *ack = worker_recv_skipping(rb, "ACK", true);
    json_decref(ack);
    zmq_close(rb);
    zmq_ctx_term(ctx);
    start_worker_at(B.wep, "--name", "wb1", "--slots", "4", "--work-ms", "20", NULL, NULL);
    check_exactly_once(1 + 8);
    CHECK(q_int("SELECT count(*) FROM grading WHERE worker = 'raw'") == 1);
    sm_client_free(&ca);
    sm_client_free(&cb);
    CHECK(broker_stop(&B, SIGTERM) == 0);
}

/* Whether the broker at cep answers PING within 3 s. */
static bool answers(const char *cep)
{
    sm_client_opts o = {.endpoint = cep, .timeout_ms = 3000, .retries = 0};
    sm_client *c;
    sm_err err;
    CHECKM(sm_client_new(NULL, &o, &c, &err) == SM_OK, "client: %s", err.msg);
    bool ok = sm_client_call(c, "PING", NULL, NULL, &err) == SM_OK;
    sm_client_free(&c);
    return ok;
}

static void case_reap_locked(void)
{
    setup("ha_reap", "  heartbeat_timeout_ms: 30000\n");
    static itest_broker B;
    broker_setup(&B, "b", NULL);
    start_broker();
    broker_start(&B);
    sm_client *cb = client_at(B.cep);
    make_assignment(cb, "CS101", "hw1", "proof", NULL);
    submit(cb, "r-1", "batch", NULL);
    submit(cb, "r-2", "batch", NULL);
    /* A's raw worker holds both jobs when A dies */
    void *ctx = zmq_ctx_new();
    void *ra = raw_worker(ctx, E.wep);
    worker_send(ra, "READY",
                json_pack("{s:s, s:s, s:s, s:i}", "name", "raw", "model", "testworker", "device",
                          "cpu", "slots", 2));
    json_t *first = worker_recv_skipping(ra, "JOB", true);
    json_t *second = worker_recv_skipping(ra, "JOB", true);
    json_int_t j1 = json_integer_value(json_object_get(first, "job_id"));
    json_decref(first);
    json_decref(second);
    CHECK(stop_broker(SIGKILL) == 128 + SIGKILL);
    zmq_close(ra);
    zmq_ctx_term(ctx);
    wait_for(2, 5000, "SELECT count(*) FROM job WHERE state = 'leased'");
    /* another session (a slow transaction of some other client) holds j1's row */
    PGconn *lk = PQconnectdb(E.url);
    CHECKM(PQstatus(lk) == CONNECTION_OK, "cannot connect: %s", PQerrorMessage(lk));
    char sql[160];
    snprintf(sql, sizeof sql, "BEGIN; SELECT id FROM job WHERE id = %lld FOR UPDATE",
             (long long)j1);
    PGresult *r = PQexec(lk, sql);
    CHECKM(PQresultStatus(r) == PGRES_TUPLES_OK, "lock: %s", PQerrorMessage(lk));
    PQclear(r);
    /* B reaps the other lease and stays responsive meanwhile */
    long end = now_ms() + 15000;
    while (q_int("SELECT count(*) FROM job WHERE state = 'leased'") != 1) {
        bool up = answers(B.cep);
        if (!up || now_ms() > end) {
            PQfinish(lk);
            fail("broker b %s while another session holds a row lock",
                 up ? "did not reap the unlocked lease" : "stopped answering");
        }
        sleep_ms(200);
    }
    CHECK(answers(B.cep));
    CHECK(q_int("SELECT count(*) FROM job WHERE id = %lld AND state = 'leased'", (long long)j1) ==
          1);
    PQclear(PQexec(lk, "COMMIT"));
    PQfinish(lk);
    /* then j1 too; a worker on B grades both, once */
    start_worker_at(B.wep, "--name", "wb1", "--slots", "2", "--work-ms", "20", NULL, NULL);
    check_exactly_once(2);
    CHECK(q_int("SELECT count(*) FROM grading WHERE worker = 'wb1'") == 2);
    sm_client_free(&cb);
    CHECK(broker_stop(&B, SIGTERM) == 0);
}

int main(int argc, char **argv)
{
    static const itest_case cases[] = {
        {"kill9", case_kill9}, {"term", case_term}, {"reap_locked", case_reap_locked}};
    return itest_main(argc, argv, "broker_ha", cases, sizeof cases / sizeof cases[0]);
}
