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
    static const char *words[] = {"password", "passwd", "secret", "token", "private", "secret_key",
                                  "credential", NULL};
    if (!key)
        return 0;
    for (int i = 0; words[i]; i++)
        if (strcasestr(key, words[i]))
            return 1;
    return 0;
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
    size_t o = 0;
    const char *p = value;
    while (*p && o + 1 < n) {
        const char *scheme = strstr(p, "://");
        const char *pw = strcasestr(p, "password=");
        const char *next = NULL;
        if (scheme && (!pw || scheme < pw)) {
            const char *auth = scheme + 3;
            const char *at = auth;
            while (*at && *at != '@' && *at != '/' && !isspace((unsigned char)*at))
                at++;
            const char *colon = memchr(auth, ':', (size_t)(at - auth));
            if (*at == '@' && colon) {
                size_t keep = (size_t)(colon + 1 - p);
                if (keep > n - 1 - o)
                    keep = n - 1 - o;
                memcpy(out + o, p, keep);
                o += keep;
                o += (size_t)snprintf(out + o, n - o, "***");
                if (o >= n)
                    o = n - 1;
                next = at;
            } else {
                size_t keep = (size_t)(auth - p);
                if (keep > n - 1 - o)
                    keep = n - 1 - o;
                memcpy(out + o, p, keep);
                o += keep;
                next = auth;
            }
        } else if (pw) {
            const char *val = pw + strlen("password=");
            size_t keep = (size_t)(val - p);
            if (keep > n - 1 - o)
                keep = n - 1 - o;
            memcpy(out + o, p, keep);
            o += keep;
            o += (size_t)snprintf(out + o, n - o, "***");
            if (o >= n)
                o = n - 1;
            while (*val && !isspace((unsigned char)*val) && *val != '&')
                val++;
            next = val;
        } else {
            size_t keep = strlen(p);
            if (keep > n - 1 - o)
                keep = n - 1 - o;
            memcpy(out + o, p, keep);
            o += keep;
            next = p + strlen(p);
        }
        p = next;
    }
    out[o] = '\0';
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
