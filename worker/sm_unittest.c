/* sm_unittest: unit tests of a student's functions and classes inside the code sandbox (kinds
 * call and pytest for Python, driver for C and C++, junit for Java; see docs/teacher-guide.md).
 * Python and Java tests run under a harness (worker/runners/) that prints its verdict as one line
 * "@@SM-RESULT <nonce> <json>"; the nonce is fresh per run, so a program's own output cannot be
 * taken for it by accident. A C/C++ driver passes when it exits 0 (and prints expected_output
 * when one is given). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sm_sandbox_int.h"
#include "sm_testspec.h"

#define JUNIT_JAR "/usr/share/java/junit-platform-console-standalone.jar"
#define RESULT_MARK "@@SM-RESULT "
#define CLASS_NAME_MAX 100

static bool is_lang(const sbx_lang *L, const char *name)
{
    return strcmp(L->name, name) == 0;
}

static bool isalnum_c(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static void make_nonce(char out[33])
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        for (size_t i = 0; i < sizeof b; i++)
            b[i] = (unsigned char)((ts.tv_nsec >> (i % 8)) ^ (uint64_t)ts.tv_sec ^ (i * 37));
    }
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* The name of the first public top-level type of a Java source (else of the first class),
 * "Main" when none is found. */
static void java_class_name(const char *src, char *name, size_t n)
{
    static const char *const words[] = {"class ", "interface ", "enum ", "record ", NULL};
    const char *best = NULL;
    for (const char *p = src; *p && !best; p++) {
        if (strncmp(p, "public ", 7) != 0 || (p > src && (p[-1] == '_' || isalnum_c(p[-1]))))
            continue;
        const char *q = p + 7;
        while (*q == ' ' || strncmp(q, "final ", 6) == 0 || strncmp(q, "abstract ", 9) == 0)
            q += *q == ' ' ? 1 : strncmp(q, "final ", 6) == 0 ? 6 : 9;
        for (int w = 0; words[w] && !best; w++)
            if (strncmp(q, words[w], strlen(words[w])) == 0)
                best = q + strlen(words[w]);
    }
    if (!best) {
        const char *c = strstr(src, "class ");
        best = c ? c + 6 : NULL;
    }
    size_t k = 0;
    while (best && *best == ' ')
        best++;
    while (best && k + 1 < n && (isalnum_c(*best) || *best == '_'))
        name[k++] = *best++;
    name[k] = '\0';
    if (k == 0)
        snprintf(name, n, "Main");
}

/* ---- prepare: the student's code as a module ------------------------------------------- */

static sm_code prepare_python(run_ctx *ctx, const char *source, bool *ok, char **msg, int64_t *ms,
                              sm_err *err)
{
    sm_code rc = sbx_write_file(ctx->workdir, "solution.py", source, err);
    if (rc == SM_OK)
        rc = sbx_write_file(ctx->workdir, "_stepmark_runner.py", (const char *)sbx_py_runner, err);
    if (rc != SM_OK)
        return rc;
    static const char *const argv[] = {
        "/usr/bin/python3",
        "-I",
        "-B",
        "-c",
        "import sys\nsrc = open(sys.argv[1], 'rb').read()\ncompile(src, 'solution.py', 'exec')",
        "/work/solution.py",
        NULL};
    return sbx_compile(ctx, argv, false, ok, msg, ms, err);
}

static sm_code prepare_java(run_ctx *ctx, const char *source, bool *ok, char **msg, int64_t *ms,
                            sm_err *err)
{
    char cls[CLASS_NAME_MAX + 8], file[CLASS_NAME_MAX + 32], path[CLASS_NAME_MAX + 32];
    java_class_name(source, cls, CLASS_NAME_MAX);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/unit", ctx->workdir);
    if (mkdir(dir, 0755) != 0)
        return sm_err_set(err, SM_EIO, "sandbox: mkdir %s: %s", dir, strerror(errno));
    snprintf(file, sizeof file, "%s.java", cls);
    sm_code rc = sbx_write_file(dir, file, source, err);
    if (rc == SM_OK && strcmp(cls, "StepmarkJUnit") != 0)
        rc = sbx_write_file(dir, "StepmarkJUnit.java", (const char *)sbx_java_runner, err);
    if (rc != SM_OK)
        return rc;
    snprintf(path, sizeof path, "/work/unit/%s", file);
    const char *argv[] = {"/usr/bin/javac",
                          "-J-Xmx512m",
                          "-J-XX:+UseSerialGC",
                          "-J-XX:TieredStopAtLevel=1",
                          "-J-XX:ActiveProcessorCount=1",
                          "-encoding",
                          "UTF-8",
                          "-cp",
                          JUNIT_JAR,
                          "-d",
                          "/work/classes",
                          path,
                          "/work/unit/StepmarkJUnit.java",
                          NULL};
    return sbx_compile(ctx, argv, true, ok, msg, ms, err);
}

sm_code sbx_unit_prepare(run_ctx *ctx, const sbx_lang *L, const char *source, json_t *comp,
                         bool *compiled, sm_err *err)
{
    bool ok = false;
    char *msg = NULL;
    int64_t ms = 0;
    sm_code rc;
    if (is_lang(L, "python")) {
        rc = prepare_python(ctx, source, &ok, &msg, &ms, err);
    } else if (is_lang(L, "java")) {
        if (access(JUNIT_JAR, R_OK) != 0)
            return sm_err_set(err, SM_EUNSUPPORTED,
                              "sandbox: junit tests need %s (Debian package junit5)", JUNIT_JAR);
        rc = prepare_java(ctx, source, &ok, &msg, &ms, err);
    } else {
        /* C, C++: the student's file must compile with its main renamed */
        bool cpp = is_lang(L, "cpp");
        const char *argv[] = {cpp ? "/usr/bin/g++" : "/usr/bin/gcc",
                              cpp ? "-std=c++17" : "-std=c17",
                              "-fsyntax-only",
                              "-Dmain=student_main",
                              cpp ? "/work/main.cpp" : "/work/main.c",
                              NULL};
        rc = sbx_compile(ctx, argv, false, &ok, &msg, &ms, err);
    }
    if (rc != SM_OK) {
        free(msg);
        return rc;
    }
    *compiled = ok;
    json_object_set_new(comp, "ok", json_boolean(ok));
    json_object_set_new(comp, "time_ms", json_integer(ms));
    json_object_set_new(comp, "output", msg ? sbx_excerpt(msg, 2048) : json_string(""));
    free(msg);
    return SM_OK;
}

/* ---- one test run ---------------------------------------------------------------------- */

/* A unit test's run: its command, stdin and limits, and what came of it. */
typedef struct unit_run {
    const char *argv[40];
    char xmx[32];
    char cp[4300];
    char *input; /* owned */
    bool jvm;
    sbx_test_limits tl;
    run_out o;
    sbx_verdict v;
    char *out, *serr; /* cleaned stdout and stderr (owned) */
} unit_run;

static void unit_run_free(unit_run *u)
{
    free(u->input);
    free(u->out);
    free(u->serr);
    sbx_result_free(&u->o.r);
}

static sm_code do_run(run_ctx *ctx, unit_run *u, sm_err *err)
{
    int64_t mem = u->tl.mem_bytes;
    run_req q = {.argv = u->argv,
                 .env = u->jvm ? sbx_java_env : NULL,
                 .input = u->input ? u->input : "",
                 .input_len = u->input ? strlen(u->input) : 0,
                 .cpu_s = u->tl.cpu_s,
                 .wall_ms = u->tl.wall_ms,
                 .as_bytes = u->jvm ? mem + (1024LL << 20) : mem,
                 .mem_bytes = u->tl.total_bytes,
                 .nproc = ctx->lim->max_processes,
                 .one_process = u->jvm};
    sm_code rc = sbx_run_one(ctx, &q, &u->o, err);
    if (rc != SM_OK)
        return rc;
    u->out = sbx_clean_utf8(u->o.r.out, u->o.r.out_len);
    u->serr = sbx_clean_utf8(u->o.r.errout, u->o.r.errout_len);
    if (!u->out || !u->serr)
        return sm_err_set(err, SM_ENOMEM, "sandbox: out of memory");
    memset(&u->v, 0, sizeof u->v);
    sbx_classify(&u->v, &u->o, &u->tl, u->serr, ctx);
    return SM_OK;
}

/* The harness's verdict in u->out (cut off from it), or NULL when it printed none. */
static json_t *take_verdict(unit_run *u, const char *nonce)
{
    char mark[64];
    snprintf(mark, sizeof mark, RESULT_MARK "%s ", nonce);
    char *hit = NULL;
    for (char *p = u->out; (p = strstr(p, mark)) != NULL; p++)
        hit = p;
    if (!hit)
        return NULL;
    char *js = hit + strlen(mark);
    js[strcspn(js, "\n")] = '\0';
    json_t *v = json_loads(js, 0, NULL);
    *hit = '\0';
    return json_is_object(v) ? v : (json_decref(v), NULL);
}

/* A result object with the run's facts (u NULL: not run). */
static json_t *result_json(const char *name, sm_test_kind k, const unit_run *u)
{
    json_t *jt = json_object();
    json_object_set_new(jt, "name", json_string(name));
    json_object_set_new(jt, "kind", json_string(sm_test_kind_name(k)));
    const sbx_result *r = u ? &u->o.r : NULL;
    json_object_set_new(jt, "time_ms", json_integer(r ? r->time_ms : 0));
    json_object_set_new(jt, "cpu_ms", json_integer(r ? r->cpu_ms : 0));
    json_object_set_new(jt, "exit_code",
                        r && r->exit_code >= 0 ? json_integer(r->exit_code) : json_null());
    json_object_set_new(jt, "signal", r && r->signal ? json_integer(r->signal) : json_null());
    json_object_set_new(jt, "timed_out", json_boolean(r && r->timed_out));
    json_object_set_new(jt, "cpu_exceeded", json_boolean(u && u->v.cpu_exceeded));
    json_object_set_new(jt, "memory_exceeded", json_boolean(u && u->v.mem_exceeded));
    json_object_set_new(jt, "output_truncated", json_boolean(r && r->output_truncated));
    json_object_set_new(jt, "output_bytes", json_integer(r ? r->output_bytes : 0));
    if (u) {
        sbx_normalize(u->out, strlen(u->out));
        sbx_normalize(u->serr, strlen(u->serr));
    }
    json_object_set_new(jt, "output", sbx_excerpt(u ? u->out : "", SBX_EXCERPT_MAX));
    json_object_set_new(jt, "stderr", sbx_excerpt(u ? u->serr : "", SBX_EXCERPT_MAX));
    json_object_set_new(jt, "expected", json_string(""));
    if (u)
        json_object_set_new(jt, "limits",
                            json_pack("{s:I, s:I}", "time_ms", (json_int_t)u->tl.wall_ms,
                                      "memory_mb", (json_int_t)(u->tl.mem_bytes >> 20)));
    return jt;
}

/* Appends jt with its verdict and points, and counts it. */
static void add_result(json_t *results, json_t *jt, bool passed, const char *error, double pts,
                       sbx_unit_tally *tally)
{
    json_object_set_new(jt, "passed", json_boolean(passed));
    json_object_set_new(jt, "error", passed || !error ? json_null() : json_string(error));
    if (!passed && !error)
        json_object_set_new(jt, "error", json_string("failed"));
    json_object_set_new(jt, "points", json_real(pts));
    json_object_set_new(jt, "points_earned", json_real(passed ? pts : 0));
    tally->total++;
    tally->passed += passed;
    tally->points += pts;
    tally->points_earned += passed ? pts : 0;
    json_array_append_new(results, jt);
}

/* ---- per kind ---------------------------------------------------------------------------- */

static const char *const py_harness[] = {"/usr/bin/python3", "-I", "-B",
                                         "/work/_stepmark_runner.py", NULL};

/* call, pytest: the spec on stdin; a pytest file written beside the module. */
static sm_code setup_python(run_ctx *ctx, const json_t *t, sm_test_kind k, size_t i,
                            const char *nonce, unit_run *u, sm_err *err)
{
    json_t *spec = json_deep_copy(t);
    if (!spec)
        return sm_err_set(err, SM_ENOMEM, "sandbox: out of memory");
    json_object_set_new(spec, "nonce", json_string(nonce));
    if (k == SM_TEST_PYTEST) {
        char file[64], path[80];
        snprintf(file, sizeof file, "test_stepmark_%zu.py", i + 1);
        snprintf(path, sizeof path, "/work/%s", file);
        sm_code rc =
            sbx_write_file(ctx->workdir, file, json_string_value(json_object_get(t, "file")), err);
        if (rc != SM_OK) {
            json_decref(spec);
            return rc;
        }
        json_object_set_new(spec, "path", json_string(path));
        json_object_del(spec, "file");
    }
    u->input = json_dumps(spec, JSON_COMPACT);
    json_decref(spec);
    if (!u->input)
        return sm_err_set(err, SM_ENOMEM, "sandbox: out of memory");
    for (int a = 0; py_harness[a]; a++)
        u->argv[a] = py_harness[a];
    return SM_OK;
}

/* driver: the student's file included with its main renamed, then the teacher's code,
 * compiled into its own program. *built false (and *msg) when it does not compile. */
static sm_code setup_driver(run_ctx *ctx, const sbx_lang *L, const json_t *t, size_t i, unit_run *u,
                            bool *built, char **msg, sm_err *err)
{
    bool cpp = is_lang(L, "cpp");
    char file[64], path[80], bin[80];
    snprintf(file, sizeof file, "driver_%zu.%s", i + 1, cpp ? "cpp" : "c");
    snprintf(path, sizeof path, "/work/%s", file);
    snprintf(bin, sizeof bin, "/work/driver_%zu", i + 1);
    char *text = NULL;
    if (asprintf(&text,
                 "#define main student_main\n#include \"%s\"\n#undef main\n#line 1 \"%s\"\n%s",
                 L->source_file, cpp ? "test.cpp" : "test.c",
                 json_string_value(json_object_get(t, "source"))) < 0)
        return sm_err_set(err, SM_ENOMEM, "sandbox: out of memory");
    sm_code rc = sbx_write_file(ctx->workdir, file, text, err);
    free(text);
    if (rc != SM_OK)
        return rc;
    const char *argv[] = {cpp ? "/usr/bin/g++" : "/usr/bin/gcc",
                          "-O2",
                          cpp ? "-std=c++17" : "-std=c17",
                          "-pipe",
                          "-I/work",
                          "-o",
                          bin,
                          path,
                          "-lm",
                          NULL};
    rc = sbx_compile(ctx, argv, false, built, msg, NULL, err);
    if (rc != SM_OK)
        return rc;
    snprintf(u->cp, sizeof u->cp, "%s", bin);
    u->argv[0] = u->cp;
    return SM_OK;
}

/* junit: the teacher's class compiled against the student's, run by StepmarkJUnit. */
static sm_code setup_junit(run_ctx *ctx, const json_t *t, size_t i, const char *nonce, unit_run *u,
                           bool *built, char **msg, sm_err *err)
{
    const char *src = json_string_value(json_object_get(t, "source"));
    char cls[CLASS_NAME_MAX + 8], dir[4200], rel[32], file[CLASS_NAME_MAX + 16], path[200];
    java_class_name(src, cls, CLASS_NAME_MAX);
    snprintf(rel, sizeof rel, "t%zu", i + 1);
    snprintf(dir, sizeof dir, "%s/%s", ctx->workdir, rel);
    if (mkdir(dir, 0755) != 0)
        return sm_err_set(err, SM_EIO, "sandbox: mkdir %s: %s", dir, strerror(errno));
    snprintf(file, sizeof file, "%s.java", cls);
    sm_code rc = sbx_write_file(dir, file, src, err);
    if (rc != SM_OK)
        return rc;
    snprintf(path, sizeof path, "/work/%s/%s", rel, file);
    snprintf(u->cp, sizeof u->cp, "/work/%s:/work/classes:%s", rel, JUNIT_JAR);
    char outdir[64];
    snprintf(outdir, sizeof outdir, "/work/%s", rel);
    const char *argv[] = {"/usr/bin/javac",
                          "-J-Xmx512m",
                          "-J-XX:+UseSerialGC",
                          "-J-XX:TieredStopAtLevel=1",
                          "-J-XX:ActiveProcessorCount=1",
                          "-encoding",
                          "UTF-8",
                          "-cp",
                          u->cp,
                          "-d",
                          outdir,
                          path,
                          NULL};
    rc = sbx_compile(ctx, argv, true, built, msg, NULL, err);
    if (rc != SM_OK)
        return rc;
    int na = sbx_java_argv(u->argv, u->xmx, u->tl.mem_bytes);
    u->argv[na++] = "-cp";
    u->argv[na++] = u->cp;
    u->argv[na++] = "StepmarkJUnit";
    /* stdin is "nonce\nClass"; the class name argument points into it so it outlives this
     * frame (the runner reads only the first line) */
    if (asprintf(&u->input, "%s\n%s", nonce, cls) < 0)
        return sm_err_set(err, SM_ENOMEM, "sandbox: out of memory");
    u->argv[na++] = u->input + strlen(nonce) + 1;
    u->argv[na] = NULL;
    u->jvm = true;
    return SM_OK;
}

/* ---- outcomes ---------------------------------------------------------------------------- */

/* pytest, junit: one result per test case, the test's points split evenly among them. */
static void add_cases(json_t *results, const char *name, sm_test_kind k, unit_run *u,
                      const json_t *verdict, double pts, sbx_unit_tally *tally)
{
    const json_t *cases = json_object_get(verdict, "cases");
    size_t n = json_array_size(cases);
    const char *error = json_string_value(json_object_get(verdict, "error"));
    if (n == 0 || error) {
        json_t *jt = result_json(name, k, u);
        add_result(results, jt, false, error ? error : "no test case ran", pts, tally);
        return;
    }
    size_t c;
    const json_t *tc;
    json_array_foreach(cases, c, tc)
    {
        char full[512];
        snprintf(full, sizeof full, "%s: %s", name, json_string_value(json_object_get(tc, "name")));
        json_t *jt = result_json(full, k, c == 0 ? u : NULL);
        const char *outcome = json_string_value(json_object_get(tc, "outcome"));
        const char *msg = json_string_value(json_object_get(tc, "message"));
        bool ok = outcome && strcmp(outcome, "passed") == 0;
        char why[1700];
        snprintf(why, sizeof why, "%s%s%s", outcome ? outcome : "failed", msg && *msg ? ": " : "",
                 msg ? msg : "");
        add_result(results, jt, ok, ok ? NULL : why, pts / (double)n, tally);
    }
}

/* call: the value or exception against the expected one. */
static void add_call(json_t *results, const char *name, unit_run *u, const json_t *verdict,
                     double pts, sbx_unit_tally *tally)
{
    json_t *jt = result_json(name, SM_TEST_CALL, u);
    json_t *got = json_object_get(verdict, "got"), *exp = json_object_get(verdict, "expected");
    if (json_is_string(got))
        json_object_set(jt, "returned", got);
    if (json_is_string(exp))
        json_object_set(jt, "expected", exp);
    if (json_object_get(verdict, "exception"))
        json_object_set(jt, "exception", json_object_get(verdict, "exception"));
    const char *tb = json_string_value(json_object_get(verdict, "traceback"));
    if (tb)
        json_object_set_new(jt, "stderr", sbx_excerpt(tb, SBX_EXCERPT_MAX));
    bool ok = json_is_true(json_object_get(verdict, "passed"));
    const char *error = json_string_value(json_object_get(verdict, "error"));
    const char *etype =
        json_string_value(json_object_get(json_object_get(verdict, "exception"), "type"));
    char mem[160];
    if (!ok && etype && strcmp(etype, "MemoryError") == 0) {
        /* the harness caught it: the limit was reached all the same */
        snprintf(mem, sizeof mem, "memory limit exceeded (%lld MiB per process): MemoryError",
                 (long long)(u->tl.mem_bytes >> 20));
        json_object_set_new(jt, "memory_exceeded", json_true());
        error = mem;
    }
    add_result(results, jt, ok, error, pts, tally);
}

/* driver: exit 0, and the expected output when there is one. */
static void add_driver(json_t *results, const char *name, unit_run *u, const json_t *t, double pts,
                       sbx_unit_tally *tally)
{
    json_t *jt = result_json(name, SM_TEST_DRIVER, u);
    const char *exp = json_string_value(json_object_get(t, "expected_output"));
    const char *error = u->v.error;
    if (!error && exp) {
        char *e = sbx_clean_utf8(exp, strlen(exp));
        if (e) {
            sbx_normalize(e, strlen(e));
            json_object_set_new(jt, "expected", sbx_excerpt(e, SBX_EXCERPT_MAX));
            if (strcmp(e, u->out) != 0)
                error = "wrong output";
        }
        free(e);
    }
    add_result(results, jt, !error, error, pts, tally);
}

/* What the run gave: a limit or crash, no verdict, or the harness's verdict. */
static void add_outcome(json_t *results, const char *name, sm_test_kind k, unit_run *u,
                        const json_t *t, const char *nonce, double pts, sbx_unit_tally *tally)
{
    if (k == SM_TEST_DRIVER) {
        add_driver(results, name, u, t, pts, tally);
        return;
    }
    json_t *verdict = take_verdict(u, nonce);
    if (!verdict || (u->v.error && (u->o.r.timed_out || u->v.cpu_exceeded || u->v.mem_exceeded ||
                                    u->o.r.output_truncated))) {
        char why[300];
        if (verdict)
            snprintf(why, sizeof why, "%s", u->v.error);
        else
            snprintf(why, sizeof why,
                     "%s before the test harness reported (the program ended "
                     "the process)",
                     u->v.error ? u->v.error : "exited");
        add_result(results, result_json(name, k, u), false, why, pts, tally);
    } else if (k == SM_TEST_CALL) {
        add_call(results, name, u, verdict, pts, tally);
    } else {
        add_cases(results, name, k, u, verdict, pts, tally);
    }
    json_decref(verdict);
}

sm_code sbx_unit_run(run_ctx *ctx, const sbx_lang *L, const char *source, const json_t *t, size_t i,
                     bool compiled, json_t *results, sbx_unit_tally *tally, sm_err *err)
{
    (void)source;
    sm_test_kind k = sm_test_kind_of(t);
    char namebuf[32];
    const char *name = json_string_value(json_object_get(t, "name"));
    if (!name) {
        snprintf(namebuf, sizeof namebuf, "test %zu", i + 1);
        name = namebuf;
    }
    double pts = sm_test_points(t);
    if (!compiled) {
        add_result(results, result_json(name, k, NULL), false, "compile error", pts, tally);
        return SM_OK;
    }
    unit_run u;
    memset(&u, 0, sizeof u);
    sbx_test_limits_of(ctx, t, &u.tl);
    char nonce[33];
    make_nonce(nonce);
    bool built = true;
    char *msg = NULL;
    sm_code rc;
    if (k == SM_TEST_CALL || k == SM_TEST_PYTEST)
        rc = setup_python(ctx, t, k, i, nonce, &u, err);
    else if (k == SM_TEST_DRIVER)
        rc = setup_driver(ctx, L, t, i, &u, &built, &msg, err);
    else
        rc = setup_junit(ctx, t, i, nonce, &u, &built, &msg, err);
    if (rc == SM_OK && !built) {
        json_t *jt = result_json(name, k, NULL);
        json_object_set_new(jt, "stderr", sbx_excerpt(msg ? msg : "", SBX_EXCERPT_MAX));
        add_result(results, jt, false, "the test did not compile with this solution", pts, tally);
    } else if (rc == SM_OK) {
        rc = do_run(ctx, &u, err);
        if (rc == SM_OK)
            add_outcome(results, name, k, &u, t, nonce, pts, tally);
    }
    json_t *last = json_array_get(results, json_array_size(results) - 1);
    if (rc == SM_OK && k == SM_TEST_CALL && last) {
        /* what was called, for the review page */
        json_object_set(last, "function", json_object_get(t, "function"));
        json_t *args = json_object_get(t, "args"), *kw = json_object_get(t, "kwargs");
        json_object_set_new(last, "args", args ? json_deep_copy(args) : json_array());
        if (kw)
            json_object_set_new(last, "kwargs", json_deep_copy(kw));
    }
    free(msg);
    unit_run_free(&u);
    return rc;
}
