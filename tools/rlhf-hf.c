/*
 * tools/rlhf-hf.c — convert GPT-2 models between Hugging Face's layout and rlhf-c
 * checkpoints.
 *
 *   rlhf-hf import HF_DIR OUT.h5          config.json + model.safetensors (+ vocab.json,
 *                                         merges.txt) -> a checkpoint (stage "init")
 *   rlhf-hf export CKPT HF_DIR [--group G] a checkpoint's model -> config.json,
 *                                         model.safetensors (+ tokenizer files)
 *   rlhf-hf info PATH [--group G]         the model config and a CRC-32 of every tensor
 *                                         (as float32) of a checkpoint or an HF folder:
 *                                         two sources print the same lines iff they hold
 *                                         the same model bit for bit
 *
 * Import accepts a GPT2LMHeadModel (into /policy; lm_head.weight must be absent or equal
 * to wte.weight: the head is tied) or a GPT2ForSequenceClassification with one label
 * (into /reward, score.weight (1,C)); keys with or without the "transformer." prefix;
 * F32, F16 or BF16 data; the attention mask buffers (h.<l>.attn.bias / .masked_bias)
 * are skipped. HF GPT-2 keeps Conv1D weights as (in, out), which is exactly rlhf-c's
 * layout (common/gpt.h), so conversion is a rename and a copy. config.json must describe
 * the model rlhf-c computes: layer_norm_epsilon 1e-5, activation gelu_new (or the same
 * formula as gelu_pytorch_tanh), n_inner 4*n_embd, scaled attention, no cross-attention.
 * Any other key, a missing tensor or a wrong shape is an error naming it.
 *
 * Export writes what transformers' save_pretrained writes for these classes: the
 * "transformer."-prefixed trunk keys, no lm_head.weight (tied), metadata format "pt",
 * dropout 0 (rlhf-c trains without dropout). A value-head model (TRL's v_head) has no
 * transformers class and is refused. Not supported: sharded checkpoints
 * (model.safetensors.index.json), pytorch_model.bin, other architectures.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "gpt.h"
#include "safetensors.h"
#include "util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: rlhf-hf import HF_DIR OUT.h5\n"
            "       rlhf-hf export CKPT HF_DIR [--group policy|reward|reference]\n"
            "       rlhf-hf info PATH [--group NAME]\n"
            "HF_DIR holds config.json and model.safetensors of a GPT2LMHeadModel or a\n"
            "one-label GPT2ForSequenceClassification (and optionally vocab.json, merges.txt).\n"
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

// ----------------------------------------------------------------------------
// config.json

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

typedef enum { ARCH_UNKNOWN, ARCH_LM, ARCH_SCORE } Arch;

/* Parse and check config.json into c (head from the architectures field, if any). */
static int read_hf_config(const char *dir, GPTConfig *c, Arch *arch, char *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t len;
    char *text = file_read_all(path, &len, err);
    if (!text) return -1;
    json_error_t je;
    json_t *cfg = json_loadb(text, len, 0, &je);
    free(text);
    int rc = -1;
    if (!cfg) {
        errf(err, "%s:%d:%d: invalid JSON: %s", path, je.line, je.column, je.text);
        return -1;
    }
    if (!json_is_object(cfg)) {
        errf(err, "%s: not a JSON object", path);
        goto done;
    }
    memset(c, 0, sizeof *c);
    json_t *mt = json_object_get(cfg, "model_type");
    if (mt && (!json_is_string(mt) || strcmp(json_string_value(mt), "gpt2") != 0)) {
        errf(err, "%s: model_type is %s, only \"gpt2\" is supported", path,
             json_is_string(mt) ? json_string_value(mt) : "not a string");
        goto done;
    }
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
    *arch = ARCH_UNKNOWN;
    json_t *archs = json_object_get(cfg, "architectures");
    if (archs && json_is_array(archs) && json_array_size(archs) > 0) {
        json_t *a = json_array_get(archs, 0);
        const char *s = json_is_string(a) ? json_string_value(a) : "";
        if (strcmp(s, "GPT2LMHeadModel") == 0 || strcmp(s, "GPT2Model") == 0) {
            *arch = ARCH_LM;
        } else if (strcmp(s, "GPT2ForSequenceClassification") == 0) {
            *arch = ARCH_SCORE;
        } else {
            errf(err, "%s: architecture \"%s\" is not supported (GPT2LMHeadModel or "
                      "GPT2ForSequenceClassification)", path, s);
            goto done;
        }
    }
    if (*arch == ARCH_SCORE) {
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
    c->head = *arch == ARCH_SCORE ? GPT_HEAD_SCORE : GPT_HEAD_LM;
    char cerr[ERRBUF_LEN];
    if (gpt_config_validate(c, cerr) != 0) {
        errf(err, "%s: %s", path, cerr);
        goto done;
    }
    rc = 0;
done:
    json_decref(cfg);
    return rc;
}

// ----------------------------------------------------------------------------
// import

/* The name a safetensors key maps to in rlhf-c's table ("transformer." stripped). */
static const char *strip_prefix(const char *key) {
    return strncmp(key, "transformer.", 12) == 0 ? key + 12 : key;
}

/* h.<digits>.attn.bias / h.<digits>.attn.masked_bias: causal-mask buffers, not weights. */
static int is_attn_buffer(const char *name) {
    if (strncmp(name, "h.", 2) != 0) return 0;
    const char *p = name + 2;
    if (*p < '0' || *p > '9') return 0;
    while (*p >= '0' && *p <= '9') p++;
    return strcmp(p, ".attn.bias") == 0 || strcmp(p, ".attn.masked_bias") == 0;
}

static void shape_str(const StTensor *t, char *buf, size_t n) {
    size_t o = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < t->ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    if (o < n) snprintf(buf + o, n - o, ")");
}

/* Load an HF folder into m (initialised here), and its tokenizer texts if present. */
static int hf_load(const char *dir, GPT *m, char **vocab, char **merges, char *err) {
    GPTConfig c;
    Arch arch;
    SafeTensors st = {0};
    GPTTensor *table = NULL;
    const StTensor **found = NULL;
    int rc = -1;
    memset(m, 0, sizeof *m);
    *vocab = *merges = NULL;
    if (!is_dir(dir)) return errf(err, "%s: not a directory", dir);
    if (read_hf_config(dir, &c, &arch, err) != 0) return -1;
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!is_file(path)) {
        char alt[4200];
        snprintf(alt, sizeof alt, "%s/model.safetensors.index.json", dir);
        if (is_file(alt))
            return errf(err, "%s: sharded safetensors checkpoints are not supported", alt);
        snprintf(alt, sizeof alt, "%s/pytorch_model.bin", dir);
        if (is_file(alt))
            return errf(err, "%s: only model.safetensors is read (save the model with "
                             "safe_serialization=True)", alt);
        return errf(err, "%s: missing", path);
    }
    if (safetensors_load(&st, path, err) != 0) return -1;
    /* the head: the architecture says, or score.weight's presence does */
    int has_score = safetensors_find(&st, "score.weight") != NULL ||
                    safetensors_find(&st, "transformer.score.weight") != NULL;
    if (arch == ARCH_UNKNOWN) c.head = has_score ? GPT_HEAD_SCORE : GPT_HEAD_LM;
    if (arch == ARCH_LM && has_score) {
        errf(err, "%s: has score.weight but config.json says GPT2LMHeadModel", path);
        goto done;
    }
    int cap = gpt_tensors_capacity(&c);
    table = xcalloc((size_t)cap, sizeof *table);
    int n = gpt_tensors_build(&c, table, cap);
    found = xcalloc((size_t)n, sizeof *found);
    const StTensor *lm_head = NULL;
    for (int i = 0; i < st.num_tensors; i++) {
        const StTensor *t = &st.tensors[i];
        const char *name = strip_prefix(t->name);
        if (is_attn_buffer(name)) continue;
        if (strcmp(name, "lm_head.weight") == 0 && c.head == GPT_HEAD_LM) {
            lm_head = t;
            continue;
        }
        int k = 0;
        while (k < n && strcmp(table[k].name, name) != 0) k++;
        if (k == n) {
            if (strcmp(name, "score.weight") == 0 && c.head == GPT_HEAD_SCORE)
                errf(err, "%s: score.weight has %lld rows: only one label is supported", path,
                     (long long)t->shape[0]);
            else
                errf(err, "%s: unexpected tensor \"%s\" (not part of a GPT-2 %s model with "
                          "n_layer = %d)", path, t->name,
                     c.head == GPT_HEAD_SCORE ? "reward" : "LM", c.n_layer);
            goto done;
        }
        if (found[k]) {
            errf(err, "%s: \"%s\" and \"%s\" are the same tensor", path, found[k]->name,
                 t->name);
            goto done;
        }
        found[k] = t;
    }
    for (int k = 0; k < n; k++) {
        const StTensor *t = found[k];
        if (!t) {
            errf(err, "%s: missing tensor \"%s\" (or \"transformer.%s\")", path, table[k].name,
                 table[k].name);
            goto done;
        }
        int same = t->ndim == table[k].ndim && t->shape[0] == table[k].shape[0] &&
                   (t->ndim < 2 || t->shape[1] == table[k].shape[1]);
        if (table[k].ndim == 2 && strcmp(table[k].name, "score.weight") == 0 && t->ndim == 2 &&
            t->shape[0] != 1 && t->shape[1] == table[k].shape[1]) {
            errf(err, "%s: score.weight has %lld rows: only one label is supported", path,
                 (long long)t->shape[0]);
            goto done;
        }
        if (!same) {
            char a[64], b[64];
            shape_str(t, a, sizeof a);
            if (table[k].ndim == 2)
                snprintf(b, sizeof b, "(%d,%d)", table[k].shape[0], table[k].shape[1]);
            else
                snprintf(b, sizeof b, "(%d)", table[k].shape[0]);
            errf(err, "%s: tensor \"%s\" has shape %s, expected %s for this config.json", path,
                 t->name, a, b);
            goto done;
        }
        if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16) {
            errf(err, "%s: tensor \"%s\" is %s; F32, F16 or BF16 expected", path, t->name,
                 safetensors_dtype_name(t->dtype));
            goto done;
        }
    }
    gpt_init(m, &c);
    for (int k = 0; k < n; k++)
        if (safetensors_read_f32(&st, found[k], m->params + m->tensors[k].offset, err) != 0)
            goto done;
    if (lm_head) {
        const GPTTensor *wte = &m->tensors[0];
        float *h = xalloc_floats(wte->numel);
        int same = lm_head->numel == wte->numel &&
                   safetensors_read_f32(&st, lm_head, h, err) == 0 &&
                   memcmp(h, m->params + wte->offset, wte->numel * sizeof(float)) == 0;
        free(h);
        if (!same) {
            errf(err, "%s: lm_head.weight differs from wte.weight: untied LM heads are not "
                      "supported (rlhf-c ties the head to the token embedding)", path);
            goto done;
        }
    }
    char tp[4200];
    snprintf(tp, sizeof tp, "%s/vocab.json", dir);
    if (is_file(tp) && !(*vocab = file_read_all(tp, NULL, err))) goto done;
    snprintf(tp, sizeof tp, "%s/merges.txt", dir);
    if (is_file(tp) && !(*merges = file_read_all(tp, NULL, err))) goto done;
    rc = 0;
done:
    if (rc != 0) {
        gpt_free(m);
        free(*vocab);
        free(*merges);
        *vocab = *merges = NULL;
    }
    free(found);
    free(table);
    safetensors_free(&st);
    return rc;
}

static int cmd_import(const char *dir, const char *out, char *err) {
    GPT m;
    char *vocab, *merges;
    if (hf_load(dir, &m, &vocab, &merges, err) != 0) return -1;
    const char *group = m.config.head == GPT_HEAD_SCORE ? "reward" : "policy";
    size_t cl = strlen(dir) + 200;
    char *config = xmalloc(cl);
    snprintf(config, cl, "# imported by rlhf-hf\n[import]\nsource = %s\narchitecture = %s\n",
             dir, m.config.head == GPT_HEAD_SCORE ? "GPT2ForSequenceClassification"
                                                  : "GPT2LMHeadModel");
    CkptMeta meta = {.stage = "init", .step = 0, .policy_version = 0, .model = m.config,
                     .config = config, .tok_vocab = vocab, .tok_merges = merges};
    int rc = -1;
    CkptWriter *w = ckpt_writer_open(out, err);
    if (w) {
        if (ckpt_write_meta(w, &meta, err) == 0 && ckpt_write_model(w, group, &m, err) == 0)
            rc = ckpt_writer_commit(w, err);
        else
            ckpt_writer_free(w);
    }
    if (rc == 0)
        printf("imported %s -> %s (/%s: V=%d T=%d L=%d NH=%d C=%d, %zu params%s)\n", dir, out,
               group, m.config.vocab_size, m.config.max_seq_len, m.config.n_layer,
               m.config.n_head, m.config.n_embd, m.num_params,
               vocab && merges ? ", tokenizer" : "");
    free(config);
    free(vocab);
    free(merges);
    gpt_free(&m);
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

static int cmd_export(const char *in, const char *dir, const char *want_group, char *err) {
    CkptReader *r = open_ckpt(in, err);
    if (!r) return -1;
    GPT m = {0};
    int rc = -1;
    json_t *cfg = NULL;
    char *js = NULL;
    StWrite *items = NULL;
    char **names = NULL;
    const char *group = pick_group(r, want_group, err);
    if (!group || ckpt_load_model(r, group, &m, err) != 0) goto done;
    const GPTConfig *c = &m.config;
    if (c->head == GPT_HEAD_VALUE) {
        errf(err, "/%s is a value-head model (TRL's v_head): transformers has no class for "
                  "it; export a policy or reward model", group);
        goto done;
    }
    if (file_mkdirs(dir, err) != 0) goto done;
    const CkptMeta *meta = ckpt_reader_meta(r);
    int eot = eot_id(meta->tok_vocab);
    int score = c->head == GPT_HEAD_SCORE;
    cfg = json_object();
    json_object_set_new(cfg, "architectures",
                        json_pack("[s]", score ? "GPT2ForSequenceClassification"
                                               : "GPT2LMHeadModel"));
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
    json_object_set_new(cfg, "torch_dtype", json_string("float32"));
    if (eot >= 0 && eot < c->vocab_size) {
        json_object_set_new(cfg, "bos_token_id", json_integer(eot));
        json_object_set_new(cfg, "eos_token_id", json_integer(eot));
        if (score) json_object_set_new(cfg, "pad_token_id", json_integer(eot));
    }
    if (score) {
        json_object_set_new(cfg, "id2label", json_pack("{s:s}", "0", "LABEL_0"));
        json_object_set_new(cfg, "label2id", json_pack("{s:i}", "LABEL_0", 0));
    }
    js = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    if (!js) {
        errf(err, "cannot serialise config.json");
        goto done;
    }
    size_t jl = strlen(js);
    js = xrealloc(js, jl + 2);
    memcpy(js + jl, "\n", 2);
    items = xcalloc((size_t)m.num_tensors, sizeof *items);
    names = xcalloc((size_t)m.num_tensors, sizeof *names);
    for (int i = 0; i < m.num_tensors; i++) {
        const GPTTensor *t = &m.tensors[i];
        size_t nl = strlen(t->name) + 16;
        names[i] = xmalloc(nl);
        if (strcmp(t->name, "score.weight") == 0) snprintf(names[i], nl, "%s", t->name);
        else snprintf(names[i], nl, "transformer.%s", t->name);
        items[i] = (StWrite){.name = names[i], .ndim = t->ndim,
                             .shape = {t->shape[0], t->shape[1]},
                             .data = m.params + t->offset};
    }
    char st_path[4200];
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    const char *st_meta[] = {"format", "pt"};
    if (safetensors_write_f32(st_path, items, m.num_tensors, st_meta, 1, err) != 0 ||
        write_text(dir, "config.json", js, err) != 0)
        goto done;
    if (meta->tok_vocab && write_text(dir, "vocab.json", meta->tok_vocab, err) != 0) goto done;
    if (meta->tok_merges && write_text(dir, "merges.txt", meta->tok_merges, err) != 0)
        goto done;
    printf("exported /%s (%s) -> %s: config.json, model.safetensors%s%s\n", group,
           score ? "GPT2ForSequenceClassification" : "GPT2LMHeadModel", dir,
           meta->tok_vocab ? ", vocab.json" : "", meta->tok_merges ? ", merges.txt" : "");
    rc = 0;
done:
    if (names)
        for (int i = 0; i < m.num_tensors; i++) free(names[i]);
    free(names);
    free(items);
    free(js);
    json_decref(cfg);
    gpt_free(&m);
    ckpt_reader_free(r);
    return rc;
}

// ----------------------------------------------------------------------------
// info

static void print_model(const GPT *m, const char *vocab, const char *merges) {
    const GPTConfig *c = &m->config;
    printf("model vocab_size=%d max_seq_len=%d n_layer=%d n_head=%d n_embd=%d head=%s "
           "params=%zu\n", c->vocab_size, c->max_seq_len, c->n_layer, c->n_head, c->n_embd,
           ckpt_head_name(c->head), m->num_params);
    if (vocab) printf("tokenizer vocab crc32=%08x\n", ckpt_crc32(0, vocab, strlen(vocab)));
    if (merges) printf("tokenizer merges crc32=%08x\n", ckpt_crc32(0, merges, strlen(merges)));
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
    GPT m = {0};
    if (is_dir(p) && is_file(cfgp)) {
        char *vocab, *merges;
        if (hf_load(p, &m, &vocab, &merges, err) != 0) return -1;
        print_model(&m, vocab, merges);
        free(vocab);
        free(merges);
        gpt_free(&m);
        return 0;
    }
    CkptReader *r = open_ckpt(p, err);
    if (!r) return -1;
    const char *group = pick_group(r, want_group, err);
    int rc = -1;
    if (group && ckpt_load_model(r, group, &m, err) == 0) {
        const CkptMeta *meta = ckpt_reader_meta(r);
        print_model(&m, meta->tok_vocab, meta->tok_merges);
        rc = 0;
    }
    gpt_free(&m);
    ckpt_reader_free(r);
    return rc;
}

int main(int argc, char **argv) {
    char err[ERRBUF_LEN] = "";
    const char *group = NULL;
    const char *pos[3];
    int np = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--group") == 0) {
            if (i + 1 >= argc) usage_error("rlhf-hf", "--group needs a name");
            group = argv[++i];
        } else if (np < 3) {
            pos[np++] = argv[i];
        } else {
            usage_error("rlhf-hf", "too many arguments");
        }
    }
    if (np < 1) usage_error("rlhf-hf", "missing command import, export or info");
    int rc;
    if (strcmp(pos[0], "import") == 0 && np == 3 && !group) {
        rc = cmd_import(pos[1], pos[2], err);
    } else if (strcmp(pos[0], "export") == 0 && np == 3) {
        rc = cmd_export(pos[1], pos[2], group, err);
    } else if (strcmp(pos[0], "info") == 0 && np == 2) {
        rc = cmd_info(pos[1], group, err);
    } else {
        usage_error("rlhf-hf", "'%s' with %d argument%s: not a command of this tool", pos[0],
                    np - 1, np == 2 ? "" : "s");
    }
    if (rc != 0) fatal("%s", err);
    return 0;
}
