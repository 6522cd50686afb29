/* lti_pages: what happens after a valid LTI launch (lti_launch.c), as small server-made HTML
 * pages: an Instructor or TA becomes a stepmark teacher (by platform and sub) with a session
 * for the mapped course only; on first launch they map the LMS context to a course (a new one
 * or one of theirs) and the resource link to an assignment; a deep linking request lets them
 * pick an assignment and returns a signed LtiDeepLinkingResponse. A Learner is recorded as a
 * member of the LMS course and sent to the student page (/student) with a fresh two-hour link
 * token for their student_ref (the course's setting: sub, sourcedid or email), which shows their
 * released feedback only. Every launch stores the grade and roster service URLs it carries
 * (used by daemon/lti_passback.c and `stepmark lti roster sync`); an instructor's launch also
 * queues the roster import (lti_roster.c). No inline script: /lti.js follows the "continue"
 * link and submits the deep linking form. */
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lti_internal.h"
#include "sm_db.h"
#include "sm_log.h"
#include "sm_lti.h"
#include "sm_sha256.h"
#include "sm_student_link.h"

#define CLAIM "https://purl.imsglobal.org/spec/lti/claim/"
#define DL_CLAIM "https://purl.imsglobal.org/spec/lti-dl/claim/"
#define AGS_CLAIM "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
#define NRPS_CLAIM "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
#define LTI_LEARNER_SECONDS 7200 /* the feedback link a learner's launch makes */

/* ---- small helpers: forms, HTML ---- */

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

char *lti_form_get(const char *body, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = body; p && *p;) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            char *out = malloc(len - nl);
            if (!out)
                return NULL;
            size_t k = 0;
            for (size_t i = nl + 1; i < len; i++) {
                int hi, lo;
                if (p[i] == '+')
                    out[k++] = ' ';
                else if (p[i] == '%' && i + 2 < len && (hi = hexval(p[i + 1])) >= 0 &&
                         (lo = hexval(p[i + 2])) >= 0) {
                    out[k++] = (char)(hi * 16 + lo);
                    i += 2;
                } else
                    out[k++] = p[i];
            }
            out[k] = '\0';
            if (k == 0 || strlen(out) != k || !http_utf8_valid(out, k)) {
                free(out); /* empty, an embedded NUL or not UTF-8: as if absent */
                return NULL;
            }
            return out;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

char *lti_html(const char *s)
{
    size_t n = 1;
    for (const char *p = s; *p; p++)
        n += 6;
    char *out = malloc(n), *o = out;
    if (!out)
        return NULL;
    for (const char *p = s; *p; p++) {
        const char *e = *p == '<'    ? "&lt;"
                        : *p == '>'  ? "&gt;"
                        : *p == '&'  ? "&amp;"
                        : *p == '"'  ? "&quot;"
                        : *p == '\'' ? "&#39;"
                                     : NULL;
        if (e)
            o += sprintf(o, "%s", e);
        else
            *o++ = *p;
    }
    *o = '\0';
    return out;
}

void lti_page(http_resp *rs, int status, const char *title, const char *body_html)
{
    char *t = lti_html(title);
    size_t n = strlen(body_html) + (t ? 2 * strlen(t) : 0) + 512;
    char *page = malloc(n);
    if (!t || !page) {
        free(t);
        free(page);
        http_resp_error(rs, 500, "EINTERNAL", "out of memory");
        return;
    }
    int len = snprintf(page, n,
                       "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                       "<title>%s - stepmark</title><link rel=\"stylesheet\" href=\"/style.css\">"
                       "<script src=\"/lti.js\" defer></script></head>\n<body><main class=\"lti\">"
                       "<h1 id=\"lti-title\">%s</h1>\n%s\n</main></body></html>\n",
                       t, t, body_html);
    free(t);
    http_resp_text(rs, status, "text/html; charset=utf-8", page, (size_t)len);
}

void lti_refuse(http_req *rq, http_resp *rs, int status, const char *reason, const char *detail)
{
    sm_log(SM_LOG_WARN, "lti launch refused", "reason", reason, "client", rq->client, NULL);
    char *r = lti_html(reason), *d = lti_html(detail);
    char body[2048];
    snprintf(body, sizeof body,
             "<p class=\"error\" id=\"lti-error\">%s</p>\n<p>Reason: <code id=\"lti-reason\">%s"
             "</code></p>\n<p>Start again from your LMS. If this keeps happening, give the "
             "reason above to your stepmark operator (see docs/lti.md, troubleshooting).</p>",
             d ? d : "", r ? r : "");
    free(r);
    free(d);
    lti_page(rs, status, "LTI launch refused", body);
}

/* ---- teachers, sessions ---- */

static bool record_services(PGconn *db, const lti_launch_ctx *c, sm_err *err);

static const char *claim_str(const json_t *c, const char *obj, const char *key)
{
    const json_t *o = obj ? json_object_get(c, obj) : c;
    return json_string_value(json_object_get(o, key));
}

/* The display name: name, else given and family name, else "LMS user"; at most 200 bytes. */
static void user_name(const json_t *c, char out[201])
{
    const char *name = claim_str(c, NULL, "name");
    const char *g = claim_str(c, NULL, "given_name"), *f = claim_str(c, NULL, "family_name");
    if (name && name[0])
        snprintf(out, 201, "%s", name);
    else if (g || f)
        snprintf(out, 201, "%s%s%s", g ? g : "", g && f ? " " : "", f ? f : "");
    else
        snprintf(out, 201, "LMS user");
    size_t n = strlen(out);
    while (n > 0 && ((unsigned char)out[n - 1] & 0xC0) == 0x80)
        n--; /* a cut UTF-8 sequence: drop its start too */
    if (n < strlen(out) && n > 0 && (unsigned char)out[n - 1] >= 0xC0)
        out[n - 1] = '\0';
    if (!out[0])
        snprintf(out, 201, "LMS user");
}

/* The teacher of this platform user (made on first launch; a random token nobody knows, so
 * they sign in only through launches). revoked: the operator revoked them. */
static sm_code ensure_teacher(PGconn *db, const lti_launch_ctx *c, char tid[24], bool *revoked,
                              sm_err *err)
{
    char name[201], token[65], hash[SM_SHA256_HEX];
    user_name(c->claims, name);
    const char *sub = claim_str(c->claims, NULL, "sub");
    const char *email = claim_str(c->claims, NULL, "email");
    sm_code rc = sm_random_hex(32, token, err);
    if (rc != SM_OK)
        return rc;
    sm_sha256_hex(token, 64, hash);
    const char *p[] = {c->platform_id, sub, name, email ? email : "", hash};
    PGresult *r = NULL;
    rc = sm_db_query(
        db,
        "WITH old AS (SELECT u.teacher_id FROM lti_user u JOIN teacher t ON t.id = u.teacher_id "
        "  WHERE u.platform_id = $1::bigint AND u.sub = $2), "
        "new AS (INSERT INTO teacher (name, token_hash) SELECT $3, $5 "
        "  WHERE NOT EXISTS (SELECT 1 FROM old) RETURNING id), "
        "tid AS (SELECT teacher_id AS id FROM old UNION ALL SELECT id FROM new) "
        "INSERT INTO lti_user (platform_id, sub, teacher_id, name, email) "
        "SELECT $1::bigint, $2, id, $3, $4 FROM tid ON CONFLICT (platform_id, sub) DO UPDATE "
        "SET teacher_id = EXCLUDED.teacher_id, name = EXCLUDED.name, email = EXCLUDED.email, "
        "last_launch = now() RETURNING teacher_id, "
        "(SELECT revoked_at IS NOT NULL FROM teacher WHERE id = teacher_id)",
        5, p, &r, err);
    if (rc != SM_OK)
        return rc;
    snprintf(tid, 24, "%s", PQgetvalue(r, 0, 0));
    *revoked = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    PQclear(r);
    return SM_OK;
}

/* A review session for teacher tid (as a sign-in makes, http_auth.c); fills the cookie. */
static sm_code open_session(http_req *rq, http_resp *rs, PGconn *db, const char *tid, char csrf[65],
                            sm_err *err)
{
    char sid[65], sid_hash[SM_SHA256_HEX], hours[8];
    sm_code rc = sm_random_hex(32, sid, err);
    if (rc == SM_OK)
        rc = sm_random_hex(32, csrf, err);
    if (rc != SM_OK)
        return rc;
    sm_sha256_hex(sid, 64, sid_hash);
    snprintf(hours, sizeof hours, "%d", HTTP_SESSION_HOURS);
    const char *p[] = {sid_hash, tid, csrf, rq->client, hours};
    rc = sm_db_query(db,
                     "INSERT INTO teacher_session (id_hash, teacher_id, csrf_token, client, "
                     "token_epoch, expires_at) SELECT $1, id, $3, $4, token_epoch, "
                     "LEAST(now() + make_interval(hours => $5::int), token_expires_at) "
                     "FROM teacher WHERE id = $2::bigint",
                     5, p, NULL, err);
    const char *q[] = {tid, rq->client};
    if (rc == SM_OK)
        rc = sm_db_query(db,
                         "INSERT INTO audit_log (actor, action, subject, details) VALUES "
                         "('teacher:' || $1, 'lti-launch', 'teacher:' || $1, "
                         "jsonb_build_object('client', $2::text))",
                         2, q, NULL, err);
    if (rc != SM_OK)
        return rc;
    char cookie[200];
    snprintf(cookie, sizeof cookie, "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d%s",
             HTTP_COOKIE, sid, HTTP_SESSION_HOURS * 3600, lti_secure(rq) ? "; Secure" : "");
    rs->set_cookie = strdup(cookie);
    memset(sid, 0, sizeof sid);
    return SM_OK;
}

/* ---- the pages ---- */

/* "Continue to stepmark": /lti.js follows the link at once. */
static void landing(http_resp *rs, const char *course_id, const char *assignment_id)
{
    char href[96], body[512];
    if (assignment_id && assignment_id[0])
        snprintf(href, sizeof href, "/#/assignment/%s", assignment_id);
    else
        snprintf(href, sizeof href, "/#/course/%s", course_id);
    snprintf(body, sizeof body,
             "<p>You are signed in to stepmark for this course.</p>\n"
             "<p><a id=\"lti-continue\" href=\"%s\">Continue to the review page</a></p>",
             href);
    lti_page(rs, 200, "Signed in", body);
}

/* Appends printf output to a malloc'd, growing string. */
static void cat(char **s, size_t *len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cat(char **s, size_t *len, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *b = *s ? realloc(*s, *len + (size_t)n + 1) : NULL;
    if (b) {
        vsnprintf(b + *len, (size_t)n + 1, fmt, ap2);
        *len += (size_t)n;
    } else {
        free(*s);
    }
    va_end(ap2);
    *s = b;
}

/* <option>s from rows (id, label); selected: the id to preselect or NULL. */
static void options(char **s, size_t *len, PGresult *r)
{
    for (int i = 0; i < PQntuples(r); i++) {
        char *label = lti_html(PQgetvalue(r, i, 1));
        cat(s, len, "<option value=\"%s\">%s</option>", PQgetvalue(r, i, 0), label ? label : "");
        free(label);
    }
}

/* The form that maps the LMS course to a stepmark course (a new one or one of the teacher's). */
static void course_form(http_resp *rs, PGconn *db, const char *tid, const char *launch,
                        const char *csrf, const char *ctx_title, sm_err *err)
{
    const char *p[] = {tid};
    PGresult *r = NULL;
    if (sm_db_query(db,
                    "SELECT c.id, c.code || CASE WHEN c.title <> '' THEN ' - ' || c.title ELSE "
                    "'' END FROM course c JOIN course_teacher ct ON ct.course_id = c.id WHERE "
                    "ct.teacher_id = $1::bigint ORDER BY c.code",
                    1, p, &r, err) != SM_OK) {
        http_db_failed(rs, err);
        return;
    }
    char *t = lti_html(ctx_title);
    size_t len = 0;
    char *s = strdup("");
    cat(&s, &len,
        "<p>The LMS course <strong id=\"lti-context\">%s</strong> is not connected to a stepmark "
        "course yet. Choose where its submissions are reviewed.</p>\n"
        "<form method=\"post\" action=\"/lti/map\"><input type=\"hidden\" name=\"launch\" "
        "value=\"%s\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<label>stepmark course <select name=\"course\" id=\"lti-course\">"
        "<option value=\"new\">A new course named after the LMS course</option>",
        t ? t : "", launch, csrf);
    free(t);
    options(&s, &len, r);
    PQclear(r);
    cat(&s, &len,
        "</select></label> <button type=\"submit\" id=\"lti-map\">Connect</button>"
        "</form>");
    if (s)
        lti_page(rs, 200, "Connect this course", s);
    else
        http_resp_error(rs, 500, "EINTERNAL", "out of memory");
    free(s);
}

/* The assignment choice for a resource link (or the deep linking picker when dl). */
static void assignment_form(http_resp *rs, PGconn *db, const char *course, const char *launch,
                            const char *csrf, bool dl, sm_err *err)
{
    const char *p[] = {course};
    PGresult *r = NULL;
    if (sm_db_query(db,
                    "SELECT id, code || CASE WHEN title <> '' THEN ' - ' || title ELSE '' END "
                    "FROM assignment WHERE course_id = $1::bigint ORDER BY code",
                    1, p, &r, err) != SM_OK) {
        http_db_failed(rs, err);
        return;
    }
    size_t len = 0;
    char *s = strdup("");
    cat(&s, &len,
        "<p>%s</p>\n<form method=\"post\" action=\"%s\"><input type=\"hidden\" name=\"launch\" "
        "value=\"%s\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<label>Assignment <select name=\"assignment\" id=\"lti-assignment\">%s",
        dl ? "Choose the stepmark assignment to place in the LMS course."
           : "Which stepmark assignment does this LMS activity open?",
        dl ? "/lti/deeplink" : "/lti/map", launch, csrf,
        dl ? "" : "<option value=\"none\">None: open the course page</option>");
    options(&s, &len, r);
    PQclear(r);
    cat(&s, &len, "</select></label> <button type=\"submit\" id=\"lti-choose\">%s</button></form>",
        dl ? "Add to the LMS" : "Save");
    if (s)
        lti_page(rs, 200, dl ? "Add a stepmark assignment" : "Choose the assignment", s);
    else
        http_resp_error(rs, 500, "EINTERNAL", "out of memory");
    free(s);
}

/* ---- launches waiting for the instructor's choice ---- */

static sm_code store_launch(PGconn *db, const lti_launch_ctx *c, const char *tid, const char *kind,
                            json_t *claims, char id[65], sm_err *err)
{
    char hash[SM_SHA256_HEX], secs[16];
    sm_code rc = sm_random_hex(32, id, err);
    if (rc != SM_OK)
        return rc;
    sm_sha256_hex(id, 64, hash);
    snprintf(secs, sizeof secs, "%d", LTI_LAUNCH_SECONDS);
    char *cl = json_dumps(claims, JSON_COMPACT);
    const char *p[] = {hash, c->platform_id, tid, kind, cl ? cl : "{}", secs};
    rc = sm_db_exec(db, "DELETE FROM lti_launch WHERE expires_at < now()", err);
    if (rc == SM_OK)
        rc = sm_db_query(db,
                         "INSERT INTO lti_launch (id_hash, platform_id, teacher_id, kind, claims, "
                         "expires_at) VALUES ($1, $2::bigint, $3::bigint, $4, $5::jsonb, now() + "
                         "make_interval(secs => $6::int))",
                         6, p, NULL, err);
    free(cl);
    return rc;
}

/* One text value of a one-row query ("" when NULL or no row); false on a database error. */
static bool query_text(PGconn *db, const char *sql, int n, const char *const *p, char *out,
                       size_t cap, sm_err *err)
{
    PGresult *r = NULL;
    if (sm_db_query(db, sql, n, p, &r, err) != SM_OK)
        return false;
    snprintf(out, cap, "%s", PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return true;
}

static bool grant_course(PGconn *db, const char *course, const char *tid, sm_err *err)
{
    const char *p[] = {course, tid};
    return sm_db_query(db,
                       "INSERT INTO course_teacher (course_id, teacher_id) VALUES ($1::bigint, "
                       "$2::bigint) ON CONFLICT DO NOTHING",
                       2, p, NULL, err) == SM_OK;
}

/* Where a launch goes once its context is mapped to course: the deep linking picker, the
 * assignment choice, or the review page. launch: the waiting launch's id ("" = store one). */
static void next_step(http_resp *rs, PGconn *db, const lti_launch_ctx *c, const char *tid,
                      const char *course, json_t *claims, const char *csrf, char launch[65])
{
    sm_err err = {0};
    const char *kind = json_string_value(json_object_get(claims, "kind"));
    const char *link = json_string_value(json_object_get(claims, "link_id"));
    bool dl = kind && strcmp(kind, "deep_link") == 0;
    char chosen[8] = "", assignment[24] = "", count[24] = "";
    const char *p[] = {c->platform_id, link ? link : "", course};
    if (!grant_course(db, course, tid, &err) ||
        !query_text(db,
                    "SELECT chosen_at IS NOT NULL FROM lti_resource_link WHERE platform_id = "
                    "$1::bigint AND resource_link_id = $2",
                    2, p, chosen, sizeof chosen, &err) ||
        !query_text(db,
                    "SELECT assignment_id FROM lti_resource_link WHERE platform_id = $1::bigint "
                    "AND resource_link_id = $2",
                    2, p, assignment, sizeof assignment, &err) ||
        !query_text(db, "SELECT count(*) FROM assignment WHERE course_id = $1::bigint", 1, p + 2,
                    count, sizeof count, &err)) {
        http_db_failed(rs, &err);
        return;
    }
    bool ask = dl || (link && strcmp(chosen, "t") != 0 && strcmp(count, "0") != 0);
    if (!ask) {
        char hash[SM_SHA256_HEX];
        sm_sha256_hex(launch, strlen(launch), hash);
        const char *q[] = {hash};
        if (launch[0] && sm_db_query(db, "DELETE FROM lti_launch WHERE id_hash = $1", 1, q, NULL,
                                     &err) != SM_OK) {
            http_db_failed(rs, &err);
            return;
        }
        landing(rs, course, assignment);
        return;
    }
    if (!launch[0] && store_launch(db, c, tid, dl ? "deep_link" : "map", claims, launch, &err)) {
        http_db_failed(rs, &err);
        return;
    }
    assignment_form(rs, db, course, launch, csrf, dl, &err);
}

/* Records the context and resource link of a launch; course: the mapped course or "". */
static bool record_context(PGconn *db, const lti_launch_ctx *c, json_t *claims, char course[24],
                           sm_err *err)
{
    const char *ctx = json_string_value(json_object_get(claims, "context_id"));
    const char *title = json_string_value(json_object_get(claims, "title"));
    const char *link = json_string_value(json_object_get(claims, "link_id"));
    const char *ltitle = json_string_value(json_object_get(claims, "link_title"));
    const char *p[] = {c->platform_id, ctx, title ? title : "", link ? link : "",
                       ltitle ? ltitle : ""};
    if (!query_text(db,
                    "INSERT INTO lti_context (platform_id, context_id, title) VALUES ($1::bigint, "
                    "$2, $3) ON CONFLICT (platform_id, context_id) DO UPDATE SET title = "
                    "EXCLUDED.title RETURNING course_id",
                    3, p, course, 24, err))
        return false;
    if (!link)
        return true;
    const json_t *custom = json_object_get(c->claims, CLAIM "custom");
    const char *placed = json_string_value(json_object_get(custom, "stepmark_assignment"));
    const char *q[] = {c->platform_id, link, ctx, ltitle ? ltitle : ""};
    const char *u[] = {c->platform_id, link, placed ? placed : "", course};
    /* A link placed by deep linking names its assignment (custom stepmark_assignment): it is
     * taken when that assignment belongs to the mapped course. */
    return sm_db_query(db,
                       "INSERT INTO lti_resource_link (platform_id, resource_link_id, context_id, "
                       "title) VALUES ($1::bigint, $2, $3, $4) ON CONFLICT (platform_id, "
                       "resource_link_id) DO UPDATE SET title = EXCLUDED.title",
                       4, q, NULL, err) == SM_OK &&
           sm_db_query(db,
                       "UPDATE lti_resource_link l SET assignment_id = a.id, chosen_at = now() "
                       "FROM assignment a WHERE l.platform_id = $1::bigint AND "
                       "l.resource_link_id = $2 AND l.chosen_at IS NULL AND a.id::text = $3 AND "
                       "a.course_id::text = $4",
                       4, u, NULL, err) == SM_OK;
}

/* The parts of the id_token that the mapping and picker pages need later. */
static json_t *launch_claims(const json_t *c)
{
    const json_t *ctx = json_object_get(c, CLAIM "context");
    const json_t *link = json_object_get(c, CLAIM "resource_link");
    const json_t *dl = json_object_get(c, DL_CLAIM "deep_linking_settings");
    const char *type = json_string_value(json_object_get(c, CLAIM "message_type"));
    json_t *o = json_object();
    json_object_set(
        o, "kind",
        json_string(type && strcmp(type, "LtiDeepLinkingRequest") == 0 ? "deep_link" : "map"));
    json_object_set_new(o, "context_id", json_incref(json_object_get(ctx, "id")));
    json_t *title = json_object_get(ctx, "title");
    json_object_set_new(o, "title", json_incref(title ? title : json_object_get(ctx, "label")));
    json_object_set_new(o, "label", json_incref(json_object_get(ctx, "label")));
    json_object_set_new(o, "link_id", json_incref(json_object_get(link, "id")));
    json_object_set_new(o, "link_title", json_incref(json_object_get(link, "title")));
    json_object_set_new(o, "deployment_id", json_incref(json_object_get(c, CLAIM "deployment_id")));
    json_object_set_new(o, "return_url", json_incref(json_object_get(dl, "deep_link_return_url")));
    json_object_set_new(o, "data", json_incref(json_object_get(dl, "data")));
    return o;
}

void lti_instructor(http_req *rq, http_resp *rs, const lti_launch_ctx *c)
{
    PGconn *db = http_db(rq, rs);
    if (!db)
        return;
    json_t *claims = launch_claims(c->claims);
    const char *kind = json_string_value(json_object_get(claims, "kind"));
    bool dl = kind && strcmp(kind, "deep_link") == 0;
    char tid[24], course[24], csrf[65], launch[65] = "";
    bool revoked = false;
    sm_err err = {0};
    if (!json_string_value(json_object_get(claims, "context_id")))
        lti_refuse(rq, rs, 400, "no context", "stepmark must be launched from within a course.");
    else if (!dl && !json_string_value(json_object_get(claims, "link_id")))
        lti_refuse(rq, rs, 400, "no resource link", "The launch names no LMS activity.");
    else if (dl && !json_string_value(json_object_get(claims, "return_url")))
        lti_refuse(rq, rs, 400, "no deep_link_return_url", "The LMS sent no return address.");
    else if (ensure_teacher(db, c, tid, &revoked, &err) != SM_OK)
        http_db_failed(rs, &err);
    else if (revoked)
        lti_refuse(rq, rs, 403, "teacher revoked",
                   "Your stepmark access was revoked by the "
                   "operator.");
    else if (!record_context(db, c, claims, course, &err) || !record_services(db, c, &err) ||
             open_session(rq, rs, db, tid, csrf, &err) != SM_OK)
        http_db_failed(rs, &err);
    else if (course[0])
        next_step(rs, db, c, tid, course, claims, csrf, launch);
    else if (store_launch(db, c, tid, dl ? "deep_link" : "map", claims, launch, &err) != SM_OK)
        http_db_failed(rs, &err);
    else
        course_form(rs, db, tid, launch, csrf,
                    json_string_value(json_object_get(claims, "title"))
                        ? json_string_value(json_object_get(claims, "title"))
                        : "(untitled)",
                    &err);
    if (rs->status < 300)
        sm_log(SM_LOG_INFO, "lti launch", "role", "instructor", "platform", c->platform_id,
               "teacher", tid, "course", course, NULL);
    /* the roster in the background: names on the review pages, students mapped to LMS users */
    const json_t *nrps = json_object_get(c->claims, NRPS_CLAIM);
    if (rs->status < 400 && !revoked &&
        json_string_value(json_object_get(nrps, "context_memberships_url")))
        lti_roster_request(rq->http->lti->roster, c->platform_id,
                           json_string_value(json_object_get(claims, "context_id")));
    json_decref(claims);
}

/* Stores the service endpoints a launch carries (grade services, roster) on its context and
 * resource link; the context row exists (record_context or the learner's launch made it). */
static bool record_services(PGconn *db, const lti_launch_ctx *c, sm_err *err)
{
    const json_t *ctx = json_object_get(c->claims, CLAIM "context");
    const json_t *link = json_object_get(c->claims, CLAIM "resource_link");
    const json_t *ags = json_object_get(c->claims, AGS_CLAIM);
    const json_t *nrps = json_object_get(c->claims, NRPS_CLAIM);
    const char *ctx_id = json_string_value(json_object_get(ctx, "id"));
    if (!ctx_id)
        return true;
    const char *items = json_string_value(json_object_get(ags, "lineitems"));
    const char *item = json_string_value(json_object_get(ags, "lineitem"));
    const char *members = json_string_value(json_object_get(nrps, "context_memberships_url"));
    json_t *scope = json_object_get(ags, "scope");
    char *scopes = json_is_array(scope) ? json_dumps(scope, JSON_COMPACT) : NULL;
    const char *link_id = json_string_value(json_object_get(link, "id"));
    const char *p[] = {c->platform_id, ctx_id, items, scopes, members, link_id, item};
    bool ok = sm_db_query(db,
                          "WITH l AS (UPDATE lti_resource_link SET ags_lineitem = COALESCE($7, "
                          "ags_lineitem) WHERE platform_id = $1::bigint AND resource_link_id = $6 "
                          "AND $7 ~ '^https?://') "
                          "UPDATE lti_context SET ags_lineitems = CASE WHEN $3 ~ '^https?://' "
                          "THEN $3 ELSE ags_lineitems END, ags_scopes = CASE WHEN $4::text IS "
                          "NULL THEN ags_scopes ELSE ARRAY(SELECT jsonb_array_elements_text("
                          "$4::jsonb)) END, nrps_url = CASE WHEN $5 ~ '^https?://' THEN $5 ELSE "
                          "nrps_url END WHERE platform_id = $1::bigint AND context_id = $2",
                          7, p, NULL, err) == SM_OK;
    free(scopes);
    return ok;
}

/* Records the learner as a member of the LMS course (name, email, sourcedid from the launch)
 * and reads the course and the student_ref the course's setting gives them ("" if none). */
static bool learner_member(PGconn *db, const lti_launch_ctx *c, char course[24],
                           char ref[SM_STUDENT_REF_MAX + 1], sm_err *err)
{
    const json_t *ctx = json_object_get(c->claims, CLAIM "context");
    const json_t *lis = json_object_get(c->claims, CLAIM "lis");
    const char *sid = json_string_value(json_object_get(lis, "person_sourcedid"));
    const char *email = claim_str(c->claims, NULL, "email");
    char name[201];
    user_name(c->claims, name);
    if (strcmp(name, "LMS user") == 0)
        name[0] = '\0';
    json_t *roles = json_object_get(c->claims, CLAIM "roles");
    char *roles_s = json_dumps(json_is_array(roles) ? roles : json_array(), JSON_COMPACT);
    const char *p[] = {c->platform_id,
                       json_string_value(json_object_get(ctx, "id")),
                       claim_str(c->claims, NULL, "sub"),
                       name,
                       email ? email : "",
                       sid ? sid : "",
                       roles_s ? roles_s : "[]",
                       json_string_value(json_object_get(ctx, "title"))};
    PGresult *r = NULL;
    bool ok =
        sm_db_query(db,
                    "WITH x AS (INSERT INTO lti_context (platform_id, context_id, title) VALUES "
                    "($1::bigint, $2, COALESCE($8, '')) ON CONFLICT DO NOTHING), "
                    "u AS (INSERT INTO lti_user (platform_id, sub) VALUES ($1::bigint, $3) ON "
                    "CONFLICT (platform_id, sub) DO UPDATE SET last_launch = now()) "
                    "INSERT INTO lti_member (platform_id, context_id, sub, name, email, sourcedid, "
                    "roles, source) VALUES ($1::bigint, $2, $3, $4, $5, $6, ARRAY(SELECT "
                    "jsonb_array_elements_text($7::jsonb)), 'launch') ON CONFLICT (platform_id, "
                    "context_id, sub) DO UPDATE SET name = CASE WHEN EXCLUDED.name <> '' THEN "
                    "EXCLUDED.name ELSE lti_member.name END, email = CASE WHEN EXCLUDED.email <> "
                    "'' THEN EXCLUDED.email ELSE lti_member.email END, sourcedid = CASE WHEN "
                    "EXCLUDED.sourcedid <> '' THEN EXCLUDED.sourcedid ELSE lti_member.sourcedid "
                    "END, roles = EXCLUDED.roles, status = 'Active', updated_at = now()",
                    8, p, NULL, err) == SM_OK &&
        record_services(db, c, err);
    free(roles_s);
    /* A separate statement: the member row above is visible to it. */
    ok = ok && sm_db_query(db,
                           "SELECT x.course_id, (SELECT st.student_ref FROM lti_student st WHERE "
                           "st.platform_id = x.platform_id AND st.context_id = x.context_id AND "
                           "st.sub = $3) FROM lti_context x WHERE x.platform_id = $1::bigint AND "
                           "x.context_id = $2",
                           3, p, &r, err) == SM_OK;
    if (ok) {
        snprintf(course, 24, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
        snprintf(ref, SM_STUDENT_REF_MAX + 1, "%s", PQntuples(r) ? PQgetvalue(r, 0, 1) : "");
    }
    PQclear(r);
    return ok;
}

/* Sends the learner to the student page with a fresh short-lived link token. */
static void learner_redirect(http_req *rq, http_resp *rs, PGconn *db, const char *course,
                             const char *ref)
{
    unsigned char key[SM_STUDENT_KEY_BYTES];
    sm_student_claims sc = {.course_id = strtoll(course, NULL, 10),
                            .expires = (int64_t)time(NULL) + LTI_LEARNER_SECONDS};
    snprintf(sc.student_ref, sizeof sc.student_ref, "%s", ref);
    char token[SM_STUDENT_TOKEN_MAX], base[LTI_URL_MAX], url[LTI_URL_MAX + SM_STUDENT_TOKEN_MAX];
    sm_err err = {0};
    if (sm_student_key_get(db, key, &err) != SM_OK ||
        sm_student_token_sign(key, &sc, token, &err) != SM_OK) {
        OPENSSL_cleanse(key, sizeof key);
        http_db_failed(rs, &err);
        return;
    }
    OPENSSL_cleanse(key, sizeof key);
    lti_base_url(rq, base, sizeof base);
    snprintf(url, sizeof url, "%s/student?t=%s", base, token);
    http_resp_text(rs, 303, "text/plain; charset=utf-8", strdup("redirecting\n"), 12);
    rs->location = strdup(url);
}

void lti_learner(http_req *rq, http_resp *rs, const lti_launch_ctx *c)
{
    PGconn *db = http_db(rq, rs);
    if (!db)
        return;
    const json_t *ctx = json_object_get(c->claims, CLAIM "context");
    if (!json_string_value(json_object_get(ctx, "id"))) {
        lti_refuse(rq, rs, 400, "no context", "stepmark must be launched from within a course.");
        return;
    }
    char course[24] = "", ref[SM_STUDENT_REF_MAX + 1] = "";
    sm_err err = {0};
    if (!learner_member(db, c, course, ref, &err)) {
        http_db_failed(rs, &err);
        return;
    }
    sm_log(SM_LOG_INFO, "lti launch", "role", "learner", "platform", c->platform_id, "course",
           course, "client", rq->client, NULL);
    if (!course[0])
        lti_page(rs, 200, "Your feedback",
                 "<p id=\"lti-learner\">stepmark is not set up for this course yet. Your "
                 "feedback appears here once your teacher has connected the course and released "
                 "it.</p>");
    else if (!ref[0])
        lti_page(rs, 200, "Your feedback",
                 "<p id=\"lti-learner\">Your LMS did not send the user detail this course uses "
                 "to find your submissions (see docs/lti.md, student references). Ask your "
                 "teacher.</p>");
    else
        learner_redirect(rq, rs, db, course, ref);
}

/* ---- the instructor's choices (POST /lti/map, POST /lti/deeplink) ---- */

typedef struct waiting {
    char launch[65];
    char csrf[65];
    char tid[24];
    lti_launch_ctx c;
    json_t *claims;
    char course[24];
} waiting;

/* The signed-in teacher's waiting launch named by the form (CSRF checked); else a page. */
static bool load_waiting(http_req *rq, http_resp *rs, PGconn *db, waiting *w)
{
    memset(w, 0, sizeof *w);
    char *launch = lti_form_get(rq->body ? rq->body : "", "launch");
    char *csrf = lti_form_get(rq->body ? rq->body : "", "csrf");
    bool ok = launch && csrf && strlen(launch) == 64 && rq->signed_in && rq->csrf[0] &&
              strlen(csrf) == strlen(rq->csrf) && CRYPTO_memcmp(csrf, rq->csrf, strlen(csrf)) == 0;
    if (ok) {
        snprintf(w->launch, sizeof w->launch, "%s", launch);
        snprintf(w->csrf, sizeof w->csrf, "%s", csrf);
    }
    free(launch);
    free(csrf);
    if (!ok) {
        lti_refuse(rq, rs, 403, "not signed in or bad form token",
                   "This page is no longer valid. Launch stepmark again from the LMS.");
        return false;
    }
    char hash[SM_SHA256_HEX];
    sm_sha256_hex(w->launch, 64, hash);
    const char *p[] = {hash, rq->teacher_id_s};
    PGresult *r = NULL;
    sm_err err = {0};
    if (sm_db_query(db,
                    "SELECT l.platform_id, l.claims::text, p.client_id, p.issuer, "
                    "COALESCE((SELECT course_id::text FROM lti_context x WHERE x.platform_id = "
                    "l.platform_id AND x.context_id = l.claims->>'context_id'), '') FROM "
                    "lti_launch l JOIN lti_platform p ON p.id = l.platform_id WHERE l.id_hash = $1 "
                    "AND l.teacher_id = $2::bigint AND l.expires_at > now()",
                    2, p, &r, &err) != SM_OK) {
        http_db_failed(rs, &err);
        return false;
    }
    ok = PQntuples(r) == 1;
    if (ok) {
        snprintf(w->c.platform_id, sizeof w->c.platform_id, "%s", PQgetvalue(r, 0, 0));
        w->claims = json_loads(PQgetvalue(r, 0, 1), 0, NULL);
        snprintf(w->c.client_id, sizeof w->c.client_id, "%s", PQgetvalue(r, 0, 2));
        snprintf(w->c.issuer, sizeof w->c.issuer, "%s", PQgetvalue(r, 0, 3));
        snprintf(w->course, sizeof w->course, "%s", PQgetvalue(r, 0, 4));
        snprintf(w->tid, sizeof w->tid, "%s", rq->teacher_id_s);
        ok = w->claims != NULL;
    }
    PQclear(r);
    if (!ok)
        lti_refuse(rq, rs, 403, "launch expired",
                   "This page has expired. Launch stepmark again "
                   "from the LMS.");
    return ok;
}

/* Maps the context to the course the form names ("new" or one of the teacher's courses). */
static bool map_course(http_req *rq, http_resp *rs, PGconn *db, waiting *w, const char *choice)
{
    sm_err err = {0};
    const char *ctx = json_string_value(json_object_get(w->claims, "context_id"));
    const char *label = json_string_value(json_object_get(w->claims, "label"));
    const char *title = json_string_value(json_object_get(w->claims, "title"));
    char course[24] = "";
    const char *pn[] = {w->c.issuer, ctx ? ctx : "", label ? label : "LTI", title ? title : ""};
    const char *po[] = {choice, w->tid};
    bool ok = strcmp(choice, "new") == 0
                  ? query_text(db,
                               "INSERT INTO course (code, title) VALUES (left($3, 180) || '-' || "
                               "left(md5($1 || ' ' || $2), 8), $4) ON CONFLICT (code) DO UPDATE "
                               "SET title = EXCLUDED.title RETURNING id",
                               4, pn, course, sizeof course, &err)
                  : query_text(db,
                               "SELECT course_id FROM course_teacher WHERE course_id::text = $1 "
                               "AND teacher_id = $2::bigint",
                               2, po, course, sizeof course, &err);
    if (!ok) {
        http_db_failed(rs, &err);
        return false;
    }
    if (!course[0]) {
        lti_refuse(rq, rs, 403, "course not yours", "You can only connect a course you review.");
        return false;
    }
    const char *q[] = {w->c.platform_id, ctx ? ctx : "", course};
    if (sm_db_query(db,
                    "UPDATE lti_context SET course_id = $3::bigint WHERE platform_id = $1::bigint "
                    "AND context_id = $2",
                    3, q, NULL, &err) != SM_OK) {
        http_db_failed(rs, &err);
        return false;
    }
    snprintf(w->course, sizeof w->course, "%s", course);
    return true;
}

/* Maps the resource link to the assignment the form names ("none": the course page). */
static bool map_assignment(http_req *rq, http_resp *rs, PGconn *db, waiting *w, const char *choice)
{
    const char *link = json_string_value(json_object_get(w->claims, "link_id"));
    const char *p[] = {w->c.platform_id, link ? link : "", choice, w->course};
    PGresult *r = NULL;
    sm_err err = {0};
    if (sm_db_query(db,
                    "UPDATE lti_resource_link SET chosen_at = now(), assignment_id = (SELECT id "
                    "FROM assignment WHERE id::text = $3 AND course_id = $4::bigint) WHERE "
                    "platform_id = $1::bigint AND resource_link_id = $2 AND ($3 = 'none' OR "
                    "EXISTS (SELECT 1 FROM assignment WHERE id::text = $3 AND course_id = "
                    "$4::bigint)) RETURNING 1",
                    4, p, &r, &err) != SM_OK) {
        http_db_failed(rs, &err);
        return false;
    }
    bool ok = PQntuples(r) == 1;
    PQclear(r);
    if (!ok)
        lti_refuse(rq, rs, 400, "unknown assignment", "That assignment is not in this course.");
    return ok;
}

void lti_map_post(http_req *rq, http_resp *rs)
{
    if (!rq->auth_loaded && http_auth_load(rq, rs) != SM_OK)
        return;
    PGconn *db = http_db(rq, rs);
    waiting w;
    if (!db || !load_waiting(rq, rs, db, &w)) {
        json_decref(w.claims);
        return;
    }
    char *course = lti_form_get(rq->body, "course");
    char *assignment = lti_form_get(rq->body, "assignment");
    bool ok = true;
    if (course && !w.course[0])
        ok = map_course(rq, rs, db, &w, course);
    if (ok && !w.course[0]) {
        lti_refuse(rq, rs, 400, "course not chosen", "Choose a course first.");
        ok = false;
    }
    sm_err err = {0};
    if (ok && !grant_course(db, w.course, w.tid, &err)) {
        http_db_failed(rs, &err);
        ok = false;
    }
    if (ok && assignment)
        ok = map_assignment(rq, rs, db, &w, assignment);
    if (ok) {
        sm_log(SM_LOG_INFO, "lti mapping", "teacher", w.tid, "course", w.course, "assignment",
               assignment ? assignment : "", NULL);
        next_step(rs, db, &w.c, w.tid, w.course, w.claims, w.csrf, w.launch);
    }
    free(course);
    free(assignment);
    json_decref(w.claims);
}

/* The origin (scheme://host[:port]) of an http(s) URL fit for a CSP source; false if none. */
static bool url_origin(const char *url, char *out, size_t n)
{
    const char *rest = strncmp(url, "https://", 8) == 0  ? url + 8
                       : strncmp(url, "http://", 7) == 0 ? url + 7
                                                         : NULL;
    if (!rest)
        return false;
    size_t len = (size_t)(rest - url) + strcspn(rest, "/?#");
    for (const char *p = url; *p; p++)
        if (*p <= ' ' || *p == ';' || *p == ',' || *p == '"' || *p == '\'' || *p == '<' ||
            *p == '>' || (unsigned char)*p >= 0x7f)
            return false;
    if (len >= n || len == (size_t)(rest - url))
        return false;
    memcpy(out, url, len);
    out[len] = '\0';
    return true;
}

/* The LtiDeepLinkingResponse for one assignment, signed with the tool's key. */
static sm_code deep_link_jwt(http_req *rq, PGconn *db, const waiting *w, const char *aid,
                             const char *title, char **jwt, sm_err *err)
{
    char base[LTI_URL_MAX], url[LTI_URL_MAX + 16], nonce[65];
    lti_base_url(rq, base, sizeof base);
    snprintf(url, sizeof url, "%s/lti/launch", base);
    sm_code rc = sm_random_hex(16, nonce, err);
    if (rc != SM_OK)
        return rc;
    json_int_t now = (json_int_t)time(NULL);
    json_t *item = json_pack("{s:s,s:s,s:s,s:{s:s}}", "type", "ltiResourceLink", "title", title,
                             "url", url, "custom", "stepmark_assignment", aid);
    json_t *c =
        json_pack("{s:s,s:s,s:I,s:I,s:s,s:s,s:s,s:O*,s:[o]}", "iss", w->c.client_id, "aud",
                  w->c.issuer, "iat", now, "exp", now + 300, "nonce", nonce, CLAIM "message_type",
                  "LtiDeepLinkingResponse", CLAIM "version", "1.3.0", CLAIM "deployment_id",
                  json_object_get(w->claims, "deployment_id"), DL_CLAIM "content_items", item);
    if (!c)
        return sm_err_set(err, SM_ENOMEM, "cannot build the deep linking response");
    json_t *data = json_object_get(w->claims, "data");
    if (json_is_string(data))
        json_object_set(c, DL_CLAIM "data", data);
    sm_lti_signer s;
    rc = sm_lti_signer_get(db, &s, err);
    if (rc == SM_OK)
        rc = sm_lti_jwt_sign(s.private_pem, s.kid, c, jwt, err);
    sm_lti_signer_clear(&s);
    json_decref(c);
    return rc;
}

/* The page that carries the signed response back to the LMS: a form /lti.js submits. */
static void deep_link_page(http_resp *rs, const char *return_url, const char *origin,
                           const char *jwt)
{
    char *u = lti_html(return_url);
    size_t len = 0;
    char *s = strdup("");
    cat(&s, &len,
        "<p>Returning to the LMS with your choice...</p>\n<form method=\"post\" action=\"%s\" "
        "id=\"lti-autosubmit\"><input type=\"hidden\" name=\"JWT\" value=\"%s\"><button "
        "type=\"submit\" id=\"lti-return\">Return to the LMS</button></form>",
        u ? u : "", jwt);
    free(u);
    if (!s) {
        http_resp_error(rs, 500, "EINTERNAL", "out of memory");
        return;
    }
    lti_page(rs, 200, "Back to the LMS", s);
    free(s);
    char csp[LTI_URL_MAX + 256];
    snprintf(csp, sizeof csp,
             "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
             "form-action 'self' %s; frame-ancestors 'none'",
             origin);
    rs->csp = strdup(csp);
}

void lti_deeplink_post(http_req *rq, http_resp *rs)
{
    if (!rq->auth_loaded && http_auth_load(rq, rs) != SM_OK)
        return;
    PGconn *db = http_db(rq, rs);
    waiting w;
    if (!db || !load_waiting(rq, rs, db, &w)) {
        json_decref(w.claims);
        return;
    }
    char *aid = lti_form_get(rq->body, "assignment");
    const char *ret = json_string_value(json_object_get(w.claims, "return_url"));
    const char *kind = json_string_value(json_object_get(w.claims, "kind"));
    char origin[LTI_URL_MAX], title[512] = "", *jwt = NULL, hash[SM_SHA256_HEX];
    sm_sha256_hex(w.launch, 64, hash);
    const char *p[] = {aid ? aid : "", w.course, hash};
    sm_err err = {0};
    if (!kind || strcmp(kind, "deep_link") != 0 || !ret || !url_origin(ret, origin, sizeof origin))
        lti_refuse(rq, rs, 400, "not a deep linking launch", "Launch the picker from the LMS.");
    else if (!query_text(db,
                         "SELECT COALESCE(NULLIF(title, ''), code) FROM assignment WHERE id::text "
                         "= $1 AND course_id::text = $2",
                         2, p, title, sizeof title, &err))
        http_db_failed(rs, &err);
    else if (!title[0] || !w.course[0])
        lti_refuse(rq, rs, 400, "unknown assignment", "That assignment is not in this course.");
    else if (deep_link_jwt(rq, db, &w, aid, title, &jwt, &err) != SM_OK ||
             sm_db_query(db, "DELETE FROM lti_launch WHERE id_hash = $1", 1, p + 2, NULL, &err) !=
                 SM_OK)
        http_db_failed(rs, &err);
    else {
        sm_log(SM_LOG_INFO, "lti deep linking response", "teacher", w.tid, "assignment", aid, NULL);
        deep_link_page(rs, ret, origin, jwt);
    }
    free(jwt);
    free(aid);
    json_decref(w.claims);
}
