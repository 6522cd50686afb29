-- 013_provisional: a provisional score from the deterministic checks, stored with a grading
-- that has no score from the model (its critique could not be read, or the model could not
-- grade the submission) when the assignment's tests or answer key can score it. The model's
-- own score stays NULL; a teacher approves the provisional score in one click (a review with
-- action 'approve' and new_score = provisional_score), which sm_final() then reports as final.
ALTER TABLE grading
    ADD COLUMN provisional_score  numeric(8,2),
    ADD COLUMN provisional_basis  text CHECK (provisional_basis IN ('tests', 'answer_key')),
    ADD COLUMN provisional_detail text,
    ADD CONSTRAINT grading_provisional_check CHECK (
        (provisional_score IS NULL AND provisional_basis IS NULL)
        OR (provisional_score IS NOT NULL AND provisional_basis IS NOT NULL
            AND score IS NULL AND provisional_score >= 0 AND provisional_score <= max_score));
