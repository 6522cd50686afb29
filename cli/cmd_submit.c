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

static json_t *make_body(const sm_args *a, const char *path, const char *student,
                         const char *priority)
{
    size_t len;
    char *content = sm_cli_read_text(path, &len);
    if (!content)
        return NULL;
    const char *course = sm_args_get(a, "course");
    const char *assignment = sm_args_get(a, "assignment");
    const char *lang = sm_args_get(a, "language");
    const char *key = sm_args_get(a, "key-prefix");
    if (!lang)
        lang = lang_of(path);
    uint64_t h = fnv1a(content, len, 1469598103934665603ULL);
    char k[256];
    snprintf(k, sizeof k, "%.60s/%.60s/%.60s/%016llx", course, assignment, student,
             (unsigned long long)h);
    if (sm_args_get(a, "idempotency-key"))
        snprintf(k, sizeof k, "%.200s", sm_args_get(a, "idempotency-key"));
    else if (key)
        snprintf(k, sizeof k, "%.60s/%.60s/%016llx", key, student, (unsigned long long)h);
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s%, s:s}", "course", course, "assignment",
                             assignment, "student_ref", student, "idempotency_key", k, "content",
                             content, len, "priority", priority);
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
    fprintf(stderr, "\r[%s] %d/%d  %.1f/s  ETA %.0fs  failed %d ", bar, done + failed, total, rate,
            eta, failed);
    fflush(stderr);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regular files of dir (not hidden), sorted: their count, or -1 with a message. */
static int list_folder(const char *dir, char ***out)
{
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return -1;
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
            char **grown = realloc(names, (size_t)cap * sizeof *names);
            if (!grown)
                break;
            names = grown;
        }
        names[n++] = strdup(path);
    }
    closedir(d);
    if (n)
        qsort(names, (size_t)n, sizeof *names, cmp_str);
    *out = names;
    return n;
}

/* What a folder's submission works with. */
typedef struct folder_ctx {
    sm_client *c;
    const sm_args *a;
    const char *endpoint;
    double silent_s; /* with no reply at all after this long, the broker is missing */
    bool json;
} folder_ctx;

/* The pipeline's state: items[0..n), how many are done, failed and in flight, the next to
 * send. */
typedef struct window {
    item *items;
    int n, done, failed, inflight, next;
    bool answered; /* any reply yet */
} window;

/* Sends waiting items while the window has room. */
static int window_fill(sm_client *c, window *w)
{
    for (; w->inflight < WINDOW && w->next < w->n; w->next++) {
        item *it = &w->items[w->next];
        if (it->state != 0)
            continue;
        char id[16];
        snprintf(id, sizeof id, "%d", w->next);
        sm_err err;
        if (sm_client_send(c, "SUBMIT", id, it->body, &err) != SM_OK)
            return sm_cli_fail("submit", &err);
        it->state = 1;
        it->sent_at = now_s();
        it->tries++;
        w->inflight++;
    }
    return 0;
}

/* Takes one reply: done, to send again (retryable), or failed. */
static void window_reply(window *w, const sm_client_reply *r)
{
    w->answered = true;
    int i = atoi(r->id);
    if (i < 0 || i >= w->n || w->items[i].state != 1)
        return;
    item *it = &w->items[i];
    w->inflight--;
    bool retry = !r->ok && json_is_true(json_object_get(r->body, "retryable"));
    if (r->ok) {
        it->state = 2;
        it->id = json_integer_value(json_object_get(r->body, "submission_id"));
        w->done++;
    } else if (retry && it->tries < 20) {
        it->state = 0;
        if (w->next > i)
            w->next = i;
        usleep(200000);
    } else {
        it->state = 3;
        w->failed++;
        fprintf(stderr, "\n%s: %s\n", it->path,
                json_string_value(json_object_get(r->body, "message")));
    }
}

/* Nothing for a while: sends the oldest requests again (idempotent). */
static void window_resend(window *w)
{
    for (int i = 0; i < w->n; i++)
        if (w->items[i].state == 1 && now_s() - w->items[i].sent_at > 10) {
            w->items[i].state = 0;
            w->inflight--;
            if (w->next > i)
                w->next = i;
        }
}

/* Sends every item through the window until each is done or failed; 0, or 1 when the broker
 * is missing or the connection fails. */
static int window_run(const folder_ctx *fc, window *w)
{
    double t0 = now_s(), shown = 0;
    while (w->done + w->failed < w->n) {
        if (window_fill(fc->c, w))
            return 1;
        sm_client_reply r;
        sm_err err;
        sm_code code = sm_client_recv(fc->c, 1000, &r, &err);
        if (code == SM_OK) {
            window_reply(w, &r);
            json_decref(r.body);
        } else if (code == SM_ESTATE && !w->answered && now_s() - t0 > fc->silent_s) {
            sm_err_set(&err, SM_ESTATE, "no broker answers at %s (is stepmarkd running?)",
                       fc->endpoint);
            return sm_cli_fail("submit", &err);
        } else if (code == SM_ESTATE) {
            window_resend(w);
        } else {
            return sm_cli_fail("submit", &err);
        }
        if (!fc->json && (now_s() - shown > 0.1 || w->done + w->failed == w->n)) {
            progress(w->done, w->failed, w->n, t0);
            shown = now_s();
        }
    }
    if (!fc->json)
        fprintf(stderr, "\n");
    return 0;
}

static int submit_folder(const folder_ctx *fc, const char *dir)
{
    char **names = NULL;
    int n = list_folder(dir, &names);
    if (n < 0)
        return 1;
    const char *priority = sm_args_has(fc->a, "interactive") ? "interactive" : "batch";
    window w = {.items = calloc((size_t)n + 1, sizeof(item)), .n = n};
    for (int i = 0; w.items && i < n; i++) {
        item *it = &w.items[i];
        it->path = names[i];
        const char *base = strrchr(names[i], '/') + 1;
        snprintf(it->student, sizeof it->student, "%.*s",
                 (int)(strchr(base, '.') ? (size_t)(strchr(base, '.') - base) : strlen(base)),
                 base);
        it->body = make_body(fc->a, names[i], it->student, priority);
        if (!it->body)
            it->state = 3;
        w.failed += it->state == 3;
    }
    double t0 = now_s();
    int rc = w.items ? window_run(fc, &w) : 1;
    json_t *out = json_array();
    for (int i = 0; w.items && i < n; i++) {
        if (w.items[i].state == 2)
            json_array_append_new(out, json_pack("{s:s, s:s, s:I}", "file", w.items[i].path,
                                                 "student_ref", w.items[i].student, "submission_id",
                                                 (json_int_t)w.items[i].id));
        json_decref(w.items[i].body);
    }
    if (rc == 0 && fc->json)
        sm_cli_print_json(out);
    else if (rc == 0)
        printf("submitted %d of %d files in %.1fs\n", w.done, n, now_s() - t0);
    json_decref(out);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(w.items);
    free(names);
    return rc || w.failed ? 1 : 0;
}

static const sm_arg_opt submit_opts[] = {
    {"course", 0, SM_ARG_VALUE, "C", "the course's code", true},
    {"assignment", 0, SM_ARG_VALUE, "A", "the assignment's code", true},
    {"student", 0, SM_ARG_VALUE, "S", "the student (a FILE; default: its name without extension)",
     false},
    {"language", 0, SM_ARG_VALUE, "L", "c, cpp, python or java (default: from the extension)",
     false},
    {"interactive", 0, SM_ARG_FLAG, NULL, "interactive priority (the default for a FILE)", false},
    {"batch", 0, SM_ARG_FLAG, NULL, "batch priority (the default for a FOLDER)", false},
    {"idempotency-key", 0, SM_ARG_VALUE, "K", "this submission's idempotency key", false},
    {"key-prefix", 0, SM_ARG_VALUE, "P", "derive the keys from P, student and content", false},
    {"json", 0, SM_ARG_FLAG, NULL, "print the result as JSON", false},
    {0}};
static const sm_args_spec submit_spec = {
    "stepmark submit",
    "FILE|FOLDER",
    "A FILE is one submission of student S (default: the file name without its extension),\n"
    "interactive by default. A FOLDER submits every file in it (batch by default) with a\n"
    "progress bar. Keys derive from course, assignment, student and content, so repeating a\n"
    "submit creates nothing new.",
    submit_opts,
    sm_cli_client_opts,
    1,
    1};

/* Sends one file as one submission. */
static int submit_file(sm_client *c, const sm_args *a, const char *path)
{
    char student[201];
    const char *s = sm_args_get(a, "student");
    if (!s) {
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        size_t n = strchr(base, '.') ? (size_t)(strchr(base, '.') - base) : strlen(base);
        snprintf(student, sizeof student, "%.*s", (int)n, base);
        s = student;
    }
    json_t *body = make_body(a, path, s, sm_args_has(a, "batch") ? "batch" : "interactive");
    if (!body)
        return 1;
    json_t *reply;
    sm_err err;
    sm_code code = sm_client_call(c, "SUBMIT", body, &reply, &err);
    json_decref(body);
    if (code) {
        json_decref(reply);
        return sm_cli_fail("submit", &err);
    }
    if (sm_args_has(a, "json"))
        sm_cli_print_json(reply);
    else
        printf("submission %lld%s\n",
               (long long)json_integer_value(json_object_get(reply, "submission_id")),
               json_is_true(json_object_get(reply, "duplicate")) ? " (already submitted)" : "");
    json_decref(reply);
    return 0;
}

int sm_cli_submit(int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&submit_spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    const char *path = a.pos[0];
    static sm_config cfg;
    sm_client *c = NULL;
    struct stat st;
    rc = sm_cli_client_open(&a, &cfg, &c);
    if (!rc && stat(path, &st) != 0) {
        perror(path);
        rc = 1;
    }
    if (!rc && S_ISDIR(st.st_mode)) {
        const char *ep = sm_args_get(&a, "endpoint");
        const char *t = sm_args_get(&a, "timeout-ms");
        folder_ctx fc = {c, &a, ep ? ep : cfg.broker.client_endpoint,
                         (t ? atof(t) : SM_CLI_TIMEOUT_MS) * (1 + SM_CLI_RETRIES) / 1000.0,
                         sm_args_has(&a, "json")};
        rc = submit_folder(&fc, path);
    } else if (!rc) {
        rc = submit_file(c, &a, path);
    }
    sm_client_free(&c);
    sm_args_free(&a);
    return rc;
}
