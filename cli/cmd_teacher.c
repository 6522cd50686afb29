/* cmd_teacher: `stepmark teacher add|rotate|revoke|list`: teacher accounts and their sign-in
 * tokens. add creates a teacher for some courses and prints their token once (only its SHA-256
 * is stored); a name that exists already is refused with a pointer to rotate. rotate prints a
 * new token and invalidates the old one and every session; revoke invalidates the token and
 * every session; --expires gives a token a lifetime. list shows teachers, courses, token state,
 * creation, expiry and last use (never tokens). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "sm_db.h"
#include "sm_migrate.h"
#include "sm_teacher.h"

typedef enum teacher_cmd { TEACHER_ADD, TEACHER_ROTATE, TEACHER_REVOKE, TEACHER_LIST } teacher_cmd;

typedef struct teacher_args {
    teacher_cmd cmd;
    const char *name;     /* --name or the positional argument */
    const char **courses; /* --course, add only */
    int ncourses;
    const char *expires; /* --expires text, add and rotate */
    int64_t lifetime_s;  /* parsed --expires; 0 = never */
    int64_t id;          /* --id (rotate, revoke); 0 = by name */
} teacher_args;

static const sm_arg_opt add_opts[] = {
    {"name", 0, SM_ARG_VALUE, "NAME", "the teacher's name (or give it as NAME)", false},
    {"course", 0, SM_ARG_VALUE, "CODE", "a course they review (repeat for several)", true},
    {"expires", 0, SM_ARG_VALUE, "LIFETIME",
     "the token's lifetime: 30d, 12h, 2w ... (default: "
     "none)",
     false},
    SM_CLI_CONFIG_OPT,
    {0}};
static const sm_arg_opt rotate_opts[] = {
    {"name", 0, SM_ARG_VALUE, "NAME", "the teacher's name (or give it as NAME)", false},
    {"id", 0, SM_ARG_VALUE, "ID", "the teacher's id, instead of the name", false},
    {"expires", 0, SM_ARG_VALUE, "LIFETIME", "the new token's lifetime (default: none)", false},
    SM_CLI_CONFIG_OPT,
    {0}};
static const sm_arg_opt revoke_opts[] = {
    {"name", 0, SM_ARG_VALUE, "NAME", "the teacher's name (or give it as NAME)", false},
    {"id", 0, SM_ARG_VALUE, "ID", "the teacher's id, instead of the name", false},
    SM_CLI_CONFIG_OPT,
    {0}};

static const sm_args_spec specs[] = {
    [TEACHER_ADD] = {"stepmark teacher add", "[NAME]",
                     "Creates a teacher for some courses and prints their sign-in token once (only "
                     "its hash\nis stored). An existing name is refused: use rotate.",
                     add_opts, NULL, 0, 1},
    [TEACHER_ROTATE] = {"stepmark teacher rotate", "[NAME]",
                        "Prints a new token; the old one and every session of that teacher stop "
                        "working.",
                        rotate_opts, NULL, 0, 1},
    [TEACHER_REVOKE] = {"stepmark teacher revoke", "[NAME]",
                        "Makes the teacher's token and sessions invalid.", revoke_opts, NULL, 0, 1},
    [TEACHER_LIST] = {"stepmark teacher list", NULL,
                      "Lists teachers, courses, token state, creation, expiry and last use (UTC)"
                      "; never tokens.",
                      NULL, sm_cli_config_opts, 0, 0},
};

/* Fills t from the parsed options of its command; returns 0, or 2 on a usage error. */
static int teacher_fill(const sm_args *a, teacher_args *t)
{
    const char *prog = specs[t->cmd].prog;
    const char *name = sm_args_get(a, "name");
    if (name && a->npos)
        return sm_args_usage_error(prog, "give the name once (NAME or --name)");
    t->name = name ? name : a->npos ? a->pos[0] : NULL;
    t->ncourses = sm_args_count(a, "course");
    for (int i = 0; i < t->ncourses; i++)
        t->courses[i] = sm_args_nth(a, "course", i);
    t->expires = sm_args_get(a, "expires");
    const char *id = sm_args_get(a, "id");
    if (id) {
        char *end;
        t->id = strtoll(id, &end, 10);
        if (*end || end == id || t->id <= 0)
            return sm_args_usage_error(prog, "--id needs a teacher id, got '%s'", id);
    }
    if (t->cmd == TEACHER_ADD && !t->name)
        return sm_args_usage_error(prog, "missing the teacher's NAME (or --name)");
    if ((t->cmd == TEACHER_ROTATE || t->cmd == TEACHER_REVOKE) && !t->name == !t->id)
        return sm_args_usage_error(prog, "give either the teacher's NAME or --id");
    sm_err err;
    if (t->expires && sm_teacher_parse_lifetime(t->expires, &t->lifetime_s, &err) != SM_OK)
        return sm_args_usage_error(prog, "--expires: %s", err.msg);
    return 0;
}

static int teacher_list(PGconn *conn)
{
    PGresult *r;
    sm_err err;
    if (sm_teacher_list(conn, &r, &err) != SM_OK) {
        fprintf(stderr, "stepmark teacher list: %s\n", err.msg);
        return 1;
    }
    printf("id\tname\tcourses\ttoken\tissued\texpires\tlast_used\n");
    for (int i = 0; i < PQntuples(r); i++)
        for (int c = 0; c < SM_TEACHER_NCOLS; c++)
            printf("%s%c", PQgetvalue(r, i, c), c + 1 < SM_TEACHER_NCOLS ? '\t' : '\n');
    PQclear(r);
    return 0;
}

static void print_token(const char *what, int64_t id, const teacher_args *a, char *token)
{
    printf("teacher %lld %s; sign-in token (shown only now, keep it secret", (long long)id, what);
    if (a->expires)
        printf("; expires in %s", a->expires);
    printf("):\n%s\n", token);
    memset(token, 0, SM_TEACHER_TOKEN_LEN);
}

/* rotate or revoke the teacher named by --id or by name. */
static sm_code change_access(PGconn *conn, const teacher_args *a, sm_err *err)
{
    int64_t id = a->id;
    sm_code rc = id ? SM_OK : sm_teacher_find(conn, a->name, &id, err);
    if (rc != SM_OK)
        return rc;
    if (a->cmd == TEACHER_REVOKE) {
        rc = sm_teacher_revoke(conn, id, err);
        if (rc == SM_OK)
            printf("teacher %lld revoked: their token no longer signs in and their sessions have "
                   "ended (`stepmark teacher rotate` gives them a new token)\n",
                   (long long)id);
        return rc;
    }
    char token[SM_TEACHER_TOKEN_LEN];
    rc = sm_teacher_rotate(conn, id, a->lifetime_s, token, err);
    if (rc == SM_OK)
        print_token("has a new token; the old one and their sessions no longer work", id, a, token);
    return rc;
}

static int run(PGconn *conn, const teacher_args *a)
{
    static const char *const names[] = {"add", "rotate", "revoke", "list"};
    sm_err err;
    sm_code rc;
    if (sm_migrate(conn, NULL, &err) != SM_OK) {
        fprintf(stderr, "stepmark teacher: %s\n", err.msg);
        return 1;
    }
    if (a->cmd == TEACHER_LIST)
        return teacher_list(conn);
    if (a->cmd == TEACHER_ADD) {
        char token[SM_TEACHER_TOKEN_LEN];
        int64_t id = 0;
        sm_teacher_spec spec = {.name = a->name,
                                .course_codes = a->courses,
                                .ncourses = a->ncourses,
                                .lifetime_s = a->lifetime_s};
        rc = sm_teacher_add(conn, &spec, token, &id, &err);
        if (rc == SM_OK)
            print_token("created", id, a, token);
    } else {
        rc = change_access(conn, a, &err);
    }
    if (rc != SM_OK) {
        fprintf(stderr, "stepmark teacher %s: %s\n", names[a->cmd], err.msg);
        return 1;
    }
    return 0;
}

/* Parses, connects to the database and runs one teacher command. */
static int teacher_main(teacher_cmd cmd, int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&specs[cmd], argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    teacher_args t = {.cmd = cmd, .courses = calloc((size_t)argc + 1, sizeof(const char *))};
    rc = t.courses ? teacher_fill(&a, &t) : 1;
    static sm_config cfg;
    if (!rc)
        rc = sm_cli_load_config(&a, &cfg);
    PGconn *conn = NULL;
    sm_pgembed *pg = NULL;
    if (!rc && sm_cli_connect(&cfg, &conn, &pg))
        rc = 1;
    if (!rc)
        rc = run(conn, &t);
    free(t.courses);
    sm_args_free(&a);
    if (sm_cli_disconnect("stepmark teacher", &conn, &pg))
        rc = 1;
    return rc;
}

static int teacher_add(int argc, char **argv)
{
    return teacher_main(TEACHER_ADD, argc, argv);
}

static int teacher_rotate(int argc, char **argv)
{
    return teacher_main(TEACHER_ROTATE, argc, argv);
}

static int teacher_revoke(int argc, char **argv)
{
    return teacher_main(TEACHER_REVOKE, argc, argv);
}

static int teacher_list_cmd(int argc, char **argv)
{
    return teacher_main(TEACHER_LIST, argc, argv);
}

int sm_cli_teacher(int argc, char **argv)
{
    static const sm_args_cmd cmds[] = {
        {"add", teacher_add, "add --name NAME --course CODE...: a teacher and their token"},
        {"rotate", teacher_rotate, "rotate NAME|--id ID: a new token, old sessions end"},
        {"revoke", teacher_revoke, "revoke NAME|--id ID: the token and sessions stop working"},
        {"list", teacher_list_cmd, "list: teachers, courses and token state (never tokens)"},
    };
    static const sm_args_group g = {
        "stepmark teacher",
        "LIFETIME (--expires) is a number and a unit s, m, h, d or w (e.g. 30d); without it\n"
        "the token does not expire.\n",
        cmds, sizeof cmds / sizeof cmds[0]};
    return sm_args_dispatch(&g, argc, argv);
}
