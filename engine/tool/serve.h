/* serve: the internals of `stepmark-engine serve`, an OpenAI-compatible HTTP server over the
 * CPU engine. serve_engine.c owns the model and one generation thread that batches every
 * running request into each forward step (continuous batching: requests join and leave between
 * steps); serve_http.c speaks HTTP (libmicrohttpd, one thread per connection) and JSON, turns
 * requests into serve_req and waits for or streams their results; cmd_serve.c parses the
 * command line and starts both. One mutex (the engine's) guards every serve_req's results. */
#ifndef SM_SERVE_H
#define SM_SERVE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"
#include "sm_model.h"
#include "sm_sampler.h"
#include "sm_sha256.h"
#include "sm_tokenizer.h"

#define SERVE_MAX_STOPS 16
#define SERVE_MAX_TOP_LOGPROBS 20

typedef enum serve_finish {
    SERVE_FINISH_NONE = 0,
    SERVE_FINISH_STOP,   /* an end-of-sequence token or a stop string ("stop") */
    SERVE_FINISH_LENGTH, /* max_tokens or the context limit ("length") */
    SERVE_FINISH_ERROR   /* the engine failed or is shutting down */
} serve_finish;

/* One generated token's log-probabilities (log-softmax of the raw logits). */
typedef struct serve_tok {
    int32_t id;
    float logprob;
    size_t text_offset; /* byte offset of its text in the completion */
    int n_top;
    int32_t top_id[SERVE_MAX_TOP_LOGPROBS];
    float top_lp[SERVE_MAX_TOP_LOGPROBS];
} serve_tok;

/* A generation request. The fields up to `deterministic` are set by the HTTP side before
 * serve_engine_submit and never change after; the rest belong to the engine and are read
 * under the engine's lock. */
typedef struct serve_req {
    int32_t *ids; /* prompt, then generated ids (capacity n_prompt + max_tokens) */
    size_t n_prompt;
    int64_t max_tokens;
    sm_sampler_params sampling;
    char *stops[SERVE_MAX_STOPS];
    size_t n_stops;
    int logprobs; /* -1: none; else alternatives per token, 0..SERVE_MAX_TOP_LOGPROBS */
    bool deterministic;
    bool ignore_eos; /* generate max_tokens even past end-of-sequence tokens */
    /* results */
    size_t n_gen; /* tokens sampled (completion_tokens) */
    char *text;   /* completion text so far (stop strings cut off) */
    size_t text_len, text_cap;
    size_t safe_len; /* bytes of text that can no longer change (streaming sends these) */
    serve_tok *toks; /* one per generated token, EOS excluded */
    size_t n_toks;
    serve_finish finish;
    /* why a "stop" finish stopped, reported as stop_reason (as vLLM does): the stop string
     * that matched (stop_index into stops), else the end-of-sequence token eos_id */
    int stop_index; /* -1: no stop string matched */
    int32_t eos_id; /* -1: no end-of-sequence token */
    bool done, cancelled;
    char error[256];
    double t_submit, t_first; /* seconds (CLOCK_MONOTONIC) */
    int refs;
} serve_req;

/* Server limits and identity, from the command line. */
typedef struct serve_opts {
    int slots;          /* sequences decoded together */
    int queue;          /* requests waiting for a slot before 429 */
    int64_t ctx;        /* positions per sequence */
    int64_t chunk;      /* prompt ids one sequence feeds per step */
    bool deterministic; /* the default of the request option */
} serve_opts;

typedef struct serve_engine serve_engine;

/* Metrics, copied under the lock. */
#define SERVE_LAT_BUCKETS 12
extern const double serve_lat_bounds[SERVE_LAT_BUCKETS];
typedef struct serve_stats {
    uint64_t prompt_tokens, generated_tokens, steps, batched_steps, step_seqs;
    int queued, active, active_max;
    uint64_t lat_buckets[SERVE_LAT_BUCKETS + 1], lat_count;
    double lat_sum;
} serve_stats;

/* Takes ownership of model and tok; starts the generation thread. */
sm_code serve_engine_new(sm_model *model, sm_tokenizer *tok, const serve_opts *opts,
                         serve_engine **out, sm_err *err);
/* Stops the generation thread; every pending request ends with SERVE_FINISH_ERROR and new ones
 * are refused. */
void serve_engine_shutdown(serve_engine *e);
/* Shuts down if needed, then frees the model and tokenizer. */
void serve_engine_free(serve_engine **e);

const sm_tokenizer *serve_engine_tokenizer(const serve_engine *e);
const serve_opts *serve_engine_opts(const serve_engine *e);

/* A new request with room for n_prompt + max_tokens ids (copied from prompt); refs = 1. */
serve_req *serve_req_new(const int32_t *prompt, size_t n_prompt, int64_t max_tokens);
/* Drops one reference (under no lock); frees the request at zero. */
void serve_req_release(serve_engine *e, serve_req *r);

/* Queues r (the engine takes a reference). SM_ELIMIT when the queue is full, SM_ESTATE when the
 * engine is stopping, SM_EINVAL for ids outside the vocabulary or a prompt that does not fit. */
sm_code serve_engine_submit(serve_engine *e, serve_req *r, sm_err *err);

/* The engine's lock and the condition broadcast after every step and at shutdown. */
void serve_engine_lock(serve_engine *e);
void serve_engine_unlock(serve_engine *e);
/* Waits (lock held) for the next broadcast or at most seconds; false on time-out. */
bool serve_engine_wait(serve_engine *e, double seconds);
/* Marks r cancelled (under the lock): the engine drops it at the next step. */
void serve_engine_cancel(serve_engine *e, serve_req *r);

/* Whether the engine is shutting down (lock held). */
bool serve_engine_stopping(const serve_engine *e);

/* Records a finished HTTP request's latency. */
void serve_engine_observe(serve_engine *e, double seconds);
void serve_engine_stats(serve_engine *e, serve_stats *st);

double serve_now(void);

/* The HTTP side. */
typedef struct serve_http_opts {
    const char *address; /* numeric IPv4 or IPv6 address */
    int port;            /* 0: any free port */
    const char *api_key; /* NULL: no authentication */
    const char *model_name;
    const char *fingerprint; /* system_fingerprint */
    const char *model_sha256;
    size_t max_body; /* bytes of a request body */
    int max_conns;
} serve_http_opts;

typedef struct serve_http serve_http;

/* Starts listening; *port is the bound port. */
sm_code serve_http_start(serve_engine *e, const serve_http_opts *o, serve_http **out, int *port,
                         sm_err *err);
/* Stops accepting, waits for every connection thread, frees h. Call before the engine is freed
 * only after serve_engine_shutdown, so that waiting requests end. */
void serve_http_stop(serve_http **h);

#endif
