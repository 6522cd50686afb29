/* peers: the broker's account of misbehaving peers on the worker endpoint, by ROUTER
 * identity. Each bad message (malformed, refused, from an unregistered peer) is counted in a
 * 10-second window: past error_replies in a window the broker stops answering that peer, and
 * past ban_errors bannable ones it bans the peer for ban_ms (its messages are dropped unread
 * and a registered worker is let go). The table has a fixed size: a flood of fresh identities
 * evicts the stalest entries rather than growing memory. */
#ifndef SM_PEERS_H
#define SM_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"

#define SM_PEERS_WINDOW_MS 10000

typedef struct sm_peer_limits {
    int64_t error_replies; /* replies to bad messages per window */
    int64_t ban_errors;    /* bannable bad messages per window before a ban */
    int64_t ban_ms;        /* how long a ban lasts */
} sm_peer_limits;

typedef enum sm_peer_verdict {
    SM_PEER_REPLY,  /* answer this bad message */
    SM_PEER_QUIET,  /* over the reply cap: drop it silently */
    SM_PEER_BANNED, /* this message got the peer banned (returned once per ban) */
} sm_peer_verdict;

typedef struct sm_peers sm_peers;

sm_code sm_peers_new(const sm_peer_limits *limits, sm_peers **out, sm_err *err);
void sm_peers_free(sm_peers **p);

/* Counts one bad message from ident at now_ms (bannable: whether it counts towards a ban;
 * messages an honest peer may send in numbers, such as PROGRESS of a job the broker no longer
 * knows, only count towards the reply cap). */
sm_peer_verdict sm_peers_bad(sm_peers *p, const unsigned char *ident, size_t len, bool bannable,
                             int64_t now_ms);

/* Whether ident is banned at now_ms; counts the message as dropped when it is. */
bool sm_peers_banned(sm_peers *p, const unsigned char *ident, size_t len, int64_t now_ms);

/* Messages dropped from banned peers, and bans, since the start. */
uint64_t sm_peers_dropped(const sm_peers *p);
uint64_t sm_peers_bans(const sm_peers *p);

#endif
