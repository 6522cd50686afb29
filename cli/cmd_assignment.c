/* cmd_assignment: `stepmark assignment create|update|show` and `stepmark course create`,
 * through the broker. Fields come from a YAML or JSON file (--file) and/or flags (flags win);
 * long texts may be given as files (--statement-file, --rubric-file, --reference-file,
 * --tests-file). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "cmd_client.h"
#include "commands.h"

static int run(const char *cmd, int argc, char **argv, const char *command, json_t *body)
{
    sm_config cfg;
    sm_client *c;
    int rc = sm_cli_client_open(argc, argv, &cfg, &c);
    if (rc) {
        json_decref(body);
        return rc;
    }
    json_t *reply;
    sm_err err;
    sm_code code = sm_client_call(c, command, body, &reply, &err);
    json_decref(body);
    sm_client_free(&c);
    if (code) {
        json_decref(reply);
        return sm_cli_fail(cmd, &err);
    }
    if (sm_cli_flag(argc, argv, "--json") || !strcmp(command, "ASSIGNMENT_GET")) {
        sm_cli_print_json(reply);
    } else if (!strcmp(command, "COURSE_PUT")) {
        printf("course %s %s (id %lld)\n", json_string_value(json_object_get(reply, "code")),
               json_is_true(json_object_get(reply, "created")) ? "created" : "updated",
               (long long)json_integer_value(json_object_get(reply, "course_id")));
    } else {
        printf("assignment %s/%s %s (id %lld)\n",
               json_string_value(json_object_get(reply, "course")),
               json_string_value(json_object_get(reply, "code")),
               json_is_true(json_object_get(reply, "created")) ? "created" : "updated",
               (long long)json_integer_value(json_object_get(reply, "assignment_id")));
    }
    json_decref(reply);
    return 0;
}

static int set_text(json_t *body, const char *key, int argc, char **argv, const char *flag,
                    const char *file_flag)
{
    const char *v = sm_cli_opt(argc, argv, flag);
    if (v)
        json_object_set_new(body, key, json_string(v));
    const char *f = file_flag ? sm_cli_opt(argc, argv, file_flag) : NULL;
    if (f) {
        size_t len;
        char *text = sm_cli_read_text(f, &len);
        if (!text)
            return 1;
        json_t *s = json_stringn(text, len);
        free(text);
        if (!s) {
            fprintf(stderr, "stepmark: %s is not valid UTF-8 text\n", f);
            return 1;
        }
        json_object_set_new(body, key, s);
    }
    return 0;
}

static int assignment_body(int argc, char **argv, json_t **out)
{
    *out = NULL;
    json_t *body = NULL;
    char msg[512];
    const char *file = sm_cli_opt(argc, argv, "--file");
    if (file) {
        body = sm_cli_read_data(file, msg, sizeof msg);
        if (!body || !json_is_object(body)) {
            fprintf(stderr, "stepmark assignment: %s\n",
                    body ? "the file must hold a mapping" : msg);
            json_decref(body);
            return 1;
        }
    } else {
        body = json_object();
    }
    int bad = set_text(body, "course", argc, argv, "--course", NULL) ||
              set_text(body, "code", argc, argv, "--code", NULL) ||
              set_text(body, "title", argc, argv, "--title", NULL) ||
              set_text(body, "kind", argc, argv, "--kind", NULL) ||
              set_text(body, "statement", argc, argv, "--statement", "--statement-file") ||
              set_text(body, "rubric", argc, argv, "--rubric", "--rubric-file") ||
              set_text(body, "reference_solution", argc, argv, "--reference",
                       "--reference-file") ||
              set_text(body, "language", argc, argv, "--language", NULL) ||
              set_text(body, "answer_key", argc, argv, "--answer-key", NULL) ||
              set_text(body, "model", argc, argv, "--model", NULL);
    const char *ms = sm_cli_opt(argc, argv, "--max-score");
    if (!bad && ms) {
        char *end;
        double d = strtod(ms, &end);
        if (*end) {
            fprintf(stderr, "stepmark assignment: --max-score needs a number\n");
            bad = 1;
        } else {
            json_object_set_new(body, "max_score", json_real(d));
        }
    }
    const char *tf = sm_cli_opt(argc, argv, "--tests-file");
    if (!bad && tf) {
        json_t *tests = sm_cli_read_data(tf, msg, sizeof msg);
        if (!tests) {
            fprintf(stderr, "stepmark assignment: %s\n", msg);
            bad = 1;
        } else {
            json_object_set_new(body, "tests", tests);
        }
    }
    const char *sf = sm_cli_opt(argc, argv, "--sampling-file");
    if (!bad && sf) {
        json_t *s = sm_cli_read_data(sf, msg, sizeof msg);
        if (!s) {
            fprintf(stderr, "stepmark assignment: %s\n", msg);
            bad = 1;
        } else {
            json_object_set_new(body, "sampling", s);
        }
    }
    if (bad) {
        json_decref(body);
        return 1;
    }
    *out = body;
    return 0;
}

int sm_cli_assignment(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "";
    if (!strcmp(sub, "create") || !strcmp(sub, "update")) {
        if (sm_cli_flag(argc, argv, "--help")) {
            printf("usage: stepmark assignment %s [--file FILE.yaml|json] --course C --code A\n"
                   "  [--title T] [--kind proof|code|math] [--statement TEXT|--statement-file F]\n"
                   "  [--rubric TEXT|--rubric-file F] [--reference TEXT|--reference-file F]\n"
                   "  [--language c|cpp|python|java] [--tests-file F] [--answer-key K]\n"
                   "  [--max-score N] [--model NAME] [--sampling-file F] [--json]\n"
                   "Flags override the file's fields. update changes only the fields given.\n",
                   sub);
            return 0;
        }
        json_t *body;
        if (assignment_body(argc - 1, argv + 1, &body))
            return 1;
        return run("assignment", argc, argv,
                   !strcmp(sub, "create") ? "ASSIGNMENT_CREATE" : "ASSIGNMENT_UPDATE", body);
    }
    if (!strcmp(sub, "show")) {
        const char *course = sm_cli_opt(argc, argv, "--course");
        const char *code = sm_cli_opt(argc, argv, "--code");
        if (!course || !code) {
            printf("usage: stepmark assignment show --course C --code A\n");
            return sm_cli_flag(argc, argv, "--help") ? 0 : 2;
        }
        return run("assignment", argc, argv, "ASSIGNMENT_GET",
                   json_pack("{s:s, s:s}", "course", course, "code", code));
    }
    printf("usage: stepmark assignment create|update|show [options]  (--help for each)\n");
    return sm_cli_flag(argc, argv, "--help") ? 0 : 2;
}

int sm_cli_course(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "";
    const char *code = sm_cli_opt(argc, argv, "--code");
    if (strcmp(sub, "create") != 0 || !code) {
        printf("usage: stepmark course create --code C [--title T]  (updates the title when the\n"
               "course exists)\n");
        return sm_cli_flag(argc, argv, "--help") ? 0 : 2;
    }
    const char *title = sm_cli_opt(argc, argv, "--title");
    return run("course", argc, argv, "COURSE_PUT",
               json_pack("{s:s, s:s?}", "code", code, "title", title));
}
