/* fuzz_common: what every fuzz target of tests/fuzz shares: the libFuzzer entry point and
 * FUZZ_CHECK, which aborts (a crash libFuzzer reports, with the input saved) when a property
 * of the code under test does not hold. */
#ifndef SM_FUZZ_COMMON_H
#define SM_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                    \
        }                                                                               \
    } while (0)

#endif
