-- 008_student_links: what students need to read their released feedback.
--  * student_link_key: the server's secret key that signs per-student feedback links
--    (HMAC-SHA256, common/sm_student_link.c). One row, created on first use with 32 random
--    bytes from OpenSSL; `stepmark student rotate-key` replaces it, which invalidates every
--    link signed before. Only stepmark's own programs read it.
--  * sm_released_feedback(submission): what the student sees of a submission: its latest
--    released grading with the final score, the teacher's comment, the critique steps and
--    the check results, plus the reasoning chain only when the release included it; NULL
--    when no grading of the submission was released. The student page
--    (GET /api/student/feedback) and the JSON export use it, so both show the same thing.

CREATE TABLE student_link_key (
    id          smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    secret      bytea NOT NULL CHECK (octet_length(secret) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Check results: kind, name and outcome; the output only of compile checks (a test's or an
-- answer check's output may show hidden test data or the answer key).
CREATE FUNCTION sm_released_feedback(sub bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'submission_id', g.submission_id,
        'grading_id', g.id,
        'score', COALESCE(r.new_score, g.score),
        'max_score', g.max_score,
        'comment', COALESCE(r.comment, ''),
        'reviewed_at', r.created_at,
        'released_at', rel.created_at,
        'include_reasoning', rel.include_reasoning,
        'steps', COALESCE((SELECT jsonb_agg(jsonb_build_object(
                     'step_no', cs.step_no, 'quoted', cs.quoted, 'verdict', cs.verdict,
                     'explanation', cs.explanation) ORDER BY cs.step_no)
                 FROM critique_step cs WHERE cs.grading_id = g.id), '[]'::jsonb),
        'checks', COALESCE((SELECT jsonb_agg(jsonb_build_object(
                      'kind', cr.kind, 'name', cr.name, 'passed', cr.passed,
                      'time_ms', cr.time_ms,
                      'output', CASE WHEN cr.kind = 'compile' THEN cr.output_excerpt END)
                      ORDER BY cr.id)
                  FROM check_result cr WHERE cr.grading_id = g.id), '[]'::jsonb),
        'reasoning', CASE WHEN rel.include_reasoning THEN
                     COALESCE((SELECT jsonb_agg(jsonb_build_object(
                         'sample_no', rc.sample_no, 'text', rc.text) ORDER BY rc.sample_no)
                     FROM reasoning_chain rc WHERE rc.grading_id = g.id), '[]'::jsonb) END)
    FROM grading g
    JOIN LATERAL (SELECT rr.* FROM review rr WHERE rr.grading_id = g.id
                  AND rr.action = 'release'
                  ORDER BY rr.created_at DESC, rr.id DESC LIMIT 1) rel ON true
    LEFT JOIN LATERAL (SELECT rr.* FROM review rr WHERE rr.grading_id = g.id
                       AND rr.action IN ('approve', 'adjust')
                       ORDER BY rr.created_at DESC, rr.id DESC LIMIT 1) r ON true
    WHERE g.submission_id = sub
    ORDER BY g.created_at DESC, g.id DESC
    LIMIT 1
$$;

-- The student page looks up one student's submissions in a course.
CREATE INDEX submission_student_ref_idx ON submission (student_ref, assignment_id);
