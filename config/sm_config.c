/* sm_config: YAML configuration loader (see sm_config.h). Every accepted key is described by one
 * row of the `fields` table (path, type, location in struct sm_config, limits); the loader walks
 * the YAML document and rejects anything the table does not know. */
#include "sm_config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "sm_log.h"

typedef enum field_type { F_STR, F_INT, F_DOUBLE, F_BOOL } field_type;

typedef struct field {
    const char *path; /* dotted key path */
    field_type type;
    size_t offset;       /* into sm_config */
    size_t size;         /* F_STR: buffer size */
    double min, max;     /* F_INT, F_DOUBLE */
    const char *choices; /* F_STR: "a|b|c" or NULL */
} field;

#define STR(p, m)                                                                 \
    {                                                                             \
        p, F_STR, offsetof(sm_config, m), sizeof(((sm_config *)0)->m), 0, 0, NULL \
    }
#define CHOICE(p, m, c)                                                        \
    {                                                                          \
        p, F_STR, offsetof(sm_config, m), sizeof(((sm_config *)0)->m), 0, 0, c \
    }
#define INT(p, m, lo, hi)                                 \
    {                                                     \
        p, F_INT, offsetof(sm_config, m), 0, lo, hi, NULL \
    }
#define DBL(p, m, lo, hi)                                    \
    {                                                        \
        p, F_DOUBLE, offsetof(sm_config, m), 0, lo, hi, NULL \
    }
#define BOOL(p, m)                                       \
    {                                                    \
        p, F_BOOL, offsetof(sm_config, m), 0, 0, 0, NULL \
    }
#define CURVE(prefix, m)                                                   \
    BOOL(prefix ".curve.enabled", m.curve.enabled),                        \
        STR(prefix ".curve.secret_key_file", m.curve.secret_key_file),     \
        STR(prefix ".curve.public_key_file", m.curve.public_key_file),     \
        STR(prefix ".curve.server_public_key", m.curve.server_public_key), \
        STR(prefix ".curve.allowed_keys_file", m.curve.allowed_keys_file), \
        STR(prefix ".curve.client_keys_file", m.curve.client_keys_file),   \
        STR(prefix ".curve.worker_keys_file", m.curve.worker_keys_file),   \
        BOOL(prefix ".curve.allow_insecure_remote", m.curve.allow_insecure_remote)

static const field fields[] = {
    STR("database.url", database.url),
    STR("database.data_dir", database.data_dir),
    INT("database.pool_size", database.pool_size, 1, 64),

    STR("broker.client_endpoint", broker.client_endpoint),
    STR("broker.worker_endpoint", broker.worker_endpoint),
    STR("broker.event_endpoint", broker.event_endpoint),
    INT("broker.heartbeat_ms", broker.heartbeat_ms, 10, 3600000),
    INT("broker.heartbeat_timeout_ms", broker.heartbeat_timeout_ms, 10, 86400000),
    INT("broker.lease_ms", broker.lease_ms, 100, 86400000),
    INT("broker.max_attempts", broker.max_attempts, 1, 100),
    INT("broker.retry_backoff_ms", broker.retry_backoff_ms, 0, 86400000),
    INT("broker.max_body_bytes", broker.max_body_bytes, 1024, 256 * 1024 * 1024),
    INT("broker.group_commit_us", broker.group_commit_us, 0, 1000000),
    INT("broker.max_worker_slots", broker.max_worker_slots, 1, 4096),
    INT("broker.max_job_ms", broker.max_job_ms, 1000, 7 * 86400000LL),
    INT("broker.peer_error_replies", broker.peer_error_replies, 1, 1000000),
    INT("broker.peer_ban_errors", broker.peer_ban_errors, 1, 10000000),
    INT("broker.peer_ban_ms", broker.peer_ban_ms, 1000, 86400000),
    CURVE("broker", broker),

    STR("worker.name", worker.name),
    STR("worker.broker_endpoint", worker.broker_endpoint),
    STR("worker.model", worker.model),
    CHOICE("worker.device", worker.device, "cpu|cuda"),
    CHOICE("worker.dtype", worker.dtype, "f32|bf16|q8_0|q4_0|stored"),
    CHOICE("worker.kv_dtype", worker.kv_dtype, "auto|f32|f16|q8_0"),
    CHOICE("worker.on_memory_short", worker.on_memory_short, "refuse|lower_slots"),
    CHOICE("worker.isa", worker.isa, "auto|portable|avx2|avx512|avx512bf16"),
    INT("worker.threads", worker.threads, 0, 1024),
    INT("worker.slots", worker.slots, 1, 1024),
    INT("worker.max_prompt_tokens", worker.max_prompt_tokens, 16, 1048576),
    INT("worker.max_new_tokens", worker.max_new_tokens, 1, 1048576),
    INT("worker.samples", worker.samples, 1, 64),
    BOOL("worker.prefix_cache", worker.prefix_cache),
    BOOL("worker.deterministic", worker.deterministic),
    DBL("worker.injection_margin", worker.injection_margin, 0, 1),
    DBL("worker.sampling.temperature", worker.sampling.temperature, 0, 10),
    DBL("worker.sampling.top_p", worker.sampling.top_p, 0, 1),
    INT("worker.sampling.top_k", worker.sampling.top_k, 0, 1000000),
    DBL("worker.sampling.min_p", worker.sampling.min_p, 0, 1),
    DBL("worker.sampling.repetition_penalty", worker.sampling.repetition_penalty, 0.01, 10),
    INT("worker.sampling.seed", worker.sampling.seed, 0, 9007199254740991.0),
    STR("worker.prompt_dir", worker.prompt_dir),
    STR("worker.metrics_address", worker.metrics_address),
    INT("worker.metrics_port", worker.metrics_port, 0, 65535),
    CURVE("worker", worker),
    CHOICE("worker.engine", worker.engine, "local|remote"),
    STR("worker.remote.base_url", worker.remote.base_url),
    STR("worker.remote.api_key_file", worker.remote.api_key_file),
    STR("worker.remote.model", worker.remote.model),
    INT("worker.remote.max_concurrency", worker.remote.max_concurrency, 1, 4096),
    INT("worker.remote.timeout_ms", worker.remote.timeout_ms, 100, 3600000),
    INT("worker.remote.retries", worker.remote.retries, 0, 100),

    STR("sandbox.bwrap", sandbox.bwrap),
    INT("sandbox.cpu_seconds", sandbox.cpu_seconds, 1, 3600),
    INT("sandbox.wall_seconds", sandbox.wall_seconds, 1, 7200),
    INT("sandbox.memory_mb", sandbox.memory_mb, 16, 65536),
    INT("sandbox.max_processes", sandbox.max_processes, 1, 4096),
    INT("sandbox.max_output_bytes", sandbox.max_output_bytes, 256, 64 * 1024 * 1024),
    BOOL("sandbox.use_cgroups", sandbox.use_cgroups),
    INT("sandbox.memory_total_mb", sandbox.memory_total_mb, 0, 1048576),
    INT("sandbox.tmpfs_mb", sandbox.tmpfs_mb, 1, 65536),

    BOOL("http.enabled", http.enabled),
    STR("http.address", http.address),
    INT("http.port", http.port, 0, 65535),
    INT("http.threads", http.threads, 1, 256),
    STR("http.static_dir", http.static_dir),
    INT("http.login_attempts_per_minute", http.login_attempts_per_minute, 1, 100000),
    INT("http.max_connections", http.max_connections, 1, 1000),
    INT("http.max_connections_per_address", http.max_connections_per_address, 1, 1000),
    INT("http.connection_timeout_seconds", http.connection_timeout_seconds, 1, 3600),
    STR("http.tls_cert_file", http.tls_cert_file),
    STR("http.tls_key_file", http.tls_key_file),
    BOOL("http.behind_tls_proxy", http.behind_tls_proxy),
    STR("http.public_url", http.public_url),

    BOOL("webhooks.enabled", webhooks.enabled),
    INT("webhooks.timeout_ms", webhooks.timeout_ms, 100, 600000),
    INT("webhooks.first_backoff_ms", webhooks.first_backoff_ms, 10, 3600000),
    INT("webhooks.max_backoff_ms", webhooks.max_backoff_ms, 10, 86400000),
    INT("webhooks.poll_ms", webhooks.poll_ms, 10, 60000),
    INT("webhooks.log_days", webhooks.log_days, 1, 3650),
    INT("lti.key_grace_days", lti.key_grace_days, 0, 365),
    INT("lti.clock_skew_seconds", lti.clock_skew_seconds, 0, 600),
    INT("lti.jwks_refetch_seconds", lti.jwks_refetch_seconds, 1, 86400),

    CHOICE("logging.level", logging.level, "debug|info|warn|error|off"),
    STR("logging.file", logging.file),
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

static void set_str(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src);
}

void sm_config_defaults(sm_config *c)
{
    memset(c, 0, sizeof *c);
    set_str(c->database.data_dir, sizeof c->database.data_dir, "var/pgdata");
    c->database.pool_size = 4;

    set_str(c->broker.client_endpoint, sizeof c->broker.client_endpoint, "tcp://127.0.0.1:5555");
    set_str(c->broker.worker_endpoint, sizeof c->broker.worker_endpoint, "tcp://127.0.0.1:5556");
    set_str(c->broker.event_endpoint, sizeof c->broker.event_endpoint, "tcp://127.0.0.1:5557");
    c->broker.heartbeat_ms = 1000;
    c->broker.heartbeat_timeout_ms = 5000;
    c->broker.lease_ms = 60000;
    c->broker.max_attempts = 3;
    c->broker.retry_backoff_ms = 2000;
    c->broker.max_body_bytes = 1024 * 1024;
    c->broker.group_commit_us = 0;
    c->broker.max_worker_slots = 64;
    c->broker.max_job_ms = 2 * 3600 * 1000;
    c->broker.peer_error_replies = 20;
    c->broker.peer_ban_errors = 200;
    c->broker.peer_ban_ms = 60000;

    set_str(c->worker.broker_endpoint, sizeof c->worker.broker_endpoint, "tcp://127.0.0.1:5556");
    set_str(c->worker.device, sizeof c->worker.device, "cpu");
    set_str(c->worker.dtype, sizeof c->worker.dtype, "bf16");
    set_str(c->worker.kv_dtype, sizeof c->worker.kv_dtype, "auto");
    set_str(c->worker.on_memory_short, sizeof c->worker.on_memory_short, "refuse");
    set_str(c->worker.isa, sizeof c->worker.isa, "auto");
    c->worker.threads = 0;
    c->worker.slots = 4;
    c->worker.max_prompt_tokens = 8192;
    c->worker.max_new_tokens = 4096;
    c->worker.samples = 1;
    c->worker.prefix_cache = true;
    c->worker.deterministic = true;
    c->worker.injection_margin = 0.1;
    c->worker.sampling.temperature = 0.6;
    c->worker.sampling.top_p = 0.95;
    c->worker.sampling.top_k = 0;
    c->worker.sampling.min_p = 0;
    c->worker.sampling.repetition_penalty = 1.0;
    c->worker.sampling.seed = 0;
    set_str(c->worker.metrics_address, sizeof c->worker.metrics_address, "127.0.0.1");
    c->worker.metrics_port = 0;
    set_str(c->worker.engine, sizeof c->worker.engine, "local");
    c->worker.remote.max_concurrency = 8;
    c->worker.remote.timeout_ms = 600000;
    c->worker.remote.retries = 5;

    set_str(c->sandbox.bwrap, sizeof c->sandbox.bwrap, "/usr/bin/bwrap");
    c->sandbox.cpu_seconds = 5;
    c->sandbox.wall_seconds = 10;
    c->sandbox.memory_mb = 512;
    c->sandbox.max_processes = 32;
    c->sandbox.max_output_bytes = 65536;
    c->sandbox.use_cgroups = true;
    c->sandbox.memory_total_mb = 0;
    c->sandbox.tmpfs_mb = 64;

    c->http.enabled = true;
    set_str(c->http.address, sizeof c->http.address, "127.0.0.1");
    c->http.port = 8080;
    c->http.threads = 4;
    c->http.login_attempts_per_minute = 10;
    c->http.max_connections = 256;
    c->http.max_connections_per_address = 32;
    c->http.connection_timeout_seconds = 30;

    c->webhooks.enabled = true;
    c->webhooks.timeout_ms = 10000;
    c->webhooks.first_backoff_ms = 1000;
    c->webhooks.max_backoff_ms = 300000;
    c->webhooks.poll_ms = 1000;
    c->webhooks.log_days = 30;
    c->lti.key_grace_days = 7;
    c->lti.clock_skew_seconds = 60;
    c->lti.jwks_refetch_seconds = 10;

    set_str(c->logging.level, sizeof c->logging.level, "info");
}

static sm_code at(sm_err *err, const char *name, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static sm_code at(sm_err *err, const char *name, yaml_mark_t m, const char *fmt, ...)
{
    char msg[SM_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sm_err_set(err, SM_ECONFIG, "%s:%zu:%zu: %s", name, m.line + 1, m.column + 1, msg);
}

static const field *find_field(const char *path)
{
    for (size_t i = 0; i < N_FIELDS; i++)
        if (strcmp(fields[i].path, path) == 0)
            return &fields[i];
    return NULL;
}

static int is_section(const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < N_FIELDS; i++)
        if (strncmp(fields[i].path, path, n) == 0 && fields[i].path[n] == '.')
            return 1;
    return 0;
}

static int scalar_is_null(const yaml_node_t *v)
{
    const char *s = (const char *)v->data.scalar.value;
    return v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (*s == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0);
}

static sm_code set_field(sm_config *cfg, const field *f, const yaml_node_t *v, const char *name,
                         sm_err *err)
{
    char *base = (char *)cfg + f->offset;
    if (v->type != YAML_SCALAR_NODE)
        return at(err, name, v->start_mark, "%s: expected a single value, not a %s", f->path,
                  v->type == YAML_MAPPING_NODE ? "mapping" : "list");
    const char *s = (const char *)v->data.scalar.value;
    int plain = v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    switch (f->type) {
    case F_STR:
        if (scalar_is_null(v))
            s = "";
        if (strlen(s) >= f->size)
            return at(err, name, v->start_mark, "%s: value longer than %zu bytes", f->path,
                      f->size - 1);
        if (f->choices) {
            size_t n = strlen(s);
            const char *c = f->choices;
            int ok = 0;
            while (*c) {
                const char *bar = strchr(c, '|');
                size_t len = bar ? (size_t)(bar - c) : strlen(c);
                if (len == n && strncmp(c, s, n) == 0)
                    ok = 1;
                c += len + (bar ? 1 : 0);
            }
            if (!ok)
                return at(err, name, v->start_mark, "%s: \"%s\" is not one of %s", f->path, s,
                          f->choices);
        }
        set_str(base, f->size, s);
        return SM_OK;
    case F_INT: {
        char *end;
        errno = 0;
        long long x = plain ? strtoll(s, &end, 10) : 0;
        if (!plain || *s == '\0' || *end != '\0' || errno == ERANGE)
            return at(err, name, v->start_mark, "%s: expected an integer, got \"%s\"", f->path, s);
        if ((double)x < f->min || (double)x > f->max)
            return at(err, name, v->start_mark, "%s: %lld is out of range [%.0f, %.0f]", f->path, x,
                      f->min, f->max);
        *(int64_t *)base = x;
        return SM_OK;
    }
    case F_DOUBLE: {
        char *end;
        errno = 0;
        double x = plain ? strtod(s, &end) : 0;
        if (!plain || *s == '\0' || *end != '\0' || errno == ERANGE || !isfinite(x))
            return at(err, name, v->start_mark, "%s: expected a number, got \"%s\"", f->path, s);
        if (x < f->min || x > f->max)
            return at(err, name, v->start_mark, "%s: %g is out of range [%g, %g]", f->path, x,
                      f->min, f->max);
        *(double *)base = x;
        return SM_OK;
    }
    case F_BOOL:
        if (plain && (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on"))) {
            *(bool *)base = true;
            return SM_OK;
        }
        if (plain && (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off"))) {
            *(bool *)base = false;
            return SM_OK;
        }
        return at(err, name, v->start_mark, "%s: expected true or false, got \"%s\"", f->path, s);
    }
    return at(err, name, v->start_mark, "%s: internal error: unknown field type", f->path);
}

static sm_code walk_mapping(sm_config *cfg, yaml_document_t *doc, yaml_node_t *map,
                            const char *prefix, const char *name, sm_err *err)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        if (!k || !v)
            return sm_err_set(err, SM_ECONFIG, "%s: malformed document", name);
        if (k->type != YAML_SCALAR_NODE)
            return at(err, name, k->start_mark, "keys must be plain names");
        /* duplicate keys in one mapping */
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *k2 = yaml_document_get_node(doc, q->key);
            if (k2 && k2->type == YAML_SCALAR_NODE &&
                strcmp((char *)k2->data.scalar.value, (char *)k->data.scalar.value) == 0)
                return at(err, name, k->start_mark, "duplicate key \"%s\"",
                          (char *)k->data.scalar.value);
        }
        char path[256];
        if ((size_t)snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "",
                             (char *)k->data.scalar.value) >= sizeof path)
            return at(err, name, k->start_mark, "key path too long");
        const field *f = find_field(path);
        sm_code rc;
        if (f) {
            rc = set_field(cfg, f, v, name, err);
        } else if (is_section(path)) {
            if (v->type == YAML_SCALAR_NODE && scalar_is_null(v))
                continue; /* an empty section keeps its defaults */
            if (v->type != YAML_MAPPING_NODE)
                return at(err, name, v->start_mark, "%s: expected a mapping of settings", path);
            rc = walk_mapping(cfg, doc, v, path, name, err);
        } else {
            return at(err, name, k->start_mark, "unknown key \"%s\"", path);
        }
        if (rc != SM_OK)
            return rc;
    }
    return SM_OK;
}

sm_code sm_config_parse(sm_config *cfg, const char *name, const char *text, size_t len, sm_err *err)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return sm_err_set(err, SM_ENOMEM, "%s: cannot initialise the YAML parser", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        sm_code rc = at(err, name, parser.problem_mark, "malformed YAML: %s%s%s",
                        parser.problem ? parser.problem : "syntax error", parser.context ? " " : "",
                        parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return rc;
    }
    sm_code rc = SM_OK;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root) {
        if (root->type == YAML_SCALAR_NODE && scalar_is_null(root))
            rc = SM_OK;
        else if (root->type != YAML_MAPPING_NODE)
            rc = at(err, name, root->start_mark, "the top level must be a mapping of sections");
        else
            rc = walk_mapping(cfg, &doc, root, "", name, err);
    }
    if (rc == SM_OK) {
        /* a second document in the same file is not allowed */
        yaml_document_t extra;
        if (yaml_parser_load(&parser, &extra)) {
            if (yaml_document_get_root_node(&extra))
                rc = at(err, name, yaml_document_get_root_node(&extra)->start_mark,
                        "only one YAML document is allowed");
            yaml_document_delete(&extra);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

sm_code sm_config_load(sm_config *cfg, const char *path, sm_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return sm_err_set(err, SM_EIO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap ? cap * 2 : 16384;
            if (cap > 16 * 1024 * 1024) {
                free(buf);
                fclose(f);
                return sm_err_set(err, SM_ECONFIG, "%s:1:1: file larger than 16 MiB", path);
            }
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return sm_err_set(err, SM_ENOMEM, "out of memory");
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return sm_err_set(err, SM_EIO, "%s: read error", path);
    }
    sm_code rc = sm_config_parse(cfg, path, buf, len, err);
    free(buf);
    if (rc == SM_OK)
        set_str(cfg->path, sizeof cfg->path, path);
    return rc;
}

static sm_code env_str(const char *var, char *dst, size_t n, sm_err *err)
{
    const char *v = getenv(var);
    if (!v)
        return SM_OK;
    if (strlen(v) >= n)
        return sm_err_set(err, SM_ECONFIG, "environment variable %s is longer than %zu bytes", var,
                          n - 1);
    set_str(dst, n, v);
    return SM_OK;
}

sm_code sm_config_apply_env(sm_config *cfg, sm_err *err)
{
    sm_code rc = env_str("STEPMARK_DATABASE_URL", cfg->database.url, sizeof cfg->database.url, err);
    if (rc == SM_OK)
        rc = env_str("STEPMARK_BROKER_SECRET_KEY_FILE", cfg->broker.curve.secret_key_file,
                     sizeof cfg->broker.curve.secret_key_file, err);
    if (rc == SM_OK)
        rc = env_str("STEPMARK_WORKER_SECRET_KEY_FILE", cfg->worker.curve.secret_key_file,
                     sizeof cfg->worker.curve.secret_key_file, err);
    if (rc == SM_OK) {
        const char *lvl = getenv("STEPMARK_LOG_LEVEL");
        sm_log_level parsed;
        if (lvl && sm_log_level_parse(lvl, &parsed) != SM_OK)
            return sm_err_set(err, SM_ECONFIG,
                              "STEPMARK_LOG_LEVEL=%s: expected debug, info, "
                              "warn, error or off",
                              lvl);
        if (lvl)
            rc = env_str("STEPMARK_LOG_LEVEL", cfg->logging.level, sizeof cfg->logging.level, err);
    }
    const char *port = getenv("STEPMARK_HTTP_PORT");
    if (rc == SM_OK && port) {
        char *end;
        long p = strtol(port, &end, 10);
        if (*port == '\0' || *end || p < 0 || p > 65535)
            return sm_err_set(err, SM_ECONFIG, "STEPMARK_HTTP_PORT=%s: expected a port number",
                              port);
        cfg->http.port = p;
    }
    return rc;
}

sm_code sm_config_init(sm_config *cfg, const char *path, sm_err *err)
{
    sm_config_defaults(cfg);
    if (!path || !*path)
        path = getenv("STEPMARK_CONFIG");
    sm_code rc = SM_OK;
    if (path && *path)
        rc = sm_config_load(cfg, path, err);
    if (rc == SM_OK)
        rc = sm_config_apply_env(cfg, err);
    if (rc == SM_OK) {
        sm_log_level level = SM_LOG_INFO;
        sm_log_level_parse(cfg->logging.level, &level);
        rc = sm_log_configure(level, cfg->logging.file, err);
    }
    return rc;
}
