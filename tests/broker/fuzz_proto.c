/* fuzz_proto: a fuzz target for the protocol decoder and the body validators. The input is
 * split into frames at each 0xFF byte; the frames go through sm_proto_parse (client and worker
 * command sets) and, when they parse, the body goes through the SUBMIT, assignment and RESULT
 * validators. Built as a libFuzzer target with -DSM_FUZZ=ON under clang; otherwise a driver
 * main() replays the files named on the command line, or, with none, a fixed number of seeded
 * mutations of valid messages (a quick smoke run for ctest and the sanitizer build). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const client[] = {"SUBMIT", "STATUS", "RESULT", "ASSIGNMENT_CREATE",
                                         NULL};
    static const char *const worker[] = {"READY", "RESULT", "FAIL", NULL};
    sm_frame f[SM_PROTO_MAX_FRAMES];
    int n = 0, total = 0;
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i == size || data[i] == 0xFF) {
            if (n < SM_PROTO_MAX_FRAMES)
                f[n++] = (sm_frame){data + start, i - start};
            total++;
            start = i + 1;
        }
    }
    for (int side = 0; side < 2; side++) {
        sm_request r;
        sm_err err;
        if (sm_proto_parse(side ? SM_PROTO_WORKER : SM_PROTO_CLIENT, side ? worker : client, f, n,
                           total, 1 << 20, &r, &err) == SM_OK) {
            const char *course, *assignment;
            int priority;
            sm_assignment_ref a = {1, "code", ""};
            if (sm_validate_submit(r.body, &course, &assignment, &priority, &err) == SM_OK)
                sm_validate_submit_kind(r.body, &a, &err);
            sm_validate_assignment(r.body, true, &err);
            sm_validate_assignment(r.body, false, &err);
            sm_validate_result(r.body, &err);
        }
        sm_request_clear(&r);
    }
    return 0;
}

#ifndef SM_FUZZ
static const char *const seeds[] = {
    "\xffSMC1\xffSUBMIT\xff" "1\xff{\"course\":\"C\",\"assignment\":\"a\",\"student_ref\":\"s\","
    "\"idempotency_key\":\"k\",\"content\":\"x\",\"language\":\"python\",\"priority\":\"batch\"}",
    "\xffSMC1\xff" "ASSIGNMENT_CREATE\xff\xff{\"course\":\"C\",\"code\":\"a\",\"kind\":\"math\","
    "\"statement\":\"s\",\"tests\":[{\"n\":1}],\"sampling\":{\"temperature\":0.5,\"top_k\":3}}",
    "\xffSMW1\xffRESULT\xff" "7\xff{\"job_id\":7,\"status\":\"graded\",\"score\":1,\"max_score\":2,"
    "\"steps\":[{\"number\":1,\"verdict\":\"correct\",\"agreement\":0.5}],\"checks\":[{\"kind\":"
    "\"test\",\"passed\":true,\"details\":{}}],\"flags\":[\"x\"],\"reasoning\":[{\"sample\":0,"
    "\"text\":\"t\"}],\"model\":{\"name\":\"m\",\"hash\":\"h\"},\"engine_version\":\"1\","
    "\"prompt_template_version\":\"p\",\"tokens\":{\"prompt\":1,\"completion\":2}}",
};

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            FILE *fp = fopen(argv[i], "rb");
            if (!fp) {
                perror(argv[i]);
                return 1;
            }
            static uint8_t buf[1 << 20];
            size_t n = fread(buf, 1, sizeof buf, fp);
            fclose(fp);
            LLVMFuzzerTestOneInput(buf, n);
        }
        return 0;
    }
    static uint8_t buf[4096];
    for (int it = 0; it < 30000; it++) {
        const char *s = seeds[it % 3];
        size_t n = strlen(s);
        memcpy(buf, s, n);
        int muts = 1 + (int)(next() % 4);
        for (int m = 0; m < muts; m++) {
            size_t at = next() % n;
            switch (next() % 4) {
            case 0: buf[at] = (uint8_t)next(); break;                          /* flip a byte */
            case 1: if (n > 1) { memmove(buf + at, buf + at + 1, n - at - 1); n--; } break;
            case 2: if (n < sizeof buf - 1) { memmove(buf + at + 1, buf + at, n - at);
                        buf[at] = "{}[]\":,0-9e\xff\\"[next() % 14]; n++; } break;
            default: n = at + 1; break;                                        /* truncate */
            }
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("30000 mutated messages decoded\n");
    return 0;
}
#endif
