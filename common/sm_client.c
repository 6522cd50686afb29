/* sm_client: request/reply client of the stepmarkd client endpoint (sm_client.h). */
#include "sm_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "sm_curve.h"
#include "sm_proto.h"

struct sm_client {
    void *ctx;
    bool own_ctx;
    void *sock;
    char endpoint[512];
    char server_key[SM_CURVE_Z85];
    char secret_key[SM_CURVE_Z85];
    bool curve;
    int timeout_ms;
    int retries;
    unsigned long seq;
};

static sm_code open_socket(sm_client *c, sm_err *err)
{
    c->sock = zmq_socket(c->ctx, ZMQ_DEALER);
    if (!c->sock)
        return sm_err_set(err, SM_EIO, "cannot create a socket: %s", zmq_strerror(zmq_errno()));
    int linger = 0;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
    if (c->curve) {
        sm_code rc = sm_curve_client(c->sock, c->server_key, c->secret_key, err);
        if (rc)
            return rc;
    }
    if (zmq_connect(c->sock, c->endpoint) != 0)
        return sm_err_set(err, SM_EINVAL, "cannot connect to %s: %s", c->endpoint,
                          zmq_strerror(zmq_errno()));
    return SM_OK;
}

sm_code sm_client_new(void *zctx, const sm_client_opts *opts, sm_client **out, sm_err *err)
{
    *out = NULL;
    sm_client *c = calloc(1, sizeof *c);
    if (!c)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    c->ctx = zctx;
    if (!c->ctx) {
        c->ctx = zmq_ctx_new();
        c->own_ctx = true;
    }
    snprintf(c->endpoint, sizeof c->endpoint, "%s", opts->endpoint ? opts->endpoint : "");
    c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 5000;
    c->retries = opts->retries > 0 ? opts->retries : 0;
    sm_code rc = SM_OK;
    if (opts->server_key && *opts->server_key) {
        c->curve = true;
        rc = sm_curve_key_arg(opts->server_key, c->server_key, err);
        if (!rc && !(opts->secret_key && *opts->secret_key))
            rc = sm_err_set(err, SM_EINVAL, "CURVE needs this client's secret key");
        if (!rc)
            rc = sm_curve_key_arg(opts->secret_key, c->secret_key, err);
    }
    if (!rc)
        rc = open_socket(c, err);
    if (rc) {
        sm_client_free(&c);
        return rc;
    }
    *out = c;
    return SM_OK;
}

void sm_client_free(sm_client **c)
{
    if (!c || !*c)
        return;
    if ((*c)->sock)
        zmq_close((*c)->sock);
    if ((*c)->own_ctx)
        zmq_ctx_term((*c)->ctx);
    memset((*c)->secret_key, 0, sizeof(*c)->secret_key);
    free(*c);
    *c = NULL;
}

sm_code sm_client_send(sm_client *c, const char *command, const char *id, const json_t *body,
                       sm_err *err)
{
    json_t *empty = NULL;
    if (!body)
        body = empty = json_object();
    sm_code rc = sm_proto_send_msg(c->sock, NULL, SM_PROTO_CLIENT, command,
                                   (const unsigned char *)id, strlen(id), body, err);
    json_decref(empty);
    return rc;
}

static const char *const reply_cmds[] = {"OK", "ERROR", NULL};

sm_code sm_client_recv(sm_client *c, int timeout_ms, sm_client_reply *out, sm_err *err)
{
    memset(out, 0, sizeof *out);
    zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
    int n = zmq_poll(&it, 1, timeout_ms);
    if (n < 0)
        return sm_err_set(err, SM_EIO, "poll failed: %s", zmq_strerror(zmq_errno()));
    if (n == 0)
        return sm_err_set(err, SM_ESTATE,
                          "no broker answers at %s within %d ms (is stepmarkd running?)",
                          c->endpoint, timeout_ms);
    sm_msg m;
    sm_code rc = sm_msg_recv(c->sock, &m, ZMQ_DONTWAIT, err);
    if (rc == SM_ESTATE)
        return sm_err_set(err, SM_ESTATE, "no reply");
    if (rc)
        return rc;
    sm_frame f[SM_PROTO_MAX_FRAMES];
    for (int i = 0; i < m.n; i++)
        f[i] = sm_msg_frame(&m, i);
    sm_request r;
    rc = sm_proto_parse(SM_PROTO_CLIENT, reply_cmds, f, m.n, m.total, (size_t)1 << 30, &r, err);
    sm_msg_close(&m);
    if (rc) {
        sm_request_clear(&r);
        return sm_err_prefix(err, "bad reply from the broker");
    }
    out->ok = r.cmd == 0;
    memcpy(out->id, r.id, r.id_len);
    out->id[r.id_len] = '\0';
    out->body = r.body;
    r.body = NULL;
    return SM_OK;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

sm_code sm_client_call(sm_client *c, const char *command, const json_t *body, json_t **reply,
                       sm_err *err)
{
    if (reply)
        *reply = NULL;
    for (int attempt = 0;; attempt++) {
        char id[32];
        snprintf(id, sizeof id, "%lu", ++c->seq);
        sm_code rc = sm_client_send(c, command, id, body, err);
        if (rc)
            return rc;
        long deadline = now_ms() + c->timeout_ms;
        sm_client_reply r;
        for (;;) {
            long left = deadline - now_ms();
            rc = sm_client_recv(c, left > 0 ? (int)left : 0, &r, err);
            if (rc || strcmp(r.id, id) == 0)
                break;
            json_decref(r.body); /* a late reply to an earlier attempt */
        }
        if (rc == SM_ESTATE) {
            if (attempt >= c->retries)
                return rc;
            /* lazy pirate: the broker may be restarting; start over on a fresh socket */
            zmq_close(c->sock);
            c->sock = NULL;
            rc = open_socket(c, err);
            if (rc)
                return rc;
            continue;
        }
        if (rc)
            return rc;
        if (r.ok) {
            if (reply)
                *reply = r.body;
            else
                json_decref(r.body);
            return SM_OK;
        }
        const char *code = json_string_value(json_object_get(r.body, "code"));
        const char *msg = json_string_value(json_object_get(r.body, "message"));
        bool retryable = json_is_true(json_object_get(r.body, "retryable"));
        sm_code ec = sm_proto_code_from_name(code);
        sm_err_set(err, ec, "%s", msg ? msg : "error without a message");
        if (retryable && attempt < c->retries) {
            json_decref(r.body);
            struct timespec ts = {0, 200 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        if (reply)
            *reply = r.body;
        else
            json_decref(r.body);
        return ec;
    }
}
