/*
 * tools/rlhf-hf.c — convert models between Hugging Face's layout and rlhf-c checkpoints:
 * GPT-2 and the Llama family (Llama, Qwen2, Qwen3).
 *
 *   rlhf-hf import HF_DIR OUT.h5 [--no-tokenizer]   an HF folder -> a checkpoint (stage
 *                                         "init"; an LM into /policy, a reward model into
 *                                         /reward)
 *   rlhf-hf export CKPT HF_DIR [--group G] [--dtype f32|bf16]
 *                                         a checkpoint's model -> config.json,
 *                                         model.safetensors and the tokenizer files
 *   rlhf-hf info PATH [--group G]         the model config and a CRC-32 of every tensor
 *                                         (as float32) of a checkpoint or an HF folder:
 *                                         two sources print the same lines iff they hold
 *                                         the same model bit for bit
 *
 * Weights: model.safetensors, or model.safetensors.index.json and its shards
 * (hf_weights.h); F32, F16 or BF16 data, converted to float32 exactly.
 *
 * GPT-2: a GPT2LMHeadModel (lm_head.weight absent or equal to wte.weight: the head is
 * tied) or a GPT2ForSequenceClassification with one label (score.weight (1,C)); keys with
 * or without the "transformer." prefix; the attention mask buffers (h.<l>.attn.bias /
 * .masked_bias) are skipped. HF GPT-2 keeps Conv1D weights as (in, out), which is exactly
 * rlhf-c's layout (common/gpt.h), so conversion is a rename and a copy. config.json must
 * describe the model rlhf-c computes: layer_norm_epsilon 1e-5, activation gelu_new (or the
 * same formula as gelu_pytorch_tanh), n_inner 4*n_embd, scaled attention, no
 * cross-attention. Tokenizer: vocab.json + merges.txt.
 *
 * Llama family: {Llama,Qwen2,Qwen3}ForCausalLM and ...ForSequenceClassification with one
 * label (config.json: common/hf_llama.h). rlhf-c's table already has HF's names and
 * (out, in) shapes, so keys map one to one; keys without the "model." prefix (as a bare
 * LlamaModel writes them) are accepted, rotary inv_freq buffers skipped. A tied model
 * (tie_word_embeddings true) may still ship lm_head.weight if it equals the embedding;
 * a different one is refused (HF would silently replace it by the embedding). Tokenizer:
 * tokenizer.json, checked at import by the C tokenizer (hftok.h): one rlhf-c cannot run
 * is refused with its reason (--no-tokenizer imports the weights without it); the chat
 * template from chat_template.jinja or tokenizer_config.json's chat_template; the
 * bos/eos/pad ids of config.json and tokens of tokenizer_config.json are kept as root
 * attributes hf_token_ids / hf_special_tokens (compact JSON) for export.
 *
 * Any other key, a missing tensor, a wrong shape or dtype is an error naming the file and
 * the tensor or field. Export writes what transformers' save_pretrained writes for these
 * classes: GPT-2 with "transformer."-prefixed trunk keys and no lm_head.weight; Llama with
 * the table's names (no lm_head.weight when tied); metadata format "pt"; dropout 0. The
 * model type of a Llama-family export follows from its features (hf_llama.h). A value-head
 * model (TRL's v_head) has no transformers class and is refused. Not supported:
 * pytorch_model.bin, other architectures, writing shards.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bpe.h"
#include "lora.h"
#include "ckpt.h"
#include "gpt.h"
#include "hf_llama.h"
#include "hf_weights.h"
#include "hftok.h"
#include "safetensors.h"
#include "util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: rlhf-hf import HF_DIR OUT.h5 [--no-tokenizer]\n"
            "       rlhf-hf export CKPT HF_DIR [--group policy|reward|reference] "
            "[--dtype f32|bf16] [--peft]\n"
            "       rlhf-hf info PATH [--group NAME]\n"
            "HF_DIR holds config.json and model.safetensors (or model.safetensors.index.json\n"
            "and its shards) of a GPT2LMHeadModel, LlamaForCausalLM, Qwen2ForCausalLM or\n"
            "Qwen3ForCausalLM, or the one-label ...ForSequenceClassification of these, and\n"
            "optionally its tokenizer (vocab.json + merges.txt, or tokenizer.json +\n"
            "tokenizer_config.json). --no-tokenizer: import the weights only.\n"
            "A LoRA checkpoint exports its merged weights; --peft writes its frozen base to\n"
            "HF_DIR/base and the adapters as a PEFT folder (adapter_config.json,\n"
            "adapter_model.safetensors) to HF_DIR.\n"
            "CKPT is a checkpoint file or a run directory (its newest loadable checkpoint).\n"
            "Exit status: 0 done; 1 an error (unreadable or unsupported model, write "
            "failed);\n2 a usage error.\n");
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* A JSON object from a file, or NULL with err naming the file (and line:column). */
static json_t *load_json_object(const char *path, char *err) {
    size_t len;
    char *text = file_read_all(path, &len, err);
    if (!text) return NULL;
    json_error_t je;
    json_t *j = json_loadb(text, len, 0, &je);
    free(text);
    if (!j) {
        errf(err, "%s:%d:%d: invalid JSON: %s", path, je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        errf(err, "%s: not a JSON object", path);
        return NULL;
    }
    return j;
}

// ----------------------------------------------------------------------------
// GPT-2's config.json

/* An integer field; returns 0 (found), 1 (absent and not required) or -1 with err. */
static int cfg_int(json_t *cfg, const char *path, const char *key, int required, int lo,
                   int hi, int *out, char *err) {
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) {
        if (required) return errf(err, "%s: \"%s\" is missing", path, key);
        return 1;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return errf(err, "%s: \"%s\" must be an integer in [%d, %d]", path, key, lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

static int cfg_bool_is(json_t *cfg, const char *path, const char *key, int want, char *err) {
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v) || json_is_true(v) != want)
        return errf(err, "%s: \"%s\" must be %s: rlhf-c's GPT-2 has no other variant", path,
                    key, want ? "true" : "false");
    return 0;
}

/* Parse and check a GPT-2 config.json into c (head from the architectures field, if any). */
static int gpt2_config_parse(json_t *cfg, const char *path, GPTConfig *c, HfArch *arch,
                             char *err) {
    int rc = -1;
    memset(c, 0, sizeof *c);
    if (cfg_int(cfg, path, "vocab_size", 1, 2, 1 << 24, &c->vocab_size, err) < 0 ||
        cfg_int(cfg, path, "n_embd", 1, 1, 1 << 16, &c->n_embd, err) < 0 ||
        cfg_int(cfg, path, "n_layer", 1, 1, 256, &c->n_layer, err) < 0 ||
        cfg_int(cfg, path, "n_head", 1, 1, 1 << 16, &c->n_head, err) < 0)
        goto done;
    int r = cfg_int(cfg, path, "n_positions", 0, 1, 1 << 16, &c->max_seq_len, err);
    if (r < 0) goto done;
    if (r == 1 && cfg_int(cfg, path, "n_ctx", 1, 1, 1 << 16, &c->max_seq_len, err) < 0) {
        errf(err, "%s: neither \"n_positions\" nor \"n_ctx\" is given", path);
        goto done;
    }
    int n_inner = 0;
    r = cfg_int(cfg, path, "n_inner", 0, 1, 1 << 20, &n_inner, err);
    if (r < 0) goto done;
    if (r == 0 && n_inner != 4 * c->n_embd) {
        errf(err, "%s: n_inner = %d, but rlhf-c's MLP is 4 * n_embd = %d wide", path, n_inner,
             4 * c->n_embd);
        goto done;
    }
    json_t *eps = json_object_get(cfg, "layer_norm_epsilon");
    if (eps && (!json_is_number(eps) || fabs(json_number_value(eps) - 1e-5) > 1e-12)) {
        errf(err, "%s: layer_norm_epsilon must be 1e-05 (rlhf-c's LayerNorm uses %g)", path,
             (double)GPT_LN_EPS);
        goto done;
    }
    json_t *act = json_object_get(cfg, "activation_function");
    if (act && (!json_is_string(act) || (strcmp(json_string_value(act), "gelu_new") != 0 &&
                                         strcmp(json_string_value(act), "gelu_pytorch_tanh")))) {
        errf(err, "%s: activation_function %s is not supported (rlhf-c uses GELU with the tanh "
                  "approximation: gelu_new)", path,
             json_is_string(act) ? json_string_value(act) : "(not a string)");
        goto done;
    }
    if (cfg_bool_is(cfg, path, "scale_attn_weights", 1, err) ||
        cfg_bool_is(cfg, path, "scale_attn_by_inverse_layer_idx", 0, err) ||
        cfg_bool_is(cfg, path, "add_cross_attention", 0, err) ||
        cfg_bool_is(cfg, path, "tie_word_embeddings", 1, err))
        goto done;
    *arch = HF_ARCH_UNKNOWN;
    json_t *archs = json_object_get(cfg, "architectures");
    if (archs && json_is_array(archs) && json_array_size(archs) > 0) {
        json_t *a = json_array_get(archs, 0);
        const char *s = json_is_string(a) ? json_string_value(a) : "";
        if (strcmp(s, "GPT2LMHeadModel") == 0 || strcmp(s, "GPT2Model") == 0) {
            *arch = HF_ARCH_LM;
        } else if (strcmp(s, "GPT2ForSequenceClassification") == 0) {
            *arch = HF_ARCH_SCORE;
        } else {
            errf(err, "%s: architecture \"%s\" is not supported (GPT2LMHeadModel or "
                      "GPT2ForSequenceClassification)", path, s);
            goto done;
        }
    }
    if (*arch == HF_ARCH_SCORE) {
        int labels = 1;
        json_t *id2label = json_object_get(cfg, "id2label");
        if (id2label && json_is_object(id2label)) labels = (int)json_object_size(id2label);
        json_t *nl = json_object_get(cfg, "num_labels");
        if (nl && json_is_integer(nl)) labels = (int)json_integer_value(nl);
        if (labels != 1) {
            errf(err, "%s: %d labels; a reward model has exactly one", path, labels);
            goto done;
        }
    }
    c->head = *arch == HF_ARCH_SCORE ? GPT_HEAD_SCORE : GPT_HEAD_LM;
    char cerr[ERRBUF_LEN];
    if (gpt_config_validate(c, cerr) != 0) {
        errf(err, "%s: %s", path, cerr);
        goto done;
    }
    rc = 0;
done:
    return rc;
}

// ----------------------------------------------------------------------------
// an HF folder

/* Everything import takes from an HF folder. */
typedef struct {
    GPT m;
    const char *arch;      /* the transformers class of the model */
    char *vocab, *merges;  /* GPT-2 tokenizer files, or NULL */
    char *tok_json;        /* tokenizer.json, or NULL */
    char *chat_template;   /* or NULL */
    char *token_ids;       /* config.json's bos/eos/pad ids as compact JSON, or NULL */
    char *special_tokens;  /* tokenizer_config.json's bos/eos/pad tokens, or NULL */
    long max_pos;          /* Llama: max_position_embeddings as written */
} HfModel;

static void hf_model_free(HfModel *h) {
    gpt_free(&h->m);
    free(h->vocab);
    free(h->merges);
    free(h->tok_json);
    free(h->chat_template);
    free(h->token_ids);
    free(h->special_tokens);
    memset(h, 0, sizeof *h);
}

/* The table name of a file key (buf holds it when it is rebuilt), or NULL for a buffer
 * that is not a weight (GPT-2's attention masks, rotary inv_freq). */
static const char *table_name(const GPTConfig *c, const char *key, char *buf, size_t n) {
    if (c->family == GPT_FAMILY_GPT2) {
        const char *name = strncmp(key, "transformer.", 12) == 0 ? key + 12 : key;
        if (strncmp(name, "h.", 2) != 0) return name;
        const char *p = name + 2;
        if (*p < '0' || *p > '9') return name;
        while (*p >= '0' && *p <= '9') p++;
        return strcmp(p, ".attn.bias") == 0 || strcmp(p, ".attn.masked_bias") == 0 ? NULL : name;
    }
    size_t kl = strlen(key);
    if (kl > 21 && strcmp(key + kl - 21, ".rotary_emb.inv_freq") == 0) return NULL;
    if (strncmp(key, "model.", 6) == 0 || strcmp(key, "lm_head.weight") == 0 ||
        strcmp(key, "score.weight") == 0)
        return key;
    snprintf(buf, n, "model.%s", key);
    return buf;
}

static void shape_str(const StTensor *t, char *buf, size_t n) {
    size_t o = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < t->ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    if (o < n) snprintf(buf + o, n - o, ")");
}

/* The head tensor a tied LM may ship besides the table (HF writes it for tied GPT-2). */
static int is_tied_head(const GPTConfig *c, const char *name) {
    return c->head == GPT_HEAD_LM && (c->family == GPT_FAMILY_GPT2 || c->tie_embeddings) &&
           strcmp(name, "lm_head.weight") == 0;
}

/* Map every file tensor to its table row (found[k] = file tensor index, -1 = none) and
 * the tied head's to *lm_head. */
static int match_tensors(const HfWeights *w, const GPTConfig *c, const GPTTensor *table, int n,
                         int *found, int *lm_head, char *err) {
    *lm_head = -1;
    for (int k = 0; k < n; k++) found[k] = -1;
    for (int i = 0; i < w->num_tensors; i++) {
        const StTensor *t = w->tensors[i];
        char buf[300];
        const char *name = table_name(c, t->name, buf, sizeof buf);
        if (!name) continue;
        if (is_tied_head(c, name)) {
            *lm_head = i;
            continue;
        }
        int k = 0;
        while (k < n && strcmp(table[k].name, name) != 0) k++;
        if (k == n)
            return errf(err, "%s: unexpected tensor \"%s\" (not part of a %s %s model with "
                             "%d layers%s)", hf_weights_path(w, i), t->name,
                        gpt_family_name(c->family), c->head == GPT_HEAD_SCORE ? "reward" : "LM",
                        c->n_layer, strcmp(name, "lm_head.weight") == 0 ? ", its head tied" : "");
        if (found[k] >= 0)
            return errf(err, "%s: \"%s\" and \"%s\" are the same tensor", hf_weights_path(w, i),
                        w->tensors[found[k]]->name, t->name);
        found[k] = i;
    }
    return 0;
}

/* Every row present with its shape and a float dtype. */
static int check_tensors(const HfWeights *w, const char *dir, const GPTTensor *table, int n,
                         const int *found, char *err) {
    for (int k = 0; k < n; k++) {
        if (found[k] < 0)
            return errf(err, "%s: missing tensor \"%s\" in the safetensors files", dir,
                        table[k].name);
        const StTensor *t = w->tensors[found[k]];
        const char *path = hf_weights_path(w, found[k]);
        if (strcmp(table[k].name, "score.weight") == 0 && t->ndim == 2 && t->shape[0] != 1 &&
            t->shape[1] == table[k].shape[1])
            return errf(err, "%s: score.weight has %lld rows: only one label is supported", path,
                        (long long)t->shape[0]);
        if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
            return errf(err, "%s: tensor \"%s\" is %s; F32, F16 or BF16 expected", path, t->name,
                        safetensors_dtype_name(t->dtype));
        int same = t->ndim == table[k].ndim && t->shape[0] == table[k].shape[0] &&
                   (t->ndim < 2 || t->shape[1] == table[k].shape[1]);
        if (!same) {
            char a[64], b[64];
            shape_str(t, a, sizeof a);
            if (table[k].ndim == 2)
                snprintf(b, sizeof b, "(%d,%d)", table[k].shape[0], table[k].shape[1]);
            else
                snprintf(b, sizeof b, "(%d)", table[k].shape[0]);
            return errf(err, "%s: tensor \"%s\" has shape %s, expected %s for this config.json",
                        path, t->name, a, b);
        }
    }
    return 0;
}

/* A tied LM's shipped head must equal the embedding (table row 0). */
static int check_tied_head(const HfWeights *w, int lm_head, const GPT *m, char *err) {
    const GPTTensor *emb = &m->tensors[0];
    const StTensor *t = w->tensors[lm_head];
    if (t->numel != emb->numel || (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16))
        return errf(err, "%s: %s does not have %s's shape and a float dtype",
                    hf_weights_path(w, lm_head), t->name, emb->name);
    float *h = xalloc_floats(emb->numel);
    int same = hf_weights_read_f32(w, lm_head, h, err) == 0 &&
               memcmp(h, m->params + emb->offset, emb->numel * sizeof(float)) == 0;
    free(h);
    if (!same)
        return errf(err, "%s: %s differs from %s although config.json ties them; set "
                         "tie_word_embeddings false to import it as an untied head",
                    hf_weights_path(w, lm_head), t->name, emb->name);
    return 0;
}

/* Read the weights of dir into h->m (config c, head already settled). */
static int load_weights(const HfWeights *w, const char *dir, const GPTConfig *c, HfModel *h,
                        char *err) {
    int cap = gpt_tensors_capacity(c);
    GPTTensor *table = xcalloc((size_t)cap, sizeof *table);
    int n = gpt_tensors_build(c, table, cap), lm_head;
    int *found = xcalloc((size_t)n, sizeof *found);
    int rc = -1;
    if (match_tensors(w, c, table, n, found, &lm_head, err) != 0 ||
        check_tensors(w, dir, table, n, found, err) != 0)
        goto done;
    gpt_init(&h->m, c);
    for (int k = 0; k < n; k++)
        if (hf_weights_read_f32(w, found[k], h->m.params + h->m.tensors[k].offset, err) != 0)
            goto done;
    if (lm_head >= 0 && check_tied_head(w, lm_head, &h->m, err) != 0) goto done;
    rc = 0;
done:
    free(found);
    free(table);
    return rc;
}

/* A file's text if it exists (0), NULL if not; -1 if unreadable. */
static int read_optional(const char *dir, const char *name, char **out, char *err) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    *out = NULL;
    if (!is_file(p)) return 0;
    return (*out = file_read_all(p, NULL, err)) ? 0 : -1;
}

/* Keys of o that are present, as compact JSON (NULL when none). */
static char *pick_keys(json_t *o, const char *const *keys, int n) {
    json_t *out = json_object();
    for (int i = 0; i < n; i++) {
        json_t *v = json_object_get(o, keys[i]);
        if (v && !json_is_null(v)) json_object_set(out, keys[i], v);
    }
    char *s = json_object_size(out) ? json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(out);
    return s;
}

/* tokenizer.json: it must load into rlhf-c's tokenizer, with ids inside the model's vocab. */
static int check_tokenizer(const char *dir, const char *json, int vocab_size, char *err) {
    char name[4200];
    snprintf(name, sizeof name, "%s/tokenizer.json", dir);
    BPE t;
    if (hftok_load_string(&t, json, strlen(json), name, err) != 0) {
        size_t l = strlen(err);
        snprintf(err + l, ERRBUF_LEN - l, " (rlhf-c cannot run this tokenizer; --no-tokenizer "
                                          "imports the weights without it)");
        return -1;
    }
    int n = t.vocab_size;
    bpe_free(&t);
    if (n > vocab_size)
        return errf(err, "%s: %d token ids, but the model's vocab_size is %d", name, n,
                    vocab_size);
    return 0;
}

/* The chat template: chat_template.jinja, else tokenizer_config.json's chat_template (a
 * string, or a list of {name, template} of which "default" is taken). */
static int read_chat_template(const char *dir, json_t *tc, char **out, char *err) {
    if (read_optional(dir, "chat_template.jinja", out, err) != 0 || *out) return *out ? 0 : -1;
    json_t *ct = tc ? json_object_get(tc, "chat_template") : NULL;
    if (json_is_string(ct)) *out = xstrdup(json_string_value(ct));
    size_t i;
    json_t *e;
    if (json_is_array(ct))
        json_array_foreach(ct, i, e) {
            json_t *nm = json_object_get(e, "name"), *tp = json_object_get(e, "template");
            if (json_is_string(nm) && strcmp(json_string_value(nm), "default") == 0 &&
                json_is_string(tp))
                *out = xstrdup(json_string_value(tp));
        }
    return 0;
}

/* The Llama family's tokenizer files. */
static int load_hf_tokenizer(const char *dir, HfModel *h, char *err) {
    if (read_optional(dir, "tokenizer.json", &h->tok_json, err) != 0) return -1;
    if (h->tok_json && check_tokenizer(dir, h->tok_json, h->m.config.vocab_size, err) != 0)
        return -1;
    char p[4200];
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    json_t *tc = NULL;
    if (is_file(p) && !(tc = load_json_object(p, err))) return -1;
    static const char *const toks[] = {"bos_token", "eos_token", "pad_token"};
    if (tc) h->special_tokens = pick_keys(tc, toks, 3);
    int rc = read_chat_template(dir, tc, &h->chat_template, err);
    json_decref(tc);
    return rc;
}

/* Config of either family: c, the architecture, and for Llama the max position. */
static int parse_config(json_t *cfg, const char *path, GPTConfig *c, HfArch *arch, HfModel *h,
                        char *err) {
    json_t *mt = json_object_get(cfg, "model_type");
    if (!mt || (json_is_string(mt) && strcmp(json_string_value(mt), "gpt2") == 0))
        return gpt2_config_parse(cfg, path, c, arch, err);
    HfLlamaType t;
    if (!json_is_string(mt) || !hf_llama_type_parse(json_string_value(mt), &t))
        return errf(err, "%s: model_type %s is not supported (gpt2, llama, qwen2 or qwen3)",
                    path, json_is_string(mt) ? json_string_value(mt) : "(not a string)");
    HfLlamaInfo info;
    if (hf_llama_config_parse(cfg, path, c, &info, err) != 0) return -1;
    *arch = info.arch;
    h->max_pos = info.max_pos;
    static const char *const ids[] = {"bos_token_id", "eos_token_id", "pad_token_id"};
    h->token_ids = pick_keys(cfg, ids, 3);
    return 0;
}

static const char *arch_name(const GPTConfig *c) {
    static const char *const lm[] = {"LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"};
    static const char *const sc[] = {"LlamaForSequenceClassification",
                                     "Qwen2ForSequenceClassification",
                                     "Qwen3ForSequenceClassification"};
    int score = c->head == GPT_HEAD_SCORE;
    if (c->family == GPT_FAMILY_GPT2)
        return score ? "GPT2ForSequenceClassification" : "GPT2LMHeadModel";
    char e[ERRBUF_LEN];
    HfLlamaType t;
    if (hf_llama_type_of(c, &t, e) != 0) return "(none)";
    return score ? sc[t] : lm[t];
}

/* Load an HF folder: config, weights and (unless no_tok) the tokenizer texts. */
static int hf_load(const char *dir, int no_tok, HfModel *h, char *err) {
    memset(h, 0, sizeof *h);
    if (!is_dir(dir)) return errf(err, "%s: not a directory", dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *cfg = load_json_object(path, err);
    if (!cfg) return -1;
    GPTConfig c;
    HfArch arch = HF_ARCH_UNKNOWN;
    HfWeights w = {0};
    int rc = -1;
    if (parse_config(cfg, path, &c, &arch, h, err) != 0 || hf_weights_open(&w, dir, err) != 0)
        goto done;
    /* the head: the architecture says, or score.weight's presence does */
    int has_score = hf_weights_find(&w, "score.weight") >= 0 ||
                    hf_weights_find(&w, "transformer.score.weight") >= 0;
    if (arch == HF_ARCH_UNKNOWN) c.head = has_score ? GPT_HEAD_SCORE : GPT_HEAD_LM;
    if (arch == HF_ARCH_LM && has_score) {
        errf(err, "%s: the weights have score.weight but config.json names a causal LM", dir);
        goto done;
    }
    if (load_weights(&w, dir, &c, h, err) != 0) goto done;
    h->arch = arch_name(&c);
    if (!no_tok && c.family == GPT_FAMILY_GPT2 &&
        (read_optional(dir, "vocab.json", &h->vocab, err) != 0 ||
         read_optional(dir, "merges.txt", &h->merges, err) != 0))
        goto done;
    if (!no_tok && c.family == GPT_FAMILY_LLAMA && load_hf_tokenizer(dir, h, err) != 0) goto done;
    rc = 0;
done:
    if (rc != 0) hf_model_free(h);
    hf_weights_free(&w);
    json_decref(cfg);
    return rc;
}

// ----------------------------------------------------------------------------
// import

static int write_hf_attrs(CkptWriter *w, const HfModel *h, char *err) {
    if (h->token_ids && ckpt_write_attr_str(w, "hf_token_ids", h->token_ids, err) != 0)
        return -1;
    if (h->special_tokens &&
        ckpt_write_attr_str(w, "hf_special_tokens", h->special_tokens, err) != 0)
        return -1;
    if (h->max_pos > h->m.config.max_seq_len &&
        ckpt_write_attr_i64(w, "hf_max_position_embeddings", h->max_pos, err) != 0)
        return -1;
    return 0;
}

static int cmd_import(const char *dir, const char *out, int no_tok, char *err) {
    HfModel h;
    if (hf_load(dir, no_tok, &h, err) != 0) return -1;
    const GPTConfig *c = &h.m.config;
    if (h.max_pos > c->max_seq_len)
        fprintf(stderr, "rlhf-hf: warning: max_position_embeddings %ld is capped to %d (rlhf-c's "
                        "longest context); export writes %ld back\n", h.max_pos, c->max_seq_len,
                h.max_pos);
    const char *group = c->head == GPT_HEAD_SCORE ? "reward" : "policy";
    size_t cl = strlen(dir) + 200;
    char *config = xmalloc(cl);
    snprintf(config, cl, "# imported by rlhf-hf\n[import]\nsource = %s\narchitecture = %s\n",
             dir, h.arch);
    CkptMeta meta = {.stage = "init", .model = *c, .config = config, .tok_vocab = h.vocab,
                     .tok_merges = h.merges, .tok_json = h.tok_json,
                     .chat_template = h.chat_template};
    int rc = -1;
    CkptWriter *w = ckpt_writer_open(out, err);
    if (w) {
        if (ckpt_write_meta(w, &meta, err) == 0 && write_hf_attrs(w, &h, err) == 0 &&
            ckpt_write_model(w, group, &h.m, err) == 0)
            rc = ckpt_writer_commit(w, err);
        else
            ckpt_writer_free(w);
    }
    if (rc == 0)
        printf("imported %s (%s) -> %s (/%s: V=%d T=%d L=%d NH=%d C=%d, %zu params%s%s)\n", dir,
               h.arch, out, group, c->vocab_size, c->max_seq_len, c->n_layer, c->n_head,
               c->n_embd, h.m.num_params,
               (h.vocab && h.merges) || h.tok_json ? ", tokenizer" : "",
               h.chat_template ? ", chat template" : "");
    free(config);
    hf_model_free(&h);
    return rc;
}

// ----------------------------------------------------------------------------
// checkpoints

/* Open a checkpoint file or a run directory's newest loadable checkpoint. */
static CkptReader *open_ckpt(const char *p, char *err) {
    char path[CKPT_PATH_LEN];
    int r = ckpt_resolve(p, "auto", path, sizeof path, err);
    if (r == 1) {
        errf(err, "%s: the run directory holds no checkpoint", p);
        return NULL;
    }
    if (r != 0) return NULL;
    if (err[0]) fprintf(stderr, "rlhf-hf: warning: %s\n", err);
    return ckpt_reader_open(path, err);
}

static const char *pick_group(const CkptReader *r, const char *want, char *err) {
    static const char *order[] = {"policy", "reward", "reference", "value"};
    char p[200];
    if (want) {
        snprintf(p, sizeof p, "/%s", want);
        if (!ckpt_has(r, p)) {
            errf(err, "the checkpoint has no group /%s", want);
            return NULL;
        }
        return want;
    }
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        snprintf(p, sizeof p, "/%s", order[i]);
        if (ckpt_has(r, p)) return order[i];
    }
    errf(err, "the checkpoint has no model group (policy, reward, reference or value)");
    return NULL;
}

// ----------------------------------------------------------------------------
// export

/* vocab.json's id of "<|endoftext|>", or -1. */
static int eot_id(const char *vocab) {
    if (!vocab) return -1;
    json_t *v = json_loads(vocab, 0, NULL);
    json_t *e = v ? json_object_get(v, "<|endoftext|>") : NULL;
    int id = e && json_is_integer(e) ? (int)json_integer_value(e) : -1;
    json_decref(v);
    return id;
}

static int write_text(const char *dir, const char *name, const char *text, char *err) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return file_write_atomic(p, text, strlen(text), err);
}

/* o as indented JSON + newline into dir/name. */
static int write_json(const char *dir, const char *name, json_t *o, char *err) {
    char *js = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    if (!js) return errf(err, "cannot serialise %s", name);
    size_t jl = strlen(js);
    js = xrealloc(js, jl + 2);
    memcpy(js + jl, "\n", 2);
    int rc = write_text(dir, name, js, err);
    free(js);
    return rc;
}

/* A root attribute holding a JSON object, merged into o; absent or bad: nothing. */
static void merge_attr_json(const CkptReader *r, const char *attr, json_t *o) {
    char e[ERRBUF_LEN], *s = NULL;
    if (ckpt_read_attr_str(r, attr, &s, e) != 0) return;
    json_t *j = json_loads(s, 0, NULL);
    if (json_is_object(j)) json_object_update(o, j);
    json_decref(j);
    free(s);
}

static json_t *gpt2_config_build(const GPTConfig *c, const CkptMeta *meta, const char *dtype) {
    int eot = eot_id(meta->tok_vocab), score = c->head == GPT_HEAD_SCORE;
    json_t *cfg = json_object();
    json_object_set_new(cfg, "architectures", json_pack("[s]", arch_name(c)));
    json_object_set_new(cfg, "model_type", json_string("gpt2"));
    json_object_set_new(cfg, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(cfg, "n_positions", json_integer(c->max_seq_len));
    json_object_set_new(cfg, "n_ctx", json_integer(c->max_seq_len));
    json_object_set_new(cfg, "n_embd", json_integer(c->n_embd));
    json_object_set_new(cfg, "n_layer", json_integer(c->n_layer));
    json_object_set_new(cfg, "n_head", json_integer(c->n_head));
    json_object_set_new(cfg, "n_inner", json_null());
    json_object_set_new(cfg, "activation_function", json_string("gelu_new"));
    json_object_set_new(cfg, "layer_norm_epsilon", json_real(1e-5));
    json_object_set_new(cfg, "resid_pdrop", json_real(0.0));
    json_object_set_new(cfg, "embd_pdrop", json_real(0.0));
    json_object_set_new(cfg, "attn_pdrop", json_real(0.0));
    json_object_set_new(cfg, "summary_first_dropout", json_real(0.0));
    json_object_set_new(cfg, "initializer_range", json_real(0.02));
    json_object_set_new(cfg, "scale_attn_weights", json_true());
    json_object_set_new(cfg, "scale_attn_by_inverse_layer_idx", json_false());
    json_object_set_new(cfg, "reorder_and_upcast_attn", json_false());
    json_object_set_new(cfg, "tie_word_embeddings", json_true());
    json_object_set_new(cfg, "use_cache", json_true());
    json_object_set_new(cfg, "torch_dtype", json_string(dtype));
    if (eot >= 0 && eot < c->vocab_size) {
        json_object_set_new(cfg, "bos_token_id", json_integer(eot));
        json_object_set_new(cfg, "eos_token_id", json_integer(eot));
        if (score) json_object_set_new(cfg, "pad_token_id", json_integer(eot));
    }
    if (score) {
        json_object_set_new(cfg, "id2label", json_pack("{s:s}", "0", "LABEL_0"));
        json_object_set_new(cfg, "label2id", json_pack("{s:i}", "LABEL_0", 0));
    }
    return cfg;
}

/* config.json of the model in group of r. */
static json_t *export_config(const CkptReader *r, const GPTConfig *c, const char *dtype,
                             char *err) {
    if (c->family == GPT_FAMILY_GPT2) return gpt2_config_build(c, ckpt_reader_meta(r), dtype);
    HfLlamaType t;
    if (hf_llama_type_of(c, &t, err) != 0) return NULL;
    int64_t max_pos = 0;
    char e[ERRBUF_LEN];
    if (ckpt_read_attr_i64(r, "hf_max_position_embeddings", &max_pos, e) != 0) max_pos = 0;
    json_t *cfg = hf_llama_config_build(c, t, (long)max_pos, dtype);
    merge_attr_json(r, "hf_token_ids", cfg);
    return cfg;
}

/* model.safetensors: the table, with GPT-2's "transformer." prefix on the trunk. */
static int export_weights(const GPT *m, const char *dir, StDtype dtype, char *err) {
    StWrite *items = xcalloc((size_t)m->num_tensors, sizeof *items);
    char **names = xcalloc((size_t)m->num_tensors, sizeof *names);
    int gpt2 = m->config.family == GPT_FAMILY_GPT2;
    for (int i = 0; i < m->num_tensors; i++) {
        const GPTTensor *t = &m->tensors[i];
        size_t nl = strlen(t->name) + 16;
        names[i] = xmalloc(nl);
        int prefix = gpt2 && strcmp(t->name, "score.weight") != 0;
        snprintf(names[i], nl, "%s%s", prefix ? "transformer." : "", t->name);
        items[i] = (StWrite){.name = names[i], .ndim = t->ndim,
                             .shape = {t->shape[0], t->shape[1]},
                             .data = m->params + t->offset};
    }
    char st_path[4200];
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    const char *st_meta[] = {"format", "pt"};
    int rc = safetensors_write(st_path, items, m->num_tensors, dtype, st_meta, 1, err);
    for (int i = 0; i < m->num_tensors; i++) free(names[i]);
    free(names);
    free(items);
    return rc;
}

/* tokenizer.json and tokenizer_config.json (chat template, special tokens). */
static int export_hf_tokenizer(const CkptReader *r, const char *dir, char *err) {
    const CkptMeta *meta = ckpt_reader_meta(r);
    if (meta->tok_json && write_text(dir, "tokenizer.json", meta->tok_json, err) != 0) return -1;
    if (!meta->tok_json && !meta->chat_template) return 0;
    json_t *tc = json_object();
    merge_attr_json(r, "hf_special_tokens", tc);
    if (meta->chat_template)
        json_object_set_new(tc, "chat_template", json_string(meta->chat_template));
    json_object_set_new(tc, "model_max_length", json_integer(meta->model.max_seq_len));
    json_object_set_new(tc, "tokenizer_class", json_string("PreTrainedTokenizerFast"));
    int rc = write_json(dir, "tokenizer_config.json", tc, err);
    json_decref(tc);
    return rc;
}

/* --peft: the adapters as a PEFT LoRA folder: adapter_config.json and
 * adapter_model.safetensors with PEFT's names (base_model.model.<HF module>.lora_A.weight
 * (r, in), .lora_B.weight (out, r); GPT-2's modules under transformer., Conv1D so
 * fan_in_fan_out true); the base it applies to is exported beside it, in base_dir. */
static int export_peft(const GPT *m, const char *dir, const char *base_dir, StDtype dtype,
                       char *err) {
    const Lora *l = m->lora;
    int gpt2 = m->config.family == GPT_FAMILY_GPT2, n = 2 * l->num;
    GPTTensor *t = xcalloc((size_t)n, sizeof *t);
    lora_table(l, t);
    StWrite *items = xcalloc((size_t)n, sizeof *items);
    char **names = xcalloc((size_t)n, sizeof *names);
    for (int i = 0; i < n; i++) {
        size_t nl = strlen(t[i].name) + 40;
        names[i] = xmalloc(nl);
        snprintf(names[i], nl, "base_model.model.%s%s", gpt2 ? "transformer." : "", t[i].name);
        items[i] = (StWrite){.name = names[i], .ndim = 2,
                             .shape = {t[i].shape[0], t[i].shape[1]},
                             .data = l->params + t[i].offset};
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    const char *st_meta[] = {"format", "pt"};
    int rc = safetensors_write(path, items, n, dtype, st_meta, 1, err);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names), free(items), free(t);
    if (rc != 0) return -1;
    json_t *o = json_object(), *tm = json_array();
    int nt;
    const char *const *tn = lora_target_names(l->family, &nt);
    for (int i = 0; i < nt; i++)
        if (l->targets & (1u << i)) json_array_append_new(tm, json_string(tn[i]));
    json_object_set_new(o, "peft_type", json_string("LORA"));
    json_object_set_new(o, "task_type", json_string("CAUSAL_LM"));
    json_object_set_new(o, "base_model_name_or_path", json_string(base_dir));
    json_object_set_new(o, "r", json_integer(l->rank));
    json_object_set_new(o, "lora_alpha", json_real(l->alpha));
    json_object_set_new(o, "lora_dropout", json_real(l->dropout));
    json_object_set_new(o, "target_modules", tm);
    json_object_set_new(o, "fan_in_fan_out", json_boolean(gpt2));
    json_object_set_new(o, "bias", json_string("none"));
    json_object_set_new(o, "use_rslora", json_false());
    json_object_set_new(o, "inference_mode", json_true());
    rc = write_json(dir, "adapter_config.json", o, err);
    json_decref(o);
    return rc;
}

static int cmd_export(const char *in, const char *dir, const char *want_group, StDtype dtype,
                      int peft, char *err) {
    CkptReader *r = open_ckpt(in, err);
    if (!r) return -1;
    GPT m = {0};
    int rc = -1;
    json_t *cfg = NULL;
    const char *group = pick_group(r, want_group, err);
    if (!group || ckpt_load_model(r, group, &m, err) != 0) goto done;
    /* a LoRA run's checkpoint: the merged weights (base + scale B A), or with --peft the
     * base in DIR/base and the adapters as a PEFT folder in DIR */
    char base_dir[4096];
    if (strlen(dir) > 4000) {
        errf(err, "%s: path too long", dir);
        goto done;
    }
    snprintf(base_dir, sizeof base_dir, "%.4000s%s", dir, peft ? "/base" : "");
    if (peft && !lora_ckpt_has(r)) {
        errf(err, "--peft: %s holds no LoRA adapters (a run with lora.rank > 0 writes them)", in);
        goto done;
    }
    if (peft ? lora_ckpt_read(r, &m, err) != 0 : lora_ckpt_merge(r, &m, err) < 0) goto done;
    const GPTConfig *c = &m.config;
    if (c->head == GPT_HEAD_VALUE) {
        errf(err, "/%s is a value-head model (TRL's v_head): transformers has no class for "
                  "it; export a policy or reward model", group);
        goto done;
    }
    const char *tdtype = dtype == ST_BF16 ? "bfloat16" : "float32";
    if (!(cfg = export_config(r, c, tdtype, err))) {
        char e[ERRBUF_LEN];
        snprintf(e, sizeof e, "/%s: %s", group, err);
        snprintf(err, ERRBUF_LEN, "%s", e);
        goto done;
    }
    const CkptMeta *meta = ckpt_reader_meta(r);
    if (file_mkdirs(base_dir, err) != 0 || export_weights(&m, base_dir, dtype, err) != 0 ||
        write_json(base_dir, "config.json", cfg, err) != 0)
        goto done;
    if (peft && export_peft(&m, dir, base_dir, dtype, err) != 0) goto done;
    dir = base_dir; /* the tokenizer goes with the base model */
    if (meta->tok_vocab && write_text(dir, "vocab.json", meta->tok_vocab, err) != 0) goto done;
    if (meta->tok_merges && write_text(dir, "merges.txt", meta->tok_merges, err) != 0)
        goto done;
    if (export_hf_tokenizer(r, dir, err) != 0) goto done;
    printf("exported /%s (%s, %s) -> %s: config.json, model.safetensors%s%s%s%s\n", group,
           arch_name(c), tdtype, dir, meta->tok_vocab ? ", vocab.json" : "",
           meta->tok_merges ? ", merges.txt" : "", meta->tok_json ? ", tokenizer.json" : "",
           meta->tok_json || meta->chat_template ? ", tokenizer_config.json" : "");
    if (peft) printf("PEFT LoRA adapters (r %d, %d modules) -> adapter_config.json, "
                     "adapter_model.safetensors beside it\n", m.lora->rank, m.lora->num);
    rc = 0;
done:
    json_decref(cfg);
    gpt_free(&m);
    ckpt_reader_free(r);
    return rc;
}

// ----------------------------------------------------------------------------
// info

static void print_text_crc(const char *what, const char *text) {
    if (text) printf("%s crc32=%08x\n", what, ckpt_crc32(0, text, strlen(text)));
}

static void print_model(const GPT *m, const char *vocab, const char *merges,
                        const char *tok_json, const char *chat_template) {
    const GPTConfig *c = &m->config;
    printf("model vocab_size=%d max_seq_len=%d n_layer=%d n_head=%d n_embd=%d head=%s "
           "params=%zu\n", c->vocab_size, c->max_seq_len, c->n_layer, c->n_head, c->n_embd,
           ckpt_head_name(c->head), m->num_params);
    if (c->family == GPT_FAMILY_LLAMA)
        printf("llama class=%s n_kv_head=%d head_dim=%d d_ff=%d qkv_bias=%d qk_norm=%d "
               "tie_embeddings=%d rope_theta=%.9g norm_eps=%.9g rope_llama3=%.9g,%.9g,%.9g,%d\n",
               arch_name(c), c->n_kv_head, c->head_dim ? c->head_dim : c->n_embd / c->n_head,
               c->d_ff, c->qkv_bias, c->qk_norm, c->tie_embeddings, (double)c->rope_theta,
               (double)c->norm_eps, (double)c->rope_factor, (double)c->rope_low_freq_factor,
               (double)c->rope_high_freq_factor, c->rope_orig_max_pos);
    print_text_crc("tokenizer vocab", vocab);
    print_text_crc("tokenizer merges", merges);
    print_text_crc("tokenizer json", tok_json);
    print_text_crc("chat_template", chat_template);
    for (int i = 0; i < m->num_tensors; i++) {
        const GPTTensor *t = &m->tensors[i];
        char shape[48];
        if (t->ndim == 2) snprintf(shape, sizeof shape, "(%d,%d)", t->shape[0], t->shape[1]);
        else snprintf(shape, sizeof shape, "(%d)", t->shape[0]);
        printf("tensor %-28s %-12s crc32=%08x\n", t->name, shape,
               ckpt_crc32(0, m->params + t->offset, t->numel * sizeof(float)));
    }
}

static int cmd_info(const char *p, const char *want_group, char *err) {
    char cfgp[4200];
    snprintf(cfgp, sizeof cfgp, "%s/config.json", p);
    if (is_dir(p) && is_file(cfgp)) {
        HfModel h;
        if (hf_load(p, 0, &h, err) != 0) return -1;
        print_model(&h.m, h.vocab, h.merges, h.tok_json, h.chat_template);
        hf_model_free(&h);
        return 0;
    }
    CkptReader *r = open_ckpt(p, err);
    if (!r) return -1;
    GPT m = {0};
    const char *group = pick_group(r, want_group, err);
    int rc = -1;
    if (group && ckpt_load_model(r, group, &m, err) == 0) {
        const CkptMeta *meta = ckpt_reader_meta(r);
        print_model(&m, meta->tok_vocab, meta->tok_merges, meta->tok_json, meta->chat_template);
        rc = 0;
    }
    gpt_free(&m);
    ckpt_reader_free(r);
    return rc;
}

int main(int argc, char **argv) {
    char err[ERRBUF_LEN] = "";
    const char *group = NULL, *dtype_s = NULL;
    const char *pos[3];
    int np = 0, no_tok = 0, peft = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--group") == 0) {
            if (i + 1 >= argc) usage_error("rlhf-hf", "--group needs a name");
            group = argv[++i];
        } else if (strcmp(argv[i], "--dtype") == 0) {
            if (i + 1 >= argc) usage_error("rlhf-hf", "--dtype needs f32 or bf16");
            dtype_s = argv[++i];
        } else if (strcmp(argv[i], "--no-tokenizer") == 0) {
            no_tok = 1;
        } else if (strcmp(argv[i], "--peft") == 0) {
            peft = 1;
        } else if (np < 3) {
            pos[np++] = argv[i];
        } else {
            usage_error("rlhf-hf", "too many arguments");
        }
    }
    if (np < 1) usage_error("rlhf-hf", "missing command import, export or info");
    StDtype dtype = ST_F32;
    if (dtype_s && strcmp(dtype_s, "bf16") == 0) dtype = ST_BF16;
    else if (dtype_s && strcmp(dtype_s, "f32") != 0)
        usage_error("rlhf-hf", "--dtype %s: must be f32 or bf16", dtype_s);
    int is_import = strcmp(pos[0], "import") == 0, is_export = strcmp(pos[0], "export") == 0;
    const char *misplaced = no_tok && !is_import   ? "--no-tokenizer"
                            : dtype_s && !is_export ? "--dtype"
                            : peft && !is_export    ? "--peft"
                            : group && is_import    ? "--group"
                                                    : NULL;
    if (misplaced) usage_error("rlhf-hf", "%s does not apply to '%s'", misplaced, pos[0]);
    int rc;
    if (is_import && np == 3) {
        rc = cmd_import(pos[1], pos[2], no_tok, err);
    } else if (is_export && np == 3) {
        rc = cmd_export(pos[1], pos[2], group, dtype, peft, err);
    } else if (strcmp(pos[0], "info") == 0 && np == 2) {
        rc = cmd_info(pos[1], group, err);
    } else {
        usage_error("rlhf-hf", "'%s' with %d argument%s: not a command of this tool", pos[0],
                    np - 1, np == 2 ? "" : "s");
    }
    if (rc != 0) fatal("%s", err);
    return 0;
}
