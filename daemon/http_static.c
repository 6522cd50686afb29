/* http_static: the review application's files (index.html, app.js, style.css), from
 * http.static_dir when configured (handy while editing them), else the copies built into the
 * binary from daemon/web/. Only plain names are served: no "..", no hidden files. Under
 * /katex/ it serves KaTeX (Debian's libjs-katex, read from SM_KATEX_DIR at run time) from a
 * fixed allow-list: katex.min.js, katex.min.css and the KaTeX fonts. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http_internal.h"

static const char *content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return "application/octet-stream";
    if (strcmp(dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (strcmp(dot, ".js") == 0)
        return "text/javascript; charset=utf-8";
    if (strcmp(dot, ".css") == 0)
        return "text/css; charset=utf-8";
    if (strcmp(dot, ".svg") == 0)
        return "image/svg+xml";
    if (strcmp(dot, ".png") == 0)
        return "image/png";
    if (strcmp(dot, ".ico") == 0)
        return "image/x-icon";
    if (strcmp(dot, ".woff2") == 0)
        return "font/woff2";
    if (strcmp(dot, ".woff") == 0)
        return "font/woff";
    if (strcmp(dot, ".ttf") == 0)
        return "font/ttf";
    return "application/octet-stream";
}

static bool plain_name(const char *p)
{
    if (!*p || strlen(p) > 100 || p[0] == '.')
        return false;
    for (const char *c = p; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_' || *c == '.'))
            return false;
    return strstr(p, "..") == NULL;
}

static bool read_file(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 16 * 1024 * 1024) {
        close(fd);
        return false;
    }
    char *b = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (b && got < (size_t)st.st_size) {
        ssize_t n = read(fd, b + got, (size_t)st.st_size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!b || got != (size_t)st.st_size) {
        free(b);
        return false;
    }
    *out = b;
    *len = got;
    return true;
}

#ifndef SM_KATEX_DIR
#define SM_KATEX_DIR "/usr/share/javascript/katex"
#endif

/* The KaTeX fonts that katex.min.css names (fonts/KaTeX_<family>.woff2|woff|ttf). */
static const char *const katex_fonts[] = {
    "AMS-Regular",      "Caligraphic-Bold",  "Caligraphic-Regular", "Fraktur-Bold",
    "Fraktur-Regular",  "Main-Bold",         "Main-BoldItalic",     "Main-Italic",
    "Main-Regular",     "Math-BoldItalic",   "Math-Italic",         "SansSerif-Bold",
    "SansSerif-Italic", "SansSerif-Regular", "Script-Regular",      "Size1-Regular",
    "Size2-Regular",    "Size3-Regular",     "Size4-Regular",       "Typewriter-Regular"};

/* Whether name (the path after "katex/") is one of the files KaTeX needs. */
static bool katex_allowed(const char *name)
{
    if (strcmp(name, "katex.min.js") == 0 || strcmp(name, "katex.min.css") == 0)
        return true;
    static const char prefix[] = "fonts/KaTeX_";
    if (strncmp(name, prefix, sizeof prefix - 1) != 0)
        return false;
    const char *family = name + sizeof prefix - 1, *dot = strrchr(family, '.');
    if (!dot ||
        (strcmp(dot, ".woff2") != 0 && strcmp(dot, ".woff") != 0 && strcmp(dot, ".ttf") != 0))
        return false;
    for (size_t i = 0; i < sizeof katex_fonts / sizeof katex_fonts[0]; i++)
        if (strlen(katex_fonts[i]) == (size_t)(dot - family) &&
            strncmp(katex_fonts[i], family, (size_t)(dot - family)) == 0)
            return true;
    return false;
}

/* GET /katex/NAME: an allow-listed file of the installed KaTeX, else 404. */
static void katex_file(http_resp *rs, const char *name)
{
    char full[512], *body = NULL;
    size_t len = 0;
    if (!katex_allowed(name) ||
        snprintf(full, sizeof full, "%s/%s", SM_KATEX_DIR, name) >= (int)sizeof full ||
        !read_file(full, &body, &len)) {
        http_resp_error(rs, 404, "ENOTFOUND", "not found");
        return;
    }
    rs->cacheable = true;
    http_resp_text(rs, 200, content_type(name), body, len);
}

void http_static(http_req *rq, http_resp *rs, const char *path)
{
    if (strncmp(path, "katex/", 6) == 0) {
        katex_file(rs, path + 6);
        return;
    }
    if (!plain_name(path)) {
        http_resp_error(rs, 404, "ENOTFOUND", "not found");
        return;
    }
    char *body = NULL;
    size_t len = 0;
    if (rq->http->static_dir[0]) {
        char full[1024];
        snprintf(full, sizeof full, "%s/%s", rq->http->static_dir, path);
        if (!read_file(full, &body, &len)) {
            http_resp_error(rs, 404, "ENOTFOUND", "not found");
            return;
        }
    } else {
        int n;
        const sm_web_file *files = sm_web_files(&n);
        for (int i = 0; i < n && !body; i++)
            if (strcmp(files[i].name, path) == 0) {
                body = malloc(files[i].len + 1);
                if (!body) {
                    http_resp_error(rs, 500, "ENOMEM", "out of memory");
                    return;
                }
                memcpy(body, files[i].data, files[i].len);
                len = files[i].len;
            }
        if (!body) {
            http_resp_error(rs, 404, "ENOTFOUND", "not found");
            return;
        }
    }
    rs->cacheable = true;
    http_resp_text(rs, 200, content_type(path), body, len);
}
