/* sm_testspec: the test objects of a code assignment ("tests": [...]): their kinds (io, call,
 * pytest, driver, junit), strict validation (used by the broker when an assignment is stored and
 * by the worker before it runs anything) and the small accessors both sides share. The format is
 * documented in docs/teacher-guide.md. */
#ifndef SM_TESTSPEC_H
#define SM_TESTSPEC_H

#include <stdbool.h>

#include <jansson.h>

#include "sm_error.h"

typedef enum sm_test_kind {
    SM_TEST_IO,     /* stdin -> stdout, compared as trimmed text (the default) */
    SM_TEST_CALL,   /* Python: a function called with JSON args, the value compared */
    SM_TEST_PYTEST, /* Python: a teacher's pytest file against the student's module */
    SM_TEST_DRIVER, /* C, C++: a teacher's driver linked with the student's functions */
    SM_TEST_JUNIT,  /* Java: a teacher's JUnit 5 test class against the student's class */
    SM_TEST_BAD
} sm_test_kind;

#define SM_TESTS_MAX 256
#define SM_TEST_SOURCE_MAX (1024 * 1024) /* a pytest file, driver or test class */
#define SM_TEST_TIME_MS_MAX 600000
#define SM_TEST_MEMORY_MB_MIN 16
#define SM_TEST_MEMORY_MB_MAX 65536

/* The kind of test t ("kind" absent = io); SM_TEST_BAD for an unknown kind. */
sm_test_kind sm_test_kind_of(const json_t *t);
const char *sm_test_kind_name(sm_test_kind k);
/* The points a test is worth ("points", default 1). */
double sm_test_points(const json_t *t);
/* Whether kind k can test a program in language ("c", "cpp", "python", "java"; NULL = any). */
bool sm_test_kind_fits(sm_test_kind k, const char *language);

/* Checks every test of tests (a JSON array) strictly: known kinds and keys only, types,
 * sizes and ranges. language: the assignment's language or NULL when it names none (then a
 * kind's language is checked when the worker runs it). SM_EINVAL with "tests[i]: ..." on
 * the first problem. */
sm_code sm_tests_validate(const json_t *tests, const char *language, sm_err *err);

/* Whether s is a Python identifier of ASCII letters, digits and '_' (1..max chars). */
bool sm_test_ident_ok(const char *s, size_t max);

#endif
