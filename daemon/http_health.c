/* http_health: the probes of stepmarkd's HTTP server, for systemd, load balancers and
 * Kubernetes. Neither needs a session, both answer GET and HEAD only and read no body.
 *   /healthz  liveness: the process answers. Always 200 {"status":"ok"}; no database work.
 *   /readyz   readiness: the database answers and its schema is at the newest migration built
 *             into this program. 200 {"status":"ready",...} or 503 {"status":"not ready",
 *             "reason":...}. One pooled connection, two small queries. */
#include <stdio.h>
#include <string.h>

#include "http_internal.h"
#include "sm_log.h"
#include "sm_migrate.h"

/* The highest migration version built into this program. */
static int expected_version(void)
{
    int n = 0;
    const sm_migration *m = sm_migrations(&n);
    int v = 0;
    for (int i = 0; i < n; i++)
        if (m[i].version > v)
            v = m[i].version;
    return v;
}

static void not_ready(http_resp *rs, const char *reason, json_t *extra)
{
    json_t *doc = json_pack("{s:s,s:s}", "status", "not ready", "reason", reason);
    if (doc && extra)
        json_object_update(doc, extra);
    json_decref(extra);
    http_resp_json(rs, 503, doc);
    rs->retry_after = 5;
}

static void readyz(http_req *rq, http_resp *rs)
{
    sm_err err = {0};
    if (http_pool_get(rq->http->pool, &rq->db, &err) != SM_OK) {
        rq->db = NULL;
        sm_log(SM_LOG_WARN, "readyz: database unreachable", "error", err.msg, NULL);
        not_ready(rs, "database unreachable", NULL);
        return;
    }
    int current = 0, expected = expected_version();
    if (sm_migrate_current(rq->db, &current, &err) != SM_OK) {
        sm_log(SM_LOG_WARN, "readyz: database query failed", "error", err.msg, NULL);
        not_ready(rs, "database unreachable", NULL);
        return;
    }
    json_t *mig =
        json_pack("{s:{s:i,s:i}}", "migrations", "current", current, "expected", expected);
    if (current < expected) {
        not_ready(rs, "migrations pending", mig);
        return;
    }
    /* A newer schema (a newer broker migrated it) is served as well: migrations only add. */
    json_t *doc = json_pack("{s:s,s:s}", "status", "ready", "database", "ok");
    if (doc && mig)
        json_object_update(doc, mig);
    json_decref(mig);
    http_resp_json(rs, 200, doc);
}

void http_health(http_req *rq, http_resp *rs, const char *probe)
{
    if (strcmp(probe, "readyz") == 0) {
        readyz(rq, rs);
        return;
    }
    http_resp_json(rs, 200, json_pack("{s:s}", "status", "ok"));
}
