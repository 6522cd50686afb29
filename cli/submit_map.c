/* submit_map: the --map CSV of `stepmark submit FOLDER` (submit_map.h). */
#include "submit_map.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FIELD_MAX 1024
#define STUDENT_MAX 200

/* One CSV field from *p (quoted or not) into out; *p moves past it and its comma. False when a
 * quoted field is not closed or the field is too long. */
static bool csv_field(const char **p, char *out, size_t n)
{
    const char *s = *p;
    size_t k = 0;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '"') {
        for (s++;; s++) {
            if (*s == '\0')
                return false;
            if (*s == '"' && s[1] == '"')
                s++;
            else if (*s == '"')
                break;
            if (k + 1 >= n)
                return false;
            out[k++] = *s;
        }
        s++;
        while (*s == ' ' || *s == '\t')
            s++;
    } else {
        for (; *s && *s != ','; s++) {
            if (k + 1 >= n)
                return false;
            out[k++] = *s;
        }
        while (k > 0 && (out[k - 1] == ' ' || out[k - 1] == '\t'))
            k--;
    }
    out[k] = '\0';
    if (*s == ',')
        s++;
    else if (*s != '\0')
        return false;
    *p = s;
    return true;
}

static sm_code map_add(sm_submit_map *m, const char *file, const char *student)
{
    const char *slash = strrchr(file, '/');
    const char *base = slash ? slash + 1 : file;
    char **f = realloc(m->files, (m->n + 1) * sizeof *f);
    if (f)
        m->files = f;
    char **s = f ? realloc(m->students, (m->n + 1) * sizeof *s) : NULL;
    if (s)
        m->students = s;
    if (!f || !s)
        return SM_ENOMEM;
    m->files[m->n] = strdup(base);
    m->students[m->n] = strdup(student);
    m->n++;
    return m->files[m->n - 1] && m->students[m->n - 1] ? SM_OK : SM_ENOMEM;
}

/* One line (no newline) of the map: SM_OK, or SM_EINVAL with why. */
static sm_code map_line(sm_submit_map *m, const char *line, int lineno, const char *path,
                        sm_err *err)
{
    char file[FIELD_MAX], student[FIELD_MAX];
    const char *p = line;
    if (!csv_field(&p, file, sizeof file) || !csv_field(&p, student, sizeof student) || *p)
        return sm_err_set(err, SM_EINVAL, "%s:%d: expected two fields, file,student_ref", path,
                          lineno);
    if (m->n == 0 && lineno == 1 && !strcasecmp(file, "file") &&
        !strcasecmp(student, "student_ref"))
        return SM_OK; /* the header */
    if (!file[0] || !student[0])
        return sm_err_set(err, SM_EINVAL, "%s:%d: an empty %s", path, lineno,
                          file[0] ? "student_ref" : "file name");
    if (strlen(student) > STUDENT_MAX)
        return sm_err_set(err, SM_EINVAL, "%s:%d: student_ref is longer than %d bytes", path,
                          lineno, STUDENT_MAX);
    const char *slash = strrchr(file, '/');
    if (sm_submit_map_find(m, slash ? slash + 1 : file))
        return sm_err_set(err, SM_EINVAL, "%s:%d: %s is named twice", path, lineno, file);
    if (map_add(m, file, student) != SM_OK)
        return sm_err_set(err, SM_ENOMEM, "out of memory reading %s", path);
    return SM_OK;
}

sm_code sm_submit_map_load(const char *path, sm_submit_map *m, sm_err *err)
{
    memset(m, 0, sizeof *m);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return sm_err_set(err, SM_EIO, "cannot open the map %s: %s", path, strerror(errno));
    char line[2 * FIELD_MAX + 16];
    int lineno = 0;
    sm_code rc = SM_OK;
    while (rc == SM_OK && fgets(line, sizeof line, fp)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            rc = sm_err_set(err, SM_EINVAL, "%s:%d: the line is too long", path, lineno);
            break;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        const char *t = line;
        if (lineno == 1 && !strncmp(t, "\xEF\xBB\xBF", 3))
            t += 3; /* a byte order mark, as spreadsheets write it */
        if (t[strspn(t, " \t")] == '\0')
            continue;
        rc = map_line(m, t, lineno, path, err);
    }
    if (rc == SM_OK && ferror(fp))
        rc = sm_err_set(err, SM_EIO, "cannot read the map %s", path);
    fclose(fp);
    if (rc != SM_OK)
        sm_submit_map_free(m);
    return rc;
}

const char *sm_submit_map_find(const sm_submit_map *m, const char *base)
{
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->files[i], base))
            return m->students[i];
    return NULL;
}

void sm_submit_map_free(sm_submit_map *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->files[i]);
        free(m->students[i]);
    }
    free(m->files);
    free(m->students);
    memset(m, 0, sizeof *m);
}
