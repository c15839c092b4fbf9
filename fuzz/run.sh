#!/usr/bin/env bash
# fuzz/run.sh — build and run the libFuzzer targets of rlhf-c (every decoder of user or
# wire bytes: msgpack messages, JSONL datasets, config text, BPE files, safetensors,
# checkpoint images, the label log). See docs/reliability.md.
#
#   bash fuzz/run.sh [SECONDS] [TARGET...]   build, then fuzz each target for SECONDS
#                                            (default 60); prints executions per target
#                                            and appends them to fuzz/EXECUTIONS.md
#   bash fuzz/run.sh --build                 build only (build-fuzz/fuzz_*)
#   bash fuzz/run.sh --seeds                 regenerate fuzz/corpus/* with the project's
#                                            own encoders (build-fuzz/seeds)
#   bash fuzz/run.sh --replay [TARGET...]    run each target once over its corpus and
#                                            fuzz/crashes/ (regression check, no fuzzing;
#                                            the *-hdf5-* libhdf5 reproducers left out)
#
# Targets are built with clang -fsanitize=fuzzer,address,undefined from the project's
# common/*.c sources directly (not build/librlhf.a: those objects are gcc-built without
# coverage) into build-fuzz/. A crash, leak, UB report or an input running over
# FUZZ_TIMEOUT seconds stops that target; its reproducer is written to
# build-fuzz/crashes/<target>-... and the script exits 1 at the end. New interesting
# inputs go to build-fuzz/corpus/<target>/ (the checked-in seeds in fuzz/corpus/ are only
# read). Environment: CLANG (default clang, else clang-14), FUZZ_JOBS (unused cores are
# precious here: targets run one after another), FUZZ_TIMEOUT (per input, default 10 s),
# FUZZ_NO_LOG=1 (do not append to fuzz/EXECUTIONS.md).
#
# Not here: installing clang (tools/deps.sh does that, as root).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=build-fuzz
CLANG=${CLANG:-$(command -v clang || command -v clang-14 || true)}
[ -n "$CLANG" ] || { echo "fuzz/run.sh: clang not found; install clang and libclang-rt-14-dev (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 2; }
PKGS="ompi-c openblas hdf5 msgpack jansson libmicrohttpd"
PKG_CFLAGS=$(pkg-config --cflags $PKGS) || { echo "fuzz/run.sh: pkg-config $PKGS failed" >&2; exit 2; }
PKG_LIBS=$(pkg-config --libs $PKGS)
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFLAGS="-g -O1 -march=native -std=c11 -D_GNU_SOURCE -Icommon -Wall -Wno-unused-parameter -Wno-psabi $SAN $PKG_CFLAGS"
ALL_TARGETS=$(ls fuzz/fuzz_*.c | sed 's#fuzz/\(.*\)\.c#\1#')

# ---- build ---------------------------------------------------------------------------
# common/*.c -> build-fuzz/obj/*.o with coverage instrumentation (fuzzer-no-link); an
# object is rebuilt when its source or any common header is newer.
build() {
    mkdir -p "$OUT/obj" || return 1
    # build-fuzz/ is not in the project's .gitignore: keep git from seeing it
    [ -f "$OUT/.gitignore" ] || echo '*' > "$OUT/.gitignore"
    # other flags than last time (another clang, edited script): start over
    if [ "$(cat "$OUT/flags" 2>/dev/null)" != "$CLANG $CFLAGS" ]; then
        rm -f "$OUT"/obj/*.o
        echo "$CLANG $CFLAGS" > "$OUT/flags"
    fi
    local newest_h
    newest_h=$(ls -t common/*.h | head -1)
    local objs=() c o
    for c in common/*.c; do
        o="$OUT/obj/$(basename "$c" .c).o"
        objs+=("$o")
        if [ ! -f "$o" ] || [ "$c" -nt "$o" ] || [ "$newest_h" -nt "$o" ]; then
            echo "  CC $c"
            $CLANG $CFLAGS -fsanitize=fuzzer-no-link -c "$c" -o "$o" || return 1
        fi
    done
    local t bin
    for t in $ALL_TARGETS; do
        bin="$OUT/$t"
        if [ ! -f "$bin" ] || [ "fuzz/$t.c" -nt "$bin" ] || [ "fuzz/fuzz_util.h" -nt "$bin" ] \
           || [ -n "$(find "$OUT/obj" -name '*.o' -newer "$bin" | head -1)" ]; then
            echo "  LD $bin"
            $CLANG $CFLAGS -fsanitize=fuzzer "fuzz/$t.c" "${objs[@]}" -o "$bin" $PKG_LIBS -lm -lpthread || return 1
        fi
    done
    # The seed generator: an ordinary program (no fuzzer main) over the same objects.
    if [ ! -f "$OUT/seeds" ] || [ fuzz/seeds.c -nt "$OUT/seeds" ] \
       || [ -n "$(find "$OUT/obj" -name '*.o' -newer "$OUT/seeds" | head -1)" ]; then
        echo "  LD $OUT/seeds"
        $CLANG $CFLAGS fuzz/seeds.c "${objs[@]}" -o "$OUT/seeds" $PKG_LIBS -lm -lpthread || return 1
    fi
}

# Per-target libFuzzer options: the largest input worth trying.
max_len() {
    case $1 in
        fuzz_ckpt) echo 65536 ;;
        fuzz_safetensors) echo 16384 ;;
        fuzz_bpe) echo 16384 ;;
        *) echo 8192 ;;
    esac
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

mode=fuzz
case "${1:-}" in
    --build) mode=build; shift ;;
    --seeds) mode=seeds; shift ;;
    --replay) mode=replay; shift ;;
esac
echo "fuzz/run.sh: building with $CLANG into $OUT/"
build || { echo "fuzz/run.sh: build failed" >&2; exit 2; }
[ "$mode" = build ] && exit 0
if [ "$mode" = seeds ]; then
    "$OUT/seeds" fuzz/corpus || exit 1
    mkdir -p fuzz/corpus/fuzz_config
    for f in configs/*.ini; do cp "$f" "fuzz/corpus/fuzz_config/configs_$(basename "$f")"; done
    exit 0
fi

SECS=60
if [ "$mode" = fuzz ] && [[ "${1:-}" =~ ^[0-9]+$ ]]; then SECS=$1; shift; fi
TARGETS=${*:-$ALL_TARGETS}
mkdir -p "$OUT/crashes"
status=0 total=0
summary=""
for t in $TARGETS; do
    [ -x "$OUT/$t" ] || { echo "fuzz/run.sh: no target $t" >&2; status=2; continue; }
    mkdir -p "$OUT/corpus/$t" "fuzz/corpus/$t"
    log="$OUT/$t.log"
    if [ "$mode" = replay ]; then
        # reproducers of libhdf5 bugs (fuzz/crashes/*-hdf5-*) are not ours to fix: left out
        files=$(find "fuzz/corpus/$t" -type f; ls fuzz/crashes/$t-* 2>/dev/null | grep -v -- '-hdf5-')
        # shellcheck disable=SC2086
        if "$OUT/$t" -runs=1 -rss_limit_mb=4096 $files >"$log" 2>&1; then
            echo "replay $t: ok ($(echo "$files" | grep -c .) inputs)"
        else
            echo "replay $t: FAILED (see $log)"; tail -n 30 "$log"; status=1
        fi
        continue
    fi
    "$OUT/$t" "$OUT/corpus/$t" "fuzz/corpus/$t" -max_total_time="$SECS" \
        -max_len="$(max_len "$t")" -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb=4096 \
        -print_final_stats=1 -artifact_prefix="$OUT/crashes/$t-" \
        $( [ -f "fuzz/$t.dict" ] && echo "-dict=fuzz/$t.dict" ) >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    # A crash stops libFuzzer before the final stats; count from the last progress line.
    [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" | tr -d '#' | tail -1)
    execs=${execs:-0}
    total=$((total + execs))
    if [ $rc -eq 0 ]; then res=ok; else res="FAILED (exit $rc, see $log)"; status=1; fi
    printf '%-20s %5ss %12s execs  %s\n' "$t" "$SECS" "$execs" "$res"
    if [ $rc -ne 0 ]; then
        grep -m3 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|SUMMARY' "$log" | sed 's/^/    /'
        ls -t "$OUT/crashes/$t-"* 2>/dev/null | head -1 | sed 's/^/    reproducer: /'
    fi
    summary+="| $(date -u +%Y-%m-%dT%H:%MZ) | $t | $SECS | $execs | $res |"$'\n'
done
echo "total: $total executions"
if [ "${FUZZ_NO_LOG:-0}" != 1 ] && [ "$mode" = fuzz ]; then
    if [ ! -f fuzz/EXECUTIONS.md ]; then
        printf '# Fuzzing log\n\nEvery `bash fuzz/run.sh` appends one row per target run (UTC date, target, seconds, executions, result). The machine is a shared 2-core box, so the per-run counts are small.\n\n| date | target | seconds | executions | result |\n|---|---|---|---|---|\n' > fuzz/EXECUTIONS.md
    fi
    printf '%s' "$summary" >> fuzz/EXECUTIONS.md
    awk -F'|' 'NR > 6 && $5 ~ /[0-9]/ { s += $5 } END { printf "running total in fuzz/EXECUTIONS.md: %d executions\n", s }' fuzz/EXECUTIONS.md
fi
exit $status
