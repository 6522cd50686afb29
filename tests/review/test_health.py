#!/usr/bin/env python3
"""test_health: the probes /healthz and /readyz of the real stepmarkd, over real HTTP and
real PostgreSQL.

  test_health.py --stepmarkd BIN --cli BIN --out DIR [--dashboard deploy/grafana/stepmark.json]

Uses test_teacher_access's Stack: its own database in the cluster of $STEPMARK_DATABASE_URL
and a running stepmarkd. Checks: /healthz is 200 without a session (GET and HEAD, and 200
probes in a row on new connections from one address are all answered); /readyz is 200 with
the migration versions; POST is refused; /readyz is 503 "migrations pending" while the newest
migration is missing from schema_migrations, and 503 "database unreachable" while the
database refuses connections (its backends terminated, as when PostgreSQL is stopped); both
recover to 200 without restarting stepmarkd, and /healthz stays 200 throughout. /metrics
gives durations in seconds, and serves every broker metric the Grafana dashboard uses. Prints one
line per check and "N passed, N failed"; exits 1 on failure.
"""
import argparse
import json
import os
import re
import sys
import time
import traceback
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_review import Checks, psql  # noqa: E402
from test_teacher_access import Stack, request  # noqa: E402


def head(base, path):
    req = urllib.request.Request(base + path, method='HEAD')
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_ready(base, want, timeout=30):
    """Polls /readyz until its status is want; returns the last (status, headers, doc)."""
    deadline = time.time() + timeout
    while True:
        got = request(base, 'GET', '/readyz')
        if got[0] == want or time.time() > deadline:
            return got
        time.sleep(0.2)


def probes_up(t, s):
    st, _, doc = request(s.base, 'GET', '/healthz')
    t.check('healthz 200 without a session', st == 200 and doc == {'status': 'ok'}, (st, doc))
    st, body = head(s.base, '/healthz')
    t.check('healthz HEAD 200 without body', st == 200 and body == b'', (st, body))
    st, _, doc = request(s.base, 'GET', '/readyz')
    mig = (doc or {}).get('migrations', {})
    t.check('readyz 200 when migrated', st == 200 and doc.get('status') == 'ready'
            and mig.get('current') == mig.get('expected') and mig.get('expected', 0) > 0,
            (st, doc))
    st, _, doc = request(s.base, 'POST', '/readyz', {})
    t.check('readyz refuses POST', st == 405, (st, doc))
    codes = [request(s.base, 'GET', '/healthz' if i % 2 else '/readyz')[0] for i in range(200)]
    t.check('200 probes in a row from one address all answered',
            codes.count(200) == 200, sorted(set(codes)))
    return mig.get('expected', 0)


def metrics_names(t, s, dashboard):
    with urllib.request.urlopen(s.base + '/metrics', timeout=30) as r:
        text = r.read().decode()
    served = set(re.findall(r'^(stepmark_\w+)', text, re.M))
    t.check('metrics: no millisecond units', not [n for n in served if n.endswith('_ms')
                                                   or '_ms_' in n], sorted(served))
    t.check('metrics: latency histogram in seconds',
            'stepmark_ack_latency_seconds_bucket' in served, sorted(served))
    if not dashboard:
        return
    with open(dashboard) as f:
        exprs = [tg['expr'] for p in json.load(f)['panels'] for tg in p['targets']]
    used = {n for e in exprs for n in re.findall(r'\b(stepmark_\w+)', e)}
    broker = {n for n in used if not n.startswith('stepmark_worker_')}
    t.check('dashboard uses broker metrics that /metrics serves', broker and broker <= served,
            sorted(broker - served))


def migration_pending(t, s, expected):
    name = s.sql(f'SELECT name FROM schema_migrations WHERE version = {expected}')
    s.sql(f'DELETE FROM schema_migrations WHERE version = {expected}')
    try:
        st, h, doc = request(s.base, 'GET', '/readyz')
        t.check('readyz 503 while a migration is pending',
                st == 503 and doc.get('reason') == 'migrations pending'
                and doc['migrations'] == {'current': expected - 1, 'expected': expected}
                and h.get('Retry-After'), (st, doc))
        st, _, _ = request(s.base, 'GET', '/healthz')
        t.check('healthz still 200 while a migration is pending', st == 200, st)
    finally:
        s.sql("INSERT INTO schema_migrations (version, name) VALUES "
              f"({expected}, '{name}')")
    st, _, doc = request(s.base, 'GET', '/readyz')
    t.check('readyz 200 again once migrated', st == 200, (st, doc))


def database_down(t, s):
    psql(s.base_url, f'ALTER DATABASE {s.db} ALLOW_CONNECTIONS false')
    try:
        psql(s.base_url, 'SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity '
             f"WHERE datname = '{s.db}'")
        st, _, doc = wait_ready(s.base, 503)
        t.check('readyz 503 while the database is unreachable',
                st == 503 and doc.get('reason') == 'database unreachable', (st, doc))
        st, _, doc = request(s.base, 'GET', '/readyz')
        t.check('readyz stays 503 while the database refuses connections',
                st == 503 and doc.get('reason') == 'database unreachable', (st, doc))
        st, _, _ = request(s.base, 'GET', '/healthz')
        t.check('healthz still 200 without the database', st == 200, st)
    finally:
        psql(s.base_url, f'ALTER DATABASE {s.db} ALLOW_CONNECTIONS true')
    st, _, doc = wait_ready(s.base, 200)
    t.check('readyz 200 again once the database is back', st == 200, (st, doc))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--stepmarkd', required=True)
    ap.add_argument('--cli', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--dashboard')
    args = ap.parse_args()
    t = Checks()
    s = None
    try:
        s = Stack(args)
        expected = probes_up(t, s)
        metrics_names(t, s, args.dashboard)
        migration_pending(t, s, expected)
        database_down(t, s)
    except Exception:
        traceback.print_exc()
        t.failed += 1
    finally:
        if s:
            s.close()
    print(f'{t.passed} passed, {t.failed} failed')
    return 1 if t.failed or t.passed == 0 else 0


if __name__ == '__main__':
    sys.exit(main())
