/* serve_api: the OpenAI request and response bodies of `stepmark-engine serve`'s generation
 * endpoints (/v1/completions, /v1/chat/completions, streamed as server-sent events or not), and
 * the helpers of serve_http.c they share: OpenAI's error shape and JSON responses. */
#ifndef SM_SERVE_API_H
#define SM_SERVE_API_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdarg.h>

#include "serve.h"

/* An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}. */
typedef struct serve_error {
    int status;
    const char *type;
    const char *code;
    char param[48];
    char message[512];
} serve_error;

void serve_error_set(serve_error *e, int status, const char *param, const char *code,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
json_t *serve_error_json(const serve_error *e);

/* Endpoint numbers for the request counters. */
enum { SERVE_EP_COMPLETIONS = 0, SERVE_EP_CHAT = 1 };

/* Send body (stolen) as JSON / an error, counting the request under endpoint ep. */
enum MHD_Result serve_send_json(serve_http *h, struct MHD_Connection *c, int ep, unsigned status,
                                json_t *body);
enum MHD_Result serve_send_error(serve_http *h, struct MHD_Connection *c, int ep,
                                 const serve_error *e);
void serve_http_count(serve_http *h, int ep, unsigned status);

const serve_http_opts *serve_http_options(const serve_http *h);
serve_engine *serve_http_engine(const serve_http *h);

/* Handles a POST to /v1/completions (chat false) or /v1/chat/completions with its body. t0: when
 * the request arrived (for the latency histogram). */
enum MHD_Result serve_api_generate(serve_http *h, struct MHD_Connection *c, bool chat,
                                   const char *body, size_t len, double t0);

#endif
