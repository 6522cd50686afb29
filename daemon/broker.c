/* broker: stepmarkd's sockets, the poll loop and its timers, the ZAP handler, replies and
 * events (broker.h). The commands themselves are in broker_client.c and broker_worker.c. */
#include "broker_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sm_endpoint.h"
#include "sm_log.h"

int64_t sm_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

bool sm_broker_db_failed(sm_broker *b, sm_code rc)
{
    if (rc != SM_EDB)
        return false;
    if (b->db_up && !sm_store_alive(b->store)) {
        b->db_up = false;
        b->next_reconnect_ms = sm_now_ms() + 200;
        sm_log(SM_LOG_ERROR, "database connection lost; retrying", NULL);
    }
    return !b->db_up;
}

void sm_broker_reply(sm_broker *b, const unsigned char *ident, size_t ident_len,
                     const unsigned char *id, size_t id_len, bool ok, json_t *body)
{
    sm_frame idf = {ident, ident_len};
    sm_err err;
    if (sm_proto_send_msg(b->client, &idf, SM_PROTO_CLIENT, ok ? "OK" : "ERROR", id, id_len, body,
                          &err) != SM_OK)
        sm_log(SM_LOG_WARN, "cannot reply to a client", "error", err.msg, NULL);
    json_decref(body);
}

void sm_broker_reply_error(sm_broker *b, const unsigned char *ident, size_t ident_len,
                           const unsigned char *id, size_t id_len, sm_code code, const char *msg,
                           bool retryable)
{
    sm_broker_reply(b, ident, ident_len, id, id_len, false,
                    sm_proto_error_body(code, msg, retryable));
}

void sm_broker_publish(sm_broker *b, const json_t *event)
{
    const char *course = json_string_value(json_object_get(event, "course"));
    const char *assignment = json_string_value(json_object_get(event, "assignment"));
    const char *kind = json_string_value(json_object_get(event, "event"));
    char topic[512];
    snprintf(topic, sizeof topic, "%s/%s/%s", course ? course : "", assignment ? assignment : "",
             kind ? kind : "");
    char *text = json_dumps(event, JSON_COMPACT);
    if (!text)
        return;
    sm_frame f[3] = {{(const unsigned char *)topic, strlen(topic)},
                     {(const unsigned char *)SM_PROTO_EVENT, 4},
                     {(const unsigned char *)text, strlen(text)}};
    sm_err err;
    if (sm_proto_send(b->pub, f, 3, &err) != SM_OK)
        sm_log(SM_LOG_WARN, "cannot publish an event", "error", err.msg, NULL);
    free(text);
}

void sm_broker_publish_all(sm_broker *b, json_t *events)
{
    size_t i;
    json_t *e;
    json_array_foreach(events, i, e)
    {
        sm_broker_publish(b, e);
        if (!strcmp(json_string_value(json_object_get(e, "event")), "dead")) {
            sm_metrics_grading_failed(b->metrics);
            char sid[24];
            snprintf(sid, sizeof sid, "%lld",
                     (long long)json_integer_value(json_object_get(e, "submission_id")));
            sm_log(SM_LOG_WARN, "job dead", "submission", sid, "error",
                   json_string_value(json_object_get(e, "error")), NULL);
        }
    }
    json_decref(events);
}

/* The allow-list of a ZAP domain: each endpoint's socket names its own (zap_domain), so a
 * client key is refused on the worker endpoint and a worker key on the client and event
 * endpoints. NULL for an unknown domain. */
static const sm_keyset *keys_of_domain(const sm_broker *b, const sm_frame *domain)
{
    if (domain->size == 6 && memcmp(domain->data, "worker", 6) == 0)
        return b->worker_keys;
    if ((domain->size == 6 && memcmp(domain->data, "client", 6) == 0) ||
        (domain->size == 5 && memcmp(domain->data, "event", 5) == 0))
        return b->client_keys;
    return NULL;
}

/* ZAP (RFC 27): CURVE peers are admitted when their key is in the allow-list of the
 * endpoint's role; the key's name becomes the message User-Id. */
static void zap_handle(sm_broker *b)
{
    for (int k = 0; k < 64; k++) {
        sm_msg m;
        sm_err err;
        if (sm_msg_recv(b->zap, &m, ZMQ_DONTWAIT, &err) != SM_OK)
            return;
        sm_frame f[SM_PROTO_MAX_FRAMES];
        for (int i = 0; i < m.n; i++)
            f[i] = sm_msg_frame(&m, i);
        const char *status = "400", *text = "denied";
        const char *user = "";
        char z85[41] = "";
        if (m.total >= 6 && f[5].size == 5 && memcmp(f[5].data, "CURVE", 5) == 0 && m.n >= 7 &&
            f[6].size == 32) {
            zmq_z85_encode(z85, f[6].data, 32);
            const sm_keyset *keys = keys_of_domain(b, &f[2]);
            char domain[16];
            snprintf(domain, sizeof domain, "%.*s", (int)(f[2].size < 15 ? f[2].size : 15),
                     (const char *)f[2].data);
            if (keys && sm_keyset_find(keys, f[6].data, &user)) {
                status = "200";
                text = "OK";
            } else {
                text = "key not in the allow-list of this endpoint";
                sm_log(SM_LOG_WARN, "CURVE peer refused", "endpoint", domain, "public_key", z85,
                       NULL);
            }
        }
        sm_frame r[6] = {{(const unsigned char *)"1.0", 3},
                         m.n > 1 ? f[1] : (sm_frame){(const unsigned char *)"", 0},
                         {(const unsigned char *)status, 3},
                         {(const unsigned char *)text, strlen(text)},
                         {(const unsigned char *)user, strlen(user)},
                         {(const unsigned char *)"", 0}};
        sm_proto_send(b->zap, r, 6, &err);
        sm_msg_close(&m);
    }
}

/* Binds sock to ep; with CURVE (secret set) its peers are checked against the allow-list of
 * zap_domain. */
static sm_code bind_socket(void *sock, const char *ep, const char *secret, const char *zap_domain,
                           sm_err *err)
{
    int linger = 1000;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (secret) {
        sm_code rc = sm_curve_server(sock, secret, err);
        if (!rc && zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, zap_domain, strlen(zap_domain)) != 0)
            rc =
                sm_err_set(err, SM_EINTERNAL, "cannot set the ZAP domain: %s", zmq_strerror(errno));
        if (rc)
            return rc;
    }
    char bind_ep[SM_ENDPOINT_MAX]; /* tcp://localhost:PORT binds 127.0.0.1 */
    if (zmq_bind(sock, sm_endpoint_bindable(ep, bind_ep, sizeof bind_ep)) != 0)
        return sm_err_set(err, SM_EIO, "cannot bind %s: %s", ep, zmq_strerror(errno));
    return SM_OK;
}

/* CURVE: the broker's secret key (into secret), the two allow-lists (a key may hold one role
 * only) and the ZAP handler. */
static sm_code load_curve(sm_broker *b, const sm_curve_config *cc, char secret[SM_CURVE_Z85],
                          sm_err *err)
{
    if (cc->allowed_keys_file[0])
        return sm_err_set(err, SM_ECONFIG,
                          "broker.curve.allowed_keys_file is replaced by client_keys_file and "
                          "worker_keys_file: list LMS clients and workers separately");
    if (!cc->secret_key_file[0])
        return sm_err_set(err, SM_ECONFIG, "broker.curve.secret_key_file is not set");
    if (!cc->client_keys_file[0] || !cc->worker_keys_file[0])
        return sm_err_set(err, SM_ECONFIG,
                          "CURVE needs broker.curve.client_keys_file and "
                          "broker.curve.worker_keys_file (the public keys allowed in each role)");
    sm_code rc = sm_curve_read_secret(cc->secret_key_file, secret, err);
    if (!rc)
        rc = sm_keyset_load(cc->client_keys_file, &b->client_keys, err);
    if (!rc)
        rc = sm_keyset_load(cc->worker_keys_file, &b->worker_keys, err);
    const char *both = rc ? NULL : sm_keyset_common(b->client_keys, b->worker_keys);
    if (both)
        return sm_err_set(err, SM_ECONFIG,
                          "key %s is in both client_keys_file and worker_keys_file: give each "
                          "role its own key pair",
                          both);
    if (!rc) {
        b->zap = zmq_socket(b->ctx, ZMQ_REP);
        if (zmq_bind(b->zap, "inproc://zeromq.zap.01") != 0)
            rc = sm_err_set(err, SM_EIO, "cannot bind the ZAP handler: %s", zmq_strerror(errno));
    }
    return rc;
}

/* The three sockets. Sends on the worker socket never wait (a timeout of 0, and
 * ROUTER_MANDATORY so that a full or vanished peer is reported rather than skipped). */
static sm_code open_sockets(sm_broker *b, const char *const eps[3], const char *secret, sm_err *err)
{
    b->client = zmq_socket(b->ctx, ZMQ_ROUTER);
    b->worker = zmq_socket(b->ctx, ZMQ_ROUTER);
    b->pub = zmq_socket(b->ctx, ZMQ_PUB);
    int one = 1, tmo = 0;
    int64_t maxmsg = (int64_t)b->max_body * 2 + 65536;
    zmq_setsockopt(b->worker, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(b->worker, ZMQ_SNDTIMEO, &tmo, sizeof tmo);
    zmq_setsockopt(b->client, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(b->worker, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    int hwm = 100000;
    zmq_setsockopt(b->client, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(b->client, ZMQ_RCVHWM, &hwm, sizeof hwm);
    sm_code rc = bind_socket(b->client, eps[0], secret, "client", err);
    if (!rc)
        rc = bind_socket(b->worker, eps[1], secret, "worker", err);
    if (!rc)
        rc = bind_socket(b->pub, eps[2], secret, "event", err);
    return rc;
}

sm_code sm_broker_new(const sm_config *cfg, const char *db_url, sm_metrics *metrics,
                      sm_broker **out, sm_err *err)
{
    *out = NULL;
    const sm_curve_config *cc = &cfg->broker.curve;
    const char *eps[3] = {cfg->broker.client_endpoint, cfg->broker.worker_endpoint,
                          cfg->broker.event_endpoint};
    for (int i = 0; i < 3; i++)
        if (!sm_endpoint_is_local(eps[i]) && !cc->enabled && !cc->allow_insecure_remote)
            return sm_err_set(err, SM_ECONFIG,
                              "endpoint %s is not on loopback: enable broker.curve or set "
                              "broker.curve.allow_insecure_remote",
                              eps[i]);
    sm_broker *b = calloc(1, sizeof *b);
    if (!b)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    b->heartbeat_ms = cfg->broker.heartbeat_ms;
    b->heartbeat_timeout_ms = cfg->broker.heartbeat_timeout_ms;
    b->lease_ms = cfg->broker.lease_ms;
    b->max_attempts = cfg->broker.max_attempts;
    b->backoff_ms = cfg->broker.retry_backoff_ms;
    b->max_body = (size_t)cfg->broker.max_body_bytes;
    b->group_commit_us = cfg->broker.group_commit_us;
    b->max_worker_slots = cfg->broker.max_worker_slots;
    b->metrics = metrics;
    unsigned rnd = 0;
    FILE *ur = fopen("/dev/urandom", "rb");
    if (ur) {
        if (fread(&rnd, sizeof rnd, 1, ur) != 1)
            rnd = 0;
        fclose(ur);
    }
    snprintf(b->instance, sizeof b->instance, "b%08x", rnd ^ (unsigned)sm_now_us());

    sm_code rc = sm_store_open(db_url, &b->store, err);
    if (rc) {
        free(b);
        return rc;
    }
    b->db_up = true;
    sm_store_set_max_job_ms(b->store, cfg->broker.max_job_ms);
    sm_broker_relay_start(b);
    sm_peer_limits limits = {cfg->broker.peer_error_replies, cfg->broker.peer_ban_errors,
                             cfg->broker.peer_ban_ms};
    rc = sm_peers_new(&limits, &b->peers, err);
    if (rc) {
        sm_broker_free(&b);
        return rc;
    }
    b->ctx = zmq_ctx_new();
    char secret[SM_CURVE_Z85] = "";
    if (cc->enabled)
        rc = load_curve(b, cc, secret, err);
    if (!rc)
        rc = open_sockets(b, eps, cc->enabled ? secret : NULL, err);
    memset(secret, 0, sizeof secret);
    if (rc) {
        sm_broker_free(&b);
        return rc;
    }
    sm_log(SM_LOG_INFO, "broker listening", "clients", eps[0], "workers", eps[1], "events", eps[2],
           "curve", cc->enabled ? "on" : "off", "instance", b->instance, NULL);
    *out = b;
    return SM_OK;
}

static void drain(sm_broker *b, void *sock, bool client)
{
    for (int k = 0; k < SM_DRAIN_MAX; k++) {
        sm_msg m;
        sm_err err;
        sm_code rc = sm_msg_recv(sock, &m, ZMQ_DONTWAIT, &err);
        if (rc == SM_ESTATE)
            return;
        if (rc) {
            sm_log(SM_LOG_WARN, "receive failed", "error", err.msg, NULL);
            return;
        }
        if (client)
            sm_broker_client_message(b, &m);
        else
            sm_broker_worker_message(b, &m);
        sm_msg_close(&m);
        if (client && b->nbatch >= SM_BATCH_MAX)
            sm_broker_commit(b);
    }
}

/* Ended leases go back to the queue; the workers that held them are told to drop them. */
static void reap(sm_broker *b)
{
    sm_reaped r;
    sm_err err;
    sm_code rc = sm_store_reap(b->store, b->backoff_ms, &r, &err);
    if (rc) {
        sm_broker_db_failed(b, rc);
        sm_log(SM_LOG_WARN, "lease reaper failed", "error", err.msg, NULL);
        return;
    }
    size_t i;
    json_t *pair;
    json_array_foreach(r.jobs, i, pair)
    {
        json_int_t id = json_integer_value(json_array_get(pair, 0));
        const char *owner = json_string_value(json_array_get(pair, 1));
        sm_worker *w = owner ? sm_workers_by_owner(&b->workers, owner) : NULL;
        if (w && sm_worker_job_remove(w, id)) {
            char ids[24];
            snprintf(ids, sizeof ids, "%lld", (long long)id);
            json_t *body = json_pack("{s:I}", "job_id", id);
            sm_broker_worker_send(b, w, "CANCEL", ids, body);
            json_decref(body);
        }
    }
    if (json_array_size(r.jobs) > 0) {
        char c[16];
        snprintf(c, sizeof c, "%zu", json_array_size(r.jobs));
        sm_log(SM_LOG_WARN, "ended leases returned to the queue", "jobs", c, NULL);
        b->dispatch_wanted = true;
    }
    sm_broker_publish_all(b, json_incref(r.events));
    sm_reaped_clear(&r);
}

static void timers(sm_broker *b)
{
    int64_t now = sm_now_ms();
    if (!b->db_up && now >= b->next_reconnect_ms) {
        sm_err err;
        if (sm_store_reconnect(b->store, &err) == SM_OK) {
            b->db_up = true;
            b->dispatch_wanted = true;
            sm_log(SM_LOG_INFO, "database connection restored", NULL);
        } else {
            b->next_reconnect_ms = now + 500;
        }
    }
    sm_broker_worker_timers(b, now);
    if (b->db_up && now >= b->next_reap_ms) {
        b->next_reap_ms = now + 1000;
        reap(b);
    }
    if (b->db_up && now >= b->next_relay_ms) {
        b->next_relay_ms = now + SM_RELAY_MS;
        sm_broker_relay(b);
    }
    if (b->db_up && (b->dispatch_wanted || now >= b->next_dispatch_ms)) {
        b->next_dispatch_ms = now + 500;
        b->dispatch_wanted = false;
        sm_broker_dispatch(b);
    }
}

sm_code sm_broker_run(sm_broker *b, volatile sig_atomic_t *stop, sm_err *err)
{
    (void)err;
    while (!*stop) {
        zmq_pollitem_t items[3] = {{b->client, 0, ZMQ_POLLIN, 0},
                                   {b->worker, 0, ZMQ_POLLIN, 0},
                                   {b->zap, 0, ZMQ_POLLIN, 0}};
        long timeout = 100;
        if (b->nbatch > 0) {
            int64_t left = b->batch_since_us + b->group_commit_us - sm_now_us();
            timeout = left > 0 ? (long)((left + 999) / 1000) : 0;
        }
        int n = zmq_poll(items, b->zap ? 3 : 2, timeout);
        if (n < 0 && zmq_errno() != EINTR) {
            sm_log(SM_LOG_ERROR, "poll failed", "error", zmq_strerror(zmq_errno()), NULL);
            break;
        }
        if (n > 0 && b->zap && (items[2].revents & ZMQ_POLLIN))
            zap_handle(b);
        if (n > 0 && (items[1].revents & ZMQ_POLLIN))
            drain(b, b->worker, false);
        if (n > 0 && (items[0].revents & ZMQ_POLLIN))
            drain(b, b->client, true);
        if (b->nbatch > 0 && sm_now_us() - b->batch_since_us >= b->group_commit_us)
            sm_broker_commit(b);
        timers(b);
    }
    /* graceful shutdown: acknowledge what was received, release the workers' jobs */
    sm_log(SM_LOG_INFO, "broker stopping", NULL);
    drain(b, b->client, true);
    if (b->nbatch > 0)
        sm_broker_commit(b);
    while (b->workers.n > 0) {
        sm_worker *w = b->workers.w[0];
        json_t *bye = json_pack("{s:s}", "reason", "broker shutting down");
        sm_broker_worker_send(b, w, "DISCONNECT", "", bye);
        json_decref(bye);
        sm_broker_worker_drop(b, w, false, NULL);
    }
    if (b->db_up) {
        json_t *events;
        sm_err e2;
        char prefix[32];
        snprintf(prefix, sizeof prefix, "%s/", b->instance);
        if (sm_store_release(b->store, prefix, true, false, "", 0, &events, &e2) == SM_OK)
            json_decref(events);
    }
    return SM_OK;
}

void sm_broker_free(sm_broker **bp)
{
    if (!bp || !*bp)
        return;
    sm_broker *b = *bp;
    for (int i = 0; i < b->nbatch; i++) {
        free(b->batch[i].ident);
        json_decref(b->batch[i].body);
    }
    if (b->client)
        zmq_close(b->client);
    if (b->worker)
        zmq_close(b->worker);
    if (b->pub)
        zmq_close(b->pub);
    if (b->zap)
        zmq_close(b->zap);
    if (b->ctx)
        zmq_ctx_term(b->ctx);
    sm_keyset_free(&b->client_keys);
    sm_keyset_free(&b->worker_keys);
    sm_peers_free(&b->peers);
    sm_workers_free(&b->workers);
    sm_store_close(&b->store);
    free(b);
    *bp = NULL;
}
