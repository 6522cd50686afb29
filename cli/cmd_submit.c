/* cmd_submit: `stepmark submit` sends one file, or every file of a folder (one submission per
 * file: source files or Jupyter notebooks), to the broker. The student is the file name without
 * its extension, or the one a --map CSV names for the file. A folder goes through a window of
 * pipelined requests with a progress bar and an ETA on stderr; a file that cannot be submitted is
 * reported by name while the others still go, and a summary counts new, already submitted and
 * failed files. Each submission's idempotency key is derived from course, assignment, student and
 * the SHA-256 of the content, so running the same command again creates nothing new. */
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
#include "sm_sha256.h"
#include "submit_map.h"

#define WINDOW 32

#define KEY_MAX 200

typedef enum item_state { ITEM_WAITING, ITEM_INFLIGHT, ITEM_DONE, ITEM_FAILED } item_state;

typedef struct item {
    char *path;
    char student[201];
    json_t *body;
    int64_t id;
    item_state state;
    bool duplicate; /* the broker had it already (same key) */
    char error[512];
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
    if (!strcmp(dot, ".py") || !strcmp(dot, ".ipynb"))
        return "python";
    if (!strcmp(dot, ".java"))
        return "java";
    return NULL;
}

/* The idempotency key: "PREFIX/STUDENT/SHA" where PREFIX is "COURSE/ASSIGNMENT" (or
 * --key-prefix) and SHA the SHA-256 of the content; when that is longer than KEY_MAX, "sha256:"
 * and the SHA-256 of all of it, so distinct students never share a key. */
static void derive_key(const char *prefix, const char *student, const char *content, size_t len,
                       char out[KEY_MAX + 1])
{
    char sha[SM_SHA256_HEX];
    sm_sha256_hex(content, len, sha);
    char *full = NULL;
    if (asprintf(&full, "%s/%s/%s", prefix, student, sha) < 0)
        full = NULL;
    if (full && strlen(full) <= KEY_MAX) {
        snprintf(out, KEY_MAX + 1, "%s", full);
    } else {
        char all[SM_SHA256_HEX];
        sm_sha256_hex(full ? full : sha, full ? strlen(full) : strlen(sha), all);
        snprintf(out, KEY_MAX + 1, "sha256:%s", all);
    }
    free(full);
}

/* The SUBMIT body for the file at path, or NULL with the reason in why. */
static json_t *make_body(const sm_args *a, const char *path, const char *student,
                         const char *priority, char *why, size_t why_n)
{
    size_t len;
    char *content = sm_cli_read_text(path, &len);
    if (!content) {
        snprintf(why, why_n, "cannot be read");
        return NULL;
    }
    const char *course = sm_args_get(a, "course");
    const char *assignment = sm_args_get(a, "assignment");
    const char *lang = sm_args_get(a, "language");
    const char *pre = sm_args_get(a, "key-prefix");
    if (!lang)
        lang = lang_of(path);
    char prefix[512], k[KEY_MAX + 1];
    if (pre)
        snprintf(prefix, sizeof prefix, "%s", pre);
    else
        snprintf(prefix, sizeof prefix, "%s/%s", course, assignment);
    if (sm_args_get(a, "idempotency-key"))
        snprintf(k, sizeof k, "%s", sm_args_get(a, "idempotency-key"));
    else
        derive_key(prefix, student, content, len, k);
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s%, s:s}", "course", course, "assignment",
                             assignment, "student_ref", student, "idempotency_key", k, "content",
                             content, len, "priority", priority);
    free(content);
    if (!body)
        snprintf(why, why_n, "is not valid UTF-8 text");
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
    const sm_submit_map *map; /* --map, or NULL */
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
        if (it->state != ITEM_WAITING)
            continue;
        char id[16];
        snprintf(id, sizeof id, "%d", w->next);
        sm_err err;
        if (sm_client_send(c, "SUBMIT", id, it->body, &err) != SM_OK)
            return sm_cli_fail("submit", &err);
        it->state = ITEM_INFLIGHT;
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
    if (i < 0 || i >= w->n || w->items[i].state != ITEM_INFLIGHT)
        return;
    item *it = &w->items[i];
    w->inflight--;
    bool retry = !r->ok && json_is_true(json_object_get(r->body, "retryable"));
    if (r->ok) {
        it->state = ITEM_DONE;
        it->id = json_integer_value(json_object_get(r->body, "submission_id"));
        it->duplicate = json_is_true(json_object_get(r->body, "duplicate"));
        w->done++;
    } else if (retry && it->tries < 20) {
        it->state = ITEM_WAITING;
        if (w->next > i)
            w->next = i;
        usleep(200000);
    } else {
        const char *msg = json_string_value(json_object_get(r->body, "message"));
        it->state = ITEM_FAILED;
        w->failed++;
        snprintf(it->error, sizeof it->error, "%s", msg ? msg : "refused by the broker");
        fprintf(stderr, "\n%s: %s\n", it->path, it->error);
    }
}

/* Nothing for a while: sends the oldest requests again (idempotent). */
static void window_resend(window *w)
{
    for (int i = 0; i < w->n; i++)
        if (w->items[i].state == ITEM_INFLIGHT && now_s() - w->items[i].sent_at > 10) {
            w->items[i].state = ITEM_WAITING;
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

/* The student of the file at path: --student, the map's entry, or the file name without its
 * extension. False (with why) when a map is given and does not name the file. */
static bool student_of(const sm_args *a, const sm_submit_map *map, const char *path, char *out,
                       size_t n, char *why, size_t why_n)
{
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const char *s = sm_args_get(a, "student");
    if (!s && map && !(s = sm_submit_map_find(map, base))) {
        snprintf(why, why_n, "not in the map %s", sm_args_get(a, "map"));
        return false;
    }
    if (s)
        snprintf(out, n, "%s", s);
    else
        snprintf(out, n, "%.*s",
                 (int)(strchr(base, '.') ? (size_t)(strchr(base, '.') - base) : strlen(base)),
                 base);
    return true;
}

/* Reads the folder's files into w's items; a file that cannot be submitted is failed with its
 * reason printed. */
static void folder_items(const folder_ctx *fc, char **names, window *w)
{
    const char *priority = sm_args_has(fc->a, "interactive") ? "interactive" : "batch";
    for (int i = 0; i < w->n; i++) {
        item *it = &w->items[i];
        it->path = names[i];
        if (student_of(fc->a, fc->map, names[i], it->student, sizeof it->student, it->error,
                       sizeof it->error))
            it->body =
                make_body(fc->a, names[i], it->student, priority, it->error, sizeof it->error);
        if (!it->body) {
            it->state = ITEM_FAILED;
            w->failed++;
            fprintf(stderr, "%s: %s\n", it->path, it->error);
        }
    }
}

/* The outcome of each file, as JSON (--json). */
static json_t *folder_json(const window *w)
{
    json_t *out = json_array();
    for (int i = 0; out && i < w->n; i++) {
        const item *it = &w->items[i];
        json_t *o = json_pack("{s:s, s:s}", "file", it->path, "student_ref", it->student);
        if (!o)
            continue;
        if (it->state == ITEM_DONE) {
            json_object_set_new(o, "submission_id", json_integer(it->id));
            json_object_set_new(o, "duplicate", json_boolean(it->duplicate));
        } else {
            json_object_set_new(o, "error", json_string(it->error[0] ? it->error : "not sent"));
        }
        json_array_append_new(out, o);
    }
    return out;
}

static int submit_folder(const folder_ctx *fc, const char *dir)
{
    char **names = NULL;
    int n = list_folder(dir, &names);
    if (n < 0)
        return 1;
    window w = {.items = calloc((size_t)n + 1, sizeof(item)), .n = n};
    if (!w.items) {
        fprintf(stderr, "stepmark submit: out of memory\n");
        n = 0;
    } else {
        folder_items(fc, names, &w);
    }
    double t0 = now_s();
    int rc = w.items ? window_run(fc, &w) : 1;
    int dup = 0;
    for (int i = 0; i < w.n; i++)
        dup += w.items[i].state == ITEM_DONE && w.items[i].duplicate;
    if (rc == 0 && fc->json) {
        json_t *out = folder_json(&w);
        sm_cli_print_json(out);
        json_decref(out);
    } else if (rc == 0) {
        printf("submitted %d of %d files in %.1fs: %d new, %d already submitted, %d failed\n",
               w.done, n, now_s() - t0, w.done - dup, dup, w.failed);
    }
    for (int i = 0; i < n; i++) {
        json_decref(w.items ? w.items[i].body : NULL);
        free(names[i]);
    }
    free(w.items);
    free(names);
    return rc || w.failed ? 1 : 0;
}

static const sm_arg_opt submit_opts[] = {
    {"course", 0, SM_ARG_VALUE, "C", "the course's code", true},
    {"assignment", 0, SM_ARG_VALUE, "A", "the assignment's code", true},
    {"student", 0, SM_ARG_VALUE, "S", "the student (a FILE; default: its name without extension)",
     false},
    {"map", 0, SM_ARG_VALUE, "CSV", "file,student_ref lines: the student of each file", false},
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
    "interactive by default. A FOLDER submits every file in it (batch by default), such as\n"
    "one notebook (.ipynb) or source file per student, with a progress bar; with --map the\n"
    "CSV names each file's student. A file that fails is reported and the others still go;\n"
    "the exit status is 1 if any failed. Keys derive from course, assignment, student and the\n"
    "content's SHA-256, so repeating a submit creates nothing new.",
    submit_opts,
    sm_cli_client_opts,
    1,
    1};

/* Sends one file as one submission. */
static int submit_file(sm_client *c, const sm_args *a, const sm_submit_map *map, const char *path)
{
    char student[201], why[512];
    json_t *body = NULL;
    if (student_of(a, map, path, student, sizeof student, why, sizeof why))
        body = make_body(a, path, student, sm_args_has(a, "batch") ? "batch" : "interactive", why,
                         sizeof why);
    if (!body) {
        fprintf(stderr, "stepmark submit: %s: %s\n", path, why);
        return 1;
    }
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

/* Options that name one submission make no sense for a FOLDER: 2 with a message, else 0. */
static int folder_opts_ok(const sm_args *a)
{
    static const char *const one[] = {"student", "idempotency-key"};
    for (size_t i = 0; i < sizeof one / sizeof *one; i++)
        if (sm_args_get(a, one[i])) {
            fprintf(stderr,
                    "stepmark submit: --%s names one FILE's submission; a FOLDER's students come "
                    "from the file names or --map\n",
                    one[i]);
            return 2;
        }
    return 0;
}

int sm_cli_submit(int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&submit_spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    rc = 0;
    const char *path = a.pos[0];
    static sm_config cfg;
    sm_client *c = NULL;
    sm_submit_map map = {0};
    struct stat st;
    sm_err err;
    if (stat(path, &st) != 0) {
        perror(path);
        rc = 1;
    } else if (S_ISDIR(st.st_mode)) {
        rc = folder_opts_ok(&a);
    }
    if (!rc && sm_args_get(&a, "map") && sm_submit_map_load(sm_args_get(&a, "map"), &map, &err)) {
        fprintf(stderr, "stepmark submit: %s\n", err.msg);
        rc = 1;
    }
    if (!rc)
        rc = sm_cli_client_open(&a, &cfg, &c);
    const sm_submit_map *m = sm_args_get(&a, "map") ? &map : NULL;
    if (!rc && S_ISDIR(st.st_mode)) {
        const char *ep = sm_args_get(&a, "endpoint");
        const char *t = sm_args_get(&a, "timeout-ms");
        folder_ctx fc = {c,
                         &a,
                         ep ? ep : cfg.broker.client_endpoint,
                         (t ? atof(t) : SM_CLI_TIMEOUT_MS) * (1 + SM_CLI_RETRIES) / 1000.0,
                         sm_args_has(&a, "json"),
                         m};
        rc = submit_folder(&fc, path);
    } else if (!rc) {
        rc = submit_file(c, &a, m, path);
    }
    sm_submit_map_free(&map);
    sm_client_free(&c);
    sm_args_free(&a);
    return rc;
}
