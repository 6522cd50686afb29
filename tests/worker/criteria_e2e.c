/* criteria_e2e: an assignment whose rubric is a list of criteria (issue 31), end to end through
 * the real broker (stepmarkd), the real worker (worker.engine: remote) and PostgreSQL (the ctest
 * "pg" fixture). The model's output must be exact, so the OpenAI-compatible server is the
 * scripted stand-in tests/worker/scripted_openai.py: its answers are fixed verdict blocks with
 * CRITERION lines. The assignment is created with its criteria over the protocol, the JOB
 * carries them, the worker's answer check runs, and the stored grading has one
 * grading_criterion row per criterion (position, id, description, maximum, verdict, points,
 * evidence, agreement) with score = the sum of the points. The first submission's block is
 * accepted as written (and its answer criterion, 0 points while the answer check passed, is
 * flagged checks_contradict_criterion); the second's SCORE is not the sum of its criteria, so
 * the worker sends its one repair request and grades with the answer. `stepmark result` shows
 * the criteria to a teacher at the command line.
 * Usage: criteria_e2e STEPMARKD STEPMARK_WORKER MODEL_DIR PYTHON SCRIPTED_SERVER STEPMARK */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest_env.h"

static const char *model_dir, *python, *server_script;
static int port;
static pid_t worker_pid, server_pid;

#define STEPS                                                                                \
    "=== VERDICT ===\n"                                                                      \
    "STEP 1: correct\nQUOTE: Let n = 1: 1 = 1(1+1)/2.\nWHY: the base case holds\n"           \
    "STEP 2: incomplete\nQUOTE: assume it holds for n\nWHY: the step from n to n+1 is only " \
    "sketched\n"

/* The first submission: accepted as written. */
static const char *const BLOCK_1 =
    "<think>\nThe student checks n = 1, then assumes the formula for n. The inductive step "
    "is sketched, not proved. The final answer 55 is right, but I will not credit it.\n"
    "</think>\n\n" STEPS "CRITERION setup: met 2/2\nEVIDENCE: Let n = 1: 1 = 1(1+1)/2.\n"
    "CRITERION step: partly 1.5/3\nEVIDENCE: \"assume it holds for n\"\n"
    "CRITERION answer: not_met 0/1\nEVIDENCE: none\n"
    "SCORE: 3.5/6\nSUMMARY: A sound base case; the inductive step needs the algebra.\n"
    "=== END VERDICT ===\n";

/* The second: its SCORE is not the sum (refused), then the repair answer. */
static const char *const BLOCK_2 =
    STEPS "CRITERION setup: met 2/2\nEVIDENCE: Let n = 1: 1 = 1(1+1)/2.\n"
          "CRITERION step: met 3/3\nEVIDENCE: (n+1)(n+2)/2 follows by adding n+1\n"
          "CRITERION answer: met 1/1\nEVIDENCE: so the sum is 55\n"
          "SCORE: 5/6\nSUMMARY: Complete.\n=== END VERDICT ===\n";
static const char *const REPAIR_2 =
    STEPS "CRITERION setup: met 2/2\nEVIDENCE: Let n = 1: 1 = 1(1+1)/2.\n"
          "CRITERION step: met 3/3\nEVIDENCE: (n+1)(n+2)/2 follows by adding n+1\n"
          "CRITERION answer: met 1/1\nEVIDENCE: so the sum is 55\n"
          "SCORE: 6/6\nSUMMARY: Complete and correct.\n=== END VERDICT ===\n";

static void kill_server(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
        server_pid = 0;
    }
}

/* The whole file ("" when it cannot be read; malloc'd). */
static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    char *buf = calloc(1, 1 << 16);
    CHECK(buf);
    if (fp) {
        size_t n = fread(buf, 1, (1 << 16) - 1, fp);
        buf[n] = '\0';
        fclose(fp);
    }
    return buf;
}

static void start_server(void)
{
    char script[128], log[128], ports[16];
    snprintf(script, sizeof script, "%s/script.json", E.dir);
    json_t *s = json_pack("{s:s, s:s, s:[s, s, s]}", "model", "scripted-model", "fingerprint",
                          "fp_scripted", "responses", BLOCK_1, BLOCK_2, REPAIR_2);
    CHECK(s && json_dump_file(s, script, JSON_INDENT(1)) == 0);
    json_decref(s);
    snprintf(log, sizeof log, "%s/server.log", E.dir);
    snprintf(ports, sizeof ports, "%d", port);
    char *argv[] = {(char *)python, (char *)server_script, ports, script, NULL};
    server_pid = spawn(log, argv);
    long end = now_ms() + 30000;
    for (;;) {
        char *t = slurp(log);
        bool ready = strstr(t, "ready") != NULL;
        free(t);
        if (ready)
            break;
        CHECKM(now_ms() < end, "the scripted server did not start (see %s)", log);
        CHECKM(waitpid(server_pid, NULL, WNOHANG) != server_pid, "the scripted server exited");
        sleep_ms(50);
    }
}

static void setup_env(void)
{
    setup("criteria", "");
    port = free_port(); /* the scripted server's, in the worker's configuration */
    char extra[2048];
    snprintf(extra, sizeof extra,
             "  heartbeat_ms: 200\n  heartbeat_timeout_ms: 3000\n  lease_ms: 120000\n"
             "worker:\n  name: criteria\n  broker_endpoint: \"%s\"\n  model: \"%s\"\n"
             "  max_prompt_tokens: 8192\n  max_new_tokens: 1024\n  samples: 1\n"
             "  engine: remote\n  remote:\n    base_url: \"http://127.0.0.1:%d/v1/\"\n"
             "    model: scripted-model\n    max_concurrency: 1\n    timeout_ms: 60000\n"
             "    retries: 3\n",
             E.wep, model_dir, port);
    write_config(extra);
}

static void make_assignment_with_criteria(sm_client *c)
{
    json_decref(call_ok(c, "COURSE_PUT", json_pack("{s:s, s:s}", "code", "M1", "title", "Maths")));
    json_t *rubric =
        json_pack("[{s:s, s:s, s:i}, {s:s, s:s, s:f}, {s:s, s:s, s:i, s:[s]}]", "id", "setup",
                  "description", "Checks the base case n = 1", "points", 2, "id", "step",
                  "description", "Proves the inductive step", "points", 3.0, "id", "answer",
                  "description", "Gives 1 + 2 + ... + 10 = 55", "points", 1, "checks", "answer");
    CHECK(rubric);
    json_decref(call_ok(c, "ASSIGNMENT_CREATE",
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s}", "course", "M1", "code",
                                  "sum", "kind", "math", "title", "Sums", "statement",
                                  "Prove 1 + ... + n = n(n+1)/2 and compute 1 + ... + 10.",
                                  "rubric", rubric, "answer_key", "55")));
    CHECK(q_int("SELECT count(*) FROM assignment WHERE code = 'sum' AND max_score = 6 AND"
                " jsonb_array_length(rubric_criteria) = 3") == 1);
}

static long long submit_one(sm_client *c, const char *key, const char *content, long long n)
{
    json_t *r = call_ok(c, "SUBMIT",
                        json_pack("{s:s, s:s, s:s, s:s, s:s}", "course", "M1", "assignment", "sum",
                                  "student_ref", key, "idempotency_key", key, "content", content));
    long long id = json_integer_value(json_object_get(r, "submission_id"));
    json_decref(r);
    CHECK(id > 0);
    long end = now_ms() + 120000;
    while (q_int("SELECT count(*) FROM grading") < n) {
        CHECKM(now_ms() < end, "submission %lld was not graded", id);
        CHECKM(waitpid(worker_pid, NULL, WNOHANG) != worker_pid, "the worker exited");
        sleep_ms(100);
    }
    return q_int("SELECT id FROM grading WHERE submission_id = %lld", id);
}

/* Criterion row `pos` of grading g as expected (evidence NULL: not compared). */
static void check_row(long long g, int pos, const char *id, double max, const char *verdict,
                      double points, const char *evidence)
{
    char ev[512] = "";
    if (evidence)
        snprintf(ev, sizeof ev, " AND evidence = '%s'", evidence);
    long long n = q_int("SELECT count(*) FROM grading_criterion WHERE grading_id = %lld AND"
                        " position = %d AND criterion_id = '%s' AND max_points = %g AND"
                        " verdict = '%s' AND points = %g AND agreement = 1 AND"
                        " description <> ''%s",
                        g, pos, id, max, verdict, points, ev);
    CHECKM(n == 1, "grading %lld: criterion %d (%s) is not %s %g/%g%s", g, pos, id, verdict, points,
           max, ev);
}

static void check_gradings(long long g1, long long g2)
{
    check_row(g1, 1, "setup", 2, "met", 2, "Let n = 1: 1 = 1(1+1)/2.");
    check_row(g1, 2, "step", 3, "partly", 1.5, "assume it holds for n");
    check_row(g1, 3, "answer", 1, "not_met", 0, "");
    check_row(g2, 1, "setup", 2, "met", 2, NULL);
    check_row(g2, 2, "step", 3, "met", 3, "(n+1)(n+2)/2 follows by adding n+1");
    check_row(g2, 3, "answer", 1, "met", 1, "so the sum is 55");
    CHECK(q_int("SELECT count(*) FROM grading_criterion") == 6);
    /* score = the sum of the criteria's points; the maximum their total */
    CHECK(q_int("SELECT count(*) FROM grading g WHERE g.max_score = 6 AND g.score ="
                " (SELECT sum(points) FROM grading_criterion c WHERE c.grading_id = g.id)") == 2);
    CHECK(q_int("SELECT count(*) FROM grading WHERE id = %lld AND score = 3.5", g1) == 1);
    CHECK(q_int("SELECT count(*) FROM grading WHERE id = %lld AND score = 6", g2) == 1);
    /* the answer check ran in the worker and passed both times */
    CHECK(q_int("SELECT count(*) FROM check_result WHERE kind = 'answer' AND passed") == 2);
    /* 0 points for the answer criterion while its check passed: flagged */
    CHECK(q_int("SELECT count(*) FROM grading WHERE id = %lld AND status = 'needs_review' AND"
                " 'checks_contradict_criterion' = ANY(flags)",
                g1) == 1);
    CHECK(q_int("SELECT count(*) FROM grading WHERE id = %lld AND status = 'graded' AND"
                " cardinality(flags) = 0",
                g2) == 1);
    /* the second was repaired: the rejection is in its chain */
    CHECK(q_int("SELECT count(*) FROM reasoning_chain WHERE grading_id = %lld AND text LIKE"
                " '%%[verdict block rejected: SCORE 5/6 is not the sum of the criteria''s"
                " points, 6%%'",
                g2) == 1);
    CHECK(q_int("SELECT count(*) FROM grading WHERE model_name = 'scripted-model' AND"
                " model_hash = 'fp_scripted' AND prompt_template_version = 'math-v2'") == 2);
}

/* `stepmark result` shows the criteria of grading g1 to a teacher at the command line. */
static void check_cli_result(long long g1)
{
    char sid[32];
    snprintf(sid, sizeof sid, "%lld",
             q_int("SELECT submission_id FROM grading WHERE id = %lld", g1));
    CHECK(cli_run("result", sid, NULL) == 0);
    CLI_SAID("criteria:");
    CLI_SAID("setup        met        2 / 2");
    CLI_SAID("step         partly     1.5 / 3");
    CLI_SAID("answer       not_met    0 / 1");
    CLI_SAID("evidence: Let n = 1: 1 = 1(1+1)/2.");
}

/* GET path from the scripted server: the JSON body. */
static json_t *get_json(const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\n\r\n", path);
    CHECK(write(fd, req, (size_t)n) == n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    CHECK(buf);
    ssize_t r;
    while (len + 1 < cap && (r = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    buf[len] = '\0';
    close(fd);
    char *body = strstr(buf, "\r\n\r\n");
    json_t *j = body ? json_loads(body + 4, 0, NULL) : NULL;
    CHECKM(j != NULL, "GET %s: %.300s", path, buf);
    free(buf);
    return j;
}

/* The server saw three completions with token-id prompts and the verdict's stop string. */
static void check_requests(void)
{
    json_t *st = get_json("/_script/stats");
    CHECK(json_integer_value(json_object_get(st, "served")) == 3);
    size_t i;
    json_t *q;
    json_array_foreach(json_object_get(st, "requests"), i, q)
    {
        CHECK(!strcmp(json_string_value(json_object_get(q, "path")), "/v1/completions"));
        CHECK(!strcmp(json_string_value(json_object_get(q, "prompt_kind")), "ids"));
        CHECK(json_integer_value(json_object_get(q, "n_prompt")) > 200);
        CHECK(!strcmp(json_string_value(json_array_get(json_object_get(q, "stop"), 0)),
                      "\n=== END VERDICT ==="));
    }
    json_decref(st);
    json_t *models = get_json("/v1/models");
    CHECK(!strcmp(json_string_value(
                      json_object_get(json_array_get(json_object_get(models, "data"), 0), "id")),
                  "scripted-model"));
    json_decref(models);
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr,
                "usage: %s STEPMARKD STEPMARK_WORKER MODEL_DIR PYTHON SCRIPTED_SERVER STEPMARK\n",
                argv[0]);
        return 2;
    }
    E.cli = argv[6];
    E.stepmarkd = argv[1];
    E.worker = argv[2];
    model_dir = argv[3];
    python = argv[4];
    server_script = argv[5];
    atexit(kill_server);
    setup_env();
    start_server();
    start_broker();
    connect_db();
    sm_client *c = client();
    make_assignment_with_criteria(c);
    char log[128];
    snprintf(log, sizeof log, "%s/worker.log", E.dir);
    char *wargv[] = {(char *)E.worker, "--config", E.cfg, NULL};
    worker_pid = spawn(log, wargv);
    E.workers[E.nworkers++] = worker_pid; /* cleanup() kills it */
    long long g1 = submit_one(c, "s1",
                              "Let n = 1: 1 = 1(1+1)/2.\nAssume it holds for n.\n"
                              "So 1 + ... + 10 = \\boxed{55}",
                              1);
    long long g2 = submit_one(c, "s2",
                              "Let n = 1: 1 = 1(1+1)/2.\nAssume it holds for n; adding n+1 gives"
                              " (n+1)(n+2)/2.\nSo the sum is \\boxed{55}",
                              2);
    check_gradings(g1, g2);
    check_cli_result(g1);
    check_requests();
    sm_client_free(&c);
    kill(worker_pid, SIGTERM);
    CHECK(wait_worker(worker_pid, 60000) == 0);
    E.nworkers = 0;
    kill_server();
    cleanup();
    printf("criteria_e2e: ok\n");
    return 0;
}
