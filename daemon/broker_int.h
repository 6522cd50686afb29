/* broker_int: the broker's private state, shared by its modules: broker.c (sockets, loop,
 * timers), broker_client.c (client commands and group commit), broker_worker.c (worker
 * commands, credit and dispatch), workers.c (the registry of connected workers) and
 * validate.c (checks of request bodies). */
#ifndef SM_BROKER_INT_H
#define SM_BROKER_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "broker.h"
#include "peers.h"
#include "sm_curve.h"
#include "sm_proto.h"
#include "store.h"
#include "validate.h"

#define SM_BATCH_MAX 512   /* SUBMITs in one group commit */
#define SM_DRAIN_MAX 1024  /* messages read from one socket per loop turn */
#define SM_CACHE_SLOTS 128 /* assignment lookups remembered */
#define SM_CACHE_TTL_MS 10000
#define SM_CLAIM_MAX 16   /* jobs claimed for one worker per statement */
#define SM_RECENT_DONE 32 /* results a worker may resend and still get ACK duplicate */

typedef struct sm_wjob {
    int64_t id;
    int64_t tokens;    /* last PROGRESS tokens */
    int64_t stored_ms; /* when progress was last written */
} sm_wjob;

typedef struct sm_worker {
    unsigned char ident[256];
    size_t ident_len;
    char owner[128]; /* lease_owner: instance/hex(identity) */
    char name[129];
    char model[257];
    char device[17];
    int capacity;
    sm_wjob *jobs;
    int njobs, capjobs;
    int64_t last_seen_ms;
    int64_t last_extend_ms;
    int64_t recent_done[SM_RECENT_DONE]; /* jobs whose RESULT this worker had stored */
    int nrecent, recent_next;
} sm_worker;

typedef struct sm_workers {
    sm_worker **w;
    int n, cap;
    int rr; /* round-robin start for dispatch */
} sm_workers;

sm_worker *sm_workers_find(sm_workers *ws, const unsigned char *ident, size_t len);
sm_worker *sm_workers_add(sm_workers *ws, const unsigned char *ident, size_t len,
                          const char *instance);
void sm_workers_remove(sm_workers *ws, sm_worker *w);
sm_worker *sm_workers_by_owner(sm_workers *ws, const char *owner);
bool sm_worker_job_add(sm_worker *w, int64_t job_id);
sm_wjob *sm_worker_job_find(sm_worker *w, int64_t job_id);
bool sm_worker_job_remove(sm_worker *w, int64_t job_id);
/* Remembers that w's RESULT of job_id was stored; whether it was (among the last few). */
void sm_worker_done_add(sm_worker *w, int64_t job_id);
bool sm_worker_done_find(const sm_worker *w, int64_t job_id);
void sm_workers_free(sm_workers *ws);

typedef struct sm_cached {
    char course[201], code[201];
    sm_assignment_ref ref;
    int64_t expires_ms;
} sm_cached;

typedef struct sm_pending {
    unsigned char *ident;
    size_t ident_len;
    unsigned char id[SM_PROTO_MAX_ID];
    size_t id_len;
    json_t *body; /* owns the strings of item */
    int dup_of;   /* index of the pending SUBMIT with the same key, or -1 */
    int64_t recv_us;
    sm_submit_item item;
} sm_pending;

struct sm_broker {
    /* settings copied from the configuration */
    int64_t heartbeat_ms, heartbeat_timeout_ms, lease_ms, max_attempts, backoff_ms;
    size_t max_body;
    int64_t group_commit_us;
    int64_t max_worker_slots;

    void *ctx, *client, *worker, *pub, *zap;
    sm_keyset *client_keys, *worker_keys; /* CURVE allow-lists by role (ZAP domain) */
    sm_peers *peers;                      /* misbehaving worker-side peers */
    uint64_t dropped_sends;               /* worker-side messages a full queue refused */
    uint64_t dropped_logged;
    int64_t next_drop_log_ms;
    sm_store *store;
    bool db_up;
    sm_metrics *metrics;
    char instance[24];

    sm_workers workers;
    sm_cached cache[SM_CACHE_SLOTS];
    int cache_next;

    sm_pending batch[SM_BATCH_MAX];
    int nbatch;
    int64_t batch_since_us;

    bool dispatch_wanted;
    int64_t next_heartbeat_ms, next_reap_ms, next_dispatch_ms, next_reconnect_ms;

    /* the event relay (broker_relay.c): the last event_outbox position published */
    bool relay_ready;
    uint64_t relay_xid;
    int64_t relay_id;
    int64_t next_relay_ms;
};

int64_t sm_now_us(void);
static inline int64_t sm_now_ms(void)
{
    return sm_now_us() / 1000;
}

/* After a store call failed: notices a lost connection. Returns the code to send to the peer
 * and whether it is retryable. */
bool sm_broker_db_failed(sm_broker *b, sm_code rc);

/* Replies on the client socket. */
void sm_broker_reply(sm_broker *b, const unsigned char *ident, size_t ident_len,
                     const unsigned char *id, size_t id_len, bool ok, json_t *body);
void sm_broker_reply_error(sm_broker *b, const unsigned char *ident, size_t ident_len,
                           const unsigned char *id, size_t id_len, sm_code code, const char *msg,
                           bool retryable);
/* Publishes an event body ({event, course, assignment, ...}) on the PUB socket. */
void sm_broker_publish(sm_broker *b, const json_t *event);
void sm_broker_publish_all(sm_broker *b, json_t *events); /* array; consumed */

/* broker_client.c */
void sm_broker_client_message(sm_broker *b, sm_msg *m);
void sm_broker_commit(sm_broker *b);

/* broker_relay.c: reviewed and released events from event_outbox to the PUB socket. start
 * sets the position to "now" (events written before it are not sent); relay publishes what
 * was committed since, every SM_RELAY_MS. */
#define SM_RELAY_MS 250
void sm_broker_relay_start(sm_broker *b);
void sm_broker_relay(sm_broker *b);

/* broker_worker.c */
void sm_broker_worker_message(sm_broker *b, sm_msg *m);
void sm_broker_dispatch(sm_broker *b);
void sm_broker_worker_timers(sm_broker *b, int64_t now_ms);
void sm_broker_worker_send(sm_broker *b, sm_worker *w, const char *command, const char *id,
                           const json_t *body);
/* Hands back (failure false) or fails (true) every job of w and forgets w. */
void sm_broker_worker_drop(sm_broker *b, sm_worker *w, bool failure, const char *reason);

#endif
