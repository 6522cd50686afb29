/* sm_endpoint: loopback host names made bindable (see sm_endpoint.h). */
#include "sm_endpoint.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define SM_LOCALHOST "localhost"
#define SM_LOOPBACK_V4 "127.0.0.1"
#define SM_TCP_PREFIX "tcp://"

const char *sm_bind_host(const char *host)
{
    if (host && strcasecmp(host, SM_LOCALHOST) == 0)
        return SM_LOOPBACK_V4;
    return host;
}

const char *sm_endpoint_bindable(const char *ep, char *buf, size_t n)
{
    const size_t pre = strlen(SM_TCP_PREFIX), host = strlen(SM_LOCALHOST);
    if (!ep || strncmp(ep, SM_TCP_PREFIX, pre) != 0 ||
        strncasecmp(ep + pre, SM_LOCALHOST, host) != 0 || ep[pre + host] != ':')
        return ep;
    int w = snprintf(buf, n, SM_TCP_PREFIX SM_LOOPBACK_V4 "%s", ep + pre + host);
    return (w < 0 || (size_t)w >= n) ? ep : buf;
}
