-- 003_review: what the teacher review side needs beyond 001: signed-in sessions (only a hash
-- of the session id is stored) and one view that says, per submission, its latest job,
-- latest grading, latest approving/adjusting review, its state and its final score.

CREATE TABLE teacher_session (
    id_hash     text PRIMARY KEY,          -- SHA-256 of the cookie value; the id itself is never stored
    teacher_id  bigint NOT NULL REFERENCES teacher(id) ON DELETE CASCADE,
    csrf_token  text NOT NULL,             -- sent back in X-CSRF-Token on every POST
    client      text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX teacher_session_expires_idx ON teacher_session (expires_at);
CREATE INDEX teacher_session_teacher_idx ON teacher_session (teacher_id);
CREATE INDEX course_teacher_teacher_idx ON course_teacher (teacher_id);
CREATE INDEX review_teacher_idx ON review (teacher_id);

-- state: queued | running (a job is waiting or leased), failed | cancelled (no grading and the
-- last job is dead or cancelled), reviewed (a teacher approved or adjusted the latest grading),
-- needs_review, graded. final_score: the latest review's score, else the model's.
CREATE VIEW submission_status AS
SELECT s.id AS submission_id,
       s.assignment_id,
       s.student_ref,
       s.received_at,
       j.id AS job_id,
       j.state AS job_state,
       g.id AS grading_id,
       g.status AS grading_status,
       g.score AS model_score,
       g.max_score,
       COALESCE(g.flags, '{}'::text[]) AS flags,
       g.confidence,
       g.created_at AS graded_at,
       r.id AS review_id,
       r.action AS review_action,
       r.new_score AS reviewed_score,
       r.created_at AS reviewed_at,
       CASE
           WHEN j.state = 'queued' THEN 'queued'
           WHEN j.state = 'leased' THEN 'running'
           WHEN g.id IS NULL AND j.state = 'dead' THEN 'failed'
           WHEN g.id IS NULL AND j.state = 'cancelled' THEN 'cancelled'
           WHEN g.id IS NULL THEN 'queued'
           WHEN r.id IS NOT NULL THEN 'reviewed'
           WHEN g.status = 'needs_review' THEN 'needs_review'
           ELSE 'graded'
       END AS state,
       COALESCE(r.new_score, g.score) AS final_score,
       COALESCE(g.status = 'needs_review' OR cardinality(g.flags) > 0, false) AS flagged
FROM submission s
LEFT JOIN LATERAL (SELECT jj.id, jj.state FROM job jj WHERE jj.submission_id = s.id
                   ORDER BY jj.id DESC LIMIT 1) j ON true
LEFT JOIN LATERAL (SELECT gg.* FROM grading gg WHERE gg.submission_id = s.id
                   ORDER BY gg.created_at DESC, gg.id DESC LIMIT 1) g ON true
LEFT JOIN LATERAL (SELECT rr.* FROM review rr WHERE rr.grading_id = g.id
                   AND rr.action IN ('approve', 'adjust')
                   ORDER BY rr.created_at DESC, rr.id DESC LIMIT 1) r ON true;
