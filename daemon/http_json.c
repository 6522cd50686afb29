/* http_json: turns libpq result rows into jansson values, typed by column: integers,
 * numerics and floats as JSON numbers, booleans, json/jsonb parsed, everything else a string
 * (made valid UTF-8), SQL NULL as null. */
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

/* PostgreSQL type oids (pg_type.h is not installed with libpq). */
#define OID_BOOL 16
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_JSON 114
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_NUMERIC 1700
#define OID_JSONB 3802
#define OID_TIMESTAMPTZ 1184

json_t *http_json_string(const char *s)
{
    json_t *v = json_string(s);
    if (v)
        return v;
    /* Not valid UTF-8: copy, replacing each bad byte with U+FFFD. */
    size_t n = strlen(s);
    char *o = malloc(3 * n + 1);
    if (!o)
        return json_null();
    size_t k = 0;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = len > 0 && i + len <= n;
        for (size_t j = 1; ok && j < len; j++)
            ok = (p[i + j] & 0xC0) == 0x80;
        if (ok && len > 1) {
            char tmp[5] = {0};
            memcpy(tmp, p + i, len);
            json_t *t = json_string(tmp);
            ok = t != NULL;
            json_decref(t);
        }
        if (ok) {
            memcpy(o + k, p + i, len);
            k += len;
            i += len;
        } else {
            memcpy(o + k, "\xEF\xBF\xBD", 3);
            k += 3;
            i += 1;
        }
    }
    o[k] = '\0';
    v = json_string(o);
    free(o);
    return v ? v : json_null();
}

static json_t *cell(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return json_null();
    const char *s = PQgetvalue(r, row, col);
    switch (PQftype(r, col)) {
    case OID_BOOL:
        return json_boolean(s[0] == 't');
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
        return json_integer(strtoll(s, NULL, 10));
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC: {
        char *end;
        double d = strtod(s, &end);
        if (*end != '\0') /* NaN or Infinity have no JSON form */
            return json_null();
        return json_real(d);
    }
    case OID_JSON:
    case OID_JSONB: {
        json_t *v = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        return v ? v : json_null();
    }
    case OID_TIMESTAMPTZ: {
        /* "2026-11-23 09:00:00.12+00" -> ISO 8601 "2026-11-23T09:00:00.12+00:00" */
        char iso[64];
        size_t n = strlen(s);
        if (n + 4 > sizeof iso)
            return http_json_string(s);
        memcpy(iso, s, n + 1);
        char *sp = strchr(iso, ' ');
        if (sp)
            *sp = 'T';
        if (n > 3 && (iso[n - 3] == '+' || iso[n - 3] == '-'))
            memcpy(iso + n, ":00", 4);
        return json_string(iso);
    }
    default:
        return http_json_string(s);
    }
}

json_t *http_row_json(const PGresult *r, int row)
{
    json_t *o = json_object();
    int n = PQnfields(r);
    for (int c = 0; c < n; c++)
        json_object_set_new(o, PQfname(r, c), cell(r, row, c));
    return o;
}

json_t *http_rows_json(const PGresult *r)
{
    json_t *a = json_array();
    int n = PQntuples(r);
    for (int i = 0; i < n; i++)
        json_array_append_new(a, http_row_json(r, i));
    return a;
}
