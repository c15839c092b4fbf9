#!/usr/bin/env bash
# tests/t_llama.sh — every stage and program on a Llama-family model (model.preset =
# llama-tiny: RMSNorm, rotary positions, SwiGLU, grouped-query attention, tied head) with
# real mpirun launches on the bundled task:
#   - SFT on 2 learner ranks lowers the loss; killed right after its first checkpoint
#     (RLHF_FAULT_KILL=ckpt_saved:1) and relaunched with run.resume=auto, it ends
#     bit-identical to the uninterrupted run (build/rlhf-ckpt diff);
#   - the reward model trains a score head on the SFT trunk (its loss falls);
#   - DPO from the SFT policy (model.preset left at GPT-2's tiny: the checkpoint's config
#     wins): the loss falls below log 2, where policy = reference starts;
#   - PPO with a learner, a reward server and 2 actors (4 ranks, --oversubscribe): the
#     critic's value loss falls, the actors' log-probs agree with the learner's
#     recomputation, and a kill at ckpt_saved:1 + resume=auto ends bit-identical;
#   - GRPO raises the rule score;
#   - build/rlhf-eval and build/rlhf-logprobs run on the Llama checkpoints;
#   - a tokenizer given as a Hugging Face tokenizer.json (the task tokenizer converted with
#     jq), on a model with an untied head: SFT from it stores /tokenizer/json in its
#     checkpoints and gives the same weights as from vocab.json + merges.txt; a second SFT
#     reads the tokenizer back from that checkpoint and encodes like the original files;
#     RM and PPO (learner and reward server) start from it and keep it in their
#     checkpoints; an LM head is put back on the RM's trunk.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
T=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_llama.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1 RLHF_PEER_TIMEOUT=60
fail() { echo "FAIL: $*"; exit 1; }
field() { sed -E "s/.*\"$2\": ([-0-9.e+naif]+).*/\1/" "$1"; }
MPIRUN="timeout 300 mpirun --oversubscribe -np"

"$B/rlhf-task" gen --out "$T/data" --seed 7 --sizes sft=200,prefs=120,prefs_eval=20,prompts=32,prompts_eval=6,redteam=2 >/dev/null
"$B/rlhf-tokenize" train --vocab-size 320 --out "$T/tok" "$T/data/corpus.txt" >/dev/null 2>&1

MODEL="model.preset=llama-tiny model.max_seq_len=48 data.max_prompt_len=24
  data.max_response_len=24 gen.max_new_tokens=24"
SFT="configs/sft.ini data.train=$T/data/sft.jsonl data.eval= tokenizer.path=$T/tok $MODEL
  optim.batch_size=8 optim.steps=10 optim.warmup_steps=2 optim.lr=3e-3 optim.min_lr=3e-4
  run.log_every=1 run.eval_every=0 run.ckpt_every=4"

echo "== SFT, 2 learner ranks: the loss falls; kill at ckpt_saved:1 + resume=auto is bit-identical"
$MPIRUN 2 "$B/learner" sft $SFT run.out_dir="$T/sft" > "$T/sft.log" 2>&1 || { cat "$T/sft.log"; fail "sft"; }
"$B/rlhf-ckpt" info "$T/sft" > "$T/sft.info"
grep -q "/policy: lm head, llama NKV2 F344 tied" "$T/sft.info" || { cat "$T/sft.info"; fail "sft checkpoint is not the llama-tiny model"; }
grep -q "tokenizer vocab+merges" "$T/sft.info" || { cat "$T/sft.info"; fail "sft checkpoint holds no tokenizer"; }
l0=$(grep '"stage": "sft"' "$T/sft/metrics.jsonl" | head -1 | field /dev/stdin loss)
l1=$(grep '"stage": "sft"' "$T/sft/metrics.jsonl" | tail -3 | field /dev/stdin loss | awk '{ s += $1 } END { print s / NR }')
echo "sft loss: first $l0, mean of the last 3 $l1"
awk -v a="$l0" -v b="$l1" 'BEGIN { exit !(b < a - 0.5) }' || fail "SFT loss did not fall: $l0 -> $l1"
set +e
RLHF_FAULT_KILL=ckpt_saved:1 RLHF_FAULT_LOG="$T/kill.sft" $MPIRUN 2 "$B/learner" sft $SFT \
  run.out_dir="$T/sftk" run.resume=auto > "$T/sftk1.log" 2>&1
rc=$?
set -e
[ $rc -ne 0 ] && grep -q "SIGKILL at ckpt_saved (visit 1," "$T/kill.sft" || { cat "$T/sftk1.log"; fail "sft: not killed at ckpt_saved:1 (rc $rc)"; }
$MPIRUN 2 "$B/learner" sft $SFT run.out_dir="$T/sftk" run.resume=auto > "$T/sftk2.log" 2>&1 || { cat "$T/sftk2.log"; fail "sft resume"; }
grep -q "resumed from .*ckpt-00000004.h5 at step 4" "$T/sftk2.log" || { cat "$T/sftk2.log"; fail "sft did not resume at 4"; }
"$B/rlhf-ckpt" diff "$T/sft" "$T/sftk" > "$T/diff.sft" || { cat "$T/diff.sft"; fail "killed + resumed SFT is not bit-identical"; }

echo "== reward model on the SFT trunk: its loss on the pairs it trains on falls"
# 40 pairs, 3 passes; the loss on them after training against the same model at lr 0 (the
# new head on the SFT trunk, untrained)
head -40 "$T/data/prefs_train.jsonl" > "$T/data/rmfit.jsonl"
RM="configs/rm.ini data.train=$T/data/rmfit.jsonl data.eval=$T/data/rmfit.jsonl
  model.init=$T/sft tokenizer.path= $MODEL optim.batch_size=8 optim.warmup_steps=1
  run.ckpt_every=0 run.eval_every=0 run.log_every=1 rm.normalize=true"
$MPIRUN 1 "$B/learner" rm $RM optim.steps=15 optim.lr=3e-3 optim.min_lr=3e-3 run.out_dir="$T/rm" > "$T/rm.log" 2>&1 || { cat "$T/rm.log"; fail "rm"; }
$MPIRUN 1 "$B/learner" rm $RM optim.steps=1 optim.lr=0 optim.min_lr=0 run.out_dir="$T/rm0" > "$T/rm0.log" 2>&1 || { cat "$T/rm0.log"; fail "rm at lr 0"; }
grep -q "new head initialised" "$T/rm.log" || fail "rm did not start from the SFT trunk"
"$B/rlhf-ckpt" info "$T/rm" | grep -q "/reward: score head, llama" || fail "rm checkpoint has no llama score head"
r0=$(grep '"eval_loss"' "$T/rm0/metrics.jsonl" | tail -1 | field /dev/stdin eval_loss)
r1=$(grep '"eval_loss"' "$T/rm/metrics.jsonl" | tail -1 | field /dev/stdin eval_loss)
echo "rm loss on its 40 training pairs: untrained $r0, after 15 steps $r1"
awk -v a="$r0" -v b="$r1" 'BEGIN { exit !(b < a - 0.05) }' || fail "RM loss did not fall: $r0 -> $r1"

echo "== DPO from the SFT policy: the loss on its pairs falls below log 2"
# at the start policy = reference, so every pair's loss is log 2 = 0.6931
# (model.preset left at the default, tiny of the GPT-2 family: model.init's config wins)
DPO="configs/dpo.ini data.train=$T/data/rmfit.jsonl data.eval=$T/data/rmfit.jsonl model.init=$T/sft
  data.max_prompt_len=24 data.max_response_len=24 gen.max_new_tokens=24 optim.batch_size=8 optim.steps=10 optim.warmup_steps=1 optim.lr=3e-4 optim.min_lr=3e-4
  run.ckpt_every=0 run.eval_every=0 run.log_every=1"
$MPIRUN 1 "$B/learner" dpo $DPO run.out_dir="$T/dpo" > "$T/dpo.log" 2>&1 || { cat "$T/dpo.log"; fail "dpo"; }
d0=$(grep '"stage": "dpo"' "$T/dpo/metrics.jsonl" | head -1 | field /dev/stdin loss)
d1=$(grep '"eval_loss"' "$T/dpo/metrics.jsonl" | tail -1 | field /dev/stdin eval_loss)
echo "dpo loss: first step $d0, on the 40 pairs after 10 steps $d1"
awk -v a="$d0" 'BEGIN { exit !(a > 0.6931 && a < 0.6932) }' || fail "DPO's first loss $d0 is not log 2 (policy != reference?)"
awk -v b="$d1" 'BEGIN { exit !(b < 0.6) }' || fail "DPO loss did not fall below log 2: $d0 -> $d1"
"$B/rlhf-ckpt" info "$T/dpo" | grep -q "/policy: lm head, llama NKV2 F344 tied" || fail "DPO did not keep the checkpoint's llama config"

PPO="configs/ppo.ini data.train=$T/data/prompts_train.jsonl data.eval= model.init=$T/sft $MODEL
  judge.kind=rule judge.rule=contains:help ppo.value_init=sft ppo.reward_ckpt= ppo.ref_ckpt=
  ppo.actor_batch=8 optim.lr=5e-4 optim.min_lr=5e-4 run.log_every=1"
# launch LEARNERS ACTORS STAGE OUT [overrides...]: learner + reward server + actors
launch() {
  local nl=$1 na=$2 stage=$3 out=$4; shift 4
  timeout 300 mpirun --oversubscribe -np "$nl" "$B/learner" "$stage" $PPO run.out_dir="$out" "$@" \
    : -np 1 "$B/reward_server" $PPO run.out_dir="$out" "$@" \
    : -np "$na" "$B/actor" $PPO run.out_dir="$out" "$@"
}
echo "== PPO (learner, reward server, 2 actors): value loss falls, actor = learner log-probs"
P="ppo.rollout_batch=16 ppo.minibatch=8 ppo.updates=4 run.ckpt_every=2"
launch 1 2 ppo "$T/ppo" $P > "$T/ppo.log" 2>&1 || { cat "$T/ppo.log"; fail "ppo"; }
M="$T/ppo/metrics.jsonl"
[ "$(grep -c '"stage": "ppo"' "$M")" -eq 4 ] || fail "expected 4 ppo metrics lines"
md=$(field "$M" lp_check_maxdiff | sort -g | tail -1)
echo "largest |actor - learner| log-prob: $md"
awk -v m="$md" 'BEGIN { exit !(m < 1e-3) }' || fail "actor vs learner log-probs differ by $md"
v0=$(head -1 "$M" | field /dev/stdin value_loss); v1=$(tail -1 "$M" | field /dev/stdin value_loss)
echo "ppo value loss: first update $v0, last $v1"
awk -v a="$v0" -v b="$v1" 'BEGIN { exit !(b < a) }' || fail "PPO value loss did not fall: $v0 -> $v1"
"$B/rlhf-ckpt" info "$T/ppo" | grep -q "/value: value head, llama" || fail "no llama /value in the PPO checkpoint"
set +e
RLHF_FAULT_KILL=ckpt_saved:1 RLHF_FAULT_LOG="$T/kill.ppo" launch 1 2 ppo "$T/ppok" $P run.resume=auto > "$T/ppok1.log" 2>&1
rc=$?
set -e
[ $rc -ne 0 ] && grep -q "SIGKILL at ckpt_saved (visit 1," "$T/kill.ppo" || { cat "$T/ppok1.log"; fail "ppo: not killed at ckpt_saved:1 (rc $rc)"; }
launch 1 2 ppo "$T/ppok" $P run.resume=auto > "$T/ppok2.log" 2>&1 || { cat "$T/ppok2.log"; fail "ppo resume"; }
grep -q "resumed from .*ckpt-00000002.h5 at step 2" "$T/ppok2.log" || { cat "$T/ppok2.log"; fail "ppo did not resume at 2"; }
"$B/rlhf-ckpt" diff "$T/ppo" "$T/ppok" > "$T/diff.ppo" || { cat "$T/diff.ppo"; fail "killed + resumed PPO is not bit-identical"; }

echo "== GRPO raises the rule score"
G="ppo.rollout_batch=32 ppo.minibatch=16 ppo.epochs=2 grpo.group_size=4 optim.lr=2e-3 optim.min_lr=2e-3
  ppo.updates=6 run.ckpt_every=0"
launch 1 2 grpo "$T/grpo" $G > "$T/grpo.log" 2>&1 || { cat "$T/grpo.log"; fail "grpo"; }
g0=$(head -2 "$T/grpo/metrics.jsonl" | field /dev/stdin score | awk '{ s += $1 } END { print s / NR }')
g1=$(tail -2 "$T/grpo/metrics.jsonl" | field /dev/stdin score | awk '{ s += $1 } END { print s / NR }')
echo "grpo score: mean of the first 2 updates $g0, of the last 2 $g1"
awk -v a="$g0" -v b="$g1" 'BEGIN { exit !(b > a + 0.1) }' || fail "GRPO score did not rise: $g0 -> $g1"

echo "== rlhf-eval and rlhf-logprobs on the Llama checkpoints"
"$B/rlhf-eval" --prompts "$T/data/prompts_eval.jsonl" --task-seed 7 --k 2 --max-new 16 \
  --baseline "sft=$T/sft" --model "grpo=$T/grpo" --rm "$T/rm" > "$T/eval.txt" 2> "$T/eval.log" || { cat "$T/eval.log"; fail "rlhf-eval"; }
grep -q "grpo" "$T/eval.txt" || { cat "$T/eval.txt"; fail "rlhf-eval: no row for the grpo model"; }
printf '[1, 2, 3, 4, 5]\n[7, 8]\n' > "$T/toks.jsonl"
"$B/rlhf-logprobs" "$T/sft" < "$T/toks.jsonl" > "$T/lp.txt" || fail "rlhf-logprobs on the policy"
[ "$(grep -c '"logprobs":\[-' "$T/lp.txt")" -eq 2 ] || { cat "$T/lp.txt"; fail "rlhf-logprobs: no log-probs"; }
"$B/rlhf-logprobs" "$T/rm" < "$T/toks.jsonl" | grep -q '"score":' || fail "rlhf-logprobs on the reward model"
"$B/rlhf-logprobs" "$T/ppo" --group value < "$T/toks.jsonl" | grep -q '"values":\[' || fail "rlhf-logprobs on the critic"

echo "== a tokenizer.json tokenizer (untied head): SFT from it, then from its checkpoint, RM and PPO on it"
mkdir -p "$T/tj"
jq -n --slurpfile v "$T/tok/vocab.json" --rawfile m "$T/tok/merges.txt" '{
  version: "1.0", truncation: null, padding: null,
  added_tokens: [{id: $v[0]["<|endoftext|>"], content: "<|endoftext|>", single_word: false,
                  lstrip: false, rstrip: false, normalized: false, special: true}],
  normalizer: null,
  pre_tokenizer: {type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true},
  post_processor: null, decoder: {type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true},
  model: {type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "",
          end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, vocab: $v[0],
          merges: ($m | split("\n") | map(select(length > 0 and (startswith("#version") | not))))}
}' > "$T/tj/tokenizer.json"
SFT2="configs/sft.ini data.train=$T/data/sft.jsonl data.eval= $MODEL model.tie_embeddings=false optim.batch_size=8
  optim.steps=4 optim.warmup_steps=1 optim.lr=3e-3 optim.min_lr=3e-4 run.log_every=1
  run.eval_every=0 run.ckpt_every=0"
$MPIRUN 1 "$B/learner" sft $SFT2 tokenizer.path="$T/tok" run.out_dir="$T/vm" > "$T/vm.log" 2>&1 || { cat "$T/vm.log"; fail "sft from vocab.json + merges.txt"; }
$MPIRUN 1 "$B/learner" sft $SFT2 tokenizer.path="$T/tj" run.out_dir="$T/tj1" > "$T/tj1.log" 2>&1 || { cat "$T/tj1.log"; fail "sft from tokenizer.json"; }
"$B/rlhf-ckpt" info "$T/tj1" | grep -q "tokenizer tokenizer.json" || fail "the checkpoint does not hold the tokenizer.json"
"$B/rlhf-ckpt" diff "$T/vm" "$T/tj1" > "$T/diff.tj" || { cat "$T/diff.tj"; fail "tokenizer.json and vocab.json + merges.txt trained different weights"; }
$MPIRUN 1 "$B/learner" sft $SFT2 model.init="$T/tj1" tokenizer.path= run.out_dir="$T/tj2" > "$T/tj2.log" 2>&1 || { cat "$T/tj2.log"; fail "sft from the tokenizer.json checkpoint"; }
"$B/rlhf-ckpt" info "$T/tj2" | grep -q "tokenizer tokenizer.json" || fail "the tokenizer.json did not flow into the next checkpoint"
echo '"Please help: the 3 cats can'"'"'t sleep.\n"' > "$T/text.jsonl"
"$B/rlhf-tokenize" --ckpt "$T/tj2" < "$T/text.jsonl" > "$T/ids_tj.txt" || fail "rlhf-tokenize --ckpt on a tokenizer.json checkpoint"
"$B/rlhf-tokenize" --vocab "$T/tok/vocab.json" --merges "$T/tok/merges.txt" < "$T/text.jsonl" > "$T/ids_vm.txt"
cmp -s "$T/ids_tj.txt" "$T/ids_vm.txt" || fail "tokenizer.json checkpoint encodes otherwise: $(cat "$T/ids_tj.txt") vs $(cat "$T/ids_vm.txt")"
"$B/rlhf-ckpt" info "$T/tj2" | grep -q "/policy: lm head, llama NKV2 F344 untied" || fail "no untied LM head in the checkpoint"
# a score head and a critic on the untied trunk (lm_head.weight is not the trunk's), the
# tokenizer from /tokenizer/json in the learner and the reward server
$MPIRUN 1 "$B/learner" rm $RM model.init="$T/tj2" optim.steps=2 optim.lr=1e-3 optim.min_lr=1e-3 \
  run.out_dir="$T/tjrm" > "$T/tjrm.log" 2>&1 || { cat "$T/tjrm.log"; fail "rm on the untied tokenizer.json checkpoint"; }
"$B/rlhf-ckpt" info "$T/tjrm" | grep -q "tokenizer tokenizer.json" || fail "the rm checkpoint lost the tokenizer.json"
# and back: an LM on the reward model's trunk (a new, untied lm_head.weight)
$MPIRUN 1 "$B/learner" sft $SFT2 model.init="$T/tjrm" tokenizer.path= optim.steps=1 run.out_dir="$T/tjlm" \
  > "$T/tjlm.log" 2>&1 || { cat "$T/tjlm.log"; fail "sft from the untied reward model"; }
grep -q "(/reward, score head, new head initialised)" "$T/tjlm.log" || { cat "$T/tjlm.log"; fail "sft did not start from the reward trunk"; }
launch 1 1 ppo "$T/tjppo" model.init="$T/tj2" ppo.rollout_batch=8 ppo.minibatch=8 ppo.updates=1 \
  run.ckpt_every=0 > "$T/tjppo.log" 2>&1 || { cat "$T/tjppo.log"; fail "ppo on the untied tokenizer.json checkpoint"; }
"$B/rlhf-ckpt" info "$T/tjppo" | grep -q "tokenizer tokenizer.json" || fail "the ppo checkpoint lost the tokenizer.json"
echo "t_llama: all checks passed"
