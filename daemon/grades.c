/* grades: STATUS, RESULT, final block and LIST queries shared by the broker and the HTTP API
 * (grades.h). PostgreSQL builds the JSON; the final block is sm_final() of schema 006. */
#include "grades.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_db.h"

/* Runs sql and parses column 0 of row 0 as JSON into *out (NULL when no row or SQL NULL). */
static sm_code query_json(PGconn *db, const char *sql, int n, const char *const *p, json_t **out,
                          sm_err *err)
{
    *out = NULL;
    PGresult *r;
    sm_code rc = sm_db_query(db, sql, n, p, &r, err);
    if (rc)
        return rc;
    if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
        json_error_t je;
        *out = json_loads(PQgetvalue(r, 0, 0), JSON_DECODE_ANY, &je);
        if (!*out)
            rc = sm_err_set(err, SM_EINTERNAL, "database returned bad JSON: %s", je.text);
    }
    PQclear(r);
    return rc;
}

static const char status_sql[] =
    "SELECT json_build_object('submission_id', s.id, 'idempotency_key', s.idempotency_key,"
    "  'course', co.code, 'assignment', a.code, 'student_ref', s.student_ref,"
    "  'received_at', s.received_at, 'updated_at', s.updated_at, 'job_id', j.id,"
    "  'state', j.state,"
    "  'priority', CASE j.priority WHEN 0 THEN 'interactive' ELSE 'batch' END,"
    "  'attempts', j.attempts, 'max_attempts', j.max_attempts, 'last_error', j.last_error,"
    "  'progress_tokens', j.progress_tokens, 'unstarted_losses', j.unstarted_losses,"
    "  'not_before', j.not_before,"
    "  'finished_at', j.finished_at,"
    "  'grading', (SELECT json_build_object('grading_id', g.id, 'status', g.status,"
    "     'score', g.score, 'max_score', g.max_score,"
    "     'provisional_score', g.provisional_score, 'masked_score', g.masked_score,"
    "     'masked_differs', g.masked_differs) FROM grading g WHERE g.job_id = j.id),"
    "  'final', sm_final(s.id)"
    " )::text FROM submission s JOIN assignment a ON a.id = s.assignment_id"
    " JOIN course co ON co.id = a.course_id"
    " LEFT JOIN LATERAL (SELECT * FROM job WHERE submission_id = s.id"
    "   ORDER BY id DESC LIMIT 1) j ON true"
    " WHERE s.id = $1::bigint OR s.idempotency_key = $2";

static sm_code status(PGconn *db, int64_t submission_id, const char *key, json_t **out, sm_err *err)
{
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, submission_id);
    const char *p[] = {key ? NULL : id, key};
    sm_code rc = query_json(db, status_sql, 2, p, out, err);
    if (!rc && !*out)
        return key ? sm_err_set(err, SM_ENOTFOUND, "no submission with that idempotency key")
                   : sm_err_set(err, SM_ENOTFOUND, "no submission %s", id);
    return rc;
}

sm_code sm_grades_status(PGconn *db, int64_t submission_id, json_t **out, sm_err *err)
{
    return status(db, submission_id, NULL, out, err);
}

sm_code sm_grades_status_by_key(PGconn *db, const char *key, json_t **out, sm_err *err)
{
    return status(db, 0, key, out, err);
}

static const char result_sql[] =
    "SELECT json_build_object('submission_id', g.submission_id, 'job_id', g.job_id,"
    "  'grading_id', g.id, 'course', co.code, 'assignment', a.code,"
    "  'student_ref', s.student_ref, 'status', g.status, 'score', g.score,"
    "  'max_score', g.max_score, 'summary', g.summary, 'flags', to_json(g.flags),"
    "  'confidence', g.confidence, 'model', json_build_object('name', g.model_name,"
    "  'hash', g.model_hash), 'engine_version', g.engine_version,"
    "  'prompt_template_version', g.prompt_template_version, 'sampling', g.sampling,"
    "  'seed', g.seed, 'tokens', json_build_object('prompt', g.prompt_tokens,"
    "  'completion', g.completion_tokens), 'timings', g.timings, 'worker', g.worker,"
    "  'created_at', g.created_at,"
    "  'provisional', CASE WHEN g.provisional_score IS NOT NULL THEN json_build_object("
    "     'score', g.provisional_score, 'basis', g.provisional_basis,"
    "     'detail', g.provisional_detail) END,"
    "  'masked', CASE WHEN g.masked_differs IS NOT NULL THEN (jsonb_build_object("
    "     'score', g.masked_score, 'margin', g.masked_margin, 'differs', g.masked_differs,"
    "     'summary', g.masked_summary) || (g.masked_detail - CASE WHEN $2::bool THEN ''"
    "     ELSE 'reasoning' END)) END,"
    "  'steps', COALESCE((SELECT json_agg(json_build_object('number', c.step_no,"
    "     'quoted', c.quoted, 'verdict', c.verdict, 'explanation', c.explanation,"
    "     'agreement', c.agreement) ORDER BY c.step_no) FROM critique_step c"
    "     WHERE c.grading_id = g.id), '[]'),"
    "  'checks', COALESCE((SELECT json_agg(json_build_object('kind', k.kind, 'name', k.name,"
    "     'passed', k.passed, 'time_ms', k.time_ms, 'output_excerpt', k.output_excerpt,"
    "     'details', k.details) ORDER BY k.id) FROM check_result k"
    "     WHERE k.grading_id = g.id), '[]'),"
    "  'reasoning', CASE WHEN $2::bool THEN COALESCE((SELECT json_agg(json_build_object("
    "     'sample', rc.sample_no, 'text', rc.text, 'tokens', rc.tokens)"
    "     ORDER BY rc.sample_no) FROM reasoning_chain rc WHERE rc.grading_id = g.id), '[]')"
    "     END,"
    "  'criteria', sm_grading_criteria(g.id),"
    "  'final', sm_final(g.submission_id))::text"
    " FROM grading g JOIN submission s ON s.id = g.submission_id"
    " JOIN assignment a ON a.id = s.assignment_id JOIN course co ON co.id = a.course_id"
    " WHERE g.submission_id = $1 ORDER BY g.created_at DESC, g.id DESC LIMIT 1";

sm_code sm_grades_result(PGconn *db, int64_t submission_id, bool reasoning, json_t **out,
                         sm_err *err)
{
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, submission_id);
    const char *p[] = {id, reasoning ? "t" : "f"};
    sm_code rc = query_json(db, result_sql, 2, p, out, err);
    if (rc == SM_OK && *out && !reasoning)
        json_object_del(*out, "reasoning"); /* present only when asked (docs/protocol.md) */
    if (rc == SM_OK && *out && !json_array_size(json_object_get(*out, "criteria")))
        json_object_del(*out, "criteria"); /* only for an assignment scored by criteria */
    if (rc || *out)
        return rc;
    json_t *st;
    rc = sm_grades_status(db, submission_id, &st, err);
    if (rc)
        return rc;
    const char *state = json_string_value(json_object_get(st, "state"));
    rc = sm_err_set(err, SM_ESTATE, "submission %s has no grading yet (state %s)", id,
                    state ? state : "none");
    json_decref(st);
    return rc;
}

sm_code sm_grades_final(PGconn *db, int64_t submission_id, json_t **out, sm_err *err)
{
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, submission_id);
    const char *p[] = {id};
    sm_code rc = query_json(db,
                            "SELECT COALESCE(sm_final(s.id), 'null'::jsonb)::text FROM submission s"
                            " WHERE s.id = $1::bigint",
                            1, p, out, err);
    if (!rc && !*out)
        return sm_err_set(err, SM_ENOTFOUND, "no submission %s", id);
    return rc;
}

/* The position of a LIST cursor: the change_xid and id of the last submission seen. */
typedef struct list_pos {
    uint64_t xid;
    int64_t id;
} list_pos;

#define CURSOR_PREFIX "c1."

static bool digits(const char *s, const char *end)
{
    if (s == end || end - s > 19)
        return false;
    for (const char *c = s; c < end; c++)
        if (!isdigit((unsigned char)*c))
            return false;
    return true;
}

/* Parses "c1.XID.ID" (decimal). */
static sm_code cursor_parse(const char *s, list_pos *out, sm_err *err)
{
    size_t n = strlen(CURSOR_PREFIX);
    const char *dot = strncmp(s, CURSOR_PREFIX, n) == 0 ? strchr(s + n, '.') : NULL;
    if (!dot || !digits(s + n, dot) || !digits(dot + 1, dot + 1 + strlen(dot + 1)))
        return sm_err_set(err, SM_EINVAL, "field \"cursor\" is not a cursor from a LIST reply");
    out->xid = strtoull(s + n, NULL, 10);
    out->id = strtoll(dot + 1, NULL, 10);
    if (out->id < 0)
        return sm_err_set(err, SM_EINVAL, "field \"cursor\" is not a cursor from a LIST reply");
    return SM_OK;
}

static json_t *cursor_make(list_pos p)
{
    char buf[64];
    snprintf(buf, sizeof buf, CURSOR_PREFIX "%" PRIu64 ".%" PRId64, p.xid, p.id);
    return json_string(buf);
}

static bool two(const char *s, int lo, int hi)
{
    if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]))
        return false;
    int v = (s[0] - '0') * 10 + (s[1] - '0');
    return v >= lo && v <= hi;
}

bool sm_grades_rfc3339_ok(const char *s)
{
    if (!s || strlen(s) < 20 || strlen(s) > 40)
        return false;
    for (int i = 0; i < 4; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    if (s[4] != '-' || !two(s + 5, 1, 12) || s[7] != '-' || !two(s + 8, 1, 31) ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !two(s + 11, 0, 23) || s[13] != ':' ||
        !two(s + 14, 0, 59) || s[16] != ':' || !two(s + 17, 0, 60))
        return false;
    const char *z = s + 19;
    if (*z == '.') {
        z++;
        if (!isdigit((unsigned char)*z))
            return false;
        while (isdigit((unsigned char)*z))
            z++;
    }
    if ((*z == 'Z' || *z == 'z') && z[1] == '\0')
        return true;
    return (*z == '+' || *z == '-') && two(z + 1, 0, 23) && z[3] == ':' && two(z + 4, 0, 59) &&
           z[6] == '\0';
}

/* One page in (change_xid, id) order after the position $2/$3, only of rows whose change_xid
 * lies below the snapshot's xmin (every transaction below it has ended, so no row can later
 * appear behind the cursor); $5 + 1 rows are read to know whether more follow. */
static const char list_sql[] =
    "WITH snap AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),"
    " page AS (SELECT s.id, s.change_xid, s.student_ref, s.idempotency_key, s.updated_at"
    "   FROM submission s, snap WHERE s.assignment_id = $1::bigint"
    "   AND s.change_xid < snap.xmin AND (s.change_xid, s.id) > ($2::xid8, $3::bigint)"
    "   AND ($4::timestamptz IS NULL OR s.updated_at >= $4::timestamptz)"
    "   ORDER BY s.change_xid, s.id LIMIT $5::int + 1),"
    " shown AS (SELECT * FROM page ORDER BY change_xid, id LIMIT $5::int)"
    " SELECT json_build_object("
    "  'items', COALESCE(json_agg(json_build_object('submission_id', p.id,"
    "     'student_ref', p.student_ref, 'idempotency_key', p.idempotency_key,"
    "     'state', j.state, 'updated_at', p.updated_at,"
    "     'grading', (SELECT json_build_object('grading_id', g.id, 'status', g.status,"
    "        'score', g.score, 'max_score', g.max_score) FROM grading g WHERE g.job_id = j.id),"
    "     'final', sm_final(p.id)) ORDER BY p.change_xid, p.id), '[]'),"
    "  'more', (SELECT count(*) FROM page) > $5::int,"
    "  'last_xid', (array_agg(p.change_xid::text ORDER BY p.change_xid DESC, p.id DESC))[1],"
    "  'last_id', max(p.id) FILTER (WHERE p.change_xid = (SELECT max(change_xid) FROM shown)),"
    "  'xmin', (SELECT xmin::text FROM snap))::text"
    " FROM shown p LEFT JOIN LATERAL (SELECT * FROM job WHERE submission_id = p.id"
    "   ORDER BY id DESC LIMIT 1) j ON true";

static sm_code list_args(const sm_list_query *q, list_pos *from, int *limit, sm_err *err)
{
    *from = (list_pos){0, 0};
    *limit = q->limit == 0 ? SM_LIST_DEFAULT : q->limit;
    if (*limit < 1 || *limit > SM_LIST_MAX)
        return sm_err_set(err, SM_EINVAL, "field \"limit\" must be 1..%d", SM_LIST_MAX);
    if (q->cursor)
        return cursor_parse(q->cursor, from, err);
    if (q->updated_since && !sm_grades_rfc3339_ok(q->updated_since))
        return sm_err_set(err, SM_EINVAL,
                          "field \"updated_since\" must be an RFC 3339 date-time such as "
                          "2026-12-01T08:00:00Z");
    return SM_OK;
}

/* Moves the page's bookkeeping (last_xid, last_id, xmin) into next_cursor. A full page
 * continues after its last row; the last page continues at the snapshot's xmin, below which
 * every row has now been shown. */
static void list_finish(json_t *page, list_pos from)
{
    bool more = json_is_true(json_object_get(page, "more"));
    list_pos next = from;
    const char *lx = json_string_value(json_object_get(page, "last_xid"));
    if (lx) {
        next.xid = strtoull(lx, NULL, 10);
        next.id = json_integer_value(json_object_get(page, "last_id"));
    }
    const char *xm = json_string_value(json_object_get(page, "xmin"));
    uint64_t xmin = xm ? strtoull(xm, NULL, 10) : 0;
    if (!more && xmin > next.xid)
        next = (list_pos){xmin, 0};
    json_object_set_new(page, "next_cursor", cursor_make(next));
    json_object_del(page, "last_xid");
    json_object_del(page, "last_id");
    json_object_del(page, "xmin");
}

sm_code sm_grades_list(PGconn *db, const sm_list_query *q, json_t **page, sm_err *err)
{
    *page = NULL;
    list_pos from;
    int limit;
    sm_code rc = list_args(q, &from, &limit, err);
    if (rc)
        return rc;
    char aid[24], xid[24], id[24], lim[16];
    snprintf(aid, sizeof aid, "%" PRId64, q->assignment_id);
    snprintf(xid, sizeof xid, "%" PRIu64, from.xid);
    snprintf(id, sizeof id, "%" PRId64, from.id);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {aid, xid, id, q->cursor ? NULL : q->updated_since, lim};
    rc = query_json(db, list_sql, 5, p, page, err);
    if (!rc && !json_is_object(*page)) {
        json_decref(*page);
        *page = NULL;
        return sm_err_set(err, SM_EINTERNAL, "LIST returned no page");
    }
    if (!rc)
        list_finish(*page, from);
    return rc;
}
