#!/usr/bin/env python3
"""test_lti: LTI 1.3 launches from an LMS, against real PostgreSQL, real HTTP and headless
Chromium, with the small platform of lti_platform.py standing in for Moodle or Canvas.

  test_lti.py --server BIN --cli BIN --seed seed.sql --web DIR --out DIR

Same set-up as test_review.py (its Env: a fresh database with seed.sql and a running
stepmark-http-test). The platform is registered with `stepmark lti platform add`. Checked: the
CLI (platforms, keys, Canvas and Moodle configuration), the tool's JWKS and key rotation, an
instructor's first launch (mapping the LMS course to a new stepmark course, landing signed in on
its review page, seeing that course only), the assignment mapping of a resource link, deep
linking (the platform verifies the signed response against the tool's JWKS), a learner's
launch, the platform rotating its key (refetched on the unknown kid), and every rejection with
its error page and log line.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lti_platform import DL, Platform  # noqa: E402
from test_review import Checks, Env, chromium  # noqa: E402


def cli(env, *args, config=None):
    cmd = [env.cli, 'lti', *args] + (['--config', config] if config else [])
    return subprocess.run(cmd, env=env.env, capture_output=True, text=True, timeout=60)


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def cli_tests(t, env, plat, out):
    r = cli(env, 'platform', 'add', '--issuer', plat.issuer, '--client-id', plat.client_id,
            '--deployment', plat.deployment, '--deployment', 'dep-2', '--auth-url',
            plat.base + '/auth', '--token-url', plat.base + '/token', '--jwks-url',
            plat.base + '/jwks')
    t.equal('platform add succeeds', r.returncode, 0) or print(r.stderr)
    r = cli(env, 'platform', 'add', '--issuer', plat.issuer, '--client-id', plat.client_id,
            '--deployment', 'x', '--auth-url', plat.base + '/auth', '--token-url',
            plat.base + '/token', '--jwks-url', plat.base + '/jwks')
    t.check('adding the same platform twice is refused', r.returncode == 1 and 'exists' in r.stderr,
            r.stderr)
    r = cli(env, 'platform', 'list', '--json')
    rows = json.loads(r.stdout)
    t.check('platform list shows it with both deployments',
            len(rows) == 1 and rows[0]['issuer'] == plat.issuer
            and rows[0]['deployments'] == ['dep-1', 'dep-2'], rows)
    r = cli(env, 'platform', 'add', '--issuer', 'https://other.example', '--client-id', 'c',
            '--deployment', 'd', '--auth-url', 'https://other.example/a', '--token-url',
            'https://other.example/t', '--jwks-url', 'https://other.example/j')
    pid = re.search(r'platform (\d+) added', r.stdout).group(1)
    r = cli(env, 'platform', 'remove', pid)
    t.check('platform remove', r.returncode == 0 and
            len(json.loads(cli(env, 'platform', 'list', '--json').stdout)) == 1, r.stderr)

    config = os.path.join(out, f'lti-{os.getpid()}.yaml')
    with open(config, 'w') as f:
        f.write('http:\n  public_url: "https://grading.example.edu/"\n')
    r = cli(env, 'config', 'canvas', config=config)
    doc = json.loads(r.stdout)
    t.check('canvas config: URLs from http.public_url',
            doc['oidc_initiation_url'] == 'https://grading.example.edu/lti/login'
            and doc['target_link_uri'] == 'https://grading.example.edu/lti/launch'
            and doc['public_jwk_url'] == 'https://grading.example.edu/lti/jwks.json', doc)
    places = {p['placement']: p['message_type']
              for p in doc['extensions'][0]['settings']['placements']}
    t.check('canvas config: deep linking placement',
            places.get('assignment_selection') == 'LtiDeepLinkingRequest'
            and doc['extensions'][0]['domain'] == 'grading.example.edu', doc['extensions'])
    r = cli(env, 'config', 'moodle', config=config)
    t.check('moodle config: the form values',
            re.search(r'^Public keyset: +https://grading\.example\.edu/lti/jwks\.json$', r.stdout,
                      re.M)
            and re.search(r'^Initiate login URL: +https://grading\.example\.edu/lti/login$',
                          r.stdout, re.M) and 'LTI 1.3' in r.stdout, r.stdout)


def jwks_tests(t, env):
    keys = get_json(env.base + '/lti/jwks.json')['keys']
    t.check('tool JWKS: one RSA key, no private parts',
            len(keys) == 1 and keys[0]['kty'] == 'RSA' and 'd' not in keys[0]
            and len(keys[0]['n']) >= 342, keys)
    pem = env.sql('SELECT private_pem FROM lti_key')
    t.check('the private key is stored in PostgreSQL', 'PRIVATE KEY' in pem)
    r = cli(env, 'key', 'jwks')
    t.check('key jwks prints no private key', 'PRIVATE' not in r.stdout and '"d"' not in r.stdout
            and json.loads(r.stdout)['keys'][0]['kid'] == keys[0]['kid'], r.stdout)
    r = cli(env, 'key', 'rotate')
    t.equal('key rotate succeeds', r.returncode, 0)
    keys2 = get_json(env.base + '/lti/jwks.json')['keys']
    t.check('after rotation the old key stays in the JWKS (grace period)',
            len(keys2) == 2 and keys2[1]['kid'] == keys[0]['kid']
            and keys2[0]['kid'] != keys[0]['kid'], keys2)
    return keys2[0]['kid']


class Browser:
    def __init__(self, env, out):
        self.d, self.wait, _ = chromium(1200, 900)
        self.env = env

    def close(self):
        self.d.quit()

    def until(self, cond):
        try:
            return self.wait.until(cond)
        except Exception:
            print('at', self.d.current_url, self.d.find_element('css selector', 'body').text[:600])
            raise

    def find(self, css):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC
        return self.wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))

    def text(self, css):
        return self.find(css).text

    def api(self, path):
        return self.d.execute_async_script(
            'const done = arguments[1]; fetch(arguments[0]).then(r => r.json()).then(done)'
            '.catch(e => done({error: String(e)}));', path)


def logged(env, reason):
    """The server logged the refusal with its reason."""
    with open(env.log_path) as f:
        log = f.read()
    return re.search(r'lti launch refused .*reason="?' + re.escape(reason), log) is not None


def instructor_tests(t, env, plat, b, new_kid):
    from selenium.webdriver.support.ui import Select
    hint = plat.prepare('inst1', 'Instructor')
    b.d.get(plat.start_url(hint))
    t.equal('first instructor launch: the mapping page', b.text('#lti-title'),
            'Connect this course')
    t.equal('the mapping page names the LMS course', b.text('#lti-context'), 'Algebra One')
    Select(b.find('#lti-course')).select_by_value('new')
    b.find('#lti-map').click()
    b.until(lambda d: re.search(r'#/course/\d+$', d.current_url))
    course = re.search(r'#/course/(\d+)$', b.d.current_url).group(1)
    t.check('lands on the new course\'s review page', b.find('main h1').text.startswith('ALG1-'))
    courses = b.api('/api/courses')
    t.check('the LTI teacher sees that course only',
            [str(c['id']) for c in courses.get('courses', courses if isinstance(courses, list)
                                                else [])] == [course], courses)
    t.equal('mapping stored', env.sql(
        "SELECT course_id FROM lti_context WHERE context_id = 'ctx-1'"), course)
    t.equal('LTI user is a teacher by (issuer, sub)', env.sql(
        "SELECT t.name FROM lti_user u JOIN teacher t ON t.id = u.teacher_id WHERE sub = 'inst1'"),
        'Inst1 Person')

    # an assignment in the course: a new resource link asks which one it opens
    aid = env.sql(f"INSERT INTO assignment (course_id, code, title, kind, statement, max_score) "
                  f"VALUES ({course}, 'hw1', 'Homework one', 'math', 'Solve x+1=2', 5) "
                  f"RETURNING id")
    b.d.get(plat.start_url(plat.prepare('inst1', 'Instructor', link='link-2')))
    t.equal('a new resource link: the assignment choice', b.text('#lti-title'),
            'Choose the assignment')
    Select(b.find('#lti-assignment')).select_by_value(aid)
    b.find('#lti-choose').click()
    b.until(lambda d: d.current_url.endswith(f'#/assignment/{aid}'))
    t.check('lands on the assignment\'s review page', True)
    b.d.get(plat.start_url(plat.prepare('inst1', 'Instructor', link='link-2')))
    b.until(lambda d: d.current_url.endswith(f'#/assignment/{aid}'))
    t.check('the next launch of that link goes straight to the assignment', True)

    # a TA of the same LMS course lands on the mapped assignment without choosing anything
    b.d.delete_all_cookies()
    b.d.get(plat.start_url(plat.prepare('ta1', 'TA', link='link-2')))
    b.until(lambda d: d.current_url.endswith(f'#/assignment/{aid}'))
    t.check('a TA lands on the mapped assignment', True)
    ta_courses = b.api('/api/courses')
    t.check('the TA sees that course only', [str(c['id']) for c in ta_courses.get('courses', [])]
            == [course], ta_courses)

    # deep linking: pick the assignment; the platform verifies the signed response
    b.d.get(plat.start_url(plat.prepare('inst1', 'Instructor', message='LtiDeepLinkingRequest')))
    t.equal('deep linking: the picker', b.text('#lti-title'), 'Add a stepmark assignment')
    Select(b.find('#lti-assignment')).select_by_value(aid)
    b.find('#lti-choose').click()
    t.equal('the platform accepted the deep linking response', b.text('#dl-ok'),
            'Added: Homework one')
    dl = plat.deep_links[-1] if plat.deep_links else {}
    item = (dl.get(DL + 'content_items') or [{}])[0]
    t.check('content item: an LTI resource link to the assignment',
            item.get('type') == 'ltiResourceLink' and item.get('custom') ==
            {'stepmark_assignment': aid} and item.get('url') == env.base + '/lti/launch', item)
    t.equal('deep linking data echoed', dl.get(DL + 'data'), 'opaque-dl-data')
    # the placed link opens its assignment straight away
    b.d.get(plat.start_url(plat.prepare('inst1', 'Instructor', link='link-3',
                                        custom={'stepmark_assignment': aid})))
    b.until(lambda d: d.current_url.endswith(f'#/assignment/{aid}'))
    t.check('a deep-linked resource link opens its assignment', True)
    return course


def learner_and_rotation_tests(t, env, plat, b):
    b.d.delete_all_cookies()
    b.d.get(plat.start_url(plat.prepare('stud1', 'Learner', context='ctx-unmapped'), get=True))
    t.check('a learner (GET login without client_id) of an unmapped LMS course: not set up yet',
            'not set up for this course yet' in b.text('#lti-learner'))
    t.equal('a learner gets no teacher session', b.api('/api/session').get('error', {}).get('code'),
            'EAUTH')
    t.equal('a learner is no teacher', env.sql(
        "SELECT teacher_id IS NULL FROM lti_user WHERE sub = 'stud1'"), 't')
    b.d.get(plat.start_url(plat.prepare('stud1', 'Learner')))
    b.until(lambda d: '/student?t=' in d.current_url)
    t.check('a learner of a mapped course lands on the student page; nothing before release',
            'No feedback has been released' in b.text('#no-feedback'))
    plat.rotate()
    time.sleep(1.2)  # lti.jwks_refetch_seconds is 1 in this test's configuration
    b.d.get(plat.start_url(plat.prepare('stud1', 'Learner', context='ctx-unmapped')))
    t.check('the platform\'s new key is fetched on its unknown kid',
            'not set up for this course yet' in b.text('#lti-learner'))


REJECTIONS = [
    ('wrong_sig', 'wrong signature', 'Instructor'),
    ('unknown_kid', 'unknown kid', 'Instructor'),
    ('expired', 'expired token', 'Instructor'),
    ('replay_nonce', 'replayed nonce', 'Instructor'),
    ('wrong_aud', 'wrong audience', 'Learner'),
    ('unknown_deployment', 'unknown deployment', 'Instructor'),
    ('no_roles', 'missing roles claim', 'Learner'),
    ('bad_state', 'state mismatch', 'Instructor'),
]


def rejection_tests(t, env, plat, b):
    for fault, reason, role in REJECTIONS:
        b.d.delete_all_cookies()
        b.d.get(plat.start_url(plat.prepare('inst1', role, fault=fault)))
        t.equal(f'{fault}: refused with an error page', b.text('#lti-title'), 'LTI launch refused')
        t.equal(f'{fault}: the page gives the reason', b.text('#lti-reason'), reason)
        t.check(f'{fault}: no session', b.api('/api/session').get('error', {}).get('code') ==
                'EAUTH')
        t.check(f'{fault}: a log line', logged(env, reason))
    # a login for another tool's address is refused before any state is made
    form = urllib.parse.urlencode({
        'iss': plat.issuer, 'login_hint': 'x', 'target_link_uri': 'https://evil.example/lti',
        'client_id': plat.client_id}).encode()
    try:
        urllib.request.urlopen(env.base + '/lti/login', form, timeout=10)
        status, body = 200, ''
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read().decode()
    t.check('a login whose target_link_uri is not this tool is refused',
            status == 400 and 'target_link_uri is not this tool' in body
            and logged(env, 'target_link_uri is not this tool'), (status, body[:300]))
    # the state is bound to the browser: the right state from another browser (no cookie)
    hint = plat.prepare('inst1', 'Instructor')
    form = urllib.parse.urlencode({
        'iss': plat.issuer, 'login_hint': hint, 'target_link_uri': env.base + '/lti/launch',
        'lti_message_hint': hint, 'client_id': plat.client_id}).encode()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a):
            return None
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(env.base + '/lti/login', form, timeout=10)
        loc = ''
    except urllib.error.HTTPError as e:
        loc = e.headers.get('Location', '')
        t.check('login sets the state cookie', 'sm_lti_state=' in e.headers.get('Set-Cookie', ''))
    page = urllib.request.urlopen(loc, timeout=10).read().decode()
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page))
    try:
        urllib.request.urlopen(env.base + '/lti/launch', urllib.parse.urlencode(fields).encode(),
                               timeout=10)
        status, body = 200, ''
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read().decode()
    t.check('the right state from another browser is refused',
            status == 400 and 'state mismatch' in body, (status, body[:300]))
    try:
        urllib.request.urlopen(env.base + '/lti/launch', urllib.parse.urlencode(
            {'id_token': 'x', 'state': 'y'}).encode(), timeout=10)
        status, csp = 200, ''
    except urllib.error.HTTPError as e:
        status, csp = e.code, e.headers.get('Content-Security-Policy', '')
        e.read()
    t.check('an unknown state: a 400 page with the content-security policy',
            status == 400 and "default-src 'self'" in csp and 'unsafe-inline' not in csp,
            (status, csp))


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--server', required=True)
    p.add_argument('--cli', required=True)
    p.add_argument('--seed', required=True)
    p.add_argument('--web', required=True)
    p.add_argument('--out', required=True)
    args = p.parse_args()
    t = Checks()
    env = plat = b = None
    config = os.path.join(args.out, f'lti-server-{os.getpid()}.yaml')
    with open(config, 'w') as f:
        f.write('lti:\n  jwks_refetch_seconds: 1\n  clock_skew_seconds: 30\n')
    try:
        env = Env(args, 'lti', 20, extra=('--config', config))
        plat = Platform()
        plat.tool_base = env.base
        cli_tests(t, env, plat, args.out)
        new_kid = jwks_tests(t, env)
        b = Browser(env, args.out)
        instructor_tests(t, env, plat, b, new_kid)
        t.equal('the deep linking response was signed with the current (rotated) key',
                plat.last_dl_kid, new_kid)
        learner_and_rotation_tests(t, env, plat, b)
        rejection_tests(t, env, plat, b)
    except Exception:
        traceback.print_exc()
        t.check('test run completed without exception', False)
    finally:
        if b:
            b.close()
        if plat:
            plat.close()
        if env:
            rc = env.close()
            if not t.equal('server stopped cleanly (no sanitizer report)', rc, 0):
                print(open(env.log_path).read()[-4000:])
    print(f'{t.passed} passed, {t.failed} failed')
    return 1 if t.failed or t.passed == 0 else 0


if __name__ == '__main__':
    sys.exit(main())
