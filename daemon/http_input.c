/* http_input: checks on what a client sends before any of it reaches a handler or the
 * database: UTF-8 validity of the path and of every query parameter, strict decimal numbers for
 * the score filters, and JSON request bodies parsed with duplicate keys refused. Bad input is
 * the client's fault: each check fills a 400 with a JSON error, never a 500. Pure functions
 * (no server needed), so the unit tests and the fuzz targets call them directly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

bool http_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned min, cp;
        if ((c & 0xE0) == 0xC0) {
            len = 2, min = 0x80, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, min = 0x800, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, min = 0x10000, cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n)
            return false;
        for (size_t j = 1; j < len; j++) {
            if ((p[i + j] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + j] & 0x3F);
        }
        /* overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8 */
        if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return false;
        i += len;
    }
    return true;
}

bool http_decimal_valid(const char *s)
{
    if (!s)
        return false;
    size_t n = strlen(s);
    if (n == 0 || n > HTTP_MAX_DECIMAL)
        return false;
    const char *p = s;
    if (*p == '-')
        p++;
    size_t int_digits = 0, frac_digits = 0;
    while (*p >= '0' && *p <= '9')
        p++, int_digits++;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9')
            p++, frac_digits++;
        if (frac_digits == 0)
            return false;
    }
    /* at most 9 integer digits: every value lies strictly within +-1e9 */
    return *p == '\0' && int_digits >= 1 && int_digits <= 9;
}

typedef struct arg_check {
    const char *bad; /* the first parameter found invalid, NULL when all are valid */
} arg_check;

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    arg_check *c = cls;
    if (!http_utf8_valid(key, strlen(key)) || (value && !http_utf8_valid(value, strlen(value)))) {
        c->bad = key;
        return MHD_NO;
    }
    return MHD_YES;
}

bool http_input_check(http_req *rq, http_resp *rs)
{
    if (!http_utf8_valid(rq->url, strlen(rq->url))) {
        http_resp_error(rs, 400, "EINVAL", "the path is not valid UTF-8");
        return false;
    }
    arg_check c = {0};
    MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, check_arg, &c);
    if (c.bad) {
        http_resp_error(rs, 400, "EINVAL", "a query parameter is not valid UTF-8");
        return false;
    }
    return true;
}

sm_code http_body_json(const char *body, size_t len, json_t **out, sm_err *err)
{
    *out = NULL;
    if (!body || len == 0)
        return sm_err_set(err, SM_EINVAL, "the body is empty");
    json_error_t je;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        return sm_err_set(err, SM_EINVAL, "the body is not valid JSON: %s", je.text);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return sm_err_set(err, SM_EINVAL, "the body must be a JSON object");
    }
    *out = doc;
    return SM_OK;
}
