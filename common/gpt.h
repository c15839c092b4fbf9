/*
 * common/gpt.h — GPT-2 in C on OpenBLAS: the one model every role of rlhf-c runs.
 *
 * Architecture (Radford et al. 2019, "Language Models are Unsupervised Multitask
 * Learners"; the Hugging Face `GPT2Model`): token + learned position embeddings,
 * pre-LayerNorm blocks of causal multi-head self-attention and a GELU(tanh) MLP with
 * residuals, a final LayerNorm, and one head:
 *   GPT_HEAD_LM     LM head tied to the token embedding (policy, reference model);
 *   GPT_HEAD_SCORE  scalar at the last non-pad token, `score.weight` (1,C), no bias — the
 *                   layout of HF `GPT2ForSequenceClassification` with one label (reward);
 *   GPT_HEAD_VALUE  scalar per token, `v_head.summary.weight` (1,C) + `.bias` (1) — TRL's
 *                   value-head layout (PPO critic).
 * fp32 throughout.
 *
 * The same core runs the Llama family (config.family = GPT_FAMILY_LLAMA; Hugging Face
 * LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM): token embedding without
 * positions, pre-RMSNorm blocks of grouped-query causal attention with rotary positions
 * (optionally q/k/v biases, per-head q/k RMSNorm before the rotation, a head_dim of its
 * own, llama3 rope scaling) and a SwiGLU MLP, a final RMSNorm, and the same three heads
 * (the LM head tied to the embedding or lm_head.weight). Its kernels are in ops_llama.h.
 * Its table, with Hugging Face's names and nn.Linear (out, in) shapes:
 *   model.embed_tokens.weight (V,C), then per layer l, prefix model.layers.l.:
 *   input_layernorm.weight (C), self_attn.{q,k,v}_proj.weight (NH hd,C) (NKV hd,C) (NKV hd,C),
 *   [self_attn.{q,k,v}_proj.bias], [self_attn.{q,k}_norm.weight (hd)],
 *   self_attn.o_proj.weight (C,NH hd), post_attention_layernorm.weight (C),
 *   mlp.{gate,up}_proj.weight (F,C), mlp.down_proj.weight (C,F);
 *   then model.norm.weight (C), [lm_head.weight (V,C) when untied], the head tensors.
 *
 * Parameters: ONE table of (name, shape) built from the config (gpt_tensors), in this
 * order: wte.weight (V,C), wpe.weight (maxT,C), then per layer l
 *   h.l.ln_1.weight (C)  h.l.ln_1.bias (C)
 *   h.l.attn.c_attn.weight (C,3C)  h.l.attn.c_attn.bias (3C)
 *   h.l.attn.c_proj.weight (C,C)   h.l.attn.c_proj.bias (C)
 *   h.l.ln_2.weight (C)  h.l.ln_2.bias (C)
 *   h.l.mlp.c_fc.weight (C,4C)     h.l.mlp.c_fc.bias (4C)
 *   h.l.mlp.c_proj.weight (4C,C)   h.l.mlp.c_proj.bias (C)
 * then ln_f.weight (C), ln_f.bias (C), then the head tensors. Names are Hugging Face
 * GPT-2's (without the "transformer." prefix) and linear weights are stored in HF's Conv1D
 * layout (in, out), row-major, so y = x W + b and a checkpoint <-> HF conversion is a
 * rename. Parameters, gradients (and AdamW m, v in adamw.c) are each one contiguous
 * float buffer laid out by this table; GPTWeights holds pointers into a buffer.
 *
 * Ownership: gpt_init allocates and gpt_free releases everything; gpt_free(NULL) is a
 * no-op. Functions abort (util.h fatal) only on out-of-memory or a violated invariant
 * (a B/T larger than reserved, a head call on the wrong head); recoverable problems (a
 * bad config from a user) are reported by gpt_config_validate.
 */
#ifndef RLHF_GPT_H
#define RLHF_GPT_H

#include <stddef.h>
#include <stdint.h>

typedef enum { GPT_HEAD_LM = 0, GPT_HEAD_SCORE = 1, GPT_HEAD_VALUE = 2 } GPTHead;

typedef enum { GPT_FAMILY_GPT2 = 0, GPT_FAMILY_LLAMA = 1 } GPTFamily;

typedef struct {
    int vocab_size;  /* V */
    int max_seq_len; /* maxT, HF n_positions / max_position_embeddings */
    int n_layer;     /* L */
    int n_head;      /* NH */
    int n_embd;      /* C (GPT-2: divisible by NH) */
    GPTHead head;
    /* The fields below are the Llama family's (HF LlamaConfig / Qwen2Config / Qwen3Config
     * names in comments); all zero for GPT-2, which ignores them. */
    GPTFamily family;
    int n_kv_head;       /* NKV, num_key_value_heads: divides NH (1 = multi-query) */
    int head_dim;        /* hd, head_dim: 0 means C / NH; Qwen3 sets its own */
    int d_ff;            /* F, intermediate_size of the SwiGLU MLP */
    int qkv_bias;        /* 1: q/k/v projections have biases (Qwen2, attention_bias) */
    int qk_norm;         /* 1: per-head RMSNorm of q and k before the rotation (Qwen3) */
    int tie_embeddings;  /* 1: the LM head is embed_tokens (tie_word_embeddings) */
    float rope_theta;    /* rope_theta */
    float norm_eps;      /* rms_norm_eps */
    /* rope_scaling {"rope_type": "llama3"}: factor > 0 turns it on */
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_orig_max_pos; /* original_max_position_embeddings */
} GPTConfig;

#define GPT_NAME_LEN 64
/* The LM head's default chunk budget (GPT.lm_chunk_bytes): 128 MiB of logits, i.e. 192
 * rows at Qwen's vocabulary of 151,936, 624 at GPT-2's 50,257, every row of a batch for
 * small vocabularies. */
#define GPT_LM_CHUNK_BYTES ((size_t)128 << 20)
/* Chunks are whole multiples of this many rows: the row share of ops.c's OpenBLAS split
 * (GEMM_GRAIN), so a chunk's logits have the bits of the unsplit product. */
#define GPT_LM_CHUNK_GRAIN 48
#define GPT_LN_EPS 1e-5f

typedef struct {
    char name[GPT_NAME_LEN]; /* HF name, e.g. "h.0.attn.c_attn.weight" */
    int ndim;                /* 1 or 2 */
    int shape[2];            /* HF shape (Conv1D weights are (in, out)) */
    size_t offset;           /* in floats, into the parameter buffer */
    size_t numel;
} GPTTensor;

/* One block's weights. GPT-2 uses the first group; Llama uses ln_1_w, ln_2_w (its two
 * RMSNorms, biases NULL) and the second group. Llama's linear weights are in nn.Linear
 * layout (out, in); q_proj, k_proj, v_proj are consecutive in the table, so qkv_w is their
 * row-concatenation ((NH+2NKV)hd, C), one GEMM (ops_llama.h's fused qkv layout); likewise
 * gate_proj, up_proj as gate_up_w (2F, C). */
typedef struct {
    float *ln_1_w, *ln_1_b;           /* (C) (C) */
    float *attn_w, *attn_b;           /* (C,3C) (3C): q,k,v column blocks of C each */
    float *attn_proj_w, *attn_proj_b; /* (C,C) (C) */
    float *ln_2_w, *ln_2_b;           /* (C) (C) */
    float *fc_w, *fc_b;               /* (C,4C) (4C) */
    float *fc_proj_w, *fc_proj_b;     /* (4C,C) (C) */
    float *qkv_w, *qkv_b;             /* ((NH+2NKV)hd, C), bias ((NH+2NKV)hd) or NULL */
    float *q_norm_w, *k_norm_w;       /* (hd) (hd) or NULL */
    float *o_w;                       /* (C, NH hd) */
    float *gate_up_w;                 /* (2F, C) */
    float *down_w;                    /* (C, F) */
} GPTBlock;

typedef struct {
    float *wte;              /* (V,C) */
    float *wpe;              /* (maxT,C); NULL for Llama (rotary positions) */
    GPTBlock *h;             /* [L] */
    float *ln_f_w, *ln_f_b;  /* (C) (C); ln_f_b NULL for Llama (RMSNorm) */
    float *lm_head;          /* (V,C): wte when tied (GPT-2 always), else lm_head.weight */
    float *head_w, *head_b;  /* score: (1,C), NULL; value: (1,C), (1); LM: NULL, NULL */
} GPTWeights;

struct GPTActs;  /* training activations, private to gpt.c */
struct GPTCache; /* KV cache for generation, private to gpt.c */

typedef struct {
    GPTConfig config;
    int num_tensors;
    GPTTensor *tensors; /* the parameter table */
    size_t num_params;
    float *params;      /* (num_params); the trunk only when params_borrowed */
    int params_borrowed; /* 1: params is another model's buffer (gpt_init_borrowed) */
    GPTWeights w;
    float *grads;       /* (num_params), NULL until gpt_alloc_grads */
    GPTWeights g;
    /* logits are divided by this before every softmax of the LM head (training and
     * generation alike), so behaviour and learner log-probs use the same distribution */
    float temperature;
    /* Llama: the rotary inverse frequencies (head_dim/2, ops_llama.h rope_inv_freq) of
     * the config, shared by training and generation; NULL for GPT-2 */
    double *rope_freq;
    /* 1 (gpt_init's default): generation decodes from a packed copy of the weights (see
     * gpt_cache_reserve); 0: it reads them in place and the cache holds no copy. The copy
     * runs the panel kernel (each output summed in order over its inputs) on every linear
     * and the LM head; in place, GPT-2's (in, out) linears run the same kernel (the same
     * bits) while Llama's (out, in) linears and both LM heads run the row kernel (16
     * lanes, then a tree): equal up to fp32 rounding (tests/test_generate.c bounds the
     * log-prob gap). Set before gpt_cache_reserve / generate. */
    int decode_packed;
    /* 0 (gpt_init's default): the decode copy holds fp32 weights. 1 (gen.weights = bf16):
     * it holds them as bfloat16 (rounded to nearest even), the LM head too, and every cache
     * pass (prefill and decode) computes from it in fp32 registers: half the bytes per
     * decoded token; results equal, bit for bit, the fp32 copy of the rounded weights.
     * 2 (gen.bf16_dot): the same copy, and the linears' and LM head's inputs rounded to
     * bf16 too, multiplied in pairs by AVX512-BF16 (ops.h *_bf16dot: half the
     * instructions; only where ops_bf16_dot_supported(), gpt_cache_reserve fails
     * elsewhere). Implies a copy whatever decode_packed says. Set before
     * gpt_cache_reserve. */
    int decode_bf16;
    /* -1 (gpt_init's default): every prefill packs the weights again. >= 0: the caller's
     * label for the current params (the actor uses the policy version): a prefill packs
     * only when the label differs from the packed copy's. A caller that sets it must change
     * it whenever it changes params, or generation reads the old weights. The label covers
     * params only: LoRA adapters (lora) are read in place by every cache pass, so a caller
     * that replaces only the adapters keeps the label (the actor: one pack per base image). */
    int64_t weights_version;
    /* The training path's LM head works on chunks of rows whose logits fit this many
     * bytes (gpt_init's default GPT_LM_CHUNK_BYTES; 0 = no limit): see gpt_lm_forward.
     * May be changed between steps (the next gpt_lm_forward resizes m->logits; a
     * backward follows the chunking of its forward). */
    size_t lm_chunk_bytes;
    /* Activation recomputation (0, gpt_init's default: off). 1: the forward keeps only
     * every block's input (the previous block's output) and one block-sized scratch; each
     * head backward computes a block's activations again into that scratch just before
     * the block's backward (the last block's are still there). Costs about one more
     * trunk forward per backward; saves (L-1) blocks of activations, the attention
     * probabilities included. The same kernels on the same inputs: outputs and every
     * gradient are the same bits as off, for any thread count (tests/test_recompute.c).
     * Read by gpt_reserve, which resizes the activations when it changed; gpt_forward
     * aborts when it differs from the mode of the reserved activations. */
    int recompute;
    /* outputs of the last forward, valid until the next one (sized max_B x max_T):   */
    float *logits;   /* LM head, see gpt_lm_logits_resident: when resident, (B,T,V) with
                      * rows whose target is -1 possibly uncomputed; otherwise a scratch of
                      * one chunk (gpt_lm_chunk_rows rows) that callers must not read */
    float *logprobs; /* (B,T)   LM head: log p(targets[b,t] | tokens[b,0..t]) */
    float *entropy;  /* (B,T)   LM head: entropy of the next-token distribution */
    float *values;   /* (B,T)   value head */
    float *scores;   /* (B)     score head */
    int max_B, max_T;
    struct GPTActs *acts;
    struct GPTCache *cache;
    /* LoRA adapters (lora.h), NULL without: attached, the base weights are frozen (no
     * base gradient buffer; m->grads stays NULL and m->g points at a small sink) and the
     * backward fills lora->grads; lora->enabled 0 runs the base model (reference) */
    struct Lora *lora;
} GPT;

/* "gpt2" or "llama" (the names checkpoints and configs use). */
const char *gpt_family_name(GPTFamily f);
/* Check a config a user gave (sizes positive, C % NH == 0, ...). 0 or -1 with err. */
int gpt_config_validate(const GPTConfig *c, char *err);
/* Presets: "tiny" (V512 L4 NH4 C128 T128) and "gpt2" (124M: V50257 L12 NH12 C768 T1024);
 * Llama family: "llama-tiny" (V512 L4 NH4 NKV2 C128 F344 T128, tied) and "smol"
 * (SmolLM2-135M's shape: V49152 L30 NH9 NKV3 C576 F1536 T2048, tied, rope_theta 1e5).
 * Returns -1 for an unknown name. */
int gpt_config_preset(const char *name, GPTConfig *out);
size_t gpt_config_num_params(const GPTConfig *c);

/* The most table entries a config of c's family and depth can have. */
int gpt_tensors_capacity(const GPTConfig *c);
/* Build the parameter table for c into out (max entries); returns the count. */
int gpt_tensors_build(const GPTConfig *c, GPTTensor *out, int max);
/* The trunk's share of m's table: its first entries, all but the head tensors (score,
 * value) and an untied Llama's lm_head.weight. A new head on a trained trunk reads these. */
int gpt_trunk_tensors(const GPT *m);
/* Fill a GPTWeights with pointers into buf laid out by m's table. */
void gpt_weights_point(const GPT *m, float *buf, GPTWeights *w);

void gpt_init(GPT *m, const GPTConfig *c); /* params zeroed; no activations yet */
/* A model of config c whose trunk IS owner's parameter buffer, not a copy: c's trunk
 * equals owner's (the head may differ). gpt_free leaves that buffer alone. For a
 * frozen-trunk LoRA critic on the policy's frozen base: nothing may write the borrowed
 * params (gpt_init_weights, a checkpoint read), and the head, outside owner's buffer,
 * stays NULL until lora_attach_value_head points it at the critic's own buffer. */
void gpt_init_borrowed(GPT *m, const GPTConfig *c, const GPT *owner);
void gpt_free(GPT *m);
/* GPT-2 initialisation: N(0, 0.02), residual projections N(0, 0.02/sqrt(2L)), LN weight
 * 1, biases 0, head N(0, 1/sqrt(C+1)) for score/value heads. Deterministic in seed. */
void gpt_init_weights(GPT *m, uint64_t seed);
const GPTTensor *gpt_find_tensor(const GPT *m, const char *name);
void gpt_alloc_grads(GPT *m);
void gpt_zero_grad(GPT *m);
/* Size the activation and output buffers for batches up to B x T (grows, never shrinks;
 * call once with the largest shape to keep allocation out of the hot path). */
void gpt_reserve(GPT *m, int B, int T);

/* ---- training path --------------------------------------------------------------
 * tokens (B,T) row-major. gpt_forward runs the trunk to the final LayerNorm; then one
 * head forward. Each head backward accumulates into m->grads through the whole network
 * (the trunk backward included), so a training step is: zero_grad, forward, head
 * forward, loss (loss.c, in terms of the head's outputs), head backward. */
void gpt_forward(GPT *m, const int *tokens, int B, int T);
/* targets (B,T): the token whose log-prob is wanted at each position (normally
 * tokens[b,t+1]), or -1 to skip (logprobs/entropy 0 there, no gradient). */
void gpt_lm_forward(GPT *m, const int *targets, int B, int T);
/* dlogprobs, dentropy (B,T): dLoss/dlogprobs and dLoss/dentropy (dentropy may be NULL). */
void gpt_lm_backward(GPT *m, const float *dlogprobs, const float *dentropy, int B, int T);
/* Rows of one LM-head chunk under m->lm_chunk_bytes: the largest multiple of
 * GPT_LM_CHUNK_GRAIN whose logits fit the budget (at least GPT_LM_CHUNK_GRAIN), or
 * INT_MAX for no limit. */
int gpt_lm_chunk_rows(const GPT *m);
/* 1 when the reserved batch fits one chunk, so m->logits holds the (B,T,V) logits of the
 * last gpt_lm_forward (the rows with targets); 0 when the head runs chunk by chunk and
 * only the log-probs and entropies are kept (see gpt_lm_logits). */
int gpt_lm_logits_resident(const GPT *m);
/* The raw logits (no temperature) of rows [row0, row0+n) of the last gpt_forward's
 * batch (row = b*T + t) into out (n,V), computed from the final hidden states: the LM
 * head alone, whatever the chunking. Bit-identical to the training path's when row0 is
 * the start of a row range the head computed; equal up to fp32 rounding otherwise. */
void gpt_lm_logits(GPT *m, int row0, int n, float *out);
/* lengths (B): the score is read at position lengths[b]-1 (the last non-pad token). */
void gpt_score_forward(GPT *m, const int *lengths, int B, int T);
void gpt_score_backward(GPT *m, const float *dscores, int B, int T);
void gpt_value_forward(GPT *m, int B, int T);
void gpt_value_backward(GPT *m, const float *dvalues, int B, int T);
/* Notes on the training path:
 *   - the LM head never holds more than one chunk of logits (m->lm_chunk_bytes): the
 *     forward computes each chunk of rows, its log-probs, entropies and logsumexps and
 *     moves on; the backward computes the chunk's logits again from the final hidden
 *     states, turns them into dLoss/dlogits in place and runs the head's two products.
 *     Memory is then B*T*C for the hidden states plus one chunk, instead of B*T*V.
 *     Chunks split each row range at multiples of GPT_LM_CHUNK_GRAIN rows: the logits,
 *     log-probs, entropies and the gradient reaching the trunk are bit-identical to the
 *     unchunked head; the LM head weight's gradient (a sum over rows, now in a few
 *     partial sums) equals it up to fp32 rounding (tests/test_lm_chunk.c: normalised
 *     error 2e-7 to 7e-7 with OpenBLAS, checked <= 1e-5). When the whole reserved batch
 *     fits one chunk (small vocabularies) the head is computed once and dLoss/dlogits
 *     overwrite m->logits in place, as without a budget;
 *   - a head backward needs the head forward on the same gpt_forward (aborts otherwise);
 *   - gpt_alloc_grads is called by the first backward if the caller did not;
 *   - the activation-gradient scratch is allocated by the first backward (once);
 *   - activation memory for max_B x max_T: about 16 C floats per token per layer, plus
 *     the attention probabilities L*B*NH*T*T (the largest term for long sequences), plus
 *     the logits of one chunk, min(B*T, gpt_lm_chunk_rows)*V. With m->recompute: C
 *     floats per token per layer (the block inputs) plus ONE block's activations
 *     (about 15 C floats per token and B*NH*T*T), plus the same logits;
 *   - the LM head runs only on the row ranges that have targets (see m->logits). */

/* ---- generation path: KV cache -------------------------------------------------
 * The cache holds, for every layer, the keys and values of up to B sequences ("slots")
 * of up to T tokens, laid out (slot, head, position, head_size): the keys of one
 * sequence and head are a contiguous (T, hs) matrix that one decode step reads. Every
 * kernel of this path is batch-invariant (ops.h `_rows`): the logits of a sequence are
 * bit-identical whatever other sequences share the call, so sampling with a keyed RNG
 * is reproducible per sequence; they are also the same for any thread count. They
 * equal the training path's logits up to fp32
 * rounding (a different summation order than OpenBLAS). Logits are raw (no temperature).
 * Positions are per sequence: a sequence's tokens sit at 0, 1, ... in its own slot. */

/* Size the cache for B slots of T tokens (grows, never shrinks; T <= max_seq_len). All
 * the scratch of prefill and decode is allocated here, including a panel-major copy of
 * every block's four linear weights and of the LM head (ops.h matmul_pack_rows /
 * matmul_pack_cols; GPT-2 12·L·C² + V·C floats, 494 MB for 124M; half that in bf16) in
 * 2 MB pages: decoding at small batch is bound by reading the weights, and the copy turns
 * those reads into sequential streams. */
void gpt_cache_reserve(GPT *m, int B, int T);
/* Start a generation: empty every slot and pack the current weights (so a change of
 * m->params since the last generation is seen; see GPT.weights_version). */
void gpt_cache_begin(GPT *m);
/* Copy the current weights into the decode copy now (a no-op without one). gpt_cache_begin
 * calls it when GPT.weights_version says the weights changed; a caller that changes the
 * weights decoding should see in another way (merging adapters into them) calls it after,
 * before the next prefill. */
void gpt_cache_pack(GPT *m);
/* How many times gpt_cache_pack has filled the decode copy since the first
 * gpt_cache_reserve (0 without a copy): the actor reports it, tests count re-packs. */
int64_t gpt_cache_packs(const GPT *m);
/* One run of a cache pass: tokens[0..count) go into `slot` at positions start,
 * start+1, ...; start <= the slot's length (the slot's tokens from `start` on are
 * dropped: start 0 replaces its sequence, start = its length appends). */
typedef struct {
    int slot, start, count;
    const int *tokens;
} GPTCacheRun;
/* Run n runs (distinct slots, count >= 1, start + count <= the reserved T) through the
 * network together: a prefill of new prompts and the decode step of running sequences
 * share one pass over the weights. Other slots are untouched. Returns the logits (n,V):
 * row i belongs to the token after the last one of run i; valid until the next cache
 * call. Row-wise deterministic like every call here. */
const float *gpt_cache_run(GPT *m, int n, const GPTCacheRun *runs);
/* Score n runs through the cache as gpt_cache_run runs them (the same rows, the same
 * bits), for a scorer instead of a sampler: lp[i][t] = log p(targets[i][t] | the slot's
 * tokens up to and including runs[i].tokens[t]) at m->temperature, for each t with
 * targets[i][t] >= 0 (targets and lp both NULL: no log-probs); scores[i] = the score head
 * on the final norm of run i's last token (NULL: none; the model needs a score head).
 * Only the rows asked for go through the LM head. The reward server scores the responses
 * of a GRPO group this way after one prefill of their prompt (gpt_cache_copy_slot). */
void gpt_cache_score(GPT *m, int n, const GPTCacheRun *runs, const int *const *targets,
                     float *const *lp, float *scores);
/* Copy the keys and values of the first ntok tokens of slot src into slot dst
 * (dst != src, ntok <= src's length); dst then holds those ntok tokens. A sequence
 * continued from the copy gets the logits it would get from its own prefill, bit for
 * bit: K sequences sharing a prompt prefill it once (generate.h). Cost: a memcpy of
 * 2·L·ntok·(NKV·hd) floats (GPT-2 124M, 256 tokens: 19 MB). */
void gpt_cache_copy_slot(GPT *m, int dst, int src, int ntok);
/* gpt_cache_begin, then run prompts[b][0..lens[b]) into slot b for b < B (lens[b] >= 1,
 * tokens in [0,V), lens[b] <= the reserved T). Returns the logits (B,V) of the token
 * that follows each prompt; valid until the next cache call. The weights must not
 * change between a prefill and the decode steps that follow it. */
const float *gpt_cache_prefill(GPT *m, int B, const int *const *prompts, const int *lens);
/* Append tokens[i] to the sequence in slot slots[i] (at its current length) for i < n,
 * slots distinct. Returns the logits (n,V) of the token after each. */
const float *gpt_cache_decode(GPT *m, int n, const int *slots, const int *tokens);
/* Tokens (prompt and decode rows) run through the network since gpt_cache_begin: the
 * work a generation did, e.g. how many prompt tokens a shared prefill saved. */
int64_t gpt_cache_rows(const GPT *m);
/* Number of tokens in slot's sequence. */
int gpt_cache_len(const GPT *m, int slot);

#endif
