-- 010_answer_policy: how a math assignment's final answer is compared with its answer key
-- (docs/teacher-guide.md, "How math answers are checked"): {"percent": "either|ratio|percent",
-- "tolerance": 0..0.5, "units": "check|ignore"}, every field optional. NULL: the defaults
-- (percent either, tolerance 1e-6, units check). The broker checks the value on
-- ASSIGNMENT_CREATE/UPDATE with the worker's own parser (worker/sm_answer_policy.c); the
-- database only insists on an object.

ALTER TABLE assignment ADD COLUMN answer_policy jsonb
    CHECK (answer_policy IS NULL OR jsonb_typeof(answer_policy) = 'object');
