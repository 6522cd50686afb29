/* fuzz_model_files: libFuzzer target for the model-file readers. The input's first byte picks
 * the reader (safetensors or GGUF); the rest is the file, handed over as an in-memory file
 * (memfd) so the readers run exactly as on disk. Every input must give SM_OK or an error code
 * with a message, never a crash, a leak or an out-of-bounds read.
 * (Moved here from tests/engine/; tests/fuzz/CMakeLists.txt says how it is built.) */
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "sm_gguf.h"
#include "sm_safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    int fd = memfd_create("sm_fuzz", MFD_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    if (write(fd, data + 1, size - 1) != (ssize_t)(size - 1)) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    sm_err err = {0};
    if (data[0] & 1) {
        sm_gguf *g = NULL;
        if (sm_gguf_open(path, &g, &err) == SM_OK) {
            int64_t v;
            double f;
            char *s = NULL;
            sm_gguf_get_int(g, "qwen2.block_count", &v, &err);
            sm_gguf_get_float(g, "qwen2.rope.freq_base", &f, &err);
            uint64_t n;
            if (sm_gguf_get_str(g, "general.architecture", &s, &err) == SM_OK) {
                FUZZ_CHECK(s != NULL);
                free(s);
            }
            sm_gguf_get_array_len(g, "tokenizer.ggml.tokens", &n, &err);
            sm_gguf_find(g, "token_embd.weight");
            for (size_t i = 0; i < sm_gguf_tensor_count(g); i++) {
                const sm_tensor *t = sm_gguf_tensor(g, i);
                volatile uint8_t sink = t->nbytes ? ((const uint8_t *)t->data)[t->nbytes - 1] : 0;
                (void)sink;
            }
            sm_gguf_close(&g);
        } else {
            FUZZ_CHECK(err.msg[0] != '\0');
        }
    } else {
        sm_safetensors *st = NULL;
        if (sm_safetensors_open(path, &st, &err) == SM_OK) {
            sm_safetensors_find(st, "model.embed_tokens.weight");
            for (size_t i = 0; i < sm_safetensors_count(st); i++) {
                const sm_tensor *t = sm_safetensors_tensor(st, i);
                volatile uint8_t sink = t->nbytes ? ((const uint8_t *)t->data)[t->nbytes - 1] : 0;
                (void)sink;
            }
            sm_safetensors_close(&st);
        } else {
            FUZZ_CHECK(err.msg[0] != '\0');
        }
    }
    close(fd);
    return 0;
}
