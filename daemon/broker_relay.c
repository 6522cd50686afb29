/* broker_relay: publishes the `reviewed` and `released` events on the PUB socket. Reviews and
 * releases are written by the HTTP side (other threads, other connections); triggers put one
 * event_outbox row per event in the same transaction (schema 006). The broker polls the outbox
 * in (xid, id) order, reading only rows whose xid lies below the oldest running transaction
 * (pg_snapshot_xmin), so a transaction that commits late is never passed over. The position
 * lives in memory and starts at "now": PUB is best effort (LIST and webhooks are the reliable
 * routes). `submission.graded` rows are skipped: the broker publishes `result` itself when it
 * stores a grading, so relaying them would send each grading twice. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "broker_int.h"
#include "sm_db.h"
#include "sm_log.h"

#define RELAY_PAGE 500
#define RELAY_PAGES 8 /* pages published per poll at most; the rest wait for the next one */

void sm_broker_relay_start(sm_broker *b)
{
    PGresult *r;
    sm_err err;
    sm_code rc =
        sm_db_query(sm_store_conn(b->store), "SELECT pg_snapshot_xmin(pg_current_snapshot())::text",
                    0, NULL, &r, &err);
    if (rc) {
        sm_broker_db_failed(b, rc);
        sm_log(SM_LOG_WARN, "event relay cannot start yet", "error", err.msg, NULL);
        return;
    }
    b->relay_xid = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    b->relay_id = 0;
    b->relay_ready = true;
    PQclear(r);
}

/* The short event name of an outbox kind; NULL for kinds not relayed. */
static const char *event_name(const char *kind)
{
    if (!strcmp(kind, "submission.reviewed"))
        return "reviewed";
    if (!strcmp(kind, "grades.released"))
        return "released";
    return NULL;
}

static void publish_row(sm_broker *b, PGresult *r, int row)
{
    const char *name = event_name(PQgetvalue(r, row, 2));
    if (!name)
        return;
    json_t *ev = json_loads(PQgetvalue(r, row, 3), 0, NULL);
    if (!json_is_object(ev)) {
        sm_log(SM_LOG_WARN, "event_outbox row with bad JSON skipped", "id", PQgetvalue(r, row, 0),
               NULL);
        json_decref(ev);
        return;
    }
    json_object_set_new(ev, "event", json_string(name));
    json_object_set_new(ev, "kind", json_string(PQgetvalue(r, row, 2)));
    sm_broker_publish(b, ev);
    json_decref(ev);
}

/* Publishes one page after the position; returns the rows read (-1 on error). */
static int relay_page(sm_broker *b)
{
    char xid[24], id[24], lim[16];
    snprintf(xid, sizeof xid, "%" PRIu64, b->relay_xid);
    snprintf(id, sizeof id, "%" PRId64, b->relay_id);
    snprintf(lim, sizeof lim, "%d", RELAY_PAGE);
    const char *p[] = {xid, id, lim};
    PGresult *r;
    sm_err err;
    sm_code rc = sm_db_query(sm_store_conn(b->store),
                             "SELECT id, xid::text, kind, payload::text FROM event_outbox"
                             " WHERE xid < pg_snapshot_xmin(pg_current_snapshot())"
                             "   AND (xid, id) > ($1::xid8, $2::bigint)"
                             " ORDER BY xid, id LIMIT $3::int",
                             3, p, &r, &err);
    if (rc) {
        sm_broker_db_failed(b, rc);
        sm_log(SM_LOG_WARN, "event relay failed", "error", err.msg, NULL);
        return -1;
    }
    int n = PQntuples(r);
    for (int row = 0; row < n; row++) {
        publish_row(b, r, row);
        b->relay_xid = strtoull(PQgetvalue(r, row, 1), NULL, 10);
        b->relay_id = strtoll(PQgetvalue(r, row, 0), NULL, 10);
    }
    PQclear(r);
    return n;
}

void sm_broker_relay(sm_broker *b)
{
    if (!b->relay_ready) {
        sm_broker_relay_start(b);
        return;
    }
    for (int k = 0; k < RELAY_PAGES; k++)
        if (relay_page(b) < RELAY_PAGE)
            return;
}
