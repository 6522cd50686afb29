/* webhooks: stepmarkd's webhook delivery thread (docs/webhooks.md). It reads event_outbox with
 * the (xid, id) rule below pg_snapshot_xmin, and POSTs each event of a course to that course's
 * webhooks, signed (common/sm_webhook.h), one at a time per webhook in outbox order, with a
 * retry after exponential backoff while an event fails. Every bit of progress is in PostgreSQL
 * (schema/007_webhooks.sql), so a restart resumes where it stopped; a session advisory lock per
 * webhook keeps two brokers on one database from delivering to the same webhook at once. The
 * thread has its own database connection and libcurl handle, so a slow receiver never stalls
 * the broker's loop. */
#ifndef SM_WEBHOOKS_H
#define SM_WEBHOOKS_H

#include "sm_config.h"
#include "sm_error.h"
#include "sm_metrics.h"

typedef struct sm_webhooks sm_webhooks;

/* Starts the delivery thread with cfg->webhooks' settings against the database at db_url
 * (already migrated). metrics may be NULL. An unreachable database is retried by the thread. */
sm_code sm_webhooks_start(const sm_config *cfg, const char *db_url, sm_metrics *metrics,
                          sm_webhooks **out, sm_err *err);

/* Stops the thread (an attempt in flight is abandoned and retried later) and frees it. */
void sm_webhooks_stop(sm_webhooks **w);

#endif
