/* sm_result: a job's RESULT body from its finished samples and checks (see sm_result.h and
 * sm_job_result in sm_grade.h). */
#include "sm_result.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_criteria.h"
#include "sm_masked.h"

#define NOMEM(err) sm_err_set(err, SM_ENOMEM, "out of memory while assembling a result")

/* ---- the parts ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double sm_grade_median(double *v, int n)
{
    if (n < 1)
        return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int sm_grade_representative(const sm_job *j, double score)
{
    double best = INFINITY;
    int rep = -1;
    for (int i = 0; i < j->n_samples; i++)
        if (j->s[i].valid && fabs(j->s[i].v.score - score) < best) {
            best = fabs(j->s[i].v.score - score);
            rep = i;
        }
    return rep;
}

sm_step_vote sm_grade_vote_step(const sm_job *j, int rep, int k)
{
    static const sm_verdict_kind order[] = {SM_VERDICT_INCORRECT, SM_VERDICT_INCOMPLETE,
                                            SM_VERDICT_UNCLEAR, SM_VERDICT_CORRECT};
    const sm_verdict *rv = &j->s[rep].v;
    int count[SM_VERDICT_KINDS] = {0};
    for (int i = 0; i < j->n_samples; i++)
        if (j->s[i].valid && j->s[i].v.n_steps > k)
            count[j->s[i].v.steps[k].verdict]++;
    sm_step_vote vote = {.verdict = rv->steps[k].verdict, .src = &rv->steps[k]};
    for (int o = 0; o < SM_VERDICT_KINDS; o++)
        if (count[order[o]] > count[vote.verdict])
            vote.verdict = order[o];
    vote.agreement = j->n_samples > 0 ? (double)count[vote.verdict] / (double)j->n_samples : 0;
    if (vote.src->verdict != vote.verdict)
        for (int i = 0; i < j->n_samples; i++)
            if (j->s[i].valid && j->s[i].v.n_steps > k &&
                j->s[i].v.steps[k].verdict == vote.verdict) {
                vote.src = &j->s[i].v.steps[k];
                break;
            }
    return vote;
}

double sm_grade_confidence(double agree_sum, int n_steps, double spread, double max_score)
{
    if (n_steps < 1 || !(max_score > 0))
        return 0;
    double c = agree_sum / n_steps;
    return c * (1.0 - fmin(1.0, spread / max_score) * 0.5);
}

bool sm_grade_contradicts(sm_check_verdict v, double max_score, double score)
{
    double half = 0.5 * max_score;
    switch (v) {
    case SM_CHECKS_PASSED:
        return score < half;
    case SM_CHECKS_FAILED:
        return score >= max_score - 1e-9;
    case SM_CHECKS_NOT_COMPILED:
        return score > half;
    case SM_CHECKS_NONE:
        break;
    }
    return false;
}

const char *sm_provisional_basis_name(sm_provisional_basis b)
{
    return b == SM_BASIS_TESTS ? "tests" : b == SM_BASIS_ANSWER_KEY ? "answer_key" : "none";
}

/* To 2 decimals (the stored precision), within [0, max]. */
static double round2(double v, double max)
{
    v = round(v * 100.0) / 100.0;
    return v < 0 ? 0 : v > max ? max : v;
}

static bool from_tests(const sm_check_tally *t, double max, sm_provisional *out)
{
    if (t->verdict == SM_CHECKS_NOT_COMPILED) {
        out->score = 0;
        snprintf(out->detail, sizeof out->detail,
                 "the program did not compile, so no test passed: 0 of %g", max);
        return true;
    }
    if (t->points_total > 0) {
        out->score = round2(t->points_earned / t->points_total * max, max);
        snprintf(out->detail, sizeof out->detail,
                 "%g of %g test points earned (%d of %d tests passed) x %g = %g", t->points_earned,
                 t->points_total, t->tests_passed, t->tests_total, max, out->score);
        return true;
    }
    if (t->tests_total > 0) { /* tests worth no points each: count them */
        out->score = round2((double)t->tests_passed / t->tests_total * max, max);
        snprintf(out->detail, sizeof out->detail, "%d of %d tests passed x %g = %g",
                 t->tests_passed, t->tests_total, max, out->score);
        return true;
    }
    return false;
}

bool sm_provisional_from_checks(const sm_check_tally *t, double max, sm_provisional *out)
{
    memset(out, 0, sizeof *out);
    if (!(max > 0))
        return false;
    bool ok = false;
    if (t->basis == SM_BASIS_TESTS) {
        ok = from_tests(t, max, out);
    } else if (t->basis == SM_BASIS_ANSWER_KEY && t->answer_found &&
               (t->verdict == SM_CHECKS_PASSED || t->verdict == SM_CHECKS_FAILED)) {
        bool right = t->verdict == SM_CHECKS_PASSED;
        out->score = right ? round2(max, max) : 0;
        snprintf(out->detail, sizeof out->detail, "the final answer %s the answer key: %g of %g",
                 right ? "equals" : "does not equal", out->score, max);
        ok = true;
    }
    out->basis = ok ? t->basis : SM_BASIS_NONE;
    return ok;
}

/* ---- assembling the RESULT ---- */

static sm_code add_flag(json_t *flags, const char *f, sm_err *err)
{
    size_t i;
    json_t *v;
    json_array_foreach(flags, i, v) if (!strcmp(json_string_value(v), f)) return SM_OK;
    if (json_array_append_new(flags, json_string(f)))
        return NOMEM(err);
    return SM_OK;
}

static sm_code put(json_t *o, const char *key, json_t *v, sm_err *err)
{
    if (!v || json_object_set_new(o, key, v))
        return NOMEM(err);
    return SM_OK;
}

typedef struct token_totals {
    int64_t prompt, completion, cached;
} token_totals;

json_t *sm_grade_chain_json(const sm_sample *s, int i)
{
    char *text = NULL;
    if (s->repair_request &&
        asprintf(&text, "%s\n\n[verdict block rejected: %s; repair answer follows]\n%s",
                 s->text ? s->text : "", s->repair_request,
                 s->repair_text ? s->repair_text : "") < 0)
        return NULL;
    json_t *c = json_pack("{s:i, s:s, s:I}", "sample", i, "text",
                          text ? text : (s->text ? s->text : ""), "tokens", (json_int_t)s->tokens);
    free(text);
    return c;
}

/* The reasoning chains, token totals and the cut_off flag. */
static sm_code reasoning_json(const sm_job *j, json_t *r, json_t *flags, token_totals *tot,
                              sm_err *err)
{
    json_t *reasoning = json_array();
    if (!reasoning || json_object_set_new(r, "reasoning", reasoning))
        return NOMEM(err);
    *tot = (token_totals){0};
    for (int i = 0; i < sm_job_total_samples(j); i++) { /* the masked pass's tokens count too */
        const sm_sample *s = &j->s[i];
        tot->prompt += s->prompt_tokens + s->cached_tokens;
        tot->cached += s->cached_tokens;
        tot->completion += s->tokens;
        if (i >= j->n_samples)
            continue; /* its chains go into "masked" */
        if (s->finish == SM_FINISH_LENGTH && add_flag(flags, "cut_off", err))
            return SM_ENOMEM;
        if (!s->text && j->unavailable[0])
            continue; /* never generated */
        if (json_array_append_new(reasoning, sm_grade_chain_json(s, i)))
            return NOMEM(err);
    }
    return SM_OK;
}

/* The model's verdict from the valid samples (n_valid >= 1): score, steps, summary, flags. */
static sm_code model_verdict(const sm_job *j, double *scores, int n_valid, json_t *r, json_t *flags,
                             double *confidence, sm_err *err)
{
    double score = sm_grade_median(scores, n_valid);         /* scores sorted from here on */
    sm_code rc = sm_criteria_json(j, r, flags, &score, err); /* criteria: score = their sum */
    if (rc)
        return rc;
    int rep = sm_grade_representative(j, score);
    const sm_verdict *rv = &j->s[rep].v;
    json_t *steps = json_array();
    if (!steps || json_object_set_new(r, "steps", steps))
        return NOMEM(err);
    double agree_sum = 0;
    for (int k = 0; k < rv->n_steps; k++) {
        sm_step_vote v = sm_grade_vote_step(j, rep, k);
        agree_sum += v.agreement;
        if (json_array_append_new(steps, json_pack("{s:i, s:s, s:s, s:s, s:f}", "number", k + 1,
                                                   "quoted", v.src->quoted, "verdict",
                                                   sm_verdict_kind_name(v.verdict), "explanation",
                                                   v.src->explanation, "agreement", v.agreement)))
            return NOMEM(err);
    }
    *confidence =
        sm_grade_confidence(agree_sum, rv->n_steps, scores[n_valid - 1] - scores[0], j->max_score);
    if (*confidence < SM_GRADE_LOW_AGREEMENT)
        rc = add_flag(flags, "low_agreement", err);
    if (!rc && sm_grade_contradicts(j->tally.verdict, j->max_score, score))
        rc = add_flag(flags, "checks_contradict_score", err);
    if (!rc)
        rc = put(r, "score", json_real(score), err);
    if (!rc)
        rc = put(r, "summary", json_string(rv->summary), err);
    return rc;
}

sm_code sm_grade_verdict_json(const sm_job *j, double *scores, int n_valid, json_t *r,
                              json_t *flags, double *confidence, sm_err *err)
{
    return model_verdict(j, scores, n_valid, r, flags, confidence, err);
}

/* No score from the model (its critique unreadable, or the model unavailable): a summary for
 * the teacher and, where the checks can score the submission, the provisional score. */
static sm_code no_verdict(const sm_job *j, json_t *r, json_t *flags, sm_err *err)
{
    bool unavailable = j->unavailable[0] != '\0';
    sm_code rc = add_flag(flags, unavailable ? "model_unavailable" : "invalid_verdict", err);
    if (!rc && json_object_set_new(r, "steps", json_array()))
        rc = NOMEM(err);
    if (!rc)
        rc = sm_criteria_json_empty(j, r, err);
    sm_provisional p;
    bool prov = sm_provisional_from_checks(&j->tally, j->max_score, &p);
    char *sum = NULL;
    int n;
    if (unavailable)
        n = asprintf(&sum, "The model could not grade this submission (%s)%s", j->unavailable,
                     prov ? "; " : "; a teacher should grade it.");
    else
        n = asprintf(&sum,
                     "The model's critique could not be read (%s), even after one repair "
                     "request%s",
                     j->n_samples > 0 ? j->s[0].error : "",
                     prov ? "; "
                          : "; a teacher should "
                            "grade this submission.");
    if (n >= 0 && prov) {
        char *more = NULL;
        n = asprintf(&more,
                     "%sthe checks give a provisional score (%s) for a teacher to approve "
                     "or adjust.",
                     sum, p.detail);
        free(sum);
        sum = n >= 0 ? more : NULL;
    }
    if (n < 0)
        sum = NULL;
    if (!rc)
        rc = sum ? put(r, "summary", json_string(sum), err) : NOMEM(err);
    free(sum);
    if (!rc && prov)
        rc = add_flag(flags, "provisional_from_checks", err);
    if (!rc && prov)
        rc = put(r, "provisional",
                 json_pack("{s:f, s:s, s:s}", "score", p.score, "basis",
                           sm_provisional_basis_name(p.basis), "detail", p.detail),
                 err);
    return rc;
}

/* What identifies the grading and what it cost: model, engine, template, sampling, seed,
 * tokens and timings. */
static sm_code identity_json(const sm_job *j, json_t *r, const token_totals *tot, sm_err *err)
{
    const sm_config *c = j->g->cfg;
    int64_t end = j->t_done_ms ? j->t_done_ms : sm_mono_ms();
    const char *tv =
        j->prompt.version ? j->prompt.version : sm_prompt_version(j->g->prompts, j->kind);
    sm_code rc = put(r, "job_id", json_integer((json_int_t)j->id), err);
    if (!rc)
        rc = put(r, "max_score", json_real(j->max_score), err);
    if (!rc)
        rc = put(r, "checks", json_incref(j->checks), err);
    if (!rc)
        rc = put(r, "model",
                 json_pack("{s:s, s:s}", "name", j->remote ? j->server_model : j->g->model_name,
                           "hash", j->remote ? j->fingerprint : j->g->model_hash),
                 err);
    if (!rc)
        rc = put(r, "engine_version", json_string(j->g->engine_version), err);
    if (!rc)
        rc = put(r, "prompt_template_version", json_string(tv ? tv : ""), err);
    if (!rc)
        rc = put(r, "sampling",
                 json_pack("{s:f, s:f, s:I, s:f, s:f, s:I, s:i, s:b}", "temperature",
                           j->sp.temperature, "top_p", j->sp.top_p, "top_k",
                           (json_int_t)j->sp.top_k, "min_p", j->sp.min_p, "repetition_penalty",
                           j->sp.repeat_penalty, "max_new_tokens", (json_int_t)j->max_new,
                           "samples", j->n_samples, "deterministic", c->worker.deterministic),
                 err);
    if (!rc)
        rc = put(r, "seed", json_integer((json_int_t)j->seed), err);
    if (!rc)
        rc = put(r, "tokens",
                 json_pack("{s:I, s:I}", "prompt", (json_int_t)tot->prompt, "completion",
                           (json_int_t)tot->completion),
                 err);
    if (!rc)
        rc = put(r, "timings",
                 json_pack("{s:I, s:I, s:I, s:I}", "checks_ms", (json_int_t)j->checks_ms,
                           "generate_ms", (json_int_t)(j->t_gen_ms ? end - j->t_gen_ms : 0),
                           "total_ms", (json_int_t)(end - j->t_received_ms), "prefix_cached_tokens",
                           (json_int_t)tot->cached),
                 err);
    return rc;
}

/* Everything but the status, into r; flags collects the flags. */
static sm_code assemble(sm_job *j, json_t *r, json_t *flags, sm_err *err)
{
    sm_code rc = SM_OK;
    for (int i = 0; !rc && i < j->n_injection; i++)
        rc = add_flag(flags, j->injection[i], err);
    if (!rc && j->checks_unavailable)
        rc = add_flag(flags, "checks_unavailable", err);
    token_totals tot = {0};
    if (!rc)
        rc = reasoning_json(j, r, flags, &tot, err);
    double *scores = NULL;
    if (!rc && !(scores = calloc((size_t)j->n_samples + 1, sizeof *scores)))
        rc = NOMEM(err);
    int n_valid = 0;
    for (int i = 0; !rc && !j->unavailable[0] && i < j->n_samples; i++)
        if (j->s[i].valid)
            scores[n_valid++] = j->s[i].v.score;
    double confidence = 0;
    if (!rc)
        rc = n_valid > 0 ? model_verdict(j, scores, n_valid, r, flags, &confidence, err)
                         : no_verdict(j, r, flags, err);
    free(scores);
    if (!rc)
        rc = sm_masked_json(j, r, flags, err);
    if (!rc)
        rc = put(r, "confidence", json_real(confidence), err);
    if (!rc)
        rc = identity_json(j, r, &tot, err);
    return rc;
}

sm_code sm_job_result(sm_job *j, json_t **out, sm_err *err)
{
    *out = NULL;
    json_t *r = json_object(), *flags = json_array();
    sm_code rc = r && flags ? assemble(j, r, flags, err) : NOMEM(err);
    if (!rc)
        rc = put(r, "status", json_string(json_array_size(flags) ? "needs_review" : "graded"), err);
    if (!rc)
        rc = put(r, "flags", json_incref(flags), err);
    json_decref(flags);
    if (rc) {
        json_decref(r);
        return rc;
    }
    *out = r;
    return SM_OK;
}
