/* lti_roster: the roster import that follows an instructor's launch (docs/lti.md, Names and
 * roles). The launch only queues its LMS course (lti_roster_request, never waiting on the LMS);
 * one background thread of the HTTP side imports each queued roster with its own database
 * connection and libcurl handle (sm_lti_roster_sync_context), at most once per
 * LTI_ROSTER_MIN_SECONDS per LMS course. A failed import is logged ("lti roster sync failed")
 * and tried again on the next instructor launch; it never affects the launch. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lti_internal.h"
#include "sm_db.h"
#include "sm_log.h"
#include "sm_lti_ags.h"

#define ROSTER_QUEUE 64
#define ROSTER_TIMEOUT_MS 10000 /* each request to the LMS */

typedef struct roster_item {
    char platform[24];
    char context[256];
} roster_item;

struct lti_roster {
    char *db_url;
    PGconn *db;
    sm_lti_client client;
    volatile int abort_flag;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    int n;
    roster_item queue[ROSTER_QUEUE];
};

/* Whether the LMS course's roster is due: it has a roster URL and was not imported lately. */
static sm_code roster_due(PGconn *db, const roster_item *it, bool *due, sm_err *err)
{
    char secs[16];
    snprintf(secs, sizeof secs, "%d", LTI_ROSTER_MIN_SECONDS);
    const char *p[] = {it->platform, it->context, secs};
    PGresult *r;
    sm_code rc = sm_db_query(db,
                             "SELECT 1 FROM lti_context WHERE platform_id = $1::bigint AND "
                             "context_id = $2 AND nrps_url IS NOT NULL AND (roster_synced_at IS "
                             "NULL OR roster_synced_at < now() - make_interval(secs => $3::int))",
                             3, p, &r, err);
    if (rc != SM_OK)
        return rc;
    *due = PQntuples(r) == 1;
    PQclear(r);
    return SM_OK;
}

static void sync_one(lti_roster *r, const roster_item *it)
{
    sm_err err = {0};
    if (r->db && PQstatus(r->db) != CONNECTION_OK) {
        PQfinish(r->db);
        r->db = NULL;
    }
    bool due = false;
    sm_lti_roster_result res = {0};
    sm_code rc = r->db ? SM_OK : sm_db_connect(r->db_url, &r->db, &err);
    if (rc == SM_OK)
        rc = roster_due(r->db, it, &due, &err);
    if (rc == SM_OK && due)
        rc = sm_lti_roster_sync_context(&r->client, r->db, it->platform, it->context, &res, &err);
    if (rc != SM_OK) {
        sm_log(SM_LOG_WARN, "lti roster sync failed", "platform", it->platform, "context",
               it->context, "error", err.msg, NULL);
        return;
    }
    if (!due)
        return;
    char members[16], removed[16];
    snprintf(members, sizeof members, "%d", res.members);
    snprintf(removed, sizeof removed, "%d", res.removed);
    sm_log(SM_LOG_INFO, "lti roster synced", "platform", it->platform, "context", it->context,
           "members", members, "removed", removed, NULL);
}

static void *run(void *arg)
{
    lti_roster *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->stop && r->n == 0)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->stop)
            break;
        roster_item it = r->queue[0];
        r->n--;
        memmove(r->queue, r->queue + 1, (size_t)r->n * sizeof it);
        pthread_mutex_unlock(&r->mu);
        sync_one(r, &it);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

sm_code lti_roster_start(const char *db_url, lti_roster **out, sm_err *err)
{
    *out = NULL;
    lti_roster *r = calloc(1, sizeof *r);
    if (!r || !(r->db_url = strdup(db_url ? db_url : ""))) {
        free(r);
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    sm_code rc = sm_lti_client_init(&r->client, ROSTER_TIMEOUT_MS, err);
    if (rc != SM_OK) {
        free(r->db_url);
        free(r);
        return rc;
    }
    r->client.abort = &r->abort_flag;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (pthread_create(&r->thread, NULL, run, r) != 0) {
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        sm_lti_client_free(&r->client);
        free(r->db_url);
        free(r);
        return sm_err_set(err, SM_EINTERNAL, "cannot start the LTI roster thread");
    }
    *out = r;
    return SM_OK;
}

void lti_roster_stop(lti_roster **rp)
{
    lti_roster *r = rp ? *rp : NULL;
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    r->abort_flag = 1; /* ends a transfer in flight */
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    sm_lti_client_free(&r->client);
    if (r->db)
        PQfinish(r->db);
    free(r->db_url);
    free(r);
    *rp = NULL;
}

void lti_roster_request(lti_roster *r, const char *platform_id, const char *context_id)
{
    if (!r || !platform_id || !context_id || strlen(platform_id) >= sizeof r->queue[0].platform ||
        strlen(context_id) >= sizeof r->queue[0].context)
        return;
    pthread_mutex_lock(&r->mu);
    bool queued = false;
    for (int i = 0; i < r->n && !queued; i++)
        queued = strcmp(r->queue[i].platform, platform_id) == 0 &&
                 strcmp(r->queue[i].context, context_id) == 0;
    if (!queued && r->n < ROSTER_QUEUE) {
        snprintf(r->queue[r->n].platform, sizeof r->queue[r->n].platform, "%s", platform_id);
        snprintf(r->queue[r->n].context, sizeof r->queue[r->n].context, "%s", context_id);
        r->n++;
        pthread_cond_signal(&r->cv);
    } else if (!queued) {
        sm_log(SM_LOG_WARN, "lti roster sync skipped", "platform", platform_id, "context",
               context_id, "error", "too many rosters waiting", NULL);
    }
    pthread_mutex_unlock(&r->mu);
}
