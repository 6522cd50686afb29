/* broker: stepmarkd's ZeroMQ side. One poll loop over the client ROUTER, the worker ROUTER,
 * the event PUB and the ZAP handler; SUBMITs are committed in groups; jobs are dispatched by
 * worker credit; leases are extended, expired and handed back. docs/protocol.md is the
 * specification of everything said on these sockets. */
#ifndef SM_BROKER_H
#define SM_BROKER_H

#include <signal.h>

#include "sm_config.h"
#include "sm_error.h"
#include "sm_metrics.h"

typedef struct sm_broker sm_broker;

/* Connects to the database at db_url (already migrated), loads CURVE keys and the allow-list,
 * binds the three endpoints of cfg->broker. metrics may be NULL. Endpoints that are not on
 * loopback need CURVE unless broker.curve.allow_insecure_remote (SM_ECONFIG otherwise). */
sm_code sm_broker_new(const sm_config *cfg, const char *db_url, sm_metrics *metrics,
                      sm_broker **out, sm_err *err);

/* Serves until *stop becomes non-zero, then shuts down gracefully: commits and acknowledges
 * the SUBMITs already received, tells workers to disconnect and hands their leased jobs back
 * to the queue. */
sm_code sm_broker_run(sm_broker *b, volatile sig_atomic_t *stop, sm_err *err);

void sm_broker_free(sm_broker **b);

#endif
