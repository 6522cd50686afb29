/* lti_launch: the LTI 1.3 routes of stepmarkd (/lti/...), the OIDC login initiation and the
 * launch: the platform's id_token is checked (RS256 against the platform's JWKS, issuer,
 * audience and azp, deployment, exp and iat with lti.clock_skew_seconds, a nonce that is used
 * once, the state bound to the browser by a cookie, message type, version, roles) before
 * lti_pages.c acts on it. Every refusal is a clear page and a log line. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lti_internal.h"
#include "sm_db.h"
#include "sm_log.h"
#include "sm_lti.h"
#include "sm_sha256.h"

#define LTI_FORM_MAX_BODY (64 * 1024) /* an id_token with its claims */
#define CLAIM "https://purl.imsglobal.org/spec/lti/claim/"

bool http_lti_admit(http_req *rq, http_resp *rs)
{
    (void)rs;
    rq->form = true;
    rq->body_limit = LTI_FORM_MAX_BODY;
    return true;
}

/* A request parameter: the query string for GET, the form body for POST (malloc'd). */
static char *param(http_req *rq, bool post, const char *name)
{
    if (post)
        return rq->body ? lti_form_get(rq->body, name) : NULL;
    const char *v = http_arg(rq, name);
    return v ? strdup(v) : NULL;
}

/* The platform registered with this issuer (and client id, when given). */
typedef struct login_platform {
    char id[24];
    char auth_url[LTI_URL_MAX];
    char client_id[512]; /* as registered: the login may omit it */
} login_platform;

static bool find_platform(PGconn *db, const char *iss, const char *client_id, login_platform *lp,
                          sm_err *err)
{
    const char *p[] = {iss, client_id ? client_id : ""};
    PGresult *r = NULL;
    if (sm_db_query(db,
                    "SELECT id, auth_url, client_id FROM lti_platform WHERE issuer = $1 AND "
                    "($2 = '' OR client_id = $2) ORDER BY id",
                    2, p, &r, err) != SM_OK)
        return false;
    bool one = PQntuples(r) == 1; /* one issuer, several client ids: the login must name one */
    if (one) {
        snprintf(lp->id, sizeof lp->id, "%s", PQgetvalue(r, 0, 0));
        snprintf(lp->auth_url, sizeof lp->auth_url, "%s", PQgetvalue(r, 0, 1));
        snprintf(lp->client_id, sizeof lp->client_id, "%s", PQgetvalue(r, 0, 2));
    }
    PQclear(r);
    return one;
}

/* Appends "&name=urlencoded(value)" (or "?" first) to a growing URL. */
static void url_add(char *url, size_t cap, const char *name, const char *value)
{
    size_t len = strlen(url);
    const char *sep = strchr(url, '?') ? "&" : "?";
    len += (size_t)snprintf(url + len, len < cap ? cap - len : 0, "%s%s=", sep, name);
    for (const unsigned char *v = (const unsigned char *)value; *v && len + 4 < cap; v++) {
        if ((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') || (*v >= '0' && *v <= '9') ||
            *v == '-' || *v == '_' || *v == '.' || *v == '~')
            url[len++] = (char)*v;
        else
            len += (size_t)snprintf(url + len, cap - len, "%%%02X", *v);
    }
    if (len < cap)
        url[len] = '\0';
}

typedef struct login_in {
    char *iss, *login_hint, *target, *msg_hint, *client_id, *deployment;
} login_in;

static void login_in_free(login_in *in)
{
    free(in->iss);
    free(in->login_hint);
    free(in->target);
    free(in->msg_hint);
    free(in->client_id);
    free(in->deployment);
}

/* Stores a new state (bound to a new browser cookie) and nonce for the platform. */
static sm_code new_state(PGconn *db, const char *platform_id, char state[65], char cookie[65],
                         char nonce[65], sm_err *err)
{
    sm_code rc = sm_random_hex(32, state, err);
    if (rc == SM_OK)
        rc = sm_random_hex(32, cookie, err);
    if (rc == SM_OK)
        rc = sm_random_hex(32, nonce, err);
    if (rc != SM_OK)
        return rc;
    char sh[SM_SHA256_HEX], ch[SM_SHA256_HEX], secs[16];
    sm_sha256_hex(state, 64, sh);
    sm_sha256_hex(cookie, 64, ch);
    snprintf(secs, sizeof secs, "%d", LTI_STATE_SECONDS);
    const char *p[] = {sh, ch, nonce, platform_id, secs};
    rc = sm_db_exec(db, "DELETE FROM lti_state WHERE expires_at < now()", err);
    if (rc == SM_OK)
        rc = sm_db_query(db,
                         "INSERT INTO lti_state (state_hash, browser_hash, nonce, platform_id, "
                         "expires_at) VALUES ($1, $2, $3, $4::bigint, now() + "
                         "make_interval(secs => $5::int))",
                         5, p, NULL, err);
    return rc;
}

/* GET or POST /lti/login: the platform's third-party login initiation (OIDC). */
static void lti_login(http_req *rq, http_resp *rs, bool post)
{
    login_in in = {param(rq, post, "iss"),
                   param(rq, post, "login_hint"),
                   param(rq, post, "target_link_uri"),
                   param(rq, post, "lti_message_hint"),
                   param(rq, post, "client_id"),
                   param(rq, post, "lti_deployment_id")};
    login_platform lp;
    char base[LTI_URL_MAX];
    char state[65], cookie[65], nonce[65];
    sm_err err = {0};
    PGconn *db = NULL;
    lti_base_url(rq, base, sizeof base);
    size_t nb = strlen(base);
    if (!in.iss || !in.login_hint || !in.target) {
        lti_refuse(rq, rs, 400, "login without iss, login_hint or target_link_uri",
                   "The LMS started the login without the required parameters.");
    } else if (strncmp(in.target, base, nb) != 0 || (in.target[nb] && in.target[nb] != '/')) {
        lti_refuse(rq, rs, 400, "target_link_uri is not this tool",
                   "The LMS asked to launch another address than this stepmark server. Check "
                   "http.public_url and the tool URL configured in the LMS.");
    } else if (!(db = http_db(rq, rs))) {
        /* 503 filled */
    } else if (!find_platform(db, in.iss, in.client_id, &lp, &err)) {
        if (err.code != SM_OK)
            http_db_failed(rs, &err);
        else
            lti_refuse(rq, rs, 400, "unknown platform",
                       "This LMS (issuer and client id) is not registered with stepmark. "
                       "The operator registers it with `stepmark lti platform add`.");
    } else if (new_state(db, lp.id, state, cookie, nonce, &err) != SM_OK) {
        http_db_failed(rs, &err);
    } else {
        char url[4 * LTI_URL_MAX];
        snprintf(base + nb, sizeof base - nb, "/lti/launch");
        snprintf(url, sizeof url, "%s", lp.auth_url);
        url_add(url, sizeof url, "scope", "openid");
        url_add(url, sizeof url, "response_type", "id_token");
        url_add(url, sizeof url, "response_mode", "form_post");
        url_add(url, sizeof url, "prompt", "none");
        url_add(url, sizeof url, "client_id", lp.client_id);
        url_add(url, sizeof url, "redirect_uri", base);
        url_add(url, sizeof url, "login_hint", in.login_hint);
        url_add(url, sizeof url, "state", state);
        url_add(url, sizeof url, "nonce", nonce);
        if (in.msg_hint)
            url_add(url, sizeof url, "lti_message_hint", in.msg_hint);
        char c[256];
        /* Cross-site POST from the LMS must carry the cookie: SameSite=None needs Secure
         * (HTTPS). Over plain HTTP (loopback, development) the platform must be same-site. */
        snprintf(c, sizeof c, "%s=%s; Path=/lti/; HttpOnly; Max-Age=%d; %s", LTI_STATE_COOKIE,
                 cookie, LTI_STATE_SECONDS,
                 lti_secure(rq) ? "SameSite=None; Secure" : "SameSite=Lax");
        rs->set_cookie = strdup(c);
        http_resp_text(rs, 302, "text/plain; charset=utf-8", strdup("redirecting\n"), 12);
        rs->location = strdup(url);
        sm_log(SM_LOG_INFO, "lti login", "platform", lp.id, "client", rq->client, NULL);
    }
    login_in_free(&in);
}

/* The state row of this state, taken (deleted: single use); checks the browser's cookie. */
static bool take_state(http_req *rq, http_resp *rs, PGconn *db, const char *state,
                       char platform_id[24], char nonce[65])
{
    const char *cookie = MHD_lookup_connection_value(rq->conn, MHD_COOKIE_KIND, LTI_STATE_COOKIE);
    char sh[SM_SHA256_HEX], ch[SM_SHA256_HEX] = "";
    sm_sha256_hex(state, strlen(state), sh);
    if (cookie)
        sm_sha256_hex(cookie, strlen(cookie), ch);
    const char *p[] = {sh, ch};
    PGresult *r = NULL;
    sm_err err = {0};
    /* Deleted only when the browser matches: a stranger's POST cannot burn a real state. */
    if (sm_db_query(db,
                    "DELETE FROM lti_state WHERE state_hash = $1 AND browser_hash = $2 AND "
                    "expires_at > now() RETURNING platform_id, nonce",
                    2, p, &r, &err) != SM_OK) {
        http_db_failed(rs, &err);
        return false;
    }
    bool ok = PQntuples(r) == 1;
    if (ok) {
        snprintf(platform_id, 24, "%s", PQgetvalue(r, 0, 0));
        snprintf(nonce, 65, "%s", PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    if (!ok)
        lti_refuse(rq, rs, 400, "state mismatch",
                   "This launch does not belong to a login started in this browser (or it took "
                   "too long). Start it again from the LMS; if it keeps failing, allow cookies "
                   "for this site.");
    return ok;
}

typedef struct platform_row {
    char issuer[512], client_id[512], jwks_url[LTI_URL_MAX];
} platform_row;

static bool load_platform(PGconn *db, const char *id, platform_row *p, sm_err *err)
{
    const char *q[] = {id};
    PGresult *r = NULL;
    if (sm_db_query(db,
                    "SELECT issuer, client_id, jwks_url FROM lti_platform WHERE id = $1::bigint", 1,
                    q, &r, err) != SM_OK)
        return false;
    bool ok = PQntuples(r) == 1;
    if (ok) {
        snprintf(p->issuer, sizeof p->issuer, "%s", PQgetvalue(r, 0, 0));
        snprintf(p->client_id, sizeof p->client_id, "%s", PQgetvalue(r, 0, 1));
        snprintf(p->jwks_url, sizeof p->jwks_url, "%s", PQgetvalue(r, 0, 2));
    } else {
        sm_err_set(err, SM_ENOTFOUND, "the platform was removed");
    }
    PQclear(r);
    return ok;
}

static bool str_eq(const json_t *v, const char *s)
{
    const char *x = json_string_value(v);
    return x && strcmp(x, s) == 0;
}

/* aud (a string or an array) holds client_id; with several audiences azp must be ours. */
static bool audience_ok(const json_t *claims, const char *client_id)
{
    const json_t *aud = json_object_get(claims, "aud"), *azp = json_object_get(claims, "azp");
    bool found = str_eq(aud, client_id);
    size_t i, n = json_is_array(aud) ? json_array_size(aud) : 0;
    json_t *a;
    json_array_foreach(aud, i, a) found = found || str_eq(a, client_id);
    if (azp && !str_eq(azp, client_id))
        return false;
    return found && (n <= 1 || azp);
}

/* A claim check failed: the reason for the log, the detail for the page. */
typedef struct lti_check {
    const char *reason;
    const char *detail;
} lti_check;

/* exp, iat, audience, deployment, message type, version, roles. */
static bool claims_ok(PGconn *db, const char *pid, const platform_row *p, const json_t *c,
                      int64_t skew, lti_check *why, sm_err *err)
{
    time_t now = time(NULL);
    json_t *exp = json_object_get(c, "exp"), *iat = json_object_get(c, "iat");
    const char *type = json_string_value(json_object_get(c, CLAIM "message_type"));
    *why = (lti_check){0};
    if (!str_eq(json_object_get(c, "iss"), p->issuer))
        *why = (lti_check){"wrong issuer", "The token was issued by another platform."};
    else if (!audience_ok(c, p->client_id))
        *why = (lti_check){"wrong audience", "The token is meant for another tool (audience)."};
    else if (!json_is_integer(exp) || json_integer_value(exp) + skew < now)
        *why = (lti_check){"expired token", "The launch token has expired. Launch again."};
    else if (!json_is_integer(iat) || json_integer_value(iat) - skew > now)
        *why = (lti_check){"bad issued-at", "The launch token is dated in the future; check "
                                            "the clocks of the LMS and of stepmark."};
    else if (!json_is_string(json_object_get(c, "sub")) ||
             !json_string_length(json_object_get(c, "sub")))
        *why = (lti_check){"no user", "Anonymous launches are not supported."};
    else if (!type || (strcmp(type, "LtiResourceLinkRequest") != 0 &&
                       strcmp(type, "LtiDeepLinkingRequest") != 0))
        *why = (lti_check){"unsupported message type", "stepmark does not handle this kind of "
                                                       "LTI message."};
    else if (!str_eq(json_object_get(c, CLAIM "version"), "1.3.0"))
        *why = (lti_check){"wrong LTI version", "Only LTI 1.3.0 launches are accepted."};
    else if (!json_is_array(json_object_get(c, CLAIM "roles")))
        *why = (lti_check){"missing roles claim", "The launch does not say the user's role."};
    if (why->reason)
        return false;
    const char *dep = json_string_value(json_object_get(c, CLAIM "deployment_id"));
    const char *q[] = {pid, dep ? dep : ""};
    PGresult *r = NULL;
    if (sm_db_query(db,
                    "SELECT 1 FROM lti_deployment WHERE platform_id = $1::bigint AND "
                    "deployment_id = $2",
                    2, q, &r, err) != SM_OK)
        return false;
    bool known = PQntuples(r) == 1;
    PQclear(r);
    if (!known)
        *why = (lti_check){"unknown deployment", "This deployment of the tool is not registered "
                                                 "with stepmark (`stepmark lti platform add "
                                                 "--deployment`)."};
    return known;
}

/* Records the nonce (single use); false when it was used before. */
static bool nonce_fresh(PGconn *db, const char *pid, const json_t *c, const char *expected,
                        lti_check *why, sm_err *err)
{
    const char *nonce = json_string_value(json_object_get(c, "nonce"));
    char exp[24];
    snprintf(exp, sizeof exp, "%lld", (long long)json_integer_value(json_object_get(c, "exp")));
    const char *p[] = {pid, nonce ? nonce : "", exp};
    PGresult *r = NULL;
    if (!nonce) {
        *why = (lti_check){"missing nonce", "The launch token has no nonce."};
        return false;
    }
    if (sm_db_exec(db, "DELETE FROM lti_nonce WHERE expires_at < now() - interval '1 hour'", err) !=
            SM_OK ||
        sm_db_query(db,
                    "INSERT INTO lti_nonce (platform_id, nonce, expires_at) VALUES ($1::bigint, "
                    "$2, to_timestamp($3::bigint) + interval '1 hour') ON CONFLICT DO NOTHING "
                    "RETURNING 1",
                    3, p, &r, err) != SM_OK)
        return false;
    bool fresh = PQntuples(r) == 1;
    PQclear(r);
    if (!fresh)
        *why = (lti_check){"replayed nonce", "This launch token was used before. Launch again "
                                             "from the LMS."};
    else if (strcmp(nonce, expected) != 0)
        *why = (lti_check){"nonce mismatch", "The launch token does not answer this login."};
    return fresh && strcmp(nonce, expected) == 0;
}

/* The signature, against the platform's key named by the header's kid. */
static bool signature_ok(http_req *rq, const platform_row *p, const sm_lti_jwt *t, lti_check *why,
                         sm_err *err)
{
    const char *kid = json_string_value(json_object_get(t->header, "kid"));
    json_t *jwk = NULL;
    sm_code rc = kid ? lti_platform_key(rq->http->lti, p->jwks_url, kid, &jwk, err)
                     : sm_err_set(err, SM_ENOTFOUND, "no kid");
    if (rc == SM_ENOTFOUND)
        *why = (lti_check){"unknown kid", "The launch token was signed with a key the LMS does "
                                          "not publish."};
    else if (rc != SM_OK)
        *why = (lti_check){"platform keys unavailable", "stepmark cannot read the LMS's public "
                                                        "keys (its JWKS URL)."};
    else if (sm_lti_jwt_verify(t, jwk, err) != SM_OK)
        *why = (lti_check){"wrong signature", "The launch token's signature is not valid."};
    json_decref(jwk);
    return why->reason == NULL;
}

/* POST /lti/launch: checks everything, then hands the launch to lti_pages.c. */
static void lti_launch(http_req *rq, http_resp *rs)
{
    char *token = param(rq, true, "id_token"), *state = param(rq, true, "state");
    char *perr = param(rq, true, "error");
    char pid[24], nonce[65];
    platform_row p;
    sm_lti_jwt t = {0};
    lti_check why = {0};
    sm_err err = {0};
    PGconn *db = NULL;
    if (perr)
        lti_refuse(rq, rs, 400, "platform returned an error", "The LMS refused the login.");
    else if (!token || !state)
        lti_refuse(rq, rs, 400, "launch without id_token or state",
                   "The LMS sent an incomplete launch.");
    else if ((db = http_db(rq, rs)) && take_state(rq, rs, db, state, pid, nonce)) {
        if (!load_platform(db, pid, &p, &err))
            lti_refuse(rq, rs, 400, "unknown platform", err.msg);
        else if (sm_lti_jwt_parse(token, &t, &err) != SM_OK)
            lti_refuse(rq, rs, 400, "malformed id_token", "The launch token is not a JWT.");
        else if (!signature_ok(rq, &p, &t, &why, &err) ||
                 !claims_ok(db, pid, &p, t.payload, rq->http->lti->skew_s, &why, &err) ||
                 !nonce_fresh(db, pid, t.payload, nonce, &why, &err)) {
            if (why.reason)
                lti_refuse(rq, rs, 401, why.reason, why.detail);
            else
                http_db_failed(rs, &err);
        } else {
            lti_launch_ctx c = {.claims = t.payload};
            snprintf(c.platform_id, sizeof c.platform_id, "%s", pid);
            snprintf(c.client_id, sizeof c.client_id, "%s", p.client_id);
            snprintf(c.issuer, sizeof c.issuer, "%s", p.issuer);
            json_t *roles = json_object_get(t.payload, CLAIM "roles");
            size_t i;
            json_t *r;
            bool teach = false, learn = false;
            json_array_foreach(roles, i, r)
            {
                const char *s = json_string_value(r);
                if (!s)
                    continue;
                teach = teach || strstr(s, "membership#Instructor") ||
                        strstr(s, "membership/Instructor#") || strcmp(s, "Instructor") == 0 ||
                        strstr(s, "#TeachingAssistant");
                learn = learn || strstr(s, "membership#Learner") || strcmp(s, "Learner") == 0;
            }
            if (teach)
                lti_instructor(rq, rs, &c);
            else if (learn)
                lti_learner(rq, rs, &c);
            else
                lti_refuse(rq, rs, 403, "no usable role",
                           "stepmark is for instructors, teaching assistants and learners of "
                           "the course; your role in this course is none of them.");
        }
    }
    sm_lti_jwt_free(&t);
    free(token);
    free(state);
    free(perr);
}

static bool is(const char *a, const char *b)
{
    return a && strcmp(a, b) == 0;
}

void http_lti_route(http_req *rq, http_resp *rs, int n, char **seg)
{
    bool get = is(rq->method, "GET") || is(rq->method, "HEAD");
    bool post = is(rq->method, "POST");
    const char *what = n == 2 ? seg[1] : "";
    if (is(what, "jwks.json") && get)
        lti_tool_jwks(rq, rs);
    else if (is(what, "login") && (get || post))
        lti_login(rq, rs, post);
    else if (is(what, "launch") && post)
        lti_launch(rq, rs);
    else if (is(what, "map") && post)
        lti_map_post(rq, rs);
    else if (is(what, "deeplink") && post)
        lti_deeplink_post(rq, rs);
    else if (is(what, "launch") || is(what, "login") || is(what, "map") || is(what, "deeplink") ||
             is(what, "jwks.json"))
        http_resp_error(rs, 405, "EINVAL", "method not allowed");
    else
        http_resp_error(rs, 404, "ENOTFOUND", "not found");
}
