#!/usr/bin/env python3
"""test_review: end-to-end tests of the teacher review side against real PostgreSQL.

  test_review.py api|browser --server BIN --cli BIN --seed seed.sql --out DIR

Each run creates its own database (review_test_<pid>_<mode>) in the cluster named by
$STEPMARK_DATABASE_URL, applies the migrations with `stepmark migrate`, loads seed.sql, creates
two teachers with `stepmark teacher add`, and starts stepmark-http-test (the HTTP side alone).
"api" drives the JSON API with urllib; "browser" drives the pages in headless Chromium with
selenium. Prints one line per check and a summary "N passed, N failed"; exits 1 on failure.
"""
import argparse
import csv
import io
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


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, cond, detail=''):
        if cond:
            self.passed += 1
            print(f'ok   {name}')
        else:
            self.failed += 1
            print(f'FAIL {name} {detail}')
        return cond

    def equal(self, name, got, want):
        return self.check(name, got == want, f'got {got!r}, want {want!r}')


def psql(url, sql):
    r = subprocess.run(['psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', url, '-c', sql],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f'psql failed: {r.stderr}')
    return r.stdout.strip()


class Env:
    """A fresh database with the seed data, two teachers and a running server."""

    def __init__(self, args, mode, login_limit, extra=()):
        self.base_url = os.environ['STEPMARK_DATABASE_URL']
        self.db = f'review_test_{os.getpid()}_{mode}'
        m = re.match(r'^(postgres(?:ql)?://[^/?]*)(/[^?]*)?(\?.*)?$', self.base_url)
        if m:  # URI form: replace the path
            self.url = m.group(1) + '/' + self.db + (m.group(3) or '')
        elif re.search(r'(^|\s)dbname=\S+', self.base_url):  # keyword form
            self.url = re.sub(r'(^|\s)dbname=\S+', r'\1dbname=' + self.db, self.base_url)
        else:
            self.url = self.base_url + ' dbname=' + self.db
        psql(self.base_url, f'DROP DATABASE IF EXISTS {self.db}')
        psql(self.base_url, f'CREATE DATABASE {self.db}')
        env = dict(os.environ, STEPMARK_DATABASE_URL=self.url)
        r = subprocess.run([args.cli, 'migrate'], env=env, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError('stepmark migrate failed: ' + r.stderr + r.stdout)
        r = subprocess.run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', self.url, '-f', args.seed],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError('seed failed: ' + r.stderr)
        self.tokens = {}
        self.cli, self.env = args.cli, env
        for name, courses in (('Alice', ['MATH101', 'CS201']), ('Bob', ['HIST9'])):
            cmd = [args.cli, 'teacher', 'add', '--name', name]
            for c in courses:
                cmd += ['--course', c]
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise RuntimeError('stepmark teacher add failed: ' + r.stderr + r.stdout)
            out = r.stdout
            m = re.search(r'^([0-9a-f]{64})$', out, re.M)
            if not m:
                raise RuntimeError('no token in: ' + out)
            self.tokens[name] = m.group(1)
        self.log_path = os.path.join(args.out, f'server-{mode}.log')
        self.log = open(self.log_path, 'w')
        cmd = [args.server, '--database', self.url, '--demo-metrics', '--login-limit',
               str(login_limit)]
        if mode == 'api':  # the API run serves the files from disk, the browser run built-in
            cmd += ['--static', args.web]
        cmd += list(extra)
        self.proc = subprocess.Popen(cmd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r'listening (\d+)', line)
        if not m:
            raise RuntimeError('server did not start: ' + line)
        self.base = f'http://127.0.0.1:{m.group(1)}'

    def close(self):
        """Stops the server (closing its stdin) and drops the database; returns its exit code."""
        rc = None
        try:
            self.proc.stdin.close()
            rc = self.proc.wait(timeout=20)
        except Exception:
            self.proc.kill()
        self.log.close()
        try:
            psql(self.base_url, f'DROP DATABASE IF EXISTS {self.db} WITH (FORCE)')
        except Exception as e:
            print('warning: cannot drop test database:', e)
        return rc

    def sql(self, q):
        return psql(self.url, q)


class Client:
    """A tiny HTTP client keeping the session cookie and CSRF token."""

    def __init__(self, base):
        self.base = base
        self.cookie = None
        self.csrf = None

    def request(self, method, path, body=None, headers=None, raw=None, csrf=True):
        h = dict(headers or {})
        data = None
        if body is not None or raw is not None:
            data = raw if raw is not None else json.dumps(body).encode()
            h.setdefault('Content-Type', 'application/json')
        if csrf and self.csrf and method == 'POST':
            h.setdefault('X-CSRF-Token', self.csrf)
        if self.cookie:
            h['Cookie'] = self.cookie
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def json(self, method, path, body=None, **kw):
        status, headers, data = self.request(method, path, body, **kw)
        try:
            doc = json.loads(data) if data else None
        except ValueError:
            doc = None
        return status, doc

    def signin(self, token, headers=None):
        status, headers, data = self.request('POST', '/api/signin', {'token': token},
                                             headers=headers)
        if status == 200:
            self.cookie = headers['Set-Cookie'].split(';')[0]
            self.csrf = json.loads(data)['csrf']
        return status, headers


def api_tests(t, env, web):
    base = env.base
    anon = Client(base)
    st, _ = anon.json('GET', '/api/courses')
    t.equal('courses need a session', st, 401)
    st, h, body = anon.request('GET', '/')
    t.equal('index served', st, 200)
    t.check('index is the app', b'app.js' in body)
    t.check('CSP header', "default-src 'self'" in h.get('Content-Security-Policy', ''), h)
    t.equal('nosniff header', h.get('X-Content-Type-Options'), 'nosniff')
    st, h, body = anon.request('GET', '/app.js')
    t.check('app.js served as javascript', st == 200 and 'javascript' in h.get('Content-Type', ''))
    t.check('static files from http.static_dir', body == open(os.path.join(web, 'app.js'), 'rb').read())
    st, _, _ = anon.request('GET', '/..%2F..%2Fetc%2Fpasswd')
    t.equal('path traversal refused', st, 404)
    st, _, _ = anon.request('GET', '/.hidden')
    t.equal('hidden file refused', st, 404)

    # sign-in
    bad = Client(base)
    st, _ = bad.signin('0' * 64)
    t.equal('unknown token refused', st, 401)
    st, _ = bad.signin('not hex')
    t.equal('malformed token refused', st, 401)
    alice = Client(base)
    st, h = alice.signin(env.tokens['Alice'])
    t.equal('alice signs in', st, 200)
    cookie = h.get('Set-Cookie', '')
    t.check('session cookie HttpOnly', 'HttpOnly' in cookie, cookie)
    t.check('session cookie SameSite=Strict', 'SameSite=Strict' in cookie, cookie)
    session_id = alice.cookie.split('=', 1)[1]
    t.check('only the session hash is stored',
            env.sql(f"SELECT count(*) FROM teacher_session WHERE id_hash = '{session_id}'") == '0'
            and env.sql('SELECT count(*) FROM teacher_session') == '1')
    t.check('only the token hash is stored',
            env.sql(f"SELECT count(*) FROM teacher WHERE token_hash = '{env.tokens['Alice']}'") == '0')
    st, doc = alice.json('GET', '/api/session')
    t.check('session reports teacher', st == 200 and doc['teacher']['name'] == 'Alice', doc)
    t.check('no Secure flag over plain HTTP', 'Secure' not in cookie, cookie)
    bob = Client(base)
    st, h = bob.signin(env.tokens['Bob'], headers={'X-Forwarded-Proto': 'https'})
    t.equal('bob signs in', st, 200)
    t.check('Secure cookie behind a TLS proxy', 'Secure' in h.get('Set-Cookie', ''), h)

    # scoping: a teacher sees only their courses
    st, doc = alice.json('GET', '/api/courses')
    t.equal('alice sees her courses', sorted(c['code'] for c in doc['courses']), ['CS201', 'MATH101'])
    st, doc = bob.json('GET', '/api/courses')
    t.equal('bob sees his course', [c['code'] for c in doc['courses']], ['HIST9'])
    for path in ('/api/courses/3', '/api/assignments/3', '/api/submissions/8',
                 '/api/assignments/3/export.csv?format=moodle', '/api/assignments/3/export.json'):
        st, _, _ = alice.request('GET', path)
        t.equal(f'alice gets 404 for {path}', st, 404)
    st, _ = alice.json('POST', '/api/submissions/8/review', {'action': 'approve'})
    t.equal('alice cannot review bob\'s submission', st, 404)
    st, _ = bob.json('GET', '/api/courses/3')
    t.equal('bob opens his course', st, 200)
    st, _ = bob.json('GET', '/api/submissions/2')
    t.equal('bob cannot open alice\'s submission', st, 404)
    st, _ = alice.json('GET', '/api/submissions/999999')
    t.equal('missing submission is 404', st, 404)
    st, _ = alice.json('GET', '/api/submissions/abc')
    t.equal('bad id is 404', st, 404)

    # course page: counts, flagged, histogram
    st, doc = alice.json('GET', '/api/courses/1')
    a = doc['assignments'][0]
    t.equal('assignment total', a['total'], 6)
    t.equal('counts by state', a['counts'],
            {'graded': 2, 'needs_review': 2, 'queued': 1, 'failed': 1})
    t.equal('flagged count', a['flagged'], 2)
    t.equal('histogram', a['histogram'], [0, 0, 0, 1, 1, 0, 1, 0, 0, 1])

    # filters and sorting
    def ids(q):
        st, doc = alice.json('GET', '/api/assignments/1' + q)
        return [s['id'] for s in doc['submissions']] if st == 200 else st
    t.equal('filter state', ids('?state=needs_review'), [2, 3])
    t.equal('filter flagged', ids('?flag=*'), [2, 3])
    t.equal('filter not flagged', sorted(ids('?flag=-')), [1, 4, 5, 6])
    t.equal('filter one flag', ids('?flag=answer_mismatch'), [2])
    t.equal('filter score range', ids('?min=5&max=9'), [3])
    t.equal('sort by score desc', ids('?sort=-score&min=0'), [1, 3, 2, 4])
    t.equal('filter student', ids('?q=s00'), [2, 3, 5, 6])
    t.equal('bad state rejected', ids('?state=bogus'), 400)
    t.equal('bad sort rejected', ids('?sort=id;drop'), 400)
    t.equal('bad number rejected', ids('?min=abc'), 400)
    st, doc = alice.json('GET', '/api/assignments/1')
    t.equal('flag names listed', doc['assignment']['flag_names'],
            ['answer_mismatch', 'injection_attempt', 'low_agreement'])

    # one submission
    st, doc = alice.json('GET', '/api/submissions/2?flag=*')
    t.equal('submission opens', st, 200)
    t.equal('submission flags', doc['grading']['flags'], ['answer_mismatch', 'low_agreement'])
    t.equal('critique steps', [s['verdict'] for s in doc['steps']], ['correct', 'incorrect'])
    t.equal('check results', [c['passed'] for c in doc['checks']], [False])
    t.check('reasoning chain', len(doc['chains']) == 1 and 'sqrt(1)' in doc['chains'][0]['text'])
    t.equal('navigation within filter', (doc['nav']['prev'], doc['nav']['next'], doc['nav']['count']),
            (None, 3, 2))
    t.check('timestamps are ISO 8601', re.match(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d.*[+-]\d\d:\d\d$',
                                                 doc['submission']['received_at']) is not None,
            doc['submission']['received_at'])

    # CSRF and request hygiene
    review = {'action': 'adjust', 'score': 7, 'comment': 'arithmetic slip only'}
    st, _ = alice.json('POST', '/api/submissions/2/review', review, csrf=False)
    t.equal('POST without CSRF token refused', st, 403)
    st, _ = alice.json('POST', '/api/submissions/2/review', review, headers={'X-CSRF-Token': 'f' * 64})
    t.equal('POST with wrong CSRF token refused', st, 403)
    st, _ = bob.json('POST', '/api/submissions/2/review', review,
                     headers={'X-CSRF-Token': alice.csrf})
    t.equal('another session\'s CSRF token refused', st, 403)
    st, _ = alice.json('POST', '/api/submissions/2/review', raw=json.dumps(review).encode(),
                       headers={'Content-Type': 'text/plain'})
    t.equal('non-JSON POST refused', st, 415)
    st, _ = alice.json('POST', '/api/submissions/2/review', review,
                       headers={'Origin': 'http://evil.example'})
    t.equal('cross-origin POST refused', st, 403)
    t.equal('nothing stored by refused POSTs', env.sql('SELECT count(*) FROM review'), '0')

    # adjust
    st, doc = alice.json('POST', '/api/submissions/2/review', review)
    t.equal('adjust accepted', st, 200)
    t.equal('review row stored',
            env.sql("SELECT t.name || '|' || r.action || '|' || r.old_score || '|' || r.new_score "
                    "|| '|' || r.comment FROM review r JOIN teacher t ON t.id = r.teacher_id"),
            'Alice|adjust|4.00|7.00|arithmetic slip only')
    t.equal('model grading untouched', env.sql('SELECT score FROM grading WHERE id = 2'), '4.00')
    st, doc = alice.json('GET', '/api/submissions/2')
    t.check('final score is the reviewed one', doc['submission']['final_score'] == 7
            and doc['submission']['state'] == 'reviewed', doc['submission'])
    t.equal('history shown', [(r['action'], r['teacher'], r['new_score']) for r in doc['reviews']],
            [('adjust', 'Alice', 7)])
    st, doc = alice.json('POST', '/api/submissions/2/review', {'action': 'adjust', 'score': 5})
    t.equal('adjust without comment refused', st, 400)
    st, doc = alice.json('POST', '/api/submissions/2/review',
                         {'action': 'adjust', 'score': 11, 'comment': 'x'})
    t.equal('score above maximum refused', st, 400)
    st, doc = alice.json('POST', '/api/submissions/2/review',
                         {'action': 'adjust', 'score': -1, 'comment': 'x'})
    t.equal('negative score refused', st, 400)
    st, doc = alice.json('POST', '/api/submissions/2/review', {'action': 'delete'})
    t.equal('unknown action refused', st, 400)
    st, doc = alice.json('POST', '/api/submissions/2/review', raw=b'{not json')
    t.equal('malformed body refused', st, 400)

    # approve
    st, doc = alice.json('POST', '/api/submissions/1/review', {'action': 'approve'})
    t.check('approve accepted', st == 200 and doc.get('new_score') == 9.5, doc)
    st, doc = alice.json('POST', '/api/submissions/5/review', {'action': 'approve'})
    t.equal('approve without grading refused', st, 409)

    # regrade
    old_seed = env.sql('SELECT seed FROM job WHERE submission_id = 4')
    st, doc = alice.json('POST', '/api/submissions/4/review',
                         {'action': 'regrade', 'comment': 'please look again'})
    t.equal('regrade accepted', st, 200)
    jobs = env.sql("SELECT state || '|' || priority || '|' || seed FROM job WHERE submission_id = 4 "
                   "ORDER BY id").split('\n')
    t.check('regrade queued a new job with a new seed',
            len(jobs) == 2 and jobs[1].startswith('queued|0|') and jobs[1].split('|')[2] != old_seed,
            jobs)
    t.equal('regrade stored in history',
            env.sql("SELECT action || '|' || comment FROM review WHERE action = 'regrade'"),
            'regrade|please look again')
    st, _ = alice.json('POST', '/api/submissions/4/review', {'action': 'regrade'})
    t.equal('second regrade while pending refused', st, 409)
    st, _ = alice.json('POST', '/api/submissions/4/review', {'action': 'approve'})
    t.equal('approve while regrade pending refused', st, 409)
    st, doc = alice.json('GET', '/api/submissions/4')
    t.equal('regraded submission is queued', doc['submission']['state'], 'queued')
    t.check('audit log records reviews',
            env.sql("SELECT count(*) FROM audit_log WHERE action LIKE 'review.%'") == '3')

    # exports
    st, h, body = alice.request('GET', '/api/assignments/1/export.csv?format=moodle')
    t.check('moodle export served as csv attachment',
            st == 200 and 'text/csv' in h.get('Content-Type', '')
            and 'attachment' in h.get('Content-Disposition', ''), h)
    rows = list(csv.reader(io.StringIO(body.decode())))
    t.equal('moodle header', rows[0], ['Email address', 'ID number', 'Quadratic equations', 'Status',
                                       'Feedback comments'])
    by_id = {r[1] or r[0]: r for r in rows[1:]}
    t.equal('moodle email row', by_id['ana@school.example'],
            ['ana@school.example', '', '9.50', 'reviewed', ''])
    t.equal('moodle reviewed score wins', by_id['S002'],
            ['', 'S002', '7.00', 'reviewed', 'arithmetic slip only'])
    t.equal('moodle model score otherwise', by_id['S003'], ['', 'S003', '6.00', 'needs_review', ''])
    t.equal('moodle ungraded has no grade', by_id['S006'], ['', 'S006', '', 'failed', ''])
    t.check('csv injection neutralised',
            "'=HYPERLINK" in body.decode() and not re.search(r'(^|,)=HYPERLINK', body.decode(), re.M))
    st, h, body = alice.request('GET', '/api/assignments/1/export.csv?format=canvas&canvas_id=77')
    rows = list(csv.reader(io.StringIO(body.decode())))
    t.equal('canvas header', rows[0], ['Student', 'ID', 'SIS User ID', 'SIS Login ID', 'Section',
                                       'Quadratic equations (77)'])
    t.equal('canvas points possible', rows[1], ['    Points Possible', '', '', '', '', '10.00'])
    t.check('canvas rows', ['S002', '', 'S002', '', '', '7.00'] in rows
            and ['ana@school.example', '', '', 'ana@school.example', '', '9.50'] in rows, rows)
    st, h, body = alice.request('GET', '/api/assignments/1/export.csv?format=plain')
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    s2 = [r for r in rows if r['student'] == 'S002'][0]
    t.equal('plain export row', (s2['score'], s2['model_score'], s2['status'], s2['flags']),
            ('7.00', '4.00', 'reviewed', 'answer_mismatch;low_agreement'))
    st, _, _ = alice.request('GET', '/api/assignments/1/export.csv?format=excel')
    t.equal('unknown export format refused', st, 400)
    st, doc = alice.json('GET', '/api/assignments/1/export.json')
    s2 = [s for s in doc['students'] if s['student_ref'] == 'S002'][0]
    t.check('json export has steps and reviews',
            len(s2['steps']) == 2 and s2['reviews'][0]['new_score'] == 7 and s2['final_score'] == 7, s2)

    # live progress and metrics
    st, doc = alice.json('GET', '/api/progress')
    t.check('progress queue depth', st == 200 and doc['queue']['queued'] == 2
            and doc['queue']['queued_interactive'] == 1, doc)
    quad = [a for a in doc['assignments'] if a['code'] == 'quad'][0]
    t.equal('progress per assignment', (quad['total'], quad['done'], quad['pending'], quad['failed']),
            (6, 3, 2, 1))
    t.check('progress has tokens/s and eta', doc['tokens_per_second'] >= 0 and 'eta_seconds' in doc)
    st, h, body = anon.request('GET', '/metrics')
    text = body.decode()
    t.check('metrics served', st == 200 and 'text/plain' in h.get('Content-Type', ''))
    for line in ('# TYPE stepmark_submissions_accepted_total counter',
                 'stepmark_submissions_accepted_total 3', 'stepmark_gradings_done_total 2',
                 'stepmark_gradings_failed_total 1', 'stepmark_workers_connected 1',
                 'stepmark_tokens_generated_total 1234', '# TYPE stepmark_ack_latency_seconds histogram',
                 'stepmark_ack_latency_seconds_bucket{le="0.001"} 1',
                 'stepmark_ack_latency_seconds_bucket{le="0.005"} 2',
                 'stepmark_ack_latency_seconds_bucket{le="+Inf"} 3',
                 'stepmark_ack_latency_seconds_count 3',
                 '# TYPE stepmark_queue_depth gauge',
                 'stepmark_queue_depth{state="queued",priority="interactive"} 1',
                 'stepmark_queue_depth{state="queued",priority="batch"} 1',
                 'stepmark_queue_depth{state="dead",priority="batch"} 1'):
        t.check(f'metrics line {line}', line + '\n' in text)
    t.check('metrics tokens/s', re.search(r'^stepmark_tokens_per_second \d', text, re.M) is not None)

    if doc['tokens_per_second'] > 0:
        t.check('ETA from tokens/s when no recent gradings',
                doc['eta_seconds'] is not None and doc['eta_basis'] == 'tokens per second', doc)

    # many requests at once on the thread pool and connection pool
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as ex:
        codes = list(ex.map(lambda i: alice.request('GET', f'/api/submissions/{1 + i % 4}')[0],
                            range(64)))
    t.equal('64 concurrent requests answered', codes, [200] * 64)

    # the CLI refuses an unknown course and stores nothing
    before = env.sql('SELECT count(*) FROM teacher')
    r = subprocess.run([env.cli, 'teacher', 'add', '--name', 'Eve', '--course', 'MATH101',
                        '--course', 'NOPE'], env=env.env, capture_output=True, text=True, timeout=60)
    t.check('teacher add with unknown course fails', r.returncode == 1 and 'NOPE' in r.stderr
            and not re.search(r'[0-9a-f]{64}', r.stdout), (r.returncode, r.stderr))
    t.equal('no teacher stored on failure', env.sql('SELECT count(*) FROM teacher'), before)
    r = subprocess.run([env.cli, 'teacher', 'list'], env=env.env, capture_output=True, text=True,
                       timeout=60)
    t.check('teacher list shows courses, never tokens', 'Alice\tCS201,MATH101' in r.stdout
            and env.tokens['Alice'] not in r.stdout, r.stdout)

    # sign-out
    st, _ = alice.json('POST', '/api/signout', {})
    t.equal('sign out', st, 200)
    st, _ = alice.json('GET', '/api/courses')
    t.equal('session gone after sign-out', st, 401)

    # rate limit (the server runs with 5 sign-in attempts per minute; 4 used above)
    # 5 per minute, 4 used above: a burst runs into 429 within a few attempts (the bucket
    # refills by one attempt every 12 s, so a slow run may allow one or two more)
    codes = []
    while len(codes) < 8 and (not codes or codes[-1] != 429):
        codes.append(Client(base).signin('1' * 64)[0])
    t.check('sign-in attempts rate-limited', codes[-1] == 429 and len(codes) <= 4
            and set(codes[:-1]) <= {401}, codes)
    st, h = Client(base).signin(env.tokens['Bob'])
    t.check('rate limit applies to valid tokens too', st == 429
            and 1 <= int(h.get('Retry-After', '0')) <= 12, (st, h.get('Retry-After')))

    # secrets never logged
    env.log.flush()
    log = open(env.log_path).read()
    t.check('server log written', 'http listening' in log)
    t.check('tokens never logged', env.tokens['Alice'] not in log and env.tokens['Bob'] not in log)
    t.check('session ids never logged', session_id not in log)


def provisional_browser(t, env, d, find, wait, By):
    """A grading without the model's score but with a provisional one from the tests: the
    teacher approves it in one click, and it becomes the final score."""
    env.sql("INSERT INTO submission (id, assignment_id, student_ref, idempotency_key, content)"
            " VALUES (30, 2, 'S030', 'k30', 'print(1)');"
            "INSERT INTO job (id, submission_id, state, priority, attempts, seed, finished_at)"
            " VALUES (30, 30, 'done', 1, 1, 30, now());"
            "INSERT INTO grading (id, job_id, submission_id, status, score, max_score, summary,"
            " flags, model_name, model_hash, engine_version, prompt_template_version, seed,"
            " provisional_score, provisional_basis, provisional_detail) VALUES (30, 30, 30,"
            " 'needs_review', NULL, 5, 'unreadable critique',"
            " '{invalid_verdict,provisional_from_checks}', 'm', 'h', 'e', 'code-v1', 30, 2.5,"
            " 'tests', '1 of 2 test points earned (1 of 2 tests passed) x 5 = 2.5')")
    d.get(env.base + '/#/submission/30')
    btn = find('#approve-provisional-btn')
    t.check('provisional score offered', 'Approve provisional score 2.5' in btn.text, btn.text)
    t.check('how it was computed shown', '1 of 2 test points' in
            d.find_element(By.ID, 'provisional-row').text)
    t.equal('no model score: the dash', d.find_element(By.ID, 'final-score').text, '–')
    t.check('plain approve disabled without a model score',
            not d.find_element(By.ID, 'approve-btn').is_enabled())
    btn.click()
    wait.until(lambda _: 'Approved.' in d.find_element(By.ID, 'review-panel').text)
    t.equal('approved provisional score is final', d.find_element(By.ID, 'final-score').text, '2.5')
    t.equal('approval stored', env.sql(
        "SELECT action || '|' || new_score || '|' || comment FROM review WHERE grading_id = 30"),
        'approve|2.50|approved the provisional score from the checks')
    t.equal('final block: approved with the provisional score',
            env.sql("SELECT (sm_final(30)->>'state') || '|' || (sm_final(30)->>'score')"),
            'approved|2.50')
    t.equal('model score still absent',
            env.sql('SELECT score IS NULL FROM grading WHERE id = 30'), 't')


def chromium(width=1400, height=1000, downloads=None, timeout=15):
    """Headless Chromium from Debian's packages through chromedriver, as every browser test runs
    it: (driver, wait, find), where find(css) waits up to timeout seconds for the element.
    downloads: a folder that receives downloads without asking."""
    from selenium import webdriver
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = '/usr/bin/chromium'
    for a in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu',
              f'--window-size={width},{height}', '--no-first-run', '--disable-extensions'):
        opts.add_argument(a)
    if downloads:
        opts.add_experimental_option('prefs', {'download.default_directory': downloads,
                                               'download.prompt_for_download': False})
    d = webdriver.Chrome(options=opts,
                         service=webdriver.ChromeService(executable_path='/usr/bin/chromedriver'))
    if downloads:
        d.execute_cdp_cmd('Page.setDownloadBehavior',
                          {'behavior': 'allow', 'downloadPath': downloads})
    wait = WebDriverWait(d, timeout, ignored_exceptions=(NoSuchElementException,
                                                         StaleElementReferenceException))

    def find(sel):
        return wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, sel)))
    return d, wait, find


def browser_tests(t, env, out, web):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    downloads = os.path.join(out, 'downloads')
    os.makedirs(downloads, exist_ok=True)
    for f in os.listdir(downloads):
        os.remove(os.path.join(downloads, f))
    d, wait, find = chromium(downloads=downloads)

    def shot(name):
        path = os.path.join(out, name)
        d.save_screenshot(path)
        print(f'     screenshot {path}')

    try:
        st, _, body = Client(env.base).request('GET', '/app.js')
        t.check('built-in copy of app.js served', st == 200 and body == open(
            os.path.join(web, 'app.js'), 'rb').read())
        d.get(env.base + '/')
        token = find('#token')
        t.check('sign-in form shown', token.is_displayed())
        token.send_keys('0' * 64)
        d.find_element(By.ID, 'signin-btn').click()
        wait.until(lambda _: d.find_element(By.ID, 'signin-error').text != '')
        t.check('wrong token shows an error', 'invalid' in d.find_element(By.ID, 'signin-error').text)
        token = d.find_element(By.ID, 'token')
        token.clear()
        token.send_keys(env.tokens['Alice'])
        d.find_element(By.ID, 'signin-btn').click()
        find('#courses')
        codes = [e.text for e in d.find_elements(By.CSS_SELECTOR, 'a.course-link')]
        t.equal('courses listed after sign-in', sorted(codes), ['CS201', 'MATH101'])
        t.check('session cookie not readable by scripts',
                'sm_session' not in d.execute_script('return document.cookie'))

        d.find_element(By.LINK_TEXT, 'MATH101').click()
        card = find('.card.assignment')
        bars = card.find_elements(By.CSS_SELECTOR, 'svg.hist rect.bar')
        t.equal('histogram drawn as SVG', len(bars), 10)
        t.check('state counts shown', 'needs review 2' in card.text and 'flagged 2' in card.text,
                card.text)
        shot('review-course.png')

        card.find_element(By.CSS_SELECTOR, 'a.assignment-link').click()
        find('#submissions')
        Select(d.find_element(By.ID, 'f-flag')).select_by_value('*')
        wait.until(lambda _: 'flag=' in d.current_url)
        wait.until(lambda _: len(d.find_elements(By.CSS_SELECTOR, '#submissions tbody tr')) == 2)
        students = [e.text for e in d.find_elements(By.CSS_SELECTOR, '#submissions a.submission-link')]
        t.equal('flag filter shows flagged submissions', students, ['S002', 'S003'])
        shot('review-assignment.png')

        d.find_element(By.LINK_TEXT, 'S002').click()
        find('#critique .step')
        t.equal('student heading', d.find_element(By.ID, 'student').text, 'S002')
        steps = d.find_elements(By.CSS_SELECTOR, '#critique .step')
        t.equal('critique steps beside the work', len(steps), 2)
        lines = d.find_elements(By.CSS_SELECTOR, '#student-work .line')
        t.equal('student work has numbered lines', [l.find_element(By.CLASS_NAME, 'ln').text for l in lines],
                ['1', '2', '3'])
        t.check('math made readable', '±' in lines[0].text and '√' in lines[0].text, lines[0].text)
        t.check('flags shown', 'answer_mismatch' in d.find_element(By.ID, 'flags').text)
        t.equal('confidence shown', d.find_element(By.ID, 'confidence').text, '0.41')
        chain = d.find_element(By.CSS_SELECTOR, 'details.chain')
        t.check('reasoning chain folded', chain.get_attribute('open') is None)
        steps[1].click()
        hl = d.find_elements(By.CSS_SELECTOR, '#student-work .line.hl')
        t.check('clicking a step highlights the quoted line',
                len(hl) == 1 and hl[0].get_attribute('data-line') == '2')
        t.check('check results shown', 'failed' in d.find_element(By.ID, 'checks').text)
        ans = d.find_element(By.CSS_SELECTOR, '#checks tr.answer-detail').text
        t.check('answer check details shown',
                all(w in ans for w in ('extracted\n3.5', '"the result is" sentence',
                                       'Hence the result is 3.5 <b>bold</b>', '7/2 (key: 2, 3)',
                                       'a number against a set of 2', 'percent ratio, tolerance 0.000001')),
                ans)
        t.check('answer check details are text, not markup',
                not d.find_elements(By.CSS_SELECTOR, '#checks tr.answer-detail b'))

        score = d.find_element(By.ID, 'score-input')
        score.clear()
        score.send_keys('7.5')
        d.find_element(By.ID, 'comment-input').send_keys('Only an arithmetic slip: method is right.')
        d.find_element(By.ID, 'adjust-btn').click()
        wait.until(lambda _: 'Score adjusted.' in d.find_element(By.ID, 'review-panel').text)
        t.equal('adjusted score shown', d.find_element(By.ID, 'final-score').text, '7.5')
        hist = d.find_element(By.ID, 'history').text
        t.check('review history shows the adjustment',
                'Alice' in hist and 'adjust' in hist and 'Only an arithmetic slip' in hist, hist)
        t.equal('review stored in the database',
                env.sql("SELECT new_score || '|' || comment FROM review WHERE action = 'adjust'"),
                '7.50|Only an arithmetic slip: method is right.')
        shot('review-submission.png')

        d.find_element(By.ID, 'next-btn').click()
        wait.until(lambda _: d.find_element(By.ID, 'student').text == 'S003')
        find('#critique .step')
        work = d.find_element(By.ID, 'student-work').text
        t.check('<script> in a submission shows as text', '<script>window.__xss = 1;' in work, work)
        t.check('markup in the model output shows as text',
                '<b>Summary with markup</b>' in d.find_element(By.ID, 'summary').text
                and 'onerror' in d.find_element(By.ID, 'critique').text)
        t.equal('no script from a submission ran', d.execute_script('return window.__xss === undefined'), True)
        t.check('page title untouched', d.title == 'stepmark review', d.title)
        t.equal('no element injected', len(d.find_elements(By.CSS_SELECTOR, '#main script, #main img, #main b')), 0)
        shot('review-xss.png')

        d.find_element(By.ID, 'prev-btn').click()
        wait.until(lambda _: d.find_element(By.ID, 'student').text == 'S002')

        d.get(env.base + '/#/submission/7')
        credit = wait.until(lambda _: d.find_elements(By.ID, 'test-points'))
        t.equal('points from the tests beside the model score', credit[0].text,
                'Points from the tests 1 / 4')
        checks = d.find_element(By.ID, 'checks').text
        t.check('each test\'s points shown', '0 / 2 pts' in checks and '1 / 1 pts' in checks, checks)
        details = [r.text for r in d.find_elements(By.CSS_SELECTOR, '#checks tr.test-detail')]
        t.check('failed tests explained: call, expected, actual, exception',
                len(details) == 2 and all(w in details[0] for w in (
                    'kind\ncall', 'call\nfizz(15, sep="-")', 'expected\n"FizzBuzz"', 'actual\n"Fizz"'))
                and 'exception\nValueError: bad <b>x</b>' in details[1], details)
        t.check('test details are text, not markup',
                not d.find_elements(By.CSS_SELECTOR, '#checks tr.test-detail b'))
        shot('review-unittests.png')

        d.get(env.base + '/#/assignment/1')
        link = find('a.export-moodle')
        link.click()
        target = os.path.join(downloads, 'MATH101-quad-moodle.csv')
        deadline = time.time() + 15
        while time.time() < deadline and not os.path.exists(target):
            time.sleep(0.2)
        t.check('CSV downloaded', os.path.exists(target), os.listdir(downloads))
        if os.path.exists(target):
            rows = list(csv.reader(open(target, newline='')))
            t.equal('downloaded CSV header', rows[0],
                    ['Email address', 'ID number', 'Quadratic equations', 'Status', 'Feedback comments'])
            t.check('downloaded CSV has the adjusted score and comment',
                    ['', 'S002', '7.50', 'reviewed', 'Only an arithmetic slip: method is right.'] in rows, rows)

        d.get(env.base + '/#/course/3')
        el = find('#not-found')
        t.check('another teacher\'s course is not shown', 'Not found' in el.text
                and 'HIST9' not in d.find_element(By.ID, 'main').text)
        d.get(env.base + '/#/submission/8')
        find('#not-found')
        t.check('another teacher\'s submission is not shown',
                'Let a = 2m' not in d.find_element(By.ID, 'main').text)

        d.get(env.base + '/#/progress')
        summary = find('#progress-summary')
        t.check('progress page', 'tokens/s' in summary.text and 'ETA' in summary.text, summary.text)
        wait.until(lambda _: d.find_element(By.ID, 'progress-bar').text != '')
        t.check('live progress footer', 'waiting' in d.find_element(By.ID, 'progress-bar').text)

        provisional_browser(t, env, d, find, wait, By)

        d.find_element(By.ID, 'signout').click()
        find('#token')
        t.check('signed out', 'sm_session' not in str(d.get_cookies()))
    except Exception:
        traceback.print_exc()
        t.check('browser scenario completed without exception', False)
        try:
            shot('review-failure.png')
        except Exception:
            pass
    finally:
        logs = []
        try:
            logs = [l for l in d.get_log('browser') if l.get('level') == 'SEVERE']
        except Exception:
            pass
        d.quit()
    csp = [l['message'] for l in logs if 'Content Security Policy' in l['message']]
    t.equal('no CSP violations in the console', csp, [])


def main():
    p = argparse.ArgumentParser()
    p.add_argument('mode', choices=['api', 'browser'])
    p.add_argument('--server', required=True)
    p.add_argument('--cli', required=True)
    p.add_argument('--seed', required=True)
    p.add_argument('--web', required=True, help='daemon/web, served from disk in api mode')
    p.add_argument('--out', required=True)
    args = p.parse_args()
    t = Checks()
    env = None
    try:
        env = Env(args, args.mode, 5 if args.mode == 'api' else 20)
        if args.mode == 'api':
            api_tests(t, env, args.web)
        else:
            browser_tests(t, env, args.out, args.web)
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
