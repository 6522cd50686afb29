/* fuzz_proto: fuzz target for the wire protocol decoder (common/sm_proto.c) and the request
 * validators (daemon/validate.c). The input is split into frames at each 0xFF byte; the frames
 * go through sm_proto_parse with the client and the worker command sets and, when they parse,
 * the body through the SUBMIT (for code, math and proof assignments), ASSIGNMENT_CREATE/UPDATE,
 * LIST and RESULT validators. Every refusal must carry a message; the correlation id never exceeds
 * its bound. (Moved here from tests/broker/fuzz_proto.c.) */
#include <string.h>

#include "broker_int.h"
#include "fuzz_common.h"
#include "grades.h"

static void fuzz_body(const json_t *body)
{
    static const sm_assignment_ref kinds[] = {
        {1, "code", ""}, {2, "code", "python"}, {3, "math", ""}, {4, "proof", ""}};
    sm_err err = {0};
    const char *course = NULL, *assignment = NULL;
    int priority = 0;
    if (sm_validate_submit(body, &course, &assignment, &priority, &err) == SM_OK) {
        FUZZ_CHECK(course && assignment);
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            err.msg[0] = '\0';
            if (sm_validate_submit_kind(body, &kinds[k], &err) != SM_OK)
                FUZZ_CHECK(err.msg[0] != '\0');
        }
    } else {
        FUZZ_CHECK(err.msg[0] != '\0');
    }
    for (int create = 0; create < 2; create++) {
        err.msg[0] = '\0';
        if (sm_validate_assignment(body, create, &err) != SM_OK)
            FUZZ_CHECK(err.msg[0] != '\0');
    }
    err.msg[0] = '\0';
    if (sm_validate_result(body, &err) != SM_OK)
        FUZZ_CHECK(err.msg[0] != '\0');
    sm_list_query q;
    err.msg[0] = '\0';
    if (sm_validate_list(body, &course, &assignment, &q, &err) != SM_OK)
        FUZZ_CHECK(err.msg[0] != '\0');
    else
        FUZZ_CHECK(q.limit >= 0 && q.limit <= SM_LIST_MAX && course && assignment);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const client[] = {
        "SUBMIT", "STATUS", "RESULT", "ASSIGNMENT_CREATE", "ASSIGNMENT_UPDATE", "CANCEL",
        "PING",   "LIST",   NULL};
    static const char *const worker[] = {"READY", "RESULT", "FAIL", "PROGRESS", "HEARTBEAT", NULL};
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
        sm_err err = {0};
        memset(&r, 0, sizeof r);
        sm_code rc = sm_proto_parse(side ? SM_PROTO_WORKER : SM_PROTO_CLIENT,
                                    side ? worker : client, f, n, total, 1 << 20, &r, &err);
        FUZZ_CHECK(r.id_len <= SM_PROTO_MAX_ID);
        if (rc == SM_OK) {
            FUZZ_CHECK(json_is_object(r.body));
            fuzz_body(r.body);
        } else {
            FUZZ_CHECK(err.msg[0] != '\0');
            json_t *eb = sm_proto_error_body(rc, err.msg, false);
            FUZZ_CHECK(eb != NULL);
            json_decref(eb);
        }
        sm_request_clear(&r);
    }
    if (n > 0) {
        sm_utf8_valid(f[0].data, f[0].size);
        char code[80];
        size_t len = f[0].size < sizeof code - 1 ? f[0].size : sizeof code - 1;
        memcpy(code, f[0].data, len);
        code[len] = '\0';
        if (sm_proto_code_ok(code, 64))
            FUZZ_CHECK(strlen(code) >= 1 && strlen(code) <= 64 &&
                       sm_utf8_valid((const unsigned char *)code, strlen(code)));
        sm_proto_code_from_name(code);
    }
    return 0;
}
