/* cmd_chat: `stepmark-engine chat --tokenizer DIR [--generation-prompt] [--ids]` reads a JSON
 * array of {"role": ..., "content": ...} messages on standard input and prints the Qwen chat
 * template's rendering, or with --ids the token ids of sm_chat_encode (template markers as
 * special tokens, message contents as plain text) on one line. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "sm_args.h"
#include "sm_tokenizer.h"

static const sm_arg_opt chat_opts[] = {
    {"tokenizer", 0, SM_ARG_VALUE, "DIR", "the tokenizer (needed with --ids)", false},
    {"generation-prompt", 0, SM_ARG_FLAG, NULL, "end with the assistant's turn", false},
    {"ids", 0, SM_ARG_FLAG, NULL, "print token ids instead of text", false},
    {0}};
static const sm_args_spec chat_spec = {
    "stepmark-engine chat",
    "< messages.json",
    "A JSON array of {\"role\", \"content\"} messages on standard input -> the chat template.",
    chat_opts,
    NULL,
    0,
    0};

int sm_cmd_chat(int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&chat_spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    const char *dir = sm_args_get(&a, "tokenizer"); /* points into argv */
    bool gen = sm_args_has(&a, "generation-prompt"), ids_out = sm_args_has(&a, "ids");
    sm_args_free(&a);
    if (ids_out && !dir)
        return sm_args_usage_error(chat_spec.prog, "--ids needs --tokenizer DIR");
    json_error_t jerr;
    json_t *root = json_loadf(stdin, 0, &jerr);
    if (!json_is_array(root)) {
        fprintf(stderr, "chat: standard input is not a JSON array of messages (%s)\n",
                root ? "not an array" : jerr.text);
        json_decref(root);
        return 2;
    }
    size_t n = json_array_size(root);
    sm_chat_message *msgs = calloc(n ? n : 1, sizeof *msgs);
    if (!msgs) {
        json_decref(root);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        msgs[i].role = json_string_value(json_object_get(json_array_get(root, i), "role"));
        msgs[i].content = json_string_value(json_object_get(json_array_get(root, i), "content"));
    }
    sm_err err = {0};
    rc = 0;
    if (!ids_out) {
        char *out = NULL;
        size_t len = 0;
        if (sm_chat_render(msgs, n, gen, &out, &len, &err))
            rc = 1;
        else if (fwrite(out, 1, len, stdout) != len)
            rc = 1;
        free(out);
    } else {
        sm_tokenizer *tok = NULL;
        int32_t *ids = NULL;
        size_t k = 0;
        if (sm_tokenizer_load(dir, &tok, &err) ||
            sm_chat_encode(tok, msgs, n, gen, &ids, &k, &err)) {
            rc = 1;
        } else {
            for (size_t i = 0; i < k; i++)
                printf(i ? " %" PRId32 : "%" PRId32, ids[i]);
            printf("\n");
        }
        free(ids);
        sm_tokenizer_free(&tok);
    }
    if (rc && err.code)
        fprintf(stderr, "chat: %s (%s)\n", err.msg, sm_code_name(err.code));
    if (fflush(stdout) != 0)
        rc = 1;
    free(msgs);
    json_decref(root);
    return rc;
}
