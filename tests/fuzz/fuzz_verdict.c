/* fuzz_verdict: fuzz target for the verdict block parser (worker/sm_verdict.c). The first
 * input byte picks the assignment's maximum score; the rest is the model's critique. A
 * parsed verdict must keep its promises: steps numbered 1..n without gaps (at most
 * SM_VERDICT_MAX_STEPS), a known verdict and non-empty bounded fields on each, a score in
 * [0, maximum] and the assignment's maximum; a refusal leaves the verdict empty and says why. */
#include <math.h>
#include <string.h>

#include "fuzz_common.h"
#include "sm_verdict.h"

static void fuzz_field(const char *s)
{
    FUZZ_CHECK(s != NULL && s[0] != '\0' && strlen(s) <= SM_VERDICT_MAX_FIELD);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const double maxima[] = {10, 1, 2.5, 100, 0.5, 7, 1000, 0.25};
    if (size < 1)
        return 0;
    double max = maxima[data[0] % (sizeof maxima / sizeof maxima[0])];
    sm_verdict v;
    memset(&v, 0x5A, sizeof v);
    sm_err err = {0};
    if (sm_verdict_parse((const char *)data + 1, size - 1, max, &v, &err) != SM_OK) {
        FUZZ_CHECK(err.msg[0] != '\0');
        FUZZ_CHECK(v.steps == NULL && v.n_steps == 0 && v.summary == NULL);
        return 0;
    }
    FUZZ_CHECK(v.n_steps >= 1 && v.n_steps <= SM_VERDICT_MAX_STEPS);
    for (int i = 0; i < v.n_steps; i++) {
        FUZZ_CHECK(v.steps[i].number == i + 1);
        FUZZ_CHECK(v.steps[i].verdict >= SM_VERDICT_CORRECT &&
                   v.steps[i].verdict < SM_VERDICT_KINDS);
        fuzz_field(v.steps[i].quoted);
        fuzz_field(v.steps[i].explanation);
        FUZZ_CHECK(sm_verdict_kind_name(v.steps[i].verdict) != NULL);
    }
    FUZZ_CHECK(isfinite(v.score) && v.score >= 0 && v.score <= max);
    FUZZ_CHECK(v.max_score == max);
    fuzz_field(v.summary);
    char num[32];
    sm_verdict_format_number(v.score, num, sizeof num);
    FUZZ_CHECK(num[0] != '\0');
    sm_verdict_clear(&v);
    return 0;
}
