/* sm_model_config: reads a Qwen2 config.json (and generation_config.json) with jansson into
 * sm_model_config, rejecting malformed JSON, missing or mistyped keys and inconsistent sizes. */
#include "sm_model.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CFG_MAX_DIM (1LL << 20)
#define CFG_MAX_VOCAB (1LL << 24)
#define CFG_MAX_LAYERS 1024

static sm_code get_int(json_t *o, const char *path, const char *key, bool required, int64_t def,
                       int64_t lo, int64_t hi, int64_t *out, sm_err *err)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v)) {
        if (required) {
            return sm_err_set(err, SM_EFORMAT, "%s: missing \"%s\"", path, key);
        }
        *out = def;
        return SM_OK;
    }
    if (!json_is_integer(v)) {
        return sm_err_set(err, SM_EFORMAT, "%s: \"%s\" must be an integer", path, key);
    }
    int64_t x = json_integer_value(v);
    if (x < lo || x > hi) {
        return sm_err_set(err, SM_EFORMAT, "%s: \"%s\" = %lld is out of range [%lld, %lld]", path,
                          key, (long long)x, (long long)lo, (long long)hi);
    }
    *out = x;
    return SM_OK;
}

static sm_code get_num(json_t *o, const char *path, const char *key, double def, double lo,
                       double hi, double *out, sm_err *err)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v)) {
        *out = def;
        return SM_OK;
    }
    if (!json_is_number(v)) {
        return sm_err_set(err, SM_EFORMAT, "%s: \"%s\" must be a number", path, key);
    }
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) {
        return sm_err_set(err, SM_EFORMAT, "%s: \"%s\" = %g is out of range [%g, %g]", path, key, x,
                          lo, hi);
    }
    *out = x;
    return SM_OK;
}

static sm_code get_bool(json_t *o, const char *path, const char *key, bool def, bool *out,
                        sm_err *err)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v)) {
        *out = def;
        return SM_OK;
    }
    if (!json_is_boolean(v)) {
        return sm_err_set(err, SM_EFORMAT, "%s: \"%s\" must be true or false", path, key);
    }
    *out = json_is_true(v);
    return SM_OK;
}

/* eos_token_id: an integer or a list of integers; replaces cfg's list when present. */
static sm_code get_eos(json_t *o, const char *path, int64_t vocab, sm_model_config *cfg,
                       sm_err *err)
{
    json_t *v = json_object_get(o, "eos_token_id");
    if (v == NULL || json_is_null(v)) {
        return SM_OK;
    }
    json_t *one[1] = {v};
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (!json_is_array(v) && !json_is_integer(v)) {
        return sm_err_set(err, SM_EFORMAT, "%s: \"eos_token_id\" must be an integer or a list",
                          path);
    }
    if (n > SM_MODEL_MAX_EOS) {
        return sm_err_set(err, SM_EFORMAT, "%s: more than %d eos_token_id values", path,
                          SM_MODEL_MAX_EOS);
    }
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_is_array(v) ? json_array_get(v, i) : one[0];
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= vocab) {
            return sm_err_set(err, SM_EFORMAT, "%s: eos_token_id must be ids below vocab_size %lld",
                              path, (long long)vocab);
        }
        cfg->eos_ids[i] = (int32_t)json_integer_value(x);
    }
    cfg->n_eos = (int)n;
    return SM_OK;
}

static sm_code load_json(const char *path, json_t **out, sm_err *err)
{
    json_error_t jerr;
    *out = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (*out == NULL) {
        if (access(path, R_OK) != 0) {
            return sm_err_set(err, SM_ENOTFOUND, "%s: cannot read", path);
        }
        return sm_err_set(err, SM_EFORMAT, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
    }
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return sm_err_set(err, SM_EFORMAT, "%s: not a JSON object", path);
    }
    return SM_OK;
}

static sm_code parse_config(json_t *o, const char *p, sm_model_config *c, sm_err *err)
{
    json_t *mt = json_object_get(o, "model_type");
    json_t *ar = json_object_get(o, "architectures");
    bool qwen2 = json_is_string(mt) && strcmp(json_string_value(mt), "qwen2") == 0;
    if (json_is_array(ar)) {
        size_t i;
        json_t *a;
        json_array_foreach(ar, i, a)
        {
            if (json_is_string(a) && strcmp(json_string_value(a), "Qwen2ForCausalLM") == 0) {
                qwen2 = true;
            }
        }
    }
    if (!qwen2) {
        return sm_err_set(err, SM_EUNSUPPORTED,
                          "%s: not a Qwen2 model (model_type \"qwen2\" or architectures "
                          "[\"Qwen2ForCausalLM\"] expected)",
                          p);
    }
    sm_code rc;
    if ((rc = get_int(o, p, "hidden_size", true, 0, 1, CFG_MAX_DIM, &c->hidden, err)) ||
        (rc = get_int(o, p, "num_hidden_layers", true, 0, 1, CFG_MAX_LAYERS, &c->n_layers, err)) ||
        (rc = get_int(o, p, "num_attention_heads", true, 0, 1, 4096, &c->n_heads, err)) ||
        (rc = get_int(o, p, "num_key_value_heads", false, c->n_heads, 1, 4096, &c->n_kv_heads,
                      err)) ||
        (rc = get_int(o, p, "intermediate_size", true, 0, 1, CFG_MAX_DIM, &c->intermediate, err)) ||
        (rc = get_int(o, p, "vocab_size", true, 0, 1, CFG_MAX_VOCAB, &c->vocab, err)) ||
        (rc = get_int(o, p, "max_position_embeddings", false, 32768, 1, 1LL << 24, &c->max_pos,
                      err)) ||
        (rc = get_num(o, p, "rope_theta", 10000.0, 1.0, 1e12, &c->rope_theta, err)) ||
        (rc = get_num(o, p, "rms_norm_eps", 1e-6, 1e-30, 1.0, &c->rms_eps, err)) ||
        (rc = get_bool(o, p, "tie_word_embeddings", false, &c->tied, err))) {
        return rc;
    }
    int64_t def_hd = c->hidden / c->n_heads;
    if ((rc = get_int(o, p, "head_dim", false, def_hd, 2, 4096, &c->head_dim, err))) {
        return rc;
    }
    if (json_object_get(o, "head_dim") == NULL && c->hidden % c->n_heads != 0) {
        return sm_err_set(err, SM_EFORMAT,
                          "%s: hidden_size %lld is not a multiple of num_attention_heads %lld", p,
                          (long long)c->hidden, (long long)c->n_heads);
    }
    if (c->head_dim % 2 != 0 || c->head_dim < 2) {
        return sm_err_set(err, SM_EFORMAT, "%s: head size %lld must be even", p,
                          (long long)c->head_dim);
    }
    if (c->n_heads % c->n_kv_heads != 0) {
        return sm_err_set(err, SM_EFORMAT,
                          "%s: num_attention_heads %lld is not a multiple of num_key_value_heads "
                          "%lld",
                          p, (long long)c->n_heads, (long long)c->n_kv_heads);
    }
    json_t *rs = json_object_get(o, "rope_scaling");
    if (rs != NULL && !json_is_null(rs)) {
        return sm_err_set(err, SM_EUNSUPPORTED, "%s: rope_scaling is not supported", p);
    }
    bool sliding = false;
    if ((rc = get_bool(o, p, "use_sliding_window", false, &sliding, err))) {
        return rc;
    }
    if (sliding) {
        return sm_err_set(err, SM_EUNSUPPORTED, "%s: use_sliding_window is not supported", p);
    }
    int64_t bos = -1;
    if ((rc = get_int(o, p, "bos_token_id", false, -1, -1, c->vocab - 1, &bos, err))) {
        return rc;
    }
    c->bos_id = (int32_t)bos;
    return get_eos(o, p, c->vocab, c, err);
}

static sm_code parse_generation(json_t *o, const char *p, sm_model_config *c, sm_err *err)
{
    sm_code rc;
    c->has_sampling = true;
    if ((rc = get_eos(o, p, c->vocab, c, err)) ||
        (rc = get_bool(o, p, "do_sample", false, &c->do_sample, err)) ||
        (rc = get_num(o, p, "temperature", 1.0, 0.0, 1e6, &c->temperature, err)) ||
        (rc = get_num(o, p, "top_p", 1.0, 0.0, 1.0, &c->top_p, err)) ||
        (rc = get_int(o, p, "top_k", false, 0, 0, CFG_MAX_VOCAB, &c->top_k, err)) ||
        (rc = get_num(o, p, "min_p", 0.0, 0.0, 1.0, &c->min_p, err)) ||
        (rc = get_num(o, p, "repetition_penalty", 1.0, 1e-6, 1e6, &c->repetition_penalty, err))) {
        return rc;
    }
    return SM_OK;
}

sm_code sm_model_config_parse(const char *config_path, const char *gen_path, sm_model_config *cfg,
                              sm_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->bos_id = -1;
    cfg->temperature = 1.0;
    cfg->top_p = 1.0;
    cfg->repetition_penalty = 1.0;
    json_t *o;
    sm_code rc = load_json(config_path, &o, err);
    if (rc != SM_OK) {
        return rc;
    }
    rc = parse_config(o, config_path, cfg, err);
    json_decref(o);
    if (rc != SM_OK || gen_path == NULL || access(gen_path, F_OK) != 0) {
        return rc;
    }
    if ((rc = load_json(gen_path, &o, err)) != SM_OK) {
        return rc;
    }
    rc = parse_generation(o, gen_path, cfg, err);
    json_decref(o);
    return rc;
}
