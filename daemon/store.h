/* store: the broker's durable queue and records in PostgreSQL. Each function is one SQL
 * statement (so one implicit transaction, atomic and durable when it returns SM_OK) over the
 * broker's single connection. Replies for queries are built as JSON by PostgreSQL itself.
 * After any SM_EDB, sm_store_alive() tells whether the connection was lost; then
 * sm_store_reconnect() is retried by the broker until PostgreSQL is back. */
#ifndef SM_STORE_H
#define SM_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "sm_error.h"

typedef struct sm_store sm_store;

sm_code sm_store_open(const char *url, sm_store **out, sm_err *err);
void sm_store_close(sm_store **s);
bool sm_store_alive(sm_store *s);
sm_code sm_store_reconnect(sm_store *s, sm_err *err);
/* The broker's connection, for the shared queries of grades.h (and the event relay). */
PGconn *sm_store_conn(sm_store *s);

/* An assignment as the SUBMIT path needs it. */
typedef struct sm_assignment_ref {
    int64_t id;
    char kind[8];
    char language[32]; /* "" when the assignment names none */
} sm_assignment_ref;

/* Looks up course/assignment codes: SM_OK, SM_ENOTFOUND, or SM_EDB. */
sm_code sm_store_assignment_ref(sm_store *s, const char *course, const char *code,
                                sm_assignment_ref *out, sm_err *err);
/* The same over any connection (the HTTP API's SUBMIT path uses it with a pooled one). */
sm_code sm_store_assignment_ref_conn(PGconn *conn, const char *course, const char *code,
                                     sm_assignment_ref *out, sm_err *err);

/* One SUBMIT of a group commit. */
typedef struct sm_submit_item {
    int64_t assignment_id;
    const char *student_ref;
    const char *key;
    const char *content;
    const char *language;  /* may be NULL */
    const char *client;    /* may be NULL */
    int priority;          /* 0 interactive, 1 batch */
    int64_t submission_id; /* out */
    bool duplicate;        /* out: the key existed already */
} sm_submit_item;

/* Inserts every item's submission and job in one statement (keys must be distinct within the
 * batch); items whose key already exists get the existing id and duplicate = true. */
sm_code sm_store_submit(sm_store *s, sm_submit_item *items, int n, int max_attempts, sm_err *err);
/* The same over any connection: POST /api/v1/submissions stores through it, so a submission
 * sent over HTTP takes exactly the path of a ZeroMQ SUBMIT. Durable when it returns SM_OK. */
sm_code sm_store_submit_conn(PGconn *conn, sm_submit_item *items, int n, int max_attempts,
                             sm_err *err);

/* Leases up to limit queued jobs (by priority then age; model NULL = any) to owner for
 * lease_ms. *jobs receives a JSON array of JOB bodies (docs/protocol.md). */
sm_code sm_store_claim(sm_store *s, const char *owner, const char *model, int limit,
                       int64_t lease_ms, json_t **jobs, sm_err *err);

/* Extends every lease of owner. */
sm_code sm_store_extend(sm_store *s, const char *owner, int64_t lease_ms, sm_err *err);

/* Records progress of a job leased by owner (and extends its lease). */
sm_code sm_store_progress(sm_store *s, int64_t job_id, const char *owner, int64_t tokens,
                          int64_t lease_ms, sm_err *err);

/* Returns the jobs leased by owner (exact, or every owner starting with it when prefix) to the
 * queue. As a failure (counts the attempt, backoff, dead after max_attempts, last_error =
 * reason; but a job the worker never reported PROGRESS for is not charged: it is delayed by
 * the backoff doubled per such loss) or, when !failure, as a hand-back that does not count. *events receives a JSON array
 * of "dead" events. */
sm_code sm_store_release(sm_store *s, const char *owner, bool prefix, bool failure,
                         const char *reason, int64_t backoff_ms, json_t **events, sm_err *err);

/* A worker's FAIL of a job it holds: requeued with backoff when retryable and attempts are
 * left, else dead. *state receives the new state ("" when the job was not leased by owner);
 * *event a "dead" event or NULL. */
sm_code sm_store_fail(sm_store *s, int64_t job_id, const char *owner, const char *error,
                      bool retryable, int64_t backoff_ms, char state[16], json_t **event,
                      sm_err *err);

/* What sm_store_reap returned to the queue: "dead" events, and [job_id, owner] pairs of every
 * job whose lease ended (so the broker can forget them and tell their workers). */
typedef struct sm_reaped {
    json_t *events;
    json_t *jobs;
} sm_reaped;
void sm_reaped_clear(sm_reaped *r);

/* Expired leases of any owner go back to the queue (or dead). A lease ends when it was not
 * extended in time or when the job has run for max_job_ms (sm_store_set_max_job_ms). Jobs
 * whose worker never reported PROGRESS go back without counting the attempt. */
sm_code sm_store_reap(sm_store *s, int64_t backoff_ms, sm_reaped *out, sm_err *err);

/* The longest a job may stay leased, however its lease is extended (default one day). */
void sm_store_set_max_job_ms(sm_store *s, int64_t max_job_ms);

/* A RESULT to store: a validated body for job_id from the worker named worker whose leases
 * are recorded as owner. */
typedef struct sm_result_in {
    int64_t job_id;
    const char *owner;
    const char *worker;
    const json_t *body;
} sm_result_in;

/* Stores a RESULT in one statement when owner holds the job's lease and the score lies in
 * [0, the assignment's max_score] (a max_score in the body must equal the assignment's; the
 * stored one is always the assignment's). Outcomes: SM_OK with *event (a "result" event
 * body, owned); SM_ESTATE when the job is not leased to owner; SM_EINVAL when the scores do
 * not fit; SM_ENOTFOUND. */
sm_code sm_store_result(sm_store *s, const sm_result_in *in, json_t **event, sm_err *err);

/* Cancels the queued or leased job of a submission. *reply receives
 * {submission_id, cancelled, state}; *owner (size 128) the lease owner of a job that was
 * leased ("" if none) and *job_id its id. */
sm_code sm_store_cancel(sm_store *s, int64_t submission_id, json_t **reply, char *owner,
                        int64_t *job_id, sm_err *err);

/* STATUS of a submission by id (key NULL) or by idempotency key (grades.h). */
sm_code sm_store_status(sm_store *s, int64_t submission_id, const char *key, json_t **reply,
                        sm_err *err);

/* The latest grading of a submission with steps, checks, (optionally) reasoning and the
 * final block (grades.h). */
sm_code sm_store_result_get(sm_store *s, int64_t submission_id, bool reasoning, json_t **reply,
                            sm_err *err);

/* Creates a course or updates its title: *reply {course_id, code, created}. */
sm_code sm_store_course_put(sm_store *s, const char *code, const char *title, const char *actor,
                            json_t **reply, sm_err *err);

/* Creates (update false; SM_ESTATE if it exists) or updates (SM_ENOTFOUND if missing) an
 * assignment from a validated body; only the fields present are changed on update. */
sm_code sm_store_assignment_put(sm_store *s, const json_t *body, bool update, const char *actor,
                                json_t **reply, sm_err *err);

sm_code sm_store_assignment_get(sm_store *s, const char *course, const char *code, json_t **reply,
                                sm_err *err);

#endif
