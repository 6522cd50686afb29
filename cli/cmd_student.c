/* cmd_student: `stepmark student link|rotate-key`: students' signed feedback links
 * (docs/student-feedback.md). link prints the URL at which one student of one course reads
 * their released feedback, valid for --days days (default 30), at http.public_url; rotate-key
 * replaces the signing key, which invalidates every link handed out before. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "sm_db.h"
#include "sm_migrate.h"
#include "sm_student_link.h"

typedef enum student_cmd { STUDENT_LINK, STUDENT_ROTATE } student_cmd;

static const sm_arg_opt link_opts[] = {
    {"course", 0, SM_ARG_VALUE, "CODE", "the course", true},
    {"student", 0, SM_ARG_VALUE, "REF", "the student, as the LMS names them (student_ref)", true},
    {"days", 0, SM_ARG_VALUE, "N", "how long the link works, 1 to 400 days (default 30)", false},
    SM_CLI_CONFIG_OPT,
    {0}};

static const sm_args_spec specs[] = {
    [STUDENT_LINK] = {"stepmark student link", NULL,
                      "Prints the link at which the student reads their released feedback in the "
                      "course\n(at http.public_url). Anyone holding the link can read it until it "
                      "expires.",
                      link_opts, NULL, 0, 0},
    [STUDENT_ROTATE] = {"stepmark student rotate-key", NULL,
                        "Replaces the key that signs student links: every link handed out before "
                        "stops\nworking at once.",
                        NULL, sm_cli_config_opts, 0, 0},
};

/* Parses --days; 0 when absent, -1 when invalid. */
static int parse_days(const char *s)
{
    if (!s)
        return 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < 1 || v > SM_STUDENT_LINK_MAX_DAYS)
        return -1;
    return (int)v;
}

static int run(PGconn *conn, student_cmd cmd, const sm_args *a, const sm_config *cfg, int days)
{
    sm_err err;
    if (sm_migrate(conn, NULL, &err) != SM_OK) {
        fprintf(stderr, "stepmark student: %s\n", err.msg);
        return 1;
    }
    if (cmd == STUDENT_ROTATE) {
        if (sm_student_key_rotate(conn, &err) != SM_OK) {
            fprintf(stderr, "stepmark student rotate-key: %s\n", err.msg);
            return 1;
        }
        printf("student link key replaced: every link handed out before no longer works\n");
        return 0;
    }
    char base[SM_CONFIG_STR];
    sm_student_base_url(cfg->http.public_url, cfg->http.address, cfg->http.port,
                        cfg->http.tls_cert_file[0] != '\0', base, sizeof base);
    sm_student_link_req req = {.course_code = sm_args_get(a, "course"),
                               .student_ref = sm_args_get(a, "student"),
                               .days = days,
                               .base_url = base};
    sm_student_link link;
    if (sm_student_link_make(conn, &req, &link, &err) != SM_OK) {
        fprintf(stderr, "stepmark student link: %s\n", err.msg);
        return 1;
    }
    printf("%s\n", link.url);
    fprintf(stderr, "valid until %s (UTC)\n", link.expires_at);
    return 0;
}

static int student_main(student_cmd cmd, int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&specs[cmd], argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    rc = 0;
    int days = parse_days(cmd == STUDENT_LINK ? sm_args_get(&a, "days") : NULL);
    if (days < 0)
        rc = sm_args_usage_error(specs[cmd].prog, "--days needs a number of days from 1 to %d",
                                 SM_STUDENT_LINK_MAX_DAYS);
    static sm_config cfg;
    if (!rc)
        rc = sm_cli_load_config(&a, &cfg);
    PGconn *conn = NULL;
    sm_pgembed *pg = NULL;
    if (!rc && sm_cli_connect(&cfg, &conn, &pg))
        rc = 1;
    if (!rc)
        rc = run(conn, cmd, &a, &cfg, days);
    sm_args_free(&a);
    if (sm_cli_disconnect("stepmark student", &conn, &pg))
        rc = 1;
    return rc;
}

static int student_link(int argc, char **argv)
{
    return student_main(STUDENT_LINK, argc, argv);
}

static int student_rotate(int argc, char **argv)
{
    return student_main(STUDENT_ROTATE, argc, argv);
}

int sm_cli_student(int argc, char **argv)
{
    static const sm_args_cmd cmds[] = {
        {"link", student_link, "link --course C --student REF [--days N]: a feedback link"},
        {"rotate-key", student_rotate, "rotate-key: invalidate every student link"},
    };
    static const sm_args_group g = {
        "stepmark student",
        "A student link shows the student their released feedback in one course (see\n"
        "docs/student-feedback.md). The links are signed with a key kept in the database.\n",
        cmds, sizeof cmds / sizeof cmds[0]};
    return sm_args_dispatch(&g, argc, argv);
}
