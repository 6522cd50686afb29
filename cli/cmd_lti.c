/* cmd_lti: `stepmark lti platform add|list|remove`, `stepmark lti key rotate|jwks`,
 * `stepmark lti config canvas|moodle`, and for grade passback and the roster `stepmark lti
 * passback|student-ref|status|log` and `stepmark lti roster sync` (docs/lti.md). Platforms and keys live in PostgreSQL
 * (schema/009_lti.sql); the tool's private key is never printed. The config commands print
 * what an LMS administrator pastes into Canvas's developer key or Moodle's External tool form,
 * from http.public_url (or the listen address). */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "sm_db.h"
#include "sm_lti.h"
#include "sm_lti_ags.h"
#include "sm_migrate.h"

typedef enum lti_cmd {
    LTI_PLATFORM_ADD,
    LTI_PLATFORM_LIST,
    LTI_PLATFORM_REMOVE,
    LTI_KEY_ROTATE,
    LTI_KEY_JWKS,
    LTI_CONFIG_CANVAS,
    LTI_CONFIG_MOODLE,
    LTI_PASSBACK,
    LTI_STUDENT_REF,
    LTI_STATUS,
    LTI_LOG,
    LTI_ROSTER_SYNC
} lti_cmd;

static const sm_arg_opt add_opts[] = {
    {"issuer", 0, SM_ARG_VALUE, "URL",
     "the platform's issuer (iss), e.g. https://canvas.instructure.com", true},
    {"client-id", 0, SM_ARG_VALUE, "ID", "the client id the platform gave the tool", true},
    {"deployment", 0, SM_ARG_VALUE, "ID", "a deployment id (repeat for several)", true},
    {"auth-url", 0, SM_ARG_VALUE, "URL", "the platform's OIDC authorization endpoint", true},
    {"token-url", 0, SM_ARG_VALUE, "URL", "the platform's OAuth2 token endpoint", true},
    {"jwks-url", 0, SM_ARG_VALUE, "URL", "the platform's public keyset (JWKS) URL", true},
    SM_CLI_CONFIG_OPT,
    {0}};
static const sm_arg_opt list_opts[] = {
    {"json", 0, SM_ARG_FLAG, NULL, "print a JSON array", false}, SM_CLI_CONFIG_OPT, {0}};

static const sm_arg_opt passback_opts[] = {
    {"course", 0, SM_ARG_VALUE, "CODE", "the stepmark course", true},
    {"assignment", 0, SM_ARG_VALUE, "CODE", "one assignment of it (default: the whole course)",
     false},
    SM_CLI_CONFIG_OPT,
    {0}};
static const sm_arg_opt course_opts[] = {
    {"course", 0, SM_ARG_VALUE, "CODE", "the stepmark course", true}, SM_CLI_CONFIG_OPT, {0}};
static const sm_arg_opt status_opts[] = {
    {"course", 0, SM_ARG_VALUE, "CODE", "the stepmark course", true},
    {"json", 0, SM_ARG_FLAG, NULL, "print JSON", false},
    SM_CLI_CONFIG_OPT,
    {0}};
static const sm_arg_opt log_opts[] = {
    {"course", 0, SM_ARG_VALUE, "CODE", "only this stepmark course", false},
    {"limit", 0, SM_ARG_VALUE, "N", "the newest N rows (default 50)", false},
    {"json", 0, SM_ARG_FLAG, NULL, "print a JSON array", false},
    SM_CLI_CONFIG_OPT,
    {0}};

static const sm_args_spec specs[] = {
    [LTI_PLATFORM_ADD] = {"stepmark lti platform add", NULL,
                          "Registers an LMS (an LTI 1.3 platform) that may launch stepmark.",
                          add_opts, NULL, 0, 0},
    [LTI_PLATFORM_LIST] = {"stepmark lti platform list", NULL, "Lists the registered platforms.",
                           list_opts, NULL, 0, 0},
    [LTI_PLATFORM_REMOVE] = {"stepmark lti platform remove", "ID",
                             "Removes a platform with its deployments, users and course "
                             "mappings;\nits launches are refused from then on.",
                             NULL, sm_cli_config_opts, 1, 1},
    [LTI_KEY_ROTATE] = {"stepmark lti key rotate", NULL,
                        "Makes a new signing key for the tool. The old key stays in the JWKS\n"
                        "for lti.key_grace_days, so platforms that cached it keep working.",
                        NULL, sm_cli_config_opts, 0, 0},
    [LTI_KEY_JWKS] = {"stepmark lti key jwks", NULL,
                      "Prints the tool's public keyset (as served at /lti/jwks.json).", NULL,
                      sm_cli_config_opts, 0, 0},
    [LTI_CONFIG_CANVAS] = {"stepmark lti config canvas", NULL,
                           "Prints the JSON to paste into a Canvas LTI 1.3 developer key\n"
                           "(Developer Keys > + LTI Key > Method: Paste JSON).",
                           NULL, sm_cli_config_opts, 0, 0},
    [LTI_CONFIG_MOODLE] = {"stepmark lti config moodle", NULL,
                           "Prints the values of Moodle 4.x's External tool form\n"
                           "(Site administration > Plugins > Activity modules > External tool "
                           "> Manage tools\n> configure a tool manually).",
                           NULL, sm_cli_config_opts, 0, 0},
    [LTI_PASSBACK] = {"stepmark lti passback", "on-approval|on-release",
                      "When scores go back to the LMS gradebook: when the teacher approves or\n"
                      "adjusts a grade, or only when they release it (the default).",
                      passback_opts, NULL, 1, 1},
    [LTI_STUDENT_REF] = {"stepmark lti student-ref", "sub|sourcedid|email",
                         "Which LMS user detail equals the student_ref of the course's\n"
                         "submissions: the LTI user id (sub, the default), lis_person_sourcedid\n"
                         "or the email address.",
                         course_opts, NULL, 1, 1},
    [LTI_STATUS] = {"stepmark lti status", NULL,
                    "Shows a course's LTI settings, its LMS courses and their grade passback.",
                    status_opts, NULL, 0, 0},
    [LTI_LOG] = {"stepmark lti log", NULL,
                 "Shows the newest grade passback attempts (posted, skipped, failed, rejected).",
                 log_opts, NULL, 0, 0},
    [LTI_ROSTER_SYNC] = {"stepmark lti roster sync", NULL,
                         "Imports the roster of the course's LMS courses (Names and Role\n"
                         "Provisioning Services): names, emails and sourcedids of students.",
                         course_opts, NULL, 0, 0},
};

static const char *const names[] = {
    "platform add",  "platform list", "platform remove", "key rotate", "key jwks", "config canvas",
    "config moodle", "passback",      "student-ref",     "status",     "log",      "roster sync"};

static void print_json(json_t *doc)
{
    char *s = json_dumps(doc, JSON_INDENT(2));
    if (s)
        printf("%s\n", s);
    free(s);
}

static sm_code platform_add(PGconn *db, const sm_args *a, sm_err *err)
{
    int n = sm_args_count(a, "deployment");
    const char **deps = calloc((size_t)n + 1, sizeof *deps);
    if (!deps)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        deps[i] = sm_args_nth(a, "deployment", i);
    sm_lti_platform_spec spec = {sm_args_get(a, "issuer"),
                                 sm_args_get(a, "client-id"),
                                 sm_args_get(a, "auth-url"),
                                 sm_args_get(a, "token-url"),
                                 sm_args_get(a, "jwks-url"),
                                 deps,
                                 n};
    int64_t id = 0;
    sm_code rc = sm_lti_platform_add(db, &spec, &id, err);
    if (rc == SM_OK)
        printf("platform %" PRId64 " added: %s (client id %s, %d deployment%s)\n", id, spec.issuer,
               spec.client_id, n, n == 1 ? "" : "s");
    free(deps);
    return rc;
}

static sm_code platform_list(PGconn *db, bool as_json, sm_err *err)
{
    json_t *rows = NULL;
    sm_code rc = sm_lti_platform_list(db, &rows, err);
    if (rc != SM_OK)
        return rc;
    if (as_json) {
        print_json(rows);
    } else {
        printf("id\tissuer\tclient_id\tdeployments\tauth_url\ttoken_url\tjwks_url\n");
        size_t i, j;
        json_t *p, *d;
        json_array_foreach(rows, i, p)
        {
            printf("%" JSON_INTEGER_FORMAT "\t%s\t%s\t",
                   json_integer_value(json_object_get(p, "id")),
                   json_string_value(json_object_get(p, "issuer")),
                   json_string_value(json_object_get(p, "client_id")));
            json_array_foreach(json_object_get(p, "deployments"), j, d)
                printf("%s%s", j ? "," : "", json_string_value(d));
            printf("\t%s\t%s\t%s\n", json_string_value(json_object_get(p, "auth_url")),
                   json_string_value(json_object_get(p, "token_url")),
                   json_string_value(json_object_get(p, "jwks_url")));
        }
    }
    json_decref(rows);
    return SM_OK;
}

static sm_code passback_set(PGconn *db, const sm_args *a, sm_err *err)
{
    const char *policy = a->pos[0], *course = sm_args_get(a, "course");
    const char *assignment = sm_args_get(a, "assignment");
    bool approval = strcmp(policy, "on-approval") == 0;
    if (!approval && strcmp(policy, "on-release") != 0)
        return sm_err_set(err, SM_EINVAL, "the policy is on-approval or on-release, not '%s'",
                          policy);
    sm_code rc = sm_lti_passback_set(db, course, assignment,
                                     approval ? SM_LTI_ON_APPROVAL : SM_LTI_ON_RELEASE, err);
    if (rc == SM_OK)
        printf("%s%s%s: scores go to the LMS %s\n", course, assignment ? "/" : "",
               assignment ? assignment : "",
               approval ? "when a grade is approved, adjusted or released"
                        : "when a grade is released");
    return rc;
}

static void print_log(json_t *rows)
{
    printf("at\tcourse\tevent\tsubmission\tuser\tattempt\toutcome\tdetail\tstatus\terror\n");
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        const char *user = json_string_value(json_object_get(r, "user"));
        const char *error = json_string_value(json_object_get(r, "error"));
        printf("%s\t%s\t%s\t%" JSON_INTEGER_FORMAT "\t%s\t%" JSON_INTEGER_FORMAT
               "\t%s\t%s\t%" JSON_INTEGER_FORMAT "\t%s\n",
               json_string_value(json_object_get(r, "at")),
               json_string_value(json_object_get(r, "course"))
                   ? json_string_value(json_object_get(r, "course"))
                   : "-",
               json_string_value(json_object_get(r, "event")),
               json_integer_value(json_object_get(r, "submission_id")), user ? user : "-",
               json_integer_value(json_object_get(r, "attempt")),
               json_string_value(json_object_get(r, "outcome")),
               json_string_value(json_object_get(r, "detail")),
               json_integer_value(json_object_get(r, "status_code")), error ? error : "");
    }
}

static sm_code roster_sync(PGconn *db, const char *course, sm_err *err)
{
    sm_lti_client c;
    sm_code rc = sm_lti_client_init(&c, 30000, err);
    if (rc != SM_OK)
        return rc;
    sm_lti_roster_result res;
    rc = sm_lti_roster_sync(&c, db, course, &res, err);
    sm_lti_client_free(&c);
    if (rc == SM_OK)
        printf("%s: %d members read from %d LMS course%s, %d no longer enrolled\n", course,
               res.members, res.contexts, res.contexts == 1 ? "" : "s", res.removed);
    return rc;
}

/* The commands of grade passback and the roster (sm_lti_ags.h). */
static sm_code run_services(PGconn *db, lti_cmd cmd, const sm_args *a, sm_err *err)
{
    json_t *doc = NULL;
    sm_code rc = SM_OK;
    switch (cmd) {
    case LTI_PASSBACK:
        return passback_set(db, a, err);
    case LTI_STUDENT_REF:
        rc = sm_lti_student_ref_set(db, sm_args_get(a, "course"), a->pos[0], err);
        if (rc == SM_OK)
            printf("%s: a learner's student_ref is their %s\n", sm_args_get(a, "course"),
                   a->pos[0]);
        return rc;
    case LTI_STATUS:
        rc = sm_lti_course_status(db, sm_args_get(a, "course"), &doc, err);
        break;
    case LTI_LOG: {
        const char *lim = sm_args_get(a, "limit");
        int n = lim ? atoi(lim) : 50;
        if (n < 1 || n > 10000)
            return sm_err_set(err, SM_EINVAL, "--limit must be 1..10000");
        rc = sm_lti_passback_log(db, sm_args_get(a, "course"), n, &doc, err);
        if (rc == SM_OK && !sm_args_has(a, "json")) {
            print_log(doc);
            json_decref(doc);
            return SM_OK;
        }
        break;
    }
    default:
        return roster_sync(db, sm_args_get(a, "course"), err);
    }
    if (rc == SM_OK)
        print_json(doc);
    json_decref(doc);
    return rc;
}

static sm_code run_db(PGconn *db, lti_cmd cmd, const sm_args *a, const sm_config *cfg, sm_err *err)
{
    sm_code rc = sm_migrate(db, NULL, err);
    if (rc != SM_OK)
        return rc;
    if (cmd >= LTI_PASSBACK)
        return run_services(db, cmd, a, err);
    switch (cmd) {
    case LTI_PLATFORM_ADD:
        return platform_add(db, a, err);
    case LTI_PLATFORM_LIST:
        return platform_list(db, sm_args_has(a, "json"), err);
    case LTI_PLATFORM_REMOVE: {
        char *end;
        long long id = strtoll(a->pos[0], &end, 10);
        if (*end || id <= 0)
            return sm_err_set(err, SM_EINVAL, "ID must be a platform id, got '%s'", a->pos[0]);
        rc = sm_lti_platform_remove(db, id, err);
        if (rc == SM_OK)
            printf("platform %lld removed\n", id);
        return rc;
    }
    case LTI_KEY_ROTATE: {
        char kid[SM_LTI_KID_MAX];
        rc = sm_lti_key_rotate(db, kid, err);
        if (rc == SM_OK)
            printf("new signing key %s; the previous key stays in the JWKS for %lld days\n", kid,
                   (long long)cfg->lti.key_grace_days);
        return rc;
    }
    default: {
        json_t *jwks = NULL;
        rc = sm_lti_jwks(db, cfg->lti.key_grace_days, &jwks, err);
        if (rc == SM_OK)
            print_json(jwks);
        json_decref(jwks);
        return rc;
    }
    }
}

/* Canvas's LTI 1.3 JSON configuration (a developer key's "Paste JSON"). */
static void config_canvas(const char *base)
{
    char login[1100], launch[1100], jwks[1100], host[1024];
    snprintf(login, sizeof login, "%s/lti/login", base);
    snprintf(launch, sizeof launch, "%s/lti/launch", base);
    snprintf(jwks, sizeof jwks, "%s/lti/jwks.json", base);
    const char *h = strstr(base, "://");
    snprintf(host, sizeof host, "%s", h ? h + 3 : base);
    host[strcspn(host, "/:")] = '\0';
    json_t *doc = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:[sssss],s:[{s:s,s:s,s:s,s:s,s:{s:s,s:[{s:s,s:s,s:s,s:s,s:s},"
        "{s:s,s:s,s:s,s:s},{s:s,s:s,s:s,s:s}]}}]}",
        "title", "stepmark", "description", "Step-by-step grading with teacher review",
        "oidc_initiation_url", login, "target_link_uri", launch, "public_jwk_url", jwks, "scopes",
        "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
        "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly",
        "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
        "https://purl.imsglobal.org/spec/lti-ags/scope/score",
        "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly", "extensions",
        "platform", "canvas.instructure.com", "domain", host, "tool_id", "stepmark",
        "privacy_level", "public", "settings", "text", "stepmark", "placements", "placement",
        "course_navigation", "message_type", "LtiResourceLinkRequest", "target_link_uri", launch,
        "text", "stepmark", "windowTarget", "_blank", "placement", "assignment_selection",
        "message_type", "LtiDeepLinkingRequest", "target_link_uri", launch, "text", "stepmark",
        "placement", "link_selection", "message_type", "LtiDeepLinkingRequest", "target_link_uri",
        launch, "text", "stepmark");
    print_json(doc);
    json_decref(doc);
}

static void config_moodle(const char *base)
{
    printf("Tool name:                        stepmark\n"
           "Tool URL:                         %s/lti/launch\n"
           "LTI version:                      LTI 1.3\n"
           "Public key type:                  Keyset URL\n"
           "Public keyset:                    %s/lti/jwks.json\n"
           "Initiate login URL:               %s/lti/login\n"
           "Redirection URI(s):               %s/lti/launch\n"
           "Supports Deep Linking:            yes (Content Selection URL: %s/lti/launch)\n"
           "Default launch container:         New window\n"
           "Share launcher's name with tool:  Always (shown to teachers)\n"
           "Share launcher's email with tool: Always (needed when student-ref is email)\n"
           "Accept grades from the tool:      Always\n"
           "IMS LTI Assignment and Grade Services:  Use this service for grade sync and column "
           "management\n"
           "IMS LTI Names and Role Provisioning:    Use this service to retrieve members' "
           "information as per privacy settings\n",
           base, base, base, base, base);
}

static int lti_main(lti_cmd cmd, int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&specs[cmd], argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    static sm_config cfg;
    rc = sm_cli_load_config(&a, &cfg);
    if (!rc && (cmd == LTI_CONFIG_CANVAS || cmd == LTI_CONFIG_MOODLE)) {
        char base[1024];
        sm_lti_base_url(cfg.http.public_url, cfg.http.tls_cert_file[0] != '\0',
                        cfg.http.address[0] ? cfg.http.address : "127.0.0.1", cfg.http.port, base,
                        sizeof base);
        if (cmd == LTI_CONFIG_CANVAS)
            config_canvas(base);
        else
            config_moodle(base);
        sm_args_free(&a);
        return 0;
    }
    PGconn *conn = NULL;
    sm_pgembed *pg = NULL;
    if (!rc && sm_cli_connect(&cfg, &conn, &pg))
        rc = 1;
    sm_err err = {0};
    if (!rc && run_db(conn, cmd, &a, &cfg, &err) != SM_OK) {
        fprintf(stderr, "stepmark lti %s: %s\n", names[cmd], err.msg);
        rc = 1;
    }
    sm_args_free(&a);
    if (sm_cli_disconnect("stepmark lti", &conn, &pg))
        rc = 1;
    return rc;
}

static int platform_add_cmd(int argc, char **argv)
{
    return lti_main(LTI_PLATFORM_ADD, argc, argv);
}
static int platform_list_cmd(int argc, char **argv)
{
    return lti_main(LTI_PLATFORM_LIST, argc, argv);
}
static int platform_remove_cmd(int argc, char **argv)
{
    return lti_main(LTI_PLATFORM_REMOVE, argc, argv);
}
static int key_rotate_cmd(int argc, char **argv)
{
    return lti_main(LTI_KEY_ROTATE, argc, argv);
}
static int key_jwks_cmd(int argc, char **argv)
{
    return lti_main(LTI_KEY_JWKS, argc, argv);
}
static int config_canvas_cmd(int argc, char **argv)
{
    return lti_main(LTI_CONFIG_CANVAS, argc, argv);
}
static int config_moodle_cmd(int argc, char **argv)
{
    return lti_main(LTI_CONFIG_MOODLE, argc, argv);
}

static int passback_cmd(int argc, char **argv)
{
    return lti_main(LTI_PASSBACK, argc, argv);
}
static int student_ref_cmd(int argc, char **argv)
{
    return lti_main(LTI_STUDENT_REF, argc, argv);
}
static int status_cmd(int argc, char **argv)
{
    return lti_main(LTI_STATUS, argc, argv);
}
static int log_cmd(int argc, char **argv)
{
    return lti_main(LTI_LOG, argc, argv);
}
static int roster_sync_cmd(int argc, char **argv)
{
    return lti_main(LTI_ROSTER_SYNC, argc, argv);
}

static int lti_roster(int argc, char **argv)
{
    static const sm_args_cmd cmds[] = {
        {"sync", roster_sync_cmd, "sync --course C: import the LMS roster (names, emails)"},
    };
    static const sm_args_group g = {"stepmark lti roster", NULL, cmds,
                                    sizeof cmds / sizeof cmds[0]};
    return sm_args_dispatch(&g, argc, argv);
}

static int lti_platform(int argc, char **argv)
{
    static const sm_args_cmd cmds[] = {
        {"add", platform_add_cmd,
         "add --issuer --client-id --deployment --auth-url --token-url --jwks-url"},
        {"list", platform_list_cmd, "list [--json]: registered platforms"},
        {"remove", platform_remove_cmd, "remove ID: forget a platform"},
    };
    static const sm_args_group g = {"stepmark lti platform", NULL, cmds,
                                    sizeof cmds / sizeof cmds[0]};
    return sm_args_dispatch(&g, argc, argv);
}

static int lti_key(int argc, char **argv)
{
    static const sm_args_cmd cmds[] = {
        {"rotate", key_rotate_cmd, "rotate: a new signing key (the old one kept for a while)"},
        {"jwks", key_jwks_cmd, "jwks: print the public keyset"},
    };
    static const sm_args_group g = {"stepmark lti key", NULL, cmds, sizeof cmds / sizeof cmds[0]};
    return sm_args_dispatch(&g, argc, argv);
}

static int lti_config(int argc, char **argv)
{
    static const sm_args_cmd cmds[] = {
        {"canvas", config_canvas_cmd, "canvas: JSON for a Canvas developer key"},
        {"moodle", config_moodle_cmd, "moodle: values for Moodle's External tool form"},
    };
    static const sm_args_group g = {"stepmark lti config", NULL, cmds,
                                    sizeof cmds / sizeof cmds[0]};
    return sm_args_dispatch(&g, argc, argv);
}

int sm_cli_lti(int argc, char **argv)
{
    static const sm_args_cmd cmds[] = {
        {"platform", lti_platform, "platform add|list|remove: the LMSs that may launch stepmark"},
        {"key", lti_key, "key rotate|jwks: the tool's signing keys"},
        {"config", lti_config, "config canvas|moodle: what to enter in the LMS"},
        {"passback", passback_cmd,
         "passback --course C [--assignment A] on-approval|on-release: when grades go back"},
        {"student-ref", student_ref_cmd,
         "student-ref --course C sub|sourcedid|email: how learners map to submissions"},
        {"status", status_cmd, "status --course C: settings, LMS courses, passback progress"},
        {"log", log_cmd, "log [--course C] [--limit N] [--json]: grade passback attempts"},
        {"roster", lti_roster, "roster sync --course C: import the LMS roster"},
    };
    static const sm_args_group g = {"stepmark lti",
                                    "LTI 1.3 launches from an LMS; see docs/lti.md.\n", cmds,
                                    sizeof cmds / sizeof cmds[0]};
    return sm_args_dispatch(&g, argc, argv);
}
