/* cmd_tokbench: `stepmark-engine tokbench --tokenizer DIR --corpus DIR` measures, in one run,
 * single-thread encode throughput (MB/s, median of --runs) of our tokenizer and of Hugging Face
 * `tokenizers` (through --python running --hf-script, with RAYON_NUM_THREADS=1) on the same
 * few MB of mixed text built from the corpus files (each file occurrence one document, encoded
 * separately; HF uses encode_batch), checks that both give identical ids, and times our load:
 * cold (no cache file: JSON parse + cache write) and warm (from the cache). */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd_timing.h"
#include "commands.h"
#include "sm_args.h"
#include "sm_tokenizer.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            char *p = realloc(buf, cap *= 2);
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (!got)
            break;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* The non-empty corpus files of dir (sorted, without NUL bytes), repeated until at least want
 * bytes, each occurrence one document; documents are separated by a NUL byte in the result. */
static char *build_text(const char *dir, size_t want, size_t *len, int *n_files, size_t *n_docs)
{
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char *names[512];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 512)
        if (e->d_name[0] != '.')
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    char *files[512];
    size_t sizes[512];
    int nf = 0;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        free(names[i]);
        size_t l;
        char *t = slurp(path, &l);
        if (!t || l == 0 || memchr(t, 0, l)) {
            free(t);
            continue;
        }
        files[nf] = t;
        sizes[nf++] = l;
        total += l + 1;
    }
    char *out = NULL;
    size_t k = 0;
    *n_docs = 0;
    if (nf && total) {
        out = malloc(want + total + 1);
        while (out && k < want)
            for (int i = 0; i < nf && k < want; i++) {
                memcpy(out + k, files[i], sizes[i]);
                k += sizes[i];
                out[k++] = '\0';
                (*n_docs)++;
            }
    }
    for (int i = 0; i < nf; i++)
        free(files[i]);
    *len = k;
    *n_files = nf;
    return out;
}

static const sm_arg_opt tokbench_opts[] = {
    {"tokenizer", 0, SM_ARG_VALUE, "DIR", "the tokenizer", true},
    {"corpus", 0, SM_ARG_VALUE, "DIR", "a folder of text", true},
    {"mb", 0, SM_ARG_VALUE, "N", "megabytes of text, up to 1024 (default 4)", false},
    {"runs", 0, SM_ARG_VALUE, "N", "runs, 1..100 (default 5)", false},
    {"python", 0, SM_ARG_VALUE, "PY", "Python with transformers (default .venv/bin/python)", false},
    {"hf-script", 0, SM_ARG_VALUE, "FILE", "the Hugging Face side's script", false},
    {"no-hf", 0, SM_ARG_FLAG, NULL, "measure this tokenizer only", false},
    {0}};
static const sm_args_spec tokbench_spec = {"stepmark-engine tokbench",
                                           NULL,
                                           "Tokenizer speed and load time next to Hugging Face's.",
                                           tokbench_opts,
                                           NULL,
                                           0,
                                           0};

typedef struct tokbench_cfg {
    const char *dir, *corpus, *python, *script; /* point into argv */
    double mb;
    int runs;
    bool hf;
} tokbench_cfg;

/* The text's documents (NUL-separated) and what encoding them gave: [0] each document
 * separately, [1] all of them as one string joined by '\n'. */
typedef struct tokbench_text {
    char *text;
    size_t len, n_docs, doc_bytes;
    int n_files;
} tokbench_text;

typedef struct tokbench_result {
    double mbps[2], cold_ms, warm_ms, hf_load_ms;
    size_t n[2];
    unsigned long long hash[2];
} tokbench_result;

static int tokbench_parse(int argc, char **argv, tokbench_cfg *cfg)
{
    sm_args args;
    int prc = sm_args_parse(&tokbench_spec, argc, argv, &args);
    if (prc != SM_ARGS_CONTINUE)
        return prc;
    cfg->dir = sm_args_get(&args, "tokenizer");
    cfg->corpus = sm_args_get(&args, "corpus");
    cfg->python = sm_args_get(&args, "python");
    cfg->script = sm_args_get(&args, "hf-script");
    const char *mb_s = sm_args_get(&args, "mb"), *runs_s = sm_args_get(&args, "runs");
    cfg->hf = !sm_args_has(&args, "no-hf");
    sm_args_free(&args);
    if (!cfg->python)
        cfg->python = ".venv/bin/python";
    if (!cfg->script)
        cfg->script = "tests/tokenizer/hf_bench.py";
    cfg->mb = mb_s ? atof(mb_s) : 4;
    cfg->runs = runs_s ? atoi(runs_s) : 5;
    if (cfg->mb <= 0 || cfg->mb > 1024 || cfg->runs < 1 || cfg->runs > 100)
        return sm_args_usage_error(tokbench_spec.prog, "--mb must be in (0, 1024] and --runs in "
                                                       "1..100");
    return SM_ARGS_CONTINUE;
}

/* Times loads into tok: cold (empty cache folder) and warm (cache file present), medians. */
static sm_code tokbench_load(const tokbench_cfg *cfg, sm_tokenizer **tok, tokbench_result *res,
                             sm_err *err)
{
    char cache_dir[] = "/tmp/sm-tokbench-XXXXXX";
    if (!mkdtemp(cache_dir))
        return sm_err_set(err, SM_EIO, "mkdtemp: %s", strerror(errno));
    double cold[100], warm[100];
    sm_code rc = SM_OK;
    for (int r = 0; r < cfg->runs && rc == SM_OK; r++) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -f %s/*.bin", cache_dir);
        if (system(cmd) != 0)
            rc = sm_err_set(err, SM_EIO, "could not empty %s", cache_dir);
        double t0 = now_ms();
        if (rc == SM_OK)
            rc = sm_tokenizer_load_cached(cfg->dir, cache_dir, tok, err);
        cold[r] = now_ms() - t0;
        sm_tokenizer_free(tok);
        t0 = now_ms();
        if (rc == SM_OK)
            rc = sm_tokenizer_load_cached(cfg->dir, cache_dir, tok, err);
        warm[r] = now_ms() - t0;
        if (r + 1 < cfg->runs)
            sm_tokenizer_free(tok);
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", cache_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "tokbench: could not remove %s\n", cache_dir);
    if (rc == SM_OK) {
        res->cold_ms = sm_cmd_median(cold, cfg->runs);
        res->warm_ms = sm_cmd_median(warm, cfg->runs);
    }
    return rc;
}

/* One run of mode (0: document by document of t->text, 1: the one string joined): its MB/s,
 * token count and a hash of the ids. */
static sm_code tokbench_encode_run(const sm_tokenizer *tok, const tokbench_text *t,
                                   const char *joined, int mode, double *mbps, size_t *n_out,
                                   unsigned long long *hash, sm_err *err)
{
    uint64_t h = 1469598103934665603ull;
    size_t total = 0, pos = 0;
    double t0 = now_ms();
    while (pos < t->len) {
        size_t end = mode ? t->len - 1 : pos + strlen(t->text + pos);
        int32_t *ids;
        size_t n;
        sm_code rc = sm_tokenizer_encode(tok, mode ? joined : t->text + pos,
                                         mode ? t->len - 1 : end - pos, false, &ids, &n, err);
        if (rc != SM_OK)
            return rc;
        for (size_t i = 0; i < n; i++) {
            h ^= (uint32_t)ids[i];
            h *= 1099511628211ull;
        }
        total += n;
        free(ids);
        pos = end + 1;
    }
    double dt = (now_ms() - t0) / 1e3;
    *mbps = (double)(mode ? t->len - 1 : t->doc_bytes) / 1e6 / dt;
    *n_out = total;
    *hash = h;
    return SM_OK;
}

/* Our encode speed in both modes (medians of cfg->runs), token counts and id hashes. */
static sm_code tokbench_encode(const tokbench_cfg *cfg, const sm_tokenizer *tok,
                               const tokbench_text *t, tokbench_result *res, sm_err *err)
{
    char *joined = malloc(t->len + 1);
    if (!joined)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    for (size_t i = 0; i < t->len; i++)
        joined[i] = t->text[i] ? t->text[i] : '\n';
    sm_code rc = SM_OK;
    for (int mode = 0; mode < 2 && rc == SM_OK; mode++) {
        double mbps[100];
        for (int r = 0; r < cfg->runs && rc == SM_OK; r++)
            rc = tokbench_encode_run(tok, t, joined, mode, &mbps[r], &res->n[mode],
                                     &res->hash[mode], err);
        if (rc == SM_OK)
            res->mbps[mode] = sm_cmd_median(mbps, cfg->runs);
    }
    free(joined);
    return rc;
}

/* The Hugging Face side: cfg->script on the same text through cfg->python; false if it failed
 * (said on stderr). */
static bool tokbench_hf(const tokbench_cfg *cfg, const tokbench_text *t, tokbench_result *hf)
{
    char tmp[] = "/tmp/sm-tokbench-text-XXXXXX";
    int fd = mkstemp(tmp);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    bool ok = f && fwrite(t->text, 1, t->len, f) == t->len;
    if (f)
        ok = fclose(f) == 0 && ok;
    char line[4096];
    snprintf(line, sizeof line,
             "RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false '%s' '%s' '%s' '%s' %d", cfg->python,
             cfg->script, cfg->dir, tmp, cfg->runs);
    FILE *p = ok ? popen(line, "r") : NULL;
    char out[512];
    int got = 0;
    while (p && fgets(out, sizeof out, p)) {
        if (sscanf(out, "hf-docs %lf %zu %llu", &hf->mbps[0], &hf->n[0], &hf->hash[0]) == 3)
            got++;
        if (sscanf(out, "hf-string %lf %zu %llu", &hf->mbps[1], &hf->n[1], &hf->hash[1]) == 3)
            got++;
        if (sscanf(out, "hf-load %lf", &hf->hf_load_ms) == 1)
            got++;
    }
    if (p && pclose(p) != 0)
        got = 0;
    if (fd >= 0)
        unlink(tmp);
    if (got != 3)
        fprintf(stderr, "tokbench: the Hugging Face run failed (%s)\n", line);
    return got == 3;
}

/* The table; returns 1 if the two sides' ids differ. */
static int tokbench_report(const tokbench_cfg *cfg, const tokbench_result *our,
                           const tokbench_result *hf)
{
    int rc = 0;
    const char *mode_name[2] = {"per document", "one string  "};
    printf("%-14s %16s %16s %8s %s\n", "encode", "stepmark MB/s", "HF MB/s", "ratio",
           "identical ids");
    for (int mode = 0; mode < 2; mode++) {
        if (!hf) {
            printf("%-14s %16.2f\n", mode_name[mode], our->mbps[mode]);
            continue;
        }
        bool same = hf->n[mode] == our->n[mode] && hf->hash[mode] == our->hash[mode];
        printf("%-14s %16.2f %16.2f %7.2fx %s (%zu tokens)\n", mode_name[mode], our->mbps[mode],
               hf->mbps[mode], our->mbps[mode] / hf->mbps[mode], same ? "yes" : "NO", our->n[mode]);
        if (!same)
            rc = 1;
    }
    printf("load: stepmark %.1f ms cold (no cache), %.1f ms warm (cache)", our->cold_ms,
           our->warm_ms);
    if (hf)
        printf("; HF tokenizers %.1f ms", hf->hf_load_ms);
    printf(" (medians of %d)\n", cfg->runs);
    return rc;
}

int sm_cmd_tokbench(int argc, char **argv)
{
    tokbench_cfg cfg;
    int prc = tokbench_parse(argc, argv, &cfg);
    if (prc != SM_ARGS_CONTINUE)
        return prc;
    tokbench_text t = {0};
    t.text = build_text(cfg.corpus, (size_t)(cfg.mb * 1e6), &t.len, &t.n_files, &t.n_docs);
    if (!t.text) {
        fprintf(stderr, "tokbench: no corpus text in %s\n", cfg.corpus);
        return 1;
    }
    t.doc_bytes = t.len - t.n_docs;
    sm_err err = {0};
    sm_tokenizer *tok = NULL;
    tokbench_result our = {0}, hf = {0};
    if (tokbench_load(&cfg, &tok, &our, &err) != SM_OK ||
        tokbench_encode(&cfg, tok, &t, &our, &err) != SM_OK) {
        fprintf(stderr, "tokbench: %s (%s)\n", err.msg, sm_code_name(err.code));
        free(t.text);
        sm_tokenizer_free(&tok);
        return 1;
    }
    printf("text: %.2f MB, %zu documents (%d corpus files repeated), %zu tokens; special tokens "
           "as plain text; 1 thread\n",
           t.doc_bytes / 1e6, t.n_docs, t.n_files, our.n[0]);
    int rc = 0;
    bool hf_ok = cfg.hf && tokbench_hf(&cfg, &t, &hf);
    if (cfg.hf && !hf_ok)
        rc = 1;
    if (tokbench_report(&cfg, &our, hf_ok ? &hf : NULL))
        rc = 1;
    free(t.text);
    sm_tokenizer_free(&tok);
    return rc;
}
