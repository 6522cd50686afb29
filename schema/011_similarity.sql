-- 011_similarity: submissions of one assignment that are suspiciously alike.
--  * similarity_setting: per assignment, the threshold (0..1] above which a pair is shown
--    (NULL = the built-in default 0.5) and the starter code handed to the students, whose
--    matches are never counted (MOSS's base file). Set by `stepmark similarity --threshold
--    X --starter FILE`.
--  * similarity_run: one comparison of the latest submission of every student of an
--    assignment (common/sm_similarity_db.c), started by the CLI or by a teacher's button on
--    the review page; only the latest run of an assignment is kept.
--  * similarity_pair: the pairs of a run at or above its threshold, with the matching regions
--    of both texts ([{"a": {start, end, line, end_line}, "b": {...}}], character offsets and
--    1-based lines). A pair is information for the teacher: it never changes a score.

CREATE TABLE similarity_setting (
    assignment_id  bigint PRIMARY KEY REFERENCES assignment(id) ON DELETE CASCADE,
    threshold      real CHECK (threshold IS NULL OR (threshold > 0 AND threshold <= 1)),
    starter_code   text,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE similarity_run (
    id             bigserial PRIMARY KEY,
    assignment_id  bigint NOT NULL REFERENCES assignment(id) ON DELETE CASCADE,
    threshold      real NOT NULL,
    method         text NOT NULL CHECK (method IN ('winnowing', 'ngram')),
    params         jsonb NOT NULL DEFAULT '{}',
    submissions    integer NOT NULL CHECK (submissions >= 0),
    pairs          integer NOT NULL CHECK (pairs >= 0),
    elapsed_ms     integer NOT NULL DEFAULT 0,
    started_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX similarity_run_assignment_idx ON similarity_run (assignment_id, id);

CREATE TABLE similarity_pair (
    id             bigserial PRIMARY KEY,
    run_id         bigint NOT NULL REFERENCES similarity_run(id) ON DELETE CASCADE,
    submission_a   bigint NOT NULL REFERENCES submission(id) ON DELETE CASCADE,
    submission_b   bigint NOT NULL REFERENCES submission(id) ON DELETE CASCADE,
    score          real NOT NULL CHECK (score >= 0 AND score <= 1),
    contain_a      real NOT NULL,
    contain_b      real NOT NULL,
    jaccard        real NOT NULL,
    shared         integer NOT NULL,
    regions        jsonb NOT NULL DEFAULT '[]',
    CHECK (submission_a <> submission_b)
);
CREATE INDEX similarity_pair_run_idx ON similarity_pair (run_id, score DESC);
