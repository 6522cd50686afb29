/* cmd_run: `stepmark-engine run --model PATH (--prompt TEXT | --prompt-file F | --prompt-ids
 * "ID ...") [options]` generates a continuation: the prompt is processed in one batch, then one
 * token per step is sampled (defaults from generation_config.json, overridden by the flags)
 * until an end-of-sequence id, a stop string, --max-tokens or the context limit. Text is
 * streamed to stdout as complete UTF-8 characters; with --ids the generated ids are printed on
 * one line instead. Timings go to stderr. A raw --prompt may contain special-token text such as
 * <|im_start|>; with --chat the prompt (and --system) are message contents, always plain text.
 * --device cuda runs the model on the GPU through the CUDA plugin (sm_dev.h); sampling and stop
 * strings stay on the host, the same code as on the CPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd_model_opts.h"
#include "cmd_timing.h"
#include "commands.h"
#include "sm_dev.h"
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
    sm_device device;
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

static const sm_arg_opt run_opts[] = {
    {"model", 0, SM_ARG_VALUE, "PATH", "the model folder or GGUF file", true},
    {"prompt", 0, SM_ARG_VALUE, "TEXT", "the prompt (may hold special-token text)", false},
    {"prompt-file", 0, SM_ARG_VALUE, "F", "the prompt, from a file", false},
    {"prompt-ids", 0, SM_ARG_VALUE, "\"ID ...\"", "the prompt as token ids", false},
    {"chat", 0, SM_ARG_FLAG, NULL, "the prompt is a user message of the chat template", false},
    {"system", 0, SM_ARG_VALUE, "TEXT", "a system message (with --chat)", false},
    {"temperature", 0, SM_ARG_VALUE, "T", "sampling temperature (0: greedy)", false},
    {"top-p", 0, SM_ARG_VALUE, "P", "nucleus sampling", false},
    {"top-k", 0, SM_ARG_VALUE, "K", "top-k sampling", false},
    {"min-p", 0, SM_ARG_VALUE, "P", "min-p sampling", false},
    {"repeat-penalty", 0, SM_ARG_VALUE, "R", "repetition penalty", false},
    {"max-tokens", 0, SM_ARG_VALUE, "N", "tokens to generate at most (default 512)", false},
    {"seed", 0, SM_ARG_VALUE, "S", "sampling seed", false},
    {"stop", 0, SM_ARG_VALUE, "TEXT", "stop at this text (repeatable)", false},
    {"ids", 0, SM_ARG_FLAG, NULL, "print the generated ids instead of text", false},
    {"tokenizer", 0, SM_ARG_VALUE, "DIR", "the tokenizer (default: the model's folder)", false},
    {"device", 0, SM_ARG_VALUE, "cpu|cuda", "where to run the model (default cpu)", false},
    {0}};
static const sm_args_spec run_spec = {
    "stepmark-engine run",
    NULL,
    "Generates a continuation of exactly one of --prompt, --prompt-file or --prompt-ids.",
    run_opts,
    sm_cmd_model_opts,
    0,
    0};

/* The sampling flags, each checked against its range. */
static int parse_sampling(const sm_args *args, run_args *a)
{
    const char *v;
    double x;
    if ((v = sm_args_get(args, "temperature")) &&
        !(a->set_temp = !num_arg("--temperature", v, 0, 100, &a->sp.temperature)))
        return -1;
    if ((v = sm_args_get(args, "top-p")) &&
        !(a->set_top_p = !num_arg("--top-p", v, 1e-9, 1, &a->sp.top_p)))
        return -1;
    if ((v = sm_args_get(args, "min-p")) &&
        !(a->set_min_p = !num_arg("--min-p", v, 0, 1, &a->sp.min_p)))
        return -1;
    if ((v = sm_args_get(args, "repeat-penalty")) &&
        !(a->set_rep = !num_arg("--repeat-penalty", v, 1e-3, 1e3, &a->sp.repeat_penalty)))
        return -1;
    if ((v = sm_args_get(args, "top-k"))) {
        if (num_arg("--top-k", v, 0, 1e9, &x))
            return -1;
        a->sp.top_k = (int64_t)x;
        a->set_top_k = true;
    }
    if ((v = sm_args_get(args, "max-tokens"))) {
        if (num_arg("--max-tokens", v, 0, 1e9, &x))
            return -1;
        a->max_tokens = (int64_t)x;
    }
    if ((v = sm_args_get(args, "seed"))) {
        char *end;
        a->sp.seed = strtoull(v, &end, 10);
        if (end == v || *end) {
            fprintf(stderr, "run: --seed expects an unsigned integer\n");
            return -1;
        }
    }
    return 0;
}

/* Fills a from the parsed options; -1 (message printed) on a bad value. */
static int parse_values(const sm_args *args, run_args *a)
{
    a->model = sm_args_get(args, "model");
    a->prompt = sm_args_get(args, "prompt");
    a->prompt_file = sm_args_get(args, "prompt-file");
    a->prompt_ids = sm_args_get(args, "prompt-ids");
    a->system = sm_args_get(args, "system");
    a->tokenizer = sm_args_get(args, "tokenizer");
    a->chat = sm_args_has(args, "chat");
    a->ids_out = sm_args_has(args, "ids");
    for (int k = 0; sm_args_nth(args, "stop", k); k++) {
        const char *v = sm_args_nth(args, "stop", k);
        if (a->n_stops == RUN_MAX_STOPS || v[0] == '\0') {
            fprintf(stderr, "run: at most %d non-empty --stop strings\n", RUN_MAX_STOPS);
            return -1;
        }
        a->stops[a->n_stops++] = v;
    }
    if (sm_cmd_model_opts_get(args, &a->opts) != 0 || parse_sampling(args, a) != 0)
        return -1;
    const char *device = sm_args_get(args, "device");
    sm_err err = {0};
    if (device && sm_device_parse(device, &a->device, &err) != SM_OK) {
        fprintf(stderr, "run: --device is cpu or cuda, not %s\n", device);
        return -1;
    }
    if (!!a->prompt + !!a->prompt_file + !!a->prompt_ids != 1) {
        sm_args_usage_error(run_spec.prog, "give exactly one of --prompt, --prompt-file and "
                                           "--prompt-ids");
        return -1;
    }
    if (a->prompt_ids && (a->chat || a->system)) {
        fprintf(stderr, "run: --chat/--system need a text prompt\n");
        return -1;
    }
    return 0;
}

/* Parses argv into a (its strings point into argv). Returns SM_ARGS_CONTINUE, or the exit
 * status. */
static int parse(int argc, char **argv, run_args *a)
{
    memset(a, 0, sizeof *a);
    sm_sampler_params_init(&a->sp);
    sm_model_opts_init(&a->opts);
    a->max_tokens = 512;
    sm_args args;
    int rc = sm_args_parse(&run_spec, argc, argv, &args);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    rc = parse_values(&args, a) == 0 ? SM_ARGS_CONTINUE : SM_ARGS_EXIT_USAGE;
    sm_args_free(&args);
    return rc;
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

/* What one run holds (freed by run_free). */
typedef struct run_state {
    sm_dev_model *m;
    const sm_model_config *c;
    sm_tokenizer *tok;
    sm_detok_stream *ds;
    sm_sampler *smp;
    sm_dev_seq *seq;
    int32_t *hist; /* the prompt, then the generated ids */
    float *lg;
    text_out out;
    size_t np;   /* prompt ids */
    int64_t ctx; /* positions of the sequence */
    int32_t im_end;
} run_state;

static void run_free(run_state *st)
{
    free(st->out.buf);
    free(st->lg);
    free(st->hist);
    sm_dev_seq_free(&st->seq);
    sm_sampler_free(&st->smp);
    sm_detok_stream_free(&st->ds);
    sm_tokenizer_free(&st->tok);
    sm_dev_free(&st->m);
}

/* Sampling: generation_config.json's defaults, then the flags. */
static sm_sampler_params run_sampling(const run_args *a, const sm_model_config *c)
{
    sm_sampler_params sp;
    sm_sampler_params_init(&sp);
    if (c->has_sampling && c->do_sample) {
        sp.temperature = c->temperature;
        sp.top_p = c->top_p > 0 ? c->top_p : 1.0;
        sp.top_k = c->top_k;
        sp.min_p = c->min_p;
    }
    if (c->has_sampling)
        sp.repeat_penalty = c->repetition_penalty;
    sp.seed = a->sp.seed;
    if (a->set_temp)
        sp.temperature = a->sp.temperature;
    if (a->set_top_p)
        sp.top_p = a->sp.top_p;
    if (a->set_top_k)
        sp.top_k = a->sp.top_k;
    if (a->set_min_p)
        sp.min_p = a->sp.min_p;
    if (a->set_rep)
        sp.repeat_penalty = a->sp.repeat_penalty;
    return sp;
}

/* The model, the tokenizer when text is involved, the prompt's ids, the sampler and the
 * sequence; an error message printed and nonzero returned when any fails. */
static int run_setup(const run_args *a, run_state *st)
{
    sm_err err = {0};
    sm_dev_opts dopts = {.device = a->device, .cpu = a->opts};
    if (sm_dev_load(a->model, &dopts, &st->m, &err) != SM_OK)
        goto failed;
    st->c = sm_dev_config(st->m);
    if (!a->prompt_ids || !a->ids_out || a->n_stops > 0) {
        char mdir[1024];
        sm_dev_dir(st->m, mdir, sizeof mdir);
        if (sm_tokenizer_load(a->tokenizer ? a->tokenizer : mdir, &st->tok, &err) != SM_OK) {
            fprintf(stderr, "run: tokenizer (use --tokenizer DIR): %s\n", err.msg);
            return 1;
        }
        if (sm_detok_stream_new(st->tok, &st->ds, &err) != SM_OK)
            goto failed;
    }
    if (make_prompt(a, st->tok, &st->hist, &st->np, &err) != SM_OK)
        goto failed;
    if (st->np == 0 || (int64_t)st->np >= st->c->max_pos) {
        fprintf(stderr, "run: the prompt has %zu tokens (1 to %lld allowed)\n", st->np,
                (long long)st->c->max_pos - 1);
        return 1;
    }
    st->im_end = a->chat && st->tok ? sm_tokenizer_token_id(st->tok, "<|im_end|>") : -1;
    st->ctx = (int64_t)st->np + a->max_tokens;
    st->ctx = st->ctx > st->c->max_pos ? st->c->max_pos : st->ctx;
    int32_t *h = realloc(st->hist, (size_t)(st->ctx + 1) * sizeof *h);
    if (h)
        st->hist = h;
    st->lg = malloc((size_t)st->c->vocab * sizeof *st->lg);
    if (!h || !st->lg) {
        fprintf(stderr, "run: out of memory\n");
        return 1;
    }
    sm_sampler_params sp = run_sampling(a, st->c);
    if (sm_sampler_new(&sp, st->c->vocab, &st->smp, &err) != SM_OK ||
        sm_dev_seq_new(st->m, st->ctx, &st->seq, &err) != SM_OK)
        goto failed;
    return 0;
failed:
    fprintf(stderr, "run: %s\n", err.msg);
    return 1;
}

/* What the generation loop reports. */
typedef struct run_result {
    size_t n, gen; /* ids in hist, generated ids */
    const char *why;
    bool stopped; /* at a stop string */
} run_result;

/* Appends token t's text and streams what can no longer become a stop string; *stop when a
 * stop string ends the generation. */
static sm_code run_text(const run_args *a, run_state *st, int32_t t, run_result *r, bool *stop,
                        sm_err *err)
{
    char chunk[SM_DETOK_STREAM_MIN_CAP];
    size_t cl, before = st->out.len, hold = 0;
    for (size_t i = 0; i < a->n_stops; i++) {
        size_t l = strlen(a->stops[i]);
        hold = l - 1 > hold ? l - 1 : hold;
    }
    sm_code rc = sm_detok_stream_push(st->ds, t, chunk, sizeof chunk, &cl, err);
    if (rc != SM_OK)
        return rc;
    if (text_append(&st->out, chunk, cl) != 0)
        return sm_err_set(err, SM_ENOMEM, "out of memory");
    int64_t at = sm_stop_find(st->out.buf, st->out.len, before, a->stops, a->n_stops);
    if (at >= 0) {
        st->out.len = (size_t)at;
        r->stopped = *stop = true;
        r->why = "stop string";
    } else if (!a->ids_out) {
        text_print_upto(&st->out, st->out.len > hold ? st->out.len - hold : 0);
    }
    return SM_OK;
}

/* Samples, feeds back and streams until a stop; st->lg holds the prompt's last logits. */
static sm_code run_generate(const run_args *a, run_state *st, run_result *r, sm_err *err)
{
    *r = (run_result){.n = st->np, .why = "max tokens"};
    while ((int64_t)r->gen < a->max_tokens) {
        int32_t t;
        sm_code rc = sm_sampler_sample(st->smp, st->lg, st->hist, r->n, &t, err);
        if (rc != SM_OK)
            return rc;
        if (is_eos(st->c, t, st->im_end)) {
            r->why = "end of sequence";
            break;
        }
        st->hist[r->n++] = t;
        r->gen++;
        bool stop = false;
        rc = st->ds ? run_text(a, st, t, r, &stop, err) : SM_OK;
        if (rc != SM_OK || stop)
            return rc;
        if ((int64_t)r->gen == a->max_tokens)
            break;
        if ((int64_t)r->n >= st->ctx) {
            r->why = "context full";
            break;
        }
        const int32_t *tp = &st->hist[r->n - 1];
        int64_t nt = 1;
        rc = sm_dev_forward(st->m, &st->seq, &tp, &nt, 1, st->lg, err);
        if (rc != SM_OK)
            return rc;
    }
    return SM_OK;
}

/* The generated text or ids on stdout, the timings on stderr. */
static void run_report(const run_args *a, run_state *st, const run_result *r, double t0, double t1,
                       double t2)
{
    if (st->ds && !r->stopped) {
        char chunk[SM_DETOK_STREAM_MIN_CAP];
        size_t cl;
        sm_err err = {0};
        if (sm_detok_stream_flush(st->ds, chunk, sizeof chunk, &cl, &err) == SM_OK)
            text_append(&st->out, chunk, cl);
    }
    if (a->ids_out) {
        for (size_t i = st->np; i < r->n; i++)
            printf("%s%d", i > st->np ? " " : "", st->hist[i]);
    } else {
        text_print_upto(&st->out, st->out.len);
    }
    printf("\n");
    fflush(stdout);
    fprintf(stderr,
            "run: prompt %zu tokens in %.3f s (%.1f tok/s); generated %zu tokens in %.3f s "
            "(%.2f tok/s); stopped: %s\n",
            st->np, t1 - t0, (double)st->np / (t1 - t0 > 0 ? t1 - t0 : 1e-9), r->gen, t2 - t1,
            r->gen > 1 ? (double)(r->gen - 1) / (t2 - t1 > 0 ? t2 - t1 : 1e-9) : 0.0, r->why);
}

int sm_cmd_run(int argc, char **argv)
{
    run_args a;
    int prc = parse(argc, argv, &a);
    if (prc != SM_ARGS_CONTINUE)
        return prc;
    run_state st = {0};
    int status = run_setup(&a, &st);
    if (status == 0) {
        sm_err err = {0};
        run_result r;
        double t0 = sm_cmd_now_s();
        const int32_t *tp = st.hist;
        int64_t nt = (int64_t)st.np;
        sm_code rc = sm_dev_forward(st.m, &st.seq, &tp, &nt, 1, st.lg, &err);
        double t1 = sm_cmd_now_s();
        if (rc == SM_OK)
            rc = run_generate(&a, &st, &r, &err);
        if (rc == SM_OK)
            run_report(&a, &st, &r, t0, t1, sm_cmd_now_s());
        else
            fprintf(stderr, "run: %s\n", err.msg);
        status = rc == SM_OK ? 0 : 1;
    }
    run_free(&st);
    return status;
}
