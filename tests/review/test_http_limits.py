#!/usr/bin/env python3
"""test_http_limits: the HTTP side's defences (issue 24, section 6) with real sockets, real
HTTP(S) and real PostgreSQL.

  test_http_limits.py --server BIN --cli BIN --seed seed.sql --web DIR --out DIR

Uses test_review's fresh database, teachers and server (stepmark-http-test), and starts more
servers with their own configuration files. Checks:
  - auth before body: an unauthenticated POST announcing 1 MB is answered 401 before its body
    is sent; 200 such POSTs sent in full, held open at once, leave the server's memory bounded;
    authenticated POSTs with large bodies still work;
  - connections: idle connections from one address are held to the per-address limit (the
    extra ones closed), another address is still served, idle connections time out;
  - bad query parameters and bodies (hex or exponent numbers, invalid UTF-8, duplicate JSON
    keys) get a 400 with a JSON error, and the server logs no error line;
  - transport: plain HTTP on 0.0.0.0 is refused at start; allowed with behind_tls_proxy (a
    warning is logged); served over HTTPS with a self-signed certificate made by openssl.
Prints one line per check and "N passed, N failed"; exits 1 on failure.
"""
import argparse
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_review import Checks, Client, Env  # noqa: E402


class Server:
    """One more stepmark-http-test on the same database, with its own configuration file."""

    def __init__(self, args, env, name, config):
        self.cfg = os.path.join(args.out, f'limits-{name}.yaml')
        with open(self.cfg, 'w') as f:
            f.write(config)
        self.log_path = os.path.join(args.out, f'server-limits-{name}.log')
        self.log = open(self.log_path, 'w')
        self.proc = subprocess.Popen([args.server, '--database', env.url, '--config', self.cfg],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        m = re.match(r'listening (\d+)', self.proc.stdout.readline())
        self.port = int(m.group(1)) if m else None

    def stop(self):
        """Stops the server (if it started) and returns its exit code."""
        try:
            self.proc.stdin.close()
            rc = self.proc.wait(timeout=20)
        except Exception:
            self.proc.kill()
            rc = None
        self.log.close()
        return rc

    def log_text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return f.read()


def raw(port, data, src='127.0.0.1', timeout=10):
    """Sends data on a new connection from address src and reads until the server closes it.
    Returns the bytes read, or None when the server sent nothing within timeout seconds."""
    s = socket.create_connection(('127.0.0.1', port), timeout=timeout, source_address=(src, 0))
    got = b''
    try:
        s.sendall(data)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        return got or None
    except OSError:
        pass
    finally:
        s.close()
    return got


def status_of(resp):
    m = re.match(rb'HTTP/1\.[01] (\d+)', resp or b'')
    return int(m.group(1)) if m else None


def get(port, path, src='127.0.0.1', timeout=5):
    return raw(port, f'GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'
               .encode(), src, timeout)


def post_head(path, length, cookie=None, csrf=None):
    h = (f'POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n'
         f'Content-Length: {length}\r\nConnection: close\r\n')
    if cookie:
        h += f'Cookie: {cookie}\r\n'
    if csrf:
        h += f'X-CSRF-Token: {csrf}\r\n'
    return (h + '\r\n').encode()


def memory_kb(pid):
    with open(f'/proc/{pid}/status') as f:
        return int(re.search(r'^VmRSS:\s+(\d+) kB', f.read(), re.M).group(1))


def auth_before_body(t, env, alice):
    port = int(env.base.rsplit(':', 1)[1])
    path = '/api/submissions/1/review'
    # Only the headers: the server must answer without waiting for the 1 MB it announces.
    r = raw(port, post_head(path, 1 << 20), timeout=10)
    t.equal('unauthenticated POST refused before its body is sent', status_of(r), 401)
    r = raw(port, post_head(path, 1 << 20, cookie=alice.cookie), timeout=10)
    t.equal('POST without CSRF token refused before its body is sent', status_of(r), 403)
    r = raw(port, post_head(path, 2 << 20, cookie=alice.cookie, csrf=alice.csrf), timeout=10)
    t.equal('authenticated POST announcing 2 MB refused before its body is sent', status_of(r), 413)
    r = raw(port, post_head('/api/signin', 100000), timeout=10)
    t.equal('sign-in announcing 100 kB refused before its body is sent', status_of(r), 413)

    # Large authenticated bodies are still read and handled.
    n_reviews = env.sql('SELECT count(*) FROM review')
    st, doc = alice.json('POST', '/api/submissions/1/review',
                         {'action': 'approve', 'padding': 'x' * 900000})
    t.check('authenticated POST of 900 kB accepted', st == 200 and doc.get('new_score') == 9.5,
            (st, doc))
    t.equal('and stored', int(env.sql('SELECT count(*) FROM review')), int(n_reviews) + 1)


def memory_bounded(t, args, env):
    """200 unauthenticated 1 MB POSTs, all open at once: the bodies never enter memory."""
    srv = Server(args, env, 'memory', 'http:\n  max_connections: 400\n'
                 '  max_connections_per_address: 400\n  threads: 4\n')
    if not t.check('memory test server started', srv.port is not None, srv.log_text()):
        srv.stop()
        return
    before = memory_kb(srv.proc.pid)
    body = b'{"action":"approve","padding":"' + b'x' * ((1 << 20) - 40) + b'"}'
    head = post_head('/api/submissions/1/review', len(body))
    socks, refused_early = [], 0
    for _ in range(200):
        s = socket.create_connection(('127.0.0.1', srv.port), timeout=5)
        socks.append(s)
        try:
            s.sendall(head + body[:-1])  # all but the last byte: a buffering server holds it all
        except OSError:  # answered and closed by the server while sending
            refused_early += 1
    peak = before
    for _ in range(20):  # let the server read whatever it is going to read
        time.sleep(0.1)
        peak = max(peak, memory_kb(srv.proc.pid))
    answers = 0
    for s in socks:
        try:
            s.settimeout(2)
            answers += status_of(s.recv(4096)) == 401
        except OSError:
            pass
        s.close()
    growth_mb = (peak - before) / 1024
    print(f'     server memory {before // 1024} MB before, {peak // 1024} MB at most during '
          f'200 unauthenticated 1 MB POSTs ({refused_early} cut off while sending, '
          f'{answers} 401s read)')
    t.check('200 unauthenticated 1 MB POSTs leave memory bounded (< 48 MB growth)',
            growth_mb < 48, f'grew {growth_mb:.0f} MB')
    t.check('unauthenticated POSTs answered 401', answers + refused_early >= 100,
            (answers, refused_early))
    st, _, _ = Client(f'http://127.0.0.1:{srv.port}').request('GET', '/api/session')
    t.equal('server still answers afterwards', st, 401)
    t.equal('memory test server stopped cleanly', srv.stop(), 0)


def connection_limits(t, args, env):
    port = int(env.base.rsplit(':', 1)[1])
    idle = []
    for _ in range(300):
        idle.append(socket.create_connection(('127.0.0.1', port), timeout=5))
    time.sleep(1.0)
    held = 0
    for s in idle:
        s.setblocking(False)
        try:
            held += s.recv(1) != b''  # b'': closed by the server
        except BlockingIOError:
            held += 1  # still open, waiting for a request
        except OSError:
            pass
    t.check('idle connections from one address held to 32 (the default limit)',
            held == 32, f'{held} of 300 still open')
    env.log.flush()
    with open(env.log_path) as f:
        refusals = f.read().count('reached connection limit')
    t.check('refused connections logged at a rate limit', 1 <= refusals <= 20, refusals)
    t.equal('a request from 127.0.0.1 is refused while at its limit',
            status_of(get(port, '/index.html')), None)
    t.equal('a request from 127.0.0.2 is served meanwhile',
            status_of(get(port, '/index.html', src='127.0.0.2')), 200)
    for s in idle:
        s.close()
    deadline = time.time() + 10
    st = None
    while time.time() < deadline and st != 200:
        time.sleep(0.2)
        st = status_of(get(port, '/index.html'))
    t.equal('127.0.0.1 served again once its connections close', st, 200)

    srv = Server(args, env, 'timeout', 'http:\n  connection_timeout_seconds: 2\n')
    if t.check('timeout test server started', srv.port is not None, srv.log_text()):
        s = socket.create_connection(('127.0.0.1', srv.port), timeout=20)
        t0 = time.time()
        try:
            closed = s.recv(1) == b''
        except socket.timeout:
            closed = False
        except OSError:
            closed = True
        s.close()
        t.check('an idle connection is closed after connection_timeout_seconds',
                closed and time.time() - t0 < 15, time.time() - t0)
    t.equal('timeout test server stopped cleanly', srv.stop(), 0)


def bad_input(t, env, alice):
    bad = ['/api/assignments/1?min=0x10', '/api/assignments/1?max=1e5',
           '/api/assignments/1?min=%20%205', '/api/assignments/1?min=nan',
           '/api/assignments/1?max=-inf', '/api/assignments/1?min=1234567890',
           '/api/assignments/1?q=%FF', '/api/assignments/1?flag=%C3%28',
           '/api/assignments/1?q=%ED%A0%80', '/api/assignments/1?q=%C0%AF',
           '/api/submissions/2?min=0x10', '/api/submissions/2?q=%FE%FF',
           '/api/assignments/1/export.csv?format=%FF',
           '/api/assignments/1/export.csv?canvas_id=%FF',
           '/api/assignments/1/export.json?x=%FF', '/api/courses?%FF=1', '/api/progress?q=%80']
    for path in bad:
        st, doc = alice.json('GET', path)
        t.check(f'400 with a JSON error for {path}',
                st == 400 and doc and doc['error']['code'] == 'EINVAL' and doc['error']['message'],
                (st, doc))
    st, doc = alice.json('GET', '/api/assignments/1?min=-1.5&max=9.50&q=s%C3%A9')
    t.equal('plain decimals and UTF-8 still accepted', st, 200)

    before = env.sql('SELECT (SELECT count(*) FROM review) || \'/\' || (SELECT count(*) FROM job)')
    bodies = {
        'duplicate keys': b'{"action":"approve","action":"regrade"}',
        'duplicate nested keys': b'{"action":"approve","x":{"a":1,"a":2}}',
        'invalid UTF-8': b'{"action":"approve","comment":"\xff"}',
        'a JSON array': b'[{"action":"approve"}]',
        'an escaped NUL': b'{"action":"approve","comment":"a\\u0000b"}',
    }
    for name, body in bodies.items():
        st, doc = alice.json('POST', '/api/submissions/3/review', raw=body)
        t.check(f'review body with {name} refused with 400', st == 400 and doc
                and doc['error']['code'] == 'EINVAL', (st, doc))
    t.check('duplicate keys named in the error',
            'duplicate' in alice.json('POST', '/api/submissions/3/review',
                                      raw=bodies['duplicate keys'])[1]['error']['message'])
    after = env.sql('SELECT (SELECT count(*) FROM review) || \'/\' || (SELECT count(*) FROM job)')
    t.equal('nothing stored by refused bodies', after, before)
    tok = env.tokens['Bob']
    st, _, _ = Client(env.base).request(
        'POST', '/api/signin', raw=json.dumps({'token': tok}).encode()[:-1] + b',"token":"'
        + tok.encode() + b'"}')
    t.equal('sign-in body with duplicate keys refused with 400', st, 400)

    env.log.flush()
    log = open(env.log_path).read()
    errors = [ln for ln in log.splitlines() if re.match(r'^\S+ error ', ln)]
    t.equal('no error lines logged for bad input', errors, [])
    t.check('no failed requests logged', 'http request failed' not in log)


def transport(t, args, env):
    r_plain = Server(args, env, 'plain-any', 'http:\n  address: 0.0.0.0\n')
    rc = r_plain.stop()
    log = r_plain.log_text()
    t.check('plain HTTP on 0.0.0.0 refused at start', r_plain.port is None and rc == 1
            and 'behind_tls_proxy' in log and 'tls_cert_file' in log, (rc, log))
    r_v6 = Server(args, env, 'plain-v6', 'http:\n  address: "::"\n')
    t.check('plain HTTP on :: refused at start', r_v6.port is None and r_v6.stop() == 1)
    half = Server(args, env, 'half-tls', 'http:\n  tls_cert_file: /etc/hostname\n')
    t.check('a certificate without a key refused', half.port is None and half.stop() == 1
            and 'set together' in half.log_text())

    proxy = Server(args, env, 'proxy', 'http:\n  address: 0.0.0.0\n  behind_tls_proxy: true\n')
    if t.check('plain HTTP on 0.0.0.0 starts with behind_tls_proxy', proxy.port is not None,
               proxy.log_text()):
        t.equal('and serves', status_of(get(proxy.port, '/index.html')), 200)
        t.check('a warning is logged', re.search(r'^\S+ warn .*behind_tls_proxy', proxy.log_text(),
                                                 re.M) is not None, proxy.log_text())
    t.equal('proxy server stopped cleanly', proxy.stop(), 0)

    cert, key = os.path.join(args.out, 'tls-cert.pem'), os.path.join(args.out, 'tls-key.pem')
    r = subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
                        '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
                        '-keyout', key, '-out', cert], capture_output=True, text=True, timeout=60)
    if not t.check('self-signed certificate made with openssl', r.returncode == 0, r.stderr):
        return
    os.chmod(key, 0o600)
    tls = Server(args, env, 'tls', f'http:\n  address: 0.0.0.0\n  tls_cert_file: "{cert}"\n'
                 f'  tls_key_file: "{key}"\n')
    if t.check('HTTPS on 0.0.0.0 starts with a certificate and key', tls.port is not None,
               tls.log_text()):
        try:
            https_checks(t, env, tls.port, cert)
        except Exception:
            traceback.print_exc()
            t.check('HTTPS checks completed without exception', False)
    t.equal('HTTPS server stopped cleanly', tls.stop(), 0)


def https_checks(t, env, port, cert):
    """HTTPS requests verified against the test certificate; Secure cookie; HSTS."""
    ctx = ssl.create_default_context(cafile=cert)
    base = f'https://127.0.0.1:{port}'
    with urllib.request.urlopen(base + '/index.html', context=ctx, timeout=10) as resp:
        t.check('HTTPS request verified against the certificate succeeds',
                resp.status == 200 and b'app.js' in resp.read())
        t.check('HSTS header over HTTPS', 'max-age' in resp.headers.get(
            'Strict-Transport-Security', ''), dict(resp.headers))
    req = urllib.request.Request(base + '/api/signin', method='POST',
                                 data=json.dumps({'token': env.tokens['Alice']}).encode(),
                                 headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        cookie = resp.headers.get('Set-Cookie', '')
        t.check('sign-in over HTTPS sets a Secure cookie', resp.status == 200
                and '; Secure' in cookie and 'HttpOnly' in cookie, cookie)
    st = status_of(get(port, '/index.html'))
    t.check('plain HTTP to the HTTPS port gets no page', st is None or st >= 400, st)
    try:
        urllib.request.urlopen(base + '/', context=ssl.create_default_context(), timeout=10)
        verified = True
    except (urllib.error.URLError, ssl.SSLError):
        verified = False
    t.check('an unknown certificate is not trusted by a default client', not verified)


def main():
    p = argparse.ArgumentParser()
    for a in ('--server', '--cli', '--seed', '--web', '--out'):
        p.add_argument(a, required=True)
    args = p.parse_args()
    t = Checks()
    env = None
    try:
        env = Env(args, 'limits', 100)
        alice = Client(env.base)
        t.equal('alice signs in', alice.signin(env.tokens['Alice'])[0], 200)
        auth_before_body(t, env, alice)
        bad_input(t, env, alice)
        connection_limits(t, args, env)
        memory_bounded(t, args, env)
        transport(t, args, env)
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
