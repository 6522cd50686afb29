#!/usr/bin/env python3
"""test_criteria: rubric criteria (issue 31) through a real stepmarkd and PostgreSQL.

  test_criteria.py --stepmarkd BIN --cli BIN --out DIR

A fresh database of the pg fixture; stepmarkd with its HTTP server on loopback. The LMS side and
the worker side are small stand-ins written from docs/protocol.md (raw ZeroMQ DEALER sockets,
five frames). Checks: assignments with criteria (create, max_score as the sum, every refused
shape and cross-check, update, ASSIGNMENT_GET); the JOB body's rubric as an array; RESULTs with
criteria stored (grading_criterion rows), and refused ones (missing, wrong id, wrong maximum,
sum not the score, criteria for a free-text rubric); the review per criterion (history rows,
totals, every 400, approve after adjust); the page's JSON; the CSV export's criterion columns;
GET /api/v1/submissions/{id}/result with criteria.
"""
import argparse
import csv
import io
import json
import os
import re
import subprocess
import sys
import traceback

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'clients'))
from test_review import Checks, Client  # noqa: E402
from stack import db_url, free_port, psql  # noqa: E402

RUBRIC = [
    {'id': 'setup', 'description': 'Sets up the induction', 'points': 2},
    {'id': 'step', 'description': 'Proves the inductive step', 'points': 3},
    {'id': 'answer', 'description': 'States the answer', 'points': 1, 'checks': ['answer']},
]


class Broker:
    """stepmarkd on loopback (no CURVE) with its HTTP server, in a fresh database."""

    def __init__(self, args):
        self.base_url = os.environ['STEPMARK_DATABASE_URL']
        self.db = f'criteria_test_{os.getpid()}'
        self.url = db_url(self.base_url, self.db)
        psql(self.base_url, f'DROP DATABASE IF EXISTS {self.db}')
        psql(self.base_url, f'CREATE DATABASE {self.db}')
        self.env = dict(os.environ, STEPMARK_DATABASE_URL=self.url)
        for k in ('STEPMARK_CONFIG', 'STEPMARK_HTTP_PORT'):
            self.env.pop(k, None)
        self.client_ep = f'tcp://127.0.0.1:{free_port()}'
        self.worker_ep = f'tcp://127.0.0.1:{free_port()}'
        port = free_port()
        self.http = f'http://127.0.0.1:{port}'
        self.cfg = os.path.join(args.out, 'criteria-stepmark.yaml')
        with open(self.cfg, 'w') as f:
            f.write(f'''broker:
  client_endpoint: "{self.client_ep}"
  worker_endpoint: "{self.worker_ep}"
  event_endpoint: "tcp://127.0.0.1:{free_port()}"
  heartbeat_ms: 200
  heartbeat_timeout_ms: 30000
  retry_backoff_ms: 0
http:
  enabled: true
  address: 127.0.0.1
  port: {port}
logging:
  level: info
''')
        self.cli = args.cli
        self.run_cli('migrate')
        self.log = open(os.path.join(args.out, 'criteria-stepmarkd.log'), 'w')
        self.proc = subprocess.Popen([args.stepmarkd, '--config', self.cfg], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self.ctx = zmq.Context()

    def run_cli(self, *argv):
        r = subprocess.run([self.cli, *argv], env=self.env, capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f'stepmark {" ".join(argv)}: {r.stderr}{r.stdout}')
        return r.stdout

    def sql(self, q):
        return psql(self.url, q)

    def socket(self, ep):
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVTIMEO, 30000)
        s.connect(ep)
        return s

    def close(self):
        self.ctx.destroy(linger=0)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()
        self.log.close()
        try:
            psql(self.base_url, f'DROP DATABASE IF EXISTS {self.db} WITH (FORCE)')
        except Exception as e:
            print('warning: cannot drop test database:', e)


def send(sock, proto, cmd, body, corr=b'1'):
    sock.send_multipart([b'', proto, cmd.encode(), corr, json.dumps(body).encode()])


def recv(sock, skip=(b'HEARTBEAT',)):
    while True:
        f = sock.recv_multipart()
        if f[2] not in skip:
            return f[2].decode(), json.loads(f[4])


def client(b, cmd, body):
    s = b.socket(b.client_ep)
    try:
        send(s, b'SMC1', cmd, body)
        return recv(s)
    finally:
        s.close()


def assignment_tests(t, b):
    rc, doc = client(b, 'COURSE_PUT', {'code': 'MATH', 'title': 'Maths'})
    t.equal('course created', rc, 'OK')
    base = {'course': 'MATH', 'kind': 'math', 'statement': 'Prove it.', 'answer_key': '42'}
    rc, doc = client(b, 'ASSIGNMENT_CREATE', dict(base, code='crit', rubric=RUBRIC))
    t.equal('assignment with criteria created', rc, 'OK')
    rc, doc = client(b, 'ASSIGNMENT_GET', {'course': 'MATH', 'code': 'crit'})
    t.check('GET returns the criteria as given', rc == 'OK' and doc['rubric'] == RUBRIC, doc)
    t.check('max_score omitted becomes the sum', doc.get('max_score') == 6, doc.get('max_score'))
    t.equal('stored as rubric_criteria, no free text',
            b.sql("SELECT rubric IS NULL, jsonb_array_length(rubric_criteria) FROM assignment "
                  "WHERE code = 'crit'"), 't|3')
    rc, doc = client(b, 'ASSIGNMENT_CREATE', dict(base, code='crit2', rubric=RUBRIC, max_score=6))
    t.equal('max_score equal to the sum accepted', rc, 'OK')
    rc, doc = client(b, 'ASSIGNMENT_CREATE', dict(base, code='free', rubric='Be fair.'))
    rc2, doc2 = client(b, 'ASSIGNMENT_GET', {'course': 'MATH', 'code': 'free'})
    t.check('free-text rubric still a string', rc == 'OK' and doc2['rubric'] == 'Be fair.', doc2)
    bad = [
        ('sum mismatch', dict(rubric=RUBRIC, max_score=10), 'sum'),
        ('empty list', dict(rubric=[]), 'rubric'),
        ('duplicate id', dict(rubric=[RUBRIC[0], RUBRIC[0]]), 'rubric'),
        ('bad id', dict(rubric=[dict(RUBRIC[0], id='a b')]), 'rubric'),
        ('unknown key', dict(rubric=[dict(RUBRIC[0], weight=1)]), 'rubric'),
        ('zero points', dict(rubric=[dict(RUBRIC[0], points=0)]), 'rubric'),
        ('3 decimals', dict(rubric=[dict(RUBRIC[0], points=1.234)]), 'rubric'),
        ('blank description', dict(rubric=[dict(RUBRIC[0], description='  ')]), 'rubric'),
        ('unknown check', dict(rubric=[dict(RUBRIC[0], checks=['magic'])]), 'rubric'),
        ('tests check without tests', dict(rubric=[dict(RUBRIC[0], checks=['tests'])]), 'tests'),
        ('answer check without key', dict(rubric=[RUBRIC[2]], answer_key=None), 'answer_key'),
    ]
    for i, (name, extra, word) in enumerate(bad):
        body = dict(base, code=f'bad{i}', **extra)
        if body.get('answer_key') is None:
            body.pop('answer_key')
        rc, doc = client(b, 'ASSIGNMENT_CREATE', body)
        t.check(f'refused: {name}', rc == 'ERROR' and doc['code'] == 'EINVAL'
                and word in doc['message'], doc)
    code = {'course': 'MATH', 'code': 'prog', 'kind': 'code', 'language': 'python',
            'statement': 'Add.', 'tests': [{'name': 'small', 'input': '1 2',
                                            'expected_output': '3'}]}
    rc, doc = client(b, 'ASSIGNMENT_CREATE', dict(code, rubric=[
        {'id': 'ok', 'description': 'Works', 'points': 1, 'checks': ['tests', 'test:small']}]))
    t.equal('code assignment with test checks', rc, 'OK')
    rc, doc = client(b, 'ASSIGNMENT_CREATE', dict(code, code='prog2', rubric=[
        {'id': 'ok', 'description': 'Works', 'points': 1, 'checks': ['test:big']}]))
    t.check('refused: unknown test name', rc == 'ERROR' and 'big' in doc['message'], doc)
    rc, doc = client(b, 'ASSIGNMENT_UPDATE', {'course': 'MATH', 'code': 'crit2', 'max_score': 7})
    t.check('update: max_score against the stored criteria refused',
            rc == 'ERROR' and 'sum' in doc['message'], doc)
    rc, doc = client(b, 'ASSIGNMENT_UPDATE', {'course': 'MATH', 'code': 'free',
                                             'rubric': RUBRIC[:2]})
    t.equal('update: free text to criteria', rc, 'OK')
    t.equal('update: criteria replace the text, max_score the sum',
            b.sql("SELECT rubric IS NULL, max_score FROM assignment WHERE code = 'free'"),
            't|5.00')
    rc, doc = client(b, 'ASSIGNMENT_UPDATE', {'course': 'MATH', 'code': 'free',
                                             'rubric': 'Text again', 'max_score': 10})
    t.equal('update: back to free text',
            b.sql("SELECT rubric, rubric_criteria IS NULL FROM assignment WHERE code = 'free'"),
            'Text again|t')


def result_body(job_id, criteria, score):
    return {'job_id': job_id, 'status': 'graded', 'score': score, 'summary': 'ok',
            'model': {'name': 'm', 'hash': 'h'}, 'engine_version': 'e',
            'prompt_template_version': 'math-v2', 'criteria': criteria}


def crit(points, verdicts=('met', 'partly', 'not_met')):
    return [{'id': c['id'], 'description': c['description'], 'max_points': c['points'],
             'verdict': v, 'points': p, 'evidence': 'quoted ' + c['id'], 'agreement': 1.0}
            for c, p, v in zip(RUBRIC, points, verdicts)]


def worker_tests(t, b):
    for i in range(2):
        rc, doc = client(b, 'SUBMIT', {'course': 'MATH', 'assignment': 'crit',
                                       'student_ref': f'S{i}', 'idempotency_key': f'k{i}',
                                       'content': 'Let n = 1 ...'})
        t.equal(f'submission {i} accepted', rc, 'OK')
    b.sql('UPDATE job SET max_attempts = 100')  # each refused RESULT is a failed attempt
    w = b.socket(b.worker_ep)
    send(w, b'SMW1', 'READY', {'name': 'standin', 'slots': 1})
    cmd, job = recv(w)
    t.check('JOB body carries the rubric as an array',
            cmd == 'JOB' and job['assignment']['rubric'] == RUBRIC, job.get('assignment'))
    jid = job['job_id']
    refusals = [
        ('without criteria', dict(result_body(jid, None, 3.5)), 'needs "criteria"'),
        ('wrong id', result_body(jid, crit([2, 1.5, 0])[:2] + [dict(crit([2, 1.5, 0])[2],
                                                                     id='final')], 3.5), 'final'),
        ('wrong maximum', result_body(jid, crit([2, 1.5, 0])[:2] + [dict(crit([2, 1.5, 0])[2],
                                                                          max_points=2)], 3.5),
         'max_points'),
        ('sum not the score', result_body(jid, crit([2, 1.5, 0]), 4), 'sum'),
        ('points above the maximum', result_body(jid, crit([2, 3.5, 0]), 5.5), 'points'),
        ('points without verdict', result_body(jid, crit([2, 1.5, 0], ('met', None, 'not_met')),
                                               3.5), 'null together'),
    ]
    refusals[0][1].pop('criteria')
    for name, body, word in refusals:
        send(w, b'SMW1', 'RESULT', body, str(jid).encode())
        cmd, doc = recv(w)
        t.check(f'RESULT refused: {name}', cmd == 'ERROR' and word in doc['message'], doc)
        # a refused RESULT is a failed attempt: the job is queued again; take it back
        cmd, job = recv(w, skip=(b'HEARTBEAT', b'ACK'))
        jid = job['job_id'] if cmd == 'JOB' else jid
        for r in refusals:
            r[1]['job_id'] = jid
    t.equal('nothing stored by the refusals', b.sql('SELECT count(*) FROM grading'), '0')
    send(w, b'SMW1', 'RESULT', result_body(jid, crit([2, 1.5, 0]), 3.5), str(jid).encode())
    cmd, doc = recv(w)
    t.check('RESULT with criteria acknowledged', cmd == 'ACK', doc)
    t.equal('grading_criterion rows stored in order',
            b.sql("SELECT string_agg(criterion_id || ':' || verdict || ':' || points || ':' || "
                  "max_points || ':' || evidence, ',' ORDER BY position) FROM grading_criterion"),
            'setup:met:2.00:2.00:quoted setup,step:partly:1.50:3.00:quoted step,'
            'answer:not_met:0.00:1.00:quoted answer')
    unscored = unscored_result(t, w)
    w.close()
    return int(b.sql(f'SELECT submission_id FROM job WHERE id = {jid}')), unscored


def unscored_result(t, w):
    """The other submission's grading: the model gave no valid verdict, so every criterion comes
    without verdict and points (needs_review, no score). Returns its job id."""
    cmd, job = recv(w, skip=(b'HEARTBEAT', b'ACK'))
    t.equal('the second job handed out', cmd, 'JOB')
    body = result_body(job['job_id'], crit([None] * 3, (None,) * 3), None)
    body.update(status='needs_review', flags=['invalid_verdict'])
    # no score: null means the same as absent, everywhere in a RESULT
    body.update(score=None, summary=None, steps=None, checks=None, reasoning=None, sampling=None)
    for c in body['criteria']:
        c.update(evidence='', agreement=None)
    send(w, b'SMW1', 'RESULT', body, str(job['job_id']).encode())
    cmd, doc = recv(w)
    t.check('RESULT without verdicts acknowledged', cmd == 'ACK', doc)
    return job['job_id']


def unscored_review_tests(t, b, c, jid):
    """Criteria the model gave no points must each be named in an adjust."""
    sid = b.sql(f'SELECT submission_id FROM job WHERE id = {jid}')
    path = f'/api/submissions/{sid}/review'
    st, doc = c.json('POST', path, {'action': 'adjust', 'criteria': {'step': 2},
                                    'comment': 'Graded by hand.'})
    t.check('adjust refused: criteria without points left out',
            st == 400 and 'has no points yet' in json.dumps(doc), (st, doc))
    st, doc = c.json('POST', path, {'action': 'approve'})
    t.equal('approve refused without any score', st, 409)
    st, doc = c.json('POST', path, {'action': 'adjust', 'criteria': {'setup': 2, 'step': 2,
                                                                     'answer': 0},
                                    'comment': 'Graded by hand.'})
    t.check('adjust naming every criterion', st == 200 and doc.get('new_score') == 4, (st, doc))
    t.equal('review_criterion rows with no old points',
            b.sql(f"SELECT string_agg(rc.criterion_id || ':' || coalesce(rc.old_points::text, "
                  f"'-') || '>' || rc.new_points, ',' ORDER BY rc.criterion_id) FROM "
                  f"review_criterion rc JOIN review r ON r.id = rc.review_id JOIN grading g ON "
                  f"g.id = r.grading_id WHERE g.job_id = {jid}"),
            'answer:->0.00,setup:->2.00,step:->2.00')


def review_tests(t, b, sid):
    out = b.run_cli('teacher', 'add', '--name', 'Tess', '--course', 'MATH')
    token = re.search(r'^([0-9a-f]{64})$', out, re.M).group(1)
    c = Client(b.http)
    t.equal('teacher signs in', c.signin(token)[0], 200)
    st, doc = c.json('GET', f'/api/submissions/{sid}')
    g = doc['grading']
    t.equal('page JSON: criteria in order', [x['id'] for x in g['criteria']],
            ['setup', 'step', 'answer'])
    t.check('page JSON: numbers, current = model, not adjusted',
            g['criteria'][1]['points'] == 1.5 and g['criteria'][1]['current_points'] == 1.5
            and g['criteria'][1]['max_points'] == 3 and not g['criteria'][1]['adjusted']
            and g['criteria'][1]['agreement'] == 1.0, g['criteria'][1])
    t.check('page JSON: the assignment rubric as an array', doc['submission']['rubric'] == RUBRIC,
            doc['submission'].get('rubric'))
    path = f'/api/submissions/{sid}/review'
    bad = [
        ('score for a criteria grading', {'action': 'adjust', 'score': 4, 'comment': 'x'},
         'scored by criteria'),
        ('neither', {'action': 'adjust', 'comment': 'x'}, 'scored by criteria'),
        ('both', {'action': 'adjust', 'score': 4, 'criteria': {'step': 2}, 'comment': 'x'},
         'not both'),
        ('unknown id', {'action': 'adjust', 'criteria': {'nope': 1}, 'comment': 'x'}, 'nope'),
        ('above max', {'action': 'adjust', 'criteria': {'step': 3.5}, 'comment': 'x'}, 'at most'),
        ('negative', {'action': 'adjust', 'criteria': {'step': -1}, 'comment': 'x'}, 'points'),
        ('3 decimals', {'action': 'adjust', 'criteria': {'step': 1.234}, 'comment': 'x'},
         'decimals'),
        ('not a number', {'action': 'adjust', 'criteria': {'step': '2'}, 'comment': 'x'},
         'points'),
        ('empty', {'action': 'adjust', 'criteria': {}, 'comment': 'x'}, 'criteria'),
        ('no comment', {'action': 'adjust', 'criteria': {'step': 2}}, 'comment'),
        ('criteria with approve', {'action': 'approve', 'criteria': {'step': 2}}, 'adjust'),
    ]
    for name, body, word in bad:
        st, doc = c.json('POST', path, body)
        t.check(f'adjust refused (400): {name}', st == 400 and word in doc['error']['message']
                if isinstance(doc.get('error'), dict) else st == 400 and word in json.dumps(doc),
                (st, doc))
    t.equal('no review stored by refusals', b.sql('SELECT count(*) FROM review'), '0')
    st, doc = c.json('POST', path, {'action': 'adjust', 'criteria': {'step': 2.5, 'answer': 1},
                                    'comment': 'Step nearly complete; answer stated.'})
    t.check('adjust by criteria', st == 200 and doc.get('new_score') == 5.5, doc)
    t.equal('review row: old and new totals',
            b.sql("SELECT old_score || '|' || new_score FROM review WHERE action = 'adjust'"),
            '3.50|5.50')
    t.equal('review_criterion rows for every criterion',
            b.sql("SELECT string_agg(criterion_id || ':' || old_points || '>' || new_points, ',' "
                  "ORDER BY criterion_id) FROM review_criterion"),
            'answer:0.00>1.00,setup:2.00>2.00,step:1.50>2.50')
    st, doc = c.json('POST', path, {'action': 'adjust', 'criteria': {'setup': 1},
                                    'comment': 'Base case only sketched.'})
    t.check('second adjust keeps the others', st == 200 and doc.get('new_score') == 4.5, doc)
    st, doc = c.json('GET', f'/api/submissions/{sid}')
    cur = {x['id']: (x['current_points'], x['adjusted']) for x in doc['grading']['criteria']}
    t.equal('current points and adjusted marks', cur,
            {'setup': (1, True), 'step': (2.5, True), 'answer': (1, True)})
    latest = doc['reviews'][0]
    t.equal('history: the review\'s criteria', latest['criteria'],
            [{'id': 'setup', 'old_points': 2, 'new_points': 1},
             {'id': 'step', 'old_points': 2.5, 'new_points': 2.5},
             {'id': 'answer', 'old_points': 1, 'new_points': 1}])
    st, doc = c.json('POST', path, {'action': 'approve'})
    t.check('approve after adjust approves the current total',
            st == 200 and doc.get('new_score') == 4.5, doc)
    return c


def export_and_v1_tests(t, b, c, sid):
    aid = b.sql("SELECT id FROM assignment WHERE code = 'crit'")
    st, _, data = c.request('GET', f'/api/assignments/{aid}/export.csv?criteria=1')
    rows = list(csv.reader(io.StringIO(data.decode())))
    t.check('export: criterion columns',
            st == 200 and rows[0][-3:] == ['criterion:setup', 'criterion:step', 'criterion:answer'],
            rows[:1])
    by = {r[0]: r for r in rows[1:]}
    graded = b.sql(f'SELECT student_ref FROM submission WHERE id = {sid}')
    other = 'S1' if graded == 'S0' else 'S0'
    t.equal('export: current points', by[graded][-3:], ['1', '2.5', '1'])
    t.equal('export: empty without a grading', by[other][-3:], ['', '', ''])
    st, _, data = c.request('GET', f'/api/assignments/{aid}/export.csv')
    t.check('export: no criterion columns by default', 'criterion:' not in data.decode(), data)
    st, _, data = c.request('GET', f'/api/assignments/{aid}/export.csv?format=canvas&criteria=1')
    rows = list(csv.reader(io.StringIO(data.decode())))
    t.check('export: Canvas points-possible row holds the criteria points',
            st == 200 and rows[1][-3:] == ['2', '3', '1'], rows[:2])
    st, _, _ = c.request('GET', f'/api/assignments/{aid}/export.csv?criteria=yes')
    t.equal('export: bad criteria option', st, 400)
    doc = client(b, 'RESULT', {'submission_id': sid})[1]
    t.check('protocol RESULT reply carries the criteria',
            [x['id'] for x in doc.get('criteria', [])] == ['setup', 'step', 'answer']
            and doc['criteria'][0]['current_points'] == 1, doc.get('criteria'))


def v1_tests(t, b, sid, args):
    r = subprocess.run([args.cli, 'service', 'add', 'lms', '--course', 'MATH'],
                       env=b.env, capture_output=True, text=True, timeout=60)
    m = re.search(r'^(sms_[0-9a-f]{64})$', r.stdout, re.M)
    if r.returncode != 0 or not m:
        t.check('service token for /api/v1 (stepmark service add)', False, r.stderr + r.stdout)
        return
    c = Client(b.http)
    st, doc = c.json('GET', f'/api/v1/submissions/{sid}/result',
                     headers={'Authorization': 'Bearer ' + m.group(1)})
    t.check('v1 result carries criteria with current points',
            st == 200 and [x['current_points'] for x in doc.get('criteria', [])] == [1, 2.5, 1],
            (st, doc))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--stepmarkd', required=True)
    ap.add_argument('--cli', required=True)
    ap.add_argument('--out', required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    t = Checks()
    b = Broker(args)
    try:
        c = Client(b.http)
        import time
        for _ in range(300):  # until the HTTP server answers
            try:
                if c.request('GET', '/metrics')[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assignment_tests(t, b)
        sid, unscored_job = worker_tests(t, b)
        c = review_tests(t, b, sid)
        export_and_v1_tests(t, b, c, sid)
        unscored_review_tests(t, b, c, unscored_job)
        v1_tests(t, b, sid, args)
    except Exception:
        traceback.print_exc()
        t.check('no exception', False)
    finally:
        b.close()
    print(f'{t.passed} passed, {t.failed} failed')
    return 1 if t.failed or t.passed == 0 else 0


if __name__ == '__main__':
    sys.exit(main())
