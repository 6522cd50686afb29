/* test_sandbox: the code sandbox (sm_sandbox) for real: bubblewrap, the compilers, and the limits.
 * Correct and wrong programs, compile errors, and hostile programs (fork bomb, infinite loop,
 * memory hog, network access, writes outside /tmp, huge output): each one is reported in the
 * result, none crashes the caller, and the host is checked afterwards (it can still fork, no
 * sandbox process is left, nothing was written). Run with no argument for the C/Python group,
 * with "langs" for the C++/Java group (slower compilers). */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "sm_sandbox.h"

#ifndef SM_TOP
#define SM_TOP "/nonexistent"
#endif

static sm_sandbox_limits limits(void)
{
    sm_sandbox_limits l = {
        .cpu_seconds = 2,
        .wall_seconds = 10,
        .memory_mb = 256,
        .max_processes = 16,
        .max_output_bytes = 65536,
        .use_cgroups = true,
        .bwrap = "/usr/bin/bwrap",
    };
    return l;
}

/* Runs source with tests (a JSON text) and returns the result (printed when verbose). */
static json_t *run(const sm_sandbox_limits *lim, const char *lang, const char *src,
                   const char *tests_text)
{
    json_error_t je;
    json_t *tests = json_loads(tests_text, 0, &je);
    if (!tests)
        fprintf(stderr, "bad test JSON: %s\n", je.text);
    assert_non_null(tests);
    json_t *out = NULL;
    sm_err err = {0};
    sm_code rc = sm_sandbox_run_tests(lim, lang, src, tests, &out, &err);
    if (rc != SM_OK)
        fprintf(stderr, "sm_sandbox_run_tests: %s\n", err.msg);
    assert_int_equal(rc, SM_OK);
    assert_non_null(out);
    json_decref(tests);
    if (getenv("SM_TEST_VERBOSE")) {
        char *s = json_dumps(out, JSON_INDENT(1));
        fprintf(stderr, "%s\n", s);
        free(s);
    }
    return out;
}

static json_t *test_at(json_t *res, size_t i)
{
    json_t *t = json_array_get(json_object_get(res, "tests"), i);
    assert_non_null(t);
    return t;
}

static bool flag(json_t *t, const char *key)
{
    return json_is_true(json_object_get(t, key));
}

static const char *str(json_t *t, const char *key)
{
    const char *s = json_string_value(json_object_get(t, key));
    return s ? s : "";
}

static void dump_on_fail(json_t *res, bool ok)
{
    if (!ok) {
        char *s = json_dumps(res, JSON_INDENT(1));
        fprintf(stderr, "%s\n", s);
        free(s);
    }
    assert_true(ok);
}

/* The host can still create processes. */
static void assert_host_can_fork(void)
{
    for (int i = 0; i < 4; i++) {
        pid_t p = fork();
        assert_true(p >= 0);
        if (p == 0)
            _exit(7);
        int st = 0;
        assert_int_equal(waitpid(p, &st, 0), p);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 7);
    }
}

/* Processes whose real uid is in the sandbox range (root only), i.e. leftovers. */
static int sandbox_processes_left(void)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        char state[256] = "";
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "State:", 6) == 0 || strncmp(line, "PPid:", 5) == 0 ||
                strncmp(line, "Name:", 5) == 0) {
                size_t l = strlen(state);
                snprintf(state + l, sizeof state - l, "%.20s", line);
            }
            if (strncmp(line, "Uid:", 4) == 0 &&
                strtoul(line + 4, NULL, 10) == 1500000000u + (unsigned)gettid()) {
                fprintf(stderr, "left: pid %s state %s", e->d_name, state);
                n++;
            }
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

static const char *c_sum =
    "#include <stdio.h>\n"
    "int main(void) { long a, b; if (scanf(\"%ld %ld\", &a, &b) != 2) return 1;\n"
    "  printf(\"%ld   \\n\\n\", a + b); return 0; }\n";

static const char *sum_tests =
    "[{\"name\":\"small\",\"input\":\"1 2\\n\",\"expected_output\":\"3\\n\"},"
    " {\"name\":\"big\",\"input\":\"1000000000 2000000000\",\"expected_output\":\"3000000000\"}]";

static void test_c_correct(void **state)
{
    (void)state;
    sm_sandbox_limits lim = limits();
    json_t *r = run(&lim, "c", c_sum, sum_tests);
    dump_on_fail(r, json_integer_value(json_object_get(r, "passed")) == 2 &&
                        json_integer_value(json_object_get(r, "total")) == 2);
    assert_true(flag(json_object_get(r, "compile"), "ok"));
    assert_string_equal(str(test_at(r, 0), "output"), "3");
    assert_true(json_is_null(json_object_get(test_at(r, 0), "error")));
    assert_string_equal(str(r, "summary"), "2/2 tests passed");
    assert_string_equal(str(r, "language"), "c");
    /* every limit says how it was enforced */
    json_t *enf = json_object_get(json_object_get(r, "limits"), "enforcement");
    static const char *const keys[] = {"cpu",    "wall",    "memory",     "processes",
                                       "output", "network", "filesystem", NULL};
    for (int i = 0; keys[i]; i++)
        assert_true(strlen(str(enf, keys[i])) > 5);
    json_decref(r);
}

static void test_c_wrong_answer(void **state)
{
    (void)state;
    sm_sandbox_limits lim = limits();
    const char *src = "#include <stdio.h>\nint main(void){ puts(\"1\\n2\\n4\"); return 0; }\n";
    json_t *r = run(&lim, "c", src,
                    "[{\"name\":\"lines\",\"input\":\"\",\"expected_output\":\"1\\n2\\n3\\n\"}]");
    json_t *t = test_at(r, 0);
    dump_on_fail(r, !flag(t, "passed") && json_integer_value(json_object_get(r, "passed")) == 0);
    assert_string_equal(str(t, "output"), "1\n2\n4");
    assert_string_equal(str(t, "expected"), "1\n2\n3");
    assert_non_null(strstr(str(t, "error"), "wrong answer"));
    assert_non_null(strstr(str(t, "error"), "line 3"));
    json_t *fd = json_object_get(t, "first_difference");
    assert_int_equal(json_integer_value(json_object_get(fd, "line")), 3);
    assert_string_equal(str(fd, "output"), "4");
    assert_string_equal(str(fd, "expected"), "3");
    assert_non_null(strstr(str(r, "summary"), "0/1 tests passed"));
    json_decref(r);
}

static void test_c_compile_error(void **state)
{
    (void)state;
    sm_sandbox_limits lim = limits();
    json_t *r = run(&lim, "c", "int main(void) { return undefined_name; }\n", sum_tests);
    json_t *c = json_object_get(r, "compile");
    dump_on_fail(r, !flag(c, "ok"));
    assert_non_null(strstr(str(c, "output"), "undefined_name"));
    assert_null(strstr(str(c, "output"), "/work/")); /* sandbox paths are not shown */
    assert_false(flag(test_at(r, 0), "passed"));
    assert_string_equal(str(test_at(r, 1), "error"), "compile error");
    assert_non_null(strstr(str(r, "summary"), "compile error"));
    json_decref(r);
}

static void test_python_args_and_exit_code(void **state)
{
    (void)state;
    sm_sandbox_limits lim = limits();
    const char *src = "import sys\n"
                      "data = sys.stdin.read().split()\n"
                      "print(' '.join(sys.argv[1:]), sum(map(int, data)))\n"
                      "if sys.argv[1:] == ['fail']:\n    sys.exit(3)\n";
    json_t *r = run(&lim, "python", src,
                    "[{\"name\":\"args\",\"input\":\"4 5 6\",\"args\":[\"a\",\"b c\"],"
                    "\"expected_output\":\"a b c 15\"},"
                    " {\"name\":\"exit\",\"input\":\"1\",\"args\":[\"fail\"],"
                    "\"expected_output\":\"fail 1\"}]");
    dump_on_fail(r, flag(test_at(r, 0), "passed") && !flag(test_at(r, 1), "passed"));
    assert_int_equal(json_integer_value(json_object_get(test_at(r, 1), "exit_code")), 3);
    assert_string_equal(str(test_at(r, 1), "error"), "exit code 3");
    json_decref(r);
}

static void test_python_syntax_error(void **state)
{
    (void)state;
    sm_sandbox_limits lim = limits();
    json_t *r = run(&lim, "python", "def f(:\n  pass\n", sum_tests);
    json_t *c = json_object_get(r, "compile");
    dump_on_fail(r, !flag(c, "ok"));
    assert_non_null(strstr(str(c, "output"), "SyntaxError"));
    json_decref(r);
}

static void test_fork_bomb(void **state)
{
    (void)state;
    sm_sandbox_limits lim = limits();
    lim.wall_seconds = 3;
    /* a total that allows every task its own address space: forks are allowed and only the
     * process limit stops the bomb (by default a run is one process and fork gets ENOMEM) */
    lim.memory_mb = 64;
    lim.memory_total_mb = 64 * lim.max_processes;
    const char *src = "#define _POSIX_C_SOURCE 200809L\n"
                      "#include <stdio.h>\n#include <sys/types.h>\n#include <unistd.h>\n"
                      "int main(void) { int ok = 0, failed = 0;\n"
                      "  for (int i = 0; i < 2000; i++) { pid_t p = fork();\n"
                      "    if (p == 0) { for (;;) { fork(); pause(); } }\n"
                      "    if (p < 0) failed++; else ok++; }\n"
                      "  printf(\"forked %d failed %d\\n\", ok, failed); fflush(stdout);\n"
                      "  for (;;) pause(); }\n";
    json_t *r =
        run(&lim, "c", src, "[{\"name\":\"bomb\",\"input\":\"\",\"expected_output\":\"\"}]");
    json_t *t = test_at(r, 0);
    int forked = -1, failed = -1;
    sscanf(str(t, "output"), "forked %d failed %d", &forked, &failed);
    /* contained: at most max_processes processes, the program included (so at most
     * max_processes - 1 forks), the rest of the forks failed */
    dump_on_fail(r, !flag(t, "passed") && forked >= 0 && forked < lim.max_processes &&
                        failed > 2000 - lim.max_processes && flag(t, "timed_out"));
    assert_host_can_fork();
    assert_int_equal(sandbox_processes_left(), 0);
    json_decref(r);
}

static void test_python_fork_bomb(void **state)
{
    (void)state;
    sm_sandbox_limits lim = limits();
    lim.wall_seconds = 3;
    lim.memory_total_mb = lim.memory_mb * lim.max_processes; /* forks allowed (see above) */
    const char *src = "import os\n"
                      "n = 0\n"
                      "try:\n"
                      "    while True:\n"
                      "        if os.fork() == 0:\n"
                      "            while True: os.fork()\n"
                      "        n += 1\n"
                      "except OSError as e:\n"
                      "    print('stopped after', n, type(e).__name__, flush=True)\n";
    json_t *r =
        run(&lim, "python", src, "[{\"name\":\"bomb\",\"input\":\"\",\"expected_output\":\"\"}]");
    json_t *t = test_at(r, 0);
    dump_on_fail(r, !flag(t, "passed") && strstr(str(t, "output"), "stopped after") != NULL);
    assert_host_can_fork();
    assert_int_equal(sandbox_processes_left(), 0);
    json_decref(r);
}

static void test_infinite_loop_cpu(void **state)
{
    (void)state;
    sm_sandbox_limits lim = limits();
    lim.cpu_seconds = 1;
    lim.wall_seconds = 30; /* the machine may be busy: the CPU limit must fire first */
    const char *src = "int main(void) { volatile unsigned long x = 0; for (;;) x++; }\n";
    json_t *r =
        run(&lim, "c", src, "[{\"name\":\"spin\",\"input\":\"\",\"expected_output\":\"\"}]");
    json_t *t = test_at(r, 0);
    dump_on_fail(r, !flag(t, "passed") && flag(t, "cpu_exceeded") && !flag(t, "timed_out"));
    assert_non_null(strstr(str(t, "error"), "CPU-time limit"));
    assert_true(json_integer_value(json_object_get(t, "cpu_ms")) >= 500);
    json_decref(r);
}

static void test_sleep_wall_limit(void **state)
{
    (void)state;
    sm_sandbox_limits lim = limits();
    lim.wall_seconds = 2;
    const char *src = "#define _POSIX_C_SOURCE 200809L\n#include <unistd.h>\n"
                      "int main(void) { for (;;) sleep(100); }\n";
    /* the second test raises its own wall limit a little: still killed there */
    json_t *r = run(&lim, "c", src,
                    "[{\"name\":\"sleep\",\"input\":\"\",\"expected_output\":\"\"},"
                    " {\"name\":\"sleep3\",\"input\":\"\",\"expected_output\":\"\","
                    "\"timeout_seconds\":1}]");
    json_t *t = test_at(r, 0), *t2 = test_at(r, 1);
    dump_on_fail(r, flag(t, "timed_out") && !flag(t, "passed") && flag(t2, "timed_out"));
    int64_t ms = json_integer_value(json_object_get(t, "time_ms"));
    assert_true(ms >= 2000 && ms < 6000);
    int64_t ms2 = json_integer_value(json_object_get(t2, "time_ms"));
    assert_true(ms2 >= 2000 && ms2 < 6000); /* timeout_seconds 1 + 1 s grace */
    assert_non_null(strstr(str(t, "error"), "wall-time limit"));
    assert_int_equal(sandbox_processes_left(), 0);
    json_decref(r);
}

static void test_memory_hog(void **state)
{
    (void)state;
    sm_sandbox_limits lim = limits();
    const char *src =
        "#include <stdlib.h>\n#include <string.h>\n"
        "int main(void) { for (;;) { char *p = malloc(1 << 20); memset(p, 1, 1 << 20); } }\n";
    json_t *r = run(&lim, "c", src, "[{\"name\":\"hog\",\"input\":\"\",\"expected_output\":\"\"}]");
    json_t *t = test_at(r, 0);
    dump_on_fail(r, !flag(t, "passed") && flag(t, "memory_exceeded"));
    assert_non_null(strstr(str(t, "error"), "memory limit"));
    json_decref(r);

    const char *py = "x = []\nwhile True:\n    x.append(bytearray(1 << 20))\n";
    r = run(&lim, "python", py, "[{\"name\":\"pyhog\",\"input\":\"\",\"expected_output\":\"\"}]");
    t = test_at(r, 0);
    dump_on_fail(r, !flag(t, "passed") && flag(t, "memory_exceeded"));
    json_decref(r);
}

static void test_network(void **state)
{
    (void)state;
    /* a real listener on the host's loopback: the sandbox must not reach it */
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(ls >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(ls, 4), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &al), 0);
    char tests[512];
    snprintf(tests, sizeof tests,
             "[{\"name\":\"net\",\"input\":\"\",\"args\":[\"%d\"],"
             "\"expected_output\":\"blocked 127.0.0.1\\nblocked example.com\\nblocked 1.1.1.1\"}]",
             ntohs(a.sin_port));
    const char *src =
        "import socket, sys\n"
        "port = int(sys.argv[1])\n"
        "for host, p in [('127.0.0.1', port), ('example.com', 80), ('1.1.1.1', 53)]:\n"
        "    try:\n"
        "        socket.create_connection((host, p), timeout=2)\n"
        "        print('CONNECTED', host)\n"
        "    except OSError:\n"
        "        print('blocked', host)\n";
    sm_sandbox_limits lim = limits();
    json_t *r = run(&lim, "python", src, tests);
    dump_on_fail(r, flag(test_at(r, 0), "passed"));
    close(ls);
    json_decref(r);
}

static void test_writes_outside_tmp(void **state)
{
    (void)state;
    const char *home = getenv("HOME");
    if (!home || !home[0])
        home = "/root";
    char tests[2048];
    snprintf(
        tests, sizeof tests,
        "[{\"name\":\"fs\",\"input\":\"\",\"args\":[\"%s/sm-sandbox-probe\",\"%s/sm-sandbox-probe\"],"
        "\"expected_output\":\"denied /etc/x\\ndenied /usr/x\\ndenied /x\\ndenied /work/x\\n"
        "denied /work/main.py\\ndenied home\\ndenied repo\\nwrote /tmp/ok\\n"
        "no /root\\nno /home\"}]",
        home, SM_TOP);
    const char *src =
        "import os, sys\n"
        "def probe(path, label):\n"
        "    try:\n"
        "        with open(path, 'w') as f: f.write('x')\n"
        "        print('wrote', label)\n"
        "    except OSError:\n"
        "        print('denied', label)\n"
        "for p in ['/etc/x', '/usr/x', '/x', '/work/x', '/work/main.py']: probe(p, p)\n"
        "probe(sys.argv[1], 'home')\n"
        "probe(sys.argv[2], 'repo')\n"
        "probe('/tmp/ok', '/tmp/ok')\n"
        "for d in ['/root', '/home']:\n"
        "    print('no' if not os.path.exists(d) or not os.listdir(d) else 'SEES', d)\n";
    sm_sandbox_limits lim = limits();
    json_t *r = run(&lim, "python", src, tests);
    dump_on_fail(r, flag(test_at(r, 0), "passed"));
    /* and nothing appeared on the host */
    char path[1024];
    struct stat st;
    snprintf(path, sizeof path, "%s/sm-sandbox-probe", home);
    assert_int_not_equal(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/sm-sandbox-probe", SM_TOP);
    assert_int_not_equal(stat(path, &st), 0);
    assert_int_not_equal(stat("/etc/x", &st), 0);
    json_decref(r);
}

static void test_huge_output(void **state)
{
    (void)state;
    sm_sandbox_limits lim = limits();
    lim.max_output_bytes = 10000;
    const char *src = "#include <stdio.h>\n"
                      "int main(void) { for (;;) fputs(\"0123456789abcdef\\n\", stdout); }\n";
    json_t *r =
        run(&lim, "c", src, "[{\"name\":\"flood\",\"input\":\"\",\"expected_output\":\"1\"}]");
    json_t *t = test_at(r, 0);
    dump_on_fail(r, !flag(t, "passed") && flag(t, "output_truncated") &&
                        json_integer_value(json_object_get(t, "output_bytes")) > 10000);
    assert_true(strlen(str(t, "output")) < 1200); /* the excerpt, not the flood */
    assert_non_null(strstr(str(t, "error"), "output limit"));
    assert_true(json_integer_value(json_object_get(t, "time_ms")) < 5000);
    json_decref(r);

    /* stderr counts too */
    const char *src2 = "#include <stdio.h>\n"
                       "int main(void) { for (;;) fputs(\"err err err err\\n\", stderr); }\n";
    r = run(&lim, "c", src2, "[{\"name\":\"flood2\",\"input\":\"\",\"expected_output\":\"1\"}]");
    t = test_at(r, 0);
    dump_on_fail(r, flag(t, "output_truncated"));
    json_decref(r);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    sm_sandbox_limits lim = limits();
    json_t *out = NULL, *arr = json_array(), *obj = json_object();
    sm_err err = {0};
    assert_int_equal(sm_sandbox_run_tests(&lim, "cobol", "x", arr, &out, &err), SM_EUNSUPPORTED);
    assert_int_equal(sm_sandbox_run_tests(&lim, "c", "x", obj, &out, &err), SM_EINVAL);
    assert_int_equal(sm_sandbox_run_tests(NULL, "c", "x", arr, &out, &err), SM_EINVAL);
    json_t *bad = json_loads("[{\"name\":\"t\",\"input\":3,\"expected_output\":\"1\"}]", 0, NULL);
    assert_int_equal(sm_sandbox_run_tests(&lim, "c", "x", bad, &out, &err), SM_EINVAL);
    json_decref(bad);
    lim.bwrap = "/nonexistent/bwrap";
    assert_int_equal(sm_sandbox_run_tests(&lim, "c", "x", arr, &out, &err), SM_EUNSUPPORTED);
    assert_null(out);
    json_decref(arr);
    json_decref(obj);
}

static void *concurrent_run(void *arg)
{
    int *ok = arg;
    sm_sandbox_limits lim = limits();
    json_error_t je;
    json_t *tests = json_loads(sum_tests, 0, &je), *out = NULL;
    sm_err err = {0};
    *ok = tests && sm_sandbox_run_tests(&lim, "c", c_sum, tests, &out, &err) == SM_OK &&
          json_integer_value(json_object_get(out, "passed")) == 2;
    json_decref(out);
    json_decref(tests);
    return NULL;
}

/* Several worker threads check code at once (each run gets its own uid and work dir). */
static void test_concurrent_runs(void **state)
{
    (void)state;
    pthread_t th[3];
    int ok[3] = {0};
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, concurrent_run, &ok[i]), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++)
        assert_true(ok[i]);
}

static void test_limits_from_config(void **state)
{
    (void)state;
    sm_config cfg;
    sm_config_defaults(&cfg);
    cfg.sandbox.cpu_seconds = 3;
    cfg.sandbox.memory_mb = 300;
    cfg.sandbox.use_cgroups = false;
    cfg.sandbox.memory_total_mb = 600;
    cfg.sandbox.tmpfs_mb = 16;
    sm_sandbox_limits l;
    sm_sandbox_limits_from_config(&cfg, &l);
    assert_int_equal(l.memory_total_mb, 600);
    assert_int_equal(l.tmpfs_mb, 16);
    assert_int_equal(l.cpu_seconds, 3);
    assert_int_equal(l.wall_seconds, cfg.sandbox.wall_seconds);
    assert_int_equal(l.memory_mb, 300);
    assert_int_equal(l.max_processes, cfg.sandbox.max_processes);
    assert_int_equal(l.max_output_bytes, cfg.sandbox.max_output_bytes);
    assert_false(l.use_cgroups);
    assert_string_equal(l.bwrap, cfg.sandbox.bwrap);
    /* cgroups off: the result says so */
    json_t *r = run(&l, "c", c_sum, sum_tests);
    assert_false(json_is_true(json_object_get(json_object_get(r, "limits"), "cgroup")));
    assert_non_null(
        strstr(str(json_object_get(json_object_get(r, "limits"), "enforcement"), "memory"),
               "disabled in the config"));
    json_decref(r);
}

/* ---- hardening (issue 24): memory of a run as a whole, sized tmpfs, seccomp ---- */

/* Forks 6 children that each take 450 MiB (scaled by argv[1] MiB) and hold it; prints how many
 * held it at once. Fork errors go to stderr (perror) and make the program fail. */
static const char *c_children_hog =
    "#define _POSIX_C_SOURCE 200809L\n"
    "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <unistd.h>\n"
    "int main(int argc, char **argv) { size_t mb = (size_t)atol(argv[1]); int p[2];\n"
    "  if (pipe(p) != 0) return 2; int held = 0, refused = 0;\n"
    "  for (int i = 0; i < 6; i++) { pid_t c = fork();\n"
    "    if (c < 0) { perror(\"fork\"); refused++; continue; }\n"
    "    if (c == 0) { char *m = malloc(mb << 20); if (!m) { perror(\"malloc\"); _exit(1); }\n"
    "      memset(m, 1, mb << 20); if (write(p[1], \"x\", 1) != 1) _exit(1); for (;;) pause(); }\n"
    "    char b; if (read(p[0], &b, 1) == 1) held++; }\n"
    "  printf(\"held %d\\n\", held); fflush(stdout); return refused ? 1 : 0; }\n";

static void test_memory_total_children(void **state)
{
    (void)state;
    sm_sandbox_limits lim = limits();
    lim.memory_mb = 512; /* memory_total_mb 0: the run as a whole holds 512 MiB */
    json_t *r = run(&lim, "c", c_children_hog,
                    "[{\"name\":\"kids\",\"args\":[\"450\"],\"expected_output\":\"held 6\"}]");
    json_t *t = test_at(r, 0);
    int held = -1;
    sscanf(str(t, "output"), "held %d", &held);
    dump_on_fail(r, !flag(t, "passed") && flag(t, "memory_exceeded") && held == 0);
    assert_non_null(strstr(str(t, "error"), "memory limit exceeded"));
    assert_non_null(strstr(str(t, "error"), "512 MiB per run"));
    assert_non_null(strstr(str(t, "stderr"), "Cannot allocate memory"));
    json_t *jl = json_object_get(r, "limits");
    assert_int_equal(json_integer_value(json_object_get(jl, "memory_total_mb")), 512);
    json_decref(r);
    assert_int_equal(sandbox_processes_left(), 0);
}

/* A total of 2 x memory_mb: one child besides the program, the others are refused. */
static void test_memory_total_two_processes(void **state)
{
    (void)state;
    sm_sandbox_limits lim = limits();
    lim.memory_mb = 160;
    lim.memory_total_mb = 320;
    json_t *r = run(&lim, "c", c_children_hog,
                    "[{\"name\":\"kids\",\"args\":[\"100\"],\"expected_output\":\"held 6\"}]");
    json_t *t = test_at(r, 0);
    int held = -1;
    sscanf(str(t, "output"), "held %d", &held);
    dump_on_fail(r, !flag(t, "passed") && flag(t, "memory_exceeded") && held == 1);
    assert_non_null(strstr(str(t, "error"), "320 MiB per run"));
    json_decref(r);
    /* a total that holds every task: the process limit alone applies, all 6 children run */
    lim.memory_mb = 64;
    lim.memory_total_mb = 64 * 16;
    r = run(&lim, "c", c_children_hog,
            "[{\"name\":\"kids\",\"args\":[\"20\"],\"expected_output\":\"held 6\"}]");
    dump_on_fail(r, flag(test_at(r, 0), "passed"));
    json_decref(r);
}

/* Every tmpfs has a size: writing past it fails with ENOSPC, and /dev itself is read-only. */
static void test_tmpfs_sized(void **state)
{
    (void)state;
    sm_sandbox_limits lim = limits();
    lim.tmpfs_mb = 8;
    const char *src =
        "import errno\n"
        "def fill(path):\n"
        "    try:\n"
        "        with open(path, 'wb') as f:\n"
        "            for _ in range(32): f.write(b'x' * (1 << 20))\n"
        "        return 'wrote 32 MiB'\n"
        "    except OSError as e:\n"
        "        return 'full' if e.errno == errno.ENOSPC else 'error ' + str(e.errno)\n"
        "print('/dev/shm', fill('/dev/shm/x'))\n"
        "print('/tmp', fill('/tmp/x'))\n"
        "print('/dev', fill('/dev/x'))\n";
    json_t *r = run(&lim, "python", src,
                    "[{\"name\":\"tmpfs\",\"expected_output\":"
                    "\"/dev/shm full\\n/tmp full\\n/dev error 30\"}]");
    dump_on_fail(r, flag(test_at(r, 0), "passed"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "limits"), "tmpfs_mb")),
                     8);
    json_decref(r);
}

/* Each denied syscall gets EPERM from the filter (most would succeed, or fail otherwise,
 * without it); clone3 gets ENOSYS, memfd_create ENOMEM (one-process run). Prints what was not
 * denied, then "done". */
static const char *c_denied =
    "#define _GNU_SOURCE\n"
    "#include <errno.h>\n#include <fcntl.h>\n#include <linux/keyctl.h>\n#include <stdio.h>\n"
    "#include <string.h>\n#include <sys/ioctl.h>\n#include <sys/socket.h>\n"
    "#include <sys/syscall.h>\n#include <sys/uio.h>\n#include <termios.h>\n#include <unistd.h>\n"
    "static char buf[4096]; static int bad;\n"
    "static void expect(const char *name, long rc, int want) {\n"
    "  if (rc != -1 || errno != want) { printf(\"%s: rc %ld errno %d\\n\", name, rc, errno); bad++; } }\n"
    "#define DENY(nr, ...) do { errno = 0; expect(#nr, syscall(nr, __VA_ARGS__), EPERM); } while (0)\n"
    "int main(void) {\n"
    "  long pid = getpid(); struct iovec l = {buf, 16}, rv = {buf + 64, 16};\n"
    "  DENY(SYS_io_uring_setup, 4, buf); DENY(SYS_io_uring_enter, 0, 0, 0, 0, 0, 0);\n"
    "  DENY(SYS_io_uring_register, 0, 0, 0, 0);\n"
    "  DENY(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_PROCESS_KEYRING, 1);\n"
    "  DENY(SYS_add_key, \"user\", \"k\", \"v\", 1, KEY_SPEC_PROCESS_KEYRING);\n"
    "  DENY(SYS_request_key, \"user\", \"k\", 0, 0);\n"
    "  DENY(SYS_bpf, 0, buf, 64); DENY(SYS_userfaultfd, 1); DENY(SYS_perf_event_open, buf, 0, -1, -1, 0);\n"
    "  DENY(SYS_ptrace, 0, 0, 0, 0); DENY(SYS_process_vm_readv, pid, &l, 1, &rv, 1, 0);\n"
    "  DENY(SYS_process_vm_writev, pid, &l, 1, &rv, 1, 0); DENY(SYS_kcmp, pid, pid, 0, 0, 0);\n"
    "  DENY(SYS_mount, \"none\", \"/tmp\", \"tmpfs\", 0, 0); DENY(SYS_umount2, \"/tmp\", 0);\n"
    "  DENY(SYS_pivot_root, \".\", \".\"); DENY(SYS_chroot, \"/tmp\");\n"
    "  DENY(SYS_move_mount, -1, \"\", -1, \"\", 0); DENY(SYS_fsopen, \"tmpfs\", 0);\n"
    "  DENY(SYS_fsmount, -1, 0, 0); DENY(SYS_fsconfig, -1, 0, 0, 0, 0); DENY(SYS_fspick, -1, \"/\", 0);\n"
    "  DENY(SYS_open_tree, -1, \"/tmp\", 0); DENY(SYS_mount_setattr, -1, \"\", 0, buf, 32);\n"
    "  DENY(SYS_unshare, 0); DENY(SYS_setns, -1, 0);\n"
    "  DENY(SYS_kexec_load, 0, 0, 0, 0); DENY(SYS_kexec_file_load, -1, -1, 0, \"\", 0);\n"
    "  DENY(SYS_init_module, buf, 16, \"\"); DENY(SYS_finit_module, -1, \"\", 0);\n"
    "  DENY(SYS_delete_module, \"x\", 0); DENY(SYS_swapon, \"/tmp/x\", 0); DENY(SYS_swapoff, \"/tmp/x\");\n"
    "  DENY(SYS_reboot, 0, 0, 0, 0); DENY(SYS_acct, 0); DENY(SYS_quotactl, 0, \"/\", 0, buf);\n"
    "  DENY(SYS_name_to_handle_at, AT_FDCWD, \"/work\", buf, buf + 2048, 0);\n"
    "  DENY(SYS_open_by_handle_at, -1, buf, 0);\n"
    "  DENY(SYS_io_setup, 1, buf); DENY(SYS_shmget, 0, 4096, 01600); DENY(SYS_msgget, 0, 01600);\n"
    "  DENY(SYS_semget, 0, 1, 01600); DENY(SYS_mq_open, \"q\", O_CREAT | O_RDWR, 0600, 0);\n"
    "  DENY(SYS_sethostname, \"x\", 1); DENY(SYS_clock_settime, 0, buf); DENY(SYS_iopl, 3);\n"
    "  DENY(SYS_ioperm, 0, 8, 1); DENY(SYS_syslog, 3, buf, 64); DENY(SYS_pidfd_getfd, -1, 0, 0);\n"
    "  DENY(SYS_socket, 40 /* AF_VSOCK */, SOCK_STREAM, 0); DENY(SYS_socket, 38 /* AF_ALG */, SOCK_SEQPACKET, 0);\n"
    "  DENY(SYS_ioctl, 0, TIOCSTI, buf);\n"
    "  errno = 0; expect(\"clone3\", syscall(SYS_clone3, buf, 88), ENOSYS);\n"
    "  errno = 0; expect(\"memfd_create\", syscall(SYS_memfd_create, \"m\", 0), ENOMEM);\n"
    "  int s = socket(AF_INET, SOCK_STREAM, 0); if (s < 0) { puts(\"inet socket refused\"); bad++; }\n"
    "  int u = socket(AF_UNIX, SOCK_STREAM, 0); if (u < 0) { puts(\"unix socket refused\"); bad++; }\n"
    "  puts(\"done\"); return bad != 0; }\n";

static void test_seccomp_denied(void **state)
{
    (void)state;
    sm_sandbox_limits lim = limits();
    json_t *r = run(&lim, "c", c_denied, "[{\"name\":\"denied\",\"expected_output\":\"done\"}]");
    dump_on_fail(r, flag(test_at(r, 0), "passed"));
    assert_non_null(strstr(
        str(json_object_get(json_object_get(r, "limits"), "enforcement"), "syscalls"), "seccomp"));
    json_decref(r);
}

/* Under the filter, threads still work (C and Python), and so does ordinary I/O. */
static void test_seccomp_normal_programs(void **state)
{
    (void)state;
    sm_sandbox_limits lim = limits();
    const char *c =
        "#include <pthread.h>\n#include <stdio.h>\n"
        "static long sum[4];\n"
        "static void *work(void *a) { long i = (long)a; for (long k = 0; k <= 1000; k++) sum[i] += k; return 0; }\n"
        "int main(void) { pthread_t t[4]; for (long i = 0; i < 4; i++) pthread_create(&t[i], 0, work, (void *)i);\n"
        "  long s = 0; for (int i = 0; i < 4; i++) { pthread_join(t[i], 0); s += sum[i]; }\n"
        "  FILE *f = fopen(\"/tmp/f\", \"w\"); fputs(\"ok\", f); fclose(f);\n"
        "  printf(\"%ld\\n\", s); return 0; }\n";
    json_t *r = run(&lim, "c", c, "[{\"name\":\"threads\",\"expected_output\":\"2002000\"}]");
    dump_on_fail(r, flag(test_at(r, 0), "passed"));
    json_decref(r);
    const char *py = "import threading, queue, json\n"
                     "q = queue.Queue()\n"
                     "ts = [threading.Thread(target=lambda i=i: q.put(i * i)) for i in range(8)]\n"
                     "[t.start() for t in ts]; [t.join() for t in ts]\n"
                     "print(sum(q.get() for _ in range(8)), json.dumps({'a': 1}))\n";
    r = run(&lim, "python", py,
            "[{\"name\":\"pythreads\",\"expected_output\":\"140 {\\\"a\\\": 1}\"}]");
    dump_on_fail(r, flag(test_at(r, 0), "passed"));
    json_decref(r);
}

/* ---- the slower compilers ---- */

static void test_cpp_correct_and_wrong(void **state)
{
    (void)state;
    sm_sandbox_limits lim = limits();
    const char *src = "#include <iostream>\n#include <vector>\n"
                      "int main() { long a, b; std::cin >> a >> b; std::vector<long> v{a, b};\n"
                      "  std::cout << v[0] + v[1] << std::endl; }\n";
    json_t *r = run(&lim, "cpp", src,
                    "[{\"name\":\"ok\",\"input\":\"2 3\",\"expected_output\":\"5\"},"
                    " {\"name\":\"wrong\",\"input\":\"2 3\",\"expected_output\":\"6\"}]");
    dump_on_fail(r, flag(test_at(r, 0), "passed") && !flag(test_at(r, 1), "passed"));
    assert_non_null(strstr(str(r, "summary"), "1/2 tests passed; failed: wrong: wrong answer"));
    json_decref(r);
    r = run(&lim, "cpp", "int main() { std::cout << 1; }\n", sum_tests);
    dump_on_fail(r, !flag(json_object_get(r, "compile"), "ok"));
    json_decref(r);
}

static void test_java_correct_and_wrong(void **state)
{
    (void)state;
    sm_sandbox_limits lim = limits();
    const char *src =
        "import java.util.*;\n"
        "public class Main { public static void main(String[] a) {\n"
        "  Scanner s = new Scanner(System.in); long x = s.nextLong(), y = s.nextLong();\n"
        "  System.out.println(x + y); } }\n";
    json_t *r = run(&lim, "java", src,
                    "[{\"name\":\"ok\",\"input\":\"40 2\",\"expected_output\":\"42\"},"
                    " {\"name\":\"wrong\",\"input\":\"40 2\",\"expected_output\":\"43\"}]");
    dump_on_fail(r, flag(test_at(r, 0), "passed") && !flag(test_at(r, 1), "passed"));
    json_decref(r);
    r = run(&lim, "java",
            "public class Main { public static void main(String[] a) { int x = \"s\"; } }\n",
            sum_tests);
    dump_on_fail(r, !flag(json_object_get(r, "compile"), "ok") &&
                        strstr(str(json_object_get(r, "compile"), "output"), "incompatible types"));
    json_decref(r);
}

/* Entries left in dir (0 when empty). */
static int entries_in(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            fprintf(stderr, "left behind: %s/%s\n", dir, e->d_name);
            n++;
        }
    closedir(d);
    return n;
}

/* javac -d makes p/q/r/Main.class for a "package p.q.r;": the whole tree is removed after. */
static void test_java_package_cleanup(void **state)
{
    (void)state;
    char base[] = "/tmp/sm-sbx-base-XXXXXX";
    assert_non_null(mkdtemp(base));
    assert_int_equal(chmod(base, 0711), 0); /* the run's uid passes through to its work dir */
    sm_sandbox_limits lim = limits();
    lim.work_base = base;
    const char *src = "package p.q.r;\n"
                      "public class Main { public static void main(String[] a) {\n"
                      "  System.out.println(42); } }\n";
    json_t *r = run(&lim, "java", src, "[{\"name\":\"pkg\",\"expected_output\":\"42\"}]");
    dump_on_fail(r, flag(json_object_get(r, "compile"), "ok"));
    json_decref(r);
    assert_int_equal(entries_in(base), 0);
    assert_int_equal(rmdir(base), 0);
}

static void test_java_memory_hog(void **state)
{
    (void)state;
    sm_sandbox_limits lim = limits();
    const char *src =
        "import java.util.*;\n"
        "public class Main { public static void main(String[] a) {\n"
        "  List<long[]> l = new ArrayList<>(); for (;;) l.add(new long[1 << 17]); } }\n";
    json_t *r =
        run(&lim, "java", src, "[{\"name\":\"hog\",\"input\":\"\",\"expected_output\":\"\"}]");
    json_t *t = test_at(r, 0);
    dump_on_fail(r, !flag(t, "passed") && flag(t, "memory_exceeded"));
    json_decref(r);
}

int main(int argc, char **argv)
{
    sm_sandbox_limits lim = limits();
    sm_err err = {0};
    if (!sm_sandbox_available(&lim, &err)) {
        fprintf(stderr, "the sandbox cannot run here: %s\n", err.msg);
        return 1;
    }
    const struct CMUnitTest fast[] = {
        cmocka_unit_test(test_c_correct),
        cmocka_unit_test(test_c_wrong_answer),
        cmocka_unit_test(test_c_compile_error),
        cmocka_unit_test(test_python_args_and_exit_code),
        cmocka_unit_test(test_python_syntax_error),
        cmocka_unit_test(test_fork_bomb),
        cmocka_unit_test(test_python_fork_bomb),
        cmocka_unit_test(test_infinite_loop_cpu),
        cmocka_unit_test(test_sleep_wall_limit),
        cmocka_unit_test(test_memory_hog),
        cmocka_unit_test(test_network),
        cmocka_unit_test(test_writes_outside_tmp),
        cmocka_unit_test(test_huge_output),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_limits_from_config),
        cmocka_unit_test(test_concurrent_runs),
    };
    const struct CMUnitTest langs[] = {
        cmocka_unit_test(test_cpp_correct_and_wrong),
        cmocka_unit_test(test_java_correct_and_wrong),
        cmocka_unit_test(test_java_memory_hog),
        cmocka_unit_test(test_java_package_cleanup),
    };
    const struct CMUnitTest hardening[] = {
        cmocka_unit_test(test_memory_total_children),
        cmocka_unit_test(test_memory_total_two_processes),
        cmocka_unit_test(test_tmpfs_sized),
        cmocka_unit_test(test_seccomp_denied),
        cmocka_unit_test(test_seccomp_normal_programs),
    };
    if (argc > 1 && strcmp(argv[1], "langs") == 0)
        return cmocka_run_group_tests_name("sandbox_langs", langs, NULL, NULL);
    if (argc > 1 && strcmp(argv[1], "hardening") == 0)
        return cmocka_run_group_tests_name("sandbox_hardening", hardening, NULL, NULL);
    return cmocka_run_group_tests_name("sandbox", fast, NULL, NULL);
}
