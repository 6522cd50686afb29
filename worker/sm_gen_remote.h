/* sm_gen_remote: the parts of the remote backend shared by its two files: the request a task
 * phase becomes, and the HTTP thread (sm_gen_http.c) that sends requests to the server with
 * libcurl's multi interface, at most max_concurrency at once, retrying 429, 5xx and connection
 * errors with doubling backoff (a server's Retry-After is honoured). */
#ifndef SM_GEN_REMOTE_H
#define SM_GEN_REMOTE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "sm_gen.h"

typedef enum sm_rstate {
    SM_R_WAITING = 0, /* waiting to be sent (or re-sent after its backoff) */
    SM_R_FLIGHT,      /* its transfer is running */
    SM_R_DONE,        /* answered (or failed for good): for the engine thread */
} sm_rstate;

typedef struct sm_rreq {
    void *user;
    int tag;
    int32_t *ids; /* the whole prompt: the task's prompt, generated ids and continuations */
    size_t n_ids, cap;
    sm_sampler_params sp;
    int64_t max_new;
    char **stops;                        /* NULL-terminated */
    int64_t total_tokens, prompt_tokens; /* all finished phases */
    /* transfer (the HTTP thread's) */
    sm_rstate state;
    bool cancelled;
    char *body; /* the request JSON */
    CURL *easy;
    struct curl_slist *hdrs;
    char *resp;
    size_t resp_len, resp_cap;
    int attempt;
    int64_t not_before_ms;
    long status;
    char error[256]; /* why it failed for good ("" when answered) */
    struct sm_rreq *next;
} sm_rreq;

typedef struct sm_remote {
    char url[1024];  /* .../completions */
    char auth[1100]; /* "Authorization: Bearer KEY" or "" */
    char model[512];
    int max_conc;
    long timeout_ms;
    int retries;
    const sm_tokenizer *tok;
    sm_gen_done_fn done;
    CURLM *multi;
    pthread_t th;
    bool have_th;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* an answer arrived */
    sm_rreq *reqs;     /* every request, under mu */
    int inflight;
    bool quit;
    struct sm_rfail *failed;                                /* engine thread only */
    int64_t generated, prompt, requests, retried, failures; /* under mu */
} sm_remote;

/* The HTTP thread's body (arg: the sm_remote). */
void *sm_remote_http_main(void *arg);

/* Wakes the HTTP thread (new work or a cancel). */
void sm_remote_wake(sm_remote *R);

void sm_rreq_free(sm_rreq *q);

#endif
