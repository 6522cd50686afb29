/* peers: per-identity error windows and bans for the worker endpoint (peers.h). An open
 * addressing table of SM_PEERS_SLOTS entries, probed SM_PEERS_PROBE deep; when a probe finds
 * neither the identity nor a free slot, the least recently seen entry there is reused. */
#include "peers.h"

#include <stdlib.h>
#include <string.h>

#define SM_PEERS_SLOTS 4096
#define SM_PEERS_PROBE 8
#define SM_PEER_IDENT_MAX 255

typedef struct peer {
    unsigned char ident[SM_PEER_IDENT_MAX];
    unsigned char len; /* 0: free */
    int64_t window_start_ms, last_ms, banned_until_ms;
    int64_t errors, bannable;
} peer;

struct sm_peers {
    sm_peer_limits limits;
    peer *slots;
    uint64_t dropped, bans;
};

sm_code sm_peers_new(const sm_peer_limits *limits, sm_peers **out, sm_err *err)
{
    *out = NULL;
    sm_peers *p = calloc(1, sizeof *p);
    if (p)
        p->slots = calloc(SM_PEERS_SLOTS, sizeof *p->slots);
    if (!p || !p->slots) {
        free(p);
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    p->limits = *limits;
    *out = p;
    return SM_OK;
}

void sm_peers_free(sm_peers **p)
{
    if (!p || !*p)
        return;
    free((*p)->slots);
    free(*p);
    *p = NULL;
}

static uint32_t hash(const unsigned char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 16777619u;
    return h;
}

/* Which entry to reuse first: free ones, then unbanned ones, never live bans. */
static int evict_rank(const peer *e, int64_t now_ms)
{
    return e->len == 0 ? 0 : e->banned_until_ms > now_ms ? 2 : 1;
}

/* The entry of ident, or NULL when it has none (create false) or none could be made. */
static peer *lookup(sm_peers *p, const unsigned char *ident, size_t len, bool create,
                    int64_t now_ms)
{
    if (len == 0 || len > SM_PEER_IDENT_MAX)
        return NULL;
    uint32_t h = hash(ident, len);
    peer *spare = NULL;
    for (int k = 0; k < SM_PEERS_PROBE; k++) {
        peer *e = &p->slots[(h + (uint32_t)k) % SM_PEERS_SLOTS];
        if (e->len == len && memcmp(e->ident, ident, len) == 0)
            return e;
        if (!spare || evict_rank(e, now_ms) < evict_rank(spare, now_ms) ||
            (evict_rank(e, now_ms) == evict_rank(spare, now_ms) && e->last_ms < spare->last_ms))
            spare = e;
    }
    if (!create || (spare->len && spare->banned_until_ms > now_ms))
        return NULL; /* never evict a live ban */
    memset(spare, 0, sizeof *spare);
    memcpy(spare->ident, ident, len);
    spare->len = (unsigned char)len;
    spare->window_start_ms = now_ms;
    return spare;
}

sm_peer_verdict sm_peers_bad(sm_peers *p, const unsigned char *ident, size_t len, bool bannable,
                             int64_t now_ms)
{
    peer *e = lookup(p, ident, len, true, now_ms);
    if (!e)
        return SM_PEER_QUIET; /* the table is full of live bans: say nothing */
    e->last_ms = now_ms;
    if (now_ms - e->window_start_ms >= SM_PEERS_WINDOW_MS) {
        e->window_start_ms = now_ms;
        e->errors = 0;
        e->bannable = 0;
    }
    e->errors++;
    if (bannable && ++e->bannable > p->limits.ban_errors) {
        e->banned_until_ms = now_ms + p->limits.ban_ms;
        e->bannable = 0;
        e->errors = 0;
        e->window_start_ms = now_ms;
        p->bans++;
        return SM_PEER_BANNED;
    }
    return e->errors <= p->limits.error_replies ? SM_PEER_REPLY : SM_PEER_QUIET;
}

bool sm_peers_banned(sm_peers *p, const unsigned char *ident, size_t len, int64_t now_ms)
{
    peer *e = lookup(p, ident, len, false, now_ms);
    if (!e || e->banned_until_ms <= now_ms)
        return false;
    e->last_ms = now_ms;
    p->dropped++;
    return true;
}

uint64_t sm_peers_dropped(const sm_peers *p)
{
    return p->dropped;
}

uint64_t sm_peers_bans(const sm_peers *p)
{
    return p->bans;
}
