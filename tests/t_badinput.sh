#!/usr/bin/env bash
# tests/t_badinput.sh — every path a user's bytes take through the command-line programs
# ends in a clear error (naming the file, line or field) and a non-zero exit, never a
# crash; and a run that fails to start leaves an existing checkpoint directory untouched.
#
# Cases: checkpoints truncated at many lengths, bit-flipped at many offsets (a flip must be
# an error or change nothing: `rlhf-ckpt diff` against the original), of the wrong format
# (empty, text, safetensors, an HDF5 file that is not an rlhf-c checkpoint) and of the wrong
# shape (resume with another model size), through build/rlhf-ckpt info and
# build/rlhf-logprobs; JSONL training files that are malformed, have a line over
# data.max_line_bytes, invalid UTF-8, are empty, through build/learner sft; configs with an
# unknown key (the closest key suggested), a wrong type, an out-of-range value, in a file
# and as an override; malformed tokenizer files through build/rlhf-tokenize; malformed
# safetensors headers through build/rlhf-hf import.
# "A crash" is: exit status >= 128 (a signal), or sanitizer / assertion text in the output.
# Run by tests/run.sh; takes ~20-40 s (one tiny SFT run per model size, the rest are quick
# failures). Not here: the decoders' random inputs (fuzz/, tests/t_fuzz_smoke.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
T=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_badinput.XXXXXX")
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
export OPENBLAS_NUM_THREADS=1
nfail=0 ncase=0
bad() { echo "FAIL: $*"; nfail=$((nfail + 1)); }

# expect_fail NAME REGEX [--stdin FILE] CMD...: CMD must exit non-zero without a signal,
# print no sanitizer/assertion text, and print something matching REGEX (grep -E).
expect_fail() {
    local name=$1 re=$2 in=/dev/null
    shift 2
    if [ "$1" = --stdin ]; then in=$2; shift 2; fi
    ncase=$((ncase + 1))
    "$@" <"$in" >"$T/out" 2>&1
    local rc=$?
    if [ $rc -eq 0 ]; then bad "$name: exit 0 (accepted bad input)"; sed 's/^/    | /' "$T/out" | tail -5; return; fi
    if [ $rc -ge 128 ]; then bad "$name: killed by signal $((rc - 128))"; tail -20 "$T/out"; return; fi
    if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error|assertion failed|Segmentation fault|core dumped' "$T/out"; then
        bad "$name: crash text in the output"; tail -20 "$T/out"; return
    fi
    if ! grep -qE -- "$re" "$T/out"; then
        bad "$name: message does not match /$re/:"; sed 's/^/    | /' "$T/out" | tail -5; return
    fi
    echo "ok   $name: $(grep -E -m1 -- "$re" "$T/out" | cut -c1-150)"
}
# no_crash NAME CMD...: any exit status below 128 and no crash text (for inputs that may
# legitimately be accepted, e.g. a flipped bit in unused file space).
no_crash() {
    local name=$1
    shift
    ncase=$((ncase + 1))
    "$@" >"$T/out" 2>&1
    local rc=$?
    if [ $rc -ge 128 ] || grep -qE 'AddressSanitizer|runtime error|assertion failed' "$T/out"; then
        bad "$name: crashed (exit $rc)"; tail -20 "$T/out"; return 1
    fi
    return 0
}
flip_byte() { # flip_byte FILE OFFSET: xor one byte with 0x10, in place
    local v
    v=$(od -An -tu1 -j"$2" -N1 "$1" | tr -d ' ')
    printf "$(printf '\\x%02x' $((v ^ 0x10)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
dir_sum() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }

# ---- a real tokenizer, data and checkpoint to break -------------------------------------
"$B/rlhf-task" gen --out "$T/data" --seed 7 --sizes sft=60,prefs=20,prefs_eval=4,prompts=5,prompts_eval=3,redteam=2 >/dev/null 2>&1 \
    || { echo "FAIL: rlhf-task gen"; exit 1; }
"$B/rlhf-tokenize" train --vocab-size 300 --out "$T/tok" "$T/data/corpus.txt" >/dev/null 2>&1 \
    || { echo "FAIL: tokenizer training"; exit 1; }
SFT="configs/sft.ini data.train=$T/data/sft.jsonl data.eval= tokenizer.path=$T/tok
  model.preset=custom model.n_layer=1 model.n_head=2 model.n_embd=16 model.max_seq_len=64
  data.max_prompt_len=32 data.max_response_len=32 gen.max_new_tokens=32 optim.batch_size=4
  optim.steps=2 optim.warmup_steps=1 run.ckpt_every=0 run.eval_every=0 run.log_every=1"
# shellcheck disable=SC2086
"$B/learner" sft $SFT run.out_dir="$T/run" >"$T/sft.log" 2>&1 || { cat "$T/sft.log"; echo "FAIL: sft run"; exit 1; }
# shellcheck disable=SC2086
"$B/learner" sft $SFT model.n_embd=32 run.out_dir="$T/run32" >"$T/sft32.log" 2>&1 || { cat "$T/sft32.log"; echo "FAIL: sft run C=32"; exit 1; }
CK="$T/run/ckpt-00000002.h5"
[ -f "$CK" ] || { echo "FAIL: no checkpoint"; exit 1; }
SZ=$(stat -c %s "$CK")
echo '[1,2,3,4]' > "$T/toks.jsonl"
"$B/rlhf-logprobs" "$CK" <"$T/toks.jsonl" >"$T/good_lp.txt" 2>&1 || { echo "FAIL: logprobs on the good checkpoint"; exit 1; }

echo "== checkpoints: truncated"
for n in 0 7 8 512 4096 $((SZ / 3)) $((SZ / 2)) $((SZ - 4096)) $((SZ - 1)); do
    head -c "$n" "$CK" >"$T/trunc.h5"
    expect_fail "rlhf-ckpt info, truncated to $n of $SZ bytes" "trunc\.h5" "$B/rlhf-ckpt" info "$T/trunc.h5"
    expect_fail "rlhf-logprobs, truncated to $n bytes" "trunc\.h5" --stdin "$T/toks.jsonl" "$B/rlhf-logprobs" "$T/trunc.h5"
done

echo "== checkpoints: one flipped byte at 32 offsets (an error, or no change at all)"
nflip_err=0 nflip_same=0
for i in $(seq 0 31); do
    off=$((SZ * i / 32 + 3))
    cp "$CK" "$T/flip.h5"
    flip_byte "$T/flip.h5" "$off"
    no_crash "rlhf-ckpt info, flip at $off" "$B/rlhf-ckpt" info "$T/flip.h5" || continue
    if grep -q "verification: every dataset's checksum matches" "$T/out"; then
        # accepted: then the flip must have hit unused space — the content is identical
        no_crash "rlhf-ckpt diff, flip at $off" "$B/rlhf-ckpt" diff "$CK" "$T/flip.h5" || continue
        grep -q DIFFER "$T/out" && { bad "flip at $off: accepted by info but the model differs"; continue; }
        nflip_same=$((nflip_same + 1))
    else
        grep -q "flip.h5" "$T/out" || { bad "flip at $off: error does not name the file"; cat "$T/out"; continue; }
        nflip_err=$((nflip_err + 1))
    fi
    # rlhf-logprobs: an error naming the file, or exactly the good output
    no_crash "rlhf-logprobs, flip at $off" "$B/rlhf-logprobs" "$T/flip.h5" <"$T/toks.jsonl" || continue
    if ! cmp -s "$T/out" "$T/good_lp.txt" && ! grep -q "flip.h5" "$T/out"; then
        bad "rlhf-logprobs, flip at $off: different output without an error"; cat "$T/out"
    fi
done
echo "ok   flips: $nflip_err detected as corrupt, $nflip_same in unused space (content identical)"
[ $nflip_err -ge 24 ] || bad "only $nflip_err of 32 flips detected"

echo "== checkpoints: wrong format"
: >"$T/empty.h5"
printf 'this is not a checkpoint\n' >"$T/text.h5"
expect_fail "rlhf-ckpt info, empty file" "empty\.h5" "$B/rlhf-ckpt" info "$T/empty.h5"
expect_fail "rlhf-ckpt info, text file" "text\.h5.*(HDF5|signature)" "$B/rlhf-ckpt" info "$T/text.h5"
expect_fail "rlhf-logprobs, text file" "text\.h5" --stdin "$T/toks.jsonl" "$B/rlhf-logprobs" "$T/text.h5"
"$B/rlhf-hf" export "$CK" "$T/hf" >/dev/null 2>&1 || bad "rlhf-hf export of the good checkpoint"
expect_fail "rlhf-ckpt info, a safetensors file" "model\.safetensors" "$B/rlhf-ckpt" info "$T/hf/model.safetensors"
if command -v h5copy >/dev/null; then
    # an HDF5 file without the rlhf-c root attributes
    h5copy -i "$CK" -o "$T/foreign.h5" -s /policy -d /policy >/dev/null 2>&1
    expect_fail "rlhf-ckpt info, foreign HDF5 file" "foreign\.h5.*(format|attribute)" "$B/rlhf-ckpt" info "$T/foreign.h5"
    expect_fail "rlhf-logprobs, foreign HDF5 file" "foreign\.h5" --stdin "$T/toks.jsonl" "$B/rlhf-logprobs" "$T/foreign.h5"
else
    echo "SKIP: the 2 foreign-HDF5-file cases: h5copy is not installed (tools/deps.sh installs hdf5-tools)"
fi
expect_fail "rlhf-ckpt info, missing file" "nope\.h5" "$B/rlhf-ckpt" info "$T/nope.h5"
expect_fail "rlhf-ckpt info, a directory without checkpoints" "data" "$B/rlhf-ckpt" info "$T/data"

echo "== checkpoints: wrong shape"
# shellcheck disable=SC2086
expect_fail "learner sft resume from a C=32 run with C=16" "n_embd = 32.*16" "$B/learner" sft $SFT run.out_dir="$T/run32" run.resume=auto
expect_fail "rlhf-ckpt diff of different sizes" "DIFFER in size|differ" "$B/rlhf-ckpt" diff "$CK" "$T/run32/ckpt-00000002.h5"
printf '[1,2,300]\n' >"$T/oob.jsonl"
expect_fail "rlhf-logprobs, token id out of range" "stdin:1.*300" --stdin "$T/oob.jsonl" "$B/rlhf-logprobs" "$CK"
seq -s, 1 70 | sed 's/.*/[&]/' >"$T/long.jsonl"
expect_fail "rlhf-logprobs, sequence longer than the model" "stdin:1" --stdin "$T/long.jsonl" "$B/rlhf-logprobs" "$CK"
printf '[1,2,\n' >"$T/badjson.jsonl"
expect_fail "rlhf-logprobs, malformed JSON line" "stdin:1" --stdin "$T/badjson.jsonl" "$B/rlhf-logprobs" "$CK"

echo "== JSONL training data (run.bad_data = fail, and all-bad files)"
sft_fail() { # sft_fail NAME REGEX FILE [overrides]
    local name=$1 re=$2 file=$3
    shift 3
    # shellcheck disable=SC2086
    expect_fail "learner sft: $name" "$re" "$B/learner" sft $SFT data.train="$file" run.out_dir="$T/e" "$@"
}
good=$(head -1 "$T/data/sft.jsonl")
: >"$T/empty.jsonl"
sft_fail "empty file" "empty\.jsonl.*empty" "$T/empty.jsonl"
printf '%s\n{"prompt": "a", "response": \n%s\n' "$good" "$good" >"$T/malformed.jsonl"
sft_fail "malformed JSON" "malformed\.jsonl:2" "$T/malformed.jsonl" run.bad_data=fail
printf '%s\n{"prompt": "a"}\n' "$good" >"$T/missing.jsonl"
sft_fail "missing field" "missing\.jsonl:2.*response" "$T/missing.jsonl" run.bad_data=fail
printf '%s\n{"prompt": 3, "response": "x"}\n' "$good" >"$T/type.jsonl"
sft_fail "field of the wrong type" "type\.jsonl:2.*prompt" "$T/type.jsonl" run.bad_data=fail
printf '%s\n{"prompt": "a\xff\xfe", "response": "b"}\n' "$good" >"$T/utf8.jsonl"
sft_fail "invalid UTF-8" "utf8\.jsonl:2.*(UTF-8|utf-8)" "$T/utf8.jsonl" run.bad_data=fail
{ echo "$good"; printf '{"prompt": "'; head -c 2000000 /dev/zero | tr '\0' 'a'; printf '", "response": "b"}\n'; } >"$T/huge.jsonl"
sft_fail "line over 1 MiB" "huge\.jsonl:2.*max_line_bytes" "$T/huge.jsonl" run.bad_data=fail
sft_fail "line over data.max_line_bytes" "sft\.jsonl:1.*max_line_bytes" "$T/data/sft.jsonl" run.bad_data=fail data.max_line_bytes=64
printf '[1,2]\n"text"\n\xff\xfe\n' >"$T/allbad.jsonl"
sft_fail "no valid record (skip policy)" "allbad\.jsonl.*no valid" "$T/allbad.jsonl"
printf '\x89HDF\r\n\x1a\n\x00\x00\x00binary' >"$T/binary.jsonl"
sft_fail "a binary file" "binary\.jsonl" "$T/binary.jsonl"
sft_fail "missing file" "nope\.jsonl" "$T/nope.jsonl"

echo "== configs"
printf '[optim]\nlrr = 1\n' >"$T/c_unknown.ini"
expect_fail "unknown key in a file" "c_unknown\.ini:2.*optim\.lrr.*did you mean 'optim\.lr'" "$B/learner" sft "$T/c_unknown.ini"
printf '[optm]\nlr = 1e-3\n' >"$T/c_section.ini"
expect_fail "unknown section" "c_section\.ini:1.*optm" "$B/learner" sft "$T/c_section.ini"
printf '[optim]\nlr = abc\n' >"$T/c_type.ini"
expect_fail "wrong type" "c_type\.ini:2.*optim\.lr.*number" "$B/learner" sft "$T/c_type.ini"
printf '[optim]\nbatch_size = 2.5\n' >"$T/c_int.ini"
expect_fail "float for an int" "c_int\.ini:2.*batch_size" "$B/learner" sft "$T/c_int.ini"
printf '[optim]\nlr = -5\n' >"$T/c_range.ini"
expect_fail "out of range" "c_range\.ini:2.*optim\.lr.*range" "$B/learner" sft "$T/c_range.ini"
printf '[optim]\nlr = 1e-3\nlr = 2e-3\n' >"$T/c_dup.ini"
expect_fail "duplicate key" "c_dup\.ini:3.*lr" "$B/learner" sft "$T/c_dup.ini"
printf '[optim\nlr = 1e-3\n' >"$T/c_syntax.ini"
expect_fail "malformed section line" "c_syntax\.ini:1" "$B/learner" sft "$T/c_syntax.ini"
printf '[run]\nout_dir = "unterminated\n' >"$T/c_quote.ini"
expect_fail "unterminated quote" "c_quote\.ini:2" "$B/learner" sft "$T/c_quote.ini"
expect_fail "unknown key as override" "optim\.lrr.*did you mean 'optim\.lr'" "$B/learner" sft configs/sft.ini optim.lrr=1
expect_fail "wrong type as override" "run\.seed.*(integer|number)" "$B/learner" sft configs/sft.ini run.seed=abc
expect_fail "missing config file" "nope\.ini" "$B/learner" sft "$T/nope.ini"

echo "== tokenizer files"
TV="$T/tok/vocab.json" TM="$T/tok/merges.txt"
echo '"hello"' >"$T/str.jsonl"
tok_fail() { # tok_fail NAME REGEX VOCAB MERGES
    expect_fail "rlhf-tokenize: $1" "$2" --stdin "$T/str.jsonl" "$B/rlhf-tokenize" --vocab "$3" --merges "$4"
}
printf '{"a": 1,' >"$T/v_trunc.json"
tok_fail "truncated vocab JSON" "v_trunc\.json:1" "$T/v_trunc.json" "$TM"
printf '[1, 2]' >"$T/v_array.json"
tok_fail "vocab is not an object" "v_array\.json" "$T/v_array.json" "$TM"
sed 's/"!": 0/"!": 7/' "$TV" >"$T/v_dupid.json"
cmp -s "$TV" "$T/v_dupid.json" || tok_fail "duplicate id" "v_dupid\.json" "$T/v_dupid.json" "$TM"
head -c $(($(stat -c %s "$TV") / 2)) "$TV" >"$T/v_half.json"
tok_fail "vocab cut in half" "v_half\.json" "$T/v_half.json" "$TM"
{ cat "$TM"; echo "zzzq yyyq"; } >"$T/m_unknown.txt"
tok_fail "merge of unknown tokens" "m_unknown\.txt:[0-9]+" "$TV" "$T/m_unknown.txt"
{ cat "$TM"; echo "onlyone"; } >"$T/m_one.txt"
tok_fail "merge line with one part" "m_one\.txt:[0-9]+" "$TV" "$T/m_one.txt"
printf '\xff\xfe\xfd\n' >"$T/m_bin.txt"
tok_fail "binary merges" "m_bin\.txt" "$TV" "$T/m_bin.txt"
tok_fail "missing vocab" "nope\.json" "$T/nope.json" "$TM"
tok_fail "safetensors as vocab" "model\.safetensors" "$T/hf/model.safetensors" "$TM"

echo "== safetensors through rlhf-hf import"
ST="$T/hf/model.safetensors"
"$B/rlhf-hf" import "$T/hf" "$T/imp_ok.h5" >/dev/null 2>&1 || bad "rlhf-hf import of the exported model"
HL=$(od -An -tu8 -N8 "$ST" | tr -d ' ')
hf_case() { # hf_case NAME REGEX: $T/hfbad/model.safetensors prepared by the caller
    expect_fail "rlhf-hf import: $1" "$2" "$B/rlhf-hf" import "$T/hfbad" "$T/imp_bad.h5"
    [ -e "$T/imp_bad.h5" ] && bad "rlhf-hf import: $1: wrote an output file"
}
mkhf() { rm -rf "$T/hfbad"; cp -r "$T/hf" "$T/hfbad"; }
mkhf; head -c $((SZ > 0 ? $(stat -c %s "$ST") - 100 : 0)) "$ST" >"$T/hfbad/model.safetensors"
hf_case "truncated data" "model\.safetensors"
mkhf; head -c 5 "$ST" >"$T/hfbad/model.safetensors"
hf_case "shorter than the length field" "model\.safetensors"
mkhf; { printf '\xff\xff\xff\xff\xff\xff\xff\x7f'; tail -c +9 "$ST"; } >"$T/hfbad/model.safetensors"
hf_case "huge header length" "model\.safetensors.*header"
mkhf; { head -c 8 "$ST"; printf 'not json'; tail -c +17 "$ST"; } >"$T/hfbad/model.safetensors"
hf_case "header not JSON" "model\.safetensors"
mkhf; sed 's/"dtype":"F32","shape":\[48\]/"dtype":"F32","shape":[49]/' "$ST" >"$T/hfbad/model.safetensors"
cmp -s "$ST" "$T/hfbad/model.safetensors" || hf_case "shape does not match the byte range" "model\.safetensors.*(c_attn\.bias|shape)"
mkhf; sed 's/"data_offsets":\[0,192\]/"data_offsets":[0,999]/' "$ST" >"$T/hfbad/model.safetensors"
cmp -s "$ST" "$T/hfbad/model.safetensors" || hf_case "data_offsets past the data" "model\.safetensors.*(data_offsets|c_attn\.bias)"
# (same-length edits keep the header length field right)
mkhf; sed 's/"dtype":"F32"/"dtype":"X32"/' "$ST" >"$T/hfbad/model.safetensors"
hf_case "unknown dtype" "model\.safetensors.*(dtype|X32)"
mkhf; sed 's/"dtype":"F32"/"dtype":"I32"/' "$ST" >"$T/hfbad/model.safetensors"
hf_case "integer tensors" "model\.safetensors.*(dtype|I32)"
mkhf; sed 's/"n_embd": 16/"n_embd": "16"/' "$T/hf/config.json" >"$T/hfbad/config.json"
hf_case "config.json field of the wrong type" "config\.json.*n_embd"
mkhf; sed 's/"n_embd": 16/"n_embd": 32/' "$T/hf/config.json" >"$T/hfbad/config.json"
hf_case "config.json does not match the tensor shapes" "(wte|shape|32)"
mkhf; printf '{"vocab_size": 300,' >"$T/hfbad/config.json"
hf_case "config.json truncated" "config\.json"
[ "$HL" -gt 0 ] || bad "could not read the safetensors header length"

echo "== a run that fails to start leaves the checkpoint directory untouched"
before=$(dir_sum "$T/run")
# shellcheck disable=SC2086
expect_fail "resume with a bad data file" "malformed\.jsonl:2" "$B/learner" sft $SFT data.train="$T/malformed.jsonl" run.bad_data=fail run.out_dir="$T/run" run.resume=auto
# shellcheck disable=SC2086
expect_fail "resume with a wrong-shape config" "n_embd" "$B/learner" sft $SFT model.n_embd=32 run.out_dir="$T/run" run.resume=auto
# shellcheck disable=SC2086
expect_fail "fresh run into the directory with a bad config" "optim\.lrr" "$B/learner" sft $SFT optim.lrr=1 run.out_dir="$T/run"
# shellcheck disable=SC2086
expect_fail "fresh run with a corrupt model.init" "trunc\.h5" "$B/learner" sft $SFT model.init="$T/trunc.h5" run.out_dir="$T/run"
after=$(dir_sum "$T/run")
if [ "$before" != "$after" ]; then bad "checkpoint directory changed by failed runs"; diff <(echo "$before") <(echo "$after"); else echo "ok   $T/run unchanged (sha256 of every file)"; fi
cp "$T/imp_ok.h5" "$T/keep.h5"
s1=$(sha256sum <"$T/keep.h5")
mkhf; head -c 5 "$ST" >"$T/hfbad/model.safetensors"
expect_fail "rlhf-hf import over an existing file" "model\.safetensors" "$B/rlhf-hf" import "$T/hfbad" "$T/keep.h5"
[ "$s1" = "$(sha256sum <"$T/keep.h5")" ] || bad "rlhf-hf import overwrote a good file with a failed import"

echo "t_badinput: $ncase cases, $nfail failed"
[ $nfail -eq 0 ]
