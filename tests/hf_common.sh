# tests/hf_common.sh — the checks tests/t_hf.sh and tests/t_hf_llama.sh share (sourced,
# not a suite): ok/bad counters, compare (rlhf-logprobs output against a reference's
# numbers) and expect_fail (a command that must fail with a message). The sourcing
# script sets T (its temp dir) first.
checks=0
failed=0
ok() { checks=$((checks + 1)); echo "  ok   $1"; }
bad() { checks=$((checks + 1)); failed=$((failed + 1)); echo "  FAIL $1"; }

# compare OUT REF TOL: every number of line i of OUT (one JSON object) against line i of
# REF (space-separated), |a-b| <= TOL; same line and value counts; no nulls.
compare() {
  awk -v tol="$3" '
    NR == FNR { if ($0 ~ /null/) { printf "line %d has null\n", FNR; bad = 1 }
                s = $0; sub(/^\{"[a-z]+":/, "", s); gsub(/[][{},]/, " ", s)
                got[FNR] = s; nout = FNR; next }
    { m = split(got[FNR], a, " "); k = split($0, b, " "); nref = FNR
      if (m != k) { printf "line %d: %d values, %d expected\n", FNR, m, k; bad = 1; next }
      for (i = 1; i <= k; i++) {
        d = a[i] - b[i]; if (d < 0) d = -d; if (d > maxd) maxd = d
        if (d > tol) { printf "line %d value %d: %s, reference %s\n", FNR, i, a[i], b[i]; bad = 1 }
      } }
    END { if (nout != nref) { printf "%d output lines, %d reference lines\n", nout, nref; bad = 1 }
          printf "    max |difference| %.3g over %d lines\n", maxd, nref; exit bad }' "$1" "$2"
}

# expect_fail NAME NEEDLE CMD...: CMD must exit non-zero and print NEEDLE on stderr.
expect_fail() {
  local name=$1 needle=$2; shift 2
  if "$@" >"$T/out" 2>"$T/err"; then
    bad "$name: exited 0"
  elif grep -qF -- "$needle" "$T/err"; then
    ok "$name ($(head -c 200 "$T/err" | tr '\n' ' '))"
  else
    bad "$name: stderr lacks '$needle': $(head -c 300 "$T/err")"
  fi
}
