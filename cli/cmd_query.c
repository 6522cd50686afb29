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

static int usage(const char *cmd, const char *text, int argc, char **argv)
{
    printf("usage: stepmark %s %s\n", cmd, text);
    return sm_cli_flag(argc, argv, "--help") ? 0 : 2;
}

static json_t *id_body(const char *arg)
{
    char *end;
    long long id = strtoll(arg, &end, 10);
    if (*end || id <= 0)
        return NULL;
    return json_pack("{s:I}", "submission_id", (json_int_t)id);
}

static int call(const char *cmd, int argc, char **argv, const char *command, json_t *body,
                json_t **reply)
{
    sm_config cfg;
    sm_client *c;
    int rc = sm_cli_client_open(argc, argv, &cfg, &c);
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
    if (json_is_object(g))
        printf("  grading: %s, score %g / %g\n", str(g, "status"),
               json_number_value(json_object_get(g, "score")),
               json_number_value(json_object_get(g, "max_score")));
}

int sm_cli_status(int argc, char **argv)
{
    const char *arg = sm_cli_pos(argc, argv, 0);
    const char *key = sm_cli_opt(argc, argv, "--idempotency-key");
    json_t *body = key ? json_pack("{s:s}", "idempotency_key", key) : arg ? id_body(arg) : NULL;
    if (sm_cli_flag(argc, argv, "--help") || !body)
        return usage("status", "SUBMISSION_ID | --idempotency-key K  [--json]", argc, argv);
    json_t *r;
    int rc = call("status", argc, argv, "STATUS", body, &r);
    if (rc)
        return rc;
    if (sm_cli_flag(argc, argv, "--json"))
        sm_cli_print_json(r);
    else
        print_status(r);
    json_decref(r);
    return 0;
}

static void print_result(const json_t *r)
{
    printf("submission %lld  %s/%s  student %s\n",
           (long long)json_integer_value(json_object_get(r, "submission_id")), str(r, "course"),
           str(r, "assignment"), str(r, "student_ref"));
    printf("score %g / %g  (%s", json_number_value(json_object_get(r, "score")),
           json_number_value(json_object_get(r, "max_score")), str(r, "status"));
    json_t *conf = json_object_get(r, "confidence");
    if (json_is_number(conf))
        printf(", confidence %.2f", json_number_value(conf));
    printf(")\n");
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
    size_t i;
    json_t *e;
    json_t *steps = json_object_get(r, "steps");
    if (json_array_size(steps))
        printf("\nsteps:\n");
    json_array_foreach(steps, i, e) {
        printf("  %2lld. [%s] %s\n", (long long)json_integer_value(json_object_get(e, "number")),
               str(e, "verdict"), str(e, "quoted"));
        if (*str(e, "explanation") && strcmp(str(e, "explanation"), "-"))
            printf("      %s\n", str(e, "explanation"));
    }
    json_t *checks = json_object_get(r, "checks");
    if (json_array_size(checks))
        printf("\nchecks:\n");
    json_array_foreach(checks, i, e) {
        printf("  %-4s %-8s %s\n", json_is_true(json_object_get(e, "passed")) ? "ok" : "FAIL",
               str(e, "kind"), str(e, "name"));
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
    json_array_foreach(rs, i, e) {
        printf("\n--- reasoning (sample %lld, %lld tokens) ---\n%s\n",
               (long long)json_integer_value(json_object_get(e, "sample")),
               (long long)json_integer_value(json_object_get(e, "tokens")), str(e, "text"));
    }
}

int sm_cli_result(int argc, char **argv)
{
    const char *arg = sm_cli_pos(argc, argv, 0);
    json_t *body = arg ? id_body(arg) : NULL;
    if (sm_cli_flag(argc, argv, "--help") || !body) {
        json_decref(body);
        return usage("result", "SUBMISSION_ID [--json] [--reasoning]", argc, argv);
    }
    if (sm_cli_flag(argc, argv, "--reasoning"))
        json_object_set_new(body, "reasoning", json_true());
    json_t *r;
    int rc = call("result", argc, argv, "RESULT", body, &r);
    if (rc)
        return rc;
    if (sm_cli_flag(argc, argv, "--json"))
        sm_cli_print_json(r);
    else
        print_result(r);
    json_decref(r);
    return 0;
}

int sm_cli_cancel(int argc, char **argv)
{
    const char *arg = sm_cli_pos(argc, argv, 0);
    json_t *body = arg ? id_body(arg) : NULL;
    if (sm_cli_flag(argc, argv, "--help") || !body)
        return usage("cancel", "SUBMISSION_ID [--json]", argc, argv);
    json_t *r;
    int rc = call("cancel", argc, argv, "CANCEL", body, &r);
    if (rc)
        return rc;
    if (sm_cli_flag(argc, argv, "--json"))
        sm_cli_print_json(r);
    else
        printf("submission %s: %s (state %s)\n", arg,
               json_is_true(json_object_get(r, "cancelled")) ? "cancelled" : "not cancelled",
               str(r, "state"));
    json_decref(r);
    return 0;
}

int sm_cli_wait(int argc, char **argv)
{
    if (sm_cli_flag(argc, argv, "--help") || !sm_cli_pos(argc, argv, 0))
        return usage("wait", "SUBMISSION_ID... [--timeout-s S]  (exit 0 when all are done)",
                     argc, argv);
    const char *t = sm_cli_opt(argc, argv, "--timeout-s");
    double limit = t ? atof(t) : 0;
    sm_config cfg;
    sm_client *c;
    int rc = sm_cli_client_open(argc, argv, &cfg, &c);
    if (rc)
        return rc;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int failed = 0;
    for (int k = 0; sm_cli_pos(argc, argv, k); k++) {
        const char *arg = sm_cli_pos(argc, argv, k);
        json_t *body = id_body(arg);
        if (!body) {
            fprintf(stderr, "stepmark wait: bad submission id %s\n", arg);
            failed = 1;
            continue;
        }
        for (;;) {
            json_t *r;
            sm_err err;
            if (sm_client_call(c, "STATUS", body, &r, &err) != SM_OK) {
                json_decref(r);
                sm_cli_fail("wait", &err);
                failed = 1;
                break;
            }
            const char *state = str(r, "state");
            bool final = !strcmp(state, "done") || !strcmp(state, "dead") ||
                         !strcmp(state, "cancelled");
            if (final) {
                printf("submission %s: %s\n", arg, state);
                failed |= strcmp(state, "done") != 0;
                json_decref(r);
                break;
            }
            json_decref(r);
            clock_gettime(CLOCK_MONOTONIC, &now);
            double el = (double)(now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9;
            if (limit > 0 && el > limit) {
                printf("submission %s: still %s after %.0fs\n", arg, state, el);
                failed = 1;
                break;
            }
            usleep(250000);
        }
        json_decref(body);
    }
    sm_client_free(&c);
    return failed;
}
