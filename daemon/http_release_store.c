/* http_release_store: the SQL of releasing feedback and of the student page, one statement per
 * function (see http_release.h). What a student sees is defined once, in SQL:
 * sm_released_feedback() of 008_student_links.sql, plus the rubric criteria of the released
 * grading (sm_grading_criteria() of 015_rubric_criteria.sql) with their current points as
 * "points" (a teacher's adjustment, else the model's). */
#include <stdio.h>

#include "http_release.h"
#include "sm_db.h"

sm_code http_release_assignment_owned(PGconn *db, const char *assignment_id, const char *teacher_id,
                                      bool *owned, sm_err *err)
{
    const char *p[] = {assignment_id, teacher_id};
    PGresult *r;
    sm_code rc = sm_db_query(db,
                             "SELECT 1 FROM assignment a JOIN course_teacher ct ON "
                             "ct.course_id = a.course_id AND ct.teacher_id = $2::bigint "
                             "WHERE a.id = $1::bigint",
                             2, p, &r, err);
    if (rc != SM_OK)
        return rc;
    *owned = PQntuples(r) == 1;
    PQclear(r);
    return SM_OK;
}

sm_code http_release_candidates(PGconn *db, const char *assignment_id, const char *ids,
                                PGresult **out, sm_err *err)
{
    const char *p[] = {assignment_id, ids};
    return sm_db_query(
        db,
        "SELECT s.id, st.grading_id, st.job_state IN ('queued', 'leased') AS pending, "
        "st.final_score, "
        "(SELECT rr.include_reasoning FROM review rr WHERE rr.grading_id = st.grading_id "
        "  AND rr.action = 'release' ORDER BY rr.created_at DESC, rr.id DESC LIMIT 1) "
        "FROM submission s JOIN submission_status st ON st.submission_id = s.id "
        "WHERE s.assignment_id = $1::bigint AND ($2::bigint[] IS NULL OR s.id = ANY($2::bigint[])) "
        "ORDER BY s.id FOR UPDATE OF s",
        2, p, out, err);
}

sm_code http_release_insert(PGconn *db, const char *grading_id, const char *teacher_id,
                            const char *score, bool include_reasoning, sm_err *err)
{
    const char *p[] = {grading_id, teacher_id, score, include_reasoning ? "true" : "false"};
    return sm_db_query(db,
                       "INSERT INTO review (grading_id, teacher_id, action, old_score, new_score, "
                       "comment, include_reasoning) VALUES ($1::bigint, $2::bigint, 'release', "
                       "$3::numeric, $3::numeric, '', $4::boolean)",
                       4, p, NULL, err);
}

sm_code http_release_audit(PGconn *db, const char *teacher_id, const char *assignment_id,
                           const char *details, sm_err *err)
{
    const char *p[] = {teacher_id, assignment_id, details};
    return sm_db_query(db,
                       "INSERT INTO audit_log (actor, action, subject, details) VALUES "
                       "('teacher:' || $1, 'review.release', 'assignment:' || $2, $3::jsonb)",
                       3, p, NULL, err);
}

sm_code http_release_states(PGconn *db, const char *assignment_id, PGresult **out, sm_err *err)
{
    const char *p[] = {assignment_id};
    return sm_db_query(
        db,
        "SELECT s.id, f->>'state' AS state, (f->>'released_at')::timestamptz AS released_at, "
        "(f->>'include_reasoning')::boolean AS include_reasoning, "
        "(SELECT g.id FROM grading g WHERE g.submission_id = s.id AND EXISTS (SELECT 1 FROM "
        "  review rr WHERE rr.grading_id = g.id AND rr.action = 'release') "
        "  ORDER BY g.created_at DESC, g.id DESC LIMIT 1) AS visible_grading_id "
        "FROM submission s LEFT JOIN LATERAL sm_final(s.id) f ON true "
        "WHERE s.assignment_id = $1::bigint ORDER BY s.id",
        1, p, out, err);
}

sm_code http_student_course(PGconn *db, const char *course_id, PGresult **out, sm_err *err)
{
    const char *p[] = {course_id};
    return sm_db_query(db, "SELECT code, title FROM course WHERE id = $1::bigint", 1, p, out, err);
}

sm_code http_student_feedback_rows(PGconn *db, const char *course_id, const char *student_ref,
                                   PGresult **out, sm_err *err)
{
    const char *p[] = {course_id, student_ref};
    return sm_db_query(db,
                       "SELECT a.code AS assignment_code, a.title AS assignment_title, "
                       "a.kind AS assignment_kind, s.id AS submission_id, "
                       "s.received_at AS submitted_at, fb.feedback || jsonb_build_object("
                       "'criteria', (SELECT COALESCE(jsonb_agg(jsonb_build_object('id', "
                       "c->'id', 'description', c->'description', 'max_points', "
                       "c->'max_points', 'points', c->'current_points', 'evidence', "
                       "c->'evidence') ORDER BY o), '[]'::jsonb) FROM jsonb_array_elements("
                       "sm_grading_criteria((fb.feedback->>'grading_id')::bigint)) "
                       "WITH ORDINALITY AS x(c, o))) AS feedback "
                       "FROM submission s JOIN assignment a ON a.id = s.assignment_id "
                       "CROSS JOIN LATERAL sm_released_feedback(s.id) AS fb(feedback) "
                       "WHERE a.course_id = $1::bigint AND s.student_ref = $2 "
                       "AND fb.feedback IS NOT NULL "
                       "ORDER BY a.created_at, a.id, s.received_at DESC, s.id DESC",
                       2, p, out, err);
}
