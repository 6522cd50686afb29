/* sm_lti_ags: OAuth2 client credentials with a signed client assertion, bearer-token HTTP
 * requests, the NRPS roster import and the passback settings and log (see sm_lti_ags.h).
 * Signing is sm_lti_jwt_sign (OpenSSL); HTTP is libcurl. */
#include "sm_lti_ags.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sm_db.h"
#include "sm_lti.h"
#include "sm_sha256.h"

#define BODY_MAX (8 * 1024 * 1024) /* a roster page or a line item list */
#define ROSTER_PAGES_MAX 1000
#define NRPS_ACCEPT "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"

static int64_t mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

sm_code sm_lti_client_init(sm_lti_client *c, int64_t timeout_ms, sm_err *err)
{
    memset(c, 0, sizeof *c);
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    c->curl = curl_easy_init();
    if (!c->curl)
        return sm_err_set(err, SM_ENOMEM, "cannot start libcurl");
    return SM_OK;
}

void sm_lti_client_free(sm_lti_client *c)
{
    if (c->curl)
        curl_easy_cleanup(c->curl);
    for (int i = 0; i < SM_LTI_TOKEN_SLOTS; i++)
        memset(c->tokens[i].token, 0, sizeof c->tokens[i].token);
    c->curl = NULL;
}

void sm_lti_response_free(sm_lti_response *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

sm_code sm_lti_service_load(PGconn *db, int64_t platform_id, sm_lti_service *out, sm_err *err)
{
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, platform_id);
    const char *p[] = {id};
    PGresult *r;
    sm_code rc = sm_db_query(db, "SELECT client_id, token_url FROM lti_platform WHERE id = $1", 1,
                             p, &r, err);
    if (rc != SM_OK)
        return rc;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return sm_err_set(err, SM_ENOTFOUND, "no LTI platform %" PRId64, platform_id);
    }
    out->platform_id = platform_id;
    snprintf(out->client_id, sizeof out->client_id, "%s", PQgetvalue(r, 0, 0));
    snprintf(out->token_url, sizeof out->token_url, "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    return SM_OK;
}

/* ---- HTTP ---- */

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    sm_lti_response *r = arg;
    size_t len = size * n;
    if (r->len + len > BODY_MAX)
        return 0; /* too large: aborts the transfer */
    char *b = realloc(r->body, r->len + len + 1);
    if (!b)
        return 0;
    memcpy(b + r->len, data, len);
    r->len += len;
    b[r->len] = 0;
    r->body = b;
    return len;
}

/* Picks the rel="next" URL out of a Link header line. */
static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    sm_lti_response *r = arg;
    size_t len = size * n;
    if (len > 5 && strncasecmp(data, "link:", 5) == 0) {
        char line[4096];
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1),
                 data + 5);
        for (char *part = strtok(line, ","); part; part = strtok(NULL, ",")) {
            char *lt = strchr(part, '<'), *gt = lt ? strchr(lt, '>') : NULL;
            if (lt && gt && strstr(gt, "rel=\"next\"") && (size_t)(gt - lt - 1) < sizeof r->next)
                snprintf(r->next, sizeof r->next, "%.*s", (int)(gt - lt - 1), lt + 1);
        }
    }
    return len;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t e)
{
    (void)a, (void)b, (void)c, (void)e;
    const sm_lti_client *cl = arg;
    return cl->abort && *cl->abort ? 1 : 0;
}

/* Appends a header line; false when out of memory. */
static bool add_header(struct curl_slist **h, const char *fmt, const char *value)
{
    char line[SM_LTI_TOKEN_MAX + 64];
    snprintf(line, sizeof line, fmt, value);
    struct curl_slist *n = curl_slist_append(*h, line);
    if (!n)
        return false;
    *h = n;
    return true;
}

sm_code sm_lti_send(sm_lti_client *c, const sm_lti_request *rq, sm_lti_response *out, sm_err *err)
{
    memset(out, 0, sizeof *out);
    struct curl_slist *h = NULL;
    bool ok = add_header(&h, "%s", "Expect:") &&
              (!rq->token || add_header(&h, "Authorization: Bearer %s", rq->token)) &&
              (!rq->accept || add_header(&h, "Accept: %s", rq->accept)) &&
              (!rq->content_type || add_header(&h, "Content-Type: %s", rq->content_type));
    if (!ok) {
        curl_slist_free_all(h);
        return sm_err_set(err, SM_ENOMEM, "out of memory building a request");
    }
    CURL *cu = c->curl;
    curl_easy_reset(cu);
    curl_easy_setopt(cu, CURLOPT_URL, rq->url);
    curl_easy_setopt(cu, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(cu, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(cu, CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(cu, CURLOPT_USERAGENT, "stepmark-lti/1");
    curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
    if (rq->body) {
        curl_easy_setopt(cu, CURLOPT_POSTFIELDS, rq->body);
        curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE, (long)strlen(rq->body));
    }
    curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(cu, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(cu, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(cu, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(cu, CURLOPT_XFERINFODATA, c);
    int64_t t0 = mono_ms();
    CURLcode cc = curl_easy_perform(cu);
    out->duration_ms = mono_ms() - t0;
    curl_slist_free_all(h);
    if (!out->body) {
        out->body = calloc(1, 1);
        if (!out->body)
            return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    if (cc != CURLE_OK)
        return sm_err_set(err, SM_EIO, "%s %s: %s", rq->method, rq->url,
                          cc == CURLE_ABORTED_BY_CALLBACK ? "abandoned: stopping"
                                                          : curl_easy_strerror(cc));
    curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &out->status);
    return SM_OK;
}

/* ---- OAuth2 client credentials (RFC 6749 4.4 with RFC 7523 client authentication) ---- */

static sm_lti_token_slot *token_slot(sm_lti_client *c, int64_t platform, const char *scope)
{
    for (int i = 0; i < SM_LTI_TOKEN_SLOTS; i++) {
        sm_lti_token_slot *s = &c->tokens[i];
        if (s->expires && s->platform_id == platform && strcmp(s->scope, scope) == 0)
            return s;
    }
    return NULL;
}

void sm_lti_token_forget(sm_lti_client *c, int64_t platform_id)
{
    for (int i = 0; i < SM_LTI_TOKEN_SLOTS; i++)
        if (c->tokens[i].platform_id == platform_id) {
            memset(&c->tokens[i], 0, sizeof c->tokens[i]);
        }
}

/* The client assertion JWT: iss = sub = client id, aud = token URL, 5 minutes, random jti. */
static sm_code client_assertion(PGconn *db, const sm_lti_service *svc, char **jwt, sm_err *err)
{
    char jti[33];
    sm_code rc = sm_random_hex(16, jti, err);
    if (rc != SM_OK)
        return rc;
    json_int_t now = (json_int_t)time(NULL);
    json_t *claims =
        json_pack("{s:s,s:s,s:s,s:I,s:I,s:s}", "iss", svc->client_id, "sub", svc->client_id, "aud",
                  svc->token_url, "iat", now, "exp", now + 300, "jti", jti);
    if (!claims)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    sm_lti_signer s;
    rc = sm_lti_signer_get(db, &s, err);
    if (rc == SM_OK)
        rc = sm_lti_jwt_sign(s.private_pem, s.kid, claims, jwt, err);
    sm_lti_signer_clear(&s);
    json_decref(claims);
    return rc;
}

/* The urlencoded token request body (malloc'd). */
static char *token_form(CURL *cu, const char *assertion, const char *scope)
{
    char *a = curl_easy_escape(cu, assertion, 0), *s = curl_easy_escape(cu, scope, 0);
    char *body = NULL;
    if (a && s) {
        size_t n = strlen(a) + strlen(s) + 256;
        body = malloc(n);
        if (body)
            snprintf(body, n,
                     "grant_type=client_credentials&client_assertion_type=urn%%3Aietf%%3Aparams"
                     "%%3Aoauth%%3Aclient-assertion-type%%3Ajwt-bearer&client_assertion=%s"
                     "&scope=%s",
                     a, s);
    }
    curl_free(a);
    curl_free(s);
    return body;
}

/* Stores a token answer {access_token, expires_in} in a slot. */
static sm_code keep_token(sm_lti_client *c, const sm_lti_service *svc, const char *scope,
                          const sm_lti_response *resp, const char **token, sm_err *err)
{
    json_t *doc = json_loads(resp->body, 0, NULL);
    const char *tok = json_string_value(json_object_get(doc, "access_token"));
    json_int_t expires_in = json_integer_value(json_object_get(doc, "expires_in"));
    if (!tok || strlen(tok) >= SM_LTI_TOKEN_MAX || strlen(scope) >= sizeof c->tokens[0].scope) {
        json_decref(doc);
        return sm_err_set(err, SM_EPROTO, "the token endpoint's answer has no usable access_token");
    }
    sm_lti_token_slot *s = token_slot(c, svc->platform_id, scope);
    for (int i = 0; !s && i < SM_LTI_TOKEN_SLOTS; i++)
        if (!c->tokens[i].expires || c->tokens[i].expires <= mono_s())
            s = &c->tokens[i];
    if (!s)
        s = &c->tokens[0];
    s->platform_id = svc->platform_id;
    snprintf(s->scope, sizeof s->scope, "%s", scope);
    snprintf(s->token, sizeof s->token, "%s", tok);
    /* Used until 30 s before it expires (an hour when the platform does not say). */
    int64_t life = expires_in > 0 ? (int64_t)expires_in : 3600;
    s->expires = mono_s() + (life > 60 ? life - 30 : life / 2 + 1);
    json_decref(doc);
    *token = s->token;
    return SM_OK;
}

sm_code sm_lti_access_token(sm_lti_client *c, PGconn *db, const sm_lti_service *svc,
                            const char *scope, const char **token, sm_lti_response *resp,
                            sm_err *err)
{
    memset(resp, 0, sizeof *resp);
    sm_lti_token_slot *s = token_slot(c, svc->platform_id, scope);
    if (s && s->expires > mono_s()) {
        *token = s->token;
        return SM_OK;
    }
    char *jwt = NULL;
    sm_code rc = client_assertion(db, svc, &jwt, err);
    if (rc != SM_OK)
        return rc;
    char *body = token_form(c->curl, jwt, scope);
    free(jwt);
    if (!body)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    sm_lti_request rq = {
        "POST", svc->token_url, NULL, "application/json", "application/x-www-form-urlencoded",
        body};
    rc = sm_lti_send(c, &rq, resp, err);
    free(body);
    if (rc != SM_OK)
        return sm_err_prefix(err, "access token");
    if (resp->status != 200)
        return sm_err_set(err, SM_EPROTO, "the token endpoint answered HTTP %ld: %.200s",
                          resp->status, resp->body);
    return keep_token(c, svc, scope, resp, token, err);
}

/* ---- roster ---- */

/* Upserts one NRPS member of (platform, context); whether it had a user_id. */
static sm_code store_member(PGconn *db, const char *platform, const char *context, json_t *m,
                            sm_err *err)
{
    const char *uid = json_string_value(json_object_get(m, "user_id"));
    if (!uid || !uid[0])
        return SM_OK;
    const char *name = json_string_value(json_object_get(m, "name"));
    const char *given = json_string_value(json_object_get(m, "given_name"));
    const char *family = json_string_value(json_object_get(m, "family_name"));
    const char *email = json_string_value(json_object_get(m, "email"));
    const char *sid = json_string_value(json_object_get(m, "lis_person_sourcedid"));
    const char *status = json_string_value(json_object_get(m, "status"));
    char full[512] = "";
    if (name)
        snprintf(full, sizeof full, "%s", name);
    else if (given || family)
        snprintf(full, sizeof full, "%s%s%s", given ? given : "", given && family ? " " : "",
                 family ? family : "");
    json_t *roles = json_object_get(m, "roles");
    char *roles_s = json_dumps(json_is_array(roles) ? roles : json_array(), JSON_COMPACT);
    if (!json_is_array(roles))
        roles = NULL;
    const char *p[] = {
        platform,
        context,
        uid,
        full,
        email ? email : "",
        sid ? sid : "",
        roles_s ? roles_s : "[]",
        status && (!strcmp(status, "Inactive") || !strcmp(status, "Deleted")) ? status : "Active"};
    sm_code rc = sm_db_query(
        db,
        "INSERT INTO lti_member (platform_id, context_id, sub, name, email, sourcedid, roles, "
        "status, source) VALUES ($1::bigint, $2, $3, $4, $5, $6, ARRAY(SELECT "
        "jsonb_array_elements_text($7::jsonb)), $8, 'roster') ON CONFLICT (platform_id, "
        "context_id, sub) DO UPDATE SET name = CASE WHEN EXCLUDED.name <> '' THEN EXCLUDED.name "
        "ELSE lti_member.name END, email = CASE WHEN EXCLUDED.email <> '' THEN EXCLUDED.email "
        "ELSE lti_member.email END, sourcedid = CASE WHEN EXCLUDED.sourcedid <> '' THEN "
        "EXCLUDED.sourcedid ELSE lti_member.sourcedid END, roles = EXCLUDED.roles, status = "
        "EXCLUDED.status, source = 'roster', updated_at = now()",
        8, p, NULL, err);
    free(roles_s);
    return rc;
}

/* Imports one LMS course's roster, page by page. */
static sm_code sync_context(sm_lti_client *c, PGconn *db, const char *platform, const char *context,
                            const char *url, sm_lti_roster_result *out, sm_err *err)
{
    sm_lti_service svc;
    sm_code rc = sm_lti_service_load(db, strtoll(platform, NULL, 10), &svc, err);
    const char *token = NULL;
    sm_lti_response resp = {0};
    if (rc == SM_OK)
        rc = sm_lti_access_token(c, db, &svc, SM_LTI_SCOPE_NRPS, &token, &resp, err);
    sm_lti_response_free(&resp);
    if (rc != SM_OK)
        return rc;
    char started[64] = "";
    PGresult *r;
    if ((rc = sm_db_query(db, "SELECT clock_timestamp()::text", 0, NULL, &r, err)) != SM_OK)
        return rc;
    snprintf(started, sizeof started, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    char next[1024];
    snprintf(next, sizeof next, "%s", url);
    for (int page = 0; next[0] && page < ROSTER_PAGES_MAX && rc == SM_OK; page++) {
        sm_lti_request rq = {"GET", next, token, NRPS_ACCEPT, NULL, NULL};
        rc = sm_lti_send(c, &rq, &resp, err);
        if (rc == SM_OK && resp.status != 200)
            rc = sm_err_set(err, SM_EPROTO, "the roster URL answered HTTP %ld: %.200s", resp.status,
                            resp.body);
        json_t *doc = rc == SM_OK ? json_loads(resp.body, 0, NULL) : NULL;
        json_t *members = json_object_get(doc, "members"), *m;
        if (rc == SM_OK && !json_is_array(members))
            rc = sm_err_set(err, SM_EPROTO, "the roster has no members list");
        size_t i;
        json_array_foreach(members, i, m)
        {
            if (rc == SM_OK)
                rc = store_member(db, platform, context, m, err);
            out->members++;
        }
        json_decref(doc);
        snprintf(next, sizeof next, "%s", resp.next);
        sm_lti_response_free(&resp);
    }
    if (rc != SM_OK)
        return rc;
    const char *p[] = {platform, context, started};
    rc = sm_db_query(db,
                     "WITH gone AS (UPDATE lti_member SET status = 'Deleted', updated_at = now() "
                     "WHERE platform_id = $1::bigint AND context_id = $2 AND source = 'roster' "
                     "AND updated_at < $3::timestamptz AND status <> 'Deleted' RETURNING 1), "
                     "t AS (UPDATE lti_context SET roster_synced_at = now() WHERE platform_id = "
                     "$1::bigint AND context_id = $2) SELECT count(*) FROM gone",
                     3, p, &r, err);
    if (rc == SM_OK) {
        out->removed += atoi(PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    return rc;
}

sm_code sm_lti_roster_sync(sm_lti_client *c, PGconn *db, const char *course_code,
                           sm_lti_roster_result *out, sm_err *err)
{
    memset(out, 0, sizeof *out);
    const char *p[] = {course_code};
    PGresult *r;
    sm_code rc = sm_db_query(db,
                             "SELECT c.id, x.platform_id, x.context_id, x.nrps_url FROM course c "
                             "LEFT JOIN lti_context x ON x.course_id = c.id AND x.nrps_url IS NOT "
                             "NULL WHERE c.code = $1 ORDER BY x.platform_id, x.context_id",
                             1, p, &r, err);
    if (rc != SM_OK)
        return rc;
    if (PQntuples(r) == 0)
        rc = sm_err_set(err, SM_ENOTFOUND, "no course with code '%s'", course_code);
    else if (PQgetisnull(r, 0, 1))
        rc = sm_err_set(err, SM_ESTATE,
                        "course '%s' has no LMS roster yet: an instructor must launch stepmark "
                        "from the LMS course first (the launch carries the roster URL)",
                        course_code);
    for (int i = 0; rc == SM_OK && i < PQntuples(r); i++) {
        rc = sync_context(c, db, PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), out,
                          err);
        if (rc == SM_OK)
            out->contexts++;
        else
            sm_err_prefix(err, "roster of LMS course '%s'", PQgetvalue(r, i, 2));
    }
    PQclear(r);
    return rc;
}

sm_code sm_lti_roster_sync_context(sm_lti_client *c, PGconn *db, const char *platform_id,
                                   const char *context_id, sm_lti_roster_result *out, sm_err *err)
{
    memset(out, 0, sizeof *out);
    const char *p[] = {platform_id, context_id};
    PGresult *r;
    sm_code rc = sm_db_query(db,
                             "SELECT nrps_url FROM lti_context WHERE platform_id = $1::bigint AND "
                             "context_id = $2",
                             2, p, &r, err);
    if (rc != SM_OK)
        return rc;
    if (PQntuples(r) == 0)
        rc = sm_err_set(err, SM_ENOTFOUND, "no LMS course '%s'", context_id);
    else if (PQgetisnull(r, 0, 0))
        rc = sm_err_set(err, SM_ESTATE, "LMS course '%s' sent no roster URL", context_id);
    else
        rc = sync_context(c, db, platform_id, context_id, PQgetvalue(r, 0, 0), out, err);
    if (rc == SM_OK)
        out->contexts = 1;
    PQclear(r);
    return rc;
}

/* ---- settings and log ---- */

static const char *policy_name(sm_lti_policy p)
{
    return p == SM_LTI_ON_APPROVAL ? "on-approval" : "on-release";
}

/* Runs sql with params and checks it affected a row; else SM_ENOTFOUND with what. */
static sm_code one_row(PGconn *db, const char *sql, int n, const char *const *p, const char *what,
                       sm_err *err)
{
    PGresult *r;
    sm_code rc = sm_db_query(db, sql, n, p, &r, err);
    if (rc != SM_OK)
        return rc;
    if (PQntuples(r) != 1)
        rc = sm_err_set(err, SM_ENOTFOUND, "%s", what);
    PQclear(r);
    return rc;
}

sm_code sm_lti_passback_set(PGconn *db, const char *course_code, const char *assignment_code,
                            sm_lti_policy policy, sm_err *err)
{
    char what[512];
    if (!assignment_code) {
        snprintf(what, sizeof what, "no course with code '%s'", course_code);
        const char *p[] = {course_code, policy_name(policy)};
        return one_row(db,
                       "INSERT INTO lti_course_setting (course_id, passback) SELECT id, $2 FROM "
                       "course WHERE code = $1 ON CONFLICT (course_id) DO UPDATE SET passback = "
                       "EXCLUDED.passback RETURNING 1",
                       2, p, what, err);
    }
    snprintf(what, sizeof what, "no assignment '%s' in course '%s'", assignment_code, course_code);
    const char *p[] = {course_code, assignment_code, policy_name(policy)};
    return one_row(db,
                   "INSERT INTO lti_assignment_setting (assignment_id, passback) SELECT a.id, $3 "
                   "FROM assignment a JOIN course c ON c.id = a.course_id WHERE c.code = $1 AND "
                   "a.code = $2 ON CONFLICT (assignment_id) DO UPDATE SET passback = "
                   "EXCLUDED.passback RETURNING 1",
                   3, p, what, err);
}

sm_code sm_lti_student_ref_set(PGconn *db, const char *course_code, const char *from, sm_err *err)
{
    if (strcmp(from, "sub") != 0 && strcmp(from, "sourcedid") != 0 && strcmp(from, "email") != 0)
        return sm_err_set(err, SM_EINVAL, "student ref must be sub, sourcedid or email, not '%s'",
                          from);
    char what[300];
    snprintf(what, sizeof what, "no course with code '%s'", course_code);
    const char *p[] = {course_code, from};
    return one_row(db,
                   "INSERT INTO lti_course_setting (course_id, student_ref_from) SELECT id, $2 "
                   "FROM course WHERE code = $1 ON CONFLICT (course_id) DO UPDATE SET "
                   "student_ref_from = EXCLUDED.student_ref_from RETURNING 1",
                   2, p, what, err);
}

static sm_code query_json(PGconn *db, const char *sql, int n, const char *const *p, json_t **out,
                          sm_err *err)
{
    PGresult *r;
    sm_code rc = sm_db_query(db, sql, n, p, &r, err);
    if (rc != SM_OK)
        return rc;
    *out = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) ? json_loads(PQgetvalue(r, 0, 0), 0, NULL)
                                                      : NULL;
    PQclear(r);
    return *out ? SM_OK : SM_ENOTFOUND;
}

sm_code sm_lti_course_status(PGconn *db, const char *course_code, json_t **out, sm_err *err)
{
    static const char sql[] =
        "SELECT json_build_object('course', c.code, 'student_ref_from', "
        "COALESCE(s.student_ref_from, 'sub'), 'passback', COALESCE(s.passback, 'on-release'), "
        "'assignments', (SELECT COALESCE(json_agg(json_build_object('code', a.code, 'passback', "
        "sm_lti_passback_policy(a.id)) ORDER BY a.code), '[]') FROM assignment a WHERE "
        "a.course_id = c.id), "
        "'targets', (SELECT COALESCE(json_agg(json_build_object('platform_id', x.platform_id, "
        "'context_id', x.context_id, 'title', x.title, 'lineitems', x.ags_lineitems, "
        "'roster_url', x.nrps_url, 'roster_synced_at', x.roster_synced_at, "
        "'members', (SELECT count(*) FROM lti_member m WHERE m.platform_id = x.platform_id "
        "  AND m.context_id = x.context_id AND m.status = 'Active'), "
        "'pending', (SELECT count(*) FROM event_outbox e WHERE e.course_id = c.id "
        "  AND (e.xid, e.id) > (k.cursor_xid, k.cursor_id)), "
        "'attempts', k.attempts, 'next_attempt_at', k.next_attempt_at, "
        "'last_error', k.last_error, 'delivered', k.delivered) "
        "ORDER BY x.platform_id, x.context_id), '[]') "
        "FROM lti_context x LEFT JOIN lti_passback_cursor k ON k.platform_id = x.platform_id "
        "AND k.context_id = x.context_id WHERE x.course_id = c.id))::text "
        "FROM course c LEFT JOIN lti_course_setting s ON s.course_id = c.id WHERE c.code = $1";
    const char *p[] = {course_code};
    sm_code rc = query_json(db, sql, 1, p, out, err);
    if (rc == SM_ENOTFOUND)
        return sm_err_set(err, SM_ENOTFOUND, "no course with code '%s'", course_code);
    return rc;
}

sm_code sm_lti_passback_log(PGconn *db, const char *course_code, int limit, json_t **out,
                            sm_err *err)
{
    static const char sql[] =
        "SELECT COALESCE(json_agg(json_build_object('id', l.id, 'at', l.at, 'course', c.code, "
        "'platform_id', l.platform_id, 'context_id', l.context_id, 'event', l.event, "
        "'event_id', l.event_id, 'submission_id', l.submission_id, 'user', l.user_sub, "
        "'attempt', l.attempt, 'outcome', l.outcome, 'detail', l.detail, "
        "'status_code', l.status_code, 'error', l.error, 'duration_ms', l.duration_ms) "
        "ORDER BY l.id DESC), '[]')::text "
        "FROM (SELECT ll.*, xx.course_id FROM lti_passback_log ll LEFT JOIN lti_context xx "
        "  ON xx.platform_id = ll.platform_id AND xx.context_id = ll.context_id "
        "  WHERE $1::text IS NULL OR xx.course_id = (SELECT id FROM course WHERE code = $1) "
        "  ORDER BY ll.id DESC LIMIT $2::int) l LEFT JOIN course c ON c.id = l.course_id";
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit > 0 ? limit : 50);
    const char *p[] = {course_code, lim};
    sm_code rc = query_json(db, sql, 2, p, out, err);
    if (rc == SM_ENOTFOUND)
        return sm_err_set(err, SM_EINTERNAL, "unexpected answer from the database");
    return rc;
}
