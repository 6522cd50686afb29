-- Extra test data for test_review_page.py, loaded after seed.sql: a math assignment with a
-- rubric of criteria (assignment.rubric_criteria), an answer key with its policy and a
-- reference solution; a submission written with $...$, \(...\), \[...\] and \boxed{}, with
-- invalid TeX and markup; a critique in TeX; a grading carrying every flag the worker raises
-- plus an unknown one; a code assignment whose stdin/stdout test failed (expected against
-- actual), and a submission the test then approves (teachers are created after the seed).
INSERT INTO assignment (id, course_id, code, title, kind, statement, answer_key, max_score,
                        rubric_criteria, reference_solution, answer_policy, language, tests) VALUES
  (40, 1, 'frac', 'Fractions', 'math', 'Compute $\frac{1}{2} + \frac{1}{3}$.', '\frac{5}{6}', 6,
   '[{"id": "method", "description": "Common denominator $6$", "points": 3},
     {"id": "answer", "description": "Final answer \\(\\frac{5}{6}\\)", "points": 3, "checks": ["answer"]}]',
   E'Over the denominator 6: $\\frac{3}{6} + \\frac{2}{6} = \\frac{5}{6}$.',
   '{"percent": "either", "tolerance": 0.001, "units": "ignore"}', NULL, NULL),
  (41, 2, 'echo', 'Echo upper', 'code', 'Read a line and print it in capitals.', NULL, 4,
   NULL, E'print(input().upper())', NULL, 'python',
   '[{"name": "hello", "input": "hello\nworld", "expected_output": "HELLO\nWORLD"}]');
UPDATE assignment SET rubric = 'Correct output: 4 points.' WHERE id = 41;

INSERT INTO submission (id, assignment_id, student_ref, idempotency_key, content, received_at) VALUES
  (40, 40, 'M040', 'k40', E'First $\\frac{1}{2} = \\frac{3}{6}$ and \\(\\frac{1}{3} = \\frac{2}{6}\\).\n\\[\\frac{3}{6} + \\frac{2}{6} = \\frac{5}{6}\\]\nBroken: $\\frac{1}{$ stays <b>text</b>\nAnswer: \\boxed{\\frac{5}{6}}', now() - interval '20 min'),
  (41, 41, 'C041', 'k41', 'print(input())', now() - interval '19 min'),
  (42, 40, 'M042', 'k42', 'Answer: $\frac{5}{6}$', now() - interval '18 min');

INSERT INTO job (id, submission_id, state, priority, attempts, seed, finished_at) VALUES
  (40, 40, 'done', 1, 1, 40, now() - interval '10 min'),
  (41, 41, 'done', 1, 1, 41, now() - interval '9 min'),
  (42, 42, 'done', 1, 1, 42, now() - interval '8 min');

INSERT INTO grading (id, job_id, submission_id, status, score, max_score, summary, flags, confidence,
                     model_name, model_hash, engine_version, prompt_template_version, seed, created_at) VALUES
  (40, 40, 40, 'needs_review', 5, 6, 'Right method; the answer $\frac{5}{6}$ is correct.',
   '{invalid_verdict,model_unavailable,provisional_from_checks,cut_off,low_agreement,checks_contradict_score,checks_contradict_criterion,checks_unavailable,injection:ignore_instructions,injection:role_marker,injection:fake_verdict,injection:addresses_grader,made_up_flag}',
   0.5, 'm', 'h', 'e', 'math-v1', 40, now() - interval '10 min'),
  (41, 41, 41, 'graded', 0, 4, 'The output is not in capitals.', '{}', 0.9, 'm', 'h', 'e', 'code-v1', 41, now() - interval '9 min'),
  (42, 42, 42, 'needs_review', 6, 6, 'Correct.', '{low_agreement}', 0.5, 'm', 'h', 'e', 'math-v1', 42, now() - interval '8 min');

INSERT INTO critique_step (grading_id, step_no, quoted, verdict, explanation, agreement) VALUES
  (40, 1, 'First $\frac{1}{2} = \frac{3}{6}$', 'correct', 'Indeed \(\frac{1}{2} = \frac{3}{6}\).', 1.0),
  (40, 2, 'Answer: \boxed{\frac{5}{6}}', 'correct', 'The sum is $\frac{5}{6}$; bad TeX $\frac{2}{$ stays text.', 1.0);

INSERT INTO check_result (grading_id, kind, name, passed, time_ms, output_excerpt, details) VALUES
  (41, 'compile', 'compile', true, 20, '', '{"language": "python"}'),
  (41, 'test', 'hello', false, 25, E'hello\nworld',
   '{"kind": "io", "expected": "HELLO\nWORLD", "stderr": "warning: <b>not</b> upper", "error": "wrong answer (first difference at line 1)",
     "exit_code": 0, "first_difference": {"line": 1, "output": "hello", "expected": "HELLO"}, "points": 1, "points_earned": 0}');

