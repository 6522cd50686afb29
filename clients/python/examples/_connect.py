"""Shared by the examples: a client from the command line and the environment.

ZeroMQ with CURVE (the default): $STEPMARK_ENDPOINT (e.g. tcp://grader.example.edu:5555),
$STEPMARK_SERVER_KEY (the broker's public key: Z85 or a .public file) and
$STEPMARK_CLIENT_SECRET_KEY_FILE (this client's NAME.secret from `stepmark keygen`).
HTTP API: --http URL (or $STEPMARK_HTTP_URL) and $STEPMARK_SERVICE_TOKEN."""
import os

import stepmark_client as sm


def add_arguments(ap):
    ap.add_argument('--http', default=os.environ.get('STEPMARK_HTTP_URL'),
                    help='use the HTTP API at this base URL instead of ZeroMQ')


def connect(args):
    if args.http:
        return sm.HttpClient(args.http)  # token from $STEPMARK_SERVICE_TOKEN
    return sm.ZmqClient(os.environ.get('STEPMARK_ENDPOINT', 'tcp://127.0.0.1:5555'),
                        server_key=os.environ.get('STEPMARK_SERVER_KEY'))
