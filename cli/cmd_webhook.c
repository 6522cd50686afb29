/* cmd_webhook: `stepmark webhook add|list|remove|log`: a course's webhooks (docs/webhooks.md).
 * add registers an https:// URL (or http:// to loopback) for a course and prints its signing
 * secret once; list shows every webhook with its delivery state (never secrets); remove deletes
 * one with its log; log shows the latest delivery attempts. list and log take --json. They work
 * on the database directly, like `stepmark teacher`; stepmarkd picks changes up on its next
 * turn. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "sm_db.h"
#include "sm_migrate.h"
#include "sm_webhook.h"

typedef enum webhook_cmd { WEBHOOK_ADD, WEBHOOK_LIST, WEBHOOK_REMOVE, WEBHOOK_LOG } webhook_cmd;

typedef struct webhook_args {
    webhook_cmd cmd;
    const char *course; /* add */
    const char *url;    /* add */
    int64_t id;         /* remove; log --webhook (0: all) */
    int limit;          /* log */
    bool json;          /* list, log */
} webhook_args;

static const sm_arg_opt add_opts[] = {
    {"course", 0, SM_ARG_VALUE, "CODE", "the course whose events the URL receives", true},
    SM_CLI_CONFIG_OPT,
    {0}};
static const sm_arg_opt list_opts[] = {
    {"json", 0, SM_ARG_FLAG, NULL, "print a JSON array", false}, SM_CLI_CONFIG_OPT, {0}};
static const sm_arg_opt log_opts[] = {
    {"webhook", 0, SM_ARG_VALUE, "ID", "only this webhook's attempts", false},
    {"limit", 0, SM_ARG_VALUE, "N", "the newest N attempts (default 50, at most 10000)", false},
    {"json", 0, SM_ARG_FLAG, NULL, "print a JSON array", false},
    SM_CLI_CONFIG_OPT,
    {0}};

static const sm_args_spec specs[] = {
    [WEBHOOK_ADD] = {"stepmark webhook add", "URL",
                     "Registers URL to receive the course's events (submission.graded,\n"
                     "submission.reviewed, grades.released) and prints its signing secret once.\n"
                     "URL is https://, or http:// to 127.0.0.0/8, [::1] or localhost only.",
                     add_opts, NULL, 1, 1},
    [WEBHOOK_LIST] = {"stepmark webhook list", NULL,
                      "Lists webhooks: course, URL, events delivered and pending, failures of "
                      "the\nevent at the head, next attempt, last error (never secrets).",
                      list_opts, NULL, 0, 0},
    [WEBHOOK_REMOVE] = {"stepmark webhook remove", "ID",
                        "Removes a webhook and its delivery log; nothing more is sent to it.", NULL,
                        sm_cli_config_opts, 1, 1},
    [WEBHOOK_LOG] = {"stepmark webhook log", NULL,
                     "Shows the newest delivery attempts, newest first: time, webhook, event,\n"
                     "attempt, HTTP status, error and duration.",
                     log_opts, NULL, 0, 0},
};

/* Parses a positive integer option; 0 when s is not one. */
static int64_t positive(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    return (*end || end == s || v <= 0) ? 0 : (int64_t)v;
}

/* Fills t from the parsed options of its command; returns 0, or 2 on a usage error. */
static int webhook_fill(const sm_args *a, webhook_args *t)
{
    const char *prog = specs[t->cmd].prog;
    t->course = sm_args_get(a, "course");
    t->json = sm_args_has(a, "json");
    t->limit = 50;
    if (t->cmd == WEBHOOK_ADD) {
        t->url = a->pos[0];
        sm_err err;
        if (sm_webhook_check_url(t->url, &err) != SM_OK)
            return sm_args_usage_error(prog, "%s", err.msg);
    }
    if (t->cmd == WEBHOOK_REMOVE && !(t->id = positive(a->pos[0])))
        return sm_args_usage_error(prog, "ID must be a webhook id, got '%s'", a->pos[0]);
    const char *hook = sm_args_get(a, "webhook");
    if (hook && !(t->id = positive(hook)))
        return sm_args_usage_error(prog, "--webhook needs a webhook id, got '%s'", hook);
    const char *limit = sm_args_get(a, "limit");
    if (limit) {
        int64_t n = positive(limit);
        if (n < 1 || n > 10000)
            return sm_args_usage_error(prog, "--limit must be 1 to 10000, got '%s'", limit);
        t->limit = (int)n;
    }
    return 0;
}

/* A JSON member as text for a table cell ("-" for null). */
static void cell(const json_t *o, const char *key, char *out, size_t n)
{
    const json_t *v = json_object_get(o, key);
    if (json_is_string(v))
        snprintf(out, n, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(out, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else
        snprintf(out, n, "-");
}

/* Prints rows as a tab-separated table of the given keys, or as JSON. */
static void print_rows(const json_t *rows, const char *const *keys, size_t nkeys, bool as_json)
{
    if (as_json) {
        char *s = json_dumps(rows, JSON_INDENT(2));
        if (s)
            printf("%s\n", s);
        free(s);
        return;
    }
    for (size_t k = 0; k < nkeys; k++)
        printf("%s%c", keys[k], k + 1 < nkeys ? '\t' : '\n');
    size_t i;
    const json_t *row;
    json_array_foreach(rows, i, row)
    {
        for (size_t k = 0; k < nkeys; k++) {
            char v[2048];
            cell(row, keys[k], v, sizeof v);
            printf("%s%c", v, k + 1 < nkeys ? '\t' : '\n');
        }
    }
}

static sm_code webhook_show(PGconn *conn, const webhook_args *a, sm_err *err)
{
    static const char *const list_keys[] = {"id",
                                            "course",
                                            "url",
                                            "delivered",
                                            "pending",
                                            "attempts",
                                            "next_attempt_at",
                                            "last_success_at",
                                            "last_error"};
    static const char *const log_keys[] = {"at",          "webhook_id", "event",
                                           "event_id",    "delivery",   "attempt",
                                           "status_code", "error",      "duration_ms"};
    json_t *rows = NULL;
    sm_code rc = a->cmd == WEBHOOK_LIST ? sm_webhook_list(conn, &rows, err)
                                        : sm_webhook_log(conn, a->id, a->limit, &rows, err);
    if (rc != SM_OK)
        return rc;
    if (a->cmd == WEBHOOK_LIST)
        print_rows(rows, list_keys, sizeof list_keys / sizeof list_keys[0], a->json);
    else
        print_rows(rows, log_keys, sizeof log_keys / sizeof log_keys[0], a->json);
    json_decref(rows);
    return SM_OK;
}

static int run(PGconn *conn, const webhook_args *a)
{
    static const char *const names[] = {"add", "list", "remove", "log"};
    sm_err err;
    sm_code rc = sm_migrate(conn, NULL, &err);
    if (rc == SM_OK && a->cmd == WEBHOOK_ADD) {
        char secret[SM_WEBHOOK_SECRET_LEN];
        int64_t id = 0;
        rc = sm_webhook_add(conn, a->course, a->url, &id, secret, &err);
        if (rc == SM_OK)
            printf("webhook %" PRId64 " added for course %s; signing secret (shown only now, keep "
                   "it secret):\n%s\n",
                   id, a->course, secret);
        memset(secret, 0, sizeof secret);
    } else if (rc == SM_OK && a->cmd == WEBHOOK_REMOVE) {
        rc = sm_webhook_remove(conn, a->id, &err);
        if (rc == SM_OK)
            printf("webhook %" PRId64 " removed\n", a->id);
    } else if (rc == SM_OK) {
        rc = webhook_show(conn, a, &err);
    }
    if (rc != SM_OK) {
        fprintf(stderr, "stepmark webhook %s: %s\n", names[a->cmd], err.msg);
        return 1;
    }
    return 0;
}

/* Parses, connects to the database and runs one webhook command. */
static int webhook_main(webhook_cmd cmd, int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&specs[cmd], argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    webhook_args t = {.cmd = cmd};
    rc = webhook_fill(&a, &t);
    static sm_config cfg;
    if (!rc)
        rc = sm_cli_load_config(&a, &cfg);
    PGconn *conn = NULL;
    sm_pgembed *pg = NULL;
    if (!rc && sm_cli_connect(&cfg, &conn, &pg))
        rc = 1;
    if (!rc)
        rc = run(conn, &t);
    sm_args_free(&a);
    if (sm_cli_disconnect("stepmark webhook", &conn, &pg))
        rc = 1;
    return rc;
}

static int webhook_add(int argc, char **argv)
{
    return webhook_main(WEBHOOK_ADD, argc, argv);
}

static int webhook_list(int argc, char **argv)
{
    return webhook_main(WEBHOOK_LIST, argc, argv);
}

static int webhook_remove(int argc, char **argv)
{
    return webhook_main(WEBHOOK_REMOVE, argc, argv);
}

static int webhook_log(int argc, char **argv)
{
    return webhook_main(WEBHOOK_LOG, argc, argv);
}

int sm_cli_webhook(int argc, char **argv)
{
    static const sm_args_cmd cmds[] = {
        {"add", webhook_add, "add --course CODE URL: a receiver; prints its signing secret once"},
        {"list", webhook_list, "list [--json]: webhooks and their delivery state"},
        {"remove", webhook_remove, "remove ID: stop delivering to a webhook"},
        {"log", webhook_log, "log [--webhook ID] [--limit N] [--json]: delivery attempts"},
    };
    static const sm_args_group g = {
        "stepmark webhook",
        "Events are signed with HMAC-SHA256 (Stepmark-Signature header); see docs/webhooks.md.\n",
        cmds, sizeof cmds / sizeof cmds[0]};
    return sm_args_dispatch(&g, argc, argv);
}
