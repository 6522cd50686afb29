/* sm_inject: detects student text that addresses the grader instead of answering the
 * assignment (prompt injection): "ignore previous instructions" and its variants, chat role
 * markers (<|im_start|>, "system:" lines, [INST]), fake verdict blocks, and requests for full
 * marks. The text is still graded; a hit adds a flag so a teacher looks at it. The spans it
 * matched can be widened to their sentences and masked, so the worker can grade the text a
 * second time without them (the injection-masked score). */
#ifndef SM_INJECT_H
#define SM_INJECT_H

#include <stddef.h>

#include "sm_error.h"

#define SM_INJECT_KINDS 4
#define SM_INJECT_MAX_SPANS 64  /* matches kept per text (more are flagged, not kept) */
#define SM_INJECT_WIDEN_MAX 240 /* bytes a span may grow on each side to reach its sentence */
/* What replaces a masked span in the text the model reads the second time. */
#define SM_INJECT_MARKER "[removed: text addressed to the grader]"

/* Fills names[0..*n) with the flag names found in text[0, len) (each at most once, in a fixed
 * order): "injection:ignore_instructions", "injection:role_marker", "injection:fake_verdict",
 * "injection:addresses_grader". names must hold SM_INJECT_KINDS entries. text must be UTF-8
 * (SM_EINVAL otherwise). */
sm_code sm_inject_scan(const char *text, size_t len, const char *names[SM_INJECT_KINDS], int *n,
                       sm_err *err);

/* A byte range [start, end) of the text, and the pattern (0..SM_INJECT_KINDS-1) that matched. */
typedef struct sm_inject_span {
    size_t start, end;
    int kind;
} sm_inject_span;

/* The flag name of pattern kind ("injection:..."), "" when out of range. */
const char *sm_inject_kind_name(int kind);

/* Every match of every pattern in text[0, len) into spans[0..*n) (at most max, in pattern
 * order; spans on UTF-8 character boundaries). SM_EINVAL when text is not UTF-8. */
sm_code sm_inject_find(const char *text, size_t len, sm_inject_span *spans, int max, int *n,
                       sm_err *err);

/* Puts spans[0, n) in order and makes them disjoint: each is clamped to [0, len) and moved out
 * to whole UTF-8 characters; overlapping spans, touching spans and spans separated only by
 * white space become one (keeping the lower kind); empty spans are dropped. Returns the new
 * count. */
int sm_inject_normalize(const char *text, size_t len, sm_inject_span *spans, int n);

/* Widens each span to the sentence around it (back to the start of its line or the character
 * after ". ", "! ", "? "; forward to the end of its line or through the next '.', '!', '?'
 * followed by white space), never more than SM_INJECT_WIDEN_MAX bytes each way (a side with
 * no boundary that near stays where it was), then normalizes. Returns the new count. */
int sm_inject_widen(const char *text, size_t len, sm_inject_span *spans, int n);

/* text with every span of spans[0, n) (normalized first, on a copy) replaced by marker: a new
 * NUL-terminated string in *out (the caller frees it). */
sm_code sm_inject_mask(const char *text, size_t len, const sm_inject_span *spans, int n,
                       const char *marker, char **out, sm_err *err);

#endif
