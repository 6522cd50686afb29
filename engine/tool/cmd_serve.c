/* cmd_serve: `stepmark-engine serve --model PATH --port N [options]`, an OpenAI-compatible HTTP
 * server over the CPU engine (see docs/engine.md, "serve"). Loads the model and tokenizer,
 * computes the model's identity (the worker's SHA-256 over its files) for system_fingerprint,
 * starts the generation thread (serve_engine.c) and the HTTP server (serve_http.c), and runs
 * until SIGINT or SIGTERM. A non-loopback address needs an API key. */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_model_opts.h"
#include "commands.h"
#include "serve.h"
#include "sm_modelid.h"

static const sm_arg_opt serve_opts_tab[] = {
    {"model", 0, SM_ARG_VALUE, "PATH", "the model folder or GGUF file", true},
    {"tokenizer", 0, SM_ARG_VALUE, "DIR", "the tokenizer (default: the model's folder)", false},
    {"address", 0, SM_ARG_VALUE, "ADDR", "numeric address to listen on (default 127.0.0.1)", false},
    {"port", 0, SM_ARG_VALUE, "N", "port (0: any free port, printed at start)", true},
    {"slots", 0, SM_ARG_VALUE, "N", "sequences decoded together (default 4)", false},
    {"queue", 0, SM_ARG_VALUE, "N", "requests waiting for a slot before 429 (default 64)", false},
    {"ctx", 0, SM_ARG_VALUE, "N", "context positions per sequence (default min(model, 8192))",
     false},
    {"api-key", 0, SM_ARG_VALUE, "KEY",
     "bearer key clients must send (or $STEPMARK_ENGINE_API_KEY)", false},
    {"model-name", 0, SM_ARG_VALUE, "NAME", "the model's name in the API (default: file name)",
     false},
    {"max-body", 0, SM_ARG_VALUE, "BYTES", "largest request body (default 1048576)", false},
    {"deterministic", 0, SM_ARG_FLAG, NULL,
     "requests default to the batch-invariant kernels (\"deterministic\": false overrides)", false},
    {0}};
static const sm_args_spec serve_spec = {
    "stepmark-engine serve",
    NULL,
    "An OpenAI-compatible HTTP server: /v1/completions, /v1/chat/completions, /v1/models, "
    "/health, /metrics.",
    serve_opts_tab,
    sm_cmd_model_opts,
    0,
    0};

typedef struct serve_args {
    const char *model, *tokenizer, *address, *api_key, *model_name;
    int port;
    int64_t max_body;
    serve_opts so;
    sm_model_opts mo;
} serve_args;

static int int_arg(const sm_args *a, const char *name, int64_t lo, int64_t hi, int64_t *out)
{
    const char *v = sm_args_get(a, name);
    if (!v)
        return 0;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "serve: --%s expects an integer in [%lld, %lld], got \"%s\"\n", name,
                (long long)lo, (long long)hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

static bool is_loopback(const char *addr)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, addr, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, addr, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static int parse_values(const sm_args *a, serve_args *s)
{
    int64_t port = -1, slots = 4, queue = 64, ctx = 0, body = 1 << 20;
    s->model = sm_args_get(a, "model");
    s->tokenizer = sm_args_get(a, "tokenizer");
    s->address = sm_args_get(a, "address") ? sm_args_get(a, "address") : "127.0.0.1";
    s->api_key =
        sm_args_get(a, "api-key") ? sm_args_get(a, "api-key") : getenv("STEPMARK_ENGINE_API_KEY");
    if (s->api_key && !s->api_key[0])
        s->api_key = NULL;
    s->model_name = sm_args_get(a, "model-name");
    s->so.deterministic = sm_args_has(a, "deterministic");
    if (int_arg(a, "port", 0, 65535, &port) || int_arg(a, "slots", 1, 256, &slots) ||
        int_arg(a, "queue", 1, 100000, &queue) || int_arg(a, "ctx", 1, 1 << 24, &ctx) ||
        int_arg(a, "max-body", 1024, 1 << 30, &body) || sm_cmd_model_opts_get(a, &s->mo))
        return -1;
    if (!is_loopback(s->address) && !s->api_key) {
        fprintf(stderr,
                "serve: --address %s is not a loopback address: give --api-key (or "
                "$STEPMARK_ENGINE_API_KEY) so that only your clients can use it\n",
                s->address);
        return -1;
    }
    s->port = (int)port;
    s->so.slots = (int)slots;
    s->so.queue = (int)queue;
    s->so.ctx = ctx;
    s->so.chunk = 512;
    s->max_body = body;
    return 0;
}

/* The API's model name: the file or folder name without ".gguf". */
static void default_name(const char *path, char *out, size_t size)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    size_t b = n;
    while (b > 0 && path[b - 1] != '/')
        b--;
    size_t len = n - b;
    if (len > 5 && strncmp(path + n - 5, ".gguf", 5) == 0)
        len -= 5;
    snprintf(out, size, "%.*s", (int)len, path + b);
}

/* Loads the model and tokenizer and starts the engine. */
static sm_code start_engine(serve_args *s, serve_engine **eng, sm_err *err)
{
    sm_model *model = NULL;
    sm_tokenizer *tok = NULL;
    sm_code rc = sm_model_load(s->model, &s->mo, &model, err);
    if (rc == SM_OK)
        rc = sm_tokenizer_load(s->tokenizer ? s->tokenizer : sm_model_dir(model), &tok, err);
    if (rc) {
        sm_model_free(&model);
        return rc;
    }
    int64_t max_pos = sm_model_info(model)->config.max_pos;
    if (s->so.ctx == 0)
        s->so.ctx = max_pos < 8192 ? max_pos : 8192;
    if (s->so.ctx > max_pos) {
        sm_model_free(&model);
        sm_tokenizer_free(&tok);
        return sm_err_set(err, SM_ELIMIT, "--ctx %lld exceeds the model's %lld positions",
                          (long long)s->so.ctx, (long long)max_pos);
    }
    return serve_engine_new(model, tok, &s->so, eng, err);
}

static int serve_run(serve_args *s)
{
    sm_err err = {0};
    char name[256], hash[SM_SHA256_HEX], fp[128];
    if (sm_modelid_compute(s->model, name, sizeof name, hash, &err) != SM_OK) {
        fprintf(stderr, "serve: %s (%s)\n", err.msg, sm_code_name(err.code));
        return 1;
    }
    default_name(s->model, name, sizeof name);
    snprintf(fp, sizeof fp, "stepmark-engine-%s-%.16s", sm_args_version(), hash);
    /* every thread started from here on inherits the blocked signals; main waits for them */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    serve_engine *eng = NULL;
    serve_http *http = NULL;
    serve_http_opts ho = {
        s->address, s->port, s->api_key,          s->model_name ? s->model_name : name,
        fp,         hash,    (size_t)s->max_body, s->so.slots + s->so.queue + 16};
    int port = 0;
    if (start_engine(s, &eng, &err) || serve_http_start(eng, &ho, &http, &port, &err)) {
        fprintf(stderr, "serve: %s (%s)\n", err.msg, sm_code_name(err.code));
        serve_engine_free(&eng);
        return 1;
    }
    fprintf(stderr, "serve: listening on http://%s%s%s:%d/v1 (model %s, %d slots, context %lld)\n",
            strchr(s->address, ':') ? "[" : "", s->address, strchr(s->address, ':') ? "]" : "",
            port, ho.model_name, s->so.slots, (long long)s->so.ctx);
    printf("%d\n", port);
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "serve: stopping (signal %d)\n", sig);
    serve_engine_shutdown(eng);
    serve_http_stop(&http);
    serve_engine_free(&eng);
    return 0;
}

int sm_cmd_serve(int argc, char **argv)
{
    serve_args s;
    memset(&s, 0, sizeof s);
    sm_model_opts_init(&s.mo);
    sm_args a;
    int rc = sm_args_parse(&serve_spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    rc = parse_values(&a, &s) == 0 ? 0 : SM_ARGS_EXIT_USAGE;
    /* the strings point into argv, which outlives a */
    sm_args_free(&a);
    return rc ? rc : serve_run(&s);
}
