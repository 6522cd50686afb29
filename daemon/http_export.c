/* http_export: gradebook exports of one assignment. CSV in three layouts: "moodle" (Moodle's
 * "Import grades from CSV": an identifier column mapped on import, one grade column named
 * after the assignment), "canvas" (Canvas's gradebook import: Student, ID, SIS User ID,
 * SIS Login ID, Section, "<Assignment> (<canvas id>)" plus the Points Possible row) and
 * "plain"; and JSON with the critique steps and the released feedback (what the student
 * sees, sm_released_feedback). The Moodle layout carries the teacher's comment in a
 * "Feedback comments" column (mapped to the grade item's feedback on import). One row per
 * student (their latest submission); final score = the latest reviewed score if any, else the
 * model's. The student's LMS name (LTI roster) is the Canvas layout's "Student", the plain
 * layout's last column "name" and the JSON's student_name; the Moodle layout has none (Moodle
 * matches users by email or ID number and ignores unmapped columns). Cells are protected
 * against CSV formula injection. With criteria=1 the CSV gains a column "criterion:<id>" per
 * criterion of the assignment's rubric (the current points of the latest grading; the Canvas
 * layout's Points Possible row holds each criterion's points). See docs/teacher-guide.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "http_store.h"

/* Writes one CSV cell: quoted when needed; a text starting with = + - @ tab or CR gets a
 * leading ' so spreadsheets do not run it as a formula. */
void http_csv_cell(FILE *f, const char *s, bool text, bool last)
{
    if (!s)
        s = "";
    bool formula = text && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' ||
                            s[0] == '\t' || s[0] == '\r');
    bool quote = formula || strpbrk(s, ",\"\r\n") != NULL;
    if (quote)
        fputc('"', f);
    if (formula)
        fputc('\'', f);
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            fputc('"', f);
        fputc(*p, f);
    }
    if (quote)
        fputc('"', f);
    fputs(last ? "\r\n" : ",", f);
}

static bool load_assignment(http_req *rq, http_resp *rs, PGconn *db, const char *aid,
                            PGresult **out)
{
    const char *p[] = {aid, rq->teacher_id_s};
    sm_err err = {0};
    if (http_store_export_assignment(db, p, out, &err) != SM_OK) {
        http_db_failed(rs, &err);
        return false;
    }
    if (PQntuples(*out) != 1) {
        PQclear(*out);
        http_resp_error(rs, 404, "ENOTFOUND", "no such assignment");
        return false;
    }
    return true;
}

static void safe_filename(const char *in, char *out, size_t n)
{
    size_t k = 0;
    for (const char *p = in; *p && k + 1 < n; p++)
        out[k++] = ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_')
                       ? *p
                       : '_';
    out[k] = '\0';
}

static void set_download(http_resp *rs, const char *course, const char *code, const char *fmt,
                         const char *ext)
{
    char c[96], a[96], buf[320];
    safe_filename(course, c, sizeof c);
    safe_filename(code, a, sizeof a);
    snprintf(buf, sizeof buf, "attachment; filename=\"%s-%s-%s.%s\"", c, a, fmt, ext);
    rs->disposition = strdup(buf);
}

/* With criteria=1: one cell per criterion of crit (the assignment's rubric_criteria), its
 * "criterion:<id>" name or (points) its points, ending the line. */
static void crit_cells(FILE *f, const json_t *crit, bool points)
{
    size_t i, n = json_array_size(crit);
    json_t *c;
    json_array_foreach(crit, i, c)
    {
        char cell[64];
        if (points)
            snprintf(cell, sizeof cell, "%g", json_number_value(json_object_get(c, "points")));
        else
            snprintf(cell, sizeof cell, "criterion:%s",
                     json_string_value(json_object_get(c, "id")));
        http_csv_cell(f, cell, !points, i + 1 == n);
    }
}

/* The current points of each criterion of crit in row i (empty cells without a grading). */
static void crit_row(FILE *f, const json_t *crit, PGresult *r, int i)
{
    json_t *got = json_loads(PQgetvalue(r, i, PQfnumber(r, "criteria")), 0, NULL);
    size_t k, n = json_array_size(crit);
    json_t *c;
    json_array_foreach(crit, k, c)
    {
        const char *id = json_string_value(json_object_get(c, "id"));
        char cell[32] = "";
        size_t j;
        json_t *g;
        json_array_foreach(got, j, g)
        {
            const json_t *pts = json_object_get(g, "current_points");
            if (!strcmp(json_string_value(json_object_get(g, "id")), id) && json_is_number(pts))
                snprintf(cell, sizeof cell, "%g", json_number_value(pts));
        }
        http_csv_cell(f, cell, false, k + 1 == n);
    }
    json_decref(got);
}

/* The header line(s) of a CSV export in format fmt; crit: the criteria columns (an empty
 * array for none). */
static void csv_header(FILE *f, const char *fmt, const char *title, const char *max,
                       int64_t canvas_id, const json_t *crit)
{
    bool more = json_array_size(crit) > 0;
    char column[512];
    if (strcmp(fmt, "moodle") == 0) {
        http_csv_cell(f, "Email address", true, false);
        http_csv_cell(f, "ID number", true, false);
        http_csv_cell(f, title, true, false);
        http_csv_cell(f, "Status", true, false);
        http_csv_cell(f, "Feedback comments", true, !more);
    } else if (strcmp(fmt, "canvas") == 0) {
        if (canvas_id)
            snprintf(column, sizeof column, "%s (%lld)", title, (long long)canvas_id);
        else
            snprintf(column, sizeof column, "%s", title);
        const char *head[] = {"Student", "ID", "SIS User ID", "SIS Login ID", "Section"};
        for (int i = 0; i < 5; i++)
            http_csv_cell(f, head[i], true, false);
        http_csv_cell(f, column, true, !more);
        crit_cells(f, crit, false);
        const char *pp[] = {"    Points Possible", "", "", "", ""};
        for (int i = 0; i < 5; i++)
            http_csv_cell(f, pp[i], true, false);
        http_csv_cell(f, max, false, !more);
        crit_cells(f, crit, true);
        return;
    } else {
        const char *head[] = {"student", "score", "max_score",     "model_score", "status",
                              "flagged", "flags", "submission_id", "name"};
        for (int i = 0; i < 9; i++)
            http_csv_cell(f, head[i], true, i == 8 && !more);
    }
    crit_cells(f, crit, false);
}

/* The flags of row i as "a;b;c" (at most cap bytes). */
static void csv_flags(PGresult *r, int i, char *flags, size_t cap)
{
    json_t *fl = json_loads(PQgetvalue(r, i, PQfnumber(r, "flags")), 0, NULL);
    size_t k = 0, idx;
    json_t *v;
    flags[0] = '\0';
    json_array_foreach(fl, idx, v)
    {
        const char *s = json_string_value(v);
        if (s && k + strlen(s) + 2 < cap)
            k += (size_t)snprintf(flags + k, cap - k, "%s%s", k ? ";" : "", s);
    }
    json_decref(fl);
}

/* Row i of the latest-per-student result r as one CSV line in format fmt. */
static void csv_row(FILE *f, const char *fmt, PGresult *r, int i, const char *max,
                    const json_t *crit)
{
    bool more = json_array_size(crit) > 0;
    const char *student = PQgetvalue(r, i, PQfnumber(r, "student_ref"));
    int c_fin = PQfnumber(r, "final_score"), c_mod = PQfnumber(r, "model_score");
    const char *score = PQgetisnull(r, i, c_fin) ? "" : PQgetvalue(r, i, c_fin);
    const char *state = PQgetvalue(r, i, PQfnumber(r, "state"));
    const char *name = PQgetvalue(r, i, PQfnumber(r, "student_name"));
    bool email = strchr(student, '@') != NULL;
    if (strcmp(fmt, "moodle") == 0) {
        http_csv_cell(f, email ? student : "", true, false);
        http_csv_cell(f, email ? "" : student, true, false);
        http_csv_cell(f, score, false, false);
        http_csv_cell(f, state, true, false);
        http_csv_cell(f, PQgetvalue(r, i, PQfnumber(r, "feedback_comment")), true, !more);
    } else if (strcmp(fmt, "canvas") == 0) {
        http_csv_cell(f, name[0] ? name : student, true, false);
        http_csv_cell(f, "", true, false);
        http_csv_cell(f, email ? "" : student, true, false);
        http_csv_cell(f, email ? student : "", true, false);
        http_csv_cell(f, "", true, false);
        http_csv_cell(f, score, false, !more);
    } else {
        char flags[1024];
        csv_flags(r, i, flags, sizeof flags);
        int c_max = PQfnumber(r, "max_score");
        http_csv_cell(f, student, true, false);
        http_csv_cell(f, score, false, false);
        http_csv_cell(f, PQgetisnull(r, i, c_max) ? max : PQgetvalue(r, i, c_max), false, false);
        http_csv_cell(f, PQgetisnull(r, i, c_mod) ? "" : PQgetvalue(r, i, c_mod), false, false);
        http_csv_cell(f, state, true, false);
        http_csv_cell(f, PQgetvalue(r, i, PQfnumber(r, "flagged"))[0] == 't' ? "yes" : "no", true,
                      false);
        http_csv_cell(f, flags, true, false);
        http_csv_cell(f, PQgetvalue(r, i, PQfnumber(r, "submission_id")), false, false);
        http_csv_cell(f, name, true, !more);
    }
    crit_row(f, crit, r, i);
}

void http_api_export_csv(http_req *rq, http_resp *rs, int64_t assignment_id)
{
    const char *fmt = http_arg(rq, "format");
    if (!fmt)
        fmt = "plain";
    if (strcmp(fmt, "moodle") != 0 && strcmp(fmt, "canvas") != 0 && strcmp(fmt, "plain") != 0) {
        http_resp_error(rs, 400, "EINVAL", "format must be moodle, canvas or plain");
        return;
    }
    int64_t canvas_id = 0;
    const char *cid = http_arg(rq, "canvas_id");
    if (cid && !http_parse_id(cid, &canvas_id)) {
        http_resp_error(rs, 400, "EINVAL", "canvas_id must be a positive number");
        return;
    }
    const char *cr = http_arg(rq, "criteria");
    if (cr && strcmp(cr, "0") != 0 && strcmp(cr, "1") != 0) {
        http_resp_error(rs, 400, "EINVAL", "criteria must be 0 or 1");
        return;
    }
    bool with_criteria = cr && strcmp(cr, "1") == 0;
    PGconn *db = http_db(rq, rs);
    if (!db)
        return;
    char aid[24];
    snprintf(aid, sizeof aid, "%lld", (long long)assignment_id);
    PGresult *ar, *r;
    if (!load_assignment(rq, rs, db, aid, &ar))
        return;
    const char *p[] = {aid};
    sm_err err = {0};
    if (http_store_export_latest(db, p, &r, &err) != SM_OK) {
        PQclear(ar);
        http_db_failed(rs, &err);
        return;
    }
    const char *title = PQgetvalue(ar, 0, 2)[0] ? PQgetvalue(ar, 0, 2) : PQgetvalue(ar, 0, 1);
    const char *max = PQgetvalue(ar, 0, 3);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        PQclear(ar);
        PQclear(r);
        http_resp_error(rs, 500, "ENOMEM", "out of memory");
        return;
    }
    json_t *crit = with_criteria ? json_loads(PQgetvalue(ar, 0, 5), 0, NULL) : NULL;
    csv_header(f, fmt, title, max, canvas_id, crit);
    for (int i = 0; i < PQntuples(r); i++)
        csv_row(f, fmt, r, i, max, crit);
    json_decref(crit);
    fclose(f);
    set_download(rs, PQgetvalue(ar, 0, 4), PQgetvalue(ar, 0, 1), fmt, "csv");
    PQclear(ar);
    PQclear(r);
    http_resp_text(rs, 200, "text/csv; charset=utf-8", buf, len);
}

void http_api_export_json(http_req *rq, http_resp *rs, int64_t assignment_id)
{
    PGconn *db = http_db(rq, rs);
    if (!db)
        return;
    char aid[24];
    snprintf(aid, sizeof aid, "%lld", (long long)assignment_id);
    PGresult *ar, *r;
    if (!load_assignment(rq, rs, db, aid, &ar))
        return;
    json_t *doc = json_pack("{s:o}", "assignment", http_row_json(ar, 0));
    set_download(rs, PQgetvalue(ar, 0, 4), PQgetvalue(ar, 0, 1), "export", "json");
    PQclear(ar);
    const char *p[] = {aid};
    sm_err err = {0};
    if (http_store_export_full(db, p, &r, &err) != SM_OK) {
        json_decref(doc);
        http_db_failed(rs, &err);
        return;
    }
    json_object_set_new(doc, "students", http_rows_json(r));
    PQclear(r);
    http_resp_json(rs, 200, doc);
}
