/* cmd_timing: the clock and the median shared by the benchmarking subcommands. */
#ifndef SM_CMD_TIMING_H
#define SM_CMD_TIMING_H

/* Seconds on the monotonic clock. */
double sm_cmd_now_s(void);

/* The median of v[0, n) (n >= 1); sorts v. */
double sm_cmd_median(double *v, int n);

#endif
