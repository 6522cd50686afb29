/* sm_sandbox_int: internal to the code check. What sm_sandbox.c (languages, compile, io tests)
 * shares with sm_unittest.c (call, pytest, driver and junit tests): a check's context, one run
 * inside the sandbox, the text helpers and the classification of how a run ended. */
#ifndef SM_SANDBOX_INT_H
#define SM_SANDBOX_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sm_sandbox.h"
#include "sm_sandbox_exec.h"

#define SBX_EXCERPT_MAX 1024

typedef struct sbx_lang {
    const char *name;
    const char *source_file;
    const char *tool;           /* must exist on the host (and so in the sandbox) */
    const char *const *compile; /* NULL = nothing to compile */
    const char *const *run;
    bool jvm;
} sbx_lang;

typedef struct run_ctx {
    const sm_sandbox_limits *lim;
    const char *workdir;
    const char *bwrap;
    bool use_cgroup;      /* cgroups v2 usable (decided once per call) */
    char cgroup_why[256]; /* why not, when not */
    int64_t total_bytes;  /* memory of a whole test run */
    int64_t tmpfs_bytes;  /* size of /tmp and of /dev/shm */
} run_ctx;

/* What one run may use. */
typedef struct run_req {
    const char *const *argv;
    const char *const *env; /* extra "KEY=VALUE", NULL-terminated, or NULL */
    const char *input;      /* stdin */
    size_t input_len;
    bool compile;     /* the compile step: work dir writable, compilers may fork */
    bool one_process; /* never start processes (the JVM: its threads count as tasks) */
    int64_t cpu_s, wall_ms;
    int64_t as_bytes;  /* RLIMIT_AS of each process */
    int64_t mem_bytes; /* the whole run (cgroup memory.max; else see run_memory_mode) */
    int64_t nproc;     /* tasks, threads included */
} run_req;

/* What came of it. */
typedef struct run_out {
    sbx_result r;
    bool cgroup_used, oom_killed;
    bool single_process; /* the run could not start processes (memory total) */
    bool nproc_by_total; /* the task limit was lowered to keep the memory total */
} run_out;

/* The limits of one test run, after its time_ms / memory_mb overrides. */
typedef struct sbx_test_limits {
    int64_t cpu_s, wall_ms;
    int64_t mem_bytes;   /* per process (RLIMIT_AS; the JVM gets 1 GiB more) */
    int64_t total_bytes; /* the whole run */
} sbx_test_limits;

/* How a run ended, in words. */
typedef struct sbx_verdict {
    bool ok, cpu_exceeded, mem_exceeded;
    const char *error;
    char errbuf[200];
} sbx_verdict;

extern const char *const sbx_java_env[];
/* The runners (generated from worker/runners/ by cmake/embed_runners.cmake). */
extern const unsigned char sbx_py_runner[];
extern const unsigned char sbx_java_runner[];

sm_code sbx_run_one(run_ctx *ctx, const run_req *q, run_out *o, sm_err *err);
/* Runs argv as a compile step (work dir writable, compiler limits); *ok when it exited 0 and
 * *msg (malloc'd, may be NULL) holds its messages without the /work/ prefix. */
sm_code sbx_compile(run_ctx *ctx, const char *const *argv, bool jvm, bool *ok, char **msg,
                    int64_t *time_ms, sm_err *err);
char *sbx_clean_utf8(const char *s, size_t n);
size_t sbx_normalize(char *s, size_t n);
json_t *sbx_excerpt(const char *s, size_t max);
sm_code sbx_write_file(const char *dir, const char *name, const char *src, sm_err *err);
/* The limits of test t (its time_ms, timeout_seconds and memory_mb within the check's). */
void sbx_test_limits_of(const run_ctx *ctx, const json_t *t, sbx_test_limits *tl);
/* Sets v's limit flags and error (NULL when the run ended normally with exit code 0). */
void sbx_classify(sbx_verdict *v, const run_out *o, const sbx_test_limits *tl, const char *serr,
                  const run_ctx *ctx);
/* The JVM's run argv up to the class path: java -Xmx... (xmx: a buffer of 32 bytes). */
int sbx_java_argv(const char **argv, char *xmx, int64_t mem_bytes);

/* Unit tests (sm_unittest.c). sbx_unit_prepare writes the runners and the student's module and
 * checks that the student's code compiles (fills comp like the compile step); sbx_unit_run
 * runs test t (index i) and appends one result per case to results. */
sm_code sbx_unit_prepare(run_ctx *ctx, const sbx_lang *L, const char *source, json_t *comp,
                         bool *compiled, sm_err *err);
typedef struct sbx_unit_tally {
    int passed, total;
    double points, points_earned;
} sbx_unit_tally;
sm_code sbx_unit_run(run_ctx *ctx, const sbx_lang *L, const char *source, const json_t *t, size_t i,
                     bool compiled, json_t *results, sbx_unit_tally *tally, sm_err *err);

#endif
