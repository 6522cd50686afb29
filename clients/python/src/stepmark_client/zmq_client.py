"""The ZeroMQ client (docs/protocol.md): SMC1 requests on a DEALER socket, with CURVE, and
event subscription (SME1) on a SUB socket.

Requests follow the "lazy pirate" pattern: when no reply comes within `timeout`, the socket
is closed, a new one opened and the same request sent again, `retries` times; then Timeout.
Every client request is safe to repeat (SUBMIT carries an idempotency key). A client object
is not thread-safe: use one per thread.
"""
import itertools
import json
import os
import time

import zmq

from . import keys
from ._base import ClientBase, Page, Submitted
from .errors import Timeout, error_for

PROTOCOL = b"SMC1"
EVENTS = b"SME1"


def _curve(sock, server_key, secret_key_file, secret_key):
    """Makes `sock` a CURVE client when a server key is given."""
    if server_key is None:
        if secret_key_file or secret_key:
            raise ValueError("a client key needs the broker's public key (server_key)")
        return
    if secret_key is None:
        secret_key_file = secret_key_file or os.environ.get("STEPMARK_CLIENT_SECRET_KEY_FILE")
        if secret_key_file:
            secret_key = keys.read_secret(secret_key_file)
        else:
            secret_key = os.environ.get("STEPMARK_CLIENT_SECRET_KEY", "").encode() or None
    if not secret_key:
        raise ValueError("CURVE needs the client's secret key (secret_key_file, "
                         "$STEPMARK_CLIENT_SECRET_KEY_FILE or $STEPMARK_CLIENT_SECRET_KEY)")
    if isinstance(secret_key, str):
        secret_key = secret_key.encode("ascii")
    sock.curve_serverkey = keys.key_arg(server_key)
    sock.curve_secretkey = secret_key
    sock.curve_publickey = keys.public_of(secret_key)


class ZmqClient(ClientBase):
    """A client of the broker's client endpoint.

    endpoint: e.g. "tcp://grader.example.edu:5555" or "ipc:///run/stepmark/client".
    server_key: the broker's public key (Z85 text or a .public file); None without CURVE.
    secret_key_file: this client's NAME.secret from `stepmark keygen` (or secret_key: the
    Z85 text itself; or the environment variables the CLI reads).
    timeout: seconds to wait for each reply; retries: how many times to resend.
    """

    def __init__(self, endpoint, server_key=None, secret_key_file=None, secret_key=None,
                 timeout=10.0, retries=2, context=None):
        self.endpoint = endpoint
        self.timeout = timeout
        self.retries = retries
        self._ctx = context or zmq.Context.instance()
        self._curve = (server_key, secret_key_file, secret_key)
        self._ids = itertools.count(1)
        self._sock = None
        self._open()  # fails now, not at the first request, on bad keys

    def _open(self):
        sock = self._ctx.socket(zmq.DEALER)
        sock.linger = 0
        try:
            _curve(sock, *self._curve)
            sock.connect(self.endpoint)
        except BaseException:
            sock.close()
            raise
        self._sock = sock

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, command, body=None):
        """Sends one request and returns the reply body (a dict); raises the ServiceError of
        an ERROR reply, or Timeout."""
        data = json.dumps(body or {}, ensure_ascii=False).encode("utf-8")
        for attempt in range(self.retries + 1):
            if self._sock is None:
                self._open()
            corr = str(next(self._ids)).encode()
            self._sock.send_multipart([b"", PROTOCOL, command.encode("ascii"), corr, data])
            reply = self._receive(corr)
            if reply is not None:
                return self._decode(reply)
            self.close()  # lazy pirate: a fresh socket for the next try
        raise Timeout(f"no reply to {command} from {self.endpoint} after {self.retries + 1} "
                      f"tries of {self.timeout} s (broker down, or CURVE key not admitted?)")

    def _receive(self, corr):
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        deadline_ms = int(self.timeout * 1000)
        while deadline_ms > 0:
            t0 = time.monotonic()
            if not poller.poll(deadline_ms):
                return None
            frames = self._sock.recv_multipart()
            deadline_ms -= int((time.monotonic() - t0) * 1000)
            if len(frames) == 5 and frames[3] == corr:
                return frames
        return None

    @staticmethod
    def _decode(frames):
        _, proto, command, _, body = frames
        try:
            doc = json.loads(body.decode("utf-8"))
        except ValueError:
            doc = {}
        if command == b"OK":
            return doc
        raise error_for(doc.get("code"), doc.get("message"), doc.get("retryable", False))

    # ---- the commands
    def ping(self):
        return self.call("PING")

    def submit(self, course, assignment, student_ref, idempotency_key, content, language=None,
               priority=None, kind=None):
        body = {"course": course, "assignment": assignment, "student_ref": student_ref,
                "idempotency_key": idempotency_key, "content": content}
        for k, v in (("language", language), ("priority", priority), ("kind", kind)):
            if v is not None:
                body[k] = v
        r = self.call("SUBMIT", body)
        return Submitted(int(r["submission_id"]), bool(r.get("duplicate")))

    def status(self, submission_id=None, idempotency_key=None):
        if (submission_id is None) == (idempotency_key is None):
            raise ValueError("give either submission_id or idempotency_key")
        if submission_id is not None:
            return self.call("STATUS", {"submission_id": int(submission_id)})
        return self.call("STATUS", {"idempotency_key": idempotency_key})

    def result(self, submission_id, reasoning=False):
        return self.call("RESULT", {"submission_id": int(submission_id),
                                    "reasoning": bool(reasoning)})

    def cancel(self, submission_id):
        return self.call("CANCEL", {"submission_id": int(submission_id)})

    def list(self, course, assignment, cursor=None, updated_since=None, limit=None):
        body = {"course": course, "assignment": assignment}
        if cursor:
            body["cursor"] = cursor
        elif updated_since:
            body["updated_since"] = updated_since
        if limit:
            body["limit"] = int(limit)
        return Page.from_json(self.call("LIST", body))

    def put_course(self, code, title=None):
        body = {"code": code}
        if title is not None:
            body["title"] = title
        return self.call("COURSE_PUT", body)

    def create_assignment(self, course, code, **fields):
        return self.call("ASSIGNMENT_CREATE", dict(fields, course=course, code=code))

    def update_assignment(self, course, code, **fields):
        return self.call("ASSIGNMENT_UPDATE", dict(fields, course=course, code=code))

    def get_assignment(self, course, code):
        return self.call("ASSIGNMENT_GET", {"course": course, "code": code})


class Event(dict):
    """One event: its topic ("COURSE/ASSIGNMENT/KIND") and body (this dict itself)."""

    def __init__(self, topic, body):
        super().__init__(body)
        self.topic = topic

    @property
    def kind(self):
        return self.get("event") or self.topic.rsplit("/", 1)[-1]


class Subscriber:
    """Events from the broker's event endpoint (PUB): `topics` are prefixes such as "CS101/"
    (a course) or "CS101/hw3/" (an assignment); none means every event. Events are
    notifications and may be dropped: STATUS and LIST are the record."""

    def __init__(self, endpoint, topics=("",), server_key=None, secret_key_file=None,
                 secret_key=None, context=None):
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.linger = 0
        try:
            _curve(self._sock, server_key, secret_key_file, secret_key)
            self._monitor = self._sock.get_monitor_socket(
                zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_CONNECTED)
            self._secure = server_key is not None
            for t in topics:
                self._sock.setsockopt(zmq.SUBSCRIBE, t.encode("utf-8"))
            self._sock.connect(endpoint)
        except BaseException:
            self._sock.close()
            raise
        self._ready = False

    def wait_connected(self, timeout=10.0):
        """Waits until the connection (with CURVE: the handshake) is made; True when it is.
        Events published before then are not delivered."""
        from zmq.utils.monitor import recv_monitor_message
        want = zmq.EVENT_HANDSHAKE_SUCCEEDED if self._secure else zmq.EVENT_CONNECTED
        poller = zmq.Poller()
        poller.register(self._monitor, zmq.POLLIN)
        deadline = time.monotonic() + timeout
        while not self._ready:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(int(left * 1000)):
                return False
            if recv_monitor_message(self._monitor)["event"] == want:
                self._ready = True
        return True

    def recv(self, timeout=None):
        """The next event, or None after `timeout` seconds (None: wait for ever)."""
        if timeout is not None and not self._sock.poll(int(timeout * 1000)):
            return None
        frames = self._sock.recv_multipart()
        if len(frames) != 3 or frames[1] != EVENTS:
            return self.recv(timeout)  # not an SME1 event: skip it
        return Event(frames[0].decode("utf-8", "replace"), json.loads(frames[2]))

    def __iter__(self):
        while True:
            yield self.recv()

    def close(self):
        self._sock.disable_monitor()
        self._monitor.close()
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
