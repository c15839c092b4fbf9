/*
 * common/hf_llama.c — Llama / Qwen2 / Qwen3 config.json <-> GPTConfig (see hf_llama.h).
 */
#include "hf_llama.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const TYPE_NAMES[] = {"llama", "qwen2", "qwen3"};
static const char *const ARCH_PREFIX[] = {"Llama", "Qwen2", "Qwen3"};

const char *hf_llama_type_name(HfLlamaType t) {
    return TYPE_NAMES[t];
}

int hf_llama_type_parse(const char *s, HfLlamaType *t) {
    for (int i = 0; i < 3; i++)
        if (s && strcmp(s, TYPE_NAMES[i]) == 0) {
            *t = (HfLlamaType)i;
            return 1;
        }
    return 0;
}

/* An integer field in [lo, hi]: 0 found, 1 absent/null and not required, -1 err. */
static int get_int(json_t *o, const char *path, const char *field, int required, long lo, long hi,
                   long *out, char *err) {
    json_t *v = json_object_get(o, field);
    if (!v || json_is_null(v)) {
        if (required) return errf(err, "%s: \"%s\" is missing", path, field);
        return 1;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return errf(err, "%s: \"%s\" must be an integer in [%ld, %ld]", path, field, lo, hi);
    *out = (long)json_integer_value(v);
    return 0;
}

/* A positive finite number (integers too): 0, or -1 with err; where names the object. */
static int get_num(json_t *o, const char *path, const char *where, const char *field, double *out,
                   char *err) {
    json_t *v = json_object_get(o, field);
    if (!v || json_is_null(v)) return errf(err, "%s: \"%s%s\" is missing", path, where, field);
    if (!json_is_number(v) || !(json_number_value(v) > 0) || !(json_number_value(v) <= FLT_MAX))
        return errf(err, "%s: \"%s%s\" must be a positive number (at most %g)", path, where, field,
                    (double)FLT_MAX);
    *out = json_number_value(v);
    return 0;
}

/* A boolean that must have value want when present (what rlhf-c computes). */
static int bool_must_be(json_t *o, const char *path, const char *field, int want, const char *why,
                        char *err) {
    json_t *v = json_object_get(o, field);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return errf(err, "%s: \"%s\" must be true or false", path, field);
    if (json_is_true(v) != want)
        return errf(err, "%s: \"%s\" is %s: %s", path, field, want ? "false" : "true", why);
    return 0;
}

/* architectures[0]: the head, and that it belongs to model type t. */
static int parse_arch(json_t *cfg, const char *path, HfLlamaType t, HfArch *arch, char *err) {
    *arch = HF_ARCH_UNKNOWN;
    json_t *a = json_object_get(cfg, "architectures");
    if (!a || json_is_null(a)) return 0;
    json_t *a0 = json_is_array(a) ? json_array_get(a, 0) : NULL;
    if (!json_is_string(a0) || json_array_size(a) != 1)
        return errf(err, "%s: \"architectures\" must be an array of one class name", path);
    const char *s = json_string_value(a0), *p = ARCH_PREFIX[t];
    size_t pl = strlen(p);
    const char *rest = strncmp(s, p, pl) == 0 ? s + pl : "";
    if (strcmp(rest, "ForCausalLM") == 0) *arch = HF_ARCH_LM;
    else if (strcmp(rest, "ForSequenceClassification") == 0) *arch = HF_ARCH_SCORE;
    else if (strcmp(rest, "Model") != 0)
        return errf(err,
                    "%s: architectures[0] \"%s\" is not supported for model_type %s "
                    "(%sForCausalLM, %sForSequenceClassification or %sModel)",
                    path, s, TYPE_NAMES[t], p, p, p);
    return 0;
}

/* A one-label classifier: num_labels, else the size of id2label, must be 1. */
static int check_labels(json_t *cfg, const char *path, char *err) {
    long labels = 1;
    json_t *id2label = json_object_get(cfg, "id2label");
    if (json_is_object(id2label)) labels = (long)json_object_size(id2label);
    json_t *nl = json_object_get(cfg, "num_labels");
    if (json_is_integer(nl)) labels = (long)json_integer_value(nl);
    if (labels != 1)
        return errf(err, "%s: %ld labels; a reward model has exactly one", path, labels);
    return 0;
}

/* rope_theta and the llama3 scaling, from rope_parameters (transformers 5) or rope_theta
 * + rope_scaling. */
static int parse_rope(json_t *cfg, const char *path, GPTConfig *c, char *err) {
    json_t *rp = json_object_get(cfg, "rope_parameters");
    const char *where = json_is_object(rp) ? "rope_parameters." : "rope_scaling.";
    json_t *sc = json_is_object(rp) ? rp : json_object_get(cfg, "rope_scaling");
    json_t *top_theta = json_object_get(cfg, "rope_theta");
    double theta;
    if (json_is_object(rp) && json_object_get(rp, "rope_theta") &&
        !(top_theta && !json_is_null(top_theta))) {
        if (get_num(rp, path, "rope_parameters.", "rope_theta", &theta, err) != 0) return -1;
    } else if (get_num(cfg, path, "", "rope_theta", &theta, err) != 0) {
        return -1;
    }
    c->rope_theta = (float)theta;
    if (!sc || json_is_null(sc)) return 0;
    if (!json_is_object(sc))
        return errf(err, "%s: \"rope_scaling\" must be an object or null", path);
    json_t *ty = json_object_get(sc, "rope_type");
    if (!ty) ty = json_object_get(sc, "type");
    const char *type = json_is_string(ty) ? json_string_value(ty) : NULL;
    if (!ty || (type && strcmp(type, "default") == 0)) return 0;
    if (!type || strcmp(type, "llama3") != 0)
        return errf(err,
                    "%s: \"%srope_type\" %s is not supported (only \"llama3\" scaling, or "
                    "none)",
                    path, where, type ? type : "(not a string)");
    double f, lo, hi, orig;
    if (get_num(sc, path, where, "factor", &f, err) ||
        get_num(sc, path, where, "low_freq_factor", &lo, err) ||
        get_num(sc, path, where, "high_freq_factor", &hi, err) ||
        get_num(sc, path, where, "original_max_position_embeddings", &orig, err))
        return -1;
    if (orig != floor(orig) || orig > (1 << 30))
        return errf(err, "%s: \"%soriginal_max_position_embeddings\" must be an integer", path,
                    where);
    c->rope_factor = (float)f;
    c->rope_low_freq_factor = (float)lo;
    c->rope_high_freq_factor = (float)hi;
    c->rope_orig_max_pos = (int)orig;
    return 0;
}

/* Sliding-window attention is not computed by rlhf-c: refuse it when it is on. */
static int check_no_sliding(json_t *cfg, const char *path, char *err) {
    if (bool_must_be(cfg, path, "use_sliding_window", 0,
                     "sliding-window attention is not supported (full causal attention only)", err))
        return -1;
    json_t *lt = json_object_get(cfg, "layer_types");
    size_t i;
    json_t *v;
    if (json_is_array(lt)) json_array_foreach(lt, i, v) {
            if (!json_is_string(v) || strcmp(json_string_value(v), "full_attention") != 0)
                return errf(err,
                            "%s: \"layer_types[%zu]\" is %s: only \"full_attention\" is "
                            "supported (no sliding window)",
                            path, i, json_is_string(v) ? json_string_value(v) : "not a string");
        }
    return 0;
}

/* The sizes: every required integer field and the optional ones. */
static int parse_sizes(json_t *cfg, const char *path, GPTConfig *c, HfLlamaInfo *info, char *err) {
    long v = 0, c_ = 0, nh = 0, l = 0, ff = 0, pos = 0, nkv = 0, hd = 0;
    if (get_int(cfg, path, "vocab_size", 1, 2, 1 << 24, &v, err) < 0 ||
        get_int(cfg, path, "hidden_size", 1, 1, 1 << 16, &c_, err) < 0 ||
        get_int(cfg, path, "num_hidden_layers", 1, 1, 256, &l, err) < 0 ||
        get_int(cfg, path, "num_attention_heads", 1, 1, 1 << 16, &nh, err) < 0 ||
        get_int(cfg, path, "intermediate_size", 1, 1, 1 << 18, &ff, err) < 0 ||
        get_int(cfg, path, "max_position_embeddings", 1, 1, 1L << 30, &pos, err) < 0)
        return -1;
    int r = get_int(cfg, path, "num_key_value_heads", 0, 1, nh, &nkv, err);
    if (r < 0) return -1;
    if (r == 1) nkv = nh;
    r = get_int(cfg, path, "head_dim", 0, 2, 1024, &hd, err);
    if (r < 0) return -1;
    if (r == 1 || hd * nh == c_) hd = 0; /* the default C / NH: stored as 0 (gpt.h) */
    *c = (GPTConfig){.vocab_size = (int)v,
                     .n_embd = (int)c_,
                     .n_layer = (int)l,
                     .n_head = (int)nh,
                     .d_ff = (int)ff,
                     .n_kv_head = (int)nkv,
                     .head_dim = (int)hd,
                     .family = GPT_FAMILY_LLAMA,
                     .max_seq_len = pos > (1 << 16) ? (1 << 16) : (int)pos};
    info->max_pos = pos;
    return 0;
}

int hf_llama_config_parse(json_t *cfg, const char *path, GPTConfig *c, HfLlamaInfo *info,
                          char *err) {
    json_t *mt = json_object_get(cfg, "model_type");
    if (!json_is_string(mt) || !hf_llama_type_parse(json_string_value(mt), &info->type))
        return errf(err, "%s: \"model_type\" must be llama, qwen2 or qwen3", path);
    HfLlamaType t = info->type;
    if (parse_arch(cfg, path, t, &info->arch, err) || parse_sizes(cfg, path, c, info, err) ||
        parse_rope(cfg, path, c, err) || check_no_sliding(cfg, path, err))
        return -1;
    double eps;
    if (get_num(cfg, path, "", "rms_norm_eps", &eps, err) != 0) return -1;
    c->norm_eps = (float)eps;
    json_t *act = json_object_get(cfg, "hidden_act");
    if (act && !json_is_null(act) &&
        (!json_is_string(act) || strcmp(json_string_value(act), "silu")))
        return errf(err, "%s: \"hidden_act\" %s is not supported (rlhf-c's MLP is SwiGLU: silu)",
                    path, json_is_string(act) ? json_string_value(act) : "(not a string)");
    if (bool_must_be(cfg, path, "mlp_bias", 0, "MLP biases are not supported", err) ||
        (t != HF_QWEN2 &&
         bool_must_be(cfg, path, "attention_bias", 0,
                      "it also biases o_proj, which rlhf-c's attention lacks", err)))
        return -1;
    json_t *tie = json_object_get(cfg, "tie_word_embeddings");
    if (tie && !json_is_null(tie) && !json_is_boolean(tie))
        return errf(err, "%s: \"tie_word_embeddings\" must be true or false", path);
    c->tie_embeddings = json_is_true(tie);
    c->qkv_bias = t == HF_QWEN2;
    c->qk_norm = t == HF_QWEN3;
    c->head = info->arch == HF_ARCH_SCORE ? GPT_HEAD_SCORE : GPT_HEAD_LM;
    if (info->arch == HF_ARCH_SCORE && check_labels(cfg, path, err) != 0) return -1;
    char e[ERRBUF_LEN];
    if (gpt_config_validate(c, e) != 0) return errf(err, "%s: %s", path, e);
    return 0;
}

int hf_llama_type_of(const GPTConfig *c, HfLlamaType *t, char *err) {
    if (c->family != GPT_FAMILY_LLAMA) return errf(err, "not a Llama-family model");
    if (c->qkv_bias && c->qk_norm)
        return errf(err, "q/k/v biases together with q/k norms: no Hugging Face class of the "
                         "Llama family has both");
    *t = c->qkv_bias ? HF_QWEN2 : c->qk_norm ? HF_QWEN3 : HF_LLAMA;
    return 0;
}

/* The shortest decimal that reads back as f, as a double (1e-5f -> 1e-05, not
 * 9.99999975e-06), so config.json shows the number the user wrote. */
static json_t *json_float(float f) {
    char buf[40];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if ((float)strtod(buf, NULL) == f) break; /* as a JSON reader narrows it */
    }
    return json_real(strtod(buf, NULL));
}

static void set(json_t *o, const char *k, json_t *v) {
    json_object_set_new(o, k, v);
}

json_t *hf_llama_config_build(const GPTConfig *c, HfLlamaType t, long max_pos,
                              const char *torch_dtype) {
    int score = c->head == GPT_HEAD_SCORE;
    char arch[64];
    snprintf(arch, sizeof arch, "%s%s", ARCH_PREFIX[t],
             score ? "ForSequenceClassification" : "ForCausalLM");
    json_t *o = json_object();
    set(o, "architectures", json_pack("[s]", arch));
    set(o, "model_type", json_string(TYPE_NAMES[t]));
    set(o, "vocab_size", json_integer(c->vocab_size));
    set(o, "hidden_size", json_integer(c->n_embd));
    set(o, "intermediate_size", json_integer(c->d_ff));
    set(o, "num_hidden_layers", json_integer(c->n_layer));
    set(o, "num_attention_heads", json_integer(c->n_head));
    set(o, "num_key_value_heads", json_integer(c->n_kv_head));
    set(o, "head_dim", json_integer(c->head_dim ? c->head_dim : c->n_embd / c->n_head));
    set(o, "max_position_embeddings",
        json_integer(max_pos > c->max_seq_len ? max_pos : c->max_seq_len));
    set(o, "hidden_act", json_string("silu"));
    set(o, "rms_norm_eps", json_float(c->norm_eps));
    set(o, "rope_theta", json_float(c->rope_theta));
    if (c->rope_factor > 0.0f)
        set(o, "rope_scaling",
            json_pack("{s:s, s:o, s:o, s:o, s:i}", "rope_type", "llama3", "factor",
                      json_float(c->rope_factor), "low_freq_factor",
                      json_float(c->rope_low_freq_factor), "high_freq_factor",
                      json_float(c->rope_high_freq_factor), "original_max_position_embeddings",
                      c->rope_orig_max_pos));
    else set(o, "rope_scaling", json_null());
    set(o, "tie_word_embeddings", json_boolean(c->tie_embeddings));
    if (t == HF_LLAMA) set(o, "mlp_bias", json_false());
    if (t != HF_QWEN2) set(o, "attention_bias", json_false());
    if (t != HF_LLAMA) {
        set(o, "use_sliding_window", json_false());
        set(o, "sliding_window", json_null());
        set(o, "max_window_layers", json_integer(c->n_layer));
    }
    set(o, "attention_dropout", json_real(0.0));
    set(o, "initializer_range", json_real(0.02));
    set(o, "use_cache", json_true());
    set(o, "torch_dtype", json_string(torch_dtype));
    if (score) {
        set(o, "id2label", json_pack("{s:s}", "0", "LABEL_0"));
        set(o, "label2id", json_pack("{s:i}", "LABEL_0", 0));
    }
    return o;
}
