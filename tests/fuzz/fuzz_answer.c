/* fuzz_answer: fuzz target for answer extraction and evaluation (worker/sm_answer.c,
 * worker/sm_answer_eval.c). The input is "student text 0xFF answer key" (no 0xFF: the key is
 * the text itself). It runs sm_answer_extract on both, ans_eval on the text, and
 * sm_answer_compare; an answer compared with itself must be equal (unless empty once
 * normalized), and comparing a with b must give what comparing b with a gives. Bounded work on hostile
 * input is part of the contract, so a slow input is a finding (libFuzzer's -timeout). */
#include <string.h>

#include <jansson.h>

#include "fuzz_common.h"
#include "sm_answer.h"
#include "sm_answer_eval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0;
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *sep = memchr(buf, 0xFF, size);
    const char *key = buf;
    if (sep) {
        *sep = '\0';
        key = sep + 1;
    }
    sm_err err = {0};
    char *answer = NULL;
    FUZZ_CHECK(sm_answer_extract(buf, &answer, &err) == SM_OK);
    if (answer && strlen(answer) <= SM_ANSWER_MAX_ANSWER) {
        json_t *self = NULL;
        FUZZ_CHECK(sm_answer_compare_values(answer, answer, &self, &err) == SM_OK);
        /* equal to itself, unless it normalizes to nothing ("~", "\\,": method "none") */
        FUZZ_CHECK(json_is_true(json_object_get(self, "equal")) ||
                   !strcmp(json_string_value(json_object_get(self, "method")), "none"));
        json_decref(self);
    }
    free(answer);
    ans_val v;
    char why[128];
    if (ans_eval(buf, &v, why, sizeof why)) {
        if (v.exact)
            FUZZ_CHECK(mpz_sgn(mpq_denref(v.q)) > 0);
    }
    ans_val_clear(&v);
    json_t *res = NULL;
    FUZZ_CHECK(sm_answer_compare(buf, key, &res, &err) == SM_OK);
    FUZZ_CHECK(json_is_object(res) && json_is_boolean(json_object_get(res, "equal")));
    /* the comparison is symmetric: which side is the key does not matter */
    const char *x = json_string_value(json_object_get(res, "extracted"));
    const char *y = json_string_value(json_object_get(res, "expected"));
    if (x && y) {
        json_t *ab = NULL, *ba = NULL;
        FUZZ_CHECK(sm_answer_compare_values(x, y, &ab, &err) == SM_OK);
        FUZZ_CHECK(sm_answer_compare_values(y, x, &ba, &err) == SM_OK);
        if (json_is_true(json_object_get(ab, "equal")) !=
            json_is_true(json_object_get(ba, "equal"))) {
            fprintf(stderr, "asymmetric: [%s] vs [%s]: %s / %s\n", x, y,
                    json_string_value(json_object_get(ab, "detail")),
                    json_string_value(json_object_get(ba, "detail")));
            FUZZ_CHECK(!"compare(a, b) == compare(b, a)");
        }
        json_decref(ab);
        json_decref(ba);
    }
    json_decref(res);
    free(buf);
    return 0;
}
