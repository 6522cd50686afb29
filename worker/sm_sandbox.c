/* sm_sandbox: the code check of a submission. Writes the student's source into a private work
 * dir, compiles it inside the sandbox (work dir writable), runs it once per test (work dir
 * read-only), compares the trimmed output with the expected output and reports everything as
 * JSON, including how each limit was enforced. The process-level work is in sm_sandbox_exec.c. */
#include "sm_sandbox.h"

#include <dirent.h>
#include <ftw.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sm_notebook.h"
#include "sm_sandbox_int.h"
#include "sm_testspec.h"

#define EXCERPT_MAX SBX_EXCERPT_MAX
#define COMPILE_OUTPUT_MAX 2048
#define MAX_SOURCE (4 * 1024 * 1024)
#define SBX_MAX_TEST_ARGS 32
#define SUMMARY_MAX 800

void sm_sandbox_limits_from_config(const sm_config *cfg, sm_sandbox_limits *lim)
{
    memset(lim, 0, sizeof *lim);
    lim->cpu_seconds = cfg->sandbox.cpu_seconds;
    lim->wall_seconds = cfg->sandbox.wall_seconds;
    lim->memory_mb = cfg->sandbox.memory_mb;
    lim->max_processes = cfg->sandbox.max_processes;
    lim->max_output_bytes = cfg->sandbox.max_output_bytes;
    lim->use_cgroups = cfg->sandbox.use_cgroups;
    lim->bwrap = cfg->sandbox.bwrap;
    lim->memory_total_mb = cfg->sandbox.memory_total_mb;
    lim->tmpfs_mb = cfg->sandbox.tmpfs_mb;
}

/* ---- languages ---------------------------------------------------------------------------- */

typedef sbx_lang lang;

static const char *const c_compile[] = {"/usr/bin/gcc", "-O2",          "-std=c17", "-pipe", "-o",
                                        "/work/main",   "/work/main.c", "-lm",      NULL};
static const char *const c_run[] = {"/work/main", NULL};
static const char *const cpp_compile[] = {"/usr/bin/g++", "-O2",        "-std=c++17",     "-pipe",
                                          "-o",           "/work/main", "/work/main.cpp", NULL};
static const char *const py_compile[] = {
    "/usr/bin/python3",
    "-I",
    "-B",
    "-c",
    "import sys\nsrc = open(sys.argv[1], 'rb').read()\ncompile(src, 'main.py', 'exec')",
    "/work/main.py",
    NULL};
static const char *const py_run[] = {"/usr/bin/python3", "-I", "-B", "/work/main.py", NULL};
static const char *const java_compile[] = {"/usr/bin/javac",
                                           "-J-Xmx512m",
                                           "-J-Xss1m",
                                           "-J-XX:+UseSerialGC",
                                           "-J-XX:TieredStopAtLevel=1",
                                           "-J-XX:ReservedCodeCacheSize=64m",
                                           "-J-XX:CompressedClassSpaceSize=64m",
                                           "-J-XX:ActiveProcessorCount=1",
                                           "-encoding",
                                           "UTF-8",
                                           "-d",
                                           "/work",
                                           "/work/Main.java",
                                           NULL};
/* the run argv of Java is built per run (-Xmx follows the memory limit) */

static const lang langs[] = {
    {"c", "main.c", "/usr/bin/gcc", c_compile, c_run, false},
    {"cpp", "main.cpp", "/usr/bin/g++", cpp_compile, c_run, false},
    {"python", "main.py", "/usr/bin/python3", py_compile, py_run, false},
    {"java", "Main.java", "/usr/bin/javac", java_compile, NULL, true},
};

static const lang *find_lang(const char *name)
{
    for (size_t i = 0; i < sizeof langs / sizeof langs[0]; i++)
        if (strcmp(langs[i].name, name) == 0)
            return &langs[i];
    if (strcmp(name, "c++") == 0)
        return &langs[1];
    if (strcmp(name, "python3") == 0)
        return &langs[2];
    return NULL;
}

/* ---- text helpers ----------------------------------------------------------------------- */

/* Copies s[0..n) into a new NUL-terminated string with invalid UTF-8 and NULs replaced by '?'
 * and most control characters dropped, so the result is safe for JSON and prompts. */
char *sbx_clean_utf8(const char *s, size_t n)
{
    char *o = malloc(n + 1);
    if (!o)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            if (c == 0)
                o[j++] = '?';
            else if (c >= 0x20 || c == '\n' || c == '\t')
                o[j++] = (char)c;
            i++;
            continue;
        }
        int len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        bool ok = len > 0 && i + (size_t)len <= n && !(c == 0xC0 || c == 0xC1 || c > 0xF4);
        for (int k = 1; ok && k < len; k++)
            ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
        if (ok && len == 3) {
            unsigned cp = ((c & 0x0Fu) << 12) | (((unsigned char)s[i + 1] & 0x3Fu) << 6);
            if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))
                ok = false;
        }
        if (ok && len == 4) {
            unsigned cp = ((c & 0x07u) << 18) | (((unsigned char)s[i + 1] & 0x3Fu) << 12);
            if (cp < 0x10000 || cp > 0x10FFFF)
                ok = false;
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
size_t sbx_normalize(char *s, size_t n)
{
    size_t j = 0, line_start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '\n') {
            size_t e = j;
            while (e > line_start && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' ||
                                      s[e - 1] == '\v' || s[e - 1] == '\f'))
                e--;
            j = e;
            if (i < n)
                s[j++] = '\n';
            line_start = j;
        } else {
            s[j++] = s[i];
        }
    }
    while (j > 0 && (s[j - 1] == '\n'))
        j--;
    s[j] = '\0';
    return j;
}

/* A JSON string of at most max bytes of s (cut at a UTF-8 boundary, marked when cut). */
json_t *sbx_excerpt(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return json_string(s);
    size_t cut = max;
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
        cut--;
    char *buf = malloc(cut + 32);
    if (!buf)
        return json_null();
    memcpy(buf, s, cut);
    snprintf(buf + cut, 32, "\n[... %zu more bytes]", n - cut);
    json_t *j = json_string(buf);
    free(buf);
    return j;
}

/* 1-based number of the first line where a and b differ (both normalized), 0 when equal. */
static int first_diff_line(const char *a, const char *b)
{
    int line = 1;
    for (size_t i = 0;; i++) {
        if (a[i] != b[i]) {
            /* one text just has more lines: the difference is the next line */
            bool extra = (a[i] == '\n' && b[i] == '\0') || (a[i] == '\0' && b[i] == '\n');
            return extra ? line + 1 : line;
        }
        if (a[i] == '\0')
            return 0;
        if (a[i] == '\n')
            line++;
    }
}

/* Line number line (1-based) of s as a JSON string of at most 200 bytes, or null past the end. */
static json_t *line_at(const char *s, int line)
{
    for (int l = 1; l < line && s; l++) {
        s = strchr(s, '\n');
        if (s)
            s++;
    }
    if (!s)
        return json_null();
    size_t n = strcspn(s, "\n");
    if (n > 200) {
        n = 200;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    return json_stringn(s, n);
}

static bool has_oom_marker(const char *s)
{
    static const char *const m[] = {"MemoryError",    "OutOfMemoryError",
                                    "std::bad_alloc", "Cannot allocate memory",
                                    "out of memory",  NULL};
    for (int i = 0; m[i]; i++)
        if (strstr(s, m[i]))
            return true;
    return false;
}

/* ---- work dir ----------------------------------------------------------------------------- */

/* nftw callbacks: make every directory listable and writable (a program may have made one
 * mode 0), then remove everything bottom-up. Errors are skipped: remove what can be. */
static int open_up(const char *path, const struct stat *st, int type, struct FTW *f)
{
    (void)f;
    if (type == FTW_D && (st->st_mode & 0700) != 0700)
        fchmodat(AT_FDCWD, path, 0700, AT_SYMLINK_NOFOLLOW);
    return 0;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
    (void)st;
    (void)type;
    (void)f;
    remove(path);
    return 0;
}

/* Removes dir and everything below it (compilers make folders: javac's packages), never
 * following symlinks or crossing into other mounts. */
static void remove_tree(const char *dir)
{
    nftw(dir, open_up, 16, FTW_PHYS | FTW_MOUNT);
    nftw(dir, remove_one, 16, FTW_PHYS | FTW_MOUNT | FTW_DEPTH);
}

static sm_code make_workdir(const sm_sandbox_limits *lim, char *dir, size_t len, sm_err *err)
{
    const char *base = lim->work_base && lim->work_base[0] ? lim->work_base : getenv("TMPDIR");
    if (!base || !base[0])
        base = "/tmp";
    snprintf(dir, len, "%s/stepmark-sbx-XXXXXX", base);
    if (!mkdtemp(dir))
        return sm_err_set(err, SM_EIO, "sandbox: mkdtemp in %s: %s", base, strerror(errno));
    return SM_OK;
}

sm_code sbx_write_file(const char *dir, const char *name, const char *src, sm_err *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return sm_err_set(err, SM_EIO, "sandbox: create %s: %s", path, strerror(errno));
    size_t n = strlen(src), off = 0;
    while (off < n) {
        ssize_t w = write(fd, src + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
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

/* Without a cgroup, RLIMIT_AS × processes must stay within the run's total: when the total
 * holds a single address space, new processes are refused (seccomp: ENOMEM) and the task limit
 * counts threads only; else the task limit becomes min(nproc, total / RLIMIT_AS). */
static void run_memory_mode(const run_req *q, bool cgroup_memory, sbx_spec *spec)
{
    spec->nproc = q->nproc;
    spec->single_process = false;
    if (q->compile || cgroup_memory || q->as_bytes <= 0)
        return;
    int64_t procs = q->mem_bytes / q->as_bytes;
    if (procs < 2 || q->one_process)
        spec->single_process = true;
    else if (procs < spec->nproc)
        spec->nproc = procs;
}

/* Runs q, in a fresh cgroup when possible. */
sm_code sbx_run_one(run_ctx *ctx, const run_req *q, run_out *o, sm_err *err)
{
    sbx_cgroup cg;
    bool have_cg = false;
    memset(o, 0, sizeof *o);
    if (ctx->use_cgroup) {
        have_cg = sbx_cgroup_create(&cg, q->mem_bytes, q->nproc + SBX_BWRAP_TASKS, ctx->cgroup_why,
                                    sizeof ctx->cgroup_why);
        if (!have_cg)
            ctx->use_cgroup = false;
    }
    sbx_spec spec = {
        .bwrap = ctx->bwrap,
        .workdir = ctx->workdir,
        .work_writable = q->compile,
        .argv = q->argv,
        .env = q->env,
        .stdin_data = q->input,
        .stdin_len = q->input_len,
        .cpu_seconds = q->cpu_s,
        .wall_ms = q->wall_ms,
        .as_bytes = q->as_bytes,
        .fsize_bytes = 64LL << 20,
        .output_cap = ctx->lim->max_output_bytes > 0 ? ctx->lim->max_output_bytes : 65536,
        .tmp_bytes = ctx->tmpfs_bytes,
        .shm_bytes = ctx->tmpfs_bytes,
        .cgroup = have_cg ? &cg : NULL,
    };
    run_memory_mode(q, have_cg && cg.has_memory, &spec);
    o->single_process = spec.single_process;
    o->nproc_by_total = spec.nproc < q->nproc;
    sm_code rc = sbx_run(&spec, &o->r, err);
    if (have_cg) {
        o->cgroup_used = true;
        o->oom_killed = sbx_cgroup_oom_kills(&cg) > 0;
        sbx_cgroup_destroy(&cg);
    }
    return rc;
}

/* ---- the check -------------------------------------------------------------------------- */

static json_t *enforcement_memory(const run_ctx *ctx, const lang *L)
{
    char buf[600];
    long long total = (long long)(ctx->total_bytes >> 20), per = (long long)ctx->lim->memory_mb;
    if (ctx->use_cgroup)
        snprintf(buf, sizeof buf,
                 "cgroup v2 memory.max %lld MiB for the run (swap 0) and "
                 "RLIMIT_AS %lld MiB per process%s",
                 total, per, L->jvm ? " (JVM: plus 1 GiB address space, -Xmx)" : "");
    else
        snprintf(buf, sizeof buf,
                 "RLIMIT_AS %lld MiB per process%s, RLIMIT_AS x processes kept within %lld MiB "
                 "per run (%s); tmpfs %lld MiB each (cgroup v2 not used: %s)",
                 per, L->jvm ? " plus 1 GiB for the JVM, and -Xmx" : "", total,
                 L->jvm || ctx->total_bytes / (per << 20) < 2
                     ? "one process: new processes and memfds get ENOMEM (seccomp)"
                     : "the task limit is total / RLIMIT_AS",
                 (long long)(ctx->tmpfs_bytes >> 20),
                 ctx->lim->use_cgroups ? ctx->cgroup_why : "disabled in the config");
    return json_string(buf);
}

static json_t *enforcement(const run_ctx *ctx, const lang *L, bool root)
{
    json_t *e = json_object();
    char buf[300];
    json_object_set_new(e, "cpu",
                        json_string("RLIMIT_CPU (the kernel SIGKILLs the program at the limit)"));
    snprintf(buf, sizeof buf,
             "SIGKILL at the deadline: bwrap (--die-with-parent) and its pid namespace, its "
             "process group%s%s",
             ctx->use_cgroup ? ", cgroup.kill" : "",
             root ? ", every process of the run's uid" : "");
    json_object_set_new(e, "wall", json_string(buf));
    json_object_set_new(e, "memory", enforcement_memory(ctx, L));
    snprintf(buf, sizeof buf, "%sRLIMIT_NPROC %s", ctx->use_cgroup ? "cgroup v2 pids.max and " : "",
             root ? "on a uid of the run's own (the worker is root, which RLIMIT_NPROC exempts)"
                  : "counted with the worker's own uid (raised by its current task count)");
    json_object_set_new(e, "processes", json_string(buf));
    json_object_set_new(e, "output",
                        json_string("stdout+stderr read through pipes with a byte "
                                    "cap; past it the rest is discarded and the run "
                                    "is killed"));
    json_object_set_new(e, "network", json_string("bwrap: new empty network namespace"));
    snprintf(buf, sizeof buf,
             "bwrap: read-only /, /usr, /dev and a few /etc files, private %lld MiB tmpfs at /tmp "
             "and at /dev/shm, work dir at /work (writable while compiling, read-only for tests), "
             "RLIMIT_FSIZE 64 MiB",
             (long long)(ctx->tmpfs_bytes >> 20));
    json_object_set_new(e, "filesystem", json_string(buf));
    json_object_set_new(e, "syscalls",
                        json_string("seccomp (libseccomp, bwrap --seccomp): io_uring, keys, bpf, "
                                    "userfaultfd, perf, ptrace, mounts, namespaces, modules, "
                                    "SysV IPC and more get EPERM; clone3 ENOSYS"));
    return e;
}

/* The compiler's messages (stderr, then stdout), cleaned, without the sandbox path. */
static char *compile_message(const sbx_result *r)
{
    size_t n = r->errout_len + r->out_len + 2;
    char *msg = malloc(n);
    if (!msg)
        return NULL;
    memcpy(msg, r->errout, r->errout_len);
    msg[r->errout_len] = '\n';
    memcpy(msg + r->errout_len + 1, r->out, r->out_len);
    char *c = sbx_clean_utf8(msg, r->errout_len + 1 + r->out_len);
    free(msg);
    if (!c)
        return NULL;
    sbx_normalize(c, strlen(c));
    for (char *p; (p = strstr(c, "/work/")) != NULL;)
        memmove(p, p + 6, strlen(p + 6) + 1);
    return c;
}

const char *const sbx_java_env[] = {"MALLOC_ARENA_MAX=2", NULL};

sm_code sbx_compile(run_ctx *ctx, const char *const *argv, bool jvm, bool *ok, char **msg,
                    int64_t *time_ms, sm_err *err)
{
    const sm_sandbox_limits *lim = ctx->lim;
    int64_t mem = lim->memory_mb << 20;
    int64_t cs = lim->compile_seconds > 0 ? lim->compile_seconds : 30;
    int64_t cmem = mem > (2048LL << 20) ? mem : (2048LL << 20);
    run_req q = {.argv = argv,
                 .env = jvm ? sbx_java_env : NULL,
                 .compile = true,
                 .cpu_s = cs,
                 .wall_ms = cs * 1000,
                 .as_bytes = jvm ? cmem + (1024LL << 20) : cmem,
                 .mem_bytes = cmem,
                 .nproc = lim->max_processes > 64 ? lim->max_processes : 64};
    run_out o;
    sm_code rc = sbx_run_one(ctx, &q, &o, err);
    if (rc != SM_OK)
        return rc;
    const sbx_result *r = &o.r;
    *ok = r->exit_code == 0 && r->signal == 0 && !r->timed_out;
    *msg = compile_message(r);
    if (r->timed_out || r->signal) {
        char *m = NULL;
        if (asprintf(&m, "%s%s",
                     r->timed_out ? "compiler timed out\n" : "compiler killed by a signal\n",
                     *msg ? *msg : "") < 0)
            m = NULL;
        free(*msg);
        *msg = m;
    }
    if (time_ms)
        *time_ms = r->time_ms;
    sbx_result_free(&o.r);
    return SM_OK;
}

/* Compiles when the language needs it; fills comp and *compiled. */
static sm_code compile_step(run_ctx *ctx, const lang *L, json_t *comp, bool *compiled, sm_err *err)
{
    *compiled = true;
    char *msg = NULL;
    int64_t ms = 0;
    if (L->compile) {
        sm_code rc = sbx_compile(ctx, L->compile, L->jvm, compiled, &msg, &ms, err);
        if (rc != SM_OK)
            return rc;
    }
    json_object_set_new(comp, "ok", json_boolean(*compiled));
    json_object_set_new(comp, "time_ms", json_integer(ms));
    json_object_set_new(comp, "output",
                        msg ? sbx_excerpt(msg, COMPILE_OUTPUT_MAX) : json_string(""));
    free(msg);
    return SM_OK;
}

/* One test's inputs and limits. */
typedef struct test_case {
    const char *name;
    char namebuf[32];
    const char *input;
    size_t input_len;
    char *expected; /* cleaned and normalized (owned) */
    sbx_test_limits tl;
    const char *argv[SBX_MAX_TEST_ARGS + 24];
    char xmx[32];
} test_case;

int sbx_java_argv(const char **argv, char *xmx, int64_t mem_bytes)
{
    int64_t heap = (mem_bytes >> 20) * 3 / 4;
    if (heap < 32)
        heap = 32;
    snprintf(xmx, 32, "-Xmx%lldm", (long long)heap);
    const char *jv[] = {"/usr/bin/java",
                        xmx,
                        "-Xss8m",
                        "-XX:+UseSerialGC",
                        "-XX:TieredStopAtLevel=1",
                        "-XX:ReservedCodeCacheSize=32m",
                        "-XX:CompressedClassSpaceSize=64m",
                        "-XX:MaxMetaspaceSize=128m",
                        "-XX:ActiveProcessorCount=1",
                        "-Xshare:auto",
                        NULL};
    int na = 0;
    for (int k = 0; jv[k]; k++)
        argv[na++] = jv[k];
    return na;
}

/* The language's run command, then the test's args. */
static void test_argv(test_case *tc, const lang *L, const json_t *t)
{
    int na = 0;
    if (L->jvm) {
        na = sbx_java_argv(tc->argv, tc->xmx, tc->tl.mem_bytes);
        tc->argv[na++] = "-cp";
        tc->argv[na++] = "/work";
        tc->argv[na++] = "Main";
    } else {
        for (int k = 0; L->run[k]; k++)
            tc->argv[na++] = L->run[k];
    }
    size_t k;
    const json_t *s;
    json_array_foreach(json_object_get(t, "args"), k, s) tc->argv[na++] = json_string_value(s);
    tc->argv[na] = NULL;
}

void sbx_test_limits_of(const run_ctx *ctx, const json_t *t, sbx_test_limits *tl)
{
    const sm_sandbox_limits *lim = ctx->lim;
    tl->cpu_s = lim->cpu_seconds;
    tl->wall_ms = lim->wall_seconds * 1000;
    json_t *to = json_object_get(t, "timeout_seconds"), *tms = json_object_get(t, "time_ms");
    double sec = json_is_integer(tms) ? (double)json_integer_value(tms) / 1000
                 : json_is_number(to) ? json_number_value(to)
                                      : -1;
    if (sec > 0) {
        double cap = (double)lim->wall_seconds * 10;
        if (sec > cap)
            sec = cap;
        if (sec < 0.1)
            sec = 0.1;
        tl->cpu_s = (int64_t)(sec + 0.999);
        tl->wall_ms = (int64_t)(sec * 1000) + 1000;
    }
    /* memory_mb may lower the memory of a test, never raise it past the worker's limit; the
     * run's total shrinks in proportion */
    tl->mem_bytes = lim->memory_mb << 20;
    tl->total_bytes = ctx->total_bytes;
    json_t *mm = json_object_get(t, "memory_mb");
    if (json_is_integer(mm) && json_integer_value(mm) < lim->memory_mb) {
        int64_t m = json_integer_value(mm);
        tl->mem_bytes = m << 20;
        tl->total_bytes = ctx->total_bytes / lim->memory_mb * m;
        if (tl->total_bytes < tl->mem_bytes)
            tl->total_bytes = tl->mem_bytes;
    }
}

static void test_case_init(test_case *tc, const lang *L, const run_ctx *ctx, const json_t *t,
                           size_t i)
{
    memset(tc, 0, sizeof *tc);
    tc->name = json_string_value(json_object_get(t, "name"));
    if (!tc->name) {
        snprintf(tc->namebuf, sizeof tc->namebuf, "test %zu", i + 1);
        tc->name = tc->namebuf;
    }
    const json_t *jin = json_object_get(t, "input");
    tc->input = json_is_string(jin) ? json_string_value(jin) : "";
    tc->input_len = json_is_string(jin) ? json_string_length(jin) : 0;
    const char *raw = json_string_value(json_object_get(t, "expected_output"));
    if (!raw)
        raw = "";
    tc->expected = sbx_clean_utf8(raw, strlen(raw));
    if (tc->expected)
        sbx_normalize(tc->expected, strlen(tc->expected));
    sbx_test_limits_of(ctx, t, &tc->tl);
    test_argv(tc, L, t);
}

typedef sbx_verdict verdict;

void sbx_classify(sbx_verdict *v, const run_out *o, const sbx_test_limits *tl, const char *serr,
                  const run_ctx *ctx)
{
    const sbx_result *r = &o->r;
    v->cpu_exceeded =
        r->signal == SIGXCPU || (r->signal == SIGKILL && !r->timed_out && !r->output_truncated &&
                                 !o->oom_killed && r->cpu_ms >= tl->cpu_s * 500);
    bool failed = r->exit_code != 0 || r->signal != 0;
    int64_t mem = tl->mem_bytes;
    /* a process refused because the task limit keeps the memory total (EAGAIN) */
    bool total_refused =
        o->nproc_by_total && serr &&
        (strstr(serr, "Resource temporarily unavailable") || strstr(serr, "BlockingIOError"));
    v->mem_exceeded =
        o->oom_killed || (failed && !r->timed_out && !v->cpu_exceeded && !r->output_truncated &&
                          ((serr && has_oom_marker(serr)) || total_refused ||
                           (r->maxrss_kb > 0 && r->maxrss_kb * 1024 >= mem * 8 / 10)));
    if (r->timed_out)
        snprintf(v->errbuf, sizeof v->errbuf, "wall-time limit exceeded (%.1f s): killed",
                 (double)tl->wall_ms / 1000);
    else if (v->cpu_exceeded)
        snprintf(v->errbuf, sizeof v->errbuf, "CPU-time limit exceeded (%lld s): killed",
                 (long long)tl->cpu_s);
    else if (r->output_truncated)
        snprintf(v->errbuf, sizeof v->errbuf,
                 "output limit exceeded (%lld bytes): output cut and program killed",
                 (long long)ctx->lim->max_output_bytes);
    else if (v->mem_exceeded)
        snprintf(v->errbuf, sizeof v->errbuf,
                 "memory limit exceeded (%lld MiB per process, %lld MiB per run%s)",
                 (long long)(mem >> 20), (long long)(tl->total_bytes >> 20),
                 o->single_process ? ": one process, no new processes" : "");
    else if (r->signal)
        snprintf(v->errbuf, sizeof v->errbuf, "killed by signal %d (%s)", r->signal,
                 strsignal(r->signal));
    else if (r->exit_code != 0)
        snprintf(v->errbuf, sizeof v->errbuf, "exit code %d", r->exit_code);
    if (v->errbuf[0])
        v->error = v->errbuf;
}

/* Classifies the run and compares its output; may add first_difference to jt. */
static void judge(verdict *v, const run_out *o, const test_case *tc, const char *got,
                  const char *serr, const run_ctx *ctx, json_t *jt)
{
    memset(v, 0, sizeof *v);
    sbx_classify(v, o, &tc->tl, serr, ctx);
    if (v->error)
        return;
    if (!got || !tc->expected) {
        v->error = "out of memory in the worker";
        return;
    }
    int line = first_diff_line(got, tc->expected);
    if (line == 0) {
        v->ok = true;
        return;
    }
    snprintf(v->errbuf, sizeof v->errbuf, "wrong answer (first difference at line %d)", line);
    v->error = v->errbuf;
    json_object_set_new(jt, "first_difference",
                        json_pack("{s:i,s:o,s:o}", "line", line, "output", line_at(got, line),
                                  "expected", line_at(tc->expected, line)));
}

static void test_json_not_compiled(json_t *jt, const test_case *tc)
{
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
    json_object_set_new(jt, "expected",
                        tc->expected ? sbx_excerpt(tc->expected, EXCERPT_MAX) : json_string(""));
    json_object_set_new(jt, "stderr", json_string(""));
}

static void test_json_run(json_t *jt, const run_out *o, const verdict *v, const test_case *tc,
                          const char *got, const char *serr)
{
    const sbx_result *r = &o->r;
    json_object_set_new(jt, "passed", json_boolean(v->ok));
    json_object_set_new(jt, "time_ms", json_integer(r->time_ms));
    json_object_set_new(jt, "cpu_ms", json_integer(r->cpu_ms));
    json_object_set_new(jt, "exit_code",
                        r->exit_code >= 0 ? json_integer(r->exit_code) : json_null());
    json_object_set_new(jt, "signal", r->signal ? json_integer(r->signal) : json_null());
    json_object_set_new(jt, "timed_out", json_boolean(r->timed_out));
    json_object_set_new(jt, "cpu_exceeded", json_boolean(v->cpu_exceeded));
    json_object_set_new(jt, "memory_exceeded", json_boolean(v->mem_exceeded));
    json_object_set_new(jt, "output_truncated", json_boolean(r->output_truncated));
    json_object_set_new(jt, "output_bytes", json_integer(r->output_bytes));
    json_object_set_new(jt, "output", got ? sbx_excerpt(got, EXCERPT_MAX) : json_string(""));
    json_object_set_new(jt, "expected",
                        tc->expected ? sbx_excerpt(tc->expected, EXCERPT_MAX) : json_string(""));
    json_object_set_new(jt, "stderr", serr ? sbx_excerpt(serr, EXCERPT_MAX) : json_string(""));
}

/* Runs one (compiled) test case and fills jt; *ok and *error (a copy in errbuf) for the
 * summary. */
static sm_code run_test(run_ctx *ctx, const lang *L, const test_case *tc, json_t *jt, bool *ok,
                        char *errbuf, size_t errlen, sm_err *err)
{
    int64_t mem = tc->tl.mem_bytes;
    run_req q = {.argv = tc->argv,
                 .env = L->jvm ? sbx_java_env : NULL,
                 .input = tc->input,
                 .input_len = tc->input_len,
                 .cpu_s = tc->tl.cpu_s,
                 .wall_ms = tc->tl.wall_ms,
                 .as_bytes = L->jvm ? mem + (1024LL << 20) : mem,
                 .mem_bytes = tc->tl.total_bytes,
                 .nproc = ctx->lim->max_processes,
                 .one_process = L->jvm};
    run_out o;
    sm_code rc = sbx_run_one(ctx, &q, &o, err);
    if (rc != SM_OK)
        return rc;
    char *got = sbx_clean_utf8(o.r.out, o.r.out_len);
    char *serr = sbx_clean_utf8(o.r.errout, o.r.errout_len);
    if (got)
        sbx_normalize(got, strlen(got));
    if (serr)
        sbx_normalize(serr, strlen(serr));
    verdict v;
    judge(&v, &o, tc, got, serr, ctx, jt);
    test_json_run(jt, &o, &v, tc, got, serr);
    json_object_set_new(jt, "error", v.error ? json_string(v.error) : json_null());
    *ok = v.ok;
    snprintf(errbuf, errlen, "%s", v.error ? v.error : "");
    free(got);
    free(serr);
    sbx_result_free(&o.r);
    return SM_OK;
}

/* The failed tests, "name: reason; ...", bounded. */
typedef struct summary {
    char text[SUMMARY_MAX];
    size_t len;
} summary;

static void summary_add(summary *s, const char *name, const char *error)
{
    if (s->len >= SUMMARY_MAX - 1)
        return;
    int w = snprintf(s->text + s->len, SUMMARY_MAX - s->len, "%s%s: %s", s->len ? "; " : "", name,
                     error && error[0] ? error : "failed");
    if (w > 0)
        s->len += (size_t)w;
    if (s->len >= SUMMARY_MAX)
        s->len = SUMMARY_MAX - 1;
}

/* Whether the check's compile steps worked: the program's (io tests) and the unit tests'. */
typedef struct compiled_state {
    bool io, unit;
} compiled_state;

/* One stdin/stdout test: not run after a compile error, else one sandbox run. */
static sm_code run_io_test(run_ctx *ctx, const lang *L, const json_t *t, size_t i, bool compiled,
                           json_t *tests_out, sbx_unit_tally *tally, summary *sum, sm_err *err)
{
    test_case tc;
    test_case_init(&tc, L, ctx, t, i);
    json_t *jt = json_object();
    json_object_set_new(jt, "name", json_string(tc.name));
    json_object_set_new(jt, "kind", json_string("io"));
    bool ok = false;
    char error[200] = "compile error";
    if (!compiled) {
        test_json_not_compiled(jt, &tc);
        json_object_set_new(jt, "error", json_string(error));
    } else {
        sm_code rc = run_test(ctx, L, &tc, jt, &ok, error, sizeof error, err);
        if (rc != SM_OK) {
            free(tc.expected);
            json_decref(jt);
            return rc;
        }
    }
    if (!ok)
        summary_add(sum, tc.name, error);
    double pts = sm_test_points(t);
    json_object_set_new(jt, "points", json_real(pts));
    json_object_set_new(jt, "points_earned", json_real(ok ? pts : 0));
    tally->total++;
    tally->passed += ok;
    tally->points += pts;
    tally->points_earned += ok ? pts : 0;
    free(tc.expected);
    json_array_append_new(tests_out, jt);
    return SM_OK;
}

/* Every test in order: io tests here, the others in sm_unittest.c. */
static sm_code run_all_tests(run_ctx *ctx, const lang *L, const char *source,
                             const json_t *tests_json, compiled_state cs, json_t *tests_out,
                             sbx_unit_tally *tally, summary *sum, sm_err *err)
{
    size_t i;
    const json_t *t;
    json_array_foreach(tests_json, i, t)
    {
        sm_code rc;
        if (sm_test_kind_of(t) == SM_TEST_IO) {
            rc = run_io_test(ctx, L, t, i, cs.io, tests_out, tally, sum, err);
        } else {
            size_t first = json_array_size(tests_out);
            rc = sbx_unit_run(ctx, L, source, t, i, cs.unit, tests_out, tally, err);
            for (size_t k = first; rc == SM_OK && k < json_array_size(tests_out); k++) {
                const json_t *r = json_array_get(tests_out, k);
                if (!json_is_true(json_object_get(r, "passed")))
                    summary_add(sum, json_string_value(json_object_get(r, "name")),
                                json_string_value(json_object_get(r, "error")));
            }
        }
        if (rc != SM_OK)
            return rc;
    }
    return SM_OK;
}

static json_t *limits_json(const run_ctx *ctx, const lang *L)
{
    const sm_sandbox_limits *lim = ctx->lim;
    json_t *jl = json_object();
    json_object_set_new(jl, "cpu_seconds", json_integer(lim->cpu_seconds));
    json_object_set_new(jl, "wall_seconds", json_integer(lim->wall_seconds));
    json_object_set_new(jl, "memory_mb", json_integer(lim->memory_mb));
    json_object_set_new(jl, "memory_total_mb", json_integer(ctx->total_bytes >> 20));
    json_object_set_new(jl, "tmpfs_mb", json_integer(ctx->tmpfs_bytes >> 20));
    json_object_set_new(jl, "max_processes", json_integer(lim->max_processes));
    json_object_set_new(jl, "max_output_bytes", json_integer(lim->max_output_bytes));
    json_object_set_new(jl, "cgroup", json_boolean(ctx->use_cgroup));
    json_object_set_new(jl, "enforcement", enforcement(ctx, L, geteuid() == 0));
    return jl;
}

static json_t *summary_json(bool compiled, const sbx_unit_tally *t, const summary *s)
{
    char sum[SUMMARY_MAX + 300], pts[96] = "";
    if (t->points > 0 && t->points != t->total)
        snprintf(pts, sizeof pts, " (%g/%g points)", t->points_earned, t->points);
    if (!compiled)
        snprintf(sum, sizeof sum, "compile error: %d/%d tests passed%s", t->passed, t->total, pts);
    else if (t->passed == t->total)
        snprintf(sum, sizeof sum, "%d/%d tests passed%s", t->passed, t->total, pts);
    else
        snprintf(sum, sizeof sum, "%d/%d tests passed%s; failed: %s", t->passed, t->total, pts,
                 s->text);
    return json_string(sum);
}

/* Arguments, language, tools: everything checked before a work dir is made. */
static sm_code check_request(const sm_sandbox_limits *lim, const char *language, const char *source,
                             const json_t *tests_json, const lang **L, const char **bwrap,
                             sm_err *err)
{
    if (!lim || !language || !source || !tests_json)
        return sm_err_set(err, SM_EINVAL, "sandbox: NULL argument");
    if (lim->cpu_seconds <= 0 || lim->wall_seconds <= 0 || lim->memory_mb <= 0 ||
        lim->max_processes <= 0 || lim->max_output_bytes <= 0 || lim->memory_total_mb < 0 ||
        lim->tmpfs_mb < 0)
        return sm_err_set(err, SM_EINVAL, "sandbox: limits must be positive");
    *L = find_lang(language);
    if (!*L)
        return sm_err_set(err, SM_EUNSUPPORTED, "sandbox: unsupported language '%s'", language);
    if (strlen(source) > MAX_SOURCE)
        return sm_err_set(err, SM_EINVAL, "sandbox: source larger than %d bytes", MAX_SOURCE);
    sm_code rc = sm_tests_validate(tests_json, (*L)->name, err);
    if (rc != SM_OK)
        return sm_err_prefix(err, "sandbox");
    if (access((*L)->tool, X_OK) != 0)
        return sm_err_set(err, SM_EUNSUPPORTED, "sandbox: %s is not installed (%s)", (*L)->name,
                          (*L)->tool);
    if ((*L)->jvm && access("/usr/bin/java", X_OK) != 0)
        return sm_err_set(err, SM_EUNSUPPORTED, "sandbox: java is not installed (/usr/bin/java)");
    *bwrap = lim->bwrap && lim->bwrap[0] ? lim->bwrap : "/usr/bin/bwrap";
    if (access(*bwrap, X_OK) != 0)
        return sm_err_set(err, SM_EUNSUPPORTED, "sandbox: bubblewrap not found at %s", *bwrap);
    return SM_OK;
}

static void ctx_init(run_ctx *ctx, const sm_sandbox_limits *lim, const char *workdir,
                     const char *bwrap)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->lim = lim;
    ctx->workdir = workdir;
    ctx->bwrap = bwrap;
    ctx->use_cgroup = lim->use_cgroups;
    snprintf(ctx->cgroup_why, sizeof ctx->cgroup_why, "not tried");
    int64_t total = lim->memory_total_mb > 0 ? lim->memory_total_mb : lim->memory_mb;
    if (total < lim->memory_mb)
        total = lim->memory_mb;
    ctx->total_bytes = total << 20;
    ctx->tmpfs_bytes = (lim->tmpfs_mb > 0 ? lim->tmpfs_mb : 64) << 20;
}

/* The compile steps the tests need: the program's for io tests, the unit tests' own. */
static sm_code compile_all(run_ctx *ctx, const lang *L, const char *source,
                           const json_t *tests_json, json_t *comp, compiled_state *cs, sm_err *err)
{
    bool has_io = json_array_size(tests_json) == 0, has_unit = false;
    size_t i;
    const json_t *t;
    json_array_foreach(tests_json, i, t)
    {
        if (sm_test_kind_of(t) == SM_TEST_IO)
            has_io = true;
        else
            has_unit = true;
    }
    cs->io = cs->unit = true;
    if (has_io) {
        sm_code rc = compile_step(ctx, L, comp, &cs->io, err);
        if (rc != SM_OK || !has_unit)
            return rc;
    }
    json_t *uc = json_object();
    sm_code rc = sbx_unit_prepare(ctx, L, source, uc, &cs->unit, err);
    if (rc == SM_OK && !has_io)
        json_object_update(comp, uc);
    else if (rc == SM_OK && !cs->unit) {
        json_object_set_new(comp, "ok", json_false());
        json_object_set(comp, "output", json_object_get(uc, "output"));
    }
    json_decref(uc);
    return rc;
}

/* Compiles and runs every test in workdir; the result object on SM_OK. */
static sm_code check_in(run_ctx *ctx, const lang *L, const char *source, const json_t *tests_json,
                        json_t **out, sm_err *err)
{
    json_t *res = json_object(), *comp = json_object(), *tests_out = json_array();
    json_object_set_new(res, "language", json_string(L->name));
    json_object_set_new(res, "compile", comp);
    json_object_set_new(res, "tests", tests_out);
    compiled_state cs;
    sbx_unit_tally tally = {0, 0, 0, 0};
    summary sum = {.len = 0};
    sum.text[0] = '\0';
    sm_code rc = compile_all(ctx, L, source, tests_json, comp, &cs, err);
    if (rc == SM_OK)
        rc = run_all_tests(ctx, L, source, tests_json, cs, tests_out, &tally, &sum, err);
    if (rc != SM_OK) {
        json_decref(res);
        return rc;
    }
    json_object_set_new(res, "passed", json_integer(tally.passed));
    json_object_set_new(res, "total", json_integer(tally.total));
    json_object_set_new(
        res, "points",
        json_pack("{s:f, s:f}", "earned", tally.points_earned, "total", tally.points));
    json_object_set_new(res, "summary", summary_json(cs.io && cs.unit, &tally, &sum));
    json_object_set_new(res, "limits", limits_json(ctx, L));
    *out = res;
    return SM_OK;
}

/* A Python notebook's code cells as the program (its stored outputs are never read). */
static sm_code notebook_source(const lang *L, const char *source, char **code, sm_err *err)
{
    *code = NULL;
    if (strcmp(L->name, "python") != 0 || !sm_notebook_detect(source))
        return SM_OK;
    return sm_notebook_code(source, code, err);
}

sm_code sm_sandbox_run_tests(const sm_sandbox_limits *lim, const char *language, const char *source,
                             const json_t *tests_json, json_t **out, sm_err *err)
{
    if (!out)
        return sm_err_set(err, SM_EINVAL, "sandbox: NULL argument");
    *out = NULL;
    const lang *L = NULL;
    const char *bwrap = NULL;
    sm_code rc = check_request(lim, language, source, tests_json, &L, &bwrap, err);
    if (rc != SM_OK)
        return rc;
    char *nb_code = NULL;
    rc = notebook_source(L, source, &nb_code, err);
    if (rc != SM_OK)
        return sm_err_prefix(err, "sandbox");
    if (nb_code)
        source = nb_code;
    char workdir[4096];
    rc = make_workdir(lim, workdir, sizeof workdir, err);
    if (rc == SM_OK) {
        rc = sbx_write_file(workdir, L->source_file, source, err);
        if (rc == SM_OK) {
            run_ctx ctx;
            ctx_init(&ctx, lim, workdir, bwrap);
            rc = check_in(&ctx, L, source, tests_json, out, err);
        }
        remove_tree(workdir);
    }
    if (rc == SM_OK && nb_code)
        json_object_set_new(*out, "notebook", json_true());
    free(nb_code);
    return rc;
}

bool sm_sandbox_available(const sm_sandbox_limits *lim, sm_err *err)
{
    const char *bwrap = lim && lim->bwrap && lim->bwrap[0] ? lim->bwrap : "/usr/bin/bwrap";
    if (access(bwrap, X_OK) != 0) {
        sm_err_set(err, SM_EUNSUPPORTED, "sandbox: bubblewrap not found at %s", bwrap);
        return false;
    }
    sm_sandbox_limits l = {.cpu_seconds = 5,
                           .wall_seconds = 10,
                           .memory_mb = 256,
                           .max_processes = 8,
                           .max_output_bytes = 4096,
                           .bwrap = bwrap,
                           .work_base = lim ? lim->work_base : NULL};
    char workdir[4096];
    if (make_workdir(&l, workdir, sizeof workdir, err) != SM_OK)
        return false;
    run_ctx ctx;
    ctx_init(&ctx, &l, workdir, bwrap);
    static const char *const argv[] = {"/bin/sh", "-c", "echo sandbox-ok", NULL};
    run_req q = {.argv = argv,
                 .cpu_s = 5,
                 .wall_ms = 10000,
                 .as_bytes = 256LL << 20,
                 .mem_bytes = 256LL << 20,
                 .nproc = 8};
    run_out o;
    sm_code rc = sbx_run_one(&ctx, &q, &o, err);
    remove_tree(workdir);
    if (rc != SM_OK)
        return false;
    const sbx_result *r = &o.r;
    bool ok = r->exit_code == 0 && r->out_len >= 10 && strncmp(r->out, "sandbox-ok", 10) == 0;
    if (!ok) {
        char *e = sbx_clean_utf8(r->errout, r->errout_len);
        sm_err_set(err, SM_EUNSUPPORTED, "sandbox: bubblewrap cannot run here: %s",
                   e && e[0] ? e : "no output");
        free(e);
    }
    sbx_result_free(&o.r);
    return ok;
}
