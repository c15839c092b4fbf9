#!/usr/bin/env bash
# tests/t_task.sh — build/rlhf-task and build/rlhf-judge end to end, as a user runs them:
# the generator twice with one seed gives byte-identical files (cmp), another seed other
# files; default sizes and speed; the judge's agreement on prefs_eval equals the one
# ceiling.json reports; labelling candidate pairs (deterministic with --time, exact with
# τ=0 and no flips, ties without chosen/rejected), thumbs, bad input lines reported as
# file:line with a non-zero exit (or skipped with --skip-bad), bad arguments rejected.
# Everything the tools write is re-read by `rlhf-judge score`, which parses each line
# with jansson and reports any line it cannot parse.
set -eu
cd "$(dirname "$0")/.."
B=${BUILD:-build}
T=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_task.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "t_task: FAIL: $*" >&2; exit 1; }
ok() { echo "t_task: ok: $*"; }
# expect_fail PATTERN CMD...: CMD exits non-zero and its stderr contains PATTERN
expect_fail() {
  local pat=$1; shift
  if "$@" >"$T/out" 2>"$T/err"; then fail "'$*' succeeded"; fi
  grep -qF -- "$pat" "$T/err" || { cat "$T/err" >&2; fail "'$*': no '$pat' in its message"; }
}
FILES="corpus.txt sft.jsonl prefs_train.jsonl prefs_eval.jsonl prompts_train.jsonl prompts_eval.jsonl prompts_redteam.jsonl ceiling.json world.json"

# ---- rlhf-task gen: determinism, sizes (its time is reported, never asserted) ------------------------------------------
t0=$(date +%s.%N)
"$B/rlhf-task" gen --out "$T/a" --seed 7 2>"$T/gen.log"
t1=$(date +%s.%N)
"$B/rlhf-task" gen --out "$T/b" --seed 7 2>/dev/null
for f in $FILES; do
  [ -s "$T/a/$f" ] || fail "$f missing or empty"
  cmp "$T/a/$f" "$T/b/$f" || fail "$f differs between two runs with seed 7"
done
ok "same seed -> byte-identical files"
"$B/rlhf-task" gen --out "$T/c" --seed 8 2>/dev/null
for f in sft.jsonl prefs_train.jsonl prefs_eval.jsonl world.json; do
  cmp -s "$T/a/$f" "$T/c/$f" && fail "$f is the same for seeds 7 and 8"
done
ok "another seed -> other files"
lines() { wc -l <"$1" | tr -d ' '; }
[ "$(lines "$T/a/sft.jsonl")" = 6000 ] || fail "sft.jsonl: $(lines "$T/a/sft.jsonl") lines, want 6000"
[ "$(lines "$T/a/prefs_train.jsonl")" = 24000 ] || fail "prefs_train.jsonl line count"
[ "$(lines "$T/a/prefs_eval.jsonl")" = 600 ] || fail "prefs_eval.jsonl line count"
[ "$(lines "$T/a/prompts_train.jsonl")" = 1000 ] || fail "prompts_train.jsonl line count"
[ "$(lines "$T/a/prompts_eval.jsonl")" = 200 ] || fail "prompts_eval.jsonl line count"
[ "$(lines "$T/a/prompts_redteam.jsonl")" = 100 ] || fail "prompts_redteam.jsonl line count"
secs=$(echo "$t1 $t0" | awk '{printf "%.2f", $1 - $2}')
ok "default sizes (generation took $secs s)"
"$B/rlhf-task" gen --out "$T/s" --seed 7 --sizes sft=10,prefs=5,prefs_eval=4,prompts=3,prompts_eval=2,redteam=1 2>/dev/null
[ "$(lines "$T/s/sft.jsonl")" = 10 ] && [ "$(lines "$T/s/prompts_redteam.jsonl")" = 1 ] || fail "--sizes not honoured"
# a file's lines do not depend on the other files' sizes
head -n 10 "$T/a/sft.jsonl" | cmp - "$T/s/sft.jsonl" || fail "sft lines depend on --sizes"
ok "--sizes"

# ---- the tiny model's budget: prompt + response in tokens of a 512-id BPE trained on corpus.txt
"$B/rlhf-tokenize" train --vocab-size 512 --out "$T/tok" --quiet "$T/a/corpus.txt" 2>/dev/null
sed -E 's/^\{"prompt":"(.*)","response":"(.*)","category".*$/"\1\2"/' "$T/a/sft.jsonl" >"$T/texts.jsonl"
"$B/rlhf-tokenize" --vocab "$T/tok/vocab.json" --merges "$T/tok/merges.txt" <"$T/texts.jsonl" >"$T/ids.jsonl"
[ "$(lines "$T/ids.jsonl")" = 6000 ] || fail "tokenizer output: $(lines "$T/ids.jsonl") lines"
read -r tmean tmax over <<<"$(awk -F, '{ n = NF; s += n; if (n > m) m = n; if (n > 60) o++ }
  END { printf "%.1f %d %d", s / NR, m, o + 0 }' "$T/ids.jsonl")"
[ "$tmax" -le 64 ] || fail "longest prompt+response is $tmax tokens (budget ~60)"
[ "$over" -le 60 ] || fail "$over of 6000 sft examples are over 60 tokens"
ok "tokens per prompt+response: mean $tmean, max $tmax, $over of 6000 over 60"

# ---- probe pairs (reward-model evaluation): 2 per red-team prompt, all refusal pairs;
# a prompt of another task is an error naming the file and line
"$B/rlhf-task" probes "$T/a/prompts_redteam.jsonl" --n 2 >"$T/probes.jsonl"
[ "$(lines "$T/probes.jsonl")" = 200 ] || fail "probes: $(lines "$T/probes.jsonl") lines, expected 200"
[ "$(grep -c '"kind":"harm"' "$T/probes.jsonl")" = 200 ] || fail "probes: a red-team pair is not unsafe"
"$B/rlhf-task" probes "$T/a/prompts_redteam.jsonl" --n 2 | cmp - "$T/probes.jsonl" || fail "probes differ between runs"
printf '{"prompt":"User: What is the meaning of life?\\nAssistant:"}\n' >"$T/other.jsonl"
expect_fail "other.jsonl:1: not a prompt of the bundled task" "$B/rlhf-task" probes "$T/other.jsonl"
ok "probes"

# ---- bad arguments -------------------------------------------------------------------
expect_fail "--out DIR is required" "$B/rlhf-task" gen
expect_fail "unknown name 'dpo'" "$B/rlhf-task" gen --out "$T/x" --sizes dpo=3
expect_fail "expected an integer" "$B/rlhf-task" gen --out "$T/x" --sizes sft=many
expect_fail "--seed 'abc'" "$B/rlhf-task" gen --out "$T/x" --seed abc
expect_fail "unknown command 'frobnicate'" "$B/rlhf-task" frobnicate
expect_fail "needs a value" "$B/rlhf-task" gen --out
touch "$T/file"
expect_fail "$T/file" "$B/rlhf-task" gen --out "$T/file/sub"
expect_fail "judge 'silver': unknown judge" "$B/rlhf-judge" --judge silver "$T/a/sft.jsonl"
expect_fail "rule:length:N" "$B/rlhf-judge" --judge rule:length:0 "$T/a/sft.jsonl"
expect_fail "--judge SPEC is required" "$B/rlhf-judge" "$T/a/sft.jsonl"
expect_fail "cannot open" "$B/rlhf-judge" --judge gold "$T/nope.jsonl"
expect_fail "--tau: 2 values for 3 annotators" "$B/rlhf-judge" --judge gold --annotators 3 --tau 0.1,0.2 "$T/a/sft.jsonl"
expect_fail "--flip '1.5'" "$B/rlhf-judge" --judge gold --flip 1.5 "$T/a/sft.jsonl"
ok "bad arguments rejected with a message"

# ---- rlhf-judge score: the generated data, and the ceiling's empirical agreement --------
expect_fail "task seed 1234" "$B/rlhf-judge" score --judge gold "$T/a/sft.jsonl"
"$B/rlhf-judge" score --judge gold --task-seed 7 "$T/a/sft.jsonl" >"$T/sft_scores.jsonl" 2>"$T/score.log"
[ "$(lines "$T/sft_scores.jsonl")" = 6000 ] || fail "score: not one line per input line"
grep -q "0 bad lines skipped" "$T/score.log" || fail "score: bad lines in generated sft.jsonl"
for c in fact instruct unsafe chat all; do grep -q "^$c " "$T/score.log" || fail "score: no $c summary row"; done
"$B/rlhf-judge" score --judge gold --task-seed 7 "$T/a/prefs_eval.jsonl" >/dev/null 2>"$T/pe.log"
got=$(sed -n 's/.*chosen above rejected in \([0-9.]*\).*/\1/p' "$T/pe.log")
want=$(sed -n 's/.*"empirical_agreement":\([0-9.]*\).*/\1/p' "$T/a/ceiling.json")
[ -n "$got" ] && [ -n "$want" ] || fail "no agreement figures ($got / $want)"
awk -v g="$got" -v w="$want" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(d < 6e-5) }' ||
  fail "judge agreement $got on prefs_eval != ceiling.json empirical $want"
ok "gold agreement on prefs_eval ($got) = ceiling.json ($want)"

# ---- labelling pairs ---------------------------------------------------------------------
sed 's/"chosen":/"a":/; s/"rejected":/"b":/' "$T/a/prefs_eval.jsonl" >"$T/cand.jsonl"
J="$B/rlhf-judge --judge gold --task-seed 7 --annotators 3 --tau 0.05,0.1,0.3 --flip 0,0.05,0.2 --seed 5 --time 2024-01-01T00:00:00Z"
$J "$T/cand.jsonl" >"$T/l1.jsonl" 2>/dev/null
$J "$T/cand.jsonl" >"$T/l2.jsonl" 2>/dev/null
cmp "$T/l1.jsonl" "$T/l2.jsonl" || fail "labels differ between two identical runs"
[ "$(lines "$T/l1.jsonl")" = 600 ] || fail "not one label per pair"
grep -q '"annotator":"sim2"' "$T/l1.jsonl" || fail "annotator sim2 never used"
"$B/rlhf-judge" score --judge gold --task-seed 7 "$T/l1.jsonl" >/dev/null 2>"$T/l1.log"
grep -q "600 lines, 0 bad lines" "$T/l1.log" || { cat "$T/l1.log"; fail "labelled output does not re-parse"; }
# τ = 0 and no flips: every label is the gold ordering
"$B/rlhf-judge" --judge gold --task-seed 7 --tau 0 "$T/cand.jsonl" >"$T/exact.jsonl" 2>/dev/null
"$B/rlhf-judge" score --judge gold --task-seed 7 "$T/exact.jsonl" >/dev/null 2>"$T/exact.log"
grep -q "chosen above rejected in 1.0000" "$T/exact.log" || { cat "$T/exact.log"; fail "tau 0 labels disagree with gold"; }
# flip 1: every label reversed
"$B/rlhf-judge" --judge gold --task-seed 7 --tau 0 --flip 1 "$T/cand.jsonl" >"$T/rev.jsonl" 2>/dev/null
"$B/rlhf-judge" score --judge gold --task-seed 7 "$T/rev.jsonl" >/dev/null 2>"$T/rev.log"
grep -q "chosen above rejected in 0.0000" "$T/rev.log" || fail "flip 1 does not reverse labels"
# ties: a rule judge scores both 1 -> tie, written without chosen/rejected
printf '{"prompt":"User: What color is the apple?\\nAssistant:","a":" Red.","b":" It is red.","id":"x1"}\n' >"$T/tie.jsonl"
"$B/rlhf-judge" --judge rule:contains:red "$T/tie.jsonl" >"$T/tie.out" 2>/dev/null
grep -q '"label":"tie"' "$T/tie.out" || fail "equal scores are not a tie"
grep -q '"chosen"' "$T/tie.out" && fail "a tie carries chosen/rejected"
grep -q '"id":"x1"' "$T/tie.out" || fail "id not passed through"
ok "pair labels: deterministic, exact at tau 0, reversed at flip 1, ties without chosen"

# ---- thumbs --------------------------------------------------------------------------------
sed 's/"chosen":/"response":/' "$T/a/prefs_eval.jsonl" >"$T/single.jsonl"
"$B/rlhf-judge" --thumbs --judge gold --task-seed 7 --tau 0 --threshold 0.0 "$T/single.jsonl" >"$T/th.jsonl" 2>/dev/null
[ "$(grep -c '"label":"up"' "$T/th.jsonl")" = 600 ] || fail "threshold 0: not all up"
"$B/rlhf-judge" --thumbs --judge gold --task-seed 7 --tau 0 --threshold 1.0 "$T/single.jsonl" >"$T/th.jsonl" 2>/dev/null
[ "$(grep -c '"label":"down"' "$T/th.jsonl")" = 600 ] || fail "threshold 1: not all down"
"$B/rlhf-judge" score --judge gold --task-seed 7 "$T/th.jsonl" >/dev/null 2>"$T/th.log"
grep -q "600 lines, 0 bad lines" "$T/th.log" || fail "thumbs output does not re-parse"
ok "thumbs"

# ---- bad input lines ---------------------------------------------------------------------
{
  printf '{"prompt":"User: Hello!\\nAssistant:","a":" Hi.","b":" Hello! How can I help you today?"}\n'
  printf 'not json\n'
  printf '{"prompt":5,"a":"x","b":"y"}\n'
  printf '{"prompt":"User: Hello!\\nAssistant:","a":"x"}\n'
  printf '\xff\xfe\n'
  printf '[1,2]\n'
  printf '\n'
  printf '{"prompt":"User: What is love?\\nAssistant:","a":"x","b":"y"}\n'
} >"$T/bad.jsonl"
expect_fail "bad.jsonl:2: malformed JSON" "$B/rlhf-judge" --judge gold "$T/bad.jsonl"
"$B/rlhf-judge" --judge gold --skip-bad "$T/bad.jsonl" >"$T/bad.out" 2>"$T/bad.err" || fail "--skip-bad exited non-zero"
for want in 'bad.jsonl:2: malformed JSON' 'bad.jsonl:3: field "prompt" must be a string' \
            'bad.jsonl:4: missing field "b"' 'bad.jsonl:5: invalid UTF-8' \
            'bad.jsonl:6: expected a JSON object' 'bad.jsonl:8: gold judge: not a prompt'; do
  grep -qF "$want" "$T/bad.err" || { cat "$T/bad.err"; fail "no '$want'"; }
done
[ "$(lines "$T/bad.out")" = 1 ] || fail "--skip-bad: expected exactly the one good line"
grep -q "1 pairs labelled (A 0, B 1, tie 0), 6 bad lines skipped" "$T/bad.err" || fail "summary"
sed -n 2p "$T/bad.jsonl" >"$T/allbad.jsonl"
expect_fail "no valid line" "$B/rlhf-judge" --judge gold --skip-bad "$T/allbad.jsonl"
expect_fail "bad.jsonl:2:" "$B/rlhf-judge" score --judge gold "$T/bad.jsonl"
: >"$T/empty.jsonl"
expect_fail "no valid line" "$B/rlhf-judge" score --judge gold "$T/empty.jsonl"
ok "bad lines: file:line messages, non-zero exit, --skip-bad"
echo "t_task: all ok"
