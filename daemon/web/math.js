/* stepmark math: shared by the teacher's review page (index.html: reviewpage.js, app.js) and
 * the student's feedback page (student.html: student.js). Finds the math in a text ($...$,
 * $$...$$, \(...\), \[...\], a bare \boxed{...}) and typesets it with KaTeX (katex.render
 * builds its own DOM: no HTML strings, styles set through CSSOM, which the content-security
 * policy allows); invalid TeX stays as typed, and without KaTeX the text is made readable as
 * plain text (prettyMath). Text only ever enters the page as text nodes. */
'use strict';

/* A span of the given class and attributes, holding text (as a text node) when given. */
function mathSpan(attrs, text) {
  const e = document.createElement('span');
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.appendChild(document.createTextNode(text));
  return e;
}

const MATH_OPTS = { throwOnError: true, output: 'html', trust: false, strict: 'ignore', maxSize: 20, maxExpand: 300 };

/* Typesets tex into a new span, or null when KaTeX is missing or the TeX is invalid. */
function texNode(tex, display) {
  if (typeof katex === 'undefined' || !tex.trim() || tex.length > 2000) return null;
  const span = mathSpan({ class: 'math' + (display ? ' display' : ''), title: tex, role: 'img', 'aria-label': tex });
  try {
    katex.render(tex, span, Object.assign({ displayMode: display }, MATH_OPTS));
    return span;
  } catch (e) {
    return null;
  }
}
/* The end of the brace group opening at s[i] ('{'), or -1. */
function braceEnd(s, i) {
  let depth = 0;
  for (let k = i; k < s.length; k++) {
    if (s[k] === '\\') { k++; continue; }
    if (s[k] === '{') depth++;
    else if (s[k] === '}' && --depth === 0) return k;
  }
  return -1;
}
/* Splits text into plain strings and {tex, display, raw} pieces: $$..$$, \[..\], $..$,
 * \(..\), and a bare \boxed{...}. "\$" and a "$" that opens or closes on a space stay text. */
function mathPieces(t) {
  const out = [];
  let plain = '', i = 0;
  const push = (tex, display, raw) => { if (plain) out.push(plain); plain = ''; out.push({ tex, display, raw }); };
  while (i < t.length) {
    const rest = t.slice(i);
    let m = null;
    if (rest.startsWith('\\$')) { plain += '\\$'; i += 2; continue; }
    if (rest.startsWith('$$')) { const e = t.indexOf('$$', i + 2); if (e > i + 2) m = [e + 2, t.slice(i + 2, e), true]; }
    else if (rest.startsWith('\\[')) { const e = t.indexOf('\\]', i + 2); if (e > i + 2) m = [e + 2, t.slice(i + 2, e), true]; }
    else if (rest.startsWith('\\(')) { const e = t.indexOf('\\)', i + 2); if (e > i + 2) m = [e + 2, t.slice(i + 2, e), false]; }
    else if (rest[0] === '$' && rest[1] && !/\s/.test(rest[1])) {
      let e = i + 1;
      while ((e = t.indexOf('$', e)) > 0 && (t[e - 1] === '\\')) e++;
      if (e > i + 1 && !/\s/.test(t[e - 1]) && !/[0-9]/.test(t[e + 1] || '')) m = [e + 1, t.slice(i + 1, e), false];
    } else if (rest.startsWith('\\boxed{')) {
      const e = braceEnd(t, i + 6);
      if (e > 0) m = [e + 1, t.slice(i, e + 1), false];
    }
    if (m) { push(m[1], m[2], t.slice(i, m[0])); i = m[0]; } else { plain += t[i]; i++; }
  }
  if (plain) out.push(plain);
  return out;
}
/* Text with its math typeset: an array of nodes and strings (strings are for text nodes).
 * Plain parts are made readable (prettyMath); math KaTeX cannot read stays as typed. */
function mathText(t) {
  return mathPieces(String(t === null || t === undefined ? '' : t)).map((p) => {
    if (typeof p === 'string') return prettyMath(p);
    if (typeof katex === 'undefined') return prettyMath(p.raw);
    return texNode(p.tex, p.display) || mathSpan({ class: 'math-error', title: 'not valid TeX: shown as typed' }, p.raw);
  });
}
/* Appends mathText(t) to node (strings as text nodes) and returns node. */
function appendMath(node, t) {
  for (const c of mathText(t)) node.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
  return node;
}

/* Makes LaTeX-style math easier to read as plain text (the result is still only text):
 * \frac{a}{b} -> (a)/(b), \sqrt{x} -> √(x), x^2 -> x², Greek letters and relations -> Unicode. */
const TEX = {
  alpha: 'α', beta: 'β', gamma: 'γ', delta: 'δ', epsilon: 'ε', varepsilon: 'ε', theta: 'θ', lambda: 'λ', mu: 'μ',
  pi: 'π', sigma: 'σ', tau: 'τ', phi: 'φ', varphi: 'φ', omega: 'ω', Delta: 'Δ', Sigma: 'Σ', Omega: 'Ω', Pi: 'Π',
  leq: '≤', le: '≤', geq: '≥', ge: '≥', neq: '≠', ne: '≠', approx: '≈', equiv: '≡', cdot: '·', times: '×', div: '÷',
  pm: '±', infty: '∞', sum: '∑', prod: '∏', int: '∫', partial: '∂', nabla: '∇', in: '∈', notin: '∉', subset: '⊂',
  subseteq: '⊆', cup: '∪', cap: '∩', forall: '∀', exists: '∃', to: '→', rightarrow: '→', Rightarrow: '⇒',
  implies: '⇒', iff: '⇔', Leftrightarrow: '⇔', mid: '|', ldots: '…', cdots: '⋯', dots: '…', circ: '∘', angle: '∠',
  mathbb: '', left: '', right: '', quad: ' ', qquad: '  ', ',': ' ', ';': ' ', '!': '',
};
const SUP = { '0': '⁰', '1': '¹', '2': '²', '3': '³', '4': '⁴', '5': '⁵', '6': '⁶', '7': '⁷', '8': '⁸', '9': '⁹', '+': '⁺', '-': '⁻', n: 'ⁿ', i: 'ⁱ' };
const SUB = { '0': '₀', '1': '₁', '2': '₂', '3': '₃', '4': '₄', '5': '₅', '6': '₆', '7': '₇', '8': '₈', '9': '₉', '+': '₊', '-': '₋' };
const BB = { R: 'ℝ', N: 'ℕ', Z: 'ℤ', Q: 'ℚ', C: 'ℂ' };
function prettyMath(t) {
  for (let i = 0; i < 4; i++) {
    t = t.replace(/\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}/g, '($1)/($2)')
      .replace(/\\sqrt\{([^{}]*)\}/g, '√($1)')
      .replace(/\\boxed\{([^{}]*)\}/g, '⟦$1⟧')
      .replace(/\\(?:text|mathrm|operatorname)\{([^{}]*)\}/g, '$1')
      .replace(/\\mathbb\{([RNZQC])\}/g, (_, c) => BB[c]);
  }
  t = t.replace(/\\([A-Za-z]+|[,;!])/g, (m, w) => (w in TEX ? TEX[w] : m));
  t = t.replace(/\^\{([0-9n+-]{1,4})\}|\^([0-9n])/g, (m, a, b) => [...(a || b)].map((c) => SUP[c] || c).join(''));
  t = t.replace(/_\{([0-9+-]{1,4})\}|_([0-9])/g, (m, a, b) => [...(a || b)].map((c) => SUB[c] || c).join(''));
  return t.replace(/\$\$?/g, '').replace(/\\\(|\\\)|\\\[|\\\]/g, '');
}
