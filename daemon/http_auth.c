/* http_auth: teacher sign-in with a token, sessions and CSRF protection.
 * Sign-in exchanges a teacher token (stored only as its SHA-256) for a session cookie
 * (HttpOnly, SameSite=Strict, random; only its hash is stored, with an expiry) and a CSRF
 * token that every POST must echo in X-CSRF-Token. POSTs must also be JSON and, when the
 * browser sends an Origin, come from this server. Sign-in attempts are limited per client
 * address per minute. Tokens and session ids never reach the log. A session is bound to the
 * teacher's token epoch: rotating or revoking the token (stepmark teacher rotate/revoke) ends
 * it, and so does the token's expiry. The teacher's last use is recorded, rate-limited. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http_internal.h"
#include "http_store.h"
#include "sm_log.h"

/* A teacher's last use is written at most once per this many seconds (sign-in always writes). */
#define HTTP_LAST_USE_S 60

void http_rate_init(sm_http *h)
{
    pthread_mutex_init(&h->rate_lock, NULL);
    memset(h->rate, 0, sizeof h->rate);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Counts one sign-in attempt from client (only looks when !take) against a token bucket
 * holding login_per_minute attempts and refilled evenly over a minute. Returns 0 when allowed,
 * else the seconds to wait. */
int http_rate_check(sm_http *h, const char *client, bool take)
{
    double now = now_seconds();
    double cap = (double)h->login_per_minute, rate = cap / 60.0;
    char hash[SM_SHA256_HEX];
    sm_sha256_hex(client, strlen(client), hash);
    unsigned start = (unsigned)strtoul(hash + 56, NULL, 16) % HTTP_RATE_SLOTS;
    int wait = 0;
    pthread_mutex_lock(&h->rate_lock);
    http_rate_slot *slot = NULL;
    /* Open addressing over 8 slots: the client's own, else a free one or one idle for a minute
     * (its bucket would be full again anyway), else the least recently used. */
    for (unsigned i = 0; i < 8 && !slot; i++) {
        http_rate_slot *s = &h->rate[(start + i) % HTTP_RATE_SLOTS];
        if (strcmp(s->client, client) == 0)
            slot = s;
    }
    if (!slot) {
        http_rate_slot *oldest = &h->rate[start];
        for (unsigned i = 0; i < 8; i++) {
            http_rate_slot *s = &h->rate[(start + i) % HTTP_RATE_SLOTS];
            if (s->last < oldest->last)
                oldest = s;
        }
        slot = oldest;
        bool idle = slot->client[0] == '\0' || now - slot->last >= 60.0;
        snprintf(slot->client, sizeof slot->client, "%s", client);
        if (idle) {
            slot->tokens = cap;
        } /* else: a busy slot is shared, which only makes the limit stricter */
        slot->last = now;
    }
    slot->tokens += (now - slot->last) * rate;
    if (slot->tokens > cap)
        slot->tokens = cap;
    slot->last = now;
    if (slot->tokens >= 1.0) {
        if (take)
            slot->tokens -= 1.0;
    } else {
        wait = (int)((1.0 - slot->tokens) / rate) + 1;
    }
    pthread_mutex_unlock(&h->rate_lock);
    return wait;
}

static bool is_hex(const char *s, size_t n)
{
    if (!s || strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool equal_const_time(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    unsigned char diff = (unsigned char)(na != nb);
    for (size_t i = 0; i < na && i < nb; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

/* Records that teacher tid used their access now, at most once per HTTP_LAST_USE_S (the
 * condition is checked again in the UPDATE, so concurrent requests write once). */
static void touch_last_use(PGconn *db, const char *tid)
{
    char interval[16];
    snprintf(interval, sizeof interval, "%d", HTTP_LAST_USE_S);
    const char *p[] = {tid, interval};
    sm_err err = {0};
    if (http_store_teacher_touch(db, p, &err) != SM_OK)
        sm_log(SM_LOG_WARN, "cannot record a teacher's last use", "teacher", tid, "error", err.msg,
               NULL);
}

sm_code http_auth_load(http_req *rq, http_resp *rs)
{
    rq->signed_in = false;
    const char *cookie = MHD_lookup_connection_value(rq->conn, MHD_COOKIE_KIND, HTTP_COOKIE);
    if (!is_hex(cookie, 64))
        return SM_OK;
    PGconn *db = http_db(rq, rs);
    if (!db)
        return SM_EDB;
    char hash[SM_SHA256_HEX], interval[16];
    sm_sha256_hex(cookie, 64, hash);
    snprintf(interval, sizeof interval, "%d", HTTP_LAST_USE_S);
    const char *p[] = {hash, interval};
    PGresult *r;
    sm_err err = {0};
    /* A session counts only while the token it was opened with is the teacher's current one
     * (same epoch: not rotated, not revoked) and has not expired. */
    if (http_store_session(db, p, &r, &err) != SM_OK) {
        http_db_failed(rs, &err);
        return SM_EDB;
    }
    if (PQntuples(r) == 1) {
        rq->signed_in = true;
        snprintf(rq->teacher_id_s, sizeof rq->teacher_id_s, "%s", PQgetvalue(r, 0, 0));
        rq->teacher_id = strtoll(rq->teacher_id_s, NULL, 10);
        snprintf(rq->teacher_name, sizeof rq->teacher_name, "%s", PQgetvalue(r, 0, 1));
        snprintf(rq->csrf, sizeof rq->csrf, "%s", PQgetvalue(r, 0, 2));
        if (strcmp(PQgetvalue(r, 0, 3), "t") == 0)
            touch_last_use(db, rq->teacher_id_s);
    }
    PQclear(r);
    return SM_OK;
}

bool http_auth_check_post(http_req *rq, http_resp *rs, bool need_csrf)
{
    const char *type = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Content-Type");
    if (!type || strncasecmp(type, "application/json", 16) != 0) {
        http_resp_error(rs, 415, "EINVAL", "requests must be application/json");
        return false;
    }
    const char *origin = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Origin");
    const char *host = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Host");
    if (origin) {
        const char *o = origin;
        if (strncmp(o, "http://", 7) == 0)
            o += 7;
        else if (strncmp(o, "https://", 8) == 0)
            o += 8;
        else
            o = NULL;
        if (!o || !host || strcmp(o, host) != 0) {
            http_resp_error(rs, 403, "ECSRF", "cross-origin request refused");
            return false;
        }
    }
    if (need_csrf) {
        const char *tok = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "X-CSRF-Token");
        if (!rq->signed_in || !tok || !rq->csrf[0] || !equal_const_time(tok, rq->csrf)) {
            http_resp_error(rs, 403, "ECSRF", "missing or wrong CSRF token");
            return false;
        }
    }
    return true;
}

static json_t *session_json(const char *id, const char *name, const char *csrf)
{
    return json_pack("{s:{s:I,s:o},s:s}", "teacher", "id", (json_int_t)strtoll(id, NULL, 10),
                     "name", http_json_string(name), "csrf", csrf);
}

/* The teacher a sign-in token belongs to. */
typedef struct signin_teacher {
    char id[24];
    char name[256];
    char epoch[16]; /* token_epoch when the token was checked; the session is bound to it */
} signin_teacher;

/* The hash of the body's well-formed token; else fills a 401 and returns false. */
static bool signin_token_hash(http_req *rq, http_resp *rs, char hash[SM_SHA256_HEX])
{
    json_t *body = rq->body ? json_loadb(rq->body, rq->len, 0, NULL) : NULL;
    const char *token = body ? json_string_value(json_object_get(body, "token")) : NULL;
    bool well_formed = token && is_hex(token, 64);
    if (well_formed)
        sm_sha256_hex(token, 64, hash);
    json_decref(body);
    if (!well_formed) {
        sm_log(SM_LOG_WARN, "sign-in failed", "client", rq->client, "reason", "malformed", NULL);
        http_resp_error(rs, 401, "EAUTH", "invalid token");
    }
    return well_formed;
}

/* Finds the teacher whose current, unexpired token has this hash; else fills a 401 (or a 500)
 * and returns false. */
static bool signin_lookup(http_req *rq, http_resp *rs, PGconn *db, const char *hash,
                          signin_teacher *t)
{
    sm_err err = {0};
    PGresult *r;
    const char *p[] = {hash};
    if (http_store_teacher_by_token(db, p, &r, &err) != SM_OK) {
        http_db_failed(rs, &err);
        return false;
    }
    bool found = PQntuples(r) == 1;
    bool expired = found && strcmp(PQgetvalue(r, 0, 3), "t") == 0;
    if (found) {
        snprintf(t->id, sizeof t->id, "%s", PQgetvalue(r, 0, 0));
        snprintf(t->name, sizeof t->name, "%s", PQgetvalue(r, 0, 1));
        snprintf(t->epoch, sizeof t->epoch, "%s", PQgetvalue(r, 0, 2));
    }
    PQclear(r);
    if (!found) {
        sm_log(SM_LOG_WARN, "sign-in failed", "client", rq->client, "reason", "unknown token",
               NULL);
        http_resp_error(rs, 401, "EAUTH", "invalid token");
    } else if (expired) {
        sm_log(SM_LOG_WARN, "sign-in failed", "client", rq->client, "reason", "expired token",
               "teacher", t->id, NULL);
        http_resp_error(rs, 401, "EAUTH",
                        "this token has expired; ask your stepmark operator for a new one");
    }
    return found && !expired;
}

/* Stores a new session for t (id hash, CSRF token, epoch; it ends after HTTP_SESSION_HOURS or
 * when the token expires, whichever is first), audits the sign-in and records the use. */
static sm_code signin_store(http_req *rq, PGconn *db, const signin_teacher *t, const char *sid_hash,
                            const char *csrf, sm_err *err)
{
    char hours[8];
    snprintf(hours, sizeof hours, "%d", HTTP_SESSION_HOURS);
    const char *p2[] = {sid_hash, t->id, csrf, rq->client, hours, t->epoch};
    sm_code rc = http_store_sessions_purge(db, err);
    if (rc == SM_OK)
        rc = http_store_session_add(db, p2, err);
    const char *p3[] = {t->id, rq->client};
    if (rc == SM_OK)
        rc = http_store_audit_signin(db, p3, err);
    if (rc == SM_OK)
        rc = http_store_teacher_used(db, p3, err);
    return rc;
}

void http_api_signin(http_req *rq, http_resp *rs)
{
    int wait = http_rate_check(rq->http, rq->client, true);
    if (wait > 0) {
        sm_log(SM_LOG_WARN, "sign-in rate limited", "client", rq->client, NULL);
        rs->retry_after = wait;
        http_resp_error(rs, 429, "ELIMIT", "too many sign-in attempts; try again later");
        return;
    }
    char hash[SM_SHA256_HEX] = "";
    if (!signin_token_hash(rq, rs, hash))
        return;
    PGconn *db = http_db(rq, rs);
    signin_teacher t;
    if (!db || !signin_lookup(rq, rs, db, hash, &t))
        return;

    sm_err err = {0};
    char sid[65], csrf[65], sid_hash[SM_SHA256_HEX];
    if (sm_random_hex(32, sid, &err) != SM_OK || sm_random_hex(32, csrf, &err) != SM_OK) {
        sm_log(SM_LOG_ERROR, "sign-in: no randomness", "error", err.msg, NULL);
        http_resp_error(rs, 500, "EINTERNAL", "cannot create a session");
        return;
    }
    sm_sha256_hex(sid, 64, sid_hash);
    if (signin_store(rq, db, &t, sid_hash, csrf, &err) != SM_OK) {
        http_db_failed(rs, &err);
        return;
    }
    /* Behind a TLS-terminating proxy the cookie is marked Secure (never sent over plain HTTP). */
    const char *proto = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "X-Forwarded-Proto");
    bool secure = proto && strcasecmp(proto, "https") == 0;
    char cookie[176];
    snprintf(cookie, sizeof cookie, "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d%s",
             HTTP_COOKIE, sid, HTTP_SESSION_HOURS * 3600, secure ? "; Secure" : "");
    rs->set_cookie = strdup(cookie);
    memset(sid, 0, sizeof sid);
    sm_log(SM_LOG_INFO, "teacher signed in", "teacher", t.id, "client", rq->client, NULL);
    http_resp_json(rs, 200, session_json(t.id, t.name, csrf));
}

void http_api_signout(http_req *rq, http_resp *rs)
{
    const char *cookie = MHD_lookup_connection_value(rq->conn, MHD_COOKIE_KIND, HTTP_COOKIE);
    PGconn *db = http_db(rq, rs);
    if (!db)
        return;
    char hash[SM_SHA256_HEX];
    sm_sha256_hex(cookie, strlen(cookie), hash);
    const char *p[] = {hash};
    sm_err err = {0};
    if (http_store_session_delete(db, p, &err) != SM_OK) {
        http_db_failed(rs, &err);
        return;
    }
    char c[128];
    snprintf(c, sizeof c, "%s=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", HTTP_COOKIE);
    rs->set_cookie = strdup(c);
    http_resp_json(rs, 200, json_pack("{s:b}", "ok", 1));
}

void http_api_session(http_req *rq, http_resp *rs)
{
    if (!rq->signed_in) {
        http_resp_error(rs, 401, "EAUTH", "not signed in");
        return;
    }
    http_resp_json(rs, 200, session_json(rq->teacher_id_s, rq->teacher_name, rq->csrf));
}
