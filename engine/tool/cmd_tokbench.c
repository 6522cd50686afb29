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

int sm_cmd_tokbench(int argc, char **argv)
{
    sm_args args;
    int prc = sm_args_parse(&tokbench_spec, argc, argv, &args);
    if (prc != SM_ARGS_CONTINUE)
        return prc;
    /* the values point into argv */
    const char *dir = sm_args_get(&args, "tokenizer"), *corpus = sm_args_get(&args, "corpus");
    const char *python = sm_args_get(&args, "python"), *script = sm_args_get(&args, "hf-script");
    const char *mb_s = sm_args_get(&args, "mb"), *runs_s = sm_args_get(&args, "runs");
    bool hf = !sm_args_has(&args, "no-hf");
    sm_args_free(&args);
    if (!python)
        python = ".venv/bin/python";
    if (!script)
        script = "tests/tokenizer/hf_bench.py";
    double mb = mb_s ? atof(mb_s) : 4;
    int runs = runs_s ? atoi(runs_s) : 5;
    if (mb <= 0 || mb > 1024 || runs < 1 || runs > 100)
        return sm_args_usage_error(tokbench_spec.prog, "--mb must be in (0, 1024] and --runs in "
                                                       "1..100");
    size_t len, n_docs;
    int n_files;
    char *text = build_text(corpus, (size_t)(mb * 1e6), &len, &n_files, &n_docs);
    if (!text) {
        fprintf(stderr, "tokbench: no corpus text in %s\n", corpus);
        return 1;
    }

    /* load times: cold = empty cache dir, warm = cache file present */
    char cache_dir[] = "/tmp/sm-tokbench-XXXXXX";
    if (!mkdtemp(cache_dir)) {
        fprintf(stderr, "tokbench: mkdtemp: %s\n", strerror(errno));
        free(text);
        return 1;
    }
    double cold[100], warm[100];
    sm_err err = {0};
    sm_tokenizer *tok = NULL;
    int rc = 0;
    for (int r = 0; r < runs && rc == 0; r++) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -f %s/*.bin", cache_dir);
        if (system(cmd) != 0)
            rc = 1;
        double t0 = now_ms();
        if (sm_tokenizer_load_cached(dir, cache_dir, &tok, &err))
            rc = 1;
        cold[r] = now_ms() - t0;
        sm_tokenizer_free(&tok);
        t0 = now_ms();
        if (rc == 0 && sm_tokenizer_load_cached(dir, cache_dir, &tok, &err))
            rc = 1;
        warm[r] = now_ms() - t0;
        if (r + 1 < runs)
            sm_tokenizer_free(&tok);
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", cache_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "tokbench: could not remove %s\n", cache_dir);
    if (rc) {
        fprintf(stderr, "tokbench: %s (%s)\n", err.msg, sm_code_name(err.code));
        free(text);
        return 1;
    }

    /* mode 0: each document separately; mode 1: all documents as one string joined by '\n' */
    char *joined = malloc(len + 1);
    if (!joined) {
        free(text);
        sm_tokenizer_free(&tok);
        return 1;
    }
    for (size_t i = 0; i < len; i++)
        joined[i] = text[i] ? text[i] : '\n';
    size_t doc_bytes = len - n_docs;
    double our[2];
    size_t our_n[2] = {0, 0};
    uint64_t our_hash[2] = {0, 0};
    for (int mode = 0; mode < 2 && rc == 0; mode++) {
        double mbps[100];
        for (int r = 0; r < runs && rc == 0; r++) {
            uint64_t h = 1469598103934665603ull;
            size_t total = 0;
            double t0 = now_ms();
            size_t pos = 0;
            while (pos < len && rc == 0) {
                size_t end = mode ? len - 1 : pos + strlen(text + pos);
                int32_t *ids;
                size_t n;
                if (sm_tokenizer_encode(tok, mode ? joined : text + pos, mode ? len - 1 : end - pos,
                                        false, &ids, &n, &err)) {
                    rc = 1;
                    break;
                }
                for (size_t i = 0; i < n; i++) {
                    h ^= (uint32_t)ids[i];
                    h *= 1099511628211ull;
                }
                total += n;
                free(ids);
                pos = end + 1;
            }
            double dt = (now_ms() - t0) / 1e3;
            mbps[r] = (mode ? len - 1 : doc_bytes) / 1e6 / dt;
            our_n[mode] = total;
            our_hash[mode] = h;
        }
        if (rc == 0)
            our[mode] = sm_cmd_median(mbps, runs);
    }
    free(joined);
    if (rc) {
        fprintf(stderr, "tokbench: %s (%s)\n", err.msg, sm_code_name(err.code));
        free(text);
        sm_tokenizer_free(&tok);
        return 1;
    }
    printf("text: %.2f MB, %zu documents (%d corpus files repeated), %zu tokens; special tokens "
           "as plain text; 1 thread\n",
           doc_bytes / 1e6, n_docs, n_files, our_n[0]);

    double hf_mbps[2] = {0, 0}, hf_load = 0;
    unsigned long long hf_hash[2] = {0, 0};
    size_t hf_n[2] = {0, 0};
    if (hf) {
        char tmp[] = "/tmp/sm-tokbench-text-XXXXXX";
        int fd = mkstemp(tmp);
        FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
        bool ok = f && fwrite(text, 1, len, f) == len;
        if (f)
            ok = fclose(f) == 0 && ok;
        char line[4096];
        snprintf(line, sizeof line,
                 "RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false '%s' '%s' '%s' '%s' %d", python,
                 script, dir, tmp, runs);
        FILE *p = ok ? popen(line, "r") : NULL;
        char out[512];
        int got = 0;
        while (p && fgets(out, sizeof out, p)) {
            if (sscanf(out, "hf-docs %lf %zu %llu", &hf_mbps[0], &hf_n[0], &hf_hash[0]) == 3)
                got++;
            if (sscanf(out, "hf-string %lf %zu %llu", &hf_mbps[1], &hf_n[1], &hf_hash[1]) == 3)
                got++;
            if (sscanf(out, "hf-load %lf", &hf_load) == 1)
                got++;
        }
        if (p && pclose(p) != 0)
            got = 0;
        unlink(tmp);
        if (got != 3) {
            fprintf(stderr, "tokbench: the Hugging Face run failed (%s)\n", line);
            hf = false;
            rc = 1;
        }
    }
    const char *mode_name[2] = {"per document", "one string  "};
    printf("%-14s %16s %16s %8s %s\n", "encode", "stepmark MB/s", "HF MB/s", "ratio",
           "identical ids");
    for (int mode = 0; mode < 2; mode++) {
        if (!hf) {
            printf("%-14s %16.2f\n", mode_name[mode], our[mode]);
            continue;
        }
        bool same = hf_n[mode] == our_n[mode] && hf_hash[mode] == our_hash[mode];
        printf("%-14s %16.2f %16.2f %7.2fx %s (%zu tokens)\n", mode_name[mode], our[mode],
               hf_mbps[mode], our[mode] / hf_mbps[mode], same ? "yes" : "NO", our_n[mode]);
        if (!same)
            rc = 1;
    }
    printf("load: stepmark %.1f ms cold (no cache), %.1f ms warm (cache)",
           sm_cmd_median(cold, runs), sm_cmd_median(warm, runs));
    if (hf)
        printf("; HF tokenizers %.1f ms", hf_load);
    printf(" (medians of %d)\n", runs);
    free(text);
    sm_tokenizer_free(&tok);
    return rc;
}
