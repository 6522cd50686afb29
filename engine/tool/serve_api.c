/* serve_api: /v1/completions and /v1/chat/completions of `stepmark-engine serve`. Reads the
 * OpenAI request body (prompt as text or token ids, or chat messages through the model's chat
 * template; max_tokens, temperature, top_p, seed, stop, logprobs, stream, n = 1, and the
 * extensions top_k, min_p, repetition_penalty, ignore_eos and deterministic), queues a
 * serve_req, and answers with one JSON body, or with server-sent events ("data: {...}" chunks,
 * then "data: [DONE]"). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "serve_api.h"

/* The sampling and limits of one request, before its prompt is known. */
typedef struct api_params {
    sm_sampler_params sp;
    int64_t max_tokens; /* -1: not given */
    const char *stops[SERVE_MAX_STOPS];
    size_t n_stops;
    int logprobs; /* -1: none */
    bool deterministic, ignore_eos, stream, include_usage;
} api_params;

/* One generation call; for a stream it lives as long as the response. */
typedef struct api_call {
    serve_http *h;
    serve_engine *e;
    bool chat, stream, include_usage, sent_role, ended;
    char id[48];
    int64_t created;
    double t0;
    serve_req *req;
    size_t sent_text, sent_toks;
    char *pend;
    size_t pend_len, pend_off;
    struct MHD_Connection *conn;
    double checked; /* when peer_gone last ran */
} api_call;

/* Whether the client has closed its connection (checked while a request waits, so that an
 * abandoned request leaves its slot or the queue without waiting for a write to fail). */
static bool peer_gone(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return false;
    struct pollfd p = {ci->connect_fd, POLLRDHUP, 0};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Waits (lock held) for progress on c's request; false when the client went away. */
static bool wait_progress(api_call *c)
{
    serve_engine_wait(c->e, 0.5);
    double now = serve_now();
    if (now - c->checked < 0.5)
        return true;
    c->checked = now;
    if (!peer_gone(c->conn))
        return true;
    serve_engine_cancel(c->e, c->req);
    return false;
}

static uint64_t random_u64(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
        v = (uint64_t)time(NULL) ^ (uint64_t)clock();
    return v;
}

static int get_num(json_t *b, const char *key, double lo, double hi, double *out, serve_error *e)
{
    json_t *v = json_object_get(b, key);
    if (!v || json_is_null(v))
        return 0;
    double x = json_number_value(v);
    if (!json_is_number(v) || !(x >= lo && x <= hi)) {
        serve_error_set(e, 400, key, "invalid_value", "%s must be a number in [%g, %g].", key, lo,
                        hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int get_int(json_t *b, const char *key, int64_t lo, int64_t hi, int64_t *out, serve_error *e)
{
    json_t *v = json_object_get(b, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        serve_error_set(e, 400, key, "invalid_value", "%s must be an integer in [%lld, %lld].", key,
                        (long long)lo, (long long)hi);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static int get_bool(json_t *b, const char *key, bool *out, serve_error *e)
{
    json_t *v = json_object_get(b, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v)) {
        serve_error_set(e, 400, key, "invalid_type", "%s must be a boolean.", key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

static int parse_stops(json_t *b, api_params *p, serve_error *e)
{
    json_t *v = json_object_get(b, "stop");
    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        p->stops[p->n_stops++] = json_string_value(v);
    } else if (json_is_array(v) && json_array_size(v) <= SERVE_MAX_STOPS) {
        for (size_t i = 0; i < json_array_size(v); i++)
            p->stops[p->n_stops++] = json_string_value(json_array_get(v, i));
    } else {
        serve_error_set(e, 400, "stop", "invalid_type",
                        "stop must be a string or an array of at most %d strings.",
                        SERVE_MAX_STOPS);
        return -1;
    }
    for (size_t i = 0; i < p->n_stops; i++)
        if (!p->stops[i] || !p->stops[i][0]) {
            serve_error_set(e, 400, "stop", "invalid_value", "stop strings must be non-empty.");
            return -1;
        }
    return 0;
}

/* Options this server does not offer: refused rather than ignored. */
static int refuse_unsupported(json_t *b, serve_error *e)
{
    int64_t n = 1, best_of = 1;
    double pp = 0, fp = 0;
    bool echo = false;
    if (get_int(b, "n", 1, 1, &n, e) || get_int(b, "best_of", 1, 1, &best_of, e) ||
        get_bool(b, "echo", &echo, e) || get_num(b, "presence_penalty", 0, 0, &pp, e) ||
        get_num(b, "frequency_penalty", 0, 0, &fp, e))
        return -1;
    json_t *lb = json_object_get(b, "logit_bias");
    if (echo || (json_is_object(lb) && json_object_size(lb) > 0) ||
        json_is_array(json_object_get(b, "tools"))) {
        serve_error_set(e, 400,
                        echo                 ? "echo"
                        : json_is_object(lb) ? "logit_bias"
                                             : "tools",
                        "unsupported_parameter", "This parameter is not supported.");
        return -1;
    }
    return 0;
}

static int parse_logprobs(json_t *b, bool chat, api_params *p, serve_error *e)
{
    int64_t n = -1;
    if (!chat) {
        if (get_int(b, "logprobs", 0, SERVE_MAX_TOP_LOGPROBS, &n, e))
            return -1;
        p->logprobs = (int)n;
        return 0;
    }
    bool on = false;
    if (get_bool(b, "logprobs", &on, e) ||
        get_int(b, "top_logprobs", 0, SERVE_MAX_TOP_LOGPROBS, &n, e))
        return -1;
    if (n >= 0 && !on) {
        serve_error_set(e, 400, "top_logprobs", "invalid_value",
                        "top_logprobs needs logprobs: true.");
        return -1;
    }
    p->logprobs = on ? (int)(n < 0 ? 0 : n) : -1;
    return 0;
}

static int parse_params(serve_http *h, json_t *b, bool chat, api_params *p, serve_error *e)
{
    memset(p, 0, sizeof *p);
    sm_sampler_params_init(&p->sp);
    p->sp.temperature = 1.0;
    p->max_tokens = -1;
    p->deterministic = serve_engine_opts(serve_http_engine(h))->deterministic;
    json_t *m = json_object_get(b, "model");
    if (m && !json_is_null(m) && !json_is_string(m)) {
        serve_error_set(e, 400, "model", "invalid_type", "model must be a string.");
        return -1;
    }
    if (json_is_string(m) && strcmp(json_string_value(m), serve_http_options(h)->model_name)) {
        serve_error_set(e, 404, "model", "model_not_found", "The model `%s` does not exist.",
                        json_string_value(m));
        return -1;
    }
    int64_t seed = (int64_t)(random_u64() >> 1);
    json_t *so = json_object_get(b, "stream_options");
    if (get_num(b, "temperature", 0, 2, &p->sp.temperature, e) ||
        get_num(b, "top_p", 1e-9, 1, &p->sp.top_p, e) ||
        get_int(b, "top_k", -1, 1 << 30, &p->sp.top_k, e) ||
        get_num(b, "min_p", 0, 1, &p->sp.min_p, e) ||
        get_num(b, "repetition_penalty", 1e-3, 1e3, &p->sp.repeat_penalty, e) ||
        get_int(b, "seed", INT64_MIN, INT64_MAX, &seed, e) ||
        get_int(b, "max_tokens", 1, INT32_MAX, &p->max_tokens, e) ||
        (chat && get_int(b, "max_completion_tokens", 1, INT32_MAX, &p->max_tokens, e)) ||
        get_bool(b, "stream", &p->stream, e) ||
        get_bool(b, "deterministic", &p->deterministic, e) ||
        get_bool(b, "ignore_eos", &p->ignore_eos, e) ||
        (json_is_object(so) && get_bool(so, "include_usage", &p->include_usage, e)) ||
        parse_stops(b, p, e) || parse_logprobs(b, chat, p, e) || refuse_unsupported(b, e))
        return -1;
    if (p->sp.top_k < 0)
        p->sp.top_k = 0;
    p->sp.seed = (uint64_t)seed;
    return 0;
}

/* The prompt of /v1/completions: a string, token ids, or a one-element array of either. */
static int completion_prompt(serve_http *h, json_t *b, int32_t **ids, size_t *n, serve_error *e)
{
    json_t *pr = json_object_get(b, "prompt");
    if (json_is_array(pr) && json_array_size(pr) == 1 &&
        (json_is_string(json_array_get(pr, 0)) || json_is_array(json_array_get(pr, 0))))
        pr = json_array_get(pr, 0);
    if (json_is_string(pr)) {
        sm_err err = {0};
        if (sm_tokenizer_encode(serve_engine_tokenizer(serve_http_engine(h)), json_string_value(pr),
                                json_string_length(pr), true, ids, n, &err) == SM_OK)
            return 0;
        serve_error_set(e, 400, "prompt", "invalid_value", "%s", err.msg);
        return -1;
    }
    size_t k = json_is_array(pr) ? json_array_size(pr) : 0;
    *ids = malloc((k ? k : 1) * sizeof **ids);
    if (!*ids) {
        serve_error_set(e, 500, NULL, NULL, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < k; i++) {
        json_t *v = json_array_get(pr, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
            k = 0;
            break;
        }
        (*ids)[i] = (int32_t)json_integer_value(v);
    }
    *n = k;
    if (k > 0)
        return 0;
    free(*ids);
    *ids = NULL;
    serve_error_set(e, 400, "prompt", "invalid_value",
                    "prompt must be a non-empty string or an array of token ids (one prompt).");
    return -1;
}

/* A message's content: a string, or an array of {"type": "text", "text": ...} parts (joined
 * into *owned). */
static const char *message_content(json_t *c, char **owned)
{
    if (json_is_string(c))
        return json_string_value(c);
    if (json_is_null(c))
        return "";
    if (!json_is_array(c))
        return NULL;
    size_t len = 0;
    for (size_t i = 0; i < json_array_size(c); i++) {
        json_t *t = json_object_get(json_array_get(c, i), "text");
        if (!json_is_string(t))
            return NULL;
        len += json_string_length(t);
    }
    if (!(*owned = malloc(len + 1)))
        return NULL;
    len = 0;
    for (size_t i = 0; i < json_array_size(c); i++) {
        json_t *t = json_object_get(json_array_get(c, i), "text");
        memcpy(*owned + len, json_string_value(t), json_string_length(t));
        len += json_string_length(t);
    }
    (*owned)[len] = '\0';
    return *owned;
}

/* The prompt of /v1/chat/completions: messages through the chat template. */
static int chat_prompt(serve_http *h, json_t *b, int32_t **ids, size_t *n, serve_error *e)
{
    json_t *ms = json_object_get(b, "messages");
    size_t k = json_is_array(ms) ? json_array_size(ms) : 0;
    if (k == 0) {
        serve_error_set(e, 400, "messages", "invalid_value", "messages must be a non-empty array.");
        return -1;
    }
    sm_chat_message *msgs = calloc(k, sizeof *msgs);
    char **owned = calloc(k, sizeof *owned);
    int rc = 0;
    if (!msgs || !owned) {
        serve_error_set(e, 500, NULL, NULL, "out of memory");
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < k; i++) {
        json_t *m = json_array_get(ms, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        msgs[i].role = role && strcmp(role, "developer") == 0 ? "system" : role;
        msgs[i].content = message_content(json_object_get(m, "content"), &owned[i]);
        if (!msgs[i].role || !msgs[i].content) {
            serve_error_set(e, 400, "messages", "invalid_value",
                            "messages[%zu] needs a role and text content.", i);
            rc = -1;
        }
    }
    sm_err err = {0};
    if (rc == 0 && sm_chat_encode(serve_engine_tokenizer(serve_http_engine(h)), msgs, k, true, ids,
                                  n, &err) != SM_OK) {
        serve_error_set(e, 400, "messages", "invalid_value", "%s", err.msg);
        rc = -1;
    }
    for (size_t i = 0; owned && i < k; i++)
        free(owned[i]);
    free(owned);
    free(msgs);
    return rc;
}

/* The text of one token (decoded alone; a partial UTF-8 character becomes U+FFFD). */
static json_t *token_text(const sm_tokenizer *tok, int32_t id, json_t **bytes)
{
    char *t = NULL;
    size_t len = 0;
    sm_err err = {0};
    if (sm_tokenizer_decode(tok, &id, 1, &t, &len, &err) != SM_OK) {
        t = NULL;
        len = 0;
    }
    json_t *s = json_stringn(t ? t : "", len);
    if (bytes) {
        *bytes = json_array();
        for (size_t i = 0; i < len; i++)
            json_array_append_new(*bytes, json_integer((unsigned char)t[i]));
    }
    free(t);
    return s;
}

/* Legacy completions logprobs of toks[a, b): tokens, token_logprobs, top_logprobs,
 * text_offset. */
static json_t *completion_logprobs(const sm_tokenizer *tok, const serve_req *r, size_t a, size_t b)
{
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    for (size_t i = a; i < b; i++) {
        const serve_tok *t = &r->toks[i];
        json_array_append_new(tokens, token_text(tok, t->id, NULL));
        json_array_append_new(lps, json_real(t->logprob));
        json_array_append_new(offs, json_integer((json_int_t)t->text_offset));
        json_t *top = json_object();
        for (int k = 0; k < t->n_top; k++) {
            json_t *s = token_text(tok, t->top_id[k], NULL);
            json_object_set_new(top, json_string_value(s), json_real(t->top_lp[k]));
            json_decref(s);
        }
        json_array_append_new(tops, top);
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "tokens", tokens, "token_logprobs", lps,
                     "top_logprobs", tops, "text_offset", offs);
}

/* Chat logprobs of toks[a, b): {"content": [{token, logprob, bytes, top_logprobs}]}. */
static json_t *chat_logprobs(const sm_tokenizer *tok, const serve_req *r, size_t a, size_t b)
{
    json_t *content = json_array();
    for (size_t i = a; i < b; i++) {
        const serve_tok *t = &r->toks[i];
        json_t *bytes, *top = json_array();
        json_t *s = token_text(tok, t->id, &bytes);
        for (int k = 0; k < t->n_top; k++) {
            json_t *tb, *ts = token_text(tok, t->top_id[k], &tb);
            json_array_append_new(top, json_pack("{s:o, s:f, s:o}", "token", ts, "logprob",
                                                 (double)t->top_lp[k], "bytes", tb));
        }
        json_array_append_new(content,
                              json_pack("{s:o, s:f, s:o, s:o}", "token", s, "logprob",
                                        (double)t->logprob, "bytes", bytes, "top_logprobs", top));
    }
    return json_pack("{s:o, s:n}", "content", content, "refusal");
}

static json_t *logprobs_json(const api_call *c, size_t a, size_t b)
{
    if (c->req->logprobs < 0)
        return json_null();
    const sm_tokenizer *tok = serve_engine_tokenizer(c->e);
    return c->chat ? chat_logprobs(tok, c->req, a, b) : completion_logprobs(tok, c->req, a, b);
}

static const char *finish_name(serve_finish f)
{
    return f == SERVE_FINISH_LENGTH ? "length" : "stop";
}

static json_t *usage_json(const serve_req *r)
{
    return json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)r->n_prompt,
                     "completion_tokens", (json_int_t)r->n_gen, "total_tokens",
                     (json_int_t)(r->n_prompt + r->n_gen));
}

/* Why a finished request stopped (vLLM's stop_reason): the stop string that matched, the
 * end-of-sequence token's id, or null (the length limit). */
static json_t *stop_reason_json(const serve_req *r)
{
    if (r->finish == SERVE_FINISH_STOP && r->stop_index >= 0)
        return json_string(r->stops[r->stop_index]);
    if (r->finish == SERVE_FINISH_STOP && r->eos_id >= 0)
        return json_integer(r->eos_id);
    return json_null();
}

/* The fields every response and chunk has. */
static json_t *base_json(const api_call *c, const char *object)
{
    const serve_http_opts *o = serve_http_options(c->h);
    return json_pack("{s:s, s:s, s:I, s:s, s:s}", "id", c->id, "object", object, "created",
                     (json_int_t)c->created, "model", o->model_name, "system_fingerprint",
                     o->fingerprint);
}

/* A choice carrying text[a, b) and toks[ta, tb); finish NULL while streaming. */
static json_t *choice_json(const api_call *c, size_t a, size_t b, size_t ta, size_t tb,
                           const char *finish, bool delta)
{
    const serve_req *r = c->req;
    json_t *text = json_stringn(r->text + a, b - a);
    json_t *ch = json_pack("{s:i, s:o, s:s?}", "index", 0, "logprobs", logprobs_json(c, ta, tb),
                           "finish_reason", finish);
    if (finish)
        json_object_set_new(ch, "stop_reason", stop_reason_json(r));
    if (!c->chat)
        json_object_set_new(ch, "text", text ? text : json_string(""));
    else if (delta)
        json_object_set_new(ch, "delta",
                            b > a && text ? json_pack("{s:o}", "content", text) : json_object());
    else
        json_object_set_new(ch, "message",
                            json_pack("{s:s, s:o, s:n}", "role", "assistant", "content",
                                      text ? text : json_string(""), "refusal"));
    if (c->chat && delta && b == a)
        json_decref(text);
    return ch;
}

static json_t *full_response(const api_call *c)
{
    const serve_req *r = c->req;
    json_t *out = base_json(c, c->chat ? "chat.completion" : "text_completion");
    json_object_set_new(out, "choices",
                        json_pack("[o]", choice_json(c, 0, r->text_len, 0, r->n_toks,
                                                     finish_name(r->finish), false)));
    json_object_set_new(out, "usage", usage_json(r));
    return out;
}

static void call_free(api_call *c)
{
    if (!c)
        return;
    if (c->req) {
        serve_engine_lock(c->e);
        if (!c->req->done)
            serve_engine_cancel(c->e, c->req);
        serve_engine_unlock(c->e);
        serve_req_release(c->e, c->req);
        serve_engine_observe(c->e, serve_now() - c->t0);
    }
    free(c->pend);
    free(c);
}

/* Appends "data: JSON\n\n" (body stolen) to the pending stream bytes. */
static int sse_append(api_call *c, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!s)
        return -1;
    size_t n = strlen(s);
    char *p = realloc(c->pend, c->pend_len + n + 9);
    if (!p) {
        free(s);
        return -1;
    }
    c->pend = p;
    c->pend_len += (size_t)sprintf(c->pend + c->pend_len, "data: %s\n\n", s);
    free(s);
    return 0;
}

static json_t *chunk(const api_call *c, json_t *choice)
{
    json_t *j = base_json(c, c->chat ? "chat.completion.chunk" : "text_completion");
    json_object_set_new(j, "choices", choice ? json_pack("[o]", choice) : json_array());
    if (c->include_usage)
        json_object_set_new(j, "usage", json_null());
    return j;
}

/* The stream's next events (lock held): new text, or the end. Returns -1 when out of memory. */
static int stream_next(api_call *c)
{
    serve_req *r = c->req;
    int bad = 0;
    if (c->chat && !c->sent_role) {
        json_t *ch = json_pack("{s:i, s:{s:s, s:s}, s:n, s:n}", "index", 0, "delta", "role",
                               "assistant", "content", "", "logprobs", "finish_reason");
        c->sent_role = true;
        return sse_append(c, chunk(c, ch));
    }
    if (r->done && r->finish == SERVE_FINISH_ERROR) {
        serve_error e;
        serve_error_set(&e, 500, NULL, "generation_failed", "%s", r->error);
        c->ended = true;
        return sse_append(c, serve_error_json(&e));
    }
    size_t tb = r->n_toks;
    if (!r->done)
        while (tb > c->sent_toks && r->toks[tb - 1].text_offset >= r->safe_len)
            tb--;
    if (r->safe_len > c->sent_text || tb > c->sent_toks)
        bad |= sse_append(
            c, chunk(c, choice_json(c, c->sent_text, r->safe_len, c->sent_toks, tb, NULL, true)));
    c->sent_text = r->safe_len;
    c->sent_toks = tb;
    if (r->done) {
        json_t *fin = c->chat ? json_pack("{s:i, s:{}, s:n, s:s}", "index", 0, "delta", "logprobs",
                                          "finish_reason", finish_name(r->finish))
                              : json_pack("{s:i, s:s, s:n, s:s}", "index", 0, "text", "",
                                          "logprobs", "finish_reason", finish_name(r->finish));
        if (fin)
            json_object_set_new(fin, "stop_reason", stop_reason_json(r));
        bad |= sse_append(c, chunk(c, fin));
        if (c->include_usage) {
            json_t *u = chunk(c, NULL);
            json_object_set_new(u, "usage", usage_json(r));
            bad |= sse_append(c, u);
        }
        c->ended = true;
    }
    return bad;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    api_call *c = cls;
    if (c->pend_off == c->pend_len) {
        if (c->ended)
            return MHD_CONTENT_READER_END_OF_STREAM;
        c->pend_off = c->pend_len = 0;
        serve_engine_lock(c->e);
        bool here = true;
        while (here && !c->req->done && c->req->safe_len == c->sent_text &&
               (!c->chat || c->sent_role))
            here = wait_progress(c);
        int bad = here ? stream_next(c) : -1;
        serve_engine_unlock(c->e);
        if (bad)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (c->ended) {
            char *p = realloc(c->pend, c->pend_len + 15);
            if (!p)
                return MHD_CONTENT_READER_END_WITH_ERROR;
            c->pend = p;
            memcpy(c->pend + c->pend_len, "data: [DONE]\n\n", 14);
            c->pend_len += 14;
        }
    }
    size_t n = c->pend_len - c->pend_off < max ? c->pend_len - c->pend_off : max;
    memcpy(buf, c->pend + c->pend_off, n);
    c->pend_off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    call_free(cls);
}

static enum MHD_Result respond(api_call *c, struct MHD_Connection *conn)
{
    int ep = c->chat ? SERVE_EP_CHAT : SERVE_EP_COMPLETIONS;
    if (c->stream) {
        struct MHD_Response *resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, c, stream_free);
        if (!resp) {
            call_free(c);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        serve_http_count(c->h, ep, 200);
        enum MHD_Result ok = MHD_queue_response(conn, 200, resp);
        MHD_destroy_response(resp);
        return ok;
    }
    serve_engine_lock(c->e);
    bool here = true;
    while (here && !c->req->done)
        here = wait_progress(c);
    serve_engine_unlock(c->e);
    enum MHD_Result ok;
    if (!here) {
        ok = MHD_NO; /* the client is gone: close the connection */
    } else if (c->req->finish == SERVE_FINISH_ERROR) {
        serve_error e;
        serve_error_set(&e, 500, NULL, "generation_failed", "%s", c->req->error);
        ok = serve_send_error(c->h, conn, ep, &e);
    } else {
        ok = serve_send_json(c->h, conn, ep, 200, full_response(c));
    }
    call_free(c);
    return ok;
}

/* Builds the serve_req of a parsed body; 0, or -1 with e set. */
static int make_request(serve_http *h, json_t *b, bool chat, serve_req **out, bool *stream,
                        bool *usage, serve_error *e)
{
    api_params p;
    int32_t *ids = NULL;
    size_t n = 0;
    if (parse_params(h, b, chat, &p, e) ||
        (chat ? chat_prompt(h, b, &ids, &n, e) : completion_prompt(h, b, &ids, &n, e)))
        return -1;
    int64_t ctx = serve_engine_opts(serve_http_engine(h))->ctx;
    if (p.max_tokens < 0)
        p.max_tokens = chat ? ctx - (int64_t)n : 16;
    if (n == 0 || (int64_t)n + p.max_tokens > ctx || p.max_tokens < 1) {
        serve_error_set(e, 400, "messages", "context_length_exceeded",
                        "This model's maximum context length is %lld tokens. However, you "
                        "requested %lld tokens (%zu in the prompt, %lld for the completion).",
                        (long long)ctx, (long long)n + (p.max_tokens > 0 ? p.max_tokens : 0), n,
                        (long long)(p.max_tokens > 0 ? p.max_tokens : 0));
        snprintf(e->param, sizeof e->param, "%s", chat ? "messages" : "prompt");
        free(ids);
        return -1;
    }
    serve_req *r = serve_req_new(ids, n, p.max_tokens);
    free(ids);
    int bad = !r;
    for (size_t i = 0; r && i < p.n_stops; i++)
        if (!(r->stops[r->n_stops++] = strdup(p.stops[i])))
            bad = 1;
    if (bad) {
        serve_req_release(serve_http_engine(h), r);
        serve_error_set(e, 500, NULL, NULL, "out of memory");
        return -1;
    }
    r->sampling = p.sp;
    r->logprobs = p.logprobs;
    r->deterministic = p.deterministic;
    r->ignore_eos = p.ignore_eos;
    *stream = p.stream;
    *usage = p.include_usage;
    *out = r;
    return 0;
}

enum MHD_Result serve_api_generate(serve_http *h, struct MHD_Connection *conn, bool chat,
                                   const char *body, size_t len, double t0)
{
    int ep = chat ? SERVE_EP_CHAT : SERVE_EP_COMPLETIONS;
    serve_error e;
    json_error_t jerr;
    json_t *b = json_loadb(body, len, 0, &jerr);
    if (!json_is_object(b)) {
        json_decref(b);
        serve_error_set(&e, 400, NULL, "invalid_json",
                        "We could not parse the JSON body of your request (%s).",
                        b ? "not an object" : jerr.text);
        return serve_send_error(h, conn, ep, &e);
    }
    api_call *c = calloc(1, sizeof *c);
    if (!c || make_request(h, b, chat, &c->req, &c->stream, &c->include_usage, &e)) {
        json_decref(b);
        if (!c)
            serve_error_set(&e, 500, NULL, NULL, "out of memory");
        free(c);
        return serve_send_error(h, conn, ep, &e);
    }
    json_decref(b);
    c->h = h;
    c->conn = conn;
    c->e = serve_http_engine(h);
    c->chat = chat;
    c->t0 = t0;
    c->created = (int64_t)time(NULL);
    snprintf(c->id, sizeof c->id, "%s-%016llx%08llx", chat ? "chatcmpl" : "cmpl",
             (unsigned long long)random_u64(), (unsigned long long)(random_u64() >> 32));
    sm_err err = {0};
    sm_code rc = serve_engine_submit(c->e, c->req, &err);
    if (rc) {
        serve_error_set(&e,
                        rc == SM_ELIMIT   ? 429
                        : rc == SM_ESTATE ? 503
                                          : 400,
                        NULL,
                        rc == SM_ELIMIT   ? "rate_limit_exceeded"
                        : rc == SM_ESTATE ? "unavailable"
                                          : "invalid_value",
                        "%s", err.msg);
        serve_req_release(c->e, c->req);
        c->req = NULL;
        call_free(c);
        return serve_send_error(h, conn, ep, &e);
    }
    return respond(c, conn);
}
