#!/usr/bin/env bash
# tests/t_fuzz_smoke.sh — builds every libFuzzer target of fuzz/ and runs each for a few
# seconds from its checked-in seed corpus, after replaying the corpus and the saved
# reproducers of fixed bugs (fuzz/crashes/, except the libhdf5 ones: see
# docs/reliability.md). Fails on any crash, leak, UB report, timeout or build error.
#
# clang with libFuzzer is required; tools/deps.sh (the first step of `make test`) installs
# it (clang-14, libclang-rt-14-dev). Without it this prints "SKIP: reason" and exits 77,
# which tests/run.sh counts as a skipped suite. The first build compiles common/*.c with
# sanitizers (~1-2 minutes on a loaded 2-core machine); later runs reuse build-fuzz/.
# Fuzzing itself takes FUZZ_SMOKE_SECONDS (default 5) per target. Executions are not
# logged to fuzz/EXECUTIONS.md (that is for real runs of fuzz/run.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
# The fuzz targets are a sanitizer build of their own, run with fuzz/run.sh's options; the
# asan pass's (tests/run.sh: build-asan's leak suppressions, slow unwinding) are not for
# them, so this suite checks exactly the same in both passes of `make test`.
if [ -n "${RLHF_ASAN:-}" ]; then unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS; fi

have_libfuzzer() {
    local cc
    cc=$(command -v clang || command -v clang-14) || return 1
    echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }' >"$1/probe.c"
    "$cc" -fsanitize=fuzzer,address "$1/probe.c" -o "$1/probe" >/dev/null 2>&1
}
T=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_fuzz_smoke.XXXXXX")
trap 'rm -rf "$T"' EXIT
if ! have_libfuzzer "$T"; then
    echo "SKIP: clang with libFuzzer not found (tools/deps.sh installs it: apt-get install clang-14 libclang-rt-14-dev)"
    exit 77
fi
[ -n "$(command -v clang || true)" ] || export CLANG=$(command -v clang-14)

echo "== replay: seed corpus and fixed reproducers"
FUZZ_NO_LOG=1 bash fuzz/run.sh --replay >"$T/replay.log" 2>&1
rc=$?
grep -v '^  CC\|warning\|\^\|^ *[0-9]* warn\|v16\|~' "$T/replay.log" | tail -20
[ $rc -eq 0 ] || { echo "FAIL: replay (build or a corpus input crashed)"; exit 1; }

echo "== fuzz ${FUZZ_SMOKE_SECONDS:-5} s per target"
FUZZ_NO_LOG=1 bash fuzz/run.sh "${FUZZ_SMOKE_SECONDS:-5}" >"$T/fuzz.log" 2>&1
rc=$?
grep -E '^fuzz_|^    |^total' "$T/fuzz.log"
[ $rc -eq 0 ] || { echo "FAIL: a fuzz target failed"; exit 1; }
for t in fuzz/fuzz_*.c; do
    n=$(basename "$t" .c)
    grep -qE "^$n .* [1-9][0-9]* execs  ok" "$T/fuzz.log" || { echo "FAIL: $n did not run"; exit 1; }
done
echo "t_fuzz_smoke: all targets ran clean"
