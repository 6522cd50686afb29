/* test_similarity: the similarity checker without a database (common/sm_similarity*.c):
 * renamed identifiers and changed comments and whitespace still match, unrelated programs do
 * not, proofs match through LaTeX noise and case, matched regions map back to the right lines
 * and characters, starter code is left out, and hostile inputs (huge tokens, binary bytes,
 * unterminated comments) stay bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sm_similarity.h"

static const char *prog_a = "#include <stdio.h>\n"
                            "/* sum of the squares of the numbers read */\n"
                            "int main(void)\n"
                            "{\n"
                            "    int count = 0, value;\n"
                            "    long total = 0;\n"
                            "    while (scanf(\"%d\", &value) == 1) {\n"
                            "        total += (long)value * value; // square it\n"
                            "        count++;\n"
                            "        if (count > 1000) break;\n"
                            "    }\n"
                            "    printf(\"%d numbers, total %ld\\n\", count, total);\n"
                            "    return 0;\n"
                            "}\n";

/* prog_a with every identifier renamed, other comments and another layout */
static const char *prog_a_renamed = "#include <stdio.h>\n"
                                    "// reads numbers; prints the sum of their squares\n"
                                    "int main(void) {\n"
                                    "  int n = 0, x;   long acc = 0;\n"
                                    "  while (scanf(\"%d\", &x) == 1)\n"
                                    "  {\n"
                                    "    acc += (long)x * x;\n"
                                    "    n++;\n"
                                    "    if (n > 1000) break;\n"
                                    "  }\n"
                                    "  printf(\"%d numbers, total %ld\\n\", n, acc);\n"
                                    "  return 0;\n"
                                    "}\n";

static const char *prog_other =
    "#include <string.h>\n"
    "static void reverse(char *s)\n"
    "{\n"
    "    size_t len = strlen(s);\n"
    "    for (size_t i = 0; i < len / 2; i++) {\n"
    "        char t = s[i];\n"
    "        s[i] = s[len - 1 - i];\n"
    "        s[len - 1 - i] = t;\n"
    "    }\n"
    "}\n"
    "struct node { struct node *next; int key; };\n"
    "int find(struct node *h, int k) { while (h && h->key != k) h = h->next; return h != 0; }\n";

static sm_sim_match compare(sm_sim_lang lang, const char *a, const char *b)
{
    sm_sim_opts o = {.lang = lang};
    sm_sim_doc da, db;
    sm_err err = {0};
    assert_int_equal(sm_sim_fingerprint(&o, a, strlen(a), &da, &err), SM_OK);
    assert_int_equal(sm_sim_fingerprint(&o, b, strlen(b), &db, &err), SM_OK);
    sm_sim_match m;
    assert_int_equal(sm_sim_compare(&da, &db, NULL, &m, &err), SM_OK);
    sm_sim_doc_free(&da);
    sm_sim_doc_free(&db);
    return m;
}

static void renamed_identifiers_match(void **state)
{
    (void)state;
    sm_sim_match m = compare(SM_SIM_C, prog_a, prog_a_renamed);
    assert_true(m.score >= 0.9);
    assert_true(m.nregions >= 1);
    sm_sim_match_free(&m);
}

static void comments_and_whitespace_do_not_matter(void **state)
{
    (void)state;
    sm_sim_opts o = {.lang = SM_SIM_C};
    const char *a = "int f(int a){return a*2+1;} /* x */ int g(int b){return f(b)-f(b+1);}";
    const char *b = "int f ( int a )\n{\n\treturn a * 2 + 1; // twice plus one\n}\n\n\n"
                    "int g(int b)\n{\n    return f(b) - f(b + 1); /* a\n long\n comment */\n}\n";
    sm_sim_token *ta, *tb;
    size_t na, nb;
    sm_err err = {0};
    assert_int_equal(sm_sim_tokenize(&o, a, strlen(a), &ta, &na, &err), SM_OK);
    assert_int_equal(sm_sim_tokenize(&o, b, strlen(b), &tb, &nb, &err), SM_OK);
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++)
        assert_true(ta[i].h == tb[i].h);
    free(ta);
    free(tb);
    sm_sim_match m = compare(SM_SIM_C, a, b);
    assert_true(m.score > 0.99);
    sm_sim_match_free(&m);
}

static void unrelated_programs_do_not_match(void **state)
{
    (void)state;
    sm_sim_match m = compare(SM_SIM_C, prog_a, prog_other);
    assert_true(m.score < 0.2);
    sm_sim_match_free(&m);
    const char *p1 = "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b"
                     "\n    return a\n\nprint(fib(int(input())))\n";
    const char *p2 = "import sys\nwords = sys.stdin.read().split()\ncounts = {}\nfor w in words:\n"
                     "    counts[w] = counts.get(w, 0) + 1\nfor w, c in sorted(counts.items()):\n"
                     "    print(w, c)\n";
    m = compare(SM_SIM_PYTHON, p1, p2);
    assert_true(m.score < 0.2);
    sm_sim_match_free(&m);
}

static void python_and_java_normalized(void **state)
{
    (void)state;
    const char *p1 = "# first\ndef area(w, h):\n    '''area of a box'''\n    return w * h * 2 + 7\n"
                     "print(area(3, 4), area(5, 6), area(7, 8))\n";
    const char *p2 =
        "def size(x, y):  # mine\n    \"\"\"size of it\"\"\"\n    return x * y * 2 + 7\n"
        "print(size(3, 4), size(5, 6), size(7, 8))\n";
    sm_sim_match m = compare(SM_SIM_PYTHON, p1, p2);
    assert_true(m.score > 0.99);
    sm_sim_match_free(&m);
    const char *j1 = "public class A { static int sq(int v) { return v * v; } public static void "
                     "main(String[] a) { System.out.println(sq(4) + sq(5)); } }";
    const char *j2 = "public class B {\n static int pow2(int q) { return q * q; } // helper\n "
                     "public static void main(String[] args) {\n  System.out.println(pow2(4) + "
                     "pow2(5));\n }\n}";
    m = compare(SM_SIM_JAVA, j1, j2);
    assert_true(m.score > 0.99);
    sm_sim_match_free(&m);
}

static void proofs_match_through_latex_noise(void **state)
{
    (void)state;
    const char *a = "Suppose $n$ is even, so $n = 2k$ for some integer $k$. Then "
                    "$n^2 = 4k^2 = 2(2k^2)$, which is even. Hence the square of an even number "
                    "is even, as required.";
    const char *b = "SUPPOSE n is even, so \\( n = 2k \\) for some integer k; then "
                    "\\[ n^{2} = 4 k^{2} = 2 \\left( 2k^{2} \\right) \\] which is even. hence "
                    "the square of an even number is even as required";
    sm_sim_match m = compare(SM_SIM_TEXT, a, b);
    assert_true(m.score > 0.9);
    sm_sim_match_free(&m);
    const char *c = "By induction on n: the base case n = 1 holds since 1 = 1(2)/2. Assume the "
                    "formula for n; adding n + 1 to both sides gives the formula for n + 1.";
    m = compare(SM_SIM_TEXT, a, c);
    assert_true(m.score < 0.1);
    sm_sim_match_free(&m);
}

/* The regions of a copied function map back to its lines in both texts. */
static void positions_map_back(void **state)
{
    (void)state;
    const char *fn = "int gcd(int a, int b)\n{\n    while (b != 0) {\n        int t = a % b;\n"
                     "        a = b;\n        b = t;\n    }\n    return a;\n}\n";
    char a[2048], b[2048];
    snprintf(a, sizeof a, "/* é — accents before */\n#include <stdio.h>\n%s", fn);
    snprintf(b, sizeof b,
             "#include <stdlib.h>\nstatic double half(double x) { return x / 2.0; "
             "}\n\n\n%sint z;\n",
             fn);
    sm_sim_match m = compare(SM_SIM_C, a, b);
    assert_true(m.nregions >= 1);
    /* every region lies within gcd's lines (3..11 in a, 5..13 in b) and both sides hold the
     * same text, since it was copied verbatim */
    for (size_t i = 0; i < m.nregions; i++) {
        sm_sim_region r = m.regions[i];
        sm_sim_pos sa = sm_sim_locate(a, strlen(a), r.a.start);
        sm_sim_pos ea = sm_sim_locate(a, strlen(a), r.a.end);
        sm_sim_pos sb = sm_sim_locate(b, strlen(b), r.b.start);
        sm_sim_pos eb = sm_sim_locate(b, strlen(b), r.b.end);
        assert_true(sa.line >= 3 && ea.line <= 11);
        assert_true(sb.line >= 5 && eb.line <= 13);
        assert_int_equal(r.a.end - r.a.start, r.b.end - r.b.start);
        assert_memory_equal(a + r.a.start, b + r.b.start, r.a.end - r.a.start);
        /* the character offset counts "é" and "—" as one character each (3 bytes saved) */
        assert_int_equal(sa.chr, r.a.start - 3);
        assert_int_equal(sb.chr, r.b.start);
    }
    /* most of the function is covered */
    uint32_t covered = 0;
    for (size_t i = 0; i < m.nregions; i++)
        covered += m.regions[i].a.end - m.regions[i].a.start;
    assert_true(covered * 10 >= strlen(fn) * 7);
    sm_sim_pos p = sm_sim_locate("ab\ncd\n", 6, 4);
    assert_int_equal(p.line, 2);
    assert_int_equal(p.col, 2);
    assert_int_equal(p.chr, 4);
    sm_sim_match_free(&m);
}

/* A class: two copies among unrelated programs; the starter code shared by all is left out. */
static void class_pairs_and_starter(void **state)
{
    (void)state;
    static const char *starter = "#include <stdio.h>\nint main(void)\n{\n    int count = 0, "
                                 "value;\n    long total = 0;\n";
    const char *texts[] = {prog_a, prog_other, prog_a_renamed,
                           "int main(void) { int count = 0, value; long total = 0; "
                           "puts(\"nothing here at all\"); return 1; }"};
    sm_sim_opts o = {.lang = SM_SIM_C}, ob = {.lang = SM_SIM_C, .all = true};
    sm_sim_doc docs[4], base;
    sm_err err = {0};
    for (int i = 0; i < 4; i++)
        assert_int_equal(sm_sim_fingerprint(&o, texts[i], strlen(texts[i]), &docs[i], &err), SM_OK);
    assert_int_equal(sm_sim_fingerprint(&ob, starter, strlen(starter), &base, &err), SM_OK);
    sm_sim_class_opts co = {.threshold = 0.5, .base = &base, .min_shared = 1};
    sm_sim_pair *pairs;
    size_t n;
    sm_sim_hashset ex;
    assert_int_equal(sm_sim_class_pairs(docs, 4, &co, &pairs, &n, &ex, &err), SM_OK);
    assert_int_equal(n, 1);
    assert_int_equal(pairs[0].a, 0);
    assert_int_equal(pairs[0].b, 2);
    assert_true(ex.n >= base.nuniq);
    sm_sim_match m;
    assert_int_equal(sm_sim_compare(&docs[0], &docs[2], &ex, &m, &err), SM_OK);
    for (size_t i = 0; i < m.nregions; i++) /* nothing from the starter's lines */
        assert_true(sm_sim_locate(texts[0], strlen(texts[0]), m.regions[i].a.start).line > 4);
    sm_sim_match_free(&m);
    free(pairs);
    sm_sim_hashset_free(&ex);
    for (int i = 0; i < 4; i++)
        sm_sim_doc_free(&docs[i]);
    sm_sim_doc_free(&base);
}

/* Huge tokens, binary bytes, NULs, unterminated comments and strings: bounded and safe. */
static void hostile_inputs_bounded(void **state)
{
    (void)state;
    size_t len = SM_SIM_MAX_BYTES + 4096;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, 'x', len); /* one identifier of 4 MiB */
    for (int lang = SM_SIM_TEXT; lang <= SM_SIM_JAVA; lang++) {
        sm_sim_opts o = {.lang = (sm_sim_lang)lang};
        sm_sim_doc d;
        sm_err err = {0};
        assert_int_equal(sm_sim_fingerprint(&o, big, len, &d, &err), SM_OK);
        assert_true(d.ntokens <= 1);
        sm_sim_doc_free(&d);
    }
    for (size_t i = 0; i < len; i++) /* binary noise */
        big[i] = (char)((i * 2654435761u) >> 13);
    for (int lang = SM_SIM_TEXT; lang <= SM_SIM_JAVA; lang++) {
        sm_sim_opts o = {.lang = (sm_sim_lang)lang};
        sm_sim_doc d;
        sm_err err = {0};
        assert_int_equal(sm_sim_fingerprint(&o, big, len, &d, &err), SM_OK);
        assert_true(d.ntokens <= SM_SIM_MAX_TOKENS);
        for (size_t i = 0; i < d.nfps; i++)
            assert_true(d.fps[i].start < d.fps[i].end && d.fps[i].end <= SM_SIM_MAX_BYTES);
        sm_sim_doc_free(&d);
    }
    free(big);
    const char *bad[] = {"/* never closed",
                         "\"never closed",
                         "x = '''never",
                         "\\",
                         "\\begin{",
                         "a\\",
                         "'\\",
                         "\0\0\0",
                         ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int lang = SM_SIM_TEXT; lang <= SM_SIM_JAVA; lang++) {
            sm_sim_opts o = {.lang = (sm_sim_lang)lang};
            sm_sim_doc d;
            size_t n = i == 7 ? 3 : strlen(bad[i]);
            assert_int_equal(sm_sim_fingerprint(&o, bad[i], n, &d, NULL), SM_OK);
            sm_sim_doc_free(&d);
        }
    }
}

static void language_names(void **state)
{
    (void)state;
    sm_sim_lang l;
    assert_int_equal(sm_sim_lang_parse("code", "python", &l, NULL), SM_OK);
    assert_int_equal(l, SM_SIM_PYTHON);
    assert_int_equal(sm_sim_lang_parse("proof", NULL, &l, NULL), SM_OK);
    assert_int_equal(l, SM_SIM_TEXT);
    assert_int_equal(sm_sim_lang_parse("code", "cobol", &l, NULL), SM_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(renamed_identifiers_match),
        cmocka_unit_test(comments_and_whitespace_do_not_matter),
        cmocka_unit_test(unrelated_programs_do_not_match),
        cmocka_unit_test(python_and_java_normalized),
        cmocka_unit_test(proofs_match_through_latex_noise),
        cmocka_unit_test(positions_map_back),
        cmocka_unit_test(class_pairs_and_starter),
        cmocka_unit_test(hostile_inputs_bounded),
        cmocka_unit_test(language_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
