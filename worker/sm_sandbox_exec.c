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

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Tasks (processes and threads) whose real uid is uid; used to size RLIMIT_NPROC when the
 * worker is not root and the limit is shared with the worker's own uid. Bounded by /proc. */
static int64_t count_uid_tasks(uid_t uid)
{
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    int64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        char line[256];
        long ruid = -1, threads = 1;
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "Uid:", 4) == 0)
                ruid = strtol(line + 4, NULL, 10);
            else if (strncmp(line, "Threads:", 8) == 0)
                threads = strtol(line + 8, NULL, 10);
        }
        fclose(f);
        if (ruid == (long)uid)
            n += threads;
    }
    closedir(d);
    return n;
}

/* Gives the work dir and the files directly in it to uid (flat: sources and build outputs). */
static sm_code chown_flat(const char *dir, uid_t uid, sm_err *err)
{
    if (chown(dir, uid, uid) != 0)
        return sm_err_set(err, SM_EIO, "sandbox: chown %s: %s", dir, strerror(errno));
    DIR *d = opendir(dir);
    if (!d)
        return sm_err_set(err, SM_EIO, "sandbox: opendir %s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
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
static void kill_uid(uid_t uid)
{
    pid_t p = fork();
    if (p == 0) {
        if (setresgid(uid, uid, uid) == 0 && setresuid(uid, uid, uid) == 0)
            kill(-1, SIGKILL);
        _exit(0);
    }
    if (p > 0) {
        while (waitpid(p, NULL, 0) < 0 && errno == EINTR) {
        }
    }
}

void sbx_result_free(sbx_result *res)
{
    if (!res)
        return;
    free(res->out);
    free(res->errout);
    res->out = res->errout = NULL;
    res->out_len = res->errout_len = 0;
}

/* ---- bubblewrap's argv ---------------------------------------------------------------- */

/* Fixed fds of the bwrap process: 0-2 stdio, then these. */
enum sbx_fd { SBX_FD_STATUS = 3, SBX_FD_JSON = 4, SBX_FD_SECCOMP = 5, SBX_FD_FIRST_FREE = 6 };

/* bwrap's argv and the strings it points to. */
typedef struct sbx_argv {
    const char *v[SBX_MAX_ARGS + 1];
    int n;
    bool overflow;
    char uid[16], tmp_size[32], shm_size[32], json_fd[8], seccomp_fd[8];
    char link[4][256];
    char env[8][2][256];
} sbx_argv;

static void arg(sbx_argv *a, const char *s)
{
    if (a->n >= SBX_MAX_ARGS) {
        a->overflow = true;
        return;
    }
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

static void args3(sbx_argv *a, const char *x, const char *y, const char *z)
{
    arg(a, x);
    arg(a, y);
    arg(a, z);
}

/* The host's /bin, /lib, /lib64, /sbin: symlinks into /usr on merged-/usr systems. */
static void system_dir(sbx_argv *a, const char *path, char *linkbuf, size_t linklen)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISLNK(st.st_mode)) {
        ssize_t n = readlink(path, linkbuf, linklen - 1);
        if (n <= 0)
            return;
        linkbuf[n] = '\0';
        args3(a, "--symlink", linkbuf, path);
    } else if (S_ISDIR(st.st_mode)) {
        args3(a, "--ro-bind", path, path);
    }
}

/* Namespaces, identity, status and seccomp fds. */
static void argv_isolation(sbx_argv *a, const sbx_spec *spec)
{
    snprintf(a->uid, sizeof a->uid, "%u", 1000u);
    snprintf(a->json_fd, sizeof a->json_fd, "%d", SBX_FD_JSON);
    snprintf(a->seccomp_fd, sizeof a->seccomp_fd, "%d", SBX_FD_SECCOMP);
    arg(a, spec->bwrap);
    arg(a, "--unshare-all");
    arg(a, "--unshare-user");
    arg(a, "--disable-userns");
    arg(a, "--uid");
    arg(a, a->uid);
    arg(a, "--gid");
    arg(a, a->uid);
    arg(a, "--die-with-parent");
    /* bwrap reports the host pid of the program, so a kill can aim at it (the pid namespace
     * then dies with it and bwrap reaps it) */
    arg(a, "--json-status-fd");
    arg(a, a->json_fd);
    /* the filter is applied to the program right before its exec */
    arg(a, "--seccomp");
    arg(a, a->seccomp_fd);
    arg(a, "--new-session");
    arg(a, "--hostname");
    arg(a, "sandbox");
    arg(a, "--cap-drop");
    arg(a, "ALL");
}

/* The file system: read-only system, sized tmpfs at /tmp and /dev/shm, the work dir. */
static void argv_filesystem(sbx_argv *a, const sbx_spec *spec)
{
    static const char *const etc[] = {"/etc/ld.so.cache",
                                      "/etc/ld.so.conf",
                                      "/etc/ld.so.conf.d",
                                      "/etc/alternatives",
                                      "/etc/java-17-openjdk",
                                      "/etc/java-21-openjdk",
                                      NULL};
    snprintf(a->tmp_size, sizeof a->tmp_size, "%lld",
             (long long)(spec->tmp_bytes > 0 ? spec->tmp_bytes : 64LL << 20));
    snprintf(a->shm_size, sizeof a->shm_size, "%lld",
             (long long)(spec->shm_bytes > 0 ? spec->shm_bytes : 64LL << 20));
    args3(a, "--ro-bind", "/usr", "/usr");
    system_dir(a, "/bin", a->link[0], sizeof a->link[0]);
    system_dir(a, "/lib", a->link[1], sizeof a->link[1]);
    system_dir(a, "/lib64", a->link[2], sizeof a->link[2]);
    system_dir(a, "/sbin", a->link[3], sizeof a->link[3]);
    for (int i = 0; etc[i]; i++)
        args3(a, "--ro-bind-try", etc[i], etc[i]);
    arg(a, "--proc");
    arg(a, "/proc");
    arg(a, "--dev");
    arg(a, "/dev");
    /* every writable tmpfs has a size; /dev itself (bwrap's, unsized) is made read-only */
    args3(a, "--size", a->shm_size, "--tmpfs");
    arg(a, "/dev/shm");
    arg(a, "--remount-ro");
    arg(a, "/dev");
    args3(a, "--size", a->tmp_size, "--tmpfs");
    arg(a, "/tmp");
    args3(a, spec->work_writable ? "--bind" : "--ro-bind", spec->workdir, "/work");
    /* the root of the sandbox (a tmpfs bwrap builds) read-only: no writes to /, /etc, ... */
    arg(a, "--remount-ro");
    arg(a, "/");
}

/* The program: pid 1, /work, a clean environment plus spec->env, then its argv. */
static void argv_program(sbx_argv *a, const sbx_spec *spec)
{
    /* no extra init: the program is bwrap's direct child, so its resource usage (CPU, peak
     * memory) reaches our wait4(); when it exits the pid namespace and all in it die. */
    arg(a, "--as-pid-1");
    arg(a, "--chdir");
    arg(a, "/work");
    arg(a, "--clearenv");
    args3(a, "--setenv", "PATH", "/usr/bin:/bin");
    args3(a, "--setenv", "HOME", "/tmp");
    args3(a, "--setenv", "LANG", "C.UTF-8");
    int ne = 0;
    for (int i = 0; spec->env && spec->env[i] && ne < 8; i++) {
        const char *eq = strchr(spec->env[i], '=');
        if (!eq)
            continue;
        snprintf(a->env[ne][0], sizeof a->env[ne][0], "%.*s", (int)(eq - spec->env[i]),
                 spec->env[i]);
        snprintf(a->env[ne][1], sizeof a->env[ne][1], "%s", eq + 1);
        args3(a, "--setenv", a->env[ne][0], a->env[ne][1]);
        ne++;
    }
    arg(a, "--");
    for (int i = 0; spec->argv[i]; i++)
        arg(a, spec->argv[i]);
}

static sm_code build_argv(sbx_argv *a, const sbx_spec *spec, sm_err *err)
{
    memset(a, 0, sizeof *a);
    argv_isolation(a, spec);
    argv_filesystem(a, spec);
    argv_program(a, spec);
    if (a->overflow)
        return sm_err_set(err, SM_EINVAL, "sandbox: too many arguments");
    return SM_OK;
}

/* ---- pipes and fds ---------------------------------------------------------------------- */

/* The parent's ends [0] and the child's ends [1] of every channel to bwrap. */
typedef struct sbx_io {
    int in;      /* stdin: a read-only fd on a memfd */
    int out[2];  /* stdout */
    int err[2];  /* stderr */
    int stat[2]; /* the child's exec errno (closed on exec) */
    int js[2];   /* bwrap's --json-status-fd */
    int seccomp; /* the compiled filter */
} sbx_io;

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void io_close(sbx_io *io)
{
    close_fd(&io->in);
    close_fd(&io->seccomp);
    for (int i = 0; i < 2; i++) {
        close_fd(&io->out[i]);
        close_fd(&io->err[i]);
        close_fd(&io->stat[i]);
        close_fd(&io->js[i]);
    }
}

/* The child's ends, once it has them. */
static void io_close_child_ends(sbx_io *io)
{
    close_fd(&io->in);
    close_fd(&io->seccomp);
    close_fd(&io->out[1]);
    close_fd(&io->err[1]);
    close_fd(&io->stat[1]);
    close_fd(&io->js[1]);
}

/* stdin: a memfd holding data, given to the child read-only. */
static int stdin_fd(const char *data, size_t len)
{
    int memfd = memfd_create("sm-stdin", MFD_CLOEXEC);
    if (memfd < 0)
        return -1;
    size_t off = 0;
    while (data && off < len) {
        ssize_t w = write(memfd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", memfd);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    close(memfd);
    return fd;
}

static sm_code io_open(sbx_io *io, const sbx_spec *spec, sm_err *err)
{
    *io = (sbx_io){.in = -1,
                   .seccomp = -1,
                   .out = {-1, -1},
                   .err = {-1, -1},
                   .stat = {-1, -1},
                   .js = {-1, -1}};
    sm_code rc = sbx_seccomp_fd(spec->single_process, &io->seccomp, err);
    if (rc != SM_OK)
        return rc;
    io->in = stdin_fd(spec->stdin_data, spec->stdin_len);
    if (io->in < 0 || pipe2(io->out, O_CLOEXEC) != 0 || pipe2(io->err, O_CLOEXEC) != 0 ||
        pipe2(io->stat, O_CLOEXEC) != 0 || pipe2(io->js, O_CLOEXEC) != 0) {
        int en = errno;
        io_close(io);
        return sm_err_set(err, SM_EIO, "sandbox: pipes: %s", strerror(en));
    }
    return SM_OK;
}

/* ---- the child -------------------------------------------------------------------------- */

static void set_limit(int resource, int64_t soft, int64_t hard)
{
    struct rlimit r = {(rlim_t)soft, (rlim_t)hard};
    setrlimit(resource, &r);
}

/* What the child needs besides spec (computed before fork: no allocation in the child). */
typedef struct sbx_child {
    const sbx_spec *spec;
    const sbx_argv *argv;
    const sbx_io *io;
    char procs_path[600]; /* the cgroup's cgroup.procs, or "" */
    pid_t parent;
    bool root;
    uid_t uid;
    int64_t nproc_limit;
} sbx_child;

/* Default signal dispositions and an empty mask: the worker's must not reach the program. */
static void child_reset_signals(void)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Puts every channel at its fixed fd and closes the rest. 0 or an errno. */
static int child_fds(const sbx_io *io)
{
    /* first above every target, so that no dup2 below replaces a source not yet moved (and
     * none is a no-op that would keep close-on-exec) */
    const int src[] = {io->in, io->out[1], io->err[1], io->stat[1], io->js[1], io->seccomp};
    int high[6];
    for (int i = 0; i < 6; i++) {
        high[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 64);
        if (high[i] < 0)
            return errno;
    }
    if (dup2(high[0], 0) < 0 || dup2(high[1], 1) < 0 || dup2(high[2], 2) < 0 ||
        dup2(high[3], SBX_FD_STATUS) < 0 || fcntl(SBX_FD_STATUS, F_SETFD, FD_CLOEXEC) < 0 ||
        dup2(high[4], SBX_FD_JSON) < 0 || dup2(high[5], SBX_FD_SECCOMP) < 0)
        return errno;
    close_range(SBX_FD_FIRST_FREE, ~0U, 0);
    return 0;
}

static void child_limits(const sbx_child *c)
{
    set_limit(RLIMIT_CORE, 0, 0);
    int64_t cpu = c->spec->cpu_seconds > 0 ? c->spec->cpu_seconds : 5;
    /* soft = hard: the program runs as pid 1 of its namespace, which ignores SIGXCPU; the
     * kernel then SIGKILLs it at the limit */
    set_limit(RLIMIT_CPU, cpu, cpu);
    if (c->spec->as_bytes > 0)
        set_limit(RLIMIT_AS, c->spec->as_bytes, c->spec->as_bytes);
    set_limit(RLIMIT_NPROC, c->nproc_limit, c->nproc_limit);
    int64_t fs = c->spec->fsize_bytes > 0 ? c->spec->fsize_bytes : 16LL << 20;
    set_limit(RLIMIT_FSIZE, fs, fs);
    set_limit(RLIMIT_NOFILE, 256, 256);
    set_limit(RLIMIT_MSGQUEUE, 0, 0);
}

/* In the forked child: async-signal-safe calls only. Never returns. */
static void child_exec(const sbx_child *c)
{
    int e = 0;
    setpgid(0, 0);
    child_reset_signals();
    if (c->procs_path[0]) {
        int fd = open(c->procs_path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "0", 1) != 1)
            e = errno ? errno : EIO;
        if (fd >= 0)
            close(fd);
    }
    if (!e)
        e = child_fds(c->io);
    if (!e && c->root &&
        (setgroups(0, NULL) != 0 || setresgid(c->uid, c->uid, c->uid) != 0 ||
         setresuid(c->uid, c->uid, c->uid) != 0))
        e = errno;
    if (!e) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != c->parent)
            _exit(127);
        child_limits(c);
        char *const envp[] = {NULL};
        execve(c->spec->bwrap, (char *const *)c->argv->v, envp);
        e = errno;
    }
    if (write(SBX_FD_STATUS, &e, sizeof e) < 0)
        _exit(127);
    _exit(127);
}

/* ---- supervision ------------------------------------------------------------------------ */

/* The parent pid of pid (from /proc), -1 when unknown. */
static pid_t parent_of(pid_t pid)
{
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    pid_t pp = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "PPid:", 5) == 0)
            pp = (pid_t)atol(line + 5);
    fclose(f);
    return pp;
}

/* Reads what is available from fd into buf (kept up to keep bytes), counting everything. */
static bool drain(int fd, char *buf, size_t *len, size_t keep, int64_t *total)
{
    char tmp[65536];
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN;
    if (n == 0)
        return false;
    *total += n;
    if (*len < keep) {
        size_t k = (size_t)n;
        if (k > keep - *len)
            k = keep - *len;
        memcpy(buf + *len, tmp, k);
        *len += k;
        buf[*len] = '\0';
    }
    return true;
}

/* State of one supervised run. */
typedef struct sbx_sup {
    const sbx_spec *spec;
    sbx_result *res;
    sbx_io *io;
    pid_t pid;  /* bwrap */
    int pidfd;  /* on bwrap */
    pid_t prog; /* the program's host pid, from bwrap's status */
    int progfd; /* and a pidfd on it */
    bool root;
    uid_t uid;
    size_t keep;                          /* stdout bytes kept */
    int64_t deadline, hard_end, soft_end; /* wall limit; after a kill: pipes' grace, bwrap's */
    bool killed, bwrap_killed, exited;
    bool out_open, err_open, js_open;
    char js[512];
    size_t js_len;
    int64_t js_total, total;
    int status;
    struct rusage ru;
} sbx_sup;

/* Decides on and escalates kills: the program at the limit, bwrap 1 s later. */
static void sup_kill_step(sbx_sup *s, int64_t now)
{
    if (!s->killed && now >= s->deadline)
        s->res->timed_out = s->killed = true;
    if (!s->killed && s->total > s->spec->output_cap)
        s->res->output_truncated = s->killed = true;
    if (s->killed && s->hard_end == 0) {
        if (s->spec->cgroup)
            sbx_cgroup_kill(s->spec->cgroup);
        if (s->progfd >= 0) {
            /* the pid namespace dies with its first process; bwrap reaps it and exits */
            pidfd_send_signal(s->progfd, SIGKILL, NULL, 0);
            s->soft_end = now + 1000;
        } else {
            s->soft_end = now;
        }
        s->hard_end = now + 3000;
    }
    if (s->soft_end && now >= s->soft_end && !s->exited && !s->bwrap_killed) {
        kill(s->pid, SIGKILL);
        killpg(s->pid, SIGKILL);
        if (s->root)
            kill_uid(s->uid);
        s->bwrap_killed = true;
    }
}

/* bwrap's JSON status: the program's host pid, checked to be bwrap's child. */
static void sup_read_status(sbx_sup *s)
{
    s->js_open = drain(s->io->js[0], s->js, &s->js_len, sizeof s->js - 1, &s->js_total);
    const char *c = s->prog == 0 ? strstr(s->js, "\"child-pid\"") : NULL;
    if (c && (c = strchr(c, ':')) != NULL && strpbrk(c, ",}")) {
        s->prog = (pid_t)atol(c + 1);
        s->progfd = s->prog > 0 ? pidfd_open(s->prog, 0) : -1;
        /* a pidfd is immune to pid reuse; make sure it is bwrap's child */
        if (s->progfd >= 0 && parent_of(s->prog) != s->pid)
            close_fd(&s->progfd);
    }
}

/* One poll round over the open channels and bwrap's exit. false: stop (poll failed). */
static bool sup_poll_once(sbx_sup *s, int64_t now)
{
    struct pollfd pf[4];
    int np = 0, iout = -1, ierr = -1, ipid = -1, ijs = -1;
    if (s->js_open)
        ijs = np, pf[np++] = (struct pollfd){.fd = s->io->js[0], .events = POLLIN};
    if (s->out_open)
        iout = np, pf[np++] = (struct pollfd){.fd = s->io->out[0], .events = POLLIN};
    if (s->err_open)
        ierr = np, pf[np++] = (struct pollfd){.fd = s->io->err[0], .events = POLLIN};
    if (!s->exited && s->pidfd >= 0)
        ipid = np, pf[np++] = (struct pollfd){.fd = s->pidfd, .events = POLLIN};
    int64_t until =
        s->hard_end ? (s->soft_end && !s->bwrap_killed ? s->soft_end : s->hard_end) : s->deadline;
    int timeout = (int)(until - now);
    if (timeout < 0)
        timeout = 0;
    if (!s->exited && s->pidfd < 0 && timeout > 20)
        timeout = 20;
    int n = poll(pf, (nfds_t)np, timeout);
    if (n < 0 && errno != EINTR)
        return false;
    const short ready = POLLIN | POLLHUP | POLLERR;
    if (n > 0 && ijs >= 0 && (pf[ijs].revents & ready))
        sup_read_status(s);
    if (n > 0 && iout >= 0 && (pf[iout].revents & ready))
        s->out_open = drain(s->io->out[0], s->res->out, &s->res->out_len, s->keep, &s->total);
    if (n > 0 && ierr >= 0 && (pf[ierr].revents & ready))
        s->err_open =
            drain(s->io->err[0], s->res->errout, &s->res->errout_len, SBX_STDERR_KEEP, &s->total);
    if (!s->exited && (ipid < 0 || (n > 0 && (pf[ipid].revents & POLLIN))))
        s->exited = wait4(s->pid, &s->status, WNOHANG, &s->ru) == s->pid;
    return true;
}

/* Reads output until everything closed and bwrap exited, killing at the limits. */
static void supervise(sbx_sup *s)
{
    s->out_open = s->err_open = s->js_open = true;
    s->progfd = -1;
    s->pidfd = pidfd_open(s->pid, 0);
    while (s->out_open || s->err_open || s->js_open || !s->exited) {
        int64_t now = now_ms();
        sup_kill_step(s, now);
        if (s->hard_end && now >= s->hard_end)
            break;
        if (!sup_poll_once(s, now))
            break;
    }
    if (!s->exited) {
        kill(s->pid, SIGKILL);
        while (wait4(s->pid, &s->status, 0, &s->ru) < 0 && errno == EINTR) {
        }
    }
    if (s->root)
        kill_uid(s->uid);
    if (s->spec->cgroup)
        sbx_cgroup_kill(s->spec->cgroup);
    close_fd(&s->pidfd);
    close_fd(&s->progfd);
}

/* Exit code or signal, CPU, memory and output counts from bwrap's wait status. */
static void classify(sbx_result *res, const sbx_sup *s)
{
    const struct rusage *ru = &s->ru;
    res->cpu_ms = (int64_t)ru->ru_utime.tv_sec * 1000 + ru->ru_utime.tv_usec / 1000 +
                  (int64_t)ru->ru_stime.tv_sec * 1000 + ru->ru_stime.tv_usec / 1000;
    res->maxrss_kb = ru->ru_maxrss;
    res->output_bytes = s->total;
    if (s->total > s->spec->output_cap)
        res->output_truncated = true;
    if (WIFEXITED(s->status)) {
        int code = WEXITSTATUS(s->status);
        /* bwrap reports a program killed by signal s as exit status 128 + s */
        if (code > 128 && code < 128 + 65) {
            res->signal = code - 128;
            res->exit_code = -1;
        } else {
            res->exit_code = code;
        }
    } else if (WIFSIGNALED(s->status)) {
        res->signal = WTERMSIG(s->status);
        res->exit_code = -1;
    }
}

/* ---- one run ------------------------------------------------------------------------------ */

static sm_code result_alloc(sbx_result *res, size_t keep, sm_err *err)
{
    res->out = malloc(keep + 1);
    res->errout = malloc(SBX_STDERR_KEEP + 1);
    if (!res->out || !res->errout) {
        sbx_result_free(res);
        return sm_err_set(err, SM_ENOMEM, "sandbox: out of memory");
    }
    res->out[0] = res->errout[0] = '\0';
    return SM_OK;
}

/* Forks the child that execs bwrap; SM_OK once bwrap runs (its exec succeeded). */
static sm_code start_child(const sbx_child *c, sbx_io *io, pid_t *pid_out, sm_err *err)
{
    pid_t pid = fork();
    if (pid < 0)
        return sm_err_set(err, SM_EIO, "sandbox: fork: %s", strerror(errno));
    if (pid == 0)
        child_exec(c);
    io_close_child_ends(io);
    int child_errno = 0;
    ssize_t sr;
    do {
        sr = read(io->stat[0], &child_errno, sizeof child_errno);
    } while (sr < 0 && errno == EINTR);
    close_fd(&io->stat[0]);
    if (sr == (ssize_t)sizeof child_errno) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
        if (c->root)
            kill_uid(c->uid);
        return sm_err_set(err, SM_EIO, "sandbox: starting bubblewrap failed: %s",
                          strerror(child_errno));
    }
    *pid_out = pid;
    return SM_OK;
}

/* The child's context: identity and the process limit that goes with it. */
static void child_prepare(sbx_child *c, const sbx_spec *spec, const sbx_argv *a, const sbx_io *io)
{
    memset(c, 0, sizeof *c);
    c->spec = spec;
    c->argv = a;
    c->io = io;
    c->root = geteuid() == 0;
    c->uid = c->root ? (uid_t)(SBX_UID_BASE + (unsigned)gettid()) : getuid();
    c->parent = getpid();
    int64_t nproc = spec->nproc > 0 ? spec->nproc : 32;
    /* nproc tasks for the program (which runs as pid 1 of its namespace, --as-pid-1, so
     * bwrap keeps no init process there), plus bwrap's monitor outside it */
    c->nproc_limit = nproc + SBX_BWRAP_TASKS;
    if (!c->root)
        c->nproc_limit += count_uid_tasks(c->uid);
    if (spec->cgroup && spec->cgroup->path[0])
        snprintf(c->procs_path, sizeof c->procs_path, "%s/cgroup.procs", spec->cgroup->path);
}

sm_code sbx_run(const sbx_spec *spec, sbx_result *res, sm_err *err)
{
    memset(res, 0, sizeof *res);
    res->exit_code = -1;
    if (!spec->bwrap || !spec->workdir || !spec->argv || !spec->argv[0])
        return sm_err_set(err, SM_EINVAL, "sandbox: incomplete run spec");
    if (access(spec->bwrap, X_OK) != 0)
        return sm_err_set(err, SM_EUNSUPPORTED, "sandbox: bubblewrap not found at %s", spec->bwrap);
    sbx_argv *a = malloc(sizeof *a);
    if (!a)
        return sm_err_set(err, SM_ENOMEM, "sandbox: out of memory");
    sbx_io io;
    sbx_child c;
    sm_code rc = build_argv(a, spec, err);
    if (rc == SM_OK)
        rc = io_open(&io, spec, err);
    else
        io = (sbx_io){.in = -1,
                      .seccomp = -1,
                      .out = {-1, -1},
                      .err = {-1, -1},
                      .stat = {-1, -1},
                      .js = {-1, -1}};
    child_prepare(&c, spec, a, &io);
    res->nproc_rlimit = true;
    res->uid_switched = c.root;
    if (rc == SM_OK && c.root)
        rc = chown_flat(spec->workdir, c.uid, err);
    size_t keep = spec->output_cap > 0 ? (size_t)spec->output_cap : 65536;
    if (rc == SM_OK)
        rc = result_alloc(res, keep, err);
    int64_t t0 = now_ms();
    sbx_sup s = {.spec = spec, .res = res, .io = &io, .root = c.root, .uid = c.uid, .keep = keep};
    if (rc == SM_OK)
        rc = start_child(&c, &io, &s.pid, err);
    if (rc == SM_OK) {
        s.deadline = t0 + (spec->wall_ms > 0 ? spec->wall_ms : 10000);
        supervise(&s);
        res->time_ms = now_ms() - t0;
        classify(res, &s);
    } else {
        sbx_result_free(res);
    }
    io_close(&io);
    free(a);
    return rc;
}
