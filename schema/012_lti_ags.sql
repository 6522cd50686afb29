-- 012_lti_ags: LTI Advantage services (docs/lti.md): Assignment and Grade Services (grade
-- passback) and Names and Role Provisioning Services (the roster).
--  * lti_context gains the service endpoints the platform sent in launches: the line items
--    container and the scopes it grants, and the roster (context memberships) URL.
--  * lti_course_setting: per stepmark course, which launch claim is a learner's student_ref
--    ('sub', 'sourcedid' = lis_person_sourcedid, 'email') and when scores go back to the LMS
--    ('on-approval' or 'on-release'); lti_assignment_setting overrides the policy per
--    assignment.
--  * lti_member: the people of an LMS course, from launches and roster imports; lti_student
--    maps each to the student_ref their submissions carry under the course's setting.
--  * lti_lineitem: the LMS gradebook column of each assignment in each LMS course.
--  * lti_passback_cursor / lti_passback_log: the passback consumer of event_outbox, one per
--    LMS course with grade services, with the same rules as webhooks (007): (xid, id) order
--    below pg_snapshot_xmin, head-of-line retry with backoff, every attempt logged.

ALTER TABLE lti_context
    ADD COLUMN ags_lineitems  text,                      -- the line items container URL
    ADD COLUMN ags_scopes     text[] NOT NULL DEFAULT '{}',
    ADD COLUMN nrps_url       text,                      -- context_memberships_url
    ADD COLUMN roster_synced_at timestamptz;
ALTER TABLE lti_resource_link ADD COLUMN ags_lineitem text;  -- the link's own line item, if sent

CREATE TABLE lti_course_setting (
    course_id         bigint PRIMARY KEY REFERENCES course(id) ON DELETE CASCADE,
    student_ref_from  text NOT NULL DEFAULT 'sub'
                      CHECK (student_ref_from IN ('sub', 'sourcedid', 'email')),
    passback          text NOT NULL DEFAULT 'on-release'
                      CHECK (passback IN ('on-approval', 'on-release'))
);

CREATE TABLE lti_assignment_setting (
    assignment_id  bigint PRIMARY KEY REFERENCES assignment(id) ON DELETE CASCADE,
    passback       text NOT NULL CHECK (passback IN ('on-approval', 'on-release'))
);

-- The passback policy of an assignment: its own, else its course's, else 'on-release'.
CREATE FUNCTION sm_lti_passback_policy(aid bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(
        (SELECT passback FROM lti_assignment_setting WHERE assignment_id = aid),
        (SELECT s.passback FROM lti_course_setting s JOIN assignment a ON a.course_id = s.course_id
         WHERE a.id = aid),
        'on-release')
$$;

CREATE TABLE lti_member (
    platform_id  bigint NOT NULL,
    context_id   text NOT NULL,
    sub          text NOT NULL CHECK (length(sub) BETWEEN 1 AND 255),
    name         text NOT NULL DEFAULT '',
    email        text NOT NULL DEFAULT '',
    sourcedid    text NOT NULL DEFAULT '',   -- lis_person_sourcedid / NRPS lis_person_sourcedid
    roles        text[] NOT NULL DEFAULT '{}',
    status       text NOT NULL DEFAULT 'Active' CHECK (status IN ('Active', 'Inactive', 'Deleted')),
    source       text NOT NULL CHECK (source IN ('launch', 'roster')),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform_id, context_id, sub),
    FOREIGN KEY (platform_id, context_id) REFERENCES lti_context (platform_id, context_id)
        ON DELETE CASCADE
);

-- Every member of a mapped LMS course with the student_ref their submissions carry (NULL when
-- the chosen claim is missing for them).
CREATE VIEW lti_student AS
SELECT m.platform_id, m.context_id, m.sub, m.name, m.email, m.sourcedid, m.roles, m.status,
       x.course_id,
       CASE COALESCE(s.student_ref_from, 'sub')
           WHEN 'sub' THEN m.sub
           WHEN 'sourcedid' THEN NULLIF(m.sourcedid, '')
           ELSE NULLIF(m.email, '') END AS student_ref
FROM lti_member m
JOIN lti_context x ON x.platform_id = m.platform_id AND x.context_id = m.context_id
LEFT JOIN lti_course_setting s ON s.course_id = x.course_id
WHERE x.course_id IS NOT NULL;

-- The LMS name of a course's student (for the review page), '' when unknown.
CREATE FUNCTION sm_lti_student_name(course bigint, ref text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT COALESCE((SELECT name FROM lti_student WHERE course_id = course AND student_ref = ref
                     AND name <> '' ORDER BY status, sub LIMIT 1), '')
$$;

CREATE TABLE lti_lineitem (
    platform_id    bigint NOT NULL,
    context_id     text NOT NULL,
    assignment_id  bigint NOT NULL REFERENCES assignment(id) ON DELETE CASCADE,
    url            text NOT NULL CHECK (url ~ '^https?://'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform_id, context_id, assignment_id),
    FOREIGN KEY (platform_id, context_id) REFERENCES lti_context (platform_id, context_id)
        ON DELETE CASCADE
);

-- One passback target per LMS course that has grade services and a stepmark course. A new
-- target starts at the beginning of the outbox: the course's existing grades go back too.
CREATE TABLE lti_passback_cursor (
    platform_id      bigint NOT NULL,
    context_id       text NOT NULL,
    cursor_xid       xid8 NOT NULL DEFAULT '0',
    cursor_id        bigint NOT NULL DEFAULT 0,
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    delivered        bigint NOT NULL DEFAULT 0,
    last_success_at  timestamptz,
    PRIMARY KEY (platform_id, context_id),
    FOREIGN KEY (platform_id, context_id) REFERENCES lti_context (platform_id, context_id)
        ON DELETE CASCADE
);

-- One row per event handled: a score posted (or not), skipped (no LMS user, policy) or failed.
CREATE TABLE lti_passback_log (
    id             bigserial PRIMARY KEY,
    platform_id    bigint NOT NULL,
    context_id     text NOT NULL,
    event_id       bigint NOT NULL,
    event          text NOT NULL,
    submission_id  bigint NOT NULL,
    user_sub       text,                -- the LMS user the score was for
    attempt        integer NOT NULL CHECK (attempt >= 1),
    outcome        text NOT NULL CHECK (outcome IN ('posted', 'skipped', 'failed', 'rejected')),
    detail         text NOT NULL DEFAULT '',   -- e.g. "FullyGraded 4/5" or why skipped
    status_code    integer,
    error          text,
    duration_ms    integer NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
    broker         text NOT NULL DEFAULT '',
    at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lti_passback_log_at_idx ON lti_passback_log (at);
CREATE INDEX lti_passback_log_ctx_idx ON lti_passback_log (platform_id, context_id, id);
