"""lti_services: the LTI Advantage services of the test platform (lti_platform.py), written from
the IMS specifications, not from stepmark's code:

  * OAuth2 token endpoint (IMS Security Framework 1.0 section 4.1, RFC 7523): POST /token with
    grant_type=client_credentials, client_assertion_type=...jwt-bearer and a client_assertion
    JWT; the assertion is verified against the tool's published JWKS (RS256, iss = sub = client
    id, aud = this token URL, exp/iat, a jti used once). Answers {access_token, token_type,
    expires_in, scope}.
  * Assignment and Grade Services 2.0: GET /CTX/lineitems (filters resource_id,
    resource_link_id, tag), POST /CTX/lineitems (media type lineitem+json), POST
    /CTX/lineitems/N/scores (score+json; userId, activityProgress, gradingProgress, timestamp
    required; a score older than the last one for that user is ignored, as the spec allows).
  * Names and Role Provisioning Services 2.0: GET /CTX/memberships (membershipcontainer+json),
    two members a page with a Link rel="next".

Every call needs a bearer token with the right scope. outage('503') or outage('refused')
simulates a platform that is down; outage(None) brings it back on the same port.
"""
import json
import secrets
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

AGS = 'https://purl.imsglobal.org/spec/lti-ags/scope/'
NRPS_SCOPE = 'https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly'
ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
LINEITEM = 'application/vnd.ims.lis.v2.lineitem+json'
LINEITEMS = 'application/vnd.ims.lis.v2.lineitemcontainer+json'
SCORE = 'application/vnd.ims.lis.v1.score+json'
MEMBERS = 'application/vnd.ims.lti-nrps.v2.membershipcontainer+json'
ROLE_URI = {
    'Instructor': 'http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor',
    'Learner': 'http://purl.imsglobal.org/vocab/lis/v2/membership#Learner',
}


class Services:
    def __init__(self, platform):
        self.platform = platform
        self.scopes = [AGS + 'lineitem', AGS + 'lineitem.readonly', AGS + 'result.readonly',
                       AGS + 'score', NRPS_SCOPE]
        self.lock = threading.Lock()
        self.tokens = {}          # token -> set of scopes
        self.token_requests = []  # (ok, reason)
        self.jtis = set()
        self.lineitems = {}       # context -> [item]
        self.scores = []          # every score posted: dict(lineitem, body, applied)
        self.calls = []           # (method, path, status)
        self.mode = None
        self.port = 0
        self._serve()
        self.port = self.server.server_address[1]
        self.base = f'http://127.0.0.1:{self.port}'

    def _serve(self):
        self.server = ThreadingHTTPServer(('127.0.0.1', self.port), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def outage(self, mode):
        """'503': every call answers 503; 'refused': nothing listens; None: back to normal."""
        if mode == 'refused':
            self.close()
        elif self.server is None:
            self._serve()
        self.mode = mode

    def token_url(self):
        return self.base + '/token'

    # ---- OAuth2 ----
    def verify_assertion(self, form):
        if form.get('grant_type') != 'client_credentials':
            return 'unsupported_grant_type'
        if form.get('client_assertion_type') != ASSERTION_TYPE:
            return 'invalid_client: assertion type'
        token = form.get('client_assertion', '')
        try:
            kid = jwt.get_unverified_header(token)['kid']
            with urllib.request.urlopen(self.platform.tool_base + '/lti/jwks.json',
                                        timeout=10) as r:
                keys = json.load(r)['keys']
            jwk = next(k for k in keys if k['kid'] == kid)
            key = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))
            claims = jwt.decode(token, key, algorithms=['RS256'], audience=self.token_url(),
                                issuer=self.platform.client_id,
                                options={'require': ['exp', 'iat', 'jti', 'sub']})
        except Exception as e:  # noqa: BLE001 - the reason goes back to the tool
            return f'invalid_client: {e!r}'
        if claims['sub'] != self.platform.client_id:
            return 'invalid_client: sub'
        with self.lock:
            if claims['jti'] in self.jtis:
                return 'invalid_client: jti replayed'
            self.jtis.add(claims['jti'])
        return None

    def issue(self, form):
        problem = self.verify_assertion(form)
        with self.lock:
            self.token_requests.append((problem is None, problem))
        if problem:
            return 400, {'error': 'invalid_client', 'error_description': problem}
        asked = form.get('scope', '').split()
        granted = [s for s in asked if s in self.scopes]
        if not granted:
            return 400, {'error': 'invalid_scope'}
        tok = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[tok] = set(granted)
        return 200, {'access_token': tok, 'token_type': 'Bearer', 'expires_in': 3600,
                     'scope': ' '.join(granted)}

    def authorized(self, header, *scopes):
        if not header or not header.startswith('Bearer '):
            return 401
        have = self.tokens.get(header[7:])
        if have is None:
            return 401
        return 200 if any(s in have for s in scopes) else 403

    # ---- AGS ----
    def list_items(self, ctx, q):
        items = self.lineitems.get(ctx, [])
        for f, k in (('resource_id', 'resourceId'), ('resource_link_id', 'resourceLinkId'),
                     ('tag', 'tag')):
            if f in q:
                items = [i for i in items if i.get(k) == q[f]]
        return items

    def add_item(self, ctx, body):
        if not isinstance(body.get('scoreMaximum'), (int, float)) or body['scoreMaximum'] <= 0 \
                or not body.get('label'):
            return 400, {'error': 'scoreMaximum > 0 and label are required'}
        with self.lock:
            items = self.lineitems.setdefault(ctx, [])
            item = dict(body, id=f'{self.base}/{ctx}/lineitems/{len(items) + 1}')
            items.append(item)
        return 201, item

    def add_score(self, ctx, n, body):
        item_id = f'{self.base}/{ctx}/lineitems/{n}'
        if not any(i['id'] == item_id for i in self.lineitems.get(ctx, [])):
            return 404, {'error': 'no such line item'}
        for f in ('userId', 'activityProgress', 'gradingProgress', 'timestamp'):
            if f not in body:
                return 400, {'error': f'{f} is required'}
        if 'scoreGiven' in body and 'scoreMaximum' not in body:
            return 400, {'error': 'scoreGiven needs scoreMaximum'}
        with self.lock:
            last = [s for s in self.scores if s['lineitem'] == item_id and s['applied']
                    and s['body']['userId'] == body['userId']]
            stale = bool(last) and last[-1]['body']['timestamp'] > body['timestamp']
            self.scores.append(dict(lineitem=item_id, body=body, applied=not stale))
        return 204, None

    def results(self, lineitem_id):
        """The gradebook: the last applied score of each user."""
        out = {}
        for s in self.scores:
            if s['lineitem'] == lineitem_id and s['applied']:
                out[s['body']['userId']] = s['body']
        return out

    # ---- NRPS ----
    def members(self, ctx, page):
        people = sorted(self.platform.people.items())
        rows = [{'user_id': sub, 'status': 'Active', 'name': p['name'], 'email': p['email'],
                 'lis_person_sourcedid': p['sourcedid'], 'roles': [ROLE_URI[p['role']]]}
                for sub, p in people]
        chunk = rows[(page - 1) * 2:page * 2]
        more = len(rows) > page * 2
        doc = {'id': f'{self.base}/{ctx}/memberships', 'context': {'id': ctx},
               'members': chunk}
        link = f'<{self.base}/{ctx}/memberships?page={page + 1}>; rel="next"' if more else None
        return doc, link

    def _handler(self):
        svc = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, status, doc=None, ctype='application/json', link=None):
                data = json.dumps(doc).encode() if doc is not None else b''
                self.send_response(status)
                if doc is not None:
                    self.send_header('Content-Type', ctype)
                if link:
                    self.send_header('Link', link)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                with svc.lock:
                    svc.calls.append((self.command, self.path, status))

            def body(self):
                n = int(self.headers.get('Content-Length', '0'))
                return self.rfile.read(n).decode()

            def route(self):
                u = urllib.parse.urlparse(self.path)
                return u.path.strip('/').split('/'), dict(urllib.parse.parse_qsl(u.query))

            def do_GET(self):
                if svc.mode == '503':
                    return self.reply(503, {'error': 'down for maintenance'})
                parts, q = self.route()
                auth = self.headers.get('Authorization')
                if len(parts) == 2 and parts[1] == 'lineitems':
                    st = svc.authorized(auth, AGS + 'lineitem', AGS + 'lineitem.readonly')
                    if st != 200:
                        return self.reply(st, {'error': 'unauthorized'})
                    return self.reply(200, svc.list_items(parts[0], q), LINEITEMS)
                if len(parts) == 2 and parts[1] == 'memberships':
                    st = svc.authorized(auth, NRPS_SCOPE)
                    if st != 200:
                        return self.reply(st, {'error': 'unauthorized'})
                    if MEMBERS not in self.headers.get('Accept', ''):
                        return self.reply(406, {'error': 'Accept ' + MEMBERS})
                    doc, link = svc.members(parts[0], int(q.get('page', '1')))
                    return self.reply(200, doc, MEMBERS, link)
                self.reply(404, {'error': 'not found'})

            def do_POST(self):
                if svc.mode == '503':
                    self.body()
                    return self.reply(503, {'error': 'down for maintenance'})
                parts, _ = self.route()
                raw = self.body()
                if parts == ['token']:
                    status, doc = svc.issue(dict(urllib.parse.parse_qsl(raw)))
                    return self.reply(status, doc)
                auth = self.headers.get('Authorization')
                ctype = self.headers.get('Content-Type', '')
                try:
                    body = json.loads(raw)
                except ValueError:
                    return self.reply(400, {'error': 'not JSON'})
                if len(parts) == 2 and parts[1] == 'lineitems':
                    st = svc.authorized(auth, AGS + 'lineitem')
                    if st != 200:
                        return self.reply(st, {'error': 'unauthorized'})
                    if ctype != LINEITEM:
                        return self.reply(415, {'error': 'Content-Type ' + LINEITEM})
                    status, doc = svc.add_item(parts[0], body)
                    return self.reply(status, doc, LINEITEM)
                if len(parts) == 4 and parts[1] == 'lineitems' and parts[3] == 'scores':
                    st = svc.authorized(auth, AGS + 'score')
                    if st != 200:
                        return self.reply(st, {'error': 'unauthorized'})
                    if ctype != SCORE:
                        return self.reply(415, {'error': 'Content-Type ' + SCORE})
                    status, doc = svc.add_score(parts[0], parts[2], body)
                    return self.reply(status, doc)
                self.reply(404, {'error': 'not found'})

        return Handler


def wait_for(cond, timeout=60, step=0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()
