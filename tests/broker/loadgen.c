/* stepmark-loadgen: the broker's load generator (a benchmark program, not a test). It starts a
 * private PostgreSQL cluster and a real stepmarkd on it, then N concurrent clients (threads,
 * one DEALER socket each, one request in flight each) submit for a fixed time; it prints
 * accepted durable submissions per second and the p50/p99/max ACK latency, then runs pgbench
 * with the same number of clients on the same cluster for a one-row INSERT transaction and
 * prints its TPS and the ratio, so both numbers come from one run on one machine.
 *   stepmark-loadgen [--clients 32] [--seconds 10] [--content-bytes 300]
 *                    [--group-commit-us 0] [--stepmarkd PATH] [--pgbench PATH] [--data DIR]
 */
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include <zmq.h>

#include "sm_client.h"
#include "sm_pgembed.h"

typedef struct worker {
    int n;
    void *zctx; /* shared by all client threads: one I/O thread, not one per client */
    const char *endpoint;
    const char *content;
    volatile int *go, *stop;
    double *lat; /* ms */
    int nlat, cap;
    int errors;
    char run[16];
} worker;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *client_thread(void *arg)
{
    worker *w = arg;
    sm_client_opts o = {.endpoint = w->endpoint, .timeout_ms = 10000, .retries = 0};
    sm_client *c;
    sm_err err;
    if (sm_client_new(w->zctx, &o, &c, &err) != SM_OK) {
        fprintf(stderr, "loadgen: %s\n", err.msg);
        return NULL;
    }
    while (!*w->go)
        usleep(1000);
    for (long i = 0; !*w->stop; i++) {
        char key[64], student[32];
        snprintf(key, sizeof key, "lg-%s-%d-%ld", w->run, w->n, i);
        snprintf(student, sizeof student, "student-%d-%ld", w->n, i % 1000);
        json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "course", "LOAD", "assignment",
                              "a1", "student_ref", student, "idempotency_key", key, "content",
                              w->content, "priority", "batch");
        double t0 = now_s();
        json_t *r;
        sm_code rc = sm_client_call(c, "SUBMIT", b, &r, &err);
        double ms = (now_s() - t0) * 1000;
        json_decref(b);
        json_decref(r);
        if (rc) {
            w->errors++;
            continue;
        }
        if (w->nlat == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 4096;
            w->lat = realloc(w->lat, (size_t)w->cap * sizeof *w->lat);
        }
        w->lat[w->nlat++] = ms;
    }
    sm_client_free(&c);
    return NULL;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static const char *opt(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return def;
}

static int find_pgbench(char *out, size_t n)
{
    glob_t g;
    int found = 0;
    if (glob("/usr/lib/postgresql/*/bin/pgbench", 0, NULL, &g) == 0 && g.gl_pathc > 0) {
        snprintf(out, n, "%s", g.gl_pathv[g.gl_pathc - 1]);
        found = 1;
    }
    globfree(&g);
    return found;
}

/* Runs pgbench and returns its TPS (excluding connection time), or -1. */
static double run_pgbench(const char *pgbench, const char *conninfo, const char *dir, int clients,
                          int seconds, int content_bytes)
{
    PGconn *c = PQconnectdb(conninfo);
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    PQclear(PQexec(c, "DROP TABLE IF EXISTS loadgen_insert"));
    PGresult *r = PQexec(c, "CREATE TABLE loadgen_insert (id bigserial PRIMARY KEY, k text NOT "
                            "NULL, payload text NOT NULL, at timestamptz NOT NULL DEFAULT now())");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    PQfinish(c);
    if (!ok)
        return -1;
    char script[PATH_MAX];
    snprintf(script, sizeof script, "%s/insert.sql", dir);
    FILE *fp = fopen(script, "w");
    if (!fp)
        return -1;
    fprintf(fp,
            "\\set k random(1, 1000000000)\n"
            "INSERT INTO loadgen_insert (k, payload) VALUES (:k, repeat('x', %d));\n",
            content_bytes);
    fclose(fp);
    char cmd[4096], out[PATH_MAX];
    snprintf(out, sizeof out, "%s/pgbench.out", dir);
    snprintf(cmd, sizeof cmd, "'%s' -n -c %d -j 2 -T %d -f '%s' \"%s\" > '%s' 2>&1", pgbench,
             clients, seconds, script, conninfo, out);
    if (system(cmd) != 0) {
        fprintf(stderr, "loadgen: pgbench failed (see %s)\n", out);
        return -1;
    }
    fp = fopen(out, "r");
    double tps = -1;
    char line[512];
    while (fp && fgets(line, sizeof line, fp))
        if (!strncmp(line, "tps = ", 6))
            tps = atof(line + 6);
    if (fp)
        fclose(fp);
    return tps;
}

typedef struct lg_cfg {
    int clients, seconds, content_bytes;
    const char *gc; /* group_commit_us, as given */
    char stepmarkd[PATH_MAX], pgbench[PATH_MAX], data[PATH_MAX];
    bool own_data; /* no --data: the cluster lives in the run's folder */
} lg_cfg;

/* What the clients measured. */
typedef struct lg_result {
    int total, errors;
    double elapsed_s, p50, p99, max; /* latencies in ms */
} lg_result;

/* 0, or the exit code of a bad command line. */
static int parse_cfg(int argc, char **argv, lg_cfg *cfg)
{
    cfg->clients = atoi(opt(argc, argv, "--clients", "32"));
    cfg->seconds = atoi(opt(argc, argv, "--seconds", "10"));
    cfg->content_bytes = atoi(opt(argc, argv, "--content-bytes", "300"));
    cfg->gc = opt(argc, argv, "--group-commit-us", "0");
    if (cfg->clients < 1 || cfg->clients > 1024 || cfg->seconds < 1 || cfg->content_bytes < 1 ||
        cfg->content_bytes > 100000) {
        fprintf(stderr, "loadgen: bad arguments\n");
        return 2;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    snprintf(cfg->stepmarkd, sizeof cfg->stepmarkd, "%s", opt(argc, argv, "--stepmarkd", ""));
    if (!cfg->stepmarkd[0])
        snprintf(cfg->stepmarkd, sizeof cfg->stepmarkd, "%s/stepmarkd", self);
    snprintf(cfg->pgbench, sizeof cfg->pgbench, "%s", opt(argc, argv, "--pgbench", ""));
    if (!cfg->pgbench[0] && !find_pgbench(cfg->pgbench, sizeof cfg->pgbench)) {
        fprintf(stderr, "loadgen: pgbench not found (install postgresql-contrib)\n");
        return 1;
    }
    snprintf(cfg->data, sizeof cfg->data, "%s", opt(argc, argv, "--data", ""));
    cfg->own_data = !cfg->data[0];
    return 0;
}

/* Writes the broker's config into dir and starts stepmarkd on it; its pid, or -1. */
static pid_t start_broker(const lg_cfg *cfg, const char *dir, const char *ep)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/stepmark.yaml", dir);
    FILE *fp = fopen(path, "w");
    if (!fp)
        return -1;
    fprintf(fp,
            "broker:\n  client_endpoint: \"%s\"\n  worker_endpoint: \"ipc://%s/worker\"\n"
            "  event_endpoint: \"ipc://%s/events\"\n  group_commit_us: %s\n"
            "http:\n  enabled: false\nlogging:\n  level: warn\n",
            ep, dir, dir, cfg->gc);
    fclose(fp);
    pid_t broker = fork();
    if (broker == 0) {
        execl(cfg->stepmarkd, cfg->stepmarkd, "--config", path, (char *)NULL);
        _exit(127);
    }
    return broker;
}

/* The course and assignment the clients submit to. */
static bool prepare_course(const char *ep)
{
    sm_client_opts o = {.endpoint = ep, .timeout_ms = 500, .retries = 40};
    sm_client *c = NULL;
    json_t *r;
    sm_err err;
    bool ok = false;
    if (sm_client_new(NULL, &o, &c, &err) != SM_OK ||
        sm_client_call(c, "COURSE_PUT", json_pack("{s:s}", "code", "LOAD"), &r, &err) != SM_OK) {
        fprintf(stderr, "loadgen: broker not answering: %s\n", err.msg);
    } else {
        json_decref(r);
        json_t *a =
            json_pack("{s:s, s:s, s:s, s:s}", "course", "LOAD", "code", "a1", "kind", "proof",
                      "statement", "Prove that the sum of two even numbers is even.");
        if (sm_client_call(c, "ASSIGNMENT_CREATE", a, &r, &err) != SM_OK) {
            fprintf(stderr, "loadgen: %s\n", err.msg);
        } else {
            json_decref(r);
            ok = true;
        }
        json_decref(a);
    }
    sm_client_free(&c);
    return ok;
}

/* cfg->clients threads submitting for cfg->seconds; their counts and latency percentiles. */
static void run_clients(const lg_cfg *cfg, const char *ep, lg_result *res)
{
    char *content = malloc((size_t)cfg->content_bytes + 1);
    for (int i = 0; i < cfg->content_bytes; i++)
        content[i] = "Let n = 2a and m = 2b. Then n + m = 2(a + b). "[i % 47];
    content[cfg->content_bytes] = '\0';
    volatile int go = 0, stop = 0;
    worker *ws = calloc((size_t)cfg->clients, sizeof *ws);
    void *zctx = zmq_ctx_new();
    pthread_t *ts = calloc((size_t)cfg->clients, sizeof *ts);
    for (int i = 0; i < cfg->clients; i++) {
        ws[i] = (worker){
            .n = i, .zctx = zctx, .endpoint = ep, .content = content, .go = &go, .stop = &stop};
        snprintf(ws[i].run, sizeof ws[i].run, "%d", (int)getpid());
        pthread_create(&ts[i], NULL, client_thread, &ws[i]);
    }
    usleep(300000);
    go = 1;
    double t0 = now_s();
    sleep((unsigned)cfg->seconds);
    stop = 1;
    *res = (lg_result){0};
    for (int i = 0; i < cfg->clients; i++) {
        pthread_join(ts[i], NULL);
        res->total += ws[i].nlat;
        res->errors += ws[i].errors;
    }
    res->elapsed_s = now_s() - t0;
    zmq_ctx_term(zctx);
    double *all = malloc(((size_t)res->total + 1) * sizeof *all);
    int k = 0;
    for (int i = 0; i < cfg->clients; i++) {
        memcpy(all + k, ws[i].lat, (size_t)ws[i].nlat * sizeof *all);
        k += ws[i].nlat;
        free(ws[i].lat);
    }
    int total = res->total;
    qsort(all, (size_t)total, sizeof *all, cmp_d);
    res->p50 = total ? all[total / 2] : 0;
    res->p99 = total ? all[(size_t)(total * 0.99)] : 0;
    res->max = total ? all[total - 1] : 0;
    free(all);
    free(ws);
    free(ts);
    free(content);
}

/* Submissions with their job in the database (-1 if the count failed). */
static long long count_rows(const char *url)
{
    PGconn *db = PQconnectdb(url);
    PGresult *q =
        PQexec(db, "SELECT count(*) FROM submission s JOIN job j ON j.submission_id = s.id");
    long long rows = PQresultStatus(q) == PGRES_TUPLES_OK ? atoll(PQgetvalue(q, 0, 0)) : -1;
    PQclear(q);
    PQfinish(db);
    return rows;
}

static void report(const lg_cfg *cfg, const lg_result *res, long long rows, double tps)
{
    double rate = res->total / res->elapsed_s;
    printf("stepmark-loadgen: %d clients, %d s, %d-byte submissions, group_commit_us %s\n",
           cfg->clients, cfg->seconds, cfg->content_bytes, cfg->gc);
    printf("  broker   accepted %d in %.1f s = %.0f submissions/s (errors %d, rows %lld)\n",
           res->total, res->elapsed_s, rate, res->errors, rows);
    printf("           ACK latency p50 %.2f ms  p99 %.2f ms  max %.2f ms\n", res->p50, res->p99,
           res->max);
    if (tps > 0)
        printf("  pgbench  one-row INSERT, %d clients: %.0f TPS\n  ratio    broker / pgbench = "
               "%.0f%%\n",
               cfg->clients, tps, 100 * rate / tps);
    else
        printf("  pgbench  failed\n");
}

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: stepmark-loadgen [--clients 32] [--seconds 10] [--content-bytes 300]\n"
               "         [--group-commit-us 0] [--stepmarkd PATH] [--pgbench PATH] "
               "[--data DIR]\n");
        return 0;
    }
    static lg_cfg cfg;
    int status = parse_cfg(argc, argv, &cfg);
    if (status)
        return status;
    char dir[] = "/tmp/sm-loadgen-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    chmod(dir, 0777);
    if (cfg.own_data)
        snprintf(cfg.data, sizeof cfg.data, "%s/pg", dir);
    sm_pgembed *pg = NULL;
    sm_err err;
    if (sm_pgembed_start(cfg.data, &pg, &err) != SM_OK) {
        fprintf(stderr, "loadgen: %s\n", err.msg);
        status = 1;
    }
    pid_t broker = -1;
    if (status == 0) {
        const char *url = sm_pgembed_url(pg);
        char ep[PATH_MAX];
        snprintf(ep, sizeof ep, "ipc://%s/client", dir);
        setenv("STEPMARK_DATABASE_URL", url, 1);
        broker = start_broker(&cfg, dir, ep);
        status = broker > 0 && prepare_course(ep) ? 0 : 1;
        if (status == 0) {
            lg_result res;
            run_clients(&cfg, ep, &res);
            /* every acknowledged submission is in the database */
            long long rows = count_rows(url);
            kill(broker, SIGTERM);
            waitpid(broker, NULL, 0);
            broker = -1;
            double tps =
                run_pgbench(cfg.pgbench, url, dir, cfg.clients, cfg.seconds, cfg.content_bytes);
            report(&cfg, &res, rows, tps);
            status = rows >= res.total ? 0 : 1;
            if (rows < res.total)
                fprintf(stderr, "loadgen: %lld rows for %d acknowledged submissions!\n", rows,
                        res.total);
        }
    }
    if (broker > 0) {
        kill(broker, SIGTERM);
        waitpid(broker, NULL, 0);
    }
    if (pg && sm_pgembed_stop(&pg, &err) != SM_OK)
        fprintf(stderr, "loadgen: %s\n", err.msg);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (cfg.own_data && system(cmd) != 0)
        fprintf(stderr, "loadgen: cannot remove %s\n", dir);
    return status;
}
