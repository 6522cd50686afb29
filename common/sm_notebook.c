/* sm_notebook: Jupyter notebook submissions: check the JSON (jansson), render the cells for the
 * prompt and join the code cells into a module (see sm_notebook.h). */
#include "sm_notebook.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool sm_notebook_detect(const char *text)
{
    if (!text)
        return false;
    while (*text == ' ' || *text == '\t' || *text == '\r' || *text == '\n')
        text++;
    /* a UTF-8 byte-order mark, as some editors write */
    if ((unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB &&
        (unsigned char)text[2] == 0xBF)
        text += 3;
    return *text == '{';
}

static const char *cell_type(const json_t *cell)
{
    return json_string_value(json_object_get(cell, "cell_type"));
}

static sm_code check_cell(const json_t *c, size_t i, sm_err *err)
{
    if (!json_is_object(c))
        return sm_err_set(err, SM_EINVAL, "notebook: cell %zu is not an object", i + 1);
    const char *t = cell_type(c);
    if (!t || (strcmp(t, "markdown") != 0 && strcmp(t, "code") != 0 && strcmp(t, "raw") != 0))
        return sm_err_set(err, SM_EINVAL,
                          "notebook: cell %zu: cell_type must be markdown, code or raw", i + 1);
    const json_t *src = json_object_get(c, "source");
    if (json_is_string(src))
        return SM_OK;
    if (!json_is_array(src))
        return sm_err_set(err, SM_EINVAL,
                          "notebook: cell %zu: source must be a string or a list of strings",
                          i + 1);
    size_t k;
    const json_t *s;
    json_array_foreach(src, k, s)
    {
        if (!json_is_string(s))
            return sm_err_set(err, SM_EINVAL, "notebook: cell %zu: source[%zu] is not a string",
                              i + 1, k);
    }
    return SM_OK;
}

sm_code sm_notebook_check(const char *text, json_t **notebook, sm_err *err)
{
    if (notebook)
        *notebook = NULL;
    if (!text)
        return sm_err_set(err, SM_EINVAL, "notebook: no content");
    size_t n = strlen(text);
    if (n > SM_NOTEBOOK_MAX_BYTES)
        return sm_err_set(err, SM_EINVAL, "notebook: larger than %d bytes", SM_NOTEBOOK_MAX_BYTES);
    json_error_t je;
    json_t *nb = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
    if (!nb)
        return sm_err_set(err, SM_EINVAL, "notebook: not valid JSON (line %d: %s)", je.line,
                          je.text);
    sm_code rc = SM_OK;
    const json_t *fmt = json_object_get(nb, "nbformat");
    const json_t *cells = json_object_get(nb, "cells");
    if (!json_is_object(nb))
        rc = sm_err_set(err, SM_EINVAL, "notebook: not a JSON object");
    else if (!json_is_integer(fmt) || json_integer_value(fmt) != 4)
        rc = sm_err_set(err, SM_EINVAL, "notebook: nbformat must be 4 (save it with Jupyter 4+)");
    else if (!json_is_array(cells))
        rc = sm_err_set(err, SM_EINVAL, "notebook: \"cells\" must be an array");
    else if (json_array_size(cells) > SM_NOTEBOOK_MAX_CELLS)
        rc = sm_err_set(err, SM_EINVAL, "notebook: more than %d cells", SM_NOTEBOOK_MAX_CELLS);
    size_t i;
    const json_t *c;
    json_array_foreach(rc ? NULL : cells, i, c)
    {
        rc = check_cell(c, i, err);
        if (rc)
            break;
    }
    if (rc || !notebook)
        json_decref(nb);
    else
        *notebook = nb;
    return rc;
}

/* A growing string. */
typedef struct buf {
    char *p;
    size_t len, cap;
    bool oom;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* The cell's source as one string (malloc'd; a string holding a NUL ends there). */
static char *cell_source(const json_t *cell)
{
    const json_t *src = json_object_get(cell, "source");
    buf b = {0};
    puts_(&b, "");
    if (json_is_string(src)) {
        puts_(&b, json_string_value(src));
    } else {
        size_t k;
        const json_t *s;
        json_array_foreach(src, k, s) puts_(&b, json_string_value(s));
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* Ends b with exactly one newline. */
static void end_line(buf *b)
{
    while (b->len > 0 && b->p[b->len - 1] == '\n')
        b->p[--b->len] = '\0';
    puts_(b, "\n");
}

static sm_code finish(buf *b, json_t *nb, char **out, sm_err *err)
{
    json_decref(nb);
    if (b->oom || !b->p) {
        free(b->p);
        return sm_err_set(err, SM_ENOMEM, "notebook: out of memory");
    }
    *out = b->p;
    return SM_OK;
}

sm_code sm_notebook_render(const char *text, char **out, sm_err *err)
{
    json_t *nb = NULL;
    sm_code rc = sm_notebook_check(text, &nb, err);
    if (rc)
        return rc;
    buf b = {0};
    puts_(&b, "");
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(nb, "cells"), i, c)
    {
        char marker[64];
        snprintf(marker, sizeof marker, "%s### [cell %zu: %s]\n", i ? "\n" : "", i + 1,
                 cell_type(c));
        puts_(&b, marker);
        char *src = cell_source(c);
        if (!src) {
            b.oom = true;
            break;
        }
        puts_(&b, src);
        end_line(&b);
        free(src);
    }
    return finish(&b, nb, out, err);
}

/* Appends one code cell's lines, IPython syntax commented out. */
static void put_code(buf *b, const char *src)
{
    const char *p = src;
    while (*p == ' ' || *p == '\t' || *p == '\n')
        p++;
    bool whole = strncmp(p, "%%", 2) == 0;
    for (const char *line = src; *line;) {
        size_t n = strcspn(line, "\n");
        const char *q = line;
        while (q < line + n && (*q == ' ' || *q == '\t'))
            q++;
        if (whole || (q < line + n && (*q == '%' || *q == '!')))
            puts_(b, "# (IPython) ");
        put(b, line, n);
        puts_(b, "\n");
        line += n;
        if (*line == '\n')
            line++;
    }
}

sm_code sm_notebook_code(const char *text, char **out, sm_err *err)
{
    json_t *nb = NULL;
    sm_code rc = sm_notebook_check(text, &nb, err);
    if (rc)
        return rc;
    buf b = {0};
    puts_(&b, "");
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(nb, "cells"), i, c)
    {
        if (strcmp(cell_type(c), "code") != 0)
            continue;
        char marker[64];
        snprintf(marker, sizeof marker, "# [cell %zu]\n", i + 1);
        puts_(&b, marker);
        char *src = cell_source(c);
        if (!src) {
            b.oom = true;
            break;
        }
        put_code(&b, src);
        free(src);
    }
    return finish(&b, nb, out, err);
}
