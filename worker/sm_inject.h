/* sm_inject: detects student text that addresses the grader instead of answering the
 * assignment (prompt injection): "ignore previous instructions" and its variants, chat role
 * markers (<|im_start|>, "system:" lines, [INST]), fake verdict blocks, and requests for full
 * marks. The text is still graded; a hit only adds a flag so a teacher looks at it. */
#ifndef SM_INJECT_H
#define SM_INJECT_H

#include <stddef.h>

#include "sm_error.h"

#define SM_INJECT_KINDS 4

/* Fills names[0..*n) with the flag names found in text[0, len) (each at most once, in a fixed
 * order): "injection:ignore_instructions", "injection:role_marker", "injection:fake_verdict",
 * "injection:addresses_grader". names must hold SM_INJECT_KINDS entries. text must be UTF-8
 * (SM_EINVAL otherwise). */
sm_code sm_inject_scan(const char *text, size_t len, const char *names[SM_INJECT_KINDS], int *n,
                       sm_err *err);

#endif
