/* sm_prompt: the grading prompt templates (one per assignment kind: math, proof, code), each
 * with a version string recorded in every grading, built in or overridden by files
 * <kind>.txt in worker.prompt_dir; and the construction of a prompt's token ids.
 *
 * A prompt is a chat of a system message and one user message. The user message starts with
 * the template's assignment part (statement, rubric, reference solution, answer key): that
 * part, with the system message, is the same for every submission of an assignment and forms
 * the shared prefix the worker caches. Then come the deterministic check results and the
 * student's work between two delimiter lines carrying a nonce derived from the work itself
 * (so the work cannot contain its own closing delimiter), and the final instruction.
 * Every message content is encoded as plain text (sm_chat_encode), so special tokens typed by
 * a student stay text.
 *
 * Template file format (docs/worker.md):
 *   version: <version string>
 *   [system]
 *   ...text...
 *   [user]
 *   ...text with {{placeholders}}...
 * Placeholders: title, statement, rubric, reference_solution, answer_key, language,
 * max_score, verdict_format. An unknown placeholder is an error. When the rubric is a list of
 * criteria, {{rubric}} renders them one per line ("- [id] (2 points) description; evidence from
 * checks: ...") and {{verdict_format}} asks for their CRITERION/EVIDENCE lines. */
#ifndef SM_PROMPT_H
#define SM_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"
#include "sm_rubric.h"
#include "sm_tokenizer.h"

typedef enum sm_kind { SM_KIND_MATH = 0, SM_KIND_PROOF, SM_KIND_CODE, SM_KINDS } sm_kind;

/* "math", "proof", "code" -> kind; SM_EINVAL otherwise. */
sm_code sm_kind_parse(const char *name, sm_kind *out, sm_err *err);
const char *sm_kind_name(sm_kind k);

typedef struct sm_prompt_set sm_prompt_set;

/* The built-in templates, each replaced by dir/<kind>.txt when dir is not NULL/"" and that
 * file exists. SM_ECONFIG for a malformed override (message names the file). */
sm_code sm_prompt_set_load(const char *dir, sm_prompt_set **out, sm_err *err);
void sm_prompt_set_free(sm_prompt_set **set);
const char *sm_prompt_version(const sm_prompt_set *set, sm_kind kind);

/* What a prompt is built from. NULL strings count as empty. */
typedef struct sm_prompt_input {
    sm_kind kind;
    const char *title;
    const char *statement;
    const char *rubric;        /* the free-text rubric */
    const sm_rubric *criteria; /* NULL, or a rubric; with criteria (n > 0) they replace it */
    const char *const *criteria_checks; /* NULL, or per criterion the outcome of its checks
                                         * (an entry NULL when it lists none) */
    const char *reference_solution;
    const char *answer_key;
    const char *language;
    double max_score;
    const char *checks; /* the check results as text ("" = none were run) */
    const char *student;
} sm_prompt_input;

typedef struct sm_prompt {
    char *system; /* rendered system message */
    char *user;   /* rendered user message */
    int32_t *ids; /* the whole prompt, ending with the assistant's turn opening */
    size_t n_ids;
    size_t n_prefix; /* leading ids equal for every submission of the assignment */
    char nonce[17];  /* the delimiter nonce */
    const char *version;
} sm_prompt;

/* Builds the prompt. SM_EINVAL for student text that is not UTF-8. */
sm_code sm_prompt_build(const sm_prompt_set *set, const sm_tokenizer *tok,
                        const sm_prompt_input *in, sm_prompt *out, sm_err *err);
void sm_prompt_clear(sm_prompt *p);

/* The ids that continue a conversation after the assistant's output to ask once more for a
 * valid verdict block: "<|im_end|>\n<|im_start|>user\n...<|im_end|>\n<|im_start|>assistant\n".
 * problem is the parser's message; criteria (may be NULL) as in sm_verdict_instructions. */
sm_code sm_prompt_repair(const sm_tokenizer *tok, const char *problem, double max_score,
                         const sm_rubric *criteria, int32_t **ids, size_t *n_ids, sm_err *err);

#endif
