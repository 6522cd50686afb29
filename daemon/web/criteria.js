/* stepmark review: rubric criteria on the teacher's pages (used by app.js). A grading of an
 * assignment whose rubric is a list of criteria carries, per criterion, the model's verdict,
 * points and quoted evidence and the current points (the model's, or a teacher's adjustment):
 * shown as a table with the total next to the maximum; the review panel adjusts the criteria
 * one by one (the total follows live); the review history lists what each review changed; the
 * assignment page can export one column per criterion. Same rule as app.js: data only ever
 * enters the page as text nodes (math through math.js). */
'use strict';

// The model's verdict in words, with a symbol so that colour is not the only cue.
const CRITERION_VERDICT = {
  met: ['met', '✓', 'The model found this criterion fully met.'],
  partly: ['partly met', '◐', 'The model found this criterion partly met.'],
  not_met: ['not met', '✗', 'The model found this criterion not met.'],
};
function criterionNumber(v) { return v === null || v === undefined || v === '' ? null : Number(v); }
function hasCriteria(g) { return !!(g && Array.isArray(g.criteria) && g.criteria.length); }
function criterionVerdictBadge(v) {
  const i = CRITERION_VERDICT[v];
  if (!i) return el('span', { class: 'badge cv cv-none', 'data-verdict': 'none', title: 'The model gave no valid verdict for this criterion.' }, '– no verdict');
  return el('span', { class: 'badge cv cv-' + v, 'data-verdict': v, title: i[2] }, `${i[1]} ${i[0]}`);
}
function criteriaSum(list, key) {
  return list.reduce((s, c) => (s === null || criterionNumber(c[key]) === null ? null : s + criterionNumber(c[key])), 0);
}

/* The grading's criteria as a table: criterion, verdict, the model's points, evidence,
 * agreement, current points (marked when adjusted) of the maximum; the total under it.
 * onPick(evidence) is called when a row is chosen (the page highlights the quote). */
function criteriaTable(g, isCode, onPick) {
  const tb = el('tbody');
  for (const c of g.criteria) {
    const max = criterionNumber(c.max_points), cur = criterionNumber(c.current_points);
    const tr = el('tr', { class: 'criterion-row' + (c.adjusted ? ' adjusted' : ''), 'data-criterion': c.id, tabindex: 0 },
      el('td', {}, el('code', { class: 'criterion-id' }, c.id), el('div', { class: 'criterion-desc' }, isCode ? c.description : mathText(c.description))),
      el('td', {}, criterionVerdictBadge(c.verdict)),
      el('td', { class: 'num model-points' }, fmtScore(criterionNumber(c.points))),
      el('td', { class: 'evidence' }, c.evidence ? el('blockquote', {}, isCode ? c.evidence : mathText(c.evidence)) : el('span', { class: 'muted' }, 'none')),
      el('td', { class: 'num agreement' }, c.agreement === null || c.agreement === undefined ? '–' : `${Math.round(Number(c.agreement) * 100)}%`),
      el('td', { class: 'num current-points' }, el('strong', {}, fmtScore(cur)), ` / ${fmtScore(max)}`,
        c.adjusted ? el('span', { class: 'badge adjusted', title: "A teacher's review changed the model's points" }, 'adjusted') : null));
    const pick = () => {
      tb.querySelectorAll('tr.active').forEach((r) => r.classList.remove('active'));
      tr.classList.add('active');
      if (onPick) onPick(c.evidence || '');
    };
    tr.addEventListener('click', pick);
    tr.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') pick(); });
    tb.appendChild(tr);
  }
  const max = criteriaSum(g.criteria, 'max_points');
  return el('div', { class: 'card', id: 'criteria' },
    el('h2', {}, 'Rubric criteria'),
    el('table', { class: 'list', id: 'criteria-table' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Criterion'), el('th', {}, 'Verdict'), el('th', { class: 'num' }, 'Model'),
        el('th', {}, 'Evidence'), el('th', { class: 'num' }, 'Agreement'), el('th', { class: 'num' }, 'Points'))),
      tb,
      el('tfoot', {}, el('tr', {}, el('td', {}, 'Total'), el('td', {}),
        el('td', { class: 'num', id: 'criteria-model-total' }, fmtScore(criteriaSum(g.criteria, 'points'))), el('td', {}), el('td', {}),
        el('td', { class: 'num', id: 'criteria-total' }, el('strong', {}, fmtScore(criteriaSum(g.criteria, 'current_points'))), ` / ${fmtScore(max)}`)))));
}

/* The review panel's per-criterion inputs: {node, criteria()} where criteria() returns the
 * points to post ({id: points}) or throws an Error with a message for the teacher. */
function criteriaAdjustInputs(g) {
  const inputs = [];
  const total = el('strong', { id: 'crit-total' });
  const max = criteriaSum(g.criteria, 'max_points');
  const update = () => {
    const v = inputs.map((i) => (i.input.value.trim() === '' ? NaN : Number(i.input.value)));
    total.textContent = `${v.some(isNaN) ? '–' : fmtScore(v.reduce((s, x) => s + x, 0))} / ${fmtScore(max)}`;
  };
  const rows = g.criteria.map((c) => {
    const cur = criterionNumber(c.current_points);
    const input = el('input', { class: 'crit-input', type: 'number', min: 0, max: criterionNumber(c.max_points), step: '0.01',
      value: cur === null ? '' : cur, 'data-criterion': c.id, 'aria-label': `points for ${c.id}` });
    input.addEventListener('input', update);
    inputs.push({ id: c.id, input });
    return el('label', { class: 'crit-adjust' }, el('code', {}, c.id), input, el('span', { class: 'muted' }, `of ${fmtScore(criterionNumber(c.max_points))}`));
  });
  update();
  const criteria = () => {
    const out = {};
    for (const i of inputs) {
      const s = i.input.value.trim();
      if (s === '' || isNaN(Number(s))) throw new Error(`Enter the points for criterion ${i.id}.`);
      out[i.id] = Number(s);
    }
    return out;
  };
  const node = el('fieldset', { class: 'crit-adjust-box', id: 'criteria-adjust' }, el('legend', {}, 'Points per criterion'),
    rows, el('div', { class: 'row' }, el('span', {}, 'New total'), total));
  return { node, criteria };
}

/* The row under a review in the history listing what it changed per criterion, or null. */
function reviewCriteriaRow(r, cols) {
  const list = Array.isArray(r.criteria) ? r.criteria : [];
  if (!list.length) return null;
  const changed = list.filter((c) => criterionNumber(c.old_points) !== criterionNumber(c.new_points));
  return el('tr', { class: 'review-criteria', 'data-review': r.id },
    el('td', { colspan: cols }, el('span', { class: 'muted' }, 'Criteria: '),
      changed.length ? changed.map((c, k) => el('span', { class: 'crit-change', 'data-criterion': c.id }, k ? '; ' : '',
        el('code', {}, c.id), ` ${fmtScore(criterionNumber(c.old_points))} → ${fmtScore(criterionNumber(c.new_points))}`))
        : el('span', { class: 'muted' }, 'no criterion changed')));
}

/* The assignment page's option for one column per criterion in the CSV exports. */
function exportCriteriaOption(a, links) {
  if (!Array.isArray(a.rubric) || !a.rubric.length) return null;
  const box = el('input', { type: 'checkbox', id: 'export-criteria' });
  box.addEventListener('change', () => {
    for (const l of links.querySelectorAll('a[href*="export.csv"]')) {
      const u = new URL(l.getAttribute('href'), location.href);
      if (box.checked) u.searchParams.set('criteria', '1'); else u.searchParams.delete('criteria');
      l.setAttribute('href', u.pathname + u.search);
    }
  });
  return el('label', { class: 'export-criteria', title: 'Adds a column criterion:<id> per criterion with its current points' },
    box, ' one column per criterion');
}
