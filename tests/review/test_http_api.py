#!/usr/bin/env python3
"""test_http_api: the service API /api/v1 of the real stepmarkd (docs/http-api.md).

  test_http_api.py --stepmarkd BIN --cli BIN --worker BIN --spec docs/openapi.yaml --out DIR

Creates its own database in the cluster named by $STEPMARK_DATABASE_URL, starts stepmarkd
(broker on ipc sockets, HTTP on a free loopback port, broker.max_body_bytes 4096) and drives it
with urllib as an LMS plugin would: `stepmark service add|list|revoke`; every way a bearer
token can fail (missing, malformed, unknown, revoked, expired, out of scope, a teacher token,
a session cookie); submissions with Idempotency-Key (same request again, another request with
the same key, durable before the answer), the SUBMIT checks and size limit; then a real worker
(sm_testworker) grades what was submitted over HTTP, and status, result, final and the list
follow it, also after a teacher approves. docs/openapi.yaml is checked with
openapi-spec-validator and every response the test receives is validated against the
operation's documented status and schema (jsonschema, draft 2020-12). Prints one line per
check and "N passed, N failed"; exits 1 on failure.
"""
import argparse
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import jsonschema
import referencing
import referencing.jsonschema
import yaml
from openapi_spec_validator import validate as validate_spec

from test_review import Checks, psql  # noqa: E402 (same folder)
from test_teacher_access import db_url, free_port, request, signin, token_in  # noqa: E402

MAX_BODY = 4096


class Spec:
    """docs/openapi.yaml: checks responses against the documented ones."""

    def __init__(self, path):
        with open(path) as f:
            self.doc = yaml.safe_load(f)
        validate_spec(self.doc)
        self.registry = referencing.Registry().with_resource(
            'urn:spec', referencing.Resource.from_contents(
                self.doc, default_specification=referencing.jsonschema.DRAFT202012))
        self.paths = []
        for tpl in self.doc['paths']:
            rx = '^' + re.sub(r'\{[^}]+\}', '[^/]+', tpl) + '$'
            self.paths.append((re.compile(rx), tpl))
        self.seen = set()  # (method, template)

    def response(self, method, path, status, body):
        """A list of problems (empty when the response is as documented)."""
        path = path.split('?')[0]
        tpl = next((t for rx, t in self.paths if rx.match(path)), None)
        if tpl is None:
            return [f'{path} is not documented']
        op = self.doc['paths'][tpl].get(method.lower())
        if op is None:
            return [f'{method} {tpl} is not documented']
        self.seen.add((method.upper(), tpl))
        resp = op['responses'].get(str(status))
        if resp is None:
            return [f'{method} {tpl}: status {status} is not documented']
        ptr = f'#/paths/{tpl.replace("~", "~0").replace("/", "~1")}/{method.lower()}'
        ptr += f'/responses/{status}'
        if '$ref' in resp:
            ptr = resp['$ref']
            resp = self.doc['components']['responses'][ptr.split('/')[-1]]
        if 'content' not in resp:
            return []
        schema = {'$ref': 'urn:spec' + ptr + '/content/application~1json/schema'}
        v = jsonschema.Draft202012Validator(schema, registry=self.registry)
        return [f'{method} {tpl} {status}: {e.message}' for e in v.iter_errors(body)]


class Api:
    """Requests to /api/v1 with a token; every response is checked against the spec."""

    def __init__(self, t, base, spec):
        self.t, self.base, self.spec = t, base, spec

    def call(self, method, path, token=None, body=None, headers=None, raw=None, check=True):
        h = dict(headers or {})
        if token:
            h.setdefault('Authorization', 'Bearer ' + token)
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            h.setdefault('Content-Type', 'application/json')
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, hdrs, text = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            status, hdrs, text = e.code, e.headers, e.read()
        try:
            doc = json.loads(text) if text else None
        except ValueError:
            doc = None
        problems = self.spec.response(method, path, status, doc) if check else []
        if problems:
            self.t.check(f'documented: {method} {path} {status}', False, problems[:3])
        return status, hdrs, doc


class Stack:
    """A fresh database with three courses and a running stepmarkd."""

    def __init__(self, args):
        self.base_url = os.environ['STEPMARK_DATABASE_URL']
        self.db = f'http_api_{os.getpid()}'
        self.url = db_url(self.base_url, self.db)
        psql(self.base_url, f'DROP DATABASE IF EXISTS {self.db}')
        psql(self.base_url, f'CREATE DATABASE {self.db}')
        self.cli = args.cli
        self.env = dict(os.environ, STEPMARK_DATABASE_URL=self.url)
        self.env.pop('STEPMARK_CONFIG', None)
        self.env.pop('STEPMARK_HTTP_PORT', None)
        self.dir = tempfile.mkdtemp(prefix='smapi-', dir='/tmp')
        port = free_port()
        cfg = os.path.join(self.dir, 'stepmark.yaml')
        with open(cfg, 'w') as f:
            f.write('broker:\n'
                    f'  client_endpoint: "ipc://{self.dir}/client"\n'
                    f'  worker_endpoint: "ipc://{self.dir}/worker"\n'
                    f'  event_endpoint: "ipc://{self.dir}/events"\n'
                    f'  max_body_bytes: {MAX_BODY}\n'
                    'http:\n  enabled: true\n  address: 127.0.0.1\n'
                    f'  port: {port}\n  login_attempts_per_minute: 20\n'
                    'logging:\n  level: info\n')
        r = self.run('migrate')
        if r.returncode != 0:
            raise RuntimeError('stepmark migrate failed: ' + r.stderr + r.stdout)
        self.sql("INSERT INTO course (code, title) VALUES ('MATH101', 'Algebra'), "
                 "('CS201', 'Programming')")
        self.log_path = os.path.join(args.out, 'http-api-stepmarkd.log')
        self.log = open(self.log_path, 'w')
        self.proc = subprocess.Popen([args.stepmarkd, '--config', cfg], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self.base = f'http://127.0.0.1:{port}'
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f'stepmarkd exited with {self.proc.returncode}; see '
                                   + self.log_path)
            try:
                urllib.request.urlopen(self.base + '/healthz', timeout=5).read()
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.time() > deadline:
                    raise RuntimeError('stepmarkd HTTP did not answer in 60 s')
                time.sleep(0.2)

    def run(self, *argv):
        return subprocess.run([self.cli, *argv], env=self.env, capture_output=True, text=True,
                              timeout=60)

    def sql(self, q):
        return psql(self.url, q)

    def close(self):
        try:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        try:
            psql(self.base_url, f'DROP DATABASE IF EXISTS {self.db} WITH (FORCE)')
        except Exception as e:
            print('warning: cannot drop test database:', e)


def err_code(doc):
    return (doc or {}).get('error', {}).get('code')


def setup(s):
    s.sql("INSERT INTO course (code, title) VALUES ('HIDDEN', 'Not for services')")
    s.sql("INSERT INTO assignment (course_id, code, title, kind, statement, max_score) "
          "SELECT id, 'hw1', 'Week 1', 'proof', 'Prove that 1 + 1 = 2.', 10 FROM course "
          "WHERE code = 'MATH101'")
    s.sql("INSERT INTO assignment (course_id, code, title, kind, statement, answer_key, "
          "reference_solution) SELECT id, 'code1', 'Sum', 'code', 'Add two numbers.', 'SECRET-KEY', "
          "'SECRET-SOLUTION' FROM course WHERE code = 'MATH101'")
    s.sql("INSERT INTO assignment (course_id, code, kind, statement) "
          "SELECT id, 'p1', 'math', 'What is 6 * 7?' FROM course WHERE code = 'CS201'")
    s.sql("INSERT INTO assignment (course_id, code, kind, statement) "
          "SELECT id, 'hw1', 'proof', 'Hidden.' FROM course WHERE code = 'HIDDEN'")


def service_token(t, s, name, *courses, expires=None):
    argv = ['service', 'add', name] + [x for c in courses for x in ('--course', c)]
    if expires:
        argv += ['--expires', expires]
    r = s.run(*argv)
    m = re.search(r'^(sms_[0-9a-f]{64})$', r.stdout, re.M)
    t.check(f'service add {name}', r.returncode == 0 and m, (r.returncode, r.stderr))
    return m.group(1) if m else 'sms_' + '0' * 64


def test_cli(t, s):
    lms = service_token(t, s, 'moodle', 'MATH101', 'CS201')
    t.equal('only the SHA-256 of the token is stored',
            s.sql("SELECT count(*) FROM service_token WHERE token_hash = '"
                  + hashlib.sha256(lms.encode()).hexdigest() + "'") + '/'
            + s.sql(f"SELECT count(*) FROM service_token WHERE token_hash = '{lms}'"), '1/0')
    r = s.run('service', 'add', 'moodle', '--course', 'MATH101')
    t.check('a name that exists is refused', r.returncode == 1 and 'exists' in r.stderr,
            (r.returncode, r.stderr))
    r = s.run('service', 'add', 'x', '--course', 'NOPE')
    t.check('an unknown course is refused', r.returncode == 1 and 'NOPE' in r.stderr,
            (r.returncode, r.stderr))
    t.equal('nothing was left of the refused add',
            s.sql("SELECT count(*) FROM service_token WHERE name = 'x'"), '0')
    for bad in (['add', 'y'], ['add', 'y', '--course', 'CS201', '--expires', 'soon'],
                ['revoke'], ['list', 'extra']):
        t.equal(f'usage error: service {" ".join(bad)}', s.run('service', *bad).returncode, 2)
    t.equal('revoke of an unknown token fails', s.run('service', 'revoke', 'nobody').returncode, 1)
    return lms


def test_auth(t, s, api, lms):
    cs = service_token(t, s, 'canvas-cs', 'CS201')
    old = service_token(t, s, 'expiring', 'MATH101', expires='30')
    gone = service_token(t, s, 'gone', 'MATH101')
    t.equal('a token works', api.call('GET', '/api/v1/courses', old)[0], 200)
    s.sql("UPDATE service_token SET expires_at = now() - interval '1 second' "
          "WHERE name = 'expiring'")
    r = s.run('service', 'revoke', 'gone')
    t.check('service revoke', r.returncode == 0, r.stderr)
    r = s.run('teacher', 'add', '--name', 'Ada', '--course', 'MATH101')
    teacher = token_in(r.stdout)
    st, cookie, _ = signin(s.base, teacher)
    t.check('a teacher signs in', st == 200 and cookie, st)
    cases = [
        ('missing header', {}),
        ('a session cookie without a bearer', {'Cookie': f'sm_session={cookie}'}),
        ('Basic instead of Bearer', {'Authorization': 'Basic ' + lms}),
        ('malformed token', {'Authorization': 'Bearer not-a-token'}),
        ('unknown token', {'Authorization': 'Bearer sms_' + 'ab' * 32}),
        ('revoked token', {'Authorization': 'Bearer ' + gone}),
        ('expired token', {'Authorization': 'Bearer ' + old}),
        ('a teacher token as bearer', {'Authorization': 'Bearer ' + teacher}),
    ]
    for name, h in cases:
        for method, path, body in (('GET', '/api/v1/courses', None),
                                   ('POST', '/api/v1/submissions', {'course': 'MATH101'})):
            st, hdrs, doc = api.call(method, path, headers=h, body=body)
            t.check(f'{name}: {method} 401 EAUTH with a Bearer challenge',
                    st == 401 and err_code(doc) == 'EAUTH'
                    and 'Bearer' in (hdrs.get('WWW-Authenticate') or ''), (st, doc))
    st, _, doc = api.call('GET', '/api/v1/courses', old)
    t.check('the expired token is told so', 'expired' in doc['error']['message'], doc)
    st, _, _ = request(s.base, 'GET', '/api/courses', cookie=cookie)
    t.equal('the teacher session still works on the teacher API', st, 200)
    req = urllib.request.Request(s.base + '/api/courses',
                                 headers={'Authorization': 'Bearer ' + lms})
    try:
        st = urllib.request.urlopen(req, timeout=30).status
    except urllib.error.HTTPError as e:
        st = e.code
    t.equal('a service token does not open the teacher API', st, 401)
    # scope: another course looks exactly like no course at all
    st, _, doc = api.call('GET', '/api/v1/courses', cs)
    t.equal('courses: only the token\'s', [c['code'] for c in doc['courses']], ['CS201'])
    a = api.call('GET', '/api/v1/courses/MATH101/assignments', cs)
    b = api.call('GET', '/api/v1/courses/NOSUCH/assignments', cs)
    t.check('out of scope course: 404 like an unknown one',
            a[0] == b[0] == 404 and a[2] == b[2], (a[0], a[2], b[2]))
    a = api.call('GET', '/api/v1/courses/HIDDEN/assignments/hw1', lms)
    t.equal('out of scope assignment: 404', a[0], 404)
    sub = {'course': 'MATH101', 'assignment': 'hw1', 'student_ref': 's1', 'content': 'x'}
    a = api.call('POST', '/api/v1/submissions', cs, sub, {'Idempotency-Key': 'scope-1'})
    sub2 = dict(sub, course='NOSUCH')
    b = api.call('POST', '/api/v1/submissions', cs, sub2, {'Idempotency-Key': 'scope-2'})
    t.check('submit out of scope: 404, worded as an unknown assignment',
            a[0] == b[0] == 404 and 'unknown assignment MATH101/hw1' in a[2]['error']['message'],
            (a, b))
    t.equal('nothing stored for out-of-scope submits',
            s.sql("SELECT count(*) FROM submission WHERE idempotency_key LIKE 'scope-%'"), '0')
    return cs


def submit(api, token, key, **fields):
    body = {'course': 'MATH101', 'assignment': 'hw1', 'student_ref': 's-1',
            'content': 'Proof. 1 + 1 = 2 by definition.'}
    body.update(fields)
    return api.call('POST', '/api/v1/submissions', token, body, {'Idempotency-Key': key})


def test_submit(t, s, api, lms):
    st, _, doc = api.call('POST', '/api/v1/submissions', lms,
                          {'course': 'MATH101', 'assignment': 'hw1', 'student_ref': 's',
                           'content': 'c'})
    t.check('no Idempotency-Key: 400', st == 400 and 'Idempotency-Key' in doc['error']['message'],
            (st, doc))
    st, _, doc = submit(api, lms, 'k-1')
    t.check('submit: 201 with an id', st == 201 and doc['submission_id'] > 0
            and doc['duplicate'] is False, (st, doc))
    sid = doc['submission_id']
    t.equal('committed before the answer (another connection sees it)',
            s.sql(f"SELECT student_ref || '/' || idempotency_key || '/' || client_id "
                  f"FROM submission WHERE id = {sid}"), 's-1/k-1/service:1')
    t.equal('a queued job', s.sql(f"SELECT state FROM job WHERE submission_id = {sid}"), 'queued')
    st, _, doc = submit(api, lms, 'k-1')
    t.check('same key, same request: 200, same submission',
            st == 200 and doc == {'submission_id': sid, 'duplicate': True}, (st, doc))
    for what, change in (('content', {'content': 'another proof'}),
                         ('student', {'student_ref': 's-2'}),
                         ('assignment', {'course': 'CS201', 'assignment': 'p1'}),
                         ('language', {'language': 'python'})):
        st, _, doc = submit(api, lms, 'k-1', **change)
        t.check(f'same key, different {what}: 409 ESTATE',
                st == 409 and err_code(doc) == 'ESTATE'
                and 'different' in doc['error']['message'], (st, doc))
    t.equal('still one submission for the key',
            s.sql("SELECT count(*) FROM submission WHERE idempotency_key = 'k-1'"), '1')
    st, _, doc = submit(api, lms, 'k-2', idempotency_key='other')
    t.check('body key differing from the header: 400', st == 400, (st, doc))
    st, _, doc = submit(api, lms, 'k-2b', idempotency_key='k-2b')
    t.equal('body key equal to the header: 201', st, 201)
    # the SUBMIT checks
    for name, fields, code in (
            ('unknown field', {'colour': 'red'}, 'EINVAL'),
            ('empty content', {'content': ''}, 'EINVAL'),
            ('bad priority', {'priority': 'urgent'}, 'EINVAL'),
            ('kind mismatch', {'kind': 'code'}, 'EINVAL'),
            ('bad course code', {'course': 'MATH 101'}, 'EINVAL'),
            ('student_ref over 200 bytes', {'student_ref': 'x' * 201}, 'EINVAL'),
            ('code without a language', {'assignment': 'code1'}, 'EINVAL'),
            ('unknown assignment', {'assignment': 'nope'}, 'ENOTFOUND')):
        st, _, doc = submit(api, lms, 'bad-' + name.replace(' ', '-'), **fields)
        t.check(f'submit refused: {name} ({code})', err_code(doc) == code
                and st == (404 if code == 'ENOTFOUND' else 400), (st, doc))
    for name, raw in (('not JSON', b'{"course": '), ('duplicate keys', b'{"a": 1, "a": 2}'),
                      ('an array', b'[]'), ('too deep', b'{"a":' * 20 + b'1' + b'}' * 20)):
        st, _, doc = api.call('POST', '/api/v1/submissions', lms, raw=raw,
                              headers={'Idempotency-Key': 'raw'})
        t.check(f'body refused: {name} (EFORMAT)', st == 400 and err_code(doc) == 'EFORMAT',
                (st, doc))
    st, _, doc = api.call('POST', '/api/v1/submissions', lms, raw=b'{"content": "\xff"}',
                          headers={'Idempotency-Key': 'raw'})
    t.check('body refused: not UTF-8 (EINVAL)', st == 400 and err_code(doc) == 'EINVAL', (st, doc))
    st, _, doc = api.call('POST', '/api/v1/submissions', lms, raw=b'{}',
                          headers={'Idempotency-Key': 'raw', 'Content-Type': 'text/plain'})
    t.equal('not application/json: 415', st, 415)
    t.equal('nothing stored by refused submits',
            s.sql("SELECT count(*) FROM submission WHERE idempotency_key LIKE 'bad-%' "
                  "OR idempotency_key = 'raw'"), '0')
    # size: the SUBMIT limit (broker.max_body_bytes)
    st, _, doc = submit(api, lms, 'big', content='y' * (MAX_BODY + 10))
    t.check('a body over broker.max_body_bytes: 413 ELIMIT',
            st == 413 and err_code(doc) == 'ELIMIT', (st, doc))
    st, _, doc = submit(api, lms, 'fits', content='y' * (MAX_BODY - 200))
    t.equal('a body just under the limit: 201', st, 201)
    return sid


def wait_state(api, token, sid, states):
    deadline = time.time() + 90
    while True:
        st, _, doc = api.call('GET', f'/api/v1/submissions/{sid}', token)
        if st == 200 and doc['state'] in states or time.time() > deadline:
            return st, doc
        time.sleep(0.2)


def list_all(api, token, path):
    items, cursor = [], None
    for _ in range(100):
        st, _, page = api.call('GET', path + (f'&cursor={cursor}' if cursor else ''), token)
        if st != 200:
            return st, items, cursor
        items += page['items']
        cursor = page['next_cursor']
        if not page['more']:
            return st, items, cursor
    return 0, items, cursor


def test_reads_before(t, api, lms, sid):
    st, _, doc = api.call('GET', f'/api/v1/submissions/{sid}', lms)
    t.check('status: queued, no grading, no final',
            st == 200 and doc['state'] == 'queued' and doc['grading'] is None
            and doc['final'] is None and doc['course'] == 'MATH101', (st, doc))
    st, _, doc = api.call('GET', f'/api/v1/submissions/{sid}/final', lms)
    t.check('final: null before grading', st == 200 and doc == {'submission_id': sid,
                                                              'final': None}, (st, doc))
    st, _, doc = api.call('GET', f'/api/v1/submissions/{sid}/result', lms)
    t.check('result before grading: 409 ESTATE', st == 409 and err_code(doc) == 'ESTATE', (st, doc))
    for bad in ('0', 'x', '99999999'):
        t.equal(f'status of submission {bad}: 404',
                api.call('GET', f'/api/v1/submissions/{bad}', lms)[0], 404)
    t.equal('result?reasoning=maybe: 400',
            api.call('GET', f'/api/v1/submissions/{sid}/result?reasoning=maybe', lms)[0], 400)
    st, _, doc = api.call('GET', '/api/v1/courses', lms)
    t.equal('courses', doc, {'courses': [{'code': 'CS201', 'title': 'Programming'},
                                        {'code': 'MATH101', 'title': 'Algebra'}]})
    st, _, doc = api.call('GET', '/api/v1/courses/MATH101/assignments', lms)
    t.equal('assignments', [a['code'] for a in doc['assignments']], ['code1', 'hw1'])
    st, _, doc = api.call('GET', '/api/v1/courses/MATH101/assignments/code1', lms)
    t.check('assignment: public fields, no answer key or solution',
            st == 200 and doc['kind'] == 'code' and 'SECRET' not in json.dumps(doc), (st, doc))
    t.equal('unknown assignment: 404',
            api.call('GET', '/api/v1/courses/MATH101/assignments/zzz', lms)[0], 404)
    base = '/api/v1/courses/MATH101/assignments/hw1/submissions?limit=1'
    for q in ('limit=0', 'limit=1001', 'limit=x', 'cursor=garbage', 'updated_since=yesterday'):
        st, _, doc = api.call('GET', base.split('?')[0] + '?' + q, lms)
        t.check(f'list ?{q}: 400', st == 400 and err_code(doc) == 'EINVAL', (st, doc))
    t.equal('DELETE is not allowed: 405',
            api.call('DELETE', f'/api/v1/submissions/{sid}', lms, check=False)[0], 405)
    t.equal('an unknown path: 404', api.call('GET', '/api/v1/nothing', lms, check=False)[0], 404)


def test_graded(t, s, api, lms, sid, args):
    wlog = open(os.path.join(args.out, 'http-api-worker.log'), 'w')
    worker = subprocess.Popen([args.worker, '--endpoint', f'ipc://{s.dir}/worker',
                               '--name', 'w1', '--slots', '4'], stdout=wlog, stderr=wlog)
    try:
        st, doc = wait_state(api, lms, sid, ('done', 'dead'))
        t.check('a worker grades the submission sent over HTTP',
                st == 200 and doc['state'] == 'done' and doc['grading'] is not None
                and doc['final']['state'] == 'model_graded', (st, doc))
        st, _, doc = api.call('GET', f'/api/v1/submissions/{sid}/result', lms)
        t.check('result: the grading with the final block',
                st == 200 and doc['submission_id'] == sid and 'reasoning' not in doc
                and doc['final']['state'] == 'model_graded', (st, doc))
        st, _, doc = api.call('GET', f'/api/v1/submissions/{sid}/result?reasoning=true', lms)
        t.check('result?reasoning=true: 200 with the chains',
                st == 200 and isinstance(doc.get('reasoning'), list), (st, doc))
        st, _, fin = api.call('GET', f'/api/v1/submissions/{sid}/final', lms)
        t.check('final: model_graded', st == 200 and fin['final']['state'] == 'model_graded',
                (st, fin))
        path = '/api/v1/courses/MATH101/assignments/hw1/submissions?limit=1'
        deadline = time.time() + 60
        while True:
            st, items, cursor = list_all(api, lms, path)
            mine = [i for i in items if i['submission_id'] == sid]
            if (mine and mine[-1]['state'] == 'done') or time.time() > deadline:
                break
            time.sleep(0.2)
        t.check('list pages through every submission, ours graded',
                st == 200 and mine and mine[-1]['final']['state'] == 'model_graded'
                and len({i['submission_id'] for i in items}) >= 3, (st, items))
        # a teacher approves: the final grade changes and the list shows it again
        st, cookie, sess = signin(s.base, s.teacher)
        gid = fin['final']['grading_id']
        req = urllib.request.Request(
            s.base + f'/api/submissions/{sid}/review', method='POST',
            data=json.dumps({'action': 'adjust', 'score': 7.5, 'comment': 'ok'}).encode(),
            headers={'Content-Type': 'application/json', 'Cookie': f'sm_session={cookie}',
                     'X-CSRF-Token': sess['csrf']})
        try:
            rst = urllib.request.urlopen(req, timeout=30).status
        except urllib.error.HTTPError as e:
            rst = e.code
        t.equal('the teacher adjusts the grade', rst, 200)
        st, _, fin = api.call('GET', f'/api/v1/submissions/{sid}/final', lms)
        t.check('final: adjusted, by the teacher',
                st == 200 and fin['final']['state'] == 'adjusted'
                and fin['final']['score'] == 7.5 and fin['final']['reviewed_by'] == 'Ada'
                and fin['final']['grading_id'] == gid, (st, fin))
        deadline = time.time() + 60
        while True:
            st, _, page = api.call('GET', '/api/v1/courses/MATH101/assignments/hw1/submissions'
                                   f'?cursor={cursor}', lms)
            again = [i for i in page.get('items', []) if i['submission_id'] == sid]
            if again or st != 200 or time.time() > deadline:
                break
            time.sleep(0.2)
        t.check('the list from the last cursor shows the change',
                again and again[0]['final']['state'] == 'adjusted', (st, page))
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        wlog.close()


def teacher_post(s, path, body):
    """A POST of the review page as the teacher Ada (session cookie and CSRF token)."""
    st, cookie, sess = signin(s.base, s.teacher)
    req = urllib.request.Request(
        s.base + path, method='POST', data=json.dumps(body).encode(),
        headers={'Content-Type': 'application/json', 'Cookie': f'sm_session={cookie}',
                 'X-CSRF-Token': sess['csrf']})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def student_page(s, url):
    """What the student page's API answers for a link: (status, document)."""
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get('t', [''])[0]
    st, _, doc = request(s.base, 'GET', '/api/student/feedback?t='
                         + urllib.parse.quote(token, safe=''))
    return st, doc


def days_from_now(stamp):
    """How many days from now an "YYYY-MM-DDTHH:MM:SSZ" time is."""
    when = datetime.datetime.strptime(stamp, '%Y-%m-%dT%H:%M:%SZ')
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return (when - now).total_seconds() / 86400


def test_feedback_link(t, s, api, lms, cs, sid):
    """POST /api/v1/courses/{course}/feedback-links: a student's link, scoped to the token."""
    path = '/api/v1/courses/MATH101/feedback-links'
    st, _, doc = api.call('POST', path, lms, {'student_ref': 's-1', 'days': 7})
    t.check('feedback link: 200 with the URL of the student page',
            st == 200 and doc['url'].startswith(s.base + '/student?t=')
            and doc['course'] == 'MATH101' and doc['student_ref'] == 's-1', (st, doc))
    t.check('feedback link: expires in the days asked for',
            st == 200 and 6.9 < days_from_now(doc['expires_at']) <= 7.01, doc)
    url = doc['url'] if st == 200 else s.base + '/student?t=x'
    pst, page = student_page(s, url)
    t.check('before the release the link opens an empty page',
            pst == 200 and page['student_ref'] == 's-1' and page['feedback'] == [], (pst, page))
    aid = s.sql("SELECT assignment_id FROM submission WHERE id = " + str(sid))
    t.equal('the teacher releases the graded submission',
            teacher_post(s, f'/api/assignments/{aid}/release', {'submissions': [sid]}), 200)
    pst, page = student_page(s, url)
    items = page.get('feedback', []) if pst == 200 else []
    t.check("the link opens that student's released feedback",
            pst == 200 and page['course']['code'] == 'MATH101' and len(items) == 1
            and items[0]['score'] == 7.5 and items[0]['comment'] == 'ok'
            and items[0]['assignment']['code'] == 'hw1', (pst, page))
    st, _, doc = api.call('POST', path, lms, {'student_ref': 's-2'})
    t.check('default lifetime: 30 days',
            st == 200 and 29.9 < days_from_now(doc['expires_at']) <= 30.01, (st, doc))
    pst, page = student_page(s, doc['url'] if st == 200 else url)
    t.check("another student's link shows nothing of s-1",
            pst == 200 and page['student_ref'] == 's-2' and page['feedback'] == [], (pst, page))
    st, _, doc = api.call('POST', path, lms, {'student_ref': 'dept/42?x=1#y', 'days': 1})
    pst, page = student_page(s, doc['url'] if st == 200 else url)
    t.check('a student_ref with / ? # works', st == 200 and pst == 200
            and page['student_ref'] == 'dept/42?x=1#y', (st, doc, pst, page))
    a = api.call('POST', path, cs, {'student_ref': 's-1'})
    b = api.call('POST', '/api/v1/courses/NOSUCH/feedback-links', cs, {'student_ref': 's-1'})
    t.check('feedback link outside the token\'s courses: 404 like an unknown course',
            a[0] == b[0] == 404 and a[2] == b[2], (a, b))
    for name, body in (('no student_ref', {'days': 3}), ('empty student_ref', {'student_ref': ''}),
                       ('student_ref over 200 bytes', {'student_ref': 'x' * 201}),
                       ('a control character', {'student_ref': 'a\nb'}),
                       ('days 0', {'student_ref': 's-1', 'days': 0}),
                       ('days 401', {'student_ref': 's-1', 'days': 401}),
                       ('days not a number', {'student_ref': 's-1', 'days': '7'}),
                       ('an unknown field', {'student_ref': 's-1', 'course': 'CS201'})):
        st, _, doc = api.call('POST', path, lms, body)
        t.check(f'feedback link refused: {name} (400 EINVAL)',
                st == 400 and err_code(doc) == 'EINVAL', (st, doc))
    st, _, doc = api.call('POST', path, lms, raw=b'{"student_ref": ')
    t.check('feedback link refused: not JSON (400 EFORMAT)',
            st == 400 and err_code(doc) == 'EFORMAT', (st, doc))
    t.equal('feedback link with GET: 405', api.call('GET', path, lms, check=False)[0], 405)
    st, _, doc = api.call('POST', path, raw=b'{"student_ref": "s-1"}',
                          headers={'Content-Type': 'application/json'})
    t.equal('feedback link without a token: 401', st, 401)


def test_last_use_and_list(t, s):
    r = s.run('service', 'list', '--json')
    rows = {x['name']: x for x in json.loads(r.stdout)} if r.returncode == 0 else {}
    t.check('list --json: states', rows.get('moodle', {}).get('state') == 'active'
            and rows.get('gone', {}).get('state') == 'revoked'
            and rows.get('expiring', {}).get('state') == 'expired', rows)
    t.check('list --json: last use recorded, courses',
            rows.get('moodle', {}).get('last_used_at')
            and rows['moodle']['courses'] == ['CS201', 'MATH101'], rows.get('moodle'))
    t.check('list never shows tokens or hashes', 'sms_' not in r.stdout
            and 'token_hash' not in r.stdout, r.stdout[:200])
    r = s.run('service', 'list')
    t.check('list as a table', r.returncode == 0 and r.stdout.startswith('name\tcourses')
            and 'moodle\tCS201,MATH101\tactive' in r.stdout, r.stdout)


def test_rate_limit(t, api, lms):
    statuses = []
    for i in range(40):
        st, hdrs, doc = api.call('GET', '/api/v1/courses',
                                 headers={'Authorization': f'Bearer sms_{i:064x}'})
        statuses.append(st)
        if st == 429:
            break
    t.check('failed tokens from one address end in 429 with Retry-After',
            statuses[-1] == 429 and int(hdrs.get('Retry-After', '0')) > 0, statuses)
    st, _, doc = api.call('GET', '/api/v1/courses', lms)
    t.check('then even a valid token waits (no guessing while limited)',
            st == 429 and err_code(doc) == 'ELIMIT', (st, doc))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--stepmarkd', required=True)
    ap.add_argument('--cli', required=True)
    ap.add_argument('--worker', required=True)
    ap.add_argument('--spec', required=True)
    ap.add_argument('--out', required=True)
    args = ap.parse_args()
    t = Checks()
    spec = Spec(args.spec)
    t.check('docs/openapi.yaml is a valid OpenAPI 3.1 document', True)
    s = Stack(args)
    try:
        setup(s)
        api = Api(t, s.base, spec)
        lms = test_cli(t, s)
        cs = test_auth(t, s, api, lms)
        r = s.run('teacher', 'rotate', 'Ada')
        s.teacher = token_in(r.stdout)
        sid = test_submit(t, s, api, lms)
        test_reads_before(t, api, lms, sid)
        test_graded(t, s, api, lms, sid, args)
        test_feedback_link(t, s, api, lms, cs, sid)
        test_last_use_and_list(t, s)
        missing = {(m.upper(), p) for p, ops in spec.doc['paths'].items() for m in ops
                   if m in ('get', 'post')} - spec.seen
        t.check('every documented operation was exercised', not missing, missing)
        test_rate_limit(t, api, lms)
    finally:
        s.close()
    print(f'{t.passed} passed, {t.failed} failed')
    return 1 if t.failed else 0


if __name__ == '__main__':
    sys.exit(main())
