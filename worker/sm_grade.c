/* sm_grade: a grading job from JOB body to RESULT body (see sm_grade.h). */
#include "sm_grade.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sm_answer.h"
#include "sm_criteria.h"
#include "sm_inject.h"
#include "sm_log.h"
#include "sm_notebook.h"
#include "sm_wmetrics.h"

#define EXCERPT 2000

int64_t sm_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *str_of(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

void sm_job_free(sm_job **pj)
{
    sm_job *j = *pj;
    if (!j)
        return;
    sm_rubric_clear(&j->rubric);
    json_decref(j->body);
    json_decref(j->checks);
    free(j->checks_text);
    sm_prompt_clear(&j->prompt);
    sm_prompt_clear(&j->mprompt);
    free(j->spans);
    free(j->masked_text);
    for (int i = 0; j->s && i < j->n_samples + j->n_masked; i++) {
        free(j->s[i].text);
        free(j->s[i].repair_request);
        free(j->s[i].repair_text);
        sm_verdict_clear(&j->s[i].v);
    }
    free(j->s);
    free(j);
    *pj = NULL;
}

static double num_or(const json_t *o, const char *k, double def)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : def;
}

/* assignment.rubric: free text or criteria; with criteria max_score may be left out (their
 * total) and must otherwise be their total. */
static sm_code job_rubric(sm_job *j, const json_t *a, sm_err *err)
{
    sm_code rc = sm_rubric_parse(json_object_get(a, "rubric"), &j->rubric, err);
    if (rc)
        return sm_err_prefix(err, "JOB assignment");
    if (j->rubric.n == 0)
        return SM_OK;
    if (!json_object_get(a, "max_score") || json_is_null(json_object_get(a, "max_score")))
        j->max_score = j->rubric.total;
    if (fabs(j->max_score - j->rubric.total) > 0.005)
        return sm_err_set(err, SM_EINVAL,
                          "JOB assignment max_score %g is not the sum of its criteria's points, %g",
                          j->max_score, j->rubric.total);
    j->max_score = j->rubric.total;
    return SM_OK;
}

sm_code sm_job_new(const sm_grader *g, json_t *body, sm_job **out, sm_err *err)
{
    *out = NULL;
    const json_t *a = json_object_get(body, "assignment");
    const json_t *sub = json_object_get(body, "submission");
    json_t *jid = json_object_get(body, "job_id");
    if (!json_is_integer(jid) || json_integer_value(jid) < 1)
        return sm_err_set(err, SM_EINVAL, "JOB without a job_id");
    if (!json_is_object(a) || !json_is_object(sub))
        return sm_err_set(err, SM_EINVAL, "JOB without assignment or submission");
    if (!json_is_string(json_object_get(sub, "content")))
        return sm_err_set(err, SM_EINVAL, "JOB submission without content");
    sm_job *j = calloc(1, sizeof *j);
    if (!j)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    j->g = g;
    j->t_received_ms = sm_mono_ms();
    j->id = json_integer_value(jid);
    j->body = json_incref(body);
    sm_code rc = sm_kind_parse(str_of(a, "kind"), &j->kind, err);
    j->max_score = num_or(a, "max_score", 0);
    if (!rc)
        rc = job_rubric(j, a, err);
    if (!rc && !(j->max_score > 0))
        rc = sm_err_set(err, SM_EINVAL, "assignment without a positive max_score");
    const sm_config *c = g->cfg;
    const json_t *smp = json_object_get(a, "sampling");
    sm_sampler_params_init(&j->sp);
    j->sp.temperature = num_or(smp, "temperature", c->worker.sampling.temperature);
    j->sp.top_p = num_or(smp, "top_p", c->worker.sampling.top_p);
    j->sp.top_k = (int64_t)num_or(smp, "top_k", (double)c->worker.sampling.top_k);
    j->sp.min_p = num_or(smp, "min_p", c->worker.sampling.min_p);
    j->sp.repeat_penalty = num_or(smp, "repetition_penalty", c->worker.sampling.repetition_penalty);
    j->max_new = (int64_t)num_or(smp, "max_new_tokens", (double)c->worker.max_new_tokens);
    if (j->max_new > c->worker.max_new_tokens)
        j->max_new = c->worker.max_new_tokens; /* the worker's context is sized for its limit */
    j->n_samples = (int)num_or(smp, "samples", (double)c->worker.samples);
    if (j->n_samples < 1)
        j->n_samples = 1;
    if (j->n_samples > 64)
        j->n_samples = 64;
    json_t *seed = json_object_get(body, "seed");
    j->seed = json_is_integer(seed) ? (uint64_t)json_integer_value(seed)
                                    : (uint64_t)c->worker.sampling.seed;
    /* room for the masked pass too, should the text turn out to hold an injection */
    if (!rc && !(j->s = calloc((size_t)j->n_samples * 2, sizeof *j->s)))
        rc = sm_err_set(err, SM_ENOMEM, "out of memory");
    if (!rc && !(j->checks = json_array()))
        rc = sm_err_set(err, SM_ENOMEM, "out of memory");
    if (rc) {
        sm_job_free(&j);
        return rc;
    }
    *out = j;
    return SM_OK;
}

/* ---- deterministic checks ---- */

static json_t *excerpt(const char *s)
{
    if (!s)
        return json_string("");
    size_t n = strlen(s);
    if (n <= EXCERPT)
        return json_string(s);
    size_t k = EXCERPT;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--; /* do not cut a UTF-8 character */
    char *p = malloc(k + 16);
    if (!p)
        return json_string("");
    memcpy(p, s, k);
    strcpy(p + k, " [...]");
    json_t *r = json_string(p);
    free(p);
    return r ? r : json_string("");
}

static void text_add(char **buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(char **buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *add = NULL;
    if (vasprintf(&add, fmt, ap) < 0)
        add = NULL;
    va_end(ap);
    if (!add)
        return;
    size_t a = *buf ? strlen(*buf) : 0, b = strlen(add);
    char *p = realloc(*buf, a + b + 1);
    if (p) {
        memcpy(p + a, add, b + 1);
        *buf = p;
    }
    free(add);
}

/* Short one-line form of possibly long output for the prompt. */
static void short_line(const char *s, char *out, size_t n)
{
    size_t k = 0;
    for (; s && *s && k + 1 < n; s++)
        out[k++] = (*s == '\n' || *s == '\r' || *s == '\t') ? ' ' : *s;
    while (k > 0 && ((unsigned char)out[k] & 0xC0) == 0x80 && k + 1 >= n)
        k--;
    out[k] = '\0';
}

static sm_code code_checks(sm_job *j, sm_err *err)
{
    const json_t *a = json_object_get(j->body, "assignment");
    const json_t *sub = json_object_get(j->body, "submission");
    const char *lang = str_of(sub, "language");
    if (!*lang)
        lang = str_of(a, "language");
    const json_t *tests = json_object_get(a, "tests");
    json_t *empty = NULL;
    if (!json_is_array(tests))
        tests = empty = json_array();
    json_t *res = NULL;
    sm_err e2;
    int64_t t0 = sm_mono_ms();
    sm_code rc =
        sm_sandbox_run_tests(j->g->sandbox, lang, str_of(sub, "content"), tests, &res, &e2);
    sm_wmetrics_sandbox_run(sm_wmetrics_sandbox_classify(rc, res));
    json_decref(empty);
    if (rc == SM_ENOMEM)
        return sm_err_set(err, rc, "%s", e2.msg);
    if (rc) {
        j->checks_unavailable = true;
        json_array_append_new(j->checks,
                              json_pack("{s:s, s:s, s:b, s:I, s:s, s:{s:s, s:s}}", "kind",
                                        "compile", "name", "sandbox", "passed", 0, "time_ms",
                                        (json_int_t)(sm_mono_ms() - t0), "output_excerpt", e2.msg,
                                        "details", "error", sm_code_name(rc), "language", lang));
        text_add(&j->checks_text, "The program could not be checked: %s\n", e2.msg);
        return SM_OK;
    }
    const json_t *comp = json_object_get(res, "compile");
    bool cok = json_is_true(json_object_get(comp, "ok")) || !json_is_object(comp);
    json_t *d =
        json_pack("{s:s, s:O}", "language", lang, "limits",
                  json_object_get(res, "limits") ? json_object_get(res, "limits") : json_null());
    if (json_object_get(res, "points"))
        json_object_set(d, "points", json_object_get(res, "points"));
    json_array_append_new(
        j->checks, json_pack("{s:s, s:s, s:b, s:I, s:o, s:o}", "kind", "compile", "name", "compile",
                             "passed", cok, "time_ms", (json_int_t)num_or(comp, "time_ms", 0),
                             "output_excerpt", excerpt(str_of(comp, "output")), "details", d));
    char line[400];
    short_line(str_of(comp, "output"), line, sizeof line);
    text_add(&j->checks_text, "Compilation (%s): %s%s%s\n", lang, cok ? "succeeded" : "FAILED",
             *line ? ": " : "", line);
    size_t i;
    json_t *t;
    int passed = 0, total = 0;
    json_array_foreach(json_object_get(res, "tests"), i, t)
    {
        bool ok = json_is_true(json_object_get(t, "passed"));
        total++;
        passed += ok;
        json_t *det = json_deep_copy(t);
        json_object_del(det, "name");
        json_object_del(det, "passed");
        json_object_del(det, "time_ms");
        json_object_del(det, "output");
        json_array_append_new(j->checks,
                              json_pack("{s:s, s:s, s:b, s:I, s:o, s:o}", "kind", "test", "name",
                                        str_of(t, "name"), "passed", ok, "time_ms",
                                        (json_int_t)num_or(t, "time_ms", 0), "output_excerpt",
                                        excerpt(str_of(t, "output")), "details", det));
        const char *why = str_of(t, "error");
        char out[200], exp[200];
        short_line(str_of(t, "output"), out, sizeof out);
        short_line(str_of(t, "expected"), exp, sizeof exp);
        if (ok)
            text_add(&j->checks_text, "Test \"%s\": passed\n", str_of(t, "name"));
        else
            text_add(&j->checks_text, "Test \"%s\": FAILED%s%s%s; expected \"%s\", got \"%s\"\n",
                     str_of(t, "name"), *why ? " (" : "", why, *why ? ")" : "", exp, out);
    }
    text_add(&j->checks_text, "%d of %d tests passed.\n", passed, total);
    const json_t *pts = json_object_get(res, "points");
    if (json_number_value(json_object_get(pts, "total")) > 0)
        text_add(&j->checks_text, "Points from the tests: %g of %g.\n",
                 json_number_value(json_object_get(pts, "earned")),
                 json_number_value(json_object_get(pts, "total")));
    sm_check_tally *ct = &j->tally;
    ct->tests_passed = passed;
    ct->tests_total = total;
    ct->points_earned = json_number_value(json_object_get(pts, "earned"));
    ct->points_total = json_number_value(json_object_get(pts, "total"));
    ct->verdict = !cok              ? SM_CHECKS_NOT_COMPILED
                  : total == 0      ? SM_CHECKS_NONE
                  : passed == total ? SM_CHECKS_PASSED
                                    : SM_CHECKS_FAILED;
    /* the tests score the program when the assignment has some */
    ct->basis = json_array_size(json_object_get(a, "tests")) > 0 ? SM_BASIS_TESTS : SM_BASIS_NONE;
    json_decref(res);
    return SM_OK;
}

static sm_code math_checks(sm_job *j, sm_err *err)
{
    const json_t *a = json_object_get(j->body, "assignment");
    const char *key = str_of(a, "answer_key");
    if (!*key) {
        text_add(&j->checks_text, "No answer key: the final answer was not checked.\n");
        return SM_OK;
    }
    json_t *res = NULL;
    int64_t t0 = sm_mono_ms();
    sm_answer_policy pol;
    sm_code rc = sm_answer_policy_parse(json_object_get(a, "answer_policy"), &pol, err);
    if (rc)
        return rc;
    rc = sm_answer_compare_policy(str_of(json_object_get(j->body, "submission"), "content"), key,
                                  &pol, &res, err);
    if (rc)
        return rc;
    bool eq = json_is_true(json_object_get(res, "equal"));
    const char *got = json_string_value(json_object_get(res, "extracted"));
    char *ex = NULL;
    if (asprintf(&ex, "final answer %s; expected %s (%s)", got ? got : "(none found)",
                 str_of(res, "expected"), str_of(res, "method")) < 0)
        ex = NULL;
    json_array_append_new(j->checks, json_pack("{s:s, s:s, s:b, s:I, s:o, s:O}", "kind", "answer",
                                               "name", "final answer", "passed", eq, "time_ms",
                                               (json_int_t)(sm_mono_ms() - t0), "output_excerpt",
                                               excerpt(ex ? ex : ""), "details", res));
    text_add(&j->checks_text,
             "Final answer check: the student's final answer %s%s%s %s the "
             "answer key (%s).\n",
             got ? "\"" : "", got ? got : "could not be found", got ? "\"" : "",
             got ? (eq ? "EQUALS" : "DOES NOT EQUAL") : "so it was not compared with",
             str_of(res, "detail"));
    j->tally.verdict = eq ? SM_CHECKS_PASSED : SM_CHECKS_FAILED;
    j->tally.answer_found = got != NULL;
    /* a final answer compared with the key decides right or wrong; none found decides nothing */
    j->tally.basis = got ? SM_BASIS_ANSWER_KEY : SM_BASIS_NONE;
    free(ex);
    json_decref(res);
    return SM_OK;
}

sm_code sm_job_run_checks(sm_job *j, sm_err *err)
{
    int64_t t0 = sm_mono_ms();
    sm_code rc = SM_OK;
    if (j->kind == SM_KIND_CODE)
        rc = code_checks(j, err);
    else if (j->kind == SM_KIND_MATH)
        rc = math_checks(j, err);
    j->checks_ms = sm_mono_ms() - t0;
    return rc;
}

/* ---- prompt and generation ---- */

sm_code sm_job_prepare(sm_job *j, sm_err *err)
{
    const json_t *a = json_object_get(j->body, "assignment");
    const json_t *sub = json_object_get(j->body, "submission");
    const char *content = str_of(sub, "content");
    sm_code rc = sm_inject_scan(content, strlen(content), j->injection, &j->n_injection, err);
    if (rc)
        return rc;
    const char *lang = str_of(sub, "language");
    /* a notebook: its cells as text with markers, its stored outputs left out */
    char *nb_text = NULL;
    if (j->kind == SM_KIND_CODE && strcmp(*lang ? lang : str_of(a, "language"), "python") == 0 &&
        sm_notebook_detect(content)) {
        rc = sm_notebook_render(content, &nb_text, err);
        if (rc)
            return rc;
        content = nb_text;
    }
    char **crit_checks = NULL;
    if (j->rubric.n > 0 && !(crit_checks = calloc((size_t)j->rubric.n, sizeof *crit_checks))) {
        free(nb_text);
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    for (int k = 0; k < j->rubric.n; k++)
        sm_criteria_checks(j->checks, &j->rubric.c[k], &crit_checks[k]);
    sm_prompt_input in = {.kind = j->kind,
                          .title = str_of(a, "title"),
                          .statement = str_of(a, "statement"),
                          .rubric = str_of(a, "rubric"),
                          .criteria = &j->rubric,
                          .criteria_checks = (const char *const *)crit_checks,
                          .reference_solution = str_of(a, "reference_solution"),
                          .answer_key = str_of(a, "answer_key"),
                          .language = *lang ? lang : str_of(a, "language"),
                          .max_score = j->max_score,
                          .checks = j->checks_text,
                          .student = content};
    rc = sm_prompt_build(j->g->prompts, j->g->tok, &in, &j->prompt, err);
    if (!rc && (int64_t)j->prompt.n_ids > j->g->cfg->worker.max_prompt_tokens)
        rc = sm_err_set(err, SM_ELIMIT,
                        "the prompt has %zu tokens, more than "
                        "worker.max_prompt_tokens (%lld)",
                        j->prompt.n_ids, (long long)j->g->cfg->worker.max_prompt_tokens);
    if (!rc && j->n_injection > 0)
        rc = sm_job_prepare_masked(j, &in, err);
    for (int k = 0; crit_checks && k < j->rubric.n; k++)
        free(crit_checks[k]);
    free(crit_checks);
    free(nb_text);
    return rc;
}

sm_code sm_job_submit(sm_job *j, sm_gen_backend *gen, sm_err *err)
{
    static const char *const stops[] = {SM_VERDICT_STOP, NULL};
    j->t_gen_ms = sm_mono_ms();
    for (int i = 0; i < j->n_samples + j->n_masked; i++) {
        bool masked = i >= j->n_samples;
        const sm_prompt *p = masked ? &j->mprompt : &j->prompt;
        sm_task_spec t = {.user = j,
                          .tag = i,
                          .prompt = p->ids,
                          .n_prompt = p->n_ids,
                          .n_prefix = p->n_prefix,
                          .sampling = j->sp,
                          .max_new = sm_grade_critique_budget(j->max_new),
                          .stops = stops};
        t.sampling.seed = j->seed + (uint64_t)(masked ? i - j->n_samples : i);
        sm_code rc = sm_gen_submit(gen, &t, err);
        if (rc) {
            sm_gen_cancel(gen, j);
            return rc;
        }
    }
    return SM_OK;
}

static char *dup_text(const char *s)
{
    char *p = strdup(s ? s : "");
    return p;
}

/* Parses the sample's latest text; true when valid. */
static bool parse_sample(sm_job *j, sm_sample *s, const char *text)
{
    sm_err e;
    sm_verdict_clear(&s->v);
    const char *student = str_of(json_object_get(j->body, "submission"), "content");
    if (sm_verdict_parse(text, strlen(text), j->max_score, &j->rubric, &s->v, &e) == SM_OK &&
        sm_verdict_check_own(&s->v, text, student, &e) == SM_OK) {
        s->valid = true;
        s->error[0] = '\0';
        return true;
    }
    sm_verdict_clear(&s->v); /* a block copied from the student's work is not kept */
    s->valid = false;
    snprintf(s->error, sizeof s->error, "%s", e.msg);
    return false;
}

sm_code sm_job_set_sample(sm_job *j, int i, const char *text, sm_finish finish,
                          const char *repair_text, int64_t tokens, sm_err *err)
{
    if (i < 0 || i >= sm_job_total_samples(j))
        return sm_err_set(err, SM_EINVAL, "no sample %d", i);
    sm_sample *s = &j->s[i];
    if (!(s->text = dup_text(text)))
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    s->finish = finish;
    s->tokens = tokens;
    if (!parse_sample(j, s, text) && repair_text) {
        if (!(s->repair_request = dup_text(s->error)) || !(s->repair_text = dup_text(repair_text)))
            return sm_err_set(err, SM_ENOMEM, "out of memory");
        parse_sample(j, s, repair_text);
    }
    s->done = true;
    j->n_done++;
    if (j->n_done == sm_job_total_samples(j))
        j->t_done_ms = sm_mono_ms();
    return SM_OK;
}

/* Keeps what a remote server said about itself: its model, and each distinct fingerprint. */
static void note_server(sm_job *j, const sm_gen_result *r)
{
    if (!r->server_model)
        return;
    j->remote = true;
    if (!j->server_model[0])
        snprintf(j->server_model, sizeof j->server_model, "%s", r->server_model);
    const char *fp = r->fingerprint && *r->fingerprint ? r->fingerprint : "unreported";
    if (!j->fingerprint[0]) {
        snprintf(j->fingerprint, sizeof j->fingerprint, "%s", fp);
    } else if (!strstr(j->fingerprint, fp)) {
        size_t n = strlen(j->fingerprint);
        snprintf(j->fingerprint + n, sizeof j->fingerprint - n, ",%s", fp);
    }
}

sm_code sm_job_task_done(void *user, const sm_gen_result *r, sm_gen_next *next, sm_err *err)
{
    sm_job *j = user;
    sm_sample *s = &j->s[r->tag];
    const char *text = r->text ? r->text : "";
    s->tokens = r->total_tokens;
    s->prompt_tokens = r->prompt_tokens;
    s->cached_tokens = r->cached_tokens;
    note_server(j, r);
    if (!s->text) { /* the critique */
        if (!(s->text = dup_text(text)))
            return sm_err_set(err, SM_ENOMEM, "out of memory");
        s->finish = r->finish;
        int64_t left = sm_grade_repair_budget(j->max_new, s->tokens);
        if (!parse_sample(j, s, text) && left > 0) { /* else no budget left: stays invalid */
            sm_code rc = sm_prompt_repair(j->g->tok, s->error, j->max_score, &j->rubric, &next->ids,
                                          &next->n, err);
            if (rc)
                return rc;
            next->max_new = left;
            if (!(s->repair_request = dup_text(s->error)))
                return sm_err_set(err, SM_ENOMEM, "out of memory");
            return SM_OK;
        }
    } else { /* the answer to the repair request */
        if (!(s->repair_text = dup_text(text)))
            return sm_err_set(err, SM_ENOMEM, "out of memory");
        parse_sample(j, s, text);
    }
    s->done = true;
    j->n_done++;
    if (j->n_done == sm_job_total_samples(j))
        j->t_done_ms = sm_mono_ms();
    return SM_OK;
}

bool sm_job_complete(const sm_job *j)
{
    return j->n_done == sm_job_total_samples(j);
}

int sm_job_total_samples(const sm_job *j)
{
    return j->n_samples + j->n_masked;
}

int64_t sm_job_done_tokens(const sm_job *j)
{
    int64_t n = 0;
    for (int k = 0; k < sm_job_total_samples(j); k++)
        if (j->s[k].done)
            n += j->s[k].tokens;
    return n;
}

void sm_job_set_unavailable(sm_job *j, const char *why)
{
    snprintf(j->unavailable, sizeof j->unavailable, "%s", why && *why ? why : "unavailable");
    for (int i = 0; i < sm_job_total_samples(j); i++)
        if (!j->s[i].done) {
            j->s[i].done = true;
            j->n_done++;
        }
    j->t_done_ms = sm_mono_ms();
}

int64_t sm_grade_critique_budget(int64_t max_new)
{
    if (max_new < 2)
        return max_new;
    int64_t reserve = max_new / 4;
    if (reserve < 1)
        reserve = 1;
    if (reserve > SM_GRADE_REPAIR_TOKENS)
        reserve = SM_GRADE_REPAIR_TOKENS;
    return max_new - reserve;
}

int64_t sm_grade_repair_budget(int64_t max_new, int64_t used)
{
    return used < max_new ? max_new - used : 0;
}
