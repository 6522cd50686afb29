/* main: the stepmark-engine tool, a dispatcher over the subcommands listed in the table
 * below (one cmd_*.c each, declared in commands.h; each answers --help and --version). */
#include "commands.h"
#include "sm_args.h"

static const sm_args_cmd commands[] = {
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
    {"membw", sm_cmd_membw,
     "[--threads N] [--mib N] [--json]: memory read bandwidth, the best of several methods"},
    {"attnbench", sm_cmd_attnbench,
     "[--positions N] [--seqs N]: decode attention over long contexts, f32 vs f16 KV cache"},
    {"serve", sm_cmd_serve,
     "--model PATH --port N [--address A] [--slots N] [--api-key KEY]: OpenAI-compatible server"},
};

int main(int argc, char **argv)
{
    static const sm_args_group g = {"stepmark-engine", NULL, commands,
                                    sizeof commands / sizeof commands[0]};
    return sm_args_dispatch(&g, argc, argv);
}
