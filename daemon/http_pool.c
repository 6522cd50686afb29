/* http_pool: a small fixed pool of PostgreSQL connections for the HTTP threads, so that web
 * requests never share the broker's connection. Connections are opened lazily and reopened
 * when found broken. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_internal.h"
#include "sm_db.h"

struct http_pool {
    pthread_mutex_t lock;
    pthread_cond_t freed;
    char *url;
    int size;
    int nfree;      /* connections (or empty slots) available */
    PGconn **slots; /* the available ones; NULL = not yet connected */
};

sm_code http_pool_new(const char *url, int size, http_pool **out, sm_err *err)
{
    if (size < 1)
        size = 1;
    http_pool *p = calloc(1, sizeof *p);
    if (!p)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    p->url = strdup(url ? url : "");
    p->slots = calloc((size_t)size, sizeof *p->slots);
    if (!p->url || !p->slots) {
        free(p->url);
        free(p->slots);
        free(p);
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    }
    p->size = size;
    p->nfree = size;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->freed, NULL);
    *out = p;
    return SM_OK;
}

sm_code http_pool_get(http_pool *p, PGconn **out, sm_err *err)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&p->lock);
    while (p->nfree == 0) {
        if (pthread_cond_timedwait(&p->freed, &p->lock, &deadline) == ETIMEDOUT) {
            pthread_mutex_unlock(&p->lock);
            return sm_err_set(err, SM_ELIMIT, "no free database connection");
        }
    }
    PGconn *c = p->slots[--p->nfree];
    p->slots[p->nfree] = NULL;
    pthread_mutex_unlock(&p->lock);
    if (c && PQstatus(c) != CONNECTION_OK) {
        PQreset(c);
        if (PQstatus(c) != CONNECTION_OK) {
            PQfinish(c);
            c = NULL;
        }
    }
    if (!c) {
        sm_code rc = sm_db_connect(p->url, &c, err);
        if (rc != SM_OK) {
            http_pool_put(p, NULL); /* give the slot back */
            return rc;
        }
    }
    *out = c;
    return SM_OK;
}

void http_pool_put(http_pool *p, PGconn *conn)
{
    if (conn && PQtransactionStatus(conn) != PQTRANS_IDLE) {
        PGresult *r = PQexec(conn, "ROLLBACK");
        PQclear(r);
        if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
            PQfinish(conn);
            conn = NULL;
        }
    }
    pthread_mutex_lock(&p->lock);
    p->slots[p->nfree++] = conn;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->lock);
}

void http_pool_free(http_pool **pp)
{
    if (!pp || !*pp)
        return;
    http_pool *p = *pp;
    for (int i = 0; i < p->nfree; i++)
        if (p->slots[i])
            PQfinish(p->slots[i]);
    pthread_cond_destroy(&p->freed);
    pthread_mutex_destroy(&p->lock);
    free(p->slots);
    free(p->url);
    free(p);
    *pp = NULL;
}
