/* sm_tok_json: reads a Hugging Face tokenizer.json (jansson) into an sm_tok_spec. Only what
 * the byte-level BPE family uses is accepted: a BPE model (vocab + merges, either "a b" strings
 * or [a, b] pairs), an NFC (or no) normalizer, a Split pre-tokenizer regex followed by a
 * ByteLevel step without its own regex, a ByteLevel decoder and post-processor. Anything else
 * is refused with SM_EUNSUPPORTED naming the part, malformed content with SM_EFORMAT. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "sm_tok_internal.h"

void sm_tok_spec_clear(sm_tok_spec *spec)
{
    if (spec->text) {
        for (size_t i = 0; i < spec->n_ids; i++)
            free(spec->text[i]);
    }
    free(spec->text);
    free(spec->is_added);
    free(spec->merge_triples);
    for (size_t i = 0; i < spec->n_added; i++)
        free(spec->added[i].content);
    free(spec->added);
    free(spec->regex);
    memset(spec, 0, sizeof *spec);
}

static const char *type_of(const json_t *obj)
{
    const json_t *t = json_object_get(obj, "type");
    return json_is_string(t) ? json_string_value(t) : NULL;
}

/* true when key is absent/null or a string equal to "" */
static bool empty_or_null(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return !v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0);
}

static bool false_or_null(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return !v || json_is_null(v) || json_is_false(v);
}

static sm_code check_bytelevel(const json_t *bl, const char *where, bool regex_ok, sm_err *err)
{
    if (!false_or_null(bl, "add_prefix_space"))
        return sm_err_set(err, SM_EUNSUPPORTED,
                          "tokenizer.json: %s ByteLevel with add_prefix_space "
                          "is not supported",
                          where);
    if (!regex_ok && !false_or_null(bl, "use_regex"))
        return sm_err_set(err, SM_EUNSUPPORTED,
                          "tokenizer.json: %s ByteLevel with use_regex "
                          "(the built-in GPT-2 regex) is not supported",
                          where);
    return SM_OK;
}

static sm_code parse_normalizer(const json_t *n, sm_tok_spec *spec, sm_err *err)
{
    spec->normalizer = SM_TOK_NORM_NONE;
    if (!n || json_is_null(n))
        return SM_OK;
    const char *type = type_of(n);
    if (!type)
        return sm_err_set(err, SM_EFORMAT, "tokenizer.json: normalizer has no type");
    if (strcmp(type, "NFC") == 0) {
        spec->normalizer = SM_TOK_NORM_NFC;
        return SM_OK;
    }
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(n, "normalizers");
        if (!json_is_array(list))
            return sm_err_set(err, SM_EFORMAT, "tokenizer.json: normalizer Sequence without list");
        if (json_array_size(list) > 1)
            return sm_err_set(err, SM_EUNSUPPORTED,
                              "tokenizer.json: a normalizer Sequence of %zu steps is not supported",
                              json_array_size(list));
        return json_array_size(list) ? parse_normalizer(json_array_get(list, 0), spec, err) : SM_OK;
    }
    return sm_err_set(err, SM_EUNSUPPORTED, "tokenizer.json: normalizer %s is not supported", type);
}

static sm_code parse_split(const json_t *s, sm_tok_spec *spec, sm_err *err)
{
    if (spec->regex)
        return sm_err_set(err, SM_EUNSUPPORTED,
                          "tokenizer.json: more than one Split pre-tokenizer");
    const json_t *pattern = json_object_get(s, "pattern");
    const json_t *re = json_object_get(pattern, "Regex");
    if (!json_is_string(re)) {
        if (json_is_string(json_object_get(pattern, "String")))
            return sm_err_set(err, SM_EUNSUPPORTED,
                              "tokenizer.json: Split with a String pattern is not supported");
        return sm_err_set(err, SM_EFORMAT, "tokenizer.json: Split without a Regex pattern");
    }
    const json_t *behavior = json_object_get(s, "behavior");
    if (!json_is_string(behavior) || strcmp(json_string_value(behavior), "Isolated") != 0)
        return sm_err_set(err, SM_EUNSUPPORTED,
                          "tokenizer.json: Split behavior %s is not supported (only Isolated)",
                          json_is_string(behavior) ? json_string_value(behavior) : "(missing)");
    if (!false_or_null(s, "invert"))
        return sm_err_set(err, SM_EUNSUPPORTED, "tokenizer.json: inverted Split is not supported");
    spec->regex = strndup(json_string_value(re), json_string_length(re));
    if (!spec->regex)
        return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory");
    if (strlen(spec->regex) != json_string_length(re))
        return sm_err_set(err, SM_EFORMAT, "tokenizer.json: Split regex contains a NUL");
    return SM_OK;
}

static sm_code parse_pre_tokenizer(const json_t *p, sm_tok_spec *spec, sm_err *err)
{
    if (!p || json_is_null(p))
        return sm_err_set(err, SM_EUNSUPPORTED,
                          "tokenizer.json: no pre-tokenizer (a ByteLevel one is required)");
    const char *type = type_of(p);
    if (!type)
        return sm_err_set(err, SM_EFORMAT, "tokenizer.json: pre_tokenizer has no type");
    if (strcmp(type, "ByteLevel") == 0)
        return check_bytelevel(p, "pre_tokenizer", false, err);
    if (strcmp(type, "Sequence") != 0)
        return sm_err_set(err, SM_EUNSUPPORTED, "tokenizer.json: pre-tokenizer %s is not supported",
                          type);
    const json_t *list = json_object_get(p, "pretokenizers");
    if (!json_is_array(list))
        return sm_err_set(err, SM_EFORMAT, "tokenizer.json: pre_tokenizer Sequence without list");
    bool bytelevel = false;
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *step = json_array_get(list, i);
        const char *t = type_of(step);
        if (!t)
            return sm_err_set(err, SM_EFORMAT, "tokenizer.json: pre-tokenizer step has no type");
        sm_code rc;
        if (strcmp(t, "Split") == 0) {
            if (bytelevel)
                return sm_err_set(err, SM_EUNSUPPORTED,
                                  "tokenizer.json: Split after ByteLevel is not supported");
            rc = parse_split(step, spec, err);
        } else if (strcmp(t, "ByteLevel") == 0) {
            if (bytelevel)
                return sm_err_set(err, SM_EUNSUPPORTED, "tokenizer.json: two ByteLevel steps");
            bytelevel = true;
            rc = check_bytelevel(step, "pre_tokenizer", false, err);
        } else {
            rc = sm_err_set(err, SM_EUNSUPPORTED,
                            "tokenizer.json: pre-tokenizer %s is not supported", t);
        }
        if (rc)
            return rc;
    }
    if (!bytelevel)
        return sm_err_set(
            err, SM_EUNSUPPORTED,
            "tokenizer.json: pre-tokenizer has no ByteLevel step (not byte-level BPE)");
    return SM_OK;
}

static sm_code parse_decoder(const json_t *d, sm_err *err)
{
    const char *type = d ? type_of(d) : NULL;
    if (!type)
        return sm_err_set(err, SM_EUNSUPPORTED, "tokenizer.json: a ByteLevel decoder is required");
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(d, "decoders");
        if (json_is_array(list) && json_array_size(list) == 1)
            return parse_decoder(json_array_get(list, 0), err);
    }
    if (strcmp(type, "ByteLevel") != 0)
        return sm_err_set(err, SM_EUNSUPPORTED, "tokenizer.json: decoder %s is not supported",
                          type);
    return SM_OK;
}

static sm_code parse_post_processor(const json_t *p, sm_err *err)
{
    if (!p || json_is_null(p))
        return SM_OK;
    const char *type = type_of(p);
    if (!type || strcmp(type, "ByteLevel") != 0)
        return sm_err_set(err, SM_EUNSUPPORTED,
                          "tokenizer.json: post-processor %s is not supported",
                          type ? type : "(no type)");
    return SM_OK;
}

static sm_code set_text(sm_tok_spec *spec, size_t id, const char *s, size_t n)
{
    char *copy = malloc(n + 1);
    if (!copy)
        return SM_ENOMEM;
    memcpy(copy, s, n);
    copy[n] = 0;
    free(spec->text[id]);
    spec->text[id] = copy;
    return SM_OK;
}

static sm_code parse_added(const json_t *list, sm_tok_spec *spec, size_t *max_id, sm_err *err)
{
    if (!list || json_is_null(list))
        return SM_OK;
    if (!json_is_array(list))
        return sm_err_set(err, SM_EFORMAT, "tokenizer.json: added_tokens is not an array");
    size_t n = json_array_size(list);
    spec->added = calloc(n ? n : 1, sizeof *spec->added);
    if (!spec->added)
        return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(list, i);
        const json_t *id = json_object_get(t, "id");
        const json_t *content = json_object_get(t, "content");
        if (!json_is_integer(id) || !json_is_string(content) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= SM_TOK_MAX_IDS || json_string_length(content) == 0)
            return sm_err_set(err, SM_EFORMAT, "tokenizer.json: added token %zu is malformed", i);
        sm_tok_added *a = &spec->added[spec->n_added++];
        a->id = (int32_t)json_integer_value(id);
        a->len = json_string_length(content);
        a->content = malloc(a->len + 1);
        if (!a->content)
            return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory");
        memcpy(a->content, json_string_value(content), a->len + 1);
        a->special = json_is_true(json_object_get(t, "special"));
        a->lstrip = json_is_true(json_object_get(t, "lstrip"));
        a->rstrip = json_is_true(json_object_get(t, "rstrip"));
        a->single_word = json_is_true(json_object_get(t, "single_word"));
        /* HF's default for a missing "normalized" is !special */
        const json_t *norm = json_object_get(t, "normalized");
        a->normalized = norm ? json_is_true(norm) : !a->special;
        if ((size_t)a->id + 1 > *max_id)
            *max_id = (size_t)a->id + 1;
    }
    return SM_OK;
}

static sm_code parse_merges(const json_t *merges, const json_t *vocab, sm_tok_spec *spec,
                            sm_err *err)
{
    size_t n = json_array_size(merges);
    spec->merge_triples = malloc((n ? n : 1) * 3 * sizeof(uint32_t));
    if (!spec->merge_triples)
        return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory");
    char buf[1024];
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(merges, i);
        const char *a, *b;
        size_t la, lb;
        if (json_is_string(m)) {
            const char *s = json_string_value(m);
            const char *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return sm_err_set(err, SM_EFORMAT, "tokenizer.json: merge %zu is not \"a b\"", i);
            a = s;
            la = (size_t)(sp - s);
            b = sp + 1;
            lb = strlen(b);
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0));
            la = json_string_length(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1));
            lb = json_string_length(json_array_get(m, 1));
        } else {
            return sm_err_set(err, SM_EFORMAT, "tokenizer.json: merge %zu is malformed", i);
        }
        if (la + lb + 1 > sizeof buf || la == 0 || lb == 0)
            return sm_err_set(err, SM_EFORMAT, "tokenizer.json: merge %zu has a bad length", i);
        memcpy(buf, a, la);
        buf[la] = 0;
        const json_t *ia = json_object_get(vocab, buf);
        memcpy(buf + la, b, lb);
        buf[la + lb] = 0;
        const json_t *im = json_object_get(vocab, buf);
        memcpy(buf, b, lb);
        buf[lb] = 0;
        const json_t *ib = json_object_get(vocab, buf);
        if (!json_is_integer(ia) || !json_is_integer(ib) || !json_is_integer(im))
            return sm_err_set(err, SM_EFORMAT,
                              "tokenizer.json: merge %zu uses a token missing from the vocabulary",
                              i);
        spec->merge_triples[3 * i] = (uint32_t)json_integer_value(ia);
        spec->merge_triples[3 * i + 1] = (uint32_t)json_integer_value(ib);
        spec->merge_triples[3 * i + 2] = (uint32_t)json_integer_value(im);
    }
    spec->n_merges = n;
    return SM_OK;
}

static sm_code parse_model(const json_t *model, const json_t *added, sm_tok_spec *spec, sm_err *err)
{
    if (!json_is_object(model))
        return sm_err_set(err, SM_EFORMAT, "tokenizer.json: no model");
    const char *type = type_of(model);
    if (type && strcmp(type, "BPE") != 0)
        return sm_err_set(err, SM_EUNSUPPORTED,
                          "tokenizer.json: model type %s is not supported (only byte-level BPE)",
                          type);
    const json_t *vocab = json_object_get(model, "vocab");
    const json_t *merges = json_object_get(model, "merges");
    if (!json_is_object(vocab) || !json_is_array(merges))
        return sm_err_set(err, type ? SM_EFORMAT : SM_EUNSUPPORTED,
                          "tokenizer.json: model has no BPE vocab and merges");
    const json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) && json_number_value(dropout) != 0.0)
        return sm_err_set(err, SM_EUNSUPPORTED, "tokenizer.json: BPE dropout is not supported");
    if (!empty_or_null(model, "continuing_subword_prefix") ||
        !empty_or_null(model, "end_of_word_suffix"))
        return sm_err_set(err, SM_EUNSUPPORTED,
                          "tokenizer.json: BPE subword prefix/suffix is not supported");
    if (!false_or_null(model, "byte_fallback"))
        return sm_err_set(err, SM_EUNSUPPORTED,
                          "tokenizer.json: BPE byte_fallback is not supported");
    spec->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));

    size_t max_id = 0;
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)vocab, key, value)
    {
        if (!json_is_integer(value) || json_integer_value(value) < 0 ||
            json_integer_value(value) >= SM_TOK_MAX_IDS)
            return sm_err_set(err, SM_EFORMAT, "tokenizer.json: vocab entry \"%.64s\" has a bad id",
                              key);
        if ((size_t)json_integer_value(value) + 1 > max_id)
            max_id = (size_t)json_integer_value(value) + 1;
    }
    sm_code rc = parse_added(added, spec, &max_id, err);
    if (rc)
        return rc;
    /* an added token whose content is in the model vocabulary takes the vocabulary's id, as
     * HF does when it loads the file */
    for (size_t i = 0; i < spec->n_added; i++) {
        const json_t *v = json_object_get(vocab, spec->added[i].content);
        if (json_is_integer(v))
            spec->added[i].id = (int32_t)json_integer_value(v);
    }
    spec->n_ids = max_id;
    spec->text = calloc(max_id ? max_id : 1, sizeof *spec->text);
    spec->is_added = calloc(max_id ? max_id : 1, 1);
    if (!spec->text || !spec->is_added)
        return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory");
    json_object_foreach((json_t *)vocab, key, value)
    {
        size_t id = (size_t)json_integer_value(value);
        if (spec->text[id])
            return sm_err_set(err, SM_EFORMAT, "tokenizer.json: vocab id %zu is used twice", id);
        if (set_text(spec, id, key, strlen(key)))
            return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory");
    }
    for (size_t i = 0; i < spec->n_added; i++) {
        const sm_tok_added *a = &spec->added[i];
        if (set_text(spec, (size_t)a->id, a->content, a->len))
            return sm_err_set(err, SM_ENOMEM, "tokenizer: out of memory");
        spec->is_added[a->id] = 1;
    }
    return parse_merges(merges, vocab, spec, err);
}

sm_code sm_tok_json_parse(const char *json, size_t len, sm_tok_spec *spec, sm_err *err)
{
    memset(spec, 0, sizeof *spec);
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root)
        return sm_err_set(err, SM_EFORMAT, "tokenizer.json: invalid JSON at line %d column %d: %s",
                          jerr.line, jerr.column, jerr.text);
    sm_code rc = SM_OK;
    if (!json_is_object(root)) {
        rc = sm_err_set(err, SM_EFORMAT, "tokenizer.json: the top level is not an object");
        goto done;
    }
    const char *keys[] = {"truncation", "padding"};
    for (size_t i = 0; i < 2; i++) {
        const json_t *v = json_object_get(root, keys[i]);
        if (v && !json_is_null(v)) {
            rc = sm_err_set(err, SM_EUNSUPPORTED, "tokenizer.json: %s is not supported", keys[i]);
            goto done;
        }
    }
    if ((rc = parse_model(json_object_get(root, "model"), json_object_get(root, "added_tokens"),
                          spec, err)))
        goto done;
    if ((rc = parse_normalizer(json_object_get(root, "normalizer"), spec, err)))
        goto done;
    if ((rc = parse_pre_tokenizer(json_object_get(root, "pre_tokenizer"), spec, err)))
        goto done;
    if ((rc = parse_decoder(json_object_get(root, "decoder"), err)))
        goto done;
    rc = parse_post_processor(json_object_get(root, "post_processor"), err);
done:
    json_decref(root);
    if (rc)
        sm_tok_spec_clear(spec);
    return rc;
}
