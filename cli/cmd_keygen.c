/* cmd_keygen: `stepmark keygen [--out BASE]` makes a CURVE key pair for the broker, a worker
 * or a client: BASE.secret (mode 0600, never overwritten) and BASE.public, and prints the
 * public key (to put in the broker's allow-list or a peer's server_public_key). */
#include <stdio.h>

#include "cli_common.h"
#include "commands.h"
#include "sm_curve.h"

int sm_cli_keygen(int argc, char **argv)
{
    if (sm_cli_flag(argc, argv, "--help")) {
        printf("usage: stepmark keygen [--out BASE]   (default BASE: stepmark)\n"
               "Writes BASE.secret (0600) and BASE.public and prints the public key.\n");
        return 0;
    }
    const char *base = sm_cli_opt(argc, argv, "--out");
    if (!base)
        base = "stepmark";
    char pub[SM_CURVE_Z85];
    sm_err err;
    if (sm_curve_write_pair(base, pub, &err) != SM_OK) {
        fprintf(stderr, "stepmark keygen: %s\n", err.msg);
        return 1;
    }
    printf("%s\n", pub);
    fprintf(stderr, "wrote %s.secret and %s.public\n", base, base);
    return 0;
}
