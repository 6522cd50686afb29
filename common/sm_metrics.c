/* sm_metrics: lock-free counters of the broker (see sm_metrics.h). The tokens/s rate is kept
 * in a ring of per-second buckets; the ACK histogram in fixed buckets (seconds) with a sum
 * kept in microseconds. */
#include "sm_metrics.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define RATE_SLOTS 64
#define RATE_WINDOW 60

const double sm_metrics_ack_bounds[SM_METRICS_ACK_BUCKETS] = {
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

typedef struct rate_slot {
    atomic_int_least64_t second;
    atomic_uint_least64_t count;
} rate_slot;

struct sm_metrics {
    atomic_uint_least64_t submissions_accepted;
    atomic_uint_least64_t gradings_done;
    atomic_uint_least64_t gradings_failed;
    atomic_uint_least64_t tokens_generated;
    atomic_int_least64_t workers_connected;
    atomic_uint_least64_t ack_buckets[SM_METRICS_ACK_BUCKETS + 1]; /* not cumulative here */
    atomic_uint_least64_t ack_count;
    atomic_uint_least64_t ack_sum_us;
    atomic_uint_least64_t webhook_ok, webhook_failed;
    atomic_int_least64_t webhook_backlog;
    rate_slot rate[RATE_SLOTS];
    int64_t started; /* monotonic second of creation */
};

static int64_t now_second(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

sm_code sm_metrics_new(sm_metrics **out, sm_err *err)
{
    sm_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return sm_err_set(err, SM_ENOMEM, "out of memory allocating metrics");
    atomic_init(&m->submissions_accepted, 0);
    atomic_init(&m->gradings_done, 0);
    atomic_init(&m->gradings_failed, 0);
    atomic_init(&m->tokens_generated, 0);
    atomic_init(&m->workers_connected, 0);
    for (int i = 0; i <= SM_METRICS_ACK_BUCKETS; i++)
        atomic_init(&m->ack_buckets[i], 0);
    atomic_init(&m->ack_count, 0);
    atomic_init(&m->ack_sum_us, 0);
    atomic_init(&m->webhook_ok, 0);
    atomic_init(&m->webhook_failed, 0);
    atomic_init(&m->webhook_backlog, 0);
    for (int i = 0; i < RATE_SLOTS; i++) {
        atomic_init(&m->rate[i].second, -1);
        atomic_init(&m->rate[i].count, 0);
    }
    m->started = now_second();
    *out = m;
    return SM_OK;
}

void sm_metrics_free(sm_metrics **m)
{
    if (!m || !*m)
        return;
    free(*m);
    *m = NULL;
}

void sm_metrics_submissions_accepted(sm_metrics *m, uint64_t n)
{
    if (m)
        atomic_fetch_add(&m->submissions_accepted, n);
}

void sm_metrics_grading_done(sm_metrics *m)
{
    if (m)
        atomic_fetch_add(&m->gradings_done, 1);
}

void sm_metrics_grading_failed(sm_metrics *m)
{
    if (m)
        atomic_fetch_add(&m->gradings_failed, 1);
}

void sm_metrics_tokens_generated(sm_metrics *m, uint64_t n)
{
    if (!m)
        return;
    atomic_fetch_add(&m->tokens_generated, n);
    int64_t s = now_second();
    rate_slot *slot = &m->rate[s % RATE_SLOTS];
    int_least64_t old = atomic_load(&slot->second);
    if (old != s && atomic_compare_exchange_strong(&slot->second, &old, s))
        atomic_store(&slot->count, 0);
    atomic_fetch_add(&slot->count, n);
}

void sm_metrics_worker_connected(sm_metrics *m)
{
    if (m)
        atomic_fetch_add(&m->workers_connected, 1);
}

void sm_metrics_worker_disconnected(sm_metrics *m)
{
    if (m)
        atomic_fetch_sub(&m->workers_connected, 1);
}

void sm_metrics_workers_set(sm_metrics *m, int64_t n)
{
    if (m)
        atomic_store(&m->workers_connected, n);
}

void sm_metrics_ack_observe_seconds(sm_metrics *m, double seconds)
{
    if (!m || !(seconds >= 0)) /* also rejects NaN */
        return;
    int b = 0;
    while (b < SM_METRICS_ACK_BUCKETS && seconds > sm_metrics_ack_bounds[b])
        b++;
    atomic_fetch_add(&m->ack_buckets[b], 1);
    atomic_fetch_add(&m->ack_count, 1);
    double us = seconds * 1e6;
    atomic_fetch_add(&m->ack_sum_us, us > 1e18 ? (uint64_t)1e18 : (uint64_t)llround(us));
}

void sm_metrics_webhook_attempt(sm_metrics *m, bool ok)
{
    if (m)
        atomic_fetch_add(ok ? &m->webhook_ok : &m->webhook_failed, 1);
}

void sm_metrics_webhook_backlog_set(sm_metrics *m, int64_t n)
{
    if (m)
        atomic_store(&m->webhook_backlog, n);
}

static double tokens_rate(sm_metrics *m)
{
    int64_t now = now_second();
    /* Whole seconds only: the current, still-filling second is left out. */
    int64_t window = now - m->started;
    if (window > RATE_WINDOW)
        window = RATE_WINDOW;
    if (window <= 0)
        return 0.0;
    uint64_t sum = 0;
    for (int i = 0; i < RATE_SLOTS; i++) {
        int64_t s = atomic_load(&m->rate[i].second);
        if (s >= now - window && s < now)
            sum += atomic_load(&m->rate[i].count);
    }
    return (double)sum / (double)window;
}

void sm_metrics_snapshot_get(sm_metrics *m, sm_metrics_snapshot *out)
{
    *out = (sm_metrics_snapshot){0};
    if (!m)
        return;
    out->submissions_accepted = atomic_load(&m->submissions_accepted);
    out->gradings_done = atomic_load(&m->gradings_done);
    out->gradings_failed = atomic_load(&m->gradings_failed);
    out->tokens_generated = atomic_load(&m->tokens_generated);
    out->workers_connected = atomic_load(&m->workers_connected);
    out->tokens_per_second = tokens_rate(m);
    uint64_t cum = 0;
    for (int i = 0; i <= SM_METRICS_ACK_BUCKETS; i++) {
        cum += atomic_load(&m->ack_buckets[i]);
        out->ack_buckets[i] = cum;
    }
    /* Count = the +Inf bucket, so the histogram is self-consistent even under updates. */
    out->ack_count = cum;
    out->ack_sum_seconds = (double)atomic_load(&m->ack_sum_us) / 1e6;
    out->webhook_ok = atomic_load(&m->webhook_ok);
    out->webhook_failed = atomic_load(&m->webhook_failed);
    out->webhook_backlog = atomic_load(&m->webhook_backlog);
}

sm_code sm_metrics_render(sm_metrics *m, char **out, sm_err *err)
{
    sm_metrics_snapshot s;
    sm_metrics_snapshot_get(m, &s);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return sm_err_set(err, SM_ENOMEM, "out of memory rendering metrics");
    fprintf(
        f,
        "# HELP stepmark_submissions_accepted_total Submissions durably stored and acknowledged.\n"
        "# TYPE stepmark_submissions_accepted_total counter\n"
        "stepmark_submissions_accepted_total %llu\n"
        "# HELP stepmark_gradings_done_total Gradings completed and stored.\n"
        "# TYPE stepmark_gradings_done_total counter\n"
        "stepmark_gradings_done_total %llu\n"
        "# HELP stepmark_gradings_failed_total Grading attempts that failed.\n"
        "# TYPE stepmark_gradings_failed_total counter\n"
        "stepmark_gradings_failed_total %llu\n"
        "# HELP stepmark_workers_connected Workers currently connected to this broker.\n"
        "# TYPE stepmark_workers_connected gauge\n"
        "stepmark_workers_connected %lld\n"
        "# HELP stepmark_tokens_generated_total Tokens generated by workers.\n"
        "# TYPE stepmark_tokens_generated_total counter\n"
        "stepmark_tokens_generated_total %llu\n"
        "# HELP stepmark_tokens_per_second Tokens generated per second over the last minute.\n"
        "# TYPE stepmark_tokens_per_second gauge\n"
        "stepmark_tokens_per_second %.3f\n"
        "# HELP stepmark_ack_latency_seconds Time from receiving a SUBMIT to acknowledging it.\n"
        "# TYPE stepmark_ack_latency_seconds histogram\n",
        (unsigned long long)s.submissions_accepted, (unsigned long long)s.gradings_done,
        (unsigned long long)s.gradings_failed, (long long)s.workers_connected,
        (unsigned long long)s.tokens_generated, s.tokens_per_second);
    for (int i = 0; i < SM_METRICS_ACK_BUCKETS; i++)
        fprintf(f, "stepmark_ack_latency_seconds_bucket{le=\"%g\"} %llu\n",
                sm_metrics_ack_bounds[i], (unsigned long long)s.ack_buckets[i]);
    fprintf(f, "stepmark_ack_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
            (unsigned long long)s.ack_buckets[SM_METRICS_ACK_BUCKETS]);
    fprintf(f, "stepmark_ack_latency_seconds_sum %.6f\nstepmark_ack_latency_seconds_count %llu\n",
            s.ack_sum_seconds, (unsigned long long)s.ack_count);
    fprintf(f,
            "# HELP stepmark_webhook_deliveries_total Webhook delivery attempts by this broker, by "
            "outcome.\n"
            "# TYPE stepmark_webhook_deliveries_total counter\n"
            "stepmark_webhook_deliveries_total{result=\"ok\"} %llu\n"
            "stepmark_webhook_deliveries_total{result=\"failed\"} %llu\n"
            "# HELP stepmark_webhook_backlog Events not yet delivered, summed over all webhooks.\n"
            "# TYPE stepmark_webhook_backlog gauge\n"
            "stepmark_webhook_backlog %lld\n",
            (unsigned long long)s.webhook_ok, (unsigned long long)s.webhook_failed,
            (long long)s.webhook_backlog);
    if (fclose(f) != 0 || !buf) {
        free(buf);
        return sm_err_set(err, SM_ENOMEM, "out of memory rendering metrics");
    }
    *out = buf;
    return SM_OK;
}
