/* cmd_teacher: `stepmark teacher add --name NAME --course CODE [--course CODE...]` creates a
 * teacher who may review the given courses and prints their sign-in token once; only its
 * SHA-256 hash is stored, so a lost token is replaced by adding the teacher again.
 * `stepmark teacher list` shows the teachers and their courses (never tokens). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "sm_db.h"
#include "sm_migrate.h"
#include "sm_teacher.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: stepmark teacher add --name NAME --course CODE [--course CODE...] "
                 "[--config FILE]\n"
                 "       stepmark teacher list [--config FILE]\n"
                 "add prints the new teacher's sign-in token once; only its hash is stored.\n");
}

static int teacher_list(PGconn *conn)
{
    PGresult *r;
    sm_err err;
    if (sm_db_query(conn,
                    "SELECT t.id, t.name, COALESCE(string_agg(c.code, ',' ORDER BY c.code), '') "
                    "FROM teacher t LEFT JOIN course_teacher ct ON ct.teacher_id = t.id "
                    "LEFT JOIN course c ON c.id = ct.course_id GROUP BY t.id ORDER BY t.id",
                    0, NULL, &r, &err) != SM_OK) {
        fprintf(stderr, "stepmark teacher: %s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < PQntuples(r); i++)
        printf("%s\t%s\t%s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
    PQclear(r);
    return 0;
}

int sm_cli_teacher(int argc, char **argv)
{
    if (argc < 2 || sm_cli_flag(argc, argv, "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    bool add = strcmp(argv[1], "add") == 0;
    if (!add && strcmp(argv[1], "list") != 0) {
        usage(stderr);
        return 2;
    }
    const char *name = sm_cli_opt(argc, argv, "--name");
    const char **courses = calloc((size_t)argc, sizeof *courses);
    int ncourses = 0;
    if (!courses)
        return 1;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--course") == 0 && i + 1 < argc)
            courses[ncourses++] = argv[++i];
        else if (strncmp(argv[i], "--course=", 9) == 0)
            courses[ncourses++] = argv[i] + 9;
    }
    if (add && (!name || ncourses == 0)) {
        usage(stderr);
        free(courses);
        return 2;
    }
    sm_config cfg;
    int rc = sm_cli_load_config(argc, argv, &cfg);
    if (rc) {
        free(courses);
        return rc;
    }
    PGconn *conn;
    sm_pgembed *pg;
    if (sm_cli_connect(&cfg, &conn, &pg)) {
        free(courses);
        return 1;
    }
    sm_err err;
    rc = 0;
    if (sm_migrate(conn, NULL, &err) != SM_OK) {
        fprintf(stderr, "stepmark teacher: %s\n", err.msg);
        rc = 1;
    } else if (add) {
        char token[SM_TEACHER_TOKEN_LEN];
        int64_t id = 0;
        if (sm_teacher_add(conn, name, courses, ncourses, token, &id, &err) != SM_OK) {
            fprintf(stderr, "stepmark teacher add: %s\n", err.msg);
            rc = 1;
        } else {
            printf("teacher %lld created; sign-in token (shown only now, keep it secret):\n%s\n",
                   (long long)id, token);
            memset(token, 0, sizeof token);
        }
    } else {
        rc = teacher_list(conn);
    }
    free(courses);
    PQfinish(conn);
    if (pg && sm_pgembed_stop(&pg, &err) != SM_OK) {
        fprintf(stderr, "stepmark teacher: %s\n", err.msg);
        rc = 1;
    }
    return rc;
}
