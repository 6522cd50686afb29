/* lti_jwks: the LTI settings of stepmarkd's HTTP side, the tool's public JWKS
 * (GET /lti/jwks.json) and a cache of the platforms' JWKS, fetched with libcurl and refetched
 * when an id_token names an unknown kid (at most once per lti.jwks_refetch_seconds per
 * platform, so forged kids cannot make stepmarkd hammer the platform). */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lti_internal.h"
#include "sm_lti.h"
#include "sm_log.h"

#define LTI_JWKS_MAX_BYTES (256 * 1024)
#define LTI_FETCH_TIMEOUT_MS 10000L

sm_code http_lti_start(sm_http *h, const sm_config *cfg, const char *db_url, sm_err *err)
{
    struct http_lti *l = calloc(1, sizeof *l);
    if (!l)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    l->skew_s = cfg->lti.clock_skew_seconds;
    l->refetch_s = cfg->lti.jwks_refetch_seconds > 0 ? cfg->lti.jwks_refetch_seconds : 10;
    l->grace_days = cfg->lti.key_grace_days;
    snprintf(l->public_url, sizeof l->public_url, "%s", cfg->http.public_url);
    size_t len = strlen(l->public_url);
    while (len > 0 && l->public_url[len - 1] == '/')
        l->public_url[--len] = '\0';
    pthread_mutex_init(&l->lock, NULL);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        pthread_mutex_destroy(&l->lock);
        free(l);
        return sm_err_set(err, SM_EINTERNAL, "cannot initialise libcurl");
    }
    h->lti = l;
    return lti_roster_start(db_url, &l->roster, err); /* on failure the caller stops h->lti */
}

void http_lti_stop(sm_http *h)
{
    struct http_lti *l = h->lti;
    if (!l)
        return;
    lti_roster_stop(&l->roster);
    for (int i = 0; i < LTI_CACHE_SLOTS; i++)
        json_decref(l->cache[i].jwks);
    pthread_mutex_destroy(&l->lock);
    curl_global_cleanup();
    free(l);
    h->lti = NULL;
}

bool lti_secure(http_req *rq)
{
    const char *proto = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "X-Forwarded-Proto");
    return rq->http->tls || (proto && strcasecmp(proto, "https") == 0);
}

void lti_base_url(http_req *rq, char *out, size_t n)
{
    if (rq->http->lti->public_url[0]) {
        snprintf(out, n, "%s", rq->http->lti->public_url);
        return;
    }
    const char *host = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Host");
    snprintf(out, n, "%s://%s", lti_secure(rq) ? "https" : "http", host ? host : "localhost");
}

void lti_tool_jwks(http_req *rq, http_resp *rs)
{
    PGconn *db = http_db(rq, rs);
    if (!db)
        return;
    json_t *jwks = NULL;
    sm_err err = {0};
    if (sm_lti_jwks(db, rq->http->lti->grace_days, &jwks, &err) != SM_OK) {
        http_db_failed(rs, &err);
        return;
    }
    http_resp_json(rs, 200, jwks);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct fetch_buf {
    char *data;
    size_t len;
    bool too_big;
} fetch_buf;

static size_t on_data(char *p, size_t size, size_t nmemb, void *userdata)
{
    fetch_buf *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n > LTI_JWKS_MAX_BYTES) {
        b->too_big = true;
        return 0;
    }
    char *d = realloc(b->data, b->len + n + 1);
    if (!d)
        return 0;
    memcpy(d + b->len, p, n);
    b->data = d;
    b->len += n;
    d[b->len] = '\0';
    return n;
}

/* GETs a platform's JWKS. */
static sm_code fetch_jwks(const char *url, json_t **out, sm_err *err)
{
    CURL *c = curl_easy_init();
    if (!c)
        return sm_err_set(err, SM_EINTERNAL, "cannot start libcurl");
    fetch_buf b = {0};
    long status = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, LTI_FETCH_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "stepmark-lti");
    CURLcode cr = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    sm_code rc = SM_OK;
    if (cr != CURLE_OK)
        rc = sm_err_set(err, SM_EIO, "cannot fetch the platform's keys from %s: %s", url,
                        b.too_big ? "too large" : curl_easy_strerror(cr));
    else if (status != 200)
        rc = sm_err_set(err, SM_EIO, "the platform's keys at %s: HTTP %ld", url, status);
    if (rc == SM_OK) {
        *out = b.data ? json_loadb(b.data, b.len, 0, NULL) : NULL;
        if (!*out || !json_is_array(json_object_get(*out, "keys"))) {
            json_decref(*out);
            *out = NULL;
            rc = sm_err_set(err, SM_EFORMAT, "the platform's keys at %s are not a JWKS", url);
        }
    }
    free(b.data);
    return rc;
}

static json_t *find_kid(const json_t *jwks, const char *kid)
{
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(jwks, "keys"), i, k)
    {
        const char *id = json_string_value(json_object_get(k, "kid"));
        if (id && strcmp(id, kid) == 0)
            return k;
    }
    return NULL;
}

/* The slot of url (found, or a new one replacing the oldest); called under the lock. */
static lti_cache_slot *slot_of(struct http_lti *l, const char *url)
{
    lti_cache_slot *oldest = &l->cache[0];
    for (int i = 0; i < LTI_CACHE_SLOTS; i++) {
        if (strcmp(l->cache[i].url, url) == 0)
            return &l->cache[i];
        if (l->cache[i].fetched < oldest->fetched)
            oldest = &l->cache[i];
    }
    json_decref(oldest->jwks);
    memset(oldest, 0, sizeof *oldest);
    snprintf(oldest->url, sizeof oldest->url, "%s", url);
    return oldest;
}

sm_code lti_platform_key(struct http_lti *l, const char *url, const char *kid, json_t **jwk,
                         sm_err *err)
{
    *jwk = NULL;
    if (strlen(url) >= LTI_URL_MAX)
        return sm_err_set(err, SM_EINVAL, "the platform's JWKS URL is too long");
    pthread_mutex_lock(&l->lock);
    lti_cache_slot *s = slot_of(l, url);
    json_t *k = s->jwks ? find_kid(s->jwks, kid) : NULL;
    double now = now_seconds();
    bool may_fetch = !k && (s->fetched == 0 || now - s->fetched >= (double)l->refetch_s);
    if (k)
        *jwk = json_incref(k);
    else if (may_fetch)
        s->fetched = now; /* counted before the fetch: one fetch at a time per period */
    pthread_mutex_unlock(&l->lock);
    if (k)
        return SM_OK;
    if (!may_fetch)
        return sm_err_set(err, SM_ENOTFOUND,
                          "unknown kid %s (the platform's keys were fetched "
                          "moments ago)",
                          kid);
    json_t *fresh = NULL;
    sm_code rc = fetch_jwks(url, &fresh, err);
    if (rc != SM_OK) {
        sm_log(SM_LOG_WARN, "lti: cannot fetch a platform's keys", "url", url, "error", err->msg,
               NULL);
        return rc;
    }
    sm_log(SM_LOG_INFO, "lti: fetched a platform's keys", "url", url, NULL);
    pthread_mutex_lock(&l->lock);
    s = slot_of(l, url);
    json_decref(s->jwks);
    s->jwks = fresh;
    s->fetched = s->fetched > 0 ? s->fetched : now;
    k = find_kid(fresh, kid);
    if (k)
        *jwk = json_incref(k);
    pthread_mutex_unlock(&l->lock);
    return k ? SM_OK : sm_err_set(err, SM_ENOTFOUND, "unknown kid %s", kid);
}
