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
#include "sm_gen.h"
#include "sm_inject.h"
#include "sm_prompt.h"
#include "sm_sandbox.h"
#include "sm_sched.h"
#include "sm_verdict.h"

/* The repair answer's tokens count within the job's max_new_tokens: the critique may use
 * max_new_tokens less a reserve (a quarter, at least 1 and at most SM_GRADE_REPAIR_TOKENS)
 * and the repair gets what the critique left. The engine's context also keeps
 * SM_GRADE_REPAIR_TOKENS spare for the repair request's own ids. */
#define SM_GRADE_REPAIR_TOKENS 512
#define SM_GRADE_LOW_AGREEMENT 0.6 /* confidence below this flags the grading */

/* What the deterministic checks say about a submission. */
typedef enum sm_check_verdict {
    SM_CHECKS_NONE = 0,     /* no evidence: no tests, no answer key, or the sandbox was down */
    SM_CHECKS_FAILED,       /* some test failed, or the final answer is wrong or missing */
    SM_CHECKS_PASSED,       /* every test passed, or the final answer equals the key */
    SM_CHECKS_NOT_COMPILED, /* the program did not compile */
} sm_check_verdict;

/* What a provisional score from the checks is computed from. */
typedef enum sm_provisional_basis {
    SM_BASIS_NONE = 0,   /* the checks cannot score this submission */
    SM_BASIS_TESTS,      /* the tests' points earned / total x max_score */
    SM_BASIS_ANSWER_KEY, /* the final answer: max_score when right, 0 when wrong */
} sm_provisional_basis;

/* The checks' outcome in numbers, kept for the provisional score. */
typedef struct sm_check_tally {
    sm_check_verdict verdict;
    sm_provisional_basis basis;
    int tests_passed, tests_total;
    double points_earned, points_total; /* the tests' points (each test 1 unless given) */
    bool answer_found;                  /* math: a final answer was found in the text */
} sm_check_tally;

/* A score from the checks alone, offered to the teacher when the model gives none. */
typedef struct sm_provisional {
    double score; /* rounded to 2 decimals, within [0, max_score] */
    sm_provisional_basis basis;
    char detail[256]; /* how it was computed, for the teacher */
} sm_provisional;

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
    double max_score; /* with criteria: their total */
    sm_rubric rubric; /* assignment.rubric: free text (borrowed from body) or criteria */
    uint64_t seed;
    sm_sampler_params sp;
    int64_t max_new;
    int n_samples;
    json_t *checks;       /* RESULT "checks" entries */
    char *checks_text;    /* the checks as the prompt shows them */
    sm_check_tally tally; /* the checks' outcome */
    bool checks_unavailable;
    char unavailable[SM_ERR_MSG_MAX]; /* why the model could not grade ("" when it could) */
    const char *injection[4];
    int n_injection;
    sm_prompt prompt;
    sm_sample *s; /* n_samples of the main pass, then n_masked of the masked pass */
    int n_done;   /* of both passes */
    /* the masked pass (sm_masked.c): the student text graded again without the spans that
     * injection patterns matched (widened to their sentences), with the same seeds */
    int n_masked;                     /* its samples: n_samples, or 0 without a masked pass */
    sm_inject_span *spans;            /* in the student text as the prompt shows it */
    int n_spans;                      /* 0: no masked pass */
    char *masked_text;                /* that text with the spans replaced by SM_INJECT_MARKER */
    sm_prompt mprompt;                /* the prompt built around masked_text */
    char masked_skip[SM_ERR_MSG_MAX]; /* why the masked pass did not run ("" when it did) */
    int64_t t_received_ms, checks_ms, t_gen_ms, t_done_ms;
    /* a remote server's answers (sm_gen_remote.c): the model it named and its
     * system_fingerprint(s), recorded as the RESULT's model in place of the local one */
    bool remote;
    char server_model[256];
    char fingerprint[256]; /* "unreported" when the server gave none; distinct ones joined */
} sm_job;

/* Reads a JOB body (taking a reference). SM_EINVAL for a body that lacks what grading needs. */
sm_code sm_job_new(const sm_grader *g, json_t *body, sm_job **out, sm_err *err);
void sm_job_free(sm_job **job);

/* Runs the deterministic checks (may take seconds: sandboxed compiles and runs). A sandbox
 * that cannot run is recorded as a failed check and flagged, not an error. */
sm_code sm_job_run_checks(sm_job *job, sm_err *err);

/* Scans for injection and builds the prompt. SM_ELIMIT when longer than max_prompt_tokens. */
sm_code sm_job_prepare(sm_job *job, sm_err *err);

/* The masked pass (sm_masked.c): when spans of the student text in matched injection
 * patterns, widens them, masks them and builds a second prompt from in (in->student replaced);
 * a masked prompt longer than max_prompt_tokens records masked_skip instead. Called by
 * sm_job_prepare after the main prompt. */
sm_code sm_job_prepare_masked(sm_job *job, const sm_prompt_input *in, sm_err *err);

/* Samples of both passes, and the tokens generated by the finished ones (for progress). */
int sm_job_total_samples(const sm_job *job);
int64_t sm_job_done_tokens(const sm_job *job);

/* Queues the job's samples on the generation backend: the main pass's (tags 0..n_samples-1,
 * seeds seed + i), then the masked pass's (tags n_samples + i, the same seeds seed + i). */
sm_code sm_job_submit(sm_job *job, sm_gen_backend *gen, sm_err *err);

/* The backend's done callback (user is the sm_job): parses the phase, asks for one repair. */
sm_code sm_job_task_done(void *user, const sm_gen_result *r, sm_gen_next *next, sm_err *err);

/* Records a sample's outputs directly (what the callback does with a finished phase); for tests
 * of the parsing and result assembly with fixed model outputs. */
sm_code sm_job_set_sample(sm_job *job, int sample, const char *text, sm_finish finish,
                          const char *repair_text, int64_t tokens, sm_err *err);

bool sm_job_complete(const sm_job *job);

/* Marks the job as one the model cannot grade (why: e.g. the prompt is longer than
 * max_prompt_tokens): every sample counts as done without text, and the RESULT is
 * needs_review with the flag model_unavailable and, where the checks allow, a provisional
 * score. */
void sm_job_set_unavailable(sm_job *job, const char *why);

/* The tokens the critique may generate, and those left for the repair after it used `used`
 * (0: no repair possible). Together never more than max_new. */
int64_t sm_grade_critique_budget(int64_t max_new);
int64_t sm_grade_repair_budget(int64_t max_new, int64_t used);

/* The RESULT body (new reference); in sm_result.c with its parts (sm_result.h). SM_ENOMEM
 * when an allocation fails. */
sm_code sm_job_result(sm_job *job, json_t **out, sm_err *err);

/* Milliseconds of a monotonic clock. */
int64_t sm_mono_ms(void);

#endif
