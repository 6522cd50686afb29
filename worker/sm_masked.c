/* sm_masked: the masked pass of a job flagged for prompt injection (see sm_masked.h). */
#include "sm_masked.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_criteria.h"
#include "sm_result.h"

#define NOMEM(err) sm_err_set(err, SM_ENOMEM, "out of memory while assembling a result")

sm_code sm_job_prepare_masked(sm_job *j, const sm_prompt_input *in, sm_err *err)
{
    const char *text = in->student ? in->student : "";
    size_t len = strlen(text);
    j->spans = calloc(SM_INJECT_MAX_SPANS, sizeof *j->spans);
    if (!j->spans)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    sm_code rc = sm_inject_find(text, len, j->spans, SM_INJECT_MAX_SPANS, &j->n_spans, err);
    if (rc)
        return rc;
    j->n_spans = sm_inject_widen(text, len, j->spans, j->n_spans);
    if (j->n_spans == 0)
        return SM_OK; /* flagged without a span to mask (a match limit hit): no masked pass */
    rc = sm_inject_mask(text, len, j->spans, j->n_spans, SM_INJECT_MARKER, &j->masked_text, err);
    if (rc)
        return rc;
    sm_prompt_input m = *in;
    m.student = j->masked_text;
    rc = sm_prompt_build(j->g->prompts, j->g->tok, &m, &j->mprompt, err);
    if (rc)
        return rc;
    if ((int64_t)j->mprompt.n_ids > j->g->cfg->worker.max_prompt_tokens) {
        snprintf(j->masked_skip, sizeof j->masked_skip,
                 "the masked prompt has %zu tokens, more than worker.max_prompt_tokens (%lld)",
                 j->mprompt.n_ids, (long long)j->g->cfg->worker.max_prompt_tokens);
        return SM_OK;
    }
    j->n_masked = j->n_samples;
    return SM_OK;
}

static double round2(double v)
{
    return round(v * 100.0) / 100.0;
}

bool sm_masked_differs(bool has_score, double score, bool has_masked, double masked, double margin)
{
    if (has_score != has_masked)
        return true;
    if (!has_score)
        return false;
    return fabs(round2(score) - round2(masked)) > round2(margin) + 1e-9;
}

static sm_code put(json_t *o, const char *key, json_t *v, sm_err *err)
{
    if (!v || json_object_set_new(o, key, v))
        return NOMEM(err);
    return SM_OK;
}

/* The spans as {start, end} byte offsets into the text the prompt shows. */
static json_t *spans_json(const sm_job *j)
{
    json_t *a = json_array();
    for (int i = 0; a && i < j->n_spans; i++)
        if (json_array_append_new(a, json_pack("{s:I, s:I}", "start", (json_int_t)j->spans[i].start,
                                               "end", (json_int_t)j->spans[i].end))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* The masked pass's verdict (score, steps, summary), chains and tokens into m. */
static sm_code masked_pass(const sm_job *j, json_t *m, sm_err *err)
{
    sm_job view = *j; /* the masked samples seen as a job of their own */
    view.s = j->s + j->n_samples;
    view.n_samples = j->n_masked;
    view.n_masked = 0;
    double scores[64 + 1];
    int n_valid = 0;
    for (int i = 0; i < view.n_samples && i < 64; i++)
        if (view.s[i].valid)
            scores[n_valid++] = view.s[i].v.score;
    json_t *scratch = json_array(), *chains = json_array(); /* its flags are not the job's */
    sm_code rc = scratch && chains ? SM_OK : NOMEM(err);
    double conf = 0;
    if (!rc && n_valid > 0)
        rc = sm_grade_verdict_json(&view, scores, n_valid, m, scratch, &conf, err);
    else if (!rc) {
        char sum[SM_ERR_MSG_MAX + 200];
        snprintf(sum, sizeof sum,
                 "The model's critique of the text without the flagged spans could not be read "
                 "either (%s).",
                 view.s[0].error);
        rc = put(m, "score", json_null(), err);
        if (!rc)
            rc = put(m, "summary", json_string(sum), err);
        if (!rc)
            rc = put(m, "steps", json_array(), err);
        if (!rc)
            rc = sm_criteria_json_empty(&view, m, err);
    }
    json_int_t prompt = 0, completion = 0;
    for (int i = 0; !rc && i < view.n_samples; i++) {
        prompt += view.s[i].prompt_tokens + view.s[i].cached_tokens;
        completion += view.s[i].tokens;
        if (json_array_append_new(chains, sm_grade_chain_json(&view.s[i], i)))
            rc = NOMEM(err);
    }
    json_decref(scratch);
    if (!rc)
        rc = put(m, "reasoning", json_incref(chains), err);
    json_decref(chains);
    if (!rc)
        rc = put(m, "tokens", json_pack("{s:I, s:I}", "prompt", prompt, "completion", completion),
                 err);
    return rc;
}

/* The margin in points, the decision (never "differs" when the masked pass did not run) and,
 * when they differ, the flag. */
static sm_code compare(const sm_job *j, json_t *r, json_t *m, json_t *flags, sm_err *err)
{
    double margin = round2(j->g->cfg->worker.injection_margin * j->max_score);
    const json_t *a = json_object_get(r, "score"), *b = json_object_get(m, "score");
    bool differs =
        j->n_masked > 0 && sm_masked_differs(json_is_number(a), json_number_value(a),
                                             json_is_number(b), json_number_value(b), margin);
    sm_code rc = put(m, "margin", json_real(margin), err);
    if (!rc)
        rc = put(m, "differs", json_boolean(differs), err);
    if (!rc && differs && json_array_append_new(flags, json_string(SM_MASKED_FLAG)))
        rc = NOMEM(err);
    return rc;
}

sm_code sm_masked_json(const sm_job *j, json_t *r, json_t *flags, sm_err *err)
{
    if (j->unavailable[0] || j->n_spans == 0)
        return SM_OK;
    json_t *m = json_object();
    if (!m || json_object_set_new(r, "masked", m))
        return NOMEM(err);
    sm_code rc = put(m, "spans", spans_json(j), err);
    if (!rc)
        rc = put(m, "content", json_string(j->masked_text ? j->masked_text : ""), err);
    if (!rc && j->n_masked > 0) {
        rc = masked_pass(j, m, err);
    } else if (!rc) {
        char sum[SM_ERR_MSG_MAX + 64];
        snprintf(sum, sizeof sum, "Not graded without the flagged text: %s.", j->masked_skip);
        rc = put(m, "score", json_null(), err);
        if (!rc)
            rc = put(m, "summary", json_string(sum), err);
        if (!rc)
            rc = put(m, "steps", json_array(), err);
    }
    return rc ? rc : compare(j, r, m, flags, err);
}
