/* sm_grade: one grading job from JOB body to RESULT body. It reads the job (assignment,
 * submission, seed, sampling), runs the deterministic checks (sandboxed tests for code, the
 * answer comparison for math), scans the student text for prompt injection, builds the
 * prompt, hands k samples to the scheduler, reacts to each finished sample (strict verdict
 * parsing, one repair request when the block is missing or invalid), and finally assembles
 * the RESULT: per-step majority over the valid samples with agreement, the score (median),
 * confidence, flags, the full reasoning chains, token counts, timings and the identity of
 * everything that determines the output (model hash, engine version, template version,
 * sampling, seed). */
#ifndef SM_GRADE_H
#define SM_GRADE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "sm_config.h"
#include "sm_prompt.h"
#include "sm_sandbox.h"
#include "sm_sched.h"
#include "sm_verdict.h"

#define SM_GRADE_REPAIR_TOKENS 512 /* most tokens of the repair answer */
#define SM_GRADE_LOW_AGREEMENT 0.6 /* confidence below this flags the grading */

/* What every job of one worker shares (all pointers borrowed). */
typedef struct sm_grader {
    const sm_tokenizer *tok;
    const sm_prompt_set *prompts;
    const sm_sandbox_limits *sandbox;
    const sm_config *cfg; /* worker.* defaults: sampling, samples, token limits */
    const char *model_name;
    const char *model_hash;
    const char *engine_version;
} sm_grader;

typedef struct sm_sample {
    char *text;           /* the critique */
    char *repair_request; /* the parser's complaint sent back, NULL when no repair */
    char *repair_text;    /* the answer to it */
    sm_finish finish;     /* how the critique ended */
    int64_t tokens;       /* generated in all phases */
    int64_t prompt_tokens, cached_tokens;
    bool done, valid;
    sm_verdict v;
    char error[SM_ERR_MSG_MAX]; /* why the last attempt was invalid */
} sm_sample;

typedef struct sm_job {
    const sm_grader *g;
    int64_t id;
    json_t *body; /* the JOB body (owned) */
    sm_kind kind;
    double max_score;
    uint64_t seed;
    sm_sampler_params sp;
    int64_t max_new;
    int n_samples;
    json_t *checks;    /* RESULT "checks" entries */
    char *checks_text; /* the checks as the prompt shows them */
    int check_verdict; /* -1 no evidence, 0 checks failed, 1 checks passed, 2 compile failed */
    bool checks_unavailable;
    const char *injection[4];
    int n_injection;
    sm_prompt prompt;
    sm_sample *s;
    int n_done;
    int64_t t_received_ms, checks_ms, t_gen_ms, t_done_ms;
} sm_job;

/* Reads a JOB body (taking a reference). SM_EINVAL for a body that lacks what grading needs. */
sm_code sm_job_new(const sm_grader *g, json_t *body, sm_job **out, sm_err *err);
void sm_job_free(sm_job **job);

/* Runs the deterministic checks (may take seconds: sandboxed compiles and runs). A sandbox
 * that cannot run is recorded as a failed check and flagged, not an error. */
sm_code sm_job_run_checks(sm_job *job, sm_err *err);

/* Scans for injection and builds the prompt. SM_ELIMIT when longer than max_prompt_tokens. */
sm_code sm_job_prepare(sm_job *job, sm_err *err);

/* Queues the job's samples on the scheduler. */
sm_code sm_job_submit(sm_job *job, sm_sched *sched, sm_err *err);

/* The scheduler's done callback (user is the sm_job). */
sm_code sm_job_task_done(void *user, sm_task *task, sm_err *err);

/* Records a sample's outputs directly (what the callback does with a finished phase); for tests
 * of the parsing and result assembly with fixed model outputs. */
sm_code sm_job_set_sample(sm_job *job, int sample, const char *text, sm_finish finish,
                          const char *repair_text, int64_t tokens, sm_err *err);

bool sm_job_complete(const sm_job *job);

/* The RESULT body (new reference). */
sm_code sm_job_result(sm_job *job, json_t **out, sm_err *err);

/* Milliseconds of a monotonic clock. */
int64_t sm_mono_ms(void);

#endif
