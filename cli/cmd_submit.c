/* cmd_submit: `stepmark submit` sends one file, or every file of a folder (one submission per
 * file, the student being the file name without its extension), to the broker. A folder goes
 * through a window of pipelined requests with a progress bar and an ETA on stderr. Each
 * submission's idempotency key is derived from course, assignment, student and content, so
 * running the same command again creates nothing new. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli_common.h"
#include "cmd_client.h"
#include "commands.h"

#define WINDOW 32

typedef struct item {
    char *path;
    char student[201];
    json_t *body;
    int64_t id;
    int state; /* 0 waiting, 1 in flight, 2 done, 3 failed */
    double sent_at;
    int tries;
} item;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *lang_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot)
        return NULL;
    if (!strcmp(dot, ".c") || !strcmp(dot, ".h"))
        return "c";
    if (!strcmp(dot, ".cpp") || !strcmp(dot, ".cc") || !strcmp(dot, ".cxx"))
        return "cpp";
    if (!strcmp(dot, ".py"))
        return "python";
    if (!strcmp(dot, ".java"))
        return "java";
    return NULL;
}

static uint64_t fnv1a(const char *s, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static json_t *make_body(int argc, char **argv, const char *path, const char *student,
                         const char *priority)
{
    size_t len;
    char *content = sm_cli_read_text(path, &len);
    if (!content)
        return NULL;
    const char *course = sm_cli_opt(argc, argv, "--course");
    const char *assignment = sm_cli_opt(argc, argv, "--assignment");
    const char *lang = sm_cli_opt(argc, argv, "--language");
    const char *key = sm_cli_opt(argc, argv, "--key-prefix");
    if (!lang)
        lang = lang_of(path);
    uint64_t h = fnv1a(content, len, 1469598103934665603ULL);
    char k[256];
    snprintf(k, sizeof k, "%.60s/%.60s/%.60s/%016llx", course, assignment, student,
             (unsigned long long)h);
    if (sm_cli_opt(argc, argv, "--idempotency-key"))
        snprintf(k, sizeof k, "%.200s", sm_cli_opt(argc, argv, "--idempotency-key"));
    else if (key)
        snprintf(k, sizeof k, "%.60s/%.60s/%016llx", key, student, (unsigned long long)h);
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s%, s:s}", "course", course, "assignment",
                             assignment, "student_ref", student, "idempotency_key", k,
                             "content", content, len, "priority", priority);
    free(content);
    if (!body)
        fprintf(stderr, "stepmark submit: %s is not valid UTF-8 text\n", path);
    else if (lang)
        json_object_set_new(body, "language", json_string(lang));
    return body;
}

static void progress(int done, int failed, int total, double t0)
{
    double el = now_s() - t0;
    double rate = el > 0 ? done / el : 0;
    int width = 30, fill = total ? (done + failed) * width / total : width;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    double eta = rate > 0 ? (total - done - failed) / rate : 0;
    fprintf(stderr, "\r[%s] %d/%d  %.1f/s  ETA %.0fs  failed %d ", bar, done + failed, total,
            rate, eta, failed);
    fflush(stderr);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int submit_folder(sm_client *c, int argc, char **argv, const char *dir, int json)
{
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return 1;
    }
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, (size_t)cap * sizeof *names);
        }
        names[n++] = strdup(path);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    const char *priority = sm_cli_flag(argc, argv, "--interactive") ? "interactive" : "batch";
    item *items = calloc((size_t)n + 1, sizeof *items);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        items[i].path = names[i];
        const char *base = strrchr(names[i], '/') + 1;
        snprintf(items[i].student, sizeof items[i].student, "%.*s",
                 (int)(strchr(base, '.') ? (size_t)(strchr(base, '.') - base) : strlen(base)),
                 base);
        items[i].body = make_body(argc, argv, names[i], items[i].student, priority);
        if (!items[i].body)
            items[i].state = 3;
    }
    double t0 = now_s(), shown = 0;
    int done = 0, failed = 0, inflight = 0, next = 0;
    for (int i = 0; i < n; i++)
        failed += items[i].state == 3;
    while (done + failed < n) {
        while (inflight < WINDOW && next < n) {
            if (items[next].state == 0) {
                char id[16];
                snprintf(id, sizeof id, "%d", next);
                sm_err err;
                if (sm_client_send(c, "SUBMIT", id, items[next].body, &err) != SM_OK)
                    return sm_cli_fail("submit", &err);
                items[next].state = 1;
                items[next].sent_at = now_s();
                items[next].tries++;
                inflight++;
            }
            next++;
        }
        sm_client_reply r;
        sm_err err;
        sm_code code = sm_client_recv(c, 1000, &r, &err);
        if (code == SM_OK) {
            int i = atoi(r.id);
            if (i >= 0 && i < n && items[i].state == 1) {
                inflight--;
                bool retry = !r.ok && json_is_true(json_object_get(r.body, "retryable"));
                if (r.ok) {
                    items[i].state = 2;
                    items[i].id = json_integer_value(json_object_get(r.body, "submission_id"));
                    done++;
                } else if (retry && items[i].tries < 20) {
                    items[i].state = 0;
                    if (next > i)
                        next = i;
                    usleep(200000);
                } else {
                    items[i].state = 3;
                    failed++;
                    fprintf(stderr, "\n%s: %s\n", items[i].path,
                            json_string_value(json_object_get(r.body, "message")));
                }
            }
            json_decref(r.body);
        } else if (code == SM_ESTATE) {
            /* nothing for a while: send the oldest requests again (idempotent) */
            for (int i = 0; i < n; i++)
                if (items[i].state == 1 && now_s() - items[i].sent_at > 10) {
                    items[i].state = 0;
                    inflight--;
                    if (next > i)
                        next = i;
                }
        } else {
            return sm_cli_fail("submit", &err);
        }
        if (!json && (now_s() - shown > 0.1 || done + failed == n)) {
            progress(done, failed, n, t0);
            shown = now_s();
        }
    }
    if (!json)
        fprintf(stderr, "\n");
    json_t *out = json_array();
    for (int i = 0; i < n; i++) {
        if (items[i].state == 2) {
            json_array_append_new(out, json_pack("{s:s, s:s, s:I}", "file", items[i].path,
                                                 "student_ref", items[i].student,
                                                 "submission_id", (json_int_t)items[i].id));
        }
        json_decref(items[i].body);
        free(items[i].path);
    }
    if (json)
        sm_cli_print_json(out);
    else
        printf("submitted %d of %d files in %.1fs\n", done, n, now_s() - t0);
    json_decref(out);
    free(items);
    free(names);
    if (failed)
        rc = 1;
    return rc;
}

int sm_cli_submit(int argc, char **argv)
{
    const char *path = sm_cli_pos(argc, argv, 0);
    if (sm_cli_flag(argc, argv, "--help") || !path || !sm_cli_opt(argc, argv, "--course") ||
        !sm_cli_opt(argc, argv, "--assignment")) {
        printf("usage: stepmark submit --course C --assignment A [--student S] FILE|FOLDER\n"
               "         [--language c|cpp|python|java] [--interactive|--batch]\n"
               "         [--idempotency-key K | --key-prefix P] [--json] [--endpoint EP]\n"
               "A FILE is one submission of student S (default: the file name without its\n"
               "extension), interactive by default. A FOLDER submits every file in it (batch\n"
               "by default) with a progress bar. Keys derive from course, assignment, student\n"
               "and content, so repeating a submit creates nothing new.\n");
        return sm_cli_flag(argc, argv, "--help") ? 0 : 2;
    }
    sm_config cfg;
    sm_client *c;
    int rc = sm_cli_client_open(argc, argv, &cfg, &c);
    if (rc)
        return rc;
    int json = sm_cli_flag(argc, argv, "--json");
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        sm_client_free(&c);
        return 1;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = submit_folder(c, argc, argv, path, json);
        sm_client_free(&c);
        return rc;
    }
    char student[201];
    const char *s = sm_cli_opt(argc, argv, "--student");
    if (!s) {
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        size_t n = strchr(base, '.') ? (size_t)(strchr(base, '.') - base) : strlen(base);
        snprintf(student, sizeof student, "%.*s", (int)n, base);
        s = student;
    }
    json_t *body =
        make_body(argc, argv, path, s, sm_cli_flag(argc, argv, "--batch") ? "batch" : "interactive");
    if (!body) {
        sm_client_free(&c);
        return 1;
    }
    json_t *reply;
    sm_err err;
    sm_code code = sm_client_call(c, "SUBMIT", body, &reply, &err);
    json_decref(body);
    sm_client_free(&c);
    if (code) {
        json_decref(reply);
        return sm_cli_fail("submit", &err);
    }
    if (json)
        sm_cli_print_json(reply);
    else
        printf("submission %lld%s\n",
               (long long)json_integer_value(json_object_get(reply, "submission_id")),
               json_is_true(json_object_get(reply, "duplicate")) ? " (already submitted)" : "");
    json_decref(reply);
    return 0;
}
