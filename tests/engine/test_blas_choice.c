/* test_blas_choice: which kernels fast mode gives prompts. OpenBLAS picks its kernels by its
 * own CPU detection, which OPENBLAS_CORETYPE overrides (ctest runs this test with "Prescott",
 * SSE3 kernels, and "Haswell", AVX2): fast mode must send prompts to OpenBLAS only where its
 * kernels are at least as wide as the engine's variant, and where it does not, a fast-mode
 * prompt product must equal the deterministic one bitwise (the same kernels ran). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "sm_kernels.h"

static const char *expected_core(void)
{
    const char *c = getenv("OPENBLAS_CORETYPE");
    return c && *c ? c : NULL;
}

static void test_choice_per_variant(void **state)
{
    (void)state;
    const char *want = expected_core();
    for (int i = 0; i < SM_ISA_COUNT; i++) {
        sm_isa isa = (sm_isa)i;
        sm_kctx k = {.isa = isa, .deterministic = false};
        char core[64] = "";
        bool blas = sm_kernels_fast_uses_blas(&k, core, sizeof core);
        assert_true(core[0] != '\0');
        if (want)
            assert_int_equal(strcasecmp(core, want), 0);
        bool wide512 = strcasecmp(core, "SkylakeX") == 0 || strcasecmp(core, "Cooperlake") == 0 ||
                       strcasecmp(core, "SapphireRapids") == 0;
        bool wide256 = wide512 || strcasecmp(core, "Haswell") == 0 || strcasecmp(core, "Zen") == 0;
        if (isa == SM_ISA_PORTABLE)
            assert_true(blas);
        else if (isa == SM_ISA_AVX2)
            assert_int_equal(blas, wide256);
        else
            assert_int_equal(blas, wide512);
    }
    /* the two cores ctest sets: SSE3 kernels suit no SIMD variant, AVX2 ones suit avx2 only */
    sm_kctx avx2 = {.isa = SM_ISA_AVX2}, avx512 = {.isa = SM_ISA_AVX512};
    if (want && strcasecmp(want, "Prescott") == 0) {
        assert_false(sm_kernels_fast_uses_blas(&avx2, NULL, 0));
        assert_false(sm_kernels_fast_uses_blas(&avx512, NULL, 0));
    }
    if (want && strcasecmp(want, "Haswell") == 0) {
        assert_true(sm_kernels_fast_uses_blas(&avx2, NULL, 0));
        assert_false(sm_kernels_fast_uses_blas(&avx512, NULL, 0));
    }
}

/* A prompt-sized bf16 product (40 rows, above fast mode's sgemm threshold) in both modes, for
 * every variant this CPU runs. */
static void test_fast_prompt_product(void **state)
{
    (void)state;
    enum { ROWS = 72, COLS = 96, BATCH = 40 };
    uint16_t *w = malloc(sizeof *w * ROWS * COLS);
    float *x = malloc(sizeof *x * BATCH * COLS);
    float *yd = malloc(sizeof *yd * BATCH * ROWS), *yf = malloc(sizeof *yf * BATCH * ROWS);
    assert_non_null(w);
    assert_non_null(x);
    assert_non_null(yd);
    assert_non_null(yf);
    uint32_t s = 12345;
    for (int i = 0; i < ROWS * COLS; i++) {
        s = s * 1664525u + 1013904223u;
        w[i] = sm_f32_to_bf16((float)((double)(s >> 8) / 8388608.0 - 1.0));
    }
    for (int i = 0; i < BATCH * COLS; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((double)(s >> 8) / 8388608.0 - 1.0);
    }
    sm_matrix m = {.dtype = SM_DTYPE_BF16, .rows = ROWS, .cols = COLS, .data = w};
    int tested = 0;
    for (int i = 0; i < SM_ISA_COUNT; i++) {
        sm_isa isa = (sm_isa)i;
        if (!sm_isa_supported(isa))
            continue;
        sm_err err;
        sm_kctx det = {.isa = isa, .deterministic = true};
        sm_kctx fast = {.isa = isa, .deterministic = false};
        assert_int_equal(sm_matmul(&det, &m, NULL, x, COLS, BATCH, yd, ROWS, &err), SM_OK);
        assert_int_equal(sm_matmul(&fast, &m, NULL, x, COLS, BATCH, yf, ROWS, &err), SM_OK);
        if (!sm_kernels_fast_uses_blas(&fast, NULL, 0)) {
            assert_memory_equal(yd, yf, sizeof *yd * BATCH * ROWS);
        } else {
            double num = 0, den = 0;
            for (int j = 0; j < BATCH * ROWS; j++) {
                num += ((double)yd[j] - yf[j]) * ((double)yd[j] - yf[j]);
                den += (double)yd[j] * yd[j];
            }
            assert_true(sqrt(num / den) < 1e-5);
        }
        tested++;
    }
    assert_true(tested >= 1);
    free(w);
    free(x);
    free(yd);
    free(yf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choice_per_variant),
        cmocka_unit_test(test_fast_prompt_product),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
