/* fake_cuda_plugin: two wrong CUDA plugins for test_cuda_plugin.py, built as shared modules:
 * with FAKE_NO_ENTRY a library without the entry point, otherwise one whose table carries an
 * ABI number no program knows. */
#include <stddef.h>

#ifdef FAKE_NO_ENTRY
__attribute__((visibility("default"))) int sm_not_the_entry(void);
int sm_not_the_entry(void)
{
    return 1;
}
#else
/* the first two members of sm_cuda_api: abi and size */
typedef struct fake_api {
    int abi;
    size_t size;
} fake_api;

__attribute__((visibility("default"))) const fake_api *sm_cuda_plugin_api(void);
const fake_api *sm_cuda_plugin_api(void)
{
    static const fake_api api = {9999, sizeof(fake_api)};
    return &api;
}
#endif
