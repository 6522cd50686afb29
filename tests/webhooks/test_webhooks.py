#!/usr/bin/env python3
"""test_webhooks: webhook deliveries end to end against real receivers (issue 25).

  test_webhooks.py --stepmarkd BIN --cli BIN --out DIR [--outage S --defaults]

Creates its own database (webhooks_<pid>) in the cluster named by $STEPMARK_DATABASE_URL,
registers webhooks with `stepmark webhook add`, runs two stepmarkd on that database and makes
grade events by inserting gradings and reviews with psql (the outbox triggers of migration 006
write the events). The receivers are a small HTTP server written here from docs/webhooks.md,
independent of stepmark's code: it checks every Stepmark-Signature with Python's hmac, and can
answer 500, answer too slowly, or be down (port closed). Checked: signatures and headers; every
event arrives, in outbox order, per webhook and so per submission; retries after 500s and after a
timeout; a receiver that is down while the brokers restart gets every event afterwards; a late
committing transaction is not skipped; two brokers never deliver to one webhook at once; the
CLI's list, log and remove; the /metrics counters. Prints one line per check and
"N passed, N failed"; exits 1 on failure.

With --outage S it instead measures one thing and prints it: a receiver down for S seconds
while events keep coming gets every event afterwards (with --defaults: the default webhook
settings), and how long after it came back the last one arrived.
"""
import argparse
import hashlib
import hmac
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'review'))
from test_review import Checks, psql  # noqa: E402


def db_url(base, name):
    m = re.match(r'^(postgres(?:ql)?://[^/?]*)(/[^?]*)?(\?.*)?$', base)
    if m:
        return m.group(1) + '/' + name + (m.group(3) or '')
    if re.search(r'(^|\s)dbname=\S+', base):
        return re.sub(r'(^|\s)dbname=\S+', r'\1dbname=' + name, base)
    return base + ' dbname=' + name


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_for(cond, timeout=40, step=0.05):
    """Polls cond() until it is true or timeout seconds pass; returns its last value."""
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v or time.time() > deadline:
            return v
        time.sleep(step)


# ---- the receiver: written from docs/webhooks.md, shares nothing with stepmark ----

def verify(secret, header, body, tolerance=300):
    """Whether Stepmark-Signature `header` signs `body` (bytes) with `secret`."""
    parts = dict(p.split('=', 1) for p in header.split(',') if '=' in p)
    if 't' not in parts or 'v1' not in parts:
        return False
    if abs(time.time() - int(parts['t'])) > tolerance:
        return False
    mac = hmac.new(secret.encode(), parts['t'].encode() + b'.' + body, hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), parts['v1'])


class Receiver:
    """An HTTP server for several webhook paths. Per path: its secret, its behaviour (answer
    500 to the next `fail` requests, or sleep `delay` seconds on the next `slow` ones) and every
    request it got, in arrival order."""

    def __init__(self, port):
        self.port = port
        self.lock = threading.Lock()
        self.secrets, self.fail, self.slow, self.delay = {}, {}, {}, {}
        self.got = {}         # path -> [dict(delivery, event, attempt, body, sig_ok, answered)]
        self.inflight = {}    # path -> requests being handled now
        self.max_inflight = {}
        self.server = None
        self.conns = set()  # open connections (kept alive between requests)

    def add(self, path, secret):
        with self.lock:
            self.secrets[path] = secret
            self.got.setdefault(path, [])
            self.inflight.setdefault(path, 0)
            self.max_inflight.setdefault(path, 0)

    def handle(self, req):
        n = int(req.headers.get('Content-Length') or 0)
        body = req.rfile.read(n)
        path = req.path
        with self.lock:
            secret = self.secrets.get(path)
            status = 200
            delay = 0
            if self.fail.get(path, 0) > 0:
                self.fail[path] -= 1
                status = 500
            elif self.slow.get(path, 0) > 0:
                self.slow[path] -= 1
                delay = self.delay.get(path, 0)
            # Concurrency is counted for requests the sender still waits for (not slow ones).
            busy = 0 if delay else 1
            self.inflight[path] = self.inflight.get(path, 0) + busy
            self.max_inflight[path] = max(self.max_inflight.get(path, 0), self.inflight[path])
        try:
            time.sleep(delay or 0.01)  # a little work, so overlapping requests would show
            rec = {'delivery': req.headers.get('Stepmark-Delivery'),
                   'event': req.headers.get('Stepmark-Event'),
                   'attempt': req.headers.get('Stepmark-Attempt'),
                   'ctype': req.headers.get('Content-Type'),
                   'sig_ok': secret is not None and verify(
                       secret, req.headers.get('Stepmark-Signature', ''), body),
                   'body': json.loads(body), 'status': status, 'late': bool(delay)}
            if not rec['sig_ok']:
                status = 401
                rec['status'] = 401
            with self.lock:
                self.got.setdefault(path, []).append(rec)
            answer = b'ok' if status == 200 else b'receiver says no'
            req.send_response(status)
            req.send_header('Content-Type', 'text/plain')
            req.send_header('Content-Length', str(len(answer)))
            req.end_headers()
            try:
                req.wfile.write(answer)
            except OSError:
                pass  # stepmarkd gave up waiting (the slow case)
        finally:
            with self.lock:
                self.inflight[path] -= busy

    def start(self):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def setup(self):
                super().setup()
                with outer.lock:
                    outer.conns.add(self.connection)

            def finish(self):
                with outer.lock:
                    outer.conns.discard(self.connection)
                super().finish()

            def do_POST(self):
                outer.handle(self)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        """Down: the port is closed, open connections too."""
        self.server.shutdown()
        self.server.server_close()
        self.server = None
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def acked(self, path):
        """event_ids acknowledged (200), each once, in the order of their first 200."""
        seen, out = set(), []
        with self.lock:
            for r in self.got.get(path, []):
                eid = r['body'].get('event_id')
                if r['status'] == 200 and not r['late'] and eid not in seen:
                    seen.add(eid)
                    out.append(eid)
        return out

    def records(self, path):
        with self.lock:
            return list(self.got.get(path, []))


# ---- the stack under test ----

class Stack:
    def __init__(self, args, config_extra):
        self.args = args
        self.base_url = os.environ['STEPMARK_DATABASE_URL']
        self.db = f'webhooks_{os.getpid()}'
        self.url = db_url(self.base_url, self.db)
        psql(self.base_url, f'DROP DATABASE IF EXISTS {self.db}')
        psql(self.base_url, f'CREATE DATABASE {self.db}')
        self.env = dict(os.environ, STEPMARK_DATABASE_URL=self.url)
        for k in ('STEPMARK_CONFIG', 'STEPMARK_HTTP_PORT'):
            self.env.pop(k, None)
        self.dir = tempfile.mkdtemp(prefix='smwh-', dir='/tmp')
        self.config_extra = config_extra
        self.procs = {}
        self.ports = {}
        r = self.cli('migrate')
        if r.returncode != 0:
            raise RuntimeError('stepmark migrate failed: ' + r.stderr + r.stdout)
        self.sql("INSERT INTO course (id, code, title) VALUES (1, 'MATH101', 'Algebra'), "
                 "(2, 'CS201', 'Programming');"
                 "INSERT INTO assignment (id, course_id, code, title, kind, statement, max_score) "
                 "VALUES (1, 1, 'quad', 'Quadratics', 'math', 'Solve it.', 10), "
                 "(2, 2, 'fizz', 'FizzBuzz', 'math', 'Do it.', 5);"
                 "INSERT INTO teacher (id, name, token_hash) VALUES (1, 'Ada', 'x');"
                 "INSERT INTO submission (id, assignment_id, student_ref, idempotency_key, "
                 "content) "
                 "SELECT i, CASE WHEN i > 90 THEN 2 ELSE 1 END, 'S' || i, 'k' || i, 'answer' "
                 "FROM generate_series(1, 99) i")

    def cli(self, *argv):
        return subprocess.run([self.args.cli, *argv], env=self.env, capture_output=True,
                              text=True, timeout=60)

    def sql(self, q):
        return psql(self.url, q)

    def start(self, name):
        d = os.path.join(self.dir, name)
        os.makedirs(d, exist_ok=True)
        port = self.ports.setdefault(name, free_port())
        cfg = os.path.join(d, 'stepmark.yaml')
        with open(cfg, 'w') as f:
            f.write('broker:\n'
                    f'  client_endpoint: "ipc://{d}/client"\n'
                    f'  worker_endpoint: "ipc://{d}/worker"\n'
                    f'  event_endpoint: "ipc://{d}/events"\n'
                    f'http:\n  enabled: true\n  address: 127.0.0.1\n  port: {port}\n'
                    'logging:\n  level: info\n' + self.config_extra)
        log = open(os.path.join(self.args.out, f'webhooks-stepmarkd-{name}.log'), 'a')
        p = subprocess.Popen([self.args.stepmarkd, '--config', cfg], env=self.env,
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.procs[name] = (p, log)
        if not wait_for(lambda: self.metrics(name) is not None or p.poll() is not None, 60):
            raise RuntimeError(f'stepmarkd {name} did not answer on /metrics')
        if p.poll() is not None:
            raise RuntimeError(f'stepmarkd {name} exited with {p.returncode}')

    def metrics(self, name):
        try:
            with urllib.request.urlopen(f'http://127.0.0.1:{self.ports[name]}/metrics',
                                        timeout=5) as r:
                return r.read().decode()
        except OSError:
            return None

    def stop(self, name):
        p, log = self.procs.pop(name)
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        log.close()
        return rc

    def close(self):
        for name in list(self.procs):
            self.stop(name)
        try:
            psql(self.base_url, f'DROP DATABASE IF EXISTS {self.db} WITH (FORCE)')
        except Exception as e:
            print('warning: cannot drop test database:', e)

    # events: each statement commits on its own, so each is one transaction
    def grade(self, sub, score=7):
        self.sql(f"WITH j AS (INSERT INTO job (submission_id, state, finished_at) "
                 f"VALUES ({sub}, 'done', now()) RETURNING id) "
                 "INSERT INTO grading (job_id, submission_id, status, score, max_score, "
                 "model_name, model_hash, engine_version, prompt_template_version, seed) "
                 f"SELECT id, {sub}, 'graded', {score}, 10, 'm', 'h', 'e', 'v1', 1 FROM j")

    def review(self, sub, action, score='NULL'):
        self.sql("INSERT INTO review (grading_id, teacher_id, action, old_score, new_score, "
                 f"comment) SELECT g.id, 1, '{action}', g.score, {score}, 'Well done' "
                 f"FROM grading g WHERE g.submission_id = {sub} ORDER BY g.id DESC LIMIT 1")

    def outbox(self, course, after_id=0):
        """event ids of a course in the order webhooks must deliver them."""
        out = self.sql(f"SELECT id FROM event_outbox WHERE course_id = {course} "
                       f"AND id > {after_id} ORDER BY xid, id")
        return [int(x) for x in out.split()] if out else []

    def log(self, hook):
        r = self.cli('webhook', 'log', '--webhook', str(hook), '--limit', '10000', '--json')
        return json.loads(r.stdout) if r.returncode == 0 else []


def add_hook(t, s, rec, course, path, host='127.0.0.1'):
    r = s.cli('webhook', 'add', '--course', course, f'http://{host}:{rec.port}{path}')
    m = re.search(r'webhook (\d+) added.*\n(whsec_[0-9a-f]{64})$', r.stdout.strip(), re.S)
    t.check(f'webhook add {path} prints the id and a secret', r.returncode == 0 and m,
            (r.returncode, r.stdout, r.stderr))
    rec.add(path, m.group(2))
    return int(m.group(1))


def test_cli_refusals(t, s):
    for url, why in (('http://example.com/hook', 'loopback'),
                     ('http://10.0.0.1/hook', 'loopback'),
                     ('ftp://127.0.0.1/hook', 'https'),
                     ('https://user:pw@example.com/hook', 'password'),
                     ('not a url', 'URL'),
                     ('/relative', 'URL')):
        r = s.cli('webhook', 'add', '--course', 'MATH101', url)
        t.check(f'add refuses {url!r} clearly', r.returncode == 2 and why in r.stderr
                and 'whsec_' not in r.stdout, (r.returncode, r.stderr))
    r = s.cli('webhook', 'add', '--course', 'NOPE', 'https://lms.example/hook')
    t.check('add for an unknown course fails', r.returncode == 1 and 'no course' in r.stderr,
            (r.returncode, r.stderr))
    r = s.cli('webhook', 'add', '--course', 'CS201', 'http://[::1]:9/x')
    m = re.search(r'webhook (\d+) added', r.stdout)
    t.check('add accepts http://[::1]', r.returncode == 0 and m, (r.returncode, r.stderr))
    r = s.cli('webhook', 'add', '--course', 'CS201', 'https://lms.example/hook')
    m2 = re.search(r'webhook (\d+) added', r.stdout)
    t.check('add accepts https://', r.returncode == 0 and m2, (r.returncode, r.stderr))
    for mm in (m, m2):
        if mm:
            r = s.cli('webhook', 'remove', mm.group(1))
            t.check(f'remove {mm.group(1)}', r.returncode == 0 and 'removed' in r.stdout, r.stderr)
    r = s.cli('webhook', 'remove', '999999')
    t.check('remove of an unknown id fails', r.returncode == 1 and 'no webhook' in r.stderr,
            (r.returncode, r.stderr))
    r = s.cli('webhook', 'remove', 'abc')
    t.equal('remove with a bad id is a usage error', r.returncode, 2)


def check_stream(t, s, rec, path, course, what, after_id=0):
    """Every event of the course arrived, acknowledged once each, in outbox order."""
    want = s.outbox(course, after_id)
    ok = wait_for(lambda: rec.acked(path) == want or len(rec.acked(path)) > len(want))
    t.check(f'{what}: {path} got all {len(want)} events in outbox order', ok
            and rec.acked(path) == want, (rec.acked(path), want))
    recs = rec.records(path)
    t.check(f'{what}: every request to {path} was signed correctly',
            recs and all(r['sig_ok'] for r in recs), [r for r in recs if not r['sig_ok']][:2])
    return want


def per_submission_ok(rec, path):
    """For every submission: graded comes before reviewed/released of that grading."""
    by_sub = {}
    for eid in rec.acked(path):
        r = next(x for x in rec.records(path) if x['body'].get('event_id') == eid)
        by_sub.setdefault(r['body']['submission_id'], []).append(r['body']['event'])
    return all(k[0] == 'submission.graded' for k in by_sub.values()), by_sub


def test_basic(t, s, rec, hooks):
    s.grade(1)
    s.grade(2)
    s.review(1, 'approve')
    s.review(2, 'adjust', 9)
    s.review(1, 'release')
    s.grade(91)
    s.review(91, 'release')
    check_stream(t, s, rec, '/a', 1, 'basic')
    check_stream(t, s, rec, '/b', 1, 'basic')
    check_stream(t, s, rec, '/cs', 2, 'basic (other course)')
    recs = rec.records('/a')
    first = recs[0] if recs else {'body': {}}
    t.check('headers: Stepmark-Event is the body\'s event, Content-Type JSON, attempt 1',
            all(r['event'] == r['body']['event'] and r['ctype'] == 'application/json'
                for r in recs) and first['attempt'] == '1', first)
    t.check('Stepmark-Delivery is unique per event: webhook-event',
            all(r['delivery'] == f"{hooks['/a']}-{r['body']['event_id']}" for r in recs),
            [r['delivery'] for r in recs][:3])
    rel = [r['body'] for r in recs if r['event'] == 'grades.released']
    t.check('the released event carries the final block',
            rel and rel[0]['final']['state'] == 'released' and rel[0]['submission_id'] == 1
            and rel[0]['course'] == 'MATH101' and rel[0]['student_ref'] == 'S1', rel)
    adj = [r['body'] for r in recs if r['event'] == 'submission.reviewed'
           and r['body']['submission_id'] == 2]
    t.check('the reviewed event carries the adjusted score',
            adj and adj[0]['final']['state'] == 'adjusted' and float(adj[0]['final']['score']) == 9,
            adj)
    t.check('webhooks of CS201 get none of MATH101\'s events',
            all(r['body']['course'] == 'CS201' for r in rec.records('/cs')))


def test_failures(t, s, rec, hooks):
    with rec.lock:
        rec.fail['/a'] = 3
    s.grade(3)
    s.review(3, 'adjust', 4)
    check_stream(t, s, rec, '/a', 1, 'after 500s')
    log = s.log(hooks['/a'])
    tries = {}
    for e in reversed(log):
        tries.setdefault(e['delivery'], []).append((e['attempt'], e['status_code']))
    t.check('the log shows attempts 1-3 answered 500, then attempt 4 a 200, of one delivery',
            [(1, 500), (2, 500), (3, 500), (4, 200)] in tries.values()
            and any(e['error'] and 'HTTP 500' in e['error'] for e in log), tries)
    retried = [r for r in rec.records('/a') if r['attempt'] == '4']
    t.check('the receiver saw attempt 4 of one delivery after three 500s',
            len(retried) == 1 and sum(1 for r in rec.records('/a')
                                      if r['delivery'] == retried[0]['delivery']) == 4, retried)
    t.check('the other webhook was not held up', s.outbox(1) == rec.acked('/b'))

    with rec.lock:
        rec.slow['/a'] = 1
        rec.delay['/a'] = 2.5  # the test's timeout_ms is 1000
    s.grade(4)
    check_stream(t, s, rec, '/a', 1, 'after a timeout')
    log = s.log(hooks['/a'])
    t.check('the log shows a timeout, then success of the same delivery',
            any(e['error'] and 'imeout' in e['error'] and e['status_code'] is None
                and e['duration_ms'] >= 900 for e in log)
            and log[0]['status_code'] == 200, log[:3])


def test_late_commit(t, s, rec):
    """A transaction that started earlier but commits later is not skipped, and goes first."""
    p = subprocess.Popen(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', s.url, '-c',
                          "BEGIN; WITH j AS (INSERT INTO job (submission_id, state) VALUES "
                          "(5, 'done') RETURNING id) INSERT INTO grading (job_id, submission_id, "
                          "status, score, max_score, model_name, model_hash, engine_version, "
                          "prompt_template_version, seed) SELECT id, 5, 'graded', 1, 10, 'm', "
                          "'h', 'e', 'v1', 1 FROM j; SELECT pg_sleep(2); COMMIT;"],
                         stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    s.grade(6)
    p.wait(timeout=30)
    want = check_stream(t, s, rec, '/a', 1, 'late commit')
    subs = [int(s.sql(f'SELECT submission_id FROM event_outbox WHERE id = {e}'))
            for e in want[-2:]]
    t.equal('the earlier transaction\'s event (sub 5) came first, though it committed last',
            subs, [5, 6])


def test_outage(t, s, rec, hooks):
    """Receiver down; both brokers restart meanwhile; afterwards every event, in order."""
    rec.stop()
    before = len(s.log(hooks['/a']))
    for sub in (7, 8):
        s.grade(sub)
    t.check('while down: failed attempts are logged (connection refused)',
            wait_for(lambda: sum(1 for e in s.log(hooks['/a'])[:-before or None]
                                 if e['error'] and e['status_code'] is None) >= 3),
            s.log(hooks['/a'])[:3])
    t.equal('broker A stops cleanly', s.stop('A'), 0)
    t.equal('broker B stops cleanly', s.stop('B'), 0)
    s.review(7, 'approve')
    s.review(8, 'release')
    s.grade(9)
    s.review(9, 'adjust', 2)
    s.review(9, 'release')
    s.start('A')
    s.start('B')
    n = len(s.log(hooks['/a']))
    t.check('after the restart the brokers keep retrying',
            wait_for(lambda: len(s.log(hooks['/a'])) >= n + 2))
    rec.start()
    check_stream(t, s, rec, '/a', 1, 'after the outage and restart')
    check_stream(t, s, rec, '/b', 1, 'after the outage and restart')
    ok, by_sub = per_submission_ok(rec, '/a')
    t.check('per submission: graded first, then its reviews and release', ok, by_sub)
    t.equal('submission 9: graded, reviewed, released in order', by_sub.get(9),
            ['submission.graded', 'submission.reviewed', 'grades.released'])


def test_cli_and_metrics(t, s, rec, hooks):
    r = s.cli('webhook', 'list', '--json')
    rows = {h['id']: h for h in json.loads(r.stdout)} if r.returncode == 0 else {}
    a = rows.get(hooks['/a'], {})
    t.check('list --json: delivered = all events, nothing pending, no failures, no secret',
            a.get('delivered') == len(s.outbox(1)) and a.get('pending') == 0
            and a.get('attempts') == 0 and a.get('course') == 'MATH101'
            and 'whsec_' not in r.stdout, a)
    r = s.cli('webhook', 'list')
    t.check('list prints a table', r.returncode == 0 and r.stdout.startswith('id\tcourse\turl')
            and f'http://127.0.0.1:{rec.port}/a' in r.stdout, r.stdout)
    r = s.cli('webhook', 'log', '--limit', '3')
    t.check('log prints a table of the newest 3', r.returncode == 0
            and len(r.stdout.strip().split('\n')) == 4 and r.stdout.startswith('at\t'), r.stdout)
    log = s.log(hooks['/a'])
    t.check('log --json: newest first with event, status, error, duration, time',
            log and log[0]['id'] > log[-1]['id'] and all(
                k in log[0] for k in ('event', 'status_code', 'error', 'duration_ms', 'at')),
            log[:1])
    t.check('two brokers never delivered to one webhook at once',
            all(v <= 1 for v in rec.max_inflight.values()), rec.max_inflight)
    acks = {}
    for r in rec.records('/b'):
        if r['status'] == 200:
            acks[r['delivery']] = acks.get(r['delivery'], 0) + 1
    t.check('no event was acknowledged twice by /b (no failures there)',
            acks and max(acks.values()) == 1, acks)
    text = (s.metrics('A') or '') + (s.metrics('B') or '')
    ok = sum(int(x) for x in re.findall(r'^stepmark_webhook_deliveries_total\{result="ok"\} (\d+)',
                                        text, re.M))
    failed = sum(int(x) for x in re.findall(
        r'^stepmark_webhook_deliveries_total\{result="failed"\} (\d+)', text, re.M))
    t.check('/metrics: deliveries ok and failed since the restart', ok > 0 and failed > 0,
            (ok, failed))
    t.check('/metrics: the backlog drains to 0', wait_for(
        lambda: re.search(r'^stepmark_webhook_backlog 0$', s.metrics('A') or '', re.M)))
    r = s.cli('webhook', 'remove', str(hooks['/b']))
    t.check('remove /b', r.returncode == 0, r.stderr)
    nb = len(rec.records('/b'))
    s.grade(10)
    check_stream(t, s, rec, '/a', 1, 'after removing /b')
    t.equal('a removed webhook gets nothing more', len(rec.records('/b')), nb)
    last = max(s.outbox(1))
    hooks['/late'] = add_hook(t, s, rec, 'MATH101', '/late', host='localhost')
    s.grade(11)
    s.review(11, 'release')
    check_stream(t, s, rec, '/late', 1, 'a webhook added later (localhost)', after_id=last)


def run_tests(args):
    t = Checks()
    s = Stack(args, 'webhooks:\n  timeout_ms: 1000\n  first_backoff_ms: 50\n'
                    '  max_backoff_ms: 300\n  poll_ms: 50\n')
    rec = Receiver(free_port())
    rec.start()
    try:
        test_cli_refusals(t, s)
        hooks = {p: add_hook(t, s, rec, c, p) for p, c in
                 (('/a', 'MATH101'), ('/b', 'MATH101'), ('/cs', 'CS201'))}
        s.start('A')
        s.start('B')
        test_basic(t, s, rec, hooks)
        test_failures(t, s, rec, hooks)
        test_late_commit(t, s, rec)
        test_outage(t, s, rec, hooks)
        test_cli_and_metrics(t, s, rec, hooks)
    finally:
        s.close()
        if rec.server:
            rec.stop()
    print(f'{t.passed} passed, {t.failed} failed')
    return 1 if t.failed else 0


def run_outage(args):
    """--outage S: one receiver down for S seconds while events keep coming."""
    extra = '' if args.defaults else 'webhooks:\n  max_backoff_ms: 5000\n'
    s = Stack(args, extra)
    rec = Receiver(free_port())
    rec.start()
    try:
        t = Checks()
        add_hook(t, s, rec, 'MATH101', '/a')
        s.start('A')
        s.grade(1)
        wait_for(lambda: len(rec.acked('/a')) == 1)
        rec.stop()
        down = time.time()
        sub = 2
        while time.time() - down < args.outage:
            s.grade(sub)
            s.review(sub, 'release')
            sub += 1
            time.sleep(min(10, args.outage / 20))
        rec.start()
        up = time.time()
        want = s.outbox(1)
        done = wait_for(lambda: rec.acked('/a') == want, timeout=args.outage + 900, step=0.5)
        last = time.time() - up
        fails = sum(1 for e in s.log(1) if e['status_code'] is None)
        ok, _ = per_submission_ok(rec, '/a')
        print(f'outage {args.outage:.0f} s ({"default settings" if args.defaults else extra!r}):'
              f' {len(want)} events, all delivered in outbox order: {bool(done)}, per submission'
              f' in order: {ok}, failed attempts while down: {fails}, last event delivered'
              f' {last:.1f} s after the receiver came back')
        return 0 if done and ok else 1
    finally:
        s.close()
        if rec.server:
            rec.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--stepmarkd', required=True)
    ap.add_argument('--cli', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--outage', type=float, default=0)
    ap.add_argument('--defaults', action='store_true')
    args = ap.parse_args()
    return run_outage(args) if args.outage else run_tests(args)


if __name__ == '__main__':
    sys.exit(main())
