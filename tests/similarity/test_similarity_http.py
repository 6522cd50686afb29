#!/usr/bin/env python3
"""test_similarity_http: the similarity check end to end against real PostgreSQL and HTTP.

  test_similarity_http.py api|browser --server BIN --cli BIN --seed seed.sql --seed2 FILE
                          --starter FILE --web DIR --out DIR

Uses the review tests' harness (tests/review/test_review.py: a fresh database, seed data, the
teachers Alice (CS201) and Bob (HIST9), stepmark-http-test) plus seed_similarity.sql. "api":
`stepmark similarity` and /api/assignments/ID/similarity, /api/similarity/ID with a teacher
session (who may see what, CSRF, starter code left out, scores untouched). "browser": the
pairs page and the side-by-side page with highlights in headless Chromium.
"""
import argparse
import json
import os
import subprocess
import sys
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'review'))
from test_review import Checks, Client, Env, chromium  # noqa: E402


def check_one_run_at_a_time(t, env, args, alice):
    """While another session holds assignment 2's comparison lock (as a running comparison
    does), a second run is refused with 409 and nothing is replaced; once it is free, it runs."""
    holder = subprocess.Popen(['psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', env.url],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        holder.stdin.write("SELECT 'held', pg_advisory_lock(1936289138, 2);\n")
        holder.stdin.flush()
        t.check('lock taken by the other session', 'held' in holder.stdout.readline())
        before = env.sql('SELECT id FROM similarity_run')
        st, doc = alice.json('POST', '/api/assignments/2/similarity', {})
        t.equal('a second comparison of the class is refused while one runs', st, 409)
        t.check('the refusal says why', doc and 'already running' in doc['error']['message'],
                doc)
        t.equal('the stored run is untouched', env.sql('SELECT id FROM similarity_run'), before)
        r = cli(env, args)
        t.check('the CLI is refused too', r.returncode != 0 and 'already running' in r.stderr,
                r.stderr)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    st, _ = alice.json('POST', '/api/assignments/2/similarity', {})
    t.equal('it runs once the other has finished', st, 200)


def load_seed(env, path):
    r = subprocess.run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', env.url, '-f', path],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError('seed failed: ' + r.stderr)


def cli(env, args, *extra):
    return subprocess.run([args.cli, 'similarity', '--course', 'CS201', '--assignment', 'fizz',
                           *extra], env=env.env, capture_output=True, text=True, timeout=120)


def pair_names(doc):
    return sorted(tuple(sorted((p['a']['student_ref'], p['b']['student_ref'])))
                  for p in doc['pairs'])


def api_tests(t, env, args):
    alice, bob = Client(env.base), Client(env.base)
    t.equal('alice signs in', alice.signin(env.tokens['Alice'])[0], 200)
    t.equal('bob signs in', bob.signin(env.tokens['Bob'])[0], 200)
    st, doc = alice.json('GET', '/api/assignments/2/similarity')
    t.check('no run yet', st == 200 and doc['run'] is None and doc['pairs'] == [], doc)
    scores = env.sql('SELECT count(*), sum(score) FROM grading') + '|' + env.sql(
        'SELECT count(*) FROM review')

    r = cli(env, args, '--threshold', '0.3', '--json')
    t.equal('stepmark similarity exits 0', r.returncode, 0)
    doc = json.loads(r.stdout) if r.returncode == 0 else {'pairs': []}
    names = pair_names(doc)
    t.check('renamed copy found by the CLI', ('S010', 'S011') in names, names)
    t.check('unrelated programs not paired', ('S010', 'S012') not in names and
            ('S011', 'S013') not in names, names)
    t.check('shared starter code pairs S012 and S013 without --starter', ('S012', 'S013') in names,
            names)
    t.check('only the latest submission of a student compared',
            all(30 not in (p['a']['submission_id'], p['b']['submission_id']) for p in doc['pairs']))
    t.equal('threshold saved', env.sql('SELECT threshold FROM similarity_setting'), '0.3')

    r = cli(env, args, '--starter', args.starter, '--json')
    t.equal('stepmark similarity --starter exits 0', r.returncode, 0)
    names = pair_names(json.loads(r.stdout)) if r.returncode == 0 else []
    t.check('starter code left out: S012/S013 no longer paired', ('S012', 'S013') not in names,
            names)
    t.check('copy still found with the starter left out', ('S010', 'S011') in names, names)
    t.equal('one run kept per assignment', env.sql('SELECT count(*) FROM similarity_run'), '1')

    st, _ = alice.json('POST', '/api/assignments/2/similarity', {}, csrf=False)
    t.equal('run without CSRF token refused', st, 403)
    st, doc = alice.json('POST', '/api/assignments/2/similarity', {})
    t.equal('teacher runs the comparison', st, 200)
    t.check('summary returned', doc and doc['summary']['submissions'] == 5 and
            doc['summary']['method'] == 'winnowing' and doc['summary']['starter_excluded'], doc)
    t.check('run recorded as the teacher\'s', env.sql('SELECT started_by FROM similarity_run')
            .startswith('teacher:'))
    check_one_run_at_a_time(t, env, args, alice)
    st, doc = alice.json('GET', '/api/assignments/2/similarity')
    t.check('pairs listed', st == 200 and doc['run'] and len(doc['pairs']) >= 1, doc)
    top = doc['pairs'][0]
    t.equal('best pair is the copy', tuple(sorted((top['a']['student_ref'],
                                                   top['b']['student_ref']))), ('S010', 'S011'))
    st, pair = alice.json('GET', f"/api/similarity/{top['id']}")
    t.equal('pair readable', st, 200)
    regions = pair['regions'] if pair else []
    t.check('regions present', len(regions) >= 1, pair)
    for side in ('a', 'b'):
        text = pair[side]['content']
        chars = list(text)
        lines = text.split('\n')
        ok = True
        for rg in regions:
            s, e = rg[side]['start'], rg[side]['end']
            seg = ''.join(chars[s:e])
            first = ''.join(chars[:s]).count('\n') + 1
            ok = ok and 0 <= s < e <= len(chars) and first == rg[side]['line'] and \
                rg[side]['end_line'] <= len(lines) and seg.strip() != ''
        t.check(f'regions of {side} map back to lines and characters', ok, regions)
    a_text = ''.join(''.join(list(pair['a']['content'])[r['a']['start']:r['a']['end']])
                     for r in regions)
    t.check('the matched part of A is the classify function', 'FizzBuzz' in a_text and
            '% 15' in a_text, a_text)
    t.equal('scores untouched by similarity', env.sql('SELECT count(*), sum(score) FROM grading')
            + '|' + env.sql('SELECT count(*) FROM review'), scores)

    st, _ = bob.json('GET', '/api/assignments/2/similarity')
    t.equal('other teacher cannot list the pairs', st, 404)
    st, _ = bob.json('GET', f"/api/similarity/{top['id']}")
    t.equal('other teacher cannot read a pair', st, 404)
    st, _ = bob.json('POST', '/api/assignments/2/similarity', {})
    t.equal('other teacher cannot run it', st, 404)
    st, _ = Client(env.base).json('GET', '/api/assignments/2/similarity')
    t.equal('anonymous refused', st, 401)
    st, _ = alice.json('GET', '/api/similarity/999999')
    t.equal('unknown pair', st, 404)
    st, doc = alice.json('POST', '/api/assignments/3/similarity', {})
    t.equal('another course\'s assignment', st, 404)


def browser_tests(t, env, args):
    from selenium.webdriver.common.by import By

    d, wait, find = chromium(timeout=20)

    logs = []
    try:
        d.get(env.base + '/')
        find('#token').send_keys(env.tokens['Alice'])
        d.find_element(By.ID, 'signin-btn').click()
        find('#courses')
        d.get(env.base + '/#/assignment/2')
        find('#similarity-link').click()
        find('#sim-run')
        t.check('page says similarity never changes a score',
                'never changes a score' in find('#sim-note').text)
        t.check('not compared yet', 'Not compared yet' in find('#sim-info').text)
        d.find_element(By.ID, 'sim-run').click()
        rows = wait.until(lambda _: d.find_elements(By.CSS_SELECTOR, '#sim-pairs tr.sim-pair'))
        t.check('pairs listed after the button', len(rows) >= 1)
        t.check('copy listed', 'S010' in rows[0].text and 'S011' in rows[0].text, rows[0].text)
        d.save_screenshot(os.path.join(args.out, 'similarity-pairs.png'))
        rows[0].click()
        find('.sim-sides')
        marks_a = d.find_elements(By.CSS_SELECTOR, '#sim-side-a mark.sim-hl')
        marks_b = d.find_elements(By.CSS_SELECTOR, '#sim-side-b mark.sim-hl')
        t.check('matching parts highlighted on both sides', len(marks_a) >= 1 and
                len(marks_b) >= 1, (len(marks_a), len(marks_b)))
        t.check('highlight holds the copied code', any('FizzBuzz' in m.text for m in marks_a))
        t.check('side by side', marks_a[0].location['x'] < marks_b[0].location['x'])
        from selenium.webdriver.common.action_chains import ActionChains
        ActionChains(d).move_to_element(marks_a[0]).perform()
        region = marks_a[0].get_attribute('data-region')
        peer = d.find_element(By.CSS_SELECTOR, f'#sim-side-b mark.sim-hl[data-region="{region}"]')
        t.check('hovering lights the partner region',
                'sim-active' in (peer.get_attribute('class') or ''))
        t.check('note on the pair page', 'never changes a score' in d.page_source)
        d.save_screenshot(os.path.join(args.out, 'similarity-pair.png'))
    finally:
        try:
            logs = [l for l in d.get_log('browser') if l.get('level') == 'SEVERE']
        except Exception:
            pass
        d.quit()
    # the 401 of /api/session before signing in and a missing favicon are network noise
    t.equal('no script errors in the console',
            [l['message'] for l in logs if 'Failed to load resource' not in l['message']], [])


def main():
    p = argparse.ArgumentParser()
    p.add_argument('mode', choices=['api', 'browser'])
    for a in ('--server', '--cli', '--seed', '--seed2', '--starter', '--web', '--out'):
        p.add_argument(a, required=True)
    args = p.parse_args()
    t = Checks()
    env = None
    try:
        env = Env(args, 'sim_' + args.mode, 20)
        load_seed(env, args.seed2)
        if args.mode == 'api':
            api_tests(t, env, args)
        else:
            browser_tests(t, env, args)
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
