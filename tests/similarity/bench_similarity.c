/* stepmark-similarity-bench: how long the similarity check of a class takes. Generates N
 * synthetic C submissions (default 300): each student writes 8 functions picked from a pool of
 * 1000 (loops, conditions, arithmetic), with their own identifiers, comments, indentation, order
 * and a few statements of their own, around the same main(); some students copy another's
 * program and rename, re-comment and reorder it. Prints the time to fingerprint and to pair
 * them, the pairs found and how many planted copies were among them. Not a test: numbers only.
 * Usage: stepmark-similarity-bench [N [COPIES [SEED]]] */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sm_similarity.h"

#define POOL 1000
#define PER_STUDENT 8

typedef struct buf {
    char *s;
    size_t n, cap;
} buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void put(buf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0)
            return;
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        b->cap = (b->cap + (size_t)k + 1) * 2;
        b->s = realloc(b->s, b->cap);
        if (!b->s)
            exit(1);
    }
}

static unsigned long long rng_state;
static unsigned rnd(unsigned n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)((rng_state >> 33) % n);
}

/* A pool function is a list of statement templates over locals $0..$4 and the name $F. */
typedef struct pool_fn {
    char stmts[16][96];
    int n;
} pool_fn;
static pool_fn pool[POOL];

static void make_pool(void)
{
    static const char *ops[] = {"+", "-", "*", "^", "|", "&"};
    static const char *cmp[] = {"<", ">", "<=", "!=", "=="};
    for (int f = 0; f < POOL; f++) {
        pool_fn *p = &pool[f];
        p->n = 6 + (int)rnd(9);
        for (int i = 0; i < p->n; i++) {
            int a = (int)rnd(5), b = (int)rnd(5), c = (int)rnd(5);
            const char *o = ops[rnd(6)], *k = cmp[rnd(5)];
            switch (rnd(5)) {
            case 0:
                snprintf(p->stmts[i], 96, "$%d = $%d %s %u;", a, b, o, rnd(100));
                break;
            case 1:
                snprintf(p->stmts[i], 96, "for ($%d = 0; $%d %s %u; $%d++) $%d %s= $%d;", a, a, k,
                         rnd(50) + 2, a, b, o, c);
                break;
            case 2:
                snprintf(p->stmts[i], 96, "if ($%d %s $%d) { $%d = $%d %s %u; } else { $%d--; }", a,
                         k, b, c, a, o, rnd(9) + 1, b);
                break;
            case 3:
                snprintf(p->stmts[i], 96, "while ($%d %s %u) { $%d = ($%d %s $%d) %% %u; }", a, k,
                         rnd(30), a, b, o, c, rnd(17) + 3);
                break;
            default:
                snprintf(p->stmts[i], 96, "$%d = $F_h($%d, $%d) %s $%d;", a, b, c, o, a);
            }
        }
    }
}

static const char *names[] = {"i",     "j",     "k",    "n",    "m",     "x",      "y",
                              "count", "total", "acc",  "tmp",  "value", "result", "idx",
                              "len",   "sum",   "prod", "left", "right", "mid",    "cur",
                              "prev",  "next",  "step", "lo",   "hi",    "best",   "score"};
static const char *fnames[] = {"calc", "compute", "solve", "helper", "process", "work",  "step",
                               "eval", "mix",     "fold",  "scan",   "walk",    "count", "run"};

typedef struct student {
    int fn[PER_STUDENT];
    int order[PER_STUDENT];
    int extra[PER_STUDENT]; /* statements of their own per function */
    unsigned seed;          /* names, comments, layout */
} student;

static void subst(buf *b, const char *t, const char *const *loc, const char *fname)
{
    for (; *t; t++) {
        if (t[0] == '$' && t[1] == 'F') {
            put(b, "%s", fname);
            t++;
        } else if (t[0] == '$' && t[1] >= '0' && t[1] <= '4') {
            put(b, "%s", loc[t[1] - '0']);
            t++;
        } else {
            put(b, "%c", *t);
        }
    }
}

static void write_fn(buf *b, const student *st, int slot, const char *indent)
{
    const pool_fn *p = &pool[st->fn[slot]];
    const char *loc[5];
    for (int i = 0; i < 5; i++)
        loc[i] = names[rnd(sizeof names / sizeof names[0])];
    loc[1] = loc[0] == loc[1] ? "aux" : loc[1];
    char fname[64];
    snprintf(fname, sizeof fname, "%s_%d", fnames[rnd(14)], slot);
    if (rnd(2))
        put(b, "/* %s: part %d of the task */\n", fname, slot + 1);
    put(b, "static long %s(long %s, long %s)\n{\n", fname, loc[0], loc[1]);
    put(b, "%slong %s = 0, %s = 1, %s = 2;\n", indent, loc[2], loc[3], loc[4]);
    for (int i = 0; i < p->n; i++) {
        put(b, "%s", indent);
        subst(b, p->stmts[i], loc, fname);
        put(b, rnd(6) == 0 ? " // step %d\n" : "\n", i);
        if (i < st->extra[slot])
            put(b, "%s%s += %u;\n", indent, loc[rnd(5)], rnd(1000));
    }
    put(b, "%sreturn %s + %s;\n}\n\n", indent, loc[2], loc[3]);
}

static char *write_student(const student *st)
{
    buf b = {0};
    rng_state = st->seed;
    put(&b, "#include <stdio.h>\n#include <stdlib.h>\n\n");
    put(&b, "static long h(long a, long b) { return (a * 31 + b) %% 1000003; }\n\n");
    const char *indent = rnd(2) ? "    " : "\t";
    for (int i = 0; i < PER_STUDENT; i++)
        write_fn(&b, st, st->order[i], indent);
    put(&b, "int main(void)\n{\n%slong a = 0, b = 0;\n", indent);
    put(&b, "%sif (scanf(\"%%ld %%ld\", &a, &b) != 2)\n%s%sreturn 1;\n", indent, indent, indent);
    put(&b, "%sprintf(\"%%ld\\n\", a + b);\n%sreturn 0;\n}\n", indent, indent);
    return b.s;
}

static void shuffle(int *v, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rnd((unsigned)i + 1), t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 300;
    int copies = argc > 2 ? atoi(argv[2]) : 15;
    rng_state = argc > 3 ? strtoull(argv[3], NULL, 10) : 42;
    if (n < 2 || n > (int)SM_SIM_MAX_DOCS || copies < 0 || copies > n / 2) {
        fprintf(stderr, "usage: stepmark-similarity-bench [N [COPIES [SEED]]]\n");
        return 2;
    }
    make_pool();
    student *st = calloc((size_t)n, sizeof *st);
    char **text = calloc((size_t)n, sizeof *text);
    for (int s = 0; s < n; s++) {
        for (int i = 0; i < PER_STUDENT; i++) {
            st[s].fn[i] = (int)rnd(POOL);
            st[s].order[i] = i;
            st[s].extra[i] = (int)rnd(3);
        }
        shuffle(st[s].order, PER_STUDENT);
        st[s].seed = rnd(1u << 30);
    }
    /* the copies: student 2c+1 copies student 2c, renamed, reordered, re-commented */
    for (int c = 0; c < copies; c++) {
        unsigned seed = rnd(1u << 30);
        st[2 * c + 1] = st[2 * c];
        st[2 * c + 1].seed = seed;
        shuffle(st[2 * c + 1].order, PER_STUDENT);
    }
    size_t bytes = 0;
    for (int s = 0; s < n; s++) {
        text[s] = write_student(&st[s]);
        bytes += strlen(text[s]);
    }
    sm_sim_doc *docs = calloc((size_t)n, sizeof *docs);
    sm_sim_opts o = {.lang = SM_SIM_C};
    sm_err err = {0};
    double t0 = now();
    for (int s = 0; s < n; s++)
        if (sm_sim_fingerprint(&o, text[s], strlen(text[s]), &docs[s], &err) != SM_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
    double t1 = now();
    sm_sim_class_opts co = {0};
    sm_sim_pair *pairs;
    size_t np;
    sm_sim_hashset ex;
    if (sm_sim_class_pairs(docs, (size_t)n, &co, &pairs, &np, &ex, &err) != SM_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double t2 = now();
    size_t regions = 0;
    for (size_t i = 0; i < np; i++) { /* what a stored run also does: the regions of each pair */
        sm_sim_match m;
        if (sm_sim_compare(&docs[pairs[i].a], &docs[pairs[i].b], &ex, &m, &err) == SM_OK)
            regions += m.nregions;
        sm_sim_match_free(&m);
    }
    double t3 = now();
    int found = 0;
    double best_other = 0;
    for (size_t i = 0; i < np; i++) {
        bool planted =
            pairs[i].b == pairs[i].a + 1 && pairs[i].a % 2 == 0 && (int)pairs[i].a < 2 * copies;
        found += planted;
        if (!planted && pairs[i].score > best_other)
            best_other = pairs[i].score;
    }
    size_t fps = 0;
    for (int s = 0; s < n; s++)
        fps += docs[s].nfps;
    printf("submissions: %d (%zu bytes, %zu fingerprints)\n", n, bytes, fps);
    printf("fingerprint: %.3f s\n", t1 - t0);
    printf("pairing:     %.3f s\n", t2 - t1);
    printf("regions:     %.3f s (%zu regions)\n", t3 - t2, regions);
    printf("total:       %.3f s\n", t3 - t0);
    printf("pairs >= %.2f: %zu, planted copies found: %d of %d, best other pair %.2f\n",
           SM_SIM_DEFAULT_THRESHOLD, np, found, copies, best_other);
    for (int s = 0; s < n; s++) {
        sm_sim_doc_free(&docs[s]);
        free(text[s]);
    }
    free(docs);
    free(text);
    free(st);
    free(pairs);
    sm_sim_hashset_free(&ex);
    return 0;
}
