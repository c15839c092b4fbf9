#!/usr/bin/env node
// tests/ref/bpe/hf_ref.js — the reference for tests/t_hf_tokenizer.sh: Hugging Face
// tokenizers as transformers.js implements them (npm @lenml/tokenizers), on a
// tokenizer.json.
//   node hf_ref.js encode LIB TOKENIZER_JSON [nospecial] < texts.jsonl > ids.jsonl
//   node hf_ref.js decode LIB TOKENIZER_JSON            < ids.jsonl   > texts.jsonl
//   node hf_ref.js random N SEED                        > texts.jsonl
// LIB is the unpacked @lenml/tokenizers package. "nospecial" drops the special added tokens
// (HF's split_special_tokens: their strings are plain text), keeping the others. Encoding
// adds no special tokens (add_special_tokens false); decoding cleans up no spaces.
'use strict';
const fs = require('fs');
const path = require('path');
const [mode, a, b, c] = process.argv.slice(2);

function load(lib, file, nospecial) {
  const { TokenizerLoader } = require(path.resolve(lib, 'dist/main.js'));
  const json = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (nospecial) json.added_tokens = json.added_tokens.filter((t) => !t.special);
  return TokenizerLoader.fromPreTrained({ tokenizerJSON: json, tokenizerConfig: { clean_up_tokenization_spaces: false } });
}

function lines() {
  return fs.readFileSync(0, 'utf8').split('\n').filter((l) => l.length > 0);
}

// xorshift32: the same texts for a seed on every machine
function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 4294967296; };
}

const PIECES = ['hello', 'World', ' the', 'DON\'T', 'it\'s', '\'S', '\'ll', '\'Re', '\'ve', '\'d', 'x\'m',
  '1234567', '42', '3.14159', '٣٤٥', '  ', '   ', '\t', '\n', '\n\n', '\r\n', ' \n ', '\u00a0', '\u3000',
  '日本語', '中文字符', '한국어', 'Привет', 'ελληνικά', 'עברית', '😀', '👍🏽', '🇫🇷', 'e\u0301', 'a\u0308',
  'n\u0303o', '\u1100\u1161\u11a8', 'A\u030a', 'o\u0302\u0301', 'café', '$x', '{}', '();', '==', '->', '#!',
  '<|im_start|>', '<|im_end|>', '<|endoftext|>', '<|begin_of_text|>', '<|eot_id|>', '<think>', '</think>',
  '<|im_start', 'im_end|>', '...', '—', '«»', '\u200b', '\ufeff', '\u2028', '½', 'Ⅻ', 'ﬁ', 'İ'];

function randomText(r) {
  const n = 1 + Math.floor(r() * 12);
  let s = '';
  for (let k = 0; k < n; k++) {
    const u = r();
    if (u < 0.8) s += PIECES[Math.floor(r() * PIECES.length)];
    else if (u < 0.9) s += String.fromCodePoint(0x20 + Math.floor(r() * 0x5f));
    else {
      let cp = Math.floor(r() * 0x30000);
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x41;
      s += String.fromCodePoint(cp);
    }
  }
  return s;
}

if (mode === 'encode') {
  const tok = load(a, b, c === 'nospecial');
  const out = lines().map((l) => JSON.stringify(tok.encode(JSON.parse(l), { add_special_tokens: false })));
  process.stdout.write(out.join('\n') + '\n');
} else if (mode === 'decode') {
  const tok = load(a, b, false);
  const dec = (ids) => (ids.length ? tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }) : "");
  const out = lines().map((l) => JSON.stringify(dec(JSON.parse(l))));
  process.stdout.write(out.join('\n') + '\n');
} else if (mode === 'random') {
  const r = rng(Number(b));
  const out = [];
  for (let i = 0; i < Number(a); i++) out.push(JSON.stringify(randomText(r)));
  process.stdout.write(out.join('\n') + '\n');
} else {
  process.stderr.write('usage: hf_ref.js encode|decode LIB TOKENIZER_JSON [nospecial] | random N SEED\n');
  process.exit(2);
}
