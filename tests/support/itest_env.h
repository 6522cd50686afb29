/* itest_env: the harness shared by the integration tests (broker_itest, broker_ha, broker_attack,
 * worker_e2e): a throwaway database and folder per case, stepmarkd and sm_testworker
 * processes, clients, raw worker sockets, event subscribers, and CHECK macros that print the
 * broker's log and clean up on failure. */
#ifndef SM_ITEST_ENV_H
#define SM_ITEST_ENV_H

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "sm_client.h"
#include "sm_pgembed.h"
#include "sm_proto.h"

/* A further broker on the same database (tests with several brokers): its own endpoints,
 * configuration and log in E.dir; cleanup() kills it. */
typedef struct itest_broker {
    char name[16];
    char cfg[128], log[128];
    char cep[128], wep[128], eep[128];
    pid_t pid;
} itest_broker;

typedef struct env {
    char dir[64];
    char dbname[64];
    char admin_url[1024];
    char url[1024];
    char cfg[128];
    char cep[128], wep[128], eep[128];
    const char *stepmarkd, *worker, *cli;
    char cli_out[16384]; /* the last cli_run's output */
    pid_t broker;
    pid_t workers[16];
    int nworkers;
    PGconn *db;
    sm_pgembed *pg;          /* pg_restart's own cluster */
    itest_broker *others[4]; /* further brokers (broker_setup) */
    int nothers;
} env;

#define CHECK(cond)                                       \
    do {                                                  \
        if (!(cond))                                      \
            fail("%s:%d: %s", __FILE__, __LINE__, #cond); \
    } while (0)
#define CHECKM(cond, ...)      \
    do {                       \
        if (!(cond))           \
            fail(__VA_ARGS__); \
    } while (0)

extern env E;

void cleanup(void);
void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
long now_ms(void);
void sleep_ms(long ms);
long long q_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Waits until the integer query equals want. */
void wait_for(long long want, long timeout_ms, const char *sql);
/* Writes E.cfg: the test broker settings, extra lines appended to the broker section (a
 * setting in extra replaces the test default of the same name). */
void write_config(const char *extra);
/* A fresh folder, database and configuration for the case name. */
void setup(const char *name, const char *extra);
void connect_db(void);
sm_client *client_with(const char *server, const char *secret, int timeout_ms, int retries);
sm_client *client(void);
pid_t spawn(const char *log, char *const argv[]);
/* Runs `E.cli ARGS... --config E.cfg` (the arguments end with NULL); its output (stdout and
 * stderr) goes to E.cli_out; returns the exit status. */
int cli_run(const char *first, ...) __attribute__((sentinel));
#define CLI_SAID(s) CHECKM(strstr(E.cli_out, s), "the CLI did not say \"%s\":\n%s", s, E.cli_out)
void start_broker(void);
/* Stops the broker with sig and returns its exit status. */
int stop_broker(int sig);
/* Starts sm_testworker with the extra arguments given (NULL-terminated). */
pid_t start_worker(const char *first, ...) __attribute__((sentinel));
int wait_worker(pid_t pid, long timeout_ms);
/* Prepares b, a further broker named name on E's database (after setup()): endpoints
 * ipc://E.dir/NAME-client, -worker, -events, its configuration NAME.yaml (the test defaults
 * and extra, as write_config) and log NAME.log. */
void broker_setup(itest_broker *b, const char *name, const char *extra);
/* Starts b and waits until it answers PING (broker_spawn, then broker_wait). */
void broker_start(itest_broker *b);
void broker_spawn(itest_broker *b);
void broker_wait(itest_broker *b);
/* Stops b with sig and returns its exit status. */
int broker_stop(itest_broker *b, int sig);
/* A client of the broker at client endpoint cep. */
sm_client *client_at(const char *cep);
/* start_worker, connected to the worker endpoint wep (another broker's). */
pid_t start_worker_at(const char *wep, const char *first, ...) __attribute__((sentinel));
json_t *call_ok(sm_client *c, const char *cmd, json_t *body);
sm_code call_err(sm_client *c, const char *cmd, json_t *body, char *msg);
void make_assignment(sm_client *c, const char *course, const char *code, const char *kind,
                     const char *language);
long long submit(sm_client *c, const char *key, const char *priority, bool *dup);
void *sub_socket(void *ctx, const char *prefix);
json_t *next_event(void *s, long timeout_ms, char *topic);
/* Receives the next message of command want on a worker socket, skipping HEARTBEATs. */
json_t *worker_recv(void *s, const char *want);
/* The same, also skipping JOBs when skip_jobs (left unanswered, they go back to the queue when
 * the peer falls silent). */
json_t *worker_recv_skipping(void *s, const char *want, bool skip_jobs);
void worker_send(void *s, const char *cmd, json_t *body);
int free_port(void);

/* One case of a test program, run by name. */
typedef struct itest_case {
    const char *name;
    void (*fn)(void);
} itest_case;

/* main() of a test program: PROG CASE STEPMARKD TESTWORKER STEPMARK. Runs the case named,
 * cleans up, prints "PASS CASE"; exits 2 on a usage error or an unknown case. */
int itest_main(int argc, char **argv, const char *prog, const itest_case *cases, size_t n);

#endif
