/* sm_metrics: the broker's live counters, shared with the HTTP side's /metrics page and
 * progress endpoint. Every update is a C11 atomic operation, so the broker's loop updates
 * them without locks while HTTP threads read them. Counters: submissions accepted, gradings
 * done and failed, tokens generated (with a rate over the last minute), workers connected
 * (a gauge) and a histogram of SUBMIT acknowledgement latency in seconds (Prometheus base
 * units). */
#ifndef SM_METRICS_H
#define SM_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "sm_error.h"

typedef struct sm_metrics sm_metrics;

/* Upper bounds (seconds) of the ACK-latency histogram buckets; a final +Inf bucket follows. */
#define SM_METRICS_ACK_BUCKETS 14
extern const double sm_metrics_ack_bounds[SM_METRICS_ACK_BUCKETS];

/* A consistent-enough copy of the counters for rendering. */
typedef struct sm_metrics_snapshot {
    uint64_t submissions_accepted;
    uint64_t gradings_done;
    uint64_t gradings_failed;
    uint64_t tokens_generated;
    int64_t workers_connected;
    double tokens_per_second;                         /* over the last minute */
    uint64_t ack_buckets[SM_METRICS_ACK_BUCKETS + 1]; /* cumulative; last = +Inf */
    uint64_t ack_count;
    double ack_sum_seconds;
    uint64_t webhook_ok;     /* webhook deliveries acknowledged with a 2xx */
    uint64_t webhook_failed; /* webhook delivery attempts that failed */
    int64_t webhook_backlog; /* events not yet delivered, summed over webhooks */
} sm_metrics_snapshot;

sm_code sm_metrics_new(sm_metrics **out, sm_err *err);
void sm_metrics_free(sm_metrics **m);

/* Broker-side updates; every one is safe from any thread and never blocks. m may be NULL. */
void sm_metrics_submissions_accepted(sm_metrics *m, uint64_t n);
void sm_metrics_grading_done(sm_metrics *m);
void sm_metrics_grading_failed(sm_metrics *m);
void sm_metrics_tokens_generated(sm_metrics *m, uint64_t n);
void sm_metrics_worker_connected(sm_metrics *m);
void sm_metrics_worker_disconnected(sm_metrics *m);
void sm_metrics_workers_set(sm_metrics *m, int64_t n);
void sm_metrics_ack_observe_seconds(sm_metrics *m, double seconds);
/* Webhook deliveries (daemon/webhooks.c): one attempt's outcome; the backlog gauge. */
void sm_metrics_webhook_attempt(sm_metrics *m, bool ok);
void sm_metrics_webhook_backlog_set(sm_metrics *m, int64_t n);

/* Copies the counters into *out (all zero when m is NULL). */
void sm_metrics_snapshot_get(sm_metrics *m, sm_metrics_snapshot *out);

/* Renders the counters in Prometheus text format (HELP/TYPE lines) into a malloc'd string
 * that the caller frees. */
sm_code sm_metrics_render(sm_metrics *m, char **out, sm_err *err);

#endif
