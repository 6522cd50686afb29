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

static int run(const char *cmd, const sm_args *a, const char *command, json_t *body)
{
    sm_config cfg;
    sm_client *c;
    int rc = sm_cli_client_open(a, &cfg, &c);
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
    if (sm_args_has(a, "json") || !strcmp(command, "ASSIGNMENT_GET")) {
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

static int set_text(json_t *body, const char *key, const sm_args *a, const char *flag,
                    const char *file_flag)
{
    const char *v = sm_args_get(a, flag);
    if (v)
        json_object_set_new(body, key, json_string(v));
    const char *f = file_flag ? sm_args_get(a, file_flag) : NULL;
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

/* Reads the data file named by option (a YAML or JSON value) into body[key]. */
static int set_data(json_t *body, const char *key, const sm_args *a, const char *option)
{
    const char *f = sm_args_get(a, option);
    if (!f)
        return 0;
    char msg[512];
    json_t *v = sm_cli_read_data(f, msg, sizeof msg);
    if (!v) {
        fprintf(stderr, "stepmark assignment: %s\n", msg);
        return 1;
    }
    json_object_set_new(body, key, v);
    return 0;
}

/* Reads option's value, a JSON text (an object, or null to clear the field), into body[key]. */
static int set_json(json_t *body, const char *key, const sm_args *a, const char *option)
{
    const char *v = sm_args_get(a, option);
    if (!v)
        return 0;
    json_error_t je;
    json_t *j = json_loads(v, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        fprintf(stderr, "stepmark assignment: --%s is not JSON: %s\n", option, je.text);
        return 1;
    }
    json_object_set_new(body, key, j);
    return 0;
}

static int assignment_body(const sm_args *a, json_t **out)
{
    *out = NULL;
    json_t *body = NULL;
    char msg[512];
    const char *file = sm_args_get(a, "file");
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
    int bad =
        set_text(body, "course", a, "course", NULL) || set_text(body, "code", a, "code", NULL) ||
        set_text(body, "title", a, "title", NULL) || set_text(body, "kind", a, "kind", NULL) ||
        set_text(body, "statement", a, "statement", "statement-file") ||
        set_text(body, "rubric", a, "rubric", "rubric-file") ||
        set_text(body, "reference_solution", a, "reference", "reference-file") ||
        set_text(body, "language", a, "language", NULL) ||
        set_text(body, "answer_key", a, "answer-key", NULL) ||
        set_text(body, "model", a, "model", NULL);
    const char *ms = sm_args_get(a, "max-score");
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
    bad = bad || set_data(body, "tests", a, "tests-file") ||
          set_data(body, "sampling", a, "sampling-file") ||
          set_json(body, "answer_policy", a, "answer-policy");
    if (bad) {
        json_decref(body);
        return 1;
    }
    *out = body;
    return 0;
}

static const sm_arg_opt assignment_opts[] = {
    {"file", 0, SM_ARG_VALUE, "FILE", "the fields, as YAML or JSON (flags override them)", false},
    {"course", 0, SM_ARG_VALUE, "C", "the course's code", false},
    {"code", 0, SM_ARG_VALUE, "A", "the assignment's code", false},
    {"title", 0, SM_ARG_VALUE, "T", "title", false},
    {"kind", 0, SM_ARG_VALUE, "K", "proof, code or math", false},
    {"statement", 0, SM_ARG_VALUE, "TEXT", "the statement", false},
    {"statement-file", 0, SM_ARG_VALUE, "F", "the statement, from a file", false},
    {"rubric", 0, SM_ARG_VALUE, "TEXT", "the rubric", false},
    {"rubric-file", 0, SM_ARG_VALUE, "F", "the rubric, from a file", false},
    {"reference", 0, SM_ARG_VALUE, "TEXT", "a reference solution", false},
    {"reference-file", 0, SM_ARG_VALUE, "F", "a reference solution, from a file", false},
    {"language", 0, SM_ARG_VALUE, "L", "c, cpp, python or java", false},
    {"tests-file", 0, SM_ARG_VALUE, "F", "the tests of a code assignment (YAML or JSON)", false},
    {"answer-key", 0, SM_ARG_VALUE, "K", "the expected answer", false},
    {"answer-policy", 0, SM_ARG_VALUE, "JSON",
     "how answers compare, e.g. '{\"percent\": \"ratio\", \"units\": \"check\"}' (null: defaults)",
     false},
    {"max-score", 0, SM_ARG_VALUE, "N", "the maximum score", false},
    {"model", 0, SM_ARG_VALUE, "NAME", "the model that grades it", false},
    {"sampling-file", 0, SM_ARG_VALUE, "F", "sampling settings (YAML or JSON)", false},
    {"json", 0, SM_ARG_FLAG, NULL, "print the broker's reply as JSON", false},
    {0}};
static const sm_args_spec create_spec = {
    "stepmark assignment create",
    NULL,
    "Creates an assignment from --file and/or the flags (the course and the code are needed).",
    assignment_opts,
    sm_cli_client_opts,
    0,
    0};
static const sm_args_spec update_spec = {
    "stepmark assignment update",
    NULL,
    "Changes only the fields given of the assignment named by --course and --code.",
    assignment_opts,
    sm_cli_client_opts,
    0,
    0};

static int assignment_write(const sm_args_spec *spec, const char *command, int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    json_t *body;
    rc = assignment_body(&a, &body) ? 1 : run("assignment", &a, command, body);
    sm_args_free(&a);
    return rc;
}

static int assignment_create(int argc, char **argv)
{
    return assignment_write(&create_spec, "ASSIGNMENT_CREATE", argc, argv);
}

static int assignment_update(int argc, char **argv)
{
    return assignment_write(&update_spec, "ASSIGNMENT_UPDATE", argc, argv);
}

static const sm_arg_opt show_opts[] = {
    {"course", 0, SM_ARG_VALUE, "C", "the course's code", true},
    {"code", 0, SM_ARG_VALUE, "A", "the assignment's code", true},
    {0}};
static const sm_args_spec show_spec = {"stepmark assignment show",
                                       NULL,
                                       "Prints an assignment as JSON.",
                                       show_opts,
                                       sm_cli_client_opts,
                                       0,
                                       0};

static int assignment_show(int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&show_spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    rc = run("assignment", &a, "ASSIGNMENT_GET",
             json_pack("{s:s, s:s}", "course", sm_args_get(&a, "course"), "code",
                       sm_args_get(&a, "code")));
    sm_args_free(&a);
    return rc;
}

int sm_cli_assignment(int argc, char **argv)
{
    static const sm_args_cmd cmds[] = {
        {"create", assignment_create, "create an assignment"},
        {"update", assignment_update, "change some fields of an assignment"},
        {"show", assignment_show, "print an assignment as JSON"},
    };
    static const sm_args_group g = {"stepmark assignment", NULL, cmds,
                                    sizeof cmds / sizeof cmds[0]};
    return sm_args_dispatch(&g, argc, argv);
}

static const sm_arg_opt course_opts[] = {
    {"code", 0, SM_ARG_VALUE, "C", "the course's code", true},
    {"title", 0, SM_ARG_VALUE, "T", "its title", false},
    {"json", 0, SM_ARG_FLAG, NULL, "print the broker's reply as JSON", false},
    {0}};
static const sm_args_spec course_spec = {"stepmark course create",
                                         NULL,
                                         "Creates a course (updates the title when it exists).",
                                         course_opts,
                                         sm_cli_client_opts,
                                         0,
                                         0};

static int course_create(int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&course_spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    rc = run("course", &a, "COURSE_PUT",
             json_pack("{s:s, s:s?}", "code", sm_args_get(&a, "code"), "title",
                       sm_args_get(&a, "title")));
    sm_args_free(&a);
    return rc;
}

int sm_cli_course(int argc, char **argv)
{
    static const sm_args_cmd cmds[] = {
        {"create", course_create, "create a course, or change its title"},
    };
    static const sm_args_group g = {"stepmark course", NULL, cmds, 1};
    return sm_args_dispatch(&g, argc, argv);
}
