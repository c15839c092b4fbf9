#!/usr/bin/env bash
# bench/deps.sh — the Debian packages the PyTorch comparison of `make bench` needs, on top
# of what the build needs (tools/deps.sh):
#   python3-torch          PyTorch for Debian's /usr/bin/python3 (bench/torch_gpt2.py);
#   libtcmalloc-minimal4   tcmalloc, preloaded in PyTorch's "best" setup;
#   libopenblas0-openmp    the OpenMP build of OpenBLAS, put first on the library path in
#                          the "best" setup (torch's ops use OpenMP: with the pthread build
#                          two sets of spinning threads share the cores).
# Installing libopenblas0-openmp does not change the system's BLAS: its alternative has a
# lower priority than the pthread build's, so our programs keep the pthread OpenBLAS.
#
# Run on its own (`bash bench/deps.sh`): installs what is missing with apt-get when root,
# otherwise prints the apt-get line; exit status 0 when everything is there. bench/run.sh
# sources it and calls bench_deps_install, then asks bench_best_missing whether PyTorch's
# best setup can be arranged; without it the bench prints no "best" ratio. The library
# paths can be pointed elsewhere with BENCH_TCMALLOC and BENCH_OMP_BLAS_DIR;
# BENCH_NO_INSTALL=1 reports without installing.

BENCH_PY=/usr/bin/python3
BENCH_MULTIARCH=$(gcc -print-multiarch 2>/dev/null)
BENCH_MULTIARCH=${BENCH_MULTIARCH:-x86_64-linux-gnu}
BENCH_TCMALLOC=${BENCH_TCMALLOC:-/usr/lib/$BENCH_MULTIARCH/libtcmalloc_minimal.so.4}
BENCH_OMP_BLAS_DIR=${BENCH_OMP_BLAS_DIR:-/usr/lib/$BENCH_MULTIARCH/openblas-openmp}

# Is PyTorch importable by Debian's python? (0 = yes)
bench_torch_ok() { "$BENCH_PY" -c 'import torch' >/dev/null 2>&1; }

# The packages PyTorch's best setup lacks, space-separated ("" when complete).
bench_best_missing() {
  local m=""
  [ -f "$BENCH_TCMALLOC" ] || m+=" libtcmalloc-minimal4"
  [ -f "$BENCH_OMP_BLAS_DIR/libblas.so.3" ] || m+=" libopenblas0-openmp"
  echo "${m# }"
}

# Every missing package of the comparison, space-separated.
bench_deps_missing() {
  local m
  m=$(bench_best_missing)
  bench_torch_ok || m="python3-torch${m:+ $m}"
  echo "$m"
}

# Install what is missing when root (and BENCH_NO_INSTALL is not 1); otherwise say what to
# install. Returns 0 when nothing is missing afterwards.
bench_deps_install() {
  local missing
  missing=$(bench_deps_missing)
  [ -z "$missing" ] && return 0
  echo "bench deps: missing for the PyTorch comparison: $missing"
  if [ "$(id -u)" = 0 ] && [ "${BENCH_NO_INSTALL:-0}" != 1 ]; then
    echo "bench deps: installing with apt-get: $missing"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing ||
      echo "bench deps: apt-get failed" >&2
    missing=$(bench_deps_missing)
    [ -z "$missing" ] && return 0
  fi
  echo "bench deps: still missing: $missing; as root run:" >&2
  echo "  apt-get install -y --no-install-recommends $missing" >&2
  return 1
}

# run on its own, not sourced
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -u
  bench_deps_install
fi
