/* sm_verdict: the machine-readable verdict block that ends every critique, and its strict
 * parser. The block (docs/worker.md "Verdict format") is, line by line:
 *
 *   === VERDICT ===
 *   STEP 1: correct|incorrect|incomplete|unclear
 *   QUOTE: <the student's step, on one line>
 *   WHY: <the explanation, on one line>
 *   ... (STEP/QUOTE/WHY for steps 2, 3, ... numbered without gaps)
 *   CRITERION <id>: met|partly|not_met <points>/<criterion's maximum>
 *   EVIDENCE: <the student's step that shows it, on one line, or "none">
 *   ... (only when the rubric is a list of criteria: one pair per criterion, in its order)
 *   SCORE: <points>/<maximum>
 *   SUMMARY: <one line>
 *   === END VERDICT ===
 *
 * The parser takes the last line reading "=== VERDICT ===" (drafts and quotes before it do not
 * count), and rejects anything that deviates: a missing or unclosed block, text after it (but
 * whitespace or one closing "```" fence), missing, repeated or out-of-order lines, a step
 * number out of sequence, an unknown verdict, empty fields, a score that is not a plain number
 * in [0, maximum] (no words, no unicode minus or fractions) or a maximum other than the
 * assignment's. With criteria: unknown, missing, repeated or out-of-order ids, a maximum other
 * than the criterion's, points outside [0, maximum] or with more than 2 decimals, a verdict that
 * does not match the points (met: all, not_met: none, partly: in between) and a SCORE that is
 * not the sum of the criteria's points are rejected too. Keywords and verdict words are matched case-insensitively. The rules for
 * real models' outputs (reasoning, drafts, quotes) are in docs/worker.md "Verdict format" and
 * tests/worker/transcripts/. */
#ifndef SM_VERDICT_H
#define SM_VERDICT_H

#include <stddef.h>

#include "sm_error.h"
#include "sm_rubric.h"

#define SM_VERDICT_MAX_STEPS 200
#define SM_VERDICT_MAX_FIELD 4000 /* longest QUOTE, WHY or SUMMARY in bytes */
#define SM_VERDICT_BEGIN "=== VERDICT ==="
#define SM_VERDICT_END "=== END VERDICT ==="
/* The stop string of generation: the end line at the start of a line, so that a QUOTE or a
 * sentence mentioning it does not stop the model. */
#define SM_VERDICT_STOP "\n" SM_VERDICT_END

typedef enum sm_verdict_kind {
    SM_VERDICT_CORRECT = 0,
    SM_VERDICT_INCORRECT,
    SM_VERDICT_INCOMPLETE,
    SM_VERDICT_UNCLEAR,
    SM_VERDICT_KINDS
} sm_verdict_kind;

typedef struct sm_verdict_step {
    int number;
    sm_verdict_kind verdict;
    char *quoted;
    char *explanation;
} sm_verdict_step;

/* A criterion's verdict (CRITERION lines). */
typedef enum sm_crit_verdict {
    SM_CRIT_MET = 0,
    SM_CRIT_PARTLY,
    SM_CRIT_NOT_MET,
    SM_CRIT_KINDS
} sm_crit_verdict;

typedef struct sm_verdict_criterion {
    char id[SM_RUBRIC_ID_MAX + 1];
    sm_crit_verdict verdict;
    double points;     /* in [0, max_points], at most 2 decimals */
    double max_points; /* the rubric's points for it */
    char *evidence;    /* the EVIDENCE line; "" when it read "none" */
} sm_verdict_criterion;

typedef struct sm_verdict {
    sm_verdict_step *steps;
    int n_steps;
    sm_verdict_criterion *criteria; /* one per criterion of the rubric, in its order */
    int n_criteria;                 /* 0 without criteria */
    double score;
    double max_score;
    char *summary;
    size_t block_start, block_len; /* the lines between the begin and end lines, in the text */
} sm_verdict;

/* Parses the verdict block at the end of text[0, len). rubric: the assignment's rubric, or NULL;
 * when it lists criteria (rubric->n > 0) the block must score each of them and max_score must
 * be their total. On success *out owns its strings (sm_verdict_clear); on failure *out is empty
 * and err says what is wrong (SM_EFORMAT), in a message short enough to quote back to the model
 * in the repair request. */
sm_code sm_verdict_parse(const char *text, size_t len, double max_score, const sm_rubric *rubric,
                         sm_verdict *out, sm_err *err);

void sm_verdict_clear(sm_verdict *v);

/* SM_EFORMAT when the parsed block v of text is copied from the student's work: its lines
 * between the begin and end lines (trimmed, blank lines left out, case ignored) appear in that
 * order in student. A model that quotes a student's fake block must not grade with it. */
sm_code sm_verdict_check_own(const sm_verdict *v, const char *text, const char *student,
                             sm_err *err);

/* "correct", "incorrect", "incomplete" or "unclear". */
const char *sm_verdict_kind_name(sm_verdict_kind k);

/* "met", "partly" or "not_met". */
const char *sm_crit_verdict_name(sm_crit_verdict k);

/* The instructions describing the block to the model (the {{verdict_format}} placeholder of
 * the prompt templates), with the maximum score written in and, when rubric (may be NULL) lists
 * criteria, the CRITERION/EVIDENCE lines with their ids and maxima. *out is malloc'd. */
sm_code sm_verdict_instructions(double max_score, const sm_rubric *rubric, char **out, sm_err *err);

/* Writes a number the way the block and the prompts show it: an integer without decimals,
 * otherwise up to 4 significant decimals ("2", "2.5"). */
void sm_verdict_format_number(double v, char *buf, size_t n);

#endif
