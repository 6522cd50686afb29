/* cmd_client: shared helpers of the broker-facing subcommands (cmd_client.h). */
#include "cmd_client.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "cli_common.h"
#include "sm_curve.h"

/* Where this client's CURVE secret key may come from: never the command line, where any user
 * sees it in `ps` and it lands in shell history. */
#define SM_ENV_CLIENT_KEY_FILE "STEPMARK_CLIENT_SECRET_KEY_FILE"
#define SM_ENV_CLIENT_KEY "STEPMARK_CLIENT_SECRET_KEY"

/* Loads this client's secret key into out (or leaves it empty when none is given): from
 * --key-file FILE, else $STEPMARK_CLIENT_SECRET_KEY_FILE, else $STEPMARK_CLIENT_SECRET_KEY
 * (the 40-character z85 key itself). Key files must be private (sm_curve_read_secret).
 * Prints the error and returns the exit status 2, or 0. */
static int client_secret(const sm_args *a, char out[SM_CURVE_Z85])
{
    out[0] = '\0';
    const char *file = sm_args_get(a, "key-file");
    if (!file || !*file)
        file = getenv(SM_ENV_CLIENT_KEY_FILE);
    const char *value = getenv(SM_ENV_CLIENT_KEY);
    sm_err err;
    sm_code rc = SM_OK;
    char pub[SM_CURVE_Z85];
    if (file && *file) {
        rc = sm_curve_read_secret(file, out, &err);
    } else if (value && *value) {
        snprintf(out, SM_CURVE_Z85, "%.40s", value);
        if (strlen(value) != 40 || sm_curve_public_of(out, pub, &err) != SM_OK)
            rc = sm_err_set(&err, SM_EINVAL,
                            "$" SM_ENV_CLIENT_KEY " must hold a 40-character "
                            "z85 key (use $" SM_ENV_CLIENT_KEY_FILE " for a file)");
    }
    if (rc) {
        memset(out, 0, SM_CURVE_Z85);
        fprintf(stderr, "stepmark: %s\n", err.msg);
        return SM_EXIT_CONFIG;
    }
    return 0;
}

const sm_arg_opt sm_cli_client_opts[] = {
    SM_CLI_CONFIG_OPT,
    {"endpoint", 0, SM_ARG_VALUE, "EP", "the broker's client endpoint (broker.client_endpoint)",
     false},
    {"server-key", 0, SM_ARG_VALUE, "Z85|FILE", "the broker's CURVE public key", false},
    {"key-file", 0, SM_ARG_VALUE, "FILE", "this client's CURVE secret key file (mode 600)", false},
    {"timeout-ms", 0, SM_ARG_VALUE, "MS", "wait for each reply (default 3000; one retry)", false},
    {"key", 0, SM_ARG_REFUSED, NULL,
     "a secret on the command line is visible to other users; use --key-file FILE (mode 600) "
     "or set $" SM_ENV_CLIENT_KEY_FILE " or $" SM_ENV_CLIENT_KEY,
     false},
    {0}};

/* The --timeout-ms value (default SM_CLI_TIMEOUT_MS); -1 with a message when it is bad. */
static int timeout_ms(const sm_args *a)
{
    const char *t = sm_args_get(a, "timeout-ms");
    if (!t)
        return SM_CLI_TIMEOUT_MS;
    char *end;
    long v = strtol(t, &end, 10);
    if (end == t || *end || v < 1 || v > 3600000) {
        sm_args_usage_error(a->spec->prog,
                            "--timeout-ms needs a number of milliseconds, 1 to "
                            "3600000 (got '%s')",
                            t);
        return -1;
    }
    return (int)v;
}

int sm_cli_client_open(const sm_args *a, sm_config *cfg, sm_client **out)
{
    int tmo = timeout_ms(a);
    if (tmo < 0)
        return SM_EXIT_CONFIG;
    int rc = sm_cli_load_config(a, cfg);
    if (rc)
        return rc;
    char secret[SM_CURVE_Z85];
    rc = client_secret(a, secret);
    if (rc)
        return rc;
    const char *ep = sm_args_get(a, "endpoint");
    const char *server = sm_args_get(a, "server-key");
    const sm_curve_config *cc = &cfg->broker.curve;
    if (!server && cc->enabled)
        server = cc->server_public_key[0] ? cc->server_public_key
                 : cc->public_key_file[0] ? cc->public_key_file
                                          : NULL;
    sm_client_opts o = {.endpoint = ep ? ep : cfg->broker.client_endpoint,
                        .server_key = server,
                        .secret_key = secret[0] ? secret : NULL,
                        .timeout_ms = tmo,
                        .retries = SM_CLI_RETRIES};
    sm_err err;
    sm_code crc = sm_client_new(NULL, &o, out, &err);
    memset(secret, 0, sizeof secret);
    if (crc != SM_OK) {
        fprintf(stderr, "stepmark: %s\n", err.msg);
        return 2;
    }
    return 0;
}

void sm_cli_print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) {
        puts(s);
        free(s);
    }
}

int sm_cli_fail(const char *cmd, const sm_err *err)
{
    fprintf(stderr, "stepmark %s: %s (%s)\n", cmd, err->msg, sm_code_name(err->code));
    return 1;
}

char *sm_cli_read_text(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "stepmark: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, fp);
        n += r;
        if (n < cap)
            break;
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
        }
        buf = nb;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (!buf || bad) {
        free(buf);
        fprintf(stderr, "stepmark: cannot read %s\n", path);
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* YAML -> JSON over libyaml's document API. */
static json_t *scalar(yaml_node_t *n)
{
    const char *v = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        if (!strcmp(v, "true"))
            return json_true();
        if (!strcmp(v, "false"))
            return json_false();
        if (!strcmp(v, "null") || !strcmp(v, "~") || len == 0)
            return json_null();
        char *end;
        errno = 0;
        long long i = strtoll(v, &end, 10);
        if (*end == '\0' && errno == 0)
            return json_integer(i);
        double d = strtod(v, &end);
        if (*end == '\0')
            return json_real(d);
    }
    return json_stringn(v, len);
}

static json_t *convert(yaml_document_t *doc, yaml_node_t *n, int depth)
{
    if (!n || depth > 32)
        return NULL;
    if (n->type == YAML_SCALAR_NODE)
        return scalar(n);
    if (n->type == YAML_SEQUENCE_NODE) {
        json_t *a = json_array();
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            json_t *v = convert(doc, yaml_document_get_node(doc, *it), depth + 1);
            if (!v) {
                json_decref(a);
                return NULL;
            }
            json_array_append_new(a, v);
        }
        return a;
    }
    json_t *o = json_object();
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        json_t *v = convert(doc, yaml_document_get_node(doc, p->value), depth + 1);
        if (!k || k->type != YAML_SCALAR_NODE || !v) {
            json_decref(v);
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, (const char *)k->data.scalar.value, v);
    }
    return o;
}

json_t *sm_cli_read_data(const char *path, char *msg, size_t msg_size)
{
    size_t len;
    char *text = sm_cli_read_text(path, &len);
    if (!text) {
        snprintf(msg, msg_size, "cannot read %s", path);
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (j) {
        free(text);
        return j;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(msg, msg_size, "%s:%zu: %s", path, parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "invalid YAML");
        yaml_parser_delete(&parser);
        free(text);
        return NULL;
    }
    j = convert(&doc, yaml_document_get_root_node(&doc), 0);
    if (!j)
        snprintf(msg, msg_size, "%s: empty or unsupported YAML", path);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    free(text);
    return j;
}
