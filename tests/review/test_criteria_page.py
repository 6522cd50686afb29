#!/usr/bin/env python3
"""test_criteria_page: rubric criteria on the teacher's and the student's pages, in headless
Chromium against the real server (stepmark-http-test) and a real PostgreSQL.

  test_criteria_page.py --server BIN --cli BIN --seed seed.sql --web DIR --out DIR

Same environment as test_review.py (its own database with seed.sql, then seed_criteria.sql; two
teachers). Checks: the criteria table of a grading (criterion, verdict in words with a symbol,
the model's points, evidence typeset by KaTeX, agreement, current points, total of the maximum);
a grading without verdicts; adjusting two criteria through the review form (the total follows
live, the server stores the review and one review_criterion row per criterion, the table marks
them adjusted, the history lists the changes); a value out of range refused by the server and a
missing one by the form, both shown in the message area; the rubric as a table in the
assignment key; the export option adding criterion columns to the CSV; and the student's page
with its math typeset by KaTeX and the criteria breakdown. No CSP violation in the console.
"""
import argparse
import csv
import io
import os
import re
import subprocess
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_release import Links  # noqa: E402
from test_review import Checks, Client, Env, chromium  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def click(d, e):
    """Clicks e after scrolling it to the middle (the progress footer covers the bottom)."""
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", e)
    e.click()


def texts(rows, By, sel):
    """The text of the element sel in each of rows."""
    return [r.find_element(By.CSS_SELECTOR, sel).text for r in rows]


def cells(row, By, sel='td'):
    return [c.text.strip() for c in row.find_elements(By.CSS_SELECTOR, sel)]


def criteria_table(t, d, find, By):
    d.get(d.base + '/#/submission/60')
    table = find('#criteria-table')
    rows = table.find_elements(By.CSS_SELECTOR, 'tbody tr.criterion-row')
    t.equal('one row per criterion, in rubric order',
            [r.get_attribute('data-criterion') for r in rows], ['setup', 'step', 'answer'])
    t.equal('criterion ids', texts(rows, By, 'code.criterion-id'), ['setup', 'step', 'answer'])
    t.check('descriptions with math typeset',
            len(rows[0].find_elements(By.CSS_SELECTOR, '.criterion-desc .katex')) == 1
            and texts(rows, By, '.criterion-desc')[2] == 'States the formula')
    badges = [r.find_element(By.CSS_SELECTOR, '.badge.cv') for r in rows]
    t.equal('verdicts in words, with a symbol', [b.text for b in badges],
            ['✓ met', '◐ partly met', '✗ not met'])
    colours = [b.value_of_css_property('background-color') for b in badges]
    t.check('verdicts coloured differently', len(set(colours)) == 3, colours)
    t.equal("the model's points", texts(rows, By, '.model-points'), ['2', '1.5', '0'])
    ev = [r.find_element(By.CSS_SELECTOR, 'td.evidence') for r in rows]
    t.check('evidence quoted with its math typeset',
            len(ev[0].find_elements(By.CSS_SELECTOR, 'blockquote .katex')) == 2
            and len(ev[1].find_elements(By.CSS_SELECTOR, 'blockquote .katex')) == 2
            and '$' not in ev[1].text, ev[1].text)
    t.equal('no evidence: "none"', ev[2].text, 'none')
    t.equal('agreement', [r.find_element(By.CSS_SELECTOR, '.agreement').text for r in rows],
            ['100%', '67%', '50%'])
    t.equal('current points of the maximum',
            [r.find_element(By.CSS_SELECTOR, '.current-points').text for r in rows],
            ['2 / 2', '1.5 / 3', '0 / 1'])
    t.check('nothing adjusted yet', not table.find_elements(By.CSS_SELECTOR, '.badge.adjusted'))
    t.equal('total next to the maximum', d.find_element(By.ID, 'criteria-total').text, '3.5 / 6')
    click(d, rows[1])
    hl = d.find_elements(By.CSS_SELECTOR, '#student-work .line.hl')
    t.equal("choosing a criterion marks its evidence in the student's work",
            [e.get_attribute('data-line') for e in hl], ['2'])


def rubric_fold(t, d, By):
    click(d, d.find_element(By.CSS_SELECTOR, '#rubric summary'))
    rows = d.find_elements(By.CSS_SELECTOR, '#rubric-criteria tbody tr')
    t.equal('rubric fold: id, points, checks', [[c for k, c in enumerate(cells(r, By)) if k != 1]
                                                 for r in rows],
            [['setup', '2', ''], ['step', '3', ''], ['answer', '1', 'answer']])
    t.check('rubric fold: descriptions', [cells(r, By)[1][:14] for r in rows] == [
        'Checks the bas', 'Proves the ste', 'States the for'], [cells(r, By) for r in rows])
    t.check('rubric fold: math typeset',
            len(d.find_elements(By.CSS_SELECTOR, '#rubric-criteria .katex')) == 2)
    t.check('rubric fold: total', d.find_element(By.CSS_SELECTOR, '#rubric-criteria tfoot').text
            .endswith('6'))


def adjust(t, env, d, find, wait, By):
    form = find('#criteria-adjust')
    inputs = form.find_elements(By.CSS_SELECTOR, 'input.crit-input')
    t.equal('one input per criterion', [i.get_attribute('data-criterion') for i in inputs],
            ['setup', 'step', 'answer'])
    t.equal('prefilled with the current points', [i.get_attribute('value') for i in inputs],
            ['2', '1.5', '0'])
    t.equal('min, max and step', [(i.get_attribute('min'), i.get_attribute('max'),
                                   i.get_attribute('step')) for i in inputs],
            [('0', '2', '0.01'), ('0', '3', '0.01'), ('0', '1', '0.01')])
    t.check('no single score input', not d.find_elements(By.ID, 'score-input'))
    t.equal('total before', d.find_element(By.ID, 'crit-total').text, '3.5 / 6')
    for i, v in ((inputs[1], '2.5'), (inputs[2], '1')):
        i.clear()
        i.send_keys(v)
    t.equal('total follows live', d.find_element(By.ID, 'crit-total').text, '5.5 / 6')
    d.find_element(By.ID, 'comment-input').send_keys('The step is nearly complete.')
    click(d, d.find_element(By.ID, 'adjust-btn'))
    wait.until(lambda _: d.find_element(By.ID, 'final-score').text == '5.5')
    t.equal('final score after the adjustment', d.find_element(By.ID, 'final-score').text, '5.5')
    t.equal('stored: one adjust review with the new total',
            env.sql("SELECT count(*) || ' ' || max(new_score) FROM review WHERE grading_id = 60 "
                    "AND action = 'adjust'"), '1 5.50')
    t.equal('stored: a row per criterion', env.sql(
        "SELECT string_agg(criterion_id || '=' || coalesce(old_points::text, '-') || '>' || "
        "new_points, ' ' ORDER BY criterion_id) FROM review_criterion rc JOIN review r ON "
        "r.id = rc.review_id WHERE r.grading_id = 60"),
        'answer=0.00>1.00 setup=2.00>2.00 step=1.50>2.50')
    rows = d.find_elements(By.CSS_SELECTOR, '#criteria-table tbody tr.criterion-row')
    t.equal('current points after', [r.find_element(By.CSS_SELECTOR, '.current-points').text
                                     for r in rows], ['2 / 2', '2.5 / 3adjusted', '1 / 1adjusted'])
    t.equal('adjusted criteria marked', [r.get_attribute('data-criterion') for r in rows
                                         if r.find_elements(By.CSS_SELECTOR, '.badge.adjusted')],
            ['step', 'answer'])
    t.equal("the model's points unchanged",
            texts(rows, By, '.model-points'), ['2', '1.5', '0'])
    t.equal('new total', d.find_element(By.ID, 'criteria-total').text, '5.5 / 6')
    hist = d.find_elements(By.CSS_SELECTOR, '#history tr.review-criteria')
    t.check('history: the changes under the review', len(hist) == 1
            and hist[0].text == 'Criteria: step 1.5 → 2.5; answer 0 → 1',
            [h.text for h in hist])
    inputs = d.find_elements(By.CSS_SELECTOR, '#criteria-adjust input.crit-input')
    t.equal('form prefilled with the new points', [i.get_attribute('value') for i in inputs],
            ['2', '2.5', '1'])


def adjust_errors(t, env, d, find, wait, By):
    step = d.find_element(By.CSS_SELECTOR, '#criteria-adjust input[data-criterion="step"]')
    step.clear()
    step.send_keys('4')
    d.find_element(By.ID, 'comment-input').send_keys('too many')
    click(d, d.find_element(By.ID, 'adjust-btn'))
    msg = wait.until(lambda _: d.find_element(By.CSS_SELECTOR, '#review-msg .notice.error'))
    t.check("the server's refusal shown", 'step' in msg.text and msg.text.strip(), msg.text)
    t.equal('nothing stored for the bad value', env.sql(
        "SELECT count(*) FROM review WHERE grading_id = 60 AND action = 'adjust'"), '1')
    step.clear()
    click(d, d.find_element(By.ID, 'adjust-btn'))
    wait.until(lambda _: 'Enter the points' in d.find_element(By.ID, 'review-msg').text)
    t.equal('an empty criterion refused by the form', d.find_element(By.ID, 'review-msg').text,
            'Enter the points for criterion step.')

    d.get(d.base + '/#/submission/61')
    wait.until(lambda _: d.find_element(By.ID, 'student').text == 'M061')
    rows = find('#criteria-table').find_elements(By.CSS_SELECTOR, 'tbody tr.criterion-row')
    t.equal('no verdict in words', [r.find_element(By.CSS_SELECTOR, '.badge.cv').text
                                    for r in rows], ['– no verdict'] * 3)
    t.equal('no points, no total', d.find_element(By.ID, 'criteria-total').text, '– / 6')
    t.equal('inputs empty without points', [i.get_attribute('value') for i in
            d.find_elements(By.CSS_SELECTOR, '#criteria-adjust input.crit-input')], [''] * 3)
    t.equal('live total unknown', d.find_element(By.ID, 'crit-total').text, '– / 6')


def export(t, d, find, wait, By):
    d.get(d.base + '/#/assignment/60')
    box = find('#export-criteria')
    plain = d.find_element(By.CSS_SELECTOR, 'a.export-plain')
    t.check('export without criteria by default', 'criteria' not in plain.get_attribute('href'))
    click(d, box)
    href = plain.get_attribute('href')
    t.check('option adds criteria=1 to the CSV links', href.endswith('format=plain&criteria=1')
            and all('criteria=1' in a.get_attribute('href') for a in d.find_elements(
                By.CSS_SELECTOR, 'a[href*="export.csv"]')), href)
    text = d.execute_async_script(
        "fetch(arguments[0], {credentials: 'same-origin'})"
        ".then((r) => r.text()).then(arguments[1])",
        href)
    rows = list(csv.DictReader(io.StringIO(text)))
    cols = list(rows[0].keys()) if rows else []
    t.check('CSV has a column per criterion', all(f'criterion:{c}' in cols
                                                  for c in ('setup', 'step', 'answer')), cols)
    m060 = [r for r in rows if 'M060' in r.values()]
    t.check('CSV holds the current points', m060 and [m060[0].get(f'criterion:{c}') for c in
                                                      ('setup', 'step', 'answer')]
            in (['2', '2.5', '1'], ['2.00', '2.50', '1.00']), m060)
    click(d, box)
    t.check('option off again', 'criteria' not in plain.get_attribute('href'))
    d.get(d.base + '/#/assignment/1')
    wait.until(lambda _: d.find_element(By.CSS_SELECTOR, '#main h1').text == 'Quadratic equations')
    find('#submissions')
    t.check('no option for a free-text rubric', not d.find_elements(By.ID, 'export-criteria'))


def student_page(t, env, d, out, wait, By):
    alice = Client(env.base)
    alice.signin(env.tokens['Alice'])
    st, doc = alice.json('POST', '/api/assignments/60/release', {'submissions': [60]})
    t.check('released', st == 200 and doc['released'] == [60], (st, doc))
    url = Links(env, out).make('MATH101', 'M060')
    st, doc = Client(env.base).json('GET', '/api/student/feedback?t=' + url.split('?t=', 1)[1])
    crit = doc['feedback'][0].get('criteria') if st == 200 and doc['feedback'] else None
    t.equal('student JSON: criteria with current points', [
        (c['id'], c['points'], c['max_points']) for c in crit or []],
        [('setup', 2, 2), ('step', 2.5, 3), ('answer', 1, 1)])
    d.delete_all_cookies()
    d.get(url)
    wait.until(lambda _: d.find_elements(By.CSS_SELECTOR, '#feedback, #no-feedback, #link-error'))
    card = d.find_element(By.CSS_SELECTOR, '#feedback section.feedback')
    t.check('student page: KaTeX typeset the math', len(card.find_elements(By.CSS_SELECTOR,
                                                                             '.katex')) >= 6)
    text = card.text
    t.check('student page: no raw math left', '⟦' not in text and '$' not in text
            and '\\frac' not in text and '\\(' not in text, text)
    boxed = card.find_elements(By.CSS_SELECTOR, '.step[data-step="2"] blockquote')
    t.check('student page: \\boxed typeset', boxed and boxed[0].find_elements(
        By.CSS_SELECTOR, '.katex .mfrac') and '⟦' not in boxed[0].text)
    rows = card.find_elements(By.CSS_SELECTOR, 'table.criteria tbody tr.criterion-row')
    t.equal('student page: criteria breakdown', [
        (r.get_attribute('data-criterion'), r.find_element(By.CSS_SELECTOR, '.badge.cv').text,
         r.find_element(By.CSS_SELECTOR, '.points').text) for r in rows],
        [('setup', '✓ met', '2 / 2'), ('step', '◐ partly met', '2.5 / 3'),
         ('answer', '✓ met', '1 / 1')])
    t.equal('student page: total', card.find_element(By.CSS_SELECTOR, '.criteria-total').text,
            '5.5 / 6')
    t.check('student page: evidence typeset', rows[1].find_elements(
        By.CSS_SELECTOR, 'td.evidence blockquote .katex'))
    d.save_screenshot(os.path.join(out, 'criteria-student-page.png'))


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
        criteria_table(t, d, find, By)
        rubric_fold(t, d, By)
        d.save_screenshot(os.path.join(out, 'criteria-page.png'))
        adjust(t, env, d, find, wait, By)
        d.save_screenshot(os.path.join(out, 'criteria-adjusted.png'))
        adjust_errors(t, env, d, find, wait, By)
        export(t, d, find, wait, By)
        logs = [e for e in d.get_log('browser') if e.get('level') == 'SEVERE']
        student_page(t, env, d, out, wait, By)
    except Exception:
        traceback.print_exc()
        t.check('browser scenario completed without exception', False)
        try:
            d.save_screenshot(os.path.join(out, 'criteria-page-failure.png'))
        except Exception:
            pass
    finally:
        try:
            logs += [e for e in d.get_log('browser') if e.get('level') == 'SEVERE']
        except Exception:
            pass
        d.quit()
    t.equal('no CSP violations in the console',
            [e['message'] for e in logs if 'Content Security Policy' in e['message']], [])
    # expected: 401 of /api/session before sign-in, /favicon.ico, and the refused bad value
    t.equal('no other errors in the console', [e['message'] for e in logs if not re.search(
        r'/api/session - .* 401|/favicon\.ico - .* 404|/review - .* 400', e['message'])], [])


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
        env = Env(args, 'criteria', 20)
        r = subprocess.run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', env.url, '-f',
                            os.path.join(HERE, 'seed_criteria.sql')], capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError('seed_criteria.sql failed: ' + r.stderr)
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
