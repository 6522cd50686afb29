/* cmd_service: `stepmark service add|revoke|list`: service tokens for the HTTP API (/api/v1,
 * docs/http-api.md). add creates a named token for some courses and prints it once (only its
 * SHA-256 is stored); revoke makes it invalid at once; list shows names, courses, state,
 * creation, expiry and last use (never tokens), as a table or --json. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli_common.h"
#include "commands.h"
#include "sm_migrate.h"
#include "sm_service.h"
#include "sm_teacher.h"

typedef enum service_cmd { SERVICE_ADD, SERVICE_REVOKE, SERVICE_LIST } service_cmd;

static const sm_arg_opt add_opts[] = {
    {"course", 0, SM_ARG_VALUE, "CODE", "a course the token may act on (repeat for several)", true},
    {"expires", 0, SM_ARG_VALUE, "DAYS",
     "the token's lifetime in days, or with a unit: 90, 30d, 12h, 2w (default: none)", false},
    SM_CLI_CONFIG_OPT,
    {0}};
static const sm_arg_opt list_opts[] = {
    {"json", 0, SM_ARG_FLAG, NULL, "print a JSON array", false}, SM_CLI_CONFIG_OPT, {0}};

static const sm_args_spec specs[] = {
    [SERVICE_ADD] = {"stepmark service add", "NAME",
                     "Creates a service token for an LMS integration, scoped to the courses "
                     "given,\nand prints it once (only its hash is stored).",
                     add_opts, NULL, 1, 1},
    [SERVICE_REVOKE] = {"stepmark service revoke", "NAME",
                        "Makes the named service token invalid at once.", NULL, sm_cli_config_opts,
                        1, 1},
    [SERVICE_LIST] = {"stepmark service list", NULL,
                      "Lists service tokens: courses, state, creation, expiry and last use (never "
                      "tokens).",
                      list_opts, NULL, 0, 0},
};

/* --expires: plain days, or a lifetime with a unit as `stepmark teacher` takes it. */
static int parse_expires(const char *text, int64_t *seconds)
{
    *seconds = 0;
    if (!text)
        return 0;
    char buf[32];
    size_t digits = strspn(text, "0123456789");
    if (digits > 0 && text[digits] == '\0' && digits < sizeof buf - 1) {
        snprintf(buf, sizeof buf, "%sd", text);
        text = buf;
    }
    sm_err err;
    if (sm_teacher_parse_lifetime(text, seconds, &err) != SM_OK)
        return sm_args_usage_error(specs[SERVICE_ADD].prog, "--expires: %s", err.msg);
    return 0;
}

static int service_list(PGconn *conn, bool as_json)
{
    char *text;
    sm_err err;
    if (sm_service_list(conn, &text, &err) != SM_OK) {
        fprintf(stderr, "stepmark service list: %s\n", err.msg);
        return 1;
    }
    if (as_json) {
        printf("%s\n", text);
        free(text);
        return 0;
    }
    json_t *rows = json_loads(text, 0, NULL);
    free(text);
    printf("name\tcourses\tstate\tcreated\texpires\tlast_used\n");
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        printf("%s\t", json_string_value(json_object_get(row, "name")));
        size_t k;
        json_t *c;
        json_array_foreach(json_object_get(row, "courses"), k, c)
            printf("%s%s", k ? "," : "", json_string_value(c));
        const char *exp = json_string_value(json_object_get(row, "expires_at"));
        const char *used = json_string_value(json_object_get(row, "last_used_at"));
        printf("\t%s\t%s\t%s\t%s\n", json_string_value(json_object_get(row, "state")),
               json_string_value(json_object_get(row, "created_at")), exp ? exp : "never",
               used ? used : "never");
    }
    json_decref(rows);
    return 0;
}

static int run(PGconn *conn, service_cmd cmd, const sm_args *a, int64_t lifetime_s)
{
    sm_err err;
    if (sm_migrate(conn, NULL, &err) != SM_OK) {
        fprintf(stderr, "stepmark service: %s\n", err.msg);
        return 1;
    }
    if (cmd == SERVICE_LIST)
        return service_list(conn, sm_args_has(a, "json"));
    sm_code rc;
    if (cmd == SERVICE_REVOKE) {
        rc = sm_service_revoke(conn, a->pos[0], &err);
        if (rc == SM_OK)
            printf("service token '%s' revoked: it no longer authenticates\n", a->pos[0]);
    } else {
        int n = sm_args_count(a, "course");
        const char **courses = calloc((size_t)n + 1, sizeof *courses);
        if (!courses)
            return 1;
        for (int i = 0; i < n; i++)
            courses[i] = sm_args_nth(a, "course", i);
        sm_service_spec spec = {a->pos[0], courses, n, lifetime_s};
        char token[SM_SERVICE_TOKEN_LEN];
        rc = sm_service_add(conn, &spec, token, &err);
        free(courses);
        if (rc == SM_OK) {
            printf("service token '%s' created; send it as \"Authorization: Bearer TOKEN\" "
                   "(shown only now, keep it secret):\n%s\n",
                   a->pos[0], token);
            memset(token, 0, sizeof token);
        }
    }
    if (rc != SM_OK) {
        fprintf(stderr, "stepmark service %s: %s\n", cmd == SERVICE_ADD ? "add" : "revoke",
                err.msg);
        return 1;
    }
    return 0;
}

static int service_main(service_cmd cmd, int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&specs[cmd], argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    int64_t lifetime_s = 0;
    rc = cmd == SERVICE_ADD ? parse_expires(sm_args_get(&a, "expires"), &lifetime_s) : 0;
    static sm_config cfg;
    if (!rc)
        rc = sm_cli_load_config(&a, &cfg);
    PGconn *conn = NULL;
    sm_pgembed *pg = NULL;
    if (!rc && sm_cli_connect(&cfg, &conn, &pg))
        rc = 1;
    if (!rc)
        rc = run(conn, cmd, &a, lifetime_s);
    sm_args_free(&a);
    if (sm_cli_disconnect("stepmark service", &conn, &pg))
        rc = 1;
    return rc;
}

static int service_add(int argc, char **argv)
{
    return service_main(SERVICE_ADD, argc, argv);
}

static int service_revoke(int argc, char **argv)
{
    return service_main(SERVICE_REVOKE, argc, argv);
}

static int service_list_cmd(int argc, char **argv)
{
    return service_main(SERVICE_LIST, argc, argv);
}

int sm_cli_service(int argc, char **argv)
{
    static const sm_args_cmd cmds[] = {
        {"add", service_add, "add NAME --course CODE...: a token for the HTTP API"},
        {"revoke", service_revoke, "revoke NAME: the token stops working"},
        {"list", service_list_cmd, "list [--json]: tokens, courses and state (never tokens)"},
    };
    static const sm_args_group g = {"stepmark service",
                                    "Service tokens let LMS plugins use the HTTP API /api/v1 "
                                    "(docs/http-api.md).\n",
                                    cmds, sizeof cmds / sizeof cmds[0]};
    return sm_args_dispatch(&g, argc, argv);
}
