/* sm_webhook: URL policy, secrets, signatures, backoff and the CLI's SQL for outgoing webhooks
 * (see sm_webhook.h). URLs are parsed with libcurl's URL API, the same parser that later sends
 * to them; HMAC-SHA256 is OpenSSL's. */
#include "sm_webhook.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/params.h>

#include "sm_db.h"
#include "sm_sha256.h"

/* Whether host (as libcurl returns it: IPv6 in brackets) is a loopback address or name. */
static bool loopback_host(const char *host)
{
    if (strcasecmp(host, "localhost") == 0)
        return true;
    if (strcmp(host, "[::1]") == 0)
        return true;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return false;
}

/* The part `what` of u, or NULL when it is absent; free with curl_free. */
static char *url_part(CURLU *u, CURLUPart what)
{
    char *s = NULL;
    if (curl_url_get(u, what, &s, 0) != CURLUE_OK)
        return NULL;
    return s;
}

static sm_code check_parts(CURLU *u, const char *url, sm_err *err)
{
    sm_code rc = SM_OK;
    char *scheme = url_part(u, CURLUPART_SCHEME);
    char *host = url_part(u, CURLUPART_HOST);
    char *user = url_part(u, CURLUPART_USER);
    char *password = url_part(u, CURLUPART_PASSWORD);
    char *fragment = url_part(u, CURLUPART_FRAGMENT);
    if (!scheme || (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0))
        rc = sm_err_set(err, SM_EINVAL, "webhook URL '%s': only https:// (or http:// to loopback)",
                        url);
    else if (!host || !host[0])
        rc = sm_err_set(err, SM_EINVAL, "webhook URL '%s' has no host", url);
    else if (user || password)
        rc = sm_err_set(err, SM_EINVAL,
                        "webhook URL '%s' holds a user name or password: leave them out (receivers "
                        "verify the Stepmark-Signature header instead)",
                        url);
    else if (fragment)
        rc = sm_err_set(err, SM_EINVAL, "webhook URL '%s' has a #fragment", url);
    else if (strcmp(scheme, "http") == 0 && !loopback_host(host))
        rc = sm_err_set(err, SM_EINVAL,
                        "webhook URL '%s': plain http:// is allowed only to loopback (127.0.0.0/8, "
                        "[::1], localhost); use https:// for host '%s'",
                        url, host);
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(password);
    curl_free(fragment);
    return rc;
}

sm_code sm_webhook_check_url(const char *url, sm_err *err)
{
    if (!url || !url[0])
        return sm_err_set(err, SM_EINVAL, "webhook URL is empty");
    if (strlen(url) > SM_WEBHOOK_URL_MAX)
        return sm_err_set(err, SM_EINVAL, "webhook URL is longer than %d bytes",
                          SM_WEBHOOK_URL_MAX);
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return sm_err_set(err, SM_EINVAL, "webhook URL holds a space or control character");
    CURLU *u = curl_url();
    if (!u)
        return sm_err_set(err, SM_ENOMEM, "out of memory parsing a URL");
    sm_code rc;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc != CURLUE_OK)
        rc = sm_err_set(err, SM_EINVAL, "webhook URL '%s' is not a valid absolute URL (%s)", url,
                        curl_url_strerror(uc));
    else
        rc = check_parts(u, url, err);
    curl_url_cleanup(u);
    return rc;
}

sm_code sm_webhook_new_secret(char out[SM_WEBHOOK_SECRET_LEN], sm_err *err)
{
    memcpy(out, "whsec_", 6);
    return sm_random_hex(SM_WEBHOOK_SECRET_BYTES, out + 6, err);
}

sm_code sm_webhook_sign(const char *secret, int64_t t, const char *body, size_t len,
                        char out[SM_WEBHOOK_SIG_MAX], sm_err *err)
{
    char ts[24];
    int tn = snprintf(ts, sizeof ts, "%" PRId64 ".", t);
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *h = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    bool ok = h && EVP_MAC_init(h, (const unsigned char *)secret, strlen(secret), params) == 1 &&
              EVP_MAC_update(h, (const unsigned char *)ts, (size_t)tn) == 1 &&
              EVP_MAC_update(h, (const unsigned char *)body, len) == 1 &&
              EVP_MAC_final(h, mac, &maclen, sizeof mac) == 1 && maclen == 32;
    EVP_MAC_CTX_free(h);
    EVP_MAC_free(hmac);
    if (!ok)
        return sm_err_set(err, SM_EINTERNAL, "HMAC-SHA256 failed (OpenSSL)");
    int n = snprintf(out, SM_WEBHOOK_SIG_MAX, "t=%" PRId64 ",v1=", t);
    for (size_t i = 0; i < maclen; i++)
        n += snprintf(out + n, (size_t)(SM_WEBHOOK_SIG_MAX - n), "%02x", mac[i]);
    return SM_OK;
}

int64_t sm_webhook_backoff_ms(int64_t first_ms, int64_t max_ms, int failures, uint32_t rnd)
{
    if (first_ms < 1)
        first_ms = 1;
    if (max_ms < first_ms)
        max_ms = first_ms;
    int64_t d = first_ms;
    for (int i = 1; i < failures && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    int64_t half = d / 2;
    return d - half + (int64_t)((uint64_t)rnd % (uint64_t)(half + 1));
}

/* A timestamptz column as RFC 3339 UTC text (milliseconds). */
#define UTC(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

sm_code sm_webhook_add(PGconn *db, const char *course_code, const char *url, int64_t *id,
                       char secret[SM_WEBHOOK_SECRET_LEN], sm_err *err)
{
    sm_code rc = sm_webhook_check_url(url, err);
    if (rc == SM_OK)
        rc = sm_webhook_new_secret(secret, err);
    if (rc != SM_OK)
        return rc;
    /* One statement, so the cursor's default (the oldest running transaction) is taken in the
     * transaction that creates the webhook. */
    static const char sql[] =
        "WITH c AS (SELECT id FROM course WHERE code = $1), "
        "w AS (INSERT INTO webhook (course_id, url, secret) SELECT id, $2, $3 FROM c "
        "RETURNING id) "
        "INSERT INTO webhook_cursor (webhook_id) SELECT id FROM w RETURNING webhook_id";
    const char *params[] = {course_code, url, secret};
    PGresult *r;
    rc = sm_db_query(db, sql, 3, params, &r, err);
    if (rc != SM_OK)
        return sm_err_prefix(err, "cannot add the webhook");
    if (PQntuples(r) != 1)
        rc = sm_err_set(err, SM_ENOTFOUND, "no course with code '%s'", course_code);
    else
        *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return rc;
}

/* Runs sql (which returns one row, one column of JSON text) and parses it into *out. */
static sm_code query_json(PGconn *db, const char *sql, int nparams, const char *const *params,
                          json_t **out, sm_err *err)
{
    PGresult *r;
    sm_code rc = sm_db_query(db, sql, nparams, params, &r, err);
    if (rc != SM_OK)
        return rc;
    json_error_t je;
    *out = PQntuples(r) == 1 ? json_loads(PQgetvalue(r, 0, 0), 0, &je) : NULL;
    PQclear(r);
    if (!*out)
        return sm_err_set(err, SM_EINTERNAL, "unexpected answer from the database");
    return SM_OK;
}

sm_code sm_webhook_list(PGconn *db, json_t **out, sm_err *err)
{
    static const char sql[] =
        "SELECT coalesce(json_agg(json_build_object("
        "'id', w.id, 'course', c.code, 'url', w.url, 'created_at', " UTC(
            "w.created_at") ", "
                            "'delivered', k.delivered, "
                            "'pending', (SELECT count(*) FROM event_outbox e WHERE e.course_id = w.course_id "
                            "            AND (e.xid, e.id) > (k.cursor_xid, k.cursor_id)), "
                            "'attempts', k.attempts, 'next_attempt_at', " UTC(
                                "k.next_attempt_at") ", "
                                                     "'last_error', k.last_error, 'last_success_at', " UTC(
                                                         "k.last_success_at") ") "
                                                                              "ORDER BY w.id), '[]') "
                                                                              "FROM webhook w JOIN course c ON c.id = w.course_id "
                                                                              "JOIN webhook_cursor k ON k.webhook_id = w.id";
    return query_json(db, sql, 0, NULL, out, err);
}

sm_code sm_webhook_remove(PGconn *db, int64_t id, sm_err *err)
{
    char ids[24];
    snprintf(ids, sizeof ids, "%" PRId64, id);
    const char *params[] = {ids};
    PGresult *r;
    sm_code rc = sm_db_query(db, "DELETE FROM webhook WHERE id = $1", 1, params, &r, err);
    if (rc != SM_OK)
        return sm_err_prefix(err, "cannot remove webhook %" PRId64, id);
    if (strcmp(PQcmdTuples(r), "1") != 0)
        rc = sm_err_set(err, SM_ENOTFOUND, "no webhook with id %" PRId64, id);
    PQclear(r);
    return rc;
}

sm_code sm_webhook_log(PGconn *db, int64_t webhook_id, int limit, json_t **out, sm_err *err)
{
    static const char sql[] =
        "SELECT coalesce(json_agg(json_build_object("
        "'id', d.id, 'webhook_id', d.webhook_id, 'at', " UTC(
            "d.at") ", 'event', d.event, "
                    "'event_id', d.event_id, 'delivery', d.delivery, 'attempt', d.attempt, "
                    "'status_code', d.status_code, 'error', d.error, 'duration_ms', d.duration_ms, "
                    "'broker', d.broker) ORDER BY d.id DESC), '[]') "
                    "FROM (SELECT * FROM webhook_delivery WHERE $1::bigint = 0 OR webhook_id = $1 "
                    "      ORDER BY id DESC LIMIT $2) d";
    char ids[24], lim[24];
    snprintf(ids, sizeof ids, "%" PRId64, webhook_id > 0 ? webhook_id : 0);
    snprintf(lim, sizeof lim, "%d", limit > 0 ? limit : 50);
    const char *params[] = {ids, lim};
    return query_json(db, sql, 2, params, out, err);
}
