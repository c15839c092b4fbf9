#!/usr/bin/env bash
# tests/t_lora.sh — LoRA (lora.rank > 0) through the training stages with real mpirun, on
# a tiny custom model:
#   - SFT with LoRA lowers the loss; the checkpoint holds the frozen base unchanged (equal
#     to the fresh-init base of the same seed), the adapters (/lora) and their AdamW state;
#   - resume is bit-exact: N steps == N/2 (run.stop_at_step) + resume=auto + N/2, with
#     lora.dropout > 0 (keyed masks);
#   - DPO with LoRA from the LoRA SFT checkpoint (its adapters merged into the start
#     weights; the reference = adapters off, no second model) raises reward accuracy;
#   - GRPO with LoRA: after the first image only the adapters travel to the actors
#     (format lora-adapters), a small share of the image; actor and learner log-probs
#     agree; the rule score rises;
#   - PPO with a LoRA critic (ppo.value_init = sft: adapters + a trainable value head on
#     the policy's frozen trunk) lowers its value loss, the score rises, the base stays
#     frozen, the checkpoint holds the critic's adapters + head (/value_lora) and no
#     critic trunk; each actor packs the base's decode copy once (adapters-only updates
#     skip the re-pack) and the run is bit-identical to one that sends an image, and
#     re-packs, every update; resume (run.stop_at_step + resume=auto) is bit-exact,
#     adapters, their AdamW state and the critic's included;
#   - PPO with a LoRA critic on a frozen copy of a reward model's trunk (value_init =
#     reward): runs, stores that trunk (/value) with the critic, resumes bit-exactly; a
#     resume with the other value_init or with lora.rank = 0 is refused;
#   - export: rlhf-hf export writes the merged weights: rlhf-logprobs of the export equals
#     rlhf-logprobs of the LoRA checkpoint (base + adapters on the fly) to fp32 rounding;
#   - export --peft: a PEFT folder (adapter_config.json, adapter_model.safetensors with
#     PEFT's names) + the base; tests/ref/peft_lora.py applies it with PEFT's formula in
#     plain Python and matches rlhf-logprobs of the LoRA checkpoint;
#   - a user error: lora.rank on the reward-model stage, a bad target name;
#   - the reference log-probs on the learner (ppo.ref_on = auto: adapters off, no reference
#     copy on the reward server): the same lp_ref (RLHF_REF_DUMP, < 1e-5) and KL as the
#     reward server's (ppo.ref_on = reward_server), a lower reward-server peak RSS, the
#     same lp_ref bit for bit with 2 learner ranks, 1 actor == 2 actors bit for bit; with
#     ppo.ref_ckpt set the reward server loads the reference; ppo.ref_on = learner without
#     LoRA is refused. (The PPO cases above run with the reference on the learner.)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
T=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_lora.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1 RLHF_PEER_TIMEOUT=60
MPIRUN="mpirun --oversubscribe -np"
fail() { echo "FAIL: $*"; exit 1; }
strip_time() { sed -E 's/"time": [0-9.]+, //' "$1"; }

"$B/rlhf-task" gen --out "$T/data" --seed 7 --sizes sft=400,prefs=300,prefs_eval=60,prompts=64,prompts_eval=10,redteam=5 >/dev/null
"$B/rlhf-tokenize" train --vocab-size 320 --out "$T/tok" "$T/data/corpus.txt" >/dev/null 2>&1

MODEL="model.preset=custom model.n_layer=2 model.n_head=2 model.n_embd=32 model.max_seq_len=64
  data.max_prompt_len=24 data.max_response_len=24 gen.max_new_tokens=24"
LORA="lora.rank=4 lora.alpha=8 lora.targets=all-linear"
SFT="configs/sft.ini data.train=$T/data/sft.jsonl data.eval=$T/data/sft.jsonl tokenizer.path=$T/tok
  $MODEL optim.batch_size=16 optim.warmup_steps=2 optim.lr=1e-2 optim.min_lr=1e-3 run.log_every=2
  run.ckpt_every=0 run.eval_every=0"
evloss() { grep '"eval_loss"' "$1" | tail -1 | sed -E 's/.*"eval_loss": ([0-9.e+-]+).*/\1/'; }

echo "== SFT base (full fine-tuning) for the later stages"
$MPIRUN 1 "$B/learner" sft $SFT optim.steps=60 run.out_dir="$T/base" > "$T/base.log" 2>&1 || { cat "$T/base.log"; fail "base sft"; }

echo "== SFT with LoRA from the base: eval loss falls, base frozen"
$MPIRUN 1 "$B/learner" sft $SFT $LORA model.init="$T/base" tokenizer.path= optim.steps=40 optim.lr=3e-3 run.out_dir="$T/lsft" > "$T/lsft.log" 2>&1 || { cat "$T/lsft.log"; fail "lora sft"; }
grep -q "LoRA rank 4 alpha 8" "$T/lsft.log" || { cat "$T/lsft.log"; fail "no LoRA line"; }
e0=$(evloss "$T/base/metrics.jsonl"); e1=$(evloss "$T/lsft/metrics.jsonl")
echo "eval loss: base $e0, after LoRA SFT $e1"
awk -v a="$e0" -v b="$e1" 'BEGIN { exit !(b < a - 0.01) }' || fail "LoRA SFT eval loss did not fall: $e0 -> $e1"
h5ls -r "$T/lsft/ckpt-00000040.h5" > "$T/ls.txt"
grep -q "/lora/h.0.attn.c_attn.lora_A.weight" "$T/ls.txt" || { cat "$T/ls.txt"; fail "no adapters in the checkpoint"; }
grep -q "/optim/lora/m" "$T/ls.txt" || fail "no adapter AdamW state"
grep -q "/optim/policy" "$T/ls.txt" && fail "a base-size optimizer state was written"
# the base group is the model.init weights, untouched
h5dump -d /policy/h.1.mlp.c_fc.weight "$T/lsft/ckpt-00000040.h5" | grep -v HDF5 > "$T/w1"
h5dump -d /policy/h.1.mlp.c_fc.weight "$T/base/ckpt-00000060.h5" | grep -v HDF5 > "$T/w0"
diff -q "$T/w0" "$T/w1" >/dev/null || fail "the frozen base changed during LoRA SFT"

echo "== LoRA SFT resume is bit-exact (with lora.dropout=0.1)"
R="$SFT $LORA lora.dropout=0.1 model.init=$T/base tokenizer.path= optim.steps=8"
$MPIRUN 1 "$B/learner" sft $R run.out_dir="$T/full" > "$T/full.log" 2>&1 || { cat "$T/full.log"; fail "full"; }
$MPIRUN 1 "$B/learner" sft $R run.out_dir="$T/half" run.stop_at_step=4 > "$T/half.log" 2>&1 || { cat "$T/half.log"; fail "half"; }
$MPIRUN 1 "$B/learner" sft $R run.out_dir="$T/half" run.resume=auto > "$T/res.log" 2>&1 || { cat "$T/res.log"; fail "resume"; }
grep -q "resumed from .*ckpt-00000004.h5 at step 4" "$T/res.log" || { cat "$T/res.log"; fail "did not resume at 4"; }
"$B/rlhf-ckpt" diff "$T/full/ckpt-00000008.h5" "$T/half/ckpt-00000008.h5" || fail "resumed LoRA SFT is not bit-identical"
diff <(strip_time "$T/full/metrics.jsonl") <(strip_time "$T/half/metrics.jsonl") || fail "metrics differ after resume"
h5diff "$T/full/ckpt-00000008.h5" "$T/half/ckpt-00000008.h5" /lora || fail "resumed adapters differ"
h5diff "$T/full/ckpt-00000008.h5" "$T/half/ckpt-00000008.h5" /optim/lora || fail "resumed adapter AdamW state differs"
# rlhf-ckpt diff reads the adapters: another dropout stream leaves /policy (the frozen
# base) identical and must show up in /lora and /optim/lora
$MPIRUN 1 "$B/learner" sft $R lora.dropout=0.2 run.out_dir="$T/drop2" > "$T/drop2.log" 2>&1 || { cat "$T/drop2.log"; fail "dropout 0.2"; }
"$B/rlhf-ckpt" diff "$T/full/ckpt-00000008.h5" "$T/drop2/ckpt-00000008.h5" > "$T/d2.txt" && { cat "$T/d2.txt"; fail "rlhf-ckpt diff: adapters trained with another dropout reported identical"; }
grep -q "^  /lora .*DIFFER" "$T/d2.txt" && grep -q "^  /optim/lora/m .*DIFFER" "$T/d2.txt" && grep -q "^  /policy .*identical" "$T/d2.txt" \
  || { cat "$T/d2.txt"; fail "rlhf-ckpt diff does not name the differing adapters"; }
$MPIRUN 1 "$B/learner" sft $R lora.rank=0 run.out_dir="$T/half" run.resume=auto > "$T/bad.log" 2>&1 && fail "resume of a LoRA checkpoint without lora accepted"
# evaluation runs without dropout: the run's final eval loss (adapters on the fly) is the
# eval loss of its checkpoint merged into plain weights (one step at learning rate 0)
$MPIRUN 1 "$B/learner" sft $R lora.dropout=0.5 run.out_dir="$T/d5" > "$T/d5.log" 2>&1 || { cat "$T/d5.log"; fail "dropout 0.5"; }
$MPIRUN 1 "$B/learner" sft $SFT model.init="$T/d5" tokenizer.path= optim.steps=1 optim.lr=0 optim.min_lr=0 optim.warmup_steps=0 run.out_dir="$T/d5e" > "$T/d5e.log" 2>&1 || { cat "$T/d5e.log"; fail "eval of the merged checkpoint"; }
e5=$(evloss "$T/d5/metrics.jsonl"); e5m=$(evloss "$T/d5e/metrics.jsonl")
echo "lora.dropout=0.5: final eval loss $e5, of the merged checkpoint $e5m"
awk -v a="$e5" -v b="$e5m" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && b != "" && d < 1e-4) }' \
  || fail "LoRA eval loss $e5 is not the merged model's $e5m (dropout in evaluation?)"
grep -q "LoRA adapters" "$T/bad.log" || { cat "$T/bad.log"; fail "unclear resume error"; }

echo "== export: merged weights == base + adapters on the fly"
"$B/rlhf-hf" export "$T/lsft/ckpt-00000040.h5" "$T/hf" > /dev/null || fail "export"
"$B/rlhf-hf" import "$T/hf" "$T/imported.h5" > /dev/null || fail "re-import"
printf '[5, 17, 33, 2, 90, 41, 7, 12, 250, 3]\n[9, 8, 7, 6]\n' > "$T/toks.jsonl"
"$B/rlhf-logprobs" "$T/lsft/ckpt-00000040.h5" < "$T/toks.jsonl" | tr -c '0-9.e+\n-' ' ' | tr -s ' ' '\n' | grep . > "$T/lp_lora"
"$B/rlhf-logprobs" "$T/imported.h5" < "$T/toks.jsonl" | tr -c '0-9.e+\n-' ' ' | tr -s ' ' '\n' | grep . > "$T/lp_hf"
"$B/rlhf-logprobs" "$T/base/ckpt-00000060.h5" < "$T/toks.jsonl" | tr -c '0-9.e+\n-' ' ' | tr -s ' ' '\n' | grep . > "$T/lp_base"
[ "$(wc -l < "$T/lp_lora")" -ge 10 ] || fail "too few log-probs"
d=$(paste "$T/lp_lora" "$T/lp_hf" | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d } END { print m + 0 }')
db=$(paste "$T/lp_lora" "$T/lp_base" | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d } END { print m + 0 }')
echo "log-probs: LoRA checkpoint vs merged export max |diff| $d; vs the base $db"
awk -v d="$d" -v b="$db" 'BEGIN { exit !(d < 1e-4 && b > 1e-3) }' || fail "merged export differs ($d) or the adapters do nothing ($db)"
echo "== export --peft: a PEFT adapter folder, checked by the plain-Python PEFT reference"
"$B/rlhf-hf" export "$T/lsft/ckpt-00000040.h5" "$T/peft" --peft > /dev/null || fail "export --peft"
grep -q '"peft_type": "LORA"' "$T/peft/adapter_config.json" || fail "adapter_config.json"
"$B/rlhf-logprobs" "$T/lsft/ckpt-00000040.h5" < "$T/toks.jsonl" > "$T/lp.jsonl"
python3 tests/ref/peft_lora.py "$T/peft/base" "$T/peft" "$T/toks.jsonl" "$T/lp.jsonl" || fail "PEFT reference disagrees"
"$B/rlhf-logprobs" "$T/base/ckpt-00000060.h5" < "$T/toks.jsonl" > "$T/lpb.jsonl"
python3 tests/ref/peft_lora.py "$T/peft/base" "$T/peft" "$T/toks.jsonl" "$T/lpb.jsonl" > /dev/null && fail "the PEFT reference cannot tell the base from the adapted model"
"$B/rlhf-hf" export "$T/base/ckpt-00000060.h5" "$T/nopeft" --peft > "$T/np.log" 2>&1 && fail "--peft on a checkpoint without adapters accepted"
grep -q "holds no LoRA adapters" "$T/np.log" || { cat "$T/np.log"; fail "unclear --peft error"; }

echo "== DPO with LoRA from the LoRA SFT checkpoint"
DPO="configs/dpo.ini model.init=$T/lsft tokenizer.path= $MODEL $LORA data.train=$T/data/prefs_train.jsonl
  data.eval=$T/data/prefs_eval.jsonl optim.batch_size=16 optim.steps=24 optim.lr=5e-3 optim.min_lr=5e-3
  optim.warmup_steps=1 run.log_every=4 run.eval_every=24 run.ckpt_every=0"
$MPIRUN 2 "$B/learner" dpo $DPO run.out_dir="$T/dpo" > "$T/dpo.log" 2>&1 || { cat "$T/dpo.log"; fail "lora dpo"; }
grep -q "adapters merged" "$T/dpo.log" || { cat "$T/dpo.log"; fail "the LoRA SFT adapters were not merged at model.init"; }
# the reference is the start policy with adapters off: the first loss is log 2
l0=$(grep -m1 '"loss"' "$T/dpo/metrics.jsonl" | sed -E 's/.*"loss": ([0-9.e+-]+).*/\1/')
mg=$(grep '"eval_margin"' "$T/dpo/metrics.jsonl" | tail -1 | sed -E 's/.*"eval_margin": ([-0-9.e+]+).*/\1/')
echo "DPO first loss $l0, held-out implicit reward margin $mg"
awk -v l="$l0" -v m="$mg" 'BEGIN { d = l - 0.693147; if (d < 0) d = -d; exit !(d < 0.02 && m > 0.05) }' || fail "DPO with LoRA: first loss $l0 (want log 2), eval margin $mg"

echo "== GRPO with LoRA: adapters-only weight sync"
PPO="configs/ppo.ini data.train=$T/data/prompts_train.jsonl data.eval= model.init=$T/base
  $MODEL $LORA judge.kind=rule judge.rule=contains:help ppo.reward_ckpt= ppo.ref_ckpt=
  ppo.actor_batch=8 run.ckpt_every=0 run.log_every=1 ppo.weight_sync=params
  ppo.rollout_batch=64 ppo.minibatch=16 ppo.epochs=2 grpo.group_size=4 optim.lr=1e-2 optim.min_lr=1e-2"
timeout 600 mpirun -np 1 "$B/learner" grpo $PPO run.out_dir="$T/g" ppo.updates=8 \
  : -np 1 "$B/reward_server" $PPO run.out_dir="$T/g" \
  : -np 2 "$B/actor" $PPO run.out_dir="$T/g" > "$T/g.log" 2>&1 || { cat "$T/g.log"; fail "lora grpo"; }
line=$(grep "LoRA weight sync" "$T/g.log") || { cat "$T/g.log"; fail "no adapter-only sync"; }
echo "$line"
pct=$(echo "$line" | sed -E 's/.*; ([0-9.]+)%.*/\1/')
awk -v p="$pct" 'BEGIN { exit !(p < 25) }' || fail "adapter sync is $pct% of the image"
M="$T/g/metrics.jsonl"
md=$(grep -o '"lp_check_maxdiff": [-0-9.e+]*' "$M" | sed -E 's/.*: //' | sort -g | tail -1)
[ -n "$md" ] && { awk -v m="$md" 'BEGIN { exit !(m < 1e-3) }' || fail "actor vs learner log-probs differ by $md"; echo "largest |actor - learner| log-prob: $md"; }
s0=$(grep -m1 '"score"' "$M" | sed -E 's/.*"score": ([-0-9.e+]+).*/\1/')
s1=$(grep '"score"' "$M" | tail -3 | sed -E 's/.*"score": ([-0-9.e+]+).*/\1/' | awk '{ s += $1 } END { print s / NR }')
echo "grpo score: first $s0, mean of the last 3 $s1"
awk -v a="$s0" -v b="$s1" 'BEGIN { exit !(b > a) }' || fail "GRPO with LoRA did not raise the score: $s0 -> $s1"

echo "== PPO with a LoRA critic on the policy's frozen trunk, the policy through adapters"
# the actors pack the base's decode copy once (the first image) and apply each update's
# adapters on top: RLHF_ACTOR_VERBOSE makes each actor report its packs at the end
LP="$PPO ppo.value_init=sft ppo.epochs=4 ppo.vf_lr=1e-3 ppo.rollout_batch=32 ppo.minibatch=8"
plaunch() {
  local out=$1; shift
  RLHF_ACTOR_VERBOSE=1 timeout 600 mpirun -np 1 "$B/learner" ppo $LP run.out_dir="$out" "$@" \
    : -np 1 "$B/reward_server" $LP run.out_dir="$out" "$@" \
    : -np 2 "$B/actor" $LP run.out_dir="$out" "$@"
}
packs() { grep -o "[0-9]* decode copy packs" "$1" | cut -d' ' -f1 | tr '\n' ' '; }
plaunch "$T/p" ppo.updates=10 > "$T/p.log" 2>&1 || { cat "$T/p.log"; fail "lora ppo"; }
grep -q "LoRA weight sync" "$T/p.log" || { cat "$T/p.log"; fail "PPO: no adapter-only sync"; }
M="$T/p/metrics.jsonl"
[ "$(grep -c '"stage": "ppo"' "$M")" -eq 10 ] || fail "PPO: expected 10 metrics lines"
md=$(grep -o '"lp_check_maxdiff": [-0-9.e+]*' "$M" | sed -E 's/.*: //' | sort -g | tail -1)
[ -n "$md" ] || fail "PPO: no lp_check_maxdiff"
awk -v m="$md" 'BEGIN { exit !(m < 1e-3) }' || fail "PPO: actor vs learner log-probs differ by $md"
ev() { grep -o "\"$2\": [-0-9.e+]*" "$1" | sed -E 's/.*: //'; }
v0=$(ev "$M" value_loss | head -1); v1=$(ev "$M" value_loss | tail -3 | awk '{ s += $1 } END { print s / NR }')
s0=$(ev "$M" score | head -1); s1=$(ev "$M" score | tail -3 | awk '{ s += $1 } END { print s / NR }')
echo "ppo: value loss first $v0, mean of the last 3 $v1; score first $s0, mean of the last 3 $s1; largest |actor - learner| log-prob $md"
awk -v a="$v0" -v b="$v1" 'BEGIN { exit !(b < a) }' || fail "PPO with LoRA: the critic's value loss did not fall: $v0 -> $v1"
awk -v a="$s0" -v b="$s1" 'BEGIN { exit !(b > a) }' || fail "PPO with LoRA did not raise the score: $s0 -> $s1"
"$B/rlhf-ckpt" info "$T/p" > "$T/pinfo.txt"
h5ls -r "$T/p/ckpt-00000010.h5" > "$T/pls.txt"
grep -q "/value_lora/h.0.attn.c_attn.lora_A.weight" "$T/pls.txt" || { cat "$T/pls.txt"; fail "PPO with LoRA: no critic adapters (/value_lora) in the checkpoint"; }
grep -q "/value_lora/v_head.summary.weight" "$T/pls.txt" || fail "PPO with LoRA: no critic value head in the checkpoint"
grep -q "/optim/value_lora/m" "$T/pls.txt" || fail "PPO with LoRA: no critic AdamW state"
grep -q "^/value/" "$T/pls.txt" && fail "PPO with a LoRA critic on the policy's trunk stored a critic trunk"
grep -q "critic: LoRA rank 4 on the policy's frozen trunk" "$T/p.log" || { cat "$T/p.log"; fail "no critic set-up line"; }
grep -q "/lora/h.0.attn.c_attn.lora_A.weight" "$T/pls.txt" || fail "PPO with LoRA: no adapters in the checkpoint"
grep -q "/optim/lora/m" "$T/pls.txt" || fail "PPO with LoRA: no adapter AdamW state"
# the frozen base is the model.init weights, untouched by 10 updates
h5dump -d /policy/h.1.mlp.c_fc.weight "$T/p/ckpt-00000010.h5" | grep -v HDF5 > "$T/pw1"
diff -q "$T/w0" "$T/pw1" >/dev/null || fail "PPO with LoRA changed the frozen base"
[ "$(packs "$T/p.log")" = "1 1 " ] || { grep "decode copy" "$T/p.log"; fail "PPO with LoRA: actors re-packed the base (packs: $(packs "$T/p.log"), want 1 each)"; }

echo "== LoRA PPO, synchronous: adapters-only sync (one pack) == an image every update (a pack per version)"
SY="ppo.updates=4"
plaunch "$T/pa" $SY > "$T/pa.log" 2>&1 || { cat "$T/pa.log"; fail "lora ppo 4 updates"; }
plaunch "$T/pi" $SY ppo.weight_sync=image > "$T/pi.log" 2>&1 || { cat "$T/pi.log"; fail "lora ppo, weight_sync=image"; }
echo "decode copy packs per actor: adapters-only $(packs "$T/pa.log"); images $(packs "$T/pi.log")"
[ "$(packs "$T/pa.log")" = "1 1 " ] || fail "adapters-only sync re-packed the base: $(packs "$T/pa.log")"
for n in $(packs "$T/pi.log"); do [ "$n" -gt 1 ] || fail "weight_sync=image did not re-pack per version: $(packs "$T/pi.log")"; done
"$B/rlhf-ckpt" diff "$T/pa" "$T/pi" || fail "LoRA PPO: adapters-only sync and images differ"
for g in /lora /optim/lora; do
  h5diff "$T/pa/ckpt-00000004.h5" "$T/pi/ckpt-00000004.h5" "$g" || fail "LoRA PPO: adapters-only sync and images: $g differs"
done

echo "== LoRA PPO resume is bit-exact: 2 + stop + resume=auto + 2 == 4"
plaunch "$T/ph" $SY run.stop_at_step=2 > "$T/ph1.log" 2>&1 || { cat "$T/ph1.log"; fail "lora ppo half run"; }
grep -q "stopping at step 2" "$T/ph1.log" || { cat "$T/ph1.log"; fail "no stop at step 2"; }
plaunch "$T/ph" $SY run.resume=auto > "$T/ph2.log" 2>&1 || { cat "$T/ph2.log"; fail "lora ppo resumed run"; }
grep -q "resumed from .*ckpt-00000002.h5 at step 2" "$T/ph2.log" || { cat "$T/ph2.log"; fail "did not resume at 2"; }
"$B/rlhf-ckpt" diff "$T/pa/ckpt-00000004.h5" "$T/ph/ckpt-00000004.h5" || fail "resumed LoRA PPO is not bit-identical"
for g in /lora /optim/lora /value_lora /optim/value_lora; do
  h5diff "$T/pa/ckpt-00000004.h5" "$T/ph/ckpt-00000004.h5" "$g" || fail "resumed LoRA PPO: $g differs"
done
pstrip() { sed -E 's/"time": [0-9.]+, //; s/"(t_[a-z_]+|tokens_per_s)": [0-9.e+-]+(, )?//g' "$1"; }
diff <(pstrip "$T/pa/metrics.jsonl") <(pstrip "$T/ph/metrics.jsonl") || fail "LoRA PPO metrics differ after resume"
plaunch "$T/ph" ppo.updates=6 ppo.value_init=reward ppo.reward_ckpt="$T/base" run.resume=auto > "$T/ph3.log" 2>&1 && fail "resume of a LoRA critic on the policy's trunk with value_init=reward accepted"
grep -q "ppo.value_init" "$T/ph3.log" || { cat "$T/ph3.log"; fail "unclear value_init resume error"; }

echo "== LoRA PPO, critic on a frozen copy of a reward model's trunk: 2 + resume + 2 == 4"
$MPIRUN 1 "$B/learner" rm configs/rm.ini data.train="$T/data/prefs_train.jsonl" model.init="$T/base" $MODEL data.eval= optim.steps=2 optim.batch_size=8 run.out_dir="$T/rmv" > "$T/rmv.log" 2>&1 || { cat "$T/rmv.log"; fail "reward model for the critic"; }
RV="$SY ppo.value_init=reward ppo.reward_ckpt=$T/rmv lora.dropout=0.1"
plaunch "$T/ra" $RV > "$T/ra.log" 2>&1 || { cat "$T/ra.log"; fail "lora ppo, value_init=reward"; }
grep -q "critic: LoRA rank 4 on a frozen copy of the reward model's trunk" "$T/ra.log" || { cat "$T/ra.log"; fail "no reward-trunk critic set-up line"; }
# the pre-pass runs without dropout (the actors sample without it): learner and actor
# log-probs agree as without dropout
md=$(grep -o '"lp_check_maxdiff": [-0-9.e+]*' "$T/ra/metrics.jsonl" | sed -E 's/.*: //' | sort -g | tail -1)
echo "lora.dropout=0.1: largest |actor - learner| log-prob $md"
awk -v m="$md" 'BEGIN { exit !(m != "" && m < 1e-4) }' || fail "lora.dropout=0.1: actor vs learner log-probs differ by $md (dropout in the pre-pass?)"
h5ls -r "$T/ra/ckpt-00000004.h5" > "$T/rls.txt"
grep -q "^/value/h.0.attn.c_attn.weight" "$T/rls.txt" || { cat "$T/rls.txt"; fail "no frozen critic trunk (/value) in the checkpoint"; }
grep -q "/value_lora/v_head.summary.bias" "$T/rls.txt" || fail "no critic head in /value_lora"
# the stored trunk is the reward model's, untouched by the updates
for d in /value/h.1.mlp.c_fc.weight:/reward/h.1.mlp.c_fc.weight; do
  h5dump -d "${d%%:*}" "$T/ra/ckpt-00000004.h5" | grep -v "HDF5\|DATASET" > "$T/rv1"
  h5dump -d "${d##*:}" "$T/rmv/ckpt-00000002.h5" | grep -v "HDF5\|DATASET" > "$T/rv0"
  diff -q "$T/rv0" "$T/rv1" > /dev/null || fail "the LoRA critic's frozen trunk changed"
done
plaunch "$T/rh" $RV run.stop_at_step=2 > "$T/rh1.log" 2>&1 || { cat "$T/rh1.log"; fail "value_init=reward half run"; }
plaunch "$T/rh" $RV run.resume=auto > "$T/rh2.log" 2>&1 || { cat "$T/rh2.log"; fail "value_init=reward resumed run"; }
"$B/rlhf-ckpt" diff "$T/ra/ckpt-00000004.h5" "$T/rh/ckpt-00000004.h5" || fail "resumed LoRA PPO (value_init=reward) is not bit-identical"
for g in /lora /optim/lora /value /value_lora /optim/value_lora; do
  h5diff "$T/ra/ckpt-00000004.h5" "$T/rh/ckpt-00000004.h5" "$g" || fail "resumed LoRA PPO (value_init=reward): $g differs"
done
diff <(pstrip "$T/ra/metrics.jsonl") <(pstrip "$T/rh/metrics.jsonl") || fail "LoRA PPO (value_init=reward) metrics differ after resume"
# rlhf-ckpt diff reads the critic's adapters and head too: the two critics differ there
"$B/rlhf-ckpt" diff "$T/pa/ckpt-00000004.h5" "$T/ra/ckpt-00000004.h5" > "$T/dv.txt" && { cat "$T/dv.txt"; fail "rlhf-ckpt diff: two different LoRA critics reported identical"; }
grep -q "^  /value_lora .*DIFFER" "$T/dv.txt" && grep -q "^  /optim/value_lora/m .*DIFFER" "$T/dv.txt" \
  || { cat "$T/dv.txt"; fail "rlhf-ckpt diff does not name the critic's differing adapters"; }
plaunch "$T/rh" $RV ppo.updates=6 ppo.value_init=sft run.resume=auto > "$T/rh3.log" 2>&1 && fail "resume of a reward-trunk LoRA critic with value_init=sft accepted"
grep -q "ppo.value_init" "$T/rh3.log" || { cat "$T/rh3.log"; fail "unclear value_init resume error"; }

echo "== user errors"
$MPIRUN 1 "$B/learner" rm configs/rm.ini data.train="$T/data/prefs_train.jsonl" model.init="$T/base" $MODEL $LORA optim.steps=1 run.out_dir="$T/rm" > "$T/rm.log" 2>&1 && fail "rm with lora accepted"
grep -q "lora.rank = 0" "$T/rm.log" || { cat "$T/rm.log"; fail "unclear rm error"; }
$MPIRUN 1 "$B/learner" sft $SFT $LORA lora.targets=q_proj optim.steps=1 run.out_dir="$T/bt" > "$T/bt.log" 2>&1 && fail "bad target accepted"
grep -q "'q_proj' is not a gpt2 projection" "$T/bt.log" || { cat "$T/bt.log"; fail "unclear target error"; }
# ---- LoRA: the reference log-probs computed by the learner (ppo.ref_on) ----
# With lora.rank > 0 and ppo.ref_ckpt empty (ppo.ref_on = auto) the learner computes the
# reference log-probs with its adapters off in its pre-pass and the reward server loads no
# reference; ppo.ref_on = reward_server forces the reward server's copy. RLHF_REF_DUMP
# makes learner rank 0 write every update's lp_ref (the response tokens in batch order).
# GRPO with the KL as the k3 loss term (grpo.kl_coef 0.2) uses lp_ref in the loss.
echo "== LoRA reference on the learner == the reward server's; no reference on the server"
RQ="$PPO ppo.rollout_batch=32 ppo.minibatch=16 ppo.epochs=2 optim.micro_batch_size=4 grpo.kl_coef=0.2
  grpo.kl_in=loss ppo.updates=3"
# rlaunch OUT LEARNERS ACTORS [overrides]: a GRPO launch; the reward server's peak RSS
# (VmHWM, the largest value read from /proc every 0.2 s while it runs) into OUT.hwm, kB
hwm_of() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true; }
rlaunch() {
  local out=$1 nl=$2 na=$3; shift 3
  RLHF_REF_DUMP="$out.ref" timeout 600 mpirun -np "$nl" "$B/learner" grpo $RQ run.out_dir="$out" "$@" \
    : -np 1 "$B/reward_server" $RQ run.out_dir="$out" "$@" \
    : -np "$na" "$B/actor" $RQ run.out_dir="$out" "$@" > "$out.log" 2>&1 &
  local mp=$! peak=0 p h
  while kill -0 "$mp" 2>/dev/null; do
    for p in $(pgrep -f "$B/reward_server .*run.out_dir=$out( |$)" || true); do
      h=$(hwm_of "$p"); [ -n "$h" ] && [ "$h" -gt "$peak" ] && peak=$h
    done
    sleep 0.2
  done
  wait "$mp" || { cat "$out.log"; fail "GRPO launch $out"; }
  echo "$peak" > "$out.hwm"
}
rlaunch "$T/rl" 1 2
rlaunch "$T/rs" 1 2 ppo.ref_on=reward_server
grep -q "learner grpo: reference log-probs computed on the learner" "$T/rl.log" || { cat "$T/rl.log"; fail "ref_on=auto: the learner does not say it computes the reference"; }
grep -q "reward server 0: reference log-probs computed on the learner" "$T/rl.log" || fail "ref_on=auto: the reward server does not say the learner computes the reference"
grep -q "reward server 0: reference log-probs computed on the reward server" "$T/rs.log" || { cat "$T/rs.log"; fail "ref_on=reward_server: no server line"; }
grep -q "learner grpo: reference log-probs computed on the reward server" "$T/rs.log" || fail "ref_on=reward_server: no learner line"
# per-token lp_ref of update 0 (the same rollouts: both runs start from the same policy):
# the learner's pass (micro-batches of 4 rows padded to their longest) and the server's
# (work items of 8 rows) differ in batch shape only, so the values agree to fp32 rounding
cmp_ref() { # FILE_A FILE_B UPDATE -> max |a - b| over the tokens (fails if the counts differ)
  paste -d'\n' <(sed -n "$(($3 + 1))p" "$1") <(sed -n "$(($3 + 1))p" "$2") | awk '
    NR == 1 { n = split($0, a, " ") } NR == 2 { m = split($0, b, " ") }
    END { if (n != m || n < 3) { print "count"; exit } md = 0
          for (i = 3; i <= n; i++) { d = a[i] - b[i]; if (d < 0) d = -d; if (d > md) md = d }
          printf "%.3g\n", md }'
}
d0=$(cmp_ref "$T/rl.ref" "$T/rs.ref" 0)
echo "lp_ref, update 0: learner vs reward server max |diff| $d0 over $(($(sed -n 1p "$T/rl.ref" | wc -w) - 2)) tokens"
[ "$d0" != count ] || fail "learner and reward-server lp_ref cover different tokens"
awk -v d="$d0" 'BEGIN { exit !(d < 1e-5) }' || fail "lp_ref: learner vs reward server differ by $d0 (> 1e-5)"
awk -v d="$d0" 'BEGIN { exit !(d > 0 || d == 0) }' || fail "lp_ref: not a number ($d0)"
# the KL the metrics report, every update: the runs drift apart only by that rounding
# (measured: equal to the 6 digits logged over 3 updates; allowed 1e-5 + 1e-3 relative)
kls() { grep -o "\"$2\": [-0-9.e+]*" "$1/metrics.jsonl" | sed -E 's/.*: //'; }
for k in kl grpo_kl; do
  paste <(kls "$T/rl" $k) <(kls "$T/rs" $k) | awk -v k=$k '
    { d = $1 - $2; if (d < 0) d = -d; s = ($2 < 0 ? -$2 : $2); if (d > 1e-5 + 1e-3 * s) bad = bad " " NR ": " $1 " vs " $2; n++ }
    END { if (n != 3 || bad != "") { print "FAIL: " k " learner vs reward server:" bad " (" n " updates)"; exit 1 } }' || exit 1
done
echo "kl per update, learner: $(kls "$T/rl" kl | tr '\n' ' ')| reward server: $(kls "$T/rs" kl | tr '\n' ' ')"
awk -v k="$(kls "$T/rl" kl | tail -1)" 'BEGIN { exit !(k > 1e-4) }' || fail "the policy did not move from the reference (kl $(kls "$T/rl" kl | tail -1)): the comparison tests nothing"
# the reward server without the reference: a lower peak RSS in the same test
h1=$(cat "$T/rl.hwm"); h0=$(cat "$T/rs.hwm")
echo "reward server peak RSS: reference on the learner $h1 kB, on the server $h0 kB"
[ "$h1" -gt 0 ] && [ "$h0" -gt 0 ] || fail "no reward server RSS sampled"
[ "$h1" -lt "$h0" ] || fail "the reward server without the reference is not smaller: $h1 vs $h0 kB"
# 2 learner ranks: the same micro-batches (4 rows) split over ranks give lp_ref bit for bit
rlaunch "$T/r2" 2 2
[ "$(sed -n 1p "$T/r2.ref")" = "$(sed -n 1p "$T/rl.ref")" ] || fail "2 learner ranks: lp_ref of update 0 differs from 1 rank's (max |diff| $(cmp_ref "$T/r2.ref" "$T/rl.ref" 0))"
for u in 1 2; do
  d=$(cmp_ref "$T/r2.ref" "$T/rl.ref" $u)
  awk -v d="$d" 'BEGIN { exit !(d < 1e-3) }' || fail "2 learner ranks: lp_ref of update $u differs by $d"
done
echo "2 learner ranks: lp_ref of update 0 bit-identical to 1 rank; updates 1-2 within $(cmp_ref "$T/r2.ref" "$T/rl.ref" 2)"
# synchronous: 1 actor == 2 actors, bit for bit, with the reference on the learner
rlaunch "$T/r1a" 1 1
"$B/rlhf-ckpt" diff "$T/rl" "$T/r1a" || fail "reference on the learner: 1 and 2 actors differ"
for g in /lora /optim/lora; do
  h5diff "$T/rl/ckpt-00000003.h5" "$T/r1a/ckpt-00000003.h5" "$g" || fail "reference on the learner, 1 vs 2 actors: $g differs"
done
cmp -s "$T/rl.ref" "$T/r1a.ref" || fail "reference on the learner: lp_ref differs between 1 and 2 actors"
# a reference other than the base (ppo.ref_ckpt): the reward server loads it, as without LoRA
rlaunch "$T/rc" 1 1 ppo.updates=1 ppo.ref_ckpt="$T/base"
grep -q "learner grpo: reference log-probs computed on the reward server" "$T/rc.log" || { cat "$T/rc.log"; fail "ppo.ref_ckpt set: the learner computes the reference"; }
grep -q "reward server 0: reference log-probs computed on the reward server" "$T/rc.log" || fail "ppo.ref_ckpt set: the reward server did not load the reference"
# ppo.ref_on = learner where the rule does not hold is refused with the reason
$MPIRUN 1 "$B/learner" grpo $RQ ppo.ref_on=learner lora.rank=0 run.out_dir="$T/rbad" : -np 1 "$B/reward_server" $RQ ppo.ref_on=learner lora.rank=0 run.out_dir="$T/rbad" : -np 1 "$B/actor" $RQ ppo.ref_on=learner lora.rank=0 run.out_dir="$T/rbad" > "$T/rbad.log" 2>&1 && fail "ppo.ref_on=learner without LoRA accepted"
grep -q "ppo.ref_on = learner needs lora.rank > 0" "$T/rbad.log" || { cat "$T/rbad.log"; fail "unclear ppo.ref_on error"; }
echo "t_lora: ok"
