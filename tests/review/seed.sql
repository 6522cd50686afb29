-- Test data for the review tests (tests/review/test_review.py): two teachers' worth of courses,
-- gradings in every state, a submission full of HTML/script, and a student reference that
-- would be a spreadsheet formula. Loaded with psql into a fresh database after migrations.
INSERT INTO course (id, code, title) VALUES
  (1, 'MATH101', 'Algebra I'), (2, 'CS201', 'Programming'), (3, 'HIST9', 'Other teacher''s course');
SELECT setval('course_id_seq', 10);

INSERT INTO assignment (id, course_id, code, title, kind, statement, answer_key, max_score, language, tests) VALUES
  (1, 1, 'quad', 'Quadratic equations', 'math',
   'Solve $x^2 - 5x + 6 = 0$ and give both roots in \boxed{}.', '2, 3', 10, NULL, NULL),
  (2, 2, 'fizz', 'FizzBuzz', 'code', 'Print 1..15 with Fizz/Buzz.', NULL, 5, 'python',
   '[{"name": "first15", "input": "", "expected_output": "1\n2\nFizz"}]'),
  (3, 3, 'essay', 'Hidden essay', 'proof', 'Prove that the sum of two even numbers is even.', NULL, 10, NULL, NULL);
SELECT setval('assignment_id_seq', 10);

INSERT INTO submission (id, assignment_id, student_ref, idempotency_key, content, received_at) VALUES
  (1, 1, 'ana@school.example', 'k1', E'We factor: x^2 - 5x + 6 = (x-2)(x-3).\nSo x = 2 or x = 3.\nAnswer: \\boxed{2, 3}', now() - interval '50 min'),
  (2, 1, 'S002', 'k2', E'Use the formula: x = \\frac{5 \\pm \\sqrt{25 - 24}}{2}.\nThen x = 5/2 + 1 = 3.5\nAnswer: \\boxed{3.5}', now() - interval '49 min'),
  (3, 1, 'S003', 'k3', E'<script>window.__xss = 1; document.title = "pwned"</script>\n<img src=x onerror="window.__xss=2">\nx = 2 and x = 3 </div>', now() - interval '48 min'),
  (4, 1, '=HYPERLINK("http://evil.example","x")', 'k4', 'x = 2', now() - interval '47 min'),
  (5, 1, 'S005', 'k5', 'x = 2 or x = 3 (still queued)', now() - interval '46 min'),
  (6, 1, 'S006', 'k6', 'this one keeps crashing the worker', now() - interval '45 min'),
  (7, 2, 'S002', 'k7', E'for i in range(1, 16):\n    if i % 15 == 0:\n        print("FizzBuzz")\n    elif i % 3 == 0:\n        print("Fizz")\n    else:\n        print(i)', now() - interval '40 min'),
  (8, 3, 'S900', 'k8', 'Let a = 2m and b = 2n; a + b = 2(m + n).', now() - interval '30 min');
SELECT setval('submission_id_seq', 20);

INSERT INTO job (id, submission_id, state, priority, attempts, seed, lease_owner, lease_expires_at, last_error, finished_at) VALUES
  (1, 1, 'done', 1, 1, 11, NULL, NULL, NULL, now() - interval '40 min'),
  (2, 2, 'done', 1, 1, 12, NULL, NULL, NULL, now() - interval '39 min'),
  (3, 3, 'done', 1, 1, 13, NULL, NULL, NULL, now() - interval '38 min'),
  (4, 4, 'done', 1, 1, 14, NULL, NULL, NULL, now() - interval '37 min'),
  (5, 5, 'queued', 1, 0, 15, NULL, NULL, NULL, NULL),
  (6, 6, 'dead', 1, 3, 16, NULL, NULL, 'worker lost three times', now() - interval '20 min'),
  (7, 7, 'done', 1, 1, 17, NULL, NULL, NULL, now() - interval '35 min'),
  (8, 8, 'done', 1, 1, 18, NULL, NULL, NULL, now() - interval '25 min');
SELECT setval('job_id_seq', 20);

INSERT INTO grading (id, job_id, submission_id, status, score, max_score, summary, flags, confidence, model_name,
                     model_hash, engine_version, prompt_template_version, sampling, seed, prompt_tokens,
                     completion_tokens, worker, created_at) VALUES
  (1, 1, 1, 'graded', 9.5, 10, 'Correct factoring, both roots found.', '{}', 0.93, 'VibeThinker-1.5B', 'sha256:aaaa', '0.1.0', 'v1', '{"temperature": 0.6}', 11, 300, 800, 'w1', now() - interval '40 min'),
  (2, 2, 2, 'needs_review', 4, 10, 'Arithmetic error after the quadratic formula.', '{answer_mismatch,low_agreement}', 0.41, 'VibeThinker-1.5B', 'sha256:aaaa', '0.1.0', 'v1', '{"temperature": 0.6}', 12, 310, 1200, 'w1', now() - interval '39 min'),
  (3, 3, 3, 'needs_review', 6, 10, '<b>Summary with markup</b> <script>window.__xss=3</script>', '{injection_attempt}', 0.55, 'VibeThinker-1.5B', 'sha256:aaaa', '0.1.0', 'v1', '{}', 13, 320, 900, 'w2', now() - interval '38 min'),
  (4, 4, 4, 'graded', 3, 10, 'Only one root.', '{}', 0.8, 'VibeThinker-1.5B', 'sha256:aaaa', '0.1.0', 'v1', '{}', 14, 280, 500, 'w2', now() - interval '37 min'),
  (5, 7, 7, 'graded', 4, 5, 'Misses the Buzz case.', '{tests_failed}', 0.88, 'VibeThinker-1.5B', 'sha256:aaaa', '0.1.0', 'v1', '{}', 17, 400, 700, 'w1', now() - interval '35 min'),
  (6, 8, 8, 'graded', 10, 10, 'Fine.', '{}', 0.99, 'VibeThinker-1.5B', 'sha256:aaaa', '0.1.0', 'v1', '{}', 18, 200, 300, 'w1', now() - interval '25 min');
SELECT setval('grading_id_seq', 20);

INSERT INTO critique_step (grading_id, step_no, quoted, verdict, explanation, agreement) VALUES
  (1, 1, 'x^2 - 5x + 6 = (x-2)(x-3)', 'correct', 'The factorisation is right.', 1.0),
  (1, 2, 'So x = 2 or x = 3.', 'correct', 'Both roots follow.', 1.0),
  (2, 1, 'x = \frac{5 \pm \sqrt{25 - 24}}{2}', 'correct', 'Correct use of the quadratic formula.', 0.9),
  (2, 2, 'Then x = 5/2 + 1 = 3.5', 'incorrect', 'The square root of 1 is 1, so x = (5 ± 1)/2 = 2 or 3, not 3.5.', 0.6),
  (3, 1, '<script>window.__xss = 1; document.title = "pwned"</script>', 'unclear', 'The student wrote <i>markup</i> instead of mathematics: <img src=x onerror="window.__xss=4">', 0.5),
  (3, 2, 'x = 2 and x = 3', 'correct', 'Roots are right.', 1.0),
  (5, 1, 'elif i % 3 == 0:', 'incomplete', 'The i % 5 == 0 case (Buzz) is missing.', 0.8);

INSERT INTO check_result (grading_id, kind, name, passed, time_ms, output_excerpt) VALUES
  (1, 'answer', 'final answer', true, NULL, 'expected {2, 3}, got {2, 3}'),
  (3, 'answer', 'final answer', true, NULL, '<script>window.__xss=5</script>'),
  (5, 'compile', 'python -m py_compile', true, 40, ''),
  (5, 'test', 'first15', false, 35, E'expected: Buzz\ngot: 5');
-- the answer check's details as the worker stores them (worker/sm_answer.c), shown on the page
INSERT INTO check_result (grading_id, kind, name, passed, time_ms, output_excerpt, details) VALUES
  (2, 'answer', 'final answer', false, NULL, 'expected {2, 3}, got {3.5}',
   '{"extracted": "3.5", "expected": "\\{2, 3\\}", "equal": false, "method": "set",
     "rule": "\"the result is\" sentence", "source": "Hence the result is 3.5 <b>bold</b>",
     "values": {"extracted": "7/2", "expected": "2, 3"},
     "detail": "a number against a set of 2: not equal",
     "policy": {"percent": "ratio", "tolerance": 1e-06, "units": "check"}}');

-- unit tests of functions (worker/sm_unittest.c): their points, and the points summary that the
-- worker puts on the compile check, shown beside the model's score
UPDATE check_result SET details = '{"language": "python", "points": {"earned": 1, "total": 4}}'
  WHERE grading_id = 5 AND kind = 'compile';
INSERT INTO check_result (grading_id, kind, name, passed, time_ms, output_excerpt, details) VALUES
  (5, 'test', 'fizz 15', false, 30, '',
   '{"kind": "call", "function": "fizz", "args": [15], "kwargs": {"sep": "-"}, "returned": "\"Fizz\"",
     "expected": "\"FizzBuzz\"", "error": "returned \"Fizz\", expected \"FizzBuzz\"", "points": 2,
     "points_earned": 0}'),
  (5, 'test', 'fizz zero', false, 30, '',
   '{"kind": "call", "function": "fizz", "args": [0], "exception": {"type": "ValueError",
     "message": "bad <b>x</b>"}, "error": "raised ValueError: bad <b>x</b>", "points": 1,
     "points_earned": 0}'),
  (5, 'test', 'fizz 3', true, 30, '',
   '{"kind": "call", "function": "fizz", "args": [3], "returned": "\"Fizz\"", "expected": "\"Fizz\"",
     "points": 1, "points_earned": 1}');

INSERT INTO reasoning_chain (grading_id, sample_no, text, tokens) VALUES
  (1, 0, 'Let me check the factorisation... (x-2)(x-3) = x^2 - 5x + 6. Correct.', 800),
  (2, 0, 'The student applies the formula. sqrt(1) = 1. They then compute 5/2 + 1 which is wrong...', 1200),
  (3, 0, 'The submission contains <script>alert(1)</script> which is not mathematics.', 900);
