/* sm_sandbox: the code check of a submission. Writes the student's source into a private work
 * dir, compiles it inside the sandbox (work dir writable), runs it once per test (work dir
 * read-only), compares the trimmed output with the expected output and reports everything as
 * JSON, including how each limit was enforced. The process-level work is in sm_sandbox_exec.c. */
#include "sm_sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sm_sandbox_exec.h"

#define EXCERPT_MAX 1024
#define COMPILE_OUTPUT_MAX 2048
#define MAX_TESTS 256
#define MAX_SOURCE (4 * 1024 * 1024)
#define SBX_MAX_INPUT (16 * 1024 * 1024)
#define SBX_MAX_TEST_ARGS 32
#define SUMMARY_MAX 800

void sm_sandbox_limits_from_config(const sm_config *cfg, sm_sandbox_limits *lim) {
    memset(lim, 0, sizeof *lim);
    lim->cpu_seconds = cfg->sandbox.cpu_seconds;
    lim->wall_seconds = cfg->sandbox.wall_seconds;
    lim->memory_mb = cfg->sandbox.memory_mb;
    lim->max_processes = cfg->sandbox.max_processes;
    lim->max_output_bytes = cfg->sandbox.max_output_bytes;
    lim->use_cgroups = cfg->sandbox.use_cgroups;
    lim->bwrap = cfg->sandbox.bwrap;
}

/* ---- languages ---------------------------------------------------------------------------- */

typedef struct lang {
    const char *name;
    const char *source_file;
    const char *tool;              /* must exist on the host (and so in the sandbox) */
    const char *const *compile;    /* NULL = nothing to compile */
    const char *const *run;
    bool jvm;
} lang;

static const char *const c_compile[] = {"/usr/bin/gcc", "-O2", "-std=c17", "-pipe", "-o",
                                        "/work/main", "/work/main.c", "-lm", NULL};
static const char *const c_run[] = {"/work/main", NULL};
static const char *const cpp_compile[] = {"/usr/bin/g++", "-O2", "-std=c++17", "-pipe", "-o",
                                          "/work/main", "/work/main.cpp", NULL};
static const char *const py_compile[] = {
    "/usr/bin/python3", "-I", "-B", "-c",
    "import sys\nsrc = open(sys.argv[1], 'rb').read()\ncompile(src, 'main.py', 'exec')",
    "/work/main.py", NULL};
static const char *const py_run[] = {"/usr/bin/python3", "-I", "-B", "/work/main.py", NULL};
static const char *const java_compile[] = {
    "/usr/bin/javac", "-J-Xmx512m", "-J-Xss1m", "-J-XX:+UseSerialGC",
    "-J-XX:TieredStopAtLevel=1", "-J-XX:ReservedCodeCacheSize=64m",
    "-J-XX:CompressedClassSpaceSize=64m", "-J-XX:ActiveProcessorCount=1", "-encoding", "UTF-8",
    "-d", "/work", "/work/Main.java", NULL};
/* the run argv of Java is built per run (-Xmx follows the memory limit) */

static const lang langs[] = {
    {"c", "main.c", "/usr/bin/gcc", c_compile, c_run, false},
    {"cpp", "main.cpp", "/usr/bin/g++", cpp_compile, c_run, false},
    {"python", "main.py", "/usr/bin/python3", py_compile, py_run, false},
    {"java", "Main.java", "/usr/bin/javac", java_compile, NULL, true},
};

static const lang *find_lang(const char *name) {
    for (size_t i = 0; i < sizeof langs / sizeof langs[0]; i++)
        if (strcmp(langs[i].name, name) == 0) return &langs[i];
    if (strcmp(name, "c++") == 0) return &langs[1];
    if (strcmp(name, "python3") == 0) return &langs[2];
    return NULL;
}

/* ---- text helpers ----------------------------------------------------------------------- */

/* Copies s[0..n) into a new NUL-terminated string with invalid UTF-8 and NULs replaced by '?'
 * and most control characters dropped, so the result is safe for JSON and prompts. */
static char *clean_utf8(const char *s, size_t n) {
    char *o = malloc(n + 1);
    if (!o) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            if (c == 0) o[j++] = '?';
            else if (c >= 0x20 || c == '\n' || c == '\t') o[j++] = (char)c;
            i++;
            continue;
        }
        int len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        bool ok = len > 0 && i + (size_t)len <= n && !(c == 0xC0 || c == 0xC1 || c > 0xF4);
        for (int k = 1; ok && k < len; k++) ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
        if (ok && len == 3) {
            unsigned cp = ((c & 0x0Fu) << 12) | (((unsigned char)s[i + 1] & 0x3Fu) << 6);
            if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) ok = false;
        }
        if (ok && len == 4) {
            unsigned cp = ((c & 0x07u) << 18) | (((unsigned char)s[i + 1] & 0x3Fu) << 12);
            if (cp < 0x10000 || cp > 0x10FFFF) ok = false;
        }
        if (!ok) {
            o[j++] = '?';
            i++;
            continue;
        }
        memcpy(o + j, s + i, (size_t)len);
        j += (size_t)len;
        i += (size_t)len;
    }
    o[j] = '\0';
    return o;
}

/* Trims trailing whitespace of every line and trailing empty lines (in place). Returns length. */
static size_t normalize(char *s, size_t n) {
    size_t j = 0, line_start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '\n') {
            size_t e = j;
            while (e > line_start &&
                   (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\v' ||
                    s[e - 1] == '\f'))
                e--;
            j = e;
            if (i < n) s[j++] = '\n';
            line_start = j;
        } else {
            s[j++] = s[i];
        }
    }
    while (j > 0 && (s[j - 1] == '\n')) j--;
    s[j] = '\0';
    return j;
}

/* A JSON string of at most max bytes of s (cut at a UTF-8 boundary, marked when cut). */
static json_t *excerpt(const char *s, size_t max) {
    size_t n = strlen(s);
    if (n <= max) return json_string(s);
    size_t cut = max;
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--;
    char *buf = malloc(cut + 32);
    if (!buf) return json_null();
    memcpy(buf, s, cut);
    snprintf(buf + cut, 32, "\n[... %zu more bytes]", n - cut);
    json_t *j = json_string(buf);
    free(buf);
    return j;
}

/* 1-based number of the first line where a and b differ (both normalized), 0 when equal. */
static int first_diff_line(const char *a, const char *b) {
    int line = 1;
    for (size_t i = 0;; i++) {
        if (a[i] != b[i]) {
            /* one text just has more lines: the difference is the next line */
            bool extra = (a[i] == '\n' && b[i] == '\0') || (a[i] == '\0' && b[i] == '\n');
            return extra ? line + 1 : line;
        }
        if (a[i] == '\0') return 0;
        if (a[i] == '\n') line++;
    }
}

/* Line number line (1-based) of s as a JSON string of at most 200 bytes, or null past the end. */
static json_t *line_at(const char *s, int line) {
    for (int l = 1; l < line && s; l++) {
        s = strchr(s, '\n');
        if (s) s++;
    }
    if (!s) return json_null();
    size_t n = strcspn(s, "\n");
    if (n > 200) {
        n = 200;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    }
    return json_stringn(s, n);
}

static bool has_oom_marker(const char *s) {
    static const char *const m[] = {"MemoryError", "OutOfMemoryError", "std::bad_alloc",
                                    "Cannot allocate memory", "out of memory", NULL};
    for (int i = 0; m[i]; i++)
        if (strstr(s, m[i])) return true;
    return false;
}

/* ---- work dir ----------------------------------------------------------------------------- */

static void remove_flat(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            if (unlinkat(dirfd(d), e->d_name, 0) != 0 && errno == EISDIR) {
                /* a compiler made a folder (javac packages): one level is enough for it */
                char sub[4200];
                snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
                DIR *s = opendir(sub);
                if (s) {
                    struct dirent *f;
                    while ((f = readdir(s)) != NULL)
                        if (strcmp(f->d_name, ".") && strcmp(f->d_name, ".."))
                            unlinkat(dirfd(s), f->d_name, 0);
                    closedir(s);
                }
                unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
            }
        }
        closedir(d);
    }
    rmdir(dir);
}

static sm_code make_workdir(const sm_sandbox_limits *lim, char *dir, size_t len, sm_err *err) {
    const char *base = lim->work_base && lim->work_base[0] ? lim->work_base : getenv("TMPDIR");
    if (!base || !base[0]) base = "/tmp";
    snprintf(dir, len, "%s/stepmark-sbx-XXXXXX", base);
    if (!mkdtemp(dir)) return sm_err_set(err, SM_EIO, "sandbox: mkdtemp in %s: %s", base,
                                         strerror(errno));
    return SM_OK;
}

static sm_code write_source(const char *dir, const char *name, const char *src, sm_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return sm_err_set(err, SM_EIO, "sandbox: create %s: %s", path, strerror(errno));
    size_t n = strlen(src), off = 0;
    while (off < n) {
        ssize_t w = write(fd, src + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int en = errno;
            close(fd);
            return sm_err_set(err, SM_EIO, "sandbox: write %s: %s", path, strerror(en));
        }
        off += (size_t)w;
    }
    close(fd);
    return SM_OK;
}

/* ---- one run ------------------------------------------------------------------------------ */

typedef struct run_ctx {
    const sm_sandbox_limits *lim;
    const char *workdir;
    const char *bwrap;
    bool use_cgroup;      /* cgroups v2 usable (decided once per call) */
    char cgroup_why[256]; /* why not, when not */
} run_ctx;

/* Runs argv with the given limits, in a fresh cgroup when possible. */
static sm_code run_one(run_ctx *ctx, const char *const *argv, const char *const *env,
                       bool writable, const char *input, size_t input_len, int64_t cpu_s,
                       int64_t wall_ms, int64_t as_bytes, int64_t mem_bytes, int64_t nproc,
                       sbx_result *res, bool *cgroup_used, bool *oom_killed, sm_err *err) {
    sbx_cgroup cg;
    bool have_cg = false;
    *cgroup_used = *oom_killed = false;
    if (ctx->use_cgroup) {
        have_cg = sbx_cgroup_create(&cg, mem_bytes, nproc + SBX_BWRAP_TASKS, ctx->cgroup_why,
                                    sizeof ctx->cgroup_why);
        if (!have_cg) ctx->use_cgroup = false;
    }
    sbx_spec spec = {
        .bwrap = ctx->bwrap,
        .workdir = ctx->workdir,
        .work_writable = writable,
        .argv = argv,
        .env = env,
        .stdin_data = input,
        .stdin_len = input_len,
        .cpu_seconds = cpu_s,
        .wall_ms = wall_ms,
        .as_bytes = as_bytes,
        .nproc = nproc,
        .fsize_bytes = 64LL << 20,
        .output_cap = ctx->lim->max_output_bytes > 0 ? ctx->lim->max_output_bytes : 65536,
        .tmp_bytes = 64LL << 20,
        .cgroup = have_cg ? &cg : NULL,
    };
    sm_code rc = sbx_run(&spec, res, err);
    if (have_cg) {
        *cgroup_used = true;
        *oom_killed = sbx_cgroup_oom_kills(&cg) > 0;
        sbx_cgroup_destroy(&cg);
    }
    return rc;
}

/* ---- the check -------------------------------------------------------------------------- */

static sm_code validate_tests(const json_t *tests, sm_err *err) {
    if (!json_is_array(tests))
        return sm_err_set(err, SM_EINVAL, "sandbox: tests must be a JSON array");
    if (json_array_size(tests) > MAX_TESTS)
        return sm_err_set(err, SM_EINVAL, "sandbox: more than %d tests", MAX_TESTS);
    size_t i;
    const json_t *t;
    json_array_foreach(tests, i, t) {
        if (!json_is_object(t))
            return sm_err_set(err, SM_EINVAL, "sandbox: test %zu is not an object", i);
        const json_t *in = json_object_get(t, "input"), *exp = json_object_get(t, "expected_output");
        const json_t *args = json_object_get(t, "args"), *to = json_object_get(t, "timeout_seconds");
        const json_t *name = json_object_get(t, "name");
        if (name && !json_is_string(name))
            return sm_err_set(err, SM_EINVAL, "sandbox: test %zu: name must be a string", i);
        if (in && !json_is_string(in) && !json_is_null(in))
            return sm_err_set(err, SM_EINVAL, "sandbox: test %zu: input must be a string", i);
        if (in && json_is_string(in) && json_string_length(in) > SBX_MAX_INPUT)
            return sm_err_set(err, SM_EINVAL, "sandbox: test %zu: input too large", i);
        if (!json_is_string(exp))
            return sm_err_set(err, SM_EINVAL, "sandbox: test %zu: expected_output must be a string",
                              i);
        if (args) {
            if (!json_is_array(args) || json_array_size(args) > SBX_MAX_TEST_ARGS)
                return sm_err_set(err, SM_EINVAL,
                                  "sandbox: test %zu: args must be an array of at most %d strings",
                                  i, SBX_MAX_TEST_ARGS);
            size_t k;
            const json_t *s;
            json_array_foreach(args, k, s) {
                if (!json_is_string(s) || json_string_length(s) > 4096)
                    return sm_err_set(err, SM_EINVAL, "sandbox: test %zu: bad argument %zu", i, k);
            }
        }
        if (to && !(json_is_number(to) && json_number_value(to) > 0))
            return sm_err_set(err, SM_EINVAL, "sandbox: test %zu: timeout_seconds must be > 0", i);
    }
    return SM_OK;
}

static json_t *enforcement(const run_ctx *ctx, const lang *L, bool root) {
    json_t *e = json_object();
    char buf[300];
    json_object_set_new(e, "cpu", json_string("RLIMIT_CPU (the kernel SIGKILLs the program at the limit)"));
    snprintf(buf, sizeof buf,
             "SIGKILL at the deadline: bwrap (--die-with-parent) and its pid namespace, its "
             "process group%s%s",
             ctx->use_cgroup ? ", cgroup.kill" : "", root ? ", every process of the run's uid" : "");
    json_object_set_new(e, "wall", json_string(buf));
    if (ctx->use_cgroup)
        snprintf(buf, sizeof buf, "cgroup v2 memory.max (swap 0) and RLIMIT_AS%s",
                 L->jvm ? " (JVM: memory.max plus 1 GiB address space, -Xmx)" : "");
    else
        snprintf(buf, sizeof buf, "RLIMIT_AS%s (cgroup v2 not used: %s)",
                 L->jvm ? " plus 1 GiB for the JVM, and -Xmx" : "",
                 ctx->lim->use_cgroups ? ctx->cgroup_why : "disabled in the config");
    json_object_set_new(e, "memory", json_string(buf));
    snprintf(buf, sizeof buf, "%sRLIMIT_NPROC %s",
             ctx->use_cgroup ? "cgroup v2 pids.max and " : "",
             root ? "on a uid of the run's own (the worker is root, which RLIMIT_NPROC exempts)"
                  : "counted with the worker's own uid (raised by its current task count)");
    json_object_set_new(e, "processes", json_string(buf));
    json_object_set_new(e, "output", json_string("stdout+stderr read through pipes with a byte "
                                                 "cap; past it the rest is discarded and the run "
                                                 "is killed"));
    json_object_set_new(e, "network", json_string("bwrap: new empty network namespace"));
    json_object_set_new(e, "filesystem",
                        json_string("bwrap: read-only /usr and a few /etc files, private 64 MiB "
                                    "/tmp, work dir at /work (writable while compiling, read-only "
                                    "for tests), RLIMIT_FSIZE 64 MiB"));
    return e;
}

sm_code sm_sandbox_run_tests(const sm_sandbox_limits *lim, const char *language,
                             const char *source, const json_t *tests_json, json_t **out,
                             sm_err *err) {
    if (out) *out = NULL;
    if (!lim || !language || !source || !tests_json || !out)
        return sm_err_set(err, SM_EINVAL, "sandbox: NULL argument");
    if (lim->cpu_seconds <= 0 || lim->wall_seconds <= 0 || lim->memory_mb <= 0 ||
        lim->max_processes <= 0 || lim->max_output_bytes <= 0)
        return sm_err_set(err, SM_EINVAL, "sandbox: limits must be positive");
    const lang *L = find_lang(language);
    if (!L) return sm_err_set(err, SM_EUNSUPPORTED, "sandbox: unsupported language '%s'", language);
    if (strlen(source) > MAX_SOURCE)
        return sm_err_set(err, SM_EINVAL, "sandbox: source larger than %d bytes", MAX_SOURCE);
    sm_code rc = validate_tests(tests_json, err);
    if (rc != SM_OK) return rc;
    if (access(L->tool, X_OK) != 0)
        return sm_err_set(err, SM_EUNSUPPORTED, "sandbox: %s is not installed (%s)", L->name,
                          L->tool);
    if (L->jvm && access("/usr/bin/java", X_OK) != 0)
        return sm_err_set(err, SM_EUNSUPPORTED, "sandbox: java is not installed (/usr/bin/java)");
    const char *bwrap = lim->bwrap && lim->bwrap[0] ? lim->bwrap : "/usr/bin/bwrap";
    if (access(bwrap, X_OK) != 0)
        return sm_err_set(err, SM_EUNSUPPORTED, "sandbox: bubblewrap not found at %s", bwrap);

    char workdir[4096];
    rc = make_workdir(lim, workdir, sizeof workdir, err);
    if (rc != SM_OK) return rc;
    rc = write_source(workdir, L->source_file, source, err);
    if (rc != SM_OK) {
        remove_flat(workdir);
        return rc;
    }
    bool root = geteuid() == 0;
    run_ctx ctx = {.lim = lim, .workdir = workdir, .bwrap = bwrap, .use_cgroup = lim->use_cgroups};
    snprintf(ctx.cgroup_why, sizeof ctx.cgroup_why, "not tried");
    int64_t mem = lim->memory_mb << 20;
    json_t *res = json_object();
    json_t *tests_out = json_array();
    json_object_set_new(res, "language", json_string(L->name));

    /* compile */
    json_t *comp = json_object();
    bool compiled = true;
    static const char *const java_env[] = {"MALLOC_ARENA_MAX=2", NULL};
    if (L->compile) {
        int64_t cs = lim->compile_seconds > 0 ? lim->compile_seconds : 30;
        int64_t cmem = mem > (2048LL << 20) ? mem : (2048LL << 20);
        int64_t cproc = lim->max_processes > 64 ? lim->max_processes : 64;
        sbx_result r;
        bool cgu, oom;
        rc = run_one(&ctx, L->compile, L->jvm ? java_env : NULL, true, NULL, 0, cs, cs * 1000,
                     L->jvm ? cmem + (1024LL << 20) : cmem, cmem, cproc, &r, &cgu, &oom, err);
        if (rc != SM_OK) {
            json_decref(comp);
            json_decref(tests_out);
            json_decref(res);
            remove_flat(workdir);
            return rc;
        }
        compiled = r.exit_code == 0 && r.signal == 0 && !r.timed_out;
        /* the compiler's messages: stderr, then stdout */
        size_t n = r.errout_len + r.out_len + 2;
        char *msg = malloc(n);
        if (msg) {
            memcpy(msg, r.errout, r.errout_len);
            msg[r.errout_len] = '\n';
            memcpy(msg + r.errout_len + 1, r.out, r.out_len);
            char *c = clean_utf8(msg, r.errout_len + 1 + r.out_len);
            free(msg);
            msg = c;
        }
        if (msg) {
            normalize(msg, strlen(msg));
            /* the sandbox path means nothing to a reader: show bare file names */
            for (char *p; (p = strstr(msg, "/work/")) != NULL;) memmove(p, p + 6, strlen(p + 6) + 1);
        }
        json_object_set_new(comp, "ok", json_boolean(compiled));
        json_object_set_new(comp, "time_ms", json_integer(r.time_ms));
        json_object_set_new(comp, "output", msg ? excerpt(msg, COMPILE_OUTPUT_MAX) : json_string(""));
        if (r.timed_out)
            json_object_set_new(comp, "error", json_string("compiler timed out"));
        else if (r.signal)
            json_object_set_new(comp, "error", json_string("compiler killed by a signal"));
        free(msg);
        sbx_result_free(&r);
    } else {
        json_object_set_new(comp, "ok", json_true());
        json_object_set_new(comp, "time_ms", json_integer(0));
        json_object_set_new(comp, "output", json_string(""));
    }
    json_object_set_new(res, "compile", comp);

    /* tests */
    int passed = 0, total = (int)json_array_size(tests_json);
    char summary[SUMMARY_MAX] = "";
    size_t slen = 0;
    size_t i;
    const json_t *t;
    json_array_foreach(tests_json, i, t) {
        const char *name = json_string_value(json_object_get(t, "name"));
        char namebuf[32];
        if (!name) {
            snprintf(namebuf, sizeof namebuf, "test %zu", i + 1);
            name = namebuf;
        }
        const json_t *jin = json_object_get(t, "input");
        const char *input = json_is_string(jin) ? json_string_value(jin) : "";
        size_t input_len = json_is_string(jin) ? json_string_length(jin) : 0;
        const char *expected_raw = json_string_value(json_object_get(t, "expected_output"));
        char *expected = clean_utf8(expected_raw, strlen(expected_raw));
        if (expected) normalize(expected, strlen(expected));
        json_t *to = json_object_get(t, "timeout_seconds");
        int64_t cpu_s = lim->cpu_seconds, wall_ms = lim->wall_seconds * 1000;
        if (json_is_number(to)) {
            double s = json_number_value(to), cap = (double)lim->wall_seconds * 10;
            if (s > cap) s = cap;
            if (s < 0.1) s = 0.1;
            cpu_s = (int64_t)(s + 0.999);
            wall_ms = (int64_t)(s * 1000) + 1000;
        }

        json_t *jt = json_object();
        json_object_set_new(jt, "name", json_string(name));
        const char *error = NULL;
        char errbuf[200];
        bool ok = false;
        if (!compiled) {
            json_object_set_new(jt, "passed", json_false());
            json_object_set_new(jt, "time_ms", json_integer(0));
            json_object_set_new(jt, "exit_code", json_null());
            json_object_set_new(jt, "signal", json_null());
            json_object_set_new(jt, "timed_out", json_false());
            json_object_set_new(jt, "cpu_exceeded", json_false());
            json_object_set_new(jt, "memory_exceeded", json_false());
            json_object_set_new(jt, "output_truncated", json_false());
            json_object_set_new(jt, "output_bytes", json_integer(0));
            json_object_set_new(jt, "output", json_string(""));
            json_object_set_new(jt, "expected", expected ? excerpt(expected, EXCERPT_MAX) : json_string(""));
            json_object_set_new(jt, "stderr", json_string(""));
            error = "compile error";
        } else {
            /* argv: the language's run command, then the test's args */
            const char *argv[SBX_MAX_TEST_ARGS + 24];
            int na = 0;
            char xmx[32], ccs[48];
            if (L->jvm) {
                int64_t heap = lim->memory_mb * 3 / 4;
                if (heap < 32) heap = 32;
                snprintf(xmx, sizeof xmx, "-Xmx%lldm", (long long)heap);
                snprintf(ccs, sizeof ccs, "-XX:CompressedClassSpaceSize=64m");
                const char *jv[] = {"/usr/bin/java", xmx, "-Xss8m", "-XX:+UseSerialGC",
                                    "-XX:TieredStopAtLevel=1", "-XX:ReservedCodeCacheSize=32m",
                                    ccs, "-XX:MaxMetaspaceSize=128m",
                                    "-XX:ActiveProcessorCount=1", "-Xshare:auto", "-cp", "/work",
                                    "Main", NULL};
                for (int k = 0; jv[k]; k++) argv[na++] = jv[k];
            } else {
                for (int k = 0; L->run[k]; k++) argv[na++] = L->run[k];
            }
            const json_t *args = json_object_get(t, "args");
            size_t k;
            const json_t *s;
            json_array_foreach(args, k, s) argv[na++] = json_string_value(s);
            argv[na] = NULL;

            int64_t as = L->jvm ? mem + (1024LL << 20) : mem;
            sbx_result r;
            bool cgu, oom;
            rc = run_one(&ctx, argv, L->jvm ? java_env : NULL, false, input, input_len, cpu_s,
                         wall_ms, as, mem, lim->max_processes, &r, &cgu, &oom, err);
            if (rc != SM_OK) {
                free(expected);
                json_decref(jt);
                json_decref(tests_out);
                json_decref(res);
                remove_flat(workdir);
                return rc;
            }
            char *got = clean_utf8(r.out, r.out_len);
            char *serr = clean_utf8(r.errout, r.errout_len);
            if (got) normalize(got, strlen(got));
            if (serr) normalize(serr, strlen(serr));
            bool cpu_exceeded = r.signal == SIGXCPU ||
                                (r.signal == SIGKILL && !r.timed_out && !r.output_truncated &&
                                 !oom && r.cpu_ms >= cpu_s * 500);
            bool failed = r.exit_code != 0 || r.signal != 0;
            bool mem_exceeded =
                oom || (failed && !r.timed_out && !cpu_exceeded && !r.output_truncated &&
                        ((serr && has_oom_marker(serr)) ||
                         (r.maxrss_kb > 0 && r.maxrss_kb * 1024 >= mem * 8 / 10)));
            if (r.timed_out) {
                snprintf(errbuf, sizeof errbuf, "wall-time limit exceeded (%.1f s): killed",
                         (double)wall_ms / 1000);
                error = errbuf;
            } else if (cpu_exceeded) {
                snprintf(errbuf, sizeof errbuf, "CPU-time limit exceeded (%lld s): killed",
                         (long long)cpu_s);
                error = errbuf;
            } else if (r.output_truncated) {
                snprintf(errbuf, sizeof errbuf,
                         "output limit exceeded (%lld bytes): output cut and program killed",
                         (long long)lim->max_output_bytes);
                error = errbuf;
            } else if (mem_exceeded) {
                snprintf(errbuf, sizeof errbuf, "memory limit exceeded (%lld MiB)",
                         (long long)lim->memory_mb);
                error = errbuf;
            } else if (r.signal) {
                snprintf(errbuf, sizeof errbuf, "killed by signal %d (%s)", r.signal,
                         strsignal(r.signal));
                error = errbuf;
            } else if (r.exit_code != 0) {
                snprintf(errbuf, sizeof errbuf, "exit code %d", r.exit_code);
                error = errbuf;
            } else if (got && expected) {
                int line = first_diff_line(got, expected);
                if (line == 0) {
                    ok = true;
                } else {
                    snprintf(errbuf, sizeof errbuf, "wrong answer (first difference at line %d)",
                             line);
                    error = errbuf;
                    json_object_set_new(jt, "first_difference",
                                        json_pack("{s:i,s:o,s:o}", "line", line, "output",
                                                  line_at(got, line), "expected",
                                                  line_at(expected, line)));
                }
            } else {
                error = "out of memory in the worker";
            }
            json_object_set_new(jt, "passed", json_boolean(ok));
            json_object_set_new(jt, "time_ms", json_integer(r.time_ms));
            json_object_set_new(jt, "cpu_ms", json_integer(r.cpu_ms));
            json_object_set_new(jt, "exit_code", r.exit_code >= 0 ? json_integer(r.exit_code) : json_null());
            json_object_set_new(jt, "signal", r.signal ? json_integer(r.signal) : json_null());
            json_object_set_new(jt, "timed_out", json_boolean(r.timed_out));
            json_object_set_new(jt, "cpu_exceeded", json_boolean(cpu_exceeded));
            json_object_set_new(jt, "memory_exceeded", json_boolean(mem_exceeded));
            json_object_set_new(jt, "output_truncated", json_boolean(r.output_truncated));
            json_object_set_new(jt, "output_bytes", json_integer(r.output_bytes));
            json_object_set_new(jt, "output", got ? excerpt(got, EXCERPT_MAX) : json_string(""));
            json_object_set_new(jt, "expected", expected ? excerpt(expected, EXCERPT_MAX) : json_string(""));
            json_object_set_new(jt, "stderr", serr ? excerpt(serr, EXCERPT_MAX) : json_string(""));
            free(got);
            free(serr);
            sbx_result_free(&r);
        }
        json_object_set_new(jt, "error", error ? json_string(error) : json_null());
        free(expected);
        if (ok) passed++;
        else if (compiled && slen < SUMMARY_MAX - 1) {
            int w = snprintf(summary + slen, SUMMARY_MAX - slen, "%s%s: %s",
                             slen ? "; " : "", name, error ? error : "failed");
            if (w > 0) slen += (size_t)w;
            if (slen >= SUMMARY_MAX) slen = SUMMARY_MAX - 1;
        }
        json_array_append_new(tests_out, jt);
    }
    remove_flat(workdir);

    json_object_set_new(res, "tests", tests_out);
    json_object_set_new(res, "passed", json_integer(passed));
    json_object_set_new(res, "total", json_integer(total));
    char sum[SUMMARY_MAX + 200];
    if (!compiled)
        snprintf(sum, sizeof sum, "compile error: 0/%d tests passed", total);
    else if (passed == total)
        snprintf(sum, sizeof sum, "%d/%d tests passed", passed, total);
    else
        snprintf(sum, sizeof sum, "%d/%d tests passed; failed: %s", passed, total, summary);
    json_object_set_new(res, "summary", json_string(sum));
    json_t *jl = json_object();
    json_object_set_new(jl, "cpu_seconds", json_integer(lim->cpu_seconds));
    json_object_set_new(jl, "wall_seconds", json_integer(lim->wall_seconds));
    json_object_set_new(jl, "memory_mb", json_integer(lim->memory_mb));
    json_object_set_new(jl, "max_processes", json_integer(lim->max_processes));
    json_object_set_new(jl, "max_output_bytes", json_integer(lim->max_output_bytes));
    json_object_set_new(jl, "cgroup", json_boolean(ctx.use_cgroup));
    json_object_set_new(jl, "enforcement", enforcement(&ctx, L, root));
    json_object_set_new(res, "limits", jl);
    *out = res;
    return SM_OK;
}

bool sm_sandbox_available(const sm_sandbox_limits *lim, sm_err *err) {
    const char *bwrap = lim && lim->bwrap && lim->bwrap[0] ? lim->bwrap : "/usr/bin/bwrap";
    if (access(bwrap, X_OK) != 0) {
        sm_err_set(err, SM_EUNSUPPORTED, "sandbox: bubblewrap not found at %s", bwrap);
        return false;
    }
    sm_sandbox_limits l = {.cpu_seconds = 5, .wall_seconds = 10, .memory_mb = 256,
                           .max_processes = 8, .max_output_bytes = 4096, .bwrap = bwrap,
                           .work_base = lim ? lim->work_base : NULL};
    char workdir[4096];
    if (make_workdir(&l, workdir, sizeof workdir, err) != SM_OK) return false;
    run_ctx ctx = {.lim = &l, .workdir = workdir, .bwrap = bwrap};
    static const char *const argv[] = {"/bin/sh", "-c", "echo sandbox-ok", NULL};
    sbx_result r;
    bool cgu, oom;
    sm_code rc = run_one(&ctx, argv, NULL, false, NULL, 0, 5, 10000, 256LL << 20, 0, 8, &r, &cgu,
                         &oom, err);
    remove_flat(workdir);
    if (rc != SM_OK) return false;
    bool ok = r.exit_code == 0 && r.out_len >= 10 && strncmp(r.out, "sandbox-ok", 10) == 0;
    if (!ok) {
        char *e = clean_utf8(r.errout, r.errout_len);
        sm_err_set(err, SM_EUNSUPPORTED, "sandbox: bubblewrap cannot run here: %s",
                   e && e[0] ? e : "no output");
        free(e);
    }
    sbx_result_free(&r);
    return ok;
}
