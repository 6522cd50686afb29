/* sm_pgembed: the private PostgreSQL cluster (see sm_pgembed.h). The server binaries come from
 * $STEPMARK_PG_BINDIR, else the newest /usr/lib/postgresql/N/bin, else the PATH. */
#include "sm_pgembed.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "sm_db.h"
#include "sm_log.h"

#define SM_PG_PORT "5432"
#define SM_PG_USER "stepmark"
#define SM_PG_DB "stepmark"

struct sm_pgembed {
    char data_dir[PATH_MAX];
    char bindir[PATH_MAX];
    char url[PATH_MAX + 128];
    int started_here;
};

static int is_exec(const char *dir, const char *prog)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, prog);
    return access(p, X_OK) == 0;
}

static sm_code find_bindir(char *out, size_t n, sm_err *err)
{
    const char *env = getenv("STEPMARK_PG_BINDIR");
    if (env && *env) {
        if (!is_exec(env, "initdb") || !is_exec(env, "pg_ctl"))
            return sm_err_set(err, SM_ENOTFOUND, "STEPMARK_PG_BINDIR=%s has no initdb/pg_ctl", env);
        snprintf(out, n, "%s", env);
        return SM_OK;
    }
    int best = -1;
    DIR *d = opendir("/usr/lib/postgresql");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            char *end;
            long v = strtol(e->d_name, &end, 10);
            char dir[PATH_MAX];
            if (*end || end == e->d_name)
                continue;
            snprintf(dir, sizeof dir, "/usr/lib/postgresql/%s/bin", e->d_name);
            if (v > best && is_exec(dir, "initdb") && is_exec(dir, "pg_ctl")) {
                best = (int)v;
                snprintf(out, n, "%s", dir);
            }
        }
        closedir(d);
    }
    if (best >= 0)
        return SM_OK;
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *dir = strtok_r(buf, ":", &save); dir;
         dir = strtok_r(NULL, ":", &save)) {
        if (is_exec(dir, "initdb") && is_exec(dir, "pg_ctl")) {
            snprintf(out, n, "%s", dir);
            return SM_OK;
        }
    }
    return sm_err_set(err, SM_ENOTFOUND,
                      "PostgreSQL server programs (initdb, pg_ctl) not found; install the "
                      "postgresql package (scripts/setup) or set STEPMARK_PG_BINDIR");
}

/* The system account the server runs as; name is NULL when it is ourselves. */
typedef struct {
    uid_t uid;
    gid_t gid;
    const char *name;
} server_account;

/* The system user the server runs as: ourselves, or `postgres` when we are root. Fills *acct
 * in every case (with ourselves on error), so callers never read an unset field. */
static sm_code server_user(server_account *acct, sm_err *err)
{
    *acct = (server_account){.uid = geteuid(), .gid = getegid(), .name = NULL};
    if (acct->uid != 0)
        return SM_OK;
    struct passwd *pw = getpwnam("postgres");
    if (!pw)
        return sm_err_set(err, SM_ENOTFOUND,
                          "running as root, but there is no `postgres` system user to run the "
                          "private PostgreSQL server as (install the postgresql package)");
    *acct = (server_account){.uid = pw->pw_uid, .gid = pw->pw_gid, .name = "postgres"};
    return SM_OK;
}

/* Runs argv as the server user; captures its output into out (may be NULL). Returns the exit
 * status (or -1 when it could not run). */
static int run_prog(char *const argv[], char *out, size_t out_n)
{
    server_account acct;
    sm_err e;
    if (server_user(&acct, &e) != SM_OK) {
        if (out)
            snprintf(out, out_n, "%s", e.msg);
        return -1;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, STDIN_FILENO);
        if (acct.name) {
            if (initgroups(acct.name, acct.gid) != 0 || setgid(acct.gid) != 0 ||
                setuid(acct.uid) != 0) {
                fprintf(stderr, "cannot switch to user %s: %s\n", acct.name, strerror(errno));
                _exit(126);
            }
            setenv("HOME", "/tmp", 1);
        }
        if (chdir("/") != 0)
            _exit(126);
        execv(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    char ring[8192];
    size_t used = 0;
    ssize_t got;
    char chunk[1024];
    while ((got = read(fds[0], chunk, sizeof chunk)) > 0 || (got < 0 && errno == EINTR)) {
        if (got <= 0)
            continue;
        /* keep the last bytes of the output (chunk < ring): they explain failures */
        if (used + (size_t)got > sizeof ring) {
            size_t drop = used + (size_t)got - sizeof ring;
            memmove(ring, ring + drop, used - drop);
            used -= drop;
        }
        memcpy(ring + used, chunk, (size_t)got);
        used += (size_t)got;
    }
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (out && out_n) {
        size_t keep = used < out_n - 1 ? used : out_n - 1;
        memcpy(out, ring + used - keep, keep);
        out[keep] = '\0';
        for (char *c = out; *c; c++)
            if (*c == '\n')
                *c = ' ';
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Creates the missing parents of path (mode 0755, so the server user can pass through). */
static sm_code make_parents(const char *path, sm_err *err)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return sm_err_set(err, SM_EIO, "cannot create %s: %s", p, strerror(errno));
        *s = '/';
    }
    return SM_OK;
}

static sm_code make_dir_for_server(const char *dir, sm_err *err)
{
    sm_code prc = make_parents(dir, err);
    if (prc != SM_OK)
        return prc;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return sm_err_set(err, SM_EIO, "cannot create %s: %s", dir, strerror(errno));
    server_account acct;
    sm_code rc = server_user(&acct, err);
    if (rc != SM_OK)
        return rc;
    if (acct.name && chown(dir, acct.uid, acct.gid) != 0)
        return sm_err_set(err, SM_EIO, "cannot give %s to %s: %s", dir, acct.name, strerror(errno));
    if (chmod(dir, 0700) != 0)
        return sm_err_set(err, SM_EIO, "cannot chmod %s: %s", dir, strerror(errno));
    return SM_OK;
}

/* As root, the server user must be able to reach the data folder through its parents. */
static sm_code check_reachable(const char *dir, sm_err *err)
{
    if (geteuid() != 0)
        return SM_OK;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", dir);
    for (char *slash = strrchr(path, '/'); slash && slash != path; slash = strrchr(path, '/')) {
        *slash = '\0';
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        if (!(st.st_mode & S_IXOTH))
            return sm_err_set(err, SM_EINVAL,
                              "the private PostgreSQL runs as user `postgres`, which cannot enter "
                              "%s (mode %o); choose a database.data_dir under a folder others may "
                              "enter, e.g. /var/tmp",
                              path, (unsigned)(st.st_mode & 0777));
    }
    return SM_OK;
}

static sm_code absolute_path(const char *dir, char *out, size_t n, sm_err *err)
{
    if (dir[0] == '/') {
        snprintf(out, n, "%s", dir);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return sm_err_set(err, SM_EIO, "getcwd: %s", strerror(errno));
        if ((size_t)snprintf(out, n, "%s/%s", cwd, dir) >= n)
            return sm_err_set(err, SM_EINVAL, "data folder path too long");
    }
    size_t len = strlen(out);
    while (len > 1 && out[len - 1] == '/')
        out[--len] = '\0';
    return SM_OK;
}

static sm_code init_cluster(sm_pgembed *pg, sm_err *err)
{
    char prog[PATH_MAX + 16], out[1024];
    char *argv[] = {prog,    "-D", pg->data_dir, "-U",          SM_PG_USER, "-A",
                    "trust", "-E", "UTF8",       "--no-locale", NULL};
    snprintf(prog, sizeof prog, "%s/initdb", pg->bindir);
    sm_log(SM_LOG_INFO, "creating private PostgreSQL cluster", "data", pg->data_dir, NULL);
    int st = run_prog(argv, out, sizeof out);
    if (st != 0)
        return sm_err_set(err, SM_EDB, "initdb %s failed (status %d): %s", pg->data_dir, st, out);
    char conf[PATH_MAX + 32];
    snprintf(conf, sizeof conf, "%s/postgresql.conf", pg->data_dir);
    FILE *f = fopen(conf, "a");
    if (!f)
        return sm_err_set(err, SM_EIO, "cannot append to %s: %s", conf, strerror(errno));
    fprintf(f,
            "\n# stepmark private cluster: unix socket only, inside the data folder\n"
            "listen_addresses = ''\n"
            "unix_socket_directories = '%s/run'\n"
            "port = " SM_PG_PORT "\n"
            "max_connections = 200\n"
            "fsync = on\n"
            "synchronous_commit = on\n",
            pg->data_dir);
    if (fclose(f) != 0)
        return sm_err_set(err, SM_EIO, "cannot write %s", conf);
    char run[PATH_MAX + 8];
    snprintf(run, sizeof run, "%s/run", pg->data_dir);
    return make_dir_for_server(run, err);
}

static int server_running(const sm_pgembed *pg)
{
    char prog[PATH_MAX + 16];
    char *argv[] = {prog, "status", "-D", (char *)pg->data_dir, NULL};
    snprintf(prog, sizeof prog, "%s/pg_ctl", pg->bindir);
    return run_prog(argv, NULL, 0) == 0;
}

static sm_code ensure_database(sm_pgembed *pg, sm_err *err)
{
    char url[sizeof pg->url];
    snprintf(url, sizeof url,
             "host='%s/run' port=" SM_PG_PORT " user=" SM_PG_USER " dbname=postgres", pg->data_dir);
    PGconn *conn;
    sm_code rc = sm_db_connect(url, &conn, err);
    if (rc != SM_OK)
        return rc;
    PGresult *r = PQexec(conn, "CREATE DATABASE " SM_PG_DB);
    ExecStatusType st = PQresultStatus(r);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (st != PGRES_COMMAND_OK && !(state && strcmp(state, "42P04") == 0)) /* duplicate_database */
        rc = sm_err_set(err, SM_EDB, "cannot create database " SM_PG_DB ": %s",
                        PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(conn);
    return rc;
}

static sm_code prepare(const char *data_dir, sm_pgembed **out, sm_err *err)
{
    *out = NULL;
    sm_pgembed *pg = calloc(1, sizeof *pg);
    if (!pg)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    sm_code rc = absolute_path(data_dir, pg->data_dir, sizeof pg->data_dir, err);
    if (rc == SM_OK)
        rc = find_bindir(pg->bindir, sizeof pg->bindir, err);
    if (rc == SM_OK) {
        struct sockaddr_un sa;
        if (strlen(pg->data_dir) + strlen("/run/.s.PGSQL." SM_PG_PORT) >= sizeof sa.sun_path)
            rc = sm_err_set(err, SM_EINVAL,
                            "data folder path %s is too long for a unix socket (max %zu bytes)",
                            pg->data_dir, sizeof sa.sun_path - 20);
    }
    if (rc != SM_OK) {
        free(pg);
        return rc;
    }
    snprintf(pg->url, sizeof pg->url,
             "host='%s/run' port=" SM_PG_PORT " user=" SM_PG_USER " dbname=" SM_PG_DB,
             pg->data_dir);
    *out = pg;
    return SM_OK;
}

sm_code sm_pgembed_start(const char *data_dir, sm_pgembed **out, sm_err *err)
{
    sm_pgembed *pg;
    sm_code rc = prepare(data_dir, &pg, err);
    if (rc != SM_OK)
        return rc;
    char version_file[PATH_MAX + 16];
    snprintf(version_file, sizeof version_file, "%s/PG_VERSION", pg->data_dir);
    rc = check_reachable(pg->data_dir, err);
    if (rc == SM_OK && access(version_file, F_OK) != 0) {
        rc = make_dir_for_server(pg->data_dir, err);
        if (rc == SM_OK)
            rc = init_cluster(pg, err);
    }
    if (rc == SM_OK && !server_running(pg)) {
        char prog[PATH_MAX + 16], log[PATH_MAX + 16], out_text[1024];
        char *argv[] = {prog, "start", "-D", pg->data_dir, "-l", log, "-w", "-t", "60", NULL};
        snprintf(prog, sizeof prog, "%s/pg_ctl", pg->bindir);
        snprintf(log, sizeof log, "%s/server.log", pg->data_dir);
        int st = run_prog(argv, out_text, sizeof out_text);
        if (st != 0)
            rc = sm_err_set(err, SM_EDB, "cannot start PostgreSQL in %s (status %d): %s; see %s",
                            pg->data_dir, st, out_text, log);
        else
            pg->started_here = 1;
        if (rc == SM_OK)
            sm_log(SM_LOG_INFO, "private PostgreSQL started", "data", pg->data_dir, NULL);
    }
    if (rc == SM_OK)
        rc = ensure_database(pg, err);
    if (rc != SM_OK) {
        if (pg->started_here) {
            sm_err ignored;
            sm_pgembed_stop(&pg, &ignored);
        }
        free(pg);
        return rc;
    }
    *out = pg;
    return SM_OK;
}

const char *sm_pgembed_url(const sm_pgembed *pg)
{
    return pg->url;
}

static sm_code stop_server(const sm_pgembed *pg, sm_err *err)
{
    char prog[PATH_MAX + 16], out_text[1024];
    char *argv[] = {prog, "stop", "-D", (char *)pg->data_dir, "-m", "fast", "-w", "-t", "60", NULL};
    snprintf(prog, sizeof prog, "%s/pg_ctl", pg->bindir);
    if (!server_running(pg))
        return SM_OK;
    int st = run_prog(argv, out_text, sizeof out_text);
    if (st != 0)
        return sm_err_set(err, SM_EDB, "cannot stop PostgreSQL in %s: %s", pg->data_dir, out_text);
    sm_log(SM_LOG_INFO, "private PostgreSQL stopped", "data", pg->data_dir, NULL);
    return SM_OK;
}

sm_code sm_pgembed_stop(sm_pgembed **pgp, sm_err *err)
{
    if (!pgp || !*pgp)
        return SM_OK;
    sm_pgembed *pg = *pgp;
    sm_code rc = pg->started_here ? stop_server(pg, err) : SM_OK;
    free(pg);
    *pgp = NULL;
    return rc;
}

sm_code sm_pgembed_stop_dir(const char *data_dir, sm_err *err)
{
    sm_pgembed *pg;
    sm_code rc = prepare(data_dir, &pg, err);
    if (rc != SM_OK)
        return rc;
    rc = stop_server(pg, err);
    free(pg);
    return rc;
}

void sm_pgembed_detach(sm_pgembed **pg)
{
    if (pg && *pg) {
        free(*pg);
        *pg = NULL;
    }
}
