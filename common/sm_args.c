/* sm_args: command-line parsing over getopt_long, with --help generated from a table of
 * options and --version (sm_args.h). */
#include "sm_args.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#ifndef SM_VERSION
#error "SM_VERSION must be defined by the build (the project version)"
#endif

enum { OPT_HELP = 'h', OPT_VERSION = 1, OPT_TABLE = 1000 };

const char *sm_args_version(void)
{
    return SM_VERSION;
}

/* The program's name: the first word of prog. */
static void print_version(const char *prog)
{
    printf("%.*s %s\n", (int)strcspn(prog, " "), prog, SM_VERSION);
}

int sm_args_usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help'.\n", prog);
    return SM_ARGS_EXIT_USAGE;
}

static int table_len(const sm_arg_opt *t)
{
    int n = 0;
    while (t && t[n].name)
        n++;
    return n;
}

/* The i-th option of the spec's two tables. */
static const sm_arg_opt *opt_at(const sm_args_spec *s, int i)
{
    int n = table_len(s->opts);
    return i < n ? &s->opts[i] : &s->more[i - n];
}

static void print_opt(FILE *out, const sm_arg_opt *o)
{
    char left[64];
    char shrt[8] = "    ";
    if (o->short_name)
        snprintf(shrt, sizeof shrt, "-%c, ", o->short_name);
    snprintf(left, sizeof left, "%s--%s%s%s", shrt, o->name, o->kind == SM_ARG_VALUE ? " " : "",
             o->kind == SM_ARG_VALUE ? (o->metavar ? o->metavar : "VALUE") : "");
    fprintf(out, "  %-28s %s%s\n", left, o->help, o->required ? " (required)" : "");
}

void sm_args_print_help(const sm_args_spec *s, FILE *out)
{
    fprintf(out, "usage: %s [options]%s%s\n", s->prog, s->args ? " " : "", s->args ? s->args : "");
    if (s->about)
        fprintf(out, "%s\n", s->about);
    fprintf(out, "\noptions:\n");
    int n = table_len(s->opts) + table_len(s->more);
    for (int i = 0; i < n; i++)
        if (opt_at(s, i)->help && opt_at(s, i)->kind != SM_ARG_REFUSED)
            print_opt(out, opt_at(s, i));
    fprintf(out, "  %-28s %s\n  %-28s %s\n", "-h, --help", "show this help and exit",
            "    --version", "print the version and exit");
}

/* getopt_long's tables for spec (freed by the caller). */
static int build_tables(const sm_args_spec *s, struct option **lo, char **so)
{
    int n = table_len(s->opts) + table_len(s->more);
    *lo = calloc((size_t)n + 3, sizeof **lo);
    *so = calloc((size_t)n * 2 + 4, 1);
    if (!*lo || !*so)
        return -1;
    char *p = *so;
    *p++ = ':'; /* a missing value returns ':' */
    *p++ = 'h';
    for (int i = 0; i < n; i++) {
        const sm_arg_opt *o = opt_at(s, i);
        int has = o->kind == SM_ARG_FLAG    ? no_argument
                  : o->kind == SM_ARG_VALUE ? required_argument
                                            : optional_argument;
        (*lo)[i] = (struct option){o->name, has, NULL, OPT_TABLE + i};
        if (o->short_name) {
            *p++ = o->short_name;
            if (has == required_argument)
                *p++ = ':';
        }
    }
    (*lo)[n] = (struct option){"help", no_argument, NULL, OPT_HELP};
    (*lo)[n + 1] = (struct option){"version", no_argument, NULL, OPT_VERSION};
    return 0;
}

/* The index into the tables of short option c, or -1. */
static int short_index(const sm_args_spec *s, int c)
{
    int n = table_len(s->opts) + table_len(s->more);
    for (int i = 0; i < n; i++)
        if (opt_at(s, i)->short_name && opt_at(s, i)->short_name == c)
            return i;
    return -1;
}

/* Whether the long option just returned was spelled out in full (getopt_long also accepts
 * unique abbreviations, which this parser refuses). */
static const char *current_token(char **argv)
{
    return optarg && optind >= 2 && optarg == argv[optind - 1] ? argv[optind - 2]
                                                               : argv[optind - 1];
}

static bool spelled_out(char **argv, const char *name)
{
    const char *tok = current_token(argv);
    if (strncmp(tok, "--", 2) != 0)
        return true; /* a short option */
    size_t len = strcspn(tok + 2, "=");
    return len == strlen(name) && strncmp(tok + 2, name, len) == 0;
}

/* Names the option getopt_long rejected (c is '?' or ':'). */
static int reject(const sm_args_spec *s, int c, char **argv)
{
    const char *tok = optind >= 1 ? argv[optind - 1] : "";
    if (optopt >= OPT_TABLE)
        return sm_args_usage_error(
            s->prog, c == ':' ? "option --%s needs a value" : "option --%s takes no value",
            opt_at(s, optopt - OPT_TABLE)->name);
    if (optopt == OPT_VERSION || (optopt == OPT_HELP && strncmp(tok, "--", 2) == 0))
        return sm_args_usage_error(s->prog, "option %.*s takes no value", (int)strcspn(tok, "="),
                                   tok);
    if (c == ':')
        return sm_args_usage_error(s->prog, "option -%c needs a value", optopt);
    if (optopt)
        return sm_args_usage_error(s->prog, "unknown option '-%c'", optopt);
    return sm_args_usage_error(s->prog, "unknown option '%.*s'", (int)strcspn(tok, "="), tok);
}

/* Checks the required options and the count of positional arguments. */
static int check(const sm_args *a)
{
    const sm_args_spec *s = a->spec;
    int n = table_len(s->opts) + table_len(s->more);
    for (int i = 0; i < n; i++)
        if (opt_at(s, i)->required && !sm_args_has(a, opt_at(s, i)->name))
            return sm_args_usage_error(s->prog, "missing required option --%s%s%s",
                                       opt_at(s, i)->name, opt_at(s, i)->metavar ? " " : "",
                                       opt_at(s, i)->metavar ? opt_at(s, i)->metavar : "");
    if (a->npos < s->min_args)
        return sm_args_usage_error(s->prog, "missing argument %s", s->args ? s->args : "");
    if (s->max_args >= 0 && a->npos > s->max_args)
        return sm_args_usage_error(s->prog, "unexpected argument '%s'", a->pos[s->max_args]);
    return SM_ARGS_CONTINUE;
}

/* One option returned by getopt_long (c, with longindex or -1): records it, or returns the
 * exit status (help, version, a refused or abbreviated option). */
static int take(sm_args *a, int c, int longindex, char **argv)
{
    const sm_args_spec *s = a->spec;
    int i = c >= OPT_TABLE                      ? c - OPT_TABLE
            : c == OPT_HELP || c == OPT_VERSION ? -1
                                                : short_index(s, c);
    const char *name = i >= 0 ? opt_at(s, i)->name : c == OPT_HELP ? "help" : "version";
    if (longindex >= 0 && !spelled_out(argv, name)) {
        const char *tok = current_token(argv);
        return sm_args_usage_error(s->prog, "unknown option '%.*s' (did you mean --%s?)",
                                   (int)strcspn(tok, "="), tok, name);
    }
    if (c == OPT_HELP || c == OPT_VERSION) {
        if (c == OPT_HELP)
            sm_args_print_help(s, stdout);
        else
            print_version(s->prog);
        return SM_ARGS_EXIT_OK;
    }
    if (i < 0)
        return sm_args_usage_error(s->prog, "unknown option '-%c'", c);
    const sm_arg_opt *o = opt_at(s, i);
    if (o->kind == SM_ARG_REFUSED) {
        fprintf(stderr, "%s: --%s is not accepted: %s\n", s->prog, o->name, o->help);
        return SM_ARGS_EXIT_USAGE;
    }
    a->seen[a->nseen++] = (sm_arg_seen){o, o->kind == SM_ARG_VALUE ? optarg : NULL};
    return SM_ARGS_CONTINUE;
}

int sm_args_parse(const sm_args_spec *spec, int argc, char **argv, sm_args *a)
{
    memset(a, 0, sizeof *a);
    a->spec = spec;
    struct option *lo = NULL;
    char *so = NULL;
    a->seen = calloc((size_t)argc + 1, sizeof *a->seen);
    a->pos = calloc((size_t)argc + 1, sizeof *a->pos);
    if (!a->seen || !a->pos || build_tables(spec, &lo, &so) != 0) {
        free(lo);
        free(so);
        sm_args_free(a);
        fprintf(stderr, "%s: out of memory\n", spec->prog);
        return SM_ARGS_EXIT_FAIL;
    }
    optind = 0; /* glibc: start afresh (a previous parse may have run) */
    opterr = 0;
    int rc = SM_ARGS_CONTINUE;
    for (;;) {
        int longindex = -1;
        int c = getopt_long(argc, argv, so, lo, &longindex);
        if (c == -1)
            break;
        rc = c == '?' || c == ':' ? reject(spec, c, argv) : take(a, c, longindex, argv);
        if (rc != SM_ARGS_CONTINUE)
            break;
    }
    free(lo);
    free(so);
    if (rc == SM_ARGS_CONTINUE) {
        for (int i = optind; i < argc; i++)
            a->pos[a->npos++] = argv[i];
        rc = check(a);
    }
    if (rc != SM_ARGS_CONTINUE)
        sm_args_free(a);
    return rc;
}

void sm_args_free(sm_args *a)
{
    free(a->seen);
    free(a->pos);
    a->seen = NULL;
    a->pos = NULL;
    a->nseen = a->npos = 0;
}

const char *sm_args_nth(const sm_args *a, const char *name, int k)
{
    for (int i = 0; i < a->nseen; i++)
        if (strcmp(a->seen[i].opt->name, name) == 0 && k-- == 0)
            return a->seen[i].value ? a->seen[i].value : "";
    return NULL;
}

int sm_args_count(const sm_args *a, const char *name)
{
    int n = 0;
    for (int i = 0; i < a->nseen; i++)
        n += strcmp(a->seen[i].opt->name, name) == 0;
    return n;
}

const char *sm_args_get(const sm_args *a, const char *name)
{
    int n = sm_args_count(a, name);
    return n ? sm_args_nth(a, name, n - 1) : NULL;
}

bool sm_args_has(const sm_args *a, const char *name)
{
    return sm_args_count(a, name) > 0;
}

static void print_group(const sm_args_group *g, FILE *out)
{
    fprintf(out, "usage: %s COMMAND [options]   (%s COMMAND --help for details)\n\n", g->prog,
            g->prog);
    for (size_t i = 0; i < g->ncmds; i++)
        if (g->cmds[i].help)
            fprintf(out, "  %-12s %s\n", g->cmds[i].name, g->cmds[i].help);
    if (g->footer)
        fprintf(out, "\n%s", g->footer);
}

int sm_args_dispatch(const sm_args_group *g, int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : NULL;
    if (name && (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help"))) {
        print_group(g, stdout);
        return SM_ARGS_EXIT_OK;
    }
    if (name && !strcmp(name, "--version")) {
        print_version(g->prog);
        return SM_ARGS_EXIT_OK;
    }
    if (!name) {
        print_group(g, stderr);
        fprintf(stderr, "\n");
        return sm_args_usage_error(g->prog, "missing command");
    }
    for (size_t i = 0; i < g->ncmds; i++)
        if (!strcmp(name, g->cmds[i].name))
            return g->cmds[i].run(argc - 1, argv + 1);
    if (name[0] == '-')
        return sm_args_usage_error(g->prog, "unknown option '%s' (a command comes first)", name);
    return sm_args_usage_error(g->prog, "unknown command '%s'", name);
}
