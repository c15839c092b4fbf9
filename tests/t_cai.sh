#!/usr/bin/env bash
# tests/t_cai.sh — Constitutional AI end to end (tools/rlhf-cai.c, docs/cai.md) with a
# tiny SFT model trained here on the bundled task:
#   - revise: well-formed SFT records (prompt, response = last revision, initial, one
#     {principle, critique, revision} per round, principles from the constitution), the
#     same file for the same seed, another for another seed; learner sft reads it;
#   - label: records with p_a, p_chosen in [0, 1], chosen/rejected the hard label, the
#     same for the same seed, and label(b, a) = 1 - label(a, b) on every pair;
#   - learner rm trains on the soft labels: a file whose p_chosen are all 1 gives the
#     checkpoint of the same pairs without the field, bit for bit, and the soft labels
#     give another, and the held-out loss reads them; learner dpo runs on them;
#   - bad input: a constitution or pairs file with a bad line is refused with path:line.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
command -v jq >/dev/null || { echo "SKIP: jq is not installed (tools/deps.sh installs it)"; exit 77; }
T=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_cai.XXXXXX")
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
fail() { echo "FAIL: $*"; exit 1; }
C=configs/constitution.jsonl

"$B/rlhf-task" gen --out "$T/data" --seed 7 --sizes sft=400,prefs=40,prefs_eval=10,prompts=10,prompts_eval=5,redteam=12 >/dev/null
"$B/rlhf-tokenize" train --vocab-size 320 --out "$T/tok" "$T/data/corpus.txt" >/dev/null 2>&1
MODEL="model.preset=custom model.n_layer=2 model.n_head=2 model.n_embd=32 model.max_seq_len=256"
"$B/learner" sft configs/sft.ini data.train="$T/data/sft.jsonl" tokenizer.path="$T/tok" $MODEL \
  data.max_prompt_len=32 data.max_response_len=32 optim.batch_size=16 optim.steps=40 optim.warmup_steps=2 \
  optim.lr=3e-3 run.ckpt_every=0 run.eval_every=0 run.log_every=20 run.out_dir="$T/sft" > "$T/sft.log" 2>&1 \
  || { cat "$T/sft.log"; fail "sft"; }

echo "== revise: well-formed, reproducible"
REV="--model $T/sft --constitution $C --prompts $T/data/prompts_redteam.jsonl --rounds 2 --max-new 24 --temperature 1"
"$B/rlhf-cai" revise $REV --seed 3 --out "$T/rev1.jsonl" 2> "$T/rev.log" || { cat "$T/rev.log"; fail "revise"; }
cat "$T/rev.log"
"$B/rlhf-cai" revise $REV --seed 3 --out "$T/rev2.jsonl" 2>/dev/null || fail "revise again"
"$B/rlhf-cai" revise $REV --seed 4 --out "$T/rev3.jsonl" 2>/dev/null || fail "revise, seed 4"
cmp -s "$T/rev1.jsonl" "$T/rev2.jsonl" || fail "revise is not reproducible for a fixed seed"
cmp -s "$T/rev1.jsonl" "$T/rev3.jsonl" && fail "revise gives the same texts for another seed"
[ "$(wc -l < "$T/rev1.jsonl")" = 12 ] || fail "revise: not one record per prompt"
names=$(grep -v '^#' "$C" | jq -r .name | sort | tr '\n' ' ')
jq -e --arg names "$names" '(.prompt|type) == "string" and (.response|type) == "string"
    and (.initial|type) == "string" and (.rounds|length) == 2
    and .response == .rounds[1].revision
    and all(.rounds[]; (.critique|type) == "string" and (.revision|type) == "string"
            and (.principle as $p | $names | split(" ") | index($p)) != null)' "$T/rev1.jsonl" >/dev/null \
  || fail "revise: malformed record"
paste -d'\t' <(jq -r .prompt "$T/rev1.jsonl") <(jq -r .prompt "$T/data/prompts_redteam.jsonl") \
  | awk -F'\t' '$1 != $2 { exit 1 }' || fail "revise: prompts out of order"
"$B/learner" sft configs/sft.ini data.train="$T/rev1.jsonl" model.init="$T/sft" tokenizer.path= \
  data.max_prompt_len=32 data.max_response_len=32 optim.batch_size=4 optim.steps=2 optim.warmup_steps=1 \
  run.ckpt_every=0 run.eval_every=0 run.out_dir="$T/sft2" > "$T/sft2.log" 2>&1 || { cat "$T/sft2.log"; fail "sft on revisions"; }

echo "== label: soft labels, reproducible, swap-symmetric"
jq -c '{prompt, a: .chosen, b: .rejected, category}' "$T/data/prefs_train.jsonl" > "$T/ab.jsonl"
jq -c '{prompt, a: .b, b: .a, category}' "$T/ab.jsonl" > "$T/ba.jsonl"
LAB="--model $T/sft --constitution $C --seed 5"
"$B/rlhf-cai" label $LAB --pairs "$T/ab.jsonl" --out "$T/l_ab.jsonl" 2> "$T/lab.log" || { cat "$T/lab.log"; fail "label"; }
cat "$T/lab.log"
"$B/rlhf-cai" label $LAB --pairs "$T/ab.jsonl" --out "$T/l_ab2.jsonl" 2>/dev/null || fail "label again"
"$B/rlhf-cai" label $LAB --pairs "$T/ba.jsonl" --out "$T/l_ba.jsonl" 2>/dev/null || fail "label swapped"
cmp -s "$T/l_ab.jsonl" "$T/l_ab2.jsonl" || fail "label is not reproducible"
[ "$(wc -l < "$T/l_ab.jsonl")" = 40 ] || fail "label: not one record per pair"
jq -e '(.p_a >= 0 and .p_a <= 1) and (.p_chosen >= 0.5 and .p_chosen <= 1)
    and (.p_a_ab >= 0 and .p_a_ab <= 1) and (.p_a_ba >= 0 and .p_a_ba <= 1)
    and ((.p_a - (.p_a_ab + .p_a_ba) / 2) | fabs) < 1e-12
    and (if .p_a >= 0.5 then .chosen == .a and .rejected == .b and .p_chosen == .p_a
         else .chosen == .b and .rejected == .a and .p_chosen == 1 - .p_a end)
    and (.principle|type) == "string" and (.category|type) == "string"' \
  "$T/l_ab.jsonl" >/dev/null || fail "label: malformed record"
worst=$(paste -d' ' <(jq .p_a "$T/l_ab.jsonl") <(jq .p_a "$T/l_ba.jsonl") \
  | awk '{ d = $1 + $2 - 1; if (d < 0) d = -d; if (d > m) m = d } END { printf "%.3g", m + 0 }')
echo "max |label(a,b) + label(b,a) - 1| = $worst"
awk -v w="$worst" 'BEGIN { exit !(w <= 1e-6) }' || fail "label is not swap-symmetric ($worst)"
jq -s -e 'map(.p_chosen) | (min < 1)' "$T/l_ab.jsonl" >/dev/null || fail "no soft label below 1"

echo "== learner rm / dpo on soft labels"
RM="configs/rm.ini model.init=$T/sft tokenizer.path= data.max_prompt_len=32 data.max_response_len=32
  optim.batch_size=8 optim.steps=3 optim.warmup_steps=1 optim.lr=1e-3 run.ckpt_every=0 run.eval_every=0
  run.log_every=1 rm.normalize=false data.eval=$T/data/prefs_eval.jsonl"
jq -c 'del(.p_chosen)' "$T/l_ab.jsonl" > "$T/hard.jsonl"
jq -c '.p_chosen = 1' "$T/l_ab.jsonl" > "$T/one.jsonl"
for f in l_ab hard one; do
  "$B/learner" rm $RM data.train="$T/$f.jsonl" run.out_dir="$T/rm_$f" > "$T/rm_$f.log" 2>&1 || { cat "$T/rm_$f.log"; fail "rm on $f"; }
done
grep "rm step 3/3" "$T/rm_l_ab.log" || fail "rm on soft labels did not reach step 3"
"$B/rlhf-ckpt" diff "$T/rm_hard" "$T/rm_one" >/dev/null || fail "p_chosen = 1 is not the hard label bit for bit"
"$B/rlhf-ckpt" diff "$T/rm_hard" "$T/rm_l_ab" >/dev/null 2>&1 && fail "the soft labels changed nothing"
# the held-out loss reads the soft labels too: the same model, another eval loss
for f in l_ab hard; do
  "$B/learner" rm $RM data.train="$T/hard.jsonl" data.eval="$T/$f.jsonl" run.out_dir="$T/rme_$f" > "$T/rme_$f.log" 2>&1 \
    || { cat "$T/rme_$f.log"; fail "rm eval on $f"; }
done
e_soft=$(grep -o '"eval_loss": [0-9.e+-]*' "$T/rme_l_ab/metrics.jsonl" | tail -1)
e_hard=$(grep -o '"eval_loss": [0-9.e+-]*' "$T/rme_hard/metrics.jsonl" | tail -1)
echo "held-out loss, soft labels: $e_soft; hard: $e_hard"
[ -n "$e_soft" ] && [ "$e_soft" != "$e_hard" ] || fail "the held-out loss ignores the soft labels"
"$B/learner" dpo configs/dpo.ini model.init="$T/sft" tokenizer.path= data.train="$T/l_ab.jsonl" \
  data.eval="$T/data/prefs_eval.jsonl" data.max_prompt_len=32 data.max_response_len=32 optim.batch_size=8 \
  optim.steps=2 optim.warmup_steps=1 run.ckpt_every=0 run.eval_every=0 run.out_dir="$T/dpo" > "$T/dpo.log" 2>&1 \
  || { cat "$T/dpo.log"; fail "dpo on soft labels"; }

echo "== bad input"
printf '# x\n{"name": "a", "critique": "c", "revision": "r"}\n' > "$T/bad.jsonl"
if "$B/rlhf-cai" label $LAB --pairs "$T/ab.jsonl" --constitution "$T/bad.jsonl" --out "$T/x" > "$T/e1" 2>&1; then fail "bad constitution accepted"; fi
grep -q "bad.jsonl:2: missing field \"comparison\"" "$T/e1" || { cat "$T/e1"; fail "bad constitution not named with its line"; }
{ head -2 "$T/ab.jsonl"; echo '{"prompt": "p", "a": 1, "b": "x"}'; } > "$T/badpairs.jsonl"
if "$B/rlhf-cai" label $LAB --pairs "$T/badpairs.jsonl" --out "$T/x" > "$T/e2" 2>&1; then fail "bad pair accepted"; fi
grep -q 'badpairs.jsonl:3: field "a" must be a string' "$T/e2" || { cat "$T/e2"; fail "bad pair not named with its line"; }
if "$B/rlhf-cai" revise --model "$T/sft" --constitution $C --out "$T/x" > "$T/e3" 2>&1; then fail "revise without --prompts accepted"; fi
grep -q "revise needs --prompts" "$T/e3" || { cat "$T/e3"; fail "no usage message"; }
echo "t_cai: all checks passed"
