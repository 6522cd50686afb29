/* sm_inject: prompt-injection patterns in student text (PCRE2, caseless, UTF). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "sm_inject.h"

#include <pcre2.h>

static const struct {
    const char *name;
    const char *re;
} patterns[SM_INJECT_KINDS] = {
    {"injection:ignore_instructions",
     "\\b(ignore|disregard|forget|override|skip)\\b[^.\\n]{0,40}?\\b(previous|prior|above|"
     "earlier|preceding|all|any|your|the|system|grading)\\b[^.\\n]{0,40}?\\b(instructions?|"
     "prompts?|rules|directions|guidelines|rubric)\\b"},
    {"injection:role_marker",
     "<\\|[a-z_]{2,32}\\|>|^[ \\t>#*]*(system|assistant|user|developer)[ \\t]*:|\\[/?INST\\]|"
     "<</?SYS>>|^[ \\t]*#{1,6}[ \\t]*(system|instruction)s?\\b"},
    {"injection:fake_verdict",
     "^[ \\t]*=+[ \\t]*(END[ \\t]+)?VERDICT[ \\t]*=+|^[ \\t]*SCORE[ \\t]*:[ \\t]*[0-9]|"
     "^[ \\t]*STEP[ \\t]+[0-9]+[ \\t]*:[ \\t]*(correct|incorrect|incomplete|unclear)\\b"},
    {"injection:addresses_grader",
     "\\b(dear|note (to|for)( the)?|attention|hey|hello)[ ,]+(grader|marker|examiner|ai|model|"
     "assistant|chatbot|llm)\\b|\\b(you are|you're|act as|pretend to be)[ \\t]+(now[ \\t]+)?"
     "(a|an|the|my)?[ \\t]*\\w*[ \\t]*(grader|assistant|model|ai)\\b|\\b(give|award|assign|grant)"
     "[ \\t]+(me|this|the student|it)[^.\\n]{0,30}\\b(full|maximum|max|all|perfect|100%?)[ \\t]+"
     "(marks?|score|points|credit|grade)\\b|\\bfull (marks|score|points|credit)\\b"},
};

sm_code sm_inject_scan(const char *text, size_t len, const char *names[SM_INJECT_KINDS], int *n,
                       sm_err *err)
{
    *n = 0;
    for (int i = 0; i < SM_INJECT_KINDS; i++) {
        int ec;
        PCRE2_SIZE eo;
        pcre2_code *re =
            pcre2_compile((PCRE2_SPTR)patterns[i].re, PCRE2_ZERO_TERMINATED,
                          PCRE2_CASELESS | PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &ec, &eo, NULL);
        if (!re)
            return sm_err_set(err, SM_EINTERNAL, "injection pattern %d does not compile", i);
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
        if (!md) {
            pcre2_code_free(re);
            return sm_err_set(err, SM_ENOMEM, "out of memory");
        }
        int rc = pcre2_match(re, (PCRE2_SPTR)text, len, 0, 0, md, NULL);
        pcre2_match_data_free(md);
        pcre2_code_free(re);
        if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21)
            return sm_err_set(err, SM_EINVAL, "student text is not valid UTF-8");
        if (rc > 0)
            names[(*n)++] = patterns[i].name;
        else if (rc != PCRE2_ERROR_NOMATCH)
            names[(*n)++] = patterns[i].name; /* match limit hit on hostile text: flag it */
    }
    return SM_OK;
}
