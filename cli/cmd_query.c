/* cmd_query: `stepmark status|result|wait|cancel` about submissions already sent: the state
 * of a submission's job, its grading (readable or --json), waiting for gradings to finish,
 * and cancelling. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_common.h"
#include "cmd_client.h"
#include "commands.h"

static const sm_arg_opt json_opt[] = {
    {"json", 0, SM_ARG_FLAG, NULL, "print the broker's reply as JSON", false}, {0}};

/* A submission id argument as a request body; NULL with a message when it is not one. */
static json_t *id_arg(const char *prog, const char *arg)
{
    char *end;
    long long id = strtoll(arg, &end, 10);
    if (*end || end == arg || id <= 0) {
        sm_args_usage_error(prog, "'%s' is not a submission id", arg);
        return NULL;
    }
    return json_pack("{s:I}", "submission_id", (json_int_t)id);
}

static int call(const char *cmd, const sm_args *a, const char *command, json_t *body,
                json_t **reply)
{
    sm_config cfg;
    sm_client *c;
    int rc = sm_cli_client_open(a, &cfg, &c);
    if (rc) {
        json_decref(body);
        return rc;
    }
    sm_err err;
    sm_code code = sm_client_call(c, command, body, reply, &err);
    json_decref(body);
    sm_client_free(&c);
    if (code) {
        json_decref(*reply);
        *reply = NULL;
        return sm_cli_fail(cmd, &err);
    }
    return 0;
}

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

/* A score as text: "–" (an en dash) when there is none, never 0. */
static const char *score_text(const json_t *o, const char *k, char buf[32])
{
    const json_t *v = json_object_get(o, k);
    if (!json_is_number(v))
        return "\u2013";
    snprintf(buf, 32, "%g", json_number_value(v));
    return buf;
}

/* The final block: the grade after review and release (null before any grading). */
static void print_final(const json_t *f)
{
    if (!json_is_object(f))
        return;
    char a[32], b[32];
    printf("  final: %s, score %s / %s", str(f, "state"), score_text(f, "score", a),
           score_text(f, "max_score", b));
    if (json_is_string(json_object_get(f, "reviewed_by")))
        printf(", reviewed by %s at %s", str(f, "reviewed_by"), str(f, "reviewed_at"));
    if (json_is_string(json_object_get(f, "released_by")))
        printf(", released by %s at %s", str(f, "released_by"), str(f, "released_at"));
    printf("\n");
    const char *comment = json_string_value(json_object_get(f, "comment"));
    if (comment && comment[0])
        printf("  comment: %s\n", comment);
}

static void print_status(const json_t *r)
{
    printf("submission %lld  %s/%s  student %s\n",
           (long long)json_integer_value(json_object_get(r, "submission_id")), str(r, "course"),
           str(r, "assignment"), str(r, "student_ref"));
    printf("  state %s  priority %s  attempts %lld/%lld  tokens %lld\n", str(r, "state"),
           str(r, "priority"), (long long)json_integer_value(json_object_get(r, "attempts")),
           (long long)json_integer_value(json_object_get(r, "max_attempts")),
           (long long)json_integer_value(json_object_get(r, "progress_tokens")));
    if (json_is_string(json_object_get(r, "last_error")))
        printf("  last error: %s\n", str(r, "last_error"));
    json_t *g = json_object_get(r, "grading");
    char a[32], b[32], c[32];
    if (json_is_object(g))
        printf("  grading: %s, score %s / %s\n", str(g, "status"), score_text(g, "score", a),
               score_text(g, "max_score", b));
    if (json_is_number(json_object_get(g, "provisional_score")))
        printf("  provisional score from the checks: %s / %s (a teacher may approve it)\n",
               score_text(g, "provisional_score", c), b);
    print_final(json_object_get(r, "final"));
}

static const sm_arg_opt status_opts[] = {
    {"idempotency-key", 0, SM_ARG_VALUE, "K", "the submission sent with this key", false},
    {"json", 0, SM_ARG_FLAG, NULL, "print the broker's reply as JSON", false},
    {0}};
static const sm_args_spec status_spec = {
    "stepmark status",
    "SUBMISSION_ID | --idempotency-key K",
    "The state of a submission's grading job (and its grading when done).",
    status_opts,
    sm_cli_client_opts,
    0,
    1};

int sm_cli_status(int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&status_spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    const char *key = sm_args_get(&a, "idempotency-key");
    json_t *body = NULL;
    if (key && a.npos == 0)
        body = json_pack("{s:s}", "idempotency_key", key);
    else if (!key && a.npos == 1)
        body = id_arg(status_spec.prog, a.pos[0]);
    else
        sm_args_usage_error(status_spec.prog, "give either SUBMISSION_ID or --idempotency-key");
    json_t *r = NULL;
    rc = body ? call("status", &a, "STATUS", body, &r) : SM_ARGS_EXIT_USAGE;
    if (rc == 0) {
        if (sm_args_has(&a, "json"))
            sm_cli_print_json(r);
        else
            print_status(r);
    }
    json_decref(r);
    sm_args_free(&a);
    return rc;
}

/* The rubric criteria of a result (none for a free-text rubric): the verdict, the current
 * points of the maximum (marked when a teacher adjusted them), the quoted evidence. */
static void print_criteria(const json_t *r)
{
    const json_t *crit = json_object_get(r, "criteria");
    if (json_array_size(crit))
        printf("\ncriteria:\n");
    size_t i;
    json_t *e;
    json_array_foreach(crit, i, e)
    {
        char pts[32], max[32];
        const char *cur = json_object_get(e, "current_points") ? "current_points" : "points";
        printf("  %-12s %-10s %s / %s%s\n", str(e, "id"),
               json_is_string(json_object_get(e, "verdict")) ? str(e, "verdict") : "no verdict",
               score_text(e, cur, pts), score_text(e, "max_points", max),
               json_is_true(json_object_get(e, "adjusted")) ? "  (adjusted by a teacher)" : "");
        const char *ev = json_string_value(json_object_get(e, "evidence"));
        if (ev && *ev)
            printf("      evidence: %s\n", ev);
    }
}

static void print_result(const json_t *r)
{
    printf("submission %lld  %s/%s  student %s\n",
           (long long)json_integer_value(json_object_get(r, "submission_id")), str(r, "course"),
           str(r, "assignment"), str(r, "student_ref"));
    char a[32], b[32], c[32];
    printf("score %s / %s  (%s", score_text(r, "score", a), score_text(r, "max_score", b),
           str(r, "status"));
    json_t *conf = json_object_get(r, "confidence");
    if (json_is_number(conf))
        printf(", confidence %.2f", json_number_value(conf));
    printf(")\n");
    const json_t *prov = json_object_get(r, "provisional");
    if (json_is_object(prov))
        printf("provisional score from the %s: %s / %s (%s); a teacher may approve it\n",
               strcmp(str(prov, "basis"), "tests") == 0 ? "tests" : "answer key",
               score_text(prov, "score", c), b, str(prov, "detail"));
    print_final(json_object_get(r, "final"));
    json_t *flags = json_object_get(r, "flags");
    if (json_array_size(flags)) {
        printf("flags:");
        size_t i;
        json_t *f;
        json_array_foreach(flags, i, f) printf(" %s", json_string_value(f));
        printf("\n");
    }
    if (json_is_string(json_object_get(r, "summary")))
        printf("\n%s\n", str(r, "summary"));
    print_criteria(r);
    size_t i;
    json_t *e;
    json_t *steps = json_object_get(r, "steps");
    if (json_array_size(steps))
        printf("\nsteps:\n");
    json_array_foreach(steps, i, e)
    {
        printf("  %2lld. [%s] %s\n", (long long)json_integer_value(json_object_get(e, "number")),
               str(e, "verdict"), str(e, "quoted"));
        if (*str(e, "explanation") && strcmp(str(e, "explanation"), "-"))
            printf("      %s\n", str(e, "explanation"));
    }
    json_t *checks = json_object_get(r, "checks");
    if (json_array_size(checks))
        printf("\nchecks:\n");
    json_array_foreach(checks, i, e)
    {
        printf("  %-4s %-8s %s", json_is_true(json_object_get(e, "passed")) ? "ok" : "FAIL",
               str(e, "kind"), str(e, "name"));
        const json_t *d = json_object_get(e, "details"), *pts = json_object_get(d, "points");
        if (json_is_number(pts)) /* a test's own points */
            printf("  (%g of %g points)", json_number_value(json_object_get(d, "points_earned")),
                   json_number_value(pts));
        printf("\n");
        if (json_number_value(json_object_get(pts, "total")) > 0) /* the compile check's sum */
            printf("       points from the tests: %g of %g\n",
                   json_number_value(json_object_get(pts, "earned")),
                   json_number_value(json_object_get(pts, "total")));
        if (json_is_string(json_object_get(e, "output_excerpt")))
            printf("       %s\n", str(e, "output_excerpt"));
    }
    json_t *model = json_object_get(r, "model");
    json_t *tok = json_object_get(r, "tokens");
    printf("\nmodel %s (%s), engine %s, prompt %s, seed %lld, tokens %lld+%lld\n",
           str(model, "name"), str(model, "hash"), str(r, "engine_version"),
           str(r, "prompt_template_version"),
           (long long)json_integer_value(json_object_get(r, "seed")),
           (long long)json_integer_value(json_object_get(tok, "prompt")),
           (long long)json_integer_value(json_object_get(tok, "completion")));
    json_t *rs = json_object_get(r, "reasoning");
    json_array_foreach(rs, i, e)
    {
        printf("\n--- reasoning (sample %lld, %lld tokens) ---\n%s\n",
               (long long)json_integer_value(json_object_get(e, "sample")),
               (long long)json_integer_value(json_object_get(e, "tokens")), str(e, "text"));
    }
}

static const sm_arg_opt result_opts[] = {
    {"json", 0, SM_ARG_FLAG, NULL, "print the broker's reply as JSON", false},
    {"reasoning", 0, SM_ARG_FLAG, NULL, "include the model's reasoning", false},
    {0}};
static const sm_args_spec result_spec = {"stepmark result",
                                         "SUBMISSION_ID",
                                         "The grading of a submission: score, steps, checks.",
                                         result_opts,
                                         sm_cli_client_opts,
                                         1,
                                         1};

int sm_cli_result(int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&result_spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    json_t *body = id_arg(result_spec.prog, a.pos[0]);
    if (body && sm_args_has(&a, "reasoning"))
        json_object_set_new(body, "reasoning", json_true());
    json_t *r = NULL;
    rc = body ? call("result", &a, "RESULT", body, &r) : SM_ARGS_EXIT_USAGE;
    if (rc == 0) {
        if (sm_args_has(&a, "json"))
            sm_cli_print_json(r);
        else
            print_result(r);
    }
    json_decref(r);
    sm_args_free(&a);
    return rc;
}

static const sm_args_spec cancel_spec = {"stepmark cancel",
                                         "SUBMISSION_ID",
                                         "Cancels a submission's grading.",
                                         json_opt,
                                         sm_cli_client_opts,
                                         1,
                                         1};

int sm_cli_cancel(int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&cancel_spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    json_t *body = id_arg(cancel_spec.prog, a.pos[0]);
    json_t *r = NULL;
    rc = body ? call("cancel", &a, "CANCEL", body, &r) : SM_ARGS_EXIT_USAGE;
    if (rc == 0) {
        if (sm_args_has(&a, "json"))
            sm_cli_print_json(r);
        else
            printf("submission %s: %s (state %s)\n", a.pos[0],
                   json_is_true(json_object_get(r, "cancelled")) ? "cancelled" : "not cancelled",
                   str(r, "state"));
    }
    json_decref(r);
    sm_args_free(&a);
    return rc;
}

/* Polls the state of one submission until it is final or limit_s (if > 0) has passed since
 * t0. Returns 0 when it is done, 1 otherwise. */
static int wait_one(sm_client *c, const char *arg, double limit_s, const struct timespec *t0)
{
    json_t *body = id_arg("stepmark wait", arg);
    if (!body)
        return 1;
    int failed = 0;
    for (;;) {
        json_t *r;
        sm_err err;
        if (sm_client_call(c, "STATUS", body, &r, &err) != SM_OK) {
            json_decref(r);
            failed = sm_cli_fail("wait", &err);
            break;
        }
        const char *state = str(r, "state");
        bool final =
            !strcmp(state, "done") || !strcmp(state, "dead") || !strcmp(state, "cancelled");
        if (final) {
            printf("submission %s: %s\n", arg, state);
            failed = strcmp(state, "done") != 0;
            json_decref(r);
            break;
        }
        json_decref(r);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double el = (double)(now.tv_sec - t0->tv_sec) + (now.tv_nsec - t0->tv_nsec) / 1e9;
        if (limit_s > 0 && el > limit_s) {
            printf("submission %s: still %s after %.0fs\n", arg, state, el);
            failed = 1;
            break;
        }
        usleep(250000);
    }
    json_decref(body);
    return failed;
}

static const sm_arg_opt wait_opts[] = {
    {"timeout-s", 0, SM_ARG_VALUE, "S", "give up after S seconds (default: never)", false}, {0}};
static const sm_args_spec wait_spec = {
    "stepmark wait",
    "SUBMISSION_ID...",
    "Waits until the submissions are graded; exit 0 when all are done.",
    wait_opts,
    sm_cli_client_opts,
    1,
    -1};

int sm_cli_wait(int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&wait_spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    const char *t = sm_args_get(&a, "timeout-s");
    char *end = NULL;
    double limit = t ? strtod(t, &end) : 0;
    sm_config cfg;
    sm_client *c = NULL;
    if (t && (end == t || *end || limit < 0))
        rc = sm_args_usage_error(wait_spec.prog, "--timeout-s needs a number of seconds");
    else
        rc = sm_cli_client_open(&a, &cfg, &c);
    if (rc) {
        sm_args_free(&a);
        return rc;
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int failed = 0;
    for (int k = 0; k < a.npos; k++)
        failed |= wait_one(c, a.pos[k], limit, &t0);
    sm_client_free(&c);
    sm_args_free(&a);
    return failed;
}
