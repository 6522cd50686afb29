/* main: the stepmark-engine tool, a dispatcher over the subcommands listed in the table
 * below (one cmd_*.c each, declared in commands.h). */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const sm_command commands[] = {
    {"tokenize", sm_cmd_tokenize,
     "--tokenizer DIR [--special]: UTF-8 text on stdin -> token ids on one line"},
    {"detokenize", sm_cmd_detokenize, "--tokenizer DIR: token ids on stdin -> text"},
    {"chat", sm_cmd_chat,
     "[--tokenizer DIR --ids] [--generation-prompt]: JSON messages on stdin -> chat template"},
    {"tokbench", sm_cmd_tokbench,
     "--tokenizer DIR --corpus DIR: tokenizer speed and load time next to Hugging Face"},
    {"run", sm_cmd_run,
     "--model PATH (--prompt TEXT | --prompt-file F | --prompt-ids \"ID ...\") [--chat] "
     "[--temperature T] [--top-p P] [--max-tokens N] [--seed S] [--dtype T] [--ids] ..."},
    {"logits", sm_cmd_logits, "--model PATH --ids \"ID ...\" [--dtype T]: last-position logits"},
    {"info", sm_cmd_info, "--model PATH: model summary (sizes, types, memory)"},
    {"bench", sm_cmd_bench,
     "--model PATH [--dtype T] [--threads N] [--json]: prompt and decode speed vs the machine"},
    {"attnbench", sm_cmd_attnbench,
     "[--positions N] [--seqs N]: decode attention over long contexts, f32 vs f16 KV cache"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: stepmark-engine COMMAND [ARGS]\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "stepmark-engine: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}
