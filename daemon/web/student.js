/* stepmark feedback: the student's page. Reads the token of the signed link (?t=TOKEN), asks
 * GET /api/student/feedback for this student's released feedback in the course and shows, per
 * released submission: the final score, the teacher's comment, the critique steps and the
 * check results, and the model's reasoning only when the teacher released it. Everything from
 * the server is put into the page as text, never as HTML; math (not in code assignments) is
 * typeset by KaTeX through math.js, as on the teacher's page. A rubric of criteria shows its
 * breakdown: each criterion's points (after the teacher's review) and the quoted evidence. */
'use strict';

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
  return e;
}
function fmtScore(v) { return v === null || v === undefined ? '–' : (Math.round(v * 100) / 100).toString(); }
function fmtTime(s) { if (!s) return ''; const d = new Date(s); return isNaN(d) ? s : d.toLocaleString(); }
function main() { const m = document.getElementById('main'); while (m.firstChild) m.removeChild(m.firstChild); return m; }

function refused(message) {
  main().appendChild(el('div', { class: 'card', id: 'link-error', role: 'alert' },
    el('h1', {}, 'This link does not work'), el('p', { class: 'error' }, message)));
}

/* The text with its math typeset (math.js), or as it is for code. */
function textOf(t, code) { return code ? String(t ?? '') : mathText(t); }

function steps(list, code) {
  if (!list.length) return el('p', { class: 'muted' }, 'No step-by-step comments.');
  return el('div', { class: 'critique' }, list.map((s) => el('div', { class: 'step v-' + s.verdict, 'data-step': s.step_no },
    el('div', { class: 'row' }, el('strong', {}, 'Step ' + s.step_no), el('span', { class: 'badge v-' + s.verdict }, s.verdict)),
    s.quoted ? el('blockquote', {}, textOf(s.quoted, code)) : null,
    el('div', { class: 'expl' }, textOf(s.explanation, code)))));
}

/* A criterion's points in words, with a symbol so that colour is not the only cue. */
function criterionWords(points, max) {
  if (points === null || points === undefined) return ['none', '– not assessed'];
  if (Number(points) >= Number(max)) return ['met', '✓ met'];
  return Number(points) > 0 ? ['partly', '◐ partly met'] : ['not_met', '✗ not met'];
}
/* The rubric's criteria: points of the maximum, in words, with the quoted evidence. */
function criteria(list, code) {
  if (!Array.isArray(list) || !list.length) return null;
  const num = (v) => (v === null || v === undefined ? null : Number(v));
  const total = list.reduce((s, c) => (s === null || num(c.points) === null ? null : s + num(c.points)), 0);
  const max = list.reduce((s, c) => s + (num(c.max_points) || 0), 0);
  return el('div', {}, el('h3', {}, 'Rubric criteria'),
    el('table', { class: 'list criteria' }, el('tbody', {}, list.map((c) => {
      const [cls, words] = criterionWords(num(c.points), num(c.max_points));
      return el('tr', { class: 'criterion-row', 'data-criterion': c.id },
        el('td', {}, el('code', { class: 'criterion-id' }, c.id), el('div', { class: 'criterion-desc' }, textOf(c.description, code))),
        el('td', {}, el('span', { class: 'badge cv cv-' + cls }, words)),
        el('td', { class: 'num points' }, `${fmtScore(num(c.points))} / ${fmtScore(num(c.max_points))}`),
        el('td', { class: 'evidence' }, c.evidence ? el('blockquote', {}, textOf(c.evidence, code)) : ''));
    })), el('tfoot', {}, el('tr', {}, el('td', {}, 'Total'), el('td', {}),
      el('td', { class: 'num criteria-total' }, `${fmtScore(total)} / ${fmtScore(max)}`), el('td', {})))));
}

function checks(list) {
  if (!list.length) return null;
  const passed = list.filter((c) => c.passed).length;
  return el('div', {}, el('h3', {}, `Automatic checks (${passed}/${list.length} passed)`),
    el('table', { class: 'list checks' }, el('tbody', {}, list.map((c) => el('tr', {},
      el('td', {}, c.kind), el('td', {}, c.name),
      el('td', {}, el('span', { class: 'badge ' + (c.passed ? 'pass' : 'fail') }, c.passed ? 'passed' : 'failed')),
      el('td', {}, c.output ? el('pre', { class: 'excerpt' }, c.output) : ''))))));
}

function feedbackCard(f) {
  const a = f.assignment, code = a.kind === 'code';
  return el('section', { class: 'card feedback', 'data-submission': f.submission_id },
    el('h2', {}, a.title || a.code),
    el('p', { class: 'muted' }, `Submitted ${fmtTime(f.submitted_at)} · released ${fmtTime(f.released_at)}`),
    el('div', { class: 'row' }, el('span', {}, 'Score'),
      el('span', { class: 'score-big final-score' }, fmtScore(f.score)), el('span', { class: 'muted' }, `/ ${fmtScore(f.max_score)}`)),
    f.comment ? el('div', { class: 'teacher-comment' }, el('h3', {}, "Your teacher's comment"), el('p', { class: 'comment' }, textOf(f.comment, code))) : null,
    criteria(f.criteria, code),
    el('h3', {}, 'Step by step'), steps(f.steps || [], code),
    checks(f.checks || []),
    Array.isArray(f.reasoning) && f.reasoning.length
      ? el('details', { class: 'reasoning' }, el('summary', {}, "The grader's full reasoning"),
        f.reasoning.map((r) => el('pre', { class: 'chain' }, r.text)))
      : null);
}

async function load() {
  const token = new URLSearchParams(location.search).get('t') || '';
  let r, doc = null;
  try {
    r = await fetch('/api/student/feedback?t=' + encodeURIComponent(token), { credentials: 'omit' });
    doc = await r.json();
  } catch (e) { refused('The server could not be reached. Try again later.'); return; }
  if (!r.ok) { refused(doc && doc.error ? doc.error.message : 'Error ' + r.status); return; }
  document.title = `Your feedback · ${doc.course.code}`;
  document.getElementById('course').textContent = doc.course.code + (doc.course.title ? ' — ' + doc.course.title : '');
  document.getElementById('student-ref').textContent = doc.student_ref;
  const m = main();
  m.appendChild(el('h1', {}, 'Your feedback'));
  if (!doc.feedback.length) {
    m.appendChild(el('p', { class: 'card muted', id: 'no-feedback' }, 'No feedback has been released to you in this course yet.'));
  } else {
    const list = el('div', { id: 'feedback' });
    for (const f of doc.feedback) list.appendChild(feedbackCard(f));
    m.appendChild(list);
  }
  m.appendChild(el('p', { class: 'muted', id: 'expires' }, `This link works until ${fmtTime(doc.expires_at)}.`));
}

load();
