/* sm_sandbox_exec: internal to the sandbox. Runs one command inside bubblewrap with rlimits,
 * an optional cgroup v2, a capped output pipe and a hard wall-time kill; and the cgroup v2
 * helper. Used by sm_sandbox.c only. */
#ifndef SM_SANDBOX_EXEC_H
#define SM_SANDBOX_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"

/* Tasks of bubblewrap's own that share the run's process limits with the program: its monitor
 * process outside the namespaces (the program is pid 1 inside, --as-pid-1). The program then
 * has at most nproc tasks, itself and its threads included. */
#define SBX_BWRAP_TASKS 1

/* A cgroup v2 child made for one run (path empty when none). */
typedef struct sbx_cgroup {
    char path[512];
    bool has_memory, has_pids;
} sbx_cgroup;

/* Creates a child cgroup under the caller's own cgroup v2 with memory.max (bytes, 0 = none) and
 * pids.max (0 = none). Returns false (and a reason in why) when cgroups v2 cannot be used. */
bool sbx_cgroup_create(sbx_cgroup *cg, int64_t memory_bytes, int64_t pids, char *why,
                       size_t why_len);
/* Number of OOM kills recorded for the cgroup (memory.events oom_kill), 0 when unknown. */
int64_t sbx_cgroup_oom_kills(const sbx_cgroup *cg);
/* Peak memory of the cgroup in bytes (memory.peak), -1 when unknown. */
int64_t sbx_cgroup_memory_peak(const sbx_cgroup *cg);
/* SIGKILLs everything in the cgroup (cgroup.kill, else each pid in cgroup.procs). */
void sbx_cgroup_kill(const sbx_cgroup *cg);
/* Kills what is left and removes the cgroup directory. */
void sbx_cgroup_destroy(sbx_cgroup *cg);

typedef struct sbx_spec {
    const char *bwrap;
    const char *workdir;     /* bound at /work */
    bool work_writable;      /* rw bind (compile) or ro bind (runs) */
    const char *const *argv; /* command inside the sandbox, NULL-terminated */
    const char *const *env;  /* extra "KEY=VALUE" for the sandbox, NULL-terminated, or NULL */
    const char *stdin_data;  /* may be NULL */
    size_t stdin_len;
    int64_t cpu_seconds;      /* RLIMIT_CPU */
    int64_t wall_ms;          /* hard kill */
    int64_t as_bytes;         /* RLIMIT_AS, 0 = none */
    int64_t nproc;            /* processes/threads inside the sandbox */
    int64_t fsize_bytes;      /* RLIMIT_FSIZE */
    int64_t output_cap;       /* stdout+stderr bytes kept; past it the run is killed */
    int64_t tmp_bytes;        /* size of the private /tmp */
    int64_t shm_bytes;        /* size of the private /dev/shm */
    bool single_process;      /* seccomp refuses new processes (ENOMEM): one address space */
    const sbx_cgroup *cgroup; /* NULL or a cgroup to move the run into */
} sbx_spec;

typedef struct sbx_result {
    int exit_code;         /* -1 when killed by a signal */
    int signal;            /* 0 or the signal that ended the program */
    bool timed_out;        /* killed at the wall limit */
    bool output_truncated; /* output exceeded output_cap: cut and killed */
    int64_t time_ms;       /* wall time */
    int64_t cpu_ms;        /* user+system CPU of the whole tree */
    int64_t maxrss_kb;     /* largest resident set in the tree */
    int64_t output_bytes;  /* stdout+stderr bytes produced (counted past the cap too) */
    char *out;             /* stdout kept (NUL-terminated, may contain NULs before out_len) */
    size_t out_len;
    char *errout; /* stderr kept */
    size_t errout_len;
    bool nproc_rlimit; /* RLIMIT_NPROC was applied to a uid of its own */
    bool uid_switched; /* ran as a dedicated unprivileged uid (caller was root) */
} sbx_result;

/* Writes the run's seccomp filter (compiled BPF, for bwrap --seccomp) into a new memfd at
 * offset 0 (sm_sandbox_seccomp.c). single_process: new processes and memfds get ENOMEM. */
sm_code sbx_seccomp_fd(bool single_process, int *fd_out, sm_err *err);

/* Runs spec; SM_OK when the command was started and waited for (whatever its outcome).
 * Errors only when the sandbox could not be set up (fork, pipes, bwrap missing). */
sm_code sbx_run(const sbx_spec *spec, sbx_result *res, sm_err *err);
void sbx_result_free(sbx_result *res);

#endif
