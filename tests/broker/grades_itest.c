/* grades_itest: integration tests of grades flowing back over the protocol, with real PostgreSQL
 * and real ZeroMQ: the `final` block of STATUS, RESULT and LIST after approve, adjust and
 * release; LIST paging over 1,000 submissions while another connection keeps grading and
 * reviewing and a transaction commits late; the `reviewed` and `released` events on the PUB
 * socket; `stepmark list`. Reviews and releases are inserted with SQL on a connection of their
 * own, as the teacher's HTTP side writes them. Usage: grades_itest CASE STEPMARKD TESTWORKER
 * STEPMARK. */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <libpq-fe.h>

#include "grades.h"
#include "itest_env.h"
#include "sm_client.h"
#include "sm_proto.h"

#define NSUB 1000

/* Runs a statement on conn and checks that it succeeded. */
static void exec_on(PGconn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void exec_on(PGconn *conn, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    CHECKM(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(conn));
}

/* A grading for submission sid as a worker's RESULT stores it (status graded, or needs_review
 * when score < 0, with no score). */
static void grade_on(PGconn *conn, long long sid, double score)
{
    char sc[32];
    snprintf(sc, sizeof sc, "%g", score);
    exec_on(conn,
            "WITH u AS (UPDATE job SET state = 'done', finished_at = now(), updated_at = now()"
            "  WHERE submission_id = %lld AND state = 'queued' RETURNING id, submission_id)"
            " INSERT INTO grading (job_id, submission_id, status, score, max_score, model_name,"
            "  model_hash, engine_version, prompt_template_version, seed)"
            " SELECT id, submission_id, %s, %s, 4, 'm', 'h', 'e', 'p', 1 FROM u",
            sid, score < 0 ? "'needs_review'" : "'graded'", score < 0 ? "NULL" : sc);
}

/* A teacher's review of the submission's latest grading: approve, adjust (to score) or
 * release. */
static void review_on(PGconn *conn, long long sid, const char *action, double score,
                      const char *comment)
{
    char sc[32];
    snprintf(sc, sizeof sc, "%g", score);
    exec_on(conn,
            "INSERT INTO review (grading_id, teacher_id, action, new_score, comment,"
            " include_reasoning)"
            " SELECT (SELECT id FROM grading WHERE submission_id = %lld ORDER BY id DESC LIMIT 1),"
            " (SELECT id FROM teacher WHERE name = 'Ada'), '%s', %s, '%s', %s",
            sid, action, strcmp(action, "adjust") ? "NULL" : sc, comment,
            strcmp(action, "release") ? "false" : "true");
}

static const char *sget(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static double nget(const json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

static json_t *status_of(sm_client *c, long long id)
{
    return call_ok(c, "STATUS", json_pack("{s:I}", "submission_id", (json_int_t)id));
}

static json_t *list_page(sm_client *c, const char *cursor, int limit)
{
    json_t *b =
        json_pack("{s:s, s:s, s:i}", "course", "CS101", "assignment", "hw1", "limit", limit);
    if (cursor)
        json_object_set_new(b, "cursor", json_string(cursor));
    return call_ok(c, "LIST", b);
}

static void add_teacher(void)
{
    exec_on(E.db, "INSERT INTO teacher (name, token_hash) VALUES ('Ada', 'x')");
}

/* ---- the final block ---- */

/* The submissions case_final grades and reviews. */
typedef struct final_ctx {
    sm_client *c;
    long long a, b;
} final_ctx;

/* STATUS: no final block, then model graded, approved, and adjusted. */
static void final_check_status(const final_ctx *x)
{
    json_t *st = status_of(x->c, x->a);
    CHECK(json_is_null(json_object_get(st, "final")));
    json_decref(st);

    grade_on(E.db, x->a, 2);
    st = status_of(x->c, x->a);
    json_t *f = json_object_get(st, "final");
    CHECK(!strcmp(sget(f, "state"), "model_graded") && nget(f, "score") == 2);
    CHECK(nget(f, "max_score") == 4 && json_is_null(json_object_get(f, "reviewed_by")));
    CHECK(nget(json_object_get(st, "grading"), "score") == 2);
    json_decref(st);

    review_on(E.db, x->a, "approve", 0, "Well argued");
    st = status_of(x->c, x->a);
    f = json_object_get(st, "final");
    CHECK(!strcmp(sget(f, "state"), "approved") && nget(f, "score") == 2);
    CHECK(!strcmp(sget(f, "reviewed_by"), "Ada") &&
          json_is_string(json_object_get(f, "reviewed_at")));
    CHECK(!strcmp(sget(f, "comment"), "Well argued"));
    json_decref(st);

    /* the report of issue 25: a grading without a score, adjusted to 4/4 by the teacher */
    grade_on(E.db, x->b, -1);
    review_on(E.db, x->b, "adjust", 4, "Full marks");
    st = status_of(x->c, x->b);
    f = json_object_get(st, "final");
    CHECK(!strcmp(sget(f, "state"), "adjusted") && nget(f, "score") == 4);
    CHECK(!strcmp(sget(f, "comment"), "Full marks"));
    CHECK(json_is_null(json_object_get(json_object_get(st, "grading"), "score")));
    CHECK(!strcmp(sget(json_object_get(st, "grading"), "status"), "needs_review"));
    json_decref(st);
}

/* RESULT after the release. */
static void final_check_result(const final_ctx *x)
{
    review_on(E.db, x->b, "release", 0, "");
    json_t *r = call_ok(x->c, "RESULT", json_pack("{s:I}", "submission_id", (json_int_t)x->b));
    json_t *f = json_object_get(r, "final");
    CHECK(!strcmp(sget(f, "state"), "released") && nget(f, "score") == 4);
    CHECK(!strcmp(sget(f, "released_by"), "Ada") &&
          json_is_string(json_object_get(f, "released_at")));
    CHECK(json_is_true(json_object_get(f, "include_reasoning")));
    CHECK(!strcmp(sget(f, "comment"), "Full marks") && !strcmp(sget(f, "reviewed_by"), "Ada"));
    CHECK(json_is_null(json_object_get(r, "score"))); /* the model's own grading, unchanged */
    CHECK(!strcmp(sget(r, "status"), "needs_review"));
    json_decref(r);
}

/* LIST carries the same blocks */
static void final_check_list(const final_ctx *x)
{
    sm_client *c = x->c;
    json_t *p = list_page(c, NULL, 10);
    json_t *items = json_object_get(p, "items");
    CHECK(json_array_size(items) == 2 && json_is_false(json_object_get(p, "more")));
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        long long id = json_integer_value(json_object_get(it, "submission_id"));
        const char *want = id == x->a ? "approved" : "released";
        CHECK(!strcmp(sget(json_object_get(it, "final"), "state"), want));
        CHECK(!strcmp(sget(it, "state"), "done"));
        CHECK(!strcmp(sget(it, "idempotency_key"), id == x->a ? "k-a" : "k-b"));
    }
    /* b changed last, so it comes last */
    CHECK(json_integer_value(json_object_get(json_array_get(items, 1), "submission_id")) == x->b);
    json_decref(p);
    CHECK(call_err(c, "LIST",
                   json_pack("{s:s, s:s, s:s}", "course", "CS101", "assignment", "hw1", "cursor",
                             "nonsense"),
                   NULL) == SM_EINVAL);
    CHECK(call_err(
              c, "LIST",
              json_pack("{s:s, s:s, s:i}", "course", "CS101", "assignment", "hw1", "limit", 1001),
              NULL) == SM_EINVAL);
    CHECK(call_err(c, "LIST",
                   json_pack("{s:s, s:s, s:s}", "course", "CS101", "assignment", "hw1",
                             "updated_since", "yesterday"),
                   NULL) == SM_EINVAL);
    CHECK(call_err(c, "LIST", json_pack("{s:s, s:s}", "course", "CS101", "assignment", "nope"),
                   NULL) == SM_ENOTFOUND);
    json_decref(call_ok(c, "LIST",
                        json_pack("{s:s, s:s, s:s}", "course", "CS101", "assignment", "hw1",
                                  "updated_since", "2000-01-01T00:00:00Z")));
}

/* the shared functions themselves, as the HTTP API calls them on a connection of its own */
static void final_check_shared(const final_ctx *x)
{
    json_t *fin;
    sm_err err;
    CHECK(sm_grades_final(E.db, x->b, &fin, &err) == SM_OK);
    CHECK(!strcmp(sget(fin, "state"), "released") && nget(fin, "score") == 4);
    json_decref(fin);
    long long fresh = submit(x->c, "k-c", "batch", NULL);
    CHECK(sm_grades_final(E.db, fresh, &fin, &err) == SM_OK && json_is_null(fin));
    json_decref(fin);
    CHECK(sm_grades_final(E.db, 999999, &fin, &err) == SM_ENOTFOUND && !fin);
    CHECK(sm_grades_status(E.db, 999999, &fin, &err) == SM_ENOTFOUND);
    CHECK(sm_grades_result(E.db, fresh, false, &fin, &err) == SM_ESTATE);
    long long aid = q_int("SELECT id FROM assignment WHERE code = 'hw1'");
    sm_list_query lq = {aid, NULL, "2999-01-01T00:00:00+01:00", 0};
    CHECK(sm_grades_list(E.db, &lq, &fin, &err) == SM_OK);
    CHECK(json_array_size(json_object_get(fin, "items")) == 0);
    json_decref(fin);
    lq = (sm_list_query){aid, NULL, NULL, 2};
    CHECK(sm_grades_list(E.db, &lq, &fin, &err) == SM_OK);
    CHECK(json_array_size(json_object_get(fin, "items")) == 2);
    CHECK(json_is_true(json_object_get(fin, "more"))); /* a, b, then the fresh one */
    json_decref(fin);
    lq.limit = -1;
    CHECK(sm_grades_list(E.db, &lq, &fin, &err) == SM_EINVAL && !fin);
    lq = (sm_list_query){aid, "c1.12", NULL, 0};
    CHECK(sm_grades_list(E.db, &lq, &fin, &err) == SM_EINVAL);
    lq.cursor = "c1.1.2x";
    CHECK(sm_grades_list(E.db, &lq, &fin, &err) == SM_EINVAL);
    lq.cursor = "c1.99999999999999999999.1";
    CHECK(sm_grades_list(E.db, &lq, &fin, &err) == SM_EINVAL);
}

static void case_final(void)
{
    setup("gfinal", NULL);
    start_broker();
    sm_client *c = client();
    make_assignment(c, "CS101", "hw1", "proof", NULL);
    add_teacher();
    final_ctx x = {c, 0, 0};
    x.a = submit(c, "k-a", "batch", NULL);
    x.b = submit(c, "k-b", "batch", NULL);
    final_check_status(&x);
    final_check_result(&x);
    final_check_list(&x);
    final_check_shared(&x);
    sm_client_free(&c);
    CHECK(stop_broker(SIGTERM) == 0);
}

/* ---- LIST paging with concurrent changes ---- */

typedef struct writer {
    PGconn *db;
    long long first; /* submission ids first..first+NSUB-1 */
    volatile int done;
    volatile int ops;
} writer;

/* Grades every submission in a shuffled order and reviews a third of them, each change in a
 * transaction of its own, while the reader pages. */
static void *writer_thread(void *arg)
{
    writer *w = arg;
    unsigned seed = 12345;
    int order[NSUB];
    for (int i = 0; i < NSUB; i++)
        order[i] = i;
    for (int i = NSUB - 1; i > 0; i--) {
        int j = (int)(rand_r(&seed) % (unsigned)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int k = 0; k < NSUB; k++) {
        long long sid = w->first + order[k];
        if (sid == w->first)
            continue; /* graded before; the late transaction reviews it */
        grade_on(w->db, sid, (double)(sid % 5));
        w->ops++;
        if (k % 3 == 0 && k > 0) {
            long long back = w->first + order[k - 1];
            if (back != w->first) {
                review_on(w->db, back, (k % 2) ? "approve" : "adjust", 3, "ok");
                w->ops++;
            }
        }
    }
    w->done = 1;
    return NULL;
}

/* What the reader saw: per submission the latest item, and every (id, updated_at) once. */
typedef struct seen {
    json_t *last;  /* id -> item */
    json_t *pairs; /* "id@updated_at" -> true */
    int items, repeats;
} seen;

static bool absorb(seen *s, json_t *page, char *cursor, size_t n)
{
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(page, "items"), i, it)
    {
        char key[128], idk[32];
        long long id = json_integer_value(json_object_get(it, "submission_id"));
        snprintf(idk, sizeof idk, "%lld", id);
        snprintf(key, sizeof key, "%lld@%s", id, sget(it, "updated_at"));
        if (json_object_get(s->pairs, key))
            s->repeats++;
        json_object_set_new(s->pairs, key, json_true());
        json_object_set(s->last, idk, it);
        s->items++;
    }
    snprintf(cursor, n, "%s", sget(page, "next_cursor"));
    return json_is_true(json_object_get(page, "more"));
}

/* One run of case_list: the client, what it saw, and where its cursor stands. */
typedef struct list_ctx {
    sm_client *c;
    seen s;
    char cursor[128];
    long long first;
    int pages, ops;
} list_ctx;

/* Submits NSUB submissions, pipelined: the broker commits them in groups. */
static void list_submit_all(sm_client *c)
{
    for (int i = 0; i < NSUB; i++) { /* pipelined: the broker commits them in groups */
        char key[32], rid[16];
        snprintf(key, sizeof key, "l-%04d", i);
        snprintf(rid, sizeof rid, "%d", i);
        json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:s}", "course", "CS101", "assignment", "hw1",
                              "student_ref", key, "idempotency_key", key, "content", "x");
        sm_err err;
        CHECK(sm_client_send(c, "SUBMIT", rid, b, &err) == SM_OK);
        json_decref(b);
        if (i % 200 == 199)
            for (int k = 0; k < 200; k++) {
                sm_client_reply r;
                CHECKM(sm_client_recv(c, 10000, &r, &err) == SM_OK && r.ok, "SUBMIT: %s", err.msg);
                json_decref(r.body);
            }
    }
}

/* Pages of `limit` items from the cursor on until LIST says there are no more; from_start
 * sends no cursor while it is still empty. */
static void list_until_end(list_ctx *x, int limit, bool from_start)
{
    json_t *p;
    bool more;
    do {
        p = list_page(x->c, from_start && !x->cursor[0] ? NULL : x->cursor, limit);
        more = absorb(&x->s, p, x->cursor, sizeof x->cursor);
        json_decref(p);
    } while (more);
}

/* A transaction that reviews `first` and stays open while the cursor moves on, and a writer
 * thread; pages while the writer commits. */
static void list_while_writing(list_ctx *x)
{
    /* a transaction that reviews `first` and stays open while the cursor moves on */
    PGconn *late = PQconnectdb(E.url);
    CHECK(PQstatus(late) == CONNECTION_OK);
    exec_on(late, "BEGIN");
    review_on(late, x->first, "adjust", 4, "late");

    writer w = {PQconnectdb(E.url), x->first, 0, 0};
    CHECK(PQstatus(w.db) == CONNECTION_OK);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, writer_thread, &w) == 0);
    /* page while the writer commits; the late transaction commits once the writer is well
     * past it (a reader paging by commit order or by time would have passed its change) */
    bool open = true;
    while (!w.done || open) {
        json_t *p = list_page(x->c, x->cursor, 37);
        absorb(&x->s, p, x->cursor, sizeof x->cursor);
        json_decref(p);
        x->pages++;
        if (open && (w.ops >= 400 || w.done)) {
            exec_on(late, "COMMIT");
            open = false;
        }
    }
    pthread_join(t, NULL);
    PQfinish(late);
    PQfinish(w.db);
    x->ops = w.ops;
}

/* every submission's last listed item is its final state */
static void list_check_final(const list_ctx *x)
{
    PGresult *r = PQexec(E.db, "SELECT id, to_json(updated_at)#>>'{}', sm_final(id)::text"
                               " FROM submission ORDER BY id");
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == NSUB);
    for (int i = 0; i < NSUB; i++) {
        json_t *it = json_object_get(x->s.last, PQgetvalue(r, i, 0));
        CHECKM(it, "submission %s was never listed", PQgetvalue(r, i, 0));
        CHECKM(!strcmp(sget(it, "updated_at"), PQgetvalue(r, i, 1)),
               "submission %s: last listed change %s, but it changed at %s", PQgetvalue(r, i, 0),
               sget(it, "updated_at"), PQgetvalue(r, i, 1));
        json_t *want = json_loads(PQgetvalue(r, i, 2), 0, NULL);
        json_t *got = json_object_get(it, "final");
        CHECKM(!strcmp(sget(got, "state"), sget(want, "state")) &&
                   nget(got, "score") == nget(want, "score"),
               "submission %s: final %s listed, %s stored", PQgetvalue(r, i, 0), sget(got, "state"),
               sget(want, "state"));
        json_decref(want);
    }
    PQclear(r);
    char idk[32];
    snprintf(idk, sizeof idk, "%lld", x->first);
    json_t *late_item = json_object_get(json_object_get(x->s.last, idk), "final");
    CHECK(!strcmp(sget(late_item, "state"), "adjusted") &&
          !strcmp(sget(late_item, "comment"), "late"));
}

static void case_list(void)
{
    setup("glist", NULL);
    start_broker();
    list_ctx x = {.c = client_with(NULL, NULL, 10000, 3)};
    make_assignment(x.c, "CS101", "hw1", "proof", NULL);
    add_teacher();
    list_submit_all(x.c);
    x.first = q_int("SELECT min(id) FROM submission");
    CHECK(q_int("SELECT max(id) - min(id) + 1 FROM submission") == NSUB);
    grade_on(E.db, x.first, 1);

    x.s = (seen){json_object(), json_object(), 0, 0};
    /* one pass while nothing moves */
    list_until_end(&x, 97, true);
    CHECK(json_object_size(x.s.last) == NSUB && x.s.items == NSUB && x.s.repeats == 0);

    list_while_writing(&x);
    /* drain: every change is committed now */
    list_until_end(&x, 1000, false);
    CHECKM(x.s.repeats == 0, "%d changes were listed twice", x.s.repeats);

    list_check_final(&x);
    printf("listed %d changes of %d submissions (%d writes, %d pages)\n", x.s.items, NSUB, x.ops,
           x.pages);
    json_decref(x.s.last);
    json_decref(x.s.pairs);
    sm_client_free(&x.c);
    CHECK(stop_broker(SIGTERM) == 0);
}

/* ---- events ---- */

/* The next event of kind want, skipping none: every event received must be expected. */
static json_t *expect_event(void *sub, const char *want, long long sid)
{
    char topic[256];
    json_t *e = next_event(sub, 10000, topic);
    CHECKM(e, "no %s event", want);
    CHECKM(!strcmp(sget(e, "event"), want), "event %s, want %s", sget(e, "event"), want);
    char t[64];
    snprintf(t, sizeof t, "CS101/hw1/%s", want);
    CHECKM(!strcmp(topic, t), "topic %s", topic);
    CHECK(json_integer_value(json_object_get(e, "submission_id")) == sid);
    return e;
}

static void case_events(void)
{
    setup("gevents", NULL);
    start_broker();
    void *ctx = zmq_ctx_new();
    void *sub = sub_socket(ctx, "CS101/");
    sleep_ms(300); /* let the subscription reach the broker */
    sm_client *c = client();
    make_assignment(c, "CS101", "hw1", "proof", NULL);
    add_teacher();
    long long a = submit(c, "k-a", "batch", NULL);
    grade_on(E.db, a, 1); /* its outbox row is not relayed: `result` is the broker's own */
    review_on(E.db, a, "adjust", 3, "see me");
    json_t *e = expect_event(sub, "reviewed", a);
    json_t *f = json_object_get(e, "final");
    CHECK(!strcmp(sget(f, "state"), "adjusted") && nget(f, "score") == 3);
    CHECK(!strcmp(sget(e, "kind"), "submission.reviewed") &&
          !strcmp(sget(e, "student_ref"), "s-1"));
    json_decref(e);
    review_on(E.db, a, "release", 0, "");
    e = expect_event(sub, "released", a);
    CHECK(!strcmp(sget(json_object_get(e, "final"), "state"), "released"));
    json_decref(e);
    /* a worker's result: one `result` event, no relayed copy */
    long long b = submit(c, "k-b", "interactive", NULL);
    pid_t w = start_worker("--results", "1", NULL, NULL, NULL, NULL);
    CHECK(wait_worker(w, 20000) == 0);
    e = expect_event(sub, "result", b);
    json_decref(e);
    review_on(E.db, b, "approve", 0, "");
    e = expect_event(sub, "reviewed", b); /* nothing else came before it */
    json_decref(e);
    char topic[256];
    CHECK(next_event(sub, 600, topic) == NULL);
    zmq_close(sub);
    zmq_ctx_term(ctx);
    sm_client_free(&c);
    CHECK(stop_broker(SIGTERM) == 0);
}

/* ---- stepmark list / status ---- */

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
    setup("gcli", NULL);
    start_broker();
    sm_client *c = client();
    make_assignment(c, "CS101", "hw1", "proof", NULL);
    add_teacher();
    long long a = submit(c, "k-a", "batch", NULL);
    for (int i = 0; i < 4; i++) {
        char key[16];
        snprintf(key, sizeof key, "k-%d", i);
        submit(c, key, "batch", NULL);
    }
    grade_on(E.db, a, 1);
    review_on(E.db, a, "adjust", 4, "Nice");
    const char *s = E.cli, *cf = E.cfg;
    CHECK(sh("%s status --config %s %lld | grep -q 'final: adjusted, score 4 / 4, reviewed by Ada'",
             s, cf, a) == 0);
    CHECK(sh("%s list --config %s --course CS101 --assignment hw1 > list.txt", s, cf) == 0);
    CHECK(sh("grep -Eq '^%lld +s-1 +done +adjusted +4/4' list.txt && grep -q '^next cursor: c1' "
             "list.txt",
             a) == 0);
    CHECK(sh("%s list --config %s --course CS101 --assignment hw1 --limit 2 --json > p1.json", s,
             cf) == 0);
    CHECK(sh("grep -q '\"more\": true' p1.json") == 0);
    CHECK(sh("%s list --config %s --course CS101 --assignment hw1 --limit 2 --all --json |"
             " grep -c '\"submission_id\"' | grep -qx 5",
             s, cf) == 0);
    CHECK(sh("cur=$(sed -n 's/.*\"next_cursor\": \"\\(.*\\)\".*/\\1/p' p1.json) &&"
             " %s list --config %s --course CS101 --assignment hw1 --cursor \"$cur\" --json |"
             " grep -c '\"submission_id\"' | grep -qx 3",
             s, cf) == 0);
    CHECK(sh("%s list --config %s --course CS101 --assignment hw1 --since 2000-01-01T00:00:00Z"
             " --json | grep -c '\"submission_id\"' | grep -qx 5",
             s, cf) == 0);
    CHECK(sh("%s list --config %s --course CS101 --assignment hw1 --limit 0", s, cf) == 2);
    CHECK(sh("%s list --config %s --course CS101", s, cf) == 2);
    CHECK(sh("%s list --config %s --course CS101 --assignment hw1 --cursor bad", s, cf) == 1);
    sm_client_free(&c);
    CHECK(stop_broker(SIGTERM) == 0);
}

int main(int argc, char **argv)
{
    static const itest_case cases[] = {
        {"final", case_final}, {"list", case_list}, {"events", case_events}, {"cli", case_cli}};
    return itest_main(argc, argv, "grades_itest", cases, sizeof cases / sizeof cases[0]);
}
