/*
 * common/gpt.c — the transformer core (GPT-2 and the Llama family, see gpt.h): the
 * parameter table, allocation, initialisation, and the forward/backward of the whole
 * network and its heads, and the KV-cache decoding path.
 * The per-op kernels live in ops.c; this file wires them into the model described in
 * gpt.h. It owns every buffer of a GPT (parameters, gradients, activations, cache) and
 * allocates only in gpt_init / gpt_alloc_grads / gpt_reserve / gpt_cache_reserve (and
 * once, on the first backward, the activation-gradient scratch; gpt_lm_forward resizes
 * the LM head's logits after a change of m->lm_chunk_bytes): never per step.
 * Sampling is in sample.c, the generation loop in generate.c.
 */
#include "gpt.h"
#include "lora.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "ops_llama.h"
#include "rng.h"
#include "util.h"

// ----------------------------------------------------------------------------
// config

const char *gpt_family_name(GPTFamily f) { return f == GPT_FAMILY_LLAMA ? "llama" : "gpt2"; }

/* The Llama family's own fields (gpt_config_validate checked the shared ones). */
static int llama_config_validate(const GPTConfig *c, char *err) {
    int hd = c->head_dim ? c->head_dim : c->n_embd / c->n_head;
    if (c->n_kv_head < 1 || c->n_head % c->n_kv_head != 0)
        return errf(err, "n_kv_head = %d: must be positive and divide n_head = %d", c->n_kv_head,
                    c->n_head);
    if (c->head_dim == 0 && c->n_embd % c->n_head != 0)
        return errf(err, "n_embd = %d is not divisible by n_head = %d (set head_dim)", c->n_embd,
                    c->n_head);
    if (hd < 2 || hd > 1024 || hd % 2 != 0)
        return errf(err, "head_dim = %d: must be even and in [2, 1024] (rotary halves)", hd);
    if (c->d_ff < 1 || c->d_ff > (1 << 18))
        return errf(err, "d_ff = %d: must be in [1, 262144]", c->d_ff);
    if (!(c->rope_theta > 1.0f) || !isfinite(c->rope_theta))
        return errf(err, "rope_theta = %g: must be a finite number > 1", (double)c->rope_theta);
    if (!(c->norm_eps > 0.0f) || !(c->norm_eps < 1.0f))
        return errf(err, "norm_eps = %g: must be in (0, 1)", (double)c->norm_eps);
    if (c->rope_factor != 0.0f &&
        (!(c->rope_factor >= 1.0f) || !(c->rope_low_freq_factor > 0.0f) ||
         !(c->rope_high_freq_factor > c->rope_low_freq_factor) || c->rope_orig_max_pos < 1))
        return errf(err, "rope scaling (llama3): factor %g >= 1, 0 < low_freq_factor %g < "
                    "high_freq_factor %g and original_max_position_embeddings %d >= 1 required",
                    (double)c->rope_factor, (double)c->rope_low_freq_factor,
                    (double)c->rope_high_freq_factor, c->rope_orig_max_pos);
    if (c->qkv_bias < 0 || c->qkv_bias > 1 || c->qk_norm < 0 || c->qk_norm > 1 ||
        c->tie_embeddings < 0 || c->tie_embeddings > 1)
        return errf(err, "qkv_bias = %d, qk_norm = %d, tie_embeddings = %d: each must be 0 or 1",
                    c->qkv_bias, c->qk_norm, c->tie_embeddings);
    return 0;
}

int gpt_config_validate(const GPTConfig *c, char *err) {
    if (c->vocab_size < 2 || c->vocab_size > (1 << 24))
        return errf(err, "vocab_size = %d: must be in [2, 16777216]", c->vocab_size);
    if (c->max_seq_len < 1 || c->max_seq_len > (1 << 16))
        return errf(err, "max_seq_len = %d: must be in [1, 65536]", c->max_seq_len);
    if (c->n_layer < 1 || c->n_layer > 256)
        return errf(err, "n_layer = %d: must be in [1, 256]", c->n_layer);
    if (c->n_head < 1 || c->n_embd < 1 || c->n_embd > (1 << 16))
        return errf(err, "n_head = %d, n_embd = %d: both must be positive (n_embd <= 65536)",
                    c->n_head, c->n_embd);
    if (c->family == GPT_FAMILY_LLAMA) {
        if (llama_config_validate(c, err) != 0) return -1;
    } else if (c->family != GPT_FAMILY_GPT2) {
        return errf(err, "family = %d: must be 0 (gpt2) or 1 (llama)", (int)c->family);
    } else if (c->n_embd % c->n_head != 0) {
        return errf(err, "n_embd = %d is not divisible by n_head = %d", c->n_embd, c->n_head);
    }
    if (c->head != GPT_HEAD_LM && c->head != GPT_HEAD_SCORE && c->head != GPT_HEAD_VALUE)
        return errf(err, "head = %d: must be 0 (lm), 1 (score) or 2 (value)", (int)c->head);
    return 0;
}

int gpt_config_preset(const char *name, GPTConfig *out) {
    memset(out, 0, sizeof *out);
    if (strcmp(name, "tiny") == 0) {
        *out = (GPTConfig){.vocab_size = 512, .max_seq_len = 128, .n_layer = 4, .n_head = 4,
                           .n_embd = 128, .head = GPT_HEAD_LM};
    } else if (strcmp(name, "gpt2") == 0) {
        *out = (GPTConfig){.vocab_size = 50257, .max_seq_len = 1024, .n_layer = 12,
                           .n_head = 12, .n_embd = 768, .head = GPT_HEAD_LM};
    } else if (strcmp(name, "llama-tiny") == 0) {
        *out = (GPTConfig){.vocab_size = 512, .max_seq_len = 128, .n_layer = 4, .n_head = 4,
                           .n_embd = 128, .head = GPT_HEAD_LM, .family = GPT_FAMILY_LLAMA,
                           .n_kv_head = 2, .d_ff = 344, .tie_embeddings = 1,
                           .rope_theta = 10000.0f, .norm_eps = 1e-5f};
    } else if (strcmp(name, "smol") == 0) {
        *out = (GPTConfig){.vocab_size = 49152, .max_seq_len = 2048, .n_layer = 30,
                           .n_head = 9, .n_embd = 576, .head = GPT_HEAD_LM,
                           .family = GPT_FAMILY_LLAMA, .n_kv_head = 3, .d_ff = 1536,
                           .tie_embeddings = 1, .rope_theta = 100000.0f, .norm_eps = 1e-5f};
    } else {
        return -1;
    }
    return 0;
}

// ----------------------------------------------------------------------------
// the parameter table

static void table_add(GPTTensor *t, int *n, int max, size_t *off, const char *name, int d0,
                      int d1) {
    ASSERT(*n < max);
    GPTTensor *e = &t[(*n)++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->ndim = d1 > 0 ? 2 : 1;
    e->shape[0] = d0;
    e->shape[1] = d1 > 0 ? d1 : 0;
    e->numel = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
    e->offset = *off;
    *off += e->numel;
}

/* Llama: Hugging Face LlamaForCausalLM's names and (out, in) shapes; q, k, v and gate, up
 * consecutive (see GPTBlock). Biases of q/k/v after the three weights for the same reason. */
static int llama_tensors_build(const GPTConfig *c, GPTTensor *out, int max) {
    int n = 0, V = c->vocab_size, C = c->n_embd, F = c->d_ff;
    int hd = c->head_dim ? c->head_dim : C / c->n_head;
    int QW = c->n_head * hd, KW = c->n_kv_head * hd;
    size_t off = 0;
    char name[GPT_NAME_LEN];
    table_add(out, &n, max, &off, "model.embed_tokens.weight", V, C);
    for (int l = 0; l < c->n_layer; l++) {
        struct {
            const char *suffix;
            int d0, d1, on;
        } rows[] = {
            {"input_layernorm.weight", C, 0, 1},
            {"self_attn.q_proj.weight", QW, C, 1},
            {"self_attn.k_proj.weight", KW, C, 1},
            {"self_attn.v_proj.weight", KW, C, 1},
            {"self_attn.q_proj.bias", QW, 0, c->qkv_bias},
            {"self_attn.k_proj.bias", KW, 0, c->qkv_bias},
            {"self_attn.v_proj.bias", KW, 0, c->qkv_bias},
            {"self_attn.q_norm.weight", hd, 0, c->qk_norm},
            {"self_attn.k_norm.weight", hd, 0, c->qk_norm},
            {"self_attn.o_proj.weight", C, QW, 1},
            {"post_attention_layernorm.weight", C, 0, 1},
            {"mlp.gate_proj.weight", F, C, 1},
            {"mlp.up_proj.weight", F, C, 1},
            {"mlp.down_proj.weight", C, F, 1},
        };
        for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
            if (!rows[r].on) continue;
            snprintf(name, sizeof name, "model.layers.%d.%s", l, rows[r].suffix);
            table_add(out, &n, max, &off, name, rows[r].d0, rows[r].d1);
        }
    }
    table_add(out, &n, max, &off, "model.norm.weight", C, 0);
    if (c->head == GPT_HEAD_LM && !c->tie_embeddings)
        table_add(out, &n, max, &off, "lm_head.weight", V, C);
    if (c->head == GPT_HEAD_SCORE) {
        table_add(out, &n, max, &off, "score.weight", 1, C);
    } else if (c->head == GPT_HEAD_VALUE) {
        table_add(out, &n, max, &off, "v_head.summary.weight", 1, C);
        table_add(out, &n, max, &off, "v_head.summary.bias", 1, 0);
    }
    return n;
}

int gpt_tensors_build(const GPTConfig *c, GPTTensor *out, int max) {
    if (c->family == GPT_FAMILY_LLAMA) return llama_tensors_build(c, out, max);
    int n = 0, V = c->vocab_size, C = c->n_embd;
    size_t off = 0;
    char name[GPT_NAME_LEN];
    table_add(out, &n, max, &off, "wte.weight", V, C);
    table_add(out, &n, max, &off, "wpe.weight", c->max_seq_len, C);
    for (int l = 0; l < c->n_layer; l++) {
        static const struct {
            const char *suffix;
            int d0, d1; /* in units of C; d1 = 0 for vectors */
        } rows[] = {
            {"ln_1.weight", 1, 0},          {"ln_1.bias", 1, 0},
            {"attn.c_attn.weight", 1, 3},   {"attn.c_attn.bias", 3, 0},
            {"attn.c_proj.weight", 1, 1},   {"attn.c_proj.bias", 1, 0},
            {"ln_2.weight", 1, 0},          {"ln_2.bias", 1, 0},
            {"mlp.c_fc.weight", 1, 4},      {"mlp.c_fc.bias", 4, 0},
            {"mlp.c_proj.weight", 4, 1},    {"mlp.c_proj.bias", 1, 0},
        };
        for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
            snprintf(name, sizeof name, "h.%d.%s", l, rows[r].suffix);
            table_add(out, &n, max, &off, name, rows[r].d0 * C, rows[r].d1 * C);
        }
    }
    table_add(out, &n, max, &off, "ln_f.weight", C, 0);
    table_add(out, &n, max, &off, "ln_f.bias", C, 0);
    if (c->head == GPT_HEAD_SCORE) {
        table_add(out, &n, max, &off, "score.weight", 1, C);
    } else if (c->head == GPT_HEAD_VALUE) {
        table_add(out, &n, max, &off, "v_head.summary.weight", 1, C);
        table_add(out, &n, max, &off, "v_head.summary.bias", 1, 0);
    }
    return n;
}

int gpt_tensors_capacity(const GPTConfig *c) { return 2 + 14 * c->n_layer + 2 + 2; }

int gpt_trunk_tensors(const GPT *m) {
    const GPTConfig *c = &m->config;
    int n = m->num_tensors;
    if (c->head == GPT_HEAD_SCORE) return n - 1;
    if (c->head == GPT_HEAD_VALUE) return n - 2;
    return c->family == GPT_FAMILY_LLAMA && !c->tie_embeddings ? n - 1 : n;
}

size_t gpt_config_num_params(const GPTConfig *c) {
    int cap = gpt_tensors_capacity(c);
    GPTTensor *t = xcalloc((size_t)cap, sizeof *t);
    int n = gpt_tensors_build(c, t, cap);
    size_t total = t[n - 1].offset + t[n - 1].numel;
    free(t);
    return total;
}

/* Llama: pointers by the order of llama_tensors_build. */
static void llama_weights_point(const GPT *m, float *buf, GPTWeights *w) {
    const GPTTensor *t = m->tensors;
    const GPTConfig *c = &m->config;
    int k = 0;
    w->wte = buf + t[k++].offset;
    w->wpe = NULL;
    for (int l = 0; l < c->n_layer; l++) {
        GPTBlock *b = &w->h[l];
        memset(b, 0, sizeof *b);
        b->ln_1_w = buf + t[k++].offset;
        b->qkv_w = buf + t[k].offset; /* q, k, v weights: three consecutive entries */
        k += 3;
        if (c->qkv_bias) b->qkv_b = buf + t[k].offset, k += 3;
        if (c->qk_norm) b->q_norm_w = buf + t[k++].offset, b->k_norm_w = buf + t[k++].offset;
        b->o_w = buf + t[k++].offset;
        b->ln_2_w = buf + t[k++].offset;
        b->gate_up_w = buf + t[k].offset; /* gate, up: consecutive */
        k += 2;
        b->down_w = buf + t[k++].offset;
    }
    w->ln_f_w = buf + t[k++].offset;
    w->ln_f_b = NULL;
    w->lm_head = w->wte;
    if (c->head == GPT_HEAD_LM && !c->tie_embeddings) w->lm_head = buf + t[k++].offset;
    w->head_w = w->head_b = NULL;
    if (c->head == GPT_HEAD_SCORE) {
        w->head_w = buf + t[k++].offset;
    } else if (c->head == GPT_HEAD_VALUE) {
        w->head_w = buf + t[k++].offset;
        w->head_b = buf + t[k++].offset;
    }
    ASSERT(k == m->num_tensors);
}

void gpt_weights_point(const GPT *m, float *buf, GPTWeights *w) {
    const GPTTensor *t = m->tensors;
    int L = m->config.n_layer, k = 0;
    if (!w->h) w->h = xcalloc((size_t)L, sizeof(GPTBlock));
    if (m->config.family == GPT_FAMILY_LLAMA) {
        llama_weights_point(m, buf, w);
        return;
    }
    w->wte = buf + t[k++].offset;
    w->wpe = buf + t[k++].offset;
    for (int l = 0; l < L; l++) {
        GPTBlock *b = &w->h[l];
        float **slots[] = {&b->ln_1_w, &b->ln_1_b, &b->attn_w,  &b->attn_b,
                           &b->attn_proj_w, &b->attn_proj_b, &b->ln_2_w, &b->ln_2_b,
                           &b->fc_w,    &b->fc_b,    &b->fc_proj_w, &b->fc_proj_b};
        for (int s = 0; s < 12; s++) *slots[s] = buf + t[k++].offset;
    }
    w->ln_f_w = buf + t[k++].offset;
    w->ln_f_b = buf + t[k++].offset;
    w->lm_head = w->wte;
    w->head_w = w->head_b = NULL;
    if (m->config.head == GPT_HEAD_SCORE) {
        w->head_w = buf + t[k++].offset;
    } else if (m->config.head == GPT_HEAD_VALUE) {
        w->head_w = buf + t[k++].offset;
        w->head_b = buf + t[k++].offset;
    }
    ASSERT(k == m->num_tensors);
}

// ----------------------------------------------------------------------------
// allocation and initialisation

/* gpt_init's work on a given parameter buffer (NULL: allocate one) */
static void init_with(GPT *m, const GPTConfig *c, float *params) {
    char err[ERRBUF_LEN];
    memset(m, 0, sizeof *m);
    if (gpt_config_validate(c, err) != 0) fatal("invalid model config: %s", err);
    m->config = *c;
    int cap = gpt_tensors_capacity(c);
    m->tensors = xcalloc((size_t)cap, sizeof(GPTTensor));
    m->num_tensors = gpt_tensors_build(c, m->tensors, cap);
    const GPTTensor *last = &m->tensors[m->num_tensors - 1];
    m->num_params = last->offset + last->numel;
    m->params_borrowed = params != NULL;
    m->params = params ? params : xalloc_floats(m->num_params);
    gpt_weights_point(m, m->params, &m->w);
    if (c->family == GPT_FAMILY_LLAMA) {
        int hd = c->head_dim ? c->head_dim : c->n_embd / c->n_head;
        m->rope_freq = xcalloc((size_t)hd / 2, sizeof(double));
        rope_inv_freq(m->rope_freq, hd, c->rope_theta, c->rope_factor, c->rope_low_freq_factor,
                      c->rope_high_freq_factor, c->rope_orig_max_pos);
    }
    m->temperature = 1.0f;
    m->decode_packed = 1;
    m->decode_bf16 = 0;
    m->weights_version = -1;
    m->lm_chunk_bytes = GPT_LM_CHUNK_BYTES;
}

void gpt_init(GPT *m, const GPTConfig *c) { init_with(m, c, NULL); }

void gpt_init_borrowed(GPT *m, const GPTConfig *c, const GPT *owner) {
    GPTConfig oc = owner->config, mc = *c;
    oc.head = mc.head = GPT_HEAD_LM; /* the trunks must be the same: compare as LM models */
    oc.tie_embeddings = mc.tie_embeddings = 1;
    ASSERT(memcmp(&oc, &mc, sizeof oc) == 0);
    init_with(m, c, owner->params);
    /* the head is not in the owner's buffer: it must be pointed elsewhere before use */
    m->w.head_w = m->w.head_b = NULL;
}

const GPTTensor *gpt_find_tensor(const GPT *m, const char *name) {
    for (int i = 0; i < m->num_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

void gpt_init_weights(GPT *m, uint64_t seed) {
    const GPTConfig *c = &m->config;
    ASSERT(!m->params_borrowed); /* never write another model's buffer */
    Rng rng;
    rng_init(&rng, seed);
    float resid_std = 0.02f / sqrtf(2.0f * (float)c->n_layer);
    for (int i = 0; i < m->num_tensors; i++) {
        const GPTTensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        const char *nm = t->name;
        size_t len = strlen(nm);
        int is_bias = len >= 5 && strcmp(nm + len - 5, ".bias") == 0;
        /* GPT-2's LayerNorms are ln_*; Llama's RMSNorms are *layernorm, *_norm, model.norm */
        int is_ln = strstr(nm, "ln_") != NULL ||
                    (c->family == GPT_FAMILY_LLAMA && strstr(nm, "norm.weight") != NULL);
        if (is_bias) {
            memset(p, 0, t->numel * sizeof(float));
        } else if (is_ln) {
            for (size_t j = 0; j < t->numel; j++) p[j] = 1.0f;
        } else {
            float std = 0.02f;
            if (strstr(nm, "c_proj.weight")) std = resid_std;
            if (strstr(nm, "score.weight") || strstr(nm, "v_head.")) {
                std = 1.0f / sqrtf((float)c->n_embd + 1.0f);
            }
            for (size_t j = 0; j < t->numel; j++) p[j] = std * rng_normal(&rng);
        }
    }
}

/* LoRA: the base is frozen; the norms' and heads' weight gradients, which the kernels
 * compute anyway, land in the adapters' sink and the big weights get none (NULL). */
static void frozen_grads_point(GPT *m) {
    float *s = m->lora->sink;
    GPTWeights *g = &m->g;
    if (!g->h) g->h = xcalloc((size_t)m->config.n_layer, sizeof(GPTBlock));
    for (int l = 0; l < m->config.n_layer; l++) {
        GPTBlock *b = &g->h[l];
        memset(b, 0, sizeof *b);
        b->ln_1_w = b->ln_1_b = b->ln_2_w = b->ln_2_b = b->q_norm_w = b->k_norm_w = s;
    }
    g->wte = g->wpe = g->lm_head = NULL;
    g->ln_f_w = g->ln_f_b = g->head_w = g->head_b = s;
    if (m->lora->head_n) { /* a LoRA critic trains its value head (lora_attach_value_head) */
        g->head_w = m->lora->grads + m->lora->head_off;
        g->head_b = g->head_w + m->config.n_embd;
    }
}

void gpt_alloc_grads(GPT *m) {
    if (m->lora) {
        if (!m->g.ln_f_w) frozen_grads_point(m);
        return;
    }
    if (m->grads) return;
    m->grads = xalloc_floats(m->num_params);
    gpt_weights_point(m, m->grads, &m->g);
}

void gpt_zero_grad(GPT *m) {
    if (m->lora) ops_zero(m->lora->grads, m->lora->n);
    if (m->grads) ops_zero(m->grads, m->num_params);
}

// ----------------------------------------------------------------------------
// activations

/* Row widths of the per-token activations, by family. */
typedef struct {
    int hd;   /* head size */
    int QW;   /* attention output: NH hd (GPT-2: C) */
    int KW;   /* keys (and values): NKV hd (GPT-2: C) */
    int QKVW; /* the fused projection: QW + 2 KW */
    int FW;   /* MLP up projection: 4C (GPT-2) or gate|up 2F (Llama) */
    int FGW;  /* MLP activation: 4C or F */
} Widths;

static Widths model_widths(const GPTConfig *c) {
    Widths w;
    if (c->family == GPT_FAMILY_LLAMA) {
        w.hd = c->head_dim ? c->head_dim : c->n_embd / c->n_head;
        w.QW = c->n_head * w.hd, w.KW = c->n_kv_head * w.hd;
        w.FW = 2 * c->d_ff, w.FGW = c->d_ff;
    } else {
        w.hd = c->n_embd / c->n_head;
        w.QW = w.KW = c->n_embd;
        w.FW = w.FGW = 4 * c->n_embd;
    }
    w.QKVW = w.QW + 2 * w.KW;
    return w;
}

/* Everything the training path keeps between a forward and its backward. Per-layer
 * tensors hold L slices laid out for the B, T of the current call (slice l starts at
 * l*B*T*width), inside buffers sized for the reserved max_B x max_T. With recompute
 * (GPT.recompute) only res3 keeps L slices (the block outputs, i.e. every block's input);
 * the other per-layer tensors hold one slice, the scratch of the block being computed. */
struct GPTActs {
    int B, T;         /* reserved */
    int recompute;    /* the mode the buffers were sized for (GPT.recompute at reserve) */
    int fwd_B, fwd_T; /* shape of the last gpt_forward, 0 before the first */
    int head_fwd;     /* 1 once the head forward ran on the current trunk forward */
    int *tokens;      /* (B,T) copy of the last gpt_forward's tokens */
    int *targets;     /* (B,T) copy of the last gpt_lm_forward's targets */
    int *lengths;     /* (B)   copy of the last gpt_score_forward's lengths */
    int *runs;        /* (B*T, 2) row ranges [start, end) the LM head computed */
    int nruns;
    size_t logit_rows; /* rows of m->logits (LM head): min(B*T, one chunk) */
    int lm_chunk;      /* rows per chunk of the last gpt_lm_forward, 0: resident logits */
    float *encoded;                  /* (B,T,C) */
    float *ln1, *ln1_mean, *ln1_rstd; /* (L,B,T,C) (L,B,T) (L,B,T) */
    float *qkv;                      /* (L,B,T,QKVW) (GPT-2: 3C) */
    float *qkvr;                     /* (L,B,T,QKVW) Llama: q, k normed and rotated, v */
    float *qkn_rstd;                 /* (L,B,T,NH+NKV) Llama with qk_norm: per-head rstd */
    int *pos;                        /* (B,T) Llama: the position of each row (t) */
    float *atty;                     /* (L,B,T,QW) attention output before c_proj */
    float *att;                      /* (L,B,NH,T,T) softmax probabilities */
    float *res2;                     /* (L,B,T,C) residual after attention */
    float *ln2, *ln2_mean, *ln2_rstd; /* (L,B,T,C) (L,B,T) (L,B,T) */
    float *fch, *fch_gelu;           /* (L,B,T,FW) (L,B,T,FGW): GPT-2 4C 4C, Llama 2F F */
    float *res3;                     /* (L,B,T,C) residual after the MLP (block output) */
    float *lnf, *lnf_mean, *lnf_rstd; /* (B,T,C) (B,T) (B,T) */
    float *lse;                      /* (B,T) logsumexp of the LM head rows */
    /* backward scratch (allocated on the first backward) */
    float *dres;      /* (B,T,C) gradient of the residual stream */
    float *dbtc;      /* (B,T,max(C,QW)) */
    float *dqkv;      /* (B,T,QKVW) */
    float *dqkvr;     /* (B,T,QKVW) Llama: gradient of the normed, rotated q, k and v */
    float *dfch;      /* (B,T,FW) (GPT-2: the GELU's input gradient, fused into c_proj's) */
    float *dmlp;      /* (B,T,F) Llama: gradient of the SwiGLU output */
    float *datt;      /* (datt_slots,T,T) attention backward scratch, one per thread */
    int datt_slots;
    float *dlnf;      /* (B,T,C) */
};

static void acts_free(struct GPTActs *a) {
    if (!a) return;
    free(a->tokens);
    free(a->targets);
    free(a->lengths);
    free(a->runs);
    free(a->pos);
    float *bufs[] = {a->qkvr, a->qkn_rstd, a->dqkvr, a->dmlp, a->encoded, a->ln1,  a->ln1_mean, a->ln1_rstd, a->qkv,      a->atty,
                     a->att,     a->res2, a->ln2,      a->ln2_mean, a->ln2_rstd, a->fch,
                     a->fch_gelu, a->res3, a->lnf,     a->lnf_mean, a->lnf_rstd,
                     a->lse,     a->dres, a->dbtc,     a->dqkv,     a->dfch,
                     a->datt,    a->dlnf};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(a);
}

static void outputs_free(GPT *m) {
    free(m->logits);
    free(m->logprobs);
    free(m->entropy);
    free(m->values);
    free(m->scores);
    m->logits = m->logprobs = m->entropy = m->values = m->scores = NULL;
}

/* The activation-gradient scratch, allocated once on the first backward. */
static void grad_scratch_reserve(GPT *m) {
    struct GPTActs *a = m->acts;
    if (a->dres) return;
    size_t C = (size_t)m->config.n_embd, BT = (size_t)a->B * (size_t)a->T;
    Widths wd = model_widths(&m->config);
    a->dres = xalloc_floats(BT * C);
    a->dbtc = xalloc_floats(BT * (C > (size_t)wd.QW ? C : (size_t)wd.QW));
    a->dqkv = xalloc_floats(BT * wd.QKVW);
    a->dfch = xalloc_floats(BT * wd.FW);
    if (m->config.family == GPT_FAMILY_LLAMA) {
        a->dqkvr = xalloc_floats(BT * wd.QKVW);
        a->dmlp = xalloc_floats(BT * wd.FGW);
    }
    /* one attention scratch per thread, at most one per (b, h) pair */
    int slots = ops_blas_threads(), pairs = a->B * m->config.n_head;
    a->datt_slots = slots < 1 ? 1 : slots > pairs ? pairs : slots;
    a->datt = xalloc_floats((size_t)a->datt_slots * (size_t)a->T * (size_t)a->T);
    a->dlnf = xalloc_floats(BT * C);
}

int gpt_lm_chunk_rows(const GPT *m) {
    if (m->lm_chunk_bytes == 0) return INT_MAX;
    size_t row = (size_t)m->config.vocab_size * sizeof(float);
    size_t rows = m->lm_chunk_bytes / row / GPT_LM_CHUNK_GRAIN * GPT_LM_CHUNK_GRAIN;
    if (rows < GPT_LM_CHUNK_GRAIN) rows = GPT_LM_CHUNK_GRAIN;
    return rows > INT_MAX ? INT_MAX : (int)rows;
}

int gpt_lm_logits_resident(const GPT *m) {
    return m->acts && (size_t)gpt_lm_chunk_rows(m) >= (size_t)m->acts->B * (size_t)m->acts->T;
}

/* Size m->logits for the reserved batch and the current chunk budget: the whole batch
 * when it fits one chunk, else one chunk. Allocates only when either changed. */
static void logits_reserve(GPT *m) {
    struct GPTActs *a = m->acts;
    if (m->config.head != GPT_HEAD_LM) return;
    size_t BT = (size_t)a->B * (size_t)a->T, rows = (size_t)gpt_lm_chunk_rows(m);
    if (rows > BT) rows = BT;
    if (m->logits && a->logit_rows == rows) return;
    free(m->logits);
    m->logits = xalloc_floats(rows * (size_t)m->config.vocab_size);
    a->logit_rows = rows;
}

void gpt_reserve(GPT *m, int B, int T) {
    const GPTConfig *c = &m->config;
    ASSERT(B >= 1 && T >= 1 && T <= c->max_seq_len);
    if (m->acts && B <= m->max_B && T <= m->max_T && m->acts->recompute == !!m->recompute)
        return;
    if (B < m->max_B) B = m->max_B;
    if (T < m->max_T) T = m->max_T;
    int had_grad_scratch = m->acts && m->acts->dres;
    acts_free(m->acts);
    outputs_free(m);
    struct GPTActs *a = xcalloc(1, sizeof *a);
    /* recompute: one slice (the block scratch) of every per-layer tensor but res3 */
    size_t L = m->recompute ? 1 : (size_t)c->n_layer, C = (size_t)c->n_embd;
    size_t NH = (size_t)c->n_head, BT = (size_t)B * (size_t)T;
    a->B = B;
    a->T = T;
    a->recompute = !!m->recompute;
    a->tokens = xcalloc(BT, sizeof(int));
    a->targets = xcalloc(BT, sizeof(int));
    a->lengths = xcalloc((size_t)B, sizeof(int));
    a->runs = xcalloc(2 * BT, sizeof(int));
    a->encoded = xalloc_floats(BT * C);
    a->ln1 = xalloc_floats(L * BT * C);
    a->ln1_mean = xalloc_floats(L * BT);
    a->ln1_rstd = xalloc_floats(L * BT);
    Widths wd = model_widths(c);
    a->qkv = xalloc_floats(L * BT * wd.QKVW);
    a->atty = xalloc_floats(L * BT * wd.QW);
    if (c->family == GPT_FAMILY_LLAMA) {
        a->qkvr = xalloc_floats(L * BT * wd.QKVW);
        if (c->qk_norm) a->qkn_rstd = xalloc_floats(L * BT * (size_t)(c->n_head + c->n_kv_head));
        a->pos = xcalloc(BT, sizeof(int));
    }
    a->att = xalloc_floats(L * (size_t)B * NH * (size_t)T * (size_t)T);
    a->res2 = xalloc_floats(L * BT * C);
    a->ln2 = xalloc_floats(L * BT * C);
    a->ln2_mean = xalloc_floats(L * BT);
    a->ln2_rstd = xalloc_floats(L * BT);
    a->fch = xalloc_floats(L * BT * wd.FW);
    a->fch_gelu = xalloc_floats(L * BT * wd.FGW);
    a->res3 = xalloc_floats((size_t)c->n_layer * BT * C);
    a->lnf = xalloc_floats(BT * C);
    a->lnf_mean = xalloc_floats(BT);
    a->lnf_rstd = xalloc_floats(BT);
    a->lse = xalloc_floats(BT);
    m->acts = a;
    m->max_B = B;
    m->max_T = T;
    if (c->head == GPT_HEAD_LM) {
        logits_reserve(m);
        m->logprobs = xalloc_floats(BT);
        m->entropy = xalloc_floats(BT);
    } else if (c->head == GPT_HEAD_VALUE) {
        m->values = xalloc_floats(BT);
    } else {
        m->scores = xalloc_floats((size_t)B);
    }
    /* a model that trained before keeps its gradient scratch: no allocation in the
     * next step after a regrow */
    if (had_grad_scratch) grad_scratch_reserve(m);
}


// ----------------------------------------------------------------------------
// forward

/* Per-layer slices of the activations for the current B x T (see struct GPTActs). */
typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att, *res2, *ln2, *ln2_mean, *ln2_rstd,
        *fch, *fch_gelu, *res3;
    float *qkvr, *qkn_rstd; /* Llama */
    const float *res_in; /* the block input: encoded or the previous res3 */
} LayerActs;

static LayerActs layer_acts(const GPT *m, int l, int B, int T) {
    const struct GPTActs *a = m->acts;
    size_t C = (size_t)m->config.n_embd, NH = (size_t)m->config.n_head;
    /* lz: the slice of the block's own tensors (recompute: the one scratch slice) */
    size_t BT = (size_t)B * (size_t)T, lz = a->recompute ? 0 : (size_t)l;
    Widths wd = model_widths(&m->config);
    LayerActs la;
    la.ln1 = a->ln1 + lz * BT * C;
    la.ln1_mean = a->ln1_mean + lz * BT;
    la.ln1_rstd = a->ln1_rstd + lz * BT;
    la.qkv = a->qkv + lz * BT * wd.QKVW;
    la.qkvr = a->qkvr ? a->qkvr + lz * BT * wd.QKVW : NULL;
    la.qkn_rstd = a->qkn_rstd
                      ? a->qkn_rstd + lz * BT * (size_t)(m->config.n_head + m->config.n_kv_head)
                      : NULL;
    la.atty = a->atty + lz * BT * wd.QW;
    la.att = a->att + lz * (size_t)B * NH * (size_t)T * (size_t)T;
    la.res2 = a->res2 + lz * BT * C;
    la.ln2 = a->ln2 + lz * BT * C;
    la.ln2_mean = a->ln2_mean + lz * BT;
    la.ln2_rstd = a->ln2_rstd + lz * BT;
    la.fch = a->fch + lz * BT * wd.FW;
    la.fch_gelu = a->fch_gelu + lz * BT * wd.FGW;
    la.res3 = a->res3 + (size_t)l * BT * C;
    la.res_in = l == 0 ? a->encoded : a->res3 + ((size_t)l - 1) * BT * C;
    return la;
}

static void check_shape(const GPT *m, int B, int T) {
    if (!m->acts || B < 1 || T < 1 || B > m->max_B || T > m->max_T)
        fatal("gpt: batch %d x %d exceeds the reserved %d x %d (call gpt_reserve first)", B, T,
              m->max_B, m->max_T);
}

/* One Llama block (HF LlamaDecoderLayer): x + attn(rmsnorm(x)), then + mlp(rmsnorm(.)).
 * q, k (qk_norm: each head RMSNormed first, Qwen3) are rotated at the rows' positions. */
static void llama_block_forward(GPT *m, const GPTBlock *w, LayerActs *la, int B, int T) {
    const GPTConfig *c = &m->config;
    Widths wd = model_widths(c);
    int C = c->n_embd, N = B * T, NH = c->n_head, NKV = c->n_kv_head, hd = wd.hd;
    float eps = c->norm_eps;
    const int *pos = m->acts->pos;
    rmsnorm_forward(la->ln1, la->ln1_rstd, la->res_in, w->ln_1_w, eps, N, 1, C, C);
    int layer = (int)(w - m->w.h);
    linear_forward(la->qkv, la->ln1, w->qkv_w, w->qkv_b, N, C, wd.QKVW);
    if (m->lora) lora_proj_forward(m->lora, layer, 0, la->ln1, N, la->qkv, wd.QKVW);
    memcpy(la->qkvr, la->qkv, (size_t)N * wd.QKVW * sizeof(float));
    if (c->qk_norm) {
        rmsnorm_forward(la->qkvr, la->qkn_rstd, la->qkv, w->q_norm_w, eps, N, NH, hd, wd.QKVW);
        rmsnorm_forward(la->qkvr + wd.QW, la->qkn_rstd + (size_t)N * NH, la->qkv + wd.QW,
                        w->k_norm_w, eps, N, NKV, hd, wd.QKVW);
    }
    rope_forward(la->qkvr, la->qkvr, m->rope_freq, pos, N, NH + NKV, hd, wd.QKVW);
    gqa_attention_forward(la->atty, la->att, la->qkvr, B, T, NH, NKV, hd);
    linear_forward(la->res2, la->atty, w->o_w, NULL, N, wd.QW, C);
    if (m->lora) lora_proj_forward(m->lora, layer, 1, la->atty, N, la->res2, C);
    residual_forward(la->res2, la->res_in, la->res2, (size_t)N * C);
    rmsnorm_forward(la->ln2, la->ln2_rstd, la->res2, w->ln_2_w, eps, N, 1, C, C);
    linear_forward(la->fch, la->ln2, w->gate_up_w, NULL, N, C, wd.FW);
    if (m->lora) lora_proj_forward(m->lora, layer, 2, la->ln2, N, la->fch, wd.FW);
    swiglu_forward(la->fch_gelu, la->fch, N, c->d_ff);
    linear_forward(la->res3, la->fch_gelu, w->down_w, NULL, N, wd.FGW, C);
    if (m->lora) lora_proj_forward(m->lora, layer, 3, la->fch_gelu, N, la->res3, C);
    residual_forward(la->res3, la->res2, la->res3, (size_t)N * C);
}

static void llama_forward(GPT *m, const int *tokens, int B, int T) {
    const GPTConfig *c = &m->config;
    int C = c->n_embd, N = B * T;
    struct GPTActs *a = m->acts;
    for (int i = 0; i < N; i++) a->pos[i] = i % T;
    embedding_forward(a->encoded, tokens, m->w.wte, N, C);
    for (int l = 0; l < c->n_layer; l++) {
        LayerActs la = layer_acts(m, l, B, T);
        llama_block_forward(m, &m->w.h[l], &la, B, T);
    }
    LayerActs last = layer_acts(m, c->n_layer - 1, B, T);
    rmsnorm_forward(a->lnf, a->lnf_rstd, last.res3, m->w.ln_f_w, c->norm_eps, N, 1, C, C);
}

/* One GPT-2 block: x + attn(ln_1(x)), then + mlp(ln_2(.)). */
static void gpt2_block_forward(GPT *m, const GPTBlock *w, LayerActs *la, int B, int T) {
    int C = m->config.n_embd, NH = m->config.n_head, N = B * T;
    Lora *lo = m->lora && m->lora->enabled ? m->lora : NULL;
    int layer = (int)(w - m->w.h);
    layernorm_forward(la->ln1, la->ln1_mean, la->ln1_rstd, la->res_in, w->ln_1_w, w->ln_1_b, N,
                      C);
    matmul_forward(la->qkv, la->ln1, w->attn_w, w->attn_b, N, C, 3 * C);
    if (lo) lora_proj_forward(lo, layer, 0, la->ln1, N, la->qkv, 3 * C);
    attention_forward(la->atty, la->att, la->qkv, B, T, C, NH);
    matmul_residual_forward(la->res2, la->atty, w->attn_proj_w, w->attn_proj_b, la->res_in, N, C,
                            C);
    if (lo) lora_proj_forward(lo, layer, 1, la->atty, N, la->res2, C);
    layernorm_forward(la->ln2, la->ln2_mean, la->ln2_rstd, la->res2, w->ln_2_w, w->ln_2_b, N, C);
    if (lo) { /* the adapter adds before the GELU: the unfused pair */
        matmul_forward(la->fch, la->ln2, w->fc_w, w->fc_b, N, C, 4 * C);
        lora_proj_forward(lo, layer, 2, la->ln2, N, la->fch, 4 * C);
        gelu_forward(la->fch_gelu, la->fch, (size_t)N * 4 * C);
    } else {
        matmul_gelu_forward(la->fch, la->fch_gelu, la->ln2, w->fc_w, w->fc_b, N, C, 4 * C);
    }
    matmul_residual_forward(la->res3, la->fch_gelu, w->fc_proj_w, w->fc_proj_b, la->res2, N,
                            4 * C, C);
    if (lo) lora_proj_forward(lo, layer, 3, la->fch_gelu, N, la->res3, C);
}

/* Recompute: block l's activations again into the scratch slice from its input (the kept
 * res3 of block l-1), with the forward's kernels on the forward's inputs, so the backward
 * reads the forward's bits. The last block's are still there from the forward. Its output
 * res3[l] is written again with the same bits. */
static void block_recompute(GPT *m, LayerActs *la, int l, int B, int T) {
    if (!m->acts->recompute || l == m->config.n_layer - 1) return;
    if (m->config.family == GPT_FAMILY_LLAMA)
        llama_block_forward(m, &m->w.h[l], la, B, T);
    else
        gpt2_block_forward(m, &m->w.h[l], la, B, T);
}

void gpt_forward(GPT *m, const int *tokens, int B, int T) {
    check_shape(m, B, T);
    const GPTConfig *c = &m->config;
    if (m->acts->recompute != !!m->recompute)
        fatal("gpt_forward: m->recompute changed to %d after gpt_reserve (call gpt_reserve "
              "again to resize the activations)", m->recompute);
    int C = c->n_embd, V = c->vocab_size, L = c->n_layer;
    size_t BT = (size_t)B * (size_t)T;
    struct GPTActs *a = m->acts;
    for (size_t i = 0; i < BT; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            fatal("gpt_forward: token %d at position %zu of the batch is outside the "
                  "vocabulary [0, %d)", tokens[i], i, V);
    memcpy(a->tokens, tokens, BT * sizeof(int));
    if (c->family == GPT_FAMILY_LLAMA) {
        llama_forward(m, tokens, B, T);
        a->fwd_B = B;
        a->fwd_T = T;
        a->head_fwd = 0;
        return;
    }
    encoder_forward(a->encoded, tokens, m->w.wte, m->w.wpe, B, T, C);
    for (int l = 0; l < L; l++) {
        LayerActs la = layer_acts(m, l, B, T);
        gpt2_block_forward(m, &m->w.h[l], &la, B, T);
    }
    LayerActs last = layer_acts(m, L - 1, B, T);
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, last.res3, m->w.ln_f_w, m->w.ln_f_b,
                      (int)BT, C);
    a->fwd_B = B;
    a->fwd_T = T;
    a->head_fwd = 0;
}

// ----------------------------------------------------------------------------
// backward of the trunk, from a->dlnf (dLoss/d final LayerNorm output) to m->grads

static void check_head_call(const GPT *m, GPTHead head, const char *fn, int B, int T) {
    if (m->config.head != head) fatal("%s called on a model whose head is %d", fn, (int)m->config.head);
    if (!m->acts || m->acts->fwd_B != B || m->acts->fwd_T != T)
        fatal("%s: B x T = %d x %d does not match the last gpt_forward (%d x %d)", fn, B, T,
              m->acts ? m->acts->fwd_B : 0, m->acts ? m->acts->fwd_T : 0);
}

static void backward_begin(GPT *m, const char *fn) {
    if (!m->acts->head_fwd) fatal("%s: the head forward has not run on the last gpt_forward", fn);
    gpt_alloc_grads(m);
    grad_scratch_reserve(m);
}

/* One projection's backward. Without LoRA: linear_backward (Llama) or matmul_backward
 * (GPT-2's Conv1D). With LoRA the weight is frozen: only its input gradient, then the
 * adapters' share of it and their own gradients. */
static void proj_backward(GPT *m, int layer, int proj, float *dinp, float *dw, float *db,
                          const float *dout, const float *inp, const float *w, int N, int C,
                          int OC) {
    int conv1d = m->config.family != GPT_FAMILY_LLAMA;
    if (!m->lora) {
        if (conv1d) matmul_backward(dinp, dw, db, dout, inp, w, N, C, OC);
        else linear_backward(dinp, dw, db, dout, inp, w, N, C, OC);
        return;
    }
    lora_frozen_dinp(dinp, dout, w, N, C, OC, conv1d, 0);
    lora_proj_backward(m->lora, layer, proj, inp, dout, OC, dinp, N);
}

/* The backward of llama_block_forward: from a->dres (the gradient of the block output,
 * replaced by that of its input) into the block's weight gradients gw. */
static void llama_block_backward(GPT *m, const GPTBlock *w, GPTBlock *gw, const LayerActs *la,
                                 int B, int T) {
    const GPTConfig *c = &m->config;
    Widths wd = model_widths(c);
    int C = c->n_embd, N = B * T, NH = c->n_head, NKV = c->n_kv_head, hd = wd.hd;
    struct GPTActs *a = m->acts;
    int layer = (int)(w - m->w.h);
    proj_backward(m, layer, 3, a->dmlp, gw->down_w, NULL, a->dres, la->fch_gelu, w->down_w, N,
                  wd.FGW, C);
    swiglu_backward(a->dfch, a->dmlp, la->fch, N, c->d_ff);
    proj_backward(m, layer, 2, a->dbtc, gw->gate_up_w, NULL, a->dfch, la->ln2, w->gate_up_w, N, C,
                  wd.FW);
    rmsnorm_backward(a->dres, gw->ln_2_w, a->dbtc, la->res2, w->ln_2_w, la->ln2_rstd, N, 1, C, C);
    proj_backward(m, layer, 1, a->dbtc, gw->o_w, NULL, a->dres, la->atty, w->o_w, N, wd.QW, C);
    gqa_attention_backward(a->dqkvr, a->datt, a->datt_slots, a->dbtc, la->qkvr, la->att, B, T,
                           NH, NKV, hd);
    rope_backward(a->dqkvr, a->dqkvr, m->rope_freq, a->pos, N, NH + NKV, hd, wd.QKVW);
    const float *dqkv = a->dqkvr;
    if (c->qk_norm) {
        /* q, k: through the per-head RMSNorms (accumulated into zeros); v: as it is */
        int qk = wd.QW + wd.KW;
        for (int n = 0; n < N; n++) {
            float *row = a->dqkv + (size_t)n * wd.QKVW;
            memset(row, 0, (size_t)qk * sizeof(float));
            memcpy(row + qk, a->dqkvr + (size_t)n * wd.QKVW + qk, (size_t)wd.KW * sizeof(float));
        }
        rmsnorm_backward(a->dqkv, gw->q_norm_w, a->dqkvr, la->qkv, w->q_norm_w, la->qkn_rstd, N,
                         NH, hd, wd.QKVW);
        rmsnorm_backward(a->dqkv + wd.QW, gw->k_norm_w, a->dqkvr + wd.QW, la->qkv + wd.QW,
                         w->k_norm_w, la->qkn_rstd + (size_t)N * NH, N, NKV, hd, wd.QKVW);
        dqkv = a->dqkv;
    }
    proj_backward(m, layer, 0, a->dbtc, gw->qkv_w, gw->qkv_b, dqkv, la->ln1, w->qkv_w, N, C,
                  wd.QKVW);
    rmsnorm_backward(a->dres, gw->ln_1_w, a->dbtc, la->res_in, w->ln_1_w, la->ln1_rstd, N, 1, C,
                     C);
}

static void llama_trunk_backward(GPT *m, int B, int T) {
    const GPTConfig *c = &m->config;
    int C = c->n_embd, L = c->n_layer, N = B * T;
    struct GPTActs *a = m->acts;
    LayerActs last = layer_acts(m, L - 1, B, T);
    memset(a->dres, 0, (size_t)N * C * sizeof(float));
    rmsnorm_backward(a->dres, m->g.ln_f_w, a->dlnf, last.res3, m->w.ln_f_w, a->lnf_rstd, N, 1, C,
                     C);
    for (int l = L - 1; l >= 0; l--) {
        LayerActs la = layer_acts(m, l, B, T);
        block_recompute(m, &la, l, B, T);
        llama_block_backward(m, &m->w.h[l], &m->g.h[l], &la, B, T);
    }
    if (m->g.wte) embedding_backward(m->g.wte, a->dres, a->tokens, N, C);
}

static void trunk_backward(GPT *m, int B, int T) {
    if (m->config.family == GPT_FAMILY_LLAMA) {
        llama_trunk_backward(m, B, T);
        return;
    }
    const GPTConfig *c = &m->config;
    int C = c->n_embd, NH = c->n_head, L = c->n_layer;
    size_t BT = (size_t)B * (size_t)T, BTC = BT * (size_t)C;
    int N = (int)BT;
    struct GPTActs *a = m->acts;
    GPTWeights *g = &m->g;
    LayerActs last = layer_acts(m, L - 1, B, T);
    memset(a->dres, 0, BTC * sizeof(float));
    layernorm_backward(a->dres, g->ln_f_w, g->ln_f_b, a->dlnf, last.res3, m->w.ln_f_w,
                       a->lnf_mean, a->lnf_rstd, N, C);
    /* a->dres is the gradient of the residual stream: a residual add passes it unchanged
     * to both branches, so it flows down in place and each branch's input gradient is
     * accumulated into it (residual_backward done implicitly) */
    for (int l = L - 1; l >= 0; l--) {
        const GPTBlock *w = &m->w.h[l];
        GPTBlock *gw = &g->h[l];
        LayerActs la = layer_acts(m, l, B, T);
        block_recompute(m, &la, l, B, T);
        if (m->lora) { /* the adapter's input gradient joins before the GELU's */
            proj_backward(m, l, 3, a->dfch, NULL, NULL, a->dres, la.fch_gelu, w->fc_proj_w, N,
                          4 * C, C);
            gelu_backward(a->dfch, la.fch, a->dfch, (size_t)N * 4 * C);
        } else {
            matmul_gelu_backward(a->dfch, gw->fc_proj_w, gw->fc_proj_b, a->dres, la.fch_gelu,
                                 w->fc_proj_w, la.fch, N, 4 * C, C);
        }
        proj_backward(m, l, 2, a->dbtc, gw->fc_w, gw->fc_b, a->dfch, la.ln2, w->fc_w, N, C, 4 * C);
        layernorm_backward(a->dres, gw->ln_2_w, gw->ln_2_b, a->dbtc, la.res2, w->ln_2_w,
                           la.ln2_mean, la.ln2_rstd, N, C);
        proj_backward(m, l, 1, a->dbtc, gw->attn_proj_w, gw->attn_proj_b, a->dres, la.atty,
                      w->attn_proj_w, N, C, C);
        attention_backward(a->dqkv, a->datt, a->datt_slots, a->dbtc, la.qkv, la.att, B, T, C, NH);
        proj_backward(m, l, 0, a->dbtc, gw->attn_w, gw->attn_b, a->dqkv, la.ln1, w->attn_w, N, C,
                      3 * C);
        layernorm_backward(a->dres, gw->ln_1_w, gw->ln_1_b, a->dbtc, la.res_in, w->ln_1_w,
                           la.ln1_mean, la.ln1_rstd, N, C);
    }
    if (g->wte) encoder_backward(g->wte, g->wpe, a->dres, a->tokens, B, T, C);
}

// ----------------------------------------------------------------------------
// heads

#define LM_RUN_GAP 8

void gpt_lm_forward(GPT *m, const int *targets, int B, int T) {
    check_head_call(m, GPT_HEAD_LM, "gpt_lm_forward", B, T);
    const GPTConfig *c = &m->config;
    int V = c->vocab_size, C = c->n_embd, N = B * T;
    if (!(m->temperature > 0.0f) || !isfinite(m->temperature))
        fatal("gpt_lm_forward: temperature %g must be a positive finite number", (double)m->temperature);
    struct GPTActs *a = m->acts;
    for (int i = 0; i < N; i++)
        if (targets[i] < -1 || targets[i] >= V)
            fatal("gpt_lm_forward: target %d at position %d is outside [-1, %d)", targets[i], i, V);
    memcpy(a->targets, targets, (size_t)N * sizeof(int));
    /* The LM head runs only on the row ranges that hold targets (prompt and padding rows
     * are usually -1): ranges closer than LM_RUN_GAP rows are merged into one GEMM. */
    a->nruns = 0;
    for (int i = 0; i < N;) {
        if (targets[i] < 0) {
            i++;
            continue;
        }
        int e = i + 1;
        while (e < N && targets[e] >= 0) e++;
        if (a->nruns > 0 && i - a->runs[2 * a->nruns - 1] < LM_RUN_GAP) {
            a->runs[2 * a->nruns - 1] = e;
        } else {
            a->runs[2 * a->nruns] = i;
            a->runs[2 * a->nruns + 1] = e;
            a->nruns++;
        }
        i = e;
    }
    logits_reserve(m);
    a->lm_chunk = gpt_lm_logits_resident(m) ? 0 : gpt_lm_chunk_rows(m);
    if (a->lm_chunk == 0) {
        for (int r = 0; r < a->nruns; r++) {
            int s0 = a->runs[2 * r], n = a->runs[2 * r + 1] - s0;
            lmhead_forward(m->logits + (size_t)s0 * V, a->lnf + (size_t)s0 * C, m->w.lm_head, n,
                           C, V);
        }
        logprob_forward(m->logprobs, m->entropy, a->lse, m->logits, targets, m->temperature, N, V);
    } else {
        /* chunk by chunk through one chunk of logits; rows outside the runs have no target */
        memset(m->logprobs, 0, (size_t)N * sizeof(float));
        memset(m->entropy, 0, (size_t)N * sizeof(float));
        memset(a->lse, 0, (size_t)N * sizeof(float));
        int R = a->lm_chunk;
        for (int r = 0; r < a->nruns; r++)
            for (int r0 = a->runs[2 * r], e = a->runs[2 * r + 1]; r0 < e; r0 += R) {
                int n = e - r0 < R ? e - r0 : R;
                lmhead_forward(m->logits, a->lnf + (size_t)r0 * C, m->w.lm_head, n, C, V);
                logprob_forward(m->logprobs + r0, m->entropy + r0, a->lse + r0, m->logits,
                                targets + r0, m->temperature, n, V);
            }
    }
    a->head_fwd = 1;
}

/* The LM head's backward for rows [r0, r0+n) whose logits are in rows (n,V): they become
 * dLoss/dlogits in place, then dlnf and the head weight's gradient get the products. */
static void lm_rows_backward(GPT *m, float *rows, int r0, int n, const float *dlogprobs,
                             const float *dentropy) {
    struct GPTActs *a = m->acts;
    int V = m->config.vocab_size, C = m->config.n_embd;
    logprob_backward(rows, dlogprobs + r0, dentropy ? dentropy + r0 : NULL, rows, a->lse + r0,
                     m->entropy + r0, a->targets + r0, m->temperature, n, V);
    if (m->lora) /* frozen head: dlnf += dlogits @ lm_head only */
        lora_frozen_dinp(a->dlnf + (size_t)r0 * C, rows, m->w.lm_head, n, C, V, 0, 1);
    else
        lmhead_backward(a->dlnf + (size_t)r0 * C, m->g.lm_head, rows, a->lnf + (size_t)r0 * C,
                        m->w.lm_head, n, C, V);
}

void gpt_lm_logits(GPT *m, int row0, int n, float *out) {
    check_head_call(m, GPT_HEAD_LM, "gpt_lm_logits", m->acts ? m->acts->fwd_B : 0,
                    m->acts ? m->acts->fwd_T : 0);
    struct GPTActs *a = m->acts;
    if (row0 < 0 || n < 1 || row0 + n > a->fwd_B * a->fwd_T)
        fatal("gpt_lm_logits: rows [%d, %d) outside the last forward's %d rows", row0, row0 + n,
              a->fwd_B * a->fwd_T);
    int C = m->config.n_embd;
    lmhead_forward(out, a->lnf + (size_t)row0 * C, m->w.lm_head, n, C, m->config.vocab_size);
}

void gpt_lm_backward(GPT *m, const float *dlogprobs, const float *dentropy, int B, int T) {
    check_head_call(m, GPT_HEAD_LM, "gpt_lm_backward", B, T);
    backward_begin(m, "gpt_lm_backward");
    const GPTConfig *c = &m->config;
    int V = c->vocab_size, C = c->n_embd, N = B * T;
    struct GPTActs *a = m->acts;
    memset(a->dlnf, 0, (size_t)N * C * sizeof(float));
    /* the forward's mode, whatever m->lm_chunk_bytes says now (m->logits is sized for it) */
    if (a->lm_chunk == 0) {
        /* the forward's logits are all there: dlogits replace them in place */
        for (int r = 0; r < a->nruns; r++) {
            int s0 = a->runs[2 * r];
            lm_rows_backward(m, m->logits + (size_t)s0 * V, s0, a->runs[2 * r + 1] - s0,
                             dlogprobs, dentropy);
        }
    } else {
        /* each chunk's logits again, from the final hidden states (the forward's bits) */
        int R = a->lm_chunk;
        for (int r = 0; r < a->nruns; r++)
            for (int r0 = a->runs[2 * r], e = a->runs[2 * r + 1]; r0 < e; r0 += R) {
                int n = e - r0 < R ? e - r0 : R;
                lmhead_forward(m->logits, a->lnf + (size_t)r0 * C, m->w.lm_head, n, C, V);
                lm_rows_backward(m, m->logits, r0, n, dlogprobs, dentropy);
            }
    }
    trunk_backward(m, B, T);
    a->head_fwd = 0;
}

void gpt_score_forward(GPT *m, const int *lengths, int B, int T) {
    check_head_call(m, GPT_HEAD_SCORE, "gpt_score_forward", B, T);
    int C = m->config.n_embd;
    struct GPTActs *a = m->acts;
    for (int b = 0; b < B; b++) {
        if (lengths[b] < 1 || lengths[b] > T)
            fatal("gpt_score_forward: lengths[%d] = %d is outside [1, %d]", b, lengths[b], T);
        a->lengths[b] = lengths[b];
        rowdot_forward(m->scores + b, a->lnf + ((size_t)b * T + lengths[b] - 1) * C, m->w.head_w,
                       NULL, 1, C);
    }
    a->head_fwd = 1;
}

void gpt_score_backward(GPT *m, const float *dscores, int B, int T) {
    check_head_call(m, GPT_HEAD_SCORE, "gpt_score_backward", B, T);
    backward_begin(m, "gpt_score_backward");
    int C = m->config.n_embd;
    struct GPTActs *a = m->acts;
    memset(a->dlnf, 0, (size_t)B * T * C * sizeof(float));
    for (int b = 0; b < B; b++) {
        size_t row = ((size_t)b * T + a->lengths[b] - 1) * C;
        rowdot_backward(a->dlnf + row, m->g.head_w, NULL, dscores + b, a->lnf + row, m->w.head_w, 1, C);
    }
    trunk_backward(m, B, T);
    a->head_fwd = 0;
}

void gpt_value_forward(GPT *m, int B, int T) {
    check_head_call(m, GPT_HEAD_VALUE, "gpt_value_forward", B, T);
    ASSERT(m->w.head_w); /* a borrowed trunk's head is set by lora_attach_value_head */
    rowdot_forward(m->values, m->acts->lnf, m->w.head_w, m->w.head_b, B * T, m->config.n_embd);
    m->acts->head_fwd = 1;
}

void gpt_value_backward(GPT *m, const float *dvalues, int B, int T) {
    check_head_call(m, GPT_HEAD_VALUE, "gpt_value_backward", B, T);
    backward_begin(m, "gpt_value_backward");
    int C = m->config.n_embd;
    struct GPTActs *a = m->acts;
    memset(a->dlnf, 0, (size_t)B * T * C * sizeof(float));
    rowdot_backward(a->dlnf, m->g.head_w, m->g.head_b, dvalues, a->lnf, m->w.head_w, B * T, C);
    trunk_backward(m, B, T);
    a->head_fwd = 0;
}

// ----------------------------------------------------------------------------
// KV cache and the decoding path

#define CACHE_CHUNK_ROWS 256 /* rows per internal pass: bounds the prefill scratch */

struct GPTCache {
    int B, T, R;       /* slots, tokens per slot, rows per pass */
    float *k, *v;      /* (L, B, NH, T, hs) */
    int *len;          /* (B) tokens in each slot */
    /* per-pass scratch, R rows */
    int *slot, *pos, *tok, *emit;
    float *x, *ln, *qkv, *atty, *proj, *fch, *fch_gelu, *mean, *rstd; /* (R, width) */
    float *lnf;        /* (R, C) final LayerNorm of the rows that emit logits */
    float *scores;     /* (score_slots, T): one attention-score row per thread */
    int score_slots;
    float *logits;     /* (B, V) */
    /* panel-major copies of every layer's four linear weights (ops.h matmul_pack_*), made
     * by a prefill (see GPT.weights_version): decoding reads the trunk once per token step,
     * and packed it streams; float, or uint16_t bfloat16 when pk_bf16; NULL when neither
     * m->decode_packed nor m->decode_bf16 was set at gpt_cache_reserve */
    void *packed;
    int pk_bf16;                /* m->decode_bf16 at the reserve: 0 fp32, 1 bf16, 2 bf16 dot */
    uint32_t *xpairs;           /* pk_bf16 2: a pass's inputs as bf16 pairs, (R, widest / 2) */
    int pk_has[4];              /* which of the four are in the copy (decode_linears) */
    size_t pk_layer, pk_off[4]; /* elements per layer; offset of each of the four */
    /* the LM head's (V,C) weight in the same panels (matmul_pack_cols, fp32 or bf16 like
     * the trunk): a token step's logits through the trunk's kernel, the weights streamed */
    void *head_pk;
    int64_t packed_version;     /* m->weights_version of the packed copy; -1: none yet */
    int64_t packs;              /* gpt_cache_pack fills of the copy, kept across re-reserves */
    int64_t rows_run;           /* tokens run through the network since gpt_cache_begin */
    GPTCacheRun *runs;          /* (B) gpt_cache_prefill's runs */
    int *row_run, *row_t;       /* (R) each staged row's run and its index in the run */
    struct CacheScore *score;   /* gpt_cache_score's state (its first call allocates it) */
};

/* What gpt_cache_score asked for, and its head scratch (allocated on its first call). */
#define CACHE_SCORE_ROWS 64 /* LM-head rows per block: 64 x V floats of logits */
struct CacheScore {
    int active; /* inside a gpt_cache_score call */
    const GPTCacheRun *runs;
    const int *const *targets;
    float *const *lp;
    float *scores;
    float *lg, *lp_blk, *ent, *lse; /* (CACHE_SCORE_ROWS, V), then 3 x (CACHE_SCORE_ROWS) */
    int *tg, *blk_row;              /* (CACHE_SCORE_ROWS) targets; the block's pass rows */
};

static void cache_free(struct GPTCache *c) {
    if (!c) return;
    free(c->len), free(c->slot), free(c->pos), free(c->tok), free(c->emit), free(c->runs);
    free(c->row_run), free(c->row_t);
    if (c->score) free(c->score->lg), free(c->score->lp_blk), free(c->score->tg), free(c->score);
    float *bufs[] = {c->k,    c->v,    c->x,    c->ln,   c->qkv,  c->atty,   c->proj,
                     c->fch,  c->fch_gelu, c->mean, c->rstd, c->lnf, c->scores, c->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(c->packed), free(c->head_pk), free(c->xpairs);
    free(c);
}

/* One linear layer that decoding reads: weight (GPT-2 (IC,OC), Llama (OC,IC)), bias
 * (or NULL), sizes. */
typedef struct {
    const float *w, *b;
    int IC, OC;
} DecodeLinear;

/* Layer l's four decode linears, in the order of the packed copy: GPT-2 attn, attn_proj,
 * fc, fc_proj; Llama qkv, o, gate_up, down. */
static void decode_linears(const GPT *m, int l, DecodeLinear d[4]) {
    const GPTBlock *w = &m->w.h[l];
    int C = m->config.n_embd;
    if (m->config.family == GPT_FAMILY_LLAMA) {
        Widths wd = model_widths(&m->config);
        d[0] = (DecodeLinear){w->qkv_w, w->qkv_b, C, wd.QKVW};
        d[1] = (DecodeLinear){w->o_w, NULL, wd.QW, C};
        d[2] = (DecodeLinear){w->gate_up_w, NULL, C, wd.FW};
        d[3] = (DecodeLinear){w->down_w, NULL, wd.FGW, C};
        return;
    }
    d[0] = (DecodeLinear){w->attn_w, w->attn_b, C, 3 * C};
    d[1] = (DecodeLinear){w->attn_proj_w, w->attn_proj_b, C, C};
    d[2] = (DecodeLinear){w->fc_w, w->fc_b, C, 4 * C};
    d[3] = (DecodeLinear){w->fc_proj_w, w->fc_proj_b, 4 * C, C};
}

/* Can linear d go into the packed copy? GPT-2's OC % 16 edge columns are read in place
 * (the (IC,OC) layout the kernel expects); Llama's (OC,IC) layout has no such edge path,
 * so a Llama linear with OC % 16 != 0 stays in place (no preset has one). */
static int decode_packable(const GPT *m, const DecodeLinear *d) {
    return m->config.family != GPT_FAMILY_LLAMA || d->OC % 16 == 0;
}

void gpt_cache_reserve(GPT *m, int B, int T) {
    const GPTConfig *cf = &m->config;
    ASSERT(B >= 1 && T >= 1);
    if (T > cf->max_seq_len)
        fatal("gpt_cache_reserve: %d tokens per sequence exceed the model's max_seq_len %d", T,
              cf->max_seq_len);
    /* a bf16 decode copy is a packed one */
    int bf16 = m->decode_bf16, packed = m->decode_packed != 0 || bf16;
    if (bf16 == 2 && !ops_bf16_dot_supported())
        fatal("gpt_cache_reserve: bf16 dot-product decoding needs AVX512-BF16 (and the "
              "x86-64-v4 copy of the library); this CPU has not got it: decode with the "
              "widening bf16 kernels instead (gen.bf16_dot = off or auto)");
    struct GPTCache *old = m->cache;
    if (old && B <= old->B && T <= old->T && (old->packed != NULL) == packed &&
        old->pk_bf16 == bf16)
        return;
    if (old && B < old->B) B = old->B;
    if (old && T < old->T) T = old->T;
    int64_t packs = old ? old->packs : 0;
    cache_free(old);
    struct GPTCache *c = xcalloc(1, sizeof *c);
    c->packs = packs;
    size_t L = (size_t)cf->n_layer, C = (size_t)cf->n_embd, V = (size_t)cf->vocab_size;
    int R = CACHE_CHUNK_ROWS > B ? CACHE_CHUNK_ROWS : B;
    Widths wd = model_widths(cf);
    c->B = B, c->T = T, c->R = R;
    /* per layer and slot: NKV (GPT-2: NH) heads of T x hd, i.e. KW floats per position */
    c->k = xalloc_floats(L * (size_t)B * (size_t)T * wd.KW);
    c->v = xalloc_floats(L * (size_t)B * (size_t)T * wd.KW);
    c->len = xcalloc((size_t)B, sizeof(int));
    c->runs = xcalloc((size_t)B, sizeof(GPTCacheRun));
    c->slot = xcalloc((size_t)R, sizeof(int));
    c->pos = xcalloc((size_t)R, sizeof(int));
    c->tok = xcalloc((size_t)R, sizeof(int));
    c->emit = xcalloc((size_t)R, sizeof(int));
    c->row_run = xcalloc((size_t)R, sizeof(int));
    c->row_t = xcalloc((size_t)R, sizeof(int));
    c->x = xalloc_floats((size_t)R * C);
    c->ln = xalloc_floats((size_t)R * C);
    c->qkv = xalloc_floats((size_t)R * wd.QKVW);
    c->atty = xalloc_floats((size_t)R * wd.QW);
    c->proj = xalloc_floats((size_t)R * C);
    c->fch = xalloc_floats((size_t)R * wd.FW);
    c->fch_gelu = xalloc_floats((size_t)R * wd.FGW);
    c->mean = xalloc_floats((size_t)R);
    /* (R, NH): Llama's per-head q/k RMSNorm uses it too */
    c->rstd = xalloc_floats((size_t)R * (size_t)(cf->n_head + 1));
    c->lnf = xalloc_floats((size_t)R * C);
    c->score_slots = ops_blas_threads() < 1 ? 1 : ops_blas_threads();
    c->scores = xalloc_floats((size_t)c->score_slots * (size_t)T);
    c->logits = xalloc_floats((size_t)B * V);
    if (packed) {
        DecodeLinear d[4];
        decode_linears(m, 0, d); /* every layer has the same shapes */
        for (int i = 0; i < 4; i++) {
            c->pk_has[i] = decode_packable(m, &d[i]);
            c->pk_off[i] = c->pk_layer;
            if (c->pk_has[i]) c->pk_layer += matmul_packed_floats(d[i].IC, d[i].OC);
        }
        c->pk_bf16 = bf16;
        /* touched here once, reused by every prefill; 2 MB pages (xalloc_floats), since a
         * token step streams all of it (124M at batch 8, Zen 3 VM: 1.1x) */
        size_t hn = matmul_packed_floats((int)C, (int)V);
        c->packed = xalloc_floats(bf16 ? (L * c->pk_layer + 1) / 2 : L * c->pk_layer);
        c->head_pk = xalloc_floats(bf16 ? (hn + 1) / 2 : hn);
        if (bf16 == 2) { /* the widest input of a linear or the head */
            int wide = (int)C;
            for (int i = 0; i < 4; i++) wide = d[i].IC > wide ? d[i].IC : wide;
            c->xpairs = xcalloc((size_t)R * (size_t)((wide + 1) / 2), sizeof(uint32_t));
        }
    }
    c->packed_version = -1;
    m->cache = c;
}

typedef struct {
    GPT *m;
    const float *kl, *vl; /* this layer's K and V caches */
    int n;
} CacheAttJob;

/* Rows [n part / nparts, n (part+1) / nparts) attend to their slots, with score row
 * `part`. Each row runs the same fixed-order attention_row_forward on any thread. */
static void cache_attention_part(void *p, int part, int nparts) {
    const CacheAttJob *j = p;
    struct GPTCache *c = j->m->cache;
    int C = j->m->config.n_embd, NH = j->m->config.n_head;
    size_t slot_stride = (size_t)NH * c->T * (C / NH);
    int lo = (int)((long long)j->n * part / nparts), hi = (int)((long long)j->n * (part + 1) / nparts);
    for (int i = lo; i < hi; i++)
        attention_row_forward(c->atty + (size_t)i * C, c->scores + (size_t)part * c->T,
                              c->qkv + (size_t)i * 3 * C, j->kl + (size_t)c->slot[i] * slot_stride,
                              j->vl + (size_t)c->slot[i] * slot_stride, c->pos[i] + 1, c->T, C, NH);
}

/* Below this many multiply-adds the attention of a pass stays on the calling thread. */
#define CACHE_ATT_PAR_MIN (1 << 16)

static void cache_attention(GPT *m, int n, const float *kl, const float *vl) {
    struct GPTCache *c = m->cache;
    CacheAttJob j = {m, kl, vl, n};
    double work = 0;
    for (int i = 0; i < n; i++) work += 2.0 * (c->pos[i] + 1) * m->config.n_embd;
    int parts = n < c->score_slots ? n : c->score_slots;
    if (work < CACHE_ATT_PAR_MIN || parts < 2) cache_attention_part(&j, 0, 1);
    else ops_parallel(cache_attention_part, &j, parts);
}

/* Run the n (<= R) rows staged in c->slot/pos/tok through the network: their keys and
 * values go into the cache, then each row attends to its own slot's positions 0..pos.
 * Rows with c->emit[i] set get logits, written to consecutive rows of c->logits from
 * out_row on. Every kernel is row-wise deterministic (see gpt.h). */
static void llama_cache_pass(GPT *m, int n, int out_row);

/* out (n,OC) = inp (n,IC) @ w^T (+ bias): the batch-invariant kernel on an (out, in)
 * weight, the bias added after (each row on its own) */
static void linear_rows(float *out, const float *inp, const float *w, const float *bias, int n,
                        int IC, int OC) {
    lmhead_forward_rows(out, inp, w, n, IC, OC);
    if (!bias) return;
    for (int i = 0; i < n; i++)
        for (int o = 0; o < OC; o++) out[(size_t)i * OC + o] += bias[o];
}

/* out (n,OC) = inp (n,IC) through layer l's decode linear i (decode_linears): from the
 * packed copy (fp32 or bf16) when it holds it, else in place — GPT-2 with the same panel
 * kernel (the same bits as the fp32 copy), Llama with the (out, in) row kernel (its own
 * summation order). */
static void cache_linear(GPT *m, int l, int i, float *out, const float *inp, int n) {
    struct GPTCache *c = m->cache;
    DecodeLinear d[4];
    decode_linears(m, l, d);
    const DecodeLinear *dl = &d[i];
    int llama = m->config.family == GPT_FAMILY_LLAMA;
    /* GPT-2's edge columns (OC % 16) come from its (IC,OC) weight; Llama packs none */
    const float *edge = llama ? NULL : dl->w;
    if (c->packed && c->pk_has[i]) {
        size_t off = (size_t)l * c->pk_layer + c->pk_off[i];
        if (c->pk_bf16 == 2)
            matmul_forward_rows_packed_bf16dot(out, inp, c->xpairs,
                                               (const uint16_t *)c->packed + off, edge, dl->b,
                                               n, dl->IC, dl->OC);
        else if (c->pk_bf16)
            matmul_forward_rows_packed_bf16(out, inp, (const uint16_t *)c->packed + off, edge,
                                            dl->b, n, dl->IC, dl->OC);
        else
            matmul_forward_rows_packed(out, inp, (const float *)c->packed + off, edge, dl->b, n,
                                       dl->IC, dl->OC);
    } else if (llama) {
        linear_rows(out, inp, dl->w, dl->b, n, dl->IC, dl->OC);
    } else {
        matmul_forward_rows_packed(out, inp, NULL, dl->w, dl->b, n, dl->IC, dl->OC);
    }
    /* LoRA: the adapters on top of the frozen base's copy (lora.h), batch-invariant */
    if (m->lora) lora_proj_forward_rows(m->lora, l, i, inp, n, out, dl->OC);
}

/* dst (ne,V) = the logits of the ne final-norm rows lnf (ne,C): from the decode copy's
 * packed head (fp32 or bf16) when there is a copy, else from the (V,C) weight in place */
static void cache_head(GPT *m, float *dst, const float *lnf, int ne) {
    struct GPTCache *c = m->cache;
    int C = m->config.n_embd, V = m->config.vocab_size;
    if (c->head_pk && c->pk_bf16 == 2)
        lmhead_forward_rows_packed_bf16dot(dst, lnf, c->xpairs, c->head_pk, m->w.lm_head, ne, C,
                                           V);
    else if (c->head_pk && c->pk_bf16)
        lmhead_forward_rows_packed_bf16(dst, lnf, c->head_pk, m->w.lm_head, ne, C, V);
    else if (c->head_pk) lmhead_forward_rows_packed(dst, lnf, c->head_pk, m->w.lm_head, ne, C, V);
    else lmhead_forward_rows(dst, lnf, m->w.lm_head, ne, C, V);
}

/* gpt_cache_score's outputs for the pass's ne emitting rows (their final norms in
 * c->lnf, in row order): the score head on each run's last row; the log-probs of the
 * rows with a target, the LM head CACHE_SCORE_ROWS rows at a time. */
static void cache_score_rows(GPT *m, int n, int ne) {
    struct GPTCache *c = m->cache;
    struct CacheScore *sc = c->score;
    int C = m->config.n_embd, V = m->config.vocab_size, k = 0, nb = 0;
    for (int i = 0; i < n; i++) {
        if (!c->emit[i]) continue;
        int r = c->row_run[i], t = c->row_t[i];
        const float *h = c->lnf + (size_t)k * C;
        if (sc->scores && t == sc->runs[r].count - 1)
            rowdot_forward(&sc->scores[r], h, m->w.head_w, NULL, 1, C);
        int tg = sc->targets ? sc->targets[r][t] : -1;
        if (tg >= 0) {
            memmove(c->lnf + (size_t)nb * C, h, (size_t)C * sizeof(float)); /* nb <= k */
            sc->tg[nb] = tg, sc->blk_row[nb++] = i;
        }
        k++;
        if (nb == CACHE_SCORE_ROWS || (k == ne && nb > 0)) {
            cache_head(m, sc->lg, c->lnf, nb);
            logprob_forward(sc->lp_blk, sc->ent, sc->lse, sc->lg, sc->tg, m->temperature, nb, V);
            for (int j = 0; j < nb; j++) {
                int row = sc->blk_row[j];
                sc->lp[c->row_run[row]][c->row_t[row]] = sc->lp_blk[j];
            }
            nb = 0;
        }
    }
}

/* The pass's outputs for its ne emitting rows: logits to rows out_row.. of c->logits,
 * or gpt_cache_score's. */
static void cache_emit(GPT *m, int n, int out_row, int ne) {
    struct GPTCache *c = m->cache;
    if (ne == 0) return;
    if (c->score && c->score->active) cache_score_rows(m, n, ne);
    else cache_head(m, c->logits + (size_t)out_row * m->config.vocab_size, c->lnf, ne);
}

static void cache_pass(GPT *m, int n, int out_row) {
    m->cache->rows_run += n;
    if (m->config.family == GPT_FAMILY_LLAMA) {
        llama_cache_pass(m, n, out_row);
        return;
    }
    const GPTConfig *cf = &m->config;
    struct GPTCache *c = m->cache;
    int C = cf->n_embd, NH = cf->n_head, hs = C / NH, L = cf->n_layer;
    size_t slot_stride = (size_t)NH * c->T * hs, layer_stride = (size_t)c->B * slot_stride;
    for (int i = 0; i < n; i++) {
        const float *we = m->w.wte + (size_t)c->tok[i] * C, *pe = m->w.wpe + (size_t)c->pos[i] * C;
        float *x = c->x + (size_t)i * C;
        for (int j = 0; j < C; j++) x[j] = we[j] + pe[j];
    }
    for (int l = 0; l < L; l++) {
        const GPTBlock *w = &m->w.h[l];
        float *kl = c->k + (size_t)l * layer_stride, *vl = c->v + (size_t)l * layer_stride;
        layernorm_forward(c->ln, c->mean, c->rstd, c->x, w->ln_1_w, w->ln_1_b, n, C);
        cache_linear(m, l, 0, c->qkv, c->ln, n);
        for (int i = 0; i < n; i++) {
            const float *row = c->qkv + (size_t)i * 3 * C;
            float *kd = kl + (size_t)c->slot[i] * slot_stride + (size_t)c->pos[i] * hs;
            float *vd = vl + (size_t)c->slot[i] * slot_stride + (size_t)c->pos[i] * hs;
            for (int h = 0; h < NH; h++) {
                memcpy(kd + (size_t)h * c->T * hs, row + C + (size_t)h * hs, (size_t)hs * sizeof(float));
                memcpy(vd + (size_t)h * c->T * hs, row + 2 * C + (size_t)h * hs, (size_t)hs * sizeof(float));
            }
        }
        cache_attention(m, n, kl, vl);
        cache_linear(m, l, 1, c->proj, c->atty, n);
        residual_forward(c->x, c->x, c->proj, (size_t)n * C);
        layernorm_forward(c->ln, c->mean, c->rstd, c->x, w->ln_2_w, w->ln_2_b, n, C);
        cache_linear(m, l, 2, c->fch, c->ln, n);
        gelu_forward(c->fch_gelu, c->fch, (size_t)n * 4 * C);
        cache_linear(m, l, 3, c->proj, c->fch_gelu, n);
        residual_forward(c->x, c->x, c->proj, (size_t)n * C);
    }
    int ne = 0;
    for (int i = 0; i < n; i++) {
        if (!c->emit[i]) continue;
        layernorm_forward(c->lnf + (size_t)ne * C, c->mean, c->rstd, c->x + (size_t)i * C,
                          m->w.ln_f_w, m->w.ln_f_b, 1, C);
        ne++;
    }
    cache_emit(m, n, out_row, ne);
}

/* Llama: rows [n part / nparts, n (part+1) / nparts) attend to their slots (NKV heads of
 * T x hd per slot), with score row `part`. */
static void llama_cache_attention_part(void *p, int part, int nparts) {
    const CacheAttJob *j = p;
    struct GPTCache *c = j->m->cache;
    const GPTConfig *cf = &j->m->config;
    Widths wd = model_widths(cf);
    size_t slot_stride = (size_t)wd.KW * c->T;
    int lo = (int)((long long)j->n * part / nparts), hi = (int)((long long)j->n * (part + 1) / nparts);
    for (int i = lo; i < hi; i++)
        gqa_attention_row_forward(c->atty + (size_t)i * wd.QW, c->scores + (size_t)part * c->T,
                                  c->qkv + (size_t)i * wd.QKVW,
                                  j->kl + (size_t)c->slot[i] * slot_stride,
                                  j->vl + (size_t)c->slot[i] * slot_stride, c->pos[i] + 1, c->T,
                                  cf->n_head, cf->n_kv_head, wd.hd);
}

/* cache_pass for the Llama family: the same row-wise pipeline as llama_block_forward, each
 * kernel batch-invariant; rows are rotated at their own cache positions. */
static void llama_cache_pass(GPT *m, int n, int out_row) {
    const GPTConfig *cf = &m->config;
    struct GPTCache *c = m->cache;
    Widths wd = model_widths(cf);
    int C = cf->n_embd, NH = cf->n_head, NKV = cf->n_kv_head, hd = wd.hd;
    float eps = cf->norm_eps;
    size_t slot_stride = (size_t)wd.KW * c->T, layer_stride = (size_t)c->B * slot_stride;
    embedding_forward(c->x, c->tok, m->w.wte, n, C);
    for (int l = 0; l < cf->n_layer; l++) {
        const GPTBlock *w = &m->w.h[l];
        float *kl = c->k + (size_t)l * layer_stride, *vl = c->v + (size_t)l * layer_stride;
        rmsnorm_forward(c->ln, c->rstd, c->x, w->ln_1_w, eps, n, 1, C, C);
        cache_linear(m, l, 0, c->qkv, c->ln, n);
        if (cf->qk_norm) {
            rmsnorm_forward(c->qkv, c->rstd, c->qkv, w->q_norm_w, eps, n, NH, hd, wd.QKVW);
            rmsnorm_forward(c->qkv + wd.QW, c->rstd, c->qkv + wd.QW, w->k_norm_w, eps, n, NKV, hd,
                            wd.QKVW);
        }
        rope_forward(c->qkv, c->qkv, m->rope_freq, c->pos, n, NH + NKV, hd, wd.QKVW);
        for (int i = 0; i < n; i++) {
            const float *row = c->qkv + (size_t)i * wd.QKVW;
            float *kd = kl + (size_t)c->slot[i] * slot_stride + (size_t)c->pos[i] * hd;
            float *vd = vl + (size_t)c->slot[i] * slot_stride + (size_t)c->pos[i] * hd;
            for (int h = 0; h < NKV; h++) {
                memcpy(kd + (size_t)h * c->T * hd, row + wd.QW + (size_t)h * hd, (size_t)hd * sizeof(float));
                memcpy(vd + (size_t)h * c->T * hd, row + wd.QW + wd.KW + (size_t)h * hd,
                       (size_t)hd * sizeof(float));
            }
        }
        CacheAttJob j = {m, kl, vl, n};
        double work = 0;
        for (int i = 0; i < n; i++) work += 2.0 * (c->pos[i] + 1) * wd.QW;
        int parts = n < c->score_slots ? n : c->score_slots;
        if (work < CACHE_ATT_PAR_MIN || parts < 2) llama_cache_attention_part(&j, 0, 1);
        else ops_parallel(llama_cache_attention_part, &j, parts);
        cache_linear(m, l, 1, c->proj, c->atty, n);
        residual_forward(c->x, c->x, c->proj, (size_t)n * C);
        rmsnorm_forward(c->ln, c->rstd, c->x, w->ln_2_w, eps, n, 1, C, C);
        cache_linear(m, l, 2, c->fch, c->ln, n);
        swiglu_forward(c->fch_gelu, c->fch, n, cf->d_ff);
        cache_linear(m, l, 3, c->proj, c->fch_gelu, n);
        residual_forward(c->x, c->x, c->proj, (size_t)n * C);
    }
    int ne = 0;
    for (int i = 0; i < n; i++) {
        if (!c->emit[i]) continue;
        rmsnorm_forward(c->lnf + (size_t)ne * C, c->rstd, c->x + (size_t)i * C, m->w.ln_f_w, eps, 1,
                        1, C, C);
        ne++;
    }
    cache_emit(m, n, out_row, ne);
}

static void cache_check_token(const GPT *m, int tok, const char *fn, int b, int t) {
    if (tok < 0 || tok >= m->config.vocab_size)
        fatal("%s: token %d (sequence %d, position %d) is outside the vocabulary [0, %d)", fn, tok,
              b, t, m->config.vocab_size);
}

void gpt_cache_begin(GPT *m) {
    struct GPTCache *c = m->cache;
    if (!c) fatal("gpt_cache_begin: no cache reserved (call gpt_cache_reserve first)");
    for (int b = 0; b < c->B; b++) c->len[b] = 0;
    c->rows_run = 0;
    /* the weights may have changed since the last generation (an optimizer step, a weight
     * sync): pack them again (one pass over the trunk, small next to the token steps)
     * unless the caller labels them as the ones already packed. The label covers m->params
     * only: LoRA adapters are not in the copy (cache_linear reads them in place), so a new
     * adapter buffer on the same base keeps the label and skips the pass. */
    int repack = m->weights_version < 0 || m->weights_version != c->packed_version;
    c->packed_version = m->weights_version;
    if (repack) gpt_cache_pack(m);
}

void gpt_cache_pack(GPT *m) {
    struct GPTCache *c = m->cache;
    if (!c) fatal("gpt_cache_pack: no cache reserved (call gpt_cache_reserve first)");
    if (!c->packed) return;
    c->packs++;
    int llama = m->config.family == GPT_FAMILY_LLAMA;
    for (int l = 0; l < m->config.n_layer; l++) {
        DecodeLinear d[4];
        decode_linears(m, l, d);
        for (int i = 0; i < 4; i++) {
            if (!c->pk_has[i]) continue;
            size_t off = (size_t)l * c->pk_layer + c->pk_off[i];
            uint16_t *h = (uint16_t *)c->packed + off;
            float *f = (float *)c->packed + off;
            /* Llama's (out, in) weights are transposed into the panels */
            if (c->pk_bf16 && llama) matmul_pack_cols_bf16(h, d[i].w, d[i].IC, d[i].OC);
            else if (c->pk_bf16) matmul_pack_rows_bf16(h, d[i].w, d[i].IC, d[i].OC);
            else if (llama) matmul_pack_cols(f, d[i].w, d[i].IC, d[i].OC);
            else matmul_pack_rows(f, d[i].w, d[i].IC, d[i].OC);
        }
    }
    int C = m->config.n_embd, V = m->config.vocab_size;
    if (c->pk_bf16) matmul_pack_cols_bf16(c->head_pk, m->w.lm_head, C, V);
    else matmul_pack_cols(c->head_pk, m->w.lm_head, C, V);
}

int64_t gpt_cache_packs(const GPT *m) {
    return m->cache ? m->cache->packs : 0;
}

/* Abort unless the n runs fit the cache: distinct slots, positions inside the slot's
 * sequence and the reserved T, tokens in the vocabulary. */
static void cache_check_runs(const GPT *m, int n, const GPTCacheRun *runs, const char *fn) {
    const struct GPTCache *c = m->cache;
    if (!c || n < 1 || n > c->B) fatal("%s: %d runs exceed the reserved cache (%d slots)", fn, n, c ? c->B : 0);
    for (int i = 0; i < n; i++) {
        const GPTCacheRun *r = &runs[i];
        if (r->slot < 0 || r->slot >= c->B) fatal("%s: slot %d outside [0, %d)", fn, r->slot, c->B);
        if (r->start < 0 || r->start > c->len[r->slot])
            fatal("%s: run into slot %d starts at %d; the slot holds %d tokens", fn, r->slot,
                  r->start, c->len[r->slot]);
        if (r->count < 1 || r->count > c->T - r->start)
            fatal("%s: run into slot %d has %d tokens from position %d; the slots hold %d", fn,
                  r->slot, r->count, r->start, c->T);
        for (int t = 0; t < r->count; t++) cache_check_token(m, r->tokens[t], fn, r->slot, r->start + t);
        for (int j = 0; j < i; j++)
            if (runs[j].slot == r->slot) fatal("%s: slot %d appears twice", fn, r->slot);
    }
}

/* Rows are staged run after run and sent through the network R at a time; a run cut by a
 * pass boundary continues in the next pass (its earlier positions are cached). Without
 * c->score each run's last row emits logits; with it, the rows gpt_cache_score wants. */
static void cache_run_rows(GPT *m, int n, const GPTCacheRun *runs) {
    struct GPTCache *c = m->cache;
    const struct CacheScore *sc = c->score && c->score->active ? c->score : NULL;
    int rows = 0, out_row = 0, emitted = 0;
    for (int i = 0; i < n; i++) {
        const GPTCacheRun *r = &runs[i];
        for (int t = 0; t < r->count; t++) {
            int last = t == r->count - 1;
            c->slot[rows] = r->slot, c->pos[rows] = r->start + t, c->tok[rows] = r->tokens[t];
            c->row_run[rows] = i, c->row_t[rows] = t;
            c->emit[rows] = sc ? (sc->scores && last) || (sc->targets && sc->targets[i][t] >= 0)
                               : last;
            emitted += c->emit[rows];
            if (++rows == c->R) {
                cache_pass(m, rows, out_row);
                out_row += emitted;
                rows = emitted = 0;
            }
        }
        c->len[r->slot] = r->start + r->count;
    }
    if (rows > 0) cache_pass(m, rows, out_row);
}

const float *gpt_cache_run(GPT *m, int n, const GPTCacheRun *runs) {
    cache_check_runs(m, n, runs, "gpt_cache_run");
    cache_run_rows(m, n, runs);
    return m->cache->logits;
}

void gpt_cache_score(GPT *m, int n, const GPTCacheRun *runs, const int *const *targets,
                     float *const *lp, float *scores) {
    cache_check_runs(m, n, runs, "gpt_cache_score");
    struct GPTCache *c = m->cache;
    int V = m->config.vocab_size;
    if (scores && !m->w.head_w)
        fatal("gpt_cache_score: scores asked of a model without a score head");
    if ((targets == NULL) != (lp == NULL)) fatal("gpt_cache_score: targets and lp go together");
    if (targets) {
        if (!(m->temperature > 0.0f) || !isfinite(m->temperature))
            fatal("gpt_cache_score: temperature %g must be a positive finite number",
                  (double)m->temperature);
        for (int i = 0; i < n; i++)
            for (int t = 0; t < runs[i].count; t++)
                if (targets[i][t] >= V)
                    fatal("gpt_cache_score: target %d (run %d, row %d) is outside the "
                          "vocabulary [0, %d)", targets[i][t], i, t, V);
    }
    if (!c->score) {
        struct CacheScore *sc = c->score = xcalloc(1, sizeof *sc);
        sc->lg = xalloc_floats((size_t)CACHE_SCORE_ROWS * V);
        sc->lp_blk = xalloc_floats(3 * CACHE_SCORE_ROWS);
        sc->ent = sc->lp_blk + CACHE_SCORE_ROWS, sc->lse = sc->ent + CACHE_SCORE_ROWS;
        sc->tg = xcalloc(2 * CACHE_SCORE_ROWS, sizeof(int));
        sc->blk_row = sc->tg + CACHE_SCORE_ROWS;
    }
    struct CacheScore *sc = c->score;
    sc->runs = runs, sc->targets = targets, sc->lp = lp, sc->scores = scores;
    sc->active = 1;
    cache_run_rows(m, n, runs);
    sc->active = 0;
}

void gpt_cache_copy_slot(GPT *m, int dst, int src, int ntok) {
    struct GPTCache *c = m->cache;
    if (!c || dst < 0 || dst >= c->B || src < 0 || src >= c->B || dst == src)
        fatal("gpt_cache_copy_slot: slots %d <- %d: must be distinct and in [0, %d)", dst, src,
              c ? c->B : 0);
    if (ntok < 0 || ntok > c->len[src])
        fatal("gpt_cache_copy_slot: %d tokens from slot %d, which holds %d", ntok, src, c->len[src]);
    Widths wd = model_widths(&m->config);
    /* layout (L, B, heads, T, hd): one contiguous block of ntok x hd per layer and head */
    int heads = wd.KW / wd.hd;
    size_t hd = (size_t)wd.hd, slot_stride = (size_t)wd.KW * c->T;
    size_t bytes = (size_t)ntok * hd * sizeof(float);
    for (int l = 0; l < m->config.n_layer && ntok > 0; l++) {
        size_t base = (size_t)l * c->B * slot_stride;
        for (int h = 0; h < heads; h++) {
            size_t head = (size_t)h * c->T * hd;
            memcpy(c->k + base + (size_t)dst * slot_stride + head,
                   c->k + base + (size_t)src * slot_stride + head, bytes);
            memcpy(c->v + base + (size_t)dst * slot_stride + head,
                   c->v + base + (size_t)src * slot_stride + head, bytes);
        }
    }
    c->len[dst] = ntok;
}

const float *gpt_cache_prefill(GPT *m, int B, const int *const *prompts, const int *lens) {
    struct GPTCache *c = m->cache;
    if (!c || B < 1 || B > c->B) fatal("gpt_cache_prefill: %d sequences exceed the reserved cache (%d)", B, c ? c->B : 0);
    for (int b = 0; b < B; b++) {
        if (lens[b] < 1 || lens[b] > c->T)
            fatal("gpt_cache_prefill: prompt %d has %d tokens; must be in [1, %d]", b, lens[b], c->T);
        for (int t = 0; t < lens[b]; t++) cache_check_token(m, prompts[b][t], "gpt_cache_prefill", b, t);
    }
    gpt_cache_begin(m);
    for (int b = 0; b < B; b++) c->runs[b] = (GPTCacheRun){b, 0, lens[b], prompts[b]};
    return gpt_cache_run(m, B, c->runs);
}

const float *gpt_cache_decode(GPT *m, int n, const int *slots, const int *tokens) {
    struct GPTCache *c = m->cache;
    if (!c || n < 1 || n > c->B) fatal("gpt_cache_decode: %d rows exceed the reserved cache (%d)", n, c ? c->B : 0);
    for (int i = 0; i < n; i++) {
        int b = slots[i];
        if (b < 0 || b >= c->B) fatal("gpt_cache_decode: slot %d outside [0, %d)", b, c->B);
        if (c->len[b] >= c->T)
            fatal("gpt_cache_decode: sequence in slot %d is full (%d tokens)", b, c->T);
        cache_check_token(m, tokens[i], "gpt_cache_decode", b, c->len[b]);
        for (int j = 0; j < i; j++)
            if (slots[j] == b) fatal("gpt_cache_decode: slot %d appears twice", b);
        c->slot[i] = b, c->pos[i] = c->len[b], c->tok[i] = tokens[i], c->emit[i] = 1;
    }
    cache_pass(m, n, 0);
    for (int i = 0; i < n; i++) c->len[slots[i]]++;
    return c->logits;
}

int64_t gpt_cache_rows(const GPT *m) { return m->cache ? m->cache->rows_run : 0; }

int gpt_cache_len(const GPT *m, int slot) {
    ASSERT(m->cache && slot >= 0 && slot < m->cache->B);
    return m->cache->len[slot];
}

// ----------------------------------------------------------------------------
// teardown

void gpt_free(GPT *m) {
    if (!m) return;
    acts_free(m->acts);
    cache_free(m->cache);
    outputs_free(m);
    free(m->tensors);
    free(m->rope_freq);
    if (!m->params_borrowed) free(m->params);
    free(m->grads);
    free(m->w.h);
    free(m->g.h);
    lora_free(m->lora);
    memset(m, 0, sizeof *m);
}
