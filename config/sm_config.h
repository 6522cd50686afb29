/* sm_config: the stepmark configuration, read from one YAML file (config/stepmark.yaml is the
 * commented example) by every program. Everything optional has a default (sm_config_defaults).
 * Unknown keys, wrong types, out-of-range values and malformed YAML are rejected with an
 * SM_ECONFIG error whose message starts with "file:line:column: ". Secrets may come from the
 * environment instead of the file (sm_config_apply_env). */
#ifndef SM_CONFIG_H
#define SM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "sm_error.h"

#define SM_CONFIG_STR 512
#define SM_CONFIG_MAX_KEYS 64

typedef struct sm_sampling_config {
    double temperature;        /* 0 = greedy */
    double top_p;              /* 1 = off */
    int64_t top_k;             /* 0 = off */
    double min_p;              /* 0 = off */
    double repetition_penalty; /* 1 = off */
    int64_t seed;              /* base seed; each job derives its own from it */
} sm_sampling_config;

typedef struct sm_curve_config {
    bool enabled;
    char secret_key_file[SM_CONFIG_STR];   /* this side's secret key (z85), from a file */
    char public_key_file[SM_CONFIG_STR];   /* this side's public key (z85) */
    char server_public_key[SM_CONFIG_STR]; /* for clients/workers: the broker's public key (z85) */
    char allowed_keys_file[SM_CONFIG_STR]; /* replaced by the two below; refused when set */
    char client_keys_file[SM_CONFIG_STR];  /* broker: public keys of clients and subscribers */
    char worker_keys_file[SM_CONFIG_STR];  /* broker: public keys of workers */
    bool allow_insecure_remote;            /* permit non-loopback endpoints without CURVE */
} sm_curve_config;

typedef struct sm_config {
    char path[SM_CONFIG_STR]; /* the file this was read from ("" = defaults only) */

    struct {
        char url[SM_CONFIG_STR];      /* libpq URL; "" = private embedded cluster */
        char data_dir[SM_CONFIG_STR]; /* embedded cluster's data folder */
        int64_t pool_size;            /* connections for the HTTP side */
    } database;

    struct {
        char client_endpoint[SM_CONFIG_STR];
        char worker_endpoint[SM_CONFIG_STR];
        char event_endpoint[SM_CONFIG_STR];
        int64_t heartbeat_ms;         /* worker heartbeat interval */
        int64_t heartbeat_timeout_ms; /* silence after which a worker is considered lost */
        int64_t lease_ms;             /* how long a job lease lasts without progress */
        int64_t max_attempts;         /* attempts before a job is dead */
        int64_t retry_backoff_ms;     /* first retry delay; doubles per attempt */
        int64_t max_body_bytes;       /* largest JSON body accepted */
        int64_t group_commit_us;      /* extra wait before a group commit (0: none) */
        int64_t max_worker_slots;     /* most jobs one worker may hold (READY slots are capped) */
        int64_t max_job_ms;           /* longest a job may stay leased, heartbeats or not */
        int64_t peer_error_replies;   /* ERROR replies to one worker-side peer per 10 s */
        int64_t peer_ban_errors;      /* bad messages per 10 s after which a peer is banned */
        int64_t peer_ban_ms;          /* how long a banned peer's messages are dropped */
        sm_curve_config curve;
    } broker;

    struct {
        char name[SM_CONFIG_STR]; /* worker identity; "" = hostname-pid */
        char broker_endpoint[SM_CONFIG_STR];
        char model[SM_CONFIG_STR]; /* HF directory or GGUF file */
        char device[16];           /* "cpu" or "cuda" */
        char dtype[16];            /* "f32", "bf16", "q8_0", "q4_0" */
        char kv_dtype[16];         /* "auto" (the engine's choice), "f32", "f16", "q8_0" */
        char on_memory_short[16];  /* "refuse" or "lower_slots": KV cache larger than memory */
        char isa[16];              /* "auto" (this CPU's default), or a kernel variant */
        int64_t threads;           /* 0 = all cores */
        int64_t slots;             /* sequences decoded together */
        int64_t max_prompt_tokens;
        int64_t max_new_tokens;
        int64_t samples; /* self-consistency samples per submission */
        bool prefix_cache;
        bool deterministic;
        double injection_margin; /* masked and unmasked scores differ: over this x max_score */
        sm_sampling_config sampling;
        char prompt_dir[SM_CONFIG_STR]; /* folder of prompt template overrides; "" = built-in */
        char metrics_address[SM_CONFIG_STR]; /* Prometheus /metrics listener of the worker */
        int64_t metrics_port;                /* 0 = no metrics listener */
        sm_curve_config curve;
        char engine[16]; /* "local" (the CPU engine) or "remote" (an OpenAI-compatible server) */
        struct {
            char base_url[SM_CONFIG_STR];     /* e.g. http://gpu1:8000/v1 */
            char api_key_file[SM_CONFIG_STR]; /* file holding the bearer key; "" = none */
            char model[SM_CONFIG_STR];        /* name sent as "model"; "" = left out */
            int64_t max_concurrency;          /* requests in flight at once */
            int64_t timeout_ms;               /* one request, connecting included */
            int64_t retries;                  /* after 429, 5xx or connection errors */
        } remote;
    } worker;

    struct {
        char bwrap[SM_CONFIG_STR];
        int64_t cpu_seconds;
        int64_t wall_seconds;
        int64_t memory_mb;
        int64_t max_processes;
        int64_t max_output_bytes;
        bool use_cgroups;
        int64_t memory_total_mb; /* memory of a whole test run; 0 = memory_mb */
        int64_t tmpfs_mb;        /* size of each tmpfs in the sandbox (/tmp, /dev/shm) */
    } sandbox;

    struct {
        bool enabled;
        char address[64];
        int64_t port;
        int64_t threads;
        char static_dir[SM_CONFIG_STR]; /* "" = the files built into the daemon */
        int64_t login_attempts_per_minute;
        int64_t max_connections;             /* open connections in total */
        int64_t max_connections_per_address; /* open connections from one client address */
        int64_t connection_timeout_seconds;  /* an idle connection is closed after this */
        char tls_cert_file[SM_CONFIG_STR];   /* PEM certificate (chain): serve HTTPS */
        char tls_key_file[SM_CONFIG_STR];    /* PEM private key of tls_cert_file */
        bool behind_tls_proxy; /* plain HTTP on a non-loopback address: a TLS proxy is in front */
        char public_url[SM_CONFIG_STR]; /* how students reach this server, for their feedback
                                           links; "" = http(s)://address:port */
    } http;

    struct {
        bool enabled;             /* stepmarkd delivers webhooks (docs/webhooks.md) */
        int64_t timeout_ms;       /* one delivery request, connecting included */
        int64_t first_backoff_ms; /* wait after an event's first failed attempt */
        int64_t max_backoff_ms;   /* the doubling waits stop growing here */
        int64_t poll_ms;          /* how often the outbox is checked for new events */
        int64_t log_days;         /* delivery log rows are kept this many days */
    } webhooks;

    struct {
        int64_t key_grace_days;       /* a rotated-out tool key stays in the JWKS this long */
        int64_t clock_skew_seconds;   /* leeway on an id_token's exp and iat */
        int64_t jwks_refetch_seconds; /* a platform's JWKS is refetched at most this often */
    } lti;

    struct {
        char level[16];
        char file[SM_CONFIG_STR]; /* "" = stderr */
    } logging;
} sm_config;

/* Fills cfg with the defaults of every setting. */
void sm_config_defaults(sm_config *cfg);

/* Reads path over the defaults. On error returns SM_ECONFIG (or SM_EIO for an unreadable file)
 * and err->msg is "path:line:column: message". */
sm_code sm_config_load(sm_config *cfg, const char *path, sm_err *err);

/* Parses YAML text already in memory (name is used in messages). */
sm_code sm_config_parse(sm_config *cfg, const char *name, const char *text, size_t len,
                        sm_err *err);

/* Applies environment overrides: STEPMARK_DATABASE_URL, STEPMARK_LOG_LEVEL,
 * STEPMARK_BROKER_SECRET_KEY_FILE, STEPMARK_WORKER_SECRET_KEY_FILE, STEPMARK_HTTP_PORT. */
sm_code sm_config_apply_env(sm_config *cfg, sm_err *err);

/* The usual sequence for a program: defaults, then the file (path, or $STEPMARK_CONFIG, or
 * nothing), then the environment; finally sets up logging. */
sm_code sm_config_init(sm_config *cfg, const char *path, sm_err *err);

/* Exit status programs use for a rejected configuration. */
#define SM_EXIT_CONFIG 2

#endif
