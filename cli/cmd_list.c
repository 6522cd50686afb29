/* cmd_list: `stepmark list`, the LIST command: an assignment's submissions in change order with
 * their job state, the model's grading and the final grade, one page at a time (or every page
 * with --all), ending with the cursor to continue from next time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "cmd_client.h"
#include "commands.h"

static const sm_arg_opt list_opts[] = {
    {"course", 0, SM_ARG_VALUE, "C", "the course code", true},
    {"assignment", 0, SM_ARG_VALUE, "A", "the assignment code", true},
    {"since", 0, SM_ARG_VALUE, "T", "only submissions changed at or after T (RFC 3339)", false},
    {"cursor", 0, SM_ARG_VALUE, "X", "continue after the page that returned cursor X", false},
    {"limit", 0, SM_ARG_VALUE, "N", "submissions per page, 1..1000 (default 100)", false},
    {"all", 0, SM_ARG_FLAG, NULL, "follow the cursor until no more pages", false},
    {"json", 0, SM_ARG_FLAG, NULL, "print the broker's reply as JSON", false},
    {0}};
static const sm_args_spec list_spec = {
    "stepmark list",
    NULL,
    "Lists an assignment's submissions in the order they last changed, with their final\n"
    "grades. Keep the printed cursor and pass it with --cursor next time to get only what\n"
    "changed since; nothing is missed or repeated.",
    list_opts,
    sm_cli_client_opts,
    0,
    0};

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

static void print_item(const json_t *it)
{
    const json_t *f = json_object_get(it, "final");
    char score[64] = "\u2013"; /* an en dash: no score, never 0 */
    if (json_is_object(f) && json_is_number(json_object_get(f, "score")))
        snprintf(score, sizeof score, "%g/%g", json_number_value(json_object_get(f, "score")),
                 json_number_value(json_object_get(f, "max_score")));
    printf("%-10lld %-20s %-10s %-13s %-12s %s\n",
           (long long)json_integer_value(json_object_get(it, "submission_id")),
           str(it, "student_ref"), str(it, "state"), json_is_object(f) ? str(f, "state") : "-",
           score, str(it, "updated_at"));
}

/* The LIST request for one page. */
static json_t *request(const sm_args *a, const char *cursor, long long limit)
{
    json_t *body = json_pack("{s:s, s:s}", "course", sm_args_get(a, "course"), "assignment",
                             sm_args_get(a, "assignment"));
    if (cursor)
        json_object_set_new(body, "cursor", json_string(cursor));
    else if (sm_args_get(a, "since"))
        json_object_set_new(body, "updated_since", json_string(sm_args_get(a, "since")));
    if (limit > 0)
        json_object_set_new(body, "limit", json_integer(limit));
    return body;
}

/* Fetches pages (one, or all with --all) and prints them; items gathers them for --json. */
static int run(const sm_args *a, sm_client *c, long long limit, json_t *items, char *cursor,
               size_t cursor_size, bool *more_out)
{
    bool all = sm_args_has(a, "all"), json = sm_args_has(a, "json");
    const char *from = sm_args_get(a, "cursor");
    snprintf(cursor, cursor_size, "%s", from ? from : "");
    if (!json)
        printf("%-10s %-20s %-10s %-13s %-12s %s\n", "SUBMISSION", "STUDENT", "STATE", "FINAL",
               "SCORE", "UPDATED");
    for (;;) {
        json_t *r = NULL;
        sm_err err;
        json_t *body = request(a, cursor[0] ? cursor : NULL, limit);
        sm_code code = sm_client_call(c, "LIST", body, &r, &err);
        json_decref(body);
        if (code) {
            json_decref(r);
            return sm_cli_fail("list", &err);
        }
        size_t i;
        json_t *it;
        json_array_foreach(json_object_get(r, "items"), i, it)
        {
            if (json)
                json_array_append(items, it);
            else
                print_item(it);
        }
        snprintf(cursor, cursor_size, "%s", str(r, "next_cursor"));
        bool more = json_is_true(json_object_get(r, "more"));
        json_decref(r);
        *more_out = more;
        if (!all || !more)
            return 0;
    }
}

int sm_cli_list(int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&list_spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    const char *l = sm_args_get(&a, "limit");
    char *end = NULL;
    long long limit = l ? strtoll(l, &end, 10) : 0;
    sm_config cfg;
    sm_client *c = NULL;
    if (l && (end == l || *end || limit < 1 || limit > 1000))
        rc = sm_args_usage_error(list_spec.prog, "--limit needs a number from 1 to 1000");
    else
        rc = sm_cli_client_open(&a, &cfg, &c);
    if (rc) {
        sm_args_free(&a);
        return rc;
    }
    json_t *items = json_array();
    char cursor[128];
    bool more = false;
    rc = run(&a, c, limit, items, cursor, sizeof cursor, &more);
    if (rc == 0 && sm_args_has(&a, "json")) {
        json_t *out =
            json_pack("{s:O, s:s, s:b}", "items", items, "next_cursor", cursor, "more", more);
        sm_cli_print_json(out);
        json_decref(out);
    } else if (rc == 0) {
        printf("next cursor: %s%s\n", cursor, more ? " (more pages follow)" : "");
    }
    json_decref(items);
    sm_client_free(&c);
    sm_args_free(&a);
    return rc;
}
