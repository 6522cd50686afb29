/* sm_log: leveled key=value logger with secret redaction (see sm_log.h). */
#include "sm_log.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Process-wide logger state, written by main through sm_log_configure before threads start. */
static struct {
    pthread_mutex_t lock;
    sm_log_level level;
    FILE *file; /* NULL = stderr */
} logger = {PTHREAD_MUTEX_INITIALIZER, SM_LOG_INFO, NULL};

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

sm_code sm_log_level_parse(const char *name, sm_log_level *out)
{
    for (int i = 0; i <= SM_LOG_OFF; i++) {
        if (name && strcasecmp(name, level_names[i]) == 0) {
            *out = (sm_log_level)i;
            return SM_OK;
        }
    }
    return SM_EINVAL;
}

sm_code sm_log_configure(sm_log_level level, const char *file, sm_err *err)
{
    FILE *f = NULL;
    if (file && *file) {
        f = fopen(file, "a");
        if (!f)
            return sm_err_set(err, SM_EIO, "cannot open log file %s: %s", file, strerror(errno));
        setvbuf(f, NULL, _IOLBF, 0);
    }
    pthread_mutex_lock(&logger.lock);
    if (logger.file)
        fclose(logger.file);
    logger.file = f;
    logger.level = level;
    pthread_mutex_unlock(&logger.lock);
    return SM_OK;
}

void sm_log_close(void)
{
    pthread_mutex_lock(&logger.lock);
    if (logger.file)
        fclose(logger.file);
    logger.file = NULL;
    pthread_mutex_unlock(&logger.lock);
}

static int key_is_secret(const char *key)
{
    static const char *words[] = {"password", "passwd",     "secret",     "token",
                                  "private",  "secret_key", "credential", NULL};
    if (!key)
        return 0;
    for (int i = 0; words[i]; i++)
        if (strcasestr(key, words[i]))
            return 1;
    return 0;
}

/* The redacted copy being written: at most cap - 1 characters and a NUL. */
typedef struct redact_out {
    char *buf;
    size_t cap, len;
} redact_out;

static void put(redact_out *o, const char *s, size_t n)
{
    if (n > o->cap - 1 - o->len)
        n = o->cap - 1 - o->len;
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

/* Whether the URI scheme that ends at text + at (where "://" starts) is postgres(ql). libpq
 * ends the user:password part of such a URI at the first '@' or '/' only, so its password may
 * hold spaces and quotes; other schemes end it at whitespace too. */
static int scheme_is_postgres(const char *text, size_t at)
{
    size_t b = at;
    while (b > 0 && isalnum((unsigned char)text[b - 1]))
        b--;
    size_t n = at - b;
    return (n == 8 && !strncasecmp(text + b, "postgres", 8)) ||
           (n == 10 && !strncasecmp(text + b, "postgresql", 10));
}

/* At text + i is "://": masks a password in "user:password@" after it. Returns the index to
 * go on from. */
static size_t redact_userinfo(const char *text, size_t i, redact_out *o)
{
    int pg = scheme_is_postgres(text, i);
    size_t auth = i + 3, at = auth, colon = 0;
    while (text[at] && text[at] != '@' && text[at] != '/' &&
           (pg || !isspace((unsigned char)text[at]))) {
        if (text[at] == ':' && !colon)
            colon = at;
        at++;
    }
    if (text[at] != '@' || !colon) {
        put(o, text + i, 3);
        return auth;
    }
    put(o, text + i, colon + 1 - i);
    put(o, "***", 3);
    return at;
}

/* The end of a key=value value starting at v: a '...' or "..." string, else the run up to
 * whitespace or '&'; a backslash escapes the next character (as libpq reads them). */
static size_t value_end(const char *v)
{
    size_t k = 0;
    if (v[0] == '\'' || v[0] == '"') {
        char q = v[0];
        for (k = 1; v[k] && v[k] != q; k++)
            if (v[k] == '\\' && v[k + 1])
                k++;
        return v[k] ? k + 1 : k;
    }
    while (v[k] && !isspace((unsigned char)v[k]) && v[k] != '&')
        k += (v[k] == '\\' && v[k + 1]) ? 2 : 1;
    return k;
}

/* At text + i is "password" (any case): if "=" follows (spaces allowed around it), masks the
 * value. Returns the index to go on from. */
static size_t redact_password(const char *text, size_t i, redact_out *o)
{
    size_t k = i + 8;
    while (text[k] == ' ' || text[k] == '\t')
        k++;
    if (text[k] != '=') {
        put(o, text + i, 8);
        return i + 8;
    }
    k++;
    while (text[k] == ' ' || text[k] == '\t')
        k++;
    put(o, text + i, k - i);
    put(o, "***", 3);
    return k + value_end(text + k);
}

void sm_log_redact(const char *key, const char *value, char *out, size_t n)
{
    if (n == 0)
        return;
    if (!value)
        value = "(null)";
    if (key_is_secret(key)) {
        snprintf(out, n, "***");
        return;
    }
    /* Mask "scheme://user:password@host" and "password=..." inside a value. */
    redact_out o = {out, n, 0};
    size_t i = 0;
    while (value[i] && o.len + 1 < n) {
        if (!strncmp(value + i, "://", 3))
            i = redact_userinfo(value, i, &o);
        else if (!strncasecmp(value + i, "password", 8))
            i = redact_password(value, i, &o);
        else
            put(&o, value + i++, 1);
    }
    out[o.len] = '\0';
}

static void write_value(FILE *f, const char *v)
{
    int quote = (*v == '\0');
    for (const char *c = v; *c && !quote; c++)
        if (isspace((unsigned char)*c) || *c == '"' || *c == '=')
            quote = 1;
    if (!quote) {
        fputs(v, f);
        return;
    }
    fputc('"', f);
    for (const char *c = v; *c; c++) {
        if (*c == '"' || *c == '\\')
            fputc('\\', f);
        if (*c == '\n')
            fputs("\\n", f);
        else
            fputc(*c, f);
    }
    fputc('"', f);
}

static void log_begin(FILE *f, sm_log_level level)
{
    struct timespec ts;
    struct tm tm;
    char stamp[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(f, "%s.%03ldZ %-5s ", stamp, ts.tv_nsec / 1000000, level_names[level]);
}

void sm_log(sm_log_level level, const char *msg, ...)
{
    if (level < logger.level || level >= SM_LOG_OFF)
        return;
    char buf[2048];
    pthread_mutex_lock(&logger.lock);
    FILE *f = logger.file ? logger.file : stderr;
    log_begin(f, level);
    sm_log_redact(NULL, msg, buf, sizeof buf);
    fputs(buf, f);
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *key = va_arg(ap, const char *);
        if (!key)
            break;
        const char *value = va_arg(ap, const char *);
        sm_log_redact(key, value, buf, sizeof buf);
        fprintf(f, " %s=", key);
        write_value(f, buf);
    }
    va_end(ap);
    fputc('\n', f);
    fflush(f);
    pthread_mutex_unlock(&logger.lock);
}

void sm_logf(sm_log_level level, const char *fmt, ...)
{
    if (level < logger.level || level >= SM_LOG_OFF)
        return;
    char raw[2048], buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    sm_log_redact(NULL, raw, buf, sizeof buf);
    pthread_mutex_lock(&logger.lock);
    FILE *f = logger.file ? logger.file : stderr;
    log_begin(f, level);
    fputs(buf, f);
    fputc('\n', f);
    fflush(f);
    pthread_mutex_unlock(&logger.lock);
}
