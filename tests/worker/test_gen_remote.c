/* test_gen_remote: the worker's remote generation backend (sm_gen_remote.c, sm_gen_http.c)
 * against a stand-in OpenAI-compatible server written here from OpenAI's public
 * /v1/completions shape (libmicrohttpd, real HTTP on loopback): the request it sends (token
 * ids, sampling, seed, stop strings, max_tokens, the bearer key from its file), the stop
 * string put back or not as stop_reason says, a continuation's prompt (the prompt, the
 * generated text encoded again, the new ids), usage counted, 503 retried, 400 and retries
 * exhausted failing the job, cancel, the concurrency limit, and a key file others can read
 * refused. Usage: test_gen_remote TOKENIZER_DIR */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>

#include "sm_config.h"
#include "sm_gen.h"

static const char *tok_dir;

/* ---- the stand-in server ---- */

typedef struct server {
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t mu;
    json_t *bodies; /* every request body received */
    char auth[256]; /* the last Authorization header */
    int fail_first; /* answer the first N requests with fail_status */
    int fail_status;
    const char *answer; /* the JSON answered otherwise */
    int delay_ms;
    int inflight, max_inflight, requests;
} server;

typedef struct upload {
    char *buf;
    size_t len;
} upload;

static enum MHD_Result reply(struct MHD_Connection *c, int status, const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

/* One whole request: recorded, then answered as the server's settings say. */
static enum MHD_Result answer(server *S, struct MHD_Connection *c, upload *u)
{
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    pthread_mutex_lock(&S->mu);
    json_array_append_new(S->bodies, json_loadb(u->buf ? u->buf : "", u->len, 0, NULL));
    snprintf(S->auth, sizeof S->auth, "%s", auth ? auth : "");
    int n = S->requests++;
    S->inflight++;
    if (S->inflight > S->max_inflight)
        S->max_inflight = S->inflight;
    pthread_mutex_unlock(&S->mu);
    if (S->delay_ms)
        usleep((useconds_t)S->delay_ms * 1000);
    pthread_mutex_lock(&S->mu);
    S->inflight--;
    pthread_mutex_unlock(&S->mu);
    if (n < S->fail_first)
        return reply(c, S->fail_status,
                     "{\"error\":{\"message\":\"bad things\",\"type\":\"x\",\"param\":null,"
                     "\"code\":null}}");
    return reply(c, 200, S->answer);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *data,
                               size_t *size, void **con_cls)
{
    (void)version;
    server *S = cls;
    upload *u = *con_cls;
    if (!u) {
        *con_cls = calloc(1, sizeof(upload));
        return *con_cls ? MHD_YES : MHD_NO;
    }
    if (*size) {
        char *p = realloc(u->buf, u->len + *size + 1);
        if (!p)
            return MHD_NO;
        memcpy(p + u->len, data, *size);
        u->buf = p;
        u->len += *size;
        u->buf[u->len] = '\0';
        *size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "POST") != 0 || strcmp(url, "/v1/completions") != 0)
        return reply(c, 404, "{\"error\":{\"message\":\"no\"}}");
    return answer(S, c, u);
}

static void done_cb(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode t)
{
    (void)cls, (void)c, (void)t;
    upload *u = *con_cls;
    if (u)
        free(u->buf);
    free(u);
    *con_cls = NULL;
}

static void server_start(server *S)
{
    pthread_mutex_init(&S->mu, NULL);
    S->bodies = json_array();
    S->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                                MHD_USE_ERROR_LOG,
                            0, NULL, NULL, handler, S, MHD_OPTION_NOTIFY_COMPLETED, done_cb, NULL,
                            MHD_OPTION_SOCK_ADDR, NULL, MHD_OPTION_END);
    assert_non_null(S->d);
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(S->d, MHD_DAEMON_INFO_BIND_PORT);
    S->port = i->port;
}

static void server_stop(server *S)
{
    MHD_stop_daemon(S->d);
    json_decref(S->bodies);
    pthread_mutex_destroy(&S->mu);
}

/* ---- the backend under test ---- */

typedef struct fx {
    server S;
    sm_tokenizer *tok;
    sm_config cfg;
    sm_gen_backend gen;
    char keyfile[64];
    /* what the callback saw */
    int calls;
    char text[256];
    sm_finish finish;
    int64_t total;
    char fp[64], model[64];
    int32_t cont[2]; /* ids to continue with once (0: none) */
} fx;

static fx *F;

static sm_code on_done(void *user, const sm_gen_result *r, sm_gen_next *next, sm_err *err)
{
    (void)err;
    fx *f = user;
    f->calls++;
    snprintf(f->text, sizeof f->text, "%s", r->text);
    f->finish = r->finish;
    f->total = r->total_tokens;
    snprintf(f->fp, sizeof f->fp, "%s", r->fingerprint);
    snprintf(f->model, sizeof f->model, "%s", r->server_model);
    if (f->cont[0]) {
        next->ids = malloc(2 * sizeof(int32_t));
        memcpy(next->ids, f->cont, sizeof f->cont);
        next->n = 2;
        next->max_new = 5;
        f->cont[0] = 0;
    }
    return SM_OK;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    sm_err err;
    if (sm_tokenizer_load_cached(tok_dir, NULL, &f->tok, &err)) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    server_start(&f->S);
    sm_config_defaults(&f->cfg);
    snprintf(f->cfg.worker.remote.base_url, sizeof f->cfg.worker.remote.base_url,
             "http://127.0.0.1:%d/v1/", f->S.port);
    snprintf(f->keyfile, sizeof f->keyfile, "/tmp/test_gen_remote_%d.key", (int)getpid());
    FILE *fp = fopen(f->keyfile, "w");
    fputs("sekrit\n", fp);
    fclose(fp);
    chmod(f->keyfile, 0600);
    snprintf(f->cfg.worker.remote.api_key_file, sizeof f->cfg.worker.remote.api_key_file, "%s",
             f->keyfile);
    snprintf(f->cfg.worker.remote.model, sizeof f->cfg.worker.remote.model, "m1");
    f->cfg.worker.remote.max_concurrency = 2;
    f->cfg.worker.remote.retries = 2;
    f->cfg.worker.remote.timeout_ms = 20000;
    F = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    sm_gen_free(&f->gen);
    server_stop(&f->S);
    sm_tokenizer_free(&f->tok);
    unlink(f->keyfile);
    free(f);
    return 0;
}

static void open_gen(fx *f)
{
    sm_err err;
    sm_code rc = sm_gen_remote_new(&f->cfg, f->tok, on_done, &f->gen, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, SM_OK);
}

static const char *const STOPS[] = {"\nEND", NULL};

static void submit(fx *f, void *user, int tag)
{
    static const int32_t prompt[] = {11, 22, 33};
    sm_task_spec t = {
        .user = user, .tag = tag, .prompt = prompt, .n_prompt = 3, .max_new = 7, .stops = STOPS};
    sm_sampler_params_init(&t.sampling);
    t.sampling.temperature = 0.5;
    t.sampling.top_p = 0.9;
    t.sampling.top_k = 20;
    t.sampling.seed = 1234;
    sm_err err;
    assert_int_equal(sm_gen_submit(&f->gen, &t, &err), SM_OK);
}

/* Steps until cond holds (the server answers within seconds; a bound keeps a bug from
 * hanging the test). */
#define STEP_UNTIL(f, cond)                                            \
    do {                                                               \
        sm_err e_;                                                     \
        bool p_, ok_ = false;                                          \
        for (int i_ = 0; i_ < 2000 && !(ok_ = (cond)); i_++)           \
            assert_int_equal(sm_gen_step(&(f)->gen, &p_, &e_), SM_OK); \
        assert_true(ok_);                                              \
    } while (0)

static void request_and_answer(void **state)
{
    fx *f = *state;
    f->S.answer = "{\"model\":\"served\",\"system_fingerprint\":\"fp-1\",\"choices\":[{\"text\":"
                  "\"hello\",\"finish_reason\":\"stop\",\"stop_reason\":\"\\nEND\"}],"
                  "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}";
    open_gen(f);
    f->cont[0] = 7;
    f->cont[1] = 8;
    submit(f, f, 0);
    STEP_UNTIL(f, f->calls == 1);
    assert_string_equal(f->text, "hello\nEND"); /* the trimmed stop string put back */
    assert_int_equal(f->finish, SM_FINISH_STOP);
    assert_string_equal(f->fp, "fp-1");
    assert_string_equal(f->model, "served");
    assert_int_equal(f->total, 4);
    assert_int_equal(sm_gen_user_tokens(&f->gen, f), 4); /* the continuation is under way */
    STEP_UNTIL(f, f->calls == 2);
    assert_int_equal(f->total, 8);
    assert_string_equal(f->S.auth, "Bearer sekrit");
    json_t *b = json_array_get(f->S.bodies, 0);
    assert_string_equal(json_string_value(json_object_get(b, "model")), "m1");
    assert_int_equal(json_integer_value(json_object_get(b, "seed")), 1234);
    assert_int_equal(json_integer_value(json_object_get(b, "max_tokens")), 7);
    assert_int_equal(json_integer_value(json_object_get(b, "top_k")), 20);
    assert_true(json_real_value(json_object_get(b, "temperature")) == 0.5);
    assert_string_equal(json_string_value(json_array_get(json_object_get(b, "stop"), 0)), "\nEND");
    json_t *p = json_object_get(b, "prompt");
    assert_int_equal(json_array_size(p), 3);
    assert_int_equal(json_integer_value(json_array_get(p, 2)), 33);
    /* the continuation: the prompt, "hello\nEND" encoded, then 7 8; at most 5 more tokens */
    int32_t *ids = NULL;
    size_t n = 0;
    sm_err err;
    assert_int_equal(sm_tokenizer_encode(f->tok, "hello\nEND", 9, false, &ids, &n, &err), SM_OK);
    json_t *b2 = json_array_get(f->S.bodies, 1);
    json_t *p2 = json_object_get(b2, "prompt");
    assert_int_equal(json_array_size(p2), 3 + n + 2);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(json_integer_value(json_array_get(p2, 3 + i)), ids[i]);
    assert_int_equal(json_integer_value(json_array_get(p2, 3 + n + 1)), 8);
    assert_int_equal(json_integer_value(json_object_get(b2, "max_tokens")), 5);
    free(ids);
    sm_gen_stats st;
    sm_gen_get_stats(&f->gen, &st);
    assert_int_equal(st.generated_tokens, 8);
    assert_int_equal(st.requests, 2);
}

/* How the phase ended, from finish_reason and stop_reason. */
static void finishes(void **state)
{
    fx *f = *state;
    static const struct {
        const char *answer, *text;
        sm_finish finish;
    } cases[] = {
        {"{\"choices\":[{\"text\":\"a\",\"finish_reason\":\"stop\",\"stop_reason\":null}]}", "a",
         SM_FINISH_EOS},
        {"{\"choices\":[{\"text\":\"a\",\"finish_reason\":\"stop\",\"stop_reason\":151645}]}", "a",
         SM_FINISH_EOS},
        {"{\"choices\":[{\"text\":\"a\",\"finish_reason\":\"stop\"}]}", "a\nEND", SM_FINISH_STOP},
        {"{\"choices\":[{\"text\":\"a\\nEND\",\"finish_reason\":\"stop\"}]}", "a\nEND",
         SM_FINISH_STOP},
        {"{\"choices\":[{\"text\":\"a\",\"finish_reason\":\"length\"}]}", "a", SM_FINISH_LENGTH},
    };
    open_gen(f);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f->S.answer = cases[i].answer;
        submit(f, f, 0);
        STEP_UNTIL(f, f->calls == (int)i + 1);
        assert_string_equal(f->text, cases[i].text);
        assert_int_equal(f->finish, cases[i].finish);
        assert_string_equal(f->fp, ""); /* none reported */
    }
}

static void retried_then_answered(void **state)
{
    fx *f = *state;
    f->S.answer = "{\"choices\":[{\"text\":\"ok\",\"finish_reason\":\"length\"}]}";
    f->S.fail_first = 2;
    f->S.fail_status = 503;
    open_gen(f);
    submit(f, f, 0);
    STEP_UNTIL(f, f->calls == 1);
    assert_string_equal(f->text, "ok");
    sm_gen_stats st;
    sm_gen_get_stats(&f->gen, &st);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.requests, 3);
    void *u;
    char msg[256];
    assert_false(sm_gen_take_failed(&f->gen, &u, msg, sizeof msg));
}

/* Retries run out (503 every time, retries: 2), or a 400 that is not retried. */
static void failures(void **state)
{
    fx *f = *state;
    f->S.answer = "{\"choices\":[{\"text\":\"ok\",\"finish_reason\":\"length\"}]}";
    f->S.fail_first = 100;
    f->S.fail_status = 503;
    open_gen(f);
    int a, b;
    submit(f, &a, 0);
    submit(f, &a, 1); /* the job's other sample goes with it */
    void *u = NULL;
    char msg[256];
    STEP_UNTIL(f, sm_gen_take_failed(&f->gen, &u, msg, sizeof msg));
    assert_ptr_equal(u, &a);
    assert_non_null(strstr(msg, "HTTP 503"));
    assert_int_equal(sm_gen_user_tokens(&f->gen, &a), 0);
    f->S.fail_first = 100;
    f->S.fail_status = 400;
    submit(f, &b, 0);
    STEP_UNTIL(f, sm_gen_take_failed(&f->gen, &u, msg, sizeof msg));
    assert_ptr_equal(u, &b);
    assert_non_null(strstr(msg, "bad things"));
    assert_int_equal(f->calls, 0);
}

/* At most max_concurrency requests in flight; a cancelled job's requests never call back. */
static void cancel_and_limit(void **state)
{
    fx *f = *state;
    f->S.answer = "{\"choices\":[{\"text\":\"ok\",\"finish_reason\":\"length\"}]}";
    f->S.delay_ms = 100;
    open_gen(f);
    for (int i = 0; i < 5; i++)
        submit(f, f, i);
    STEP_UNTIL(f, f->calls == 5);
    assert_true(f->S.max_inflight >= 1 && f->S.max_inflight <= 2);
    int other;
    submit(f, &other, 0);
    submit(f, &other, 1);
    assert_int_equal(sm_gen_cancel(&f->gen, &other), 2);
    submit(f, f, 0);
    STEP_UNTIL(f, f->calls == 6); /* on_done would crash on &other */
    assert_int_equal(sm_gen_cancel(&f->gen, &other), 0);
}

static void key_file_mode(void **state)
{
    fx *f = *state;
    chmod(f->keyfile, 0640);
    sm_err err;
    assert_int_equal(sm_gen_remote_new(&f->cfg, f->tok, on_done, &f->gen, &err), SM_ECONFIG);
    assert_non_null(strstr(err.msg, "chmod 600"));
    f->cfg.worker.remote.base_url[0] = '\0';
    chmod(f->keyfile, 0600);
    assert_int_equal(sm_gen_remote_new(&f->cfg, f->tok, on_done, &f->gen, &err), SM_ECONFIG);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_gen_remote TOKENIZER_DIR\n");
        return 2;
    }
    tok_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(request_and_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(finishes, setup, teardown),
        cmocka_unit_test_setup_teardown(retried_then_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(failures, setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_and_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(key_file_mode, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
