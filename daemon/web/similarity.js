/* stepmark review: the similarity pages (issue 31). #/similarity/ID lists the pairs of an
 * assignment's submissions that are alike, with a button to compare the class again;
 * #/pair/ID shows one pair side by side with the matching parts highlighted. Uses app.js's
 * helpers (el, api, crumbs, main, notice); app.js's route() calls the two show functions.
 * Similarity is information for the teacher: it never changes a score. */
'use strict';

const SIM_NOTE = 'Similarity never changes a score by itself: it only points out pairs to read. ' +
  'Matches in the starter code and in code almost everyone wrote are left out.';

function simPct(v) { return v === null || v === undefined ? '–' : Math.round(v * 100) + '%'; }

async function showSimilarity(id) {
  const d = await api('GET', `/api/assignments/${encodeURIComponent(id)}/similarity`);
  crumbs({ text: 'Courses', href: '#/' }, { text: 'Assignment', href: '#/assignment/' + id }, { text: 'Similarity' });
  const m = main();
  m.appendChild(el('h1', {}, 'Similar submissions'));
  m.appendChild(el('p', { class: 'sim-note', id: 'sim-note' }, SIM_NOTE));
  const run = d.run;
  const info = run
    ? `Last compared ${fmtTime(run.created_at)}: ${run.submissions} students (latest submission of each), ` +
      `${run.method === 'ngram' ? 'word n-grams' : 'code fingerprints'}, ${run.pairs} pairs at or above ${simPct(run.threshold)}.`
    : 'Not compared yet.';
  const btn = el('button', { type: 'button', id: 'sim-run' }, run ? 'Compare again' : 'Compare submissions');
  const box = el('div', { class: 'card row' }, el('p', { id: 'sim-info' }, info), el('span', { class: 'spacer' }), btn);
  m.appendChild(box);
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    btn.textContent = 'Comparing…';
    try {
      await api('POST', `/api/assignments/${encodeURIComponent(id)}/similarity`, {});
      await showSimilarity(id);
    } catch (e) {
      btn.disabled = false;
      btn.textContent = 'Compare submissions';
      notice(box, e.message, true);
    }
  });
  if (!run) return;
  if (!d.pairs.length) {
    m.appendChild(el('p', { class: 'muted', id: 'sim-none' }, 'No pair reaches the threshold.'));
    return;
  }
  const tb = el('tbody');
  for (const p of d.pairs) {
    const href = '#/pair/' + p.id;
    tb.appendChild(el('tr', { class: 'clickable sim-pair', 'data-id': p.id, onclick: () => { location.hash = href; } },
      el('td', { class: 'num' }, el('a', { href }, simPct(p.score))),
      el('td', {}, p.a.student_ref), el('td', {}, p.b.student_ref),
      el('td', { class: 'num' }, simPct(p.contain_a)), el('td', { class: 'num' }, simPct(p.contain_b)),
      el('td', { class: 'num' }, String(p.regions))));
  }
  m.appendChild(el('table', { class: 'list', id: 'sim-pairs' },
    el('thead', {}, el('tr', {}, el('th', { class: 'num' }, 'Score'), el('th', {}, 'Student A'), el('th', {}, 'Student B'),
      el('th', { class: 'num', title: 'share of A found in B' }, 'A in B'),
      el('th', { class: 'num', title: 'share of B found in A' }, 'B in A'), el('th', { class: 'num' }, 'Regions'))), tb));
}

/* The text with the given character ranges ([start, end, region index]) as <mark>s. */
function simMarked(text, ranges) {
  const chars = Array.from(text);
  const pre = el('pre', { class: 'sim-code' });
  const sorted = ranges.slice().sort((x, y) => x[0] - y[0]);
  let at = 0;
  for (const [s, e, i] of sorted) {
    const start = Math.max(s, at);
    if (e <= start) continue;
    if (start > at) pre.appendChild(document.createTextNode(chars.slice(at, start).join('')));
    pre.appendChild(el('mark', { class: 'sim-hl', 'data-region': i }, chars.slice(start, e).join('')));
    at = e;
  }
  if (at < chars.length) pre.appendChild(document.createTextNode(chars.slice(at).join('')));
  return pre;
}

function simSide(side, label, contain, ranges) {
  return el('div', { class: 'sim-side', id: 'sim-side-' + label.toLowerCase() },
    el('h2', {}, `${label}: `, el('a', { href: '#/submission/' + side.submission_id }, side.student_ref),
      el('span', { class: 'muted' }, ` · ${simPct(contain)} of it found in the other`)),
    simMarked(side.content || '', ranges));
}

/* Hovering a region lights its partner on the other side. */
function simLink(root) {
  root.querySelectorAll('mark.sim-hl').forEach((mk) => {
    const peers = () => root.querySelectorAll(`mark.sim-hl[data-region="${mk.dataset.region}"]`);
    mk.addEventListener('mouseenter', () => peers().forEach((p) => p.classList.add('sim-active')));
    mk.addEventListener('mouseleave', () => peers().forEach((p) => p.classList.remove('sim-active')));
  });
}

async function showSimilarityPair(id) {
  const d = await api('GET', `/api/similarity/${encodeURIComponent(id)}`);
  crumbs({ text: 'Courses', href: '#/' }, { text: d.assignment_code, href: '#/assignment/' + d.assignment_id },
    { text: 'Similarity', href: '#/similarity/' + d.assignment_id }, { text: `${d.a.student_ref} · ${d.b.student_ref}` });
  const m = main();
  m.appendChild(el('h1', {}, `${simPct(d.score)} alike: ${d.a.student_ref} and ${d.b.student_ref}`));
  m.appendChild(el('p', { class: 'sim-note' }, SIM_NOTE));
  const ra = d.regions.map((r, i) => [r.a.start, r.a.end, i]);
  const rb = d.regions.map((r, i) => [r.b.start, r.b.end, i]);
  const list = el('ol', { class: 'sim-regions', id: 'sim-regions' });
  d.regions.forEach((r) => list.appendChild(el('li', {},
    `lines ${r.a.line}–${r.a.end_line} of ${d.a.student_ref} match lines ${r.b.line}–${r.b.end_line} of ${d.b.student_ref}`)));
  m.appendChild(el('details', {}, el('summary', {}, `${d.regions.length} matching region${d.regions.length === 1 ? '' : 's'}`), list));
  const sides = el('div', { class: 'sim-sides' }, simSide(d.a, 'A', d.contain_a, ra), simSide(d.b, 'B', d.contain_b, rb));
  m.appendChild(sides);
  simLink(sides);
}
