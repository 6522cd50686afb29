/* sm_error: error codes and the error record that every fallible stepmark function fills.
 * A function returns SM_OK (0) or an sm_code, and writes a human-readable message into the
 * caller's sm_err (which may be NULL when the caller does not care). */
#ifndef SM_ERROR_H
#define SM_ERROR_H

#include <stddef.h>

typedef enum sm_code {
    SM_OK = 0,
    SM_EINVAL,       /* bad argument or bad input from outside */
    SM_ENOMEM,       /* allocation failed */
    SM_EIO,          /* file or socket input/output failed */
    SM_ENOTFOUND,    /* a file, row or key does not exist */
    SM_ECONFIG,      /* configuration file rejected */
    SM_EDB,          /* database error */
    SM_EPROTO,       /* protocol violation */
    SM_EFORMAT,      /* malformed or corrupt file/data */
    SM_EUNSUPPORTED, /* valid but not supported */
    SM_ELIMIT,       /* a size, time or count limit was exceeded */
    SM_ESTATE,       /* operation not allowed in the current state */
    SM_EINTERNAL     /* a bug or an unexpected failure of a dependency */
} sm_code;

#define SM_ERR_MSG_MAX 512

typedef struct sm_err {
    sm_code code;
    char msg[SM_ERR_MSG_MAX];
} sm_err;

/* Records code and a printf-style message in err (if non-NULL); returns code. */
sm_code sm_err_set(sm_err *err, sm_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to the message already in err; returns err->code (SM_OK if err is NULL). */
sm_code sm_err_prefix(sm_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clears err to SM_OK with an empty message. */
void sm_err_clear(sm_err *err);

/* The short stable name of a code, e.g. "EINVAL"; used in protocol errors and logs. */
const char *sm_code_name(sm_code code);

#endif
