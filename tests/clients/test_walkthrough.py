#!/usr/bin/env python3
"""test_walkthrough: runs docs/lms-integration.md as a test.

  test_walkthrough.py --doc FILE --stepmarkd BIN --cli BIN --worker BIN --model DIR
                      --client DIR --out DIR

Starts the same stack as test_pyclient (PostgreSQL database, stepmarkd with CURVE and HTTP, a
stepmark-worker with the small seeded model), sets the variables that section 2 of the page
names, and runs every fenced block whose info string has `step=NAME` (```sh step=... in
`bash -euo pipefail`, ```python step=... with this interpreter), in the page's order, in one
scratch folder holding a link to clients/. Variables a shell block exports reach the later
blocks. Every block that looks like code (sh, bash, shell, console, python, or no language)
must be either a step or marked `norun` in its info string (```sh norun): an unmarked one
fails the test, so nothing on the page escapes it unnoticed; the `export NAME=...` lines of a
norun block must name variables this test sets. Each block runs in its own process group;
what a block leaves running in the background (the webhook receiver) is stopped at the end.
Prints one line per block; exits 1 when a block fails (with its output), the page has no
runnable blocks, or a block is neither a step nor norun.
"""
import argparse
import os
import re
import signal
import subprocess
import sys

from stack import Checks, Stack, install_client

FENCE = re.compile(r'^```([\w+-]*)([^\n]*)\n(.*?)^```[ \t]*$', re.M | re.S)
CODE = ('sh', 'bash', 'shell', 'console', 'python', '')  # languages that look like code
RUNS = ('sh', 'bash', 'python')
STEP = re.compile(r'(?:^|\s)step=([\w.-]+)(?:\s|$)')
NORUN = re.compile(r'(?:^|\s)norun(?:\s|$)')


def fences(text):
    """[(language, info string after it, code, line number)] of every fenced block."""
    return [(m.group(1), m.group(2), m.group(3), text.count('\n', 0, m.start()) + 1)
            for m in FENCE.finditer(text)]


def blocks(text):
    """[(language, step name, code)] of the runnable blocks, in order."""
    out = []
    for lang, info, code, _ in fences(text):
        m = STEP.search(info)
        if m and lang in RUNS:
            out.append((lang, m.group(1), code))
    return out


def unmarked(text):
    """Blocks that look like code but are neither a runnable step nor marked norun."""
    return [f'line {line}: ```{lang}{info}' for lang, info, _, line in fences(text)
            if lang in CODE and not NORUN.search(info)
            and not (STEP.search(info) and lang in RUNS)]


def norun_exports(text):
    """The variables that norun blocks export (they must be those this test sets)."""
    names = set()
    for _, info, code, _ in fences(text):
        if NORUN.search(info):
            for line in re.findall(r'^\s*export\s+(.*)$', code, re.M):
                names.update(re.findall(r'(?:^|\s)([A-Z_][A-Z0-9_]*)=', line))
    return names


def run(argv, env, cwd, groups):
    """Runs argv in a process group of its own (remembered in groups, to be stopped at the
    end with whatever it left in the background); (returncode, output)."""
    p = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    groups.append(p.pid)
    try:
        out, _ = p.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        return 124, (out or '') + '\n(no end after 600 s: a background process that keeps the ' \
            'output open? redirect its output)'
    return p.returncode, out


def stop_groups(groups):
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass


def run_block(lang, code, env, cwd, groups):
    """(returncode, output, env after the block)."""
    if lang == 'python':
        rc, out = run([sys.executable, '-c', code], env, cwd, groups)
        return rc, out, env
    envfile = os.path.join(cwd, '.walkthrough-env')
    script = f'set -euo pipefail\n{code}\nenv -0 > {envfile}\n'
    rc, out = run(['bash', '-c', script], env, cwd, groups)
    new = env
    if rc == 0 and os.path.exists(envfile):
        with open(envfile, 'rb') as f:
            pairs = [p.split(b'=', 1) for p in f.read().split(b'\0') if b'=' in p]
        new = {k.decode(): v.decode() for k, v in pairs if k not in (b'_', b'SHLVL', b'PWD',
                                                                       b'OLDPWD')}
        os.unlink(envfile)
    return rc, out, new


def main():
    ap = argparse.ArgumentParser()
    for a in ('--doc', '--stepmarkd', '--cli', '--worker', '--model', '--client', '--out'):
        ap.add_argument(a, required=True)
    args = ap.parse_args()
    with open(args.doc, encoding='utf-8') as f:
        text = f.read()
    steps = blocks(text)
    t = Checks()
    if not t.check('the page has runnable blocks', len(steps) >= 5, len(steps)):
        return 1
    t.check('every code block is a step or marked norun', not unmarked(text), unmarked(text))
    install_client(args.client)
    groups = []
    s = Stack(args, 'walkthrough')
    try:
        s.start_worker()
        work = os.path.join(s.dir, 'work')
        os.makedirs(work)
        os.symlink(os.path.dirname(os.path.abspath(args.client)), os.path.join(work, 'clients'))
        env = dict(s.env)
        env.update(STEPMARK_CONFIG=s.cfg, STEPMARK_ENDPOINT=s.client_ep,
                   STEPMARK_EVENTS=s.event_ep, STEPMARK_SERVER_KEY=s.server_key,
                   STEPMARK_CLIENT_SECRET_KEY_FILE=s.secret, STEPMARK_HTTP_URL=s.http,
                   COURSE='CS101', ASSIGNMENT='hw3',
                   PATH=os.pathsep.join([os.path.dirname(sys.executable),
                                         os.path.dirname(os.path.abspath(args.cli)),
                                         env.get('PATH', '/usr/bin:/bin')]))
        unset = sorted(norun_exports(text) - set(env))
        t.check('the variables of the norun blocks are set by this test', not unset, unset)
        for lang, name, code in steps:
            rc, out, env = run_block(lang, code, env, work, groups)
            if not t.check(f'step {name} ({lang})', rc == 0, f'exit {rc}:\n{out}'):
                break
            print('     ' + out.strip().replace('\n', '\n     ')[:2000])
    finally:
        stop_groups(groups)
        s.close()
    print(f'{t.passed} passed, {t.failed} failed')
    return 1 if t.failed else 0


if __name__ == '__main__':
    sys.exit(main())
