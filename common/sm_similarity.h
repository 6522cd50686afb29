/* sm_similarity: finds submissions of one assignment that are suspiciously alike.
 * Code is tokenized per language (comments and whitespace dropped, identifiers and literals
 * normalized), k-grams of tokens are hashed and winnowed as MOSS does (Schleimer, Wilkerson,
 * Aiken 2003: the minimum hash of every window of w k-grams, the rightmost on a tie). Proofs and
 * math are cut into case-folded words, numbers and math symbols (LaTeX markup dropped) and every
 * n-gram is kept. Every fingerprint keeps the byte range of its k-gram in the original text, so
 * that matches map back to lines and characters. No database here (sm_similarity_db.c). */
#ifndef SM_SIMILARITY_H
#define SM_SIMILARITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sm_error.h"

#define SM_SIM_MAX_BYTES (4u * 1024u * 1024u) /* a longer text is compared on its first 4 MiB */
#define SM_SIM_MAX_TOKENS 500000u             /* and on at most this many tokens */
#define SM_SIM_MAX_DOCS 5000u                 /* a class larger than this is refused */
#define SM_SIM_MAX_REGIONS 500u               /* matched regions reported per pair */
#define SM_SIM_DEFAULT_THRESHOLD 0.5

typedef enum sm_sim_lang {
    SM_SIM_TEXT = 0, /* proofs and math: word n-grams */
    SM_SIM_C,
    SM_SIM_CPP,
    SM_SIM_PYTHON,
    SM_SIM_JAVA,
} sm_sim_lang;

/* Parses an assignment's kind and language ("code" + "c"|"cpp"|"python"|"java", or "proof",
 * "math"); SM_EINVAL for an unknown language of code. */
sm_code sm_sim_lang_parse(const char *kind, const char *language, sm_sim_lang *out, sm_err *err);

typedef struct sm_sim_opts {
    sm_sim_lang lang;
    int k;    /* tokens per k-gram; 0 = default (12 for code, 5 for text) */
    int w;    /* winnowing window; 0 = default (8 for code, 1 = every n-gram for text) */
    bool all; /* keep every k-gram (w = 1): for starter code, whose hashes are excluded */
} sm_sim_opts;

/* One token: the hash of its normalized form and its byte range in the original text. */
typedef struct sm_sim_token {
    uint64_t h;
    uint32_t start, end;
} sm_sim_token;

/* Tokenizes text[0..len) (at most SM_SIM_MAX_BYTES of it, at most SM_SIM_MAX_TOKENS tokens).
 * *out is malloc'd (NULL when there are no tokens). */
sm_code sm_sim_tokenize(const sm_sim_opts *o, const char *text, size_t len, sm_sim_token **out,
                        size_t *n, sm_err *err);

/* A hash that two tokens share exactly when their normalized forms are equal. */
uint64_t sm_sim_hash_norm(const char *s, size_t n);

/* One fingerprint: a k-gram's hash and the bytes it covers. */
typedef struct sm_sim_fp {
    uint64_t h;
    uint32_t start, end;
} sm_sim_fp;

/* A fingerprinted text: fps in text order, uniq the distinct hashes sorted. */
typedef struct sm_sim_doc {
    sm_sim_fp *fps;
    size_t nfps;
    uint64_t *uniq;
    size_t nuniq;
    size_t ntokens;
} sm_sim_doc;

sm_code sm_sim_fingerprint(const sm_sim_opts *o, const char *text, size_t len, sm_sim_doc *out,
                           sm_err *err);
void sm_sim_doc_free(sm_sim_doc *d);

/* A sorted set of hashes left out of every comparison (starter code, boilerplate). */
typedef struct sm_sim_hashset {
    uint64_t *h;
    size_t n;
} sm_sim_hashset;
bool sm_sim_hashset_has(const sm_sim_hashset *s, uint64_t h);
void sm_sim_hashset_free(sm_sim_hashset *s);

typedef struct sm_sim_range {
    uint32_t start, end; /* bytes [start, end) */
} sm_sim_range;

/* A stretch of a that matches a stretch of b. */
typedef struct sm_sim_region {
    sm_sim_range a, b;
} sm_sim_region;

typedef struct sm_sim_match {
    size_t shared;          /* distinct fingerprints in both (exclusions left out) */
    size_t na, nb;          /* distinct fingerprints of each (exclusions left out) */
    double contain_a;       /* shared / na: how much of a is found in b */
    double contain_b;       /* shared / nb */
    double jaccard;         /* shared / (na + nb - shared) */
    double score;           /* max(contain_a, contain_b): what the threshold compares */
    sm_sim_region *regions; /* in a's order, malloc'd */
    size_t nregions;
} sm_sim_match;

/* Compares two documents; exclude may be NULL. */
sm_code sm_sim_compare(const sm_sim_doc *a, const sm_sim_doc *b, const sm_sim_hashset *exclude,
                       sm_sim_match *out, sm_err *err);
void sm_sim_match_free(sm_sim_match *m);

/* A place in a text: 1-based line and column (in characters), and the character offset. */
typedef struct sm_sim_pos {
    uint32_t line, col, chr;
} sm_sim_pos;
/* Locates byte offset off of text (UTF-8) as a line, a column and a character offset. */
sm_sim_pos sm_sim_locate(const char *text, size_t len, uint32_t off);

/* ---- a whole class ---- */
typedef struct sm_sim_class_opts {
    double threshold;       /* pairs with score >= threshold are reported; 0 = default */
    size_t max_per_hash;    /* a hash in more documents is boilerplate; 0 = max(10, n / 10) */
    size_t min_shared;      /* fewer shared fingerprints is never a pair; 0 = default 5 */
    const sm_sim_doc *base; /* starter code (fingerprinted with all = true), or NULL */
} sm_sim_class_opts;

typedef struct sm_sim_pair {
    size_t a, b; /* indexes into the documents, a < b */
    size_t shared;
    double score;
} sm_sim_pair;

/* Finds the pairs of docs[0..n) at or above the threshold, best first. *exclude receives the
 * hashes left out (the starter code's and the boilerplate's): pass it to sm_sim_compare. */
sm_code sm_sim_class_pairs(const sm_sim_doc *docs, size_t n, const sm_sim_class_opts *o,
                           sm_sim_pair **pairs, size_t *npairs, sm_sim_hashset *exclude,
                           sm_err *err);

#endif
