/* sm_similarity_db: the similarity check of one assignment over PostgreSQL (see
 * sm_similarity_db.h): loads the latest submission of each student and the starter code,
 * fingerprints them, pairs them (sm_similarity_class.c), locates the matching regions and
 * stores the run in one transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sm_db.h"
#include "sm_similarity.h"
#include "sm_similarity_db.h"

/* One comparison per assignment at a time, across brokers and the CLI: a session advisory lock
 * in its own space (two-int form), held while the class is compared and stored. */
#define RUN_LOCK_CLASS 1936289138
#define STR_(x) #x
#define STR(x) STR_(x)
#define RUN_LOCK "(" STR(RUN_LOCK_CLASS) ", ($1::bigint % 2147483648)::int)"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* One JSON document from a query's single text cell. */
static sm_code query_json(PGconn *db, const char *sql, int np, const char *const *p, json_t **out,
                          sm_err *err)
{
    PGresult *r;
    sm_code rc = sm_db_query(db, sql, np, p, &r, err);
    if (rc != SM_OK)
        return rc;
    if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
        PQclear(r);
        return sm_err_set(err, SM_ENOTFOUND, "similarity: not found");
    }
    json_error_t je;
    *out = json_loads(PQgetvalue(r, 0, 0), JSON_DECODE_ANY, &je);
    PQclear(r);
    if (!*out)
        return sm_err_set(err, SM_EINTERNAL, "similarity: bad JSON from the database: %s", je.text);
    return SM_OK;
}

sm_code sm_sim_db_assignment(PGconn *db, const char *course, const char *assignment, int64_t *id,
                             sm_err *err)
{
    const char *p[] = {course, assignment};
    PGresult *r;
    sm_code rc = sm_db_query(db,
                             "SELECT a.id FROM assignment a JOIN course c ON c.id = a.course_id"
                             " WHERE c.code = $1 AND a.code = $2",
                             2, p, &r, err);
    if (rc != SM_OK)
        return rc;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return sm_err_set(err, SM_ENOTFOUND, "no assignment %s in course %s", assignment, course);
    }
    *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return SM_OK;
}

sm_code sm_sim_db_configure(PGconn *db, int64_t assignment_id, const sm_sim_settings *s,
                            sm_err *err)
{
    char id[24], th[32];
    snprintf(id, sizeof id, "%lld", (long long)assignment_id);
    snprintf(th, sizeof th, "%.6f", s->threshold);
    if (s->threshold > 1)
        return sm_err_set(err, SM_EINVAL, "the threshold must be above 0 and at most 1");
    const char *p[] = {id, s->threshold != 0 ? "1" : NULL, s->threshold > 0 ? th : NULL,
                       s->starter_code ? "1" : NULL,
                       s->starter_code && *s->starter_code ? s->starter_code : NULL};
    return sm_db_query(
        db,
        "INSERT INTO similarity_setting AS s (assignment_id, threshold, starter_code)"
        " VALUES ($1, $3::real, $5)"
        " ON CONFLICT (assignment_id) DO UPDATE SET"
        "  threshold = CASE WHEN $2::text IS NULL THEN s.threshold"
        "                   ELSE $3::real END,"
        "  starter_code = CASE WHEN $4::text IS NULL THEN s.starter_code"
        "                      ELSE $5 END,"
        "  updated_at = now()",
        5, p, NULL, err);
}

/* What one run works on. */
typedef struct sim_input {
    PGresult *subs; /* id, student_ref, content */
    PGresult *asg;  /* kind, language, threshold, starter_code */
    sm_sim_lang lang;
    double threshold;
    sm_sim_doc *docs;
    sm_sim_doc base;
    bool has_base;
} sim_input;

static void input_free(sim_input *in)
{
    int n = in->subs ? PQntuples(in->subs) : 0;
    for (int i = 0; in->docs && i < n; i++)
        sm_sim_doc_free(&in->docs[i]);
    free(in->docs);
    sm_sim_doc_free(&in->base);
    PQclear(in->subs);
    PQclear(in->asg);
}

static sm_code load(PGconn *db, const sm_sim_run_req *req, sim_input *in, sm_err *err)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)req->assignment_id);
    const char *p[] = {id};
    sm_code rc =
        sm_db_query(db,
                    "SELECT a.kind, COALESCE(a.language, (SELECT s.language FROM submission s"
                    "   WHERE s.assignment_id = a.id AND s.language IS NOT NULL LIMIT 1)),"
                    " st.threshold, st.starter_code"
                    " FROM assignment a LEFT JOIN similarity_setting st ON st.assignment_id = a.id"
                    " WHERE a.id = $1",
                    1, p, &in->asg, err);
    if (rc != SM_OK)
        return rc;
    if (PQntuples(in->asg) != 1)
        return sm_err_set(err, SM_ENOTFOUND, "no such assignment");
    const char *lang = PQgetisnull(in->asg, 0, 1) ? NULL : PQgetvalue(in->asg, 0, 1);
    rc = sm_sim_lang_parse(PQgetvalue(in->asg, 0, 0), lang, &in->lang, err);
    if (rc != SM_OK)
        return rc;
    in->threshold = req->threshold > 0            ? req->threshold
                    : !PQgetisnull(in->asg, 0, 2) ? strtod(PQgetvalue(in->asg, 0, 2), NULL)
                                                  : SM_SIM_DEFAULT_THRESHOLD;
    return sm_db_query(db,
                       "SELECT DISTINCT ON (student_ref) id, student_ref, content FROM submission"
                       " WHERE assignment_id = $1 ORDER BY student_ref, received_at DESC, id DESC",
                       1, p, &in->subs, err);
}

static sm_code fingerprint_all(sim_input *in, sm_err *err)
{
    int n = PQntuples(in->subs);
    if ((size_t)n > SM_SIM_MAX_DOCS)
        return sm_err_set(err, SM_ELIMIT, "similarity: %d students, at most %u are compared", n,
                          SM_SIM_MAX_DOCS);
    in->docs = calloc(n ? (size_t)n : 1, sizeof *in->docs);
    if (!in->docs)
        return sm_err_set(err, SM_ENOMEM, "similarity: out of memory");
    sm_sim_opts o = {.lang = in->lang};
    for (int i = 0; i < n; i++) {
        sm_code rc = sm_sim_fingerprint(&o, PQgetvalue(in->subs, i, 2),
                                        (size_t)PQgetlength(in->subs, i, 2), &in->docs[i], err);
        if (rc != SM_OK)
            return rc;
    }
    if (!PQgetisnull(in->asg, 0, 3) && PQgetlength(in->asg, 0, 3) > 0) {
        sm_sim_opts ob = {.lang = in->lang, .all = true};
        in->has_base = true;
        return sm_sim_fingerprint(&ob, PQgetvalue(in->asg, 0, 3),
                                  (size_t)PQgetlength(in->asg, 0, 3), &in->base, err);
    }
    return SM_OK;
}

static json_t *place(const char *text, size_t len, sm_sim_range r)
{
    sm_sim_pos s = sm_sim_locate(text, len, r.start);
    sm_sim_pos e = sm_sim_locate(text, len, r.end);
    return json_pack("{s:I,s:I,s:I,s:I}", "start", (json_int_t)s.chr, "end", (json_int_t)e.chr,
                     "line", (json_int_t)s.line, "end_line", (json_int_t)e.line);
}

/* The regions of a pair as JSON, with character offsets and lines. */
static json_t *regions_json(const sim_input *in, size_t a, size_t b, const sm_sim_match *m)
{
    const char *ta = PQgetvalue(in->subs, (int)a, 2), *tb = PQgetvalue(in->subs, (int)b, 2);
    size_t la = (size_t)PQgetlength(in->subs, (int)a, 2);
    size_t lb = (size_t)PQgetlength(in->subs, (int)b, 2);
    json_t *arr = json_array();
    for (size_t i = 0; i < m->nregions; i++)
        json_array_append_new(arr, json_pack("{s:o,s:o}", "a", place(ta, la, m->regions[i].a), "b",
                                             place(tb, lb, m->regions[i].b)));
    return arr;
}

static sm_code store_pair(PGconn *db, const char *run, const sim_input *in, const sm_sim_pair *pr,
                          const sm_sim_hashset *ex, sm_err *err)
{
    sm_sim_match m;
    sm_code rc = sm_sim_compare(&in->docs[pr->a], &in->docs[pr->b], ex, &m, err);
    if (rc != SM_OK)
        return rc;
    json_t *reg = regions_json(in, pr->a, pr->b, &m);
    char *regs = json_dumps(reg, JSON_COMPACT);
    json_decref(reg);
    char score[32], ca[32], cb[32], jac[32], sh[24];
    snprintf(score, sizeof score, "%.4f", pr->score);
    snprintf(ca, sizeof ca, "%.4f", m.contain_a);
    snprintf(cb, sizeof cb, "%.4f", m.contain_b);
    snprintf(jac, sizeof jac, "%.4f", m.jaccard);
    snprintf(sh, sizeof sh, "%zu", pr->shared);
    const char *p[] = {run,
                       PQgetvalue(in->subs, (int)pr->a, 0),
                       PQgetvalue(in->subs, (int)pr->b, 0),
                       score,
                       ca,
                       cb,
                       jac,
                       sh,
                       regs ? regs : "[]"};
    rc = sm_db_query(db,
                     "INSERT INTO similarity_pair (run_id, submission_a, submission_b, score,"
                     " contain_a, contain_b, jaccard, shared, regions)"
                     " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)",
                     9, p, NULL, err);
    free(regs);
    sm_sim_match_free(&m);
    return rc;
}

typedef struct run_stats {
    double fp_ms, pair_ms;
    size_t npairs;
} run_stats;

static sm_code store(PGconn *db, const sm_sim_run_req *req, const sim_input *in,
                     const sm_sim_pair *pairs, const sm_sim_hashset *ex, const run_stats *st,
                     int64_t *run_id, sm_err *err)
{
    char id[24], th[32], subs[24], np[24], ms[24];
    snprintf(id, sizeof id, "%lld", (long long)req->assignment_id);
    snprintf(th, sizeof th, "%.4f", in->threshold);
    snprintf(subs, sizeof subs, "%d", PQntuples(in->subs));
    snprintf(np, sizeof np, "%zu", st->npairs);
    snprintf(ms, sizeof ms, "%.0f", st->fp_ms + st->pair_ms);
    const char *method = in->lang == SM_SIM_TEXT ? "ngram" : "winnowing";
    const char *params = in->lang == SM_SIM_TEXT ? "{\"n\": 5}" : "{\"k\": 12, \"w\": 8}";
    const char *p[] = {id,
                       th,
                       method,
                       params,
                       subs,
                       np,
                       ms,
                       req->started_by ? req->started_by : "unknown",
                       in->has_base ? "true" : "false"};
    PGresult *r;
    sm_code rc = sm_db_query(
        db,
        "WITH old AS (DELETE FROM similarity_run WHERE assignment_id = $1)"
        " INSERT INTO similarity_run (assignment_id, threshold, method, params, submissions,"
        " pairs, elapsed_ms, started_by)"
        " VALUES ($1, $2, $3, $4::jsonb || jsonb_build_object('starter_excluded', $9::boolean),"
        " $5, $6, $7, $8) RETURNING id",
        9, p, &r, err);
    if (rc != SM_OK)
        return rc;
    char run[24];
    snprintf(run, sizeof run, "%s", PQgetvalue(r, 0, 0));
    *run_id = strtoll(run, NULL, 10);
    PQclear(r);
    for (size_t i = 0; i < st->npairs && rc == SM_OK; i++)
        rc = store_pair(db, run, in, &pairs[i], ex, err);
    return rc;
}

static sm_code compare_and_store(PGconn *db, const sm_sim_run_req *req, sim_input *in,
                                 json_t **summary, sm_err *err)
{
    run_stats st = {0};
    double t0 = now_ms();
    sm_code rc = fingerprint_all(in, err);
    if (rc != SM_OK)
        return rc;
    double t1 = now_ms();
    sm_sim_class_opts co = {.threshold = in->threshold, .base = in->has_base ? &in->base : NULL};
    sm_sim_pair *pairs;
    sm_sim_hashset ex;
    rc = sm_sim_class_pairs(in->docs, (size_t)PQntuples(in->subs), &co, &pairs, &st.npairs, &ex,
                            err);
    if (rc != SM_OK)
        return rc;
    st.fp_ms = t1 - t0;
    st.pair_ms = now_ms() - t1;
    int64_t run_id = 0;
    rc = sm_db_exec(db, "BEGIN", err);
    if (rc == SM_OK)
        rc = store(db, req, in, pairs, &ex, &st, &run_id, err);
    if (rc == SM_OK)
        rc = sm_db_exec(db, "COMMIT", err);
    else
        PQclear(PQexec(db, "ROLLBACK"));
    free(pairs);
    sm_sim_hashset_free(&ex);
    if (rc != SM_OK)
        return rc;
    *summary = json_pack("{s:I,s:I,s:s,s:f,s:i,s:I,s:f,s:f,s:b}", "run_id", (json_int_t)run_id,
                         "assignment_id", (json_int_t)req->assignment_id, "method",
                         in->lang == SM_SIM_TEXT ? "ngram" : "winnowing", "threshold",
                         in->threshold, "submissions", PQntuples(in->subs), "pairs",
                         (json_int_t)st.npairs, "fingerprint_ms", st.fp_ms, "pair_ms", st.pair_ms,
                         "starter_excluded", in->has_base);
    return *summary ? SM_OK : sm_err_set(err, SM_ENOMEM, "similarity: out of memory");
}

/* Takes (lock) or releases the assignment's run lock; *got says whether it was free. */
static sm_code run_lock(PGconn *db, int64_t assignment_id, bool lock, bool *got, sm_err *err)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)assignment_id);
    const char *p[] = {id};
    PGresult *r;
    sm_code rc = sm_db_query(
        db, lock ? "SELECT pg_try_advisory_lock" RUN_LOCK : "SELECT pg_advisory_unlock" RUN_LOCK, 1,
        p, &r, err);
    if (rc != SM_OK)
        return rc;
    *got = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return SM_OK;
}

sm_code sm_sim_db_run(PGconn *db, const sm_sim_run_req *req, json_t **summary, sm_err *err)
{
    *summary = NULL;
    bool got = false;
    sm_code rc = run_lock(db, req->assignment_id, true, &got, err);
    if (rc != SM_OK)
        return rc;
    if (!got)
        return sm_err_set(err, SM_ESTATE,
                          "a comparison of this assignment is already running; try again when it "
                          "has finished");
    sim_input in = {0};
    rc = load(db, req, &in, err);
    if (rc == SM_OK)
        rc = compare_and_store(db, req, &in, summary, err);
    input_free(&in);
    sm_err ignored;
    run_lock(db, req->assignment_id, false, &got, &ignored);
    return rc;
}

sm_code sm_sim_db_pairs(PGconn *db, int64_t assignment_id, json_t **out, sm_err *err)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)assignment_id);
    const char *p[] = {id};
    return query_json(
        db,
        "WITH r AS (SELECT * FROM similarity_run WHERE assignment_id = $1 ORDER BY id DESC"
        "  LIMIT 1)"
        " SELECT jsonb_build_object("
        "  'run', (SELECT to_jsonb(r) - 'assignment_id' FROM r),"
        "  'threshold', COALESCE((SELECT threshold FROM similarity_setting"
        "     WHERE assignment_id = $1), 0.5),"
        "  'starter_code', (SELECT starter_code IS NOT NULL FROM similarity_setting"
        "     WHERE assignment_id = $1),"
        "  'pairs', COALESCE((SELECT jsonb_agg(jsonb_build_object('id', p.id, 'score', p.score,"
        "     'contain_a', p.contain_a, 'contain_b', p.contain_b, 'jaccard', p.jaccard,"
        "     'shared', p.shared, 'regions', jsonb_array_length(p.regions),"
        "     'a', jsonb_build_object('submission_id', sa.id, 'student_ref', sa.student_ref),"
        "     'b', jsonb_build_object('submission_id', sb.id, 'student_ref', sb.student_ref))"
        "     ORDER BY p.score DESC, p.id)"
        "   FROM similarity_pair p JOIN r ON r.id = p.run_id"
        "   JOIN submission sa ON sa.id = p.submission_a"
        "   JOIN submission sb ON sb.id = p.submission_b), '[]'::jsonb))::text",
        1, p, out, err);
}

sm_code sm_sim_db_pair(PGconn *db, int64_t pair_id, json_t **out, sm_err *err)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)pair_id);
    const char *p[] = {id};
    return query_json(
        db,
        "SELECT jsonb_build_object('id', p.id, 'assignment_id', r.assignment_id,"
        "  'course_id', a.course_id, 'assignment_code', a.code, 'score', p.score,"
        "  'contain_a', p.contain_a, 'contain_b', p.contain_b, 'jaccard', p.jaccard,"
        "  'shared', p.shared, 'method', r.method, 'regions', p.regions,"
        "  'a', jsonb_build_object('submission_id', sa.id, 'student_ref', sa.student_ref,"
        "     'content', sa.content),"
        "  'b', jsonb_build_object('submission_id', sb.id, 'student_ref', sb.student_ref,"
        "     'content', sb.content))::text"
        " FROM similarity_pair p JOIN similarity_run r ON r.id = p.run_id"
        " JOIN assignment a ON a.id = r.assignment_id"
        " JOIN submission sa ON sa.id = p.submission_a"
        " JOIN submission sb ON sb.id = p.submission_b WHERE p.id = $1",
        1, p, out, err);
}
