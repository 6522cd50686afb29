/* cmd_tokbench: `stepmark-engine tokbench --tokenizer DIR --corpus DIR` measures, in one run,
 * single-thread encode throughput (MB/s, median of --runs) of our tokenizer and of Hugging Face
 * `tokenizers` (through --python running --hf-script, with RAYON_NUM_THREADS=1) on the same
 * few MB of mixed text built from the corpus files, checks the two id sequences are identical,
 * and times our load: cold (no cache file: JSON parse + cache write) and warm (from cache). */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "sm_tokenizer.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
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
        if (!got) break;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* The corpus files of dir (sorted), concatenated with newlines until at least want bytes. */
static char *build_text(const char *dir, size_t want, size_t *len, int *n_files) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char *names[512];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 512)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
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
        if (!t || l == 0) {
            free(t);
            continue;
        }
        files[nf] = t;
        sizes[nf++] = l;
        total += l + 1;
    }
    char *out = NULL;
    size_t k = 0;
    if (nf && total) {
        out = malloc(want + total + 1);
        while (out && k < want)
            for (int i = 0; i < nf && k < want; i++) {
                memcpy(out + k, files[i], sizes[i]);
                k += sizes[i];
                out[k++] = '\n';
            }
    }
    for (int i = 0; i < nf; i++) free(files[i]);
    *len = k;
    *n_files = nf;
    return out;
}

static uint64_t ids_hash(const int32_t *ids, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint32_t)ids[i];
        h *= 1099511628211ull;
    }
    return h;
}

int sm_cmd_tokbench(int argc, char **argv) {
    const char *dir = NULL, *corpus = NULL, *python = ".venv/bin/python";
    const char *script = "tests/tokenizer/hf_bench.py";
    double mb = 4;
    int runs = 5;
    bool hf = true;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) dir = argv[++i];
        else if (strcmp(argv[i], "--corpus") == 0 && i + 1 < argc) corpus = argv[++i];
        else if (strcmp(argv[i], "--python") == 0 && i + 1 < argc) python = argv[++i];
        else if (strcmp(argv[i], "--hf-script") == 0 && i + 1 < argc) script = argv[++i];
        else if (strcmp(argv[i], "--mb") == 0 && i + 1 < argc) mb = atof(argv[++i]);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-hf") == 0) hf = false;
        else {
            fprintf(stderr, "tokbench: unknown argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    if (!dir || !corpus || mb <= 0 || mb > 1024 || runs < 1 || runs > 100) {
        fprintf(stderr, "usage: stepmark-engine tokbench --tokenizer DIR --corpus DIR [--mb N] "
                        "[--runs N] [--python PY] [--hf-script FILE] [--no-hf]\n");
        return 2;
    }
    size_t len;
    int n_files;
    char *text = build_text(corpus, (size_t)(mb * 1e6), &len, &n_files);
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
        if (system(cmd) != 0) rc = 1;
        double t0 = now_ms();
        if (sm_tokenizer_load_cached(dir, cache_dir, &tok, &err)) rc = 1;
        cold[r] = now_ms() - t0;
        sm_tokenizer_free(&tok);
        t0 = now_ms();
        if (rc == 0 && sm_tokenizer_load_cached(dir, cache_dir, &tok, &err)) rc = 1;
        warm[r] = now_ms() - t0;
        if (r + 1 < runs) sm_tokenizer_free(&tok);
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", cache_dir);
    if (system(cmd) != 0) fprintf(stderr, "tokbench: could not remove %s\n", cache_dir);
    if (rc) {
        fprintf(stderr, "tokbench: %s (%s)\n", err.msg, sm_code_name(err.code));
        free(text);
        return 1;
    }

    double mbps[100];
    int32_t *ids = NULL;
    size_t n_ids = 0;
    for (int r = 0; r < runs && rc == 0; r++) {
        free(ids);
        double t0 = now_ms();
        if (sm_tokenizer_encode(tok, text, len, false, &ids, &n_ids, &err)) rc = 1;
        mbps[r] = len / 1e6 / ((now_ms() - t0) / 1e3);
    }
    if (rc) {
        fprintf(stderr, "tokbench: %s (%s)\n", err.msg, sm_code_name(err.code));
        free(text);
        sm_tokenizer_free(&tok);
        return 1;
    }
    uint64_t our_hash = ids_hash(ids, n_ids);
    double our = median(mbps, runs);
    printf("text: %.2f MB from %d corpus files, %zu tokens, special tokens as plain text\n",
           len / 1e6, n_files, n_ids);
    printf("stepmark encode:   %8.2f MB/s (median of %d, 1 thread)\n", our, runs);

    if (hf) {
        char tmp[] = "/tmp/sm-tokbench-text-XXXXXX";
        int fd = mkstemp(tmp);
        FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
        bool ok = f && fwrite(text, 1, len, f) == len;
        if (f) ok = fclose(f) == 0 && ok;
        char line[4096];
        snprintf(line, sizeof line,
                 "RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false '%s' '%s' '%s' '%s' %d", python,
                 script, dir, tmp, runs);
        FILE *p = ok ? popen(line, "r") : NULL;
        double hf_mbps = 0, hf_load = 0;
        unsigned long long hf_hash = 0;
        size_t hf_n = 0;
        char out[512];
        bool got = false;
        while (p && fgets(out, sizeof out, p))
            if (sscanf(out, "hf %lf %lf %zu %llu", &hf_mbps, &hf_load, &hf_n, &hf_hash) == 4)
                got = true;
        if (p && pclose(p) != 0) got = false;
        unlink(tmp);
        if (!got) {
            fprintf(stderr, "tokbench: the Hugging Face run failed (%s)\n", line);
            rc = 1;
        } else {
            printf("HF tokenizers:     %8.2f MB/s (median of %d, RAYON_NUM_THREADS=1)\n", hf_mbps,
                   runs);
            printf("ratio stepmark/HF: %8.2fx\n", our / hf_mbps);
            printf("identical ids:     %s (%zu vs %zu tokens)\n",
                   hf_n == n_ids && hf_hash == our_hash ? "yes" : "NO", n_ids, hf_n);
            printf("HF load:           %8.1f ms\n", hf_load);
            if (hf_n != n_ids || hf_hash != our_hash) rc = 1;
        }
    }
    printf("stepmark load:     %8.1f ms cold (no cache), %6.1f ms warm (cache), median of %d\n",
           median(cold, runs), median(warm, runs), runs);
    free(ids);
    free(text);
    sm_tokenizer_free(&tok);
    return rc;
}
