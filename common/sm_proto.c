/* sm_proto: framing, validation and JSON field readers of the stepmark protocol (sm_proto.h). */
#include "sm_proto.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

sm_code sm_msg_recv(void *sock, sm_msg *m, int flags, sm_err *err)
{
    m->n = 0;
    m->total = 0;
    for (;;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        int rc = zmq_msg_recv(&part, sock, m->total == 0 ? flags : 0);
        if (rc < 0) {
            int e = errno;
            zmq_msg_close(&part);
            if (m->total == 0 && (e == EAGAIN || e == EINTR))
                return SM_ESTATE;
            if (m->total > 0 && e == EINTR)
                continue; /* the rest of a multipart message is already queued */
            sm_msg_close(m);
            return sm_err_set(err, SM_EIO, "receive failed: %s", zmq_strerror(e));
        }
        int more = zmq_msg_more(&part);
        if (m->n < SM_PROTO_MAX_FRAMES) {
            m->f[m->n++] = part;
        } else {
            zmq_msg_close(&part);
        }
        m->total++;
        if (!more)
            return SM_OK;
    }
}

void sm_msg_close(sm_msg *m)
{
    for (int i = 0; i < m->n; i++)
        zmq_msg_close(&m->f[i]);
    m->n = 0;
    m->total = 0;
}

sm_frame sm_msg_frame(const sm_msg *m, int i)
{
    sm_frame fr = {NULL, 0};
    if (i >= 0 && i < m->n) {
        fr.data = zmq_msg_data((zmq_msg_t *)&m->f[i]);
        fr.size = zmq_msg_size((zmq_msg_t *)&m->f[i]);
    }
    return fr;
}

const char *sm_msg_user(sm_msg *m)
{
    if (m->n == 0)
        return "";
    const char *u = zmq_msg_gets(&m->f[m->n - 1], "User-Id");
    return u ? u : "";
}

sm_code sm_proto_send(void *sock, const sm_frame *f, int n, sm_err *err)
{
    for (int i = 0; i < n; i++) {
        int flags = (i + 1 < n) ? ZMQ_SNDMORE : 0;
        if (zmq_send(sock, f[i].data, f[i].size, flags) < 0)
            return sm_err_set(err, SM_EIO, "send failed: %s", zmq_strerror(errno));
    }
    return SM_OK;
}

void sm_request_clear(sm_request *r)
{
    if (r->body)
        json_decref(r->body);
    memset(r, 0, sizeof *r);
}

/* The length of the valid UTF-8 sequence at s (at most n bytes), or 0 if it is not one. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t k = 1; k < len; k++) {
        unsigned cc = s[k];
        if ((cc & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF)
        return 0;
    return len;
}

bool sm_utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq_len(s + i, n - i);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}

/* Copies the NUL-terminated text into out (size n > 0) with each byte that is not part of
 * valid UTF-8 replaced by '?', so that any message can go into a JSON string. */
static void utf8_sanitize(const char *text, char *out, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t left = strlen(text), o = 0;
    while (left > 0) {
        size_t len = utf8_seq_len(s, left);
        size_t take = len ? len : 1;
        if (o + take >= n)
            break;
        if (len)
            memcpy(out + o, s, len);
        else
            out[o] = '?';
        o += take;
        s += take;
        left -= take;
    }
    out[o] = '\0';
}

static int json_depth(const json_t *j)
{
    int best = 0;
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v)
        {
            int d = json_depth(v);
            if (d > best)
                best = d;
            if (best > SM_PROTO_MAX_DEPTH)
                break;
        }
        return best + 1;
    }
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            int d = json_depth(v);
            if (d > best)
                best = d;
            if (best > SM_PROTO_MAX_DEPTH)
                break;
        }
        return best + 1;
    }
    return 0;
}

/* The EUNSUPPORTED error for a protocol frame other than proto, quoting at most 16 of its
 * bytes with anything but printable ASCII shown as '?'. */
static sm_code unsupported_protocol(const char *proto, const sm_frame *got, sm_err *err)
{
    char safe[17];
    size_t n = got->size < 16 ? got->size : 16;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = got->data[i];
        safe[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    safe[n] = '\0';
    return sm_err_set(err, SM_EUNSUPPORTED, "unsupported protocol \"%s\" (expected %s)", safe,
                      proto);
}

sm_code sm_proto_parse(const char *proto, const char *const *commands, const sm_frame *f, int n,
                       int total, size_t max_body, sm_request *out, sm_err *err)
{
    memset(out, 0, sizeof *out);
    out->cmd = -1;
    if (n >= 4 && f[3].size <= SM_PROTO_MAX_ID) {
        memcpy(out->id, f[3].data, f[3].size);
        out->id_len = f[3].size;
    }
    if (total != SM_PROTO_FRAMES || n != SM_PROTO_FRAMES)
        return sm_err_set(err, SM_EPROTO, "expected %d frames, got %d", SM_PROTO_FRAMES, total);
    if (f[0].size != 0)
        return sm_err_set(err, SM_EPROTO, "the first frame must be empty");
    if (f[3].size > SM_PROTO_MAX_ID)
        return sm_err_set(err, SM_EPROTO, "correlation id longer than %d bytes", SM_PROTO_MAX_ID);
    if (f[1].size != strlen(proto) || memcmp(f[1].data, proto, f[1].size) != 0)
        return unsupported_protocol(proto, &f[1], err);
    if (f[2].size == 0 || f[2].size > SM_PROTO_MAX_COMMAND)
        return sm_err_set(err, SM_EUNSUPPORTED, "unknown command");
    memcpy(out->command, f[2].data, f[2].size);
    out->command[f[2].size] = '\0';
    for (int i = 0; commands[i]; i++)
        if (strlen(commands[i]) == f[2].size && memcmp(commands[i], f[2].data, f[2].size) == 0)
            out->cmd = i;
    if (out->cmd < 0) {
        char safe[SM_PROTO_MAX_COMMAND + 1];
        for (size_t i = 0; i <= f[2].size; i++) {
            unsigned char c = (unsigned char)out->command[i];
            safe[i] = (c == 0 || (c >= 0x20 && c < 0x7f)) ? (char)c : '?';
        }
        return sm_err_set(err, SM_EUNSUPPORTED, "unknown command \"%s\"", safe);
    }
    return sm_proto_parse_body(f[4].data, f[4].size, max_body, &out->body, err);
}

sm_code sm_proto_parse_body(const unsigned char *data, size_t size, size_t max_body, json_t **out,
                            sm_err *err)
{
    *out = NULL;
    if (size > max_body)
        return sm_err_set(err, SM_ELIMIT, "body of %zu bytes exceeds the limit of %zu bytes", size,
                          max_body);
    if (!sm_utf8_valid(data, size))
        return sm_err_set(err, SM_EINVAL, "body is not valid UTF-8");
    json_error_t je;
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
    if (!body)
        return sm_err_set(err, SM_EFORMAT, "body is not valid JSON: %s at byte %d", je.text,
                          je.position);
    if (!json_is_object(body)) {
        json_decref(body);
        return sm_err_set(err, SM_EFORMAT, "body must be a JSON object");
    }
    if (json_depth(body) > SM_PROTO_MAX_DEPTH) {
        json_decref(body);
        return sm_err_set(err, SM_EFORMAT, "body nests deeper than %d levels", SM_PROTO_MAX_DEPTH);
    }
    *out = body;
    return SM_OK;
}

sm_code sm_proto_send_msg(void *sock, const sm_frame *identity, const char *proto,
                          const char *command, const unsigned char *id, size_t id_len,
                          const json_t *body, sm_err *err)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body && !text)
        return sm_err_set(err, SM_ENOMEM, "cannot serialise a reply");
    /* an ERROR always carries a code and a message, even when its body could not be built */
    const char *empty = strcmp(command, "ERROR") == 0 ? SM_PROTO_ERROR_FALLBACK : "{}";
    sm_frame f[6];
    int n = 0;
    if (identity)
        f[n++] = *identity;
    f[n++] = (sm_frame){(const unsigned char *)"", 0};
    f[n++] = (sm_frame){(const unsigned char *)proto, strlen(proto)};
    f[n++] = (sm_frame){(const unsigned char *)command, strlen(command)};
    f[n++] = (sm_frame){id, id_len};
    f[n++] = (sm_frame){(const unsigned char *)(text ? text : empty),
                        text ? strlen(text) : strlen(empty)};
    sm_code rc = sm_proto_send(sock, f, n, err);
    free(text);
    return rc;
}

json_t *sm_proto_error_body(sm_code code, const char *msg, bool retryable)
{
    char safe[SM_ERR_MSG_MAX];
    utf8_sanitize(msg && *msg ? msg : sm_code_name(code), safe, sizeof safe);
    return json_pack("{s:s, s:s, s:b}", "code", sm_code_name(code), "message", safe, "retryable",
                     retryable);
}

sm_code sm_proto_code_from_name(const char *name)
{
    for (int c = SM_EINVAL; c <= SM_EINTERNAL; c++)
        if (name && strcmp(sm_code_name((sm_code)c), name) == 0)
            return (sm_code)c;
    return SM_EINTERNAL;
}

static const json_t *field(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return (v && !json_is_null(v)) ? v : NULL;
}

sm_code sm_json_str(const json_t *obj, const char *key, bool required, size_t max_len,
                    const char **out, sm_err *err)
{
    const json_t *v = field(obj, key);
    if (!v)
        return required ? sm_err_set(err, SM_EINVAL, "field \"%s\" is required", key) : SM_OK;
    if (!json_is_string(v))
        return sm_err_set(err, SM_EINVAL, "field \"%s\" must be a string", key);
    size_t len = json_string_length(v);
    if (len > max_len)
        return sm_err_set(err, SM_EINVAL, "field \"%s\" is longer than %zu bytes", key, max_len);
    if (required && len == 0)
        return sm_err_set(err, SM_EINVAL, "field \"%s\" must not be empty", key);
    *out = json_string_value(v);
    return SM_OK;
}

sm_code sm_json_int(const json_t *obj, const char *key, bool required, int64_t min, int64_t max,
                    int64_t *out, sm_err *err)
{
    const json_t *v = field(obj, key);
    if (!v)
        return required ? sm_err_set(err, SM_EINVAL, "field \"%s\" is required", key) : SM_OK;
    if (!json_is_integer(v))
        return sm_err_set(err, SM_EINVAL, "field \"%s\" must be an integer", key);
    json_int_t x = json_integer_value(v);
    if (x < min || x > max)
        return sm_err_set(err, SM_EINVAL, "field \"%s\" must be between %lld and %lld", key,
                          (long long)min, (long long)max);
    *out = x;
    return SM_OK;
}

sm_code sm_json_num(const json_t *obj, const char *key, bool required, double min, double max,
                    double *out, sm_err *err)
{
    const json_t *v = field(obj, key);
    if (!v)
        return required ? sm_err_set(err, SM_EINVAL, "field \"%s\" is required", key) : SM_OK;
    if (!json_is_number(v))
        return sm_err_set(err, SM_EINVAL, "field \"%s\" must be a number", key);
    double x = json_number_value(v);
    if (!isfinite(x) || x < min || x > max)
        return sm_err_set(err, SM_EINVAL, "field \"%s\" must be between %g and %g", key, min, max);
    *out = x;
    return SM_OK;
}

sm_code sm_json_bool(const json_t *obj, const char *key, bool required, bool *out, sm_err *err)
{
    const json_t *v = field(obj, key);
    if (!v)
        return required ? sm_err_set(err, SM_EINVAL, "field \"%s\" is required", key) : SM_OK;
    if (!json_is_boolean(v))
        return sm_err_set(err, SM_EINVAL, "field \"%s\" must be true or false", key);
    *out = json_is_true(v);
    return SM_OK;
}

sm_code sm_json_typed(const json_t *obj, const char *key, bool required, json_type type,
                      const json_t **out, sm_err *err)
{
    const json_t *v = field(obj, key);
    if (!v)
        return required ? sm_err_set(err, SM_EINVAL, "field \"%s\" is required", key) : SM_OK;
    if (json_typeof(v) != type)
        return sm_err_set(err, SM_EINVAL, "field \"%s\" must be %s", key,
                          type == JSON_ARRAY ? "an array" : "an object");
    *out = v;
    return SM_OK;
}

bool sm_proto_code_ok(const char *s, size_t max_len)
{
    size_t n = strlen(s);
    if (n == 0 || n > max_len)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}
