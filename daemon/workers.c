/* workers: the registry of workers connected to this broker, by ROUTER identity, with the
 * jobs each one holds (its credit is capacity minus those). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"

sm_worker *sm_workers_find(sm_workers *ws, const unsigned char *ident, size_t len)
{
    for (int i = 0; i < ws->n; i++)
        if (ws->w[i]->ident_len == len && memcmp(ws->w[i]->ident, ident, len) == 0)
            return ws->w[i];
    return NULL;
}

sm_worker *sm_workers_by_owner(sm_workers *ws, const char *owner)
{
    for (int i = 0; i < ws->n; i++)
        if (strcmp(ws->w[i]->owner, owner) == 0)
            return ws->w[i];
    return NULL;
}

sm_worker *sm_workers_add(sm_workers *ws, const unsigned char *ident, size_t len,
                          const char *instance)
{
    if (len > sizeof((sm_worker *)0)->ident)
        return NULL;
    if (ws->n == ws->cap) {
        int cap = ws->cap ? ws->cap * 2 : 16;
        sm_worker **w = realloc(ws->w, (size_t)cap * sizeof *w);
        if (!w)
            return NULL;
        ws->w = w;
        ws->cap = cap;
    }
    sm_worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    memcpy(w->ident, ident, len);
    w->ident_len = len;
    int off = snprintf(w->owner, sizeof w->owner, "%s/", instance);
    for (size_t i = 0; i < len && off + 3 < (int)sizeof w->owner; i++)
        off += snprintf(w->owner + off, sizeof w->owner - (size_t)off, "%02x", ident[i]);
    ws->w[ws->n++] = w;
    return w;
}

void sm_workers_remove(sm_workers *ws, sm_worker *w)
{
    for (int i = 0; i < ws->n; i++)
        if (ws->w[i] == w) {
            ws->w[i] = ws->w[--ws->n];
            free(w->jobs);
            free(w);
            return;
        }
}

bool sm_worker_job_add(sm_worker *w, int64_t job_id)
{
    if (w->njobs == w->capjobs) {
        int cap = w->capjobs ? w->capjobs * 2 : 8;
        sm_wjob *j = realloc(w->jobs, (size_t)cap * sizeof *j);
        if (!j)
            return false;
        w->jobs = j;
        w->capjobs = cap;
    }
    w->jobs[w->njobs++] = (sm_wjob){job_id, 0, 0};
    return true;
}

sm_wjob *sm_worker_job_find(sm_worker *w, int64_t job_id)
{
    for (int i = 0; i < w->njobs; i++)
        if (w->jobs[i].id == job_id)
            return &w->jobs[i];
    return NULL;
}

bool sm_worker_job_remove(sm_worker *w, int64_t job_id)
{
    for (int i = 0; i < w->njobs; i++)
        if (w->jobs[i].id == job_id) {
            w->jobs[i] = w->jobs[--w->njobs];
            return true;
        }
    return false;
}

void sm_worker_done_add(sm_worker *w, int64_t job_id)
{
    w->recent_done[w->recent_next] = job_id;
    w->recent_next = (w->recent_next + 1) % SM_RECENT_DONE;
    if (w->nrecent < SM_RECENT_DONE)
        w->nrecent++;
}

bool sm_worker_done_find(const sm_worker *w, int64_t job_id)
{
    for (int i = 0; i < w->nrecent; i++)
        if (w->recent_done[i] == job_id)
            return true;
    return false;
}

void sm_workers_free(sm_workers *ws)
{
    for (int i = 0; i < ws->n; i++) {
        free(ws->w[i]->jobs);
        free(ws->w[i]);
    }
    free(ws->w);
    memset(ws, 0, sizeof *ws);
}
