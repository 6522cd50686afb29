/* sm_gen_http: the remote backend's HTTP thread: libcurl's multi interface sends the queued
 * requests, at most max_concurrency at once; 429, 5xx and connection errors (timeouts
 * included) are retried after a doubling backoff (or the server's Retry-After) up to
 * worker.remote.retries times; answers go back to the engine thread (sm_gen_remote.c). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sm_gen_remote.h"
#include "sm_log.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sm_remote_wake(sm_remote *R)
{
    if (R->multi)
        curl_multi_wakeup(R->multi);
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    sm_rreq *q = arg;
    size_t len = size * n;
    if (q->resp_len + len + 1 > q->resp_cap) {
        size_t cap = q->resp_cap ? q->resp_cap : 4096;
        while (cap < q->resp_len + len + 1)
            cap *= 2;
        if (cap > (size_t)64 << 20)
            return 0; /* an answer over 64 MiB: abort the transfer */
        char *r = realloc(q->resp, cap);
        if (!r)
            return 0;
        q->resp = r;
        q->resp_cap = cap;
    }
    memcpy(q->resp + q->resp_len, p, len);
    q->resp_len += len;
    q->resp[q->resp_len] = '\0';
    return len;
}

static bool start(sm_remote *R, sm_rreq *q)
{
    q->resp_len = 0;
    q->status = 0;
    q->easy = curl_easy_init();
    if (!q->easy)
        return false;
    q->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (R->auth[0])
        q->hdrs = curl_slist_append(q->hdrs, R->auth);
    CURL *e = q->easy;
    curl_easy_setopt(e, CURLOPT_URL, R->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, q->hdrs);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, q->body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(e, CURLOPT_PRIVATE, q);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, R->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, R->timeout_ms < 10000 ? R->timeout_ms : 10000);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    return curl_multi_add_handle(R->multi, e) == CURLM_OK;
}

static void finish_transfer(sm_remote *R, sm_rreq *q)
{
    if (q->easy) {
        curl_multi_remove_handle(R->multi, q->easy);
        curl_easy_cleanup(q->easy);
        q->easy = NULL;
    }
    curl_slist_free_all(q->hdrs);
    q->hdrs = NULL;
}

static void unlink_req(sm_remote *R, sm_rreq *q)
{
    for (sm_rreq **pp = &R->reqs; *pp; pp = &(*pp)->next)
        if (*pp == q) {
            *pp = q->next;
            return;
        }
}

/* Under mu: cancelled transfers ended, then queued requests started up to the limit. Returns
 * the milliseconds until the next backoff ends (or 100). */
static long schedule(sm_remote *R)
{
    int64_t now = now_ms();
    long wait = 100;
    for (sm_rreq **pp = &R->reqs; *pp;) {
        sm_rreq *q = *pp;
        if (q->cancelled && q->state == SM_R_FLIGHT) {
            *pp = q->next;
            finish_transfer(R, q);
            R->inflight--;
            sm_rreq_free(q);
            continue;
        }
        if (q->state == SM_R_WAITING && R->inflight < R->max_conc) {
            if (q->not_before_ms > now) {
                if (q->not_before_ms - now < wait)
                    wait = (long)(q->not_before_ms - now);
            } else if (start(R, q)) {
                q->state = SM_R_FLIGHT;
                R->inflight++;
                R->requests++;
            } else {
                finish_transfer(R, q);
                snprintf(q->error, sizeof q->error, "cannot start an HTTP transfer");
                q->state = SM_R_DONE;
                pthread_cond_broadcast(&R->cv);
            }
        }
        pp = &q->next;
    }
    return wait;
}

/* Why a finished transfer should be tried again ("" when it should not). */
static void retry_reason(const sm_rreq *q, CURLcode cc, char *why, size_t n)
{
    why[0] = '\0';
    if (cc != CURLE_OK)
        snprintf(why, n, "%s", curl_easy_strerror(cc));
    else if (q->status == 429 || q->status >= 500)
        snprintf(why, n, "HTTP %ld", q->status);
}

/* Under mu: one transfer ended with cc. */
static void ended(sm_remote *R, sm_rreq *q, CURLcode cc)
{
    curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &q->status);
    curl_off_t after = 0;
    curl_easy_getinfo(q->easy, CURLINFO_RETRY_AFTER, &after);
    finish_transfer(R, q);
    R->inflight--;
    if (q->cancelled) {
        unlink_req(R, q);
        sm_rreq_free(q);
        return;
    }
    char why[200];
    retry_reason(q, cc, why, sizeof why);
    if (why[0] && q->attempt < R->retries) {
        int64_t backoff = 500LL << (q->attempt < 6 ? q->attempt : 6); /* 0.5 s .. 32 s */
        if (after > 0 && after * 1000 > backoff)
            backoff = after * 1000 < 60000 ? after * 1000 : 60000;
        q->attempt++;
        q->state = SM_R_WAITING;
        q->not_before_ms = now_ms() + backoff;
        R->retried++;
        sm_logf(SM_LOG_WARN, "remote generation: %s; retry %d of %d in %lld ms", why, q->attempt,
                R->retries, (long long)backoff);
        return;
    }
    if (why[0])
        snprintf(q->error, sizeof q->error, "%s from %s after %d attempts", why, R->url,
                 q->attempt + 1);
    q->state = SM_R_DONE;
    pthread_cond_broadcast(&R->cv);
}

void *sm_remote_http_main(void *arg)
{
    sm_remote *R = arg;
    for (;;) {
        pthread_mutex_lock(&R->mu);
        if (R->quit) {
            pthread_mutex_unlock(&R->mu);
            break;
        }
        long wait = schedule(R);
        pthread_mutex_unlock(&R->mu);
        int running = 0;
        curl_multi_perform(R->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(R->multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            sm_rreq *q = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&q);
            CURLcode cc = m->data.result;
            pthread_mutex_lock(&R->mu);
            ended(R, q, cc);
            pthread_mutex_unlock(&R->mu);
        }
        curl_multi_poll(R->multi, NULL, 0, (int)wait, NULL);
    }
    /* the engine thread has stopped: end every transfer */
    pthread_mutex_lock(&R->mu);
    for (sm_rreq *q = R->reqs; q; q = q->next)
        if (q->state == SM_R_FLIGHT)
            finish_transfer(R, q);
    pthread_mutex_unlock(&R->mu);
    return NULL;
}
