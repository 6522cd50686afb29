/* sm_sandbox: compiles a student's program and runs it against an assignment's tests inside a
 * bubblewrap sandbox (no network, read-only system, private /tmp, per-run work dir) with limits
 * on CPU time, wall time, memory, processes and output size (setrlimit, plus a cgroup v2 when
 * one is writable). See docs/sandbox.md for what is enforced where. */
#ifndef SM_SANDBOX_H
#define SM_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "sm_config.h"
#include "sm_error.h"

typedef struct sm_sandbox_limits {
    int64_t cpu_seconds;      /* CPU time per test run (RLIMIT_CPU) */
    int64_t wall_seconds;     /* wall time per test run; the run is SIGKILLed at this limit */
    int64_t memory_mb;        /* address space (RLIMIT_AS) or cgroup memory.max */
    int64_t max_processes;    /* processes/threads inside the sandbox (RLIMIT_NPROC, pids.max) */
    int64_t max_output_bytes; /* stdout+stderr kept per run; past it the run is killed */
    bool use_cgroups;         /* also use a cgroup v2 child when the system allows it */
    const char *bwrap;        /* bubblewrap binary; NULL or "" = /usr/bin/bwrap */
    /* Optional (0/NULL = default): */
    int64_t compile_seconds; /* CPU and wall limit of the compile step (default 30) */
    const char *work_base;   /* where per-run work dirs are made (default $TMPDIR or /tmp) */
    int64_t memory_total_mb; /* memory of a whole test run, all processes (default memory_mb):
                               * without a cgroup RLIMIT_AS x processes stays within it, and a
                               * total below 2 x memory_mb allows one process (threads only) */
    int64_t tmpfs_mb;        /* size of each tmpfs in the sandbox: /tmp, /dev/shm (default 64) */
} sm_sandbox_limits;

/* Fills *lim from cfg->sandbox (lim->bwrap points into cfg: keep cfg alive). */
void sm_sandbox_limits_from_config(const sm_config *cfg, sm_sandbox_limits *lim);

/* Compiles (when the language needs it) and runs source against each test of tests_json.
 * tests_json: a JSON array of {"name", "input" (stdin), "expected_output", optional "args":[..],
 * optional "timeout_seconds" (lowers or raises the wall limit of that test, capped at 10x
 * wall_seconds)}. Output is compared with expected_output after trimming trailing whitespace
 * of every line and trailing blank lines. language: "c" (gcc -O2 -std=c17 -lm), "cpp"
 * (g++ -O2 -std=c++17), "python" (python3), "java" (class Main in Main.java).
 *
 * Returns SM_OK whenever the checks ran, even when the student's code fails to compile, crashes
 * or exceeds a limit (that is a result). Errors: SM_EINVAL (bad arguments or malformed tests),
 * SM_EUNSUPPORTED (unknown language or its compiler is not installed), SM_EIO/SM_EINTERNAL
 * (the sandbox could not be set up). On SM_OK *out is a new JSON object:
 *   {"language", "compile": {"ok", "time_ms", "output" (trimmed excerpt)},
 *    "tests": [{"name", "passed", "time_ms", "exit_code", "signal", "timed_out",
 *               "cpu_exceeded", "memory_exceeded", "output_truncated", "output_bytes",
 *               "output" (trimmed excerpt), "expected" (trimmed excerpt), "stderr" (excerpt),
 *               "error" (null or a short reason),
 *               "first_difference" (wrong answers only): {"line", "output", "expected"}}],
 *    "passed": N, "total": N, "summary": "3/4 tests passed; ...",
 *    "limits": {"cpu_seconds", "wall_seconds", "memory_mb", "memory_total_mb", "tmpfs_mb",
 *               "max_processes", "max_output_bytes", "cgroup",
 *               "enforcement": {"cpu", "wall", "memory", "processes", "output", "network",
 *               "filesystem", "syscalls"} (how each limit was enforced)}}
 * When compilation fails every test is reported as not passed with error "compile error". */
sm_code sm_sandbox_run_tests(const sm_sandbox_limits *lim, const char *language, const char *source,
                             const json_t *tests_json, json_t **out, sm_err *err);

/* Whether the sandbox can run here (bwrap present and able to create its namespaces).
 * Fills err with the reason when not. */
bool sm_sandbox_available(const sm_sandbox_limits *lim, sm_err *err);

#endif
