/* lti_passback: stepmarkd's LTI grade passback thread (docs/lti.md, Assignment and Grade
 * Services). It is a consumer of event_outbox with the webhooks' rules (daemon/webhooks.c):
 * one target per LMS course that sent a line items URL and is mapped to a stepmark course; the
 * target's events in (xid, id) order below pg_snapshot_xmin; a session advisory lock per
 * target; a failing post keeps the cursor and is retried after the same jittered exponential
 * backoff (webhooks.* settings); every event handled is logged in lti_passback_log
 * (`stepmark lti log`). For each event it finds the LMS user of the submission's student_ref,
 * finds or creates the assignment's line item, and posts the score the course's policy allows:
 * PendingManual after the model graded, FullyGraded with score and comment on approval (policy
 * on-approval) or on release. */
#ifndef SM_LTI_PASSBACK_H
#define SM_LTI_PASSBACK_H

#include "sm_config.h"
#include "sm_error.h"

typedef struct sm_lti_passback sm_lti_passback;

/* Starts the thread against the database at db_url (already migrated), with cfg->webhooks'
 * timeout, backoff, poll and log settings. */
sm_code sm_lti_passback_start(const sm_config *cfg, const char *db_url, sm_lti_passback **out,
                              sm_err *err);
/* Stops the thread (an attempt in flight is abandoned and retried later) and frees it. */
void sm_lti_passback_stop(sm_lti_passback **p);

#endif
