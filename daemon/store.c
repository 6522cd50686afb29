/* store: the broker's SQL (store.h). Parameters travel as text; batches and result bodies
 * travel as one jsonb parameter that PostgreSQL unpacks, so each operation is one round trip
 * and one statement. */
#include "store.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "grades.h"
#include "sm_db.h"

struct sm_store {
    PGconn *conn;
    char *url;
    char max_job_ms[24]; /* broker.max_job_ms as a query parameter */
};

sm_code sm_store_open(const char *url, sm_store **out, sm_err *err)
{
    *out = NULL;
    sm_store *s = calloc(1, sizeof *s);
    if (!s || !(s->url = strdup(url))) {
        free(s);
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    snprintf(s->max_job_ms, sizeof s->max_job_ms, "%d", 24 * 3600 * 1000);
    sm_code rc = sm_db_connect(url, &s->conn, err);
    if (rc) {
        free(s->url);
        free(s);
        return rc;
    }
    *out = s;
    return SM_OK;
}

void sm_store_close(sm_store **s)
{
    if (!s || !*s)
        return;
    if ((*s)->conn)
        PQfinish((*s)->conn);
    free((*s)->url);
    free(*s);
    *s = NULL;
}

PGconn *sm_store_conn(sm_store *s)
{
    return s->conn;
}

bool sm_store_alive(sm_store *s)
{
    return s->conn && PQstatus(s->conn) == CONNECTION_OK;
}

sm_code sm_store_reconnect(sm_store *s, sm_err *err)
{
    PGconn *c = NULL;
    sm_code rc = sm_db_connect(s->url, &c, err);
    if (rc)
        return rc;
    if (s->conn)
        PQfinish(s->conn);
    s->conn = c;
    return SM_OK;
}

static void i64(char *buf, int64_t v);

void sm_store_set_max_job_ms(sm_store *s, int64_t max_job_ms)
{
    i64(s->max_job_ms, max_job_ms);
}

static void i64(char *buf, int64_t v)
{
    snprintf(buf, 24, "%" PRId64, v);
}

/* Runs sql and parses column col of row 0 as JSON into *out (NULL when no row). */
static sm_code query_json(sm_store *s, const char *sql, int n, const char *const *p, json_t **out,
                          sm_err *err)
{
    *out = NULL;
    PGresult *r;
    sm_code rc = sm_db_query(s->conn, sql, n, p, &r, err);
    if (rc)
        return rc;
    if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
        json_error_t je;
        *out = json_loads(PQgetvalue(r, 0, 0), 0, &je);
        if (!*out)
            rc = sm_err_set(err, SM_EINTERNAL, "database returned bad JSON: %s", je.text);
    }
    PQclear(r);
    return rc;
}

sm_code sm_store_assignment_ref(sm_store *s, const char *course, const char *code,
                                sm_assignment_ref *out, sm_err *err)
{
    return sm_store_assignment_ref_conn(s->conn, course, code, out, err);
}

sm_code sm_store_assignment_ref_conn(PGconn *conn, const char *course, const char *code,
                                     sm_assignment_ref *out, sm_err *err)
{
    const char *p[] = {course, code};
    PGresult *r;
    sm_code rc =
        sm_db_query(conn,
                    "SELECT a.id, a.kind, COALESCE(a.language, '') FROM assignment a "
                    "JOIN course c ON c.id = a.course_id WHERE c.code = $1 AND a.code = $2",
                    2, p, &r, err);
    if (rc)
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return sm_err_set(err, SM_ENOTFOUND, "unknown assignment %s/%s", course, code);
    }
    out->id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    snprintf(out->kind, sizeof out->kind, "%s", PQgetvalue(r, 0, 1));
    snprintf(out->language, sizeof out->language, "%s", PQgetvalue(r, 0, 2));
    PQclear(r);
    return SM_OK;
}

static const char submit_sql[] =
    "WITH input AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x("
    "  i int, a bigint, s text, k text, c text, l text, p smallint, cl text)),"
    " ins AS (INSERT INTO submission (assignment_id, student_ref, idempotency_key, content,"
    "           language, client_id)"
    "         SELECT a, s, k, c, l, cl FROM input ORDER BY i"
    "         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, idempotency_key),"
    " jb AS (INSERT INTO job (submission_id, priority, max_attempts, seed)"
    "        SELECT ins.id, input.p, $2::int,"
    "               hashtextextended(input.k, 0) & 9007199254740991"
    "        FROM ins JOIN input ON input.k = ins.idempotency_key RETURNING id)"
    " SELECT input.i, ins.id, (SELECT count(*) FROM jb) FROM input"
    " LEFT JOIN ins ON ins.idempotency_key = input.k";

sm_code sm_store_submit(sm_store *s, sm_submit_item *items, int n, int max_attempts, sm_err *err)
{
    return sm_store_submit_conn(s->conn, items, n, max_attempts, err);
}

sm_code sm_store_submit_conn(PGconn *conn, sm_submit_item *items, int n, int max_attempts,
                             sm_err *err)
{
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        sm_submit_item *it = &items[i];
        it->submission_id = 0;
        it->duplicate = false;
        json_array_append_new(arr, json_pack("{s:i, s:I, s:s, s:s, s:s, s:s?, s:i, s:s?}", "i", i,
                                             "a", (json_int_t)it->assignment_id, "s",
                                             it->student_ref, "k", it->key, "c", it->content, "l",
                                             it->language, "p", it->priority, "cl", it->client));
    }
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (!text)
        return sm_err_set(err, SM_ENOMEM, "cannot serialise a batch");
    char ma[24];
    i64(ma, max_attempts);
    const char *p[] = {text, ma};
    PGresult *r;
    sm_code rc = sm_db_query(conn, submit_sql, 2, p, &r, err);
    free(text);
    if (rc)
        return rc;
    int missing = 0;
    for (int row = 0; row < PQntuples(r); row++) {
        int i = atoi(PQgetvalue(r, row, 0));
        if (i < 0 || i >= n)
            continue;
        if (PQgetisnull(r, row, 1)) {
            items[i].duplicate = true;
            missing++;
        } else {
            items[i].submission_id = strtoll(PQgetvalue(r, row, 1), NULL, 10);
        }
    }
    PQclear(r);
    if (missing == 0)
        return SM_OK;
    /* Existing keys: a new statement sees rows committed by anyone before it. */
    json_t *keys = json_array();
    for (int i = 0; i < n; i++)
        if (items[i].duplicate)
            json_array_append_new(keys, json_string(items[i].key));
    text = json_dumps(keys, JSON_COMPACT);
    json_decref(keys);
    if (!text)
        return sm_err_set(err, SM_ENOMEM, "cannot serialise keys");
    const char *p2[] = {text};
    rc = sm_db_query(conn,
                     "SELECT idempotency_key, id FROM submission WHERE idempotency_key IN "
                     "(SELECT jsonb_array_elements_text($1::jsonb))",
                     1, p2, &r, err);
    free(text);
    if (rc)
        return rc;
    for (int row = 0; row < PQntuples(r); row++) {
        const char *k = PQgetvalue(r, row, 0);
        int64_t id = strtoll(PQgetvalue(r, row, 1), NULL, 10);
        for (int i = 0; i < n; i++)
            if (items[i].duplicate && strcmp(items[i].key, k) == 0)
                items[i].submission_id = id;
    }
    PQclear(r);
    for (int i = 0; i < n; i++)
        if (items[i].submission_id == 0)
            return sm_err_set(err, SM_EDB, "submission with key %s vanished", items[i].key);
    return SM_OK;
}

static const char claim_sql[] =
    "WITH c AS (SELECT j.id FROM job j"
    "   JOIN submission s ON s.id = j.submission_id JOIN assignment a ON a.id = s.assignment_id"
    "   WHERE j.state = 'queued' AND j.not_before <= now()"
    "     AND ($3::text IS NULL OR a.model IS NULL OR a.model = $3)"
    "   ORDER BY j.priority, j.created_at, j.id LIMIT $2 FOR UPDATE OF j SKIP LOCKED),"
    " u AS (UPDATE job j SET state = 'leased', lease_owner = $1,"
    "         lease_expires_at = now() + LEAST($4::bigint, $5::bigint) * interval '1 millisecond',"
    "         leased_at = now(), progressed_at = NULL, progress_tokens = 0,"
    "         attempts = j.attempts + 1, updated_at = now()"
    "       FROM c WHERE j.id = c.id"
    "       RETURNING j.id, j.submission_id, j.attempts, j.max_attempts, j.seed, j.priority,"
    "                 j.created_at)"
    " SELECT COALESCE(json_agg(json_build_object("
    "   'job_id', u.id, 'submission_id', u.submission_id, 'attempt', u.attempts,"
    "   'max_attempts', u.max_attempts, 'seed', u.seed,"
    "   'priority', CASE u.priority WHEN 0 THEN 'interactive' ELSE 'batch' END,"
    "   'lease_ms', $4::bigint,"
    "   'assignment', json_build_object('course', co.code, 'code', a.code, 'title', a.title,"
    "      'kind', a.kind, 'statement', a.statement,"
    "      'rubric', COALESCE(a.rubric_criteria, to_jsonb(a.rubric)),"
    "      'reference_solution', a.reference_solution, 'language', a.language,"
    "      'tests', a.tests, 'answer_key', a.answer_key, 'max_score', a.max_score,"
    "      'model', a.model, 'sampling', a.sampling, 'answer_policy', a.answer_policy,"
    "      'updated_at', a.updated_at),"
    "   'submission', json_build_object('id', s.id, 'student_ref', s.student_ref,"
    "      'content', s.content, 'language', COALESCE(s.language, a.language),"
    "      'received_at', s.received_at))"
    "   ORDER BY u.priority, u.created_at, u.id), '[]')::text"
    " FROM u JOIN submission s ON s.id = u.submission_id"
    " JOIN assignment a ON a.id = s.assignment_id JOIN course co ON co.id = a.course_id";

sm_code sm_store_claim(sm_store *s, const char *owner, const char *model, int limit,
                       int64_t lease_ms, json_t **jobs, sm_err *err)
{
    char lim[24], lease[24];
    i64(lim, limit);
    i64(lease, lease_ms);
    const char *p[] = {owner, lim, (model && *model) ? model : NULL, lease, s->max_job_ms};
    sm_code rc = query_json(s, claim_sql, 5, p, jobs, err);
    if (!rc && !json_is_array(*jobs)) {
        json_decref(*jobs);
        *jobs = NULL;
        return sm_err_set(err, SM_EINTERNAL, "claim returned no array");
    }
    return rc;
}

/* A lease extended by ms never reaches past the job's maximum duration max from leased_at. */
#define LEASE_END(ms, max)                                     \
    "LEAST(now() + " ms "::bigint * interval '1 millisecond'," \
    " leased_at + " max "::bigint * interval '1 millisecond')"

sm_code sm_store_extend(sm_store *s, const char *owner, int64_t lease_ms, sm_err *err)
{
    char lease[24];
    i64(lease, lease_ms);
    const char *p[] = {owner, lease, s->max_job_ms};
    return sm_db_query(s->conn,
                       "UPDATE job SET lease_expires_at = " LEASE_END(
                           "$2", "$3") " WHERE state = 'leased' AND lease_owner = $1",
                       3, p, NULL, err);
}

sm_code sm_store_progress(sm_store *s, int64_t job_id, const char *owner, int64_t tokens,
                          int64_t lease_ms, sm_err *err)
{
    char id[24], tok[24], lease[24];
    i64(id, job_id);
    i64(tok, tokens);
    i64(lease, lease_ms);
    const char *p[] = {id, owner, tok, lease, s->max_job_ms};
    return sm_db_query(s->conn,
                       "UPDATE job SET progress_tokens = GREATEST(progress_tokens, $3::int),"
                       " progressed_at = COALESCE(progressed_at, now()),"
                       " lease_expires_at = " LEASE_END(
                           "$4", "$5") ", updated_at = now()"
                                       " WHERE id = $1 AND state = 'leased' AND lease_owner = $2",
                       5, p, NULL, err);
}

/* The "dead" events of jobs in CTE d(id, submission_id, state, last_error). */
#define DEAD_EVENTS                                                                 \
    " SELECT COALESCE(json_agg(json_build_object('event', 'dead', 'submission_id'," \
    "   d.submission_id, 'job_id', d.id, 'course', co.code, 'assignment', a.code,"  \
    "   'student_ref', s.student_ref, 'error', d.last_error))"                      \
    "   FILTER (WHERE d.state = 'dead'), '[]')::text, count(*)"                     \
    " FROM d JOIN submission s ON s.id = d.submission_id"                           \
    " JOIN assignment a ON a.id = s.assignment_id JOIN course co ON co.id = a.course_id"

/* backoff: retry_backoff_ms doubled per attempt already made (capped at 2^20). */
#define BACKOFF(ms)                                                                     \
    "now() + (" ms "::bigint * power(2, LEAST(GREATEST(attempts - 1, 0), 20))::bigint)" \
    " * interval '1 millisecond'"

static sm_code events_query(sm_store *s, const char *sql, int n, const char *const *p,
                            json_t **events, int *count, sm_err *err)
{
    *events = NULL;
    PGresult *r;
    sm_code rc = sm_db_query(s->conn, sql, n, p, &r, err);
    if (rc)
        return rc;
    if (count)
        *count = PQntuples(r) ? atoi(PQgetvalue(r, 0, 1)) : 0;
    json_error_t je;
    *events = PQntuples(r) ? json_loads(PQgetvalue(r, 0, 0), 0, &je) : json_array();
    PQclear(r);
    if (!*events)
        return sm_err_set(err, SM_EINTERNAL, "database returned bad JSON");
    return SM_OK;
}

/* A lease lost by a worker that had reported PROGRESS for it costs the attempt; one lost
 * before any progress does not (docs/security.md): it is counted in unstarted_losses and
 * delayed by the backoff doubled per such loss (capped at 2^10). */
#define CHARGED(failure) "(" failure "::bool AND progressed_at IS NOT NULL)"
#define UNSTARTED_DELAY(ms)                                                    \
    "now() + (" ms "::bigint * power(2, LEAST(unstarted_losses, 10))::bigint)" \
    " * interval '1 millisecond'"
#define UNCHARGED_NOTE " before any progress (attempt not charged)"

sm_code sm_store_release(sm_store *s, const char *owner, bool prefix, bool failure,
                         const char *reason, int64_t backoff_ms, json_t **events, sm_err *err)
{
    char bo[24];
    i64(bo, backoff_ms);
    const char *p[] = {owner, prefix ? "t" : "f", failure ? "t" : "f", reason, bo};
    static const char sql[] =
        "WITH d AS (UPDATE job SET"
        "   state = CASE WHEN " CHARGED(
            "$3") " AND attempts >= max_attempts THEN 'dead'"
                  "     ELSE 'queued' END,"
                  "   attempts = CASE WHEN " CHARGED(
                      "$3") " THEN attempts ELSE GREATEST(attempts - 1, 0) END,"
                            "   unstarted_losses = unstarted_losses"
                            "     + CASE WHEN $3::bool AND progressed_at IS NULL THEN 1 ELSE 0 END,"
                            "   last_error = CASE WHEN " CHARGED(
                                "$3") " THEN $4"
                                      "     WHEN $3::bool THEN $4 || '" UNCHARGED_NOTE
                                      "' ELSE last_error END,"
                                      "   not_before = CASE WHEN " CHARGED("$3") " THEN " BACKOFF("$5") "     WHEN $3::bool THEN " UNSTARTED_DELAY(
                                          "$5") " ELSE now() END,"
                                                "   finished_at = CASE WHEN " CHARGED(
                                                    "$3") " AND attempts >= max_attempts THEN now() END,"
                                                          "   lease_owner = NULL, lease_expires_at = NULL, updated_at = now()"
                                                          " WHERE state = 'leased' AND (lease_owner = $1 OR ($2::bool AND"
                                                          "   starts_with(lease_owner, $1)))"
                                                          " RETURNING id, submission_id, state, last_error)" DEAD_EVENTS;
    return events_query(s, sql, 5, p, events, NULL, err);
}

sm_code sm_store_fail(sm_store *s, int64_t job_id, const char *owner, const char *error,
                      bool retryable, int64_t backoff_ms, char state[16], json_t **event,
                      sm_err *err)
{
    char id[24], bo[24];
    i64(id, job_id);
    i64(bo, backoff_ms);
    const char *p[] = {id, owner, error, retryable ? "t" : "f", bo};
    static const char sql[] =
        "WITH d AS (UPDATE job SET"
        "   state = CASE WHEN NOT $4::bool OR attempts >= max_attempts THEN 'dead' ELSE 'queued' END,"
        "   finished_at = CASE WHEN NOT $4::bool OR attempts >= max_attempts THEN now() END,"
        "   last_error = $3, not_before = " BACKOFF(
            "$5") ","
                  "   lease_owner = NULL, lease_expires_at = NULL, updated_at = now()"
                  " WHERE id = $1 AND state = 'leased' AND lease_owner = $2"
                  " RETURNING id, submission_id, state, last_error)"
                  " SELECT (SELECT state FROM d),"
                  "  (SELECT json_build_object('event', 'dead', 'submission_id', d.submission_id,"
                  "     'job_id', d.id, 'course', co.code, 'assignment', a.code, 'student_ref',"
                  "     s.student_ref, 'error', d.last_error)::text"
                  "   FROM d JOIN submission s ON s.id = d.submission_id"
                  "   JOIN assignment a ON a.id = s.assignment_id JOIN course co ON co.id = a.course_id"
                  "   WHERE d.state = 'dead')";
    *event = NULL;
    state[0] = '\0';
    PGresult *r;
    sm_code rc = sm_db_query(s->conn, sql, 5, p, &r, err);
    if (rc)
        return rc;
    if (PQntuples(r) && !PQgetisnull(r, 0, 0))
        snprintf(state, 16, "%s", PQgetvalue(r, 0, 0));
    if (PQntuples(r) && !PQgetisnull(r, 0, 1))
        *event = json_loads(PQgetvalue(r, 0, 1), 0, NULL);
    PQclear(r);
    return SM_OK;
}

/* A lease past its end: the job ran past max_job_ms (charged), or its worker went quiet,
 * charged only when it had reported progress. Rows locked by another session (another
 * broker's reaper or RESULT) are skipped until the next round, so that no broker's loop waits
 * on another's transaction. */
#define OVERRAN "(j.leased_at + $2::bigint * interval '1 millisecond' <= now())"
#define REAP_CHARGED "(" OVERRAN " OR j.progressed_at IS NOT NULL)"

sm_code sm_store_reap(sm_store *s, int64_t backoff_ms, sm_reaped *out, sm_err *err)
{
    memset(out, 0, sizeof *out);
    char bo[24];
    i64(bo, backoff_ms);
    const char *p[] = {bo, s->max_job_ms};
    static const char sql[] =
        "WITH o AS (SELECT id AS oid, lease_owner AS owner FROM job"
        "   WHERE state = 'leased' AND lease_expires_at < now() FOR UPDATE SKIP LOCKED),"
        " d AS (UPDATE job j SET"
        "   state = CASE WHEN " REAP_CHARGED " AND j.attempts >= j.max_attempts THEN 'dead'"
        "     ELSE 'queued' END,"
        "   finished_at = CASE WHEN " REAP_CHARGED " AND j.attempts >= j.max_attempts"
        "     THEN now() END,"
        "   attempts = CASE WHEN " REAP_CHARGED " THEN j.attempts"
        "     ELSE GREATEST(j.attempts - 1, 0) END,"
        "   unstarted_losses = j.unstarted_losses + CASE WHEN " REAP_CHARGED " THEN 0 ELSE 1 END,"
        "   last_error = CASE WHEN " OVERRAN " THEN 'job ran past broker.max_job_ms (held by '"
        "       || o.owner || ')'"
        "     WHEN j.progressed_at IS NULL THEN 'lease expired (held by ' || o.owner || ')" UNCHARGED_NOTE
        "'"
        "     ELSE 'lease expired (held by ' || o.owner || ')' END,"
        "   not_before = CASE WHEN " REAP_CHARGED " THEN now() + ($1::bigint"
        "       * power(2, LEAST(GREATEST(j.attempts - 1, 0), 20))::bigint)"
        "       * interval '1 millisecond'"
        "     ELSE now() + ($1::bigint * power(2, LEAST(j.unstarted_losses, 10))::bigint)"
        "       * interval '1 millisecond' END,"
        "   lease_owner = NULL, lease_expires_at = NULL, updated_at = now()"
        " FROM o WHERE j.id = o.oid"
        " RETURNING j.id, j.submission_id, j.state, j.last_error, o.owner)"
        " SELECT COALESCE(json_agg(json_build_object('event', 'dead', 'submission_id',"
        "   d.submission_id, 'job_id', d.id, 'course', co.code, 'assignment', a.code,"
        "   'student_ref', s.student_ref, 'error', d.last_error))"
        "   FILTER (WHERE d.state = 'dead'), '[]')::text,"
        "  COALESCE(json_agg(json_build_array(d.id, d.owner)), '[]')::text"
        " FROM d JOIN submission s ON s.id = d.submission_id"
        " JOIN assignment a ON a.id = s.assignment_id JOIN course co ON co.id = a.course_id";
    PGresult *r;
    sm_code rc = sm_db_query(s->conn, sql, 2, p, &r, err);
    if (rc)
        return rc;
    bool have = PQntuples(r) == 1;
    out->events = have ? json_loads(PQgetvalue(r, 0, 0), 0, NULL) : json_array();
    out->jobs = have ? json_loads(PQgetvalue(r, 0, 1), 0, NULL) : json_array();
    PQclear(r);
    if (!out->events || !out->jobs) {
        sm_reaped_clear(out);
        return sm_err_set(err, SM_EINTERNAL, "database returned bad JSON");
    }
    return SM_OK;
}

void sm_reaped_clear(sm_reaped *r)
{
    json_decref(r->events);
    json_decref(r->jobs);
    memset(r, 0, sizeof *r);
}

/* The ids and points of a criteria list, in order (points rounded to cents), to compare a
 * RESULT's criteria with the assignment's. */
#define CRITERIA_KEYS(list, points)                                                        \
    "(SELECT jsonb_agg(jsonb_build_array(x.e->>'id', round((x.e->>'" points "')::numeric," \
    " 2)) ORDER BY x.o) FROM jsonb_array_elements(" list ") WITH ORDINALITY x(e, o))"

static const char result_sql[] =
    "WITH r AS (SELECT $2::jsonb AS b),"
    " j AS (UPDATE job SET state = 'done', lease_owner = NULL, lease_expires_at = NULL,"
    "         finished_at = now(), updated_at = now()"
    "       FROM r, submission s JOIN assignment a ON a.id = s.assignment_id"
    "       WHERE job.id = $1 AND job.state = 'leased' AND job.lease_owner = $4"
    "         AND s.id = job.submission_id"
    "         AND (r.b->'score' IS NULL"
    "           OR round((r.b->>'score')::numeric, 2) BETWEEN 0 AND a.max_score)"
    "         AND (r.b->'max_score' IS NULL"
    "           OR round((r.b->>'max_score')::numeric, 2) = a.max_score)"
    "         AND (r.b->'provisional' IS NULL OR round((r.b->'provisional'->>'score')::numeric,"
    "           2) BETWEEN 0 AND a.max_score)"
    "         AND COALESCE(round((r.b->'masked'->>'score')::numeric, 2)"
    "           BETWEEN 0 AND a.max_score, true)"
    "         AND (a.rubric_criteria IS NULL) = (jsonb_typeof(r.b->'criteria') IS DISTINCT FROM"
    "           'array')"
    "         AND (a.rubric_criteria IS NULL OR " CRITERIA_KEYS("a.rubric_criteria", "points") "           = " CRITERIA_KEYS(
        "NULLIF(r.b->'criteria', 'null')",
        "max_points") ")"
                      "       RETURNING job.id, job.submission_id, job.seed, a.max_score, a.rubric_criteria),"
                      " g AS (INSERT INTO grading (job_id, submission_id, status, score, max_score, summary,"
                      "         flags, confidence, model_name, model_hash, engine_version,"
                      "         prompt_template_version, sampling, seed, prompt_tokens, completion_tokens,"
                      "         timings, worker, provisional_score, provisional_basis, provisional_detail,"
                      "         masked_score, masked_margin, masked_differs, masked_summary, masked_detail)"
                      "       SELECT j.id, j.submission_id, b->>'status', (b->>'score')::numeric,"
                      "         j.max_score, b->>'summary',"
                      "         ARRAY(SELECT jsonb_array_elements_text(COALESCE(b->'flags', '[]'))),"
                      "         (b->>'confidence')::real, b->'model'->>'name', b->'model'->>'hash',"
                      "         b->>'engine_version', b->>'prompt_template_version',"
                      "         COALESCE(b->'sampling', '{}'), COALESCE((b->>'seed')::bigint, j.seed),"
                      "         COALESCE((b->'tokens'->>'prompt')::int, 0),"
                      "         COALESCE((b->'tokens'->>'completion')::int, 0), COALESCE(b->'timings', '{}'), $3,"
                      "         (b->'provisional'->>'score')::numeric, b->'provisional'->>'basis',"
                      "         b->'provisional'->>'detail',"
                      "         (b->'masked'->>'score')::numeric, (b->'masked'->>'margin')::numeric,"
                      "         (b->'masked'->>'differs')::boolean, b->'masked'->>'summary',"
                      "         (b->'masked') - 'score' - 'margin' - 'differs' - 'summary'"
                      "       FROM j, r RETURNING id, submission_id, status, score, max_score),"
                      " st AS (INSERT INTO critique_step (grading_id, step_no, quoted, verdict, explanation,"
                      "          agreement)"
                      "        SELECT g.id, (e->>'number')::int, COALESCE(e->>'quoted', ''), e->>'verdict',"
                      "          COALESCE(e->>'explanation', ''), (e->>'agreement')::real"
                      "        FROM g, r, jsonb_array_elements(COALESCE(r.b->'steps', '[]')) e),"
                      " rc AS (INSERT INTO reasoning_chain (grading_id, sample_no, text, tokens)"
                      "        SELECT g.id, (e->>'sample')::int, e->>'text', COALESCE((e->>'tokens')::int, 0)"
                      "        FROM g, r, jsonb_array_elements(COALESCE(r.b->'reasoning', '[]')) e),"
                      " ck AS (INSERT INTO check_result (grading_id, kind, name, passed, time_ms,"
                      "          output_excerpt, details)"
                      "        SELECT g.id, e->>'kind', COALESCE(e->>'name', ''), (e->>'passed')::boolean,"
                      "          (e->>'time_ms')::int, e->>'output_excerpt', COALESCE(e->'details', '{}')"
                      "        FROM g, r, jsonb_array_elements(COALESCE(r.b->'checks', '[]')) e),"
                      " gc AS (INSERT INTO grading_criterion (grading_id, position, criterion_id, description,"
                      "          max_points, verdict, points, evidence, agreement)"
                      "        SELECT g.id, x.o, x.e->>'id',"
                      "          COALESCE(j.rubric_criteria->(x.o::int - 1)->>'description', x.e->>'description',"
                      "            ''), (x.e->>'max_points')::numeric, x.e->>'verdict', (x.e->>'points')::numeric,"
                      "          COALESCE(x.e->>'evidence', ''), (x.e->>'agreement')::real"
                      "        FROM g, j, r, jsonb_array_elements(COALESCE(NULLIF(r.b->'criteria', 'null'), '[]'))"
                      "          WITH ORDINALITY x(e, o))"
                      " SELECT json_build_object('event', 'result', 'submission_id', g.submission_id,"
                      "   'job_id', $1::bigint, 'grading_id', g.id, 'course', co.code, 'assignment', a.code,"
                      "   'student_ref', s.student_ref, 'status', g.status, 'score', g.score,"
                      "   'max_score', g.max_score)::text"
                      " FROM g JOIN submission s ON s.id = g.submission_id"
                      " JOIN assignment a ON a.id = s.assignment_id JOIN course co ON co.id = a.course_id";

/* Why a RESULT's criteria do not fit the assignment's rubric_criteria (text, NULL when the
 * assignment has none): SM_EINVAL with the reason, or SM_OK when they fit. */
static sm_code criteria_refused(const char *rubric, const json_t *got, sm_err *err)
{
    if (!rubric)
        return json_is_array(got) ? sm_err_set(err, SM_EINVAL,
                                               "criteria given, but the assignment's rubric has "
                                               "no criteria")
                                  : SM_OK;
    if (!json_is_array(got))
        return sm_err_set(err, SM_EINVAL,
                          "the assignment's rubric has criteria: the result "
                          "needs \"criteria\"");
    json_t *want = json_loads(rubric, 0, NULL);
    size_t n = json_array_size(want);
    sm_code rc = SM_OK;
    if (json_array_size(got) != n)
        rc = sm_err_set(err, SM_EINVAL, "criteria hold %zu entries; the rubric has %zu",
                        json_array_size(got), n);
    for (size_t i = 0; !rc && i < n; i++) {
        const json_t *w = json_array_get(want, i), *g = json_array_get(got, i);
        const char *wid = json_string_value(json_object_get(w, "id"));
        const char *gid = json_string_value(json_object_get(g, "id"));
        double wp = json_number_value(json_object_get(w, "points"));
        double gp = json_number_value(json_object_get(g, "max_points"));
        if (!wid || !gid || strcmp(wid, gid))
            rc = sm_err_set(err, SM_EINVAL, "criteria[%zu] is \"%.32s\"; the rubric's is \"%.32s\"",
                            i, gid ? gid : "", wid ? wid : "");
        else if (fabs(wp - gp) > 0.005)
            rc = sm_err_set(err, SM_EINVAL,
                            "criteria[%zu].max_points %g differs from the rubric's %g", i, gp, wp);
    }
    json_decref(want);
    return rc;
}

/* Why result_sql stored nothing: the job is not leased to owner, or the scores do not fit
 * the assignment. */
static sm_code result_refused(sm_store *s, const sm_result_in *in, sm_err *err)
{
    char id[24];
    i64(id, in->job_id);
    const char *p[] = {id, in->owner};
    PGresult *r;
    sm_code rc = sm_db_query(s->conn,
                             "SELECT j.state, j.lease_owner IS NOT DISTINCT FROM $2,"
                             " a.max_score::text, a.rubric_criteria::text FROM job j"
                             " JOIN submission s ON s.id = j.submission_id"
                             " JOIN assignment a ON a.id = s.assignment_id WHERE j.id = $1",
                             2, p, &r, err);
    if (rc)
        return rc;
    if (PQntuples(r) == 0) {
        rc = sm_err_set(err, SM_ENOTFOUND, "no job %s", id);
    } else if (strcmp(PQgetvalue(r, 0, 0), "leased") || strcmp(PQgetvalue(r, 0, 1), "t")) {
        rc = sm_err_set(err, SM_ESTATE, "job %s is %s, not leased to this worker", id,
                        PQgetvalue(r, 0, 0));
    } else {
        const json_t *mx = json_object_get(in->body, "max_score");
        double max = strtod(PQgetvalue(r, 0, 2), NULL);
        double score = json_number_value(json_object_get(in->body, "score"));
        const json_t *prov = json_object_get(json_object_get(in->body, "provisional"), "score");
        const json_t *msk = json_object_get(json_object_get(in->body, "masked"), "score");
        if (mx && json_number_value(mx) != max)
            rc = sm_err_set(err, SM_EINVAL, "max_score %g differs from the assignment's %s",
                            json_number_value(mx), PQgetvalue(r, 0, 2));
        else if ((rc = criteria_refused(PQgetisnull(r, 0, 3) ? NULL : PQgetvalue(r, 0, 3),
                                        json_object_get(in->body, "criteria"), err)))
            ; /* explained */
        else if (prov && (json_number_value(prov) < 0 || json_number_value(prov) > max + 0.005))
            rc = sm_err_set(err, SM_EINVAL,
                            "provisional score %g is outside the assignment's range [0, %s]",
                            json_number_value(prov), PQgetvalue(r, 0, 2));
        else if (json_is_number(msk) && json_number_value(msk) > max + 0.005)
            rc = sm_err_set(err, SM_EINVAL,
                            "masked score %g is outside the assignment's range [0, %s]",
                            json_number_value(msk), PQgetvalue(r, 0, 2));
        else
            rc = sm_err_set(err, SM_EINVAL, "score %g is outside the assignment's range [0, %s]",
                            score, PQgetvalue(r, 0, 2));
    }
    PQclear(r);
    return rc;
}

/* The RESULT body as stored: its null members left out, since the validation reads a null as
 * absent (sm_json_*) and the SQL must too ("score": null is no score, "steps": null no steps). */
static char *result_text(const json_t *body)
{
    json_t *copy = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v)
    {
        if (copy && !json_is_null(v) && json_object_set(copy, k, v) != 0) {
            json_decref(copy);
            copy = NULL;
        }
    }
    char *text = copy ? json_dumps(copy, JSON_COMPACT) : NULL;
    json_decref(copy);
    return text;
}

sm_code sm_store_result(sm_store *s, const sm_result_in *in, json_t **event, sm_err *err)
{
    *event = NULL;
    char id[24];
    i64(id, in->job_id);
    char *text = result_text(in->body);
    if (!text)
        return sm_err_set(err, SM_ENOMEM, "cannot serialise a result");
    const char *p[] = {id, text, in->worker, in->owner};
    sm_code rc = query_json(s, result_sql, 4, p, event, err);
    free(text);
    if (rc || *event)
        return rc;
    return result_refused(s, in, err);
}

sm_code sm_store_cancel(sm_store *s, int64_t submission_id, json_t **reply, char *owner,
                        int64_t *job_id, sm_err *err)
{
    char id[24];
    i64(id, submission_id);
    const char *p[] = {id};
    owner[0] = '\0';
    *job_id = 0;
    *reply = NULL;
    PGresult *r;
    sm_code rc = sm_db_query(
        s->conn,
        "WITH o AS (SELECT id, lease_owner FROM job WHERE submission_id = $1"
        "   AND state IN ('queued', 'leased') FOR UPDATE),"
        " u AS (UPDATE job j SET state = 'cancelled', lease_owner = NULL,"
        "   lease_expires_at = NULL, finished_at = now(), updated_at = now()"
        "   FROM o WHERE j.id = o.id RETURNING j.id),"
        " a AS (INSERT INTO audit_log (actor, action, subject)"
        "   SELECT 'broker', 'cancel', 'submission ' || $1::text FROM u)"
        " SELECT (SELECT count(*) FROM submission WHERE id = $1::bigint),"
        "   o.id, o.lease_owner FROM o JOIN u USING (id)"
        " UNION ALL SELECT (SELECT count(*) FROM submission WHERE id = $1::bigint), NULL, NULL"
        " WHERE NOT EXISTS (SELECT 1 FROM o)",
        1, p, &r, err);
    if (rc)
        return rc;
    bool exists = PQntuples(r) && atoi(PQgetvalue(r, 0, 0)) > 0;
    bool cancelled = PQntuples(r) && !PQgetisnull(r, 0, 1);
    if (cancelled) {
        *job_id = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        if (!PQgetisnull(r, 0, 2))
            snprintf(owner, 128, "%s", PQgetvalue(r, 0, 2));
    }
    PQclear(r);
    if (!exists)
        return sm_err_set(err, SM_ENOTFOUND, "no submission %s", id);
    json_t *st;
    rc = sm_store_status(s, submission_id, NULL, &st, err);
    if (rc)
        return rc;
    *reply = json_pack("{s:I, s:b, s:O}", "submission_id", (json_int_t)submission_id, "cancelled",
                       cancelled, "state", json_object_get(st, "state"));
    json_decref(st);
    return SM_OK;
}

sm_code sm_store_status(sm_store *s, int64_t submission_id, const char *key, json_t **reply,
                        sm_err *err)
{
    return key ? sm_grades_status_by_key(s->conn, key, reply, err)
               : sm_grades_status(s->conn, submission_id, reply, err);
}

sm_code sm_store_result_get(sm_store *s, int64_t submission_id, bool reasoning, json_t **reply,
                            sm_err *err)
{
    return sm_grades_result(s->conn, submission_id, reasoning, reply, err);
}

sm_code sm_store_course_put(sm_store *s, const char *code, const char *title, const char *actor,
                            json_t **reply, sm_err *err)
{
    const char *p[] = {code, title, actor};
    sm_code rc = query_json(
        s,
        "WITH c AS (INSERT INTO course (code, title) VALUES ($1, COALESCE($2, ''))"
        "   ON CONFLICT (code) DO UPDATE SET title = COALESCE($2, course.title)"
        "   RETURNING id, code, (xmax = 0) AS created),"
        " l AS (INSERT INTO audit_log (actor, action, subject)"
        "   SELECT $3, CASE WHEN created THEN 'course create' ELSE 'course update' END,"
        "   code FROM c)"
        " SELECT json_build_object('course_id', id, 'code', code, 'created', created)::text"
        " FROM c",
        3, p, reply, err);
    if (!rc && !*reply)
        return sm_err_set(err, SM_EINTERNAL, "course upsert returned nothing");
    return rc;
}

/* Fields of an assignment settable through the protocol, and their SQL casts. */
#define ASSIGN_SET(f, cast) f " = CASE WHEN b ? '" f "' THEN (b->>'" f "')" cast " ELSE a." f " END"
#define ASSIGN_SETJ(f) f " = CASE WHEN b ? '" f "' THEN NULLIF(b->'" f "', 'null') ELSE a." f " END"

/* The rubric travels as text (assignment.rubric) or a list of criteria
 * (assignment.rubric_criteria): exactly one of them is set, or neither. */
#define RUBRIC_TEXT "(CASE WHEN jsonb_typeof(b->'rubric') = 'string' THEN b->>'rubric' END)"
#define RUBRIC_LIST "(CASE WHEN jsonb_typeof(b->'rubric') = 'array' THEN b->'rubric' END)"
#define RUBRIC_SUM \
    "(SELECT sum((e->>'points')::numeric) FROM jsonb_array_elements(" RUBRIC_LIST ") e)"
#define ASSIGN_RUBRIC                                                         \
    "rubric = CASE WHEN b ? 'rubric' THEN " RUBRIC_TEXT " ELSE a.rubric END," \
    " rubric_criteria = CASE WHEN b ? 'rubric' THEN " RUBRIC_LIST " ELSE a.rubric_criteria END"
/* A new rubric of criteria without a max_score makes it the sum of the points. */
#define ASSIGN_MAX_SCORE                                                    \
    "max_score = CASE WHEN b ? 'max_score' THEN (b->>'max_score')::numeric" \
    " WHEN " RUBRIC_LIST " IS NOT NULL THEN " RUBRIC_SUM " ELSE a.max_score END"

sm_code sm_store_assignment_put(sm_store *s, const json_t *body, bool update, const char *actor,
                                json_t **reply, sm_err *err)
{
    char *text = json_dumps(body, JSON_COMPACT);
    if (!text)
        return sm_err_set(err, SM_ENOMEM, "cannot serialise an assignment");
    const char *p[] = {text, actor};
    const char *course = json_string_value(json_object_get(body, "course"));
    const char *code = json_string_value(json_object_get(body, "code"));
    sm_code rc;
    if (!update) {
        rc = query_json(
            s,
            "WITH b AS (SELECT $1::jsonb AS b),"
            " c AS (SELECT id FROM course WHERE code = (SELECT b->>'course' FROM b)),"
            " ins AS (INSERT INTO assignment (course_id, code, title, kind, statement,"
            "   reference_solution, rubric, rubric_criteria, language, tests, answer_key,"
            "   max_score, model, sampling, answer_policy)"
            "   SELECT c.id, b->>'code', COALESCE(b->>'title', ''), b->>'kind', b->>'statement',"
            "     b->>'reference_solution', " RUBRIC_TEXT ", " RUBRIC_LIST ", b->>'language',"
            "     NULLIF(b->'tests', 'null'), b->>'answer_key',"
            "     COALESCE((b->>'max_score')::numeric, " RUBRIC_SUM ", 10), b->>'model',"
            "     NULLIF(b->'sampling', 'null'), NULLIF(b->'answer_policy', 'null')"
            "   FROM b, c ON CONFLICT (course_id, code) DO NOTHING RETURNING id, code),"
            " l AS (INSERT INTO audit_log (actor, action, subject)"
            "   SELECT $2, 'assignment create', (SELECT b->>'course' FROM b) || '/' || code"
            "   FROM ins)"
            " SELECT json_build_object('course_found', (SELECT count(*) FROM c) > 0,"
            "   'assignment_id', (SELECT id FROM ins))::text",
            2, p, reply, err);
    } else {
        rc = query_json(
            s,
            "WITH b AS (SELECT $1::jsonb AS b),"
            " u AS (UPDATE assignment a SET " ASSIGN_SET("title", "") "," ASSIGN_SET("kind", "") "," ASSIGN_SET(
                "statement",
                "") "," ASSIGN_SET("reference_solution",
                                   "") "," ASSIGN_RUBRIC
                                       "," ASSIGN_SET("language", "") "," ASSIGN_SETJ("tests") "," ASSIGN_SET(
                                           "answer_key",
                                           "") "," ASSIGN_MAX_SCORE
                                               "," ASSIGN_SET("model", "") "," ASSIGN_SETJ("sampling") "," ASSIGN_SETJ(
                                                   "answer_policy") ", updated_at = now()"
                                                                    "   FROM b, course c WHERE c.id = a.course_id AND c.code = b->>'course'"
                                                                    "   AND a.code = b->>'code' RETURNING a.id, a.code),"
                                                                    " l AS (INSERT INTO audit_log (actor, action, subject, details)"
                                                                    "   SELECT $2, 'assignment update', (SELECT b->>'course' FROM b) || '/' || code,"
                                                                    "   (SELECT b FROM b) FROM u)"
                                                                    " SELECT json_build_object('course_found', true,"
                                                                    "   'assignment_id', (SELECT id FROM u))::text",
            2, p, reply, err);
    }
    free(text);
    if (rc)
        return rc;
    json_t *r = *reply;
    *reply = NULL;
    bool course_found = json_is_true(json_object_get(r, "course_found"));
    json_t *aid = json_object_get(r, "assignment_id");
    if (!course_found)
        rc = sm_err_set(err, SM_ENOTFOUND, "unknown course %s", course);
    else if (json_is_null(aid) && !update)
        rc = sm_err_set(err, SM_ESTATE, "assignment %s/%s exists already (use update)", course,
                        code);
    else if (json_is_null(aid))
        rc = sm_err_set(err, SM_ENOTFOUND, "unknown assignment %s/%s", course, code);
    else
        *reply = json_pack("{s:O, s:s, s:s, s:b}", "assignment_id", aid, "course", course, "code",
                           code, "created", !update);
    json_decref(r);
    return rc;
}

sm_code sm_store_assignment_get(sm_store *s, const char *course, const char *code, json_t **reply,
                                sm_err *err)
{
    const char *p[] = {course, code};
    sm_code rc = query_json(
        s,
        "SELECT json_build_object('assignment_id', a.id, 'course', c.code, 'code', a.code,"
        "  'title', a.title, 'kind', a.kind, 'statement', a.statement,"
        "  'reference_solution', a.reference_solution,"
        "  'rubric', COALESCE(a.rubric_criteria, to_jsonb(a.rubric)),"
        "  'language', a.language, 'tests', a.tests, 'answer_key', a.answer_key,"
        "  'max_score', a.max_score, 'model', a.model, 'sampling', a.sampling,"
        "  'answer_policy', a.answer_policy,"
        "  'created_at', a.created_at, 'updated_at', a.updated_at,"
        "  'submissions', (SELECT count(*) FROM submission s WHERE s.assignment_id = a.id))::text"
        " FROM assignment a JOIN course c ON c.id = a.course_id"
        " WHERE c.code = $1 AND a.code = $2",
        2, p, reply, err);
    if (!rc && !*reply)
        return sm_err_set(err, SM_ENOTFOUND, "unknown assignment %s/%s", course, code);
    return rc;
}
