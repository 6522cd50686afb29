-- Test data for test_criteria_page.py, loaded after seed.sql: a math assignment whose rubric is
-- a list of three criteria (015_rubric_criteria.sql) with math in their descriptions; a
-- submission graded per criterion (met, partly, not met; evidence quoted with math, one without
-- evidence) with a critique in TeX; and a submission whose grading has no valid verdict (every
-- criterion without verdict and points). Teachers are created after the seed.
INSERT INTO assignment (id, course_id, code, title, kind, statement, answer_key, max_score,
                        rubric, rubric_criteria) VALUES
  (60, 1, 'induct', 'Induction', 'math', 'Prove $\sum_{k=1}^n k = \frac{n(n+1)}{2}$.',
   'n(n+1)/2', 6, NULL,
   '[{"id": "setup", "description": "Checks the base case $n = 1$", "points": 2},
     {"id": "step", "description": "Proves the step $P(n) \\Rightarrow P(n+1)$", "points": 3},
     {"id": "answer", "description": "States the formula", "points": 1, "checks": ["answer"]}]');

INSERT INTO submission (id, assignment_id, student_ref, idempotency_key, content, received_at) VALUES
  (60, 60, 'M060', 'k60', E'Base: for $n = 1$, $1 = \\frac{1 \\cdot 2}{2}$.\nStep: assume $\\sum_{k=1}^n k = \\frac{n(n+1)}{2}$; add $n+1$.\nSo it holds: \\boxed{\\frac{n(n+1)}{2}}', now() - interval '20 min'),
  (61, 60, 'M061', 'k61', 'I do not know.', now() - interval '19 min');

INSERT INTO job (id, submission_id, state, priority, attempts, seed, finished_at) VALUES
  (60, 60, 'done', 1, 1, 60, now() - interval '10 min'),
  (61, 61, 'done', 1, 1, 61, now() - interval '9 min');

INSERT INTO grading (id, job_id, submission_id, status, score, max_score, summary, flags, confidence,
                     model_name, model_hash, engine_version, prompt_template_version, seed, created_at) VALUES
  (60, 60, 60, 'needs_review', 3.5, 6, 'Base case right; the step $n \to n+1$ is not shown.',
   '{low_agreement}', 0.55, 'm', 'h', 'e', 'proof-v2', 60, now() - interval '10 min'),
  (61, 61, 61, 'needs_review', NULL, 6, '', '{invalid_verdict}', NULL, 'm', 'h', 'e', 'proof-v2', 61,
   now() - interval '9 min');

INSERT INTO critique_step (grading_id, step_no, quoted, verdict, explanation, agreement) VALUES
  (60, 1, 'Base: for $n = 1$, $1 = \frac{1 \cdot 2}{2}$.', 'correct', 'The base case \(n = 1\) holds.', 1.0),
  (60, 2, 'So it holds: \boxed{\frac{n(n+1)}{2}}', 'incomplete',
   'Missing: $\frac{n(n+1)}{2} + (n+1) = \frac{(n+1)(n+2)}{2}$.', 0.67);

INSERT INTO grading_criterion (grading_id, position, criterion_id, description, max_points, verdict,
                               points, evidence, agreement) VALUES
  (60, 1, 'setup', 'Checks the base case $n = 1$', 2, 'met', 2,
   'Base: for $n = 1$, $1 = \frac{1 \cdot 2}{2}$.', 1.0),
  (60, 2, 'step', 'Proves the step $P(n) \Rightarrow P(n+1)$', 3, 'partly', 1.5,
   'Step: assume $\sum_{k=1}^n k = \frac{n(n+1)}{2}$; add $n+1$.', 0.67),
  (60, 3, 'answer', 'States the formula', 1, 'not_met', 0, '', 0.5),
  (61, 1, 'setup', 'Checks the base case $n = 1$', 2, NULL, NULL, '', NULL),
  (61, 2, 'step', 'Proves the step $P(n) \Rightarrow P(n+1)$', 3, NULL, NULL, '', NULL),
  (61, 3, 'answer', 'States the formula', 1, NULL, NULL, '', NULL);
