#!/usr/bin/env bash
# tests/t_portable.sh — the portable build runs on other x86-64 CPUs, and refuses older ones.
#
# The default build (ARCH=portable, see the Makefile) makes x86-64-v2 programs and three
# copies of build/lib/librlhf.so (x86-64-v2, and glibc-hwcaps/x86-64-v3, x86-64-v4); the
# dynamic loader picks the best copy for the CPU. qemu-user runs the programs as another
# CPU would (its CPUID, its instruction set: an instruction the CPU lacks is SIGILL):
#   - natively, the copy loaded is the best this CPU supports (v4 with AVX-512, else v3);
#     with AVX-512, run.gemm = auto takes gemm.c when OpenBLAS is forced onto its Haswell
#     kernels, and on its SkylakeX kernels gemm.c on Intel, OpenBLAS elsewhere;
#   - natively, with the loader pointed at one copy, the v3 copy (where this CPU has AVX2)
#     and the v2 copy pass test_ops, test_ops_llama and test_generate;
#   - as a Haswell (AVX2, no AVX-512) the v3 copy is loaded, as a Nehalem (SSE4.2) the v2
#     copy, and unit tests that compare the kernels with independent references (the
#     PyTorch GPT-2 fixture of test_gpt, the float64 losses and AdamW, the GEMM reference)
#     pass there;
#   - the bundled task generator writes the same bytes there as natively, and a checkpoint's
#     checksums (CRC-32: PCLMULQDQ folding natively, tables on a Nehalem) verify there;
#   - as a Core 2 (no SSE4.2, no POPCNT) every program refuses at start-up, exit 1, with a
#     message naming the missing features — never a SIGILL.
# Skipped (counted, with the reason) when the build is not the portable one (the ASan build
# is ARCH=native) or qemu-x86_64 is missing (tools/deps.sh installs qemu-user).
set -u
cd "$(dirname "$0")/.."
B=${BUILD:-build}
T=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_portable.XXXXXX")
trap 'rm -rf "$T"' EXIT
checks=0 failed=0
ok() { checks=$((checks + 1)); echo "  ok   $1"; }
bad() { checks=$((checks + 1)); failed=$((failed + 1)); echo "  FAIL $1"; }
skip() { echo "SKIP: $1"; exit 77; }

[ "$(uname -m)" = x86_64 ] || skip "not an x86-64 host"
[ -f "$B/lib/glibc-hwcaps/x86-64-v3/librlhf.so" ] && [ -f "$B/lib/glibc-hwcaps/x86-64-v4/librlhf.so" ] ||
  skip "$B is not a portable build (ARCH=native or another -march: one copy of the library)"
command -v qemu-x86_64 >/dev/null || skip "qemu-x86_64 is not installed (apt-get install qemu-user; tools/deps.sh does)"
for p in tests/fx_cpu tests/test_gpt tests/test_loss tests/test_gemm tests/test_adamw rlhf-task rlhf-tokenize; do
  [ -x "$B/$p" ] || { echo "FAIL: $B/$p is not built (make)"; exit 1; }
done
# qemu warns about CPUID bits it cannot emulate (pcid, x2apic); not ours. OpenBLAS picks
# its kernels for the emulated CPU: an OPENBLAS_CORETYPE from the environment (Haswell, say)
# would force AVX2 kernels onto a Nehalem, which no user of that CPU would do.
emu() {
  local cpu=$1 rc; shift
  env -u OPENBLAS_CORETYPE qemu-x86_64 -cpu "$cpu" "$@" 2>"$T/emu.err"; rc=$?
  grep -v "TCG doesn't support requested feature" "$T/emu.err" >&2
  return $rc
}
field() { awk -v k="$1" '$1 == k { print $2 }'; }

echo "== the copy of the library each CPU loads"
flags=$(grep -m1 '^flags' /proc/cpuinfo)
want=x86-64-v2
if [[ $flags =~ (^| )avx2( |$) && $flags =~ (^| )fma( |$) && $flags =~ (^| )bmi2( |$) ]]; then want=x86-64-v3; fi
v4=1
for f in avx512f avx512bw avx512cd avx512dq avx512vl; do [[ $flags =~ (^| )$f( |$) ]] || v4=0; done
[ $v4 -eq 1 ] && want=x86-64-v4
native=$("$B/tests/fx_cpu")
got=$(field arch <<<"$native")
[ "$got" = "$want" ] && ok "this CPU ($(field vendor <<<"$native")) loads the $got copy" ||
  bad "this CPU should load the $want copy (its /proc/cpuinfo flags), loaded $got"
kernel=$(field kernel <<<"$native")
{ [ $v4 -eq 1 ] && [ "$kernel" = avx512 ]; } || { [ $v4 -eq 0 ] && [ "$kernel" = none ]; } &&
  ok "gemm.c's AVX-512 kernel compiled into the loaded copy: $kernel" ||
  bad "gemm.c's kernel in the loaded copy is '$kernel' with AVX-512 support $v4"
# run.gemm = auto: gemm.c on Intel CPUs and wherever OpenBLAS runs kernels without AVX-512,
# OpenBLAS on its AVX-512 kernels elsewhere
if [ $v4 -eq 1 ]; then
  out=$(OPENBLAS_CORETYPE=Haswell "$B/tests/fx_cpu")
  [ "$(field gemm <<<"$out")" = own ] &&
    ok "OpenBLAS forced onto its Haswell kernels on this AVX-512 CPU: run.gemm=auto takes gemm.c" ||
    bad "OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU: run.gemm=auto chose $(field gemm <<<"$out")"
  vendor=$(field vendor <<<"$native") want_gemm=openblas
  [ "$vendor" = GenuineIntel ] && want_gemm=own
  out=$(OPENBLAS_CORETYPE=SkylakeX "$B/tests/fx_cpu")
  [ "$(field gemm <<<"$out")" = $want_gemm ] &&
    ok "OpenBLAS on its SkylakeX kernels, $vendor CPU: run.gemm=auto takes $want_gemm" ||
    bad "OPENBLAS_CORETYPE=SkylakeX, $vendor CPU: run.gemm=auto chose $(field gemm <<<"$out"), expected $want_gemm"
fi
for pair in Haswell:x86-64-v3 Nehalem:x86-64-v2; do
  cpu=${pair%%:*} lvl=${pair#*:}
  out=$(emu "$cpu" "$B/tests/fx_cpu") || { bad "fx_cpu failed as a $cpu"; continue; }
  got=$(field arch <<<"$out")
  [ "$got" = "$lvl" ] && ok "as a $cpu: the $got copy, GEMM $(field gemm <<<"$out")" ||
    bad "as a $cpu: expected the $lvl copy, loaded $got"
  [ "$(field kernel <<<"$out")" = none ] && [ "$(field gemm <<<"$out")" = openblas ] &&
    ok "as a $cpu: no AVX-512 kernel, OpenBLAS chosen" || bad "as a $cpu: $(tr '\n' ' ' <<<"$out")"
done

echo "== each copy's kernel tests natively (the loader pointed at that copy alone)"
# make test's other suites run the copy this CPU loads; these run the others on this CPU
# (a copy only uses instructions this CPU has): the batch-invariant decode kernels, the
# Llama ops and generation, whose bits differ between copies
mkdir -p "$T/v2"
cp "$B/lib/librlhf.so" "$T/v2/"
copies="$T/v2:x86-64-v2"
[ "$want" != x86-64-v2 ] && copies="$B/lib/glibc-hwcaps/x86-64-v3:x86-64-v3 $copies"
for pair in $copies; do
  dir=${pair%%:*} lvl=${pair#*:}
  got=$(LD_LIBRARY_PATH=$dir "$B/tests/fx_cpu" | field arch)
  [ "$got" = "$lvl" ] || { bad "LD_LIBRARY_PATH=$dir loaded the $got copy, not $lvl"; continue; }
  for t in test_ops test_ops_llama test_generate; do
    if LD_LIBRARY_PATH=$dir "$B/tests/$t" >"$T/$lvl.$t.log" 2>&1; then
      ok "the $lvl copy: $t ($(grep -E "checks, [0-9]+ failed" "$T/$lvl.$t.log" | tail -n 1))"
    else
      bad "the $lvl copy: $t failed"; grep -E "FAIL" "$T/$lvl.$t.log" | head -n 5 | sed 's/^/    | /'
    fi
  done
done

echo "== unit tests against their references, as other CPUs"
for cpu in Haswell Nehalem; do
  for t in test_gpt test_loss test_gemm test_adamw; do
    if emu "$cpu" "$B/tests/$t" >"$T/$cpu.$t.log" 2>&1; then
      ok "as a $cpu: $t ($(grep -E "checks, [0-9]+ failed" "$T/$cpu.$t.log" | tail -n 1))"
    else
      bad "as a $cpu: $t failed"; tail -n 15 "$T/$cpu.$t.log" | sed 's/^/    | /'
    fi
  done
done

echo "== the same data as natively"
"$B/rlhf-task" gen --out "$T/native" --seed 5 --sizes sft=60,prefs=30,prefs_eval=10,prompts=20,prompts_eval=5,redteam=2 >/dev/null
"$B/rlhf-tokenize" train --vocab-size 300 --out "$T/native/tok" "$T/native/corpus.txt" >/dev/null 2>&1
emu Nehalem "$B/rlhf-task" gen --out "$T/emu" --seed 5 --sizes sft=60,prefs=30,prefs_eval=10,prompts=20,prompts_eval=5,redteam=2 >/dev/null
emu Nehalem "$B/rlhf-tokenize" train --vocab-size 300 --out "$T/emu/tok" "$T/emu/corpus.txt" >/dev/null 2>&1
if diff -r "$T/native" "$T/emu" >/dev/null; then ok "rlhf-task gen + rlhf-tokenize train as a Nehalem: the same files, byte for byte"
else bad "rlhf-task / rlhf-tokenize output differs as a Nehalem: $(diff -rq "$T/native" "$T/emu" | head -3)"; fi

echo "== a checkpoint's checksums verified as a Nehalem (CRC-32 by tables; natively by PCLMULQDQ folding)"
ck=fuzz/corpus/fuzz_ckpt/sft_policy_adamw_tok.h5
if emu Nehalem "$B/rlhf-ckpt" info "$ck" 2>&1 | grep -q "every dataset's checksum matches"; then
  ok "rlhf-ckpt info $ck as a Nehalem: every checksum matches"
else bad "rlhf-ckpt info $ck as a Nehalem: $(emu Nehalem "$B/rlhf-ckpt" info "$ck" 2>&1 | tail -n 2)"; fi

echo "== below the baseline: a refusal that names what is missing"
for p in tests/fx_cpu learner actor reward_server rlhf-ckpt; do
  [ -x "$B/$p" ] || continue
  emu core2duo "$B/$p" >"$T/old.out" 2>"$T/old.err"
  rc=$?
  if [ $rc -eq 1 ] && grep -q "this CPU lacks SSE4.1, SSE4.2, POPCNT" "$T/old.err" &&
     grep -q "make ARCH=native" "$T/old.err" && [ ! -s "$T/old.out" ]; then
    ok "as a Core 2: $p refuses (exit 1): $(head -n 1 "$T/old.err")"
  else
    bad "as a Core 2: $p exit $rc, stderr: $(head -c 300 "$T/old.err")"
  fi
done

echo "t_portable: $checks checks, $failed failed"
[ "$failed" -eq 0 ]
