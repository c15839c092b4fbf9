/*
 * common/lora.c — LoRA adapters (see lora.h): the adapter table, PEFT's initialisation,
 * the forward/backward of a projection's adapters on OpenBLAS, the frozen base's input
 * gradient, and merging adapters into base weights.
 */
#include "lora.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "util.h"

static const char *const GPT2_TARGETS[] = {"c_attn", "attn.c_proj", "c_fc", "mlp.c_proj"};
static const char *const LLAMA_TARGETS[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                            "gate_proj", "up_proj", "down_proj"};
/* the module path of a target under layer l's prefix */
static const char *const GPT2_PATHS[] = {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"};
static const char *const LLAMA_PATHS[] = {"self_attn.q_proj", "self_attn.k_proj",
                                          "self_attn.v_proj", "self_attn.o_proj",
                                          "mlp.gate_proj",    "mlp.up_proj", "mlp.down_proj"};

const char *const *lora_target_names(GPTFamily f, int *n) {
    if (f == GPT_FAMILY_LLAMA) {
        *n = 7;
        return LLAMA_TARGETS;
    }
    *n = 4;
    return GPT2_TARGETS;
}

int lora_targets_parse(const char *list, GPTFamily f, unsigned *mask, char *err) {
    int nt;
    const char *const *names = lora_target_names(f, &nt);
    *mask = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        if (strcmp(tok, "all-linear") == 0) {
            *mask |= (1u << nt) - 1;
            continue;
        }
        if (strcmp(tok, "default") == 0) { /* PEFT's defaults: GPT-2 c_attn; Llama q_proj, v_proj */
            *mask |= f == GPT_FAMILY_LLAMA ? (1u << 0) | (1u << 2) : 1u << 0;
            continue;
        }
        int k = -1;
        for (int i = 0; i < nt; i++)
            if (strcmp(tok, names[i]) == 0) k = i;
        if (k < 0) {
            char all[256] = "";
            for (int i = 0; i < nt; i++)
                snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", i ? ", " : "", names[i]);
            snprintf(err, ERRBUF_LEN, "lora.targets: '%s' is not a %s projection (use %s, default or all-linear)",
                     tok, gpt_family_name(f), all);
            return -1;
        }
        *mask |= 1u << k;
    }
    if (!*mask) {
        snprintf(err, ERRBUF_LEN, "lora.targets is empty: name at least one projection, default or all-linear");
        return -1;
    }
    return 0;
}

void lora_targets_format(unsigned mask, GPTFamily f, char *out, size_t cap) {
    int nt;
    const char *const *names = lora_target_names(f, &nt);
    out[0] = '\0';
    for (int i = 0; i < nt; i++)
        if (mask & (1u << i))
            snprintf(out + strlen(out), cap - strlen(out), "%s%s", out[0] ? "," : "", names[i]);
}

/* Projection, widths and fused column of target k (family's order) for config c. */
static void target_shape(const GPTConfig *c, int k, int *proj, int *in, int *out, int *col) {
    int C = c->n_embd;
    if (c->family != GPT_FAMILY_LLAMA) {
        static const int P[] = {0, 1, 2, 3};
        int ins[] = {C, C, C, 4 * C}, outs[] = {3 * C, C, 4 * C, C};
        *proj = P[k], *in = ins[k], *out = outs[k], *col = 0;
        return;
    }
    int hd = c->head_dim ? c->head_dim : C / c->n_head;
    int QW = c->n_head * hd, KW = c->n_kv_head * hd, F = c->d_ff;
    static const int P[] = {0, 0, 0, 1, 2, 2, 3};
    int ins[] = {C, C, C, QW, C, C, F}, outs[] = {QW, KW, KW, C, F, F, C};
    int cols[] = {0, QW, QW + KW, 0, 0, F, 0};
    *proj = P[k], *in = ins[k], *out = outs[k], *col = cols[k];
}

void lora_attach(GPT *m, int rank, float alpha, unsigned targets, float dropout) {
    ASSERT(rank >= 1 && !m->lora);
    const GPTConfig *c = &m->config;
    Lora *l = xcalloc(1, sizeof *l);
    int nt;
    lora_target_names(c->family, &nt);
    l->rank = rank, l->alpha = alpha, l->dropout = dropout, l->scale = alpha / (float)rank;
    l->targets = targets, l->family = c->family, l->enabled = 1;
    l->ad = xcalloc((size_t)c->n_layer * nt, sizeof(LoraAdapter));
    const char *const *paths = c->family == GPT_FAMILY_LLAMA ? LLAMA_PATHS : GPT2_PATHS;
    size_t off = 0;
    /* the sink takes a norm's weight gradient: C wide, or head_dim (Qwen3's q/k norms) */
    int maxw = c->n_embd > c->head_dim ? c->n_embd : c->head_dim;
    for (int layer = 0; layer < c->n_layer; layer++)
        for (int k = 0; k < nt; k++) {
            if (!(targets & (1u << k))) continue;
            LoraAdapter *a = &l->ad[l->num++];
            a->layer = layer, a->target = k;
            target_shape(c, k, &a->proj, &a->in, &a->out, &a->col);
            snprintf(a->name, sizeof a->name, "%s%d.%s",
                     c->family == GPT_FAMILY_LLAMA ? "model.layers." : "h.", layer, paths[k]);
            a->a_off = off, off += (size_t)rank * a->in;
            a->b_off = off, off += (size_t)a->out * rank;
            if (a->in > maxw) maxw = a->in;
        }
    l->n = off;
    l->params = xalloc_floats(off);
    l->grads = xalloc_floats(off);
    memset(l->params, 0, off * sizeof(float));
    memset(l->grads, 0, off * sizeof(float));
    l->sink = xalloc_floats((size_t)maxw + 1024);
    m->lora = l;
}

void lora_init_weights(Lora *l, uint64_t seed) {
    Rng rng;
    rng_init_keyed(&rng, seed, 0x4c6f5241u /* "LoRA" */, 0);
    for (int i = 0; i < l->num; i++) {
        const LoraAdapter *a = &l->ad[i];
        /* kaiming_uniform_(a=sqrt(5)) on (rank, in): bound = 1/sqrt(in) */
        float bound = 1.0f / sqrtf((float)a->in);
        float *A = l->params + a->a_off;
        for (size_t j = 0; j < (size_t)l->rank * a->in; j++)
            A[j] = bound * (2.0f * rng_uniform(&rng) - 1.0f);
        memset(l->params + a->b_off, 0, (size_t)a->out * l->rank * sizeof(float));
    }
}

void lora_attach_value_head(GPT *m, const float *init) {
    Lora *l = m->lora;
    ASSERT(l && l->head_n == 0 && m->config.head == GPT_HEAD_VALUE);
    size_t C = (size_t)m->config.n_embd, n = l->n + C + 1;
    float *p = xalloc_floats(n), *g = xalloc_floats(n);
    memcpy(p, l->params, l->n * sizeof(float));
    memcpy(p + l->n, init, (C + 1) * sizeof(float));
    memset(g, 0, n * sizeof(float));
    free(l->params);
    free(l->grads);
    l->params = p, l->grads = g;
    l->head_off = l->n, l->head_n = C + 1, l->n = n;
    m->w.head_w = p + l->head_off, m->w.head_b = m->w.head_w + C;
    if (m->g.ln_f_w) /* gradients already pointed (gpt_alloc_grads): the head's are real */
        m->g.head_w = g + l->head_off, m->g.head_b = m->g.head_w + C;
}

int lora_eval_begin(Lora *l) {
    if (!l) return 0;
    int train = l->train;
    l->train = 0;
    return train;
}

void lora_eval_end(Lora *l, int train) {
    if (l) l->train = train;
}

const LoraAdapter *lora_find(const Lora *l, const char *name) {
    for (int i = 0; i < l->num; i++)
        if (strcmp(l->ad[i].name, name) == 0) return &l->ad[i];
    return NULL;
}

void lora_free(Lora *l) {
    if (!l) return;
    free(l->ad);
    free(l->params);
    free(l->grads);
    free(l->u);
    free(l->g);
    free(l->xd);
    free(l->dx);
    free(l->sink);
    free(l);
}

static void scratch_reserve(Lora *l, int N) {
    if ((size_t)N <= l->cap_rows) return;
    int maxin = 1;
    for (int i = 0; i < l->num; i++)
        if (l->ad[i].in > maxin) maxin = l->ad[i].in;
    free(l->u), free(l->g), free(l->xd), free(l->dx);
    l->u = xalloc_floats((size_t)N * l->rank);
    l->g = xalloc_floats((size_t)N * l->rank);
    l->xd = l->dropout > 0.0f ? xalloc_floats((size_t)N * maxin) : NULL;
    l->dx = l->dropout > 0.0f ? xalloc_floats((size_t)N * maxin) : NULL;
    l->cap_rows = (size_t)N;
}

/* 1/(1-p) where element (n, i) of adapter idx's input is kept, 0 where dropped */
static float drop_factor(const Lora *l, int idx, int n, int i) {
    uint64_t h = rng_mix64(rng_mix64(l->drop_key ^ ((uint64_t)idx << 40)) ^
                           (((uint64_t)n << 24) | (uint64_t)i));
    double u = (double)(h >> 11) * (1.0 / 9007199254740992.0);
    return u < (double)l->dropout ? 0.0f : 1.0f / (1.0f - l->dropout);
}

/* The adapter's input: x itself, or its dropped-out copy in l->xd while training. */
static const float *adapter_input(Lora *l, int idx, const float *x, int N) {
    if (!(l->train && l->dropout > 0.0f)) return x;
    int in = l->ad[idx].in;
    for (int n = 0; n < N; n++)
        for (int i = 0; i < in; i++)
            l->xd[(size_t)n * in + i] = x[(size_t)n * in + i] * drop_factor(l, idx, n, i);
    return l->xd;
}

void lora_proj_forward(Lora *l, int layer, int proj, const float *x, int N, float *y, int ldy) {
    if (!l->enabled) return;
    scratch_reserve(l, N);
    int r = l->rank;
    for (int i = 0; i < l->num; i++) {
        const LoraAdapter *a = &l->ad[i];
        if (a->layer != layer || a->proj != proj) continue;
        const float *xd = adapter_input(l, i, x, N);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, a->in, 1.0f, xd, a->in,
                    l->params + a->a_off, a->in, 0.0f, l->u, r);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, a->out, r, l->scale, l->u, r,
                    l->params + a->b_off, r, 1.0f, y + a->col, ldy);
    }
}

void lora_proj_backward(Lora *l, int layer, int proj, const float *x, const float *dy, int ldy,
                        float *dx, int N) {
    scratch_reserve(l, N);
    int r = l->rank;
    float s = l->scale;
    for (int i = 0; i < l->num; i++) {
        const LoraAdapter *a = &l->ad[i];
        if (a->layer != layer || a->proj != proj) continue;
        const float *A = l->params + a->a_off, *B = l->params + a->b_off;
        const float *xd = adapter_input(l, i, x, N);
        /* u = xd Aᵀ (N,r); g = dy B (N,r) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, a->in, 1.0f, xd, a->in, A,
                    a->in, 0.0f, l->u, r);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, a->out, 1.0f, dy + a->col,
                    ldy, B, r, 0.0f, l->g, r);
        /* dB += s dyᵀ u; dA += s gᵀ xd */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, a->out, r, N, s, dy + a->col, ldy,
                    l->u, r, 1.0f, l->grads + a->b_off, r);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, a->in, N, s, l->g, r, xd, a->in,
                    1.0f, l->grads + a->a_off, a->in);
        /* dx += s (g A) ∘ mask */
        if (xd == x) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, a->in, r, s, l->g, r, A,
                        a->in, 1.0f, dx, a->in);
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, a->in, r, s, l->g, r, A,
                        a->in, 0.0f, l->dx, a->in);
            for (int n = 0; n < N; n++)
                for (int k = 0; k < a->in; k++)
                    dx[(size_t)n * a->in + k] += l->dx[(size_t)n * a->in + k] * drop_factor(l, i, n, k);
        }
    }
}

void lora_frozen_dinp(float *dinp, const float *dout, const float *w, int N, int C, int OC,
                      int conv1d, int accumulate) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, conv1d ? CblasTrans : CblasNoTrans, N, C, OC, 1.0f,
                dout, OC, w, conv1d ? OC : C, accumulate ? 1.0f : 0.0f, dinp, C);
}

/* the base weight of projection proj of layer in buffer params, and its row width */
static float *proj_weight(const GPT *m, float *params, int layer, int proj, int *ld) {
    const GPTBlock *b = &m->w.h[layer];
    const GPTConfig *c = &m->config;
    int C = c->n_embd;
    const float *w;
    if (c->family == GPT_FAMILY_LLAMA) {
        int hd = c->head_dim ? c->head_dim : C / c->n_head;
        const float *ws[] = {b->qkv_w, b->o_w, b->gate_up_w, b->down_w};
        int lds[] = {C, c->n_head * hd, C, c->d_ff};
        w = ws[proj], *ld = lds[proj];
    } else {
        const float *ws[] = {b->attn_w, b->attn_proj_w, b->fc_w, b->fc_proj_w};
        int lds[] = {3 * C, C, 4 * C, C};
        w = ws[proj], *ld = lds[proj];
    }
    return params + (w - m->params);
}

void lora_merge(const Lora *l, const GPT *m, float *params, float sign) {
    int r = l->rank;
    for (int i = 0; i < l->num; i++) {
        const LoraAdapter *a = &l->ad[i];
        int ld;
        float *W = proj_weight(m, params, a->layer, a->proj, &ld);
        const float *A = l->params + a->a_off, *B = l->params + a->b_off;
        if (l->family == GPT_FAMILY_LLAMA) /* W (outW, in): rows col.. += s B A */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, a->out, a->in, r,
                        sign * l->scale, B, r, A, a->in, 1.0f, W + (size_t)a->col * ld, ld);
        else /* Conv1D W (in, outW): columns col.. += s Aᵀ Bᵀ */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, a->in, a->out, r, sign * l->scale,
                        A, a->in, B, r, 1.0f, W + a->col, ld);
    }
}

void lora_proj_forward_rows(const Lora *l, int layer, int proj, const float *x, int N, float *y,
                            int ldy) {
    if (!l->enabled) return;
    int r = l->rank;
    float u[256];
    ASSERT(r <= 256);
    for (int i = 0; i < l->num; i++) {
        const LoraAdapter *a = &l->ad[i];
        if (a->layer != layer || a->proj != proj) continue;
        const float *A = l->params + a->a_off, *B = l->params + a->b_off;
        for (int n = 0; n < N; n++) {
            const float *xr = x + (size_t)n * a->in;
            for (int k = 0; k < r; k++) {
                float acc = 0.0f;
                for (int j = 0; j < a->in; j++) acc += xr[j] * A[(size_t)k * a->in + j];
                u[k] = l->scale * acc;
            }
            float *yr = y + (size_t)n * ldy + a->col;
            for (int o = 0; o < a->out; o++) {
                float acc = 0.0f;
                for (int k = 0; k < r; k++) acc += u[k] * B[(size_t)o * r + k];
                yr[o] += acc;
            }
        }
    }
}

// ----------------------------------------------------------------------------
// checkpoints

#include "ckpt.h"

int lora_table_len(const Lora *l) { return 2 * l->num + (l->head_n ? 2 : 0); }

int lora_table(const Lora *l, GPTTensor *out) {
    for (int i = 0; i < l->num; i++) {
        const LoraAdapter *a = &l->ad[i];
        GPTTensor *A = &out[2 * i], *B = &out[2 * i + 1];
        memset(A, 0, 2 * sizeof *A);
        snprintf(A->name, sizeof A->name, "%.40s.lora_A.weight", a->name);
        snprintf(B->name, sizeof B->name, "%.40s.lora_B.weight", a->name);
        A->ndim = B->ndim = 2;
        A->shape[0] = l->rank, A->shape[1] = a->in;
        B->shape[0] = a->out, B->shape[1] = l->rank;
        A->offset = a->a_off, A->numel = (size_t)l->rank * a->in;
        B->offset = a->b_off, B->numel = (size_t)a->out * l->rank;
    }
    if (l->head_n) { /* the critic's value head, TRL's names and shapes */
        GPTTensor *W = &out[2 * l->num], *b = W + 1;
        memset(W, 0, 2 * sizeof *W);
        snprintf(W->name, sizeof W->name, "v_head.summary.weight");
        snprintf(b->name, sizeof b->name, "v_head.summary.bias");
        W->ndim = 2, W->shape[0] = 1, W->shape[1] = (int)l->head_n - 1;
        b->ndim = 1, b->shape[0] = 1;
        W->offset = l->head_off, W->numel = l->head_n - 1;
        b->offset = l->head_off + l->head_n - 1, b->numel = 1;
    }
    return lora_table_len(l);
}

int lora_ckpt_write(CkptWriter *w, const Lora *l, char *err) {
    char buf[256];
    GPTTensor *t = xcalloc((size_t)lora_table_len(l), sizeof *t);
    int n = lora_table(l, t);
    int rc = ckpt_write_table(w, "lora", t, n, l->params, err);
    free(t);
    if (rc == 0) rc = ckpt_write_attr_i64(w, "lora_rank", l->rank, err);
    snprintf(buf, sizeof buf, "%.9g", (double)l->alpha);
    if (rc == 0) rc = ckpt_write_attr_str(w, "lora_alpha", buf, err);
    snprintf(buf, sizeof buf, "%.9g", (double)l->dropout);
    if (rc == 0) rc = ckpt_write_attr_str(w, "lora_dropout", buf, err);
    lora_targets_format(l->targets, l->family, buf, sizeof buf);
    if (rc == 0) rc = ckpt_write_attr_str(w, "lora_targets", buf, err);
    return rc;
}

int lora_ckpt_has(const CkptReader *r) { return ckpt_has(r, "/lora"); }

/* the stored LoRA config */
static int read_config(const CkptReader *r, GPTFamily f, int *rank, float *alpha,
                       float *dropout, unsigned *targets, char *err) {
    int64_t rk = 0;
    char *sa = NULL, *sd = NULL, *st = NULL;
    int rc = ckpt_read_attr_i64(r, "lora_rank", &rk, err);
    if (rc == 0) rc = ckpt_read_attr_str(r, "lora_alpha", &sa, err);
    if (rc == 0) rc = ckpt_read_attr_str(r, "lora_dropout", &sd, err);
    if (rc == 0) rc = ckpt_read_attr_str(r, "lora_targets", &st, err);
    if (rc == 0) rc = lora_targets_parse(st, f, targets, err);
    if (rc == 0 && (rk < 1 || rk > 4096)) rc = errf(err, "lora_rank %lld out of range", (long long)rk);
    if (rc == 0) *rank = (int)rk, *alpha = strtof(sa, NULL), *dropout = strtof(sd, NULL);
    free(sa), free(sd), free(st);
    return rc;
}

int lora_ckpt_read(const CkptReader *r, GPT *m, char *err) {
    int rank;
    float alpha, dropout;
    unsigned targets;
    if (read_config(r, m->config.family, &rank, &alpha, &dropout, &targets, err) != 0) return -1;
    if (!m->lora) {
        lora_attach(m, rank, alpha, targets, dropout);
    } else if (m->lora->rank != rank || m->lora->targets != targets || m->lora->alpha != alpha) {
        return errf(err, "the checkpoint's adapters (rank %d, alpha %g) differ from this run's "
                         "lora.rank %d, lora.alpha %g or lora.targets: use the checkpoint's",
                    rank, (double)alpha, m->lora->rank, (double)m->lora->alpha);
    }
    GPTTensor *t = xcalloc((size_t)lora_table_len(m->lora), sizeof *t);
    int n = lora_table(m->lora, t);
    int rc = ckpt_read_table(r, "lora", t, n, m->lora->params, err);
    free(t);
    return rc;
}

int lora_ckpt_merge(const CkptReader *r, GPT *m, char *err) {
    if (!lora_ckpt_has(r)) return 0;
    Lora *keep = m->lora;
    m->lora = NULL;
    int rc = lora_ckpt_read(r, m, err);
    if (rc == 0) lora_merge(m->lora, m, m->params, 1.0f);
    lora_free(m->lora);
    m->lora = keep;
    return rc == 0 ? 1 : -1;
}
