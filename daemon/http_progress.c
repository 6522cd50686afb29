/* http_progress: live progress for overnight runs (queue depth, done/total per assignment of
 * the teacher's courses, tokens/s, gradings/min and an ETA) and the Prometheus /metrics page
 * (the broker's counters from sm_metrics plus queue depth by state and priority from the
 * database). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "http_store.h"
#include "sm_log.h"

void http_api_progress(http_req *rq, http_resp *rs)
{
    PGconn *db = http_db(rq, rs);
    if (!db)
        return;
    sm_err err = {0};
    PGresult *r;
    if (http_store_queue_summary(db, &r, &err) != SM_OK) {
        http_db_failed(rs, &err);
        return;
    }
    json_t *queue = http_row_json(r, 0);
    json_object_del(queue, "avg_completion_tokens");
    sm_metrics_snapshot snap;
    sm_metrics_snapshot_get(rq->http->metrics, &snap);
    /* Gradings per second: measured over the last 10 minutes; at the start of a run, derived
     * from the broker's tokens/s and the recent mean length of a grading instead. */
    double per_sec = (double)strtoll(PQgetvalue(r, 0, 4), NULL, 10) / 600.0;
    double avg_tokens = PQgetisnull(r, 0, 5) ? 0.0 : strtod(PQgetvalue(r, 0, 5), NULL);
    const char *basis = "recent gradings";
    if (per_sec <= 0 && snap.tokens_per_second > 0 && avg_tokens > 0) {
        per_sec = snap.tokens_per_second / avg_tokens;
        basis = "tokens per second";
    } else if (per_sec <= 0) {
        basis = NULL;
    }
    long long pending_all =
        strtoll(PQgetvalue(r, 0, 0), NULL, 10) + strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    const char *p[] = {rq->teacher_id_s};
    if (http_store_progress_assignments(db, p, &r, &err) != SM_OK) {
        json_decref(queue);
        http_db_failed(rs, &err);
        return;
    }
    json_t *list = http_rows_json(r);
    PQclear(r);
    size_t i;
    json_t *a;
    json_array_foreach(list, i, a)
    {
        json_int_t pending = json_integer_value(json_object_get(a, "pending"));
        json_object_set_new(a, "eta_seconds",
                            pending == 0  ? json_integer(0)
                            : per_sec > 0 ? json_integer((json_int_t)(pending / per_sec + 0.5))
                                          : json_null());
    }
    json_t *doc = json_pack("{s:o,s:o,s:f,s:f,s:I,s:o,s:o}", "queue", queue, "assignments", list,
                            "tokens_per_second", snap.tokens_per_second, "gradings_per_minute",
                            per_sec * 60.0, "workers_connected", (json_int_t)snap.workers_connected,
                            "eta_seconds",
                            pending_all == 0 ? json_integer(0)
                            : per_sec > 0 ? json_integer((json_int_t)(pending_all / per_sec + 0.5))
                                          : json_null(),
                            "eta_basis", basis ? json_string(basis) : json_null());
    http_resp_json(rs, 200, doc);
}

void http_metrics_page(http_req *rq, http_resp *rs)
{
    char *counters = NULL;
    sm_err err = {0};
    if (sm_metrics_render(rq->http->metrics, &counters, &err) != SM_OK) {
        http_resp_error(rs, 500, "ENOMEM", "cannot render metrics");
        return;
    }
    /* Without the database the broker's counters are still worth reporting. */
    sm_err ignored;
    if (http_pool_get(rq->http->pool, &rq->db, &ignored) != SM_OK)
        rq->db = NULL;
    PGresult *r = NULL;
    if (rq->db && http_store_queue_depth(rq->db, &r, &err) != SM_OK) {
        sm_log(SM_LOG_WARN, "metrics: queue depth query failed", "error", err.msg, NULL);
        r = NULL;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        free(counters);
        PQclear(r);
        http_resp_error(rs, 500, "ENOMEM", "out of memory");
        return;
    }
    fputs(counters, f);
    free(counters);
    fprintf(f,
            "# HELP stepmark_database_up Whether the HTTP side could query the database.\n"
            "# TYPE stepmark_database_up gauge\nstepmark_database_up %d\n",
            r ? 1 : 0);
    fputs("# HELP stepmark_queue_depth Jobs in the database by state and priority.\n"
          "# TYPE stepmark_queue_depth gauge\n",
          f);
    for (int i = 0; r && i < PQntuples(r); i++)
        fprintf(f, "stepmark_queue_depth{state=\"%s\",priority=\"%s\"} %s\n", PQgetvalue(r, i, 0),
                strcmp(PQgetvalue(r, i, 1), "0") == 0 ? "interactive" : "batch",
                PQgetvalue(r, i, 2));
    PQclear(r);
    fclose(f);
    http_resp_text(rs, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len);
}
