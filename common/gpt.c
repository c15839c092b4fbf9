/*
 * common/gpt.c — GPT-2: the parameter table, allocation, initialisation, and the
 * forward/backward of the whole network and its heads. The per-op kernels live in
 * ops.c; this file wires them into the model described in gpt.h.
 */
#include "gpt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "util.h"

// ----------------------------------------------------------------------------
// config

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
    if (c->n_embd % c->n_head != 0)
        return errf(err, "n_embd = %d is not divisible by n_head = %d", c->n_embd, c->n_head);
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

int gpt_tensors_build(const GPTConfig *c, GPTTensor *out, int max) {
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

static int table_capacity(const GPTConfig *c) { return 2 + 12 * c->n_layer + 2 + 2; }

size_t gpt_config_num_params(const GPTConfig *c) {
    int cap = table_capacity(c);
    GPTTensor *t = xcalloc((size_t)cap, sizeof *t);
    int n = gpt_tensors_build(c, t, cap);
    size_t total = t[n - 1].offset + t[n - 1].numel;
    free(t);
    return total;
}

void gpt_weights_point(const GPT *m, float *buf, GPTWeights *w) {
    const GPTTensor *t = m->tensors;
    int L = m->config.n_layer, k = 0;
    if (!w->h) w->h = xcalloc((size_t)L, sizeof(GPTBlock));
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

void gpt_init(GPT *m, const GPTConfig *c) {
    char err[ERRBUF_LEN];
    memset(m, 0, sizeof *m);
    if (gpt_config_validate(c, err) != 0) fatal("invalid model config: %s", err);
    m->config = *c;
    int cap = table_capacity(c);
    m->tensors = xcalloc((size_t)cap, sizeof(GPTTensor));
    m->num_tensors = gpt_tensors_build(c, m->tensors, cap);
    const GPTTensor *last = &m->tensors[m->num_tensors - 1];
    m->num_params = last->offset + last->numel;
    m->params = xalloc_floats(m->num_params);
    gpt_weights_point(m, m->params, &m->w);
    m->temperature = 1.0f;
}

const GPTTensor *gpt_find_tensor(const GPT *m, const char *name) {
    for (int i = 0; i < m->num_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

void gpt_init_weights(GPT *m, uint64_t seed) {
    const GPTConfig *c = &m->config;
    Rng rng;
    rng_init(&rng, seed);
    float resid_std = 0.02f / sqrtf(2.0f * (float)c->n_layer);
    for (int i = 0; i < m->num_tensors; i++) {
        const GPTTensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        const char *nm = t->name;
        size_t len = strlen(nm);
        int is_bias = len >= 5 && strcmp(nm + len - 5, ".bias") == 0;
        int is_ln = strstr(nm, "ln_") != NULL;
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

void gpt_alloc_grads(GPT *m) {
    if (m->grads) return;
    m->grads = xalloc_floats(m->num_params);
    gpt_weights_point(m, m->grads, &m->g);
}

void gpt_zero_grad(GPT *m) {
    if (m->grads) memset(m->grads, 0, m->num_params * sizeof(float));
}
