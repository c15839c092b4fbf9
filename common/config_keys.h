/*
 * common/config_keys.h — THE list of every configuration key of rlhf-c (one source of
 * truth). config.h turns it into the typed struct RlhfConfig (cfg.<section>.<name>), and
 * config.c into the parser, the range checks, the dumper (config_to_text), the help
 * printer and the Markdown reference docs/config.md (test_config fails when that file is
 * out of date; regenerate it with `build/tests/test_config --markdown > docs/config.md`).
 *
 * One row per key:   X(section, name, TYPE, default, lo, hi, "help")
 *   INT    C int;    default, inclusive range [lo, hi]
 *   FLOAT  C double; default, inclusive range [lo, hi] (values must also be finite)
 *   BOOL   C bool;   default true/false; lo, hi unused (write 0, 1); accepts
 *                    true/false/yes/no/on/off/1/0
 *   STR    char[CONFIG_STR_MAX]; default "..."; lo, hi unused (write 0, 0)
 *   ENUM   char[CONFIG_ENUM_MAX]; default "...", lo = the allowed values "a|b|c"; hi unused
 *
 * To add a key, add one row to its section's list (the section must match the list's
 * name). To add a section, write a new RLHF_CONFIG_KEYS_<name> list and add S(<name>) to
 * RLHF_CONFIG_SECTIONS. Cross-key rules (min_lr <= lr, ...) live in config_validate
 * (config.c). This header only defines macros; include config.h to use them.
 */
#ifndef RLHF_CONFIG_KEYS_H
#define RLHF_CONFIG_KEYS_H

#include <limits.h>

#define RLHF_CONFIG_SECTIONS(S)                                                           \
    S(run) S(model) S(tokenizer) S(data) S(chat) S(optim) S(train) S(rm) S(gen) S(ppo) S(dpo) S(grpo)      \
    S(judge) S(lora)

/* clang-format off */
#define RLHF_CONFIG_KEYS_run(X) \
    X(run, seed, INT, 1234, 0, INT_MAX, "seed of every random stream (weight init, data order, sampling)") \
    X(run, out_dir, STR, "runs/default", 0, 0, "folder for checkpoints, logs and metrics of this run") \
    X(run, resume, STR, "none", 0, 0, "none = start fresh; auto = latest checkpoint in out_dir if any; otherwise the path of a checkpoint") \
    X(run, log_every, INT, 10, 1, 1000000000, "print and log metrics every N steps") \
    X(run, eval_every, INT, 100, 0, 1000000000, "evaluate every N steps (0 = only at the end)") \
    X(run, ckpt_every, INT, 100, 0, 1000000000, "write a checkpoint every N steps (0 = only at the end)") \
    X(run, keep_last, INT, 3, 1, 1000000, "keep the last K checkpoints, delete older ones") \
    X(run, threads, INT, 0, 0, 64, "kernel threads per rank (at most 64, the kernel pool's size: use more ranks per node for more CPUs), 0 = auto: the CPUs the rank may run on divided among the ranks of the job on the node that share them (in synchronous PPO/GRPO only the ranks of the same phase: learners, or actors and reward servers); one pool for GEMMs and element-wise ops, OpenBLAS itself single-threaded") \
    X(run, gemm, ENUM, "auto", "auto|own|openblas", 0, "GEMM of the linear layers and LM head: auto = gemm.c's AVX-512 kernel on Intel CPUs and wherever OpenBLAS runs kernels without AVX-512 (OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU, say), OpenBLAS on its AVX-512 kernels elsewhere (the faster where measured, docs/bench.md); own = gemm.c wherever the CPU runs the AVX-512 copy of the library; openblas. A rule, not a timing: the same machine and config always choose the same kernel, so runs stay reproducible") \
    X(run, lm_chunk_mb, INT, 128, 0, 1048576, "MiB of logits the LM head holds at once in training and scoring: it runs over chunks of token rows (multiples of 48) and recomputes each chunk's logits in the backward, so memory does not grow with tokens x vocabulary (128 = 192 rows at a 151,936 vocabulary); 0 = all rows at once (the full tokens x vocabulary logits). Log-probs, entropies and every gradient but the LM head weight's are the same bits either way; that one equals to fp32 rounding") \
    X(run, bad_data, ENUM, "skip", "skip|fail", 0, "a bad dataset line: skip it (warn with file:line, count) or fail the run") \
    X(run, max_nonfinite, INT, 5, 0, 1000000, "consecutive steps with a non-finite loss or gradient that are skipped before the run stops") \
    X(run, peer_timeout, FLOAT, 600, 0, 1e9, "seconds a rank waits for a silent peer (a message, a broadcast, a collective) before it aborts the job, 0 = forever; raise it where a rank can stall for minutes (a checkpoint write to a slow parallel file system); RLHF_PEER_TIMEOUT in the environment overrides it") \
    X(run, stop_at_step, INT, 0, 0, 1000000000, "end this process after this step with a checkpoint, as if the job's time ran out (0 = run to the end); resume with run.resume=auto")

#define RLHF_CONFIG_KEYS_model(X) \
    X(model, preset, ENUM, "tiny", "tiny|gpt2|llama-tiny|smol|custom", 0, "architecture preset: tiny (GPT-2 family, L4 NH4 C128 T128), gpt2 (124M), llama-tiny (Llama family, L4 NH4 NKV2 C128 F344 T128, tied), smol (SmolLM2-135M's shape), custom (set every size below); the keys below override a preset's values") \
    X(model, family, ENUM, "auto", "auto|gpt2|llama", 0, "architecture family: auto = the preset's (custom: gpt2); gpt2 (LayerNorm, learned positions, GELU MLP) or llama (RMSNorm, rotary positions, SwiGLU MLP, grouped-query attention); a family other than the preset's needs model.preset = custom") \
    X(model, init, STR, "", 0, 0, "checkpoint file, or run directory (its latest checkpoint), to start from (empty = random initialisation)") \
    X(model, n_layer, INT, 0, 0, 256, "transformer blocks (0 = from preset)") \
    X(model, n_head, INT, 0, 0, 256, "attention heads (0 = from preset)") \
    X(model, n_embd, INT, 0, 0, 16384, "embedding width (0 = from preset); gpt2: divisible by n_head; llama: too, unless model.head_dim is set") \
    X(model, max_seq_len, INT, 0, 0, 65536, "longest sequence, prompt + response (0 = from preset)") \
    X(model, vocab_size, INT, 0, 0, 16777216, "vocabulary size (0 = from the tokenizer)") \
    X(model, n_kv_head, INT, 0, 0, 256, "llama: key/value heads of grouped-query attention, dividing n_head (1 = multi-query; 0 = from preset, custom: n_head)") \
    X(model, d_ff, INT, 0, 0, 262144, "llama: width of the SwiGLU MLP, intermediate_size (0 = from preset; custom llama needs it)") \
    X(model, head_dim, INT, 0, 0, 1024, "llama: width of one attention head, even (0 = from preset, custom: n_embd / n_head)") \
    X(model, qkv_bias, ENUM, "auto", "auto|true|false", 0, "llama: biases on the q/k/v projections, as Qwen2 (auto = the preset's, custom: false)") \
    X(model, qk_norm, ENUM, "auto", "auto|true|false", 0, "llama: per-head RMSNorm of q and k before the rotation, as Qwen3 (auto = the preset's, custom: false)") \
    X(model, tie_embeddings, ENUM, "auto", "auto|true|false", 0, "llama: the LM head is the token embedding (auto = the preset's, custom: true); false adds lm_head.weight") \
    X(model, rope_theta, FLOAT, 0, 0, 1e12, "llama: base of the rotary frequencies (0 = from preset, custom: 10000)") \
    X(model, norm_eps, FLOAT, 0, 0, 0.5, "llama: epsilon of the RMSNorms (0 = from preset, custom: 1e-5)")

#define RLHF_CONFIG_KEYS_tokenizer(X) \
    X(tokenizer, path, STR, "", 0, 0, "folder with vocab.json + merges.txt, or a Hugging Face tokenizer.json (empty = the tokenizer stored in the model.init checkpoint, either form)") \
    X(tokenizer, train_vocab_size, INT, 512, 257, 16777216, "vocabulary size when training a tokenizer (256 bytes + merges + <|endoftext|>)") \
    X(tokenizer, train_files, STR, "", 0, 0, "comma-separated text files to train the tokenizer on")

#define RLHF_CONFIG_KEYS_data(X) \
    X(data, train, STR, "", 0, 0, "training JSONL (SFT, preference or prompt records by stage)") \
    X(data, eval, STR, "", 0, 0, "held-out JSONL (empty = split from train where the stage supports it)") \
    X(data, max_prompt_len, INT, 64, 1, 65536, "prompt tokens kept (see truncate_prompt)") \
    X(data, max_response_len, INT, 64, 1, 65536, "response tokens kept (the end is cut)") \
    X(data, truncate_prompt, ENUM, "left", "left|right", 0, "which end of a long prompt is cut: left keeps the end of the prompt, right keeps its start") \
    X(data, shuffle, BOOL, true, 0, 1, "a fresh seeded permutation every epoch (false = file order)") \
    X(data, max_line_bytes, INT, 1048576, 64, 1073741824, "longest JSONL line accepted; longer lines are bad data")

#define RLHF_CONFIG_KEYS_chat(X) \
    X(chat, template, ENUM, "auto", "auto|chatml|qwen2.5|qwen3|llama3|plain", 0, "how conversational records ({\"messages\": [...]} and message-list prompt/chosen/rejected) become text: auto = recognise the model's chat template (tokenizer_config.json in tokenizer.path, else the model.init checkpoint's /tokenizer/chat_template) as one of the others; chat-formatted records encode special tokens as ids, learn every assistant turn and stop generation at the end-of-turn token; chatml (SmolLM2), qwen2.5 (ChatML with Qwen's default system prompt), qwen3 (ChatML with <think> blocks), llama3 (Llama 3.1/3.2 with the Cutting Knowledge Date system header), plain (contents concatenated, no markup); see docs/data.md") \
    X(chat, date, STR, "26 Jul 2024", 0, 0, "llama3: the Today Date of the system header (the template's own default; transformers puts today's date there)") \
    X(chat, enable_thinking, BOOL, true, 0, 1, "qwen3: false ends the generation prompt with an empty <think></think> block (Qwen3's non-thinking mode)")

#define RLHF_CONFIG_KEYS_optim(X) \
    X(optim, lr, FLOAT, 3e-4, 0.0, 10.0, "peak learning rate (AdamW)") \
    X(optim, min_lr, FLOAT, 3e-5, 0.0, 10.0, "learning rate at the end of the cosine decay") \
    X(optim, warmup_steps, INT, 20, 0, 1000000000, "linear warm-up steps") \
    X(optim, weight_decay, FLOAT, 0.0, 0.0, 10.0, "decoupled weight decay (Loshchilov & Hutter 2019) on 2-D weights") \
    X(optim, beta1, FLOAT, 0.9, 0.0, 0.999999, "AdamW first-moment decay") \
    X(optim, beta2, FLOAT, 0.999, 0.0, 0.99999999, "AdamW second-moment decay") \
    X(optim, eps, FLOAT, 1e-8, 1e-30, 1.0, "AdamW epsilon") \
    X(optim, grad_clip, FLOAT, 1.0, 0.0, 1e9, "clip the global gradient L2 norm to this (0 = off)") \
    X(optim, zero, INT, 0, 0, 2, "shard the optimizer over the learner ranks (ZeRO, docs/cluster.md): 0 = every rank holds all AdamW moments; 1 = each rank holds 1/K of them (gradient reduce-scatter, shard update, parameter all-gather); 2 = also keep only the reduced gradient's shard (saves the gradient all-gather, not memory)") \
    X(optim, batch_size, INT, 16, 1, 16777216, "global batch: records per optimizer step over all ranks") \
    X(optim, micro_batch_size, INT, 0, 0, 16777216, "records per forward/backward on a rank, gradients accumulated (0 = the rank's whole share)") \
    X(optim, steps, INT, 200, 0, 1000000000, "optimizer steps (used when epochs = 0)") \
    X(optim, epochs, INT, 0, 0, 1000000, "passes over the training data (0 = run by steps)")

#define RLHF_CONFIG_KEYS_train(X) \
    X(train, recompute, BOOL, false, 0, 1, "activation recomputation for the models the learner trains (policy, reward model, PPO critic): the forward keeps only each block's input and the backward recomputes one block at a time into a single block-sized scratch, so activation memory is about C floats per token per layer plus ONE block (its B x heads x T x T attention probabilities included) instead of every block's; costs about one extra forward of the trunk per step. Results are the same bits either way")

#define RLHF_CONFIG_KEYS_rm(X) \
    X(rm, margin, FLOAT, 0.0, 0.0, 1000.0, "Bradley-Terry margin m: loss -log sigmoid(r_w - r_l - m)") \
    X(rm, normalize, BOOL, false, 0, 1, "after training, shift/scale the reward head so training rewards have mean 0, std 1") \
    X(rm, eval_split, FLOAT, 0.1, 0.0, 0.9, "fraction of train records held out (by hash of record index) when data.eval is empty")

#define RLHF_CONFIG_KEYS_gen(X) \
    X(gen, max_new_tokens, INT, 48, 1, 65536, "tokens generated per response at most") \
    X(gen, temperature, FLOAT, 1.0, 1e-3, 100.0, "softmax temperature of sampling (and of the policy's log-probs)") \
    X(gen, top_k, INT, 0, 0, 16777216, "sample from the k most likely tokens (0 = off)") \
    X(gen, top_p, FLOAT, 1.0, 1e-6, 1.0, "nucleus sampling mass (1 = off)") \
    X(gen, batch_size, INT, 0, 0, 65536, "sequences an actor decodes together (KV-cache slots); when one ends, its slot takes the work item's next pending sequence in the same step (in-flight batching); 0 = all of a work item's sequences at once. Identical prompts (grpo group_size) prefill once either way; responses are the same bit for bit for any value") \
    X(gen, pack_weights, BOOL, true, 0, 1, "decode from a panel-major copy of the blocks' linear weights and the LM head (actors pack it once per policy version): ~1.7x faster generation at batch 8 (GPT-2 124M) for 12*n_layer*n_embd^2 + vocab*n_embd more floats (494 MB at GPT-2 124M)") \
    X(gen, weights, ENUM, "f32", "f32|bf16", 0, "precision of the actors' decode copy of the weights: f32; bf16 = the blocks' linear weights and the LM head rounded to bfloat16 (nearest even), computed in fp32 (a copy whatever gen.pack_weights says): half the bytes streamed per decoded token. The learner and reward server stay fp32; the learner recomputes the on-policy behaviour log-probs in fp32 (docs/ppo.md)") \
    X(gen, bf16_dot, ENUM, "auto", "auto|on|off", 0, "with gen.weights = bf16, how the actors multiply: auto = AVX512-BF16 dot products (the linears' and LM head's inputs rounded to bf16 too, two multiply-adds per instruction) where the actor's CPU has them, else off; on = insist (an actor whose CPU lacks AVX512-BF16 stops with an error); off = each weight widened to fp32, fp32 arithmetic (the fp32 copy's results on the rounded weights, bit for bit, on any CPU)")

#define RLHF_CONFIG_KEYS_ppo(X) \
    X(ppo, rollout_batch, INT, 64, 1, 16777216, "responses per PPO update (over all actors)") \
    X(ppo, epochs, INT, 4, 1, 1000, "optimisation passes over each rollout batch") \
    X(ppo, minibatch, INT, 16, 1, 16777216, "responses per PPO minibatch (global)") \
    X(ppo, clip, FLOAT, 0.2, 1e-6, 10.0, "policy ratio clip epsilon (Schulman et al. 2017, eq. 7)") \
    X(ppo, vf_clip, FLOAT, 0.2, 0.0, 1e6, "value clip epsilon around the old values") \
    X(ppo, gamma, FLOAT, 1.0, 0.0, 1.0, "discount") \
    X(ppo, lam, FLOAT, 0.95, 0.0, 1.0, "GAE lambda (Schulman et al. 2016)") \
    X(ppo, kl_coef, FLOAT, 0.05, 0.0, 1000.0, "initial KL penalty beta per token") \
    X(ppo, kl_target, FLOAT, 6.0, 1e-6, 1e6, "adaptive KL target (Ziegler et al. 2019)") \
    X(ppo, kl_horizon, INT, 10000, 1, 1000000000, "adaptive KL horizon in responses") \
    X(ppo, adaptive_kl, BOOL, true, 0, 1, "adapt kl_coef towards kl_target") \
    X(ppo, whiten, BOOL, true, 0, 1, "whiten advantages over the batch") \
    X(ppo, ent_coef, FLOAT, 0.0, 0.0, 100.0, "entropy bonus weight") \
    X(ppo, no_eos_penalty, FLOAT, 0.0, 0.0, 1e6, "subtracted from the score of a response that ends without EOS") \
    X(ppo, max_staleness, INT, 1, 0, 1000000, "asynchronous PPO: actors generate the items of update w once they hold policy version w - max_staleness or newer, while the learner trains (0 = synchronous: exactly reproducible)") \
    X(ppo, weight_sync, ENUM, "params", "params|image", 0, "how new weights reach the actors: params = the parameter buffer by MPI_Bcast (the first weights of a launch go as an HDF5 image), image = an HDF5 image every update") \
    X(ppo, value_init, ENUM, "reward", "reward|sft", 0, "initialise the critic trunk from the reward model or the SFT policy") \
    X(ppo, reward_ckpt, STR, "", 0, 0, "reward model: checkpoint file or run directory (its latest checkpoint)") \
    X(ppo, ref_ckpt, STR, "", 0, 0, "frozen reference policy: checkpoint file or run directory (empty = model.init)") \
    X(ppo, shared_prompt, ENUM, "auto", "auto|on|off", 0, "how the reward server runs the reference and reward models over sequences that share a prompt (GRPO/RLOO groups): on = the prompt once through the KV cache, its keys and values copied to the group's other sequences, then only the responses (the row-wise kernels of decoding, in a decode copy of each model's weights made once); off = every sequence in full through the batched training forward; auto = on for a request when that runs fewer than 1/1.25 of the forward's padded rows (the cache kernels' rate is about 0.8x the forward's). Results differ between on and off by fp32 rounding only") \
    X(ppo, ref_on, ENUM, "auto", "auto|learner|reward_server", 0, "where the reference log-probs are computed: auto = on the learner (the policy with its adapters off, no reference copy on the reward server) when lora.rank > 0 and ppo.ref_ckpt is empty, else on the reward server; learner = the same, refused when it does not hold (no LoRA, or ppo.ref_ckpt set); reward_server = always there (a full copy of the reference, as without LoRA)") \
    X(ppo, updates, INT, 20, 1, 1000000000, "PPO updates (rollout batches) to run") \
    X(ppo, actor_batch, INT, 8, 1, 65536, "responses per work item: what one actor generates and scores in one go (the rollout batch is cut into such items)") \
    X(ppo, score_norm, BOOL, false, 0, 1, "normalise scores with the running mean/std of all scores seen so far (checkpointed)") \
    X(ppo, vf_lr, FLOAT, 0.0, 0.0, 10.0, "critic learning rate (0 = optim.lr)") \
    X(ppo, rollout_log, STR, "", 0, 0, "append every received rollout message to this file (u32 little-endian length + msgpack bytes); empty = off")

#define RLHF_CONFIG_KEYS_dpo(X) \
    X(dpo, beta, FLOAT, 0.1, 1e-6, 1000.0, "DPO temperature beta (Rafailov et al. 2023)") \
    X(dpo, loss, ENUM, "sigmoid", "sigmoid|ipo|cdpo", 0, "sigmoid = DPO; ipo = Azar et al. 2023; cdpo = conservative DPO with label_smoothing") \
    X(dpo, label_smoothing, FLOAT, 0.0, 0.0, 0.5, "assumed label-flip rate for cdpo") \
    X(dpo, ipo_logps, ENUM, "mean", "mean|sum", 0, "the sequence log-prob that loss = ipo compares: mean = averaged over the response tokens, as TRL does (loss_type=ipo), so the target margin 1/(2 beta) does not depend on response length; sum = summed over them, Azar et al. 2023 as written (the sigmoid and cdpo losses always use sums)") \
    X(dpo, sft_coef, FLOAT, 0.0, 0.0, 100.0, "weight of the chosen responses' per-token NLL added to the loss (RPO, Pang et al. 2024); 0 = plain DPO") \
    X(dpo, ref_cache, BOOL, true, 0, 1, "compute reference log-probs once and keep them")

#define RLHF_CONFIG_KEYS_grpo(X) \
    X(grpo, group_size, INT, 4, 2, 4096, "samples per prompt G") \
    X(grpo, kl_coef, FLOAT, 0.04, 0.0, 1000.0, "KL to the reference weight") \
    X(grpo, kl_in, ENUM, "loss", "loss|reward", 0, "loss = a per-token k3 KL term in the loss, kl_coef * (exp(lp_ref - lp) - (lp_ref - lp) - 1) on every response token (DeepSeekMath GRPO); reward = a per-sequence penalty, kl_coef * sum over the response of (lp_old - lp_ref), taken off the score before the group advantage (RLOO, Ahmadian et al. 2024; TRL's RLOO, whose per-token variant sums to the same)") \
    X(grpo, advantage, ENUM, "grpo", "grpo|rloo", 0, "grpo = (s - mean)/(std + eps) over the group; rloo = leave-one-out baseline") \
    X(grpo, scale_by_std, BOOL, true, 0, 1, "grpo advantage: divide s - group mean by the group std + eps (DeepSeekMath); false = s - group mean alone (Dr. GRPO, Liu et al. 2025: groups whose scores barely differ are not scaled up); the rloo advantage ignores it") \
    X(grpo, eps, FLOAT, 1e-4, 0.0, 1.0, "added to the group std")

#define RLHF_CONFIG_KEYS_judge(X) \
    X(judge, kind, ENUM, "rm", "rm|rule|gold|mix", 0, "what scores responses: the reward model (or ensemble, judge.rm_ckpts), a rule, the gold judge, or mix = a judge per prompt category by judge.route (docs/rewards.md)") \
    X(judge, rule, STR, "", 0, 0, "rule name or spec for kind = rule") \
    X(judge, route, STR, "", 0, 0, "judge.kind = mix: comma-separated CATEGORY:JUDGE[@SCALE[+|-OFFSET]] entries, the category detected from the prompt text by the verifiers (arith, count, repeat) or * for the rest (required), the judge rm, gold or rule:...; e.g. arith:rule:arith@2-1, count:rule:count@2-1, repeat:rule:repeat@2-1, *:rm") \
    X(judge, rm_ckpts, STR, "", 0, 0, "reward-model ensemble: comma-separated checkpoints or run directories, K >= 1 reward models scored by every reward server and combined by judge.ensemble (empty = the one model of ppo.reward_ckpt)") \
    X(judge, ensemble, ENUM, "mean_std", "mean_std|min", 0, "how K reward models' (normalised) scores combine: mean_std = mean - ensemble_lambda * std (population std over the K); min = the lowest (Coste et al. 2023)") \
    X(judge, ensemble_lambda, FLOAT, 1.0, 0.0, 100.0, "lambda of judge.ensemble = mean_std (0 = the plain mean)") \
    X(judge, task_seed, INT, 1234, 0, INT_MAX, "seed of the bundled task world (rlhf-task gen --seed) for the gold judge") \
    X(judge, monitor_gold, BOOL, false, 0, 1, "also score every rollout with the bundled task's gold judge, for monitoring only (logged as gold_score, never a reward): reward over-optimisation shows as the RM score rising while gold falls; prompts it cannot parse are left out, gold_scored counts the rest")
#define RLHF_CONFIG_KEYS_lora(X) \
    X(lora, rank, INT, 0, 0, 256, "LoRA rank r of the trained policy (SFT, DPO, PPO, GRPO, RLOO): 0 = off (full fine-tuning); r > 0 freezes the base weights and trains only low-rank adapters A (r,in), B (out,r) on the projections of lora.targets (docs/lora.md)") \
    X(lora, alpha, FLOAT, 16.0, 0.0, 1e6, "LoRA alpha: the adapters' output is scaled by alpha / rank") \
    X(lora, targets, STR, "default", 0, 0, "comma list of projections that get adapters, PEFT's names: gpt2 c_attn, attn.c_proj, c_fc, mlp.c_proj; llama q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj; default = PEFT's defaults (gpt2 c_attn; llama q_proj, v_proj); all-linear = every one of the family") \
    X(lora, dropout, FLOAT, 0.0, 0.0, 0.9, "dropout probability on the adapters' input in training (masks from a hash of the run seed and step, so runs stay reproducible and resumable)")
/* clang-format on */

#endif
