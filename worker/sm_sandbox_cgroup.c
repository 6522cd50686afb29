/* sm_sandbox_cgroup: a cgroup v2 child per sandbox run (memory.max, pids.max, OOM events,
 * cgroup.kill), made under the worker's own cgroup when the system delegates the memory and pids
 * controllers there. Anything missing makes sbx_cgroup_create() say why and the sandbox falls
 * back to rlimits only. */
#include "sm_sandbox_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

/* Leaf the worker moves itself into when its delegated cgroup must stay process-free. */
#define SBX_WORKER_LEAF "stepmark-worker"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

static bool read_file(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
    return true;
}

static bool write_file(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = write(fd, s, strlen(s));
    close(fd);
    return n == (ssize_t)strlen(s);
}

static bool has_word(const char *list, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = list; (p = strstr(p, w)) != NULL; p += n) {
        bool start = p == list || p[-1] == ' ' || p[-1] == '\n';
        bool end = p[n] == '\0' || p[n] == ' ' || p[n] == '\n';
        if (start && end)
            return true;
    }
    return false;
}

/* The cgroup v2 mount: /sys/fs/cgroup (unified) or /sys/fs/cgroup/unified (hybrid). */
static const char *v2_mount(void)
{
    static const char *const cands[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
    for (int i = 0; i < 2; i++) {
        struct statfs s;
        if (statfs(cands[i], &s) == 0 && s.f_type == CGROUP2_SUPER_MAGIC)
            return cands[i];
    }
    return NULL;
}

bool sbx_cgroup_create(sbx_cgroup *cg, int64_t memory_bytes, int64_t pids, char *why,
                       size_t why_len)
{
    memset(cg, 0, sizeof *cg);
    const char *mnt = v2_mount();
    if (!mnt) {
        snprintf(why, why_len, "no cgroup v2 hierarchy mounted");
        return false;
    }
    char self[512], buf[1024];
    if (!read_file("/proc/self/cgroup", buf, sizeof buf)) {
        snprintf(why, why_len, "cannot read /proc/self/cgroup");
        return false;
    }
    char *line = strstr(buf, "0::");
    if (!line) {
        snprintf(why, why_len, "no cgroup v2 entry in /proc/self/cgroup");
        return false;
    }
    line += 3;
    line[strcspn(line, "\n")] = '\0';
    /* After an earlier move into our own leaf (below), the base is the leaf's parent. */
    size_t ll = strlen(line), sl = strlen("/" SBX_WORKER_LEAF);
    if (ll >= sl && strcmp(line + ll - sl, "/" SBX_WORKER_LEAF) == 0)
        line[ll - sl] = '\0';
    snprintf(self, sizeof self, "%s%s", mnt,
             (line[0] == '\0' || strcmp(line, "/") == 0) ? "" : line);

    char path[600];
    snprintf(path, sizeof path, "%s/cgroup.controllers", self);
    if (!read_file(path, buf, sizeof buf) || !has_word(buf, "memory") || !has_word(buf, "pids")) {
        snprintf(why, why_len, "memory and pids controllers not available in %s", self);
        return false;
    }
    /* Enable them for children (works in the root cgroup or a delegated, process-free one). */
    snprintf(path, sizeof path, "%s/cgroup.subtree_control", self);
    if (!read_file(path, buf, sizeof buf) || !has_word(buf, "memory") || !has_word(buf, "pids")) {
        if (!write_file(path, "+memory +pids")) {
            /* A delegated cgroup that holds the worker itself ("no internal processes"): move
             * the worker into a leaf of its own, then enable the controllers for children. */
            char leaf[600], procs[640];
            snprintf(leaf, sizeof leaf, "%s/" SBX_WORKER_LEAF, self);
            snprintf(procs, sizeof procs, "%s/cgroup.procs", leaf);
            if (errno != EBUSY || (mkdir(leaf, 0755) != 0 && errno != EEXIST) ||
                !write_file(procs, "0") || !write_file(path, "+memory +pids")) {
                snprintf(why, why_len, "cannot enable memory,pids in %s: %s", path,
                         strerror(errno));
                return false;
            }
        }
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(cg->path, sizeof cg->path, "%s/stepmark-sbx-%d-%d-%ld", self, (int)getpid(),
             (int)gettid(), (long)(ts.tv_nsec & 0xffffff));
    if (mkdir(cg->path, 0700) != 0) {
        snprintf(why, why_len, "cannot create %s: %s", cg->path, strerror(errno));
        cg->path[0] = '\0';
        return false;
    }
    char val[32];
    if (memory_bytes > 0) {
        snprintf(path, sizeof path, "%s/memory.max", cg->path);
        snprintf(val, sizeof val, "%lld", (long long)memory_bytes);
        cg->has_memory = write_file(path, val);
        snprintf(path, sizeof path, "%s/memory.swap.max", cg->path);
        write_file(path, "0");
    }
    if (pids > 0) {
        snprintf(path, sizeof path, "%s/pids.max", cg->path);
        snprintf(val, sizeof val, "%lld", (long long)pids);
        cg->has_pids = write_file(path, val);
    }
    if ((memory_bytes > 0 && !cg->has_memory) || (pids > 0 && !cg->has_pids)) {
        snprintf(why, why_len, "cannot set memory.max/pids.max in %s", cg->path);
        rmdir(cg->path);
        memset(cg, 0, sizeof *cg);
        return false;
    }
    return true;
}

static int64_t read_key(const char *file, const char *key)
{
    char buf[2048];
    if (!read_file(file, buf, sizeof buf))
        return -1;
    size_t n = strlen(key);
    for (char *p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, key, n) == 0 && p[n] == ' ')
            return strtoll(p + n + 1, NULL, 10);
    }
    return -1;
}

int64_t sbx_cgroup_oom_kills(const sbx_cgroup *cg)
{
    if (!cg || !cg->path[0])
        return 0;
    char path[600];
    snprintf(path, sizeof path, "%s/memory.events", cg->path);
    int64_t v = read_key(path, "oom_kill");
    return v > 0 ? v : 0;
}

int64_t sbx_cgroup_memory_peak(const sbx_cgroup *cg)
{
    if (!cg || !cg->path[0])
        return -1;
    char path[600], buf[64];
    snprintf(path, sizeof path, "%s/memory.peak", cg->path);
    if (!read_file(path, buf, sizeof buf))
        return -1;
    return strtoll(buf, NULL, 10);
}

void sbx_cgroup_kill(const sbx_cgroup *cg)
{
    if (!cg || !cg->path[0])
        return;
    char path[600];
    snprintf(path, sizeof path, "%s/cgroup.kill", cg->path);
    if (write_file(path, "1"))
        return;
    snprintf(path, sizeof path, "%s/cgroup.procs", cg->path);
    for (int round = 0; round < 3; round++) {
        FILE *f = fopen(path, "r");
        if (!f)
            return;
        long pid;
        int n = 0;
        while (fscanf(f, "%ld", &pid) == 1) {
            kill((pid_t)pid, SIGKILL);
            n++;
        }
        fclose(f);
        if (n == 0)
            return;
        usleep(10000);
    }
}

void sbx_cgroup_destroy(sbx_cgroup *cg)
{
    if (!cg || !cg->path[0])
        return;
    for (int i = 0; i < 50; i++) {
        if (rmdir(cg->path) == 0 || errno == ENOENT)
            break;
        sbx_cgroup_kill(cg);
        usleep(10000);
    }
    cg->path[0] = '\0';
}
