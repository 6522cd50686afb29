"""lti_platform: a small LTI 1.3 platform (an LMS stand-in) for the tests, written from the IMS
specifications (LTI Core 1.3, Security Framework 1.0, Deep Linking 2.0), not from stepmark's
code. It signs id_tokens with its RSA key (PyJWT + cryptography), serves its JWKS, answers the
OIDC authentication request with an auto-posting form (response_mode=form_post) and receives
deep linking responses, verifying the tool's JWT against the tool's own JWKS.

A test prepares a launch (who, which role, which message, and optionally a fault to inject),
then opens its start URL in a browser: the platform's page posts the third-party login
initiation to the tool, the tool redirects to /auth here, and the id_token comes back to the
tool's redirect_uri.

LTI Advantage services (Services: a second HTTP server, so that it can be taken down): the
OAuth2 token endpoint (Security Framework 4.1: client credentials with a JWT client assertion,
verified against the tool's JWKS), Assignment and Grade Services 2.0 (line items container
GET/POST, per-line-item scores POST, recorded) and Names and Role Provisioning Services 2.0
(membership container with paging). outage('503') answers every service call with 503,
outage('refused') closes the socket, outage(None) ends it.
"""
import html
import json
import secrets
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lti_services import Services

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLAIM = 'https://purl.imsglobal.org/spec/lti/claim/'
DL = 'https://purl.imsglobal.org/spec/lti-dl/claim/'
ROLE = {
    'Instructor': 'http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor',
    'TA': 'http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant',
    'Learner': 'http://purl.imsglobal.org/vocab/lis/v2/membership#Learner',
}


def new_key(kid):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=kid, alg='RS256', use='sig')
    return key, jwk


class Platform:
    """The LMS. faults of a launch: wrong_sig, unknown_kid, expired, replay_nonce, wrong_aud,
    unknown_deployment, no_roles, bad_state."""

    def __init__(self, client_id='stepmark-client', deployment='dep-1'):
        self.client_id, self.deployment = client_id, deployment
        self.keys = [new_key('plat-1')]
        self.rogue = new_key('rogue-1')  # never published
        self.launches = {}
        self.used_nonces = []
        self.deep_links = []  # verified deep linking responses (claims)
        self.last_dl_kid = None
        self.tool_base = None
        self.server = ThreadingHTTPServer(('127.0.0.1', 0), self._handler())
        self.base = f'http://127.0.0.1:{self.server.server_address[1]}'
        self.issuer = self.base
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.services = Services(self)
        self.people = {}  # sub -> dict(name, email, sourcedid, role), the course roster

    def close(self):
        self.server.shutdown()
        self.services.close()

    def rotate(self):
        """A new platform key, published next to the old one and used from now on."""
        self.keys.insert(0, new_key(f'plat-{len(self.keys) + 1}'))

    def jwks(self):
        return {'keys': [jwk for _, jwk in self.keys]}

    def prepare(self, user, role, context='ctx-1', link='link-1', message='LtiResourceLinkRequest',
                fault=None, custom=None, dl_data='opaque-dl-data'):
        """A launch to start at start_url(hint); returns the hint."""
        hint = secrets.token_hex(8)
        self.launches[hint] = dict(user=user, role=role, context=context, link=link,
                                   message=message, fault=fault, custom=custom, dl_data=dl_data)
        return hint

    def start_url(self, hint, get=False):
        """The LMS page that starts the launch: a POSTed login initiation, or with get a
        redirect to a GET one without client_id (both are allowed by the specification)."""
        return f'{self.base}/start?hint={hint}' + ('&get=1' if get else '')

    # ---- the id_token ----
    def id_token(self, launch, nonce):
        now = int(time.time())
        claims = {
            'iss': self.issuer, 'aud': [self.client_id], 'azp': self.client_id,
            'sub': launch['user'], 'iat': now, 'exp': now + 300, 'nonce': nonce,
            'name': f'{launch["user"].title()} Person', 'email': f'{launch["user"]}@school.example',
            CLAIM + 'message_type': launch['message'], CLAIM + 'version': '1.3.0',
            CLAIM + 'deployment_id': self.deployment,
            CLAIM + 'target_link_uri': self.tool_base + '/lti/launch',
            CLAIM + 'roles': [ROLE[launch['role']]],
            CLAIM + 'context': {'id': launch['context'], 'label': 'ALG1',
                                'title': 'Algebra One', 'type': ['CourseSection']},
        }
        if launch['message'] == 'LtiResourceLinkRequest':
            claims[CLAIM + 'resource_link'] = {'id': launch['link'], 'title': 'Homework'}
        else:
            claims[DL + 'deep_linking_settings'] = {
                'deep_link_return_url': self.base + '/dl-return',
                'accept_types': ['ltiResourceLink'], 'accept_presentation_document_targets':
                ['window'], 'data': launch['dl_data']}
        if launch['custom']:
            claims[CLAIM + 'custom'] = launch['custom']
        person = self.people.get(launch['user'])
        if person:
            claims['name'], claims['email'] = person['name'], person['email']
            claims[CLAIM + 'lis'] = {'person_sourcedid': person['sourcedid']}
        if launch.get('services', True):
            svc = self.services.base
            claims['https://purl.imsglobal.org/spec/lti-ags/claim/endpoint'] = {
                'scope': list(self.services.scopes),
                'lineitems': f'{svc}/{launch["context"]}/lineitems'}
            claims['https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice'] = {
                'context_memberships_url': f'{svc}/{launch["context"]}/memberships',
                'service_versions': ['2.0']}
        key, jwk = self.keys[0]
        fault = launch['fault']
        if fault == 'expired':
            claims['iat'], claims['exp'] = now - 7200, now - 3600
        elif fault == 'replay_nonce':
            claims['nonce'] = self.used_nonces[0]
        elif fault == 'wrong_aud':
            claims['aud'], claims['azp'] = ['another-tool'], 'another-tool'
        elif fault == 'unknown_deployment':
            claims[CLAIM + 'deployment_id'] = 'dep-unknown'
        elif fault == 'no_roles':
            del claims[CLAIM + 'roles']
        kid = jwk['kid']
        if fault == 'wrong_sig':
            key = self.rogue[0]  # the platform's kid, another key's signature
        elif fault == 'unknown_kid':
            key, kid = self.rogue[0], self.rogue[1]['kid']
        self.used_nonces.append(claims['nonce'])
        return jwt.encode(claims, key, algorithm='RS256', headers={'kid': kid})

    # ---- deep linking responses ----
    def verify_deep_link(self, token):
        """The tool's JWT, checked against the tool's published JWKS (Deep Linking 2.0)."""
        kid = jwt.get_unverified_header(token)['kid']
        with urllib.request.urlopen(self.tool_base + '/lti/jwks.json', timeout=10) as r:
            keys = json.load(r)['keys']
        jwk = next(k for k in keys if k['kid'] == kid)
        self.last_dl_kid = kid
        key = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))
        claims = jwt.decode(token, key, algorithms=['RS256'], audience=self.issuer,
                            issuer=self.client_id, options={'require': ['exp', 'iat', 'nonce']})
        if claims.get(CLAIM + 'message_type') != 'LtiDeepLinkingResponse':
            raise ValueError('not a deep linking response')
        if claims.get(CLAIM + 'version') != '1.3.0':
            raise ValueError('wrong version')
        if claims.get(CLAIM + 'deployment_id') != self.deployment:
            raise ValueError('wrong deployment')
        return claims

    def _handler(self):
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def page(self, status, body, ctype='text/html; charset=utf-8'):
                data = body.encode()
                self.send_response(status)
                self.send_header('Content-Type', ctype)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def autopost(self, action, fields, title):
                inputs = ''.join(f'<input type="hidden" name="{html.escape(k)}" '
                                 f'value="{html.escape(v)}">' for k, v in fields.items())
                self.page(200, f'<!doctype html><title>{title}</title><form id="f" method="post" '
                               f'action="{html.escape(action)}">{inputs}</form>'
                               '<script>document.getElementById("f").submit()</script>')

            def do_GET(self):
                u = urllib.parse.urlparse(self.path)
                q = dict(urllib.parse.parse_qsl(u.query))
                if u.path == '/jwks':
                    return self.page(200, json.dumps(platform.jwks()), 'application/json')
                if u.path == '/start' and q.get('get'):  # login initiation as a GET
                    self.send_response(302)
                    self.send_header('Location', platform.tool_base + '/lti/login?' +
                                     urllib.parse.urlencode({
                                         'iss': platform.issuer, 'login_hint': q['hint'],
                                         'target_link_uri': platform.tool_base + '/lti/launch',
                                         'lti_message_hint': q['hint']}))
                    self.send_header('Content-Length', '0')
                    return self.end_headers()
                if u.path == '/start':  # third-party initiated login, as a form POST
                    return self.autopost(platform.tool_base + '/lti/login', {
                        'iss': platform.issuer, 'login_hint': q['hint'],
                        'target_link_uri': platform.tool_base + '/lti/launch',
                        'lti_message_hint': q['hint'], 'client_id': platform.client_id,
                        'lti_deployment_id': platform.deployment}, 'LMS')
                if u.path == '/auth':
                    return self.auth(q)
                self.page(404, 'not found')

            def auth(self, q):
                """The OIDC authentication request (Security Framework 5.1.1.2)."""
                launch = platform.launches.get(q.get('lti_message_hint', ''))
                problems = []
                if q.get('scope') != 'openid' or q.get('response_type') != 'id_token':
                    problems.append('scope/response_type')
                if q.get('response_mode') != 'form_post' or q.get('prompt') != 'none':
                    problems.append('response_mode/prompt')
                if q.get('client_id') != platform.client_id:
                    problems.append('client_id')
                if q.get('redirect_uri') != platform.tool_base + '/lti/launch':
                    problems.append('redirect_uri')
                if not launch or q.get('login_hint') != q.get('lti_message_hint'):
                    problems.append('login_hint')
                if not q.get('nonce') or not q.get('state'):
                    problems.append('nonce/state')
                if problems:
                    return self.page(400, 'bad authentication request: ' + ', '.join(problems))
                state = q['state']
                if launch['fault'] == 'bad_state':
                    state = secrets.token_hex(32)
                self.autopost(q['redirect_uri'], {'id_token': platform.id_token(launch, q['nonce']),
                                                  'state': state}, 'LMS')

            def do_POST(self):
                n = int(self.headers.get('Content-Length', '0'))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(n).decode()))
                if self.path != '/dl-return':
                    return self.page(404, 'not found')
                try:
                    claims = platform.verify_deep_link(form.get('JWT', ''))
                except Exception as e:  # noqa: BLE001 - shown on the page for the test
                    return self.page(400, f'<p id="dl-error">{html.escape(repr(e))}</p>')
                platform.deep_links.append(claims)
                items = claims.get(DL + 'content_items', [])
                titles = ', '.join(html.escape(i.get('title', '')) for i in items)
                self.page(200, f'<!doctype html><title>LMS</title><p id="dl-ok">Added: {titles}'
                               '</p>')

        return Handler
