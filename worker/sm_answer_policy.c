/* sm_answer_policy: the one parser of an assignment's answer_policy, shared by the worker
 * (sm_answer.c applies it) and the broker (validate.c checks ASSIGNMENT_CREATE/UPDATE). */
#include "sm_answer_policy.h"

#include <string.h>

sm_answer_policy sm_answer_policy_default(void)
{
    return (sm_answer_policy){.percent = SM_PERCENT_EITHER,
                              .tolerance = SM_ANSWER_DEFAULT_TOLERANCE,
                              .units = SM_UNITS_CHECK};
}

static sm_code parse_percent(const char *s, sm_answer_policy *out, sm_err *err)
{
    if (s && strcmp(s, "either") == 0)
        out->percent = SM_PERCENT_EITHER;
    else if (s && strcmp(s, "ratio") == 0)
        out->percent = SM_PERCENT_RATIO;
    else if (s && strcmp(s, "percent") == 0)
        out->percent = SM_PERCENT_PERCENT;
    else
        return sm_err_set(err, SM_EINVAL, "answer_policy.percent must be either, ratio or percent");
    return SM_OK;
}

sm_code sm_answer_policy_parse(const json_t *j, sm_answer_policy *out, sm_err *err)
{
    *out = sm_answer_policy_default();
    if (!j || json_is_null(j))
        return SM_OK;
    if (!json_is_object(j))
        return sm_err_set(err, SM_EINVAL, "answer_policy must be an object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        const char *s = json_string_value(v);
        if (strcmp(key, "percent") == 0) {
            sm_code rc = parse_percent(s, out, err);
            if (rc)
                return rc;
        } else if (strcmp(key, "units") == 0) {
            if (s && strcmp(s, "check") == 0)
                out->units = SM_UNITS_CHECK;
            else if (s && strcmp(s, "ignore") == 0)
                out->units = SM_UNITS_IGNORE;
            else
                return sm_err_set(err, SM_EINVAL, "answer_policy.units must be check or ignore");
        } else if (strcmp(key, "tolerance") == 0) {
            double t = json_number_value(v);
            if (!json_is_number(v) || !(t >= 0 && t <= 0.5))
                return sm_err_set(err, SM_EINVAL,
                                  "answer_policy.tolerance must be a number from 0 to 0.5");
            out->tolerance = t;
        } else {
            return sm_err_set(err, SM_EINVAL,
                              "answer_policy: unknown field \"%s\" (percent, tolerance, units)",
                              key);
        }
    }
    return SM_OK;
}

json_t *sm_answer_policy_json(const sm_answer_policy *p)
{
    static const char *const percent[] = {"either", "ratio", "percent"};
    return json_pack("{s:s, s:f, s:s}", "percent", percent[p->percent], "tolerance", p->tolerance,
                     "units", p->units == SM_UNITS_CHECK ? "check" : "ignore");
}
