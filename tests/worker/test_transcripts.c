/* test_transcripts: the corpus of model outputs in tests/worker/transcripts/ (shaped like a
 * reasoning model's real answers: long reasoning, drafts, quotes, cut-offs, odd scores) run
 * through the worker's own path: the generation stop string as the scheduler applies it, the
 * verdict parser and the copy check (sm_job_set_sample, with the repair answer when the
 * transcript has one), then the RESULT assembly (sm_job_result). Each NAME.txt has a sidecar
 * NAME.json with the expectations (format in tests/worker/transcripts/README.md); a NAME.txt
 * may hold {{REASONING}}, replaced by thousands of tokens of reasoning generated from a seed. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>

#include "sm_config.h"
#include "sm_grade.h"
#include "sm_verdict.h"

#define CORPUS_MAX_BYTES (1024 * 1024)

static const char *corpus_dir;

/* ---- text helpers ---- */

static char *read_text(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = '\0';
    fclose(f);
    return s;
}

typedef struct sbuf {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = 2 * (b->n + n + 1);
        b->s = realloc(b->s, b->cap);
        assert_non_null(b->s);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* ---- reasoning generated from a seed ---- */

static uint64_t next_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Sentences a reasoning model writes while checking a solution; some mention the block's
 * keywords in running text, which must not count as a block. */
static const char *const sentences[] = {
    "Let me re-read the problem statement carefully.",
    "The student starts from the equation 3x + 4 = 19.",
    "Subtracting 4 from both sides gives 3x = 15, so x = \\boxed{5}.",
    "Wait, let me double-check that arithmetic: 19 - 4 = 15, yes.",
    "Hmm, dividing by 3 gives x = 5, which matches \\boxed{5}.",
    "Now the second step: the student wrote 3x = 13, which is wrong.",
    "So step 2 is incorrect, and everything after it inherits the error.",
    "Actually, maybe the student meant 15 and made a typo? No, they carried 13 forward.",
    "The final answer should be \\boxed{x = 5}, but the student has \\boxed{13/3}.",
    "I should give partial credit for the correct set-up: SCORE maybe 2/4?",
    "Let me think about how the rubric weighs the set-up versus the final answer.",
    "Alternatively, check by substitution: 3(5) + 4 = 19. Correct.",
    "The student's 13/3 gives 3(13/3) + 4 = 17, not 19, so it is incorrect.",
    "STEP 1 looks correct to me, STEP 2 is incorrect.",
    "I will finish with the === VERDICT === block as instructed.",
    "Is \\frac{13}{3} simplified? Yes, but simplification does not rescue it.",
    "Let's consider whether the units matter here; they do not.",
    "OK so overall: correct set-up, one arithmetic slip, wrong final answer.",
    "Hmm, but wait. Let me verify the subtraction once more: 19 - 4 = 15.",
    "Therefore the student's answer deviates from \\boxed{5}.",
};

/* About `words` words of reasoning, in paragraphs, from the seed; after "<think>" when think,
 * closed by "</think>" unless open (a chain cut off while thinking). */
static void gen_reasoning(sbuf *b, uint64_t seed, int words, bool think, bool open)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    if (think)
        sb_str(b, "<think>\n");
    int w = 0, in_par = 0;
    while (w < words) {
        const char *s = sentences[next_rand(&x) % (sizeof sentences / sizeof *sentences)];
        sb_str(b, s);
        for (const char *p = s; *p; p++)
            w += *p == ' ';
        w++;
        if (++in_par >= 4 + (int)(next_rand(&x) % 5)) {
            sb_str(b, "\n\n");
            in_par = 0;
        } else {
            sb_str(b, " ");
        }
    }
    sb_str(b, open ? "" : think ? "\n</think>\n\n" : "\n\n");
}

/* The transcript with {{REASONING}} expanded and, when crlf, every "\n" written "\r\n". */
static char *expand(const char *raw, const json_t *side)
{
    sbuf b = {0};
    const json_t *r = json_object_get(side, "reasoning");
    const char *ph = "{{REASONING}}";
    const char *at = strstr(raw, ph);
    if (at && json_is_object(r)) {
        sb_add(&b, raw, (size_t)(at - raw));
        gen_reasoning(&b, (uint64_t)json_integer_value(json_object_get(r, "seed")),
                      (int)json_integer_value(json_object_get(r, "words")),
                      json_is_true(json_object_get(r, "think")),
                      json_is_true(json_object_get(r, "open")));
        sb_str(&b, at + strlen(ph));
    } else {
        sb_str(&b, raw);
    }
    if (!json_is_true(json_object_get(side, "crlf")))
        return b.s;
    sbuf c = {0};
    for (size_t i = 0; i < b.n; i++)
        sb_add(&c, b.s[i] == '\n' ? "\r\n" : b.s + i, b.s[i] == '\n' ? 2 : 1);
    free(b.s);
    return c.s;
}

/* The scheduler's stop: the text ends with the first stop string. True when it fired. */
static bool apply_stop(char *text)
{
    char *at = strstr(text, SM_VERDICT_STOP);
    if (!at)
        return false;
    at[strlen(SM_VERDICT_STOP)] = '\0';
    return true;
}

/* ---- one transcript ---- */

typedef struct fixture {
    sm_config cfg;
    sm_prompt_set *prompts;
    sm_grader g;
} fixture;

static sm_finish finish_of(const char *s)
{
    return !s || !strcmp(s, "eos") ? SM_FINISH_EOS
           : !strcmp(s, "length")  ? SM_FINISH_LENGTH
                                   : SM_FINISH_STOP;
}

static sm_job *make_job(const fixture *f, const json_t *side)
{
    const char *student = json_string_value(json_object_get(side, "student"));
    json_t *body =
        json_pack("{s:i, s:i, s:{s:s, s:s, s:f, s:{s:i}}, s:{s:s}}", "job_id", 1, "seed", 1,
                  "assignment", "kind", "math", "statement", "Solve 3x + 4 = 19", "max_score",
                  json_number_value(json_object_get(side, "max_score")), "sampling", "samples", 1,
                  "submission", "content", student ? student : "3x + 4 = 19\n3x = 13\nx = 13/3");
    assert_non_null(body);
    const json_t *rubric = json_object_get(side, "rubric"); /* criteria: max_score their sum */
    if (rubric)
        json_object_set(json_object_get(body, "assignment"), "rubric", (json_t *)rubric);
    sm_job *j;
    sm_err err;
    assert_int_equal(sm_job_new(&f->g, body, &j, &err), SM_OK);
    json_decref(body);
    return j;
}

/* The first parse: "ok" (no repair asked) or "repair" with the complaint holding reason. */
static void check_first_parse(const char *name, const json_t *ex, const sm_sample *s)
{
    const char *parse = json_string_value(json_object_get(ex, "parse"));
    assert_non_null(parse);
    const char *why = s->repair_request ? s->repair_request : s->error;
    if (!strcmp(parse, "ok")) {
        if (s->repair_request || !s->valid)
            fail_msg("%s: expected the block to parse, got \"%s\"", name, why);
        return;
    }
    const char *reason = json_string_value(json_object_get(ex, "reason"));
    if (!strcmp(parse, "repair") && !s->repair_request && s->valid)
        fail_msg("%s: expected a refusal (%s), the block was accepted", name, reason);
    if (reason && !strstr(why, reason))
        fail_msg("%s: expected a complaint containing \"%s\", got \"%s\"", name, reason, why);
}

static bool has_string(const json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i,
                       v) if (json_is_string(v) && !strcmp(json_string_value(v), s)) return true;
    return false;
}

/* The RESULT's criteria: each {id, verdict, points (null: none), evidence (a part of it)}, in
 * order; none at all when the expectation is absent and the rubric free text. */
static void check_criteria(const char *name, const json_t *ex, const json_t *r)
{
    const json_t *want = json_object_get(ex, "criteria"), *got = json_object_get(r, "criteria");
    if (!want) {
        if (got)
            fail_msg("%s: criteria in a RESULT without a rubric of criteria", name);
        return;
    }
    if (json_array_size(want) != json_array_size(got))
        fail_msg("%s: %zu criteria, expected %zu", name, json_array_size(got),
                 json_array_size(want));
    for (size_t i = 0; i < json_array_size(want); i++) {
        const json_t *w = json_array_get(want, i), *g = json_array_get(got, i);
        const char *id = json_string_value(json_object_get(w, "id"));
        if (strcmp(id, json_string_value(json_object_get(g, "id"))))
            fail_msg("%s: criterion %zu is %s, expected %s", name, i + 1,
                     json_string_value(json_object_get(g, "id")), id);
        const json_t *wv = json_object_get(w, "verdict"), *gv = json_object_get(g, "verdict");
        if (json_is_null(wv) ? !json_is_null(gv)
                             : !gv || strcmp(json_string_value(wv), json_string_value(gv)))
            fail_msg("%s: criterion %s: verdict %s, expected %s", name, id,
                     json_is_string(gv) ? json_string_value(gv) : "null",
                     json_is_string(wv) ? json_string_value(wv) : "null");
        const json_t *wp = json_object_get(w, "points"), *gp = json_object_get(g, "points");
        if (json_is_null(wp) ? !json_is_null(gp)
                             : fabs(json_number_value(wp) - json_number_value(gp)) > 1e-9)
            fail_msg("%s: criterion %s: points %g, expected %g", name, id, json_number_value(gp),
                     json_number_value(wp));
        const char *we = json_string_value(json_object_get(w, "evidence"));
        const char *ge = json_string_value(json_object_get(g, "evidence"));
        if (we && (!ge || (*we ? !strstr(ge, we) : *ge != '\0')))
            fail_msg("%s: criterion %s: evidence \"%s\", expected \"%s\"", name, id,
                     ge ? ge : "(none)", we);
    }
}

/* The RESULT: status, score (null: none), steps' verdicts and quotes, summary, flags. */
static void check_result(const char *name, const json_t *ex, const json_t *r)
{
    const char *st = json_string_value(json_object_get(ex, "status"));
    if (st && strcmp(st, json_string_value(json_object_get(r, "status"))))
        fail_msg("%s: status %s, expected %s", name,
                 json_string_value(json_object_get(r, "status")), st);
    const json_t *score = json_object_get(ex, "score");
    if (json_is_null(score) && json_object_get(r, "score"))
        fail_msg("%s: a score where none was expected", name);
    if (json_is_number(score) &&
        fabs(json_number_value(json_object_get(r, "score")) - json_number_value(score)) > 1e-9)
        fail_msg("%s: score %g, expected %g", name, json_number_value(json_object_get(r, "score")),
                 json_number_value(score));
    const json_t *steps = json_object_get(ex, "steps"), *got = json_object_get(r, "steps");
    if (steps && json_array_size(steps) != json_array_size(got))
        fail_msg("%s: %zu steps, expected %zu", name, json_array_size(got), json_array_size(steps));
    for (size_t i = 0; i < json_array_size(steps); i++) {
        const char *want = json_string_value(json_array_get(steps, i));
        const char *have = json_string_value(json_object_get(json_array_get(got, i), "verdict"));
        if (strcmp(want, have))
            fail_msg("%s: step %zu is %s, expected %s", name, i + 1, have, want);
    }
    const json_t *quotes = json_object_get(ex, "quotes");
    for (size_t i = 0; i < json_array_size(quotes); i++)
        if (strcmp(json_string_value(json_array_get(quotes, i)),
                   json_string_value(json_object_get(json_array_get(got, i), "quoted"))))
            fail_msg("%s: step %zu quotes \"%s\"", name, i + 1,
                     json_string_value(json_object_get(json_array_get(got, i), "quoted")));
    const char *sum = json_string_value(json_object_get(ex, "summary"));
    if (sum && !strstr(json_string_value(json_object_get(r, "summary")), sum))
        fail_msg("%s: summary \"%s\" lacks \"%s\"", name,
                 json_string_value(json_object_get(r, "summary")), sum);
    const json_t *flags = json_object_get(ex, "flags"), *gf = json_object_get(r, "flags");
    if (!flags)
        return;
    size_t i;
    json_t *v;
    json_array_foreach(flags, i, v) if (!has_string(gf, json_string_value(v)))
        fail_msg("%s: flag %s missing", name, json_string_value(v));
    json_array_foreach(gf, i, v) if (!has_string(flags, json_string_value(v)))
        fail_msg("%s: unexpected flag %s", name, json_string_value(v));
}

typedef struct transcript {
    char name[256]; /* without ".json" */
    const fixture *f;
} transcript;

static void run_transcript(void **state)
{
    const transcript *t = *state;
    char file[300];
    snprintf(file, sizeof file, "%s/%s.json", corpus_dir, t->name);
    json_error_t je;
    json_t *side = json_load_file(file, 0, &je);
    if (!side)
        fail_msg("%s: %s", file, je.text);
    snprintf(file, sizeof file, "%s.txt", t->name);
    char *raw = read_text(corpus_dir, file);
    if (!raw)
        fail_msg("%s: no transcript %s", t->name, file);
    char *text = expand(raw, side);
    const json_t *ex = json_object_get(side, "expect");
    bool stop = !json_is_false(json_object_get(side, "stop"));
    bool stopped = stop && apply_stop(text);
    const json_t *want_stop = json_object_get(ex, "stopped");
    if (want_stop && json_is_true(want_stop) != stopped)
        fail_msg("%s: the stop string %s", t->name, stopped ? "fired" : "did not fire");
    const json_t *words = json_object_get(ex, "min_bytes");
    if (words && strlen(text) < (size_t)json_integer_value(words))
        fail_msg("%s: only %zu bytes of output", t->name, strlen(text));
    char *repair = NULL;
    if (json_is_true(json_object_get(side, "repair"))) {
        snprintf(file, sizeof file, "%s.repair.txt", t->name);
        if (!(repair = read_text(corpus_dir, file)))
            fail_msg("%s: no repair answer %s", t->name, file);
        apply_stop(repair);
    }
    sm_job *j = make_job(t->f, side);
    sm_finish fin =
        stopped ? SM_FINISH_STOP : finish_of(json_string_value(json_object_get(side, "finish")));
    sm_err err;
    assert_int_equal(sm_job_set_sample(j, 0, text, fin, repair, 3000, &err), SM_OK);
    check_first_parse(t->name, ex, &j->s[0]);
    json_t *r;
    assert_int_equal(sm_job_result(j, &r, &err), SM_OK);
    check_result(t->name, ex, r);
    check_criteria(t->name, ex, r);
    json_decref(r);
    sm_job_free(&j);
    free(repair);
    free(text);
    free(raw);
    json_decref(side);
}

/* ---- the corpus as a whole ---- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(((const transcript *)a)->name, ((const transcript *)b)->name);
}

static bool ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

/* The sidecars' names (sorted), and the corpus's size in bytes. */
static transcript *list_corpus(int *n, long *bytes)
{
    DIR *d = opendir(corpus_dir);
    if (!d)
        return NULL;
    transcript *ts = NULL;
    *n = 0;
    *bytes = 0;
    for (struct dirent *e; (e = readdir(d));) {
        char path[1024];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", corpus_dir, e->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            *bytes += st.st_size;
        if (!ends_with(e->d_name, ".json") || strlen(e->d_name) >= sizeof ts->name + 5)
            continue;
        ts = realloc(ts, (size_t)(*n + 1) * sizeof *ts);
        snprintf(ts[*n].name, sizeof ts[*n].name, "%.*s", (int)strlen(e->d_name) - 5, e->d_name);
        (*n)++;
    }
    closedir(d);
    qsort(ts, (size_t)*n, sizeof *ts, cmp_names);
    return ts;
}

/* Every transcript has a sidecar and the other way round; the corpus stays small. */
static void corpus_shape(void **state)
{
    (void)state;
    int n;
    long bytes;
    transcript *ts = list_corpus(&n, &bytes);
    assert_non_null(ts);
    assert_true(n >= 20);
    assert_true(bytes < CORPUS_MAX_BYTES);
    DIR *d = opendir(corpus_dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));) {
        if (!ends_with(e->d_name, ".txt"))
            continue;
        char base[300];
        snprintf(base, sizeof base, "%.*s", (int)strlen(e->d_name) - 4, e->d_name);
        if (ends_with(base, ".repair"))
            base[strlen(base) - 7] = '\0';
        transcript key;
        snprintf(key.name, sizeof key.name, "%s", base);
        if (!bsearch(&key, ts, (size_t)n, sizeof *ts, cmp_names))
            fail_msg("%s has no sidecar %s.json", e->d_name, base);
    }
    closedir(d);
    free(ts);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s TRANSCRIPTS_DIR\n", argv[0]);
        return 2;
    }
    corpus_dir = argv[1];
    fixture f = {0};
    sm_config_defaults(&f.cfg);
    sm_err err;
    if (sm_prompt_set_load(NULL, &f.prompts, &err)) {
        fprintf(stderr, "prompts: %s\n", err.msg);
        return 1;
    }
    f.g = (sm_grader){.prompts = f.prompts,
                      .cfg = &f.cfg,
                      .model_name = "m",
                      .model_hash = "h",
                      .engine_version = "test"};
    int n;
    long bytes;
    transcript *ts = list_corpus(&n, &bytes);
    if (!ts) {
        fprintf(stderr, "%s: cannot list\n", corpus_dir);
        return 1;
    }
    struct CMUnitTest *tests = calloc((size_t)n + 1, sizeof *tests);
    tests[0] = (struct CMUnitTest)cmocka_unit_test(corpus_shape);
    for (int i = 0; i < n; i++) {
        ts[i].f = &f;
        tests[i + 1] = (struct CMUnitTest){
            .name = ts[i].name, .test_func = run_transcript, .initial_state = &ts[i]};
    }
    int rc = _cmocka_run_group_tests("transcripts", tests, (size_t)n + 1, NULL, NULL);
    free(tests);
    free(ts);
    sm_prompt_set_free(&f.prompts);
    return rc;
}
