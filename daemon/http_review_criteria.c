/* http_review_criteria: adjusting a grading criterion by criterion (http_review_criteria.h).
 * The rules are in docs/teacher-guide.md ("Adjusting by criterion"). */
#include "http_review_criteria.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_db.h"
#include "sm_rubric.h"

sm_code http_review_criteria_load(PGconn *db, const char *gid, json_t **out, sm_err *err)
{
    const char *p[] = {gid};
    PGresult *r;
    *out = NULL;
    sm_code rc = sm_db_query(db, "SELECT sm_grading_criteria($1::bigint)::text", 1, p, &r, err);
    if (rc != SM_OK)
        return rc;
    *out = PQntuples(r) == 1 ? json_loads(PQgetvalue(r, 0, 0), 0, NULL) : NULL;
    PQclear(r);
    if (!json_is_array(*out)) {
        json_decref(*out);
        *out = NULL;
        return sm_err_set(err, SM_EINTERNAL, "the grading's criteria are not a JSON array");
    }
    return SM_OK;
}

/* Whether current holds a criterion named id. */
static bool known(const json_t *current, const char *id)
{
    size_t i;
    json_t *c;
    json_array_foreach(current, i, c)
    {
        if (!strcmp(json_string_value(json_object_get(c, "id")), id))
            return true;
    }
    return false;
}

/* Checks asked against current: known ids, numbers within [0, max] with 2 decimals. */
static bool asked_ok(const json_t *current, const json_t *asked, char msg[256])
{
    const char *id;
    json_t *v;
    if (!json_is_object(asked) || json_object_size(asked) == 0) {
        snprintf(msg, 256, "criteria must be an object of criterion ids and points");
        return false;
    }
    json_object_foreach((json_t *)asked, id, v)
    {
        if (!known(current, id)) {
            snprintf(msg, 256, "this grading has no criterion \"%.32s\"", id);
            return false;
        }
        double x = json_number_value(v);
        if (!json_is_number(v) || !isfinite(x) || x < 0 || !sm_rubric_two_decimals(x)) {
            snprintf(msg, 256,
                     "criterion \"%.32s\" needs points: a number >= 0 with at most 2 "
                     "decimals",
                     id);
            return false;
        }
    }
    return true;
}

bool http_review_criteria_apply(const json_t *current, const json_t *asked, json_t **rows,
                                char total[32], char msg[256])
{
    *rows = NULL;
    if (!asked_ok(current, asked, msg))
        return false;
    json_t *out = json_array();
    double sum = 0;
    size_t i;
    json_t *c;
    json_array_foreach(current, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "id"));
        const json_t *old = json_object_get(c, "current_points");
        const json_t *want = json_object_get(asked, id);
        double max = json_number_value(json_object_get(c, "max_points"));
        if (!want && !json_is_number(old)) {
            snprintf(msg, 256, "criterion \"%.32s\" has no points yet: give it points", id);
            json_decref(out);
            return false;
        }
        double x = want ? json_number_value(want) : json_number_value(old);
        if (want && x > max + 1e-9) {
            snprintf(msg, 256, "criterion \"%.32s\" is worth at most %g points", id, max);
            json_decref(out);
            return false;
        }
        sum += x;
        json_array_append_new(out, json_pack("{s:s, s:O, s:f}", "id", id, "old", old, "new", x));
    }
    snprintf(total, 32, "%.2f", sum);
    *rows = out;
    return true;
}

sm_code http_review_criteria_store(PGconn *db, const char *review_id, const json_t *rows,
                                   sm_err *err)
{
    char *text = json_dumps(rows, JSON_COMPACT);
    if (!text)
        return sm_err_set(err, SM_ENOMEM, "cannot serialise the criteria");
    const char *p[] = {review_id, text};
    sm_code rc = sm_db_query(db,
                             "INSERT INTO review_criterion (review_id, criterion_id, old_points,"
                             " new_points) SELECT $1::bigint, e->>'id', (e->>'old')::numeric,"
                             " round((e->>'new')::numeric, 2)"
                             " FROM jsonb_array_elements($2::jsonb) e",
                             2, p, NULL, err);
    free(text);
    return rc;
}
