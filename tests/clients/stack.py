"""stack: a real stepmark for the client tests: a fresh database in the cluster of
$STEPMARK_DATABASE_URL (the ctest "pg" fixture), CURVE keys made with `stepmark keygen`,
stepmarkd with CURVE on loopback TCP and its HTTP server, and a real stepmark-worker with the
small seeded model of the worker_model fixture (also over CURVE)."""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'review'))
from test_review import Checks, psql  # noqa: E402,F401


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
    def __init__(self, args, name):
        self.args = args
        self.base_url = os.environ['STEPMARK_DATABASE_URL']
        self.db = f'{name}_{os.getpid()}'
        self.url = db_url(self.base_url, self.db)
        psql(self.base_url, f'DROP DATABASE IF EXISTS {self.db}')
        psql(self.base_url, f'CREATE DATABASE {self.db}')
        self.dir = tempfile.mkdtemp(prefix='smpy-', dir='/tmp')
        self.env = dict(os.environ, STEPMARK_DATABASE_URL=self.url)
        for k in ('STEPMARK_CONFIG', 'STEPMARK_HTTP_PORT', 'STEPMARK_CLIENT_SECRET_KEY_FILE',
                  'STEPMARK_CLIENT_SECRET_KEY'):
            self.env.pop(k, None)
        self.procs = []
        for k in ('broker', 'lms', 'worker', 'stranger'):
            r = self.cli('keygen', '--out', os.path.join(self.dir, k))
            if r.returncode != 0:
                raise RuntimeError('keygen: ' + r.stderr)
        pub = {k: self.key(k + '.public') for k in ('lms', 'worker')}
        with open(os.path.join(self.dir, 'client_keys'), 'w') as f:
            f.write(f'# LMS clients\n{pub["lms"]} lms\n')
        with open(os.path.join(self.dir, 'worker_keys'), 'w') as f:
            f.write(f'{pub["worker"]} worker-1\n')
        self.client_ep = f'tcp://127.0.0.1:{free_port()}'
        self.event_ep = f'tcp://127.0.0.1:{free_port()}'
        worker_ep = f'tcp://127.0.0.1:{free_port()}'
        self.http_port = free_port()
        self.http = f'http://127.0.0.1:{self.http_port}'
        self.server_key = os.path.join(self.dir, 'broker.public')
        self.secret = os.path.join(self.dir, 'lms.secret')
        self.cfg = os.path.join(self.dir, 'stepmark.yaml')
        d = self.dir
        with open(self.cfg, 'w') as f:
            f.write(f'''broker:
  client_endpoint: "{self.client_ep}"
  worker_endpoint: "{worker_ep}"
  event_endpoint: "{self.event_ep}"
  heartbeat_ms: 200
  heartbeat_timeout_ms: 5000
  curve:
    enabled: true
    secret_key_file: "{d}/broker.secret"
    public_key_file: "{d}/broker.public"
    client_keys_file: "{d}/client_keys"
    worker_keys_file: "{d}/worker_keys"
worker:
  name: pyc-worker
  broker_endpoint: "{worker_ep}"
  model: "{args.model}"
  dtype: f32
  isa: portable
  threads: 1
  slots: 4
  max_prompt_tokens: 4096
  max_new_tokens: 16
  samples: 1
  deterministic: true
  metrics_port: {free_port()}
  sampling:
    temperature: 0.8
  curve:
    enabled: true
    secret_key_file: "{d}/worker.secret"
    server_public_key: "{d}/broker.public"
http:
  enabled: true
  address: 127.0.0.1
  port: {self.http_port}
logging:
  level: info
''')
        r = self.cli('migrate')
        if r.returncode != 0:
            raise RuntimeError('stepmark migrate failed: ' + r.stderr + r.stdout)
        self.broker = self.spawn('stepmarkd', [args.stepmarkd, '--config', self.cfg])
        self.wait_http()
        self.worker = None

    def key(self, name):
        with open(os.path.join(self.dir, name)) as f:
            return [ln for ln in f.read().split('\n') if ln and not ln.startswith('#')][0]

    def cli(self, *argv, check=False):
        r = subprocess.run([self.args.cli, *argv], env=self.env, capture_output=True, text=True,
                           timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError(f'stepmark {" ".join(argv)}: {r.stderr}')
        return r

    def spawn(self, name, argv):
        log = open(os.path.join(self.args.out, f'{self.db}-{name}.log'), 'w')
        p = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=log)
        self.procs.append((p, log))
        return p

    def start_worker(self):
        self.worker = self.spawn('worker', [self.args.worker, '--config', self.cfg])

    def wait_http(self):
        deadline = time.time() + 60
        while True:
            if self.broker.poll() is not None:
                raise RuntimeError(f'stepmarkd exited with {self.broker.returncode}')
            try:
                urllib.request.urlopen(self.http + '/metrics', timeout=5).read()
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.time() > deadline:
                    raise RuntimeError('stepmarkd HTTP did not answer in 60 s')
                time.sleep(0.2)

    def sql(self, q):
        return psql(self.url, q)

    def close(self):
        for p, log in reversed(self.procs):
            try:
                p.terminate()
                p.wait(timeout=30)
            except Exception:
                p.kill()
            log.close()
        try:
            psql(self.base_url, f'DROP DATABASE IF EXISTS {self.db} WITH (FORCE)')
        except Exception as e:
            print('warning: cannot drop test database:', e)
        shutil.rmtree(self.dir, ignore_errors=True)


def install_client(src):
    """pip install -e the client into this interpreter's environment (the repo's .venv),
    without network: its dependencies (pyzmq, requests) come from tests/requirements.txt."""
    r = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--disable-pip-version-check',
                        '--no-deps', '--no-build-isolation', '-e', src],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError('pip install -e ' + src + ' failed:\n' + r.stdout + r.stderr)
    # An editable install is a .pth file that Python reads at start-up; a first install must
    # be made visible to this running interpreter too.
    import importlib
    import site
    import sysconfig
    site.addsitedir(sysconfig.get_paths()['purelib'])
    importlib.invalidate_caches()
