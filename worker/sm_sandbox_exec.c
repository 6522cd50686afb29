/* sm_sandbox_exec: runs one command inside bubblewrap with rlimits, an optional cgroup v2, a
 * capped output pipe and a hard wall-time kill. When the caller is root, the run gets a uid of
 * its own (SBX_UID_BASE + the calling thread's id) so that RLIMIT_NPROC really counts (root is
 * exempt from it) and so that every leftover process can be killed by uid. */
#include "sm_sandbox_exec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Dedicated uids for sandbox runs when the worker runs as root (no user has them). */
#define SBX_UID_BASE 1500000000u
#define SBX_STDERR_KEEP (16 * 1024)
#define SBX_MAX_ARGS 160

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Tasks (processes and threads) whose real uid is uid; used to size RLIMIT_NPROC when the
 * worker is not root and the limit is shared with the worker's own uid. Bounded by /proc. */
static int64_t count_uid_tasks(uid_t uid) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    int64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        char line[256];
        long ruid = -1, threads = 1;
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "Uid:", 4) == 0) ruid = strtol(line + 4, NULL, 10);
            else if (strncmp(line, "Threads:", 8) == 0) threads = strtol(line + 8, NULL, 10);
        }
        fclose(f);
        if (ruid == (long)uid) n += threads;
    }
    closedir(d);
    return n;
}

/* Gives the work dir and the files directly in it to uid (flat: sources and build outputs). */
static sm_code chown_flat(const char *dir, uid_t uid, sm_err *err) {
    if (chown(dir, uid, uid) != 0)
        return sm_err_set(err, SM_EIO, "sandbox: chown %s: %s", dir, strerror(errno));
    DIR *d = opendir(dir);
    if (!d) return sm_err_set(err, SM_EIO, "sandbox: opendir %s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (fchownat(dirfd(d), e->d_name, uid, uid, AT_SYMLINK_NOFOLLOW) != 0) {
            int en = errno;
            closedir(d);
            return sm_err_set(err, SM_EIO, "sandbox: chown %s/%s: %s", dir, e->d_name,
                              strerror(en));
        }
    }
    closedir(d);
    return SM_OK;
}

/* SIGKILLs every process of uid (from a short-lived child that takes that uid). Root only. */
static void kill_uid(uid_t uid) {
    pid_t p = fork();
    if (p == 0) {
        if (setresgid(uid, uid, uid) == 0 && setresuid(uid, uid, uid) == 0) kill(-1, SIGKILL);
        _exit(0);
    }
    if (p > 0) {
        while (waitpid(p, NULL, 0) < 0 && errno == EINTR) {
        }
    }
}

typedef struct argv_buf {
    const char *v[SBX_MAX_ARGS + 1];
    int n;
    bool overflow;
} argv_buf;

static void arg(argv_buf *a, const char *s) {
    if (a->n >= SBX_MAX_ARGS) {
        a->overflow = true;
        return;
    }
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

/* The host's /bin, /lib, /lib64, /sbin: symlinks into /usr on merged-/usr systems. */
static void system_dir(argv_buf *a, const char *path, char *linkbuf, size_t linklen) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISLNK(st.st_mode)) {
        ssize_t n = readlink(path, linkbuf, linklen - 1);
        if (n <= 0) return;
        linkbuf[n] = '\0';
        arg(a, "--symlink");
        arg(a, linkbuf);
        arg(a, path);
    } else if (S_ISDIR(st.st_mode)) {
        arg(a, "--ro-bind");
        arg(a, path);
        arg(a, path);
    }
}

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

void sbx_result_free(sbx_result *res) {
    if (!res) return;
    free(res->out);
    free(res->errout);
    res->out = res->errout = NULL;
    res->out_len = res->errout_len = 0;
}

/* Reads what is available from fd into buf (kept up to keep bytes), counting everything. */
static bool drain(int fd, char *buf, size_t *len, size_t keep, int64_t *total) {
    char tmp[65536];
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n < 0) return errno == EINTR || errno == EAGAIN;
    if (n == 0) return false;
    *total += n;
    if (*len < keep) {
        size_t k = (size_t)n;
        if (k > keep - *len) k = keep - *len;
        memcpy(buf + *len, tmp, k);
        *len += k;
        buf[*len] = '\0';
    }
    return true;
}

/* The parent pid of pid (from /proc), -1 when unknown. */
static pid_t parent_of(pid_t pid) {
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    pid_t pp = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "PPid:", 5) == 0) pp = (pid_t)atol(line + 5);
    fclose(f);
    return pp;
}

static void set_limit(int resource, int64_t soft, int64_t hard) {
    struct rlimit r = {(rlim_t)soft, (rlim_t)hard};
    setrlimit(resource, &r);
}

sm_code sbx_run(const sbx_spec *spec, sbx_result *res, sm_err *err) {
    memset(res, 0, sizeof *res);
    res->exit_code = -1;
    if (!spec->bwrap || !spec->workdir || !spec->argv || !spec->argv[0])
        return sm_err_set(err, SM_EINVAL, "sandbox: incomplete run spec");
    if (access(spec->bwrap, X_OK) != 0)
        return sm_err_set(err, SM_EUNSUPPORTED, "sandbox: bubblewrap not found at %s",
                          spec->bwrap);

    bool root = geteuid() == 0;
    uid_t uid = root ? (uid_t)(SBX_UID_BASE + (unsigned)gettid()) : getuid();
    int64_t nproc = spec->nproc > 0 ? spec->nproc : 32;
    /* nproc tasks for the program (which runs as pid 1 of its namespace, --as-pid-1, so
     * bwrap keeps no init process there), plus bwrap's monitor outside it */
    int64_t nproc_limit = nproc + SBX_BWRAP_TASKS;
    if (!root) nproc_limit += count_uid_tasks(uid);
    res->nproc_rlimit = true;
    res->uid_switched = root;

    char sizebuf[32], linkbuf[4][256], uidbuf[16];
    snprintf(sizebuf, sizeof sizebuf, "%lld",
             (long long)(spec->tmp_bytes > 0 ? spec->tmp_bytes : 64LL << 20));
    snprintf(uidbuf, sizeof uidbuf, "%u", 1000u);
    argv_buf a = {.n = 0};
    arg(&a, spec->bwrap);
    arg(&a, "--unshare-all");
    arg(&a, "--unshare-user");
    arg(&a, "--disable-userns");
    arg(&a, "--uid");
    arg(&a, uidbuf);
    arg(&a, "--gid");
    arg(&a, uidbuf);
    arg(&a, "--die-with-parent");
    /* fd 4: bwrap reports the host pid of the program, so a kill can aim at it (the pid
     * namespace then dies with it and bwrap reaps it) */
    arg(&a, "--json-status-fd");
    arg(&a, "4");
    arg(&a, "--new-session");
    arg(&a, "--hostname");
    arg(&a, "sandbox");
    arg(&a, "--cap-drop");
    arg(&a, "ALL");
    arg(&a, "--ro-bind");
    arg(&a, "/usr");
    arg(&a, "/usr");
    system_dir(&a, "/bin", linkbuf[0], sizeof linkbuf[0]);
    system_dir(&a, "/lib", linkbuf[1], sizeof linkbuf[1]);
    system_dir(&a, "/lib64", linkbuf[2], sizeof linkbuf[2]);
    system_dir(&a, "/sbin", linkbuf[3], sizeof linkbuf[3]);
    /* The few files from /etc that the compilers and runtimes read. */
    static const char *const etc[] = {"/etc/ld.so.cache", "/etc/ld.so.conf",
                                      "/etc/ld.so.conf.d", "/etc/alternatives",
                                      "/etc/java-17-openjdk", "/etc/java-21-openjdk", NULL};
    for (int i = 0; etc[i]; i++) {
        arg(&a, "--ro-bind-try");
        arg(&a, etc[i]);
        arg(&a, etc[i]);
    }
    arg(&a, "--proc");
    arg(&a, "/proc");
    arg(&a, "--dev");
    arg(&a, "/dev");
    arg(&a, "--size");
    arg(&a, sizebuf);
    arg(&a, "--tmpfs");
    arg(&a, "/tmp");
    arg(&a, spec->work_writable ? "--bind" : "--ro-bind");
    arg(&a, spec->workdir);
    arg(&a, "/work");
    /* the root of the sandbox (a tmpfs bwrap builds) read-only: no writes to /, /etc, ... */
    arg(&a, "--remount-ro");
    arg(&a, "/");
    /* no extra init: the program is bwrap's direct child, so its resource usage (CPU, peak
     * memory) reaches our wait4(); when it exits the pid namespace and all in it die. */
    arg(&a, "--as-pid-1");
    arg(&a, "--chdir");
    arg(&a, "/work");
    arg(&a, "--clearenv");
    arg(&a, "--setenv");
    arg(&a, "PATH");
    arg(&a, "/usr/bin:/bin");
    arg(&a, "--setenv");
    arg(&a, "HOME");
    arg(&a, "/tmp");
    arg(&a, "--setenv");
    arg(&a, "LANG");
    arg(&a, "C.UTF-8");
    /* extra env: "KEY=VALUE" split into two strings kept in envbuf */
    char envbuf[8][2][256];
    int ne = 0;
    for (int i = 0; spec->env && spec->env[i] && ne < 8; i++, ne++) {
        const char *eq = strchr(spec->env[i], '=');
        if (!eq) continue;
        snprintf(envbuf[ne][0], sizeof envbuf[ne][0], "%.*s", (int)(eq - spec->env[i]),
                 spec->env[i]);
        snprintf(envbuf[ne][1], sizeof envbuf[ne][1], "%s", eq + 1);
        arg(&a, "--setenv");
        arg(&a, envbuf[ne][0]);
        arg(&a, envbuf[ne][1]);
    }
    arg(&a, "--");
    for (int i = 0; spec->argv[i]; i++) arg(&a, spec->argv[i]);
    if (a.overflow) return sm_err_set(err, SM_EINVAL, "sandbox: too many arguments");
    (void)is_dir;

    if (root) {
        sm_code rc = chown_flat(spec->workdir, uid, err);
        if (rc != SM_OK) return rc;
    }

    size_t keep = spec->output_cap > 0 ? (size_t)spec->output_cap : 65536;
    res->out = malloc(keep + 1);
    res->errout = malloc(SBX_STDERR_KEEP + 1);
    if (!res->out || !res->errout) {
        sbx_result_free(res);
        return sm_err_set(err, SM_ENOMEM, "sandbox: out of memory");
    }
    res->out[0] = res->errout[0] = '\0';

    /* stdin: a memfd, given to the child read-only */
    int memfd = memfd_create("sm-stdin", MFD_CLOEXEC);
    int infd = -1;
    if (memfd >= 0) {
        size_t off = 0;
        while (spec->stdin_data && off < spec->stdin_len) {
            ssize_t w = write(memfd, spec->stdin_data + off, spec->stdin_len - off);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) break;
            off += (size_t)w;
        }
        char p[64];
        snprintf(p, sizeof p, "/proc/self/fd/%d", memfd);
        infd = open(p, O_RDONLY | O_CLOEXEC);
        close(memfd);
    }
    int outp[2] = {-1, -1}, errp[2] = {-1, -1}, statp[2] = {-1, -1}, jsp[2] = {-1, -1};
    if (infd < 0 || pipe2(outp, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0 ||
        pipe2(statp, O_CLOEXEC) != 0 || pipe2(jsp, O_CLOEXEC) != 0) {
        int en = errno;
        if (infd >= 0) close(infd);
        for (int i = 0; i < 2; i++) {
            if (outp[i] >= 0) close(outp[i]);
            if (errp[i] >= 0) close(errp[i]);
            if (statp[i] >= 0) close(statp[i]);
            if (jsp[i] >= 0) close(jsp[i]);
        }
        sbx_result_free(res);
        return sm_err_set(err, SM_EIO, "sandbox: pipes: %s", strerror(en));
    }
    char procs_path[600] = "";
    if (spec->cgroup && spec->cgroup->path[0])
        snprintf(procs_path, sizeof procs_path, "%s/cgroup.procs", spec->cgroup->path);
    char *const envp[] = {NULL};
    pid_t parent = getpid();
    int64_t t0 = now_ms();

    pid_t pid = fork();
    if (pid < 0) {
        int en = errno;
        close(infd);
        close(outp[0]), close(outp[1]), close(errp[0]), close(errp[1]);
        close(statp[0]), close(statp[1]), close(jsp[0]), close(jsp[1]);
        sbx_result_free(res);
        return sm_err_set(err, SM_EIO, "sandbox: fork: %s", strerror(en));
    }
    if (pid == 0) {
        /* child: async-signal-safe calls only */
        int e = 0;
        setpgid(0, 0);
        /* the worker's signal mask and ignored signals (SIGPIPE) must not reach the program */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++)
            if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (procs_path[0]) {
            int fd = open(procs_path, O_WRONLY | O_CLOEXEC);
            if (fd < 0 || write(fd, "0", 1) != 1) e = errno ? errno : EIO;
            if (fd >= 0) close(fd);
        }
        if (!e && (dup2(infd, 0) < 0 || dup2(outp[1], 1) < 0 || dup2(errp[1], 2) < 0 ||
                   dup2(statp[1], 3) < 0 || fcntl(3, F_SETFD, FD_CLOEXEC) < 0 ||
                   dup2(jsp[1], 4) < 0))
            e = errno;
        if (!e) close_range(5, ~0U, 0);
        if (!e && root) {
            if (setgroups(0, NULL) != 0 || setresgid(uid, uid, uid) != 0 ||
                setresuid(uid, uid, uid) != 0)
                e = errno;
        }
        if (!e) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(127);
            set_limit(RLIMIT_CORE, 0, 0);
            int64_t cpu = spec->cpu_seconds > 0 ? spec->cpu_seconds : 5;
            /* soft = hard: the program runs as pid 1 of its namespace, which ignores SIGXCPU;
             * the kernel then SIGKILLs it at the limit */
            set_limit(RLIMIT_CPU, cpu, cpu);
            if (spec->as_bytes > 0) set_limit(RLIMIT_AS, spec->as_bytes, spec->as_bytes);
            set_limit(RLIMIT_NPROC, nproc_limit, nproc_limit);
            int64_t fs = spec->fsize_bytes > 0 ? spec->fsize_bytes : 16LL << 20;
            set_limit(RLIMIT_FSIZE, fs, fs);
            set_limit(RLIMIT_NOFILE, 256, 256);
            execve(spec->bwrap, (char *const *)a.v, envp);
            e = errno;
        }
        int en = e;
        if (write(3, &en, sizeof en) < 0) _exit(127);
        _exit(127);
    }

    close(infd);
    close(outp[1]);
    close(errp[1]);
    close(statp[1]);
    close(jsp[1]);
    int child_errno = 0;
    ssize_t sr;
    do {
        sr = read(statp[0], &child_errno, sizeof child_errno);
    } while (sr < 0 && errno == EINTR);
    close(statp[0]);
    if (sr == (ssize_t)sizeof child_errno) {
        close(outp[0]);
        close(errp[0]);
        close(jsp[0]);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
        if (root) kill_uid(uid);
        sbx_result_free(res);
        return sm_err_set(err, SM_EIO, "sandbox: starting bubblewrap failed: %s",
                          strerror(child_errno));
    }

    int pidfd = pidfd_open(pid, 0);
    int64_t deadline = t0 + (spec->wall_ms > 0 ? spec->wall_ms : 10000);
    int64_t hard_end = 0; /* after a kill: give the pipes this long to close */
    int64_t soft_end = 0; /* after a kill of the program: when to kill bwrap too */
    bool bwrap_killed = false;
    bool out_open = true, err_open = true, js_open = true, exited = false, killed = false;
    char js[512];
    size_t js_len = 0;
    pid_t prog = 0;   /* the program's host pid, from bwrap's status */
    int progfd = -1;  /* and a pidfd on it */
    int64_t js_total = 0;
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    int64_t total = 0;
    while (out_open || err_open || js_open || !exited) {
        int64_t now = now_ms();
        if (!killed && now >= deadline) {
            res->timed_out = true;
            killed = true;
        }
        if (!killed && total > spec->output_cap) {
            res->output_truncated = true;
            killed = true;
        }
        if (killed && hard_end == 0) {
            if (spec->cgroup) sbx_cgroup_kill(spec->cgroup);
            if (progfd >= 0) {
                /* the pid namespace dies with its first process; bwrap reaps it and exits */
                pidfd_send_signal(progfd, SIGKILL, NULL, 0);
                soft_end = now + 1000;
            } else {
                soft_end = now;
            }
            hard_end = now + 3000;
        }
        if (soft_end && now >= soft_end && !exited && !bwrap_killed) {
            kill(pid, SIGKILL);
            killpg(pid, SIGKILL);
            if (root) kill_uid(uid);
            bwrap_killed = true;
        }
        if (hard_end && now >= hard_end) break;
        struct pollfd pf[4];
        int np = 0, iout = -1, ierr = -1, ipid = -1, ijs = -1;
        if (js_open) ijs = np, pf[np++] = (struct pollfd){.fd = jsp[0], .events = POLLIN};
        if (out_open) iout = np, pf[np++] = (struct pollfd){.fd = outp[0], .events = POLLIN};
        if (err_open) ierr = np, pf[np++] = (struct pollfd){.fd = errp[0], .events = POLLIN};
        if (!exited && pidfd >= 0) ipid = np, pf[np++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        int64_t until = hard_end ? (soft_end && !bwrap_killed ? soft_end : hard_end) : deadline;
        int timeout = (int)(until - now);
        if (timeout < 0) timeout = 0;
        if (!exited && pidfd < 0 && timeout > 20) timeout = 20;
        int n = poll(pf, (nfds_t)np, timeout);
        if (n < 0 && errno != EINTR) break;
        if (n > 0 && ijs >= 0 && (pf[ijs].revents & (POLLIN | POLLHUP | POLLERR))) {
            js_open = drain(jsp[0], js, &js_len, sizeof js - 1, &js_total);
            const char *c = prog == 0 ? strstr(js, "\"child-pid\"") : NULL;
            if (c && (c = strchr(c, ':')) != NULL && strpbrk(c, ",}")) {
                prog = (pid_t)atol(c + 1);
                progfd = prog > 0 ? pidfd_open(prog, 0) : -1;
                /* a pidfd is immune to pid reuse; make sure it is bwrap's child */
                if (progfd >= 0 && parent_of(prog) != pid) {
                    close(progfd);
                    progfd = -1;
                }
            }
        }
        if (n > 0 && iout >= 0 && (pf[iout].revents & (POLLIN | POLLHUP | POLLERR)))
            out_open = drain(outp[0], res->out, &res->out_len, keep, &total);
        if (n > 0 && ierr >= 0 && (pf[ierr].revents & (POLLIN | POLLHUP | POLLERR))) {
            int64_t before = total;
            err_open = drain(errp[0], res->errout, &res->errout_len, SBX_STDERR_KEEP, &total);
            (void)before;
        }
        if (!exited && (ipid < 0 || (n > 0 && (pf[ipid].revents & POLLIN)))) {
            pid_t w = wait4(pid, &status, WNOHANG, &ru);
            if (w == pid) exited = true;
        }
    }
    if (!exited) {
        kill(pid, SIGKILL);
        while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
        }
    }
    if (root) kill_uid(uid);
    if (spec->cgroup) sbx_cgroup_kill(spec->cgroup);
    if (pidfd >= 0) close(pidfd);
    if (progfd >= 0) close(progfd);
    close(outp[0]);
    close(errp[0]);
    close(jsp[0]);

    res->time_ms = now_ms() - t0;
    res->cpu_ms = (int64_t)ru.ru_utime.tv_sec * 1000 + ru.ru_utime.tv_usec / 1000 +
                  (int64_t)ru.ru_stime.tv_sec * 1000 + ru.ru_stime.tv_usec / 1000;
    res->maxrss_kb = ru.ru_maxrss;
    res->output_bytes = total;
    if (res->output_truncated || total > spec->output_cap) res->output_truncated = true;
    if (WIFEXITED(status)) {
        int code = WEXITSTATUS(status);
        /* bwrap reports a program killed by signal s as exit status 128 + s */
        if (code > 128 && code < 128 + 65) {
            res->signal = code - 128;
            res->exit_code = -1;
        } else {
            res->exit_code = code;
        }
    } else if (WIFSIGNALED(status)) {
        res->signal = WTERMSIG(status);
        res->exit_code = -1;
    }
    return SM_OK;
}
