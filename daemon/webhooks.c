/* webhooks: the delivery thread of stepmarkd (see webhooks.h). Each turn it asks which webhooks
 * are due and have an event waiting, takes each one's advisory lock (skipping webhooks another
 * broker is serving), and delivers that webhook's events in (xid, id) order until one fails or a
 * batch is done. A 2xx moves the webhook's cursor past the event; anything else (an error
 * status, no answer within timeout_ms, a refused connection) keeps the cursor, counts a failure
 * and schedules the retry after a jittered exponential backoff. Every attempt is logged in
 * webhook_delivery. */
#include "webhooks.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "sm_db.h"
#include "sm_log.h"
#include "sm_webhook.h"

#define LOCK_CLASS 1936226152 /* the advisory lock space of webhooks (two-int form) */
#define DUE_MAX 100           /* webhooks served per turn */
#define BATCH_MAX 100         /* events delivered to one webhook before the others get a turn */
#define BACKLOG_EVERY_MS 2000
#define PRUNE_EVERY_MS 3600000
#define RESPONSE_KEEP 200 /* bytes of an error response kept in the log */
#define STR_(x) #x
#define STR(x) STR_(x)
/* The advisory lock of webhook $1 (two-int form, apart from the one-bigint locks elsewhere). */
#define HOOK_LOCK "(" STR(LOCK_CLASS) ", ($1::bigint % 2147483648)::int)"

struct sm_webhooks {
    int64_t timeout_ms, first_backoff_ms, max_backoff_ms, poll_ms, log_days;
    char *db_url;
    char broker[64]; /* host:pid, written in the delivery log */
    sm_metrics *metrics;
    PGconn *db;
    CURL *curl;
    unsigned rng;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stop;
    int64_t next_backlog_ms, next_prune_ms, next_connect_ms;
};

/* One event to deliver, and what its attempt gave. */
typedef struct delivery {
    int64_t hook_id;
    char url[SM_WEBHOOK_URL_MAX + 1];
    char secret[256];
    int attempt;   /* 1 for the first */
    char xid[24];  /* event_outbox.xid */
    char eid[24];  /* event_outbox.id */
    char kind[64]; /* event_outbox.kind */
    char id[64];   /* Stepmark-Delivery */
    char *body;    /* malloc'd */
    long status;   /* HTTP status, 0 when none */
    char error[SM_ERR_MSG_MAX];
    int64_t duration_ms;
    char response[RESPONSE_KEEP + 1];
    size_t response_len;
} delivery;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* After a failed statement: drops a broken connection so that the next turn reconnects. */
static void db_failed(sm_webhooks *w, const sm_err *err)
{
    sm_log(SM_LOG_WARN, "webhooks: database statement failed", "error", err->msg, NULL);
    if (w->db && PQstatus(w->db) != CONNECTION_OK) {
        PQfinish(w->db);
        w->db = NULL;
    }
}

static size_t on_response(char *data, size_t size, size_t n, void *arg)
{
    delivery *d = arg;
    size_t len = size * n;
    size_t room = RESPONSE_KEEP - d->response_len;
    size_t take = len < room ? len : room;
    memcpy(d->response + d->response_len, data, take);
    d->response_len += take;
    d->response[d->response_len] = 0;
    return len;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t e)
{
    (void)a, (void)b, (void)c, (void)e;
    sm_webhooks *w = arg;
    return atomic_load(&w->stop) ? 1 : 0; /* non-zero aborts the transfer */
}

/* The headers of d's request; NULL when out of memory. */
static struct curl_slist *request_headers(const delivery *d, sm_err *err)
{
    char sig[SM_WEBHOOK_SIG_MAX];
    if (sm_webhook_sign(d->secret, (int64_t)time(NULL), d->body, strlen(d->body), sig, err))
        return NULL;
    char line[4][SM_WEBHOOK_SIG_MAX + 64];
    snprintf(line[0], sizeof line[0], "Stepmark-Event: %s", d->kind);
    snprintf(line[1], sizeof line[1], "Stepmark-Delivery: %s", d->id);
    snprintf(line[2], sizeof line[2], "Stepmark-Signature: %s", sig);
    snprintf(line[3], sizeof line[3], "Stepmark-Attempt: %d", d->attempt);
    const char *all[] = {
        "Content-Type: application/json", "Expect:", line[0], line[1], line[2], line[3]};
    struct curl_slist *h = NULL;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        struct curl_slist *n = curl_slist_append(h, all[i]);
        if (!n) {
            curl_slist_free_all(h);
            sm_err_set(err, SM_ENOMEM, "out of memory building request headers");
            return NULL;
        }
        h = n;
    }
    return h;
}

/* Replaces what is not printable ASCII in s, so that any response can go into a text column. */
static void printable(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < ' ' || (unsigned char)*s > '~')
            *s = ' ';
}

/* POSTs d once and fills status, error and duration. Whether the receiver acknowledged it. */
static bool post(sm_webhooks *w, delivery *d)
{
    sm_err err;
    if (sm_webhook_check_url(d->url, &err) != SM_OK) {
        snprintf(d->error, sizeof d->error, "%s", err.msg);
        return false;
    }
    struct curl_slist *h = request_headers(d, &err);
    if (!h) {
        snprintf(d->error, sizeof d->error, "%s", err.msg);
        return false;
    }
    CURL *c = w->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, d->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)w->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)w->timeout_ms);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "stepmark-webhooks/1");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, d->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(d->body));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_response);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, w);
    int64_t t0 = mono_ms();
    CURLcode cc = curl_easy_perform(c);
    d->duration_ms = mono_ms() - t0;
    curl_slist_free_all(h);
    if (cc != CURLE_OK) {
        snprintf(d->error, sizeof d->error, "%s",
                 cc == CURLE_ABORTED_BY_CALLBACK ? "abandoned: stepmarkd is stopping"
                                                 : curl_easy_strerror(cc));
        return false;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &d->status);
    if (d->status >= 200 && d->status < 300)
        return true;
    printable(d->response);
    snprintf(d->error, sizeof d->error, "HTTP %ld%s%s", d->status, d->response_len ? ": " : "",
             d->response);
    return false;
}

/* Logs d's attempt and moves the cursor (ok) or schedules the retry, in one statement. */
static sm_code record(sm_webhooks *w, const delivery *d, bool ok, sm_err *err)
{
    static const char sql[] =
        "WITH log AS (INSERT INTO webhook_delivery (webhook_id, event_id, event, delivery, "
        "attempt, status_code, error, duration_ms, broker) "
        "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE EXISTS (SELECT 1 FROM webhook "
        "WHERE id = $1)) "
        "UPDATE webhook_cursor SET "
        "cursor_xid = CASE WHEN $10::boolean THEN $11::xid8 ELSE cursor_xid END, "
        "cursor_id = CASE WHEN $10::boolean THEN $2 ELSE cursor_id END, "
        "attempts = CASE WHEN $10::boolean THEN 0 ELSE attempts + 1 END, "
        "next_attempt_at = CASE WHEN $10::boolean THEN now() "
        "  ELSE clock_timestamp() + $12::bigint * interval '1 millisecond' END, "
        "last_error = CASE WHEN $10::boolean THEN NULL ELSE $7 END, "
        "delivered = delivered + CASE WHEN $10::boolean THEN 1 ELSE 0 END, "
        "last_success_at = CASE WHEN $10::boolean THEN now() ELSE last_success_at END "
        "WHERE webhook_id = $1";
    char hook[24], attempt[16], status[16], duration[24], wait[24];
    snprintf(hook, sizeof hook, "%" PRId64, d->hook_id);
    snprintf(attempt, sizeof attempt, "%d", d->attempt);
    snprintf(status, sizeof status, "%ld", d->status);
    snprintf(duration, sizeof duration, "%" PRId64, d->duration_ms);
    int64_t backoff = sm_webhook_backoff_ms(w->first_backoff_ms, w->max_backoff_ms, d->attempt,
                                            (uint32_t)rand_r(&w->rng));
    snprintf(wait, sizeof wait, "%" PRId64, backoff);
    const char *params[] = {hook,
                            d->eid,
                            d->kind,
                            d->id,
                            attempt,
                            d->status ? status : NULL,
                            ok ? NULL : d->error,
                            duration,
                            w->broker,
                            ok ? "true" : "false",
                            d->xid,
                            wait};
    PGresult *r;
    sm_code rc = sm_db_query(w->db, sql, 12, params, &r, err);
    if (rc == SM_OK)
        PQclear(r);
    sm_metrics_webhook_attempt(w->metrics, ok);
    if (!ok)
        sm_log(SM_LOG_WARN, "webhook delivery failed", "webhook", hook, "event", d->eid, "attempt",
               attempt, "error", d->error, NULL);
    return rc;
}

/* Reads webhook d->hook_id's URL, secret and next event into d. *found: whether it is due and
 * has an event waiting below the oldest running transaction. */
static sm_code next_event(sm_webhooks *w, delivery *d, bool *found, sm_err *err)
{
    static const char sql[] =
        "SELECT w.url, w.secret, k.attempts + 1, e.xid::text, e.id, e.kind, "
        "(jsonb_build_object('event_id', e.id) || e.payload)::text "
        "FROM webhook w JOIN webhook_cursor k ON k.webhook_id = w.id "
        "CROSS JOIN LATERAL (SELECT * FROM event_outbox o WHERE o.course_id = w.course_id "
        "  AND (o.xid, o.id) > (k.cursor_xid, k.cursor_id) "
        "  AND o.xid < pg_snapshot_xmin(pg_current_snapshot()) "
        "  ORDER BY o.xid, o.id LIMIT 1) e "
        "WHERE w.id = $1 AND k.next_attempt_at <= now()";
    char hook[24];
    snprintf(hook, sizeof hook, "%" PRId64, d->hook_id);
    const char *params[] = {hook};
    PGresult *r;
    sm_code rc = sm_db_query(w->db, sql, 1, params, &r, err);
    if (rc != SM_OK)
        return rc;
    *found = PQntuples(r) == 1;
    if (*found) {
        snprintf(d->url, sizeof d->url, "%s", PQgetvalue(r, 0, 0));
        snprintf(d->secret, sizeof d->secret, "%s", PQgetvalue(r, 0, 1));
        d->attempt = atoi(PQgetvalue(r, 0, 2));
        snprintf(d->xid, sizeof d->xid, "%s", PQgetvalue(r, 0, 3));
        snprintf(d->eid, sizeof d->eid, "%s", PQgetvalue(r, 0, 4));
        snprintf(d->kind, sizeof d->kind, "%s", PQgetvalue(r, 0, 5));
        snprintf(d->id, sizeof d->id, "%s-%s", hook, d->eid);
        d->body = strdup(PQgetvalue(r, 0, 6));
        if (!d->body)
            rc = sm_err_set(err, SM_ENOMEM, "out of memory reading an event");
    }
    PQclear(r);
    return rc;
}

/* Delivers webhook id's waiting events in order, until one fails, none is left or a batch is
 * done. The caller holds the webhook's advisory lock. */
static void deliver_hook(sm_webhooks *w, int64_t id)
{
    for (int n = 0; n < BATCH_MAX && !atomic_load(&w->stop); n++) {
        delivery *d = calloc(1, sizeof *d);
        if (!d)
            return;
        d->hook_id = id;
        bool found = false;
        sm_err err;
        sm_code rc = next_event(w, d, &found, &err);
        bool ok = false;
        if (rc == SM_OK && found) {
            ok = post(w, d);
            rc = record(w, d, ok, &err);
        }
        if (rc != SM_OK)
            db_failed(w, &err);
        free(d->body);
        free(d);
        if (rc != SM_OK || !found || !ok)
            return;
    }
}

/* Runs one statement with a webhook id parameter; whether its single value is "t". */
static bool hook_bool(sm_webhooks *w, const char *sql, int64_t id)
{
    char hook[24];
    snprintf(hook, sizeof hook, "%" PRId64, id);
    const char *params[] = {hook};
    PGresult *r;
    sm_err err;
    if (sm_db_query(w->db, sql, 1, params, &r, &err) != SM_OK) {
        db_failed(w, &err);
        return false;
    }
    bool t = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return t;
}

/* One turn: every due webhook with an event waiting that no other broker is serving. */
static void deliver_due(sm_webhooks *w)
{
    static const char due_sql[] =
        "SELECT w.id FROM webhook w JOIN webhook_cursor k ON k.webhook_id = w.id "
        "WHERE k.next_attempt_at <= now() AND EXISTS (SELECT 1 FROM event_outbox e "
        "  WHERE e.course_id = w.course_id AND (e.xid, e.id) > (k.cursor_xid, k.cursor_id) "
        "  AND e.xid < pg_snapshot_xmin(pg_current_snapshot())) "
        "ORDER BY k.next_attempt_at, w.id LIMIT " STR(DUE_MAX);
    PGresult *r;
    sm_err err;
    if (sm_db_query(w->db, due_sql, 0, NULL, &r, &err) != SM_OK) {
        db_failed(w, &err);
        return;
    }
    int n = PQntuples(r);
    int64_t ids[DUE_MAX];
    for (int i = 0; i < n && i < DUE_MAX; i++)
        ids[i] = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    PQclear(r);
    for (int i = 0; i < n && i < DUE_MAX && w->db && !atomic_load(&w->stop); i++) {
        if (!hook_bool(w, "SELECT pg_try_advisory_lock" HOOK_LOCK, ids[i]))
            continue;
        deliver_hook(w, ids[i]);
        if (w->db)
            hook_bool(w, "SELECT pg_advisory_unlock" HOOK_LOCK, ids[i]);
    }
}

/* Refreshes the backlog gauge and, once an hour, drops delivery log rows past log_days. */
static void housekeeping(sm_webhooks *w, int64_t now)
{
    sm_err err;
    PGresult *r;
    if (now >= w->next_backlog_ms) {
        w->next_backlog_ms = now + BACKLOG_EVERY_MS;
        static const char sql[] =
            "SELECT coalesce(sum((SELECT count(*) FROM event_outbox e "
            "  WHERE e.course_id = w.course_id AND (e.xid, e.id) > (k.cursor_xid, k.cursor_id))),"
            " 0) FROM webhook w JOIN webhook_cursor k ON k.webhook_id = w.id";
        if (sm_db_query(w->db, sql, 0, NULL, &r, &err) != SM_OK) {
            db_failed(w, &err);
            return;
        }
        sm_metrics_webhook_backlog_set(w->metrics, strtoll(PQgetvalue(r, 0, 0), NULL, 10));
        PQclear(r);
    }
    if (now >= w->next_prune_ms) {
        w->next_prune_ms = now + PRUNE_EVERY_MS;
        char days[24];
        snprintf(days, sizeof days, "%" PRId64, w->log_days);
        const char *params[] = {days};
        if (sm_db_query(
                w->db, "DELETE FROM webhook_delivery WHERE at < now() - $1::int * interval '1 day'",
                1, params, &r, &err) != SM_OK)
            db_failed(w, &err);
        else
            PQclear(r);
    }
}

/* Connects when there is no connection (at most every few seconds); whether there is one. */
static bool connected(sm_webhooks *w, int64_t now)
{
    if (w->db)
        return true;
    if (now < w->next_connect_ms)
        return false;
    sm_err err;
    if (sm_db_connect(w->db_url, &w->db, &err) != SM_OK) {
        w->db = NULL;
        w->next_connect_ms = now + 5000;
        sm_log(SM_LOG_WARN, "webhooks: cannot connect to the database; retrying", "error", err.msg,
               NULL);
        return false;
    }
    return true;
}

/* Waits poll_ms, or less when told to stop. */
static void pause_turn(sm_webhooks *w)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    int64_t ns = until.tv_nsec + (w->poll_ms % 1000) * 1000000;
    until.tv_sec += w->poll_ms / 1000 + ns / 1000000000;
    until.tv_nsec = ns % 1000000000;
    pthread_mutex_lock(&w->mu);
    while (!atomic_load(&w->stop) && pthread_cond_timedwait(&w->cv, &w->mu, &until) == 0) {
    }
    pthread_mutex_unlock(&w->mu);
}

static void *run(void *arg)
{
    sm_webhooks *w = arg;
    while (!atomic_load(&w->stop)) {
        int64_t now = mono_ms();
        if (connected(w, now)) {
            deliver_due(w);
            if (w->db)
                housekeeping(w, now);
        }
        pause_turn(w);
    }
    return NULL;
}

static void free_webhooks(sm_webhooks *w)
{
    if (w->db)
        PQfinish(w->db);
    if (w->curl)
        curl_easy_cleanup(w->curl);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->db_url);
    free(w);
}

sm_code sm_webhooks_start(const sm_config *cfg, const char *db_url, sm_metrics *metrics,
                          sm_webhooks **out, sm_err *err)
{
    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return sm_err_set(err, SM_EINTERNAL, "webhooks: libcurl initialisation failed");
    sm_webhooks *w = calloc(1, sizeof *w);
    if (!w)
        return sm_err_set(err, SM_ENOMEM, "out of memory starting webhooks");
    w->timeout_ms = cfg->webhooks.timeout_ms;
    w->first_backoff_ms = cfg->webhooks.first_backoff_ms;
    w->max_backoff_ms = cfg->webhooks.max_backoff_ms;
    w->poll_ms = cfg->webhooks.poll_ms;
    w->log_days = cfg->webhooks.log_days;
    w->metrics = metrics;
    w->rng = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
    char host[40] = "";
    gethostname(host, sizeof host - 1);
    snprintf(w->broker, sizeof w->broker, "%s:%d", host, (int)getpid());
    atomic_init(&w->stop, false);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&w->mu, NULL);
    w->db_url = strdup(db_url);
    w->curl = curl_easy_init();
    if (!w->db_url || !w->curl) {
        free_webhooks(w);
        return sm_err_set(err, SM_ENOMEM, "out of memory starting webhooks");
    }
    /* The thread blocks SIGTERM and SIGINT, so that they interrupt the broker's loop. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int prc = pthread_create(&w->thread, NULL, run, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (prc != 0) {
        free_webhooks(w);
        return sm_err_set(err, SM_EINTERNAL, "webhooks: cannot start the delivery thread");
    }
    *out = w;
    return SM_OK;
}

void sm_webhooks_stop(sm_webhooks **pw)
{
    if (!pw || !*pw)
        return;
    sm_webhooks *w = *pw;
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->stop, true);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    free_webhooks(w);
    curl_global_cleanup();
    *pw = NULL;
}
