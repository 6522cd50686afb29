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
    const char *name;      /* --name or the positional argument */
    const char **courses;  /* --course, add only */
    int ncourses;
    const char *expires;   /* --expires text, add and rotate */
    int64_t lifetime_s;    /* parsed --expires; 0 = never */
    int64_t id;            /* --id (rotate, revoke); 0 = by name */
} teacher_args;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: stepmark teacher add --name NAME --course CODE [--course CODE...] "
            "[--expires LIFETIME]\n"
            "       stepmark teacher rotate NAME|--id ID [--expires LIFETIME]\n"
            "       stepmark teacher revoke NAME|--id ID\n"
            "       stepmark teacher list\n"
            "(each also takes --config FILE)\n"
            "add prints the new teacher's sign-in token once; only its hash is stored. An existing\n"
            "name is refused: use rotate. rotate prints a new token and makes the old one and\n"
            "every session of that teacher invalid; revoke makes the token and sessions invalid.\n"
            "LIFETIME is a number and a unit s, m, h, d or w (e.g. 30d); without it the token\n"
            "does not expire. list shows token state, creation, expiry and last use (UTC).\n");
}

static bool takes_value(const char *opt)
{
    static const char *const with_value[] = {"--name", "--course", "--expires", "--id",
                                             "--config"};
    for (size_t i = 0; i < sizeof with_value / sizeof *with_value; i++)
        if (strcmp(opt, with_value[i]) == 0)
            return true;
    return false;
}

/* Reads one option or positional argument at argv[*i]; false on a usage error. */
static bool take_arg(teacher_args *a, int argc, char **argv, int *i)
{
    const char *arg = argv[*i];
    const char *eq = strchr(arg, '=');
    char opt[16] = "";
    if (strncmp(arg, "--", 2) == 0)
        snprintf(opt, sizeof opt, "%.*s", (int)(eq ? (size_t)(eq - arg) : strlen(arg)), arg);
    if (!opt[0]) { /* positional: the teacher's name */
        if (a->name)
            return false;
        a->name = arg;
        return true;
    }
    if (!takes_value(opt))
        return false;
    const char *val = eq ? eq + 1 : (*i + 1 < argc ? argv[++*i] : NULL);
    if (!val)
        return false;
    if (strcmp(opt, "--course") == 0)
        a->courses[a->ncourses++] = val;
    else if (strcmp(opt, "--name") == 0 && !a->name)
        a->name = val;
    else if (strcmp(opt, "--expires") == 0)
        a->expires = val;
    else if (strcmp(opt, "--id") == 0) {
        char *end;
        a->id = strtoll(val, &end, 10);
        if (*end || a->id <= 0)
            return false;
    } else if (strcmp(opt, "--config") != 0)
        return false;
    return true;
}

/* Fills a from argv (courses must hold argc entries); returns 0, or 2 on a usage error. */
static int parse_args(int argc, char **argv, teacher_args *a)
{
    static const char *const names[] = {"add", "rotate", "revoke", "list"};
    int cmd = -1;
    for (int c = 0; c < 4; c++)
        if (strcmp(argv[1], names[c]) == 0)
            cmd = c;
    if (cmd < 0)
        return 2;
    a->cmd = (teacher_cmd)cmd;
    for (int i = 2; i < argc; i++)
        if (!take_arg(a, argc, argv, &i))
            return 2;
    bool ok;
    switch (a->cmd) {
    case TEACHER_ADD: ok = a->name && a->ncourses > 0 && !a->id; break;
    case TEACHER_ROTATE: ok = !a->ncourses && (!a->name != !a->id); break;
    case TEACHER_REVOKE: ok = !a->ncourses && !a->expires && (!a->name != !a->id); break;
    default: ok = !a->name && !a->ncourses && !a->expires && !a->id; break;
    }
    if (!ok)
        return 2;
    sm_err err;
    if (a->expires && sm_teacher_parse_lifetime(a->expires, &a->lifetime_s, &err) != SM_OK) {
        fprintf(stderr, "stepmark teacher: --expires: %s\n", err.msg);
        return 2;
    }
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
        print_token("has a new token; the old one and their sessions no longer work", id, a,
                    token);
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
        sm_teacher_spec spec = {.name = a->name, .course_codes = a->courses,
                                .ncourses = a->ncourses, .lifetime_s = a->lifetime_s};
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

int sm_cli_teacher(int argc, char **argv)
{
    if (argc < 2 || sm_cli_flag(argc, argv, "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    teacher_args a = {.courses = calloc((size_t)argc, sizeof(const char *))};
    if (!a.courses)
        return 1;
    int rc = parse_args(argc, argv, &a);
    if (rc) {
        usage(stderr);
        free(a.courses);
        return rc;
    }
    sm_config cfg;
    rc = sm_cli_load_config(argc, argv, &cfg);
    PGconn *conn = NULL;
    sm_pgembed *pg = NULL;
    if (!rc && sm_cli_connect(&cfg, &conn, &pg))
        rc = 1;
    if (!rc)
        rc = run(conn, &a);
    free(a.courses);
    if (conn)
        PQfinish(conn);
    sm_err err;
    if (pg && sm_pgembed_stop(&pg, &err) != SM_OK) {
        fprintf(stderr, "stepmark teacher: %s\n", err.msg);
        rc = 1;
    }
    return rc;
}
