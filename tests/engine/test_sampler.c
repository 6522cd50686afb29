/* test_sampler: unit tests of sm_sampler: greedy, same seed same tokens, the masks of top-k,
 * top-p and min-p, the repetition penalty, draws following the distribution, parameter checks
 * and stop-string search. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sm_sampler.h"

static sm_sampler *mk(double temp, int64_t top_k, double top_p, double min_p, double rep,
                      uint64_t seed, int64_t vocab)
{
    sm_sampler_params p;
    sm_sampler_params_init(&p);
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.repeat_penalty = rep;
    p.seed = seed;
    sm_sampler *s = NULL;
    sm_err err = {0};
    assert_int_equal(sm_sampler_new(&p, vocab, &s, &err), SM_OK);
    return s;
}

static int32_t draw(sm_sampler *s, const float *l, const int32_t *h, size_t nh)
{
    int32_t t = -1;
    sm_err err = {0};
    assert_int_equal(sm_sampler_sample(s, l, h, nh, &t, &err), SM_OK);
    return t;
}

static void test_greedy(void **state)
{
    (void)state;
    float l[6] = {0.1f, 3.0f, -2.0f, 3.0f, 2.9f, 0.0f};
    sm_sampler *s = mk(0, 0, 1, 0, 1, 1, 6);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(draw(s, l, NULL, 0), 1); /* lowest id among equal maxima */
    }
    assert_true(sm_sampler_probs(s)[1] == 1.0f);
    sm_sampler_free(&s);
    assert_null(s);
    s = mk(1.0, 1, 1, 0, 1, 1, 6); /* top_k 1 is greedy too */
    assert_int_equal(draw(s, l, NULL, 0), 1);
    sm_sampler_free(&s);
}

static void test_same_seed_same_tokens(void **state)
{
    (void)state;
    enum { VOC = 1000, N = 300 };
    float *l = malloc(VOC * sizeof *l);
    uint64_t x = 99;
    for (int i = 0; i < VOC; i++) {
        x = x * 6364136223846793005ULL + 1;
        l[i] = (float)((x >> 40) % 1000) / 200.0f;
    }
    sm_sampler *a = mk(0.8, 0, 0.95, 0.0, 1.1, 1234, VOC);
    sm_sampler *b = mk(0.8, 0, 0.95, 0.0, 1.1, 1234, VOC);
    sm_sampler *c = mk(0.8, 0, 0.95, 0.0, 1.1, 1235, VOC);
    int32_t hist[N];
    int differ = 0;
    for (int i = 0; i < N; i++) {
        int32_t ta = draw(a, l, hist, (size_t)i), tb = draw(b, l, hist, (size_t)i);
        int32_t tc = draw(c, l, hist, (size_t)i);
        assert_int_equal(ta, tb);
        differ += ta != tc;
        hist[i] = ta;
    }
    assert_true(differ > N / 4);
    sm_sampler_free(&a);
    sm_sampler_free(&b);
    sm_sampler_free(&c);
    free(l);
}

static int count_nonzero(const float *p, int n, double *sum)
{
    int k = 0;
    *sum = 0;
    for (int i = 0; i < n; i++) {
        k += p[i] > 0;
        *sum += p[i];
    }
    return k;
}

static void test_masks(void **state)
{
    (void)state;
    /* probabilities 0.5, 0.3, 0.15, 0.05 at temperature 1, ids shuffled */
    float l[4] = {logf(0.15f), logf(0.5f), logf(0.05f), logf(0.3f)};
    double sum;
    sm_sampler *s = mk(1.0, 2, 1.0, 0, 1, 5, 4);
    for (int i = 0; i < 50; i++) {
        int32_t t = draw(s, l, NULL, 0);
        assert_true(t == 1 || t == 3);
    }
    assert_int_equal(count_nonzero(sm_sampler_probs(s), 4, &sum), 2);
    assert_true(fabs(sum - 1.0) < 1e-6);
    assert_true(fabs(sm_sampler_probs(s)[1] - 0.5 / 0.8) < 1e-6);
    sm_sampler_free(&s);

    s = mk(1.0, 0, 0.75, 0, 1, 5, 4); /* 0.5 + 0.3 >= 0.75: two kept */
    draw(s, l, NULL, 0);
    assert_int_equal(count_nonzero(sm_sampler_probs(s), 4, &sum), 2);
    sm_sampler_free(&s);
    s = mk(1.0, 0, 0.85, 0, 1, 5, 4); /* needs 0.15 too */
    draw(s, l, NULL, 0);
    assert_int_equal(count_nonzero(sm_sampler_probs(s), 4, &sum), 3);
    assert_true(sm_sampler_probs(s)[2] == 0.0f);
    sm_sampler_free(&s);

    s = mk(1.0, 0, 1.0, 0.35, 1, 5, 4); /* min_p: keep p >= 0.35 * 0.5 */
    draw(s, l, NULL, 0);
    assert_int_equal(count_nonzero(sm_sampler_probs(s), 4, &sum), 2);
    assert_true(sm_sampler_probs(s)[0] == 0.0f);
    sm_sampler_free(&s);
    s = mk(1.0, 0, 1.0, 0.29, 1, 5, 4); /* 0.15 >= 0.145 stays */
    draw(s, l, NULL, 0);
    assert_int_equal(count_nonzero(sm_sampler_probs(s), 4, &sum), 3);
    sm_sampler_free(&s);

    /* temperature sharpens: at T = 0.5 the probabilities go as p^2 */
    s = mk(0.5, 0, 1.0, 0, 1, 5, 4);
    draw(s, l, NULL, 0);
    double z = 0.25 + 0.09 + 0.0225 + 0.0025;
    assert_true(fabs(sm_sampler_probs(s)[1] - 0.25 / z) < 1e-5);
    sm_sampler_free(&s);
}

/* Candidate order of the reference below: logit descending, then id ascending. */
static const float *g_order_logits;
static int cmp_candidates(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    float lx = g_order_logits[x], ly = g_order_logits[y];
    if (lx != ly)
        return lx > ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Top-p over a flat distribution (the kept ids far more than the first 64 the sampler tries
 * first) with many equal logits and both zeros: the kept set and its probabilities are those
 * of a full sort in candidate order. */
static void test_top_p_flat(void **state)
{
    (void)state;
    enum { V = 20000 };
    float *l = malloc(sizeof(float) * V);
    int32_t *ids = malloc(sizeof(int32_t) * V);
    double *w = malloc(sizeof(double) * V);
    uint64_t x = 99;
    for (int i = 0; i < V; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        l[i] = (float)((double)(x >> 40) / (double)(1 << 24)) * 2.0f;
        if (i % 7 == 0)
            l[i] = l[i / 3]; /* ties */
        if (i % 101 == 0)
            l[i] = i % 202 ? 0.0f : -0.0f;
        ids[i] = i;
    }
    const double T = 0.8, top_p = 0.9;
    sm_sampler *s = mk(T, 0, top_p, 0, 1, 11, V);
    draw(s, l, NULL, 0);
    const float *pr = sm_sampler_probs(s);
    float maxl = l[0];
    for (int i = 1; i < V; i++)
        maxl = l[i] > maxl ? l[i] : maxl;
    double z_all = 0.0;
    for (int i = 0; i < V; i++) {
        w[i] = exp(((double)l[i] - (double)maxl) * (1.0 / T));
        z_all += w[i];
    }
    g_order_logits = l;
    qsort(ids, V, sizeof *ids, cmp_candidates);
    int n = V;
    double c = 0.0;
    for (int i = 0; i < V; i++) {
        c += w[ids[i]];
        if (c >= top_p * z_all) {
            n = i + 1;
            break;
        }
    }
    assert_true(n > 1000);
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += w[ids[i]];
    for (int i = 0; i < V; i++) {
        float want = i < n ? (float)(w[ids[i]] / sum) : 0.0f;
        if (pr[ids[i]] != want)
            fail_msg("rank %d (id %d): probability %g, want %g", i, ids[i], (double)pr[ids[i]],
                     (double)want);
    }
    sm_sampler_free(&s);
    free(l);
    free(ids);
    free(w);

    /* 100 equal logits, -0 at even ids and +0 at odd ones, the rest far below: top-p 0.5 keeps
     * exactly the 50 lowest ids (equal logits go in id order, and -0 equals +0) */
    float z[200];
    for (int i = 0; i < 200; i++)
        z[i] = i < 100 ? (i % 2 ? 0.0f : -0.0f) : -1000.0f;
    s = mk(1.0, 0, 0.7, 0, 1, 3, 200);
    draw(s, z, NULL, 0);
    for (int i = 0; i < 200; i++)
        if ((sm_sampler_probs(s)[i] != 0.0f) != (i < 70))
            fail_msg("top-p over equal logits: id %d %s", i, i < 70 ? "dropped" : "kept");
    sm_sampler_free(&s);
}

static void test_repetition_penalty(void **state)
{
    (void)state;
    float l[4] = {2.0f, 1.0f, -1.0f, 0.5f};
    int32_t hist[3] = {0, 2, 0};
    sm_sampler *s = mk(1.0, 0, 1.0, 0, 2.0, 5, 4);
    draw(s, l, hist, 3);
    const float *p = sm_sampler_probs(s);
    /* penalised logits: 1, 1, -2, 0.5 */
    double z = exp(1.0) * 2 + exp(-2.0) + exp(0.5);
    assert_true(fabs(p[0] - exp(1.0) / z) < 1e-6);
    assert_true(fabs(p[1] - exp(1.0) / z) < 1e-6);
    assert_true(fabs(p[2] - exp(-2.0) / z) < 1e-6);
    assert_true(l[0] == 2.0f); /* the caller's logits are untouched */
    sm_sampler_free(&s);
    /* greedy with the penalty: 0 and 1 tie, the lowest id wins */
    s = mk(0, 0, 1.0, 0, 2.0, 5, 4);
    assert_int_equal(draw(s, l, hist, 3), 0);
    sm_sampler_free(&s);
    /* a stronger penalty on 0 makes 1 the best; only the last repeat_last_n tokens count */
    sm_sampler_params sp;
    sm_sampler_params_init(&sp);
    sp.repeat_penalty = 4.0;
    sp.repeat_last_n = 1;
    sm_err err = {0};
    assert_int_equal(sm_sampler_new(&sp, 4, &s, &err), SM_OK);
    int32_t h2[2] = {0, 3};
    assert_int_equal(draw(s, l, h2, 1), 1);
    assert_int_equal(draw(s, l, h2, 2), 0); /* 0 is outside the window now */
    sm_sampler_free(&s);
}

static void test_distribution(void **state)
{
    (void)state;
    float l[4] = {logf(0.1f), logf(0.2f), logf(0.3f), logf(0.4f)};
    sm_sampler *s = mk(1.0, 0, 1.0, 0, 1, 77, 4);
    int cnt[4] = {0};
    enum { N = 20000 };
    for (int i = 0; i < N; i++) {
        cnt[draw(s, l, NULL, 0)]++;
    }
    for (int i = 0; i < 4; i++) {
        double f = (double)cnt[i] / N, e = 0.1 * (i + 1);
        assert_true(fabs(f - e) < 0.015);
    }
    for (int i = 0; i < 1000; i++) {
        double u = sm_sampler_uniform(s);
        assert_true(u >= 0.0 && u < 1.0);
    }
    sm_sampler_free(&s);
}

static void test_bad_params(void **state)
{
    (void)state;
    sm_sampler_params p;
    sm_sampler *s = NULL;
    sm_err err = {0};
    sm_sampler_params_init(&p);
    p.temperature = -1;
    assert_int_equal(sm_sampler_new(&p, 10, &s, &err), SM_EINVAL);
    sm_sampler_params_init(&p);
    p.top_p = 0;
    assert_int_equal(sm_sampler_new(&p, 10, &s, &err), SM_EINVAL);
    sm_sampler_params_init(&p);
    p.min_p = 1.5;
    assert_int_equal(sm_sampler_new(&p, 10, &s, &err), SM_EINVAL);
    sm_sampler_params_init(&p);
    p.repeat_penalty = 0;
    assert_int_equal(sm_sampler_new(&p, 10, &s, &err), SM_EINVAL);
    sm_sampler_params_init(&p);
    assert_int_equal(sm_sampler_new(&p, 0, &s, &err), SM_EINVAL);
    assert_null(s);
    float l[2] = {NAN, 1};
    s = mk(1, 0, 1, 0, 1, 0, 2);
    int32_t t;
    assert_int_equal(sm_sampler_sample(s, l, NULL, 0, &t, &err), SM_EINVAL);
    sm_sampler_free(&s);
}

static void test_stop_find(void **state)
{
    (void)state;
    const char *stops[] = {"</answer>", "\n\n"};
    const char *t = "abc</ans";
    assert_int_equal(sm_stop_find(t, strlen(t), 0, stops, 2), -1);
    t = "abc</answer> more";
    assert_int_equal(sm_stop_find(t, strlen(t), 8, stops, 2), 3);
    assert_int_equal(sm_stop_find(t, strlen(t), 12, stops, 2), -1); /* already seen before */
    t = "x\n\ny</answer>";
    assert_int_equal(sm_stop_find(t, strlen(t), 0, stops, 2), 1);
    assert_int_equal(sm_stop_find(t, strlen(t), 0, stops, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_same_seed_same_tokens),
        cmocka_unit_test(test_masks),
        cmocka_unit_test(test_top_p_flat),
        cmocka_unit_test(test_repetition_penalty),
        cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_stop_find),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
