#!/usr/bin/env python3
"""test_lti_ags: LTI Advantage against the stand-in platform (lti_platform.py, lti_services.py):
the roster import (Names and Roles), by the CLI and in the background after an instructor's
launch, a learner's launch landing on their released feedback in headless Chromium, grade
passback (Assignment and Grade Services) by stepmarkd's passback thread at each state change
under both policies, through a platform outage; and on the review pages the students' LMS
names and the passback policy chosen by the teacher.

  test_lti_ags.py --server BIN --cli BIN --stepmarkd BIN --seed seed.sql --web DIR --out DIR

The tool's pages are served by stepmark-http-test (test_review.Env); a stepmarkd on the same
database runs the passback thread (webhooks.* settings shortened). Grades, reviews and
releases are written with SQL, which fires the same outbox triggers as the review page.
"""
import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lti_platform import Platform  # noqa: E402
from lti_services import wait_for  # noqa: E402
from test_lti import Browser, cli  # noqa: E402
from test_review import Checks, Env  # noqa: E402

PEOPLE = {
    'stud1': dict(name='Stu One', email='one@school.example', sourcedid='S-1', role='Learner'),
    'stud2': dict(name='Stu Two', email='two@school.example', sourcedid='S-2', role='Learner'),
    'stud3': dict(name='Stu Three', email='three@school.example', sourcedid='S-3',
                  role='Learner'),
    'inst1': dict(name='Ina Structor', email='ina@school.example', sourcedid='T-1',
                  role='Instructor'),
}


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Daemon:
    """stepmarkd on the test database, for its passback thread."""

    def __init__(self, args, env):
        self.dir = tempfile.mkdtemp(prefix='smlti-', dir='/tmp')
        self.port = free_port()
        cfg = os.path.join(self.dir, 'stepmark.yaml')
        with open(cfg, 'w') as f:
            f.write('broker:\n'
                    f'  client_endpoint: "ipc://{self.dir}/client"\n'
                    f'  worker_endpoint: "ipc://{self.dir}/worker"\n'
                    f'  event_endpoint: "ipc://{self.dir}/events"\n'
                    f'http:\n  enabled: true\n  address: 127.0.0.1\n  port: {self.port}\n'
                    'webhooks:\n  poll_ms: 100\n  first_backoff_ms: 300\n'
                    '  max_backoff_ms: 1000\n  timeout_ms: 3000\n'
                    'logging:\n  level: info\n')
        self.log_path = os.path.join(args.out, f'lti-ags-stepmarkd-{os.getpid()}.log')
        self.log = open(self.log_path, 'w')
        denv = dict(env.env)
        denv.pop('STEPMARK_CONFIG', None)
        self.proc = subprocess.Popen([args.stepmarkd, '--config', cfg], env=denv,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        if not wait_for(lambda: self.up() or self.proc.poll() is not None, 60) or \
                self.proc.poll() is not None:
            raise RuntimeError('stepmarkd did not start: ' + open(self.log_path).read()[-2000:])

    def up(self):
        try:
            with urllib.request.urlopen(f'http://127.0.0.1:{self.port}/metrics', timeout=2):
                return True
        except OSError:
            return False

    def close(self):
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def grade(env, sub, score):
    env.sql(f"WITH j AS (INSERT INTO job (submission_id, state, finished_at) "
            f"VALUES ({sub}, 'done', now()) RETURNING id) "
            "INSERT INTO grading (job_id, submission_id, status, score, max_score, model_name, "
            "model_hash, engine_version, prompt_template_version, seed) "
            f"SELECT id, {sub}, 'graded', {score}, 5, 'm', 'h', 'e', 'v1', 1 FROM j")


def review(env, sub, action, score='NULL', comment='Well done'):
    env.sql("INSERT INTO review (grading_id, teacher_id, action, old_score, new_score, comment) "
            f"SELECT g.id, (SELECT id FROM teacher ORDER BY id LIMIT 1), '{action}', g.score, "
            f"{score}, '{comment}' FROM grading g WHERE g.submission_id = {sub} "
            "ORDER BY g.id DESC LIMIT 1")


def setup_course(t, env, plat, b):
    """An instructor maps ctx-1 to a new course and link-2 to hw1; returns (course id, code)."""
    from selenium.webdriver.support.ui import Select
    b.d.get(plat.start_url(plat.prepare('inst1', 'Instructor')))
    Select(b.find('#lti-course')).select_by_value('new')
    b.find('#lti-map').click()
    b.until(lambda d: re.search(r'#/course/\d+$', d.current_url))
    course = re.search(r'#/course/(\d+)$', b.d.current_url).group(1)
    code = env.sql(f'SELECT code FROM course WHERE id = {course}')
    env.sql(f"INSERT INTO assignment (course_id, code, title, kind, statement, max_score) VALUES "
            f"({course}, 'hw1', 'Homework one', 'math', 'x', 5), "
            f"({course}, 'hw2', 'Homework two', 'math', 'y', 5)")
    b.d.get(plat.start_url(plat.prepare('inst1', 'Instructor', link='link-2')))
    aid = env.sql(f"SELECT id FROM assignment WHERE course_id = {course} AND code = 'hw1'")
    Select(b.find('#lti-assignment')).select_by_value(aid)
    b.find('#lti-choose').click()
    b.until(lambda d: d.current_url.endswith(f'#/assignment/{aid}'))
    t.equal('the launch stored the line items URL and scopes', env.sql(
        "SELECT ags_lineitems || ' ' || array_length(ags_scopes, 1) FROM lti_context "
        "WHERE context_id = 'ctx-1'"), plat.services.base + '/ctx-1/lineitems 5')
    return course, code


def roster_tests(t, env, code, course):
    r = cli(env, 'student-ref', '--course', code, 'sourcedid')
    t.equal('student-ref sourcedid', r.returncode, 0) or print(r.stderr)
    r = cli(env, 'roster', 'sync', '--course', code)
    t.check('roster sync reads every member over two pages',
            r.returncode == 0 and '4 members read from 1 LMS course' in r.stdout,
            r.stdout + r.stderr)
    t.equal('roster: names and sourcedids stored', env.sql(
        "SELECT string_agg(sub || '=' || name || '/' || sourcedid, ',' ORDER BY sub) FROM "
        "lti_member WHERE context_id = 'ctx-1' AND source = 'roster'"),
        'inst1=Ina Structor/T-1,stud1=Stu One/S-1,stud2=Stu Two/S-2,stud3=Stu Three/S-3')
    t.equal('a student_ref maps to the LMS name', env.sql(
        f"SELECT sm_lti_student_name({course}, 'S-2')"), 'Stu Two')
    r = cli(env, 'roster', 'sync', '--course', 'NOPE')
    t.check('roster sync of an unknown course is refused', r.returncode == 1 and
            'no course' in r.stderr, r.stderr)
    r = cli(env, 'passback', '--course', code, '--assignment', 'hw1', 'on-approval')
    t.equal('passback policy set for hw1', r.returncode, 0) or print(r.stderr)
    r = cli(env, 'passback', '--course', code, 'sometimes')
    t.check('a bad policy is refused', r.returncode == 1 and 'on-approval or on-release' in
            r.stderr, r.stderr)
    doc = json.loads(cli(env, 'status', '--course', code, '--json').stdout)
    t.check('status shows the settings', doc['student_ref_from'] == 'sourcedid' and
            doc['passback'] == 'on-release' and
            {a['code']: a['passback'] for a in doc['assignments']} ==
            {'hw1': 'on-approval', 'hw2': 'on-release'}, doc)


def launch_roster_tests(t, env):
    """The instructor's first launch imported the roster in the background."""
    t.check('an instructor launch imports the roster (all pages) in the background', wait_for(
        lambda: env.sql("SELECT count(*) FROM lti_member WHERE context_id = 'ctx-1' AND "
                        "source = 'roster'") == '4', 30))
    t.equal('the import is recorded on the LMS course', env.sql(
        "SELECT roster_synced_at IS NOT NULL FROM lti_context WHERE context_id = 'ctx-1'"), 't')
    t.check('the import is logged', wait_for(lambda: re.search(
        r'lti roster synced .*context="?ctx-1"? .*members="?4', open(env.log_path).read()), 10))


def submit(env, course, code, ref, key=None):
    return env.sql(f"INSERT INTO submission (assignment_id, student_ref, idempotency_key, content) "
                   f"SELECT id, '{ref}', '{key or code + '-' + ref}', 'answer' FROM assignment "
                   f"WHERE course_id = {course} AND code = '{code}' RETURNING id")


def posted(plat, user, lineitem=None):
    """(gradingProgress, scoreGiven, comment) of every score posted for user (to one line item),
    in order of arrival."""
    return [(s['body']['gradingProgress'], s['body'].get('scoreGiven'), s['body'].get('comment'))
            for s in plat.services.scores if s['body']['userId'] == user
            and lineitem in (None, s['lineitem'])]


def passback_tests(t, env, plat, course, b):
    s11 = submit(env, course, 'hw1', 'S-1')
    s12 = submit(env, course, 'hw1', 'S-2')
    s21 = submit(env, course, 'hw2', 'S-1')
    for s in (s11, s12, s21):
        grade(env, s, 4)
    t.check('graded: PendingManual for each, no score shown', wait_for(
        lambda: len(plat.services.scores) >= 3) and all(
        s['body']['gradingProgress'] == 'PendingManual' and s['body']['activityProgress'] ==
        'Submitted' and 'scoreGiven' not in s['body'] for s in plat.services.scores),
        plat.services.scores)
    items = plat.services.lineitems.get('ctx-1', [])
    t.check('one line item per assignment, with its maximum score and resource link',
            sorted((i['label'], i['scoreMaximum'], i.get('resourceLinkId')) for i in items) ==
            [('Homework one', 5, 'link-2'), ('Homework two', 5, None)], items)
    hw1 = next(i['id'] for i in items if i['label'] == 'Homework one')
    hw2 = next(i['id'] for i in items if i['label'] == 'Homework two')

    review(env, s11, 'approve')
    review(env, s12, 'adjust', 3, 'Check step 2')
    review(env, s21, 'approve')  # hw2 is on-release: nothing goes back yet
    wait_for(lambda: len(plat.services.scores) >= 5)
    res = plat.services.results(hw1)
    t.check('on-approval: approved -> FullyGraded 4/5 with the comment',
            res.get('stud1', {}).get('gradingProgress') == 'FullyGraded' and
            res['stud1'].get('scoreGiven') == 4 and res['stud1'].get('scoreMaximum') == 5 and
            res['stud1'].get('comment') == 'Well done', res)
    t.check('on-approval: adjusted -> FullyGraded with the adjusted score',
            res.get('stud2', {}).get('scoreGiven') == 3 and
            res['stud2'].get('comment') == 'Check step 2', res)
    wait_for(lambda: env.sql("SELECT count(*) FROM lti_passback_log WHERE outcome = 'skipped' "
                             f"AND submission_id = {s21}") == '1', 20)
    t.equal('on-release: an approval is logged as skipped, not posted',
            plat.services.results(hw2).get('stud1', {}).get('gradingProgress'), 'PendingManual')

    # the learner: nothing before release, the feedback after
    b.d.delete_all_cookies()
    b.d.get(plat.start_url(plat.prepare('stud1', 'Learner')))
    b.until(lambda d: '/student?t=' in d.current_url)
    t.check('learner before release: no feedback', 'No feedback has been released' in
            b.text('#no-feedback'))
    t.equal('the learner\'s launch maps them by sourcedid', b.text('#student-ref'), 'S-1')
    review(env, s21, 'release')
    t.check('released -> FullyGraded on hw2', wait_for(
        lambda: plat.services.results(hw2).get('stud1', {}).get('gradingProgress') ==
        'FullyGraded', 30), plat.services.scores)
    b.d.get(plat.start_url(plat.prepare('stud1', 'Learner')))
    b.until(lambda d: '/student?t=' in d.current_url)
    card = b.find(f'section.feedback[data-submission="{s21}"]')
    t.check('learner after release: their feedback with the final score',
            '4' in card.find_element('css selector', '.final-score').text and
            'Homework two' in card.text, card.text)
    t.check('learner sees only released feedback (not hw1, approved but unreleased)',
            len(b.d.find_elements('css selector', 'section.feedback')) == 1)
    t.equal('stud1 in hw1: PendingManual then FullyGraded', posted(plat, 'stud1', hw1),
            [('PendingManual', None, None), ('FullyGraded', 4, 'Well done')])
    return hw1


def outage_tests(t, env, plat, course, hw1):
    svc = plat.services
    before = len(svc.scores)
    fails = int(env.sql("SELECT count(*) FROM lti_passback_log WHERE outcome = 'failed'"))
    svc.outage('503')
    s13 = submit(env, course, 'hw1', 'S-3')
    grade(env, s13, 5)
    review(env, s13, 'approve', 'NULL', 'Perfect')
    t.check('503: attempts fail and are logged', wait_for(lambda: int(env.sql(
        "SELECT count(*) FROM lti_passback_log WHERE outcome = 'failed' AND status_code = 503"))
        >= fails + 2, 30))
    svc.outage('refused')
    t.check('connection refused: attempts fail and are logged', wait_for(lambda: int(env.sql(
        "SELECT count(*) FROM lti_passback_log WHERE outcome = 'failed' AND status_code IS NULL "
        "AND error IS NOT NULL")) >= 1, 30))
    t.equal('nothing arrived during the outage', len(svc.scores), before)
    svc.outage(None)
    t.check('after the outage both scores arrive', wait_for(
        lambda: len(posted(plat, 'stud3')) >= 2, 30), svc.scores)
    t.equal('in order: PendingManual, then FullyGraded 5/5 with the comment',
            posted(plat, 'stud3'), [('PendingManual', None, None), ('FullyGraded', 5, 'Perfect')])
    r = cli(env, 'log', '--json')
    rows = json.loads(r.stdout)
    t.check('stepmark lti log shows the failed and the posted attempts of submission ' + s13,
            {x['outcome'] for x in rows if str(x['submission_id']) == s13} >=
            {'failed', 'posted'}, rows[:5])
    r = cli(env, 'log')
    t.check('stepmark lti log prints a table', r.returncode == 0 and 'outcome' in r.stdout and
            'FullyGraded 5/5' in r.stdout, r.stdout[:500])
    ok = [x for x in svc.token_requests if x[0]]
    t.check('tokens are cached: one each for the launch\'s roster import, the CLI and the '
            'passback thread', len(ok) == 3 and len(svc.token_requests) == 3,
            svc.token_requests)
    t.equal('every passback call carried a valid token',
            [c for c in svc.calls if c[2] in (401, 403)], [])


def text_of(b, css):
    """The element's text, '' while it is missing or being redrawn."""
    try:
        return b.d.find_element('css selector', css).text
    except Exception:
        return ''


def page_api(b, path, body, csrf=True):
    """POSTs body to path from the page, with the session's CSRF token unless csrf is False:
    the answer, or {status, message} on an error."""
    return b.d.execute_async_script(
        'const [path, body, csrf, done] = arguments;'
        'if (csrf) { api("POST", path, body).then(done)'
        '  .catch((e) => done({status: e.status, message: e.message})); return; }'
        'fetch(path, {method: "POST", credentials: "same-origin", body: JSON.stringify(body),'
        '  headers: {"Content-Type": "application/json"}})'
        '  .then((r) => done({status: r.status})).catch((e) => done({error: String(e)}));',
        path, body, csrf)


def goto(b, fragment):
    b.d.execute_script('location.hash = arguments[0]', fragment)


def names_tests(t, env, plat, course, b, aid1):
    """The review pages show the LMS names beside the student references."""
    b.d.get(plat.start_url(plat.prepare('inst1', 'Instructor', link='link-2')))
    b.until(lambda d: d.current_url.endswith(f'#/assignment/{aid1}'))
    b.until(lambda d: 'S-1' in text_of(b, '#submissions'))
    table = text_of(b, '#submissions')
    t.check('the submission list shows each LMS name beside the student ref',
            all(n in table for n in ('Stu One (S-1)', 'Stu Two (S-2)', 'Stu Three (S-3)')), table)
    goto(b, f'#/assignment/{aid1}?q=two')
    t.check('searching by a name finds the student', wait_for(
        lambda: text_of(b, '#count') == '1 shown' and 'Stu Two (S-2)' in
        text_of(b, '#submissions'), 15), text_of(b, '#submissions'))
    s12 = env.sql(f"SELECT id FROM submission WHERE assignment_id = {aid1} AND "
                  "student_ref = 'S-2'")
    goto(b, f'#/submission/{s12}')
    t.check('the submission page names the student', wait_for(
        lambda: text_of(b, '#student') == 'Stu Two (S-2)', 15), text_of(b, '#student'))
    t.check('... in the breadcrumbs too', 'Stu Two (S-2)' in text_of(b, '#crumbs'))


def roster_outage_tests(t, env, plat, b, aid1):
    """An instructor's launch while the LMS's roster service is down still lands; the failure
    is logged."""
    plat.services.outage('503')
    env.sql("UPDATE lti_context SET roster_synced_at = NULL WHERE context_id = 'ctx-1'")
    b.d.get(plat.start_url(plat.prepare('inst1', 'Instructor', link='link-2')))
    b.until(lambda d: d.current_url.endswith(f'#/assignment/{aid1}'))
    t.check('the launch lands although the roster service is down',
            'S-1' in b.text('#submissions'))
    t.check('the failed roster import is logged', wait_for(lambda: re.search(
        r'lti roster sync failed .*context="?ctx-1"? .*503', open(env.log_path).read()), 30))
    plat.services.outage(None)


def choose_policy(t, b, aid, value, label):
    from selenium.webdriver.support.ui import Select
    goto(b, f'#/assignment/{aid}')
    b.find(f'#lti-passback-box[data-assignment="{aid}"]')
    Select(b.find('#lti-passback')).select_by_value(value)
    b.find('#lti-passback-save').click()
    t.check(label, wait_for(lambda: 'Saved' in text_of(b, '#lti-passback-status'), 15),
            text_of(b, '#lti-passback-status'))


def policy_tests(t, env, plat, course, b, aid1, aid2):
    """The teacher chooses the passback policy on the assignment page."""
    from selenium.webdriver.support.ui import Select
    goto(b, f'#/assignment/{aid2}')
    b.find(f'#lti-passback-box[data-assignment="{aid2}"]')
    t.check('hw2 follows the course (on release)', wait_for(
        lambda: b.d.find_element('css selector', '#lti-passback-status')
        .get_attribute('data-policy') == 'on-release' and
        Select(b.d.find_element('css selector', '#lti-passback')).first_selected_option
        .get_attribute('value') == 'default', 15))
    choose_policy(t, b, aid2, 'on-approval', 'hw2 set to on-approval on the page')
    t.equal('stored as hw2\'s own policy', env.sql(
        f'SELECT passback FROM lti_assignment_setting WHERE assignment_id = {aid2}'),
        'on-approval')
    t.equal('the change is audited', env.sql(
        f"SELECT count(*) FROM audit_log WHERE action = 'lti.passback' AND "
        f"subject = 'assignment:{aid2}'"), '1')
    hw2 = next(i['id'] for i in plat.services.lineitems['ctx-1'] if i['label'] == 'Homework two')
    s22 = submit(env, course, 'hw2', 'S-2')
    grade(env, s22, 2)
    review(env, s22, 'approve', 'NULL', 'Fine')
    t.check('hw2 on approval now: the approved score goes back without a release', wait_for(
        lambda: posted(plat, 'stud2', hw2) == [('PendingManual', None, None),
                                               ('FullyGraded', 2, 'Fine')], 30),
        posted(plat, 'stud2', hw2))

    hw1 = next(i['id'] for i in plat.services.lineitems['ctx-1'] if i['label'] == 'Homework one')
    choose_policy(t, b, aid1, 'on-release', 'hw1 set to on-release on the page')
    s = submit(env, course, 'hw1', 'S-2', key='hw1-S-2-again')
    grade(env, s, 5)
    review(env, s, 'approve', 'NULL', 'Second try')
    t.check('hw1 on release now: the approval is skipped', wait_for(lambda: env.sql(
        "SELECT count(*) FROM lti_passback_log WHERE outcome = 'skipped' AND "
        f"submission_id = {s}") == '1', 30))
    t.equal('... so the LMS still shows it pending', posted(plat, 'stud2', hw1)[-1],
            ('PendingManual', None, None))
    review(env, s, 'release')
    t.check('... until it is released', wait_for(
        lambda: posted(plat, 'stud2', hw1)[-1][:2] == ('FullyGraded', 5), 30),
        posted(plat, 'stud2', hw1))

    res = page_api(b, f'/api/assignments/{aid2}/lti-passback', {'policy': 'default'})
    t.check('"default" clears the assignment\'s own policy',
            res.get('passback') == 'on-release' and res.get('own') is None, res)
    res = page_api(b, f'/api/assignments/{aid2}/lti-passback', {'policy': 'sometimes'})
    t.equal('an unknown policy is refused', res.get('status'), 400)
    res = page_api(b, f'/api/assignments/{aid2}/lti-passback', {'policy': 'on-release'},
                   csrf=False)
    t.equal('a POST without the CSRF token is refused', res.get('status'), 403)
    tid = env.sql("SELECT teacher_id FROM lti_user WHERE sub = 'inst1'")
    other = env.sql("WITH c AS (INSERT INTO course (code, title) VALUES ('PLAIN1', 'No LMS') "
                    f"RETURNING id), ct AS (INSERT INTO course_teacher SELECT id, {tid} FROM c) "
                    "INSERT INTO assignment (course_id, code, title, kind, statement, max_score) "
                    "SELECT id, 'p1', 'Plain', 'math', 'z', 5 FROM c RETURNING id")
    res = page_api(b, f'/api/assignments/{other}/lti-passback', {'policy': 'on-approval'})
    t.equal('a course without an LMS link has no passback policy', res.get('status'), 404)
    goto(b, f'#/assignment/{other}')
    b.until(lambda d: text_of(b, '#main h1') == 'Plain')
    t.check('... and its page shows no passback control',
            not b.d.find_elements('css selector', '#lti-passback-box'))


def main():
    p = argparse.ArgumentParser()
    for a in ('--server', '--cli', '--stepmarkd', '--seed', '--web', '--out'):
        p.add_argument(a, required=True)
    args = p.parse_args()
    t = Checks()
    env = plat = b = d = None
    config = os.path.join(args.out, f'lti-ags-server-{os.getpid()}.yaml')
    with open(config, 'w') as f:
        f.write('lti:\n  jwks_refetch_seconds: 1\n')
    try:
        env = Env(args, 'lti_ags', 20, extra=('--config', config))
        plat = Platform()
        plat.tool_base = env.base
        plat.people = PEOPLE
        r = cli(env, 'platform', 'add', '--issuer', plat.issuer, '--client-id', plat.client_id,
                '--deployment', plat.deployment, '--auth-url', plat.base + '/auth',
                '--token-url', plat.services.token_url(), '--jwks-url', plat.base + '/jwks')
        t.equal('platform add', r.returncode, 0) or print(r.stderr)
        b = Browser(env, args.out)
        course, code = setup_course(t, env, plat, b)
        launch_roster_tests(t, env)
        roster_tests(t, env, code, course)
        d = Daemon(args, env)
        hw1 = passback_tests(t, env, plat, course, b)
        outage_tests(t, env, plat, course, hw1)
        aid1, aid2 = (env.sql(f"SELECT id FROM assignment WHERE course_id = {course} AND "
                              f"code = '{c}'") for c in ('hw1', 'hw2'))
        names_tests(t, env, plat, course, b, aid1)
        roster_outage_tests(t, env, plat, b, aid1)
        policy_tests(t, env, plat, course, b, aid1, aid2)
    except Exception:
        traceback.print_exc()
        t.check('test run completed without exception', False)
    finally:
        if b:
            b.close()
        if d:
            t.equal('stepmarkd stopped cleanly', d.close(), 0) or \
                print(open(d.log_path).read()[-3000:])
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
