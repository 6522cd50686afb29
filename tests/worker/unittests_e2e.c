/* unittests_e2e: tests of functions and classes end to end, through the CLI (assignments from
 * YAML with --tests-file; `stepmark submit FOLDER`, with --map for notebooks), the broker,
 * PostgreSQL and the real stepmark-worker (small random model) running the tests in its sandbox:
 * Python call and pytest tests, a C driver, a C++ driver testing a class, a Java JUnit class and
 * call tests of a notebook's functions. The check_result rows say which tests passed, their
 * points, what was called with what, what came back against what was expected, and the
 * exceptions; the compile check carries the points summary. A folder submitted again creates
 * nothing; a broken notebook and a file the map does not name are reported while the rest go.
 * The data is in tests/worker/unittests_e2e/.
 * Usage: unittests_e2e STEPMARKD STEPMARK_WORKER MODEL_DIR STEPMARK DATA_DIR */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest_env.h"

static const char *model_dir, *data;
static pid_t worker_pid;

static void setup_unittests(void)
{
    setup("unittests", "");
    char extra[1024];
    snprintf(extra, sizeof extra,
             "  heartbeat_ms: 200\n  heartbeat_timeout_ms: 3000\n  lease_ms: 120000\n"
             "worker:\n  name: unittests\n  broker_endpoint: \"%s\"\n  model: \"%s\"\n"
             "  dtype: f32\n  isa: portable\n  threads: 2\n  slots: 4\n  max_prompt_tokens: 4096\n"
             "  max_new_tokens: 8\n  samples: 1\n  deterministic: true\n",
             E.wep, model_dir);
    write_config(extra);
}

static const char *path_of(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", data, name);
    return buf[k];
}

/* Assignment code from CODE.yaml and CODE-tests.json, through the CLI. */
static void make_assignment_from(const char *code)
{
    char yaml[64], tests[64];
    snprintf(yaml, sizeof yaml, "%s.yaml", code);
    snprintf(tests, sizeof tests, "%s-tests.json", code);
    CHECKM(cli_run("assignment", "create", "--course", "U1", "--code", code, "--file",
                   path_of(yaml), "--tests-file", path_of(tests), NULL) == 0,
           "assignment %s: %s", code, E.cli_out);
}

/* The source folders: one submission per file, the student from the file name; again: all
 * already submitted. */
static void submit_sources(void)
{
    static const char *const codes[] = {"py", "c", "cpp", "java"};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
        CHECKM(cli_run("submit", "--course", "U1", "--assignment", codes[i], path_of(codes[i]),
                       NULL) == 0,
               "submit %s: %s", codes[i], E.cli_out);
        CLI_SAID("new, 0 already submitted, 0 failed");
    }
    CHECK(cli_run("submit", "--course", "U1", "--assignment", "py", path_of("py"), NULL) == 0);
    CLI_SAID("submitted 2 of 2 files");
    CLI_SAID(": 0 new, 2 already submitted, 0 failed");
    CHECK(q_int("SELECT count(*) FROM submission") == 7);
    CHECK(q_int("SELECT count(*) FROM submission s JOIN assignment a ON a.id = s.assignment_id"
                " WHERE a.code = 'java' AND s.student_ref IN ('ana', 'ben')") == 2);
}

/* The notebooks with --map: the broken one and the file the map does not name fail by name,
 * the others are submitted under the map's students; again: nothing new. */
static void submit_notebooks(void)
{
    for (int round = 0; round < 2; round++) {
        CHECK(cli_run("submit", "--course", "U1", "--assignment", "nb", "--map",
                      path_of("nb-map.csv"), path_of("nb"), NULL) == 1);
        CLI_SAID("broken.ipynb: ");
        CLI_SAID("cells");
        CLI_SAID("notes.txt: not in the map");
        CLI_SAID("submitted 2 of 4 files");
        CLI_SAID(round == 0 ? ": 2 new, 0 already submitted, 2 failed"
                            : ": 0 new, 2 already submitted, 2 failed");
    }
    CHECK(q_int("SELECT count(*) FROM submission s JOIN assignment a ON a.id = s.assignment_id"
                " WHERE a.code = 'nb' AND s.student_ref IN ('carla@example.org',"
                " 'dan@example.org') AND s.content LIKE '{%%'") == 2);
    CHECK(q_int("SELECT count(*) FROM submission WHERE student_ref = 'eve@example.org'") == 0);
    CHECK(q_int("SELECT count(*) FROM submission") == 9);
}

/* q_int(sql) reaches want; fails at once when the worker exits. */
static void wait_graded(long long want, long timeout_ms, const char *sql)
{
    long end = now_ms() + timeout_ms;
    long long v = -2;
    while (now_ms() < end) {
        if ((v = q_int("%s", sql)) >= want)
            return;
        CHECKM(waitpid(worker_pid, NULL, WNOHANG) != worker_pid, "the worker exited");
        sleep_ms(200);
    }
    fail("waited %ld ms for %s >= %lld, have %lld", timeout_ms, sql, want, v);
}

#define LATEST                                                                                  \
    " FROM check_result cr JOIN grading g ON g.id = cr.grading_id"                              \
    " JOIN submission s ON s.id = g.submission_id JOIN assignment a ON a.id = s.assignment_id," \
    " LATERAL (SELECT cr.details AS d) x WHERE a.code = '%s' AND s.student_ref = '%s'"          \
    " AND g.id = (SELECT max(id) FROM grading WHERE submission_id = s.id)"

/* The test named name of student's latest grading in assignment: passed as want, its points
 * pts (earned when passed), and its details d match cond (SQL). */
static void check_test(const char *assignment, const char *student, const char *name, bool want,
                       double pts, const char *cond)
{
    long long n = q_int("SELECT count(*)" LATEST " AND cr.kind = 'test' AND cr.name = '%s'"
                        " AND cr.passed = %s AND (d->>'points')::float = %g"
                        " AND (d->>'points_earned')::float = %g AND (%s)",
                        assignment, student, name, want ? "true" : "false", pts, want ? pts : 0,
                        cond ? cond : "true");
    if (n != 1) {
        PGresult *r = PQexecParams(E.db,
                                   "SELECT cr.name, cr.passed, cr.details::text FROM check_result"
                                   " cr JOIN grading g ON g.id = cr.grading_id JOIN submission s"
                                   " ON s.id = g.submission_id WHERE s.student_ref = $1",
                                   1, NULL, (const char *[]){student}, NULL, NULL, 0);
        for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++)
            fprintf(stderr, "  %s %s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                    PQgetvalue(r, i, 2));
        PQclear(r);
        fail("%s/%s: test \"%s\" is not %s with %g points and %s", assignment, student, name,
             want ? "passed" : "failed", pts, cond ? cond : "");
    }
}

/* The number of tests and the points summary (on the compile check) of the latest grading. */
static void check_points(const char *assignment, const char *student, int tests, double earned,
                         double total)
{
    CHECKM(q_int("SELECT count(*)" LATEST " AND cr.kind = 'test'", assignment, student) == tests,
           "%s/%s: not %d tests", assignment, student, tests);
    CHECKM(q_int("SELECT count(*)" LATEST " AND cr.kind = 'compile' AND cr.passed"
                 " AND (d->'points'->>'earned')::float = %g"
                 " AND (d->'points'->>'total')::float = %g",
                 assignment, student, earned, total) == 1,
           "%s/%s: the points are not %g of %g", assignment, student, earned, total);
}

static void check_python(void)
{
    check_points("py", "ana", 5, 8, 8);
    check_test("py", "ana", "abba", true, 2,
               "d->>'kind' = 'call' AND d->>'function' = 'is_palindrome'"
               " AND d->'args' = '[\"Ab,ba\"]'");
    check_test("py", "ana", "empty mean", true, 1,
               "d->>'function' = 'mean' AND d->'exception'->>'type' = 'ValueError'");
    check_test("py", "ana", "teacher: test_racecar", true, 2, "d->>'kind' = 'pytest'");
    check_test("py", "ana", "teacher: test_mean", true, 2, NULL);
    check_points("py", "ben", 5, 3, 8);
    check_test("py", "ben", "abba", false, 2,
               "d->>'returned' = 'false' AND d->>'expected' = 'true'"
               " AND d->>'function' = 'is_palindrome' AND d->'args' = '[\"Ab,ba\"]'");
    check_test("py", "ben", "abc", true, 1, NULL);
    check_test("py", "ben", "empty mean", false, 1,
               "d->'exception'->>'type' = 'ZeroDivisionError' AND d->>'function' = 'mean'"
               " AND d->>'error' LIKE 'raised ZeroDivisionError%%'"
               " AND d->'args' = '[[]]'");
    check_test("py", "ben", "teacher: test_racecar", false, 2, "d->>'error' LIKE '%%assert%%'");
    check_test("py", "ben", "teacher: test_mean", true, 2, NULL);
}

static void check_compiled(void)
{
    check_points("c", "ana", 2, 4, 4);
    check_test("c", "ana", "palindromes", true, 3, "d->>'kind' = 'driver'");
    check_test("c", "ana", "gcd", true, 1, NULL);
    check_points("c", "ben", 2, 3, 4);
    check_test("c", "ben", "gcd", false, 1, "d->>'error' = 'exit code 1'");
    check_points("cpp", "ana", 2, 3, 3);
    check_test("cpp", "ana", "push and pop", true, 2, "d->>'kind' = 'driver'");
    check_test("cpp", "ana", "empty", true, 1, "d->>'expected' = '10'");
    check_points("java", "ana", 2, 2, 2);
    check_test("java", "ana", "unit: yes()", true, 1, "d->>'kind' = 'junit'");
    check_test("java", "ana", "unit: no()", true, 1, NULL);
    check_points("java", "ben", 2, 1, 2);
    check_test("java", "ben", "unit: no()", false, 1,
               "d->>'error' LIKE '%%abc is no palindrome%%'");
}

/* The notebooks' functions were called; the outputs stored in them are nowhere. */
static void check_notebooks(void)
{
    check_points("nb", "carla@example.org", 2, 3, 3);
    check_test("nb", "carla@example.org", "square", true, 2, "d->>'function' = 'square'");
    check_test("nb", "carla@example.org", "cube", true, 1, NULL);
    check_points("nb", "dan@example.org", 2, 2, 3);
    check_test("nb", "dan@example.org", "cube", false, 1,
               "d->>'returned' = '6' AND d->>'expected' = '8' AND d->'args' = '[2]'");
    CHECK(q_int("SELECT count(*) FROM check_result WHERE details::text LIKE '%%STORED-OUTPUT%%'"
                " OR output_excerpt LIKE '%%STORED-OUTPUT%%'") == 0);
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: unittests_e2e STEPMARKD STEPMARK_WORKER MODEL_DIR STEPMARK "
                        "DATA_DIR\n");
        return 2;
    }
    E.stepmarkd = argv[1];
    E.worker = argv[2];
    model_dir = argv[3];
    E.cli = argv[4];
    data = argv[5];
    signal(SIGPIPE, SIG_IGN);
    setup_unittests();
    start_broker();
    CHECK(cli_run("course", "create", "--code", "U1", "--title", "Programming", NULL) == 0);
    static const char *const codes[] = {"py", "c", "cpp", "java", "nb"};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
        make_assignment_from(codes[i]);
    submit_sources();
    submit_notebooks();
    char log[128];
    snprintf(log, sizeof log, "%s/worker.log", E.dir);
    char *wargv[] = {(char *)E.worker, "--config", E.cfg, NULL};
    worker_pid = spawn(log, wargv);
    E.workers[E.nworkers++] = worker_pid; /* cleanup() kills it */
    wait_graded(9, 480000, "SELECT count(*) FROM grading");
    check_python();
    check_compiled();
    check_notebooks();
    printf("unittests_e2e: ok\n");
    cleanup();
    return 0;
}
