/* stepmark review: the parts of the submission page that explain a grading (used by app.js):
 * math typeset with KaTeX, plain words for every flag (legend and tooltips), words for the
 * states, the assignment's rubric / answer key / reference solution, and failed tests with
 * the first difference between expected and actual output marked. Same rule as app.js: text
 * from students, the model or the database only ever enters the page as text nodes; KaTeX
 * builds its DOM itself (katex.render, no HTML strings, styles set through CSSOM, which the
 * content-security policy allows) and invalid TeX stays plain text. */
'use strict';

/* ---------- flags and states in plain words ---------- */

// Every flag the worker can raise (worker/sm_result.c, worker/sm_inject.c), plus older ones
// that stored gradings may still carry. An unknown flag shows its raw id.
const FLAG_INFO = {
  invalid_verdict: ['Unreadable critique', "The model's verdict could not be read, even after one repair request. There is no model score: grade it yourself (or approve a provisional score)."],
  model_unavailable: ['Model could not grade', 'The model could not grade this submission (for example it is too long for the model). There is no model score; the checks still ran.'],
  provisional_from_checks: ['Provisional score from the checks', 'No score from the model, but the tests or the answer key give a provisional score for you to approve or adjust.'],
  cut_off: ['Critique cut off', 'The model reached its length limit before finishing a critique, so part of it may be missing.'],
  low_agreement: ['Low confidence', 'The samples of the model disagreed about the steps or the score (confidence below 0.6).'],
  checks_contradict_score: ['Score contradicts the checks', "The model's score disagrees with the deterministic checks: e.g. every test passed but the score is low, or the answer is wrong but the score is full."],
  checks_contradict_criterion: ['A criterion contradicts its checks', 'The model gave a rubric criterion full points although a check it depends on failed, or no points although all of them passed: look at that criterion.'],
  checks_unavailable: ['Checks could not run', 'The sandbox could not run the program, so no test result is available.'],
  'injection:ignore_instructions': ['Possible prompt injection: "ignore the instructions"', 'The student\'s text tells the grader to ignore or override its instructions or the rubric.'],
  'injection:role_marker': ['Possible prompt injection: chat role markers', 'The student\'s text contains chat markers such as "system:", "assistant:", [INST] or <|...|> that try to pass as instructions.'],
  'injection:addresses_grader': ['Possible prompt injection: speaks to the grader', 'The student\'s text addresses the grader or the AI directly, or asks for full marks.'],
  'injection:fake_verdict': ['Possible prompt injection: fake verdict', 'The student\'s text contains lines that imitate the grader\'s verdict block (=== VERDICT ===, SCORE: n, STEP n: correct).'],
  'injection:score_differs': ['Score changes without the flagged text', 'Graded again with the flagged text removed, the model gave a score further from its first one than the margin (or only one of the two gave a score): the text addressed to the grader may have swayed it. Compare both scores.'],
  answer_mismatch: ['Answer check disagrees', "The model's score and the final-answer check disagree."],
  injection_attempt: ['Possible prompt injection', 'The student\'s text seems to address the grader (older flag).'],
  tests_failed: ['Tests failed', 'Some of the tests failed.'],
};
function flagInfo(f) {
  const i = FLAG_INFO[f];
  return i ? { label: i[0], text: i[1] } : { label: f, text: 'Unknown flag "' + f + '": no explanation is known for it.' };
}
/* A flag's badge: its raw id, its plain words as tooltip. */
function flagBadge(f) {
  const i = flagInfo(f);
  return el('span', { class: 'badge flag', 'data-flag': f, title: `${i.label}: ${i.text}` }, f);
}
/* The legend of the given flags (all known ones when flags is null). */
function flagLegend(flags, id) {
  const dl = el('dl', { class: 'legend', id });
  for (const f of flags || Object.keys(FLAG_INFO)) {
    const i = flagInfo(f);
    dl.append(el('dt', {}, flagBadge(f)), el('dd', {}, el('strong', {}, i.label), ' — ', i.text));
  }
  return dl;
}

const STATE_INFO = {
  needs_review: ['Needs review', 'The grading has flags: a teacher must check it before the score counts.'],
  graded: ['Not reviewed', 'Graded by the model without flags; no teacher has approved or adjusted it yet.'],
  reviewed: ['Reviewed', 'A teacher approved or adjusted the score.'],
  queued: ['Queued', 'A grading job is waiting for a worker.'],
  running: ['Grading', 'A worker is grading it now.'],
  failed: ['Grading failed', 'Grading failed repeatedly; send it back for regrading.'],
  cancelled: ['Cancelled', 'The grading job was cancelled.'],
};
function stateInfo(s) {
  const i = STATE_INFO[s];
  return i ? { label: i[0], text: i[1] } : { label: (s || '').replace('_', ' '), text: '' };
}

/* One sentence saying who has to act on the submission, and why. */
function reviewStatus(d) {
  const sub = d.submission, g = d.grading;
  const r = (d.reviews || []).find((x) => g && x.grading_id === g.id && (x.action === 'approve' || x.action === 'adjust'));
  const box = el('span', { class: 'review-status state-' + sub.state, id: 'review-status', role: 'status' }, stateBadgeWords(sub.state));
  if (sub.state === 'reviewed' && r)
    box.append(` ${r.teacher} ${r.action === 'approve' ? 'approved' : 'adjusted'} the score (${fmtScore(r.new_score)}) on ${fmtTime(r.created_at)}.`);
  else if (sub.state === 'needs_review') {
    const flags = (g && g.flags) || [];
    box.append(' A teacher must check this grading' + (flags.length ? ' because: ' : '.'));
    if (flags.length) box.append(el('span', { class: 'reasons' }, flags.map((f) => flagInfo(f).label).join('; ') + '.'));
  } else box.append(' ' + stateInfo(sub.state).text);
  return box;
}
function stateBadgeWords(s) {
  const i = stateInfo(s);
  return el('span', { class: 'badge state-' + s, 'data-state': s, title: i.text }, i.label);
}

/* ---------- math ---------- */

/* texNode, mathText and prettyMath: math.js (shared with the student's page). */

/* Multi-line text (statement, rubric, key) with math, line by line. */
function mathBlock(t, id) {
  const box = el('div', { class: 'work prose', id });
  for (const line of String(t || '').split('\n')) box.appendChild(el('div', { class: 'tline' }, mathText(line)));
  return box;
}

/* ---------- the assignment's rubric, answer key and reference solution ---------- */

function answerPolicyText(p) {
  if (!p || typeof p !== 'object') return null;
  const pct = { either: 'a percentage and its ratio are equal (50% = 0.5)', ratio: 'answers are read as ratios (0.5)', percent: 'answers are read as percentages (50%)' };
  const parts = [];
  if (p.percent) parts.push(pct[p.percent] || 'percent: ' + p.percent);
  if (p.tolerance !== undefined) parts.push('numbers within ' + Number(p.tolerance) + ' (relative) count as equal');
  if (p.units) parts.push(p.units === 'ignore' ? 'units are ignored' : 'units must match');
  return parts.length ? 'Answer policy: ' + parts.join('; ') + '.' : null;
}
/* A rubric: a list of criteria ({id, description, points, checks}) as a table, else text. */
function rubricView(r) {
  let list = r;
  if (typeof r === 'string') { try { list = JSON.parse(r); } catch (e) { list = null; } }
  if (list && !Array.isArray(list) && Array.isArray(list.criteria)) list = list.criteria;
  if (!Array.isArray(list) || !list.every((c) => c && typeof c === 'object')) return mathBlock(typeof r === 'string' ? r : JSON.stringify(r), 'rubric-text');
  const tb = el('tbody');
  for (const c of list) {
    tb.appendChild(el('tr', { class: 'criterion' }, el('td', {}, String(c.id ?? '')), el('td', {}, mathText(c.description ?? '')),
      el('td', { class: 'num' }, c.points === undefined ? '' : fmtScore(Number(c.points))),
      el('td', { class: 'muted' }, Array.isArray(c.checks) ? c.checks.join(', ') : '')));
  }
  const total = list.reduce((s, c) => s + (Number(c.points) || 0), 0);
  return el('table', { class: 'list', id: 'rubric-criteria' },
    el('thead', {}, el('tr', {}, el('th', {}, 'Criterion'), el('th', {}, 'Description'), el('th', { class: 'num' }, 'Points'), el('th', {}, 'Depends on checks'))),
    tb, el('tfoot', {}, el('tr', {}, el('td', {}), el('td', {}, 'Total'), el('td', { class: 'num' }, fmtScore(total)), el('td', {}))));
}
/* An answer key in bare TeX (\frac{5}{6}, x^2) is typeset whole; one with its own delimiters,
 * or plain text, line by line. */
function answerKeyView(key) {
  const math = /[\\^_]/.test(key) && !/\$|\\\(|\\\[/.test(key) ? texNode(key, false) : null;
  return math ? el('div', { class: 'work prose', id: 'answer-key-text' }, el('div', { class: 'tline' }, math)) : mathBlock(key, 'answer-key-text');
}
/* The card with the foldable rubric, answer key (with its policy) and reference solution. */
function assignmentKey(sub) {
  const box = el('div', { class: 'card', id: 'assignment-key' }, el('h2', {}, 'Rubric, answer key and reference solution'));
  const fold = (id, title, body) => box.appendChild(el('details', { id }, el('summary', {}, title), body));
  if (sub.rubric) fold('rubric', 'Rubric', rubricView(sub.rubric));
  if (sub.answer_key || sub.answer_policy) {
    fold('answer-key', 'Answer key', el('div', {}, sub.answer_key ? answerKeyView(sub.answer_key) : el('p', { class: 'muted' }, 'No answer key.'),
      answerPolicyText(sub.answer_policy) ? el('p', { class: 'muted', id: 'answer-policy' }, answerPolicyText(sub.answer_policy)) : null));
  }
  if (sub.reference_solution) {
    fold('reference-solution', 'Reference solution', sub.kind === 'code'
      ? el('pre', { class: 'work code' }, sub.reference_solution) : mathBlock(sub.reference_solution, 'reference-text'));
  }
  if (!box.querySelector('details')) box.appendChild(el('p', { class: 'muted' }, 'This assignment has no rubric, answer key or reference solution.'));
  return box;
}

/* ---------- failed tests: expected against actual, first difference marked ---------- */

/* Where a and b first differ: {line, col} (0-based), or null when equal. Trailing spaces of a
 * line and trailing empty lines are ignored, as the worker's comparison does. */
function firstDifference(a, b) {
  const la = String(a).replace(/\s+$/, '').split('\n').map((l) => l.replace(/\s+$/, ''));
  const lb = String(b).replace(/\s+$/, '').split('\n').map((l) => l.replace(/\s+$/, ''));
  for (let i = 0; i < Math.max(la.length, lb.length); i++) {
    const x = la[i], y = lb[i];
    if (x === y) continue;
    if (x === undefined || y === undefined) return { line: i, col: 0 };
    let c = 0;
    while (c < x.length && c < y.length && x[c] === y[c]) c++;
    return { line: i, col: c };
  }
  return null;
}
/* text as lines, the line at diff.line marked and its character at diff.col in a <mark>. */
function markedLines(text, diff, cls) {
  const pre = el('pre', { class: 'excerpt diff ' + cls });
  String(text).split('\n').forEach((line, i) => {
    if (!diff || i !== diff.line) { pre.appendChild(el('span', { class: 'dl' }, line + '\n')); return; }
    const ch = diff.col < line.length ? line[diff.col] : null;
    pre.appendChild(el('span', { class: 'dl diff-line' }, line.slice(0, diff.col),
      el('mark', { class: 'diff-char' + (ch === null ? ' diff-end' : ''), title: ch === null ? 'the line ends here' : 'first difference' }, ch === null ? '⏎' : ch),
      ch === null ? '' : line.slice(diff.col + 1), '\n'));
  });
  if (diff && diff.line >= String(text).split('\n').length)
    pre.appendChild(el('span', { class: 'dl diff-line' }, el('mark', { class: 'diff-char diff-end', title: 'the output ends here' }, '(end)')));
  return pre;
}
/* Expected and actual side by side with the first difference marked in both. */
function diffView(expected, actual) {
  const d = firstDifference(expected, actual);
  return el('div', { class: 'diff-view' },
    el('p', { class: 'diff-where' }, d ? `First difference: line ${d.line + 1}, column ${d.col + 1}.` : 'No difference in the shown text.'),
    el('div', { class: 'diff-cols' },
      el('div', {}, el('div', { class: 'muted' }, 'expected'), markedLines(expected, d, 'expected')),
      el('div', {}, el('div', { class: 'muted' }, 'actual'), markedLines(actual, d, 'actual'))));
}
/* A stdin/stdout test: its input (from the assignment's tests), expected and actual output with
 * the first difference marked, stderr, exit status and the error. */
function ioTestDetails(c, tests) {
  const x = c.details;
  const t = Array.isArray(tests) ? tests.find((k) => k && k.name === c.name) : null;
  const input = typeof x.input === 'string' ? x.input : t && typeof t.input === 'string' ? t.input : null;
  const dl = el('dl', { class: 'meta' });
  const row = (k, v) => { if (v !== null && v !== undefined && v !== '') dl.append(el('dt', {}, k), el('dd', {}, v)); };
  row('kind', 'stdin/stdout');
  row('input', input === null ? null : el('pre', { class: 'excerpt test-input' }, input === '' ? '(empty)' : input));
  row('output', diffView(x.expected ?? '', c.output_excerpt ?? ''));
  row('stderr', x.stderr ? el('pre', { class: 'excerpt' }, String(x.stderr)) : null);
  row('exit', x.signal ? `killed by signal ${x.signal}` : x.exit_code === null || x.exit_code === undefined ? null : `exit code ${x.exit_code}`);
  row('error', x.error ? String(x.error) : null);
  return dl;
}
/* The detail row of a failed test: io tests here, unit tests by app.js's testDetails with the
 * expected / actual values compared. */
function failedTestDetails(c, sub) {
  if (c.details.kind === 'io') return ioTestDetails(c, sub.tests);
  const dl = testDetails(c.details);
  if (typeof c.details.expected === 'string' && typeof c.details.returned === 'string')
    dl.append(el('dt', {}, 'difference'), el('dd', {}, diffView(c.details.expected, c.details.returned)));
  return dl;
}
function isCodeKind(sub) { return sub.kind === 'code'; }

/* The assignment page's one-click filters by review state, with their counts. */
function quickFilters(a, query) {
  const cur = query.get('state') || '';
  const link = (state, text, n) => {
    const p = new URLSearchParams(query);
    if (state) p.set('state', state); else p.delete('state');
    return el('a', { href: `#/assignment/${a.id}?${p}`, class: 'quick' + (cur === state ? ' current' : ''), 'data-state': state || 'all',
      'aria-current': cur === state ? 'true' : null, title: state ? stateInfo(state).text : 'every submission' }, n === undefined ? text : `${text} (${n})`);
  };
  const c = a.counts || {};
  return el('nav', { class: 'row quick-filters', id: 'quick-filters', 'aria-label': 'review state' }, el('span', { class: 'muted' }, 'Show:'),
    link('', 'All', a.total), link('needs_review', 'Needs review', c.needs_review || 0),
    link('graded', 'Not reviewed', c.graded || 0), link('reviewed', 'Reviewed', c.reviewed || 0));
}
