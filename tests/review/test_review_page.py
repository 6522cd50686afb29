#!/usr/bin/env python3
"""test_review_page: the teacher's submission page explains a grading, in headless Chromium.

  test_review_page.py --server BIN --cli BIN --seed seed.sql --web DIR --out DIR

Same environment as test_review.py (its own database with seed.sql, then seed_page.sql; two
teachers; stepmark-http-test with the built-in web files). Checks: KaTeX served from Debian's
libjs-katex under /katex/ with a fixed allow-list; math in the student's work, the critique, the
summary, the rubric, the answer key and the reference solution typeset by KaTeX (invalid TeX
stays text, markup stays text); a legend and a tooltip for every flag the worker can raise
(read from worker/*.c) and the raw id of an unknown one; status badges in words and the review
state filter; the rubric, answer key (with its policy) and reference solution folded; a failed
stdin/stdout test with its input, expected and actual output and the first difference marked;
and no content-security-policy violation in the console.
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_review import Checks, Client, Env, chromium  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))


def worker_flags():
    """Every flag id the worker can raise, read from its sources."""
    flags = set()
    for path in glob.glob(os.path.join(TOP, 'worker', '*.[ch]')):
        text = open(path, encoding='utf-8').read()
        for call in re.findall(r'add_flag\(\s*flags,([^;]*?)\)', text):
            flags.update(re.findall(r'"([a-z_:]+)"', call))
        flags.update(re.findall(r'"(injection:[a-z_]+)"', text))
        flags.update(re.findall(r'#define\s+SM_\w*FLAG\s+"([a-z_:]+)"', text))
    return sorted(flags)


def click(d, e):
    """Clicks e after scrolling it to the middle (the progress footer covers the bottom)."""
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", e)
    e.click()


def katex_http(t, base):
    c = Client(base)
    st, h, body = c.request('GET', '/katex/katex.min.js')
    t.check('KaTeX script served from /katex/', st == 200 and b'katex' in body[:2000]
            and h.get('Content-Type', '').startswith('text/javascript'), (st, h.get('Content-Type')))
    st, h, body = c.request('GET', '/katex/katex.min.css')
    t.check('KaTeX stylesheet served', st == 200 and b'KaTeX_Main' in body, st)
    st, h, _ = c.request('GET', '/katex/fonts/KaTeX_Main-Regular.woff2')
    t.check('KaTeX fonts served as fonts', st == 200 and h.get('Content-Type') == 'font/woff2',
            (st, h.get('Content-Type')))
    for bad in ('/katex/katex.js', '/katex/katex.mjs', '/katex/fonts/KaTeX_Evil.woff2',
                '/katex/fonts/KaTeX_Main-Regular.otf', '/katex/../index.html',
                '/katex/%2e%2e/%2e%2e/etc/passwd', '/katex/contrib/auto-render.js'):
        st, _, _ = c.request('GET', bad)
        t.equal(f'not on the allow-list: {bad}', st, 404)
    st, h, _ = c.request('GET', '/')
    csp = h.get('Content-Security-Policy', '')
    t.check('CSP keeps inline styles and scripts out', "default-src 'self'" in csp
            and 'unsafe-inline' not in csp, csp)


def submission_math(t, d, find, wait, By):
    d.get(d.base + '/#/submission/40')
    find('#critique .step')
    lines = d.find_elements(By.CSS_SELECTOR, '#student-work .line')
    t.equal('four lines of work', len(lines), 4)
    t.check('$...$ and \\(...\\) typeset', len(lines[0].find_elements(By.CSS_SELECTOR, '.katex')) == 2,
            lines[0].get_attribute('innerHTML')[:300])
    t.check('\\[...\\] typeset', len(lines[1].find_elements(By.CSS_SELECTOR, '.katex')) == 1)
    t.check('\\boxed{} typeset, no ⟦⟧ placeholder',
            len(lines[3].find_elements(By.CSS_SELECTOR, '.katex')) == 1 and '⟦' not in lines[3].text,
            lines[3].text)
    for i in (0, 1, 3):
        t.check(f'no raw $ or \\frac on line {i + 1}', '$' not in lines[i].text
                and '\\frac' not in lines[i].text and '\\(' not in lines[i].text, lines[i].text)
    t.equal('fractions drawn by KaTeX', len(lines[0].find_elements(By.CSS_SELECTOR, '.katex .mfrac')), 4)
    bad = lines[2].find_elements(By.CSS_SELECTOR, '.math-error')
    t.check('invalid TeX shown as typed text', len(bad) == 1 and bad[0].text == '$\\frac{1}{$',
            [b.text for b in bad])
    t.check('no KaTeX error element', not d.find_elements(By.CSS_SELECTOR, '.katex-error'))
    t.check('markup in the work stays text', '<b>text</b>' in lines[2].text
            and not d.find_elements(By.CSS_SELECTOR, '#main b'))
    crit = d.find_element(By.ID, 'critique')
    t.check('critique quotes and explanations typeset',
            len(crit.find_elements(By.CSS_SELECTOR, 'blockquote .katex')) == 2
            and len(crit.find_elements(By.CSS_SELECTOR, '.expl .katex')) == 2)
    t.check('invalid TeX in the critique stays text',
            '$\\frac{2}{$' in crit.find_elements(By.CSS_SELECTOR, '.expl .math-error')[0].text)
    t.check('summary typeset', len(d.find_elements(By.CSS_SELECTOR, '#summary .katex')) == 1
            and '$' not in d.find_element(By.ID, 'summary').text)
    wait.until(lambda _: d.execute_script(
        "return performance.getEntriesByType('resource').some(e => e.name.includes('/katex/fonts/KaTeX_'))"))
    t.check('KaTeX fonts loaded under the CSP', d.execute_script(
        "return document.fonts.check('16px KaTeX_Main')"))


def submission_flags(t, d, By, flags):
    badges = d.find_elements(By.CSS_SELECTOR, '#flags .badge.flag')
    t.equal('every flag shown by its id', sorted(b.text for b in badges),
            sorted(flags + ['made_up_flag']))
    missing = [f for f in worker_flags() if not d.execute_script(
        'return FLAG_INFO[arguments[0]] !== undefined', f)]
    t.equal('every flag the worker raises is explained', missing, [])
    t.check('worker flags found in its sources', len(worker_flags()) >= 11, worker_flags())
    tips = {b.text: b.get_attribute('title') for b in badges}
    t.check('tooltips in plain words', all(tips[f] and len(tips[f]) > 30 for f in flags), tips)
    t.check('invalid_verdict explained', 'could not be read' in tips['invalid_verdict'])
    t.check('injection explained', 'prompt injection' in tips['injection:role_marker'])
    t.check('unknown flag: its raw id', 'Unknown flag "made_up_flag"' in tips['made_up_flag'])
    legend = d.find_element(By.ID, 'flag-legend')
    t.check('legend folded beside the grading', legend.get_attribute('open') is None)
    click(d, legend.find_element(By.TAG_NAME, 'summary'))
    terms = [e.text for e in legend.find_elements(By.CSS_SELECTOR, 'dt')]
    t.equal('legend lists each flag', sorted(terms), sorted(flags + ['made_up_flag']))
    t.check('legend in words', 'Low confidence' in legend.text
            and 'Score contradicts the checks' in legend.text and 'Critique cut off' in legend.text,
            legend.text)
    status = d.find_element(By.ID, 'review-status')
    t.check('needs review, and why', status.text.startswith('Needs review')
            and 'Unreadable critique' in status.text, status.text)
    t.equal('state badge in words', d.find_element(By.CSS_SELECTOR, '.sub-head .badge').text,
            'Needs review')


def assignment_key(t, d, By):
    key = d.find_element(By.ID, 'assignment-key')
    for id_ in ('rubric', 'answer-key', 'reference-solution'):
        det = d.find_element(By.ID, id_)
        t.check(f'{id_} folded', det.get_attribute('open') is None)
        click(d, det.find_element(By.TAG_NAME, 'summary'))
        t.check(f'{id_} unfolds', det.get_attribute('open') is not None)
    rows = key.find_elements(By.CSS_SELECTOR, '#rubric-criteria tbody tr')
    t.equal('rubric criteria with their points',
            [[c.text for c in r.find_elements(By.TAG_NAME, 'td')][::2] for r in rows],
            [['method', '3'], ['answer', '3']])
    t.check('rubric points and total', key.find_element(By.CSS_SELECTOR, '#rubric-criteria tfoot').text
            .endswith('6'), key.find_element(By.CSS_SELECTOR, '#rubric-criteria tfoot').text)
    t.check('rubric math typeset', len(key.find_elements(By.CSS_SELECTOR, '#rubric .katex')) == 2)
    t.check('answer key typeset', len(key.find_elements(By.CSS_SELECTOR, '#answer-key .katex')) == 1)
    t.check('answer policy in words', 'units are ignored' in d.find_element(By.ID, 'answer-policy').text
            and '0.001' in d.find_element(By.ID, 'answer-policy').text)
    t.check('reference solution typeset',
            len(key.find_elements(By.CSS_SELECTOR, '#reference-solution .katex')) == 1)


def failed_io_test(t, d, find, By):
    d.get(d.base + '/#/submission/41')
    row = find('#checks tr.test-detail')
    t.check('input of the failed test', 'hello\nworld' in row.find_element(By.CSS_SELECTOR, 'pre.test-input').text)
    exp = row.find_element(By.CSS_SELECTOR, 'pre.diff.expected')
    act = row.find_element(By.CSS_SELECTOR, 'pre.diff.actual')
    t.check('expected and actual output', exp.text == 'HELLO\nWORLD' and act.text == 'hello\nworld',
            (exp.text, act.text))
    t.equal('first differing character marked (expected)',
            [m.text for m in exp.find_elements(By.CSS_SELECTOR, '.diff-line mark.diff-char')], ['H'])
    t.equal('first differing character marked (actual)',
            [m.text for m in act.find_elements(By.CSS_SELECTOR, '.diff-line mark.diff-char')], ['h'])
    t.check('where the difference is', 'First difference: line 1, column 1' in row.text, row.text)
    t.check('stderr as text', 'warning: <b>not</b> upper' in row.text
            and not row.find_elements(By.TAG_NAME, 'b'))
    t.check('the error', 'wrong answer (first difference at line 1)' in row.text)
    click(d, d.find_element(By.CSS_SELECTOR, '#reference-solution summary'))
    t.check('code reference solution verbatim', d.find_element(
        By.CSS_SELECTOR, '#reference-solution pre').text == 'print(input().upper())')
    t.check('free-text rubric shown', 'Correct output' in d.find_element(By.ID, 'rubric').get_attribute(
        'textContent'))
    t.equal('not reviewed, in words', d.find_element(By.CSS_SELECTOR, '.sub-head .badge').text,
            'Not reviewed')


def reviewed_and_filter(t, env, d, find, wait, By):
    env.sql("INSERT INTO review (grading_id, teacher_id, action, old_score, new_score, comment) "
            "SELECT 42, id, 'approve', 6, 6, 'fine' FROM teacher WHERE name = 'Alice'")
    d.get(d.base + '/#/submission/42')
    wait.until(lambda _: d.find_element(By.ID, 'student').text == 'M042')
    status = find('#review-status')
    t.check('reviewed, by whom', status.text.startswith('Reviewed') and 'Alice approved' in status.text,
            status.text)
    t.check('the flag that asked for review marked as since reviewed', 'since reviewed' in
            d.find_element(By.ID, 'grading-flagged').text)
    d.get(d.base + '/#/assignment/40')
    find('#quick-filters')
    legend = d.find_element(By.ID, 'flag-legend-all')
    t.check('assignment page: legend of all flags, folded', legend.get_attribute('open') is None
            and len(legend.find_elements(By.CSS_SELECTOR, 'dt')) >= 11)
    t.check('flag badges in the list have tooltips', all(
        b.get_attribute('title') for b in d.find_elements(By.CSS_SELECTOR, '#submissions .badge.flag')))

    def students():
        return sorted(e.text for e in d.find_elements(By.CSS_SELECTOR, '#submissions a.submission-link'))
    click(d, d.find_element(By.CSS_SELECTOR, '#quick-filters a[data-state="reviewed"]'))
    wait.until(lambda _: 'state=reviewed' in d.current_url and students() == ['M042'])
    t.equal('filter: reviewed', students(), ['M042'])
    t.equal('state badge: reviewed in words',
            d.find_element(By.CSS_SELECTOR, '#submissions .badge[data-state]').text, 'Reviewed')
    click(d, d.find_element(By.CSS_SELECTOR, '#quick-filters a[data-state="needs_review"]'))
    wait.until(lambda _: 'state=needs_review' in d.current_url and students() == ['M040'])
    t.equal('filter: needs review', students(), ['M040'])
    t.check('current filter marked', 'current' in d.find_element(
        By.CSS_SELECTOR, '#quick-filters a[data-state="needs_review"]').get_attribute('class'))


def browser(t, env, out):
    from selenium.webdriver.common.by import By

    d, wait, find = chromium()
    d.base = env.base

    logs = []
    try:
        d.get(env.base + '/')
        find('#token').send_keys(env.tokens['Alice'])
        d.find_element(By.ID, 'signin-btn').click()
        find('#courses')
        flags = ['invalid_verdict', 'model_unavailable', 'provisional_from_checks', 'cut_off',
                 'low_agreement', 'checks_contradict_score', 'checks_contradict_criterion',
                 'checks_unavailable',
                 'injection:ignore_instructions', 'injection:role_marker',
                 'injection:fake_verdict', 'injection:addresses_grader']
        submission_math(t, d, find, wait, By)
        submission_flags(t, d, By, flags)
        assignment_key(t, d, By)
        d.save_screenshot(os.path.join(out, 'review-page-math.png'))
        failed_io_test(t, d, find, By)
        d.save_screenshot(os.path.join(out, 'review-page-test.png'))
        reviewed_and_filter(t, env, d, find, wait, By)
        t.equal('no script from the data ran', d.execute_script('return window.__xss === undefined'), True)
    except Exception:
        traceback.print_exc()
        t.check('browser scenario completed without exception', False)
        try:
            d.save_screenshot(os.path.join(out, 'review-page-failure.png'))
        except Exception:
            pass
    finally:
        try:
            logs = [entry for entry in d.get_log('browser') if entry.get('level') == 'SEVERE']
        except Exception:
            pass
        d.quit()
    t.equal('no CSP violations in the console',
            [entry['message'] for entry in logs if 'Content Security Policy' in entry['message']], [])
    # before sign-in /api/session answers 401; the browser asks for /favicon.ico on its own
    t.equal('no errors in the console', [entry['message'] for entry in logs if not re.search(
        r'/api/session - .* 401|/favicon\.ico - .* 404', entry['message'])], [])


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--server', required=True)
    p.add_argument('--cli', required=True)
    p.add_argument('--seed', required=True)
    p.add_argument('--web', required=True)
    p.add_argument('--out', required=True)
    args = p.parse_args()
    t = Checks()
    env = None
    try:
        env = Env(args, 'page', 20)
        r = subprocess.run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', env.url, '-f',
                            os.path.join(HERE, 'seed_page.sql')], capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            raise RuntimeError('seed_page.sql failed: ' + r.stderr)
        katex_http(t, env.base)
        browser(t, env, args.out)
    except Exception:
        traceback.print_exc()
        t.check('test run completed without exception', False)
    finally:
        if env:
            rc = env.close()
            if not t.equal('server stopped cleanly (no sanitizer report)', rc, 0):
                print(open(env.log_path).read()[-4000:])
    print(f'{t.passed} passed, {t.failed} failed')
    return 1 if t.failed or t.passed == 0 else 0


if __name__ == '__main__':
    sys.exit(main())
