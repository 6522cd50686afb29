/* sm_args: the command-line parser shared by every stepmark program and subcommand. A command
 * describes its options in a table (sm_arg_opt); sm_args_parse runs glibc's getopt_long over
 * it, answers --help (usage generated from the table, on stdout, exit 0) and --version
 * ("PROG VERSION", exit 0), and names any unknown option, missing value, missing required
 * option or wrong count of arguments on stderr (exit 2). Long options must be spelled out in
 * full: an abbreviation is an unknown option, so a new option never changes what an old
 * command line means. sm_args_dispatch does the same for a program or a subcommand made of
 * sub-subcommands ("stepmark teacher add"). */
#ifndef SM_ARGS_H
#define SM_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Exit statuses of a command line. */
typedef enum sm_args_exit {
    SM_ARGS_EXIT_OK = 0,    /* --help or --version answered */
    SM_ARGS_EXIT_FAIL = 1,  /* out of memory */
    SM_ARGS_EXIT_USAGE = 2, /* bad command line (the message is on stderr) */
    SM_ARGS_CONTINUE = -1   /* parsed: run the command */
} sm_args_exit;

typedef enum sm_arg_kind {
    SM_ARG_FLAG,   /* --name */
    SM_ARG_VALUE,  /* --name VALUE or --name=VALUE; may be repeated (sm_args_nth) */
    SM_ARG_REFUSED /* --name[=VALUE] is refused with the help text as the reason */
} sm_arg_kind;

typedef struct sm_arg_opt {
    const char *name; /* long name without the dashes */
    char short_name;  /* 0: none */
    sm_arg_kind kind;
    const char *metavar; /* value name in the help, e.g. "FILE" */
    const char *help;    /* one line; NULL hides the option from --help */
    bool required;
} sm_arg_opt;

typedef struct sm_args_spec {
    const char *prog;       /* "stepmark result" */
    const char *args;       /* positional synopsis, e.g. "SUBMISSION_ID" (NULL: none) */
    const char *about;      /* text after the usage line (NULL: none) */
    const sm_arg_opt *opts; /* ended by an entry with a NULL name */
    const sm_arg_opt *more; /* a second table (shared options), or NULL */
    int min_args, max_args; /* positional arguments; max_args < 0: no limit */
} sm_args_spec;

/* One option given on the command line. */
typedef struct sm_arg_seen {
    const sm_arg_opt *opt;
    const char *value; /* NULL for a flag */
} sm_arg_seen;

typedef struct sm_args {
    const sm_args_spec *spec;
    sm_arg_seen *seen; /* in command-line order */
    int nseen;
    char **pos; /* positional arguments (into argv) */
    int npos;
} sm_args;

/* Parses argv[1..argc) by spec (argv[0] is the command's name; argv may be permuted). Returns
 * SM_ARGS_CONTINUE with *a filled (free it with sm_args_free), or the exit status when the
 * command line was answered (--help, --version) or rejected (message on stderr). */
int sm_args_parse(const sm_args_spec *spec, int argc, char **argv, sm_args *a);
void sm_args_free(sm_args *a);

/* The last value given for --name (NULL when absent; "" for a flag that is present). */
const char *sm_args_get(const sm_args *a, const char *name);
bool sm_args_has(const sm_args *a, const char *name);
/* The k-th (0-based) value of a repeated --name, NULL past the last; count of them. */
const char *sm_args_nth(const sm_args *a, const char *name, int k);
int sm_args_count(const sm_args *a, const char *name);

/* Prints "PROG: message" and the --help hint on stderr; returns SM_ARGS_EXIT_USAGE. */
int sm_args_usage_error(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints the usage generated from spec. */
void sm_args_print_help(const sm_args_spec *spec, FILE *out);

/* The project's version (CMake's PROJECT_VERSION). */
const char *sm_args_version(void);

/* A program or subcommand made of subcommands. */
typedef int (*sm_args_fn)(int argc, char **argv);
typedef struct sm_args_cmd {
    const char *name;
    sm_args_fn run;   /* gets argv from the subcommand's name on */
    const char *help; /* one line; NULL hides it (an alias) */
} sm_args_cmd;

typedef struct sm_args_group {
    const char *prog;   /* "stepmark" or "stepmark teacher" */
    const char *footer; /* text after the list (NULL: none) */
    const sm_args_cmd *cmds;
    size_t ncmds;
} sm_args_group;

/* Runs the subcommand named by argv[1]: --help/-h/help lists the subcommands (stdout, 0),
 * --version prints the version (0), a missing or unknown subcommand is an error (stderr, 2). */
int sm_args_dispatch(const sm_args_group *g, int argc, char **argv);

#endif
