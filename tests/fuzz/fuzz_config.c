/* fuzz_config: fuzz target for the YAML configuration loader (config/sm_config.c). The input
 * is the text of a stepmark.yaml: parsed from memory with sm_config_parse and, when it starts
 * with '#', also written to a temporary file and read with sm_config_load. Every input must be
 * accepted or refused with a message, and an accepted one must leave every string setting
 * NUL-terminated. */
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "sm_config.h"

static void fuzz_config_check(const sm_config *c)
{
    FUZZ_CHECK(memchr(c->database.url, 0, sizeof c->database.url));
    FUZZ_CHECK(memchr(c->broker.client_endpoint, 0, sizeof c->broker.client_endpoint));
    FUZZ_CHECK(memchr(c->broker.curve.secret_key_file, 0, sizeof c->broker.curve.secret_key_file));
    FUZZ_CHECK(memchr(c->worker.name, 0, sizeof c->worker.name));
    FUZZ_CHECK(memchr(c->worker.device, 0, sizeof c->worker.device));
    FUZZ_CHECK(memchr(c->worker.dtype, 0, sizeof c->worker.dtype));
    FUZZ_CHECK(memchr(c->worker.isa, 0, sizeof c->worker.isa));
    FUZZ_CHECK(memchr(c->sandbox.bwrap, 0, sizeof c->sandbox.bwrap));
    FUZZ_CHECK(memchr(c->http.address, 0, sizeof c->http.address));
    FUZZ_CHECK(memchr(c->logging.level, 0, sizeof c->logging.level));
}

/* Through a temporary file, as programs read it. */
static void fuzz_config_file(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/sm-fuzz-config-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return;
    bool ok = write(fd, data, size) == (ssize_t)size;
    close(fd);
    if (ok) {
        static sm_config cfg;
        sm_err err = {0};
        sm_config_defaults(&cfg);
        if (sm_config_load(&cfg, path, &err) == SM_OK)
            fuzz_config_check(&cfg);
        else
            FUZZ_CHECK(err.msg[0] != '\0');
    }
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sm_config cfg;
    sm_err err = {0};
    sm_config_defaults(&cfg);
    if (sm_config_parse(&cfg, "fuzz.yaml", (const char *)data, size, &err) == SM_OK)
        fuzz_config_check(&cfg);
    else
        FUZZ_CHECK(err.msg[0] != '\0');
    if (size > 0 && data[0] == '#')
        fuzz_config_file(data, size);
    return 0;
}
