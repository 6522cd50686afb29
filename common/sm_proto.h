/* sm_proto: the stepmark wire protocol codec shared by stepmarkd, the CLI, workers and tests
 * (docs/protocol.md is the specification). Every request or reply is a multipart ZeroMQ
 * message of exactly five frames after any ROUTER identity:
 *   ""  |  protocol ("SMC1" client, "SMW1" worker)  |  command  |  correlation id  |  JSON body
 * This module receives messages with bounded frame counts, checks the framing, version,
 * command, sizes, UTF-8 and JSON (every failure is a typed sm_code with a message), offers
 * checked field readers for JSON bodies, and builds and sends replies. */
#ifndef SM_PROTO_H
#define SM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <zmq.h>

#include "sm_error.h"

#define SM_PROTO_CLIENT "SMC1"
#define SM_PROTO_WORKER "SMW1"
#define SM_PROTO_EVENT "SME1"
#define SM_PROTO_FRAMES 5       /* frames of a message after the routing identity */
#define SM_PROTO_MAX_FRAMES 8   /* frames kept by sm_msg_recv (identity + 5 + slack) */
#define SM_PROTO_MAX_ID 64      /* longest correlation id */
#define SM_PROTO_MAX_COMMAND 32 /* longest command name */
#define SM_PROTO_MAX_DEPTH 16   /* deepest JSON nesting accepted */

/* A view of one frame. */
typedef struct sm_frame {
    const unsigned char *data;
    size_t size;
} sm_frame;

/* One received multipart message: the first SM_PROTO_MAX_FRAMES frames are kept, the rest
 * are read and dropped but counted in total. */
typedef struct sm_msg {
    int n;     /* frames kept */
    int total; /* frames received */
    zmq_msg_t f[SM_PROTO_MAX_FRAMES];
} sm_msg;

/* Receives one whole message (flags: 0 or ZMQ_DONTWAIT). Returns SM_OK, SM_ESTATE when
 * ZMQ_DONTWAIT found nothing (or the call was interrupted), SM_EIO on a socket error. */
sm_code sm_msg_recv(void *sock, sm_msg *m, int flags, sm_err *err);
void sm_msg_close(sm_msg *m);
sm_frame sm_msg_frame(const sm_msg *m, int i);
/* The ZAP User-Id of the peer that sent m ("" when none). */
const char *sm_msg_user(sm_msg *m);

/* Sends frames as one multipart message. */
sm_code sm_proto_send(void *sock, const sm_frame *f, int n, sm_err *err);

/* A parsed request (or reply). body is owned (json_decref via sm_request_clear). */
typedef struct sm_request {
    int cmd; /* index into the caller's command list */
    char command[SM_PROTO_MAX_COMMAND + 1];
    unsigned char id[SM_PROTO_MAX_ID];
    size_t id_len;
    json_t *body;
} sm_request;

void sm_request_clear(sm_request *r);

/* Parses the five frames f[0..n) (identity already removed) of a message of protocol proto
 * whose command must be one of the NULL-terminated list commands. total is the number of
 * frames that arrived (to report extra frames). The correlation id is copied into out even
 * when a later check fails, so that the error reply can carry it. Errors:
 *   SM_EPROTO       wrong frame count, non-empty delimiter, bad correlation id
 *   SM_EUNSUPPORTED another protocol or version; unknown command
 *   SM_ELIMIT       body larger than max_body
 *   SM_EINVAL       body not valid UTF-8
 *   SM_EFORMAT      body not a JSON object (syntax, duplicate keys, too deep, NUL) */
sm_code sm_proto_parse(const char *proto, const char *const *commands, const sm_frame *f, int n,
                       int total, size_t max_body, sm_request *out, sm_err *err);

/* The body rules of sm_proto_parse alone (the HTTP API applies them to its JSON bodies): at most
 * max_body bytes (SM_ELIMIT), UTF-8 (SM_EINVAL), a JSON object without duplicate keys, NUL in
 * strings or more than SM_PROTO_MAX_DEPTH levels (SM_EFORMAT). */
sm_code sm_proto_parse_body(const unsigned char *data, size_t size, size_t max_body, json_t **out,
                            sm_err *err);

/* Strict UTF-8 check (no overlong forms, no surrogates, nothing above U+10FFFF). */
bool sm_utf8_valid(const unsigned char *s, size_t n);

/* The body of an ERROR whose own body could not be built (out of memory). */
#define SM_PROTO_ERROR_FALLBACK \
    "{\"code\":\"EINTERNAL\",\"message\":\"the error reply could not be built\",\"retryable\":true}"

/* Builds [identity?] "" proto command id body and sends it. identity may be NULL (DEALER
 * side). body is serialised compactly (NULL sends "{}", or SM_PROTO_ERROR_FALLBACK when the
 * command is ERROR). */
sm_code sm_proto_send_msg(void *sock, const sm_frame *identity, const char *proto,
                          const char *command, const unsigned char *id, size_t id_len,
                          const json_t *body, sm_err *err);

/* The error body {"code": NAME, "message": msg, "retryable": bool}. Bytes of msg that are not
 * valid UTF-8 become '?', and an empty msg becomes the code's name, so the body always carries
 * both (NULL only when out of memory). */
json_t *sm_proto_error_body(sm_code code, const char *msg, bool retryable);

/* The sm_code named by an error name such as "ELIMIT" (SM_EINTERNAL when unknown). */
sm_code sm_proto_code_from_name(const char *name);

/* Checked readers of body fields. A missing or null optional field leaves *out untouched and
 * returns SM_OK; a missing required one, a wrong type or a value out of bounds is SM_EINVAL
 * with a message naming the field. */
sm_code sm_json_str(const json_t *obj, const char *key, bool required, size_t max_len,
                    const char **out, sm_err *err);
sm_code sm_json_int(const json_t *obj, const char *key, bool required, int64_t min, int64_t max,
                    int64_t *out, sm_err *err);
sm_code sm_json_num(const json_t *obj, const char *key, bool required, double min, double max,
                    double *out, sm_err *err);
sm_code sm_json_bool(const json_t *obj, const char *key, bool required, bool *out, sm_err *err);
/* Field key must be absent, null, or of the given JSON type (JSON_ARRAY, JSON_OBJECT). */
sm_code sm_json_typed(const json_t *obj, const char *key, bool required, json_type type,
                      const json_t **out, sm_err *err);
/* Whether s is a plain code: 1..max_len of [A-Za-z0-9._-]. Used for course and assignment
 * codes (they appear in event topics). */
bool sm_proto_code_ok(const char *s, size_t max_len);

#endif
