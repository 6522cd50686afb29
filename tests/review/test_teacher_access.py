#!/usr/bin/env python3
"""test_teacher_access: teacher tokens and sessions end to end (issue 24, section 5).

  test_teacher_access.py --stepmarkd BIN --cli BIN --out DIR

Creates its own database (teacher_access_<pid>) in the cluster named by $STEPMARK_DATABASE_URL,
starts the real stepmarkd (broker on ipc sockets, HTTP on a free loopback port) and drives
`stepmark teacher add|rotate|revoke|list` and the HTTP sign-in/session API: after rotate the old
token and the old session cookie get 401 and the new token works; after revoke all fail; an
expired token is refused with a clear message; list shows token state, expiry and last use,
which the server records at most once a minute per teacher. Prints one line per check and
"N passed, N failed"; exits 1 on failure.
"""
import argparse
import datetime
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


from test_review import Checks, psql  # noqa: E402 (same folder)


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


class Stack:
    """A fresh database, two courses and a running stepmarkd."""

    def __init__(self, args):
        self.base_url = os.environ['STEPMARK_DATABASE_URL']
        self.db = f'teacher_access_{os.getpid()}'
        self.url = db_url(self.base_url, self.db)
        psql(self.base_url, f'DROP DATABASE IF EXISTS {self.db}')
        psql(self.base_url, f'CREATE DATABASE {self.db}')
        self.cli = args.cli
        self.env = dict(os.environ, STEPMARK_DATABASE_URL=self.url)
        self.env.pop('STEPMARK_CONFIG', None)
        self.env.pop('STEPMARK_HTTP_PORT', None)
        self.dir = tempfile.mkdtemp(prefix='smta-', dir='/tmp')
        port = free_port()
        cfg = os.path.join(self.dir, 'stepmark.yaml')
        with open(cfg, 'w') as f:
            f.write('broker:\n'
                    f'  client_endpoint: "ipc://{self.dir}/client"\n'
                    f'  worker_endpoint: "ipc://{self.dir}/worker"\n'
                    f'  event_endpoint: "ipc://{self.dir}/events"\n'
                    'http:\n  enabled: true\n  address: 127.0.0.1\n'
                    f'  port: {port}\n  login_attempts_per_minute: 1000\n'
                    'logging:\n  level: info\n')
        r = self.run('migrate')
        if r.returncode != 0:
            raise RuntimeError('stepmark migrate failed: ' + r.stderr + r.stdout)
        self.sql("INSERT INTO course (code, title) VALUES ('MATH101', 'Algebra'), "
                 "('CS201', 'Programming')")
        self.log_path = os.path.join(args.out, 'teacher-access-stepmarkd.log')
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
                urllib.request.urlopen(self.base + '/metrics', timeout=5).read()
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
        try:
            psql(self.base_url, f'DROP DATABASE IF EXISTS {self.db} WITH (FORCE)')
        except Exception as e:
            print('warning: cannot drop test database:', e)


def request(base, method, path, body=None, cookie=None):
    """(status, headers, parsed JSON body or None) of one request."""
    h = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h['Content-Type'] = 'application/json'
    if cookie:
        h['Cookie'] = 'sm_session=' + cookie
    req = urllib.request.Request(base + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, headers, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, e.headers, e.read()
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = None
    return status, headers, doc


def signin(base, token):
    """(status, session cookie or None, body)."""
    st, h, doc = request(base, 'POST', '/api/signin', {'token': token})
    m = re.search(r'sm_session=([0-9a-f]{64})', h.get('Set-Cookie') or '')
    return st, (m.group(1) if m else None), doc


def token_in(out):
    m = re.search(r'^([0-9a-f]{64})$', out, re.M)
    return m.group(1) if m else None


def list_rows(stack):
    """teacher list as {name: {column: value}}."""
    r = stack.run('teacher', 'list')
    lines = r.stdout.strip().split('\n')
    head = lines[0].split('\t')
    return {row.split('\t')[1]: dict(zip(head, row.split('\t'))) for row in lines[1:]}


def courses_status(stack, cookie):
    return request(stack.base, 'GET', '/api/courses', cookie=cookie)[0]


def test_add(t, s):
    r = s.run('teacher', 'add', '--name', 'Ada', '--course', 'MATH101', '--course', 'CS201')
    t1 = token_in(r.stdout)
    t.check('add prints a token', r.returncode == 0 and t1, (r.returncode, r.stderr))
    t.equal('only the hash is stored',
            s.sql(f"SELECT count(*) FROM teacher WHERE token_hash = '{t1}'") + '/'
            + s.sql("SELECT count(*) FROM teacher WHERE token_hash = '"
                    + hashlib.sha256(t1.encode()).hexdigest() + "'"), '0/1')
    row = list_rows(s).get('Ada', {})
    t.check('list: courses, active, no expiry, never used',
            row.get('courses') == 'CS201,MATH101' and row.get('token') == 'active'
            and row.get('expires') == 'never' and row.get('last_used') == 'never', row)
    r = s.run('teacher', 'add', '--name', 'Ada', '--course', 'MATH101')
    t.check('add of an existing name is refused, pointing to rotate',
            r.returncode == 1 and 'already exists' in r.stderr and 'teacher rotate' in r.stderr
            and token_in(r.stdout) is None, (r.returncode, r.stderr, r.stdout))
    t.equal('still one Ada', s.sql("SELECT count(*) FROM teacher WHERE name = 'Ada'"), '1')
    for bad in (['add', '--name', 'X', '--course', 'MATH101', '--expires', '30x'],
                ['add', '--name', 'X', '--course', 'MATH101', '--expires', '0d'],
                ['rotate'], ['rotate', 'Ada', '--course', 'MATH101'], ['revoke', 'Ada', 'Bob'],
                ['revoke', 'Ada', '--expires', '1d']):
        r = s.run('teacher', *bad)
        t.equal(f'usage error: teacher {" ".join(bad)}', r.returncode, 2)
    r = s.run('teacher', 'rotate', 'Nobody')
    t.check('rotate of an unknown teacher fails', r.returncode == 1 and 'no teacher' in r.stderr,
            (r.returncode, r.stderr))
    return t1


def test_last_use(t, s, t1):
    st, c1, doc = signin(s.base, t1)
    t.check('sign in with the token', st == 200 and c1, (st, doc))
    t.equal('session works', courses_status(s, c1), 200)
    row = list_rows(s)['Ada']
    used = row.get('last_used', 'never')
    t.check('list shows the last use after sign-in', re.match(
        r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$', used) and abs(
        (datetime.datetime.strptime(used, '%Y-%m-%dT%H:%M:%SZ')
         - datetime.datetime.utcnow()).total_seconds()) < 300, row)
    q = "SELECT extract(epoch FROM last_used_at) FROM teacher WHERE name = 'Ada'"
    before = s.sql(q)
    for _ in range(3):
        courses_status(s, c1)
    t.equal('last use not written on every request', s.sql(q), before)
    s.sql("UPDATE teacher SET last_used_at = now() - interval '2 hours' WHERE name = 'Ada'")
    t.equal('request with an old last use', courses_status(s, c1), 200)
    t.equal('last use updated by a signed-in request', s.sql(
        "SELECT last_used_at > now() - interval '5 minutes' FROM teacher WHERE name = 'Ada'"), 't')
    return c1


def test_rotate(t, s, t1, c1):
    epoch = s.sql("SELECT token_epoch FROM teacher WHERE name = 'Ada'")
    r = s.run('teacher', 'rotate', 'Ada')
    t2 = token_in(r.stdout)
    t.check('rotate prints a new token', r.returncode == 0 and t2 and t2 != t1,
            (r.returncode, r.stderr))
    st, _, doc = signin(s.base, t1)
    t.check('old token refused after rotate', st == 401, (st, doc))
    t.equal('old session cookie refused after rotate', courses_status(s, c1), 401)
    st, c2, doc = signin(s.base, t2)
    t.check('new token signs in', st == 200 and c2, (st, doc))
    t.equal('new session works', courses_status(s, c2), 200)
    # A session opened with the old token after the rotation's delete (a sign-in racing the
    # rotation) is still refused: sessions are bound to the token epoch.
    tid = s.sql("SELECT id FROM teacher WHERE name = 'Ada'")
    for name, ep, want in (('old epoch', epoch, 401), ('current epoch', None, 200)):
        sid = hashlib.sha256(name.encode()).hexdigest()
        s.sql("INSERT INTO teacher_session (id_hash, teacher_id, csrf_token, token_epoch, "
              f"expires_at) SELECT '{hashlib.sha256(sid.encode()).hexdigest()}', id, 'x', "
              f"{ep or 'token_epoch'}, now() + interval '1 hour' FROM teacher WHERE id = {tid}")
        t.equal(f'session of the {name}', courses_status(s, sid), want)
    t.equal('audit log records the rotation',
            s.sql(f"SELECT count(*) FROM audit_log WHERE action = 'token_rotate' "
                  f"AND subject = 'teacher:{tid}'"), '1')
    return t2, c2


def test_revoke(t, s, t1, t2, c2):
    r = s.run('teacher', 'revoke', 'Ada')
    t.check('revoke', r.returncode == 0 and 'revoked' in r.stdout and token_in(r.stdout) is None,
            (r.returncode, r.stderr))
    for name, tok in (('new', t2), ('old', t1)):
        st, _, doc = signin(s.base, tok)
        t.equal(f'{name} token refused after revoke', st, 401)
    t.equal('session refused after revoke', courses_status(s, c2), 401)
    t.equal('no session left', s.sql(
        "SELECT count(*) FROM teacher_session s JOIN teacher t ON t.id = s.teacher_id "
        "WHERE t.name = 'Ada'"), '0')
    t.equal('list shows revoked', list_rows(s)['Ada'].get('token'), 'revoked')
    t.equal('courses kept', list_rows(s)['Ada'].get('courses'), 'CS201,MATH101')
    r = s.run('teacher', 'rotate', 'Ada')
    t3 = token_in(r.stdout)
    st, c3, _ = signin(s.base, t3 or '')
    t.check('rotate after revoke gives access again', st == 200 and courses_status(s, c3) == 200
            and list_rows(s)['Ada'].get('token') == 'active', st)


def test_expiry(t, s):
    r = s.run('teacher', 'add', '--name', 'Cy', '--course', 'MATH101', '--expires', '1s')
    tc = token_in(r.stdout)
    t.check('add with --expires 1s', r.returncode == 0 and tc, (r.returncode, r.stderr))
    deadline = time.time() + 30
    while s.sql("SELECT token_expires_at < now() FROM teacher WHERE name = 'Cy'") != 't':
        if time.time() > deadline:
            break
        time.sleep(0.2)
    st, c, doc = signin(s.base, tc)
    msg = ((doc or {}).get('error') or {}).get('message', '')
    t.check('expired token refused with a clear 401', st == 401 and c is None
            and 'expired' in msg, (st, doc))
    t.equal('list shows expired', list_rows(s)['Cy'].get('token'), 'expired')

    r = s.run('teacher', 'add', '--name', 'Dee', '--course', 'CS201', '--expires', '30d')
    td = token_in(r.stdout)
    exp = list_rows(s)['Dee'].get('expires', '')
    want = datetime.datetime.utcnow() + datetime.timedelta(days=30)
    t.check('list shows the expiry 30 days ahead', re.match(r'^\d{4}-', exp) and abs(
        (datetime.datetime.strptime(exp, '%Y-%m-%dT%H:%M:%SZ') - want).total_seconds()) < 600,
        exp)
    st, cd, _ = signin(s.base, td or '')
    t.check('a token with a lifetime signs in', st == 200 and courses_status(s, cd) == 200, st)
    t.equal('its session ends no later than the token', s.sql(
        "SELECT bool_and(s.expires_at <= t.token_expires_at) FROM teacher_session s "
        "JOIN teacher t ON t.id = s.teacher_id WHERE t.name = 'Dee'"), 't')
    s.sql("UPDATE teacher SET token_expires_at = now() - interval '1 second' WHERE name = 'Dee'")
    t.equal('session refused once the token expired', courses_status(s, cd), 401)
    r = s.run('teacher', 'rotate', 'Dee', '--expires', '2w')
    st, cd, _ = signin(s.base, token_in(r.stdout) or '')
    t.check('rotate --expires 2w renews access', st == 200 and courses_status(s, cd) == 200, st)


def test_duplicates(t, s):
    # Databases from before 004 may hold two teachers of one name (the old "add again").
    s.sql("INSERT INTO teacher (name, token_hash) VALUES ('Old', 'a'), ('Old', 'b')")
    r = s.run('teacher', 'revoke', 'Old')
    t.check('an ambiguous name asks for --id', r.returncode == 1 and '--id' in r.stderr,
            (r.returncode, r.stderr))
    first = s.sql("SELECT min(id) FROM teacher WHERE name = 'Old'")
    r = s.run('teacher', 'revoke', '--id', first)
    t.check('revoke --id', r.returncode == 0 and s.sql(
        "SELECT string_agg(coalesce(token_hash, '-'), ',' ORDER BY id) FROM teacher "
        "WHERE name = 'Old'") == '-,b', (r.returncode, r.stderr))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--stepmarkd', required=True)
    ap.add_argument('--cli', required=True)
    ap.add_argument('--out', required=True)
    args = ap.parse_args()
    t = Checks()
    s = Stack(args)
    tokens = []
    try:
        t1 = test_add(t, s)
        tokens.append(t1)
        c1 = test_last_use(t, s, t1)
        t2, c2 = test_rotate(t, s, t1, c1)
        tokens.append(t2)
        test_revoke(t, s, t1, t2, c2)
        test_expiry(t, s)
        test_duplicates(t, s)
    finally:
        s.close()
    log = open(s.log_path).read()
    t.check('stepmarkd served HTTP', 'http listening' in log, log[-2000:])
    t.check('tokens never logged', all(tok not in log for tok in tokens))
    print(f'{t.passed} passed, {t.failed} failed')
    return 1 if t.failed else 0


if __name__ == '__main__':
    sys.exit(main())
