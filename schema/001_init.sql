-- 001_init: the tables of stepmark (DESIGN.md, Database): courses and assignments, submissions
-- and their jobs (the durable queue), gradings with their critique steps, reasoning chains and
-- check results, teachers and their reviews, and an audit log.

CREATE TABLE course (
    id          bigserial PRIMARY KEY,
    code        text NOT NULL UNIQUE CHECK (length(code) BETWEEN 1 AND 200),
    title       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE assignment (
    id                  bigserial PRIMARY KEY,
    course_id           bigint NOT NULL REFERENCES course(id) ON DELETE RESTRICT,
    code                text NOT NULL CHECK (length(code) BETWEEN 1 AND 200),
    title               text NOT NULL DEFAULT '',
    kind                text NOT NULL CHECK (kind IN ('proof', 'code', 'math')),
    statement           text NOT NULL,
    reference_solution  text,
    rubric              text,
    language            text,               -- code: c, cpp, python, java
    tests               jsonb,              -- code: [{name, input, expected_output, ...}]
    answer_key          text,               -- math: the expected final answer
    max_score           numeric(8,2) NOT NULL DEFAULT 10 CHECK (max_score > 0),
    model               text,               -- model name the grading should use (NULL = any)
    sampling            jsonb,              -- sampling settings overriding the worker's
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (course_id, code)
);

CREATE TABLE submission (
    id               bigserial PRIMARY KEY,
    assignment_id    bigint NOT NULL REFERENCES assignment(id) ON DELETE RESTRICT,
    student_ref      text NOT NULL CHECK (length(student_ref) BETWEEN 1 AND 200),
    idempotency_key  text NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    content          text NOT NULL,
    language         text,
    client_id        text,
    received_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX submission_assignment_idx ON submission (assignment_id, received_at);
CREATE INDEX submission_student_idx ON submission (assignment_id, student_ref);

-- The durable queue: a job is one attempt-series at grading a submission. A regrade adds a job.
CREATE TABLE job (
    id                bigserial PRIMARY KEY,
    submission_id     bigint NOT NULL REFERENCES submission(id) ON DELETE CASCADE,
    state             text NOT NULL DEFAULT 'queued'
                      CHECK (state IN ('queued', 'leased', 'done', 'dead', 'cancelled')),
    priority          smallint NOT NULL DEFAULT 1 CHECK (priority IN (0, 1)), -- 0 interactive, 1 batch
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts      integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    seed              bigint NOT NULL DEFAULT 0,
    lease_owner       text,
    lease_expires_at  timestamptz,
    not_before        timestamptz NOT NULL DEFAULT now(),
    last_error        text,
    progress_tokens   integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    CHECK ((state = 'leased') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
);
-- Claiming: queued jobs by priority then age (FOR UPDATE SKIP LOCKED).
CREATE INDEX job_queue_idx ON job (priority, created_at, id) WHERE state = 'queued';
-- Expiring leases.
CREATE INDEX job_lease_idx ON job (lease_expires_at) WHERE state = 'leased';
CREATE INDEX job_submission_idx ON job (submission_id);

CREATE TABLE grading (
    id                       bigserial PRIMARY KEY,
    job_id                   bigint NOT NULL UNIQUE REFERENCES job(id) ON DELETE CASCADE,
    submission_id            bigint NOT NULL REFERENCES submission(id) ON DELETE CASCADE,
    status                   text NOT NULL CHECK (status IN ('graded', 'needs_review')),
    score                    numeric(8,2),
    max_score                numeric(8,2) NOT NULL,
    summary                  text,
    flags                    text[] NOT NULL DEFAULT '{}',
    confidence               real,
    model_name               text NOT NULL,
    model_hash               text NOT NULL,
    engine_version           text NOT NULL,
    prompt_template_version  text NOT NULL,
    sampling                 jsonb NOT NULL DEFAULT '{}',
    seed                     bigint NOT NULL,
    prompt_tokens            integer NOT NULL DEFAULT 0,
    completion_tokens        integer NOT NULL DEFAULT 0,
    timings                  jsonb NOT NULL DEFAULT '{}',
    worker                   text,
    created_at               timestamptz NOT NULL DEFAULT now(),
    CHECK (score IS NULL OR (score >= 0 AND score <= max_score))
);
CREATE INDEX grading_submission_idx ON grading (submission_id, created_at);

CREATE TABLE critique_step (
    grading_id   bigint NOT NULL REFERENCES grading(id) ON DELETE CASCADE,
    step_no      integer NOT NULL CHECK (step_no >= 1),
    quoted       text NOT NULL DEFAULT '',
    verdict      text NOT NULL CHECK (verdict IN ('correct', 'incorrect', 'incomplete', 'unclear')),
    explanation  text NOT NULL DEFAULT '',
    agreement    real,
    PRIMARY KEY (grading_id, step_no)
);

CREATE TABLE reasoning_chain (
    grading_id  bigint NOT NULL REFERENCES grading(id) ON DELETE CASCADE,
    sample_no   integer NOT NULL DEFAULT 0 CHECK (sample_no >= 0),
    text        text NOT NULL,
    tokens      integer NOT NULL DEFAULT 0,
    PRIMARY KEY (grading_id, sample_no)
);

CREATE TABLE check_result (
    id              bigserial PRIMARY KEY,
    grading_id      bigint NOT NULL REFERENCES grading(id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('compile', 'test', 'answer')),
    name            text NOT NULL DEFAULT '',
    passed          boolean NOT NULL,
    time_ms         integer,
    output_excerpt  text,
    details         jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX check_result_grading_idx ON check_result (grading_id);

CREATE TABLE teacher (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    token_hash  text NOT NULL UNIQUE,   -- hash of the sign-in token; the token itself is never stored
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE course_teacher (
    course_id   bigint NOT NULL REFERENCES course(id) ON DELETE CASCADE,
    teacher_id  bigint NOT NULL REFERENCES teacher(id) ON DELETE CASCADE,
    PRIMARY KEY (course_id, teacher_id)
);

CREATE TABLE review (
    id          bigserial PRIMARY KEY,
    grading_id  bigint NOT NULL REFERENCES grading(id) ON DELETE CASCADE,
    teacher_id  bigint NOT NULL REFERENCES teacher(id) ON DELETE RESTRICT,
    action      text NOT NULL CHECK (action IN ('approve', 'adjust', 'regrade')),
    old_score   numeric(8,2),
    new_score   numeric(8,2),
    comment     text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX review_grading_idx ON review (grading_id, created_at);

CREATE TABLE audit_log (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text NOT NULL,
    action   text NOT NULL,
    subject  text NOT NULL DEFAULT '',
    details  jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
