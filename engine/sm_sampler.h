/* sm_sampler: picks the next token from a row of logits: repetition penalty, then temperature,
 * top-k, top-p and min-p, then a draw from a seeded xoshiro256** generator owned by the sampler
 * (one sampler per sequence: the same seed and logits give the same tokens on every machine).
 * Temperature 0 is greedy (the lowest id among equal maxima). Also stop-string matching on
 * decoded text. */
#ifndef SM_SAMPLER_H
#define SM_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"

typedef struct sm_sampler_params {
    double temperature;    /* 0 = greedy */
    int64_t top_k;         /* 0 = off */
    double top_p;          /* 1 = off */
    double min_p;          /* 0 = off */
    double repeat_penalty; /* 1 = off; HF rule: logit > 0 ? logit / r : logit * r */
    int64_t repeat_last_n; /* how many recent tokens the penalty looks at; <= 0: all */
    uint64_t seed;
} sm_sampler_params;

/* Greedy, no penalty, seed 0. */
void sm_sampler_params_init(sm_sampler_params *p);

typedef struct sm_sampler sm_sampler;

/* SM_EINVAL for a negative temperature/top_k, top_p outside (0, 1], min_p outside [0, 1],
 * a penalty <= 0 or vocab < 1. */
sm_code sm_sampler_new(const sm_sampler_params *p, int64_t vocab, sm_sampler **out, sm_err *err);
void sm_sampler_free(sm_sampler **s);

/* Draws the next token. logits (vocab values) are not modified; history holds the tokens seen
 * so far (prompt and generated) for the repetition penalty. */
sm_code sm_sampler_sample(sm_sampler *s, const float *logits, const int32_t *history,
                          size_t n_history, int32_t *token, sm_err *err);

/* The probabilities the last sample drew from (after every filter; 0 for removed ids), valid
 * until the next call: for tests and diagnostics. */
const float *sm_sampler_probs(const sm_sampler *s);

/* A uniform double in [0, 1) from the sampler's generator (advances it). */
double sm_sampler_uniform(sm_sampler *s);

/* Index of the first occurrence in text[0, len) of any of the n stop strings that ends at or
 * after position from (so a caller rechecks only the newly decoded tail), or -1. */
int64_t sm_stop_find(const char *text, size_t len, size_t from, const char *const *stops, size_t n);

#endif
