-- 014_masked_score: the injection-masked score. A submission flagged for prompt injection
-- (flags injection:*) is graded a second time, with the same seeds, on its text with the
-- flagged spans replaced by "[removed: text addressed to the grader]". The grading keeps that
-- pass next to its own score: masked_score (NULL when the masked pass gave no score either),
-- masked_margin (the worker's margin in points, worker.injection_margin x max_score),
-- masked_differs (the two scores are further apart than the margin, or only one pass gave a
-- score; the RESULT then carries the flag injection:score_differs), masked_summary, and
-- masked_detail {steps, spans, content, reasoning, tokens} as the worker reported them. All
-- NULL for a grading without a masked pass.
ALTER TABLE grading
    ADD COLUMN masked_score   numeric(8,2),
    ADD COLUMN masked_margin  numeric(8,2),
    ADD COLUMN masked_differs boolean,
    ADD COLUMN masked_summary text,
    ADD COLUMN masked_detail  jsonb,
    ADD CONSTRAINT grading_masked_check CHECK (
        (masked_differs IS NULL AND masked_score IS NULL AND masked_margin IS NULL
         AND masked_summary IS NULL AND masked_detail IS NULL)
        OR (masked_differs IS NOT NULL AND masked_margin IS NOT NULL AND masked_margin >= 0
            AND masked_detail IS NOT NULL
            AND (masked_score IS NULL OR (masked_score >= 0 AND masked_score <= max_score))));
