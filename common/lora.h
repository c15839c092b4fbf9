/*
 * common/lora.h — LoRA adapters on the linear projections of a GPT (Hu et al. 2021,
 * "LoRA: Low-Rank Adaptation of Large Language Models", arXiv:2106.09685).
 *
 * A targeted projection y = x W (+ b) becomes y = x W (+ b) + s · dropout(x) Aᵀ Bᵀ with
 * s = alpha / rank, A (rank, in) Kaiming-uniform (bound 1/sqrt(in), PEFT's init) and
 * B (out, rank) zero, so a fresh adapter leaves the model unchanged. Targets use PEFT's
 * module names: GPT-2 c_attn, attn.c_proj, c_fc, mlp.c_proj; Llama q_proj, k_proj,
 * v_proj, o_proj, gate_proj, up_proj, down_proj ("all-linear": all of the family's).
 * The fused projections of gpt.c (GPT-2's c_attn; Llama's q|k|v and gate|up) get one
 * adapter per Hugging Face module, writing its column block of the fused output.
 *
 * Every adapter's A and B live in ONE contiguous buffer (params, and grads of the same
 * size) laid out by the adapter table, separate from the model's frozen base buffer:
 * with LoRA attached the model allocates no base-size gradient (gpt.c), and an
 * optimizer over (params, grads, n) trains exactly the adapters.
 *
 * Dropout (p = dropout, applied to the adapter's input only, in training) draws its mask
 * from a hash of (drop_key, layer, projection, row, column): the forward and the backward
 * (and an activation recomputation) see the same mask with nothing stored, and a run that
 * sets drop_key from its step is reproducible and resumable.
 */
#ifndef RLHF_LORA_H
#define RLHF_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "gpt.h"

#define LORA_MAX_TARGETS 7 /* Llama: q k v o gate up down */
#define LORA_NUM_PROJ 4    /* base projections per block (gpt.c's linear GEMMs) */

typedef struct {
    char name[GPT_NAME_LEN]; /* the HF module path, e.g. "h.0.attn.c_attn" */
    int layer, target;       /* target: index into the family's names (lora_target_name) */
    int proj;                /* the base projection: 0 qkv, 1 attention out, 2 mlp up, 3 mlp down */
    int in, out, col;        /* A (rank, in), B (out, rank); col: first column of the fused output */
    size_t a_off, b_off;     /* in floats, into params / grads */
} LoraAdapter;

typedef struct Lora {
    int rank;
    float alpha, dropout, scale; /* scale = alpha / rank */
    unsigned targets;            /* bit i: target i of the family */
    GPTFamily family;
    int enabled;                 /* 0: the forward is the base model's (reference log-probs) */
    int train;                   /* 1: dropout applies (training forwards only) */
    uint64_t drop_key;           /* the dropout stream of the current step */
    int num;                     /* adapters */
    LoraAdapter *ad;
    size_t n;                    /* floats of params (and of grads): adapters, then the head */
    /* A LoRA critic's trainable value head (lora_attach_value_head; PEFT's modules_to_save):
     * head_n = C + 1 floats (weight, bias) at head_off, after the adapters; 0 without. */
    size_t head_off, head_n;
    float *params, *grads;
    /* scratch, grown to the largest call: rows x rank (two) and rows x widest input */
    size_t cap_rows;
    float *u, *g, *xd, *dx;
    float *sink; /* gradient sink of the frozen norms (never read) */
} Lora;

/* The family's target names, in bit order; count in *n. */
const char *const *lora_target_names(GPTFamily f, int *n);
/* Parse a comma list of target names (or "all-linear") into a bit mask; 0 or -1 + err. */
int lora_targets_parse(const char *list, GPTFamily f, unsigned *mask, char *err);
/* Write the mask back as a comma list (the form lora_targets_parse reads). */
void lora_targets_format(unsigned mask, GPTFamily f, char *out, size_t cap);

/* Attach adapters of the given rank to every targeted projection of m (params, grads
 * zeroed; m->lora set, base gradients never allocated from now on). rank >= 1. */
void lora_attach(GPT *m, int rank, float alpha, unsigned targets, float dropout);
/* A Kaiming-uniform from seed, B zero (PEFT's init_lora_weights=True). */
void lora_init_weights(Lora *l, uint64_t seed);
/* Make m's value head trainable with the adapters: params/grads grow by C + 1 floats at
 * head_off (the head weight (1,C), then its bias), set from init (C + 1 floats), and
 * m->w.head_w/head_b (and, with gradients, m->g's) point there from now on, so one
 * (params, grads, n) triple holds everything the critic trains. m has a value head and
 * adapters (lora_attach), and no head yet. */
void lora_attach_value_head(GPT *m, const float *init);
const LoraAdapter *lora_find(const Lora *l, const char *name);
/* Dropout off for an evaluation pass: returns the training flag to hand to lora_eval_end,
 * which restores it (both no-ops for NULL: a model without adapters). */
int lora_eval_begin(Lora *l);
void lora_eval_end(Lora *l, int train);
void lora_free(Lora *l); /* NULL: no-op */

/* y (N, ldy) += the adapters of projection proj of layer, input x (N, in). */
void lora_proj_forward(Lora *l, int layer, int proj, const float *x, int N, float *y, int ldy);
/* The same for generation (gpt.c's cache pass), batch-invariant like every kernel there:
 * each row's sums run in a fixed order whatever rows share the call. No dropout. */
void lora_proj_forward_rows(const Lora *l, int layer, int proj, const float *x, int N, float *y,
                            int ldy);
/* Backward of lora_proj_forward: dx (N, in) += the input gradient, grads += dA, dB. */
void lora_proj_backward(Lora *l, int layer, int proj, const float *x, const float *dy, int ldy,
                        float *dx, int N);
/* dinp (N,C) = dout (N,OC) @ Wᵀ of a frozen weight (+= when accumulate): Conv1D layout
 * (C,OC) when conv1d, else nn.Linear (OC,C) (also the tied LM head, (V,C)). Only the
 * input gradient: the base weight gets none. */
void lora_frozen_dinp(float *dinp, const float *dout, const float *w, int N, int C, int OC,
                      int conv1d, int accumulate);
/* params (the base buffer of m's table) += sign · s · (B A) in the base weights' layout:
 * sign 1 merges the adapters into a copy of the base, -1 takes them out again. */
void lora_merge(const Lora *l, const GPT *m, float *params, float sign);

/* ---- checkpoints ------------------------------------------------------------------
 * A checkpoint of a LoRA run keeps the base model's group as without LoRA (the frozen
 * weights, so the file alone restores the run) and adds /lora/<module>.lora_A.weight
 * (rank, in) and .lora_B.weight (out, rank) (PEFT's names without the base_model.model.
 * prefix), with root attributes lora_rank, lora_alpha, lora_dropout, lora_targets. */
struct CkptWriter;
struct CkptReader;
/* The adapters as a tensor table (2 per adapter: A then B, then the value head's
 * v_head.summary.weight and .bias when it has one) into out (lora_table_len entries). */
int lora_table(const Lora *l, GPTTensor *out);
int lora_table_len(const Lora *l);
int lora_ckpt_write(struct CkptWriter *w, const Lora *l, char *err);
/* 1 if the checkpoint holds adapters, else 0. */
int lora_ckpt_has(const struct CkptReader *r);
/* Read the stored adapters into m: attaches them when m has none (with the stored rank,
 * alpha, dropout and targets), else checks that m's adapters have the same config. */
int lora_ckpt_read(const struct CkptReader *r, GPT *m, char *err);
/* Read the stored adapters (if any) and merge them into m's base weights: the model a
 * LoRA checkpoint stands for, as one set of weights. Returns 1 merged, 0 none, -1 err. */
int lora_ckpt_merge(const struct CkptReader *r, GPT *m, char *err);

#endif
