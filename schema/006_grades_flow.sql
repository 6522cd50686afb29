-- 006_grades_flow: what grades need to flow back to an LMS and to students.
--  * Releases: a teacher's release of a grading to the student is a review row
--    (action 'release'), so it sits in the review history beside approve and adjust.
--  * sm_final(submission): the final block (state, score, reviewer, comment, release) that
--    STATUS, RESULT, LIST, the HTTP API, events and webhooks all carry.
--  * Change tracking for LIST: every change that alters a submission's status or final grade
--    stamps the submission with the id of the writing transaction (change_xid). A reader
--    pages in (change_xid, id) order and sees only rows whose change_xid is below the oldest
--    transaction still running (pg_snapshot_xmin), so a transaction that commits late can
--    never slip in behind a cursor that has already passed it.
--  * event_outbox: one row per event (submission.graded, submission.reviewed,
--    grades.released), written by triggers in the same transaction as the change. The
--    broker's PUB relay and the webhook deliveries read it in (xid, id) order with the same
--    rule as LIST.
--  * service_token: bearer tokens for the HTTP API, scoped to courses.

-- Releases are reviews.
ALTER TABLE review DROP CONSTRAINT review_action_check;
ALTER TABLE review ADD CONSTRAINT review_action_check
    CHECK (action IN ('approve', 'adjust', 'regrade', 'release'));
-- release: whether the student also sees the model's reasoning chain.
ALTER TABLE review ADD COLUMN include_reasoning boolean NOT NULL DEFAULT false;

-- The final block of a submission's latest grading, or NULL when it has none.
-- state: released (a release exists for this grading), adjusted / approved (the latest
-- approve or adjust), else model_graded. score: the latest approve/adjust's score, else the
-- model's. A regrade's new grading starts again at model_graded until reviewed or released.
CREATE FUNCTION sm_final(sub bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'state', CASE WHEN rel.id IS NOT NULL THEN 'released'
                      WHEN r.action = 'adjust' THEN 'adjusted'
                      WHEN r.action = 'approve' THEN 'approved'
                      ELSE 'model_graded' END,
        'score', COALESCE(r.new_score, g.score),
        'max_score', g.max_score,
        'grading_id', g.id,
        'reviewed_by', rt.name,
        'reviewed_at', r.created_at,
        'comment', COALESCE(r.comment, ''),
        'released_by', relt.name,
        'released_at', rel.created_at,
        'include_reasoning', COALESCE(rel.include_reasoning, false))
    FROM (SELECT gg.* FROM grading gg WHERE gg.submission_id = sub
          ORDER BY gg.created_at DESC, gg.id DESC LIMIT 1) g
    LEFT JOIN LATERAL (SELECT rr.* FROM review rr WHERE rr.grading_id = g.id
                       AND rr.action IN ('approve', 'adjust')
                       ORDER BY rr.created_at DESC, rr.id DESC LIMIT 1) r ON true
    LEFT JOIN teacher rt ON rt.id = r.teacher_id
    LEFT JOIN LATERAL (SELECT rr.* FROM review rr WHERE rr.grading_id = g.id
                       AND rr.action = 'release'
                       ORDER BY rr.created_at DESC, rr.id DESC LIMIT 1) rel ON true
    LEFT JOIN teacher relt ON relt.id = rel.teacher_id
$$;

-- Change tracking (LIST).
ALTER TABLE submission
    ADD COLUMN updated_at  timestamptz,
    ADD COLUMN change_xid  xid8;
UPDATE submission SET updated_at = received_at, change_xid = '0'::xid8;
ALTER TABLE submission
    ALTER COLUMN updated_at SET NOT NULL,
    ALTER COLUMN updated_at SET DEFAULT now(),
    ALTER COLUMN change_xid SET NOT NULL,
    ALTER COLUMN change_xid SET DEFAULT pg_current_xact_id();
CREATE INDEX submission_change_idx ON submission (assignment_id, change_xid, id);

CREATE FUNCTION sm_touch_submission(sub bigint) RETURNS void
LANGUAGE sql AS $$
    UPDATE submission SET updated_at = clock_timestamp(), change_xid = pg_current_xact_id()
    WHERE id = sub
$$;

-- The event outbox.
CREATE TABLE event_outbox (
    id             bigserial PRIMARY KEY,
    xid            xid8 NOT NULL DEFAULT pg_current_xact_id(),
    kind           text NOT NULL
                   CHECK (kind IN ('submission.graded', 'submission.reviewed', 'grades.released')),
    course_id      bigint NOT NULL REFERENCES course(id) ON DELETE CASCADE,
    assignment_id  bigint NOT NULL REFERENCES assignment(id) ON DELETE CASCADE,
    submission_id  bigint NOT NULL REFERENCES submission(id) ON DELETE CASCADE,
    payload        jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_outbox_order_idx ON event_outbox (xid, id);
CREATE INDEX event_outbox_course_idx ON event_outbox (course_id, xid, id);

-- Writes one event for a submission: its ids, student, and final block at this moment.
CREATE FUNCTION sm_emit_event(event_kind text, sub bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO event_outbox (kind, course_id, assignment_id, submission_id, payload)
    SELECT event_kind, a.course_id, a.id, s.id,
           jsonb_build_object('event', event_kind,
                              'submission_id', s.id,
                              'assignment_id', a.id,
                              'assignment', a.code,
                              'course', c.code,
                              'student_ref', s.student_ref,
                              'final', sm_final(s.id),
                              'at', clock_timestamp())
    FROM submission s JOIN assignment a ON a.id = s.assignment_id
    JOIN course c ON c.id = a.course_id
    WHERE s.id = sub
$$;

CREATE FUNCTION sm_grading_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sm_touch_submission(NEW.submission_id);
    PERFORM sm_emit_event('submission.graded', NEW.submission_id);
    RETURN NULL;
END $$;
CREATE TRIGGER grading_changed AFTER INSERT ON grading
    FOR EACH ROW EXECUTE FUNCTION sm_grading_changed();

CREATE FUNCTION sm_review_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    sub bigint;
BEGIN
    SELECT submission_id INTO sub FROM grading WHERE id = NEW.grading_id;
    PERFORM sm_touch_submission(sub);
    IF NEW.action IN ('approve', 'adjust') THEN
        PERFORM sm_emit_event('submission.reviewed', sub);
    ELSIF NEW.action = 'release' THEN
        PERFORM sm_emit_event('grades.released', sub);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER review_changed AFTER INSERT ON review
    FOR EACH ROW EXECUTE FUNCTION sm_review_changed();

-- A job's state change (queued, running, failed, cancelled) changes the submission's status.
CREATE FUNCTION sm_job_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR OLD.state IS DISTINCT FROM NEW.state THEN
        PERFORM sm_touch_submission(NEW.submission_id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER job_changed AFTER INSERT OR UPDATE OF state ON job
    FOR EACH ROW EXECUTE FUNCTION sm_job_changed();

-- Service tokens for the HTTP API (/api/v1): a name, the SHA-256 of the token (the token itself
-- is never stored; NULL once revoked), and the courses it may act on.
CREATE TABLE service_token (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    token_hash    text UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,                 -- NULL: does not expire
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    CHECK ((token_hash IS NULL) = (revoked_at IS NOT NULL))
);
CREATE TABLE service_token_course (
    token_id   bigint NOT NULL REFERENCES service_token(id) ON DELETE CASCADE,
    course_id  bigint NOT NULL REFERENCES course(id) ON DELETE CASCADE,
    PRIMARY KEY (token_id, course_id)
);
