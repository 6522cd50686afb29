/* answer_e2e: an assignment's answer_policy end to end, through the CLI (stepmark assignment
 * create|update --answer-policy and a YAML file), the broker's validation (the worker's own
 * parser), PostgreSQL (assignment.answer_policy, the JOB body) and the real stepmark-worker with
 * a small random model: answers written in prose are found and compared under the policy, and
 * the check_result rows say what was extracted, by which rule, from which sentence, and how
 * units and percents were read. The random model writes no valid verdict, so each grading is
 * needs_review; the answer check is deterministic and decides "passed" on its own.
 * Usage: answer_e2e STEPMARKD STEPMARK_WORKER MODEL_DIR STEPMARK */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest_env.h"

static const char *model_dir;
static pid_t worker_pid;

static void setup_answer(void)
{
    setup("answer", "");
    char extra[1024];
    snprintf(extra, sizeof extra,
             "  heartbeat_ms: 200\n  heartbeat_timeout_ms: 3000\n  lease_ms: 60000\n"
             "worker:\n  name: answer\n  broker_endpoint: \"%s\"\n  model: \"%s\"\n"
             "  dtype: f32\n  isa: portable\n  threads: 2\n  slots: 4\n  max_prompt_tokens: 4096\n"
             "  max_new_tokens: 8\n  samples: 1\n  deterministic: true\n",
             E.wep, model_dir);
    write_config(extra);
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

/* A math assignment through the protocol, with policy (a JSON text, or NULL for none). */
static void create_math(sm_client *c, const char *code, const char *key, const char *policy)
{
    json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:s, s:f}", "course", "M1", "code", code, "kind",
                          "math", "statement", "Compute it.", "answer_key", key, "max_score", 2.0);
    if (policy)
        json_object_set_new(b, "answer_policy", json_loads(policy, 0, NULL));
    json_decref(call_ok(c, "ASSIGNMENT_CREATE", b));
}

/* An assignment body whose answer_policy is the JSON text policy must be refused with SM_EINVAL
 * and a message containing want. */
static void check_refused(sm_client *c, const char *cmd, const char *policy, const char *want)
{
    json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "course", "M1", "code", "bad", "kind",
                          "math", "statement", "x", "answer_key", "1", "answer_policy",
                          json_loads(policy, JSON_DECODE_ANY, NULL));
    char msg[256] = "";
    sm_code rc = call_err(c, cmd, b, msg);
    CHECKM(rc == SM_EINVAL && strstr(msg, want), "%s with answer_policy %s: %s \"%s\"", cmd, policy,
           sm_code_name(rc), msg);
}

/* Bad policies: refused by the broker with the parser's message, and by the CLI before sending
 * when not JSON at all; nothing is stored. */
static void check_validation(sm_client *c)
{
    check_refused(c, "ASSIGNMENT_CREATE", "{\"percent\": \"half\"}",
                  "answer_policy.percent must be either, ratio or percent");
    check_refused(c, "ASSIGNMENT_CREATE", "{\"units\": \"metric\"}",
                  "answer_policy.units must be check or ignore");
    check_refused(c, "ASSIGNMENT_UPDATE", "{\"tolerance\": 2}",
                  "answer_policy.tolerance must be a number from 0 to 0.5");
    check_refused(c, "ASSIGNMENT_CREATE", "{\"unit\": \"check\"}",
                  "answer_policy: unknown field \"unit\"");
    check_refused(c, "ASSIGNMENT_CREATE", "\"ratio\"", "answer_policy must be an object");
    CHECK(cli_run("assignment", "create", "--course", "M1", "--code", "bad", "--kind", "math",
                  "--statement", "x", "--answer-policy", "{percent: ratio}", NULL) != 0);
    CLI_SAID("--answer-policy is not JSON");
    CHECK(cli_run("assignment", "create", "--course", "M1", "--code", "bad", "--kind", "math",
                  "--statement", "x", "--answer-policy", "{\"percent\": \"ratios\"}", NULL) != 0);
    CLI_SAID("answer_policy.percent must be either, ratio or percent");
    CHECK(q_int("SELECT count(*) FROM assignment WHERE code = 'bad'") == 0);
}

/* ratio and len through the CLI (a flag, and a YAML file), half and half2 through the
 * protocol: the same key and answer, with and without percent "ratio". */
static void make_assignments(sm_client *c)
{
    CHECK(cli_run("course", "create", "--code", "M1", "--title", "Maths", NULL) == 0);
    CHECK(cli_run("assignment", "create", "--course", "M1", "--code", "ratio", "--kind", "math",
                  "--statement", "Add 1/2 and 1/4.", "--answer-key", "0.75", "--answer-policy",
                  "{\"percent\": \"ratio\", \"units\": \"check\"}", NULL) == 0);
    char path[128];
    snprintf(path, sizeof path, "%s/len.yaml", E.dir);
    FILE *fp = fopen(path, "w");
    CHECK(fp);
    fprintf(fp, "course: M1\ncode: len\nkind: math\nstatement: How long is the rope?\n"
                "answer_key: 2.5 m\nmax_score: 2\nanswer_policy:\n  units: check\n"
                "  tolerance: 0.001\n");
    fclose(fp);
    CHECK(cli_run("assignment", "create", "--file", path, NULL) == 0);
    create_math(c, "half", "50", "{\"percent\": \"ratio\"}");
    create_math(c, "half2", "50", NULL);
    CHECK(q_int("SELECT count(*) FROM assignment WHERE code = 'ratio' AND answer_policy ="
                " '{\"percent\": \"ratio\", \"units\": \"check\"}'") == 1);
    CHECK(q_int("SELECT count(*) FROM assignment WHERE code = 'len' AND answer_policy ="
                " '{\"units\": \"check\", \"tolerance\": 0.001}'") == 1);
    CHECK(q_int("SELECT count(*) FROM assignment WHERE code = 'half2' AND answer_policy IS NULL") ==
          1);
    json_t *g =
        call_ok(c, "ASSIGNMENT_GET", json_pack("{s:s, s:s}", "course", "M1", "code", "half"));
    CHECK(
        !strcmp(json_string_value(json_object_get(json_object_get(g, "answer_policy"), "percent")),
                "ratio"));
    json_decref(g);
}

/* The answer check of submission sid: passed as want, and the details match cond (SQL on d). */
static void check_answer(long long sid, bool want, const char *cond)
{
    long long gid = q_int("SELECT max(id) FROM grading WHERE submission_id = %lld", sid);
    CHECKM(q_int("SELECT count(*) FROM check_result WHERE grading_id = %lld AND kind = 'answer'"
                 " AND passed = %s",
                 gid, want ? "true" : "false") == 1,
           "submission %lld: the answer check did not %s", sid, want ? "pass" : "fail");
    CHECKM(q_int("SELECT count(*) FROM check_result, LATERAL (SELECT details AS d) x"
                 " WHERE grading_id = %lld AND kind = 'answer' AND %s",
                 gid, cond) == 1,
           "submission %lld: the details do not match %s", sid, cond);
}

static void check_gradings(const long long *s)
{
    check_answer(s[0], true,
                 "d->>'extracted' = '0.75' AND d->>'rule' = '\"the result is\" sentence'"
                 " AND d->>'source' = 'Hence the result is 0.75'"
                 " AND d->'values'->>'extracted' = '3/4' AND d->'policy'->>'percent' = 'ratio'");
    check_answer(s[1], true,
                 "d->>'extracted' = '75%' AND d->>'percent' LIKE '%read as a ratio%'"
                 " AND d->'values'->>'extracted' = '3/4'");
    check_answer(s[2], true,
                 "d->>'extracted' = '250 cm' AND d->>'rule' = 'answer line'"
                 " AND d->>'source' = 'Answer: 250 cm' AND d->>'units' LIKE '%converted to%'"
                 " AND (d->'policy'->>'tolerance')::float = 0.001");
    check_answer(s[3], false,
                 "d->>'extracted' = '2.5 kg' AND d->>'units' LIKE '%measure different things%'");
    check_answer(s[4], false,
                 "d->>'extracted' = '50%' AND d->>'source' = 'We get 50%'"
                 " AND d->'values'->>'extracted' = '1/2' AND d->'values'->>'expected' = '50'"
                 " AND d->>'percent' LIKE '%read as a ratio%'");
    check_answer(s[5], true,
                 "d->>'extracted' = '50%' AND d->'policy'->>'percent' = 'either'"
                 " AND d->>'detail' LIKE '%are equal%'");
}

/* Updates through the CLI: a new policy replaces the old one; null clears it. */
static void check_update(void)
{
    CHECK(cli_run("assignment", "update", "--course", "M1", "--code", "ratio", "--answer-policy",
                  "{\"percent\": \"percent\"}", NULL) == 0);
    CHECK(q_int("SELECT count(*) FROM assignment WHERE code = 'ratio' AND answer_policy ="
                " '{\"percent\": \"percent\"}'") == 1);
    CHECK(cli_run("assignment", "update", "--course", "M1", "--code", "ratio", "--title", "Sums",
                  NULL) == 0);
    CHECK(q_int("SELECT count(*) FROM assignment WHERE code = 'ratio' AND answer_policy ="
                " '{\"percent\": \"percent\"}'") == 1);
    CHECK(cli_run("assignment", "update", "--course", "M1", "--code", "ratio", "--answer-policy",
                  "null", NULL) == 0);
    CHECK(q_int("SELECT count(*) FROM assignment WHERE code = 'ratio' AND answer_policy IS NULL"
                " AND title = 'Sums'") == 1);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: answer_e2e STEPMARKD STEPMARK_WORKER MODEL_DIR STEPMARK\n");
        return 2;
    }
    E.stepmarkd = argv[1];
    E.worker = argv[2];
    model_dir = argv[3];
    E.cli = argv[4];
    signal(SIGPIPE, SIG_IGN);
    setup_answer();
    start_broker();
    sm_client *c = client();
    make_assignments(c);
    check_validation(c);
    long long s[6];
    s[0] = submit_to(c, "ratio", "s1", "We add 1/2 and 1/4.\nHence the result is 0.75");
    s[1] = submit_to(c, "ratio", "s2", "Half and a quarter.\nWe get 75%");
    s[2] = submit_to(c, "len", "s3", "One metre is 100 cm.\nAnswer: 250 cm");
    s[3] = submit_to(c, "len", "s4", "Answer: 2.5 kg");
    s[4] = submit_to(c, "half", "s5", "Half of it.\nWe get 50%");
    s[5] = submit_to(c, "half2", "s6", "Half of it.\nWe get 50%");
    char log[128];
    snprintf(log, sizeof log, "%s/worker.log", E.dir);
    char *wargv[] = {(char *)E.worker, "--config", E.cfg, NULL};
    worker_pid = spawn(log, wargv);
    E.workers[E.nworkers++] = worker_pid; /* cleanup() kills it */
    wait_for(6, 240000, "SELECT count(*) FROM grading");
    check_gradings(s);
    check_update();
    sm_client_free(&c);
    printf("answer_e2e: ok\n");
    cleanup();
    return 0;
}
