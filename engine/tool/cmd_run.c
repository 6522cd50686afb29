/* cmd_run: `stepmark-engine run --model PATH (--prompt TEXT | --prompt-file F | --prompt-ids
 * "ID ...") [options]` generates a continuation: the prompt is processed in one batch, then one
 * token per step is sampled (defaults from generation_config.json, overridden by the flags)
 * until an end-of-sequence id, a stop string, --max-tokens or the context limit. Text is
 * streamed to stdout as complete UTF-8 characters; with --ids the generated ids are printed on
 * one line instead. Timings go to stderr. A raw --prompt may contain special-token text such as
 * <|im_start|>; with --chat the prompt (and --system) are message contents, always plain text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd_model_opts.h"
#include "cmd_timing.h"
#include "commands.h"
#include "sm_model.h"
#include "sm_sampler.h"
#include "sm_tokenizer.h"

#define RUN_MAX_STOPS 16

typedef struct run_args {
    const char *model, *prompt, *prompt_file, *prompt_ids, *system, *tokenizer;
    const char *stops[RUN_MAX_STOPS];
    size_t n_stops;
    bool chat, ids_out;
    int64_t max_tokens;
    bool set_temp, set_top_p, set_top_k, set_min_p, set_rep;
    sm_sampler_params sp;
    sm_model_opts opts;
} run_args;

static int num_arg(const char *name, const char *v, double lo, double hi, double *out)
{
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "run: %s expects a number in [%g, %g], got \"%s\"\n", name, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse(int argc, char **argv, run_args *a)
{
    memset(a, 0, sizeof *a);
    sm_sampler_params_init(&a->sp);
    sm_model_opts_init(&a->opts);
    a->max_tokens = 512;
    for (int i = 1; i < argc; i++) {
        int r = sm_cmd_model_opt(argc, argv, &i, &a->opts);
        if (r < 0) {
            return -1;
        }
        if (r > 0) {
            continue;
        }
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x;
        if (strcmp(k, "--chat") == 0) {
            a->chat = true;
            continue;
        }
        if (strcmp(k, "--ids") == 0) {
            a->ids_out = true;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "run: unknown argument or missing value \"%s\"\n", k);
            return -1;
        }
        i++;
        if (strcmp(k, "--model") == 0) {
            a->model = v;
        } else if (strcmp(k, "--prompt") == 0) {
            a->prompt = v;
        } else if (strcmp(k, "--prompt-file") == 0) {
            a->prompt_file = v;
        } else if (strcmp(k, "--prompt-ids") == 0) {
            a->prompt_ids = v;
        } else if (strcmp(k, "--system") == 0) {
            a->system = v;
        } else if (strcmp(k, "--tokenizer") == 0) {
            a->tokenizer = v;
        } else if (strcmp(k, "--stop") == 0) {
            if (a->n_stops == RUN_MAX_STOPS || v[0] == '\0') {
                fprintf(stderr, "run: at most %d non-empty --stop strings\n", RUN_MAX_STOPS);
                return -1;
            }
            a->stops[a->n_stops++] = v;
        } else if (strcmp(k, "--temperature") == 0) {
            if (num_arg(k, v, 0, 100, &a->sp.temperature)) {
                return -1;
            }
            a->set_temp = true;
        } else if (strcmp(k, "--top-p") == 0) {
            if (num_arg(k, v, 1e-9, 1, &a->sp.top_p)) {
                return -1;
            }
            a->set_top_p = true;
        } else if (strcmp(k, "--min-p") == 0) {
            if (num_arg(k, v, 0, 1, &a->sp.min_p)) {
                return -1;
            }
            a->set_min_p = true;
        } else if (strcmp(k, "--repeat-penalty") == 0) {
            if (num_arg(k, v, 1e-3, 1e3, &a->sp.repeat_penalty)) {
                return -1;
            }
            a->set_rep = true;
        } else if (strcmp(k, "--top-k") == 0) {
            if (num_arg(k, v, 0, 1e9, &x)) {
                return -1;
            }
            a->sp.top_k = (int64_t)x;
            a->set_top_k = true;
        } else if (strcmp(k, "--max-tokens") == 0) {
            if (num_arg(k, v, 0, 1e9, &x)) {
                return -1;
            }
            a->max_tokens = (int64_t)x;
        } else if (strcmp(k, "--seed") == 0) {
            char *end;
            a->sp.seed = strtoull(v, &end, 10);
            if (end == v || *end) {
                fprintf(stderr, "run: --seed expects an unsigned integer\n");
                return -1;
            }
        } else {
            fprintf(stderr, "run: unknown argument \"%s\"\n", k);
            return -1;
        }
    }
    int n_prompts = !!a->prompt + !!a->prompt_file + !!a->prompt_ids;
    if (a->model == NULL || n_prompts != 1) {
        fprintf(stderr,
                "usage: stepmark-engine run --model PATH (--prompt TEXT | --prompt-file F | "
                "--prompt-ids \"ID ...\") [--chat] [--system TEXT] [--temperature T] [--top-p P] "
                "[--top-k K] [--min-p P] [--repeat-penalty R] [--max-tokens N] [--seed S] "
                "[--stop TEXT]... [--ids] [--tokenizer DIR] %s\n",
                SM_CMD_MODEL_OPTS_HELP);
        return -1;
    }
    if (a->prompt_ids && (a->chat || a->system)) {
        fprintf(stderr, "run: --chat/--system need a text prompt\n");
        return -1;
    }
    return 0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) {
            break;
        }
        char *p = realloc(buf, 2 * cap + 1);
        if (p == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = p;
        cap *= 2;
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

static sm_code make_prompt(const run_args *a, const sm_tokenizer *tok, int32_t **ids, size_t *n,
                           sm_err *err)
{
    if (a->prompt_ids) {
        return sm_cmd_parse_ids(a->prompt_ids, ids, n) == 0
                   ? SM_OK
                   : sm_err_set(err, SM_EINVAL, "bad --prompt-ids");
    }
    size_t len = 0;
    char *owned = NULL;
    const char *text = a->prompt;
    if (a->prompt_file) {
        if ((owned = read_file(a->prompt_file, &len)) == NULL) {
            return sm_err_set(err, SM_EIO, "cannot read %s", a->prompt_file);
        }
        text = owned;
    } else {
        len = strlen(text);
    }
    sm_code rc;
    if (a->chat) {
        sm_chat_message msgs[2];
        size_t nm = 0;
        if (a->system) {
            msgs[nm++] = (sm_chat_message){"system", a->system};
        }
        msgs[nm++] = (sm_chat_message){"user", text};
        rc = sm_chat_encode(tok, msgs, nm, true, ids, n, err);
    } else {
        rc = sm_tokenizer_encode(tok, text, len, true, ids, n, err);
    }
    free(owned);
    return rc;
}

/* Generated text so far, with the part already written to stdout. */
typedef struct text_out {
    char *buf;
    size_t len, cap, printed;
} text_out;

static int text_append(text_out *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        size_t cap = (t->len + n + 1) * 2;
        char *p = realloc(t->buf, cap);
        if (p == NULL) {
            return -1;
        }
        t->buf = p;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
    return 0;
}

static void text_print_upto(text_out *t, size_t upto)
{
    if (upto > t->printed) {
        fwrite(t->buf + t->printed, 1, upto - t->printed, stdout);
        fflush(stdout);
        t->printed = upto;
    }
}

static bool is_eos(const sm_model_config *c, int32_t tok, int32_t extra)
{
    for (int i = 0; i < c->n_eos; i++) {
        if (c->eos_ids[i] == tok) {
            return true;
        }
    }
    return tok == extra;
}

int sm_cmd_run(int argc, char **argv)
{
    run_args a;
    if (parse(argc, argv, &a) != 0) {
        return 2;
    }
    sm_err err = {0};
    sm_model *m = NULL;
    sm_tokenizer *tok = NULL;
    sm_detok_stream *ds = NULL;
    sm_sampler *smp = NULL;
    sm_seq *seq = NULL;
    int32_t *hist = NULL;
    float *lg = NULL;
    text_out out = {0};
    int status = 1;
    size_t np = 0;
    if (sm_model_load(a.model, &a.opts, &m, &err) != SM_OK) {
        fprintf(stderr, "run: %s\n", err.msg);
        return 1;
    }
    const sm_model_config *c = &sm_model_info(m)->config;
    bool need_tok = !a.prompt_ids || !a.ids_out || a.n_stops > 0;
    if (need_tok) {
        const char *dir = a.tokenizer ? a.tokenizer : sm_model_dir(m);
        if (sm_tokenizer_load(dir, &tok, &err) != SM_OK) {
            fprintf(stderr, "run: tokenizer (use --tokenizer DIR): %s\n", err.msg);
            goto done;
        }
        if (sm_detok_stream_new(tok, &ds, &err) != SM_OK) {
            fprintf(stderr, "run: %s\n", err.msg);
            goto done;
        }
    }
    if (make_prompt(&a, tok, &hist, &np, &err) != SM_OK) {
        fprintf(stderr, "run: %s\n", err.msg);
        goto done;
    }
    if (np == 0 || (int64_t)np >= c->max_pos) {
        fprintf(stderr, "run: the prompt has %zu tokens (1 to %lld allowed)\n", np,
                (long long)c->max_pos - 1);
        goto done;
    }
    int32_t im_end = a.chat && tok ? sm_tokenizer_token_id(tok, "<|im_end|>") : -1;
    /* Sampling: generation_config.json defaults, then the flags. */
    sm_sampler_params sp;
    sm_sampler_params_init(&sp);
    if (c->has_sampling && c->do_sample) {
        sp.temperature = c->temperature;
        sp.top_p = c->top_p > 0 ? c->top_p : 1.0;
        sp.top_k = c->top_k;
        sp.min_p = c->min_p;
    }
    if (c->has_sampling) {
        sp.repeat_penalty = c->repetition_penalty;
    }
    sp.seed = a.sp.seed;
    if (a.set_temp) sp.temperature = a.sp.temperature;
    if (a.set_top_p) sp.top_p = a.sp.top_p;
    if (a.set_top_k) sp.top_k = a.sp.top_k;
    if (a.set_min_p) sp.min_p = a.sp.min_p;
    if (a.set_rep) sp.repeat_penalty = a.sp.repeat_penalty;
    int64_t ctx = (int64_t)np + a.max_tokens;
    ctx = ctx > c->max_pos ? c->max_pos : ctx;
    hist = realloc(hist, (size_t)(ctx + 1) * sizeof *hist);
    lg = malloc((size_t)c->vocab * sizeof *lg);
    if (hist == NULL || lg == NULL) {
        fprintf(stderr, "run: out of memory\n");
        goto done;
    }
    if (sm_sampler_new(&sp, c->vocab, &smp, &err) != SM_OK ||
        sm_seq_new(m, ctx, &seq, &err) != SM_OK) {
        fprintf(stderr, "run: %s\n", err.msg);
        goto done;
    }
    size_t hold = 0;
    for (size_t i = 0; i < a.n_stops; i++) {
        size_t l = strlen(a.stops[i]);
        hold = l - 1 > hold ? l - 1 : hold;
    }
    double t0 = sm_cmd_now_s();
    const int32_t *tp = hist;
    int64_t nt = (int64_t)np;
    if (sm_model_forward(m, &seq, &tp, &nt, 1, lg, &err) != SM_OK) {
        fprintf(stderr, "run: %s\n", err.msg);
        goto done;
    }
    double t1 = sm_cmd_now_s();
    size_t n = np, gen = 0;
    const char *why = "max tokens";
    bool stopped = false;
    char chunk[SM_DETOK_STREAM_MIN_CAP];
    while ((int64_t)gen < a.max_tokens) {
        int32_t t;
        if (sm_sampler_sample(smp, lg, hist, n, &t, &err) != SM_OK) {
            fprintf(stderr, "run: %s\n", err.msg);
            goto done;
        }
        if (is_eos(c, t, im_end)) {
            why = "end of sequence";
            break;
        }
        hist[n++] = t;
        gen++;
        if (ds) {
            size_t cl;
            size_t before = out.len;
            if (sm_detok_stream_push(ds, t, chunk, sizeof chunk, &cl, &err) != SM_OK ||
                text_append(&out, chunk, cl) != 0) {
                fprintf(stderr, "run: %s\n", err.msg);
                goto done;
            }
            int64_t at = sm_stop_find(out.buf, out.len, before, a.stops, a.n_stops);
            if (at >= 0) {
                out.len = (size_t)at;
                stopped = true;
                why = "stop string";
                break;
            }
            if (!a.ids_out) {
                text_print_upto(&out, out.len > hold ? out.len - hold : 0);
            }
        }
        if ((int64_t)gen == a.max_tokens) {
            break;
        }
        if ((int64_t)n >= ctx) {
            why = "context full";
            break;
        }
        tp = &hist[n - 1];
        nt = 1;
        if (sm_model_forward(m, &seq, &tp, &nt, 1, lg, &err) != SM_OK) {
            fprintf(stderr, "run: %s\n", err.msg);
            goto done;
        }
    }
    double t2 = sm_cmd_now_s();
    if (ds && !stopped) {
        size_t cl;
        if (sm_detok_stream_flush(ds, chunk, sizeof chunk, &cl, &err) == SM_OK) {
            text_append(&out, chunk, cl);
        }
    }
    if (a.ids_out) {
        for (size_t i = np; i < n; i++) {
            printf("%s%d", i > np ? " " : "", hist[i]);
        }
        printf("\n");
    } else {
        text_print_upto(&out, out.len);
        printf("\n");
    }
    fflush(stdout);
    fprintf(stderr,
            "run: prompt %zu tokens in %.3f s (%.1f tok/s); generated %zu tokens in %.3f s "
            "(%.2f tok/s); stopped: %s\n",
            np, t1 - t0, (double)np / (t1 - t0 > 0 ? t1 - t0 : 1e-9), gen, t2 - t1,
            gen > 1 ? (double)(gen - 1) / (t2 - t1 > 0 ? t2 - t1 : 1e-9) : 0.0, why);
    status = 0;
done:
    free(out.buf);
    free(lg);
    free(hist);
    sm_seq_free(&seq);
    sm_sampler_free(&smp);
    sm_detok_stream_free(&ds);
    sm_tokenizer_free(&tok);
    sm_model_free(&m);
    return status;
}
