/* sm_wrun: the running worker. Three threads:
 *   - the connection (the caller's thread): a DEALER socket to the broker (CURVE when
 *     worker.curve.enabled), READY with name/model/device/slots (the broker's credit), a
 *     HEARTBEAT every broker.heartbeat_ms, PROGRESS, RESULT resent until ACKed, FAIL for jobs
 *     that cannot be graded, CANCEL; when the broker is silent for broker.heartbeat_timeout_ms
 *     it reconnects with exponential backoff and announces itself again;
 *   - preparation: the deterministic checks (sandbox, answer comparison), injection scan and
 *     prompt of each new job;
 *   - the engine: a generation backend (sm_gen.h): the local scheduler (continuous batching,
 *     prefix cache) stepping all slots, or with worker.engine: remote an OpenAI-compatible
 *     server, whose requests run on a fourth, HTTP thread.
 * On the first stop request (SIGTERM/SIGINT) the worker drains: new JOBs are handed back
 * with a retryable FAIL, in-flight jobs finish and their RESULTs are acknowledged, then it
 * sends DISCONNECT and returns. A second stop request returns at once (DISCONNECT makes the
 * broker requeue what is left). */
#ifndef SM_WRUN_H
#define SM_WRUN_H

#include <signal.h>

#include "sm_config.h"
#include "sm_error.h"

/* Loads the model and tokenizer named by cfg->worker.model (only the tokenizer when
 * worker.engine is remote), then serves until *stop becomes
 * non-zero (the signal handler's counter: 1 = drain, 2 = quit now). */
sm_code sm_wrun(const sm_config *cfg, volatile sig_atomic_t *stop, sm_err *err);

/* The engine version string recorded in results:
 * "<version>+<isa>+<det|fast>+<dtype>+kv<kv dtype>+t<n>". */
void sm_wrun_engine_version(const void *model_summary, char *out, size_t n);

#endif
