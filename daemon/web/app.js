/* stepmark review: the teacher's single-page application over the JSON API of stepmarkd
 * (daemon/http_*.c). Pages: courses -> assignments -> submissions -> one submission, plus
 * live progress. Security rule of this file: text from students, the model or the database is
 * only ever put into the page as text (textContent / text nodes via el()), never as HTML. */
'use strict';

const S = { csrf: null, teacher: null, progressTimer: null };
const SVGNS = 'http://www.w3.org/2000/svg';
const STATES = ['needs_review', 'graded', 'reviewed', 'queued', 'running', 'failed', 'cancelled'];

/* ---------- DOM helpers ---------- */

/* el('div', {class: 'x'}, 'text', child...): strings become text nodes, never markup. */
// The answer check's findings (details of a check of kind answer, worker/sm_answer.c): what
// was extracted, by which rule, from which sentence, the values compared and how.
function answerDetails(x) {
  const pair = (p) => (p && typeof p === 'object' ? `${p.extracted ?? '(none)'} (key: ${p.expected ?? '(none)'})` : null);
  const pol = x.policy && typeof x.policy === 'object'
    ? `percent ${x.policy.percent}, tolerance ${Number(x.policy.tolerance)}, units ${x.policy.units}` : null;
  const dl = el('dl', { class: 'meta' });
  for (const [k, v] of [['extracted', x.extracted ?? '(no final answer found)'], ['rule', x.rule], ['from', x.source],
    ['answer key', x.expected], ['normalized', pair(x.normalized)], ['values', pair(x.values)], ['units', x.units],
    ['percent', x.percent], ['comparison', x.detail], ['policy', pol]]) {
    if (v !== null && v !== undefined && v !== '') dl.append(el('dt', {}, k), el('dd', {}, String(v)));
  }
  return dl;
}
// A unit test's findings (details of a check of kind test, worker/sm_unittest.c), shown for a
// failed test: its kind, what was called with what, expected against actual, the exception.
function testDetails(x) {
  const args = Array.isArray(x.args) ? x.args.map((a) => JSON.stringify(a)).join(', ') : null;
  const kw = x.kwargs && typeof x.kwargs === 'object'
    ? Object.entries(x.kwargs).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ') : '';
  const call = x.function ? `${x.function}(${[args, kw].filter((t) => t).join(', ')})` : null;
  const exc = x.exception && typeof x.exception === 'object'
    ? `${x.exception.type || 'Exception'}${x.exception.message ? ': ' + x.exception.message : ''}` : null;
  const dl = el('dl', { class: 'meta' });
  for (const [k, v] of [['kind', x.kind], ['call', call], ['expected', x.expected], ['actual', x.returned],
    ['exception', exc], ['why', x.error], ['stderr', x.stderr]]) {
    if (v !== null && v !== undefined && v !== '') dl.append(el('dt', {}, k), el('dd', {}, k === 'stderr' ? el('pre', { class: 'excerpt' }, String(v)) : String(v)));
  }
  return dl;
}
// Points of a check ("2 / 2 pts"), or null when it carries none.
function testPoints(c) {
  const x = c.details;
  if (c.kind !== 'test' || !x || typeof x.points !== 'number') return null;
  return `${fmtScore(x.points_earned ?? 0)} / ${fmtScore(x.points)} pts`;
}
// The partial credit from the tests (the compile check's points summary), or null.
function testsCredit(checks) {
  const c = checks.find((k) => k.kind === 'compile' && k.details && k.details.points && k.details.points.total > 0);
  return c ? c.details.points : null;
}
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
  return e;
}
function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
  return e;
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
function main() { return clear(document.getElementById('main')); }
function fmtScore(v) { return v === null || v === undefined ? '–' : (Math.round(v * 100) / 100).toString(); }
function fmtTime(s) { if (!s) return ''; const d = new Date(s); return isNaN(d) ? s : d.toLocaleString(); }
function fmtDuration(sec) {
  if (sec === null || sec === undefined) return 'unknown';
  if (sec < 60) return sec + ' s';
  const m = Math.round(sec / 60);
  return m < 60 ? m + ' min' : Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
}
function stateBadge(s) { return stateBadgeWords(s); }
/* "Ada Lovelace (s-17)" when the LMS roster names the student, else the student_ref alone. */
function studentLabel(name, ref) { return name ? `${name} (${ref})` : ref; } // reviewpage.js: words and a tooltip
function crumbs(...parts) {
  const n = clear(document.getElementById('crumbs'));
  parts.forEach((p, i) => {
    if (i) n.appendChild(el('span', { class: 'sep' }, '›'));
    n.appendChild(p.href ? el('a', { href: p.href }, p.text) : el('span', {}, p.text));
  });
}
function notice(parent, text, isError) {
  const n = el('div', { class: 'notice' + (isError ? ' error' : ''), role: 'status' }, text);
  parent.prepend(n);
  return n;
}

/* ---------- API ---------- */

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}
async function api(method, path, body) {
  const opt = { method, credentials: 'same-origin', headers: {} };
  if (method !== 'GET') {
    opt.headers['Content-Type'] = 'application/json';
    if (S.csrf) opt.headers['X-CSRF-Token'] = S.csrf;
    opt.body = JSON.stringify(body || {});
  }
  const r = await fetch(path, opt);
  let doc = null;
  try { doc = await r.json(); } catch (e) { doc = null; }
  if (!r.ok) {
    const e = doc && doc.error ? doc.error : { code: 'E' + r.status, message: r.statusText };
    if (r.status === 401 && path !== '/api/signin') { S.csrf = null; showSignIn(); }
    throw new ApiError(r.status, e.code, e.message);
  }
  return doc;
}

/* ---------- routing ---------- */

function parseHash() {
  const h = location.hash.replace(/^#/, '') || '/';
  const [path, qs] = h.split('?');
  return { parts: path.split('/').filter(Boolean), query: new URLSearchParams(qs || '') };
}
async function route() {
  if (!S.csrf) {
    try {
      const s = await api('GET', '/api/session');
      signedIn(s);
    } catch (e) { if (e.status !== 401) showFatal(e); return; }
  }
  const { parts, query } = parseHash();
  try {
    if (parts.length === 0) await showCourses();
    else if (parts[0] === 'course' && parts[1]) await showCourse(parts[1]);
    else if (parts[0] === 'assignment' && parts[1]) await showAssignment(parts[1], query);
    else if (parts[0] === 'submission' && parts[1]) await showSubmission(parts[1], query);
    else if (parts[0] === 'progress') await showProgress();
    else if (parts[0] === 'similarity' && parts[1]) await showSimilarity(parts[1]); // similarity.js
    else if (parts[0] === 'pair' && parts[1]) await showSimilarityPair(parts[1]);
    else { crumbs({ text: 'Not found' }); main().appendChild(el('p', { class: 'error' }, 'No such page.')); }
  } catch (e) { if (e.status !== 401) showFatal(e); }
}
function showFatal(e) {
  const m = main();
  if (e.status === 404) { crumbs({ text: 'Courses', href: '#/' }); m.appendChild(el('p', { class: 'error', id: 'not-found' }, 'Not found: it does not exist or it is not one of your courses.')); }
  else m.appendChild(el('p', { class: 'error' }, 'Error: ' + e.message));
}

/* ---------- sign-in ---------- */

function signedIn(s) {
  S.csrf = s.csrf; S.teacher = s.teacher;
  document.getElementById('who').textContent = s.teacher.name;
  document.getElementById('signout').hidden = false;
  document.getElementById('progress-link').hidden = false;
  startProgress();
}
function showSignIn() {
  stopProgress();
  document.getElementById('who').textContent = '';
  document.getElementById('signout').hidden = true;
  document.getElementById('progress-link').hidden = true;
  crumbs();
  const msg = el('p', { class: 'error', id: 'signin-error', role: 'alert' });
  const input = el('input', { id: 'token', type: 'password', autocomplete: 'off', placeholder: 'teacher token', 'aria-label': 'teacher token' });
  const form = el('form', { class: 'card signin', id: 'signin-form' },
    el('h1', {}, 'Sign in'),
    el('p', { class: 'muted' }, 'Paste the token that `stepmark teacher add` printed for you.'),
    input, el('button', { type: 'submit', class: 'primary', id: 'signin-btn' }, 'Sign in'), msg);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    msg.textContent = '';
    try {
      const s = await api('POST', '/api/signin', { token: input.value.trim() });
      input.value = '';
      signedIn(s);
      route();
    } catch (e) { msg.textContent = e.message; }
  });
  main().appendChild(form);
  input.focus();
}
async function signOut() {
  try { await api('POST', '/api/signout', {}); } catch (e) { /* already gone */ }
  S.csrf = null; S.teacher = null;
  location.hash = '#/';
  showSignIn();
}

/* ---------- histogram ---------- */

function histogram(bins, max, width, height) {
  width = width || 240; height = height || 70;
  const top = Math.max(1, ...bins);
  const bw = width / bins.length;
  const s = svg('svg', { class: 'hist', viewBox: `0 -10 ${width} ${height + 22}`, width, height: height + 22, role: 'img', 'aria-label': 'score distribution' });
  s.appendChild(svg('line', { x1: 0, y1: height, x2: width, y2: height }));
  bins.forEach((n, i) => {
    const h = Math.round((n / top) * (height - 4));
    const lo = (max * i) / bins.length, hi = (max * (i + 1)) / bins.length;
    const r = svg('rect', { class: 'bar', x: i * bw + 1, y: height - h, width: bw - 2, height: h });
    r.appendChild(svg('title', {}, `${fmtScore(lo)}–${fmtScore(hi)}: ${n}`));
    s.appendChild(r);
    if (n) s.appendChild(svg('text', { x: i * bw + bw / 2, y: height - h - 2, 'text-anchor': 'middle' }, String(n)));
  });
  s.appendChild(svg('text', { x: 0, y: height + 10 }, '0'));
  s.appendChild(svg('text', { x: width, y: height + 10, 'text-anchor': 'end' }, fmtScore(max)));
  return s;
}

/* ---------- pages ---------- */

async function showCourses() {
  crumbs({ text: 'Courses' });
  const d = await api('GET', '/api/courses');
  const m = main();
  m.appendChild(el('h1', {}, 'Your courses'));
  if (!d.courses.length) { m.appendChild(el('p', { class: 'muted' }, 'No courses are assigned to you.')); return; }
  const tb = el('tbody');
  for (const c of d.courses) {
    const tr = el('tr', { class: 'clickable', 'data-id': c.id, onclick: () => { location.hash = '#/course/' + c.id; } },
      el('td', {}, el('a', { class: 'course-link', href: '#/course/' + c.id }, c.code)),
      el('td', {}, c.title), el('td', { class: 'num' }, c.assignments), el('td', { class: 'num' }, c.submissions),
      el('td', { class: 'num' }, c.needs_review ? el('span', { class: 'badge state-needs_review' }, c.needs_review) : '0'));
    tb.appendChild(tr);
  }
  m.appendChild(el('table', { class: 'list', id: 'courses' },
    el('thead', {}, el('tr', {}, el('th', {}, 'Code'), el('th', {}, 'Title'), el('th', { class: 'num' }, 'Assignments'),
      el('th', { class: 'num' }, 'Submissions'), el('th', { class: 'num' }, 'To review'))), tb));
}

function countBadges(counts) {
  return STATES.filter((s) => counts[s]).map((s) => el('span', { class: 'badge state-' + s, title: stateInfo(s).label + ': ' + stateInfo(s).text }, `${s.replace('_', ' ')} ${counts[s]}`));
}
function exportLinks(a) {
  const base = `/api/assignments/${a.id}`;
  return el('span', { class: 'exports' }, 'Export: ',
    el('a', { class: 'export-moodle', href: `${base}/export.csv?format=moodle`, download: '' }, 'Moodle CSV'), ' · ',
    el('a', { class: 'export-canvas', href: `${base}/export.csv?format=canvas`, download: '' }, 'Canvas CSV'), ' · ',
    el('a', { class: 'export-plain', href: `${base}/export.csv?format=plain`, download: '' }, 'CSV'), ' · ',
    el('a', { class: 'export-json', href: `${base}/export.json`, download: '' }, 'JSON'));
}

/* The assignment page's exports (with the per-criterion option of criteria.js) and the link to
 * similar submissions. */
function exportRow(a) {
  const links = exportLinks(a);
  const opt = exportCriteriaOption(a, links);
  return el('p', {}, links, opt ? ' ' : null, opt, ' · ', el('a', { href: '#/similarity/' + a.id, id: 'similarity-link' }, 'Similar submissions'));
}

async function showCourse(id) {
  const d = await api('GET', '/api/courses/' + encodeURIComponent(id));
  crumbs({ text: 'Courses', href: '#/' }, { text: d.course.code });
  const m = main();
  m.appendChild(el('h1', {}, d.course.code + (d.course.title ? ' — ' + d.course.title : '')));
  if (!d.assignments.length) m.appendChild(el('p', { class: 'muted' }, 'No assignments yet.'));
  const cards = el('div', { class: 'cards', id: 'assignments' });
  for (const a of d.assignments) {
    cards.appendChild(el('div', { class: 'card assignment', 'data-id': a.id },
      el('h2', {}, el('a', { class: 'assignment-link', href: '#/assignment/' + a.id }, a.title || a.code)),
      el('p', { class: 'muted' }, `${a.code} · ${a.kind} · out of ${fmtScore(a.max_score)} · ${a.total} submissions · mean ${fmtScore(a.mean_score)}`),
      el('div', { class: 'row' }, countBadges(a.counts),
        a.flagged ? el('a', { class: 'badge flag', href: `#/assignment/${a.id}?flag=*` }, `flagged ${a.flagged}`) : null),
      histogram(a.histogram || [], a.max_score),
      el('p', {}, exportLinks(a))));
  }
  m.appendChild(cards);
}

function filterForm(a, query) {
  const sel = (id, name, options, value) => {
    const s = el('select', { id, name });
    for (const [v, t] of options) s.appendChild(el('option', { value: v, selected: v === (value || '') }, t));
    return s;
  };
  const state = sel('f-state', 'state', [['', 'any state'], ...STATES.map((s) => [s, stateInfo(s).label])], query.get('state'));
  const flag = sel('f-flag', 'flag', [['', 'any'], ['*', 'flagged'], ['-', 'not flagged'], ...(a.flag_names || []).map((f) => [f, `${f} (${flagInfo(f).label})`])], query.get('flag'));
  const sort = sel('f-sort', 'sort', [['student', 'student'], ['score', 'score ↑'], ['-score', 'score ↓'], ['confidence', 'confidence ↑'],
    ['-confidence', 'confidence ↓'], ['received', 'received'], ['-received', 'newest'], ['state', 'state']], query.get('sort'));
  const min = el('input', { id: 'f-min', name: 'min', type: 'number', step: 'any', value: query.get('min') || '' });
  const max = el('input', { id: 'f-max', name: 'max', type: 'number', step: 'any', value: query.get('max') || '' });
  const q = el('input', { id: 'f-q', name: 'q', type: 'search', placeholder: 'student or name', value: query.get('q') || '' });
  const form = el('form', { class: 'filters', id: 'filters' },
    el('label', {}, 'State', state), el('label', {}, 'Flag', flag), el('label', {}, 'Score ≥', min), el('label', {}, 'Score ≤', max),
    el('label', {}, 'Student', q), el('label', {}, 'Sort', sort), el('button', { type: 'submit', id: 'f-apply' }, 'Apply'));
  const apply = (ev) => {
    if (ev) ev.preventDefault();
    const p = new URLSearchParams();
    for (const f of [state, flag, min, max, q, sort]) if (f.value) p.set(f.name, f.value);
    location.hash = `#/assignment/${a.id}?${p}`;
  };
  form.addEventListener('submit', apply);
  for (const f of [state, flag, sort]) f.addEventListener('change', apply);
  return form;
}

async function showAssignment(id, query) {
  const [d, releases] = await Promise.all([api('GET', `/api/assignments/${encodeURIComponent(id)}?${query}`),
    api('GET', `/api/assignments/${encodeURIComponent(id)}/releases`)]);
  const a = d.assignment;
  const rel = Object.fromEntries(releases.submissions.map((r) => [r.id, r]));
  crumbs({ text: 'Courses', href: '#/' }, { text: a.course_code, href: '#/course/' + a.course_id }, { text: a.title || a.code });
  const m = main();
  m.appendChild(el('h1', {}, a.title || a.code));
  m.appendChild(el('div', { class: 'card row' },
    el('div', {}, el('div', { class: 'row' }, countBadges(a.counts), a.flagged ? el('span', { class: 'badge flag' }, `flagged ${a.flagged}`) : null),
      el('p', { class: 'muted' }, `${a.kind} · out of ${fmtScore(a.max_score)} · ${a.total} submissions · mean ${fmtScore(a.mean_score)}`),
      exportRow(a)),
    el('span', { class: 'spacer' }), histogram(a.histogram || [], a.max_score, 300, 80)));
  m.appendChild(el('details', {}, el('summary', {}, 'Statement'), el('div', { class: 'work prose' }, numbered(a.statement || '', false))));
  m.appendChild(el('details', { id: 'flag-legend-all' }, el('summary', {}, 'What the flags mean'), flagLegend(null, 'flag-legend-list')));
  m.appendChild(quickFilters(a, query)); // reviewpage.js
  m.appendChild(filterForm(a, query));
  const tb = el('tbody');
  for (const s of d.submissions) {
    const href = `#/submission/${s.id}?${query}`;
    const pick = el('input', { type: 'checkbox', class: 'release-pick', value: s.id, 'aria-label': 'select ' + s.student_ref });
    pick.addEventListener('click', (ev) => ev.stopPropagation());
    tb.appendChild(el('tr', { class: 'clickable', 'data-id': s.id, onclick: () => { location.hash = href; } },
      el('td', {}, pick),
      el('td', {}, el('a', { class: 'submission-link', href }, studentLabel(s.student_name, s.student_ref))),
      el('td', {}, stateBadge(s.state)),
      el('td', { class: 'num' }, `${fmtScore(s.final_score)} / ${fmtScore(s.max_score === null ? a.max_score : s.max_score)}`),
      el('td', { class: 'num' }, fmtScore(s.model_score)),
      el('td', { class: 'num' }, s.confidence === null ? '–' : s.confidence.toFixed(2)),
      el('td', {}, (s.flags || []).map(flagBadge)),
      el('td', { class: 'released', 'data-id': s.id }, releaseBadge(rel[s.id])),
      el('td', { class: 'muted' }, fmtTime(s.received_at))));
  }
  m.appendChild(releaseBox(a, () => showAssignment(id, query)));
  const passback = passbackBox(a);
  if (passback) m.appendChild(passback);
  m.appendChild(el('p', { class: 'muted', id: 'count' }, `${d.submissions.length} shown`));
  m.appendChild(el('table', { class: 'list', id: 'submissions' },
    el('thead', {}, el('tr', {}, el('th', {}, ''), el('th', {}, 'Student'), el('th', {}, 'State'), el('th', { class: 'num' }, 'Score'),
      el('th', { class: 'num' }, 'Model'), el('th', { class: 'num' }, 'Confidence'), el('th', {}, 'Flags'), el('th', {}, 'Student sees'), el('th', {}, 'Received'))), tb));
}

/* The student's text as numbered lines (code verbatim; prose/math prettified unless raw). */
function numbered(text, code, raw) {
  const box = el('div', { class: 'work' + (code ? '' : ' prose') });
  text.split('\n').forEach((line, i) => {
    box.appendChild(el('div', { class: 'line', 'data-line': i + 1 },
      el('span', { class: 'ln' }, String(i + 1)), el('span', { class: 'tx' }, code || raw ? line : mathText(line))));
  });
  return box;
}
function normalize(s) { return s.replace(/\s+/g, ' ').trim().toLowerCase(); }
/* Highlights the student's lines that the quoted step comes from. */
function highlightQuote(work, quoted) {
  work.querySelectorAll('.line.hl').forEach((l) => l.classList.remove('hl'));
  const q = normalize(quoted || '');
  if (!q) return;
  const pieces = q.split(/\s*\n\s*|(?<=[.;])\s+/).map((p) => p.trim()).filter((p) => p.length >= 3);
  let first = null;
  work.querySelectorAll('.line').forEach((l) => {
    const raw = normalize(l.dataset.raw || '');
    if (!raw) return;
    if (q.includes(raw) || pieces.some((p) => raw.includes(p))) { l.classList.add('hl'); first = first || l; }
  });
  if (first) first.scrollIntoView({ block: 'nearest' });
}

function reviewPanel(d, rel, onDone) {
  const sub = d.submission, g = d.grading;
  const box = el('div', { class: 'card actions', id: 'review-panel' }, el('h2', {}, 'Review'));
  const pending = sub.job_state === 'queued' || sub.job_state === 'leased';
  const msg = el('div', { id: 'review-msg', role: 'status' });
  const act = async (body, btn) => {
    btn.disabled = true; clear(msg);
    try {
      await api('POST', `/api/submissions/${sub.id}/review`, body);
      onDone(body.action);
    } catch (e) { msg.appendChild(el('div', { class: 'notice error' }, e.message)); btn.disabled = false; }
  };
  const approve = el('button', { type: 'button', class: 'primary', id: 'approve-btn', disabled: !g || pending || sub.final_score === null },
    `Approve ${fmtScore(sub.final_score)}`);
  approve.addEventListener('click', () => act({ action: 'approve', comment: comment.value }, approve));
  /* no score from the model, but one from the checks: approve it in one click */
  const hasProv = g && g.provisional_score !== null && g.provisional_score !== undefined;
  const provBtn = hasProv ? el('button', { type: 'button', class: 'primary', id: 'approve-provisional-btn', disabled: pending },
    `Approve provisional score ${fmtScore(Number(g.provisional_score))}`) : null;
  if (provBtn) provBtn.addEventListener('click', () => act({ action: 'approve', provisional: true, comment: comment.value }, provBtn));
  const score = el('input', { id: 'score-input', type: 'number', min: 0, max: sub.max_score, step: '0.25',
    value: sub.final_score === null ? '' : sub.final_score, 'aria-label': 'new score' });
  const comment = el('textarea', { id: 'comment-input', placeholder: 'Comment for the student (required when adjusting; they see it once released)', maxlength: 10000 });
  const byCriteria = hasCriteria(g) ? criteriaAdjustInputs(g) : null; // criteria.js
  const adjust = el('button', { type: 'button', id: 'adjust-btn', disabled: !g || pending }, byCriteria ? 'Adjust criteria' : 'Adjust score');
  adjust.addEventListener('click', () => {
    if (byCriteria) {
      let criteria;
      try { criteria = byCriteria.criteria(); } catch (e) { clear(msg).appendChild(el('div', { class: 'notice error' }, e.message)); return; }
      act({ action: 'adjust', criteria, comment: comment.value }, adjust);
      return;
    }
    const v = parseFloat(score.value);
    if (isNaN(v)) { clear(msg).appendChild(el('div', { class: 'notice error' }, 'Enter a score.')); return; }
    act({ action: 'adjust', score: v, comment: comment.value }, adjust);
  });
  const regrade = el('button', { type: 'button', class: 'danger', id: 'regrade-btn', disabled: pending }, 'Send back for regrading');
  regrade.addEventListener('click', () => act({ action: 'regrade', comment: comment.value }, regrade));
  const parts = [
    el('div', { class: 'row' }, el('span', {}, 'Final score'), el('span', { class: 'score-big', id: 'final-score' }, `${fmtScore(sub.final_score)}`),
      el('span', { class: 'muted' }, `/ ${fmtScore(sub.max_score)}`), stateBadge(sub.state)),
    pending ? el('p', { class: 'muted' }, 'A grading job is pending; actions wait for its result.') : null,
    el('div', { class: 'row' }, approve),
    provBtn ? el('div', { class: 'row', id: 'provisional-row' }, provBtn,
      el('span', { class: 'muted' }, `from the ${g.provisional_basis === 'tests' ? 'tests' : 'answer key'}: ${g.provisional_detail || ''}`)) : null,
    byCriteria ? byCriteria.node
      : el('div', { class: 'row' }, el('label', {}, 'New score ', score), el('span', { class: 'muted' }, `of ${fmtScore(sub.max_score)}`)),
    comment, el('div', { class: 'row' }, adjust, regrade), releaseRow(d, rel, (m) => onDone('release', m)), msg];
  for (const p of parts) if (p) box.appendChild(p);
  return box;
}

/* ---------- releasing feedback to students ---------- */

/* What the student sees of one submission (r: a row of /api/assignments/ID/releases). */
function releaseBadge(r) {
  if (!r || !r.visible_grading_id) return el('span', { class: 'muted' }, 'nothing yet');
  if (r.state === 'released') return el('span', { class: 'badge state-reviewed' }, r.include_reasoning ? 'released + reasoning' : 'released');
  return el('span', { class: 'badge state-needs_review', title: 'the student still sees an earlier grading' }, 'earlier grading');
}
function releaseSummary(res) {
  const parts = [`Released ${res.released.length}.`];
  if (res.already_released.length) parts.push(`${res.already_released.length} already released.`);
  if (res.skipped.length) parts.push(`${res.skipped.length} not released (${[...new Set(res.skipped.map((x) => x.reason))].join('; ')}).`);
  return parts.join(' ');
}
/* The assignment page's release controls: all graded submissions, or the ticked ones. */
function releaseBox(a, reload) {
  const reasoning = el('input', { type: 'checkbox', id: 'release-reasoning' });
  const msg = el('div', { id: 'release-msg', role: 'status' });
  const all = el('button', { type: 'button', class: 'primary', id: 'release-all-btn' }, 'Release all graded');
  const some = el('button', { type: 'button', id: 'release-selected-btn' }, 'Release selected');
  const go = async (btn, ids) => {
    btn.disabled = true; msg.textContent = '';
    const body = { include_reasoning: reasoning.checked };
    if (ids) body.submissions = ids;
    try {
      const res = await api('POST', `/api/assignments/${a.id}/release`, body);
      await reload();
      notice(document.getElementById('release-box'), releaseSummary(res));
    } catch (e) { msg.appendChild(el('div', { class: 'notice error' }, e.message)); btn.disabled = false; }
  };
  all.addEventListener('click', () => go(all, null));
  some.addEventListener('click', () => {
    const ids = [...document.querySelectorAll('input.release-pick:checked')].map((c) => Number(c.value));
    if (!ids.length) { msg.textContent = 'Tick the submissions to release first.'; return; }
    go(some, ids);
  });
  return el('div', { class: 'card release-box', id: 'release-box' },
    el('h2', {}, 'Release feedback to students'),
    el('p', { class: 'muted' }, 'Students then see the final score, your comment, the critique steps and the check results through their student link. A regraded submission needs releasing again.'),
    el('label', {}, reasoning, " Include the model's full reasoning chain"),
    el('div', { class: 'row' }, all, some), msg);
}
/* When the assignment's grades go back to the LMS gradebook (LTI grade passback): shown only
 * when the course is linked to an LMS course. */
const PASSBACK_WORDS = { 'on-approval': 'as soon as you approve or adjust a grade', 'on-release': 'only when you release feedback' };
function passbackBox(a) {
  if (!a.lti_linked) return null;
  const course = a.lti_passback_course || 'on-release';
  const sel = el('select', { id: 'lti-passback', 'aria-label': 'when grades go back to the LMS' },
    el('option', { value: 'default', selected: !a.lti_passback_own }, `Course default: ${PASSBACK_WORDS[course]}`),
    el('option', { value: 'on-approval', selected: a.lti_passback_own === 'on-approval' }, 'On approval: as soon as you approve or adjust a grade'),
    el('option', { value: 'on-release', selected: a.lti_passback_own === 'on-release' }, 'On release: only when you release feedback'));
  const save = el('button', { type: 'button', id: 'lti-passback-save' }, 'Save');
  const status = el('span', { id: 'lti-passback-status', class: 'muted', role: 'status', 'data-policy': a.lti_passback },
    `Scores go to the LMS gradebook ${PASSBACK_WORDS[a.lti_passback]}.`);
  save.addEventListener('click', async () => {
    save.disabled = true;
    try {
      const r = await api('POST', `/api/assignments/${a.id}/lti-passback`, { policy: sel.value });
      status.dataset.policy = r.passback;
      status.textContent = `Saved: scores go to the LMS gradebook ${PASSBACK_WORDS[r.passback]}.`;
    } catch (e) { status.textContent = e.message; }
    save.disabled = false;
  });
  return el('div', { class: 'card', id: 'lti-passback-box', 'data-assignment': a.id },
    el('h2', {}, 'LMS gradebook'),
    el('p', { class: 'muted' }, 'The LMS shows a submission as waiting for grading once the model has graded it. When should the score and your comment go back?'),
    el('div', { class: 'row' }, sel, save), status);
}
/* The submission page's release row. */
function releaseRow(d, r, onDone) {
  const sub = d.submission;
  const pending = sub.job_state === 'queued' || sub.job_state === 'leased';
  const reasoning = el('input', { type: 'checkbox', id: 'release-reasoning' });
  const btn = el('button', { type: 'button', id: 'release-btn', disabled: !d.grading || pending || sub.final_score === null }, 'Release to student');
  const status = el('span', { id: 'release-status', class: 'muted' },
    r.state === 'released' ? `Released ${fmtTime(r.released_at)}${r.include_reasoning ? ' with the reasoning chain' : ''}.`
      : r.visible_grading_id ? 'The student still sees an earlier grading: release this one.' : 'Not released: the student sees nothing yet.');
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try {
      const res = await api('POST', `/api/assignments/${sub.assignment_id}/release`, { submissions: [sub.id], include_reasoning: reasoning.checked });
      onDone(res.released.length ? 'Released to the student.' : releaseSummary(res));
    } catch (e) { status.textContent = e.message; btn.disabled = false; }
  });
  return el('div', { class: 'release-box' }, status,
    el('div', { class: 'row' }, btn, el('label', {}, reasoning, ' with the reasoning chain')));
}

function historyTable(d) {
  const tb = el('tbody');
  for (const r of d.reviews) {
    tb.appendChild(el('tr', {}, el('td', {}, fmtTime(r.created_at)), el('td', {}, r.teacher), el('td', {}, r.action),
      el('td', { class: 'num' }, fmtScore(r.old_score)), el('td', { class: 'num' }, fmtScore(r.new_score)),
      el('td', { class: 'comment' }, r.comment), el('td', { class: 'muted' }, '#' + r.grading_id)));
    const crit = reviewCriteriaRow(r, 7); // criteria.js: what the review changed per criterion
    if (crit) tb.appendChild(crit);
  }
  if (!d.reviews.length) tb.appendChild(el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'No reviews yet.')));
  return el('table', { class: 'list', id: 'history' },
    el('thead', {}, el('tr', {}, el('th', {}, 'When'), el('th', {}, 'Teacher'), el('th', {}, 'Action'), el('th', { class: 'num' }, 'Old'),
      el('th', { class: 'num' }, 'New'), el('th', {}, 'Comment'), el('th', {}, 'Grading'))), tb);
}

async function showSubmission(id, query) {
  const d = await api('GET', `/api/submissions/${encodeURIComponent(id)}?${query}`);
  const sub = d.submission, g = d.grading;
  const qs = query.toString();
  crumbs({ text: 'Courses', href: '#/' }, { text: sub.course_code, href: '#/course/' + sub.course_id },
    { text: sub.assignment_title || sub.assignment_code, href: `#/assignment/${sub.assignment_id}?${qs}` }, { text: studentLabel(sub.student_name, sub.student_ref) });
  const m = main();
  const nav = d.nav || {};
  const go = (to) => { if (to) location.hash = `#/submission/${to}?${qs}`; };
  const prev = el('button', { type: 'button', id: 'prev-btn', disabled: !nav.prev, title: 'previous (k)' }, '← Previous');
  const next = el('button', { type: 'button', id: 'next-btn', disabled: !nav.next, title: 'next (j)' }, 'Next →');
  prev.addEventListener('click', () => go(nav.prev));
  next.addEventListener('click', () => go(nav.next));
  S.keys = { j: () => go(nav.next), k: () => go(nav.prev) };
  m.appendChild(el('div', { class: 'sub-head' },
    el('h1', { id: 'student' }, studentLabel(sub.student_name, sub.student_ref)), reviewStatus(d), // reviewpage.js: state in words, who acts and why
    el('span', { class: 'muted' }, nav.position ? `${nav.position} of ${nav.count}${nav.filtered ? ' (filtered)' : ''}` : ''),
    el('span', { class: 'spacer' }), prev, next));

  const flags = (g && g.flags) || [];
  if (g) {
    m.appendChild(el('div', { class: 'card row', id: 'grading-meta' },
      el('span', {}, 'Model score ', el('strong', {}, `${fmtScore(g.score)} / ${fmtScore(g.max_score)}`)),
      g.provisional_score !== null && g.provisional_score !== undefined ? el('span', { id: 'provisional-score' }, 'Provisional score from the checks ',
        el('strong', {}, `${fmtScore(Number(g.provisional_score))} / ${fmtScore(g.max_score)}`)) : null,
      g.masked_differs !== null && g.masked_differs !== undefined ? el('span', { id: 'masked-score', title: `What the model saw the second time:\n${g.masked_content || ''}` },
        'Score without the flagged text ', el('strong', {}, `${fmtScore(g.masked_score === null ? null : Number(g.masked_score))} / ${fmtScore(g.max_score)}`),
        g.masked_differs ? el('span', { class: 'badge flag', id: 'masked-differs' }, `differs by more than ${fmtScore(Number(g.masked_margin))}`) : null) : null,
      testsCredit(d.checks) ? el('span', { id: 'test-points' }, 'Points from the tests ',
        el('strong', {}, `${fmtScore(testsCredit(d.checks).earned)} / ${fmtScore(testsCredit(d.checks).total)}`)) : null,
      el('span', {}, 'Confidence ', el('strong', { id: 'confidence' }, g.confidence === null ? '–' : g.confidence.toFixed(2))),
      el('span', { id: 'flags' }, flags.length ? flags.map(flagBadge) : el('span', { class: 'muted' }, 'no flags')),
      flags.length ? el('details', { id: 'flag-legend' }, el('summary', {}, 'What the flags mean'), flagLegend(flags, 'flag-legend-list')) : null,
      g.status === 'needs_review' ? el('span', { class: 'badge flag', id: 'grading-flagged', title: 'The model asked for a teacher to check this grading' },
        sub.state === 'reviewed' ? 'flagged by the model (since reviewed)' : 'flagged by the model') : null,
      el('span', { class: 'muted' }, `${g.model_name} · seed ${g.seed} · ${g.completion_tokens} tokens`)));
    if (g.summary) m.appendChild(el('p', { class: 'card', id: 'summary' }, isCodeKind(sub) ? g.summary : mathText(g.summary)));
  } else {
    m.appendChild(el('p', { class: 'card muted' }, 'Not graded yet.'));
  }

  const split = el('div', { class: 'split' });
  const left = el('div', {});
  const right = el('div', {});
  const isCode = sub.kind === 'code';
  let raw = false;
  const workHolder = el('div', { id: 'student-work' });
  const drawWork = () => {
    clear(workHolder).appendChild(numbered(sub.content, isCode, raw));
    workHolder.querySelectorAll('.line').forEach((l, i) => { l.dataset.raw = sub.content.split('\n')[i]; });
  };
  drawWork();
  const rawToggle = isCode ? null : el('button', { type: 'button', id: 'raw-toggle' }, 'Show as typed');
  if (rawToggle) rawToggle.addEventListener('click', () => { raw = !raw; rawToggle.textContent = raw ? 'Show readable math' : 'Show as typed'; drawWork(); });
  left.append(el('div', { class: 'row' }, el('h2', {}, "Student's work"), el('span', { class: 'spacer' }), rawToggle), workHolder);

  const critique = el('div', { id: 'critique' });
  for (const s of d.steps) {
    const card = el('div', { class: 'step v-' + s.verdict, 'data-step': s.step_no, tabindex: 0 },
      el('div', { class: 'row' }, el('strong', {}, 'Step ' + s.step_no), el('span', { class: 'badge v-' + s.verdict }, s.verdict),
        s.agreement === null ? null : el('span', { class: 'muted' }, `agreement ${Math.round(s.agreement * 100)}%`)),
      s.quoted ? el('blockquote', {}, isCode ? s.quoted : mathText(s.quoted)) : null,
      el('div', { class: 'expl' }, isCode ? s.explanation : mathText(s.explanation)));
    const pick = () => {
      critique.querySelectorAll('.step.active').forEach((c) => c.classList.remove('active'));
      card.classList.add('active');
      highlightQuote(workHolder, s.quoted);
    };
    card.addEventListener('click', pick);
    card.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') pick(); });
    critique.appendChild(card);
  }
  if (!d.steps.length) critique.appendChild(el('p', { class: 'muted' }, 'No critique steps.'));
  right.append(el('h2', {}, 'Critique, step by step'), critique);
  split.append(left, right);
  m.appendChild(split);
  if (hasCriteria(g)) m.appendChild(criteriaTable(g, isCode, (q) => highlightQuote(workHolder, q))); // criteria.js

  const checks = el('tbody');
  for (const c of d.checks) {
    checks.appendChild(el('tr', {}, el('td', {}, c.kind), el('td', {}, c.name),
      el('td', {}, el('span', { class: 'badge ' + (c.passed ? 'pass' : 'fail') }, c.passed ? 'passed' : 'failed'),
        testPoints(c) ? el('span', { class: 'muted test-points' }, ' ' + testPoints(c)) : null),
      el('td', { class: 'num' }, c.time_ms === null ? '' : c.time_ms + ' ms'),
      el('td', {}, c.output_excerpt ? el('pre', { class: 'excerpt' }, c.output_excerpt) : '')));
    if (c.kind === 'answer' && c.details && typeof c.details === 'object' && 'extracted' in c.details)
      checks.appendChild(el('tr', { class: 'answer-detail' }, el('td', { colspan: 5 }, answerDetails(c.details))));
    if (c.kind === 'test' && !c.passed && c.details && typeof c.details === 'object' && c.details.kind)
      checks.appendChild(el('tr', { class: 'test-detail' }, el('td', { colspan: 5 }, failedTestDetails(c, sub))));
  }
  const passed = d.checks.filter((c) => c.passed).length;
  const lower = el('div', { class: 'split' });
  const lleft = el('div', {});
  lleft.append(el('h2', {}, `Deterministic checks (${passed}/${d.checks.length} passed)`),
    d.checks.length ? el('table', { class: 'list', id: 'checks' }, el('thead', {}, el('tr', {}, el('th', {}, 'Kind'), el('th', {}, 'Name'),
      el('th', {}, 'Result'), el('th', { class: 'num' }, 'Time'), el('th', {}, 'Output'))), checks) : el('p', { class: 'muted' }, 'No checks ran.'));
  for (const c of d.chains) {
    lleft.appendChild(el('details', { class: 'chain' }, el('summary', {}, `Full reasoning chain${d.chains.length > 1 ? ' (sample ' + c.sample_no + ')' : ''} — ${c.tokens} tokens`),
      el('pre', { class: 'chain' }, c.text)));
  }
  lleft.appendChild(el('details', {}, el('summary', {}, 'Assignment statement'), el('div', { class: 'work prose' }, numbered(sub.statement || '', false))));
  lleft.appendChild(assignmentKey(sub)); // reviewpage.js: rubric, answer key, reference solution (folded)
  if (g) {
    const dl = el('dl', { class: 'meta' });
    for (const [k, v] of [['model', g.model_name], ['model hash', g.model_hash], ['engine', g.engine_version], ['prompt template', g.prompt_template_version],
      ['seed', String(g.seed)], ['sampling', JSON.stringify(g.sampling)], ['tokens', `${g.prompt_tokens} prompt + ${g.completion_tokens} generated`],
      ['worker', g.worker || ''], ['graded', fmtTime(g.created_at)]]) dl.append(el('dt', {}, k), el('dd', {}, v));
    lleft.appendChild(el('details', {}, el('summary', {}, 'Reproducibility'), dl));
  }
  const lright = el('div', {});
  const rels = await api('GET', `/api/assignments/${sub.assignment_id}/releases`);
  const rel = rels.submissions.find((r) => r.id === sub.id) || {};
  lright.append(reviewPanel(d, rel, (action, text) => {
    const done = text || { approve: 'Approved.', adjust: 'Score adjusted.', regrade: 'Sent back for regrading.' }[action];
    showSubmission(id, query).then(() => notice(document.getElementById('review-panel'), done));
  }), el('h2', {}, 'Review history'), historyTable(d));
  if (d.jobs.length) {
    lright.appendChild(el('details', {}, el('summary', {}, `Jobs (${d.jobs.length})`), el('table', { class: 'list' },
      el('tbody', {}, d.jobs.map((j) => el('tr', {}, el('td', {}, '#' + j.id), el('td', {}, j.state), el('td', {}, `attempts ${j.attempts}`),
        el('td', {}, `seed ${j.seed}`), el('td', { class: 'error' }, j.last_error || '')))))));
  }
  lower.append(lleft, lright);
  m.appendChild(lower);
}

async function showProgress() {
  crumbs({ text: 'Courses', href: '#/' }, { text: 'Progress' });
  const d = await api('GET', '/api/progress');
  const m = main();
  m.appendChild(el('h1', {}, 'Progress'));
  m.appendChild(el('p', { class: 'card', id: 'progress-summary' },
    `Queue: ${d.queue.queued} waiting (${d.queue.queued_interactive} interactive, ${d.queue.queued_batch} batch), ${d.queue.running} running · ` +
    `${d.tokens_per_second.toFixed(1)} tokens/s · ${d.gradings_per_minute.toFixed(1)} gradings/min · ` +
    `${d.workers_connected} workers · ETA ${fmtDuration(d.eta_seconds)}`));
  const tb = el('tbody');
  for (const a of d.assignments) {
    tb.appendChild(el('tr', {}, el('td', {}, a.course_code), el('td', {}, el('a', { href: '#/assignment/' + a.id }, a.title || a.code)),
      el('td', {}, el('progress', { max: a.total || 1, value: a.done })), el('td', { class: 'num' }, `${a.done} / ${a.total}`),
      el('td', { class: 'num' }, a.pending), el('td', { class: 'num' }, a.failed), el('td', {}, fmtDuration(a.eta_seconds))));
  }
  m.appendChild(el('table', { class: 'list', id: 'progress-table' }, el('thead', {}, el('tr', {}, el('th', {}, 'Course'), el('th', {}, 'Assignment'),
    el('th', {}, 'Done'), el('th', { class: 'num' }, ''), el('th', { class: 'num' }, 'Pending'), el('th', { class: 'num' }, 'Failed'), el('th', {}, 'ETA'))), tb));
}

/* ---------- live progress footer ---------- */

async function pollProgress() {
  const bar = document.getElementById('progress-bar');
  try {
    const d = await api('GET', '/api/progress');
    const pending = d.queue.queued + d.queue.running;
    bar.hidden = false;
    bar.textContent = pending
      ? `Grading: ${d.queue.queued} waiting, ${d.queue.running} running · ${d.tokens_per_second.toFixed(1)} tokens/s · ETA ${fmtDuration(d.eta_seconds)}`
      : 'Queue empty: all submissions are graded.';
  } catch (e) { bar.hidden = true; }
}
function startProgress() { stopProgress(); pollProgress(); S.progressTimer = setInterval(pollProgress, 5000); }
function stopProgress() { if (S.progressTimer) clearInterval(S.progressTimer); S.progressTimer = null; document.getElementById('progress-bar').hidden = true; }

document.addEventListener('keydown', (ev) => {
  if (ev.target.closest && ev.target.closest('input, textarea, select')) return;
  if (S.keys && S.keys[ev.key] && parseHash().parts[0] === 'submission') S.keys[ev.key]();
});
document.getElementById('signout').addEventListener('click', signOut);
window.addEventListener('hashchange', route);
route();
