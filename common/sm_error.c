/* sm_error: error record helpers (see sm_error.h). */
#include "sm_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

sm_code sm_err_set(sm_err *err, sm_code code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

sm_code sm_err_prefix(sm_err *err, const char *fmt, ...)
{
    if (!err)
        return SM_OK;
    char prefix[SM_ERR_MSG_MAX];
    char old[SM_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char joined[2 * SM_ERR_MSG_MAX + 4];
    memcpy(old, err->msg, sizeof old);
    snprintf(joined, sizeof joined, "%s: %s", prefix, old);
    memcpy(err->msg, joined, sizeof err->msg - 1);
    err->msg[sizeof err->msg - 1] = '\0';
    return err->code;
}

void sm_err_clear(sm_err *err)
{
    if (err) {
        err->code = SM_OK;
        err->msg[0] = '\0';
    }
}

const char *sm_code_name(sm_code code)
{
    switch (code) {
    case SM_OK:
        return "OK";
    case SM_EINVAL:
        return "EINVAL";
    case SM_ENOMEM:
        return "ENOMEM";
    case SM_EIO:
        return "EIO";
    case SM_ENOTFOUND:
        return "ENOTFOUND";
    case SM_ECONFIG:
        return "ECONFIG";
    case SM_EDB:
        return "EDB";
    case SM_EPROTO:
        return "EPROTO";
    case SM_EFORMAT:
        return "EFORMAT";
    case SM_EUNSUPPORTED:
        return "EUNSUPPORTED";
    case SM_ELIMIT:
        return "ELIMIT";
    case SM_ESTATE:
        return "ESTATE";
    case SM_EINTERNAL:
        return "EINTERNAL";
    }
    return "EUNKNOWN";
}
