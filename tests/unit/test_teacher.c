/* test_teacher: parsing of teacher token lifetimes (`stepmark teacher add|rotate --expires`). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sm_teacher.h"

static void parses_units(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t seconds;
    } ok[] = {{"1s", 1},        {"90m", 5400},   {"12h", 43200},
              {"30d", 2592000}, {"2w", 1209600}, {"3650d", SM_TEACHER_MAX_LIFETIME_S}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        int64_t s = -1;
        sm_err err = {0};
        assert_int_equal(sm_teacher_parse_lifetime(ok[i].text, &s, &err), SM_OK);
        assert_int_equal(s, ok[i].seconds);
    }
}

static void refuses_bad_text(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",    "d",   "30",  "30x",   "0d",   "-1d",           "1.5d",
        " 1d", "1d ", "1dd", "3651d", "522w", "999999999999w", "9999999999999s"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t s = 7;
        sm_err err = {0};
        assert_int_equal(sm_teacher_parse_lifetime(bad[i], &s, &err), SM_EINVAL);
        assert_int_equal(s, 7);
        assert_true(err.msg[0] != '\0');
    }
    sm_err err = {0};
    int64_t s = 0;
    assert_int_equal(sm_teacher_parse_lifetime(NULL, &s, &err), SM_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_units),
        cmocka_unit_test(refuses_bad_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
