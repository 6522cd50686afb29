/* sm_rubric: parsing and checking an assignment's rubric (free text or criteria; see
 * sm_rubric.h and docs/protocol.md). */
#include "sm_rubric.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

bool sm_rubric_two_decimals(double x)
{
    if (!isfinite(x))
        return false;
    double v = x * 100.0;
    /* 1e-9 absolute, widened by the rounding error of large values (999999.99 * 100) */
    return fabs(v - round(v)) <= 1e-9 * fmax(1.0, fabs(v));
}

bool sm_rubric_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n < 1 || n > SM_RUBRIC_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        bool alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && ch != '_' && ch != '.' && ch != '-')
            return false;
    }
    return true;
}

/* Well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF). */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

static bool blank(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return false;
    return true;
}

static bool check_name_valid(const char *s)
{
    if (!strcmp(s, "compile") || !strcmp(s, "answer") || !strcmp(s, "tests"))
        return true;
    return !strncmp(s, "test:", 5) && s[5] != '\0';
}

static sm_code parse_checks(const json_t *checks, int i, sm_criterion *c, sm_err *err)
{
    size_t n = json_is_array(checks) ? json_array_size(checks) : 0;
    if (n < 1 || n > SM_RUBRIC_MAX_CHECKS)
        return sm_err_set(err, SM_EINVAL,
                          "rubric[%d].checks must be an array of 1 to %d check names", i,
                          SM_RUBRIC_MAX_CHECKS);
    c->checks = calloc(n, sizeof *c->checks);
    if (!c->checks)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    for (size_t k = 0; k < n; k++) {
        const char *s = json_string_value(json_array_get(checks, k));
        if (!s || !check_name_valid(s) || strlen(s) > 200)
            return sm_err_set(err, SM_EINVAL,
                              "rubric[%d].checks[%zu] must be \"compile\", \"answer\", \"tests\" "
                              "or \"test:<name>\"",
                              i, k);
        for (int j = 0; j < c->n_checks; j++)
            if (!strcmp(c->checks[j], s))
                return sm_err_set(err, SM_EINVAL, "rubric[%d].checks[%zu] repeats \"%s\"", i, k, s);
        c->checks[k] = strdup(s);
        if (!c->checks[k])
            return sm_err_set(err, SM_ENOMEM, "out of memory");
        c->n_checks++;
    }
    return SM_OK;
}

static sm_code parse_keys(const json_t *o, int i, sm_err *err)
{
    if (!json_is_object(o))
        return sm_err_set(err, SM_EINVAL,
                          "rubric[%d] must be an object with id, description, points and "
                          "optionally checks",
                          i);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)o, key, v)
    {
        if (strcmp(key, "id") && strcmp(key, "description") && strcmp(key, "points") &&
            strcmp(key, "checks"))
            return sm_err_set(err, SM_EINVAL,
                              "rubric[%d] has an unknown key \"%.40s\" (allowed: id, "
                              "description, points, checks)",
                              i, key);
    }
    return SM_OK;
}

static sm_code parse_criterion(const json_t *o, int i, sm_criterion *c, sm_err *err)
{
    sm_code rc = parse_keys(o, i, err);
    if (rc)
        return rc;
    const char *id = json_string_value(json_object_get(o, "id"));
    if (!id || !sm_rubric_id_valid(id))
        return sm_err_set(err, SM_EINVAL,
                          "rubric[%d].id must be 1 to %d characters of A-Z, a-z, 0-9, _ . -", i,
                          SM_RUBRIC_ID_MAX);
    memcpy(c->id, id, strlen(id) + 1);
    const json_t *d = json_object_get(o, "description");
    const char *desc = json_string_value(d);
    size_t dlen = desc ? json_string_length(d) : 0;
    if (!desc || dlen < 1 || dlen > SM_RUBRIC_DESCRIPTION_MAX || strlen(desc) != dlen ||
        !utf8_valid((const unsigned char *)desc, dlen) || blank(desc))
        return sm_err_set(err, SM_EINVAL,
                          "rubric[%d].description must be non-blank UTF-8 text of 1 to %d bytes", i,
                          SM_RUBRIC_DESCRIPTION_MAX);
    c->description = strdup(desc);
    if (!c->description)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    const json_t *p = json_object_get(o, "points");
    double pts = json_is_number(p) ? json_number_value(p) : NAN;
    if (!(pts > 0) || pts > SM_RUBRIC_POINTS_MAX || !sm_rubric_two_decimals(pts))
        return sm_err_set(err, SM_EINVAL,
                          "rubric[%d].points must be a number > 0 and <= 999999 with at most 2 "
                          "decimals",
                          i);
    c->points = pts;
    const json_t *checks = json_object_get(o, "checks");
    return checks ? parse_checks(checks, i, c, err) : SM_OK;
}

static sm_code parse_array(const json_t *rubric, sm_rubric *out, sm_err *err)
{
    size_t n = json_array_size(rubric);
    if (n < 1 || n > SM_RUBRIC_MAX_CRITERIA)
        return sm_err_set(err, SM_EINVAL, "rubric must list 1 to %d criteria (it has %zu)",
                          SM_RUBRIC_MAX_CRITERIA, n);
    out->c = calloc(n, sizeof *out->c);
    if (!out->c)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        sm_criterion *c = &out->c[i];
        out->n = (int)i + 1;
        sm_code rc = parse_criterion(json_array_get(rubric, i), (int)i, c, err);
        if (rc)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(out->c[j].id, c->id))
                return sm_err_set(err, SM_EINVAL, "rubric[%zu].id \"%s\" repeats rubric[%zu].id", i,
                                  c->id, j);
        out->total += c->points;
    }
    out->total = round(out->total * 100.0) / 100.0;
    return SM_OK;
}

sm_code sm_rubric_parse(const json_t *rubric, sm_rubric *out, sm_err *err)
{
    memset(out, 0, sizeof *out);
    if (!rubric || json_is_null(rubric))
        return SM_OK;
    if (json_is_string(rubric)) {
        out->text = json_string_value(rubric);
        return SM_OK;
    }
    if (!json_is_array(rubric))
        return sm_err_set(err, SM_EINVAL, "rubric must be a string or an array of criteria");
    sm_code rc = parse_array(rubric, out, err);
    if (rc)
        sm_rubric_clear(out);
    return rc;
}

void sm_rubric_clear(sm_rubric *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n; i++) {
        free(r->c[i].description);
        for (int k = 0; k < r->c[i].n_checks; k++)
            free(r->c[i].checks[k]);
        free(r->c[i].checks);
    }
    free(r->c);
    memset(r, 0, sizeof *r);
}

const sm_criterion *sm_rubric_find(const sm_rubric *r, const char *id)
{
    if (!r || !id)
        return NULL;
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->c[i].id, id))
            return &r->c[i];
    return NULL;
}
