/* cmd_similarity: `stepmark similarity --course C --assignment A [--threshold X] [--starter FILE]
 * [--json]`: compares the latest submission of every student of the assignment
 * (common/sm_similarity_db.c), stores the pairs at or above the threshold for the review page
 * and prints them. --threshold and --starter are saved as the assignment's settings, which the
 * review page's "Compare submissions" button then uses too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "sm_db.h"
#include "sm_migrate.h"
#include "sm_similarity.h"
#include "sm_similarity_db.h"

static const sm_arg_opt opts[] = {
    {"course", 0, SM_ARG_VALUE, "CODE", "the course", true},
    {"assignment", 0, SM_ARG_VALUE, "CODE", "the assignment", true},
    {"threshold", 0, SM_ARG_VALUE, "X",
     "report pairs scoring at least X (0 < X <= 1; saved; default 0.5)", false},
    {"starter", 0, SM_ARG_VALUE, "FILE",
     "starter code given to the students: its matches are left out (saved; \"\" clears it)", false},
    {"json", 0, SM_ARG_FLAG, NULL, "print the run and its pairs as JSON", false},
    SM_CLI_CONFIG_OPT,
    {0}};

static const sm_args_spec spec = {
    "stepmark similarity",
    NULL,
    "Compares the latest submission of every student of an assignment and stores the\n"
    "pairs that are suspiciously alike for the review page (code: winnowed fingerprints\n"
    "of normalized tokens; proofs and math: word n-grams). A pair never changes a score.",
    opts,
    NULL,
    0,
    0};

static char *read_file(const char *path, sm_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        sm_err_set(err, SM_EIO, "cannot open %s", path);
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    while (s) {
        n += fread(s + n, 1, cap - 1 - n, f);
        if (n < cap - 1 || cap > SM_SIM_MAX_BYTES)
            break;
        cap *= 2;
        char *t = realloc(s, cap);
        if (!t) {
            free(s);
            s = NULL;
        } else {
            s = t;
        }
    }
    fclose(f);
    if (!s) {
        sm_err_set(err, SM_ENOMEM, "out of memory reading %s", path);
        return NULL;
    }
    s[n] = '\0';
    if (strlen(s) != n) {
        free(s);
        sm_err_set(err, SM_EFORMAT, "%s is not text (it holds a NUL byte)", path);
        return NULL;
    }
    return s;
}

static void print_text(const json_t *sum, const json_t *list)
{
    printf("compared %lld submissions in %.0f ms; %lld pairs at or above %.2f\n",
           (long long)json_integer_value(json_object_get(sum, "submissions")),
           json_real_value(json_object_get(sum, "fingerprint_ms")) +
               json_real_value(json_object_get(sum, "pair_ms")),
           (long long)json_integer_value(json_object_get(sum, "pairs")),
           json_real_value(json_object_get(sum, "threshold")));
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(list, "pairs"), i, p)
    {
        json_t *a = json_object_get(p, "a"), *b = json_object_get(p, "b");
        printf("%5.0f%%  %s (#%lld)  %s (#%lld)  %lld regions\n",
               100 * json_number_value(json_object_get(p, "score")),
               json_string_value(json_object_get(a, "student_ref")),
               (long long)json_integer_value(json_object_get(a, "submission_id")),
               json_string_value(json_object_get(b, "student_ref")),
               (long long)json_integer_value(json_object_get(b, "submission_id")),
               (long long)json_integer_value(json_object_get(p, "regions")));
    }
}

static int run(PGconn *conn, const sm_args *a, double threshold, const char *starter)
{
    sm_err err = {0};
    int64_t aid;
    if (sm_migrate(conn, NULL, &err) != SM_OK ||
        sm_sim_db_assignment(conn, sm_args_get(a, "course"), sm_args_get(a, "assignment"), &aid,
                             &err) != SM_OK) {
        fprintf(stderr, "stepmark similarity: %s\n", err.msg);
        return 1;
    }
    sm_sim_settings set = {.threshold = threshold, .starter_code = starter};
    if ((threshold > 0 || starter) && sm_sim_db_configure(conn, aid, &set, &err) != SM_OK) {
        fprintf(stderr, "stepmark similarity: %s\n", err.msg);
        return 1;
    }
    sm_sim_run_req req = {.assignment_id = aid, .started_by = "cli"};
    json_t *sum = NULL, *list = NULL;
    if (sm_sim_db_run(conn, &req, &sum, &err) != SM_OK ||
        sm_sim_db_pairs(conn, aid, &list, &err) != SM_OK) {
        json_decref(sum);
        fprintf(stderr, "stepmark similarity: %s\n", err.msg);
        return 1;
    }
    if (sm_args_has(a, "json")) {
        json_object_set(list, "summary", sum);
        char *s = json_dumps(list, JSON_INDENT(2));
        printf("%s\n", s ? s : "{}");
        free(s);
    } else {
        print_text(sum, list);
    }
    json_decref(sum);
    json_decref(list);
    return 0;
}

int sm_cli_similarity(int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    rc = 0;
    double threshold = 0;
    const char *th = sm_args_get(&a, "threshold");
    if (th) {
        char *end;
        threshold = strtod(th, &end);
        if (end == th || *end || !(threshold > 0 && threshold <= 1))
            rc = sm_args_usage_error(spec.prog, "--threshold needs a number above 0, at most 1");
    }
    char *starter = NULL;
    sm_err err = {0};
    const char *sf = sm_args_get(&a, "starter");
    if (!rc && sf && *sf && !(starter = read_file(sf, &err))) {
        fprintf(stderr, "stepmark similarity: %s\n", err.msg);
        rc = 1;
    }
    static sm_config cfg;
    if (!rc)
        rc = sm_cli_load_config(&a, &cfg);
    PGconn *conn = NULL;
    sm_pgembed *pg = NULL;
    if (!rc && sm_cli_connect(&cfg, &conn, &pg))
        rc = 1;
    if (!rc)
        rc = run(conn, &a, threshold, starter ? starter : (sf ? "" : NULL));
    free(starter);
    sm_args_free(&a);
    if (sm_cli_disconnect("stepmark similarity", &conn, &pg))
        rc = 1;
    return rc;
}
