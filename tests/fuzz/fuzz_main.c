/* fuzz_main: the driver that replaces libFuzzer's main() when stepmark is built without
 * SM_FUZZ (gcc, the normal and the ASan builds). It replays every file named on the command
 * line (a directory: every regular file in it, in name order) through the target's
 * LLVMFuzzerTestOneInput, then, with -mutations=N, N deterministic mutations of each file
 * (flipped, inserted, deleted bytes and truncations, the same sequence on every run), so that
 * the seed corpus is exercised by every `ctest -L unit` run. Exit status 1 on an unreadable
 * path; a crash or a sanitizer report fails the test by itself. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

#define FUZZ_MAX_INPUT (1 << 20)

typedef struct fuzz_run {
    long mutations; /* mutated copies per file */
    long files;     /* files replayed */
    long inputs;    /* inputs run in all */
    uint64_t rng;   /* xorshift state */
} fuzz_run;

static uint32_t fuzz_next(fuzz_run *r)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return (uint32_t)(r->rng >> 32);
}

/* One mutation step of buf[0..*n) (capacity cap) in place. */
static void fuzz_mutate(fuzz_run *r, uint8_t *buf, size_t *n, size_t cap)
{
    static const char interesting[] = "{}[]\":,0123456789e-.\\/\n \xff\x80\xc3";
    size_t at = *n ? fuzz_next(r) % *n : 0;
    switch (fuzz_next(r) % 5) {
    case 0: /* replace a byte */
        if (*n)
            buf[at] = (uint8_t)fuzz_next(r);
        break;
    case 1: /* delete a byte */
        if (*n) {
            memmove(buf + at, buf + at + 1, *n - at - 1);
            (*n)--;
        }
        break;
    case 2: /* insert a syntax byte */
        if (*n < cap) {
            memmove(buf + at + 1, buf + at, *n - at);
            buf[at] = (uint8_t)interesting[fuzz_next(r) % (sizeof interesting - 1)];
            (*n)++;
        }
        break;
    case 3: /* duplicate a span */
        if (*n && *n < cap) {
            size_t len = 1 + fuzz_next(r) % 16;
            if (len > *n - at)
                len = *n - at;
            if (len > cap - *n)
                len = cap - *n;
            memmove(buf + at + len, buf + at, *n - at);
            (*n) += len;
        }
        break;
    default: /* truncate */
        *n = at;
        break;
    }
}

static int fuzz_file(fuzz_run *r, const char *path)
{
    static uint8_t data[FUZZ_MAX_INPUT], buf[FUZZ_MAX_INPUT];
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        perror(path);
        return 1;
    }
    size_t n = fread(data, 1, sizeof data, fp);
    fclose(fp);
    /* a private copy, so that reads past the end are caught by ASan */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact)
        return 1;
    memcpy(exact, data, n);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    r->files++;
    r->inputs++;
    for (long m = 0; m < r->mutations; m++) {
        size_t len = n;
        memcpy(buf, data, n);
        int steps = 1 + (int)(fuzz_next(r) % 4);
        for (int s = 0; s < steps; s++)
            fuzz_mutate(r, buf, &len, sizeof buf);
        uint8_t *copy = malloc(len ? len : 1);
        if (!copy)
            return 1;
        memcpy(copy, buf, len);
        LLVMFuzzerTestOneInput(copy, len);
        free(copy);
        r->inputs++;
    }
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int fuzz_dir(fuzz_run *r, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return 1;
    }
    size_t n = 0, cap = 0;
    char **names = NULL;
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) {
                rc = 1;
                break;
            }
            names = nn;
        }
        names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2);
        if (!names[n]) {
            rc = 1;
            break;
        }
        sprintf(names[n], "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (rc == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
            rc = fuzz_file(r, names[i]);
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    fuzz_run r = {.rng = 0x9E3779B97F4A7C15ULL};
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        struct stat st;
        if (strncmp(argv[i], "-mutations=", 11) == 0)
            r.mutations = strtol(argv[i] + 11, NULL, 10);
        else if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
            rc = fuzz_dir(&r, argv[i]);
        else
            rc = fuzz_file(&r, argv[i]);
    }
    if (rc == 0 && r.files == 0) {
        fprintf(stderr, "usage: %s [-mutations=N] corpus-dir-or-file...: no input files\n",
                argv[0]);
        return 1;
    }
    printf("%ld files, %ld inputs run\n", r.files, r.inputs);
    return rc;
}
