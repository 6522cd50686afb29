/* cmd_keygen: `stepmark keygen [--out BASE]` makes a CURVE key pair for the broker, a worker
 * or a client: BASE.secret (mode 0600, never overwritten) and BASE.public, and prints the
 * public key (to put in the broker's allow-list or a peer's server_public_key). */
#include <stdio.h>

#include "cli_common.h"
#include "commands.h"
#include "sm_curve.h"

static const sm_arg_opt keygen_opts[] = {
    {"out", 0, SM_ARG_VALUE, "BASE", "where to write the pair (default: stepmark)", false}, {0}};
static const sm_args_spec keygen_spec = {
    "stepmark keygen",
    NULL,
    "Writes BASE.secret (0600, never overwritten) and BASE.public and prints the public key.",
    keygen_opts,
    NULL,
    0,
    0};

int sm_cli_keygen(int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&keygen_spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    const char *base = sm_args_get(&a, "out");
    if (!base)
        base = "stepmark";
    char pub[SM_CURVE_Z85];
    sm_err err;
    rc = 0;
    if (sm_curve_write_pair(base, pub, &err) != SM_OK) {
        fprintf(stderr, "stepmark keygen: %s\n", err.msg);
        rc = 1;
    } else {
        printf("%s\n", pub);
        fprintf(stderr, "wrote %s.secret and %s.public\n", base, base);
    }
    sm_args_free(&a);
    return rc;
}
